//! `secformer infer`: P1, the data owner's client.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use super::{
    encode_texts, load_public, progress, resolve_model, synthetic_ids, LengthArgs, LinkArgs,
    LongText, PoolArgs, SyntheticArgs, TimeoutArgs,
};
use crate::bert::p1::PassResult;
use crate::bert::ModelShape;
use crate::model::fingerprint::model_info;
use crate::model::plain::l2_normalize;
use crate::model::Encoding;
use crate::service::client::{Client, ClientConfig, Progress};

/// P1, the data owner: tokenizes texts locally, runs secure inference with P0 and D, and
/// prints the results (only P1 learns them).
#[derive(Args, Debug)]
pub struct InferArgs {
    /// Texts to embed or classify (repeatable).
    #[arg(long, required_unless_present_any = ["file", "synthetic"])]
    pub text: Vec<String>,
    /// A file with one text per line.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// P1's copy of the model's public files (config and tokenizer; weights unused);
    /// default: all-MiniLM-L6-v2 from the cache. Must be the model P0 serves.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// P0's address.
    #[arg(long, default_value = "127.0.0.1:7001")]
    pub connect: String,
    /// The dealer's address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub dealer: String,
    /// Override the softmax (must match P0's).
    #[arg(long)]
    pub softmax: Option<String>,
    /// Texts per forward pass (padded to a common bucket with secret masks).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Refuse texts longer than the model's maximum instead of truncating them.
    #[arg(long)]
    pub no_truncate: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Do not keep the session for the next run (by default P1, P0 and D keep it, so the
    /// next `infer` against the same server resumes without receiving the weights again;
    /// P1's side is kept under $SECFORMER_STATE, else ~/.local/state/secformer/sessions).
    #[arg(long)]
    pub no_keep: bool,
    #[command(flatten)]
    /// Padding and buckets.
    pub lengths: LengthArgs,
    #[command(flatten)]
    /// The preprocessing pool.
    pub pool: PoolArgs,
    /// Use a random model of this shape (benchmarks; P0 serves the same).
    #[arg(long, hide = true)]
    pub synthetic: bool,
    #[command(flatten)]
    /// The random model (benchmarks).
    pub shape: SyntheticArgs,
    /// With --synthetic: tokens of the (generated) input.
    #[arg(long, hide = true, default_value_t = 128)]
    pub tokens: usize,
    /// Benchmark mode: wait until the pool is warm, pause refilling, run one pass, and
    /// repeat this many times; print the benchmark JSON.
    #[arg(long, hide = true)]
    pub bench: Option<usize>,
    /// Throughput mode: after warming up, run this many passes back to back (the
    /// preparers refill between them) and report the sustained rate.
    #[arg(long, hide = true)]
    pub stream: Option<usize>,
    #[command(flatten)]
    /// Timeouts.
    pub timeouts: TimeoutArgs,
    #[command(flatten)]
    /// Keys and trusted peers (or --insecure).
    pub link: LinkArgs,
}

struct Inputs {
    shape: ModelShape,
    info: crate::model::fingerprint::ModelInfo,
    texts: Vec<String>,
    encs: Vec<Encoding>,
    normalize: bool,
    labels: Vec<String>,
}

fn inputs(a: &InferArgs) -> Result<Inputs> {
    if a.synthetic {
        let cfg = a.shape.config(a.softmax.as_deref())?;
        let enc = synthetic_ids(
            a.tokens.clamp(1, cfg.max_position_embeddings),
            cfg.vocab_size,
        );
        return Ok(Inputs {
            shape: ModelShape::of(&cfg),
            info: model_info(&cfg, None),
            texts: vec![format!("<{} synthetic tokens>", enc.ids.len())],
            encs: vec![enc],
            normalize: false,
            labels: Vec::new(),
        });
    }
    let dir = resolve_model(a.model.as_deref())?;
    let (cfg, tok, info) = load_public(&dir, a.softmax.as_deref())?;
    let mut texts = a.text.clone();
    if let Some(f) = &a.file {
        let s = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        texts.extend(s.lines().filter(|l| !l.trim().is_empty()).map(String::from));
    }
    if texts.is_empty() {
        bail!("no text to process (give --text or a non-empty --file)");
    }
    let long = if a.no_truncate {
        LongText::Refuse
    } else {
        LongText::Truncate
    };
    let encs = encode_texts(&tok, &texts, long)?;
    Ok(Inputs {
        shape: ModelShape::of(&cfg),
        info,
        texts,
        encs,
        normalize: cfg.normalize,
        labels: cfg.labels.clone(),
    })
}

fn config(a: &InferArgs, shape: &ModelShape) -> Result<ClientConfig> {
    Ok(ClientConfig {
        server: a.connect.clone(),
        dealer: a.dealer.clone(),
        endpoint: a.timeouts.endpoint(&a.link)?,
        memory_budget: a.pool.memory_budget(),
        spill_dir: a.pool.spill_dir(),
        p1: a.lengths.options(shape, a.pool.depth)?,
        sessions: (!a.no_keep).then(super::sessions_dir),
    })
}

/// Runs the command.
pub fn run_cmd(a: InferArgs) -> Result<()> {
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let inp = inputs(&a)?;
    let cfg = config(&a, &inp.shape)?;
    let pb = progress(1, "setting up the session");
    let mut client = Client::connect(&cfg, &inp.shape, &inp.info, |p| match p {
        Progress::Queued(n) => {
            pb.set_message(format!("queued at P0 ({n} ahead)"));
            if pb.is_hidden() {
                eprintln!("queued at P0: {n} session(s) ahead");
            }
        }
        Progress::Setup(i, n) => {
            pb.set_message("receiving the setup");
            pb.set_length(n as u64);
            pb.set_position(i as u64);
        }
    })?;
    pb.finish_and_clear();
    if client.resumed {
        eprintln!(
            "resumed the kept session {:016x} in {:.2} s (no setup)",
            client.session, client.setup_seconds
        );
    } else {
        eprintln!(
            "new session {:016x}: setup took {:.2} s",
            client.session, client.setup_seconds
        );
    }
    if a.bench.is_some() || a.stream.is_some() {
        let r = bench(&mut client, &inp, a.batch, a.bench, a.stream);
        client.close()?;
        println!("{}", serde_json::to_string(&r?)?);
        return Ok(());
    }
    let mut results = Vec::new();
    for chunk in inp.encs.chunks(a.batch) {
        let texts: Vec<&Encoding> = chunk.iter().collect();
        let shape = client.shape_for(&texts, a.batch)?;
        results.push(client.infer(shape, &texts)?);
    }
    // Results first: closing keeps the session (saving its state and the next prepared
    // pass), which the user need not wait for to see them.
    print_results(&a, &inp, &results)?;
    client.close()
}

fn print_results(a: &InferArgs, inp: &Inputs, results: &[PassResult]) -> Result<()> {
    let outs = results
        .iter()
        .flat_map(|r| r.outputs.iter().map(move |o| (r, o)));
    let mut rows = Vec::new();
    for ((text, enc), (r, out)) in inp.texts.iter().zip(&inp.encs).zip(outs) {
        let (embedding, logits, label) = if inp.labels.is_empty() {
            let e = if inp.normalize {
                l2_normalize(out)
            } else {
                out.clone()
            };
            (Some(e), None, None)
        } else {
            let i = out
                .iter()
                .enumerate()
                .fold(0, |b, (i, x)| if *x > out[b] { i } else { b });
            (None, Some(out.clone()), inp.labels.get(i).cloned())
        };
        rows.push(serde_json::json!({
            "text": text,
            "tokens": enc.ids.len(),
            "embedding": embedding,
            "logits": logits,
            "label": label,
            "online_seconds": r.online_seconds,
            "online_bytes_per_party": r.online.bytes_sent.max(r.p0_online.bytes_sent),
            "rounds": r.online.rounds.max(r.p0_online.rounds),
        }));
    }
    if a.json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    for o in rows {
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
    Ok(())
}

/// What P1 reports in benchmark mode.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct BenchReport {
    /// Setup seconds (connect to the end of the weights' setup).
    pub setup_seconds: f64,
    /// Each measured pass.
    pub passes: Vec<PassResult>,
    /// P1's peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// Throughput mode: passes per minute, offline and online together.
    pub inferences_per_minute: Option<f64>,
}

fn bench(
    client: &mut Client,
    inp: &Inputs,
    batch: usize,
    reps: Option<usize>,
    stream: Option<usize>,
) -> Result<BenchReport> {
    let texts: Vec<&Encoding> = inp.encs.iter().take(batch).collect();
    let shape = client.shape_for(&texts, batch)?;
    let mut passes = Vec::new();
    let mut rate = None;
    if let Some(n) = stream {
        client.warm(shape)?;
        client.wait_warm()?;
        let t = std::time::Instant::now();
        for _ in 0..n.max(1) {
            passes.push(client.infer(shape, &texts)?);
        }
        rate = Some(passes.len() as f64 * 60.0 / t.elapsed().as_secs_f64());
    }
    for _ in 0..reps.unwrap_or(0) {
        client.warm(shape)?;
        client.wait_warm()?;
        client.pause(true)?;
        passes.push(client.infer(shape, &texts)?);
        client.pause(false)?;
    }
    Ok(BenchReport {
        inferences_per_minute: rate,
        setup_seconds: client.setup_seconds,
        passes,
        peak_rss_mib: super::peak_rss_mib(None),
    })
}
