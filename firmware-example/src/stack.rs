//! Stack high-water mark: the free RAM between the end of the statics and the stack pointer
//! is painted at boot; the first word not holding the paint marks the deepest use.

use core::ptr::{addr_of, read_volatile, write_volatile};

const PAINT: u32 = 0x5EC0_F0E3;
/// Bytes below the stack pointer left alone while painting (the painter's own frame).
const MARGIN: usize = 256;

extern "C" {
    // From cortex-m-rt's link.x: the end of .bss/.uninit and the initial stack pointer.
    static __sheap: u32;
    static _stack_start: u32;
}

fn bounds() -> (usize, usize) {
    // Only the addresses of the linker symbols are taken (no read).
    (addr_of!(__sheap) as usize, addr_of!(_stack_start) as usize)
}

/// Paints the free RAM below the current stack pointer.
pub fn paint() {
    let (lo, _) = bounds();
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = (lo + 3) & !3;
    while p + MARGIN < sp {
        // SAFETY: [__sheap, sp - MARGIN) is RAM used by nobody: no heap, and the stack
        // is above it.
        unsafe { write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// Bytes of stack used at the deepest point since [`paint`], and the bytes available.
pub fn peak() -> (usize, usize) {
    let (lo, top) = bounds();
    let mut p = (lo + 3) & !3;
    // SAFETY: reads of RAM between the statics and the stack top.
    while p < top && unsafe { read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    (top - p, top - lo)
}
