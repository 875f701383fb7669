//! `secformer bench link`: what the link encryption costs on loopback TCP.
//!
//! For each link kind (plain TCP with and without the frame CRC; Noise with AES-GCM or
//! ChaCha20-Poly1305, computed by `ring` or RustCrypto, with and without the CRC), in one
//! process with the two ends on two threads:
//!
//! * `one-way`: frames of `--frame-kib` KiB from A to B, `--mb` MB in all; payload MB/s.
//! * `duplex`: both ends exchange frames of that size at once (as the protocols do);
//!   payload MB/s each way.
//! * `ping-pong`: a 64-byte frame there and back; microseconds a round trip (latency).
//! * `exchange-1k`: both ends exchange a 1 KiB frame; microseconds an exchange (the cost of
//!   one small protocol round).
//!
//! plus the handshake's time and the CRC-32's own speed in memory.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use secformer_core::transport::{Channel, FrameKind, Transport};
use serde::Serialize;

use super::{Crypto, Link, LinkOptions, LinkSecurity, Suite};

/// Options of `secformer bench link`.
#[derive(Args, Debug, Clone)]
pub struct LinkBenchArgs {
    /// Megabytes of payload per throughput test (each way for `duplex`).
    #[arg(long, default_value_t = 256)]
    pub mb: usize,
    /// Frame size of the throughput tests, KiB.
    #[arg(long, default_value_t = 4096)]
    pub frame_kib: usize,
    /// Round trips of the small-frame tests.
    #[arg(long, default_value_t = 2000)]
    pub rounds: usize,
    /// Repetitions of each test; the fastest is reported (the machine may be shared).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Run only link kinds whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The record cipher alone, in memory, one thread.
#[derive(Debug, Clone, Serialize)]
pub struct CipherRow {
    /// `aesgcm-ring`, `chachapoly-rustcrypto`, ...
    pub cipher: String,
    /// Encryption of 65 519-byte records, GB/s of plaintext.
    pub seal_gb_per_s: f64,
    /// Decryption (and tag check) of the same, GB/s.
    pub open_gb_per_s: f64,
}

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub struct LinkBenchRow {
    /// Link kind, e.g. `noise-aesgcm-ring` or `tcp+crc`.
    pub link: String,
    /// `one-way`, `duplex`, `ping-pong` or `exchange-1k`.
    pub test: String,
    /// Payload bytes a frame.
    pub frame_bytes: usize,
    /// Frames (or round trips) measured.
    pub frames: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Payload megabytes (10^6) a second, each way.
    pub mb_per_s: f64,
    /// Microseconds a frame (throughput tests) or a round trip (small-frame tests).
    pub us_per_frame: f64,
    /// CPU seconds of the whole process (both ends, all threads) during the test: the
    /// cost that contention for cores does not hide.
    pub cpu_seconds: f64,
    /// CPU nanoseconds per payload byte moved (both directions counted).
    pub cpu_ns_per_byte: f64,
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct LinkBench {
    /// CPU model and the relevant instruction-set flags.
    pub cpu: String,
    /// Milliseconds of one authenticated handshake on loopback (median of 21).
    pub handshake_ms: f64,
    /// The frame CRC-32 (crc32fast) alone, in memory, GB/s.
    pub crc32_gb_per_s: f64,
    /// The record ciphers alone.
    pub ciphers: Vec<CipherRow>,
    /// The measurements.
    pub rows: Vec<LinkBenchRow>,
}

/// One kind of link under test.
#[derive(Debug, Clone, Copy)]
struct Kind {
    name: &'static str,
    secure: Option<(Suite, Crypto)>,
    crc: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        name: "tcp+crc",
        secure: None,
        crc: true,
    },
    Kind {
        name: "tcp",
        secure: None,
        crc: false,
    },
    Kind {
        name: "noise-aesgcm-ring",
        secure: Some((Suite::AesGcm, Crypto::Ring)),
        crc: false,
    },
    Kind {
        name: "noise-aesgcm-ring+crc",
        secure: Some((Suite::AesGcm, Crypto::Ring)),
        crc: true,
    },
    Kind {
        name: "noise-chachapoly-ring",
        secure: Some((Suite::ChaChaPoly, Crypto::Ring)),
        crc: false,
    },
    Kind {
        name: "noise-aesgcm-rustcrypto",
        secure: Some((Suite::AesGcm, Crypto::RustCrypto)),
        crc: false,
    },
    Kind {
        name: "noise-chachapoly-rustcrypto",
        secure: Some((Suite::ChaChaPoly, Crypto::RustCrypto)),
        crc: false,
    },
];

type Ch = Channel<Link>;

/// Two connected channels of `kind` over loopback.
fn pair(kind: Kind) -> Result<(Ch, Ch)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (sec_a, sec_b) = match kind.secure {
        Some(_) => {
            let mut g = LinkSecurity::ephemeral_group(&["a", "b"])?;
            let b = g.pop().context("group")?;
            (g.pop().context("group")?, b)
        }
        None => (LinkSecurity::Insecure, LinkSecurity::Insecure),
    };
    let (suite, crypto) = kind.secure.unwrap_or_default();
    let opts = LinkOptions {
        suite,
        crypto,
        read_timeout: Duration::from_secs(60),
        ..LinkOptions::default()
    };
    let b = std::thread::spawn(move || -> Result<Link> {
        let (s, _) = listener.accept()?;
        Ok(Link::accept(s, &sec_b, &opts)?.0)
    });
    let a = Link::connect(TcpStream::connect(addr)?, &sec_a, &opts)?.0;
    let b = b
        .join()
        .map_err(|_| anyhow::anyhow!("accept thread panicked"))??;
    let mk = |l: Link| {
        let ch = Channel::full_duplex(l);
        if kind.crc {
            ch
        } else {
            ch.without_checksum()
        }
    };
    Ok((mk(a), mk(b)))
}

fn pattern(n: usize, salt: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

/// CPU seconds used by this process so far (all threads, live or ended), from
/// `/proc/self/stat` (Linux; 0 elsewhere), in clock ticks of 10 ms.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name in parentheses; utime and stime are fields 14, 15.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    match (f.get(11), f.get(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => 0.0,
    }
}

/// Wall-clock seconds of one side and CPU seconds of both.
#[derive(Clone, Copy)]
struct Took {
    wall: f64,
    cpu: f64,
}

/// Runs `a_side` on this thread and `b_side` on another over a fresh pair; returns the
/// seconds `a_side` took and the CPU time of the process meanwhile.
fn timed(
    kind: Kind,
    a_side: impl FnOnce(&mut Ch) -> Result<()>,
    b_side: impl FnOnce(&mut Ch) -> Result<()> + Send + 'static,
) -> Result<Took> {
    let (mut a, mut b) = pair(kind)?;
    let cpu = process_cpu_seconds();
    let t = std::thread::spawn(move || b_side(&mut b));
    let start = Instant::now();
    a_side(&mut a)?;
    let wall = start.elapsed().as_secs_f64();
    t.join()
        .map_err(|_| anyhow::anyhow!("peer thread panicked"))??;
    Ok(Took {
        wall,
        cpu: process_cpu_seconds() - cpu,
    })
}

fn one_way(kind: Kind, frame: usize, frames: usize) -> Result<Took> {
    let data = pattern(frame, 1);
    timed(
        kind,
        move |a| {
            for _ in 0..frames {
                a.send_frame(FrameKind::Ring, &data)?;
            }
            a.recv_frame(FrameKind::Ack, &mut [0u8; 1], true)?;
            Ok(())
        },
        move |b| {
            let mut buf = vec![0u8; frame];
            for _ in 0..frames {
                b.recv_frame(FrameKind::Ring, &mut buf, true)?;
            }
            b.send_frame(FrameKind::Ack, &[1])?;
            Ok(())
        },
    )
}

fn duplex(kind: Kind, frame: usize, frames: usize) -> Result<Took> {
    let side = move |salt: u8| {
        move |c: &mut Ch| -> Result<()> {
            let mine = pattern(frame, salt);
            let mut theirs = vec![0u8; frame];
            for _ in 0..frames {
                c.exchange_frame(FrameKind::Ring, &mine, &mut theirs)?;
            }
            Ok(())
        }
    };
    timed(kind, side(1), side(2))
}

fn ping_pong(kind: Kind, rounds: usize) -> Result<Took> {
    timed(
        kind,
        move |a| {
            let mut buf = [7u8; 64];
            for _ in 0..rounds {
                a.send_frame(FrameKind::Ring, &buf)?;
                a.recv_frame(FrameKind::Ring, &mut buf, true)?;
            }
            Ok(())
        },
        move |b| {
            let mut buf = [0u8; 64];
            for _ in 0..rounds {
                b.recv_frame(FrameKind::Ring, &mut buf, true)?;
                b.send_frame(FrameKind::Ring, &buf)?;
            }
            Ok(())
        },
    )
}

fn exchange_small(kind: Kind, rounds: usize) -> Result<Took> {
    let side = move |salt: u8| {
        move |c: &mut Ch| -> Result<()> {
            let mine = pattern(1024, salt);
            let mut theirs = vec![0u8; 1024];
            for _ in 0..rounds {
                c.exchange_frame(FrameKind::Ring, &mine, &mut theirs)?;
            }
            Ok(())
        }
    };
    timed(kind, side(1), side(2))
}

fn handshake_ms() -> Result<f64> {
    let kind = KINDS[2];
    let mut t = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        drop(pair(kind)?);
        t.push(start.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

fn cipher_row(name: &str, suite: Suite, crypto: Crypto, reps: usize) -> Result<CipherRow> {
    use super::secure::MAX_RECORD_PLAINTEXT;
    let (tx, rx) = super::handshake::memory_pair(suite, crypto)
        .map_err(|e| anyhow::anyhow!("in-memory handshake: {e}"))?;
    let plain = pattern(MAX_RECORD_PLAINTEXT, 5);
    let records = 4096; // 268 MB
    let mut sealed = vec![0u8; MAX_RECORD_PLAINTEXT + 16];
    let mut opened = vec![0u8; MAX_RECORD_PLAINTEXT + 16];
    let (mut seal, mut open) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        for n in 0..records {
            tx.write_message(n, &plain, &mut sealed)?;
        }
        seal = seal.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..records {
            // Opening the last record again and again: the same work, the tag still checks.
            rx.read_message(records - 1, &sealed, &mut opened)?;
        }
        open = open.min(t.elapsed().as_secs_f64());
    }
    let bytes = (records as usize * MAX_RECORD_PLAINTEXT) as f64;
    Ok(CipherRow {
        cipher: name.to_string(),
        seal_gb_per_s: bytes / seal / 1e9,
        open_gb_per_s: bytes / open / 1e9,
    })
}

fn crc_gb_per_s() -> f64 {
    let data = pattern(8 << 20, 3);
    let reps = 64;
    let start = Instant::now();
    let mut acc = 0u32;
    for _ in 0..reps {
        let mut h = crc32fast::Hasher::new();
        h.update(&data);
        acc ^= h.finalize();
    }
    std::hint::black_box(acc);
    (reps * data.len()) as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// The CPU model and its AES/carry-less-multiply/AVX-512 flags, from `/proc/cpuinfo`.
pub fn cpu_description() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let flags = field("flags");
    let wanted = [
        "aes",
        "vaes",
        "pclmulqdq",
        "vpclmulqdq",
        "avx2",
        "avx512f",
        "sha_ni",
    ];
    let have: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| wanted.contains(f))
        .collect();
    format!("{} [{}]", field("model name"), have.join(" "))
}

/// A row; `ways` is 2 when both directions carry `frame * frames` bytes.
fn row(link: &str, test: &str, frame: usize, frames: usize, ways: usize, t: Took) -> LinkBenchRow {
    LinkBenchRow {
        link: link.to_string(),
        test: test.to_string(),
        frame_bytes: frame,
        frames,
        seconds: t.wall,
        mb_per_s: (frame * frames) as f64 / t.wall / 1e6,
        us_per_frame: t.wall * 1e6 / frames as f64,
        cpu_seconds: t.cpu,
        cpu_ns_per_byte: t.cpu * 1e9 / (frame * frames * ways) as f64,
    }
}

/// Runs the benchmark.
pub fn bench_link(args: &LinkBenchArgs) -> Result<LinkBench> {
    let frame = args.frame_kib.max(1) << 10;
    let frames = (args.mb * 1_000_000).div_ceil(frame).max(1);
    let rounds = args.rounds.max(1);
    let mut rows = Vec::new();
    for &kind in KINDS {
        if let Some(only) = &args.only {
            if !kind.name.contains(only.as_str()) {
                continue;
            }
        }
        // The fastest wall time, and the least CPU time, of the repetitions.
        let best = |f: &dyn Fn() -> Result<Took>| -> Result<Took> {
            let mut b = Took {
                wall: f64::INFINITY,
                cpu: f64::INFINITY,
            };
            for _ in 0..args.reps.max(1) {
                let t = f()?;
                b.wall = b.wall.min(t.wall);
                b.cpu = b.cpu.min(t.cpu);
            }
            Ok(b)
        };
        let t = best(&|| one_way(kind, frame, frames))?;
        rows.push(row(kind.name, "one-way", frame, frames, 1, t));
        let t = best(&|| duplex(kind, frame, frames))?;
        rows.push(row(kind.name, "duplex", frame, frames, 2, t));
        let t = best(&|| ping_pong(kind, rounds))?;
        rows.push(row(kind.name, "ping-pong", 64, rounds, 2, t));
        let t = best(&|| exchange_small(kind, rounds))?;
        rows.push(row(kind.name, "exchange-1k", 1024, rounds, 2, t));
    }
    let mut ciphers = Vec::new();
    for (name, suite, crypto) in [
        ("aesgcm-ring", Suite::AesGcm, Crypto::Ring),
        ("chachapoly-ring", Suite::ChaChaPoly, Crypto::Ring),
        ("aesgcm-rustcrypto", Suite::AesGcm, Crypto::RustCrypto),
        (
            "chachapoly-rustcrypto",
            Suite::ChaChaPoly,
            Crypto::RustCrypto,
        ),
    ] {
        ciphers.push(cipher_row(name, suite, crypto, args.reps)?);
    }
    Ok(LinkBench {
        cpu: cpu_description(),
        ciphers,
        handshake_ms: handshake_ms()?,
        crc32_gb_per_s: crc_gb_per_s(),
        rows,
    })
}

/// The benchmark as a table.
pub fn print_link_bench(b: &LinkBench) {
    println!("CPU: {}", b.cpu);
    println!(
        "handshake {:.2} ms; frame CRC-32 alone {:.1} GB/s",
        b.handshake_ms, b.crc32_gb_per_s
    );
    println!("record cipher alone (one thread, 65 519-byte records):");
    println!("  {:<24} {:>10} {:>10}", "cipher", "seal GB/s", "open GB/s");
    for c in &b.ciphers {
        println!(
            "  {:<24} {:>10.2} {:>10.2}",
            c.cipher, c.seal_gb_per_s, c.open_gb_per_s
        );
    }
    println!(
        "{:<28} {:<12} {:>8} {:>6} {:>8} {:>7} {:>9} {:>7} {:>8}",
        "link", "test", "frame B", "frames", "seconds", "MB/s", "us/frame", "cpu s", "cpu ns/B"
    );
    for r in &b.rows {
        println!(
            "{:<28} {:<12} {:>8} {:>6} {:>8.3} {:>7.0} {:>9.2} {:>7.2} {:>8.3}",
            r.link,
            r.test,
            r.frame_bytes,
            r.frames,
            r.seconds,
            r.mb_per_s,
            r.us_per_frame,
            r.cpu_seconds,
            r.cpu_ns_per_byte
        );
    }
}
