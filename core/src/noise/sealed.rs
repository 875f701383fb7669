//! [`Sealed`]: a [`Transport`] whose frames are encrypted end to end with the keys of a
//! Noise handshake, and the handshake run over frames of a transport.

use super::{
    CipherState, Initiator, Keys, Responder, StaticKey, KEY_LEN, MSG1_OVERHEAD, MSG2_OVERHEAD,
    TAG_LEN,
};
use crate::transport::{FrameKind, Stats, Transport, TransportError, MAX_CONTROL_LEN};

/// Room for one sealed frame: a caller's fixed buffer (no heap) or a growable `Vec`.
pub trait SealBuf {
    /// The first `len` bytes, if the buffer can hold them.
    fn room(&mut self, len: usize) -> Option<&mut [u8]>;
    /// The most bytes it can hold.
    fn capacity(&self) -> usize;
}

impl SealBuf for &mut [u8] {
    fn room(&mut self, len: usize) -> Option<&mut [u8]> {
        self.get_mut(..len)
    }
    fn capacity(&self) -> usize {
        self.len()
    }
}

#[cfg(feature = "alloc")]
impl SealBuf for alloc::vec::Vec<u8> {
    fn room(&mut self, len: usize) -> Option<&mut [u8]> {
        if self.len() < len {
            self.resize(len, 0);
        }
        Some(&mut self[..len])
    }
    fn capacity(&self) -> usize {
        usize::MAX
    }
}

/// How a frame kind crosses a sealed link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// Encrypted and authenticated (everything but the two below).
    Encrypted,
    /// Authenticated, readable: `DealerRequest` (public shapes a relay must count).
    Authenticated,
    /// As is: `Error` (a relay reports its own failures with it).
    Clear,
}

impl Seal {
    /// The treatment of `kind`.
    pub fn of(kind: FrameKind) -> Seal {
        match kind {
            FrameKind::Error => Seal::Clear,
            FrameKind::DealerRequest => Seal::Authenticated,
            _ => Seal::Encrypted,
        }
    }
}

/// A transport whose payloads are sealed with a finished handshake's keys: each sealed
/// frame carries a 16-byte tag, and the counters of the inner transport count it.
pub struct Sealed<T, B> {
    inner: T,
    send: CipherState,
    recv: CipherState,
    tx: B,
    rx: B,
    handshake_hash: [u8; KEY_LEN],
}

/// The first `len` bytes of `buf`, or a length error naming its capacity (a frame larger
/// than the sealing buffer).
fn room<B: SealBuf>(buf: &mut B, len: usize) -> Result<&mut [u8], TransportError> {
    let capacity = buf.capacity() as u64;
    buf.room(len).ok_or(TransportError::Length {
        expected: capacity,
        got: len as u64,
    })
}

impl<T: Transport, B: SealBuf> Sealed<T, B> {
    /// Wraps `inner` with the keys of a finished handshake and two buffers, each as large
    /// as the largest frame (payload and tag) it will carry in its direction.
    pub fn new(inner: T, keys: Keys, tx: B, rx: B) -> Self {
        Sealed {
            inner,
            send: keys.send,
            recv: keys.recv,
            tx,
            rx,
            handshake_hash: keys.handshake_hash,
        }
    }

    /// Runs `IK` as the initiator over `inner` (message 1 and 2 are frames of `kind`):
    /// sends `payload` to the responder pinned by `peer`, and returns the sealed link and
    /// the length of the responder's payload, which is left in `reply`.
    pub fn initiate(
        mut inner: T,
        kind: FrameKind,
        hs: Initiator<'_>,
        payload: &[u8],
        mut tx: B,
        mut rx: B,
        reply: &mut [u8],
    ) -> Result<(Self, usize), TransportError> {
        let mut hs = hs;
        let len = MSG1_OVERHEAD + payload.len();
        let out = room(&mut tx, len)?;
        let n = hs.write_message_1(payload, out)?;
        inner.send_frame(kind, &out[..n])?;
        let cap = MSG2_OVERHEAD + reply.len();
        let msg = room(&mut rx, cap)?;
        let got = inner.recv_frame(kind, msg, false)?;
        let (keys, m) = hs.read_message_2(&mut msg[..got])?;
        reply[..m].copy_from_slice(&msg[KEY_LEN..KEY_LEN + m]);
        Ok((Self::new(inner, keys, tx, rx), m))
    }

    /// Runs `IK` as the responder over `inner`: reads message 1 (its payload of at most
    /// `request.len()` bytes is left in `request`), asks `answer` for the reply payload
    /// given the initiator's static key and that payload (an `Err` refuses the peer: the
    /// handshake stops there, nothing is sent), and sends it. Returns the sealed link, the
    /// initiator's static key and the length of its payload.
    pub fn respond<F>(
        mut inner: T,
        kind: FrameKind,
        s: &StaticKey,
        entropy: [u8; KEY_LEN],
        prologue: &[u8],
        mut tx: B,
        mut rx: B,
        request: &mut [u8],
        answer: F,
    ) -> Result<(Self, [u8; KEY_LEN], usize), TransportError>
    where
        F: FnOnce(&[u8; KEY_LEN], &[u8], &mut [u8]) -> Result<usize, TransportError>,
    {
        let mut hs = Responder::new(s, entropy, prologue);
        let cap = MSG1_OVERHEAD + request.len();
        let msg = room(&mut rx, cap)?;
        let got = inner.recv_frame(kind, msg, false)?;
        // A refused initiator learns that much, in the clear, and nothing else.
        let (peer, n) = hs
            .read_message_1(&mut msg[..got])
            .inspect_err(|_| inner.send_error("the responder refused the handshake"))?;
        let at = MSG1_OVERHEAD - TAG_LEN;
        request[..n].copy_from_slice(&msg[at..at + n]);
        let mut payload = [0u8; MAX_CONTROL_LEN];
        let plen = answer(&peer, &request[..n], &mut payload)
            .inspect_err(|_| inner.send_error("the responder refused this key or hello"))?;
        let cap = MSG2_OVERHEAD + plen;
        let out = room(&mut tx, cap)?;
        let (keys, len) = hs.write_message_2(&payload[..plen], out)?;
        inner.send_frame(kind, &out[..len])?;
        Ok((Self::new(inner, keys, tx, rx), peer, n))
    }

    /// The handshake hash both sides share (binds anything else to this session).
    pub fn handshake_hash(&self) -> &[u8; KEY_LEN] {
        &self.handshake_hash
    }

    /// The inner transport.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Seals `payload` into the send buffer; returns the sealed frame's length.
    fn seal(&mut self, kind: FrameKind, payload: &[u8]) -> Result<usize, TransportError> {
        let len = payload.len() + TAG_LEN;
        let out = room(&mut self.tx, len)?;
        let (body, tag_at) = out.split_at_mut(payload.len());
        body.copy_from_slice(payload);
        let tag = match Seal::of(kind) {
            Seal::Authenticated => self.send.encrypt(payload, &mut [])?,
            _ => self.send.encrypt(&[kind as u8], body)?,
        };
        tag_at.copy_from_slice(&tag);
        Ok(len)
    }

    /// Opens the sealed frame `self.rx[..len]` into `out`; returns the payload's length.
    fn open(
        &mut self,
        kind: FrameKind,
        len: usize,
        out: &mut [u8],
    ) -> Result<usize, TransportError> {
        let n = len
            .checked_sub(TAG_LEN)
            .ok_or(TransportError::Unauthentic)?;
        let buf = room(&mut self.rx, len)?;
        let (body, tag) = buf.split_at_mut(n);
        match Seal::of(kind) {
            Seal::Authenticated => self.recv.decrypt(body, &mut [], tag)?,
            _ => self.recv.decrypt(&[kind as u8], body, tag)?,
        }
        out[..n].copy_from_slice(body);
        Ok(n)
    }
}

impl<T: Transport, B: SealBuf> Transport for Sealed<T, B> {
    fn send_frame(&mut self, kind: FrameKind, payload: &[u8]) -> Result<(), TransportError> {
        if Seal::of(kind) == Seal::Clear {
            return self.inner.send_frame(kind, payload);
        }
        let len = self.seal(kind, payload)?;
        let out = room(&mut self.tx, len)?;
        self.inner.send_frame(kind, out)
    }

    fn recv_frame(
        &mut self,
        kind: FrameKind,
        buf: &mut [u8],
        exact: bool,
    ) -> Result<usize, TransportError> {
        if Seal::of(kind) == Seal::Clear {
            return self.inner.recv_frame(kind, buf, exact);
        }
        let cap = buf.len() + TAG_LEN;
        let rx = room(&mut self.rx, cap)?;
        let got = self.inner.recv_frame(kind, rx, exact)?;
        self.open(kind, got, buf)
    }

    fn exchange_frame(
        &mut self,
        kind: FrameKind,
        mine: &[u8],
        theirs: &mut [u8],
    ) -> Result<(), TransportError> {
        let len = self.seal(kind, mine)?;
        let cap = theirs.len() + TAG_LEN;
        let out = room(&mut self.tx, len)?;
        let rx = room(&mut self.rx, cap)?;
        self.inner.exchange_frame(kind, out, rx)?;
        self.open(kind, cap, theirs)?;
        Ok(())
    }

    fn stats(&self) -> Stats {
        self.inner.stats()
    }

    fn stats_mut(&mut self) -> &mut Stats {
        self.inner.stats_mut()
    }

    fn send_error(&mut self, msg: &str) {
        self.inner.send_error(msg)
    }
}
