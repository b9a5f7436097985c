//! The KDC's boundary to the principal store: the `PrincipalDb` trait and an in-memory
//! implementation for tests.
//!
//! Owns: `PrincipalDb`, `PrincipalRecord`, `DbError`, `PasswordChangeError`, `MemoryDb`.
//! May import: `model`. The integrator implements `PrincipalDb` over the directory; the KDC never
//! sees the store.
//!
//! Contract for implementors:
//! - `lookup` is case-insensitive (AD semantics) and resolves, within the KDC's realm: users by
//!   `sAMAccountName` (`alice`), enterprise names (`NT-ENTERPRISE`, one component
//!   `alice@example.com`, matched against the UPN), computers (`HOST$`), service principal names
//!   (`host/fqdn`, `ldap/fqdn`, ...), `krbtgt/REALM` and, optionally, `kadmin/changepw`. If
//!   `kadmin/changepw` is not found the KDC uses a built-in key derived from the krbtgt key (see
//!   `kdc::kpasswd`), so no directory object is needed for it.
//! - `change_password` derives the keys (`model::principal::derive_keys`, on a blocking thread),
//!   bumps the kvno and writes keys and password hash atomically; policy failures come back as
//!   `PasswordChangeError::Policy(reason)`, whose reason is shown to the user by kpasswd.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::SystemTime;

use crate::model::principal::{self, derive_keys, KeyMaterial, PrincipalName};

/// Principal lookup and password change, implemented over the directory by the integrator.
#[async_trait::async_trait]
pub trait PrincipalDb: Send + Sync + 'static {
    /// Looks up a principal by name within the KDC's realm (user `alice`, `alice@example.com`
    /// UPN-style enterprise name, `HOST$`, `host/fqdn`, `krbtgt/REALM`, service SPNs).
    /// Case-insensitive as AD is.
    async fn lookup(&self, name: &PrincipalName) -> Result<Option<PrincipalRecord>, DbError>;

    /// Sets a new password for a principal (kpasswd). Must derive keys and bump kvno atomically;
    /// returns a policy rejection as an error variant carrying the reason.
    async fn change_password(
        &self,
        name: &PrincipalName,
        new_password: &str,
    ) -> Result<(), PasswordChangeError>;

    /// kpasswd set-password (RFC 3244 `targname`): `caller` sets `target`'s password. The
    /// implementor decides who may (administrators); the default refuses.
    async fn set_password(
        &self,
        _caller: &PrincipalName,
        _target: &PrincipalName,
        _new_password: &str,
    ) -> Result<(), PasswordChangeError> {
        Err(PasswordChangeError::AccessDenied)
    }

    /// The KDC refused a principal's pre-authentication (KDC_ERR_PREAUTH_FAILED): the
    /// implementor counts it towards account lockout, together with failed LDAP binds.
    async fn preauth_failed(&self, _name: &PrincipalName, _now: SystemTime) {}

    /// A principal pre-authenticated successfully (its failure count may start over).
    async fn preauth_succeeded(&self, _name: &PrincipalName) {}

    /// The valid inter-realm keys of a trust with `realm` (current kvno first, then the
    /// previous one while its overlap lasts): `inbound` is `krbtgt/OURS@realm`, else
    /// `krbtgt/realm@OURS`. `None` when there is no such key.
    async fn trust_key(
        &self,
        _realm: &str,
        _inbound: bool,
    ) -> Result<Option<PrincipalRecord>, DbError> {
        Ok(None)
    }

    /// Who `name` is for the PAC (MS-PAC LOGON_INFO): SIDs, groups (nested ones included),
    /// names, account flags. `None` when the principal has no SID (the PAC then carries only
    /// CLIENT_INFO and UPN_DNS_INFO).
    async fn account_identity(
        &self,
        _name: &PrincipalName,
    ) -> Result<Option<crate::kdc::pac::AccountIdentity>, DbError> {
        Ok(None)
    }

    /// True if the foreign principal (`bob@OTHER.COM`) is a member of the local group
    /// `group_dn` (selective authentication by group).
    async fn foreign_member_of(&self, _principal: &str, _group_dn: &str) -> Result<bool, DbError> {
        Ok(false)
    }
}

/// What the KDC needs to know about one principal.
#[derive(Clone, Debug)]
pub struct PrincipalRecord {
    /// The canonical name (returned when the client asks for canonicalisation, RFC 6806).
    pub canonical: PrincipalName,
    /// The salt the password keys were derived with (sent in PA-ETYPE-INFO2).
    pub salt: String,
    /// The current key version number (msDS-KeyVersionNumber).
    pub kvno: u32,
    /// The current long-term keys, one per enctype.
    pub keys: Vec<KeyMaterial>,
    /// The account is disabled (KDC_ERR_CLIENT_REVOKED).
    pub disabled: bool,
    /// The account expires at this time (KDC_ERR_CLIENT_REVOKED afterwards).
    pub expires: Option<SystemTime>,
    /// The principal may be the target of a service ticket (computers, SPNs, krbtgt).
    pub is_service: bool,
    /// The account is locked out after failed logons (KDC_ERR_CLIENT_REVOKED).
    pub locked: bool,
    /// The password must be changed before use (AD pwdLastSet = 0): KDC_ERR_KEY_EXPIRED,
    /// except for a ticket to `kadmin/changepw`.
    pub must_change_password: bool,
    /// The password expires at this time (KDC_ERR_KEY_EXPIRED afterwards, except for a ticket
    /// to `kadmin/changepw`).
    pub password_expires: Option<SystemTime>,
    /// An immutable id of the account (objectGUID), put into every ticket issued to it and
    /// compared when a ticket is presented (`kdc::account_id`); `None`: no binding.
    pub account_id: Option<Vec<u8>>,
}

/// The principal store failed (I/O, corruption). Logged; the client sees KRB_ERR_GENERIC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("principal database error: {0}")]
pub struct DbError(pub String);

/// A password change was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordChangeError {
    /// The password policy rejected the new password; the reason is shown to the user
    /// (kpasswd result code 4, KRB5_KPASSWD_SOFTERROR).
    #[error("password rejected by policy: {0}")]
    Policy(String),
    /// The principal does not exist.
    #[error("no such principal")]
    NoSuchPrincipal,
    /// The caller may not change this password (result code 5).
    #[error("access denied")]
    AccessDenied,
    /// Storage or key derivation failed (result code 2, hard error).
    #[error("password change failed: {0}")]
    Internal(String),
}

/// An in-memory `PrincipalDb` for tests: names are keyed case-insensitively, enterprise names
/// resolve through registered aliases, passwords need at least 8 characters.
#[derive(Default)]
pub struct MemoryDb {
    realm: String,
    inner: RwLock<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    records: HashMap<String, PrincipalRecord>,
    aliases: HashMap<String, String>,
}

impl MemoryDb {
    /// An empty database for `realm`.
    pub fn new(realm: &str) -> Self {
        MemoryDb {
            realm: realm.to_owned(),
            inner: RwLock::new(MemoryInner::default()),
        }
    }

    /// Adds a user principal with keys derived from `password` (default salt, kvno 1).
    pub fn add_user(&self, name: &str, password: &str) -> Result<(), DbError> {
        let canonical = PrincipalName::new(vec![name.to_owned()], &self.realm);
        let salt = principal::default_salt(&self.realm, &canonical);
        let keys = derive_keys(password, &salt, 1).map_err(|e| DbError(e.to_string()))?;
        self.insert(PrincipalRecord {
            canonical,
            salt,
            kvno: 1,
            keys,
            disabled: false,
            expires: None,
            is_service: false,
            locked: false,
            must_change_password: false,
            password_expires: None,
            account_id: None,
        });
        Ok(())
    }

    /// Adds a service principal (`host/fqdn`, `krbtgt/REALM`, ...) with the given keys.
    pub fn add_service(&self, name: &str, keys: Vec<KeyMaterial>) -> Result<(), DbError> {
        let parsed = PrincipalName::parse(name).map_err(|e| DbError(e.to_string()))?;
        let canonical = parsed.with_realm(&self.realm);
        let salt = principal::default_salt(&self.realm, &canonical);
        let kvno = keys.first().map_or(1, |k| k.kvno);
        self.insert(PrincipalRecord {
            canonical,
            salt,
            kvno,
            keys,
            disabled: false,
            expires: None,
            is_service: true,
            locked: false,
            must_change_password: false,
            password_expires: None,
            account_id: None,
        });
        Ok(())
    }

    /// Inserts or replaces a record under its canonical name.
    pub fn insert(&self, record: PrincipalRecord) {
        let key = key_of(&record.canonical);
        if let Ok(mut inner) = self.inner.write() {
            inner.records.insert(key, record);
        }
    }

    /// Makes `alias` (e.g. the UPN `alice@example.com`) resolve to `target` (e.g. `alice`).
    pub fn add_alias(&self, alias: &str, target: &str) {
        if let Ok(mut inner) = self.inner.write() {
            inner
                .aliases
                .insert(alias.to_lowercase(), target.to_lowercase());
        }
    }

    /// Changes a record in place (tests: disable, expire).
    pub fn update(&self, name: &str, change: impl FnOnce(&mut PrincipalRecord)) {
        if let Ok(mut inner) = self.inner.write() {
            if let Some(record) = inner.records.get_mut(&name.to_lowercase()) {
                change(record);
            }
        }
    }

    fn resolve(inner: &MemoryInner, name: &PrincipalName) -> Option<String> {
        let key = key_of(name);
        if inner.records.contains_key(&key) {
            return Some(key);
        }
        inner.aliases.get(&key).cloned()
    }
}

#[async_trait::async_trait]
impl PrincipalDb for MemoryDb {
    async fn lookup(&self, name: &PrincipalName) -> Result<Option<PrincipalRecord>, DbError> {
        let inner = self
            .inner
            .read()
            .map_err(|_| DbError("lock poisoned".into()))?;
        Ok(Self::resolve(&inner, name).and_then(|key| inner.records.get(&key).cloned()))
    }

    async fn change_password(
        &self,
        name: &PrincipalName,
        new_password: &str,
    ) -> Result<(), PasswordChangeError> {
        if new_password.chars().count() < 8 {
            return Err(PasswordChangeError::Policy(
                "password must have at least 8 characters".into(),
            ));
        }
        let (key, salt, kvno) = {
            let inner = self
                .inner
                .read()
                .map_err(|_| PasswordChangeError::Internal("lock poisoned".into()))?;
            let key = Self::resolve(&inner, name).ok_or(PasswordChangeError::NoSuchPrincipal)?;
            let record = inner
                .records
                .get(&key)
                .ok_or(PasswordChangeError::NoSuchPrincipal)?;
            (key, record.salt.clone(), record.kvno.wrapping_add(1))
        };
        let password = new_password.to_owned();
        let keys = tokio::task::spawn_blocking(move || derive_keys(&password, &salt, kvno))
            .await
            .map_err(|e| PasswordChangeError::Internal(e.to_string()))?
            .map_err(|e| PasswordChangeError::Internal(e.to_string()))?;
        let mut inner = self
            .inner
            .write()
            .map_err(|_| PasswordChangeError::Internal("lock poisoned".into()))?;
        let record = inner
            .records
            .get_mut(&key)
            .ok_or(PasswordChangeError::NoSuchPrincipal)?;
        record.kvno = kvno;
        record.keys = keys;
        Ok(())
    }
}

/// The lookup key: components joined with `/`, lower-cased; the realm is not part of it.
fn key_of(name: &PrincipalName) -> String {
    name.joined().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_db_resolves_case_insensitively_and_by_alias() {
        let db = MemoryDb::new("EXAMPLE.COM");
        db.add_user("alice", "password1").unwrap();
        db.add_alias("alice@example.com", "alice");
        let by_name = db
            .lookup(&PrincipalName::parse("ALICE").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_name.canonical.to_string(), "alice@EXAMPLE.COM");
        assert_eq!(by_name.salt, "EXAMPLE.COMalice");
        let enterprise = PrincipalName::new(vec!["Alice@Example.com".into()], "EXAMPLE.COM");
        assert!(db.lookup(&enterprise).await.unwrap().is_some());
        assert!(db
            .lookup(&PrincipalName::parse("bob").unwrap())
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn memory_db_password_change_bumps_kvno_and_enforces_policy() {
        let db = MemoryDb::new("EXAMPLE.COM");
        db.add_user("alice", "password1").unwrap();
        let alice = PrincipalName::parse("alice").unwrap();
        assert!(matches!(
            db.change_password(&alice, "short").await,
            Err(PasswordChangeError::Policy(_))
        ));
        db.change_password(&alice, "longer-password").await.unwrap();
        let record = db.lookup(&alice).await.unwrap().unwrap();
        assert_eq!(record.kvno, 2);
        assert!(record.keys.iter().all(|k| k.kvno == 2));
    }
}
