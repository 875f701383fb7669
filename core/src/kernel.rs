//! The matrix-multiply kernel trait and a portable kernel.
//!
//! Protocols call [`MatMul::gemm`] for every ring matrix product (and
//! [`MatMul::gemm_u32`] for the few products computed modulo `2^32`, see
//! [`crate::protocols::lookup`]); the host plugs in a SIMD kernel (AVX-512/AVX2, chosen
//! at run time), a device keeps [`Portable`].

/// A wrapping `u64` matrix-multiply kernel over row-major slices.
pub trait MatMul {
    /// `c = a * b` (or `c += a * b` with `accumulate`), `a` is `m x k`, `b` is `k x n`,
    /// `c` is `m x n`, all row-major, arithmetic mod 2^64.
    fn gemm(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &[u64],
        b: &[u64],
        c: &mut [u64],
        accumulate: bool,
    );

    /// As [`MatMul::gemm`] with `b` given as signed 32-bit values, each standing for the
    /// ring element it sign-extends to. Plaintext fixed-point weights fit (the loader bounds
    /// them by 4096, `2^28` at `f = 16`), so P0 keeps them in half the memory. The default
    /// is the portable loop; a host kernel widens while packing.
    fn gemm_i32(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &[u64],
        b: &[i32],
        c: &mut [u64],
        accumulate: bool,
    ) {
        portable_i32(m, k, n, a, b, c, accumulate)
    }

    /// `c = a * b` (or `c += a * b` with `accumulate`) modulo `2^32`, shapes as in
    /// [`MatMul::gemm`]: a product whose result is needed only in the 32-bit ring (see
    /// [`crate::protocols::Width`]), which SIMD kernels multiply twice as many lanes of at
    /// once. The default is the portable loop.
    fn gemm_u32(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &[u32],
        b: &[u32],
        c: &mut [u32],
        accumulate: bool,
    ) {
        portable_u32(m, k, n, a, b, c, accumulate)
    }
}

/// The portable `c (+)= a * b` modulo `2^32`.
pub fn portable_u32(
    m: usize,
    k: usize,
    n: usize,
    a: &[u32],
    b: &[u32],
    c: &mut [u32],
    accumulate: bool,
) {
    portable_blocked(m, k, n, a, b, c, accumulate, |x| x)
}

/// The portable `c (+)= a * b` with `b` sign-extended from 32 bits.
pub fn portable_i32(
    m: usize,
    k: usize,
    n: usize,
    a: &[u64],
    b: &[i32],
    c: &mut [u64],
    accumulate: bool,
) {
    portable_blocked(m, k, n, a, b, c, accumulate, |x| x as i64 as u64)
}

/// A ring element the portable loops multiply: `u64` (the ring) or `u32` (modulo `2^32`).
trait Ring: Copy + Default {
    fn wrapping_add(self, o: Self) -> Self;
    fn wrapping_mul(self, o: Self) -> Self;
}

impl Ring for u64 {
    fn wrapping_add(self, o: Self) -> Self {
        u64::wrapping_add(self, o)
    }
    fn wrapping_mul(self, o: Self) -> Self {
        u64::wrapping_mul(self, o)
    }
}

impl Ring for u32 {
    fn wrapping_add(self, o: Self) -> Self {
        u32::wrapping_add(self, o)
    }
    fn wrapping_mul(self, o: Self) -> Self {
        u32::wrapping_mul(self, o)
    }
}

/// Blocked i-k-j loops (that compilers vectorize where they can) over any B element
/// that `widen` turns into a ring element `E`.
#[allow(clippy::too_many_arguments)]
fn portable_blocked<E: Ring, B: Copy>(
    m: usize,
    k: usize,
    n: usize,
    a: &[E],
    b: &[B],
    c: &mut [E],
    accumulate: bool,
    widen: impl Fn(B) -> E,
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm: slice too short"
    );
    if !accumulate {
        c[..m * n].fill(E::default());
    }
    const KB: usize = 256;
    for p0 in (0..k).step_by(KB) {
        let p1 = (p0 + KB).min(k);
        for i in 0..m {
            let crow = &mut c[i * n..(i + 1) * n];
            let arow = &a[i * k..(i + 1) * k];
            for p in p0..p1 {
                let av = arow[p];
                let brow = &b[p * n..(p + 1) * n];
                for (cv, bv) in crow.iter_mut().zip(brow) {
                    *cv = cv.wrapping_add(av.wrapping_mul(widen(*bv)));
                }
            }
        }
    }
}

impl<K: MatMul + ?Sized> MatMul for &K {
    fn gemm(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &[u64],
        b: &[u64],
        c: &mut [u64],
        accumulate: bool,
    ) {
        (**self).gemm(m, k, n, a, b, c, accumulate)
    }

    fn gemm_i32(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &[u64],
        b: &[i32],
        c: &mut [u64],
        accumulate: bool,
    ) {
        (**self).gemm_i32(m, k, n, a, b, c, accumulate)
    }

    fn gemm_u32(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &[u32],
        b: &[u32],
        c: &mut [u32],
        accumulate: bool,
    ) {
        (**self).gemm_u32(m, k, n, a, b, c, accumulate)
    }
}

/// A portable kernel: blocked i-k-j loops that compilers vectorize where they can.
#[derive(Debug, Clone, Copy, Default)]
pub struct Portable;

impl MatMul for Portable {
    fn gemm(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &[u64],
        b: &[u64],
        c: &mut [u64],
        accumulate: bool,
    ) {
        portable_blocked(m, k, n, a, b, c, accumulate, |x| x)
    }
}

/// The plaintext reference product (for tests): naive triple loop.
pub fn gemm_reference(m: usize, k: usize, n: usize, a: &[u64], b: &[u64], c: &mut [u64]) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0u64;
            for p in 0..k {
                s = s.wrapping_add(a[i * k + p].wrapping_mul(b[p * n + j]));
            }
            c[i * n + j] = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prg::{Prg, Seed};

    #[test]
    fn portable_matches_reference() {
        let (m, k, n) = (5, 300, 7);
        let mut prg = Prg::new(&Seed::from_u64_for_tests(3), 0);
        let mut a = std::vec![0u64; m * k];
        let mut b = std::vec![0u64; k * n];
        prg.fill(&mut a);
        prg.fill(&mut b);
        let mut c = std::vec![0u64; m * n];
        let mut r = std::vec![0u64; m * n];
        Portable.gemm(m, k, n, &a, &b, &mut c, false);
        gemm_reference(m, k, n, &a, &b, &mut r);
        assert_eq!(c, r);
        Portable.gemm(m, k, n, &a, &b, &mut c, true);
        for (x, y) in c.iter().zip(&r) {
            assert_eq!(*x, y.wrapping_mul(2));
        }
    }

    #[test]
    fn portable_u32_is_the_low_half_of_the_ring_product() {
        let (m, k, n) = (6, 300, 9);
        let mut prg = Prg::new(&Seed::from_u64_for_tests(4), 0);
        let mut a = std::vec![0u64; m * k];
        let mut b = std::vec![0u64; k * n];
        prg.fill(&mut a);
        prg.fill(&mut b);
        let mut r = std::vec![0u64; m * n];
        gemm_reference(m, k, n, &a, &b, &mut r);
        let low = |v: &[u64]| -> std::vec::Vec<u32> { v.iter().map(|&x| x as u32).collect() };
        let mut c = std::vec![7u32; m * n];
        Portable.gemm_u32(m, k, n, &low(&a), &low(&b), &mut c, false);
        assert_eq!(c, low(&r));
        Portable.gemm_u32(m, k, n, &low(&a), &low(&b), &mut c, true);
        for (x, y) in c.iter().zip(&r) {
            assert_eq!(*x, (*y as u32).wrapping_mul(2));
        }
    }
}

/// A kernel that multiplies nothing (for dry runs that only record a program's shape).
#[derive(Debug, Clone, Copy, Default)]
pub struct NullKernel;

impl MatMul for NullKernel {
    fn gemm(
        &self,
        _m: usize,
        _k: usize,
        _n: usize,
        _a: &[u64],
        _b: &[u64],
        _c: &mut [u64],
        _accumulate: bool,
    ) {
    }

    fn gemm_i32(
        &self,
        _m: usize,
        _k: usize,
        _n: usize,
        _a: &[u64],
        _b: &[i32],
        _c: &mut [u64],
        _accumulate: bool,
    ) {
    }

    fn gemm_u32(
        &self,
        _m: usize,
        _k: usize,
        _n: usize,
        _a: &[u32],
        _b: &[u32],
        _c: &mut [u32],
        _accumulate: bool,
    ) {
    }
}
