//! One serial line, two streams: the device side of the line multiplexing.
//!
//! The device (P1) has one byte link to the host: the UART or semihosting stdio. Over it
//! run two framed transports of the core ([`secformer_core::transport::Channel`]): P1's
//! **peer** stream to P0 and its **dealer** stream to D. Both are relayed by the host. The
//! line carries the core's frames unchanged (`[0x5F][kind][len u32 LE] payload [crc32]`),
//! and each frame's kind says which stream it belongs to:
//!
//! * dealer stream: `Hello` (message 1 of P1's sealed handshake with D up, message 2 with
//!   D's hello down: the first Hello in each direction), `DealerRequest` (up), `DealerData`
//!   (down), `Ack` (never sent to P1);
//! * peer stream: `Hello` (P0's sealed `PairHello` down, the second Hello), `Ring`, `Bits`,
//!   `Control` (P1's sealed handshake with P0 among them), `Bye`;
//! * `Error` belongs to both: whoever reads it fails with the sender's message.
//!
//! The device's program order fixes what it sends. What it receives is kept predictable
//! by two rules: (1) P1 wraps its dealer transport in
//! [`secformer_core::dealer::prefetch::Prefetch`], so it reads *all* of D's answer to a
//! request right after sending it; (2) the host relay forwards D's answer to a request
//! before any P0 frame that reaches it after the request (it holds P0's frames while a P1
//! request is outstanding, and holds all of them until D's Hello is through). The one
//! window left is P0 frames already forwarded when P1's request reaches the host: P0 runs
//! ahead by at most one message before it must wait for P1, so the device keeps such
//! frames, whole, in a stash ([`Line`]) while it reads dealer data, and the peer stream
//! reads the stash first. A stash too small for that message is an error
//! (`OutOfMemory`), never a reordering.
//!
//! This file is `no_std` and compiled into the firmware and, for the relay's tests, into
//! `secformer-host`.

use core::cell::RefCell;

use embedded_io::{Error as _, ErrorKind, ErrorType, Read, Write};
use secformer_core::transport::FrameKind;

const MAGIC: u8 = 0x5F;
const HEADER: usize = 6;
const TRAILER: usize = 4;

/// The device end of the line: the physical link, the stash of P0 frames read ahead,
/// and where the dealer stream is inside the current frame.
pub struct Line<'s, L> {
    link: L,
    stash: &'s mut [u8],
    stash_start: usize,
    stash_end: usize,
    hdr: [u8; HEADER],
    hdr_pos: usize,
    hdr_len: usize,
    dealer_left: usize,
    dealer_hello_seen: bool,
    stash_peak: usize,
    stashed_frames: u32,
}

/// Counters of a [`Line`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineStats {
    /// Most bytes the stash held at once.
    pub stash_peak: usize,
    /// P0 frames that arrived while the dealer stream was being read.
    pub stashed_frames: u32,
}

impl<'s, L: Read + Write> Line<'s, L> {
    /// A line over `link`, with `stash` for P0 frames that arrive during dealer reads.
    pub fn new(link: L, stash: &'s mut [u8]) -> Self {
        Line {
            link,
            stash,
            stash_start: 0,
            stash_end: 0,
            hdr: [0; HEADER],
            hdr_pos: 0,
            hdr_len: 0,
            dealer_left: 0,
            dealer_hello_seen: false,
            stash_peak: 0,
            stashed_frames: 0,
        }
    }

    /// The counters.
    pub fn stats(&self) -> LineStats {
        LineStats {
            stash_peak: self.stash_peak,
            stashed_frames: self.stashed_frames,
        }
    }

    fn read_exact_link(&mut self, buf: &mut [u8]) -> Result<bool, ErrorKind> {
        let mut off = 0;
        while off < buf.len() {
            let n = self.link.read(&mut buf[off..]).map_err(|e| e.kind())?;
            if n == 0 {
                return Ok(false);
            }
            off += n;
        }
        Ok(true)
    }

    /// Reads a whole P0 frame (whose header is `h`) from the link into the stash.
    fn stash_frame(&mut self, h: [u8; HEADER], len: usize) -> Result<bool, ErrorKind> {
        let need = HEADER + len + TRAILER;
        if self.stash_start == self.stash_end {
            self.stash_start = 0;
            self.stash_end = 0;
        }
        if self.stash.len() - self.stash_end < need {
            // Compact, then check again.
            self.stash.copy_within(self.stash_start..self.stash_end, 0);
            self.stash_end -= self.stash_start;
            self.stash_start = 0;
            if self.stash.len() - self.stash_end < need {
                return Err(ErrorKind::OutOfMemory);
            }
        }
        let at = self.stash_end;
        self.stash[at..at + HEADER].copy_from_slice(&h);
        let (start, end) = (at + HEADER, at + need);
        let mut off = start;
        while off < end {
            let n = self
                .link
                .read(&mut self.stash[off..end])
                .map_err(|e| e.kind())?;
            if n == 0 {
                return Ok(false);
            }
            off += n;
        }
        self.stash_end = end;
        self.stashed_frames += 1;
        self.stash_peak = self.stash_peak.max(self.stash_end - self.stash_start);
        Ok(true)
    }

    fn dealer_read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.hdr_pos < self.hdr_len {
                let n = buf.len().min(self.hdr_len - self.hdr_pos);
                buf[..n].copy_from_slice(&self.hdr[self.hdr_pos..self.hdr_pos + n]);
                self.hdr_pos += n;
                return Ok(n);
            }
            if self.dealer_left > 0 {
                let want = buf.len().min(self.dealer_left);
                let n = self.link.read(&mut buf[..want]).map_err(|e| e.kind())?;
                self.dealer_left -= n;
                return Ok(n);
            }
            // At a frame boundary: whose frame is next?
            let mut h = [0u8; HEADER];
            if !self.read_exact_link(&mut h)? {
                return Ok(0);
            }
            let len = u32::from_le_bytes([h[2], h[3], h[4], h[5]]) as usize;
            let kind = FrameKind::from_u8(h[1]);
            let to_dealer = h[0] != MAGIC
                || match kind {
                    None => true,
                    Some(FrameKind::DealerData | FrameKind::Ack | FrameKind::Error) => true,
                    Some(FrameKind::Hello) => !self.dealer_hello_seen,
                    Some(_) => false,
                };
            if to_dealer {
                if kind == Some(FrameKind::Hello) {
                    self.dealer_hello_seen = true;
                }
                self.hdr = h;
                self.hdr_pos = 0;
                self.hdr_len = HEADER;
                // A malformed header is handed over as is: the channel reports it.
                self.dealer_left = if h[0] == MAGIC && kind.is_some() {
                    len.saturating_add(TRAILER)
                } else {
                    0
                };
                continue;
            }
            if !self.stash_frame(h, len)? {
                return Ok(0);
            }
        }
    }

    fn peer_read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.stash_start < self.stash_end {
            let n = buf.len().min(self.stash_end - self.stash_start);
            buf[..n].copy_from_slice(&self.stash[self.stash_start..self.stash_start + n]);
            self.stash_start += n;
            return Ok(n);
        }
        self.link.read(buf).map_err(|e| e.kind())
    }

    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.link.write(buf).map_err(|e| e.kind())
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        self.link.flush().map_err(|e| e.kind())
    }
}

/// P1's link to P0 over the shared line (wrap it in a `Channel`).
pub struct PeerPort<'l, 's, L>(pub &'l RefCell<Line<'s, L>>);

/// P1's link to D over the shared line (wrap it in a `Channel`, then in `Prefetch`).
pub struct DealerPort<'l, 's, L>(pub &'l RefCell<Line<'s, L>>);

impl<L> ErrorType for PeerPort<'_, '_, L> {
    type Error = ErrorKind;
}
impl<L> ErrorType for DealerPort<'_, '_, L> {
    type Error = ErrorKind;
}

impl<L: Read + Write> Read for PeerPort<'_, '_, L> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.0.borrow_mut().peer_read(buf)
    }
}
impl<L: Read + Write> Write for PeerPort<'_, '_, L> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> Result<(), ErrorKind> {
        self.0.borrow_mut().flush()
    }
}
impl<L: Read + Write> Read for DealerPort<'_, '_, L> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.0.borrow_mut().dealer_read(buf)
    }
}
impl<L: Read + Write> Write for DealerPort<'_, '_, L> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> Result<(), ErrorKind> {
        self.0.borrow_mut().flush()
    }
}
