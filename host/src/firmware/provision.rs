//! Keys and the dealer process of one `firmware-peer` run.
//!
//! `firmware-peer` starts all three endpoints itself, so it creates ephemeral identities,
//! as `demo` and `bench` do, but keeps each secret with its owner: the device's and D's
//! secret keys are written by separate `secformer keygen` processes into a private
//! temporary directory (0700) that this process (P0 and the relay) never reads from; P0's
//! key lives only in this process. The device reads `device.key`, `dealer.pub` and
//! `p0.pub` from that directory through semihosting (its stand-in for keys written to
//! flash at provisioning); D reads `dealer.key`, `p0.pub` and `device.pub`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use secformer_core::noise::{StaticKey, KEY_LEN};

use crate::link::{Identity, LinkSecurity, TrustStore};

/// The key directory of one run.
pub struct Provisioning {
    dir: tempfile::TempDir,
    /// P0's identity (in memory only; its .pub is in the directory).
    pub p0: Identity,
}

impl Provisioning {
    /// Creates the directory and the three identities (`exe` is the `secformer` binary).
    pub fn create(exe: &Path) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("secformer-fw-keys-")
            .tempdir()
            .context("creating the key directory")?;
        for name in ["device", "dealer"] {
            let out = Command::new(exe)
                .args(["keygen", "--name", name, "--out"])
                .arg(dir.path())
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("running {} keygen", exe.display()))?;
            if !out.status.success() {
                bail!(
                    "{} keygen --name {name} failed: {}",
                    exe.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        let p0 = Identity::generate("p0")?;
        std::fs::write(dir.path().join("p0.pub"), format!("{}\n", p0.public_line()))
            .context("writing p0.pub")?;
        Ok(Provisioning { dir, p0 })
    }

    /// The directory (given to QEMU as `keys=DIR`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The device's public key (what P0 accepts on the peer link).
    pub fn device_public(&self) -> Result<[u8; KEY_LEN]> {
        let t = TrustStore::load(&[self.file("device.pub")])?;
        let key = t.keys().next().map(|k| k.0);
        key.ok_or_else(|| anyhow!("device.pub holds no key"))
    }

    /// P0's static key for the sealed peer link.
    pub fn p0_static(&self) -> StaticKey {
        StaticKey::from_secret(*self.p0.secret_bytes())
    }

    /// How P0's link to D is secured: P0's identity, D's key pinned.
    pub fn p0_to_dealer(&self) -> Result<LinkSecurity> {
        let trust = TrustStore::load(&[self.file("dealer.pub")])?;
        let p0 = Identity::from_secret("p0", self.p0.secret_bytes());
        Ok(LinkSecurity::authenticated(p0, trust))
    }
}

/// D as its own process (`secformer firmware-dealer`).
pub struct DealerProcess {
    child: Child,
    stdout: BufReader<ChildStdout>,
    /// P0's port.
    pub p0_addr: SocketAddr,
    /// The relay's port.
    pub relay_addr: SocketAddr,
}

/// What D reported at the end of its session.
#[derive(Debug, Clone, Copy, Default)]
pub struct DealerSummary {
    /// Requests served.
    pub requests: u32,
    /// Wire bytes D sent the device (sealed corrections).
    pub p1_sent: u64,
}

impl DealerProcess {
    /// Starts D with the run's keys and waits for its ports.
    pub fn spawn(exe: &Path, keys: &Provisioning, read_timeout: Duration) -> Result<Self> {
        let mut child = Command::new(exe)
            .arg("firmware-dealer")
            .arg("--key")
            .arg(keys.file("dealer.key"))
            .arg("--trust")
            .arg(keys.file("p0.pub"))
            .arg("--device")
            .arg(keys.file("device.pub"))
            .args(["--read-timeout", &read_timeout.as_secs().max(1).to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} firmware-dealer", exe.display()))?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            let status = child.wait();
            bail!("the dealer process exited before listening ({status:?})");
        }
        let (p0_addr, relay_addr) = parse_listening(&line)
            .ok_or_else(|| anyhow!("the dealer process printed {line:?}, not its ports"))?;
        Ok(DealerProcess {
            child,
            stdout,
            p0_addr,
            relay_addr,
        })
    }

    /// Connects the relay's socket to D.
    pub fn connect_relay(&self) -> Result<TcpStream> {
        let s = TcpStream::connect(self.relay_addr).with_context(|| {
            format!("connecting the relay to the dealer at {}", self.relay_addr)
        })?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    /// Waits (until `deadline`) for D to end and returns its summary, or why it failed.
    pub fn finish(mut self, deadline: Instant) -> Result<DealerSummary> {
        let mut summary = None;
        let mut line = String::new();
        while self.stdout.read_line(&mut line).unwrap_or(0) > 0 {
            summary = summary.or_else(|| parse_summary(&line));
            line.clear();
        }
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("the dealer process failed ({status}; its error is above)");
                }
                return summary.ok_or_else(|| anyhow!("the dealer process printed no summary"));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("the dealer process did not end in time (killed)");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DealerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let mut words = line.split_whitespace();
    (words.next()? == "listening").then_some(())?;
    let p0 = words.next()?.strip_prefix("p0=")?.parse().ok()?;
    let relay = words.next()?.strip_prefix("relay=")?.parse().ok()?;
    Some((p0, relay))
}

fn parse_summary(line: &str) -> Option<DealerSummary> {
    let rest = line.trim().strip_prefix("summary ")?;
    let mut s = DealerSummary::default();
    for kv in rest.split_whitespace() {
        match kv.split_once('=')? {
            ("requests", v) => s.requests = v.parse().ok()?,
            ("p1_sent", v) => s.p1_sent = v.parse().ok()?,
            _ => {}
        }
    }
    Some(s)
}
