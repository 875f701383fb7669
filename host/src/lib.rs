//! # secformer-host
//!
//! secformer on a host machine: the TCP transport ([`tcp`]), the dealer service and
//! party connection over TCP ([`net`]), a SIMD matmul kernel ([`kernel`]), the jobs a
//! party runs ([`jobs`]) and the benchmarks ([`bench`]). The `secformer` binary is the
//! command-line front end.
#![deny(missing_docs)]

pub mod app;
pub mod bench;
pub mod firmware;
pub mod jobs;
pub mod kernel;
pub mod model;
pub mod net;
pub mod ops;
pub mod secure;
pub mod tcp;
