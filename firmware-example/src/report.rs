//! The report lines the firmware writes to the host's stderr through semihosting, one per
//! line, each starting with `secformer-fw: ` (the host parses them; QEMU's own messages on
//! the same stream are ignored):
//!
//! * `boot transport=<uart|semihosting> dims=<seq>x<hidden>x<heads>x<inter> taps=<0|1>`
//! * `result <n> <hex word>...`: the revealed output, `n` fixed-point words (f = 16)
//! * `taps <n> <hex word>...`: the revealed taps (only with `taps`)
//! * `stats key=value ...`: traffic, rounds, stash and stack use, phase times
//! * `ok` or `error: <message>` as the last line (`panic: ...` / `hardfault ...` if worse)
//! * `log: <text>`: free-form progress (only without the `defmt` feature)

use core::fmt::{self, Write};

use crate::semi;

/// A line being written to stderr (flushed when full and at the end).
pub struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Line {
    /// Starts a report line.
    pub fn new() -> Self {
        let mut l = Line {
            buf: [0; 256],
            len: 0,
        };
        let _ = l.write_str("secformer-fw: ");
        l
    }

    fn flush(&mut self) {
        semi::stderr(&self.buf[..self.len]);
        self.len = 0;
    }

    /// Ends the line (writes the newline and flushes).
    pub fn end(mut self) {
        let _ = self.write_str("\n");
        self.flush();
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Writes one report line.
pub fn line(args: fmt::Arguments<'_>) {
    let mut l = Line::new();
    let _ = l.write_fmt(args);
    l.end();
}

/// Writes `tag n w0 w1 ...` with the words in hex.
pub fn words(tag: &str, words: &[u64]) {
    let mut l = Line::new();
    let _ = write!(l, "{tag} {}", words.len());
    for w in words {
        let _ = write!(l, " {w:016x}");
    }
    l.end();
}

/// Progress messages: defmt frames with the `defmt` feature, `log:` lines otherwise.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        {
            ::defmt::info!($($arg)*);
        }
        #[cfg(not(feature = "defmt"))]
        {
            $crate::report::line(format_args!("log: {}", format_args!($($arg)*)));
        }
    }};
}
