//! The three endpoints of a session in one process, as threads over links the caller
//! provides (in-memory pairs or TCP): for tests, examples and quick local runs. Every
//! step is the one the separate processes take; only the transport of the links differs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use secformer_core::dealer::server::{identify, DealerService};
use secformer_core::dealer::DealerClient;
use secformer_core::fxp::Encoding as Fxp;
use secformer_core::party::PartyId;
use secformer_core::prg::Seed;
use secformer_core::session::{exchange_pair_seed, Session};
use secformer_core::transport::Transport;

use super::p0::{P0Session, P0State, SessionIds};
use super::p1::{P1Options, P1Session, PassResult};
use super::pool::PoolConfig;
use super::weights::{setup_p0, setup_p1, RingModel};
use super::{Lengths, ModelShape};
use crate::dealer::DealerSession;
use crate::kernel::HostKernel;
use crate::model::{BertConfig, BertWeights, Encoding};
use crate::net::os_seed;

/// The links of a local run: for each of D-P0, D-P1 and P0-P1, the two ends (the first
/// named endpoint's end first).
pub struct Links<T> {
    /// D's end and P0's end.
    pub d0: (T, T),
    /// D's end and P1's end.
    pub d1: (T, T),
    /// P0's end and P1's end.
    pub p: (T, T),
}

/// Options of a local run.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Texts per pass.
    pub batch: usize,
    /// P1's choices (buckets, lengths mode, depth).
    pub p1: P1Options,
    /// Memory budget of each party's pool, bytes.
    pub memory_budget: u64,
    /// Spill directory.
    pub spill_dir: PathBuf,
    /// Derive every seed and preprocessing id from this number instead of the OS (tests
    /// that compare two runs bit for bit; never in deployment).
    pub test_seed: Option<u64>,
}

impl LocalOptions {
    /// Defaults for a model: batch 1, secret lengths, the default buckets, depth 1,
    /// 1 GiB per pool in memory.
    pub fn for_model(m: &ModelShape) -> Self {
        LocalOptions {
            batch: 1,
            p1: P1Options {
                depth: 1,
                buckets: m.default_buckets(),
                lengths: Lengths::Secret,
            },
            memory_budget: 1 << 30,
            spill_dir: std::env::temp_dir().join("secformer-spill"),
            test_seed: None,
        }
    }
}

/// What a local run produced.
pub struct LocalRun {
    /// One result per pass.
    pub passes: Vec<PassResult>,
    /// Seconds of the setup (P1's view).
    pub setup_seconds: f64,
}

/// Seed `i` of a run: from the OS, or derived from the test seed.
fn seed(opts: &LocalOptions, i: u64) -> Result<Seed> {
    match opts.test_seed {
        Some(t) => Ok(Seed::from_u64_for_tests(t.wrapping_mul(31).wrapping_add(i))),
        None => os_seed(),
    }
}

fn ids(m: &ModelShape) -> SessionIds {
    SessionIds {
        session: 0,
        identities: [[1; 32], [2; 32]],
        model: super::fingerprint(m),
    }
}

/// Runs D, P0 and P1 over `links` on `encs` (grouped `opts.batch` texts per pass).
pub fn run<T: Transport + Send + 'static>(
    links: Links<T>,
    cfg: &BertConfig,
    weights: &BertWeights,
    encs: &[Encoding],
    opts: &LocalOptions,
) -> Result<LocalRun> {
    let ring = RingModel::new(cfg, weights)?;
    let shape = ring.shape.clone();
    let Links {
        d0: (dd0, pd0),
        d1: (dd1, pd1),
        p: (pp0, pp1),
    } = links;
    let pool = |label: &str| PoolConfig {
        memory_budget: opts.memory_budget,
        spill_dir: opts.spill_dir.clone(),
        label: label.into(),
    };
    std::thread::scope(|sc| -> Result<LocalRun> {
        let dealer = sc.spawn(move || run_dealer(dd0, dd1, opts));
        let (ring, shape2) = (&ring, shape.clone());
        let p0pool = pool("p0");
        let p0 = sc.spawn(move || -> Result<()> {
            let (mut peer, session, dealer_seed) = connect(PartyId::P0, pd0, pp0)?;
            let pair = seed(opts, 3)?;
            exchange_pair_seed(PartyId::P0, &mut peer.0, session, Some(pair.clone()))?;
            let mut s = Session::new(
                PartyId::P0,
                Fxp::default(),
                peer.0,
                peer.1,
                HostKernel::detect(),
                &pair,
            );
            let setup = setup_p0(&mut s, ring, |_, _| {})?;
            s.finish()?;
            let (mut link, _) = s.into_parts();
            let state = P0State::start(
                setup,
                ids(&shape2),
                dealer_seed,
                pair,
                HostKernel::detect(),
                p0pool,
            );
            let mut p0 = P0Session::new(ring, state, HostKernel::detect());
            p0.serve(&mut link, |_| {})?;
            Ok(())
        });
        let r1 = run_p1(pd1, pp1, &shape, encs, opts, pool("p1"));
        let r0 = p0.join().map_err(|_| anyhow!("P0 panicked"))?;
        let rd = dealer.join().map_err(|_| anyhow!("the dealer panicked"))?;
        let r1 = r1.context("P1")?;
        r0.context("P0")?;
        rd.context("dealer")?;
        Ok(r1)
    })
}

/// Runs D, P0 and P1 as threads of this process over authenticated links on 127.0.0.1
/// with fresh identities (the demo, `eval --secure`, examples).
pub fn run_secure(
    cfg: &BertConfig,
    weights: &BertWeights,
    encs: &[Encoding],
    opts: &LocalOptions,
) -> Result<LocalRun> {
    let t = crate::service::Timeouts {
        read: std::time::Duration::from_secs(600),
        ..Default::default()
    };
    let [d, p0, p1] = crate::net::local_endpoints(t)?;
    let pair = crate::service::loopback_pair;
    let (d0a, d0b) = pair(&p0, &d)?;
    let (d1a, d1b) = pair(&p1, &d)?;
    let (pa, pb) = pair(&p1, &p0)?;
    let links = Links {
        d0: (d0b, d0a),
        d1: (d1b, d1a),
        p: (pb, pa),
    };
    run(links, cfg, weights, encs, opts)
}

/// A party's dealer client and peer link after the dealer's hello.
type Joined<T> = ((T, DealerClient<T>), u64, Seed);

fn connect<T: Transport>(party: PartyId, dealer: T, peer: T) -> Result<Joined<T>> {
    let (client, session) = DealerClient::connect(dealer, party)
        .with_context(|| format!("{party}: dealer handshake"))?;
    let seed = client.seed().clone();
    Ok(((peer, client), session, seed))
}

fn run_p1<T: Transport + Send + 'static>(
    dealer: T,
    peer: T,
    shape: &ModelShape,
    encs: &[Encoding],
    opts: &LocalOptions,
    pool: PoolConfig,
) -> Result<LocalRun> {
    let ((mut link, client), session, seed) = connect(PartyId::P1, dealer, peer)?;
    let pair = exchange_pair_seed(PartyId::P1, &mut link, session, None)?;
    let t = Instant::now();
    let mut s = Session::new(
        PartyId::P1,
        Fxp::default(),
        link,
        client,
        HostKernel::detect(),
        &pair,
    );
    let setup = setup_p1(&mut s, shape, |_, _| {})?;
    s.finish()?;
    let setup_seconds = t.elapsed().as_secs_f64();
    let (mut link, client) = s.into_parts();
    let mut p1 = P1Session::start(
        setup,
        ids(shape),
        seed,
        pair,
        client.into_link(),
        HostKernel::detect(),
        pool,
        opts.p1.clone(),
    );
    let mut passes = Vec::new();
    for chunk in encs.chunks(opts.batch.max(1)) {
        let texts: Vec<&Encoding> = chunk.iter().collect();
        let shape = p1.shape_for(&texts, opts.batch)?;
        passes.push(p1.infer(&mut link, shape, &texts)?);
    }
    p1.close(&mut link)?;
    Ok(LocalRun {
        passes,
        setup_seconds,
    })
}

fn run_dealer<T: Transport>(
    mut d0: T,
    mut d1: T,
    opts: &LocalOptions,
) -> Result<crate::dealer::DealerSummary> {
    let a = identify(&mut d0)?;
    let b = identify(&mut d1)?;
    if (a, b) != (PartyId::P0, PartyId::P1) {
        anyhow::bail!("the dealer's links are not P0's and P1's");
    }
    let svc = DealerService::new(seed(opts, 1)?, seed(opts, 2)?, 1, HostKernel::detect());
    let mut d = DealerSession::new(svc);
    d.setup(&mut d0, &mut d1)?;
    drop(d0);
    let mut next = opts.test_seed.unwrap_or(0);
    let test = opts.test_seed.is_some();
    let mut new_id = move || -> Result<u64> {
        next = next.wrapping_add(0x9e37_79b9);
        if test {
            Ok(next)
        } else {
            crate::net::os_u64()
        }
    };
    d.serve_orders(&mut d1, &mut new_id)?;
    Ok(d.summary)
}
