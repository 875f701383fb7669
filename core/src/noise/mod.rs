//! End-to-end authenticated encryption for links that pass through someone else's hands:
//! the Noise `IK` handshake (`Noise_IK_25519_ChaChaPoly_SHA256`, revision 34 of the Noise
//! specification) and its transport phase as a [`Transport`] wrapper, [`Sealed`].
//!
//! # Why here
//!
//! On the host every link is a TCP connection secured by `snow` (`host/src/link`). A device
//! with one serial line reaches the dealer D only through P0's process, which relays D's
//! frames: that relay must not read P1's seed or corrections. So P1 and D run their own
//! handshake inside the relayed frames, and the device needs it without a heap: this module
//! is `no_std`, allocation-free and `forbid(unsafe_code)`, built from RustCrypto's
//! `x25519-dalek`, `chacha20poly1305`, `sha2` and `hmac`. The host uses the same code for
//! its end of those links; a test checks every message against `snow` (the reference
//! implementation the host's TCP links use), so this is standard Noise, not a look-alike.
//!
//! # The pattern
//!
//! ```text
//! IK:
//!   <- s                      the initiator (the device) knows the responder's key
//!   ...
//!   -> e, es, s, ss           [payload 1]
//!   <- e, ee, se              [payload 2]
//! ```
//!
//! The initiator pins the responder's static key (provisioned on the device); the
//! responder learns the initiator's static key from message 1 and checks it against its
//! own trust list before it answers. Message 2's payload (D's hello with P1's seed) is
//! encrypted to a key that needs both the initiator's ephemeral and static secrets, so
//! nothing secret goes to a peer before it is authenticated. Both ephemerals make every
//! session's keys fresh: a replayed message 2 from an old session does not decrypt.
//!
//! # Transport
//!
//! After the handshake each direction has a [`CipherState`] (ChaCha20-Poly1305, key from
//! `Split()`, 64-bit counter nonce). [`Sealed`] encrypts every frame's payload and appends
//! the 16-byte tag; frames must arrive in order (a lost, repeated or reordered frame fails
//! authentication). Two kinds are exceptions, see [`Seal::of`]: `Error` frames go in the
//! clear (a relay must be able to report its own failures; the worst a forged one does is
//! end the session), and `DealerRequest` frames are authenticated but readable (their
//! content is the public shape of the computation, which P0 knows anyway, and the relay
//! needs it to count the dealer's answer frames).
//!
//! # Cost
//!
//! Handshake: 96 + payload bytes one way, 48 + payload the other, one round trip, three
//! X25519 operations on each side. Transport: 16 bytes per frame, one ChaCha20-Poly1305
//! pass over each payload.

mod sealed;

pub use sealed::{Seal, SealBuf, Sealed};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::transport::TransportError;

/// Bytes of an X25519 key and of a ChaCha20-Poly1305 key.
pub const KEY_LEN: usize = 32;
/// Bytes of a Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Message 1's bytes beyond its payload: `e`, encrypted `s` and the payload's tag.
pub const MSG1_OVERHEAD: usize = KEY_LEN + KEY_LEN + TAG_LEN + TAG_LEN;
/// Message 2's bytes beyond its payload: `e` and the payload's tag.
pub const MSG2_OVERHEAD: usize = KEY_LEN + TAG_LEN;
/// The Noise protocol name (exactly 32 bytes, so it is the initial hash as is).
pub const PROTOCOL_NAME: &[u8; 32] = b"Noise_IK_25519_ChaChaPoly_SHA256";

fn fail(what: &'static str) -> TransportError {
    TransportError::Handshake(what)
}

/// A static X25519 key pair (the secret is wiped on drop).
pub struct StaticKey {
    secret: StaticSecret,
    public: [u8; KEY_LEN],
}

impl StaticKey {
    /// The key pair of a 32-byte secret (clamped by X25519).
    pub fn from_secret(mut bytes: [u8; KEY_LEN]) -> Self {
        let secret = StaticSecret::from(bytes);
        bytes.zeroize();
        let public = PublicKey::from(&secret).to_bytes();
        StaticKey { secret, public }
    }

    /// The public key.
    pub fn public(&self) -> [u8; KEY_LEN] {
        self.public
    }

    fn dh(&self, theirs: &[u8; KEY_LEN]) -> Result<[u8; KEY_LEN], TransportError> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(*theirs));
        // A low-order point would make the shared secret a constant known to anyone.
        if !shared.was_contributory() {
            return Err(fail("the peer sent a low-order public key"));
        }
        Ok(shared.to_bytes())
    }
}

/// One direction of the transport: a key and the next nonce.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct CipherState {
    key: [u8; KEY_LEN],
    n: u64,
}

impl CipherState {
    fn new(key: [u8; KEY_LEN]) -> Self {
        CipherState { key, n: 0 }
    }

    fn next_nonce(&mut self) -> Result<Nonce, TransportError> {
        // Noise reserves 2^64 - 1; a session never gets near it, but a nonce must never
        // repeat, so stop rather than wrap.
        if self.n == u64::MAX {
            return Err(fail("nonce space exhausted"));
        }
        let mut nonce = Nonce::default();
        nonce[4..].copy_from_slice(&self.n.to_le_bytes());
        self.n += 1;
        Ok(nonce)
    }

    /// Encrypts `buf` in place with associated data `ad`; returns the tag.
    pub fn encrypt(&mut self, ad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN], TransportError> {
        let nonce = self.next_nonce()?;
        let aead = ChaCha20Poly1305::new(Key::from_slice(&self.key));
        let tag = aead
            .encrypt_in_place_detached(&nonce, ad, buf)
            .map_err(|_| fail("encryption failed"))?;
        Ok(tag.into())
    }

    /// Decrypts `buf` in place, checking `tag` over it and `ad`.
    pub fn decrypt(&mut self, ad: &[u8], buf: &mut [u8], tag: &[u8]) -> Result<(), TransportError> {
        if tag.len() != TAG_LEN {
            return Err(TransportError::Unauthentic);
        }
        let nonce = self.next_nonce()?;
        let aead = ChaCha20Poly1305::new(Key::from_slice(&self.key));
        aead.decrypt_in_place_detached(&nonce, ad, buf, Tag::from_slice(tag))
            .map_err(|_| TransportError::Unauthentic)
    }
}

fn hmac(key: &[u8; KEY_LEN], parts: &[&[u8]]) -> [u8; KEY_LEN] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Noise's `HKDF(chaining_key, input_key_material, 2)`.
fn hkdf2(ck: &[u8; KEY_LEN], ikm: &[u8]) -> ([u8; KEY_LEN], [u8; KEY_LEN]) {
    let mut temp = hmac(ck, &[ikm]);
    let o1 = hmac(&temp, &[&[1]]);
    let o2 = hmac(&temp, &[&o1, &[2]]);
    temp.zeroize();
    (o1, o2)
}

/// Noise's `SymmetricState`: chaining key, handshake hash, and the current key.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Symmetric {
    ck: [u8; KEY_LEN],
    h: [u8; KEY_LEN],
    k: Option<CipherState>,
}

impl Symmetric {
    fn new(prologue: &[u8]) -> Self {
        let mut s = Symmetric {
            ck: *PROTOCOL_NAME,
            h: *PROTOCOL_NAME,
            k: None,
        };
        s.mix_hash(prologue);
        s
    }

    fn mix_hash(&mut self, data: &[u8]) {
        let mut d = Sha256::new();
        d.update(self.h);
        d.update(data);
        self.h = d.finalize().into();
    }

    fn mix_key(&mut self, mut dh: [u8; KEY_LEN]) {
        let (ck, k) = hkdf2(&self.ck, &dh);
        dh.zeroize();
        self.ck = ck;
        self.k = Some(CipherState::new(k));
    }

    /// Encrypts `buf[..len]` (if a key is set) and appends the tag; returns the length
    /// written.
    fn encrypt_and_hash(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransportError> {
        let out = match &mut self.k {
            Some(k) => {
                if buf.len() < len + TAG_LEN {
                    return Err(fail("handshake buffer too small"));
                }
                let tag = k.encrypt(&self.h, &mut buf[..len])?;
                buf[len..len + TAG_LEN].copy_from_slice(&tag);
                len + TAG_LEN
            }
            None => len,
        };
        self.mix_hash(&buf[..out]);
        Ok(out)
    }

    /// Decrypts `buf` (ciphertext and tag) in place; returns the plaintext length.
    fn decrypt_and_hash(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let ad = self.h;
        self.mix_hash(buf);
        match &mut self.k {
            Some(k) => {
                let n = buf
                    .len()
                    .checked_sub(TAG_LEN)
                    .ok_or(TransportError::Unauthentic)?;
                let (ct, tag) = buf.split_at_mut(n);
                k.decrypt(&ad, ct, tag)?;
                Ok(n)
            }
            None => Ok(buf.len()),
        }
    }

    fn split(&self) -> (CipherState, CipherState) {
        let (k1, k2) = hkdf2(&self.ck, &[]);
        (CipherState::new(k1), CipherState::new(k2))
    }
}

/// The keys a finished handshake gives one side.
pub struct Keys {
    /// Encrypts what this side sends.
    pub send: CipherState,
    /// Decrypts what this side receives.
    pub recv: CipherState,
    /// The handshake hash (the same on both sides: a channel binding).
    pub handshake_hash: [u8; KEY_LEN],
}

/// The initiator of `IK` (the device): it knows the responder's static key.
pub struct Initiator<'k> {
    sym: Symmetric,
    s: &'k StaticKey,
    e: StaticKey,
    rs: [u8; KEY_LEN],
}

impl<'k> Initiator<'k> {
    /// Starts a handshake as `s` to the responder whose static key is `rs`, with 32 fresh
    /// random bytes for the ephemeral key and a prologue both sides must agree on.
    pub fn new(
        s: &'k StaticKey,
        rs: [u8; KEY_LEN],
        entropy: [u8; KEY_LEN],
        prologue: &[u8],
    ) -> Self {
        let mut sym = Symmetric::new(prologue);
        sym.mix_hash(&rs);
        Initiator {
            sym,
            s,
            e: StaticKey::from_secret(entropy),
            rs,
        }
    }

    /// Writes message 1 (`e, es, s, ss`, then `payload` encrypted) into `out`; returns its
    /// length, `MSG1_OVERHEAD + payload.len()`.
    pub fn write_message_1(
        &mut self,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, TransportError> {
        let total = MSG1_OVERHEAD + payload.len();
        if out.len() < total {
            return Err(fail("handshake buffer too small"));
        }
        let e = self.e.public();
        out[..KEY_LEN].copy_from_slice(&e);
        self.sym.mix_hash(&e);
        self.sym.mix_key(self.e.dh(&self.rs)?);
        out[KEY_LEN..2 * KEY_LEN].copy_from_slice(&self.s.public());
        let n = self.sym.encrypt_and_hash(&mut out[KEY_LEN..], KEY_LEN)?;
        self.sym.mix_key(self.s.dh(&self.rs)?);
        let at = KEY_LEN + n;
        out[at..at + payload.len()].copy_from_slice(payload);
        let m = self.sym.encrypt_and_hash(&mut out[at..], payload.len())?;
        Ok(at + m)
    }

    /// Reads message 2 (`e, ee, se`, payload) in place: returns the transport keys and the
    /// payload's length (the payload is decrypted at `msg[KEY_LEN..]`).
    pub fn read_message_2(mut self, msg: &mut [u8]) -> Result<(Keys, usize), TransportError> {
        if msg.len() < MSG2_OVERHEAD {
            return Err(fail("message 2 is too short"));
        }
        let mut re = [0u8; KEY_LEN];
        re.copy_from_slice(&msg[..KEY_LEN]);
        self.sym.mix_hash(&re);
        self.sym.mix_key(self.e.dh(&re)?);
        self.sym.mix_key(self.s.dh(&re)?);
        let n = self
            .sym
            .decrypt_and_hash(&mut msg[KEY_LEN..])
            .map_err(|_| fail("message 2 does not authenticate (not the pinned responder?)"))?;
        let (send, recv) = self.sym.split();
        let keys = Keys {
            send,
            recv,
            handshake_hash: self.sym.h,
        };
        Ok((keys, n))
    }
}

/// The responder of `IK` (D, or P0 for the device's peer link).
pub struct Responder<'k> {
    sym: Symmetric,
    s: &'k StaticKey,
    e: StaticKey,
    re: [u8; KEY_LEN],
    rs: [u8; KEY_LEN],
}

impl<'k> Responder<'k> {
    /// Waits for a handshake to `s`, with 32 fresh random bytes for the ephemeral key.
    pub fn new(s: &'k StaticKey, entropy: [u8; KEY_LEN], prologue: &[u8]) -> Self {
        let mut sym = Symmetric::new(prologue);
        sym.mix_hash(&s.public());
        Responder {
            sym,
            s,
            e: StaticKey::from_secret(entropy),
            re: [0; KEY_LEN],
            rs: [0; KEY_LEN],
        }
    }

    /// Reads message 1 in place: returns the initiator's static key (check it against the
    /// trust list before answering) and the payload's length (decrypted at
    /// `msg[MSG1_OVERHEAD - TAG_LEN..]`).
    pub fn read_message_1(
        &mut self,
        msg: &mut [u8],
    ) -> Result<([u8; KEY_LEN], usize), TransportError> {
        if msg.len() < MSG1_OVERHEAD {
            return Err(fail("message 1 is too short"));
        }
        self.re.copy_from_slice(&msg[..KEY_LEN]);
        self.sym.mix_hash(&self.re);
        self.sym.mix_key(self.s.dh(&self.re)?);
        let bad = |_| fail("message 1 does not authenticate (sent to another key?)");
        self.sym
            .decrypt_and_hash(&mut msg[KEY_LEN..KEY_LEN + KEY_LEN + TAG_LEN])
            .map_err(bad)?;
        self.rs.copy_from_slice(&msg[KEY_LEN..2 * KEY_LEN]);
        self.sym.mix_key(self.s.dh(&self.rs)?);
        let n = self
            .sym
            .decrypt_and_hash(&mut msg[MSG1_OVERHEAD - TAG_LEN..])
            .map_err(bad)?;
        Ok((self.rs, n))
    }

    /// Writes message 2 (`e, ee, se`, then `payload` encrypted) into `out`: returns the
    /// transport keys and its length, `MSG2_OVERHEAD + payload.len()`.
    pub fn write_message_2(
        mut self,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<(Keys, usize), TransportError> {
        let total = MSG2_OVERHEAD + payload.len();
        if out.len() < total {
            return Err(fail("handshake buffer too small"));
        }
        let e = self.e.public();
        out[..KEY_LEN].copy_from_slice(&e);
        self.sym.mix_hash(&e);
        self.sym.mix_key(self.e.dh(&self.re)?);
        self.sym.mix_key(self.e.dh(&self.rs)?);
        out[KEY_LEN..KEY_LEN + payload.len()].copy_from_slice(payload);
        let n = self
            .sym
            .encrypt_and_hash(&mut out[KEY_LEN..], payload.len())?;
        let (c1, c2) = self.sym.split();
        let keys = Keys {
            send: c2,
            recv: c1,
            handshake_hash: self.sym.h,
        };
        Ok((keys, KEY_LEN + n))
    }
}

/// The 32-byte key of the first `TAG NAME HEX` line of a key file's text (the format of
/// `secformer keygen`'s `.key` and `.pub` files; `#` lines are comments), for endpoints
/// without the host's file code (the firmware reads its provisioned keys with it).
pub fn parse_key_file(text: &str, tag: &str) -> Option<[u8; KEY_LEN]> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    let mut parts = line.split_ascii_whitespace();
    let (t, _name, hex, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next());
    if t != tag || rest.is_some() || hex.len() != 2 * KEY_LEN {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        key[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(key)
}
