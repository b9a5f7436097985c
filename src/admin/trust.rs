//! `dird trust rotate REALM --password-file F` (issue 13): the next inter-realm kvno from a
//! new password, online through the daemon's admin socket or offline, the previous kvno
//! staying valid for the trust's `overlap_secs`.
//!
//! May import: `config`, `directory::trust`, `backend::local`, `store`. Invariant: both key
//! holders of a trust are rotated in one store transaction; the PBKDF2 work runs on a
//! blocking thread.

use std::time::SystemTime;

use anyhow::{anyhow, bail};

use crate::backend::local::Local;
use crate::config::TrustConfig;
use crate::directory::secrets::MasterKey;
use crate::directory::trust as dt;
use crate::directory::DomainInfo;
use crate::store::StoreRead as _;

/// `dird trust rotate REALM`: both trust accounts of `t` get keys from `password` with the
/// next kvno, in one transaction; the previous kvno stays valid for `t.overlap`. Returns the
/// new kvno and the overlap in seconds. Blocking (PBKDF2).
pub fn rotate(
    local: &Local,
    domain: &DomainInfo,
    master: &MasterKey,
    t: &TrustConfig,
    password: &str,
    now: SystemTime,
) -> anyhow::Result<(u32, u64)> {
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
    Ok((kvno, t.overlap.as_secs()))
}
