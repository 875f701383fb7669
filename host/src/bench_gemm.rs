//! `secformer bench gemm`: multiply-adds per second of every matmul kernel this CPU can
//! run, on the products of a BERT forward pass, next to a plaintext f32 GEMM.
//!
//! The shapes are P0's online products for `m` tokens: the four weight products of a
//! layer (QKV, attention output, FFN in and out) of BERT-base and BERT-large, and the
//! two per-head attention products (scores `m x 64 * 64 x m` and context
//! `m x m * m x 64`); optionally the one-hot embedding (`m x 30522 * 30522 x hidden`).
//! Each kernel runs each shape once untimed (its result checked), then `reps` rounds
//! time every kernel once per round, so that all see the same share of whatever else the
//! machine is doing; the best round counts (the least disturbed one). Every
//! integer result is compared with the portable kernel's, so a fast wrong kernel fails
//! the run.
//!
//! The f32 reference is `matrixmultiply` (the backend of ndarray): a light, well-kept
//! crate that picks AVX-512/FMA/AVX2 at run time, so it shows what this CPU's float
//! units do on the same shapes.

use std::time::Instant;

use anyhow::{bail, Result};
use secformer_core::kernel::MatMul;
use secformer_core::prg::{Prg, Seed};
use serde::Serialize;

use crate::kernel::{portable_gemm, HostKernel, Isa};

/// One product shape of the benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct Shape {
    /// What it is (`base qkv`, `large ffn2`, `head scores`, ...).
    pub label: String,
    /// Rows of A (tokens).
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of B.
    pub n: usize,
}

/// One kernel on one shape.
#[derive(Debug, Clone, Serialize)]
pub struct GemmRow {
    /// The shape.
    #[serde(flatten)]
    pub shape: Shape,
    /// Kernel name (`portable`, `avx2`, `avx512`, `avx512+2t`, `avx512 prepacked`,
    /// `avx512 u32`, `f32 matrixmultiply`, ...).
    pub kernel: String,
    /// Ring (`u64`, `u32`) or `f32`.
    pub elem: &'static str,
    /// `c += a * b` instead of `c = a * b`.
    pub accumulate: bool,
    /// Best wall seconds for one product.
    pub seconds: f64,
    /// Best CPU seconds of the calling thread for one product: for a one-thread kernel
    /// its own CPU time (on a shared machine, the time it actually ran); where it is
    /// close to `seconds`, the run was not preempted. (The helper thread of a two-thread
    /// run is not counted: Linux may add an exited thread's time only after it has woken
    /// the thread that joins it.)
    pub cpu_seconds: f64,
    /// Multiply-adds per wall second, in units of 10^9.
    pub gmacs: f64,
}

/// The result of `bench gemm`.
#[derive(Debug, Clone, Serialize)]
pub struct GemmBench {
    /// The CPU's model name.
    pub cpu: String,
    /// The SIMD features detected at run time.
    pub features: Vec<&'static str>,
    /// Logical CPUs.
    pub cpus: usize,
    /// The 1/5/15-minute load average when the run started (the machine may be shared).
    pub load_average: String,
    /// Timed repetitions per kernel and shape (after one warm-up).
    pub reps: usize,
    /// Every kernel on every shape.
    pub rows: Vec<GemmRow>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct GemmBenchOptions {
    /// Token counts (rows of A).
    pub rows: Vec<usize>,
    /// Timed repetitions.
    pub reps: usize,
    /// Only kernels whose name contains one of these (all when empty).
    pub kernels: Vec<String>,
    /// Accumulate modes to time.
    pub accumulate: Vec<bool>,
    /// Add the one-hot embedding product (`m x 30522 x 768`).
    pub embedding: bool,
    /// Only shapes whose label contains one of these (all when empty).
    pub shapes: Vec<String>,
}

/// The command-line arguments of `bench gemm`.
#[derive(Debug, Clone, clap::Args)]
pub struct GemmArgs {
    /// Token counts (rows of A), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "128,512")]
    pub rows: Vec<usize>,
    /// Timed repetitions per kernel and shape (the best counts).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Only kernels whose name contains one of these, comma-separated (e.g. `avx512,f32`).
    #[arg(long, value_delimiter = ',')]
    pub kernels: Vec<String>,
    /// Accumulate modes to time: `set` (c = a b), `add` (c += a b) or `both`.
    #[arg(long, default_value = "both", value_parser = ["set", "add", "both"])]
    pub accumulate: String,
    /// Also time the one-hot embedding product (m x 30522 x 768).
    #[arg(long)]
    pub embedding: bool,
    /// Only shapes whose label contains one of these, comma-separated (e.g. `base,head`).
    #[arg(long, value_delimiter = ',')]
    pub shapes: Vec<String>,
}

impl GemmArgs {
    /// The options these arguments ask for.
    pub fn options(&self) -> GemmBenchOptions {
        GemmBenchOptions {
            rows: self.rows.clone(),
            reps: self.reps,
            kernels: self.kernels.clone(),
            accumulate: match self.accumulate.as_str() {
                "set" => vec![false],
                "add" => vec![true],
                _ => vec![false, true],
            },
            embedding: self.embedding,
            shapes: self.shapes.clone(),
        }
    }
}

/// The most rows a benchmark shape may have: BERT's longest input, a few times over (larger
/// shapes would need tens of GiB for the operands, and an allocation failure is a panic).
pub const MAX_BENCH_ROWS: usize = 8192;

/// Refuses empty or oversized benchmarks before any operand is allocated.
fn check_sizes(opts: &GemmBenchOptions) -> Result<()> {
    if let Some(m) = opts.rows.iter().find(|m| **m == 0 || **m > MAX_BENCH_ROWS) {
        bail!("--rows {m} is out of range: each row count must be in 1..={MAX_BENCH_ROWS}");
    }
    if opts.reps == 0 {
        bail!("--reps must be at least 1");
    }
    Ok(())
}

/// BERT's shapes for `m` tokens.
pub fn bert_shapes(m: usize, embedding: bool) -> Vec<Shape> {
    let s = |label: &str, k: usize, n: usize| Shape {
        label: label.to_string(),
        m,
        k,
        n,
    };
    let mut v = vec![
        s("base qkv", 768, 2304),
        s("base out", 768, 768),
        s("base ffn1", 768, 3072),
        s("base ffn2", 3072, 768),
        s("large qkv", 1024, 3072),
        s("large out", 1024, 1024),
        s("large ffn1", 1024, 4096),
        s("large ffn2", 4096, 1024),
        s("head scores", 64, m),
        s("head context", m, 64),
    ];
    if embedding {
        v.push(s("embedding", 30522, 768));
    }
    v
}

/// A kernel under test: how to run it on one shape.
enum Runner {
    U64(HostKernel),
    U64Prepacked(HostKernel),
    U32(HostKernel),
    F32,
}

/// The kernels this CPU can run, by name.
fn runners() -> Vec<(String, Runner)> {
    let mut v = Vec::new();
    for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
        let k = HostKernel::with_isa(isa).expect("available");
        v.push((isa.name().to_string(), Runner::U64(k)));
        if isa != Isa::Portable {
            v.push((format!("{} prepacked", isa.name()), Runner::U64Prepacked(k)));
            let k2 = k.with_threads(2);
            v.push((format!("{}+2t", isa.name()), Runner::U64(k2)));
            v.push((
                format!("{} prepacked+2t", isa.name()),
                Runner::U64Prepacked(k2),
            ));
        }
        v.push((format!("{} u32", isa.name()), Runner::U32(k)));
        if isa != Isa::Portable {
            v.push((
                format!("{} u32+2t", isa.name()),
                Runner::U32(k.with_threads(2)),
            ));
        }
    }
    v.push(("f32 matrixmultiply".into(), Runner::F32));
    v
}

/// Wall and calling-thread CPU seconds of one call of `f`.
fn time_once(f: &mut dyn FnMut()) -> Timing {
    let (t, c) = (Instant::now(), thread_cpu_seconds());
    f();
    Timing {
        cpu: thread_cpu_seconds() - c,
        wall: t.elapsed().as_secs_f64(),
    }
}

/// Wall and CPU time of one product.
#[derive(Debug, Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
}

/// CPU seconds this thread has used; 0 where the clock is missing.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Inputs of one shape, and the portable kernel's products to check against.
struct Case {
    a: Vec<u64>,
    b: Vec<u64>,
    c0: Vec<u64>,
    want: [Vec<u64>; 2],
    want32: [Vec<u32>; 2],
}

impl Case {
    fn new(sh: &Shape, prg: &mut Prg) -> Self {
        let (m, k, n) = (sh.m, sh.k, sh.n);
        let mut a = vec![0u64; m * k];
        let mut b = vec![0u64; k * n];
        let mut c0 = vec![0u64; m * n];
        prg.fill(&mut a);
        prg.fill(&mut b);
        prg.fill(&mut c0);
        let want = [false, true].map(|acc| {
            let mut c = c0.clone();
            secformer_core::kernel::Portable.gemm(m, k, n, &a, &b, &mut c, acc);
            c
        });
        let (a32, b32, c32) = (narrow(&a), narrow(&b), narrow(&c0));
        let want32 = [false, true].map(|acc| {
            let mut c = c32.clone();
            portable_gemm(m, k, n, &a32, &b32, &mut c, acc);
            c
        });
        Case {
            a,
            b,
            c0,
            want,
            want32,
        }
    }
}

fn narrow(v: &[u64]) -> Vec<u32> {
    v.iter().map(|&x| x as u32).collect()
}

/// One product of `run` on this shape, ready to time: the inputs converted (and B packed)
/// once, the output checked against the portable kernel's on a first, untimed call.
type Prepared<'a> = (Box<dyn FnMut() + 'a>, &'static str);

fn prepare<'a>(run: &'a Runner, sh: &Shape, case: &'a Case, acc: bool) -> Result<Prepared<'a>> {
    let (m, k, n) = (sh.m, sh.k, sh.n);
    let want = &case.want[acc as usize];
    let mut c = case.c0.clone();
    let check = |ok: bool| -> Result<()> {
        if !ok {
            bail!("kernel result differs from the portable kernel on {m}x{k}x{n}");
        }
        Ok(())
    };
    Ok(match run {
        Runner::U64(kern) => {
            kern.gemm(m, k, n, &case.a, &case.b, &mut c, acc);
            check(&c == want)?;
            let f = move || kern.gemm(m, k, n, &case.a, &case.b, &mut c, acc);
            (Box::new(f), "u64")
        }
        Runner::U64Prepacked(kern) => {
            let packed = kern.pack_b(k, n, &case.b);
            kern.gemm_packed(m, &case.a, &packed, &mut c, acc);
            check(&c == want)?;
            let f = move || kern.gemm_packed(m, &case.a, &packed, &mut c, acc);
            (Box::new(f), "u64")
        }
        Runner::U32(kern) => {
            let (a, b) = (narrow(&case.a), narrow(&case.b));
            let mut c = narrow(&case.c0);
            kern.gemm_u32(m, k, n, &a, &b, &mut c, acc);
            check(c == case.want32[acc as usize])?;
            let f = move || kern.gemm_u32(m, k, n, &a, &b, &mut c, acc);
            (Box::new(f), "u32")
        }
        Runner::F32 => {
            let to_f =
                |v: &[u64]| -> Vec<f32> { v.iter().map(|&x| (x >> 40) as f32 / 1e6).collect() };
            let (a, b) = (to_f(&case.a), to_f(&case.b));
            let mut c = vec![0f32; m * n];
            let beta = if acc { 1.0 } else { 0.0 };
            let f = move || {
                // SAFETY: a is m x k, b is k x n, c is m x n, all row-major and live for
                // the call (strides: rows k, n, n apart; columns 1 apart).
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        k as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        beta,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            };
            (Box::new(f), "f32")
        }
    })
}

/// Runs the benchmark.
pub fn bench_gemm(opts: &GemmBenchOptions) -> Result<GemmBench> {
    check_sizes(opts)?;
    let mut prg = Prg::new(&Seed::from_u64_for_tests(0x6e6d), 0);
    let runners: Vec<_> = runners()
        .into_iter()
        .filter(|(name, _)| {
            opts.kernels.is_empty() || opts.kernels.iter().any(|k| name.contains(k.as_str()))
        })
        .collect();
    let mut rows = Vec::new();
    for &m in &opts.rows {
        let wanted = |sh: &Shape| {
            opts.shapes.is_empty() || opts.shapes.iter().any(|w| sh.label.contains(w.as_str()))
        };
        for sh in bert_shapes(m, opts.embedding).into_iter().filter(wanted) {
            let case = Case::new(&sh, &mut prg);
            for &acc in &opts.accumulate {
                // Rounds over all kernels, so that each sees the same share of whatever
                // else the machine is doing; the best round counts.
                let mut prepared = runners
                    .iter()
                    .map(|(name, run)| Ok((name, prepare(run, &sh, &case, acc)?)))
                    .collect::<Result<Vec<_>>>()?;
                let mut best = vec![
                    Timing {
                        wall: f64::INFINITY,
                        cpu: f64::INFINITY
                    };
                    prepared.len()
                ];
                for _ in 0..opts.reps.max(1) {
                    for ((_, (f, _)), b) in prepared.iter_mut().zip(&mut best) {
                        let t = time_once(f.as_mut());
                        b.wall = b.wall.min(t.wall);
                        b.cpu = b.cpu.min(t.cpu);
                    }
                }
                let macs = (sh.m * sh.k * sh.n) as f64;
                for ((name, (_, elem)), t) in prepared.iter().zip(&best) {
                    rows.push(GemmRow {
                        shape: sh.clone(),
                        kernel: name.to_string(),
                        elem,
                        accumulate: acc,
                        seconds: t.wall,
                        cpu_seconds: t.cpu,
                        gmacs: macs / t.wall / 1e9,
                    });
                }
            }
        }
    }
    Ok(GemmBench {
        cpu: cpu_name(),
        features: features(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        load_average: std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        reps: opts.reps,
        rows,
    })
}

/// The CPU's model name from /proc/cpuinfo (empty where there is none).
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// SIMD features that matter to the kernels, as detected at run time.
pub fn features() -> Vec<&'static str> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(
                if std::arch::is_x86_feature_detected!($f) {
                    v.push($f);
                }
            )*};
        }
        probe!(
            "avx2",
            "fma",
            "avx512f",
            "avx512dq",
            "avx512ifma",
            "avx512bw",
            "avx512vl"
        );
    }
    v
}

/// The table `bench gemm` prints.
pub fn print_table(b: &GemmBench) {
    println!(
        "CPU: {} ({} logical CPUs), features: {}",
        b.cpu,
        b.cpus,
        b.features.join(" ")
    );
    println!(
        "load average at start: {}; best of {} reps after a warm-up",
        b.load_average, b.reps
    );
    println!(
        "{:<13} {:>5} {:>6} {:>6} {:<24} {:>4} {:>11} {:>11} {:>8}",
        "shape", "m", "k", "n", "kernel", "acc", "seconds", "cpu s", "G mac/s"
    );
    for r in &b.rows {
        println!(
            "{:<13} {:>5} {:>6} {:>6} {:<24} {:>4} {:>11.6} {:>11.6} {:>8.2}",
            r.shape.label,
            r.shape.m,
            r.shape.k,
            r.shape.n,
            r.kernel,
            if r.accumulate { "+=" } else { "=" },
            r.seconds,
            r.cpu_seconds,
            r.gmacs
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_runs_and_matches() {
        let opts = GemmBenchOptions {
            rows: vec![3],
            reps: 1,
            kernels: vec![],
            accumulate: vec![false, true],
            embedding: false,
            shapes: vec!["head".into(), "base out".into()],
        };
        let b = bench_gemm(&opts).expect("every kernel matches the portable one");
        let kernels = runners().len();
        assert_eq!(b.rows.len(), 3 * kernels * 2);
        assert!(b.rows.iter().all(|r| r.seconds > 0.0 && r.gmacs > 0.0));
        for isa in Isa::ALL {
            let present = b.rows.iter().any(|r| r.kernel == isa.name());
            assert_eq!(present, isa.available(), "{}", isa.name());
            if !isa.available() {
                eprintln!(
                    "SKIPPED in this bench: {} ({:?})",
                    isa.name(),
                    isa.missing()
                );
            }
        }
        serde_json::to_string(&b).expect("serializes");
    }
}
