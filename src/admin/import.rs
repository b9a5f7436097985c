//! `dird import`, for both transports: the tier check over the whole file before the first
//! write, then record-aligned chunks applied in bounded batches (one transaction each) and
//! change records one by one through `directory`.
//! May import: `admin`, `backend::local` (batch writes), `ldif`, `directory`.

use std::io::BufReader;
use std::time::SystemTime;

use serde_json::json;

use crate::audit::Kind;
use crate::backend::local::is_user;
use crate::backend::WriteCtx;
use crate::directory::password::PasswordRules;
use crate::directory::DirError;
use crate::ldif::{LdifReader, LdifRecord};
use crate::model::{Entry, Rdn};

use super::{dir_fail, fail, Admin, AdminError, Operator, Reply};

impl Admin {
    /// Starts an import of a file with `objects` content/add records (`users` of them
    /// users): refused, before anything is written, if the tier's caps would be crossed.
    /// Content records are written in transactions of `batch` entries; `meta` records go
    /// into the first one (an offline restore marks the instance provisioned).
    pub async fn import_begin(
        &self,
        op: &Operator,
        objects: u64,
        users: u64,
        batch: usize,
        meta: Vec<(&'static str, Vec<u8>)>,
    ) -> Result<Importer, AdminError> {
        let usage = self
            .dir
            .usage()
            .await
            .map_err(|e| dir_fail("reading the object count", &e))?;
        let (max_users, max_objects) = self.config.tier.limits();
        let tier = self.config.tier.name();
        let refused = if usage.objects + objects > max_objects {
            Some(format!(
                "import refused, nothing was written: tier {tier} allows {max_objects} directory \
                 objects; {} exist and the file adds {objects}",
                usage.objects
            ))
        } else {
            match max_users {
                Some(max) if usage.users + users > max => Some(format!(
                    "import refused, nothing was written: tier {tier} allows {max} users; {} \
                     exist and the file adds {users}",
                    usage.users
                )),
                _ => None,
            }
        };
        if let Some(msg) = refused {
            let err: Result<(), DirError> = Err(DirError::AdminLimit(msg.clone()));
            self.record(op, Kind::LimitRefusal, "import", "", vec![], &err);
            return Err(fail(format!(
                "{msg}; raise `tier` in the config, or delete unused objects"
            )));
        }
        let rules = PasswordRules {
            policy: self
                .dir
                .domain_policy()
                .await
                .map_err(|e| dir_fail("reading the domain password policy", &e))?,
            history: Vec::new(),
        };
        #[allow(clippy::disallowed_methods)] // admin is a composition root; it reads the clock
        let now = SystemTime::now();
        Ok(Importer {
            op: *op,
            rules,
            ctx: WriteCtx {
                by: self.admin().dn().clone(),
                now,
            },
            batch: batch.max(1),
            meta,
            pending: Vec::new(),
            added: 0,
            changed: 0,
            deferred: false,
            unsynced: false,
        })
    }
}

/// An import in progress (see [`Admin::import_begin`]).
pub struct Importer {
    op: Operator,
    rules: PasswordRules,
    ctx: WriteCtx,
    batch: usize,
    meta: Vec<(&'static str, Vec<u8>)>,
    pending: Vec<Entry>,
    added: u64,
    changed: u64,
    /// Batches commit without waiting for the disk (offline imports only).
    deferred: bool,
    /// A deferred batch was committed since the last durable commit.
    unsynced: bool,
}

impl Importer {
    /// Applies whole LDIF records: content and add records in batches (one transaction
    /// each, schema-checked, tier-limited), change records one by one through `directory`.
    /// Everything given is committed when this returns. Returns (added, changed) so far.
    pub async fn chunk(&mut self, admin: &Admin, ldif: &[u8]) -> Result<(u64, u64), AdminError> {
        for rec in LdifReader::new(BufReader::new(ldif)) {
            let rec = rec.map_err(|e| fail(format!("LDIF: {e}")))?;
            match rec {
                LdifRecord::Content(mut e) | LdifRecord::Add(mut e) => {
                    // Hashes (and entries without a password) are prepared here; only
                    // cleartext passwords make the round trip through the hashing pool.
                    let ready = admin
                        .dir
                        .prepare_imported_inline(&mut e, &self.rules)
                        .map_err(|err| fail(format!("{}: {err}", e.dn)))?;
                    let e = if ready {
                        e
                    } else {
                        let dn = e.dn.to_string();
                        admin
                            .dir
                            .prepare_imported(e, self.rules.clone())
                            .await
                            .map_err(|err| fail(format!("{dn}: {err}")))?
                    };
                    self.pending.push(e);
                    if self.pending.len() >= self.batch {
                        self.flush(admin).await?;
                    }
                }
                other => {
                    self.flush(admin).await?;
                    apply_change(admin, &self.op, other).await?;
                    self.changed += 1;
                }
            }
        }
        self.flush(admin).await?;
        Ok((self.added, self.changed))
    }

    /// Offline imports: content batches are committed with `Durability::None` (no fsync per
    /// batch); [`Importer::sync`] makes all of them durable with one durable commit and must
    /// run before the import is reported, on success and on error. A crash in between leaves
    /// the store as of its last durable commit (before the import, or after its last change
    /// record), consistent, and the import simply did not happen. Not for the daemon: its LDAP
    /// clients would see (and could act on) entries that a crash takes back.
    pub fn defer_durability(&mut self) {
        self.deferred = true;
    }

    /// Makes every batch committed so far durable (see [`Importer::defer_durability`]).
    pub async fn sync(&mut self, admin: &Admin) -> Result<(), AdminError> {
        if !self.unsynced {
            return Ok(());
        }
        let local = admin.local.clone();
        tokio::task::spawn_blocking(move || local.sync_blocking())
            .await
            .map_err(|e| fail(format!("import task failed: {e}")))?
            .map_err(|e| dir_fail("making the import durable", &DirError::from(e)))?;
        self.unsynced = false;
        Ok(())
    }

    /// Ends the import.
    pub fn finish(self) -> Reply {
        Reply::new(
            format!(
                "imported {} entries, applied {} change records",
                self.added, self.changed
            ),
            json!({ "added": self.added, "changed": self.changed }),
        )
    }

    async fn flush(&mut self, admin: &Admin) -> Result<(), AdminError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let n = batch.len() as u64;
        let first = batch[0].dn.to_string();
        let local = admin.local.clone();
        let ctx = self.ctx.clone();
        let meta = std::mem::take(&mut self.meta);
        let deferred = self.deferred;
        let done = tokio::task::spawn_blocking(move || {
            let meta: Vec<(&str, &[u8])> = meta.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            if deferred {
                local.add_batch_deferred_blocking(batch, &ctx, &meta)
            } else {
                local.add_batch_blocking(batch, &ctx, &meta)
            }
        })
        .await
        .map_err(|e| fail(format!("import task failed: {e}")))?;
        let done = done.map_err(DirError::from);
        admin.record(
            &self.op,
            Kind::Write,
            "import",
            &first,
            vec![format!("{n} entries")],
            &done,
        );
        done.map_err(|e| dir_fail(&format!("batch starting at {first}"), &e))?;
        self.unsynced |= deferred;
        self.added += n;
        // Let LDAP clients' tasks run between two batches.
        tokio::task::yield_now().await;
        Ok(())
    }
}

async fn apply_change(admin: &Admin, op: &Operator, rec: LdifRecord) -> Result<(), AdminError> {
    #[allow(clippy::disallowed_methods)] // admin is a composition root; it reads the clock
    let now = SystemTime::now();
    match rec {
        LdifRecord::Content(e) | LdifRecord::Add(e) => admin.add(op, e, now).await,
        LdifRecord::Delete(dn) => admin.delete(op, &dn, now).await.map(|_| ()),
        LdifRecord::Modify { dn, mods } => admin.modify(op, &dn, mods, "modify", now).await,
        LdifRecord::ModDn {
            dn,
            new_rdn,
            delete_old_rdn,
            new_superior,
        } => {
            let rdn = Rdn::parse(&new_rdn).map_err(|e| fail(format!("moddn {dn}: newrdn: {e}")))?;
            let done = admin
                .dir
                .rename(&admin.admin(), &dn, rdn, delete_old_rdn, new_superior, now)
                .await;
            admin.record(op, Kind::Write, "modrdn", &dn.to_string(), vec![], &done);
            done.map_err(|e| dir_fail(&format!("moddn {dn}"), &e))
        }
    }
}

/// Counts the content and add records (and the users among them) of an LDIF file, for
/// [`Admin::import_begin`].
pub fn count_records(file: &std::path::Path) -> Result<(u64, u64), AdminError> {
    let f = std::fs::File::open(file)
        .map_err(|e| fail(format!("cannot open {}: {e}", file.display())))?;
    let (mut objects, mut users) = (0u64, 0u64);
    for rec in LdifReader::new(BufReader::with_capacity(1 << 20, f)) {
        match rec.map_err(|e| fail(format!("{}: {e}", file.display())))? {
            LdifRecord::Content(e) | LdifRecord::Add(e) => {
                objects += 1;
                users += u64::from(is_user(&e));
            }
            _ => {}
        }
    }
    Ok((objects, users))
}
