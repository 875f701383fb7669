//! The blocked GEMM driver shared by the SIMD kernels (the BLIS loop nest).
//!
//! `C += A * B` is cut into blocks that fit the caches: B into `KC x NC` blocks, each
//! packed into `KC x NR` micro-panels (zero-padded to whole panels) so that one panel
//! stays in L1 while the register tile sweeps the rows; A into `MC x KC` blocks packed
//! into `MR x KC` micro-panels (interleaved by depth) that stay in L2. A [`Tile`] (the
//! micro-kernel) multiplies one A micro-panel by one B micro-panel into an `MR x NR`
//! register tile and adds it to C. Padding means the micro-kernel never sees a ragged
//! edge; tiles that overhang C are written through a small stack buffer.
//!
//! The driver works on a column range of C, so two threads can take disjoint ranges.

use std::ops::Range;

/// A ring element the kernels multiply (`u64` or `u32`, wrapping).
pub trait Elem: Copy + Default + PartialEq + Send + Sync + 'static {
    /// `self + other` mod 2^bits.
    fn wadd(self, other: Self) -> Self;
    /// `self * other` mod 2^bits.
    fn wmul(self, other: Self) -> Self;
    /// The ring element a signed 32-bit value sign-extends to.
    fn from_i32(x: i32) -> Self;
}

impl Elem for u64 {
    fn wadd(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
    fn from_i32(x: i32) -> Self {
        x as i64 as u64
    }
    fn wmul(self, other: Self) -> Self {
        self.wrapping_mul(other)
    }
}

impl Elem for u32 {
    fn wadd(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
    fn from_i32(x: i32) -> Self {
        x as u32
    }
    fn wmul(self, other: Self) -> Self {
        self.wrapping_mul(other)
    }
}

/// Largest `MR * NR` of any tile (the size of the stack buffer for overhanging tiles).
pub const MAX_TILE: usize = 8 * 48;

/// A register-tile micro-kernel and the block sizes it is tuned for.
pub trait Tile {
    /// The element type.
    type E: Elem;
    /// Rows of the register tile.
    const MR: usize;
    /// Columns of the register tile.
    const NR: usize;
    /// Depth of a block (a B micro-panel is `KC * NR` elements, sized for L1).
    const KC: usize;
    /// Rows of an A block (`MC * KC` elements, sized for L2).
    const MC: usize;
    /// Columns of a B block (`KC * NC` elements, sized for L2/L3); a multiple of `NR`.
    const NC: usize;

    /// `c[r * ldc + t] += sum_p a[p * MR + r] * b[p * NR + t]` for `r < MR`, `t < NR`,
    /// `p < kc`.
    ///
    /// # Safety
    /// The CPU has the kernel's target features; `a` holds `kc * MR` and `b` holds
    /// `kc * NR` readable elements; `c` points at `MR` rows of `NR` writable elements,
    /// `ldc` apart.
    unsafe fn run(kc: usize, a: *const Self::E, b: *const Self::E, c: *mut Self::E, ldc: usize);
}

/// Elements in an A pack of `rows` rows and depth `kc` (whole `mr`-row panels).
pub fn a_pack_len(mr: usize, rows: usize, kc: usize) -> usize {
    rows.div_ceil(mr) * kc * mr
}

/// Elements in a B pack of depth `kc` and `cols` columns (whole `nr`-column panels).
pub fn b_pack_len(nr: usize, kc: usize, cols: usize) -> usize {
    cols.div_ceil(nr) * kc * nr
}

/// Packs rows `rows` and depth `depth` of row-major `a` (leading dimension `lda`) into
/// `MR`-row micro-panels: panel `i` holds `a[rows.start + i*MR + r][depth.start + p]`
/// at `i*kc*MR + p*MR + r`, and zero for rows past the end. `dst` is [`a_pack_len`]
/// long; every element is written.
pub fn pack_a<E: Elem>(
    mr: usize,
    a: &[E],
    lda: usize,
    rows: Range<usize>,
    depth: Range<usize>,
    dst: &mut [E],
) {
    let kc = depth.len();
    for (ip, panel) in dst.chunks_exact_mut(kc * mr).enumerate() {
        for r in 0..mr {
            let i = rows.start + ip * mr + r;
            if i < rows.end {
                let src = &a[i * lda + depth.start..i * lda + depth.end];
                for (p, &v) in src.iter().enumerate() {
                    panel[p * mr + r] = v;
                }
            } else {
                for p in 0..kc {
                    panel[p * mr + r] = E::default();
                }
            }
        }
    }
}

/// Packs depth `depth` and columns `cols` of row-major `b` (leading dimension `ldb`) into
/// `NR`-column micro-panels: panel `j` holds `b[depth.start + p][cols.start + j*NR + t]`
/// at `j*kc*NR + p*NR + t`, and zero for columns past the end. `dst` is [`b_pack_len`]
/// long; every element is written.
pub fn pack_b<E: Elem>(
    nr: usize,
    b: &[E],
    ldb: usize,
    depth: Range<usize>,
    cols: Range<usize>,
    dst: &mut [E],
) {
    pack_b_with(nr, b, ldb, depth, cols, dst, |row, src| {
        row.copy_from_slice(src)
    });
}

/// [`pack_b`] from 32-bit values, sign-extended to ring elements while packing.
pub fn pack_b_i32<E: Elem>(
    nr: usize,
    b: &[i32],
    ldb: usize,
    depth: Range<usize>,
    cols: Range<usize>,
    dst: &mut [E],
) {
    pack_b_with(nr, b, ldb, depth, cols, dst, |row, src| {
        for (d, s) in row.iter_mut().zip(src) {
            *d = E::from_i32(*s);
        }
    });
}

fn pack_b_with<E: Elem, S>(
    nr: usize,
    b: &[S],
    ldb: usize,
    depth: Range<usize>,
    cols: Range<usize>,
    dst: &mut [E],
    copy: impl Fn(&mut [E], &[S]),
) {
    let kc = depth.len();
    for (jp, panel) in dst.chunks_exact_mut(kc * nr).enumerate() {
        let j0 = cols.start + jp * nr;
        let w = nr.min(cols.end - j0);
        for (p, row) in panel.chunks_exact_mut(nr).enumerate() {
            let s = (depth.start + p) * ldb + j0;
            copy(&mut row[..w], &b[s..s + w]);
            row[w..].fill(E::default());
        }
    }
}

/// Where the B blocks come from.
#[derive(Clone, Copy)]
pub enum BSource<'a, E> {
    /// Row-major `k x n`, packed block by block during the call.
    Raw(&'a [E]),
    /// Row-major `k x n` 32-bit values, sign-extended while packing.
    RawI32(&'a [i32]),
    /// Packed once by [`pack_b_full`] for this tile's `NR` and `KC`.
    Packed(&'a [E]),
}

/// Packs all of row-major `b` (`k x n`) in the layout the driver reads: depth blocks of
/// `KC` one after the other, each holding all `ceil(n / NR)` micro-panels of that block.
pub fn pack_b_full<T: Tile>(k: usize, n: usize, b: &[T::E]) -> AlignedBuf<T::E> {
    let mut out = AlignedBuf::default();
    let dst = out.resized(b_pack_len(T::NR, k, n));
    let mut at = 0;
    for pc in (0..k).step_by(T::KC) {
        let kc = T::KC.min(k - pc);
        let len = b_pack_len(T::NR, kc, n);
        pack_b(T::NR, b, n, pc..pc + kc, 0..n, &mut dst[at..at + len]);
        at += len;
    }
    out
}

/// A buffer whose contents start on a 64-byte boundary, so that vector loads from a
/// packed panel never straddle two cache lines (the heap gives only 16-byte alignment,
/// and a misaligned panel made the same kernel run up to twice as slowly from one run to
/// the next).
#[derive(Debug, Clone, Default)]
pub struct AlignedBuf<E> {
    v: Vec<E>,
    off: usize,
    len: usize,
}

impl<E: Elem> AlignedBuf<E> {
    /// `len` elements, 64-byte aligned, reusing the allocation when it is large enough;
    /// their values are whatever was there (the packers overwrite every one).
    pub fn resized(&mut self, len: usize) -> &mut [E] {
        let pad = 64 / std::mem::size_of::<E>();
        if self.v.len() < len + pad {
            self.v.resize(len + pad, E::default());
        }
        self.off = self.v.as_ptr().align_offset(64).min(pad);
        self.len = len;
        &mut self.v[self.off..self.off + len]
    }

    /// The contents.
    pub fn as_slice(&self) -> &[E] {
        &self.v[self.off..self.off + self.len]
    }
}

/// A raw view of C for the column-parallel driver.
#[derive(Clone, Copy)]
pub struct CPtr<E> {
    ptr: *mut E,
    /// Rows.
    pub m: usize,
    /// Columns (and leading dimension).
    pub n: usize,
}

// SAFETY: a `CPtr` is only dereferenced by `gemm_cols`, and the callers hand each thread a
// disjoint column range, so no element is written by two threads; the borrow it came
// from outlives the threads (scoped).
unsafe impl<E: Send> Send for CPtr<E> {}

impl<E> CPtr<E> {
    /// A view of `c`, which must hold at least `m * n` elements.
    pub fn new(c: &mut [E], m: usize, n: usize) -> Self {
        assert!(c.len() >= m * n, "gemm: C too short");
        CPtr {
            ptr: c.as_mut_ptr(),
            m,
            n,
        }
    }
}

/// `C[:, cols] += A * B[:, cols]` with the tile `T`; `a` is `m x k` row-major.
///
/// # Safety
/// The CPU has `T`'s target features. `a` holds `m * k` elements and `b` either `k * n`
/// (raw) or the full packed layout of [`pack_b_full`]; `c` was made from a live
/// `&mut [E]` of at least `m * n` elements, and no other thread touches columns `cols`.
pub unsafe fn gemm_cols<T: Tile>(
    k: usize,
    a: &[T::E],
    b: BSource<'_, T::E>,
    c: CPtr<T::E>,
    cols: Range<usize>,
    scratch: &mut Scratch<T::E>,
) {
    let (m, n) = (c.m, c.n);
    if m == 0 || cols.is_empty() || k == 0 {
        return;
    }
    let npanels_all = n.div_ceil(T::NR);
    for jc in cols.clone().step_by(T::NC) {
        let nc = T::NC.min(cols.end - jc);
        for pc in (0..k).step_by(T::KC) {
            let kc = T::KC.min(k - pc);
            let blen = b_pack_len(T::NR, kc, nc);
            let bblock: &[T::E] = match b {
                BSource::Raw(b) => {
                    let dst = scratch.b.resized(blen);
                    pack_b(T::NR, b, n, pc..pc + kc, jc..jc + nc, dst);
                    dst
                }
                BSource::RawI32(b) => {
                    let dst = scratch.b.resized(blen);
                    pack_b_i32(T::NR, b, n, pc..pc + kc, jc..jc + nc, dst);
                    dst
                }
                BSource::Packed(p) => {
                    // Block `pc` starts after `pc` full rows of all panels; `jc` is a
                    // multiple of NR (the thread split and NC are).
                    let start = pc * npanels_all * T::NR + (jc / T::NR) * kc * T::NR;
                    &p[start..start + blen]
                }
            };
            for ic in (0..m).step_by(T::MC) {
                let mc = T::MC.min(m - ic);
                let ap = scratch.a.resized(a_pack_len(T::MR, mc, kc));
                pack_a(T::MR, a, k, ic..ic + mc, pc..pc + kc, ap);
                // SAFETY: forwarded from this function's contract.
                unsafe { block::<T>(kc, ap, bblock, c, ic..ic + mc, jc..jc + nc) };
            }
        }
    }
}

/// The two inner loops over one packed A block and one packed B block.
///
/// # Safety
/// As [`gemm_cols`]; `ap` and `bp` are packed for `rows` and `cols` with depth `kc`.
unsafe fn block<T: Tile>(
    kc: usize,
    ap: &[T::E],
    bp: &[T::E],
    c: CPtr<T::E>,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    let (mr, nr) = (T::MR, T::NR);
    for (jp, bpanel) in bp.chunks_exact(kc * nr).enumerate() {
        let j0 = cols.start + jp * nr;
        let w = nr.min(cols.end - j0);
        for (ip, apanel) in ap.chunks_exact(kc * mr).enumerate() {
            let i0 = rows.start + ip * mr;
            let h = mr.min(rows.end - i0);
            if h == mr && w == nr {
                // SAFETY: the tile lies inside C (rows i0..i0+MR, columns j0..j0+NR);
                // the panels hold kc*MR and kc*NR elements (chunks_exact).
                unsafe {
                    T::run(
                        kc,
                        apanel.as_ptr(),
                        bpanel.as_ptr(),
                        c.ptr.add(i0 * c.n + j0),
                        c.n,
                    )
                };
            } else {
                let mut tile = [T::E::default(); MAX_TILE];
                // SAFETY: the stack tile holds MR*NR <= MAX_TILE elements, NR apart.
                unsafe { T::run(kc, apanel.as_ptr(), bpanel.as_ptr(), tile.as_mut_ptr(), nr) };
                for r in 0..h {
                    // SAFETY: row i0+r < m and columns j0..j0+w < n lie inside C.
                    let crow = unsafe {
                        std::slice::from_raw_parts_mut(c.ptr.add((i0 + r) * c.n + j0), w)
                    };
                    for (cv, tv) in crow.iter_mut().zip(&tile[r * nr..r * nr + w]) {
                        *cv = cv.wadd(*tv);
                    }
                }
            }
        }
    }
}

/// Packing buffers, reused across calls on one thread.
#[derive(Default)]
pub struct Scratch<E> {
    a: AlignedBuf<E>,
    b: AlignedBuf<E>,
}
