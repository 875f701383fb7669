//! The request plan of a pass: every dealer item the forward pass will take, in order.
//!
//! The plan depends only on public data (the model's shape and the pass shape), so it is
//! recorded once by a dry run of [`super::forward::forward`] over a transport to nobody, a
//! kernel that multiplies nothing and a dealer that only records
//! ([`secformer_core::dealer::material::PlanRecorder`]). The same dry run counts what the
//! party would send and wait for: the pass's predicted online bytes and rounds, which the
//! tests compare with real runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result};
use secformer_core::dealer::material::{pass_bytes, plan_hash, PlanRecorder};
use secformer_core::dealer::Request;
use secformer_core::fxp::Encoding as Fxp;
use secformer_core::kernel::NullKernel;
use secformer_core::party::PartyId;
use secformer_core::prg::Seed;
use secformer_core::session::Session;
use secformer_core::transport::{NullTransport, Stats};

use super::forward::{forward, Buffers, P0Role, P1Role, Role};
use super::weights::{placeholder_setup, SessionWeights};
use super::{ModelShape, PassShape};

/// One pass's plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The requests, in order.
    pub requests: Vec<Request>,
    /// Their hash ([`plan_hash`]).
    pub hash: u64,
    /// Predicted online traffic of the recording party (bytes sent, rounds waited).
    pub traffic: Stats,
    /// Bytes of the recording party's stored material of one pass.
    pub material_bytes: u64,
    /// The party the plan was recorded as.
    pub party: PartyId,
}

impl Plan {
    /// Dealer items in the plan.
    pub fn items(&self) -> usize {
        self.requests.iter().map(|r| r.items.len()).sum()
    }
}

/// Records the plan of `pass` as `party`.
pub fn record(m: &ModelShape, pass: &PassShape, party: PartyId) -> Result<Plan> {
    let setup = placeholder_setup(m);
    let w = SessionWeights::shape_only(&setup)?;
    let mut s = Session::new(
        party,
        Fxp::default(),
        NullTransport::default(),
        PlanRecorder::new(party),
        NullKernel,
        &Seed([0; 32]),
    );
    let mut buffers = Buffers::default();
    match party {
        PartyId::P0 => {
            let public = vec![0u64; pass.rows() * m.hidden];
            run(
                &mut s,
                &w,
                m,
                pass,
                &P0Role { public: &public },
                &mut buffers,
            )?;
        }
        PartyId::P1 => {
            let mut role = P1Role::default();
            role.load(m, pass, &[])?;
            run(&mut s, &w, m, pass, &role, &mut buffers)?;
        }
    }
    let traffic = s.peer_stats();
    let (_, rec) = s.into_parts();
    let hash = plan_hash(&rec.requests);
    let material_bytes = pass_bytes(&rec.requests, party);
    Ok(Plan {
        requests: rec.requests,
        hash,
        traffic,
        material_bytes,
        party,
    })
}

fn run<R: Role>(
    s: &mut Session<NullTransport, PlanRecorder, NullKernel>,
    w: &SessionWeights<'_>,
    m: &ModelShape,
    pass: &PassShape,
    role: &R,
    buffers: &mut Buffers,
) -> Result<()> {
    // A dry run is no progress: a display watching this thread's passes must not see it.
    super::observe::unobserved(|| forward(s, w, m, pass, role, &mut (), buffers))
        .map(|_| ())
        .context("recording the request plan")
}

type PlanKey = (String, PassShape, PartyId);

/// Plans recorded so far in this process, by model shape, pass shape and party (a dry
/// run of a large model takes a second or more, and sessions of one model share plans).
pub fn cached(m: &ModelShape, pass: &PassShape, party: PartyId) -> Result<Arc<Plan>> {
    static CACHE: OnceLock<Mutex<HashMap<PlanKey, Arc<Plan>>>> = OnceLock::new();
    let key = (format!("{m:?}"), *pass, party);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(p.clone());
    }
    let plan = Arc::new(record(m, pass, party)?);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, plan.clone());
    Ok(plan)
}
