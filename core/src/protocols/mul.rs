//! Elementwise product of two shared vectors (Beaver).
//!
//! With a triple `(a, b, c = a b)` from the dealer, the parties open `E = x - a` and
//! `F = y - b` in one message (both uniformly masked), then
//! `z_i = c_i + E b_i + a_i F (+ E F at P0)`. For fixed-point inputs the product has 2f
//! fractional bits and is truncated ([`super::trunc`]).
//!
//! Cost per party for `n` elements: 1 round and `16n` payload bytes for the product, plus
//! the truncation (1 round, `ceil(n/8)` bytes) when truncating. D sends P1 `8n` bytes of
//! triple corrections (+ `n ceil(f/8)` for truncation).
//!
//! Valid input range: `mul`/`mul_by` need the product below `2^62` ring units before its
//! truncation (`|x y| < 2^30` for `f = 16` inputs, see [`super::trunc`]); `mul_ring` is exact
//! modulo `2^64` for any inputs.

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::trunc;

/// Scratch words for `n` elements.
pub fn scratch_words(n: usize) -> usize {
    (7 * n).max(trunc::scratch_words(n))
}

/// Fixed-point product `out = x * y` (truncated by the session's `f` bits).
pub fn mul<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    y: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let f = s.enc.frac_bits();
    mul_by(s, x, y, out, f, scratch)
}

/// Product `out = (x * y) >> shift`: for operands with other fractional bits than the
/// session's (e.g. `shift = 28` for two values at 28 fractional bits).
pub fn mul_by<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    y: &[AShare],
    out: &mut [AShare],
    shift: u32,
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    if s.trunc_mode == trunc::TruncMode::Faithful {
        s.dealer
            .request(&[Item::Triple { n: n as u32 }, trunc::item(n, shift)])?;
    } else {
        s.dealer.request(&[Item::Triple { n: n as u32 }])?;
    }
    product(s, x, y, out, scratch)?;
    trunc::run_by(s, out, shift, scratch)
}

/// `out = (x * y + addend) >> shift`: a product plus a local term at the product's scale,
/// truncated once (the addend is a share computed locally, e.g. a public multiple of
/// another share shifted up to the product's fractional bits). Same cost as [`mul_by`]; it
/// saves the product-and-truncation round the addend would otherwise need on its own.
/// The sum must stay below `2^62` ring units (see [`super::trunc`]).
pub fn mul_plus_by<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    y: &[AShare],
    addend: &[AShare],
    out: &mut [AShare],
    shift: u32,
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    check_len("mul addend", n, addend.len())?;
    if s.trunc_mode == trunc::TruncMode::Faithful {
        s.dealer
            .request(&[Item::Triple { n: n as u32 }, trunc::item(n, shift)])?;
    } else {
        s.dealer.request(&[Item::Triple { n: n as u32 }])?;
    }
    product(s, x, y, out, scratch)?;
    for (o, a) in out.iter_mut().zip(addend) {
        *o += *a;
    }
    trunc::run_by(s, out, shift, scratch)
}

/// Ring product `out = x * y` with no truncation (integers, bits, or when the caller
/// truncates later).
pub fn mul_ring<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    y: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    s.dealer.request(&[Item::Triple { n: x.len() as u32 }])?;
    product(s, x, y, out, scratch)
}

/// The Beaver product on already-requested material.
pub(crate) fn product<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    y: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    check_len("mul operand", n, y.len())?;
    check_len("mul output", n, out.len())?;
    let mut ar = Arena::new(scratch);
    let a = ar.take(n)?;
    let b = ar.take(n)?;
    let c = ar.take(n)?;
    s.dealer.take(
        Item::Triple { n: n as u32 },
        &mut [&mut *a, &mut *b, &mut *c],
    )?;
    let mine = ar.take(2 * n)?;
    let theirs = ar.take(2 * n)?;
    let (xs, ys) = (AShare::raw_slice(x), AShare::raw_slice(y));
    for i in 0..n {
        mine[i] = xs[i].wrapping_sub(a[i]);
        mine[n + i] = ys[i].wrapping_sub(b[i]);
    }
    s.peer.exchange_u64(mine, theirs)?;
    let p0 = s.party.is_p0();
    let o = AShare::raw_slice_mut(out);
    for i in 0..n {
        let e = mine[i].wrapping_add(theirs[i]);
        let f = mine[n + i].wrapping_add(theirs[n + i]);
        let mut z = c[i]
            .wrapping_add(e.wrapping_mul(b[i]))
            .wrapping_add(a[i].wrapping_mul(f));
        if p0 {
            z = z.wrapping_add(e.wrapping_mul(f));
        }
        o[i] = z;
    }
    Ok(())
}

/// Cost of [`mul`]/[`mul_by`] on `n` elements (faithful truncation).
pub fn cost(n: usize) -> super::Cost {
    super::Cost::new(1, 16 * n as u64) + trunc::cost(n)
}

/// Cost of [`mul_ring`] on `n` elements.
pub fn cost_ring(n: usize) -> super::Cost {
    super::Cost::new(1, 16 * n as u64)
}
