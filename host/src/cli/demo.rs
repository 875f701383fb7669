//! `secformer demo`: the dealer, P0 and P1 on 127.0.0.1 over TCP, secure vs plaintext.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use super::display::{Display, TextProgress};
use super::{apply_softmax_flag, encode_texts, resolve_model, shorten, CacheArgs, LongText};
use crate::bert::local::{self, LocalOptions};
use crate::bert::observe::watch_layers;
use crate::bert::profile::Components;
use crate::bert::ModelShape;
use crate::model::{load_model, plain, Model};

/// Dealer, P0 and P1 on 127.0.0.1 with the default model: secure vs plaintext results
/// per sentence, time, bytes, rounds and a per-component table.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Model directory (default: all-MiniLM-L6-v2, fetched on first use).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    /// The model cache.
    pub cache: CacheArgs,
    /// Texts (repeatable; default: five sample sentences).
    #[arg(long)]
    pub text: Vec<String>,
    /// Override the softmax: exact or 2quad.
    #[arg(long)]
    pub softmax: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The demo sentences.
pub const DEMO_SENTENCES: [&str; 5] = [
    "Secure inference keeps both the model and the text private.",
    "A man is playing a guitar on the street.",
    "The quick brown fox jumps over the lazy dog!",
    "Le chiffrement homomorphe est-il pratique en 2026 ?",
    "In 2024, 3.14159 * 2 = 6.28318 (approximately).",
];

/// One sentence of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct DemoResult {
    /// The text.
    pub text: String,
    /// Tokens.
    pub tokens: usize,
    /// The padded length the pass used.
    pub bucket: usize,
    /// Cosine similarity of the embeddings, or 1/0 for the same label.
    pub agreement: f64,
    /// Max |secure - plaintext| over the output vector.
    pub max_abs_diff: f64,
    /// Online seconds (P1).
    pub online_seconds: f64,
    /// Offline seconds of the pass (the slower party's drawing of its material).
    pub offline_seconds: f64,
    /// Wire bytes each party sends online (the larger).
    pub online_bytes_per_party: u64,
    /// Bytes D sent P1 for the pass (offline).
    pub dealer_bytes: u64,
    /// Online rounds (the larger party's).
    pub rounds: u64,
    /// The secure output (normalized embedding or logits).
    pub secure: Vec<f64>,
    /// The plaintext output.
    pub plain: Vec<f64>,
    /// Per-component costs.
    pub components: Components,
    /// With a softmax override: agreement of the secure output with the plaintext output
    /// of the model as trained (its own softmax).
    pub unmodified_agreement: Option<f64>,
}

/// The demo's JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// Model directory.
    pub model: String,
    /// "exact" or "2quad".
    pub softmax: String,
    /// Seconds of the one-time setup.
    pub setup_seconds: f64,
    /// Seconds of the whole demo: loading the model, the setup, every pass and the
    /// plaintext references.
    pub total_seconds: f64,
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

/// Compares a secure output with the plaintext forward: (agreement, max diff, secure
/// output as shown, plaintext output).
pub fn agreement(
    model: &Model,
    enc: &crate::model::Encoding,
    out: &[f64],
) -> (f64, f64, Vec<f64>, Vec<f64>) {
    let p = plain::forward(model, enc);
    let diff = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    };
    match &p.logits {
        Some(l) => {
            let l: Vec<f64> = l.iter().map(|v| *v as f64).collect();
            let arg = |v: &[f64]| {
                v.iter()
                    .enumerate()
                    .fold(0, |b, (i, x)| if *x > v[b] { i } else { b })
            };
            (
                (arg(out) == arg(&l)) as u8 as f64,
                diff(out, &l),
                out.to_vec(),
                l,
            )
        }
        None => {
            let sec = if model.config.normalize {
                plain::l2_normalize(out)
            } else {
                out.to_vec()
            };
            let pl: Vec<f64> = p.pooled.iter().map(|v| *v as f64).collect();
            (cosine(&sec, &pl), diff(&sec, &pl), sec, pl)
        }
    }
}

/// The layer observer of the demo's passes, one text per pass: advances the text when a
/// pass's last layer is done.
fn per_text(bar: TextProgress, texts: usize) -> impl FnMut(usize, usize) + 'static {
    let mut text = 0;
    bar.start_pass(0, 1);
    move |done, layers| {
        bar.layer(done);
        if done == layers && text + 1 < texts {
            text += 1;
            bar.start_pass(text, 1);
        }
    }
}

/// Runs the demo over `texts`.
pub fn demo(model_dir: &Path, texts: &[String], softmax: Option<&str>) -> Result<DemoReport> {
    let t0 = std::time::Instant::now();
    let display = Display::new();
    let pb = display.step(1, "loading the model");
    let mut model =
        load_model(model_dir).with_context(|| format!("loading {}", model_dir.display()))?;
    pb.finish_and_clear();
    let trained = model.config.clone();
    apply_softmax_flag(&mut model.config, softmax)?;
    // The model as trained, to show what a softmax override changes.
    let unmodified = (trained.softmax != model.config.softmax).then(|| Model {
        config: trained,
        ..model.clone()
    });
    let encs = encode_texts(&model.tokenizer, texts, LongText::Truncate)?;
    let opts = LocalOptions::for_model(&ModelShape::of(&model.config));
    let bar = display.texts(encs.len(), model.config.num_hidden_layers);
    // The demo starts all three endpoints: fresh identities, authenticated links. P1 runs
    // on this thread, so its layers are the ones observed.
    let run = watch_layers(per_text(bar.clone(), encs.len()), || {
        local::run_secure(&model.config, &model.weights, &encs, &opts)
    });
    bar.finish();
    let run = run?;
    let mut results = Vec::new();
    for ((text, enc), r) in texts.iter().zip(&encs).zip(&run.passes) {
        let (agree, diff, sec, pl) = agreement(&model, enc, &r.outputs[0]);
        let unmodified_agreement = unmodified
            .as_ref()
            .map(|u| agreement(u, enc, &r.outputs[0]).0);
        results.push(DemoResult {
            text: text.clone(),
            tokens: enc.ids.len(),
            bucket: r.shape.bucket,
            agreement: agree,
            max_abs_diff: diff,
            online_seconds: r.online_seconds,
            offline_seconds: r.offline_seconds[0].max(r.offline_seconds[1]),
            online_bytes_per_party: r.online.bytes_sent.max(r.p0_online.bytes_sent),
            dealer_bytes: r.dealer_bytes,
            rounds: r.online.rounds.max(r.p0_online.rounds),
            secure: sec,
            plain: pl,
            components: r.components,
            unmodified_agreement,
        });
    }
    Ok(DemoReport {
        model: model_dir.display().to_string(),
        softmax: crate::model::fingerprint::model_info(&model.config, None).softmax,
        setup_seconds: run.setup_seconds,
        total_seconds: t0.elapsed().as_secs_f64(),
        results,
    })
}

/// Runs the command.
pub fn run_cmd(a: DemoArgs) -> Result<()> {
    let dir = resolve_model(a.model.as_deref(), &a.cache)?;
    let texts: Vec<String> = if a.text.is_empty() {
        DEMO_SENTENCES.iter().map(|s| s.to_string()).collect()
    } else {
        a.text.clone()
    };
    let rep = demo(&dir, &texts, a.softmax.as_deref())?;
    if a.json {
        println!("{}", serde_json::to_string(&rep)?);
        return Ok(());
    }
    println!(
        "model {} (softmax {}), setup {:.2} s",
        rep.model, rep.softmax, rep.setup_seconds
    );
    println!(
        "{:>6} {:>6} {:>10} {:>10} {:>9} {:>9} {:>13} {:>7}  text",
        "tokens",
        "bucket",
        "agreement",
        "max diff",
        "online s",
        "offline s",
        "bytes/party",
        "rounds"
    );
    let mut total = Components::default();
    for r in &rep.results {
        println!(
            "{:>6} {:>6} {:>10.6} {:>10.2e} {:>9.3} {:>9.3} {:>13} {:>7}  {}",
            r.tokens,
            r.bucket,
            r.agreement,
            r.max_abs_diff,
            r.online_seconds,
            r.offline_seconds,
            r.online_bytes_per_party,
            r.rounds,
            shorten(&r.text, 60)
        );
        total.add(&r.components);
    }
    if rep.results.iter().any(|r| r.unmodified_agreement.is_some()) {
        let v: Vec<String> = rep
            .results
            .iter()
            .map(|r| format!("{:.6}", r.unmodified_agreement.unwrap_or(f64::NAN)))
            .collect();
        println!(
            "agreement with the unmodified model (the softmax it was trained with), plaintext: {}",
            v.join(" ")
        );
    }
    println!("per component, all sentences (P1):");
    print_components(&total);
    println!(
        "setup {:.2} s (once per session), total {:.2} s",
        rep.setup_seconds, rep.total_seconds
    );
    Ok(())
}

/// Prints a per-component table.
pub fn print_components(c: &Components) {
    println!(
        "  {:<10} {:>10} {:>14} {:>8}",
        "component", "seconds", "bytes/party", "rounds"
    );
    for (name, x) in c.named() {
        println!(
            "  {:<10} {:>10.3} {:>14} {:>8}",
            name, x.seconds, x.bytes, x.rounds
        );
    }
}
