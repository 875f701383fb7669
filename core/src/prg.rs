//! Seeded pseudo-random generators: ChaCha12 keyed by a 32-byte [`Seed`], with
//! independent streams selected by a stream number (so the dealer can re-derive one
//! party's weight masks without replaying its whole sequential stream).

use rand_chacha::ChaCha12Rng;
use rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// A 32-byte PRG seed. Its `Debug` prints nothing of the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed(pub [u8; 32]);

impl core::fmt::Debug for Seed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Seed(..)")
    }
}

impl Seed {
    /// A seed for tests and examples derived from a number (never use in deployment;
    /// deployments draw seeds from the OS).
    pub fn from_u64_for_tests(x: u64) -> Seed {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&x.to_le_bytes());
        s[8] = 0x5f;
        Seed(s)
    }
}

/// The stream of a party's sequential dealer material.
pub const STREAM_MAIN: u64 = 0;
/// Base of the per-weight mask streams (`STREAM_WEIGHT_BASE + weight id`).
pub const STREAM_WEIGHT_BASE: u64 = 1 << 32;

/// The stream of one pass of preprocessed material: pass `index` of preprocessing `prep`
/// (the top bit set keeps it apart from the main and weight streams). Every pass has its
/// own stream, so passes can be drawn in any order and never share randomness.
pub fn pass_stream(prep: u64, index: u32) -> u64 {
    // splitmix64 finalizer: a bijection, so distinct preprocessing ids map apart.
    let mut z = prep.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (1 << 63) | ((z ^ index as u64) & !(1 << 63))
}

/// A ChaCha12 generator with helpers that fill word buffers quickly.
pub struct Prg {
    rng: ChaCha12Rng,
}

impl core::fmt::Debug for Prg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Prg(..)")
    }
}

impl Prg {
    /// The generator of `seed` on stream `stream`.
    pub fn new(seed: &Seed, stream: u64) -> Prg {
        let mut rng = ChaCha12Rng::from_seed(seed.0);
        rng.set_stream(stream);
        Prg { rng }
    }

    /// Fills `out` with uniform ring elements.
    #[inline]
    pub fn fill(&mut self, out: &mut [u64]) {
        self.rng.fill_bytes(bytemuck::cast_slice_mut(out));
        // Little-endian targets only (checked at the crate root), so the byte view is the
        // value; no conversion needed.
    }

    /// Fills `out` with uniform elements of Z_{2^k} (the low `k` bits).
    pub fn fill_mod(&mut self, out: &mut [u64], k: u32) {
        self.fill(out);
        let m = crate::ring::low_mask(k);
        for x in out {
            *x &= m;
        }
    }

    /// Fills packed bit words; the bits past `nbits` in the last word are zero.
    pub fn fill_bits(&mut self, out: &mut [u64], nbits: usize) {
        self.fill(out);
        clear_tail(out, nbits);
    }

    /// One uniform ring element.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}

/// Zeroes the bits at positions `nbits..` of a packed bit buffer.
pub fn clear_tail(words: &mut [u64], nbits: usize) {
    let full = nbits / 64;
    let rem = nbits % 64;
    if full < words.len() {
        if rem != 0 {
            words[full] &= (1u64 << rem) - 1;
            for w in &mut words[full + 1..] {
                *w = 0;
            }
        } else {
            for w in &mut words[full..] {
                *w = 0;
            }
        }
    }
}

/// Words needed to hold `nbits` packed bits.
#[inline]
pub const fn words_for_bits(nbits: usize) -> usize {
    nbits.div_ceil(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let s = Seed::from_u64_for_tests(7);
        let mut a = [0u64; 8];
        let mut b = [0u64; 8];
        let mut c = [0u64; 8];
        Prg::new(&s, 0).fill(&mut a);
        Prg::new(&s, 0).fill(&mut b);
        Prg::new(&s, 1).fill(&mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn bits_tail_is_clear() {
        let mut w = [0u64; 2];
        Prg::new(&Seed::from_u64_for_tests(1), 0).fill_bits(&mut w, 70);
        assert_eq!(w[1] >> 6, 0);
    }
}
