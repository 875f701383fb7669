//! Control messages of a session after setup (postcard, in `Control` frames).
//!
//! P1 drives: it orders preprocessing from D ([`ToDealer`]) and tells P0 to prepare the
//! same passes and to run them ([`ToP0`]); P0 answers each request ([`FromP0`]).

use serde::{Deserialize, Serialize};

use super::PassShape;

/// P1 to P0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToP0 {
    /// Prepare `count` passes from `first` of preprocessing `prep` (issued by D) for
    /// `shape`; `plan` is the hash of P1's plan, which P0 checks against its own.
    Prepare {
        /// Preprocessing id.
        prep: u64,
        /// First pass index.
        first: u32,
        /// Passes.
        count: u32,
        /// Shape of every pass.
        shape: PassShape,
        /// Plan hash.
        plan: u64,
    },
    /// Run pass `index` of `prep` now (P0 answers [`FromP0::Ready`] once its share is
    /// ready, then both start the online phase).
    Infer {
        /// Preprocessing id.
        prep: u64,
        /// Pass index.
        index: u32,
    },
    /// Stop or restart drawing passes (benchmarks measure the online phase alone).
    Pause(bool),
    /// Report when every ordered pass is drawn ([`FromP0::Idle`]).
    WaitIdle,
    /// End of the session; `keep` asks P0 to keep the session's state for a resume.
    Bye {
        /// Keep the state.
        keep: bool,
    },
}

/// P0 to P1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromP0 {
    /// The order is accepted.
    Accepted,
    /// P0's share of the pass is ready; the online phase starts.
    Ready {
        /// P0's seconds to draw its share of this pass.
        offline_seconds: f64,
    },
    /// Every ordered pass is drawn.
    Idle,
}

/// P1 to D after the setup's live stream ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToDealer {
    /// A new preprocessing of `count` passes of a plan of `requests` requests (sent next,
    /// one `DealerRequest` frame each) whose hash is `plan`. D answers with
    /// [`FromDealer::Preprocessing`].
    Preprocess {
        /// Plan hash.
        plan: u64,
        /// Requests per pass.
        requests: u32,
        /// Passes.
        count: u32,
    },
    /// Stream the corrections of pass `index` of `prep`.
    Pass {
        /// Preprocessing id.
        prep: u64,
        /// Pass index.
        index: u32,
    },
    /// End of the session; `keep` asks D to keep its state for a resume.
    Bye {
        /// Keep the state.
        keep: bool,
    },
}

/// D to P1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromDealer {
    /// The preprocessing id of a [`ToDealer::Preprocess`].
    Preprocessing {
        /// The id.
        prep: u64,
    },
}
