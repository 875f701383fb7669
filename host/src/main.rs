//! `secformer`: privacy-preserving Transformer inference by two-party computation.
//!
//! Three endpoints: a dealer D that hands out correlated randomness, and two computing
//! parties P0 (model owner) and P1 (data owner). Run `secformer --help` for the commands.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use secformer_core::fxp::Encoding;
use secformer_core::party::PartyId;
use secformer_core::prg::{Prg, Seed};
use secformer_host::app;
use secformer_host::bench::{bench_matmul, MatmulBench};
use secformer_host::jobs::matmul_job;
use secformer_host::model::load_model;
use secformer_host::net::{connect_party, run_dealer_session, PeerAddr, Timeouts};

/// Secure two-party inference for Transformer models (SecFormer), with a dealer.
///
/// Security model: semi-honest parties P0 and P1 and a dealer D that colludes with
/// neither. Research code, not audited.
#[derive(Parser)]
#[command(name = "secformer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the dealer D: accepts P0 and P1, gives each its seed, and streams correlated
    /// randomness (P1's corrections) as the parties consume it.
    Dealer {
        /// Address to listen on, e.g. 127.0.0.1:7000.
        #[arg(long, default_value = "127.0.0.1:7000")]
        listen: String,
        /// Number of sessions to serve before exiting (0 = forever).
        #[arg(long, default_value_t = 1)]
        sessions: u32,
        #[command(flatten)]
        timeouts: TimeoutArgs,
    },
    /// Run one computing party of the weight-product job (X W with W private to P0 and X
    /// private to P1); P1 learns the product.
    Party {
        /// Which party: 0 (holds the weights) or 1 (holds the input, learns the output).
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
        id: u8,
        /// Listen for the other party on this address.
        #[arg(long, conflicts_with = "connect", required_unless_present = "connect")]
        listen: Option<String>,
        /// Connect to the other party at this address.
        #[arg(long)]
        connect: Option<String>,
        /// The dealer's address.
        #[arg(long, default_value = "127.0.0.1:7000")]
        dealer: String,
        /// Rows of X.
        #[arg(long, default_value_t = 128)]
        m: usize,
        /// Columns of X = rows of W.
        #[arg(long, default_value_t = 768)]
        k: usize,
        /// Columns of W.
        #[arg(long, default_value_t = 768)]
        n: usize,
        /// Seed of this party's random demo data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        timeouts: TimeoutArgs,
    },
    /// P0, the model owner: share a BERT checkpoint's weights with one P1 per session
    /// and run its secure inferences. P0 learns nothing about the texts or the results.
    Serve {
        /// Hugging Face BERT directory (config.json, model.safetensors, vocab.txt or
        /// tokenizer.json); default: all-MiniLM-L6-v2, fetched into the cache.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Address to listen on for P1.
        #[arg(long, default_value = "127.0.0.1:7001")]
        listen: String,
        /// The dealer's address.
        #[arg(long, default_value = "127.0.0.1:7000")]
        dealer: String,
        /// Override the softmax: exact (unmodified checkpoints) or 2quad (distilled).
        #[arg(long)]
        softmax: Option<String>,
        /// Sessions to serve before exiting (0 = forever).
        #[arg(long, default_value_t = 1)]
        sessions: u32,
        #[command(flatten)]
        timeouts: TimeoutArgs,
    },
    /// P1, the data owner: tokenize texts locally, run secure inference against P0, and
    /// print the result (only P1 learns it).
    Infer {
        /// Texts to embed or classify (repeatable).
        #[arg(long, required_unless_present = "file")]
        text: Vec<String>,
        /// A file with one text per line.
        #[arg(long)]
        file: Option<PathBuf>,
        /// P1's copy of the model's public files (config and tokenizer; weights unused);
        /// default: all-MiniLM-L6-v2 from the cache. Must be the model P0 serves.
        #[arg(long)]
        model: Option<PathBuf>,
        /// P0's address.
        #[arg(long, default_value = "127.0.0.1:7001")]
        connect: String,
        /// The dealer's address.
        #[arg(long, default_value = "127.0.0.1:7000")]
        dealer: String,
        /// Override the softmax (must match P0's).
        #[arg(long)]
        softmax: Option<String>,
        /// Refuse texts longer than the model's maximum instead of truncating them.
        #[arg(long)]
        no_truncate: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        timeouts: TimeoutArgs,
    },
    /// The plaintext forward of a checkpoint (the reference the secure runs are checked
    /// against).
    Plain {
        /// Model directory (default: all-MiniLM-L6-v2 from the cache).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Texts (repeatable).
        #[arg(long, required = true)]
        text: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Dealer, P0 and P1 on 127.0.0.1 with the default model: secure vs plaintext results
    /// per sentence, time, bytes, rounds and a per-component table.
    Demo {
        /// Model directory (default: all-MiniLM-L6-v2, fetched on first use).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Texts (repeatable; default: five sample sentences).
        #[arg(long)]
        text: Vec<String>,
        /// Override the softmax: exact or 2quad.
        #[arg(long)]
        softmax: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// P0 and the dealer against the Cortex-M4 firmware (P1 of a secure Transformer block)
    /// running under QEMU, over the emulated UART or semihosting; checks the firmware's
    /// result against the plaintext block. See firmware-example/README.md.
    FirmwarePeer {
        #[command(flatten)]
        args: secformer_host::firmware::FirmwarePeerArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks: dealer + P0 + P1 on 127.0.0.1 over real TCP.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// One secure inference of a random BERT of the given shape: total and per-component
    /// time, online bytes per party, dealer bytes, rounds, peak memory.
    Bert {
        /// Encoder layers (BERT-base 12, large 24).
        #[arg(long, default_value_t = 12)]
        layers: usize,
        /// Hidden size (768, 1024).
        #[arg(long, default_value_t = 768)]
        hidden: usize,
        /// Attention heads (12, 16).
        #[arg(long, default_value_t = 12)]
        heads: usize,
        /// FFN size (3072, 4096).
        #[arg(long, default_value_t = 3072)]
        intermediate: usize,
        /// Tokens.
        #[arg(long, default_value_t = 128)]
        seq: usize,
        /// Vocabulary size of the one-hot embedding (BERT: 30522).
        #[arg(long, default_value_t = 30522)]
        vocab: usize,
        /// exact or 2quad.
        #[arg(long, default_value = "2quad")]
        softmax: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The secure weight product (m x k) * (k x n): online time, bytes, rounds and error,
    /// against one plaintext u64 GEMM of the same shape with the same kernel.
    Matmul {
        /// Rows of X (tokens).
        #[arg(long, default_value_t = 128)]
        m: usize,
        /// Inner dimension.
        #[arg(long, default_value_t = 768)]
        k: usize,
        /// Columns of W.
        #[arg(long, default_value_t = 768)]
        n: usize,
        /// Repetitions (the median online time is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// P0 owns W in the clear (the model-owner variant: only P1 sends its half of E,
        /// only P0 multiplies) instead of W being secret-shared.
        #[arg(long)]
        owned: bool,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The nonlinear protocols on the paper's shapes (GeLU 128x3072, LayerNorm 128x768,
    /// softmaxes 12x128x128, reciprocal and rsqrt 128x128, comparison 128x3072, tanh
    /// 128x768): seconds, bytes, dealer bytes, rounds, max and mean |error| against f64.
    Ops {
        /// Divide the shapes by this factor (1 = the paper's shapes).
        #[arg(long, default_value_t = 1)]
        scale: usize,
        /// Run only this op.
        #[arg(long)]
        op: Option<String>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Clone, Copy)]
struct TimeoutArgs {
    /// Seconds to keep retrying connections / waiting for the other endpoints to connect.
    #[arg(long, default_value_t = 30)]
    connect_timeout: u64,
    /// Seconds a read waits for the other side before failing.
    #[arg(long, default_value_t = 120)]
    read_timeout: u64,
}

impl From<TimeoutArgs> for Timeouts {
    fn from(a: TimeoutArgs) -> Self {
        Timeouts {
            connect: Duration::from_secs(a.connect_timeout),
            read: Duration::from_secs(a.read_timeout),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Dealer {
            listen,
            sessions,
            timeouts,
        } => {
            let l = TcpListener::bind(&listen)
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
            eprintln!("dealer: listening on {}", l.local_addr()?);
            let mut served = 0u32;
            loop {
                let mut t: Timeouts = timeouts.into();
                t.connect = Duration::from_secs(u64::MAX / 4);
                let s = run_dealer_session(&l, t)?;
                served += 1;
                eprintln!(
                    "dealer: session {served} done: {} requests, {} bytes to P1, {} bytes to P0",
                    s.requests, s.p1.bytes_sent, s.p0.bytes_sent
                );
                if sessions != 0 && served >= sessions {
                    return Ok(());
                }
            }
        }
        Cmd::Party {
            id,
            listen,
            connect,
            dealer,
            m,
            k,
            n,
            seed,
            json,
            timeouts,
        } => {
            let party = PartyId::from_index(id).expect("clap restricts the id to 0 or 1");
            let peer = match (listen, connect) {
                (Some(l), None) => PeerAddr::Listen(l),
                (None, Some(c)) => PeerAddr::Connect(c),
                _ => bail!("give exactly one of --listen and --connect"),
            };
            let enc = Encoding::default();
            let mut prg = Prg::new(&Seed::from_u64_for_tests(seed), 0);
            let len = if party == PartyId::P0 { k * n } else { m * k };
            let mut data = vec![0u64; len];
            prg.fill(&mut data);
            let data: Vec<u64> = data
                .iter()
                .map(|r| {
                    enc.encode(((*r >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0)
                        .unwrap_or(0)
                })
                .collect();
            let mut s = connect_party(party, &peer, &dealer, timeouts.into())?;
            let (w, x) = if party == PartyId::P0 {
                (Some(&data[..]), None)
            } else {
                (None, Some(&data[..]))
            };
            let r = matmul_job(&mut s, m, k, n, w, x, 1, false)
                .inspect_err(|e| s.abort(&format!("{party} failed: {e}")))?;
            let out_head: Vec<f64> = r
                .output
                .as_ref()
                .map(|o| o.iter().take(4).map(|v| enc.decode(*v)).collect())
                .unwrap_or_default();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "party": id,
                        "online_seconds": r.online_seconds,
                        "online_bytes": r.online.bytes_sent,
                        "rounds": r.online.rounds,
                        "dealer_bytes": r.dealer.bytes_received,
                        "output_head": out_head,
                    })
                );
            } else {
                println!(
                    "{party}: online {:.4} s, {} bytes sent, {} rounds; dealer traffic {} bytes",
                    r.online_seconds, r.online.bytes_sent, r.online.rounds, r.dealer.bytes_received
                );
                if !out_head.is_empty() {
                    println!("{party}: output[0..4] = {out_head:?}");
                }
            }
            Ok(())
        }
        Cmd::Serve {
            model,
            listen,
            dealer,
            softmax,
            sessions,
            timeouts,
        } => {
            let dir = app::resolve_model(model.as_deref())?;
            let pb = app::progress(1, "loading the model");
            let mut m = load_model(&dir)
                .with_context(|| format!("loading the model from {}", dir.display()))?;
            pb.finish_and_clear();
            app::apply_softmax_flag(&mut m.config, softmax.as_deref())?;
            let l = TcpListener::bind(&listen)
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
            eprintln!("P0: serving {} on {}", dir.display(), l.local_addr()?);
            let mut served = 0u32;
            loop {
                let mut t: Timeouts = timeouts.into();
                t.connect = Duration::from_secs(u64::MAX / 4);
                app::serve_session(&m, &PeerAddr::Bound(l.try_clone()?), &dealer, t)?;
                served += 1;
                eprintln!("P0: session {served} done");
                if sessions != 0 && served >= sessions {
                    return Ok(());
                }
            }
        }
        Cmd::Infer {
            text,
            file,
            model,
            connect,
            dealer,
            softmax,
            no_truncate,
            json,
            timeouts,
        } => {
            let dir = app::resolve_model(model.as_deref())?;
            let (mut cfg, tok) = app::load_public(&dir)?;
            app::apply_softmax_flag(&mut cfg, softmax.as_deref())?;
            let mut texts = text;
            if let Some(f) = file {
                let s = std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?;
                texts.extend(s.lines().filter(|l| !l.trim().is_empty()).map(String::from));
            }
            if texts.is_empty() {
                bail!("no text to process (give --text or a non-empty --file)");
            }
            let long = if no_truncate {
                app::LongText::Refuse
            } else {
                app::LongText::Truncate
            };
            let encs = app::encode_texts(&tok, &texts, long)?;
            let res = app::infer_session(
                &cfg,
                &tok,
                &encs,
                &PeerAddr::Connect(connect),
                &dealer,
                timeouts.into(),
            )?;
            let outs: Vec<serde_json::Value> = texts
                .iter()
                .zip(&res)
                .map(|(t, r)| {
                    let emb = r.pooled.as_ref().map(|p| if cfg.normalize { secformer_host::model::plain::l2_normalize(p) } else { p.clone() });
                    serde_json::json!({
                        "text": t,
                        "tokens": r.tokens,
                        "embedding": emb,
                        "logits": r.logits,
                        "label": r.logits.as_ref().and_then(|l| {
                            let i = l.iter().enumerate().fold(0, |b, (i, x)| if *x > l[b] { i } else { b });
                            cfg.labels.get(i).cloned()
                        }),
                        "online_seconds": r.online_seconds,
                        "online_bytes_per_party": r.online.bytes_sent,
                        "rounds": r.online.rounds,
                    })
                })
                .collect();
            if json {
                println!("{}", serde_json::Value::Array(outs));
            } else {
                for o in outs {
                    let head: Vec<String> = o["embedding"]
                        .as_array()
                        .or(o["logits"].as_array())
                        .map(|v| {
                            v.iter()
                                .take(6)
                                .map(|x| format!("{:.4}", x.as_f64().unwrap_or(0.0)))
                                .collect()
                        })
                        .unwrap_or_default();
                    println!(
                        "{} tokens, {:.2} s online, {} bytes, {} rounds: [{}, ...]{}  {}",
                        o["tokens"],
                        o["online_seconds"].as_f64().unwrap_or(0.0),
                        o["online_bytes_per_party"],
                        o["rounds"],
                        head.join(", "),
                        o["label"]
                            .as_str()
                            .map(|l| format!(" label {l}"))
                            .unwrap_or_default(),
                        o["text"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(())
        }
        Cmd::Plain { model, text, json } => {
            let dir = app::resolve_model(model.as_deref())?;
            let m = load_model(&dir)
                .with_context(|| format!("loading the model from {}", dir.display()))?;
            let mut outs = Vec::new();
            for t in &text {
                let enc = m.tokenizer.encode(t);
                let o = secformer_host::model::plain::try_forward(&m, &enc)?;
                outs.push(serde_json::json!({"text": t, "tokens": enc.ids.len(), "embedding": o.pooled, "logits": o.logits}));
            }
            if json {
                println!("{}", serde_json::Value::Array(outs));
            } else {
                for o in outs {
                    let v = o["logits"]
                        .as_array()
                        .or(o["embedding"].as_array())
                        .cloned()
                        .unwrap_or_default();
                    let head: Vec<String> = v
                        .iter()
                        .take(6)
                        .map(|x| format!("{:.4}", x.as_f64().unwrap_or(0.0)))
                        .collect();
                    println!(
                        "{} tokens: [{}, ...]  {}",
                        o["tokens"],
                        head.join(", "),
                        o["text"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(())
        }
        Cmd::Demo {
            model,
            text,
            softmax,
            json,
        } => {
            let dir = app::resolve_model(model.as_deref())?;
            let texts: Vec<String> = if text.is_empty() {
                app::DEMO_SENTENCES.iter().map(|s| s.to_string()).collect()
            } else {
                text
            };
            let rep = app::demo(&dir, &texts, softmax.as_deref())?;
            if json {
                let results: Vec<serde_json::Value> = rep
                    .results
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "text": r.text,
                            "tokens": r.tokens,
                            "agreement": r.agreement,
                            "max_abs_diff": r.max_abs_diff,
                            "online_seconds": r.online_seconds,
                            "offline_seconds": r.offline_seconds,
                            "online_bytes_per_party": r.online_bytes_per_party,
                            "dealer_bytes": r.dealer_bytes,
                            "rounds": r.rounds,
                            "components": r.components,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"model": rep.model, "softmax": rep.softmax, "results": results})
                );
            } else {
                print_demo(&rep);
            }
            Ok(())
        }
        Cmd::FirmwarePeer { args, json } => {
            let opts = args.options()?;
            let rep = secformer_host::firmware::run_firmware_peer(&opts)?;
            if json {
                println!("{}", serde_json::to_string(&rep)?);
            } else {
                println!("{}", rep.summary());
            }
            Ok(())
        }
        Cmd::Bench { what } => match what {
            BenchCmd::Bert {
                layers,
                hidden,
                heads,
                intermediate,
                seq,
                vocab,
                softmax,
                json,
            } => {
                let b = app::bench_bert(layers, hidden, heads, intermediate, seq, vocab, &softmax)?;
                if json {
                    println!("{}", serde_json::to_string(&b)?);
                } else {
                    print_bert(&b);
                }
                Ok(())
            }
            BenchCmd::Matmul {
                m,
                k,
                n,
                reps,
                owned,
                json,
            } => {
                let b = bench_matmul(m, k, n, reps, owned)?;
                if json {
                    println!("{}", serde_json::to_string(&b)?);
                } else {
                    print_matmul(&b);
                }
                Ok(())
            }
            BenchCmd::Ops { scale, op, json } => {
                let rows = secformer_host::ops::bench_ops(scale, op.as_deref())?;
                if json {
                    println!("{}", serde_json::to_string(&rows)?);
                } else {
                    println!(
                        "{:<14} {:>10} {:>9} {:>14} {:>13} {:>7} {:>10} {:>10} {:>9}",
                        "op",
                        "shape",
                        "seconds",
                        "bytes/party",
                        "dealer bytes",
                        "rounds",
                        "max err",
                        "mean err",
                        "bits/elt"
                    );
                    for r in rows {
                        println!(
                            "{:<14} {:>10} {:>9.3} {:>14} {:>13} {:>7} {:>10.2e} {:>10.2e} {:>9.0}",
                            r.op,
                            r.shape,
                            r.seconds,
                            r.online_bytes_per_party,
                            r.dealer_bytes,
                            r.rounds,
                            r.max_abs_error,
                            r.mean_abs_error,
                            r.online_bytes_per_party as f64 * 8.0 / r.elements as f64
                        );
                    }
                }
                Ok(())
            }
        },
    }
}

fn print_components(c: &secformer_host::secure::Components) {
    println!(
        "  {:<10} {:>10} {:>14} {:>8}",
        "component", "seconds", "bytes/party", "rounds"
    );
    for (name, x) in [
        ("Linear", c.linear),
        ("Softmax", c.softmax),
        ("GeLU", c.gelu),
        ("LayerNorm", c.layernorm),
        ("Others", c.others),
    ] {
        println!(
            "  {:<10} {:>10.3} {:>14} {:>8}",
            name, x.seconds, x.bytes, x.rounds
        );
    }
}

fn print_demo(rep: &app::DemoReport) {
    println!("model {} (softmax {})", rep.model, rep.softmax);
    println!(
        "{:>6} {:>10} {:>10} {:>9} {:>13} {:>7}  text",
        "tokens", "agreement", "max diff", "online s", "bytes/party", "rounds"
    );
    let mut total = secformer_host::secure::Components::default();
    for r in &rep.results {
        println!(
            "{:>6} {:>10.6} {:>10.2e} {:>9.3} {:>13} {:>7}  {}",
            r.tokens,
            r.agreement,
            r.max_abs_diff,
            r.online_seconds,
            r.online_bytes_per_party,
            r.rounds,
            r.text
        );
        let c = r.components;
        for (a, b) in [
            (&mut total.linear, c.linear),
            (&mut total.softmax, c.softmax),
            (&mut total.gelu, c.gelu),
            (&mut total.layernorm, c.layernorm),
            (&mut total.others, c.others),
        ] {
            a.seconds += b.seconds;
            a.bytes += b.bytes;
            a.rounds += b.rounds;
        }
    }
    println!("per component, all sentences (P1):");
    print_components(&total);
}

fn print_bert(b: &app::BertBench) {
    println!(
        "secure BERT: {} layers, hidden {}, {} heads, FFN {}, {} tokens, vocab {}, softmax {}",
        b.layers, b.hidden, b.heads, b.intermediate, b.seq, b.vocab, b.softmax
    );
    println!("  {:<34} {:>14.3}", "online seconds", b.online_seconds);
    println!(
        "  {:<34} {:>14.3}",
        "offline (prepare) seconds", b.offline_seconds
    );
    println!(
        "  {:<34} {:>14.3}",
        "one-time weight setup seconds", b.setup_seconds
    );
    println!(
        "  {:<34} {:>14}",
        "online bytes per party", b.online_bytes_per_party
    );
    println!("  {:<34} {:>14}", "dealer bytes (to P1)", b.dealer_bytes);
    println!("  {:<34} {:>14}", "online rounds", b.rounds);
    println!(
        "  {:<34} {:>14.0}",
        "peak memory, whole process (MiB)", b.peak_memory_mib
    );
    print_components(&b.components);
}

fn print_matmul(b: &MatmulBench) {
    println!(
        "secure weight product ({}x{}) * ({}x{}), kernel {}, {} reps",
        b.m, b.k, b.k, b.n, b.kernel, b.reps
    );
    println!(
        "  {:<34} {:>14}",
        "online seconds (slowest party)",
        format!("{:.4}", b.online_seconds)
    );
    println!(
        "  {:<34} {:>14}",
        "online seconds P0 / P1",
        format!(
            "{:.4} / {:.4}",
            b.online_seconds_per_party[0], b.online_seconds_per_party[1]
        )
    );
    println!(
        "  {:<34} {:>14}",
        "plaintext u64 GEMM seconds",
        format!("{:.4}", b.plain_gemm_seconds)
    );
    println!(
        "  {:<34} {:>14}",
        "overhead (online / GEMM)",
        format!("{:.2}x", b.overhead_ratio)
    );
    println!(
        "  {:<34} {:>14}",
        "transfer of E alone seconds",
        format!("{:.4}", b.e_transfer_seconds)
    );
    println!(
        "  {:<34} {:>14}",
        "GEMM alone, both parties at once",
        format!("{:.4}", b.concurrent_gemm_seconds)
    );
    println!(
        "  {:<34} {:>14}",
        "overhead excluding E transfer",
        format!("{:.2}x", b.overhead_ratio_excluding_transfer)
    );
    println!(
        "  {:<34} {:>14}",
        "online bytes per party", b.online_bytes_per_party
    );
    println!("  {:<34} {:>14}", "online rounds", b.rounds);
    println!(
        "  {:<34} {:>14}",
        "dealer bytes per inference", b.dealer_bytes
    );
    println!(
        "  {:<34} {:>14}",
        "offline prepare seconds",
        format!("{:.4}", b.prepare_seconds)
    );
    println!(
        "  {:<34} {:>14}",
        "one-time weight setup seconds",
        format!("{:.4}", b.setup_seconds)
    );
    println!(
        "  {:<34} {:>14}",
        "max |error| (real units)",
        format!("{:.3e}", b.max_abs_error)
    );
}
