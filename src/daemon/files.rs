//! Files at rest: the data directory is the owner's only (0700) and every secret or data file
//! in it is 0600 (issue 9 item 8), whatever the process umask.
//!
//! Owns: creating private directories and tightening the modes of files that already exist
//! (an older dird, a restore, an operator's copy) at start, with a warning naming the file.
//! May import: std, tracing. Files are created private by their writers (`Store::open`,
//! `master_key`, `tls`, `backup`, `kdc::keytab`); this module only repairs what it finds.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and missing parents) with mode 0700, and tightens it to 0700 if it exists
/// with access for group or others.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    tighten(dir, 0o700)
}

/// Clears the group/other bits of `path` (to `mode`) if it exists and has any; logs a warning
/// when it had to. A missing file is not an error.
pub fn tighten(path: &Path, mode: u32) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    // Never follow a symlink an attacker may have planted: only real files and directories.
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let current = meta.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "mode {current:04o} gives access to group or others; changing it to {mode:04o}"
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_files_are_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        private_dir(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let f = dir.join("f");
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        tighten(&f, 0o600).unwrap();
        assert_eq!(mode(&f), 0o600);
        tighten(&dir.join("missing"), 0o600).unwrap();
    }
}
