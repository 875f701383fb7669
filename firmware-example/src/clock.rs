//! Time on the device. SysTick counts milliseconds (interrupt at 1 kHz from the 25 MHz
//! core clock) for the UART timeouts; the host's clock, read through semihosting
//! `SYS_ELAPSED`, times the phases for the report (QEMU's virtual SysTick undercounts while
//! a semihosting read blocks the CPU).

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;

/// The core clock of the mps2-an386 (QEMU's SYSCLK).
pub const CORE_HZ: u32 = 25_000_000;

static MILLIS: AtomicU32 = AtomicU32::new(0);

/// Starts the millisecond tick.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / 1000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

/// Milliseconds since [`start`] (wraps after 49 days).
pub fn millis() -> u32 {
    MILLIS.load(Ordering::Relaxed)
}

/// A point in time `ms` milliseconds from when it was made.
#[derive(Clone, Copy)]
pub struct Deadline {
    start: u32,
    ms: u32,
}

impl Deadline {
    /// `ms` milliseconds from now.
    pub fn after_ms(ms: u32) -> Self {
        Deadline {
            start: millis(),
            ms,
        }
    }

    /// Whether it has passed.
    pub fn expired(&self) -> bool {
        millis().wrapping_sub(self.start) >= self.ms
    }
}

/// The host's wall clock in microseconds since QEMU started (semihosting `SYS_ELAPSED`
/// and `SYS_TICKFREQ`); 0 if the debugger does not support them.
pub fn host_micros() -> u64 {
    let mut block = [0u32; 2];
    // SAFETY: SYS_ELAPSED writes two words into the block we pass; SYS_TICKFREQ takes no
    // argument. Both are plain semihosting calls.
    let (r, freq) = unsafe {
        (
            cortex_m_semihosting::syscall1(
                cortex_m_semihosting::nr::ELAPSED,
                block.as_mut_ptr() as usize,
            ),
            cortex_m_semihosting::syscall1(cortex_m_semihosting::nr::TICKFREQ, 0),
        )
    };
    if r != 0 || freq == 0 || freq == usize::MAX {
        return 0;
    }
    let ticks = ((block[1] as u64) << 32) | block[0] as u64;
    ticks / (freq as u64 / 1_000_000).max(1)
}
