//! The end-to-end sealed links of `secformer_core::noise` (P1 to D through a relay, P1 to
//! P0 over a serial line): the handshake and transport messages are standard
//! `Noise_IK_25519_ChaChaPoly_SHA256`, checked against `snow` in both roles; a sealed
//! transport refuses altered, replayed and reordered frames, and a replayed handshake
//! answer from an old session; a responder refuses an untrusted key before sending
//! anything but an error. (The firmware's sealed links, the relay's view of them and the
//! dealer process are tested in `host/tests/firmware_qemu.rs`.)

use secformer_core::noise::{Initiator, Responder, Sealed, StaticKey, MSG1_OVERHEAD, TAG_LEN};
use secformer_core::transport::mem::channel_pair;
use secformer_core::transport::{FrameKind, Transport, TransportError};

const NAME: &str = "Noise_IK_25519_ChaChaPoly_SHA256";
const PROLOGUE: &[u8] = b"test prologue";

fn key(i: u8) -> [u8; 32] {
    let mut k = [0u8; 32];
    for (j, b) in k.iter_mut().enumerate() {
        *b = i.wrapping_mul(31).wrapping_add(j as u8 * 7 + 1);
    }
    k
}

#[test]
fn our_initiator_talks_to_snows_responder() {
    let (s_i, s_r, e_i) = (StaticKey::from_secret(key(1)), key(2), key(3));
    let r_pub = StaticKey::from_secret(s_r).public();
    let mut snow_r = snow::Builder::new(NAME.parse().unwrap())
        .prologue(PROLOGUE)
        .unwrap()
        .local_private_key(&s_r)
        .unwrap()
        .build_responder()
        .unwrap();
    let mut hs = Initiator::new(&s_i, r_pub, e_i, PROLOGUE);
    let mut m1 = [0u8; 256];
    let n1 = hs.write_message_1(b"hello D", &mut m1).unwrap();
    let mut p = [0u8; 256];
    let got = snow_r.read_message(&m1[..n1], &mut p).unwrap();
    assert_eq!(&p[..got], b"hello D");
    assert_eq!(snow_r.get_remote_static().unwrap(), &s_i.public());
    let mut m2 = [0u8; 256];
    let n2 = snow_r.write_message(b"seed inside", &mut m2).unwrap();
    let (mut keys, plen) = hs.read_message_2(&mut m2[..n2]).unwrap();
    assert_eq!(&m2[32..32 + plen], b"seed inside");
    assert_eq!(&keys.handshake_hash[..], snow_r.get_handshake_hash());
    let mut snow_t = snow_r.into_transport_mode().unwrap();
    // Transport, both ways (empty associated data, as Noise's transport messages).
    let mut msg = *b"frame from P1";
    let tag = keys.send.encrypt(&[], &mut msg).unwrap();
    let mut wire = msg.to_vec();
    wire.extend_from_slice(&tag);
    let got = snow_t.read_message(&wire, &mut p).unwrap();
    assert_eq!(&p[..got], b"frame from P1");
    let n = snow_t.write_message(b"frame from D", &mut m2).unwrap();
    let (body, tag) = m2[..n].split_at_mut(n - TAG_LEN);
    keys.recv.decrypt(&[], body, tag).unwrap();
    assert_eq!(body, b"frame from D");
}

#[test]
fn snows_initiator_talks_to_our_responder() {
    let (s_i, s_r, e_r) = (key(4), StaticKey::from_secret(key(5)), key(6));
    let mut snow_i = snow::Builder::new(NAME.parse().unwrap())
        .prologue(PROLOGUE)
        .unwrap()
        .local_private_key(&s_i)
        .unwrap()
        .remote_public_key(&s_r.public())
        .unwrap()
        .build_initiator()
        .unwrap();
    let mut m1 = [0u8; 256];
    let n1 = snow_i.write_message(b"party hello", &mut m1).unwrap();
    let mut hs = Responder::new(&s_r, e_r, PROLOGUE);
    let (peer, plen) = hs.read_message_1(&mut m1[..n1]).unwrap();
    assert_eq!(peer, StaticKey::from_secret(s_i).public());
    let at = MSG1_OVERHEAD - TAG_LEN;
    assert_eq!(&m1[at..at + plen], b"party hello");
    let mut m2 = [0u8; 256];
    let (mut keys, n2) = hs.write_message_2(b"dealer hello", &mut m2).unwrap();
    let mut p = [0u8; 256];
    let got = snow_i.read_message(&m2[..n2], &mut p).unwrap();
    assert_eq!(&p[..got], b"dealer hello");
    let mut snow_t = snow_i.into_transport_mode().unwrap();
    let n = snow_t.write_message(b"request", &mut m2).unwrap();
    let (body, tag) = m2[..n].split_at_mut(n - TAG_LEN);
    keys.recv.decrypt(&[], body, tag).unwrap();
    assert_eq!(body, b"request");
}

/// A sealed pair over in-memory links: (initiator's end, responder's end).
type Pair = (
    Sealed<secformer_core::transport::Channel<secformer_core::transport::mem::MemLink>, Vec<u8>>,
    Sealed<secformer_core::transport::Channel<secformer_core::transport::mem::MemLink>, Vec<u8>>,
);

fn sealed_pair(trusted: bool) -> Result<Pair, TransportError> {
    let (a, b) = channel_pair();
    let (ki, kr) = (
        StaticKey::from_secret(key(7)),
        StaticKey::from_secret(key(8)),
    );
    let (ipub, rpub) = (ki.public(), kr.public());
    std::thread::scope(|sc| {
        let r = sc.spawn(move || {
            let ok = |peer: &[u8; 32], _: &[u8], out: &mut [u8]| {
                if trusted && peer == &ipub {
                    out[..4].copy_from_slice(b"seed");
                    Ok(4)
                } else {
                    Err(TransportError::Handshake("untrusted"))
                }
            };
            let mut req = [0u8; 64];
            Sealed::respond(
                b,
                FrameKind::Hello,
                &kr,
                key(9),
                PROLOGUE,
                Vec::new(),
                Vec::new(),
                &mut req,
                ok,
            )
            .map(|(s, _, _)| s)
        });
        let hs = Initiator::new(&ki, rpub, key(10), PROLOGUE);
        let mut reply = [0u8; 64];
        let i = Sealed::initiate(
            a,
            FrameKind::Hello,
            hs,
            b"hi",
            Vec::new(),
            Vec::new(),
            &mut reply,
        );
        let r = r.join().unwrap();
        let (i, n) = i?;
        assert_eq!(&reply[..n], b"seed");
        Ok((i, r?))
    })
}

#[test]
fn sealed_frames_round_trip_and_exchange() {
    let (mut i, mut r) = sealed_pair(true).unwrap();
    i.send_frame(FrameKind::Ring, &[1, 2, 3]).unwrap();
    let mut b = [0u8; 3];
    r.recv_frame(FrameKind::Ring, &mut b, true).unwrap();
    assert_eq!(b, [1, 2, 3]);
    // A request is readable on the wire (a relay counts its answer) yet authenticated.
    i.send_frame(FrameKind::DealerRequest, b"shape").unwrap();
    let mut q = [0u8; 5];
    r.recv_frame(FrameKind::DealerRequest, &mut q, true)
        .unwrap();
    assert_eq!(&q, b"shape");
    assert_eq!(i.handshake_hash(), r.handshake_hash());
    std::thread::scope(|sc| {
        let t = sc.spawn(move || {
            let mut theirs = [0u64; 700];
            r.exchange_u64(&[5u64; 900], &mut theirs).unwrap();
            theirs
        });
        let mut theirs = [0u64; 900];
        i.exchange_u64(&[6u64; 700], &mut theirs).unwrap();
        assert!(theirs.iter().all(|&v| v == 5));
        assert!(t.join().unwrap().iter().all(|&v| v == 6));
    });
}

#[test]
fn altered_replayed_or_reordered_frames_fail_authentication() {
    let mut b = [0u8; 3];
    // Replay: a sealed frame (taken off the wire) delivered twice.
    let (mut i, mut r) = sealed_pair(true).unwrap();
    i.send_frame(FrameKind::Ring, b"one").unwrap();
    let mut raw = [0u8; 3 + TAG_LEN];
    r.inner_mut()
        .recv_frame(FrameKind::Ring, &mut raw, true)
        .unwrap();
    i.inner_mut().send_frame(FrameKind::Ring, &raw).unwrap();
    i.inner_mut().send_frame(FrameKind::Ring, &raw).unwrap();
    r.recv_frame(FrameKind::Ring, &mut b, true).unwrap();
    assert_eq!(&b, b"one");
    let replay = r.recv_frame(FrameKind::Ring, &mut b, true);
    assert_eq!(replay, Err(TransportError::Unauthentic));
    // Altered: one flipped bit.
    let (mut i, mut r) = sealed_pair(true).unwrap();
    i.send_frame(FrameKind::Ring, b"two").unwrap();
    r.inner_mut()
        .recv_frame(FrameKind::Ring, &mut raw, true)
        .unwrap();
    raw[1] ^= 1;
    i.inner_mut().send_frame(FrameKind::Ring, &raw).unwrap();
    let altered = r.recv_frame(FrameKind::Ring, &mut b, true);
    assert_eq!(altered, Err(TransportError::Unauthentic));
    // Reordered: the second frame delivered first.
    let (mut i, mut r) = sealed_pair(true).unwrap();
    let mut raws = [[0u8; 3 + TAG_LEN]; 2];
    for (k, w) in [b"3rd", b"4th"].iter().enumerate() {
        i.send_frame(FrameKind::Ring, *w).unwrap();
        r.inner_mut()
            .recv_frame(FrameKind::Ring, &mut raws[k], true)
            .unwrap();
    }
    i.inner_mut().send_frame(FrameKind::Ring, &raws[1]).unwrap();
    let reordered = r.recv_frame(FrameKind::Ring, &mut b, true);
    assert_eq!(reordered, Err(TransportError::Unauthentic));
}

#[test]
fn an_untrusted_initiator_gets_only_an_error() {
    let e = sealed_pair(false).err().expect("must be refused");
    assert!(
        matches!(e, TransportError::Peer(ref m) if m.contains("refused")),
        "{e:?}"
    );
}

#[test]
fn an_old_sessions_answer_does_not_decrypt_in_a_new_one() {
    let (ki, kr) = (
        StaticKey::from_secret(key(11)),
        StaticKey::from_secret(key(12)),
    );
    let run = |e_i: [u8; 32], e_r: [u8; 32]| {
        let mut hs = Initiator::new(&ki, kr.public(), e_i, PROLOGUE);
        let mut m1 = [0u8; 256];
        let n1 = hs.write_message_1(b"", &mut m1).unwrap();
        let mut r = Responder::new(&kr, e_r, PROLOGUE);
        r.read_message_1(&mut m1[..n1]).unwrap();
        let mut m2 = [0u8; 256];
        let (_, n2) = r.write_message_2(b"old seed", &mut m2).unwrap();
        (m2, n2)
    };
    let (mut old, n) = run(key(13), key(14));
    // A new session (fresh initiator ephemeral) offered the recorded answer.
    let mut hs = Initiator::new(&ki, kr.public(), key(15), PROLOGUE);
    hs.write_message_1(b"", &mut [0u8; 256]).unwrap();
    assert!(hs.read_message_2(&mut old[..n]).is_err());
}
