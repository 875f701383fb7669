//! Truncation after a fixed-point product: from shares of `v` (2f fractional bits) to
//! shares of `v / 2^f`.
//!
//! # Faithful truncation (default)
//!
//! Let `z = v + 2^62 + 2^f` (P0 adds the public bias), so `z` is in `[0, 2^63)` whenever
//! `|v| < 2^62 - 2^f` (reals below 2^30 at 2f = 32 fractional bits). For two shares
//! `z0 + z1 = z + w 2^64` with `z < 2^63`, the wrap bit is `w = a OR b` where
//! `a = msb(z0)` (known to P0) and `b = msb(z1)` (known to P1). The parties compute
//! additive shares of `w = a + b - ab` with a dealer-assisted product of two privately
//! held bits: D gives P0 a random bit `u`, P1 a random bit `v'`, and both shares of
//! `u v'` mod 2^f; P0 opens `alpha = a ^ u`, P1 opens `beta = b ^ v'` (one bit each,
//! uniformly masked), and
//! `ab = alpha beta + alpha (1 - 2 beta) v' + beta (1 - 2 alpha) u + (1 - 2 alpha)(1 - 2 beta) u v'`
//! is linear in what each party holds. Then
//! `(z0 >> f) + (z1 >> f) - w 2^(64-f) = floor(z / 2^f) - c` with a carry `c` in {0, 1},
//! and subtracting `2^(62-f)` gives `floor(v / 2^f) + 1 - c`: always within 1 LSB of the
//! exact quotient `v / 2^f`, with no large errors. Only `w mod 2^f` matters (it is
//! multiplied by `2^(64-f)`), so D sends P1's share of `u v'` in `ceil(f/8)` bytes.
//!
//! Cost per element: 1 round (for the whole batch), `ceil(n/8)` payload bytes sent per
//! party; D sends P1 `n * ceil(f/8)` bytes.
//!
//! # From a narrower ring
//!
//! The same protocol lifts a value known only modulo `2^m` (`m <= 64`: a product computed
//! on openings of `m` bits, see [`super::Width`]) to a full 64-bit share of `v / 2^f`:
//! each party reduces its share mod `2^m`, the bias is `2^(m-2) + 2^f`, `a` and `b` are bit
//! `m - 1` of the reduced shares, and the wrap term is `w 2^(m-f)`. Since the shifted
//! shares `z_i >> f` are integers below `2^(m-f)`, the result
//! `floor(v / 2^f) + 1 - c` is exact in the 64-bit ring; `ab` is needed mod `2^(64-m+f)`,
//! so D sends that many bits of P1's share ([`item_in`]). Same round and bits; valid for
//! `|v| < 2^(m-2) - 2^f`.
//!
//! # Lift (shift 0)
//!
//! With `f = 0` and `m < 64` the same steps only lift: the bias is `2^(m-2)` alone, so
//! `z = v + 2^(m-2)` is in `[0, 2^(m-1))` for `v` in `[-2^(m-2), 2^(m-2))`, and
//! `z0 + z1 - w 2^m = z` exactly: no bits are dropped, so there is no carry `c` (and no
//! `+2^f` in the bias to centre it); subtracting `2^(m-2)` gives `v` itself, exactly, in
//! the 64-bit ring. `ab` is needed mod `2^(64-m)` ([`item_in`] with `f = 0`). Same round
//! and bits; [`lift_in`] runs it whatever the truncation mode (the local truncation
//! cannot lift). In the full ring there is nothing to lift, so shift 0 is refused there.
//!
//! # SecureML local truncation (opt-in)
//!
//! P0 keeps `x0 >> f` (arithmetic), P1 keeps `-((-x1) >> f)`. No communication, but for
//! `|v| < 2^l` each element fails with a large error (about 2^(64-f)) with probability
//! about `2^(l+1-64)`; at `l = 40` that is one failure per ~8 million elements, which a
//! BERT forward with 10^8 truncations hits. Use only where that risk is accepted.
//!
//! Valid input range (faithful mode): `|v| < 2^62 - 2^f` ring units; outside it the wrap bit
//! is wrong and the result is off by `2^(64-f)`.

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::prg::words_for_bits;
use crate::ring::sar;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::Width;

/// How products are truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncMode {
    /// One round, at most 1 LSB of error, no large errors for |v| < 2^62 (default).
    Faithful,
    /// SecureML local truncation: free, but fails with probability ~|v|/2^63 per element.
    LocalSecureMl,
}

/// The ring a product truncated in `mode` may use: `ring` for the faithful truncation,
/// the full ring for the local one (which cannot lift a value known modulo `2^m`).
pub fn usable(mode: TruncMode, ring: Width) -> Width {
    match mode {
        TruncMode::Faithful => ring,
        TruncMode::LocalSecureMl => Width::FULL,
    }
}

/// The dealer item for truncating `n` elements by `f` bits.
pub fn item(n: usize, f: u32) -> Item {
    item_in(n, f, Width::FULL)
}

/// The dealer item for truncating `n` elements known mod `2^m` (`m` = `ring`'s bits) by
/// `f` bits: the shares of `u v'` are needed mod `2^(64 - m + f)`.
pub fn item_in(n: usize, f: u32, ring: Width) -> Item {
    Item::Trunc {
        n: n as u32,
        f: (64 - ring.bits() + f).min(64) as u8,
    }
}

/// Scratch words needed to truncate `n` elements (material included).
pub fn scratch_words(n: usize) -> usize {
    n + 3 * words_for_bits(n)
}

/// Scratch words needed when the material is provided ([`apply`]).
pub fn apply_scratch_words(n: usize) -> usize {
    2 * words_for_bits(n)
}

/// Truncates `x` in place by the session's `f` bits, requesting its own material.
pub fn trunc<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let f = s.enc.frac_bits();
    trunc_by(s, x, f, scratch)
}

/// Truncates `x` in place by `shift` bits (1..=62), requesting its own material.
pub fn trunc_by<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &mut [AShare],
    shift: u32,
    scratch: &mut [u64],
) -> Result<()> {
    trunc_by_in(s, x, shift, Width::FULL, scratch)
}

/// [`trunc_by`] for `x` known modulo `2^m` (`m` = `ring`'s bits), requesting its own
/// material ([`item_in`]); the output is in the full ring.
pub fn trunc_by_in<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &mut [AShare],
    shift: u32,
    ring: Width,
    scratch: &mut [u64],
) -> Result<()> {
    if s.trunc_mode == TruncMode::LocalSecureMl {
        if ring != Width::FULL {
            return Err(crate::Error::Param(
                "the local truncation needs full-ring values (see trunc::usable)",
            ));
        }
        local(s.party, AShare::raw_slice_mut(x), shift);
        return Ok(());
    }
    s.dealer.request(&[item_in(x.len(), shift, ring)])?;
    run_in(s, x, shift, ring, scratch)
}

/// Truncates `x` in place by the session's `f` bits, taking already-requested material
/// (mode-aware).
pub fn run<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let f = s.enc.frac_bits();
    run_by(s, x, f, scratch)
}

/// Truncates `x` in place by `shift` bits, taking already-requested material.
pub fn run_by<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &mut [AShare],
    shift: u32,
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    run_segments(s, x, &[(n, shift)], scratch)
}

/// Truncates consecutive segments of `x` by their own shifts in one round:
/// `segments` lists `(length, shift)`. The material is one item of the largest shift.
pub fn run_segments<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &mut [AShare],
    segments: &[(usize, u32)],
    scratch: &mut [u64],
) -> Result<()> {
    run_segments_in(s, x, segments, Width::FULL, scratch)
}

/// Truncates `x`, known modulo `2^m` (`m` = `ring`'s bits), by `shift` bits into full
/// 64-bit shares, taking already-requested material ([`item_in`]).
pub fn run_in<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &mut [AShare],
    shift: u32,
    ring: Width,
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    run_segments_in(s, x, &[(n, shift)], ring, scratch)
}

/// [`run_segments`] for `x` known modulo `2^m` (`m` = `ring`'s bits): the output is in
/// the full ring. The material is [`item_in`] of the largest shift.
pub fn run_segments_in<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &mut [AShare],
    segments: &[(usize, u32)],
    ring: Width,
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    check_len("truncation segments", n, segments.iter().map(|s| s.0).sum())?;
    if s.trunc_mode == TruncMode::LocalSecureMl {
        if ring != Width::FULL {
            return Err(crate::Error::Param(
                "the local truncation needs full-ring values (see trunc::usable)",
            ));
        }
        let xs = AShare::raw_slice_mut(x);
        let mut at = 0;
        for &(len, sh) in segments {
            local(s.party, &mut xs[at..at + len], sh);
            at += len;
        }
        return Ok(());
    }
    let max = segments.iter().map(|s| s.1).max().unwrap_or(0);
    let mut ar = Arena::new(scratch);
    let r = ar.take(words_for_bits(n))?;
    let sh = ar.take(n)?;
    s.dealer
        .take(item_in(n, max, ring), &mut [&mut *r, &mut *sh])?;
    apply_segments_in(s, x, segments, ring, r, sh, ar.rest())
}

/// Lifts `x`, known modulo `2^m` (`m` = `ring`'s bits, below 64), to full 64-bit shares
/// of the same value, exact for values in `[-2^(m-2), 2^(m-2))` (see "Lift" in the module
/// docs), taking already-requested material (`item_in(x.len(), 0, ring)`). Runs the
/// faithful protocol in either truncation mode: there is no local lift. 1 round,
/// [`cost`].
pub fn lift_in<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &mut [AShare],
    ring: Width,
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    let mut ar = Arena::new(scratch);
    let r = ar.take(words_for_bits(n))?;
    let sh = ar.take(n)?;
    s.dealer
        .take(item_in(n, 0, ring), &mut [&mut *r, &mut *sh])?;
    apply_segments_in(s, x, &[(n, 0)], ring, r, sh, ar.rest())
}

/// Takes the material of [`item`] into owned buffers (for preparing it offline).
pub fn take_material<D: Dealer>(
    dealer: &mut D,
    n: usize,
    f: u32,
    r: &mut [u64],
    sh: &mut [u64],
) -> Result<()> {
    dealer.take(item(n, f), &mut [r, sh])
}

/// Faithful truncation of `x` by the session's `f` bits with material `r` (this party's
/// random bits, packed) and `sh` (this party's shares of `u v'`), in place. 1 round,
/// `ceil(n/8)` bytes sent.
pub fn apply<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &mut [AShare],
    r: &[u64],
    sh: &[u64],
    scratch: &mut [u64],
) -> Result<()> {
    let (n, f) = (x.len(), s.enc.frac_bits());
    apply_segments(s, x, &[(n, f)], r, sh, scratch)
}

/// Faithful truncation of consecutive segments by their own shifts (see [`run_segments`]).
pub fn apply_segments<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &mut [AShare],
    segments: &[(usize, u32)],
    r: &[u64],
    sh: &[u64],
    scratch: &mut [u64],
) -> Result<()> {
    apply_segments_in(s, x, segments, Width::FULL, r, sh, scratch)
}

/// [`apply_segments`] for `x` known modulo `2^m` (`m` = `ring`'s bits), with the material
/// of [`item_in`]; the output is in the full ring.
pub fn apply_segments_in<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &mut [AShare],
    segments: &[(usize, u32)],
    ring: Width,
    r: &[u64],
    sh: &[u64],
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    let m = ring.bits();
    let reduce = crate::ring::low_mask(m);
    let nw = words_for_bits(n);
    check_len("truncation material", nw, r.len())?;
    check_len("truncation material", n, sh.len())?;
    for &(_, shift) in segments {
        // Shift 0 is a lift, which only a narrow ring needs (module docs, "Lift").
        let least = if m < 64 { 0 } else { 1 };
        if !(least..=m.saturating_sub(2)).contains(&shift) {
            return Err(crate::Error::Param(
                "truncation shift must be in 1..=m-2 (62 in the full ring), or 0 below it",
            ));
        }
    }
    let x = AShare::raw_slice_mut(x);
    let mut ar = Arena::new(scratch);
    let mine = ar.take_zeroed(nw)?;
    let theirs = ar.take(nw)?;
    {
        let mut at = 0;
        for &(len, shift) in segments {
            // The `2^shift` centres the carry of the dropped bits; a lift drops none.
            let centre = if shift == 0 { 0 } else { 1u64 << shift };
            let bias = s
                .party
                .share_of_public((1u64 << (m - 2)).wrapping_add(centre));
            for i in at..at + len {
                let v = &mut x[i];
                *v = v.wrapping_add(bias) & reduce;
                mine[i / 64] |= (*v >> (m - 1)) << (i % 64);
            }
            at += len;
        }
    }
    for (m, rr) in mine.iter_mut().zip(r) {
        *m ^= *rr;
    }
    s.peer.exchange_bits(mine, theirs, n)?;
    let (alpha_w, beta_w) = match s.party {
        PartyId::P0 => (&*mine, &*theirs),
        PartyId::P1 => (&*theirs, &*mine),
    };
    let p0 = s.party == PartyId::P0;
    let mut at = 0;
    for &(len, shift) in segments {
        let hi_shift = m - shift;
        let unbias = s.party.share_of_public(1u64 << (m - 2 - shift));
        // Branchless: the opened bits are uniformly random, so branches on them mispredict.
        for i in at..at + len {
            let (wi, bi) = (i / 64, i % 64);
            let alpha = (alpha_w[wi] >> bi) & 1;
            let beta = (beta_w[wi] >> bi) & 1;
            let rbit = (r[wi] >> bi) & 1;
            let ab = ab_share(p0, alpha, beta, rbit, sh[i]);
            // This party's share of z's msb: a at P0, b at P1.
            let v = &mut x[i];
            let wshare = (*v >> (m - 1)).wrapping_sub(ab);
            *v = (*v >> shift)
                .wrapping_sub(wshare << hi_shift)
                .wrapping_sub(unbias);
        }
        at += len;
    }
    Ok(())
}

/// The opened wrap bits of one element of a truncation that rode in another protocol's
/// opening (`trunc_square`, `rowmul::run_pending`, `bitmul::again_pending`): this party's
/// share of `ab` and, for any mask `M` with D's shares of `u M`, `v' M`, `u v' M`, of `ab M`
/// (`ab M = alpha beta M + beta (1 - 2 alpha) u M + alpha (1 - 2 beta) v' M
/// + (1 - 2 alpha)(1 - 2 beta) u v' M`).
#[derive(Clone, Copy)]
pub(crate) struct Wrap {
    ab: u64,
    both_bits: u64,
    coef_u: u64,
    coef_v: u64,
    coef_uv: u64,
}

impl Wrap {
    /// Element `i` of the packed opened bits `alpha_w` (P0's), `beta_w` (P1's), with this
    /// party's own mask bits `rbits` and its share `uv` of `u v'`.
    pub(crate) fn at(
        p0: bool,
        alpha_w: &[u64],
        beta_w: &[u64],
        rbits: &[u64],
        uv: u64,
        i: usize,
    ) -> Self {
        let bit = |w: &[u64]| (w[i / 64] >> (i % 64)) & 1;
        let (alpha, beta) = (bit(alpha_w), bit(beta_w));
        let sa = 1u64.wrapping_sub(alpha << 1);
        let sb = 1u64.wrapping_sub(beta << 1);
        Wrap {
            ab: ab_share(p0, alpha, beta, bit(rbits), uv),
            both_bits: (alpha & beta).wrapping_neg(),
            coef_u: sa.wrapping_mul(beta),
            coef_v: sb.wrapping_mul(alpha),
            coef_uv: sa.wrapping_mul(sb),
        }
    }

    /// This party's share of `ab`.
    pub(crate) fn ab(&self) -> u64 {
        self.ab
    }

    /// This party's share of `ab M` from its shares of `M`, `u M`, `v' M`, `u v' M`.
    pub(crate) fn times(&self, m: u64, um: u64, vm: u64, uvm: u64) -> u64 {
        (self.both_bits & m)
            .wrapping_add(self.coef_u.wrapping_mul(um))
            .wrapping_add(self.coef_v.wrapping_mul(vm))
            .wrapping_add(self.coef_uv.wrapping_mul(uvm))
    }
}

/// The local half of a faithful truncation by `g` bits in the full ring, for protocols that
/// open its result in their own round: this party's `L_i = (z_i >> g) - c msb(z_i) - bias`
/// (`z = v + 2^62 + 2^g` with the bias added by P0, `c = 2^(64 - g)`) into `l`, and its
/// wrap bits `msb(z_i)` ORed into the zeroed packed `bits`. The truncated value is
/// `L + c ab`, with `ab` from [`ab_share`] once the masked bits are open.
pub(crate) fn pending(party: PartyId, v: &[u64], g: u32, l: &mut [u64], bits: &mut [u64]) {
    let bias = party.share_of_public((1u64 << 62).wrapping_add(1u64 << g));
    let unbias = party.share_of_public(1u64 << (62 - g));
    let c = 1u64 << (64 - g);
    for (i, (li, vi)) in l.iter_mut().zip(v).enumerate() {
        let z = vi.wrapping_add(bias);
        let msb = z >> 63;
        bits[i / 64] |= msb << (i % 64);
        *li = (z >> g)
            .wrapping_sub(msb.wrapping_mul(c))
            .wrapping_sub(unbias);
    }
}

/// This party's additive share of the wrap bits' product `ab` (see the module docs) from
/// the opened bits `alpha`, `beta`, its own random bit `rbit` (`u` at P0, `v'` at P1) and
/// its share `sh` of `u v'`. Also used by [`super::trunc_square`].
#[inline(always)]
pub(crate) fn ab_share(p0: bool, alpha: u64, beta: u64, rbit: u64, sh: u64) -> u64 {
    // (1 - 2a)(1 - 2b) sh is sh or -sh; b (1 - 2a) r and a (1 - 2b) r are (1 - 2a) or
    // (1 - 2b) when the bits multiplying them are set: selects, no multiplies.
    let flip = (alpha ^ beta).wrapping_neg();
    let common = (sh ^ flip).wrapping_sub(flip);
    if p0 {
        let sa = 1u64.wrapping_sub(alpha << 1);
        (alpha & beta)
            .wrapping_add(sa & (beta & rbit).wrapping_neg())
            .wrapping_add(common)
    } else {
        let sb = 1u64.wrapping_sub(beta << 1);
        (sb & (alpha & rbit).wrapping_neg()).wrapping_add(common)
    }
}

/// SecureML local truncation by `f` bits (see the module docs for its failure rate).
pub fn local(party: PartyId, x: &mut [u64], f: u32) {
    match party {
        PartyId::P0 => {
            for v in x {
                *v = sar(*v, f);
            }
        }
        PartyId::P1 => {
            for v in x {
                *v = sar(v.wrapping_neg(), f).wrapping_neg();
            }
        }
    }
}

/// Cost of truncating `n` elements (faithful mode).
pub fn cost(n: usize) -> super::Cost {
    super::Cost::new(1, n.div_ceil(8) as u64)
}
