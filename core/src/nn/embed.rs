//! Token embeddings with private token ids.
//!
//! P1 (the data owner) holds the one-hot matrix `X (rows x V)` of its token ids in the
//! clear; the embedding rows are the product `X W_emb` with the table P0 owns
//! ([`weight::apply_owned_onehot`]: P1 opens `X - A mod 2^32` to P0 directly, no input
//! sharing, and a one-hot integer times a fixed-point table needs no truncation). Online
//! this sends `4 rows V` bytes from P1 (122 KB per token for BERT's 30522-entry
//! vocabulary), the cost that grows with vocabulary x tokens, and costs P0 one
//! `rows x V x H` product. Positions and token types are public, so P0 adds
//! their (plaintext) embeddings to its share; then LayerNorm.

use crate::dealer::Dealer;
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::protocols::layernorm;
use crate::protocols::weight::{self, OwnedWeight};
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

/// Scratch words for [`embed`] of `rows` tokens.
pub fn scratch_words(rows: usize, vocab: usize, hidden: usize, f: u32) -> usize {
    rows * hidden
        + weight::owned_scratch_words(rows, vocab, hidden)
            .max(layernorm::scratch_words(rows, hidden, f))
}

/// `out = LayerNorm(onehot W_emb + public)` for `rows` tokens. `onehot` (`rows x V`, ring
/// 0/1) is P1's (`None` at P0); `public` (`rows x H`, position plus token-type embeddings
/// in fixed point) is P0's (ignored at P1).
pub fn embed<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    table: &OwnedWeight<'_>,
    rows: usize,
    onehot: Option<&[u64]>,
    public: &[u64],
    ln_gamma: &[AShare],
    ln_beta: &[AShare],
    eps: f64,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let h = table.cols();
    check_len("embedding output", rows * h, out.len())?;
    let mut ar = crate::arena::Arena::new(scratch);
    let sum = AShare::from_raw_slice_mut(ar.take(rows * h)?);
    weight::apply_owned_onehot(s, table, rows, onehot, sum, ar.sub().rest())?;
    if s.party() == PartyId::P0 {
        check_len("public embeddings", rows * h, public.len())?;
        crate::ring::add_assign(AShare::raw_slice_mut(sum), public);
    }
    layernorm::layernorm(s, rows, h, sum, ln_gamma, ln_beta, eps, out, ar.rest())
}
