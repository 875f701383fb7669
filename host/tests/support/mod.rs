//! Shared helpers of the process tests: the binary, free ports, ephemeral key files.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The default model's directory (`SECFORMER_MODEL_DIR`, else where `secformer fetch` and
/// scripts/fetch_model.sh put it), or `None` (the test skips) when it is missing, unless
/// `SECFORMER_REQUIRE_MODEL` is set (CI), which makes a missing model a failure.
pub fn model_dir() -> Option<PathBuf> {
    use secformer_host::model::fetch;
    let d = std::env::var_os("SECFORMER_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| fetch::default_model_dir(&fetch::default_cache_dir()));
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

/// The `secformer` binary.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_secformer"))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Key files of the dealer, P0 and P1 (and an outsider) in a temporary directory.
pub struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    /// Creates `dealer`, `p0`, `p1` and `mallory` with `secformer keygen`.
    pub fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        for name in ["dealer", "p0", "p1", "mallory"] {
            let out = bin()
                .args(["keygen", "--name", name, "--out"])
                .arg(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "keygen: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Keys { dir }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str, ext: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.{ext}"))
    }

    /// `--key NAME.key` and `--trust` for each of `trusted`.
    pub fn args(&self, name: &str, trusted: &[&str]) -> Vec<String> {
        let mut v = vec![
            "--key".to_string(),
            self.file(name, "key").display().to_string(),
        ];
        for t in trusted {
            v.push("--trust".into());
            v.push(self.file(t, "pub").display().to_string());
        }
        v
    }

    /// The flags of one of the three endpoints, trusting the other two.
    pub fn of(&self, name: &str) -> Vec<String> {
        let others: Vec<&str> = ["dealer", "p0", "p1"]
            .into_iter()
            .filter(|n| *n != name)
            .collect();
        self.args(name, &others)
    }
}

/// A service process (`dealer` or `serve`) listening on a port the OS picked
/// (`--listen 127.0.0.1:0 --port-file`), so tests run in parallel never race for a port.
/// Killed when dropped, also when a test fails.
pub struct Service {
    /// The process.
    pub child: std::process::Child,
    /// `127.0.0.1:PORT`, where it listens.
    pub addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Service {
    /// Starts `cmd` (a `secformer dealer` or `secformer serve` command without `--listen`)
    /// and waits until it listens; panics with its log when it exits or takes over 120 s.
    pub fn start(mut cmd: Command, who: &str) -> Service {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let (port_file, log) = (dir.path().join("port"), dir.path().join("log"));
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0", "--port-file"])
            .arg(&port_file)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let addr = loop {
            if let Ok(s) = std::fs::read_to_string(&port_file) {
                if let Some(port) = s
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.trim().parse::<u16>().ok())
                {
                    break format!("127.0.0.1:{port}");
                }
            }
            let exited = child.try_wait().unwrap();
            let late = start.elapsed() > Duration::from_secs(120);
            if exited.is_some() || late {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{who} did not start ({}): {}",
                    exited.map_or("still not listening after 120 s".into(), |s| s.to_string()),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Service {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    /// Whether the process still runs.
    pub fn is_up(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// What it printed on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
