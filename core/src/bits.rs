//! Bit-level helpers: packed bit access, 64x64 bit-matrix transposition and bit-slicing
//! (element-major values to bit-plane-major words, so comparison circuits run word-wide
//! over 64 elements at a time).

use crate::prg::words_for_bits;

/// Bit `i` of a packed buffer.
#[inline]
pub fn get(words: &[u64], i: usize) -> u64 {
    (words[i / 64] >> (i % 64)) & 1
}

/// Sets bit `i` of a packed buffer to `b` (0 or 1).
#[inline]
pub fn set(words: &mut [u64], i: usize, b: u64) {
    let (w, s) = (i / 64, i % 64);
    words[w] = (words[w] & !(1u64 << s)) | ((b & 1) << s);
}

/// Copies `n` bits from `src` (starting at bit 0) into `dst` starting at bit `at`.
pub fn copy_bits(dst: &mut [u64], at: usize, src: &[u64], n: usize) {
    if at % 64 == 0 {
        let w = n / 64;
        dst[at / 64..at / 64 + w].copy_from_slice(&src[..w]);
        for i in w * 64..n {
            set(dst, at + i, get(src, i));
        }
    } else {
        for i in 0..n {
            set(dst, at + i, get(src, i));
        }
    }
}

/// Writes the first `n` bits of `src` `copies` times into `dst`, back to back (copy `c` at
/// bit `c n`), and zeroes the rest of `dst`. Word-wide: shifts, not single bits.
pub fn repeat_bits(dst: &mut [u64], src: &[u64], n: usize, copies: usize) {
    dst.fill(0);
    if n == 0 {
        return;
    }
    let full = n / 64;
    let rem = n % 64;
    for c in 0..copies {
        let at = c * n;
        let (w0, s) = (at / 64, at % 64);
        for w in 0..n.div_ceil(64) {
            let x = if w == full {
                src[w] & ((1u64 << rem) - 1)
            } else {
                src[w]
            };
            dst[w0 + w] |= x << s;
            if s != 0 && (x >> (64 - s)) != 0 {
                dst[w0 + w + 1] |= x >> (64 - s);
            }
        }
    }
}

/// Transposes a 64x64 bit matrix in place: bit `j` of word `i` becomes bit `i` of word `j`.
pub fn transpose64(a: &mut [u64; 64]) {
    let mut j = 32usize;
    let mut m: u64 = 0x0000_0000_FFFF_FFFF;
    while j != 0 {
        let mut k = 0usize;
        while k < 64 {
            // Swap the block (rows with bit j clear, columns with bit j set) with the block
            // (rows with bit j set, columns with bit j clear).
            let t = ((a[k] >> j) ^ a[k | j]) & m;
            a[k] ^= t << j;
            a[k | j] ^= t;
            k = ((k | j) + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// Bit-slices the low `k` bits of `vals`: `planes[i * nw + w]` holds bit `i` of elements
/// `64w..64w+63` (bit `e % 64` for element `e`), with `nw = ceil(n / 64)`.
pub fn to_planes(vals: &[u64], k: usize, planes: &mut [u64]) {
    let n = vals.len();
    let nw = words_for_bits(n);
    debug_assert!(planes.len() >= k * nw && k <= 64);
    let mut blk = [0u64; 64];
    for w in 0..nw {
        let lo = w * 64;
        let hi = (lo + 64).min(n);
        blk[..hi - lo].copy_from_slice(&vals[lo..hi]);
        blk[hi - lo..].fill(0);
        transpose64(&mut blk);
        for i in 0..k {
            planes[i * nw + w] = blk[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prg::{Prg, Seed};

    #[test]
    fn transpose_matches_naive() {
        let mut prg = Prg::new(&Seed::from_u64_for_tests(5), 0);
        let mut a = [0u64; 64];
        prg.fill(&mut a);
        let orig = a;
        transpose64(&mut a);
        for i in 0..64 {
            for j in 0..64 {
                assert_eq!((a[j] >> i) & 1, (orig[i] >> j) & 1);
            }
        }
        transpose64(&mut a);
        assert_eq!(a, orig);
    }

    #[test]
    fn repeat_bits_matches_bit_by_bit() {
        let mut prg = Prg::new(&Seed::from_u64_for_tests(6), 0);
        for (n, copies) in [
            (1, 1),
            (5, 3),
            (63, 2),
            (64, 3),
            (65, 2),
            (100, 5),
            (128, 85),
        ] {
            let mut src = std::vec![0u64; words_for_bits(n)];
            prg.fill(&mut src);
            let mut dst = std::vec![!0u64; words_for_bits(n * copies)];
            repeat_bits(&mut dst, &src, n, copies);
            for e in 0..dst.len() * 64 {
                let want = if e < n * copies { get(&src, e % n) } else { 0 };
                assert_eq!(get(&dst, e), want, "n {n} copies {copies} bit {e}");
            }
        }
    }

    #[test]
    fn planes_hold_bits() {
        let vals: std::vec::Vec<u64> = (0..100u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let mut planes = std::vec![0u64; 10 * 2];
        to_planes(&vals, 10, &mut planes);
        for (e, v) in vals.iter().enumerate() {
            for i in 0..10 {
                assert_eq!(get(&planes[i * 2..], e), (v >> i) & 1);
            }
        }
        let mut dst = [0u64; 3];
        copy_bits(&mut dst, 70, &[u64::MAX, 1], 66);
        assert_eq!(get(&dst, 69), 0);
        assert_eq!(get(&dst, 70), 1);
        assert_eq!(get(&dst, 134), 1);
        assert_eq!(get(&dst, 135), 0);
    }
}
