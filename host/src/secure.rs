//! Secure BERT inference: P0 (model owner) shares the weights once per session, P1 (data
//! owner) shares each input's one-hot token matrix, and only P1 learns the pooled
//! embedding or the logits.
//!
//! What is public: the model's architecture (config), the number of tokens of each input
//! (P1 sends it; padding to a fixed length would hide it at proportional cost), and the
//! number of inferences. What stays private: the weights (to P1), the token ids and every
//! intermediate value (to P0), and everything from the dealer.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use secformer_core::dealer::Dealer;
use secformer_core::kernel::MatMul;
use secformer_core::nn::{self, layer, Component, ParamLayout, Probe, Softmax};
use secformer_core::party::PartyId;
use secformer_core::protocols::{input, reveal, weight};
use secformer_core::session::Session;
use secformer_core::share::AShare;
use secformer_core::transport::{FrameKind, Stats, Transport};
use serde::Serialize;

use crate::model::{BertConfig, BertWeights, Encoding, Pooling, SoftmaxKind};

/// Weight id of the word-embedding table.
const EMB_ID: u32 = 1_000_000;
const POOLER_ID: u32 = 1_000_001;
const CLASSIFIER_ID: u32 = 1_000_002;

/// Time, bytes and rounds of one component of a forward pass.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ComponentCost {
    /// Seconds.
    pub seconds: f64,
    /// Wire bytes this party sent.
    pub bytes: u64,
    /// Rounds.
    pub rounds: u64,
}

/// Per-component costs, in SecFormer's Table 3 categories.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Components {
    /// Weight products and attention matmuls.
    pub linear: ComponentCost,
    /// Softmax.
    pub softmax: ComponentCost,
    /// GeLU.
    pub gelu: ComponentCost,
    /// LayerNorm.
    pub layernorm: ComponentCost,
    /// Embedding, pooling, heads, reveal.
    pub others: ComponentCost,
}

struct Profiler {
    current: Option<(Component, Instant, Stats)>,
    acc: Components,
}

impl Profiler {
    fn new() -> Self {
        Profiler {
            current: None,
            acc: Components::default(),
        }
    }
    fn slot(&mut self, c: Component) -> Option<&mut ComponentCost> {
        Some(match c {
            Component::Linear => &mut self.acc.linear,
            Component::Softmax => &mut self.acc.softmax,
            Component::Gelu => &mut self.acc.gelu,
            Component::LayerNorm => &mut self.acc.layernorm,
            Component::Other => &mut self.acc.others,
            Component::End => return None,
        })
    }
}

impl Probe for Profiler {
    fn mark(&mut self, next: Component, peer: Stats) {
        if let Some((c, t, st)) = self.current.take() {
            let d = peer.since(&st);
            let el = t.elapsed().as_secs_f64();
            if let Some(slot) = self.slot(c) {
                slot.seconds += el;
                slot.bytes += d.bytes_sent;
                slot.rounds += d.rounds;
            }
        }
        if next != Component::End {
            self.current = Some((next, Instant::now(), peer));
        }
    }
}

/// The result of one secure inference, as seen by one party.
#[derive(Debug, Clone, Serialize)]
pub struct Inference {
    /// Tokens of the input.
    pub tokens: usize,
    /// Mean-pooled (or CLS-pooled) vector, before any L2 normalization (P1 only).
    pub pooled: Option<Vec<f64>>,
    /// Logits of a classifier (P1 only).
    pub logits: Option<Vec<f64>>,
    /// Seconds of the per-inference preparation (before the input: dealer material and
    /// the weight products' offline matmuls).
    pub offline_seconds: f64,
    /// Seconds from sharing the input to revealing the result.
    pub online_seconds: f64,
    /// Peer traffic of the online phase.
    pub online: Stats,
    /// Dealer traffic of the whole inference (received by this party).
    pub dealer: Stats,
    /// Per-component online costs.
    pub components: Components,
}

/// What one session set up.
#[derive(Debug, Clone, Serialize)]
pub struct SetupReport {
    /// Seconds to share the weights and open their masks.
    pub seconds: f64,
    /// Peer traffic of the setup (this party's sent bytes).
    pub bytes: u64,
}

fn softmax_of(cfg: &BertConfig) -> Softmax {
    match cfg.softmax {
        SoftmaxKind::Exact => Softmax::Exact,
        SoftmaxKind::TwoQuad { c } => Softmax::TwoQuad { c: c as f64 },
    }
}

/// The layer's parameters in [`ParamLayout`] order, `1/sqrt(d)` folded into the query.
fn layer_values(cfg: &BertConfig, w: &crate::model::EncoderLayer) -> Vec<f64> {
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let l = ParamLayout::new(h, i);
    let scale = 1.0 / (cfg.head_dim() as f64).sqrt();
    let mut v = vec![0.0f64; l.total];
    for r in 0..h {
        for c in 0..h {
            v[l.wqkv + r * 3 * h + c] = w.q.w.get(r, c) as f64 * scale;
            v[l.wqkv + r * 3 * h + h + c] = w.k.w.get(r, c) as f64;
            v[l.wqkv + r * 3 * h + 2 * h + c] = w.v.w.get(r, c) as f64;
        }
    }
    for c in 0..h {
        v[l.bqkv + c] = w.q.b[c] as f64 * scale;
        v[l.bqkv + h + c] = w.k.b[c] as f64;
        v[l.bqkv + 2 * h + c] = w.v.b[c] as f64;
    }
    let put = |v: &mut Vec<f64>, off: usize, xs: &[f32]| {
        for (d, x) in v[off..off + xs.len()].iter_mut().zip(xs) {
            *d = *x as f64;
        }
    };
    put(&mut v, l.wo, &w.attn_out.w.data);
    put(&mut v, l.bo, &w.attn_out.b);
    put(&mut v, l.ln1_g, &w.ln1.gamma);
    put(&mut v, l.ln1_b, &w.ln1.beta);
    put(&mut v, l.w1, &w.ffn_in.w.data);
    put(&mut v, l.b1, &w.ffn_in.b);
    put(&mut v, l.w2, &w.ffn_out.w.data);
    put(&mut v, l.b2, &w.ffn_out.b);
    put(&mut v, l.ln2_g, &w.ln2.gamma);
    put(&mut v, l.ln2_b, &w.ln2.beta);
    v
}

fn share_values<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    vals: Option<&[f64]>,
    n: usize,
) -> Result<Vec<AShare>> {
    let mut out = vec![AShare::default(); n];
    input::share_input_f64(s, PartyId::P0, vals, &mut out)
        .context("sharing the model's parameters")?;
    Ok(out)
}

fn f32s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

/// Runs a session: setup, then one inference per encoding that `next` yields (P1) or
/// that P1 announces (P0). `weights` is `Some` at P0 only; `on_result` is called after
/// each inference.
pub fn run_session<T: Transport, D: Dealer, K: MatMul>(
    s: &mut Session<T, D, K>,
    cfg: &BertConfig,
    weights: Option<&BertWeights>,
    mut next: impl FnMut() -> Option<Encoding>,
    mut on_result: impl FnMut(&Inference) -> Result<()>,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<SetupReport> {
    let p0 = s.party() == PartyId::P0;
    if p0 && weights.is_none() {
        bail!("P0 needs the model's weights");
    }
    let (h, i, nl, v) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_hidden_layers,
        cfg.vocab_size,
    );
    let eps = cfg.layer_norm_eps as f64;
    let f = s.encoding().frac_bits();
    let t_setup = Instant::now();
    let st0 = s.peer_stats();

    // Parameter shares (the vectors are used as shares; the matrices, which P0 owns in the
    // clear, go through the owned weight product).
    let enc = s.encoding();
    let encode_all = |vals: &[f64]| -> Result<Vec<u64>> {
        vals.iter()
            .map(|x| {
                enc.encode(*x)
                    .map_err(|e| anyhow::anyhow!("a weight does not fit in fixed point: {e}"))
            })
            .collect()
    };
    let mut params = Vec::with_capacity(nl);
    let mut plains: Vec<Option<Vec<u64>>> = Vec::with_capacity(nl);
    for l in 0..nl {
        progress("sharing weights", l, nl + 1);
        let vals = weights.map(|w| layer_values(cfg, &w.layers[l]));
        params.push(share_values(
            s,
            vals.as_deref(),
            nn::layer_param_words(h, i),
        )?);
        plains.push(vals.as_deref().map(encode_all).transpose()?);
    }
    let emb_plain = weights
        .map(|w| encode_all(&f32s(&w.word_emb.data)))
        .transpose()?;
    let emb_ln_vals = weights.map(|w| {
        let mut x = f32s(&w.emb_ln.gamma);
        x.extend(f32s(&w.emb_ln.beta));
        x
    });
    let emb_ln = share_values(s, emb_ln_vals.as_deref(), 2 * h)?;
    let cls = cfg.pooling == Pooling::Cls && cfg.num_labels.is_some();
    let labels = cfg.num_labels.unwrap_or(0);
    let head_vals = weights.map(|w| {
        let (p, c) = (w.pooler.as_ref(), w.classifier.as_ref());
        let mut x = Vec::new();
        if let (true, Some(p), Some(c)) = (cls, p, c) {
            x.extend(f32s(&p.w.data));
            x.extend(f32s(&p.b));
            x.extend(f32s(&c.w.data));
            x.extend(f32s(&c.b));
        }
        x
    });
    let head_len = if cls {
        h * h + h + h * labels + labels
    } else {
        0
    };
    if let Some(hv) = &head_vals {
        if hv.len() != head_len {
            bail!("the classifier checkpoint lacks its pooler or classifier weights");
        }
    }
    let head = share_values(s, head_vals.as_deref(), head_len)?;
    let head_plain = head_vals.as_deref().map(encode_all).transpose()?;

    // Open the weights' masks.
    let mut scratch =
        vec![0u64; layer::setup_scratch_words(h, i).max(weight::setup_scratch_words(v, h))];
    let mut storages: Vec<Vec<u64>> = (0..nl)
        .map(|_| vec![0u64; layer::layer_storage_words(h, i)])
        .collect();
    let mut layers = Vec::with_capacity(nl);
    for (l, ((p, st), plain)) in params
        .iter()
        .zip(storages.iter_mut())
        .zip(&plains)
        .enumerate()
    {
        progress("opening weight masks", l, nl + 1);
        layers.push(
            nn::setup_layer_owned(
                s,
                4 * l as u32,
                h,
                i,
                eps,
                p,
                plain.as_deref(),
                st,
                &mut scratch,
            )
            .context("layer setup")?,
        );
    }
    drop(plains);
    let (mut emb_wp, mut emb_f) = (vec![0u64; v * h], vec![0u64; v * h]);
    let emb = weight::setup_owned(
        s,
        EMB_ID,
        v,
        h,
        emb_plain.as_deref(),
        &mut emb_wp,
        &mut emb_f,
    )?;
    drop(emb_plain);
    let (mut hw, mut hf) = (
        vec![0u64; h * h + h * labels],
        vec![0u64; h * h + h * labels],
    );
    let heads_w = if cls {
        let (wp, wc) = hw.split_at_mut(h * h);
        let (fp, fc) = hf.split_at_mut(h * h);
        let hp = head_plain.as_deref();
        let pw = weight::setup_owned(s, POOLER_ID, h, h, hp.map(|p| &p[..h * h]), wp, fp)?;
        let cw = weight::setup_owned(
            s,
            CLASSIFIER_ID,
            h,
            labels,
            hp.map(|p| &p[h * h + h..h * h + h + h * labels]),
            wc,
            fc,
        )?;
        Some((pw, cw))
    } else {
        None
    };
    progress("opening weight masks", nl + 1, nl + 1);
    let setup = SetupReport {
        seconds: t_setup.elapsed().as_secs_f64(),
        bytes: s.peer_stats().since(&st0).bytes_sent,
    };

    loop {
        // P1 announces the next input's token count (public); 0 ends the session.
        let enc = if p0 { None } else { next() };
        let seq: usize = if p0 {
            let n: u32 = s
                .peer_mut()
                .recv_msg(FrameKind::Control)
                .context("waiting for P1's next request")?;
            n as usize
        } else {
            let n = enc.as_ref().map_or(0, |e| e.ids.len());
            s.peer_mut().send_msg(FrameKind::Control, &(n as u32))?;
            n
        };
        if seq == 0 {
            break;
        }
        if seq > cfg.max_position_embeddings {
            bail!(
                "input of {seq} tokens exceeds the model's {} positions",
                cfg.max_position_embeddings
            );
        }
        let d0 = s.dealer_stats();
        // Offline: prepare every weight product.
        let t_off = Instant::now();
        let mut pstore: Vec<Vec<u64>> = (0..nl)
            .map(|_| vec![0u64; layer::prepare_words(seq, h, i)])
            .collect();
        let mut preps = Vec::with_capacity(nl);
        for (lay, st) in layers.iter().zip(pstore.iter_mut()) {
            preps.push(nn::prepare_layer(s, lay, seq, st)?);
        }
        let mut estore = vec![0u64; weight::prepare_words(seq, v, h)];
        let eprep = weight::prepare_ring(s, &emb, seq, &mut estore)?;
        let mut hstore =
            vec![0u64; weight::prepare_words(1, h, h) + weight::prepare_words(1, h, labels.max(1))];
        let hpreps = match &heads_w {
            Some((pw, cw)) => {
                let (a, b) = hstore.split_at_mut(weight::prepare_words(1, h, h));
                Some((weight::prepare(s, pw, 1, a)?, weight::prepare(s, cw, 1, b)?))
            }
            None => None,
        };
        let offline_seconds = t_off.elapsed().as_secs_f64();

        // Online.
        let mut sync = [0u64; 1];
        s.peer_mut().exchange_u64(&[0], &mut sync)?;
        let on0 = s.peer_stats();
        let t_on = Instant::now();
        let mut prof = Profiler::new();
        prof.mark(Component::Other, s.peer_stats());
        let mut onehot = vec![0u64; seq * v];
        if let Some(e) = &enc {
            for (r, id) in e.ids.iter().enumerate() {
                onehot[r * v + *id as usize] = 1;
            }
        }
        let mut oh = vec![AShare::default(); seq * v];
        input::share_input(s, PartyId::P1, (!p0).then_some(&onehot[..]), &mut oh)?;
        drop(onehot);
        let public: Vec<u64> = match weights {
            Some(w) => {
                let e = s.encoding();
                let mut p = vec![0u64; seq * h];
                for r in 0..seq {
                    for c in 0..h {
                        p[r * h + c] =
                            e.encode(w.pos_emb.get(r, c) as f64 + w.type_emb.get(0, c) as f64)?;
                    }
                }
                p
            }
            None => Vec::new(),
        };
        let mut x = vec![AShare::default(); seq * h];
        let dims = nn::LayerDims {
            seq,
            hidden: h,
            heads: cfg.num_attention_heads,
            inter: i,
        };
        let sm = softmax_of(cfg);
        let mut scratch = vec![
            0u64;
            layer::layer_scratch_words(&dims, sm, f)
                .max(nn::embed::scratch_words(seq, v, h, f))
                .max(nn::pool::cls_scratch_words(h, labels))
        ];
        nn::embed::embed(
            s,
            &emb,
            eprep,
            &oh,
            &public,
            &emb_ln[..h],
            &emb_ln[h..],
            eps,
            &mut x,
            &mut scratch,
        )?;
        for (l, (lay, prep)) in layers.iter().zip(preps).enumerate() {
            progress("layer", l, nl);
            nn::encoder_layer(
                s,
                lay,
                prep,
                &mut x,
                cfg.num_attention_heads,
                None,
                sm,
                &mut prof,
                &mut scratch,
            )?;
        }
        progress("layer", nl, nl);
        prof.mark(Component::Other, s.peer_stats());
        let (pooled, logits) = match (&heads_w, hpreps) {
            (Some((pw, cw)), Some((pp, cp))) => {
                let mut lg = vec![AShare::default(); labels];
                nn::pool::cls_head(
                    s,
                    &x,
                    pw,
                    pp,
                    &head[h * h..h * h + h],
                    cw,
                    cp,
                    &head[h * h + h + h * labels..],
                    &mut lg,
                    &mut scratch,
                )?;
                (None, Some(lg))
            }
            _ => {
                let mut pooled = vec![AShare::default(); h];
                nn::pool::mean_pool(s, &x, h, None, &mut pooled, &mut scratch)?;
                (Some(pooled), None)
            }
        };
        let e = s.encoding();
        let open = |s: &mut Session<T, D, K>, v: &[AShare]| -> Result<Option<Vec<f64>>> {
            if p0 {
                reveal::reveal_to(s, PartyId::P1, v, None)?;
                Ok(None)
            } else {
                let mut o = vec![0u64; v.len()];
                reveal::reveal_to(s, PartyId::P1, v, Some(&mut o))?;
                Ok(Some(o.iter().map(|x| e.decode(*x)).collect()))
            }
        };
        let pooled = match pooled {
            Some(p) => open(s, &p)?,
            None => None,
        };
        let logits = match logits {
            Some(l) => open(s, &l)?,
            None => None,
        };
        prof.mark(Component::End, s.peer_stats());
        let res = Inference {
            tokens: seq,
            pooled,
            logits,
            offline_seconds,
            online_seconds: t_on.elapsed().as_secs_f64(),
            online: s.peer_stats().since(&on0),
            dealer: s.dealer_stats().since(&d0),
            components: prof.acc,
        };
        on_result(&res)?;
    }
    Ok(setup)
}
