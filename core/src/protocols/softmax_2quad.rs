//! SecFormer's 2Quad softmax: `p_j = q_j / sum_k q_k`, `q_j = (x_j + c)^2`, per row, with
//! masked (padding) positions contributing 0.
//!
//! One square round (plus truncation) gives `q`; masked entries are zeroed locally (the
//! mask is public: the token count is known to both parties); the row sums are local;
//! [`super::reciprocal`] with a softmax-specific range gives `1/S` at 40 fractional bits
//! (the paper's fixed deflation by 5000 diverges past row sums of about 10^4; the
//! power-of-two normalization has no such limit inside its range); one row-broadcast
//! product brings `p` back to `f` bits.
//!
//! Correct (max |error| <= 1e-3) for row sums `S` in `[1/4, 2^20]` (e.g. rows of 8 to 512
//! scores in [-20, 20] with `c = 5`). Rows whose sum is below 1/4, including all-masked
//! rows, give all-zero probabilities. Rounds: `2 + 17 + 2`.

use crate::arena::Arena;
use crate::dealer::Dealer;
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::norm::Spec;
use super::{reciprocal, rowmul, square, Mask};

/// Fractional bits of the per-row reciprocal.
const RECIP_FRAC: u32 = 40;
/// The default `c`.
pub const DEFAULT_C: f64 = 5.0;

/// The reciprocal spec for row sums at `f` bits in `[1/4, 2^20]`.
pub fn spec(f: u32) -> Spec {
    Spec {
        in_frac: f,
        lo: -4,
        hi: 40,
        k: 21 + f + 2,
    }
}

/// Scratch words for `rows x cols`.
pub fn scratch_words(rows: usize, cols: usize, f: u32) -> usize {
    let n = rows * cols;
    2 * n
        + 2 * rows
        + square::scratch_words(n)
            .max(reciprocal::scratch_words(rows, &spec(f)))
            .max(rowmul::scratch_words(rows, cols))
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
    let f = s.enc.frac_bits();
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
    for (idx, v) in q.iter_mut().enumerate() {
        if !mask.keep(cols, idx) {
            *v = 0;
        }
    }
    reciprocal::divide_by_row_sums(
        s,
        rows,
        cols,
        AShare::from_raw_slice(q),
        &spec(f),
        RECIP_FRAC,
        RECIP_FRAC,
        out,
        ar.rest(),
    )
}

/// Cost of the 2Quad softmax on `rows x cols` (at `f` fractional bits).
pub fn cost(rows: usize, cols: usize, f: u32) -> super::Cost {
    square::cost(rows * cols) + reciprocal::cost(rows, &spec(f)) + rowmul::cost(rows, cols)
}
