//! `secformer party`: one party of the weight-product job (`X W`, W private to P0, X to
//! P1, the product revealed to P1).

use anyhow::{bail, Result};
use clap::Args;
use secformer_core::fxp::Encoding;
use secformer_core::party::PartyId;
use secformer_core::prg::{Prg, Seed};

use super::{LinkArgs, TimeoutArgs};
use crate::jobs::matmul_job;
use crate::net::{connect_party, PeerAddr};

/// Run one computing party of the weight-product job (X W with W private to P0 and X
/// private to P1); P1 learns the product.
#[derive(Args, Debug)]
pub struct PartyArgs {
    /// Which party: 0 (holds the weights) or 1 (holds the input, learns the output).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub id: u8,
    /// Listen for the other party on this address.
    #[arg(long, conflicts_with = "connect", required_unless_present = "connect")]
    pub listen: Option<String>,
    /// Connect to the other party at this address.
    #[arg(long)]
    pub connect: Option<String>,
    /// The dealer's address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub dealer: String,
    /// Rows of X.
    #[arg(long, default_value_t = 128)]
    pub m: usize,
    /// Columns of X = rows of W.
    #[arg(long, default_value_t = 768)]
    pub k: usize,
    /// Columns of W.
    #[arg(long, default_value_t = 768)]
    pub n: usize,
    /// Seed of this party's random demo data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    /// Timeouts.
    pub timeouts: TimeoutArgs,
    #[command(flatten)]
    /// Keys and trusted peers (or --insecure).
    pub link: LinkArgs,
}

/// Runs the command.
pub fn run_cmd(a: PartyArgs) -> Result<()> {
    let party = PartyId::from_index(a.id).expect("clap restricts the id to 0 or 1");
    let peer = match (a.listen, a.connect) {
        (Some(l), None) => PeerAddr::Listen(l),
        (None, Some(c)) => PeerAddr::Connect(c),
        _ => bail!("give exactly one of --listen and --connect"),
    };
    if a.m == 0 || a.k == 0 || a.n == 0 {
        bail!("--m, --k and --n must be positive");
    }
    let enc = Encoding::default();
    let mut prg = Prg::new(&Seed::from_u64_for_tests(a.seed), 0);
    let len = if party == PartyId::P0 {
        a.k * a.n
    } else {
        a.m * a.k
    };
    let mut data = vec![0u64; len];
    prg.fill(&mut data);
    let data: Vec<u64> = data
        .iter()
        .map(|r| {
            enc.encode(((*r >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0)
                .unwrap_or(0)
        })
        .collect();
    let mut s = connect_party(party, &peer, &a.dealer, &a.timeouts.endpoint(&a.link)?)?;
    let (w, x) = if party == PartyId::P0 {
        (Some(&data[..]), None)
    } else {
        (None, Some(&data[..]))
    };
    let r = matmul_job(&mut s, a.m, a.k, a.n, w, x, 1, false)
        .inspect_err(|e| s.abort(&format!("{party} failed: {e}")))?;
    let out_head: Vec<f64> = r
        .output
        .as_ref()
        .map(|o| o.iter().take(4).map(|v| enc.decode(*v)).collect())
        .unwrap_or_default();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "party": a.id,
                "online_seconds": r.online_seconds,
                "online_bytes": r.online.bytes_sent,
                "rounds": r.online.rounds,
                "dealer_bytes": r.dealer.bytes_received,
                "output_head": out_head,
            })
        );
    } else {
        println!(
            "{party}: online {:.4} s, {} bytes sent, {} rounds; dealer traffic {} bytes",
            r.online_seconds, r.online.bytes_sent, r.online.rounds, r.dealer.bytes_received
        );
        if !out_head.is_empty() {
            println!("{party}: output[0..4] = {out_head:?}");
        }
    }
    Ok(())
}
