//! Reciprocal `1/y` of positive shared values: power-of-two normalization to octaves, a
//! minimax linear first guess, and two Goldschmidt steps; for the softmax denominators.
//!
//! 1. Normalize ([`super::norm`], octave thresholds): for `y` in bucket `j`,
//!    `Y = y 2^-(j+1)` is in `[1/2, 1)`, and the parties get two scaled copies `u = P Y`
//!    and `v = (Q/P) Y` at [`WORK_FRAC`] = 28 fractional bits, `P = 48/17`, `Q = 32/17`.
//! 2. The minimax linear guess `x0 = P - Q Y = P (1 - v)` has relative error
//!    `e0 = 1 - Y x0 = 1 - u + u v`, `|e0| <= 1/17` on `[1/2, 1]` (0.067 with the coarse
//!    thresholds' undershoot to `Y >= (1 - 1/64) / 2`), and
//!    `1/Y = x0 (1 + e0)(1 + e0^2) / (1 - e0^4)`. Three product rounds:
//!    `u v`; then `[e0^2, (1 - v)(1 + e0)]` together; then `x = (1 - v)(1 + e0)(1 + e0^2)`
//!    at [`X_FRAC`] = 20 bits. Relative error `e0^4 <= 2e-5`, always from below.
//! 3. Rescale: `1/y = F_j x` with `F_j ~ P 2^-(j+1)` the factor normalization applied
//!    (exact coefficients in the ring, one truncation), times [`CENTER`], which centres
//!    the one-sided error: relative error at most 1e-5.
//!
//! Saturation: below the range the result is 0; at or above it (`y >= 2^hi`) the
//! normalized copies are 0, `x = 1 * 2 * 2 = 4` exactly, and the rescale returns the
//! spec's `above` (the softmaxes use 0, [`default_spec`] the clamp `2^-hi`). Every
//! non-negative input up to [`super::norm::Spec::compared_up_to`] (the whole
//! non-negative ring for the default and softmax specs) gets one of the three.
//!
//! Valid input range of [`default_spec`] ([`RANGE`] = `[2^-6, 2^26)` at f = 16): relative
//! error <= 2^-10 (the method's is 1e-5; the rest is the output's last bit) where
//! `1/y >= 2^-6`, absolute <= 2^-14 below. Cost on `n` elements
//! ([`cost`]): rounds `compare::rounds(k) + 2 + 6 + 2` (13 for 18 <= k <= 64); bits per element
//! per party: `J` comparisons on `k` bits (`J = hi - lo + 1`; P1's leaf bits go once for
//! all `J`, [`super::compare::msb_fanout_run`]), `J + 64` for the bit
//! products, the normalization's two truncations, `4 x 128 + 4` for the products, `64 + 1`
//! for the rescale.

use crate::arena::Arena;
use crate::dealer::Dealer;
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::mul;
use super::norm::{self, Spec};

/// Fractional bits of the Goldschmidt iterations.
pub const WORK_FRAC: u32 = 28;
/// Fractional bits of the normalized reciprocal before the rescale (fewer than
/// [`WORK_FRAC`], so that the rescale's coefficients keep 13 bits even at the range's top).
pub const X_FRAC: u32 = 20;
/// The input range of the default spec at f = 16.
pub const RANGE: (f64, f64) = (1.0 / 64.0, 67_108_864.0);
/// Scale of the first normalized copy: the minimax guess `P - Q Y` on `[1/2, 1]`.
const P: f64 = 48.0 / 17.0;
/// `Q / P`, the scale of the second copy.
const Q_OVER_P: f64 = 2.0 / 3.0;
/// Centres the one-sided error `e0^4 <= 1.94e-5`: `2 / (1 + (1 - 1.94e-5))`.
pub const CENTER: f64 = 2.0 / (2.0 - 1.94e-5);
/// `x` in the saturation bucket (`u = v = 0`): `(1 - 0)(1 + 1)(1 + 1)`.
const X_ABOVE: f64 = 4.0;

/// The coarsening that keeps each threshold exact to `1/64` of the lowest one.
fn shift_for(f: u32, lo: i32) -> u32 {
    (f as i32 + lo - 6).max(0) as u32
}

/// The default spec for inputs at `f` fractional bits: [`RANGE`], clamped to `2^-26`
/// above, comparisons over every non-negative ring value.
pub fn default_spec(f: u32) -> Spec {
    let (lo, hi) = (-6, 26);
    let shift = shift_for(f, lo);
    Spec {
        in_frac: f,
        steps: 1,
        lo,
        hi,
        k: 64 - shift,
        shift,
        above: libm::exp2(-hi as f64),
        relative: 6,
    }
}

/// A spec on octaves `[2^lo, 2^hi)` at `f` fractional bits with comparisons over every
/// non-negative ring value and `above` as the saturation value.
pub fn spec_for(f: u32, lo: i32, hi: i32, above: f64) -> Spec {
    let shift = shift_for(f, lo);
    Spec {
        in_frac: f,
        steps: 1,
        lo,
        hi,
        k: 64 - shift,
        shift,
        above,
        relative: 6,
    }
}

/// Scratch words for `n` elements.
pub fn scratch_words(n: usize, spec: &Spec) -> usize {
    norm::storage_words(n, spec)
        + 9 * n
        + norm::scratch_words(n, spec, 2).max(mul::scratch_words(2 * n))
}

/// `out = 1/y` at `out_frac` fractional bits (`y` at `spec.in_frac` bits): accurate on the
/// spec's range, `spec.above` above it, 0 below it. The spec uses octaves (the linear
/// guess and three product levels) or eighth octaves ([`fine`]: one product).
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
    match spec.steps {
        1 => {}
        4 | fine::STEPS => return fine::reciprocal(s, y, spec, out_frac, out, scratch),
        _ => {
            return Err(crate::Error::Param(
                "reciprocal: the spec must use octaves, quarter or eighth octaves",
            ))
        }
    }
    let mut ar = Arena::new(scratch);
    let storage = ar.take(norm::storage_words(n, spec))?;
    let uv = ar.take(2 * n)?; // [u | v]
    let nz = norm::normalize(
        s,
        y,
        spec,
        &[P, Q_OVER_P],
        WORK_FRAC,
        AShare::from_raw_slice_mut(uv),
        storage,
        ar.sub().rest(),
    )?;
    let factors = nz.factors();
    let p1 = s.party.share_of_public(1u64 << WORK_FRAC);
    let a = ar.take(2 * n)?;
    let b = ar.take(2 * n)?;
    let prod = ar.take(2 * n)?;
    // u v
    {
        let (u, v) = uv.split_at(n);
        mul::mul_by(
            s,
            AShare::from_raw_slice(u),
            AShare::from_raw_slice(v),
            AShare::from_raw_slice_mut(&mut prod[..n]),
            WORK_FRAC,
            ar.sub().rest(),
        )?;
    }
    // e0 = 1 - u + u v; [e1, w] = [e0, 1 - v] * [e0, 1 + e0]
    for i in 0..n {
        let e0 = p1.wrapping_sub(uv[i]).wrapping_add(prod[i]);
        a[i] = e0;
        b[i] = e0;
        a[n + i] = p1.wrapping_sub(uv[n + i]);
        b[n + i] = p1.wrapping_add(e0);
    }
    mul::mul_by(
        s,
        AShare::from_raw_slice(a),
        AShare::from_raw_slice(b),
        AShare::from_raw_slice_mut(prod),
        WORK_FRAC,
        ar.sub().rest(),
    )?;
    // x = w (1 + e1) at X_FRAC bits
    for i in 0..n {
        a[i] = p1.wrapping_add(prod[i]);
    }
    let x = ar.take(n)?;
    mul::mul_by(
        s,
        AShare::from_raw_slice(&prod[n..]),
        AShare::from_raw_slice(&a[..n]),
        AShare::from_raw_slice_mut(x),
        2 * WORK_FRAC - X_FRAC,
        ar.sub().rest(),
    )?;
    let (lo, _) = spec.range();
    let above = spec.above;
    norm::rescale(
        s,
        nz,
        AShare::from_raw_slice(x),
        X_FRAC,
        |j| {
            if j >= spec.hi {
                above / X_ABOVE
            } else {
                factors.get(P, j) * CENTER
            }
        },
        out_frac,
        (1.02 / lo).max(libm::fabs(above)),
        out,
        ar.rest(),
    )
}

/// Cost of the reciprocal of `n` elements.
pub fn cost(n: usize, spec: &Spec) -> super::Cost {
    if fine::grid(spec.steps).is_some() {
        return fine::cost(n, spec);
    }
    norm::cost_normalize(n, spec, 2)
        + mul::cost(n)
        + mul::cost(2 * n)
        + mul::cost(n)
        + norm::cost_rescale(n)
}

/// Scratch words for [`divide_by_row_sums`].
pub fn divide_scratch_words(rows: usize, cols: usize, spec: &Spec) -> usize {
    2 * rows
        + scratch_words(rows, spec)
            .max(super::rowmul::scratch_words(rows, cols))
            .max(super::rowmul::pending_scratch_words(rows, cols))
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
    if fine::grid(spec.steps).is_some() {
        // The rescale's truncation rides in the row product's round.
        let g = fine::reciprocal_raw(
            s,
            AShare::from_raw_slice(sums),
            spec,
            recip_frac,
            AShare::from_raw_slice_mut(r),
            ar.sub().rest(),
        )?;
        let r = AShare::from_raw_slice(r);
        return super::rowmul::run_pending(
            s,
            rows,
            cols,
            q,
            r,
            g,
            shift,
            super::Width::FULL,
            out,
            ar.rest(),
        );
    }
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

/// Cost of [`divide_by_row_sums`].
pub fn divide_cost(rows: usize, cols: usize, spec: &Spec) -> super::Cost {
    if fine::grid(spec.steps).is_some() {
        fine::cost_raw(rows, spec) + super::rowmul::cost_pending(rows, cols, super::Width::FULL)
    } else {
        cost(rows, spec) + super::rowmul::cost(rows, cols)
    }
}

/// The reciprocal on eighth (or quarter) octaves, for the softmaxes' row sums: many
/// thresholds per value (8 or 4 per octave, one comparison batch all the same) buy a first
/// guess close enough that one product finishes it. On quarter octaves ([`fine::QUARTER`],
/// the 2Quad softmax's wide row-sum range) `Y` lies in `[0.906, 1.086)` and the quadratic's
/// relative error is at most 1.85e-4, for half the comparisons.
///
/// 1. Normalize to eighth octaves: `Y = y F_j`, `F_j ~ C8 2^(-(j+1)/8)`,
///    `C8 = 2 / (1 + 2^(-1/8))`, so `Y` lies in `C8 [2^(-1/8), 1) = [0.957, 1.043)` (down
///    to 0.949 with the coarse thresholds' undershoot of at most `2^-7`), at
///    [`WORK_FRAC`](fine::WORK_FRAC) = 24 bits.
/// 2. The minimax quadratic `x = d0 + d1 u + d2 u^2` in `u = Y - 1` ([`D`](fine::D),
///    `scripts/fit_rsqrt.py --reciprocal`) has relative error at most 2.64e-5; the square
///    `u^2` (in the round of the normalization's truncation, [`norm::Quadratic`]) times
///    `D2` plus the addend `d0 2^S + D1 u`, both at `S = 2W + G` = 60 bits (`G` = 12), give
///    `x` at [`X_FRAC`] bits once truncated, which the rescale's opening does.
/// 3. Rescale by `F_j` (as applied): relative error at most 2.8e-5 (the method's and the
///    coefficients' rounding) plus the output's last bit.
///
/// Saturation as for octaves (`u = -1` gives `x = d0 - d1 + d2`, 3.02, below the
/// truncation's `2^62` at `S` bits). Rounds: `compare::rounds(k) + 1 + 1 + 1 + 1` (7 for
/// `k <= 64`; 6 in [`divide_by_row_sums`], whose row product takes the last truncation).
pub mod fine {
    use super::*;

    /// Thresholds per octave.
    pub const STEPS: u32 = 8;
    /// Fractional bits of the normalized input `Y` (and of `u = Y - 1`).
    pub const WORK_FRAC: u32 = 24;
    /// Fractional bits of the quadratic coefficient `d2` in the product.
    pub const G: u32 = 12;
    /// `d0, d1, d2`: `1/Y ~ d0 + d1 u + d2 u^2`, `u = Y - 1`.
    pub const D: [f64; 3] = [
        9.999_937_736_062_704e-1,
        -1.001_631_571_442_377,
        1.012_988_573_904_895,
    ];
    /// The normalization's scale: `2 / (1 + 2^(-1/8))`.
    const C8: f64 = 1.043_294_617_499_389_1;
    /// `d0, d1, d2` on quarter octaves (`scripts/fit_rsqrt.py --reciprocal --steps 4`: the
    /// same undershoot, `2^-7`; relative error at most 1.85e-4).
    pub const D_QUARTER: [f64; 3] = [
        9.999_780_041_574_303e-1,
        -1.006_115_790_878_418,
        1.017_003_730_354_589,
    ];
    /// The quarter-octave normalization's scale: `2 / (1 + 2^(-1/4))`.
    const C4: f64 = 1.086_427_233_725_889_8;
    /// Thresholds per octave of the quarter-octave grid.
    pub const QUARTER: u32 = 4;

    /// A grid: its scale and first guess.
    #[derive(Clone, Copy)]
    pub(super) struct Grid {
        c: f64,
        guess: norm::Quadratic,
    }

    /// The grid of `steps` thresholds per octave (8 or 4).
    pub(super) fn grid(steps: u32) -> Option<Grid> {
        let d = match steps {
            STEPS => D,
            QUARTER => D_QUARTER,
            _ => return None,
        };
        let c = if steps == STEPS { C8 } else { C4 };
        Some(Grid {
            c,
            guess: norm::Quadratic {
                d,
                w: WORK_FRAC,
                g: G,
            },
        })
    }

    /// A spec on eighth octaves `[2^lo, 2^hi)` for inputs at `f` fractional bits, compared
    /// over every non-negative ring value, with `above` as the saturation value: each
    /// threshold exact to `2^-7` of itself (the undershoot [`fine`](self) allows), the
    /// lowest one included.
    pub fn spec_for(f: u32, lo: i32, hi: i32, above: f64) -> Spec {
        spec_on(STEPS, f, lo, hi, above)
    }

    /// [`spec_for`] on `steps` thresholds per octave (8 or 4, [`QUARTER`]).
    pub fn spec_on(steps: u32, f: u32, lo: i32, hi: i32, above: f64) -> Spec {
        let shift = (f as i32 + lo - 7).max(0) as u32;
        let per = steps as i32;
        Spec {
            in_frac: f,
            steps,
            lo: per * lo,
            hi: per * hi,
            k: 64 - shift,
            shift,
            above,
            relative: 7,
        }
    }

    pub(super) fn reciprocal<T: Transport, D: Dealer, K: MatMul>(
        s: &mut Session<T, D, K>,
        y: &[AShare],
        spec: &Spec,
        out_frac: u32,
        out: &mut [AShare],
        scratch: &mut [u64],
    ) -> Result<()> {
        let g = reciprocal_raw(s, y, spec, out_frac, out, scratch)?;
        s.dealer
            .request(&[crate::protocols::trunc::item(y.len(), g)])?;
        crate::protocols::trunc::run_by(s, out, g, scratch)
    }

    fn out_max(spec: &Spec) -> f64 {
        (1.0001 / spec.range().0).max(libm::fabs(spec.above))
    }

    /// [`super::reciprocal`] on eighth octaves without the rescale's truncation: `out` at
    /// `out_frac + g` bits for the returned `g` ([`norm::rescale_raw`]).
    pub fn reciprocal_raw<T: Transport, D: Dealer, K: MatMul>(
        s: &mut Session<T, D, K>,
        y: &[AShare],
        spec: &Spec,
        out_frac: u32,
        out: &mut [AShare],
        scratch: &mut [u64],
    ) -> Result<u32> {
        let n = y.len();
        let Grid { c, guess } = grid(spec.steps).ok_or(crate::Error::Param(
            "reciprocal: the spec must use quarter or eighth octaves",
        ))?;
        let mut ar = Arena::new(scratch);
        let storage = ar.take(norm::storage_words(n, spec))?;
        let u = ar.take(n)?;
        let shift = guess.shift(X_FRAC);
        let (nz, guard) = norm::normalize_raw(
            s,
            y,
            spec,
            &[c],
            WORK_FRAC,
            shift,
            AShare::from_raw_slice_mut(u),
            storage,
            ar.sub().rest(),
        )?;
        let factors = nz.factors();
        let x = ar.take(n)?;
        guess.eval(s, u, guard, AShare::from_raw_slice_mut(x), ar.sub().rest())?;
        let above = spec.above;
        norm::rescale_pending(
            s,
            nz,
            AShare::from_raw_slice(x),
            X_FRAC,
            |j| {
                if j >= spec.hi {
                    above / guess.at_minus_one()
                } else {
                    factors.get(c, j)
                }
            },
            out_frac,
            out_max(spec),
            out,
            ar.rest(),
        )
    }

    /// Cost of [`super::reciprocal`] on eighth octaves.
    pub fn cost(n: usize, spec: &Spec) -> crate::protocols::Cost {
        cost_raw(n, spec) + crate::protocols::trunc::cost(n)
    }

    /// Cost of [`reciprocal_raw`] on `n` elements.
    pub fn cost_raw(n: usize, spec: &Spec) -> crate::protocols::Cost {
        norm::cost_normalize_raw(n, spec) + norm::Quadratic::cost(n) + norm::cost_rescale_pending(n)
    }
}
