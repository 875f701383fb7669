//! Revealing shared values: to both parties, or to one.
//!
//! * [`reveal`]: each party sends its `n` shares and adds the other's. 1 round,
//!   `8n` payload bytes sent per party.
//! * [`reveal_to`]: the other party sends its `n` shares to the receiver. The receiver
//!   waits 1 round and receives `8n` bytes; the sender sends `8n` bytes and waits 0 rounds.
//!
//! Revealing is the only way a value leaves the shares unmasked: protocols use it for
//! final outputs only; intermediate openings are always of masked values.
//!
//! Valid input range: any ring values.

use crate::dealer::Dealer;
use crate::error::{check_len, Error, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

/// Opens `x` to both parties into `out` (ring elements).
pub fn reveal<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    out: &mut [u64],
) -> Result<()> {
    check_len("reveal output", x.len(), out.len())?;
    let mine = AShare::raw_slice(x);
    s.peer.exchange_u64(mine, out)?;
    crate::ring::add_assign(out, mine);
    Ok(())
}

/// Opens `x` to party `to` only. `out` must be `Some` at `to` and is ignored elsewhere.
pub fn reveal_to<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    to: PartyId,
    x: &[AShare],
    out: Option<&mut [u64]>,
) -> Result<()> {
    let mine = AShare::raw_slice(x);
    if s.party == to {
        let out = out.ok_or(Error::Param(
            "the receiving party must provide an output buffer",
        ))?;
        check_len("reveal output", x.len(), out.len())?;
        s.peer.recv_u64(out)?;
        crate::ring::add_assign(out, mine);
    } else {
        s.peer.send_u64(mine)?;
    }
    Ok(())
}

/// Opens `x` to both parties and decodes fixed point.
pub fn reveal_f64<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    out: &mut [f64],
    scratch: &mut [u64],
) -> Result<()> {
    check_len("reveal output", x.len(), out.len())?;
    crate::arena::check_scratch(x.len(), scratch.len())?;
    let w = &mut scratch[..x.len()];
    reveal(s, x, w)?;
    s.enc.decode_slice(w, out);
    Ok(())
}
