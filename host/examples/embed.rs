//! Secure embeddings through the library: D, P0 and P1 as threads over authenticated loopback
//! links with fresh keys. `cargo run --release -p secformer-host --example embed -- [--model DIR] TEXT...`
use std::io::Write;
use std::path::Path;

use secformer_host::bert::{local, ModelShape};
use secformer_host::model::{fetch, load_model, plain::l2_normalize};

/// Embeds `texts` with the model in `dir`, writing `{"text", "embedding"}` per line.
pub fn embed(dir: &Path, texts: &[String], out: &mut impl Write) -> anyhow::Result<()> {
    let model = load_model(dir)?;
    let encs: Vec<_> = texts.iter().map(|t| model.tokenizer.encode(t)).collect();
    let opts = local::LocalOptions::for_model(&ModelShape::of(&model.config));
    let run = local::run_secure(&model.config, &model.weights, &encs, &opts)?;
    for (text, pass) in texts.iter().zip(&run.passes) {
        let v = l2_normalize(&pass.outputs[0]); // unit length, for cosine similarity
        writeln!(out, "{}", serde_json::json!({"text": text, "embedding": v}))?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut texts: Vec<String> = std::env::args().skip(1).collect();
    let dir = match texts.first().map(String::as_str) {
        Some("--model") if texts.len() > 1 => texts.drain(..2).nth(1).unwrap_or_default().into(),
        _ => fetch::ensure_default_model(&fetch::default_cache_dir())?,
    };
    embed(&dir, &texts, &mut std::io::stdout())
}
