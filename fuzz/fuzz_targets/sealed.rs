//! The readers of the sealed links' handshake (`secformer_core::noise`, what a device's
//! dealer and P0 parse from a relay or a serial line): any bytes as message 1 (to a
//! responder) or message 2 (to an initiator that sent a real message 1) never panic, and
//! message 2 never authenticates (forging it needs the responder's secret key).
#![no_main]

use libfuzzer_sys::fuzz_target;
use secformer_core::noise::{Initiator, Responder, StaticKey};

fuzz_target!(|data: &[u8]| {
    let responder = StaticKey::from_secret([1; 32]);
    let device = StaticKey::from_secret([2; 32]);
    let mut m1 = data.to_vec();
    let mut r = Responder::new(&responder, [3; 32], b"fuzz");
    let _ = r.read_message_1(&mut m1);

    // Another ephemeral than the seeds' session ([4; 32]): their real message 2 is then an
    // old session's answer, which must not authenticate either.
    let mut i = Initiator::new(&device, responder.public(), [6; 32], b"fuzz");
    let mut first = [0u8; 256];
    i.write_message_1(b"hello", &mut first).expect("message 1 fits");
    let mut m2 = data.to_vec();
    assert!(i.read_message_2(&mut m2).is_err(), "a forged message 2 authenticated");
});
