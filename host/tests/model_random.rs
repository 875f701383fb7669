//! Randomly initialised models and the reference building blocks: shapes, finiteness,
//! determinism, both softmax kinds, masking, and known values of the helpers.

use secformer_host::model::plain::{
    self, gelu, layernorm, linear, softmax_2quad, softmax_exact, try_forward_weights,
};
use secformer_host::model::{
    BertConfig, BertWeights, Encoding, LayerNorm, Linear, Matrix, SoftmaxKind,
};

fn encoding(ids: &[u32], pad: usize) -> Encoding {
    let mut e = Encoding {
        ids: ids.to_vec(),
        type_ids: vec![0; ids.len()],
        attention_mask: vec![1; ids.len()],
        truncated: false,
        untruncated_len: ids.len(),
    };
    e.pad_to(ids.len() + pad, 0);
    e
}

#[test]
fn random_model_forward_both_softmaxes() {
    let base = BertConfig::synthetic(2, 64, 4, 256, 100, 32);
    let ids = [2u32, 17, 45, 99, 3, 50, 3];
    for softmax in [SoftmaxKind::Exact, SoftmaxKind::TwoQuad { c: 5.0 }] {
        for classifier in [false, true] {
            let mut config = base.clone().with_softmax(softmax);
            if classifier {
                config = config.with_classifier(4);
            }
            let w = BertWeights::random(&config, 42);
            w.check_shapes(&config).unwrap();
            assert_eq!(w, BertWeights::random(&config, 42), "deterministic");
            assert_ne!(w.word_emb, BertWeights::random(&config, 43).word_emb);
            let out = plain::forward_weights(&config, &w, &encoding(&ids, 0));
            assert_eq!(out.tokens, ids.len());
            assert_eq!(out.hidden.len(), ids.len() * 64);
            assert_eq!(out.pooled.len(), 64);
            assert!(out.hidden.iter().chain(&out.pooled).all(|v| v.is_finite()));
            assert_eq!(out.logits.as_ref().map(Vec::len), classifier.then_some(4));
            // Post-LayerNorm rows have mean ~beta, spread ~gamma: no blow-up.
            assert!(out.hidden.iter().all(|v| v.abs() < 10.0));
            // Padding changes nothing for the real tokens and the pooled vector.
            let padded = plain::forward_weights(&config, &w, &encoding(&ids, 5));
            assert_eq!(padded.tokens, ids.len() + 5);
            let d = out
                .pooled
                .iter()
                .zip(&padded.pooled)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                d < 1e-6,
                "{softmax:?}: padding moved the pooled output by {d}"
            );
        }
    }
}

#[test]
fn the_two_softmaxes_differ_but_both_work() {
    let config = BertConfig::synthetic(1, 32, 2, 64, 50, 16);
    let w = BertWeights::random(&config, 5);
    let enc = encoding(&[2, 10, 11, 12, 3], 0);
    let a = plain::forward_weights(&config, &w, &enc);
    let b = plain::forward_weights(
        &config.clone().with_softmax(SoftmaxKind::TwoQuad { c: 5.0 }),
        &w,
        &enc,
    );
    assert_ne!(a.hidden, b.hidden);
}

#[test]
fn bad_encodings_are_errors() {
    let config = BertConfig::synthetic(1, 16, 2, 32, 20, 8);
    let w = BertWeights::random(&config, 1);
    let err = |e: Encoding| format!("{:#}", try_forward_weights(&config, &w, &e).unwrap_err());
    assert!(err(encoding(&[2, 25, 3], 0)).contains("vocab"));
    assert!(err(encoding(&[2; 9], 0)).contains("max_position_embeddings"));
    assert!(err(encoding(&[], 0)).contains("empty"));
    let mut e = encoding(&[2, 3], 0);
    e.type_ids[1] = 2;
    assert!(err(e).contains("type"));
    let mut e = encoding(&[2, 3], 0);
    e.attention_mask = vec![0, 0];
    assert!(err(e).contains("mask"));
}

#[test]
fn helper_values() {
    assert!((gelu(1.0) - 0.841_344_746_068_542_9).abs() < 1e-12);
    assert!((gelu(-3.0) - -0.004_049_694_094_890_31).abs() < 1e-12);
    assert_eq!(gelu(0.0), 0.0);

    let s = [1.0, 2.0, 3.0, 100.0];
    let mask = [true, true, true, false];
    let p = softmax_exact(&s, &mask);
    let z = 1f64.exp() + 2f64.exp() + 3f64.exp();
    assert!((p[2] - 3f64.exp() / z).abs() < 1e-12);
    assert_eq!(p[3], 0.0);
    let q = softmax_2quad(&s, &mask, 5.0);
    assert!((q[0] - 36.0 / (36.0 + 49.0 + 64.0)).abs() < 1e-12);
    assert_eq!(q[3], 0.0);
    assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-12);

    let lin = Linear {
        w: Matrix::from_vec(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        b: vec![0.5, 0.0, -0.5],
    };
    // [1, 1] x W + b, and a second row [2, 0].
    assert_eq!(
        linear(&[1.0, 1.0, 2.0, 0.0], &lin),
        [5.5, 7.0, 8.5, 2.5, 4.0, 5.5]
    );

    let ln = LayerNorm {
        gamma: vec![2.0; 4],
        beta: vec![1.0; 4],
        eps: 0.0,
    };
    let y = layernorm(&[1.0, 2.0, 3.0, 4.0], &ln);
    let sd = 1.25f64.sqrt();
    for (yi, xi) in y.iter().zip([1.0, 2.0, 3.0, 4.0]) {
        assert!((yi - (2.0 * (xi - 2.5) / sd + 1.0)).abs() < 1e-12);
    }
}
