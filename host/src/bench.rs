//! `secformer bench`: runs dealer + P0 + P1 on 127.0.0.1 (threads, real TCP) and reports
//! time, bytes, rounds and accuracy.

use std::net::TcpListener;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use secformer_core::fxp::Encoding;
use secformer_core::kernel::MatMul;
use secformer_core::party::PartyId;
use secformer_core::prg::{Prg, Seed};
use serde::Serialize;

use crate::jobs::{matmul_job, MatmulReport};
use crate::kernel::HostKernel;
use crate::net::{connect_party, local_endpoints, run_dealer_session, PeerAddr, Timeouts};

/// The result of `bench matmul`.
#[derive(Debug, Clone, Serialize)]
pub struct MatmulBench {
    /// Rows of X.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of W.
    pub n: usize,
    /// GEMM kernel in use.
    pub kernel: &'static str,
    /// Online seconds of the slowest party (median over reps).
    pub online_seconds: f64,
    /// Online seconds of P0 and P1.
    pub online_seconds_per_party: [f64; 2],
    /// Wire bytes each party sends online (the larger of the two).
    pub online_bytes_per_party: u64,
    /// Payload bytes each party sends online (the larger of the two).
    pub online_payload_bytes_per_party: u64,
    /// Bytes the dealer sends for one inference (corrections to P1 and acks to P0).
    pub dealer_bytes: u64,
    /// Online rounds (the larger of the two parties).
    pub rounds: u64,
    /// Max |secure - plaintext| over the output, in real units.
    pub max_abs_error: f64,
    /// One single-threaded plaintext u64 GEMM of the same shape with the same kernel.
    pub plain_gemm_seconds: f64,
    /// Seconds to exchange `E` alone (slowest party).
    pub e_transfer_seconds: f64,
    /// One party's GEMM while the other party runs its own (slowest party): what the
    /// online product costs in compute when both parties share the machine.
    pub concurrent_gemm_seconds: f64,
    /// `(online_seconds - e_transfer_seconds) / plain_gemm_seconds`: the protocol's
    /// compute overhead over one plaintext GEMM, with the transfer of E set apart.
    pub overhead_ratio_excluding_transfer: f64,
    /// `online_seconds / plain_gemm_seconds`.
    pub overhead_ratio: f64,
    /// Offline preparation seconds per inference (slowest party).
    pub prepare_seconds: f64,
    /// One-time weight setup seconds (slowest party).
    pub setup_seconds: f64,
    /// Repetitions.
    pub reps: usize,
    /// Whether P0 owned the weight in the clear (only P1's half of E sent, P1 no matmul).
    pub owned: bool,
}

/// Runs the weight-product benchmark.
pub fn bench_matmul(m: usize, k: usize, n: usize, reps: usize, owned: bool) -> Result<MatmulBench> {
    let enc = Encoding::default();
    let mut prg = Prg::new(&Seed::from_u64_for_tests(0xbe7c), 0);
    let mut gen = |len: usize, scale: f64| -> Vec<u64> {
        let mut v = vec![0u64; len];
        prg.fill(&mut v);
        v.iter()
            .map(|r| {
                enc.encode(((*r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale)
                    .unwrap_or(0)
            })
            .collect()
    };
    let w = gen(k * n, 1.0);
    let x = gen(m * k, 4.0);

    let [de, e0, e1] = local_endpoints(Timeouts::default())?;
    let dl = TcpListener::bind("127.0.0.1:0")?;
    let daddr = dl.local_addr()?.to_string();
    let pl = TcpListener::bind("127.0.0.1:0")?;
    let paddr = pl.local_addr()?.to_string();
    let dealer = std::thread::spawn(move || run_dealer_session(&dl, &de));
    let (wc, da0) = (w.clone(), daddr.clone());
    let p0 = std::thread::spawn(move || -> Result<MatmulReport> {
        let mut s = connect_party(PartyId::P0, &PeerAddr::Bound(pl), &da0, &e0)?;
        matmul_job(&mut s, m, k, n, Some(&wc), None, reps, owned)
    });
    let (xc, da1) = (x.clone(), daddr);
    let p1 = std::thread::spawn(move || -> Result<MatmulReport> {
        let mut s = connect_party(PartyId::P1, &PeerAddr::Connect(paddr), &da1, &e1)?;
        matmul_job(&mut s, m, k, n, None, Some(&xc), reps, owned)
    });
    let r0 = p0
        .join()
        .map_err(|_| anyhow!("P0 panicked"))?
        .context("P0")?;
    let r1 = p1
        .join()
        .map_err(|_| anyhow!("P1 panicked"))?
        .context("P1")?;
    dealer
        .join()
        .map_err(|_| anyhow!("dealer panicked"))?
        .context("dealer")?;

    // Accuracy against the plaintext product of the encoded inputs.
    let out = r1
        .output
        .as_ref()
        .ok_or_else(|| anyhow!("P1 got no output"))?;
    let mut max_err = 0f64;
    let wd: Vec<f64> = w.iter().map(|v| enc.decode(*v)).collect();
    for i in 0..m {
        let xrow: Vec<f64> = x[i * k..(i + 1) * k]
            .iter()
            .map(|v| enc.decode(*v))
            .collect();
        let mut acc = vec![0f64; n];
        for (p, xv) in xrow.iter().enumerate() {
            for (a, wv) in acc.iter_mut().zip(&wd[p * n..(p + 1) * n]) {
                *a += xv * wv;
            }
        }
        for j in 0..n {
            max_err = max_err.max((enc.decode(out[i * n + j]) - acc[j]).abs());
        }
    }

    // The same kernel on the same shape, single-threaded, plaintext.
    let kern = HostKernel::detect();
    let mut c = vec![0u64; m * n];
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        kern.gemm(m, k, n, &x, &w, &mut c, false);
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&c);

    let online = r0.online_seconds.max(r1.online_seconds);
    Ok(MatmulBench {
        m,
        k,
        n,
        kernel: kern.name(),
        online_seconds: online,
        online_seconds_per_party: [r0.online_seconds, r1.online_seconds],
        online_bytes_per_party: r0.online.bytes_sent.max(r1.online.bytes_sent),
        online_payload_bytes_per_party: r0.online.payload_sent.max(r1.online.payload_sent),
        dealer_bytes: r0.dealer.bytes_received + r1.dealer.bytes_received,
        rounds: r0.online.rounds.max(r1.online.rounds),
        max_abs_error: max_err,
        plain_gemm_seconds: best,
        overhead_ratio: online / best,
        e_transfer_seconds: r0.e_transfer_seconds.max(r1.e_transfer_seconds),
        concurrent_gemm_seconds: r0.concurrent_gemm_seconds.max(r1.concurrent_gemm_seconds),
        overhead_ratio_excluding_transfer: (online
            - r0.e_transfer_seconds.max(r1.e_transfer_seconds))
            / best,
        prepare_seconds: r0.prepare_seconds.max(r1.prepare_seconds),
        setup_seconds: r0.setup_seconds.max(r1.setup_seconds),
        reps,
        owned,
    })
}
