//! Square and column-scaled copy of one shared matrix, from one opening:
//! `sq_ij = x_ij^2` and `gx_ij = g_j x_ij` for a shared `x (rows x cols)` and a shared
//! per-column `g` (LayerNorm's deviations, squared for the variance and scaled by `gamma`).
//!
//! With a square-scale quadruple `A (rows x cols)`, `G (cols)`, `C_ij = A_ij^2`,
//! `D_ij = A_ij G_j`, the parties open `E = x - A` and `Gamma = g - G` in one message:
//!
//! `sq_ij = C_ij + 2 E_ij A_ij (+ E_ij^2 at P0)`,
//! `gx_ij = D_ij + E_ij G_j + A_ij Gamma_j (+ E_ij Gamma_j at P0)`.
//!
//! Both products reuse the one opening of `x` (a square and a Beaver product would open
//! it twice, a Beaver product with `g` broadcast to every row would also open `g` once
//! per row): every opened value is masked by a fresh uniform `A` or `G`, used once.
//!
//! The products are left at the inputs' summed fractional bits (no truncation): the caller
//! truncates them, usually together with other values.
//!
//! Cost: 1 round and `8 (rows cols + cols)` payload bytes per party. D sends P1
//! `16 rows cols` bytes. Valid input range: the ring's (products are exact modulo
//! `2^64`); the caller's truncation bounds them.

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

/// The dealer item for `rows x cols`.
pub fn item(rows: usize, cols: usize) -> Item {
    Item::SquareScale {
        rows: rows as u32,
        cols: cols as u32,
    }
}

/// Scratch words for `rows x cols`.
pub fn scratch_words(rows: usize, cols: usize) -> usize {
    let n = rows * cols;
    n + cols + 2 * (n + cols)
}

/// `sq = x * x`, `gx = x * g` (broadcast over rows), untruncated; requests its material.
pub fn square_scale<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    rows: usize,
    cols: usize,
    x: &[AShare],
    g: &[AShare],
    sq: &mut [AShare],
    gx: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = rows * cols;
    check_len("square-scale matrix", n, x.len())?;
    check_len("square-scale column factors", cols, g.len())?;
    check_len("square-scale squares", n, sq.len())?;
    check_len("square-scale products", n, gx.len())?;
    s.dealer.request(&[item(rows, cols)])?;
    let mut ar = Arena::new(scratch);
    let a = ar.take(n)?;
    let gm = ar.take(cols)?;
    let c = AShare::raw_slice_mut(sq);
    let d = AShare::raw_slice_mut(gx);
    s.dealer
        .take(item(rows, cols), &mut [&mut *a, &mut *gm, &mut *c, &mut *d])?;
    let mine = ar.take(n + cols)?;
    let theirs = ar.take(n + cols)?;
    crate::ring::sub_into(&mut mine[..n], AShare::raw_slice(x), a);
    crate::ring::sub_into(&mut mine[n..], AShare::raw_slice(g), gm);
    s.peer.exchange_u64(mine, theirs)?;
    crate::ring::add_assign(theirs, mine);
    let (e, gamma) = theirs.split_at(n);
    let p0 = s.party.is_p0();
    for i in 0..rows {
        for j in 0..cols {
            let idx = i * cols + j;
            let (ev, av) = (e[idx], a[idx]);
            let mut z = c[idx].wrapping_add(ev.wrapping_mul(av).wrapping_mul(2));
            let mut w = d[idx]
                .wrapping_add(ev.wrapping_mul(gm[j]))
                .wrapping_add(av.wrapping_mul(gamma[j]));
            if p0 {
                z = z.wrapping_add(ev.wrapping_mul(ev));
                w = w.wrapping_add(ev.wrapping_mul(gamma[j]));
            }
            c[idx] = z;
            d[idx] = w;
        }
    }
    Ok(())
}

/// Cost of [`square_scale`] on `rows x cols`.
pub fn cost(rows: usize, cols: usize) -> super::Cost {
    super::Cost::new(1, 8 * (rows * cols + cols) as u64)
}
