//! Comparison: the sign bit (DReLU) and `x < c`, as XOR-shared bits.
//!
//! For `|x| < 2^(k-1)` both parties reduce their shares mod 2^k (consistent, since 2^k
//! divides 2^64), so `x mod 2^k = x0' + x1' mod 2^k` and
//! `msb = x0'[k-1] ^ x1'[k-1] ^ carry(low(x0') + low(x1'))` over the low `L = k - 1`
//! bits. The carry is a millionaires' problem between two privately held bit strings
//! `a` (P0) and `b` (P1):
//!
//! * leaves: generate `g_i = a_i & b_i` by a dealer-assisted product of privately held
//!   bits (P0 opens `a ^ u`, P1 opens `b ^ v`: one bit each) and propagate
//!   `p_i = a_i ^ b_i` (free: the parties already hold its XOR shares);
//! * a log-depth tree combines adjacent groups, `G = G_hi ^ (P_hi & G_lo)` (generate and
//!   propagate are exclusive, so OR is XOR) and `P = P_hi & P_lo`, with AND triples on
//!   XOR shares; the two ANDs of a pair share `P_hi`, so one opening of it serves both
//!   (3 bits per pair), and the lowest group never needs its propagate bit (2 bits).
//!
//! Everything is bit-sliced: bit `i` of 64 elements lives in one word, so each AND layer
//! is word-wide and each message is tight.
//!
//! Cost for `n` elements (`n` a multiple of 64; otherwise round `n` up to one): rounds
//! `1 + ceil(log2(k - 1))`; bits sent per party per element
//! `(k - 1) + sum over levels (3 (pairs - 1) + 2)` where a level with `c` groups has
//! `floor(c / 2)` pairs. For `k = 28` that is 100 bits and 6 rounds; for `k = 32`, 116 bits
//! and 6 rounds (SecFormer's comparison: 3456 bits, 7 rounds). The result is XOR-shared;
//! [`super::bitmul`] converts or multiplies it without a separate B2A round.
//!
//! Valid input range: `|x| < 2^(k-1)` ring units (`x` in `[-2^(k-1), 2^(k-1))`); outside
//! it `x` is seen mod `2^k` and the sign is that of the wrapped value.
//!
//! **Coarse comparisons** ([`coarsen`]). A threshold test rarely needs the last bits of
//! `x` but often needs a wide range. If each party first drops the low `s` bits of its
//! own share (a local shift), the shares add up to `floor(x / 2^s) - c` modulo
//! `2^(64-s)`, with a carry `c` in {0, 1} that depends on the shares. A `k`-bit
//! comparison of that (`k <= 64 - s`) gives `[x < c 2^s]`: the threshold is exact to
//! `2^s` ring units (one-sided), and the range grows to `|x| < 2^(k-1+s) - 2^s`, at no
//! cost. With `k + s = 64` every ring value is compared without wrapping.

use crate::arena::Arena;
use crate::bits::to_planes;
use crate::dealer::{Dealer, Item};
use crate::error::{Error, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::prg::words_for_bits;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

/// Largest supported `k`.
pub const MAX_BITS: u32 = 64;

/// Per level: (pairs, whether the level has a pass-through group).
fn levels(leaves: usize) -> heapless::Vec<(usize, bool), 8> {
    let mut v = heapless::Vec::new();
    let mut c = leaves;
    while c > 1 {
        let _ = v.push((c / 2, c % 2 == 1));
        c = c.div_ceil(2);
    }
    v
}

/// The dealer items of comparing `n` elements on `k` bits, in consumption order.
pub fn items(n: usize, k: u32) -> heapless::Vec<Item, 16> {
    let nw = words_for_bits(n) as u32;
    let leaves = k as usize - 1;
    let mut v = heapless::Vec::new();
    let _ = v.push(Item::PrivAnd {
        words: leaves as u32 * nw,
    });
    for (pairs, _) in levels(leaves) {
        if pairs > 1 {
            let _ = v.push(Item::AndTriple2 {
                words: (pairs as u32 - 1) * nw,
            });
        }
        let _ = v.push(Item::AndTriple { words: nw });
    }
    v
}

/// Rounds of one comparison batch on `k` bits.
pub fn rounds(k: u32) -> u64 {
    1 + levels(k as usize - 1).len() as u64
}

/// Payload bytes each party sends for `n` elements on `k` bits.
pub fn bytes(n: usize, k: u32) -> u64 {
    let nw = words_for_bits(n) as u64;
    let mut words = (k as u64 - 1) * nw;
    for (pairs, _) in levels(k as usize - 1) {
        words += (3 * (pairs as u64 - 1) + 2) * nw;
    }
    8 * words
}

/// Scratch words for `n` elements on `k` bits.
pub fn scratch_words(n: usize, k: u32) -> usize {
    let nw = words_for_bits(n);
    let l = k as usize - 1;
    // planes G, P and the low bits; then the largest step (leaves: 4l words per block;
    // a tree level: 11 (pairs - 1) + 7 <= 5.5 l + 7).
    2 * l * nw + n + (6 * l + 8) * nw
}

fn check_k(k: u32) -> Result<()> {
    if !(2..=MAX_BITS).contains(&k) {
        return Err(Error::Param("comparison bits k must be in 2..=64"));
    }
    Ok(())
}

/// XOR-shared `msb` of `x` on `k` bits (the sign, i.e. `[x < 0]`, when
/// `|x| < 2^(k-1)`), packed into `out` (`ceil(n/64)` words). Requests its material.
pub fn msb<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    k: u32,
    out: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    check_k(k)?;
    s.dealer.request(&items(x.len(), k))?;
    msb_run(s, x, k, out, scratch)
}

/// `[x < c]` for a public real `c` (XOR-shared, packed). Requires `|x - c| < 2^(k-1)`
/// ring units.
pub fn less_than<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    c: f64,
    k: u32,
    out: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    let ce = s.enc.encode(c)?;
    let mut ar = Arena::new(scratch);
    let shifted = ar.take(n)?;
    let off = s.party.share_of_public(ce);
    for (d, v) in shifted.iter_mut().zip(AShare::raw_slice(x)) {
        *d = v.wrapping_sub(off);
    }
    msb(s, AShare::from_raw_slice(shifted), k, out, ar.rest())
}

/// [`msb`] on already-requested material (see [`items`]).
pub fn msb_run<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    k: u32,
    out: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    check_k(k)?;
    let n = x.len();
    let nw = words_for_bits(n);
    let l = k as usize - 1;
    if out.len() < nw {
        return Err(Error::Shape {
            what: "comparison output words",
            expected: nw,
            actual: out.len(),
        });
    }
    let p0 = s.party == PartyId::P0;
    let mut ar = Arena::new(scratch);
    let g = ar.take(l * nw)?;
    let p = ar.take(l * nw)?;
    {
        // This party's low bits, bit-sliced: P0's are the propagate shares too.
        let low = ar.take(n)?;
        let m = crate::ring::low_mask(l as u32);
        for (d, v) in low.iter_mut().zip(AShare::raw_slice(x)) {
            *d = v & m;
        }
        to_planes(low, l, p);
    }
    // Leaves: g = a & b by a product of privately held bits.
    {
        let mut lar = ar.sub();
        let r = lar.take(l * nw)?;
        let w = lar.take(l * nw)?;
        s.dealer.take(
            Item::PrivAnd {
                words: (l * nw) as u32,
            },
            &mut [&mut *r, &mut *w],
        )?;
        let mine = lar.take(l * nw)?;
        let theirs = lar.take(l * nw)?;
        for i in 0..l * nw {
            mine[i] = p[i] ^ r[i];
        }
        s.peer.exchange_u64(mine, theirs)?;
        for i in 0..l * nw {
            let (alpha, beta) = if p0 {
                (mine[i], theirs[i])
            } else {
                (theirs[i], mine[i])
            };
            g[i] = if p0 {
                (alpha & beta) ^ (beta & r[i]) ^ w[i]
            } else {
                (alpha & r[i]) ^ w[i]
            };
        }
    }
    // The tree.
    let mut c = l;
    for (pairs, pass) in levels(l) {
        let p2 = pairs - 1;
        let mut lar = ar.sub();
        // Material: pairs 1.. use AND-triple pairs (shared first operand), pair 0 a plain triple.
        let a2 = lar.take(p2 * nw)?;
        let b1 = lar.take(p2 * nw)?;
        let b2 = lar.take(p2 * nw)?;
        let c1 = lar.take(p2 * nw)?;
        let c2 = lar.take(p2 * nw)?;
        if p2 > 0 {
            s.dealer.take(
                Item::AndTriple2 {
                    words: (p2 * nw) as u32,
                },
                &mut [&mut *a2, &mut *b1, &mut *b2, &mut *c1, &mut *c2],
            )?;
        }
        let ta = lar.take(nw)?;
        let tb = lar.take(nw)?;
        let tc = lar.take(nw)?;
        s.dealer.take(
            Item::AndTriple { words: nw as u32 },
            &mut [&mut *ta, &mut *tb, &mut *tc],
        )?;
        let len = (3 * p2 + 2) * nw;
        let mine = lar.take(len)?;
        let theirs = lar.take(len)?;
        // Openings: [e2 | f1 | f2 | e | f].
        for j in 1..pairs {
            let (hi, lo, o) = (2 * j + 1, 2 * j, (j - 1) * nw);
            for w in 0..nw {
                mine[o + w] = p[hi * nw + w] ^ a2[o + w];
                mine[p2 * nw + o + w] = g[lo * nw + w] ^ b1[o + w];
                mine[2 * p2 * nw + o + w] = p[lo * nw + w] ^ b2[o + w];
            }
        }
        let base = 3 * p2 * nw;
        for w in 0..nw {
            mine[base + w] = p[nw + w] ^ ta[w];
            mine[base + nw + w] = g[w] ^ tb[w];
        }
        s.peer.exchange_u64(mine, theirs)?;
        for (m, t) in mine.iter_mut().zip(theirs.iter()) {
            *m ^= *t; // opened values
        }
        let pub_and = |e: u64, f: u64| if p0 { e & f } else { 0 };
        // Pair 0: G'_0 = G_1 ^ (P_1 & G_0).
        for w in 0..nw {
            let (e, f) = (mine[base + w], mine[base + nw + w]);
            let z = tc[w] ^ (e & tb[w]) ^ (f & ta[w]) ^ pub_and(e, f);
            g[w] = g[nw + w] ^ z;
        }
        for j in 1..pairs {
            let (hi, o) = (2 * j + 1, (j - 1) * nw);
            for w in 0..nw {
                let e = mine[o + w];
                let f1 = mine[p2 * nw + o + w];
                let f2 = mine[2 * p2 * nw + o + w];
                let z1 = c1[o + w] ^ (e & b1[o + w]) ^ (f1 & a2[o + w]) ^ pub_and(e, f1);
                let z2 = c2[o + w] ^ (e & b2[o + w]) ^ (f2 & a2[o + w]) ^ pub_and(e, f2);
                g[j * nw + w] = g[hi * nw + w] ^ z1;
                p[j * nw + w] = z2;
            }
        }
        if pass {
            let (from, to) = (c - 1, pairs);
            for w in 0..nw {
                g[to * nw + w] = g[from * nw + w];
                p[to * nw + w] = p[from * nw + w];
            }
        }
        c = c.div_ceil(2);
    }
    // msb = top bit of my share ^ carry share.
    out[..nw].fill(0);
    for (e, v) in AShare::raw_slice(x).iter().enumerate() {
        out[e / 64] |= ((v >> l) & 1) << (e % 64);
    }
    for w in 0..nw {
        out[w] ^= g[w];
    }
    crate::prg::clear_tail(&mut out[..nw], n);
    Ok(())
}

/// Cost of comparing `n` elements on `k` bits ([`rounds`], [`bytes`]).
pub fn cost(n: usize, k: u32) -> super::Cost {
    super::Cost::new(rounds(k), bytes(n, k))
}

/// Drops the low `shift` bits of each of this party's shares (local): a following `k`-bit
/// comparison (`k + shift <= 64`) then decides `[x < c 2^shift]` for some carry `c` in
/// {0, 1} on inputs with `|x| < 2^(k-1+shift) - 2^shift` ring units (see the module
/// documentation).
pub fn coarsen(shares: &mut [u64], shift: u32) {
    if shift > 0 {
        for v in shares.iter_mut() {
            *v >>= shift.min(63);
        }
    }
}

/// The largest input magnitude, in ring units, that a `k`-bit comparison coarsened by
/// `shift` bits decides without wrapping.
pub fn coarse_limit(k: u32, shift: u32) -> u64 {
    let top = (k - 1 + shift).min(63);
    (1u64 << top) - (1u64 << shift.min(63))
}

/// Scratch words for [`segments_run`] on `n` values (`2n` comparisons on `k` bits).
pub fn segments_scratch_words(n: usize, k: u32) -> usize {
    2 * n + scratch_words(2 * n, k)
}

/// The segment bits of `|x|` against a public threshold `t`, on already-requested
/// material for `2n` comparisons: bits `0..n` of `out` are `[x < -t]`, bits `n..2n` are
/// `[x < t]` (one batch, so one comparison's rounds), coarsened by `shift` bits: each
/// threshold is exact to `2^shift` ring units (it lies in `[t, t + 2^shift)`), and inputs
/// need `|x| + t < ` [`coarse_limit`]`(k, shift)`. Used by GeLU and tanh.
/// Scratch: `2n` words plus [`scratch_words`]`(2n, k)`.
pub fn segments_run<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    t: f64,
    k: u32,
    shift: u32,
    out: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    check_k(k)?;
    if k + shift > 64 {
        return Err(Error::Param(
            "coarse comparison: k + shift must be at most 64",
        ));
    }
    let n = x.len();
    let mut ar = Arena::new(scratch);
    let shifted = ar.take(2 * n)?;
    let off = s.party.share_of_public(s.enc.encode(t)?);
    for (i, v) in AShare::raw_slice(x).iter().enumerate() {
        shifted[i] = v.wrapping_add(off);
        shifted[n + i] = v.wrapping_sub(off);
    }
    coarsen(shifted, shift);
    msb_run(s, AShare::from_raw_slice(shifted), k, out, ar.rest())
}
