//! The dealer D of the firmware example as its own process (`secformer firmware-dealer`):
//! the non-collusion assumption needs D apart from P0, whose process relays D's traffic to
//! the device.
//!
//! D listens on two ports: P0's own link (Noise `XX` over TCP, P0's key pinned with
//! `--trust`) and the relayed link of the device, on which every byte D exchanges with the
//! device is sealed end to end ([`secformer_core::noise`]): the device opens a Noise `IK`
//! handshake to D's key, D accepts only device keys named by `--device`, and D's hello (the
//! device's seed) travels inside the handshake's encrypted payload. The relay hop itself
//! is plain TCP: whoever connects there learns nothing and can only fail the handshake.
//!
//! On start D prints `listening p0=ADDR relay=ADDR` on stdout; at the end it prints one
//! `summary requests=N p0_sent=B p1_sent=B` line (its traffic) and exits 0, or names
//! what failed on stderr and exits 1.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use secformer_core::dealer::server::{identify_hello, DealerService, SessionSummary};
use secformer_core::dealer::{DealerHello, PartyHello, PROTOCOL_VERSION};
use secformer_core::noise::{Sealed, StaticKey, KEY_LEN};
use secformer_core::party::PartyId;
use secformer_core::transport::{Channel, FrameKind, Transport, TransportError};

use super::secure::PROLOGUE_DEALER;
use crate::kernel::HostKernel;
use crate::link::{Identity, Link, LinkOptions, LinkSecurity, PublicKey, TrustStore};
use crate::net::os_seed;
use crate::tcp::TcpLink;

/// 32 bytes from the OS.
pub fn os_entropy() -> Result<[u8; KEY_LEN]> {
    let mut b = [0u8; KEY_LEN];
    getrandom::fill(&mut b).map_err(|e| anyhow!("the OS random source failed: {e}"))?;
    Ok(b)
}

/// Serves one firmware session: P0 over `t0` (its plain hello: the link is already
/// authenticated), the device over the relayed `t1` (sealed handshake first, with a key in
/// `devices`). Returns D's traffic.
pub fn serve_session<T0: Transport, T1: Transport>(
    t0: &mut T0,
    t1: T1,
    key: &StaticKey,
    devices: &[[u8; KEY_LEN]],
) -> Result<SessionSummary> {
    let h0 = identify_hello(t0).context("P0's hello")?;
    if h0.party != PartyId::P0 {
        t0.send_error("dealer: this link is P0's");
        bail!("P0's link announced {:?}", h0.party);
    }
    let mut svc = DealerService::new(
        os_seed()?,
        os_seed()?,
        crate::net::os_u64()?,
        HostKernel::detect(),
    );
    let hello: DealerHello = svc.hello_for(PartyId::P1);
    let answer = |peer: &[u8; KEY_LEN], payload: &[u8], out: &mut [u8]| {
        if !devices.contains(peer) {
            return Err(TransportError::Handshake("the device's key is not trusted"));
        }
        let h: PartyHello = postcard::from_bytes(payload).map_err(|_| TransportError::Codec)?;
        if h.party != PartyId::P1 || h.version != PROTOCOL_VERSION {
            return Err(TransportError::Handshake(
                "the device is not P1 of this version",
            ));
        }
        Ok(postcard::to_slice(&hello, out)
            .map_err(|_| TransportError::Codec)?
            .len())
    };
    let mut request = [0u8; 512];
    let sealed = Sealed::respond(
        t1,
        FrameKind::Hello,
        key,
        os_entropy()?,
        PROLOGUE_DEALER,
        Vec::new(),
        Vec::new(),
        &mut request,
        answer,
    );
    let (mut t1, peer, _) = match sealed {
        Ok(s) => s,
        Err(e) => {
            t0.send_error("dealer: the device's handshake failed");
            return Err(anyhow!(
                "the device's sealed handshake (relayed by P0): {e}"
            ));
        }
    };
    tracing::info!(
        "dealer: device {} authenticated through the relay",
        PublicKey(peer).fingerprint()
    );
    svc.greet_one(PartyId::P0, t0)?;
    Ok(svc.serve(t0, &mut t1)?)
}

/// Flags of `secformer firmware-dealer`.
#[derive(Debug, Clone, clap::Args)]
pub struct FirmwareDealerArgs {
    /// D's secret key (`secformer keygen --name dealer`); its .pub is what the device pins.
    #[arg(long)]
    pub key: PathBuf,
    /// P0's public key (the only peer accepted on P0's port); repeatable.
    #[arg(long, required = true)]
    pub trust: Vec<PathBuf>,
    /// A device's public key (accepted on the relayed port); repeatable.
    #[arg(long, required = true)]
    pub device: Vec<PathBuf>,
    /// P0's port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The port of the device's relayed link.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub relay_listen: SocketAddr,
    /// Seconds to wait for P0 and the relay to connect, and for any one read.
    #[arg(long, default_value_t = 60)]
    pub read_timeout: u64,
}

/// Runs `secformer firmware-dealer` (one session).
pub fn run(args: &FirmwareDealerArgs) -> Result<()> {
    if args.read_timeout == 0 {
        bail!("--read-timeout must be at least 1 second");
    }
    let timeout = Duration::from_secs(args.read_timeout);
    let identity = Identity::load(&args.key)?;
    let key = StaticKey::from_secret(*identity.secret_bytes());
    let p0_trust = TrustStore::load(&args.trust)?;
    let devices = TrustStore::load(&args.device)?;
    let device_keys: Vec<[u8; KEY_LEN]> = devices.keys().map(|k| k.0).collect();
    let l0 = TcpListener::bind(args.listen)
        .with_context(|| format!("listening for P0 on {}", args.listen))?;
    let l1 = TcpListener::bind(args.relay_listen)
        .with_context(|| format!("listening for the relay on {}", args.relay_listen))?;
    println!(
        "listening p0={} relay={}",
        l0.local_addr()?,
        l1.local_addr()?
    );
    std::io::stdout().flush()?;
    let opts = LinkOptions {
        read_timeout: timeout,
        ..LinkOptions::default()
    };
    let security = LinkSecurity::authenticated(identity, p0_trust);
    let s0 = accept_within(&l0, timeout).context("waiting for P0")?;
    let (link, peer) = Link::accept(s0, &security, &opts).map_err(anyhow::Error::new)?;
    tracing::info!("dealer: P0 is {peer}");
    let mut t0 = link.channel();
    let s1 = accept_within(&l1, timeout).context("waiting for the relay")?;
    let relay = s1.peer_addr()?;
    let t1 = Channel::full_duplex(TcpLink::new(s1, timeout)?);
    let summary = serve_session(&mut t0, t1, &key, &device_keys)
        .with_context(|| format!("the firmware session (device relayed from {relay})"))?;
    println!(
        "summary requests={} p0_sent={} p1_sent={}",
        summary.requests, summary.p0.bytes_sent, summary.p1.bytes_sent
    );
    Ok(())
}

fn accept_within(l: &TcpListener, timeout: Duration) -> Result<TcpStream> {
    l.set_nonblocking(true)?;
    let until = std::time::Instant::now() + timeout;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() > until {
                    bail!("nobody connected within {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
