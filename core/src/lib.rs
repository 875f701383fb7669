//! # secformer-core
//!
//! The `no_std` engine of secformer: two-party secure computation over the ring
//! Z_{2^64} in the semi-honest model with a non-colluding dealer, as in SecFormer
//! (Luo et al., Findings of ACL 2024).
//!
//! Layering (nothing lower imports anything higher):
//!
//! * [`ring`], [`fxp`] (fixed point), [`party`], [`share`]: values and who holds them.
//! * [`transport`]: the byte transport trait over `embedded-io`, framing, byte/round
//!   accounting; [`kernel`]: the matrix-multiply kernel trait.
//! * [`prg`]: seeded ChaCha generators; [`dealer`]: correlated randomness (Beaver
//!   triples, truncation material, AND triples), served by P0's seed alone and by
//!   P1's seed plus corrections streamed from the dealer D.
//! * [`protocols`]: one protocol per file, each over caller-provided slices and scratch.
//! * [`session`]: the per-party context the protocols run in.
//!
//! Security model: semi-honest P0 and P1, a dealer D that colludes with neither. Every
//! value a party receives is masked by randomness uniform over the ring (or over
//! Z_{2^k} for values reduced mod 2^k). Nothing here is audited: research code.
//!
//! No heap is needed by default; the `alloc` feature adds the dealer service and owned
//! conveniences, `std` adds the in-memory duplex link. The crate builds for
//! `thumbv7em-none-eabihf` with `--no-default-features`.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

#[cfg(target_endian = "big")]
compile_error!(
    "secformer-core sends ring data as little-endian bytes and only supports little-endian targets"
);

pub mod arena;
pub mod bits;
pub mod dealer;
pub mod error;
pub mod fxp;
pub mod kernel;
pub mod log;
pub mod nn;
#[cfg(feature = "noise")]
pub mod noise;
pub mod party;
pub mod prg;
pub mod protocols;
pub mod ring;
pub mod session;
pub mod share;
pub mod transport;

pub use error::{Error, Result};
pub use party::PartyId;
pub use share::{AShare, BShare};
