//! SecFormer's 2Quad softmax: `p_j = q_j / sum_k q_k`, `q_j = (x_j + c)^2`, per row, with
//! masked (padding) positions contributing 0.
//!
//! One square round (plus truncation) gives `q`; masked entries are zeroed locally (the
//! mask is public: the token count is known to both parties); the row sums are local;
//! [`super::reciprocal::fine`] (quarter octaves) with a softmax-specific range gives `1/S`
//! at 40 fractional bits
//! (the paper's fixed deflation by 5000 diverges past row sums of about 10^4; the
//! power-of-two normalization has no such limit inside its range); one row-broadcast
//! product brings `p` back to `f` bits.
//!
//! Valid input range: scores with `|x + c| < 2^15` (the square's fixed-point range) whose
//! row sums `S` are in `[1/4, 2^26)`: max |error| <= 1e-3 (about 2e-4 relative, plus
//! fixed-point rounding). That covers rows of 512 keys with `|x + c|` up to 362 everywhere
//! (at `c = 5`, scores in [-20, 20] give `S <= 2^18.3`). Saturation: rows with `S < 1/4`
//! (including all-masked rows) and rows with `S >= 2^26` give all-zero probabilities (the
//! reciprocal's comparisons see every non-negative ring value, so no row sum wraps).
//!
//! Fed by a product not yet truncated ([`softmax_2quad_wide`], as the encoder layer does),
//! the product's truncation shares the square's round ([`super::trunc_square::trunc_square_to`]):
//! 11 rounds after the product's opening instead of 12 ([`wide_cost`]).
//!
//! Cost ([`cost`]): rounds `2 + 7 + 2` = 11 (the reciprocal's last truncation rides in
//! the row product's round, [`reciprocal::divide_by_row_sums`]); per party, `128 + 1` bits per element for
//! the square, the reciprocal of the `rows` sums on 113 quarter-octave thresholds with
//! 57-bit coarse comparisons (each decided to `2^-7` of itself), and the row-broadcast
//! product.

use crate::arena::Arena;
use crate::dealer::Dealer;
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::norm::Spec;
use super::{bitmul, reciprocal, rowmul, square, trunc, trunc_square, Mask, Width};

/// Fractional bits of the per-row reciprocal.
const RECIP_FRAC: u32 = 40;
/// The default `c`.
pub const DEFAULT_C: f64 = 5.0;

/// Lower end of the row sums' range, as a power of two.
pub const SUM_LO_LOG2: i32 = -2;
/// Upper end of the row sums' range, as a power of two (rows at or above give zeros).
pub const SUM_HI_LOG2: i32 = 26;

/// The reciprocal spec for row sums at `f` bits in `[1/4, 2^26)`, 0 above: quarter octaves
/// ([`reciprocal::fine`]), whose one product after the normalization saves four rounds
/// over octaves' three product levels, at 113 thresholds per row sum (eighth octaves would
/// halve the quadratic's error, 1.85e-4, for twice the comparisons).
pub fn spec(f: u32) -> Spec {
    reciprocal::fine::spec_on(reciprocal::fine::QUARTER, f, SUM_LO_LOG2, SUM_HI_LOG2, 0.0)
}

/// Scratch words for `rows x cols`.
pub fn scratch_words(rows: usize, cols: usize, f: u32) -> usize {
    let n = rows * cols;
    2 * n
        + 2 * rows
        + square::scratch_words(n)
            .max(reciprocal::scratch_words(rows, &spec(f)))
            .max(rowmul::pending_scratch_words(rows, cols))
}

/// Scratch words of [`softmax_2quad_wide`] for `rows x cols`.
pub fn wide_scratch_words(rows: usize, cols: usize, f: u32) -> usize {
    let n = rows * cols;
    2 * n
        + 2 * rows
        + trunc_square::scratch_words(n)
            .max(square::scratch_words(n))
            .max(bitmul::convenience_scratch_words(n))
            .max(trunc::scratch_words(n))
            .max(reciprocal::scratch_words(rows, &spec(f)))
            .max(rowmul::pending_scratch_words(rows, cols))
}

/// 2Quad softmax of each row of `x` (`rows x cols`); masked entries get probability 0.
pub fn softmax_2quad<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    rows: usize,
    cols: usize,
    x: &[AShare],
    mask: Mask<'_>,
    c: f64,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = rows * cols;
    check_len("softmax input", n, x.len())?;
    check_len("softmax output", n, out.len())?;
    mask.check(rows, cols)?;
    let mut ar = Arena::new(scratch);
    let shifted = ar.take(n)?;
    let off = s.party.share_of_public(s.enc.encode(c)?);
    for (d, v) in shifted.iter_mut().zip(AShare::raw_slice(x)) {
        *d = v.wrapping_add(off);
    }
    let q = ar.take(n)?;
    square::square(
        s,
        AShare::from_raw_slice(shifted),
        AShare::from_raw_slice_mut(q),
        ar.sub().rest(),
    )?;
    divide(s, rows, cols, q, mask, out, ar.rest())
}

/// Zeroes the masked squares of `q` (at `f` bits) and divides each row by its sum.
fn divide<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    rows: usize,
    cols: usize,
    q: &mut [u64],
    mask: Mask<'_>,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    for (idx, v) in q.iter_mut().enumerate() {
        if !mask.keep(cols, idx) {
            *v = 0;
        }
    }
    let f = s.enc.frac_bits();
    reciprocal::divide_by_row_sums(
        s,
        rows,
        cols,
        AShare::from_raw_slice(q),
        &spec(f),
        RECIP_FRAC,
        RECIP_FRAC,
        out,
        scratch,
    )
}

/// [`softmax_2quad`] on scores `v` at `2f` fractional bits known modulo `2^m` (`ring`: a
/// product not yet truncated, [`super::matmul::matmul_batch_wide_in`]; overwritten).
/// The product's truncation and the square share one round
/// ([`super::trunc_square::trunc_square_to`], from the product's ring to the full one),
/// then the square is truncated: one round fewer than truncating the product first.
/// `keep`, if given, holds XOR-shared key bits (one per score, 1 = keep) that multiply the
/// squares before their truncation (one bit-product round), for keys masked in secret.
/// Valid input range: scores with `|x + c| < 2^(m - 2 - 2f)` (`2^14` at 48 bits), row sums
/// as [`softmax_2quad`]. Cost: [`wide_cost`].
#[allow(clippy::too_many_arguments)]
pub fn softmax_2quad_wide<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    rows: usize,
    cols: usize,
    v: &mut [AShare],
    ring: Width,
    mask: Mask<'_>,
    keep: Option<&[u64]>,
    c: f64,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = rows * cols;
    check_len("softmax input", n, v.len())?;
    check_len("softmax output", n, out.len())?;
    mask.check(rows, cols)?;
    let f = s.enc.frac_bits();
    let mut ar = Arena::new(scratch);
    // v + c 2^(2f): the truncation carries the offset exactly.
    let off = s.party.share_of_public(s.enc.encode(c)? << f);
    for x in AShare::raw_slice_mut(v) {
        *x = x.wrapping_add(off);
    }
    let q = ar.take(n)?;
    if s.trunc_mode == trunc::TruncMode::Faithful {
        trunc_square::trunc_square_to(
            s,
            v,
            f,
            ring,
            Width::FULL,
            AShare::from_raw_slice_mut(q),
            ar.sub().rest(),
        )?;
    } else {
        trunc::trunc_by_in(s, v, f, trunc::usable(s.trunc_mode, ring), ar.sub().rest())?;
        square::square_wide(s, v, AShare::from_raw_slice_mut(q), ar.sub().rest())?;
    }
    // Secret key bits multiply the squares (m (x + c)^2) into a buffer of their own.
    let q = match keep {
        Some(bits) => {
            let kept = ar.take(n)?;
            bitmul::bit_mul(
                s,
                bits,
                AShare::from_raw_slice(q),
                AShare::from_raw_slice_mut(kept),
                ar.sub().rest(),
            )?;
            kept
        }
        None => q,
    };
    trunc::trunc_by(s, AShare::from_raw_slice_mut(q), f, ar.sub().rest())?;
    divide(s, rows, cols, q, mask, out, ar.rest())
}

/// Cost of [`softmax_2quad_wide`] on `rows x cols` scores (at `f` fractional bits; `keep`:
/// with secret key bits), faithful truncations.
pub fn wide_cost(rows: usize, cols: usize, keep: bool, f: u32) -> super::Cost {
    let n = rows * cols;
    let masked = if keep {
        bitmul::cost(n, 1)
    } else {
        super::Cost::default()
    };
    trunc_square::cost_to(n, Width::FULL)
        + masked
        + trunc::cost(n)
        + reciprocal::divide_cost(rows, cols, &spec(f))
}

/// Cost of the 2Quad softmax on `rows x cols` (at `f` fractional bits).
pub fn cost(rows: usize, cols: usize, f: u32) -> super::Cost {
    square::cost(rows * cols) + reciprocal::divide_cost(rows, cols, &spec(f))
}
