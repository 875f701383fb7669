//! `secformer serve`: P0, the model owner's server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::{
    bind, progress, resolve_model, write_port_file, CacheArgs, LinkArgs, PoolArgs, SyntheticArgs,
    TimeoutArgs,
};
use crate::bert::weights::RingModel;
use crate::model::fingerprint::model_info;
use crate::model::{load_model, BertWeights};
use crate::service::server::{run, ServeConfig, ServedModel};

/// P0, the model owner: serves a BERT checkpoint's secure inference to P1 clients
/// (several at once), until stopped. P0 learns nothing about the texts or the results.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Hugging Face BERT directory (config.json, model.safetensors, vocab.txt or
    /// tokenizer.json); default: all-MiniLM-L6-v2, fetched into the cache.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    /// The model cache.
    pub cache: CacheArgs,
    /// Address to listen on for P1 clients (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7001")]
    pub listen: String,
    /// The dealer's address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub dealer: String,
    /// Override the softmax: exact (unmodified checkpoints) or 2quad (distilled).
    #[arg(long)]
    pub softmax: Option<String>,
    /// Sessions served at once; clients beyond wait in a queue.
    #[arg(long, default_value_t = 4)]
    pub max_sessions: usize,
    /// Clients that may wait for a free session (others are refused with a message).
    #[arg(long, default_value_t = 16)]
    pub queue: usize,
    /// Seconds a session's state is kept after P1 leaves asking for a resume.
    #[arg(long, default_value_t = 600)]
    pub keep: u64,
    /// Stop after this many sessions (default: run until stopped).
    #[arg(long)]
    pub sessions: Option<u32>,
    #[command(flatten)]
    /// The preprocessing pool.
    pub pool: PoolArgs,
    /// Serve a random model of this shape instead of a checkpoint (benchmarks).
    #[arg(long, hide = true)]
    pub synthetic: bool,
    #[command(flatten)]
    /// The random model (benchmarks).
    pub shape: SyntheticArgs,
    /// Write the listening address to this file once bound.
    #[arg(long, hide = true)]
    pub port_file: Option<PathBuf>,
    #[command(flatten)]
    /// Timeouts.
    pub timeouts: TimeoutArgs,
    #[command(flatten)]
    /// Keys and trusted peers (or --insecure).
    pub link: LinkArgs,
}

/// Loads the served model (a checkpoint, or a random one for benchmarks).
fn served_model(a: &ServeArgs) -> Result<ServedModel> {
    if a.synthetic {
        let cfg = a.shape.config(a.softmax.as_deref())?;
        let w = BertWeights::random(&cfg, a.shape.model_seed);
        let info = model_info(&cfg, None);
        let ring = RingModel::new(&cfg, &w)?;
        return Ok(ServedModel {
            fingerprint: crate::bert::fingerprint(&info),
            ring,
            info,
        });
    }
    let dir = resolve_model(a.model.as_deref(), &a.cache)?;
    let pb = progress(1, "loading the model");
    let mut m =
        load_model(&dir).with_context(|| format!("loading the model from {}", dir.display()))?;
    pb.finish_and_clear();
    super::apply_softmax_flag(&mut m.config, a.softmax.as_deref())?;
    let info = model_info(&m.config, Some(&m.tokenizer));
    let ring = RingModel::new(&m.config, &m.weights)
        .with_context(|| format!("encoding the model from {}", dir.display()))?;
    eprintln!("P0: serving {}", dir.display());
    Ok(ServedModel {
        fingerprint: crate::bert::fingerprint(&info),
        ring,
        info,
    })
}

/// Runs the command.
pub fn run_cmd(a: ServeArgs) -> Result<()> {
    let endpoint = a.timeouts.endpoint(&a.link)?;
    // Bind first: a client that connects early waits instead of being refused.
    let l = bind(&a.listen)?;
    let model = Arc::new(served_model(&a)?);
    write_port_file(a.port_file.as_deref(), l.local_addr()?)?;
    eprintln!("P0: listening on {}", l.local_addr()?);
    run(
        l,
        model,
        ServeConfig {
            dealer: a.dealer.clone(),
            endpoint,
            max_sessions: a.max_sessions.max(1),
            queue: a.queue,
            keep: Duration::from_secs(a.keep),
            // The budget is the process's: each of the sessions at once gets its share.
            memory_budget: a.pool.memory_budget() / a.max_sessions.max(1) as u64,
            spill_dir: a.pool.spill_dir(),
            sessions: a.sessions.filter(|n| *n > 0),
        },
    )
}
