//! The dealer's side of one session: the live stream of the setup with both parties,
//! then P1's preprocessing orders. P0 needs nothing from D after setup (it draws its share
//! of every pass from its own seed), so its link is released once the setup's stream ends.
//! The session's state (seeds, issued preprocessings, passes served) can be kept after P1
//! leaves and resumed when P1 comes back ([`DealerSession::serve_orders`] again).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use secformer_core::dealer::material::plan_hash;
use secformer_core::dealer::server::DealerService;
use secformer_core::dealer::Request;
use secformer_core::kernel::MatMul;
use secformer_core::transport::{FrameKind, Stats, Transport, TransportError};

use crate::bert::control::{FromDealer, ToDealer};

/// Longest plan D accepts (requests per pass).
pub const MAX_PLAN_REQUESTS: u32 = 1 << 20;

/// A preprocessing D issued: its plan and the passes already served.
struct Preprocessing {
    plan: Vec<Request>,
    count: u32,
    served: BTreeSet<u32>,
}

/// What a dealer session did.
#[derive(Debug, Clone, Copy, Default)]
pub struct DealerSummary {
    /// Requests of the live (setup) stream.
    pub live_requests: u32,
    /// Traffic with P0.
    pub p0: Stats,
    /// Traffic with P1.
    pub p1: Stats,
    /// Passes served.
    pub passes: u64,
    /// Seconds spent generating passes.
    pub pass_seconds: f64,
}

/// How P1's orders ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// P1 said goodbye and asked D to keep the session.
    Keep,
    /// P1 said goodbye (or closed the link after the setup).
    Done,
}

/// One session at D.
pub struct DealerSession<K> {
    svc: DealerService<K>,
    preps: HashMap<u64, Preprocessing>,
    /// What it did so far.
    pub summary: DealerSummary,
}

impl<K: MatMul> DealerSession<K> {
    /// A session around a dealer with fresh seeds.
    pub fn new(svc: DealerService<K>) -> Self {
        DealerSession {
            svc,
            preps: HashMap::new(),
            summary: DealerSummary::default(),
        }
    }

    /// The session id.
    pub fn id(&self) -> u64 {
        self.svc.session()
    }

    /// Sends one party its hello again (a resumed session).
    pub fn greet<T: Transport>(
        &mut self,
        party: secformer_core::party::PartyId,
        t: &mut T,
    ) -> Result<()> {
        self.svc.greet_one(party, t).context("greeting the party")
    }

    /// Greets both parties and serves the setup's live stream until both end it.
    pub fn setup<T0: Transport, T1: Transport>(&mut self, t0: &mut T0, t1: &mut T1) -> Result<()> {
        self.svc.greet(t0, t1).context("greeting the parties")?;
        let live = self.svc.serve(t0, t1).context("serving the setup")?;
        self.summary.live_requests = live.requests;
        self.summary.p0 = t0.stats();
        Ok(())
    }

    /// Serves P1's orders until P1 says goodbye; errors are reported to P1.
    pub fn serve_orders<T1: Transport>(
        &mut self,
        t1: &mut T1,
        new_id: &mut dyn FnMut() -> Result<u64>,
    ) -> Result<Ending> {
        let r = self.orders(t1, new_id);
        if let Err(e) = &r {
            t1.send_error(&secformer_core::error::short_message(format_args!(
                "dealer: {e:#}"
            )));
        }
        self.summary.p1 = t1.stats();
        r
    }

    fn orders<T1: Transport>(
        &mut self,
        t1: &mut T1,
        new_id: &mut dyn FnMut() -> Result<u64>,
    ) -> Result<Ending> {
        loop {
            let msg: ToDealer = match t1.recv_msg(FrameKind::Control) {
                Ok(m) => m,
                // An idle P1 (no inference for a while) is not a failure.
                Err(TransportError::Io(embedded_io::ErrorKind::TimedOut)) => continue,
                // A party that needed nothing after its setup just leaves.
                Err(TransportError::Closed) if self.preps.is_empty() => return Ok(Ending::Done),
                Err(e) => return Err(e).context("waiting for P1's next order"),
            };
            match msg {
                ToDealer::Preprocess {
                    plan,
                    requests,
                    count,
                } => {
                    let prep = self.preprocess(t1, plan, requests, count, new_id)?;
                    t1.send_msg(FrameKind::Control, &FromDealer::Preprocessing { prep })?;
                }
                ToDealer::Pass { prep, index } => self.pass(t1, prep, index)?,
                ToDealer::Bye { keep } => {
                    return Ok(if keep { Ending::Keep } else { Ending::Done })
                }
            }
        }
    }

    fn preprocess<T1: Transport>(
        &mut self,
        t1: &mut T1,
        plan: u64,
        requests: u32,
        count: u32,
        new_id: &mut dyn FnMut() -> Result<u64>,
    ) -> Result<u64> {
        if requests == 0 || requests > MAX_PLAN_REQUESTS {
            bail!("P1 announced a plan of {requests} requests");
        }
        let mut reqs = Vec::with_capacity(requests as usize);
        for _ in 0..requests {
            let r = t1.recv_msg::<Request>(FrameKind::DealerRequest)?;
            secformer_core::dealer::limits::check_request(
                &r,
                secformer_core::dealer::limits::MAX_REQUEST_WORDS,
            )?;
            reqs.push(r);
        }
        if plan_hash(&reqs) != plan {
            bail!("P1's plan does not match its announced hash");
        }
        let prep = new_id()?;
        self.preps.insert(
            prep,
            Preprocessing {
                plan: reqs,
                count,
                served: BTreeSet::new(),
            },
        );
        Ok(prep)
    }

    fn pass<T1: Transport>(&mut self, t1: &mut T1, prep: u64, index: u32) -> Result<()> {
        let p = self
            .preps
            .get_mut(&prep)
            .with_context(|| format!("P1 asked for unknown preprocessing {prep:016x}"))?;
        if index >= p.count {
            bail!(
                "P1 asked for pass {index} of a preprocessing of {}",
                p.count
            );
        }
        // Each pass is generated once: a second copy would carry the same masks.
        if !p.served.insert(index) {
            bail!("P1 asked for pass {index} of {prep:016x} twice");
        }
        let t = Instant::now();
        self.svc.serve_pass(&p.plan, prep, index, t1)?;
        self.summary.passes += 1;
        self.summary.pass_seconds += t.elapsed().as_secs_f64();
        Ok(())
    }
}
