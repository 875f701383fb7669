//! The ring Z_{2^64}: `u64` with wrapping arithmetic, its signed (two's complement)
//! view, and slice helpers the protocols are built from.

/// Number of bits of a ring element.
pub const BITS: u32 = 64;

/// The signed view of a ring element (two's complement).
#[inline]
pub fn signed(x: u64) -> i64 {
    x as i64
}

/// The ring element of a signed integer.
#[inline]
pub fn from_signed(x: i64) -> u64 {
    x as u64
}

/// The most significant bit (1 for negative values in the signed view).
#[inline]
pub fn msb(x: u64) -> u64 {
    x >> 63
}

/// The mask of the low `k` bits (`k` in 0..=64).
#[inline]
pub fn low_mask(k: u32) -> u64 {
    if k >= 64 {
        u64::MAX
    } else {
        (1u64 << k) - 1
    }
}

/// `a[i] += b[i]`.
#[inline]
pub fn add_assign(a: &mut [u64], b: &[u64]) {
    debug_assert_eq!(a.len(), b.len());
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.wrapping_add(*y);
    }
}

/// `a[i] -= b[i]`.
#[inline]
pub fn sub_assign(a: &mut [u64], b: &[u64]) {
    debug_assert_eq!(a.len(), b.len());
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.wrapping_sub(*y);
    }
}

/// `out[i] = a[i] - b[i]`.
#[inline]
pub fn sub_into(out: &mut [u64], a: &[u64], b: &[u64]) {
    debug_assert!(out.len() == a.len() && a.len() == b.len());
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x.wrapping_sub(*y);
    }
}

/// `a[i] *= c` for a public ring constant `c`.
#[inline]
pub fn scale_assign(a: &mut [u64], c: u64) {
    for x in a {
        *x = x.wrapping_mul(c);
    }
}

/// `a[i] = -a[i]`.
#[inline]
pub fn neg_assign(a: &mut [u64]) {
    for x in a {
        *x = x.wrapping_neg();
    }
}

/// `a[i] = a[i] * b[i]` (elementwise product in the ring).
#[inline]
pub fn mul_assign(a: &mut [u64], b: &[u64]) {
    debug_assert_eq!(a.len(), b.len());
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.wrapping_mul(*y);
    }
}

/// Arithmetic (sign-extending) right shift in the signed view.
#[inline]
pub fn sar(x: u64, k: u32) -> u64 {
    ((x as i64) >> k) as u64
}

/// Transposes a row-major `rows x cols` matrix into `out` (`cols x rows`).
pub fn transpose(rows: usize, cols: usize, a: &[u64], out: &mut [u64]) {
    debug_assert!(a.len() == rows * cols && out.len() == rows * cols);
    const B: usize = 16;
    for i0 in (0..rows).step_by(B) {
        for j0 in (0..cols).step_by(B) {
            for i in i0..(i0 + B).min(rows) {
                for j in j0..(j0 + B).min(cols) {
                    out[j * rows + i] = a[i * cols + j];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn add_is_commutative_and_associative(a: u64, b: u64, c: u64) {
            prop_assert_eq!(a.wrapping_add(b), b.wrapping_add(a));
            prop_assert_eq!(a.wrapping_add(b).wrapping_add(c), a.wrapping_add(b.wrapping_add(c)));
        }

        #[test]
        fn mul_distributes_over_add(a: u64, b: u64, c: u64) {
            prop_assert_eq!(a.wrapping_mul(b.wrapping_add(c)), a.wrapping_mul(b).wrapping_add(a.wrapping_mul(c)));
            prop_assert_eq!(a.wrapping_mul(b).wrapping_mul(c), a.wrapping_mul(b.wrapping_mul(c)));
        }

        #[test]
        fn additive_inverse_and_identity(a: u64) {
            prop_assert_eq!(a.wrapping_add(a.wrapping_neg()), 0);
            prop_assert_eq!(a.wrapping_add(0), a);
            prop_assert_eq!(a.wrapping_mul(1), a);
        }

        #[test]
        fn signed_view_round_trips(x: i64) {
            prop_assert_eq!(signed(from_signed(x)), x);
            prop_assert_eq!(msb(from_signed(x)), (x < 0) as u64);
        }

        #[test]
        fn reduction_mod_2k_is_a_ring_homomorphism(a: u64, b: u64, k in 1u32..64) {
            let m = low_mask(k);
            prop_assert_eq!(a.wrapping_add(b) & m, ((a & m).wrapping_add(b & m)) & m);
            prop_assert_eq!(a.wrapping_mul(b) & m, ((a & m).wrapping_mul(b & m)) & m);
        }

        #[test]
        fn slice_ops_match_scalar(v in proptest::collection::vec(any::<(u64, u64)>(), 0..40), c: u64) {
            let mut a: std::vec::Vec<u64> = v.iter().map(|p| p.0).collect();
            let b: std::vec::Vec<u64> = v.iter().map(|p| p.1).collect();
            let orig = a.clone();
            add_assign(&mut a, &b);
            sub_assign(&mut a, &b);
            prop_assert_eq!(&a, &orig);
            scale_assign(&mut a, c);
            for (x, o) in a.iter().zip(&orig) { prop_assert_eq!(*x, o.wrapping_mul(c)); }
        }
    }

    #[test]
    fn transpose_round_trips() {
        let a: std::vec::Vec<u64> = (0..35).collect();
        let mut t = [0u64; 35];
        let mut back = [0u64; 35];
        transpose(5, 7, &a, &mut t);
        transpose(7, 5, &t, &mut back);
        assert_eq!(&back[..], &a[..]);
        assert_eq!(t[1], 7);
    }
}
