//! Backups: the backup file format, taking a snapshot, restoring one, and the scheduled
//! snapshots with retention (`[backup]`).
//! May import: `store`, `config`, `audit` (for the RFC 3339 time). Invariants: a backup file
//! is written to `<out>.partial`, synced and renamed, so `<out>` is either complete or
//! absent; a restore verifies the checksum before anything in the data directory changes;
//! the master key is only put into a backup when asked to.
//!
//! # File format (version 1)
//!
//! All integers are big-endian.
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `DIRDBAK\n` |
//! | 4 | format version (1) |
//! | 4 | flags: bit 0 = a master key follows |
//! | 8 | creation time, seconds since the Unix epoch |
//! | 4 | master key length `k` (0 without a key) |
//! | k | the master key file's bytes (`<data_dir>/master.key`) |
//! | 8 | database length `n` |
//! | n | a redb database: a consistent copy of `dird.redb` ([`Store::backup`]) |
//! | 32 | SHA-256 of every byte before it |

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::BackupConfig;
use crate::store::Store;

/// The master key file inside the data directory (Kerberos keys are encrypted with it).
pub const MASTER_KEY_FILE: &str = "master.key";

/// File name suffix of backup files.
pub const SUFFIX: &str = ".dirdbak";

const MAGIC: &[u8; 8] = b"DIRDBAK\n";
const VERSION: u32 = 1;
const FLAG_MASTER_KEY: u32 = 1;
/// A master key file larger than this is not a key.
const MAX_KEY_LEN: u32 = 64 * 1024;

/// What a backup file holds besides the database.
#[derive(Debug)]
pub struct Restored {
    /// the master key bytes, if the backup has them
    pub master_key: Option<Zeroizing<Vec<u8>>>,
    /// when the backup was taken
    pub created: SystemTime,
}

/// `<data_dir>/master.key`
pub fn master_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(MASTER_KEY_FILE)
}

/// Reads the master key of a data directory, if there is one.
pub fn read_master_key(data_dir: &Path) -> anyhow::Result<Option<Zeroizing<Vec<u8>>>> {
    let path = master_key_path(data_dir);
    match std::fs::read(&path) {
        Ok(k) => Ok(Some(Zeroizing::new(k))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes a backup file `out` (which must not exist) from a redb snapshot file and an
/// optional master key.
pub fn write_container(
    snapshot: &Path,
    master_key: Option<&[u8]>,
    out: &Path,
    now: SystemTime,
) -> anyhow::Result<()> {
    if out.exists() {
        bail!("{} already exists; choose another file name", out.display());
    }
    let partial = with_suffix(out, ".partial");
    let result = write_partial(snapshot, master_key, &partial, now);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, out)
        .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
    sync_parent(out);
    Ok(())
}

fn write_partial(
    snapshot: &Path,
    master_key: Option<&[u8]>,
    partial: &Path,
    now: SystemTime,
) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut w = HashingWriter {
        inner: BufWriter::new(file),
        hash: Sha256::new(),
    };
    let db_len = std::fs::metadata(snapshot)
        .with_context(|| format!("reading {}", snapshot.display()))?
        .len();
    let key = master_key.unwrap_or(&[]);
    let key_len = u32::try_from(key.len()).context("master key too large")?;
    let created = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    w.write_all(MAGIC)?;
    w.write_all(&VERSION.to_be_bytes())?;
    let flags = if master_key.is_some() {
        FLAG_MASTER_KEY
    } else {
        0
    };
    w.write_all(&flags.to_be_bytes())?;
    w.write_all(&created.to_be_bytes())?;
    w.write_all(&key_len.to_be_bytes())?;
    w.write_all(key)?;
    w.write_all(&db_len.to_be_bytes())?;
    let mut src =
        File::open(snapshot).with_context(|| format!("reading {}", snapshot.display()))?;
    let copied = std::io::copy(&mut (&mut src).take(db_len), &mut w)?;
    if copied != db_len {
        bail!("{} changed while being copied", snapshot.display());
    }
    let digest = w.hash.finalize();
    let mut inner = w.inner;
    inner.write_all(&digest)?;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
}

/// Reads and verifies a backup file, writing its database to `db_out` (created, mode
/// 0600). On any error `db_out` is removed. Returns the master key and creation time.
pub fn read_container(file: &Path, db_out: &Path) -> anyhow::Result<Restored> {
    let result = read_into(file, db_out);
    if result.is_err() {
        let _ = std::fs::remove_file(db_out);
    }
    result
}

fn read_into(file: &Path, db_out: &Path) -> anyhow::Result<Restored> {
    use std::os::unix::fs::OpenOptionsExt;
    let total = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    let f = File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let mut r = HashingReader {
        inner: BufReader::new(f),
        hash: Sha256::new(),
    };
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .context("not a dird backup (too short)")?;
    if &magic != MAGIC {
        bail!("{} is not a dird backup file", file.display());
    }
    let version = read_u32(&mut r)?;
    if version != VERSION {
        bail!("backup format version {version} is not supported by this dird (it reads version {VERSION}); use a newer dird");
    }
    let flags = read_u32(&mut r)?;
    let created = UNIX_EPOCH + Duration::from_secs(read_u64(&mut r)?);
    let key_len = read_u32(&mut r)?;
    if key_len > MAX_KEY_LEN {
        bail!("backup is corrupt: master key length {key_len}");
    }
    let mut key = Zeroizing::new(vec![0u8; key_len as usize]);
    r.read_exact(&mut key).context("backup is truncated")?;
    let db_len = read_u64(&mut r)?;
    let header = 8 + 4 + 4 + 8 + 4 + u64::from(key_len) + 8;
    if header + db_len + 32 != total {
        bail!(
            "backup is truncated or corrupt: expected {} bytes, the file has {total}",
            header + db_len + 32
        );
    }
    {
        let out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db_out)
            .with_context(|| format!("creating {}", db_out.display()))?;
        let mut out = BufWriter::new(out);
        let copied = std::io::copy(&mut (&mut r).take(db_len), &mut out)?;
        if copied != db_len {
            bail!("backup is truncated");
        }
        let out = out.into_inner().map_err(|e| e.into_error())?;
        out.sync_all()?;
    }
    let computed = r.hash.finalize();
    let mut stored = [0u8; 32];
    r.inner
        .read_exact(&mut stored)
        .context("backup is truncated (no checksum)")?;
    if computed.as_slice() != stored {
        bail!("backup checksum mismatch: the file is corrupt");
    }
    Ok(Restored {
        master_key: (flags & FLAG_MASTER_KEY != 0).then_some(key),
        created,
    })
}

/// Takes a scheduled snapshot into `cfg.dir` and deletes the oldest beyond `cfg.keep`.
/// Returns the new file.
pub fn scheduled(
    store: &Store,
    cfg: &BackupConfig,
    data_dir: &Path,
    now: SystemTime,
) -> anyhow::Result<PathBuf> {
    super::files::private_dir(&cfg.dir)
        .with_context(|| format!("backup.dir: cannot create {}", cfg.dir.display()))?;
    let stamp = chrono::DateTime::<chrono::Utc>::from(now)
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    let out = cfg.dir.join(format!("dird-{stamp}{SUFFIX}"));
    if out.exists() {
        // Two snapshots in one second (a very short interval): keep the first.
        return Ok(out);
    }
    let tmp = cfg.dir.join(format!(".dird-{stamp}.redb"));
    let _ = std::fs::remove_file(&tmp);
    store
        .backup(&tmp)
        .with_context(|| format!("snapshot into {}", tmp.display()))?;
    let key = if cfg.include_master_key {
        read_master_key(data_dir)?
    } else {
        None
    };
    let written = write_container(&tmp, key.as_deref().map(|k| k.as_slice()), &out, now);
    let _ = std::fs::remove_file(&tmp);
    written?;
    prune(&cfg.dir, cfg.keep)?;
    Ok(out)
}

/// Deletes the oldest scheduled snapshots (`dird-*.dirdbak`) beyond `keep`.
pub fn prune(dir: &Path, keep: usize) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("dird-") && n.ends_with(SUFFIX))
        })
        .collect();
    // The names embed a sortable UTC time stamp.
    files.sort();
    let excess = files.len().saturating_sub(keep);
    for old in &files[..excess] {
        std::fs::remove_file(old).with_context(|| format!("deleting {}", old.display()))?;
        tracing::info!(file = %old.display(), "deleted old backup (retention)");
    }
    Ok(())
}

/// `path` with `suffix` appended to its file name.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Best-effort fsync of a file's directory, so a rename survives a crash.
pub fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

fn read_u32(r: &mut impl Read) -> anyhow::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).context("backup is truncated")?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(r: &mut impl Read) -> anyhow::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).context("backup is truncated")?;
    Ok(u64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_round_trips_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("snap.redb");
        std::fs::write(&snap, b"pretend this is a redb file").unwrap();
        let out = dir.path().join("b.dirdbak");
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        write_container(&snap, Some(b"KEY"), &out, t).unwrap();
        assert!(
            write_container(&snap, None, &out, t).is_err(),
            "refuses to overwrite"
        );
        let db = dir.path().join("db");
        let r = read_container(&out, &db).unwrap();
        assert_eq!(
            r.master_key.as_deref().map(|k| k.as_slice()),
            Some(&b"KEY"[..])
        );
        assert_eq!(r.created, t);
        assert_eq!(std::fs::read(&db).unwrap(), b"pretend this is a redb file");

        let mut bytes = std::fs::read(&out).unwrap();
        let n = bytes.len();
        bytes[n - 40] ^= 1;
        let bad = dir.path().join("bad.dirdbak");
        std::fs::write(&bad, &bytes).unwrap();
        let db2 = dir.path().join("db2");
        assert!(read_container(&bad, &db2).is_err());
        assert!(!db2.exists(), "a failed restore leaves no database behind");
        std::fs::write(&bad, &bytes[..n - 1]).unwrap();
        assert!(read_container(&bad, &db2).is_err());
    }

    #[test]
    fn prune_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for s in ["20260101T000000Z", "20260102T000000Z", "20260103T000000Z"] {
            std::fs::write(dir.path().join(format!("dird-{s}{SUFFIX}")), b"x").unwrap();
        }
        std::fs::write(dir.path().join("other.txt"), b"x").unwrap();
        prune(dir.path(), 2).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "dird-20260102T000000Z.dirdbak",
                "dird-20260103T000000Z.dirdbak",
                "other.txt"
            ]
        );
    }
}
