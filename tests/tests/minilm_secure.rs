//! all-MiniLM-L6-v2 (a real, unmodified checkpoint, exact softmax): secure inference over
//! TCP against the plaintext forward on the 30 varied fixture sentences (short, long up to
//! 128 tokens, punctuation, numbers, non-ASCII), cosine similarity >= 0.999 each.
//!
//! Needs the model (`scripts/fetch_model.sh`); skips with a message unless
//! `SECFORMER_REQUIRE_MODEL` is set.

use std::path::PathBuf;
use std::time::Instant;

use secformer_host::model::{load_model, plain, Encoding};
use secformer_host::secure::run_session;
use secformer_tests::*;

fn model_dir() -> PathBuf {
    std::env::var_os("SECFORMER_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/all-MiniLM-L6-v2")
        })
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt()
        * b.iter().map(|x| x * x).sum::<f64>().sqrt())
}

#[test]
fn secure_minilm_agrees_with_plaintext() {
    let dir = model_dir();
    if !dir.join("model.safetensors").exists() {
        assert!(
            std::env::var_os("SECFORMER_REQUIRE_MODEL").is_none(),
            "model missing at {} (run scripts/fetch_model.sh)",
            dir.display()
        );
        eprintln!(
            "SKIPPED: no model at {} (run scripts/fetch_model.sh)",
            dir.display()
        );
        return;
    }
    let model = load_model(&dir).unwrap();
    let fx: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../host/tests/fixtures/minilm_fixtures.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let encs: Vec<Encoding> = fx["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let ids: Vec<u32> = c["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            Encoding {
                type_ids: vec![0; ids.len()],
                attention_mask: vec![1; ids.len()],
                truncated: false,
                untruncated_len: ids.len(),
                ids,
            }
        })
        .collect();
    let cfg = &model.config;
    let t = Instant::now();
    let (_, results) = run_with(
        Net::Tcp,
        |s| {
            run_session(
                s,
                cfg,
                Some(&model.weights),
                || None,
                |_| Ok(()),
                |_, _, _| {},
            )
            .map_err(|_| secformer_core::Error::Param("P0 failed"))?;
            Ok(Vec::new())
        },
        |s| {
            let mut it = encs.iter().cloned();
            let mut out = Vec::new();
            run_session(
                s,
                cfg,
                None,
                || it.next(),
                |r| {
                    out.push(r.pooled.clone().unwrap());
                    Ok(())
                },
                |_, _, _| {},
            )
            .map_err(|e| {
                eprintln!("P1: {e:#}");
                secformer_core::Error::Param("P1 failed")
            })?;
            Ok(out)
        },
    )
    .unwrap();
    eprintln!(
        "{} sentences in {:.1} s",
        encs.len(),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(results.len(), encs.len());
    for (enc, got) in encs.iter().zip(&results) {
        let want: Vec<f64> = plain::forward(&model, enc)
            .pooled_raw
            .iter()
            .map(|v| *v as f64)
            .collect();
        let c = cosine(got, &want);
        eprintln!(
            "{:>4} tokens: cosine {c:.6}, max diff {:.4}",
            enc.ids.len(),
            max_abs_diff(got, &want)
        );
        assert!(c >= 0.999, "{} tokens: cosine {c}", enc.ids.len());
    }
}
