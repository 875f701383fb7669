//! Per-component time, bytes and rounds of a forward pass (SecFormer's Table 3 categories).

use std::time::Instant;

use secformer_core::nn::{Component, Probe};
use secformer_core::transport::Stats;
use serde::{Deserialize, Serialize};

/// Time, bytes and rounds of one component of a forward pass.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ComponentCost {
    /// Seconds.
    pub seconds: f64,
    /// Wire bytes this party sent.
    pub bytes: u64,
    /// Rounds.
    pub rounds: u64,
}

impl std::ops::AddAssign for ComponentCost {
    fn add_assign(&mut self, o: Self) {
        self.seconds += o.seconds;
        self.bytes += o.bytes;
        self.rounds += o.rounds;
    }
}

/// Per-component costs.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Components {
    /// Weight products and attention matmuls.
    pub linear: ComponentCost,
    /// Softmax (with the padding mask).
    pub softmax: ComponentCost,
    /// GeLU.
    pub gelu: ComponentCost,
    /// LayerNorm.
    pub layernorm: ComponentCost,
    /// Embedding, pooling, heads, reveal.
    pub others: ComponentCost,
}

impl Components {
    /// The components with their names, in report order.
    pub fn named(&self) -> [(&'static str, ComponentCost); 5] {
        [
            ("Linear", self.linear),
            ("Softmax", self.softmax),
            ("GeLU", self.gelu),
            ("LayerNorm", self.layernorm),
            ("Others", self.others),
        ]
    }

    /// Adds `o` component-wise.
    pub fn add(&mut self, o: &Components) {
        self.linear += o.linear;
        self.softmax += o.softmax;
        self.gelu += o.gelu;
        self.layernorm += o.layernorm;
        self.others += o.others;
    }
}

/// A [`Probe`] that attributes time, bytes and rounds to components.
#[derive(Default)]
pub struct Profiler {
    current: Option<(Component, Instant, Stats)>,
    /// The totals so far.
    pub acc: Components,
}

impl Profiler {
    fn slot(&mut self, c: Component) -> Option<&mut ComponentCost> {
        Some(match c {
            Component::Linear => &mut self.acc.linear,
            Component::Softmax => &mut self.acc.softmax,
            Component::Gelu => &mut self.acc.gelu,
            Component::LayerNorm => &mut self.acc.layernorm,
            Component::Other => &mut self.acc.others,
            Component::End => return None,
        })
    }
}

impl Probe for Profiler {
    fn mark(&mut self, next: Component, peer: Stats) {
        if let Some((c, t, st)) = self.current.take() {
            let d = peer.since(&st);
            let el = t.elapsed().as_secs_f64();
            if let Some(slot) = self.slot(c) {
                slot.seconds += el;
                slot.bytes += d.bytes_sent;
                slot.rounds += d.rounds;
            }
        }
        if next != Component::End {
            self.current = Some((next, Instant::now(), peer));
        }
    }
}
