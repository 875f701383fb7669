//! `secformer fetch`: the default model into the cache, its directory on stdout.

use anyhow::{Context, Result};
use clap::Args;

use super::CacheArgs;
use crate::model::fetch::{ensure_default_model, ensure_default_public};

/// Fetches the default model (all-MiniLM-L6-v2, pinned and checked against its sha256)
/// into the cache unless it is there, and prints its directory as the only line on stdout
/// (so that `--model "$(secformer fetch)"` works); messages go to stderr.
#[derive(Args, Debug)]
pub struct FetchArgs {
    #[command(flatten)]
    /// The cache.
    pub cache: CacheArgs,
    /// Only what P1 (`infer`) needs: the config and tokenizer, no weights (the whole
    /// model's directory when the cache already has it).
    #[arg(long)]
    pub public_only: bool,
}

/// Runs the command.
pub fn run_cmd(a: FetchArgs) -> Result<()> {
    let dir = if a.public_only {
        ensure_default_public(&a.cache.dir())
    } else {
        ensure_default_model(&a.cache.dir())
    }
    .context("fetching the default model (all-MiniLM-L6-v2)")?;
    println!("{}", dir.display());
    Ok(())
}
