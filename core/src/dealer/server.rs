//! The dealer service: serves one session of P0 and P1 over any two transports (threads
//! with in-memory links in tests and demos, TCP connections in the `secformer dealer`
//! process). Requires the `alloc` feature.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::prg::{Prg, Seed, STREAM_MAIN, STREAM_WEIGHT_BASE};
use crate::transport::{FrameKind, Stats, Transport, MAX_FRAME_LEN};

use super::{
    gen, layout, DealerHello, Fill, Item, P1Source, PartyHello, Request, PROTOCOL_VERSION,
};

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

/// The dealer of one session.
pub struct DealerService<K> {
    seeds: [Seed; 2],
    prgs: [Prg; 2],
    session: u64,
    weights: BTreeMap<u32, (u32, u32, Vec<u64>)>,
    kernel: K,
    seq: u32,
    encrypt: Option<Prg>,
    // Buffers reused across items: fresh multi-megabyte allocations cost page faults.
    pool: Vec<Vec<u64>>,
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
            kernel,
            seq: 0,
            encrypt: None,
            pool: Vec::new(),
        }
    }

    fn buffer(&mut self, len: usize) -> Vec<u64> {
        let mut v = self.pool.pop().unwrap_or_default();
        v.clear();
        v.resize(len, 0);
        v
    }

    fn recycle(&mut self, v: Vec<u64>) {
        if self.pool.len() < 16 {
            self.pool.push(v);
        }
    }

    /// Encrypts P1's corrections with the keystream of P1's seed (P1 asked for it in its
    /// hello because another endpoint relays D's traffic).
    pub fn encrypt_corrections(&mut self, on: bool) {
        self.encrypt = on.then(|| Prg::new(&self.seeds[1], crate::prg::STREAM_CORRECTION_KEY));
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

    /// Serves requests until both parties end their streams. A mismatch between the two
    /// parties' requests is reported to both and ends the session with an error.
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
            t0.send_msg(FrameKind::Ack, &self.seq)?;
            // Stream each item's corrections as soon as it is generated, so P1 starts on
            // the first item while the later ones are still being made.
            let mut outs: Vec<(Vec<u64>, u8)> = Vec::new();
            for item in r0.items.iter() {
                self.generate(item, &mut outs)?;
                for (buf, width) in core::mem::take(&mut outs) {
                    send_correction(t1, &buf, width, self.encrypt.as_mut())?;
                    self.recycle(buf);
                }
            }
            self.seq += 1;
        }
    }

    /// Generates one item; pushes P1's correction slots to `outs`.
    fn generate(&mut self, item: &Item, outs: &mut Vec<(Vec<u64>, u8)>) -> Result<()> {
        let slots = layout(item);
        let mut p0: Vec<Vec<u64>> = slots.iter().map(|s| self.buffer(s.len)).collect();
        let mut p1: Vec<Vec<u64>> = slots.iter().map(|s| self.buffer(s.len)).collect();
        let mut wprg = match item {
            Item::WeightMask { id, .. } | Item::WeightMaskOwned { id, .. } => Some([
                Prg::new(&self.seeds[0], STREAM_WEIGHT_BASE + *id as u64),
                Prg::new(&self.seeds[1], STREAM_WEIGHT_BASE + *id as u64),
            ]),
            _ => None,
        };
        for (i, s) in slots.iter().enumerate() {
            for party in 0..2 {
                if party == 1 && s.p1 != P1Source::Prg {
                    continue;
                }
                let buf = if party == 0 { &mut p0[i] } else { &mut p1[i] };
                let prg = match wprg.as_mut() {
                    Some(w) => &mut w[party],
                    None => &mut self.prgs[party],
                };
                match s.fill {
                    Fill::Words => prg.fill(buf),
                    Fill::Bits(n) => prg.fill_bits(buf, n),
                    Fill::Mod(k) => prg.fill_mod(buf, k),
                }
            }
        }
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
        {
            let p0r: Vec<&[u64]> = p0.iter().map(|v| v.as_slice()).collect();
            let mut p1r: Vec<&mut [u64]> = p1.iter_mut().map(|v| v.as_mut_slice()).collect();
            gen::corrections(item, &p0r, &mut p1r, mask, &self.kernel, &mut scratch)?;
        }
        if let Item::WeightMask { id, k, n } | Item::WeightMaskOwned { id, k, n } = *item {
            let mut b = core::mem::take(&mut p0[0]);
            crate::ring::add_assign(&mut b, &p1[0]);
            self.weights.insert(id, (k, n, b));
        }
        for (s, buf) in slots.iter().zip(p1) {
            if let P1Source::Correction { width } = s.p1 {
                outs.push((buf, width));
            } else {
                self.recycle(buf);
            }
        }
        for buf in p0 {
            self.recycle(buf);
        }
        Ok(())
    }
}

fn send_correction<T: Transport>(
    t: &mut T,
    buf: &[u64],
    width: u8,
    key: Option<&mut Prg>,
) -> Result<()> {
    let w = width as usize;
    let mut bytes = vec![0u8; buf.len() * w];
    for (i, x) in buf.iter().enumerate() {
        bytes[i * w..i * w + w].copy_from_slice(&x.to_le_bytes()[..w]);
    }
    if let Some(k) = key {
        k.xor_into(&mut bytes);
    }
    if bytes.is_empty() {
        t.send_frame(FrameKind::DealerData, &[])?;
    }
    // Width-8 corrections longer than a frame go as several frames (the client reads
    // them the same way); narrow ones are bounded by the item sizes.
    let step = if w == 8 { MAX_FRAME_LEN } else { usize::MAX };
    for piece in bytes.chunks(step) {
        t.send_frame(FrameKind::DealerData, piece)?;
    }
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
