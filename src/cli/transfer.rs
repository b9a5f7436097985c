//! `dird import` and `dird export`: RFC 2849 LDIF in and out.
//! Import streams the file: content and add records are written in batches (one transaction
//! each, schema-checked, tier-limited); changetype modify/delete/moddn records go through
//! `directory` one by one. Export writes a consistent snapshot (one read transaction),
//! parents before children, so that its output imports back: into an empty data directory,
//! an export is restored as is (no second provisioning; SIDs, GUIDs and hashes kept).

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::local::is_user;
use crate::backend::{Backend as _, WriteCtx};
use crate::cli::admin::{open_directory, open_directory_with};
use crate::config::Config;
use crate::daemon;
use crate::daemon::provision::{self, META_PROVISIONED};
use crate::directory::password::PasswordRules;
use crate::directory::pwvalue::Writer;
use crate::directory::secrets::{self, KeyContext};
use crate::ldif::{LdifReader, LdifRecord, LdifWriter};
use crate::model::Entry;
use crate::store::StoreRead;

pub(super) fn import(config: &Config, file: &Path, batch_size: usize) -> anyhow::Result<()> {
    let restore = prepare_restore(config, file)?;
    let (opened, dir) = open_directory_with(config, !restore)?;
    // A restore marks the instance provisioned with its first batch, so that `serve` does not
    // provision a second domain root over it.
    let meta: &[(&str, &[u8])] = if restore {
        &[(META_PROVISIONED, b"1")]
    } else {
        &[]
    };
    let admin = dir.local_admin();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The tier's caps hold for the whole file: an import that would cross them is refused
    // before its first write (the batches below are separate transactions).
    check_room(config, &opened, file, &rt)?;
    let rules = PasswordRules {
        policy: rt
            .block_on(dir.domain_policy())
            .map_err(|e| anyhow!("reading the domain password policy: {e}"))?,
        history: Vec::new(),
    };
    let f = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = LdifReader::new(BufReader::with_capacity(1 << 20, f));
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let ctx = WriteCtx {
        by: admin.dn().clone(),
        now: SystemTime::now(),
    };
    let mut batch: Vec<Entry> = Vec::with_capacity(batch_size);
    let (mut added, mut changed) = (0u64, 0u64);
    let flush = |batch: &mut Vec<Entry>, added: &mut u64| -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len() as u64;
        let first = batch[0].dn.to_string();
        opened
            .local
            .add_batch_blocking(std::mem::take(batch), &ctx, meta)
            .map_err(|e| anyhow!("batch starting at {first}: {e}"))?;
        *added += n;
        Ok(())
    };
    while let Some(rec) = reader.next() {
        let rec = rec.map_err(|e| anyhow!("{}: {e}", file.display()))?;
        match rec {
            LdifRecord::Content(mut e) | LdifRecord::Add(mut e) => {
                hash_passwords(&mut e, &opened, &rules)?;
                batch.push(e);
                if batch.len() >= batch_size {
                    flush(&mut batch, &mut added)?;
                    bar.set_position(reader.bytes_read());
                    bar.set_message(format!("{added} entries"));
                }
            }
            other => {
                flush(&mut batch, &mut added)?;
                rt.block_on(apply_change(&dir, &admin, other))?;
                changed += 1;
            }
        }
    }
    flush(&mut batch, &mut added)?;
    bar.finish_and_clear();
    println!("imported {added} entries, applied {changed} change records");
    Ok(())
}

/// An export imported into an empty data directory is a restore: when the store holds no
/// domain yet and the file's first record is the domain root, the domain is not provisioned;
/// the file's entries (with their SIDs, GUIDs and password hashes) become the directory, and
/// the domain SID is taken from the root's objectSid. Returns whether this is a restore.
fn prepare_restore(config: &Config, file: &Path) -> anyhow::Result<bool> {
    let f = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let first = LdifReader::new(BufReader::new(f)).next();
    let root = match first {
        Some(Ok(LdifRecord::Content(e) | LdifRecord::Add(e))) if e.dn == config.domain.base => e,
        _ => return Ok(false),
    };
    let (opened, _) = daemon::open(config, false)?;
    if provision::is_provisioned(&opened.store).map_err(|e| anyhow!("{e}"))? {
        return Ok(false);
    }
    let sid = match root.values("objectSid").first() {
        Some(sid) => sid.clone(),
        None => provision::new_domain_sid(),
    };
    provision::set_domain_sid(&opened.store, &sid).map_err(|e| anyhow!("{e}"))?;
    Ok(true)
}

/// Hashes plaintext `userPassword` values and derives the Kerberos keys of principals, as an
/// LDAP add would; `{ARGON2}` values (from an export, with their sealed keys) are kept.
fn hash_passwords(
    e: &mut Entry,
    opened: &crate::daemon::Opened,
    rules: &PasswordRules,
) -> anyhow::Result<()> {
    let keys = KeyContext {
        realm: &opened.domain.realm,
        master: &opened.master,
    };
    let dn = e.dn.to_string();
    // Import is a trusted writer: an `{ARGON2}` value within bounds (an export) is kept;
    // any other `{SCHEME}` value is refused, naming the scheme.
    secrets::prepare_new_entry(e, Some(keys), Writer::Trusted, rules, SystemTime::now())
        .map_err(|err| anyhow!("{dn}: {err}"))
}

/// Counts the objects and users the file adds (content and add records; deletions in the
/// same file are not credited) and refuses the import if current usage plus those would
/// cross the tier's caps (adminLimitExceeded's message, with "nothing was written").
fn check_room(
    config: &Config,
    opened: &crate::daemon::Opened,
    file: &Path,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let f = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let (mut objects, mut users) = (0u64, 0u64);
    for rec in LdifReader::new(BufReader::with_capacity(1 << 20, f)) {
        match rec.map_err(|e| anyhow!("{}: {e}", file.display()))? {
            LdifRecord::Content(e) | LdifRecord::Add(e) => {
                objects += 1;
                users += u64::from(is_user(&e));
            }
            _ => {}
        }
    }
    let usage = rt
        .block_on(opened.local.usage())
        .map_err(|e| anyhow!("reading the object count: {e}"))?;
    let (max_users, max_objects) = config.tier.limits();
    let tier = config.tier.name();
    if usage.objects + objects > max_objects {
        bail!(
            "import refused, nothing was written: tier {tier} allows {max_objects} directory \
             objects; {} exist and {} adds {objects}",
            usage.objects,
            file.display()
        );
    }
    if let Some(max_users) = max_users {
        if usage.users + users > max_users {
            bail!(
                "import refused, nothing was written: tier {tier} allows {max_users} users; {} \
                 exist and {} adds {users}",
                usage.users,
                file.display()
            );
        }
    }
    Ok(())
}

async fn apply_change(
    dir: &crate::directory::Directory,
    admin: &crate::directory::Authenticated,
    rec: LdifRecord,
) -> anyhow::Result<()> {
    let now = SystemTime::now();
    match rec {
        LdifRecord::Content(e) | LdifRecord::Add(e) => {
            let dn = e.dn.to_string();
            dir.add(admin, e, now)
                .await
                .with_context(|| format!("add {dn}"))
        }
        LdifRecord::Delete(dn) => dir
            .delete(admin, &dn, now)
            .await
            .with_context(|| format!("delete {dn}")),
        LdifRecord::Modify { dn, mods } => dir
            .modify(admin, &dn, mods, true, now)
            .await
            .with_context(|| format!("modify {dn}")),
        LdifRecord::ModDn {
            dn,
            new_rdn,
            delete_old_rdn,
            new_superior,
        } => {
            let rdn = crate::model::Rdn::parse(&new_rdn)
                .map_err(|e| anyhow!("moddn {dn}: newrdn: {e}"))?;
            dir.rename(admin, &dn, rdn, delete_old_rdn, new_superior, now)
                .await
                .with_context(|| format!("moddn {dn}"))
        }
    }
}

pub(super) fn export(config: &Config, out: Option<&Path>) -> anyhow::Result<()> {
    let (opened, _dir) = open_directory(config)?;
    let sink: Box<dyn Write> = match out {
        Some(p) => {
            // An export holds every entry (hashes stay out, but names and attributes do not):
            // owner-only, whatever the umask.
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(p)
                .with_context(|| format!("cannot create {}", p.display()))?;
            crate::daemon::files::tighten(p, 0o600)
                .with_context(|| format!("chmod {}", p.display()))?;
            Box::new(f)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = LdifWriter::new(BufWriter::with_capacity(1 << 20, sink));
    w.write_version()?;
    let txn = opened.store.read().map_err(|e| anyhow!("{e}"))?;
    let mut n = 0u64;
    // Breadth-first from the root: parents always precede their children.
    for id in txn.subtree(0).map_err(|e| anyhow!("{e}"))? {
        if let Some(e) = txn.entry(id).map_err(|e| anyhow!("{e}"))? {
            w.write_entry(&e)?;
            n += 1;
        }
    }
    w.into_inner().flush()?;
    if out.is_some() {
        println!("exported {n} entries");
    }
    Ok(())
}
