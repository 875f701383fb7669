//! Pooling heads: mean over the real tokens (sentence embeddings) and BERT's CLS pooler
//! (dense + tanh) followed by the classifier.

use crate::arena::Arena;
use crate::dealer::Dealer;
use crate::error::{check_len, Error, Result};
use crate::kernel::MatMul;
use crate::protocols::weight::{self, Prepared, SharedWeight};
use crate::protocols::{tanh, trunc};
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

/// Mean of the rows of `x` (`seq x h`) whose flag in `keep` is set (`None`: all rows).
/// The count is public; one truncation round, `ceil(h/8)` bytes.
pub fn mean_pool<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    h: usize,
    keep: Option<&[bool]>,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let seq = x.len() / h;
    check_len("mean pool output", h, out.len())?;
    let count = (0..seq).filter(|r| keep.is_none_or(|k| k[*r])).count();
    if count == 0 {
        return Err(Error::Param("mean pooling over zero tokens"));
    }
    let o = AShare::raw_slice_mut(out);
    o.fill(0);
    let xs = AShare::raw_slice(x);
    for r in 0..seq {
        if keep.is_none_or(|k| k[r]) {
            crate::ring::add_assign(o, &xs[r * h..(r + 1) * h]);
        }
    }
    let inv = s.encoding().encode(1.0 / count as f64)?;
    crate::ring::scale_assign(o, inv);
    trunc::trunc(s, out, scratch)
}

/// Scratch words for [`cls_head`].
pub fn cls_scratch_words(h: usize, labels: usize) -> usize {
    2 * h
        + weight::apply_scratch_words(1, h, h.max(labels))
        + tanh::scratch_words(h, tanh::DEFAULT_BITS)
}

/// CLS pooler and classifier: `logits = tanh(x_0 Wp + bp) Wc + bc`.
pub fn cls_head<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    pooler: &SharedWeight<'_>,
    pooler_prep: Prepared<'_>,
    pooler_bias: &[AShare],
    classifier: &SharedWeight<'_>,
    classifier_prep: Prepared<'_>,
    classifier_bias: &[AShare],
    logits: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let h = pooler.rows();
    let mut ar = Arena::new(scratch);
    let p = AShare::from_raw_slice_mut(ar.take(h)?);
    weight::apply(s, pooler, pooler_prep, &x[..h], p, ar.sub().rest())?;
    for (v, b) in p.iter_mut().zip(pooler_bias) {
        *v += *b;
    }
    let t = AShare::from_raw_slice_mut(ar.take(h)?);
    tanh::tanh(s, p, tanh::DEFAULT_BITS, t, ar.sub().rest())?;
    weight::apply(s, classifier, classifier_prep, t, logits, ar.rest())?;
    for (v, b) in logits.iter_mut().zip(classifier_bias) {
        *v += *b;
    }
    Ok(())
}
