//! Inverse square root `1/sqrt(y)` of positive shared values (a quadratic after
//! power-of-two normalization to quarter octaves), for LayerNorm.
//!
//! 1. Normalize ([`super::norm`]) with quarter-octave thresholds: `Y = y F_j` with
//!    `F_j ~ C4 2^(-(j+1)/4)`, `C4 = 2 / (1 + 2^(-1/4))`, so `Y` lies in
//!    `C4 [2^(-1/4), 1) = [0.9135, 1.0864)` (down to 0.9100 with the coarse thresholds'
//!    undershoot of at most 1/256), at [`WORK_FRAC`] = 24 bits.
//! 2. One square: with `u = Y - 1` (`|u| <= 0.09`), the minimax quadratic
//!    `r = d0 + d1 u + d2 u^2` ([`D`], `scripts/fit_rsqrt.py`) has relative error at most
//!    5.43e-5 against `1/sqrt(Y)`. The product `u (D2 u)` (`D2` the integer `d2 2^G`,
//!    [`G`] = 12) and the addend `d0 2^S + D1 u` (`D1 = d1 2^(W+G)`) are both at
//!    `S = 2W + G` = 60 bits, so one Beaver product and one truncation give `r` at
//!    [`R_FRAC`] bits (the coefficients keep `G` bits where `u^2 <= 0.0081` multiplies
//!    them, `W + G` bits for `d1`).
//! 3. Rescale: `1/sqrt(y) = r sqrt(F_j)`, with the `F_j` normalization applied (so its
//!    rounding cancels): relative error at most 5.5e-5 (the method's, plus `2^-R_FRAC`).
//!
//! Saturation: 0 below the range; at or above it `Y = 0`, so `u = -1` and
//! `r = d0 - d1 + d2` ([`r_above`]) exactly, and the rescale returns the spec's `above`
//! ([`default_spec`]: the clamp `2^-13`). At `S` bits that value (1.88) stays below the
//! truncation's `2^62`.
//!
//! Valid input range of [`default_spec`] ([`RANGE`] = `[2^-8, 2^26)` at f = 16, compared
//! without wrapping over every non-negative ring value): relative error <= 2^-10 (the
//! method's is 5.5e-5; the rest is the output's last bit) where the result is >= 2^-6,
//! absolute <= 2^-14 below.
//! Rounds: `compare::rounds(k) + 1 + 1 + 1 + 1` (the normalization's comparisons and bit
//! products; its truncation with the square of `u`; the rescale's bit products with the
//! quadratic's truncation; the rescale's truncation, which [`super::layernorm`] leaves to
//! its row product: 7 at `k <= 64`); bits per element per party: `J` comparisons on `k` bits
//! (P1's leaf bits once for all `J`), `J + 64` for the bit products, `64 + 1` for the
//! truncation and square, `64 + 1` for the rescale, 1 for its truncation. (Two Goldschmidt steps from half octaves took two
//! product levels, 4 rounds and `3 (128 + 1)` bits, for an error of 1.1e-4.)

use crate::arena::Arena;
use crate::dealer::Dealer;
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::mul;
use super::norm::{self, Factors, Normalized, Quadratic, Spec};

/// Fractional bits of the normalized input `Y` (and of `u = Y - 1`).
pub const WORK_FRAC: u32 = 24;
/// Fractional bits of the quadratic coefficient `d2` in the product.
pub const G: u32 = 12;
/// `d0, d1, d2`: `1/sqrt(Y) ~ d0 + d1 u + d2 u^2`, `u = Y - 1`, on the normalized range
/// (`scripts/fit_rsqrt.py`).
pub const D: [f64; 3] = [
    9.99994915764725e-1,
    -5.018337598870881e-01,
    3.787583372519418e-01,
];
/// The input range of the default spec at f = 16.
pub const RANGE: (f64, f64) = (1.0 / 256.0, 67_108_864.0);
/// The normalization's scale: `2 / (1 + 2^(-1/4))`.
const C4: f64 = 1.086_427_233_725_889_8;
/// Fractional bits of [`normalized`]'s `r` (few, so that the rescale's coefficients keep
/// their precision across a wide range).
pub const R_FRAC: u32 = 20;

/// The first guess (see [`Quadratic`]).
const GUESS: Quadratic = Quadratic {
    d: D,
    w: WORK_FRAC,
    g: G,
};

/// `r` in the saturation bucket (`Y = 0`, `u = -1`): `d0 - d1 + d2` as rounded.
pub fn r_above() -> f64 {
    GUESS.at_minus_one()
}

/// The coarsening that keeps each threshold exact to `1/256` of the lowest one.
fn shift_for(f: u32, lo: i32) -> u32 {
    (f as i32 + lo / 4 - 8).max(0) as u32
}

/// A spec on quarter octaves `[2^(lo/4), 2^(hi/4))` at `f` fractional bits with comparisons
/// over every non-negative ring value and `above` as the saturation value.
pub fn spec_for(f: u32, lo: i32, hi: i32, above: f64) -> Spec {
    let shift = shift_for(f, lo);
    Spec {
        in_frac: f,
        steps: 4,
        lo,
        hi,
        k: 64 - shift,
        shift,
        above,
        relative: 8,
    }
}

/// The default spec for inputs at `f` fractional bits: [`RANGE`], clamped to `2^-13`
/// above.
pub fn default_spec(f: u32) -> Spec {
    spec_for(f, -32, 104, libm::exp2(-13.0))
}

/// Scratch words for `n` elements.
pub fn scratch_words(n: usize, spec: &Spec) -> usize {
    norm::storage_words(n, spec)
        + 9 * n
        + norm::scratch_words(n, spec, 1).max(mul::scratch_words(2 * n))
}

/// The normalized inverse square root `r ~ 1/sqrt(y)` at [`R_FRAC`] bits plus the returned
/// shift (not yet truncated) and the normalization state, for callers that apply the
/// power-of-two factor themselves ([`norm::rescale_pending`] with [`kappa`], which
/// truncates `r` in its round).
pub fn normalized<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    y: &[AShare],
    spec: &Spec,
    r: &mut [AShare],
    storage: &'a mut [u64],
    scratch: &mut [u64],
) -> Result<(Normalized<'a>, u32)> {
    let n = y.len();
    check_len("rsqrt output", n, r.len())?;
    if spec.steps != 4 {
        return Err(crate::Error::Param(
            "rsqrt: the spec must use quarter octaves",
        ));
    }
    let mut ar = Arena::new(scratch);
    let u = ar.take(n)?;
    let shift = GUESS.shift(R_FRAC);
    let (nz, guard) = norm::normalize_raw(
        s,
        y,
        spec,
        &[C4],
        WORK_FRAC,
        shift,
        AShare::from_raw_slice_mut(u),
        storage,
        ar.sub().rest(),
    )?;
    GUESS.eval(s, u, guard, r, ar.rest())?;
    Ok((nz, shift))
}

/// The factor that turns [`normalized`]'s `r` into `1/sqrt(y)` for bucket `j` (the spec's
/// `above` over [`r_above`] for the saturation bucket).
pub fn kappa(factors: &Factors, j: i32) -> f64 {
    if j >= factors.spec().hi {
        factors.spec().above / r_above()
    } else {
        libm::sqrt(factors.get(C4, j))
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
    let (nz, _) = normalized(
        s,
        y,
        spec,
        AShare::from_raw_slice_mut(r),
        storage,
        ar.sub().rest(),
    )?;
    let factors = nz.factors();
    let g = norm::rescale_pending(
        s,
        nz,
        AShare::from_raw_slice(r),
        R_FRAC,
        |j| kappa(&factors, j),
        out_frac,
        out_max(spec),
        out,
        ar.sub().rest(),
    )?;
    s.dealer.request(&[super::trunc::item(n, g)])?;
    super::trunc::run_by(s, out, g, ar.rest())
}

/// Cost of [`normalized`] on `n` elements.
pub fn cost_normalized(n: usize, spec: &Spec) -> super::Cost {
    norm::cost_normalize_raw(n, spec) + Quadratic::cost(n)
}

/// Cost of [`normalized`] followed by [`norm::rescale_pending`] on `n` elements (the
/// scale not yet truncated).
pub fn cost_scale_raw(n: usize, spec: &Spec) -> super::Cost {
    cost_normalized(n, spec) + norm::cost_rescale_pending(n)
}

/// Cost of [`rsqrt`] on `n` elements.
pub fn cost(n: usize, spec: &Spec) -> super::Cost {
    cost_scale_raw(n, spec) + super::trunc::cost(n)
}
