//! Power-of-two normalization for the Goldschmidt protocols (reciprocal, inverse square
//! root) and the matching rescaling of their results.
//!
//! For positive `y` the parties compute, in one batch, the comparisons
//! `c_j = [y >= t_j]` for the thresholds `t_j = 2^(j / steps)`, `j = lo..=hi` (`steps` = 1
//! for octaves, 2 for half octaves, 4 and 8 for quarter and eighth octaves). The bucket of `y` is the one-hot `o_j = c_j - c_(j+1)`:
//!
//! * `j < hi`: `y` is in `[t_j, t_(j+1))` and `Y = y F_j` with `F_j ~ a 2^(-(j+1)/steps)`
//!   lies in `a [2^(-1/steps), 1)`, a range on which a first guess and two or three
//!   Goldschmidt steps reach the target precision;
//! * `j = hi` (`y >= 2^(hi/steps)`, above the range): `F_hi = 0`, so the normalized value
//!   is 0, the Goldschmidt steps produce a known constant, and the rescale maps it to the
//!   caller's saturation value;
//! * `y < 2^(lo/steps)` (below the range, including 0 and negative values): no bucket; the
//!   normalized value and the rescaled result are 0.
//!
//! Both the normalized value and the final power-of-two factor are linear in the products
//! `c_j v` of the bits with one value `v`, which the bit-product protocol
//! ([`super::bitmul`]) delivers in one round per value while opening the bits only once;
//! the coefficients are telescoped (`sum_j o_j K_j = sum_j c_j (K_j - K_(j-1))`), computed
//! exactly in the ring, and one truncation brings the sum to the wanted precision. The
//! rounded `F_j` actually used is available to the rescale ([`Normalized::factor`]), so
//! the rounding of the normalization coefficients cancels out of the final result.
//!
//! The comparisons are coarse ([`compare::coarsen`] by `shift` bits): each threshold is
//! lowered by `2^shift` ring units and then decided exactly to `2^shift`, so it lies in
//! `[t_j - 2^shift, t_j]`. An input at or above `t_j` is always in bucket `j` or higher
//! (the range's lower end is exact; inputs up to `2^shift` ring units below the upper end
//! may already saturate), and `Y` may undershoot its bucket's lower end by at most
//! `2^shift / t_lo` relatively (the specs keep that at most 1/64). Inputs up to
//! `2^(k - 1 + shift)` ring units are compared without wrapping (`k + shift = 64` covers
//! every non-negative ring value). With [`Spec::relative`] `= r > 0` each threshold but
//! the range's upper end also drops its own low bits ([`Spec::dropped`]) while staying
//! exact to `t_j 2^-r`: the undershoot is then at most `2^-r` per bucket, and the
//! comparisons of the large thresholds send far fewer bits
//! ([`compare::msb_fanout_coarse_run`]; LayerNorm's 173 quarter octaves at `H = 384`:
//! 8,004 bits per row from P0 and 2,712 from P1, against 12,456 and 4,200 with every
//! threshold exact to `2^shift`).
//!
//! Cost ([`cost_normalize`]): one comparison batch of `n J` values on `k` bits
//! (`J = hi - lo + 1`; P1's share is the same against every threshold, so its leaf bits
//! go once: [`compare::msb_fanout_run`]; fewer with [`Spec::relative`]), one bit-product round (`J + 64` bits per element), one truncation
//! of `copies n` values: rounds `compare::rounds(k) + 2`. [`rescale`]: 2 rounds, `64 + 1`
//! bits per element.

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Error, Result};
use crate::kernel::MatMul;
use crate::prg::words_for_bits;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::{bitmul, compare, trunc, trunc_square};

/// The most thresholds a spec may have.
pub const MAX_BUCKETS: usize = 1024;

/// The thresholds and comparison width of a normalization.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    /// Fractional bits of the input.
    pub in_frac: u32,
    /// Thresholds per octave: 1, 2, 4 or 8.
    pub steps: u32,
    /// Lowest threshold exponent (threshold `2^(lo / steps)`): the range's lower end.
    pub lo: i32,
    /// Highest threshold exponent: the range's upper end; inputs at or above
    /// `2^(hi / steps)` saturate.
    pub hi: i32,
    /// Comparison bits.
    pub k: u32,
    /// Low bits dropped from each share before comparing (`k + shift <= 64`).
    pub shift: u32,
    /// The result for inputs at or above the range (the saturation value; e.g. the
    /// function's value at the range's end, or 0).
    pub above: f64,
    /// Relative exactness of the thresholds, in bits: 0 decides every threshold exactly to
    /// `2^shift` ring units; `r > 0` lets threshold `t_j` drop more low bits as long as it
    /// stays exact to `t_j 2^-r` ([`Spec::dropped`]), which makes the comparisons of the
    /// large thresholds cheaper ([`compare::msb_fanout_coarse_run`]).
    pub relative: u32,
}

impl Spec {
    /// Number of thresholds per element.
    pub fn buckets(&self) -> usize {
        (self.hi - self.lo + 1).max(0) as usize
    }

    /// The range `[2^(lo/steps), 2^(hi/steps))` on which results are accurate.
    pub fn range(&self) -> (f64, f64) {
        let e = |j: i32| libm::exp2(j as f64 / self.steps as f64);
        (e(self.lo), e(self.hi))
    }

    /// The largest input (real) that the comparisons decide without wrapping.
    pub fn compared_up_to(&self) -> f64 {
        compare::coarse_limit(self.k, self.shift) as f64 / libm::exp2(self.in_frac as f64)
    }

    /// Checks the parameters (a programming error, not a data error, when they fail).
    pub fn check(&self) -> Result<()> {
        let thresholds_fit = libm::exp2(self.hi as f64 / self.steps as f64 + self.in_frac as f64)
            < compare::coarse_limit(self.k, self.shift) as f64;
        if ![1, 2, 4, 8].contains(&self.steps)
            || self.lo >= self.hi
            || self.buckets() > MAX_BUCKETS
            || !(2..=compare::MAX_BITS).contains(&self.k)
            || self.k + self.shift > 64
            || !thresholds_fit
        {
            return Err(Error::Param(
                "normalization spec: steps 1, 2, 4 or 8, lo < hi, at most 1024 thresholds, k + shift <= 64, thresholds within the compared range",
            ));
        }
        Ok(())
    }

    fn threshold_exp(&self, j: i32) -> f64 {
        j as f64 / self.steps as f64
    }

    /// The low bits that threshold `jj` (counted from `lo`) drops beyond `shift`: with
    /// [`Spec::relative`] `= r`, `floor(log2 t_j) - shift - r` (at least 0, at most
    /// `k - 1`), so `2^(shift + dropped) <= t_j 2^-r`; none for the range's upper end
    /// (`jj = hi - lo`), which stays exact to `2^shift` so that the range is unchanged.
    pub fn dropped(&self, jj: usize) -> u32 {
        if self.relative == 0 || jj + 1 >= self.buckets() {
            return 0;
        }
        let e = self.threshold_exp(self.lo + jj as i32) + self.in_frac as f64;
        let d = libm::floor(e) as i64 - self.shift as i64 - self.relative as i64;
        d.clamp(0, self.k as i64 - 1) as u32
    }

    /// The threshold compared as copy `c`: the upper end first, then `lo..hi` (so that
    /// the dropped bits are non-decreasing in copy order).
    fn compared(&self, c: usize) -> usize {
        (c + self.buckets() - 1) % self.buckets()
    }

    /// [`Spec::dropped`] of every threshold in compare order into `out`.
    fn dropped_all<'a>(&self, out: &'a mut [u64]) -> Result<&'a [u32]> {
        let j = self.buckets();
        let words: &mut [u32] = bytemuck::cast_slice_mut(out);
        let dead = words
            .get_mut(..j)
            .ok_or(Error::Param("normalize: scratch too small"))?;
        for (c, d) in dead.iter_mut().enumerate() {
            *d = self.dropped(self.compared(c));
        }
        Ok(dead)
    }
}

/// The extra fractional bits used while summing the telescoped products before the final
/// truncation, for a result of at most `max` at `out_frac` bits.
fn guard_bits(out_frac: u32, max: f64) -> Result<u32> {
    let top = libm::ceil(libm::log2(max.max(1e-300))) as i32;
    let g = 61 - out_frac as i32 - top.max(0);
    if g < 1 {
        return Err(Error::Param(
            "normalization: result does not fit at these fractional bits",
        ));
    }
    Ok(g as u32)
}

fn max_abs(scales: &[f64]) -> f64 {
    scales.iter().fold(0.0f64, |m, a| m.max(libm::fabs(*a)))
}

/// Dealer items of [`normalize`] with `scales.len()` scaled copies (the rescale requests
/// its own truncation later); without the final truncation for [`normalize_raw`], whose
/// bit products carry the material of a pending rescale ([`rescale_pending`]) that
/// truncates its value by `pending` bits.
pub fn items(
    n: usize,
    spec: &Spec,
    out_frac: u32,
    scales: &[f64],
    pending: Option<u32>,
) -> Result<heapless::Vec<Item, 20>> {
    let j = spec.buckets();
    let mut v = heapless::Vec::new();
    for it in compare::fanout_items(n, j, spec.k) {
        let _ = v.push(it);
    }
    match pending {
        Some(f) => {
            let _ = v.push(Item::BitMulTrunc {
                n: n as u32,
                m: j as u16,
                f: f as u8,
            });
        }
        None => {
            let _ = v.push(bitmul::item(n, j, 2));
        }
    }
    if pending.is_none() {
        let _ = v.push(trunc::item(
            scales.len() * n,
            guard_bits(out_frac, max_abs(scales))?,
        ));
    }
    Ok(v)
}

/// Storage words the [`Normalized`] state borrows.
pub fn storage_words(n: usize, spec: &Spec) -> usize {
    let j = spec.buckets();
    bitmul::pending_material_words(n, j) + words_for_bits(n * j)
}

/// Scratch words for [`normalize`] (with `copies` scaled outputs) and [`rescale`].
pub fn scratch_words(n: usize, spec: &Spec, copies: usize) -> usize {
    let j = spec.buckets();
    let w = words_for_bits(n * j);
    n * j
        + j.div_ceil(2)
        + (copies.max(1) + 1) * j
        + w
        + w
        + compare::fanout_scratch_words(n, j, spec.k)
            .max(bitmul::scratch_words(n, j))
            .max(bitmul::pending_scratch_words(n))
            .max(trunc::scratch_words(copies.max(1) * n))
}

/// The opened bucket bits and the bit-product material kept for [`rescale`].
pub struct Normalized<'a> {
    n: usize,
    factors: Factors,
    d: &'a [u64],
    mat: bitmul::Material<'a>,
}

impl Normalized<'_> {
    /// The normalization factors that were applied.
    pub fn factors(&self) -> Factors {
        self.factors
    }
}

/// The factors `F_j` of a normalization, exactly as applied (with the coefficients'
/// rounding), for building the rescale's coefficients.
#[derive(Debug, Clone, Copy)]
pub struct Factors {
    spec: Spec,
    /// `F_j = K_j / 2^coef_bits`.
    coef_bits: i32,
}

impl Factors {
    /// The factor `F_j` by which [`normalize`] multiplied an input of bucket `j` in the
    /// scaled copy with scale `a`; 0 for the saturation bucket `j = hi`.
    pub fn get(&self, a: f64, j: i32) -> f64 {
        if j >= self.spec.hi {
            return 0.0;
        }
        let e = libm::exp2(self.coef_bits as f64);
        libm::round(a * libm::exp2(-self.spec.threshold_exp(j + 1)) * e) / e
    }

    /// The spec of the normalization.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }
}

/// Telescoped coefficients `K_j - K_(j-1)` of `K_j = round(coef(j) 2^scale_log2)`.
fn telescoped(spec: &Spec, coef: impl Fn(i32) -> f64, scale_log2: i32, out: &mut [u64]) {
    let mut prev = 0i64;
    for (jj, o) in out.iter_mut().enumerate() {
        let j = spec.lo + jj as i32;
        let k = libm::round(coef(j) * libm::exp2(scale_log2 as f64)) as i64;
        *o = k.wrapping_sub(prev) as u64;
        prev = k;
    }
}

/// `out[c n + i] = y_i F_j` (bucket `j` of `y_i`, `F_j ~ a_c 2^(-(j+1)/steps)` for
/// `a_c = scales[c]`) at `out_frac` bits: in `a_c [2^(-1/steps), 1)` inside the range,
/// 0 above it and below it. Rounds: `compare::rounds(k) + 2`.
#[allow(clippy::too_many_arguments)]
pub fn normalize<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    y: &[AShare],
    spec: &Spec,
    scales: &[f64],
    out_frac: u32,
    out: &mut [AShare],
    storage: &'a mut [u64],
    scratch: &mut [u64],
) -> Result<Normalized<'a>> {
    s.dealer
        .request(&items(y.len(), spec, out_frac, scales, None)?)?;
    let (nz, g) = normalize_products(s, y, spec, scales, out_frac, None, out, storage, scratch)?;
    trunc::run_by(s, out, g, scratch)?;
    Ok(nz)
}

/// [`normalize`] without its final truncation: `out` holds the products at
/// `out_frac + g` bits for the returned guard bits `g`, for a caller that truncates them
/// in the round of its next opening ([`Quadratic::eval`]). The rescale that follows is
/// [`rescale_pending`] with a value still to be truncated by `pending` bits.
/// Rounds: `compare::rounds(k) + 1`.
#[allow(clippy::too_many_arguments)]
pub fn normalize_raw<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    y: &[AShare],
    spec: &Spec,
    scales: &[f64],
    out_frac: u32,
    pending: u32,
    out: &mut [AShare],
    storage: &'a mut [u64],
    scratch: &mut [u64],
) -> Result<(Normalized<'a>, u32)> {
    s.dealer
        .request(&items(y.len(), spec, out_frac, scales, Some(pending))?)?;
    normalize_products(
        s,
        y,
        spec,
        scales,
        out_frac,
        Some(pending),
        out,
        storage,
        scratch,
    )
}

/// The comparisons and bit products of a normalization (its items already requested).
#[allow(clippy::too_many_arguments)]
fn normalize_products<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    y: &[AShare],
    spec: &Spec,
    scales: &[f64],
    out_frac: u32,
    pending: Option<u32>,
    out: &mut [AShare],
    storage: &'a mut [u64],
    scratch: &mut [u64],
) -> Result<(Normalized<'a>, u32)> {
    spec.check()?;
    let n = y.len();
    let j = spec.buckets();
    check_len("normalize output", scales.len() * n, out.len())?;
    let g = guard_bits(out_frac, max_abs(scales))?;
    let mut st = Arena::new(storage);
    let mut ar = Arena::new(scratch);
    let ys = AShare::raw_slice(y);

    // c_j = [y >= t_j'] = NOT msb((y - t_j') >> (shift + d_j)), with d_j the threshold's
    // dropped bits and t_j' = t_j - 2^(shift + d_j) (when coarse) so that the threshold
    // lies in [t_j - 2^(shift + d_j), t_j]. Compared threshold-major in compare order (P0
    // alone subtracts t_j', so P1's J copies are equal and its leaf bits go once), then
    // laid out element-major for the bit products.
    let dead = spec.dropped_all(ar.take(j.div_ceil(2))?)?;
    let vals = ar.take(n * j)?;
    for (c, d) in dead.iter().enumerate() {
        let jj = spec.compared(c);
        let coarse = spec.shift + d;
        let lower = if coarse > 0 { 1u64 << coarse } else { 0 };
        let e = spec.threshold_exp(spec.lo + jj as i32) + spec.in_frac as f64;
        let t = (libm::round(libm::exp2(e)) as u64).saturating_sub(lower);
        let off = s.party.share_of_public(t);
        for i in 0..n {
            vals[c * n + i] = ys[i].wrapping_sub(off);
        }
    }
    compare::coarsen(vals, spec.shift);
    let bw = words_for_bits(n * j);
    let c = ar.take_zeroed(bw)?;
    {
        let mut sub = ar.sub();
        let by_copy = sub.take(bw)?;
        let vs = AShare::from_raw_slice(vals);
        compare::msb_fanout_coarse_run(s, vs, j, spec.k, dead, by_copy, sub.rest())?;
        for cc in 0..j {
            let jj = spec.compared(cc);
            for i in 0..n {
                let b = crate::bits::get(by_copy, cc * n + i);
                crate::bits::set(c, i * j + jj, b);
            }
        }
    }
    let ones = s.party.xor_share_of_public(u64::MAX);
    for w in c.iter_mut() {
        *w ^= ones;
    }
    crate::prg::clear_tail(c, n * j);

    let mut mat = match pending {
        Some(f) => {
            let mstore = st.take(bitmul::pending_material_words(n, j))?;
            bitmul::take_pending(&mut s.dealer, n, j, f, mstore)?
        }
        None => {
            let mstore = st.take(bitmul::material_words(n, j, 2))?;
            bitmul::take(&mut s.dealer, n, j, 2, mstore)?
        }
    };
    let d = st.take(bw)?;
    let z = vals; // reuse: c_j y
    bitmul::first(
        s,
        &mut mat,
        c,
        y,
        d,
        AShare::from_raw_slice_mut(z),
        ar.sub().rest(),
    )?;

    let factors = Factors {
        spec: *spec,
        coef_bits: out_frac as i32 - spec.in_frac as i32 + g as i32,
    };
    let coef = ar.take(j)?;
    let o = AShare::raw_slice_mut(out);
    for (copy, a) in scales.iter().enumerate() {
        telescoped(spec, |jb| factors.get(*a, jb), factors.coef_bits, coef);
        for i in 0..n {
            let mut acc = 0u64;
            for jj in 0..j {
                acc = acc.wrapping_add(z[i * j + jj].wrapping_mul(coef[jj]));
            }
            o[copy * n + i] = acc;
        }
    }
    Ok((Normalized { n, factors, d, mat }, g))
}

/// Rescales `x` (at `x_frac` bits) by the bucket's factor: `out = x kappa(j)` at
/// `out_frac` bits, with `kappa` given per threshold exponent (`kappa(hi)` applies above
/// the range; below it the result is 0) and `|out| <= out_max`. Consumes the
/// normalization: the bits' second mask is used once.
/// Rounds: 2 (the bits are already open: only `x`'s mask is opened, then a truncation).
#[allow(clippy::too_many_arguments)]
pub fn rescale<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    norm: Normalized<'_>,
    x: &[AShare],
    x_frac: u32,
    kappa: impl Fn(i32) -> f64,
    out_frac: u32,
    out_max: f64,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let g = guard_bits(out_frac, out_max)?;
    s.dealer.request(&[trunc::item(x.len(), g)])?;
    rescale_raw(s, norm, x, x_frac, kappa, out_frac, out_max, out, scratch)?;
    trunc::run_by(s, out, g, scratch)
}

/// [`rescale`] without its truncation: `out` at `out_frac + g` bits for the returned
/// guard bits `g`, for a caller that truncates it in the round of its next opening
/// ([`super::rowmul::run_pending`]). Rounds: 1.
#[allow(clippy::too_many_arguments)]
pub fn rescale_raw<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    norm: Normalized<'_>,
    x: &[AShare],
    x_frac: u32,
    kappa: impl Fn(i32) -> f64,
    out_frac: u32,
    out_max: f64,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<u32> {
    rescale_products(
        s, norm, x, false, x_frac, kappa, out_frac, out_max, out, scratch,
    )
}

/// [`rescale_raw`] of a value still to be truncated: `x` at `x_frac` plus the `pending`
/// bits given to [`normalize_raw`], truncated in the round of its opening
/// ([`bitmul::again_pending`]). Rounds: 1 ([`cost_rescale_pending`]).
#[allow(clippy::too_many_arguments)]
pub fn rescale_pending<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    norm: Normalized<'_>,
    x: &[AShare],
    x_frac: u32,
    kappa: impl Fn(i32) -> f64,
    out_frac: u32,
    out_max: f64,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<u32> {
    rescale_products(
        s, norm, x, true, x_frac, kappa, out_frac, out_max, out, scratch,
    )
}

#[allow(clippy::too_many_arguments)]
fn rescale_products<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    mut norm: Normalized<'_>,
    x: &[AShare],
    pending: bool,
    x_frac: u32,
    kappa: impl Fn(i32) -> f64,
    out_frac: u32,
    out_max: f64,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<u32> {
    let (n, spec) = (norm.n, norm.factors.spec);
    let j = spec.buckets();
    check_len("rescale input", n, x.len())?;
    check_len("rescale output", n, out.len())?;
    let g = guard_bits(out_frac, out_max)?;
    let mut ar = Arena::new(scratch);
    let z = ar.take(n * j)?;
    let zs = AShare::from_raw_slice_mut(z);
    if pending {
        bitmul::again_pending(s, &mut norm.mat, norm.d, x, zs, ar.sub().rest())?;
    } else {
        bitmul::again(s, &mut norm.mat, 1, norm.d, x, zs, ar.sub().rest())?;
    }
    let coef = ar.take(j)?;
    telescoped(
        &spec,
        kappa,
        out_frac as i32 - x_frac as i32 + g as i32,
        coef,
    );
    let o = AShare::raw_slice_mut(out);
    for i in 0..n {
        let mut acc = 0u64;
        for jj in 0..j {
            acc = acc.wrapping_add(z[i * j + jj].wrapping_mul(coef[jj]));
        }
        o[i] = acc;
    }
    Ok(g)
}

/// Cost of [`normalize`] on `n` elements with `copies` scaled outputs.
pub fn cost_normalize(n: usize, spec: &Spec, copies: usize) -> super::Cost {
    cost_normalize_raw(n, spec) + trunc::cost(copies * n)
}

/// Cost of [`normalize_raw`] on `n` elements.
pub fn cost_normalize_raw(n: usize, spec: &Spec) -> super::Cost {
    let dead: heapless::Vec<u32, MAX_BUCKETS> = (0..spec.buckets())
        .map(|c| spec.dropped(spec.compared(c)))
        .collect();
    compare::fanout_coarse_cost(n, spec.buckets(), spec.k, &dead) + bitmul::cost(n, spec.buckets())
}

/// Cost of [`rescale`] on `n` elements.
pub fn cost_rescale(n: usize) -> super::Cost {
    cost_rescale_raw(n) + trunc::cost(n)
}

/// Cost of [`rescale_raw`] on `n` elements.
pub fn cost_rescale_raw(n: usize) -> super::Cost {
    bitmul::cost_again(n)
}

/// Cost of [`rescale_pending`] on `n` elements.
pub fn cost_rescale_pending(n: usize) -> super::Cost {
    bitmul::cost_again_pending(n)
}

/// A first guess `d0 + d1 u + d2 u^2` in `u = Y - 1` for a normalized value `Y` near 1
/// (at `w` fractional bits), evaluated in one round: the square `u^2` (at `2w` bits, in
/// the round of the normalization's truncation, [`trunc_square`]) times `D2 = round(d2 2^g)`
/// and the addend `d0 2^S + D1 u` (`D1 = round(d1 2^(w+g))`) are both at `S = 2w + g`
/// bits; the rescale truncates their sum in its own opening ([`rescale_pending`]). With `|u|` small the
/// coefficients keep `g` bits where `u^2` multiplies them; `S` must leave the value at
/// `u = -1` (the saturation bucket, `Y = 0`) below the truncation's `2^62`. Used by
/// [`super::rsqrt`] and [`super::reciprocal::fine`].
#[derive(Debug, Clone, Copy)]
pub struct Quadratic {
    /// `d0, d1, d2`.
    pub d: [f64; 3],
    /// Fractional bits of `Y` and `u`.
    pub w: u32,
    /// Fractional bits of `d2` in the product.
    pub g: u32,
}

impl Quadratic {
    fn scale(&self) -> u32 {
        2 * self.w + self.g
    }

    /// `[round(d0 2^S), round(d1 2^(w+g)), round(d2 2^g)]`.
    fn coefficients(&self) -> [i64; 3] {
        let r = |c: f64, bits: u32| crate::fxp::round_i64(c * libm::exp2(bits as f64));
        [
            r(self.d[0], self.scale()),
            r(self.d[1], self.w + self.g),
            r(self.d[2], self.g),
        ]
    }

    /// The value at `u = -1` (`Y = 0`), with the coefficients as rounded.
    pub fn at_minus_one(&self) -> f64 {
        let [c0, c1, c2] = self.coefficients();
        c0 as f64 / libm::exp2(self.scale() as f64)
            - c1 as f64 / libm::exp2((self.w + self.g) as f64)
            + c2 as f64 / libm::exp2(self.g as f64)
    }

    /// `out` = the quadratic at `Y` at `S = 2 w + g` bits (not truncated: [`Quadratic::shift`]
    /// bits above `out_frac`, for [`rescale_pending`]), from [`normalize_raw`]'s products
    /// `y` (`Y` at `w + guard` bits; overwritten). The normalization's truncation and the
    /// square of `u = Y - 1` share one round ([`trunc_square`]: `u` at `w` bits and `u^2`
    /// at `2 w`); `d0 2^S + D1 u + D2 u^2` is then local.
    /// Scratch: [`Quadratic::scratch_words`]. Cost: [`Quadratic::cost`].
    pub fn eval<T: Transport, D: Dealer, K: MatMul>(
        &self,
        s: &mut Session<T, D, K>,
        y: &mut [u64],
        guard: u32,
        out: &mut [AShare],
        scratch: &mut [u64],
    ) -> Result<()> {
        let n = y.len();
        check_len("quadratic output", n, out.len())?;
        let [c0, c1, c2] = self.coefficients();
        // To square `Y - 1`, subtract 1 before the truncation: it carries it exactly.
        let one = s.party.share_of_public(1u64 << (self.w + guard));
        let c0 = s.party.share_of_public(c0 as u64);
        for v in y.iter_mut() {
            *v = v.wrapping_sub(one);
        }
        let mut ar = Arena::new(scratch);
        let sq = ar.take(n)?;
        trunc_square::trunc_square(
            s,
            AShare::from_raw_slice_mut(y),
            guard,
            AShare::from_raw_slice_mut(sq),
            ar.rest(),
        )?;
        let o = AShare::raw_slice_mut(out);
        for i in 0..n {
            o[i] = c0
                .wrapping_add(y[i].wrapping_mul(c1 as u64))
                .wrapping_add(sq[i].wrapping_mul(c2 as u64));
        }
        Ok(())
    }

    /// The bits by which [`Quadratic::eval`]'s output exceeds `out_frac`.
    pub fn shift(&self, out_frac: u32) -> u32 {
        self.scale() - out_frac
    }

    /// Cost of [`Quadratic::eval`] on `n` values.
    pub fn cost(n: usize) -> super::Cost {
        trunc_square::cost(n)
    }

    /// Scratch words of [`Quadratic::eval`] on `n` values.
    pub fn scratch_words(n: usize) -> usize {
        n + trunc_square::scratch_words(n)
    }
}
