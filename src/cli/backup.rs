//! `dird backup` and `dird restore`.
//! May import: `daemon::{backup, control, open, load_schema}`, `store`, `config`.
//! Invariants: an online backup goes through the running daemon's control socket (the
//! daemon holds the database exclusively); a restore never runs against a live daemon and
//! never replaces a database without `--force`; the master key is copied only when asked.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context};

use crate::config::Config;
use crate::daemon::backup::{self, master_key_path, read_master_key, with_suffix};
use crate::daemon::{self, control, DB_FILE};
use crate::store::Store;

/// `dird backup --out FILE [--include-master-key]`
pub(super) fn backup(config: &Config, out: &Path, include_master_key: bool) -> anyhow::Result<()> {
    if out.exists() {
        bail!("{} already exists; choose another file name", out.display());
    }
    let key = if include_master_key {
        let key = read_master_key(&config.data_dir)?;
        if key.is_none() {
            eprintln!(
                "dird: note: {} does not exist; the backup has no master key",
                master_key_path(&config.data_dir).display()
            );
        }
        key
    } else {
        None
    };
    let now = wall_clock();
    match control::request(&config.data_dir, "snapshot")? {
        Some(reply) => {
            // Online: the daemon wrote a consistent snapshot into its data directory.
            let Some(snapshot) = reply.strip_prefix("ok ") else {
                bail!("the running dird refused the snapshot: {reply}");
            };
            let snapshot = Path::new(snapshot);
            let written =
                backup::write_container(snapshot, key.as_deref().map(|k| k.as_slice()), out, now);
            let _ = std::fs::remove_file(snapshot);
            written?;
            println!("backup written to {} (online snapshot)", out.display());
        }
        None => {
            // Offline: no daemon; open the database directly.
            let db = config.data_dir.join(DB_FILE);
            if !db.exists() {
                bail!("no database at {}; nothing to back up", db.display());
            }
            let (opened, _) = daemon::open(config, false).map_err(|e| {
                anyhow::anyhow!(
                    "{e:#}\n(a daemon holds the database but its control socket does not answer)"
                )
            })?;
            let tmp = with_suffix(out, ".snapshot");
            let _ = std::fs::remove_file(&tmp);
            opened
                .store
                .backup(&tmp)
                .with_context(|| format!("snapshot into {}", tmp.display()))?;
            let written =
                backup::write_container(&tmp, key.as_deref().map(|k| k.as_slice()), out, now);
            let _ = std::fs::remove_file(&tmp);
            written?;
            println!("backup written to {} (offline)", out.display());
        }
    }
    if !include_master_key {
        eprintln!(
            "dird: the backup does not contain the master key; keep a copy of {} separately \
             (without it, restored Kerberos keys cannot be read), or use --include-master-key",
            master_key_path(&config.data_dir).display()
        );
    }
    Ok(())
}

/// `dird restore FILE [--force]`
pub(super) fn restore(config: &Config, file: &Path, force: bool) -> anyhow::Result<()> {
    if let Some(reply) = control::request(&config.data_dir, "ping")? {
        bail!(
            "a dird is running on {} ({reply}); stop it first (systemctl stop dird)",
            config.data_dir.display()
        );
    }
    let db = config.data_dir.join(DB_FILE);
    if db.exists() && !force {
        bail!(
            "{} exists; restoring replaces it: add --force to overwrite it",
            db.display()
        );
    }
    crate::daemon::files::private_dir(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let tmp = with_suffix(&db, ".restoring");
    let _ = std::fs::remove_file(&tmp);
    let restored = backup::read_container(file, &tmp)?;
    let checked = check_database(config, &tmp);
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context("the backup's database does not open"));
    }
    let key_path = master_key_path(&config.data_dir);
    let existing_key = read_master_key(&config.data_dir)?;
    match (&restored.master_key, &existing_key) {
        (Some(new), Some(old)) if new.as_slice() != old.as_slice() && !force => {
            let _ = std::fs::remove_file(&tmp);
            bail!(
                "{} differs from the master key in the backup; add --force to replace it",
                key_path.display()
            );
        }
        _ => {}
    }
    if db.exists() {
        refuse_if_locked(config, &db)?;
    }
    std::fs::rename(&tmp, &db)
        .with_context(|| format!("renaming {} to {}", tmp.display(), db.display()))?;
    backup::sync_parent(&db);
    match (restored.master_key, existing_key) {
        (Some(key), _) => {
            crate::daemon::tls::write_private(&with_suffix(&key_path, ".tmp"), &key)
                .with_context(|| format!("writing {}", key_path.display()))?;
            std::fs::rename(with_suffix(&key_path, ".tmp"), &key_path)?;
            backup::sync_parent(&key_path);
            println!("master key restored to {}", key_path.display());
        }
        (None, Some(_)) => {
            println!("kept the existing master key {}", key_path.display());
        }
        (None, None) => {
            eprintln!(
                "dird: WARNING: the backup has no master key and {} does not exist: Kerberos \
                 keys in the restored database cannot be decrypted. Copy the master key of \
                 the backed-up instance to {} before starting dird, or reset every password.",
                key_path.display(),
                key_path.display()
            );
        }
    }
    let created = chrono::DateTime::<chrono::Utc>::from(restored.created).to_rfc3339();
    println!(
        "restored {} (backup taken {created}); start dird to serve it",
        db.display()
    );
    Ok(())
}

/// Opens a database file with the configured schema and indexes (and closes it again).
fn check_database(config: &Config, path: &Path) -> anyhow::Result<()> {
    let schema = Arc::new(daemon::load_schema(config)?);
    let store = Store::open(path, schema, daemon::index_config(config))?;
    store.read()?;
    Ok(())
}

/// Refuses when another process holds the database (a daemon without a control socket).
fn refuse_if_locked(config: &Config, db: &Path) -> anyhow::Result<()> {
    match check_database(config, db) {
        Err(e) if format!("{e:#}").contains("already open") => {
            bail!(
                "{} is in use by another process; stop dird first",
                db.display()
            )
        }
        _ => Ok(()),
    }
}

#[allow(clippy::disallowed_methods)] // the CLI is a composition root; it may read the clock
fn wall_clock() -> SystemTime {
    SystemTime::now()
}
