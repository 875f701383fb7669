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
//! * a tree of arity 4 combines up to four adjacent groups per node in one round:
//!   `G = G_3 ^ P_3 G_2 ^ P_3 P_2 G_1 ^ P_3 P_2 P_1 G_0` (generate and propagate are
//!   exclusive, so OR is XOR) and `P = P_3 P_2 P_1 P_0`, on XOR shares. Each factor is
//!   opened once under a fresh mask (7 bits for a node of four groups, 6 for the lowest
//!   node, which never needs its propagate bit), and since
//!   `prod (e_f ^ m_f) = XOR over subsets S (AND of e_f outside S) & (AND of m_f in S)`,
//!   every product is local given D's XOR shares of the masks' products over the subsets
//!   of two or more factors (22 words per node of four, [`Item::CarryLevel`]). A binary
//!   tree would take twice the levels and 9 bits for the same four groups;
//! * the first level needs no round of its own: with the leaves' openings
//!   `alpha = a ^ u`, `beta = b ^ v` public, `p_i = (alpha_i ^ beta_i) ^ (u_i ^ v_i)` and
//!   `g_i = alpha_i beta_i ^ alpha_i v_i ^ beta_i u_i ^ u_i v_i`, so each first-level product
//!   is a public combination of D's shares of products of the masks within the node
//!   ([`first`], carried by [`Item::PrivAnd`]).
//!
//! Everything is bit-sliced: bit `i` of 64 elements lives in one word, so each AND layer
//! is word-wide and each message is tight.
//!
//! **One value, several thresholds** ([`msb_fanout_run`]). `[x < t_c]` for thresholds
//! `t_1..t_C` is the sign of `x - t_c`, and P0 alone subtracts `t_c` from its share: P1's
//! low bits `b` are the same string for every `c`. So P1 opens `b ^ v` once under one mask
//! `v`, P0 opens `a_c ^ u_c` per threshold, and D shares `u_c & v` for each
//! ([`Item::PrivAnd`] with `copies`). P1 then sends `(k - 1)` leaf bits per value instead
//! of `C (k - 1)`; P0 sends as before, and the tree is unchanged. GeLU's and tanh's two
//! segment thresholds and the normalizations' `J` octave thresholds use it.
//!
//! **Thresholds of different sizes** ([`msb_fanout_coarse_run`]). A threshold `t` often
//! needs deciding only to a fraction of itself (the normalizations' octaves: `t 2^-8`), so
//! copy `c` may drop its own `dead[c]` low bits inside the common `k`-bit frame. Dropped
//! positions generate nothing, so their leaf products and every tree factor that only
//! combines them are not opened: a group's generate bit matters to the copies that keep a
//! position inside or above it, its propagate bit only to those that keep one below it
//! (it multiplies lower groups' generate bits), and a term whose generate bit does not
//! matter is cleared locally. With the copies in non-decreasing `dead` order, every plane
//! is sent as a prefix. The material is that of the full batch (D need not know).
//!
//! Cost for `n` elements (`n` a multiple of 64; otherwise round `n` up to one): rounds
//! `ceil(log4(k - 1))` (the leaf round, then the levels above the first); bits sent per
//! party per element `(k - 1)` plus, per level above the first, the factors its nodes open
//! ([`level_words`]). For `k = 28` that is 40 bits and 3 rounds; for `k = 22`, 32 bits and
//! 3 rounds; for every `k` from 18 to 64, 3 rounds (86 bits and 4 rounds at `k = 28` with
//! the first level opened; SecFormer's comparison: 3456 bits, 7 rounds). D sends P1 `k - 1`
//! words per 64 elements for the leaves, 44 per first-level node of four, and the nodes'
//! monomials per level above. The result is XOR-shared;
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

mod first;

/// Largest supported `k`.
pub const MAX_BITS: u32 = 64;

/// Groups each node of the carry tree combines.
pub const ARITY: usize = 4;

/// The group counts entering each level of the carry tree: `leaves` groups, then
/// `ceil(c / 4)` per level until one remains.
fn levels(leaves: usize) -> heapless::Vec<usize, 8> {
    let mut v = heapless::Vec::new();
    let mut c = leaves;
    while c > 1 {
        let _ = v.push(c);
        c = c.div_ceil(ARITY);
    }
    v
}

/// One node of a level: `size` consecutive groups (member 0 the lowest), and whether the
/// combined propagate bit is needed (every node but the lowest).
#[derive(Clone, Copy)]
struct Node {
    size: usize,
    need_p: bool,
}

impl Node {
    fn of_level(c: usize) -> impl Iterator<Item = (usize, Node)> {
        (0..c.div_ceil(ARITY)).map(move |j| {
            (
                ARITY * j,
                Node {
                    size: (c - ARITY * j).min(ARITY),
                    need_p: j > 0,
                },
            )
        })
    }

    /// Opened factors: `G_0..G_{s-2}` (indices `0..s-1`), `P_1..P_{s-1}` (indices
    /// `s-1..2s-2`), then `P_0` when the node's propagate bit is needed.
    fn factors(self) -> usize {
        if self.size < 2 {
            0
        } else {
            2 * self.size - 2 + self.need_p as usize
        }
    }

    /// `(is_generate, member)` of factor `f`.
    fn factor(self, f: usize) -> (bool, usize) {
        let s = self.size;
        if f < s - 1 {
            (true, f)
        } else if f < 2 * s - 2 {
            (false, f + 2 - s)
        } else {
            (false, 0)
        }
    }

    fn p_bit(self, member: usize) -> u8 {
        if member == 0 {
            1 << (2 * self.size - 2)
        } else {
            1 << (self.size - 2 + member)
        }
    }

    /// The products to compute, as factor bitmasks: `G_i P_{i+1} ... P_{s-1}` for
    /// `i < s - 1`, then `P_0 ... P_{s-1}` when needed.
    fn terms(self) -> heapless::Vec<u8, 5> {
        let mut t = heapless::Vec::new();
        if self.size < 2 {
            return t;
        }
        for i in 0..self.size - 1 {
            let mut m = 1u8 << i;
            for j in i + 1..self.size {
                m |= self.p_bit(j);
            }
            let _ = t.push(m);
        }
        if self.need_p {
            let _ = t.push((0..self.size).fold(0u8, |m, j| m | self.p_bit(j)));
        }
        t
    }

    /// The products of two or more factor masks the terms need (D provides their XOR
    /// shares), in increasing bitmask order.
    fn monomials(self) -> heapless::Vec<u8, 32> {
        let mut v: heapless::Vec<u8, 32> = heapless::Vec::new();
        for t in self.terms() {
            let mut sub = t;
            while sub != 0 {
                if sub.count_ones() >= 2 && !v.contains(&sub) {
                    let _ = v.push(sub);
                }
                sub = (sub - 1) & t;
            }
        }
        v.sort_unstable();
        v
    }
}

/// Words per bit plane of a carry-tree level with `c` groups: opened factors, monomials.
pub fn level_words(c: usize) -> (usize, usize) {
    Node::of_level(c).fold((0, 0), |(f, m), (_, nd)| {
        (f + nd.factors(), m + nd.monomials().len())
    })
}

/// The dealer items of comparing `n` elements on `k` bits, in consumption order.
pub fn items(n: usize, k: u32) -> heapless::Vec<Item, 16> {
    fanout_items(n, 1, k)
}

/// The dealer items of [`msb_fanout_run`] on `copies` batches of `n` elements.
pub fn fanout_items(n: usize, copies: usize, k: u32) -> heapless::Vec<Item, 16> {
    let mut v = heapless::Vec::new();
    let _ = v.push(Item::PrivAnd {
        planes: k - 1,
        bits: n as u32,
        copies: copies as u32,
    });
    push_tree_items(&mut v, words_for_bits(copies * n), k as usize - 1);
    v
}

/// Appends the carry tree's items over `l` leaf planes of `nw` words (the levels above
/// the first, which the leaf round delivers).
fn push_tree_items(v: &mut heapless::Vec<Item, 16>, nw: usize, l: usize) {
    for c in levels(l).into_iter().skip(1) {
        let _ = v.push(Item::CarryLevel {
            words: nw as u32,
            groups: c as u8,
        });
    }
}

/// Scratch words of the carry tree's largest level (at least `floor`), per word of a plane.
fn tree_step_words(l: usize, floor: usize) -> usize {
    levels(l)
        .iter()
        .map(|&c| {
            let (f, m) = level_words(c);
            3 * f + m
        })
        .fold(floor, usize::max)
}

/// Rounds of one comparison batch on `k` bits: the leaf round (which also gives the
/// carry tree's first level) and one per level above it.
pub fn rounds(k: u32) -> u64 {
    1 + levels(k as usize - 1).len().saturating_sub(1) as u64
}

/// Payload bytes each party sends for `n` elements on `k` bits.
pub fn bytes(n: usize, k: u32) -> u64 {
    cost(n, k).sent[0]
}

/// Scratch words for `n` elements on `k` bits.
pub fn scratch_words(n: usize, k: u32) -> usize {
    fanout_scratch_words(n, 1, k)
}

/// Scratch words for [`msb_fanout_run`] on `copies` batches of `n` elements.
pub fn fanout_scratch_words(n: usize, copies: usize, k: u32) -> usize {
    let nw = words_for_bits(copies * n);
    let l = k as usize - 1;
    2 * l * nw + copies * n + tree_step_words(l, 7 * l + first::monomials(l) + 1) * nw
}

/// Values per copy of a [`msb_fanout_run`] batch of `len` values, after checking `k`.
fn per_copy(len: usize, copies: usize, k: u32) -> Result<usize> {
    check_k(k)?;
    if copies == 0 || len % copies != 0 {
        return Err(Error::Param("comparison copies must divide the values"));
    }
    Ok(len / copies)
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

/// [`msb_fanout_run`] with its material requested ([`fanout_items`]).
pub fn msb_fanout<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    copies: usize,
    k: u32,
    out: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    let n = per_copy(x.len(), copies, k)?;
    s.dealer.request(&fanout_items(n, copies, k))?;
    msb_fanout_run(s, x, copies, k, out, scratch)
}

/// [`msb`] on already-requested material (see [`items`]).
pub fn msb_run<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    k: u32,
    out: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    msb_fanout_run(s, x, 1, k, out, scratch)
}

/// [`msb_run`] on `copies` batches of `n = x.len() / copies` values (copy-major) in which
/// P1's shares repeat: copy `c` of element `i` is `x[c n + i]`, and P1's share of it is
/// the same for every `c` (as when P0 alone subtracts a different public threshold from
/// each copy, [`crate::party::PartyId::share_of_public`]). P1's leaf bits are then one
/// string for all copies, opened once under one mask `v` ([`Item::PrivAnd`] with
/// `copies`): P1 sends `(k - 1)` leaf bits per element instead of `copies (k - 1)`, P0
/// still one string per copy. Nothing else changes: the opened string is the same value,
/// and each of P0's copies is masked by its own part of `u`.
///
/// The result is packed like the input: bit `c n + i` of `out` (`ceil(copies n / 64)`
/// words). P1's shares must repeat as stated: where they do not, P1's first copy is
/// compared.
pub fn msb_fanout_run<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    copies: usize,
    k: u32,
    out: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    msb_fanout_coarse_run(s, x, copies, k, &[], out, scratch)
}

/// [`msb_fanout_run`] in which copy `c` also drops the low `dead[c]` bits of each party's
/// share (`dead` non-decreasing, at most `k - 1`; empty: none dropped), as [`coarsen`]
/// would, but inside the `k`-bit frame: copy `c` decides `[x < 0]` exactly to
/// `2^dead[c]` ring units (the carry out of the dropped bits is taken as 0), on the same
/// range. The dropped leaves generate nothing, so nobody sends their factors: P0's leaf
/// bit `i` goes only for the copies with `dead[c] <= i`, and every factor of the carry
/// tree only for the copies whose result it can change ([`Live`]). With the copies
/// ordered by `dead`, each is a prefix of the bit plane. Same material and rounds as
/// [`msb_fanout_run`]; fewer bytes ([`fanout_coarse_cost`]).
#[allow(clippy::too_many_arguments)]
pub fn msb_fanout_coarse_run<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    copies: usize,
    k: u32,
    dead: &[u32],
    out: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    let n = per_copy(x.len(), copies, k)?;
    let nw = words_for_bits(x.len());
    let l = k as usize - 1;
    let live = Live::new(n, copies, dead, l)?;
    check_out_words(out, nw)?;
    let mut ar = Arena::new(scratch);
    let g = ar.take(l * nw)?;
    let p = ar.take(l * nw)?;
    // This party's low bits, bit-sliced: P0's are the propagate shares too.
    low_planes(AShare::raw_slice(x), l, p, ar.sub().rest())?;
    leaves(s, &live, l, g, p, ar.sub().rest())?;
    // msb = top bit of my share ^ carry share.
    out[..nw].fill(0);
    xor_top_bits(AShare::raw_slice(x), l, out);
    let above = (l.div_ceil(ARITY), ARITY);
    carry_from(s, &live, above, l, g, p, x.len(), out, ar.rest())
}

/// Which copies of a fanout batch a leaf position or a carry-tree factor matters to: copy
/// `c` drops its leaf positions below `dead[c]` (their generate bits are 0), so the
/// factor of a group matters to the copies whose dropped positions lie below the group's
/// end (its generate bit) or start (its propagate bit: it only multiplies the generate
/// bits of lower groups). With `dead` non-decreasing these copies are a prefix.
#[derive(Clone, Copy)]
struct Live<'a> {
    n: usize,
    copies: usize,
    dead: &'a [u32],
}

impl<'a> Live<'a> {
    fn new(n: usize, copies: usize, dead: &'a [u32], l: usize) -> Result<Self> {
        let sorted = dead.windows(2).all(|w| w[0] <= w[1]);
        let fits = dead.last().is_none_or(|&d| d as usize <= l);
        if !(dead.is_empty() || dead.len() == copies) || !sorted || !fits {
            return Err(Error::Param(
                "comparison: dropped bits per copy must be non-decreasing, at most k - 1, one per copy",
            ));
        }
        Ok(Live { n, copies, dead })
    }

    /// Bits of a plane that matter to a position or factor of threshold `t` (the copies
    /// with fewer than `t` dropped positions).
    fn bits(&self, t: usize) -> usize {
        let c = if self.dead.is_empty() {
            self.copies
        } else {
            self.dead.partition_point(|&d| (d as usize) < t)
        };
        c * self.n
    }

    /// Words of a plane sent for threshold `t`.
    fn words(&self, t: usize) -> usize {
        words_for_bits(self.bits(t))
    }

    /// The leaf (generate) at position `i` matters below `i + 1`.
    fn leaf(i: usize) -> usize {
        i + 1
    }

    /// Threshold of factor `f` of node `nd` (first group `base`) at a level whose groups
    /// span `span` leaf positions of `l`.
    fn factor(nd: Node, base: usize, f: usize, span: usize, l: usize) -> usize {
        let (is_g, member) = nd.factor(f);
        let group = base + member;
        if is_g {
            ((group + 1) * span).min(l)
        } else {
            group * span
        }
    }

    /// The bits of word `w` of a plane that matter to threshold `t`.
    fn mask(&self, t: usize, w: usize) -> u64 {
        if self.dead.is_empty() {
            return !0;
        }
        let (bits, at) = (self.bits(t), 64 * w);
        if at + 64 <= bits {
            !0
        } else if at >= bits {
            0
        } else {
            (1u64 << (bits - at)) - 1
        }
    }

    /// Clears the bits of `row` (a plane's words from word `w0`) beyond threshold `t`'s.
    fn clear_beyond(&self, t: usize, w0: usize, row: &mut [u64]) {
        if self.dead.is_empty() {
            return;
        }
        let bits = self.bits(t);
        for (k, v) in row.iter_mut().enumerate() {
            let at = 64 * (w0 + k);
            if at + 64 <= bits {
                continue;
            }
            *v &= if at >= bits {
                0
            } else {
                (1u64 << (bits - at)) - 1
            };
        }
    }
}

/// Packs the first `len(i)` words of each row `i` of `buf` (rows of `nw` words) to the
/// front, in order; returns the packed length.
fn pack_rows(buf: &mut [u64], nw: usize, rows: usize, len: impl Fn(usize) -> usize) -> usize {
    let mut at = 0;
    for i in 0..rows {
        let m = len(i);
        buf.copy_within(i * nw..i * nw + m, at);
        at += m;
    }
    at
}

/// Undoes [`pack_rows`]: row `i` gets its `len(i)` packed words and zeros after them.
fn unpack_rows(buf: &mut [u64], nw: usize, rows: usize, len: impl Fn(usize) -> usize) {
    let mut at: usize = (0..rows).map(&len).sum();
    for i in (0..rows).rev() {
        let m = len(i);
        at -= m;
        buf.copy_within(at..at + m, i * nw);
        buf[i * nw + m..(i + 1) * nw].fill(0);
    }
}

fn check_out_words(out: &[u64], nw: usize) -> Result<()> {
    if out.len() < nw {
        return Err(Error::Shape {
            what: "comparison output words",
            expected: nw,
            actual: out.len(),
        });
    }
    Ok(())
}

/// Bit-slices the low `l` bits of `vals` into `l` planes (`scratch`: `vals.len()` words).
fn low_planes(vals: &[u64], l: usize, planes: &mut [u64], scratch: &mut [u64]) -> Result<()> {
    let low = Arena::new(scratch).take(vals.len())?;
    let m = crate::ring::low_mask(l as u32);
    for (d, v) in low.iter_mut().zip(vals) {
        *d = v & m;
    }
    to_planes(low, l, planes);
    Ok(())
}

/// XORs bit `l` of each value into the packed `out`.
fn xor_top_bits(vals: &[u64], l: usize, out: &mut [u64]) {
    for (e, v) in vals.iter().enumerate() {
        out[e / 64] ^= ((v >> l) & 1) << (e % 64);
    }
}

/// The carry tree from a level of `start = (groups, span)` (`g`, `p` hold that level's
/// groups, planes of `len` bits) up: each level combines up to four adjacent groups in one
/// round; the carry share is XORed into `out`.
#[allow(clippy::too_many_arguments)]
fn carry_from<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    live: &Live<'_>,
    (mut c, mut span): (usize, usize),
    l: usize,
    g: &mut [u64],
    p: &mut [u64],
    len: usize,
    out: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    let nw = words_for_bits(len);
    while c > 1 {
        let level = Level { c, span, l, nw };
        carry_level(s, live, level, g, p, scratch)?;
        c = c.div_ceil(ARITY);
        span *= ARITY;
    }
    for w in 0..nw {
        out[w] ^= g[w];
    }
    crate::prg::clear_tail(&mut out[..nw], len);
    Ok(())
}

/// The leaves `g = a & b` by products of privately held bits, and the carry tree's first
/// level from the same round ([`first`]): P1 opens the first `n` bits of each of its rows
/// (copy 0; the other copies repeat them), P0 whole rows, each only for the copies a
/// position matters to ([`Live`]; the others' generate terms are cleared). The first
/// level's `(G, P)` go to rows `0..ceil(l / 4)` of `g` and `p` (`p` holds this party's low
/// bits on entry).
fn leaves<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    live: &Live<'_>,
    l: usize,
    g: &mut [u64],
    p: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    let (n, copies) = (live.n, live.copies);
    let p0 = s.party == PartyId::P0;
    let nw = words_for_bits(copies * n);
    let nwc = words_for_bits(n);
    let (all, one) = (l * nw, l * nwc);
    let mut ar = Arena::new(scratch);
    let u = ar.take_zeroed(all)?;
    let v = ar.take(if p0 { 0 } else { one })?;
    let wsh = ar.take(all)?;
    let monos = ar.take(first::monomials(l) * nw)?;
    s.dealer.take(
        Item::PrivAnd {
            planes: l as u32,
            bits: n as u32,
            copies: copies as u32,
        },
        &mut [
            if p0 { &mut *u } else { &mut [] },
            &mut *v,
            &mut *wsh,
            &mut *monos,
        ],
    )?;
    let mine = ar.take(if p0 { all } else { one })?;
    let theirs = ar.take(if p0 { one } else { all })?;
    if p0 {
        for i in 0..all {
            mine[i] = p[i] ^ u[i];
        }
    } else {
        for i in 0..l {
            for w in 0..nwc {
                mine[i * nwc + w] = p[i * nw + w] ^ v[i * nwc + w];
            }
        }
    }
    // Words sent per plane: P0's for the copies the position matters to, P1's whole
    // string when it matters to any copy.
    let p0_len = |i: usize| live.words(Live::leaf(i));
    let p1_len = |i: usize| if live.bits(Live::leaf(i)) > 0 { nwc } else { 0 };
    let (my_len, their_len): (&dyn Fn(usize) -> usize, &dyn Fn(usize) -> usize) = if p0 {
        (&p0_len, &p1_len)
    } else {
        (&p1_len, &p0_len)
    };
    let (my_nw, their_nw) = if p0 { (nw, nwc) } else { (nwc, nw) };
    let sent = pack_rows(mine, my_nw, l, my_len);
    let got: usize = (0..l).map(their_len).sum();
    s.peer.exchange_u64(&mine[..sent], &mut theirs[..got])?;
    unpack_rows(mine, my_nw, l, my_len);
    unpack_rows(theirs, their_nw, l, their_len);
    // P1's rows (opened; and its mask, at P1), repeated across the copies.
    let (alpha, short) = if p0 {
        (&*mine, &*theirs)
    } else {
        (&*theirs, &*mine)
    };
    let beta = ar.take(all)?;
    let vr = ar.take_zeroed(all)?;
    for i in 0..l {
        let (row, src) = (i * nw..(i + 1) * nw, i * nwc..(i + 1) * nwc);
        crate::bits::repeat_bits(&mut beta[row.clone()], &short[src.clone()], n, copies);
        if !p0 {
            crate::bits::repeat_bits(&mut vr[row], &v[src], n, copies);
        }
    }
    let leaves = first::Leaves {
        p0,
        planes: [alpha, beta, u, vr, wsh],
        monos,
        row: nw,
    };
    let keep = |i: usize, w: usize| live.mask(Live::leaf(i), w);
    first::level(&leaves, l, &keep, g, p);
    Ok(())
}

/// D's side of a [`Item::CarryLevel`]: P1's XOR shares of every monomial (`monos1`)
/// from both parties' mask draws and P0's monomial shares.
pub fn carry_level_corrections(
    c: usize,
    nw: usize,
    masks0: &[u64],
    masks1: &[u64],
    monos0: &[u64],
    monos1: &mut [u64],
) {
    let (mut fo, mut mo) = (0, 0);
    for (_, nd) in Node::of_level(c) {
        for (mi, m) in nd.monomials().iter().enumerate() {
            for w in 0..nw {
                let mut prod = !0u64;
                let mut bits = *m;
                while bits != 0 {
                    let f = bits.trailing_zeros() as usize;
                    let i = (fo + f) * nw + w;
                    prod &= masks0[i] ^ masks1[i];
                    bits &= bits - 1;
                }
                let i = (mo + mi) * nw + w;
                monos1[i] = prod ^ monos0[i];
            }
        }
        fo += nd.factors();
        mo += nd.monomials().len();
    }
}

/// Where a product's share term comes from: the public product of the other factors
/// times this party's share of 1 (P0 only), of one factor's mask, or of a monomial.
#[derive(Clone, Copy)]
enum Src {
    One,
    Mask(usize),
    Monomial(usize),
}

/// Words per block of [`carry_level`]'s local products.
const WORD_BLOCK: usize = 64;

/// The expansion of each of a node's terms: `prod_f (e_f ^ m_f) = XOR over subsets S of
/// (AND of the opened e_f outside S) & [AND of the masks in S]`, as
/// `(term, factors outside S, share of S)`.
fn expansion(nd: Node) -> heapless::Vec<(u8, u8, Src), 64> {
    let monos = nd.monomials();
    let mut v = heapless::Vec::new();
    for (ti, t) in nd.terms().iter().enumerate() {
        let mut sub = *t;
        loop {
            let src = match sub.count_ones() {
                0 => Src::One,
                1 => Src::Mask(sub.trailing_zeros() as usize),
                _ => Src::Monomial(monos.iter().position(|m| *m == sub).unwrap_or(0)),
            };
            let _ = v.push((ti as u8, *t & !sub, src));
            if sub == 0 {
                break;
            }
            sub = (sub - 1) & *t;
        }
    }
    v
}

/// A level of the carry tree: `c` groups of `span` leaf positions (of `l`), planes of
/// `nw` words.
#[derive(Clone, Copy)]
struct Level {
    c: usize,
    span: usize,
    l: usize,
    nw: usize,
}

impl Level {
    /// Words of factor row `f` (the level's factors in order) that are opened.
    fn factor_words(&self, live: &Live<'_>, f: usize) -> usize {
        let mut fo = 0;
        for (base, nd) in Node::of_level(self.c) {
            if f < fo + nd.factors() {
                return live.words(Live::factor(nd, base, f - fo, self.span, self.l));
            }
            fo += nd.factors();
        }
        0
    }
}

/// One level of the carry tree on `c` groups (rows of `g`, `p`, `nw` words each): node `j`
/// (groups `4j..4j+s`) becomes group `j`, `G = G_{s-1} ^ XOR_i G_i P_{i+1} .. P_{s-1}`
/// (generate and propagate are exclusive, so OR is XOR) and `P = P_0 .. P_{s-1}`. Every
/// factor is opened once under a fresh mask and every product of up to four of them is
/// local given D's shares of the masks' products ([`Item::CarryLevel`]).
fn carry_level<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    live: &Live<'_>,
    level: Level,
    g: &mut [u64],
    p: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    let Level { c, nw, .. } = level;
    let p0 = s.party == PartyId::P0;
    let (nf, nm) = level_words(c);
    let mut ar = Arena::new(scratch);
    let masks = ar.take(nf * nw)?;
    let monos = ar.take(nm * nw)?;
    s.dealer.take(
        Item::CarryLevel {
            words: nw as u32,
            groups: c as u8,
        },
        &mut [&mut *masks, &mut *monos],
    )?;
    let open = ar.take(nf * nw)?;
    let theirs = ar.take(nf * nw)?;
    let mut fo = 0;
    for (base, nd) in Node::of_level(c) {
        for f in 0..nd.factors() {
            let (is_g, member) = nd.factor(f);
            let src = if is_g { &*g } else { &*p };
            let row = (base + member) * nw;
            let o = (fo + f) * nw;
            for w in 0..nw {
                open[o + w] = src[row + w] ^ masks[o + w];
            }
        }
        fo += nd.factors();
    }
    // Only the copies each factor matters to go (both parties send the same words).
    let sent = pack_rows(open, nw, nf, |f| level.factor_words(live, f));
    s.peer.exchange_u64(&open[..sent], &mut theirs[..sent])?;
    unpack_rows(open, nw, nf, |f| level.factor_words(live, f));
    unpack_rows(theirs, nw, nf, |f| level.factor_words(live, f));
    for (m, t) in open.iter_mut().zip(theirs.iter()) {
        *m ^= *t;
    }
    let (mut fo, mut mo) = (0, 0);
    for (j, (base, nd)) in Node::of_level(c).enumerate() {
        let exp = expansion(nd);
        let nterms = nd.terms().len();
        let gterms = nd.size.saturating_sub(1);
        let top = base + nd.size - 1;
        // Blocks of words: every term of the expansion is one straight pass over the block.
        let mut w0 = 0;
        while w0 < nw {
            let m = WORD_BLOCK.min(nw - w0);
            let mut z = [[0u64; WORD_BLOCK]; 5];
            for &(ti, outside, src) in exp.iter() {
                let mut pubp = [!0u64; WORD_BLOCK];
                let mut bits = outside;
                while bits != 0 {
                    let f = bits.trailing_zeros() as usize;
                    let row = &open[(fo + f) * nw + w0..][..m];
                    for (a, o) in pubp.iter_mut().zip(row) {
                        *a &= *o;
                    }
                    bits &= bits - 1;
                }
                let zt = &mut z[ti as usize][..m];
                let share = match src {
                    Src::One if p0 => None,
                    Src::One => continue,
                    Src::Mask(f) => Some(&masks[(fo + f) * nw + w0..][..m]),
                    Src::Monomial(k) => Some(&monos[(mo + k) * nw + w0..][..m]),
                };
                match share {
                    None => zt.iter_mut().zip(&pubp).for_each(|(z, a)| *z ^= *a),
                    Some(sh) => zt
                        .iter_mut()
                        .zip(pubp.iter().zip(sh))
                        .for_each(|(z, (a, b))| *z ^= *a & *b),
                }
            }
            // A generate term is 0 where its generate bit does not matter (it was not
            // opened there, so the expansion computed noise).
            for (i, zt) in z[..gterms].iter_mut().enumerate() {
                let t = Live::factor(nd, base, i, level.span, level.l);
                live.clear_beyond(t, w0, &mut zt[..m]);
            }
            for k in 0..m {
                let w = w0 + k;
                let mut gn = g[top * nw + w];
                for zt in &z[..gterms] {
                    gn ^= zt[k];
                }
                let pn = match (nd.need_p, nd.size) {
                    (false, _) => 0,
                    (true, 1) => p[base * nw + w],
                    (true, _) => z[nterms - 1][k],
                };
                // Row j < 4j = base for j > 0 (already read); row 0 is rewritten only
                // after its node has read its members' word w.
                g[j * nw + w] = gn;
                p[j * nw + w] = pn;
            }
            w0 += m;
        }
        fo += nd.factors();
        mo += nd.monomials().len();
    }
    Ok(())
}

/// Cost of comparing `n` elements on `k` bits ([`rounds`], [`bytes`]).
pub fn cost(n: usize, k: u32) -> super::Cost {
    fanout_cost(n, 1, k)
}

/// Cost of [`msb_fanout_run`] on `copies` batches of `n` elements: the tree's factors
/// from both parties, the leaves `copies (k - 1)` bits per element from P0 and `k - 1`
/// from P1.
pub fn fanout_cost(n: usize, copies: usize, k: u32) -> super::Cost {
    fanout_coarse_cost(n, copies, k, &[])
}

/// Cost of [`msb_fanout_coarse_run`]: as [`fanout_cost`], with each leaf plane and tree
/// factor sent only for the copies it matters to.
pub fn fanout_coarse_cost(n: usize, copies: usize, k: u32, dead: &[u32]) -> super::Cost {
    let l = k as usize - 1;
    let live = Live { n, copies, dead };
    let nwc = words_for_bits(n);
    let mut p0 = 0;
    let mut p1 = 0;
    for i in 0..l {
        p0 += live.words(Live::leaf(i));
        p1 += if live.bits(Live::leaf(i)) > 0 { nwc } else { 0 };
    }
    let nw = words_for_bits(copies * n);
    let (mut c, mut span, mut tree) = (l.div_ceil(ARITY), ARITY, 0);
    for _ in levels(l).into_iter().skip(1) {
        let level = Level { c, span, l, nw };
        tree += (0..level_words(c).0)
            .map(|f| level.factor_words(&live, f))
            .sum::<usize>();
        c = c.div_ceil(ARITY);
        span *= ARITY;
    }
    let bytes = |w: usize| 8 * (w + tree) as u64;
    super::Cost::asymmetric(rounds(k), bytes(p0), bytes(p1))
}

/// The dealer items of [`msb_public_run`] on `copies` batches of `n` elements: the carry
/// tree's levels above the first (its leaves and its first level are local).
pub fn public_items(n: usize, copies: usize, k: u32) -> heapless::Vec<Item, 16> {
    let mut v = heapless::Vec::new();
    push_tree_items(&mut v, words_for_bits(copies * n), k as usize - 1);
    v
}

/// Opened factor words per plane word of the levels above the first.
fn upper_factor_words(l: usize) -> u64 {
    levels(l)
        .iter()
        .skip(1)
        .map(|&g| level_words(g).0 as u64)
        .sum()
}

/// Cost of [`msb_public_run`] on `copies` batches of `n` elements: the levels above the
/// first, the same for both parties.
pub fn public_cost(n: usize, copies: usize, k: u32) -> super::Cost {
    let nw = words_for_bits(copies * n) as u64;
    let l = k as usize - 1;
    let rounds = levels(l).len().saturating_sub(1) as u64;
    super::Cost::new(rounds, 8 * upper_factor_words(l) * nw)
}

/// Scratch words for [`msb_public_run`] on `copies` batches of `n` elements.
pub fn public_scratch_words(n: usize, copies: usize, k: u32) -> usize {
    let nw = words_for_bits(copies * n);
    let (k, l) = (k as usize, k as usize - 1);
    let expanded = (2 * k + first_monomials(k as u32)) * nw;
    3 * l * nw + expanded + copies * n + tree_step_words(l, 0) * nw
}

/// The bits `b` that [`msb_public_run`] adds to public values, as D gives them: `b = d ^ m`
/// with `d` public (both parties hold it; uniform, since `m` is) and `m` XOR-shared, with
/// XOR shares of the products of two or more bits of `m` within each node of the carry
/// tree's first level. Every plane has `ceil(n / 64)` words.
#[derive(Clone, Copy)]
pub struct PublicBits<'a> {
    /// `d`: `k` planes (plane `j`: bit `j` of every element).
    pub d: &'a [u64],
    /// This party's share of `m`: `k` planes.
    pub m: &'a [u64],
    /// This party's shares of the monomials: [`first_monomials`] planes, node by node, each
    /// node's subsets (of two or more of its positions) in increasing bitmask order.
    pub monos: &'a [u64],
}

/// Monomial planes D shares in an [`Item::PrivAnd`] of `planes` leaf planes, for the carry
/// tree's first level (per plane word).
pub fn first_level_monomials(planes: usize) -> usize {
    first::monomials(planes)
}

/// D's side of the first-level monomials of an [`Item::PrivAnd`]: from P0's masks `u`,
/// P1's masks `v` repeated to the copies' layout (`planes` planes of `row` words each) and
/// P0's shares `monos0`, P1's shares `monos1`.
pub fn first_level_corrections(
    planes: usize,
    row: usize,
    u: &[u64],
    v: &[u64],
    monos0: &[u64],
    monos1: &mut [u64],
) {
    first::corrections(planes, row, u, v, monos0, monos1)
}

/// Monomial planes of [`PublicBits`] for `k`-bit comparisons: `2^s - s - 1` per node of
/// `s` leaf positions of the first level.
pub fn first_monomials(k: u32) -> usize {
    // Closed form over the level's full nodes and its last one (see `first::monomials`).
    let l = (k as usize).saturating_sub(1);
    let per_node = |s: usize| (1usize << s) - s - 1;
    (l / ARITY)
        .saturating_mul(per_node(ARITY))
        .saturating_add(per_node(l % ARITY))
}

/// Index of subset `t` (a bitmask of two or more positions) among a node's monomials.
fn monomial_index(t: u8) -> usize {
    (0..t).filter(|x| x.count_ones() >= 2).count()
}

/// D's side of [`PublicBits`]: from the bits `b` (`k` planes of `nw` words), P0's draws of
/// `d`, of its share `m0` and of its monomial shares `monos0`, fills P1's `d1` (= `d`),
/// `m1 = b ^ d ^ m0` and `monos1`.
#[allow(clippy::too_many_arguments)]
pub fn public_bits_corrections(
    k: u32,
    nw: usize,
    b: &[u64],
    d: &[u64],
    m0: &[u64],
    monos0: &[u64],
    d1: &mut [u64],
    m1: &mut [u64],
    monos1: &mut [u64],
) {
    let planes = k as usize * nw;
    d1[..planes].copy_from_slice(&d[..planes]);
    for i in 0..planes {
        m1[i] = b[i] ^ d[i] ^ m0[i];
    }
    let mut at = 0;
    for (base, nd) in Node::of_level((k as usize).saturating_sub(1)) {
        for t in (0u8..1 << nd.size).filter(|t| t.count_ones() >= 2) {
            for w in 0..nw {
                let mut prod = !0u64;
                for j in 0..nd.size {
                    if t >> j & 1 == 1 {
                        let i = (base + j) * nw + w;
                        prod &= m0[i] ^ m1[i];
                    }
                }
                monos1[at * nw + w] = prod ^ monos0[at * nw + w];
            }
            at += 1;
        }
    }
}

/// XOR-shared `msb((a + b) mod 2^k)` for a public `a` and the bits `b` of [`PublicBits`],
/// on `copies` batches of `n` values: copy `c` of element `i` adds the public `a[c n + i]`
/// to `b_i`, whose planes serve every copy. With `x = a + b` this is `[x < 0]` when
/// `|x| < 2^(k-1)`, as [`msb_fanout_run`] decides it for additive shares. Here the leaves
/// `g = a & b`, `p = a ^ b` are linear in `m` with public coefficients (`b = d ^ m`), so
/// every product the first level of the carry tree needs is a sum of public terms times
/// D's monomials of `m` within its node: the first level is local too, and only the
/// levels above it cost rounds. This is the comparison of an opened masked value
/// `E = x - B` against thresholds when D has given the bits of `B` this way (GeLU).
/// Material: [`public_items`].
#[allow(clippy::too_many_arguments)]
pub fn msb_public_run<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    a: &[u64],
    b: &PublicBits<'_>,
    copies: usize,
    k: u32,
    out: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    let n = per_copy(a.len(), copies, k)?;
    let (nw, nwc, l) = (words_for_bits(a.len()), words_for_bits(n), k as usize - 1);
    let nm = first_monomials(k);
    crate::error::check_len("comparison bit planes", k as usize * nwc, b.d.len())?;
    crate::error::check_len("comparison bit planes", k as usize * nwc, b.m.len())?;
    crate::error::check_len("comparison monomial planes", nm * nwc, b.monos.len())?;
    check_out_words(out, nw)?;
    let p0 = s.party == PartyId::P0;
    let mut ar = Arena::new(scratch);
    let g = ar.take(l * nw)?;
    let p = ar.take(l * nw)?;
    let ap = ar.take(l * nw)?;
    // The material, repeated across the copies.
    let mut repeat = |src: &[u64], planes: usize| -> Result<&mut [u64]> {
        let dst = ar.take(planes * nw)?;
        for j in 0..planes {
            let row = &mut dst[j * nw..(j + 1) * nw];
            crate::bits::repeat_bits(row, &src[j * nwc..(j + 1) * nwc], n, copies);
        }
        Ok(dst)
    };
    let d = repeat(b.d, k as usize)?;
    let m = repeat(b.m, k as usize)?;
    let monos = repeat(b.monos, nm)?;
    low_planes(a, l, ap, ar.sub().rest())?;
    let first = Node::of_level(l).count();
    let mut at = 0;
    for (j, (base, nd)) in Node::of_level(l).enumerate() {
        let planes = PublicPlanes {
            a: ap,
            d,
            m,
            monos: &monos[at * nw..],
            nw,
            base,
        };
        first_node(p0, nd, &planes, j, g, p);
        at += (1usize << nd.size) - nd.size - 1;
    }
    // msb = a's top bit ^ b's top bit (d ^ m) ^ the carry.
    out[..nw].copy_from_slice(&m[l * nw..(l + 1) * nw]);
    if p0 {
        for (o, dv) in out[..nw].iter_mut().zip(&d[l * nw..(l + 1) * nw]) {
            *o ^= *dv;
        }
        xor_top_bits(a, l, out);
    }
    let live = Live::new(n, copies, &[], l)?;
    let above = (first, ARITY);
    carry_from(s, &live, above, l, g, p, a.len(), out, ar.rest())
}

/// The planes a first-level node of [`msb_public_run`] reads: the public `a` and `d`, this
/// party's shares of `m` (rows `base..`) and of the node's monomials (from row 0 of `monos`).
struct PublicPlanes<'a> {
    a: &'a [u64],
    d: &'a [u64],
    m: &'a [u64],
    monos: &'a [u64],
    nw: usize,
    base: usize,
}

/// Words per block of [`first_node`] (small: the firmware runs it on its stack).
const NODE_BLOCK: usize = 16;

/// This party's shares of a first-level node's `(G, P)` (rows `j` of `g`, `p`) over its
/// leaf positions `i`: `g_i = a_i b_i`, `p_i = a_i ^ b_i` with `b_i = d_i ^ m_i`, so a
/// product of factors over distinct positions is `prod_j (u_j ^ m_j)` for public `u_j`,
/// which is `XOR over subsets T of (AND of u_j outside T) & [AND of m_j in T]`. Blocks of
/// words, one straight pass per subset.
fn first_node(p0: bool, nd: Node, pl: &PublicPlanes<'_>, j: usize, g: &mut [u64], p: &mut [u64]) {
    let (s, nw) = (nd.size, pl.nw);
    let all = ((1u16 << s) - 1) as u8;
    let mut w0 = 0;
    while w0 < nw {
        let len = NODE_BLOCK.min(nw - w0);
        let row = |v: &[u64], i: usize| -> [u64; NODE_BLOCK] {
            let mut r = [0u64; NODE_BLOCK];
            r[..len].copy_from_slice(&v[(pl.base + i) * nw + w0..][..len]);
            r
        };
        let (mut a, mut d, mut m) = (
            [[0u64; NODE_BLOCK]; 4],
            [[0u64; NODE_BLOCK]; 4],
            [[0u64; NODE_BLOCK]; 4],
        );
        for i in 0..s {
            (a[i], d[i], m[i]) = (row(pl.a, i), row(pl.d, i), row(pl.m, i));
        }
        let mut pi = [[0u64; NODE_BLOCK]; 4];
        for i in 0..s {
            for k in 0..len {
                pi[i][k] = a[i][k] ^ d[i][k];
            }
        }
        // XOR over subsets T of `set` of (AND of u outside T) & share(T), into `acc`.
        let expand = |set: u8, u: &[[u64; NODE_BLOCK]; 4], acc: &mut [u64; NODE_BLOCK]| {
            let mut t = set;
            loop {
                let share: Option<&[u64]> = match t.count_ones() {
                    0 => None,
                    1 => Some(&m[t.trailing_zeros() as usize][..len]),
                    _ => Some(&pl.monos[monomial_index(t) * nw + w0..][..len]),
                };
                if share.is_some() || p0 {
                    let mut pubp = [!0u64; NODE_BLOCK];
                    let mut rest = set & !t;
                    while rest != 0 {
                        let r = &u[rest.trailing_zeros() as usize];
                        for k in 0..len {
                            pubp[k] &= r[k];
                        }
                        rest &= rest - 1;
                    }
                    match share {
                        Some(sh) => (0..len).for_each(|k| acc[k] ^= pubp[k] & sh[k]),
                        None => (0..len).for_each(|k| acc[k] ^= pubp[k]),
                    }
                }
                if t == 0 {
                    return;
                }
                t = (t - 1) & set;
            }
        };
        let mut gn = [0u64; NODE_BLOCK];
        for i in 0..s {
            // g_i p_(i+1) .. p_(s-1): the generate factor is a_i (d_i ^ m_i).
            let mut term = [0u64; NODE_BLOCK];
            let mut u = pi;
            u[i] = d[i];
            expand(all & !((1u8 << i) - 1), &u, &mut term);
            for k in 0..len {
                gn[k] ^= a[i][k] & term[k];
            }
        }
        let mut pn = [0u64; NODE_BLOCK];
        if nd.need_p {
            expand(all, &pi, &mut pn);
        }
        g[j * nw + w0..][..len].copy_from_slice(&gn[..len]);
        p[j * nw + w0..][..len].copy_from_slice(&pn[..len]);
        w0 += len;
    }
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
    2 * n + fanout_scratch_words(n, 2, k)
}

/// The dealer items of [`segments_run`] on `n` values.
pub fn segments_items(n: usize, k: u32) -> heapless::Vec<Item, 16> {
    fanout_items(n, 2, k)
}

/// Cost of [`segments_run`] on `n` values.
pub fn segments_cost(n: usize, k: u32) -> super::Cost {
    fanout_cost(n, 2, k)
}

/// The segment bits of `|x|` against a public threshold `t`, on already-requested
/// material ([`segments_items`]): bits `0..n` of `out` are `[x < -t]`, bits `n..2n` are
/// `[x < t]` (one batch, so one comparison's rounds; P1's half of both is the same
/// string, [`msb_fanout_run`]), coarsened by `shift` bits: each threshold is exact to
/// `2^shift` ring units (it lies in `[t, t + 2^shift)`), and inputs need
/// `|x| + t < ` [`coarse_limit`]`(k, shift)`. Used by GeLU and tanh.
/// Scratch: [`segments_scratch_words`].
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
    // P0 alone moves its share by -t and +t: P1's two copies are equal.
    let off = s.party.share_of_public(s.enc.encode(t)?);
    for (i, v) in AShare::raw_slice(x).iter().enumerate() {
        shifted[i] = v.wrapping_add(off);
        shifted[n + i] = v.wrapping_sub(off);
    }
    coarsen(shifted, shift);
    msb_fanout_run(s, AShare::from_raw_slice(shifted), 2, k, out, ar.rest())
}
