//! Product of two shared matrices (Beaver matrix triple), e.g. attention `Q K^T`.
//!
//! With `A (m x k)`, `B (k x n)`, `C = A B` from the dealer, the parties open
//! `E = X - A` and `F = Y - B` in one message; then
//! `Z_0 = C_0 + E (B_0 + F) + A_0 F` and `Z_1 = C_1 + E B_1 + A_1 F`
//! (two local matmuls per party), truncated for fixed point.
//!
//! Cost per party: 1 round and `8(mk + kn)` payload bytes, plus the truncation (1 round,
//! `ceil(mn/8)` bytes). D sends P1 `8mn` bytes (+ `mn ceil(f/8)`).
//!
//! Valid input range: every output sum `|sum_k x_ik y_kj| < 2^30` at `f = 16` (below `2^62`
//! ring units before the truncation, see [`super::trunc`]).

use crate::arena::Arena;
use crate::dealer::{Dealer, Item};
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::{trunc, Width};

/// Scratch words for an `m x k` by `k x n` product.
pub fn scratch_words(m: usize, k: usize, n: usize) -> usize {
    (3 * (m * k + k * n) + m * n).max(trunc::scratch_words(m * n))
}

/// Fixed-point matrix product `out = x y` (row-major; truncated).
pub fn matmul<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    m: usize,
    k: usize,
    n: usize,
    x: &[AShare],
    y: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    check_len("matmul left operand", m * k, x.len())?;
    check_len("matmul right operand", k * n, y.len())?;
    check_len("matmul output", m * n, out.len())?;
    let item = Item::MatTriple {
        m: m as u32,
        k: k as u32,
        n: n as u32,
    };
    if s.trunc_mode == trunc::TruncMode::Faithful {
        s.dealer
            .request(&[item, trunc::item(m * n, s.enc.frac_bits())])?;
    } else {
        s.dealer.request(&[item])?;
    }
    {
        let mut ar = Arena::new(scratch);
        let a = ar.take(m * k)?;
        let b = ar.take(k * n)?;
        let c = AShare::raw_slice_mut(out);
        s.dealer.take(item, &mut [&mut *a, &mut *b, &mut *c])?;
        let mine = ar.take(m * k + k * n)?;
        let theirs = ar.take(m * k + k * n)?;
        let (xs, ys) = (AShare::raw_slice(x), AShare::raw_slice(y));
        crate::ring::sub_into(&mut mine[..m * k], xs, a);
        crate::ring::sub_into(&mut mine[m * k..], ys, b);
        s.peer.exchange_u64(mine, theirs)?;
        crate::ring::add_assign(theirs, mine);
        let (e, f) = theirs.split_at(m * k);
        if s.party.is_p0() {
            crate::ring::add_assign(b, f);
        }
        // Z = C + E B' + A F
        s.kernel.gemm(m, k, n, e, b, c, true);
        s.kernel.gemm(m, k, n, a, f, c, true);
    }
    trunc::run(s, out, scratch)
}

/// Scratch words for [`matmul_batch`].
pub fn batch_scratch_words(batch: usize, m: usize, k: usize, n: usize) -> usize {
    (batch * (3 * (m * k + k * n))).max(trunc::scratch_words(batch * m * n))
}

/// `batch` independent products `out_b = x_b y_b` (e.g. one per attention head) in one
/// round: every `E_b`, `F_b` goes in one message, then one truncation.
/// Cost: 2 rounds, `8 batch (mk + kn) + ceil(batch mn / 8)` bytes per party.
pub fn matmul_batch<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    x: &[AShare],
    y: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let dims = (batch, m, k, n);
    matmul_batch_in(s, dims, x, y, Width::FULL, out, scratch)
}

/// [`matmul_batch`] in the ring of `ring`'s `m` bits: `E` and `F` are opened in
/// `m / 8` bytes per entry and the truncation lifts the products, known modulo
/// `2^m`, to full shares. Valid while every output `|x_b y_b| < 2^(m - 2 - 2f)` (`2^14` at
/// 48 bits and `f = 16`). `dims` is `(batch, m, k, n)`. Cost: [`batch_cost_in`].
pub fn matmul_batch_in<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    dims: (usize, usize, usize, usize),
    x: &[AShare],
    y: &[AShare],
    ring: Width,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    check_batch(dims, x, y, out)?;
    let item = triples_item(dims);
    let ring = trunc::usable(s.trunc_mode, ring);
    if s.trunc_mode == trunc::TruncMode::Faithful {
        let f = s.enc.frac_bits();
        s.dealer
            .request(&[item, trunc::item_in(out.len(), f, ring)])?;
    } else {
        s.dealer.request(&[item])?;
    }
    product_batch_in(s, dims, x, y, ring, out, scratch)?;
    let f = s.enc.frac_bits();
    trunc::run_in(s, out, f, ring, scratch)
}

/// [`matmul_batch_in`] without the truncation: `out` gets the products at `2f` fractional
/// bits, correct modulo `2^m` (`m` = `ring`'s bits; the full ring under the local
/// truncation), for a consumer that truncates them itself (the 2Quad softmax fuses the
/// truncation with its square, [`super::softmax_2quad::softmax_2quad_wide`]). Cost:
/// [`batch_wide_cost_in`].
pub fn matmul_batch_wide_in<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    dims: (usize, usize, usize, usize),
    x: &[AShare],
    y: &[AShare],
    ring: Width,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    check_batch(dims, x, y, out)?;
    let ring = trunc::usable(s.trunc_mode, ring);
    s.dealer.request(&[triples_item(dims)])?;
    product_batch_in(s, dims, x, y, ring, out, scratch)
}

fn check_batch(
    dims: (usize, usize, usize, usize),
    x: &[AShare],
    y: &[AShare],
    out: &[AShare],
) -> Result<()> {
    let (batch, m, k, n) = dims;
    check_len("batched matmul left operand", batch * m * k, x.len())?;
    check_len("batched matmul right operand", batch * k * n, y.len())?;
    check_len("batched matmul output", batch * m * n, out.len())
}

fn triples_item(dims: (usize, usize, usize, usize)) -> Item {
    let (batch, m, k, n) = dims;
    Item::MatTriples {
        batch: batch as u32,
        m: m as u32,
        k: k as u32,
        n: n as u32,
    }
}

/// The Beaver products of a batch (material requested), untruncated, modulo `2^m`.
fn product_batch_in<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    dims: (usize, usize, usize, usize),
    x: &[AShare],
    y: &[AShare],
    ring: Width,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let (batch, m, k, n) = dims;
    let item = triples_item(dims);
    let (mk, kn, mn) = (m * k, k * n, m * n);
    let mut ar = Arena::new(scratch);
    let a = ar.take(batch * mk)?;
    let b = ar.take(batch * kn)?;
    let c = AShare::raw_slice_mut(out);
    s.dealer.take(item, &mut [&mut *a, &mut *b, &mut *c])?;
    let mine = ar.take(batch * (mk + kn))?;
    let theirs = ar.take(batch * (mk + kn))?;
    crate::ring::sub_into(&mut mine[..batch * mk], AShare::raw_slice(x), a);
    crate::ring::sub_into(&mut mine[batch * mk..], AShare::raw_slice(y), b);
    s.peer.exchange_narrow(mine, theirs, ring.entry_bytes())?;
    crate::ring::add_assign(theirs, mine);
    let (e, f) = theirs.split_at(batch * mk);
    if s.party.is_p0() {
        crate::ring::add_assign(b, f);
    }
    for i in 0..batch {
        let ci = &mut c[i * mn..(i + 1) * mn];
        s.kernel.gemm(
            m,
            k,
            n,
            &e[i * mk..(i + 1) * mk],
            &b[i * kn..(i + 1) * kn],
            ci,
            true,
        );
        s.kernel.gemm(
            m,
            k,
            n,
            &a[i * mk..(i + 1) * mk],
            &f[i * kn..(i + 1) * kn],
            ci,
            true,
        );
    }
    Ok(())
}

/// Cost of [`matmul_batch`].
pub fn batch_cost(batch: usize, m: usize, k: usize, n: usize) -> super::Cost {
    batch_cost_in(batch, m, k, n, Width::FULL)
}

/// Cost of [`matmul_batch_in`].
pub fn batch_cost_in(batch: usize, m: usize, k: usize, n: usize, ring: Width) -> super::Cost {
    batch_wide_cost_in(batch, m, k, n, ring) + trunc::cost(batch * m * n)
}

/// Cost of [`matmul_batch_wide_in`] (the opening alone).
pub fn batch_wide_cost_in(batch: usize, m: usize, k: usize, n: usize, ring: Width) -> super::Cost {
    let entries = (batch * (m * k + k * n)) as u64;
    super::Cost::new(1, ring.entry_bytes() as u64 * entries)
}
