//! Cross-realm trust accounts (issue 13): where an inter-realm key lives in the directory,
//! how it is derived from the shared password, sealed, rotated and read back for the KDC.
//!
//! Owns: the layout of trust entries, inter-realm key derivation (the MIT default salt of
//! `krbtgt/TARGET@ISSUER`, so the keys equal `kadmin addprinc -pw` with the same password and
//! kvno), rotation with an overlap for the previous kvno, and `Directory::kerberos_trust_key`.
//! May import: `model`, `directory::secrets`. No I/O beyond the backend reads of `Directory`.
//!
//! Layout: `cn=<REALM>,cn=System,<base>` (a container) holds up to two key holders, each a
//! container (not an account: nothing can log on as it, and it takes no POSIX id) whose
//! `dirdKerberosKeys` blob is sealed under the master key like every other key:
//! - `cn=inbound`: the key of `krbtgt/OURS@THEIRS` (tickets the other realm issues for us);
//! - `cn=outbound`: the key of `krbtgt/THEIRS@OURS` (referral TGTs for our users).
//!
//! After a rotation the blob holds the new keys first and the previous generation after them;
//! `description` records until when the previous generation is accepted (`... previous kvno
//! accepted until <unix seconds>`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::directory::secrets::{self, MasterKey, StoredKeys};
use crate::directory::{DirError, Directory, DomainInfo};
use crate::model::principal::{default_salt, derive_keys, KeyMaterial, PrincipalName};
use crate::model::{Dn, Entry, Rdn};

const UNTIL_MARK: &str = "; previous kvno accepted until ";

/// The container of one trust: `cn=REALM,cn=System,<base>`.
pub fn container_dn(domain: &DomainInfo, realm: &str) -> Dn {
    domain
        .base
        .child(Rdn::new("cn", super::policy::SYSTEM_CN))
        .child(Rdn::new("cn", &realm.to_ascii_uppercase()))
}

/// The trust account holding the inbound (`true`) or outbound key.
pub fn account_dn(domain: &DomainInfo, realm: &str, inbound: bool) -> Dn {
    container_dn(domain, realm).child(Rdn::new("cn", if inbound { "inbound" } else { "outbound" }))
}

/// The inter-realm principal of one direction: inbound `krbtgt/OURS@THEIRS`, outbound
/// `krbtgt/THEIRS@OURS`.
pub fn principal(own_realm: &str, other: &str, inbound: bool) -> PrincipalName {
    let (target, issuer) = if inbound {
        (own_realm, other)
    } else {
        (other, own_realm)
    };
    PrincipalName::new(vec!["krbtgt".into(), target.to_ascii_uppercase()], issuer)
}

/// The MIT default salt of the inter-realm principal (`OTHER.COMkrbtgtEXAMPLE.COM` for
/// `krbtgt/EXAMPLE.COM@OTHER.COM`).
pub fn salt(own_realm: &str, other: &str, inbound: bool) -> String {
    let p = principal(own_realm, other, inbound);
    default_salt(&p.realm, &p)
}

/// The inter-realm keys for every enctype dird issues, from the shared password.
/// CPU-heavy (PBKDF2): call it on a blocking thread.
pub fn derive(
    own_realm: &str,
    other: &str,
    inbound: bool,
    password: &str,
    kvno: u32,
) -> Result<(String, Vec<KeyMaterial>), DirError> {
    let salt = salt(own_realm, other, inbound);
    let keys = derive_keys(password, &salt, kvno).map_err(|e| {
        tracing::error!(error = %e, "inter-realm key derivation failed");
        DirError::Internal
    })?;
    Ok((salt, keys))
}

/// The container entry of a trust (without operational attributes).
pub fn container_entry(domain: &DomainInfo, realm: &str) -> Entry {
    let mut e = Entry::new(container_dn(domain, realm));
    e.set("objectClass", vec![b"top".to_vec(), b"container".to_vec()]);
    e.set_str("cn", &realm.to_ascii_uppercase());
    e.set_str("description", "dird: cross-realm Kerberos trust");
    e
}

/// A new key holder for one direction, without keys (see `seal_into`).
pub fn account_entry(domain: &DomainInfo, realm: &str, inbound: bool) -> Entry {
    let realm = realm.to_ascii_uppercase();
    let mut e = Entry::new(account_dn(domain, &realm, inbound));
    e.set("objectClass", vec![b"top".to_vec(), b"container".to_vec()]);
    e.set_str("cn", if inbound { "inbound" } else { "outbound" });
    e.set_str(
        "description",
        &base_description(&domain.realm, &realm, inbound),
    );
    e
}

fn base_description(own_realm: &str, other: &str, inbound: bool) -> String {
    format!(
        "dird: inter-realm key {}",
        principal(own_realm, other, inbound)
    )
}

/// Seals `current` (and `previous`, accepted until `previous_until`) into `entry`, which must
/// carry its objectGUID.
pub fn seal_into(
    entry: &mut Entry,
    master: &MasterKey,
    salt: String,
    current: Vec<KeyMaterial>,
    previous: Vec<KeyMaterial>,
    previous_until: Option<SystemTime>,
) -> Result<(), DirError> {
    secrets::ensure_guid(entry);
    let kvno = current.first().map_or(0, |k| k.kvno);
    let guid = entry
        .values("objectGUID")
        .first()
        .cloned()
        .unwrap_or_default();
    let mut keys = current;
    keys.extend(previous);
    let blob = master
        .seal(&guid, &StoredKeys { salt, keys })
        .map_err(|e| {
            tracing::error!(error = %e, "sealing inter-realm keys failed");
            DirError::Internal
        })?;
    entry.set(secrets::KEYS_ATTR, vec![blob]);
    let mut description = entry
        .first_str("description")
        .map(|d| d.split("; ").next().unwrap_or(d).to_owned())
        .unwrap_or_default();
    if let Some(t) = previous_until {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        description.push_str(&format!("{UNTIL_MARK}{secs}"));
    }
    description.push_str(&format!("; kvno {kvno}"));
    entry.set_str("description", &description);
    Ok(())
}

/// Until when the previous key generation of a trust account is accepted.
pub fn previous_until(entry: &Entry) -> Option<SystemTime> {
    let text = entry.first_str("description")?;
    let (_, rest) = text.split_once(UNTIL_MARK)?;
    let secs: u64 = rest.split(';').next()?.trim().parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// The keys of a trust account that are valid at `now`: the current generation, plus the
/// previous one while its overlap lasts.
pub fn valid_keys(stored: StoredKeys, until: Option<SystemTime>, now: SystemTime) -> StoredKeys {
    let current = stored.kvno();
    let keep_previous = until.is_some_and(|t| now < t);
    StoredKeys {
        salt: stored.salt,
        keys: stored
            .keys
            .into_iter()
            .filter(|k| k.kvno == current || keep_previous)
            .collect(),
    }
}

/// One rotation: the entry gets `next` keys, the current generation stays valid until
/// `now + overlap`. Returns the new kvno.
#[allow(clippy::too_many_arguments)] // the trust (two realms, direction) and the rotation
pub fn rotate_entry(
    entry: &mut Entry,
    master: &MasterKey,
    own_realm: &str,
    other: &str,
    inbound: bool,
    password: &str,
    overlap: Duration,
    now: SystemTime,
) -> Result<u32, DirError> {
    let old = secrets::open_entry_keys(entry, master)?;
    let old_kvno = old.as_ref().map_or(0, StoredKeys::kvno);
    let kvno = old_kvno.wrapping_add(1).max(1);
    let (salt, keys) = derive(own_realm, other, inbound, password, kvno)?;
    let previous: Vec<KeyMaterial> = old
        .map(|o| o.keys.into_iter().filter(|k| k.kvno == old_kvno).collect())
        .unwrap_or_default();
    seal_into(entry, master, salt, keys, previous, Some(now + overlap))?;
    Ok(kvno)
}

impl Directory {
    /// The valid keys of a trust account (`inbound`: `krbtgt/OURS@REALM`) at `now`, for the
    /// KDC: `None` when there is no such trust account (no trust, or not that direction).
    pub async fn kerberos_trust_key(
        &self,
        realm: &str,
        inbound: bool,
        now: SystemTime,
    ) -> Result<Option<(PrincipalName, StoredKeys)>, DirError> {
        let Some(master) = self.master.clone() else {
            return Ok(None);
        };
        let dn = account_dn(&self.domain, realm, inbound);
        let Some(entry) = self.backend.entry(&dn).await? else {
            return Ok(None);
        };
        let Some(stored) = secrets::open_entry_keys(&entry, &master)? else {
            return Ok(None);
        };
        let until = previous_until(&entry);
        Ok(Some((
            principal(&self.domain.realm, realm, inbound),
            valid_keys(stored, until, now),
        )))
    }
}

/// `cn=ForeignSecurityPrincipals,<base>`, where foreign principals appear as members.
pub fn fsp_container(domain: &DomainInfo) -> Dn {
    domain
        .base
        .child(Rdn::new("cn", "ForeignSecurityPrincipals"))
}

/// The entry of a foreign principal (`bob@OTHER.COM`).
pub fn fsp_dn(domain: &DomainInfo, principal: &str) -> Dn {
    fsp_container(domain).child(Rdn::new("cn", principal))
}

impl Directory {
    /// True if the foreign principal's entry is a member of the group `group_dn`, directly
    /// or through nested groups (bounded like every membership walk).
    pub async fn foreign_member_of(
        &self,
        principal: &str,
        group_dn: &str,
    ) -> Result<bool, DirError> {
        let Ok(group) = Dn::parse(group_dn) else {
            return Ok(false);
        };
        let fsp = fsp_dn(&self.domain, principal);
        if self.backend.entry(&fsp).await?.is_none() {
            return Ok(false);
        }
        let up = self
            .backend
            .closure(
                vec![fsp.clone()],
                crate::backend::Link::MemberOf,
                None,
                super::MAX_CHAIN_NODES,
            )
            .await?;
        Ok(up.dns.contains(group.norm()) && group.norm() != fsp.norm())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn salts_are_the_mit_default_of_the_inter_realm_principal() {
        assert_eq!(
            salt("EXAMPLE.COM", "OTHER.COM", true),
            "OTHER.COMkrbtgtEXAMPLE.COM"
        );
        assert_eq!(
            salt("EXAMPLE.COM", "other.com", false),
            "EXAMPLE.COMkrbtgtOTHER.COM"
        );
        assert_eq!(
            principal("EXAMPLE.COM", "OTHER.COM", true).to_string(),
            "krbtgt/EXAMPLE.COM@OTHER.COM"
        );
    }

    /// The keys MIT's `kadmin.local addprinc -pw trust-Secret-1` made (read back with `ktadd
    /// -norandkey` and `klist -eK`, krb5 1.21), kvno 1: the SHA-1 enctypes for
    /// `krbtgt/EXAMPLE.COM@OTHER.COM`, the SHA-2 ones (`-e ...:normal`) for
    /// `krbtgt/X.COM@OTHER.COM`.
    #[test]
    fn derived_keys_equal_mit_addprinc() {
        let key = |target: &str, enctype: i32| {
            let (_, keys) = derive(target, "OTHER.COM", true, "trust-Secret-1", 1).unwrap();
            let k = keys.iter().find(|k| k.enctype == enctype).unwrap();
            assert_eq!(k.kvno, 1);
            hex(&k.key)
        };
        assert_eq!(
            key("EXAMPLE.COM", 18),
            "a4cc0e63fb13ab390272d2a748e122bd740966f5e77b98519d575f44a54828cb"
        );
        assert_eq!(key("EXAMPLE.COM", 17), "28a7d437bfb49c18149cf597d4ce1784");
        assert_eq!(
            key("X.COM", 20),
            "aa1544dfb5c900923f4b52fc59b1bc1387662070ae59d5234c7fd0ddd158072c"
        );
        assert_eq!(key("X.COM", 19), "a69d90c90f5aa8349ec2fda4b34b8a58");
    }

    #[test]
    fn previous_generation_expires_after_the_overlap() {
        let mut keys = crate::model::principal::random_keys(2).unwrap();
        keys.extend(crate::model::principal::random_keys(1).unwrap());
        let stored = StoredKeys {
            salt: "s".into(),
            keys,
        };
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let during = valid_keys(stored.clone(), Some(t0), t0 - Duration::from_secs(1));
        assert!(during.keys.iter().any(|k| k.kvno == 1));
        let after = valid_keys(stored.clone(), Some(t0), t0);
        assert!(after.keys.iter().all(|k| k.kvno == 2));
        assert!(valid_keys(stored, None, t0)
            .keys
            .iter()
            .all(|k| k.kvno == 2));
    }
}
