//! `secformer`: privacy-preserving Transformer inference by two-party computation.
//!
//! Three endpoints: a dealer D that hands out correlated randomness, and two computing
//! parties P0 (model owner) and P1 (data owner). Run `secformer --help` for the commands;
//! each command lives in its own module of `secformer_host::cli`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use secformer_host::cli::{
    bench_bert, bench_proto, dealer, demo, fetch, infer, party, plain, serve,
};

/// Secure two-party inference for Transformer models (SecFormer), with a dealer.
///
/// Security model: semi-honest parties P0 and P1 and a dealer D that colludes with
/// neither. Research code, not audited. Logs go to stderr (`RUST_LOG=debug` for more).
#[derive(Parser)]
#[command(name = "secformer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the dealer D (pairs P0 and P1 by session token, streams correlated randomness).
    Dealer(dealer::DealerArgs),
    /// P0, the model owner: serve a BERT checkpoint's secure inference to P1 clients.
    Serve(serve::ServeArgs),
    /// P1, the data owner: embed or classify texts with P0 and D; only P1 learns the result.
    Infer(infer::InferArgs),
    /// The plaintext forward of a checkpoint (the reference of the secure runs).
    Plain(plain::PlainArgs),
    /// Dealer, P0 and P1 on 127.0.0.1: secure vs plaintext, time, bytes, rounds.
    Demo(demo::DemoArgs),
    /// One party of the weight-product job (X W, W private to P0, X to P1).
    Party(party::PartyArgs),
    /// P0 and the dealer against the Cortex-M4 firmware (P1 of a secure Transformer block)
    /// running under QEMU, over the emulated UART or semihosting; checks the firmware's
    /// result against the plaintext block. See firmware-example/README.md.
    FirmwarePeer {
        #[command(flatten)]
        args: secformer_host::firmware::FirmwarePeerArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The dealer of the firmware example as its own process: P0's link on one port, the
    /// device's end-to-end sealed link (relayed by P0) on another. `firmware-peer` starts it.
    FirmwareDealer(secformer_host::firmware::dealer::FirmwareDealerArgs),
    /// Accuracy of a model on a labelled TSV (or embedding agreement on sentences), in
    /// plaintext and, with --secure, under the full three-party protocol.
    Eval {
        #[command(flatten)]
        args: secformer_host::eval::EvalArgs,
    },
    /// Fetch the default model (all-MiniLM-L6-v2) into the cache if it is not there and
    /// print its directory (the only line on stdout).
    Fetch(fetch::FetchArgs),
    /// Create an endpoint identity: DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub
    /// (give it to the peers, which pass it as --trust).
    Keygen(secformer_host::link::args::KeygenArgs),
    /// Benchmarks over real processes and links.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// A random BERT served by three processes (D, P0, P1): online and offline time,
    /// bytes, rounds, peak memory per process, accuracy against plaintext.
    Bert(bench_bert::BenchBertArgs),
    /// The secure weight product against a plaintext GEMM of the same shape.
    Matmul(bench_proto::MatmulArgs),
    /// The nonlinear protocols on the paper's shapes.
    Ops(bench_proto::OpsArgs),
    /// The request plan of a pass (items, material per party, predicted traffic).
    Plan(bench_proto::PlanArgs),
    /// Link throughput and per-frame cost on loopback: plain TCP against the authenticated
    /// encrypted link (Noise, AES-GCM or ChaCha20-Poly1305), with and without frame CRC.
    Link(secformer_host::link::bench::LinkBenchArgs),
    /// Multiply-adds per second of every matmul kernel this CPU runs (portable, AVX2,
    /// AVX-512, two threads, prepacked B, u32) and of a plaintext f32 GEMM, on BERT's
    /// products.
    Gemm {
        #[command(flatten)]
        args: secformer_host::bench_gemm::GemmArgs,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Services log their sessions; one-shot commands only warnings.
    let service = matches!(cli.cmd, Cmd::Dealer(_) | Cmd::Serve(_));
    init_logging(if service { "info" } else { "warn" });
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Dealer(a) => dealer::run_cmd(a),
        Cmd::Serve(a) => serve::run_cmd(a),
        Cmd::Infer(a) => infer::run_cmd(a),
        Cmd::Plain(a) => plain::run_cmd(a),
        Cmd::Demo(a) => demo::run_cmd(a),
        Cmd::Fetch(a) => fetch::run_cmd(a),
        Cmd::Party(a) => party::run_cmd(a),
        Cmd::Eval { args } => secformer_host::eval::main(&args),
        Cmd::FirmwarePeer { args, json } => {
            let opts = args.options()?;
            let rep = secformer_host::firmware::run_firmware_peer(&opts)?;
            if json {
                println!("{}", serde_json::to_string(&rep)?);
            } else {
                println!("{}", rep.summary());
            }
            Ok(())
        }
        Cmd::FirmwareDealer(args) => secformer_host::firmware::dealer::run(&args),
        Cmd::Keygen(args) => {
            println!("{}", secformer_host::link::args::keygen(&args)?);
            Ok(())
        }
        Cmd::Bench { what } => match what {
            BenchCmd::Bert(a) => bench_bert::run_cmd(a),
            BenchCmd::Matmul(a) => bench_proto::run_matmul(a),
            BenchCmd::Ops(a) => bench_proto::run_ops(a),
            BenchCmd::Plan(a) => bench_proto::run_plan(a),
            BenchCmd::Link(args) => {
                let b = secformer_host::link::bench::bench_link(&args)?;
                if args.json {
                    println!("{}", serde_json::to_string(&b)?);
                } else {
                    secformer_host::link::bench::print_link_bench(&b);
                }
                Ok(())
            }
            BenchCmd::Gemm { args, json } => {
                let b = secformer_host::bench_gemm::bench_gemm(&args.options())?;
                if json {
                    println!("{}", serde_json::to_string(&b)?);
                } else {
                    secformer_host::bench_gemm::print_table(&b);
                }
                Ok(())
            }
        },
    }
}
