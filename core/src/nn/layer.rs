//! One BERT encoder layer over shares, for a batch of texts padded to one length.
//!
//! Online cost per layer (per party): 4 weight products (opening `E` of the QKV, output
//! and FFN inputs), two batched per-text-and-head matmuls (one round each, all heads and
//! texts at once, plus a truncation; 2Quad truncates the scores in the round of its
//! square), one softmax over `batch x heads x seq x seq`, one GeLU over
//! `batch x seq x I`, two LayerNorms over `batch x seq x H`; with a secret key mask one more
//! bit-product round for the 2Quad softmax. See each protocol's cost.
//!
//! The weight products are abstracted by [`LayerProducts`]: weights P0 owns in the clear
//! ([`OwnedLayer`], material taken from the session's dealer at the point of use, prepared
//! ahead when it comes from preprocessing) or secret-shared weights with masks prepared by
//! the caller ([`SharedLayer`] with [`PreparedLayer`], the device example's path).

use crate::arena::Arena;
use crate::dealer::Dealer;
use crate::error::{check_len, Error, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::prg::words_for_bits;
use crate::protocols::weight::{self, OwnedWeight, Prepared, SharedWeight};
use crate::protocols::{gelu, layernorm, matmul, softmax_2quad, softmax_exact, trunc, Mask, Width};
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::{Component, LayerDims, ParamLayout, Probe, Softmax};

/// One of a layer's four weight products, in the order the layer applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    /// `[Wq | Wk | Wv]` (`H x 3H`).
    Qkv,
    /// The attention output projection (`H x H`).
    Out,
    /// The FFN's first matrix (`H x I`).
    FfnIn,
    /// The FFN's second matrix (`I x H`).
    FfnOut,
}

/// The weight products of one layer.
pub trait LayerProducts {
    /// `out = x W` for the product `which` (`x` has `rows` rows); truncated.
    fn apply<T: Transport, D: Dealer, K: MatMul>(
        &mut self,
        which: Product,
        s: &mut Session<T, D, K>,
        x: &[AShare],
        out: &mut [AShare],
        scratch: &mut [u64],
    ) -> Result<()>;

    /// `out = x W` at `2f` fractional bits (not truncated), for a consumer that reads the
    /// extra bits ([`gelu::gelu_wide`]), correct at least modulo `2^m` for the ring of
    /// [`ffn_ring`]. By default the truncated product shifted back up (exact, no round
    /// saved); products that can skip the truncation do.
    fn apply_wide<T: Transport, D: Dealer, K: MatMul>(
        &mut self,
        which: Product,
        s: &mut Session<T, D, K>,
        x: &[AShare],
        out: &mut [AShare],
        scratch: &mut [u64],
    ) -> Result<()> {
        self.apply(which, s, x, out, scratch)?;
        let f = s.enc.frac_bits();
        for v in AShare::raw_slice_mut(out) {
            *v <<= f;
        }
        Ok(())
    }

    /// Scratch words [`LayerProducts::apply`] needs for `rows` input rows.
    fn scratch_words(&self, rows: usize) -> usize;
}

/// The ring of the truncated owned products (Q, K and V, the output projection, the FFN's
/// second matrix) and of the attention products: outputs below `2^14` in magnitude
/// (`m = 2f + 16` bits, rounded up to bytes: 48 at `f = 16`), the range of LayerNorm's
/// input, which the projections feed through the residual sums, and far beyond any
/// attention score a model computes. The full ring under the local truncation.
pub fn product_ring<T: Transport, D: Dealer, K: MatMul>(s: &Session<T, D, K>) -> Width {
    trunc::usable(s.trunc_mode, Width::holding(2 * s.enc.frac_bits() + 16))
}

/// The ring of the FFN's first product and of GeLU's opening: the product's outputs (GeLU's
/// inputs) below `2^13` in magnitude, since GeLU's sum at `2f + 1` fractional bits must
/// stay below `2^(m - 2)` for its truncation from that ring (`m = 2f + 16` bits: 48 at
/// `f = 16`, the same ring as the other products; a 100 times margin over the activations
/// of BERT models). GeLU opens its input rounded to `f` bits in it (4 bytes per element)
/// and compares on [`gelu::bits_in`] bits (20). The full ring under the local truncation.
pub fn ffn_ring<T: Transport, D: Dealer, K: MatMul>(s: &Session<T, D, K>) -> Width {
    trunc::usable(s.trunc_mode, Width::holding(2 * s.enc.frac_bits() + 16))
}

/// The vector parameters of a layer (biases, LayerNorm) as shares.
#[derive(Clone, Copy)]
pub struct LayerParams<'a> {
    /// `[bq | bk | bv]` (`3H`; `bq` already multiplied by `1/sqrt(H / heads)`).
    pub bqkv: &'a [AShare],
    /// Output projection bias (`H`).
    pub bo: &'a [AShare],
    /// First LayerNorm's scale and shift (`H` each).
    pub ln1: (&'a [AShare], &'a [AShare]),
    /// FFN biases (`I`, `H`).
    pub b1: &'a [AShare],
    /// FFN output bias (`H`).
    pub b2: &'a [AShare],
    /// Second LayerNorm's scale and shift (`H` each).
    pub ln2: (&'a [AShare], &'a [AShare]),
    /// LayerNorm epsilon.
    pub eps: f64,
}

/// Words of a layer's vector parameters in [`LayerParams::from_vectors`] order.
pub const fn vector_param_words(hidden: usize, inter: usize) -> usize {
    9 * hidden + inter
}

impl<'a> LayerParams<'a> {
    /// The vector parameters inside a full parameter vector in [`ParamLayout`].
    pub fn from_full(shares: &'a [AShare], l: ParamLayout, hidden: usize, eps: f64) -> Self {
        let h = hidden;
        LayerParams {
            bqkv: &shares[l.bqkv..l.bqkv + 3 * h],
            bo: &shares[l.bo..l.bo + h],
            ln1: (&shares[l.ln1_g..l.ln1_g + h], &shares[l.ln1_b..l.ln1_b + h]),
            b1: &shares[l.b1..l.w2],
            b2: &shares[l.b2..l.b2 + h],
            ln2: (&shares[l.ln2_g..l.ln2_g + h], &shares[l.ln2_b..l.ln2_b + h]),
            eps,
        }
    }

    /// The vector parameters packed as `bqkv (3H), bo (H), ln1 (2H), b1 (I), b2 (H),
    /// ln2 (2H)` ([`vector_param_words`] shares).
    pub fn from_vectors(
        shares: &'a [AShare],
        hidden: usize,
        inter: usize,
        eps: f64,
    ) -> Result<Self> {
        let h = hidden;
        check_len(
            "layer vector parameters",
            vector_param_words(h, inter),
            shares.len(),
        )?;
        let (bqkv, r) = shares.split_at(3 * h);
        let (bo, r) = r.split_at(h);
        let (g1, r) = r.split_at(h);
        let (be1, r) = r.split_at(h);
        let (b1, r) = r.split_at(inter);
        let (b2, r) = r.split_at(h);
        let (g2, be2) = r.split_at(h);
        Ok(LayerParams {
            bqkv,
            bo,
            ln1: (g1, be1),
            b1,
            b2,
            ln2: (g2, be2),
            eps,
        })
    }
}

/// Which keys (tokens) of each text take part in attention.
#[derive(Clone, Copy)]
pub enum Keys<'a> {
    /// Every token is real.
    All,
    /// One public flag per token of the batch (`batch x seq`): the token count is known.
    Public(&'a [bool]),
    /// P1's secret key mask (`batch x seq` tokens): XOR shares of one bit per token
    /// (packed) and additive shares of the same 0/1 values. Padding stays private: P0 and
    /// D learn only the padded length.
    Shared {
        /// XOR-shared bits, packed.
        bits: &'a [u64],
        /// Additive shares of the same bits.
        values: &'a [AShare],
    },
}

/// Weights that P0 owns in the clear, set up with [`weight::setup_owned`]
/// (ids `id_base .. id_base + 4`).
#[derive(Clone, Copy)]
pub struct OwnedLayer<'a> {
    /// `[Wq | Wk | Wv]`.
    pub qkv: OwnedWeight<'a>,
    /// Output projection.
    pub out: OwnedWeight<'a>,
    /// FFN in.
    pub ffn_in: OwnedWeight<'a>,
    /// FFN out.
    pub ffn_out: OwnedWeight<'a>,
}

impl<'a> OwnedLayer<'a> {
    /// A layer known only by its shape (for recording plans and costs).
    pub fn shape_only(id_base: u32, hidden: usize, inter: usize) -> OwnedLayer<'static> {
        OwnedLayer {
            qkv: OwnedWeight::shape_only(id_base, hidden, 3 * hidden),
            out: OwnedWeight::shape_only(id_base + 1, hidden, hidden),
            ffn_in: OwnedWeight::shape_only(id_base + 2, hidden, inter),
            ffn_out: OwnedWeight::shape_only(id_base + 3, inter, hidden),
        }
    }

    fn weight(&self, which: Product) -> &OwnedWeight<'a> {
        match which {
            Product::Qkv => &self.qkv,
            Product::Out => &self.out,
            Product::FfnIn => &self.ffn_in,
            Product::FfnOut => &self.ffn_out,
        }
    }
}

/// The shapes `(k, n)` of the four products, in [`Product`] order.
pub fn product_shapes(hidden: usize, inter: usize) -> [(usize, usize); 4] {
    [
        (hidden, 3 * hidden),
        (hidden, hidden),
        (hidden, inter),
        (inter, hidden),
    ]
}

/// Sets up a layer whose four matrices P0 owns (`plain` is P0's parameters as ring
/// elements in [`ParamLayout`]; `None` at P1), weight ids `id_base .. id_base + 4`. P1's
/// `F` matrices go to `storage` ([`owned_storage_words`]; may be empty at P0).
pub fn setup_owned_layer<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    id_base: u32,
    hidden: usize,
    inter: usize,
    plain: Option<&'a [u64]>,
    storage: &'a mut [u64],
    scratch: &mut [u64],
) -> Result<OwnedLayer<'a>> {
    let l = ParamLayout::new(hidden, inter);
    if let Some(p) = plain {
        check_len("plaintext layer parameters", l.total, p.len())?;
    } else if s.party().is_p0() {
        return Err(Error::Param(
            "P0 must provide the layer's plaintext weights",
        ));
    }
    let offsets = [l.wqkv, l.wo, l.w1, l.w2];
    let mut st = Arena::new(storage);
    let mut ws: heapless::Vec<OwnedWeight<'a>, 4> = heapless::Vec::new();
    for (i, (&(k, n), off)) in product_shapes(hidden, inter)
        .iter()
        .zip(offsets)
        .enumerate()
    {
        let f = if s.party().is_p0() {
            &mut []
        } else {
            st.take(k * n)?
        };
        let w = plain.map(|p| &p[off..off + k * n]);
        let ow = weight::setup_owned(s, id_base + i as u32, k, n, w, f, scratch)?;
        let _ = ws.push(ow);
    }
    Ok(OwnedLayer {
        qkv: ws[0],
        out: ws[1],
        ffn_in: ws[2],
        ffn_out: ws[3],
    })
}

/// Storage words of P1's `F` matrices of one owned layer.
pub fn owned_storage_words(hidden: usize, inter: usize) -> usize {
    product_shapes(hidden, inter)
        .iter()
        .map(|(k, n)| k * n)
        .sum()
}

/// Scratch words [`setup_owned_layer`] needs (P0's mask of the largest matrix).
pub fn owned_setup_scratch_words(party: PartyId, hidden: usize, inter: usize) -> usize {
    product_shapes(hidden, inter)
        .iter()
        .map(|&(k, n)| weight::setup_owned_scratch_words(party, k, n))
        .max()
        .unwrap_or(0)
}

impl LayerProducts for OwnedLayer<'_> {
    fn apply<T: Transport, D: Dealer, K: MatMul>(
        &mut self,
        which: Product,
        s: &mut Session<T, D, K>,
        x: &[AShare],
        out: &mut [AShare],
        scratch: &mut [u64],
    ) -> Result<()> {
        let ring = product_ring(s);
        weight::apply_owned_in(s, self.weight(which), x, ring, out, scratch)
    }

    fn apply_wide<T: Transport, D: Dealer, K: MatMul>(
        &mut self,
        which: Product,
        s: &mut Session<T, D, K>,
        x: &[AShare],
        out: &mut [AShare],
        scratch: &mut [u64],
    ) -> Result<()> {
        let ring = ffn_ring(s);
        weight::apply_owned_wide(s, self.weight(which), x, ring, out, scratch)
    }

    fn scratch_words(&self, rows: usize) -> usize {
        owned_products_scratch(rows, self.qkv.rows(), self.ffn_in.cols())
    }
}

/// A layer's secret-shared weights after setup (the device example's path: each mask is
/// opened once, [`weight::setup`]).
pub struct SharedLayer<'a> {
    hidden: usize,
    inter: usize,
    qkv: SharedWeight<'a>,
    o: SharedWeight<'a>,
    ffn1: SharedWeight<'a>,
    ffn2: SharedWeight<'a>,
    /// The vector parameters.
    pub params: LayerParams<'a>,
}

/// Storage words [`setup_layer`] keeps.
pub fn layer_storage_words(hidden: usize, inter: usize) -> usize {
    2 * owned_storage_words(hidden, inter)
}

/// Scratch words [`setup_layer`] needs.
pub fn setup_scratch_words(hidden: usize, inter: usize) -> usize {
    weight::setup_scratch_words(hidden, inter.max(3 * hidden))
}

/// Sets up one layer with secret-shared weights (ids `id_base .. id_base + 4`) from its
/// parameter shares (see [`ParamLayout`]); `eps` is the LayerNorm epsilon.
pub fn setup_layer<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    id_base: u32,
    hidden: usize,
    inter: usize,
    eps: f64,
    params: &'a [AShare],
    storage: &'a mut [u64],
    scratch: &mut [u64],
) -> Result<SharedLayer<'a>> {
    let l = ParamLayout::new(hidden, inter);
    check_len("layer parameters", l.total, params.len())?;
    let mut st = Arena::new(storage);
    let offsets = [l.wqkv, l.wo, l.w1, l.w2];
    let mut ws: heapless::Vec<SharedWeight<'a>, 4> = heapless::Vec::new();
    for (i, (&(k, n), off)) in product_shapes(hidden, inter)
        .iter()
        .zip(offsets)
        .enumerate()
    {
        let wp = st.take(k * n)?;
        let f = st.take(k * n)?;
        let w = &params[off..off + k * n];
        let _ = ws.push(weight::setup(
            s,
            id_base + i as u32,
            k,
            n,
            w,
            wp,
            f,
            scratch,
        )?);
    }
    let [qkv, o, ffn1, ffn2] = ws.into_array().map_err(|_| Error::Param("layer setup"))?;
    Ok(SharedLayer {
        hidden,
        inter,
        qkv,
        o,
        ffn1,
        ffn2,
        params: LayerParams::from_full(params, l, hidden, eps),
    })
}

/// One inference's prepared masks of a [`SharedLayer`]'s four products, each usable once.
pub struct PreparedLayer<'l, 'p> {
    layer: &'l SharedLayer<'l>,
    preps: [Option<Prepared<'p>>; 4],
}

/// Storage words [`prepare_layer`] needs for `rows` input rows.
pub fn prepare_words(rows: usize, hidden: usize, inter: usize) -> usize {
    product_shapes(hidden, inter)
        .iter()
        .map(|&(k, n)| weight::prepare_words(rows, k, n))
        .sum()
}

/// Prepares one inference of `rows` input rows (offline: before the input exists).
pub fn prepare_layer<'l, 'p, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    layer: &'l SharedLayer<'l>,
    rows: usize,
    storage: &'p mut [u64],
) -> Result<PreparedLayer<'l, 'p>> {
    let (h, i) = (layer.hidden, layer.inter);
    let mut st = Arena::new(storage);
    let mut preps: [Option<Prepared<'p>>; 4] = [None, None, None, None];
    let weights = [&layer.qkv, &layer.o, &layer.ffn1, &layer.ffn2];
    for ((w, &(k, n)), slot) in weights
        .iter()
        .zip(product_shapes(h, i).iter())
        .zip(preps.iter_mut())
    {
        let buf = st.take(weight::prepare_words(rows, k, n))?;
        *slot = Some(weight::prepare(s, w, rows, buf)?);
    }
    Ok(PreparedLayer { layer, preps })
}

impl LayerProducts for PreparedLayer<'_, '_> {
    fn apply<T: Transport, D: Dealer, K: MatMul>(
        &mut self,
        which: Product,
        s: &mut Session<T, D, K>,
        x: &[AShare],
        out: &mut [AShare],
        scratch: &mut [u64],
    ) -> Result<()> {
        let (i, w) = match which {
            Product::Qkv => (0, &self.layer.qkv),
            Product::Out => (1, &self.layer.o),
            Product::FfnIn => (2, &self.layer.ffn1),
            Product::FfnOut => (3, &self.layer.ffn2),
        };
        let prep = self.preps[i]
            .take()
            .ok_or(Error::Param("a prepared weight product was used twice"))?;
        weight::apply(s, w, prep, x, out, scratch)
    }

    fn scratch_words(&self, rows: usize) -> usize {
        shared_products_scratch(rows, self.layer.hidden, self.layer.inter)
    }
}

fn softmax_scratch(d: &LayerDims, softmax: Softmax, f: u32) -> usize {
    let rows = d.batch * d.heads * d.seq;
    match softmax {
        Softmax::Exact => softmax_exact::scratch_words(rows, d.seq, softmax_exact::DEFAULT_BITS),
        Softmax::TwoQuad { .. } => softmax_2quad::wide_scratch_words(rows, d.seq, f),
    }
}

/// Scratch words of the key masking before the softmax (2Quad's expanded key bits).
fn mask_scratch(d: &LayerDims) -> usize {
    words_for_bits(d.batch * d.heads * d.seq * d.seq)
}

/// Scratch words of [`OwnedLayer`]'s products for `rows` input rows.
pub fn owned_products_scratch(rows: usize, hidden: usize, inter: usize) -> usize {
    product_shapes(hidden, inter)
        .iter()
        .map(|&(k, n)| weight::owned_scratch_words(rows, k, n))
        .max()
        .unwrap_or(0)
}

/// Scratch words of [`PreparedLayer`]'s products for `rows` input rows.
pub fn shared_products_scratch(rows: usize, hidden: usize, inter: usize) -> usize {
    product_shapes(hidden, inter)
        .iter()
        .map(|&(k, n)| weight::apply_scratch_words(rows, k, n))
        .max()
        .unwrap_or(0)
}

/// Scratch words [`encoder_layer`] needs, given its products' own
/// ([`LayerProducts::scratch_words`], [`owned_products_scratch`] or
/// [`shared_products_scratch`]).
pub fn layer_scratch_words(products: usize, d: &LayerDims, softmax: Softmax, f: u32) -> usize {
    let (r, h, i, a, t) = (d.rows(), d.hidden, d.inter, d.batch * d.heads, d.seq);
    let hd = d.head_dim();
    let persistent = 9 * r * h + 2 * a * t * t + 2 * r * i;
    let sub = products
        .max(matmul::batch_scratch_words(a, t, hd, t))
        .max(matmul::batch_scratch_words(a, t, t, hd))
        .max(mask_scratch(d) + softmax_scratch(d, softmax, f))
        .max(layernorm::scratch_words(r, h, f))
        .max(gelu::scratch_words(r * i, gelu::DEFAULT_BITS));
    persistent + sub
}

fn add_bias(x: &mut [AShare], bias: &[AShare]) {
    add_bias_wide(x, bias, 0);
}

/// [`add_bias`] onto values with `extra` more fractional bits than the bias (which is
/// shifted up exactly).
fn add_bias_wide(x: &mut [AShare], bias: &[AShare], extra: u32) {
    let n = bias.len();
    let (xs, bs) = (AShare::raw_slice_mut(x), AShare::raw_slice(bias));
    for (idx, v) in xs.iter_mut().enumerate() {
        *v = v.wrapping_add(bs[idx % n] << extra);
    }
}

/// How far the exact softmax pushes a masked score below the real ones: masked keys get
/// `x - MASK_OFFSET`, so `exp` clips them to 0 while the real scores' row spread stays
/// under `MASK_OFFSET - 64` (448); past that, masked keys get weights below `e^-64`... up to
/// `e^-(MASK_OFFSET - spread)`. The comparisons see spreads up to `spread + MASK_OFFSET`
/// ([`exact_softmax_bits`]).
pub const MASK_OFFSET: f64 = 512.0;

/// The exact softmax's comparison bits in a layer: the scores come out of the
/// [`product_ring`] below `2^(m - 2 - 2f)` in magnitude (`2^14` at 48 bits), so with
/// [`MASK_OFFSET`] their row spreads stay below `2^(m - 1 - 2f) + MASK_OFFSET` (33280),
/// which 23-bit comparisons cover at `f = 16` ([`softmax_exact::bits_for_spread`]; the
/// full ring of the local truncation takes [`softmax_exact::DEFAULT_BITS`]).
pub fn exact_softmax_bits<T: Transport, D: Dealer, K: MatMul>(s: &Session<T, D, K>) -> u32 {
    let f = s.enc.frac_bits();
    let magnitude = product_ring(s).bits().saturating_sub(2 + 2 * f).min(62);
    softmax_exact::bits_for_spread(libm::exp2(magnitude as f64 + 1.0) + MASK_OFFSET, f)
}

/// Softmax over the scores (`batch x heads` blocks of `seq x seq`), keys masked as `keys`.
/// The exact softmax takes truncated scores; 2Quad takes them at `2f` bits modulo `2^m`
/// (`ring`, [`matmul::matmul_batch_wide_in`]) and truncates them with its square.
#[allow(clippy::too_many_arguments)]
fn masked_softmax<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    d: &LayerDims,
    keys: Keys<'_>,
    softmax: Softmax,
    ring: Width,
    scores: &mut [AShare],
    probs: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let (t, rows) = (d.seq, d.batch * d.heads * d.seq);
    let block_rows = d.heads * t;
    let mut ar = Arena::new(scratch);
    let mut keep = None;
    let mask = match keys {
        Keys::All => Mask::All,
        Keys::Public(k) => {
            check_len("key mask", d.batch * t, k.len())?;
            Mask::Blocks {
                keys: k,
                block_rows,
            }
        }
        Keys::Shared { bits, values } => {
            check_len("key mask", d.batch * t, values.len())?;
            match softmax {
                Softmax::Exact => shift_masked_scores(s, d, values, scores)?,
                Softmax::TwoQuad { .. } => keep = Some(&*expand_key_bits(d, bits, &mut ar)?),
            }
            Mask::All
        }
    };
    match softmax {
        Softmax::Exact => softmax_exact::softmax_exact(
            s,
            rows,
            t,
            scores,
            mask,
            exact_softmax_bits(s),
            probs,
            ar.rest(),
        ),
        Softmax::TwoQuad { c } => softmax_2quad::softmax_2quad_wide(
            s,
            rows,
            t,
            scores,
            ring,
            mask,
            keep,
            c,
            probs,
            ar.rest(),
        ),
    }
}

/// Masks P1's secret padding keys for the exact softmax: `x -> x - MASK_OFFSET (1 - m)`
/// (local: the shifted scores clip to `exp = 0`).
fn shift_masked_scores<T: Transport, D: Dealer, K: MatMul>(
    s: &Session<T, D, K>,
    d: &LayerDims,
    values: &[AShare],
    scores: &mut [AShare],
) -> Result<()> {
    let (t, per_text) = (d.seq, d.heads * d.seq * d.seq);
    let off = s.encoding().encode(MASK_OFFSET)?;
    let minus = s.party().share_of_public(off);
    let m = AShare::raw_slice(values);
    let sc = AShare::raw_slice_mut(scores);
    // Score `idx` is row `idx / t` of text `idx / per_text` and key `idx % t`: walked as
    // texts, rows and keys (no division per element).
    for (text, block) in sc.chunks_mut(per_text.max(1)).enumerate() {
        let keys = &m[text * t..(text + 1) * t];
        for row in block.chunks_mut(t.max(1)) {
            for (v, mk) in row.iter_mut().zip(keys) {
                *v = v.wrapping_add(mk.wrapping_mul(off)).wrapping_sub(minus);
            }
        }
    }
    Ok(())
}

/// P1's XOR-shared key bits (one per key of each text) repeated for every score of the
/// text's rows (`batch x heads x seq x seq` bits), for the 2Quad softmax's `keep`.
fn expand_key_bits<'a>(d: &LayerDims, bits: &[u64], ar: &mut Arena<'a>) -> Result<&'a mut [u64]> {
    let t = d.seq;
    let n = d.batch * d.heads * t * t;
    let expanded = ar.take_zeroed(words_for_bits(n))?;
    let mut idx = 0;
    for text in 0..d.batch {
        for _row in 0..d.heads * t {
            for k in text * t..(text + 1) * t {
                expanded[idx / 64] |= ((bits[k / 64] >> (k % 64)) & 1) << (idx % 64);
                idx += 1;
            }
        }
    }
    Ok(expanded)
}

/// Runs one layer on `x` (`batch x seq` rows of `H` shares, replaced by the output).
pub fn encoder_layer<T: Transport, D: Dealer, K: MatMul, P: LayerProducts>(
    s: &mut Session<T, D, K>,
    products: &mut P,
    params: &LayerParams<'_>,
    d: &LayerDims,
    x: &mut [AShare],
    keys: Keys<'_>,
    softmax: Softmax,
    probe: &mut dyn Probe,
    scratch: &mut [u64],
) -> Result<()> {
    let (r, h, i) = (d.rows(), d.hidden, d.inter);
    probe.mark(Component::Linear, s.peer_stats());
    check_len("layer input", r * h, x.len())?;
    let p = params;
    let mut ar = Arena::new(scratch);

    // Attention.
    let qkv = AShare::from_raw_slice_mut(ar.take(3 * r * h)?);
    products.apply(Product::Qkv, s, x, qkv, ar.sub().rest())?;
    add_bias(qkv, p.bqkv);
    let merged = AShare::from_raw_slice_mut(ar.take(r * h)?);
    attention(s, d, qkv, keys, softmax, probe, merged, ar.sub().rest())?;

    // Output projection, residual, LayerNorm.
    let attn = AShare::from_raw_slice_mut(ar.take(r * h)?);
    products.apply(Product::Out, s, merged, attn, ar.sub().rest())?;
    add_bias(attn, p.bo);
    for (a, xv) in attn.iter_mut().zip(x.iter()) {
        *a += *xv;
    }
    probe.mark(Component::LayerNorm, s.peer_stats());
    let (g1, b1) = p.ln1;
    layernorm::layernorm(s, r, h, attn, g1, b1, p.eps, x, ar.sub().rest())?;

    // FFN.
    probe.mark(Component::Linear, s.peer_stats());
    let f1 = AShare::from_raw_slice_mut(ar.take(r * i)?);
    // Untruncated (2f bits): GeLU reads the extra bits, which saves the truncation round.
    products.apply_wide(Product::FfnIn, s, x, f1, ar.sub().rest())?;
    add_bias_wide(f1, p.b1, s.enc.frac_bits());
    let g = AShare::from_raw_slice_mut(ar.take(r * i)?);
    probe.mark(Component::Gelu, s.peer_stats());
    let ring = ffn_ring(s);
    let k = gelu::bits_in(ring, s.enc.frac_bits());
    gelu::gelu_wide_in(s, f1, k, ring, g, ar.sub().rest())?;
    probe.mark(Component::Linear, s.peer_stats());
    let f2 = merged; // reuse: rows x H
    products.apply(Product::FfnOut, s, g, f2, ar.sub().rest())?;
    add_bias(f2, p.b2);
    for (a, xv) in f2.iter_mut().zip(x.iter()) {
        *a += *xv;
    }
    probe.mark(Component::LayerNorm, s.peer_stats());
    let (g2, b2) = p.ln2;
    layernorm::layernorm(s, r, h, f2, g2, b2, p.eps, x, ar.rest())?;
    probe.mark(Component::End, s.peer_stats());
    Ok(())
}

/// Multi-head self-attention of every text on its own tokens: `merged` (`rows x H`)
/// receives the heads' contexts side by side.
fn attention<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    d: &LayerDims,
    qkv: &[AShare],
    keys: Keys<'_>,
    softmax: Softmax,
    probe: &mut dyn Probe,
    merged: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let (t, h, heads, hd) = (d.seq, d.hidden, d.heads, d.head_dim());
    let blocks = d.batch * heads;
    let mut ar = Arena::new(scratch);
    // Per text and head: Q (t x hd), K^T (hd x t), V (t x hd).
    let q = AShare::from_raw_slice_mut(ar.take(blocks * t * hd)?);
    let kt = AShare::from_raw_slice_mut(ar.take(blocks * hd * t)?);
    let v = AShare::from_raw_slice_mut(ar.take(blocks * t * hd)?);
    for b in 0..d.batch {
        for a in 0..heads {
            let blk = b * heads + a;
            for r in 0..t {
                let row = &qkv[(b * t + r) * 3 * h..(b * t + r + 1) * 3 * h];
                for c in 0..hd {
                    q[blk * t * hd + r * hd + c] = row[a * hd + c];
                    kt[blk * hd * t + c * t + r] = row[h + a * hd + c];
                    v[blk * t * hd + r * hd + c] = row[2 * h + a * hd + c];
                }
            }
        }
    }
    // Scores and contexts stay below 2^14: the products' narrow ring.
    let ring = product_ring(s);
    let scores = AShare::from_raw_slice_mut(ar.take(blocks * t * t)?);
    let dims = (blocks, t, hd, t);
    match softmax {
        // 2Quad truncates the scores in the round of its square.
        Softmax::TwoQuad { .. } => {
            matmul::matmul_batch_wide_in(s, dims, q, kt, ring, scores, ar.sub().rest())?
        }
        Softmax::Exact => matmul::matmul_batch_in(s, dims, q, kt, ring, scores, ar.sub().rest())?,
    }
    let probs = AShare::from_raw_slice_mut(ar.take(blocks * t * t)?);
    probe.mark(Component::Softmax, s.peer_stats());
    masked_softmax(s, d, keys, softmax, ring, scores, probs, ar.sub().rest())?;
    probe.mark(Component::Linear, s.peer_stats());
    let ctx = AShare::from_raw_slice_mut(ar.take(blocks * t * hd)?);
    let dims = (blocks, t, t, hd);
    matmul::matmul_batch_in(s, dims, probs, v, ring, ctx, ar.sub().rest())?;
    for b in 0..d.batch {
        for a in 0..heads {
            let blk = b * heads + a;
            for r in 0..t {
                for c in 0..hd {
                    merged[(b * t + r) * h + a * hd + c] = ctx[blk * t * hd + r * hd + c];
                }
            }
        }
    }
    Ok(())
}
