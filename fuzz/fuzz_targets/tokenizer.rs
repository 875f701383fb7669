//! The tokenizer loader and WordPiece: a vocabulary (as `vocab.txt` lines, or
//! `tokenizer.json`), options from the first byte, then any text. Loading errors are fine;
//! a loaded tokenizer never panics, its ids are in the vocabulary, and encodings respect
//! the maximum length and start with `[CLS]` and end with `[SEP]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secformer_fuzz::parts;
use secformer_host::model::{TokenizerOptions, WordPiece};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let p = parts(rest, 2);
    let (vocab, text) = (p[0], p.get(1).copied().unwrap_or(b""));
    let mut o = TokenizerOptions::uncased(2 + (flags as usize >> 4));
    o.do_lower_case = flags & 1 != 0;
    o.strip_accents = flags & 2 != 0;
    o.tokenize_chinese_chars = flags & 4 != 0;
    o.clean_text = flags & 8 != 0;
    let Ok(vocab) = std::str::from_utf8(vocab) else {
        return;
    };
    let tok = if vocab.trim_start().starts_with('{') {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, vocab).expect("write");
        WordPiece::from_tokenizer_json(&path, o)
    } else {
        WordPiece::from_tokens(vocab.lines().map(str::to_owned).collect(), o)
    };
    let Ok(tok) = tok else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    let enc = tok.encode(&text);
    assert!(enc.ids.len() <= tok.max_len());
    assert!(enc.ids.iter().all(|id| (*id as usize) < tok.vocab_size()));
    assert_eq!(enc.ids.first(), Some(&tok.cls_id()));
    assert_eq!(enc.ids.last(), Some(&tok.sep_id()));
    let _ = tok.tokenize(&text);
    let _ = tok.encode_checked(&text);
});
