//! The per-party context every protocol runs in: who we are, the fixed-point encoding,
//! the transport to the other party, the dealer source, the matmul kernel and the PRG
//! shared with the other party (for free input sharing).

use serde::{Deserialize, Serialize};

use crate::dealer::{Dealer, PROTOCOL_VERSION};
use crate::error::{Error, Result};
use crate::fxp::Encoding;
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::prg::{Prg, Seed};
use crate::protocols::trunc::TruncMode;
use crate::transport::{FrameKind, Stats, Transport};

/// Stream of the P0-P1 pair seed used for input sharing.
const STREAM_INPUT: u64 = 7;

/// The handshake P0 sends P1: protocol version, dealer session id, and the pair seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairHello {
    /// [`PROTOCOL_VERSION`].
    pub version: u16,
    /// The dealer session both parties joined.
    pub session: u64,
    /// The P0-P1 seed for input sharing.
    pub seed: Seed,
}

/// The party handshake: P0 sends the pair seed (`pair_seed`, drawn from the OS by the
/// caller) with the dealer session id; P1 checks version and session and returns the seed.
/// The handshake is setup traffic, not protocol rounds.
pub fn exchange_pair_seed<T: Transport>(
    party: PartyId,
    peer: &mut T,
    session: u64,
    pair_seed: Option<Seed>,
) -> Result<Seed> {
    let rounds = peer.stats().rounds;
    let seed = match party {
        PartyId::P0 => {
            let seed = pair_seed.ok_or(Error::Param("P0 needs a pair seed"))?;
            peer.send_msg(
                FrameKind::Hello,
                &PairHello {
                    version: PROTOCOL_VERSION,
                    session,
                    seed: seed.clone(),
                },
            )?;
            seed
        }
        PartyId::P1 => {
            let h: PairHello = peer.recv_msg(FrameKind::Hello)?;
            if h.version != PROTOCOL_VERSION {
                peer.send_error("protocol version mismatch between P0 and P1");
                return Err(Error::Param(
                    "P0 speaks another protocol version (update both to the same release)",
                ));
            }
            if h.session != session {
                peer.send_error("P0 and P1 joined different dealer sessions");
                return Err(Error::Param(
                    "P0 and P1 joined different dealer sessions (point both at the same dealer)",
                ));
            }
            h.seed
        }
    };
    peer.stats_mut().rounds = rounds;
    Ok(seed)
}

/// One party's side of a two-party computation.
pub struct Session<T, D, K> {
    pub(crate) party: PartyId,
    pub(crate) enc: Encoding,
    pub(crate) peer: T,
    pub(crate) dealer: D,
    pub(crate) kernel: K,
    pub(crate) pair: Prg,
    pub(crate) trunc_mode: TruncMode,
}

impl<T: Transport, D: Dealer, K: MatMul> Session<T, D, K> {
    /// A session whose parties already share `pair_seed`.
    pub fn new(
        party: PartyId,
        enc: Encoding,
        peer: T,
        dealer: D,
        kernel: K,
        pair_seed: &Seed,
    ) -> Self {
        Session {
            party,
            enc,
            peer,
            dealer,
            kernel,
            pair: Prg::new(pair_seed, STREAM_INPUT),
            trunc_mode: TruncMode::Faithful,
        }
    }

    /// A session for one pass of preprocessed material: the input-sharing stream of the
    /// pair seed is the pass's own (`stream`, e.g. [`crate::prg::pass_stream`]), so no two
    /// passes share input masks.
    pub fn with_pair_stream(
        party: PartyId,
        enc: Encoding,
        peer: T,
        dealer: D,
        kernel: K,
        pair_seed: &Seed,
        stream: u64,
    ) -> Self {
        Session {
            party,
            enc,
            peer,
            dealer,
            kernel,
            pair: Prg::new(pair_seed, stream),
            trunc_mode: TruncMode::Faithful,
        }
    }

    /// Runs the party handshake ([`exchange_pair_seed`]) and builds the session.
    pub fn establish(
        party: PartyId,
        enc: Encoding,
        mut peer: T,
        dealer: D,
        kernel: K,
        session: u64,
        pair_seed: Option<Seed>,
    ) -> Result<Self> {
        let seed = exchange_pair_seed(party, &mut peer, session, pair_seed)?;
        Ok(Self::new(party, enc, peer, dealer, kernel, &seed))
    }

    /// This party.
    pub fn party(&self) -> PartyId {
        self.party
    }

    /// The fixed-point encoding.
    pub fn encoding(&self) -> Encoding {
        self.enc
    }

    /// Chooses faithful (default) or SecureML local truncation.
    pub fn set_trunc_mode(&mut self, mode: TruncMode) {
        self.trunc_mode = mode;
    }

    /// The truncation mode in use.
    pub fn trunc_mode(&self) -> TruncMode {
        self.trunc_mode
    }

    /// Traffic with the other party.
    pub fn peer_stats(&self) -> Stats {
        self.peer.stats()
    }

    /// Traffic with the dealer.
    pub fn dealer_stats(&self) -> Stats {
        self.dealer.stats()
    }

    /// The transport to the other party.
    pub fn peer_mut(&mut self) -> &mut T {
        &mut self.peer
    }

    /// The dealer source.
    pub fn dealer_mut(&mut self) -> &mut D {
        &mut self.dealer
    }

    /// The matmul kernel.
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// Ends the dealer stream (checks everything requested was consumed).
    pub fn finish(&mut self) -> Result<()> {
        self.dealer.finish()
    }

    /// Reports a failure to the other party (best effort) so it fails with the reason
    /// instead of waiting.
    pub fn abort(&mut self, msg: &str) {
        self.peer.send_error(msg);
    }

    /// Consumes the session, returning the transports.
    pub fn into_parts(self) -> (T, D) {
        (self.peer, self.dealer)
    }
}
