//! Party identities. A party id is not a `usize`: it is P0 or P1.

use core::fmt;

use serde::{Deserialize, Serialize};

/// One of the two computing parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PartyId {
    /// P0: in SecFormer's deployment the model owner; adds public constants.
    P0,
    /// P1: the data owner; receives corrections from the dealer.
    P1,
}

impl PartyId {
    /// 0 for P0, 1 for P1.
    #[inline]
    pub const fn index(self) -> usize {
        match self {
            PartyId::P0 => 0,
            PartyId::P1 => 1,
        }
    }

    /// The party from 0 or 1; `None` otherwise.
    pub fn from_index(i: u8) -> Option<Self> {
        match i {
            0 => Some(PartyId::P0),
            1 => Some(PartyId::P1),
            _ => None,
        }
    }

    /// The other party.
    #[inline]
    pub fn other(self) -> Self {
        match self {
            PartyId::P0 => PartyId::P1,
            PartyId::P1 => PartyId::P0,
        }
    }

    /// This party's additive share of a public value `c`: P0 holds `c`, P1 holds 0.
    #[inline]
    pub fn share_of_public(self, c: u64) -> u64 {
        match self {
            PartyId::P0 => c,
            PartyId::P1 => 0,
        }
    }

    /// This party's XOR share of a public bit word: P0 holds it, P1 holds 0.
    #[inline]
    pub fn xor_share_of_public(self, c: u64) -> u64 {
        self.share_of_public(c)
    }

    /// Whether this is P0.
    #[inline]
    pub fn is_p0(self) -> bool {
        self == PartyId::P0
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartyId::P0 => f.write_str("P0"),
            PartyId::P1 => f.write_str("P1"),
        }
    }
}
