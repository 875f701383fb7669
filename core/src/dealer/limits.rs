//! What the dealer accepts in a request: it generates material for whatever both parties
//! ask for, so every item a peer sends is checked before anything is allocated. Item
//! parameters must be ones the protocols use (a malformed item would index past its
//! slots or shift past the word), and the words a request makes the dealer hold (both
//! parties' slots of its largest item, and of the whole request) are bounded.

use crate::error::{Error, Result};

use super::{layout, Item, Request, MAX_BITMUL_USES};

/// The default bound on the ring words the dealer generates for one request (both
/// parties' slots together): 2^29 words, 4 GiB. The largest requests of BERT-large at 512
/// tokens (the one-hot embedding product, GeLU on 512 x 4096) are near 2^27.
pub const MAX_REQUEST_WORDS: u64 = 1 << 29;

/// Most copies of P1's bits a [`Item::PrivAnd`] may ask for.
pub const MAX_PRIVAND_COPIES: u32 = 4096;

/// Checks an item's parameters; the error says which is out of range.
pub fn check_item(item: &Item) -> core::result::Result<(), &'static str> {
    match *item {
        Item::BitMul { uses, .. } if uses > MAX_BITMUL_USES => {
            Err("uses more values per bit than 2")
        }
        Item::Sine { p, .. } if !(1..=63).contains(&p) => Err("has a period outside 2^1..2^63"),
        Item::Sine { k, .. } if k == 0 || k as usize > crate::protocols::fourier::MAX_HARMONICS => {
            Err("has 0 or more than 32 harmonics")
        }
        Item::Sine { f, .. } if f > 62 => Err("has more than 62 fractional bits"),
        Item::SegmentSeries { p, .. } if !(1..=63).contains(&p) => {
            Err("has a period outside 2^1..2^63")
        }
        Item::SegmentSeries { k, .. }
            if k == 0 || k as usize > crate::protocols::fourier::MAX_HARMONICS =>
        {
            Err("has 0 or more than 32 harmonics")
        }
        Item::SegmentSeries { f, .. } if f > 62 => Err("has more than 62 fractional bits"),
        Item::SegmentSeries { bits, shift, .. } if bits > 64 || shift > 63 => {
            Err("has more than 64 bit planes or skips more than 63 bits")
        }
        Item::CarryLevel { groups, .. } if !(2..=63).contains(&groups) => {
            Err("has a carry level outside 2..=63 groups")
        }
        Item::Trunc { f, .. } if f > 63 => Err("truncates by more than 63 bits"),
        Item::TruncSquare { f, .. } if !(1..=62).contains(&f) => {
            Err("truncates by a shift outside 1..=62")
        }
        Item::BitMulTrunc { f, .. } if !(1..=62).contains(&f) => {
            Err("truncates its second value by a shift outside 1..=62")
        }
        Item::TruncRowTriple { f, .. } if !(1..=62).contains(&f) => {
            Err("truncates its row factor by a shift outside 1..=62")
        }
        Item::PrivAnd { copies: 0, .. } => Err("has no copies of P1's bits"),
        // The protocols repeat one value's bits for a handful of thresholds (at most a
        // normalization's buckets); the dealer's work grows with the copies.
        Item::PrivAnd { copies, .. } if copies > MAX_PRIVAND_COPIES => {
            Err("repeats P1's bits more than 4096 times")
        }
        Item::PrivAnd { planes, .. } if planes > 64 => Err("has more than 64 bit planes"),
        Item::PrivAnd { bits, copies, .. } if bits as u64 * copies as u64 > 1 << 40 => {
            Err("has more than 2^40 bits in a row")
        }
        // The generator loops over the batch even when the products are empty.
        Item::MatTriples { batch, .. } if batch > 1 << 16 => {
            Err("has more than 2^16 products in a batch")
        }
        Item::MatTriples { batch, m, k, n }
            if [
                m as u64 * k as u64,
                k as u64 * n as u64,
                m as u64 * n as u64,
            ]
            .iter()
            .any(|x| x.checked_mul(batch as u64).is_none_or(|v| v > 1 << 40)) =>
        {
            Err("has more than 2^40 words in a slot")
        }
        _ => Ok(()),
    }
}

/// Words the dealer holds for an item: both parties' slots (saturating).
pub fn item_words(item: &Item) -> u64 {
    layout(item).iter().fold(0u64, |a, s| {
        a.saturating_add((s.len as u64).saturating_mul(2))
    })
}

/// Checks every item of `req` and the words it needs against `max_words`.
pub fn check_request(req: &Request, max_words: u64) -> Result<()> {
    let mut total = 0u64;
    for item in req.items.iter() {
        let refuse = |what| Error::DealerRequest {
            seq: req.seq,
            item: *item,
            what,
        };
        check_item(item).map_err(refuse)?;
        total = total.saturating_add(item_words(item));
        if total > max_words {
            return Err(refuse("makes the request exceed the dealer's memory limit"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_layout_fits_its_slots() {
        let it = Item::BitMulTrunc { n: 3, m: 5, f: 40 };
        assert_eq!(layout(&it).len(), super::super::MAX_SLOTS);
        let it = Item::TruncRowTriple {
            rows: 3,
            cols: 5,
            f: 40,
        };
        assert_eq!(layout(&it).len(), 8);
    }

    fn req(items: &[Item]) -> Request {
        Request {
            seq: 4,
            items: items.iter().copied().collect(),
        }
    }

    #[test]
    fn malformed_and_huge_items_are_refused() {
        // Found by fuzzing the dealer: uses = 3 indexed past the item's six slots.
        let bad = Item::BitMul {
            n: 1,
            m: 1,
            uses: 3,
        };
        let e = check_request(&req(&[Item::Triple { n: 8 }, bad]), MAX_REQUEST_WORDS);
        assert!(matches!(e, Err(Error::DealerRequest { seq: 4, item, .. }) if item == bad));
        for item in [
            // Found by fuzzing: empty products, but 7.7e8 of them to loop over.
            Item::MatTriples {
                batch: 776_000_000,
                m: 4,
                k: 0,
                n: 0,
            },
            Item::Sine {
                n: 1,
                p: 64,
                k: 1,
                f: 16,
            },
            Item::Sine {
                n: 1,
                p: 20,
                k: 0,
                f: 16,
            },
            Item::Sine {
                n: 1,
                p: 20,
                k: 33,
                f: 16,
            },
            Item::Trunc { n: 1, f: 64 },
        ] {
            assert!(check_item(&item).is_err(), "{item:?}");
        }
        let huge = Item::MatTriple {
            m: u32::MAX,
            k: u32::MAX,
            n: u32::MAX,
        };
        assert!(check_request(&req(&[huge]), MAX_REQUEST_WORDS).is_err());
        assert_eq!(item_words(&huge), u64::MAX);
        // Many items that are each small but large together.
        let many = [Item::Triple { n: 1 << 26 }; 3];
        assert!(check_request(&req(&many), MAX_REQUEST_WORDS).is_err());
        // What the protocols ask for passes.
        let fine = [
            Item::Max4 { groups: 1 << 16 },
            Item::BitMul {
                n: 1 << 20,
                m: 2,
                uses: 2,
            },
            Item::Sine {
                n: 1 << 20,
                p: 20,
                k: 6,
                f: 16,
            },
            Item::Trunc { n: 1 << 20, f: 36 },
        ];
        assert!(check_request(&req(&fine), MAX_REQUEST_WORDS).is_ok());
        // Saturating correction sizes (found by fuzzing the control messages).
        assert_eq!(super::super::correction_bytes(&huge), u64::MAX);
    }

    #[test]
    fn public_bits_of_zero_or_one_plane_generate_nothing() {
        // Found by fuzzing: a segment series with no comparison planes underflowed the
        // width of its first tree level.
        for k in [0u32, 1] {
            let planes = &[0u64; 1][..k as usize];
            let monos = crate::protocols::compare::first_monomials(k);
            assert_eq!(monos, 0);
            let (mut d1, mut m1) = ([0u64; 1], [0u64; 1]);
            crate::protocols::compare::public_bits_corrections(
                k,
                1,
                planes,
                planes,
                planes,
                &[],
                &mut d1,
                &mut m1,
                &mut [],
            );
        }
    }
}
