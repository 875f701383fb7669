//! `secformer bench ops`: the nonlinear protocols on the paper's shapes, dealer + P0 + P1
//! over TCP on 127.0.0.1, with time, bytes, rounds and error against f64.

use std::net::TcpListener;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use secformer_core::dealer::Dealer;
use secformer_core::fxp::Encoding;
use secformer_core::kernel::MatMul;
use secformer_core::party::PartyId;
use secformer_core::prg::{words_for_bits, Prg, Seed};
use secformer_core::protocols::{
    compare, gelu, input, layernorm, reciprocal, reveal, rsqrt, softmax_2quad, softmax_exact, tanh,
    Mask,
};
use secformer_core::session::Session;
use secformer_core::share::AShare;
use secformer_core::transport::{Stats, Transport};
use serde::Serialize;

use crate::net::{connect_party, local_endpoints, run_dealer_session, PeerAddr, Timeouts};

/// One row of `bench ops`.
#[derive(Debug, Clone, Serialize)]
pub struct OpRow {
    /// Protocol name.
    pub op: String,
    /// Shape, e.g. "128x3072".
    pub shape: String,
    /// Seconds of the slowest party.
    pub seconds: f64,
    /// Wire bytes each party sends (the larger).
    pub online_bytes_per_party: u64,
    /// Bytes the dealer sends P1 (corrections).
    pub dealer_bytes: u64,
    /// Rounds (the larger).
    pub rounds: u64,
    /// Max |secure - f64|.
    pub max_abs_error: f64,
    /// Mean |secure - f64|.
    pub mean_abs_error: f64,
    /// Elements.
    pub elements: usize,
}

struct Op {
    name: &'static str,
    shape: String,
    inputs: Vec<f64>,
    aux: Vec<f64>,
    reference: Vec<f64>,
}

fn uniform(prg: &mut Prg, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n)
        .map(|_| lo + (hi - lo) * ((prg.next_u64() >> 11) as f64 / (1u64 << 53) as f64))
        .collect()
}

fn ops(scale: usize) -> Vec<Op> {
    let enc = Encoding::default();
    let grid = |v: Vec<f64>| -> Vec<f64> {
        v.iter()
            .map(|x| enc.decode(enc.encode(*x).unwrap_or(0)))
            .collect()
    };
    let mut prg = Prg::new(&Seed::from_u64_for_tests(0x0b5), 0);
    let (t, d, h, heads, l) = (128 / scale, 3072 / scale, 768 / scale, 12, 128 / scale);
    let mut v = Vec::new();

    let x = grid(uniform(&mut prg, t * d, -64.0, 64.0));
    let r = x.iter().map(|v| (*v < 0.0) as u8 as f64).collect();
    v.push(Op {
        name: "comparison",
        shape: format!("{t}x{d}"),
        inputs: x,
        aux: vec![],
        reference: r,
    });

    let x = grid(uniform(&mut prg, t * d, -10.0, 10.0));
    let r = x.iter().map(|v| crate::model::plain::gelu(*v)).collect();
    v.push(Op {
        name: "gelu",
        shape: format!("{t}x{d}"),
        inputs: x,
        aux: vec![],
        reference: r,
    });

    // LayerNorm rows with variance from 1e-2 to 1e4.
    let mut x = Vec::with_capacity(t * h);
    for i in 0..t {
        let std = 10f64.powf(-1.0 + 3.0 * i as f64 / (t.max(2) - 1) as f64);
        let noise = uniform(&mut prg, h, -1.0, 1.0);
        let m = noise.iter().sum::<f64>() / h as f64;
        let sd = (noise.iter().map(|v| (v - m).powi(2)).sum::<f64>() / h as f64).sqrt();
        x.extend(noise.iter().map(|v| (v - m) / sd * std.min(150.0)));
    }
    let x = grid(x);
    let g = grid(uniform(&mut prg, h, 0.5, 2.0));
    let b = grid(uniform(&mut prg, h, -1.0, 1.0));
    let mut r = vec![0.0; t * h];
    for i in 0..t {
        let row = &x[i * h..(i + 1) * h];
        let mu = row.iter().sum::<f64>() / h as f64;
        let var = row.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / h as f64;
        for j in 0..h {
            r[i * h + j] = g[j] * (row[j] - mu) / (var + 1e-12).sqrt() + b[j];
        }
    }
    let mut aux = g;
    aux.extend(b);
    v.push(Op {
        name: "layernorm",
        shape: format!("{t}x{h}"),
        inputs: x,
        aux,
        reference: r,
    });

    for (name, lim) in [("softmax_2quad", 20.0), ("softmax_exact", 30.0)] {
        let x = grid(uniform(&mut prg, heads * l * l, -lim, lim));
        let mut r = vec![0.0; x.len()];
        for (row, out) in x.chunks(l).zip(r.chunks_mut(l)) {
            let q: Vec<f64> = if name == "softmax_2quad" {
                row.iter().map(|v| (v + 5.0).powi(2)).collect()
            } else {
                let m = row.iter().cloned().fold(f64::MIN, f64::max);
                row.iter().map(|v| (v - m).exp()).collect()
            };
            let s: f64 = q.iter().sum();
            for (o, qv) in out.iter_mut().zip(q) {
                *o = qv / s;
            }
        }
        v.push(Op {
            name,
            shape: format!("{heads}x{l}x{l}"),
            inputs: x,
            aux: vec![],
            reference: r,
        });
    }

    for (name, lo, hi) in [("reciprocal", -6.0, 24.0), ("rsqrt", -8.0, 24.0)] {
        let x = grid(
            uniform(&mut prg, l * l, lo, hi)
                .iter()
                .map(|e| f64::exp2(*e))
                .collect(),
        );
        let r = x
            .iter()
            .map(|v| {
                if name == "reciprocal" {
                    1.0 / v
                } else {
                    1.0 / v.sqrt()
                }
            })
            .collect();
        v.push(Op {
            name,
            shape: format!("{l}x{l}"),
            inputs: x,
            aux: vec![],
            reference: r,
        });
    }

    let x = grid(uniform(&mut prg, t * h, -8.0, 8.0));
    let r = x.iter().map(|v| v.tanh()).collect();
    v.push(Op {
        name: "tanh",
        shape: format!("{t}x{h}"),
        inputs: x,
        aux: vec![],
        reference: r,
    });
    v
}

struct Measured {
    seconds: f64,
    peer: Stats,
    dealer: Stats,
    output: Option<Vec<f64>>,
}

fn run_op<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    op: &Op,
    scale: usize,
) -> Result<Measured> {
    let p1 = s.party() == PartyId::P1;
    let n = op.inputs.len();
    let mut xs = vec![AShare::default(); n];
    input::share_input_f64(s, PartyId::P1, p1.then_some(&op.inputs[..]), &mut xs)?;
    let mut aux = vec![AShare::default(); op.aux.len()];
    input::share_input_f64(s, PartyId::P0, (!p1).then_some(&op.aux[..]), &mut aux)?;
    let f = s.encoding().frac_bits();
    let (t, h, l) = (128 / scale, 768 / scale, 128 / scale);
    let mut out = vec![AShare::default(); n];
    let mut bits = vec![0u64; words_for_bits(n)];
    let mut sync = [0u64; 1];
    s.peer_mut().exchange_u64(&[0], &mut sync)?;
    let (p0s, d0s) = (s.peer_stats(), s.dealer_stats());
    let start = Instant::now();
    match op.name {
        "comparison" => {
            let mut sc = vec![0u64; compare::scratch_words(n, 28)];
            compare::msb(s, &xs, 28, &mut bits, &mut sc)?;
        }
        "gelu" => {
            let mut sc = vec![0u64; gelu::scratch_words(n, gelu::DEFAULT_BITS)];
            gelu::gelu(s, &xs, gelu::DEFAULT_BITS, &mut out, &mut sc)?;
        }
        "tanh" => {
            let mut sc = vec![0u64; tanh::scratch_words(n, tanh::DEFAULT_BITS)];
            tanh::tanh(s, &xs, tanh::DEFAULT_BITS, &mut out, &mut sc)?;
        }
        "layernorm" => {
            let mut sc = vec![0u64; layernorm::scratch_words(t, h, f)];
            layernorm::layernorm(s, t, h, &xs, &aux[..h], &aux[h..], 1e-12, &mut out, &mut sc)?;
        }
        "softmax_2quad" => {
            let rows = n / l;
            let mut sc = vec![0u64; softmax_2quad::scratch_words(rows, l, f)];
            softmax_2quad::softmax_2quad(s, rows, l, &xs, Mask::All, 5.0, &mut out, &mut sc)?;
        }
        "softmax_exact" => {
            let rows = n / l;
            let k = softmax_exact::DEFAULT_BITS;
            let mut sc = vec![0u64; softmax_exact::scratch_words(rows, l, k)];
            softmax_exact::softmax_exact(s, rows, l, &xs, Mask::All, k, &mut out, &mut sc)?;
        }
        "reciprocal" => {
            let spec = reciprocal::default_spec(f);
            let mut sc = vec![0u64; reciprocal::scratch_words(n, &spec)];
            reciprocal::reciprocal(s, &xs, &spec, f, &mut out, &mut sc)?;
        }
        "rsqrt" => {
            let spec = rsqrt::default_spec(f);
            let mut sc = vec![0u64; rsqrt::scratch_words(n, &spec)];
            rsqrt::rsqrt(s, &xs, &spec, f, &mut out, &mut sc)?;
        }
        other => return Err(anyhow!("unknown op {other}")),
    }
    let seconds = start.elapsed().as_secs_f64();
    let (peer, dealer) = (s.peer_stats().since(&p0s), s.dealer_stats().since(&d0s));
    // Reveal to P1 for the accuracy check (not timed, not counted).
    let enc = s.encoding();
    let output = if op.name == "comparison" {
        let mut theirs = vec![0u64; bits.len()];
        s.peer_mut().exchange_u64(&bits, &mut theirs)?;
        Some(
            (0..n)
                .map(|i| (((bits[i / 64] ^ theirs[i / 64]) >> (i % 64)) & 1) as f64)
                .collect(),
        )
    } else if p1 {
        let mut o = vec![0u64; n];
        reveal::reveal_to(s, PartyId::P1, &out, Some(&mut o))?;
        Some(o.iter().map(|v| enc.decode(*v)).collect())
    } else {
        reveal::reveal_to(s, PartyId::P1, &out, None)?;
        None
    };
    Ok(Measured {
        seconds,
        peer,
        dealer,
        output,
    })
}

/// Runs every op (at `1/scale` of the paper's shapes) and returns one row per op.
pub fn bench_ops(scale: usize, only: Option<&str>) -> Result<Vec<OpRow>> {
    let scale = scale.max(1);
    let all: Vec<Op> = ops(scale)
        .into_iter()
        .filter(|o| only.is_none_or(|n| n == o.name))
        .collect();
    if all.is_empty() {
        return Err(anyhow!("no such op; choose one of comparison, gelu, layernorm, softmax_2quad, softmax_exact, reciprocal, rsqrt, tanh"));
    }
    let [de, e0, e1] = local_endpoints(Timeouts::default())?;
    let dl = TcpListener::bind("127.0.0.1:0")?;
    let daddr = dl.local_addr()?.to_string();
    let pl = TcpListener::bind("127.0.0.1:0")?;
    let paddr = pl.local_addr()?.to_string();
    let dealer = std::thread::spawn(move || run_dealer_session(&dl, &de));
    let results = std::thread::scope(|sc| -> Result<Vec<OpRow>> {
        let all = &all;
        let da0 = daddr.clone();
        let h0 = sc.spawn(move || -> Result<Vec<Measured>> {
            let mut s = connect_party(PartyId::P0, &PeerAddr::Bound(pl), &da0, &e0)?;
            let r = all
                .iter()
                .map(|op| run_op(&mut s, op, scale))
                .collect::<Result<Vec<_>>>();
            if let Err(e) = &r {
                s.abort(&format!("P0: {e}"));
            }
            s.finish()?;
            r
        });
        let h1 = sc.spawn(move || -> Result<Vec<Measured>> {
            let mut s = connect_party(PartyId::P1, &PeerAddr::Connect(paddr), &daddr, &e1)?;
            let r = all
                .iter()
                .map(|op| run_op(&mut s, op, scale))
                .collect::<Result<Vec<_>>>();
            if let Err(e) = &r {
                s.abort(&format!("P1: {e}"));
            }
            s.finish()?;
            r
        });
        let m0 = h0
            .join()
            .map_err(|_| anyhow!("P0 panicked"))?
            .context("P0")?;
        let m1 = h1
            .join()
            .map_err(|_| anyhow!("P1 panicked"))?
            .context("P1")?;
        let mut rows = Vec::new();
        for ((op, a), b) in all.iter().zip(m0).zip(m1) {
            let out = b
                .output
                .as_ref()
                .ok_or_else(|| anyhow!("P1 got no output"))?;
            let errs: Vec<f64> = out
                .iter()
                .zip(&op.reference)
                .map(|(o, r)| (o - r).abs())
                .collect();
            rows.push(OpRow {
                op: op.name.into(),
                shape: op.shape.clone(),
                seconds: a.seconds.max(b.seconds),
                online_bytes_per_party: a.peer.bytes_sent.max(b.peer.bytes_sent),
                dealer_bytes: b.dealer.bytes_received,
                rounds: a.peer.rounds.max(b.peer.rounds),
                max_abs_error: errs.iter().cloned().fold(0.0, f64::max),
                mean_abs_error: errs.iter().sum::<f64>() / errs.len() as f64,
                elements: op.inputs.len(),
            });
        }
        Ok(rows)
    })?;
    dealer
        .join()
        .map_err(|_| anyhow!("dealer panicked"))?
        .context("dealer")?;
    Ok(results)
}
