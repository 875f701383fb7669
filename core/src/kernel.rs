//! The matrix-multiply kernel trait and a portable kernel.
//!
//! Protocols call [`MatMul::gemm`] for every ring matrix product; the host plugs in a
//! SIMD kernel (AVX-512/AVX2, chosen at run time), a device keeps [`Portable`].

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

/// Blocked i-k-j loops (that compilers vectorize where they can) over any B element
/// that `widen` turns into a ring element.
#[allow(clippy::too_many_arguments)]
fn portable_blocked<B: Copy>(
    m: usize,
    k: usize,
    n: usize,
    a: &[u64],
    b: &[B],
    c: &mut [u64],
    accumulate: bool,
    widen: impl Fn(B) -> u64,
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm: slice too short"
    );
    if !accumulate {
        c[..m * n].fill(0);
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
}
