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
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use secformer_core::dealer::server::SessionSummary;
use secformer_core::dealer::DealerHello;
use secformer_core::fxp::{Encoding, DEFAULT_FRAC_BITS};
use secformer_core::noise::StaticKey;
use secformer_core::transport::mem::channel_pair;
use secformer_core::transport::{Channel, FrameKind, Transport};
use secformer_host::firmware::block::{self, Role, DIMS};
use secformer_host::firmware::line::{Line, PeerPort};
use secformer_host::firmware::secure::{self, DeviceKeys, SealBuffers};
use secformer_host::firmware::{
    self, Corruption, Direction, Fault, FirmwareFailure, FirmwareLink, FirmwarePeerOptions,
    FirmwareReport, HostLinks, HostOutcome,
};
use secformer_host::tcp::TcpLink;

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

/// What the device thread returns: its output, taps, and the seed D gave it (which no
/// capture of the line may contain).
type DeviceResult = secformer_core::Result<(Vec<u64>, Option<Vec<u64>>, [u8; 32])>;

fn entropy() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

/// What the firmware's `session` does, on the host: P1 over one line, sealed links.
fn device(link: SockLink, keys: &DeviceKeys, taps: bool) -> DeviceResult {
    let mut stash = vec![0u8; block::STASH_BYTES];
    let mut prefetch = vec![0u8; block::PREFETCH_BYTES];
    let (mut a, mut b, mut c, mut d) = (
        vec![0u8; secure::DEALER_TX_BYTES],
        vec![0u8; secure::DEALER_RX_BYTES],
        vec![0u8; secure::PEER_BYTES],
        vec![0u8; secure::PEER_BYTES],
    );
    let line = RefCell::new(Line::new(link, &mut stash));
    let res = (|| {
        let bufs = SealBuffers {
            dealer_tx: &mut a,
            dealer_rx: &mut b,
            peer_tx: &mut c,
            peer_rx: &mut d,
        };
        let mut s = secure::connect(&line, keys, [entropy(), entropy()], bufs, &mut prefetch)?;
        let seed = s.dealer_mut().seed().0;
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
        Ok((out, t, seed))
    })();
    if let Err(e) = &res {
        Channel::new(PeerPort(&line)).send_error(&format!("P1 (device thread): {e}"));
    }
    res
}

/// Everything that crossed the line, both directions (what the relay sees).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

struct Tee<S> {
    inner: S,
    capture: Capture,
}

impl<S: std::io::Read> std::io::Read for Tee<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.capture.0.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl<S: std::io::Write> std::io::Write for Tee<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.capture.0.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct Threads {
    host: HostOutcome,
    device: DeviceResult,
    dealer: anyhow::Result<SessionSummary>,
    /// What the relay read from the device, and what it wrote to it.
    capture: [Capture; 2],
}

/// The device, P0 with its relay, and D, each in its own thread; D's links are P0's
/// in-memory link and the relay's TCP connection, as with the dealer process.
fn run_in_threads(taps: bool, corrupt: Option<Corruption>, trust_device: bool) -> Threads {
    let (host, dev) = UnixStream::pair().unwrap();
    dev.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let layer = firmware::demo_layer(&DIMS, 1);
    let params = firmware::param_words(&DIMS, &layer).unwrap();
    let (dealer_key, p0_key, device_key) = (entropy(), entropy(), entropy());
    let keys = DeviceKeys {
        device: StaticKey::from_secret(device_key),
        dealer: StaticKey::from_secret(dealer_key).public(),
        p0: StaticKey::from_secret(p0_key).public(),
    };
    let device_pub = keys.device.public();
    let devices = if trust_device {
        vec![device_pub]
    } else {
        vec![entropy()]
    };
    let (d0, p0d) = channel_pair();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (d1, _) = listener.accept().unwrap();
    let capture = [Capture::default(), Capture::default()];
    std::thread::scope(|sc| {
        let d = sc.spawn(move || {
            let r = device(SockLink(dev.try_clone().unwrap()), &keys, taps);
            // The device "exits": its end of the line closes.
            let _ = dev.shutdown(std::net::Shutdown::Both);
            r
        });
        let dealer_devices = devices.clone();
        let dl = sc.spawn(move || {
            let mut d0 = d0;
            let t1 = Channel::full_duplex(TcpLink::new(d1, Duration::from_secs(30)).unwrap());
            let key = StaticKey::from_secret(dealer_key);
            firmware::dealer::serve_session(&mut d0, t1, &key, &dealer_devices)
        });
        let r = Tee {
            inner: host.try_clone().unwrap(),
            capture: capture[0].clone(),
        };
        let w = Tee {
            inner: host,
            capture: capture[1].clone(),
        };
        let links = HostLinks {
            p0_key: StaticKey::from_secret(p0_key),
            devices,
            to_dealer: p0d,
            relay_to_dealer: relay,
        };
        let out = firmware::serve_line(
            Box::new(r),
            Box::new(w),
            &params,
            taps,
            corrupt,
            Duration::from_secs(30),
            links,
        );
        Threads {
            host: out,
            device: d.join().unwrap(),
            dealer: dl.join().unwrap(),
            capture,
        }
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
        let Threads {
            host,
            device,
            dealer,
            capture,
        } = run_in_threads(taps, None, true);
        let (out, t, seed) = device.unwrap_or_else(|e| panic!("device: {e}"));
        if let Err(e) = &host.p0 {
            panic!("P0: {e:#}");
        }
        if let Err(e) = &dealer {
            panic!("dealer: {e:#}");
        }
        for c in &capture {
            let seen = c.0.lock().unwrap().clone();
            assert_relay_learns_nothing(&seen, &seed);
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
        let Threads { host, device, .. } = run_in_threads(false, Some(c), true);
        let de = device.expect_err("the device must fail").to_string();
        let pe = format!("{:#}", host.p0.expect_err("P0 must fail"));
        eprintln!("{direction:?}: device: {de}\n  P0: {pe}");
        // The receiver of the corrupted frame detects it; the other side learns why.
        assert!(de.contains("checksum"), "device: {de}");
        assert!(pe.contains("checksum"), "P0: {pe}");
    }
}

/// What the relay sees (every byte of the line, both ways) holds neither P1's seed nor
/// anything of it, and D's hello, the frame that carried that seed in the clear before the
/// links were sealed, no longer decodes to it.
fn assert_relay_learns_nothing(seen: &[u8], seed: &[u8; 32]) {
    assert!(
        seen.len() > 10_000,
        "the capture is too small: {} B",
        seen.len()
    );
    for w in seed.windows(8) {
        assert!(
            !seen.windows(8).any(|s| s == w),
            "8 bytes of P1's seed crossed the relay in the clear"
        );
    }
    let mut at = 0;
    let mut hellos = 0;
    while at + 10 <= seen.len() {
        let len = u32::from_le_bytes(seen[at + 2..at + 6].try_into().unwrap()) as usize;
        let payload = &seen[at + 6..(at + 6 + len).min(seen.len())];
        assert_eq!(seen[at], 0x5F, "frame {at} of the capture");
        if seen[at + 1] == FrameKind::Hello as u8 {
            hellos += 1;
            if let Ok(h) = postcard::from_bytes::<DealerHello>(payload) {
                assert_ne!(&h.seed.0, seed, "D's hello readable by the relay");
            }
        }
        at += 6 + len + 4;
    }
    assert!(
        hellos >= 1,
        "expected the hellos on the line, found {hellos}"
    );
}

#[test]
fn device_thread_with_an_untrusted_key_is_refused_before_any_seed_is_sent() {
    let Threads {
        host,
        device,
        dealer,
        capture,
    } = run_in_threads(false, None, false);
    let de = device.expect_err("the device must fail").to_string();
    let dl = format!("{:#}", dealer.expect_err("D must refuse the device"));
    eprintln!(
        "device: {de}\n  dealer: {dl}\n  P0: {:?}",
        host.p0.as_ref().err()
    );
    assert!(dl.contains("not trusted"), "dealer: {dl}");
    // D answered nothing but an error: the line carries no D hello.
    let seen = capture[1].0.lock().unwrap().clone();
    let from_dealer_hellos = seen
        .windows(2)
        .filter(|w| w[0] == 0x5F && w[1] == FrameKind::Hello as u8)
        .count();
    assert_eq!(from_dealer_hellos, 0, "D sent the device a hello");
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
        timeout: Duration::from_secs(480),
        // The UART moves about 10 KB/s under QEMU, and less with both cores busy: the
        // largest dealer answer (about 262 KB) then keeps the device silent for over 30 s,
        // which P0, D and the relay must wait out.
        read_timeout: Duration::from_secs(120),
        firmware_timeout: None,
        taps: true,
        seed: 1,
        corrupt: None,
        echo: std::env::var_os("SECFORMER_FW_ECHO").is_some(),
        secformer_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_secformer"))),
        keys_dir: None,
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
