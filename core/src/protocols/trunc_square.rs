//! A truncation and the square of its result in one round: from shares of `v` (a product
//! at `2f'` fractional bits), shares of `y = v / 2^f` (faithful, as [`super::trunc`]) and
//! of `y^2` (untruncated), for chains of squarings such as the exact softmax's
//! exponential, which would otherwise spend two rounds per square. (To square `y + o`,
//! add `o 2^f` to `v` first: the truncation carries it exactly.)
//!
//! # Math
//!
//! The faithful truncation ([`super::trunc`]) leaves party `i` with
//! `y_i = L_i + c [ab]_i`, `c = 2^(64 - f)`, where `L_i = (z_i >> f) - c msb(z_i) - bias`
//! is known before the round and `[ab]_i` (the shares of the wrap bits' product) is linear
//! in the opened bits `alpha`, `beta` and D's `u`, `v'`, `[u v']`. So the square's opening
//! need not wait for it: with a square pair `(A, A^2)` each party sends `L_i - A_i`
//! together with its truncation bit, and after the round, with `E = L - A`,
//!
//! `y = E + A + c ab`, `y^2 = E^2 + 2 E A + A^2 + 2 c (E ab + ab A) + c^2 ab`,
//!
//! since `ab` is a bit. `ab A = alpha beta A + beta (1 - 2 alpha) u A + alpha (1 - 2 beta) v' A
//! + (1 - 2 alpha)(1 - 2 beta) u v' A` is linear in D's shares of `u A`, `v' A`, `u v' A`
//! (only needed modulo `2^f`: every term is multiplied by `c`), so everything is local.
//!
//! Range: as [`super::trunc`] (`|v| < 2^62 - 2^f` ring units); `y^2` is exact modulo
//! `2^64` (the caller keeps `|y|^2` below `2^62` for a following truncation).
//!
//! Cost: 1 round, `8 (n + ceil(n / 64))` payload bytes per party (the square's opening and
//! the packed truncation bits in one message); D sends P1 `8 n + 4 n ceil(f / 8)` bytes.
//!
//! **In a ring of `m` bits** ([`trunc_square_in`]): `v` known modulo `2^m`, as in
//! [`super::trunc`]'s narrow form (bias `2^(m-2) + 2^f`, wrap bits at bit `m - 1`,
//! `c = 2^(m-f)`); the opening `L - A` goes modulo `2^m` in `m / 8` bytes, and `y` and `y^2`
//! are correct modulo `2^m`, which a chain of squarings that ends in a truncation from that
//! ring needs (`|v| < 2^(m-2) - 2^f`). D's material is the same: the shares of `u v'`,
//! `u A`, `v' A`, `u v' A` are needed modulo `2^f`, since every use is multiplied by `c`
//! modulo `2^m`. Cost: `m n / 8 + 8 ceil(n / 64)` bytes ([`cost_in`]).

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Error, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::prg::words_for_bits;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::{trunc, Width};

/// The dealer item for `n` elements truncated by `f` bits.
pub fn item(n: usize, f: u32) -> Item {
    Item::TruncSquare {
        n: n as u32,
        f: f as u8,
    }
}

/// Online cost on `n` elements.
pub fn cost(n: usize) -> super::Cost {
    cost_in(n, Width::FULL)
}

/// Online cost of [`trunc_square_in`] on `n` elements.
pub fn cost_in(n: usize, ring: Width) -> super::Cost {
    cost_to(n, ring)
}

/// Online cost of [`trunc_square_to`] on `n` elements with results in `out`.
pub fn cost_to(n: usize, out: Width) -> super::Cost {
    let open = out.entry_bytes() as u64 * n as u64;
    super::Cost::new(1, open + 8 * words_for_bits(n) as u64)
}

/// Scratch words for `n` elements (material included).
pub fn scratch_words(n: usize) -> usize {
    let nw = words_for_bits(n);
    nw + 6 * n + 2 * (n + nw)
}

/// The values D shares for one element with bits `u` (P0's), `v'` (P1's) and mask `a`:
/// `(u v', A^2, u A, v' A, u v' A)`.
pub fn products(u: u64, v: u64, a: u64) -> [u64; 5] {
    let uv = u & v;
    [
        uv,
        a.wrapping_mul(a),
        u.wrapping_neg() & a,
        v.wrapping_neg() & a,
        uv.wrapping_neg() & a,
    ]
}

/// `y = trunc(v, f)` (written over `v`) and `sq = y^2` (untruncated) in one round.
pub fn trunc_square<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    v: &mut [AShare],
    f: u32,
    sq: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    trunc_square_in(s, v, f, Width::FULL, sq, scratch)
}

/// [`trunc_square`] for `v` known modulo `2^m` (`m` = `ring`'s bits): `y` and `sq` are
/// correct modulo `2^m` (see the module docs).
pub fn trunc_square_in<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    v: &mut [AShare],
    f: u32,
    ring: Width,
    sq: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    trunc_square_to(s, v, f, ring, ring, sq, scratch)
}

/// [`trunc_square_in`] with `y` and `sq` correct modulo `2^o` for `o` = `out`'s bits, at
/// least `m`: the square's opening goes in `o / 8` bytes, and D's shares of `u v'`,
/// `u A`, `v' A`, `u v' A` are needed modulo `2^(o - m + f)` (each is multiplied by
/// `c = 2^(m - f)`). From a narrow ring to the full one this lifts the truncated value and
/// gives its square in the full ring, as a product's truncation followed by a square would.
/// Cost: [`cost_to`].
pub fn trunc_square_to<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    v: &mut [AShare],
    f: u32,
    ring: Width,
    out: Width,
    sq: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = v.len();
    let m = ring.bits();
    check_len("trunc-square output", n, sq.len())?;
    if !(1..=m - 2).contains(&f) {
        return Err(Error::Param(
            "truncation shift must be in 1..=m-2 (62 in the full ring)",
        ));
    }
    if out.bits() < m {
        return Err(Error::Param(
            "trunc-square: the output ring must hold the input's",
        ));
    }
    let it = item(n, out.bits() - m + f);
    s.dealer.request(&[it])?;
    let nw = words_for_bits(n);
    let mut ar = Arena::new(scratch);
    let r = ar.take(nw)?;
    let uv = ar.take(n)?;
    let a = ar.take(n)?;
    let a2 = ar.take(n)?;
    let ua = ar.take(n)?;
    let va = ar.take(n)?;
    let uva = ar.take(n)?;
    s.dealer.take(
        it,
        &mut [
            &mut *r, &mut *uv, &mut *a, &mut *a2, &mut *ua, &mut *va, &mut *uva,
        ],
    )?;
    let mine = ar.take_zeroed(n + nw)?;
    let theirs = ar.take(n + nw)?;
    let x = AShare::raw_slice_mut(v);
    let bias = s
        .party
        .share_of_public((1u64 << (m - 2)).wrapping_add(1u64 << f));
    let unbias = s.party.share_of_public(1u64 << (m - 2 - f));
    let c = 1u64 << (m - f);
    let reduce = crate::ring::low_mask(m);
    {
        let (open, bits) = mine.split_at_mut(n);
        for i in 0..n {
            let z = x[i].wrapping_add(bias) & reduce;
            let msb = z >> (m - 1);
            bits[i / 64] |= msb << (i % 64);
            let l = (z >> f)
                .wrapping_sub(msb.wrapping_mul(c))
                .wrapping_sub(unbias);
            x[i] = l; // L_i, completed below
            open[i] = l.wrapping_sub(a[i]);
        }
        for (b, rr) in bits.iter_mut().zip(r.iter()) {
            *b ^= *rr;
        }
    }
    s.peer
        .exchange_narrow_then_words(mine, theirs, n, out.entry_bytes())?;
    crate::prg::clear_tail(&mut theirs[n..], n);
    let (alpha_w, beta_w) = match s.party {
        PartyId::P0 => (&mine[n..], &theirs[n..]),
        PartyId::P1 => (&theirs[n..], &mine[n..]),
    };
    let p0 = s.party == PartyId::P0;
    let out = AShare::raw_slice_mut(sq);
    let c2 = c.wrapping_mul(c);
    for i in 0..n {
        // This party's shares of ab and of ab A (see the module docs).
        let wrap = trunc::Wrap::at(p0, alpha_w, beta_w, r, uv[i], i);
        let ab = wrap.ab();
        let aba = wrap.times(a[i], ua[i], va[i], uva[i]);
        let e = mine[i].wrapping_add(theirs[i]);
        x[i] = x[i].wrapping_add(c.wrapping_mul(ab));
        let mut z = a2[i]
            .wrapping_add(e.wrapping_mul(a[i]).wrapping_mul(2))
            .wrapping_add(
                c.wrapping_mul(2)
                    .wrapping_mul(e.wrapping_mul(ab).wrapping_add(aba)),
            )
            .wrapping_add(c2.wrapping_mul(ab));
        if p0 {
            z = z.wrapping_add(e.wrapping_mul(e));
        }
        out[i] = z;
    }
    Ok(())
}
