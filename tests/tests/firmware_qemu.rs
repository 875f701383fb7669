//! The firmware example end to end: the firmware (`firmware-example/`) runs under QEMU
//! (mps2-an386, Cortex-M4F) as P1 of a secure Transformer block, this process is P0 and
//! the dealer, over the UART (QEMU's TCP socket) and over semihosting stdio. The
//! firmware's output must match the f64 block, each nonlinear step its f64 function on the
//! values it saw (with taps), and a corrupted byte on the line must end the run with a
//! clear error on both sides, not a hang.
//!
//! The QEMU tests build the firmware themselves (`cargo build --release --target
//! thumbv7em-none-eabihf` in `firmware-example/`, once), or use the ELF named by
//! `SECFORMER_FIRMWARE_ELF`. Without `qemu-system-arm` they are skipped with a loud
//! message, unless `SECFORMER_REQUIRE_QEMU` is set (CI), which makes them fail.
//!
//! The first tests need no QEMU: the same device-side code (the block program and the line
//! multiplexing, compiled for the host) runs in a thread behind a socket pair, against the
//! same relay.

use std::cell::RefCell;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use secformer_core::dealer::prefetch::Prefetch;
use secformer_core::dealer::DealerClient;
use secformer_core::fxp::{Encoding, DEFAULT_FRAC_BITS};
use secformer_core::kernel::Portable;
use secformer_core::party::PartyId;
use secformer_core::session::Session;
use secformer_core::transport::{Channel, Transport};
use secformer_host::firmware::block::{self, Role, DIMS};
use secformer_host::firmware::line::{DealerPort, Line, PeerPort};
use secformer_host::firmware::{
    self, Corruption, Direction, Fault, FirmwareFailure, FirmwareLink, FirmwarePeerOptions,
    FirmwareReport, HostOutcome,
};

/// Tolerances (max |secure - f64|).
const TOL_SOFTMAX: f64 = 1e-3;
const TOL_LAYERNORM: f64 = 0.01;
const TOL_GELU: f64 = 1e-3;
/// The block's output: LayerNorm 2 on values that carry the earlier steps' errors.
const TOL_OUTPUT: f64 = 0.02;

// ---------------------------------------------------------------------------------------
// The device side on the host (no QEMU)

/// A socket as the device's byte link.
struct SockLink(UnixStream);

impl embedded_io::ErrorType for SockLink {
    type Error = embedded_io::ErrorKind;
}
impl embedded_io::Read for SockLink {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, embedded_io::ErrorKind> {
        std::io::Read::read(&mut self.0, buf).map_err(|e| e.kind().into())
    }
}
impl embedded_io::Write for SockLink {
    fn write(&mut self, buf: &[u8]) -> Result<usize, embedded_io::ErrorKind> {
        std::io::Write::write(&mut self.0, buf).map_err(|e| e.kind().into())
    }
    fn flush(&mut self) -> Result<(), embedded_io::ErrorKind> {
        Ok(())
    }
}

/// What the firmware's `session` does, on the host: P1 over one line.
fn device(link: SockLink, taps: bool) -> secformer_core::Result<(Vec<u64>, Option<Vec<u64>>)> {
    let mut stash = vec![0u8; block::STASH_BYTES];
    let mut prefetch = vec![0u8; block::PREFETCH_BYTES];
    let line = RefCell::new(Line::new(link, &mut stash));
    let res = (|| {
        let (client, session) = DealerClient::connect_with(
            Prefetch::new(Channel::new(DealerPort(&line)), &mut prefetch),
            PartyId::P1,
            true,
        )?;
        let mut s = Session::establish(
            PartyId::P1,
            Encoding::default(),
            Channel::new(PeerPort(&line)),
            client,
            Portable,
            session,
            None,
        )?;
        let mut mem = vec![0u64; block::ARENA_WORDS];
        let mut out = vec![0u64; block::INPUT_LEN];
        let mut t = taps.then(|| vec![0u64; DIMS.tap_words()]);
        block::run(
            &mut s,
            &DIMS,
            Role::DataOwner {
                input: &block::INPUT,
                output: &mut out,
                taps: t.as_deref_mut(),
            },
            taps,
            &mut mem,
            &|| 0,
            &mut |_| {},
        )?;
        Ok((out, t))
    })();
    if let Err(e) = &res {
        Channel::new(PeerPort(&line)).send_error(&format!("P1 (device thread): {e}"));
    }
    res
}

type DeviceResult = secformer_core::Result<(Vec<u64>, Option<Vec<u64>>)>;

fn run_in_threads(taps: bool, corrupt: Option<Corruption>) -> (HostOutcome, DeviceResult) {
    let (host, dev) = UnixStream::pair().unwrap();
    dev.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let layer = firmware::demo_layer(&DIMS, 1);
    let params = firmware::param_words(&DIMS, &layer).unwrap();
    std::thread::scope(|sc| {
        let d = sc.spawn(move || {
            let r = device(SockLink(dev.try_clone().unwrap()), taps);
            // The device "exits": its end of the line closes.
            let _ = dev.shutdown(std::net::Shutdown::Both);
            r
        });
        let r = host.try_clone().unwrap();
        let out = firmware::serve_line(
            Box::new(r),
            Box::new(host),
            &params,
            taps,
            corrupt,
            Duration::from_secs(30),
        );
        (out, d.join().unwrap())
    })
}

fn decode(w: &[u64]) -> Vec<f64> {
    let e = Encoding::default();
    w.iter().map(|x| e.decode(*x)).collect()
}

fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn static_buffers_cover_the_block() {
    let need = block::default_mem_words();
    assert!(
        block::ARENA_WORDS >= need,
        "ARENA_WORDS {} < {need} words the block needs",
        block::ARENA_WORDS
    );
    assert!(
        block::mem_words(&DIMS, DEFAULT_FRAC_BITS, false) <= block::ARENA_WORDS,
        "the untapped block does not fit"
    );
    // The stash must hold the largest single P0 message (a weight's opened F, or an E).
    let largest = [(DIMS.hidden, 3 * DIMS.hidden), (DIMS.hidden, DIMS.inter)]
        .iter()
        .map(|(k, n)| 8 * k * n + 10)
        .max()
        .unwrap();
    assert!(block::STASH_BYTES >= largest);
}

#[test]
fn device_thread_over_one_line_matches_f64_with_and_without_taps() {
    let layer = firmware::demo_layer(&DIMS, 1);
    let x = firmware::input_values();
    let reference = firmware::reference(&DIMS, &layer, &x);
    for taps in [false, true] {
        let (host, dev) = run_in_threads(taps, None);
        let (out, t) = dev.unwrap_or_else(|e| panic!("device: {e}"));
        if let Err(e) = &host.p0 {
            panic!("P0: {e:#}");
        }
        if let Err(e) = &host.dealer {
            panic!("dealer: {e:#}");
        }
        assert!(host.relay_error.is_none(), "{:?}", host.relay_error);
        let y = decode(&out);
        let err = max_abs(&y, &reference);
        eprintln!(
            "device thread, taps={taps}: max |y - f64| = {err:.2e}; line {} B to / {} B from \
             the device; {} P0 frames held; {} dealer requests, largest answer {} B",
            host.relay.to_firmware,
            host.relay.from_firmware,
            host.relay.held,
            host.relay.requests,
            host.relay.max_answer
        );
        assert!(err <= TOL_OUTPUT, "output error {err}");
        assert!(host.relay.max_answer as usize <= block::PREFETCH_BYTES);
        if let Some(t) = t {
            let te = firmware::tap_errors(&DIMS, &layer, &decode(&t), &y).unwrap();
            eprintln!("  taps: {te:?}");
            assert!(te.softmax <= TOL_SOFTMAX, "{te:?}");
            assert!(te.layernorm1 <= TOL_LAYERNORM, "{te:?}");
            assert!(te.gelu <= TOL_GELU, "{te:?}");
            assert!(te.layernorm2 <= TOL_LAYERNORM, "{te:?}");
        }
    }
}

#[test]
fn device_thread_corrupted_line_fails_on_both_sides() {
    for direction in [Direction::ToFirmware, Direction::FromFirmware] {
        let c = Corruption {
            direction,
            frame: 3,
            fault: Fault::Flip,
        };
        let (host, dev) = run_in_threads(false, Some(c));
        let de = dev.expect_err("the device must fail").to_string();
        let pe = format!("{:#}", host.p0.expect_err("P0 must fail"));
        eprintln!("{direction:?}: device: {de}\n  P0: {pe}");
        // The receiver of the corrupted frame detects it; the other side learns why.
        assert!(de.contains("checksum"), "device: {de}");
        assert!(pe.contains("checksum"), "P0: {pe}");
    }
}

// ---------------------------------------------------------------------------------------
// QEMU

/// One QEMU at a time (the machine may have two cores; timings stay meaningful).
static QEMU: Mutex<()> = Mutex::new(());

fn elf() -> PathBuf {
    static ELF: OnceLock<PathBuf> = OnceLock::new();
    ELF.get_or_init(|| match std::env::var_os("SECFORMER_FIRMWARE_ELF") {
        Some(p) => PathBuf::from(p),
        None => firmware::build_firmware().expect("building the firmware"),
    })
    .clone()
}

/// Options for a QEMU run, or `None` (skip) when QEMU is missing and not required.
fn qemu_opts(link: FirmwareLink) -> Option<FirmwarePeerOptions> {
    let qemu = PathBuf::from(
        std::env::var_os("SECFORMER_QEMU").unwrap_or_else(|| "qemu-system-arm".into()),
    );
    if !firmware::qemu_available(&qemu) {
        if std::env::var_os("SECFORMER_REQUIRE_QEMU").is_some() {
            panic!(
                "SECFORMER_REQUIRE_QEMU is set but {} is not installed \
                 (apt-get install -y qemu-system-arm)",
                qemu.display()
            );
        }
        eprintln!(
            "\n**********************************************************************\n\
             SKIPPED: {} not found; the firmware QEMU tests did not run.\n\
             Install it (apt-get install -y qemu-system-arm) or set SECFORMER_REQUIRE_QEMU=1\n\
             to make this a failure.\n\
             **********************************************************************\n",
            qemu.display()
        );
        return None;
    }
    Some(FirmwarePeerOptions {
        link,
        qemu,
        elf: elf(),
        timeout: Duration::from_secs(240),
        read_timeout: Duration::from_secs(30),
        firmware_timeout: None,
        taps: true,
        seed: 1,
        corrupt: None,
        echo: std::env::var_os("SECFORMER_FW_ECHO").is_some(),
    })
}

fn print_report(r: &FirmwareReport) {
    eprintln!("{}", r.summary());
}

fn check_ok(r: &FirmwareReport) {
    print_report(r);
    assert!(
        r.max_abs_error <= TOL_OUTPUT,
        "output error {}",
        r.max_abs_error
    );
    let te = r.tap_errors.expect("taps were requested");
    assert!(te.softmax <= TOL_SOFTMAX, "{te:?}");
    assert!(te.layernorm1 <= TOL_LAYERNORM, "{te:?}");
    assert!(te.gelu <= TOL_GELU, "{te:?}");
    assert!(te.layernorm2 <= TOL_LAYERNORM, "{te:?}");
}

fn run_ok(link: FirmwareLink) {
    let Some(opts) = qemu_opts(link) else { return };
    let _one = QEMU.lock().unwrap_or_else(|p| p.into_inner());
    let r = firmware::run_firmware_peer(&opts).unwrap_or_else(|e| panic!("{e:#}"));
    check_ok(&r);
}

fn run_corrupt(link: FirmwareLink, direction: Direction) {
    let Some(mut opts) = qemu_opts(link) else {
        return;
    };
    opts.taps = false;
    opts.corrupt = Some(Corruption {
        direction,
        frame: 5,
        fault: Fault::Flip,
    });
    let _one = QEMU.lock().unwrap_or_else(|p| p.into_inner());
    let t = std::time::Instant::now();
    let e = firmware::run_firmware_peer(&opts).expect_err("a corrupted line must fail the run");
    let f = e
        .downcast_ref::<FirmwareFailure>()
        .unwrap_or_else(|| panic!("not a FirmwareFailure: {e:#}"));
    eprintln!(
        "[{} corrupt {direction:?}] after {:.2} s: {f}",
        link.name(),
        t.elapsed().as_secs_f64()
    );
    assert!(
        !f.timed_out,
        "the run hit the deadline instead of failing: {f}"
    );
    assert_eq!(f.qemu_exit, Some(1), "{f}");
    let fw = f.firmware.as_deref().unwrap_or_default();
    let p0 = f.p0.as_deref().unwrap_or_default();
    assert!(
        fw.starts_with("error:") && fw.contains("checksum"),
        "firmware: {fw}"
    );
    assert!(p0.contains("checksum"), "P0: {p0}");
}

#[test]
fn qemu_semihosting_block_matches_f64() {
    run_ok(FirmwareLink::Semihosting);
}

#[test]
fn qemu_uart_block_matches_f64() {
    run_ok(FirmwareLink::UartTcp { port: 0 });
}

#[test]
fn qemu_semihosting_corrupted_byte_fails_cleanly() {
    run_corrupt(FirmwareLink::Semihosting, Direction::ToFirmware);
}

#[test]
fn qemu_uart_corrupted_byte_fails_cleanly() {
    run_corrupt(FirmwareLink::UartTcp { port: 0 }, Direction::FromFirmware);
}

#[test]
fn qemu_uart_lost_byte_ends_in_a_timeout_not_a_hang() {
    // The device's 4th peer frame (the last weight's opened mask) loses its last byte: P0
    // waits for that byte, while the device goes on to its next dealer request, which D
    // answers only once P0 has sent the same request. Nothing moves until a read times
    // out: the firmware's UART read (2 s here, before P0's 10 s), which reports to P0.
    let Some(mut opts) = qemu_opts(FirmwareLink::UartTcp { port: 0 }) else {
        return;
    };
    opts.taps = false;
    opts.read_timeout = Duration::from_secs(10);
    opts.firmware_timeout = Some(Duration::from_secs(2));
    opts.corrupt = Some(Corruption {
        direction: Direction::FromFirmware,
        frame: 3,
        fault: Fault::Drop,
    });
    let _one = QEMU.lock().unwrap_or_else(|p| p.into_inner());
    let t = std::time::Instant::now();
    let e = firmware::run_firmware_peer(&opts).expect_err("a lost byte must fail the run");
    let secs = t.elapsed().as_secs_f64();
    let f = e
        .downcast_ref::<FirmwareFailure>()
        .unwrap_or_else(|| panic!("not a FirmwareFailure: {e:#}"));
    eprintln!("[uart lost byte] after {secs:.2} s: {f}");
    assert!(
        !f.timed_out,
        "the run hit the deadline instead of failing: {f}"
    );
    assert_eq!(f.qemu_exit, Some(1), "{f}");
    let fw = f.firmware.as_deref().unwrap_or_default();
    let p0 = f.p0.as_deref().unwrap_or_default();
    assert!(
        fw.starts_with("error:") && fw.contains("timed out"),
        "firmware: {fw}"
    );
    // P0 learns it: the firmware's error frame completes the frame P0 was reading, which
    // then fails its checksum (a byte was lost), or P0 reads the report itself.
    assert!(!p0.is_empty(), "P0 must fail too: {f}");
    assert!(secs < 40.0, "took {secs} s");
}

#[test]
fn qemu_boot_banner_panic_and_hardfault_exit_through_semihosting() {
    // Without a handler that exits through semihosting, a fault would leave QEMU spinning
    // until the deadline; the test's timeout (20 s) would then fail it.
    let Some(opts) = qemu_opts(FirmwareLink::Semihosting) else {
        return;
    };
    let _one = QEMU.lock().unwrap_or_else(|p| p.into_inner());
    let run = |args: &[&str]| {
        let t = std::time::Instant::now();
        let (code, lines) =
            firmware::run_firmware_alone(&opts.qemu, &opts.elf, args, Duration::from_secs(20))
                .unwrap();
        eprintln!(
            "{args:?}: exit {code:?} after {:.2} s: {lines:?}",
            t.elapsed().as_secs_f64()
        );
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{args:?} took too long"
        );
        (code, lines)
    };
    let (code, lines) = run(&[]);
    assert_eq!(code, Some(0));
    assert!(
        lines.iter().any(|l| l.contains("no transport given")),
        "{lines:?}"
    );
    let (code, lines) = run(&["crash=panic"]);
    assert_eq!(code, Some(1));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("panic: crash=panic requested at")),
        "{lines:?}"
    );
    let (code, lines) = run(&["crash=hardfault"]);
    assert_eq!(code, Some(1));
    assert!(
        lines.iter().any(|l| l.starts_with("hardfault pc=")),
        "{lines:?}"
    );
    let (code, lines) = run(&["bogus"]);
    assert_eq!(code, Some(1));
    assert!(
        lines.iter().any(|l| l.contains("unknown argument")),
        "{lines:?}"
    );
}
