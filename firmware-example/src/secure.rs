//! P1's two sealed links over the one line (shared with the host, which compiles this file
//! for its device-thread tests): an end-to-end Noise `IK` handshake with the dealer D, whose
//! static key is provisioned on the device, so P0's relay carries only ciphertext, and
//! another with P0 for the peer link (the serial line is not trusted either).
//!
//! Provisioning: the device holds its own static secret and the pinned public keys of D
//! and P0 ([`DeviceKeys`]); on the QEMU board they come from `secformer keygen` files read
//! through semihosting (see `main.rs`), on a real board they would be written to flash at
//! manufacturing. Each handshake also needs 32 fresh random bytes for its ephemeral key (a
//! hardware TRNG on a real board; the host's `/dev/urandom` through semihosting here).
//!
//! What crosses the line in the clear afterwards: frame kinds and lengths, `Error` frames,
//! and P1's dealer requests (authenticated; they carry only the public shapes of the
//! computation, which the relay needs to order frames and P0 knows anyway).

use core::cell::RefCell;

use embedded_io::{Read, Write};
use secformer_core::dealer::prefetch::Prefetch;
use secformer_core::dealer::{DealerClient, DealerHello, PartyHello};
use secformer_core::error::Result;
use secformer_core::fxp::Encoding;
use secformer_core::kernel::Portable;
use secformer_core::noise::{Initiator, Sealed, StaticKey, KEY_LEN, TAG_LEN};
use secformer_core::party::PartyId;
use secformer_core::session::Session;
use secformer_core::transport::{Channel, FrameKind, MAX_CONTROL_LEN};

use super::block::DIMS;
use super::line::{DealerPort, Line, PeerPort};

/// The prologue of P1's handshake with D through the relay (both sides must agree).
pub const PROLOGUE_DEALER: &[u8] = b"secformer: P1 to the dealer through a relay, v1";
/// The prologue of P1's handshake with P0 over the serial line.
pub const PROLOGUE_PEER: &[u8] = b"secformer: P1 to P0 over a serial line, v1";

/// Largest frame payload on the peer link: one weight matrix of ring words (`W_qkv`, hidden
/// x 3 hidden, or `W_1`, hidden x FFN) opened in the setup.
const LARGEST_PAYLOAD: usize = {
    let qkv = 8 * DIMS.hidden * 3 * DIMS.hidden;
    let ffn = 8 * DIMS.hidden * DIMS.inter;
    if qkv > ffn {
        qkv
    } else {
        ffn
    }
};
/// Largest sealed frame from D: its largest correction slot in this block is 139.6 KiB (the
/// 2Quad softmax's 113 quarter-octave comparisons per row sum: their first-level monomials;
/// measured by the device-thread test, which fails if a frame does not fit), and the tag.
pub const DEALER_RX_BYTES: usize = 140 * 1024 + TAG_LEN;
/// Largest sealed frame to D (a request, and the tag).
pub const DEALER_TX_BYTES: usize = 2 * 1024;
/// Largest sealed frame each way on the peer link (an opened weight, and the tag).
pub const PEER_BYTES: usize = LARGEST_PAYLOAD + TAG_LEN;

/// What the device is provisioned with.
pub struct DeviceKeys {
    /// Its own static key pair.
    pub device: StaticKey,
    /// D's pinned public key.
    pub dealer: [u8; KEY_LEN],
    /// P0's pinned public key.
    pub p0: [u8; KEY_LEN],
}

/// Buffers of the sealed links (sizes above; no heap).
pub struct SealBuffers<'a> {
    /// Frames to D.
    pub dealer_tx: &'a mut [u8],
    /// Frames from D.
    pub dealer_rx: &'a mut [u8],
    /// Frames to P0.
    pub peer_tx: &'a mut [u8],
    /// Frames from P0.
    pub peer_rx: &'a mut [u8],
}

/// P1's link to D: sealed end to end, prefetching each answer.
pub type DealerLink<'l, 's, 'a, L> =
    Prefetch<'a, Sealed<Channel<DealerPort<'l, 's, L>>, &'a mut [u8]>>;
/// P1's link to P0: sealed.
pub type PeerLink<'l, 's, 'a, L> = Sealed<Channel<PeerPort<'l, 's, L>>, &'a mut [u8]>;
/// P1's session on the device.
pub type DeviceSession<'l, 's, 'a, L> =
    Session<PeerLink<'l, 's, 'a, L>, DealerClient<DealerLink<'l, 's, 'a, L>>, Portable>;

/// Runs both handshakes (D first: its answer carries P1's seed; then P0, which sends the
/// pair seed inside the sealed link) and returns P1's session. `entropy` holds 32 fresh
/// random bytes for each handshake.
pub fn connect<'l, 's, 'a, L: Read + Write>(
    line: &'l RefCell<Line<'s, L>>,
    keys: &DeviceKeys,
    entropy: [[u8; KEY_LEN]; 2],
    bufs: SealBuffers<'a>,
    prefetch: &'a mut [u8],
) -> Result<DeviceSession<'l, 's, 'a, L>> {
    let hs = Initiator::new(&keys.device, keys.dealer, entropy[0], PROLOGUE_DEALER);
    let mut hello = [0u8; MAX_CONTROL_LEN];
    let hello_len = postcard::to_slice(&PartyHello::new(PartyId::P1), &mut hello)
        .map_err(|_| secformer_core::transport::TransportError::Codec)?
        .len();
    let mut reply = [0u8; MAX_CONTROL_LEN];
    let (to_dealer, n) = Sealed::initiate(
        Channel::new(DealerPort(line)),
        FrameKind::Hello,
        hs,
        &hello[..hello_len],
        bufs.dealer_tx,
        bufs.dealer_rx,
        &mut reply,
    )?;
    let dealer_hello: DealerHello = postcard::from_bytes(&reply[..n])
        .map_err(|_| secformer_core::transport::TransportError::Codec)?;
    reply.fill(0);
    let (client, session) = DealerClient::accept_hello(
        PartyId::P1,
        dealer_hello,
        Prefetch::new(to_dealer, prefetch),
    )?;

    let hs = Initiator::new(&keys.device, keys.p0, entropy[1], PROLOGUE_PEER);
    let (to_p0, _) = Sealed::initiate(
        Channel::new(PeerPort(line)),
        FrameKind::Control,
        hs,
        &[],
        bufs.peer_tx,
        bufs.peer_rx,
        &mut [],
    )?;
    Session::establish(
        PartyId::P1,
        Encoding::default(),
        to_p0,
        client,
        Portable,
        session,
        None,
    )
}
