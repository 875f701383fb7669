//! An in-memory duplex link for two-thread tests and single-process demos.
//!
//! Writes are queued (never block), so wrap it with [`Channel::full_duplex`]. A dropped
//! end reads as a closed connection on the other; a read that waits longer than the
//! timeout fails with `TimedOut` instead of hanging a test.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;
use std::vec::Vec;

use super::Channel;

/// The error of a [`MemLink`]: just an `embedded-io` error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemError(pub embedded_io::ErrorKind);

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "in-memory link: {:?}", self.0)
    }
}
impl core::error::Error for MemError {}
impl embedded_io::Error for MemError {
    fn kind(&self) -> embedded_io::ErrorKind {
        self.0
    }
}

/// One end of an in-memory duplex byte link.
pub struct MemLink {
    tx: Option<Sender<Vec<u8>>>,
    rx: Receiver<Vec<u8>>,
    pending_out: Vec<u8>,
    inbuf: Vec<u8>,
    inpos: usize,
    timeout: Duration,
}

/// A connected pair of links (default read timeout: 60 s).
pub fn mem_pair() -> (MemLink, MemLink) {
    let (ta, rb) = channel();
    let (tb, ra) = channel();
    let mk = |tx, rx| MemLink {
        tx: Some(tx),
        rx,
        pending_out: Vec::new(),
        inbuf: Vec::new(),
        inpos: 0,
        timeout: Duration::from_secs(60),
    };
    (mk(ta, ra), mk(tb, rb))
}

/// A connected pair of framed channels over [`mem_pair`].
pub fn channel_pair() -> (Channel<MemLink>, Channel<MemLink>) {
    let (a, b) = mem_pair();
    (Channel::full_duplex(a), Channel::full_duplex(b))
}

impl MemLink {
    /// Sets how long a read waits before failing with `TimedOut`.
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    /// Closes the sending direction (the peer reads end-of-stream).
    pub fn close(&mut self) {
        self.tx = None;
    }
}

impl embedded_io::ErrorType for MemLink {
    type Error = MemError;
}

impl embedded_io::Read for MemLink {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, MemError> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.inpos == self.inbuf.len() {
            match self.rx.recv_timeout(self.timeout) {
                Ok(v) => {
                    self.inbuf = v;
                    self.inpos = 0;
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(MemError(embedded_io::ErrorKind::TimedOut))
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
            }
        }
        let n = buf.len().min(self.inbuf.len() - self.inpos);
        buf[..n].copy_from_slice(&self.inbuf[self.inpos..self.inpos + n]);
        self.inpos += n;
        Ok(n)
    }
}

impl embedded_io::Write for MemLink {
    fn write(&mut self, buf: &[u8]) -> Result<usize, MemError> {
        if self.tx.is_none() {
            return Err(MemError(embedded_io::ErrorKind::BrokenPipe));
        }
        self.pending_out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), MemError> {
        if self.pending_out.is_empty() {
            return Ok(());
        }
        let v = core::mem::take(&mut self.pending_out);
        match &self.tx {
            Some(tx) => tx
                .send(v)
                .map_err(|_| MemError(embedded_io::ErrorKind::BrokenPipe)),
            None => Err(MemError(embedded_io::ErrorKind::BrokenPipe)),
        }
    }
}
