//! The carry tree's first level, computed locally from the leaves' openings.
//!
//! In the leaf round P0 opens `alpha = a ^ u` and P1 `beta = b ^ v` (masks `u`, `v` from
//! D). A first-level node combines up to four leaf positions `i` with the generate and
//! propagate bits `g_i = a_i b_i`, `p_i = a_i ^ b_i`:
//! `G = XOR_i g_i p_(i+1) .. p_(s-1)` and `P = p_0 .. p_(s-1)`. With `w_j = u_j ^ v_j`,
//!
//! * `p_j = pi_j ^ w_j` for the public `pi_j = alpha_j ^ beta_j`, and
//! * `g_i = alpha_i beta_i ^ alpha_i v_i ^ beta_i u_i ^ u_i v_i`,
//!
//! so each term is a sum of public products times one of `w_T`, `v_i w_T`, `u_i w_T`,
//! `u_i v_i w_T` over subsets `T` of the node's positions: D shares those monomials
//! ([`monomials`], in [`crate::dealer::Item::PrivAnd`]), the single ones are the parties'
//! own masks, and the node's outputs are local. The leaf round thus also delivers the first
//! level: one round and its factors' bits fewer per comparison.

use super::{Node, ARITY};

/// Which product of masks a monomial is (with `w_T = AND of u_j ^ v_j over T`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `w_T`, `|T| >= 2`.
    W,
    /// `v_i w_T`, `T` non-empty.
    V,
    /// `u_i w_T`, `T` non-empty.
    U,
    /// `u_i v_i w_T`, `T` non-empty.
    Uv,
}

/// The monomials D shares for a node of `size` positions, in layout order: `(kind, i, T)`.
fn list(size: usize) -> heapless::Vec<(Kind, u8, u8), 48> {
    let mut v = heapless::Vec::new();
    let all = ((1u16 << size) - 1) as u8;
    for t in (0..=all).filter(|t| t.count_ones() >= 2) {
        let _ = v.push((Kind::W, 0, t));
    }
    for i in 0..size {
        let above = all & !((2u16 << i) - 1) as u8;
        for t in (1..=above).filter(|t| t & !above == 0) {
            for kind in [Kind::V, Kind::U, Kind::Uv] {
                let _ = v.push((kind, i as u8, t));
            }
        }
    }
    v
}

/// Monomial planes of a first level over `l` leaf positions.
pub fn monomials(l: usize) -> usize {
    // Closed form over the level's full nodes and its last one: `l` comes from a request
    // and may be huge before the dealer checks it.
    let (full, last) = (l / ARITY, l % ARITY);
    full.saturating_mul(list(ARITY).len())
        .saturating_add(list(last).len())
}

/// Index table of a node's monomials: `[kind][i][T]`.
struct Index([[[u8; 16]; 4]; 4]);

impl Index {
    fn new(size: usize) -> Self {
        let mut t = [[[0u8; 16]; 4]; 4];
        for (at, (kind, i, set)) in list(size).iter().enumerate() {
            t[*kind as usize][*i as usize][*set as usize] = at as u8;
        }
        Index(t)
    }
    fn get(&self, kind: Kind, i: usize, set: u8) -> usize {
        self.0[kind as usize][i][set as usize] as usize
    }
}

/// D's side: P1's shares `monos1` of every node's monomials from P0's masks `u` (`l`
/// planes of `row` words), P1's masks `v` (repeated to the same layout) and P0's shares
/// `monos0`.
pub fn corrections(l: usize, row: usize, u: &[u64], v: &[u64], monos0: &[u64], monos1: &mut [u64]) {
    let mut at = 0;
    for (base, nd) in Node::of_level(l) {
        for (kind, i, set) in list(nd.size) {
            for w in 0..row {
                let bit = |src: &[u64], j: usize| src[(base + j) * row + w];
                let mut prod = !0u64;
                for j in (0..nd.size).filter(|j| set >> j & 1 == 1) {
                    prod &= bit(u, j) ^ bit(v, j);
                }
                let i = i as usize;
                prod &= match kind {
                    Kind::W => !0,
                    Kind::V => bit(v, i),
                    Kind::U => bit(u, i),
                    Kind::Uv => bit(u, i) & bit(v, i),
                };
                monos1[at * row + w] = prod ^ monos0[at * row + w];
            }
            at += 1;
        }
    }
}

/// One word of every plane a node reads: the opened `alpha`, `beta`, this party's `u`
/// (zero at P1), `v` (zero at P0), its shares of `u_i v_i`, and the node's monomials.
pub struct Leaves<'a> {
    /// Whether this party is P0 (it adds the public terms).
    pub p0: bool,
    /// `alpha`, `beta`, `u`, `v`, `[u v]`: `l` planes of `row` words each.
    pub planes: [&'a [u64]; 5],
    /// Monomial shares, node by node ([`monomials`] planes of `row` words).
    pub monos: &'a [u64],
    /// Words per plane.
    pub row: usize,
}

/// This party's shares of the first level's `(G, P)` for every node and word: node `j`
/// goes to rows `j` of `g` and `p`. `keep(i, w)` masks the bits of word `w` whose leaf `i`
/// generates (the others' terms are cleared: their leaves were not opened).
pub fn level(
    l: &Leaves<'_>,
    positions: usize,
    keep: &dyn Fn(usize, usize) -> u64,
    g: &mut [u64],
    p: &mut [u64],
) {
    let row = l.row;
    let mut at = 0;
    for (j, (base, nd)) in Node::of_level(positions).enumerate() {
        let index = Index::new(nd.size);
        for w in 0..row {
            let get = |plane: usize, i: usize| l.planes[plane][(base + i) * row + w];
            let mono = |k: usize| l.monos[(at + k) * row + w];
            let keep = |i: usize| keep(base + i, w);
            let mono = |kind, i, set| mono(index.get(kind, i, set));
            let (gn, pn) = node(l.p0, nd, &get, &mono, &keep);
            g[j * row + w] = gn;
            p[j * row + w] = pn;
        }
        at += list(nd.size).len();
    }
}

/// One node's `(G, P)` on one word (see the module docs).
fn node(
    p0: bool,
    nd: Node,
    get: &dyn Fn(usize, usize) -> u64,
    mono: &dyn Fn(Kind, usize, u8) -> u64,
    keep: &dyn Fn(usize) -> u64,
) -> (u64, u64) {
    let (alpha, beta, u, v, uv) = (0, 1, 2, 3, 4);
    let pi = |j: usize| get(alpha, j) ^ get(beta, j);
    // Shares of w_T, v_i w_T, u_i w_T, u_i v_i w_T (T may be empty).
    let w_t = |t: u8| match t.count_ones() {
        0 if p0 => !0u64,
        0 => 0,
        1 if p0 => get(u, t.trailing_zeros() as usize),
        1 => get(v, t.trailing_zeros() as usize),
        _ => mono(Kind::W, 0, t),
    };
    let times = |kind: Kind, i: usize, t: u8| match (kind, t) {
        (Kind::V, 0) => get(v, i),
        (Kind::U, 0) => get(u, i),
        (Kind::Uv, 0) => get(uv, i),
        _ => mono(kind, i, t),
    };
    // XOR over subsets T of `set` of (AND of pi outside T) & share(T).
    let expand = |set: u8, share: &dyn Fn(u8) -> u64| {
        let mut acc = 0u64;
        let mut t = set;
        loop {
            let mut pubp = !0u64;
            let mut rest = set & !t;
            while rest != 0 {
                pubp &= pi(rest.trailing_zeros() as usize);
                rest &= rest - 1;
            }
            acc ^= pubp & share(t);
            if t == 0 {
                return acc;
            }
            t = (t - 1) & set;
        }
    };
    let all = ((1u16 << nd.size) - 1) as u8;
    let mut gn = 0u64;
    for i in 0..nd.size {
        let above = all & !((2u16 << i) - 1) as u8;
        let (a, b) = (get(alpha, i), get(beta, i));
        // g_i = alpha beta ^ alpha v ^ beta u ^ u v, times p over the positions above i.
        let share = |t: u8| {
            (a & b & w_t(t))
                ^ (a & times(Kind::V, i, t))
                ^ (b & times(Kind::U, i, t))
                ^ times(Kind::Uv, i, t)
        };
        gn ^= expand(above, &share) & keep(i);
    }
    let pn = if nd.need_p { expand(all, &w_t) } else { 0 };
    (gn, pn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monomial_counts_are_the_sums_over_the_level_nodes() {
        for l in 0..200 {
            let by_node: usize = Node::of_level(l).map(|(_, nd)| list(nd.size).len()).sum();
            assert_eq!(monomials(l), by_node, "{l} leaf positions");
            let k = l as u32 + 1;
            let by_node: usize = Node::of_level(l)
                .map(|(_, nd)| (1usize << nd.size) - nd.size - 1)
                .sum();
            assert_eq!(super::super::first_monomials(k), by_node, "k = {k}");
        }
        // Sizes from an unchecked request are answered at once.
        assert!(monomials(usize::MAX) > 0);
        assert!(super::super::first_monomials(u32::MAX) > 0);
    }
}
