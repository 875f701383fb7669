//! Elementwise square of a shared vector.
//!
//! With a square pair `(a, c = a^2)` the parties open only `E = x - a`; then
//! `x^2 = E^2 + 2 E a + a^2`, so `z_i = c_i + 2 E a_i (+ E^2 at P0)`, truncated for
//! fixed point.
//!
//! Cost per party for `n` elements: 1 round and `8n` payload bytes, plus the truncation
//! (1 round, `ceil(n/8)` bytes). D sends P1 `8n` bytes (+ `n ceil(f/8)`).
//!
//! Valid input range: `|x| < 2^15` at `f = 16` (the square must stay below `2^62` ring units
//! before its truncation, see [`super::trunc`]).

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::{trunc, Width};

/// Scratch words for `n` elements.
pub fn scratch_words(n: usize) -> usize {
    (4 * n).max(trunc::scratch_words(n))
}

/// `out = x^2` untruncated (twice the input's fractional bits): the opening alone, for a
/// consumer that truncates later (such as [`super::trunc_square`]). Cost: 1 round, `8n`
/// bytes ([`wide_cost`]).
pub fn square_wide<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    square_wide_in(s, x, Width::FULL, out, scratch)
}

/// [`square_wide`] with the opening modulo `2^m` (`m` = `ring`'s bits): `out` is correct
/// modulo `2^m` (for a consumer that truncates from that ring, such as
/// [`super::trunc_square::trunc_square_in`]). Cost: [`wide_cost_in`].
pub fn square_wide_in<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    ring: Width,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    check_len("square output", x.len(), out.len())?;
    s.dealer.request(&[Item::Square { n: x.len() as u32 }])?;
    open_square(s, x, ring, out, scratch)
}

/// Cost of [`square_wide`] on `n` elements.
pub fn wide_cost(n: usize) -> super::Cost {
    wide_cost_in(n, Width::FULL)
}

/// Cost of [`square_wide_in`] on `n` elements.
pub fn wide_cost_in(n: usize, ring: Width) -> super::Cost {
    super::Cost::new(1, ring.entry_bytes() as u64 * n as u64)
}

/// Fixed-point square `out = x^2` (truncated by the session's `f` bits).
pub fn square<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let f = s.enc.frac_bits();
    square_by(s, x, out, f, scratch)
}

/// Square truncated by `shift` bits (for values at other fractional bits).
pub fn square_by<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    out: &mut [AShare],
    shift: u32,
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    check_len("square output", n, out.len())?;
    if s.trunc_mode == trunc::TruncMode::Faithful {
        s.dealer
            .request(&[Item::Square { n: n as u32 }, trunc::item(n, shift)])?;
    } else {
        s.dealer.request(&[Item::Square { n: n as u32 }])?;
    }
    open_square(s, x, Width::FULL, out, scratch)?;
    trunc::run_by(s, out, shift, scratch)
}

/// The square pair's opening: `out = x^2` untruncated, on requested material.
fn open_square<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    ring: Width,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    let mut ar = Arena::new(scratch);
    let a = ar.take(n)?;
    let c = ar.take(n)?;
    s.dealer
        .take(Item::Square { n: n as u32 }, &mut [&mut *a, &mut *c])?;
    let mine = ar.take(n)?;
    let theirs = ar.take(n)?;
    let xs = AShare::raw_slice(x);
    for i in 0..n {
        mine[i] = xs[i].wrapping_sub(a[i]);
    }
    s.peer.exchange_narrow(mine, theirs, ring.entry_bytes())?;
    let p0 = s.party.is_p0();
    let o = AShare::raw_slice_mut(out);
    for i in 0..n {
        let e = mine[i].wrapping_add(theirs[i]);
        let mut z = c[i].wrapping_add(e.wrapping_mul(a[i]).wrapping_mul(2));
        if p0 {
            z = z.wrapping_add(e.wrapping_mul(e));
        }
        o[i] = z;
    }
    Ok(())
}

/// Cost of [`square`]/[`square_by`] on `n` elements (faithful truncation).
pub fn cost(n: usize) -> super::Cost {
    super::Cost::new(1, 8 * n as u64) + trunc::cost(n)
}
