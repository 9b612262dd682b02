//! What ACME leaves in the data directory: `DATA_DIR/acme/<directory>/`, one folder per ACME
//! directory URL so that a staging account or certificate is never used against production
//! (or the other way round). `account.json` holds the account's credentials (its private
//! key), `certificate.pem` the certificate's private key and chain in one file, so that a
//! crash can never leave a key beside another key's certificate. Every file is written whole
//! (a temporary file renamed over it) and readable by the service's user alone.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use instant_acme::AccountCredentials;
use sha2::Digest as _;

use super::certificate::Issued;
use crate::error::{Error, Result};

/// The folder of one ACME directory's account and certificate.
#[derive(Debug, Clone)]
pub struct AcmeStore {
    dir: PathBuf,
}

impl AcmeStore {
    /// `DATA_DIR/acme/<host>-<digest of the URL>`: readable by people, distinct per URL.
    pub fn new(data_dir: &Path, directory: &str) -> Self {
        let host = url::Url::parse(directory)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "directory".into());
        let digest = hex::encode(sha2::Sha256::digest(directory.as_bytes()));
        let host: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            dir: data_dir
                .join("acme")
                .join(format!("{host}-{}", &digest[..16])),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn account_file(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    fn certificate_file(&self) -> PathBuf {
        self.dir.join("certificate.pem")
    }

    /// The stored account, if there is one.
    pub fn account(&self) -> Result<Option<AccountCredentials>> {
        let Some(text) = read_if_exists(&self.account_file())? else {
            return Ok(None);
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| Error::CorruptState(format!("{}: {e}", self.account_file().display())))
    }

    pub fn save_account(&self, credentials: &AccountCredentials) -> Result<()> {
        let text = serde_json::to_vec(credentials)
            .map_err(|e| Error::CorruptState(format!("ACME account: {e}")))?;
        write_private(&self.account_file(), &text)
    }

    /// The stored certificate, if there is one that parses (one that does not is logged and
    /// treated as none: a new one is ordered).
    pub fn certificate(&self) -> Result<Option<Issued>> {
        let file = self.certificate_file();
        let Some(text) = read_if_exists(&file)? else {
            return Ok(None);
        };
        match Issued::from_pem(&String::from_utf8_lossy(&text)) {
            Ok(issued) => Ok(Some(issued)),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "stored ACME certificate unusable; ordering a new one");
                Ok(None)
            }
        }
    }

    pub fn save_certificate(&self, issued: &Issued) -> Result<()> {
        write_private(&self.certificate_file(), issued.pem().as_bytes())
    }
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Config(format!("{}: {e}", path.display()))),
    }
}

/// Writes `bytes` to `path` whole: a temporary file in the same folder (mode 0600 from its
/// creation, never readable by others), synced, then renamed over `path`.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map_or_else(Default::default, |n| n.to_string_lossy()),
        std::process::id()
    ));
    let fail = |e: std::io::Error| Error::Config(format!("{}: {e}", tmp.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(fail)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    // The rename itself is durable once the folder is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The ACME folders, mode 0700: they hold private keys.
fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn directories_never_share_a_folder_and_files_are_private() {
        let data = std::env::temp_dir().join(format!("optsync-acme-store-{}", std::process::id()));
        let prod = AcmeStore::new(&data, "https://acme-v02.api.letsencrypt.org/directory");
        let staging = AcmeStore::new(
            &data,
            "https://acme-staging-v02.api.letsencrypt.org/directory",
        );
        assert_ne!(prod.dir(), staging.dir());
        assert!(prod.dir().starts_with(data.join("acme")));
        assert!(prod.account().unwrap().is_none());
        assert!(prod.certificate().unwrap().is_none());
        let file = prod.dir().join("account.json");
        write_private(&file, b"{}").unwrap();
        write_private(&file, b"{\"again\":1}").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"{\"again\":1}");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(prod.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(
            std::fs::read_dir(prod.dir()).unwrap().count(),
            1,
            "no temporary left"
        );
        std::fs::remove_dir_all(&data).unwrap();
    }
}
