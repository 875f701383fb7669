//! Why a link could not be set up. Every variant names the peer's address; a refusal
//! names the key that was refused and where trusted keys come from.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use super::identity::PublicKey;

/// Why a peer refused us, as it said in its cleartext refusal notice.
///
/// The notice is unauthenticated (anyone on the path could forge one), so it only ever
/// turns a failing handshake into a clearer message; it never makes one succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Our public key is not in the peer's trust files.
    UntrustedKey,
    /// The peer speaks another link version or cipher suite.
    Unsupported,
    /// A reason code this version does not know.
    Other(u8),
}

impl Refusal {
    pub(crate) fn code(self) -> u8 {
        match self {
            Refusal::UntrustedKey => 1,
            Refusal::Unsupported => 2,
            Refusal::Other(c) => c,
        }
    }

    pub(crate) fn from_code(c: u8) -> Self {
        match c {
            1 => Refusal::UntrustedKey,
            2 => Refusal::Unsupported,
            c => Refusal::Other(c),
        }
    }
}

/// A failed link set-up (handshake). Errors after the handshake are `io::Error`s from
/// the link's `embedded_io` implementation.
#[derive(Debug)]
pub enum LinkError {
    /// The socket failed.
    Io {
        /// The peer.
        addr: SocketAddr,
        /// What we were doing.
        during: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The handshake did not complete within its time limit.
    Timeout {
        /// The peer.
        addr: SocketAddr,
        /// The limit.
        after: Duration,
    },
    /// The peer closed the connection during the handshake.
    Closed {
        /// The peer.
        addr: SocketAddr,
    },
    /// The peer does not speak this link protocol (junk, an HTTP client, a port scan).
    NotALinkPeer {
        /// The peer.
        addr: SocketAddr,
        /// The first bytes it sent, escaped.
        got: String,
    },
    /// The peer speaks another version or cipher suite.
    Unsupported {
        /// The peer.
        addr: SocketAddr,
        /// What differs.
        detail: String,
    },
    /// A handshake message of the wrong size.
    Malformed {
        /// The peer.
        addr: SocketAddr,
        /// What was wrong.
        detail: String,
    },
    /// The Noise handshake failed cryptographically (tampering, or not the key it claims).
    Handshake {
        /// The peer.
        addr: SocketAddr,
        /// The Noise error.
        detail: String,
    },
    /// The peer proved a key that is not in our trust store: we refused it.
    Untrusted {
        /// The peer.
        addr: SocketAddr,
        /// Its key.
        key: PublicKey,
        /// Where our trusted keys come from (file names).
        sources: Vec<String>,
    },
    /// The peer refused us.
    Refused {
        /// The peer.
        addr: SocketAddr,
        /// Its reason.
        reason: Refusal,
        /// Our key, which it refused.
        ours: PublicKey,
        /// Our name.
        our_name: String,
    },
}

impl LinkError {
    /// The peer's address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            LinkError::Io { addr, .. }
            | LinkError::Timeout { addr, .. }
            | LinkError::Closed { addr }
            | LinkError::NotALinkPeer { addr, .. }
            | LinkError::Unsupported { addr, .. }
            | LinkError::Malformed { addr, .. }
            | LinkError::Handshake { addr, .. }
            | LinkError::Untrusted { addr, .. }
            | LinkError::Refused { addr, .. } => *addr,
        }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Io {
                addr,
                during,
                source,
            } => write!(f, "link to {addr}: {during} failed: {source}"),
            LinkError::Timeout { addr, after } => write!(
                f,
                "link to {addr}: no complete handshake within {after:?} (not a secformer \
                 endpoint, or stalled)"
            ),
            LinkError::Closed { addr } => write!(
                f,
                "link to {addr}: the peer closed the connection during the handshake"
            ),
            LinkError::NotALinkPeer { addr, got } => {
                write!(f, "refusing {addr}: not a secformer link (it sent {got})")?;
                if got.starts_with("\"_") {
                    write!(f, "; it looks like an unencrypted peer run with --insecure")?;
                }
                Ok(())
            }
            LinkError::Unsupported { addr, detail } => {
                write!(f, "link to {addr}: incompatible peer: {detail}")
            }
            LinkError::Malformed { addr, detail } => {
                write!(f, "link to {addr}: malformed handshake: {detail}")
            }
            LinkError::Handshake { addr, detail } => write!(
                f,
                "link to {addr}: handshake failed ({detail}): tampered with on the way, or \
                 not a secformer endpoint"
            ),
            LinkError::Untrusted { addr, key, sources } => write!(
                f,
                "refusing {addr}: key {} is not in the trust files ({})",
                key.fingerprint(),
                sources.join(", ")
            ),
            LinkError::Refused {
                addr,
                reason,
                ours,
                our_name,
            } => match reason {
                Refusal::UntrustedKey => write!(
                    f,
                    "{addr} refused our key {} ({our_name}): add {our_name}.pub to its \
                     --trust files",
                    ours.fingerprint()
                ),
                Refusal::Unsupported => write!(
                    f,
                    "{addr} refused us: it speaks another link version or cipher suite"
                ),
                Refusal::Other(c) => write!(f, "{addr} refused us (reason code {c})"),
            },
        }
    }
}

impl std::error::Error for LinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LinkError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
