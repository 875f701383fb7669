//! Power-of-two normalization for the Goldschmidt protocols (reciprocal, inverse square
//! root) and the matching rescaling of their results.
//!
//! For positive `y` the parties compute, in one batch, the comparisons
//! `c_j = [y >= 2^(j/2)]` for half-octave thresholds `j = lo..=hi`. The bucket of `y` is
//! the one-hot `o_j = c_j - c_(j+1)`, so `y 2^(-(j+1)/2)` lies in `[2^-1/2, 1)`, a range
//! on which a constant first guess and two or three Goldschmidt steps reach the target
//! precision. Both the normalized value and the final power-of-two factor are linear in
//! the products `c_j v` of the bits with one value `v`, which the bit-product protocol
//! ([`super::bitmul`]) delivers in one round per value while opening the bits only once;
//! the coefficients are telescoped (`sum_j o_j K_j = sum_j c_j (K_j - K_(j-1))`), computed
//! exactly in the ring, and one truncation brings the sum to the wanted precision.
//!
//! Inputs below `2^(lo/2)` fall in no bucket: the normalized value and the rescaled result
//! are 0. Inputs at or above `2^((hi+1)/2)` land in the top bucket with a normalized value
//! of 1 or more, where the Goldschmidt steps are not accurate (results are unspecified
//! there, though always some ring value).

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Error, Result};
use crate::kernel::MatMul;
use crate::prg::words_for_bits;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::{bitmul, compare, trunc};

/// The thresholds and comparison width of a normalization.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    /// Fractional bits of the input.
    pub in_frac: u32,
    /// Lowest threshold exponent in half octaves (threshold `2^(lo/2)`).
    pub lo: i32,
    /// Highest threshold exponent in half octaves.
    pub hi: i32,
    /// Comparison bits: inputs must be below `2^(k - 1)` ring units.
    pub k: u32,
}

impl Spec {
    /// Number of thresholds per element.
    pub fn buckets(&self) -> usize {
        (self.hi - self.lo + 1) as usize
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

/// Dealer items of [`normalize`] (the rescale requests its own truncation later).
pub fn items(n: usize, spec: &Spec, out_frac: u32, a: f64) -> Result<heapless::Vec<Item, 20>> {
    let j = spec.buckets();
    let mut v = heapless::Vec::new();
    for it in compare::items(n * j, spec.k) {
        let _ = v.push(it);
    }
    let _ = v.push(bitmul::item(n, j, 2));
    let _ = v.push(trunc::item(n, guard_bits(out_frac, a)?));
    Ok(v)
}

/// Storage words the [`Normalized`] state borrows.
pub fn storage_words(n: usize, spec: &Spec) -> usize {
    let j = spec.buckets();
    bitmul::material_words(n, j, 2) + words_for_bits(n * j)
}

/// Scratch words for [`normalize`] and [`rescale`].
pub fn scratch_words(n: usize, spec: &Spec) -> usize {
    let j = spec.buckets();
    let w = words_for_bits(n * j);
    2 * n * j
        + w
        + compare::scratch_words(n * j, spec.k)
            .max(bitmul::scratch_words(n, j))
            .max(trunc::scratch_words(n))
}

/// The opened bucket bits and the bit-product material kept for [`rescale`].
pub struct Normalized<'a> {
    n: usize,
    spec: Spec,
    d: &'a [u64],
    mat: bitmul::Material<'a>,
}

fn telescoped(spec: &Spec, coef: impl Fn(i32) -> f64, scale_log2: i32, out: &mut [u64]) {
    let mut prev = 0i64;
    for (jj, o) in out.iter_mut().enumerate() {
        let j = spec.lo + jj as i32;
        let k = libm::round(coef(j) * libm::exp2(scale_log2 as f64)) as i64;
        *o = k.wrapping_sub(prev) as u64;
        prev = k;
    }
}

/// Normalizes positive `y` (at `spec.in_frac` bits): `out = a y 2^(-(j+1)/2)` for the
/// bucket `j` of `y`, at `out_frac` bits (so `out` is in `[a / sqrt 2, a)` in range).
/// Rounds: `compare::rounds(k) + 2`.
pub fn normalize<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    y: &[AShare],
    spec: &Spec,
    a: f64,
    out_frac: u32,
    out: &mut [AShare],
    storage: &'a mut [u64],
    scratch: &mut [u64],
) -> Result<Normalized<'a>> {
    let n = y.len();
    let j = spec.buckets();
    check_len("normalize output", n, out.len())?;
    s.dealer.request(&items(n, spec, out_frac, a)?)?;
    let g = guard_bits(out_frac, a)?;
    let mut st = Arena::new(storage);
    let mut ar = Arena::new(scratch);
    let ys = AShare::raw_slice(y);

    // c_j = [y >= t_j] = NOT msb(y - t_j), element-major.
    let vals = ar.take(n * j)?;
    for jj in 0..j {
        let t = libm::round(libm::exp2(
            (spec.lo + jj as i32) as f64 / 2.0 + spec.in_frac as f64,
        )) as u64;
        let off = s.party.share_of_public(t);
        for i in 0..n {
            vals[i * j + jj] = ys[i].wrapping_sub(off);
        }
    }
    let bw = words_for_bits(n * j);
    let c = ar.take(bw)?;
    compare::msb_run(s, AShare::from_raw_slice(vals), spec.k, c, ar.sub().rest())?;
    let ones = s.party.xor_share_of_public(u64::MAX);
    for w in c.iter_mut() {
        *w ^= ones;
    }
    crate::prg::clear_tail(c, n * j);

    let mstore = st.take(bitmul::material_words(n, j, 2))?;
    let mat = bitmul::take(&mut s.dealer, n, j, 2, mstore)?;
    let d = st.take(bw)?;
    let z = vals; // reuse: c_j y
    bitmul::first(
        s,
        &mat,
        c,
        y,
        d,
        AShare::from_raw_slice_mut(z),
        ar.sub().rest(),
    )?;

    let coef = ar.take(j)?;
    let scale = out_frac as i32 - spec.in_frac as i32 + g as i32;
    telescoped(
        spec,
        |jb| a * libm::exp2(-((jb + 1) as f64) / 2.0),
        scale,
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
    trunc::run_by(s, out, g, ar.rest())?;
    Ok(Normalized {
        n,
        spec: *spec,
        d,
        mat,
    })
}

/// Rescales `x` (at `x_frac` bits, at most `x_max`) by the bucket's factor:
/// `out = x kappa(j)` at `out_frac` bits, with `kappa` given per threshold exponent.
/// Rounds: 2 (the bits are already open: only `x`'s mask is opened, then a truncation).
pub fn rescale<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    norm: &Normalized<'_>,
    x: &[AShare],
    x_frac: u32,
    x_max: f64,
    kappa: impl Fn(i32) -> f64,
    out_frac: u32,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let (n, spec) = (norm.n, norm.spec);
    let j = spec.buckets();
    check_len("rescale input", n, x.len())?;
    check_len("rescale output", n, out.len())?;
    let kmax = (spec.lo..=spec.hi)
        .map(&kappa)
        .fold(0.0f64, |m, v| m.max(libm::fabs(v)));
    let g = guard_bits(out_frac, x_max * kmax)?;
    s.dealer.request(&[trunc::item(n, g)])?;
    let mut ar = Arena::new(scratch);
    let z = ar.take(n * j)?;
    bitmul::again(
        s,
        &norm.mat,
        1,
        norm.d,
        x,
        AShare::from_raw_slice_mut(z),
        ar.sub().rest(),
    )?;
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
    trunc::run_by(s, out, g, ar.rest())
}

/// Cost of [`normalize`] on `n` elements.
pub fn cost_normalize(n: usize, spec: &Spec) -> super::Cost {
    compare::cost(n * spec.buckets(), spec.k) + bitmul::cost(n, spec.buckets()) + trunc::cost(n)
}

/// Cost of [`rescale`] on `n` elements.
pub fn cost_rescale(n: usize) -> super::Cost {
    bitmul::cost_again(n) + trunc::cost(n)
}
