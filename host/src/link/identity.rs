//! Who an endpoint is and whom it trusts: static X25519 identities, their key files, and
//! the trust store that maps pinned public keys to names.
//!
//! Files (text, one record a line, `#` starts a comment):
//!
//! * `NAME.pub`: `secformer-public NAME HEX`, the 32-byte public key in hex. Copy it to
//!   the peers that should accept this endpoint; a trust file is any number of such lines.
//! * `NAME.key`: `secformer-secret NAME HEX`, the 32-byte secret in hex, mode 0600. Loading
//!   refuses a key file that others may read, as ssh does.
//!
//! A name is 1 to 64 characters of `A-Z a-z 0-9 . _ -`. Names are local labels: a peer
//! is recognised by its key, and the name shown is the one *our* trust file gives it.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, Zeroizing};

/// Bytes of an X25519 key.
pub const KEY_LEN: usize = 32;
const PUBLIC_TAG: &str = "secformer-public";
const SECRET_TAG: &str = "secformer-secret";

/// An X25519 public key: what identifies an endpoint.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// The key in lowercase hex (64 characters), as in `.pub` files.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A short form for messages: the first 8 and last 4 hex digits, e.g.
    /// `3f2a9c01…7e91` (search the `.pub` files for the prefix).
    pub fn fingerprint(&self) -> String {
        let h = self.to_hex();
        format!("{}…{}", &h[..8], &h[h.len() - 4..])
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut k = [0u8; KEY_LEN];
        hex::decode_to_slice(s, &mut k).ok()?;
        Some(PublicKey(k))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

/// Checks a name: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    ensure!(
        ok,
        "bad key name {name:?}: use 1 to 64 characters of A-Z a-z 0-9 . _ -"
    );
    Ok(())
}

/// This endpoint: a name and a static X25519 key pair. The secret is wiped on drop
/// (`x25519_dalek::StaticSecret` zeroizes itself) and never printed.
pub struct Identity {
    name: String,
    secret: StaticSecret,
    public: PublicKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({} {})", self.name, self.public.fingerprint())
    }
}

impl Identity {
    /// A fresh key pair from the operating system's random source. Used by `keygen` and,
    /// never written to disk, by commands that start every endpoint themselves.
    pub fn generate(name: &str) -> Result<Self> {
        check_name(name)?;
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(&mut bytes[..]).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(Self::from_secret(name, &bytes))
    }

    pub(crate) fn from_secret(name: &str, bytes: &[u8; KEY_LEN]) -> Self {
        let secret = StaticSecret::from(*bytes);
        let public = PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        Identity {
            name: name.to_string(),
            secret,
            public,
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The secret key bytes, for the handshake (borrowed: no copy to wipe).
    pub(crate) fn secret_bytes(&self) -> &[u8; KEY_LEN] {
        self.secret.as_bytes()
    }

    /// The `.pub` line: `secformer-public NAME HEX`.
    pub fn public_line(&self) -> String {
        format!("{PUBLIC_TAG} {} {}", self.name, self.public.to_hex())
    }

    /// Loads a `.key` file written by [`Identity::save`] (`secformer keygen`).
    pub fn load(path: &Path) -> Result<Self> {
        let text = Zeroizing::new(
            fs::read_to_string(path).with_context(|| format!("reading key {}", path.display()))?,
        );
        let mut found = None;
        for (no, line) in records(&text) {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(SECRET_TAG), Some(name), Some(hex), None) if found.is_none() => {
                    check_name(name).with_context(|| format!("{}:{no}", path.display()))?;
                    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
                    hex::decode_to_slice(hex, &mut bytes[..]).map_err(|_| {
                        anyhow::anyhow!(
                            "{}:{no}: the secret is not {} hex digits",
                            path.display(),
                            2 * KEY_LEN
                        )
                    })?;
                    found = Some(Self::from_secret(name, &bytes));
                }
                (Some(PUBLIC_TAG), ..) => bail!(
                    "{} is a public key file; --key takes the secret .key file",
                    path.display()
                ),
                _ => bail!(
                    "{}:{no}: expected one line `{SECRET_TAG} NAME HEX`",
                    path.display()
                ),
            }
        }
        let id = found.with_context(|| format!("{} holds no secret key", path.display()))?;
        check_private(path)?;
        Ok(id)
    }

    /// Writes `DIR/NAME.key` (mode 0600) and `DIR/NAME.pub`; refuses to replace either
    /// unless `force`. Each file is written to a temporary name and renamed, so a crash
    /// leaves either the old file or the new one. Returns the two paths.
    pub fn save(&self, dir: &Path, force: bool) -> Result<(PathBuf, PathBuf)> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let key = dir.join(format!("{}.key", self.name));
        let public = dir.join(format!("{}.pub", self.name));
        for p in [&key, &public] {
            if !force && fs::symlink_metadata(p).is_ok() {
                bail!("{} exists; pass --force to replace it", p.display());
            }
        }
        let mut secret_text = Zeroizing::new(format!(
            "# secformer secret key: keep private; whoever holds it can act as {:?}\n\
             {SECRET_TAG} {} ",
            self.name, self.name
        ));
        let mut hex_secret = hex::encode(self.secret.as_bytes());
        secret_text.push_str(&hex_secret);
        secret_text.push('\n');
        hex_secret.zeroize();
        write_atomically(&key, secret_text.as_bytes(), 0o600)?;
        let public_text = format!(
            "# secformer public key of {:?}: give it to the peers that should accept it \
             (--trust FILE)\n{}\n",
            self.name,
            self.public_line()
        );
        write_atomically(&public, public_text.as_bytes(), 0o644)?;
        Ok((key, public))
    }
}

/// Non-empty, non-comment lines with their 1-based numbers.
fn records(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::metadata(path).with_context(|| format!("reading key {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    ensure!(
        mode & 0o077 == 0,
        "{} is readable by others (mode {mode:03o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    );
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<()> {
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let write = || -> std::io::Result<()> {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        anyhow::anyhow!("writing {}: {e}", path.display())
    })
}

/// A trusted peer: its name and where that trust came from.
#[derive(Debug, Clone)]
struct Trusted {
    name: String,
    source: String,
}

/// The public keys this endpoint accepts, each with a name (from `--trust` files, or the
/// ephemeral identities of one run).
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: HashMap<PublicKey, Trusted>,
    sources: Vec<String>,
}

impl TrustStore {
    /// The trusted keys.
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.keys()
    }

    /// An empty store (trusts nobody).
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads `.pub`-format trust files (each may hold several keys).
    pub fn load(files: &[PathBuf]) -> Result<Self> {
        let mut store = TrustStore::new();
        for f in files {
            store.load_file(f)?;
        }
        Ok(store)
    }

    fn load_file(&mut self, path: &Path) -> Result<()> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("reading trust file {}", path.display()))?;
        let source = path.display().to_string();
        let before = self.keys.len();
        for (no, line) in records(&text) {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(PUBLIC_TAG), Some(name), Some(hex), None) => {
                    check_name(name).with_context(|| format!("{source}:{no}"))?;
                    let key = PublicKey::from_hex(hex).with_context(|| {
                        format!("{source}:{no}: the key is not {} hex digits", 2 * KEY_LEN)
                    })?;
                    self.add(name, key, &source)?;
                }
                (Some(SECRET_TAG), ..) => bail!(
                    "{source} holds a secret key; --trust takes the peer's .pub file (and the \
                     secret should stay with its owner)"
                ),
                _ => bail!("{source}:{no}: expected `{PUBLIC_TAG} NAME HEX`"),
            }
        }
        ensure!(self.keys.len() > before, "trust file {source} holds no key");
        self.note_source(&source);
        Ok(())
    }

    fn note_source(&mut self, source: &str) {
        if !self.sources.iter().any(|s| s == source) {
            self.sources.push(source.to_string());
        }
    }

    /// Trusts `key` under `name`. The same key under two names is an error (which name
    /// would a message show?); the same name for several keys is allowed (rotation).
    pub fn add(&mut self, name: &str, key: PublicKey, source: &str) -> Result<()> {
        if let Some(t) = self.keys.get(&key) {
            ensure!(
                t.name == name,
                "key {} is trusted as {:?} ({}) and as {name:?} ({source})",
                key.fingerprint(),
                t.name,
                t.source
            );
            return Ok(());
        }
        self.keys.insert(
            key,
            Trusted {
                name: name.to_string(),
                source: source.to_string(),
            },
        );
        self.note_source(source);
        Ok(())
    }

    /// Trusts an identity of this run (never written to disk).
    pub fn add_ephemeral(&mut self, id: &Identity) -> Result<()> {
        self.add(id.name(), id.public(), "ephemeral keys of this run")
    }

    /// The name a trusted key goes by, or `None` if it is not trusted.
    pub fn name_of(&self, key: &PublicKey) -> Option<&str> {
        self.keys.get(key).map(|t| t.name.as_str())
    }

    /// Where the trusted keys come from (file names), for messages.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Number of trusted keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
