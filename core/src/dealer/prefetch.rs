//! Reading a whole request's corrections at once, for a party whose dealer traffic is
//! relayed over the same line as its peer traffic (a device with one serial port).
//!
//! [`Prefetch`] wraps P1's transport to D. When the dealer client sends a request, the
//! wrapper reads every correction frame of that request into a caller-provided buffer
//! before returning; later reads of dealer data are served from the buffer. The relay
//! then only has to deliver D's answer to a request before any further peer data, and the
//! device never sees the two streams interleaved in an order it cannot predict.

use crate::transport::{FrameKind, Stats, Transport, TransportError};

use super::{layout, Request, Source};

/// Most correction frames of one request.
const MAX_FRAMES: usize = 80;

/// P1's dealer transport with whole-request prefetching into `buf`.
pub struct Prefetch<'a, T> {
    inner: T,
    buf: &'a mut [u8],
    frames: heapless::Vec<(usize, usize), MAX_FRAMES>,
    next: usize,
}

impl<'a, T: Transport> Prefetch<'a, T> {
    /// Wraps `inner`, buffering up to `buf.len()` bytes of corrections per request.
    pub fn new(inner: T, buf: &'a mut [u8]) -> Self {
        Prefetch {
            inner,
            buf,
            frames: heapless::Vec::new(),
            next: 0,
        }
    }

    /// The wrapped transport.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    fn fetch(&mut self, req: &Request) -> Result<(), TransportError> {
        if self.next < self.frames.len() {
            return Err(TransportError::Length {
                expected: self.frames.len() as u64,
                got: self.next as u64,
            });
        }
        self.frames.clear();
        self.next = 0;
        let mut off = 0usize;
        for item in req.items.iter() {
            for slot in layout(item) {
                if slot.p1 == Source::Dealer {
                    let len = slot.len * slot.width as usize;
                    if off + len > self.buf.len() {
                        return Err(TransportError::TooLarge((off + len) as u64));
                    }
                    self.inner.recv_frame(
                        FrameKind::DealerData,
                        &mut self.buf[off..off + len],
                        true,
                    )?;
                    self.frames
                        .push((off, len))
                        .map_err(|_| TransportError::TooLarge(MAX_FRAMES as u64))?;
                    off += len;
                }
            }
        }
        Ok(())
    }
}

impl<T: Transport> Transport for Prefetch<'_, T> {
    fn send_frame(&mut self, kind: FrameKind, payload: &[u8]) -> Result<(), TransportError> {
        self.inner.send_frame(kind, payload)?;
        if kind == FrameKind::DealerRequest {
            let req: Request = postcard::from_bytes(payload).map_err(|_| TransportError::Codec)?;
            self.fetch(&req)?;
        }
        Ok(())
    }

    fn recv_frame(
        &mut self,
        kind: FrameKind,
        buf: &mut [u8],
        exact: bool,
    ) -> Result<usize, TransportError> {
        if kind == FrameKind::DealerData && self.next < self.frames.len() {
            let (off, len) = self.frames[self.next];
            if (exact && len != buf.len()) || len > buf.len() {
                return Err(TransportError::Length {
                    expected: buf.len() as u64,
                    got: len as u64,
                });
            }
            buf[..len].copy_from_slice(&self.buf[off..off + len]);
            self.next += 1;
            return Ok(len);
        }
        self.inner.recv_frame(kind, buf, exact)
    }

    fn exchange_frame(
        &mut self,
        kind: FrameKind,
        mine: &[u8],
        theirs: &mut [u8],
    ) -> Result<(), TransportError> {
        self.inner.exchange_frame(kind, mine, theirs)
    }

    fn stats(&self) -> Stats {
        self.inner.stats()
    }

    fn stats_mut(&mut self) -> &mut Stats {
        self.inner.stats_mut()
    }
}
