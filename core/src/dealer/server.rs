//! The dealer service: serves one session of P0 and P1 over any two transports (threads
//! with in-memory links in tests and demos, TCP connections in the `secformer dealer`
//! process). Requires the `alloc` feature.
//!
//! Two ways to serve material:
//!
//! * **Live** ([`DealerService::serve`]): both parties announce each request as they run;
//!   D checks the two announcements are the same, acknowledges P0's and streams P1's
//!   corrections. Used for the one-time weight setup, in tests, and by devices without
//!   preprocessing.
//! * **Passes** ([`DealerService::serve_pass`]): the whole request plan of a forward pass
//!   is known ahead (it depends only on public shapes), so D streams P1's corrections of a
//!   pass identified by `(preprocessing id, index)` before the input exists; P0 draws its
//!   share of the same pass from its own seed without talking to D at all
//!   ([`super::material`]). Each pass has its own PRG streams, so passes are independent.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::prg::{pass_stream, Prg, Seed, STREAM_MAIN};
use crate::protocols::lookup;
use crate::transport::{FrameKind, Stats, Transport};

use super::draw::{draw, narrow_in_place, weight_stream};
use super::{gen, layout, DealerHello, Item, PartyHello, Request, Source, PROTOCOL_VERSION};

/// Reads a party's hello and returns who it is (checking the protocol version).
pub fn identify<T: Transport>(link: &mut T) -> Result<PartyId> {
    identify_hello(link).map(|h| h.party)
}

/// Reads a party's hello (checking the protocol version).
pub fn identify_hello<T: Transport>(link: &mut T) -> Result<PartyHello> {
    let hello: PartyHello = link.recv_msg(FrameKind::Hello)?;
    if hello.version != PROTOCOL_VERSION {
        let m = crate::error::short_message(format_args!(
            "protocol version mismatch: dealer {PROTOCOL_VERSION}, party {}",
            hello.version
        ));
        link.send_error(&m);
        return Err(Error::Param("party speaks another protocol version"));
    }
    Ok(hello)
}

/// What a served session did.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionSummary {
    /// Requests served.
    pub requests: u32,
    /// Traffic with P0.
    pub p0: Stats,
    /// Traffic with P1 (the corrections).
    pub p1: Stats,
}

/// The two parties' shares of one item as D drew them: one buffer per slot each.
pub struct Drawn {
    /// P0's share (empty buffers for slots P0 holds nothing of).
    pub p0: Vec<Vec<u64>>,
    /// P1's share, corrections included.
    pub p1: Vec<Vec<u64>>,
}

/// The dealer of one session.
pub struct DealerService<K> {
    seeds: [Seed; 2],
    prgs: [Prg; 2],
    session: u64,
    /// Masks of secret-shared weights (needed for their triples), by weight id.
    weights: BTreeMap<u32, (u32, u32, Vec<u64>)>,
    /// Shapes of weights owned by P0 (their masks are regenerated from P0's stream).
    owned: BTreeMap<u32, (u32, u32)>,
    kernel: K,
    seq: u32,
    // Buffers reused across items: fresh multi-megabyte allocations cost page faults.
    pool: Vec<Vec<u64>>,
    max_request_words: u64,
}

impl<K: MatMul> DealerService<K> {
    /// A dealer with the seeds it shares with P0 and P1 and a random session id (all drawn
    /// from the OS by the caller).
    pub fn new(seed0: Seed, seed1: Seed, session: u64, kernel: K) -> Self {
        DealerService {
            prgs: [Prg::new(&seed0, STREAM_MAIN), Prg::new(&seed1, STREAM_MAIN)],
            seeds: [seed0, seed1],
            session,
            weights: BTreeMap::new(),
            owned: BTreeMap::new(),
            kernel,
            seq: 0,
            pool: Vec::new(),
            max_request_words: super::limits::MAX_REQUEST_WORDS,
        }
    }

    /// The session id.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Sets the most ring words one request may make the dealer generate
    /// (default [`super::limits::MAX_REQUEST_WORDS`]).
    pub fn with_request_limit(mut self, words: u64) -> Self {
        self.max_request_words = words;
        self
    }

    fn buffer(&mut self, len: usize) -> Vec<u64> {
        let mut v = self.pool.pop().unwrap_or_default();
        v.clear();
        v.resize(len, 0);
        v
    }

    fn recycle(&mut self, v: Vec<u64>) {
        // One item holds at most 6 slots per party at once.
        if self.pool.len() < 12 {
            self.pool.push(v);
        }
    }

    /// Returns the buffers of a drawn item for reuse.
    pub fn recycle_drawn(&mut self, d: Drawn) {
        for v in d.p0.into_iter().chain(d.p1) {
            self.recycle(v);
        }
    }

    /// The hello D sends `party`: its seed and the session id.
    pub fn hello_for(&self, party: PartyId) -> DealerHello {
        DealerHello {
            version: PROTOCOL_VERSION,
            session: self.session,
            seed: self.seeds[party.index()].clone(),
        }
    }

    /// Sends each party its hello (seed and session id). `t0` must be P0's link.
    pub fn greet<T0: Transport, T1: Transport>(&self, t0: &mut T0, t1: &mut T1) -> Result<()> {
        for (i, t) in [t0 as &mut dyn TransportDyn, t1 as &mut dyn TransportDyn]
            .into_iter()
            .enumerate()
        {
            t.send_hello(&DealerHello {
                version: PROTOCOL_VERSION,
                session: self.session,
                seed: self.seeds[i].clone(),
            })?;
        }
        Ok(())
    }

    /// Sends one party its hello (a party rejoining a session).
    pub fn greet_one<T: Transport>(&self, party: PartyId, t: &mut T) -> Result<()> {
        t.send_msg(
            FrameKind::Hello,
            &DealerHello {
                version: PROTOCOL_VERSION,
                session: self.session,
                seed: self.seeds[party.index()].clone(),
            },
        )?;
        Ok(())
    }

    /// Serves live requests until both parties end their streams. A mismatch between the
    /// two parties' requests is reported to both and ends the session with an error.
    pub fn serve<T0: Transport, T1: Transport>(
        &mut self,
        t0: &mut T0,
        t1: &mut T1,
    ) -> Result<SessionSummary> {
        let res = self.serve_inner(t0, t1);
        if let Err(e) = &res {
            let m = crate::error::short_message(format_args!("dealer: {e}"));
            t0.send_error(&m);
            t1.send_error(&m);
        }
        res.map(|requests| SessionSummary {
            requests,
            p0: t0.stats(),
            p1: t1.stats(),
        })
    }

    fn serve_inner<T0: Transport, T1: Transport>(
        &mut self,
        t0: &mut T0,
        t1: &mut T1,
    ) -> Result<u32> {
        loop {
            let r0: Request = t0.recv_msg(FrameKind::DealerRequest)?;
            let r1: Request = t1.recv_msg(FrameKind::DealerRequest)?;
            if r0.seq != self.seq || r1.seq != self.seq {
                return Err(Error::DealerSequence {
                    seq: self.seq,
                    what: "request out of sequence",
                });
            }
            if r0.items != r1.items {
                let i = r0
                    .items
                    .iter()
                    .zip(r1.items.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or(r0.items.len().min(r1.items.len()));
                let fallback = Item::Triple { n: 0 };
                return Err(Error::DealerMismatch {
                    seq: self.seq,
                    expected: *r0.items.get(i).unwrap_or(&fallback),
                    actual: *r1.items.get(i).unwrap_or(&fallback),
                });
            }
            if r0.items.is_empty() {
                return Ok(self.seq);
            }
            super::limits::check_request(&r0, self.max_request_words)?;
            self.register(&r0.items)?;
            t0.send_msg(FrameKind::Ack, &self.seq)?;
            // Stream each item's corrections as soon as it is generated, so P1 starts on
            // the first item while the later ones are still being made.
            let fresh = self.fresh_prgs(STREAM_MAIN);
            let mut prgs = core::mem::replace(&mut self.prgs, fresh);
            let r = self.stream_items(&r0.items, &mut prgs, t1);
            self.prgs = prgs;
            r?;
            self.seq += 1;
        }
    }

    fn fresh_prgs(&self, stream: u64) -> [Prg; 2] {
        [
            Prg::new(&self.seeds[0], stream),
            Prg::new(&self.seeds[1], stream),
        ]
    }

    /// Records weight registrations, refusing an id registered twice (its mask would serve
    /// two weights) and triples for weights never registered.
    fn register(&mut self, items: &[Item]) -> Result<()> {
        for it in items {
            match *it {
                Item::WeightMask { id, .. } | Item::WeightMaskOwned { id, .. }
                    if self.weights.contains_key(&id) || self.owned.contains_key(&id) =>
                {
                    return Err(Error::Param(
                        "weight id registered twice (a mask must never serve two weights)",
                    ));
                }
                Item::WeightMaskOwned { id, k, n } => {
                    self.owned.insert(id, (k, n));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn stream_items<T1: Transport>(
        &mut self,
        items: &[Item],
        prgs: &mut [Prg; 2],
        t1: &mut T1,
    ) -> Result<()> {
        for item in items {
            let Drawn { p0, p1 } = self.draw_item(item, prgs)?;
            for (slot, mut buf) in layout(item).iter().zip(p1) {
                if slot.p1 == Source::Dealer {
                    send_correction(t1, &mut buf, slot.width)?;
                }
                self.recycle(buf);
            }
            for buf in p0 {
                self.recycle(buf);
            }
        }
        Ok(())
    }

    /// Draws both parties' shares of `item` from `prgs` (the streams of the unit of
    /// material being served) and computes P1's corrections.
    pub fn draw_item(&mut self, item: &Item, prgs: &mut [Prg; 2]) -> Result<Drawn> {
        let slots = layout(item);
        let mut p0: Vec<Vec<u64>> = Vec::with_capacity(slots.len());
        let mut p1: Vec<Vec<u64>> = Vec::with_capacity(slots.len());
        for s in slots.iter() {
            let l0 = if s.p0 == Source::Zero { 0 } else { s.len };
            let b0 = self.buffer(l0);
            p0.push(b0);
            let b1 = self.buffer(s.len);
            p1.push(b1);
        }
        {
            let [g0, g1] = prgs;
            let mut r0: Vec<&mut [u64]> = p0.iter_mut().map(|v| v.as_mut_slice()).collect();
            draw(PartyId::P0, &self.seeds[0], g0, item, &mut r0, |_, _| {
                Err(Error::Param("P0 receives no corrections"))
            })?;
            let mut r1: Vec<&mut [u64]> = p1.iter_mut().map(|v| v.as_mut_slice()).collect();
            draw(
                PartyId::P1,
                &self.seeds[1],
                g1,
                item,
                &mut r1,
                |_, _| Ok(()),
            )?;
        }
        self.correct(item, &p0, &mut p1)?;
        if let Item::WeightMask { id, k, n } = *item {
            let mut b = p0[0].clone();
            crate::ring::add_assign(&mut b, &p1[0]);
            self.weights.insert(id, (k, n, b));
        }
        Ok(Drawn { p0, p1 })
    }

    fn correct(&mut self, item: &Item, p0: &[Vec<u64>], p1: &mut [Vec<u64>]) -> Result<()> {
        if let Item::OwnedLookup { id, m, k, n } = *item {
            self.check_owned(id, k, n)?;
            let (m, k, n) = (m as usize, k as usize, n as usize);
            for (c1, c0) in p1[2..].iter_mut().zip(&p0[2..]) {
                for (d, s) in c1.iter_mut().zip(c0) {
                    *d = s.wrapping_neg();
                }
            }
            let mut scratch = vec![0u64; lookup::prepare_scratch_words(m, k, n)];
            let mut brows = Prg::new(&self.seeds[0], weight_stream(id));
            let mut rows = lookup::PrgRows { prg: &mut brows, n };
            let (masks, sums) = p1.split_at_mut(2);
            let (gb, rest) = sums.split_at_mut(1);
            let (ga, kk) = rest.split_at_mut(1);
            return lookup::add_sums(
                &self.kernel,
                (m, k, n),
                &masks[0],
                &masks[1],
                &mut rows,
                &mut gb[0],
                &mut ga[0],
                &mut kk[0],
                &mut scratch,
            );
        }
        if let Item::OwnedTriple { id, m, k, n, .. } = *item {
            self.check_owned(id, k, n)?;
            let (m, k, n) = (m as usize, k as usize, n as usize);
            let mut scratch = vec![0u64; gen::owned_scratch_words(m, k, n)];
            let mut brows = Prg::new(&self.seeds[0], weight_stream(id));
            let (a1, c1) = p1.split_at_mut(1);
            return gen::owned_correction(
                (m, k, n),
                &a1[0],
                &p0[1],
                &mut brows,
                &self.kernel,
                &mut c1[0],
                &mut scratch,
            );
        }
        self.correct_generic(item, p0, p1)
    }

    /// Checks that an owned-weight item matches its registered weight: its mask `B` is
    /// defined only once the weight is registered (and the item's cost is then bounded by
    /// the registered matrix).
    fn check_owned(&self, id: u32, k: u32, n: u32) -> Result<()> {
        match self.owned.get(&id) {
            Some(&(wk, wn)) if (wk, wn) != (k, n) => Err(Error::Param(
                "owned-weight item shape differs from the registered weight",
            )),
            None => Err(Error::Param(
                "owned-weight item for a weight that was never registered",
            )),
            _ => Ok(()),
        }
    }

    /// Items whose corrections need nothing but the item's draws (and registered masks).
    fn correct_generic(&mut self, item: &Item, p0: &[Vec<u64>], p1: &mut [Vec<u64>]) -> Result<()> {
        let mask = match item {
            Item::WeightTriple { id, k, n, .. } => match self.weights.get(id) {
                Some((wk, wn, b)) if wk == k && wn == n => Some(b.as_slice()),
                Some(_) => {
                    return Err(Error::Param(
                        "weight triple shape differs from the registered mask",
                    ))
                }
                None => return Err(Error::Param("weight triple for an unregistered weight id")),
            },
            _ => None,
        };
        let mut scratch = vec![0u64; gen::scratch_words(item)];
        let p0r: Vec<&[u64]> = p0.iter().map(|v| v.as_slice()).collect();
        let mut p1r: Vec<&mut [u64]> = p1.iter_mut().map(|v| v.as_mut_slice()).collect();
        gen::corrections(item, &p0r, &mut p1r, mask, &self.kernel, &mut scratch)
    }

    /// Streams P1's corrections of one pass of `plan` (preprocessing `prep`, pass `index`)
    /// over `t1`, item by item. Returns the bytes sent.
    pub fn serve_pass<T1: Transport>(
        &mut self,
        plan: &[Request],
        prep: u64,
        index: u32,
        t1: &mut T1,
    ) -> Result<u64> {
        let before = t1.stats().bytes_sent;
        let mut prgs = self.fresh_prgs(pass_stream(prep, index));
        for req in plan {
            self.stream_items(&req.items, &mut prgs, t1)?;
        }
        Ok(t1.stats().bytes_sent - before)
    }

    /// The PRG streams of pass `(prep, index)` of both parties (for callers that draw a
    /// pass item by item, such as D writing P1's preprocessing file).
    pub fn pass_prgs(&self, prep: u64, index: u32) -> [Prg; 2] {
        self.fresh_prgs(pass_stream(prep, index))
    }
}

fn send_correction<T: Transport>(t: &mut T, buf: &mut [u64], width: u8) -> Result<()> {
    let n = buf.len() * width as usize;
    narrow_in_place(buf, width);
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(buf);
    t.send_chunked(FrameKind::DealerData, &bytes[..n])?;
    Ok(())
}

/// Object-safe helper to greet two transports of different types in one loop.
trait TransportDyn {
    fn send_hello(&mut self, h: &DealerHello) -> Result<()>;
}
impl<T: Transport> TransportDyn for T {
    fn send_hello(&mut self, h: &DealerHello) -> Result<()> {
        self.send_msg(FrameKind::Hello, h)?;
        Ok(())
    }
}
