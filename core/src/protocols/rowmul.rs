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
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::trunc;

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

/// Cost of [`rowmul`] on `rows x cols`.
pub fn cost(rows: usize, cols: usize) -> super::Cost {
    super::Cost::new(1, 8 * (rows * cols + rows) as u64) + trunc::cost(rows * cols)
}
