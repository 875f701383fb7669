//! Table lookup at private indices: `out_i = W[t_i]` for P1's token ids `t_i` and a table
//! `W` (`V x n`, the token embeddings) that P0 owns in the clear, opening `2 S` entries of
//! 4 bytes per lookup with `S = ceil(sqrt V)` (350 entries, 1,400 bytes, for BERT's
//! 30,522-word vocabulary) instead of the `V` entries (122 KB) of a one-hot row
//! ([`super::weight::apply_owned_onehot`]).
//!
//! # Math
//!
//! Write `t = h S + l` (`h, l < S`). The one-hot row of `t` is the outer product of the
//! one-hots `x = e_h` and `y = e_l`, so `W[t] = sum_{h,l} x_h y_l W_hl` with
//! `W_hl = W[hS + l]` (rows past `V` count as zero everywhere). P1 opens
//! `p = x - a` and `q = y - b` modulo `2^32` with one-hot masks `a`, `b` (P1's and D's,
//! [`crate::dealer::Fill::OnehotMask`]), so that `x = p + abar` and `y = q + bbar` over the
//! integers ([`super::weight::onehot_open`], which refuses the one bad mask value with
//! probability `2^-32` per factor, independently of the ids). With the weight's setup
//! (P0 keeps `W` and its mask `B`, P1 keeps `F = W - B`, [`super::weight::setup_owned`]):
//!
//! `W[t] = sum p_h q_l W_hl + sum_h p_h (U_b + G_b)[h] + sum_l q_l (U_a + G_a)[l] + K_F + K_B`
//!
//! with `U_b[h] = sum_l bbar_l F_hl`, `U_a[l] = sum_h abar_h F_hl`,
//! `K_F = sum_h abar_h U_b[h]` (P1's own, computed before the input exists) and
//! `G_b[h] = sum_l bbar_l B_hl`, `G_a[l] = sum_h abar_h B_hl`, `K_B = sum_h abar_h G_b[h]`
//! (shared by D, [`crate::dealer::Item::OwnedLookup`]). P0 computes the first sum (it
//! knows `p`, `q` and `W`) and its shares' terms; P1 its shares' terms and its own sums.
//! No truncation: the output keeps `W`'s scale.
//!
//! The identity holds modulo `2^64`, hence modulo `2^32` ([`RING`]), and P0's sum, the
//! bulk of the work (per block `h` of `S` table rows one `m x S x n` product `R = q W_h`,
//! then `out_i += p_ih R_i`; as many multiply-adds as one-hot rows times the table), runs
//! there: `q` and `p` are below `2^32` and `W`'s entries are taken modulo `2^32`, so the
//! product is [`MatMul::gemm_u32`], twice the lanes of the 64-bit one. The other terms
//! are still computed modulo `2^64` (their low 32 bits are what counts). Both parties
//! then lift their shares, right modulo `2^32` only, to 64-bit shares of `W[t]`
//! ([`trunc::lift_in`], the faithful truncation by 0 bits from the 32-bit ring).
//!
//! # Range
//!
//! The lift is exact for `W[t]` in `[-2^30, 2^30)` ring units (`|w| < 2^14` at `f = 16`);
//! the model loader bounds the weights by 4096 (`2^28` units), so every entry is in
//! range. A row with [`NONE`] looks up 0, which is in range too.
//!
//! # Security
//!
//! P0 sees `p` and `q`, uniform in `Z_{2^32}` whatever the ids (fresh masks per lookup);
//! P1 sees `F` (uniform, from the setup) and shares. A refusal (`2^-31` per lookup) says
//! nothing about the ids but that it happened; running the text again draws fresh masks.
//! The lift opens one bit per entry masked by a dealer bit ([`trunc`]).
//!
//! # Cost
//!
//! Online ([`cost`]): P1 sends `8 S` bytes per lookup without waiting; P0 waits once for
//! them (one round for the whole call: the lookups go in chunks of [`CHUNK`], which P1
//! sends back to back). Then the lift: one round at both parties and `n / 8` bytes per
//! lookup from each (BERT-base, `n = 768`: 1,496 bytes per token from P1 and 96 from P0;
//! 2 rounds at P0, 1 at P1). P0 computes `V n` multiply-adds modulo `2^32` per lookup.
//! D sends P1 `8 (2 S n + n)` bytes per lookup (about 2.2 MB at `n = 768`), the price of
//! the small opening, and `4 n` bytes of lift material (P1's shares of `u v'` modulo
//! `2^32`); P1's preparation and D's generation cost `2 V n` multiply-adds per lookup.

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Error, Result};
use crate::kernel::MatMul;
use crate::prg::Prg;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::{FrameKind, Transport};

use super::trunc;
use super::weight::{self, OwnedWeight, ONEHOT_BITS};
use super::Width;

/// The ring of P0's product and of the shares before the lift: 32 bits, the width of the
/// openings `p`, `q` and of the `u32` kernel.
pub const RING: Width = Width::bytes(4);
/// Lookups per dealer item (bounds the material and scratch a call holds at once).
pub const CHUNK: usize = 32;
/// Table blocks (of `S` rows) summed per product in the preparation.
const GROUP: usize = 16;
/// The id of a row that looks up nothing (a padding row of a missing text): its output
/// is zero.
pub const NONE: u32 = u32::MAX;

/// `S = ceil(sqrt v)`: the side of the square the table's rows are laid out on.
pub fn side(v: usize) -> usize {
    let mut s = libm::sqrt(v as f64) as usize;
    while s * s < v {
        s += 1;
    }
    while s > 1 && (s - 1) * (s - 1) >= v {
        s -= 1;
    }
    s.max(1)
}

/// The dealer item of `m` lookups in `w`.
pub fn item(w: &OwnedWeight<'_>, m: usize) -> Item {
    Item::OwnedLookup {
        id: w.id(),
        m: m as u32,
        k: w.rows() as u32,
        n: w.cols() as u32,
    }
}

/// The dealer item of the lift of `m` lookups of `n` columns ([`trunc::lift_in`]).
pub fn lift_item(m: usize, n: usize) -> Item {
    trunc::item_in(m * n, 0, RING)
}

/// Online cost of [`lookup`] of `m` rows in a table of `v x n`, for P0 (`p0`) or P1.
pub fn cost(m: usize, v: usize, n: usize, p0: bool) -> super::Cost {
    if m == 0 {
        return super::Cost::default();
    }
    let open = if p0 {
        super::Cost::new(1, 0)
    } else {
        super::Cost::new(0, 2 * (m * side(v)) as u64 * (ONEHOT_BITS / 8) as u64)
    };
    open + trunc::cost(m * n)
}

/// Scratch words of [`prepare`] for `m` lookups in a `v x n` table.
pub fn prepare_scratch_words(m: usize, v: usize, n: usize) -> usize {
    let s = side(v);
    GROUP * s * n + m * GROUP + m * n
}

/// Scratch words of [`lookup`] for `m` rows of a `v x n` table.
pub fn scratch_words(m: usize, v: usize, n: usize) -> usize {
    let (c, s) = (CHUNK.min(m), side(v));
    let chunk = 2 * c * s * n + c * n + (4 * c * s).max(prepare_scratch_words(c, v, n));
    // P0's sum: R, q and a partial block's q, a block of a wide table, all 32-bit.
    let own = words32(m * n) + 2 * words32(m * s) + words32(s * n);
    2 * m * s + chunk.max(own).max(trunc::scratch_words(m * n))
}

/// The rows of a table, delivered in groups of whole blocks (`S` rows each), in order.
pub trait Rows {
    /// The next `padded x n` words: rows `first .. first + valid` of the table, then
    /// zeros. `buf` (at least `padded x n` words) may hold them.
    fn group<'s>(
        &'s mut self,
        first: usize,
        valid: usize,
        padded: usize,
        buf: &'s mut [u64],
    ) -> &'s [u64];
}

/// A table held in memory (P1's `F`).
pub struct TableRows<'a> {
    /// The table, `V x n` row-major.
    pub table: &'a [u64],
    /// Columns.
    pub n: usize,
}

impl Rows for TableRows<'_> {
    fn group<'s>(
        &'s mut self,
        first: usize,
        valid: usize,
        padded: usize,
        buf: &'s mut [u64],
    ) -> &'s [u64] {
        let n = self.n;
        let rows = &self.table[first * n..(first + valid) * n];
        if valid == padded {
            return rows;
        }
        buf[..valid * n].copy_from_slice(rows);
        buf[valid * n..padded * n].fill(0);
        &buf[..padded * n]
    }
}

/// A table drawn row by row from a PRG (D's copy of a weight's mask `B`).
pub struct PrgRows<'a> {
    /// The weight's stream, positioned at the next row.
    pub prg: &'a mut Prg,
    /// Columns.
    pub n: usize,
}

impl Rows for PrgRows<'_> {
    fn group<'s>(
        &'s mut self,
        _first: usize,
        valid: usize,
        padded: usize,
        buf: &'s mut [u64],
    ) -> &'s [u64] {
        let n = self.n;
        self.prg.fill(&mut buf[..valid * n]);
        buf[valid * n..padded * n].fill(0);
        &buf[..padded * n]
    }
}

/// Adds the sums of a chunk's masks over a table `T` (`v x n`): `gb[i][h] += sum_l
/// bbar_il T_hl`, `ga[i][l] += sum_h abar_ih T_hl` and `k[i] += sum_h abar_ih (sum_l bbar_il
/// T_hl)`, for `m` lookups (`abar`, `bbar`: `m x S`). With `T = B` this is D's material,
/// with `T = F` P1's preparation.
#[allow(clippy::too_many_arguments)]
pub fn add_sums<K: MatMul, R: Rows>(
    kernel: &K,
    (m, v, n): (usize, usize, usize),
    abar: &[u64],
    bbar: &[u64],
    rows: &mut R,
    gb: &mut [u64],
    ga: &mut [u64],
    k: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    let s = side(v);
    check_len("lookup masks", 2 * m * s, abar.len() + bbar.len())?;
    check_len(
        "lookup sums",
        2 * m * s * n + m * n,
        gb.len() + ga.len() + k.len(),
    )?;
    let mut ar = Arena::new(scratch);
    let buf = ar.take(GROUP * s * n)?;
    let acols = ar.take(m * GROUP)?;
    let tmp = ar.take(m * n)?;
    let blocks = v.div_ceil(s);
    for h0 in (0..blocks).step_by(GROUP) {
        let hb = GROUP.min(blocks - h0);
        let first = h0 * s;
        let valid = v.min(first + hb * s) - first;
        let group = rows.group(first, valid, hb * s, buf);
        for j in 0..hb {
            let h = h0 + j;
            // sum_l bbar_il T_hl for every lookup i: one m x S x n product.
            kernel.gemm(
                m,
                s,
                n,
                bbar,
                &group[j * s * n..(j + 1) * s * n],
                tmp,
                false,
            );
            for i in 0..m {
                let t = &tmp[i * n..(i + 1) * n];
                let a = abar[i * s + h];
                let g = &mut gb[(i * s + h) * n..(i * s + h + 1) * n];
                let kk = &mut k[i * n..(i + 1) * n];
                for ((gv, kv), tv) in g.iter_mut().zip(kk.iter_mut()).zip(t) {
                    *gv = gv.wrapping_add(*tv);
                    *kv = kv.wrapping_add(a.wrapping_mul(*tv));
                }
                acols[i * hb + j] = a;
            }
        }
        // sum_h abar_ih T_hl for every l: the group's blocks are hb rows of S n words.
        kernel.gemm(m, hb, s * n, &acols[..m * hb], group, ga, true);
    }
    Ok(())
}

/// P1's preparation of an [`Item::OwnedLookup`] (`m` lookups in a `v x n` table, P1's
/// `F`): adds its own sums over `F` to D's shares in `slots` (the item's five slots). Done
/// before the online phase when the material is prepared ahead.
pub fn prepare<K: MatMul>(
    kernel: &K,
    (m, v, n): (usize, usize, usize),
    f: &[u64],
    slots: &mut [&mut [u64]],
    scratch: &mut [u64],
) -> Result<()> {
    check_len("lookup table F", v * n, f.len())?;
    check_len("lookup material slots", 5, slots.len())?;
    let (masks, sums) = slots.split_at_mut(2);
    let (gb, rest) = sums.split_at_mut(1);
    let (ga, k) = rest.split_at_mut(1);
    let mut rows = TableRows { table: f, n };
    add_sums(
        kernel,
        (m, v, n),
        masks[0],
        masks[1],
        &mut rows,
        gb[0],
        ga[0],
        k[0],
        scratch,
    )
}

/// `out_i = W[ids_i]` for `m` rows: `ids` are P1's (`Some` at P1, `None` at P0; [`NONE`]
/// looks up nothing), the table is P0's owned weight `w`. Two rounds at P0, one at P1,
/// `8 S + n / 8` bytes per row from P1 and `n / 8` from P0 (see the module docs).
pub fn lookup<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    w: &OwnedWeight<'_>,
    m: usize,
    ids: Option<&[u32]>,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let (v, n) = (w.rows(), w.cols());
    let sd = side(v);
    check_len("lookup output", m * n, out.len())?;
    if let Some(ids) = ids {
        check_len("lookup ids", m, ids.len())?;
    }
    if !s.party.is_p0() && ids.is_none() {
        return Err(Error::Param("P1 must provide its token ids"));
    }
    if m == 0 {
        return Ok(());
    }
    let o = AShare::raw_slice_mut(out);
    let mut ar = Arena::new(scratch);
    // The opened factors of every row: p (of h) and q (of l), m x S each.
    let p = ar.take(m * sd)?;
    let q = ar.take(m * sd)?;
    for (chunk, r0) in (0..m).step_by(CHUNK).enumerate() {
        let c = CHUNK.min(m - r0);
        // The last chunk's request announces the lift too (taken after P0's sum).
        if r0 + c == m {
            s.dealer.request(&[item(w, c), lift_item(m, n)])?;
        } else {
            s.dealer.request(&[item(w, c)])?;
        }
        let rows = r0 * sd..(r0 + c) * sd;
        let factors = (&mut p[rows.clone()], &mut q[rows]);
        let out_c = &mut o[r0 * n..(r0 + c) * n];
        let ids_c = ids.map(|v| &v[r0..r0 + c]);
        lookup_chunk(s, w, ids_c, chunk == 0, factors, out_c, ar.sub().rest())?;
    }
    let shape_only = w.matrix().is_empty() && w.narrow_matrix().is_empty();
    if s.party.is_p0() && !shape_only {
        own_sum(&s.kernel, w, m, p, q, o, ar.sub().rest())?;
    }
    // The shares are right modulo 2^32 only (P0's sum was computed there).
    trunc::lift_in(s, out, RING, ar.rest())
}

/// One chunk of [`lookup`] (`out` and the factors `p`, `q` are the chunk's rows), whose
/// item the caller requested: D's material, P1's opening (or P0's receive: `first` says
/// whether it is the call's one round), and both parties' terms of the shares.
fn lookup_chunk<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    w: &OwnedWeight<'_>,
    ids: Option<&[u32]>,
    first: bool,
    (p, q): (&mut [u64], &mut [u64]),
    out: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    let (v, n) = (w.rows(), w.cols());
    let sd = side(v);
    let c = p.len() / sd;
    let it = item(w, c);
    let mut ar = Arena::new(scratch);
    let gb = ar.take(c * sd * n)?;
    let ga = ar.take(c * sd * n)?;
    let k = ar.take(c * n)?;
    let shape_only = w.matrix().is_empty() && w.narrow_matrix().is_empty();
    if s.party.is_p0() {
        s.dealer.take(it, &mut [&mut [], &mut [], gb, ga, k])?;
        receive(s, p, q, first, ar.sub().rest())?;
    } else {
        s.dealer.take(it, &mut [p, q, gb, ga, k])?;
        if !s.dealer.prepared_weights() && !shape_only {
            let mut slots = [&mut *p, &mut *q, &mut *gb, &mut *ga, &mut *k];
            prepare(
                &s.kernel,
                (c, v, n),
                w.matrix(),
                &mut slots,
                ar.sub().rest(),
            )?;
        }
        let ids = ids.ok_or(Error::Param("P1 must provide its token ids"))?;
        open(s, ids, sd, p, q, ar.sub().rest())?;
    }
    out.copy_from_slice(k);
    combine(c, sd, n, p, q, gb, ga, out);
    Ok(())
}

/// P1's opening: `p`, `q` hold the masks `abar`, `bbar` and receive the opened factors,
/// which go to P0 in one message of 4 bytes per entry.
fn open<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    ids: &[u32],
    sd: usize,
    p: &mut [u64],
    q: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    let c = ids.len();
    let mut ar = Arena::new(scratch);
    let xh = ar.take_zeroed(c * sd)?;
    let yl = ar.take_zeroed(c * sd)?;
    for (i, &id) in ids.iter().enumerate() {
        if id == NONE {
            continue;
        }
        let t = id as usize;
        if t >= sd * sd {
            return Err(Error::Param("a token id is outside the table"));
        }
        xh[i * sd + t / sd] = 1;
        yl[i * sd + t % sd] = 1;
    }
    weight::onehot_open(xh, sd, p)?;
    weight::onehot_open(yl, sd, q)?;
    let send = ar.take(2 * c * sd)?;
    send[..c * sd].copy_from_slice(p);
    send[c * sd..].copy_from_slice(q);
    s.peer.send_narrow(send, (ONEHOT_BITS / 8) as u8)?;
    Ok(())
}

/// P0's receive of a chunk's `p | q`; only the call's first chunk is a round (P1 sends
/// every chunk without waiting for anything).
fn receive<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    p: &mut [u64],
    q: &mut [u64],
    first: bool,
    scratch: &mut [u64],
) -> Result<()> {
    let width = (ONEHOT_BITS / 8) as u8;
    let pq = Arena::new(scratch).take(p.len() + q.len())?;
    if first {
        s.peer.recv_narrow(pq, width)?;
    } else {
        let nbytes = pq.len() * width as usize;
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut pq[..]);
        s.peer.recv_chunked(FrameKind::Ring, &mut bytes[..nbytes])?;
        crate::dealer::draw::widen_in_place(pq, width);
    }
    let (pr, qr) = pq.split_at(p.len());
    p.copy_from_slice(pr);
    q.copy_from_slice(qr);
    Ok(())
}

/// Words holding `n` 32-bit values.
fn words32(n: usize) -> usize {
    n.div_ceil(2)
}

/// The first `n` 32-bit values of `words`.
fn as_u32(words: &mut [u64], n: usize) -> &mut [u32] {
    &mut bytemuck::cast_slice_mut(words)[..n]
}

/// P0's `out_i += sum_{h,l} p_ih q_il W_hl` modulo `2^32` for all `m` rows (`out` is right
/// modulo `2^32` only afterwards): per block `h` of the table (`S` consecutive rows), one
/// `m x S x n` product `R = q W_h` on the `u32` kernel, then `out_i += p_ih R_i`.
fn own_sum<K: MatMul>(
    kernel: &K,
    w: &OwnedWeight<'_>,
    m: usize,
    p: &[u64],
    q: &[u64],
    out: &mut [u64],
    scratch: &mut [u64],
) -> Result<()> {
    let (v, n) = (w.rows(), w.cols());
    let sd = side(v);
    let mut ar = Arena::new(scratch);
    let r = as_u32(ar.take(words32(m * n))?, m * n);
    // Opened modulo 2^32: the low half is the whole value.
    let q32 = as_u32(ar.take(words32(m * sd))?, m * sd);
    for (d, x) in q32.iter_mut().zip(q) {
        *d = *x as u32;
    }
    for h in 0..v.div_ceil(sd) {
        let rows = sd.min(v - h * sd);
        let mut sub = ar.sub();
        let qh = block_q(&mut sub, q32, m, sd, rows)?;
        let wh = block_w(&mut sub, w, h * sd, rows)?;
        kernel.gemm_u32(m, rows, n, qh, wh, r, false);
        for i in 0..m {
            let ph = p[i * sd + h] as u32;
            let (o, ri) = (&mut out[i * n..(i + 1) * n], &r[i * n..(i + 1) * n]);
            for (ov, rv) in o.iter_mut().zip(ri) {
                *ov = ov.wrapping_add(ph.wrapping_mul(*rv) as u64);
            }
        }
    }
    Ok(())
}

/// The left factor of a block of `rows` table rows: `q` (`m x S`) itself, or for a
/// partial last block its first `rows` columns.
fn block_q<'a>(
    ar: &mut Arena<'a>,
    q: &'a [u32],
    m: usize,
    sd: usize,
    rows: usize,
) -> Result<&'a [u32]> {
    if rows == sd {
        return Ok(q);
    }
    let qc = as_u32(ar.take(words32(m * rows))?, m * rows);
    for i in 0..m {
        qc[i * rows..(i + 1) * rows].copy_from_slice(&q[i * sd..i * sd + rows]);
    }
    Ok(qc)
}

/// Table rows `first .. first + rows` modulo `2^32`: the 32-bit table's bits as they are
/// (a sign-extended value is the same modulo `2^32`), or the low halves of a 64-bit one.
fn block_w<'a>(
    ar: &mut Arena<'a>,
    w: &'a OwnedWeight<'_>,
    first: usize,
    rows: usize,
) -> Result<&'a [u32]> {
    let n = w.cols();
    let at = first * n..(first + rows) * n;
    if !w.narrow_matrix().is_empty() {
        return Ok(bytemuck::cast_slice(&w.narrow_matrix()[at]));
    }
    let wb = as_u32(ar.take(words32(rows * n))?, rows * n);
    for (d, x) in wb.iter_mut().zip(&w.matrix()[at]) {
        *d = *x as u32;
    }
    Ok(wb)
}

/// Both parties: `out_i += sum_h p_ih gb_ih + sum_l q_il ga_il`.
#[allow(clippy::too_many_arguments)]
fn combine(
    c: usize,
    sd: usize,
    n: usize,
    p: &[u64],
    q: &[u64],
    gb: &[u64],
    ga: &[u64],
    out: &mut [u64],
) {
    for i in 0..c {
        let o = &mut out[i * n..(i + 1) * n];
        for j in 0..sd {
            let (pj, qj) = (p[i * sd + j], q[i * sd + j]);
            let at = (i * sd + j) * n;
            let (g, a) = (&gb[at..at + n], &ga[at..at + n]);
            for ((ov, gv), av) in o.iter_mut().zip(g).zip(a) {
                *ov = ov
                    .wrapping_add(pj.wrapping_mul(*gv))
                    .wrapping_add(qj.wrapping_mul(*av));
            }
        }
    }
}
