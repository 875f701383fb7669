//! AVX-512 micro-kernels: `vpmullq` (AVX-512DQ) for wrapping `u64`, `vpmulld` for `u32`.
//!
//! One `vpmullq` gives the low 64 bits of eight 64x64 products, which is exactly the
//! ring product, so a multiply-add costs one multiply and one add (AVX2 needs three
//! 32x32 multiplies). IFMA (`vpmadd52luq`) fuses the add but multiplies 52-bit limbs: a
//! 64-bit ring product needs four of them, and on Zen 4 each runs at the same rate as one
//! `vpmullq`, so it does not pay here (measured: about 0.36 ns per instruction for
//! `vpmullq`, `vpmuludq` and `vpmadd52luq` alike on one core).
//!
//! Tile: 8 rows by 3 vectors (24 `u64` or 48 `u32` columns): 24 accumulators, 3 B
//! vectors and one broadcast fit the 32 `zmm` registers; per depth step it loads 3
//! vectors and broadcasts 8 scalars for 24 multiply-adds.

use std::arch::x86_64::*;

use super::driver::Tile;

/// Eight rows by 24 columns of wrapping `u64`.
pub struct U64x8x24;

// Block sizes: the kernel is bound by the vector multiply and add pipes, not by the
// caches (the B micro-panel streams from L2 at these sizes), and on Zen 4 every KC in
// 64..384, MC in 64..512 and NC in 192..1536 ran within 10% (m = 128 and 512); these
// were among the best.
impl Tile for U64x8x24 {
    type E = u64;
    const MR: usize = 8;
    const NR: usize = 24;
    const KC: usize = 256;
    const MC: usize = 128;
    const NC: usize = 384;

    unsafe fn run(kc: usize, a: *const u64, b: *const u64, c: *mut u64, ldc: usize) {
        // SAFETY: forwarded from the trait's contract (the caller checked the features).
        unsafe { tile_u64(kc, a, b, c, ldc) }
    }
}

#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn tile_u64(kc: usize, a: *const u64, b: *const u64, c: *mut u64, ldc: usize) {
    const MR: usize = 8;
    const NV: usize = 3;
    let mut acc = [[_mm512_setzero_si512(); NV]; MR];
    for p in 0..kc {
        // SAFETY: b holds kc*NR = kc*8*NV elements and a holds kc*MR (the contract).
        let (bp, ap) = unsafe { (b.add(p * 8 * NV), a.add(p * MR)) };
        let mut bv = [_mm512_setzero_si512(); NV];
        for v in 0..NV {
            // SAFETY: in bounds as above; unaligned loads are allowed.
            bv[v] = unsafe { _mm512_loadu_si512(bp.add(8 * v).cast()) };
        }
        for r in 0..MR {
            // SAFETY: in bounds as above.
            let av = _mm512_set1_epi64(unsafe { *ap.add(r) } as i64);
            for v in 0..NV {
                acc[r][v] = _mm512_add_epi64(acc[r][v], _mm512_mullo_epi64(av, bv[v]));
            }
        }
    }
    for r in 0..MR {
        for v in 0..NV {
            // SAFETY: c has MR rows of NR elements, ldc apart (the contract).
            unsafe {
                let p = c.add(r * ldc + 8 * v);
                let sum = _mm512_add_epi64(_mm512_loadu_si512(p.cast()), acc[r][v]);
                _mm512_storeu_si512(p.cast(), sum);
            }
        }
    }
}

/// Eight rows by 48 columns of wrapping `u32`.
pub struct U32x8x48;

impl Tile for U32x8x48 {
    type E = u32;
    const MR: usize = 8;
    const NR: usize = 48;
    const KC: usize = 128;
    const MC: usize = 128;
    const NC: usize = 768;

    unsafe fn run(kc: usize, a: *const u32, b: *const u32, c: *mut u32, ldc: usize) {
        // SAFETY: forwarded from the trait's contract (the caller checked the features).
        unsafe { tile_u32(kc, a, b, c, ldc) }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn tile_u32(kc: usize, a: *const u32, b: *const u32, c: *mut u32, ldc: usize) {
    const MR: usize = 8;
    const NV: usize = 3;
    let mut acc = [[_mm512_setzero_si512(); NV]; MR];
    for p in 0..kc {
        // SAFETY: b holds kc*NR = kc*16*NV elements and a holds kc*MR (the contract).
        let (bp, ap) = unsafe { (b.add(p * 16 * NV), a.add(p * MR)) };
        let mut bv = [_mm512_setzero_si512(); NV];
        for v in 0..NV {
            // SAFETY: in bounds as above; unaligned loads are allowed.
            bv[v] = unsafe { _mm512_loadu_si512(bp.add(16 * v).cast()) };
        }
        for r in 0..MR {
            // SAFETY: in bounds as above.
            let av = _mm512_set1_epi32(unsafe { *ap.add(r) } as i32);
            for v in 0..NV {
                acc[r][v] = _mm512_add_epi32(acc[r][v], _mm512_mullo_epi32(av, bv[v]));
            }
        }
    }
    for r in 0..MR {
        for v in 0..NV {
            // SAFETY: c has MR rows of NR elements, ldc apart (the contract).
            unsafe {
                let p = c.add(r * ldc + 16 * v);
                let sum = _mm512_add_epi32(_mm512_loadu_si512(p.cast()), acc[r][v]);
                _mm512_storeu_si512(p.cast(), sum);
            }
        }
    }
}
