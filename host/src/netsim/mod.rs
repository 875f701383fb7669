//! Simulated networks for benchmarks: the three endpoints in their own Linux network
//! namespaces, joined pairwise by veth pairs (P0-P1, P0-D, P1-D), every link shaped with
//! `tc netem` in both directions (needs root: `ip netns`, `tc`). Where that is not possible
//! (no root, or a kernel without the `netem` qdisc, as in some virtual machines), each link
//! is a shaped userspace relay on 127.0.0.1 instead ([`relay`]), with the same rate and
//! delay; the benchmark's JSON says which (`net_emulation`).
//!
//! | profile | rate | delay each way |
//! |---|---|---|
//! | `lan` | 1 Gbit/s | 0.25 ms |
//! | `wan` | 100 Mbit/s | 20 ms |

pub mod relay;

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use relay::{Relay, Shape};

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

    /// The same as a relay's shape.
    fn relay_shape(self) -> Option<Shape> {
        let (rate_bps, delay) = match self {
            Net::Loopback => return None,
            Net::Lan => (1e9, Duration::from_micros(250)),
            Net::Wan => (100e6, Duration::from_millis(20)),
        };
        Some(Shape { rate_bps, delay })
    }
}

/// One simulated network; namespaces are removed and relays stopped on drop.
pub enum Sim {
    /// Namespaces and veth pairs shaped by `tc netem`.
    Namespaces(Namespaces),
    /// Shaped userspace relays on 127.0.0.1.
    Relays {
        /// The shape of every link.
        shape: Shape,
        /// Relays started so far.
        relays: Vec<Relay>,
    },
}

/// The namespaces of one simulated network.
pub struct Namespaces {
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
    /// What emulates the network (`netem` or `relay`).
    pub fn emulation(&self) -> &'static str {
        match self {
            Sim::Namespaces(_) => "netem",
            Sim::Relays { .. } => "relay",
        }
    }

    /// The address the processes listen on.
    pub fn listen(&self) -> &'static str {
        match self {
            Sim::Namespaces(_) => "0.0.0.0:0",
            Sim::Relays { .. } => "127.0.0.1:0",
        }
    }

    /// The address at which `from` reaches `to`, which listens on `port`.
    pub fn route(&mut self, from: Node, to: Node, port: u16) -> Result<String> {
        match self {
            Sim::Namespaces(_) => Ok(format!("{}:{port}", Namespaces::addr(from, to))),
            Sim::Relays { shape, relays } => {
                let r = Relay::start(([127, 0, 0, 1], port).into(), *shape)?;
                let addr = format!("127.0.0.1:{}", r.port());
                relays.push(r);
                Ok(addr)
            }
        }
    }

    /// A command that runs `program` as `n` (inside its namespace, if any).
    pub fn command(&self, n: Node, program: &std::path::Path) -> Command {
        match self {
            Sim::Namespaces(ns) => ns.command(n, program),
            Sim::Relays { .. } => Command::new(program),
        }
    }
}

impl Namespaces {
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

/// Sets up the shaped links of `net` (`None` for loopback): namespaces and `tc netem` where
/// this process may and the kernel can, else userspace relays (saying so on stderr).
pub fn setup(net: Net) -> Result<Option<Sim>> {
    let Some(shape) = net.relay_shape() else {
        return Ok(None);
    };
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .context("running id -u")?;
    let why = if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        "not root".to_string()
    } else {
        match namespaces(net) {
            Ok(ns) => return Ok(Some(Sim::Namespaces(ns))),
            Err(e) => format!("{e:#}"),
        }
    };
    eprintln!(
        "network namespaces with tc netem unavailable ({why}): shaping every link with a \
         userspace relay on 127.0.0.1 instead (same rate and delay)"
    );
    Ok(Some(Sim::Relays {
        shape,
        relays: Vec::new(),
    }))
}

fn namespaces(net: Net) -> Result<Namespaces> {
    let (rate, delay) = net.shape().context("loopback has no shape")?;
    let sim = Namespaces {
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
            let ip = format!("{}/24", Namespaces::addr(other, node));
            run(&["ip", "-n", &ns, "addr", "add", &ip, "dev", dev])?;
            run(&["ip", "-n", &ns, "link", "set", dev, "up"])?;
            run(&[
                "tc", "-n", &ns, "qdisc", "add", "dev", dev, "root", "netem", "delay", delay,
                "rate", rate, "limit", "100000",
            ])?;
        }
    }
    Ok(sim)
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in [Node::Dealer, Node::P0, Node::P1] {
            let _ = run(&["ip", "netns", "del", &self.ns(n)]);
        }
    }
}
