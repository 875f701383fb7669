//! Preprocessed material: one party's share of whole forward passes, drawn before the
//! input exists, stored in memory or in a file, and consumed by the online phase with no
//! dealer traffic and no generation of randomness.
//!
//! # Format
//!
//! A stream (a file, a byte buffer, a serial line) is
//!
//! ```text
//! "SFPP" | header length: u32 LE | Header (postcard) | pass * header.count
//! pass    = index: u32 LE | (request record | slot data of its items)* | crc32: u32 LE
//! request = 0xA5 | length: u16 LE | Request (postcard)
//! slot    = len * width little-endian bytes, for every slot of the item that this party
//!           holds a share of (slots it holds nothing of are absent)
//! ```
//!
//! The header binds the material to what it may be used for: the format version, the
//! preprocessing id issued by D, the first pass index and the pass count, the party whose
//! share it is, both parties' identities, the model fingerprint, the batch size and
//! sequence bucket, and the hash of the request plan. [`Expect`] states what a consumer
//! requires; any difference is refused naming the field. The request records inside each
//! pass let a reader with no copy of the plan (a device) check every request the online
//! phase makes against what was prepared; the checksum of each pass (over its bytes,
//! written when `header.checksums` is set) catches corruption at rest.
//!
//! Weight products arrive prepared: the second slot of an [`Item::OwnedTriple`] already
//! holds P1's `A F + C` (see [`Dealer::prepared_weights`]), so the online phase does no
//! offline work either.
//!
//! # Single use
//!
//! A pass is consumed by value ([`PassReader`] moves through it once). Reuse across copies
//! of a file is refused by the *other* party, which keeps the `(preprocessing id, index)`
//! pairs it has consumed ([`Consumed`]): two uses of one mask would reveal the difference
//! of two inputs.

use embedded_io::{Read, ReadExactError, Write};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::party::PartyId;
use crate::transport::Stats;

use super::draw::{check_buffers, widen_in_place};
use super::{layout, Dealer, Item, Request, Source};

/// The first bytes of every preprocessing stream.
pub const MAGIC: [u8; 4] = *b"SFPP";
/// Version of the preprocessing format.
pub const FORMAT_VERSION: u16 = 1;
/// Marker byte of a request record.
const REQUEST_MARK: u8 = 0xA5;
/// Largest encoded header or request record.
const MAX_RECORD: usize = 512;

/// A 32-byte public identity (a party's static public key; zeros when links are not
/// authenticated).
pub type Identity = [u8; 32];

/// What a preprocessing stream is for (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT_VERSION`].
    pub version: u16,
    /// The preprocessing id D issued (it outlives connections).
    pub prep: u64,
    /// Index of the first pass in this stream.
    pub first: u32,
    /// Passes in this stream.
    pub count: u32,
    /// Whose share this is.
    pub party: PartyId,
    /// P0's and P1's identities.
    pub identities: [Identity; 2],
    /// Fingerprint of the model's public description.
    pub model: [u8; 32],
    /// Texts per pass.
    pub batch: u16,
    /// Tokens per text (the sequence bucket).
    pub bucket: u32,
    /// Hash of the request plan ([`plan_hash`]).
    pub plan: u64,
    /// Requests per pass.
    pub requests: u32,
    /// Bytes of one pass's body (index, records, slots and checksum).
    pub pass_bytes: u64,
    /// Whether each pass ends with a checked CRC-32 (files: yes; memory: no need).
    pub checksums: bool,
}

/// Why material was refused or could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaterialError {
    /// The stream does not start with [`MAGIC`].
    NotPreprocessing,
    /// The stream's format version is not ours.
    Version {
        /// The stream's.
        found: u16,
    },
    /// A header field differs from what the consumer requires.
    Mismatch {
        /// Which field.
        field: &'static str,
    },
    /// A pass index other than the one requested.
    PassIndex {
        /// Wanted.
        expected: u32,
        /// Found.
        found: u32,
    },
    /// A pass's checksum does not match its bytes.
    Checksum {
        /// The pass.
        index: u32,
    },
    /// The stream ended early or carries a malformed record.
    Corrupt(&'static str),
    /// The pass was consumed before (a copy or restored file).
    Reused {
        /// The preprocessing id.
        prep: u64,
        /// The pass.
        index: u32,
    },
    /// The stream could not be read or written.
    Io(embedded_io::ErrorKind),
}

impl core::fmt::Display for MaterialError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MaterialError::NotPreprocessing => f.write_str("not a secformer preprocessing file"),
            MaterialError::Version { found } => write!(
                f,
                "preprocessing format version {found}, this build reads {FORMAT_VERSION}"
            ),
            MaterialError::Mismatch { field } => {
                write!(f, "preprocessing is for another {field}")
            }
            MaterialError::PassIndex { expected, found } => {
                write!(f, "expected preprocessing pass {expected}, found pass {found}")
            }
            MaterialError::Checksum { index } => {
                write!(f, "preprocessing pass {index} is corrupted (checksum mismatch)")
            }
            MaterialError::Corrupt(what) => write!(f, "malformed preprocessing: {what}"),
            MaterialError::Reused { prep, index } => write!(
                f,
                "preprocessing {prep:016x} pass {index} was already used (a copy cannot be used twice)"
            ),
            MaterialError::Io(k) => write!(f, "preprocessing I/O error ({k:?})"),
        }
    }
}

fn io<E: embedded_io::Error>(e: E) -> Error {
    Error::Material(MaterialError::Io(e.kind()))
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<()> {
    r.read_exact(buf).map_err(|e| match e {
        ReadExactError::UnexpectedEof => {
            Error::Material(MaterialError::Corrupt("stream ends early"))
        }
        ReadExactError::Other(e) => io(e),
    })
}

/// The hash of a request plan (FNV-1a 64 over the postcard encoding of every request):
/// both parties and D compare it before material is drawn or used.
pub fn plan_hash(requests: &[Request]) -> u64 {
    let mut h = PlanHasher::new();
    for r in requests {
        h.add(r);
    }
    h.finish()
}

/// Incremental [`plan_hash`].
#[derive(Debug, Clone, Copy)]
pub struct PlanHasher(u64);

impl Default for PlanHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl PlanHasher {
    /// An empty plan's hasher.
    pub fn new() -> Self {
        PlanHasher(0xcbf2_9ce4_8422_2325)
    }
    /// Adds one request.
    pub fn add(&mut self, r: &Request) {
        let mut buf = [0u8; MAX_RECORD];
        let bytes = postcard::to_slice(r, &mut buf).map(|b| &*b).unwrap_or(&[]);
        for b in bytes.iter().chain(&(bytes.len() as u32).to_le_bytes()) {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
    /// The hash.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// Bytes of one party's pass body for a plan (index, request records, slots, checksum).
pub fn pass_bytes(requests: &[Request], party: PartyId) -> u64 {
    let mut n = 4 + 4;
    for r in requests {
        let mut buf = [0u8; MAX_RECORD];
        n += 3 + postcard::to_slice(r, &mut buf)
            .map(|b| b.len())
            .unwrap_or(0) as u64;
        n += r
            .items
            .iter()
            .map(|it| super::stored_bytes(it, party))
            .sum::<u64>();
    }
    n
}

/// Writes a header (magic, length, postcard).
pub fn write_header<W: Write>(w: &mut W, h: &Header) -> Result<()> {
    let mut buf = [0u8; MAX_RECORD];
    let bytes = postcard::to_slice(h, &mut buf)
        .map_err(|_| Error::Material(MaterialError::Corrupt("header does not encode")))?;
    w.write_all(&MAGIC).map_err(io)?;
    w.write_all(&(bytes.len() as u32).to_le_bytes())
        .map_err(io)?;
    w.write_all(bytes).map_err(io)?;
    Ok(())
}

/// Reads a header (magic, length, postcard), checking the format version.
pub fn read_header<R: Read>(r: &mut R) -> Result<Header> {
    let mut magic = [0u8; 4];
    read_exact(r, &mut magic)?;
    if magic != MAGIC {
        return Err(Error::Material(MaterialError::NotPreprocessing));
    }
    let mut len = [0u8; 4];
    read_exact(r, &mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_RECORD {
        return Err(Error::Material(MaterialError::Corrupt("header too long")));
    }
    let mut buf = [0u8; MAX_RECORD];
    read_exact(r, &mut buf[..len])?;
    let h: Header = postcard::from_bytes(&buf[..len])
        .map_err(|_| Error::Material(MaterialError::Corrupt("header does not decode")))?;
    if h.version != FORMAT_VERSION {
        return Err(Error::Material(MaterialError::Version { found: h.version }));
    }
    Ok(h)
}

/// What a consumer requires of a preprocessing header. `None` fields are not checked.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// The preprocessing id.
    pub prep: Option<u64>,
    /// The party whose share it must be.
    pub party: Option<PartyId>,
    /// Both identities.
    pub identities: Option<[Identity; 2]>,
    /// The model fingerprint.
    pub model: Option<[u8; 32]>,
    /// Batch size and bucket.
    pub shape: Option<(u16, u32)>,
    /// The plan hash.
    pub plan: Option<u64>,
}

impl Expect {
    /// Checks `h`, naming the first field that differs.
    pub fn check(&self, h: &Header) -> Result<()> {
        let bad = |field| Err(Error::Material(MaterialError::Mismatch { field }));
        if self.prep.is_some_and(|p| p != h.prep) {
            return bad("preprocessing id");
        }
        if self.party.is_some_and(|p| p != h.party) {
            return bad("party");
        }
        if let Some(ids) = &self.identities {
            if ids[0] != h.identities[0] {
                return bad("identity of P0");
            }
            if ids[1] != h.identities[1] {
                return bad("identity of P1");
            }
        }
        if self.model.as_ref().is_some_and(|m| *m != h.model) {
            return bad("model");
        }
        if let Some((batch, bucket)) = self.shape {
            if batch != h.batch {
                return bad("batch size");
            }
            if bucket != h.bucket {
                return bad("sequence bucket");
            }
        }
        if self.plan.is_some_and(|p| p != h.plan) {
            return bad("request plan");
        }
        Ok(())
    }
}

/// Writes one party's passes: [`PassWriter::begin`], then for each request
/// [`PassWriter::request`] and the slots of its items ([`PassWriter::slot`]), then
/// [`PassWriter::end`].
pub struct PassWriter<W> {
    w: W,
    checksums: bool,
    crc: crc32fast::Hasher,
    written: u64,
}

impl<W: Write> PassWriter<W> {
    /// A writer of passes after a header (written by the caller with [`write_header`]).
    pub fn new(w: W, checksums: bool) -> Self {
        PassWriter {
            w,
            checksums,
            crc: crc32fast::Hasher::new(),
            written: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        if self.checksums {
            self.crc.update(bytes);
        }
        self.written += bytes.len() as u64;
        self.w.write_all(bytes).map_err(io)
    }

    /// Starts pass `index`.
    pub fn begin(&mut self, index: u32) -> Result<()> {
        self.crc = crc32fast::Hasher::new();
        self.put(&index.to_le_bytes())
    }

    /// Writes a request record.
    pub fn request(&mut self, r: &Request) -> Result<()> {
        let mut buf = [0u8; MAX_RECORD];
        let bytes = postcard::to_slice(r, &mut buf)
            .map_err(|_| Error::Material(MaterialError::Corrupt("request does not encode")))?;
        let n = bytes.len();
        let mut head = [REQUEST_MARK, 0, 0];
        head[1..].copy_from_slice(&(n as u16).to_le_bytes());
        self.put(&head)?;
        self.put(&buf[..n])
    }

    /// Writes one slot of `width` bytes per word.
    pub fn slot(&mut self, words: &[u64], width: u8) -> Result<()> {
        if width >= 8 {
            return self.put(bytemuck::cast_slice(words));
        }
        let w = width as usize;
        let mut tmp = [0u8; 4096];
        for chunk in words.chunks(4096 / 8) {
            for (i, x) in chunk.iter().enumerate() {
                tmp[i * w..i * w + w].copy_from_slice(&x.to_le_bytes()[..w]);
            }
            self.put(&tmp[..chunk.len() * w])?;
        }
        Ok(())
    }

    /// Writes this party's share of `item` (one buffer per slot, as [`Dealer::take`]
    /// fills them; slots it holds nothing of are skipped).
    pub fn item(&mut self, item: &Item, party: PartyId, bufs: &[&[u64]]) -> Result<()> {
        for (slot, buf) in layout(item).iter().zip(bufs) {
            if slot.source(party) != Source::Zero {
                self.slot(buf, slot.width)?;
            }
        }
        Ok(())
    }

    /// Ends the pass (writes its checksum, or zero without checksums).
    pub fn end(&mut self) -> Result<()> {
        let crc = if self.checksums {
            core::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize()
        } else {
            0
        };
        self.written += 4;
        self.w.write_all(&crc.to_le_bytes()).map_err(io)
    }

    /// Bytes written so far (after the header).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the sink.
    pub fn into_inner(mut self) -> Result<W> {
        self.w.flush().map_err(io)?;
        Ok(self.w)
    }
}

/// The online phase's source of material: one party's share of one pass, read in order
/// from `R` and checked against every request the protocols make. It has no link to D:
/// its [`Dealer::stats`] are always zero.
pub struct PassReader<R> {
    r: R,
    party: PartyId,
    index: u32,
    checksums: bool,
    crc: crc32fast::Hasher,
    seq: u32,
    requests: u32,
    items: heapless::Vec<Item, { super::MAX_ITEMS }>,
    next: usize,
    done: bool,
}

impl<R: Read> PassReader<R> {
    /// Starts reading pass `index` of a stream whose header is `h` (already read and
    /// checked by the caller); the stream is positioned at the pass.
    pub fn new(mut r: R, h: &Header, index: u32) -> Result<Self> {
        if index < h.first || index - h.first >= h.count {
            return Err(Error::Material(MaterialError::PassIndex {
                expected: index,
                found: h.first,
            }));
        }
        let mut crc = crc32fast::Hasher::new();
        let mut b = [0u8; 4];
        read_exact(&mut r, &mut b)?;
        crc.update(&b);
        let found = u32::from_le_bytes(b);
        if found != index {
            return Err(Error::Material(MaterialError::PassIndex {
                expected: index,
                found,
            }));
        }
        Ok(PassReader {
            r,
            party: h.party,
            index,
            checksums: h.checksums,
            crc,
            seq: 0,
            requests: h.requests,
            items: heapless::Vec::new(),
            next: 0,
            done: false,
        })
    }

    fn get(&mut self, buf: &mut [u8]) -> Result<()> {
        read_exact(&mut self.r, buf)?;
        if self.checksums {
            self.crc.update(buf);
        }
        Ok(())
    }

    fn read_request(&mut self) -> Result<Request> {
        let mut head = [0u8; 3];
        self.get(&mut head)?;
        if head[0] != REQUEST_MARK {
            return Err(Error::Material(MaterialError::Corrupt(
                "expected a request record",
            )));
        }
        let n = u16::from_le_bytes([head[1], head[2]]) as usize;
        if n > MAX_RECORD {
            return Err(Error::Material(MaterialError::Corrupt(
                "request record too long",
            )));
        }
        let mut buf = [0u8; MAX_RECORD];
        self.get(&mut buf[..n])?;
        postcard::from_bytes(&buf[..n])
            .map_err(|_| Error::Material(MaterialError::Corrupt("request does not decode")))
    }

    /// Returns the reader (positioned after this pass once [`Dealer::finish`] ran).
    pub fn into_inner(self) -> R {
        self.r
    }
}

impl<R: Read> Dealer for PassReader<R> {
    fn party(&self) -> PartyId {
        self.party
    }

    fn request(&mut self, items: &[Item]) -> Result<()> {
        if self.next < self.items.len() {
            return Err(Error::DealerSequence {
                seq: self.seq.wrapping_sub(1),
                what: "new request before the previous one was fully consumed",
            });
        }
        if self.seq >= self.requests {
            return Err(Error::DealerSequence {
                seq: self.seq,
                what: "request beyond the prepared plan",
            });
        }
        let rec = self.read_request()?;
        if rec.seq != self.seq {
            return Err(Error::Material(MaterialError::Corrupt(
                "request records out of order",
            )));
        }
        let differ =
            rec.items.len() != items.len() || rec.items.iter().zip(items).any(|(a, b)| a != b);
        if differ {
            let i = rec
                .items
                .iter()
                .zip(items)
                .position(|(a, b)| a != b)
                .unwrap_or(rec.items.len().min(items.len()));
            let fallback = Item::Triple { n: 0 };
            return Err(Error::DealerMismatch {
                seq: self.seq,
                expected: *rec.items.get(i).unwrap_or(&fallback),
                actual: *items.get(i).unwrap_or(&fallback),
            });
        }
        self.items = rec.items;
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
        check_buffers(&item, self.party, bufs)?;
        for (slot, buf) in layout(&item).iter().zip(bufs.iter_mut()) {
            if slot.source(self.party) == Source::Zero {
                buf.fill(0);
                continue;
            }
            let n = slot.len * slot.width as usize;
            {
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf[..]);
                self.get(&mut bytes[..n])?;
            }
            widen_in_place(buf, slot.width);
        }
        self.next += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if self.done {
            return Ok(());
        }
        if self.next < self.items.len() || self.seq < self.requests {
            return Err(Error::DealerSequence {
                seq: self.seq,
                what: "pass finished with prepared material unconsumed",
            });
        }
        let mut b = [0u8; 4];
        read_exact(&mut self.r, &mut b)?;
        if self.checksums {
            let crc = core::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
            if crc != u32::from_le_bytes(b) {
                return Err(Error::Material(MaterialError::Checksum {
                    index: self.index,
                }));
            }
        }
        self.done = true;
        Ok(())
    }

    fn stats(&self) -> Stats {
        Stats::default()
    }

    fn prepared_weights(&self) -> bool {
        true
    }
}

/// The passes one party has consumed, by preprocessing id: refuses a second use of a pass
/// (kept by the party that did *not* supply the material, and by whoever tracks its own).
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Consumed {
    used: alloc::collections::BTreeMap<u64, alloc::collections::BTreeSet<u32>>,
}

#[cfg(feature = "alloc")]
impl Consumed {
    /// Records the use of pass `index` of `prep`, refusing it if it was used before.
    pub fn consume(&mut self, prep: u64, index: u32) -> Result<()> {
        if !self.used.entry(prep).or_default().insert(index) {
            return Err(Error::Material(MaterialError::Reused { prep, index }));
        }
        Ok(())
    }

    /// Whether pass `index` of `prep` was used.
    pub fn is_used(&self, prep: u64, index: u32) -> bool {
        self.used.get(&prep).is_some_and(|s| s.contains(&index))
    }

    /// Passes used in all.
    pub fn len(&self) -> usize {
        self.used.values().map(|s| s.len()).sum()
    }

    /// Whether nothing was used.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Records the request plan of a program run against it (see [`crate::transport::NullTransport`]
/// for the dry run): requests are kept, `take` leaves buffers as they are.
#[cfg(feature = "alloc")]
pub struct PlanRecorder {
    party: PartyId,
    /// The requests, in order.
    pub requests: alloc::vec::Vec<Request>,
}

#[cfg(feature = "alloc")]
impl PlanRecorder {
    /// An empty plan, recorded as `party` (the plan is the same for both parties).
    pub fn new(party: PartyId) -> Self {
        PlanRecorder {
            party,
            requests: alloc::vec::Vec::new(),
        }
    }
}

#[cfg(feature = "alloc")]
impl Dealer for PlanRecorder {
    fn party(&self) -> PartyId {
        self.party
    }
    fn request(&mut self, items: &[Item]) -> Result<()> {
        let mut v = heapless::Vec::new();
        for it in items {
            v.push(*it)
                .map_err(|_| Error::Param("too many items in one dealer request"))?;
        }
        self.requests.push(Request {
            seq: self.requests.len() as u32,
            items: v,
        });
        Ok(())
    }
    fn take(&mut self, item: Item, bufs: &mut [&mut [u64]]) -> Result<()> {
        check_buffers(&item, self.party, bufs)
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    fn stats(&self) -> Stats {
        Stats::default()
    }
    fn prepared_weights(&self) -> bool {
        true
    }
}
