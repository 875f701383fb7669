//! Simulated networks for benchmarks: the three endpoints in their own Linux network
//! namespaces, joined pairwise by veth pairs (P0-P1, P0-D, P1-D), every link shaped with
//! `tc netem` in both directions. Needs root (`ip netns`, `tc`); without it, a clear error.
//!
//! | profile | rate | delay each way |
//! |---|---|---|
//! | `lan` | 1 Gbit/s | 0.25 ms |
//! | `wan` | 100 Mbit/s | 20 ms |

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Which network the benchmark runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    /// 127.0.0.1, no shaping.
    Loopback,
    /// 1 Gbit/s, 0.25 ms each way.
    Lan,
    /// 100 Mbit/s, 20 ms each way.
    Wan,
}

impl Net {
    /// `(rate, delay)` for `tc netem`.
    fn shape(self) -> Option<(&'static str, &'static str)> {
        match self {
            Net::Loopback => None,
            Net::Lan => Some(("1gbit", "250us")),
            Net::Wan => Some(("100mbit", "20ms")),
        }
    }
}

/// The namespaces of one simulated network; removed on drop.
pub struct Sim {
    prefix: String,
}

/// One endpoint of the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// The dealer.
    Dealer,
    /// P0.
    P0,
    /// P1.
    P1,
}

impl Sim {
    /// The namespace of `n`.
    pub fn ns(&self, n: Node) -> String {
        let s = match n {
            Node::Dealer => "d",
            Node::P0 => "p0",
            Node::P1 => "p1",
        };
        format!("{}{s}", self.prefix)
    }

    /// The address at which `to` is reached from `from`.
    pub fn addr(from: Node, to: Node) -> &'static str {
        match (from, to) {
            (Node::P1, Node::P0) => "10.77.1.1",
            (Node::P0, Node::P1) => "10.77.1.2",
            (Node::P0, Node::Dealer) => "10.77.2.2",
            (Node::Dealer, Node::P0) => "10.77.2.1",
            (Node::P1, Node::Dealer) => "10.77.3.2",
            (Node::Dealer, Node::P1) => "10.77.3.1",
            _ => "127.0.0.1",
        }
    }

    /// A command that runs `program` inside `n`'s namespace.
    pub fn command(&self, n: Node, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(n)]).arg(program);
        c
    }
}

fn run(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Sets up the namespaces and shaped links of `net` (`None` for loopback).
pub fn setup(net: Net) -> Result<Option<Sim>> {
    let Some((rate, delay)) = net.shape() else {
        return Ok(None);
    };
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .context("running id -u")?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        bail!("--net {net:?} needs root (network namespaces and tc); run as root or use --net loopback");
    }
    let sim = Sim {
        prefix: format!("sf{}", std::process::id() % 10000),
    };
    for n in [Node::Dealer, Node::P0, Node::P1] {
        let ns = sim.ns(n);
        let _ = run(&["ip", "netns", "del", &ns]);
        run(&["ip", "netns", "add", &ns])?;
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
    }
    let links = [
        (Node::P0, Node::P1, 1),
        (Node::Dealer, Node::P0, 2),
        (Node::Dealer, Node::P1, 3),
    ];
    for (a, b, i) in links {
        // Interface names hold at most 15 bytes.
        let (va, vb) = (
            format!("{}v{i}a", sim.prefix),
            format!("{}v{i}b", sim.prefix),
        );
        run(&[
            "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
        ])?;
        for (dev, node) in [(&va, a), (&vb, b)] {
            let ns = sim.ns(node);
            let other = if node == a { b } else { a };
            run(&["ip", "link", "set", dev, "netns", &ns])?;
            let ip = format!("{}/24", Sim::addr(other, node));
            run(&["ip", "-n", &ns, "addr", "add", &ip, "dev", dev])?;
            run(&["ip", "-n", &ns, "link", "set", dev, "up"])?;
            run(&[
                "tc", "-n", &ns, "qdisc", "add", "dev", dev, "root", "netem", "delay", delay,
                "rate", rate, "limit", "100000",
            ])?;
        }
    }
    Ok(Some(sim))
}

impl Drop for Sim {
    fn drop(&mut self) {
        for n in [Node::Dealer, Node::P0, Node::P1] {
            let _ = run(&["ip", "netns", "del", &self.ns(n)]);
        }
    }
}
