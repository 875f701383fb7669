//! The party side of a live dealer stream.

use crate::error::{Error, Result};
use crate::party::PartyId;
use crate::prg::{Prg, Seed, STREAM_MAIN};
use crate::transport::{FrameKind, Stats, Transport};

use super::draw::{draw, widen_in_place};
use super::{Dealer, DealerHello, Item, PartyHello, Request, MAX_ITEMS, PROTOCOL_VERSION};

/// Most weights one session registers (a BERT-large has 99).
pub const MAX_WEIGHTS: usize = 256;

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
    weights: heapless::Vec<u32, MAX_WEIGHTS>,
}

impl<T: Transport> DealerClient<T> {
    /// Performs the handshake with D over `link` (sends the party's hello, receives its
    /// seed and the session id) and returns the client and the session id.
    pub fn connect(link: T, party: PartyId) -> Result<(Self, u64)> {
        Self::join(link, PartyHello::new(party))
    }

    /// Sends `hello` to D (the party, its session token, a session to resume) and reads
    /// D's answer: returns the client and the session id.
    pub fn join(mut link: T, hello: PartyHello) -> Result<(Self, u64)> {
        let party = hello.party;
        link.send_msg(FrameKind::Hello, &hello)?;
        let hello: DealerHello = link.recv_msg(FrameKind::Hello)?;
        Self::accept_hello(party, hello, link)
    }

    /// The client of D's answer `hello` (received by the caller, e.g. inside an
    /// end-to-end handshake through a relay): returns it and the session id.
    pub fn accept_hello(party: PartyId, hello: DealerHello, mut link: T) -> Result<(Self, u64)> {
        if hello.version != PROTOCOL_VERSION {
            link.send_error("protocol version mismatch");
            return Err(Error::Param(
                "dealer speaks another protocol version (update both to the same release)",
            ));
        }
        Ok((Self::from_seed(party, hello.seed, link), hello.session))
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
            weights: heapless::Vec::new(),
        }
    }

    /// The seed this party shares with D.
    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    /// Consumes the client, returning the transport to D (after [`Dealer::finish`], for
    /// the preprocessing that follows the live stream).
    pub fn into_link(self) -> T {
        self.link
    }

    /// The transport to D.
    pub fn link_mut(&mut self) -> &mut T {
        &mut self.link
    }

    /// Refuses a second registration of a weight id: two weights under one id would
    /// share a mask, and the difference of the two opened `W - B` would reveal `W1 - W2`.
    fn register_weights(&mut self, items: &[Item]) -> Result<()> {
        for it in items {
            if let Item::WeightMask { id, .. } | Item::WeightMaskOwned { id, .. } = *it {
                if self.weights.contains(&id) {
                    return Err(Error::Param(
                        "weight id registered twice (a mask must never serve two weights)",
                    ));
                }
                self.weights
                    .push(id)
                    .map_err(|_| Error::Param("too many weights in one session"))?;
            }
        }
        Ok(())
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
}

/// Reads one correction slot of `width` bytes per word from D and widens it to words.
pub fn recv_correction<T: Transport>(link: &mut T, buf: &mut [u64], width: u8) -> Result<()> {
    let n = buf.len() * width as usize;
    {
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(buf);
        link.recv_chunked(FrameKind::DealerData, &mut bytes[..n])?;
    }
    widen_in_place(buf, width);
    Ok(())
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
        self.register_weights(items)?;
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
        let link = &mut self.link;
        draw(
            self.party,
            &self.seed,
            &mut self.prg,
            &item,
            bufs,
            |buf, width| recv_correction(link, buf, width),
        )?;
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
