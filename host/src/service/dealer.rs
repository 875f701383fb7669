//! The dealer service: accepts parties until stopped, pairs P0 and P1 by the session token
//! they both present, runs each session on its own thread, and keeps a session's state for
//! a while after P1 leaves so that P1 can resume it.
//!
//! A party that sends nothing valid within the handshake timeout, sends junk, or waits for
//! a partner that never comes (the pairing timeout) is logged and dropped; no failure of
//! one connection or session affects another.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use secformer_core::dealer::server::{identify_hello, DealerService};
use secformer_core::dealer::PartyHello;
use secformer_core::party::PartyId;
use secformer_core::transport::Transport;

use super::{Endpoint, NetChannel};
use crate::dealer::{DealerSession, Ending};
use crate::kernel::HostKernel;
use crate::link::Peer;
use crate::net::{os_seed, os_u64};

/// How the dealer service runs.
#[derive(Debug, Clone)]
pub struct DealerConfig {
    /// Link security and timeouts.
    pub endpoint: Endpoint,
    /// How long a party waits for its partner with the same token.
    pub pair_timeout: Duration,
    /// How long a session's state is kept after P1 leaves asking for it.
    pub keep: Duration,
    /// Stop after this many sessions (`None`: run until stopped).
    pub sessions: Option<u32>,
}

impl DealerConfig {
    /// Defaults (60 s to pair, 10 minutes kept) for `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        DealerConfig {
            endpoint,
            pair_timeout: Duration::from_secs(60),
            keep: Duration::from_secs(600),
            sessions: None,
        }
    }
}

type Session = DealerSession<HostKernel>;

/// A kept session and the key of the P1 allowed to resume it.
struct Kept {
    deadline: Instant,
    p1: [u8; 32],
    session: Session,
}

/// A party waiting for its partner: the partner's link is handed over on `tx`.
struct Waiting {
    party: PartyId,
    tx: SyncSender<(NetChannel, Peer)>,
}

#[derive(Default)]
struct Shared {
    waiting: Mutex<HashMap<[u8; 16], Waiting>>,
    kept: Mutex<HashMap<u64, Kept>>,
    finished: AtomicU32,
}

/// Runs the dealer on `listener` until stopped (or `cfg.sessions` sessions ended).
pub fn run(listener: TcpListener, cfg: DealerConfig) -> Result<()> {
    let shared = Arc::new(Shared::default());
    tracing::info!(addr = %listener.local_addr()?, "dealer listening");
    listener.set_nonblocking(true)?;
    loop {
        if let Some(n) = cfg.sessions {
            if shared.finished.load(Ordering::SeqCst) >= n {
                return Ok(());
            }
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                tracing::warn!("dealer: accepting a connection failed: {e}");
                continue;
            }
        };
        stream.set_nonblocking(false)?;
        expire(&shared);
        let (shared, cfg) = (shared.clone(), cfg.clone());
        let _ = std::thread::Builder::new()
            .name("dealer-conn".into())
            .spawn(move || {
                let addr = stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| "?".into());
                if let Err(e) = handle(stream, &shared, &cfg) {
                    tracing::warn!(peer = %addr, "dealer: connection from {addr} dropped: {e:#}");
                }
            });
    }
}

fn expire(shared: &Shared) {
    let now = Instant::now();
    let mut kept = shared.kept.lock().unwrap_or_else(|e| e.into_inner());
    kept.retain(|id, k| {
        let keep = k.deadline > now;
        if !keep {
            tracing::info!(
                session = format_args!("{id:016x}"),
                "dealer: kept session expired"
            );
        }
        keep
    });
}

fn handle(stream: TcpStream, shared: &Shared, cfg: &DealerConfig) -> Result<()> {
    let t = &cfg.endpoint.timeouts;
    let (mut link, peer) = cfg.endpoint.accept(stream)?;
    link.link_mut().set_read_timeout(t.handshake)?;
    let hello =
        identify_hello(&mut link).with_context(|| format!("reading the hello of {peer}"))?;
    link.link_mut().set_read_timeout(t.read)?;
    if let Some(id) = hello.resume {
        return resume(link, &peer, id, &hello, shared, cfg);
    }
    pair(link, peer, hello, shared, cfg)
}

/// Pairs this party with the one holding the same token, or waits for it.
fn pair(
    mut link: NetChannel,
    peer: Peer,
    hello: PartyHello,
    shared: &Shared,
    cfg: &DealerConfig,
) -> Result<()> {
    let rx = {
        let mut w = shared.waiting.lock().unwrap_or_else(|e| e.into_inner());
        match w.remove(&hello.token) {
            Some(other) if other.party != hello.party => {
                // The waiting thread runs the session with this link.
                let _ = other.tx.send((link, peer));
                return Ok(());
            }
            Some(other) => {
                w.insert(hello.token, other);
                link.send_error("another party with this role already waits with this token");
                bail!("{} connected twice with one session token", hello.party);
            }
            None => {
                let (tx, rx) = sync_channel(1);
                w.insert(
                    hello.token,
                    Waiting {
                        party: hello.party,
                        tx,
                    },
                );
                rx
            }
        }
    };
    let partner = rx.recv_timeout(cfg.pair_timeout);
    shared
        .waiting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&hello.token);
    let (other, other_peer) = match partner {
        Ok(p) => p,
        Err(_) => {
            link.send_error("no partner joined with this session token in time");
            bail!(
                "{} ({peer}) waited {:?} for its partner with the same session token",
                hello.party,
                cfg.pair_timeout
            );
        }
    };
    let (t0, t1, p1_peer) = match hello.party {
        PartyId::P0 => (link, other, other_peer),
        PartyId::P1 => (other, link, peer),
    };
    run_session(t0, t1, &p1_peer, shared, cfg)
}

fn run_session(
    mut t0: NetChannel,
    mut t1: NetChannel,
    p1_peer: &Peer,
    shared: &Shared,
    cfg: &DealerConfig,
) -> Result<()> {
    let svc = DealerService::new(os_seed()?, os_seed()?, os_u64()?, HostKernel::detect());
    let mut s = Session::new(svc);
    let id = s.id();
    tracing::info!(session = format_args!("{id:016x}"), p1 = %p1_peer, "dealer: session paired");
    let r = s.setup(&mut t0, &mut t1);
    drop(t0);
    r?;
    serve_p1(s, t1, p1_peer.key_bytes(), shared, cfg)
}

fn serve_p1(
    mut s: Session,
    mut t1: NetChannel,
    p1: [u8; 32],
    shared: &Shared,
    cfg: &DealerConfig,
) -> Result<()> {
    let id = s.id();
    let mut new_id = os_u64;
    let ending = s.serve_orders(&mut t1, &mut new_id);
    let sum = s.summary;
    tracing::info!(
        session = format_args!("{id:016x}"),
        passes = sum.passes,
        pass_seconds = format_args!("{:.1}", sum.pass_seconds),
        bytes_to_p1 = sum.p1.bytes_sent,
        "dealer: P1 left"
    );
    match ending {
        Ok(Ending::Keep) => {
            shared
                .kept
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    id,
                    Kept {
                        deadline: Instant::now() + cfg.keep,
                        p1,
                        session: s,
                    },
                );
        }
        Ok(Ending::Done) => {}
        Err(e) => {
            shared.finished.fetch_add(1, Ordering::SeqCst);
            return Err(e);
        }
    }
    shared.finished.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// P1 comes back to a kept session.
fn resume(
    mut link: NetChannel,
    peer: &Peer,
    id: u64,
    hello: &PartyHello,
    shared: &Shared,
    cfg: &DealerConfig,
) -> Result<()> {
    if hello.party != PartyId::P1 {
        link.send_error("only P1 resumes a session with the dealer");
        bail!("{} asked to resume a session", hello.party);
    }
    let kept = {
        let mut k = shared.kept.lock().unwrap_or_else(|e| e.into_inner());
        // Only the P1 that left the session may resume it.
        match k.get(&id) {
            Some(kept) if kept.p1 == peer.key_bytes() => k.remove(&id),
            _ => None,
        }
    };
    let Some(Kept { mut session, .. }) = kept else {
        link.send_error("no such session for this identity (expired, never kept, or another P1's)");
        bail!("{peer} asked to resume unknown session {id:016x}");
    };
    session.greet(PartyId::P1, &mut link)?;
    tracing::info!(session = format_args!("{id:016x}"), p1 = %peer, "dealer: session resumed");
    serve_p1(session, link, peer.key_bytes(), shared, cfg)
}

/// The address a listener ended up on (for `--listen 127.0.0.1:0`).
pub fn local_addr(l: &TcpListener) -> Result<SocketAddr> {
    Ok(l.local_addr()?)
}
