//! Fourier series of a shared value with an exactly uniform mask (SecFormer's sine
//! protocol, corrected).
//!
//! The period is a power of two in ring units, `P = 2^p` (a real period of `2^(p-f)`), so
//! each party reduces its share mod 2^p and the sum is `x mod 2^p`. D provides `t`
//! uniform in Z_{2^p} (additively shared mod 2^p) and additive shares of
//! `cos(h w t)`, `sin(h w t)` for `h = 1..K`, `w = 2 pi / 2^p`. The parties open
//! `d = x + t mod 2^p` (`p` bits each: perfectly hiding), and with
//! `sin(h w x) = sin(h w d) cos(h w t) - cos(h w d) sin(h w t)` and
//! `cos(h w x) = cos(h w d) cos(h w t) + sin(h w d) sin(h w t)` any series
//! `c_0 + sum_h (alpha_h sin(h w x) + beta_h cos(h w x))` is a local, public-coefficient
//! combination of the shares. (The paper's code masks with a bounded real `t` and reduces
//! mod 2 pi instead of mod the period: neither hides `x` nor computes the right value.)
//!
//! The result is left at `2f` fractional bits (public coefficients times fixed-point
//! shares) so callers fuse its truncation with their own.
//!
//! Cost: 1 round, `ceil(p/8)` payload bytes per element per party; D sends P1 `16 K`
//! bytes per element.
//!
//! Valid input range: any ring value (`x` is used modulo the period exactly); the result
//! carries the fixed-point rounding of the public coefficients (about `2^-f` per term).

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Error, Result};
use crate::kernel::MatMul;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::{FrameKind, Transport};

/// Most harmonics.
pub const MAX_HARMONICS: usize = 32;

/// The dealer item for `n` elements, period `2^p` ring units and `k` harmonics.
pub fn item(n: usize, p: u32, k: usize, f: u32) -> Item {
    Item::Sine {
        n: n as u32,
        p: p as u8,
        k: k as u8,
        f: f as u8,
    }
}

/// Payload bytes each party sends for `n` elements with period `2^p`.
pub fn bytes(n: usize, p: u32) -> u64 {
    (n * (p as usize).div_ceil(8)) as u64
}

/// Scratch words for `n` elements and `k` harmonics.
pub fn scratch_words(n: usize, k: usize) -> usize {
    n + 2 * k * n + 2 * (n * 8).div_ceil(8) + n
}

/// A series: `c0 + sum_h alpha[h-1] sin(2 pi h x / P) + beta[h-1] cos(2 pi h x / P)`.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// Period bits in ring units (`P = 2^p`; real period `2^(p - f)`).
    pub p: u32,
    /// Constant term.
    pub c0: f64,
    /// Sine coefficients of harmonics 1..=K (may be empty).
    pub alpha: &'a [f64],
    /// Cosine coefficients of harmonics 1..=K (may be empty).
    pub beta: &'a [f64],
}

impl Series<'_> {
    /// Harmonics used.
    pub fn harmonics(&self) -> usize {
        self.alpha.len().max(self.beta.len())
    }
}

/// Evaluates the series on already-requested material; `out` at `2f` fractional bits.
pub fn run<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    series: &Series<'_>,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    let k = series.harmonics();
    let p = series.p;
    if k == 0 || k > MAX_HARMONICS || !(1..=63).contains(&p) {
        return Err(Error::Param(
            "Fourier series: 1..=32 harmonics and period bits 1..=63",
        ));
    }
    check_len("Fourier output", n, out.len())?;
    let f = s.enc.frac_bits();
    let mut ar = Arena::new(scratch);
    let t = ar.take(n)?;
    let trig = ar.take(2 * k * n)?;
    s.dealer
        .take(item(n, p, k, f), &mut [&mut *t, &mut *trig])?;
    let w = (p as usize).div_ceil(8);
    let nb = (n * w).div_ceil(8);
    let mine = ar.take(nb)?;
    let theirs = ar.take(nb)?;
    let d = ar.take(n)?;
    let mask = crate::ring::low_mask(p);
    {
        let mb: &mut [u8] = bytemuck::cast_slice_mut(&mut mine[..]);
        for (i, v) in AShare::raw_slice(x).iter().enumerate() {
            let di = v.wrapping_add(t[i]) & mask;
            mb[i * w..i * w + w].copy_from_slice(&di.to_le_bytes()[..w]);
        }
        let tb: &mut [u8] = bytemuck::cast_slice_mut(&mut theirs[..]);
        s.peer
            .exchange_frame(FrameKind::Ring, &mb[..n * w], &mut tb[..n * w])?;
        s.peer.stats_mut().rounds += 1;
    }
    {
        let mb: &[u8] = bytemuck::cast_slice(&mine[..]);
        let tb: &[u8] = bytemuck::cast_slice(&theirs[..]);
        for i in 0..n {
            let mut a = [0u8; 8];
            let mut b = [0u8; 8];
            a[..w].copy_from_slice(&mb[i * w..i * w + w]);
            b[..w].copy_from_slice(&tb[i * w..i * w + w]);
            d[i] = u64::from_le_bytes(a).wrapping_add(u64::from_le_bytes(b)) & mask;
        }
    }
    let scale = (1u64 << f) as f64;
    let c0 = s
        .party
        .share_of_public(libm::round(series.c0 * scale * scale) as i64 as u64);
    let o = AShare::raw_slice_mut(out);
    o.fill(c0);
    combine(series, f, d, &mut [(&*trig, o)]);
    Ok(())
}

/// Adds the harmonics of `series` at the public `d = x + t mod 2^p` to each `out` of
/// `sets`, from that set's shares of `cos(h w t)`, `sin(h w t)` (`trig`: for each `h`, a
/// block of `n` cosines then one of `n` sines, as [`Item::Sine`] lays them out), at `2f`
/// fractional bits. Since the coefficients are public and the same for every set, a set
/// may hold shares of `r cos(h w t)`, `r sin(h w t)` for a shared `r`: its `out` then gains
/// `r` times the harmonics.
pub fn combine(series: &Series<'_>, f: u32, d: &[u64], sets: &mut [(&[u64], &mut [u64])]) {
    let n = d.len();
    let scale = (1u64 << f) as f64;
    let k = series.harmonics();
    // Blocks of elements: each harmonic's coefficients for a block, then one pass per set
    // over contiguous rows (straight loops the compiler keeps in registers).
    let mut at = 0;
    while at < n {
        let m = BLOCK.min(n - at);
        let (mut sh, mut ch) = ([0.0f64; BLOCK], [0.0f64; BLOCK]);
        for j in 0..m {
            (sh[j], ch[j]) = sincos_turns(d[at + j], series.p);
        }
        let (s1, c1) = (sh, ch);
        let (mut ue, mut ve) = ([0u64; BLOCK], [0u64; BLOCK]);
        for h in 0..k {
            let a = series.alpha.get(h).copied().unwrap_or(0.0);
            let b = series.beta.get(h).copied().unwrap_or(0.0);
            for j in 0..m {
                // Coefficients of [cos(h w t)] and [sin(h w t)].
                ue[j] = round_small((a * sh[j] + b * ch[j]) * scale);
                ve[j] = round_small((b * sh[j] - a * ch[j]) * scale);
                let (nc, ns) = (ch[j] * c1[j] - sh[j] * s1[j], sh[j] * c1[j] + ch[j] * s1[j]);
                ch[j] = nc;
                sh[j] = ns;
            }
            for (trig, out) in sets.iter_mut() {
                let cos = &trig[2 * h * n + at..][..m];
                let sin = &trig[2 * h * n + n + at..][..m];
                let out = &mut out[at..at + m];
                for j in 0..m {
                    out[j] = out[j]
                        .wrapping_add(ue[j].wrapping_mul(cos[j]))
                        .wrapping_add(ve[j].wrapping_mul(sin[j]));
                }
            }
        }
        at += m;
    }
}

/// `x` rounded to the nearest integer (ties to even), as a ring element, for
/// `|x| < 2^51`: adding `1.5 2^52` leaves the integer in the low mantissa bits (a
/// branch-free form that vectorizes, unlike a saturating `as` cast).
#[inline(always)]
fn round_small(x: f64) -> u64 {
    const MAGIC: f64 = 6755399441055744.0; // 1.5 * 2^52
    (x + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits())
}

/// Elements per block of [`combine`].
const BLOCK: usize = 64;

/// `(sin, cos)` of `2 pi d / 2^p` for `d < 2^p`: the nearest quarter turn is taken off
/// exactly in the integers, which leaves `|x| <= pi / 4`, where the Taylor polynomials of
/// degree 13 and 14 are within 2e-14 (both parties evaluate the same expression, so
/// their coefficients agree bit for bit).
fn sincos_turns(d: u64, p: u32) -> (f64, f64) {
    if p < 3 {
        return libm::sincos(2.0 * core::f64::consts::PI * d as f64 / (1u64 << p) as f64);
    }
    let q = p - 2;
    let quarter = (d + (1u64 << (q - 1))) >> q; // 0..=4
    let rest = d.wrapping_sub(quarter << q) as i64; // in [-2^(q-1), 2^(q-1))
    let x = rest as f64 * (core::f64::consts::FRAC_PI_2 / (1u64 << q) as f64);
    let x2 = x * x;
    let sin = x
        * (1.0
            + x2 * (-1.0 / 6.0
                + x2 * (1.0 / 120.0
                    + x2 * (-1.0 / 5040.0
                        + x2 * (1.0 / 362880.0
                            + x2 * (-1.0 / 39916800.0 + x2 * (1.0 / 6227020800.0)))))));
    let cos = 1.0
        + x2 * (-0.5
            + x2 * (1.0 / 24.0
                + x2 * (-1.0 / 720.0
                    + x2 * (1.0 / 40320.0
                        + x2 * (-1.0 / 3628800.0
                            + x2 * (1.0 / 479001600.0 + x2 * (-1.0 / 87178291200.0)))))));
    match quarter & 3 {
        0 => (sin, cos),
        1 => (cos, -sin),
        2 => (-sin, -cos),
        _ => (-cos, sin),
    }
}

/// Evaluates the series (requests its material); `out` at `2f` fractional bits.
pub fn fourier<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    series: &Series<'_>,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    s.dealer.request(&[item(
        x.len(),
        series.p,
        series.harmonics(),
        s.enc.frac_bits(),
    )])?;
    run(s, x, series, out, scratch)
}

/// Cost of a series on `n` elements with period `2^p`.
pub fn cost(n: usize, p: u32) -> super::Cost {
    super::Cost::new(1, bytes(n, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sincos_of_turns_matches_libm() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for p in [1u32, 2, 3, 4, 12, 27, 40, 63] {
            let top = if p == 64 { u64::MAX } else { (1u64 << p) - 1 };
            let check = |d: u64| {
                let (s, c) = sincos_turns(d, p);
                let a = 2.0 * core::f64::consts::PI * (d as f64 / (1u64 << p) as f64);
                let (rs, rc) = libm::sincos(a);
                assert!(
                    (s - rs).abs() < 1e-13 && (c - rc).abs() < 1e-13,
                    "p {p} d {d}"
                );
            };
            for d in [0, 1, top / 8, top / 4, top / 2, top / 4 * 3, top - 1, top] {
                check(d & top);
            }
            for _ in 0..2000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                check(x & top);
            }
        }
    }

    #[test]
    fn small_rounding_is_to_nearest() {
        for (x, r) in [
            (0.0, 0i64),
            (0.4, 0),
            (0.6, 1),
            (-0.6, -1),
            (-2.4, -2),
            (1e12 + 0.7, 1_000_000_000_001),
        ] {
            assert_eq!(round_small(x) as i64, r, "{x}");
        }
    }
}
