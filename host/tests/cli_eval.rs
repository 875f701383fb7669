//! `secformer eval` and the 2Quad warnings as processes: the JSON fields on the committed
//! WordNet student (plaintext and secure), the embedding report against a teacher, clear
//! errors for bad data, and the warning plus the unmodified-model agreement of
//! `--softmax 2quad` on a model not trained for it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use support::{bin, model_dir as minilm};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A committed model under models/ (always there in a checkout).
fn committed(name: &str) -> PathBuf {
    let d = repo().join("models").join(name);
    assert!(
        d.join("model.safetensors").exists(),
        "{} missing",
        d.display()
    );
    d
}

fn run_ok(c: &mut Command) -> serde_json::Value {
    let out: Output = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn test_tsv() -> PathBuf {
    repo().join("tools/distill/data/wordnet-lex/test.tsv")
}

#[test]
fn eval_json_has_the_fields_plain_and_secure() {
    let model = committed("minilm-wordnet-2quad");
    let j = run_ok(
        bin()
            .args(["eval", "--json", "--secure", "--limit", "3", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(test_tsv()),
    );
    assert_eq!(j["task"], "wordnet-lex/test");
    assert_eq!(j["examples"], 3);
    assert_eq!(j["softmax"], "2quad");
    assert!(j["model"].is_string());
    assert!((0.0..=1.0).contains(&j["accuracy"].as_f64().unwrap()));
    let s = &j["secure"];
    for f in [
        "accuracy",
        "label_agreement",
        "online_seconds_mean",
        "online_bytes_per_party_mean",
    ] {
        assert!(s[f].is_number(), "secure.{f} missing: {j}");
    }
    assert_eq!(s["label_agreement"], 1.0, "{j}");
}

#[test]
fn eval_of_an_embedding_model_against_its_teacher() {
    let Some(teacher) = minilm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sentences.txt");
    std::fs::write(
        &data,
        "a domestic cat\na large dog\nto run fast\nto walk slowly\nbread made of wheat\n",
    )
    .unwrap();
    let j = run_ok(
        bin()
            .args(["eval", "--json", "--secure", "--limit", "2", "--model"])
            .arg(committed("minilm-embed-2quad"))
            .arg("--data")
            .arg(&data)
            .arg("--teacher")
            .arg(&teacher),
    );
    assert_eq!(j["kind"], "embedding");
    assert_eq!(j["examples"], 2);
    let t = &j["teacher"];
    assert!(t["cosine_mean"].as_f64().unwrap() > 0.8, "{j}");
    assert!(t["top1_neighbour_agreement"].is_number());
    let s = &j["secure"];
    assert!(s["cosine_mean"].as_f64().unwrap() > 0.99, "{j}");
    assert!(s["cosine_min"].is_number());
    assert!(s["teacher"]["cosine_mean"].is_number());
    assert!(s["online_seconds_mean"].is_number());
}

#[test]
fn eval_refuses_bad_data_clearly() {
    let model = committed("minilm-wordnet-2quad");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, "sentence\tlabel\na cat\tnoun.cat\n").unwrap();
    for (data, want) in [
        (bad.as_path(), "noun.cat"),
        (Path::new("/nonexistent/data.tsv"), "cannot read"),
    ] {
        let out = bin()
            .args(["eval", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(data)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn two_quad_on_an_exact_model_warns_and_shows_the_unmodified_agreement() {
    let Some(dir) = minilm() else { return };
    let out = bin()
        .args([
            "demo",
            "--json",
            "--softmax",
            "2quad",
            "--text",
            "A short test.",
        ])
        .arg("--model")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not trained for 2Quad"), "{err}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &j["results"][0];
    assert!(r["agreement"].as_f64().unwrap() > 0.999);
    let u = r["unmodified_agreement"].as_f64().unwrap();
    assert!(
        u < 0.95,
        "2Quad without distillation should not match the model: {u}"
    );

    // A model that declares 2Quad gets no warning.
    let out = bin()
        .args(["eval", "--softmax", "2quad", "--limit", "1", "--model"])
        .arg(committed("minilm-wordnet-2quad"))
        .arg("--data")
        .arg(test_tsv())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not trained"));
}
