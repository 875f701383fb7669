//! The device's provisioned keys and its entropy, read through semihosting.
//!
//! A real board would keep its secret key and the pinned public keys of D and P0 in flash
//! (written at provisioning) and draw ephemeral keys from its TRNG. QEMU's mps2-an386 has
//! neither, so the firmware reads `secformer keygen` files from the host directory given as
//! `keys=DIR` (`DIR/device.key`, `DIR/dealer.pub`, `DIR/p0.pub`) and 32-byte seeds from the
//! host's `/dev/urandom`. These reads go from QEMU to the host's file system directly, not
//! through P0's relay.

use secformer_core::noise::{parse_key_file, StaticKey, KEY_LEN};

use crate::secure::DeviceKeys;
use crate::semi;

/// Why the keys could not be loaded (a report line).
pub type KeyError = heapless::String<96>;

fn key_of(dir: &str, file: &str, tag: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let mut path: heapless::String<300> = heapless::String::new();
    let fail = |what: &str| {
        let mut m = KeyError::new();
        for s in [what, " ", file] {
            let _ = m.push_str(s);
        }
        m
    };
    if path
        .push_str(dir)
        .and(path.push('/'))
        .and(path.push_str(file))
        .is_err()
    {
        return Err(fail("key directory path too long for"));
    }
    let mut text = [0u8; 512];
    let n = semi::read_file(&path, &mut text).map_err(|_| fail("cannot read"))?;
    let s = core::str::from_utf8(&text[..n]).map_err(|_| fail("not UTF-8:"))?;
    let key = parse_key_file(s, tag).ok_or_else(|| fail("no valid key line in"));
    text.fill(0);
    key
}

/// Loads the provisioned keys from `dir`.
pub fn load(dir: &str) -> Result<DeviceKeys, KeyError> {
    let secret = key_of(dir, "device.key", "secformer-secret")?;
    Ok(DeviceKeys {
        device: StaticKey::from_secret(secret),
        dealer: key_of(dir, "dealer.pub", "secformer-public")?,
        p0: key_of(dir, "p0.pub", "secformer-public")?,
    })
}

/// 32 fresh random bytes (the host's `/dev/urandom`: this board's stand-in for a TRNG).
pub fn entropy() -> Result<[u8; KEY_LEN], KeyError> {
    let mut b = [0u8; KEY_LEN];
    match semi::read_file("/dev/urandom", &mut b) {
        Ok(KEY_LEN) => Ok(b),
        _ => Err(
            KeyError::try_from("cannot read /dev/urandom for an ephemeral key").unwrap_or_default(),
        ),
    }
}
