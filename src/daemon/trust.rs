//! Trust mode at the composition root: reads each `[[trust]]` password file, makes the trust
//! accounts match it at start and on SIGHUP, rotates inter-realm keys (`dird trust rotate`),
//! and turns `[[trust]]` into the KDC's cross-realm policy.
//!
//! May import: `config`, `directory::trust`, `backend::local`, `store`, `kdc::cross_realm`.
//! Invariants: every write of one trust (its container and accounts, or a rotation of both
//! accounts) is one store transaction; key derivation runs on the calling (blocking) thread,
//! so async callers use `spawn_blocking`.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context};
use zeroize::Zeroizing;

use crate::backend::local::Local;
use crate::backend::WriteCtx;
use crate::config::{TrustAllowed, TrustConfig};
use crate::directory::secrets::{self, MasterKey};
use crate::directory::trust as dt;
use crate::directory::DomainInfo;
use crate::kdc::cross_realm::TrustPolicy;
use crate::store::StoreRead as _;

/// Reads an inter-realm password file: its first line, without the line end. Refuses an
/// empty one.
pub fn read_password(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the trust password file {}", path.display()))?,
    );
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        bail!(
            "{}: the trust password file is empty; write the inter-realm password on its first line",
            path.display()
        );
    }
    Ok(Zeroizing::new(line))
}

/// The KDC's view of the configured trusts.
pub fn policies(trusts: &[TrustConfig]) -> Vec<TrustPolicy> {
    trusts
        .iter()
        .map(|t| TrustPolicy {
            realm: t.realm.clone(),
            inbound: t.direction.inbound(),
            outbound: t.direction.outbound(),
            selective: t.allowed.is_some(),
            allowed_principals: t
                .allowed
                .iter()
                .flatten()
                .filter_map(|a| match a {
                    TrustAllowed::Principal(p) => Some(p.clone()),
                    TrustAllowed::Group(_) => None,
                })
                .collect(),
            allowed_groups: t
                .allowed
                .iter()
                .flatten()
                .filter_map(|a| match a {
                    TrustAllowed::Group(dn) => Some(dn.to_string()),
                    TrustAllowed::Principal(_) => None,
                })
                .collect(),
            transited: t.transited.clone(),
            domains: vec![t.realm.to_ascii_lowercase()],
        })
        .collect()
}

/// Makes the trust accounts of every configured trust hold the keys of its password file:
/// missing accounts are created with the configured initial kvno; an account whose current
/// keys differ from the password (the file was edited) gets the new keys under the same kvno.
/// Rotations (`dird trust rotate`) are what add a kvno. Blocking (PBKDF2).
pub fn ensure_all(
    local: &Local,
    domain: &DomainInfo,
    master: &MasterKey,
    trusts: &[TrustConfig],
) -> anyhow::Result<()> {
    for t in trusts {
        let password = read_password(&t.password_file)?;
        ensure(local, domain, master, t, &password)
            .with_context(|| format!("trust with {}", t.realm))?;
    }
    Ok(())
}

fn ensure(
    local: &Local,
    domain: &DomainInfo,
    master: &MasterKey,
    t: &TrustConfig,
    password: &str,
) -> anyhow::Result<()> {
    let store_err = |e: crate::store::StoreError| anyhow!("store: {e}");
    let mut new_entries = Vec::new();
    let mut txn = local.store().write().map_err(store_err)?;
    if txn
        .id_of(&dt::container_dn(domain, &t.realm))
        .map_err(store_err)?
        .is_none()
    {
        new_entries.push(dt::container_entry(domain, &t.realm));
    }
    let mut replaced = false;
    for inbound in [true, false] {
        let wanted = if inbound {
            t.direction.inbound()
        } else {
            t.direction.outbound()
        };
        let dn = dt::account_dn(domain, &t.realm, inbound);
        match txn.entry_by_dn(&dn).map_err(store_err)? {
            None if wanted => {
                let mut e = dt::account_entry(domain, &t.realm, inbound);
                let (salt, keys) = dt::derive(&domain.realm, &t.realm, inbound, password, t.kvno)
                    .map_err(|e| anyhow!("{e}"))?;
                dt::seal_into(&mut e, master, salt, keys, Vec::new(), None)
                    .map_err(|e| anyhow!("{e}"))?;
                new_entries.push(e);
            }
            None => {}
            Some((id, mut e)) => {
                let stored = secrets::open_entry_keys(&e, master)
                    .map_err(|e| anyhow!("{e}"))?
                    .unwrap_or(secrets::StoredKeys {
                        salt: String::new(),
                        keys: Vec::new(),
                    });
                let kvno = stored.kvno().max(1);
                let (salt, keys) = dt::derive(&domain.realm, &t.realm, inbound, password, kvno)
                    .map_err(|e| anyhow!("{e}"))?;
                // The file may hold the current password or, after a rotation with another
                // file, the previous one: either way nothing changes.
                let mut same = matches_generation(&stored.keys, &keys);
                let previous_kvno = stored.keys.iter().map(|k| k.kvno).find(|&v| v != kvno);
                if let (false, Some(prev)) = (same, previous_kvno) {
                    let (_, old) = dt::derive(&domain.realm, &t.realm, inbound, password, prev)
                        .map_err(|e| anyhow!("{e}"))?;
                    same = matches_generation(&stored.keys, &old);
                    if same {
                        tracing::warn!(realm = %t.realm, "the trust password file holds the password of kvno {prev}, before the last rotation; point password_file at the new one");
                    }
                }
                if !same {
                    tracing::warn!(
                        realm = %t.realm,
                        kvno,
                        direction = if inbound { "inbound" } else { "outbound" },
                        "the trust password file changed without `dird trust rotate`: kvno {kvno} now has the new password's keys"
                    );
                    let previous: Vec<_> =
                        stored.keys.into_iter().filter(|k| k.kvno != kvno).collect();
                    let until = dt::previous_until(&e);
                    dt::seal_into(&mut e, master, salt, keys, previous, until)
                        .map_err(|e| anyhow!("{e}"))?;
                    txn.replace(id, &e).map_err(store_err)?;
                    replaced = true;
                }
            }
        }
    }
    if replaced {
        txn.commit().map_err(store_err)?;
    } else {
        drop(txn);
    }
    if !new_entries.is_empty() {
        let ctx = WriteCtx {
            by: domain.administrator(),
            now: SystemTime::now(),
        };
        local
            .add_batch_blocking(new_entries, &ctx, &[])
            .map_err(|e| anyhow!("creating the trust accounts: {e}"))?;
        tracing::info!(realm = %t.realm, kvno = t.kvno, "trust accounts created");
    }
    Ok(())
}

/// True if `derived` (one generation) is among `stored`, key for key.
fn matches_generation(
    stored: &[crate::model::principal::KeyMaterial],
    derived: &[crate::model::principal::KeyMaterial],
) -> bool {
    !derived.is_empty()
        && derived.iter().all(|d| {
            stored
                .iter()
                .any(|s| s.kvno == d.kvno && s.enctype == d.enctype && s.key == d.key)
        })
}

/// `dird trust rotate REALM`: both trust accounts of `t` get keys from `password` with the
/// next kvno, in one transaction; the previous kvno stays valid for `t.overlap`. Returns the
/// new kvno. Blocking (PBKDF2).
pub fn rotate(
    local: &Local,
    domain: &DomainInfo,
    master: &MasterKey,
    t: &TrustConfig,
    password: &str,
    now: SystemTime,
) -> anyhow::Result<u32> {
    let store_err = |e: crate::store::StoreError| anyhow!("store: {e}");
    let mut txn = local.store().write().map_err(store_err)?;
    let mut kvno = None;
    for inbound in [true, false] {
        let dn = dt::account_dn(domain, &t.realm, inbound);
        let Some((id, mut e)) = txn.entry_by_dn(&dn).map_err(store_err)? else {
            continue;
        };
        let v = dt::rotate_entry(
            &mut e,
            master,
            &domain.realm,
            &t.realm,
            inbound,
            password,
            t.overlap,
            now,
        )
        .map_err(|e| anyhow!("{e}"))?;
        txn.replace(id, &e).map_err(store_err)?;
        kvno = Some(kvno.map_or(v, |k: u32| k.max(v)));
    }
    let Some(kvno) = kvno else {
        bail!(
            "no trust accounts for {} yet: start the daemon with the [[trust]] table once first",
            t.realm
        );
    };
    txn.commit().map_err(store_err)?;
    Ok(kvno)
}
