//! `secformer plain`: the plaintext forward pass (the reference of every secure run).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::resolve_model;
use crate::model::{load_model, plain};

/// The plaintext forward of a checkpoint (the reference the secure runs are checked
/// against).
#[derive(Args, Debug)]
pub struct PlainArgs {
    /// Model directory (default: all-MiniLM-L6-v2 from the cache).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Texts (repeatable).
    #[arg(long, required = true)]
    pub text: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run_cmd(a: PlainArgs) -> Result<()> {
    let dir = resolve_model(a.model.as_deref())?;
    let m =
        load_model(&dir).with_context(|| format!("loading the model from {}", dir.display()))?;
    let mut outs = Vec::new();
    for t in &a.text {
        let enc = m.tokenizer.encode(t);
        let o = plain::try_forward(&m, &enc)?;
        outs.push(serde_json::json!({"text": t, "tokens": enc.ids.len(), "embedding": o.pooled, "logits": o.logits}));
    }
    if a.json {
        println!("{}", serde_json::Value::Array(outs));
        return Ok(());
    }
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
    Ok(())
}
