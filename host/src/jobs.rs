//! Jobs a party runs, shared by the `party` command and the benchmarks.

use std::time::Instant;

use anyhow::{Context, Result};
use secformer_core::dealer::material::{
    pass_bytes, plan_hash, read_header, write_header, Header, PassReader, PassWriter, PlanRecorder,
    FORMAT_VERSION,
};
use secformer_core::dealer::{layout, Dealer, Item, Request, Source};
use secformer_core::fxp::Encoding as Fxp;
use secformer_core::kernel::NullKernel;
use secformer_core::prg::Seed;
use secformer_core::transport::NullTransport;

use crate::kernel::HostKernel;
use secformer_core::kernel::MatMul;
use secformer_core::party::PartyId;
use secformer_core::protocols::{input, lookup, reveal, weight};
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
/// clear ([`weight::setup_owned`]) and each product's material is prepared into memory
/// ahead of its online phase ([`prepare_live`]); otherwise `W` is secret-shared.
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
    if owned {
        return owned_job(s, m, k, n, w, x, reps.max(1));
    }
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
    let sw = weight::setup(s, 0, k, n, &wsh, &mut wprime, &mut fmat, &mut scratch)
        .context("weight setup")?;
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

/// The request plan of one owned product of `m x k` by `k x n` (a dry run).
fn owned_plan(m: usize, k: usize, n: usize) -> Result<Vec<Request>> {
    let mut s = Session::new(
        PartyId::P1,
        Fxp::default(),
        NullTransport::default(),
        PlanRecorder::new(PartyId::P1),
        NullKernel,
        &Seed([0; 32]),
    );
    let wt = weight::OwnedWeight::shape_only(0, k, n);
    let xs = vec![AShare::default(); m * k];
    let mut out = vec![AShare::default(); m * n];
    let mut scratch = vec![0u64; weight::owned_scratch_words(m, k, n)];
    weight::apply_owned(&mut s, &wt, &xs, &mut out, &mut scratch)?;
    Ok(s.into_parts().1.requests)
}

/// Draws the material of `plan` from a live dealer stream into memory (a preprocessing
/// stream with one pass), P1 computing `A F + C` for its owned triples with `f`.
pub fn prepare_live<D: Dealer, K: MatMul>(
    dealer: &mut D,
    plan: &[Request],
    f: Option<&[u64]>,
    kernel: &K,
) -> Result<Vec<u8>> {
    let party = dealer.party();
    let h = Header {
        version: FORMAT_VERSION,
        prep: 0,
        first: 0,
        count: 1,
        party,
        identities: [[0; 32]; 2],
        model: [0; 32],
        batch: 1,
        bucket: 0,
        plan: plan_hash(plan),
        requests: plan.len() as u32,
        pass_bytes: pass_bytes(plan, party),
        checksums: false,
    };
    let mut buf = Vec::with_capacity(h.pass_bytes as usize + 256);
    write_header(&mut buf, &h)?;
    let mut w = PassWriter::new(buf, false);
    w.begin(0)?;
    let mut bufs: Vec<Vec<u64>> = Vec::new();
    for req in plan {
        dealer.request(&req.items)?;
        w.request(req)?;
        for item in req.items.iter() {
            let slots = layout(item);
            bufs.resize_with(slots.len(), Vec::new);
            let mut views: Vec<&mut [u64]> = slots
                .iter()
                .zip(bufs.iter_mut())
                .map(|(sl, b)| {
                    let len = if sl.source(party) == Source::Zero {
                        0
                    } else {
                        sl.len
                    };
                    b.resize(len, 0);
                    b.as_mut_slice()
                })
                .collect();
            dealer.take(*item, &mut views)?;
            match (*item, f) {
                (Item::OwnedTriple { m, k, n, .. }, Some(f)) => {
                    let (a, c) = views.split_at_mut(1);
                    let dims = (m as usize, k as usize, n as usize);
                    weight::prepare_owned(kernel, dims, a[0], f, c[0])?;
                }
                (Item::OwnedLookup { m, k, n, .. }, Some(f)) => {
                    let dims = (m as usize, k as usize, n as usize);
                    let mut scratch =
                        vec![0u64; lookup::prepare_scratch_words(dims.0, dims.1, dims.2)];
                    lookup::prepare(kernel, dims, f, &mut views, &mut scratch)?;
                }
                _ => {}
            }
            let ro: Vec<&[u64]> = views.iter().map(|v| &**v).collect();
            w.item(item, party, &ro)?;
        }
    }
    w.end()?;
    Ok(w.into_inner()?)
}

fn owned_job<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    m: usize,
    k: usize,
    n: usize,
    w: Option<&[u64]>,
    x: Option<&[u64]>,
    reps: usize,
) -> Result<MatmulReport> {
    let mut rep = MatmulReport::default();
    let mut xsh = vec![AShare::default(); m * k];
    input::share_input(s, PartyId::P1, x, &mut xsh).context("sharing the input")?;
    let t0 = Instant::now();
    let p0 = s.party().is_p0();
    let mut fmat = vec![0u64; if p0 { 0 } else { k * n }];
    let mut scratch = vec![0u64; weight::setup_owned_scratch_words(s.party(), k, n)];
    let ow = weight::setup_owned(s, 0, k, n, w, &mut fmat, &mut scratch).context("weight setup")?;
    rep.setup_seconds = t0.elapsed().as_secs_f64();
    let plan = owned_plan(m, k, n)?;
    let mut out = vec![AShare::default(); m * n];
    let mut scratch = vec![0u64; weight::owned_scratch_words(m, k, n)];
    let (mut times, mut prep_total) = (Vec::new(), 0.0);
    for r in 0..reps {
        let d0 = s.dealer_stats();
        let tp = Instant::now();
        let f = (!p0).then_some(ow.matrix());
        let mat = prepare_live(s.dealer_mut(), &plan, f, &HostKernel::detect())?;
        prep_total += tp.elapsed().as_secs_f64();
        let d1 = s.dealer_stats();
        let mut sync = [0u64; 1];
        s.peer_mut().exchange_u64(&[0], &mut sync)?;
        let before = s.peer_stats();
        let t = Instant::now();
        online_from(s, &ow, &mat, &xsh, &mut out, &mut scratch)?;
        times.push(t.elapsed().as_secs_f64());
        if r == 0 {
            rep.online = s.peer_stats().since(&before);
            rep.dealer = d1.since(&d0);
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    rep.online_seconds = times[times.len() / 2];
    rep.prepare_seconds = prep_total / reps as f64;
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

/// The online product from prepared material `mat` (no dealer traffic).
fn online_from<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    ow: &weight::OwnedWeight<'_>,
    mat: &[u8],
    x: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let mut src = mat;
    let h = read_header(&mut src)?;
    let reader = PassReader::new(src, &h, 0)?;
    let party = s.party();
    let enc = s.encoding();
    let (peer, _) = (s.peer_mut(), ());
    // The owned product shares no inputs, so the pair stream is unused here.
    let kernel = HostKernel::detect();
    let mut on = Session::new(party, enc, peer, reader, kernel, &Seed([0; 32]));
    weight::apply_owned(&mut on, ow, x, out, scratch)?;
    on.finish()?;
    Ok(())
}
