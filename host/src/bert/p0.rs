//! P0's side of a session after setup: follows P1's orders, draws its share of each pass
//! in the background from its own seed, and runs the online phase of each pass P1 asks
//! for, from prepared material only.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use secformer_core::dealer::material::{read_header, Expect, Header, PassReader, FORMAT_VERSION};
use secformer_core::fxp::Encoding as Fxp;
use secformer_core::kernel::MatMul;
use secformer_core::party::PartyId;
use secformer_core::prg::{pass_stream, Seed};
use secformer_core::session::Session;
use secformer_core::transport::{FrameKind, NullTransport, Stats, Transport};
use serde::{Deserialize, Serialize};

use super::control::{FromP0, ToP0};
use super::forward::{forward, public_embeddings, Buffers, P0Role};
use super::plan::{self, Plan};
use super::pool::{Order, Pool, PoolConfig, Ready};
use super::prepare::{draw_pass, SlotBuffers};
use super::profile::Profiler;
use super::weights::{RingModel, SessionSetup, SessionWeights};
use super::PassShape;

/// What binds a session's preprocessing (written into every preprocessing header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIds {
    /// The session id (D's).
    pub session: u64,
    /// P0's and P1's identities (their public keys).
    pub identities: [[u8; 32]; 2],
    /// The model fingerprint.
    pub model: [u8; 32],
}

impl SessionIds {
    /// The header of `party`'s share of pass `index` of an order.
    pub fn header(&self, party: PartyId, order: &Order, index: u32) -> Header {
        Header {
            version: FORMAT_VERSION,
            prep: order.prep,
            first: index,
            count: 1,
            party,
            identities: self.identities,
            model: self.model,
            batch: order.shape.batch as u16,
            bucket: order.shape.bucket as u32,
            plan: order.plan.hash,
            requests: order.plan.requests.len() as u32,
            pass_bytes: order.plan.material_bytes,
            checksums: false,
        }
    }

    /// What a consumer of `party`'s share of a pass requires of its header.
    pub fn expect(&self, party: PartyId, prep: u64, shape: &PassShape, plan: u64) -> Expect {
        Expect {
            prep: Some(prep),
            party: Some(party),
            identities: Some(self.identities),
            model: Some(self.model),
            shape: Some((shape.batch as u16, shape.bucket as u32)),
            plan: Some(plan),
        }
    }
}

/// What one online pass cost P0.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default)]
pub struct PassCost {
    /// Seconds of the online phase.
    pub seconds: f64,
    /// Peer traffic of the online phase.
    pub online: Stats,
    /// Traffic with D during the online phase (always zero: the material is prepared).
    pub dealer: Stats,
}

/// How long the online phase waits for a pass still being drawn.
pub const PASS_WAIT: Duration = Duration::from_secs(3600);

/// What P0 keeps of a session between connections: the setup's shares, the seeds, and
/// the pool with its preparer thread.
pub struct P0State {
    setup: SessionSetup,
    ids: SessionIds,
    pair: Seed,
    pool: Arc<Pool>,
    preparer: Option<JoinHandle<()>>,
}

impl P0State {
    /// Starts P0's side after setup: `seed` is P0's seed shared with D, `pair` the P0-P1
    /// seed. The preparer thread starts idle (it draws what P1 orders).
    pub fn start<K: MatMul + Clone + Send + 'static>(
        setup: SessionSetup,
        ids: SessionIds,
        seed: Seed,
        pair: Seed,
        kernel: K,
        pool_cfg: PoolConfig,
    ) -> Self {
        let pool = Pool::new(pool_cfg);
        let preparer = {
            let (pool, ids) = (pool.clone(), ids.clone());
            std::thread::Builder::new()
                .name("p0-preparer".into())
                .spawn(move || {
                    let mut bufs = SlotBuffers::default();
                    pool.run_preparer(
                        |o, i| ids.header(PartyId::P0, o, i),
                        |o, i, w| {
                            draw_pass::<_, NullTransport, _>(
                                &o.plan,
                                (o.prep, i),
                                PartyId::P0,
                                &seed,
                                None,
                                &kernel,
                                w,
                                &mut bufs,
                            )
                            .map(|_| 0)
                        },
                    )
                })
                .ok()
        };
        P0State {
            setup,
            ids,
            pair,
            pool,
            preparer,
        }
    }

    /// The session id.
    pub fn session(&self) -> u64 {
        self.ids.session
    }

    /// The P0-P1 seed (sent again to a resuming P1).
    pub fn pair_seed(&self) -> &Seed {
        &self.pair
    }
}

impl Drop for P0State {
    fn drop(&mut self) {
        self.pool.stop();
        if let Some(h) = self.preparer.take() {
            let _ = h.join();
        }
    }
}

/// P0's session after setup, serving one connection of P1.
pub struct P0Session<'m, K> {
    model: &'m RingModel,
    state: P0State,
    kernel: K,
    buffers: Buffers,
    public: Vec<u64>,
}

impl<'m, K: MatMul> P0Session<'m, K> {
    /// Serves `state` (new or kept) with `model`.
    pub fn new(model: &'m RingModel, state: P0State, kernel: K) -> Self {
        P0Session {
            model,
            state,
            kernel,
            buffers: Buffers::default(),
            public: Vec::new(),
        }
    }

    /// Ends the connection, keeping the session's state.
    pub fn into_state(self) -> P0State {
        self.state
    }

    /// The pool (for status and logs).
    pub fn pool(&self) -> &Arc<Pool> {
        &self.state.pool
    }

    /// Serves P1's requests over `peer` until P1 says goodbye; returns whether P1 asked to
    /// keep the session for a resume. `on_pass` sees each online pass's cost.
    pub fn serve<T: Transport>(
        &mut self,
        peer: &mut T,
        mut on_pass: impl FnMut(&PassCost),
    ) -> Result<bool> {
        loop {
            let msg: ToP0 = peer
                .recv_msg(FrameKind::Control)
                .context("waiting for P1's next request")?;
            match msg {
                ToP0::Prepare {
                    prep,
                    first,
                    count,
                    shape,
                    plan,
                } => {
                    let mine = self.plan(&shape)?;
                    if mine.hash != plan {
                        bail!(
                            "P1's plan for {shape:?} differs from P0's (hash {plan:016x} vs {:016x}): \
                             the two sides run different programs",
                            mine.hash
                        );
                    }
                    self.state.pool.order(Order {
                        prep,
                        shape,
                        plan: mine,
                        first,
                        count,
                    });
                    peer.send_msg(FrameKind::Control, &FromP0::Accepted)?;
                    // While P1 waits for the pool, not inside the first online pass.
                    let f = Fxp::default().frac_bits();
                    self.buffers.fit(&self.state.setup.shape, &shape, f);
                }
                ToP0::Infer { prep, index } => {
                    let cost = self.online(peer, prep, index)?;
                    on_pass(&cost);
                }
                ToP0::Pause(on) => {
                    if on {
                        self.state.pool.pause()
                    } else {
                        self.state.pool.resume()
                    }
                    peer.send_msg(FrameKind::Control, &FromP0::Accepted)?;
                }
                ToP0::WaitIdle => {
                    self.state.pool.wait_idle()?;
                    peer.send_msg(FrameKind::Control, &FromP0::Idle)?;
                }
                ToP0::Bye { keep } => return Ok(keep),
            }
        }
    }

    fn plan(&self, shape: &PassShape) -> Result<Arc<Plan>> {
        shape.check(&self.state.setup.shape)?;
        plan::cached(&self.state.setup.shape, shape, PartyId::P0)
    }

    /// One online pass from prepared material.
    fn online<T: Transport>(&mut self, peer: &mut T, prep: u64, index: u32) -> Result<PassCost> {
        let ready = self.state.pool.take(prep, index, PASS_WAIT)?;
        let r = self.run_pass(peer, &ready);
        self.state.pool.done(ready);
        r
    }

    fn run_pass<T: Transport>(&mut self, peer: &mut T, ready: &Ready) -> Result<PassCost> {
        let plan = self.plan(&ready.shape)?;
        let mut src = ready.reader()?;
        let h = read_header(&mut src)?;
        self.state
            .ids
            .expect(PartyId::P0, ready.prep, &ready.shape, plan.hash)
            .check(&h)?;
        let reader = PassReader::new(src, &h, ready.index)?;
        public_embeddings(
            &self.model.positions,
            self.state.setup.shape.hidden,
            &ready.shape,
            &mut self.public,
        );
        peer.send_msg(
            FrameKind::Control,
            &FromP0::Ready {
                offline_seconds: ready.seconds,
            },
        )?;
        let w = SessionWeights::p0(&self.state.setup, self.model)?;
        let stream = pass_stream(ready.prep, ready.index);
        let mut s = Session::with_pair_stream(
            PartyId::P0,
            Fxp::default(),
            &mut *peer,
            reader,
            &self.kernel,
            &self.state.pair,
            stream,
        );
        let t = Instant::now();
        let st0 = s.peer_stats();
        let role = P0Role {
            public: &self.public,
        };
        let mut prof = Profiler::default();
        forward(
            &mut s,
            &w,
            &self.state.setup.shape,
            &ready.shape,
            &role,
            &mut prof,
            &mut self.buffers,
        )?;
        s.finish()?;
        let cost = PassCost {
            seconds: t.elapsed().as_secs_f64(),
            online: s.peer_stats().since(&st0),
            dealer: s.dealer_stats(),
        };
        peer.send_msg(FrameKind::Control, &cost)?;
        Ok(cost)
    }
}
