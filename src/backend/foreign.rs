//! Foreign security principals (issue 13): principals of a trusted Kerberos realm as
//! directory entries, `cn=bob@OTHER.COM,CN=ForeignSecurityPrincipals,<base>`, as AD keeps
//! them, so that group membership, `memberOf` and selective authentication by group see them.
//!
//! Owns: the per-trust domain SID (MIT realms have none: `S-1-5-21-a-b-c` derived from the
//! realm name, stable across restarts and instances) and RID allocation in it (a per-realm
//! counter, first RID 1000), and the creation of a missing foreign principal named as a
//! `member` value. May import: `model`, `store`, `backend::local` (counters, SID layout).
//! Invariant: the caller runs these inside the write transaction of the entry being added
//! or modified, so the group and its new foreign members are written together or not at all.

use sha2::{Digest, Sha256};

use super::local::sid_with_rid;
use super::BackendError;
use crate::model::{Dn, Entry, Rdn};
use crate::store::{StoreRead, WriteTxn};

/// RDN value of the container of foreign principals.
pub const CONTAINER_CN: &str = "ForeignSecurityPrincipals";

/// First RID allocated in a trust's domain.
const FIRST_RID: u64 = 1000;

/// `CN=ForeignSecurityPrincipals,<suffix>`.
pub fn container(suffix: &Dn) -> Dn {
    suffix.child(Rdn::new("cn", CONTAINER_CN))
}

/// The domain SID of a trusted realm: `S-1-5-21-a-b-c`, `a`, `b` and `c` the first 12 bytes
/// of SHA-256 over the upper-cased realm name (binary form, MS-DTYP §2.4.2.2).
pub fn trust_domain_sid(realm: &str) -> Vec<u8> {
    let digest = Sha256::digest(format!("dird trusted realm {}", realm.to_ascii_uppercase()));
    let mut sid = vec![1u8, 4, 0, 0, 0, 0, 0, 5];
    sid.extend_from_slice(&21u32.to_le_bytes());
    sid.extend_from_slice(&digest[..12]);
    sid
}

/// The realm of a foreign principal named `name@REALM`.
fn realm_of(cn: &str) -> Option<String> {
    match cn.rsplit_once('@') {
        Some((name, realm)) if !name.is_empty() && !realm.is_empty() => {
            Some(realm.to_ascii_uppercase())
        }
        _ => None,
    }
}

/// Gives a new foreignSecurityPrincipal its objectSid in its realm's domain, unless it has
/// one. Its cn must be `name@REALM`.
pub fn assign_sid(txn: &mut WriteTxn, e: &mut Entry) -> Result<(), BackendError> {
    if !e.is_a("foreignSecurityPrincipal") || e.has("objectSid") {
        return Ok(());
    }
    let cn = e
        .first_str("cn")
        .map(str::to_owned)
        .or_else(|| {
            e.dn.rdn()
                .and_then(|r| r.avas.first())
                .map(|a| a.value.clone())
        })
        .unwrap_or_default();
    let Some(realm) = realm_of(&cn) else {
        return Err(BackendError::Naming(format!(
            "a foreignSecurityPrincipal without objectSid must be named cn=name@REALM, not `{cn}`"
        )));
    };
    let key = format!("fsp_next_rid:{realm}");
    let rid = super::local::next_counter(txn, &key, FIRST_RID)?;
    let rid = u32::try_from(rid).map_err(|_| BackendError::Store("RID space exhausted".into()))?;
    e.set(
        "objectSid",
        vec![sid_with_rid(&trust_domain_sid(&realm), rid)],
    );
    Ok(())
}

/// The foreign principals named as `member` values of `e` that do not exist yet, as new
/// entries (without operational attributes). Only when the container exists (trust mode).
pub fn missing_members(txn: &WriteTxn, suffix: &Dn, e: &Entry) -> Result<Vec<Entry>, BackendError> {
    let store_err = |err: crate::store::StoreError| BackendError::Store(err.to_string());
    let parent = container(suffix);
    let mut out: Vec<Entry> = Vec::new();
    let members = e.values("member");
    if members.is_empty() || txn.id_of(&parent).map_err(store_err)?.is_none() {
        return Ok(out);
    }
    for v in members {
        let Some(dn) = std::str::from_utf8(v).ok().and_then(|s| Dn::parse(s).ok()) else {
            continue;
        };
        if dn.parent().is_none_or(|p| p.norm() != parent.norm()) {
            continue;
        }
        let Some(ava) = dn.rdn().and_then(|r| r.avas.first()) else {
            continue;
        };
        if !ava.attr.eq_ignore_ascii_case("cn") || realm_of(&ava.value).is_none() {
            continue;
        }
        if txn.id_of(&dn).map_err(store_err)?.is_some()
            || out.iter().any(|o| o.dn.norm() == dn.norm())
        {
            continue;
        }
        let mut f = Entry::new(dn.clone());
        f.set(
            "objectClass",
            vec![b"top".to_vec(), b"foreignSecurityPrincipal".to_vec()],
        );
        f.set_str("cn", &ava.value);
        out.push(f);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_domain_sids_are_stable_and_distinct() {
        let a = trust_domain_sid("OTHER.COM");
        assert_eq!(a, trust_domain_sid("other.com"));
        assert_ne!(a, trust_domain_sid("THIRD.ORG"));
        assert_eq!(&a[..12], &[1, 4, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0]);
        assert_eq!(a.len(), 24);
        assert_eq!(realm_of("bob@other.com").as_deref(), Some("OTHER.COM"));
        assert_eq!(realm_of("bob"), None);
    }
}
