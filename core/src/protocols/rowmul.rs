//! Row-broadcast product: `out_ij = x_ij * r_i` for a shared matrix `x (rows x cols)` and
//! a shared per-row value `r` (softmax normalization, LayerNorm scaling).
//!
//! With a row triple `A (rows x cols)`, `B (rows)`, `C_ij = A_ij B_i`, the parties open
//! `E = x - A` and `F = r - B` in one message:
//! `z_ij = C_ij + E_ij B_i + A_ij F_i (+ E_ij F_i at P0)`, then truncate by `shift`.
//!
//! Cost: 1 round and `8 (rows cols + rows)` payload bytes per party, plus the truncation
//! (1 round, `ceil(rows cols / 8)` bytes). D sends P1 `8 rows cols` (+ truncation) bytes.
//!
//! Valid input range: `|q_ij r_i| < 2^62` ring units before the shift (the faithful
//! truncation's range, see [`super::trunc`]).

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::prg::words_for_bits;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::{trunc, Width};

/// Scratch words for `rows x cols`.
pub fn scratch_words(rows: usize, cols: usize) -> usize {
    let n = rows * cols;
    (2 * n + rows + 2 * (n + rows)).max(trunc::scratch_words(n))
}

/// The dealer items (product and truncation by `shift`).
pub fn items(rows: usize, cols: usize, shift: u32) -> [Item; 2] {
    [
        Item::RowTriple {
            rows: rows as u32,
            cols: cols as u32,
        },
        trunc::item(rows * cols, shift),
    ]
}

/// `out = (x * r broadcast over columns) >> shift` (requests its material).
pub fn rowmul<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    rows: usize,
    cols: usize,
    x: &[AShare],
    r: &[AShare],
    shift: u32,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    s.dealer.request(&items(rows, cols, shift))?;
    run(s, rows, cols, x, r, shift, out, scratch)
}

/// [`rowmul`] on already-requested material.
pub fn run<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    rows: usize,
    cols: usize,
    x: &[AShare],
    r: &[AShare],
    shift: u32,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = rows * cols;
    check_len("row product matrix", n, x.len())?;
    check_len("row product scales", rows, r.len())?;
    check_len("row product output", n, out.len())?;
    {
        let mut ar = Arena::new(scratch);
        let a = ar.take(n)?;
        let b = ar.take(rows)?;
        let c = AShare::raw_slice_mut(out);
        s.dealer.take(
            Item::RowTriple {
                rows: rows as u32,
                cols: cols as u32,
            },
            &mut [&mut *a, &mut *b, &mut *c],
        )?;
        let mine = ar.take(n + rows)?;
        let theirs = ar.take(n + rows)?;
        crate::ring::sub_into(&mut mine[..n], AShare::raw_slice(x), a);
        crate::ring::sub_into(&mut mine[n..], AShare::raw_slice(r), b);
        s.peer.exchange_u64(mine, theirs)?;
        crate::ring::add_assign(theirs, mine);
        let (e, f) = theirs.split_at(n);
        let p0 = s.party.is_p0();
        for i in 0..rows {
            for j in 0..cols {
                let idx = i * cols + j;
                let mut z = c[idx]
                    .wrapping_add(e[idx].wrapping_mul(b[i]))
                    .wrapping_add(a[idx].wrapping_mul(f[i]));
                if p0 {
                    z = z.wrapping_add(e[idx].wrapping_mul(f[i]));
                }
                c[idx] = z;
            }
        }
    }
    trunc::run_by(s, out, shift, scratch)
}

/// [`rowmul`] whose row factor is a product not yet truncated: `r = trunc(v, g)` (faithful,
/// as [`super::trunc`]) from `v` at `g` more fractional bits, and `out = (x r) >> shift`.
/// The truncation of `v` rides in the product's round, as [`super::trunc_square`]'s does:
/// each party opens `L_i - B` (with `L_i` its share of `r` before the wrap correction
/// `c ab`, `c = 2^(64 - g)`) with `x - A` and its wrap bit, and then
/// `x r = (E + A)(F + B) + c ab (E + A)`: `ab E` is local and `ab A` is linear in D's
/// shares of `u A`, `v' A`, `u v' A` ([`Item::TruncRowTriple`]).
/// In a ring of `m < 64` bits (`ring`), `E` is opened modulo `2^m` (`m / 8` bytes per
/// entry; the row values and the wrap bits in full) and the truncation lifts the product,
/// known modulo `2^m`, to full shares ([`super::trunc::run_in`]): valid while every
/// `|x_ij r_i| < 2^(m - 2)` ring units before the shift.
/// Requests its material. Valid input range: `|v| < 2^62 - 2^g` ring units and the
/// product's as [`rowmul`]. Cost: [`cost_pending`] (one round fewer than truncating `v`
/// first).
#[allow(clippy::too_many_arguments)]
pub fn run_pending<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    rows: usize,
    cols: usize,
    x: &[AShare],
    v: &[AShare],
    g: u32,
    shift: u32,
    ring: Width,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = rows * cols;
    check_len("row product matrix", n, x.len())?;
    check_len("row product scales", rows, v.len())?;
    check_len("row product output", n, out.len())?;
    if !(1..=62).contains(&g) {
        return Err(crate::Error::Param(
            "row product: the row factor's shift must be in 1..=62",
        ));
    }
    let it = Item::TruncRowTriple {
        rows: rows as u32,
        cols: cols as u32,
        f: g as u8,
    };
    s.dealer.request(&[it, trunc::item_in(n, shift, ring)])?;
    {
        let nw = words_for_bits(rows);
        let mut ar = Arena::new(scratch);
        let rbits = ar.take(nw)?;
        let uv = ar.take(rows)?;
        let a = ar.take(n)?;
        let b = ar.take(rows)?;
        let c = AShare::raw_slice_mut(out);
        let ua = ar.take(n)?;
        let va = ar.take(n)?;
        let uva = ar.take(n)?;
        s.dealer.take(
            it,
            &mut [
                &mut *rbits,
                &mut *uv,
                &mut *a,
                &mut *b,
                &mut *c,
                &mut *ua,
                &mut *va,
                &mut *uva,
            ],
        )?;
        let mine = ar.take_zeroed(n + rows + nw)?;
        let theirs = ar.take(n + rows + nw)?;
        let l = ar.take(rows)?;
        crate::ring::sub_into(&mut mine[..n], AShare::raw_slice(x), a);
        {
            let (open, bits) = mine[n..].split_at_mut(rows);
            trunc::pending(s.party, AShare::raw_slice(v), g, l, bits);
            crate::ring::sub_into(open, l, b);
            for (w, r) in bits.iter_mut().zip(rbits.iter()) {
                *w ^= *r;
            }
        }
        s.peer
            .exchange_narrow_then_words(mine, theirs, n, ring.entry_bytes())?;
        crate::prg::clear_tail(&mut theirs[n + rows..], rows);
        let (opened, their_bits) = theirs.split_at_mut(n + rows);
        let (mine_open, my_bits) = mine.split_at(n + rows);
        let (alpha_w, beta_w) = match s.party {
            PartyId::P0 => (my_bits, &*their_bits),
            PartyId::P1 => (&*their_bits, my_bits),
        };
        crate::ring::add_assign(opened, mine_open);
        let (e, f) = opened.split_at(n);
        let p0 = s.party.is_p0();
        let cw = 1u64 << (64 - g);
        for i in 0..rows {
            let wrap = trunc::Wrap::at(p0, alpha_w, beta_w, rbits, uv[i], i);
            let ab = wrap.ab();
            for j in 0..cols {
                let idx = i * cols + j;
                // This party's share of ab A (see trunc_square's module docs).
                let aba = wrap.times(a[idx], ua[idx], va[idx], uva[idx]);
                let mut z = c[idx]
                    .wrapping_add(e[idx].wrapping_mul(b[i]))
                    .wrapping_add(a[idx].wrapping_mul(f[i]))
                    .wrapping_add(cw.wrapping_mul(e[idx].wrapping_mul(ab).wrapping_add(aba)));
                if p0 {
                    z = z.wrapping_add(e[idx].wrapping_mul(f[i]));
                }
                c[idx] = z;
            }
        }
    }
    trunc::run_in(s, out, shift, ring, scratch)
}

/// Scratch words of [`run_pending`] for `rows x cols`.
pub fn pending_scratch_words(rows: usize, cols: usize) -> usize {
    let (n, nw) = (rows * cols, words_for_bits(rows));
    (nw + 3 * rows + 4 * n + 2 * (n + rows + nw) + rows).max(trunc::scratch_words(n))
}

/// Cost of [`run_pending`] on `rows x cols` in `ring`.
pub fn cost_pending(rows: usize, cols: usize, ring: Width) -> super::Cost {
    let n = rows * cols;
    let bytes = ring.entry_bytes() as u64 * n as u64 + 8 * (rows + words_for_bits(rows)) as u64;
    super::Cost::new(1, bytes) + trunc::cost(n)
}

/// Cost of [`rowmul`] on `rows x cols`.
pub fn cost(rows: usize, cols: usize) -> super::Cost {
    super::Cost::new(1, 8 * (rows * cols + rows) as u64) + trunc::cost(rows * cols)
}
