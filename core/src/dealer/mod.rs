//! Correlated randomness from the dealer D.
//!
//! D shares a ChaCha seed with each party. P0 expands *all* of its material from its
//! seed; P1 expands the random half of its material from its seed and receives only
//! *corrections* from D (for a Beaver triple, `c1 = a*b - c0`), which halves D's traffic
//! compared with sending every share.
//!
//! Material is consumed in requests: a party announces the items of its next request
//! ([`Dealer::request`]), then takes them in that order ([`Dealer::take`]). Both parties
//! send their requests to D, which checks they are the same (kind, shape and sequence
//! number) before generating anything, and each party checks that what it takes is what it
//! announced: any mismatch is an error on both sides, never silent garbage.
//!
//! What each party draws, and in which order, is the [`layout`] of an item; D replays the
//! same draws ([`server`], feature `alloc`) so its corrections line up with P1's stream.

mod client;
pub mod draw;
pub mod gen;
pub mod limits;
pub mod material;
pub mod prefetch;
#[cfg(feature = "alloc")]
pub mod server;

pub use client::{recv_correction, DealerClient};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::party::PartyId;
use crate::prg::words_for_bits;
use crate::transport::Stats;

/// Version of the dealer and party wire protocol; both ends must agree.
pub const PROTOCOL_VERSION: u16 = 13;

/// Most items in one request.
pub const MAX_ITEMS: usize = 24;

/// One kind of correlated randomness, with its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Item {
    /// `n` elementwise Beaver triples `(a, b, c = a*b)`.
    Triple {
        /// Elements.
        n: u32,
    },
    /// `n` square pairs `(a, c = a^2)`.
    Square {
        /// Elements.
        n: u32,
    },
    /// A matrix triple `A (m x k)`, `B (k x n)`, `C = A B`.
    MatTriple {
        /// Rows of A.
        m: u32,
        /// Inner dimension.
        k: u32,
        /// Columns of B.
        n: u32,
    },
    /// `batch` independent matrix triples in one item (all heads of an attention layer):
    /// `A (batch x m x k)`, `B (batch x k x n)`, `C_b = A_b B_b`.
    MatTriples {
        /// Products.
        batch: u32,
        /// Rows of each A.
        m: u32,
        /// Inner dimension.
        k: u32,
        /// Columns of each B.
        n: u32,
    },
    /// The fixed mask `B (k x n)` of weight `id`, drawn once per model load from the
    /// weight's own PRG stream (no corrections: each party draws its share).
    WeightMask {
        /// Weight id, unique per session.
        id: u32,
        /// Rows.
        k: u32,
        /// Columns.
        n: u32,
    },
    /// The fixed mask `B (k x n)` of a weight that P0 owns in the clear: P0 draws all of
    /// `B` from the weight's stream, P1 holds nothing of it (see
    /// [`crate::protocols::weight::setup_owned`]).
    WeightMaskOwned {
        /// Weight id, unique per session.
        id: u32,
        /// Rows.
        k: u32,
        /// Columns.
        n: u32,
    },
    /// A fresh `A (m x k)` and `C = A B` for the fixed mask `B` of weight `id`.
    WeightTriple {
        /// Weight id (registered by a [`Item::WeightMask`]).
        id: u32,
        /// Rows of A.
        m: u32,
        /// Inner dimension (rows of B).
        k: u32,
        /// Columns of B.
        n: u32,
    },
    /// A fresh mask for one product with a weight that P0 owns in the clear
    /// ([`crate::protocols::weight::apply_owned`]): P1 draws `A (m x k)`, P0 holds no
    /// share of it, and both get shares of `C = A B` for the weight's mask `B` (drawn from
    /// P0's stream of weight `id`). Before the online phase P1 turns its `C` share into
    /// `A F + C` (see [`Dealer::prepared_weights`]). With `onehot`, `A` is drawn as
    /// [`Fill::OnehotMask`] of 32 bits (for a 0/1 input opened in 4 bytes per entry).
    OwnedTriple {
        /// Weight id (its mask `B` is P0's draw of [`Item::WeightMaskOwned`]).
        id: u32,
        /// Rows of A.
        m: u32,
        /// Inner dimension (rows of B).
        k: u32,
        /// Columns of B.
        n: u32,
        /// P1's rows are a 0/1 matrix opened modulo `2^32`
        /// ([`crate::protocols::weight::apply_owned_onehot`]).
        onehot: bool,
    },
    /// A fresh mask for `m` lookups in a table that P0 owns in the clear
    /// ([`crate::protocols::lookup`]): the table (weight `id`, `k x n`) is indexed by
    /// `t = h S + l` with `S = ceil(sqrt k)`; P1 draws one-hot masks `a` (of `h`) and `b`
    /// (of `l`), `m x S` each, as [`Fill::OnehotMask`] of 32 bits, P0 holds no share of
    /// them, and both get shares of `G_b[i][h] = sum_l b_il B[hS + l]` and
    /// `G_a[i][l] = sum_h a_ih B[hS + l]` (`m x S x n` each) and of
    /// `K[i] = sum_h a_ih G_b[i][h]` (`m x n`) for the weight's mask `B`. Before the
    /// online phase P1 adds the same sums over its `F = W - B` (see
    /// [`Dealer::prepared_weights`]).
    OwnedLookup {
        /// Weight id (its mask `B` is P0's draw of [`Item::WeightMaskOwned`]).
        id: u32,
        /// Lookups (table rows looked up).
        m: u32,
        /// Rows of the table (`V`).
        k: u32,
        /// Columns of the table.
        n: u32,
    },
    /// Faithful-truncation material for `n` elements: private bits `u` (P0), `v` (P1)
    /// and additive shares of `u*v` mod `2^f`.
    Trunc {
        /// Elements.
        n: u32,
        /// Bits of the shares of `u v'` needed: the shift in the full ring, `64 - m + shift`
        /// from a ring of `m` bits ([`crate::protocols::trunc::item_in`]).
        f: u8,
    },
    /// A faithful truncation fused with the square of its result
    /// ([`crate::protocols::trunc_square`]): [`Item::Trunc`]'s bits `u` (P0), `v'` (P1) and
    /// shares of `u v'` mod `2^f`, a square pair `(A, A^2)`, and shares of `u A`, `v' A`,
    /// `u v' A` mod `2^f`.
    TruncSquare {
        /// Elements.
        n: u32,
        /// Fractional bits removed.
        f: u8,
    },
    /// Products of privately held bits, `planes` rows of `copies * bits` each, in which
    /// P1's bits repeat every `bits` positions: P0 gets `u` (`planes` rows of
    /// `ceil(copies bits / 64)` words), P1 gets `v` (`planes` rows of `ceil(bits / 64)`
    /// words), both get XOR shares of `u & rep(v)`, where `rep` repeats each row's first
    /// `bits` bits `copies` times ([`crate::bits::repeat_bits`]), and XOR shares of the
    /// products of masks the carry tree's first level needs
    /// ([`crate::protocols::compare::first_level_monomials`] planes). The leaves and first
    /// level of [`crate::protocols::compare`], where P1's half of one value serves several
    /// thresholds.
    PrivAnd {
        /// Bit planes (rows).
        planes: u32,
        /// P1's bits per row.
        bits: u32,
        /// Times P1's bits repeat in a row (at least 1).
        copies: u32,
    },
    /// One level of the comparison's carry tree on `groups` groups, `words` words per bit
    /// plane ([`crate::protocols::compare`]): XOR masks of every factor each node opens,
    /// and XOR shares of the products of two or more masks its terms need.
    CarryLevel {
        /// Words per bit plane (64 elements each).
        words: u32,
        /// Groups entering the level (2..=63).
        groups: u8,
    },
    /// Material to multiply `m` XOR-shared bits per element by `uses` shared values per
    /// element (and to convert the bits to arithmetic shares, also with `uses = 0`):
    /// random bits `r` (XOR shares), `[r]` (additive), and per use a random `B` per
    /// element with `[r B]`.
    BitMul {
        /// Elements (values).
        n: u32,
        /// Bits per element.
        m: u16,
        /// Values each bit is multiplied by, one after the other.
        uses: u8,
    },
    /// Row-broadcast triples: `A (rows x cols)`, `B (rows)`, `C_ij = A_ij B_i`.
    RowTriple {
        /// Rows.
        rows: u32,
        /// Columns.
        cols: u32,
    },
    /// [`Item::BitMul`] with two uses whose second value is still to be truncated
    /// ([`crate::protocols::bitmul::again_pending`]): its slots, then [`Item::Trunc`]'s bits
    /// `u` (P0), `v'` (P1) and shares of `u v'` mod `2^f`, one per value, and shares of
    /// `r u`, `r v'`, `r u v'` mod `2^f` for every bit `r` of the bits' mask.
    BitMulTrunc {
        /// Values.
        n: u32,
        /// Bits per value.
        m: u16,
        /// Fractional bits the second value's truncation removes.
        f: u8,
    },
    /// Row-broadcast triples whose row factor is still to be truncated
    /// ([`crate::protocols::rowmul::run_pending`]): [`Item::Trunc`]'s bits `u` (P0), `v'`
    /// (P1) and shares of `u v'` mod `2^f`, one per row; [`Item::RowTriple`]'s `A`, `B`,
    /// `C`; and shares of `u_i A_ij`, `v'_i A_ij`, `u_i v'_i A_ij` mod `2^f`.
    TruncRowTriple {
        /// Rows.
        rows: u32,
        /// Columns.
        cols: u32,
        /// Fractional bits the row factor's truncation removes.
        f: u8,
    },
    /// Square-scale quadruples ([`crate::protocols::sqscale`]): `A (rows x cols)`,
    /// `G (cols)`, `C_ij = A_ij^2`, `D_ij = A_ij G_j` (one opening of `x - A` gives both
    /// `x^2` and `x g`).
    SquareScale {
        /// Rows.
        rows: u32,
        /// Columns.
        cols: u32,
    },
    /// A segment select over a Fourier series, sharing one mask ([`crate::protocols::gelu`]):
    /// a uniform `B` per element (the opened `E = x - B` serves the series and both bit
    /// products), two random bits `r_0`, `r_1` per element (XOR shares, bit `j` of element
    /// `i` at `j n + i`) with `[r_j]` and `[r_j B]`, shares of `cos(h w t)`, `sin(h w t)`
    /// for `t = -B mod 2^p`, `w = 2 pi / 2^p`, `h = 1..=k` (laid out as [`Item::Sine`]'s),
    /// and the same times `r_1` (the series multiplied by the second bit without opening it),
    /// and the low `bits` bits of `B >> shift` as bit planes (plane `j`: bit `j` of every
    /// element, `ceil(n / 64)` words; the leaves of the segment comparisons against the
    /// opened `E`) in the form of [`crate::protocols::compare::PublicBits`]: a public `d`
    /// (P0 draws it, P1 receives it), XOR shares of `m = bits ^ d`, and XOR shares of the
    /// products of `m`'s bits within each node of the carry tree's first level.
    SegmentSeries {
        /// Elements.
        n: u32,
        /// Period bits: the period is 2^p ring units.
        p: u8,
        /// Harmonics.
        k: u8,
        /// Fractional bits of the sin/cos shares.
        f: u8,
        /// Bit planes of `B >> shift` (the comparisons' width; 0 for none).
        bits: u8,
        /// Low bits of `B` the planes skip (the comparisons' coarsening).
        shift: u8,
    },
    /// The maximum of four candidates in one round from their six comparison bits
    /// ([`crate::protocols::max4`]), for `groups` groups: random bits `r` for the six
    /// comparison bits of each group (XOR shares, bit `j` of group `g` at `j groups + g`),
    /// a uniform `B` for each of the three differences a group selects among (at
    /// `i groups + g`), and additive shares of every product `m_T` of the `r` bits of a
    /// candidate's three literals (`T` a non-empty subset, 7 per candidate) and of
    /// `m_T B` (at `(7 i + T - 1) groups + g`).
    Max4 {
        /// Groups of four candidates.
        groups: u32,
    },
    /// Exactly masked sine/cosine material: `t` uniform in Z_{2^p} (additively shared mod
    /// 2^p) and additive shares of `cos(2 pi h t / 2^p)`, `sin(2 pi h t / 2^p)` for
    /// `h = 1..=k`, in fixed point with `f` fractional bits.
    Sine {
        /// Elements.
        n: u32,
        /// Period bits: the period is 2^p ring units.
        p: u8,
        /// Harmonics.
        k: u8,
        /// Fractional bits of the sin/cos shares.
        f: u8,
    },
}

/// Alias used in errors: the kind of an item is the item with its shape.
pub type ItemKind = Item;

/// How a slot is drawn from a PRG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Uniform ring words.
    Words,
    /// Packed uniform bits (`nbits` of them; the tail of the last word is zero).
    Bits(usize),
    /// Uniform elements of Z_{2^k} (the low `k` bits).
    Mod(u32),
    /// A uniform `a` of Z_{2^k}, stored as the integer `a - 2^k` (a ring word) when
    /// `a != 0` and as 0 otherwise: the mask of a 0/1 matrix opened modulo `2^k`
    /// ([`crate::protocols::weight::apply_owned_onehot`]), chosen so that the opened
    /// `E = X - a mod 2^k` and the stored mask add up to `X` over the integers.
    OnehotMask(u32),
}

/// Where a party's share of a slot comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The party's own seed (P0 always draws its random shares this way).
    Prg,
    /// Nothing: the party's share is zero (the value belongs to the other party alone).
    /// Consumers may pass an empty buffer for such a slot.
    Zero,
    /// A correction computed by D (only P1 receives corrections), sent as
    /// [`Slot::width`] little-endian bytes per word.
    Dealer,
}

/// One buffer of an item: `len` words, drawn from the parties' seeds or corrected by D.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Words.
    pub len: usize,
    /// How the PRG draw is shaped.
    pub fill: Fill,
    /// Bytes of each word that matter (1..=8): the protocol uses the slot modulo
    /// `2^(8 width)`, so corrections travel and material is stored at this width.
    pub width: u8,
    /// P0's source (never [`Source::Dealer`]).
    pub p0: Source,
    /// P1's source.
    pub p1: Source,
}

impl Slot {
    /// This party's source.
    pub fn source(&self, party: PartyId) -> Source {
        match party {
            PartyId::P0 => self.p0,
            PartyId::P1 => self.p1,
        }
    }

    /// Bytes of this party's share when stored or sent (0 for a [`Source::Zero`] slot).
    pub fn stored_bytes(&self, party: PartyId) -> u64 {
        match self.source(party) {
            Source::Zero => 0,
            _ => self.len as u64 * self.width as u64,
        }
    }
}

const fn words(len: usize) -> Slot {
    Slot {
        len,
        fill: Fill::Words,
        width: 8,
        p0: Source::Prg,
        p1: Source::Prg,
    }
}
const fn corr(len: usize, width: u8) -> Slot {
    Slot {
        len,
        fill: Fill::Words,
        width,
        p0: Source::Prg,
        p1: Source::Dealer,
    }
}
const fn bits(nbits: usize) -> Slot {
    Slot {
        len: words_for_bits(nbits),
        fill: Fill::Bits(nbits),
        width: 8,
        p0: Source::Prg,
        p1: Source::Prg,
    }
}

/// The product of item dimensions, saturating: a decoded item may carry any sizes, and
/// the limits are checked after the layout is known (see [`limits`]).
fn prod(dims: &[usize]) -> usize {
    dims.iter().fold(1usize, |p, d| p.saturating_mul(*d))
}

/// The most slots an item has ([`Item::BitMulTrunc`]).
pub const MAX_SLOTS: usize = 11;

/// The slots of an item, in the order both parties (and D, replaying them) draw them.
pub fn layout(item: &Item) -> heapless::Vec<Slot, MAX_SLOTS> {
    let mut v = heapless::Vec::new();
    let mut push = |s| {
        // MAX_SLOTS is the longest layout (`BitMulTrunc`'s, checked in `limits`' tests).
        let _ = v.push(s);
    };
    match *item {
        Item::Triple { n } => {
            let n = n as usize;
            push(words(n));
            push(words(n));
            push(corr(n, 8));
        }
        Item::Square { n } => {
            push(words(n as usize));
            push(corr(n as usize, 8));
        }
        Item::MatTriple { m, k, n } => {
            let (m, k, n) = (m as usize, k as usize, n as usize);
            push(words(prod(&[m, k])));
            push(words(prod(&[k, n])));
            push(corr(prod(&[m, n]), 8));
        }
        Item::MatTriples { batch, m, k, n } => {
            let (b, m, k, n) = (batch as usize, m as usize, k as usize, n as usize);
            push(words(prod(&[b, m, k])));
            push(words(prod(&[b, k, n])));
            push(corr(prod(&[b, m, n]), 8));
        }
        Item::WeightMask { k, n, .. } => push(words(prod(&[k as usize, n as usize]))),
        Item::WeightMaskOwned { k, n, .. } => push(Slot {
            p1: Source::Zero,
            ..words(prod(&[k as usize, n as usize]))
        }),
        Item::WeightTriple { m, k, n, .. } => {
            let (m, k, n) = (m as usize, k as usize, n as usize);
            push(words(prod(&[m, k])));
            push(corr(prod(&[m, n]), 8));
        }
        Item::OwnedTriple {
            m, k, n, onehot, ..
        } => {
            let (m, k, n) = (m as usize, k as usize, n as usize);
            let fill = if onehot {
                Fill::OnehotMask(crate::protocols::weight::ONEHOT_BITS)
            } else {
                Fill::Words
            };
            push(Slot {
                p0: Source::Zero,
                fill,
                ..words(prod(&[m, k]))
            });
            push(corr(prod(&[m, n]), 8));
        }
        Item::OwnedLookup { m, k, n, .. } => {
            let (m, n) = (m as usize, n as usize);
            let side = crate::protocols::lookup::side(k as usize);
            let mask = Slot {
                p0: Source::Zero,
                fill: Fill::OnehotMask(crate::protocols::weight::ONEHOT_BITS),
                ..words(prod(&[m, side]))
            };
            push(mask);
            push(mask);
            push(corr(prod(&[m, side, n]), 8));
            push(corr(prod(&[m, side, n]), 8));
            push(corr(prod(&[m, n]), 8));
        }
        Item::Trunc { n, f } => {
            push(bits(n as usize));
            push(corr(n as usize, (f as u32).div_ceil(8).clamp(1, 8) as u8));
        }
        Item::TruncSquare { n, f } => {
            let (n, w) = (n as usize, (f as u32).div_ceil(8).clamp(1, 8) as u8);
            push(bits(n));
            push(corr(n, w));
            push(words(n));
            push(corr(n, 8));
            push(corr(n, w));
            push(corr(n, w));
            push(corr(n, w));
        }
        Item::PrivAnd {
            planes,
            bits,
            copies,
        } => {
            let row = words_for_bits(prod(&[bits as usize, copies as usize]));
            let all = prod(&[planes as usize, row]);
            let w = prod(&[planes as usize, words_for_bits(bits as usize)]);
            push(Slot {
                p1: Source::Zero,
                ..words(all)
            });
            push(Slot {
                p0: Source::Zero,
                ..words(w)
            });
            push(corr(all, 8));
            let monos = crate::protocols::compare::first_level_monomials(planes as usize);
            push(corr(prod(&[monos, row]), 8));
        }
        Item::CarryLevel { words: w, groups } => {
            let (f, m) = crate::protocols::compare::level_words(groups as usize);
            push(words(prod(&[f, w as usize])));
            push(corr(prod(&[m, w as usize]), 8));
        }
        Item::BitMul { n, m, uses } => {
            let (n, nm) = (n as usize, prod(&[n as usize, m as usize]));
            push(bits(nm));
            push(corr(nm, 8));
            for _ in 0..uses {
                push(words(n));
                push(corr(nm, 8));
            }
        }
        Item::RowTriple { rows, cols } => {
            let (r, c) = (rows as usize, cols as usize);
            push(words(prod(&[r, c])));
            push(words(r));
            push(corr(prod(&[r, c]), 8));
        }
        Item::BitMulTrunc { n, m, f } => {
            let (n, nm) = (n as usize, prod(&[n as usize, m as usize]));
            let w = (f as u32).div_ceil(8).clamp(1, 8) as u8;
            push(bits(nm));
            push(corr(nm, 8));
            for _ in 0..2 {
                push(words(n));
                push(corr(nm, 8));
            }
            push(bits(n));
            push(corr(n, w));
            push(corr(nm, w));
            push(corr(nm, w));
            push(corr(nm, w));
        }
        Item::TruncRowTriple { rows, cols, f } => {
            let (r, n) = (rows as usize, prod(&[rows as usize, cols as usize]));
            let w = (f as u32).div_ceil(8).clamp(1, 8) as u8;
            push(bits(r));
            push(corr(r, w));
            push(words(n));
            push(words(r));
            push(corr(n, 8));
            push(corr(n, w));
            push(corr(n, w));
            push(corr(n, w));
        }
        Item::SquareScale { rows, cols } => {
            let n = prod(&[rows as usize, cols as usize]);
            push(words(n));
            push(words(cols as usize));
            push(corr(n, 8));
            push(corr(n, 8));
        }
        Item::SegmentSeries { n, k, bits: b, .. } => {
            let n = n as usize;
            let trig = prod(&[2, k as usize, n]);
            push(words(n));
            push(bits(prod(&[2, n])));
            push(corr(prod(&[2, n]), 8));
            push(corr(prod(&[2, n]), 8));
            push(corr(trig, 8));
            push(corr(trig, 8));
            let planes = words_for_bits(n);
            let monos = crate::protocols::compare::first_monomials(b as u32);
            push(corr(prod(&[b as usize, planes]), 8));
            push(corr(prod(&[b as usize, planes]), 8));
            push(corr(prod(&[monos, planes]), 8));
        }
        Item::Max4 { groups } => {
            let g = groups as usize;
            let monos = prod(&[crate::protocols::max4::MONOMIALS, g]);
            push(bits(prod(&[crate::protocols::max4::PAIRS.len(), g])));
            push(words(prod(&[crate::protocols::max4::LITERALS.len(), g])));
            push(corr(monos, 8));
            push(corr(monos, 8));
        }
        Item::Sine { n, p, k, .. } => {
            push(Slot {
                fill: Fill::Mod(p as u32),
                width: (p as u32).div_ceil(8).clamp(1, 8) as u8,
                ..words(n as usize)
            });
            push(corr(prod(&[2, k as usize, n as usize]), 8));
        }
    }
    v
}

/// Largest `uses` of a [`Item::BitMul`] (slots are bounded).
pub const MAX_BITMUL_USES: u8 = 2;

/// Bytes of corrections D sends P1 for an item (saturating: an item decoded from a peer
/// may announce more than fits in `u64`).
pub fn correction_bytes(item: &Item) -> u64 {
    layout(item)
        .iter()
        .filter(|s| s.p1 == Source::Dealer)
        .map(|s| (s.len as u64).saturating_mul(s.width as u64))
        .fold(0u64, u64::saturating_add)
}

/// Bytes of one party's material of an item, as stored in a pass (see [`material`]).
pub fn stored_bytes(item: &Item, party: PartyId) -> u64 {
    layout(item).iter().map(|s| s.stored_bytes(party)).sum()
}

/// A request: the next items a party will consume, with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Position in the session's request stream (0, 1, 2, ...).
    pub seq: u32,
    /// The items, in consumption order.
    pub items: heapless::Vec<Item, MAX_ITEMS>,
}

/// A party's source of correlated randomness.
pub trait Dealer {
    /// Which party this source serves.
    fn party(&self) -> PartyId;

    /// Announces the items of the next request (sent to D for checking and generation).
    fn request(&mut self, items: &[Item]) -> Result<()>;

    /// Takes the next announced item into `bufs` (one buffer per [`layout`] slot, each of
    /// the slot's length). Errors if `item` is not the next announced one.
    fn take(&mut self, item: Item, bufs: &mut [&mut [u64]]) -> Result<()>;

    /// Checks the last request was fully consumed and ends the stream.
    fn finish(&mut self) -> Result<()>;

    /// Traffic with D so far.
    fn stats(&self) -> Stats;

    /// Whether P1's [`Item::OwnedTriple`] material already holds `A F + C` in its second
    /// slot (and its [`Item::OwnedLookup`] material the sums over `F`, see
    /// [`crate::protocols::lookup::prepare`]) (material prepared ahead of the online phase, [`material`]) rather than D's
    /// raw `C` (a live stream, where the consumer multiplies `A F` itself).
    fn prepared_weights(&self) -> bool {
        false
    }
}

impl<D: Dealer + ?Sized> Dealer for &mut D {
    fn party(&self) -> PartyId {
        (**self).party()
    }
    fn request(&mut self, items: &[Item]) -> Result<()> {
        (**self).request(items)
    }
    fn take(&mut self, item: Item, bufs: &mut [&mut [u64]]) -> Result<()> {
        (**self).take(item, bufs)
    }
    fn finish(&mut self) -> Result<()> {
        (**self).finish()
    }
    fn stats(&self) -> Stats {
        (**self).stats()
    }
    fn prepared_weights(&self) -> bool {
        (**self).prepared_weights()
    }
}

/// Handshake from a party to D.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyHello {
    /// [`PROTOCOL_VERSION`] of the party.
    pub version: u16,
    /// Which party connects.
    pub party: PartyId,
    /// The session token P1 drew for this session (D pairs P0 and P1 by it, never by
    /// arrival order); zeros for a single-session dealer.
    pub token: [u8; 16],
    /// The session to resume (P1 reconnecting to an existing session), if any.
    pub resume: Option<u64>,
}

impl PartyHello {
    /// The hello of a single-session party: no token, nothing to resume.
    pub fn new(party: PartyId) -> Self {
        PartyHello {
            version: PROTOCOL_VERSION,
            party,
            token: [0; 16],
            resume: None,
        }
    }
}

/// D's answer: the party's seed and the session id both parties must share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealerHello {
    /// [`PROTOCOL_VERSION`] of the dealer.
    pub version: u16,
    /// Random session id, the same for P0 and P1.
    pub session: u64,
    /// The party's seed shared with D.
    pub seed: crate::prg::Seed,
}
