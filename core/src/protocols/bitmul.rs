//! Products of XOR-shared bits with additively shared values, bit-to-arithmetic
//! conversion (B2A), and the multiplexer `b ? x : y`, fused into one round.
//!
//! D provides random bits `r` (XOR-shared), their additive shares `[r]`, and per value a
//! random `B` with `[r B]`. The parties open `d = b ^ r` (one bit each, uniformly masked)
//! and `F = v - B` (uniformly masked) in one message. Since `b = d + (1 - 2d) r`,
//! `b v = d v + (1 - 2d)(r F + r B)`, which is local given `d` and `F`. The same opened
//! `d` also gives `[b] = d + (1 - 2d)[r]` (B2A) for free, and multiplying the same bits by
//! a later value costs only the opening of its `F` ([`again`]), not new bits.
//!
//! Cost for `n` values and `m` bits per value: 1 round, `8 (ceil(nm/64) + n)` payload
//! bytes sent per party (about `m + 64` bits per value); D sends P1
//! `8 (nm + uses nm)` bytes. A later use: 1 round, `8n` bytes. No truncation: a bit times
//! a fixed-point value keeps its scale.
//!
//! Valid input range: any ring values (a bit times a value is exact in the ring).

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Error, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::prg::words_for_bits;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

/// The dealer item for `n` values with `m` bits each and `uses` values per bit.
pub fn item(n: usize, m: usize, uses: usize) -> Item {
    Item::BitMul {
        n: n as u32,
        m: m as u16,
        uses: uses as u8,
    }
}

/// Storage words for [`take`].
pub fn material_words(n: usize, m: usize, uses: usize) -> usize {
    words_for_bits(n * m) + n * m + uses * (n + n * m)
}

/// Storage words for [`take_pending`] (bits, two uses, and the second value's truncation).
pub fn pending_material_words(n: usize, m: usize) -> usize {
    material_words(n, m, 2) + words_for_bits(n) + n + 3 * n * m
}

/// The material of the second value's truncation in an [`Item::BitMulTrunc`].
struct TruncPart<'a> {
    f: u32,
    t: &'a [u64],
    uv: &'a [u64],
    ru: &'a [u64],
    rv: &'a [u64],
    ruv: &'a [u64],
}

/// This party's material of one [`Item::BitMul`]. Each mask is opened at most once: the
/// bits' mask `r` by [`first`] or [`open_bits`], each value mask `B_u` by [`first`] (use 0)
/// or [`again`] (use 1); a second opening is an error (it would reveal the difference of
/// two secrets).
pub struct Material<'a> {
    n: usize,
    m: usize,
    uses: usize,
    r: &'a [u64],
    ra: &'a [u64],
    b: [&'a [u64]; 2],
    rb: [&'a [u64]; 2],
    bits_opened: bool,
    values_opened: [bool; 2],
    trunc: Option<TruncPart<'a>>,
}

impl Material<'_> {
    fn open_bits_once(&mut self) -> Result<()> {
        if core::mem::replace(&mut self.bits_opened, true) {
            return Err(Error::Param(
                "bit product: the bits' mask was already opened",
            ));
        }
        Ok(())
    }

    fn open_value_once(&mut self, use_: usize) -> Result<()> {
        if core::mem::replace(&mut self.values_opened[use_], true) {
            return Err(Error::Param(
                "bit product: this use's mask was already opened",
            ));
        }
        Ok(())
    }
}

/// Takes the (already requested) material into `storage`.
pub fn take<'a, D: Dealer>(
    dealer: &mut D,
    n: usize,
    m: usize,
    uses: usize,
    storage: &'a mut [u64],
) -> Result<Material<'a>> {
    if uses > 2 {
        return Err(Error::Param("at most two values per bit"));
    }
    let mut ar = Arena::new(storage);
    let r = ar.take(words_for_bits(n * m))?;
    let ra = ar.take(n * m)?;
    let b0 = ar.take(if uses > 0 { n } else { 0 })?;
    let rb0 = ar.take(if uses > 0 { n * m } else { 0 })?;
    let b1 = ar.take(if uses > 1 { n } else { 0 })?;
    let rb1 = ar.take(if uses > 1 { n * m } else { 0 })?;
    {
        let mut bufs: heapless::Vec<&mut [u64], 6> = heapless::Vec::new();
        let _ = bufs.push(&mut *r);
        let _ = bufs.push(&mut *ra);
        if uses > 0 {
            let _ = bufs.push(&mut *b0);
            let _ = bufs.push(&mut *rb0);
        }
        if uses > 1 {
            let _ = bufs.push(&mut *b1);
            let _ = bufs.push(&mut *rb1);
        }
        dealer.take(item(n, m, uses), &mut bufs)?;
    }
    Ok(Material {
        n,
        m,
        uses,
        r,
        ra,
        b: [b0, b1],
        rb: [rb0, rb1],
        bits_opened: false,
        values_opened: [false; 2],
        trunc: None,
    })
}

/// Takes the (already requested) material of an [`Item::BitMulTrunc`] (`n` values, `m`
/// bits each, the second value truncated by `f` in its opening round) into `storage`.
pub fn take_pending<'a, D: Dealer>(
    dealer: &mut D,
    n: usize,
    m: usize,
    f: u32,
    storage: &'a mut [u64],
) -> Result<Material<'a>> {
    let mut ar = Arena::new(storage);
    let r = ar.take(words_for_bits(n * m))?;
    let ra = ar.take(n * m)?;
    let b0 = ar.take(n)?;
    let rb0 = ar.take(n * m)?;
    let b1 = ar.take(n)?;
    let rb1 = ar.take(n * m)?;
    let t = ar.take(words_for_bits(n))?;
    let uv = ar.take(n)?;
    let ru = ar.take(n * m)?;
    let rv = ar.take(n * m)?;
    let ruv = ar.take(n * m)?;
    let it = Item::BitMulTrunc {
        n: n as u32,
        m: m as u16,
        f: f as u8,
    };
    dealer.take(
        it,
        &mut [
            &mut *r, &mut *ra, &mut *b0, &mut *rb0, &mut *b1, &mut *rb1, &mut *t, &mut *uv,
            &mut *ru, &mut *rv, &mut *ruv,
        ],
    )?;
    Ok(Material {
        n,
        m,
        uses: 2,
        r,
        ra,
        b: [b0, b1],
        rb: [rb0, rb1],
        bits_opened: false,
        values_opened: [false; 2],
        trunc: Some(TruncPart {
            f,
            t,
            uv,
            ru,
            rv,
            ruv,
        }),
    })
}

/// Scratch words for [`first`].
pub fn scratch_words(n: usize, m: usize) -> usize {
    2 * (words_for_bits(n * m) + n)
}

fn combine(
    party: PartyId,
    mat: &Material<'_>,
    use_: usize,
    d: &[u64],
    f: &[u64],
    v: &[u64],
    out: &mut [u64],
) {
    let _ = party; // both parties run the same local formula on their shares
    let (m, ra, rb) = (mat.m, mat.ra, mat.rb[use_]);
    for i in 0..mat.n {
        for j in 0..m {
            let idx = i * m + j;
            let dbit = (d[idx / 64] >> (idx % 64)) & 1;
            let rv = ra[idx].wrapping_mul(f[i]).wrapping_add(rb[idx]);
            // d v + (1 - 2d) r v, with the party's shares of v and of r v.
            out[idx] = (dbit.wrapping_neg() & v[i])
                .wrapping_add(rv.wrapping_mul(1u64.wrapping_sub(dbit << 1)));
        }
    }
}

/// Opens `d = bits ^ r` and `F = v - B` (first use) and sets `out[i m + j] = b_ij v_i`.
/// `bits` holds `n m` packed XOR-shared bits; the opened `d` goes to `d_out`
/// (`ceil(nm/64)` words), to be kept for [`again`] and [`to_arith`].
pub fn first<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    mat: &mut Material<'_>,
    bits: &[u64],
    v: &[AShare],
    d_out: &mut [u64],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let (n, m) = (mat.n, mat.m);
    let bw = words_for_bits(n * m);
    check_len("bit product values", n, v.len())?;
    check_len("bit product output", n * m, out.len())?;
    if bits.len() < bw || d_out.len() < bw {
        return Err(Error::Shape {
            what: "bit product bit words",
            expected: bw,
            actual: bits.len().min(d_out.len()),
        });
    }
    if mat.uses == 0 {
        return Err(Error::Param("bit product material has no value mask"));
    }
    mat.open_bits_once()?;
    mat.open_value_once(0)?;
    if mat.uses == 0 {
        return Err(Error::Param("bit product material has no value uses"));
    }
    let mut ar = Arena::new(scratch);
    let mine = ar.take(bw + n)?;
    let theirs = ar.take(bw + n)?;
    for w in 0..bw {
        mine[w] = bits[w] ^ mat.r[w];
    }
    crate::prg::clear_tail(&mut mine[..bw], n * m);
    let vs = AShare::raw_slice(v);
    crate::ring::sub_into(&mut mine[bw..], vs, mat.b[0]);
    s.peer.exchange_u64(mine, theirs)?;
    for w in 0..bw {
        d_out[w] = mine[w] ^ theirs[w];
    }
    crate::ring::add_assign(&mut mine[bw..], &theirs[bw..]);
    combine(
        s.party,
        mat,
        0,
        d_out,
        &mine[bw..],
        vs,
        AShare::raw_slice_mut(out),
    );
    Ok(())
}

/// A later use of the same bits with a new value: opens only `F = v - B_use`.
pub fn again<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    mat: &mut Material<'_>,
    use_: usize,
    d: &[u64],
    v: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let (n, m) = (mat.n, mat.m);
    if use_ == 0 || use_ >= mat.uses {
        return Err(Error::Param("bit product use out of range"));
    }
    mat.open_value_once(use_)?;
    check_len("bit product values", n, v.len())?;
    check_len("bit product output", n * m, out.len())?;
    let mut ar = Arena::new(scratch);
    let mine = ar.take(n)?;
    let theirs = ar.take(n)?;
    let vs = AShare::raw_slice(v);
    crate::ring::sub_into(mine, vs, mat.b[use_]);
    s.peer.exchange_u64(mine, theirs)?;
    crate::ring::add_assign(mine, theirs);
    combine(s.party, mat, use_, d, mine, vs, AShare::raw_slice_mut(out));
    Ok(())
}

/// The second use with a value still to be truncated: `v = trunc(w, f)` (faithful, as
/// [`super::trunc`]) from `w` at `f` more fractional bits, `f` fixed by the material
/// ([`take_pending`]). The truncation rides in the value's opening: each party opens
/// `L_i - B` (its share of `v` before the wrap correction `c ab`, `c = 2^(64 - f)`) and
/// its wrap bit, and with `b = d + (1 - 2d) r`,
/// `b v = d (L + c ab) + (1 - 2d)(r F + r B + c r ab)`, where `r ab` is linear in D's
/// shares of `r u`, `r v'`, `r u v'` and `[r]`. 1 round, [`cost_again_pending`].
pub fn again_pending<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    mat: &mut Material<'_>,
    d: &[u64],
    w: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let (n, m) = (mat.n, mat.m);
    let tp = mat
        .trunc
        .as_ref()
        .ok_or(Error::Param("bit product material has no truncation part"))?;
    let f = tp.f;
    check_len("bit product values", n, w.len())?;
    check_len("bit product output", n * m, out.len())?;
    let nw = words_for_bits(n);
    let mut ar = Arena::new(scratch);
    let mine = ar.take_zeroed(n + nw)?;
    let theirs = ar.take(n + nw)?;
    let l = ar.take(n)?;
    {
        let (open, bits) = mine.split_at_mut(n);
        super::trunc::pending(s.party, AShare::raw_slice(w), f, l, bits);
        crate::ring::sub_into(open, l, mat.b[1]);
        for (b, t) in bits.iter_mut().zip(tp.t.iter()) {
            *b ^= *t;
        }
    }
    let (ru, rv, ruv, uv, tbits) = (tp.ru, tp.rv, tp.ruv, tp.uv, tp.t);
    mat.open_value_once(1)?;
    s.peer.exchange_u64(mine, theirs)?;
    crate::prg::clear_tail(&mut theirs[n..], n);
    let (opened, their_bits) = theirs.split_at_mut(n);
    let (mine_open, my_bits) = mine.split_at(n);
    let (alpha_w, beta_w) = match s.party {
        PartyId::P0 => (my_bits, &*their_bits),
        PartyId::P1 => (&*their_bits, my_bits),
    };
    crate::ring::add_assign(opened, mine_open);
    let p0 = s.party.is_p0();
    let c = 1u64 << (64 - f);
    let o = AShare::raw_slice_mut(out);
    for e in 0..n {
        let wrap = super::trunc::Wrap::at(p0, alpha_w, beta_w, tbits, uv[e], e);
        // This party's share of v = L + c ab.
        let v = l[e].wrapping_add(c.wrapping_mul(wrap.ab()));
        for j in 0..m {
            let idx = e * m + j;
            let dbit = (d[idx / 64] >> (idx % 64)) & 1;
            // This party's share of r ab (r's arithmetic share is `ra`).
            let rab = wrap.times(mat.ra[idx], ru[idx], rv[idx], ruv[idx]);
            let rvv = mat.ra[idx]
                .wrapping_mul(opened[e])
                .wrapping_add(mat.rb[1][idx])
                .wrapping_add(c.wrapping_mul(rab));
            o[idx] = (dbit.wrapping_neg() & v)
                .wrapping_add(rvv.wrapping_mul(1u64.wrapping_sub(dbit << 1)));
        }
    }
    Ok(())
}

/// Scratch words of [`again_pending`] for `n` values.
pub fn pending_scratch_words(n: usize) -> usize {
    2 * (n + words_for_bits(n)) + n
}

/// Cost of [`again_pending`] for `n` values.
pub fn cost_again_pending(n: usize) -> super::Cost {
    super::Cost::new(1, 8 * (n + words_for_bits(n)) as u64)
}

/// Arithmetic shares of the bits (0 or 1) from the opened `d`: `[b] = d + (1 - 2d)[r]`.
pub fn to_arith(party: PartyId, mat: &Material<'_>, d: &[u64], out: &mut [AShare]) {
    let o = AShare::raw_slice_mut(out);
    for idx in 0..mat.n * mat.m {
        let dbit = (d[idx / 64] >> (idx % 64)) & 1;
        let r = mat.ra[idx].wrapping_mul(1u64.wrapping_sub(dbit << 1));
        o[idx] = r.wrapping_add(party.share_of_public(dbit));
    }
}

/// Opens `d = bits ^ r` alone (for B2A without a value): 1 round, `8 ceil(nm/64)` bytes.
pub fn open_bits<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    mat: &mut Material<'_>,
    bits: &[u64],
    d_out: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    mat.open_bits_once()?;
    let bw = words_for_bits(mat.n * mat.m);
    let mut ar = Arena::new(scratch);
    let mine = ar.take(bw)?;
    for w in 0..bw {
        mine[w] = bits[w] ^ mat.r[w];
    }
    crate::prg::clear_tail(mine, mat.n * mat.m);
    s.peer.exchange_u64(mine, &mut d_out[..bw])?;
    for w in 0..bw {
        d_out[w] ^= mine[w];
    }
    Ok(())
}

/// `out = b * v` for one XOR-shared bit per value (requests its material).
pub fn bit_mul<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    bits: &[u64],
    v: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = v.len();
    s.dealer.request(&[item(n, 1, 1)])?;
    let mut ar = Arena::new(scratch);
    let storage = ar.take(material_words(n, 1, 1))?;
    let mut mat = take(&mut s.dealer, n, 1, 1, storage)?;
    let d = ar.take(words_for_bits(n))?;
    first(s, &mut mat, bits, v, d, out, ar.rest())
}

/// Scratch words for [`bit_mul`], [`select`] and [`b2a`].
pub fn convenience_scratch_words(n: usize) -> usize {
    material_words(n, 1, 1) + words_for_bits(n) + scratch_words(n, 1) + n
}

/// B2A: arithmetic shares (0 or 1) of `n` XOR-shared bits. 1 round, 1 bit per element.
pub fn b2a<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    bits: &[u64],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = out.len();
    s.dealer.request(&[item(n, 1, 0)])?;
    let mut ar = Arena::new(scratch);
    let storage = ar.take(material_words(n, 1, 0))?;
    let mut mat = take(&mut s.dealer, n, 1, 0, storage)?;
    let d = ar.take(words_for_bits(n))?;
    open_bits(s, &mut mat, bits, d, ar.rest())?;
    to_arith(s.party, &mat, d, out);
    Ok(())
}

/// The multiplexer `out = b ? x : y = y + b (x - y)`. 1 round, about 65 bits per element.
pub fn select<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    bits: &[u64],
    x: &[AShare],
    y: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let n = x.len();
    check_len("select operand", n, y.len())?;
    let mut ar = Arena::new(scratch);
    let diff = ar.take(n)?;
    crate::ring::sub_into(diff, AShare::raw_slice(x), AShare::raw_slice(y));
    bit_mul(s, bits, AShare::from_raw_slice(diff), out, ar.rest())?;
    for (o, v) in out.iter_mut().zip(y) {
        *o += *v;
    }
    Ok(())
}

/// Cost of [`first`] (and of [`bit_mul`], [`select`]) for `n` values with `m` bits each.
pub fn cost(n: usize, m: usize) -> super::Cost {
    super::Cost::new(1, 8 * (words_for_bits(n * m) + n) as u64)
}

/// Cost of [`again`] for `n` values.
pub fn cost_again(n: usize) -> super::Cost {
    super::Cost::new(1, 8 * n as u64)
}

/// Cost of [`b2a`] for `n` bits.
pub fn cost_b2a(n: usize) -> super::Cost {
    super::Cost::new(1, 8 * words_for_bits(n) as u64)
}
