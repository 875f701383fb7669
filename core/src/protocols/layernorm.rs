//! LayerNorm over rows: `y = gamma (x - mean) / sqrt(var + eps) + beta`.
//!
//! 1. Row sums are local; the mean is `sum * round(2^32 / H) >> 32` (one truncation).
//! 2. `d = x - mean`; one product round gives `d^2` and `gamma d` together, from one
//!    opening of `d` and one of `gamma` ([`super::sqscale`]).
//! 3. One truncation round brings the row sums of `d^2` to `V = sum d^2 / 2^L` at 24
//!    fractional bits with `L = floor(log2 H)` (so `V = (H / 2^L) var`, `H / 2^L` in
//!    [1, 2)) and `gamma d` to `f` bits.
//! 4. `1/sqrt(V + eps')` by [`super::rsqrt`]'s normalized quadratic on quarter-octave
//!    thresholds from `2^-20` to `2^(31-L)` (every value `V` can take, see below), then the
//!    power-of-two factor times `sqrt(H / 2^L)` is applied to the per-row value at 32
//!    fractional bits, where precision allows (DESIGN 5).
//! 5. One row-broadcast product `(gamma d) R` truncated by 32 bits, plus `beta`; the
//!    rescale's truncation of `R` rides in the product's round
//!    ([`super::rowmul::run_pending`]).
//!
//! Valid input range: rows with `|x| < 2^14`, `H var < 2^30` (the squared deviations'
//! sum must stay inside the truncation's range: variances up to 1.4e6 at H = 768) and
//! outputs `|gamma_j (x_j - mean) / sd| < 2^14` (always true when
//! `|gamma| < 2^14 / sqrt(H)`, 591 at H = 768). On it the output's relative error is
//! about 5.5e-5 (the inverse square root) plus `|gamma| |mean| 6e-8 / sd` (the mean's
//! fixed-point reciprocal of H) plus a few LSB times `|gamma| / sd`: max |error| <= 0.01
//! for `|gamma| <= 30`, variances from 1e-2 up and `|mean| <= 256`, and usable down to
//! variances of about 1e-5 (BERT's embedding sums have variances near 1e-3).
//! Saturation: rows with `V + eps'` below `2^-20` (near-constant rows) output `beta`;
//! `V + eps' >= 2^(31-L)` (reachable only past the variance limit, or with an `eps` that
//! large) uses `1/sqrt(2^(31-L))`.
//!
//! Rounds: `1 + 1 + 1 + 6 + 1 + 2 = 12` (SecFormer: 24) for `H < 2^24`. Bits per element
//! per party: 64 for the products (plus 64 per column), 1 for the truncation, `56 + 1` for
//! the row-broadcast product (its ring: `f + 24 + 16` bits, [`SCALE_FRAC`]; 122 in all;
//! 322 with two Beaver products); per row, the
//! mean's truncation and the inverse square root on
//! `4 (31 - L) + 81` thresholds of `57 - L` bits (169 of 48 bits at H = 768), each
//! decided only to 1/256 of itself (the inverse square root's undershoot bound), so the
//! large thresholds drop most of their bits ([`norm::Spec::relative`]).

use crate::arena::Arena;
use crate::dealer::Dealer;
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::norm::{self, Spec};
use super::{rowmul, rsqrt, sqscale, trunc, Width};

/// Fractional bits of the per-row scale: `R = 1 / sd` to a relative `6e-5` at the largest
/// variance (`1e6`), far finer at the usual ones.
const SCALE_FRAC: u32 = 24;

/// The ring of the row product `(gamma d) R` at `f + SCALE_FRAC` fractional bits: outputs
/// below `2^14` (the range of every LayerNorm output) need `m = f + SCALE_FRAC + 16` bits
/// (56 at `f = 16`, 7 bytes per opened entry instead of 8).
fn row_ring(f: u32) -> Width {
    Width::holding(f + SCALE_FRAC + 16)
}
/// Fractional bits of `V` (more than `f`: small variances need the precision).
const V_FRAC: u32 = 24;
/// Lowest threshold exponent of `V` in quarter octaves (`2^-20`).
const V_LO: i32 = -80;

/// `L = floor(log2 h)`.
fn log2_floor(h: usize) -> u32 {
    usize::BITS - 1 - h.max(1).leading_zeros()
}

/// The normalization spec used on `V` (at [`V_FRAC`] fractional bits, in
/// `[2^-20, 2^(31-L))`, compared without wrapping up to twice the top).
pub fn spec(h: usize, _f: u32) -> Spec {
    let top = 31 - log2_floor(h).min(30) as i32; // V < 2^top
    Spec {
        in_frac: V_FRAC,
        steps: 4,
        lo: V_LO,
        hi: 4 * top,
        k: top as u32 + 1 + V_FRAC + 1,
        shift: 0,
        above: libm::exp2(-top as f64 / 2.0),
        relative: 8,
    }
}

/// Scratch words for `rows x h`.
pub fn scratch_words(rows: usize, h: usize, f: u32) -> usize {
    let n = rows * h;
    let sp = spec(h, f);
    4 * n
        + 4 * rows
        + norm::storage_words(rows, &sp)
        + sqscale::scratch_words(rows, h)
            .max(rsqrt::scratch_words(rows, &sp))
            .max(norm::scratch_words(rows, &sp, 1))
            .max(rowmul::pending_scratch_words(rows, h))
            .max(trunc::scratch_words(rows + n))
}

/// `out = LayerNorm(x)` row by row (`x` is `rows x h`; `gamma`, `beta` have `h` entries).
pub fn layernorm<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    rows: usize,
    h: usize,
    x: &[AShare],
    gamma: &[AShare],
    beta: &[AShare],
    eps: f64,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = rows * h;
    check_len("layernorm input", n, x.len())?;
    check_len("layernorm gamma", h, gamma.len())?;
    check_len("layernorm beta", h, beta.len())?;
    check_len("layernorm output", n, out.len())?;
    let f = s.enc.frac_bits();
    let mut ar = Arena::new(scratch);
    let xs = AShare::raw_slice(x);

    // 1. mean
    let mu = ar.take(rows)?;
    let inv_h = libm::round(libm::exp2(32.0) / h as f64) as u64;
    for i in 0..rows {
        let mut acc = 0u64;
        for v in &xs[i * h..(i + 1) * h] {
            acc = acc.wrapping_add(*v);
        }
        mu[i] = acc.wrapping_mul(inv_h);
    }
    trunc::trunc_by(s, AShare::from_raw_slice_mut(mu), 32, ar.sub().rest())?;

    // 2. d d and gamma d from one opening of d.
    let d = ar.take(n)?;
    for i in 0..rows {
        for j in 0..h {
            d[i * h + j] = xs[i * h + j].wrapping_sub(mu[i]);
        }
    }
    let sq = ar.take(n)?;
    let gd = ar.take(n)?;
    sqscale::square_scale(
        s,
        rows,
        h,
        AShare::from_raw_slice(d),
        gamma,
        AShare::from_raw_slice_mut(sq),
        AShare::from_raw_slice_mut(gd),
        ar.sub().rest(),
    )?;

    // 3. [V (rows) | gamma d (n)] truncated together.
    let l = log2_floor(h);
    let t = ar.take(rows + n)?;
    for i in 0..rows {
        let mut acc = 0u64;
        for v in &sq[i * h..(i + 1) * h] {
            acc = acc.wrapping_add(*v);
        }
        t[i] = acc;
    }
    t[rows..].copy_from_slice(gd);
    {
        let mut sub = ar.sub();
        let vshift = 2 * f + l - V_FRAC;
        let segs = [(rows, vshift), (n, f)];
        s.dealer.request(&[trunc::item(rows + n, vshift.max(f))])?;
        trunc::run_segments(s, AShare::from_raw_slice_mut(t), &segs, sub.rest())?;
    }
    let hfac = h as f64 / libm::exp2(l as f64);
    let eps_e = libm::round(eps * hfac * libm::exp2(V_FRAC as f64)) as u64;
    let add = s.party.share_of_public(eps_e);
    for v in &mut t[..rows] {
        *v = v.wrapping_add(add);
    }

    // 4. per-row scale R = sqrt(hfac) / sqrt(V) at SCALE_FRAC bits.
    let sp = spec(h, f);
    let storage = ar.take(norm::storage_words(rows, &sp))?;
    let r = ar.take(rows)?;
    let (nz, _) = rsqrt::normalized(
        s,
        AShare::from_raw_slice(&t[..rows]),
        &sp,
        AShare::from_raw_slice_mut(r),
        storage,
        ar.sub().rest(),
    )?;
    let big_r = ar.take(rows)?;
    let sq = libm::sqrt(hfac);
    let factors = nz.factors();
    let g = norm::rescale_pending(
        s,
        nz,
        AShare::from_raw_slice(r),
        rsqrt::R_FRAC,
        |j| rsqrt::kappa(&factors, j) * sq,
        SCALE_FRAC,
        rsqrt::out_max(&sp) * sq,
        AShare::from_raw_slice_mut(big_r),
        ar.sub().rest(),
    )?;

    // 5. y = (gamma d) R + beta, R's truncation in the product's round
    rowmul::run_pending(
        s,
        rows,
        h,
        AShare::from_raw_slice(&t[rows..]),
        AShare::from_raw_slice(big_r),
        g,
        SCALE_FRAC,
        trunc::usable(s.trunc_mode, row_ring(f)),
        out,
        ar.rest(),
    )?;
    let bs = AShare::raw_slice(beta);
    let o = AShare::raw_slice_mut(out);
    for i in 0..rows {
        for j in 0..h {
            o[i * h + j] = o[i * h + j].wrapping_add(bs[j]);
        }
    }
    Ok(())
}

/// Cost of LayerNorm on `rows x h` (at `f` fractional bits).
pub fn cost(rows: usize, h: usize, f: u32) -> super::Cost {
    let n = rows * h;
    trunc::cost(rows)
        + sqscale::cost(rows, h)
        + trunc::cost(rows + n)
        + rsqrt::cost_scale_raw(rows, &spec(h, f))
        + rowmul::cost_pending(rows, h, row_ring(f))
}
