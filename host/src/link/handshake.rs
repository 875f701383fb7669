//! The mutually authenticated handshake: Noise `XX` over TCP with pinned static keys.
//!
//! Wire format (all lengths big-endian, as the Noise specification recommends):
//!
//! ```text
//! I -> R  preamble  "SECFLNK" 0x01 suite         9 bytes, cleartext; also the Noise prologue
//! I -> R  [u16 len] -> e                         32 bytes
//! R -> I  [u16 len] <- e, ee, s, es              96 bytes (R's static key encrypted)
//!           I checks R's static key against its trust store; if untrusted:
//!           I -> R  [0x0000][code 1]  and both close
//! I -> R  [u16 len] -> s, se                     64 bytes (I's static key encrypted)
//!           R checks I's static key; if untrusted: R -> I [0x0000][code 1], close
//! R -> I  [u16 len] transport record, nonce 0    18 bytes: "ok" under R's sending key
//! ```
//!
//! The connecting side (initiator, I) speaks first; the responder (R) sends nothing until
//! the 9-byte preamble has arrived, so junk, an HTTP request or a huge length prefix is
//! refused after reading 9 bytes. Every length is checked against the exact size the
//! pattern gives before anything is read into a fixed stack buffer: no allocation sized by
//! the peer. Nothing but handshake messages crosses the link before both keys are
//! checked; the final "ok" record confirms to the initiator that the responder accepted it
//! and derived the same keys. The zero-length refusal notice is cleartext and
//! unauthenticated: it only turns a failing handshake into a clearer message.
//!
//! Suites: `Noise_XX_25519_AESGCM_SHA256` (default) or `Noise_XX_25519_ChaChaPoly_SHA256`,
//! the suite byte of the preamble says which, so a mismatch is reported as such. X25519 runs
//! in `x25519-dalek` through `ZeroizingX25519` so that snow's copy of the static secret
//! is wiped; the AEAD and hash come from `ring` ([`Crypto::Ring`], default) or RustCrypto.
//!
//! Cost: one and a half round trips plus the 18-byte confirmation (2 RTT before the
//! initiator may send), three X25519 operations per side.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver, RingResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{Builder, HandshakeState, StatelessTransportState};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::error::{LinkError, Refusal};
use super::identity::{Identity, PublicKey, TrustStore, KEY_LEN};
use super::PeerId;

/// The first 7 bytes on every authenticated link, then the version byte.
pub const MAGIC: &[u8; 7] = b"SECFLNK";
/// The handshake and record format version.
pub const VERSION: u8 = 1;
const PREAMBLE_LEN: usize = 9;
const TAG_LEN: usize = 16;
const MSG1_LEN: usize = KEY_LEN;
const MSG2_LEN: usize = KEY_LEN + (KEY_LEN + TAG_LEN) + TAG_LEN;
const MSG3_LEN: usize = (KEY_LEN + TAG_LEN) + TAG_LEN;
const VERDICT: &[u8] = b"ok";
const VERDICT_LEN: usize = VERDICT.len() + TAG_LEN;

/// The AEAD of the transport records (both ends must agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Suite {
    /// AES-256-GCM: hardware AES and carry-less multiply make it the fastest here.
    #[default]
    AesGcm,
    /// ChaCha20-Poly1305: the choice for machines without AES instructions.
    ChaChaPoly,
}

impl Suite {
    fn code(self) -> u8 {
        match self {
            Suite::AesGcm => 1,
            Suite::ChaChaPoly => 2,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(Suite::AesGcm),
            2 => Some(Suite::ChaChaPoly),
            _ => None,
        }
    }

    /// The Noise protocol name.
    pub fn noise_name(self) -> &'static str {
        match self {
            Suite::AesGcm => "Noise_XX_25519_AESGCM_SHA256",
            Suite::ChaChaPoly => "Noise_XX_25519_ChaChaPoly_SHA256",
        }
    }
}

/// Which library computes the AEAD and the hash (a local choice, invisible on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Crypto {
    /// `ring` (assembly; AES-GCM with AES-NI/VAES and carry-less multiply).
    #[default]
    Ring,
    /// The RustCrypto crates (`aes-gcm`, `chacha20poly1305`, `sha2`).
    RustCrypto,
}

/// snow's resolver: X25519 from [`ZeroizingX25519`], the rest from `ring` or RustCrypto.
struct Resolver(Crypto);

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        DefaultResolver.resolve_rng()
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        matches!(choice, DHChoice::Curve25519)
            .then(|| Box::new(ZeroizingX25519::default()) as Box<dyn Dh>)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match self.0 {
            Crypto::Ring => RingResolver.resolve_hash(choice),
            Crypto::RustCrypto => DefaultResolver.resolve_hash(choice),
        }
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match self.0 {
            Crypto::Ring => RingResolver.resolve_cipher(choice),
            Crypto::RustCrypto => DefaultResolver.resolve_cipher(choice),
        }
    }
}

/// X25519 for snow whose secret (static or ephemeral) is wiped when dropped; snow's own
/// implementation keeps a plain array.
struct ZeroizingX25519 {
    secret: StaticSecret,
    public: [u8; KEY_LEN],
}

impl Default for ZeroizingX25519 {
    fn default() -> Self {
        ZeroizingX25519 {
            secret: StaticSecret::from([0u8; KEY_LEN]),
            public: [0; KEY_LEN],
        }
    }
}

impl Dh for ZeroizingX25519 {
    fn name(&self) -> &'static str {
        "25519"
    }
    fn pub_len(&self) -> usize {
        KEY_LEN
    }
    fn priv_len(&self) -> usize {
        KEY_LEN
    }
    fn set(&mut self, privkey: &[u8]) {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&privkey[..KEY_LEN]);
        self.secret = StaticSecret::from(*bytes);
        self.public = x25519_dalek::PublicKey::from(&self.secret).to_bytes();
    }
    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rng.try_fill_bytes(&mut bytes[..])?;
        self.set(&bytes[..]);
        Ok(())
    }
    fn pubkey(&self) -> &[u8] {
        &self.public
    }
    fn privkey(&self) -> &[u8] {
        self.secret.as_bytes()
    }
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let theirs: [u8; KEY_LEN] = pubkey
            .get(..KEY_LEN)
            .and_then(|k| k.try_into().ok())
            .ok_or(snow::Error::Dh)?;
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(theirs));
        out[..KEY_LEN].copy_from_slice(shared.as_bytes());
        Ok(())
    }
}

/// The result of a handshake: the transport keys, the first nonces, and who the peer is.
pub(crate) struct Established {
    pub transport: StatelessTransportState,
    pub send_nonce: u64,
    pub recv_nonce: u64,
    pub peer: PeerId,
}

/// Handshake I/O on a stream, bounded by one deadline for the whole handshake.
struct Wire<'a> {
    stream: &'a TcpStream,
    addr: SocketAddr,
    deadline: Instant,
    limit: Duration,
}

impl Wire<'_> {
    fn remaining(&self) -> Result<Duration, LinkError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timeout());
        }
        Ok(left)
    }

    fn timeout(&self) -> LinkError {
        LinkError::Timeout {
            addr: self.addr,
            after: self.limit,
        }
    }

    fn io(&self, during: &'static str, e: io::Error) -> LinkError {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.timeout(),
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => LinkError::Closed { addr: self.addr },
            _ => LinkError::Io {
                addr: self.addr,
                during,
                source: e,
            },
        }
    }

    /// Reads exactly `buf.len()` bytes before the deadline (a peer trickling one byte at a
    /// time cannot stretch it).
    fn read_exact(&self, buf: &mut [u8]) -> Result<(), LinkError> {
        let mut done = 0;
        while done < buf.len() {
            let left = self.remaining()?;
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| self.io("setting a timeout", e))?;
            match (&*self.stream).read(&mut buf[done..]) {
                Ok(0) => return Err(LinkError::Closed { addr: self.addr }),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io("reading the handshake", e)),
            }
        }
        Ok(())
    }

    fn write_all(&self, bytes: &[u8]) -> Result<(), LinkError> {
        let left = self.remaining()?;
        self.stream
            .set_write_timeout(Some(left))
            .map_err(|e| self.io("setting a timeout", e))?;
        (&*self.stream)
            .write_all(bytes)
            .map_err(|e| self.io("sending the handshake", e))
    }

    /// Sends one handshake message with its length.
    fn send_msg(&self, msg: &[u8]) -> Result<(), LinkError> {
        let mut buf = [0u8; 2 + 128];
        buf[..2].copy_from_slice(&(msg.len() as u16).to_be_bytes());
        buf[2..2 + msg.len()].copy_from_slice(msg);
        self.write_all(&buf[..2 + msg.len()])
    }

    /// Sends the refusal notice (best effort: we are closing anyway), then reads what the
    /// peer still sends for a moment: closing a socket with unread bytes resets the
    /// connection, and the peer would see the reset instead of the notice.
    fn send_refusal(&self, why: Refusal) {
        if self.write_all(&[0, 0, why.code()]).is_err() {
            return;
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        let until = Instant::now() + Duration::from_millis(200);
        let mut sink = [0u8; 512];
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match (&*self.stream).read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Reads one handshake message that must be exactly `len` bytes, into `buf`; a
    /// refusal notice becomes [`LinkError::Refused`].
    fn recv_msg<'b>(
        &self,
        buf: &'b mut [u8; 128],
        len: usize,
        what: &str,
        me: &Identity,
    ) -> Result<&'b [u8], LinkError> {
        let mut l = [0u8; 2];
        self.read_exact(&mut l)?;
        let got = u16::from_be_bytes(l) as usize;
        if got == 0 {
            let mut code = [0u8; 1];
            self.read_exact(&mut code)?;
            return Err(LinkError::Refused {
                addr: self.addr,
                reason: Refusal::from_code(code[0]),
                ours: me.public(),
                our_name: me.name().to_string(),
            });
        }
        if got != len {
            return Err(LinkError::Malformed {
                addr: self.addr,
                detail: format!(
                    "{what} of {got} bytes (prefix {:?}), expected {len}: not a secformer \
                     endpoint with keys, or one run with --insecure",
                    String::from_utf8_lossy(&l)
                ),
            });
        }
        self.read_exact(&mut buf[..len])?;
        Ok(&buf[..len])
    }
}

fn preamble(suite: Suite) -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    p[..7].copy_from_slice(MAGIC);
    p[7] = VERSION;
    p[8] = suite.code();
    p
}

fn builder<'a>(
    suite: Suite,
    crypto: Crypto,
    prologue: &'a [u8],
    me: &'a Identity,
) -> Result<Builder<'a>, snow::Error> {
    let params = suite.noise_name().parse()?;
    Builder::with_resolver(params, Box::new(Resolver(crypto)))
        .prologue(prologue)?
        .local_private_key(me.secret_bytes())
}

fn noise_err(addr: SocketAddr, e: snow::Error) -> LinkError {
    LinkError::Handshake {
        addr,
        detail: e.to_string(),
    }
}

/// The peer's static key, checked against the trust store.
fn authenticate(w: &Wire, hs: &HandshakeState, trust: &TrustStore) -> Result<PeerId, LinkError> {
    let key = hs
        .get_remote_static()
        .and_then(|k| <[u8; KEY_LEN]>::try_from(k).ok())
        .map(PublicKey)
        .ok_or_else(|| noise_err(w.addr, snow::Error::Decrypt))?;
    match trust.name_of(&key) {
        Some(name) => Ok(PeerId {
            name: name.to_string(),
            key,
            addr: w.addr,
        }),
        None => {
            w.send_refusal(Refusal::UntrustedKey);
            Err(LinkError::Untrusted {
                addr: w.addr,
                key,
                sources: trust.sources().to_vec(),
            })
        }
    }
}

fn peer_addr(stream: &TcpStream) -> Result<SocketAddr, LinkError> {
    stream.peer_addr().map_err(|e| LinkError::Io {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        during: "reading the peer's address",
        source: e,
    })
}

/// The connecting side's handshake (see the module docs for the messages).
pub(crate) fn initiate(
    stream: &TcpStream,
    me: &Identity,
    trust: &TrustStore,
    suite: Suite,
    crypto: Crypto,
    limit: Duration,
) -> Result<Established, LinkError> {
    let addr = peer_addr(stream)?;
    let w = Wire {
        stream,
        addr,
        deadline: Instant::now() + limit,
        limit,
    };
    let pre = preamble(suite);
    let mut hs = builder(suite, crypto, &pre, me)
        .and_then(|b| b.build_initiator())
        .map_err(|e| noise_err(addr, e))?;
    let mut msg = [0u8; 128];
    let mut first = [0u8; PREAMBLE_LEN + 2 + MSG1_LEN];
    let n = hs
        .write_message(&[], &mut msg)
        .map_err(|e| noise_err(addr, e))?;
    debug_assert_eq!(n, MSG1_LEN);
    first[..PREAMBLE_LEN].copy_from_slice(&pre);
    first[PREAMBLE_LEN..PREAMBLE_LEN + 2].copy_from_slice(&(n as u16).to_be_bytes());
    first[PREAMBLE_LEN + 2..].copy_from_slice(&msg[..n]);
    w.write_all(&first)?;

    let mut buf = [0u8; 128];
    let m2 = w.recv_msg(&mut buf, MSG2_LEN, "message 2", me)?;
    hs.read_message(m2, &mut msg)
        .map_err(|e| noise_err(addr, e))?;
    let peer = authenticate(&w, &hs, trust)?;
    let n = hs
        .write_message(&[], &mut msg)
        .map_err(|e| noise_err(addr, e))?;
    w.send_msg(&msg[..n])?;

    let transport = hs
        .into_stateless_transport_mode()
        .map_err(|e| noise_err(addr, e))?;
    let v = w.recv_msg(&mut buf, VERDICT_LEN, "confirmation", me)?;
    let n = transport
        .read_message(0, v, &mut msg)
        .map_err(|e| noise_err(addr, e))?;
    if &msg[..n] != VERDICT {
        return Err(LinkError::Malformed {
            addr,
            detail: "wrong confirmation".into(),
        });
    }
    Ok(Established {
        transport,
        send_nonce: 0,
        recv_nonce: 1,
        peer,
    })
}

/// The accepting side's handshake (see the module docs for the messages).
pub(crate) fn respond(
    stream: &TcpStream,
    me: &Identity,
    trust: &TrustStore,
    suite: Suite,
    crypto: Crypto,
    limit: Duration,
) -> Result<Established, LinkError> {
    let addr = peer_addr(stream)?;
    let w = Wire {
        stream,
        addr,
        deadline: Instant::now() + limit,
        limit,
    };
    let mut pre = [0u8; PREAMBLE_LEN];
    w.read_exact(&mut pre)?;
    check_preamble(&w, &pre, suite)?;

    let mut hs = builder(suite, crypto, &pre, me)
        .and_then(|b| b.build_responder())
        .map_err(|e| noise_err(addr, e))?;
    let mut buf = [0u8; 128];
    let mut msg = [0u8; 128];
    let m1 = w.recv_msg(&mut buf, MSG1_LEN, "message 1", me)?;
    hs.read_message(m1, &mut msg)
        .map_err(|e| noise_err(addr, e))?;
    let n = hs
        .write_message(&[], &mut msg)
        .map_err(|e| noise_err(addr, e))?;
    debug_assert_eq!(n, MSG2_LEN);
    w.send_msg(&msg[..n])?;

    let m3 = w.recv_msg(&mut buf, MSG3_LEN, "message 3", me)?;
    hs.read_message(m3, &mut msg)
        .map_err(|e| noise_err(addr, e))?;
    let peer = authenticate(&w, &hs, trust)?;
    let transport = hs
        .into_stateless_transport_mode()
        .map_err(|e| noise_err(addr, e))?;
    let n = transport
        .write_message(0, VERDICT, &mut msg)
        .map_err(|e| noise_err(addr, e))?;
    w.send_msg(&msg[..n])?;
    Ok(Established {
        transport,
        send_nonce: 1,
        recv_nonce: 0,
        peer,
    })
}

/// Both ends' transport keys from a handshake run in memory between two fresh
/// identities: for measuring the record cipher alone.
pub(crate) fn memory_pair(
    suite: Suite,
    crypto: Crypto,
) -> Result<(StatelessTransportState, StatelessTransportState), snow::Error> {
    let (a, b) = (
        Identity::generate("a").map_err(|_| snow::Error::Rng)?,
        Identity::generate("b").map_err(|_| snow::Error::Rng)?,
    );
    let pre = preamble(suite);
    let mut i = builder(suite, crypto, &pre, &a)?.build_initiator()?;
    let mut r = builder(suite, crypto, &pre, &b)?.build_responder()?;
    let (mut msg, mut out) = ([0u8; 128], [0u8; 128]);
    for step in 0..3 {
        let (from, to) = if step == 1 {
            (&mut r, &mut i)
        } else {
            (&mut i, &mut r)
        };
        let n = from.write_message(&[], &mut msg)?;
        to.read_message(&msg[..n], &mut out)?;
    }
    Ok((
        i.into_stateless_transport_mode()?,
        r.into_stateless_transport_mode()?,
    ))
}

fn check_preamble(w: &Wire, pre: &[u8; PREAMBLE_LEN], suite: Suite) -> Result<(), LinkError> {
    if &pre[..7] != MAGIC {
        return Err(LinkError::NotALinkPeer {
            addr: w.addr,
            got: format!("{:?}", String::from_utf8_lossy(pre)),
        });
    }
    let theirs = Suite::from_code(pre[8]);
    if pre[7] != VERSION || theirs != Some(suite) {
        w.send_refusal(Refusal::Unsupported);
        let suite_name = |s: Option<Suite>| s.map_or("unknown", Suite::noise_name);
        return Err(LinkError::Unsupported {
            addr: w.addr,
            detail: format!(
                "it speaks link version {} with {} (code {}); this side speaks version \
                 {VERSION} with {}",
                pre[7],
                suite_name(theirs),
                pre[8],
                suite.noise_name()
            ),
        });
    }
    Ok(())
}
