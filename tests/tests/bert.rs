//! Secure BERT vs the plaintext forward: a small random model (2 layers, hidden 64, 4
//! heads) with both softmax variants, over in-memory links and TCP; and a classifier head.

use secformer_core::party::PartyId;
use secformer_host::model::plain;
use secformer_host::model::{BertConfig, BertWeights, Encoding, SoftmaxKind};
use secformer_host::secure::{run_session, Inference};
use secformer_tests::*;

fn encoding(ids: &[u32]) -> Encoding {
    Encoding {
        ids: ids.to_vec(),
        type_ids: vec![0; ids.len()],
        attention_mask: vec![1; ids.len()],
        truncated: false,
        untruncated_len: ids.len(),
    }
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn secure(net: Net, cfg: &BertConfig, w: &BertWeights, inputs: &[Encoding]) -> Vec<Inference> {
    let (_, r1) = run_with(
        net,
        |s| {
            run_session(s, cfg, Some(w), || None, |_| Ok(()), |_, _, _| {}).map_err(|e| {
                eprintln!("P0: {e:#}");
                secformer_core::Error::Param("P0 failed")
            })?;
            Ok(Vec::new())
        },
        |s| {
            let mut it = inputs.iter().cloned();
            let mut out = Vec::new();
            run_session(
                s,
                cfg,
                None,
                || it.next(),
                |r| {
                    out.push(r.clone());
                    Ok(())
                },
                |_, _, _| {},
            )
            .map_err(|e| {
                eprintln!("P1: {e:#}");
                secformer_core::Error::Param("P1 failed")
            })?;
            assert_eq!(s.party(), PartyId::P1);
            Ok(out)
        },
    )
    .unwrap();
    r1
}

#[test]
fn small_random_bert_matches_plaintext() {
    for softmax in [SoftmaxKind::Exact, SoftmaxKind::TwoQuad { c: 5.0 }] {
        let cfg = BertConfig::synthetic(2, 64, 4, 256, 120, 64).with_softmax(softmax);
        let w = BertWeights::random(&cfg, 11);
        let inputs = [
            encoding(&[1, 5, 9, 33, 2]),
            encoding(&[1, 100, 7, 7, 7, 50, 61, 3, 2]),
        ];
        for net in NETS {
            let got = secure(net, &cfg, &w, &inputs);
            assert_eq!(got.len(), inputs.len());
            for (enc, r) in inputs.iter().zip(&got) {
                let want = plain::forward_weights(&cfg, &w, enc).pooled_raw;
                let p: Vec<f64> = r.pooled.as_ref().unwrap().clone();
                let want: Vec<f64> = want.iter().map(|v| *v as f64).collect();
                let c = cosine(&p, &want);
                let d = max_abs_diff(&p, &want);
                assert!(c >= 0.999, "{softmax:?} {net:?}: cosine {c}, max diff {d}");
                assert!(d <= 0.05, "{softmax:?} {net:?}: max diff {d}");
            }
        }
    }
}

#[test]
fn classifier_head_matches_plaintext() {
    let cfg = BertConfig::synthetic(2, 64, 4, 256, 120, 64).with_classifier(3);
    let w = BertWeights::random(&cfg, 12);
    let inputs = [encoding(&[1, 5, 9, 33, 2]), encoding(&[1, 17, 2])];
    for net in NETS {
        let got = secure(net, &cfg, &w, &inputs);
        for (enc, r) in inputs.iter().zip(&got) {
            let want: Vec<f64> = plain::forward_weights(&cfg, &w, enc)
                .logits
                .unwrap()
                .iter()
                .map(|v| *v as f64)
                .collect();
            let l = r.logits.as_ref().unwrap();
            let d = max_abs_diff(l, &want);
            assert!(
                d <= 0.02,
                "{net:?}: logits differ by {d}: {l:?} vs {want:?}"
            );
            let arg = |v: &[f64]| {
                v.iter()
                    .enumerate()
                    .fold(0, |b, (i, x)| if *x > v[b] { i } else { b })
            };
            assert_eq!(arg(l), arg(&want));
        }
    }
}
