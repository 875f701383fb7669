//! The maximum of four shared candidates `a, b, c, d` in one round, given XOR shares of
//! their six comparison bits `[x < y]` (pairs in [`PAIRS`] order): two levels of a
//! comparison tree for the rounds of one.
//!
//! The candidate that wins is the first maximal one: `b` wins iff `a < b`, `b >= c` and
//! `b >= d`; `c` iff `a < c`, `b < c` and `c >= d`; `d` iff `a < d`, `b < d` and `c < d`;
//! otherwise `a`. Each indicator is a product of three literals (a bit or its negation,
//! [`LITERALS`]), and `max = a + sum_i ind_i v_i` with `v_i = x_i - a` for `i` in `b, c, d`.
//! Exactly one indicator of `a, b, c, d` is 1 when the bits are those of a total
//! preorder; callers make them so by comparing one fixed coarsening of each candidate
//! (never differently rounded differences).
//!
//! One round: the parties open `e = bits ^ r` (six bits per group) and `F_i = v_i - B_i`
//! (three words) from [`Item::Max4`] material. With `e` public each literal is affine in
//! its mask bit, `l = alpha + beta r` (`alpha = e, beta = 1 - 2e` for a bit,
//! `alpha = 1 - e, beta = 2e - 1` for its negation), so
//! `ind_i = sum_T c_T m_T` over the subsets `T` of the three literals, with
//! `c_T = prod_{t not in T} alpha_t prod_{t in T} beta_t` public and `m_T` the product of
//! their mask bits (`m_{} = 1`). Then `ind_i v_i = c_{} v_i + sum_{T != {}} c_T (F_i m_T +
//! m_T B_i)`, local with the dealer's shares of `m_T` and `m_T B_i`. Every mask is opened
//! once.
//!
//! Valid input range: any ring values (the result is one of the candidates exactly).
//! A caller that reads the maximum only modulo `2^m` (the exact softmax, whose
//! comparisons and exponential read `x - max` in 48 bits) opens the `F_i` modulo `2^m`
//! (`m / 8` bytes each) and gets the maximum's shares correct modulo `2^m`.
//! Cost for `g` groups: 1 round, `8 ceil(6g / 64) + 3g m / 8` bytes sent per party (198
//! bits per group in the full ring, 150 in 6 bytes); D sends P1 `42 x 8` bytes per group.

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Error, Result};
use crate::kernel::MatMul;
use crate::prg::words_for_bits;
use crate::session::Session;
use crate::transport::Transport;

use super::Width;

/// The compared pairs `(x, y)` of candidates `0..4` (`a, b, c, d`): bit `j` is
/// `[x < y]` for `PAIRS[j]`.
pub const PAIRS: [(usize, usize); 6] = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];

/// For candidates `b, c, d`, the literals whose product says it wins: `(bit, positive)`.
pub const LITERALS: [[(usize, bool); 3]; 3] = [
    [(0, true), (3, false), (4, false)],
    [(1, true), (3, true), (5, false)],
    [(2, true), (4, true), (5, true)],
];

/// Monomial words per group: 7 non-empty subsets for each of the 3 candidates.
pub const MONOMIALS: usize = 7 * LITERALS.len();

/// The dealer item for `groups` groups.
pub fn item(groups: usize) -> Item {
    Item::Max4 {
        groups: groups as u32,
    }
}

/// Cost of [`max4`] on `groups` groups in `ring`.
pub fn cost(groups: usize, ring: Width) -> super::Cost {
    super::Cost::new(
        1,
        8 * words_for_bits(PAIRS.len() * groups) as u64
            + ring.entry_bytes() as u64 * (LITERALS.len() * groups) as u64,
    )
}

/// Scratch words for [`max4`] on `groups` groups.
pub fn scratch_words(groups: usize) -> usize {
    let open = words_for_bits(PAIRS.len() * groups) + LITERALS.len() * groups;
    material_words(groups) + 2 * open + LITERALS.len() * groups
}

fn material_words(groups: usize) -> usize {
    words_for_bits(PAIRS.len() * groups) + LITERALS.len() * groups + 2 * MONOMIALS * groups
}

/// D's corrections for P1 from both parties' mask bits `r`, value masks `b` and P0's
/// shares `p0_monos = [m_T, m_T B]`: fills `p1_monos` (P1's shares of the same).
pub fn corrections(
    groups: usize,
    r: [&[u64]; 2],
    b: [&[u64]; 2],
    p0_monos: [&[u64]; 2],
    p1_monos: [&mut [u64]; 2],
) {
    let bit = |j: usize, g: usize| {
        let i = j * groups + g;
        ((r[0][i / 64] ^ r[1][i / 64]) >> (i % 64)) & 1
    };
    let [mono, monob] = p1_monos;
    for (i, lits) in LITERALS.iter().enumerate() {
        for g in 0..groups {
            let bv = b[0][i * groups + g].wrapping_add(b[1][i * groups + g]);
            for t in 1..8usize {
                let m = (0..3)
                    .filter(|l| t >> l & 1 == 1)
                    .fold(1u64, |p, l| p & bit(lits[l].0, g));
                let idx = (7 * i + t - 1) * groups + g;
                mono[idx] = m.wrapping_sub(p0_monos[0][idx]);
                monob[idx] = (m.wrapping_neg() & bv).wrapping_sub(p0_monos[1][idx]);
            }
        }
    }
}

/// `out[g] = max(a, b, c, d)` of group `g`, with the candidates in `cand` as four planes
/// of `groups` values (`a` first) and XOR shares of their comparison bits in `lt`
/// (`[x < y]` for `PAIRS[j]` at bit `j groups + g`), correct modulo `2^m` for `m` =
/// `ring`'s bits (exactly, in the full ring). Requests its material.
pub fn max4<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    groups: usize,
    cand: &[u64],
    lt: &[u64],
    ring: Width,
    out: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    let bw = words_for_bits(PAIRS.len() * groups);
    check_len("max4 candidates", 4 * groups, cand.len())?;
    check_len("max4 output", groups, out.len())?;
    if lt.len() < bw {
        return Err(Error::Shape {
            what: "max4 comparison bits",
            expected: bw,
            actual: lt.len(),
        });
    }
    s.dealer.request(&[item(groups)])?;
    let mut ar = Arena::new(scratch);
    let r = ar.take(bw)?;
    let bmask = ar.take(LITERALS.len() * groups)?;
    let mono = ar.take(MONOMIALS * groups)?;
    let monob = ar.take(MONOMIALS * groups)?;
    s.dealer.take(
        item(groups),
        &mut [&mut *r, &mut *bmask, &mut *mono, &mut *monob],
    )?;
    // This party's shares of v_i = x_i - a.
    let v = ar.take(LITERALS.len() * groups)?;
    let a = &cand[..groups];
    for i in 0..LITERALS.len() {
        let x = &cand[(i + 1) * groups..(i + 2) * groups];
        crate::ring::sub_into(&mut v[i * groups..(i + 1) * groups], x, a);
    }
    // [F (3 groups, narrow) | e (bits)] in one message.
    let nf = LITERALS.len() * groups;
    let mine = ar.take(nf + bw)?;
    let theirs = ar.take(nf + bw)?;
    crate::ring::sub_into(&mut mine[..nf], v, bmask);
    for w in 0..bw {
        mine[nf + w] = lt[w] ^ r[w];
    }
    crate::prg::clear_tail(&mut mine[nf..], PAIRS.len() * groups);
    s.peer
        .exchange_narrow_then_words(mine, theirs, nf, ring.entry_bytes())?;
    for w in 0..bw {
        mine[nf + w] ^= theirs[nf + w];
    }
    crate::ring::add_assign(&mut mine[..nf], &theirs[..nf]);
    let (f, e) = mine.split_at(nf);
    out.copy_from_slice(a);
    for (i, lits) in LITERALS.iter().enumerate() {
        for g in 0..groups {
            // alpha, beta of each literal from the opened bit.
            let mut ab = [(0u64, 0u64); 3];
            for (l, &(j, positive)) in lits.iter().enumerate() {
                let idx = j * groups + g;
                let ej = (e[idx / 64] >> (idx % 64)) & 1;
                let (alpha, beta) = (ej, 1u64.wrapping_sub(ej << 1));
                ab[l] = if positive {
                    (alpha, beta)
                } else {
                    (1 - alpha, beta.wrapping_neg())
                };
            }
            let coef = |t: usize| {
                (0..3).fold(1u64, |c, l| {
                    c.wrapping_mul(if t >> l & 1 == 1 { ab[l].1 } else { ab[l].0 })
                })
            };
            let fi = f[i * groups + g];
            let mut acc = coef(0).wrapping_mul(v[i * groups + g]);
            for t in 1..8usize {
                let idx = (7 * i + t - 1) * groups + g;
                let term = fi.wrapping_mul(mono[idx]).wrapping_add(monob[idx]);
                acc = acc.wrapping_add(coef(t).wrapping_mul(term));
            }
            out[g] = out[g].wrapping_add(acc);
        }
    }
    Ok(())
}
