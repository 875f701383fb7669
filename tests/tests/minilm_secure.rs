//! Secure all-MiniLM-L6-v2 against the plaintext model on the fixture sentences: the
//! three endpoints over TCP through the preprocessing pool (secret lengths: every text
//! padded to its bucket), cosine >= 0.999 on every sentence. Needs the checkpoint
//! (`bash scripts/fetch_model.sh`); without it the test says so and passes, unless
//! `SECFORMER_REQUIRE_MODEL=1`.

use std::path::PathBuf;
use std::time::Instant;

use secformer_host::bert::local::{self, Links, LocalOptions};
use secformer_host::bert::ModelShape;
use secformer_host::model::{fetch, load_model, plain, Encoding};
use secformer_tests::*;

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_secure_matches_plaintext() {
    // SECFORMER_MODEL_DIR, else where `secformer fetch` and scripts/fetch_model.sh put it.
    let dir = std::env::var_os("SECFORMER_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| fetch::default_model_dir(&fetch::default_cache_dir()));
    if !dir.join("model.safetensors").exists() {
        assert!(
            std::env::var("SECFORMER_REQUIRE_MODEL").is_err(),
            "the checkpoint is required (SECFORMER_REQUIRE_MODEL) but missing at {}",
            dir.display()
        );
        eprintln!(
            "skipping: no checkpoint at {} (run scripts/fetch_model.sh or secformer fetch)",
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
    let t = Instant::now();
    let [d0, d1, p] = links(Net::Tcp);
    let opts = LocalOptions::for_model(&ModelShape::of(&model.config));
    let run = local::run(
        Links { d0, d1, p },
        &model.config,
        &model.weights,
        &encs,
        &opts,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "{} sentences in {:.1} s",
        encs.len(),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(run.passes.len(), encs.len());
    for (enc, pass) in encs.iter().zip(&run.passes) {
        assert_eq!(pass.online_dealer_bytes, 0);
        let got = &pass.outputs[0];
        let want: Vec<f64> = plain::forward(&model, enc)
            .pooled_raw
            .iter()
            .map(|v| *v as f64)
            .collect();
        let c = cosine(got, &want);
        eprintln!(
            "{:>4} tokens (bucket {:>3}): cosine {c:.6}, max diff {:.4}",
            enc.ids.len(),
            pass.shape.bucket,
            max_abs_diff(got, &want)
        );
        assert!(c >= 0.999, "{} tokens: cosine {c}", enc.ids.len());
    }
}
