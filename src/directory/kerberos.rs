//! Kerberos principals over the directory: how a principal name maps to an entry, the key
//! material the KDC needs (through `PrincipalCache`, the KDC hot path's cache), kpasswd
//! password changes, random keys (keytab export, krbtgt).
//!
//! May import: `model`, `backend` (trait), `directory::{secrets, access, identity, policy}`. Must not
//! import `kdc`: the composition root adapts these protocol-neutral results to the KDC's
//! `PrincipalDb` (see `daemon::principals`).
//!
//! Name mapping (AD semantics, case-insensitive, within the directory's realm):
//! - one component `name`: the account whose sAMAccountName is `name` (users, `HOST$`);
//! - one component `user@domain` (NT-ENTERPRISE, RFC 6806 §5): the account with that UPN, or
//!   the sAMAccountName `user` when `domain` is ours;
//! - `krbtgt/REALM`: the `krbtgt` account created at provisioning;
//! - anything else (`host/fqdn`, `ldap/fqdn`, …): the account listing it in
//!   servicePrincipalName.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::backend::WriteCtx;
use crate::directory::identity::Authenticated;
use crate::directory::secrets::{self, KeyContext};
use crate::directory::{access, policy, DirError, Directory, DomainInfo, UAC_ACCOUNTDISABLE};
use crate::model::principal::{name_type, KeyMaterial, PrincipalName};
use crate::model::{Dn, Entry, ModOp, Modification, Rdn};

/// sAMAccountName of the ticket-granting service account.
pub const KRBTGT_ACCOUNT: &str = "krbtgt";

/// userAccountControl WORKSTATION_TRUST_ACCOUNT (MS-ADTS §2.2.16): a computer account.
pub const UAC_WORKSTATION_TRUST_ACCOUNT: i64 = 0x1000;

/// What the KDC needs to know about one principal, read from its entry.
#[derive(Clone, Debug)]
pub struct KerberosPrincipal {
    /// The canonical name (sAMAccountName for accounts, the SPN for services).
    pub canonical: PrincipalName,
    /// The salt the password keys were derived with.
    pub salt: String,
    /// The current key version number.
    pub kvno: u32,
    /// Current keys first, then older ones still accepted (krbtgt rotation). Empty when the
    /// account has no password set since Kerberos was enabled.
    pub keys: Vec<KeyMaterial>,
    /// userAccountControl ACCOUNTDISABLE.
    pub disabled: bool,
    /// accountExpires.
    pub expires: Option<SystemTime>,
    /// May be the target of a service ticket (computers, accounts with SPNs, krbtgt).
    pub is_service: bool,
    /// Locked out (failed logons, `directory::lockout`): KDC_ERR_CLIENT_REVOKED.
    pub locked: bool,
    /// pwdLastSet = 0: the password must be changed before use (KDC_ERR_KEY_EXPIRED).
    pub must_change_password: bool,
    /// When the password expires under the account's policy (KDC_ERR_KEY_EXPIRED after).
    pub password_expires: Option<SystemTime>,
    /// The entry's objectGUID: immutable, never reused, so a ticket can be bound to the
    /// account rather than to a name that may be given to another account later.
    pub account_id: Option<Vec<u8>>,
}

pub use crate::model::principal::AccountIdentity;

/// A principal as stored: its entry (with the computed attributes), the password policy in
/// effect for it, and its record without the lockout state (`locked` is false here).
struct PrincipalSnapshot {
    entry: Entry,
    policy: policy::PasswordPolicy,
    record: KerberosPrincipal,
}

/// How long a cached principal may be served while nothing is written.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Most names cached at once; when full, stale entries are dropped, then all of them.
const CACHE_CAPACITY: usize = 65_536;

/// The KDC hot path's cache of principals (an AS login looks up the client and krbtgt in
/// each of its two exchanges, a TGS request krbtgt, the client and the service; uncached,
/// each is an index search and an entry read on the blocking pool, the policy, and the
/// unsealing of the keys).
///
/// A snapshot is served only while the store's write generation (`Backend::generation`) is
/// the one read before the snapshot was read, so any committed write (a password set by any
/// path, an account disabled, deleted, renamed or locked out, an SPN or a password policy
/// edited, krbtgt rotated) makes every cached principal stale at once; backends without a
/// generation are not cached. Unknown names are cached too (a flood of them is bounded by
/// the capacity). Snapshots expire after `CACHE_TTL`, which bounds how long the unsealed
/// keys of an idle principal stay in memory. What changes without a write (the time, the
/// in-memory failure counts) is evaluated on every lookup.
#[derive(Default)]
pub(crate) struct PrincipalCache {
    map: RwLock<HashMap<CacheKey, Cached>>,
}

/// What `resolve_principal` resolves a name by: its components and realm case-insensitively,
/// and whether it is an enterprise name (resolved through the UPN).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    enterprise: bool,
    name: String,
    realm: String,
}

impl CacheKey {
    fn of(name: &PrincipalName) -> CacheKey {
        CacheKey {
            enterprise: name.name_type == name_type::ENTERPRISE,
            name: name.joined().to_lowercase(),
            realm: name.realm.to_ascii_lowercase(),
        }
    }
}

struct Cached {
    generation: u64,
    at: Instant,
    snap: Option<Arc<PrincipalSnapshot>>,
}

impl PrincipalCache {
    fn get(&self, key: &CacheKey, generation: u64) -> Option<Option<Arc<PrincipalSnapshot>>> {
        let map = self.map.read().ok()?;
        let hit = map.get(key)?;
        (hit.generation == generation && hit.at.elapsed() < CACHE_TTL).then(|| hit.snap.clone())
    }

    fn put(&self, key: CacheKey, generation: u64, snap: Option<Arc<PrincipalSnapshot>>) {
        let Ok(mut map) = self.map.write() else {
            return;
        };
        if map.len() >= CACHE_CAPACITY && !map.contains_key(&key) {
            map.retain(|_, c| c.generation == generation && c.at.elapsed() < CACHE_TTL);
            if map.len() >= CACHE_CAPACITY {
                map.clear();
            }
        }
        map.insert(
            key,
            Cached {
                generation,
                at: Instant::now(),
                snap,
            },
        );
    }
}

/// How a principal name was resolved.
struct Resolved {
    dn: Dn,
    canonical: PrincipalName,
    service: bool,
    /// The entry, when resolving already read it.
    entry: Option<Entry>,
}

impl Directory {
    /// True if passwords also produce Kerberos keys (a master key is configured).
    pub fn kerberos_enabled(&self) -> bool {
        self.master.is_some()
    }

    /// Looks up a principal for the KDC. `None` for unknown names, other realms, entries that
    /// are not accounts, or when Kerberos is not enabled. Served from the principal cache
    /// (see `PrincipalCache`) while nothing was written; the lockout state is evaluated at
    /// `now` on every call.
    pub async fn kerberos_principal(
        &self,
        name: &PrincipalName,
        now: SystemTime,
    ) -> Result<Option<KerberosPrincipal>, DirError> {
        Ok(self
            .principal_snapshot(name)
            .await?
            .map(|snap| self.principal_at(&snap, now)))
    }

    /// The principal's record with the checks that depend on the time or on the in-memory
    /// failure counts (lockout), which no write announces.
    fn principal_at(&self, snap: &PrincipalSnapshot, now: SystemTime) -> KerberosPrincipal {
        let entry = &snap.entry;
        let locked = entry.dn != self.domain.administrator()
            && (policy::locked_until(entry, &snap.policy, now).is_some()
                || self
                    .lockout
                    .is_locked(entry.dn.norm(), now, snap.policy.lockout_duration));
        let mut p = snap.record.clone();
        p.locked = locked;
        p
    }

    /// The principal as stored, from the cache when the store's write generation is the one
    /// it was read at, else read (and cached).
    async fn principal_snapshot(
        &self,
        name: &PrincipalName,
    ) -> Result<Option<Arc<PrincipalSnapshot>>, DirError> {
        // Read the generation before the store: a write committed meanwhile makes the
        // snapshot stale at once rather than cached as current.
        let generation = self.backend.generation();
        let key = CacheKey::of(name);
        if let Some(g) = generation {
            if let Some(hit) = self.principal_cache.get(&key, g) {
                return Ok(hit);
            }
        }
        let snap = self.read_principal(name).await?.map(Arc::new);
        if let Some(g) = generation {
            self.principal_cache.put(key, g, snap.clone());
        }
        Ok(snap)
    }

    async fn read_principal(
        &self,
        name: &PrincipalName,
    ) -> Result<Option<PrincipalSnapshot>, DirError> {
        let Some(master) = self.master.clone() else {
            return Ok(None);
        };
        let Some(found) = self.resolve_principal(name).await? else {
            return Ok(None);
        };
        let entry = match found.entry {
            Some(e) => e,
            None => match self.backend.entry(&found.dn).await? {
                Some(e) => e,
                None => return Ok(None),
            },
        };
        if !secrets::is_principal(&entry) {
            return Ok(None);
        }
        let stored = secrets::open_entry_keys(&entry, &master)?;
        let (salt, keys) = match stored {
            Some(s) => (s.salt.clone(), s.keys.clone()),
            None => (String::new(), Vec::new()),
        };
        let kvno = keys.first().map_or(0, |k| k.kvno);
        let policy = self.policy_for(&entry).await?;
        let record = KerberosPrincipal {
            locked: false, // evaluated per call (`principal_at`)
            must_change_password: policy::must_change(&entry),
            password_expires: policy::password_expires(&entry, &policy),
            canonical: found.canonical,
            salt,
            kvno,
            keys,
            disabled: super::uac(&entry) & UAC_ACCOUNTDISABLE != 0,
            expires: secrets::account_expires(&entry),
            is_service: found.service
                || entry.is_a("computer")
                || entry.has("servicePrincipalName"),
            account_id: entry.values("objectGUID").first().cloned(),
        };
        Ok(Some(PrincipalSnapshot {
            entry,
            policy,
            record,
        }))
    }

    /// The account behind a principal as the KDC's PAC describes it; `None` for names that
    /// are no account with an objectSid. Groups come from tokenGroups (nesting followed).
    pub async fn kerberos_account_sids(
        &self,
        name: &PrincipalName,
    ) -> Result<Option<AccountIdentity>, DirError> {
        let Some(snap) = self.principal_snapshot(name).await? else {
            return Ok(None);
        };
        let entry = &snap.entry;
        let Some(sid) = entry.values("objectSid").first().cloned() else {
            return Ok(None);
        };
        // MS-DTYP §2.4.2.2: the domain SID is the account SID without its last sub-authority.
        if sid.len() < 12 || usize::from(sid[1]) * 4 + 8 != sid.len() {
            return Ok(None);
        }
        let mut domain_sid = sid[..sid.len() - 4].to_vec();
        domain_sid[1] -= 1;
        let q = crate::backend::Query {
            base: entry.dn.clone(),
            scope: crate::backend::Scope::Base,
            filter: crate::model::filter::Filter::Present("objectClass".into()),
            size_limit: Some(1),
            deadline: Instant::now() + Duration::from_secs(10),
            attrs: vec!["tokenGroups".into()],
        };
        let group_sids = self
            .backend
            .search(&q)
            .await?
            .first()
            .map(|e| e.values("tokenGroups").to_vec())
            .unwrap_or_default();
        let text = |a: &str| entry.first_str(a).map(str::to_owned);
        let number = |a: &str| {
            entry
                .first_str(a)
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        Ok(Some(AccountIdentity {
            sam_account_name: text("sAMAccountName").unwrap_or_else(|| name.joined()),
            full_name: text("displayName").unwrap_or_default(),
            upn: text("userPrincipalName"),
            sid,
            domain_sid,
            primary_group_rid: number("primaryGroupID")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(crate::backend::local::RID_DOMAIN_USERS),
            group_sids,
            user_account_control: number("userAccountControl")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
            password_last_set: number("pwdLastSet")
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0),
            netbios_domain: self.domain.netbios.to_ascii_uppercase(),
            logon_server: self
                .domain
                .host
                .split('.')
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase(),
        }))
    }

    /// kpasswd (RFC 3244): the principal, already authenticated by the KDC with an initial
    /// ticket, sets its own password through the directory's one password path (policy,
    /// hash and keys, one transaction).
    pub async fn kerberos_change_password(
        &self,
        name: &PrincipalName,
        new_password: &str,
        now: SystemTime,
    ) -> Result<(), DirError> {
        let Some(found) = self.resolve_principal(name).await? else {
            return Err(DirError::NoSuchObject {
                matched: Dn::root(),
            });
        };
        let me = Authenticated::new(found.dn.clone(), false);
        let allowed = access::may_set_password(&me, &found.dn)?;
        let by = allowed.who().dn().clone();
        self.set_password(by, &found.dn, new_password.as_bytes().to_vec(), true, now)
            .await
    }

    /// kpasswd set-password (RFC 3244 with `targname`): `caller`, authenticated by the KDC
    /// with a `kadmin/changepw` ticket (initial or not), sets `target`'s password. Allowed to
    /// administrators (Domain Admins) and to a joiner (`[domain] join_group`) for the
    /// computers it created; a caller naming itself changes its own password.
    /// An administrator's reset is exempt from minimum age and history, as in AD.
    pub async fn kerberos_set_password(
        &self,
        caller: &PrincipalName,
        target: &PrincipalName,
        new_password: &str,
        now: SystemTime,
    ) -> Result<(), DirError> {
        let missing = || DirError::NoSuchObject {
            matched: Dn::root(),
        };
        let Some(me) = self.resolve_principal(caller).await? else {
            return Err(DirError::InsufficientAccess);
        };
        let Some(me_entry) = self.backend.entry(&me.dn).await? else {
            return Err(DirError::InsufficientAccess);
        };
        let admin = self.is_admin(&me_entry).await?;
        let who = Authenticated::new(me.dn.clone(), admin);
        let Some(found) = self.resolve_principal(target).await? else {
            // Only an administrator learns that the name does not exist.
            return Err(if admin {
                missing()
            } else {
                DirError::InsufficientAccess
            });
        };
        let allowed = match access::may_set_password(&who, &found.dn) {
            Ok(allowed) => allowed,
            Err(denied) => {
                // A joiner (`[domain] join_group`) resets the computers it created.
                let member = self.in_join_group(&who).await?;
                let target_entry = match found.entry {
                    Some(e) => Some(e),
                    None => self.backend.entry(&found.dn).await?,
                };
                match target_entry {
                    Some(t) if member => {
                        access::may_reset_computer(&who, &self.join_delegation(true), &t)
                            .map_err(|_| denied)?
                    }
                    _ => return Err(denied),
                }
            }
        };
        let self_service = allowed.who().dn() == &found.dn;
        let by = allowed.who().dn().clone();
        self.set_password(
            by,
            &found.dn,
            new_password.as_bytes().to_vec(),
            self_service,
            now,
        )
        .await
    }

    /// The KDC rejected a principal's pre-authentication (KDC_ERR_PREAUTH_FAILED): counted
    /// with the account's failed LDAP binds towards lockout.
    pub async fn kerberos_preauth_failed(
        &self,
        name: &PrincipalName,
        now: SystemTime,
    ) -> Result<(), DirError> {
        if let Some(snap) = self.principal_snapshot(name).await? {
            self.authentication_failed(&snap.entry, &snap.policy, now)
                .await;
        }
        Ok(())
    }

    /// True if the principal must give a second factor (`[mfa]`, see `mfa_required`): the
    /// KDC then demands OTP inside FAST. Unknown names need none (the KDC refuses them).
    pub async fn kerberos_mfa_required(&self, name: &PrincipalName) -> Result<bool, DirError> {
        if self.mfa.is_none() {
            return Ok(false);
        }
        match self.principal_snapshot(name).await? {
            Some(snap) => self.mfa_required(&snap.entry).await,
            None => Ok(false),
        }
    }

    /// A principal pre-authenticated successfully: its failure count starts over.
    pub async fn kerberos_preauth_succeeded(&self, name: &PrincipalName) -> Result<(), DirError> {
        if let Some(snap) = self.principal_snapshot(name).await? {
            self.authentication_succeeded(&snap.entry.dn);
        }
        Ok(())
    }

    /// Gives the account at `dn` fresh random keys with the next kvno (its password, if any,
    /// no longer works for Kerberos). With `keep_previous`, the current keys remain usable
    /// for decryption (krbtgt rotation). Returns the new keys.
    pub async fn set_random_keys(
        &self,
        who: &Authenticated,
        dn: &Dn,
        keep_previous: bool,
        now: SystemTime,
    ) -> Result<Vec<KeyMaterial>, DirError> {
        let allowed = access::may_change_tree(who)?;
        let Some(master) = self.master.clone() else {
            return Err(DirError::UnwillingToPerform("Kerberos is not enabled"));
        };
        let Some(entry) = self.backend.entry(dn).await? else {
            return Err(self.missing(dn).await);
        };
        let realm = self.domain.realm.clone();
        let (blob, kvno, fresh) = self
            .hasher
            .run(move || {
                let ctx = KeyContext {
                    realm: &realm,
                    master: &master,
                };
                secrets::random_secrets(&entry, ctx, keep_previous)
            })
            .await?;
        let mods = vec![
            Modification {
                op: ModOp::Replace,
                attr: secrets::KEYS_ATTR.into(),
                values: vec![blob],
            },
            Modification {
                op: ModOp::Replace,
                attr: secrets::KVNO_ATTR.into(),
                values: vec![kvno.to_string().into_bytes()],
            },
        ];
        let ctx = WriteCtx {
            by: allowed.who().dn().clone(),
            now,
        };
        self.backend.modify(dn, mods, true, &ctx).await?;
        Ok(fresh)
    }

    /// `dird krbtgt rotate`: new krbtgt keys with kvno+1; the previous keys stay valid so
    /// that tickets issued before the rotation keep working until they expire. Returns the
    /// new kvno.
    pub async fn rotate_krbtgt(
        &self,
        who: &Authenticated,
        now: SystemTime,
    ) -> Result<u32, DirError> {
        let dn = self.krbtgt_dn().await?;
        let keys = self.set_random_keys(who, &dn, true, now).await?;
        Ok(keys.first().map_or(0, |k| k.kvno))
    }

    /// `dird keytab`: finds or creates the account of `principal` (a computer
    /// `cn=SHORT,cn=Computers` with sAMAccountName `SHORT$`, dNSHostName and SPNs for
    /// `service/fqdn`; an existing account for a plain name or a known SPN), gives it fresh
    /// random keys and returns keytab entries for the requested name, each SPN of the
    /// account and its sAMAccountName.
    pub async fn keytab_entries(
        &self,
        who: &Authenticated,
        principal: &PrincipalName,
        now: SystemTime,
    ) -> Result<Vec<(PrincipalName, KeyMaterial)>, DirError> {
        access::may_change_tree(who)?;
        let realm = self.domain.realm.clone();
        if !principal.realm.is_empty() && !principal.realm.eq_ignore_ascii_case(&realm) {
            return Err(DirError::UnwillingToPerform(
                "the principal is not in this directory's realm",
            ));
        }
        let dn = match self.resolve_principal(principal).await? {
            Some(found) => found.dn,
            None if principal.components.len() >= 2 => {
                self.ensure_computer(who, principal, now).await?
            }
            None => {
                return Err(DirError::NoSuchObject {
                    matched: Dn::root(),
                })
            }
        };
        let keys = self.set_random_keys(who, &dn, false, now).await?;
        let Some(entry) = self.backend.entry(&dn).await? else {
            return Err(self.missing(&dn).await);
        };
        let mut names = vec![principal.clone().with_realm(&realm)];
        let spns = entry
            .values("servicePrincipalName")
            .iter()
            .filter_map(|v| std::str::from_utf8(v).ok())
            .filter_map(|s| PrincipalName::parse(s).ok());
        let sam = entry
            .first_str("sAMAccountName")
            .map(|s| PrincipalName::new(vec![s.to_owned()], realm.as_str()));
        for name in spns.chain(sam) {
            let name = name.with_realm(&realm);
            if !names.iter().any(|n| n.eq_ignore_case(&name)) {
                names.push(name);
            }
        }
        Ok(names
            .into_iter()
            .flat_map(|n| keys.iter().map(move |k| (n.clone(), k.clone())))
            .collect())
    }

    async fn krbtgt_dn(&self) -> Result<Dn, DirError> {
        self.backend
            .find_one("sAMAccountName", KRBTGT_ACCOUNT)
            .await?
            .ok_or(DirError::NoSuchObject {
                matched: Dn::root(),
            })
    }

    /// The keys a service of this server accepts tickets with (SASL GSSAPI on LDAP): for
    /// the account holding `service` (the DC's `ldap/<dc_hostname>`), every
    /// servicePrincipalName it lists (a client may name any of them) and its current keys.
    /// `None` when the account or its keys are missing.
    pub async fn service_keys(
        &self,
        service: &PrincipalName,
    ) -> Result<Option<(Vec<String>, Vec<KeyMaterial>)>, DirError> {
        let Some(snap) = self.principal_snapshot(service).await? else {
            return Ok(None);
        };
        if snap.record.keys.is_empty() {
            return Ok(None);
        }
        let mut names: Vec<String> = snap
            .entry
            .values("servicePrincipalName")
            .iter()
            .filter_map(|v| std::str::from_utf8(v).ok().map(str::to_owned))
            .collect();
        names.push(service.joined());
        Ok(Some((names, snap.record.keys.clone())))
    }

    /// The identity of a Kerberos client that authenticated to LDAP with a service ticket
    /// (SASL GSSAPI / GSS-SPNEGO): the entry of `client` (`name@REALM` of this realm), under
    /// the same account policy as a simple bind after its password check: locked (775),
    /// disabled (533), expired (701), password to change (773) or expired (532) are refused.
    pub async fn kerberos_bind(
        &self,
        client: &PrincipalName,
        now: SystemTime,
    ) -> Result<super::Identity, DirError> {
        let refused = DirError::InvalidCredentials(Some("52e"));
        let Some(found) = self.resolve_principal(client).await? else {
            return Err(refused);
        };
        if found.service && found.entry.is_none() {
            return Err(refused); // krbtgt or a bare SPN: not a client account
        }
        let entry = match found.entry {
            Some(e) => e,
            None => match self.backend.entry(&found.dn).await? {
                Some(e) => e,
                None => return Err(refused),
            },
        };
        let policy = self.policy_for(&entry).await?;
        if self.is_locked(&entry, &policy, now) {
            return Err(DirError::InvalidCredentials(Some("775")));
        }
        if let Some(refusal) = policy::logon_refusal(&entry, &policy, now) {
            return Err(DirError::InvalidCredentials(Some(refusal.data_code())));
        }
        let admin = self.is_admin(&entry).await?;
        Ok(super::Identity::User(Authenticated::new(entry.dn, admin)))
    }

    /// Creates `cn=SHORT,cn=Computers` for `service/fqdn`, or adds the SPN to it.
    async fn ensure_computer(
        &self,
        who: &Authenticated,
        principal: &PrincipalName,
        now: SystemTime,
    ) -> Result<Dn, DirError> {
        let spn = principal.joined();
        let fqdn = principal
            .components
            .get(1)
            .map(|h| h.to_ascii_lowercase())
            .unwrap_or_default();
        let short = fqdn
            .split('.')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        if short.is_empty() {
            return Err(DirError::UnwillingToPerform(
                "no host name in the principal",
            ));
        }
        let dn = self
            .domain
            .base
            .child(Rdn::new("cn", "Computers"))
            .child(Rdn::new("cn", &short));
        if self.backend.entry(&dn).await?.is_some() {
            let mods = vec![Modification {
                op: ModOp::Add,
                attr: "servicePrincipalName".into(),
                values: vec![spn.into_bytes()],
            }];
            self.modify(who, &dn, mods, true, now).await?;
            return Ok(dn);
        }
        let mut spns: Vec<String> = vec![spn];
        for extra in [format!("host/{fqdn}"), format!("HOST/{short}")] {
            if !spns.iter().any(|s| s.eq_ignore_ascii_case(&extra)) {
                spns.push(extra);
            }
        }
        let mut e = Entry::new(dn.clone());
        e.set(
            "objectClass",
            ["top", "person", "organizationalPerson", "user", "computer"]
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect(),
        );
        e.set_str("cn", &short);
        e.set_str("sAMAccountName", &format!("{short}$"));
        e.set_str(
            "userAccountControl",
            &UAC_WORKSTATION_TRUST_ACCOUNT.to_string(),
        );
        if fqdn.contains('.') {
            e.set_str("dNSHostName", &fqdn);
        }
        e.set(
            "servicePrincipalName",
            spns.into_iter().map(String::into_bytes).collect(),
        );
        self.add(who, e, now).await?;
        Ok(dn)
    }

    async fn resolve_principal(&self, name: &PrincipalName) -> Result<Option<Resolved>, DirError> {
        let realm = self.domain.realm.as_str();
        if !name.realm.is_empty() && !name.realm.eq_ignore_ascii_case(realm) {
            return Ok(None);
        }
        let account = |sam: &str| PrincipalName::new(vec![sam.to_owned()], realm);
        match name.components.as_slice() {
            [one] if one.contains('@') || name.name_type == name_type::ENTERPRISE => {
                let dn = match self.backend.find_one("userPrincipalName", one).await? {
                    Some(dn) => Some(dn),
                    None => match one.rsplit_once('@') {
                        Some((user, domain))
                            if !user.is_empty()
                                && (domain.eq_ignore_ascii_case(&self.domain.name)
                                    || domain.eq_ignore_ascii_case(realm)) =>
                        {
                            self.backend.find_one("sAMAccountName", user).await?
                        }
                        _ => None,
                    },
                };
                let Some(dn) = dn else { return Ok(None) };
                let Some(entry) = self.backend.entry(&dn).await? else {
                    return Ok(None);
                };
                let Some(sam) = entry.first_str("sAMAccountName") else {
                    return Ok(None);
                };
                Ok(Some(Resolved {
                    canonical: account(sam),
                    dn,
                    service: false,
                    entry: Some(entry),
                }))
            }
            [one] => {
                let Some(dn) = self.backend.find_one("sAMAccountName", one).await? else {
                    return Ok(None);
                };
                let Some(entry) = self.backend.entry(&dn).await? else {
                    return Ok(None);
                };
                let sam = entry.first_str("sAMAccountName").unwrap_or(one.as_str());
                Ok(Some(Resolved {
                    canonical: account(sam),
                    dn,
                    service: false,
                    entry: Some(entry),
                }))
            }
            _ if name.is_krbtgt_for(realm) => Ok(self
                .backend
                .find_one("sAMAccountName", KRBTGT_ACCOUNT)
                .await?
                .map(|dn| Resolved {
                    dn,
                    canonical: PrincipalName::krbtgt(realm),
                    service: true,
                    entry: None,
                })),
            [first, ..] if first.eq_ignore_ascii_case("krbtgt") => Ok(None), // other realms
            _ => {
                let spn = name.joined();
                Ok(self
                    .backend
                    .find_one("servicePrincipalName", &spn)
                    .await?
                    .map(|dn| Resolved {
                        dn,
                        canonical: PrincipalName {
                            name_type: name.name_type,
                            components: name.components.clone(),
                            realm: realm.to_owned(),
                        },
                        service: true,
                        entry: None,
                    }))
            }
        }
    }
}

/// The krbtgt account created at provisioning: `cn=krbtgt,cn=Users`, disabled for LDAP binds
/// (it has no password; its keys are random), like AD's.
pub fn krbtgt_entry(domain: &DomainInfo) -> Entry {
    let mut e = Entry::new(domain.users().child(Rdn::new("cn", KRBTGT_ACCOUNT)));
    e.set(
        "objectClass",
        ["top", "person", "organizationalPerson", "user"]
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect(),
    );
    e.set_str("cn", KRBTGT_ACCOUNT);
    e.set_str("sn", KRBTGT_ACCOUNT);
    e.set_str("sAMAccountName", KRBTGT_ACCOUNT);
    e.set_str("description", "Key Distribution Center Service Account");
    // ACCOUNTDISABLE | NORMAL_ACCOUNT, as AD's krbtgt (514).
    e.set_str("userAccountControl", "514");
    e
}

/// Gives a new (not yet stored) entry random keys with kvno 1 (provisioning).
pub fn seal_new_random_keys(entry: &mut Entry, ctx: KeyContext<'_>) -> Result<(), DirError> {
    secrets::ensure_guid(entry);
    let (blob, kvno, _) = secrets::random_secrets(entry, ctx, false)?;
    entry.set(secrets::KEYS_ATTR, vec![blob]);
    entry.set_str(secrets::KVNO_ATTR, &kvno.to_string());
    Ok(())
}
