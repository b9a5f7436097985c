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

/// Makes the key holders of every configured trust follow its password file: missing ones
/// are created with the configured initial kvno; a password matching the current or the
/// previous kvno changes nothing; any other password is a rotation (next kvno, the current
/// one valid for the overlap), as `dird trust rotate` does. Blocking (PBKDF2).
pub fn ensure_all(
    local: &Local,
    domain: &DomainInfo,
    master: &MasterKey,
    trusts: &[TrustConfig],
) -> anyhow::Result<()> {
    ensure_fsp_container(local, domain)?;
    for t in trusts {
        let password = read_password(&t.password_file)?;
        ensure(local, domain, master, t, &password)
            .with_context(|| format!("trust with {}", t.realm))?;
    }
    Ok(())
}

/// `CN=ForeignSecurityPrincipals,<base>`, where principals of trusted realms appear as
/// group members (`backend::foreign`).
fn ensure_fsp_container(local: &Local, domain: &DomainInfo) -> anyhow::Result<()> {
    let dn = crate::backend::foreign::container(&domain.base);
    let exists = local
        .store()
        .read()
        .and_then(|txn| txn.id_of(&dn))
        .map_err(|e| anyhow!("store: {e}"))?
        .is_some();
    if exists {
        return Ok(());
    }
    let mut e = crate::model::Entry::new(dn);
    e.set("objectClass", vec![b"top".to_vec(), b"container".to_vec()]);
    e.set_str("cn", crate::backend::foreign::CONTAINER_CN);
    e.set_str(
        "description",
        "Principals of trusted realms that are members of local groups",
    );
    let ctx = WriteCtx {
        by: domain.administrator(),
        now: SystemTime::now(),
    };
    match local.add_batch_blocking(vec![e], &ctx, &[]) {
        Ok(()) | Err(crate::backend::BackendError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(anyhow!("creating CN=ForeignSecurityPrincipals: {e}")),
    }
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
                let (_, keys) = dt::derive(&domain.realm, &t.realm, inbound, password, kvno)
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
                    // A new password in the file (edited, then SIGHUP or restart) is a
                    // rotation: the next kvno, the current one kept for the overlap.
                    let new_kvno = dt::rotate_entry(
                        &mut e,
                        master,
                        &domain.realm,
                        &t.realm,
                        inbound,
                        password,
                        t.overlap,
                        SystemTime::now(),
                    )
                    .map_err(|e| anyhow!("{e}"))?;
                    tracing::warn!(
                        realm = %t.realm,
                        kvno = new_kvno,
                        direction = if inbound { "inbound" } else { "outbound" },
                        "the trust password file holds a new password: inter-realm keys rotated to kvno {new_kvno}; kvno {kvno} stays valid for the overlap"
                    );
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
