//! Byte transports between the parties and to the dealer.
//!
//! * [`Transport`]: the small trait every protocol is generic over: send a frame, receive a
//!   frame, exchange frames (send mine, receive theirs) without deadlocking on large
//!   messages, and report [`Stats`]. Provided helpers move ring words, packed bits and
//!   postcard control messages.
//! * [`Channel`]: the framing over any `embedded_io::Read + Write` link. A frame is
//!   `[0x5F][kind: u8][len: u32 LE] payload [crc32: u32 LE]`; ring data is raw
//!   little-endian `u64`s, control messages are postcard. A wrong kind, a length other
//!   than expected, a bad checksum, a truncated frame or a closed link is an error on the
//!   receiving side; a party that fails sends an `Error` frame so the peer learns why.
//!   Over a link that authenticates every byte itself (an AEAD record layer), both ends
//!   build the channel with [`Channel::without_checksum`] and frames have no CRC trailer.
//! * `mem` (feature `std`): an in-memory duplex pair for two-thread tests.
//!
//! Accounting: `bytes_*` count wire bytes (headers and checksums included), `payload_*`
//! the protocol data only (what protocol docs give formulas for), and `rounds` counts
//! communication steps a party waits on: each `exchange` and each `recv` is one round, a
//! `send` alone is none.

mod channel;
#[cfg(feature = "std")]
pub mod mem;

pub use channel::{Channel, FRAME_OVERHEAD, MAX_FRAME_LEN};

use core::fmt;

use serde::{de::DeserializeOwned, Serialize};

/// What a frame carries. Receivers state the kind they expect; anything else is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Connection handshake (postcard).
    Hello = 1,
    /// Control message (postcard).
    Control = 2,
    /// Ring words (`u64` little-endian).
    Ring = 3,
    /// Packed bits (bit `i` is bit `i % 8` of byte `i / 8`).
    Bits = 4,
    /// A request to the dealer (postcard).
    DealerRequest = 5,
    /// Correlated randomness (corrections) from the dealer.
    DealerData = 6,
    /// The dealer's acknowledgement of a request.
    Ack = 7,
    /// The sender failed; the payload is a UTF-8 message.
    Error = 8,
    /// Orderly end of a session.
    Bye = 9,
}

impl FrameKind {
    /// The kind of a header byte.
    pub fn from_u8(b: u8) -> Option<FrameKind> {
        use FrameKind::*;
        Some(match b {
            1 => Hello,
            2 => Control,
            3 => Ring,
            4 => Bits,
            5 => DealerRequest,
            6 => DealerData,
            7 => Ack,
            8 => Error,
            9 => Bye,
            _ => return None,
        })
    }
}

/// Why a transport operation failed. Carries sizes and kinds, never payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// The link failed (I/O error kind from `embedded-io`, e.g. `TimedOut`).
    Io(embedded_io::ErrorKind),
    /// The peer closed the link before a whole frame arrived.
    Closed,
    /// A frame did not start with the magic byte (wrong peer, wrong protocol, or corruption).
    BadMagic(u8),
    /// A frame of an unknown kind byte.
    UnknownKind(u8),
    /// A frame of another kind than expected.
    WrongKind {
        /// What the receiver expected.
        expected: FrameKind,
        /// What arrived.
        got: FrameKind,
    },
    /// A frame whose length is not what the receiver expects (or exceeds its buffer).
    Length {
        /// The expected length, or the capacity for variable-length frames.
        expected: u64,
        /// The announced length.
        got: u64,
    },
    /// The frame's checksum does not match (corruption on the line).
    Checksum,
    /// A control message could not be encoded or decoded.
    Codec,
    /// A message exceeds the largest frame.
    TooLarge(u64),
    /// The peer reported an error (its message, truncated to 96 bytes).
    Peer(heapless::String<96>),
    /// A sealed frame failed authentication (altered, replayed, reordered or forged).
    Unauthentic,
    /// A handshake failed (what went wrong; never key material).
    Handshake(&'static str),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Io(k) => match k {
                embedded_io::ErrorKind::TimedOut => {
                    write!(f, "timed out waiting for the other side")
                }
                k => write!(f, "link I/O error ({k:?})"),
            },
            TransportError::Closed => write!(f, "the other side closed the connection"),
            TransportError::BadMagic(b) => write!(
                f,
                "malformed frame: bad magic byte 0x{b:02x} (not a secformer peer, or corrupted line)"
            ),
            TransportError::UnknownKind(b) => write!(f, "malformed frame: unknown kind {b}"),
            TransportError::WrongKind { expected, got } => {
                write!(f, "unexpected frame: expected {expected:?}, got {got:?}")
            }
            TransportError::Length { expected, got } => write!(
                f,
                "unexpected frame length: expected {expected} bytes, peer announced {got}"
            ),
            TransportError::Checksum => write!(f, "frame checksum mismatch (corrupted line)"),
            TransportError::Codec => write!(f, "malformed control message"),
            TransportError::TooLarge(n) => write!(f, "message of {n} bytes exceeds the frame limit"),
            TransportError::Peer(m) => write!(f, "the other side reported: {m}"),
            TransportError::Unauthentic => write!(
                f,
                "a sealed frame failed authentication (altered, replayed or forged on the way)"
            ),
            TransportError::Handshake(what) => write!(f, "handshake failed: {what}"),
        }
    }
}

impl core::error::Error for TransportError {}

/// Traffic counters of one transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Wire bytes sent (framing included).
    pub bytes_sent: u64,
    /// Wire bytes received (framing included).
    pub bytes_received: u64,
    /// Protocol payload bytes sent.
    pub payload_sent: u64,
    /// Protocol payload bytes received.
    pub payload_received: u64,
    /// Communication rounds this party waited on.
    pub rounds: u64,
    /// Frames sent.
    pub frames_sent: u64,
}

impl Stats {
    /// The difference `self - earlier` (counters since `earlier` was taken).
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
            bytes_received: self.bytes_received - earlier.bytes_received,
            payload_sent: self.payload_sent - earlier.payload_sent,
            payload_received: self.payload_received - earlier.payload_received,
            rounds: self.rounds - earlier.rounds,
            frames_sent: self.frames_sent - earlier.frames_sent,
        }
    }
}

/// Largest postcard control message, in bytes.
pub const MAX_CONTROL_LEN: usize = 512;

/// A framed, accounted, bidirectional byte transport to one other endpoint.
pub trait Transport {
    /// Sends one frame (buffered links flush before returning).
    fn send_frame(&mut self, kind: FrameKind, payload: &[u8]) -> Result<(), TransportError>;

    /// Receives one frame of `kind` into `buf`. With `exact`, the frame must be exactly
    /// `buf.len()` bytes; otherwise at most that, and the length is returned.
    fn recv_frame(
        &mut self,
        kind: FrameKind,
        buf: &mut [u8],
        exact: bool,
    ) -> Result<usize, TransportError>;

    /// Sends `mine` and receives exactly `theirs.len()` bytes as one frame each way,
    /// interleaved so that neither side blocks forever on a large message.
    fn exchange_frame(
        &mut self,
        kind: FrameKind,
        mine: &[u8],
        theirs: &mut [u8],
    ) -> Result<(), TransportError>;

    /// The counters so far.
    fn stats(&self) -> Stats;

    /// Mutable counters (the provided helpers count rounds here).
    fn stats_mut(&mut self) -> &mut Stats;

    /// Tells the other side this endpoint failed (best effort; errors are ignored because
    /// the link may be what failed).
    fn send_error(&mut self, msg: &str) {
        let b = msg.as_bytes();
        let _ = self.send_frame(FrameKind::Error, &b[..b.len().min(96)]);
    }

    /// Exchanges ring words: one round, `8 * len` payload bytes each way.
    fn exchange_u64(&mut self, mine: &[u64], theirs: &mut [u64]) -> Result<(), TransportError> {
        let mut off = 0;
        let step = MAX_FRAME_LEN / 8;
        // Messages larger than a frame go as several frames but count as one round.
        loop {
            let end_m = (off + step).min(mine.len());
            let end_t = (off + step).min(theirs.len());
            let (sm, st) = (off.min(mine.len()), off.min(theirs.len()));
            let (m, t) = (&mine[sm..end_m], &mut theirs[st..end_t]);
            self.exchange_frame(
                FrameKind::Ring,
                bytemuck::cast_slice(m),
                bytemuck::cast_slice_mut(t),
            )?;
            off += step;
            if off >= mine.len() && off >= theirs.len() {
                break;
            }
        }
        self.stats_mut().rounds += 1;
        Ok(())
    }

    /// Exchanges the low `width` bytes of each word (`width` 1..=8): one round,
    /// `width * len` payload bytes each way. `mine` is unchanged modulo `2^(8 width)` and
    /// zero above; `theirs` is zero-extended. For values needed only modulo `2^(8 width)`.
    fn exchange_narrow(
        &mut self,
        mine: &mut [u64],
        theirs: &mut [u64],
        width: u8,
    ) -> Result<(), TransportError> {
        let n = mine.len();
        self.exchange_narrow_then_words(mine, theirs, n, width)
    }

    /// As [`Transport::exchange_narrow`] for the first `narrow` words of `mine` and
    /// `theirs` (the same count on both sides), followed in the same message by the
    /// remaining words in full (such as packed bits): one round,
    /// `width * narrow + 8 * (len - narrow)` payload bytes each way.
    fn exchange_narrow_then_words(
        &mut self,
        mine: &mut [u64],
        theirs: &mut [u64],
        narrow: usize,
        width: u8,
    ) -> Result<(), TransportError> {
        let w = width.clamp(1, 8) as usize;
        if w == 8 {
            return self.exchange_u64(mine, theirs);
        }
        if narrow > mine.len() || narrow > theirs.len() {
            return Err(TransportError::Length {
                expected: narrow as u64,
                got: mine.len().min(theirs.len()) as u64,
            });
        }
        let len = |words: usize| narrow * w + 8 * (words - narrow);
        let (nm, nt) = (len(mine.len()), len(theirs.len()));
        if nm.max(nt) > MAX_FRAME_LEN {
            return Err(TransportError::TooLarge(nm.max(nt) as u64));
        }
        // Narrow the head in place and move the full words down behind it.
        crate::dealer::draw::narrow_in_place(&mut mine[..narrow], w as u8);
        let mb: &mut [u8] = bytemuck::cast_slice_mut(&mut mine[..]);
        mb.copy_within(8 * narrow.., narrow * w);
        let res = {
            let t: &mut [u8] = bytemuck::cast_slice_mut(&mut theirs[..]);
            self.exchange_frame(FrameKind::Ring, &mb[..nm], &mut t[..nt])
        };
        // Restore ours (the tail back in place, the head widened), then widen theirs.
        for (words, total) in [(&mut *mine, nm), (&mut *theirs, nt)] {
            let b: &mut [u8] = bytemuck::cast_slice_mut(&mut words[..]);
            b.copy_within(narrow * w..total, 8 * narrow);
            crate::dealer::draw::widen_in_place(&mut words[..narrow], w as u8);
        }
        res?;
        self.stats_mut().rounds += 1;
        Ok(())
    }

    /// Exchanges `nbits` packed bits each way (`ceil(nbits/8)` payload bytes): one round.
    /// Bits of `theirs` past `nbits` are zero afterwards.
    fn exchange_bits(
        &mut self,
        mine: &[u64],
        theirs: &mut [u64],
        nbits: usize,
    ) -> Result<(), TransportError> {
        let nbytes = nbits.div_ceil(8);
        let words = nbits.div_ceil(64);
        if mine.len() < words || theirs.len() < words {
            return Err(TransportError::Length {
                expected: words as u64,
                got: mine.len().min(theirs.len()) as u64,
            });
        }
        if nbytes > MAX_FRAME_LEN {
            return Err(TransportError::TooLarge(nbytes as u64));
        }
        theirs[..words].fill(0);
        let m: &[u8] = bytemuck::cast_slice(&mine[..words]);
        let t: &mut [u8] = bytemuck::cast_slice_mut(&mut theirs[..words]);
        self.exchange_frame(FrameKind::Bits, &m[..nbytes], &mut t[..nbytes])?;
        crate::prg::clear_tail(&mut theirs[..words], nbits);
        self.stats_mut().rounds += 1;
        Ok(())
    }

    /// Sends ring words (no round: the sender does not wait).
    fn send_u64(&mut self, words: &[u64]) -> Result<(), TransportError> {
        for piece in words.chunks(MAX_FRAME_LEN / 8) {
            self.send_frame(FrameKind::Ring, bytemuck::cast_slice(piece))?;
        }
        if words.is_empty() {
            self.send_frame(FrameKind::Ring, &[])?;
        }
        Ok(())
    }

    /// Sends the low `width` bytes of each word (no round), narrowing `words` in place:
    /// for values the receiver knows to lie in `[0, 2^(8 width))`.
    fn send_narrow(&mut self, words: &mut [u64], width: u8) -> Result<(), TransportError> {
        let bytes = crate::dealer::draw::narrow_in_place(words, width);
        self.send_chunked(FrameKind::Ring, bytes)
    }

    /// Receives `out.len()` words sent by [`Transport::send_narrow`] with the same
    /// `width`, zero-extended: one round.
    fn recv_narrow(&mut self, out: &mut [u64], width: u8) -> Result<(), TransportError> {
        let n = out.len() * width.clamp(1, 8) as usize;
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out[..]);
        self.recv_chunked(FrameKind::Ring, &mut bytes[..n])?;
        crate::dealer::draw::widen_in_place(out, width);
        self.stats_mut().rounds += 1;
        Ok(())
    }

    /// Receives exactly `out.len()` ring words: one round.
    fn recv_u64(&mut self, out: &mut [u64]) -> Result<(), TransportError> {
        self.recv_u64_of(FrameKind::Ring, out)?;
        self.stats_mut().rounds += 1;
        Ok(())
    }

    /// Receives exactly `out.len()` ring words in frames of `kind` (no round counted;
    /// used for dealer data, whose waits are accounted by the dealer client).
    fn recv_u64_of(&mut self, kind: FrameKind, out: &mut [u64]) -> Result<(), TransportError> {
        if out.is_empty() {
            self.recv_frame(kind, &mut [], true)?;
            return Ok(());
        }
        for piece in out.chunks_mut(MAX_FRAME_LEN / 8) {
            self.recv_frame(kind, bytemuck::cast_slice_mut(piece), true)?;
        }
        Ok(())
    }

    /// Sends `bytes` as frames of `kind` of at most [`MAX_FRAME_LEN`] bytes (one empty
    /// frame for no bytes); [`Transport::recv_chunked`] reads them back. No round.
    fn send_chunked(&mut self, kind: FrameKind, bytes: &[u8]) -> Result<(), TransportError> {
        if bytes.is_empty() {
            return self.send_frame(kind, &[]);
        }
        for piece in bytes.chunks(MAX_FRAME_LEN) {
            self.send_frame(kind, piece)?;
        }
        Ok(())
    }

    /// Receives exactly `out.len()` bytes sent by [`Transport::send_chunked`]. No round
    /// (dealer data: its waits are accounted by the dealer client).
    fn recv_chunked(&mut self, kind: FrameKind, out: &mut [u8]) -> Result<(), TransportError> {
        if out.is_empty() {
            self.recv_frame(kind, &mut [], true)?;
            return Ok(());
        }
        for piece in out.chunks_mut(MAX_FRAME_LEN) {
            self.recv_frame(kind, piece, true)?;
        }
        Ok(())
    }

    /// Sends a postcard-encoded control message of `kind`.
    fn send_msg<M: Serialize>(&mut self, kind: FrameKind, msg: &M) -> Result<(), TransportError>
    where
        Self: Sized,
    {
        let mut buf = [0u8; MAX_CONTROL_LEN];
        let used = postcard::to_slice(msg, &mut buf).map_err(|_| TransportError::Codec)?;
        let n = used.len();
        self.send_frame(kind, &buf[..n])
    }

    /// Receives a postcard-encoded control message of `kind` (one round).
    fn recv_msg<M: DeserializeOwned>(&mut self, kind: FrameKind) -> Result<M, TransportError>
    where
        Self: Sized,
    {
        let mut buf = [0u8; MAX_CONTROL_LEN];
        let n = self.recv_frame(kind, &mut buf, false)?;
        self.stats_mut().rounds += 1;
        postcard::from_bytes(&buf[..n]).map_err(|_| TransportError::Codec)
    }
}

macro_rules! forward_transport {
    ($($t:tt)*) => {
        $($t)* {
            fn send_frame(&mut self, kind: FrameKind, payload: &[u8]) -> Result<(), TransportError> {
                (**self).send_frame(kind, payload)
            }
            fn recv_frame(
                &mut self,
                kind: FrameKind,
                buf: &mut [u8],
                exact: bool,
            ) -> Result<usize, TransportError> {
                (**self).recv_frame(kind, buf, exact)
            }
            fn exchange_frame(
                &mut self,
                kind: FrameKind,
                mine: &[u8],
                theirs: &mut [u8],
            ) -> Result<(), TransportError> {
                (**self).exchange_frame(kind, mine, theirs)
            }
            fn stats(&self) -> Stats {
                (**self).stats()
            }
            fn stats_mut(&mut self) -> &mut Stats {
                (**self).stats_mut()
            }
        }
    };
}

forward_transport!(impl<T: Transport + ?Sized> Transport for &mut T);
#[cfg(feature = "alloc")]
forward_transport!(impl<T: Transport + ?Sized> Transport for alloc::boxed::Box<T>);

/// A transport to nobody, for dry runs that record a program's request plan and predict
/// its traffic: sends are counted and dropped, receives leave the buffer as it is. Only
/// the *shape* of a program is meaningful over it (its values are garbage).
#[derive(Debug, Default)]
pub struct NullTransport {
    stats: Stats,
}

impl Transport for NullTransport {
    fn send_frame(&mut self, _kind: FrameKind, payload: &[u8]) -> Result<(), TransportError> {
        self.stats.bytes_sent += (payload.len() + FRAME_OVERHEAD) as u64;
        self.stats.payload_sent += payload.len() as u64;
        self.stats.frames_sent += 1;
        Ok(())
    }
    fn recv_frame(
        &mut self,
        _kind: FrameKind,
        buf: &mut [u8],
        _exact: bool,
    ) -> Result<usize, TransportError> {
        self.stats.bytes_received += (buf.len() + FRAME_OVERHEAD) as u64;
        self.stats.payload_received += buf.len() as u64;
        Ok(buf.len())
    }
    fn exchange_frame(
        &mut self,
        kind: FrameKind,
        mine: &[u8],
        theirs: &mut [u8],
    ) -> Result<(), TransportError> {
        self.send_frame(kind, mine)?;
        self.recv_frame(kind, theirs, true).map(|_| ())
    }
    fn stats(&self) -> Stats {
        self.stats
    }
    fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }
}
