//! The model's parameters on both sides of a session.
//!
//! * [`RingModel`] (P0 only, shared by every session): the weight matrices in the ring
//!   encoding (`W`, which P0 multiplies online), the vector parameters as reals (shared
//!   into each session), and the public position plus token-type embeddings.
//! * [`SessionSetup`] (per session and party): the shares of the vector parameters and, at
//!   P1, the `F = W - B` matrices, from [`setup_p0`] / [`setup_p1`]. Setup sends
//!   `8 x (parameters)` bytes from P0 to P1 once; afterwards the parties share nothing of
//!   the weights again.
//! * [`SessionWeights`]: borrowed views of both, in the shape the forward pass takes.

use anyhow::{bail, Context, Result};
use secformer_core::dealer::Dealer;
use secformer_core::fxp::Encoding as Fxp;
use secformer_core::kernel::MatMul;
use secformer_core::nn::layer::{product_shapes, vector_param_words};
use secformer_core::nn::{LayerParams, OwnedLayer};
use secformer_core::party::PartyId;
use secformer_core::protocols::weight::OwnedWeight;
use secformer_core::protocols::{input, weight};
use secformer_core::session::Session;
use secformer_core::share::AShare;
use secformer_core::transport::Transport;

use super::fmat::FMatrices;
use super::{layer_id, ModelShape, CLASSIFIER_ID, EMB_ID, POOLER_ID};
use crate::model::{BertConfig, BertWeights, EncoderLayer};

/// P0's model in the ring encoding.
pub struct RingModel {
    /// The public shape.
    pub shape: ModelShape,
    /// Per layer, the four matrices `[Wq/sqrt(d) | Wk | Wv]`, `Wo`, `W1`, `W2` (row-major
    /// `[in][out]`, ring-encoded in 32 bits).
    pub layers: Vec<[Vec<i32>; 4]>,
    /// Per layer, the vector parameters in [`LayerParams::from_vectors`] order.
    pub layer_vectors: Vec<Vec<f64>>,
    /// The word-embedding table (`V x H`, ring-encoded in 32 bits).
    pub embedding: Vec<i32>,
    /// Position plus token-type-0 embeddings (`max_positions x H`, ring-encoded).
    pub positions: Vec<u64>,
    /// The embedding LayerNorm's `[gamma | beta]`.
    pub emb_ln: Vec<f64>,
    /// Pooler and classifier matrices (`H x H`, `H x labels`), ring-encoded in 32 bits.
    pub head: Option<[Vec<i32>; 2]>,
    /// Pooler and classifier biases `[bp | bc]`.
    pub head_bias: Vec<f64>,
}

/// Encodes weights as ring elements kept in 32 signed bits (each sign-extends to its ring
/// element): the loader bounds weights by 4096, `2^28` at `f = 16`, so they fit, and P0
/// holds its matrices in half the memory ([`MatMul::gemm_i32`]).
fn encode_all(enc: Fxp, what: &str, xs: impl Iterator<Item = f64>) -> Result<Vec<i32>> {
    xs.map(|x| {
        let r = enc
            .encode(x)
            .map_err(|e| anyhow::anyhow!("{what}: a weight does not fit in fixed point: {e}"))?;
        i32::try_from(r as i64)
            .map_err(|_| anyhow::anyhow!("{what}: the weight {x} does not fit in 32 bits"))
    })
    .collect()
}

fn f64s(xs: &[f32]) -> impl Iterator<Item = f64> + '_ {
    xs.iter().map(|x| *x as f64)
}

/// The four matrices of a layer, `1/sqrt(d)` folded into the query.
fn layer_matrices(cfg: &BertConfig, w: &EncoderLayer, enc: Fxp) -> Result<[Vec<i32>; 4]> {
    let h = cfg.hidden_size;
    let scale = 1.0 / (cfg.head_dim() as f64).sqrt();
    let mut qkv = Vec::with_capacity(3 * h * h);
    for r in 0..h {
        qkv.extend((0..h).map(|c| w.q.w.get(r, c) as f64 * scale));
        qkv.extend((0..h).map(|c| w.k.w.get(r, c) as f64));
        qkv.extend((0..h).map(|c| w.v.w.get(r, c) as f64));
    }
    Ok([
        encode_all(enc, "attention", qkv.into_iter())?,
        encode_all(enc, "attention output", f64s(&w.attn_out.w.data))?,
        encode_all(enc, "FFN", f64s(&w.ffn_in.w.data))?,
        encode_all(enc, "FFN output", f64s(&w.ffn_out.w.data))?,
    ])
}

/// The vector parameters of a layer, `1/sqrt(d)` folded into the query bias.
fn layer_vectors(cfg: &BertConfig, w: &EncoderLayer) -> Vec<f64> {
    let scale = 1.0 / (cfg.head_dim() as f64).sqrt();
    let mut v = Vec::with_capacity(vector_param_words(cfg.hidden_size, cfg.intermediate_size));
    v.extend(f64s(&w.q.b).map(|x| x * scale));
    v.extend(f64s(&w.k.b));
    v.extend(f64s(&w.v.b));
    v.extend(f64s(&w.attn_out.b));
    v.extend(f64s(&w.ln1.gamma));
    v.extend(f64s(&w.ln1.beta));
    v.extend(f64s(&w.ffn_in.b));
    v.extend(f64s(&w.ffn_out.b));
    v.extend(f64s(&w.ln2.gamma));
    v.extend(f64s(&w.ln2.beta));
    v
}

impl RingModel {
    /// Encodes a checkpoint (its f32 weights can be dropped afterwards).
    pub fn new(cfg: &BertConfig, w: &BertWeights) -> Result<Self> {
        let enc = Fxp::default();
        let shape = ModelShape::of(cfg);
        let h = cfg.hidden_size;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        let mut vectors = Vec::with_capacity(cfg.num_hidden_layers);
        for (l, lw) in w.layers.iter().enumerate() {
            layers.push(layer_matrices(cfg, lw, enc).with_context(|| format!("layer {l}"))?);
            vectors.push(layer_vectors(cfg, lw));
        }
        let mut positions = Vec::with_capacity(cfg.max_position_embeddings * h);
        for r in 0..cfg.max_position_embeddings {
            for c in 0..h {
                let x = w.pos_emb.get(r, c) as f64 + w.type_emb.get(0, c) as f64;
                positions.push(enc.encode(x).context("position embeddings")?);
            }
        }
        let mut emb_ln: Vec<f64> = f64s(&w.emb_ln.gamma).collect();
        emb_ln.extend(f64s(&w.emb_ln.beta));
        let (head, head_bias) = match (shape.labels, &w.pooler, &w.classifier) {
            (None, _, _) => (None, Vec::new()),
            (Some(_), Some(p), Some(c)) => {
                let m = [
                    encode_all(enc, "pooler", f64s(&p.w.data))?,
                    encode_all(enc, "classifier", f64s(&c.w.data))?,
                ];
                let mut b: Vec<f64> = f64s(&p.b).collect();
                b.extend(f64s(&c.b));
                (Some(m), b)
            }
            _ => bail!("the classifier checkpoint lacks its pooler or classifier weights"),
        };
        Ok(RingModel {
            shape,
            layers,
            layer_vectors: vectors,
            embedding: encode_all(enc, "word embeddings", f64s(&w.word_emb.data))?,
            positions,
            emb_ln,
            head,
            head_bias,
        })
    }
}

/// Shares of the vector parameters and, at P1, the `F` matrices of one session.
pub struct SessionSetup {
    /// The model's shape.
    pub shape: ModelShape,
    /// Per layer, the vector parameters' shares.
    pub layer_params: Vec<Vec<AShare>>,
    /// The embedding LayerNorm's `[gamma | beta]` shares.
    pub emb_ln: Vec<AShare>,
    /// Pooler and classifier bias shares `[bp | bc]`.
    pub head_bias: Vec<AShare>,
    /// P1's `F` matrices by weight: per layer four, then the embedding, pooler and
    /// classifier (empty at P0, which multiplies by its own `W`).
    pub f: FMatrices,
}

/// Every weight of a model as `(id, rows, cols)`, in setup order.
pub fn weight_list(m: &ModelShape) -> Vec<(u32, usize, usize)> {
    let mut v = Vec::new();
    for l in 0..m.layers {
        for (i, (k, n)) in product_shapes(m.hidden, m.inter).into_iter().enumerate() {
            v.push((layer_id(l) + i as u32, k, n));
        }
    }
    v.push((EMB_ID, m.vocab, m.hidden));
    if let Some(labels) = m.labels {
        v.push((POOLER_ID, m.hidden, m.hidden));
        v.push((CLASSIFIER_ID, m.hidden, labels));
    }
    v
}

fn share_vectors<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    vals: Option<&[f64]>,
    n: usize,
) -> Result<Vec<AShare>> {
    let mut out = vec![AShare::default(); n];
    input::share_input_f64(s, PartyId::P0, vals, &mut out)
        .context("sharing the model's vector parameters")?;
    Ok(out)
}

/// Shares of the vector parameters: per layer, the embedding LayerNorm's, the head's biases.
type SharedVectors = (Vec<Vec<AShare>>, Vec<AShare>, Vec<AShare>);

fn share_all_vectors<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    m: &ModelShape,
    model: Option<&RingModel>,
) -> Result<SharedVectors> {
    let per_layer = vector_param_words(m.hidden, m.inter);
    let mut layer_params = Vec::with_capacity(m.layers);
    for l in 0..m.layers {
        let v = model.map(|r| r.layer_vectors[l].as_slice());
        layer_params.push(share_vectors(s, v, per_layer)?);
    }
    let emb_ln = share_vectors(s, model.map(|r| r.emb_ln.as_slice()), 2 * m.hidden)?;
    let head_len = m.labels.map_or(0, |n| m.hidden + n);
    let head_bias = share_vectors(s, model.map(|r| r.head_bias.as_slice()), head_len)?;
    Ok((layer_params, emb_ln, head_bias))
}

/// P0's matrix of weight `id` in its model.
fn p0_matrix(model: &RingModel, id: u32) -> &[i32] {
    match id {
        EMB_ID => &model.embedding,
        POOLER_ID | CLASSIFIER_ID => model
            .head
            .as_ref()
            .map(|h| h[(id - POOLER_ID) as usize].as_slice())
            .unwrap_or(&[]),
        _ => &model.layers[id as usize / 4][id as usize % 4],
    }
}

/// P0's side of a session's setup: shares the vector parameters and sends `F` for every
/// matrix. `progress(done, total)` is called per weight.
pub fn setup_p0<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    model: &RingModel,
    mut progress: impl FnMut(usize, usize),
) -> Result<SessionSetup> {
    let m = &model.shape;
    let (layer_params, emb_ln, head_bias) = share_all_vectors(s, m, Some(model))?;
    let list = weight_list(m);
    let largest = list.iter().map(|(_, k, n)| k * n).max().unwrap_or(0);
    let mut scratch = vec![0u64; largest];
    let mut wide = vec![0u64; largest];
    for (i, &(id, k, n)) in list.iter().enumerate() {
        progress(i, list.len());
        let w = &mut wide[..k * n];
        for (d, x) in w.iter_mut().zip(p0_matrix(model, id)) {
            *d = *x as i64 as u64;
        }
        weight::setup_owned(s, id, k, n, Some(w), &mut [], &mut scratch)
            .with_context(|| format!("setting up weight {id}"))?;
    }
    progress(list.len(), list.len());
    Ok(SessionSetup {
        shape: m.clone(),
        layer_params,
        emb_ln,
        head_bias,
        f: FMatrices::default(),
    })
}

/// P1's side of a session's setup: receives the vector parameters' shares and every `F`.
pub fn setup_p1<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    m: &ModelShape,
    mut progress: impl FnMut(usize, usize),
) -> Result<SessionSetup> {
    let (layer_params, emb_ln, head_bias) = share_all_vectors(s, m, None)?;
    let list = weight_list(m);
    let mut f = Vec::with_capacity(list.len());
    for (i, &(id, k, n)) in list.iter().enumerate() {
        progress(i, list.len());
        let mut mat = vec![0u64; k * n];
        weight::setup_owned(s, id, k, n, None, &mut mat, &mut [])
            .with_context(|| format!("setting up weight {id}"))?;
        f.push(mat);
    }
    progress(list.len(), list.len());
    Ok(SessionSetup {
        shape: m.clone(),
        layer_params,
        emb_ln,
        head_bias,
        f: FMatrices::memory(f),
    })
}

/// The pooler and classifier of a classification head.
#[derive(Clone, Copy)]
pub struct Head<'a> {
    /// Pooler (`H x H`).
    pub pooler: OwnedWeight<'a>,
    /// Pooler bias.
    pub pooler_bias: &'a [AShare],
    /// Classifier (`H x labels`).
    pub classifier: OwnedWeight<'a>,
    /// Classifier bias.
    pub classifier_bias: &'a [AShare],
}

/// One party's view of a session's weights, as the forward pass takes them.
pub struct SessionWeights<'a> {
    /// Per layer, its products and vector parameters.
    pub layers: Vec<(OwnedLayer<'a>, LayerParams<'a>)>,
    /// The word-embedding table.
    pub embedding: OwnedWeight<'a>,
    /// The embedding LayerNorm's `(gamma, beta)`.
    pub emb_ln: (&'a [AShare], &'a [AShare]),
    /// The classification head, if any.
    pub head: Option<Head<'a>>,
}

impl<'a> SessionWeights<'a> {
    /// P0's view: its own `W` matrices.
    pub fn p0(setup: &'a SessionSetup, model: &'a RingModel) -> Result<Self> {
        Self::build(setup, |id, k, n| {
            Ok(OwnedWeight::view_i32(id, k, n, p0_matrix(model, id))?)
        })
    }

    /// P1's view: its `F` matrices.
    pub fn p1(setup: &'a SessionSetup) -> Result<Self> {
        if setup.f.len() != weight_list(&setup.shape).len() {
            bail!("P1's session setup lacks some weight matrices");
        }
        // P1's products are prepared offline (`A F + C`); online it multiplies nothing.
        Self::build(setup, |id, k, n| Ok(OwnedWeight::shape_only(id, k, n)))
    }

    /// A view with no matrices, for recording plans (see [`super::plan`]).
    pub fn shape_only(setup: &'a SessionSetup) -> Result<Self> {
        Self::build(setup, |id, k, n| Ok(OwnedWeight::shape_only(id, k, n)))
    }

    fn build(
        setup: &'a SessionSetup,
        view: impl Fn(u32, usize, usize) -> Result<OwnedWeight<'a>>,
    ) -> Result<Self> {
        let m = &setup.shape;
        let mut layers = Vec::with_capacity(m.layers);
        for l in 0..m.layers {
            let [a, b, c, d] = product_shapes(m.hidden, m.inter);
            let id = layer_id(l);
            let owned = OwnedLayer {
                qkv: view(id, a.0, a.1)?,
                out: view(id + 1, b.0, b.1)?,
                ffn_in: view(id + 2, c.0, c.1)?,
                ffn_out: view(id + 3, d.0, d.1)?,
            };
            let params =
                LayerParams::from_vectors(&setup.layer_params[l], m.hidden, m.inter, m.eps)?;
            layers.push((owned, params));
        }
        let (g, b) = setup.emb_ln.split_at(m.hidden);
        let head = match m.labels {
            None => None,
            Some(labels) => {
                let (bp, bc) = setup.head_bias.split_at(m.hidden);
                Some(Head {
                    pooler: view(POOLER_ID, m.hidden, m.hidden)?,
                    pooler_bias: bp,
                    classifier: view(CLASSIFIER_ID, m.hidden, labels)?,
                    classifier_bias: bc,
                })
            }
        };
        Ok(SessionWeights {
            layers,
            embedding: view(EMB_ID, m.vocab, m.hidden)?,
            emb_ln: (g, b),
            head,
        })
    }
}

/// A setup with zero shares and no matrices, for recording plans without a session.
pub fn placeholder_setup(m: &ModelShape) -> SessionSetup {
    SessionSetup {
        shape: m.clone(),
        layer_params: (0..m.layers)
            .map(|_| vec![AShare::default(); vector_param_words(m.hidden, m.inter)])
            .collect(),
        emb_ln: vec![AShare::default(); 2 * m.hidden],
        head_bias: vec![AShare::default(); m.labels.map_or(0, |n| m.hidden + n)],
        f: FMatrices::default(),
    }
}
