//! The secure Transformer block of the firmware example: the one program both parties run.
//!
//! P1 (the data owner, on the device) compiles this file into the firmware; P0 (the model
//! owner, on the host) compiles the same file into `secformer-host` (its `firmware` module
//! includes it with `#[path]`), so the two sides can never run different programs. It is
//! `no_std` and allocates nothing: every buffer is carved out of one caller-provided word
//! slice ([`mem_words`] words).
//!
//! The block is one post-LayerNorm BERT encoder layer with SecFormer's 2Quad softmax:
//!
//! ```text
//! [Q | K | V] = x W_qkv + b_qkv                  weight product (W_q, b_q pre-scaled by 1/sqrt(d))
//! S_h  = Q_h K_h^T                               per head, shared x shared matmul (Beaver)
//! P    = 2Quad(S) = (S + c)^2 / rowsum (S + c)^2 rows of all heads at once, c = 5
//! C_h  = P_h V_h                                 per head, shared x shared matmul
//! a    = LayerNorm1(C W_o + b_o + x)
//! y    = LayerNorm2(GeLU(a W_1 + b_1) W_2 + b_2 + a)
//! ```
//!
//! The layer itself is the core's [`nn::encoder_layer`] (weights set up by
//! [`nn::setup_layer`], masks prepared by [`nn::prepare_layer`]). With `taps` the same
//! steps are composed here from the protocols, so that the inputs and outputs of the
//! nonlinear steps can be kept and revealed to P1 (see below); both variants request the
//! same dealer material for the weights and cost the same apart from the taps' reveal.
//!
//! Phases: **setup** (once per model load: P0's parameters are secret-shared with no
//! communication, and each weight's mask is opened, [`weight::setup`]), **prepare** (per
//! inference, before the input exists: the weight products' masks, [`weight::prepare`]),
//! **online** (P1 shares its input, the layer runs, `y` is revealed to P1 only). With
//! `taps`, P1 additionally learns the inputs and outputs of the nonlinear steps, so a test
//! can check each protocol against f64 on exactly the values it saw: a debugging aid that
//! leaks intermediate activations to the data owner, off unless asked for.

use secformer_core::arena::Arena;
use secformer_core::dealer::Dealer;
use secformer_core::error::check_len;
use secformer_core::fxp::DEFAULT_FRAC_BITS;
use secformer_core::kernel::MatMul;
use secformer_core::nn::{self, Component, LayerDims, ParamLayout, Probe, Softmax};
use secformer_core::party::PartyId;
use secformer_core::protocols::{
    gelu, input, layernorm, matmul, reveal, softmax_2quad, weight, Mask,
};
use secformer_core::session::Session;
use secformer_core::share::AShare;
use secformer_core::transport::{Stats, Transport};
use secformer_core::{Error, Result};

/// Shape of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Tokens.
    pub seq: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Attention heads (`hidden` must be a multiple).
    pub heads: usize,
    /// FFN width.
    pub inter: usize,
}

/// The block the firmware runs: sequence 8, hidden 32, 2 heads, FFN 4 x 32.
pub const DIMS: Dims = Dims {
    seq: 8,
    hidden: 32,
    heads: 2,
    inter: 128,
};

/// LayerNorm epsilon (both LayerNorms).
pub const LN_EPS: f64 = 1e-5;
/// The 2Quad softmax constant `c`.
pub const SOFTMAX_C: f64 = softmax_2quad::DEFAULT_C;
/// Comparison bits of GeLU (inputs must satisfy `|x| < 131067`, see [`gelu`]).
pub const GELU_BITS: u32 = gelu::DEFAULT_BITS;
/// Weight id of the first of the four weight products (`[q|k|v]`, `o`, FFN in, FFN out
/// take this id and the next three, as in [`nn::setup_layer`]).
pub const WEIGHT_ID_BASE: u32 = 1;

/// Words of the firmware's static arena (checked against [`mem_words`] by the host tests).
pub const ARENA_WORDS: usize = 104 * 1024;
/// Bytes of P1's per-request correction buffer ([`secformer_core::dealer::prefetch::Prefetch`]);
/// the host tests check the largest request of the block fits.
pub const PREFETCH_BYTES: usize = 320 * 1024;
/// Bytes the device may hold of P0's frames that arrive while it reads dealer data (the
/// relay's race window: at most one P0 message, see `line.rs`).
pub const STASH_BYTES: usize = 40 * 1024;

/// Elements of the input (and of the output): `seq x hidden`.
pub const INPUT_LEN: usize = DIMS.seq * DIMS.hidden;

/// P1's input, fixed point (f = 16), row-major `seq x hidden`: deterministic values in
/// `[-1.5, 1.5)` computed at compile time, so they sit in the firmware's flash. The host
/// reads the same table for its plaintext reference (in a deployment it would not know it).
pub static INPUT: [u64; INPUT_LEN] = input_table();

const fn input_table() -> [u64; INPUT_LEN] {
    let mut out = [0u64; INPUT_LEN];
    // xorshift64*, seeded by a constant.
    let mut state: u64 = 0x5EC0_F0E3_2024_0001;
    let mut i = 0;
    while i < INPUT_LEN {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // 3 * 2^16 * u - 1.5 * 2^16 with u uniform in [0, 1): values in [-1.5, 1.5).
        let v = (((r >> 40) as i64 * 3 * 65536) >> 24) - 3 * 32768;
        out[i] = v as u64;
        i += 1;
    }
    out
}

impl Dims {
    /// Width of one head.
    pub const fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// Words of all parameters, in the [`Params`] order (the core's [`ParamLayout`]).
    pub const fn param_words(&self) -> usize {
        nn::layer_param_words(self.hidden, self.inter)
    }

    /// The core's view of the shape.
    pub const fn layer(&self) -> LayerDims {
        LayerDims {
            batch: 1,
            seq: self.seq,
            hidden: self.hidden,
            heads: self.heads,
            inter: self.inter,
        }
    }

    /// Words of the taps ([`Taps`]).
    pub const fn tap_words(&self) -> usize {
        let (m, h, fi) = (self.seq, self.hidden, self.inter);
        2 * self.heads * m * m + 3 * m * h + 2 * m * fi
    }

    fn check(&self) -> Result<()> {
        if self.heads == 0 || self.hidden % self.heads != 0 || self.seq == 0 || self.inter == 0 {
            return Err(Error::Param(
                "block: hidden must be a positive multiple of heads",
            ));
        }
        Ok(())
    }
}

/// The parameters of the block, split out of one slice (fixed-point words on the wire, or
/// reals for the host's reference) laid out as the core's [`ParamLayout`]. Weights are
/// row-major `[in][out]`.
#[derive(Debug)]
pub struct Params<'a, T> {
    /// `hidden x 3 hidden`: columns `[Q | K | V]`; the Q columns are pre-scaled by
    /// `1/sqrt(head_dim)` (the attention scale, folded into the weight by P0).
    pub w_qkv: &'a [T],
    /// `3 hidden`, the Q part pre-scaled like `w_qkv`.
    pub b_qkv: &'a [T],
    /// `hidden x hidden`.
    pub w_o: &'a [T],
    /// `hidden`.
    pub b_o: &'a [T],
    /// `hidden`.
    pub ln1_gamma: &'a [T],
    /// `hidden`.
    pub ln1_beta: &'a [T],
    /// `hidden x inter`.
    pub w_1: &'a [T],
    /// `inter`.
    pub b_1: &'a [T],
    /// `inter x hidden`.
    pub w_2: &'a [T],
    /// `hidden`.
    pub b_2: &'a [T],
    /// `hidden`.
    pub ln2_gamma: &'a [T],
    /// `hidden`.
    pub ln2_beta: &'a [T],
}

impl<'a, T> Params<'a, T> {
    /// Splits `all` ([`Dims::param_words`] entries) into the parameters.
    pub fn split(d: &Dims, all: &'a [T]) -> Result<Self> {
        check_len("block parameters", d.param_words(), all.len())?;
        let l = ParamLayout::new(d.hidden, d.inter);
        let at = |off: usize, n: usize| &all[off..off + n];
        let (h, fi) = (d.hidden, d.inter);
        Ok(Params {
            w_qkv: at(l.wqkv, 3 * h * h),
            b_qkv: at(l.bqkv, 3 * h),
            w_o: at(l.wo, h * h),
            b_o: at(l.bo, h),
            ln1_gamma: at(l.ln1_g, h),
            ln1_beta: at(l.ln1_b, h),
            w_1: at(l.w1, h * fi),
            b_1: at(l.b1, fi),
            w_2: at(l.w2, fi * h),
            b_2: at(l.b2, h),
            ln2_gamma: at(l.ln2_g, h),
            ln2_beta: at(l.ln2_b, h),
        })
    }
}

/// What P1 learns with `taps`: the inputs and outputs of the nonlinear steps (the output
/// of LayerNorm 2 is the block's output itself).
#[derive(Debug)]
pub struct Taps<'a, T> {
    /// Attention scores `heads x seq x seq` (softmax input).
    pub scores: &'a [T],
    /// Attention probabilities `heads x seq x seq` (softmax output).
    pub probs: &'a [T],
    /// LayerNorm 1 input `seq x hidden`.
    pub ln1_in: &'a [T],
    /// LayerNorm 1 output `seq x hidden`.
    pub ln1_out: &'a [T],
    /// GeLU input `seq x inter`.
    pub gelu_in: &'a [T],
    /// GeLU output `seq x inter`.
    pub gelu_out: &'a [T],
    /// LayerNorm 2 input `seq x hidden`.
    pub ln2_in: &'a [T],
}

impl<'a, T> Taps<'a, T> {
    /// Splits `all` ([`Dims::tap_words`] entries) into the taps.
    pub fn split(d: &Dims, all: &'a [T]) -> Result<Self> {
        check_len("block taps", d.tap_words(), all.len())?;
        let (m, h, fi) = (d.seq, d.hidden, d.inter);
        let sc = d.heads * m * m;
        let mut rest = all;
        let mut take = |n: usize| {
            let (a, b) = rest.split_at(n);
            rest = b;
            a
        };
        Ok(Taps {
            scores: take(sc),
            probs: take(sc),
            ln1_in: take(m * h),
            ln1_out: take(m * h),
            gelu_in: take(m * fi),
            gelu_out: take(m * fi),
            ln2_in: take(m * h),
        })
    }
}

/// What this party brings to the block.
pub enum Role<'a> {
    /// P0: the parameters (fixed point, [`Params`] order).
    ModelOwner {
        /// [`Dims::param_words`] words.
        params: &'a [u64],
    },
    /// P1: the input; receives the output (and the taps, if asked for).
    DataOwner {
        /// `seq x hidden` fixed-point words.
        input: &'a [u64],
        /// `seq x hidden`: the revealed output.
        output: &'a mut [u64],
        /// [`Dims::tap_words`]: the revealed taps, when the run has taps.
        taps: Option<&'a mut [u64]>,
    },
}

/// Where the run is (for timing by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Parameter sharing and weight setup (once per model load).
    Setup,
    /// Per-inference masks, before the input exists.
    Prepare,
    /// Input sharing, the layer, the output reveal.
    Online,
    /// Finished (the dealer stream is closed).
    Done,
}

/// Time and traffic of the online layer per component (Linear = weight products and the
/// attention matmuls, Softmax, GeLU, LayerNorm, Other), from the layer's probe marks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Profile {
    /// Microseconds (of the caller's clock) per component.
    pub micros: [u64; 5],
    /// Peer rounds per component.
    pub rounds: [u64; 5],
    /// Peer payload bytes sent per component.
    pub bytes: [u64; 5],
}

/// Names of the [`Profile`] entries.
pub const COMPONENTS: [&str; 5] = ["linear", "softmax", "gelu", "layernorm", "other"];

/// A [`Probe`] that fills a [`Profile`] with the times of `clock` (microseconds).
pub struct Recorder<'c> {
    clock: &'c dyn Fn() -> u64,
    cur: Option<(usize, u64, Stats)>,
    /// What was recorded.
    pub profile: Profile,
}

impl<'c> Recorder<'c> {
    /// A recorder reading `clock`.
    pub fn new(clock: &'c dyn Fn() -> u64) -> Self {
        Recorder {
            clock,
            cur: None,
            profile: Profile::default(),
        }
    }
}

impl Probe for Recorder<'_> {
    fn mark(&mut self, next: Component, peer: Stats) {
        let now = (self.clock)();
        if let Some((i, t0, s0)) = self.cur.take() {
            self.profile.micros[i] += now.saturating_sub(t0);
            self.profile.rounds[i] += peer.rounds - s0.rounds;
            self.profile.bytes[i] += peer.payload_sent - s0.payload_sent;
        }
        let i = match next {
            Component::Linear => 0,
            Component::Softmax => 1,
            Component::Gelu => 2,
            Component::LayerNorm => 3,
            Component::Other => 4,
            Component::End => return,
        };
        self.cur = Some((i, now, peer));
    }
}

fn softmax_kind() -> Softmax {
    Softmax::TwoQuad { c: SOFTMAX_C }
}

/// Persistent activations of the tapped variant (besides `x` and the taps).
fn tapped_activations(d: &Dims) -> usize {
    let (m, h, fi, nh) = (d.seq, d.hidden, d.inter, d.heads);
    12 * m * h + 2 * nh * m * m + 2 * m * fi
}

fn tapped_scratch(d: &Dims, f: u32) -> usize {
    let (m, h, fi, dh, nh) = (d.seq, d.hidden, d.inter, d.head_dim(), d.heads);
    let mut need = 0;
    for (k, n) in [(h, 3 * h), (h, h), (h, fi), (fi, h)] {
        need = need.max(weight::apply_scratch_words(m, k, n));
    }
    need.max(matmul::batch_scratch_words(nh, m, dh, m))
        .max(matmul::batch_scratch_words(nh, m, m, dh))
        .max(softmax_2quad::scratch_words(nh * m, m, f))
        .max(layernorm::scratch_words(m, h, f))
        .max(gelu::scratch_words(m * fi, GELU_BITS))
}

/// Words of `mem` the block needs (at `f` fractional bits; with or without taps).
pub fn mem_words(d: &Dims, f: u32, taps: bool) -> usize {
    let (m, h, fi) = (d.seq, d.hidden, d.inter);
    let fixed = d.param_words()
        + nn::layer::layer_storage_words(h, fi)
        + nn::layer::prepare_words(m, h, fi)
        + m * h;
    let setup = nn::layer::setup_scratch_words(h, fi);
    let online = if taps {
        d.tap_words() + tapped_activations(d) + tapped_scratch(d, f)
    } else {
        let products = nn::layer::shared_products_scratch(m, h, fi);
        nn::layer::layer_scratch_words(products, &d.layer(), softmax_kind(), f)
    };
    fixed + setup.max(online)
}

/// [`mem_words`] of [`DIMS`] at the default encoding, the larger of the two variants.
pub fn default_mem_words() -> usize {
    mem_words(&DIMS, DEFAULT_FRAC_BITS, true).max(mem_words(&DIMS, DEFAULT_FRAC_BITS, false))
}

/// Runs the block as this party (setup, prepare, online, reveal to P1, end of the dealer
/// stream) and returns the online profile (times from `clock`, in microseconds). `taps`
/// must be the same on both sides (P1 passes a taps buffer exactly when `taps`). On error
/// the caller should tell the other side (`Session::abort`).
pub fn run<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    d: &Dims,
    role: Role<'_>,
    taps: bool,
    mem: &mut [u64],
    clock: &dyn Fn() -> u64,
    phase: &mut dyn FnMut(Phase),
) -> Result<Profile> {
    d.check()?;
    let (m, h, fi) = (d.seq, d.hidden, d.inter);
    let f = s.encoding().frac_bits();
    let need = mem_words(d, f, taps);
    if mem.len() < need {
        return Err(Error::Scratch {
            needed: need,
            available: mem.len(),
        });
    }
    let (params, input, output, tap_out) = match role {
        Role::ModelOwner { params } => {
            if s.party() != PartyId::P0 {
                return Err(Error::Param("block: only P0 holds the parameters"));
            }
            check_len("block parameters", d.param_words(), params.len())?;
            (Some(params), None, None, None)
        }
        Role::DataOwner {
            input,
            output,
            taps: t,
        } => {
            if s.party() != PartyId::P1 {
                return Err(Error::Param("block: only P1 holds the input"));
            }
            check_len("block input", m * h, input.len())?;
            check_len("block output", m * h, output.len())?;
            if t.is_some() != taps {
                return Err(Error::Param(
                    "block: P1 needs a taps buffer exactly when the run has taps",
                ));
            }
            if let Some(t) = &t {
                check_len("block taps", d.tap_words(), t.len())?;
            }
            (None, Some(input), Some(output), t)
        }
    };
    let mut ar = Arena::new(mem);
    let mut rec = Recorder::new(clock);

    // ---- setup: P0's parameters become shares (no communication), weights are set up.
    phase(Phase::Setup);
    let pw = ar.take(d.param_words())?;
    input::share_input(s, PartyId::P0, params, AShare::from_raw_slice_mut(pw))?;
    let pw: &[u64] = pw;
    let storage = ar.take(nn::layer::layer_storage_words(h, fi))?;
    let prep_storage = ar.take(nn::layer::prepare_words(m, h, fi))?;

    if !taps {
        let ps = AShare::from_raw_slice(pw);
        let layer = nn::setup_layer(
            s,
            WEIGHT_ID_BASE,
            h,
            fi,
            LN_EPS,
            ps,
            storage,
            ar.sub().rest(),
        )?;
        phase(Phase::Prepare);
        let mut prep = nn::prepare_layer(s, &layer, m, prep_storage)?;
        phase(Phase::Online);
        let x = AShare::from_raw_slice_mut(ar.take(m * h)?);
        input::share_input(s, PartyId::P1, input, x)?;
        nn::encoder_layer(
            s,
            &mut prep,
            &layer.params,
            &d.layer(),
            x,
            nn::Keys::All,
            softmax_kind(),
            &mut rec,
            ar.rest(),
        )?;
        // Only P1 learns the output.
        reveal::reveal_to(s, PartyId::P1, x, output)?;
    } else {
        let p = Params::split(d, pw)?;
        let mut st = Arena::new(storage);
        let ws = [
            (p.w_qkv, h, 3 * h),
            (p.w_o, h, h),
            (p.w_1, h, fi),
            (p.w_2, fi, h),
        ];
        let mut shared: [Option<weight::SharedWeight<'_>>; 4] = [None, None, None, None];
        for (i, (w, k, n)) in ws.into_iter().enumerate() {
            let wprime = st.take(k * n)?;
            let fo = st.take(k * n)?;
            let id = WEIGHT_ID_BASE + i as u32;
            let sw = weight::setup(
                s,
                id,
                k,
                n,
                AShare::from_raw_slice(w),
                wprime,
                fo,
                ar.sub().rest(),
            )?;
            shared[i] = Some(sw);
        }
        let [Some(w_qkv), Some(w_o), Some(w_1), Some(w_2)] = shared else {
            return Err(Error::Param("block: weight setup incomplete"));
        };
        phase(Phase::Prepare);
        let mut ps = Arena::new(prep_storage);
        let p_qkv = weight::prepare(s, &w_qkv, m, ps.take(weight::prepare_words(m, h, 3 * h))?)?;
        let p_o = weight::prepare(s, &w_o, m, ps.take(weight::prepare_words(m, h, h))?)?;
        let p_1 = weight::prepare(s, &w_1, m, ps.take(weight::prepare_words(m, h, fi))?)?;
        let p_2 = weight::prepare(s, &w_2, m, ps.take(weight::prepare_words(m, fi, h))?)?;
        phase(Phase::Online);
        let x = ar.take(m * h)?;
        input::share_input(s, PartyId::P1, input, AShare::from_raw_slice_mut(x))?;
        let tp = ar.take(d.tap_words())?;
        let ws = Tapped {
            qkv: (w_qkv, p_qkv),
            o: (w_o, p_o),
            ffn1: (w_1, p_1),
            ffn2: (w_2, p_2),
        };
        let y = tapped_layer(s, d, &p, ws, x, tp, &mut ar, &mut rec)?;
        reveal::reveal_to(s, PartyId::P1, AShare::from_raw_slice(y), output)?;
        reveal::reveal_to(s, PartyId::P1, AShare::from_raw_slice(tp), tap_out)?;
    }
    s.finish()?;
    phase(Phase::Done);
    Ok(rec.profile)
}

/// The four weight products of the tapped variant with their prepared masks.
struct Tapped<'w, 'p> {
    qkv: (weight::SharedWeight<'w>, weight::Prepared<'p>),
    o: (weight::SharedWeight<'w>, weight::Prepared<'p>),
    ffn1: (weight::SharedWeight<'w>, weight::Prepared<'p>),
    ffn2: (weight::SharedWeight<'w>, weight::Prepared<'p>),
}

fn add_rows(x: &mut [u64], b: &[u64]) {
    for row in x.chunks_exact_mut(b.len()) {
        secformer_core::ring::add_assign(row, b);
    }
}

/// The encoder layer step by step as [`nn::encoder_layer`] runs it (same protocols, same
/// order), keeping the nonlinear steps' inputs and outputs in `tp` ([`Taps`] layout).
/// Returns the output (a slice of the arena).
fn tapped_layer<'m, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    d: &Dims,
    p: &Params<'_, u64>,
    w: Tapped<'_, '_>,
    x: &[u64],
    tp: &mut [u64],
    ar: &mut Arena<'m>,
    rec: &mut Recorder<'_>,
) -> Result<&'m [u64]> {
    let (m, h, fi, dh, nh) = (d.seq, d.hidden, d.inter, d.head_dim(), d.heads);
    let qkv = ar.take(3 * m * h)?;
    let q = ar.take(m * h)?;
    let kt = ar.take(m * h)?;
    let v = ar.take(m * h)?;
    let scores = ar.take(nh * m * m)?;
    let probs = ar.take(nh * m * m)?;
    let ctx = ar.take(m * h)?;
    let merged = ar.take(m * h)?;
    let a = ar.take(m * h)?;
    let a1 = ar.take(m * h)?;
    let f1 = ar.take(m * fi)?;
    let g = ar.take(m * fi)?;
    let f2 = ar.take(m * h)?;
    let y = ar.take(m * h)?;
    let sc = ar.rest();
    let sh = AShare::from_raw_slice;
    let shm = AShare::from_raw_slice_mut;

    rec.mark(Component::Linear, s.peer_stats());
    weight::apply(s, &w.qkv.0, w.qkv.1, sh(x), shm(qkv), sc)?;
    add_rows(qkv, p.b_qkv);
    for hd in 0..nh {
        for r in 0..m {
            for c in 0..dh {
                let row = &qkv[r * 3 * h..(r + 1) * 3 * h];
                q[hd * m * dh + r * dh + c] = row[hd * dh + c];
                kt[hd * dh * m + c * m + r] = row[h + hd * dh + c];
                v[hd * m * dh + r * dh + c] = row[2 * h + hd * dh + c];
            }
        }
    }
    matmul::matmul_batch(s, nh, m, dh, m, sh(q), sh(kt), shm(scores), sc)?;
    rec.mark(Component::Softmax, s.peer_stats());
    softmax_2quad::softmax_2quad(
        s,
        nh * m,
        m,
        sh(scores),
        Mask::All,
        SOFTMAX_C,
        shm(probs),
        sc,
    )?;
    rec.mark(Component::Linear, s.peer_stats());
    matmul::matmul_batch(s, nh, m, m, dh, sh(probs), sh(v), shm(ctx), sc)?;
    for hd in 0..nh {
        for r in 0..m {
            for c in 0..dh {
                merged[r * h + hd * dh + c] = ctx[hd * m * dh + r * dh + c];
            }
        }
    }
    weight::apply(s, &w.o.0, w.o.1, sh(merged), shm(a), sc)?;
    add_rows(a, p.b_o);
    secformer_core::ring::add_assign(a, x);
    rec.mark(Component::LayerNorm, s.peer_stats());
    layernorm::layernorm(
        s,
        m,
        h,
        sh(a),
        sh(p.ln1_gamma),
        sh(p.ln1_beta),
        LN_EPS,
        shm(a1),
        sc,
    )?;
    rec.mark(Component::Linear, s.peer_stats());
    weight::apply(s, &w.ffn1.0, w.ffn1.1, sh(a1), shm(f1), sc)?;
    add_rows(f1, p.b_1);
    rec.mark(Component::Gelu, s.peer_stats());
    gelu::gelu(s, sh(f1), GELU_BITS, shm(g), sc)?;
    rec.mark(Component::Linear, s.peer_stats());
    weight::apply(s, &w.ffn2.0, w.ffn2.1, sh(g), shm(f2), sc)?;
    add_rows(f2, p.b_2);
    secformer_core::ring::add_assign(f2, a1);
    rec.mark(Component::LayerNorm, s.peer_stats());
    layernorm::layernorm(
        s,
        m,
        h,
        sh(f2),
        sh(p.ln2_gamma),
        sh(p.ln2_beta),
        LN_EPS,
        shm(y),
        sc,
    )?;
    rec.mark(Component::End, s.peer_stats());

    let parts: [&[u64]; 7] = [scores, probs, a, a1, f1, g, f2];
    let mut off = 0;
    for part in parts {
        tp[off..off + part.len()].copy_from_slice(part);
        off += part.len();
    }
    Ok(y)
}
