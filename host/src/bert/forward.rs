//! The secure forward pass as one party: embeddings, encoder layers, pooling or the
//! classification head, and the reveal to P1. Both parties run [`forward`]; what differs
//! is the [`Role`]: P0 brings the public embeddings and learns nothing, P1 brings its
//! token ids and padding mask and learns the result.
//!
//! The pass is generic over the session's dealer: prepared material read from the pool
//! ([`secformer_core::dealer::material::PassReader`]), a live stream (tests), or a plan
//! recorder (a dry run, [`super::plan`]).

use anyhow::{Context, Result};
use secformer_core::dealer::Dealer;
use secformer_core::kernel::MatMul;
use secformer_core::nn::{self, embed, layer, pool, Keys, LayerDims, Probe};
use secformer_core::party::PartyId;
use secformer_core::prg::words_for_bits;
use secformer_core::protocols::{input, lookup, reveal};
use secformer_core::session::Session;
use secformer_core::share::AShare;
use secformer_core::transport::Transport;

use super::weights::SessionWeights;
use super::{Lengths, ModelShape, PassShape};
use crate::model::Encoding;

/// A party's inputs to a pass and what it gets out of it.
pub trait Role {
    /// What the party learns.
    type Output;

    /// P1's token ids (`rows`, [`lookup::NONE`] for a row of a missing text); `None` at P0.
    fn ids(&self) -> Option<&[u32]>;

    /// P0's position plus token-type embeddings of the pass (`rows x H`); empty at P1.
    fn public(&self) -> &[u64];

    /// P1's key mask (one 0/1 per token) and mean-pooling weights (`mask / count` per
    /// token), for secret lengths; `None` at P0.
    fn padding(&self) -> Option<(&[u64], &[f64])>;

    /// Reveals the output shares (`batch x width`) to P1.
    fn reveal<T: Transport, D: Dealer, K: MatMul>(
        &self,
        s: &mut Session<T, D, K>,
        out: &[AShare],
    ) -> Result<Self::Output>;
}

/// P0's role: public embeddings in, nothing out.
pub struct P0Role<'a> {
    /// Position plus token-type embeddings for every row of the pass.
    pub public: &'a [u64],
}

impl Role for P0Role<'_> {
    type Output = ();
    fn ids(&self) -> Option<&[u32]> {
        None
    }
    fn public(&self) -> &[u64] {
        self.public
    }
    fn padding(&self) -> Option<(&[u64], &[f64])> {
        None
    }
    fn reveal<T: Transport, D: Dealer, K: MatMul>(
        &self,
        s: &mut Session<T, D, K>,
        out: &[AShare],
    ) -> Result<()> {
        reveal::reveal_to(s, PartyId::P1, out, None).context("revealing the result to P1")?;
        Ok(())
    }
}

/// P1's inputs for one pass, in buffers reused from pass to pass.
#[derive(Default)]
pub struct P1Role {
    ids: Vec<u32>,
    mask: Vec<u64>,
    weights: Vec<f64>,
}

impl P1Role {
    /// Loads `texts` (at most `pass.batch`; missing texts are all padding and pooled over
    /// nothing) padded to the bucket with `pad_id`.
    pub fn load(&mut self, m: &ModelShape, pass: &PassShape, texts: &[&Encoding]) -> Result<()> {
        let (rows, v, t) = (pass.rows(), m.vocab, pass.bucket);
        if texts.len() > pass.batch {
            anyhow::bail!("{} texts do not fit a pass of {}", texts.len(), pass.batch);
        }
        self.ids.clear();
        self.ids.resize(rows, lookup::NONE);
        self.mask.clear();
        self.mask.resize(rows, 0);
        self.weights.clear();
        self.weights.resize(rows, 0.0);
        for (b, enc) in texts.iter().enumerate() {
            let n = enc.ids.len();
            if n > t || n == 0 {
                anyhow::bail!("a text of {n} tokens does not fit the bucket of {t}");
            }
            if pass.lengths == Lengths::Public && n != t {
                anyhow::bail!("an exact-length pass of {t} tokens got a text of {n}");
            }
            for r in 0..t {
                // Padding rows take token id 0 ([PAD] in BERT vocabularies); the mask
                // keeps them out of attention and pooling.
                let id = enc.ids.get(r).copied().unwrap_or(0) as usize;
                if id >= v {
                    anyhow::bail!("token id {id} is outside the vocabulary of {v}");
                }
                self.ids[b * t + r] = id as u32;
            }
            for r in 0..n {
                self.mask[b * t + r] = 1;
                self.weights[b * t + r] = 1.0 / n as f64;
            }
        }
        Ok(())
    }
}

impl Role for P1Role {
    type Output = Vec<f64>;
    fn ids(&self) -> Option<&[u32]> {
        Some(&self.ids)
    }
    fn public(&self) -> &[u64] {
        &[]
    }
    fn padding(&self) -> Option<(&[u64], &[f64])> {
        Some((&self.mask, &self.weights))
    }
    fn reveal<T: Transport, D: Dealer, K: MatMul>(
        &self,
        s: &mut Session<T, D, K>,
        out: &[AShare],
    ) -> Result<Vec<f64>> {
        let mut o = vec![0u64; out.len()];
        reveal::reveal_to(s, PartyId::P1, out, Some(&mut o)).context("receiving the result")?;
        let e = s.encoding();
        Ok(o.iter().map(|x| e.decode(*x)).collect())
    }
}

/// P0's public embeddings for a pass: positions `0..bucket` of every text.
pub fn public_embeddings(positions: &[u64], hidden: usize, pass: &PassShape, out: &mut Vec<u64>) {
    let per_text = &positions[..pass.bucket * hidden];
    out.clear();
    for _ in 0..pass.batch {
        out.extend_from_slice(per_text);
    }
}

/// Buffers of a pass, reused across passes of the same shape.
#[derive(Default)]
pub struct Buffers {
    x: Vec<AShare>,
    scratch: Vec<u64>,
    mask_bits: Vec<u64>,
    mask_values: Vec<AShare>,
    pool_weights: Vec<AShare>,
    out: Vec<AShare>,
}

fn resize<T: Default + Clone>(v: &mut Vec<T>, n: usize) {
    if v.len() != n {
        v.resize(n, T::default());
    }
}

/// Scratch words of a pass (the largest of its steps).
pub fn scratch_words(m: &ModelShape, pass: &PassShape, f: u32) -> usize {
    let d = dims(m, pass);
    let rows = pass.rows();
    let products = layer::owned_products_scratch(rows, m.hidden, m.inter);
    layer::layer_scratch_words(products, &d, m.softmax(), f)
        .max(embed::scratch_words(rows, m.vocab, m.hidden, f))
        .max(pool::cls_scratch_words(
            pass.batch,
            m.hidden,
            m.labels.unwrap_or(1),
        ))
        .max(pool::weighted_scratch_words(
            pass.batch,
            pass.bucket,
            m.hidden,
        ))
        .max(rows + 3 * words_for_bits(rows))
}

fn dims(m: &ModelShape, pass: &PassShape) -> LayerDims {
    LayerDims {
        batch: pass.batch,
        seq: pass.bucket,
        hidden: m.hidden,
        heads: m.heads,
        inter: m.inter,
    }
}

impl Buffers {
    /// Sizes the buffers for `pass` (and touches them: the first write to fresh pages is
    /// where the kernel zeroes them). The sessions call it when a pass shape is ordered,
    /// so that a session's first online pass does not pay for it; [`forward`] calls it
    /// again, which is free once the sizes match.
    pub(crate) fn fit(&mut self, m: &ModelShape, pass: &PassShape, f: u32) {
        let rows = pass.rows();
        resize(&mut self.x, rows * m.hidden);
        resize(&mut self.scratch, scratch_words(m, pass, f));
        resize(&mut self.mask_bits, words_for_bits(rows));
        resize(&mut self.mask_values, rows);
        resize(&mut self.pool_weights, rows);
        resize(&mut self.out, pass.batch * m.output_width());
    }
}

/// Shares P1's padding mask (XOR bits, additive 0/1) and pooling weights.
fn share_padding<T: Transport, D: Dealer, K: MatMul, R: Role>(
    s: &mut Session<T, D, K>,
    role: &R,
    b: &mut Buffers,
) -> Result<()> {
    let pad = role.padding();
    b.mask_bits.fill(0);
    if let Some((mask, _)) = pad {
        // P1 holds the bits themselves as its XOR share; P0's share is zero.
        for (i, m) in mask.iter().enumerate() {
            b.mask_bits[i / 64] |= (m & 1) << (i % 64);
        }
    }
    input::share_input(s, PartyId::P1, pad.map(|p| p.0), &mut b.mask_values)?;
    input::share_input_f64(s, PartyId::P1, pad.map(|p| p.1), &mut b.pool_weights)?;
    Ok(())
}

/// Runs one pass. `probe` receives the component boundaries.
pub fn forward<T: Transport, D: Dealer, K: MatMul, R: Role>(
    s: &mut Session<T, D, K>,
    w: &SessionWeights<'_>,
    m: &ModelShape,
    pass: &PassShape,
    role: &R,
    probe: &mut dyn Probe,
    b: &mut Buffers,
) -> Result<R::Output> {
    pass.check(m)?;
    b.fit(m, pass, s.encoding().frac_bits());
    probe.mark(nn::Component::Other, s.peer_stats());
    let secret = pass.lengths == Lengths::Secret;
    if secret {
        share_padding(s, role, b)?;
    }
    let rows = pass.rows();
    embed::embed(
        s,
        &w.embedding,
        rows,
        role.ids(),
        role.public(),
        w.emb_ln.0,
        w.emb_ln.1,
        m.eps,
        &mut b.x,
        &mut b.scratch,
    )
    .context("embeddings")?;
    let d = dims(m, pass);
    let keys = if secret {
        Keys::Shared {
            bits: &b.mask_bits,
            values: &b.mask_values,
        }
    } else {
        Keys::All
    };
    for (l, (products, params)) in w.layers.iter().enumerate() {
        let mut products = *products;
        nn::encoder_layer(
            s,
            &mut products,
            params,
            &d,
            &mut b.x,
            keys,
            m.softmax(),
            probe,
            &mut b.scratch,
        )
        .with_context(|| format!("layer {l}"))?;
        super::observe::layer_done(l + 1, w.layers.len());
    }
    probe.mark(nn::Component::Other, s.peer_stats());
    head(s, w, m, pass, b).context("pooling")?;
    let out = role.reveal(s, &b.out)?;
    probe.mark(nn::Component::End, s.peer_stats());
    Ok(out)
}

/// Pooling or the classification head into `b.out`.
fn head<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    w: &SessionWeights<'_>,
    m: &ModelShape,
    pass: &PassShape,
    b: &mut Buffers,
) -> Result<()> {
    let h = m.hidden;
    match &w.head {
        Some(hd) => {
            let t = pass.bucket;
            let mut cls = vec![AShare::default(); pass.batch * h];
            for (i, row) in cls.chunks_mut(h).enumerate() {
                row.copy_from_slice(&b.x[i * t * h..i * t * h + h]);
            }
            pool::cls_head(
                s,
                &cls,
                &hd.pooler,
                hd.pooler_bias,
                &hd.classifier,
                hd.classifier_bias,
                &mut b.out,
                &mut b.scratch,
            )?;
        }
        None if pass.lengths == Lengths::Secret => pool::mean_pool_weighted(
            s,
            &b.x,
            pass.batch,
            pass.bucket,
            h,
            &b.pool_weights,
            &mut b.out,
            &mut b.scratch,
        )?,
        None => pool::mean_pool(s, &b.x, pass.batch, h, None, &mut b.out, &mut b.scratch)?,
    }
    Ok(())
}
