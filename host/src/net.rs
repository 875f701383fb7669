//! Connecting two parties and a dealer over TCP for the programs that run one live
//! session (the weight-product job and the protocol benchmarks): the connecting party
//! sends a fresh session token, both join D with it, then P0 sends the pair seed.

use std::net::TcpListener;

use anyhow::{Context, Result};
use secformer_core::dealer::server::{identify_hello, DealerService, SessionSummary};
use secformer_core::dealer::{DealerClient, PartyHello, PROTOCOL_VERSION};
use secformer_core::fxp::Encoding;
use secformer_core::party::PartyId;
use secformer_core::prg::Seed;
use secformer_core::session::Session;
use secformer_core::transport::{FrameKind, Transport};

use crate::kernel::HostKernel;
use crate::link::LinkSecurity;
use crate::service::{new_token, read_client_hello, ClientHello, Endpoint, NetChannel};

pub use crate::service::Timeouts;

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

/// A party's session over authenticated links.
pub type NetSession = Session<NetChannel, DealerClient<NetChannel>, HostKernel>;

/// Endpoints of the dealer, P0 and P1 for programs that start all three themselves:
/// fresh in-memory identities, each trusting the other two.
pub fn local_endpoints(t: Timeouts) -> Result<[Endpoint; 3]> {
    let mut g = LinkSecurity::ephemeral_group(&["dealer", "p0", "p1"])?.into_iter();
    let mut next =
        || -> Result<Endpoint> { Ok(Endpoint::new(g.next().context("three identities")?, t)) };
    Ok([next()?, next()?, next()?])
}

fn accept_one(listener: &TcpListener, e: &Endpoint) -> Result<NetChannel> {
    let start = std::time::Instant::now();
    listener.set_nonblocking(true)?;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                return Ok(e.accept(s)?.0);
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                if start.elapsed() > e.timeouts.connect {
                    anyhow::bail!("no connection within {:?}", e.timeouts.connect);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Serves one live dealer session on `listener`: accepts P0 and P1 (in any order), checks
/// their versions, roles and tokens, sends their seeds, and streams material until both
/// finish.
pub fn run_dealer_session(listener: &TcpListener, e: &Endpoint) -> Result<SessionSummary> {
    let mut links: [Option<(NetChannel, PartyHello)>; 2] = [None, None];
    for _ in 0..2 {
        let mut ch = accept_one(listener, e).context("dealer: waiting for a party")?;
        let hello = identify_hello(&mut ch).context("dealer: party handshake")?;
        let who = hello.party;
        if links[who.index()].is_some() {
            ch.send_error("another party already connected with this id");
            anyhow::bail!("dealer: two parties connected as {who}");
        }
        links[who.index()] = Some((ch, hello));
    }
    let (Some((mut t0, h0)), Some((mut t1, h1))) = (links[0].take(), links[1].take()) else {
        anyhow::bail!("dealer: missing a party");
    };
    if h0.token != h1.token {
        let m = "P0 and P1 presented different session tokens";
        t0.send_error(m);
        t1.send_error(m);
        anyhow::bail!("dealer: {m}");
    }
    let mut svc = DealerService::new(os_seed()?, os_seed()?, os_u64()?, HostKernel::detect());
    svc.greet(&mut t0, &mut t1)
        .context("dealer: greeting parties")?;
    svc.serve(&mut t0, &mut t1)
        .context("dealer: serving the session")
}

/// Connects a party: to the other party per `peer` (the connecting side sends a fresh
/// session token), then to the dealer at `dealer` with that token.
pub fn connect_party(
    party: PartyId,
    peer: &PeerAddr,
    dealer: &str,
    e: &Endpoint,
) -> Result<NetSession> {
    let mut plink = match peer {
        PeerAddr::Listen(a) => {
            let l = TcpListener::bind(a).with_context(|| format!("{party}: listening on {a}"))?;
            accept_one(&l, e)
                .with_context(|| format!("{party}: waiting for the other party on {a}"))?
        }
        PeerAddr::Bound(l) => {
            accept_one(l, e).with_context(|| format!("{party}: waiting for the other party"))?
        }
        PeerAddr::Connect(a) => e.connect(a, "the other party", true)?.0,
    };
    let token = match peer {
        PeerAddr::Connect(_) => {
            let token = new_token()?;
            plink.send_msg(
                FrameKind::Hello,
                &ClientHello {
                    version: PROTOCOL_VERSION,
                    token,
                    resume: None,
                },
            )?;
            token
        }
        _ => read_client_hello(&mut plink, &e.timeouts)?.token,
    };
    let (client, session, _) = e.join_dealer(dealer, party, token, None)?;
    let pair = (party == PartyId::P0).then(os_seed).transpose()?;
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
