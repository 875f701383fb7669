//! [`SecureLink`]: an authenticated, encrypted TCP link with the same behaviour as
//! [`crate::tcp::TcpLink`]: writes never wait for the peer (a writer thread encrypts and
//! sends, overlapping the caller's computation), reads are buffered and time out.
//!
//! Records after the handshake (see [`super::handshake`] for it):
//!
//! ```text
//! [len: u16 BE] AEAD(key of this direction, nonce = record counter, ad = "", plaintext)
//! ```
//!
//! `len` counts the ciphertext with its 16-byte tag, so a record carries 1 to 65 519
//! plaintext bytes (the Noise limit of 65 535 bytes a message); the nonce is implicit, so
//! a dropped, reordered, replayed or altered record fails authentication, and the link
//! then fails every later read. Overhead: 18 bytes per 65 519 (0.03 %) on large writes,
//! 18 bytes per flush on small ones. A read buffers at most one 256 KiB window and one
//! record: nothing is sized by the peer beyond the 16-bit record length.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use snow::StatelessTransportState;

use super::error::LinkError;
use super::handshake::{self, Established};
use super::identity::{Identity, TrustStore};
use super::{LinkOptions, PeerId};

const TAG_LEN: usize = 16;
/// The largest ciphertext of one record (the Noise message limit).
const MAX_RECORD: usize = 65_535;
/// The largest plaintext of one record.
pub const MAX_RECORD_PLAINTEXT: usize = MAX_RECORD - TAG_LEN;
/// Bytes the reader asks the kernel for at once.
const READ_WINDOW: usize = 256 << 10;
/// Frames queued for the writer thread at most.
const WRITE_QUEUE: usize = 8;
/// Encrypted bytes the writer gathers before one `write` call.
const WRITE_BATCH: usize = 256 << 10;

/// One end of an authenticated, encrypted TCP connection as an `embedded-io` link; wrap
/// it with `Channel::full_duplex(link).without_checksum()`.
pub struct SecureLink {
    rx: RecordReader,
    out: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    // Sent buffers come back for reuse: fresh large allocations cost page faults.
    spare: Receiver<Vec<u8>>,
    writer: Option<JoinHandle<()>>,
    write_err: Arc<Mutex<Option<(io::ErrorKind, String)>>>,
    wire_sent: Arc<AtomicU64>,
    peer: PeerId,
}

impl SecureLink {
    /// Connects over `stream` as the initiator (the connecting side speaks first): runs
    /// the handshake within `opts.handshake_timeout`, refuses a peer whose key is not in
    /// `trust`, and returns the link with the authenticated peer.
    pub fn connect(
        stream: TcpStream,
        me: &Identity,
        trust: &TrustStore,
        opts: &LinkOptions,
    ) -> Result<(SecureLink, PeerId), LinkError> {
        prepare(&stream)?;
        let est = handshake::initiate(
            &stream,
            me,
            trust,
            opts.suite,
            opts.crypto,
            opts.handshake_timeout,
        )?;
        Self::start(stream, est, opts.read_timeout)
    }

    /// Accepts over `stream` as the responder (see [`SecureLink::connect`]).
    pub fn accept(
        stream: TcpStream,
        me: &Identity,
        trust: &TrustStore,
        opts: &LinkOptions,
    ) -> Result<(SecureLink, PeerId), LinkError> {
        prepare(&stream)?;
        let est = handshake::respond(
            &stream,
            me,
            trust,
            opts.suite,
            opts.crypto,
            opts.handshake_timeout,
        )?;
        Self::start(stream, est, opts.read_timeout)
    }

    fn start(
        stream: TcpStream,
        est: Established,
        read_timeout: Duration,
    ) -> Result<(SecureLink, PeerId), LinkError> {
        let addr = est.peer.addr;
        let io_err = |during, source| LinkError::Io {
            addr,
            during,
            source,
        };
        // The write timeout (shared by the clone) frees the writer from a peer that stops
        // reading, so dropping the link cannot hang on it for longer than that.
        stream
            .set_read_timeout(Some(read_timeout))
            .and_then(|_| stream.set_write_timeout(Some(read_timeout)))
            .map_err(|e| io_err("setting timeouts", e))?;
        let wstream = stream
            .try_clone()
            .map_err(|e| io_err("cloning the socket", e))?;
        let transport = Arc::new(est.transport);
        let write_err = Arc::new(Mutex::new(None));
        let wire_sent = Arc::new(AtomicU64::new(0));
        // A bounded queue: a peer that stops reading blocks the sender (until the writer's
        // timeout fails the link) instead of growing this process's memory without end.
        let (tx, rx) = sync_channel::<Vec<u8>>(WRITE_QUEUE);
        let (back_tx, back_rx) = channel::<Vec<u8>>();
        let writer = RecordWriter {
            stream: wstream,
            transport: transport.clone(),
            nonce: est.send_nonce,
            wire_sent: wire_sent.clone(),
            err: write_err.clone(),
            peer: est.peer.to_string(),
            write_timeout: read_timeout,
        };
        let writer = std::thread::Builder::new()
            .name("link-writer".into())
            .spawn(move || writer.run(rx, back_tx))
            .map_err(|e| io_err("starting the writer thread", e))?;
        let link = SecureLink {
            rx: RecordReader {
                stream,
                transport,
                nonce: est.recv_nonce,
                window: vec![0; READ_WINDOW + 2 + MAX_RECORD].into_boxed_slice(),
                start: 0,
                end: 0,
                plain: vec![0; MAX_RECORD].into_boxed_slice(),
                pstart: 0,
                pend: 0,
                wire_received: 0,
                failed: None,
                peer: est.peer.to_string(),
                read_timeout,
            },
            out: Vec::new(),
            tx: Some(tx),
            spare: back_rx,
            writer: Some(writer),
            write_err,
            wire_sent,
            peer: est.peer.clone(),
        };
        Ok((link, est.peer))
    }

    /// Changes how long a read waits for the peer.
    pub fn set_read_timeout(&mut self, d: std::time::Duration) -> io::Result<()> {
        self.rx.stream.set_read_timeout(Some(d))
    }

    /// The authenticated peer.
    pub fn peer(&self) -> &PeerId {
        &self.peer
    }

    /// Bytes written to the socket so far (records with their lengths and tags).
    pub fn wire_bytes_sent(&self) -> u64 {
        self.wire_sent.load(Ordering::Relaxed)
    }

    /// Bytes read from the socket so far.
    pub fn wire_bytes_received(&self) -> u64 {
        self.rx.wire_received
    }

    fn check_writer(&self) -> io::Result<()> {
        match &*self.write_err.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((k, m)) => Err(io::Error::new(*k, m.clone())),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for SecureLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecureLink({})", self.peer)
    }
}

fn prepare(stream: &TcpStream) -> Result<(), LinkError> {
    stream.set_nodelay(true).map_err(|e| LinkError::Io {
        addr: stream
            .peer_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
        during: "setting TCP_NODELAY",
        source: e,
    })
}

impl Drop for SecureLink {
    fn drop(&mut self) {
        if !self.out.is_empty() {
            if let Some(tx) = &self.tx {
                let _ = tx.send(std::mem::take(&mut self.out));
            }
        }
        self.tx = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The writer thread's state: encrypts queued plaintext into records and sends them.
struct RecordWriter {
    stream: TcpStream,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    wire_sent: Arc<AtomicU64>,
    err: Arc<Mutex<Option<(io::ErrorKind, String)>>>,
    peer: String,
    write_timeout: Duration,
}

impl RecordWriter {
    fn run(mut self, rx: Receiver<Vec<u8>>, back: Sender<Vec<u8>>) {
        let mut wire = vec![0u8; WRITE_BATCH + 2 + MAX_RECORD].into_boxed_slice();
        let mut used = 0;
        for mut buf in rx {
            let mut sent = Ok(());
            for piece in buf.chunks(MAX_RECORD_PLAINTEXT) {
                match self.seal(piece, &mut wire[used..]) {
                    Ok(n) => used += n,
                    Err(e) => {
                        sent = Err(e);
                        break;
                    }
                }
                if used >= WRITE_BATCH {
                    sent = self.send(&wire[..used]);
                    used = 0;
                    if sent.is_err() {
                        break;
                    }
                }
            }
            if sent.is_ok() && used > 0 {
                sent = self.send(&wire[..used]);
                used = 0;
            }
            if let Err(e) = sent {
                *self.err.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((e.kind(), e.to_string()));
                let _ = self.stream.shutdown(Shutdown::Both);
                return;
            }
            buf.clear();
            let _ = back.send(buf);
        }
        let _ = self.stream.flush();
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Encrypts one record into `out`; returns its wire length.
    fn seal(&mut self, plain: &[u8], out: &mut [u8]) -> io::Result<usize> {
        let n = self
            .transport
            .write_message(self.nonce, plain, &mut out[2..])
            .map_err(|e| io::Error::other(format!("encrypting record {}: {e}", self.nonce)))?;
        self.nonce += 1;
        out[..2].copy_from_slice(&(n as u16).to_be_bytes());
        Ok(2 + n)
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{} read nothing we sent for {:?}",
                    self.peer, self.write_timeout
                ),
            ),
            _ => io::Error::new(e.kind(), format!("sending to {}: {e}", self.peer)),
        })?;
        self.wire_sent
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// The reading side: a window of socket bytes, decrypted one record at a time.
struct RecordReader {
    stream: TcpStream,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    window: Box<[u8]>,
    start: usize,
    end: usize,
    plain: Box<[u8]>,
    pstart: usize,
    pend: usize,
    wire_received: u64,
    failed: Option<(io::ErrorKind, String)>,
    peer: String,
    read_timeout: Duration,
}

impl RecordReader {
    /// Makes `need` bytes available at `start`. `Ok(false)`: the peer closed the
    /// connection cleanly, between records (`boundary`).
    fn fill(&mut self, need: usize, boundary: bool) -> io::Result<bool> {
        if self.end - self.start >= need {
            return Ok(true);
        }
        if self.window.len() - self.start < need {
            self.window.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end - self.start < need {
            match self.stream.read(&mut self.window[self.end..]) {
                Ok(0) if boundary && self.end == self.start => return Ok(false),
                Ok(0) => {
                    // ConnectionAborted: the channel reports the peer as gone.
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("{} closed the link in the middle of a record", self.peer),
                    ));
                }
                Ok(n) => {
                    self.end += n;
                    self.wire_received += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no data from {} for {:?}", self.peer, self.read_timeout),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn fail(&mut self, kind: io::ErrorKind, msg: String) -> io::Error {
        self.failed = Some((kind, msg.clone()));
        io::Error::new(kind, msg)
    }

    /// Reads the next record: into `out` directly when it fits whole (returns its length
    /// there), else into the plaintext buffer (returns 0 and fills `plain`). `None`: the
    /// peer closed cleanly.
    fn next_record(&mut self, out: &mut [u8]) -> io::Result<Option<usize>> {
        if !self.fill(2, true)? {
            return Ok(None);
        }
        let len =
            u16::from_be_bytes([self.window[self.start], self.window[self.start + 1]]) as usize;
        if len < TAG_LEN {
            let msg = format!(
                "record of {len} bytes from {} is shorter than its tag (not a secformer link)",
                self.peer
            );
            return Err(self.fail(io::ErrorKind::InvalidData, msg));
        }
        self.fill(2 + len, false)?;
        let record = &self.window[self.start + 2..self.start + 2 + len];
        // snow decrypts in place when the output holds the whole ciphertext.
        let direct = out.len() >= len;
        let res = if direct {
            self.transport.read_message(self.nonce, record, out)
        } else {
            self.transport
                .read_message(self.nonce, record, &mut self.plain[..])
        };
        self.start += 2 + len;
        let n = match res {
            Ok(n) => n,
            Err(_) => {
                let msg = format!(
                    "record {} from {} failed authentication: tampered with or corrupted on the way",
                    self.nonce, self.peer
                );
                return Err(self.fail(io::ErrorKind::InvalidData, msg));
            }
        };
        self.nonce += 1;
        if direct {
            Ok(Some(n))
        } else {
            self.pstart = 0;
            self.pend = n;
            Ok(Some(0))
        }
    }

    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if let Some((k, m)) = &self.failed {
            return Err(io::Error::new(*k, m.clone()));
        }
        loop {
            if self.pstart < self.pend {
                let n = out.len().min(self.pend - self.pstart);
                out[..n].copy_from_slice(&self.plain[self.pstart..self.pstart + n]);
                self.pstart += n;
                return Ok(n);
            }
            match self.next_record(out)? {
                None => return Ok(0),
                Some(0) => {}
                Some(n) => return Ok(n),
            }
        }
    }
}

impl embedded_io::ErrorType for SecureLink {
    type Error = io::Error;
}

impl embedded_io::Read for SecureLink {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.rx.read(buf)
    }
}

impl embedded_io::Write for SecureLink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check_writer()?;
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check_writer()?;
        if self.out.is_empty() {
            return Ok(());
        }
        let mut next = self.spare.try_recv().unwrap_or_default();
        while let Ok(b) = self.spare.try_recv() {
            if b.capacity() > next.capacity() {
                next = b;
            }
        }
        let buf = std::mem::replace(&mut self.out, next);
        match &self.tx {
            Some(tx) => {
                if tx.send(buf).is_err() {
                    self.check_writer()?;
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "link writer stopped",
                    ));
                }
                Ok(())
            }
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "link closed")),
        }
    }
}
