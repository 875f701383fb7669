//! AVX2 micro-kernels for the packed driver.
//!
//! AVX2 has no 64-bit low multiply, so a wrapping `u64` product is built from three
//! 32x32->64 multiplies: `lo(a)*lo(b)`, and the two cross terms `hi(a)*lo(b)` and
//! `lo(a)*hi(b)`, which only matter shifted left by 32. The cross terms go to their own
//! accumulators and are shifted once at the end (shifting is linear mod 2^64). `u32`
//! uses `vpmulld` directly.

use std::arch::x86_64::*;

use super::driver::Tile;

/// Four rows by 8 columns of wrapping `u64`: 16 accumulators (low and cross terms) plus
/// the B halves exceed the 16 `ymm` registers, so a few spill to L1; on Zen 4 the 4 x 4,
/// 2 x 8, 6 x 4, 3 x 8, 8 x 4 and 2 x 12 tiles that spill less ran within 10% of it.
pub struct U64x4x8;

impl Tile for U64x4x8 {
    type E = u64;
    const MR: usize = 4;
    const NR: usize = 8;
    const KC: usize = 256;
    const MC: usize = 128;
    const NC: usize = 768;

    unsafe fn run(kc: usize, a: *const u64, b: *const u64, c: *mut u64, ldc: usize) {
        // SAFETY: forwarded from the trait's contract (the caller checked the features).
        unsafe { tile_u64::<4, 2>(kc, a, b, c, ldc) }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn tile_u64<const MR: usize, const NV: usize>(
    kc: usize,
    a: *const u64,
    b: *const u64,
    c: *mut u64,
    ldc: usize,
) {
    let z = _mm256_setzero_si256();
    let mut lo = [[z; NV]; MR];
    let mut cross = [[z; NV]; MR];
    for p in 0..kc {
        // SAFETY: b holds kc*NR = kc*4*NV elements and a holds kc*MR (the contract).
        let (bp, ap) = unsafe { (b.add(p * 4 * NV), a.add(p * MR)) };
        let mut bl = [z; NV];
        let mut bh = [z; NV];
        for v in 0..NV {
            // SAFETY: in bounds as above; unaligned loads are allowed.
            bl[v] = unsafe { _mm256_loadu_si256(bp.add(4 * v).cast()) };
            bh[v] = _mm256_srli_epi64(bl[v], 32);
        }
        for r in 0..MR {
            // SAFETY: in bounds as above.
            let al = _mm256_set1_epi64x(unsafe { *ap.add(r) } as i64);
            let ah = _mm256_srli_epi64(al, 32);
            for v in 0..NV {
                lo[r][v] = _mm256_add_epi64(lo[r][v], _mm256_mul_epu32(al, bl[v]));
                let x = _mm256_add_epi64(_mm256_mul_epu32(ah, bl[v]), _mm256_mul_epu32(al, bh[v]));
                cross[r][v] = _mm256_add_epi64(cross[r][v], x);
            }
        }
    }
    for r in 0..MR {
        for v in 0..NV {
            let sum = _mm256_add_epi64(lo[r][v], _mm256_slli_epi64(cross[r][v], 32));
            // SAFETY: c has MR rows of NR elements, ldc apart (the contract).
            unsafe {
                let p = c.add(r * ldc + 4 * v);
                _mm256_storeu_si256(
                    p.cast(),
                    _mm256_add_epi64(_mm256_loadu_si256(p.cast()), sum),
                );
            }
        }
    }
}

/// Six rows by 16 columns of wrapping `u32` (12 accumulators, 2 B vectors, 1 broadcast).
pub struct U32x6x16;

impl Tile for U32x6x16 {
    type E = u32;
    const MR: usize = 6;
    const NR: usize = 16;
    const KC: usize = 256;
    const MC: usize = 120;
    const NC: usize = 768;

    unsafe fn run(kc: usize, a: *const u32, b: *const u32, c: *mut u32, ldc: usize) {
        // SAFETY: forwarded from the trait's contract (the caller checked the features).
        unsafe { tile_u32(kc, a, b, c, ldc) }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn tile_u32(kc: usize, a: *const u32, b: *const u32, c: *mut u32, ldc: usize) {
    const MR: usize = 6;
    const NV: usize = 2;
    let mut acc = [[_mm256_setzero_si256(); NV]; MR];
    for p in 0..kc {
        // SAFETY: b holds kc*NR = kc*8*NV elements and a holds kc*MR (the contract).
        let (bp, ap) = unsafe { (b.add(p * 8 * NV), a.add(p * MR)) };
        let mut bv = [_mm256_setzero_si256(); NV];
        for v in 0..NV {
            // SAFETY: in bounds as above; unaligned loads are allowed.
            bv[v] = unsafe { _mm256_loadu_si256(bp.add(8 * v).cast()) };
        }
        for r in 0..MR {
            // SAFETY: in bounds as above.
            let av = _mm256_set1_epi32(unsafe { *ap.add(r) } as i32);
            for v in 0..NV {
                acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_mullo_epi32(av, bv[v]));
            }
        }
    }
    for r in 0..MR {
        for v in 0..NV {
            // SAFETY: c has MR rows of NR elements, ldc apart (the contract).
            unsafe {
                let p = c.add(r * ldc + 8 * v);
                _mm256_storeu_si256(
                    p.cast(),
                    _mm256_add_epi32(_mm256_loadu_si256(p.cast()), acc[r][v]),
                );
            }
        }
    }
}
