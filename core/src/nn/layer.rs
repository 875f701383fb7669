//! One BERT encoder layer over shares.
//!
//! Online cost per layer (per party): 4 weight products (`8 seq (3H... )` bytes of `E`
//! openings: `seq H` for QKV, `seq H` for the output projection, `seq H` and `seq I` for
//! the FFN), two batched per-head matmuls, one softmax over `heads x seq x seq`, one GeLU
//! over `seq x I`, two LayerNorms over `seq x H`; see each protocol's cost.

use crate::arena::Arena;
use crate::dealer::Dealer;
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::protocols::weight::{self, Prepared, SharedWeight};
use crate::protocols::{gelu, layernorm, matmul, softmax_2quad, softmax_exact, Mask};
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::{Component, LayerDims, ParamLayout, Probe, Softmax};

/// A layer's weights after setup: the four weight products and the vector parameters.
pub struct SharedLayer<'a> {
    hidden: usize,
    inter: usize,
    qkv: SharedWeight<'a>,
    o: SharedWeight<'a>,
    ffn1: SharedWeight<'a>,
    ffn2: SharedWeight<'a>,
    params: &'a [AShare],
    layout: ParamLayout,
    eps: f64,
}

/// Storage words [`setup_layer`] keeps.
pub fn layer_storage_words(hidden: usize, inter: usize) -> usize {
    2 * (3 * hidden * hidden + hidden * hidden + 2 * hidden * inter)
}

/// Scratch words [`setup_layer`] needs.
pub fn setup_scratch_words(hidden: usize, inter: usize) -> usize {
    weight::setup_scratch_words(hidden, inter.max(3 * hidden))
}

/// Sets up one layer (weight ids `id_base .. id_base + 4`) from its parameter shares
/// (see [`ParamLayout`]); `eps` is the LayerNorm epsilon.
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
    setup_layer_with(
        s, id_base, hidden, inter, eps, params, None, storage, scratch,
    )
}

/// Sets up one layer whose four weight matrices P0 owns in the clear
/// ([`weight::setup_owned`]: P1 does no matmul online and only P1's half of each `E`
/// crosses the line). `plain` is P0's parameter vector as ring elements in the
/// [`ParamLayout`] (only its matrices are read); `None` at P1. The vector parameters
/// (biases, LayerNorm) still come from the shares in `params`.
pub fn setup_layer_owned<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    id_base: u32,
    hidden: usize,
    inter: usize,
    eps: f64,
    params: &'a [AShare],
    plain: Option<&[u64]>,
    storage: &'a mut [u64],
    scratch: &mut [u64],
) -> Result<SharedLayer<'a>> {
    if s.party().is_p0() {
        let p = plain.ok_or(crate::Error::Param(
            "P0 must provide the layer's plaintext weights",
        ))?;
        check_len(
            "plaintext layer parameters",
            ParamLayout::new(hidden, inter).total,
            p.len(),
        )?;
    }
    setup_layer_with(
        s,
        id_base,
        hidden,
        inter,
        eps,
        params,
        Some(plain),
        storage,
        scratch,
    )
}

fn setup_layer_with<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    id_base: u32,
    hidden: usize,
    inter: usize,
    eps: f64,
    params: &'a [AShare],
    owned: Option<Option<&[u64]>>,
    storage: &'a mut [u64],
    scratch: &mut [u64],
) -> Result<SharedLayer<'a>> {
    let l = ParamLayout::new(hidden, inter);
    check_len("layer parameters", l.total, params.len())?;
    let (h, i) = (hidden, inter);
    let mut st = Arena::new(storage);
    let mut mk = |s: &mut Session<T, D, K>,
                  id: u32,
                  off: usize,
                  k: usize,
                  n: usize|
     -> Result<SharedWeight<'a>> {
        let wp = st.take(k * n)?;
        let f = st.take(k * n)?;
        match owned {
            Some(plain) => {
                weight::setup_owned(s, id, k, n, plain.map(|p| &p[off..off + k * n]), wp, f)
            }
            None => weight::setup(s, id, k, n, &params[off..off + k * n], wp, f, scratch),
        }
    };
    let qkv = mk(s, id_base, l.wqkv, h, 3 * h)?;
    let o = mk(s, id_base + 1, l.wo, h, h)?;
    let ffn1 = mk(s, id_base + 2, l.w1, h, i)?;
    let ffn2 = mk(s, id_base + 3, l.w2, i, h)?;
    Ok(SharedLayer {
        hidden,
        inter,
        qkv,
        o,
        ffn1,
        ffn2,
        params,
        layout: l,
        eps,
    })
}

/// One inference's prepared masks of a layer's four weight products.
pub struct PreparedLayer<'a> {
    seq: usize,
    qkv: Prepared<'a>,
    o: Prepared<'a>,
    ffn1: Prepared<'a>,
    ffn2: Prepared<'a>,
}

/// Storage words [`prepare_layer`] needs for `seq` tokens.
pub fn prepare_words(seq: usize, hidden: usize, inter: usize) -> usize {
    let (h, i) = (hidden, inter);
    weight::prepare_words(seq, h, 3 * h)
        + weight::prepare_words(seq, h, h)
        + weight::prepare_words(seq, h, i)
        + weight::prepare_words(seq, i, h)
}

/// Prepares one inference of `seq` tokens (offline).
pub fn prepare_layer<'a, T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    layer: &SharedLayer<'_>,
    seq: usize,
    storage: &'a mut [u64],
) -> Result<PreparedLayer<'a>> {
    let (h, i) = (layer.hidden, layer.inter);
    let mut st = Arena::new(storage);
    let qkv = weight::prepare(
        s,
        &layer.qkv,
        seq,
        st.take(weight::prepare_words(seq, h, 3 * h))?,
    )?;
    let o = weight::prepare(s, &layer.o, seq, st.take(weight::prepare_words(seq, h, h))?)?;
    let ffn1 = weight::prepare(
        s,
        &layer.ffn1,
        seq,
        st.take(weight::prepare_words(seq, h, i))?,
    )?;
    let ffn2 = weight::prepare(
        s,
        &layer.ffn2,
        seq,
        st.take(weight::prepare_words(seq, i, h))?,
    )?;
    Ok(PreparedLayer {
        seq,
        qkv,
        o,
        ffn1,
        ffn2,
    })
}

fn softmax_scratch(d: &LayerDims, softmax: Softmax, f: u32) -> usize {
    let rows = d.heads * d.seq;
    match softmax {
        Softmax::Exact => softmax_exact::scratch_words(rows, d.seq, softmax_exact::DEFAULT_BITS),
        Softmax::TwoQuad { .. } => softmax_2quad::scratch_words(rows, d.seq, f),
    }
}

/// Scratch words [`encoder_layer`] needs.
pub fn layer_scratch_words(d: &LayerDims, softmax: Softmax, f: u32) -> usize {
    let (t, h, i, a) = (d.seq, d.hidden, d.inter, d.heads);
    let hd = d.head_dim();
    let _ = hd;
    let persistent = 9 * t * h + 2 * a * t * t + 2 * t * i;
    let sub = weight::apply_scratch_words(t, h.max(i), (3 * h).max(i))
        .max(matmul::batch_scratch_words(a, t, hd, t))
        .max(matmul::batch_scratch_words(a, t, t, hd))
        .max(softmax_scratch(d, softmax, f))
        .max(layernorm::scratch_words(t, h, f))
        .max(gelu::scratch_words(t * i, gelu::DEFAULT_BITS));
    persistent + sub
}

fn add_bias(x: &mut [AShare], bias: &[AShare]) {
    let n = bias.len();
    for (idx, v) in x.iter_mut().enumerate() {
        *v += bias[idx % n];
    }
}

/// Runs the layer on `x` (`seq x H` shares, replaced by the output). `keys` masks padding
/// keys (one flag per token; `None` = all real).
pub fn encoder_layer<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    layer: &SharedLayer<'_>,
    prep: PreparedLayer<'_>,
    x: &mut [AShare],
    heads: usize,
    keys: Option<&[bool]>,
    softmax: Softmax,
    probe: &mut dyn Probe,
    scratch: &mut [u64],
) -> Result<()> {
    let (t, h, i) = (prep.seq, layer.hidden, layer.inter);
    probe.mark(Component::Linear, s.peer_stats());
    check_len("layer input", t * h, x.len())?;
    let hd = h / heads;
    let l = layer.layout;
    let p = layer.params;
    let mut ar = Arena::new(scratch);

    // Q, K, V.
    let qkv = AShare::from_raw_slice_mut(ar.take(3 * t * h)?);
    weight::apply(s, &layer.qkv, prep.qkv, x, qkv, ar.sub().rest())?;
    add_bias(qkv, &p[l.bqkv..l.bqkv + 3 * h]);
    // Per head: Q_h (t x hd), K_h^T (hd x t), V_h (t x hd).
    let q = AShare::from_raw_slice_mut(ar.take(heads * t * hd)?);
    let kt = AShare::from_raw_slice_mut(ar.take(heads * hd * t)?);
    let v = AShare::from_raw_slice_mut(ar.take(heads * t * hd)?);
    for a in 0..heads {
        for r in 0..t {
            for c in 0..hd {
                let row = &qkv[r * 3 * h..(r + 1) * 3 * h];
                q[a * t * hd + r * hd + c] = row[a * hd + c];
                kt[a * hd * t + c * t + r] = row[h + a * hd + c];
                v[a * t * hd + r * hd + c] = row[2 * h + a * hd + c];
            }
        }
    }
    let scores = AShare::from_raw_slice_mut(ar.take(heads * t * t)?);
    matmul::matmul_batch(s, heads, t, hd, t, q, kt, scores, ar.sub().rest())?;
    let probs = AShare::from_raw_slice_mut(ar.take(heads * t * t)?);
    probe.mark(Component::Softmax, s.peer_stats());
    let mask = match keys {
        Some(k) => Mask::Keys(k),
        None => Mask::All,
    };
    match softmax {
        Softmax::Exact => softmax_exact::softmax_exact(
            s,
            heads * t,
            t,
            scores,
            mask,
            softmax_exact::DEFAULT_BITS,
            probs,
            ar.sub().rest(),
        )?,
        Softmax::TwoQuad { c } => {
            softmax_2quad::softmax_2quad(s, heads * t, t, scores, mask, c, probs, ar.sub().rest())?
        }
    }
    probe.mark(Component::Linear, s.peer_stats());
    let ctx = AShare::from_raw_slice_mut(ar.take(heads * t * hd)?);
    matmul::matmul_batch(s, heads, t, t, hd, probs, v, ctx, ar.sub().rest())?;
    // Merge heads back to t x h.
    let merged = AShare::from_raw_slice_mut(ar.take(t * h)?);
    for a in 0..heads {
        for r in 0..t {
            for c in 0..hd {
                merged[r * h + a * hd + c] = ctx[a * t * hd + r * hd + c];
            }
        }
    }
    // Output projection, residual, LayerNorm.
    let attn = AShare::from_raw_slice_mut(ar.take(t * h)?);
    weight::apply(s, &layer.o, prep.o, merged, attn, ar.sub().rest())?;
    add_bias(attn, &p[l.bo..l.bo + h]);
    for (a, xv) in attn.iter_mut().zip(x.iter()) {
        *a += *xv;
    }
    probe.mark(Component::LayerNorm, s.peer_stats());
    layernorm::layernorm(
        s,
        t,
        h,
        attn,
        &p[l.ln1_g..l.ln1_g + h],
        &p[l.ln1_b..l.ln1_b + h],
        layer.eps,
        x,
        ar.sub().rest(),
    )?;
    // FFN.
    probe.mark(Component::Linear, s.peer_stats());
    let f1 = AShare::from_raw_slice_mut(ar.take(t * i)?);
    weight::apply(s, &layer.ffn1, prep.ffn1, x, f1, ar.sub().rest())?;
    add_bias(f1, &p[l.b1..l.b1 + i]);
    let g = AShare::from_raw_slice_mut(ar.take(t * i)?);
    probe.mark(Component::Gelu, s.peer_stats());
    gelu::gelu(s, f1, gelu::DEFAULT_BITS, g, ar.sub().rest())?;
    probe.mark(Component::Linear, s.peer_stats());
    let f2 = merged; // reuse: t x h
    weight::apply(s, &layer.ffn2, prep.ffn2, g, f2, ar.sub().rest())?;
    add_bias(f2, &p[l.b2..l.b2 + h]);
    for (a, xv) in f2.iter_mut().zip(x.iter()) {
        *a += *xv;
    }
    probe.mark(Component::LayerNorm, s.peer_stats());
    layernorm::layernorm(
        s,
        t,
        h,
        f2,
        &p[l.ln2_g..l.ln2_g + h],
        &p[l.ln2_b..l.ln2_b + h],
        layer.eps,
        x,
        ar.rest(),
    )?;
    probe.mark(Component::End, s.peer_stats());
    Ok(())
}
