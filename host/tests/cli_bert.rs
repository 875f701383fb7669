//! The BERT commands as processes: bad input gives a clear error and a non-zero exit for
//! the one-shot client while the services stay up (missing model, different models at P0
//! and P1, a too-long text with --no-truncate, the dealer disappearing mid-run); the
//! demo's JSON has its fields and vectors.

mod support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{bin, model_dir, Keys, Service};

fn wait(mut c: Child, limit: Duration) -> (bool, String) {
    let start = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = c.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (st.success(), err);
        }
        if start.elapsed() > limit {
            let _ = c.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the client against fresh dealer and server processes; returns the client's
/// outcome and whether both services were still running afterwards.
fn trio(dir: &Path, p1_model: &Path, extra: &[&str]) -> ((bool, String), bool) {
    let keys = Keys::new();
    let mut d = Service::start(dealer_cmd(&keys), "the dealer");
    let mut serve = bin();
    serve
        .args(["serve", "--dealer", &d.addr])
        .args(keys.of("p0"))
        .arg("--model")
        .arg(dir);
    let mut p0 = Service::start(serve, "P0");
    let p1 = bin()
        .args(["infer", "--connect", &p0.addr, "--dealer", &d.addr])
        .args(keys.of("p1"))
        .arg("--model")
        .arg(p1_model)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait(p1, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(300));
    let up = d.is_up() && p0.is_up();
    (out, up)
}

/// `secformer dealer` with the dealer's keys.
fn dealer_cmd(keys: &Keys) -> std::process::Command {
    let mut c = bin();
    c.arg("dealer").args(keys.of("dealer"));
    c
}

#[test]
fn missing_model_directory_is_a_clear_error() {
    let out = bin()
        .args(["plain", "--model", "/nonexistent/model", "--text", "hi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/model"), "{err}");
}

#[test]
fn p0_and_p1_with_different_models_both_fail() {
    let Some(dir) = model_dir() else { return };
    // P1's copy: the same config, a vocabulary with two tokens swapped.
    let tmp = std::env::temp_dir().join(format!("secformer-other-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::copy(dir.join("config.json"), tmp.join("config.json")).unwrap();
    let vocab = std::fs::read_to_string(dir.join("vocab.txt")).unwrap();
    let mut lines: Vec<&str> = vocab.lines().collect();
    lines.swap(2000, 2001);
    std::fs::write(tmp.join("vocab.txt"), lines.join("\n") + "\n").unwrap();
    let ((ok1, e1), up) = trio(&dir, &tmp, &["--text", "hello"]);
    assert!(!ok1, "P1 must fail");
    assert!(e1.contains("different model"), "P1: {e1}");
    assert!(up, "P0 and the dealer must stay up");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn too_long_text_is_refused_with_no_truncate() {
    let Some(dir) = model_dir() else { return };
    let long = "word ".repeat(600);
    let out = bin()
        .args([
            "infer",
            "--connect",
            "127.0.0.1:1",
            "--dealer",
            "127.0.0.1:1",
            "--no-truncate",
            "--model",
        ])
        .arg(&dir)
        .args(["--text", &long])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exceeds the model's maximum"), "{err}");
}

#[test]
fn dealer_disappearing_mid_run_fails_the_client_and_p0_stays_up() {
    let Some(dir) = model_dir() else { return };
    let keys = Keys::new();
    let mut d = Service::start(dealer_cmd(&keys), "the dealer");
    let dealer = d.addr.clone();
    let mut serve = bin();
    serve
        .args([
            "serve",
            "--dealer",
            &dealer,
            "--read-timeout",
            "20",
            "--model",
        ])
        .arg(&dir)
        .args(keys.of("p0"));
    let mut p0 = Service::start(serve, "P0");
    let peer = p0.addr.clone();
    let texts: Vec<String> = (0..40)
        .map(|i| format!("sentence number {i} for a long run"))
        .collect();
    let mut args = vec![
        "infer".to_string(),
        "--connect".into(),
        peer.clone(),
        "--dealer".into(),
        dealer.clone(),
    ];
    args.extend(["--read-timeout".into(), "20".into()]);
    args.extend(keys.of("p1"));
    for t in &texts {
        args.extend(["--text".into(), t.clone()]);
    }
    let p1 = bin()
        .args(&args)
        .arg("--model")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    d.child.kill().unwrap();
    let _ = d.child.wait();
    let (ok1, e1) = wait(p1, Duration::from_secs(90));
    assert!(!ok1, "P1 should fail");
    assert!(e1.contains("dealer"), "P1 names the dealer: {e1}");
    assert!(p0.is_up(), "P0 stays up: {}", p0.log());
}

#[test]
fn demo_json_has_the_fields() {
    let Some(dir) = model_dir() else { return };
    let out = bin()
        .args([
            "demo",
            "--json",
            "--text",
            "A short test.",
            "--text",
            "Another, longer test sentence!",
            "--model",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["softmax"], "exact");
    assert!(j["model"].is_string());
    for f in ["setup_seconds", "total_seconds"] {
        assert!(j[f].is_number(), "missing {f}");
    }
    let rs = j["results"].as_array().unwrap();
    assert_eq!(rs.len(), 2);
    for r in rs {
        for f in [
            "agreement",
            "max_abs_diff",
            "online_seconds",
            "online_bytes_per_party",
            "rounds",
        ] {
            assert!(r[f].is_number(), "missing {f}");
        }
        assert!(r["text"].is_string());
        assert!(r["agreement"].as_f64().unwrap() >= 0.999);
        // The vectors themselves: the secure output and the plaintext reference.
        let (sec, pl) = (r["secure"].as_array(), r["plain"].as_array());
        let (sec, pl) = (sec.expect("secure vector"), pl.expect("plain vector"));
        assert_eq!(sec.len(), 384, "all-MiniLM-L6-v2's embedding");
        assert_eq!(sec.len(), pl.len());
    }
}

/// A tiny random model, the same at P0 and P1.
const TINY: [&str; 12] = [
    "--layers",
    "1",
    "--hidden",
    "32",
    "--heads",
    "2",
    "--intermediate",
    "64",
    "--vocab",
    "100",
    "--max-positions",
    "32",
];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_restored_copy_of_p1s_kept_session_cannot_use_a_pass_twice() {
    let keys = Keys::new();
    let mut d = Service::start(dealer_cmd(&keys), "the dealer");
    let dealer = d.addr.clone();
    let mut serve = bin();
    serve
        .args(["serve", "--synthetic", "--dealer", &dealer])
        .args(TINY)
        .args(keys.of("p0"));
    let mut p0 = Service::start(serve, "P0");
    let peer = p0.addr.clone();
    let state = tempfile::tempdir().unwrap();
    let infer = || {
        bin()
            .env("SECFORMER_STATE", state.path())
            .args(["infer", "--synthetic", "--tokens", "5", "--connect", &peer])
            .args(["--dealer", &dealer])
            .args(TINY)
            .args(keys.of("p1"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ok, err) = wait(infer(), Duration::from_secs(60));
    assert!(ok, "first run: {err}");
    let backup = tempfile::tempdir().unwrap();
    copy_dir(state.path(), backup.path());
    let (ok, err) = wait(infer(), Duration::from_secs(60));
    assert!(ok, "resumed run: {err}");
    assert!(err.contains("resum"), "the second run resumes: {err}");
    std::fs::remove_dir_all(state.path()).unwrap();
    copy_dir(backup.path(), state.path());
    let (ok, err) = wait(infer(), Duration::from_secs(60));
    assert!(!ok, "a restored copy must not run");
    assert!(err.contains("already used"), "P0 names the reuse: {err}");
    assert!(d.is_up(), "the dealer stays up: {}", d.log());
    assert!(p0.is_up(), "P0 stays up: {}", p0.log());
}
