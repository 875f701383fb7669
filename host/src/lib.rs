//! # secformer-host
//!
//! secformer on a host machine: the TCP transport ([`tcp`]), the dealer service and
//! party connection over TCP ([`net`]), authenticated encrypted links ([`link`]), a SIMD matmul kernel ([`kernel`]), the jobs a
//! party runs ([`jobs`]) and the benchmarks ([`bench`]). The `secformer` binary is the
//! command-line front end.
#![deny(missing_docs)]

pub mod bench;
pub mod bench_gemm;
pub mod bert;
pub mod cli;
pub mod dealer;
pub mod eval;
pub mod firmware;
pub mod jobs;
pub mod kernel;
pub mod link;
pub mod model;
pub mod net;
pub mod netsim;
pub mod ops;
pub mod service;
pub mod tcp;
