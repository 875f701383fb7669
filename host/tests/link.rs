//! Authenticated encrypted links over real loopback TCP: mutual trust, refusals that name
//! the refused key, tampering and truncation, what a wire capture shows, hostile bytes at
//! either end, a large full-duplex transfer, and the key files.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use secformer_core::transport::{Channel, FrameKind, Transport, TransportError};
use secformer_host::link::args::{keygen, KeygenArgs, LinkArgs};
use secformer_host::link::{
    Identity, Link, LinkError, LinkOptions, LinkSecurity, Peer, PeerId, Refusal, SecureLink, Suite,
    TrustStore,
};

type Setup = Result<(SecureLink, PeerId), LinkError>;

fn opts() -> LinkOptions {
    LinkOptions {
        handshake_timeout: Duration::from_secs(3),
        read_timeout: Duration::from_secs(30),
        ..LinkOptions::default()
    }
}

fn id(name: &str) -> Arc<Identity> {
    Arc::new(Identity::generate(name).unwrap())
}

fn trusting(ids: &[&Identity]) -> Arc<TrustStore> {
    let mut t = TrustStore::new();
    for i in ids {
        t.add_ephemeral(i).unwrap();
    }
    Arc::new(t)
}

/// One endpoint: its identity, trust store and options.
#[derive(Clone)]
struct End(Arc<Identity>, Arc<TrustStore>, LinkOptions);

/// Accepts on a thread and connects from this one, to `via` if given (a relay in front of
/// the server) or straight to the server. Returns (client, server) results.
fn setup(client: End, server: End, via: Option<fn(SocketAddr) -> SocketAddr>) -> (Setup, Setup) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let srv = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        SecureLink::accept(s, &server.0, &server.1, &server.2)
    });
    let target = via.map_or(addr, |f| f(addr));
    let c = SecureLink::connect(
        TcpStream::connect(target).unwrap(),
        &client.0,
        &client.1,
        &client.2,
    );
    (c, srv.join().unwrap())
}

fn mutual() -> (End, End) {
    let (c, s) = (id("client"), id("server"));
    (
        End(c.clone(), trusting(&[&s]), opts()),
        End(s.clone(), trusting(&[&c]), opts()),
    )
}

fn channel(l: SecureLink) -> Channel<Link> {
    Link::Secure(l).channel()
}

#[test]
fn mutually_trusted_peers_connect_and_exchange_frames() {
    let (c, s) = mutual();
    let (ck, sk) = (c.0.public(), s.0.public());
    let (cr, sr) = setup(c, s, None);
    let (cl, server_seen_by_client) = cr.unwrap();
    let (sl, client_seen_by_server) = sr.unwrap();
    assert_eq!(server_seen_by_client.name, "server");
    assert_eq!(server_seen_by_client.key, sk);
    assert_eq!(client_seen_by_server.name, "client");
    assert_eq!(client_seen_by_server.key, ck);
    assert!(client_seen_by_server.to_string().contains("client (key "));

    let (mut a, mut b) = (channel(cl), channel(sl));
    assert!(!a.has_checksum());
    let t = thread::spawn(move || {
        let mut got = vec![0u64; 70_000];
        b.exchange_u64(&vec![2u64; 70_000], &mut got).unwrap();
        let m: (u32, String) = b.recv_msg(FrameKind::Control).unwrap();
        (got, m)
    });
    let mut got = vec![0u64; 70_000];
    a.exchange_u64(&vec![1u64; 70_000], &mut got).unwrap();
    a.send_msg(FrameKind::Control, &(5u32, "hello".to_string()))
        .unwrap();
    let (theirs, m) = t.join().unwrap();
    assert!(got.iter().all(|&x| x == 2) && theirs.iter().all(|&x| x == 1));
    assert_eq!(m, (5, "hello".to_string()));
}

/// Writes a key pair with `keygen` and returns the identity and its .pub path.
fn on_disk(dir: &Path, name: &str) -> (Arc<Identity>, std::path::PathBuf) {
    keygen(&KeygenArgs {
        name: name.into(),
        out: dir.into(),
        force: false,
    })
    .unwrap();
    let key = Identity::load(&dir.join(format!("{name}.key"))).unwrap();
    (Arc::new(key), dir.join(format!("{name}.pub")))
}

#[test]
fn an_untrusted_client_is_refused_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (client, client_pub) = on_disk(dir.path(), "mallory");
    let (server, server_pub) = on_disk(dir.path(), "server");
    let (other, other_pub) = on_disk(dir.path(), "alice");
    let _ = (other, client_pub);
    let server_trust = Arc::new(TrustStore::load(std::slice::from_ref(&other_pub)).unwrap());
    let client_trust = Arc::new(TrustStore::load(&[server_pub]).unwrap());
    let (cr, sr) = setup(
        End(client.clone(), client_trust, opts()),
        End(server, server_trust, opts()),
        None,
    );
    let err = sr.unwrap_err();
    let msg = err.to_string();
    match &err {
        LinkError::Untrusted { key, addr, .. } => {
            assert_eq!(*key, client.public());
            assert!(addr.ip().is_loopback());
            assert!(msg.starts_with(&format!("refusing {addr}: key {}", key.fingerprint())));
        }
        e => panic!("expected Untrusted, got {e:?}"),
    }
    assert!(msg.contains("alice.pub"), "{msg}");
    let err = cr.unwrap_err();
    assert!(
        matches!(
            err,
            LinkError::Refused {
                reason: Refusal::UntrustedKey,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("mallory.pub"), "{err}");
}

#[test]
fn an_untrusted_server_is_refused_and_named() {
    let (c, s, other) = (id("client"), id("impostor"), id("server"));
    let (cr, sr) = setup(
        End(c.clone(), trusting(&[&other]), opts()),
        End(s.clone(), trusting(&[&c]), opts()),
        None,
    );
    match cr.unwrap_err() {
        LinkError::Untrusted { key, .. } => assert_eq!(key, s.public()),
        e => panic!("expected Untrusted, got {e:?}"),
    }
    // The server learns it was refused, and sent nothing but handshake messages.
    assert!(matches!(
        sr.unwrap_err(),
        LinkError::Refused {
            reason: Refusal::UntrustedKey,
            ..
        }
    ));
}

#[test]
fn different_cipher_suites_are_reported_as_such() {
    let (c, mut s) = mutual();
    s.2.suite = Suite::ChaChaPoly;
    let (cr, sr) = setup(c, s, None);
    assert!(matches!(sr.unwrap_err(), LinkError::Unsupported { .. }));
    assert!(matches!(
        cr.unwrap_err(),
        LinkError::Refused {
            reason: Refusal::Unsupported,
            ..
        }
    ));
}

/// What a relay between client and server saw and may alter.
#[derive(Default)]
struct Tap {
    up: Vec<u8>,
    down: Vec<u8>,
}

struct RelayPlan {
    /// Flip this byte (offset in the client-to-server stream).
    flip: Option<usize>,
    /// Close both ways after this many client-to-server bytes.
    cut: Option<usize>,
}

static TAP: Mutex<Option<Arc<Mutex<Tap>>>> = Mutex::new(None);
static PLAN: Mutex<RelayPlan> = Mutex::new(RelayPlan {
    flip: None,
    cut: None,
});
// Relay tests share the statics above.
static RELAY_TESTS: Mutex<()> = Mutex::new(());

/// Starts a one-connection relay to `upstream` following `PLAN`, recording into `TAP`.
fn relay(upstream: SocketAddr) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let tap = TAP.lock().unwrap().clone().unwrap();
    let (flip, cut) = {
        let p = PLAN.lock().unwrap();
        (p.flip, p.cut)
    };
    thread::spawn(move || {
        let (c, _) = l.accept().unwrap();
        let s = TcpStream::connect(upstream).unwrap();
        let pump = |mut from: TcpStream, mut to: TcpStream, up: bool, tap: Arc<Mutex<Tap>>| {
            thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut off = 0usize;
                loop {
                    let n = match from.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let chunk = &mut buf[..n];
                    if up {
                        if let Some(f) = flip.filter(|f| (off..off + n).contains(f)) {
                            chunk[f - off] ^= 0x01;
                        }
                        if let Some(c) = cut.filter(|c| off + n > *c) {
                            let keep = c - off;
                            let _ = to.write_all(&chunk[..keep]);
                            tap.lock().unwrap().up.extend_from_slice(&chunk[..keep]);
                            let _ = to.shutdown(Shutdown::Both);
                            let _ = from.shutdown(Shutdown::Both);
                            return;
                        }
                        tap.lock().unwrap().up.extend_from_slice(chunk);
                    } else {
                        tap.lock().unwrap().down.extend_from_slice(chunk);
                    }
                    off += n;
                    if to.write_all(chunk).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(Shutdown::Write);
            })
        };
        let a = pump(
            c.try_clone().unwrap(),
            s.try_clone().unwrap(),
            true,
            tap.clone(),
        );
        let b = pump(s, c, false, tap);
        let _ = (a.join(), b.join());
    });
    addr
}

fn with_relay<T>(flip: Option<usize>, cut: Option<usize>, f: impl FnOnce() -> T) -> (T, Tap) {
    let _guard = RELAY_TESTS.lock().unwrap_or_else(|p| p.into_inner());
    let tap = Arc::new(Mutex::new(Tap::default()));
    *TAP.lock().unwrap() = Some(tap.clone());
    *PLAN.lock().unwrap() = RelayPlan { flip, cut };
    let out = f();
    thread::sleep(Duration::from_millis(50));
    let t = std::mem::take(&mut *tap.lock().unwrap());
    (out, t)
}

/// Client-to-server handshake bytes: preamble 9, message 1 (2 + 32), message 3 (2 + 64).
const UP_HANDSHAKE: usize = 9 + 34 + 66;

#[test]
fn a_tampered_record_fails_the_read() {
    let ((), _) = with_relay(Some(UP_HANDSHAKE + 2 + 100), None, || {
        let (c, s) = mutual();
        let (cr, sr) = setup(c, s, Some(relay));
        let (mut a, mut b) = (channel(cr.unwrap().0), channel(sr.unwrap().0));
        a.send_frame(FrameKind::Ring, &[7u8; 10_000]).unwrap();
        let mut buf = [0u8; 10_000];
        let err = b.recv_frame(FrameKind::Ring, &mut buf, true).unwrap_err();
        assert_eq!(err, TransportError::Io(embedded_io::ErrorKind::InvalidData));
        // The link stays failed: later reads do not resynchronise on attacker bytes.
        let err = embedded_io::Read::read(b.link_mut(), &mut buf[..1]);
        assert!(err.is_err());
    });
}

#[test]
fn a_tampered_handshake_fails_on_both_sides() {
    let ((), _) = with_relay(Some(60), None, || {
        let (c, s) = mutual();
        let (cr, sr) = setup(c, s, Some(relay));
        assert!(matches!(sr.unwrap_err(), LinkError::Handshake { .. }));
        assert!(cr.is_err());
    });
}

#[test]
fn a_truncated_record_is_reported_as_a_closed_link() {
    let ((), _) = with_relay(None, Some(UP_HANDSHAKE + 1000), || {
        let (c, s) = mutual();
        let (cr, sr) = setup(c, s, Some(relay));
        let (mut a, mut b) = (channel(cr.unwrap().0), channel(sr.unwrap().0));
        let _ = a.send_frame(FrameKind::Ring, &[7u8; 5_000]);
        let mut buf = [0u8; 5_000];
        let err = b.recv_frame(FrameKind::Ring, &mut buf, true).unwrap_err();
        assert_eq!(err, TransportError::Closed);
    });
}

fn pattern_text(n: usize) -> Vec<u8> {
    b"PLAINTEXT-PATTERN-0123456789abcdef:"
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_capture_of_the_wire_shows_no_plaintext_no_secret_and_no_static_key() {
    let (c, s) = mutual();
    let secrets: Vec<String> = [&c.0, &s.0]
        .iter()
        .map(|i| {
            let dir = tempfile::tempdir().unwrap();
            i.save(dir.path(), false).unwrap();
            let text =
                std::fs::read_to_string(dir.path().join(format!("{}.key", i.name()))).unwrap();
            text.lines()
                .last()
                .unwrap()
                .split(' ')
                .nth(2)
                .unwrap()
                .to_string()
        })
        .collect();
    let publics = [c.0.public(), s.0.public()];
    let msg = pattern_text(1 << 20);
    let m2 = msg.clone();
    let ((), tap) = with_relay(None, None, move || {
        let (cr, sr) = setup(c, s, Some(relay));
        let (mut a, mut b) = (channel(cr.unwrap().0), channel(sr.unwrap().0));
        let echo = thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            b.recv_frame(FrameKind::Ring, &mut buf, true).unwrap();
            b.send_frame(FrameKind::Ring, &buf).unwrap();
        });
        a.send_frame(FrameKind::Ring, &m2).unwrap();
        let mut back = vec![0u8; 1 << 20];
        a.recv_frame(FrameKind::Ring, &mut back, true).unwrap();
        assert_eq!(back, m2);
        echo.join().unwrap();
    });
    assert!(tap.up.len() > 1 << 20 && tap.down.len() > 1 << 20);
    for wire in [&tap.up, &tap.down] {
        assert!(!contains(wire, &msg[..12]), "plaintext on the wire");
        for hexkey in &secrets {
            let raw = hex::decode(hexkey).unwrap();
            assert!(!contains(wire, &raw) && !contains(wire, hexkey.as_bytes()));
        }
        for p in &publics {
            assert!(!contains(wire, &p.0), "a static public key in the clear");
        }
    }
}

#[test]
fn the_capture_check_sees_plaintext_on_an_insecure_link() {
    // Control for the test above: the same relay does see an unencrypted payload.
    let ((), tap) = with_relay(None, None, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = relay(listener.local_addr().unwrap());
        let srv = thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let (l, peer) = Link::accept(s, &LinkSecurity::Insecure, &opts()).unwrap();
            assert!(matches!(peer, Peer::Unauthenticated(_)));
            let mut ch = l.channel();
            assert!(ch.has_checksum());
            let mut buf = vec![0u8; 4096];
            ch.recv_frame(FrameKind::Ring, &mut buf, true).unwrap();
        });
        let (l, _) = Link::connect(
            TcpStream::connect(target).unwrap(),
            &LinkSecurity::Insecure,
            &opts(),
        )
        .unwrap();
        let mut ch = l.channel();
        ch.send_frame(FrameKind::Ring, &pattern_text(4096)).unwrap();
        srv.join().unwrap();
    });
    assert!(contains(&tap.up, &pattern_text(12)));
}

type Results = thread::JoinHandle<Vec<(Setup, Duration)>>;

/// A server that accepts `n` connections one after another and reports each result with
/// its time; also returns a client it trusts and a trust store for that client.
fn serve(n: usize, opts: LinkOptions) -> (SocketAddr, End, Results) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let me = id("server");
    let good = id("client");
    let trust = trusting(&[&good]);
    let client = End(good, trusting(&[&me]), self::opts());
    let me2 = me.clone();
    let h = thread::spawn(move || {
        (0..n)
            .map(|_| {
                let (s, _) = listener.accept().unwrap();
                let t = Instant::now();
                let r = SecureLink::accept(s, &me2, &trust, &opts);
                (r, t.elapsed())
            })
            .collect()
    });
    (addr, client, h)
}

fn preamble(version: u8, suite: u8) -> Vec<u8> {
    let mut p = b"SECFLNK".to_vec();
    p.extend_from_slice(&[version, suite]);
    p
}

#[test]
fn hostile_bytes_at_accept_fail_cleanly_and_fast() {
    let o = LinkOptions {
        handshake_timeout: Duration::from_millis(700),
        ..opts()
    };
    let mut junk_msg3 = preamble(1, 1);
    junk_msg3.extend_from_slice(&32u16.to_be_bytes());
    junk_msg3.extend_from_slice(&[9u8; 32]);
    let mut huge_msg1 = preamble(1, 1);
    huge_msg1.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("junk", (0..64u8).map(|i| i.wrapping_mul(97)).collect()),
        (
            "http",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        ),
        ("huge length", vec![0xFF; 16]),
        ("huge message 1", huge_msg1),
        ("junk handshake", junk_msg3),
        ("insecure peer", vec![0x5F, 5, 12, 0, 0, 0, 1, 2, 3]),
        ("future version", preamble(9, 1)),
        ("port scan", vec![]),
        ("stall", b"SEC".to_vec()),
    ];
    let (addr, good, server) = serve(cases.len() + 1, o);
    for (name, bytes) in &cases {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(bytes).unwrap();
        if *name == "junk handshake" {
            // Message 2 arrives; answer with a junk message 3.
            let mut m2 = [0u8; 98];
            s.read_exact(&mut m2).unwrap();
            let mut m3 = 64u16.to_be_bytes().to_vec();
            m3.extend_from_slice(&[3u8; 64]);
            s.write_all(&m3).unwrap();
        }
        if *name == "port scan" {
            drop(s);
            continue;
        }
        if *name == "stall" {
            thread::sleep(Duration::from_millis(1000));
        }
        // Read what the server answers until it closes (bounded: it must close).
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
        assert!(
            sink.len() < 200,
            "{name}: the server sent {} bytes",
            sink.len()
        );
    }
    // The same listener still serves a good client.
    SecureLink::connect(TcpStream::connect(addr).unwrap(), &good.0, &good.1, &good.2).unwrap();
    let results = server.join().unwrap();
    for ((name, _), (r, took)) in cases.iter().zip(&results) {
        let err = r
            .as_ref()
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        let msg = err.to_string();
        let ok = match *name {
            "junk" => matches!(err, LinkError::NotALinkPeer { .. }),
            "http" => matches!(err, LinkError::NotALinkPeer { .. }) && msg.contains("GET / HT"),
            "huge length" => matches!(err, LinkError::NotALinkPeer { .. }),
            "huge message 1" => matches!(err, LinkError::Malformed { .. }) && msg.contains("65535"),
            "junk handshake" => matches!(err, LinkError::Handshake { .. }),
            "insecure peer" => msg.contains("--insecure"),
            "future version" => matches!(err, LinkError::Unsupported { .. }),
            "port scan" => matches!(err, LinkError::Closed { .. }),
            "stall" => matches!(err, LinkError::Timeout { .. }),
            _ => unreachable!(),
        };
        assert!(ok, "{name}: {err:?} ({msg})");
        assert!(msg.contains("127.0.0.1:"), "{name}: {msg}");
        let limit = if *name == "stall" { 2000 } else { 500 };
        assert!(took.as_millis() < limit, "{name} took {took:?}");
    }
    assert!(results.last().unwrap().0.is_ok());
}

/// A fake server: writes `bytes`, then closes.
fn fake_server(bytes: Vec<u8>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut pre = [0u8; 43];
        let _ = s.read_exact(&mut pre);
        let _ = s.write_all(&bytes);
        thread::sleep(Duration::from_millis(100));
    });
    addr
}

#[test]
fn hostile_bytes_at_connect_fail_cleanly_and_fast() {
    let me = id("client");
    let trust = trusting(&[&id("server")]);
    for (name, bytes) in [
        ("http", b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()),
        ("huge", vec![0xFF; 8]),
        ("empty", vec![]),
        ("refusal", vec![0, 0, 1]),
    ] {
        let addr = fake_server(bytes);
        let t = Instant::now();
        let r = SecureLink::connect(TcpStream::connect(addr).unwrap(), &me, &trust, &opts());
        let err = r.err().unwrap_or_else(|| panic!("{name}: connected"));
        let ok = match name {
            "http" | "huge" => matches!(err, LinkError::Malformed { .. }),
            "empty" => matches!(err, LinkError::Closed { .. }),
            "refusal" => matches!(err, LinkError::Refused { .. }),
            _ => unreachable!(),
        };
        assert!(ok, "{name}: {err:?}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{name}: {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn large_transfers_both_ways_at_once() {
    const FRAME: usize = 4 << 20;
    const FRAMES: usize = 32; // 128 MiB each way
    let (c, s) = mutual();
    let (cr, sr) = setup(c, s, None);
    let (a, b) = (channel(cr.unwrap().0), channel(sr.unwrap().0));
    let side = |mut ch: Channel<Link>, me: u8, them: u8| {
        thread::spawn(move || {
            let fill = |f: usize, who: u8, buf: &mut [u8]| {
                for (i, x) in buf.iter_mut().enumerate() {
                    *x = (i as u8) ^ (f as u8).wrapping_mul(31) ^ who;
                }
            };
            let (mut mine, mut theirs, mut want) =
                (vec![0u8; FRAME], vec![0u8; FRAME], vec![0u8; FRAME]);
            for f in 0..FRAMES {
                fill(f, me, &mut mine);
                ch.exchange_frame(FrameKind::Ring, &mine, &mut theirs)
                    .unwrap();
                fill(f, them, &mut want);
                assert!(theirs == want, "frame {f} differs");
            }
            let st = ch.stats();
            assert_eq!(st.payload_received, (FRAME * FRAMES) as u64);
            match ch.into_link() {
                Link::Secure(l) => l.wire_bytes_received(),
                Link::Plain(_) => unreachable!(),
            }
        })
    };
    let ta = side(a, 1, 2);
    let tb = side(b, 2, 1);
    let (wa, wb) = (ta.join().unwrap(), tb.join().unwrap());
    // Record overhead: 18 bytes per 65 519 of plaintext (plus the 6-byte frame headers).
    for w in [wa, wb] {
        let payload = (FRAME * FRAMES) as f64;
        assert!(w as f64 > payload && (w as f64) < payload * 1.001, "{w}");
    }
}

#[test]
fn the_link_args_select_security_or_say_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = on_disk(dir.path(), "p0");
    let key = dir.path().join("p0.key");
    let none = LinkArgs::default();
    let e = none.security().unwrap_err().to_string();
    assert!(e.contains("--key") && e.contains("--insecure"), "{e}");
    let no_trust = LinkArgs {
        key: Some(key.clone()),
        ..LinkArgs::default()
    };
    assert!(no_trust
        .security()
        .unwrap_err()
        .to_string()
        .contains("--trust"));
    let ok = LinkArgs {
        key: Some(key.clone()),
        trust: vec![public.clone()],
        ..LinkArgs::default()
    };
    assert!(ok.security().unwrap().is_secure());
    let insecure = LinkArgs {
        insecure: true,
        ..LinkArgs::default()
    };
    assert!(!insecure.security().unwrap().is_secure());
    // A .pub as --key and a .key as --trust are both caught.
    let swapped = LinkArgs {
        key: Some(public.clone()),
        trust: vec![key.clone()],
        ..LinkArgs::default()
    };
    assert!(swapped
        .security()
        .unwrap_err()
        .to_string()
        .contains("--key takes"));
    assert!(TrustStore::load(&[key])
        .unwrap_err()
        .to_string()
        .contains("secret"));
}

#[test]
fn key_files_round_trip_and_are_protected() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys");
    let args = KeygenArgs {
        name: "dealer".into(),
        out: out.clone(),
        force: false,
    };
    let printed = keygen(&args).unwrap();
    let (key, public) = (out.join("dealer.key"), out.join("dealer.pub"));
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let id = Identity::load(&key).unwrap();
    assert_eq!(id.name(), "dealer");
    let pub_text = std::fs::read_to_string(&public).unwrap();
    assert!(pub_text.contains(&id.public_line()) && printed.contains(&id.public_line()));
    let key_text = std::fs::read_to_string(&key).unwrap();
    let secret_hex = key_text.lines().last().unwrap().split(' ').nth(2).unwrap();
    assert_eq!(secret_hex.len(), 64);
    assert!(!pub_text.contains(secret_hex) && !printed.contains(secret_hex));
    assert!(!format!("{id:?}").contains(secret_hex));
    let t = TrustStore::load(std::slice::from_ref(&public)).unwrap();
    assert_eq!(t.name_of(&id.public()), Some("dealer"));

    // No silent overwrite; --force replaces both files with a new key.
    let e = keygen(&args).unwrap_err().to_string();
    assert!(e.contains("exists") && e.contains("--force"), "{e}");
    keygen(&KeygenArgs {
        force: true,
        ..args
    })
    .unwrap();
    let id2 = Identity::load(&key).unwrap();
    assert_ne!(id2.public(), id.public());
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A key others can read is refused, as ssh does.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Identity::load(&key).unwrap_err().to_string();
    assert!(e.contains("chmod 600"), "{e}");

    // Bad names, and one key under two names.
    assert!(Identity::generate("../evil").is_err());
    assert!(Identity::generate("").is_err());
    let twice = out.join("twice.pub");
    let text = std::fs::read_to_string(&public).unwrap();
    let renamed = text.replace("secformer-public dealer", "secformer-public other");
    std::fs::write(&twice, renamed).unwrap();
    let e = TrustStore::load(&[public, twice]).unwrap_err().to_string();
    assert!(e.contains("\"dealer\"") && e.contains("\"other\""), "{e}");
}

#[test]
fn a_peer_that_stops_reading_cannot_hang_the_sender() {
    let (mut c, mut s) = mutual();
    c.2.read_timeout = Duration::from_millis(800);
    s.2.read_timeout = Duration::from_millis(800);
    let (cr, sr) = setup(c, s, None);
    let _silent_client = cr.unwrap().0;
    let mut server = channel(sr.unwrap().0);
    let t = Instant::now();
    let chunk = vec![1u8; 8 << 20];
    let mut failed = None;
    for _ in 0..64 {
        if let Err(e) = server.send_frame(FrameKind::Ring, &chunk) {
            failed = Some(e);
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        failed,
        Some(TransportError::Io(embedded_io::ErrorKind::TimedOut))
    );
    drop(server);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn ephemeral_groups_trust_each_other_and_no_stranger() {
    let group = LinkSecurity::ephemeral_group(&["dealer", "p0", "p1"]).unwrap();
    // A stranger that knows the dealer's key, but whom the dealer does not know.
    let LinkSecurity::Authenticated {
        identity: dealer_id,
        ..
    } = &group[0]
    else {
        panic!("not authenticated")
    };
    let mut knows_dealer = TrustStore::new();
    knows_dealer.add_ephemeral(dealer_id).unwrap();
    let stranger = LinkSecurity::authenticated(Identity::generate("p1").unwrap(), knows_dealer);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dealer = group[0].clone();
    let srv = thread::spawn(move || {
        (0..3)
            .map(|_| {
                let (s, _) = listener.accept().unwrap();
                Link::accept(s, &dealer, &opts()).map(|(l, p)| (l.peer(), p))
            })
            .collect::<Vec<_>>()
    });
    let mut names = Vec::new();
    for me in [&group[1], &group[2], &stranger] {
        let r = Link::connect(TcpStream::connect(addr).unwrap(), me, &opts());
        names.push(r.map(|(_, p)| p.to_string()));
    }
    let seen = srv.join().unwrap();
    assert!(names[0].as_ref().unwrap().starts_with("dealer (key "));
    assert!(names[1].as_ref().unwrap().starts_with("dealer (key "));
    assert!(matches!(names[2], Err(LinkError::Refused { .. })));
    let (p0_link_peer, p0) = seen[0].as_ref().unwrap();
    assert_eq!(p0_link_peer, p0);
    assert!(matches!(p0, Peer::Authenticated(PeerId { name, .. }) if name == "p0"));
    assert!(matches!(&seen[1], Ok((_, Peer::Authenticated(PeerId { name, .. }))) if name == "p1"));
    assert!(matches!(seen[2], Err(LinkError::Untrusted { .. })));
}
