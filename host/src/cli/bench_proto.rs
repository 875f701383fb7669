//! `secformer bench matmul` and `secformer bench ops`: the weight product and the
//! nonlinear protocols on their own, two parties and a dealer over TCP.

use anyhow::Result;
use clap::Args;

use crate::bench::{bench_matmul, MatmulBench};

/// The secure weight product (m x k) * (k x n): online time, bytes, rounds and error,
/// against one plaintext u64 GEMM of the same shape with the same kernel.
#[derive(Args, Debug)]
pub struct MatmulArgs {
    /// Rows of X (tokens).
    #[arg(long, default_value_t = 128)]
    pub m: usize,
    /// Inner dimension.
    #[arg(long, default_value_t = 768)]
    pub k: usize,
    /// Columns of W.
    #[arg(long, default_value_t = 768)]
    pub n: usize,
    /// Repetitions (the median online time is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// P0 owns W in the clear (the model-owner variant: only P1 sends its half of E,
    /// only P0 multiplies) instead of W being secret-shared.
    #[arg(long)]
    pub owned: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The nonlinear protocols on the paper's shapes (GeLU 128x3072, LayerNorm 128x768,
/// softmaxes 12x128x128, reciprocal and rsqrt 128x128, comparison 128x3072, tanh 128x768):
/// seconds, bytes, dealer bytes, rounds, max and mean |error| against f64.
#[derive(Args, Debug)]
pub struct OpsArgs {
    /// Divide the shapes by this factor (1 = the paper's shapes).
    #[arg(long, default_value_t = 1)]
    pub scale: usize,
    /// Run only this op.
    #[arg(long)]
    pub op: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `bench matmul`.
pub fn run_matmul(a: MatmulArgs) -> Result<()> {
    if a.m == 0 || a.k == 0 || a.n == 0 {
        anyhow::bail!("--m, --k and --n must be positive");
    }
    // Each operand is allocated several times over (shares, masks, products): beyond
    // 2^26 elements (512 MiB of u64) an allocation failure would be a panic, not an error.
    if [(a.m, a.k), (a.k, a.n), (a.m, a.n)]
        .iter()
        .any(|(x, y)| x.checked_mul(*y).is_none_or(|p| p > 1 << 26))
    {
        anyhow::bail!(
            "--m, --k and --n are too large: every product m*k, k*n, m*n must be at most 2^26"
        );
    }
    let b = bench_matmul(a.m, a.k, a.n, a.reps, a.owned)?;
    if a.json {
        println!("{}", serde_json::to_string(&b)?);
    } else {
        print_matmul(&b);
    }
    Ok(())
}

/// Runs `bench ops`.
pub fn run_ops(a: OpsArgs) -> Result<()> {
    if a.scale == 0 || a.scale > 64 {
        anyhow::bail!("--scale must be in 1..=64");
    }
    let rows = crate::ops::bench_ops(a.scale, a.op.as_deref())?;
    if a.json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
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
    Ok(())
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

/// The request plan of a pass of a random BERT, without running it: dealer items, stored
/// material per party, and the online bytes and rounds each party will send and wait for.
#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    /// The model's shape.
    pub shape: super::SyntheticArgs,
    /// exact or 2quad.
    #[arg(long, default_value = "2quad")]
    pub softmax: String,
    /// Tokens per text (the bucket).
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Texts per pass.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Exact lengths (no padding mask).
    #[arg(long)]
    pub exact_length: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `bench plan`.
pub fn run_plan(a: PlanArgs) -> Result<()> {
    use crate::bert::{plan, Lengths, ModelShape, PassShape};
    use secformer_core::party::PartyId;
    let cfg = a.shape.config(Some(&a.softmax))?;
    let m = ModelShape::of(&cfg);
    let pass = PassShape {
        batch: a.batch,
        bucket: a.seq,
        lengths: if a.exact_length {
            Lengths::Public
        } else {
            Lengths::Secret
        },
    };
    pass.check(&m)?;
    let mut rows = Vec::new();
    for party in [PartyId::P0, PartyId::P1] {
        let p = plan::record(&m, &pass, party)?;
        let mut by_kind = std::collections::BTreeMap::<String, u64>::new();
        for r in &p.requests {
            for it in r.items.iter() {
                let name = format!("{it:?}");
                let kind = name.split([' ', '{']).next().unwrap_or("?").to_string();
                *by_kind.entry(kind).or_default() +=
                    secformer_core::dealer::stored_bytes(it, party);
            }
        }
        rows.push(serde_json::json!({
            "scratch_bytes": 8 * crate::bert::forward::scratch_words(&m, &pass, 16),
            "material_by_item": by_kind,
            "party": party.to_string(),
            "requests": p.requests.len(),
            "items": p.items(),
            "plan_hash": format!("{:016x}", p.hash),
            "material_bytes": p.material_bytes,
            "online_bytes_sent": p.traffic.bytes_sent,
            "online_payload_sent": p.traffic.payload_sent,
            "rounds": p.traffic.rounds,
        }));
    }
    if a.json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for r in rows {
            println!("{r}");
        }
    }
    Ok(())
}
