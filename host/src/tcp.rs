//! TCP links: full-duplex (a writer thread drains outgoing bytes while the caller reads),
//! `TCP_NODELAY`, buffered reads, connect retries and read timeouts.
//!
//! Because writes never wait for the peer to read, a [`TcpLink`] is wrapped with
//! [`Channel::full_duplex`] and exchanges whole frames without chunking. Dropping the
//! link waits for queued bytes to be written, so an `Error` frame sent just before a
//! failing process exits still reaches the peer.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
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
    tx: Option<SyncSender<Vec<u8>>>,
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
        // A peer that reads nothing we send for as long fails the link.
        stream.set_write_timeout(Some(read_timeout))?;
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".into());
        let mut wstream = stream.try_clone()?;
        // A bounded queue: a peer that stops reading blocks the sender instead of growing
        // this process's memory without end.
        let (tx, rx) = sync_channel::<Vec<u8>>(8);
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

    /// Changes how long a read waits (a short one for handshakes, a long one after).
    pub fn set_read_timeout(&mut self, d: Duration) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(Some(d))
    }

    /// The peer's address.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Connects to `addr`, retrying until `deadline` elapses (the peer may start later).
    pub fn connect(addr: &str, deadline: Duration, read_timeout: Duration) -> io::Result<Self> {
        Self::new(connect_stream(addr, deadline, true)?, read_timeout)
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
        // Reuse a buffer the writer returned; drop the others (a burst of large frames
        // would otherwise leave many large buffers queued here).
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
                    return Err(io::Error::new(io::ErrorKind::BrokenPipe, "writer stopped"));
                }
                Ok(())
            }
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "link closed")),
        }
    }
}

/// Connects to `addr`: an address without a port or an unknown host fails at once; a
/// refused connection fails at once unless `retry_refused` (for peers that may start
/// later); an unreachable or silent host is retried until `deadline`.
pub fn connect_stream(
    addr: &str,
    deadline: Duration,
    retry_refused: bool,
) -> io::Result<TcpStream> {
    if !addr.contains(':') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr:?} has no port (write HOST:PORT)"),
        ));
    }
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve {addr}: {e}")))?
        .collect();
    let start = Instant::now();
    loop {
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{addr} has no address"));
        for a in &addrs {
            let left = deadline
                .saturating_sub(start.elapsed())
                .max(Duration::from_millis(100));
            match TcpStream::connect_timeout(a, left.min(Duration::from_secs(5))) {
                Ok(s) => return Ok(s),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && !retry_refused => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("nothing is listening at {addr} (connection refused)"),
                    ));
                }
                Err(e) => last = e,
            }
        }
        if start.elapsed() >= deadline {
            return Err(io::Error::new(
                last.kind(),
                format!("could not connect to {addr} within {deadline:?}: {last}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
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

/// Two connected ends of a fresh TCP connection on 127.0.0.1 (for endpoints started in
/// one process: demos, tests).
pub fn loopback_pair(read_timeout: Duration) -> io::Result<(TcpChannel, TcpChannel)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?.to_string();
    let c = connect(&addr, Duration::from_secs(10), read_timeout)?;
    let a = accept(&l, Duration::from_secs(10), read_timeout)?;
    Ok((a, c))
}
