//! `secformer`: privacy-preserving Transformer inference by two-party computation.
//!
//! Three endpoints: a dealer D that hands out correlated randomness, and two computing
//! parties P0 (model owner) and P1 (data owner). Run `secformer --help` for the commands.

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use secformer_core::fxp::Encoding;
use secformer_core::party::PartyId;
use secformer_core::prg::{Prg, Seed};
use secformer_host::bench::{bench_matmul, MatmulBench};
use secformer_host::jobs::matmul_job;
use secformer_host::net::{connect_party, run_dealer_session, PeerAddr, Timeouts};

/// Secure two-party inference for Transformer models (SecFormer), with a dealer.
///
/// Security model: semi-honest parties P0 and P1 and a dealer D that colludes with
/// neither. Research code, not audited.
#[derive(Parser)]
#[command(name = "secformer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the dealer D: accepts P0 and P1, gives each its seed, and streams correlated
    /// randomness (P1's corrections) as the parties consume it.
    Dealer {
        /// Address to listen on, e.g. 127.0.0.1:7000.
        #[arg(long, default_value = "127.0.0.1:7000")]
        listen: String,
        /// Number of sessions to serve before exiting (0 = forever).
        #[arg(long, default_value_t = 1)]
        sessions: u32,
        #[command(flatten)]
        timeouts: TimeoutArgs,
    },
    /// Run one computing party of the weight-product job (X W with W private to P0 and X
    /// private to P1); P1 learns the product.
    Party {
        /// Which party: 0 (holds the weights) or 1 (holds the input, learns the output).
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
        id: u8,
        /// Listen for the other party on this address.
        #[arg(long, conflicts_with = "connect", required_unless_present = "connect")]
        listen: Option<String>,
        /// Connect to the other party at this address.
        #[arg(long)]
        connect: Option<String>,
        /// The dealer's address.
        #[arg(long, default_value = "127.0.0.1:7000")]
        dealer: String,
        /// Rows of X.
        #[arg(long, default_value_t = 128)]
        m: usize,
        /// Columns of X = rows of W.
        #[arg(long, default_value_t = 768)]
        k: usize,
        /// Columns of W.
        #[arg(long, default_value_t = 768)]
        n: usize,
        /// Seed of this party's random demo data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        timeouts: TimeoutArgs,
    },
    /// Benchmarks: dealer + P0 + P1 on 127.0.0.1 over real TCP.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// The secure weight product (m x k) * (k x n): online time, bytes, rounds and error,
    /// against one plaintext u64 GEMM of the same shape with the same kernel.
    Matmul {
        /// Rows of X (tokens).
        #[arg(long, default_value_t = 128)]
        m: usize,
        /// Inner dimension.
        #[arg(long, default_value_t = 768)]
        k: usize,
        /// Columns of W.
        #[arg(long, default_value_t = 768)]
        n: usize,
        /// Repetitions (the median online time is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The nonlinear protocols on the paper's shapes (GeLU 128x3072, LayerNorm 128x768,
    /// softmaxes 12x128x128, reciprocal and rsqrt 128x128, comparison 128x3072, tanh
    /// 128x768): seconds, bytes, dealer bytes, rounds, max and mean |error| against f64.
    Ops {
        /// Divide the shapes by this factor (1 = the paper's shapes).
        #[arg(long, default_value_t = 1)]
        scale: usize,
        /// Run only this op.
        #[arg(long)]
        op: Option<String>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Clone, Copy)]
struct TimeoutArgs {
    /// Seconds to keep retrying connections / waiting for the other endpoints to connect.
    #[arg(long, default_value_t = 30)]
    connect_timeout: u64,
    /// Seconds a read waits for the other side before failing.
    #[arg(long, default_value_t = 120)]
    read_timeout: u64,
}

impl From<TimeoutArgs> for Timeouts {
    fn from(a: TimeoutArgs) -> Self {
        Timeouts {
            connect: Duration::from_secs(a.connect_timeout),
            read: Duration::from_secs(a.read_timeout),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Dealer {
            listen,
            sessions,
            timeouts,
        } => {
            let l = TcpListener::bind(&listen)
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
            eprintln!("dealer: listening on {}", l.local_addr()?);
            let mut served = 0u32;
            loop {
                let mut t: Timeouts = timeouts.into();
                t.connect = Duration::from_secs(u64::MAX / 4);
                let s = run_dealer_session(&l, t)?;
                served += 1;
                eprintln!(
                    "dealer: session {served} done: {} requests, {} bytes to P1, {} bytes to P0",
                    s.requests, s.p1.bytes_sent, s.p0.bytes_sent
                );
                if sessions != 0 && served >= sessions {
                    return Ok(());
                }
            }
        }
        Cmd::Party {
            id,
            listen,
            connect,
            dealer,
            m,
            k,
            n,
            seed,
            json,
            timeouts,
        } => {
            let party = PartyId::from_index(id).expect("clap restricts the id to 0 or 1");
            let peer = match (listen, connect) {
                (Some(l), None) => PeerAddr::Listen(l),
                (None, Some(c)) => PeerAddr::Connect(c),
                _ => bail!("give exactly one of --listen and --connect"),
            };
            let enc = Encoding::default();
            let mut prg = Prg::new(&Seed::from_u64_for_tests(seed), 0);
            let len = if party == PartyId::P0 { k * n } else { m * k };
            let mut data = vec![0u64; len];
            prg.fill(&mut data);
            let data: Vec<u64> = data
                .iter()
                .map(|r| {
                    enc.encode(((*r >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0)
                        .unwrap_or(0)
                })
                .collect();
            let mut s = connect_party(party, &peer, &dealer, timeouts.into())?;
            let (w, x) = if party == PartyId::P0 {
                (Some(&data[..]), None)
            } else {
                (None, Some(&data[..]))
            };
            let r = matmul_job(&mut s, m, k, n, w, x, 1)
                .inspect_err(|e| s.abort(&format!("{party} failed: {e}")))?;
            let out_head: Vec<f64> = r
                .output
                .as_ref()
                .map(|o| o.iter().take(4).map(|v| enc.decode(*v)).collect())
                .unwrap_or_default();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "party": id,
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
        Cmd::Bench { what } => match what {
            BenchCmd::Matmul {
                m,
                k,
                n,
                reps,
                json,
            } => {
                let b = bench_matmul(m, k, n, reps)?;
                if json {
                    println!("{}", serde_json::to_string(&b)?);
                } else {
                    print_matmul(&b);
                }
                Ok(())
            }
            BenchCmd::Ops { scale, op, json } => {
                let rows = secformer_host::ops::bench_ops(scale, op.as_deref())?;
                if json {
                    println!("{}", serde_json::to_string(&rows)?);
                } else {
                    println!(
                        "{:<14} {:>10} {:>9} {:>14} {:>13} {:>7} {:>10} {:>10} {:>9}",
                        "op",
                        "shape",
                        "seconds",
                        "bytes/party",
                        "dealer bytes",
                        "rounds",
                        "max err",
                        "mean err",
                        "bits/elt"
                    );
                    for r in rows {
                        println!(
                            "{:<14} {:>10} {:>9.3} {:>14} {:>13} {:>7} {:>10.2e} {:>10.2e} {:>9.0}",
                            r.op,
                            r.shape,
                            r.seconds,
                            r.online_bytes_per_party,
                            r.dealer_bytes,
                            r.rounds,
                            r.max_abs_error,
                            r.mean_abs_error,
                            r.online_bytes_per_party as f64 * 8.0 / r.elements as f64
                        );
                    }
                }
                Ok(())
            }
        },
    }
}

fn print_matmul(b: &MatmulBench) {
    println!(
        "secure weight product ({}x{}) * ({}x{}), kernel {}, {} reps",
        b.m, b.k, b.k, b.n, b.kernel, b.reps
    );
    println!(
        "  {:<34} {:>14}",
        "online seconds (slowest party)",
        format!("{:.4}", b.online_seconds)
    );
    println!(
        "  {:<34} {:>14}",
        "online seconds P0 / P1",
        format!(
            "{:.4} / {:.4}",
            b.online_seconds_per_party[0], b.online_seconds_per_party[1]
        )
    );
    println!(
        "  {:<34} {:>14}",
        "plaintext u64 GEMM seconds",
        format!("{:.4}", b.plain_gemm_seconds)
    );
    println!(
        "  {:<34} {:>14}",
        "overhead (online / GEMM)",
        format!("{:.2}x", b.overhead_ratio)
    );
    println!(
        "  {:<34} {:>14}",
        "transfer of E alone seconds",
        format!("{:.4}", b.e_transfer_seconds)
    );
    println!(
        "  {:<34} {:>14}",
        "GEMM alone, both parties at once",
        format!("{:.4}", b.concurrent_gemm_seconds)
    );
    println!(
        "  {:<34} {:>14}",
        "overhead excluding E transfer",
        format!("{:.2}x", b.overhead_ratio_excluding_transfer)
    );
    println!(
        "  {:<34} {:>14}",
        "online bytes per party", b.online_bytes_per_party
    );
    println!("  {:<34} {:>14}", "online rounds", b.rounds);
    println!(
        "  {:<34} {:>14}",
        "dealer bytes per inference", b.dealer_bytes
    );
    println!(
        "  {:<34} {:>14}",
        "offline prepare seconds",
        format!("{:.4}", b.prepare_seconds)
    );
    println!(
        "  {:<34} {:>14}",
        "one-time weight setup seconds",
        format!("{:.4}", b.setup_seconds)
    );
    println!(
        "  {:<34} {:>14}",
        "max |error| (real units)",
        format!("{:.3e}", b.max_abs_error)
    );
}
