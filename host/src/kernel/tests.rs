//! Every kernel against the portable one on random and edge shapes, where the CPU can
//! run it; a kernel the CPU lacks is reported as skipped on stderr.

use super::*;
use secformer_core::kernel::gemm_reference;
use secformer_core::prg::{Prg, Seed};

/// Edge shapes (m, k, n): empty and unit sizes, sizes just below and above the tiles
/// (MR 4/6/8, NR 8/16/24/48) and blocks (KC 128/256, NC 768, MC 120/128).
const EDGES: &[(usize, usize, usize)] = &[
    (0, 0, 0),
    (0, 5, 3),
    (3, 0, 5),
    (3, 5, 0),
    (1, 1, 1),
    (1, 0, 1),
    (2, 1, 3),
    (7, 1, 23),
    (8, 128, 24),
    (9, 129, 25),
    (5, 130, 9),
    (13, 3, 17),
    (7, 300, 263),
    (17, 257, 49),
    (6, 255, 47),
    (121, 20, 16),
    (130, 9, 50),
    (3, 40, 800),
    (33, 300, 500),
];

fn random_shapes(prg: &mut Prg, count: usize) -> Vec<(usize, usize, usize)> {
    let mut r = [0u64; 3];
    (0..count)
        .map(|_| {
            prg.fill(&mut r);
            (
                (r[0] % 40) as usize,
                (r[1] % 300) as usize,
                (r[2] % 110) as usize,
            )
        })
        .collect()
}

/// Random a, b and a garbage c (slices one element longer than needed, as callers may
/// pass), and the product the portable kernel gives.
fn case_u64(prg: &mut Prg, m: usize, k: usize, n: usize) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let mut a = vec![0u64; m * k + 1];
    let mut b = vec![0u64; k * n + 1];
    let mut c = vec![0u64; m * n + 1];
    prg.fill(&mut a);
    prg.fill(&mut b);
    prg.fill(&mut c);
    (a, b, c)
}

/// Checks `kern` against the portable kernel, both `accumulate` modes.
fn check_u64(kern: HostKernel, shapes: &[(usize, usize, usize)], prg: &mut Prg) {
    for &(m, k, n) in shapes {
        let (a, b, c0) = case_u64(prg, m, k, n);
        for accumulate in [false, true] {
            let mut want = c0.clone();
            Portable.gemm(m, k, n, &a, &b, &mut want, accumulate);
            let mut got = c0.clone();
            kern.gemm(m, k, n, &a, &b, &mut got, accumulate);
            assert_eq!(
                got,
                want,
                "{} {m}x{k}x{n} accumulate={accumulate}",
                kern.name()
            );
        }
    }
}

fn check_u32(kern: HostKernel, shapes: &[(usize, usize, usize)], prg: &mut Prg) {
    for &(m, k, n) in shapes {
        let (a, b, c0) = case_u64(prg, m, k, n);
        let (a, b, c0): (Vec<u32>, Vec<u32>, Vec<u32>) = (
            a.iter().map(|&x| x as u32).collect(),
            b.iter().map(|&x| (x >> 32) as u32).collect(),
            c0.iter().map(|&x| x as u32).collect(),
        );
        for accumulate in [false, true] {
            let mut want = c0.clone();
            Portable.gemm_u32(m, k, n, &a, &b, &mut want, accumulate);
            let mut got = c0.clone();
            kern.gemm_u32(m, k, n, &a, &b, &mut got, accumulate);
            assert_eq!(
                got,
                want,
                "{} u32 {m}x{k}x{n} accumulate={accumulate}",
                kern.name()
            );
        }
    }
}

/// `gemm_i32` (B sign-extended from 32 bits) against the u64 product of the widened B.
fn check_i32(kern: HostKernel, shapes: &[(usize, usize, usize)], prg: &mut Prg) {
    for &(m, k, n) in shapes {
        let (a, b, c0) = case_u64(prg, m, k, n);
        let narrow: Vec<i32> = b.iter().map(|&x| x as i32).collect();
        let wide: Vec<u64> = narrow.iter().map(|&x| x as i64 as u64).collect();
        for accumulate in [false, true] {
            let mut want = c0.clone();
            Portable.gemm(m, k, n, &a, &wide, &mut want, accumulate);
            let mut got = c0.clone();
            kern.gemm_i32(m, k, n, &a, &narrow, &mut got, accumulate);
            assert_eq!(
                got,
                want,
                "{} i32 {m}x{k}x{n} accumulate={accumulate}",
                kern.name()
            );
        }
    }
}

/// The kernel on `isa`, or a note on stderr that the test skipped it and why.
fn kernel_or_skip(isa: Isa, test: &str) -> Option<HostKernel> {
    let k = HostKernel::with_isa(isa);
    if k.is_none() {
        eprintln!(
            "SKIPPED {test}: {} ({})",
            isa.name(),
            isa.missing().unwrap_or("unavailable")
        );
    }
    k
}

fn check_isa(isa: Isa, test: &str, seed: u64) {
    let Some(kern) = kernel_or_skip(isa, test) else {
        return;
    };
    let mut prg = Prg::new(&Seed::from_u64_for_tests(seed), 0);
    let shapes: Vec<_> = EDGES
        .iter()
        .copied()
        .chain(random_shapes(&mut prg, 60))
        .collect();
    check_u64(kern, &shapes, &mut prg);
    check_u32(kern, &shapes, &mut prg);
    check_i32(kern, &shapes, &mut prg);
    // Shapes large enough to split (>= PAR_MIN_MACS), with ragged edges.
    let big = [
        (33, 300, 500),
        (8, 1000, 530),
        (130, 257, 130),
        (2, 2100, 1000),
    ];
    for threads in [2, 3] {
        check_u64(kern.with_threads(threads), &big, &mut prg);
        check_u32(kern.with_threads(threads), &big, &mut prg);
        check_i32(kern.with_threads(threads), &big, &mut prg);
    }
}

#[test]
fn avx512_matches_portable() {
    check_isa(Isa::Avx512, "avx512_matches_portable", 11);
}

#[test]
fn avx2_matches_portable() {
    check_isa(Isa::Avx2, "avx2_matches_portable", 12);
}

#[test]
fn portable_threads_match_portable() {
    check_isa(Isa::Portable, "portable_threads_match_portable", 13);
}

#[test]
fn detect_matches_reference() {
    let mut prg = Prg::new(&Seed::from_u64_for_tests(9), 0);
    for &(m, k, n) in &[
        (1, 1, 1),
        (5, 130, 9),
        (4, 128, 8),
        (7, 300, 263),
        (13, 3, 17),
    ] {
        let (a, b, _) = case_u64(&mut prg, m, k, n);
        let mut want = vec![0u64; m * n];
        gemm_reference(m, k, n, &a, &b, &mut want);
        let mut got = vec![1u64; m * n];
        HostKernel::detect().gemm(m, k, n, &a, &b, &mut got, false);
        assert_eq!(got, want, "shape {m}x{k}x{n}");
    }
}

/// `MatMul::gemm_u32` through the trait (as the protocols call it, by reference) on every
/// instruction set this CPU has, against the core's portable default, one and two
/// threads.
#[test]
fn gemm_u32_of_every_isa_matches_the_core_portable() {
    fn through_trait<K: MatMul>(
        k: K,
        (m, kk, n): (usize, usize, usize),
        a: &[u32],
        b: &[u32],
        c: &mut [u32],
        acc: bool,
    ) {
        k.gemm_u32(m, kk, n, a, b, c, acc)
    }
    let mut prg = Prg::new(&Seed::from_u64_for_tests(16), 0);
    let mut shapes = random_shapes(&mut prg, 40);
    shapes.extend([(128, 175, 768), (16, 175, 384)]);
    for isa in Isa::ALL {
        let Some(kern) = kernel_or_skip(isa, "gemm_u32_of_every_isa_matches_the_core_portable")
        else {
            continue;
        };
        for kern in [kern, kern.with_threads(2)] {
            let by_ref: &HostKernel = &kern;
            for &(m, k, n) in &shapes {
                let (a, b, c0) = case_u64(&mut prg, m, k, n);
                let low = |v: &[u64]| -> Vec<u32> { v.iter().map(|&x| x as u32).collect() };
                let (a, b, c0) = (low(&a), low(&b), low(&c0));
                for acc in [false, true] {
                    let mut want = c0.clone();
                    Portable.gemm_u32(m, k, n, &a, &b, &mut want, acc);
                    let mut got = c0.clone();
                    through_trait(by_ref, (m, k, n), &a, &b, &mut got, acc);
                    assert_eq!(got, want, "{} u32 {m}x{k}x{n} acc={acc}", kern.name());
                }
            }
        }
    }
}

#[test]
fn portable_u32_matches_naive() {
    let mut prg = Prg::new(&Seed::from_u64_for_tests(14), 0);
    for (m, k, n) in random_shapes(&mut prg, 20) {
        let (a, b, _) = case_u64(&mut prg, m, k, n);
        let (a, b): (Vec<u32>, Vec<u32>) = (
            a.iter().map(|&x| x as u32).collect(),
            b.iter().map(|&x| x as u32).collect(),
        );
        let mut got = vec![7u32; m * n];
        portable_gemm(m, k, n, &a, &b, &mut got, false);
        for i in 0..m {
            for j in 0..n {
                let want = (0..k).fold(0u32, |s, p| {
                    s.wrapping_add(a[i * k + p].wrapping_mul(b[p * n + j]))
                });
                assert_eq!(got[i * n + j], want, "{m}x{k}x{n} at ({i}, {j})");
            }
        }
    }
}

#[test]
fn packed_b_matches_portable() {
    let mut prg = Prg::new(&Seed::from_u64_for_tests(15), 0);
    let shapes: Vec<_> = EDGES
        .iter()
        .copied()
        .chain(random_shapes(&mut prg, 30))
        .collect();
    let big = [(33, 300, 500), (130, 257, 800)];
    for isa in Isa::ALL {
        let Some(kern) = kernel_or_skip(isa, "packed_b_matches_portable") else {
            continue;
        };
        for (threads, shapes) in [(1, &shapes[..]), (2, &big[..])] {
            let kern = kern.with_threads(threads);
            for &(m, k, n) in shapes {
                let (a, b, c0) = case_u64(&mut prg, m, k, n);
                let packed = kern.pack_b(k, n, &b);
                assert_eq!((packed.k(), packed.n(), packed.isa()), (k, n, isa));
                for accumulate in [false, true] {
                    let mut want = c0.clone();
                    Portable.gemm(m, k, n, &a, &b, &mut want, accumulate);
                    let mut got = c0.clone();
                    kern.gemm_packed(m, &a, &packed, &mut got, accumulate);
                    assert_eq!(
                        got,
                        want,
                        "{} packed {m}x{k}x{n} acc={accumulate}",
                        kern.name()
                    );
                }
            }
        }
    }
}
