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
pub mod lookup;
pub mod matmul;
pub mod max4;
pub mod mul;
pub mod norm;
pub mod reciprocal;
pub mod reveal;
pub mod rowmul;
pub mod rsqrt;
pub mod softmax_2quad;
pub mod softmax_exact;
pub mod sqscale;
pub mod square;
pub mod tanh;
pub mod trunc;
pub mod trunc_square;
pub mod weight;

/// The width in bytes of the ring an opening is made in: a product whose result is needed
/// only modulo `2^m` (`m = 8 bytes`) opens its masked operands modulo `2^m`, which is as
/// uniform as the full-ring opening and `8 - bytes` bytes shorter per entry; a truncation
/// from that ring ([`trunc::run_in`]) lifts the result back to full 64-bit shares. The
/// narrowest width a product may use follows from the range of its result: a value at
/// `2f` fractional bits below `2^(m - 2 - 2f)` in magnitude (`2^14` at 48 bits, `2^22` at
/// 56, for `f = 16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Width(u8);

impl Width {
    /// The full 64-bit ring.
    pub const FULL: Width = Width(8);

    /// A ring of `bytes` bytes (3 to 8).
    pub const fn bytes(bytes: u8) -> Width {
        assert!(bytes >= 3 && bytes <= 8, "ring widths are 3 to 8 bytes");
        Width(bytes)
    }

    /// The narrowest ring of whole bytes that holds `bits` bits (at least 3 bytes, at
    /// most the full ring).
    pub const fn holding(bits: u32) -> Width {
        let b = bits.div_ceil(8);
        Width(if b < 3 {
            3
        } else if b > 8 {
            8
        } else {
            b as u8
        })
    }

    /// Bytes per opened entry.
    pub const fn entry_bytes(self) -> u8 {
        self.0
    }

    /// Bits of the ring (`m`).
    pub const fn bits(self) -> u32 {
        8 * self.0 as u32
    }
}

/// Opens a masked value modulo `2^m` (`m` = `ring`'s bits) to the precision `2^drop`: each
/// party rounds its share `E_i` of `E = x - B` to a multiple of `2^drop` and sends only the
/// `m - drop` bits above (`ceil((m - drop) / 8)` bytes per entry instead of `m / 8`); both
/// then hold the same public `E' = E - delta`, `|delta| <= 2^drop` (the two roundings), in
/// `mine` (correct modulo `2^m`; the bits above are not reduced). For a value whose
/// consumer reads it to a coarser precision than it is held at (an untruncated product at
/// `2f` bits read to `f`), `x' = E' + B` is `x` to within `2^drop` units.
///
/// Each party sends less than in the full opening, and what it sends is a function of
/// it, so the opening reveals no more. One round.
pub fn open_rounded<T: crate::transport::Transport>(
    peer: &mut T,
    mine: &mut [u64],
    theirs: &mut [u64],
    ring: Width,
    drop: u32,
) -> crate::Result<()> {
    if drop + 8 > ring.bits() {
        return Err(crate::Error::Param(
            "a rounded opening keeps at least 8 bits of its ring",
        ));
    }
    if drop > 0 {
        let (half, ring_mask) = (1u64 << (drop - 1), crate::ring::low_mask(ring.bits()));
        let kept = crate::ring::low_mask(ring.bits() - drop);
        for v in mine.iter_mut() {
            *v = ((*v & ring_mask).wrapping_add(half) >> drop) & kept;
        }
    }
    peer.exchange_narrow(mine, theirs, rounded_entry_bytes(ring, drop))?;
    for (m, t) in mine.iter_mut().zip(theirs.iter()) {
        *m = m.wrapping_add(*t) << drop;
    }
    Ok(())
}

/// Bytes per entry of [`open_rounded`].
pub const fn rounded_entry_bytes(ring: Width, drop: u32) -> u8 {
    ring.bits().saturating_sub(drop).div_ceil(8) as u8
}

/// Communication of one protocol call: rounds waited and the payload bytes each party
/// sends. Every protocol documents its cost and exposes it as a `cost` function, which the
/// tests compare with the transport counters. Most protocols send the same from both
/// sides; the comparisons send less from P1 when one of its values meets several
/// thresholds ([`compare::msb_fanout_run`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Rounds.
    pub rounds: u64,
    /// Payload bytes sent by P0 and by P1.
    pub sent: [u64; 2],
}

impl core::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            rounds: self.rounds + o.rounds,
            sent: [self.sent[0] + o.sent[0], self.sent[1] + o.sent[1]],
        }
    }
}

impl Cost {
    /// `r` rounds and `b` bytes from each party.
    pub const fn new(rounds: u64, bytes: u64) -> Cost {
        Cost {
            rounds,
            sent: [bytes, bytes],
        }
    }

    /// `r` rounds, `p0` bytes from P0 and `p1` from P1.
    pub const fn asymmetric(rounds: u64, p0: u64, p1: u64) -> Cost {
        Cost {
            rounds,
            sent: [p0, p1],
        }
    }

    /// Payload bytes `party` sends.
    pub const fn bytes(&self, party: crate::party::PartyId) -> u64 {
        self.sent[party.index()]
    }

    /// Payload bytes of the party that sends more.
    pub const fn max_bytes(&self) -> u64 {
        if self.sent[0] > self.sent[1] {
            self.sent[0]
        } else {
            self.sent[1]
        }
    }
}

/// Which scores of a `rows x cols` softmax input take part (public: the token count is
/// known to both parties).
#[derive(Debug, Clone, Copy)]
pub enum Mask<'a> {
    /// Every entry.
    All,
    /// One flag per key (column), the same for every row (padding masks).
    Keys(&'a [bool]),
    /// One flag per entry, row-major.
    Entries(&'a [bool]),
    /// Key flags per block of `block_rows` rows: rows `b * block_rows ..` use
    /// `keys[b * cols .. (b + 1) * cols]` (several texts, each with its own padding).
    Blocks {
        /// `blocks x cols` flags.
        keys: &'a [bool],
        /// Rows per block.
        block_rows: usize,
    },
}

impl Mask<'_> {
    /// Whether entry `idx` (row-major, `cols` per row) takes part.
    #[inline]
    pub fn keep(&self, cols: usize, idx: usize) -> bool {
        match self {
            Mask::All => true,
            Mask::Keys(k) => k[idx % cols],
            Mask::Entries(e) => e[idx],
            Mask::Blocks { keys, block_rows } => {
                keys[(idx / cols / block_rows) * cols + idx % cols]
            }
        }
    }

    /// Checks the mask's length against the shape.
    pub fn check(&self, rows: usize, cols: usize) -> crate::Result<()> {
        match self {
            Mask::All => Ok(()),
            Mask::Keys(k) => crate::error::check_len("softmax key mask", cols, k.len()),
            Mask::Entries(e) => crate::error::check_len("softmax mask", rows * cols, e.len()),
            Mask::Blocks { keys, block_rows } => {
                if *block_rows == 0 || rows % block_rows != 0 {
                    return Err(crate::Error::Param(
                        "softmax mask blocks must divide the rows",
                    ));
                }
                crate::error::check_len("softmax key mask", rows / block_rows * cols, keys.len())
            }
        }
    }
}
