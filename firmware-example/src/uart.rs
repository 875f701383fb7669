//! A polling driver for the CMSDK APB UART of the MPS2 boards (UART0 at `0x4000_4000`), as
//! an `embedded-io` byte link whose reads and writes time out.
//!
//! QEMU exposes it as a character device (`-serial tcp:127.0.0.1:PORT,nodelay=on` here).
//! After RX is enabled, one dummy read of `DATA` makes QEMU poll its chardev again (a
//! first byte that arrived while RX was off could otherwise wait for the next main-loop
//! timeout, about a second). Every byte is polled out of a 1-byte register, so this link
//! is far slower than the semihosting one.

use core::ptr::{read_volatile, write_volatile};

use embedded_io::{ErrorKind, ErrorType, Read, Write};

use crate::clock::Deadline;

/// Base address of UART0 on the mps2-an386.
pub const UART0_BASE: usize = 0x4000_4000;
/// `BAUDDIV` for 115200 baud at the 25 MHz APB clock (QEMU ignores the rate, but wants a
/// valid divisor, at least 16).
pub const BAUDDIV_115200: u32 = 217;

const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const INTCLEAR: usize = 0x0c;
const BAUDDIV: usize = 0x10;

const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const STATE_TX_OVERRUN: u32 = 1 << 2;
const STATE_RX_OVERRUN: u32 = 1 << 3;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;

/// A CMSDK APB UART, polled.
pub struct Uart {
    base: usize,
    timeout_ms: u32,
}

impl Uart {
    /// Takes over the UART at `base`: sets the divisor, clears overruns, enables TX and RX.
    /// Reads and writes fail with `TimedOut` after waiting `timeout_ms`.
    ///
    /// # Safety
    ///
    /// `base` must be a CMSDK APB UART, and nothing else may use it while this exists.
    pub unsafe fn new(base: usize, bauddiv: u32, timeout_ms: u32) -> Self {
        let u = Uart { base, timeout_ms };
        u.w(CTRL, 0);
        u.w(BAUDDIV, bauddiv);
        u.w(STATE, STATE_TX_OVERRUN | STATE_RX_OVERRUN);
        u.w(INTCLEAR, 0xf);
        u.w(CTRL, CTRL_TX_EN | CTRL_RX_EN);
        // QEMU quirk: reading DATA makes the model accept input from its chardev again.
        let _ = u.r(DATA);
        u
    }

    fn r(&self, off: usize) -> u32 {
        // SAFETY: an aligned register of the UART this driver owns (see `new`).
        unsafe { read_volatile((self.base + off) as *const u32) }
    }

    fn w(&self, off: usize, v: u32) {
        // SAFETY: as in `r`.
        unsafe { write_volatile((self.base + off) as *mut u32, v) }
    }

    fn wait_tx_ready(&self) -> Result<(), ErrorKind> {
        if self.r(STATE) & STATE_TX_FULL == 0 {
            return Ok(());
        }
        let dl = Deadline::after_ms(self.timeout_ms);
        while self.r(STATE) & STATE_TX_FULL != 0 {
            if dl.expired() {
                return Err(ErrorKind::TimedOut);
            }
        }
        Ok(())
    }
}

impl ErrorType for Uart {
    type Error = ErrorKind;
}

impl Read for Uart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut st = self.r(STATE);
        if st & STATE_RX_FULL == 0 {
            let dl = Deadline::after_ms(self.timeout_ms);
            loop {
                st = self.r(STATE);
                if st & STATE_RX_FULL != 0 {
                    break;
                }
                if dl.expired() {
                    return Err(ErrorKind::TimedOut);
                }
            }
        }
        let mut n = 0;
        loop {
            if st & STATE_RX_OVERRUN != 0 {
                self.w(STATE, STATE_RX_OVERRUN);
                return Err(ErrorKind::InvalidData);
            }
            buf[n] = self.r(DATA) as u8;
            n += 1;
            if n == buf.len() {
                break;
            }
            st = self.r(STATE);
            if st & STATE_RX_FULL == 0 {
                break;
            }
        }
        Ok(n)
    }
}

impl Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        for &b in buf {
            self.wait_tx_ready()?;
            self.w(DATA, b as u32);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        self.wait_tx_ready()
    }
}
