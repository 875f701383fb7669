//! Local linear operations on shares: no communication, except where a fixed-point
//! product with a public value needs truncation (then see [`super::trunc`]).
//!
//! Valid input range: exact in `Z_2^64` for any inputs; results mean what they should while
//! they stay inside the encoding's `|x| < 2^47` (at `f = 16`).

use crate::dealer::Dealer;
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

use super::trunc;

/// `out = x + y`.
pub fn add(x: &[AShare], y: &[AShare], out: &mut [AShare]) -> Result<()> {
    check_len("add", x.len(), y.len())?;
    check_len("add output", x.len(), out.len())?;
    for ((o, a), b) in out.iter_mut().zip(x).zip(y) {
        *o = *a + *b;
    }
    Ok(())
}

/// `out = x - y`.
pub fn sub(x: &[AShare], y: &[AShare], out: &mut [AShare]) -> Result<()> {
    check_len("sub", x.len(), y.len())?;
    check_len("sub output", x.len(), out.len())?;
    for ((o, a), b) in out.iter_mut().zip(x).zip(y) {
        *o = *a - *b;
    }
    Ok(())
}

/// `x += c` for public ring elements `c` (P0 adds; P1 does nothing).
pub fn add_public(party: PartyId, x: &mut [AShare], c: &[u64]) -> Result<()> {
    check_len("add_public", x.len(), c.len())?;
    if party == PartyId::P0 {
        crate::ring::add_assign(AShare::raw_slice_mut(x), c);
    }
    Ok(())
}

/// `x *= c` for a public ring constant (integer scaling; no truncation).
pub fn mul_public_ring(x: &mut [AShare], c: u64) {
    crate::ring::scale_assign(AShare::raw_slice_mut(x), c);
}

/// `x *= c` for a public real `c` in fixed point, truncated (1 round with faithful
/// truncation, `ceil(n/8)` bytes).
pub fn mul_public_fixed<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &mut [AShare],
    c: f64,
    scratch: &mut [u64],
) -> Result<()> {
    let ce = s.enc.encode(c)?;
    mul_public_ring(x, ce);
    trunc::trunc(s, x, scratch)
}

/// `out = x p` for shared `x (m x k)` and a public matrix `p (k x n)` (ring elements),
/// with no truncation. Local: one matmul.
pub fn matmul_public_ring<K: MatMul>(
    kernel: &K,
    m: usize,
    k: usize,
    n: usize,
    x: &[AShare],
    p: &[u64],
    out: &mut [AShare],
) -> Result<()> {
    check_len("matmul_public left", m * k, x.len())?;
    check_len("matmul_public right", k * n, p.len())?;
    check_len("matmul_public output", m * n, out.len())?;
    kernel.gemm(
        m,
        k,
        n,
        AShare::raw_slice(x),
        p,
        AShare::raw_slice_mut(out),
        false,
    );
    Ok(())
}

/// Fixed-point `out = x p` for a public fixed-point matrix `p`, truncated.
pub fn matmul_public_fixed<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    m: usize,
    k: usize,
    n: usize,
    x: &[AShare],
    p: &[u64],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    matmul_public_ring(&s.kernel, m, k, n, x, p, out)?;
    trunc::trunc(s, out, scratch)
}
