//! Signed download links: HMAC-SHA256 over an export id and an expiry.
//!
//! A link carries `expires` (Unix seconds) and `signature` (lowercase hex of
//! HMAC-SHA256 over `"<export_id>\n<expires>"`) in its query string. The
//! secret is 32 random bytes generated on first start and kept, hex-encoded,
//! in the service's state folder, so links survive a restart and no token
//! ever appears in a link. Signatures are compared in constant time
//! (`hmac::Mac::verify_slice`), so a forger learns nothing from timing.
//!
//! The secret file is written by `write_private`, which [`super::auth`]
//! also uses for a new token file.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why the signing key could not be read or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningKeyError {
    /// Reading or writing the key file failed.
    #[error("{path}: {error}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// The file holds something other than a long enough hex key.
    #[error("{path}: {problem}")]
    Unusable {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
}

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks download links. Cheap to clone behind an `Arc`.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never in logs or panic messages.
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer with the given secret key.
    pub fn new(key: impl Into<Vec<u8>>) -> Signer {
        Signer { key: key.into() }
    }

    /// Reads the secret at `path`, or generates one there (readable by the
    /// owner only) when the file does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Signer, SigningKeyError> {
        let unusable = |problem| SigningKeyError::Unusable {
            path: path.to_path_buf(),
            problem,
        };
        let io = |error| SigningKeyError::Io {
            path: path.to_path_buf(),
            error,
        };
        match fs::read_to_string(path) {
            Ok(text) => {
                let key = crate::hash::from_hex(text.trim())
                    .ok_or_else(|| unusable("not a hex-encoded signing key"))?;
                if key.len() < 16 {
                    return Err(unusable("signing key shorter than 16 bytes"));
                }
                Ok(Signer { key })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = random_bytes(32).map_err(io)?;
                write_private(path, crate::hash::to_hex(&key).as_bytes()).map_err(io)?;
                Ok(Signer { key })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The signature of a link to `export_id` valid until `expires` (Unix seconds).
    pub fn sign(&self, export_id: &str, expires: i64) -> String {
        crate::hash::to_hex(&self.mac(export_id, expires).finalize().into_bytes())
    }

    /// True when `signature` is the signature of (`export_id`, `expires`).
    /// The expiry itself is checked by the caller against its clock.
    pub fn verify(&self, export_id: &str, expires: i64, signature: &str) -> bool {
        let Some(bytes) = crate::hash::from_hex(signature) else {
            return false;
        };
        self.mac(export_id, expires).verify_slice(&bytes).is_ok()
    }

    fn mac(&self, export_id: &str, expires: i64) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("hmac takes any key length");
        // The newline separates the fields: an export id never holds one
        // (ids are UUIDs), so no two (id, expiry) pairs share a message.
        mac.update(export_id.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }
}

/// `n` bytes from the operating system's random source.
pub(super) fn random_bytes(n: usize) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; n];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| io::Error::other(format!("no random source: {e}")))?;
    Ok(bytes)
}

/// Writes a secret file, readable by its owner only where the platform
/// supports it, and never over an existing file.
pub(super) fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents).and_then(|()| file.sync_all())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_binds_id_and_expiry() {
        let signer = Signer::new(b"0123456789abcdef".to_vec());
        let sig = signer.sign("e1", 100);
        assert!(signer.verify("e1", 100, &sig));
        assert!(!signer.verify("e2", 100, &sig));
        assert!(!signer.verify("e1", 101, &sig));
        assert!(!signer.verify("e1", 100, "zz"));
        let other = Signer::new(b"fedcba9876543210".to_vec());
        assert!(!other.verify("e1", 100, &sig));
    }

    #[test]
    fn key_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let a = Signer::load_or_create(&path).unwrap();
        let b = Signer::load_or_create(&path).unwrap();
        assert_eq!(a.sign("x", 1), b.sign("x", 1));
        fs::write(&path, "abcd").unwrap();
        let err = Signer::load_or_create(&path).unwrap_err();
        assert!(matches!(err, SigningKeyError::Unusable { .. }), "{err}");
    }
}
