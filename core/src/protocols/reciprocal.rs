//! Reciprocal `1/y` of positive shared values (Goldschmidt after power-of-two
//! normalization), for the softmax denominators.
//!
//! 1. Normalize ([`super::norm`]): with half-octave thresholds, `Y = y 2^(-(j+1)/2)` is in
//!    `[2^-1/2, 1)`; the parties get `Y' = c Y` with `c = 2 / (1 + 2^-1/2)`, so
//!    `e0 = 1 - Y'` satisfies `|e0| <= 0.1716`.
//! 2. Goldschmidt at [`WORK_FRAC`] = 28 fractional bits: `1/Y' = (1 + e0)(1 + e0^2)(1 + e0^4) / (1 - e0^8)`;
//!    three products (`e1 = e0^2`; `x2 = (1 + e0)(1 + e1)` with `e2 = e1^2`;
//!    `x3 = x2 (1 + e2)`), relative error `e0^8 < 1.4e-6`.
//! 3. Rescale: `1/y = c x3 2^(-(j+1)/2)`, coefficients exact in the ring, one truncation.
//!
//! Correct (relative error <= 2^-10 where `1/y >= 2^-6`, absolute error <= 2^-14 below)
//! for `y` in [`RANGE`] = `[2^-6, 2^24]` with the default spec; below it the result is 0,
//! above it unspecified. Rounds: `compare::rounds(43) + 2 + 6 + 2` = 17; bits per element
//! per party: 62 comparisons on 43 bits, `62 + 64` for the bit products, `3 * 192 + ...`
//! for the Goldschmidt products, 64 for the rescale, and the truncation bits.

use crate::arena::Arena;
use crate::dealer::Dealer;
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::norm::{self, Spec};
use super::{mul, square};

/// Fractional bits of the Goldschmidt iterations.
pub const WORK_FRAC: u32 = 28;
/// The input range of the default spec.
pub const RANGE: (f64, f64) = (1.0 / 64.0, 16_777_216.0);
const C: f64 = 1.171_572_875_253_81; // 2 / (1 + 2^-1/2)

/// The default spec for inputs at `f` fractional bits in [`RANGE`].
pub fn default_spec(f: u32) -> Spec {
    Spec {
        in_frac: f,
        lo: -12,
        hi: 48,
        k: 24 + 1 + f + 2,
    }
}

/// Scratch words for `n` elements.
pub fn scratch_words(n: usize, spec: &Spec) -> usize {
    norm::storage_words(n, spec)
        + 6 * n
        + norm::scratch_words(n, spec).max(mul::scratch_words(2 * n))
}

/// `out = 1/y` at `out_frac` fractional bits (`y` at `spec.in_frac` bits), for `y` in the
/// spec's range.
pub fn reciprocal<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    y: &[AShare],
    spec: &Spec,
    out_frac: u32,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = y.len();
    check_len("reciprocal output", n, out.len())?;
    let mut ar = Arena::new(scratch);
    let storage = ar.take(norm::storage_words(n, spec))?;
    let yn = ar.take(n)?;
    let nz = norm::normalize(
        s,
        y,
        spec,
        C,
        WORK_FRAC,
        AShare::from_raw_slice_mut(yn),
        storage,
        ar.sub().rest(),
    )?;
    let one = 1u64 << WORK_FRAC;
    let p1 = s.party.share_of_public(one);
    // e0 = 1 - Y', x1 = 1 + e0 = 2 - Y'.
    let e = ar.take(2 * n)?; // [x1 | e0] then products
    let f = ar.take(2 * n)?;
    let prod = ar.take(2 * n)?;
    for i in 0..n {
        let e0 = p1.wrapping_sub(yn[i]);
        e[i] = p1.wrapping_add(e0); // x1
        e[n + i] = e0;
    }
    // e1 = e0^2
    {
        let (x1, e0) = e.split_at_mut(n);
        let _ = x1;
        square::square_by(
            s,
            AShare::from_raw_slice(e0),
            AShare::from_raw_slice_mut(&mut prod[n..]),
            WORK_FRAC,
            ar.sub().rest(),
        )?;
    }
    // [x2, e2] = [x1, e1] * [1 + e1, e1]
    for i in 0..n {
        let e1 = prod[n + i];
        e[n + i] = e1;
        f[i] = p1.wrapping_add(e1);
        f[n + i] = e1;
    }
    mul::mul_by(
        s,
        AShare::from_raw_slice(e),
        AShare::from_raw_slice(f),
        AShare::from_raw_slice_mut(prod),
        WORK_FRAC,
        ar.sub().rest(),
    )?;
    // x3 = x2 (1 + e2)
    for i in 0..n {
        f[i] = p1.wrapping_add(prod[n + i]);
    }
    let x3 = ar.take(n)?;
    mul::mul_by(
        s,
        AShare::from_raw_slice(&prod[..n]),
        AShare::from_raw_slice(&f[..n]),
        AShare::from_raw_slice_mut(x3),
        WORK_FRAC,
        ar.sub().rest(),
    )?;
    norm::rescale(
        s,
        &nz,
        AShare::from_raw_slice(x3),
        WORK_FRAC,
        1.0 / C * 1.01,
        |j| C * libm::exp2(-((j + 1) as f64) / 2.0),
        out_frac,
        out,
        ar.rest(),
    )
}

/// Cost of the reciprocal of `n` elements.
pub fn cost(n: usize, spec: &Spec) -> super::Cost {
    norm::cost_normalize(n, spec)
        + square::cost(n)
        + mul::cost(2 * n)
        + mul::cost(n)
        + norm::cost_rescale(n)
}

/// Scratch words for [`divide_by_row_sums`].
pub fn divide_scratch_words(rows: usize, cols: usize, spec: &Spec) -> usize {
    2 * rows + scratch_words(rows, spec).max(super::rowmul::scratch_words(rows, cols))
}

/// `out_ij = q_ij / sum_j q_ij` for each row of `q` (`rows x cols`, at `spec.in_frac`
/// bits): the row sums are local, their reciprocal is computed at `recip_frac` bits, and one
/// row-broadcast product truncated by `shift` brings the quotients to the output precision.
/// The softmaxes' common last step.
pub fn divide_by_row_sums<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    rows: usize,
    cols: usize,
    q: &[AShare],
    spec: &Spec,
    recip_frac: u32,
    shift: u32,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    check_len("row division input", rows * cols, q.len())?;
    let mut ar = Arena::new(scratch);
    let sums = ar.take(rows)?;
    let qs = AShare::raw_slice(q);
    for i in 0..rows {
        sums[i] = qs[i * cols..(i + 1) * cols]
            .iter()
            .fold(0u64, |a, v| a.wrapping_add(*v));
    }
    let r = ar.take(rows)?;
    reciprocal(
        s,
        AShare::from_raw_slice(sums),
        spec,
        recip_frac,
        AShare::from_raw_slice_mut(r),
        ar.sub().rest(),
    )?;
    super::rowmul::rowmul(
        s,
        rows,
        cols,
        q,
        AShare::from_raw_slice(r),
        shift,
        out,
        ar.rest(),
    )
}
