//! `secformer infer`: P1, the data owner's client.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use super::display::Display;
use super::{
    encode_texts, gather_inputs, load_public, resolve_public_model, shorten, synthetic_ids,
    CacheArgs, Input, LengthArgs, LinkArgs, LongText, PoolArgs, SyntheticArgs, TimeoutArgs,
};
use crate::bert::observe::watch_layers;
use crate::bert::p1::PassResult;
use crate::bert::ModelShape;
use crate::model::fingerprint::model_info;
use crate::model::plain::{classify, l2_normalize};
use crate::model::Encoding;
use crate::service::client::{Client, ClientConfig, Progress};

/// P1, the data owner: tokenizes texts locally, runs secure inference with P0 and D, and
/// prints the results (only P1 learns them).
#[derive(Args, Debug)]
pub struct InferArgs {
    /// Texts to embed or classify (repeatable).
    #[arg(long, required_unless_present_any = ["file", "synthetic"])]
    pub text: Vec<String>,
    /// A file with one text per line (results are numbered by line, 0-based after the
    /// --text values; a blank line keeps its number and yields no result).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// P1's copy of the model's public files (config and tokenizer; weights unused);
    /// default: all-MiniLM-L6-v2 from the cache (only its public files are fetched if it
    /// is not there). Must be the model P0 serves.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    /// The model cache.
    pub cache: CacheArgs,
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
    /// Print one JSON array of the results at the end.
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// Print one JSON object per text (JSON Lines), each as soon as its pass is done:
    /// index, text, tokens, truncated, batch, embedding or logits, label, probs and score,
    /// and the pass's online_seconds, online_bytes_per_party and rounds.
    #[arg(long)]
    pub jsonl: bool,
    /// Write the results to this file instead of stdout, each as it comes (a failure
    /// keeps the results that finished).
    #[arg(long)]
    pub output: Option<PathBuf>,
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
    items: Vec<Input>,
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
            items: vec![Input {
                index: 0,
                text: format!("<{} synthetic tokens>", enc.ids.len()),
            }],
            encs: vec![enc],
            normalize: false,
            labels: Vec::new(),
        });
    }
    // The texts first: a missing file is reported before a model is fetched.
    let items = gather_inputs(&a.text, a.file.as_deref())?;
    let dir = resolve_public_model(a.model.as_deref(), &a.cache)?;
    let (cfg, tok, info) = load_public(&dir, a.softmax.as_deref())?;
    let long = if a.no_truncate {
        LongText::Refuse
    } else {
        LongText::Truncate
    };
    let texts: Vec<String> = items.iter().map(|i| i.text.clone()).collect();
    let encs = encode_texts(&tok, &texts, long)?;
    Ok(Inputs {
        shape: ModelShape::of(&cfg),
        info,
        items,
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

/// Connects to P0 and D, showing the queue and the setup on `display`.
fn connect(display: &Display, cfg: &ClientConfig, inp: &Inputs) -> Result<Client> {
    let pb = display.step(1, "setting up the session");
    let client = Client::connect(cfg, &inp.shape, &inp.info, |p| match p {
        Progress::Queued(n) => {
            pb.set_message(format!("queued at P0 ({n} ahead)"));
            if !display.is_drawn() {
                eprintln!("queued at P0: {n} session(s) ahead");
            }
        }
        Progress::Setup(i, n) => {
            pb.set_message("receiving the setup");
            pb.set_length(n as u64);
            pb.set_position(i as u64);
        }
    });
    pb.finish_and_clear();
    let client = client?;
    if client.resumed {
        display.note(&format!(
            "resumed the kept session {:016x} in {:.2} s (no setup)",
            client.session, client.setup_seconds
        ));
    } else {
        display.note(&format!(
            "new session {:016x}: setup took {:.2} s",
            client.session, client.setup_seconds
        ));
    }
    Ok(client)
}

/// Runs the command.
pub fn run_cmd(a: InferArgs) -> Result<()> {
    let t0 = Instant::now();
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let inp = inputs(&a)?;
    let cfg = config(&a, &inp.shape)?;
    // Opened before the session, so that an unwritable --output costs no setup.
    let mut sink = Sink::open(&a)?;
    let display = Display::new();
    let mut client = connect(&display, &cfg, &inp)?;
    if a.bench.is_some() || a.stream.is_some() {
        let r = bench(&mut client, &inp, a.batch, a.bench, a.stream);
        client.close()?;
        println!("{}", serde_json::to_string(&r?)?);
        return Ok(());
    }
    let run = run_texts(&mut client, &inp, a.batch, &display, &mut sink);
    // What finished is written whether or not a later pass failed.
    sink.finish()?;
    run?;
    let online = t0.elapsed().as_secs_f64();
    // Results first: closing keeps the session (saving its state and the next prepared
    // pass), which the user need not wait for to see them.
    let setup = client.setup_seconds;
    client.close()?;
    eprintln!(
        "{} text(s): setup {setup:.2} s, results after {online:.2} s, total {:.2} s",
        inp.items.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs the texts `batch` per pass, writing each text's result to `sink` as soon as its
/// pass is done.
fn run_texts(
    client: &mut Client,
    inp: &Inputs,
    batch: usize,
    display: &Display,
    sink: &mut Sink,
) -> Result<()> {
    let bar = display.texts(inp.items.len(), inp.shape.layers);
    for (c, chunk) in inp.encs.chunks(batch).enumerate() {
        let first = c * batch;
        let items = &inp.items[first..first + chunk.len()];
        bar.start_pass(first, chunk.len());
        let texts: Vec<&Encoding> = chunk.iter().collect();
        let r = watch_layers(bar.observer(), || -> Result<PassResult> {
            let shape = client.shape_for(&texts, batch)?;
            client.infer(shape, &texts)
        });
        let r = r.with_context(|| failed(items))?;
        for ((item, enc), out) in items.iter().zip(chunk).zip(&r.outputs) {
            let row = result_row(inp, item, enc, out, &r, chunk.len());
            display.suspend(|| sink.emit(row))?;
        }
    }
    bar.finish();
    Ok(())
}

/// Names the inputs of a failed pass.
fn failed(items: &[Input]) -> String {
    let idx: Vec<String> = items.iter().map(|i| i.index.to_string()).collect();
    format!(
        "input index {} failed (results of the inputs before it were written)",
        idx.join(", ")
    )
}

/// One text's result: every figure of the pass that carried it (`rounds`, bytes and
/// seconds are the whole pass's, shared by the `batch` texts in it).
fn result_row(
    inp: &Inputs,
    item: &Input,
    enc: &Encoding,
    out: &[f64],
    r: &PassResult,
    batch: usize,
) -> serde_json::Value {
    let mut row = serde_json::json!({
        "index": item.index,
        "text": item.text,
        "tokens": enc.ids.len(),
        "truncated": enc.truncated,
        "batch": batch,
        "embedding": null,
        "logits": null,
        "label": null,
        "online_seconds": r.online_seconds,
        "online_bytes_per_party": r.online.bytes_sent.max(r.p0_online.bytes_sent),
        "rounds": r.online.rounds.max(r.p0_online.rounds),
    });
    if inp.labels.is_empty() {
        row["embedding"] = if inp.normalize {
            serde_json::json!(l2_normalize(out))
        } else {
            serde_json::json!(out)
        };
    } else {
        let c = classify(out, &inp.labels);
        row["logits"] = serde_json::json!(out);
        row["label"] = serde_json::json!(c.label);
        row["score"] = serde_json::json!(c.score);
        row["probs"] = serde_json::json!(c.probs);
    }
    row
}

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// One line per text, the text shortened.
    Text,
    /// One JSON array at the end.
    Json,
    /// One JSON object per line, as each pass finishes.
    Jsonl,
}

/// Where results go (stdout or `--output`), line by line and flushed, so that a reader
/// sees each result as it comes and a failure keeps what finished.
struct Sink {
    format: Format,
    out: Box<dyn Write>,
    rows: Vec<serde_json::Value>,
}

impl Sink {
    fn open(a: &InferArgs) -> Result<Sink> {
        let format = match (a.json, a.jsonl) {
            (_, true) => Format::Jsonl,
            (true, false) => Format::Json,
            (false, false) => Format::Text,
        };
        let out: Box<dyn Write> = match &a.output {
            Some(p) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create --output {}", p.display()))?,
            )),
            None => Box::new(std::io::stdout()),
        };
        Ok(Sink {
            format,
            out,
            rows: Vec::new(),
        })
    }

    fn emit(&mut self, row: serde_json::Value) -> Result<()> {
        match self.format {
            Format::Json => {
                self.rows.push(row);
                return Ok(());
            }
            Format::Jsonl => writeln!(self.out, "{row}")?,
            Format::Text => writeln!(self.out, "{}", text_line(&row))?,
        }
        self.out.flush().context("writing a result")
    }

    fn finish(&mut self) -> Result<()> {
        if self.format == Format::Json {
            let rows = std::mem::take(&mut self.rows);
            writeln!(self.out, "{}", serde_json::Value::Array(rows))?;
        }
        self.out.flush().context("writing the results")
    }
}

/// A result as one line of text: figures, the first values, the label and the text
/// shortened.
fn text_line(o: &serde_json::Value) -> String {
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
    let label = match (o["label"].as_str(), o["score"].as_f64()) {
        (Some(l), Some(s)) => format!(" label {l} ({s:.3})"),
        _ => String::new(),
    };
    format!(
        "[{}] {} tokens{}, {:.2} s online, {} bytes, {} rounds: [{}, ...]{label}  {}",
        o["index"],
        o["tokens"],
        if o["truncated"] == true {
            " (truncated)"
        } else {
            ""
        },
        o["online_seconds"].as_f64().unwrap_or(0.0),
        o["online_bytes_per_party"],
        o["rounds"],
        head.join(", "),
        shorten(o["text"].as_str().unwrap_or(""), 60)
    )
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
