//! P1's session kept on disk between runs, so that a client that reconnects with the same
//! identity resumes its session instead of receiving the weights again.
//!
//! A session directory (mode 0700) holds:
//!
//! * `state.json`: the session id, both identities, the model fingerprint, the seeds P1
//!   shares with D and with P0, the preprocessing ids and next indices per pass shape, the
//!   passes ordered but not used, the passes used (so that P1 refuses to reuse a pass even
//!   before P0 does), and when it was saved;
//! * `setup.bin`: the shares of the vector parameters and P1's `F` matrices (raw
//!   little-endian words after a small header);
//! * `pass-PREP-INDEX.sfpp`: P1's prepared but unused passes (preprocessing streams).
//!
//! Everything here is P1's secret (its seeds and shares): files are created readable by
//! the owner only.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use secformer_core::dealer::material::Consumed;
use secformer_core::prg::Seed;
use secformer_core::share::AShare;
use serde::{Deserialize, Serialize};

use super::weights::SessionSetup;
use super::{ModelShape, PassShape};

const SETUP_MAGIC: &[u8; 4] = b"SFSS";
const SETUP_VERSION: u32 = 1;

/// A kept pass: its shape, id, file and what it cost to draw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedPass {
    /// Pass shape.
    pub shape: PassShape,
    /// Preprocessing id.
    pub prep: u64,
    /// Pass index.
    pub index: u32,
    /// File name in the session directory.
    pub file: String,
    /// Seconds it took to draw.
    pub seconds: f64,
    /// Bytes D sent for it.
    pub dealer_bytes: u64,
}

/// P1's small state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedState {
    /// The session id.
    pub session: u64,
    /// P0's and P1's identities.
    pub identities: [[u8; 32]; 2],
    /// The model fingerprint.
    pub model: [u8; 32],
    /// P1's seed shared with D.
    pub seed: Seed,
    /// The P0-P1 seed.
    pub pair: Seed,
    /// Per pass shape, its preprocessing id and next index.
    pub preps: Vec<(PassShape, u64, u32)>,
    /// Passes ordered at both parties and not used yet, in order.
    pub outstanding: Vec<(PassShape, u64, u32)>,
    /// Passes used.
    pub consumed: Consumed,
    /// Ready passes kept in files.
    pub passes: Vec<SavedPass>,
    /// Seconds since the Unix epoch when saved.
    pub saved_at: u64,
}

/// Creates `dir` readable by its owner only.
pub fn private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates `path` readable and writable by its owner only.
pub fn private_file(path: &Path) -> Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Writes the small state.
pub fn save_state(dir: &Path, s: &SavedState) -> Result<()> {
    private_dir(dir)?;
    let tmp = dir.join("state.json.tmp");
    serde_json::to_writer(BufWriter::new(private_file(&tmp)?), s)?;
    std::fs::rename(&tmp, dir.join("state.json"))?;
    Ok(())
}

/// Reads the small state.
pub fn load_state(dir: &Path) -> Result<SavedState> {
    let p = dir.join("state.json");
    let f = File::open(&p).with_context(|| format!("opening {}", p.display()))?;
    serde_json::from_reader(BufReader::new(f)).with_context(|| format!("reading {}", p.display()))
}

fn put_words(w: &mut impl Write, v: &[u64]) -> Result<()> {
    w.write_all(&(v.len() as u64).to_le_bytes())?;
    w.write_all(bytemuck::cast_slice(v))?;
    Ok(())
}

fn get_words(r: &mut impl Read, max: u64) -> Result<Vec<u64>> {
    let mut n = [0u8; 8];
    r.read_exact(&mut n)?;
    let n = u64::from_le_bytes(n);
    if n > max {
        bail!("setup.bin: a block of {n} words exceeds the model's size");
    }
    let mut v = vec![0u64; n as usize];
    r.read_exact(bytemuck::cast_slice_mut(&mut v))?;
    Ok(v)
}

/// Writes P1's setup (shares and `F` matrices).
pub fn save_setup(dir: &Path, s: &SessionSetup) -> Result<()> {
    private_dir(dir)?;
    let tmp = dir.join("setup.bin.tmp");
    let mut w = BufWriter::with_capacity(1 << 22, private_file(&tmp)?);
    w.write_all(SETUP_MAGIC)?;
    w.write_all(&SETUP_VERSION.to_le_bytes())?;
    let shape = serde_json::to_vec(&s.shape)?;
    w.write_all(&(shape.len() as u32).to_le_bytes())?;
    w.write_all(&shape)?;
    w.write_all(&(s.layer_params.len() as u32).to_le_bytes())?;
    for p in &s.layer_params {
        put_words(&mut w, AShare::raw_slice(p))?;
    }
    put_words(&mut w, AShare::raw_slice(&s.emb_ln))?;
    put_words(&mut w, AShare::raw_slice(&s.head_bias))?;
    w.write_all(&(s.f.len() as u32).to_le_bytes())?;
    let mut buf = Vec::new();
    for i in 0..s.f.len() {
        put_words(&mut w, s.f.get(i, &mut buf)?)?;
    }
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("writing setup.bin: {e}"))?
        .sync_all()?;
    std::fs::rename(&tmp, dir.join("setup.bin"))?;
    Ok(())
}

/// Reads P1's setup, checking it is for `shape`.
pub fn load_setup(dir: &Path, shape: &ModelShape) -> Result<SessionSetup> {
    let p = dir.join("setup.bin");
    let mut r = BufReader::with_capacity(
        1 << 22,
        File::open(&p).with_context(|| format!("opening {}", p.display()))?,
    );
    let mut head = [0u8; 8];
    r.read_exact(&mut head)?;
    if &head[..4] != SETUP_MAGIC || head[4..] != SETUP_VERSION.to_le_bytes() {
        bail!(
            "{} is not a secformer session setup of this version",
            p.display()
        );
    }
    let mut n = [0u8; 4];
    r.read_exact(&mut n)?;
    let len = u32::from_le_bytes(n) as usize;
    if len > 1 << 16 {
        bail!("{}: malformed header", p.display());
    }
    let mut js = vec![0u8; len];
    r.read_exact(&mut js)?;
    let saved: ModelShape = serde_json::from_slice(&js)?;
    if saved != *shape {
        bail!("{} holds a session of another model", p.display());
    }
    let max = (shape.vocab.max(shape.inter) * shape.hidden.max(shape.inter)) as u64;
    let shares = |v: Vec<u64>| -> Vec<AShare> { AShare::from_raw_slice(&v).to_vec() };
    r.read_exact(&mut n)?;
    let layers = u32::from_le_bytes(n) as usize;
    if layers != shape.layers {
        bail!(
            "{}: {layers} layers, the model has {}",
            p.display(),
            shape.layers
        );
    }
    let mut layer_params = Vec::with_capacity(layers);
    for _ in 0..layers {
        layer_params.push(shares(get_words(&mut r, max)?));
    }
    let emb_ln = shares(get_words(&mut r, max)?);
    let head_bias = shares(get_words(&mut r, max)?);
    r.read_exact(&mut n)?;
    let nf = u32::from_le_bytes(n) as usize;
    if nf != super::weights::weight_list(shape).len() {
        bail!("{}: wrong number of weight matrices", p.display());
    }
    let mut f = Vec::with_capacity(nf);
    for _ in 0..nf {
        f.push(get_words(&mut r, max)?);
    }
    Ok(SessionSetup {
        shape: shape.clone(),
        layer_params,
        emb_ln,
        head_bias,
        f: super::fmat::FMatrices::memory(f),
    })
}

/// The directory of P1's saved sessions for one server, dealer and model.
pub fn session_dir(root: &Path, server: &str, dealer: &str, model: &[u8; 32]) -> PathBuf {
    let key = super::fingerprint(&(server, dealer, model));
    let name: String = key[..8].iter().map(|b| format!("{b:02x}")).collect();
    root.join(name)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
