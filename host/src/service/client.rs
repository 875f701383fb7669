//! P1's client: connects to P0 and D, sets up (or resumes) a session, and runs passes
//! from prepared material.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use secformer_core::fxp::Encoding as Fxp;
use secformer_core::party::PartyId;
use secformer_core::session::Session;
use secformer_core::transport::{FrameKind, Transport};

use super::server::{recv_info, Admission};
use super::{new_token, ClientHello, Endpoint, NetChannel, ServerHello};
use crate::bert::p0::SessionIds;
use crate::bert::p1::{P1Options, P1Session, PassResult};
use crate::bert::pool::PoolConfig;
use crate::bert::saved::{self, SavedState};
use crate::bert::weights::setup_p1;
use crate::bert::{ModelShape, PassShape};
use crate::kernel::HostKernel;
use crate::link::Peer;
use crate::model::fingerprint::ModelInfo;
use crate::model::Encoding;

/// How the client connects and keeps passes.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// P0's address.
    pub server: String,
    /// D's address.
    pub dealer: String,
    /// Link security and timeouts.
    pub endpoint: Endpoint,
    /// Bytes of prepared passes kept in memory (beyond: files).
    pub memory_budget: u64,
    /// Where passes beyond the budget go.
    pub spill_dir: std::path::PathBuf,
    /// Buckets, lengths mode and pool depth.
    pub p1: P1Options,
    /// Where sessions are kept between runs for a resume (`None`: never kept).
    pub sessions: Option<std::path::PathBuf>,
}

/// What the client reports while it connects.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Queued at P0 behind `ahead` clients.
    Queued(u32),
    /// Receiving the weights' setup: weight `done` of `total`.
    Setup(usize, usize),
}

/// A connected P1.
pub struct Client {
    peer: NetChannel,
    p1: Option<P1Session<NetChannel, HostKernel>>,
    /// Seconds from connecting to the end of the setup (or of the resume).
    pub setup_seconds: f64,
    /// The session id.
    pub session: u64,
    /// Whether the session was resumed.
    pub resumed: bool,
    /// Where the session is kept between runs.
    dir: Option<std::path::PathBuf>,
}

impl Client {
    /// Connects to P0 and D. With `cfg.sessions` set, resumes the session kept there for
    /// this server, dealer and model if P0 (and D) still have it; otherwise runs a new
    /// session's setup for a model whose public description is `info` (P0 must serve the
    /// same).
    pub fn connect(
        cfg: &ClientConfig,
        shape: &ModelShape,
        info: &ModelInfo,
        mut progress: impl FnMut(Progress),
    ) -> Result<Client> {
        let t0 = Instant::now();
        let model = crate::bert::fingerprint(info);
        let dir = cfg
            .sessions
            .as_ref()
            .map(|root| saved::session_dir(root, &cfg.server, &cfg.dealer, &model));
        let kept = dir
            .as_ref()
            .and_then(|d| saved::load_state(d).ok())
            .filter(|s| s.model == model);
        let (mut peer, p0) = cfg.endpoint.connect(&cfg.server, "P0", false)?;
        let token = new_token()?;
        let resume = kept
            .as_ref()
            .filter(|s| s.identities[0] == p0.key_bytes())
            .map(|s| s.session);
        peer.send_msg(
            FrameKind::Hello,
            &ClientHello {
                version: secformer_core::dealer::PROTOCOL_VERSION,
                token,
                resume,
            },
        )?;
        let resumed = wait_admission(&mut peer, &mut progress)
            .with_context(|| format!("waiting for P0 ({p0}) to admit the session"))?;
        let p1 = match (resumed, kept, &dir) {
            (true, Some(state), Some(dir)) => {
                Self::resumed(cfg, shape, &mut peer, &p0, state, dir)?
            }
            _ => {
                if let Some(d) = &dir {
                    // Whatever was kept is of a session P0 no longer has.
                    let _ = std::fs::remove_dir_all(d);
                }
                Self::fresh(cfg, shape, info, &mut peer, &p0, token, &mut progress)?
            }
        };
        Ok(Client {
            session: p1.session(),
            peer,
            p1: Some(p1),
            setup_seconds: t0.elapsed().as_secs_f64(),
            resumed,
            dir,
        })
    }

    fn pool_config(cfg: &ClientConfig, session: u64) -> PoolConfig {
        PoolConfig {
            memory_budget: cfg.memory_budget,
            spill_dir: cfg.spill_dir.clone(),
            label: format!("p1-{session:016x}"),
        }
    }

    /// A new session: join D with the token, receive P0's hello, check the model, receive
    /// the setup.
    fn fresh(
        cfg: &ClientConfig,
        shape: &ModelShape,
        info: &ModelInfo,
        peer: &mut NetChannel,
        p0: &Peer,
        token: [u8; 16],
        progress: &mut impl FnMut(Progress),
    ) -> Result<P1Session<NetChannel, HostKernel>> {
        let (client, session, _) =
            cfg.endpoint
                .join_dealer(&cfg.dealer, PartyId::P1, token, None)?;
        let seed = client.seed().clone();
        let hello: ServerHello = peer
            .recv_msg(FrameKind::Hello)
            .with_context(|| format!("waiting for the hello of P0 ({p0})"))?;
        if hello.session != session {
            bail!("P0 joined another dealer session than P1 (check that both use the same dealer)");
        }
        check_info(info, &recv_info(peer)?)?;
        let mut s = Session::new(
            PartyId::P1,
            Fxp::default(),
            &mut *peer,
            client,
            HostKernel::detect(),
            &hello.pair,
        );
        let setup = setup_p1(&mut s, shape, |i, n| progress(Progress::Setup(i, n)))
            .context("receiving the model's setup")?;
        s.finish()?;
        let (_, client) = s.into_parts();
        let ids = SessionIds {
            session,
            identities: [p0.key_bytes(), cfg.endpoint.identity()],
            model: crate::bert::fingerprint(info),
        };
        Ok(P1Session::start(
            setup,
            ids,
            seed,
            hello.pair,
            client.into_link(),
            HostKernel::detect(),
            Self::pool_config(cfg, session),
            cfg.p1.clone(),
        ))
    }

    /// A kept session P0 still has: reload P1's side from disk and rejoin D (if D cannot
    /// be reached, the kept passes still run).
    fn resumed(
        cfg: &ClientConfig,
        shape: &ModelShape,
        peer: &mut NetChannel,
        p0: &Peer,
        state: SavedState,
        dir: &std::path::Path,
    ) -> Result<P1Session<NetChannel, HostKernel>> {
        let hello: ServerHello = peer
            .recv_msg(FrameKind::Hello)
            .with_context(|| format!("waiting for the hello of P0 ({p0})"))?;
        if hello.session != state.session || hello.pair != state.pair {
            bail!(
                "P0 resumed another session than the one kept at {}",
                dir.display()
            );
        }
        let setup = saved::load_setup(dir, shape)?;
        let dealer =
            match cfg
                .endpoint
                .join_dealer(&cfg.dealer, PartyId::P1, [0; 16], Some(state.session))
            {
                Ok((client, _, _)) => Some(client.into_link()),
                Err(e) => {
                    tracing::warn!(
                        "the dealer cannot resume the session ({e:#}); using the kept passes only"
                    );
                    None
                }
            };
        let session = state.session;
        P1Session::restore(
            dir,
            state,
            setup,
            dealer,
            HostKernel::detect(),
            Self::pool_config(cfg, session),
            cfg.p1.clone(),
        )
    }

    fn p1(&mut self) -> &mut P1Session<NetChannel, HostKernel> {
        self.p1.as_mut().expect("the session is open until close")
    }

    /// The pass shape for `texts` with `batch` texts per pass.
    pub fn shape_for(&mut self, texts: &[&Encoding], batch: usize) -> Result<PassShape> {
        self.p1().shape_for(texts, batch)
    }

    /// Orders passes of `shape` ahead (the pool's depth), so the first text does not wait.
    pub fn warm(&mut self, shape: PassShape) -> Result<()> {
        let (p1, peer) = (self.p1.as_mut().expect("open"), &mut self.peer);
        p1.top_up(peer, shape)
    }

    /// Waits until both parties have drawn every ordered pass.
    pub fn wait_warm(&mut self) -> Result<()> {
        let (p1, peer) = (self.p1.as_mut().expect("open"), &mut self.peer);
        p1.wait_warm(peer)
    }

    /// Stops (`true`) or restarts drawing passes at both parties.
    pub fn pause(&mut self, on: bool) -> Result<()> {
        let (p1, peer) = (self.p1.as_mut().expect("open"), &mut self.peer);
        p1.pause(peer, on)
    }

    /// Runs one pass of `shape` over `texts`.
    pub fn infer(&mut self, shape: PassShape, texts: &[&Encoding]) -> Result<PassResult> {
        let (p1, peer) = (self.p1.as_mut().expect("open"), &mut self.peer);
        p1.infer(peer, shape, texts)
    }

    /// Ends the session; with a sessions directory configured, keeps it there (and asks
    /// P0 and D to keep their side) for the next run to resume.
    pub fn close(mut self) -> Result<()> {
        let Some(p1) = self.p1.take() else {
            return Ok(());
        };
        match &self.dir {
            Some(d) => p1.keep(&mut self.peer, d),
            None => p1.close(&mut self.peer),
        }
    }
}

fn wait_admission<T: Transport>(peer: &mut T, progress: &mut impl FnMut(Progress)) -> Result<bool> {
    loop {
        let a: Admission = peer
            .recv_msg(FrameKind::Control)
            .context("waiting for P0 to admit the session")?;
        match a {
            Admission::Queued { ahead } => progress(Progress::Queued(ahead)),
            Admission::Admitted { resumed } => return Ok(resumed),
        }
    }
}

fn check_info(mine: &ModelInfo, theirs: &ModelInfo) -> Result<()> {
    if mine != theirs {
        bail!(
            "{}",
            crate::model::fingerprint::mismatch_message(theirs, mine)
        );
    }
    Ok(())
}
