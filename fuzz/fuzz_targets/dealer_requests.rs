//! The dealer serving the requests that arrive over its links. The input is a sequence of
//! `[length byte][postcard payload]` records, each sent as a well-formed `DealerRequest`
//! frame by both parties (so their requests agree and the dealer generates the material;
//! the frame layer has its own target). A hostile or corrupt request must end the session
//! with an error, never a panic, an abort or an allocation beyond the dealer's limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secformer_core::dealer::server::DealerService;
use secformer_core::kernel::Portable;
use secformer_core::prg::Seed;
use secformer_core::transport::{Channel, FrameKind};
use secformer_fuzz::{frame, ByteLink};

fuzz_target!(|data: &[u8]| {
    let mut stream = Vec::new();
    let mut rest = data;
    while let Some((&n, r)) = rest.split_first() {
        let n = (n as usize).min(r.len());
        stream.extend(frame(FrameKind::DealerRequest, &r[..n]));
        rest = &r[n..];
    }
    let mut d = DealerService::new(
        Seed::from_u64_for_tests(1),
        Seed::from_u64_for_tests(2),
        3,
        Portable,
    )
    // A small limit, so that what passes it fits the fuzzer's memory and time (an owned
    // triple costs m k n multiply-adds: at most 2^28 here).
    .with_request_limit(1 << 14);
    let mut t0 = Channel::new(ByteLink::new(&stream, 64));
    let mut t1 = Channel::new(ByteLink::new(&stream, 64));
    let _ = d.serve(&mut t0, &mut t1);
});
