//! Input sharing by its owner, with no communication.
//!
//! P0 and P1 share a PRG seed. For `n` values owned by party `o`: both draw `r` (n words)
//! from the pair PRG; the owner keeps `x - r`, the other party keeps `r`. The other party
//! learns nothing (it holds only `r`); the owner already knows `x`.
//!
//! Cost: 0 rounds, 0 bytes. Both parties must call it in the same order.
//!
//! Valid input range: `|x| < 2^47` at `f = 16` (the encoding's range: larger or non-finite
//! values are an encoding error, never a wrap).

use crate::dealer::Dealer;
use crate::error::{check_len, Error, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

/// Shares `values` (ring elements, present only at `owner`) into `out`.
pub fn share_input<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    owner: PartyId,
    values: Option<&[u64]>,
    out: &mut [AShare],
) -> Result<()> {
    let o = AShare::raw_slice_mut(out);
    s.pair.fill(o);
    if s.party == owner {
        let v = values.ok_or(Error::Param("the owner must provide the input values"))?;
        check_len("input values", o.len(), v.len())?;
        for (x, r) in o.iter_mut().zip(v) {
            *x = r.wrapping_sub(*x);
        }
    }
    Ok(())
}

/// Encodes reals in fixed point and shares them (see [`share_input`]).
pub fn share_input_f64<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    owner: PartyId,
    values: Option<&[f64]>,
    out: &mut [AShare],
) -> Result<()> {
    let o = AShare::raw_slice_mut(out);
    s.pair.fill(o);
    if s.party == owner {
        let v = values.ok_or(Error::Param("the owner must provide the input values"))?;
        check_len("input values", o.len(), v.len())?;
        for (x, r) in o.iter_mut().zip(v) {
            *x = s.enc.encode(*r)?.wrapping_sub(*x);
        }
    }
    Ok(())
}
