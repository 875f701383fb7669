//! Share types. An [`AShare`] is one party's additive share of a ring element
//! (`x = x0 + x1 mod 2^64`); a [`BShare`] is one party's XOR share of 64 bit-packed bits
//! (`b = b0 ^ b1`, bit-sliced so AND/XOR layers run word-wide). Neither is a value:
//! there is no arithmetic between a share and a plain `u64` except by public constants,
//! and reading the raw word is an explicit, named operation.
//!
//! Slices of shares convert to and from `&[u64]` without copying ([`AShare::raw_slice`]
//! and friends) so kernels and transports run on plain words.

use bytemuck::{Pod, TransparentWrapper, Zeroable};
use core::ops::{Add, AddAssign, Neg, Sub, SubAssign};

/// One party's additive share of a ring element.
#[derive(Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable, TransparentWrapper)]
#[repr(transparent)]
pub struct AShare(u64);

/// One party's XOR share of 64 bit-packed bits.
#[derive(Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable, TransparentWrapper)]
#[repr(transparent)]
pub struct BShare(u64);

// Debug prints no share content: shares are secrets of their holder.
impl core::fmt::Debug for AShare {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AShare(..)")
    }
}
impl core::fmt::Debug for BShare {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("BShare(..)")
    }
}

macro_rules! share_common {
    ($t:ty) => {
        impl $t {
            /// Wraps a raw share word (e.g. read from a file or a peer).
            #[inline]
            pub const fn from_raw(w: u64) -> Self {
                Self(w)
            }
            /// The raw share word.
            #[inline]
            pub const fn raw(self) -> u64 {
                self.0
            }
            /// Views a slice of shares as raw words.
            #[inline]
            pub fn raw_slice(s: &[Self]) -> &[u64] {
                <Self as TransparentWrapper<u64>>::peel_slice(s)
            }
            /// Views a mutable slice of shares as raw words.
            #[inline]
            pub fn raw_slice_mut(s: &mut [Self]) -> &mut [u64] {
                <Self as TransparentWrapper<u64>>::peel_slice_mut(s)
            }
            /// Views raw words as shares.
            #[inline]
            pub fn from_raw_slice(s: &[u64]) -> &[Self] {
                <Self as TransparentWrapper<u64>>::wrap_slice(s)
            }
            /// Views mutable raw words as shares.
            #[inline]
            pub fn from_raw_slice_mut(s: &mut [u64]) -> &mut [Self] {
                <Self as TransparentWrapper<u64>>::wrap_slice_mut(s)
            }
        }
    };
}
share_common!(AShare);
share_common!(BShare);

impl Add for AShare {
    type Output = AShare;
    #[inline]
    fn add(self, o: AShare) -> AShare {
        AShare(self.0.wrapping_add(o.0))
    }
}
impl Sub for AShare {
    type Output = AShare;
    #[inline]
    fn sub(self, o: AShare) -> AShare {
        AShare(self.0.wrapping_sub(o.0))
    }
}
impl Neg for AShare {
    type Output = AShare;
    #[inline]
    fn neg(self) -> AShare {
        AShare(self.0.wrapping_neg())
    }
}
impl AddAssign for AShare {
    #[inline]
    fn add_assign(&mut self, o: AShare) {
        self.0 = self.0.wrapping_add(o.0);
    }
}
impl SubAssign for AShare {
    #[inline]
    fn sub_assign(&mut self, o: AShare) {
        self.0 = self.0.wrapping_sub(o.0);
    }
}
impl AShare {
    /// Multiplies by a public ring constant (local).
    #[inline]
    pub fn mul_public(self, c: u64) -> AShare {
        AShare(self.0.wrapping_mul(c))
    }
}
impl core::ops::BitXor for BShare {
    type Output = BShare;
    #[inline]
    fn bitxor(self, o: BShare) -> BShare {
        BShare(self.0 ^ o.0)
    }
}

/// Reconstructs a value from both shares (for tests and for the party entitled to it).
#[inline]
pub fn reconstruct(a: AShare, b: AShare) -> u64 {
    a.0.wrapping_add(b.0)
}
