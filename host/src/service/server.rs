//! P0's model server: accepts P1 clients until stopped, runs up to `max_sessions` sessions
//! at once (each on its own thread, with its own pool), queues a bounded number of clients
//! beyond that (telling them how many are ahead), and keeps a session's state for a while
//! after P1 leaves asking for it, so that P1 can resume without a new setup.
//!
//! A client that sends nothing valid within the handshake timeout, that gives up while
//! queued, or that fails in the middle of a session is logged with its address, the phase
//! and the reason, and dropped; the server and the other sessions go on.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use secformer_core::fxp::Encoding as Fxp;
use secformer_core::party::PartyId;
use secformer_core::session::Session;
use secformer_core::transport::{FrameKind, Transport};
use serde::{Deserialize, Serialize};

use super::{read_client_hello, ClientHello, Endpoint, NetChannel, ServerHello};
use crate::bert::p0::{P0Session, P0State, SessionIds};
use crate::bert::pool::PoolConfig;
use crate::bert::weights::{setup_p0, RingModel};
use crate::kernel::HostKernel;
use crate::link::Peer;
use crate::model::fingerprint::ModelInfo;
use crate::net::os_seed;

/// The model P0 serves.
pub struct ServedModel {
    /// Its weights in the ring encoding.
    pub ring: RingModel,
    /// Its public description (sent to P1).
    pub info: ModelInfo,
    /// Its fingerprint.
    pub fingerprint: [u8; 32],
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The dealer's address.
    pub dealer: String,
    /// Link security and timeouts.
    pub endpoint: Endpoint,
    /// Sessions served at once.
    pub max_sessions: usize,
    /// Clients waiting for a free slot at most (others are refused with a message).
    pub queue: usize,
    /// How long a session's state is kept after P1 leaves asking for it.
    pub keep: Duration,
    /// Bytes of prepared passes each session keeps in memory (beyond: files).
    pub memory_budget: u64,
    /// Where passes beyond the budget go.
    pub spill_dir: std::path::PathBuf,
    /// Stop after this many sessions (`None`: run until stopped).
    pub sessions: Option<u32>,
}

/// Before a session starts, P0 tells a waiting client where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Admission {
    /// Every slot is busy: `ahead` clients wait before this one.
    Queued {
        /// Clients ahead.
        ahead: u32,
    },
    /// The session starts; `resumed` says whether P0 still has the session asked for.
    Admitted {
        /// The kept session will be resumed.
        resumed: bool,
    },
}

/// How often a queued client hears of its place.
const QUEUE_NOTICE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Slots {
    active: usize,
    queued: usize,
}

/// A kept session and the key of the P1 allowed to resume it.
struct Kept {
    deadline: Instant,
    p1: [u8; 32],
    state: P0State,
}

struct Shared {
    slots: Mutex<Slots>,
    freed: Condvar,
    kept: Mutex<HashMap<u64, Kept>>,
    finished: AtomicU32,
}

/// Runs the server on `listener` until stopped (or `cfg.sessions` sessions ended).
pub fn run(listener: TcpListener, model: Arc<ServedModel>, cfg: ServeConfig) -> Result<()> {
    let shared = Arc::new(Shared {
        slots: Mutex::new(Slots::default()),
        freed: Condvar::new(),
        kept: Mutex::new(HashMap::new()),
        finished: AtomicU32::new(0),
    });
    tracing::info!(addr = %listener.local_addr()?, "P0 serving");
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
                tracing::warn!("P0: accepting a connection failed: {e}");
                continue;
            }
        };
        stream.set_nonblocking(false)?;
        expire(&shared);
        let (shared, model, cfg) = (shared.clone(), model.clone(), cfg.clone());
        let _ = std::thread::Builder::new()
            .name("p0-session".into())
            .spawn(move || {
                let addr = stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| "?".into());
                if let Err(e) = connection(stream, &shared, &model, &cfg) {
                    tracing::warn!(peer = %addr, "P0: connection from {addr} dropped: {e:#}");
                }
            });
    }
}

fn expire(shared: &Shared) {
    let now = Instant::now();
    let mut kept = shared.kept.lock().unwrap_or_else(|e| e.into_inner());
    kept.retain(|_, k| k.deadline > now);
}

fn connection(
    stream: TcpStream,
    shared: &Shared,
    model: &ServedModel,
    cfg: &ServeConfig,
) -> Result<()> {
    let (mut link, peer) = cfg.endpoint.accept(stream)?;
    let hello = read_client_hello(&mut link, &cfg.endpoint.timeouts)
        .with_context(|| format!("during the handshake with {peer}"))?;
    admit(&mut link, shared, cfg).with_context(|| format!("while {peer} was queued"))?;
    let r = session(&mut link, &peer, &hello, shared, model, cfg)
        .with_context(|| format!("session with {peer}"));
    let mut slots = shared.slots.lock().unwrap_or_else(|e| e.into_inner());
    slots.active -= 1;
    shared.freed.notify_one();
    drop(slots);
    shared.finished.fetch_add(1, Ordering::SeqCst);
    if let Err(e) = &r {
        // The client needs the cause, not P0's bookkeeping around it (the message is short).
        link.send_error(&secformer_core::error::short_message(format_args!(
            "P0: {}",
            e.root_cause()
        )));
    }
    r
}

/// Waits for a free slot (telling the client its place), or refuses when the queue is
/// full.
fn admit(link: &mut NetChannel, shared: &Shared, cfg: &ServeConfig) -> Result<()> {
    let mut slots = shared.slots.lock().unwrap_or_else(|e| e.into_inner());
    if slots.active < cfg.max_sessions {
        slots.active += 1;
        return Ok(());
    }
    if slots.queued >= cfg.queue {
        let msg = format!(
            "server busy: {} sessions running and {} waiting; try again later",
            slots.active, slots.queued
        );
        drop(slots);
        link.send_error(&msg);
        bail!("{msg}");
    }
    slots.queued += 1;
    let ahead = slots.queued as u32;
    drop(slots);
    let mut told = link.send_msg(FrameKind::Control, &Admission::Queued { ahead });
    let mut last = Instant::now();
    let mut slots = shared.slots.lock().unwrap_or_else(|e| e.into_inner());
    while told.is_ok() && slots.active >= cfg.max_sessions {
        slots = shared
            .freed
            .wait_timeout(slots, Duration::from_secs(1))
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if last.elapsed() >= QUEUE_NOTICE {
            // Repeating the notice keeps the client's reads alive and finds clients that
            // gave up (the write fails).
            let ahead = slots.queued as u32;
            drop(slots);
            told = link.send_msg(FrameKind::Control, &Admission::Queued { ahead });
            last = Instant::now();
            slots = shared.slots.lock().unwrap_or_else(|e| e.into_inner());
        }
    }
    slots.queued -= 1;
    told.context("the client left while queued")?;
    slots.active += 1;
    Ok(())
}

fn session(
    link: &mut NetChannel,
    peer: &Peer,
    hello: &ClientHello,
    shared: &Shared,
    model: &ServedModel,
    cfg: &ServeConfig,
) -> Result<()> {
    let kept = hello.resume.and_then(|id| {
        let mut k = shared.kept.lock().unwrap_or_else(|e| e.into_inner());
        // Only the P1 that left the session may resume it.
        match k.get(&id) {
            Some(kept) if kept.p1 == peer.key_bytes() => k.remove(&id).map(|k| k.state),
            _ => None,
        }
    });
    link.send_msg(
        FrameKind::Control,
        &Admission::Admitted {
            resumed: kept.is_some(),
        },
    )?;
    let state = match kept {
        Some(state) => {
            tracing::info!(peer = %peer, session = format_args!("{:016x}", state.session()), "P0: session resumed");
            link.send_msg(
                FrameKind::Hello,
                &ServerHello {
                    version: secformer_core::dealer::PROTOCOL_VERSION,
                    session: state.session(),
                    pair: state.pair_seed().clone(),
                    resumed: true,
                },
            )?;
            state
        }
        None => new_session(link, peer, hello, model, cfg)?,
    };
    let mut p0 = P0Session::new(&model.ring, state, HostKernel::detect());
    let keep = p0
        .serve(link, |c| {
            tracing::info!(peer = %peer, seconds = format_args!("{:.3}", c.seconds), bytes = c.online.bytes_sent, "P0: pass served")
        })
        .context("serving")?;
    if keep {
        let state = p0.into_state();
        shared
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                state.session(),
                Kept {
                    deadline: Instant::now() + cfg.keep,
                    p1: peer.key_bytes(),
                    state,
                },
            );
    }
    tracing::info!(peer = %peer, kept = keep, "P0: session ended");
    Ok(())
}

fn new_session(
    link: &mut NetChannel,
    peer: &Peer,
    hello: &ClientHello,
    model: &ServedModel,
    cfg: &ServeConfig,
) -> Result<P0State> {
    let (client, session, _) =
        cfg.endpoint
            .join_dealer(&cfg.dealer, PartyId::P0, hello.token, None)?;
    let seed = client.seed().clone();
    let pair = os_seed()?;
    link.send_msg(
        FrameKind::Hello,
        &ServerHello {
            version: secformer_core::dealer::PROTOCOL_VERSION,
            session,
            pair: pair.clone(),
            resumed: false,
        },
    )?;
    send_info(link, &model.info)?;
    tracing::info!(peer = %peer, session = format_args!("{session:016x}"), "P0: new session, sharing the weights");
    let mut s = Session::new(
        PartyId::P0,
        Fxp::default(),
        &mut *link,
        client,
        HostKernel::detect(),
        &pair,
    );
    let setup = setup_p0(&mut s, &model.ring, |_, _| {}).context("setup")?;
    s.finish()?;
    let ids = SessionIds {
        session,
        identities: [cfg.endpoint.identity(), peer.key_bytes()],
        model: model.fingerprint,
    };
    Ok(P0State::start(
        setup,
        ids,
        seed,
        pair,
        HostKernel::detect(),
        PoolConfig {
            memory_budget: cfg.memory_budget,
            spill_dir: cfg.spill_dir.clone(),
            label: format!("p0-{session:016x}"),
        },
    ))
}

/// Sends the model's public description (JSON: it may exceed a control message).
pub fn send_info<T: Transport>(t: &mut T, info: &ModelInfo) -> Result<()> {
    let bytes = serde_json::to_vec(info)?;
    t.send_frame(FrameKind::Control, &bytes)?;
    Ok(())
}

/// Receives P0's model description.
pub fn recv_info<T: Transport>(t: &mut T) -> Result<ModelInfo> {
    let mut buf = vec![0u8; 1 << 20];
    let n = t
        .recv_frame(FrameKind::Control, &mut buf, false)
        .context("waiting for P0's model description")?;
    serde_json::from_slice(&buf[..n]).context("malformed model description from P0")
}
