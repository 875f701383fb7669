//! The model's hyper-parameters, read from a Hugging Face checkpoint directory.
//!
//! [`load_config`] reads `config.json` (the BERT hyper-parameters and our own
//! `secformer_*` keys), the tokenizer options from `tokenizer_config.json` and/or
//! `tokenizer.json`, and the sentence-transformers modules (`modules.json`,
//! `1_Pooling/config.json`, `sentence_bert_config.json`) when present. Every
//! unsupported or inconsistent value is an error naming the file and the key.
//!
//! Recognised `config.json` keys:
//!
//! | key | meaning | default |
//! | --- | --- | --- |
//! | `model_type` | must be `"bert"` | required |
//! | `vocab_size`, `hidden_size`, `num_hidden_layers`, `num_attention_heads`, `intermediate_size`, `max_position_embeddings` | sizes | required |
//! | `type_vocab_size` | token-type embeddings | 2 |
//! | `layer_norm_eps` | LayerNorm epsilon | 1e-12 |
//! | `hidden_act` | only `"gelu"` (exact erf GeLU) | `"gelu"` |
//! | `position_embedding_type` | only `"absolute"` | `"absolute"` |
//! | `architectures` | `BertModel` (the bare encoder) or `BertForSequenceClassification` (pooler + classifier); any other head is refused | `BertModel` |
//! | `id2label`, `num_labels` | classifier labels | `LABEL_i`, 2 |
//! | `secformer_softmax` | `"exact"` or `"2quad"` | `"exact"` |
//! | `secformer_2quad_c` | the 2Quad shift c in (x + c)^2 | 5.0 |
//!
//! Bounds checked on load ([`BertConfig::validate`]): every size positive and at most
//! [`MAX_SIZES`] (far beyond BERT-large, so that a corrupt value cannot make a party
//! allocate terabytes); `layer_norm_eps` in `(0, 1]` (the secure LayerNorm adds it to the
//! variance in fixed point, and its normalization range ends at `2^(31 - log2 H)`);
//! `|secformer_2quad_c| <= 1024` (the 2Quad square needs `|x + c| < 2^15`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

/// How the final hidden states become one vector per input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean of the final hidden states over the unmasked tokens (sentence-transformers).
    Mean,
    /// The final hidden state of `[CLS]`; for a classifier checkpoint it then goes through
    /// the pooler (dense + tanh) and the classifier.
    Cls,
}

/// The attention softmax the model is run with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SoftmaxKind {
    /// exp(x_i) / sum_j exp(x_j) over the unmasked keys.
    Exact,
    /// SecFormer's 2Quad: (x_i + c)^2 / sum_j (x_j + c)^2 over the unmasked keys.
    TwoQuad {
        /// The shift c.
        c: f32,
    },
}

/// The activation of the feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiddenAct {
    /// Exact GeLU: 0.5 x (1 + erf(x / sqrt 2)) (Hugging Face's `"gelu"`).
    Gelu,
}

/// How text is turned into WordPiece ids (BERT's BasicTokenizer + WordPiece options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerOptions {
    /// Lower-case the text (`do_lower_case`; default true).
    pub do_lower_case: bool,
    /// Strip accents (NFD, then drop non-spacing marks). Hugging Face's `strip_accents: null`
    /// means "same as `do_lower_case`", which is what this holds then.
    pub strip_accents: bool,
    /// Put spaces around CJK ideographs so that each is its own word (default true).
    pub tokenize_chinese_chars: bool,
    /// Drop control characters and map every whitespace to a space (default true).
    pub clean_text: bool,
    /// Maximum tokens per sequence including `[CLS]` and `[SEP]`: the smallest of
    /// `max_position_embeddings`, the tokenizer's `model_max_length` and
    /// sentence-transformers' `max_seq_length` that are given.
    pub max_len: usize,
    /// Words longer than this many characters become `[UNK]` (default 100).
    pub max_input_chars_per_word: usize,
    /// The unknown token (default `[UNK]`).
    pub unk_token: String,
    /// The classification token that starts every sequence (default `[CLS]`).
    pub cls_token: String,
    /// The separator that ends every sequence (default `[SEP]`).
    pub sep_token: String,
    /// The padding token (default `[PAD]`).
    pub pad_token: String,
    /// The mask token (default `[MASK]`).
    pub mask_token: String,
}

impl TokenizerOptions {
    /// The options of `bert-base-uncased`-style tokenizers with the given maximum length.
    pub fn uncased(max_len: usize) -> Self {
        TokenizerOptions {
            do_lower_case: true,
            strip_accents: true,
            tokenize_chinese_chars: true,
            clean_text: true,
            max_len,
            max_input_chars_per_word: 100,
            unk_token: "[UNK]".into(),
            cls_token: "[CLS]".into(),
            sep_token: "[SEP]".into(),
            pad_token: "[PAD]".into(),
            mask_token: "[MASK]".into(),
        }
    }

    /// The special tokens that are matched verbatim in the input text.
    pub fn special_tokens(&self) -> [&str; 5] {
        [
            &self.unk_token,
            &self.cls_token,
            &self.sep_token,
            &self.pad_token,
            &self.mask_token,
        ]
    }
}

/// A BERT encoder's configuration plus the head, softmax and tokenizer options.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    /// Word-piece vocabulary size (rows of the word embedding).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer (divides `hidden_size`).
    pub num_attention_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Rows of the position embedding (the longest sequence the model accepts).
    pub max_position_embeddings: usize,
    /// Rows of the token-type embedding.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f32,
    /// Feed-forward activation.
    pub hidden_act: HiddenAct,
    /// How the final hidden states are pooled.
    pub pooling: Pooling,
    /// Whether the pooled vector is L2-normalised at the end (sentence-transformers'
    /// `Normalize` module is listed in `modules.json`, as for all-MiniLM-L6-v2).
    pub normalize: bool,
    /// The attention softmax.
    pub softmax: SoftmaxKind,
    /// Number of classes for a sequence-classification checkpoint (then the weights have a
    /// pooler and a classifier); `None` for an encoder / sentence-embedding model.
    pub num_labels: Option<usize>,
    /// Class names in id order (`id2label`); empty when `num_labels` is `None`.
    pub labels: Vec<String>,
    /// Tokenizer options.
    pub tokenizer: TokenizerOptions,
}

/// The largest size accepted for each `config.json` key (a guard against corrupt files:
/// BERT-large is 24 layers, hidden 1024, 16 heads, intermediate 4096).
pub const MAX_SIZES: [(&str, usize); 7] = [
    ("vocab_size", 1 << 22),
    ("hidden_size", 1 << 14),
    ("num_hidden_layers", 1 << 10),
    ("num_attention_heads", 1 << 10),
    ("intermediate_size", 1 << 16),
    ("max_position_embeddings", 1 << 16),
    ("type_vocab_size", 1 << 10),
];

/// The largest `layer_norm_eps` accepted.
pub const MAX_LAYER_NORM_EPS: f32 = 1.0;
/// The largest `|secformer_2quad_c|` accepted.
pub const MAX_2QUAD_C: f32 = 1024.0;

/// The architectures that are implemented.
pub const SUPPORTED_ARCHITECTURES: [&str; 2] = ["BertModel", "BertForSequenceClassification"];

impl BertConfig {
    /// Dimension of one attention head (`hidden_size / num_attention_heads`).
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Whether this is a sequence-classification model (pooler + classifier head).
    pub fn is_classifier(&self) -> bool {
        self.num_labels.is_some()
    }

    /// A configuration for randomly initialised models (benchmarks and tests): mean pooling,
    /// exact softmax, GeLU, LayerNorm eps 1e-12, two token types, uncased tokenizer options
    /// with `max_len = max_pos`.
    ///
    /// Panics if `hidden` is not a multiple of `heads` or a size is zero.
    pub fn synthetic(
        layers: usize,
        hidden: usize,
        heads: usize,
        intermediate: usize,
        vocab: usize,
        max_pos: usize,
    ) -> Self {
        let config = BertConfig {
            vocab_size: vocab,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: intermediate,
            max_position_embeddings: max_pos,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: HiddenAct::Gelu,
            pooling: Pooling::Mean,
            normalize: false,
            softmax: SoftmaxKind::Exact,
            num_labels: None,
            labels: Vec::new(),
            tokenizer: TokenizerOptions::uncased(max_pos),
        };
        if let Err(e) = config.validate() {
            panic!("BertConfig::synthetic: {e:#}");
        }
        config
    }

    /// Turns this configuration into a sequence classifier with `num_labels` classes
    /// (CLS pooling, pooler and classifier, labels `LABEL_i`).
    pub fn with_classifier(mut self, num_labels: usize) -> Self {
        self.pooling = Pooling::Cls;
        self.num_labels = Some(num_labels);
        self.labels = (0..num_labels).map(|i| format!("LABEL_{i}")).collect();
        self
    }

    /// Sets the attention softmax.
    pub fn with_softmax(mut self, softmax: SoftmaxKind) -> Self {
        self.softmax = softmax;
        self
    }

    /// Parses the contents of a Hugging Face `config.json`. Tokenizer options get their
    /// defaults (`max_len = max_position_embeddings`), pooling is CLS for a classifier and
    /// mean otherwise; [`load_config`] refines both from the other files of a checkpoint.
    pub fn from_hf_json(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).context("config.json is not valid JSON")?;
        let obj = value
            .as_object()
            .ok_or_else(|| anyhow!("config.json: expected a JSON object at the top level"))?;
        parse_config(obj)
    }

    /// Checks the sizes for consistency; the error names the offending key.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        for (key, v) in sizes {
            if v == 0 {
                bail!("config.json: {key} must be positive, got 0");
            }
            let max = MAX_SIZES
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(usize::MAX, |(_, m)| *m);
            if v > max {
                bail!("config.json: {key} is {v}, more than the {max} this implementation accepts");
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            bail!(
                "config.json: hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        let eps = self.layer_norm_eps;
        if !(eps.is_finite() && eps > 0.0 && eps <= MAX_LAYER_NORM_EPS) {
            bail!(
                "config.json: layer_norm_eps must be in (0, {MAX_LAYER_NORM_EPS}], got {eps} \
                 (the secure LayerNorm adds it to the variance in fixed point)"
            );
        }
        if let SoftmaxKind::TwoQuad { c } = self.softmax {
            if !(c.is_finite() && c.abs() <= MAX_2QUAD_C) {
                bail!(
                    "config.json: secformer_2quad_c must be a number in [-{MAX_2QUAD_C}, {MAX_2QUAD_C}], got {c} \
                     (the 2Quad softmax squares x + c in fixed point)"
                );
            }
        }
        if let Some(n) = self.num_labels {
            if n == 0 {
                bail!("config.json: num_labels must be positive, got 0");
            }
            if self.labels.len() != n {
                bail!(
                    "config.json: num_labels is {n} but id2label has {} entries",
                    self.labels.len()
                );
            }
        }
        if self.tokenizer.max_len < 2 {
            bail!(
                "tokenizer: the maximum length must be at least 2 ([CLS] and [SEP]), got {}",
                self.tokenizer.max_len
            );
        }
        if self.tokenizer.max_len > self.max_position_embeddings {
            bail!(
                "tokenizer: maximum length {} exceeds max_position_embeddings {}",
                self.tokenizer.max_len,
                self.max_position_embeddings
            );
        }
        Ok(())
    }
}

fn get_usize(obj: &Map<String, Value>, file: &str, key: &str) -> Result<Option<usize>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|u| usize::try_from(u).ok())
            .map(Some)
            .ok_or_else(|| anyhow!("{file}: {key} must be a non-negative integer, got {v}")),
    }
}

fn req_usize(obj: &Map<String, Value>, key: &str) -> Result<usize> {
    get_usize(obj, "config.json", key)?
        .ok_or_else(|| anyhow!("config.json: missing required key {key}"))
}

fn get_str<'a>(obj: &'a Map<String, Value>, file: &str, key: &str) -> Result<Option<&'a str>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => bail!("{file}: {key} must be a string, got {v}"),
    }
}

fn get_f64(obj: &Map<String, Value>, file: &str, key: &str) -> Result<Option<f64>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| anyhow!("{file}: {key} must be a number, got {v}")),
    }
}

fn get_bool(obj: &Map<String, Value>, file: &str, key: &str) -> Result<Option<bool>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => bail!("{file}: {key} must be true or false, got {v}"),
    }
}

fn parse_config(obj: &Map<String, Value>) -> Result<BertConfig> {
    const F: &str = "config.json";
    match get_str(obj, F, "model_type")? {
        Some("bert") => {}
        Some(other) => bail!("{F}: model_type \"{other}\" is not supported (expected \"bert\")"),
        None => bail!("{F}: missing required key model_type (expected \"bert\")"),
    }
    let hidden_act = match get_str(obj, F, "hidden_act")?.unwrap_or("gelu") {
        "gelu" => HiddenAct::Gelu,
        other => bail!(
            "{F}: hidden_act \"{other}\" is not supported (only \"gelu\", the exact erf GeLU)"
        ),
    };
    match get_str(obj, F, "position_embedding_type")?.unwrap_or("absolute") {
        "absolute" => {}
        other => {
            bail!("{F}: position_embedding_type \"{other}\" is not supported (only \"absolute\")")
        }
    }
    if get_bool(obj, F, "is_decoder")? == Some(true) {
        bail!("{F}: is_decoder true is not supported (encoder only)");
    }
    let layer_norm_eps = get_f64(obj, F, "layer_norm_eps")?.unwrap_or(1e-12) as f32;
    let softmax = match get_str(obj, F, "secformer_softmax")?.unwrap_or("exact") {
        "exact" => SoftmaxKind::Exact,
        "2quad" => SoftmaxKind::TwoQuad {
            c: get_f64(obj, F, "secformer_2quad_c")?.unwrap_or(5.0) as f32,
        },
        other => {
            bail!("{F}: secformer_softmax \"{other}\" is not supported (\"exact\" or \"2quad\")")
        }
    };
    if !matches!(softmax, SoftmaxKind::TwoQuad { .. }) {
        // Still type-check the key if present, so a typo in its value is not silently ignored.
        get_f64(obj, F, "secformer_2quad_c")?;
    }

    let architectures: Vec<String> = match obj.get("architectures") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("{F}: architectures must be a list of strings"))
            })
            .collect::<Result<_>>()?,
        Some(v) => bail!("{F}: architectures must be a list of strings, got {v}"),
    };
    // Only the bare encoder and the sequence classifier are implemented: another head
    // (token classification, question answering, masked LM, ...) would silently become a
    // bare encoder, so it is refused.
    if let Some(other) = architectures
        .iter()
        .find(|a| !SUPPORTED_ARCHITECTURES.contains(&a.as_str()))
    {
        if other.starts_with("Bert") {
            bail!(
                "{F}: architectures entry \"{other}\" is a head this implementation does not run \
                 (supported: BertModel, the bare encoder, and BertForSequenceClassification); \
                 to use only its encoder, set architectures to [\"BertModel\"]"
            );
        }
        bail!("{F}: architectures entry \"{other}\" is not a BERT architecture");
    }
    if architectures.len() > 1 {
        bail!("{F}: architectures lists several heads ({architectures:?}); give one");
    }
    let classifier = architectures
        .iter()
        .any(|a| a == "BertForSequenceClassification");

    let (num_labels, labels) = if classifier {
        let id2label = parse_id2label(obj)?;
        let n = match (get_usize(obj, F, "num_labels")?, &id2label) {
            (Some(n), Some(l)) if n != l.len() => bail!(
                "{F}: num_labels is {n} but id2label has {} entries",
                l.len()
            ),
            (Some(n), _) => n,
            (None, Some(l)) => l.len(),
            (None, None) => 2,
        };
        let labels = id2label.unwrap_or_else(|| (0..n).map(|i| format!("LABEL_{i}")).collect());
        (Some(n), labels)
    } else {
        (None, Vec::new())
    };

    let max_position_embeddings = req_usize(obj, "max_position_embeddings")?;
    let config = BertConfig {
        vocab_size: req_usize(obj, "vocab_size")?,
        hidden_size: req_usize(obj, "hidden_size")?,
        num_hidden_layers: req_usize(obj, "num_hidden_layers")?,
        num_attention_heads: req_usize(obj, "num_attention_heads")?,
        intermediate_size: req_usize(obj, "intermediate_size")?,
        max_position_embeddings,
        type_vocab_size: get_usize(obj, F, "type_vocab_size")?.unwrap_or(2),
        layer_norm_eps,
        hidden_act,
        pooling: if classifier {
            Pooling::Cls
        } else {
            Pooling::Mean
        },
        normalize: false,
        softmax,
        num_labels,
        labels,
        tokenizer: TokenizerOptions::uncased(max_position_embeddings),
    };
    config.validate()?;
    Ok(config)
}

/// `id2label` as a list in id order; its keys must be exactly 0..n.
fn parse_id2label(obj: &Map<String, Value>) -> Result<Option<Vec<String>>> {
    const F: &str = "config.json";
    let map = match obj.get("id2label") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(v) => bail!("{F}: id2label must be an object, got {v}"),
    };
    let mut by_id = BTreeMap::new();
    for (k, v) in map {
        let id: usize = k
            .parse()
            .map_err(|_| anyhow!("{F}: id2label key {k:?} is not an integer"))?;
        let label = v
            .as_str()
            .ok_or_else(|| anyhow!("{F}: id2label[{k}] must be a string, got {v}"))?;
        by_id.insert(id, label.to_owned());
    }
    for (expected, id) in by_id.keys().enumerate() {
        if *id != expected {
            bail!(
                "{F}: id2label keys must be 0..{}, missing {expected}",
                by_id.len()
            );
        }
    }
    Ok(Some(by_id.into_values().collect()))
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not valid JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Reads a checkpoint directory's configuration: `config.json` (required) and, when present,
/// `tokenizer_config.json`, `tokenizer.json`, `modules.json`, `1_Pooling/config.json` and
/// `sentence_bert_config.json`.
pub fn load_config(dir: &Path) -> Result<BertConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config.json at {}", path.display()))?;
    let mut config =
        BertConfig::from_hf_json(&text).map_err(|e| anyhow!("{}: {e:#}", path.display()))?;

    // Tokenizer options: tokenizer_config.json wins over tokenizer.json's normalizer.
    let tok_cfg = read_json(&dir.join("tokenizer_config.json"))?;
    let tok_json = read_json(&dir.join("tokenizer.json"))?;
    let tok_cfg = tok_cfg.as_ref().and_then(Value::as_object);
    let normalizer = tok_json
        .as_ref()
        .and_then(|t| t.get("normalizer"))
        .and_then(Value::as_object);
    let wordpiece = tok_json
        .as_ref()
        .and_then(|t| t.get("model"))
        .and_then(Value::as_object);
    let opts = &mut config.tokenizer;
    if let Some(n) = normalizer {
        const F: &str = "tokenizer.json";
        match get_str(n, F, "type")? {
            Some("BertNormalizer") | None => {}
            Some(other) => {
                bail!("{F}: normalizer type \"{other}\" is not supported (BertNormalizer)")
            }
        }
        if let Some(b) = get_bool(n, F, "lowercase")? {
            opts.do_lower_case = b;
        }
        opts.strip_accents = get_bool(n, F, "strip_accents")?.unwrap_or(opts.do_lower_case);
        if let Some(b) = get_bool(n, F, "handle_chinese_chars")? {
            opts.tokenize_chinese_chars = b;
        }
        if let Some(b) = get_bool(n, F, "clean_text")? {
            opts.clean_text = b;
        }
    }
    if let Some(w) = wordpiece {
        const F: &str = "tokenizer.json";
        match get_str(w, F, "type")? {
            Some("WordPiece") | None => {}
            Some(other) => bail!("{F}: model type \"{other}\" is not supported (WordPiece)"),
        }
        if get_str(w, F, "continuing_subword_prefix")?.is_some_and(|p| p != "##") {
            bail!("{F}: continuing_subword_prefix other than \"##\" is not supported");
        }
        if let Some(n) = get_usize(w, F, "max_input_chars_per_word")? {
            opts.max_input_chars_per_word = n;
        }
        if let Some(u) = get_str(w, F, "unk_token")? {
            opts.unk_token = u.to_owned();
        }
    }
    if let Some(t) = tok_cfg {
        const F: &str = "tokenizer_config.json";
        if let Some(b) = get_bool(t, F, "do_lower_case")? {
            opts.do_lower_case = b;
        }
        // `strip_accents: null` (or absent) follows do_lower_case, as in Hugging Face.
        opts.strip_accents = get_bool(t, F, "strip_accents")?.unwrap_or(opts.do_lower_case);
        if let Some(b) = get_bool(t, F, "tokenize_chinese_chars")? {
            opts.tokenize_chinese_chars = b;
        }
        if get_bool(t, F, "do_basic_tokenize")? == Some(false) {
            bail!("{F}: do_basic_tokenize false is not supported");
        }
        for (key, slot) in [
            ("unk_token", &mut opts.unk_token),
            ("cls_token", &mut opts.cls_token),
            ("sep_token", &mut opts.sep_token),
            ("pad_token", &mut opts.pad_token),
            ("mask_token", &mut opts.mask_token),
        ] {
            if let Some(s) = get_str(t, F, key)? {
                *slot = s.to_owned();
            }
        }
        // model_max_length is sometimes a huge sentinel (int(1e30)): only its minimum matters.
        if let Some(m) = get_f64(t, F, "model_max_length")? {
            if m >= 2.0 && m < opts.max_len as f64 {
                opts.max_len = m as usize;
            }
        }
    }

    // sentence-transformers modules.
    const ST: &str = "sentence_bert_config.json";
    if let Some(st) = read_json(&dir.join(ST))? {
        if let Some(st) = st.as_object() {
            if let Some(m) = get_usize(st, ST, "max_seq_length")? {
                if m >= 2 && m < opts.max_len {
                    opts.max_len = m;
                }
            }
        }
    }
    if let Some(modules) = read_json(&dir.join("modules.json"))? {
        let list = modules
            .as_array()
            .ok_or_else(|| anyhow!("modules.json: expected a list of modules"))?;
        for m in list {
            let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
            match ty.rsplit('.').next().unwrap_or("") {
                "Transformer" | "Pooling" => {}
                "Normalize" => config.normalize = true,
                other => bail!("modules.json: module type \"{other}\" ({ty}) is not supported"),
            }
        }
    }
    const P: &str = "1_Pooling/config.json";
    if let Some(pool) = read_json(&dir.join(P))? {
        let pool = pool
            .as_object()
            .ok_or_else(|| anyhow!("{P}: expected a JSON object"))?;
        let mut modes = Vec::new();
        for (key, v) in pool {
            if key.starts_with("pooling_mode_") && v.as_bool() == Some(true) {
                modes.push(key.as_str());
            }
        }
        match modes.as_slice() {
            ["pooling_mode_mean_tokens"] => config.pooling = Pooling::Mean,
            ["pooling_mode_cls_token"] => config.pooling = Pooling::Cls,
            [] => bail!("{P}: no pooling_mode_* is true"),
            [one] => bail!("{P}: {one} is not supported (mean_tokens or cls_token)"),
            many => bail!("{P}: several pooling modes at once are not supported: {many:?}"),
        }
        if config.is_classifier() {
            bail!("{P}: a sentence-transformers pooling module on a classifier checkpoint");
        }
        if let Some(d) = get_usize(pool, P, "word_embedding_dimension")? {
            if d != config.hidden_size {
                bail!(
                    "{P}: word_embedding_dimension {d} differs from hidden_size {}",
                    config.hidden_size
                );
            }
        }
    }
    config.validate()?;
    Ok(config)
}
