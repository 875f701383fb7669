//! The dealer's arithmetic: given P0's draws and P1's random draws of an item, compute
//! P1's corrections. Kept apart from any I/O so it is shared by every dealer service
//! (in-process thread, TCP process, preprocessing files).

use crate::arena::check_scratch;
use crate::error::Result;
use crate::kernel::MatMul;

use super::Item;

/// Scratch words [`corrections`] needs for `item`.
pub fn scratch_words(item: &Item) -> usize {
    match *item {
        Item::MatTriple { m, k, n } => {
            let (m, k, n) = (m as usize, k as usize, n as usize);
            m * k + k * n
        }
        Item::WeightTriple { m, k, .. } => m as usize * k as usize,
        _ => 0,
    }
}

/// Fills P1's correction slot of `item` (the last slot) from P0's slots `p0` and P1's
/// random slots. `weight_mask` is the full mask `B = B0 + B1` for weight triples.
pub fn corrections<K: MatMul>(
    item: &Item,
    p0: &[&[u64]],
    p1: &mut [&mut [u64]],
    weight_mask: Option<&[u64]>,
    kernel: &K,
    scratch: &mut [u64],
) -> Result<()> {
    check_scratch(scratch_words(item), scratch.len())?;
    match *item {
        Item::Triple { .. } => {
            let (r, c1) = p1.split_at_mut(2);
            for i in 0..c1[0].len() {
                let a = p0[0][i].wrapping_add(r[0][i]);
                let b = p0[1][i].wrapping_add(r[1][i]);
                c1[0][i] = a.wrapping_mul(b).wrapping_sub(p0[2][i]);
            }
        }
        Item::Square { .. } => {
            let (r, c1) = p1.split_at_mut(1);
            for i in 0..c1[0].len() {
                let a = p0[0][i].wrapping_add(r[0][i]);
                c1[0][i] = a.wrapping_mul(a).wrapping_sub(p0[1][i]);
            }
        }
        Item::MatTriple { m, k, n } => {
            let (m, k, n) = (m as usize, k as usize, n as usize);
            let (a, rest) = scratch.split_at_mut(m * k);
            let b = &mut rest[..k * n];
            for i in 0..m * k {
                a[i] = p0[0][i].wrapping_add(p1[0][i]);
            }
            for i in 0..k * n {
                b[i] = p0[1][i].wrapping_add(p1[1][i]);
            }
            let c1 = &mut *p1[2];
            kernel.gemm(m, k, n, a, b, c1, false);
            crate::ring::sub_assign(c1, p0[2]);
        }
        Item::WeightMask { .. } => {}
        Item::WeightTriple { m, k, n, .. } => {
            let (m, k, n) = (m as usize, k as usize, n as usize);
            let bmask = weight_mask.ok_or(crate::Error::Param(
                "weight triple for an unregistered weight",
            ))?;
            let a = &mut scratch[..m * k];
            for i in 0..m * k {
                a[i] = p0[0][i].wrapping_add(p1[0][i]);
            }
            let c1 = &mut *p1[1];
            kernel.gemm(m, k, n, a, bmask, c1, false);
            crate::ring::sub_assign(c1, p0[1]);
        }
        Item::Trunc { n, .. } => {
            let (r, s1) = p1.split_at_mut(1);
            for i in 0..n as usize {
                let (w, b) = (i / 64, i % 64);
                let uv = ((p0[0][w] & r[0][w]) >> b) & 1;
                s1[0][i] = uv.wrapping_sub(p0[1][i]);
            }
        }
        Item::AndTriple { .. } => {
            let (r, c1) = p1.split_at_mut(2);
            for i in 0..c1[0].len() {
                let a = p0[0][i] ^ r[0][i];
                let b = p0[1][i] ^ r[1][i];
                c1[0][i] = (a & b) ^ p0[2][i];
            }
        }
        Item::PrivAnd { .. } => {
            let (r, w1) = p1.split_at_mut(1);
            for i in 0..w1[0].len() {
                w1[0][i] = (p0[0][i] & r[0][i]) ^ p0[1][i];
            }
        }
    }
    Ok(())
}
