//! Channels without the CRC trailer (for links that authenticate every byte themselves):
//! the same frames and accounting minus four bytes a frame, in every send/receive/exchange
//! path; a checksummed and an unchecksummed end fail cleanly against each other.

use std::time::Duration;

use secformer_core::transport::mem::{mem_pair, MemLink};
use secformer_core::transport::{Channel, FrameKind, Transport, TransportError, FRAME_OVERHEAD};

fn pair(checksum: (bool, bool), chunk: usize) -> (Channel<MemLink>, Channel<MemLink>) {
    let (mut a, mut b) = mem_pair();
    a.set_timeout(Duration::from_secs(5));
    b.set_timeout(Duration::from_secs(5));
    let mk = |l, c: bool| {
        let ch = Channel::with_chunk(l, chunk);
        if c {
            ch
        } else {
            ch.without_checksum()
        }
    };
    (mk(a, checksum.0), mk(b, checksum.1))
}

fn words(n: usize, salt: u64) -> Vec<u64> {
    (0..n as u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt)
        .collect()
}

#[test]
fn frames_without_checksum_carry_header_and_payload_only() {
    for chunk in [usize::MAX, 64, 7] {
        let (mut a, mut b) = pair((false, false), chunk);
        assert!(!a.has_checksum());
        assert_eq!(a.frame_overhead(), FRAME_OVERHEAD - 4);
        let (x, y) = (words(10_000, 1), words(10_000, 2));
        let t = std::thread::spawn(move || {
            let mut got = vec![0u64; 10_000];
            b.exchange_u64(&y, &mut got).unwrap();
            b.send_u64(&got[..5]).unwrap();
            let m: (u32, bool) = b.recv_msg(FrameKind::Control).unwrap();
            (got, m, b.stats())
        });
        let mut got = vec![0u64; 10_000];
        a.exchange_u64(&x, &mut got).unwrap();
        assert_eq!(got, words(10_000, 2));
        let mut echo = [0u64; 5];
        a.recv_u64(&mut echo).unwrap();
        assert_eq!(&echo[..], &x[..5]);
        a.send_msg(FrameKind::Control, &(7u32, true)).unwrap();
        let (theirs, m, bs) = t.join().unwrap();
        assert_eq!(theirs, x);
        assert_eq!(m, (7, true));
        // Wire bytes are the payload plus a 6-byte header per frame.
        assert_eq!(bs.bytes_sent, 80_000 + 40 + 2 * 6);
        assert_eq!(a.stats().bytes_received, bs.bytes_sent);
    }
}

#[test]
fn checksummed_and_unchecksummed_ends_fail_cleanly() {
    // The checksummed end reads the next frame's header as its trailer: a checksum error.
    let (mut a, mut b) = pair((true, false), usize::MAX);
    b.send_frame(FrameKind::Ring, &[1, 2, 3, 4, 5, 6, 7, 8])
        .unwrap();
    b.send_frame(FrameKind::Ring, &[9; 8]).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        a.recv_frame(FrameKind::Ring, &mut buf, true),
        Err(TransportError::Checksum)
    );
    // The unchecksummed end reads the trailer as the next header: a bad magic byte.
    let (mut a, mut b) = pair((true, false), usize::MAX);
    a.send_frame(FrameKind::Ring, &[1; 8]).unwrap();
    a.send_frame(FrameKind::Ring, &[2; 8]).unwrap();
    b.recv_frame(FrameKind::Ring, &mut buf, true).unwrap();
    assert!(matches!(
        b.recv_frame(FrameKind::Ring, &mut buf, true),
        Err(TransportError::BadMagic(_))
    ));
}
