//! Token embeddings with private token ids.
//!
//! P1 (the data owner) holds its token ids in the clear; the embedding rows are looked up
//! in the table P0 owns by [`lookup::lookup`]: P1 opens two masked one-hot factors of each
//! id (`2 ceil(sqrt V)` entries of 4 bytes: 1,400 bytes per token for BERT's 30,522-entry
//! vocabulary, where a one-hot row would be 122 KB), no input sharing and no truncation;
//! P0 computes one `S x (S H)` product per token modulo `2^32` and both parties lift the
//! result to the 64-bit ring (one round, `H / 8` bytes per token each). Positions and
//! token types are public, so P0 adds their (plaintext) embeddings to its share; then
//! LayerNorm.

use crate::dealer::Dealer;
use crate::error::{check_len, Result};
use crate::kernel::MatMul;
use crate::party::PartyId;
use crate::protocols::weight::OwnedWeight;
use crate::protocols::{layernorm, lookup};
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

/// Scratch words for [`embed`] of `rows` tokens.
pub fn scratch_words(rows: usize, vocab: usize, hidden: usize, f: u32) -> usize {
    rows * hidden
        + lookup::scratch_words(rows, vocab, hidden).max(layernorm::scratch_words(rows, hidden, f))
}

/// `out = LayerNorm(W_emb[ids] + public)` for `rows` tokens. `ids` are P1's (`None` at P0;
/// [`lookup::NONE`] for a row with no token, whose lookup is zero); `public` (`rows x H`,
/// position plus token-type embeddings in fixed point) is P0's (ignored at P1).
pub fn embed<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    table: &OwnedWeight<'_>,
    rows: usize,
    ids: Option<&[u32]>,
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
    lookup::lookup(s, table, rows, ids, sum, ar.sub().rest())?;
    if s.party() == PartyId::P0 {
        check_len("public embeddings", rows * h, public.len())?;
        crate::ring::add_assign(AShare::raw_slice_mut(sum), public);
    }
    layernorm::layernorm(s, rows, h, sum, ln_gamma, ln_beta, eps, out, ar.rest())
}
