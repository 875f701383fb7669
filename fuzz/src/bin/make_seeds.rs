//! Writes the fuzz targets' seed inputs (well-formed examples of each format, made with
//! the project's own types so they follow the wire formats) to `DIR/TARGET/NAME`:
//! `make_seeds DIR`.

// Links libFuzzer's runtime, which the instrumented build references.
use libfuzzer_sys as _;

use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use secformer_core::dealer::{DealerHello, Item, PartyHello, Request, PROTOCOL_VERSION};
use secformer_core::party::PartyId;
use secformer_core::prg::Seed;
use secformer_core::session::PairHello;
use secformer_core::transport::FrameKind;
use secformer_fuzz::frame;
use secformer_host::model::{BertConfig, BertWeights, Linear};

fn request(seq: u32, items: &[Item]) -> Vec<u8> {
    let r = Request {
        seq,
        items: items.iter().copied().collect(),
    };
    postcard::to_allocvec(&r).expect("encode")
}

fn items() -> Vec<Item> {
    vec![
        Item::Triple { n: 64 },
        Item::Square { n: 8 },
        Item::MatTriple { m: 2, k: 3, n: 4 },
        Item::WeightMask { id: 1, k: 4, n: 4 },
        Item::WeightTriple {
            id: 1,
            m: 2,
            k: 4,
            n: 4,
        },
        Item::Trunc { n: 64, f: 16 },
        Item::PrivAnd { planes: 27, bits: 64, copies: 2 },
        Item::CarryLevel { words: 2, groups: 27 },
        Item::BitMul {
            n: 4,
            m: 29,
            uses: 2,
        },
        Item::RowTriple { rows: 2, cols: 8 },
        Item::SquareScale { rows: 2, cols: 8 },
        Item::BitMulTrunc { n: 3, m: 5, f: 40 },
        Item::TruncRowTriple {
            rows: 3,
            cols: 5,
            f: 40,
        },
        Item::SegmentSeries { n: 4, p: 20, k: 6, f: 16, bits: 22, shift: 12 },
        Item::Max4 { groups: 5 },
        Item::Sine {
            n: 8,
            p: 20,
            k: 6,
            f: 16,
        },
    ]
}

/// Hugging Face tensors of `w` (`[out][in]` linears), under `prefix`.
fn tensors(w: &BertWeights, prefix: &str) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut t = Vec::new();
    let m = |x: &secformer_host::model::Matrix| (vec![x.rows, x.cols], x.data.clone());
    let (s, d) = m(&w.word_emb);
    t.push((format!("{prefix}embeddings.word_embeddings.weight"), s, d));
    let (s, d) = m(&w.pos_emb);
    t.push((
        format!("{prefix}embeddings.position_embeddings.weight"),
        s,
        d,
    ));
    let (s, d) = m(&w.type_emb);
    t.push((
        format!("{prefix}embeddings.token_type_embeddings.weight"),
        s,
        d,
    ));
    let ln = |t: &mut Vec<_>, base: String, l: &secformer_host::model::LayerNorm| {
        let h = l.gamma.len();
        t.push((format!("{base}.weight"), vec![h], l.gamma.clone()));
        t.push((format!("{base}.bias"), vec![h], l.beta.clone()));
    };
    let lin = |t: &mut Vec<_>, base: String, l: &Linear| {
        let wt = l.w.transpose();
        t.push((format!("{base}.weight"), vec![wt.rows, wt.cols], wt.data));
        t.push((format!("{base}.bias"), vec![l.b.len()], l.b.clone()));
    };
    ln(&mut t, format!("{prefix}embeddings.LayerNorm"), &w.emb_ln);
    for (i, l) in w.layers.iter().enumerate() {
        let b = format!("{prefix}encoder.layer.{i}");
        lin(&mut t, format!("{b}.attention.self.query"), &l.q);
        lin(&mut t, format!("{b}.attention.self.key"), &l.k);
        lin(&mut t, format!("{b}.attention.self.value"), &l.v);
        lin(&mut t, format!("{b}.attention.output.dense"), &l.attn_out);
        ln(&mut t, format!("{b}.attention.output.LayerNorm"), &l.ln1);
        lin(&mut t, format!("{b}.intermediate.dense"), &l.ffn_in);
        lin(&mut t, format!("{b}.output.dense"), &l.ffn_out);
        ln(&mut t, format!("{b}.output.LayerNorm"), &l.ln2);
    }
    if let Some(p) = &w.pooler {
        lin(&mut t, format!("{prefix}pooler.dense"), p);
    }
    if let Some(c) = &w.classifier {
        lin(&mut t, "classifier".into(), c);
    }
    t
}

fn safetensors_file(c: &BertConfig, prefix: &str, dtype: Dtype) -> Vec<u8> {
    let t = tensors(&BertWeights::random(c, 9), prefix);
    let bytes: Vec<Vec<u8>> = t
        .iter()
        .map(|(_, _, d)| match dtype {
            Dtype::F16 => d.iter().flat_map(|x| half_bits(*x).to_le_bytes()).collect(),
            _ => d.iter().flat_map(|x| x.to_le_bytes()).collect(),
        })
        .collect();
    let views = t.iter().zip(&bytes).map(|((n, s, _), b)| {
        (
            n.clone(),
            TensorView::new(dtype, s.clone(), b).expect("tensor view"),
        )
    });
    safetensors::tensor::serialize(views, None).expect("serialize")
}

/// f32 to IEEE half (round toward zero; seeds only need plausible bits).
fn half_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    if exp <= 0 {
        return sign;
    }
    sign | ((exp.min(30) as u16) << 10) | ((b >> 13) & 0x3ff) as u16
}

fn write(dir: &Path, target: &str, name: &str, data: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("seed directory");
    std::fs::write(d.join(name), data).expect("seed file");
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: make_seeds DIR");
    let dir = Path::new(&dir);
    let all = items();
    let seed = Seed::from_u64_for_tests(5);

    // control: postcard messages.
    write(dir, "control", "request", &request(3, &all));
    let hello = PartyHello {
        version: PROTOCOL_VERSION,
        party: PartyId::P1,
        token: [7; 16],
        resume: None,
    };
    write(
        dir,
        "control",
        "party_hello",
        &postcard::to_allocvec(&hello).unwrap(),
    );
    let dh = DealerHello {
        version: PROTOCOL_VERSION,
        session: 77,
        seed: seed.clone(),
    };
    write(
        dir,
        "control",
        "dealer_hello",
        &postcard::to_allocvec(&dh).unwrap(),
    );
    let ph = PairHello {
        version: PROTOCOL_VERSION,
        session: 77,
        seed,
    };
    write(
        dir,
        "control",
        "pair_hello",
        &postcard::to_allocvec(&ph).unwrap(),
    );

    // sealed: a real message 1 and a message 2 of another session.
    {
        use secformer_core::noise::{Initiator, Responder, StaticKey};
        let (r, d) = (StaticKey::from_secret([1; 32]), StaticKey::from_secret([2; 32]));
        let mut i = Initiator::new(&d, r.public(), [4; 32], b"fuzz");
        let mut m1 = [0u8; 256];
        let n = i.write_message_1(b"hello", &mut m1).unwrap();
        write(dir, "sealed", "message1", &m1[..n]);
        let mut resp = Responder::new(&r, [5; 32], b"fuzz");
        resp.read_message_1(&mut m1[..n]).unwrap();
        let mut m2 = [0u8; 256];
        let (_, n2) = resp.write_message_2(b"seed", &mut m2).unwrap();
        write(dir, "sealed", "message2", &m2[..n2]);
    }

    // dealer_requests: [length][request] records, then the empty request that ends the
    // stream.
    let mut s = Vec::new();
    let mut record = |payload: Vec<u8>| {
        s.push(payload.len() as u8);
        s.extend(payload);
    };
    for (i, chunk) in all.chunks(4).enumerate() {
        record(request(i as u32, chunk));
    }
    record(request(3, &[]));
    write(dir, "dealer_requests", "session", &s);

    // frame: [kind, capacity / 3, step, mode] then frames.
    let payload: Vec<u8> = (0..60u8).collect();
    for (mode, kind) in [
        (0u8, FrameKind::Ring),
        (1, FrameKind::Bits),
        (2, FrameKind::DealerRequest),
        (3, FrameKind::Control),
    ] {
        let body = if kind == FrameKind::DealerRequest {
            request(0, &all[..3])
        } else {
            payload.clone()
        };
        let mut v = vec![kind as u8 - 1, (body.len() / 3 + 1) as u8, 7, mode];
        v.extend(frame(kind, &body));
        v.extend(frame(FrameKind::Error, b"P0 failed: a test"));
        write(dir, "frame", &format!("mode{mode}"), &v);
    }

    // config: the six public files of a sentence-transformers checkpoint, NUL-separated.
    let config = serde_json::json!({
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": 30522,
        "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
        "intermediate_size": 1536, "max_position_embeddings": 512, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12, "hidden_act": "gelu", "position_embedding_type": "absolute",
        "secformer_softmax": "2quad", "secformer_2quad_c": 5.0
    });
    let files = [
        config.to_string(),
        r###"{"do_lower_case": true, "strip_accents": null, "model_max_length": 512, "unk_token": "[UNK]"}"###.into(),
        r###"{"normalizer": {"type": "BertNormalizer", "lowercase": true, "strip_accents": null, "clean_text": true, "handle_chinese_chars": true}, "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100}}"###.into(),
        r###"[{"idx": 0, "type": "sentence_transformers.models.Transformer"}, {"idx": 1, "type": "sentence_transformers.models.Pooling"}, {"idx": 2, "type": "sentence_transformers.models.Normalize"}]"###.into(),
        r###"{"word_embedding_dimension": 384, "pooling_mode_mean_tokens": true}"###.into(),
        r###"{"max_seq_length": 256, "do_lower_case": false}"###.into(),
    ];
    write(dir, "config", "minilm", files.join("\0").as_bytes());
    let mut cls = config.clone();
    cls["architectures"] = serde_json::json!(["BertForSequenceClassification"]);
    cls["id2label"] = serde_json::json!({"0": "neg", "1": "pos"});
    write(dir, "config", "classifier", cls.to_string().as_bytes());

    // tokenizer: flags, vocabulary, NUL, text.
    let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n!\nthe\ncat\n##s\n.\n,\n\u{4e2d}\ncafe\n";
    let text = "Hello, world! The cats\u{301} caf\u{e9} \u{4e2d}\u{6587} [MASK] \t\u{0}x";
    write(
        dir,
        "tokenizer",
        "vocab",
        format!("\u{3f}{vocab}\0{text}").as_bytes(),
    );
    let json = r###"{"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "hello": 5, "##s": 6}}}"###;
    write(
        dir,
        "tokenizer",
        "json",
        format!("\u{1}{json}\0hellos hello").as_bytes(),
    );

    // safetensors: the fuzz target's configuration, f32 and f16, bare and classifier.
    let c = BertConfig::synthetic(2, 8, 2, 16, 16, 12);
    write(
        dir,
        "safetensors",
        "encoder_f32",
        &safetensors_file(&c, "", Dtype::F32),
    );
    write(
        dir,
        "safetensors",
        "encoder_f16",
        &safetensors_file(&c, "", Dtype::F16),
    );
    let cc = c.with_classifier(3);
    write(
        dir,
        "safetensors",
        "classifier",
        &safetensors_file(&cc, "bert.", Dtype::F32),
    );
}
