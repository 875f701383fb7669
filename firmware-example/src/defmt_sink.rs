//! defmt's global logger (feature `defmt`): frames are written, rzcobs-encoded, to the host
//! file `secformer-fw.defmt` (in QEMU's working directory) through semihosting. Decode with
//! `defmt-print -e <the ELF> < secformer-fw.defmt`. Report lines stay on stderr as text.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cortex_m_semihosting::nr;

use crate::semi;

#[defmt::global_logger]
struct Logger;

static TAKEN: AtomicBool = AtomicBool::new(false);
static FD: AtomicUsize = AtomicUsize::new(0);
static mut ENCODER: defmt::Encoder = defmt::Encoder::new();

fn sink(bytes: &[u8]) {
    let mut fd = FD.load(Ordering::Relaxed);
    if fd == 0 {
        match semi::open(b"secformer-fw.defmt\0", nr::open::W_TRUNC_BINARY) {
            Ok(h) => {
                fd = h;
                FD.store(h, Ordering::Relaxed);
            }
            Err(_) => return,
        }
    }
    let _ = semi::write_all(fd, bytes);
}

fn encoder() -> &'static mut defmt::Encoder {
    // SAFETY: only called between acquire and release, which TAKEN makes exclusive (the
    // firmware logs from thread mode only).
    unsafe { &mut *core::ptr::addr_of_mut!(ENCODER) }
}

// SAFETY: acquire/release bracket every frame and TAKEN rejects re-entrance.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        if TAKEN.swap(true, Ordering::Acquire) {
            panic!("defmt logger re-entered");
        }
        encoder().start_frame(sink);
    }

    unsafe fn flush() {}

    unsafe fn release() {
        encoder().end_frame(sink);
        TAKEN.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        encoder().write(bytes, sink);
    }
}
