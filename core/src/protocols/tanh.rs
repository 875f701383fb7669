//! tanh (the BERT pooler) by the same segmented-Fourier method as GeLU.
//!
//! With `c1 = [x < -T]`, `c2 = [x < T]`, `e = c1 ^ c2`:
//! `tanh(x) = (1 - c2) - c1 + e S(x)`, `S(x) = sum_h b_h sin(2 pi h x / P)` fitted on
//! `[-T, T]`, `T = 4.5`, `P = 16`, `K = 8` ([`TANH_SIN`], from `scripts/fit_fourier.py`):
//! fit error at most 1.3e-3. One bit-product round gives `e S` and, from the same opened
//! bits, the arithmetic `1 - c2` and `c1` (B2A for free); then one truncation.
//!
//! The segment comparisons are coarse like GeLU's ([`SHIFT`] = 6 bits: thresholds exact
//! to 2^-10, where both pieces are within 1.4e-3 of tanh).
//!
//! Valid input range (error at most 1.4e-3 plus fixed-point rounding): `|x| < 2^(k-1+6-f)
//! - T - 2^-10`, i.e. `|x| < 131067` at the default [`DEFAULT_BITS`] = 28 and f = 16;
//! beyond it the segment bits see `x` modulo `2^(k+6-f)` (unspecified output).
//!
//! Cost per element at `k`-bit comparisons: rounds `1 + rounds(k) + 1 + 1`; bits sent per
//! party `8 ceil(p/8) + 2 cmp(k) + 3 + 64 + 1`.

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
pub const THRESHOLD: f64 = 4.5;
/// Real period of the series (a power of two).
pub const PERIOD_LOG2: u32 = 4;
/// `b_1..b_8` (index 0 unused): `tanh(x) ~ sum_h b_h sin(2 pi h x / 16)` on [-4.5, 4.5].
pub const TANH_SIN: [f64; 9] = [
    0.0,
    -9.262224379526e-01,
    3.485827087546e+00,
    -3.484077182942e+00,
    3.059354094601e+00,
    -1.900816355414e+00,
    9.878422420629e-01,
    -3.410014246680e-01,
    8.282069850245e-02,
];
/// Default comparison bits (`|x| < 131067` at f = 16 with [`SHIFT`]).
pub const DEFAULT_BITS: u32 = 28;
/// Low bits each share drops before the segment comparisons (at most `64 - k` are used).
pub const SHIFT: u32 = 6;

/// The coarsening used with `k`-bit comparisons.
pub fn shift(k: u32) -> u32 {
    SHIFT.min(64u32.saturating_sub(k))
}

/// The largest `|x|` (real, at `f` fractional bits) on which tanh with `k`-bit
/// comparisons keeps its error bound.
pub fn input_limit(k: u32, f: u32) -> f64 {
    let lim = compare::coarse_limit(k, shift(k)) as f64 / libm::exp2(f as f64);
    lim - THRESHOLD - libm::exp2(shift(k) as f64 - f as f64)
}

/// The plaintext function the protocol computes, for tests.
pub fn reference_approx(x: f64) -> f64 {
    if x < -THRESHOLD {
        -1.0
    } else if x >= THRESHOLD {
        1.0
    } else {
        let w = 2.0 * core::f64::consts::PI / (1u64 << PERIOD_LOG2) as f64;
        TANH_SIN
            .iter()
            .enumerate()
            .skip(1)
            .map(|(h, b)| b * libm::sin(w * h as f64 * x))
            .sum()
    }
}

/// Dealer items of tanh on `n` elements.
pub fn items(n: usize, k: u32, f: u32) -> heapless::Vec<Item, 20> {
    let mut v = heapless::Vec::new();
    let _ = v.push(fourier::item(n, PERIOD_LOG2 + f, TANH_SIN.len() - 1, f));
    for it in compare::segments_items(n, k) {
        let _ = v.push(it);
    }
    let _ = v.push(bitmul::item(n, 3, 1));
    let _ = v.push(trunc::item(n, f));
    v
}

/// Scratch words for `n` elements on `k` bits.
pub fn scratch_words(n: usize, k: u32) -> usize {
    let w2 = words_for_bits(2 * n);
    let w3 = words_for_bits(3 * n);
    let persistent = n + 2 * n + w2 + w3 + bitmul::material_words(n, 3, 1) + w3 + 3 * n + 3 * n;
    persistent
        + compare::segments_scratch_words(n, k)
            .max(fourier::scratch_words(n, TANH_SIN.len()))
            .max(bitmul::scratch_words(n, 3))
            .max(trunc::scratch_words(n))
}

/// `out = tanh(x)` with `k`-bit comparisons.
pub fn tanh<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    k: u32,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    check_len("tanh output", n, out.len())?;
    let f = s.enc.frac_bits();
    s.dealer.request(&items(n, k, f))?;
    let mut ar = Arena::new(scratch);
    let series_out = ar.take(n)?;
    let series = Series {
        p: PERIOD_LOG2 + f,
        c0: 0.0,
        alpha: &TANH_SIN[1..],
        beta: &[],
    };
    fourier::run(
        s,
        x,
        &series,
        AShare::from_raw_slice_mut(series_out),
        ar.sub().rest(),
    )?;

    let c = ar.take(words_for_bits(2 * n))?;
    compare::segments_run(s, x, THRESHOLD, k, shift(k), c, ar.sub().rest())?;

    // Bits per element: [e, 1 - c2, c1].
    let b = ar.take_zeroed(words_for_bits(3 * n))?;
    let one = s.party.xor_share_of_public(1);
    for i in 0..n {
        let c1 = crate::bits::get(c, i);
        let c2 = crate::bits::get(c, n + i);
        crate::bits::set(b, 3 * i, c1 ^ c2);
        crate::bits::set(b, 3 * i + 1, c2 ^ one);
        crate::bits::set(b, 3 * i + 2, c1);
    }
    let storage = ar.take(bitmul::material_words(n, 3, 1))?;
    let mut mat = bitmul::take(&mut s.dealer, n, 3, 1, storage)?;
    let d = ar.take(words_for_bits(3 * n))?;
    let z = ar.take(3 * n)?;
    bitmul::first(
        s,
        &mut mat,
        b,
        AShare::from_raw_slice(series_out),
        d,
        AShare::from_raw_slice_mut(z),
        ar.sub().rest(),
    )?;
    let arith = ar.take(3 * n)?;
    bitmul::to_arith(s.party, &mat, d, AShare::from_raw_slice_mut(arith));
    let two_f = 2 * f;
    let o = AShare::raw_slice_mut(out);
    for i in 0..n {
        let steps = arith[3 * i + 1].wrapping_sub(arith[3 * i + 2]);
        o[i] = z[3 * i].wrapping_add(steps << two_f);
    }
    trunc::run(s, out, ar.rest())
}

/// Cost of tanh on `n` elements with `k`-bit comparisons (at `f` fractional bits).
pub fn cost(n: usize, k: u32, f: u32) -> super::Cost {
    fourier::cost(n, PERIOD_LOG2 + f)
        + compare::segments_cost(n, k)
        + bitmul::cost(n, 3)
        + trunc::cost(n)
}
