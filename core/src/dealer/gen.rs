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
        Item::WeightMask { .. } | Item::WeightMaskOwned { .. } => {}
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
        Item::AndTriple2 { .. } => {
            let (r, c) = p1.split_at_mut(3);
            let (c1, c2) = c.split_at_mut(1);
            for i in 0..c1[0].len() {
                let a = p0[0][i] ^ r[0][i];
                let b1 = p0[1][i] ^ r[1][i];
                let b2 = p0[2][i] ^ r[2][i];
                c1[0][i] = (a & b1) ^ p0[3][i];
                c2[0][i] = (a & b2) ^ p0[4][i];
            }
        }
        Item::BitMul { n, m, uses } => {
            let (n, m) = (n as usize, m as usize);
            let (rb, rest) = p1.split_at_mut(1);
            let rb: &[u64] = &rb[0][..];
            let rbit = |i: usize| ((p0[0][i / 64] ^ rb[i / 64]) >> (i % 64)) & 1;
            for i in 0..n * m {
                rest[0][i] = rbit(i).wrapping_sub(p0[1][i]);
            }
            for u in 0..uses as usize {
                let (bi, ci) = (1 + 2 * u, 2 + 2 * u);
                for e in 0..n {
                    let b = p0[bi + 1][e].wrapping_add(rest[bi][e]);
                    for j in 0..m {
                        let i = e * m + j;
                        rest[ci][i] = (rbit(i).wrapping_neg() & b).wrapping_sub(p0[ci + 1][i]);
                    }
                }
            }
        }
        Item::RowTriple { rows, cols } => {
            let (rows, cols) = (rows as usize, cols as usize);
            let (r, c1) = p1.split_at_mut(2);
            for i in 0..rows {
                let b = p0[1][i].wrapping_add(r[1][i]);
                for j in 0..cols {
                    let idx = i * cols + j;
                    let a = p0[0][idx].wrapping_add(r[0][idx]);
                    c1[0][idx] = a.wrapping_mul(b).wrapping_sub(p0[2][idx]);
                }
            }
        }
        Item::Sine { n, p, k, f } => {
            let (n, k) = (n as usize, k as usize);
            let mask = crate::ring::low_mask(p as u32);
            let scale = (1u64 << f) as f64;
            let step = 2.0 * core::f64::consts::PI / (1u64 << p) as f64;
            for e in 0..n {
                let t = p0[0][e].wrapping_add(p1[0][e]) & mask;
                let (s1, c1) = libm::sincos(step * t as f64);
                // Angle addition for the harmonics: (c_h, s_h) = (c_1, s_1)^h.
                let (mut ch, mut sh) = (c1, s1);
                for h in 0..k {
                    let idx = 2 * h * n + e;
                    p1[1][idx] =
                        (crate::fxp::round_i64(ch * scale) as u64).wrapping_sub(p0[1][idx]);
                    p1[1][idx + n] =
                        (crate::fxp::round_i64(sh * scale) as u64).wrapping_sub(p0[1][idx + n]);
                    let (nc, ns) = (ch * c1 - sh * s1, sh * c1 + ch * s1);
                    ch = nc;
                    sh = ns;
                }
            }
        }
    }
    Ok(())
}
