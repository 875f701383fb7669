//! Helpers shared by the fuzz targets: a byte link that reads the fuzzer's input, frame
//! construction, and splitting one input into several files.

use embedded_io::{ErrorKind, ErrorType, Read, Write};
use secformer_core::transport::FrameKind;

/// A link whose reads return the fuzzer's bytes (then end of stream) and whose writes
/// are discarded.
pub struct ByteLink<'a> {
    data: &'a [u8],
    pos: usize,
    /// Bytes read per call at most (exercises partial reads).
    pub step: usize,
}

impl<'a> ByteLink<'a> {
    /// A link over `data`, reading at most `step` bytes per call.
    pub fn new(data: &'a [u8], step: usize) -> Self {
        ByteLink {
            data,
            pos: 0,
            step: step.max(1),
        }
    }
}

impl ErrorType for ByteLink<'_> {
    type Error = ErrorKind;
}

impl Read for ByteLink<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        let n = buf.len().min(self.step).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for ByteLink<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

/// Every frame kind, indexed by a selector byte.
pub fn kind(b: u8) -> FrameKind {
    FrameKind::from_u8(1 + b % 9).unwrap_or(FrameKind::Ring)
}

/// A well-formed frame (header, payload, CRC-32 trailer) as the channel writes it.
pub fn frame(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x5F, kind as u8];
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    let crc = crc32(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

/// CRC-32 (IEEE), as the frames use.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for b in data {
        c ^= *b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Splits `data` at NUL bytes into at most `n` parts (missing parts are absent).
pub fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    data.splitn(n, |b| *b == 0).collect()
}
