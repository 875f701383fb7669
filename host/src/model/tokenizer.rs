//! BERT's WordPiece tokenizer, matching Hugging Face `tokenizers` (`BertNormalizer` +
//! `BertPreTokenizer` + `WordPiece` + the `[CLS] A [SEP]` template) id for id.
//!
//! The pipeline, in order:
//!
//! 1. special tokens (`[CLS]`, `[SEP]`, `[UNK]`, `[PAD]`, `[MASK]`) written verbatim in the
//!    text are split out first and map to their own ids;
//! 2. clean-up: NUL, U+FFFD and control/format/private-use characters are dropped, every
//!    whitespace becomes a space;
//! 3. CJK ideographs get spaces around them;
//! 4. accents are stripped (NFD, then non-spacing marks dropped) if `strip_accents`;
//! 5. lower-casing (per character, full Unicode mapping) if `do_lower_case`;
//! 6. split on whitespace, then every punctuation character (ASCII symbols and Unicode
//!    `P*`) is its own word;
//! 7. each word: greedy longest-match-first WordPiece with `##` continuations; a word
//!    longer than `max_input_chars_per_word` characters or with no match is `[UNK]`;
//! 8. truncation to `max_len - 2` pieces, then `[CLS] ... [SEP]`.
//!
//! The character classes use the `unicode_categories` tables, the same ones `tokenizers`
//! uses, so the two agree on every character: `host/tests/model_minilm.rs` checks the ids
//! of 30 hand-picked sentences and of 3000 random multi-script strings. Transformers'
//! pure-Python `BertTokenizer` (the "slow" one) differs from `tokenizers` on some strings
//! (newer Unicode tables; it lower-cases a word-final capital sigma to `ς`): we follow
//! `tokenizers`, which is what sentence-transformers and `AutoTokenizer` run.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use unicode_categories::UnicodeCategories;
use unicode_normalization::UnicodeNormalization;

use super::config::TokenizerOptions;

/// One tokenized sequence, ready for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// Token ids, `[CLS] ... [SEP]` and then any padding.
    pub ids: Vec<u32>,
    /// Token-type (segment) ids: all 0 for a single sentence.
    pub type_ids: Vec<u32>,
    /// 1 for a real token, 0 for padding.
    pub attention_mask: Vec<u32>,
    /// Whether word pieces were dropped to fit the maximum length.
    pub truncated: bool,
    /// Length the sequence would have had without truncation (including `[CLS]`/`[SEP]`).
    pub untruncated_len: usize,
}

impl Encoding {
    /// Number of positions (tokens plus padding).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no positions at all.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of real (unmasked) tokens.
    pub fn num_tokens(&self) -> usize {
        self.attention_mask.iter().filter(|&&m| m != 0).count()
    }

    /// Pads with `pad_id` (type 0, mask 0) up to `len` positions; does nothing if already
    /// that long or longer.
    pub fn pad_to(&mut self, len: usize, pad_id: u32) {
        while self.ids.len() < len {
            self.ids.push(pad_id);
            self.type_ids.push(0);
            self.attention_mask.push(0);
        }
    }
}

/// A BERT WordPiece tokenizer (see the module documentation for the exact pipeline).
#[derive(Debug, Clone)]
pub struct WordPiece {
    vocab: HashMap<String, u32>,
    tokens: Vec<String>,
    options: TokenizerOptions,
    unk_id: u32,
    cls_id: u32,
    sep_id: u32,
    pad_id: u32,
    /// Special tokens matched verbatim in the raw text, longest first.
    specials: Vec<(String, u32)>,
}

impl WordPiece {
    /// A tokenizer over `tokens` (token `i` has id `i`; a repeated token keeps its last id,
    /// as Hugging Face's `load_vocab` does). `[UNK]`, `[CLS]` and `[SEP]` (as named in
    /// `options`) must be in the vocabulary.
    pub fn from_tokens(tokens: Vec<String>, options: TokenizerOptions) -> Result<Self> {
        if options.max_len < 2 {
            bail!(
                "tokenizer: the maximum length must be at least 2 ([CLS] and [SEP]), got {}",
                options.max_len
            );
        }
        let vocab: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let id = |name: &str, tok: &str| {
            vocab
                .get(tok)
                .copied()
                .ok_or_else(|| anyhow!("vocabulary has no {name} token {tok:?}"))
        };
        let unk_id = id("unknown", &options.unk_token)?;
        let cls_id = id("classification", &options.cls_token)?;
        let sep_id = id("separator", &options.sep_token)?;
        let pad_id = vocab.get(&options.pad_token).copied().unwrap_or(0);
        let mut specials: Vec<(String, u32)> = options
            .special_tokens()
            .iter()
            .filter_map(|t| vocab.get(*t).map(|&i| (t.to_string(), i)))
            .filter(|(t, _)| !t.is_empty())
            .collect();
        specials.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        specials.dedup();
        Ok(WordPiece {
            vocab,
            tokens,
            options,
            unk_id,
            cls_id,
            sep_id,
            pad_id,
            specials,
        })
    }

    /// Loads `vocab.txt` (one token per line, id = line number).
    pub fn from_vocab_file(path: &Path, options: TokenizerOptions) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read vocab.txt at {}", path.display()))?;
        let mut tokens: Vec<String> = text.split('\n').map(str::to_owned).collect();
        // A final newline does not start another token.
        if tokens.last().is_some_and(String::is_empty) {
            tokens.pop();
        }
        if tokens.is_empty() {
            bail!("vocab.txt at {} is empty", path.display());
        }
        Self::from_tokens(tokens, options).map_err(|e| anyhow!("{}: {e:#}", path.display()))
    }

    /// Loads the WordPiece vocabulary of a `tokenizer.json` (`model.vocab`).
    pub fn from_tokenizer_json(path: &Path, options: TokenizerOptions) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read tokenizer.json at {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        let vocab = value
            .get("model")
            .and_then(|m| m.get("vocab"))
            .and_then(|v| v.as_object())
            .ok_or_else(|| anyhow!("tokenizer.json at {} has no model.vocab", path.display()))?;
        let mut tokens = vec![None; vocab.len()];
        for (tok, id) in vocab {
            let id = id
                .as_u64()
                .map(|i| i as usize)
                .filter(|&i| i < vocab.len())
                .ok_or_else(|| anyhow!("tokenizer.json: bad id {id} for token {tok:?}"))?;
            if tokens[id].replace(tok.clone()).is_some() {
                bail!("tokenizer.json: id {id} is used twice");
            }
        }
        let tokens = tokens
            .into_iter()
            .map(|t| t.expect("ids are a permutation of 0..n"))
            .collect();
        Self::from_tokens(tokens, options).map_err(|e| anyhow!("{}: {e:#}", path.display()))
    }

    /// Loads `vocab.txt` from `dir`, or `tokenizer.json` if there is no `vocab.txt`.
    pub fn load(dir: &Path, options: TokenizerOptions) -> Result<Self> {
        let vocab = dir.join("vocab.txt");
        let json = dir.join("tokenizer.json");
        if vocab.exists() {
            Self::from_vocab_file(&vocab, options)
        } else if json.exists() {
            Self::from_tokenizer_json(&json, options)
        } else {
            bail!(
                "no vocabulary: neither vocab.txt nor tokenizer.json in {}",
                dir.display()
            )
        }
    }

    /// The options in force.
    pub fn options(&self) -> &TokenizerOptions {
        &self.options
    }

    /// Maximum sequence length including `[CLS]` and `[SEP]`.
    pub fn max_len(&self) -> usize {
        self.options.max_len
    }

    /// The same tokenizer with another maximum length (at least 2).
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        assert!(max_len >= 2, "max_len must leave room for [CLS] and [SEP]");
        self.options.max_len = max_len;
        self
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The id of a token, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    /// The token with this id.
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The padding id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The `[CLS]` id.
    pub fn cls_id(&self) -> u32 {
        self.cls_id
    }

    /// The `[SEP]` id.
    pub fn sep_id(&self) -> u32 {
        self.sep_id
    }

    /// The `[UNK]` id.
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// The word-piece ids of `text`, without `[CLS]`/`[SEP]` and without truncation.
    pub fn tokenize_ids(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            // The earliest special token; at equal positions the longest (specials are
            // sorted longest first and `min_by_key` keeps the first minimum).
            let hit = self
                .specials
                .iter()
                .filter_map(|(tok, id)| rest.find(tok.as_str()).map(|at| (at, tok.len(), *id)))
                .min_by_key(|&(at, _, _)| at);
            match hit {
                Some((at, len, id)) => {
                    self.tokenize_plain(&rest[..at], &mut ids);
                    ids.push(id);
                    rest = &rest[at + len..];
                }
                None => {
                    self.tokenize_plain(rest, &mut ids);
                    rest = "";
                }
            }
        }
        ids
    }

    /// The word pieces of `text` as strings (special tokens included as written).
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        self.tokenize_ids(text)
            .into_iter()
            .map(|id| self.tokens[id as usize].clone())
            .collect()
    }

    /// `[CLS] pieces [SEP]`, truncated to the maximum length (the last pieces are dropped;
    /// `[CLS]` and the final `[SEP]` are kept). [`Encoding::truncated`] tells whether
    /// anything was dropped.
    pub fn encode(&self, text: &str) -> Encoding {
        let mut pieces = self.tokenize_ids(text);
        let untruncated_len = pieces.len() + 2;
        let keep = self.options.max_len - 2;
        let truncated = pieces.len() > keep;
        pieces.truncate(keep);
        let mut ids = Vec::with_capacity(pieces.len() + 2);
        ids.push(self.cls_id);
        ids.extend(pieces);
        ids.push(self.sep_id);
        let n = ids.len();
        Encoding {
            ids,
            type_ids: vec![0; n],
            attention_mask: vec![1; n],
            truncated,
            untruncated_len,
        }
    }

    /// Like [`WordPiece::encode`], but a text that does not fit in the maximum length is an
    /// error instead of being truncated.
    pub fn encode_checked(&self, text: &str) -> Result<Encoding> {
        let enc = self.encode(text);
        if enc.truncated {
            bail!(
                "input text is too long: {} tokens including [CLS] and [SEP], the maximum \
                 length is {}",
                enc.untruncated_len,
                self.options.max_len
            );
        }
        Ok(enc)
    }

    /// Steps 2-8 of the pipeline on text without special tokens.
    fn tokenize_plain(&self, text: &str, out: &mut Vec<u32>) {
        let normalized = self.normalize(text);
        for word in pre_tokenize(&normalized) {
            self.word_piece(word, out);
        }
    }

    /// `BertNormalizer`: clean-up, CJK spacing, accent stripping, lower-casing.
    pub fn normalize(&self, text: &str) -> String {
        let o = &self.options;
        let mut s = String::with_capacity(text.len() + 8);
        for mut c in text.chars() {
            if o.clean_text {
                if c == '\0' || c == '\u{fffd}' || is_control(c) {
                    continue;
                }
                if is_whitespace(c) {
                    c = ' ';
                }
            }
            if o.tokenize_chinese_chars && is_chinese_char(c) {
                s.push(' ');
                s.push(c);
                s.push(' ');
            } else {
                s.push(c);
            }
        }
        if o.strip_accents {
            s = s.nfd().filter(|c| !c.is_mark_nonspacing()).collect();
        }
        if o.do_lower_case {
            // Per character, as `tokenizers` does (no context-dependent final sigma).
            s = s.chars().flat_map(char::to_lowercase).collect();
        }
        s
    }

    /// Greedy longest-match-first WordPiece of one word.
    fn word_piece(&self, word: &str, out: &mut Vec<u32>) {
        let chars: Vec<(usize, char)> = word.char_indices().collect();
        if chars.len() > self.options.max_input_chars_per_word {
            out.push(self.unk_id);
            return;
        }
        let start_len = out.len();
        let mut start = 0; // index into chars
        let mut candidate = String::with_capacity(word.len() + 2);
        while start < chars.len() {
            let begin = chars[start].0;
            let mut end = chars.len();
            let mut found = None;
            while end > start {
                let stop = chars.get(end).map_or(word.len(), |&(b, _)| b);
                candidate.clear();
                if start > 0 {
                    candidate.push_str("##");
                }
                candidate.push_str(&word[begin..stop]);
                if let Some(&id) = self.vocab.get(candidate.as_str()) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(start_len);
                    out.push(self.unk_id);
                    return;
                }
            }
        }
    }
}

/// `BertPreTokenizer`: split on whitespace (dropped), then isolate every punctuation char.
fn pre_tokenize(text: &str) -> impl Iterator<Item = &str> {
    text.split(char::is_whitespace)
        .filter(|w| !w.is_empty())
        .flat_map(split_punctuation)
}

fn split_punctuation(word: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, c) in word.char_indices() {
        if is_punctuation(c) {
            if start < i {
                parts.push(&word[start..i]);
            }
            parts.push(&word[i..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    if start < word.len() {
        parts.push(&word[start..]);
    }
    parts
}

/// Tab, newline and carriage return count as whitespace, not control characters.
fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// Control (Cc), format (Cf) and private-use (Co) characters, except tab/newline/CR.
fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.is_other()
}

/// ASCII symbols (`!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~`) and Unicode punctuation (P*).
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_punctuation()
}

/// The CJK ideograph blocks BERT splits into single characters (as in `tokenizers`).
fn is_chinese_char(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> WordPiece {
        let tokens = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "!", "un", "##aff",
            "##able", ",", "cafe", "日", "本", "a", "##b",
        ];
        WordPiece::from_tokens(
            tokens.iter().map(|s| s.to_string()).collect(),
            TokenizerOptions::uncased(8),
        )
        .unwrap()
    }

    #[test]
    fn basic_pipeline() {
        let t = toy();
        assert_eq!(
            t.tokenize("Hello, WORLD! unaffable Café 日本"),
            ["hello", ",", "world", "!", "un", "##aff", "##able", "cafe", "日", "本"]
        );
        // No full match for the word -> the whole word is [UNK].
        assert_eq!(t.tokenize("unaffx hello"), ["[UNK]", "hello"]);
        // Specials are matched verbatim.
        assert_eq!(t.tokenize("hello[SEP]world"), ["hello", "[SEP]", "world"]);
        assert_eq!(t.tokenize("a\u{0}b\tab"), ["a", "##b", "a", "##b"]);
    }

    #[test]
    fn truncation() {
        let t = toy();
        let e = t.encode("hello world hello world hello world hello");
        assert_eq!(e.ids.len(), 8);
        assert!(e.truncated);
        assert_eq!(e.untruncated_len, 9);
        assert_eq!(e.ids[0], 2);
        assert_eq!(e.ids[7], 3);
        assert!(t
            .encode_checked("hello world hello world hello world hello")
            .is_err());
        let e = t
            .encode_checked("hello world hello world hello world")
            .unwrap();
        assert!(!e.truncated);
        assert_eq!(e.ids, [2, 5, 6, 5, 6, 5, 6, 3]);
    }
}
