//! `secformer bench bert`: a random BERT served by three processes (D, P0, P1) as
//! deployed, over loopback or a simulated LAN/WAN. The bench waits until the pool is warm,
//! pauses refilling, measures one online pass, resumes, and repeats; it reports the
//! median, every run, and each process's peak memory, and checks the revealed output
//! against the plaintext forward of the same model.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde::Serialize;

use super::infer::BenchReport;
use super::{cpu_description, peak_rss_mib, synthetic_ids, SyntheticArgs};
use crate::bert::profile::Components;
use crate::model::{plain, BertWeights};
use crate::netsim::{self, Net, Node, Sim};

/// One secure inference of a random BERT of the given shape, three processes: online and
/// offline time, bytes, rounds, peak memory per process, accuracy against plaintext.
#[derive(Args, Debug)]
pub struct BenchBertArgs {
    #[command(flatten)]
    /// The random model (benchmarks).
    pub shape: SyntheticArgs,
    /// exact or 2quad.
    #[arg(long, default_value = "2quad")]
    pub softmax: String,
    /// Tokens per text.
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Texts per pass.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Measured passes (the median is `online_seconds`).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Network: loopback, or a simulated lan (1 Gbit/s, 0.25 ms each way) or wan
    /// (100 Mbit/s, 20 ms each way): network namespaces with tc netem as root, else shaped
    /// userspace relays.
    #[arg(long, value_enum, default_value = "loopback")]
    pub net: Net,
    /// Passes prepared ahead (the pool depth).
    #[arg(long = "pool", default_value_t = 1)]
    pub depth: usize,
    /// MiB of prepared passes each party keeps in memory (beyond: files).
    #[arg(long)]
    pub pool_memory: Option<u64>,
    /// Where passes beyond the budget go (default: the bench's temporary directory,
    /// removed when it ends).
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
    /// Reveal the token count (no padding mask) instead of padding with a secret mask.
    #[arg(long)]
    pub exact_length: bool,
    /// Instead of paused single passes, run this many passes back to back with the
    /// preparers working between them, and report the sustained rate.
    #[arg(long)]
    pub stream: Option<usize>,
    /// Run the three links unauthenticated and unencrypted (to measure what the
    /// encryption costs; never for real data).
    #[arg(long)]
    pub insecure: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Peak resident memory per process, MiB.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PeakRss {
    /// D.
    pub dealer: f64,
    /// P0.
    pub p0: f64,
    /// P1.
    pub p1: f64,
}

/// The pool set-up of the run.
#[derive(Debug, Clone, Serialize)]
pub struct PoolInfo {
    /// Passes prepared ahead.
    pub depth: usize,
    /// Tokens per text after padding.
    pub bucket: usize,
    /// Texts per pass.
    pub batch: usize,
    /// "secret" (padding mask) or "public" (exact length).
    pub lengths: String,
}

/// `secformer bench bert --json`.
#[derive(Debug, Clone, Serialize)]
pub struct BertBench {
    /// Layers.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Heads.
    pub heads: usize,
    /// FFN size.
    pub intermediate: usize,
    /// Tokens per text.
    pub seq: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// "exact" or "2quad".
    pub softmax: String,
    /// OS processes (D, P0, P1).
    pub processes: usize,
    /// The network.
    pub net: Net,
    /// The links: `noise` (mutually authenticated, encrypted) or `insecure`.
    pub links: String,
    /// What shaped it: `netem` (namespaces), `relay` (userspace), `none` (loopback).
    pub net_emulation: String,
    /// CPU and kernel.
    pub cpu: String,
    /// Median online seconds of the measured passes (P1: sharing to revealed result).
    pub online_seconds: f64,
    /// Every measured pass's online seconds.
    pub online_seconds_all: Vec<f64>,
    /// Seconds to draw one pass (the slower party; offline, before the input).
    pub offline_seconds: f64,
    /// Online wire bytes sent by each party (the larger).
    pub online_bytes_per_party: u64,
    /// Bytes on either party's dealer link during the online phase (both directions).
    pub online_dealer_bytes: u64,
    /// Bytes D sent P1 per inference (offline).
    pub dealer_bytes: u64,
    /// Sequential exchanges on the critical path (the larger party's rounds).
    pub rounds: u64,
    /// Per-component online costs (P1).
    pub components: Components,
    /// One-time setup seconds (P1's view).
    pub setup_seconds: f64,
    /// Peak resident memory of each process, MiB.
    pub peak_rss_mib: PeakRss,
    /// The pool.
    pub pool: PoolInfo,
    /// Max |secure - plaintext| over the revealed output.
    pub max_abs_error: f64,
    /// With `--stream`: passes per minute sustained, offline and online together.
    pub inferences_per_minute: Option<f64>,
}

struct Children {
    procs: Vec<(Node, Child)>,
    rss: PeakRss,
}

impl Children {
    fn poll_rss(&mut self) {
        for (n, c) in &self.procs {
            let v = peak_rss_mib(Some(c.id()));
            let slot = match n {
                Node::Dealer => &mut self.rss.dealer,
                Node::P0 => &mut self.rss.p0,
                Node::P1 => &mut self.rss.p1,
            };
            *slot = slot.max(v);
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(sim: Option<&Sim>, node: Node, args: &[String], stdout: bool) -> Result<Child> {
    let exe = std::env::current_exe().context("locating the secformer binary")?;
    let mut c = match sim {
        Some(s) => s.command(node, &exe),
        None => Command::new(&exe),
    };
    c.args(args)
        .stdin(Stdio::null())
        .stdout(if stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::inherit())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        );
    c.spawn().with_context(|| format!("starting {node:?}"))
}

fn wait_port(path: &Path, child: &mut Child, what: &str) -> Result<u16> {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            let port = s.rsplit(':').next().and_then(|p| p.trim().parse().ok());
            if let Some(p) = port {
                return Ok(p);
            }
        }
        if let Some(st) = child.try_wait()? {
            bail!("{what} exited ({st}) before listening");
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!("{what} did not start listening within 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fresh key files for the three processes (as deployed, but ephemeral), or none with
/// `--insecure`.
struct Keys(Option<PathBuf>);

impl Keys {
    /// `--key` and `--trust` flags of `name` (trusting the other two), or `--insecure`.
    fn args(&self, name: &str) -> Vec<String> {
        let Some(dir) = &self.0 else {
            return vec!["--insecure".into()];
        };
        let mut v = vec![
            "--key".into(),
            dir.join(format!("{name}.key")).display().to_string(),
        ];
        for other in ["dealer", "p0", "p1"].iter().filter(|o| **o != name) {
            v.push("--trust".into());
            v.push(dir.join(format!("{other}.pub")).display().to_string());
        }
        v
    }
}

fn ephemeral_keys(dir: &Path, insecure: bool) -> Result<Keys> {
    if insecure {
        return Ok(Keys(None));
    }
    for name in ["dealer", "p0", "p1"] {
        crate::link::Identity::generate(name)?.save(dir, false)?;
    }
    Ok(Keys(Some(dir.to_path_buf())))
}

/// The address at which `from` reaches `to` listening on `port`.
fn route(sim: Option<&mut Sim>, from: Node, to: Node, port: u16) -> Result<String> {
    match sim {
        Some(s) => s.route(from, to, port),
        None => Ok(format!("127.0.0.1:{port}")),
    }
}

/// Runs the benchmark.
pub fn bench(a: &BenchBertArgs) -> Result<BertBench> {
    let cfg = a.shape.config(Some(&a.softmax))?;
    if a.seq == 0 || a.seq > cfg.max_position_embeddings || a.batch == 0 || a.reps == 0 {
        bail!(
            "--seq must be in 1..={}, --batch and --reps at least 1",
            cfg.max_position_embeddings
        );
    }
    let mut sim = netsim::setup(a.net)?;
    let tmp = tempfile::tempdir()?;
    let keys = ephemeral_keys(tmp.path(), a.insecure)?;
    let listen = sim.as_ref().map_or("127.0.0.1:0", |s| s.listen());
    let mut kids = Children {
        procs: Vec::new(),
        rss: PeakRss::default(),
    };
    let mut pool_args = vec!["--pool".to_string(), a.depth.to_string()];
    if let Some(m) = a.pool_memory {
        pool_args.extend(["--pool-memory".into(), m.to_string()]);
    }
    // Spilled passes go to the bench's own directory by default, removed when it ends
    // (whatever state the processes end in).
    let spill = a
        .spill_dir
        .clone()
        .unwrap_or_else(|| tmp.path().join("spill"));
    pool_args.extend(["--spill-dir".into(), spill.display().to_string()]);
    let dport_file = tmp.path().join("dealer.port");
    let mut d = spawn(
        sim.as_ref(),
        Node::Dealer,
        &[
            "dealer".into(),
            "--listen".into(),
            listen.into(),
            "--sessions".into(),
            "1".into(),
            "--port-file".into(),
            dport_file.display().to_string(),
            // A pass of preprocessing over a simulated WAN takes minutes (P1's material
            // streams from D at the link's rate), longer than the default read timeout.
            "--read-timeout".into(),
            "3600".into(),
        ]
        .into_iter()
        .chain(keys.args("dealer"))
        .collect::<Vec<_>>(),
        false,
    )?;
    let dport = wait_port(&dport_file, &mut d, "the dealer")?;
    kids.procs.push((Node::Dealer, d));
    let p0_file = tmp.path().join("p0.port");
    let mut serve: Vec<String> = vec![
        "serve".into(),
        "--synthetic".into(),
        "--listen".into(),
        listen.into(),
        "--sessions".into(),
        "1".into(),
        "--max-sessions".into(),
        "1".into(),
        "--dealer".into(),
        route(sim.as_mut(), Node::P0, Node::Dealer, dport)?,
        "--port-file".into(),
        p0_file.display().to_string(),
        "--read-timeout".into(),
        "3600".into(),
    ];
    serve.extend(keys.args("p0"));
    serve.extend(a.shape.to_args());
    serve.extend(["--softmax".into(), a.softmax.clone()]);
    serve.extend(pool_args.iter().cloned());
    let mut p0 = spawn(sim.as_ref(), Node::P0, &serve, false)?;
    let p0port = wait_port(&p0_file, &mut p0, "P0")?;
    kids.procs.push((Node::P0, p0));
    let mut infer: Vec<String> = vec![
        "infer".into(),
        "--no-keep".into(),
        "--synthetic".into(),
        "--tokens".into(),
        a.seq.to_string(),
        "--batch".into(),
        a.batch.to_string(),
        "--connect".into(),
        route(sim.as_mut(), Node::P1, Node::P0, p0port)?,
        "--dealer".into(),
        route(sim.as_mut(), Node::P1, Node::Dealer, dport)?,
        "--read-timeout".into(),
        "3600".into(),
    ];
    match a.stream {
        Some(n) => infer.extend(["--stream".into(), n.to_string()]),
        None => infer.extend(["--bench".into(), a.reps.to_string()]),
    }
    if a.exact_length {
        infer.push("--exact-length".into());
    }
    infer.extend(keys.args("p1"));
    infer.extend(a.shape.to_args());
    infer.extend(["--softmax".into(), a.softmax.clone()]);
    infer.extend(pool_args);
    let p1 = spawn(sim.as_ref(), Node::P1, &infer, true)?;
    kids.procs.push((Node::P1, p1));
    let out = wait_p1(&mut kids)?;
    let report: BenchReport = serde_json::from_str(&out)
        .with_context(|| format!("P1's report is not JSON: {out:.200}"))?;
    finish(&mut kids);
    let rss = kids.rss;
    drop(kids);
    let emulation = sim.as_ref().map_or("none", |s| s.emulation());
    drop(sim);
    summarize(a, &cfg, report, rss, emulation)
}

/// Waits for P1 (polling every process's peak memory) and returns its stdout.
fn wait_p1(kids: &mut Children) -> Result<String> {
    use std::io::Read;
    let mut stdout = kids.procs[2]
        .1
        .stdout
        .take()
        .ok_or_else(|| anyhow!("P1's output is not captured"))?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    loop {
        kids.poll_rss();
        if let Some(st) = kids.procs[2].1.try_wait()? {
            let out = reader
                .join()
                .map_err(|_| anyhow!("reading P1's output failed"))?;
            if !st.success() {
                bail!("P1 failed ({st})");
            }
            return Ok(out);
        }
        for (n, c) in kids.procs.iter_mut().take(2) {
            if let Some(st) = c.try_wait()? {
                if !st.success() {
                    bail!("{n:?} failed ({st})");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Lets D and P0 end their session, polling their memory until they exit.
fn finish(kids: &mut Children) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        kids.poll_rss();
        let done = kids.procs[..2]
            .iter_mut()
            .all(|(_, c)| matches!(c.try_wait(), Ok(Some(_))));
        if done {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

fn summarize(
    a: &BenchBertArgs,
    cfg: &crate::model::BertConfig,
    r: BenchReport,
    rss: PeakRss,
    emulation: &str,
) -> Result<BertBench> {
    let last = r
        .passes
        .last()
        .ok_or_else(|| anyhow!("P1 reported no pass"))?;
    let w = BertWeights::random(cfg, a.shape.model_seed);
    let enc = synthetic_ids(a.seq, cfg.vocab_size);
    let want = plain::try_forward_weights(cfg, &w, &enc)?.pooled_raw;
    let mut err: f64 = 0.0;
    for out in &last.outputs {
        for (x, y) in out.iter().zip(&want) {
            err = err.max((x - *y as f64).abs());
        }
    }
    let online: Vec<f64> = r.passes.iter().map(|p| p.online_seconds).collect();
    let offline: Vec<f64> = r
        .passes
        .iter()
        .map(|p| p.offline_seconds[0].max(p.offline_seconds[1]))
        .collect();
    Ok(BertBench {
        layers: cfg.num_hidden_layers,
        hidden: cfg.hidden_size,
        heads: cfg.num_attention_heads,
        intermediate: cfg.intermediate_size,
        seq: a.seq,
        vocab: cfg.vocab_size,
        softmax: a.softmax.clone(),
        processes: 3,
        net: a.net,
        links: if a.insecure { "insecure" } else { "noise" }.into(),
        net_emulation: emulation.into(),
        cpu: cpu_description(),
        online_seconds: median(&online),
        online_seconds_all: online,
        offline_seconds: median(&offline),
        online_bytes_per_party: r
            .passes
            .iter()
            .map(|p| p.online.bytes_sent.max(p.p0_online.bytes_sent))
            .max()
            .unwrap_or(0),
        online_dealer_bytes: r.passes.iter().map(|p| p.online_dealer_bytes).sum(),
        dealer_bytes: last.dealer_bytes,
        rounds: last.online.rounds.max(last.p0_online.rounds),
        components: last.components,
        setup_seconds: r.setup_seconds,
        peak_rss_mib: PeakRss {
            p1: rss.p1.max(r.peak_rss_mib),
            ..rss
        },
        pool: PoolInfo {
            depth: a.depth,
            bucket: last.shape.bucket,
            batch: last.shape.batch,
            lengths: if a.exact_length { "public" } else { "secret" }.into(),
        },
        max_abs_error: err,
        inferences_per_minute: r.inferences_per_minute,
    })
}

/// Runs the command.
pub fn run_cmd(a: BenchBertArgs) -> Result<()> {
    let b = bench(&a)?;
    if a.json {
        println!("{}", serde_json::to_string(&b)?);
        return Ok(());
    }
    println!(
        "secure BERT: {} layers, hidden {}, {} heads, FFN {}, {} tokens (bucket {}), vocab {}, softmax {}, {:?}, 3 processes, {}",
        b.layers, b.hidden, b.heads, b.intermediate, b.seq, b.pool.bucket, b.vocab, b.softmax, b.net, b.cpu
    );
    let rows: [(&str, String); 11] = [
        (
            "online seconds (median)",
            format!("{:.3}", b.online_seconds),
        ),
        (
            "online seconds (all)",
            format!(
                "{:?}",
                b.online_seconds_all
                    .iter()
                    .map(|x| (x * 1000.0).round() / 1000.0)
                    .collect::<Vec<_>>()
            ),
        ),
        (
            "offline seconds per inference",
            format!("{:.3}", b.offline_seconds),
        ),
        ("one-time setup seconds", format!("{:.3}", b.setup_seconds)),
        (
            "online bytes per party",
            b.online_bytes_per_party.to_string(),
        ),
        ("dealer bytes online", b.online_dealer_bytes.to_string()),
        ("dealer bytes per inference", b.dealer_bytes.to_string()),
        ("online rounds", b.rounds.to_string()),
        (
            "peak RSS MiB (D / P0 / P1)",
            format!(
                "{:.0} / {:.0} / {:.0}",
                b.peak_rss_mib.dealer, b.peak_rss_mib.p0, b.peak_rss_mib.p1
            ),
        ),
        (
            "max |error| vs plaintext",
            format!("{:.2e}", b.max_abs_error),
        ),
        (
            "inferences per minute",
            b.inferences_per_minute
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into()),
        ),
    ];
    for (k, v) in rows {
        println!("  {k:<32} {v:>20}");
    }
    super::demo::print_components(&b.components);
    Ok(())
}
