//! Pooling heads over `batch` texts of `seq` rows each: the mean over the real tokens
//! (sentence embeddings), with a public or a secret token count, and BERT's CLS pooler
//! (dense + tanh) followed by the classifier.

use crate::arena::Arena;
use crate::dealer::Dealer;
use crate::error::{check_len, Error, Result};
use crate::kernel::MatMul;
use crate::protocols::weight::{self, OwnedWeight};
use crate::protocols::{matmul, tanh, trunc};
use crate::session::Session;
use crate::share::AShare;
use crate::transport::Transport;

/// Mean of each text's rows of `x` (`batch x seq` rows of `h`) whose flag in `keep` is set
/// (`None`: all rows). The counts are public; one truncation round, `ceil(batch h / 8)`
/// bytes.
pub fn mean_pool<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    batch: usize,
    h: usize,
    keep: Option<&[bool]>,
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    check_len("mean pool output", batch * h, out.len())?;
    let seq = if batch == 0 { 0 } else { x.len() / (batch * h) };
    check_len("mean pool input", batch * seq * h, x.len())?;
    if let Some(k) = keep {
        check_len("mean pool flags", batch * seq, k.len())?;
    }
    let xs = AShare::raw_slice(x);
    let o = AShare::raw_slice_mut(out);
    o.fill(0);
    for b in 0..batch {
        let rows = (b * seq..(b + 1) * seq).filter(|r| keep.is_none_or(|k| k[*r]));
        let ob = &mut o[b * h..(b + 1) * h];
        let mut count = 0usize;
        for r in rows {
            crate::ring::add_assign(ob, &xs[r * h..(r + 1) * h]);
            count += 1;
        }
        if count == 0 {
            return Err(Error::Param("mean pooling over zero tokens"));
        }
        crate::ring::scale_assign(ob, s.encoding().encode(1.0 / count as f64)?);
    }
    trunc::trunc(s, out, scratch)
}

/// Scratch words for [`mean_pool_weighted`].
pub fn weighted_scratch_words(batch: usize, seq: usize, h: usize) -> usize {
    matmul::batch_scratch_words(batch, 1, seq, h)
}

/// Weighted sum of each text's rows, `out_b = sum_r w_{b,r} x_{b,r}`, with secret weights
/// `w` (`batch x seq` fixed-point shares; P1 inputs `w = m / count` from its key mask `m`,
/// so the mean runs over a token count P0 never learns). One batched product: 2 rounds,
/// `8 batch seq (1 + h) + ceil(batch h / 8)` bytes.
pub fn mean_pool_weighted<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    x: &[AShare],
    batch: usize,
    seq: usize,
    h: usize,
    w: &[AShare],
    out: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    check_len("pooling weights", batch * seq, w.len())?;
    matmul::matmul_batch(s, batch, 1, seq, h, w, x, out, scratch)
}

/// Scratch words for [`cls_head`] of `batch` texts.
pub fn cls_scratch_words(batch: usize, h: usize, labels: usize) -> usize {
    2 * batch * h
        + weight::owned_scratch_words(batch, h, h.max(labels))
            .max(tanh::scratch_words(batch * h, tanh::DEFAULT_BITS))
}

/// CLS pooler and classifier: `logits = tanh(cls Wp + bp) Wc + bc`, `cls` being each
/// text's first row (`batch x h`).
pub fn cls_head<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    cls: &[AShare],
    pooler: &OwnedWeight<'_>,
    pooler_bias: &[AShare],
    classifier: &OwnedWeight<'_>,
    classifier_bias: &[AShare],
    logits: &mut [AShare],
    scratch: &mut [u64],
) -> Result<()> {
    let h = pooler.rows();
    let batch = cls.len() / h.max(1);
    check_len("classifier input", batch * h, cls.len())?;
    let mut ar = Arena::new(scratch);
    let p = AShare::from_raw_slice_mut(ar.take(batch * h)?);
    weight::apply_owned(s, pooler, cls, p, ar.sub().rest())?;
    for (i, v) in p.iter_mut().enumerate() {
        *v += pooler_bias[i % h];
    }
    let t = AShare::from_raw_slice_mut(ar.take(batch * h)?);
    tanh::tanh(s, p, tanh::DEFAULT_BITS, t, ar.sub().rest())?;
    weight::apply_owned(s, classifier, t, logits, ar.rest())?;
    let labels = classifier.cols();
    for (i, v) in logits.iter_mut().enumerate() {
        *v += classifier_bias[i % labels];
    }
    Ok(())
}
