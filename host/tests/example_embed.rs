//! The library example `host/examples/embed.rs`, checked by its output. The example's
//! source is compiled into this test as a module and its `embed` function is called, so
//! the very code of the example runs, in-process, without a `cargo run` inside the test
//! (slow, and a second cargo on a shared target directory); CI builds the example itself
//! with `cargo test` and `cargo clippy --all-targets`. It embeds texts with the committed
//! 2Quad embedding model (`models/minilm-embed-2quad`, always in a checkout): one JSON
//! line per text, in order, each a unit vector within cosine 0.999 of the plaintext
//! forward's embedding.

#[path = "../examples/embed.rs"]
#[allow(dead_code)] // the example's `main`
mod embed;

use std::path::PathBuf;

use secformer_host::model::{load_model, plain};

#[test]
fn the_embed_example_prints_secure_embeddings_that_match_plaintext() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/minilm-embed-2quad");
    let texts: Vec<String> = ["A man is playing a guitar.", "Secure inference, privately!"]
        .map(String::from)
        .to_vec();
    let mut out = Vec::new();
    embed::embed(&dir, &texts, &mut out).unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), texts.len(), "one line per text");
    let model = load_model(&dir).unwrap();
    for (line, text) in lines.iter().zip(&texts) {
        assert_eq!(line["text"].as_str().unwrap(), text);
        let secure: Vec<f64> = line["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let reference = plain::forward(&model, &model.tokenizer.encode(text)).pooled;
        assert_eq!(secure.len(), reference.len());
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let reference: Vec<f64> = reference.iter().map(|v| f64::from(*v)).collect();
        let cosine = secure
            .iter()
            .zip(&reference)
            .map(|(a, b)| a * b)
            .sum::<f64>()
            / (norm(&secure) * norm(&reference));
        assert!((norm(&secure) - 1.0).abs() < 1e-6, "a unit vector");
        assert!(
            cosine >= 0.999,
            "cosine {cosine} to the plaintext embedding of {text:?}"
        );
    }
}
