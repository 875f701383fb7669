//! Secure BERT vs the plaintext forward, through the preprocessing pool: a small random
//! model (2 layers, hidden 64, 4 heads) with both softmax variants, secret and public
//! lengths, batches, a classifier head and spilling to files; over in-memory links and TCP.
//! Every pass runs from prepared material only (no dealer traffic online), and its traffic
//! equals the plan's prediction.

use secformer_host::bert::local::{self, Links, LocalOptions};
use secformer_host::bert::{plan, Lengths, ModelShape};
use secformer_host::model::plain;
use secformer_host::model::{BertConfig, BertWeights, Encoding, SoftmaxKind};
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

fn run(
    net: Net,
    cfg: &BertConfig,
    w: &BertWeights,
    encs: &[Encoding],
    opts: &LocalOptions,
) -> local::LocalRun {
    let [d0, d1, p] = links(net);
    local::run(Links { d0, d1, p }, cfg, w, encs, opts).unwrap_or_else(|e| panic!("{net:?}: {e:#}"))
}

fn inputs() -> Vec<Encoding> {
    vec![
        encoding(&[1, 5, 9, 33, 2]),
        encoding(&[1, 100, 7, 7, 7, 50, 61, 3, 2]),
        encoding(&[1, 17, 2]),
    ]
}

/// Checks every output against the plaintext forward and every pass's accounting.
fn check(cfg: &BertConfig, w: &BertWeights, encs: &[Encoding], r: &local::LocalRun, what: &str) {
    let m = ModelShape::of(cfg);
    let outs: Vec<&Vec<f64>> = r.passes.iter().flat_map(|p| p.outputs.iter()).collect();
    assert_eq!(outs.len(), encs.len(), "{what}");
    for (enc, got) in encs.iter().zip(outs) {
        let p = plain::forward_weights(cfg, w, enc);
        let want: Vec<f64> = match &p.logits {
            Some(l) => l.iter().map(|v| *v as f64).collect(),
            None => p.pooled_raw.iter().map(|v| *v as f64).collect(),
        };
        let d = max_abs_diff(got, &want);
        assert!(d <= 0.05, "{what}: {} tokens: max diff {d}", enc.ids.len());
        if p.logits.is_none() {
            let c = cosine(got, &want);
            assert!(c >= 0.999, "{what}: {} tokens: cosine {c}", enc.ids.len());
        }
    }
    for pass in &r.passes {
        assert_eq!(pass.online_dealer_bytes, 0, "{what}: dealer traffic online");
        for (party, got) in [
            (secformer_core::party::PartyId::P1, pass.online),
            (secformer_core::party::PartyId::P0, pass.p0_online),
        ] {
            let want = plan::cached(&m, &pass.shape, party).unwrap().traffic;
            assert_eq!(
                got.payload_sent, want.payload_sent,
                "{what}: {party} bytes vs plan"
            );
            assert_eq!(got.rounds, want.rounds, "{what}: {party} rounds vs plan");
        }
    }
}

#[test]
fn secret_lengths_both_softmaxes_match_plaintext() {
    for softmax in [SoftmaxKind::Exact, SoftmaxKind::TwoQuad { c: 5.0 }] {
        let cfg = BertConfig::synthetic(2, 64, 4, 256, 120, 64).with_softmax(softmax);
        let w = BertWeights::random(&cfg, 11);
        let mut opts = LocalOptions::for_model(&ModelShape::of(&cfg));
        opts.p1.buckets = vec![8, 16, 64];
        let encs = inputs();
        for net in NETS {
            let r = run(net, &cfg, &w, &encs, &opts);
            check(&cfg, &w, &encs, &r, &format!("{softmax:?} {net:?}"));
            let buckets: Vec<usize> = r.passes.iter().map(|p| p.shape.bucket).collect();
            assert_eq!(buckets, vec![8, 16, 8]);
        }
    }
}

#[test]
fn public_lengths_and_batches_match_plaintext() {
    let cfg =
        BertConfig::synthetic(2, 64, 4, 256, 120, 64).with_softmax(SoftmaxKind::TwoQuad { c: 5.0 });
    let w = BertWeights::random(&cfg, 13);
    let encs = inputs();
    let mut opts = LocalOptions::for_model(&ModelShape::of(&cfg));
    opts.p1.lengths = Lengths::Public;
    let r = run(Net::Mem, &cfg, &w, &encs, &opts);
    check(&cfg, &w, &encs, &r, "public lengths");
    let mut opts = LocalOptions::for_model(&ModelShape::of(&cfg));
    opts.batch = 3;
    let r = run(Net::Tcp, &cfg, &w, &encs, &opts);
    assert_eq!(r.passes.len(), 1);
    assert_eq!(r.passes[0].shape.batch, 3);
    check(&cfg, &w, &encs, &r, "batch of 3");
}

#[test]
fn classifier_head_matches_plaintext() {
    let cfg = BertConfig::synthetic(2, 64, 4, 256, 120, 64).with_classifier(3);
    let w = BertWeights::random(&cfg, 12);
    let encs = inputs();
    let opts = LocalOptions::for_model(&ModelShape::of(&cfg));
    for net in NETS {
        let r = run(net, &cfg, &w, &encs, &opts);
        check(&cfg, &w, &encs, &r, &format!("classifier {net:?}"));
    }
}

#[test]
fn passes_spilled_to_files_give_the_same_results() {
    let cfg = BertConfig::synthetic(2, 64, 4, 256, 120, 64);
    let w = BertWeights::random(&cfg, 14);
    let encs = inputs();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = LocalOptions::for_model(&ModelShape::of(&cfg));
    opts.memory_budget = 0;
    opts.spill_dir = dir.path().to_path_buf();
    let r = run(Net::Mem, &cfg, &w, &encs, &opts);
    check(&cfg, &w, &encs, &r, "spilled");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "pass files are removed ({} left)",
        left.len()
    );
}

#[test]
fn material_read_from_files_equals_material_kept_in_memory_bit_for_bit() {
    let cfg = BertConfig::synthetic(2, 64, 4, 256, 120, 64);
    let w = BertWeights::random(&cfg, 15);
    let encs = inputs();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = LocalOptions::for_model(&ModelShape::of(&cfg));
    opts.test_seed = Some(99);
    let memory = run(Net::Mem, &cfg, &w, &encs, &opts);
    opts.memory_budget = 0;
    opts.spill_dir = dir.path().to_path_buf();
    let files = run(Net::Mem, &cfg, &w, &encs, &opts);
    check(&cfg, &w, &encs, &files, "from files");
    assert_eq!(memory.passes.len(), files.passes.len());
    for (a, b) in memory.passes.iter().zip(&files.passes) {
        assert_eq!(
            a.outputs, b.outputs,
            "outputs differ between memory and files"
        );
    }
    // The comparison means something only if another seed gives other low bits.
    opts.test_seed = Some(100);
    let other = run(Net::Mem, &cfg, &w, &encs, &opts);
    assert_ne!(memory.passes[0].outputs, other.passes[0].outputs);
}

#[test]
fn preprocessing_for_another_prep_identity_model_or_bucket_is_refused_by_name() {
    use secformer_core::dealer::material::{read_header, write_header, Header, FORMAT_VERSION};
    use secformer_core::party::PartyId;
    use secformer_host::bert::p0::SessionIds;
    use secformer_host::bert::PassShape;

    let shape = PassShape {
        batch: 1,
        bucket: 16,
        lengths: Lengths::Secret,
    };
    let header = Header {
        version: FORMAT_VERSION,
        prep: 0x1234,
        first: 0,
        count: 1,
        party: PartyId::P1,
        identities: [[1; 32], [2; 32]],
        model: [3; 32],
        batch: 1,
        bucket: 16,
        plan: 77,
        requests: 0,
        pass_bytes: 4,
        checksums: true,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pass.sfpp");
    let mut bytes = Vec::new();
    write_header(&mut bytes, &header).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let on_disk = std::fs::read(&path).unwrap();
    let read = read_header(&mut on_disk.as_slice()).unwrap();
    assert_eq!(read, header);

    let ids = SessionIds {
        session: 1,
        identities: [[1; 32], [2; 32]],
        model: [3; 32],
    };
    let refused = |ids: &SessionIds, prep: u64, shape: &PassShape| -> String {
        match ids.expect(PartyId::P1, prep, shape, 77).check(&read) {
            Ok(()) => panic!("accepted a mismatched header"),
            Err(e) => e.to_string(),
        }
    };
    ids.expect(PartyId::P1, 0x1234, &shape, 77)
        .check(&read)
        .unwrap();
    let e = refused(&ids, 0x1235, &shape);
    assert!(e.contains("preprocessing id"), "{e}");
    let mut other = ids.clone();
    other.identities[0] = [9; 32];
    let e = refused(&other, 0x1234, &shape);
    assert!(e.contains("identity of P0"), "{e}");
    let mut other = ids.clone();
    other.identities[1] = [9; 32];
    let e = refused(&other, 0x1234, &shape);
    assert!(e.contains("identity of P1"), "{e}");
    let mut other = ids.clone();
    other.model = [4; 32];
    let e = refused(&other, 0x1234, &shape);
    assert!(e.contains("model"), "{e}");
    let bigger = PassShape {
        bucket: 32,
        ..shape
    };
    let e = refused(&ids, 0x1234, &bigger);
    assert!(e.contains("sequence bucket"), "{e}");
    let e = match ids.expect(PartyId::P0, 0x1234, &shape, 77).check(&read) {
        Ok(()) => panic!("accepted another party's share"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("party"), "{e}");
}
