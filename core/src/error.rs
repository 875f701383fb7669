//! Errors of the core. No variant carries secret data: only sizes, kinds and labels.

use core::fmt;

use crate::dealer::ItemKind;
use crate::fxp::EncodeError;
use crate::transport::TransportError;

/// Result alias of the core.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything that can go wrong in a protocol run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The link to the peer or to the dealer failed, or carried a malformed frame.
    Transport(TransportError),
    /// A value could not be encoded in fixed point.
    Encode(EncodeError),
    /// The caller-provided scratch space is too small.
    Scratch {
        /// Words needed.
        needed: usize,
        /// Words available.
        available: usize,
    },
    /// Slices or matrix shapes do not agree.
    Shape {
        /// What was being checked.
        what: &'static str,
        /// The length or size expected.
        expected: usize,
        /// The length or size given.
        actual: usize,
    },
    /// The party consumed correlated randomness other than what the request announced,
    /// or the two parties asked the dealer for different things.
    DealerMismatch {
        /// Index of the request in the dealer stream.
        seq: u32,
        /// What was announced.
        expected: ItemKind,
        /// What was asked for.
        actual: ItemKind,
    },
    /// Material was consumed without a request announcing it, or a request was left
    /// unconsumed.
    DealerSequence {
        /// Index of the request in the dealer stream.
        seq: u32,
        /// What went wrong.
        what: &'static str,
    },
    /// The dealer refuses a request: an item with parameters no protocol uses, or more
    /// material than its memory limit.
    DealerRequest {
        /// Index of the request in the dealer stream.
        seq: u32,
        /// The refused item.
        item: ItemKind,
        /// Why.
        what: &'static str,
    },
    /// A parameter is outside what the protocol supports.
    Param(&'static str),
    /// The other side reported an error (its message, truncated).
    Peer(heapless::String<96>),
    /// Preprocessed material was refused or could not be read.
    Material(crate::dealer::material::MaterialError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport(e) => write!(f, "transport: {e}"),
            Error::Encode(e) => write!(f, "fixed-point encoding: {e}"),
            Error::Scratch { needed, available } => write!(
                f,
                "scratch space too small: need {needed} words, have {available}"
            ),
            Error::Shape {
                what,
                expected,
                actual,
            } => write!(
                f,
                "shape mismatch in {what}: expected {expected}, got {actual}"
            ),
            Error::DealerMismatch {
                seq,
                expected,
                actual,
            } => write!(
                f,
                "dealer stream mismatch at request #{seq}: expected {expected:?}, got {actual:?} \
                 (both parties must run the same program with the same shapes)"
            ),
            Error::DealerSequence { seq, what } => {
                write!(f, "dealer stream out of order at request #{seq}: {what}")
            }
            Error::DealerRequest { seq, item, what } => {
                write!(f, "the dealer refuses request #{seq}: {item:?} {what}")
            }
            Error::Param(what) => write!(f, "unsupported parameter: {what}"),
            Error::Peer(msg) => write!(f, "the other side reported an error: {msg}"),
            Error::Material(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for Error {}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Peer(msg) => Error::Peer(msg),
            e => Error::Transport(e),
        }
    }
}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Self {
        Error::Encode(e)
    }
}

/// Checks that a slice has the expected length.
#[inline]
pub fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::Shape {
            what,
            expected,
            actual,
        })
    }
}

/// A short message that keeps as much of the formatted text as fits (heapless'
/// `write!` would drop a whole argument that does not fit).
pub fn short_message(args: core::fmt::Arguments<'_>) -> heapless::String<96> {
    struct Cut(heapless::String<96>);
    impl core::fmt::Write for Cut {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for c in s.chars() {
                if self.0.push(c).is_err() {
                    break;
                }
            }
            Ok(())
        }
    }
    let mut w = Cut(heapless::String::new());
    let _ = core::fmt::write(&mut w, args);
    w.0
}
