//! On-disk format upgrades, run by `Store::open` inside its opening write transaction.
//! May import: `redb`, `store`. Invariant: each step upgrades exactly one version, leaves
//! the file valid for the next, and records the new version in meta; an error aborts the
//! whole transaction, so a failed upgrade leaves the file as it was.
//!
//! To change the format: bump `tables::FORMAT_VERSION` to N+1, add `(N, vN_to_vN1)`
//! to `STEPS`, and a test that opens a file written in format N.

use redb::WriteTransaction;

use super::tables::{FORMAT_VERSION, META, META_FORMAT_VERSION};
use super::StoreError;

/// One upgrade step: rewrites a format-`from` file into format `from + 1`.
type Step = fn(&WriteTransaction) -> Result<(), StoreError>;

/// The upgrade steps, keyed by the version they upgrade from. Format 1 is the first format,
/// so there are none yet; the next format adds `(1, v1_to_v2)`.
const STEPS: &[(u32, Step)] = &[];

/// Upgrades a file from format `found` to `FORMAT_VERSION`, one version at a time.
/// Errors: `FormatVersion` if there is no path from `found` (too old or too new).
pub(super) fn upgrade(txn: &WriteTransaction, found: u32) -> Result<(), StoreError> {
    let no_path = StoreError::FormatVersion {
        found,
        expected: FORMAT_VERSION,
    };
    if found > FORMAT_VERSION {
        return Err(no_path);
    }
    for from in found..FORMAT_VERSION {
        let step = STEPS
            .iter()
            .find(|(v, _)| *v == from)
            .map(|(_, step)| *step)
            .ok_or_else(|| no_path.clone())?;
        step(txn)?;
        record_version(txn, from + 1)?;
    }
    Ok(())
}

/// Writes the format version to meta.
pub(super) fn record_version(txn: &WriteTransaction, version: u32) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    meta.insert(META_FORMAT_VERSION, version.to_be_bytes().as_slice())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_path_from_unknown_versions() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("m.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        assert_eq!(
            upgrade(&txn, 0),
            Err(StoreError::FormatVersion {
                found: 0,
                expected: FORMAT_VERSION
            })
        );
        assert_eq!(upgrade(&txn, FORMAT_VERSION), Ok(()));
    }
}
