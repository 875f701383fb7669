//! GeLU(x) = 0.5 x (1 + erf(x / sqrt 2)), by segments and an exactly masked Fourier
//! series (SecFormer, with a power-of-two period and refitted coefficients).
//!
//! With `c1 = [x < -T]` and `c2 = [x < T]` (one batched comparison of `2n` values) and
//! `e = c1 ^ c2` (the middle segment):
//!
//! `GeLU(x) = (1 - c1) x + e (M(x) - x)`, `M(x) = 0.5 x + a_0 + sum_h a_h cos(2 pi h x / P)`
//!
//! (for `x < -T` both bits give 0; in the middle `x + M - x = M`; above `T`, `x`). The even
//! part `0.5 x erf(x / sqrt 2)` is fitted by cosines on `[-T, T]` with `T = 4`, period
//! `P = 16` (`p = 4 + f` bits), `K = 6` harmonics: `scripts/fit_fourier.py` regenerates
//! [`GELU_COS`]. Fit error: max 1.9e-4 everywhere (at the segment ends, where
//! `|GeLU(+-4) - {0, 4}| = 1.3e-4`), mean 1.3e-4 on [-1, 1]; fixed-point rounding adds a
//! few 1e-5.
//!
//! Both products `(1 - c1) x` and `e (M - x)` are one bit product round
//! ([`super::bitmul`]) on values at `2f` fractional bits, then one truncation.
//!
//! The segment comparisons are coarse ([`compare::coarsen`], [`SHIFT`] = 6 bits): the
//! thresholds are exact to `2^(6-f)` = 2^-10 (within `[T, T + 2^-10)`, either piece is
//! used; both are within 2e-4 of GeLU there), and they cover `|x| + T < 2^(k-1+6-f)`.
//!
//! Valid input range (the error bounds above hold): `|x| < 2^(k-1+6-f) - T - 2^-10`,
//! i.e. `|x| < 131068` at the default [`DEFAULT_BITS`] = 28 and f = 16 (2044 with exact
//! 28-bit comparisons). Beyond it the segment bits see `x` modulo
//! `2^(k+6-f)` (unspecified output): callers keep activations far inside (BERT's are
//! below 100).
//!
//! Cost per element, `k`-bit comparisons: rounds `1 (sine) + rounds(k) + 1 (bit
//! products) + 1 (truncation)` = 9 at k = 28; bits sent per party
//! `8 ceil(p/8) + 2 cmp(k) + 2 (64 + 1) + 1` = 24 + 200 + 130 + 1 = 355 at k = 28 (SecFormer:
//! 7210 bits, 2 log L + 4 rounds).

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::prg::words_for_bits;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::fourier::{self, Series};
use super::{bitmul, compare, trunc};

/// Segment threshold T.
pub const THRESHOLD: f64 = 4.0;
/// Real period of the series (a power of two).
pub const PERIOD_LOG2: u32 = 4;
/// `a_0..a_6`: `0.5 x erf(x / sqrt 2) ~ a_0 + sum_h a_h cos(2 pi h x / 16)` on [-4, 4].
pub const GELU_COS: [f64; 7] = [
    -1.178608186202e-01,
    2.123095527603e+00,
    -2.893353367321e+00,
    1.547359593370e+00,
    -8.435845220328e-01,
    2.523094088830e-01,
    -6.777724699749e-02,
];
/// Default comparison bits: with [`SHIFT`], inputs must satisfy
/// `|x| + T < 2^(27 + 6 - f)` = 131072 at f = 16.
pub const DEFAULT_BITS: u32 = 28;
/// Low bits each share drops before the segment comparisons (at most `64 - k` are used).
pub const SHIFT: u32 = 6;

/// The coarsening used with `k`-bit comparisons.
pub fn shift(k: u32) -> u32 {
    SHIFT.min(64u32.saturating_sub(k))
}

/// The largest `|x|` (real, at `f` fractional bits) on which GeLU with `k`-bit
/// comparisons keeps its error bound.
pub fn input_limit(k: u32, f: u32) -> f64 {
    let lim = compare::coarse_limit(k, shift(k)) as f64 / libm::exp2(f as f64);
    lim - THRESHOLD - libm::exp2(shift(k) as f64 - f as f64)
}

/// The plaintext function the protocol computes (segments + series), for tests. The
/// protocol's coarse thresholds lie in `[-T, -T + 2^(SHIFT - f))` and
/// `[T, T + 2^(SHIFT - f))` ([`reference_with`]).
pub fn reference_approx(x: f64) -> f64 {
    reference_with(x, -THRESHOLD, THRESHOLD)
}

/// [`reference_approx`] with the segment thresholds at `lo` and `hi`.
pub fn reference_with(x: f64, lo: f64, hi: f64) -> f64 {
    if x < lo {
        0.0
    } else if x >= hi {
        x
    } else {
        let w = 2.0 * core::f64::consts::PI / (1u64 << PERIOD_LOG2) as f64;
        let mut m = 0.5 * x + GELU_COS[0];
        for (h, a) in GELU_COS.iter().enumerate().skip(1) {
            m += a * libm::cos(w * h as f64 * x);
        }
        m
    }
}

/// Dealer items of GeLU on `n` elements with `k`-bit comparisons.
pub fn items(n: usize, k: u32, f: u32) -> heapless::Vec<Item, 20> {
    let mut v = heapless::Vec::new();
    let _ = v.push(fourier::item(n, PERIOD_LOG2 + f, GELU_COS.len() - 1, f));
    for it in compare::items(2 * n, k) {
        let _ = v.push(it);
    }
    let _ = v.push(bitmul::item(2 * n, 1, 1));
    let _ = v.push(trunc::item(n, f));
    v
}

/// Scratch words for `n` elements on `k` bits.
pub fn scratch_words(n: usize, k: u32) -> usize {
    let w2 = words_for_bits(2 * n);
    let persistent = 2 * n + 2 * n + 2 * w2 + bitmul::material_words(2 * n, 1, 1) + w2 + 2 * n;
    persistent
        + compare::scratch_words(2 * n, k)
            .max(fourier::scratch_words(n, GELU_COS.len()))
            .max(bitmul::scratch_words(2 * n, 1))
            .max(trunc::scratch_words(n))
}

/// `out = GeLU(x)` with `k`-bit comparisons.
pub fn gelu<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    k: u32,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    check_len("gelu output", n, out.len())?;
    let f = s.enc.frac_bits();
    s.dealer.request(&items(n, k, f))?;
    let mut ar = Arena::new(scratch);
    let xs = AShare::raw_slice(x);

    // M(x) - 0.5 x = series, at 2f bits; then v = [x, M - x] at 2f bits.
    let vals = ar.take(2 * n)?;
    {
        let series = Series {
            p: PERIOD_LOG2 + f,
            c0: GELU_COS[0],
            alpha: &[],
            beta: &GELU_COS[1..],
        };
        let (v0, v1) = vals.split_at_mut(n);
        fourier::run(
            s,
            x,
            &series,
            AShare::from_raw_slice_mut(v1),
            ar.sub().rest(),
        )?;
        for i in 0..n {
            v0[i] = xs[i] << f; // x at 2f bits
            v1[i] = v1[i].wrapping_sub(xs[i] << (f - 1)); // series - 0.5 x = M - x
        }
    }

    // c1 = [x + T < 0], c2 = [x - T < 0] in one batch.
    let w2 = words_for_bits(2 * n);
    let c = ar.take(w2)?;
    compare::segments_run(s, x, THRESHOLD, k, shift(k), c, ar.sub().rest())?;

    // Bits: [1 - c1 (n), c1 ^ c2 (n)].
    let b = ar.take_zeroed(w2)?;
    {
        for i in 0..n {
            let c1 = crate::bits::get(c, i);
            let c2 = crate::bits::get(c, n + i);
            let not_c1 = c1 ^ s.party.xor_share_of_public(1);
            crate::bits::set(b, i, not_c1);
            crate::bits::set(b, n + i, c1 ^ c2);
        }
    }
    let storage = ar.take(bitmul::material_words(2 * n, 1, 1))?;
    let mut mat = bitmul::take(&mut s.dealer, 2 * n, 1, 1, storage)?;
    let d = ar.take(w2)?;
    let z = ar.take(2 * n)?;
    bitmul::first(
        s,
        &mut mat,
        b,
        AShare::from_raw_slice(vals),
        d,
        AShare::from_raw_slice_mut(z),
        ar.sub().rest(),
    )?;
    let o = AShare::raw_slice_mut(out);
    for i in 0..n {
        o[i] = z[i].wrapping_add(z[n + i]);
    }
    trunc::run(s, out, ar.rest())
}

/// Cost of GeLU on `n` elements with `k`-bit comparisons (at `f` fractional bits).
pub fn cost(n: usize, k: u32, f: u32) -> super::Cost {
    fourier::cost(n, PERIOD_LOG2 + f)
        + compare::cost(2 * n, k)
        + bitmul::cost(2 * n, 1)
        + trunc::cost(n)
}
