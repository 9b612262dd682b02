//! Secrets at rest: XChaCha20-Poly1305 with a random 24-byte nonce per value and the value's
//! place (tenant and column) as associated data, so a ciphertext copied into another row or
//! column does not decrypt.
//!
//! The master key comes from `OPTSYNC_MASTER_KEY` (base64 of 32 bytes) or from a key file
//! made on first run in the data directory with mode 0600.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::error::{Error, Result};

const KEY_FILE: &str = "master.key";

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(…)")
    }
}

fn decode_key(b64: &str, whence: &str) -> Result<[u8; 32]> {
    let raw = B64
        .decode(b64.trim())
        .map_err(|_| Error::Crypto(format!("{whence} is not base64")))?;
    raw.try_into()
        .map_err(|_| Error::Crypto(format!("{whence} must be 32 bytes (base64)")))
}

impl SecretBox {
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// Where the master key file lives in a data directory.
    pub fn key_file(data_dir: &Path) -> std::path::PathBuf {
        data_dir.join(KEY_FILE)
    }

    /// The master key from the environment value if given, else from the data directory's
    /// key file, which is created (0600) when missing.
    pub fn load(env_value: Option<&str>, data_dir: &Path) -> Result<Self> {
        if let Some(v) = env_value.filter(|v| !v.trim().is_empty()) {
            return Ok(Self::new(decode_key(v, "OPTSYNC_MASTER_KEY")?));
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Self::new(decode_key(&s, &path.display().to_string())?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir)?;
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&path)?;
                f.write_all(B64.encode(key).as_bytes())?;
                f.sync_all()?;
                tracing::info!(path = %path.display(), "created a new master key file; back it up with the database");
                Ok(Self::new(key))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Encrypts `plain` for the place named by `aad`; base64 of nonce ‖ ciphertext.
    pub fn seal(&self, plain: &[u8], aad: &str) -> Result<String> {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::Crypto("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(B64.encode(out))
    }

    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>> {
        let raw = B64
            .decode(sealed)
            .map_err(|_| Error::Crypto("stored secret is not base64".into()))?;
        if raw.len() < 24 + 16 {
            return Err(Error::Crypto("stored secret is truncated".into()));
        }
        let (nonce, ct) = raw.split_at(24);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::Crypto(
                    "a stored secret does not decrypt: wrong master key, or the row was tampered with"
                        .into(),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_place_and_with_their_key() {
        let b = SecretBox::new([7; 32]);
        let s = b.seal(b"KeapAK-secret", "tenant:acme:credential").unwrap();
        assert!(!s.contains("KeapAK"));
        assert_eq!(
            b.open(&s, "tenant:acme:credential").unwrap(),
            b"KeapAK-secret"
        );
        assert!(b.open(&s, "tenant:other:credential").is_err());
        assert!(
            SecretBox::new([8; 32])
                .open(&s, "tenant:acme:credential")
                .is_err()
        );
        assert_ne!(
            s,
            b.seal(b"KeapAK-secret", "tenant:acme:credential").unwrap(),
            "fresh nonce"
        );
    }

    #[test]
    fn the_key_file_is_made_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("optsync-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = SecretBox::load(None, &dir).unwrap();
        let sealed = a.seal(b"x", "p").unwrap();
        let b = SecretBox::load(None, &dir).unwrap();
        assert_eq!(b.open(&sealed, "p").unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(SecretBox::load(Some("bm90IDMyIGJ5dGVz"), &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
