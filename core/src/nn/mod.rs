//! Transformer (BERT) layers over secret shares, on caller-provided buffers.
//!
//! * [`layer`]: the encoder layer: Q/K/V projections (one weight product on the
//!   concatenated `[Wq | Wk | Wv]`), per-head scores `Q K^T` (the model owner folds
//!   `1/sqrt(d)` into `Wq`, `bq`), softmax (exact or 2Quad) with a key mask, context,
//!   output projection, residual, LayerNorm, FFN with GeLU, residual, LayerNorm.
//! * [`embed`]: token embeddings by a lookup in P0's table at P1's private ids
//!   ([`crate::protocols::lookup`]: two masked one-hot factors of each id, `8 ceil(sqrt V)`
//!   bytes per token from P1 online), public position and token-type embeddings added by
//!   P0, then LayerNorm.
//! * [`pool`]: mean pooling over the real tokens, and the CLS pooler (dense + tanh) with
//!   the classifier.
//!
//! Weights are set up once per session (their fixed masks opened, [`crate::protocols::weight`]);
//! each inference prepares its masks offline, then runs online.

pub mod embed;
pub mod layer;
pub mod pool;

pub use layer::{
    encoder_layer, prepare_layer, setup_layer, setup_owned_layer, Keys, LayerParams, LayerProducts,
    OwnedLayer, PreparedLayer, Product, SharedLayer,
};

/// The parts of a forward pass that profiles report (as in SecFormer's Table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// Weight products and the attention matmuls.
    Linear,
    /// Attention softmax.
    Softmax,
    /// GeLU.
    Gelu,
    /// LayerNorm.
    LayerNorm,
    /// Everything else (embeddings, pooling, heads).
    Other,
    /// The end of a measured span.
    End,
}

/// Receives the boundaries between components with the peer traffic counters at that
/// point, so a host can attribute time, bytes and rounds. `()` ignores them.
pub trait Probe {
    /// The computation is entering `next`.
    fn mark(&mut self, next: Component, peer: crate::transport::Stats);
}

impl Probe for () {
    fn mark(&mut self, _: Component, _: crate::transport::Stats) {}
}

/// Which softmax a model uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Softmax {
    /// Exact-ish softmax (max tree, exp, reciprocal) for unmodified checkpoints.
    Exact,
    /// SecFormer's 2Quad `(x + c)^2 / sum (x + c)^2` for distilled models.
    TwoQuad {
        /// The shift `c` (5 in the paper).
        c: f64,
    },
}

/// The shape of one encoder layer and of its input: `batch` texts of `seq` tokens each
/// (padded to one length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerDims {
    /// Texts.
    pub batch: usize,
    /// Tokens per text.
    pub seq: usize,
    /// Hidden size `H`.
    pub hidden: usize,
    /// Attention heads (`H` divisible by it).
    pub heads: usize,
    /// FFN intermediate size `I`.
    pub inter: usize,
}

impl LayerDims {
    /// Rows of the activations: `batch x seq`.
    pub fn rows(&self) -> usize {
        self.batch * self.seq
    }

    /// Head size `H / heads`.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

/// Offsets of a layer's parameters in its share vector, in this order: `wqkv (H x 3H)`,
/// `bqkv (3H)`, `wo (H x H)`, `bo (H)`, `ln1_gamma (H)`, `ln1_beta (H)`, `w1 (H x I)`,
/// `b1 (I)`, `w2 (I x H)`, `b2 (H)`, `ln2_gamma (H)`, `ln2_beta (H)`. Matrices are
/// row-major `[in][out]` (`y = x W + b`); `wqkv` and `bqkv` hold `[q | k | v]` with the q
/// part already multiplied by `1/sqrt(H / heads)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamLayout {
    /// `wqkv`.
    pub wqkv: usize,
    /// `bqkv`.
    pub bqkv: usize,
    /// `wo`.
    pub wo: usize,
    /// `bo`.
    pub bo: usize,
    /// `ln1_gamma`.
    pub ln1_g: usize,
    /// `ln1_beta`.
    pub ln1_b: usize,
    /// `w1`.
    pub w1: usize,
    /// `b1`.
    pub b1: usize,
    /// `w2`.
    pub w2: usize,
    /// `b2`.
    pub b2: usize,
    /// `ln2_gamma`.
    pub ln2_g: usize,
    /// `ln2_beta`.
    pub ln2_b: usize,
    /// Total words.
    pub total: usize,
}

impl ParamLayout {
    /// The layout for hidden size `h` and intermediate size `i`.
    pub const fn new(h: usize, i: usize) -> Self {
        let wqkv = 0;
        let bqkv = wqkv + 3 * h * h;
        let wo = bqkv + 3 * h;
        let bo = wo + h * h;
        let ln1_g = bo + h;
        let ln1_b = ln1_g + h;
        let w1 = ln1_b + h;
        let b1 = w1 + h * i;
        let w2 = b1 + i;
        let b2 = w2 + i * h;
        let ln2_g = b2 + h;
        let ln2_b = ln2_g + h;
        ParamLayout {
            wqkv,
            bqkv,
            wo,
            bo,
            ln1_g,
            ln1_b,
            w1,
            b1,
            w2,
            b2,
            ln2_g,
            ln2_b,
            total: ln2_b + h,
        }
    }
}

/// Words of one layer's parameter shares.
pub const fn layer_param_words(hidden: usize, inter: usize) -> usize {
    ParamLayout::new(hidden, inter).total
}
