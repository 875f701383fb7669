//! Framing over an `embedded-io` link, with accounting and deadlock-free exchange.

use embedded_io::{Read, ReadExactError, Write};

use super::{FrameKind, Stats, Transport, TransportError};

const MAGIC: u8 = 0x5F;
const HEADER: usize = 6;
const TRAILER: usize = 4;
/// Framing bytes added to every payload (header and checksum) by a checksummed channel.
pub const FRAME_OVERHEAD: usize = HEADER + TRAILER;
/// The largest payload of one frame.
pub const MAX_FRAME_LEN: usize = 1 << 30;
/// Error frames carry at most this many bytes of message.
const MAX_ERROR_LEN: usize = 96;

/// A framed transport over a byte link `L`.
///
/// `exchange` interleaves writing and reading in chunks of `chunk` bytes: each side
/// writes a chunk, then reads a chunk, so neither blocks writing while the other does
/// too, provided the link can hold one chunk in flight per direction. Links whose writes
/// never block on the reader (a writer thread, an unbounded queue) use
/// [`Channel::full_duplex`], which sends whole frames.
///
/// Every frame ends with a CRC-32 of its header and payload, which catches corruption on a
/// serial line. On a link that already authenticates every byte (an AEAD), the CRC is
/// redundant: [`Channel::without_checksum`] drops the trailer (frames are then
/// `[0x5F][kind][len] payload`), and both ends must be built that way.
pub struct Channel<L> {
    link: L,
    stats: Stats,
    chunk: usize,
    checksum: bool,
}

impl<L: Read + Write> Channel<L> {
    /// A channel over a link that can buffer at least 4 KiB per direction.
    pub fn new(link: L) -> Self {
        Self::with_chunk(link, 4096)
    }

    /// A channel over a link that can buffer `chunk` bytes per direction in flight.
    pub fn with_chunk(link: L, chunk: usize) -> Self {
        Channel {
            link,
            stats: Stats::default(),
            chunk: chunk.max(HEADER + TRAILER),
            checksum: true,
        }
    }

    /// The same channel without the CRC-32 trailer, for links that authenticate every
    /// byte themselves (an AEAD record layer). The peer must be built the same way: a
    /// checksummed peer reads the next header where this one sends no trailer.
    pub fn without_checksum(mut self) -> Self {
        self.checksum = false;
        self
    }

    /// Whether frames carry (and are checked against) a CRC-32 trailer.
    pub fn has_checksum(&self) -> bool {
        self.checksum
    }

    /// Framing bytes this channel adds to every payload.
    pub fn frame_overhead(&self) -> usize {
        HEADER + self.trailer_len()
    }

    fn trailer_len(&self) -> usize {
        if self.checksum {
            TRAILER
        } else {
            0
        }
    }

    /// A CRC-32 state for one frame, or nothing when the channel does not checksum.
    fn hasher(&self) -> Option<crc32fast::Hasher> {
        self.checksum.then(crc32fast::Hasher::new)
    }

    /// A channel over a link whose writes never wait for the peer to read.
    pub fn full_duplex(link: L) -> Self {
        Self::with_chunk(link, usize::MAX)
    }

    /// The underlying link.
    pub fn link(&self) -> &L {
        &self.link
    }

    /// The underlying link, mutably.
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    /// Consumes the channel and returns the link.
    pub fn into_link(self) -> L {
        self.link
    }

    fn io<E: embedded_io::Error>(e: E) -> TransportError {
        match e.kind() {
            embedded_io::ErrorKind::BrokenPipe
            | embedded_io::ErrorKind::ConnectionReset
            | embedded_io::ErrorKind::ConnectionAborted
            | embedded_io::ErrorKind::NotConnected => TransportError::Closed,
            k => TransportError::Io(k),
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), TransportError> {
        if buf.is_empty() {
            return Ok(());
        }
        self.link.read_exact(buf).map_err(|e| match e {
            ReadExactError::UnexpectedEof => TransportError::Closed,
            ReadExactError::Other(e) => Self::io(e),
        })?;
        self.stats.bytes_received += buf.len() as u64;
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), TransportError> {
        self.link.write_all(buf).map_err(Self::io)?;
        self.stats.bytes_sent += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TransportError> {
        self.link.flush().map_err(Self::io)
    }

    fn header(kind: FrameKind, len: usize) -> [u8; HEADER] {
        let l = (len as u32).to_le_bytes();
        [MAGIC, kind as u8, l[0], l[1], l[2], l[3]]
    }

    /// Parses a header; an `Error` frame is read to its end and reported as `Peer`.
    fn parse_header(
        &mut self,
        h: &[u8; HEADER],
        kind: FrameKind,
        hasher: &mut Option<crc32fast::Hasher>,
    ) -> Result<usize, TransportError> {
        if h[0] != MAGIC {
            return Err(TransportError::BadMagic(h[0]));
        }
        let got = FrameKind::from_u8(h[1]).ok_or(TransportError::UnknownKind(h[1]))?;
        let len = u32::from_le_bytes([h[2], h[3], h[4], h[5]]) as usize;
        if let Some(hasher) = hasher {
            hasher.update(h);
        }
        if got == FrameKind::Error && kind != FrameKind::Error {
            if len > MAX_ERROR_LEN {
                return Err(TransportError::Length {
                    expected: MAX_ERROR_LEN as u64,
                    got: len as u64,
                });
            }
            let mut msg = [0u8; MAX_ERROR_LEN];
            // Best effort: the message may be cut if the peer died while sending it.
            let _ = self.read_exact(&mut msg[..len]);
            let text = core::str::from_utf8(&msg[..len]).unwrap_or("(non-UTF-8 message)");
            let mut s = heapless::String::new();
            for c in text.chars() {
                if s.push(c).is_err() {
                    break;
                }
            }
            return Err(TransportError::Peer(s));
        }
        if got != kind {
            return Err(TransportError::WrongKind {
                expected: kind,
                got,
            });
        }
        Ok(len)
    }

    fn check_trailer(
        &mut self,
        t: &[u8; TRAILER],
        hasher: Option<crc32fast::Hasher>,
    ) -> Result<(), TransportError> {
        match hasher.map(crc32fast::Hasher::finalize) {
            Some(crc) if crc != u32::from_le_bytes(*t) => Err(TransportError::Checksum),
            _ => Ok(()),
        }
    }

    /// The trailer of an outgoing frame (empty without checksum).
    fn trailer(&self, h: &[u8; HEADER], payload: &[u8]) -> ([u8; TRAILER], usize) {
        match self.hasher() {
            Some(mut hasher) => {
                hasher.update(h);
                hasher.update(payload);
                (hasher.finalize().to_le_bytes(), TRAILER)
            }
            None => ([0; TRAILER], 0),
        }
    }
}

/// A cursor over the three parts of an outgoing frame.
struct OutFrame<'a> {
    parts: [&'a [u8]; 3],
    part: usize,
    off: usize,
}

impl<'a> OutFrame<'a> {
    fn remaining(&self) -> usize {
        let mut r = 0;
        for (i, p) in self.parts.iter().enumerate().skip(self.part) {
            r += if i == self.part {
                p.len() - self.off
            } else {
                p.len()
            };
        }
        r
    }
    /// The next contiguous piece of at most `max` bytes.
    fn next(&mut self, max: usize) -> &'a [u8] {
        while self.part < 3 && self.off == self.parts[self.part].len() {
            self.part += 1;
            self.off = 0;
        }
        if self.part == 3 {
            return &[];
        }
        let p = self.parts[self.part];
        let end = (self.off + max).min(p.len());
        let s = &p[self.off..end];
        self.off = end;
        s
    }
}

impl<L: Read + Write> Transport for Channel<L> {
    fn send_frame(&mut self, kind: FrameKind, payload: &[u8]) -> Result<(), TransportError> {
        if payload.len() > MAX_FRAME_LEN {
            return Err(TransportError::TooLarge(payload.len() as u64));
        }
        let h = Self::header(kind, payload.len());
        let (t, tlen) = self.trailer(&h, payload);
        self.write_all(&h)?;
        self.write_all(payload)?;
        self.write_all(&t[..tlen])?;
        self.flush()?;
        self.stats.payload_sent += payload.len() as u64;
        self.stats.frames_sent += 1;
        Ok(())
    }

    fn recv_frame(
        &mut self,
        kind: FrameKind,
        buf: &mut [u8],
        exact: bool,
    ) -> Result<usize, TransportError> {
        let mut h = [0u8; HEADER];
        self.read_exact(&mut h)?;
        let mut hasher = self.hasher();
        let len = self.parse_header(&h, kind, &mut hasher)?;
        if (exact && len != buf.len()) || len > buf.len() {
            return Err(TransportError::Length {
                expected: buf.len() as u64,
                got: len as u64,
            });
        }
        self.read_exact(&mut buf[..len])?;
        if let Some(hasher) = &mut hasher {
            hasher.update(&buf[..len]);
        }
        let mut t = [0u8; TRAILER];
        let tlen = self.trailer_len();
        self.read_exact(&mut t[..tlen])?;
        self.check_trailer(&t, hasher)?;
        self.stats.payload_received += len as u64;
        Ok(len)
    }

    fn exchange_frame(
        &mut self,
        kind: FrameKind,
        mine: &[u8],
        theirs: &mut [u8],
    ) -> Result<(), TransportError> {
        if mine.len() > MAX_FRAME_LEN {
            return Err(TransportError::TooLarge(mine.len() as u64));
        }
        let h = Self::header(kind, mine.len());
        let (t, tlen) = self.trailer(&h, mine);
        let mut out = OutFrame {
            parts: [&h, mine, &t[..tlen]],
            part: 0,
            off: 0,
        };

        // Incoming side: header, payload, trailer, read in lock-step with our writes.
        let in_trailer_len = self.trailer_len();
        let in_total = HEADER + theirs.len() + in_trailer_len;
        let mut in_done = 0usize;
        let mut in_hasher = self.hasher();
        let mut in_header = [0u8; HEADER];
        let mut in_trailer = [0u8; TRAILER];
        let chunk = self.chunk;

        while out.remaining() > 0 || in_done < in_total {
            // Write one chunk of ours.
            let mut budget = chunk;
            while budget > 0 && out.remaining() > 0 {
                let piece = out.next(budget);
                budget -= piece.len();
                self.write_all(piece)?;
            }
            self.flush()?;
            // Read one chunk of theirs, as a byte stream: header, payload, trailer.
            let mut budget = chunk.min(in_total - in_done);
            while budget > 0 {
                let n;
                if in_done < HEADER {
                    n = budget.min(HEADER - in_done);
                    self.read_exact(&mut in_header[in_done..in_done + n])?;
                    if in_done + n == HEADER {
                        let len = self.parse_header(&in_header, kind, &mut in_hasher)?;
                        if len != theirs.len() {
                            return Err(TransportError::Length {
                                expected: theirs.len() as u64,
                                got: len as u64,
                            });
                        }
                    }
                } else if in_done < HEADER + theirs.len() {
                    let off = in_done - HEADER;
                    n = budget.min(theirs.len() - off);
                    self.read_exact(&mut theirs[off..off + n])?;
                    if let Some(hasher) = &mut in_hasher {
                        hasher.update(&theirs[off..off + n]);
                    }
                } else {
                    let off = in_done - HEADER - theirs.len();
                    n = budget.min(in_trailer_len - off);
                    self.read_exact(&mut in_trailer[off..off + n])?;
                }
                in_done += n;
                budget -= n;
            }
        }
        self.check_trailer(&in_trailer, in_hasher)?;
        self.stats.payload_sent += mine.len() as u64;
        self.stats.payload_received += theirs.len() as u64;
        self.stats.frames_sent += 1;
        Ok(())
    }

    fn stats(&self) -> Stats {
        self.stats
    }

    fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }
}
