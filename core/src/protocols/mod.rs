//! The protocols, one per file. Each doc comment gives the math, the rounds and the
//! payload bytes per party, which tests assert against the transport counters.
//!
//! Conventions: inputs and outputs are slices of shares; scratch is a caller-provided
//! `&mut [u64]` of at least the documented `scratch_words`; fixed-point products are
//! truncated with the session's truncation mode unless a function says otherwise.
//! Opened values are always masked by dealer randomness uniform over the ring.

pub mod bitmul;
pub mod compare;
pub mod fourier;
pub mod gelu;
pub mod input;
pub mod layernorm;
pub mod linear;
pub mod matmul;
pub mod mul;
pub mod norm;
pub mod reciprocal;
pub mod reveal;
pub mod rowmul;
pub mod rsqrt;
pub mod softmax_2quad;
pub mod softmax_exact;
pub mod square;
pub mod tanh;
pub mod trunc;
pub mod weight;

/// Communication of one protocol call for one party: rounds waited and payload bytes
/// sent. Every protocol documents its cost and exposes it as a `cost` function, which the
/// tests compare with the transport counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Rounds.
    pub rounds: u64,
    /// Payload bytes sent by each party.
    pub bytes: u64,
}

impl core::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            rounds: self.rounds + o.rounds,
            bytes: self.bytes + o.bytes,
        }
    }
}

impl Cost {
    /// `r` rounds and `b` bytes.
    pub const fn new(rounds: u64, bytes: u64) -> Cost {
        Cost { rounds, bytes }
    }
}
