//! P1's side of a session after setup: it decides what to prepare (the pass shapes its
//! texts need, `depth` passes ahead of each), orders preprocessing from D and the same
//! passes from P0, draws its own share in the background (its seed, D's corrections and
//! the weight products' `A F + C`), and runs each text's online phase from prepared
//! material only.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use secformer_core::dealer::material::{read_header, PassReader};
use secformer_core::fxp::Encoding as Fxp;
use secformer_core::kernel::MatMul;
use secformer_core::party::PartyId;
use secformer_core::prg::{pass_stream, Seed};
use secformer_core::session::Session;
use secformer_core::transport::{FrameKind, Stats, Transport};
use serde::Serialize;

use super::control::{FromDealer, FromP0, ToDealer, ToP0};
use super::fmat::FSource;
use super::forward::{forward, Buffers, P1Role};
use super::p0::{PassCost, SessionIds, PASS_WAIT};
use super::plan::{self, Plan};
use super::pool::{Order, Pool, PoolConfig, Ready, Store};
use super::prepare::{draw_pass, P1Inputs, SlotBuffers};
use super::profile::{Components, Profiler};
use super::saved::{self, SavedPass, SavedState};
use super::weights::{SessionSetup, SessionWeights};
use super::{bucket_for, Lengths, ModelShape, PassShape};
use crate::model::Encoding;

/// The result of one pass, as P1 sees it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PassResult {
    /// The pass's shape.
    pub shape: PassShape,
    /// Per text, its revealed output (logits, or the pooled vector before any
    /// normalization).
    pub outputs: Vec<Vec<f64>>,
    /// Seconds from the start of the online phase to the revealed result (P1).
    pub online_seconds: f64,
    /// P0's online seconds.
    pub p0_online_seconds: f64,
    /// P1's online traffic with P0.
    pub online: Stats,
    /// P0's online traffic with P1.
    pub p0_online: Stats,
    /// Traffic with D during the online phase, both parties (always zero).
    pub online_dealer_bytes: u64,
    /// Seconds P1 and P0 took to draw their shares of this pass (offline, before it).
    pub offline_seconds: [f64; 2],
    /// Bytes D sent P1 for this pass (offline, before it).
    pub dealer_bytes: u64,
    /// Per-component online costs (P1).
    pub components: Components,
    /// Preprocessing id and index of the pass used.
    pub pass: (u64, u32),
}

/// How P1 chooses and keeps passes.
#[derive(Debug, Clone)]
pub struct P1Options {
    /// Ready passes to keep per shape in use (the pool depth).
    pub depth: usize,
    /// Sequence buckets (sorted); texts are padded to the smallest that holds them.
    pub buckets: Vec<usize>,
    /// Whether token counts stay secret.
    pub lengths: Lengths,
}

/// P1's session after setup.
pub struct P1Session<L: Transport + Send + 'static, K> {
    shape: ModelShape,
    setup: Arc<SessionSetup>,
    ids: SessionIds,
    seed: Seed,
    pair: Seed,
    kernel: K,
    dealer: Option<Arc<Mutex<L>>>,
    pool: Arc<Pool>,
    preparer: Option<JoinHandle<()>>,
    outstanding: HashMap<PassShape, VecDeque<(u64, u32)>>,
    /// Per shape, its preprocessing id and the next index to order.
    preps: HashMap<PassShape, (u64, u32)>,
    opts: P1Options,
    buffers: Buffers,
    role: P1Role,
}

/// What P1 needs to draw its share of passes: its seed, its `F` matrices and its link to
/// D (absent when D is unreachable: kept passes can still be used, none drawn).
struct Drawing<L> {
    setup: Arc<SessionSetup>,
    ids: SessionIds,
    seed: Seed,
    dealer: Option<Arc<Mutex<L>>>,
}

impl<L: Transport + Send + 'static> Drawing<L> {
    /// Runs the preparer of `pool` until it stops.
    fn run<K: MatMul>(self, pool: &Pool, kernel: &K) {
        let mut bufs = SlotBuffers::default();
        let mut f = FSource::new(&self.setup.f, &self.setup.shape);
        pool.run_preparer(
            |o, i| self.ids.header(PartyId::P1, o, i),
            |o, i, w| {
                let dealer = self
                    .dealer
                    .as_ref()
                    .context("the dealer is unreachable, so no new pass can be prepared")?;
                let mut link = dealer.lock().unwrap_or_else(|e| e.into_inner());
                link.send_msg(
                    FrameKind::Control,
                    &ToDealer::Pass {
                        prep: o.prep,
                        index: i,
                    },
                )
                .context("asking the dealer for a pass")?;
                let before = link.stats().bytes_received;
                let inputs = P1Inputs {
                    dealer: &mut *link,
                    f: &mut f,
                };
                draw_pass(
                    &o.plan,
                    (o.prep, i),
                    PartyId::P1,
                    &self.seed,
                    Some(inputs),
                    kernel,
                    w,
                    &mut bufs,
                )
                .context("drawing a pass with the dealer's corrections")?;
                Ok(link.stats().bytes_received - before)
            },
        )
    }
}

impl<L: Transport + Send + 'static, K: MatMul + Clone + Send + 'static> P1Session<L, K> {
    /// Starts P1's side after setup. `dealer` is P1's link to D after the setup's live
    /// stream ended; `seed` is P1's seed shared with D, `pair` the P0-P1 seed.
    pub fn start(
        setup: SessionSetup,
        ids: SessionIds,
        seed: Seed,
        pair: Seed,
        dealer: L,
        kernel: K,
        pool_cfg: PoolConfig,
        opts: P1Options,
    ) -> Self {
        Self::build(setup, ids, seed, pair, Some(dealer), kernel, pool_cfg, opts)
    }

    fn build(
        mut setup: SessionSetup,
        ids: SessionIds,
        seed: Seed,
        pair: Seed,
        dealer: Option<L>,
        kernel: K,
        pool_cfg: PoolConfig,
        opts: P1Options,
    ) -> Self {
        // F is read only while drawing passes: keep it out of memory (see `fmat`).
        if let Err(e) = setup.f.spill(&pool_cfg.spill_dir) {
            tracing::warn!("keeping P1's F matrices in memory: {e:#}");
        }
        let setup = Arc::new(setup);
        let pool = Pool::new(pool_cfg);
        let dealer = dealer.map(|d| Arc::new(Mutex::new(d)));
        let drawing = Drawing {
            setup: setup.clone(),
            ids: ids.clone(),
            seed: seed.clone(),
            dealer: dealer.clone(),
        };
        let preparer = {
            let (pool, k) = (pool.clone(), kernel.clone());
            std::thread::Builder::new()
                .name("p1-preparer".into())
                .spawn(move || drawing.run(&pool, &k))
                .ok()
        };
        P1Session {
            shape: setup.shape.clone(),
            setup,
            ids,
            seed,
            pair,
            kernel,
            dealer,
            pool,
            preparer,
            outstanding: HashMap::new(),
            preps: HashMap::new(),
            opts,
            buffers: Buffers::default(),
            role: P1Role::default(),
        }
    }

    /// Resumes a session kept on disk in `dir` (see [`saved`]): its setup, seeds,
    /// preprocessing and prepared passes. `dealer` is `None` when D cannot be reached
    /// (then only the kept passes can run).
    pub fn restore(
        dir: &Path,
        state: SavedState,
        setup: SessionSetup,
        dealer: Option<L>,
        kernel: K,
        pool_cfg: PoolConfig,
        opts: P1Options,
    ) -> Result<Self> {
        let ids = SessionIds {
            session: state.session,
            identities: state.identities,
            model: state.model,
        };
        let mut s = Self::build(
            setup, ids, state.seed, state.pair, dealer, kernel, pool_cfg, opts,
        );
        s.pool.set_consumed(state.consumed);
        for (shape, prep, next) in state.preps {
            s.preps.insert(shape, (prep, next));
        }
        let kept: std::collections::HashSet<(u64, u32)> =
            state.passes.iter().map(|p| (p.prep, p.index)).collect();
        for (shape, prep, index) in state.outstanding {
            s.outstanding
                .entry(shape)
                .or_default()
                .push_back((prep, index));
            if !kept.contains(&(prep, index)) {
                // Ordered at P0 but not drawn here before the last run ended.
                let plan = s.plan(&shape)?;
                s.pool.order(Order {
                    prep,
                    shape,
                    plan,
                    first: index,
                    count: 1,
                });
            }
        }
        for p in state.passes {
            s.pool.add_ready(Ready {
                prep: p.prep,
                index: p.index,
                shape: p.shape,
                store: Store::File(dir.join(&p.file)),
                seconds: p.seconds,
                dealer_bytes: p.dealer_bytes,
            });
        }
        Ok(s)
    }

    /// The session id.
    pub fn session(&self) -> u64 {
        self.ids.session
    }

    /// The pool (for status and logs).
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The shape of a pass carrying `texts` (the bucket of the longest).
    pub fn shape_for(&self, texts: &[&Encoding], batch: usize) -> Result<PassShape> {
        let longest = texts.iter().map(|e| e.ids.len()).max().unwrap_or(1);
        let (bucket, lengths) = match self.opts.lengths {
            Lengths::Public => (longest, Lengths::Public),
            Lengths::Secret => (
                bucket_for(&self.opts.buckets, longest).with_context(|| {
                    format!(
                        "no bucket holds a text of {longest} tokens (buckets {:?})",
                        self.opts.buckets
                    )
                })?,
                Lengths::Secret,
            ),
        };
        let shape = PassShape {
            batch: batch.max(texts.len()),
            bucket,
            lengths,
        };
        shape.check(&self.shape)?;
        Ok(shape)
    }

    fn plan(&self, shape: &PassShape) -> Result<Arc<Plan>> {
        plan::cached(&self.shape, shape, PartyId::P1)
    }

    /// Orders `count` more passes of `shape` from D and P0.
    pub fn order<T: Transport>(
        &mut self,
        peer: &mut T,
        shape: PassShape,
        count: u32,
    ) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        let plan = self.plan(&shape)?;
        let (prep, first) = match self.preps.get(&shape) {
            Some(&p) => p,
            None => (self.new_preprocessing(&plan, u32::MAX)?, 0),
        };
        let next = first
            .checked_add(count)
            .context("too many passes of one preprocessing")?;
        self.preps.insert(shape, (prep, next));
        peer.send_msg(
            FrameKind::Control,
            &ToP0::Prepare {
                prep,
                first,
                count,
                shape,
                plan: plan.hash,
            },
        )
        .context("asking P0 to prepare passes")?;
        expect(peer, FromP0::Accepted)?;
        self.pool.order(Order {
            prep,
            shape,
            plan,
            first,
            count,
        });
        let q = self.outstanding.entry(shape).or_default();
        q.extend((first..next).map(|i| (prep, i)));
        // Sized now, so the first online pass of this shape does not fault its pages in.
        self.buffers
            .fit(&self.shape, &shape, Fxp::default().frac_bits());
        Ok(())
    }

    /// Asks D for a new preprocessing id for up to `count` passes of `plan` (one per pass
    /// shape and session: later orders of the same shape take its next indices).
    fn new_preprocessing(&self, plan: &Plan, count: u32) -> Result<u64> {
        let dealer = self
            .dealer
            .as_ref()
            .context("the dealer is unreachable, so no new pass can be ordered")?;
        let mut d = dealer.lock().unwrap_or_else(|e| e.into_inner());
        let mut ask = || -> Result<u64> {
            d.send_msg(
                FrameKind::Control,
                &ToDealer::Preprocess {
                    plan: plan.hash,
                    requests: plan.requests.len() as u32,
                    count,
                },
            )?;
            for r in &plan.requests {
                d.send_msg(FrameKind::DealerRequest, r)?;
            }
            match d
                .recv_msg(FrameKind::Control)
                .context("waiting for its preprocessing id")?
            {
                FromDealer::Preprocessing { prep } => Ok(prep),
            }
        };
        ask().context("ordering passes from the dealer")
    }

    /// Keeps `depth` passes of `shape` ordered ahead.
    pub fn top_up<T: Transport>(&mut self, peer: &mut T, shape: PassShape) -> Result<()> {
        let have = self.outstanding.get(&shape).map_or(0, |q| q.len());
        let want = self.opts.depth.max(1);
        if have < want {
            self.order(peer, shape, (want - have) as u32)?;
        }
        Ok(())
    }

    /// Stops or restarts drawing at both parties.
    pub fn pause<T: Transport>(&mut self, peer: &mut T, on: bool) -> Result<()> {
        peer.send_msg(FrameKind::Control, &ToP0::Pause(on))?;
        expect(peer, FromP0::Accepted)?;
        if on {
            self.pool.pause()
        } else {
            self.pool.resume()
        }
        Ok(())
    }

    /// Waits until both parties have drawn every ordered pass.
    pub fn wait_warm<T: Transport>(&mut self, peer: &mut T) -> Result<()> {
        self.pool.wait_idle()?;
        peer.send_msg(FrameKind::Control, &ToP0::WaitIdle)?;
        expect(peer, FromP0::Idle)
    }

    /// Runs one pass over `texts` (at most the pass's batch) and keeps the pool topped up.
    pub fn infer<T: Transport>(
        &mut self,
        peer: &mut T,
        shape: PassShape,
        texts: &[&Encoding],
    ) -> Result<PassResult> {
        if self.outstanding.get(&shape).is_none_or(|q| q.is_empty()) {
            self.order(peer, shape, 1)?;
        }
        let (prep, index) = self
            .outstanding
            .get_mut(&shape)
            .and_then(|q| q.pop_front())
            .context("no pass ordered")?;
        self.role.load(&self.shape, &shape, texts)?;
        peer.send_msg(FrameKind::Control, &ToP0::Infer { prep, index })
            .context("asking P0 to run a pass")?;
        let ready = self.pool.take(prep, index, PASS_WAIT)?;
        let r = self.run_pass(peer, &ready, texts.len());
        self.pool.done(ready);
        let r = r?;
        self.top_up(peer, shape)?;
        Ok(r)
    }

    fn run_pass<T: Transport>(
        &mut self,
        peer: &mut T,
        ready: &Ready,
        texts: usize,
    ) -> Result<PassResult> {
        let plan = self.plan(&ready.shape)?;
        let mut src = ready.reader()?;
        let h = read_header(&mut src)?;
        self.ids
            .expect(PartyId::P1, ready.prep, &ready.shape, plan.hash)
            .check(&h)?;
        let reader = PassReader::new(src, &h, ready.index)?;
        let p0_offline = match peer
            .recv_msg(FrameKind::Control)
            .context("waiting for P0 to be ready")?
        {
            FromP0::Ready { offline_seconds } => offline_seconds,
            other => bail!("P0 answered {other:?} to a pass request"),
        };
        let w = SessionWeights::p1(&self.setup)?;
        let mut s = Session::with_pair_stream(
            PartyId::P1,
            Fxp::default(),
            &mut *peer,
            reader,
            &self.kernel,
            &self.pair,
            pass_stream(ready.prep, ready.index),
        );
        let t = Instant::now();
        let st0 = s.peer_stats();
        let mut prof = Profiler::default();
        let out = forward(
            &mut s,
            &w,
            &self.shape,
            &ready.shape,
            &self.role,
            &mut prof,
            &mut self.buffers,
        )?;
        s.finish()?;
        let online_seconds = t.elapsed().as_secs_f64();
        let online = s.peer_stats().since(&st0);
        let dealer = s.dealer_stats();
        let p0: PassCost = peer
            .recv_msg(FrameKind::Control)
            .context("waiting for P0's pass report")?;
        let width = self.shape.output_width();
        Ok(PassResult {
            shape: ready.shape,
            outputs: out.chunks(width).take(texts).map(|c| c.to_vec()).collect(),
            online_seconds,
            p0_online_seconds: p0.seconds,
            online,
            p0_online: p0.online,
            online_dealer_bytes: dealer.bytes_sent
                + dealer.bytes_received
                + p0.dealer.bytes_sent
                + p0.dealer.bytes_received,
            offline_seconds: [ready.seconds, p0_offline],
            dealer_bytes: ready.dealer_bytes,
            components: prof.acc,
            pass: (ready.prep, ready.index),
        })
    }

    /// Ends the session at P0 and D without keeping it.
    pub fn close<T: Transport>(self, peer: &mut T) -> Result<()> {
        self.end(peer, None)
    }

    /// Ends the connection and keeps the session in `dir` for a resume (P0 and D are
    /// asked to keep their side): the setup, seeds, orders, used passes and every
    /// prepared pass not used yet.
    pub fn keep<T: Transport>(self, peer: &mut T, dir: &Path) -> Result<()> {
        self.end(peer, Some(dir))
    }

    fn end<T: Transport>(mut self, peer: &mut T, dir: Option<&Path>) -> Result<()> {
        let keep = dir.is_some();
        peer.send_msg(FrameKind::Control, &ToP0::Bye { keep })?;
        if keep {
            // Draw what is ordered before leaving, so the next run can start (and run
            // while D is away) from kept passes.
            if let Err(e) = self.pool.wait_idle() {
                tracing::warn!("keeping the session without its last pass: {e:#}");
            }
        }
        self.pool.stop();
        if let Some(h) = self.preparer.take() {
            let _ = h.join();
        }
        if let Some(dir) = dir {
            self.save(dir)?;
        }
        if let Some(d) = &self.dealer {
            let mut d = d.lock().unwrap_or_else(|e| e.into_inner());
            d.send_msg(FrameKind::Control, &ToDealer::Bye { keep })?;
        }
        Ok(())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        saved::private_dir(dir)?;
        let same = saved::load_state(dir).is_ok_and(|s| s.session == self.ids.session)
            && dir.join("setup.bin").exists();
        if !same {
            saved::save_setup(dir, &self.setup)?;
        }
        let mut passes = Vec::new();
        for r in self.pool.drain_ready() {
            let file = format!("pass-{:016x}-{}.sfpp", r.prep, r.index);
            let path = dir.join(&file);
            match &r.store {
                Store::Memory(v) => {
                    let mut f = saved::private_file(&path)?;
                    std::io::Write::write_all(&mut f, v)?;
                }
                Store::File(p) if *p != path => {
                    if std::fs::rename(p, &path).is_err() {
                        std::fs::copy(p, &path)?;
                        let _ = std::fs::remove_file(p);
                    }
                }
                Store::File(_) => {}
            }
            passes.push(SavedPass {
                shape: r.shape,
                prep: r.prep,
                index: r.index,
                file,
                seconds: r.seconds,
                dealer_bytes: r.dealer_bytes,
            });
        }
        let state = SavedState {
            session: self.ids.session,
            identities: self.ids.identities,
            model: self.ids.model,
            seed: self.seed.clone(),
            pair: self.pair.clone(),
            preps: self.preps.iter().map(|(s, (p, n))| (*s, *p, *n)).collect(),
            outstanding: self
                .outstanding
                .iter()
                .flat_map(|(s, q)| q.iter().map(move |(p, i)| (*s, *p, *i)))
                .collect(),
            consumed: self.pool.consumed(),
            passes,
            saved_at: saved::now_secs(),
        };
        saved::save_state(dir, &state)
    }
}

impl<L: Transport + Send + 'static, K> Drop for P1Session<L, K> {
    fn drop(&mut self) {
        self.pool.stop();
        if let Some(h) = self.preparer.take() {
            let _ = h.join();
        }
    }
}

fn expect<T: Transport>(peer: &mut T, want: FromP0) -> Result<()> {
    let got: FromP0 = peer
        .recv_msg(FrameKind::Control)
        .context("waiting for P0's answer")?;
    if got != want {
        bail!("P0 answered {got:?} instead of {want:?}");
    }
    Ok(())
}
