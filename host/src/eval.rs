//! `secformer eval`: a model's accuracy on a labelled data set, in plaintext and under MPC.
//!
//! For a classifier, `--data` is a TSV in GLUE's single-sentence layout: a header line naming
//! the columns, a `sentence` column and a `label` column holding a label name from the
//! model's `id2label` or a class index (a float for a one-output regression model, which is
//! scored by Pearson correlation). For a sentence-embedding model, `--data` holds sentences:
//! such a TSV (only `sentence` is read) or one sentence per line.
//!
//! The plaintext run is the f64 reference forward ([`plain::forward`]) on every example. With
//! `--secure` every example also goes through the full protocol (dealer, P0 and P1), and the
//! report adds the secure run's accuracy, its label agreement with the plaintext run, and its
//! mean online seconds and bytes per party. For an embedding model the secure run is scored
//! by the cosine of each secure embedding to the plaintext one; with `--teacher DIR` the
//! report also gives the cosine of the model's embeddings to the teacher's and whether each
//! sentence's nearest other sentence (top-1 neighbour by cosine) is the same for both.
//!
//! Only [`secure_outputs`] knows how the three parties are run.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde::Serialize;

use crate::bert::local::{self, LocalOptions};
use crate::bert::ModelShape;
use crate::cli::{self as app, progress};
use crate::model::{load_model, plain, Encoding, Model};

/// One example's secure result: the revealed output (logits, or the pooled vector before
/// any normalization), its online seconds and bytes per party.
#[derive(Debug, Clone)]
pub struct SecureOutput {
    /// The revealed output.
    pub output: Vec<f64>,
    /// Online seconds of its pass.
    pub online_seconds: f64,
    /// Online bytes each party sent (the larger).
    pub online_bytes: u64,
}

/// Printed when `--softmax 2quad` is applied to a model whose `config.json` does not declare
/// `"secformer_softmax": "2quad"`: the weights were trained for the exact softmax.
pub const UNTRAINED_2QUAD_WARNING: &str = "warning: --softmax 2quad on a model whose config.json \
does not declare \"secformer_softmax\": \"2quad\": it was not trained for 2Quad, so its outputs \
differ from the unmodified model's (distil a 2Quad student with tools/distill)";

/// The flags of `secformer eval`.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// Hugging Face BERT directory: a classifier (`BertForSequenceClassification`) or a
    /// sentence-embedding model.
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled TSV (classifier: header, `sentence` and `label` columns) or sentences
    /// (embedding model: such a TSV, or one sentence per line).
    #[arg(long)]
    pub data: PathBuf,
    /// Also run every example through the secure protocol (dealer, P0 and P1 on 127.0.0.1).
    #[arg(long)]
    pub secure: bool,
    /// Use only the first N examples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Embedding models: the teacher whose embeddings the model is compared with.
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Override the softmax: exact or 2quad.
    #[arg(long)]
    pub softmax: Option<String>,
    /// Name of the task in the report (default: the data file's directory and stem).
    #[arg(long)]
    pub task: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What `secformer eval` measured.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The task's name.
    pub task: String,
    /// The model directory.
    pub model: String,
    /// "exact" or "2quad".
    pub softmax: String,
    /// "classification", "regression" or "embedding".
    pub kind: String,
    /// Examples evaluated.
    pub examples: usize,
    /// Plaintext accuracy (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Plaintext Pearson correlation with the gold values (regression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pearson: Option<f64>,
    /// Embedding models with `--teacher`: the plaintext embeddings against the teacher's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher: Option<TeacherMatch>,
    /// The secure run (`--secure`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure: Option<SecureReport>,
}

/// Embeddings compared with a teacher's.
#[derive(Debug, Clone, Serialize)]
pub struct TeacherMatch {
    /// The teacher's directory.
    pub model: String,
    /// Mean cosine to the teacher's embedding of the same sentence.
    pub cosine_mean: f64,
    /// Smallest such cosine.
    pub cosine_min: f64,
    /// Fraction of sentences whose nearest other sentence is the same under both models.
    pub top1_neighbour_agreement: f64,
}

/// The secure run's scores and costs.
#[derive(Debug, Clone, Serialize)]
pub struct SecureReport {
    /// Accuracy of the secure predictions (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Pearson correlation of the secure outputs with the gold values (regression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pearson: Option<f64>,
    /// Fraction of examples where the secure and plaintext predicted labels agree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_agreement: Option<f64>,
    /// Embedding models: mean cosine of the secure embedding to the plaintext one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosine_mean: Option<f64>,
    /// Embedding models: smallest such cosine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosine_min: Option<f64>,
    /// Embedding models with `--teacher`: the secure embeddings against the teacher's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher: Option<TeacherMatch>,
    /// Mean online seconds per example (P1's view, from sharing the input to the result).
    pub online_seconds_mean: f64,
    /// Mean online bytes each party sends per example.
    pub online_bytes_per_party_mean: f64,
}

/// One example: the text and its gold label (class index or value), if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The sentence.
    pub text: String,
    /// Class index (classification) or value (regression); `None` for bare sentences.
    pub label: Option<f64>,
}

/// Reads a GLUE single-sentence TSV: a header with `sentence` and `label` columns. A label is
/// a name from `labels`, a class index below `labels.len()`, or (when `regression`) a float.
pub fn read_labelled_tsv(path: &Path, labels: &[String], regression: bool) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the data file {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| anyhow!("{}: empty file (expected a header line)", path.display()))?
        .split('\t')
        .collect();
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let (Some(si), Some(li)) = (col("sentence"), col("label")) else {
        bail!(
            "{}: the header {:?} needs a `sentence` and a `label` column (GLUE's single-sentence layout)",
            path.display(),
            header
        );
    };
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        let line_no = n + 2;
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split('\t').collect();
        if cells.len() != header.len() {
            bail!(
                "{}:{line_no}: {} columns, the header has {}",
                path.display(),
                cells.len(),
                header.len()
            );
        }
        let raw = cells[li].trim();
        let label = if regression {
            raw.parse::<f64>().ok().filter(|v| v.is_finite())
        } else if let Some(i) = labels.iter().position(|l| l == raw) {
            Some(i as f64)
        } else {
            raw.parse::<usize>()
                .ok()
                .filter(|&i| i < labels.len())
                .map(|i| i as f64)
        };
        let label = label.ok_or_else(|| {
            let what = if regression {
                "a number".to_string()
            } else {
                format!(
                    "a label of the model ({}) or an index below {}",
                    labels.join(", "),
                    labels.len()
                )
            };
            anyhow!("{}:{line_no}: label {raw:?} is not {what}", path.display())
        })?;
        out.push(Example {
            text: cells[si].to_string(),
            label: Some(label),
        });
    }
    Ok(out)
}

/// Reads sentences: the `sentence` column of a TSV whose header has one, else every non-empty
/// line.
pub fn read_sentences(path: &Path) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the data file {}", path.display()))?;
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let header: Vec<&str> = first.split('\t').collect();
    let rows: Vec<String> = match header.iter().position(|h| h.trim() == "sentence") {
        Some(si) if header.len() > 1 => lines
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split('\t').nth(si).unwrap_or("").to_string())
            .collect(),
        _ => std::iter::once(first)
            .chain(lines)
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
    };
    if rows.is_empty() {
        bail!("{}: no sentences", path.display());
    }
    Ok(rows
        .into_iter()
        .map(|text| Example { text, label: None })
        .collect())
}

/// The index of the largest value (the first of equals).
pub fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |b, (i, x)| if *x > v[b] { i } else { b })
}

/// Cosine similarity (0 if either vector is zero).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n =
        a.iter().map(|x| x * x).sum::<f64>().sqrt() * b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if n == 0.0 {
        0.0
    } else {
        dot / n
    }
}

/// Pearson correlation of two equally long series (0 when either is constant).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len()) as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// For each vector, the index of its most similar other vector (by cosine).
pub fn nearest_neighbours(v: &[Vec<f64>]) -> Vec<usize> {
    (0..v.len())
        .map(|i| {
            (0..v.len())
                .filter(|&j| j != i)
                .map(|j| (j, cosine(&v[i], &v[j])))
                .fold((usize::MAX, f64::NEG_INFINITY), |b, c| {
                    if c.1 > b.1 {
                        c
                    } else {
                        b
                    }
                })
                .0
        })
        .collect()
}

/// Compares embeddings with a teacher's (same sentences, same order).
pub fn teacher_match(teacher_dir: &Path, ours: &[Vec<f64>], theirs: &[Vec<f64>]) -> TeacherMatch {
    let cos: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| cosine(a, b)).collect();
    let (na, nb) = (nearest_neighbours(ours), nearest_neighbours(theirs));
    let same = na.iter().zip(&nb).filter(|(a, b)| a == b).count();
    TeacherMatch {
        model: teacher_dir.display().to_string(),
        cosine_mean: mean(&cos),
        cosine_min: cos.iter().copied().fold(f64::INFINITY, f64::min),
        top1_neighbour_agreement: same as f64 / ours.len().max(1) as f64,
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The model's output for one encoding: logits (classifier) or the pooled embedding,
/// normalised when the model's pipeline normalises.
fn plain_output(model: &Model, enc: &Encoding) -> Result<Vec<f64>> {
    let o = plain::try_forward(model, enc)?;
    let v = o.logits.unwrap_or(o.pooled);
    Ok(v.into_iter().map(f64::from).collect())
}

/// Plaintext outputs of every encoding, on all cores.
pub fn plain_outputs(model: &Model, encs: &[Encoding]) -> Result<Vec<Vec<f64>>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = encs.len().div_ceil(threads).max(1);
    let pb = progress(encs.len() as u64, "plaintext forward");
    let parts = std::thread::scope(|sc| {
        let handles: Vec<_> = encs
            .chunks(chunk)
            .map(|c| {
                let pb = pb.clone();
                sc.spawn(move || -> Result<Vec<Vec<f64>>> {
                    c.iter()
                        .map(|e| {
                            pb.inc(1);
                            plain_output(model, e)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow!("a plaintext worker panicked"))?
            })
            .collect::<Result<Vec<_>>>()
    })?;
    pb.finish_and_clear();
    Ok(parts.into_iter().flatten().collect())
}

/// Runs every encoding through the secure protocol: the dealer, P0 (holding `model`'s
/// weights) and P1 (holding the texts) on 127.0.0.1, one session for all inferences. This
/// function is the only part of `eval` that knows how the parties are run.
pub fn secure_outputs(model: &Model, encs: &[Encoding]) -> Result<Vec<SecureOutput>> {
    let opts = LocalOptions::for_model(&ModelShape::of(&model.config));
    let pb = progress(1, "secure inferences");
    let run = local::run_secure(&model.config, &model.weights, encs, &opts)?;
    pb.finish_and_clear();
    Ok(run
        .passes
        .iter()
        .map(|p| SecureOutput {
            output: p.outputs[0].clone(),
            online_seconds: p.online_seconds,
            online_bytes: p.online.bytes_sent.max(p.p0_online.bytes_sent),
        })
        .collect())
}

/// The secure output in the plaintext output's form (normalised embedding or logits).
fn secure_vector(model: &Model, r: &SecureOutput) -> Result<Vec<f64>> {
    if model.config.is_classifier() || !model.config.normalize {
        return Ok(r.output.clone());
    }
    Ok(plain::l2_normalize(&r.output))
}

fn task_name(data: &Path) -> String {
    let stem = data
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match data
        .parent()
        .and_then(|p| p.file_name())
        .map(|p| p.to_string_lossy().into_owned())
    {
        Some(dir) if !dir.is_empty() => format!("{dir}/{stem}"),
        _ => stem,
    }
}

/// Loads a model for evaluation, applying a `--softmax` override (with its warning).
pub fn load_for_eval(dir: &Path, softmax: Option<&str>) -> Result<Model> {
    let pb = progress(1, "loading the model");
    let mut m =
        load_model(dir).with_context(|| format!("loading the model from {}", dir.display()))?;
    pb.finish_and_clear();
    app::apply_softmax_flag(&mut m.config, softmax)?;
    Ok(m)
}

/// Runs `secformer eval`.
pub fn run(a: &EvalArgs) -> Result<EvalReport> {
    let model = load_for_eval(&a.model, a.softmax.as_deref())?;
    let kind = match model.config.num_labels {
        Some(1) => "regression",
        Some(_) => "classification",
        None => "embedding",
    };
    let mut examples = match kind {
        "embedding" => read_sentences(&a.data)?,
        _ => read_labelled_tsv(&a.data, &model.config.labels, kind == "regression")?,
    };
    if let Some(n) = a.limit {
        examples.truncate(n);
    }
    if examples.is_empty() {
        bail!("{}: no examples", a.data.display());
    }
    if kind != "embedding" && a.teacher.is_some() {
        bail!("--teacher compares embeddings: the model is a classifier");
    }
    let texts: Vec<String> = examples.iter().map(|e| e.text.clone()).collect();
    let encs: Vec<Encoding> = texts.iter().map(|t| model.tokenizer.encode(t)).collect();
    let cut = encs.iter().filter(|e| e.truncated).count();
    if cut > 0 {
        eprintln!(
            "warning: {cut} of {} texts were truncated to {} tokens",
            encs.len(),
            model.tokenizer.max_len()
        );
    }
    let plain = plain_outputs(&model, &encs)?;
    let gold: Vec<f64> = examples.iter().filter_map(|e| e.label).collect();
    let mut rep = EvalReport {
        task: a.task.clone().unwrap_or_else(|| task_name(&a.data)),
        model: a.model.display().to_string(),
        softmax: crate::model::fingerprint::model_info(&model.config, None).softmax,
        kind: kind.to_string(),
        examples: examples.len(),
        accuracy: None,
        pearson: None,
        teacher: None,
        secure: None,
    };
    let labels_of = |outs: &[Vec<f64>]| -> Vec<usize> { outs.iter().map(|o| argmax(o)).collect() };
    let acc = |pred: &[usize]| {
        pred.iter()
            .zip(&gold)
            .filter(|(p, g)| **p as f64 == **g)
            .count() as f64
            / gold.len().max(1) as f64
    };
    let first = |outs: &[Vec<f64>]| -> Vec<f64> { outs.iter().map(|o| o[0]).collect() };
    let teacher_plain = match &a.teacher {
        Some(t) => {
            let tm = load_for_eval(t, None)?;
            let tencs: Vec<Encoding> = texts.iter().map(|x| tm.tokenizer.encode(x)).collect();
            Some(plain_outputs(&tm, &tencs)?)
        }
        None => None,
    };
    match kind {
        "classification" => rep.accuracy = Some(acc(&labels_of(&plain))),
        "regression" => rep.pearson = Some(pearson(&first(&plain), &gold)),
        _ => {
            if let (Some(t), Some(tp)) = (&a.teacher, &teacher_plain) {
                rep.teacher = Some(teacher_match(t, &plain, tp));
            }
        }
    }
    if a.secure {
        let res = secure_outputs(&model, &encs)?;
        if res.len() != encs.len() {
            bail!(
                "the secure run returned {} of {} results",
                res.len(),
                encs.len()
            );
        }
        let sec: Vec<Vec<f64>> = res
            .iter()
            .map(|r| secure_vector(&model, r))
            .collect::<Result<_>>()?;
        let mut s = SecureReport {
            accuracy: None,
            pearson: None,
            label_agreement: None,
            cosine_mean: None,
            cosine_min: None,
            teacher: None,
            online_seconds_mean: mean(&res.iter().map(|r| r.online_seconds).collect::<Vec<_>>()),
            online_bytes_per_party_mean: mean(
                &res.iter()
                    .map(|r| r.online_bytes as f64)
                    .collect::<Vec<_>>(),
            ),
        };
        match kind {
            "classification" => {
                let (ps, pp) = (labels_of(&sec), labels_of(&plain));
                s.accuracy = Some(acc(&ps));
                let same = ps.iter().zip(&pp).filter(|(a, b)| a == b).count();
                s.label_agreement = Some(same as f64 / ps.len() as f64);
            }
            "regression" => s.pearson = Some(pearson(&first(&sec), &gold)),
            _ => {
                let cos: Vec<f64> = sec.iter().zip(&plain).map(|(a, b)| cosine(a, b)).collect();
                s.cosine_mean = Some(mean(&cos));
                s.cosine_min = Some(cos.iter().copied().fold(f64::INFINITY, f64::min));
                if let (Some(t), Some(tp)) = (&a.teacher, &teacher_plain) {
                    s.teacher = Some(teacher_match(t, &sec, tp));
                }
            }
        }
        rep.secure = Some(s);
    }
    Ok(rep)
}

/// Prints the report as text.
pub fn print(rep: &EvalReport) {
    println!(
        "{} on {}: {} examples, {} ({} softmax)",
        rep.model, rep.task, rep.examples, rep.kind, rep.softmax
    );
    if let Some(a) = rep.accuracy {
        println!("  plaintext accuracy            {:.4}", a);
    }
    if let Some(p) = rep.pearson {
        println!("  plaintext Pearson             {:.4}", p);
    }
    let teacher = |t: &TeacherMatch, what: &str| {
        println!(
            "  {what} vs teacher: cosine mean {:.4}, min {:.4}; top-1 neighbour agreement {:.4}",
            t.cosine_mean, t.cosine_min, t.top1_neighbour_agreement
        );
    };
    if let Some(t) = &rep.teacher {
        teacher(t, "plaintext");
    }
    if let Some(s) = &rep.secure {
        if let Some(a) = s.accuracy {
            println!("  secure accuracy               {:.4}", a);
        }
        if let Some(a) = s.label_agreement {
            println!("  secure vs plaintext labels    {:.4} agree", a);
        }
        if let Some(p) = s.pearson {
            println!("  secure Pearson                {:.4}", p);
        }
        if let (Some(m), Some(n)) = (s.cosine_mean, s.cosine_min) {
            println!("  secure vs plaintext cosine    mean {m:.6}, min {n:.6}");
        }
        if let Some(t) = &s.teacher {
            teacher(t, "secure");
        }
        println!(
            "  secure online per example     {:.3} s, {:.0} bytes per party",
            s.online_seconds_mean, s.online_bytes_per_party_mean
        );
    }
}

/// `secformer eval`: runs and prints (text or JSON).
pub fn main(a: &EvalArgs) -> Result<()> {
    let rep = run(a)?;
    if a.json {
        println!("{}", serde_json::to_string(&rep)?);
    } else {
        print(&rep);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tsv(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    fn labels() -> Vec<String> {
        vec!["noun.animal".into(), "verb.motion".into()]
    }

    #[test]
    fn labels_by_name_or_index_and_extra_columns() {
        let f = tsv("idx\tsentence\tlabel\n0\ta cat\tnoun.animal\n1\tto run\t1\n\n");
        let ex = read_labelled_tsv(f.path(), &labels(), false).unwrap();
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].text, "a cat");
        assert_eq!(ex[0].label, Some(0.0));
        assert_eq!(ex[1].label, Some(1.0));
    }

    #[test]
    fn bad_tsv_errors_name_the_line_and_the_problem() {
        let f = tsv("sentence\tlabel\na cat\tnoun.plant\n");
        let e = format!(
            "{:#}",
            read_labelled_tsv(f.path(), &labels(), false).unwrap_err()
        );
        assert!(e.contains(":2:") && e.contains("noun.plant"), "{e}");
        let f = tsv("sentence\tlabel\na cat\t7\n");
        assert!(read_labelled_tsv(f.path(), &labels(), false).is_err());
        let f = tsv("text\tlabel\na cat\t0\n");
        let e = format!(
            "{:#}",
            read_labelled_tsv(f.path(), &labels(), false).unwrap_err()
        );
        assert!(e.contains("sentence"), "{e}");
        let f = tsv("sentence\tlabel\na cat\n");
        let e = format!(
            "{:#}",
            read_labelled_tsv(f.path(), &labels(), false).unwrap_err()
        );
        assert!(e.contains("1 columns"), "{e}");
        let f = tsv("sentence\tlabel\na cat\tnan\n");
        assert!(read_labelled_tsv(f.path(), &[], true).is_err());
        let f = tsv("sentence\tlabel\na cat\t-0.5\n");
        assert_eq!(
            read_labelled_tsv(f.path(), &[], true).unwrap()[0].label,
            Some(-0.5)
        );
    }

    #[test]
    fn sentences_from_a_tsv_or_lines() {
        let f = tsv("sentence\tlabel\nfirst one\tx\nsecond\ty\n");
        let s = read_sentences(f.path()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].text, "second");
        let f = tsv("first one\n\nsecond\n");
        let s = read_sentences(f.path()).unwrap();
        assert_eq!(
            s.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(),
            ["first one", "second"]
        );
        assert!(read_sentences(tsv("\n\n").path()).is_err());
    }

    #[test]
    fn metrics_against_hand_computed_values() {
        assert_eq!(argmax(&[0.1, 3.0, 3.0, -1.0]), 1);
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
        assert!(
            (pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]) - 0.997_948_715_788_673_3).abs() < 1e-12
        );
        assert_eq!(pearson(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
        let v = vec![vec![1.0, 0.0], vec![0.9, 0.1], vec![0.0, 1.0]];
        assert_eq!(nearest_neighbours(&v), vec![1, 0, 1]);
        let m = teacher_match(Path::new("t"), &v, &v);
        assert!((m.cosine_mean - 1.0).abs() < 1e-12);
        assert_eq!(m.top1_neighbour_agreement, 1.0);
        let w = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.1, 0.9]];
        assert!(
            (teacher_match(Path::new("t"), &v, &w).top1_neighbour_agreement - 1.0 / 3.0).abs()
                < 1e-12
        );
    }

    #[test]
    fn task_is_the_data_files_directory_and_stem() {
        assert_eq!(
            task_name(Path::new("data/wordnet-lex/test.tsv")),
            "wordnet-lex/test"
        );
        assert_eq!(task_name(Path::new("dev.tsv")), "dev");
    }
}
