//! Inverse square root `1/sqrt(y)` of positive shared values (Goldschmidt after
//! power-of-two normalization), for LayerNorm.
//!
//! 1. Normalize ([`super::norm`]) with half-octave thresholds: `Y = y 2^(-(j+1)/2)` in
//!    `[2^-1/2, 1)`, and the parties get `y0 = c^2 Y` with `c^2 = 2 / (1 + 2^-1/2)`, so
//!    `|1 - y0| <= 0.1716`.
//! 2. Two Goldschmidt steps at [`WORK_FRAC`] = 28 bits (DESIGN 5: `m = (3 - y)/2`,
//!    `y <- y m^2`, `r <- r m`, from `r0 = 1`), with the halvings folded into truncation
//!    shifts: `m1' = 3 - y0`, `y1 = y0 m1'^2 / 4`, `m2' = 3 - y1`, `r2 = m1' m2' / 4`.
//!    Relative error about `(3/8) (1 - y1)^2 < 2.1e-4`.
//! 3. Rescale: `1/sqrt(y) = c r2 2^(-(j+1)/4)`.
//!
//! Correct (relative error <= 2^-10 where the result is >= 2^-6, absolute <= 2^-14 below)
//! for `y` in [`RANGE`] = `[2^-8, 2^24]` with the default spec; 0 below, unspecified above.
//! Rounds: `compare::rounds(k) + 2 + 6 + 2`.

use crate::arena::Arena;
use crate::dealer::Dealer;
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::norm::{self, Normalized, Spec};
use super::{mul, square};

/// Fractional bits of the Goldschmidt iterations.
pub const WORK_FRAC: u32 = 28;
/// The input range of the default spec.
pub const RANGE: (f64, f64) = (1.0 / 256.0, 16_777_216.0);
const C2: f64 = 1.171_572_875_253_81; // 2 / (1 + 2^-1/2)

/// The default spec for inputs at `f` fractional bits in [`RANGE`].
pub fn default_spec(f: u32) -> Spec {
    Spec {
        in_frac: f,
        lo: -16,
        hi: 48,
        k: 24 + 1 + f + 2,
    }
}

/// Scratch words for `n` elements.
pub fn scratch_words(n: usize, spec: &Spec) -> usize {
    norm::storage_words(n, spec) + 5 * n + norm::scratch_words(n, spec).max(mul::scratch_words(n))
}

/// The normalized inverse square root `r2 ~ 4 / (c sqrt(Y))`-scaled value at
/// [`WORK_FRAC`] bits and the normalization state, for callers that apply the
/// power-of-two factor themselves ([`rescale`]).
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
    let mut ar = Arena::new(scratch);
    let y0 = ar.take(n)?;
    let nz = norm::normalize(
        s,
        y,
        spec,
        C2,
        WORK_FRAC,
        AShare::from_raw_slice_mut(y0),
        storage,
        ar.sub().rest(),
    )?;
    let three = s.party.share_of_public(3u64 << WORK_FRAC);
    let m1 = ar.take(n)?;
    for i in 0..n {
        m1[i] = three.wrapping_sub(y0[i]);
    }
    let q = ar.take(n)?;
    square::square_by(
        s,
        AShare::from_raw_slice(m1),
        AShare::from_raw_slice_mut(q),
        WORK_FRAC,
        ar.sub().rest(),
    )?;
    let y1 = ar.take(n)?;
    mul::mul_by(
        s,
        AShare::from_raw_slice(y0),
        AShare::from_raw_slice(q),
        AShare::from_raw_slice_mut(y1),
        WORK_FRAC + 2,
        ar.sub().rest(),
    )?;
    for v in y1.iter_mut() {
        *v = three.wrapping_sub(*v); // m2'
    }
    mul::mul_by(
        s,
        AShare::from_raw_slice(m1),
        AShare::from_raw_slice(y1),
        r,
        WORK_FRAC,
        ar.rest(),
    )?;
    Ok(nz)
}

/// The factor that turns [`normalized`]'s `r` into `1/sqrt(y)` for bucket `j`.
pub fn kappa(j: i32) -> f64 {
    libm::sqrt(C2) / 4.0 * libm::exp2(-((j + 1) as f64) / 4.0)
}

/// The largest `r` from [`normalized`] (for choosing output precision).
pub const R_MAX: f64 = 4.7;

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
    norm::rescale(
        s,
        &nz,
        AShare::from_raw_slice(r),
        WORK_FRAC,
        R_MAX,
        kappa,
        out_frac,
        out,
        ar.rest(),
    )
}

/// Cost of [`normalized`] on `n` elements.
pub fn cost_normalized(n: usize, spec: &Spec) -> super::Cost {
    norm::cost_normalize(n, spec) + square::cost(n) + mul::cost(n) + mul::cost(n)
}

/// Cost of [`rsqrt`] on `n` elements.
pub fn cost(n: usize, spec: &Spec) -> super::Cost {
    cost_normalized(n, spec) + norm::cost_rescale(n)
}
