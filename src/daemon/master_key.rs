//! The master key file `<data_dir>/master.key` (DESIGN.md §5): 32 random bytes, created with
//! mode 0600 on first start, that seal every entry's Kerberos keys (`directory::secrets`).
//!
//! May import: `directory::secrets`. Invariant: this file is the only code that reads or writes
//! the key file, and a key file readable by group or others is refused, never used.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::directory::secrets::{MasterKey, MASTER_KEY_LEN};

/// File name of the master key inside `data_dir`.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Path of the master key file.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(MASTER_KEY_FILE)
}

/// Loads the master key, creating it (mode 0600) if the file does not exist yet. Refuses a
/// file whose mode grants any access to group or others.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<MasterKey> {
    let file = path(data_dir);
    match std::fs::metadata(&file) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "{} has mode {mode:04o}; the master key must be readable by its owner only \
                     (run: chmod 600 {})",
                    file.display(),
                    file.display()
                );
            }
            let bytes = zeroize::Zeroizing::new(
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?,
            );
            MasterKey::from_bytes(&bytes).with_context(|| format!("{}", file.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&file),
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

fn create(file: &Path) -> anyhow::Result<MasterKey> {
    let key = MasterKey::generate().context("generating the master key")?;
    // create_new: never overwrite a key that appeared meanwhile (another process).
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("creating {}", file.display()))?;
    f.write_all(key.bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", file.display()))?;
    debug_assert_eq!(key.bytes().len(), MASTER_KEY_LEN);
    tracing::info!(path = %file.display(), "created the Kerberos master key");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_0600_then_reloads_and_refuses_loose_modes() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let meta = std::fs::metadata(path(dir.path())).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let again = load_or_create(dir.path()).unwrap();
        assert_eq!(first.bytes(), again.bytes());
        std::fs::set_permissions(path(dir.path()), std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");
    }
}
