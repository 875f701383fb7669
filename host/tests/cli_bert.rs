//! The BERT commands as processes: bad input gives a clear error and a non-zero exit on
//! every side (missing model, different models at P0 and P1, a too-long text with
//! --no-truncate, the dealer disappearing mid-inference); the demo's JSON has its fields.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_secformer"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn model_dir() -> Option<PathBuf> {
    let d = std::env::var_os("SECFORMER_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/all-MiniLM-L6-v2")
        });
    if d.join("model.safetensors").exists() {
        Some(d)
    } else {
        assert!(
            std::env::var_os("SECFORMER_REQUIRE_MODEL").is_none(),
            "model missing at {}",
            d.display()
        );
        eprintln!("SKIPPED: no model at {}", d.display());
        None
    }
}

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

fn trio(
    dir: &Path,
    p1_model: &Path,
    extra: &[&str],
) -> ((bool, String), (bool, String), (bool, String)) {
    let (dp, pp) = (free_port(), free_port());
    let dealer = format!("127.0.0.1:{dp}");
    let peer = format!("127.0.0.1:{pp}");
    let d = bin()
        .args(["dealer", "--listen", &dealer])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let p0 = bin()
        .args(["serve", "--listen", &peer, "--dealer", &dealer, "--model"])
        .arg(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let p1 = bin()
        .args(["infer", "--connect", &peer, "--dealer", &dealer, "--model"])
        .arg(p1_model)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lim = Duration::from_secs(120);
    (wait(p1, lim), wait(p0, lim), wait(d, lim))
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
    let ((ok1, e1), (ok0, e0), (okd, _)) = trio(&dir, &tmp, &["--text", "hello"]);
    assert!(!ok1 && !ok0 && !okd);
    assert!(e1.contains("different model"), "P1: {e1}");
    assert!(e0.contains("error:"), "P0: {e0}");
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
fn dealer_disappearing_mid_inference_fails_both_parties() {
    let Some(dir) = model_dir() else { return };
    let (dp, pp) = (free_port(), free_port());
    let dealer = format!("127.0.0.1:{dp}");
    let peer = format!("127.0.0.1:{pp}");
    let mut d = bin()
        .args(["dealer", "--listen", &dealer])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p0 = bin()
        .args([
            "serve",
            "--listen",
            &peer,
            "--dealer",
            &dealer,
            "--read-timeout",
            "20",
            "--model",
        ])
        .arg(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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
    d.kill().unwrap();
    let _ = d.wait();
    let (ok1, e1) = wait(p1, Duration::from_secs(90));
    let (ok0, e0) = wait(p0, Duration::from_secs(90));
    assert!(!ok1, "P1 should fail");
    assert!(!ok0, "P0 should fail");
    assert!(e1.contains("error:"), "P1: {e1}");
    assert!(e0.contains("error:"), "P0: {e0}");
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
    }
}
