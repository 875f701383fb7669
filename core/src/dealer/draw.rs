//! One party's share of an item: drawn slot by slot from the party's seed, with the slots
//! that D corrects (P1's only) filled from a callback. Shared by the live client
//! ([`super::DealerClient`]), the preparation of passes ahead of the online phase
//! ([`super::material`]) and D itself ([`super::server`], which replays both parties' draws).

use crate::error::{Error, Result};
use crate::party::PartyId;
use crate::prg::{Prg, Seed, STREAM_WEIGHT_BASE};

use super::{layout, Fill, Item, Source, MAX_BITMUL_USES};

/// The PRG stream of weight `id`'s fixed mask.
pub fn weight_stream(id: u32) -> u64 {
    STREAM_WEIGHT_BASE + id as u64
}

/// Checks `bufs` against the item's slots: one buffer per slot, each of the slot's length,
/// except that a slot this party holds nothing of ([`Source::Zero`]) may get an empty one.
pub fn check_buffers(item: &Item, party: PartyId, bufs: &[&mut [u64]]) -> Result<()> {
    if let Item::BitMul { uses, .. } = *item {
        if uses > MAX_BITMUL_USES {
            return Err(Error::Param("BitMul with too many uses"));
        }
    }
    let slots = layout(item);
    if bufs.len() != slots.len() {
        return Err(Error::Shape {
            what: "dealer item buffers",
            expected: slots.len(),
            actual: bufs.len(),
        });
    }
    for (slot, buf) in slots.iter().zip(bufs.iter()) {
        let zero_ok = slot.source(party) == Source::Zero && buf.is_empty();
        if buf.len() != slot.len && !zero_ok {
            return Err(Error::Shape {
                what: "dealer item buffer length",
                expected: slot.len,
                actual: buf.len(),
            });
        }
    }
    Ok(())
}

/// Fills one slot buffer from `prg` as the slot's [`Fill`] says.
pub fn fill_slot(prg: &mut Prg, fill: Fill, buf: &mut [u64]) {
    match fill {
        Fill::Words => prg.fill(buf),
        Fill::Bits(n) => prg.fill_bits(buf, n),
        Fill::Mod(k) => prg.fill_mod(buf, k),
        Fill::OnehotMask(k) => {
            prg.fill_mod(buf, k);
            for a in buf.iter_mut() {
                if *a != 0 {
                    *a = a.wrapping_sub(1u64 << k);
                }
            }
        }
    }
}

/// Draws `party`'s share of `item` into `bufs` (checked with [`check_buffers`]). Random
/// slots come from `prg` (or, for weight masks, from the weight's own stream of `seed`);
/// zero slots are zeroed; slots D corrects are passed to `correction(buf, width)`.
pub fn draw<F>(
    party: PartyId,
    seed: &Seed,
    prg: &mut Prg,
    item: &Item,
    bufs: &mut [&mut [u64]],
    mut correction: F,
) -> Result<()>
where
    F: FnMut(&mut [u64], u8) -> Result<()>,
{
    check_buffers(item, party, bufs)?;
    let mut weight_prg = match *item {
        Item::WeightMask { id, .. } | Item::WeightMaskOwned { id, .. } => {
            Some(Prg::new(seed, weight_stream(id)))
        }
        _ => None,
    };
    for (slot, buf) in layout(item).iter().zip(bufs.iter_mut()) {
        match slot.source(party) {
            Source::Zero => buf.fill(0),
            Source::Prg => fill_slot(weight_prg.as_mut().unwrap_or(&mut *prg), slot.fill, buf),
            Source::Dealer => correction(buf, slot.width)?,
        }
    }
    Ok(())
}

/// Widens `n = buf.len()` words stored as `width` little-endian bytes each at the start of
/// `buf`'s bytes, in place (from the back: word `i`'s bytes only overlap entries `>= i`).
pub fn widen_in_place(buf: &mut [u64], width: u8) {
    let w = width as usize;
    if w >= 8 {
        return;
    }
    for i in (0..buf.len()).rev() {
        let mut tmp = [0u8; 8];
        {
            let bytes: &[u8] = bytemuck::cast_slice(&buf[..]);
            tmp[..w].copy_from_slice(&bytes[i * w..i * w + w]);
        }
        buf[i] = u64::from_le_bytes(tmp);
    }
}

/// Narrows words to their low `width` bytes, in place (the inverse of [`widen_in_place`]);
/// returns the byte view of the narrowed data.
pub fn narrow_in_place(buf: &mut [u64], width: u8) -> &[u8] {
    let w = width as usize;
    let n = buf.len();
    if w < 8 {
        for i in 0..n {
            let b = buf[i].to_le_bytes();
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf[..]);
            bytes[i * w..i * w + w].copy_from_slice(&b[..w]);
        }
    }
    let bytes: &[u8] = bytemuck::cast_slice(&buf[..]);
    &bytes[..n * w]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_then_widen_keeps_the_low_bytes() {
        for width in 1..=8u8 {
            let orig: [u64; 5] = [0x0102_0304_0506_0708, u64::MAX, 0, 0xdead_beef, 42];
            let mut v = orig;
            let n = narrow_in_place(&mut v, width).len();
            assert_eq!(n, 5 * width as usize);
            widen_in_place(&mut v, width);
            for (a, b) in v.iter().zip(orig) {
                let m = if width == 8 {
                    u64::MAX
                } else {
                    (1u64 << (8 * width)) - 1
                };
                assert_eq!(*a, b & m);
            }
        }
    }
}
