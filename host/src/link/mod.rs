//! Authenticated, encrypted links between the endpoints (P0, P1, the dealer).
//!
//! * [`identity`]: an endpoint's [`Identity`] (a name and a static X25519 key pair, the
//!   secret wiped on drop), its `NAME.key`/`NAME.pub` files (`secformer keygen`), and the
//!   [`TrustStore`] of pinned peer keys (`--trust FILE`, repeatable).
//! * [`handshake`]: Noise `XX` (`Noise_XX_25519_AESGCM_SHA256` by default) via `snow`:
//!   both sides prove their static key, each checks the other's against its trust store
//!   and refuses an unknown key with a message naming it and the address. The connecting
//!   side speaks first; only handshake messages cross before both are authenticated; the
//!   handshake has its own short deadline.
//! * [`SecureLink`]: the record layer, an `embedded_io::Read + Write` link like
//!   [`TcpLink`] (writes never block: a writer thread encrypts and sends; reads decrypt).
//! * [`Link`] and [`LinkSecurity`]: what a command holds, authenticated or explicitly
//!   `--insecure` (plain [`TcpLink`]), and [`Link::channel`], the framed channel over it
//!   (no CRC on an AEAD link, whose tags already authenticate every byte).
//!
//! Threat model: an active network attacker who can read, drop, alter and inject bytes
//! learns the traffic volume and timing, and the fact that a handshake took place (the
//! static keys are encrypted in it); anything else makes the link fail. A peer is who its
//! key says: a stolen `.key` file is a stolen identity. Forward secrecy: past sessions
//! stay secret if a static key leaks later (ephemeral-ephemeral X25519 in `XX`).

pub mod args;
pub mod bench;
pub mod error;
pub mod handshake;
pub mod identity;
pub mod secure;

use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use secformer_core::transport::Channel;

pub use error::{LinkError, Refusal};
pub use handshake::{Crypto, Suite};
pub use identity::{Identity, PublicKey, TrustStore};
pub use secure::SecureLink;

use crate::tcp::{TcpLink, DEFAULT_READ_TIMEOUT};

/// Default time a handshake may take, start to end (a few round trips in practice).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An authenticated peer: the name our trust store gives its key, the key, the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerId {
    /// Its name in our trust store.
    pub name: String,
    /// Its static public key.
    pub key: PublicKey,
    /// Its address.
    pub addr: SocketAddr,
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (key {}) at {}",
            self.name,
            self.key.fingerprint(),
            self.addr
        )
    }
}

/// The other end of a [`Link`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// Proved a trusted key.
    Authenticated(PeerId),
    /// `--insecure`: only its address is known, and that is not proof of anything.
    Unauthenticated(SocketAddr),
}

impl Peer {
    /// Its public key's bytes (zeros for an unauthenticated peer).
    pub fn key_bytes(&self) -> [u8; 32] {
        match self {
            Peer::Authenticated(p) => p.key.0,
            Peer::Unauthenticated(_) => [0; 32],
        }
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Peer::Authenticated(p) => p.addr,
            Peer::Unauthenticated(a) => *a,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Authenticated(p) => p.fmt(f),
            Peer::Unauthenticated(a) => write!(f, "unauthenticated peer at {a} (--insecure)"),
        }
    }
}

/// Timeouts and cipher choices of a link. Both ends must use the same `suite`.
#[derive(Debug, Clone, Copy)]
pub struct LinkOptions {
    /// The whole handshake's deadline (short: a silent or trickling peer is dropped).
    pub handshake_timeout: Duration,
    /// How long a read waits for the peer once the link is up.
    pub read_timeout: Duration,
    /// The AEAD of the records.
    pub suite: Suite,
    /// Which library computes it.
    pub crypto: Crypto,
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            suite: Suite::default(),
            crypto: Crypto::default(),
        }
    }
}

/// How an endpoint's links are secured.
#[derive(Clone)]
pub enum LinkSecurity {
    /// Mutually authenticated and encrypted: this identity, these trusted peers.
    Authenticated {
        /// This endpoint.
        identity: Arc<Identity>,
        /// The peers it accepts.
        trust: Arc<TrustStore>,
    },
    /// No encryption and no authentication: anyone who reaches the port is served, and
    /// anyone on the path reads everything. Only `--insecure` selects it.
    Insecure,
}

impl fmt::Debug for LinkSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkSecurity::Authenticated { identity, trust } => write!(
                f,
                "Authenticated({identity:?}, {} trusted keys)",
                trust.len()
            ),
            LinkSecurity::Insecure => f.write_str("Insecure"),
        }
    }
}

impl LinkSecurity {
    /// Authenticated links for one identity.
    pub fn authenticated(identity: Identity, trust: TrustStore) -> Self {
        LinkSecurity::Authenticated {
            identity: Arc::new(identity),
            trust: Arc::new(trust),
        }
    }

    /// Fresh in-memory identities for endpoints one process starts itself (demo, bench,
    /// tests): one per name, each trusting all the others and not itself.
    pub fn ephemeral_group(names: &[&str]) -> Result<Vec<LinkSecurity>> {
        let ids = names
            .iter()
            .map(|n| Identity::generate(n).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let mut trust = TrustStore::new();
            for (j, other) in ids.iter().enumerate() {
                if i != j {
                    trust.add_ephemeral(other)?;
                }
            }
            out.push(LinkSecurity::Authenticated {
                identity: id.clone(),
                trust: Arc::new(trust),
            });
        }
        Ok(out)
    }

    /// Whether links are authenticated and encrypted.
    pub fn is_secure(&self) -> bool {
        matches!(self, LinkSecurity::Authenticated { .. })
    }
}

/// A link as the commands hold it: encrypted, or plain TCP under `--insecure`.
pub enum Link {
    /// Authenticated and encrypted.
    Secure(SecureLink),
    /// Plain TCP (`--insecure`).
    Plain(TcpLink),
}

impl Link {
    /// Sets up the connecting side over `stream` (handshake included when secure).
    pub fn connect(
        stream: TcpStream,
        security: &LinkSecurity,
        opts: &LinkOptions,
    ) -> Result<(Link, Peer), LinkError> {
        match security {
            LinkSecurity::Authenticated { identity, trust } => {
                SecureLink::connect(stream, identity, trust, opts)
                    .map(|(l, p)| (Link::Secure(l), Peer::Authenticated(p)))
            }
            LinkSecurity::Insecure => Self::plain(stream, opts),
        }
    }

    /// Sets up the accepting side over `stream` (handshake included when secure).
    pub fn accept(
        stream: TcpStream,
        security: &LinkSecurity,
        opts: &LinkOptions,
    ) -> Result<(Link, Peer), LinkError> {
        match security {
            LinkSecurity::Authenticated { identity, trust } => {
                SecureLink::accept(stream, identity, trust, opts)
                    .map(|(l, p)| (Link::Secure(l), Peer::Authenticated(p)))
            }
            LinkSecurity::Insecure => Self::plain(stream, opts),
        }
    }

    fn plain(stream: TcpStream, opts: &LinkOptions) -> Result<(Link, Peer), LinkError> {
        let addr = stream
            .peer_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
        let link = TcpLink::new(stream, opts.read_timeout).map_err(|e| LinkError::Io {
            addr,
            during: "setting up the connection",
            source: e,
        })?;
        Ok((Link::Plain(link), Peer::Unauthenticated(addr)))
    }

    /// Changes how long a read waits (short while a handshake message is due, long after).
    pub fn set_read_timeout(&mut self, d: Duration) -> std::io::Result<()> {
        match self {
            Link::Secure(l) => l.set_read_timeout(d),
            Link::Plain(l) => l.set_read_timeout(d),
        }
    }

    /// The other end.
    pub fn peer(&self) -> Peer {
        match self {
            Link::Secure(l) => Peer::Authenticated(l.peer().clone()),
            Link::Plain(l) => Peer::Unauthenticated(
                l.peer()
                    .parse()
                    .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
            ),
        }
    }

    /// The framed, full-duplex channel over this link: without the CRC trailer when the
    /// link is encrypted (its AEAD authenticates every byte), with it on plain TCP. Both
    /// ends of a connection agree, since both are secure or the handshake fails.
    pub fn channel(self) -> Channel<Link> {
        let secure = matches!(self, Link::Secure(_));
        let ch = Channel::full_duplex(self);
        if secure {
            ch.without_checksum()
        } else {
            ch
        }
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Link::Secure(l) => l.fmt(f),
            Link::Plain(l) => write!(f, "Link::Plain({})", l.peer()),
        }
    }
}

impl embedded_io::ErrorType for Link {
    type Error = std::io::Error;
}

impl embedded_io::Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Link::Secure(l) => l.read(buf),
            Link::Plain(l) => l.read(buf),
        }
    }
}

impl embedded_io::Write for Link {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Link::Secure(l) => l.write(buf),
            Link::Plain(l) => l.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Link::Secure(l) => l.flush(),
            Link::Plain(l) => l.flush(),
        }
    }
}
