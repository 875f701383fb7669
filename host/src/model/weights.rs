//! The model's parameters in f32, loaded from `model.safetensors` or drawn at random.
//!
//! Linear layers are stored as `W[in][out]` (row-major), so a layer computes `y = x W + b`
//! for a row vector `x`; Hugging Face's `[out][in]` weights are transposed at load time.
//! Tensor names are accepted with or without the `bert.` prefix (`BertModel` saved by
//! sentence-transformers has none; `BertForSequenceClassification` has it), and LayerNorm
//! parameters as `weight`/`bias` or the older `gamma`/`beta`.
//!
//! Checks on load, each an error naming the file and the tensor: the number of encoder
//! layers in the file equals `num_hidden_layers` (counted before anything is allocated),
//! every value is finite, `|w| <= ` [`MAX_PARAM`] = 4096 for every parameter, and LayerNorm
//! scales satisfy `|gamma| <= 2^14 / sqrt(hidden)` ([`max_layer_norm_gamma`]). Why these
//! bounds: the secure run works in fixed point with 16 fractional bits in a 64-bit ring
//! (`|x| < 2^47` representable), but its products are truncated from 32 fractional bits,
//! which is exact while `|sum_k x_k w_k| < 2^30`; `|w| <= 2^12` keeps that for every input
//! row with `sum_k |x_k| < 2^18`, and keeps the sum of three embedding rows below the
//! secure LayerNorm's input bound 2^14. The LayerNorm's output `gamma (x - mean) / sd` must
//! stay below 2^14, and `|x - mean| / sd <= sqrt(hidden)`. Values below 2^-17 in magnitude
//! round to 0 in fixed point (a loss of precision, not an error).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use safetensors::{Dtype, SafeTensors};

use super::config::BertConfig;

/// The largest parameter magnitude accepted (see the module documentation).
pub const MAX_PARAM: f32 = 4096.0;

/// The largest LayerNorm scale magnitude accepted at `hidden` (`2^14 / sqrt(hidden)`).
pub fn max_layer_norm_gamma(hidden: usize) -> f32 {
    (16384.0 / (hidden.max(1) as f64).sqrt()) as f32
}

/// A dense row-major f32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows * cols` entries, row after row.
    pub data: Vec<f32>,
}

impl Matrix {
    /// A zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// A matrix from row-major data; panics unless `data.len() == rows * cols`.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), rows * cols, "Matrix::from_vec: wrong length");
        Matrix { rows, cols, data }
    }

    /// Row `r` as a slice.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// The entry at row `r`, column `c`.
    pub fn get(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.cols + c]
    }

    /// The transpose.
    pub fn transpose(&self) -> Matrix {
        let mut out = Matrix::zeros(self.cols, self.rows);
        for r in 0..self.rows {
            for c in 0..self.cols {
                out.data[c * self.rows + r] = self.data[r * self.cols + c];
            }
        }
        out
    }
}

/// A fully connected layer `y = x W + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// The weight, `[in][out]`.
    pub w: Matrix,
    /// The bias, `out` entries.
    pub b: Vec<f32>,
}

impl Linear {
    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.w.rows
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.w.cols
    }
}

/// LayerNorm parameters: `y = gamma * (x - mean) / sqrt(var + eps) + beta`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm {
    /// Scale.
    pub gamma: Vec<f32>,
    /// Shift.
    pub beta: Vec<f32>,
    /// Epsilon added to the variance.
    pub eps: f32,
}

/// One encoder layer (post-LayerNorm, as in BERT).
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderLayer {
    /// Query projection, hidden -> hidden.
    pub q: Linear,
    /// Key projection, hidden -> hidden.
    pub k: Linear,
    /// Value projection, hidden -> hidden.
    pub v: Linear,
    /// Attention output projection, hidden -> hidden.
    pub attn_out: Linear,
    /// LayerNorm after the attention block's residual.
    pub ln1: LayerNorm,
    /// Feed-forward input, hidden -> intermediate.
    pub ffn_in: Linear,
    /// Feed-forward output, intermediate -> hidden.
    pub ffn_out: Linear,
    /// LayerNorm after the feed-forward block's residual.
    pub ln2: LayerNorm,
}

/// All parameters of a BERT model.
#[derive(Debug, Clone, PartialEq)]
pub struct BertWeights {
    /// Word embeddings, `[vocab_size][hidden]`.
    pub word_emb: Matrix,
    /// Position embeddings, `[max_position_embeddings][hidden]`.
    pub pos_emb: Matrix,
    /// Token-type embeddings, `[type_vocab_size][hidden]`.
    pub type_emb: Matrix,
    /// LayerNorm after the embedding sum.
    pub emb_ln: LayerNorm,
    /// The encoder layers.
    pub layers: Vec<EncoderLayer>,
    /// The pooler (dense, followed by tanh), present for classifier checkpoints.
    pub pooler: Option<Linear>,
    /// The classifier, hidden -> num_labels, present for classifier checkpoints.
    pub classifier: Option<Linear>,
}

/// SplitMix64: a tiny deterministic generator for random test models.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal by Box-Muller.
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn normals(&mut self, n: usize, mean: f64, std: f64) -> Vec<f32> {
        (0..n)
            .map(|_| (mean + std * self.normal()) as f32)
            .collect()
    }
}

const INIT_STD: f64 = 0.02;

impl BertWeights {
    /// Deterministic random weights for `config` (benchmarks and tests), in the spirit of
    /// BERT's initialisation: matrices and biases drawn from N(0, 0.02^2), LayerNorm gamma
    /// from N(1, 0.02^2) and beta from N(0, 0.02^2). A pooler and classifier are included
    /// when the configuration is a classifier. The same `(config, seed)` gives the same
    /// weights on every platform.
    pub fn random(config: &BertConfig, seed: u64) -> Self {
        let mut rng = SplitMix64(seed ^ 0x5EC_F0E3);
        let h = config.hidden_size;
        let eps = config.layer_norm_eps;
        let matrix = |rows: usize, cols: usize, rng: &mut SplitMix64| {
            Matrix::from_vec(rows, cols, rng.normals(rows * cols, 0.0, INIT_STD))
        };
        let linear = |i: usize, o: usize, rng: &mut SplitMix64| Linear {
            w: matrix(i, o, rng),
            b: rng.normals(o, 0.0, INIT_STD),
        };
        let layer_norm = |rng: &mut SplitMix64| LayerNorm {
            gamma: rng.normals(h, 1.0, INIT_STD),
            beta: rng.normals(h, 0.0, INIT_STD),
            eps,
        };
        let word_emb = matrix(config.vocab_size, h, &mut rng);
        let pos_emb = matrix(config.max_position_embeddings, h, &mut rng);
        let type_emb = matrix(config.type_vocab_size, h, &mut rng);
        let emb_ln = layer_norm(&mut rng);
        let layers = (0..config.num_hidden_layers)
            .map(|_| EncoderLayer {
                q: linear(h, h, &mut rng),
                k: linear(h, h, &mut rng),
                v: linear(h, h, &mut rng),
                attn_out: linear(h, h, &mut rng),
                ln1: layer_norm(&mut rng),
                ffn_in: linear(h, config.intermediate_size, &mut rng),
                ffn_out: linear(config.intermediate_size, h, &mut rng),
                ln2: layer_norm(&mut rng),
            })
            .collect();
        let (pooler, classifier) = match config.num_labels {
            Some(n) => (Some(linear(h, h, &mut rng)), Some(linear(h, n, &mut rng))),
            None => (None, None),
        };
        BertWeights {
            word_emb,
            pos_emb,
            type_emb,
            emb_ln,
            layers,
            pooler,
            classifier,
        }
    }

    /// Checks every shape against `config`; the error names the parameter.
    pub fn check_shapes(&self, config: &BertConfig) -> Result<()> {
        let h = config.hidden_size;
        let m = |name: &str, mat: &Matrix, rows: usize, cols: usize| -> Result<()> {
            if mat.rows != rows || mat.cols != cols || mat.data.len() != rows * cols {
                bail!(
                    "{name}: expected shape [{rows}, {cols}], got [{}, {}]",
                    mat.rows,
                    mat.cols
                );
            }
            Ok(())
        };
        let v = |name: &str, v: &[f32], n: usize| -> Result<()> {
            if v.len() != n {
                bail!("{name}: expected shape [{n}], got [{}]", v.len());
            }
            Ok(())
        };
        let lin = |name: &str, l: &Linear, i: usize, o: usize| -> Result<()> {
            m(&format!("{name}.w"), &l.w, i, o)?;
            v(&format!("{name}.b"), &l.b, o)
        };
        let ln = |name: &str, l: &LayerNorm| -> Result<()> {
            v(&format!("{name}.gamma"), &l.gamma, h)?;
            v(&format!("{name}.beta"), &l.beta, h)
        };
        m("word_emb", &self.word_emb, config.vocab_size, h)?;
        m("pos_emb", &self.pos_emb, config.max_position_embeddings, h)?;
        m("type_emb", &self.type_emb, config.type_vocab_size, h)?;
        ln("emb_ln", &self.emb_ln)?;
        if self.layers.len() != config.num_hidden_layers {
            bail!(
                "layers: expected {} encoder layers, got {}",
                config.num_hidden_layers,
                self.layers.len()
            );
        }
        for (i, l) in self.layers.iter().enumerate() {
            lin(&format!("layers[{i}].q"), &l.q, h, h)?;
            lin(&format!("layers[{i}].k"), &l.k, h, h)?;
            lin(&format!("layers[{i}].v"), &l.v, h, h)?;
            lin(&format!("layers[{i}].attn_out"), &l.attn_out, h, h)?;
            ln(&format!("layers[{i}].ln1"), &l.ln1)?;
            lin(
                &format!("layers[{i}].ffn_in"),
                &l.ffn_in,
                h,
                config.intermediate_size,
            )?;
            lin(
                &format!("layers[{i}].ffn_out"),
                &l.ffn_out,
                config.intermediate_size,
                h,
            )?;
            ln(&format!("layers[{i}].ln2"), &l.ln2)?;
        }
        match (config.num_labels, &self.pooler, &self.classifier) {
            (Some(n), Some(p), Some(c)) => {
                lin("pooler", p, h, h)?;
                lin("classifier", c, h, n)?;
            }
            (Some(_), _, _) => bail!("a classifier configuration needs pooler and classifier"),
            (None, _, Some(_)) => bail!("classifier weights without num_labels in the config"),
            (None, Some(p), None) => lin("pooler", p, h, h)?,
            (None, None, None) => {}
        }
        Ok(())
    }

    /// Loads `model.safetensors` from `path` and checks it against `config`.
    pub fn load(path: &Path, config: &BertConfig) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read model.safetensors at {}", path.display()))?;
        Self::from_safetensors_bytes(&bytes, config)
            .map_err(|e| anyhow!("{}: {e:#}", path.display()))
    }

    /// Parses a safetensors buffer and checks it against `config`.
    pub fn from_safetensors_bytes(bytes: &[u8], config: &BertConfig) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| anyhow!("model.safetensors is not a valid safetensors file: {e}"))?;
        let found = encoder_layers(&st);
        if found != config.num_hidden_layers {
            bail!(
                "config.json says num_hidden_layers = {}, but model.safetensors has {found} encoder \
                 layers (tensors encoder.layer.0. to encoder.layer.{}.; no encoder.layer.{found}.)",
                config.num_hidden_layers,
                found as i64 - 1,
            );
        }
        let loader = Loader { st: &st };
        let h = config.hidden_size;
        let eps = config.layer_norm_eps;
        let ln = |base: &str| -> Result<LayerNorm> {
            Ok(LayerNorm {
                gamma: loader
                    .vector_alt(&[&format!("{base}.weight"), &format!("{base}.gamma")], h)?,
                beta: loader.vector_alt(&[&format!("{base}.bias"), &format!("{base}.beta")], h)?,
                eps,
            })
        };
        let word_emb = loader.matrix("embeddings.word_embeddings.weight", config.vocab_size, h)?;
        let pos_emb = loader.matrix(
            "embeddings.position_embeddings.weight",
            config.max_position_embeddings,
            h,
        )?;
        let type_emb = loader.matrix(
            "embeddings.token_type_embeddings.weight",
            config.type_vocab_size,
            h,
        )?;
        let emb_ln = ln("embeddings.LayerNorm")?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let inter = config.intermediate_size;
            layers.push(EncoderLayer {
                q: loader.linear(&format!("{p}.attention.self.query"), h, h)?,
                k: loader.linear(&format!("{p}.attention.self.key"), h, h)?,
                v: loader.linear(&format!("{p}.attention.self.value"), h, h)?,
                attn_out: loader.linear(&format!("{p}.attention.output.dense"), h, h)?,
                ln1: ln(&format!("{p}.attention.output.LayerNorm"))?,
                ffn_in: loader.linear(&format!("{p}.intermediate.dense"), h, inter)?,
                ffn_out: loader.linear(&format!("{p}.output.dense"), inter, h)?,
                ln2: ln(&format!("{p}.output.LayerNorm"))?,
            });
        }
        let (pooler, classifier) = match config.num_labels {
            Some(n) => (
                Some(loader.linear("pooler.dense", h, h)?),
                Some(loader.linear("classifier", h, n)?),
            ),
            // A sentence-embedding model's pooler (all-MiniLM-L6-v2 has one) is never used.
            None => (None, None),
        };
        let weights = BertWeights {
            word_emb,
            pos_emb,
            type_emb,
            emb_ln,
            layers,
            pooler,
            classifier,
        };
        weights.check_shapes(config)?;
        weights.check_gammas()?;
        Ok(weights)
    }

    /// Checks the LayerNorm scales against [`max_layer_norm_gamma`].
    fn check_gammas(&self) -> Result<()> {
        let mut lns = vec![("embeddings.LayerNorm".to_string(), &self.emb_ln)];
        for (i, l) in self.layers.iter().enumerate() {
            lns.push((
                format!("encoder.layer.{i}.attention.output.LayerNorm"),
                &l.ln1,
            ));
            lns.push((format!("encoder.layer.{i}.output.LayerNorm"), &l.ln2));
        }
        for (name, ln) in lns {
            let max = max_layer_norm_gamma(ln.gamma.len());
            if let Some((i, g)) = ln.gamma.iter().enumerate().find(|(_, g)| g.abs() > max) {
                bail!(
                    "model.safetensors: LayerNorm scale {name}.weight[{i}] = {g} exceeds {max} \
                     (2^14 / sqrt(hidden): the secure LayerNorm's output must stay below 2^14)"
                );
            }
        }
        Ok(())
    }
}

/// The number of encoder layers in a checkpoint: one more than the largest `i` of the
/// tensors named `[bert.]encoder.layer.{i}.*` (0 when there is none).
fn encoder_layers(st: &SafeTensors<'_>) -> usize {
    st.names()
        .iter()
        .filter_map(|n| {
            let n = n.strip_prefix("bert.").unwrap_or(n);
            let rest = n.strip_prefix("encoder.layer.")?;
            rest.split('.').next()?.parse::<usize>().ok()
        })
        .max()
        .map_or(0, |i| i.saturating_add(1))
}

struct Loader<'a> {
    st: &'a SafeTensors<'a>,
}

impl Loader<'_> {
    /// Finds the first of `names` that exists, as is or under the `bert.` prefix.
    fn find(
        &self,
        names: &[&str],
        shape: &[usize],
    ) -> Result<(String, safetensors::tensor::TensorView<'_>)> {
        for name in names {
            for full in [name.to_string(), format!("bert.{name}")] {
                if let Ok(t) = self.st.tensor(&full) {
                    return Ok((full, t));
                }
            }
        }
        let others: String = names[1..].iter().map(|n| format!(", {n}")).collect();
        bail!(
            "model.safetensors: missing tensor {} of shape {shape:?} (also looked for bert.{}{others})",
            names[0],
            names[0],
        )
    }

    fn tensor(&self, names: &[&str], shape: &[usize]) -> Result<Vec<f32>> {
        let (name, t) = self.find(names, shape)?;
        if t.shape() != shape {
            bail!(
                "model.safetensors: tensor {name} has shape {:?}, expected {shape:?}",
                t.shape(),
            );
        }
        let values = to_f32(t.dtype(), t.data()).ok_or_else(|| {
            anyhow!(
                "model.safetensors: tensor {name} has dtype {:?}, expected F32, F16, BF16 or F64",
                t.dtype()
            )
        })?;
        check_values(&name, &values)?;
        Ok(values)
    }

    fn vector_alt(&self, names: &[&str], n: usize) -> Result<Vec<f32>> {
        self.tensor(names, &[n])
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        Ok(Matrix::from_vec(
            rows,
            cols,
            self.tensor(&[name], &[rows, cols])?,
        ))
    }

    /// A Hugging Face linear layer (`weight` is `[out][in]`), transposed to `[in][out]`.
    fn linear(&self, base: &str, inp: usize, out: usize) -> Result<Linear> {
        let w = self
            .matrix(&format!("{base}.weight"), out, inp)?
            .transpose();
        let b = self.tensor(&[&format!("{base}.bias")], &[out])?;
        Ok(Linear { w, b })
    }
}

/// Every value finite and within [`MAX_PARAM`].
fn check_values(name: &str, values: &[f32]) -> Result<()> {
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite() || v.abs() > MAX_PARAM)
    {
        if v.is_finite() {
            bail!(
                "model.safetensors: tensor {name} has the value {v} at index {i}, beyond the \
                 +-{MAX_PARAM} the secure run supports (16 fractional bits; products must stay \
                 below 2^30)"
            );
        }
        bail!("model.safetensors: tensor {name} has a non-finite value ({v}) at index {i}");
    }
    Ok(())
}

fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    fn words<const N: usize>(data: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        data.chunks_exact(N)
            .map(|c| c.try_into().expect("chunks_exact yields N bytes"))
    }
    Some(match dtype {
        Dtype::F32 => words::<4>(data).map(f32::from_le_bytes).collect(),
        Dtype::F16 => words::<2>(data)
            .map(|b| half::f16::from_le_bytes(b).to_f32())
            .collect(),
        Dtype::BF16 => words::<2>(data)
            .map(|b| half::bf16::from_le_bytes(b).to_f32())
            .collect(),
        Dtype::F64 => words::<8>(data)
            .map(|b| f64::from_le_bytes(b) as f32)
            .collect(),
        _ => return None,
    })
}
