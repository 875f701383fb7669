//! The postcard control messages: the dealer's `Request`, `PartyHello`, `DealerHello` and
//! the session's `PairHello`. Decoding any bytes never panics; what decodes re-encodes to
//! a message that decodes to the same value; every item of a decoded request has a
//! layout and a correction size (what the dealer computes first) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secformer_core::dealer::{correction_bytes, layout, DealerHello, PartyHello, Request};
use secformer_core::session::PairHello;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn round_trip<M: Serialize + DeserializeOwned + PartialEq + core::fmt::Debug>(
    data: &[u8],
) -> Option<M> {
    let m: M = postcard::from_bytes(data).ok()?;
    let again = postcard::to_allocvec(&m).expect("a decoded message encodes");
    let back: M = postcard::from_bytes(&again).expect("an encoded message decodes");
    assert_eq!(back, m);
    Some(m)
}

fuzz_target!(|data: &[u8]| {
    if let Some(r) = round_trip::<Request>(data) {
        for item in r.items.iter() {
            let slots = layout(item);
            assert!(!slots.is_empty());
            let _ = correction_bytes(item);
        }
    }
    let _ = round_trip::<PartyHello>(data);
    let _ = round_trip::<DealerHello>(data);
    let _ = round_trip::<PairHello>(data);
});
