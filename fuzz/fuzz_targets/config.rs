//! The configuration loader: `config.json` alone (`BertConfig::from_hf_json`), and a whole
//! checkpoint directory's public files (`load_config`: config, tokenizer config,
//! tokenizer.json's options, sentence-transformers modules, pooling and max length), with
//! the input split at NUL bytes into the six files. Errors are fine; panics are not, and
//! an accepted configuration passes its own validation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secformer_fuzz::parts;
use secformer_host::model::{load_config, BertConfig};

const FILES: [&str; 6] = [
    "config.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "modules.json",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
];

fuzz_target!(|data: &[u8]| {
    let p = parts(data, FILES.len());
    if let Ok(text) = std::str::from_utf8(p[0]) {
        if let Ok(c) = BertConfig::from_hf_json(text) {
            c.validate().expect("an accepted config.json validates");
        }
    }
    let dir = tempfile::tempdir_in(scratch()).expect("temporary directory");
    std::fs::create_dir(dir.path().join("1_Pooling")).expect("1_Pooling");
    for (name, body) in FILES.iter().zip(&p) {
        std::fs::write(dir.path().join(name), body).expect("write");
    }
    if let Ok(c) = load_config(dir.path()) {
        c.validate().expect("an accepted checkpoint validates");
    }
});

/// RAM-backed scratch space when there is one.
fn scratch() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}
