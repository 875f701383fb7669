//! The `secformer` binary: three processes (dealer, P0, P1) over TCP on 127.0.0.1, the
//! JSON bench output, and clear errors with a non-zero exit.

mod support;

use std::process::Stdio;
use support::{bin, free_port, Keys, Service};

/// A dealer with `extra` flags on a port the OS picks.
fn dealer(keys: &Keys, extra: &[&str]) -> Service {
    let mut c = bin();
    c.arg("dealer").args(extra).args(keys.of("dealer"));
    Service::start(c, "the dealer")
}

#[test]
fn three_processes_over_tcp() {
    let keys = Keys::new();
    let mut d = dealer(&keys, &["--sessions", "1"]);
    let dealer = d.addr.clone();
    let peer = format!("127.0.0.1:{}", free_port());
    let small = ["--m", "8", "--k", "32", "--n", "16"];
    let p0 = bin()
        .args([
            "party", "--id", "0", "--listen", &peer, "--dealer", &dealer, "--json",
        ])
        .args(small)
        .args(keys.of("p0"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let p1 = bin()
        .args([
            "party",
            "--id",
            "1",
            "--connect",
            &peer,
            "--dealer",
            &dealer,
            "--json",
        ])
        .args(small)
        .args(keys.of("p1"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let o0 = p0.wait_with_output().unwrap();
    let o1 = p1.wait_with_output().unwrap();
    assert!(o0.status.success() && o1.status.success());
    let j1: serde_json::Value = serde_json::from_slice(&o1.stdout).unwrap();
    assert_eq!(j1["party"], 1);
    assert_eq!(j1["rounds"], 2);
    assert_eq!(j1["output_head"].as_array().unwrap().len(), 4);
    let j0: serde_json::Value = serde_json::from_slice(&o0.stdout).unwrap();
    assert_eq!(
        j0["output_head"].as_array().unwrap().len(),
        0,
        "P0 learns nothing"
    );
    assert!(d.child.wait().unwrap().success(), "{}", d.log());
}

#[test]
fn bench_matmul_json_has_the_fields() {
    let out = bin()
        .args([
            "bench", "matmul", "--m", "16", "--k", "64", "--n", "32", "--reps", "1", "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for f in [
        "online_seconds",
        "online_bytes_per_party",
        "dealer_bytes",
        "rounds",
        "max_abs_error",
        "plain_gemm_seconds",
    ] {
        assert!(j[f].is_number(), "missing {f}");
    }
    assert!(j["max_abs_error"].as_f64().unwrap() < 1.0 / 65536.0);
    assert_eq!(j["rounds"], 2);
    assert_eq!(
        j["online_bytes_per_party"],
        // Two frames of 6 header bytes: encrypted links carry no CRC trailer.
        16 * 64 * 8 + (16 * 32) / 8 + 2 * 6
    );
}

#[test]
fn unreachable_peer_is_a_clear_error() {
    let keys = Keys::new();
    let port = free_port();
    let out = bin()
        .args([
            "party",
            "--id",
            "1",
            "--connect",
            &format!("127.0.0.1:{port}"),
            "--dealer",
            "127.0.0.1:1",
            "--connect-timeout",
            "1",
        ])
        .args(keys.of("p1"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connecting to the other party at 127.0.0.1:"),
        "{err}"
    );
}

#[test]
fn peer_with_other_shapes_fails_both_with_a_message() {
    let keys = Keys::new();
    let mut d = dealer(&keys, &[]);
    let dealer = d.addr.clone();
    let peer = format!("127.0.0.1:{}", free_port());
    let p0 = bin()
        .args([
            "party", "--id", "0", "--listen", &peer, "--dealer", &dealer, "--m", "4", "--k", "8",
            "--n", "8",
        ])
        .args(keys.of("p0"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let p1 = bin()
        .args([
            "party",
            "--id",
            "1",
            "--connect",
            &peer,
            "--dealer",
            &dealer,
            "--m",
            "4",
            "--k",
            "8",
            "--n",
            "9",
        ])
        .args(keys.of("p1"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (o0, o1) = (
        p0.wait_with_output().unwrap(),
        p1.wait_with_output().unwrap(),
    );
    assert!(!o0.status.success() && !o1.status.success());
    let e1 = String::from_utf8_lossy(&o1.stderr);
    assert!(e1.contains("error:"), "{e1}");
    // The failed session does not take the dealer down.
    assert!(d.is_up(), "the dealer must stay up: {}", d.log());
}

#[test]
fn bench_sizes_out_of_range_are_clear_errors_not_panics() {
    for args in [
        &["bench", "gemm", "--rows", "0"][..],
        &["bench", "gemm", "--rows", "1000000000"],
        &["bench", "gemm", "--reps", "0"],
        &["bench", "matmul", "--m", "0"],
        &["bench", "matmul", "--m", "100000000"],
        &["bench", "ops", "--scale", "1000000000"],
        &["bench", "ops", "--scale", "0"],
        &["bench", "plan", "--seq", "0"],
        &["bench", "bert", "--seq", "0"],
        &["bench", "bert", "--hidden", "100000000"],
        &["bench", "bert", "--layers", "0"],
    ] {
        let out = bin().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            err.starts_with("error: ") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}
