//! Jobs a party runs, shared by the `party` command and the benchmarks.

use std::time::Instant;

use anyhow::{Context, Result};
use secformer_core::dealer::Dealer;
use secformer_core::kernel::MatMul;
use secformer_core::party::PartyId;
use secformer_core::protocols::{input, reveal, weight};
use secformer_core::session::Session;
use secformer_core::share::AShare;
use secformer_core::transport::{Stats, Transport};

/// What one party measured in the weight-product job.
#[derive(Debug, Clone, Default)]
pub struct MatmulReport {
    /// Seconds of the weight setup (sharing `W`, opening `F`), once per model load.
    pub setup_seconds: f64,
    /// Seconds of the per-inference offline preparation (mean over reps).
    pub prepare_seconds: f64,
    /// Seconds of the online product (median over reps).
    pub online_seconds: f64,
    /// Peer traffic of one online product.
    pub online: Stats,
    /// Dealer traffic of one inference's preparation (received by this party).
    pub dealer: Stats,
    /// Seconds to exchange `E` alone (m x k words each way), measured after the products.
    pub e_transfer_seconds: f64,
    /// Seconds of this party's online GEMM alone while the other party runs its own.
    pub concurrent_gemm_seconds: f64,
    /// The revealed product (P1 only), ring elements.
    pub output: Option<Vec<u64>>,
}

/// Runs the weight product `X W` as party `s.party()`: P0 owns `w` (`k x n`, encoded),
/// P1 owns `x` (`m x k`, encoded); `reps` inferences each prepare a fresh mask and run the
/// online product; the last output is revealed to P1. With `owned`, P0 keeps `W` in the
/// clear ([`weight::setup_owned`]); otherwise `W` is secret-shared.
pub fn matmul_job<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    m: usize,
    k: usize,
    n: usize,
    w: Option<&[u64]>,
    x: Option<&[u64]>,
    reps: usize,
    owned: bool,
) -> Result<MatmulReport> {
    let reps = reps.max(1);
    let mut rep = MatmulReport::default();
    let mut wsh = vec![AShare::default(); k * n];
    let mut xsh = vec![AShare::default(); m * k];
    input::share_input(s, PartyId::P0, w, &mut wsh).context("sharing the weights")?;
    input::share_input(s, PartyId::P1, x, &mut xsh).context("sharing the input")?;

    let t0 = Instant::now();
    let mut wprime = vec![0u64; k * n];
    let mut fmat = vec![0u64; k * n];
    let mut scratch =
        vec![0u64; weight::setup_scratch_words(k, n).max(weight::apply_scratch_words(m, k, n))];
    let sw = if owned {
        weight::setup_owned(s, 0, k, n, w, &mut wprime, &mut fmat).context("weight setup")?
    } else {
        weight::setup(s, 0, k, n, &wsh, &mut wprime, &mut fmat, &mut scratch)
            .context("weight setup")?
    };
    rep.setup_seconds = t0.elapsed().as_secs_f64();

    let mut out = vec![AShare::default(); m * n];
    let mut storage = vec![0u64; weight::prepare_words(m, k, n)];
    let mut times = Vec::new();
    let mut prep_total = 0.0;
    for r in 0..reps {
        let d0 = s.dealer_stats();
        let tp = Instant::now();
        let prep = weight::prepare(s, &sw, m, &mut storage).context("preparing the product")?;
        prep_total += tp.elapsed().as_secs_f64();
        let d1 = s.dealer_stats();
        // Synchronize the parties so each times only the product, not waiting for the other.
        let mut sync = [0u64; 1];
        s.peer_mut().exchange_u64(&[0], &mut sync)?;
        let before = s.peer_stats();
        let t = Instant::now();
        weight::apply(s, &sw, prep, &xsh, &mut out, &mut scratch).context("online product")?;
        times.push(t.elapsed().as_secs_f64());
        if r == 0 {
            rep.online = s.peer_stats().since(&before);
            rep.dealer = d1.since(&d0);
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    rep.online_seconds = times[times.len() / 2];
    rep.prepare_seconds = prep_total / reps as f64;

    // Breakdown: the transfer of E alone, and the GEMM alone (both parties at once).
    let mut sync = [0u64; 1];
    let e_mine = vec![1u64; m * k];
    let mut e_theirs = vec![0u64; m * k];
    let mut tt = Vec::new();
    let mut tg = Vec::new();
    let mut c = vec![0u64; m * n];
    for _ in 0..reps {
        s.peer_mut().exchange_u64(&[0], &mut sync)?;
        let t = Instant::now();
        s.peer_mut().exchange_u64(&e_mine, &mut e_theirs)?;
        tt.push(t.elapsed().as_secs_f64());
        s.peer_mut().exchange_u64(&[0], &mut sync)?;
        let t = Instant::now();
        s.kernel().gemm(m, k, n, &e_theirs, &wprime, &mut c, true);
        tg.push(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&c);
    tt.sort_by(|a, b| a.total_cmp(b));
    tg.sort_by(|a, b| a.total_cmp(b));
    rep.e_transfer_seconds = tt[tt.len() / 2];
    rep.concurrent_gemm_seconds = tg[tg.len() / 2];

    if s.party() == PartyId::P1 {
        let mut o = vec![0u64; m * n];
        reveal::reveal_to(s, PartyId::P1, &out, Some(&mut o))?;
        rep.output = Some(o);
    } else {
        reveal::reveal_to(s, PartyId::P1, &out, None)?;
    }
    s.finish().context("ending the dealer stream")?;
    Ok(rep)
}
