//! `secformer plain`: the plaintext forward pass (the reference of every secure run).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::{apply_softmax_flag, gather_inputs, resolve_model, shorten, CacheArgs};
use crate::model::plain::classify;
use crate::model::{load_model, plain};

/// The plaintext forward of a checkpoint (the reference the secure runs are checked
/// against).
#[derive(Args, Debug)]
pub struct PlainArgs {
    /// Model directory (default: all-MiniLM-L6-v2 from the cache).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    /// The model cache.
    pub cache: CacheArgs,
    /// Texts (repeatable).
    #[arg(long, required_unless_present = "file")]
    pub text: Vec<String>,
    /// A file with one text per line (numbered as `infer` numbers them: after the --text
    /// values, blank lines counted).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Override the softmax: exact or 2quad (to compare with a secure run that overrides
    /// it the same way).
    #[arg(long)]
    pub softmax: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run_cmd(a: PlainArgs) -> Result<()> {
    let inputs = gather_inputs(&a.text, a.file.as_deref())?;
    let dir = resolve_model(a.model.as_deref(), &a.cache)?;
    let mut m =
        load_model(&dir).with_context(|| format!("loading the model from {}", dir.display()))?;
    apply_softmax_flag(&mut m.config, a.softmax.as_deref())?;
    let mut outs = Vec::new();
    for input in &inputs {
        let enc = m.tokenizer.encode(&input.text);
        let o = plain::try_forward(&m, &enc)?;
        let mut row = serde_json::json!({
            "index": input.index,
            "text": input.text,
            "tokens": enc.ids.len(),
            "truncated": enc.truncated,
            "embedding": null,
            "logits": null,
            "label": null,
        });
        match &o.logits {
            Some(l) => {
                let l: Vec<f64> = l.iter().map(|v| f64::from(*v)).collect();
                let c = classify(&l, &m.config.labels);
                row["logits"] = serde_json::json!(l);
                row["label"] = serde_json::json!(c.label);
                row["score"] = serde_json::json!(c.score);
                row["probs"] = serde_json::json!(c.probs);
            }
            // Normalized when the model's pipeline normalizes, as `infer` reports it.
            None => row["embedding"] = serde_json::json!(o.pooled),
        }
        outs.push(row);
    }
    if a.json {
        println!("{}", serde_json::Value::Array(outs));
        return Ok(());
    }
    for o in outs {
        println!("{}", text_line(&o));
    }
    Ok(())
}

/// One result as a line: the first values, the label with its score and every class's
/// probability (classifiers), the text shortened.
fn text_line(o: &serde_json::Value) -> String {
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
    let label = match (o["label"].as_str(), o["score"].as_f64()) {
        (Some(l), Some(s)) => {
            let probs: Vec<String> = o["probs"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .map(|x| format!("{:.3}", x.as_f64().unwrap_or(0.0)))
                        .collect()
                })
                .unwrap_or_default();
            format!(" label {l} ({s:.3}), probs [{}]", probs.join(", "))
        }
        _ => String::new(),
    };
    format!(
        "[{}] {} tokens: [{}, ...]{label}  {}",
        o["index"],
        o["tokens"],
        head.join(", "),
        shorten(o["text"].as_str().unwrap_or(""), 60)
    )
}
