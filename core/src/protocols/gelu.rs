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
//! [`GELU_COS`]. Fit error: max 1.9e-4 on `[-T, T]` (at the segment ends, where
//! `|GeLU(+-4) - {0, 4}| = 1.3e-4`), mean 1.3e-4 on [-1, 1]; fixed-point rounding adds a
//! few 1e-5.
//!
//! One opening serves the series, both comparisons and both products. D gives a uniform
//! `B` per element, the series' sine material at `t = -B mod 2^p`, random bits `r_0`,
//! `r_1` with `[r_j]`, `[r_j B]`, the sine material times `r_1`, and the bits of
//! `B >> 12` as a public `d` plus XOR shares of `m = bits ^ d` with the products of `m`'s
//! bits that the comparisons' first tree level needs ([`Item::SegmentSeries`],
//! [`compare::PublicBits`]). The parties open `E = x - B` (64 bits
//! each, uniformly masked), whose low `p` bits are the series' opening `x + t mod 2^p`
//! ([`fourier::combine`]). The segment bits compare `x -+ T = (E -+ T) + B`: coarsely,
//! `floor((x -+ T) / 2^12) = ((E -+ T) >> 12) + (B >> 12) + carry`, a public number plus
//! one whose bits are shared, so the carry tree's leaves and, with D's products of the
//! mask bits, its first level are local ([`compare::msb_public_run`]): only the levels
//! above it cost rounds. After the comparisons
//! the parties open only `delta_j = b_j ^ r_j` for `b_0 = 1 - c1`, `b_1 = e` (one bit
//! each). Since `b v = delta v + (1 - 2 delta) r v`, the products need
//! `[r_0 x] = [r_0] E + [r_0 B]` and `[r_1 (M - x)] = [r_1 S] - [r_1 x] / 2`, where
//! `[r_1 S]` is the series evaluated on the `r_1`-scaled sine shares with the same public
//! coefficients: no value is opened a second time. The sum is at `2f` fractional bits and
//! is truncated once.
//!
//! An input at `2f` fractional bits (an untruncated product, [`gelu_wide`]) carries `f`
//! bits below the output's precision, so `E` is opened rounded to `2^-f`
//! ([`super::open_rounded`]: each party rounds its share and sends the bits above):
//! everything above reads `x' = E' + B`, within `2^-f` of `x`, while the products' local
//! terms keep `x` itself, so the output moves by at most about `3 x 2^-f` (4.6e-5 at
//! `f = 16`, below the fit's error).
//!
//! The segment comparisons are coarse ([`SHIFT`] = 12 bits, the carry of the low bits
//! dropped): the thresholds are exact to `2^(12-f)` = 1/16 (within `[-T, -T + 1/16)` and
//! `[T, T + 1/16)` either piece is used: 0 or `x` is within 1.6e-4 of GeLU there, the
//! series within 7.8e-4), and they cover `|x| + T < 2^(k-1+12-f)`.
//!
//! Valid input range (the error bounds above hold): `|x| < 2^(k-1+12-f) - T - 1/16`,
//! i.e. `|x| < 131067` at the default [`DEFAULT_BITS`] = 22 and f = 16. Beyond it the
//! segment bits see `x` modulo `2^(k+12-f)` (unspecified output): callers keep
//! activations far inside (BERT's are below 100).
//!
//! Cost per element, `k`-bit comparisons: rounds `1 (E) + (rounds(k) - 1) (the carry
//! trees above their first level) + 1 (bits) + 1 (truncation)` = 5 at k = 22; bits sent
//! by each party `64 + 2 upper(k) + 2 + 1` = 89 at k = 22 (51 for an input at `2f` bits
//! in the 6-byte ring of a BERT layer: `E` rounded to 4 bytes and `k = 20`,
//! [`gelu_wide_in`]; 157 with the first tree level opened online, 199 and 178 with
//! comparisons on the additive shares, whose leaves cost a round and `k - 1` bits per
//! threshold; 355 with 28-bit comparisons on a binary carry tree, a separate sine opening
//! and two bit products that open their values; SecFormer: 7210 bits, 2 log L + 4
//! rounds). D sends P1 `8 (4 + 4K)` bytes per element for the shared mask (K = 6
//! harmonics), `2 k / 8` for the bits of `B` and 55 / 8 for their first-level products
//! (k = 22), plus the upper carry levels' and the truncation's material.

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::prg::words_for_bits;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::fourier::{self, Series};
use super::{compare, trunc, Width};

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
/// `|x| + T < 2^(21 + 12 - f)` = 131072 at f = 16.
pub const DEFAULT_BITS: u32 = 22;
/// Low bits each share drops before the segment comparisons (at most `64 - k` are used).
pub const SHIFT: u32 = 12;

/// The coarsening used with `k`-bit comparisons.
pub fn shift(k: u32) -> u32 {
    shift_at(k, 0)
}

/// The coarsening for an input with `extra` fractional bits beyond `f` (the thresholds
/// stay exact to `2^(SHIFT - f)`).
fn shift_at(k: u32, extra: u32) -> u32 {
    (SHIFT + extra).min(64u32.saturating_sub(k))
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

/// The dealer item of the shared mask, series and bit material for `n` elements with
/// `k`-bit comparisons, inputs at `xf` fractional bits (`f` or `2f`).
pub fn item(n: usize, k: u32, f: u32, xf: u32) -> Item {
    Item::SegmentSeries {
        n: n as u32,
        p: (PERIOD_LOG2 + xf) as u8,
        k: (GELU_COS.len() - 1) as u8,
        f: f as u8,
        bits: k as u8,
        shift: shift_at(k, xf - f) as u8,
    }
}

/// Dealer items of GeLU on `n` elements with `k`-bit comparisons, inputs at `xf`
/// fractional bits (`f` or `2f`).
pub fn items(n: usize, k: u32, f: u32, xf: u32) -> heapless::Vec<Item, 20> {
    items_in(n, k, f, xf, Width::FULL)
}

/// [`items`] for an input read modulo `2^m` (`m` = `ring`'s bits).
pub fn items_in(n: usize, k: u32, f: u32, xf: u32, ring: Width) -> heapless::Vec<Item, 20> {
    let mut v = heapless::Vec::new();
    let _ = v.push(item(n, k, f, xf));
    for it in compare::public_items(n, 2, k) {
        let _ = v.push(it);
    }
    let _ = v.push(trunc::item_in(n, f + 1, ring));
    v
}

/// Words of this party's [`Item::SegmentSeries`] material for `n` elements.
fn material_words(n: usize, k: u32) -> usize {
    n + words_for_bits(2 * n)
        + 4 * n
        + 4 * (GELU_COS.len() - 1) * n
        + (2 * k as usize + compare::first_monomials(k)) * words_for_bits(n)
}

/// Scratch words for `n` elements on `k` bits.
pub fn scratch_words(n: usize, k: u32) -> usize {
    let w2 = words_for_bits(2 * n);
    let persistent = material_words(n, k) + 5 * n + 3 * w2;
    persistent
        + (2 * n + compare::public_scratch_words(n, 2, k))
            .max(2 * w2)
            .max(trunc::scratch_words(n))
}

/// This party's material of one [`Item::SegmentSeries`].
struct Material<'a> {
    /// The value mask `B`.
    b: &'a [u64],
    /// XOR shares of the bits' masks `r` (bit `j` of element `i` at `j n + i`).
    r: &'a [u64],
    /// `[r]`.
    ra: &'a [u64],
    /// `[r B]`.
    rb: &'a [u64],
    /// `[cos(h w t)]`, `[sin(h w t)]`, `t = -B mod 2^p`.
    trig: &'a [u64],
    /// `[r_1 cos(h w t)]`, `[r_1 sin(h w t)]`.
    rtrig: &'a [u64],
    /// The low `k` bits of `B >> shift(k)`, as bit planes, in the form the comparisons
    /// take them.
    bits: compare::PublicBits<'a>,
}

fn take_material<'a, D: Dealer>(
    dealer: &mut D,
    item: Item,
    n: usize,
    k: u32,
    ar: &mut Arena<'a>,
) -> Result<Material<'a>> {
    let kt = 2 * (GELU_COS.len() - 1) * n;
    let b = ar.take(n)?;
    let r = ar.take(words_for_bits(2 * n))?;
    let ra = ar.take(2 * n)?;
    let rb = ar.take(2 * n)?;
    let trig = ar.take(kt)?;
    let rtrig = ar.take(kt)?;
    let nwc = words_for_bits(n);
    let d = ar.take(k as usize * nwc)?;
    let m = ar.take(k as usize * nwc)?;
    let monos = ar.take(compare::first_monomials(k) * nwc)?;
    dealer.take(
        item,
        &mut [
            &mut *b,
            &mut *r,
            &mut *ra,
            &mut *rb,
            &mut *trig,
            &mut *rtrig,
            &mut *d,
            &mut *m,
            &mut *monos,
        ],
    )?;
    Ok(Material {
        b,
        r,
        ra,
        rb,
        trig,
        rtrig,
        bits: compare::PublicBits { d, m, monos },
    })
}

/// `out = GeLU(x)` with `k`-bit comparisons (`x` and `out` at the session's `f` bits).
pub fn gelu<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    k: u32,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let f = s.enc.frac_bits();
    gelu_at(s, x, f, k, Width::FULL, out, scratch)
}

/// `out = GeLU(x)` for `x` at `2f` fractional bits (an untruncated product, which saves
/// the product's truncation round: the series, the comparisons and the products read the
/// extra bits exactly), `out` at `f` bits.
pub fn gelu_wide<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    k: u32,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    gelu_wide_in(s, x, k, Width::FULL, out, scratch)
}

/// [`gelu_wide`] for an input known modulo `2^m` (`m` = `ring`'s bits, an untruncated
/// product computed in that ring): `E` is opened rounded to `2^-f` in `(m - f) / 8` bytes
/// per element (4 at 48 bits and `f = 16`) and the output is truncated from that ring.
/// The ring must hold the comparisons' `SHIFT + f + k` bits ([`bits_in`]). Valid for
/// `|x| < 2^(m - 3 - 2f)` (and the comparisons' range): `2^13` at 48 bits and `f = 16`
/// (comparisons on 20 bits cover `2^15`), `2^21` at 56.
pub fn gelu_wide_in<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    k: u32,
    ring: Width,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let f = s.enc.frac_bits();
    gelu_at(s, x, 2 * f, k, ring, out, scratch)
}

fn gelu_at<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    xf: u32,
    k: u32,
    ring: Width,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    check_len("gelu output", n, out.len())?;
    let f = s.enc.frac_bits();
    if !(f..=2 * f).contains(&xf) || 2 * f + 1 > 62 {
        return Err(crate::Error::Param(
            "gelu: inputs at f to 2f fractional bits, 2f < 62",
        ));
    }
    // The opening's low bits feed the series (`4 + xf`) and the comparisons (up to
    // `shift + k`); the ring must hold them.
    if ring.bits() < (PERIOD_LOG2 + xf).max(shift_at(k, xf - f) + k) {
        return Err(crate::Error::Param(
            "gelu: the ring is narrower than the series' and comparisons' bits",
        ));
    }
    s.dealer.request(&items_in(n, k, f, xf, ring))?;
    let mut ar = Arena::new(scratch);
    let xs = AShare::raw_slice(x);
    let mat = take_material(&mut s.dealer, item(n, k, f, xf), n, k, &mut ar)?;

    // 1. E = x - B, opened once (to the output's precision 2^-f: an input at 2f bits
    //    drops its low f bits): its low p bits are the series' opening.
    let e = ar.take(n)?;
    {
        let theirs = ar.take(n)?;
        crate::ring::sub_into(e, xs, mat.b);
        super::open_rounded(&mut s.peer, e, theirs, ring, xf - f)?;
    }

    // 2. The series S (the even part of M) and r_1 S, at 2f bits.
    let series = Series {
        p: PERIOD_LOG2 + xf,
        c0: GELU_COS[0],
        alpha: &[],
        beta: &GELU_COS[1..],
    };
    let sv = ar.take(n)?;
    let rs = ar.take(n)?;
    {
        let d = ar.take(n)?;
        let mask = crate::ring::low_mask(series.p);
        for i in 0..n {
            d[i] = e[i] & mask;
        }
        let c0 = crate::fxp::round_i64(GELU_COS[0] * libm::exp2(2.0 * f as f64)) as u64;
        sv.fill(s.party.share_of_public(c0));
        for i in 0..n {
            rs[i] = c0.wrapping_mul(mat.ra[n + i]);
        }
        fourier::combine(
            &series,
            f,
            d,
            &mut [(mat.trig, &mut *sv), (mat.rtrig, &mut *rs)],
        );
    }

    // 3. c1 = [x + T < 0], c2 = [x - T < 0] in one batch, on the opened E: coarsely,
    //    x + T = ((E + T) >> shift) + (B >> shift) (less a carry of the low bits), whose
    //    second term D shares as bits, so the carry tree starts from local leaves.
    let w2 = words_for_bits(2 * n);
    let c = ar.take(w2)?;
    {
        let sh = shift_at(k, xf - f);
        let t = s.enc.encode(THRESHOLD)? << (xf - f);
        let mut sub = ar.sub();
        let a = sub.take(2 * n)?;
        for i in 0..n {
            a[i] = e[i].wrapping_add(t) >> sh;
            a[n + i] = e[i].wrapping_sub(t) >> sh;
        }
        compare::msb_public_run(s, a, &mat.bits, 2, k, c, sub.rest())?;
    }

    // 4. Open delta = b ^ r for b = [1 - c1 (n), c1 ^ c2 (n)].
    let delta = ar.take_zeroed(w2)?;
    {
        for i in 0..n {
            let c1 = crate::bits::get(c, i);
            let c2 = crate::bits::get(c, n + i);
            crate::bits::set(delta, i, c1 ^ s.party.xor_share_of_public(1));
            crate::bits::set(delta, n + i, c1 ^ c2);
        }
        for w in 0..w2 {
            delta[w] ^= mat.r[w];
        }
        crate::prg::clear_tail(delta, 2 * n);
        let theirs = ar.take(w2)?;
        s.peer.exchange_u64(delta, theirs)?;
        for w in 0..w2 {
            delta[w] ^= theirs[w];
        }
    }

    // 5. b v = delta v + (1 - 2 delta) [r v] for v_0 = x, v_1 = M - x = S - x / 2, at
    //    2f + 1 bits (so x / 2 is exact from x at f or 2f bits); [r x] = [r] E + [r B]
    //    needs no opening beyond E.
    let (up, half) = (2 * f + 1 - xf, 2 * f - xf);
    let o = AShare::raw_slice_mut(out);
    for i in 0..n {
        let rx = |j: usize| {
            mat.ra[j * n + i]
                .wrapping_mul(e[i])
                .wrapping_add(mat.rb[j * n + i])
        };
        let v = [xs[i] << up, (sv[i] << 1).wrapping_sub(xs[i] << half)];
        let rv = [rx(0) << up, (rs[i] << 1).wrapping_sub(rx(1) << half)];
        let mut acc = 0u64;
        for j in 0..2 {
            let dbit = crate::bits::get(delta, j * n + i);
            acc = acc
                .wrapping_add(dbit.wrapping_neg() & v[j])
                .wrapping_add(rv[j].wrapping_mul(1u64.wrapping_sub(dbit << 1)));
        }
        o[i] = acc;
    }
    trunc::run_segments_in(s, out, &[(n, f + 1)], ring, ar.rest())
}

/// Cost of GeLU on `n` elements with `k`-bit comparisons (at `f` fractional bits).
pub fn cost(n: usize, k: u32, f: u32) -> super::Cost {
    let _ = f;
    cost_opening(n, k, 8)
}

/// Cost of [`gelu_wide_in`]: `E` rounded to `2^-f` in `(m - f) / 8` bytes per element.
pub fn cost_in(n: usize, k: u32, f: u32, ring: Width) -> super::Cost {
    cost_opening(n, k, super::rounded_entry_bytes(ring, f))
}

/// Cost with `E` opened in `bytes` bytes per element.
fn cost_opening(n: usize, k: u32, bytes: u8) -> super::Cost {
    super::Cost::new(1, bytes as u64 * n as u64)
        + compare::public_cost(n, 2, k)
        + super::Cost::new(1, 8 * words_for_bits(2 * n) as u64)
        + trunc::cost(n)
}

/// The comparison bits GeLU uses on an input at `2f` bits read modulo `2^m` (`m` =
/// `ring`'s bits): [`DEFAULT_BITS`], or fewer where the ring does not hold the
/// comparisons' `shift + k` bits (20 at 48 bits and `f = 16`).
pub fn bits_in(ring: Width, f: u32) -> u32 {
    DEFAULT_BITS.min(ring.bits().saturating_sub(SHIFT + f))
}
