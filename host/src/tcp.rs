//! TCP links: full-duplex (a writer thread drains outgoing bytes while the caller reads),
//! `TCP_NODELAY`, buffered reads, connect retries and read timeouts.
//!
//! Because writes never wait for the peer to read, a [`TcpLink`] is wrapped with
//! [`Channel::full_duplex`] and exchanges whole frames without chunking. Dropping the
//! link waits for queued bytes to be written, so an `Error` frame sent just before a
//! failing process exits still reaches the peer.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use secformer_core::transport::Channel;

/// Default time a read waits for the other side.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// One end of a TCP connection as an `embedded-io` link.
pub struct TcpLink {
    reader: BufReader<TcpStream>,
    out: Vec<u8>,
    tx: Option<Sender<Vec<u8>>>,
    // Written buffers come back for reuse: fresh large allocations cost page faults.
    spare: Receiver<Vec<u8>>,
    writer: Option<JoinHandle<()>>,
    write_err: Arc<Mutex<Option<io::ErrorKind>>>,
    peer: String,
}

/// A framed transport over TCP.
pub type TcpChannel = Channel<TcpLink>;

impl TcpLink {
    /// Wraps a connected stream.
    pub fn new(stream: TcpStream, read_timeout: Duration) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(read_timeout))?;
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".into());
        let mut wstream = stream.try_clone()?;
        let (tx, rx) = channel::<Vec<u8>>();
        let (back_tx, back_rx) = channel::<Vec<u8>>();
        let write_err = Arc::new(Mutex::new(None));
        let err2 = write_err.clone();
        let writer = std::thread::Builder::new()
            .name("tcp-writer".into())
            .spawn(move || {
                for mut buf in rx {
                    if let Err(e) = wstream.write_all(&buf) {
                        *err2.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.kind());
                        let _ = wstream.shutdown(Shutdown::Both);
                        return;
                    }
                    buf.clear();
                    let _ = back_tx.send(buf);
                }
                let _ = wstream.flush();
                let _ = wstream.shutdown(Shutdown::Write);
            })?;
        Ok(TcpLink {
            reader: BufReader::with_capacity(1 << 16, stream),
            out: Vec::new(),
            tx: Some(tx),
            spare: back_rx,
            writer: Some(writer),
            write_err,
            peer,
        })
    }

    /// The peer's address.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Connects to `addr`, retrying until `deadline` elapses (the peer may start later).
    pub fn connect(addr: &str, deadline: Duration, read_timeout: Duration) -> io::Result<Self> {
        let start = Instant::now();
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("could not resolve {addr}"));
        loop {
            match addr.to_socket_addrs() {
                Ok(addrs) => {
                    for a in addrs {
                        match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
                            Ok(s) => return Self::new(s, read_timeout),
                            Err(e) => last = e,
                        }
                    }
                }
                Err(e) => last = e,
            }
            if start.elapsed() >= deadline {
                return Err(io::Error::new(
                    last.kind(),
                    format!("could not connect to {addr} within {:?}: {last}", deadline),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Accepts one connection on `listener`, waiting at most `deadline`.
    pub fn accept(
        listener: &TcpListener,
        deadline: Duration,
        read_timeout: Duration,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let start = Instant::now();
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false)?;
                    return Self::new(s, read_timeout);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if start.elapsed() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no connection within {deadline:?}"),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn check_writer(&self) -> io::Result<()> {
        if let Some(k) = *self.write_err.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(io::Error::new(k, "sending to the peer failed"));
        }
        Ok(())
    }
}

impl Drop for TcpLink {
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

impl embedded_io::ErrorType for TcpLink {
    type Error = io::Error;
}

impl embedded_io::Read for TcpLink {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out"))
            }
            r => r,
        }
    }
}

impl embedded_io::Write for TcpLink {
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
        let next = self.spare.try_recv().unwrap_or_default();
        let buf = std::mem::replace(&mut self.out, next);
        match &self.tx {
            Some(tx) => tx
                .send(buf)
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "writer stopped")),
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "link closed")),
        }
    }
}

/// Connects a framed channel (see [`TcpLink::connect`]).
pub fn connect(addr: &str, deadline: Duration, read_timeout: Duration) -> io::Result<TcpChannel> {
    Ok(Channel::full_duplex(TcpLink::connect(
        addr,
        deadline,
        read_timeout,
    )?))
}

/// Accepts a framed channel (see [`TcpLink::accept`]).
pub fn accept(
    listener: &TcpListener,
    deadline: Duration,
    read_timeout: Duration,
) -> io::Result<TcpChannel> {
    Ok(Channel::full_duplex(TcpLink::accept(
        listener,
        deadline,
        read_timeout,
    )?))
}
