//! Fixed-point encoding of reals in Z_{2^64}.
//!
//! A real `x` is encoded as `round(x * 2^f) mod 2^64` with `f` fractional bits
//! ([`DEFAULT_FRAC_BITS`] = 16 unless configured). The public fixed-point type at the
//! API edge is [`Fixed`] (`fixed::types::I48F16`), which holds exactly the default
//! encoding. A product of two encodings carries `2f` fractional bits and must be
//! truncated (see [`crate::protocols::trunc`]).

use core::fmt;

/// The default number of fractional bits.
pub const DEFAULT_FRAC_BITS: u32 = 16;

/// The public fixed-point type at the API edge: 48 integer bits, 16 fractional bits.
pub type Fixed = fixed::types::I48F16;

/// Why a real could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// NaN or infinite.
    NotFinite,
    /// `|x| * 2^f` does not fit in 63 bits; carries the bound on `|x|` (rounded down).
    OutOfRange {
        /// The largest magnitude that fits with this many fractional bits.
        max_abs: u64,
    },
    /// The number of fractional bits is not in 0..=62.
    BadFracBits(u32),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::NotFinite => write!(f, "value is NaN or infinite"),
            EncodeError::OutOfRange { max_abs } => {
                write!(f, "value out of range: |x| must be below {max_abs}")
            }
            EncodeError::BadFracBits(b) => {
                write!(f, "{b} fractional bits is not supported (use 0..=62)")
            }
        }
    }
}

impl core::error::Error for EncodeError {}

/// A fixed-point encoding with `frac_bits` fractional bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    frac_bits: u32,
}

impl Default for Encoding {
    fn default() -> Self {
        Encoding {
            frac_bits: DEFAULT_FRAC_BITS,
        }
    }
}

impl Encoding {
    /// An encoding with `frac_bits` fractional bits (0..=62; SecFormer uses 16).
    pub fn new(frac_bits: u32) -> Result<Self, EncodeError> {
        if frac_bits > 62 {
            return Err(EncodeError::BadFracBits(frac_bits));
        }
        Ok(Encoding { frac_bits })
    }

    /// The number of fractional bits `f`.
    #[inline]
    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// `2^f` as a real.
    #[inline]
    pub fn scale(&self) -> f64 {
        (1u64 << self.frac_bits) as f64
    }

    /// The ring element of `1.0`.
    #[inline]
    pub fn one(&self) -> u64 {
        1u64 << self.frac_bits
    }

    /// Encodes a real, rounding to nearest; errors on NaN, infinities and magnitudes whose
    /// encoding does not fit in 63 bits.
    pub fn encode(&self, x: f64) -> Result<u64, EncodeError> {
        if !x.is_finite() {
            return Err(EncodeError::NotFinite);
        }
        let v = round(x * self.scale());
        // 2^63 as f64 is exact; anything at or beyond it does not fit.
        let two63 = (1u64 << 63) as f64; // exact in f64
        if !(v > -two63 && v < two63) {
            return Err(EncodeError::OutOfRange {
                max_abs: 1u64 << (63 - self.frac_bits),
            });
        }
        Ok((v as i64) as u64)
    }

    /// Decodes a ring element to a real through the signed view.
    #[inline]
    pub fn decode(&self, x: u64) -> f64 {
        (x as i64) as f64 / self.scale()
    }

    /// Encodes a slice; stops at the first value that does not fit.
    pub fn encode_slice(&self, xs: &[f64], out: &mut [u64]) -> Result<(), EncodeError> {
        for (o, x) in out.iter_mut().zip(xs) {
            *o = self.encode(*x)?;
        }
        Ok(())
    }

    /// Decodes a slice.
    pub fn decode_slice(&self, xs: &[u64], out: &mut [f64]) {
        for (o, x) in out.iter_mut().zip(xs) {
            *o = self.decode(*x);
        }
    }

    /// Encodes a [`Fixed`] value exactly (shifting if this encoding has other than 16
    /// fractional bits; errors if that loses the top bits).
    pub fn encode_fixed(&self, x: Fixed) -> Result<u64, EncodeError> {
        let bits = x.to_bits();
        let f = self.frac_bits;
        if f >= DEFAULT_FRAC_BITS {
            let s = f - DEFAULT_FRAC_BITS;
            let shifted = bits.checked_shl(s).filter(|v| v >> s == bits);
            shifted.map(|v| v as u64).ok_or(EncodeError::OutOfRange {
                max_abs: 1u64 << (63 - f),
            })
        } else {
            // Round to nearest when dropping fractional bits.
            let s = DEFAULT_FRAC_BITS - f;
            Ok(((bits + (1 << (s - 1))) >> s) as u64)
        }
    }

    /// Decodes to a [`Fixed`] value (exact for 16 fractional bits, rounded otherwise).
    pub fn decode_fixed(&self, x: u64) -> Fixed {
        let v = x as i64;
        let f = self.frac_bits;
        let bits = if f >= DEFAULT_FRAC_BITS {
            let s = f - DEFAULT_FRAC_BITS;
            if s == 0 {
                v
            } else {
                (v + (1 << (s - 1))) >> s
            }
        } else {
            v << (DEFAULT_FRAC_BITS - f)
        };
        Fixed::from_bits(bits)
    }
}

/// Rounds half away from zero to an integer (for values well inside `i64`): the hot-path
/// replacement of `libm::round` in the sine protocol and the dealer.
#[inline]
pub fn round_i64(x: f64) -> i64 {
    (x + if x >= 0.0 { 0.5 } else { -0.5 }) as i64
}

/// Round half away from zero without `std` (f64::round is not in `core`).
#[inline]
fn round(x: f64) -> f64 {
    let t = x as i64 as f64; // truncation toward zero (saturating)
    let d = x - t;
    if d >= 0.5 {
        t + 1.0
    } else if d <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        let e = Encoding::default();
        assert_eq!(e.encode(1.0).unwrap(), 1 << 16);
        assert_eq!(e.encode(-1.0).unwrap(), (-(1i64 << 16)) as u64);
        assert_eq!(e.encode(0.5 / 65536.0).unwrap(), 1);
        assert_eq!(e.decode(e.encode(-3.25).unwrap()), -3.25);
        assert_eq!(e.encode(f64::NAN), Err(EncodeError::NotFinite));
        assert!(matches!(
            e.encode(1e15),
            Err(EncodeError::OutOfRange { .. })
        ));
        assert!(matches!(
            e.encode(-1.5e14),
            Err(EncodeError::OutOfRange { .. })
        ));
        assert!(e.encode(1.4e14).is_ok());
        assert!(Encoding::new(63).is_err());
    }

    proptest! {
        #[test]
        fn encode_decode_within_half_lsb(x in -1.0e9f64..1.0e9, f in 0u32..30) {
            let e = Encoding::new(f).unwrap();
            let back = e.decode(e.encode(x).unwrap());
            prop_assert!((back - x).abs() <= 0.5 / e.scale() + 1e-9 * x.abs());
        }

        #[test]
        fn encoding_is_additive(a in -1.0e6f64..1.0e6, b in -1.0e6f64..1.0e6) {
            let e = Encoding::default();
            let s = e.encode(a).unwrap().wrapping_add(e.encode(b).unwrap());
            prop_assert!((e.decode(s) - (a + b)).abs() <= 1.0 / e.scale());
        }

        #[test]
        fn product_has_twice_the_fractional_bits(a in -1.0e4f64..1.0e4, b in -1.0e4f64..1.0e4) {
            let e = Encoding::default();
            let p = e.encode(a).unwrap().wrapping_mul(e.encode(b).unwrap());
            let real = (p as i64) as f64 / (e.scale() * e.scale());
            prop_assert!((real - a * b).abs() <= (a.abs() + b.abs() + 1.0) / e.scale());
        }

        #[test]
        fn fixed_type_round_trips(bits in -(1i64 << 62)..(1i64 << 62)) {
            let e = Encoding::default();
            let x = Fixed::from_bits(bits);
            prop_assert_eq!(e.decode_fixed(e.encode_fixed(x).unwrap()), x);
        }
    }
}
