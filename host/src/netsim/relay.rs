//! A userspace shaped link: a TCP relay that delivers each chunk `delay` after it left,
//! at most `rate` bits per second, in both directions. Used where the kernel has no
//! `netem` qdisc (some virtual machines): same rate and delay as the namespaces would
//! give, at the cost of one copy per byte in the benchmark's own process.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Bytes read at once (the relay's packet).
const CHUNK: usize = 64 * 1024;
/// Chunks in flight per direction (the link's buffer: 64 MiB at most).
const IN_FLIGHT: usize = 1024;

/// A shaped link's rate and one-way delay.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Bits per second.
    pub rate_bps: f64,
    /// One-way delay.
    pub delay: Duration,
}

/// A listening relay to one target; stops accepting when dropped (open connections
/// run until either side closes).
pub struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// Listens on 127.0.0.1 and relays every connection to `target`, shaped by `shape`.
    pub fn start(target: SocketAddr, shape: Shape) -> Result<Relay> {
        let l = TcpListener::bind("127.0.0.1:0").context("binding a relay")?;
        let port = l.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::Builder::new()
            .name(format!("relay-{port}"))
            .spawn(move || {
                for conn in l.incoming() {
                    if stopped.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = conn else { continue };
                    if let Err(e) = connect_pair(client, target, shape) {
                        eprintln!("relay to {target}: {e:#}");
                    }
                }
            })
            .context("starting a relay thread")?;
        Ok(Relay { port, stop })
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn connect_pair(client: TcpStream, target: SocketAddr, shape: Shape) -> Result<()> {
    let server = TcpStream::connect(target).with_context(|| format!("connecting to {target}"))?;
    for s in [&client, &server] {
        s.set_nodelay(true)?;
    }
    pump(client.try_clone()?, server.try_clone()?, shape)?;
    pump(server, client, shape)?;
    Ok(())
}

/// One direction: a reader that stamps each chunk with its arrival time, and a writer
/// that delivers it then.
fn pump(mut from: TcpStream, to: TcpStream, shape: Shape) -> Result<()> {
    let (tx, rx) = sync_channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    thread::Builder::new()
        .name("relay-read".into())
        .spawn(move || read_side(&mut from, &tx, shape))?;
    thread::Builder::new()
        .name("relay-write".into())
        .spawn(move || write_side(to, rx))?;
    Ok(())
}

fn read_side(from: &mut TcpStream, tx: &SyncSender<(Instant, Vec<u8>)>, shape: Shape) {
    let mut next_free = Instant::now();
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.truncate(n);
        let now = Instant::now();
        // Serialization at the link's rate, then the propagation delay.
        let wire = Duration::from_secs_f64(n as f64 * 8.0 / shape.rate_bps);
        let depart = next_free.max(now) + wire;
        next_free = depart;
        // A full link holds the sender back (as a full queue would), so the relay does not
        // buffer more than about one delay's worth ahead of the wire.
        let ahead = depart.saturating_duration_since(now);
        if ahead > shape.delay + Duration::from_millis(5) {
            thread::sleep(ahead - shape.delay);
        }
        if tx.send((depart + shape.delay, buf)).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Read);
}

fn write_side(mut to: TcpStream, rx: Receiver<(Instant, Vec<u8>)>) {
    for (at, buf) in rx {
        let now = Instant::now();
        if at > now {
            thread::sleep(at - now);
        }
        if to.write_all(&buf).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_round_trip_takes_twice_the_delay_and_keeps_the_bytes() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = echo.local_addr().unwrap();
        thread::spawn(move || {
            let (mut s, _) = echo.accept().unwrap();
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s.write_all(&buf[..n]).unwrap(),
                }
            }
        });
        let shape = Shape {
            rate_bps: 1e9,
            delay: Duration::from_millis(20),
        };
        let relay = Relay::start(target, shape).unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", relay.port())).unwrap();
        let t = Instant::now();
        c.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        c.read_exact(&mut got).unwrap();
        let rtt = t.elapsed();
        assert_eq!(&got, b"ping");
        assert!(rtt >= Duration::from_millis(40), "{rtt:?}");
        assert!(rtt < Duration::from_millis(200), "{rtt:?}");
    }
}
