//! Command-line pieces: `secformer keygen`, and the `--key/--trust/--insecure` flags an
//! endpoint command flattens in.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use super::identity::{Identity, TrustStore};
use super::{LinkOptions, LinkSecurity};

/// `secformer keygen`: a new identity on disk.
#[derive(Args, Debug, Clone)]
pub struct KeygenArgs {
    /// The endpoint's name (1-64 of A-Z a-z 0-9 . _ -), e.g. p0, p1, dealer.
    #[arg(long)]
    pub name: String,
    /// Directory for NAME.key (secret, mode 0600) and NAME.pub (give it to the peers).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace existing files of that name.
    #[arg(long)]
    pub force: bool,
}

/// Runs `keygen`; returns what to print.
pub fn keygen(args: &KeygenArgs) -> Result<String> {
    let id = Identity::generate(&args.name)?;
    let (key, public) = id.save(&args.out, args.force)?;
    Ok(format!(
        "wrote {} (secret, mode 0600: keep it private) and {}:\n{}\n\
         pass `--key {}` to this endpoint and `--trust {}` to its peers",
        key.display(),
        public.display(),
        id.public_line(),
        key.display(),
        public.display()
    ))
}

/// The flags of an endpoint that opens links: its key, whom it trusts, or `--insecure`.
#[derive(Args, Debug, Clone, Default)]
pub struct LinkArgs {
    /// This endpoint's secret key (NAME.key from `secformer keygen`).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// A peer's public key file to accept (NAME.pub); repeat for each peer.
    #[arg(long = "trust", value_name = "FILE")]
    pub trust: Vec<PathBuf>,
    /// Run without encryption or authentication: anyone who reaches the port is served and
    /// anyone on the path reads everything. For debugging on a trusted machine only.
    #[arg(long, conflicts_with_all = ["key", "trust"])]
    pub insecure: bool,
    /// Seconds a peer has to complete the link handshake.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub handshake_timeout: u64,
}

impl LinkArgs {
    /// The security these flags select: `--key` with at least one `--trust`, or
    /// `--insecure`; anything else is an error that says what to pass.
    pub fn security(&self) -> Result<LinkSecurity> {
        if self.insecure {
            return Ok(LinkSecurity::Insecure);
        }
        let Some(key) = &self.key else {
            bail!(
                "links are authenticated: pass --key FILE (create one with `secformer keygen \
                 --name NAME --out DIR`) and --trust FILE for each peer's .pub, or --insecure"
            );
        };
        if self.trust.is_empty() {
            bail!("--key needs at least one --trust FILE (a peer's .pub) to accept anyone");
        }
        let identity = Identity::load(key)?;
        let trust = TrustStore::load(&self.trust)?;
        Ok(LinkSecurity::authenticated(identity, trust))
    }

    /// Link options with this handshake timeout and a read timeout.
    pub fn options(&self, read_timeout: Duration) -> LinkOptions {
        LinkOptions {
            handshake_timeout: Duration::from_secs(self.handshake_timeout.max(1)),
            read_timeout,
            ..LinkOptions::default()
        }
    }
}
