//! Fast wrapping-`u64` GEMM for x86-64, chosen at run time.
//!
//! No mainstream crate multiplies wrapping `u64` matrices quickly (gemm, matrixmultiply
//! and faer are float-only), so this module has its own packed kernel. AVX2 lacks a
//! 64-bit low multiply, so each product is built from three 32x32->64 multiplies
//! (`lo*lo`, and the two cross terms shifted by 32), with the cross terms accumulated
//! apart and shifted once at the end (shifting is linear mod 2^64). Without AVX2 the
//! core's portable kernel runs.

use secformer_core::kernel::{MatMul, Portable};

/// The best kernel this CPU supports.
#[derive(Debug, Clone, Copy)]
pub enum HostKernel {
    /// AVX2 packed kernel.
    Avx2,
    /// The core's portable kernel.
    Portable,
}

impl HostKernel {
    /// Detects the CPU's features.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                return HostKernel::Avx2;
            }
        }
        HostKernel::Portable
    }

    /// The kernel's name (for reports).
    pub fn name(&self) -> &'static str {
        match self {
            HostKernel::Avx2 => "avx2",
            HostKernel::Portable => "portable",
        }
    }
}

impl Default for HostKernel {
    fn default() -> Self {
        Self::detect()
    }
}

impl MatMul for HostKernel {
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
        assert!(
            a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
            "gemm: slice too short"
        );
        match self {
            #[cfg(target_arch = "x86_64")]
            HostKernel::Avx2 => avx2::gemm(m, k, n, a, b, c, accumulate),
            _ => Portable.gemm(m, k, n, a, b, c, accumulate),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Columns per micro-panel (two 4-lane vectors).
    const NR: usize = 8;
    /// Rows per micro-tile.
    const MR: usize = 4;
    const KC: usize = 256;

    pub fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[u64],
        b: &[u64],
        c: &mut [u64],
        accumulate: bool,
    ) {
        if !accumulate {
            c[..m * n].fill(0);
        }
        if m == 0 || n == 0 || k == 0 {
            return;
        }
        // No packing: a panel of NR columns of B is read in place (each row's NR words
        // are one cache line) and stays in L1 across the rows of A; a KC-deep block of A
        // stays in L2 across the panels. B streams from memory once.
        let full = n / NR * NR;
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            for j0 in (0..full).step_by(NR) {
                for i0 in (0..m).step_by(MR) {
                    let mr = MR.min(m - i0);
                    let mut tile = [0u64; MR * NR];
                    // SAFETY: only reached when `HostKernel::detect` found AVX2. The
                    // micro-kernel reads rows pc..pc+kc of B at columns j0..j0+NR
                    // (j0 + NR <= n) and rows i0..i0+mr of A at columns pc..pc+kc,
                    // all inside the slices (checked by the caller's length assert).
                    unsafe {
                        micro(
                            kc,
                            &a[i0 * k + pc..],
                            k,
                            mr,
                            &b[pc * n + j0..],
                            n,
                            &mut tile,
                        )
                    };
                    for r in 0..mr {
                        let crow = &mut c[(i0 + r) * n + j0..(i0 + r) * n + j0 + NR];
                        for (t, cv) in crow.iter_mut().enumerate() {
                            *cv = cv.wrapping_add(tile[r * NR + t]);
                        }
                    }
                }
            }
        }
        // Remaining columns (n not a multiple of NR): scalar.
        if full < n {
            for i in 0..m {
                for p in 0..k {
                    let av = a[i * k + p];
                    for j in full..n {
                        c[i * n + j] = c[i * n + j].wrapping_add(av.wrapping_mul(b[p * n + j]));
                    }
                }
            }
        }
    }

    /// The MR x NR micro-kernel: `tile = A[0..mr, 0..kc] * Bpanel`.
    #[target_feature(enable = "avx2")]
    unsafe fn micro(
        kc: usize,
        a: &[u64],
        lda: usize,
        mr: usize,
        b_in: &[u64],
        ldb: usize,
        tile: &mut [u64; MR * NR],
    ) {
        const V: usize = NR / 4;
        let z = _mm256_setzero_si256();
        let mut lo = [[z; V]; MR];
        let mut cr = [[z; V]; MR];
        let mut arow = [0usize; MR];
        for (r, ar) in arow.iter_mut().enumerate() {
            *ar = if r < mr { r * lda } else { 0 };
        }
        let live = [mr > 0, mr > 1, mr > 2, mr > 3];
        for p in 0..kc {
            let bq = &b_in[p * ldb..p * ldb + NR];
            let mut b = [z; V];
            let mut h = [z; V];
            for v in 0..V {
                // SAFETY: bq has NR words; unaligned loads are allowed.
                b[v] = unsafe { _mm256_loadu_si256(bq.as_ptr().add(4 * v) as *const __m256i) };
                h[v] = _mm256_srli_epi64(b[v], 32);
            }
            for r in 0..MR {
                let av = if live[r] { a[arow[r] + p] } else { 0 };
                let al = _mm256_set1_epi64x(av as i64);
                let ah = _mm256_set1_epi64x((av >> 32) as i64);
                for v in 0..V {
                    lo[r][v] = _mm256_add_epi64(lo[r][v], _mm256_mul_epu32(al, b[v]));
                    let c =
                        _mm256_add_epi64(_mm256_mul_epu32(ah, b[v]), _mm256_mul_epu32(al, h[v]));
                    cr[r][v] = _mm256_add_epi64(cr[r][v], c);
                }
            }
        }
        for r in 0..MR {
            for v in 0..V {
                let sum = _mm256_add_epi64(lo[r][v], _mm256_slli_epi64(cr[r][v], 32));
                // SAFETY: tile has MR*NR words; index r*NR + 4v .. +4 is in range.
                unsafe {
                    _mm256_storeu_si256(tile.as_mut_ptr().add(r * NR + 4 * v) as *mut __m256i, sum)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secformer_core::kernel::gemm_reference;
    use secformer_core::prg::{Prg, Seed};

    #[test]
    fn matches_reference_on_odd_shapes() {
        let mut prg = Prg::new(&Seed::from_u64_for_tests(9), 0);
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 130, 9),
            (4, 128, 8),
            (7, 300, 263),
            (13, 3, 17),
        ] {
            let mut a = vec![0u64; m * k];
            let mut b = vec![0u64; k * n];
            prg.fill(&mut a);
            prg.fill(&mut b);
            let mut want = vec![0u64; m * n];
            gemm_reference(m, k, n, &a, &b, &mut want);
            let mut got = vec![1u64; m * n];
            HostKernel::detect().gemm(m, k, n, &a, &b, &mut got, false);
            assert_eq!(got, want, "shape {m}x{k}x{n}");
            HostKernel::detect().gemm(m, k, n, &a, &b, &mut got, true);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(*g, w.wrapping_mul(2));
            }
        }
    }
}
