//! The plaintext reference forward pass, in f64 (weights are f32, every sum is f64).
//!
//! This is the oracle every secure run is compared with. The building blocks ([`linear`],
//! [`layernorm`], [`gelu`], [`softmax_exact`], [`softmax_2quad`], [`attention`],
//! [`encoder_layer`], [`embed`], [`pool`]) are public so that the secure side can check
//! each step on its own. Activations are row-major `tokens x width` slices of f64.
//!
//! Masking: a key position whose attention-mask entry is 0 gets attention weight exactly 0
//! (for the exact softmax its score is treated as -inf; for 2Quad its (x + c)^2 term is
//! left out of the sum). Mean pooling averages over the unmasked positions only.
//!
//! Normalisation: when [`BertConfig::normalize`] is set (sentence-transformers' `Normalize`
//! module, as in all-MiniLM-L6-v2), [`Output::pooled`] is the L2-normalised vector
//! `v / max(|v|, 1e-12)` and [`Output::pooled_raw`] keeps the vector before it.

use anyhow::{bail, Result};

use super::config::{BertConfig, Pooling, SoftmaxKind};
use super::tokenizer::Encoding;
use super::weights::{BertWeights, EncoderLayer, LayerNorm, Linear};
use super::Model;

/// What the reference forward pass returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Number of positions (tokens including padding) of the input.
    pub tokens: usize,
    /// Final-layer hidden states, `tokens x hidden`, row-major.
    pub hidden: Vec<f32>,
    /// The sentence vector: mean-pooled (then L2-normalised if the model says so), or for a
    /// classifier the pooler output tanh(W h_CLS + b); for CLS pooling without a pooler,
    /// the final hidden state of `[CLS]`.
    pub pooled: Vec<f32>,
    /// The pooled vector before the optional L2 normalisation (equal to `pooled` when the
    /// model does not normalise).
    pub pooled_raw: Vec<f32>,
    /// Classifier logits (`num_labels`), for a classifier model.
    pub logits: Option<Vec<f32>>,
}

/// `x W + b` for `x` of `rows x in` (row-major); returns `rows x out`.
pub fn linear(x: &[f64], lin: &Linear) -> Vec<f64> {
    let (inp, out) = (lin.in_dim(), lin.out_dim());
    assert_eq!(x.len() % inp, 0, "linear: input width mismatch");
    let rows = x.len() / inp;
    let mut y = vec![0.0f64; rows * out];
    for r in 0..rows {
        let yr = &mut y[r * out..(r + 1) * out];
        for (o, b) in yr.iter_mut().zip(&lin.b) {
            *o = f64::from(*b);
        }
        for (i, &xi) in x[r * inp..(r + 1) * inp].iter().enumerate() {
            if xi == 0.0 {
                continue;
            }
            for (o, &w) in yr.iter_mut().zip(lin.w.row(i)) {
                *o += xi * f64::from(w);
            }
        }
    }
    y
}

/// LayerNorm of each row of `x` (rows of `gamma.len()` entries): population variance,
/// `gamma * (x - mean) / sqrt(var + eps) + beta`.
pub fn layernorm(x: &[f64], ln: &LayerNorm) -> Vec<f64> {
    let h = ln.gamma.len();
    assert_eq!(x.len() % h, 0, "layernorm: width mismatch");
    let eps = f64::from(ln.eps);
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks_exact(h) {
        let mean = row.iter().sum::<f64>() / h as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / h as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter().zip(&ln.gamma).zip(&ln.beta) {
            y.push((v - mean) * inv * f64::from(*g) + f64::from(*b));
        }
    }
    y
}

/// Exact GeLU, `0.5 x (1 + erf(x / sqrt 2))` (Hugging Face's `"gelu"`).
pub fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))
}

/// Exact softmax of one row of scores over the positions where `mask` is true; masked
/// positions get 0. A row with no unmasked position is all zeros.
pub fn softmax_exact(scores: &[f64], mask: &[bool]) -> Vec<f64> {
    assert_eq!(scores.len(), mask.len(), "softmax: mask length mismatch");
    let max = scores
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m)
        .map(|(&s, _)| s)
        .fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return vec![0.0; scores.len()];
    }
    let e: Vec<f64> = scores
        .iter()
        .zip(mask)
        .map(|(&s, &m)| if m { (s - max).exp() } else { 0.0 })
        .collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// SecFormer's 2Quad of one row: `(x_i + c)^2 / sum_j (x_j + c)^2` over the unmasked
/// positions; masked positions get 0. If every unmasked term is 0 the weights are uniform
/// over the unmasked positions.
pub fn softmax_2quad(scores: &[f64], mask: &[bool], c: f64) -> Vec<f64> {
    assert_eq!(scores.len(), mask.len(), "softmax: mask length mismatch");
    let q: Vec<f64> = scores
        .iter()
        .zip(mask)
        .map(|(&s, &m)| if m { (s + c) * (s + c) } else { 0.0 })
        .collect();
    let sum: f64 = q.iter().sum();
    if sum == 0.0 {
        let n = mask.iter().filter(|&&m| m).count();
        return mask
            .iter()
            .map(|&m| if m { 1.0 / n as f64 } else { 0.0 })
            .collect();
    }
    q.into_iter().map(|v| v / sum).collect()
}

/// The softmax selected by `kind`.
pub fn softmax(kind: SoftmaxKind, scores: &[f64], mask: &[bool]) -> Vec<f64> {
    match kind {
        SoftmaxKind::Exact => softmax_exact(scores, mask),
        SoftmaxKind::TwoQuad { c } => softmax_2quad(scores, mask, f64::from(c)),
    }
}

/// Multi-head attention core: from projected `q`, `k`, `v` (each `tokens x hidden`) to the
/// context `tokens x hidden` (before the output projection). Head `h` uses columns
/// `h*d..(h+1)*d`; scores are `q k^T / sqrt(d)`, softmax over the keys where `mask` is true.
pub fn attention(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    mask: &[bool],
    heads: usize,
    softmax_kind: SoftmaxKind,
) -> Vec<f64> {
    let n = mask.len();
    let hidden = q.len() / n;
    let d = hidden / heads;
    let scale = 1.0 / (d as f64).sqrt();
    let mut ctx = vec![0.0f64; n * hidden];
    let mut scores = vec![0.0f64; n];
    for h in 0..heads {
        let cols = h * d..(h + 1) * d;
        for i in 0..n {
            let qi = &q[i * hidden..][cols.clone()];
            for (j, s) in scores.iter_mut().enumerate() {
                let kj = &k[j * hidden..][cols.clone()];
                *s = qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>() * scale;
            }
            let p = softmax(softmax_kind, &scores, mask);
            let out = &mut ctx[i * hidden..][cols.clone()];
            for (j, &pj) in p.iter().enumerate() {
                if pj == 0.0 {
                    continue;
                }
                let vj = &v[j * hidden..][cols.clone()];
                for (o, &x) in out.iter_mut().zip(vj) {
                    *o += pj * x;
                }
            }
        }
    }
    ctx
}

/// One post-LayerNorm encoder layer on `x` (`tokens x hidden`).
pub fn encoder_layer(
    layer: &EncoderLayer,
    x: &[f64],
    mask: &[bool],
    heads: usize,
    softmax_kind: SoftmaxKind,
) -> Vec<f64> {
    let q = linear(x, &layer.q);
    let k = linear(x, &layer.k);
    let v = linear(x, &layer.v);
    let ctx = attention(&q, &k, &v, mask, heads, softmax_kind);
    let mut a = linear(&ctx, &layer.attn_out);
    a.iter_mut().zip(x).for_each(|(a, x)| *a += x);
    let a = layernorm(&a, &layer.ln1);
    let mut f = linear(&a, &layer.ffn_in);
    f.iter_mut().for_each(|v| *v = gelu(*v));
    let mut f = linear(&f, &layer.ffn_out);
    f.iter_mut().zip(&a).for_each(|(f, a)| *f += a);
    layernorm(&f, &layer.ln2)
}

/// Embedding sum (word + position + token type) followed by the embedding LayerNorm.
pub fn embed(weights: &BertWeights, enc: &Encoding) -> Vec<f64> {
    let h = weights.word_emb.cols;
    let mut x = Vec::with_capacity(enc.ids.len() * h);
    for (pos, (&id, &ty)) in enc.ids.iter().zip(&enc.type_ids).enumerate() {
        let w = weights.word_emb.row(id as usize);
        let p = weights.pos_emb.row(pos);
        let t = weights.type_emb.row(ty as usize);
        for c in 0..h {
            x.push(f64::from(w[c]) + f64::from(p[c]) + f64::from(t[c]));
        }
    }
    layernorm(&x, &weights.emb_ln)
}

/// Checks that an encoding can be fed to a model with this configuration.
pub fn check_encoding(config: &BertConfig, enc: &Encoding) -> Result<()> {
    let n = enc.ids.len();
    if n == 0 {
        bail!("empty input: no tokens");
    }
    if enc.type_ids.len() != n || enc.attention_mask.len() != n {
        bail!(
            "encoding: {n} ids but {} type ids and {} mask entries",
            enc.type_ids.len(),
            enc.attention_mask.len()
        );
    }
    if n > config.max_position_embeddings {
        bail!(
            "input has {n} positions, more than max_position_embeddings {}",
            config.max_position_embeddings
        );
    }
    if let Some(&id) = enc.ids.iter().find(|&&i| i as usize >= config.vocab_size) {
        bail!(
            "token id {id} is outside the vocabulary (vocab_size {})",
            config.vocab_size
        );
    }
    if let Some(&t) = enc
        .type_ids
        .iter()
        .find(|&&t| t as usize >= config.type_vocab_size)
    {
        bail!(
            "token type id {t} is outside type_vocab_size {}",
            config.type_vocab_size
        );
    }
    if enc.attention_mask.iter().all(|&m| m == 0) {
        bail!("attention mask has no unmasked position");
    }
    Ok(())
}

/// The hidden states after the embeddings and after each encoder layer
/// (`num_hidden_layers + 1` entries of `tokens x hidden`).
pub fn hidden_states(config: &BertConfig, weights: &BertWeights, enc: &Encoding) -> Vec<Vec<f64>> {
    let mask: Vec<bool> = enc.attention_mask.iter().map(|&m| m != 0).collect();
    let mut states = Vec::with_capacity(weights.layers.len() + 1);
    states.push(embed(weights, enc));
    for layer in &weights.layers {
        let x = states.last().expect("at least the embeddings");
        let y = encoder_layer(layer, x, &mask, config.num_attention_heads, config.softmax);
        states.push(y);
    }
    states
}

/// Pooling, normalisation and head on final hidden states `x` (`tokens x hidden`):
/// returns `(pooled, pooled_raw, logits)` as in [`Output`].
pub fn pool(
    config: &BertConfig,
    weights: &BertWeights,
    x: &[f64],
    mask: &[bool],
) -> (Vec<f64>, Vec<f64>, Option<Vec<f64>>) {
    let h = config.hidden_size;
    let (raw, logits) = match config.pooling {
        Pooling::Mean => {
            let mut sum = vec![0.0f64; h];
            let mut count = 0usize;
            for (row, &m) in x.chunks_exact(h).zip(mask) {
                if m {
                    sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                    count += 1;
                }
            }
            let count = count.max(1) as f64;
            (sum.into_iter().map(|s| s / count).collect(), None)
        }
        Pooling::Cls => {
            let cls = x[..h].to_vec();
            match &weights.pooler {
                Some(p) => {
                    let mut pooled = linear(&cls, p);
                    pooled.iter_mut().for_each(|v| *v = v.tanh());
                    let logits = weights.classifier.as_ref().map(|c| linear(&pooled, c));
                    (pooled, logits)
                }
                None => (cls, None),
            }
        }
    };
    let pooled = if config.normalize {
        l2_normalize(&raw)
    } else {
        raw.clone()
    };
    (pooled, raw, logits)
}

/// `v / max(|v|_2, 1e-12)` (PyTorch's `F.normalize`).
pub fn l2_normalize(v: &[f64]) -> Vec<f64> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// The full forward pass of a configuration and weights (no tokenizer needed); errors if
/// the encoding does not fit the model (see [`check_encoding`]).
pub fn try_forward_weights(
    config: &BertConfig,
    weights: &BertWeights,
    enc: &Encoding,
) -> Result<Output> {
    check_encoding(config, enc)?;
    let states = hidden_states(config, weights, enc);
    let last = states.last().expect("at least the embeddings");
    let mask: Vec<bool> = enc.attention_mask.iter().map(|&m| m != 0).collect();
    let (pooled, raw, logits) = pool(config, weights, last, &mask);
    Ok(Output {
        tokens: enc.ids.len(),
        hidden: to_f32(last),
        pooled: to_f32(&pooled),
        pooled_raw: to_f32(&raw),
        logits: logits.as_deref().map(to_f32),
    })
}

/// [`try_forward_weights`] that panics on an encoding that does not fit the model.
pub fn forward_weights(config: &BertConfig, weights: &BertWeights, enc: &Encoding) -> Output {
    try_forward_weights(config, weights, enc).unwrap_or_else(|e| panic!("forward: {e:#}"))
}

/// The reference forward pass of a loaded model. Encodings made by the model's own
/// tokenizer always fit; panics on one that does not (ids outside the vocabulary, longer
/// than `max_position_embeddings`, all masked): use [`try_forward`] for untrusted input.
pub fn forward(model: &Model, enc: &Encoding) -> Output {
    forward_weights(&model.config, &model.weights, enc)
}

/// [`forward`] that returns an error instead of panicking on an encoding that does not fit.
pub fn try_forward(model: &Model, enc: &Encoding) -> Result<Output> {
    try_forward_weights(&model.config, &model.weights, enc)
}

/// What a classifier's logits say, as Hugging Face's text-classification pipeline reports
/// it: the most likely label, its probability, and every class's probability.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Classified {
    /// The most likely class's name (`LABEL_i` when the config names none).
    pub label: String,
    /// Its probability.
    pub score: f64,
    /// The softmax of the logits, in class order (sums to 1).
    pub probs: Vec<f64>,
}

/// The softmax of `logits` (probabilities summing to 1), its argmax's label among
/// `labels` and its score. The secure pass reveals logits to P1 only; this runs there,
/// in the clear, on what was revealed.
pub fn classify(logits: &[f64], labels: &[String]) -> Classified {
    let probs = softmax_exact(logits, &vec![true; logits.len()]);
    let best = probs
        .iter()
        .enumerate()
        .fold(0, |b, (i, p)| if *p > probs[b] { i } else { b });
    Classified {
        label: labels
            .get(best)
            .cloned()
            .unwrap_or_else(|| format!("LABEL_{best}")),
        score: probs.get(best).copied().unwrap_or(0.0),
        probs,
    }
}
