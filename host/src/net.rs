//! Connecting the three endpoints over TCP: the dealer service, and a party's session
//! (dealer link + peer link + handshakes).

use std::net::TcpListener;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use secformer_core::dealer::server::{identify_hello, DealerService, SessionSummary};
use secformer_core::dealer::DealerClient;
use secformer_core::fxp::Encoding;
use secformer_core::party::PartyId;
use secformer_core::prg::Seed;
use secformer_core::session::Session;
use secformer_core::transport::Transport;

use crate::kernel::HostKernel;
use crate::tcp::{self, TcpChannel};

/// Timeouts of the TCP endpoints.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// How long to keep retrying a connect, or to wait for an incoming connection.
    pub connect: Duration,
    /// How long a read waits for the other side before failing.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            read: tcp::DEFAULT_READ_TIMEOUT,
        }
    }
}

/// A 32-byte seed from the operating system.
pub fn os_seed() -> Result<Seed> {
    let mut s = [0u8; 32];
    getrandom::fill(&mut s).map_err(|e| anyhow::anyhow!("OS randomness unavailable: {e}"))?;
    Ok(Seed(s))
}

/// A random `u64` from the operating system.
pub fn os_u64() -> Result<u64> {
    let mut s = [0u8; 8];
    getrandom::fill(&mut s).map_err(|e| anyhow::anyhow!("OS randomness unavailable: {e}"))?;
    Ok(u64::from_le_bytes(s))
}

/// How a party reaches the other party.
#[derive(Debug)]
pub enum PeerAddr {
    /// Listen on this address and accept the other party.
    Listen(String),
    /// Accept the other party on an already bound listener.
    Bound(TcpListener),
    /// Connect to the other party at this address.
    Connect(String),
}

/// A party's session over TCP.
pub type TcpSession = Session<TcpChannel, DealerClient<TcpChannel>, HostKernel>;

/// Serves one dealer session on `listener`: accepts P0 and P1 (in any order), checks
/// their versions and roles, sends their seeds, and streams material until both finish.
pub fn run_dealer_session(listener: &TcpListener, t: Timeouts) -> Result<SessionSummary> {
    let mut links: [Option<TcpChannel>; 2] = [None, None];
    let mut encrypt = false;
    for _ in 0..2 {
        let mut ch =
            tcp::accept(listener, t.connect, t.read).context("dealer: waiting for a party")?;
        let hello = identify_hello(&mut ch).context("dealer: party handshake")?;
        let who = hello.party;
        if who == PartyId::P1 {
            encrypt = hello.encrypt;
        }
        if links[who.index()].is_some() {
            ch.send_error("another party already connected with this id");
            bail!("dealer: two parties connected as {who}");
        }
        links[who.index()] = Some(ch);
    }
    let (Some(mut t0), Some(mut t1)) = (links[0].take(), links[1].take()) else {
        bail!("dealer: missing a party");
    };
    let svc = DealerService::new(os_seed()?, os_seed()?, os_u64()?, HostKernel::detect());
    let mut svc = svc;
    svc.encrypt_corrections(encrypt);
    svc.greet(&mut t0, &mut t1)
        .context("dealer: greeting parties")?;
    let summary = svc
        .serve(&mut t0, &mut t1)
        .context("dealer: serving the session")?;
    Ok(summary)
}

/// Connects a party: to the dealer at `dealer`, and to the other party per `peer`.
pub fn connect_party(
    party: PartyId,
    peer: &PeerAddr,
    dealer: &str,
    t: Timeouts,
) -> Result<TcpSession> {
    let dlink = tcp::connect(dealer, t.connect, t.read)
        .with_context(|| format!("{party}: connecting to the dealer at {dealer}"))?;
    let (client, session) = DealerClient::connect(dlink, party)
        .with_context(|| format!("{party}: dealer handshake"))?;
    let plink = match peer {
        PeerAddr::Listen(a) => {
            let l = TcpListener::bind(a).with_context(|| format!("{party}: listening on {a}"))?;
            tcp::accept(&l, t.connect, t.read)
                .with_context(|| format!("{party}: waiting for the other party on {a}"))?
        }
        PeerAddr::Bound(l) => tcp::accept(l, t.connect, t.read)
            .with_context(|| format!("{party}: waiting for the other party"))?,
        PeerAddr::Connect(a) => tcp::connect(a, t.connect, t.read)
            .with_context(|| format!("{party}: connecting to the other party at {a}"))?,
    };
    session_over(party, plink, client, session)
}

/// Builds a session from an accepted/connected peer link and a dealer client.
pub fn session_over(
    party: PartyId,
    plink: TcpChannel,
    client: DealerClient<TcpChannel>,
    session: u64,
) -> Result<TcpSession> {
    let pair = if party == PartyId::P0 {
        Some(os_seed()?)
    } else {
        None
    };
    Session::establish(
        party,
        Encoding::default(),
        plink,
        client,
        HostKernel::detect(),
        session,
        pair,
    )
    .with_context(|| format!("{party}: handshake with the other party"))
}
