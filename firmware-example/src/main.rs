//! secformer firmware example: party P1 (the data owner) of a secure Transformer block on a
//! Cortex-M4F (QEMU's mps2-an386 board), with the host as P0 (the model owner) and as the
//! relay to the dealer D, over one serial line.
//!
//! The command line (semihosting; the host passes it with `-semihosting-config
//! ...,arg=...`) selects what to do:
//!
//! * `uart`: the line is UART0 (QEMU connects it to the host over TCP);
//! * `semihosting`: the line is the host's stdin/stdout (QEMU's pipes);
//! * `taps`: also reveal the nonlinear steps' inputs and outputs to P1 (debugging);
//! * `timeout=<seconds>`: how long a UART read or write waits (default 60);
//! * `crash=panic`, `crash=hardfault`: exercise the failure paths (exit status 1);
//! * nothing: print how to drive the firmware and exit (what `cargo run` does).
//!
//! No heap: every buffer is a static array (sizes in `block.rs`). Results and statistics go
//! to the host's stderr as `secformer-fw:` lines (`report.rs`); QEMU's exit status is 0 on
//! success and 1 on any error, panic or fault.
#![no_std]
#![no_main]

// `block` and `line` are compiled into the host too (P0's program, the relay's tests):
// some of their items are used only there.
#[allow(dead_code)]
mod block;
mod clock;
#[cfg(feature = "defmt")]
mod defmt_sink;
mod keys;
#[allow(dead_code)]
mod line;
mod report;
mod secure;
mod semi;
mod stack;
mod uart;

use core::cell::RefCell;
use core::fmt::Write as _;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use embedded_io::{ErrorKind, Read, Write};
use secformer_core::transport::{Channel, Stats, Transport};
use static_cell::ConstStaticCell;

use block::{Phase, Role, DIMS};
use line::{Line, PeerPort};
use secure::{DeviceKeys, SealBuffers};

const TAP_WORDS: usize = DIMS.tap_words();

static ARENA: ConstStaticCell<[u64; block::ARENA_WORDS]> =
    ConstStaticCell::new([0; block::ARENA_WORDS]);
static PREFETCH: ConstStaticCell<[u8; block::PREFETCH_BYTES]> =
    ConstStaticCell::new([0; block::PREFETCH_BYTES]);
static STASH: ConstStaticCell<[u8; block::STASH_BYTES]> =
    ConstStaticCell::new([0; block::STASH_BYTES]);
static OUTPUT: ConstStaticCell<[u64; block::INPUT_LEN]> =
    ConstStaticCell::new([0; block::INPUT_LEN]);
static TAPS: ConstStaticCell<[u64; TAP_WORDS]> = ConstStaticCell::new([0; TAP_WORDS]);
static DEALER_TX: ConstStaticCell<[u8; secure::DEALER_TX_BYTES]> =
    ConstStaticCell::new([0; secure::DEALER_TX_BYTES]);
static DEALER_RX: ConstStaticCell<[u8; secure::DEALER_RX_BYTES]> =
    ConstStaticCell::new([0; secure::DEALER_RX_BYTES]);
static PEER_TX: ConstStaticCell<[u8; secure::PEER_BYTES]> =
    ConstStaticCell::new([0; secure::PEER_BYTES]);
static PEER_RX: ConstStaticCell<[u8; secure::PEER_BYTES]> =
    ConstStaticCell::new([0; secure::PEER_BYTES]);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    Uart,
    Semihosting,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Crash {
    Panic,
    HardFault,
}

struct Options<'a> {
    link: Option<Link>,
    taps: bool,
    keys: Option<&'a str>,
    timeout_s: u32,
    crash: Option<Crash>,
}

fn parse_args(cmdline: &str) -> Result<Options<'_>, heapless::String<96>> {
    let mut o = Options {
        link: None,
        taps: false,
        keys: None,
        timeout_s: 60,
        crash: None,
    };
    // The first word is the program (the ELF path when QEMU falls back to -kernel).
    for w in cmdline.split_ascii_whitespace().skip(1) {
        match w {
            "uart" => o.link = Some(Link::Uart),
            "semihosting" => o.link = Some(Link::Semihosting),
            "reveal-taps" => o.taps = true,
            "crash=panic" => o.crash = Some(Crash::Panic),
            "crash=hardfault" => o.crash = Some(Crash::HardFault),
            _ => {
                if let Some(v) = w.strip_prefix("keys=") {
                    o.keys = Some(v);
                } else if let Some(v) = w.strip_prefix("timeout=") {
                    o.timeout_s = v
                        .parse()
                        .map_err(|_| msg(format_args!("bad timeout {v}")))?;
                } else {
                    return Err(msg(format_args!("unknown argument {w:?}")));
                }
            }
        }
    }
    Ok(o)
}

fn msg(args: core::fmt::Arguments<'_>) -> heapless::String<96> {
    let mut s = heapless::String::new();
    let mut w = Truncating(&mut s);
    let _ = w.write_fmt(args);
    s
}

/// Writes into a bounded string, dropping what does not fit.
struct Truncating<'a, const N: usize>(&'a mut heapless::String<N>);

impl<const N: usize> core::fmt::Write for Truncating<'_, N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

#[entry]
fn main() -> ! {
    stack::paint();
    let Some(cp) = cortex_m::Peripherals::take() else {
        report::line(format_args!("error: core peripherals already taken"));
        semi::exit(false);
    };
    clock::start(cp.SYST);
    let ok = app();
    semi::exit(ok)
}

fn app() -> bool {
    let mut argbuf = [0u8; 512];
    let opts = match parse_args(semi::cmdline(&mut argbuf)) {
        Ok(o) => o,
        Err(e) => {
            report::line(format_args!("error: {e}"));
            return false;
        }
    };
    match opts.crash {
        // Self-tests of the failure paths: both must end QEMU with status 1.
        Some(Crash::Panic) => panic!("crash=panic requested"),
        Some(Crash::HardFault) => cortex_m::asm::udf(),
        None => {}
    }
    match opts.link {
        None => {
            banner();
            true
        }
        Some(Link::Uart) => {
            // SAFETY: UART0 is used by this link only.
            let u = unsafe {
                uart::Uart::new(
                    uart::UART0_BASE,
                    uart::BAUDDIV_115200,
                    opts.timeout_s.saturating_mul(1000),
                )
            };
            run(u, "uart", &opts)
        }
        Some(Link::Semihosting) => match semi::Stdio::open() {
            Ok(l) => run(l, "semihosting", &opts),
            Err(e) => {
                report::line(format_args!("error: cannot open semihosting stdio: {e:?}"));
                false
            }
        },
    }
}

fn banner() {
    report::line(format_args!(
        "secformer firmware example: P1 of a secure Transformer block ({}x{}, {} heads, FFN {})",
        DIMS.seq, DIMS.hidden, DIMS.heads, DIMS.inter
    ));
    report::line(format_args!(
        "no transport given: run it from the host with `secformer firmware-peer --transport uart` \
         or `--transport semihosting` (see firmware-example/README.md)"
    ));
}

/// Phase times on the host clock, in microseconds since QEMU started.
#[derive(Default)]
struct Times {
    boot: u64,
    setup: u64,
    prepare: u64,
    online: u64,
    done: u64,
}

impl Times {
    fn mark(&mut self, p: Phase) {
        let t = clock::host_micros();
        let name = match p {
            Phase::Setup => {
                self.setup = t;
                "setup: sharing the weights, opening their masks"
            }
            Phase::Prepare => {
                self.prepare = t;
                "prepare: this inference's masks"
            }
            Phase::Online => {
                self.online = t;
                "online: the encoder layer"
            }
            Phase::Done => {
                self.done = t;
                "done"
            }
        };
        info!("{}", name);
    }
}

struct Traffic {
    peer: Stats,
    dealer: Stats,
    profile: block::Profile,
}

fn run<L: Read<Error = ErrorKind> + Write<Error = ErrorKind>>(
    link: L,
    name: &str,
    opts: &Options,
) -> bool {
    let mut times = Times {
        boot: clock::host_micros(),
        ..Times::default()
    };
    report::line(format_args!(
        "boot transport={name} dims={}x{}x{}x{} taps={}",
        DIMS.seq, DIMS.hidden, DIMS.heads, DIMS.inter, opts.taps as u8
    ));
    let Some(dir) = opts.keys else {
        report::line(format_args!(
            "error: no keys=DIR: the device needs its provisioned keys (see README)"
        ));
        return false;
    };
    let provisioned = keys::load(dir).and_then(|k| Ok((k, [keys::entropy()?, keys::entropy()?])));
    let (device_keys, entropy) = match provisioned {
        Ok(k) => k,
        Err(e) => {
            report::line(format_args!("error: {e}"));
            return false;
        }
    };
    let line = RefCell::new(Line::new(link, STASH.take()));
    let output = OUTPUT.take();
    let taps = opts.taps.then(|| &mut TAPS.take()[..]);
    let res = session(
        &line,
        (&device_keys, entropy),
        &mut output[..],
        taps,
        opts.taps,
        &mut times,
    );
    match res {
        Ok(t) => {
            report::words("result", &output[..]);
            report_stats(&t, &line.borrow().stats(), &times);
            report::line(format_args!("ok"));
            true
        }
        Err(e) => {
            let m = msg(format_args!("P1 (firmware): {e}"));
            // One Error frame on the line: the host relay forwards it to P0 and to D.
            Channel::new(PeerPort(&line)).send_error(&m);
            report::line(format_args!("error: {e}"));
            false
        }
    }
}

fn session<L: Read<Error = ErrorKind> + Write<Error = ErrorKind>>(
    line: &RefCell<Line<'_, L>>,
    (keys, entropy): (&DeviceKeys, [[u8; 32]; 2]),
    output: &mut [u64],
    taps: Option<&mut [u64]>,
    with_taps: bool,
    times: &mut Times,
) -> secformer_core::Result<Traffic> {
    let bufs = SealBuffers {
        dealer_tx: &mut DEALER_TX.take()[..],
        dealer_rx: &mut DEALER_RX.take()[..],
        peer_tx: &mut PEER_TX.take()[..],
        peer_rx: &mut PEER_RX.take()[..],
    };
    let mut s = secure::connect(line, keys, entropy, bufs, &mut PREFETCH.take()[..])?;
    info!("peer handshake done");
    let mut taps = taps;
    let role = Role::DataOwner {
        input: &block::INPUT,
        output,
        taps: taps.as_deref_mut(),
    };
    let mut mark = |p: Phase| times.mark(p);
    let profile = block::run(
        &mut s,
        &DIMS,
        role,
        with_taps,
        &mut ARENA.take()[..],
        &clock::host_micros,
        &mut mark,
    )?;
    if let Some(t) = taps {
        report::words("taps", t);
    }
    Ok(Traffic {
        peer: s.peer_stats(),
        dealer: s.dealer_stats(),
        profile,
    })
}

fn report_stats(t: &Traffic, l: &line::LineStats, times: &Times) {
    let (stack_used, stack_avail) = stack::peak();
    let ms = |a: u64, b: u64| (b.saturating_sub(a)) as f32 / 1000.0;
    report::line(format_args!(
        "stats peer_sent={} peer_received={} peer_rounds={} dealer_sent={} dealer_received={} \
         stash_peak={} stashed_frames={} stack_peak={} stack_avail={} ms_handshake={:.1} \
         ms_setup={:.1} ms_prepare={:.1} ms_online={:.1} ms_total={:.1}",
        t.peer.bytes_sent,
        t.peer.bytes_received,
        t.peer.rounds,
        t.dealer.bytes_sent,
        t.dealer.bytes_received,
        l.stash_peak,
        l.stashed_frames,
        stack_used,
        stack_avail,
        ms(times.boot, times.setup),
        ms(times.setup, times.prepare),
        ms(times.prepare, times.online),
        ms(times.online, times.done),
        ms(times.boot, times.done),
    ));
    let mut l = report::Line::new();
    let _ = write!(l, "profile");
    for (i, name) in block::COMPONENTS.iter().enumerate() {
        let _ = write!(
            l,
            " {name}_ms={:.1} {name}_rounds={} {name}_bytes={}",
            t.profile.micros[i] as f32 / 1000.0,
            t.profile.rounds[i],
            t.profile.bytes[i]
        );
    }
    l.end();
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    cortex_m::interrupt::disable();
    // One line (PanicInfo's Display puts the message on a second line).
    match info.location() {
        Some(l) => report::line(format_args!(
            "panic: {} at {}:{}",
            info.message(),
            l.file(),
            l.line()
        )),
        None => report::line(format_args!("panic: {}", info.message())),
    }
    semi::exit(false)
}

#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    // Without this, QEMU would spin in the default handler forever.
    report::line(format_args!(
        "hardfault pc={:#010x} lr={:#010x} xpsr={:#010x}",
        ef.pc(),
        ef.lr(),
        ef.xpsr()
    ));
    semi::exit(false)
}

#[exception]
unsafe fn DefaultHandler(irq: i16) {
    report::line(format_args!("unexpected exception {irq}"));
    semi::exit(false)
}
