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
    // Blocks from the back: block `[i, i + m)` reads bytes `[i w, (i + m) w)`, below its
    // own words' bytes `[8 i, ...)` once `i w <= 8 i`, and above every earlier block's
    // bytes, so copying the block's bytes out first makes the in-place order safe.
    let mut end = buf.len();
    let mut tmp = [0u8; 8 * BLOCK + 8];
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let m = end - start;
        {
            let bytes: &[u8] = bytemuck::cast_slice(&buf[..]);
            tmp[..m * w].copy_from_slice(&bytes[start * w..end * w]);
        }
        let mask = (1u64 << (8 * w)) - 1;
        for (j, word) in buf[start..end].iter_mut().enumerate() {
            // Reads 8 bytes (the tail of `tmp` is slack) and keeps `w`.
            let b: [u8; 8] = tmp[j * w..j * w + 8].try_into().expect("8 bytes");
            *word = u64::from_le_bytes(b) & mask;
        }
        end = start;
    }
}

/// Words per block of [`widen_in_place`] and [`narrow_in_place`].
const BLOCK: usize = 256;

/// Narrows words to their low `width` bytes, in place (the inverse of [`widen_in_place`]);
/// returns the byte view of the narrowed data.
pub fn narrow_in_place(buf: &mut [u64], width: u8) -> &[u8] {
    let w = width as usize;
    let n = buf.len();
    if w < 8 {
        // Blocks from the front: block `[i, i + m)` writes bytes `[i w, (i + m) w)`, which
        // only covers words below `i + m` (already read into `tmp`).
        let mut tmp = [0u8; 8 * BLOCK + 8];
        let mut start = 0;
        while start < n {
            let m = BLOCK.min(n - start);
            for (j, word) in buf[start..start + m].iter().enumerate() {
                tmp[j * w..j * w + 8].copy_from_slice(&word.to_le_bytes());
            }
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf[..]);
            bytes[start * w..(start + m) * w].copy_from_slice(&tmp[..m * w]);
            start += m;
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

    #[test]
    fn narrow_then_widen_across_blocks() {
        let n = 3 * BLOCK + 17;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let orig: [u64; 3 * BLOCK + 17] = core::array::from_fn(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        });
        for width in 0..=8u8 {
            let mut v = orig;
            let expect_bytes: [u8; 8 * (3 * BLOCK + 17)] = {
                let mut b = [0u8; 8 * (3 * BLOCK + 17)];
                for (i, o) in orig.iter().enumerate() {
                    let w = width as usize;
                    b[i * w..i * w + w].copy_from_slice(&o.to_le_bytes()[..w]);
                }
                b
            };
            let w = width as usize;
            assert_eq!(narrow_in_place(&mut v, width), &expect_bytes[..n * w]);
            widen_in_place(&mut v, width);
            let m = if width == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * w)) - 1
            };
            for (a, b) in v.iter().zip(orig) {
                assert_eq!(*a, b & m);
            }
        }
    }
}
