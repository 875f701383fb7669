//! The weights loader: any bytes as `model.safetensors` for a small BERT configuration
//! (and for the same configuration as a classifier). Errors are fine; panics and
//! out-of-range weights in an accepted file are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secformer_host::model::weights::MAX_PARAM;
use secformer_host::model::{BertConfig, BertWeights};

fuzz_target!(|data: &[u8]| {
    let base = BertConfig::synthetic(2, 8, 2, 16, 16, 12);
    for config in [base.clone(), base.with_classifier(3)] {
        if let Ok(w) = BertWeights::from_safetensors_bytes(data, &config) {
            w.check_shapes(&config)
                .expect("an accepted file has the config's shapes");
            assert!(w.word_emb.data.iter().all(|v| v.abs() <= MAX_PARAM));
        }
    }
});
