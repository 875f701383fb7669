//! Token embeddings with private token ids.
//!
//! P1 (the data owner) shares the one-hot matrix `X (seq x V)` of its token ids (input
//! sharing: no communication); the embedding rows are the weight product `X W_emb`
//! ([`crate::protocols::weight`], prepared without truncation: a one-hot integer times a
//! fixed-point table is already at `f` bits). Online this opens `E = X - A`: `8 seq V`
//! bytes per party, the cost that grows with vocabulary x tokens (244 KB per token for
//! BERT's 30522-entry vocabulary). Positions and
//! token types are public, so P0 adds their (plaintext) embeddings to its share; then
//! LayerNorm.

use crate::dealer::Dealer;
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::protocols::layernorm;
use crate::protocols::weight::{self, Prepared, SharedWeight};
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

/// Scratch words for [`embed`].
pub fn scratch_words(seq: usize, vocab: usize, hidden: usize, f: u32) -> usize {
    seq * hidden
        + weight::apply_scratch_words(seq, vocab, hidden)
            .max(layernorm::scratch_words(seq, hidden, f))
}

/// `out = LayerNorm(onehot W_emb + public)`, `public` (`seq x hidden`, position plus
/// token-type embeddings in fixed point) added by P0 only (ignored at P1).
pub fn embed<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    table: &SharedWeight<'_>,
    prep: Prepared<'_>,
    onehot: &[AShare],
    public: &[u64],
    ln_gamma: &[AShare],
    ln_beta: &[AShare],
    eps: f64,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let h = table.cols();
    let seq = out.len() / h;
    check_len("embedding output", seq * h, out.len())?;
    let mut ar = crate::arena::Arena::new(scratch);
    let sum = AShare::from_raw_slice_mut(ar.take(seq * h)?);
    weight::apply(s, table, prep, onehot, sum, ar.sub().rest())?;
    if s.party() == PartyId::P0 {
        check_len("public embeddings", seq * h, public.len())?;
        crate::ring::add_assign(AShare::raw_slice_mut(sum), public);
    }
    layernorm::layernorm(s, seq, h, sum, ln_gamma, ln_beta, eps, out, ar.rest())
}
