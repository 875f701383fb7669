//! Fast wrapping-`u64` (and `u32`) GEMM for x86-64, chosen at run time.
//!
//! No mainstream crate multiplies wrapping integer matrices quickly (gemm, matrixmultiply
//! and faer are float-only), so this module has its own kernels behind one blocked,
//! packed driver ([`driver`], the BLIS loop nest):
//!
//! * AVX-512 (F + DQ): `vpmullq` gives the ring product of eight `u64` lanes in one
//!   instruction; an 8 x 24 register tile.
//! * AVX2: three 32x32->64 multiplies per `u64` product; a 4 x 8 tile.
//! * Portable: the core's [`Portable`] kernel (what a device runs).
//!
//! [`HostKernel::detect`] picks the best the CPU has (`is_x86_feature_detected!`), so one
//! binary runs on AVX2-only and AVX-512 machines. The `u32` products
//! ([`MatMul::gemm_u32`]) serve the 32-bit ring (the embedding lookup's product).
//!
//! Threads: [`HostKernel::with_threads`] splits a large product's columns over scoped
//! std threads (no pool to keep, nothing global; a spawn costs tens of microseconds, so
//! products under [`PAR_MIN_MACS`] multiply-adds stay on one thread).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod driver;

use driver::{BSource, CPtr, Elem, Scratch, Tile};
use secformer_core::kernel::{MatMul, Portable};
use std::cell::RefCell;

/// The instruction set a [`HostKernel`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// The core's portable kernel (any CPU).
    Portable,
    /// AVX2 packed kernel.
    Avx2,
    /// AVX-512 F + DQ packed kernel.
    Avx512,
}

impl Isa {
    /// Every instruction set, slowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// Whether this CPU can run it (checked at run time).
    pub fn available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512dq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Why it cannot run here, for messages (`None` if it can).
    pub fn missing(self) -> Option<&'static str> {
        if self.available() {
            return None;
        }
        Some(match self {
            Isa::Portable => "never",
            Isa::Avx2 => "the CPU lacks AVX2",
            Isa::Avx512 => "the CPU lacks AVX-512F or AVX-512DQ",
        })
    }
}

/// Products with fewer multiply-adds than this stay on one thread even when more are
/// allowed: below it (0.3 ms on one AVX-512 core) a spawn, tens of microseconds, eats
/// much of what the split saves.
pub const PAR_MIN_MACS: usize = 1 << 22;

/// The most threads [`HostKernel::detect`] gives a product (fewer if the machine has
/// fewer CPUs). Two, because on a 2-CPU AMD EPYC (Zen 4) two threads ran the m = 128
/// weight products of BERT 1.7-1.9 times as fast as one (`secformer bench gemm`, with
/// the second CPU otherwise idle, as it is for P0 during owned products while P1
/// waits). Where both parties multiply at once on one 2-CPU machine, give each
/// `with_threads(1)`.
pub const DEFAULT_THREADS: usize = 2;

/// The environment variable that overrides [`HostKernel::detect`]'s instruction set.
pub const KERNEL_ENV: &str = "SECFORMER_KERNEL";

/// The instruction set [`KERNEL_ENV`] asks for, if it names one this CPU runs.
fn chosen_isa() -> Option<Isa> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let want = std::env::var(KERNEL_ENV).ok()?;
    let found = Isa::ALL.into_iter().find(|i| i.name() == want.trim());
    let why = match found {
        Some(isa) => match isa.missing() {
            None => return Some(isa),
            Some(why) => why.to_string(),
        },
        None => "expected portable, avx2 or avx512".to_string(),
    };
    WARNED.call_once(|| {
        eprintln!("warning: {KERNEL_ENV}={want} ignored ({why}); using the best kernel");
    });
    None
}

/// A matmul kernel for this CPU: an instruction set and a thread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostKernel {
    isa: Isa,
    threads: usize,
}

impl HostKernel {
    /// The best instruction set this CPU supports, with [`DEFAULT_THREADS`] (at most the
    /// CPUs there are).
    ///
    /// The environment variable [`KERNEL_ENV`] (`portable`, `avx2` or `avx512`) chooses a
    /// slower instruction set instead, to measure what the kernel contributes on one
    /// machine (`SECFORMER_KERNEL=avx2 secformer bench bert`); a value this CPU cannot run
    /// or does not know is reported once on stderr and ignored.
    pub fn detect() -> Self {
        let best = *Isa::ALL
            .iter()
            .rev()
            .find(|i| i.available())
            .unwrap_or(&Isa::Portable);
        let isa = chosen_isa().unwrap_or(best);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        HostKernel {
            isa,
            threads: DEFAULT_THREADS.min(cpus),
        }
    }

    /// A kernel on the given instruction set, one thread; `None` if the CPU lacks it.
    pub fn with_isa(isa: Isa) -> Option<Self> {
        isa.available().then_some(HostKernel { isa, threads: 1 })
    }

    /// The portable kernel, one thread.
    pub fn portable() -> Self {
        HostKernel {
            isa: Isa::Portable,
            threads: 1,
        }
    }

    /// The same kernel splitting each large product over `threads` threads (at least 1).
    /// Worth it where the party that multiplies runs alone (P0 during owned weight
    /// products while P1 waits) and the CPU has a second core's multipliers to give.
    pub fn with_threads(self, threads: usize) -> Self {
        HostKernel {
            threads: threads.max(1),
            ..self
        }
    }

    /// The instruction set.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Threads per large product.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The kernel's name (for reports): the instruction set, `+threads` with more than one.
    pub fn name(&self) -> &'static str {
        match (self.isa, self.threads > 1) {
            (Isa::Portable, false) => "portable",
            (Isa::Portable, true) => "portable+threads",
            (Isa::Avx2, false) => "avx2",
            (Isa::Avx2, true) => "avx2+threads",
            (Isa::Avx512, false) => "avx512",
            (Isa::Avx512, true) => "avx512+threads",
        }
    }

    /// Packs a `k x n` row-major B (a weight used by many products) once, in the layout
    /// this kernel's driver reads, so that [`HostKernel::gemm_packed`] skips packing it per
    /// call. On the portable kernel it is a copy.
    ///
    /// # Panics
    /// If `b` is shorter than `k * n`.
    pub fn pack_b(&self, k: usize, n: usize, b: &[u64]) -> PackedB {
        assert!(
            b.len() >= k * n,
            "pack_b: b has {} elements, {k}x{n} needs {}",
            b.len(),
            k * n
        );
        let data = match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => driver::pack_b_full::<avx512::U64x8x24>(k, n, b),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => driver::pack_b_full::<avx2::U64x4x8>(k, n, b),
            _ => {
                let mut buf = driver::AlignedBuf::default();
                buf.resized(k * n).copy_from_slice(&b[..k * n]);
                buf
            }
        };
        PackedB {
            isa: self.isa,
            k,
            n,
            data,
        }
    }

    /// `c = a * b` (or `c += a * b`) for a B packed by [`HostKernel::pack_b`]: `a` is
    /// `m x k`, `c` is `m x n` with B's `k` and `n`. Runs on the instruction set B was
    /// packed for, with this kernel's threads.
    ///
    /// # Panics
    /// If `a` or `c` is shorter than its shape.
    pub fn gemm_packed(&self, m: usize, a: &[u64], b: &PackedB, c: &mut [u64], accumulate: bool) {
        let (k, n) = (b.k, b.n);
        check_lens(m, k, n, a.len(), k * n, c.len());
        let src = BSource::Packed(b.data.as_slice());
        match b.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => self.tiled::<avx512::U64x8x24>(m, k, n, a, src, c, accumulate),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => self.tiled::<avx2::U64x4x8>(m, k, n, a, src, c, accumulate),
            _ => self.split_rows(
                m,
                k,
                n,
                a,
                b.data.as_slice(),
                c,
                accumulate,
                |m, k, n, a, b, c, acc| Portable.gemm(m, k, n, a, b, c, acc),
            ),
        }
    }

    /// Runs the packed driver with tile `T`, splitting columns over the threads.
    #[allow(clippy::too_many_arguments)]
    fn tiled<T: Tile>(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &[T::E],
        b: BSource<'_, T::E>,
        c: &mut [T::E],
        accumulate: bool,
    ) where
        T::E: WithScratch,
    {
        if !accumulate {
            c[..m * n].fill(T::E::default());
        }
        let cp = CPtr::new(c, m, n);
        let panels = n.div_ceil(T::NR);
        let threads = if m * k * n >= PAR_MIN_MACS {
            self.threads.min(panels).max(1)
        } else {
            1
        };
        // Whole panels per thread, the first threads taking the extra one.
        let bounds = |t: usize| ((panels * t).div_ceil(threads) * T::NR).min(n);
        let run = move |t: usize, scratch: &mut Scratch<T::E>| {
            let cols = bounds(t)..bounds(t + 1);
            // SAFETY: `tiled` is only called for a tile whose instruction set `HostKernel`
            // checked; `a`, `b` and `c` were checked against the shape by the caller;
            // thread `t` alone writes columns `cols` of C, and the scoped threads end
            // before `c`'s borrow does.
            unsafe { driver::gemm_cols::<T>(k, a, b, cp, cols, scratch) }
        };
        // The calling thread keeps one set of packing buffers per thread, so that the
        // helper threads (new on every call) do not allocate their own.
        T::E::with_scratch(threads, |sets| {
            let (mine, helpers) = sets.split_first_mut().expect("at least one set");
            if helpers.is_empty() {
                return run(0, mine);
            }
            std::thread::scope(|s| {
                for (t, set) in helpers.iter_mut().enumerate() {
                    s.spawn(move || run(t + 1, set));
                }
                run(0, mine);
            });
        });
    }

    /// Runs a whole-matrix kernel on row bands, one per thread.
    #[allow(clippy::too_many_arguments)]
    fn split_rows<E: Elem>(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &[E],
        b: &[E],
        c: &mut [E],
        accumulate: bool,
        kernel: WholeGemm<E>,
    ) {
        let threads = if m * k * n >= PAR_MIN_MACS {
            self.threads.min(m)
        } else {
            1
        };
        if threads <= 1 {
            return kernel(m, k, n, a, b, c, accumulate);
        }
        let rows = m.div_ceil(threads);
        std::thread::scope(|s| {
            for (ab, cb) in a[..m * k]
                .chunks(rows * k)
                .zip(c[..m * n].chunks_mut(rows * n))
            {
                s.spawn(move || kernel(ab.len() / k.max(1), k, n, ab, b, cb, accumulate));
            }
        });
    }
}

/// A `u64` weight matrix packed once for one instruction set ([`HostKernel::pack_b`]).
#[derive(Debug, Clone)]
pub struct PackedB {
    isa: Isa,
    k: usize,
    n: usize,
    data: driver::AlignedBuf<u64>,
}

impl PackedB {
    /// Rows (the product's inner dimension).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The instruction set it was packed for.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

impl Default for HostKernel {
    fn default() -> Self {
        Self::detect()
    }
}

impl MatMul for HostKernel {
    fn gemm(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &[u64],
        b: &[u64],
        c: &mut [u64],
        accumulate: bool,
    ) {
        check_lens(m, k, n, a.len(), b.len(), c.len());
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                self.tiled::<avx512::U64x8x24>(m, k, n, a, BSource::Raw(b), c, accumulate)
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => self.tiled::<avx2::U64x4x8>(m, k, n, a, BSource::Raw(b), c, accumulate),
            _ => self.split_rows(m, k, n, a, b, c, accumulate, |m, k, n, a, b, c, acc| {
                Portable.gemm(m, k, n, a, b, c, acc)
            }),
        }
    }

    fn gemm_i32(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &[u64],
        b: &[i32],
        c: &mut [u64],
        accumulate: bool,
    ) {
        check_lens(m, k, n, a.len(), b.len(), c.len());
        let src = BSource::RawI32(b);
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => self.tiled::<avx512::U64x8x24>(m, k, n, a, src, c, accumulate),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => self.tiled::<avx2::U64x4x8>(m, k, n, a, src, c, accumulate),
            _ => secformer_core::kernel::portable_i32(m, k, n, a, b, c, accumulate),
        }
    }

    /// Wrapping `u32` product on the `u32` tiles (twice the lanes of the `u64` ones).
    ///
    /// # Panics
    /// If a slice is shorter than its shape.
    fn gemm_u32(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &[u32],
        b: &[u32],
        c: &mut [u32],
        accumulate: bool,
    ) {
        check_lens(m, k, n, a.len(), b.len(), c.len());
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                self.tiled::<avx512::U32x8x48>(m, k, n, a, BSource::Raw(b), c, accumulate)
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => self.tiled::<avx2::U32x6x16>(m, k, n, a, BSource::Raw(b), c, accumulate),
            _ => self.split_rows(m, k, n, a, b, c, accumulate, portable_gemm::<u32>),
        }
    }
}

fn check_lens(m: usize, k: usize, n: usize, a: usize, b: usize, c: usize) {
    assert!(
        a >= m * k && b >= k * n && c >= m * n,
        "gemm: slice too short for {m}x{k} * {k}x{n} (a {a}, b {b}, c {c})"
    );
}

/// The portable product on any ring element (blocked i-k-j loops, as the core's kernel).
pub fn portable_gemm<E: Elem>(
    m: usize,
    k: usize,
    n: usize,
    a: &[E],
    b: &[E],
    c: &mut [E],
    accumulate: bool,
) {
    check_lens(m, k, n, a.len(), b.len(), c.len());
    if !accumulate {
        c[..m * n].fill(E::default());
    }
    const KB: usize = 256;
    for p0 in (0..k).step_by(KB) {
        let p1 = (p0 + KB).min(k);
        for i in 0..m {
            let crow = &mut c[i * n..(i + 1) * n];
            for p in p0..p1 {
                let av = a[i * k + p];
                for (cv, bv) in crow.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                    *cv = cv.wadd(av.wmul(*bv));
                }
            }
        }
    }
}

/// A kernel that multiplies whole matrices: `(m, k, n, a, b, c, accumulate)`.
type WholeGemm<E> = fn(usize, usize, usize, &[E], &[E], &mut [E], bool);

/// Packing buffers kept by the calling thread and reused across calls: one set for each
/// thread of a product.
pub trait WithScratch: Elem {
    /// Runs `f` with exactly `sets` of this thread's scratch sets for this element type.
    fn with_scratch<R>(sets: usize, f: impl FnOnce(&mut [Scratch<Self>]) -> R) -> R;
}

thread_local! {
    static SCRATCH_U64: RefCell<Vec<Scratch<u64>>> = RefCell::default();
    static SCRATCH_U32: RefCell<Vec<Scratch<u32>>> = RefCell::default();
}

fn with_sets<E: Elem, R>(
    cell: &RefCell<Vec<Scratch<E>>>,
    sets: usize,
    f: impl FnOnce(&mut [Scratch<E>]) -> R,
) -> R {
    let mut v = cell.borrow_mut();
    if v.len() < sets {
        v.resize_with(sets, Scratch::default);
    }
    f(&mut v[..sets])
}

impl WithScratch for u64 {
    fn with_scratch<R>(sets: usize, f: impl FnOnce(&mut [Scratch<Self>]) -> R) -> R {
        SCRATCH_U64.with(|c| with_sets(c, sets, f))
    }
}

impl WithScratch for u32 {
    fn with_scratch<R>(sets: usize, f: impl FnOnce(&mut [Scratch<Self>]) -> R) -> R {
        SCRATCH_U32.with(|c| with_sets(c, sets, f))
    }
}

#[cfg(test)]
mod tests;
