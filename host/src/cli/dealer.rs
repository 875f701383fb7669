//! `secformer dealer`: the dealer service D.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::{bind, write_port_file, LinkArgs, TimeoutArgs};
use crate::service::dealer::{run, DealerConfig};

/// Run the dealer D: pairs each P0 with its P1 by the session token both present, gives
/// each its seed, and streams P1's correlated randomness (ahead of the online phase).
/// Runs until stopped.
#[derive(Args, Debug)]
pub struct DealerArgs {
    /// Address to listen on, e.g. 127.0.0.1:7000 (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub listen: String,
    /// Stop after this many sessions (default: run until stopped).
    #[arg(long)]
    pub sessions: Option<u32>,
    /// Seconds a party waits for its partner with the same session token.
    #[arg(long, default_value_t = 60)]
    pub pair_timeout: u64,
    /// Seconds a session's state is kept after P1 leaves asking for a resume.
    #[arg(long, default_value_t = 600)]
    pub keep: u64,
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

/// Runs the command.
pub fn run_cmd(a: DealerArgs) -> Result<()> {
    let endpoint = a.timeouts.endpoint(&a.link)?;
    let l = bind(&a.listen)?;
    write_port_file(a.port_file.as_deref(), l.local_addr()?)?;
    eprintln!("dealer: listening on {}", l.local_addr()?);
    run(
        l,
        DealerConfig {
            endpoint,
            pair_timeout: Duration::from_secs(a.pair_timeout.max(1)),
            keep: Duration::from_secs(a.keep),
            sessions: a.sessions.filter(|n| *n > 0),
        },
    )
}
