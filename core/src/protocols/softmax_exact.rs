//! Softmax as trained, for unmodified checkpoints: `p_j = exp(x_j - max) / sum_k exp(x_k - max)`.
//!
//! 1. Row max by a tree of fours: each level coarsens every candidate once (each party
//!    drops the low [`SHIFT`] = 10 bits of its share: exact to 2^-6), compares the six
//!    pairs of each group of four on `k` bits and selects the group's first maximal
//!    candidate in one round ([`super::max4`]): two levels of a binary tree for the rounds
//!    of one. All rows in one batch per level. Masked entries are replaced by a valid
//!    entry of their row (local), so they never win. Comparing fixed coarsenings keeps the
//!    six bits of a group consistent (a total preorder), and makes `max` an entry of the
//!    row within `2^-6` per level of the true maximum (at most 0.11 below it for 2^14
//!    keys), which the softmax does not see (it is invariant to the shift) beyond a
//!    slightly larger row sum.
//! 2. `z = x - max <= 0.11`; `[z < -32]` (coarse too) is computed for clipping.
//! 3. `exp(z) ~ (1 + y + y^2 / 2)^(2^6)`, `y = z / 2^6`, at 22 fractional bits: `y` is
//!    exact (`z` itself, read at 22 bits), one square gives the quadratic base, then 6
//!    squarings (7 products instead of the 10 squarings of `(1 + z / 2^10)^(2^10)`, and a
//!    smaller error); each square's opening shares the round of the previous truncation
//!    ([`super::trunc_square`]), so the 7 products take 8 rounds, not 14. Every value of
//!    the chain is below `2^46` (the base's square at 45 bits), so the chain runs modulo
//!    `2^48` (openings of 6 bytes) and its last truncation lifts the result to the full
//!    ring ([`super::trunc::run_in`]). Relative error about `|z|^3 / (6 4^6)` (max
//!    absolute error 5.5e-5, at z = -3; 2.6e-4 for the linear base) plus the squares'
//!    rounding, at most `2^6 2^-22` relative; on the unclipped range `y >= -1/2`, where
//!    the base is increasing and at least 5/8. Sessions with more than 16 fractional bits
//!    are refused.
//! 4. Clipped and masked entries are zeroed (one bit-product round), the row sum `S` is in
//!    `[1, 1.25 cols]`, and [`super::reciprocal`] on a narrow range (eighth octaves from
//!    1/2 to `2^(bits(cols) + 1)`, coarse comparisons on few bits, then one product:
//!    [`super::reciprocal::fine`]) gives `1/S`; a row-broadcast product gives `p` at `f`
//!    bits.
//!
//! Valid input range: rows of up to 2^14 keys whose spread (max - min over the unmasked
//! entries) is below `2^(k-1+10-f)` (2^21 at the default k = 28 and f = 16, 2^16 at the
//! k = 23 of a BERT layer, whose scores are below 2^14 in magnitude; 2048 with exact
//! 28-bit comparisons, [`bits_for_spread`]): max |error| <= 2e-3. Entries more than 32 below the row's
//! maximum get probability 0 (their true value is below 1.3e-14, 2.1e-10 for 2^14 of
//! them, far below the output's last bit). All-masked rows give
//! zeros. Beyond the spread limit the comparisons see differences modulo `2^(k+10-f)`
//! (unspecified output).
//!
//! Rounds: `ceil(log4 cols) (rounds(k) + 1)` for the max tree (16 at 128 keys),
//! `+ rounds(k) + 8 + 1 + 7 + 2` (37 at 128 keys; the reciprocal's last truncation rides in the row product's round). Bits per element per party: about
//! `2 cmp(k) + 66` for the tree (six comparisons per group of four, a third of a group per
//! element over all levels), `cmp(k)` for
//! clipping, `7 x 49` for the exponential, 65 + 64 + 1 for the rest.

use crate::arena::Arena;
use crate::dealer::Dealer;
use crate::error::{check_len, Error, Result};
use crate::kernel::MatMul;
use crate::prg::words_for_bits;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::norm::Spec;
use super::{bitmul, compare, max4, reciprocal, rowmul, square, trunc, trunc_square, Mask, Width};

/// Default comparison bits for scores.
pub const DEFAULT_BITS: u32 = 28;
/// Low bits each share drops before the max-tree and clipping comparisons (at most
/// `64 - k` are used).
pub const SHIFT: u32 = 10;
const EXP_FRAC: u32 = 22;
/// The ring of the exponential's squares: the base's square at `2 EXP_FRAC + 1` bits stays
/// below `2^(m-2)` for `m = 2 EXP_FRAC + 4`, rounded up to bytes (48 bits).
const EXP_RING: Width = Width::holding(2 * EXP_FRAC + 4);
const SQUARINGS: u32 = 6;
const CLIP: f64 = 32.0;
const RECIP_FRAC: u32 = 32;
/// Coarsening of the reciprocal's comparisons: 2^-7 relative to its lowest threshold.
const RECIP_SHIFT: u32 = EXP_FRAC - 1 - 7;

/// The coarsening used with `k`-bit comparisons.
pub fn shift(k: u32) -> u32 {
    SHIFT.min(64u32.saturating_sub(k))
}

/// The ring the row maxima are computed in: the comparisons read `x - max` in their
/// `shift + k` low bits and the exponential in [`EXP_RING`], so the max tree opens its
/// candidates in that ring when the comparisons fit in it (with faithful truncations;
/// the local truncation's exponential runs in the full ring).
fn max_ring(mode: trunc::TruncMode, k: u32) -> Width {
    if shift(k) + k <= EXP_RING.bits() {
        trunc::usable(mode, EXP_RING)
    } else {
        Width::FULL
    }
}

/// The largest row spread (real, at `f` fractional bits) with `k`-bit comparisons.
pub fn spread_limit(k: u32, f: u32) -> f64 {
    compare::coarse_limit(k, shift(k)) as f64 / libm::exp2(f as f64)
}

/// The fewest comparison bits (at most [`DEFAULT_BITS`]) whose spread limit covers row
/// spreads up to `spread` (real) at `f` fractional bits: 23 for spreads up to 65535 at
/// `f = 16`.
pub fn bits_for_spread(spread: f64, f: u32) -> u32 {
    (18..DEFAULT_BITS)
        .find(|&k| spread_limit(k, f) >= spread)
        .unwrap_or(DEFAULT_BITS)
}

/// The reciprocal's spec: row sums in `[1, 1.25 cols]` (at 28 fractional bits) inside
/// eighth octaves `[1/2, 2^(bits(cols) + 1))` ([`reciprocal::fine`]: one product after
/// the normalization), compared without wrapping up to twice the top.
fn spec(cols: usize) -> Spec {
    let top = (usize::BITS - cols.leading_zeros()) as i32 + 1;
    let steps = reciprocal::fine::STEPS as i32;
    Spec {
        in_frac: EXP_FRAC,
        steps: steps as u32,
        lo: -steps,
        hi: steps * top,
        k: (top as u32 + 1 + EXP_FRAC + 1).saturating_sub(RECIP_SHIFT),
        shift: RECIP_SHIFT,
        above: 0.0,
        relative: 7,
    }
}

/// Scratch words for `rows x cols`.
pub fn scratch_words(rows: usize, cols: usize, k: u32) -> usize {
    let n = rows * cols;
    8 * n
        + 3 * rows
        + 2 * words_for_bits(n)
        + bitmul::convenience_scratch_words(n)
        + compare::scratch_words(n, k)
            .max(max_level_scratch_words(rows, cols, k))
            .max(square::scratch_words(n))
            .max(trunc_square::scratch_words(n))
            .max(reciprocal::scratch_words(rows, &spec(cols)))
            .max(rowmul::pending_scratch_words(rows, cols))
}

/// Exact-ish softmax of each row of `x` (`rows x cols`), `k`-bit comparisons.
pub fn softmax_exact<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    rows: usize,
    cols: usize,
    x: &[AShare],
    mask: Mask<'_>,
    k: u32,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = rows * cols;
    check_len("softmax input", n, x.len())?;
    check_len("softmax output", n, out.len())?;
    if cols == 0 || cols > 1 << 14 {
        return Err(Error::Param("softmax rows must have 1 to 16384 keys"));
    }
    if s.enc.frac_bits() + SQUARINGS > EXP_FRAC {
        return Err(Error::Param(
            "the exact softmax needs at most 16 fractional bits (its exponential runs at 22)",
        ));
    }
    mask.check(rows, cols)?;
    let keep = |i: usize| mask.keep(cols, i);
    let mut ar = Arena::new(scratch);
    let xs = AShare::raw_slice(x);

    // Masked entries take a valid entry's value (or 0 in an all-masked row).
    let v = ar.take(n)?;
    for i in 0..rows {
        let first = (0..cols)
            .find(|&j| keep(i * cols + j))
            .map(|j| xs[i * cols + j])
            .unwrap_or(0);
        for j in 0..cols {
            let idx = i * cols + j;
            v[idx] = if keep(idx) { xs[idx] } else { first };
        }
    }

    // 1. Row max by a tree of fours; `cur` holds `width` candidates per row.
    let cur = ar.take(n)?;
    cur.copy_from_slice(v);
    let mut width = cols;
    while width > 1 {
        let groups = width.div_ceil(4);
        max_level(s, rows, width, &mut cur[..rows * width], k, ar.sub().rest())?;
        width = groups;
    }

    // 2. z = v - max, clipping bits [z < -CLIP].
    let z = ar.take(n)?;
    for i in 0..rows {
        for j in 0..cols {
            z[i * cols + j] = v[i * cols + j].wrapping_sub(cur[i]);
        }
    }
    let clip = ar.take(words_for_bits(n))?;
    {
        let mut sub = ar.sub();
        let shifted = sub.take(n)?;
        let off = s.party.share_of_public(s.enc.encode(CLIP)?);
        for (d, zz) in shifted.iter_mut().zip(z.iter()) {
            *d = zz.wrapping_add(off);
        }
        compare::coarsen(shifted, shift(k));
        compare::msb(s, AShare::from_raw_slice(shifted), k, clip, sub.rest())?;
    }

    // 3. exp by a quadratic base and repeated squaring at EXP_FRAC bits.
    let f = s.enc.frac_bits();
    let e = ar.take(n)?;
    let one = s.party.share_of_public(1u64 << EXP_FRAC);
    let up = EXP_FRAC - f - SQUARINGS; // y = z / 2^SQUARINGS, exactly
    for (d, zz) in e.iter_mut().zip(z.iter()) {
        *d = zz << up;
    }
    let tmp = ar.take(n)?;
    exp_chain(s, e, tmp, one, ar.sub().rest())?;

    // 4. Zero clipped and masked entries: keep = NOT clip.
    let ones = s.party.xor_share_of_public(u64::MAX);
    for w in clip.iter_mut() {
        *w ^= ones;
    }
    crate::prg::clear_tail(clip, n);
    bitmul::bit_mul(
        s,
        clip,
        AShare::from_raw_slice(e),
        AShare::from_raw_slice_mut(tmp),
        ar.sub().rest(),
    )?;
    for (idx, t) in tmp.iter_mut().enumerate() {
        if !keep(idx) {
            *t = 0;
        }
    }
    reciprocal::divide_by_row_sums(
        s,
        rows,
        cols,
        AShare::from_raw_slice(tmp),
        &spec(cols),
        RECIP_FRAC,
        EXP_FRAC + RECIP_FRAC - f,
        out,
        ar.rest(),
    )
}

/// One level of the max tree: the `width` candidates of each row of `cur` (`rows x width`)
/// in groups of four (the last group of a row padded with its first candidate) become
/// the groups' maxima, written to the front of `cur` (`rows x ceil(width / 4)`). Each
/// candidate is coarsened once (each party drops the low [`shift`] bits of its share), so
/// the six comparisons of a group order fixed values and [`max4`] sees a total preorder.
fn max_level<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    rows: usize,
    width: usize,
    cur: &mut [u64],
    k: u32,
    scratch: &mut [u64],
) -> Result<()> {
    let groups = width.div_ceil(4);
    let m = rows * groups;
    let mut ar = Arena::new(scratch);
    // Plane c holds candidate c of every group (row-major groups).
    let cand = ar.take(4 * m)?;
    for i in 0..rows {
        let row = &cur[i * width..(i + 1) * width];
        for t in 0..groups {
            for c in 0..4 {
                let j = 4 * t + c;
                cand[c * m + i * groups + t] = row[if j < width { j } else { 4 * t }];
            }
        }
    }
    let coarse = ar.take(4 * m)?;
    coarse.copy_from_slice(cand);
    compare::coarsen(coarse, shift(k));
    let diff = ar.take(max4::PAIRS.len() * m)?;
    for (j, &(x, y)) in max4::PAIRS.iter().enumerate() {
        crate::ring::sub_into(
            &mut diff[j * m..(j + 1) * m],
            &coarse[x * m..(x + 1) * m],
            &coarse[y * m..(y + 1) * m],
        );
    }
    let lt = ar.take(words_for_bits(diff.len()))?;
    compare::msb(s, AShare::from_raw_slice(diff), k, lt, ar.sub().rest())?;
    max4::max4(
        s,
        m,
        cand,
        lt,
        max_ring(s.trunc_mode, k),
        &mut cur[..m],
        ar.rest(),
    )
}

/// Scratch words of [`max_level`] on `rows x width`.
fn max_level_scratch_words(rows: usize, width: usize, k: u32) -> usize {
    let m = rows * width.div_ceil(4);
    let pairs = max4::PAIRS.len() * m;
    8 * m
        + pairs
        + words_for_bits(pairs)
        + compare::scratch_words(pairs, k).max(max4::scratch_words(m))
}

/// `e <- (1 + y + y^2 / 2)^(2^SQUARINGS)` for `y` in `e` at [`EXP_FRAC`] bits (`one` is
/// this party's share of 1 there; `tmp` is scratch of `e`'s length). With faithful
/// truncations each square's opening shares the round of the previous truncation
/// ([`trunc_square`]): `y^2`, then `SQUARINGS + 1` fused rounds, then the last truncation
/// (8 rounds instead of 14).
fn exp_chain<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    e: &mut [u64],
    tmp: &mut [u64],
    one: u64,
    scratch: &mut [u64],
) -> Result<()> {
    if s.trunc_mode != trunc::TruncMode::Faithful {
        // Local truncations cost no round: nothing to fuse.
        square::square_by(
            s,
            AShare::from_raw_slice(e),
            AShare::from_raw_slice_mut(tmp),
            EXP_FRAC + 1,
            scratch,
        )?;
        for (d, q) in e.iter_mut().zip(tmp.iter()) {
            *d = one.wrapping_add(*d).wrapping_add(*q);
        }
        for _ in 0..SQUARINGS {
            square::square_by(
                s,
                AShare::from_raw_slice(e),
                AShare::from_raw_slice_mut(tmp),
                EXP_FRAC,
                scratch,
            )?;
            e.copy_from_slice(tmp);
        }
        return Ok(());
    }
    // tmp = y^2 (2 EXP_FRAC bits); the base 1 + y + y^2 / 2 is
    // trunc(y^2 + (1 + y) 2^(EXP_FRAC + 1), EXP_FRAC + 1). The whole chain runs modulo
    // 2^48 (EXP_RING: every value in it is below 2^46 there) and the last truncation
    // lifts the result to the full ring.
    square::square_wide_in(
        s,
        AShare::from_raw_slice(e),
        EXP_RING,
        AShare::from_raw_slice_mut(tmp),
        scratch,
    )?;
    for (t, d) in tmp.iter_mut().zip(e.iter()) {
        *t = t.wrapping_add(one.wrapping_add(*d) << (EXP_FRAC + 1));
    }
    trunc_square::trunc_square_in(
        s,
        AShare::from_raw_slice_mut(tmp),
        EXP_FRAC + 1,
        EXP_RING,
        AShare::from_raw_slice_mut(e),
        scratch,
    )?;
    // e = base^2 untruncated; each round truncates the last square and squares it.
    for _ in 1..SQUARINGS {
        trunc_square::trunc_square_in(
            s,
            AShare::from_raw_slice_mut(e),
            EXP_FRAC,
            EXP_RING,
            AShare::from_raw_slice_mut(tmp),
            scratch,
        )?;
        e.copy_from_slice(tmp);
    }
    trunc::trunc_by_in(
        s,
        AShare::from_raw_slice_mut(e),
        EXP_FRAC,
        EXP_RING,
        scratch,
    )
}

/// Cost of the exact softmax on `rows x cols` with `k`-bit comparisons.
pub fn cost(rows: usize, cols: usize, k: u32) -> super::Cost {
    let n = rows * cols;
    let mut c = super::Cost::default();
    let mut width = cols;
    while width > 1 {
        let m = rows * width.div_ceil(4);
        c = c
            + compare::cost(max4::PAIRS.len() * m, k)
            + max4::cost(m, max_ring(trunc::TruncMode::Faithful, k));
        width = width.div_ceil(4);
    }
    // y^2, the fused truncations and squares, the last truncation.
    let mut sq = square::wide_cost_in(n, EXP_RING) + trunc::cost(n);
    for _ in 0..SQUARINGS {
        sq = sq + trunc_square::cost_in(n, EXP_RING);
    }
    c + compare::cost(n, k)
        + sq
        + bitmul::cost(n, 1)
        + reciprocal::divide_cost(rows, cols, &spec(cols))
}
