//! `secformer fetch`: the default model into the cache, its directory on stdout.

use anyhow::{Context, Result};
use clap::Args;

use super::CacheArgs;
use crate::model::fetch::ensure_default_model;

/// Fetches the default model (all-MiniLM-L6-v2, pinned and checked against its sha256)
/// into the cache unless it is there, and prints its directory as the only line on stdout
/// (so that `--model "$(secformer fetch)"` works); messages go to stderr.
#[derive(Args, Debug)]
pub struct FetchArgs {
    #[command(flatten)]
    /// The cache.
    pub cache: CacheArgs,
}

/// Runs the command.
pub fn run_cmd(a: FetchArgs) -> Result<()> {
    let dir = ensure_default_model(&a.cache.dir())
        .context("fetching the default model (all-MiniLM-L6-v2)")?;
    println!("{}", dir.display());
    Ok(())
}
