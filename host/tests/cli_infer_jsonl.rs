//! `secformer infer --jsonl` against real dealer and P0 processes serving the committed
//! 2Quad classifier (`models/minilm-wordnet-2quad`, always in a checkout): results come as
//! they are done (the first line is read while later texts still run), each names its
//! input by index (blank lines counted), classifiers carry `probs` summing to 1 and
//! `score`; `--output` keeps what finished when P0 disappears and the error names the
//! index; `--batch` is reported per text; `plain --file` numbers and labels the same way.
//! Also, without services: `--read-timeout 0` is refused and `secformer fetch` prints the
//! cached model's directory alone on stdout, or fails leaving nothing behind.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{bin, Keys, Service};

/// The committed classifier.
fn classifier() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/minilm-wordnet-2quad")
}

/// P1's copy of the classifier: the public files only (P1 never reads the weights).
fn public_copy(to: &Path) -> PathBuf {
    let dir = to.join("public");
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "config.json",
        "vocab.txt",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        std::fs::copy(classifier().join(f), dir.join(f)).unwrap();
    }
    dir
}

/// A dealer and P0 serving the classifier, killed when dropped (also when a test fails).
struct Services {
    keys: Keys,
    dealer: Service,
    p0: Service,
}

impl Services {
    fn start() -> Services {
        let keys = Keys::new();
        let mut d = bin();
        d.arg("dealer").args(keys.of("dealer"));
        let dealer = Service::start(d, "the dealer");
        let mut serve = bin();
        serve
            .args(["serve", "--dealer", &dealer.addr, "--model"])
            .arg(classifier())
            .args(keys.of("p0"));
        let p0 = Service::start(serve, "P0");
        Services { keys, dealer, p0 }
    }

    /// `secformer infer` against these services with P1's public copy of the model.
    fn infer(&self, model: &Path, extra: &[&str]) -> std::process::Command {
        let mut c = bin();
        c.args(["infer", "--no-keep", "--connect", &self.p0.addr])
            .args(["--dealer", &self.dealer.addr])
            .args(self.keys.of("p1"))
            .arg("--model")
            .arg(model)
            .args(extra);
        c
    }

    /// Kills P0.
    fn kill_p0(&mut self) {
        let _ = self.p0.child.kill();
        let _ = self.p0.child.wait();
    }
}

/// The file's lines: texts at every second line, blank or whitespace-only lines between
/// some of them.
fn input_file(dir: &Path, texts: usize) -> (PathBuf, Vec<String>) {
    let mut lines = Vec::new();
    for i in 0..texts {
        lines.push(format!("sentence {i} is about a small dog in the garden"));
        match i % 3 {
            0 => lines.push(String::new()),
            1 => lines.push("   ".into()),
            _ => {}
        }
    }
    let path = dir.join("texts.txt");
    std::fs::write(&path, lines.join("\n")).unwrap();
    (path, lines)
}

/// Checks a classifier result: `probs` a distribution, `score` its largest value, `label`
/// the argmax of `logits`.
fn check_classifier(r: &Value) {
    let probs: Vec<f64> = r["probs"]
        .as_array()
        .expect("probs")
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    let logits = r["logits"].as_array().expect("logits");
    assert_eq!(probs.len(), logits.len(), "one probability per class");
    let sum: f64 = probs.iter().sum();
    assert!((sum - 1.0).abs() < 1e-9, "probs sum to {sum}");
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));
    let max = probs.iter().cloned().fold(f64::MIN, f64::max);
    assert_eq!(
        r["score"].as_f64().unwrap(),
        max,
        "score is the top probability"
    );
    assert!(r["label"].is_string(), "label");
    for f in [
        "tokens",
        "online_seconds",
        "online_bytes_per_party",
        "rounds",
    ] {
        assert!(r[f].is_number(), "missing {f}: {r}");
    }
}

#[test]
fn jsonl_streams_results_numbered_by_input_line() {
    let svc = Services::start();
    let tmp = tempfile::tempdir().unwrap();
    let model = public_copy(tmp.path());
    let (file, lines) = input_file(tmp.path(), 12);
    let mut child = svc
        .infer(&model, &["--jsonl", "--text", "a text given first"])
        .arg("--file")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first result is out while later texts still run"
    );
    let mut rows = vec![serde_json::from_str::<Value>(&first).expect("a JSON line")];
    for line in out.lines() {
        rows.push(serde_json::from_str(&line.unwrap()).expect("a JSON line"));
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "infer failed");
    // The --text value is index 0; the file's lines follow, blank lines counted.
    let inputs: Vec<(usize, String)> = std::iter::once("a text given first".to_string())
        .chain(lines)
        .enumerate()
        .filter(|(_, t)| !t.trim().is_empty())
        .collect();
    assert_eq!(rows.len(), inputs.len(), "one result per non-blank input");
    for (r, (index, text)) in rows.iter().zip(&inputs) {
        assert_eq!(r["index"].as_u64().unwrap() as usize, *index);
        assert_eq!(r["text"].as_str().unwrap(), text, "the text in full");
        assert_eq!(r["batch"], 1);
        assert_eq!(r["truncated"], false);
        assert!(r["embedding"].is_null());
        check_classifier(r);
    }
}

#[test]
fn batches_are_reported_per_text_and_json_has_probs() {
    let svc = Services::start();
    let tmp = tempfile::tempdir().unwrap();
    let model = public_copy(tmp.path());
    let texts = ["one dog", "two cats", "a red car", "the sea", "a tall tree"];
    let mut args = vec!["--json", "--batch", "4"];
    for t in &texts {
        args.extend(["--text", t]);
    }
    let out = svc.infer(&model, &args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let batches: Vec<u64> = rows.iter().map(|r| r["batch"].as_u64().unwrap()).collect();
    assert_eq!(batches, [4, 4, 4, 4, 1], "four texts in the first pass");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["index"].as_u64().unwrap() as usize, i);
        check_classifier(r);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("setup") && err.contains("total"),
        "times: {err}"
    );
}

#[test]
fn output_file_keeps_finished_results_when_p0_disappears() {
    let mut svc = Services::start();
    let tmp = tempfile::tempdir().unwrap();
    let model = public_copy(tmp.path());
    let (file, _) = input_file(tmp.path(), 60);
    let results = tmp.path().join("results.jsonl");
    let child = svc
        .infer(&model, &["--jsonl", "--read-timeout", "20", "--output"])
        .arg(&results)
        .arg("--file")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::fs::read_to_string(&results).map_or(true, |s| s.lines().count() < 2) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no result written"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    svc.kill_p0();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "infer must fail without P0");
    assert!(out.stdout.is_empty(), "results go to --output, not stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("input index"),
        "the error names the index: {err}"
    );
    let kept = std::fs::read_to_string(&results).unwrap();
    let rows: Vec<Value> = kept
        .lines()
        .map(|l| serde_json::from_str(l).expect("only whole JSON lines"))
        .collect();
    assert!(
        rows.len() >= 2 && rows.len() < 60,
        "{} rows kept",
        rows.len()
    );
    let failed: usize = err
        .split("input index ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .expect("an index in the error");
    let last = rows.last().unwrap()["index"].as_u64().unwrap() as usize;
    assert!(
        failed > last,
        "the failed index {failed} follows the kept ones"
    );
}

#[test]
fn plain_file_numbers_and_labels_like_infer() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, lines) = input_file(tmp.path(), 4);
    let out = bin()
        .args(["plain", "--json", "--softmax", "2quad", "--model"])
        .arg(classifier())
        .arg("--file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let indices: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.trim().is_empty())
        .map(|(i, _)| i)
        .collect();
    let got: Vec<usize> = rows
        .iter()
        .map(|r| r["index"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(got, indices);
    rows.iter().for_each(|r| {
        let probs = r["probs"].as_array().unwrap();
        let sum: f64 = probs.iter().map(|p| p.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-9 && r["score"].is_number() && r["label"].is_string());
    });
    let text = bin()
        .args(["plain", "--model"])
        .arg(classifier())
        .args(["--text", "a dog"])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&text.stdout);
    assert!(
        line.contains(" label ") && line.contains("probs ["),
        "{line}"
    );
}

#[test]
fn zero_read_timeout_is_refused_before_anything_runs() {
    let out = bin()
        .args(["infer", "--insecure", "--read-timeout", "0", "--text", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--read-timeout") && err.contains("at least 1 second"),
        "{err}"
    );
}

#[test]
fn fetch_prints_the_cached_model_alone_or_fails_leaving_nothing() {
    let cache = tempfile::tempdir().unwrap();
    // A failing download (no pip behind SECFORMER_PYTHON): an error, nothing left.
    let out = bin()
        .env("SECFORMER_PYTHON", "false")
        .args(["fetch", "--cache-dir"])
        .arg(cache.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    let left: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert!(left.is_empty(), "a failed fetch leaves nothing: {left:?}");
    // A model already in the cache (SECFORMER_CACHE): its directory, the only stdout line.
    let dir = cache.path().join("all-MiniLM-L6-v2");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors", "vocab.txt"] {
        std::fs::write(dir.join(f), "x").unwrap();
    }
    let out = bin()
        .env("SECFORMER_CACHE", cache.path())
        .env("SECFORMER_PYTHON", "false")
        .arg("fetch")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\n", dir.display())
    );
}
