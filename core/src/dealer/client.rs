//! The party side of a dealer stream.

use crate::error::{Error, Result};
use crate::party::PartyId;
use crate::prg::{Prg, Seed, STREAM_MAIN, STREAM_WEIGHT_BASE};
use crate::transport::{FrameKind, Stats, Transport};

use super::{
    layout, Dealer, DealerHello, Fill, Item, P1Source, PartyHello, Request, MAX_ITEMS,
    PROTOCOL_VERSION,
};

/// A party's dealer source over a transport to D: P0 draws everything from its seed and
/// only exchanges requests and acknowledgements with D; P1 draws the random half from its
/// seed and reads corrections streamed by D.
///
/// P0 does not wait for D: it reads the acknowledgement of a request when it sends the
/// next one (or at [`Dealer::finish`]), so a mismatch still surfaces on P0, one request
/// later, while D adds no latency to P0's online phase.
pub struct DealerClient<T> {
    party: PartyId,
    seed: Seed,
    prg: Prg,
    link: T,
    seq: u32,
    items: heapless::Vec<Item, MAX_ITEMS>,
    next: usize,
    ack_pending: Option<u32>,
    finished: bool,
    decrypt: Option<Prg>,
}

impl<T: Transport> DealerClient<T> {
    /// Performs the handshake with D over `link` (sends the party's hello, receives its
    /// seed and the session id) and returns the client and the session id.
    pub fn connect(link: T, party: PartyId) -> Result<(Self, u64)> {
        Self::connect_with(link, party, false)
    }

    /// [`DealerClient::connect`], asking D to encrypt P1's corrections with a keystream
    /// derived from P1's seed (for when another endpoint relays the dealer's traffic).
    pub fn connect_with(mut link: T, party: PartyId, encrypt: bool) -> Result<(Self, u64)> {
        link.send_msg(
            FrameKind::Hello,
            &PartyHello {
                version: PROTOCOL_VERSION,
                party,
                encrypt,
            },
        )?;
        let hello: DealerHello = link.recv_msg(FrameKind::Hello)?;
        if hello.version != PROTOCOL_VERSION {
            link.send_error("protocol version mismatch");
            return Err(Error::Param(
                "dealer speaks another protocol version (update both to the same release)",
            ));
        }
        let mut c = Self::from_seed(party, hello.seed, link);
        if encrypt && party == PartyId::P1 {
            c.decrypt = Some(Prg::new(&c.seed, crate::prg::STREAM_CORRECTION_KEY));
        }
        Ok((c, hello.session))
    }

    /// A client from an already shared seed.
    pub fn from_seed(party: PartyId, seed: Seed, link: T) -> Self {
        DealerClient {
            party,
            prg: Prg::new(&seed, STREAM_MAIN),
            seed,
            link,
            seq: 0,
            items: heapless::Vec::new(),
            next: 0,
            ack_pending: None,
            finished: false,
            decrypt: None,
        }
    }

    /// The transport to D.
    pub fn link_mut(&mut self) -> &mut T {
        &mut self.link
    }

    fn read_ack(&mut self) -> Result<()> {
        if let Some(seq) = self.ack_pending.take() {
            let got: u32 = self.link.recv_msg(FrameKind::Ack)?;
            if got != seq {
                return Err(Error::DealerSequence {
                    seq,
                    what: "dealer acknowledged another request",
                });
            }
        }
        Ok(())
    }

    fn recv_correction(&mut self, buf: &mut [u64], width: u8) -> Result<()> {
        if width == 8 {
            self.link.recv_u64_of(FrameKind::DealerData, buf)?;
            if let Some(k) = self.decrypt.as_mut() {
                k.xor_into(bytemuck::cast_slice_mut(buf));
            }
            return Ok(());
        }
        let w = width as usize;
        let n = buf.len();
        {
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(buf);
            self.link
                .recv_frame(FrameKind::DealerData, &mut bytes[..n * w], true)?;
            if let Some(k) = self.decrypt.as_mut() {
                k.xor_into(&mut bytes[..n * w]);
            }
        }
        // Widen in place from the back: word i's bytes only overlap narrow entries >= i.
        for i in (0..n).rev() {
            let mut tmp = [0u8; 8];
            {
                let bytes: &[u8] = bytemuck::cast_slice(&buf[..]);
                tmp[..w].copy_from_slice(&bytes[i * w..i * w + w]);
            }
            buf[i] = u64::from_le_bytes(tmp);
        }
        Ok(())
    }
}

impl<T: Transport> Dealer for DealerClient<T> {
    fn party(&self) -> PartyId {
        self.party
    }

    fn request(&mut self, items: &[Item]) -> Result<()> {
        if self.finished {
            return Err(Error::DealerSequence {
                seq: self.seq,
                what: "request after the stream was finished",
            });
        }
        if self.next < self.items.len() {
            return Err(Error::DealerSequence {
                seq: self.seq.wrapping_sub(1),
                what: "new request before the previous one was fully consumed",
            });
        }
        if items.is_empty() {
            return Err(Error::Param("empty dealer request"));
        }
        self.read_ack()?;
        let mut v = heapless::Vec::new();
        for it in items {
            v.push(*it)
                .map_err(|_| Error::Param("too many items in one dealer request"))?;
        }
        let req = Request {
            seq: self.seq,
            items: v.clone(),
        };
        self.link.send_msg(FrameKind::DealerRequest, &req)?;
        if self.party == PartyId::P0 {
            self.ack_pending = Some(self.seq);
        }
        self.items = v;
        self.next = 0;
        self.seq += 1;
        Ok(())
    }

    fn take(&mut self, item: Item, bufs: &mut [&mut [u64]]) -> Result<()> {
        let seq = self.seq.wrapping_sub(1);
        let Some(expected) = self.items.get(self.next).copied() else {
            return Err(Error::DealerSequence {
                seq,
                what: "material taken without being requested",
            });
        };
        if expected != item {
            return Err(Error::DealerMismatch {
                seq,
                expected,
                actual: item,
            });
        }
        if let Item::BitMul { uses, .. } = item {
            if uses > super::MAX_BITMUL_USES {
                return Err(Error::Param("BitMul with too many uses"));
            }
        }
        let slots = layout(&item);
        if bufs.len() != slots.len() {
            return Err(Error::Shape {
                what: "dealer item buffers",
                expected: slots.len(),
                actual: bufs.len(),
            });
        }
        for (slot, buf) in slots.iter().zip(bufs.iter()) {
            if buf.len() != slot.len {
                return Err(Error::Shape {
                    what: "dealer item buffer length",
                    expected: slot.len,
                    actual: buf.len(),
                });
            }
        }
        let mut weight_prg = match item {
            Item::WeightMask { id, .. } | Item::WeightMaskOwned { id, .. } => {
                Some(Prg::new(&self.seed, STREAM_WEIGHT_BASE + id as u64))
            }
            _ => None,
        };
        for (slot, buf) in slots.iter().zip(bufs.iter_mut()) {
            if self.party == PartyId::P1 && slot.p1 == P1Source::Zero {
                buf.fill(0);
                continue;
            }
            let from_prg = self.party == PartyId::P0 || slot.p1 == P1Source::Prg;
            if from_prg {
                let prg = weight_prg.as_mut().unwrap_or(&mut self.prg);
                match slot.fill {
                    Fill::Words => prg.fill(buf),
                    Fill::Bits(n) => prg.fill_bits(buf, n),
                    Fill::Mod(k) => prg.fill_mod(buf, k),
                }
            } else if let P1Source::Correction { width } = slot.p1 {
                self.recv_correction(buf, width)?;
            }
        }
        self.next += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        if self.next < self.items.len() {
            return Err(Error::DealerSequence {
                seq: self.seq.wrapping_sub(1),
                what: "stream finished with announced material unconsumed",
            });
        }
        self.read_ack()?;
        // An empty request ends the stream.
        self.link.send_msg(
            FrameKind::DealerRequest,
            &Request {
                seq: self.seq,
                items: heapless::Vec::new(),
            },
        )?;
        self.finished = true;
        Ok(())
    }

    fn stats(&self) -> Stats {
        self.link.stats()
    }
}
