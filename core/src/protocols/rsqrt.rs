//! Inverse square root `1/sqrt(y)` of positive shared values (Goldschmidt after
//! power-of-two normalization), for LayerNorm.
//!
//! 1. Normalize ([`super::norm`]) with half-octave thresholds: `Y = y 2^(-(j+1)/2)` in
//!    `[2^-1/2, 1)`, and the parties get `y0 = y F_j`, `F_j ~ c^2 2^(-(j+1)/2)` with
//!    `c^2 = 2 / (1 + 2^-1/2)`, so `|1 - y0| <= 0.1716` (0.175 with the coarse
//!    thresholds' undershoot of at most 1/256).
//! 2. Two Goldschmidt steps at [`WORK_FRAC`] = 28 bits (DESIGN 5: `m = (3 - y)/2`,
//!    `y <- y m^2`, `r <- r m`, from `r0 = 1`), with the halvings folded into truncation
//!    shifts: `m1' = 3 - y0`, `y1 = y0 m1'^2 / 4`, `m2' = 3 - y1`, `r2 = m1' m2'`
//!    (`= 4 / sqrt(y0)` approximately), always from below: `r2 sqrt(y0) / 4` is in
//!    `[1 - 2.23e-4, 1]`. Evaluated in two product levels instead of three:
//!    `r2 = 3 m1' - (y0 m1') (m1'^2) / 4`, with `p = y0 m1'` and `q = m1'^2` in one batch,
//!    then `(-p) q` plus `3 m1'` (shifted up locally, exactly) under one truncation.
//! 3. Rescale: `1/sqrt(y) = r2 sqrt(F_j) / 4`, with the `F_j` normalization applied and the
//!    one-sided error centred ([`CENTER`]): relative error at most 1.12e-4.
//!
//! Saturation: 0 below the range; at or above it `y0 = 0`, so `r2 = 3 * 3 = 9` exactly and
//! the rescale returns the spec's `above` ([`default_spec`]: the clamp `2^-13`).
//!
//! Valid input range of [`default_spec`] ([`RANGE`] = `[2^-8, 2^26)` at f = 16, compared
//! without wrapping over every non-negative ring value): relative error <= 2^-10 (the
//! method's is 1.1e-4; the rest is the output's last bit) where the result is >= 2^-6,
//! absolute <= 2^-14 below.
//! Rounds: `compare::rounds(k) + 2 + 4 + 2`; bits per element per party: `J` comparisons
//! on `k` bits (P1's leaf bits once for all `J`), `J + 64` for the bit products, a truncation, `2 (128 + 1)` for the first
//! product batch and `128 + 1` for the second, `64 + 1` for the rescale.

use crate::arena::Arena;
use crate::dealer::Dealer;
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::mul;
use super::norm::{self, Factors, Normalized, Spec};

/// Fractional bits of the Goldschmidt iterations.
pub const WORK_FRAC: u32 = 28;
/// The input range of the default spec at f = 16.
pub const RANGE: (f64, f64) = (1.0 / 256.0, 67_108_864.0);
const C2: f64 = 1.171_572_875_253_81; // 2 / (1 + 2^-1/2)
/// Fractional bits of [`normalized`]'s `r2` (fewer than [`WORK_FRAC`], so that the
/// rescale's coefficients keep their precision across a wide range).
pub const R_FRAC: u32 = 20;
/// Centres the Goldschmidt steps' one-sided error: `2 / (1 + (1 - 2.224e-4))`.
pub const CENTER: f64 = 2.0 / (2.0 - 2.224e-4);
/// `r2` in the saturation bucket (`y0 = 0`): `m1' m2' = 3 * 3`.
const R_ABOVE: f64 = 9.0;

/// The coarsening that keeps each threshold exact to `1/256` of the lowest one.
fn shift_for(f: u32, lo: i32) -> u32 {
    (f as i32 + lo / 2 - 8).max(0) as u32
}

/// A spec on half octaves `[2^(lo/2), 2^(hi/2))` at `f` fractional bits with comparisons
/// over every non-negative ring value and `above` as the saturation value.
pub fn spec_for(f: u32, lo: i32, hi: i32, above: f64) -> Spec {
    let shift = shift_for(f, lo);
    Spec {
        in_frac: f,
        steps: 2,
        lo,
        hi,
        k: 64 - shift,
        shift,
        above,
    }
}

/// The default spec for inputs at `f` fractional bits: [`RANGE`], clamped to `2^-13`
/// above.
pub fn default_spec(f: u32) -> Spec {
    spec_for(f, -16, 52, libm::exp2(-13.0))
}

/// Scratch words for `n` elements.
pub fn scratch_words(n: usize, spec: &Spec) -> usize {
    norm::storage_words(n, spec)
        + 9 * n
        + norm::scratch_words(n, spec, 1).max(mul::scratch_words(2 * n))
}

/// The normalized inverse square root `r2 ~ 4 / sqrt(y0)` at [`R_FRAC`] bits and the
/// normalization state, for callers that apply the power-of-two factor themselves
/// ([`norm::rescale`] with [`kappa`]).
pub fn normalized<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    y: &[AShare],
    spec: &Spec,
    r: &mut [AShare],
    storage: &'a mut [u64],
    scratch: &mut [u64],
) -> Result<Normalized<'a>> {
    let n = y.len();
    check_len("rsqrt output", n, r.len())?;
    if spec.steps != 2 {
        return Err(crate::Error::Param("rsqrt: the spec must use half octaves"));
    }
    let mut ar = Arena::new(scratch);
    let y0 = ar.take(n)?;
    let nz = norm::normalize(
        s,
        y,
        spec,
        &[C2],
        WORK_FRAC,
        AShare::from_raw_slice_mut(y0),
        storage,
        ar.sub().rest(),
    )?;
    let three = s.party.share_of_public(3u64 << WORK_FRAC);
    // Level 1, one product batch: p = y0 m1' and q = m1'^2 (m1' = 3 - y0), at W bits.
    let xs = ar.take(2 * n)?;
    let ys = ar.take(2 * n)?;
    for i in 0..n {
        let m1 = three.wrapping_sub(y0[i]);
        (xs[i], xs[n + i]) = (y0[i], m1);
        (ys[i], ys[n + i]) = (m1, m1);
    }
    let pq = ar.take(2 * n)?;
    mul::mul_by(
        s,
        AShare::from_raw_slice(xs),
        AShare::from_raw_slice(ys),
        AShare::from_raw_slice_mut(pq),
        WORK_FRAC,
        ar.sub().rest(),
    )?;
    // Level 2: r2 = m1' m2' = m1' (3 - y0 m1'^2 / 4) = 3 m1' - p q / 4. The raw product
    // (-p) q (2W bits) is -p q / 4 at 2W + 2 bits; 3 m1' is shifted up to 2W + 2 bits
    // locally (exact) and added before the one truncation to R bits. Magnitudes at 2W + 2
    // bits stay below 2^62: 3 m1' <= 6.6, p q / 4 <= 3.1, r2 <= 9 (the saturation bucket).
    let (p, q) = pq.split_at_mut(n);
    let three_m1 = ar.take(n)?;
    for i in 0..n {
        p[i] = 0u64.wrapping_sub(p[i]);
        three_m1[i] = ys[n + i].wrapping_mul(3) << (WORK_FRAC + 2);
    }
    mul::mul_plus_by(
        s,
        AShare::from_raw_slice(p),
        AShare::from_raw_slice(q),
        AShare::from_raw_slice(three_m1),
        r,
        2 * WORK_FRAC + 2 - R_FRAC,
        ar.rest(),
    )?;
    Ok(nz)
}

/// The factor that turns [`normalized`]'s `r` into `1/sqrt(y)` for bucket `j` (the spec's
/// `above / 9` for the saturation bucket).
pub fn kappa(factors: &Factors, j: i32) -> f64 {
    if j >= factors.spec().hi {
        factors.spec().above / R_ABOVE
    } else {
        libm::sqrt(factors.get(C2, j)) / 4.0 * CENTER
    }
}

/// The largest result of [`rsqrt`] with `spec`.
pub fn out_max(spec: &Spec) -> f64 {
    (1.01 / libm::sqrt(spec.range().0)).max(libm::fabs(spec.above))
}

/// `out = 1/sqrt(y)` at `out_frac` fractional bits (`y` at `spec.in_frac` bits).
pub fn rsqrt<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    y: &[AShare],
    spec: &Spec,
    out_frac: u32,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = y.len();
    let mut ar = Arena::new(scratch);
    let storage = ar.take(norm::storage_words(n, spec))?;
    let r = ar.take(n)?;
    let nz = normalized(
        s,
        y,
        spec,
        AShare::from_raw_slice_mut(r),
        storage,
        ar.sub().rest(),
    )?;
    let factors = nz.factors();
    norm::rescale(
        s,
        nz,
        AShare::from_raw_slice(r),
        R_FRAC,
        |j| kappa(&factors, j),
        out_frac,
        out_max(spec),
        out,
        ar.rest(),
    )
}

/// Cost of [`normalized`] on `n` elements.
pub fn cost_normalized(n: usize, spec: &Spec) -> super::Cost {
    norm::cost_normalize(n, spec, 1) + mul::cost(2 * n) + mul::cost(n)
}

/// Cost of [`rsqrt`] on `n` elements.
pub fn cost(n: usize, spec: &Spec) -> super::Cost {
    cost_normalized(n, spec) + norm::cost_rescale(n)
}
