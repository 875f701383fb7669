//! The frame decoder (`core/src/transport/channel.rs`): any byte stream, read in pieces of
//! any size, into buffers of any capacity, through `recv_frame`, `exchange_frame` and
//! `recv_msg`, never panics, never returns more than the buffer holds, and a well-formed
//! frame of the expected kind decodes to its payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secformer_core::dealer::Request;
use secformer_core::transport::{Channel, Transport, TransportError};
use secformer_fuzz::{frame, kind, ByteLink};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (ctl, rest) = data.split_at(4);
    let want = kind(ctl[0]);
    let cap = ctl[1] as usize * 3;
    let step = 1 + ctl[2] as usize % 17;
    match ctl[3] % 4 {
        // Raw bytes: a sequence of frames until the first error.
        0 => {
            let mut ch = Channel::new(ByteLink::new(rest, step));
            let mut buf = vec![0u8; cap];
            for i in 0..8 {
                match ch.recv_frame(want, &mut buf, i % 2 == 1) {
                    Ok(n) => assert!(n <= cap),
                    Err(_) => break,
                }
            }
        }
        // The same through the interleaved exchange, with small chunks.
        1 => {
            let mut ch = Channel::with_chunk(ByteLink::new(rest, step), 6 + ctl[2] as usize % 40);
            let mine = vec![0xA5u8; cap / 2];
            let mut theirs = vec![0u8; cap];
            let _ = ch.exchange_frame(want, &mine, &mut theirs);
        }
        // Control messages behind the frame layer.
        2 => {
            let mut ch = Channel::new(ByteLink::new(rest, step));
            let _ = ch.recv_msg::<Request>(want);
        }
        // A well-formed frame of the fuzzed payload decodes to exactly that payload.
        _ => {
            let f = frame(want, rest);
            let mut ch = Channel::new(ByteLink::new(&f, step));
            let mut buf = vec![0u8; rest.len()];
            match ch.recv_frame(want, &mut buf, true) {
                Ok(n) => assert_eq!(&buf[..n], rest),
                Err(TransportError::Length { .. }) if rest.len() > 96 => {} // Error frames
                Err(e) => panic!("a well-formed frame failed to decode: {e:?}"),
            }
        }
    }
});
