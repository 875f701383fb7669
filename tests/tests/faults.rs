//! Bad input gives a clear error, never a hang or a panic: truncated, malformed,
//! oversized and corrupted frames; a dealer stream mismatch between the parties; material
//! consumed out of order; a peer that disappears mid-protocol; mismatched versions.

use std::time::Duration;

use embedded_io::Write as _;
use secformer_core::dealer::{Dealer, Item};
use secformer_core::party::PartyId;
use secformer_core::protocols::{input, mul, reveal};
use secformer_core::share::AShare;
use secformer_core::transport::mem::{mem_pair, MemLink};
use secformer_core::transport::{Channel, FrameKind, Transport, TransportError};
use secformer_core::Error;
use secformer_tests::*;

/// A framed channel and the raw other end, to write arbitrary bytes at it.
fn raw() -> (Channel<MemLink>, MemLink) {
    let (a, mut b) = mem_pair();
    b.set_timeout(Duration::from_secs(5));
    let mut a = a;
    a.set_timeout(Duration::from_secs(5));
    (Channel::full_duplex(a), b)
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x5F, kind];
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    let mut h = crc32fast::Hasher::new();
    h.update(&v);
    v.extend_from_slice(&h.finalize().to_le_bytes());
    v
}

fn send_raw(link: &mut MemLink, bytes: &[u8]) {
    link.write_all(bytes).unwrap();
    link.flush().unwrap();
}

#[test]
fn truncated_frame_is_a_closed_error() {
    let (mut ch, mut peer) = raw();
    let f = frame(FrameKind::Ring as u8, &[1u8; 64]);
    send_raw(&mut peer, &f[..30]);
    peer.close();
    let mut buf = [0u64; 8];
    let e = ch.recv_u64(&mut buf).unwrap_err();
    assert_eq!(e, TransportError::Closed);
    assert!(e.to_string().contains("closed"));
}

#[test]
fn wrong_frame_kind_is_rejected() {
    let (mut ch, mut peer) = raw();
    send_raw(&mut peer, &frame(FrameKind::Bits as u8, &[0u8; 16]));
    let mut buf = [0u64; 2];
    let e = ch.recv_u64(&mut buf).unwrap_err();
    assert_eq!(
        e,
        TransportError::WrongKind {
            expected: FrameKind::Ring,
            got: FrameKind::Bits
        }
    );
    // Unknown kind byte and bad magic.
    let (mut ch, mut peer) = raw();
    send_raw(&mut peer, &frame(200, &[]));
    assert_eq!(
        ch.recv_u64(&mut buf).unwrap_err(),
        TransportError::UnknownKind(200)
    );
    let (mut ch, mut peer) = raw();
    send_raw(&mut peer, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        ch.recv_u64(&mut buf).unwrap_err(),
        TransportError::BadMagic(b'G')
    );
}

#[test]
fn oversized_length_is_rejected_without_reading_it() {
    let (mut ch, mut peer) = raw();
    // Announce 4 GiB - 1: the receiver must refuse before trying to read it.
    let mut h = vec![0x5F, FrameKind::Ring as u8];
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    send_raw(&mut peer, &h);
    let mut buf = [0u64; 2];
    let e = ch.recv_u64(&mut buf).unwrap_err();
    assert_eq!(
        e,
        TransportError::Length {
            expected: 16,
            got: u32::MAX as u64
        }
    );
    // Same in an exchange, and for a control message larger than its buffer.
    let (mut ch, mut peer) = raw();
    send_raw(&mut peer, &frame(FrameKind::Ring as u8, &[0u8; 24]));
    let e = ch.exchange_u64(&[1, 2], &mut buf).unwrap_err();
    assert!(matches!(
        e,
        TransportError::Length {
            expected: 16,
            got: 24
        }
    ));
    let (mut ch, mut peer) = raw();
    send_raw(&mut peer, &frame(FrameKind::Control as u8, &[0u8; 4096]));
    let e = ch.recv_msg::<u32>(FrameKind::Control).unwrap_err();
    assert!(matches!(e, TransportError::Length { got: 4096, .. }));
}

#[test]
fn corrupted_byte_fails_the_checksum() {
    let (mut ch, mut peer) = raw();
    let mut f = frame(FrameKind::Ring as u8, &[7u8; 16]);
    f[10] ^= 0x01;
    send_raw(&mut peer, &f);
    let mut buf = [0u64; 2];
    assert_eq!(ch.recv_u64(&mut buf).unwrap_err(), TransportError::Checksum);
}

#[test]
fn peer_error_frame_is_reported() {
    let (mut ch, mut peer) = raw();
    send_raw(
        &mut peer,
        &frame(FrameKind::Error as u8, b"P0 failed: out of memory"),
    );
    let mut buf = [0u64; 4];
    let e: Error = ch.exchange_u64(&[0; 4], &mut buf).unwrap_err().into();
    assert!(e.to_string().contains("out of memory"), "{e}");
}

#[test]
fn read_timeout_is_an_error_not_a_hang() {
    let (a, _b) = mem_pair();
    let mut a = a;
    a.set_timeout(Duration::from_millis(100));
    let mut ch = Channel::full_duplex(a);
    let mut buf = [0u64; 1];
    let e = ch.recv_u64(&mut buf).unwrap_err();
    assert_eq!(e, TransportError::Io(embedded_io::ErrorKind::TimedOut));
    assert!(e.to_string().contains("timed out"));
}

fn mul_of_len(s: &mut TestSession, n: usize) -> secformer_core::Result<()> {
    let x = vec![1.0; n];
    let mut xs = vec![AShare::default(); n];
    let own = (s.party() == PartyId::P0).then_some(&x[..]);
    input::share_input_f64(s, PartyId::P0, own, &mut xs)?;
    let mut z = vec![AShare::default(); n];
    let mut scratch = vec![0u64; mul::scratch_words(n)];
    mul::mul(s, &xs, &xs.clone(), &mut z, &mut scratch)
}

#[test]
fn dealer_stream_mismatch_fails_both_parties() {
    for net in NETS {
        let out = run_with(net, |s| mul_of_len(s, 10), |s| mul_of_len(s, 11));
        let e0 = out.p0.unwrap_err().to_string();
        let e1 = out.p1.unwrap_err().to_string();
        let d = out.dealer.unwrap_err().to_string();
        assert!(d.contains("mismatch"), "dealer: {d}");
        assert!(e1.contains("mismatch"), "P1: {e1}");
        // P0 learns it from the dealer or from P1, whichever reaches it first.
        assert!(e0.contains("mismatch") || e0.contains("closed"), "P0: {e0}");
    }
}

#[test]
fn consuming_other_material_than_requested_is_an_error() {
    let out = run(Net::Mem, |s| {
        s.dealer_mut().request(&[Item::Triple { n: 4 }])?;
        let (mut a, mut c) = (vec![0u64; 4], vec![0u64; 4]);
        s.dealer_mut()
            .take(Item::Square { n: 4 }, &mut [&mut a, &mut c])
    });
    for r in [out.p0, out.p1] {
        match r.unwrap_err() {
            Error::DealerMismatch {
                seq: 0,
                expected,
                actual,
            } => {
                assert_eq!(expected, Item::Triple { n: 4 });
                assert_eq!(actual, Item::Square { n: 4 });
            }
            e => panic!("unexpected error {e}"),
        }
    }
    // Taking without a request, and finishing with material left, are errors too.
    let out = run(Net::Mem, |s| {
        let (mut a, mut b, mut c) = (vec![0u64; 1], vec![0u64; 1], vec![0u64; 1]);
        s.dealer_mut().take(
            Item::PrivAnd {
                planes: 1,
                bits: 64,
                copies: 1,
            },
            &mut [&mut a, &mut b, &mut c],
        )
    });
    assert!(matches!(out.p0.unwrap_err(), Error::DealerSequence { .. }));
    let out = run(Net::Mem, |s| {
        s.dealer_mut().request(&[Item::Square { n: 2 }])
    });
    assert!(matches!(out.p0.unwrap_err(), Error::DealerSequence { .. }));
}

#[test]
fn peer_gone_mid_protocol_is_an_error_on_the_other_side() {
    for net in NETS {
        let out = run_with(
            net,
            |s| {
                // P0 runs a product and then a reveal; P1 leaves before the reveal.
                mul_of_len(s, 64)?;
                let mut o = vec![0u64; 64];
                reveal::reveal(s, &vec![AShare::default(); 64], &mut o)
            },
            |s| {
                mul_of_len(s, 64)?;
                Err(Error::Param("P1 stops here (test)"))
            },
        );
        let e = out.p0.unwrap_err().to_string();
        assert!(
            e.contains("P1 stops here") || e.contains("closed"),
            "P0: {e}"
        );
        assert!(out.p1.is_err());
    }
}

#[test]
fn abrupt_disconnect_without_error_frame() {
    // P1 drops its links without sending anything: P0 sees a closed connection.
    let (a, b) = mem_pair();
    let mut p0 = Channel::full_duplex(a);
    drop(b);
    let mut buf = [0u64; 3];
    assert_eq!(
        p0.exchange_u64(&[1, 2, 3], &mut buf).unwrap_err(),
        TransportError::Closed
    );
}

#[test]
fn version_mismatch_is_reported_by_the_dealer() {
    use secformer_core::dealer::server::identify;
    use secformer_core::dealer::PartyHello;
    let (a, b) = secformer_core::transport::mem::channel_pair();
    let (mut party, mut dealer) = (a, b);
    party
        .send_msg(
            FrameKind::Hello,
            &PartyHello {
                version: 999,
                party: PartyId::P0,
                token: [0; 16],
                resume: None,
            },
        )
        .unwrap();
    let e = identify(&mut dealer).unwrap_err();
    assert!(e.to_string().contains("version"));
    let e = party.recv_msg::<u32>(FrameKind::Hello).unwrap_err();
    assert!(e.to_string().contains("version mismatch"), "{e}");
}
