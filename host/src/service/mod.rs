//! The three endpoints as network services: the dealer ([`dealer`]), P0's model server
//! ([`server`]) and P1's client ([`client`]).
//!
//! Every link is mutually authenticated and encrypted ([`crate::link`]) unless the
//! operator passes `--insecure`. Connecting is the same for every session: the endpoint
//! that connects speaks first. P1 connects to P0 and, once the link is authenticated,
//! sends a [`ClientHello`] (protocol version and a fresh random session token, or the
//! session it resumes); both parties then join D with that token ([`Endpoint::join_dealer`])
//! and D pairs them by it, never by arrival order. P0 answers P1 with a [`ServerHello`]
//! (the session D opened and the P0-P1 seed) and its model's public description, which P1
//! checks against its own copy. Nothing secret crosses a link before its peer is
//! authenticated.

pub mod client;
pub mod dealer;
pub mod server;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use secformer_core::dealer::{DealerClient, PartyHello, PROTOCOL_VERSION};
use secformer_core::party::PartyId;
use secformer_core::prg::Seed;
use secformer_core::transport::{Channel, FrameKind, Transport};
use serde::{Deserialize, Serialize};

use crate::link::{Link, LinkOptions, LinkSecurity, Peer};
use crate::tcp;

/// A framed channel over an authenticated (or `--insecure`) link.
pub type NetChannel = Channel<Link>;

/// Timeouts of the network endpoints.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// How long to keep retrying a connect to an unreachable host.
    pub connect: Duration,
    /// How long a handshake may take (a silent or slow peer is dropped after it).
    pub handshake: Duration,
    /// How long a read waits for the other side during a computation.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            handshake: Duration::from_secs(10),
            read: tcp::DEFAULT_READ_TIMEOUT,
        }
    }
}

/// What an endpoint needs to open links: its security (identity and trusted peers, or
/// insecure) and its timeouts.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// How links are secured.
    pub security: LinkSecurity,
    /// Timeouts.
    pub timeouts: Timeouts,
}

impl Endpoint {
    /// An endpoint with fresh timeouts.
    pub fn new(security: LinkSecurity, timeouts: Timeouts) -> Self {
        Endpoint { security, timeouts }
    }

    fn options(&self) -> LinkOptions {
        LinkOptions {
            handshake_timeout: self.timeouts.handshake,
            read_timeout: self.timeouts.read,
            ..LinkOptions::default()
        }
    }

    /// This endpoint's identity (its public key), zeros when insecure.
    pub fn identity(&self) -> [u8; 32] {
        match &self.security {
            LinkSecurity::Authenticated { identity, .. } => identity.public().0,
            LinkSecurity::Insecure => [0; 32],
        }
    }

    /// Connects to `what` at `addr` and authenticates it. A refused connection fails at
    /// once with a message naming `what`; `retry_refused` waits for a peer that may start
    /// later.
    pub fn connect(
        &self,
        addr: &str,
        what: &str,
        retry_refused: bool,
    ) -> Result<(NetChannel, Peer)> {
        let stream = {
            let _notice = Notice::after(
                Duration::from_secs(3),
                format!("still connecting to {what} at {addr}..."),
            );
            tcp::connect_stream(addr, self.timeouts.connect, retry_refused)
                .with_context(|| format!("connecting to {what} at {addr}"))?
        };
        let (link, peer) = Link::connect(stream, &self.security, &self.options())
            .with_context(|| format!("securing the link to {what} at {addr}"))?;
        Ok((link.channel(), peer))
    }

    /// Authenticates an accepted connection (the handshake has its own short deadline).
    pub fn accept(&self, stream: TcpStream) -> Result<(NetChannel, Peer)> {
        let addr = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".into());
        let (link, peer) = Link::accept(stream, &self.security, &self.options())
            .with_context(|| format!("securing the link from {addr}"))?;
        Ok((link.channel(), peer))
    }

    /// Connects to D at `addr` and joins the session of `token` (or resumes `resume`) as
    /// `party`: returns the dealer client, the session id and D's identity.
    pub fn join_dealer(
        &self,
        addr: &str,
        party: PartyId,
        token: [u8; 16],
        resume: Option<u64>,
    ) -> Result<(DealerClient<NetChannel>, u64, Peer)> {
        let (link, peer) = self.connect(addr, "the dealer", false)?;
        let hello = PartyHello {
            version: PROTOCOL_VERSION,
            party,
            token,
            resume,
        };
        let _notice = Notice::after(
            Duration::from_secs(3),
            format!("{party}: waiting for the dealer at {addr} to pair the session (is the other party joining it?)"),
        );
        let (client, session) = DealerClient::join(link, hello)
            .with_context(|| format!("{party}: joining a session at the dealer {peer}"))?;
        Ok((client, session, peer))
    }
}

/// Two authenticated ends of a fresh connection on 127.0.0.1: `a` connects, `b` accepts
/// (for endpoints one process starts itself).
pub fn loopback_pair(a: &Endpoint, b: &Endpoint) -> Result<(NetChannel, NetChannel)> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?.to_string();
    let bb = b.clone();
    let acceptor = std::thread::spawn(move || -> Result<NetChannel> {
        let (s, _) = l.accept()?;
        Ok(bb.accept(s)?.0)
    });
    let (ca, _) = a.connect(&addr, "a local endpoint", true)?;
    let cb = acceptor
        .join()
        .map_err(|_| anyhow::anyhow!("accepting the local link panicked"))??;
    Ok((ca, cb))
}

/// P1's first message to P0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// [`PROTOCOL_VERSION`].
    pub version: u16,
    /// A fresh random session token (both parties present it to D).
    pub token: [u8; 16],
    /// The session to resume, if any.
    pub resume: Option<u64>,
}

/// P0's answer, once D has paired the two parties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHello {
    /// [`PROTOCOL_VERSION`].
    pub version: u16,
    /// The session D opened (P1 checks it is the one D told it).
    pub session: u64,
    /// The P0-P1 seed for input sharing.
    pub pair: Seed,
    /// Whether P0 resumed the session P1 asked for (else it is a new one).
    pub resumed: bool,
}

/// A 16-byte session token from the operating system.
pub fn new_token() -> Result<[u8; 16]> {
    let mut t = [0u8; 16];
    getrandom::fill(&mut t).map_err(|e| anyhow::anyhow!("OS randomness unavailable: {e}"))?;
    Ok(t)
}

/// Reads the connecting side's hello within the handshake timeout.
pub fn read_client_hello(link: &mut NetChannel, t: &Timeouts) -> Result<ClientHello> {
    link.link_mut().set_read_timeout(t.handshake)?;
    let hello: ClientHello = link
        .recv_msg(FrameKind::Hello)
        .context("reading the client's hello")?;
    link.link_mut().set_read_timeout(t.read)?;
    if hello.version != PROTOCOL_VERSION {
        link.send_error("protocol version mismatch");
        bail!(
            "the client speaks protocol version {}, this build {PROTOCOL_VERSION}",
            hello.version
        );
    }
    Ok(hello)
}

/// Prints a message on stderr if it is still alive after a delay: an endpoint that waits
/// says what for.
pub struct Notice {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Notice {
    /// Arms the notice.
    pub fn after(delay: Duration, msg: String) -> Notice {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        let _ = std::thread::Builder::new()
            .name("notice".into())
            .spawn(move || {
                let start = Instant::now();
                while start.elapsed() < delay {
                    if d.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                if !d.load(std::sync::atomic::Ordering::SeqCst) {
                    eprintln!("{msg}");
                }
            });
        Notice { done }
    }
}

impl Drop for Notice {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
