//! The public description of a model that P0 sends and P1 checks before an inference.
//!
//! P1 holds only the public files of a checkpoint and computes its own description from
//! them ([`model_info`]); P0 describes the model it serves. Every field that changes what
//! P1 receives is included, so a P1 whose files differ from P0's in any of them is refused
//! instead of getting wrong results:
//!
//! | fields | file(s) they come from |
//! | --- | --- |
//! | sizes, `layer_norm_eps`, `hidden_act`, softmax and its `c`, labels | `config.json` |
//! | `pooling` | `1_Pooling/config.json` (else mean; CLS for a classifier) |
//! | `normalize` | `modules.json` (a `Normalize` module) |
//! | `tokenizer.*` options | `tokenizer_config.json`, `tokenizer.json` |
//! | `tokenizer.max_len` | `config.json`, `tokenizer_config.json`, `sentence_bert_config.json` |
//! | `vocab_tokens`, `vocab_hash` | `vocab.txt` or `tokenizer.json` |
//!
//! [`differences`] lists only the fields that differ, with both values and where they come
//! from, for a clear mismatch message ([`mismatch_message`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{BertConfig, HiddenAct, Pooling, SoftmaxKind};
use super::tokenizer::WordPiece;

/// The tokenizer options that change the token ids of a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerInfo {
    /// Lower-casing.
    pub do_lower_case: bool,
    /// Accent stripping.
    pub strip_accents: bool,
    /// Spaces around CJK ideographs.
    pub tokenize_chinese_chars: bool,
    /// Control characters dropped, whitespace mapped to spaces.
    pub clean_text: bool,
    /// Maximum tokens per sequence.
    pub max_len: usize,
    /// Longer words become the unknown token.
    pub max_input_chars_per_word: usize,
    /// Special tokens: unknown, classification, separator, padding, mask.
    pub special_tokens: [String; 5],
}

/// What P0 tells P1 about the model it serves: public architecture, pooling,
/// normalization, tokenizer options and a fingerprint of the vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Encoder layers.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Heads.
    pub heads: usize,
    /// FFN size.
    pub intermediate: usize,
    /// Vocabulary size of the embedding.
    pub vocab: usize,
    /// Longest input the position embedding allows.
    pub max_positions: usize,
    /// Token types.
    pub type_vocab: usize,
    /// LayerNorm epsilon (both parties add it in the secure LayerNorm).
    pub layer_norm_eps: f32,
    /// Feed-forward activation.
    pub hidden_act: String,
    /// "exact" or "2quad".
    pub softmax: String,
    /// The 2Quad shift c (2Quad only).
    pub softmax_c: Option<f32>,
    /// "mean" or "cls".
    pub pooling: String,
    /// Whether the pooled vector is L2-normalized.
    pub normalize: bool,
    /// Class labels (classifiers).
    pub labels: Vec<String>,
    /// Tokenizer options.
    pub tokenizer: Option<TokenizerInfo>,
    /// Tokens in the vocabulary file.
    pub vocab_tokens: usize,
    /// FNV-1a hash of the vocabulary's tokens in id order.
    pub vocab_hash: u64,
}

/// The description of a configuration and tokenizer (without a tokenizer, its fields are
/// empty: for labels in reports).
pub fn model_info(cfg: &BertConfig, tok: Option<&WordPiece>) -> ModelInfo {
    let mut hsh: u64 = 0xcbf2_9ce4_8422_2325;
    if let Some(t) = tok {
        for id in 0..t.vocab_size() as u32 {
            for b in t.id_to_token(id).unwrap_or("").bytes().chain([0u8]) {
                hsh ^= b as u64;
                hsh = hsh.wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    let o = tok.map_or(&cfg.tokenizer, WordPiece::options);
    ModelInfo {
        layers: cfg.num_hidden_layers,
        hidden: cfg.hidden_size,
        heads: cfg.num_attention_heads,
        intermediate: cfg.intermediate_size,
        vocab: cfg.vocab_size,
        max_positions: cfg.max_position_embeddings,
        type_vocab: cfg.type_vocab_size,
        layer_norm_eps: cfg.layer_norm_eps,
        hidden_act: match cfg.hidden_act {
            HiddenAct::Gelu => "gelu".into(),
        },
        softmax: match cfg.softmax {
            SoftmaxKind::Exact => "exact".into(),
            SoftmaxKind::TwoQuad { .. } => "2quad".into(),
        },
        softmax_c: match cfg.softmax {
            SoftmaxKind::Exact => None,
            SoftmaxKind::TwoQuad { c } => Some(c),
        },
        pooling: match cfg.pooling {
            Pooling::Mean => "mean".into(),
            Pooling::Cls => "cls".into(),
        },
        normalize: cfg.normalize,
        labels: cfg.labels.clone(),
        tokenizer: tok.map(|_| TokenizerInfo {
            do_lower_case: o.do_lower_case,
            strip_accents: o.strip_accents,
            tokenize_chinese_chars: o.tokenize_chinese_chars,
            clean_text: o.clean_text,
            max_len: o.max_len,
            max_input_chars_per_word: o.max_input_chars_per_word,
            special_tokens: o.special_tokens().map(str::to_owned),
        }),
        vocab_tokens: tok.map_or(0, WordPiece::vocab_size),
        vocab_hash: hsh,
    }
}

/// One field that differs between P0's and P1's descriptions.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// The field, e.g. `tokenizer.do_lower_case`.
    pub field: String,
    /// P0's value.
    pub p0: String,
    /// P1's value.
    pub p1: String,
    /// The file(s) the field comes from.
    pub files: &'static str,
}

/// Where a field of [`ModelInfo`] comes from.
pub fn source_of(field: &str) -> &'static str {
    match field {
        "pooling" => "1_Pooling/config.json",
        "normalize" => "modules.json",
        "tokenizer.max_len" => "config.json, tokenizer_config.json or sentence_bert_config.json",
        "tokenizer" => "tokenizer_config.json, tokenizer.json, vocab.txt",
        f if f.starts_with("tokenizer.") => "tokenizer_config.json or tokenizer.json",
        "vocab_tokens" | "vocab_hash" => "vocab.txt or tokenizer.json",
        _ => "config.json",
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "absent".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(v) => v.to_string(),
    }
}

fn diff_values(prefix: &str, a: &Value, b: &Value, out: &mut Vec<Difference>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let field = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => diff_values(&field, va, vb, out),
                    (va, vb) => out.push(Difference {
                        files: source_of(&field),
                        field,
                        p0: show(va),
                        p1: show(vb),
                    }),
                }
            }
        }
        _ if a != b => out.push(Difference {
            field: prefix.to_string(),
            p0: show(Some(a)),
            p1: show(Some(b)),
            files: source_of(prefix),
        }),
        _ => {}
    }
}

/// The fields that differ between P0's description `p0` and P1's `p1` (empty when they
/// describe the same model).
pub fn differences(p0: &ModelInfo, p1: &ModelInfo) -> Vec<Difference> {
    let (a, b) = (
        serde_json::to_value(p0).unwrap_or(Value::Null),
        serde_json::to_value(p1).unwrap_or(Value::Null),
    );
    let mut out = Vec::new();
    diff_values("", &a, &b, &mut out);
    out
}

/// The error P1 reports when P0 serves a different model: the differing fields only.
pub fn mismatch_message(p0: &ModelInfo, p1: &ModelInfo) -> String {
    let diffs: Vec<String> = differences(p0, p1)
        .iter()
        .map(|d| format!("{}: P0 {}, P1 {} ({})", d.field, d.p0, d.p1, d.files))
        .collect();
    format!(
        "P0 serves a different model; point --model at the same checkpoint's public files. \
         Differences: {}",
        diffs.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::TokenizerOptions;

    fn tok(lower: bool) -> WordPiece {
        let mut o = TokenizerOptions::uncased(16);
        o.do_lower_case = lower;
        let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"];
        WordPiece::from_tokens(tokens.iter().map(|t| t.to_string()).collect(), o).unwrap()
    }

    #[test]
    fn only_the_differing_fields_are_listed() {
        let cfg = BertConfig::synthetic(2, 8, 2, 16, 7, 16);
        let a = model_info(&cfg, Some(&tok(true)));
        assert!(differences(&a, &a.clone()).is_empty());
        let mut cfg2 = cfg.clone();
        cfg2.normalize = true;
        cfg2.tokenizer.do_lower_case = false;
        let b = model_info(&cfg2, Some(&tok(false)));
        let d = differences(&a, &b);
        let fields: Vec<&str> = d.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["normalize", "tokenizer.do_lower_case"]);
        assert_eq!((d[0].p0.as_str(), d[0].p1.as_str()), ("false", "true"));
        assert_eq!(d[0].files, "modules.json");
        let msg = mismatch_message(&a, &b);
        assert!(
            msg.contains("tokenizer.do_lower_case: P0 true, P1 false"),
            "{msg}"
        );
        assert!(!msg.contains("layers"), "{msg}");
    }
}
