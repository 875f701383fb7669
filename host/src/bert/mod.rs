//! Secure BERT inference between P0 (the model owner), P1 (the data owner) and the dealer
//! D, with the offline work done ahead of requests.
//!
//! * [`ModelShape`] and [`PassShape`]: the public description of a model and of one
//!   forward pass (texts per pass, the sequence bucket, whether token counts are secret).
//! * [`weights`]: P0's model in ring encoding and each session's setup (P0 shares the
//!   vector parameters and sends `F = W - B` for every matrix, once per session).
//! * [`forward`]: the forward pass as one party, the same code for both roles
//!   ([`forward::P0Role`], [`forward::P1Role`]).
//! * [`plan`]: the request plan of a pass (a dry run of the forward pass), its hash and its
//!   predicted traffic.
//! * [`prepare`]: drawing one party's material of a whole pass before the input exists
//!   (P0 from its own seed alone; P1 from its seed and D's corrections, with the weight
//!   products' `A F + C` computed) into memory or a file.
//! * [`pool`]: ready passes per session, a background preparer that works while the
//!   session is idle, a memory budget with spilling to files, single use.
//! * [`p0`], [`p1`]: the two parties' session drivers over the peer link.
//! * [`observe`]: progress of P1's pass, layer by layer, for a display.
//!
//! What is public: the model's architecture (config), the number of inferences, the batch
//! size and the sequence bucket of each pass; with [`Lengths::Public`] also each text's
//! token count. What stays private: the weights (to P1 and D), the token ids, the token
//! counts in the default [`Lengths::Secret`] mode, every intermediate value (to P0 and D),
//! and the result (revealed to P1 only).

pub mod control;
pub mod fmat;
pub mod forward;
pub mod local;
pub mod observe;
pub mod p0;
pub mod p1;
pub mod plan;
pub mod pool;
pub mod prepare;
pub mod profile;
pub mod saved;
pub mod weights;

use anyhow::{bail, Result};
use secformer_core::nn::Softmax;
use serde::{Deserialize, Serialize};

use crate::model::{BertConfig, Pooling, SoftmaxKind};

/// Weight id of the word-embedding table.
pub const EMB_ID: u32 = 1_000_000;
/// Weight id of the pooler.
pub const POOLER_ID: u32 = 1_000_001;
/// Weight id of the classifier.
pub const CLASSIFIER_ID: u32 = 1_000_002;

/// Weight id of the first matrix of layer `l` (it has four: `4l .. 4l + 4`).
pub fn layer_id(l: usize) -> u32 {
    4 * l as u32
}

/// The public shape of a model's secure forward pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelShape {
    /// Encoder layers.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// FFN size.
    pub inter: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Longest input (positions).
    pub max_positions: usize,
    /// Classes of a classifier (`None`: mean-pooled embeddings).
    pub labels: Option<usize>,
    /// 2Quad's `c` (`None`: the exact softmax).
    pub two_quad: Option<f64>,
    /// LayerNorm epsilon.
    pub eps: f64,
}

impl ModelShape {
    /// The shape of a configuration.
    pub fn of(cfg: &BertConfig) -> Self {
        ModelShape {
            layers: cfg.num_hidden_layers,
            hidden: cfg.hidden_size,
            heads: cfg.num_attention_heads,
            inter: cfg.intermediate_size,
            vocab: cfg.vocab_size,
            max_positions: cfg.max_position_embeddings,
            labels: match (cfg.pooling, cfg.num_labels) {
                (Pooling::Cls, Some(n)) => Some(n),
                _ => None,
            },
            two_quad: match cfg.softmax {
                SoftmaxKind::Exact => None,
                SoftmaxKind::TwoQuad { c } => Some(c as f64),
            },
            eps: cfg.layer_norm_eps as f64,
        }
    }

    /// The softmax of the core's layers.
    pub fn softmax(&self) -> Softmax {
        match self.two_quad {
            None => Softmax::Exact,
            Some(c) => Softmax::TwoQuad { c },
        }
    }

    /// Width of the revealed output per text (logits or the pooled vector).
    pub fn output_width(&self) -> usize {
        self.labels.unwrap_or(self.hidden)
    }

    /// The default sequence buckets: powers of two from 16 up to the model's maximum,
    /// and the maximum itself.
    pub fn default_buckets(&self) -> Vec<usize> {
        let mut v = Vec::new();
        let mut b = 16;
        while b < self.max_positions {
            v.push(b);
            b *= 2;
        }
        v.push(self.max_positions);
        v
    }
}

/// What P0 and D may learn about the length of each text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lengths {
    /// Texts are padded to the bucket with a padding mask that stays secret (P1's shares of
    /// a 0/1 key mask, mean pooling over a secret count): P0 and D learn only the bucket.
    Secret,
    /// The bucket is the exact token count (one text per pass), which P0 and D learn; no
    /// masking work.
    Public,
}

/// The public shape of one pass: `batch` texts padded to `bucket` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PassShape {
    /// Texts in the pass.
    pub batch: usize,
    /// Tokens per text (after padding).
    pub bucket: usize,
    /// Whether the token counts stay secret.
    pub lengths: Lengths,
}

impl PassShape {
    /// Rows of the activations.
    pub fn rows(&self) -> usize {
        self.batch * self.bucket
    }

    /// Checks the shape against the model.
    pub fn check(&self, m: &ModelShape) -> Result<()> {
        if self.batch == 0 || self.bucket == 0 {
            bail!("a pass needs at least one text of at least one token");
        }
        if self.bucket > m.max_positions {
            bail!(
                "sequence bucket {} exceeds the model's {} positions",
                self.bucket,
                m.max_positions
            );
        }
        if self.lengths == Lengths::Public && self.batch != 1 {
            bail!("exact-length passes carry one text each (use secret lengths for batches)");
        }
        Ok(())
    }
}

/// A 32-byte fingerprint of a public description (SHA-256 of its JSON).
pub fn fingerprint<D: Serialize + ?Sized>(desc: &D) -> [u8; 32] {
    use sha2::Digest;
    let bytes = serde_json::to_vec(desc).unwrap_or_default();
    sha2::Sha256::digest(&bytes).into()
}

/// The bucket for a text of `tokens` tokens: the smallest of `buckets` that holds it.
pub fn bucket_for(buckets: &[usize], tokens: usize) -> Option<usize> {
    buckets.iter().copied().filter(|b| *b >= tokens).min()
}
