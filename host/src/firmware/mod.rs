//! The host side of the firmware example (`secformer firmware-peer`): QEMU runs the
//! firmware in `firmware-example/` as P1 (the data owner) on an emulated Cortex-M4F; this
//! process is P0 (the model owner, with the weights) and relays D's traffic to and from the
//! device over the device's one serial line. D runs as its own process
//! ([`dealer`], `secformer firmware-dealer`, started by [`provision::DealerProcess`]); the
//! device's links to D and to P0 are sealed ([`secure`]), the one to D end to end, so this
//! process relays only ciphertext (and requests, which are public shapes).
//!
//! # The line and the relay
//!
//! The line carries the core's frames (`[0x5F][kind][len u32 LE] payload [crc32 u32 LE]`,
//! see [`secformer_core::transport`]; payloads sealed) for two streams: P1 <-> P0 (peer)
//! and P1 <-> D (dealer). It is either UART0 of the board, which QEMU connects to a TCP
//! socket (`-serial tcp:127.0.0.1:PORT,nodelay=on`; this process listens), or
//! semihosting stdio (QEMU's stdin/stdout pipes; about 100 times faster than the
//! emulated UART).
//!
//! From the device, frames are dispatched by kind: `Hello` (P1 sends exactly one, its
//! `PartyHello` to D) and `DealerRequest` go to D; `Ring`, `Bits`, `Control`, `Bye` go to
//! P0; `Error` goes to both; `DealerData`/`Ack` from the device are a protocol error.
//!
//! To the device, the relay keeps the order predictable (the device reads its dealer data
//! right after each request, see [`secformer_core::dealer::prefetch`]):
//!
//! 1. P0's frames are held until D's `Hello` (the answer to P1's hello) has been written
//!    to the line: P1 runs the dealer handshake first, then the peer handshake.
//! 2. When a P1 `DealerRequest` arrives, the relay computes how many `DealerData` frames
//!    answer it (one per correction slot of its items), and holds every P0 frame that
//!    arrives from then on until that many D frames have been written (an `Error` frame
//!    from D releases the hold).
//! 3. D's frames are written as soon as they arrive, and so are `Error` frames from P0
//!    (an error is never ambiguous, and the answer it would wait for may never come).
//!
//! P0 frames written before a request reached the relay may precede D's answer on the
//! line; the device keeps those in its stash (`firmware-example/src/line.rs`).
//!
//! # Faults and timeouts
//!
//! A corrupted frame fails its CRC on the receiving side; that side reports an `Error`
//! frame, which the relay forwards, so both sides end with the reason: the firmware prints
//! `secformer-fw: error: ...` and QEMU exits with status 1; [`run_firmware_peer`] returns
//! a [`FirmwareFailure`] naming both. Every host read has a timeout, the firmware's UART
//! reads time out too, a semihosting read returns end-of-stream when this process closes
//! the pipe, and QEMU runs under `timeout(1)` with the run's deadline.

// Shared with the firmware, whose MSRV (1.85) predates `is_multiple_of`.
#[allow(clippy::manual_is_multiple_of)]
#[path = "../../../firmware-example/src/block.rs"]
pub mod block;
#[path = "../../../firmware-example/src/line.rs"]
pub mod line;
#[path = "../../../firmware-example/src/secure.rs"]
pub mod secure;

pub mod dealer;
pub mod provision;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use secformer_core::dealer::{layout, DealerClient, Request};
use secformer_core::fxp::Encoding;
use secformer_core::noise::{Sealed, StaticKey, KEY_LEN};
use secformer_core::party::PartyId;
use secformer_core::prg::{Prg, Seed};
use secformer_core::session::Session;
use secformer_core::transport::{Channel, FrameKind, Stats, Transport, MAX_FRAME_LEN};
use serde::Serialize;

use crate::kernel::HostKernel;
use crate::model::{plain, EncoderLayer, LayerNorm, Linear, Matrix, SoftmaxKind};
use crate::net::os_seed;

use block::{Dims, Params, Role, Taps, DIMS};

const MAGIC: u8 = 0x5F;
const HEADER: usize = 6;
const TRAILER: usize = 4;
/// Largest frame the relay accepts from the device.
const MAX_LINE_FRAME: usize = 64 << 20;
/// Bytes of a device error message forwarded to D: D reports
/// `dealer: the other side reported an error: <message>` (42 bytes of prefix) in an
/// error frame of at most 96 bytes.
const DEALER_RELAYED_ERROR: usize = 54;
/// The prefix of the firmware's report lines on stderr.
pub const REPORT_PREFIX: &str = "secformer-fw: ";

// ---------------------------------------------------------------------------------------
// Options and report

/// How the device's serial line reaches this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirmwareLink {
    /// UART0, which QEMU connects to `127.0.0.1:port` (0: any free port).
    UartTcp {
        /// TCP port this process listens on.
        port: u16,
    },
    /// Semihosting stdin/stdout: QEMU's pipes.
    Semihosting,
}

impl FirmwareLink {
    /// The name the firmware's command line and the report use.
    pub fn name(&self) -> &'static str {
        match self {
            FirmwareLink::UartTcp { .. } => "uart",
            FirmwareLink::Semihosting => "semihosting",
        }
    }
}

impl FromStr for FirmwareLink {
    type Err = anyhow::Error;
    /// `uart`, `uart:PORT` or `semihosting`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "uart" | "uart-tcp" => Ok(FirmwareLink::UartTcp { port: 0 }),
            "semihosting" | "semi" => Ok(FirmwareLink::Semihosting),
            _ => match s
                .strip_prefix("uart:")
                .or_else(|| s.strip_prefix("uart-tcp:"))
            {
                Some(p) => Ok(FirmwareLink::UartTcp {
                    port: p.parse().with_context(|| format!("bad port in {s:?}"))?,
                }),
                None => bail!("unknown transport {s:?} (use uart, uart:PORT or semihosting)"),
            },
        }
    }
}

/// Which direction of the line a deliberate corruption hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Direction {
    /// A frame from P0 to the device.
    ToFirmware,
    /// A frame from the device to P0.
    FromFirmware,
}

/// What happens to the corrupted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Fault {
    /// One payload byte is flipped (the receiver's CRC check fails).
    Flip,
    /// The frame's last byte is lost (the receiver waits for it: its read times out, or
    /// the next bytes fail the CRC).
    Drop,
}

/// Corrupt the `frame`-th peer data frame (`Ring`/`Bits`, counted from 0) in `direction`,
/// as line noise would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Corruption {
    /// Which direction.
    pub direction: Direction,
    /// Which peer data frame in that direction.
    pub frame: usize,
    /// Flip a byte or lose one.
    pub fault: Fault,
}

impl FromStr for Corruption {
    type Err = anyhow::Error;
    /// `to-firmware:N` or `from-firmware:N`, optionally followed by `:flip` (the default)
    /// or `:drop`.
    fn from_str(s: &str) -> Result<Self> {
        let mut parts = s.split(':');
        let usage = || anyhow!("use to-firmware:N[:drop] or from-firmware:N[:drop], not {s:?}");
        let direction = match parts.next() {
            Some("to-firmware") => Direction::ToFirmware,
            Some("from-firmware") => Direction::FromFirmware,
            _ => return Err(usage()),
        };
        let frame = parts
            .next()
            .ok_or_else(usage)?
            .parse()
            .with_context(|| format!("bad frame number in {s:?}"))?;
        let fault = match parts.next() {
            None | Some("flip") => Fault::Flip,
            Some("drop") => Fault::Drop,
            Some(_) => return Err(usage()),
        };
        if parts.next().is_some() {
            return Err(usage());
        }
        Ok(Corruption {
            direction,
            frame,
            fault,
        })
    }
}

/// What [`run_firmware_peer`] runs.
#[derive(Debug, Clone)]
pub struct FirmwarePeerOptions {
    /// The serial line.
    pub link: FirmwareLink,
    /// The QEMU binary (`qemu-system-arm`).
    pub qemu: PathBuf,
    /// The firmware ELF.
    pub elf: PathBuf,
    /// Deadline of the whole run: QEMU runs under `timeout` with it.
    pub timeout: Duration,
    /// How long a host read waits (P0's and D's links, the UART socket).
    pub read_timeout: Duration,
    /// How long the firmware's UART reads and writes wait (`None`: `read_timeout`).
    pub firmware_timeout: Option<Duration>,
    /// Also reveal the nonlinear steps' inputs and outputs to P1 and check each against
    /// f64 (a debugging aid: leaks intermediate values to the data owner).
    pub taps: bool,
    /// Seed of the random weights (the plaintext reference uses the same).
    pub seed: u64,
    /// Corrupt one byte on the line (fault test).
    pub corrupt: Option<Corruption>,
    /// Echo the firmware's report lines (and QEMU's messages) to stderr as they arrive.
    pub echo: bool,
    /// The `secformer` binary that runs `keygen` and the dealer process (`None`: this
    /// process's own executable).
    pub secformer_exe: Option<PathBuf>,
    /// The device's key directory (set by the run itself).
    pub keys_dir: Option<PathBuf>,
}

impl Default for FirmwarePeerOptions {
    fn default() -> Self {
        FirmwarePeerOptions {
            link: FirmwareLink::Semihosting,
            qemu: PathBuf::from("qemu-system-arm"),
            elf: default_elf(),
            timeout: Duration::from_secs(600),
            read_timeout: Duration::from_secs(120),
            firmware_timeout: None,
            taps: false,
            seed: 1,
            corrupt: None,
            echo: false,
            secformer_exe: None,
            keys_dir: None,
        }
    }
}

/// The flags of `secformer firmware-peer`, for the CLI's clap parser (flatten it into the
/// subcommand and call [`FirmwarePeerArgs::options`]).
#[derive(Debug, Clone, clap::Args)]
pub struct FirmwarePeerArgs {
    /// The serial line: `uart` (UART0, which QEMU connects to a TCP socket on
    /// 127.0.0.1), `uart:PORT`, or `semihosting` (QEMU's stdin/stdout, ~100x faster).
    #[arg(long, default_value = "semihosting")]
    pub transport: FirmwareLink,
    /// The QEMU binary.
    #[arg(long, default_value = "qemu-system-arm")]
    pub qemu: PathBuf,
    /// The firmware ELF [default: firmware-example/target/thumbv7em-none-eabihf/release/
    /// secformer-firmware of this checkout].
    #[arg(long)]
    pub elf: Option<PathBuf>,
    /// Build the firmware first (cargo build --release in firmware-example/).
    #[arg(long)]
    pub build: bool,
    /// Deadline of the whole run in seconds (QEMU runs under timeout(1) with it).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Seconds a host read waits for the device. Over the UART (about 10 KB/s under QEMU)
    /// the device is silent while it receives a large dealer answer (up to 288 KiB).
    #[arg(long, default_value_t = 120)]
    pub read_timeout: u64,
    /// Seconds the firmware's UART reads wait [default: --read-timeout].
    #[arg(long)]
    pub firmware_timeout: Option<u64>,
    /// REVEALS intermediate values to P1: opens every nonlinear step's input and output
    /// to the data owner and checks each against f64. A debugging aid that breaks the
    /// model owner's privacy; off by default.
    #[arg(long = "reveal-taps")]
    pub taps: bool,
    /// Seed of P0's random weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Corrupt the line (fault test): `to-firmware:N` or `from-firmware:N` flips a byte
    /// of the N-th peer data frame in that direction; append `:drop` to lose its last byte.
    #[arg(long)]
    pub corrupt: Option<Corruption>,
    /// Echo the firmware's report lines as they arrive.
    #[arg(long)]
    pub echo: bool,
}

impl FirmwarePeerArgs {
    /// The options these flags describe (builds the firmware first with `--build`).
    pub fn options(&self) -> Result<FirmwarePeerOptions> {
        let elf = if self.build {
            build_firmware()?
        } else {
            self.elf.clone().unwrap_or_else(default_elf)
        };
        Ok(FirmwarePeerOptions {
            link: self.transport,
            qemu: self.qemu.clone(),
            elf,
            timeout: Duration::from_secs(self.timeout),
            read_timeout: Duration::from_secs(self.read_timeout),
            firmware_timeout: self.firmware_timeout.map(Duration::from_secs),
            taps: self.taps,
            seed: self.seed,
            corrupt: self.corrupt,
            echo: self.echo,
            secformer_exe: None,
            keys_dir: None,
        })
    }
}

/// Errors of the taps: max |secure - f64| of each nonlinear step on the values it saw.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TapErrors {
    /// 2Quad softmax (all heads).
    pub softmax: f64,
    /// LayerNorm after attention.
    pub layernorm1: f64,
    /// GeLU (against the exact erf GeLU).
    pub gelu: f64,
    /// LayerNorm after the FFN (the block's output).
    pub layernorm2: f64,
}

/// What a successful run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FirmwareReport {
    /// `uart` or `semihosting`.
    pub link: String,
    /// The block: `seq x hidden, heads, FFN`.
    pub dims: String,
    /// Whether the taps were revealed and checked.
    pub taps: bool,
    /// Max |firmware output - f64 block| over the `seq x hidden` outputs.
    pub max_abs_error: f64,
    /// Mean |firmware output - f64 block|.
    pub mean_abs_error: f64,
    /// Per-step errors (with `taps`).
    pub tap_errors: Option<TapErrors>,
    /// The firmware's output (decoded).
    pub output: Vec<f64>,
    /// The f64 reference output.
    pub reference: Vec<f64>,
    /// Seconds from starting QEMU to its exit.
    pub qemu_wall_seconds: f64,
    /// Seconds P0 spent from its dealer handshake to the end of the dealer stream.
    pub p0_seconds: f64,
    /// Bytes written to the line (to the device), framing included.
    pub line_bytes_to_firmware: u64,
    /// Bytes read from the line (from the device).
    pub line_bytes_from_firmware: u64,
    /// Frames the relay held back behind a dealer answer.
    pub frames_held: u64,
    /// Payload bytes of the largest dealer answer (the device's prefetch need).
    pub max_dealer_answer: u64,
    /// P0's peer traffic (wire bytes sent, received; rounds).
    pub p0_bytes_sent: u64,
    /// P0's received wire bytes.
    pub p0_bytes_received: u64,
    /// Rounds P0 waited on.
    pub p0_rounds: u64,
    /// Dealer requests served.
    pub dealer_requests: u32,
    /// Wire bytes D sent P1 (the encrypted corrections).
    pub dealer_bytes_to_p1: u64,
    /// The firmware's `stats` and `profile` lines (`key=value`: bytes, rounds, stash
    /// and stack use, phase and component milliseconds on the host clock).
    pub firmware_stats: BTreeMap<String, f64>,
}

impl FirmwareReport {
    /// A human-readable summary (several lines).
    pub fn summary(&self) -> String {
        let st = |k: &str| self.firmware_stats.get(k).copied().unwrap_or(f64::NAN);
        let mut s = format!(
            "firmware P1 over {} ({}): max |y - f64| = {:.2e}, mean {:.2e}\n",
            self.link, self.dims, self.max_abs_error, self.mean_abs_error
        );
        if let Some(t) = &self.tap_errors {
            s += &format!(
                "  per step (max |secure - f64|): softmax {:.2e}, LayerNorm1 {:.2e}, GeLU {:.2e}, \
                 LayerNorm2 {:.2e}\n",
                t.softmax, t.layernorm1, t.gelu, t.layernorm2
            );
        }
        s += &format!(
            "  QEMU wall time {:.2} s; on the device (host clock): setup {:.0} ms, prepare {:.0} \
             ms, online {:.0} ms (linear {:.0}, softmax {:.0}, GeLU {:.0}, LayerNorm {:.0})\n",
            self.qemu_wall_seconds,
            st("ms_setup"),
            st("ms_prepare"),
            st("ms_online"),
            st("linear_ms"),
            st("softmax_ms"),
            st("gelu_ms"),
            st("layernorm_ms"),
        );
        s += &format!(
            "  P1<->P0: {} B sent, {} B received, {} rounds; D->P1: {} B in {} requests \
             (largest {} B); line: {} B to / {} B from the device\n",
            st("peer_sent"),
            st("peer_received"),
            st("peer_rounds"),
            self.dealer_bytes_to_p1,
            self.dealer_requests,
            self.max_dealer_answer,
            self.line_bytes_to_firmware,
            self.line_bytes_from_firmware,
        );
        s += &format!(
            "  device memory: stack peak {} B, stash peak {} B",
            st("stack_peak"),
            st("stash_peak")
        );
        s
    }
}

/// A failed run: what each side said.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FirmwareFailure {
    /// QEMU's exit status (`None` if it did not exit by itself).
    pub qemu_exit: Option<i32>,
    /// QEMU was stopped by the deadline.
    pub timed_out: bool,
    /// The firmware's `error:`/`panic:`/`hardfault` line.
    pub firmware: Option<String>,
    /// P0's error.
    pub p0: Option<String>,
    /// D's error.
    pub dealer: Option<String>,
    /// The relay's error (line I/O, malformed frames from the device).
    pub relay: Option<String>,
    /// A result that came back but is out of tolerance.
    pub check: Option<String>,
    /// The last lines QEMU wrote to stderr.
    pub stderr_tail: Vec<String>,
}

impl fmt::Display for FirmwareFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "firmware run failed")?;
        if self.timed_out {
            write!(f, "; QEMU was stopped by the deadline")?;
        }
        if let Some(c) = self.qemu_exit {
            write!(f, "; QEMU exited with status {c}")?;
        }
        if let Some(m) = &self.firmware {
            write!(f, "; firmware (P1): {m}")?;
        }
        if let Some(m) = &self.p0 {
            write!(f, "; host P0: {m}")?;
        }
        if let Some(m) = &self.dealer {
            write!(f, "; dealer: {m}")?;
        }
        if let Some(m) = &self.relay {
            write!(f, "; relay: {m}")?;
        }
        if let Some(m) = &self.check {
            write!(f, "; check: {m}")?;
        }
        if self.firmware.is_none() && !self.stderr_tail.is_empty() {
            write!(f, "; QEMU stderr: {}", self.stderr_tail.join(" | "))?;
        }
        Ok(())
    }
}

impl std::error::Error for FirmwareFailure {}

/// The firmware-example directory of this checkout.
pub fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("firmware-example")
}

/// Where `cargo build --release` in `firmware-example/` puts the ELF.
pub fn default_elf() -> PathBuf {
    firmware_dir().join("target/thumbv7em-none-eabihf/release/secformer-firmware")
}

/// Builds the firmware (`cargo build --release --target thumbv7em-none-eabihf` in
/// `firmware-example/`, its own target directory) and returns the ELF's path.
pub fn build_firmware() -> Result<PathBuf> {
    let dir = firmware_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&dir)
        .args(["build", "--release", "--target", "thumbv7em-none-eabihf"])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(dir.join("target"))
        .status()
        .context("running cargo to build the firmware")?;
    if !status.success() {
        bail!(
            "building the firmware failed ({status}); is the target installed? \
             (rustup target add thumbv7em-none-eabihf)"
        );
    }
    Ok(default_elf())
}

// ---------------------------------------------------------------------------------------
// The model: random weights, the fixed-point parameters, the reference

fn grid(v: f64) -> f64 {
    // 14 fractional bits: exact in f32 and in fixed point, and still exact after the
    // query scale 1/4 is folded in (16 bits).
    (v * 16384.0).round() / 16384.0
}

/// The random layer P0 holds: weights uniform in `+-sqrt(3 / in)`, biases in `+-0.1`,
/// gamma in `1 +- 0.2`, beta in `+-0.1`, all on a grid of 2^-14.
pub fn demo_layer(d: &Dims, seed: u64) -> EncoderLayer {
    let mut prg = Prg::new(&Seed::from_u64_for_tests(seed), 11);
    let mut uni = |lo: f64, hi: f64| -> f32 {
        let u = (prg.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        grid(lo + (hi - lo) * u) as f32
    };
    let mut linear = |inp: usize, out: usize| {
        let a = (3.0 / inp as f64).sqrt();
        let w: Vec<f32> = (0..inp * out).map(|_| uni(-a, a)).collect();
        let b: Vec<f32> = (0..out).map(|_| uni(-0.1, 0.1)).collect();
        Linear {
            w: Matrix::from_vec(inp, out, w),
            b,
        }
    };
    let (h, fi) = (d.hidden, d.inter);
    let q = linear(h, h);
    let k = linear(h, h);
    let v = linear(h, h);
    let attn_out = linear(h, h);
    let ffn_in = linear(h, fi);
    let ffn_out = linear(fi, h);
    let mut ln = || LayerNorm {
        gamma: (0..h).map(|_| uni(0.8, 1.2)).collect(),
        beta: (0..h).map(|_| uni(-0.1, 0.1)).collect(),
        eps: block::LN_EPS as f32,
    };
    let ln1 = ln();
    let ln2 = ln();
    EncoderLayer {
        q,
        k,
        v,
        attn_out,
        ln1,
        ffn_in,
        ffn_out,
        ln2,
    }
}

/// P0's parameters in the block's order (the core's `ParamLayout`), as reals, with the
/// attention scale `1/sqrt(head_dim)` folded into the query weight and bias.
pub fn param_values(d: &Dims, w: &EncoderLayer) -> Vec<f64> {
    let (h, fi) = (d.hidden, d.inter);
    let l = secformer_core::nn::ParamLayout::new(h, fi);
    let scale = 1.0 / (d.head_dim() as f64).sqrt();
    let mut v = vec![0.0f64; l.total];
    for r in 0..h {
        for c in 0..h {
            v[l.wqkv + r * 3 * h + c] = w.q.w.get(r, c) as f64 * scale;
            v[l.wqkv + r * 3 * h + h + c] = w.k.w.get(r, c) as f64;
            v[l.wqkv + r * 3 * h + 2 * h + c] = w.v.w.get(r, c) as f64;
        }
    }
    for c in 0..h {
        v[l.bqkv + c] = w.q.b[c] as f64 * scale;
        v[l.bqkv + h + c] = w.k.b[c] as f64;
        v[l.bqkv + 2 * h + c] = w.v.b[c] as f64;
    }
    let mut put = |off: usize, xs: &[f32]| {
        for (dst, x) in v[off..off + xs.len()].iter_mut().zip(xs) {
            *dst = *x as f64;
        }
    };
    put(l.wo, &w.attn_out.w.data);
    put(l.bo, &w.attn_out.b);
    put(l.ln1_g, &w.ln1.gamma);
    put(l.ln1_b, &w.ln1.beta);
    put(l.w1, &w.ffn_in.w.data);
    put(l.b1, &w.ffn_in.b);
    put(l.w2, &w.ffn_out.w.data);
    put(l.b2, &w.ffn_out.b);
    put(l.ln2_g, &w.ln2.gamma);
    put(l.ln2_b, &w.ln2.beta);
    debug_assert!(Params::split(d, &v).is_ok());
    v
}

/// Fixed-point encoding of P0's parameters.
pub fn param_words(d: &Dims, w: &EncoderLayer) -> Result<Vec<u64>> {
    let e = Encoding::default();
    param_values(d, w)
        .iter()
        .map(|x| e.encode(*x).map_err(|e| anyhow!("parameter {x}: {e}")))
        .collect()
}

/// The firmware's input, decoded.
pub fn input_values() -> Vec<f64> {
    let e = Encoding::default();
    block::INPUT.iter().map(|w| e.decode(*w)).collect()
}

/// The f64 reference of the block on `x` (`seq x hidden`).
pub fn reference(d: &Dims, w: &EncoderLayer, x: &[f64]) -> Vec<f64> {
    let mask = vec![true; d.seq];
    plain::encoder_layer(
        w,
        x,
        &mask,
        d.heads,
        SoftmaxKind::TwoQuad {
            c: block::SOFTMAX_C as f32,
        },
    )
}

fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Checks the taps (decoded, [`Taps`] layout) and the output against f64 on the values
/// each step saw.
pub fn tap_errors(d: &Dims, w: &EncoderLayer, taps: &[f64], output: &[f64]) -> Result<TapErrors> {
    let t = Taps::split(d, taps)?;
    let m = d.seq;
    let mask = vec![true; m];
    let mut probs = Vec::with_capacity(t.probs.len());
    for row in t.scores.chunks_exact(m) {
        probs.extend(plain::softmax_2quad(row, &mask, block::SOFTMAX_C));
    }
    let gelu: Vec<f64> = t.gelu_in.iter().map(|x| plain::gelu(*x)).collect();
    Ok(TapErrors {
        softmax: max_abs(&probs, t.probs),
        layernorm1: max_abs(&plain::layernorm(t.ln1_in, &w.ln1), t.ln1_out),
        gelu: max_abs(&gelu, t.gelu_out),
        layernorm2: max_abs(&plain::layernorm(t.ln2_in, &w.ln2), output),
    })
}

// ---------------------------------------------------------------------------------------
// Frames on the line

fn frame_kind(frame: &[u8]) -> Option<FrameKind> {
    FrameKind::from_u8(frame[1])
}

fn frame_len(h: &[u8]) -> usize {
    u32::from_le_bytes([h[2], h[3], h[4], h[5]]) as usize
}

/// An `Error` frame with `msg` (for the relay's own failures), framed by the core.
fn error_frame(msg: &str) -> Vec<u8> {
    let mut ch = Channel::new(Capture(Vec::new()));
    ch.send_error(msg);
    ch.into_link().0
}

/// A write-only link that keeps what is written.
struct Capture(Vec<u8>);

impl embedded_io::ErrorType for Capture {
    type Error = embedded_io::ErrorKind;
}
impl embedded_io::Read for Capture {
    fn read(&mut self, _: &mut [u8]) -> Result<usize, embedded_io::ErrorKind> {
        Err(embedded_io::ErrorKind::Unsupported)
    }
}
impl embedded_io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> Result<usize, embedded_io::ErrorKind> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), embedded_io::ErrorKind> {
        Ok(())
    }
}

/// Reads one whole frame; `Ok(None)` at a clean end of stream.
fn read_frame(r: &mut dyn Read) -> io::Result<Option<Vec<u8>>> {
    let mut h = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        let n = r.read(&mut h[got..])?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the line closed in the middle of a frame header",
            ));
        }
        got += n;
    }
    if h[0] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "malformed frame from the firmware: bad magic byte 0x{:02x}",
                h[0]
            ),
        ));
    }
    if FrameKind::from_u8(h[1]).is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed frame from the firmware: unknown kind {}", h[1]),
        ));
    }
    let len = frame_len(&h);
    if len > MAX_LINE_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes from the firmware exceeds the relay's limit"),
        ));
    }
    let mut f = vec![0u8; HEADER + len + TRAILER];
    f[..HEADER].copy_from_slice(&h);
    r.read_exact(&mut f[HEADER..])?;
    Ok(Some(f))
}

/// Splits a byte stream from a host endpoint into frames.
#[derive(Default)]
struct Assembler {
    buf: Vec<u8>,
}

impl Assembler {
    fn push(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    fn next_frame(&mut self) -> Option<Vec<u8>> {
        if self.buf.len() < HEADER {
            return None;
        }
        let need = HEADER + frame_len(&self.buf) + TRAILER;
        if self.buf.len() < need {
            return None;
        }
        let rest = self.buf.split_off(need);
        Some(std::mem::replace(&mut self.buf, rest))
    }
}

/// A read-only link over one frame's bytes, to decode it with the core's channel.
struct FrameBytes<'a>(&'a [u8]);

impl embedded_io::ErrorType for FrameBytes<'_> {
    type Error = embedded_io::ErrorKind;
}
impl embedded_io::Read for FrameBytes<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, embedded_io::ErrorKind> {
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}
impl embedded_io::Write for FrameBytes<'_> {
    fn write(&mut self, _: &[u8]) -> Result<usize, embedded_io::ErrorKind> {
        Err(embedded_io::ErrorKind::Unsupported)
    }
    fn flush(&mut self) -> Result<(), embedded_io::ErrorKind> {
        Ok(())
    }
}

/// How many `DealerData` frames D sends in answer to this `DealerRequest` frame (one per
/// correction slot; `MAX_FRAME_LEN` pieces for huge ones), as the dealer service does, and
/// their payload bytes.
fn answer_frames(frame: &[u8]) -> Result<(usize, usize)> {
    let mut ch = Channel::new(FrameBytes(frame));
    let req: Request = ch
        .recv_msg(FrameKind::DealerRequest)
        .map_err(|e| anyhow!("undecodable dealer request from the firmware: {e}"))?;
    let (mut n, mut total) = (0, 0);
    for item in req.items.iter() {
        for slot in layout(item) {
            if slot.p1 == secformer_core::dealer::Source::Dealer {
                let bytes = slot.len * slot.width as usize;
                total += bytes;
                n += bytes.div_ceil(MAX_FRAME_LEN).max(1);
            }
        }
    }
    Ok((n, total))
}

fn corrupt_frame(f: &mut Vec<u8>, fault: Fault) {
    match fault {
        Fault::Flip => {
            // A payload byte in the middle, or the checksum of an empty frame.
            let len = frame_len(f);
            let at = if len > 0 { HEADER + len / 2 } else { HEADER };
            f[at] ^= 0x20;
        }
        Fault::Drop => {
            f.pop();
        }
    }
}

/// Counts peer data frames of one direction and corrupts the chosen one.
struct Injector {
    corrupt: Option<Corruption>,
    seen: usize,
}

impl Injector {
    fn new(corrupt: Option<Corruption>, direction: Direction) -> Self {
        Injector {
            corrupt: corrupt.filter(|c| c.direction == direction),
            seen: 0,
        }
    }

    fn apply(&mut self, f: &mut Vec<u8>) {
        if !is_peer_data(f) {
            return;
        }
        if let Some(c) = self.corrupt {
            if c.frame == self.seen {
                corrupt_frame(f, c.fault);
            }
        }
        self.seen += 1;
    }
}

fn is_peer_data(f: &[u8]) -> bool {
    matches!(frame_kind(f), Some(FrameKind::Ring | FrameKind::Bits))
}

// ---------------------------------------------------------------------------------------
// The relay

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    P0,
    Dealer,
}

enum TxMsg {
    /// Bytes a host endpoint wrote (whole frames after assembly).
    Data(Source, Vec<u8>),
    /// P1 sent a dealer request answered by this many D frames.
    Request(usize),
    /// Write this frame now (the relay's own error reports).
    Raw(Vec<u8>),
}

/// One host endpoint's link to the relay (P0's peer link, D's link to P1), for `Channel`.
struct PortLink {
    src: Source,
    tx: Sender<TxMsg>,
    rx: Receiver<Vec<u8>>,
    out: Vec<u8>,
    inbuf: Vec<u8>,
    pos: usize,
    timeout: Duration,
}

impl embedded_io::ErrorType for PortLink {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for PortLink {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, embedded_io::ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.pos == self.inbuf.len() {
            match self.rx.recv_timeout(self.timeout) {
                Ok(v) => {
                    self.inbuf = v;
                    self.pos = 0;
                }
                Err(RecvTimeoutError::Timeout) => return Err(embedded_io::ErrorKind::TimedOut),
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
            }
        }
        let n = buf.len().min(self.inbuf.len() - self.pos);
        buf[..n].copy_from_slice(&self.inbuf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl embedded_io::Write for PortLink {
    fn write(&mut self, buf: &[u8]) -> Result<usize, embedded_io::ErrorKind> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), embedded_io::ErrorKind> {
        if self.out.is_empty() {
            return Ok(());
        }
        let v = std::mem::take(&mut self.out);
        self.tx
            .send(TxMsg::Data(self.src, v))
            .map_err(|_| embedded_io::ErrorKind::BrokenPipe)
    }
}

/// Counters of the relay.
#[derive(Debug, Clone, Copy, Default)]
pub struct RelayStats {
    /// Bytes written to the line.
    pub to_firmware: u64,
    /// Bytes read from the line.
    pub from_firmware: u64,
    /// P0 frames held behind a dealer answer.
    pub held: u64,
    /// Dealer requests from the device.
    pub requests: u64,
    /// Payload bytes of the largest dealer answer (what the device's prefetch buffer
    /// must hold).
    pub max_answer: u64,
}

/// The relay's line-writing side: orders D's and P0's frames (see the module docs).
fn relay_to_line(
    rx: Receiver<TxMsg>,
    mut w: Box<dyn Write + Send>,
    mut inject: Injector,
) -> (RelayStats, Result<()>) {
    let mut st = RelayStats::default();
    let mut p0 = Assembler::default();
    let mut dl = Assembler::default();
    let mut queue: VecDeque<Vec<u8>> = VecDeque::new();
    // D's Hello answers P1's hello: hold P0 (its PairHello) until it is through.
    let mut outstanding = 1usize;
    let mut put = |f: &mut Vec<u8>, st: &mut RelayStats, src: Source| -> io::Result<()> {
        if src == Source::P0 {
            inject.apply(f);
        }
        w.write_all(f)?;
        w.flush()?;
        st.to_firmware += f.len() as u64;
        Ok(())
    };
    let res = (|| -> Result<()> {
        for msg in rx {
            match msg {
                TxMsg::Request(n) => outstanding += n,
                TxMsg::Raw(mut f) => put(&mut f, &mut st, Source::Dealer)?,
                TxMsg::Data(Source::Dealer, b) => {
                    dl.push(&b);
                    while let Some(mut f) = dl.next_frame() {
                        let kind = frame_kind(&f);
                        put(&mut f, &mut st, Source::Dealer)?;
                        if kind == Some(FrameKind::Error) {
                            outstanding = 0;
                        } else {
                            outstanding = outstanding.saturating_sub(1);
                        }
                        if outstanding == 0 {
                            while let Some(mut q) = queue.pop_front() {
                                put(&mut q, &mut st, Source::P0)?;
                            }
                        }
                    }
                }
                TxMsg::Data(Source::P0, b) => {
                    p0.push(&b);
                    while let Some(mut f) = p0.next_frame() {
                        // An Error frame is never ambiguous (whoever reads it fails with
                        // P0's reason), so it does not wait behind a dealer answer that
                        // may never come.
                        if outstanding == 0 || frame_kind(&f) == Some(FrameKind::Error) {
                            put(&mut f, &mut st, Source::P0)?;
                        } else {
                            st.held += 1;
                            queue.push_back(f);
                        }
                    }
                }
            }
        }
        Ok(())
    })();
    (st, res.context("writing to the line"))
}

/// The relay's line-reading side: dispatches the device's frames by kind.
fn relay_from_line(
    mut r: Box<dyn Read + Send>,
    to_p0: Sender<Vec<u8>>,
    to_dealer: Sender<Vec<u8>>,
    tx: Sender<TxMsg>,
    mut inject: Injector,
) -> (RelayStats, Result<()>) {
    let mut st = RelayStats::default();
    let res = (|| -> Result<()> {
        loop {
            let f = match read_frame(&mut *r) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                // QEMU resets the socket when it exits with bytes unread: the device is
                // gone, which P0 and D learn as a closed link.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(anyhow::Error::new(e).context("reading the line")),
            };
            let mut f = f;
            st.from_firmware += f.len() as u64;
            match frame_kind(&f) {
                Some(FrameKind::Hello) => {
                    let _ = to_dealer.send(f);
                }
                Some(FrameKind::DealerRequest) => {
                    let (n, total) = answer_frames(&f)?;
                    st.requests += 1;
                    st.max_answer = st.max_answer.max(total as u64);
                    if n > 0 {
                        let _ = tx.send(TxMsg::Request(n));
                    }
                    let _ = to_dealer.send(f);
                }
                Some(FrameKind::Ring | FrameKind::Bits | FrameKind::Control | FrameKind::Bye) => {
                    inject.apply(&mut f);
                    let _ = to_p0.send(f);
                }
                Some(FrameKind::Error) => {
                    // D passes P1's message on to P0 as `dealer: <its error>` in a
                    // 96-byte frame; keep P1's message short enough to survive that.
                    let len = frame_len(&f).min(f.len() - HEADER - TRAILER);
                    let msg = String::from_utf8_lossy(&f[HEADER..HEADER + len]).into_owned();
                    let mut cut = msg.len().min(DEALER_RELAYED_ERROR);
                    while !msg.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    let _ = to_dealer.send(error_frame(&msg[..cut]));
                    let _ = to_p0.send(f);
                }
                Some(k) => bail!("the firmware sent a {k:?} frame, which only the dealer sends"),
                None => bail!("malformed frame kind from the firmware"),
            }
        }
    })();
    if let Err(e) = &res {
        // Tell everyone, so nobody waits for a timeout.
        let f = error_frame(&format!("relay: {e:#}"));
        let _ = to_p0.send(f.clone());
        let _ = to_dealer.send(f.clone());
        let _ = tx.send(TxMsg::Raw(f));
    }
    (st, res)
}

/// What the host side of one run produced.
pub struct HostOutcome {
    /// P0's result: the online profile, its peer traffic and seconds.
    pub p0: Result<(block::Profile, Stats, f64)>,
    /// The relay's counters.
    pub relay: RelayStats,
    /// The relay's error, if the line failed or carried garbage.
    pub relay_error: Option<String>,
}

/// P0's end of a firmware session besides the line: its keys, its own link to D and the
/// relay's connection to D (which carries only the device's sealed frames).
pub struct HostLinks<T0> {
    /// P0's static key (the device pins its public half).
    pub p0_key: StaticKey,
    /// The device keys P0 accepts on the peer link.
    pub devices: Vec<[u8; KEY_LEN]>,
    /// P0's own link to D.
    pub to_dealer: T0,
    /// The relay's connection to D's relay port.
    pub relay_to_dealer: TcpStream,
}

/// Runs P0 and the relay over a line to a device (any byte streams: QEMU's UART socket or
/// pipes, or a test's own device thread) until the line closes and P0 is done. D runs
/// elsewhere (its own process, or a test's thread) behind `links`.
pub fn serve_line<T0: Transport + Send>(
    line_r: Box<dyn Read + Send>,
    line_w: Box<dyn Write + Send>,
    params: &[u64],
    taps: bool,
    corrupt: Option<Corruption>,
    read_timeout: Duration,
    links: HostLinks<T0>,
) -> HostOutcome {
    let (tx, tx_rx) = channel::<TxMsg>();
    let (to_p0, p0_rx) = channel::<Vec<u8>>();
    let (to_d, d_rx) = channel::<Vec<u8>>();
    let p0_port = PortLink {
        src: Source::P0,
        tx: tx.clone(),
        rx: p0_rx,
        out: Vec::new(),
        inbuf: Vec::new(),
        pos: 0,
        timeout: read_timeout,
    };
    let c_to = Injector::new(corrupt, Direction::ToFirmware);
    let c_from = Injector::new(corrupt, Direction::FromFirmware);
    let HostLinks {
        p0_key,
        devices,
        to_dealer,
        relay_to_dealer,
    } = links;
    let dealer_socket = relay_to_dealer.try_clone();
    std::thread::scope(|sc| {
        let writer = sc.spawn(move || relay_to_line(tx_rx, line_w, c_to));
        let txr = tx.clone();
        let reader = sc.spawn(move || relay_from_line(line_r, to_p0, to_d, txr, c_from));
        let txd = tx.clone();
        let forward = sc.spawn(move || forward_dealer(relay_to_dealer, d_rx, txd));
        drop(tx);
        let p0 = sc.spawn(move || run_p0(p0_port, to_dealer, &p0_key, &devices, params, taps));
        let p0 = p0.join().unwrap_or_else(|_| Err(anyhow!("P0 panicked")));
        let (rs, r_res) = reader
            .join()
            .unwrap_or_else(|_| (RelayStats::default(), Err(anyhow!("the relay panicked"))));
        // The line is done, so nothing D sends now has a reader: stop reading, which
        // unblocks the forwarder when D is gone or stuck. Only the reading half: the
        // forwarder's writer still delivers the device's last frames (its final request
        // among them) and then closes the writing half itself.
        if let Ok(s) = &dealer_socket {
            let _ = s.shutdown(std::net::Shutdown::Read);
        }
        let _ = forward.join();
        let (mut relay, w_res) = writer
            .join()
            .unwrap_or_else(|_| (RelayStats::default(), Err(anyhow!("the relay panicked"))));
        relay.from_firmware = rs.from_firmware;
        relay.requests = rs.requests;
        relay.max_answer = rs.max_answer;
        let relay_error = match (r_res, w_res) {
            (Err(e), _) => Some(format!("{e:#}")),
            // Writing fails harmlessly once the device is gone after an error.
            (Ok(()), Err(e)) if p0.is_ok() => Some(format!("{e:#}")),
            _ => None,
        };
        HostOutcome {
            p0,
            relay,
            relay_error,
        }
    })
}

/// Carries the device's dealer frames to D's relay port and D's bytes back to the line.
/// The relay sees only what the module docs of [`secure`] list as clear.
fn forward_dealer(stream: TcpStream, from_device: Receiver<Vec<u8>>, tx: Sender<TxMsg>) {
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    std::thread::scope(|sc| {
        sc.spawn(move || {
            for f in from_device {
                if w.write_all(&f).is_err() {
                    break;
                }
            }
            let _ = w.shutdown(std::net::Shutdown::Write);
        });
        let mut r = stream;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send(TxMsg::Data(Source::Dealer, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
}

/// P0: dealer handshake over its own link, the sealed handshake with the device (which
/// must present a key in `devices`), then the block.
fn run_p0<T0: Transport>(
    port: PortLink,
    to_dealer: T0,
    key: &StaticKey,
    devices: &[[u8; KEY_LEN]],
    params: &[u64],
    taps: bool,
) -> Result<(block::Profile, Stats, f64)> {
    let d = DIMS;
    let t0 = Instant::now();
    let (client, session) =
        DealerClient::connect(to_dealer, PartyId::P0).context("P0: dealer handshake")?;
    let accept = |peer: &[u8; KEY_LEN], _: &[u8], _: &mut [u8]| {
        if devices.contains(peer) {
            Ok(0)
        } else {
            Err(secformer_core::transport::TransportError::Handshake(
                "the device's key is not trusted by P0",
            ))
        }
    };
    let (peer, _, _) = Sealed::respond(
        Channel::full_duplex(port),
        FrameKind::Control,
        key,
        dealer::os_entropy()?,
        secure::PROLOGUE_PEER,
        Vec::new(),
        Vec::new(),
        &mut [],
        accept,
    )
    .context("P0: sealed handshake with the firmware")?;
    let mut s = Session::establish(
        PartyId::P0,
        Encoding::default(),
        peer,
        client,
        HostKernel::detect(),
        session,
        Some(os_seed()?),
    )
    .context("P0: handshake with the firmware")?;
    let f = s.encoding().frac_bits();
    let mut mem = vec![0u64; block::mem_words(&d, f, taps)];
    let clock = || t0.elapsed().as_micros() as u64;
    let r = block::run(
        &mut s,
        &d,
        Role::ModelOwner { params },
        taps,
        &mut mem,
        &clock,
        &mut |_| {},
    );
    match r {
        Ok(p) => Ok((p, s.peer_stats(), t0.elapsed().as_secs_f64())),
        Err(e) => {
            s.abort(&format!("P0 (host): {e}"));
            Err(e.into())
        }
    }
}

// ---------------------------------------------------------------------------------------
// QEMU

fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether `qemu` can be run (a path, or a name found in `PATH`).
pub fn qemu_available(qemu: &Path) -> bool {
    if qemu.components().count() > 1 {
        qemu.is_file()
    } else {
        qemu.to_str().and_then(in_path).is_some()
    }
}

fn qemu_command(opts: &FirmwarePeerOptions, serial: &str) -> Command {
    let secs = opts.timeout.as_secs().max(1);
    let mut cmd = match in_path("timeout") {
        Some(t) => {
            let mut c = Command::new(t);
            c.args(["--signal=TERM", "--kill-after=5", &secs.to_string()])
                .arg(&opts.qemu);
            c
        }
        None => Command::new(&opts.qemu),
    };
    let mut semi = format!(
        "enable=on,target=native,arg=secformer-fw,arg={},arg=timeout={}",
        opts.link.name(),
        opts.firmware_timeout
            .unwrap_or(opts.read_timeout)
            .as_secs()
            .max(1)
    );
    if opts.taps {
        semi.push_str(",arg=reveal-taps");
    }
    if let Some(dir) = &opts.keys_dir {
        // QEMU splits the option at commas; the temporary directory has none.
        semi.push_str(&format!(",arg=keys={}", dir.display()));
    }
    // QEMU runs next to the ELF: host files the firmware opens through semihosting (the
    // defmt log) land there.
    if let Some(dir) = opts.elf.parent().filter(|d| d.is_dir()) {
        cmd.current_dir(dir);
    }
    cmd.args(["-machine", "mps2-an386", "-cpu", "cortex-m4"])
        .args(["-display", "none", "-monitor", "none"])
        .args(["-serial", serial])
        .args(["-semihosting-config", &semi])
        .arg("-kernel")
        .arg(&opts.elf)
        .stderr(Stdio::piped());
    cmd
}

/// Collects QEMU's stderr lines (echoing them if asked) until the pipe closes.
fn collect_stderr(
    err: impl Read + Send + 'static,
    echo: bool,
) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l2 = lines.clone();
    let h = std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if echo {
                let short: String = line.chars().take(200).collect();
                eprintln!("[qemu] {short}");
            }
            l2.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
    (lines, h)
}

fn wait_with_deadline(child: &mut Child, deadline: Instant) -> (Option<ExitStatus>, bool) {
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return (Some(st), false),
            Ok(None) => {}
            Err(_) => return (None, false),
        }
        if Instant::now() >= deadline {
            // `timeout` should have stopped QEMU already; this is the last resort.
            let _ = child.kill();
            let st = child.wait().ok();
            return (st, true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn accept_qemu(l: &TcpListener, child: &mut Child, deadline: Duration) -> Result<TcpStream> {
    l.set_nonblocking(true)?;
    let start = Instant::now();
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Ok(Some(st)) = child.try_wait() {
                    bail!("QEMU exited ({st}) before connecting its UART");
                }
                if start.elapsed() >= deadline {
                    bail!("QEMU did not connect its UART within {deadline:?}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs the firmware under QEMU with these command-line words and no line (serial and
/// stdin unused), e.g. `crash=hardfault`; returns QEMU's exit code and the firmware's
/// report lines. For self-tests of the boot and failure paths.
pub fn run_firmware_alone(
    qemu: &Path,
    elf: &Path,
    args: &[&str],
    timeout: Duration,
) -> Result<(Option<i32>, Vec<String>)> {
    let mut semi = String::from("enable=on,target=native,arg=secformer-fw");
    for a in args {
        semi.push_str(",arg=");
        semi.push_str(a);
    }
    let mut cmd = match in_path("timeout") {
        Some(t) => {
            let mut c = Command::new(t);
            c.args(["--kill-after=5", &timeout.as_secs().max(1).to_string()])
                .arg(qemu);
            c
        }
        None => Command::new(qemu),
    };
    let out = cmd
        .args(["-machine", "mps2-an386", "-cpu", "cortex-m4"])
        .args(["-display", "none", "-monitor", "none", "-serial", "null"])
        .args(["-semihosting-config", &semi])
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {}", qemu.display()))?;
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let reports = report_lines(&lines).iter().map(|s| s.to_string()).collect();
    Ok((out.status.code(), reports))
}

/// The firmware's report lines (without the prefix).
fn report_lines(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|l| l.find(REPORT_PREFIX).map(|i| &l[i + REPORT_PREFIX.len()..]))
        .collect()
}

fn parse_words(line: &str) -> Result<Vec<u64>> {
    let mut it = line.split_ascii_whitespace();
    let n: usize = it
        .next()
        .ok_or_else(|| anyhow!("empty word list"))?
        .parse()?;
    let w: Vec<u64> = it
        .map(|h| u64::from_str_radix(h, 16))
        .collect::<Result<_, _>>()?;
    if w.len() != n {
        bail!("word list announces {n} words, has {}", w.len());
    }
    Ok(w)
}

fn parse_kv(line: &str, into: &mut BTreeMap<String, f64>) {
    for kv in line.split_ascii_whitespace() {
        if let Some((k, v)) = kv.split_once('=') {
            if let Ok(x) = v.parse::<f64>() {
                into.insert(k.to_string(), x);
            }
        }
    }
}

/// Runs the firmware under QEMU as P1 against this process as P0 and D, and checks its
/// output against the f64 block. See the module docs for the line and the relay.
pub fn run_firmware_peer(opts: &FirmwarePeerOptions) -> Result<FirmwareReport> {
    if !opts.elf.is_file() {
        bail!(
            "firmware ELF {} not found (build it: cargo build --release in firmware-example/)",
            opts.elf.display()
        );
    }
    if !qemu_available(&opts.qemu) {
        bail!(
            "{} not found (install it: apt-get install -y qemu-system-arm)",
            opts.qemu.display()
        );
    }
    // Absolute, since QEMU runs in the ELF's directory.
    let opts = &FirmwarePeerOptions {
        elf: opts.elf.canonicalize().unwrap_or_else(|_| opts.elf.clone()),
        ..opts.clone()
    };
    let d = DIMS;
    let layer = demo_layer(&d, opts.seed);
    let params = param_words(&d, &layer)?;
    let x = input_values();
    let reference = reference(&d, &layer, &x);

    let exe = match &opts.secformer_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("locating the secformer binary")?,
    };
    let keys = provision::Provisioning::create(&exe)?;
    let dealer = provision::DealerProcess::spawn(&exe, &keys, opts.read_timeout)?;
    let link_opts = crate::link::LinkOptions {
        read_timeout: opts.read_timeout,
        ..Default::default()
    };
    let s0 = TcpStream::connect(dealer.p0_addr)
        .with_context(|| format!("connecting P0 to the dealer at {}", dealer.p0_addr))?;
    let (to_dealer, _) = crate::link::Link::connect(s0, &keys.p0_to_dealer()?, &link_opts)
        .map_err(anyhow::Error::new)
        .context("P0's link to the dealer")?;
    let links = HostLinks {
        p0_key: keys.p0_static(),
        devices: vec![keys.device_public()?],
        to_dealer: to_dealer.channel(),
        relay_to_dealer: dealer.connect_relay()?,
    };
    let opts = &FirmwarePeerOptions {
        keys_dir: Some(keys.dir().to_path_buf()),
        ..opts.clone()
    };

    let start = Instant::now();
    let (mut child, line_r, line_w): (Child, Box<dyn Read + Send>, Box<dyn Write + Send>) =
        match opts.link {
            FirmwareLink::UartTcp { port } => {
                let l = TcpListener::bind(("127.0.0.1", port))
                    .with_context(|| format!("listening on 127.0.0.1:{port} for QEMU's UART"))?;
                let port = l.local_addr()?.port();
                let serial = format!("tcp:127.0.0.1:{port},nodelay=on");
                let mut child = qemu_command(opts, &serial)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn()
                    .with_context(|| format!("starting {}", opts.qemu.display()))?;
                let s = match accept_qemu(&l, &mut child, Duration::from_secs(30)) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(e);
                    }
                };
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(opts.read_timeout))?;
                let w = s.try_clone()?;
                (child, Box::new(BufReader::new(s)), Box::new(w))
            }
            FirmwareLink::Semihosting => {
                let mut child = qemu_command(opts, "null")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .with_context(|| format!("starting {}", opts.qemu.display()))?;
                let (Some(i), Some(o)) = (child.stdin.take(), child.stdout.take()) else {
                    bail!("QEMU's stdio pipes are missing");
                };
                (child, Box::new(BufReader::new(o)), Box::new(i))
            }
        };
    let Some(err) = child.stderr.take() else {
        bail!("QEMU's stderr pipe is missing");
    };
    let (stderr, stderr_done) = collect_stderr(err, opts.echo);

    let out = serve_line(
        line_r,
        line_w,
        &params,
        opts.taps,
        opts.corrupt,
        opts.read_timeout,
        links,
    );
    let dealer = dealer.finish(Instant::now() + Duration::from_secs(10));
    let (status, killed) =
        wait_with_deadline(&mut child, start + opts.timeout + Duration::from_secs(10));
    let qemu_wall_seconds = start.elapsed().as_secs_f64();
    // The pipe closes when QEMU (and `timeout`) exit; wait a little for the last lines.
    let drain_until = Instant::now() + Duration::from_secs(5);
    while !stderr_done.is_finished() && Instant::now() < drain_until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let lines = stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let reports = report_lines(&lines);
    let code = status.and_then(|s| s.code());
    let timed_out = killed || code == Some(124) || code == Some(137);
    let fw_error = reports
        .iter()
        .find(|r| {
            r.starts_with("error:")
                || r.starts_with("panic:")
                || r.starts_with("hardfault")
                || r.starts_with("unexpected exception")
        })
        .map(|s| s.to_string());
    let mut failure = FirmwareFailure {
        qemu_exit: code,
        timed_out,
        firmware: fw_error,
        p0: out.p0.as_ref().err().map(|e| format!("{e:#}")),
        dealer: dealer.as_ref().err().map(|e| format!("{e:#}")),
        relay: out.relay_error.clone(),
        check: None,
        stderr_tail: lines.iter().rev().take(8).rev().cloned().collect(),
    };
    let ok = code == Some(0) && reports.contains(&"ok");
    if !ok || failure.p0.is_some() || failure.dealer.is_some() || failure.relay.is_some() {
        if failure.firmware.is_none() && code != Some(0) {
            failure.firmware = Some("no `ok` line: the firmware did not finish".into());
        }
        return Err(failure.into());
    }
    let (_, p0_stats, p0_seconds) = out.p0.expect("checked above");
    let summary = dealer.expect("checked above");

    let enc = Encoding::default();
    let words_of = |tag: &str| -> Result<Vec<u64>> {
        let l = reports
            .iter()
            .find_map(|r| r.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')))
            .ok_or_else(|| anyhow!("the firmware reported no `{tag}` line"))?;
        parse_words(l).with_context(|| format!("the firmware's `{tag}` line"))
    };
    let output: Vec<f64> = words_of("result")?.iter().map(|w| enc.decode(*w)).collect();
    if output.len() != reference.len() {
        failure.check = Some(format!(
            "the firmware returned {} values, expected {}",
            output.len(),
            reference.len()
        ));
        return Err(failure.into());
    }
    let tap_errors = if opts.taps {
        let t: Vec<f64> = words_of("taps")?.iter().map(|w| enc.decode(*w)).collect();
        Some(tap_errors(&d, &layer, &t, &output)?)
    } else {
        None
    };
    let mut stats = BTreeMap::new();
    for r in &reports {
        if let Some(rest) = r
            .strip_prefix("stats ")
            .or_else(|| r.strip_prefix("profile "))
        {
            parse_kv(rest, &mut stats);
        }
    }
    let diffs: Vec<f64> = output
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .collect();
    Ok(FirmwareReport {
        link: opts.link.name().into(),
        dims: format!("{}x{}, {} heads, FFN {}", d.seq, d.hidden, d.heads, d.inter),
        taps: opts.taps,
        max_abs_error: diffs.iter().cloned().fold(0.0, f64::max),
        mean_abs_error: diffs.iter().sum::<f64>() / diffs.len() as f64,
        tap_errors,
        output,
        reference,
        qemu_wall_seconds,
        p0_seconds,
        line_bytes_to_firmware: out.relay.to_firmware,
        line_bytes_from_firmware: out.relay.from_firmware,
        frames_held: out.relay.held,
        max_dealer_answer: out.relay.max_answer,
        p0_bytes_sent: p0_stats.bytes_sent,
        p0_bytes_received: p0_stats.bytes_received,
        p0_rounds: p0_stats.rounds,
        dealer_requests: summary.requests,
        dealer_bytes_to_p1: summary.p1_sent,
        firmware_stats: stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: FirmwarePeerArgs,
    }

    #[test]
    fn flags_parse_into_options() {
        let cli = Cli::try_parse_from([
            "x",
            "--transport",
            "uart:7777",
            "--reveal-taps",
            "--corrupt",
            "from-firmware:3:drop",
            "--elf",
            "/tmp/fw.elf",
            "--firmware-timeout",
            "2",
        ])
        .unwrap();
        let o = cli.args.options().unwrap();
        assert_eq!(o.link, FirmwareLink::UartTcp { port: 7777 });
        assert!(o.taps);
        assert_eq!(
            o.corrupt,
            Some(Corruption {
                direction: Direction::FromFirmware,
                frame: 3,
                fault: Fault::Drop
            })
        );
        assert_eq!(o.elf, PathBuf::from("/tmp/fw.elf"));
        assert_eq!(o.firmware_timeout, Some(Duration::from_secs(2)));
        let o = Cli::try_parse_from(["x"]).unwrap().args.options().unwrap();
        assert_eq!(o.link, FirmwareLink::Semihosting);
        assert_eq!(o.elf, default_elf());
        assert!(Cli::try_parse_from(["x", "--transport", "spi"]).is_err());
        assert!(Cli::try_parse_from(["x", "--corrupt", "sideways:1"]).is_err());
        assert!(Cli::try_parse_from(["x", "--corrupt", "to-firmware:1:melt"]).is_err());
    }

    #[test]
    fn answer_frames_counts_correction_slots() {
        use secformer_core::dealer::Item;
        let mut req = Request {
            seq: 0,
            items: Default::default(),
        };
        for it in [
            Item::Triple { n: 4 },                  // one correction slot, 8 bytes each
            Item::WeightMask { id: 1, k: 2, n: 2 }, // none
            Item::Trunc { n: 8, f: 16 },            // one, 2 bytes each
        ] {
            req.items.push(it).unwrap();
        }
        let mut ch = Channel::new(Capture(Vec::new()));
        ch.send_msg(FrameKind::DealerRequest, &req).unwrap();
        let f = ch.into_link().0;
        assert_eq!(answer_frames(&f).unwrap(), (2, 4 * 8 + 8 * 2));
    }

    #[test]
    fn error_frames_are_core_frames() {
        let f = error_frame("relay: x");
        let mut ch = Channel::new(FrameBytes(&f));
        let mut buf = [0u8; 4];
        match ch.recv_frame(FrameKind::Ring, &mut buf, false) {
            Err(secformer_core::transport::TransportError::Peer(m)) => assert_eq!(m, "relay: x"),
            other => panic!("{other:?}"),
        }
    }
}
