//! The long-running services under abuse, as real processes: `dealer` and `serve` started
//! once with their default flags and keys; then junk bytes, an HTTP request and a
//! 0xFFFFFFFF length prefix on both ports, a client with an untrusted key, a client killed in
//! the middle of an inference, a client that gives up while queued, three clients at once;
//! after all of that a good client's result equals `plain`'s and both services are still up.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use support::{bin, model_dir, Keys};

/// Children killed when the test ends, also when it fails.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits for a service's port file and returns the address it listens on (the services
/// bind port 0, so no other process can take their port between a probe and the bind).
fn wait_for(path: &Path, what: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Some(port) = s
                .rsplit(':')
                .next()
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                return format!("127.0.0.1:{port}");
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `bytes` and expects the service to close the connection soon, having sent
/// nothing but (at most) a short refusal.
fn hostile(addr: &str, bytes: &[u8], what: &str) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let start = Instant::now();
    let r = s.read_to_end(&mut got);
    assert!(
        r.is_ok() || start.elapsed() < Duration::from_secs(19),
        "{what} at {addr}: the service kept the connection open"
    );
    assert!(
        got.len() <= 64,
        "{what} at {addr}: answered {} bytes",
        got.len()
    );
}

fn embedding(json: &[u8]) -> Vec<f64> {
    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
    let row = if v.is_array() { &v[0] } else { &v };
    row["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn services_survive_hostile_and_failing_clients_then_serve_a_good_one() {
    let Some(model) = model_dir() else { return };
    let keys = Keys::new();
    let ready = tempfile::tempdir().unwrap();
    let (dfile, pfile) = (ready.path().join("d"), ready.path().join("p"));
    let d = bin()
        .args(["dealer", "--listen", "127.0.0.1:0", "--port-file"])
        .arg(&dfile)
        .args(keys.of("dealer"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut services = Procs(vec![d]);
    let dealer = wait_for(&dfile, "the dealer");
    let p0 = bin()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dealer",
            &dealer,
            "--port-file",
        ])
        .arg(&pfile)
        .arg("--model")
        .arg(&model)
        .args(keys.of("p0"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    services.0.push(p0);
    let peer = wait_for(&pfile, "P0");

    for addr in [&dealer, &peer] {
        let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        hostile(addr, &junk, "junk");
        hostile(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "an HTTP request",
        );
        hostile(
            addr,
            &[0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4],
            "a 0xFFFFFFFF length",
        );
    }

    let client = |key: &str, texts: &[&str]| {
        let mut c = bin();
        c.args([
            "infer",
            "--connect",
            &peer,
            "--dealer",
            &dealer,
            "--no-keep",
        ])
        .arg("--model")
        .arg(&model)
        .args(keys.args(key, &["dealer", "p0"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for t in texts {
            c.args(["--text", t]);
        }
        c
    };
    let done = |c: Child| -> Output { c.wait_with_output().unwrap() };

    // An untrusted key is refused, and the message names the key's holder.
    let out = done(client("mallory", &["hello"]).spawn().unwrap());
    assert!(!out.status.success(), "mallory was served");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused"), "{err}");

    // A client killed in the middle of its inferences.
    let many: Vec<String> = (0..30)
        .map(|i| format!("sentence {i} of a long run"))
        .collect();
    let many: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
    let mut victim = client("p1", &many).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    victim.kill().unwrap();
    let _ = victim.wait();

    // Four long clients fill the sessions; a fifth waits in the queue and gives up.
    let long: Vec<Child> = (0..4)
        .map(|_| client("p1", &many[..8]).spawn().unwrap())
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let mut quitter = client("p1", &["queued"]).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    quitter.kill().unwrap();
    let out = quitter.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("queued"),
        "the fifth client was not queued: {err}"
    );
    for c in long {
        let out = done(c);
        assert!(
            out.status.success(),
            "a long client: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Three clients at once.
    let three: Vec<Child> = (0..3)
        .map(|i| {
            let t = ["one at once", "two at once", "three at once"][i];
            client("p1", &[t]).spawn().unwrap()
        })
        .collect();
    for c in three {
        let out = done(c);
        assert!(
            out.status.success(),
            "a concurrent client: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // After all of that, a good client gets what `plain` gets.
    let text = "The services are still up.";
    let out = done(client("p1", &[text]).arg("--json").spawn().unwrap());
    assert!(
        out.status.success(),
        "the good client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secure = embedding(&out.stdout);
    let plain = bin()
        .args(["plain", "--json", "--text", text, "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(plain.status.success());
    let want = embedding(&plain.stdout);
    assert_eq!(secure.len(), want.len());
    let diff = secure
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(diff <= 0.01, "secure vs plain: max difference {diff}");
    for (c, who) in services.0.iter_mut().zip(["the dealer", "P0"]) {
        assert!(c.try_wait().unwrap().is_none(), "{who} stays up");
    }
}
