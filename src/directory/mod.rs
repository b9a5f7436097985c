//! Protocol-neutral core: who may do what to which entry, and in which order.
//! May import: `model`, `backend` (the trait and its value types). Must not import: `ldap`,
//! `kdc`, `store`, `redb`. Invariant: the order of the cross-cutting steps of every
//! operation (access → rewrite → backend → redact) is written here, once per operation.

pub mod access;
pub mod bind_cache;
pub mod bulk;
pub mod error;
pub mod identity;
pub mod kerberos;
pub mod legacy;
pub mod lockout;
pub mod paging;
pub mod password;
pub mod policy;
mod pwpath;
pub mod pwvalue;
pub mod referral;
pub mod relay;
pub mod secrets;
pub mod stream;
pub mod trust;

use std::collections::HashSet;
use std::hash::{Hash, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::backend::{dn_values, Backend, BackendError, Link, Query, Scope, Usage, WriteCtx};
use crate::model::filter::{base_attr, Filter, IN_CHAIN};
use crate::model::{Dn, Entry, ModOp, Modification, Rdn, Schema};
use secrets::MasterKey;

use crate::mfa::Mfa;
pub use access::ReadPolicy;
pub use error::DirError;
pub use identity::{Authenticated, Identity};
pub use paging::Cursors;
use password::Hasher;
use policy::{PasswordPolicy, Policies};
pub use relay::{Relay, Served};

/// The domain this directory serves.
#[derive(Clone, Debug)]
pub struct DomainInfo {
    /// `example.com`
    pub name: String,
    /// `dc=example,dc=com`
    pub base: Dn,
    /// `EXAMPLE.COM`
    pub realm: String,
    /// `EXAMPLE`
    pub netbios: String,
    /// this server's DNS host name
    pub host: String,
    /// `[domain] join_group`: members may join computers (see `access::may_add_computer`)
    pub join_group: Option<Dn>,
    /// `[domain] join_container`: where they may
    pub join_container: Dn,
}

impl DomainInfo {
    /// `cn=Users,<base>`
    pub fn users(&self) -> Dn {
        self.base.child(Rdn::new("cn", "Users"))
    }

    /// `cn=Administrator,cn=Users,<base>`
    pub fn administrator(&self) -> Dn {
        self.users().child(Rdn::new("cn", "Administrator"))
    }

    /// `cn=Domain Admins,cn=Users,<base>`
    pub fn domain_admins(&self) -> Dn {
        self.users().child(Rdn::new("cn", "Domain Admins"))
    }
}

/// Server-side search limits.
#[derive(Clone, Copy, Debug)]
pub struct SearchLimits {
    /// entries per non-paged search for non-admins (0: unlimited)
    pub size_limit: u32,
    /// longest search
    pub time_limit: Duration,
    /// largest page (like AD's MaxPageSize)
    pub max_page_size: u32,
}

/// A search request, protocol-neutral.
#[derive(Clone, Debug)]
pub struct SearchSpec {
    /// base DN
    pub base: Dn,
    /// scope
    pub scope: Scope,
    /// filter
    pub filter: Filter,
    /// client size limit (0: none)
    pub size_limit: u32,
    /// client time limit in seconds (0: none)
    pub time_limit: u32,
    /// requested attributes (RFC 4511 §4.5.1.8; empty: all user attributes); lets the
    /// backend skip computed attributes that will not be returned
    pub attrs: Vec<String>,
}

/// Result of a non-paged search.
#[derive(Debug)]
pub struct Found {
    /// the entries, already redacted
    pub entries: Vec<Entry>,
    /// true if the size limit cut the result short
    pub size_limited: bool,
}

/// One page of a paged search.
#[derive(Debug)]
pub struct Page {
    /// the entries of this page, redacted
    pub entries: Vec<Entry>,
    /// entries still to come
    pub estimate: u64,
}

/// The directory service core.
pub struct Directory {
    backend: Arc<dyn Backend>,
    schema: Arc<Schema>,
    domain: DomainInfo,
    read_policy: ReadPolicy,
    limits: SearchLimits,
    hasher: Hasher,
    master: Option<Arc<MasterKey>>,
    /// failed authentications per account (lockout), shared by LDAP binds and the KDC
    lockout: Arc<dyn lockout::FailureCounter>,
    /// the domain policy and password settings objects, with the generation they were read at
    policies: RwLock<Option<Arc<Policies>>>,
    policies_generation: AtomicU64,
    /// decoded Kerberos principals, valid while the store's write generation is unchanged
    principal_cache: kerberos::PrincipalCache,
    /// every open paged search (server-wide cap, see `paging`)
    cursors: Arc<paging::Cursors>,
    /// verified simple binds, remembered for a short time (`bind_cache`; off by default)
    bind_cache: Arc<bind_cache::BindCache>,
    /// the second factor (`[mfa]`); `None`: no MFA
    mfa: Option<Arc<Mfa>>,
    /// naming contexts of trusted realms, answered with referrals (`[[trust]] ldap`)
    referrals: referral::Referrals,
    /// this server also serves the global catalog (`[ldap] gc_listen`): the rootDSE's
    /// isGlobalCatalogReady and the NetLogon GC flag say so
    global_catalog: bool,
}

/// What an account typed, split into password and one-time code (`Directory::mfa_typed`).
struct Typed<'a> {
    /// the MFA service, when this account needs a second factor
    mfa: Option<Arc<Mfa>>,
    /// the password part
    password: &'a [u8],
    /// the code part (`None`: MFA not needed, or no code typed)
    code: Option<&'a [u8]>,
}

/// Connector mode's MFA decision for one bind (`Directory::relay_mfa_step`).
struct RelayMfa<'a> {
    /// the split; `typed.mfa` is `None` when the account needs no second factor
    typed: Typed<'a>,
    /// the RADIUS User-Name (sAMAccountName); `None` with `typed.mfa` set: the account was
    /// not found, and an accepted password is refused (fail closed)
    user: Option<String>,
}

/// A successful bind.
#[derive(Debug)]
pub struct BindOk {
    /// the new identity of the connection
    pub identity: Identity,
    /// the password expires within the warning window (draft-behera-ldap-password-policy
    /// §6.2 timeBeforeExpiration); `None` when it does not expire soon
    pub expires_in: Option<Duration>,
}

/// Warn about password expiry this long before it (sssd's default pwd_expiration_warning is
/// 7 days; AD's logon warning is 14).
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86400);

/// Most nodes visited for nested groups: per admin or policy check, and in all for the
/// LDAP_MATCHING_RULE_IN_CHAIN assertions of one search.
const MAX_CHAIN_NODES: usize = 10_000;

/// What the IN_CHAIN assertions of one search may spend: the search's deadline, and one
/// cap on visited nodes shared by all of them (issue 9 §6).
struct ChainBudget {
    deadline: Instant,
    nodes_left: usize,
}

impl Directory {
    /// Builds the core over a backend.
    pub fn new(
        backend: Arc<dyn Backend>,
        schema: Arc<Schema>,
        domain: DomainInfo,
        read_policy: ReadPolicy,
        limits: SearchLimits,
        hash_concurrency: usize,
    ) -> Directory {
        Directory {
            backend,
            schema,
            domain,
            read_policy,
            limits,
            hasher: Hasher::new(hash_concurrency),
            master: None,
            lockout: Arc::new(lockout::Lockout::new()),
            policies: RwLock::new(None),
            policies_generation: AtomicU64::new(0),
            principal_cache: kerberos::PrincipalCache::default(),
            cursors: Arc::new(paging::Cursors::default()),
            bind_cache: Arc::new(bind_cache::BindCache::new(Duration::ZERO, 0)),
            mfa: None,
            referrals: referral::Referrals::default(),
            global_catalog: false,
        }
    }

    /// Counts failed authentications in `counter` instead of this process's memory (a
    /// cluster's shared counters, `cluster::shared::EtcdLockout`).
    pub fn with_lockout(mut self, counter: Arc<dyn lockout::FailureCounter>) -> Directory {
        self.lockout = counter;
        self
    }

    /// Requires a second factor (RADIUS one-time code) of the accounts `mfa` names.
    pub fn with_mfa(mut self, mfa: Arc<Mfa>) -> Directory {
        self.mfa = Some(mfa);
        self
    }

    /// Answers requests under these naming contexts with referrals (RFC 4511 §4.1.10).
    pub fn with_referrals(mut self, referrals: referral::Referrals) -> Directory {
        self.referrals = referrals;
        self
    }

    /// Marks this server as a global catalog (it listens on `[ldap] gc_listen`).
    pub fn with_global_catalog(mut self, on: bool) -> Directory {
        self.global_catalog = on;
        self
    }

    /// Whether this server serves the global catalog.
    pub fn global_catalog(&self) -> bool {
        self.global_catalog
    }

    /// A referral for a request on `target` held by another directory (a trusted realm's).
    fn refer(&self, target: &Dn) -> Result<(), DirError> {
        match self.referrals.for_target(target) {
            Some(urls) => Err(DirError::Referral(urls)),
            None => Ok(()),
        }
    }

    /// The MFA service, if `[mfa]` is configured (the KDC asks it too).
    pub fn mfa(&self) -> Option<Arc<Mfa>> {
        self.mfa.clone()
    }

    /// True if `entry` must give a second factor: `[mfa]` is on and names it (by group,
    /// nested, or everyone, less the exempt).
    pub async fn mfa_required(&self, entry: &Entry) -> Result<bool, DirError> {
        let Some(mfa) = &self.mfa else {
            return Ok(false);
        };
        let start = dn_values(entry, "memberOf");
        let closure = self
            .backend
            .closure(start, Link::MemberOf, None, MAX_CHAIN_NODES)
            .await?;
        Ok(mfa.required_for(&entry.dn, &closure.dns, closure.complete))
    }

    /// Remembers verified simple binds for `ttl` (`[ldap] bind_cache_ttl_secs`; zero: off).
    pub fn with_bind_cache(mut self, ttl: Duration) -> Directory {
        self.bind_cache = Arc::new(bind_cache::BindCache::new(
            ttl,
            bind_cache::DEFAULT_CAPACITY,
        ));
        self
    }

    /// Caps the paged-search cursors open at once, server-wide (`[ldap] max_paged_cursors`);
    /// beyond it the least recently used is released.
    pub fn with_paged_cursor_limit(mut self, capacity: usize) -> Directory {
        self.cursors = Arc::new(paging::Cursors::new(capacity));
        self
    }

    /// The server-wide paged-search cursors (connections register with it).
    pub fn cursors(&self) -> Arc<paging::Cursors> {
        self.cursors.clone()
    }

    /// Enables Kerberos keys: every password set from now on also derives the principal's
    /// keys, sealed under `master` (DESIGN.md §5). Without it, only LDAP hashes are written.
    /// The master key the Kerberos keys are sealed under, if this instance has one.
    pub fn master_key(&self) -> Option<Arc<MasterKey>> {
        self.master.clone()
    }

    pub fn with_master_key(mut self, master: Arc<MasterKey>) -> Directory {
        self.master = Some(master);
        self
    }

    /// The identity of the local administrator CLI (`dird user …`, `dird import`): whoever
    /// can open the database file already controls the directory, so it acts as the
    /// built-in Administrator.
    pub fn local_admin(&self) -> Authenticated {
        Authenticated::new(self.domain.administrator(), true)
    }

    /// The schema in force.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The domain served.
    pub fn domain(&self) -> &DomainInfo {
        &self.domain
    }

    /// Search limits in force.
    pub fn limits(&self) -> SearchLimits {
        self.limits
    }

    /// The domain root's objectGUID (the domain GUID of the NetLogon ping, MS-ADTS
    /// §6.3.1.9); `None` if it cannot be read.
    pub async fn domain_guid(&self) -> Option<Vec<u8>> {
        match self.backend.entry(&self.domain.base).await {
            Ok(Some(root)) => root.values("objectGUID").first().cloned(),
            _ => None,
        }
    }

    /// Highest committed USN.
    pub async fn usn(&self) -> Result<u64, DirError> {
        Ok(self.backend.usn().await?)
    }

    /// Object usage.
    pub async fn usage(&self) -> Result<Usage, DirError> {
        Ok(self.backend.usage().await?)
    }

    /// How many accounts still hold a password hash migrated from another directory (they
    /// have no argon2 hash and no Kerberos keys until their first successful bind). O(1).
    pub async fn legacy_password_count(&self) -> Result<u64, DirError> {
        Ok(self.backend.legacy_password_count().await?)
    }

    /// The tier's caps: (tier name, user cap, object cap), when the backend enforces them.
    pub fn object_limits(&self) -> Option<(&'static str, Option<u64>, u64)> {
        self.backend
            .object_limits()
            .map(|l| (l.tier, l.max_users, l.max_objects))
    }

    /// Simple bind (RFC 4513 §5.1). `name` may be a DN, a UPN (`alice@example.com`) or a
    /// down-level name (`EXAMPLE\alice`). Account policy, in AD's order: a locked account is
    /// refused before its password is checked (`data 775`, and no argon2 work); a wrong
    /// password counts towards lockout (`data 52e`); a correct one is then refused for a
    /// disabled account (533), an expired account (701), a password that must be changed
    /// (773) or has expired (532).
    pub async fn bind(
        &self,
        name: &str,
        password: &[u8],
        now: SystemTime,
    ) -> Result<BindOk, DirError> {
        self.bind_via(None, name, password, now).await
    }

    /// Per-session state of a backend that verifies credentials and forwards requests itself
    /// (connector mode); `None` for the local store.
    pub fn open_relay(&self) -> Option<Relay> {
        self.backend.open_session().map(Relay)
    }

    /// `bind` on a session: with a `Relay`, the backend verifies the credentials (the
    /// upstream's answer, AD data codes included, is the result).
    pub async fn bind_via(
        &self,
        relay: Option<&Relay>,
        name: &str,
        password: &[u8],
        now: SystemTime,
    ) -> Result<BindOk, DirError> {
        if let Some(relay) = relay {
            if !name.is_empty() && password.is_empty() {
                return Err(DirError::UnwillingToPerform(
                    "unauthenticated bind (name without password) is disabled",
                ));
            }
            // MFA in connector mode (issues 11, 12): who needs a code is known before the
            // upstream bind (the service account's lookup), so the code is cut off only for
            // them and every bind costs one upstream attempt (AD counts lockout per attempt).
            // The upstream verifies the password first (its refusal passes through
            // unchanged), RADIUS the code after it.
            let step = match &self.mfa {
                Some(mfa) if !name.is_empty() => {
                    Some(self.relay_mfa_step(relay, mfa, name, password).await?)
                }
                _ => None,
            };
            let password = step.as_ref().map_or(password, |s| s.typed.password);
            let identity = match relay.0.verify_credentials(name, password).await? {
                crate::backend::Verified::Anonymous => Identity::Anonymous,
                crate::backend::Verified::User(dn) => Identity::User(Authenticated::new(dn, false)),
            };
            if let Some(step) = &step {
                if let Err(e) = self.relay_mfa_verify(step, name).await {
                    // The pinned upstream connection must not stay bound as the user.
                    relay.0.reset().await;
                    return Err(e);
                }
            }
            return Ok(BindOk {
                identity,
                expires_in: None,
            });
        }
        if name.is_empty() && password.is_empty() {
            // RFC 4513 §5.1.1 anonymous bind
            return Ok(BindOk {
                identity: Identity::Anonymous,
                expires_in: None,
            });
        }
        if password.is_empty() {
            // RFC 4513 §5.1.2: a name with an empty password is an "unauthenticated bind";
            // it must not authenticate as that name.
            return Err(DirError::UnwillingToPerform(
                "unauthenticated bind (name without password) is disabled",
            ));
        }
        let Some(dn) = self.resolve_account(name).await? else {
            // Spend the same time as a real check so that timing does not reveal names.
            let _ = self
                .hasher
                .verify_as(name, String::new(), password.to_vec())
                .await;
            return Err(DirError::InvalidCredentials(Some("52e")));
        };
        let Some(entry) = self.backend.entry(&dn).await? else {
            // A DN that does not exist costs the same argon2 work as a wrong password.
            let _ = self
                .hasher
                .verify_as(dn.norm(), String::new(), password.to_vec())
                .await;
            return Err(DirError::InvalidCredentials(Some("52e")));
        };
        let policy = self.policy_for(&entry).await?;
        // MFA (issue 11): the code follows the password; the password is checked first (with
        // lockout, and no RADIUS round trip for a wrong one), the code after it.
        let typed = self.mfa_typed(&entry, password).await?;
        let password = typed.password;
        // bind-repeat (`bind_cache`): a password verified for this very state of the entry
        // (uSNChanged, stored hash) within the TTL is not hashed again; lockout is checked
        // before and account state after, as for every bind.
        let tag = self.bind_cache.tag(&entry, password);
        let remembered = tag
            .as_ref()
            .is_some_and(|t| self.bind_cache.hit(t, Instant::now()));
        if remembered && !self.is_locked(&entry, &policy, now) {
            self.lockout.clear(entry.dn.norm());
        } else {
            self.check_password(&entry, &policy, password, now).await?;
            let stored = entry.values("userPassword").first().cloned();
            match stored {
                Some(stored) if legacy::is_legacy(&stored) => {
                    // The entry changes: the next bind verifies (and caches) the argon2 hash.
                    self.upgrade_legacy(&entry, &policy, stored, password, now)
                        .await;
                }
                _ => {
                    if let Some(t) = tag {
                        self.bind_cache.remember(t, Instant::now());
                    }
                }
            }
        }
        if let Some(refusal) = policy::logon_refusal(&entry, &policy, now) {
            return Err(DirError::InvalidCredentials(Some(refusal.data_code())));
        }
        self.mfa_verify(&entry, &typed).await?;
        let expires_in = policy::password_expires(&entry, &policy)
            .and_then(|t| t.duration_since(now).ok())
            .filter(|left| *left <= EXPIRY_WARNING);
        let admin = self.is_admin(&entry).await?;
        Ok(BindOk {
            identity: Identity::User(Authenticated::new(entry.dn, admin)),
            expires_in,
        })
    }

    /// Connector mode: the MFA decision for a bind name before the upstream bind, from the
    /// backend's account lookup (DN, nested groups, sAMAccountName).
    async fn relay_mfa_step<'a>(
        &self,
        relay: &Relay,
        mfa: &Arc<Mfa>,
        name: &str,
        typed: &'a [u8],
    ) -> Result<RelayMfa<'a>, DirError> {
        let Some(account) = relay.0.lookup_account(name).await? else {
            // Not found (or not unique): the password goes upstream as typed, and should the
            // upstream accept it, the bind is refused (fail closed: MFA could not be decided).
            return Ok(RelayMfa {
                typed: Typed {
                    mfa: Some(mfa.clone()),
                    password: typed,
                    code: None,
                },
                user: None,
            });
        };
        if !mfa.required_for(&account.dn, &account.groups, account.groups_complete) {
            return Ok(RelayMfa {
                typed: Typed {
                    mfa: None,
                    password: typed,
                    code: None,
                },
                user: None,
            });
        }
        let (password, code) = match mfa.split_code(typed) {
            Some((password, code)) => (password, Some(code)),
            None => (typed, None),
        };
        let user = account
            .sam_account_name
            .unwrap_or_else(|| account.dn.to_string());
        Ok(RelayMfa {
            typed: Typed {
                mfa: Some(mfa.clone()),
                password,
                code,
            },
            user: Some(user),
        })
    }

    /// Connector mode, after the upstream accepted the password: the code, checked by RADIUS
    /// (User-Name = sAMAccountName). A refusal reads like a wrong password to the client.
    async fn relay_mfa_verify(&self, step: &RelayMfa<'_>, name: &str) -> Result<(), DirError> {
        let Some(mfa) = &step.typed.mfa else {
            return Ok(());
        };
        let Some(user) = &step.user else {
            tracing::warn!(%name, "MFA: the upstream accepted a bind whose account the service account could not find; refused");
            mfa.record_missing(name);
            return Err(DirError::InvalidCredentials(Some("52e")));
        };
        match step.typed.code {
            Some(code) => Ok(mfa.check_code(user, &String::from_utf8_lossy(code)).await?),
            None => {
                mfa.record_missing(user);
                Err(DirError::InvalidCredentials(Some("52e")))
            }
        }
    }

    /// What an account typed, split for MFA: for an account that needs it, the code is cut
    /// off the end (`Mfa::split_code`); otherwise everything is the password.
    async fn mfa_typed<'a>(&self, entry: &Entry, typed: &'a [u8]) -> Result<Typed<'a>, DirError> {
        let mfa = match &self.mfa {
            Some(m) if self.mfa_required(entry).await? => m.clone(),
            _ => {
                return Ok(Typed {
                    mfa: None,
                    password: typed,
                    code: None,
                })
            }
        };
        let (password, code) = match mfa.split_code(typed) {
            Some((password, code)) => (password, Some(code)),
            None => (typed, None),
        };
        Ok(Typed {
            mfa: Some(mfa),
            password,
            code,
        })
    }

    /// The second step of an MFA account's authentication, after its password was verified:
    /// the code, checked by RADIUS (User-Name = sAMAccountName, as AD Connector sends it).
    /// No code is refused like a wrong one.
    async fn mfa_verify(&self, entry: &Entry, typed: &Typed<'_>) -> Result<(), DirError> {
        let Some(mfa) = &typed.mfa else {
            return Ok(());
        };
        let user = entry
            .first_str("sAMAccountName")
            .map(str::to_string)
            .unwrap_or_else(|| entry.dn.to_string());
        match typed.code {
            Some(code) => Ok(mfa
                .check_code(&user, &String::from_utf8_lossy(code))
                .await?),
            None => {
                mfa.record_missing(&user);
                Err(DirError::InvalidCredentials(Some("52e")))
            }
        }
    }

    /// Checks `password` against the account with lockout: refused while locked (775), a
    /// failure is counted (and locks the account at the threshold), a success clears the
    /// count. The lock is checked again once a hashing permit is held, so that guesses queued
    /// behind the one that locked the account cost no argon2 work.
    async fn check_password(
        &self,
        entry: &Entry,
        policy: &PasswordPolicy,
        password: &[u8],
        now: SystemTime,
    ) -> Result<(), DirError> {
        let key = entry.dn.norm().to_string();
        if self.is_locked(entry, policy, now) {
            return Err(DirError::InvalidCredentials(Some("775")));
        }
        let Some(stored) = entry.first_str("userPassword").map(str::to_string) else {
            // An entry without a password (an OU, a group) costs the same argon2 work as a
            // wrong password and gets the same answer; it is not counted towards lockout.
            let _ = self
                .hasher
                .verify_as(&key, String::new(), password.to_vec())
                .await;
            return Err(DirError::InvalidCredentials(Some("52e")));
        };
        let (lockout, duration, pw) = (
            self.lockout.clone(),
            policy.lockout_duration,
            password.to_vec(),
        );
        let key2 = key.clone();
        let verdict = self
            .hasher
            .run_as(&key, move || {
                if lockout.is_locked(&key2, now, duration) {
                    return Ok(None);
                }
                Ok(Some(password::verify_blocking(&stored, &pw)))
            })
            .await?;
        match verdict {
            None => Err(DirError::InvalidCredentials(Some("775"))),
            Some(true) => {
                self.lockout.clear(&key);
                Ok(())
            }
            Some(false) => {
                self.authentication_failed(entry, policy, now).await;
                Err(DirError::InvalidCredentials(Some("52e")))
            }
        }
    }

    /// The account is locked out: by its lockoutTime, or by failures counted in this process.
    fn is_locked(&self, entry: &Entry, policy: &PasswordPolicy, now: SystemTime) -> bool {
        policy::locked_until(entry, policy, now).is_some()
            || self
                .lockout
                .is_locked(entry.dn.norm(), now, policy.lockout_duration)
    }

    /// The first successful bind of an account whose password is a hash migrated from
    /// another directory: the only moment dird knows the cleartext. Through the one password
    /// path (`secrets::new_password` with `Written::Rehash`: no policy, since the password is
    /// not being chosen, pwdLastSet kept), the entry gets an argon2 hash and its Kerberos keys
    /// in one write, which also deletes the migrated hash it was verified against (so a
    /// concurrent password change wins). A failure is logged and the bind still succeeds; the
    /// next bind tries again.
    async fn upgrade_legacy(
        &self,
        entry: &Entry,
        policy: &PasswordPolicy,
        stored: Vec<u8>,
        password: &[u8],
        now: SystemTime,
    ) {
        let rules = password::PasswordRules {
            policy: policy.clone(),
            history: Vec::new(),
        };
        // The history continues (without the migrated hash, were it there: it is the same
        // password as the new argon2 hash).
        let previous: Vec<String> = entry
            .values(secrets::HISTORY_ATTR)
            .iter()
            .filter(|v| **v != stored)
            .filter_map(|v| std::str::from_utf8(v).ok().map(str::to_string))
            .collect();
        let (realm, master) = (self.domain.realm.clone(), self.master.clone());
        let (post, pw) = (entry.clone(), password.to_vec());
        let update = self
            .hasher
            .run(move || {
                let ctx = master.as_deref().map(|master| secrets::KeyContext {
                    realm: &realm,
                    master,
                });
                secrets::new_password(secrets::NewPassword {
                    entry: &post,
                    value: pwvalue::Written::Rehash(zeroize::Zeroizing::new(pw)),
                    rules: &rules,
                    previous: &previous,
                    kerberos: ctx,
                    now,
                })
            })
            .await;
        let update = match update {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(dn = %entry.dn, error = %e, "migrated password hash not upgraded");
                return;
            }
        };
        let replace = |attr: &str, values: Vec<Vec<u8>>| Modification {
            op: ModOp::Replace,
            attr: attr.into(),
            values,
        };
        let mut mods = vec![
            Modification {
                op: ModOp::Delete,
                attr: "userPassword".into(),
                values: vec![stored],
            },
            replace("userPassword", vec![update.phc.into_bytes()]),
            replace(secrets::HISTORY_ATTR, update.history),
        ];
        if let Some((blob, kvno)) = update.kerberos {
            mods.push(replace(secrets::KEYS_ATTR, vec![blob]));
            mods.push(replace(
                secrets::KVNO_ATTR,
                vec![kvno.to_string().into_bytes()],
            ));
        }
        let ctx = WriteCtx {
            by: entry.dn.clone(),
            now,
        };
        match self.backend.modify(&entry.dn, mods, true, &ctx).await {
            Ok(()) => tracing::info!(dn = %entry.dn, "migrated password hash upgraded to argon2"),
            Err(e) => {
                tracing::warn!(dn = %entry.dn, error = %e, "migrated password hash not upgraded")
            }
        }
    }

    /// Counts a failed authentication of `entry` (LDAP bind or Kerberos pre-authentication);
    /// at the threshold, writes lockoutTime once. The built-in Administrator is never locked
    /// out (as in AD), so a flood cannot lock the operator out of their own directory.
    pub(crate) async fn authentication_failed(
        &self,
        entry: &Entry,
        policy: &PasswordPolicy,
        now: SystemTime,
    ) {
        if entry.dn == self.domain.administrator() {
            return;
        }
        let outcome = self
            .lockout
            .record_failure(
                entry.dn.norm(),
                now,
                policy.lockout_threshold,
                policy.observation_window,
                policy.lockout_duration,
            )
            .await;
        if outcome != lockout::Outcome::LockNow {
            return;
        }
        tracing::warn!(dn = %entry.dn, threshold = policy.lockout_threshold, "account locked out");
        let mods = vec![Modification {
            op: ModOp::Replace,
            attr: "lockoutTime".into(),
            values: vec![policy::to_filetime(now).to_string().into_bytes()],
        }];
        let ctx = WriteCtx {
            by: entry.dn.clone(),
            now,
        };
        if let Err(e) = self.backend.modify(&entry.dn, mods, true, &ctx).await {
            // The in-memory lock still holds in this process.
            tracing::error!(dn = %entry.dn, error = %e, "lockoutTime could not be written");
        }
    }

    /// A successful authentication elsewhere (Kerberos) clears the failure count.
    pub(crate) fn authentication_succeeded(&self, dn: &Dn) {
        self.lockout.clear(dn.norm());
    }

    /// The domain policy and the password settings objects, cached until a write touches the
    /// domain object or the settings container.
    async fn policies(&self) -> Result<Arc<Policies>, DirError> {
        if let Some(p) = self.policies.read().ok().and_then(|g| g.clone()) {
            return Ok(p);
        }
        let generation = self.policies_generation.load(Ordering::Acquire);
        let domain = self.backend.entry(&self.domain.base).await?;
        let q = Query {
            base: policy::pso_container(&self.domain.base),
            scope: Scope::One,
            filter: Filter::Equality("objectClass".into(), b"msDS-PasswordSettings".to_vec()),
            size_limit: None,
            deadline: Instant::now() + Duration::from_secs(30),
            attrs: vec!["*".into(), "+".into()],
        };
        let psos = match self.backend.search(&q).await {
            Ok(v) => v,
            Err(BackendError::NoSuchObject { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let p = Arc::new(Policies::new(domain.as_ref(), &psos));
        if let Ok(mut g) = self.policies.write() {
            // A write since we started reading made what we read stale: do not cache it.
            if self.policies_generation.load(Ordering::Acquire) == generation {
                *g = Some(p.clone());
            }
        }
        Ok(p)
    }

    /// Drops the cached policies when `dn` is the domain object or a settings object.
    fn policy_changed(&self, dn: &Dn) {
        if *dn == self.domain.base || dn.is_within(&policy::pso_container(&self.domain.base)) {
            self.policies_generation.fetch_add(1, Ordering::AcqRel);
            if let Ok(mut g) = self.policies.write() {
                *g = None;
            }
        }
    }

    /// The policy in effect for `entry`: its resultant password settings object (directly
    /// linked first, then through its groups, nested), else the domain policy.
    pub async fn policy_for(&self, entry: &Entry) -> Result<PasswordPolicy, DirError> {
        let all = self.policies().await?;
        if all.psos.is_empty() {
            return Ok(all.domain.clone());
        }
        let groups = self.groups_up(entry).await?;
        Ok(all.resultant(&entry.dn, &groups).clone())
    }

    /// The domain password policy (LDIF import checks new passwords against it).
    pub async fn domain_policy(&self) -> Result<PasswordPolicy, DirError> {
        Ok(self.policies().await?.domain.clone())
    }

    /// Adds the constructed msDS-ResultantPSO (the DN of the settings object in effect) to
    /// user entries, as AD does on request.
    async fn with_resultant_pso(&self, entries: &mut [Entry]) -> Result<(), DirError> {
        for e in entries.iter_mut() {
            if e.is_a("user") && !e.is_a("computer") {
                // Group links come from memberOf, which a search only computes when asked
                // for it: read the whole entry when the search did not.
                let full = if e.has("memberOf") {
                    None
                } else {
                    self.backend.entry(&e.dn).await?
                };
                if let Some(source) = self.policy_for(full.as_ref().unwrap_or(e)).await?.source {
                    e.set_str("msDS-ResultantPSO", &source.to_string());
                }
            }
        }
        Ok(())
    }

    /// Resolves a bind name to a DN.
    async fn resolve_account(&self, name: &str) -> Result<Option<Dn>, DirError> {
        if name.contains('=') {
            return Dn::parse(name)
                .map(Some)
                .map_err(|_| DirError::InvalidDnSyntax);
        }
        if let Some((domain, user)) = name.split_once('\\') {
            let ours = domain.eq_ignore_ascii_case(&self.domain.netbios)
                || domain.eq_ignore_ascii_case(&self.domain.name);
            if !ours || user.is_empty() {
                return Ok(None);
            }
            return Ok(self.backend.find_one("sAMAccountName", user).await?);
        }
        if let Some((user, domain)) = name.rsplit_once('@') {
            if let Some(dn) = self.backend.find_one("userPrincipalName", name).await? {
                return Ok(Some(dn));
            }
            if domain.eq_ignore_ascii_case(&self.domain.name)
                || domain.eq_ignore_ascii_case(&self.domain.realm)
            {
                return Ok(self.backend.find_one("sAMAccountName", user).await?);
            }
        }
        Ok(None)
    }

    /// True if the entry is the built-in Administrator or in Domain Admins (nested).
    async fn is_admin(&self, entry: &Entry) -> Result<bool, DirError> {
        if entry.dn == self.domain.administrator() {
            return Ok(true);
        }
        let target = self.domain.domain_admins();
        let groups = self.groups_up(entry).await?;
        Ok(groups.contains(target.norm()))
    }

    /// All groups an entry belongs to, directly or through nesting (normalised DNs). Past
    /// `MAX_CHAIN_NODES` the set is cut short: for admin and policy checks a partial closure
    /// can only withhold rights, never grant them.
    async fn groups_up(&self, entry: &Entry) -> Result<HashSet<String>, DirError> {
        let start = dn_values(entry, "memberOf");
        let closure = self
            .backend
            .closure(start, Link::MemberOf, None, MAX_CHAIN_NODES)
            .await?;
        Ok(closure.dns)
    }

    /// The closure of `start` under `link` for an IN_CHAIN assertion, within `budget`: past
    /// the deadline the search ends with timeLimitExceeded; past the node cap with
    /// adminLimitExceeded (a search must not answer from a partial closure).
    async fn chain(
        &self,
        start: Dn,
        link: Link,
        budget: &mut ChainBudget,
    ) -> Result<HashSet<String>, DirError> {
        let closure = self
            .backend
            .closure(vec![start], link, Some(budget.deadline), budget.nodes_left)
            .await?;
        if !closure.complete {
            return Err(DirError::AdminLimit(format!(
                "LDAP_MATCHING_RULE_IN_CHAIN reaches more than {MAX_CHAIN_NODES} entries"
            )));
        }
        budget.nodes_left = budget.nodes_left.saturating_sub(closure.dns.len());
        Ok(closure.dns)
    }

    /// Rewrites LDAP_MATCHING_RULE_IN_CHAIN assertions into `DnIn` sets (the closure is
    /// computed here, where the backend can be asked about groups). Every assertion of the
    /// filter draws on one `budget`: the search's deadline and one cap on visited nodes.
    fn resolve_chains<'a>(
        &'a self,
        f: Filter,
        budget: &'a mut ChainBudget,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Filter, DirError>> + Send + 'a>>
    {
        Box::pin(async move {
            Ok(match f {
                Filter::And(v) => {
                    let mut out = Vec::with_capacity(v.len());
                    for x in v {
                        out.push(self.resolve_chains(x, &mut *budget).await?);
                    }
                    Filter::And(out)
                }
                Filter::Or(v) => {
                    let mut out = Vec::with_capacity(v.len());
                    for x in v {
                        out.push(self.resolve_chains(x, &mut *budget).await?);
                    }
                    Filter::Or(out)
                }
                Filter::Not(x) => Filter::Not(Box::new(self.resolve_chains(*x, budget).await?)),
                Filter::Extensible {
                    rule: Some(rule),
                    attr: Some(attr),
                    value,
                    ..
                } if rule == IN_CHAIN => {
                    let Ok(target) = std::str::from_utf8(&value)
                        .map_err(|_| ())
                        .and_then(|s| Dn::parse(s).map_err(|_| ()))
                    else {
                        // Not a DN: the assertion is Undefined; an empty set matches nothing.
                        return Ok(Filter::DnIn {
                            attr,
                            dns: HashSet::new(),
                        });
                    };
                    // memberOf IN_CHAIN g: everything nested in g (g included), following
                    // member down; member IN_CHAIN x: x and every group it is nested in.
                    let dns = match base_attr(&attr).to_ascii_lowercase().as_str() {
                        "memberof" => self.chain(target, Link::Member, budget).await?,
                        "member" => self.chain(target, Link::MemberOf, budget).await?,
                        _ => HashSet::from([target.norm().to_string()]),
                    };
                    Filter::DnIn { attr, dns }
                }
                other => other,
            })
        })
    }

    /// The query for a search, with its IN_CHAIN assertions resolved within the query's own
    /// deadline (issue 9 §6: the closure counts against the time limit).
    async fn resolved_query(
        &self,
        who: &Identity,
        spec: &SearchSpec,
        paged: bool,
    ) -> Result<Query, DirError> {
        let mut q = self.query(who, spec, Filter::And(Vec::new()), paged);
        let mut budget = ChainBudget {
            deadline: q.deadline,
            nodes_left: MAX_CHAIN_NODES,
        };
        q.filter = self
            .resolve_chains(spec.filter.clone(), &mut budget)
            .await?;
        Ok(q)
    }

    fn query(&self, who: &Identity, spec: &SearchSpec, filter: Filter, paged: bool) -> Query {
        let admin = who.user().is_some_and(Authenticated::is_admin);
        let server_size = if admin || paged || self.limits.size_limit == 0 {
            None
        } else {
            Some(self.limits.size_limit as usize)
        };
        let client_size = (spec.size_limit > 0).then_some(spec.size_limit as usize);
        let size_limit = match (server_size, client_size) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut time = self.limits.time_limit;
        if spec.time_limit > 0 && !admin {
            time = time.min(Duration::from_secs(u64::from(spec.time_limit)));
        } else if spec.time_limit > 0 {
            time = Duration::from_secs(u64::from(spec.time_limit));
        }
        Query {
            base: spec.base.clone(),
            scope: spec.scope,
            filter,
            size_limit,
            deadline: Instant::now() + time,
            attrs: backend_attrs(spec),
        }
    }

    /// A non-paged search.
    pub async fn search(&self, who: &Identity, spec: SearchSpec) -> Result<Found, DirError> {
        access::may_read(self.read_policy, who)?;
        self.refer(&spec.base)?;
        // Secrets need no filter rewrite: the backend strips them before evaluating, and the
        // filter evaluation treats any item on a secret as Undefined (model::filter).
        let q = self.resolved_query(who, &spec, false).await?;
        match self.backend.search(&q).await {
            Ok(mut entries) => {
                // A constructed attribute, computed for base-scope reads only (as AD's
                // constructed attributes such as tokenGroups).
                if spec.scope == Scope::Base {
                    self.with_resultant_pso(&mut entries).await?;
                }
                Ok(Found {
                    entries: entries.into_iter().map(access::redact).collect(),
                    size_limited: false,
                })
            }
            Err(BackendError::SizeLimit(entries)) => Ok(Found {
                entries: entries.into_iter().map(access::redact).collect(),
                size_limited: true,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// A non-paged search whose entries stream in batches as the backend finds them (issue
    /// 15: memory follows the batch, not the result). Same checks, limits and redaction as
    /// `search`; a base-scope search (one entry, with its constructed attributes) runs whole.
    pub async fn search_stream(
        &self,
        who: &Identity,
        spec: SearchSpec,
    ) -> Result<stream::EntryStream, DirError> {
        if spec.scope == Scope::Base {
            let found = self.search(who, spec).await?;
            return Ok(stream::EntryStream::ready(
                found.entries,
                found.size_limited,
            ));
        }
        access::may_read(self.read_policy, who)?;
        self.refer(&spec.base)?;
        let q = self.resolved_query(who, &spec, false).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(stream::QUEUED_BATCHES);
        let backend = self.backend.clone();
        let producer = tokio::spawn(async move { backend.search_stream(&q, tx).await });
        Ok(stream::EntryStream::running(rx, producer))
    }

    /// One page of a paged search (RFC 2696). `cursor` is the cursor the client's cookie
    /// named (None: a new search). A page size of 0 abandons the search. Returns the page and
    /// the cursor to keep for the next one.
    ///
    /// Every page re-runs the request (access check, filter redaction, IN_CHAIN resolution
    /// with the identity of this moment) from the cursor's position, the handle of the last
    /// entry returned: handles ascend and are never reused, so entries added between pages
    /// appear in a later page if they sort after the position, deleted ones simply do not
    /// appear, and no entry is returned twice. The estimate is 0 (unknown, RFC 2696 §3).
    pub async fn search_page(
        &self,
        who: &Identity,
        spec: SearchSpec,
        page_size: u32,
        cursor: Option<paging::Cursor>,
    ) -> Result<(Page, Option<paging::Cursor>), DirError> {
        access::may_read(self.read_policy, who)?;
        self.refer(&spec.base)?;
        let fingerprint = fingerprint(&spec);
        let empty = Page {
            entries: Vec::new(),
            estimate: 0,
        };
        if page_size == 0 {
            return Ok((empty, None));
        }
        let after = match cursor {
            Some(c) if c.fingerprint == fingerprint => c.after,
            Some(_) => {
                return Err(DirError::Protocol(
                    "paged results cookie does not belong to this search",
                ))
            }
            None => 0,
        };
        let q = self.resolved_query(who, &spec, true).await?;
        let size = page_size.min(self.limits.max_page_size).max(1) as usize;
        let (handles, more) = self.backend.search_handles_after(&q, after, size).await?;
        let entries: Vec<Entry> = self
            .backend
            .fetch(&handles)
            .await?
            .into_iter()
            .map(access::redact)
            .collect();
        let next = match handles.last() {
            Some(&last) if more => Some(paging::Cursor {
                fingerprint,
                after: last,
            }),
            _ => None,
        };
        Ok((
            Page {
                entries,
                estimate: 0,
            },
            next,
        ))
    }

    /// Compare (RFC 4511 §4.10): Ok(true) for compareTrue, Ok(false) for compareFalse.
    pub async fn compare(
        &self,
        who: &Identity,
        dn: &Dn,
        attr: &str,
        value: &[u8],
    ) -> Result<bool, DirError> {
        access::may_read(self.read_policy, who)?;
        self.refer(dn)?;
        // Issue 9 §1: a compare on a secret would be an oracle for its value, or for its
        // presence; it is refused for everyone, whatever name or OID names the type.
        if self.schema.is_secret(attr) {
            return Err(DirError::InsufficientAccess);
        }
        let Some(entry) = self.backend.entry(dn).await? else {
            return Err(self.missing(dn).await);
        };
        if self.schema.canonical_name(base_attr(attr)).is_none() {
            return Err(DirError::Schema(
                crate::model::schema::SchemaViolation::UndefinedAttribute(attr.to_string()),
            ));
        }
        let f = Filter::Equality(attr.to_string(), value.to_vec());
        if !entry.has(base_attr(attr)) {
            return Err(DirError::Modify(
                crate::model::modify::ModifyError::NoSuchAttribute(attr.to_string()),
            ));
        }
        Ok(f.evaluate(&entry, &self.schema).is_true())
    }

    /// Add (RFC 4511 §4.7). A new password is checked against the policy in effect for the
    /// entry and stamps pwdLastSet (unless the entry sets it, e.g. to 0: must change). The
    /// RDN's values are implied; a computer gets AD's objectClass chain and may also be added
    /// by a `[domain] join_group` member (`access::may_add_computer`).
    pub async fn add(
        &self,
        who: &Authenticated,
        mut entry: Entry,
        now: SystemTime,
    ) -> Result<(), DirError> {
        self.imply_rdn_values(&mut entry);
        if entry.is_a("computer") {
            self.computer_defaults(&mut entry);
        }
        let allowed = match access::may_change_tree(who) {
            Ok(allowed) => allowed,
            Err(denied) if entry.is_a("computer") => {
                let member = self.in_join_group(who).await?;
                let join = self.join_delegation(member);
                access::may_add_computer(who, &join, &entry).map_err(|_| denied)?
            }
            Err(denied) => return Err(denied),
        };
        // RFC 4512 §4.1.2: NO-USER-MODIFICATION attributes (timestamps, GUIDs, SIDs, computed
        // memberOf) are the server's to set; a client sending one gets constraintViolation.
        if let Some(a) = entry.attrs().find(|a| {
            self.schema
                .attribute(&a.name)
                .is_some_and(|t| t.no_user_modification)
        }) {
            return Err(DirError::Modify(
                crate::model::modify::ModifyError::Constraint(format!(
                    "{}: no user modification allowed",
                    a.name
                )),
            ));
        }
        for internal in [
            secrets::KEYS_ATTR,
            "dirdPasswordHash",
            secrets::HISTORY_ATTR,
        ] {
            if entry.has(internal) {
                return Err(DirError::Modify(
                    crate::model::modify::ModifyError::Constraint(format!(
                        "{internal} is not user-modifiable"
                    )),
                ));
            }
        }
        if entry.first_str("pwdLastSet").map(str::trim) == Some("-1") {
            entry.set_str("pwdLastSet", &policy::to_filetime(now).to_string());
        }
        // An account added without sAMAccountName gets its derived one now, before its
        // Kerberos keys (salted with it) are derived, so that it can kinit at once; the
        // backend checks in its write transaction that the name is still free.
        if (entry.is_a("user") || entry.is_a("computer")) && !entry.has("sAMAccountName") {
            if let Some(name) = self.backend.account_name_for(&entry).await? {
                entry.set_str("sAMAccountName", &name);
            }
        }
        if entry.has("userPassword") || entry.has("unicodePwd") {
            entry = self.prepare_new_entry(entry, now).await?;
        }
        let ctx = WriteCtx {
            by: allowed.who().dn().clone(),
            now,
        };
        let dn = entry.dn.clone();
        self.backend.add(entry, &ctx).await?;
        self.policy_changed(&dn);
        Ok(())
    }

    /// RFC 4511 §4.7: the entry of an add is its attributes "along with those from the RDN";
    /// an RDN attribute the client left out (`adcli join` sends no `cn`) is added from the
    /// DN, under the schema's name for it.
    fn imply_rdn_values(&self, entry: &mut Entry) {
        let Some(rdn) = entry.dn.rdn().cloned() else {
            return;
        };
        for ava in &rdn.avas {
            let name = self
                .schema
                .canonical_name(&ava.attr)
                .unwrap_or(&ava.attr)
                .to_string();
            if !entry.has(&name) {
                entry.set_str(&name, &ava.value);
            }
        }
    }

    /// True if `who` is a member (nested) of `[domain] join_group`.
    async fn in_join_group(&self, who: &Authenticated) -> Result<bool, DirError> {
        let Some(group) = &self.domain.join_group else {
            return Ok(false);
        };
        let Some(entry) = self.backend.entry(who.dn()).await? else {
            return Ok(false);
        };
        Ok(self.groups_up(&entry).await?.contains(group.norm()))
    }

    fn join_delegation(&self, member: bool) -> access::JoinDelegation<'_> {
        access::JoinDelegation {
            member,
            container: &self.domain.join_container,
        }
    }

    /// A modify that only the computer rules can allow: a computer updating its own entry,
    /// or a joiner (`[domain] join_group`) the computer it created.
    async fn delegated_modify<'a>(
        &self,
        who: &'a Authenticated,
        dn: &Dn,
        mods: &[Modification],
    ) -> Result<access::Allowed<'a>, DirError> {
        if who.dn() == dn {
            let Some(target) = self.backend.entry(dn).await? else {
                return Err(DirError::InsufficientAccess);
            };
            return access::may_modify_own_computer(who, &target, mods);
        }
        if !self.in_join_group(who).await? {
            return Err(DirError::InsufficientAccess);
        }
        let Some(target) = self.backend.entry(dn).await? else {
            return Err(DirError::InsufficientAccess);
        };
        access::may_modify_computer(who, &self.join_delegation(true), &target, mods)
    }

    /// A computer added as `adcli join` and Samba add it (`objectClass: computer` alone) is
    /// stored as AD stores it: with the whole objectClass chain (top … user, computer), so
    /// that searches for `(objectClass=user)` find it and it gets a user's defaults
    /// (primaryGroupID 515 Domain Computers, objectSid) from the backend.
    fn computer_defaults(&self, entry: &mut Entry) {
        let mut classes: Vec<Vec<u8>> = self
            .schema
            .class_chain("computer")
            .into_iter()
            .map(|c| c.as_bytes().to_vec())
            .collect();
        for v in entry.values("objectClass") {
            if !classes.iter().any(|c| c.eq_ignore_ascii_case(v)) {
                classes.push(v.clone());
            }
        }
        entry.set("objectClass", classes);
    }

    /// Modify (RFC 4511 §4.6). Password changes need a confidential connection. lockoutTime
    /// may only be set to 0 (an administrator's unlock); pwdLastSet -1 means "now".
    pub async fn modify(
        &self,
        who: &Authenticated,
        dn: &Dn,
        mut mods: Vec<Modification>,
        secure: bool,
        now: SystemTime,
    ) -> Result<(), DirError> {
        // userPassword and unicodePwd by any name or OID, under their canonical names.
        for m in mods.iter_mut() {
            if let Some(name) = self.password_attr(&m.attr) {
                m.attr = name.to_string();
            }
        }
        let allowed = match access::may_modify(who, dn, &mods) {
            Ok(allowed) => allowed,
            Err(denied) => self
                .delegated_modify(who, dn, &mods)
                .await
                .map_err(|_| denied)?,
        };
        let touches_password = mods.iter().any(|m| self.is_password_attr(&m.attr));
        if touches_password && !secure {
            return Err(DirError::ConfidentialityRequired);
        }
        // A password write runs as an internal write (to store hash and keys); the client's
        // own modifications must not ride on it to set NO-USER-MODIFICATION attributes.
        if let Some(m) = mods.iter().find(|m| {
            self.schema.canonical_name(base_attr(&m.attr)).is_some()
                && !self.schema.is_user_modifiable(base_attr(&m.attr))
        }) {
            return Err(DirError::Modify(
                crate::model::modify::ModifyError::Constraint(format!(
                    "{} is not user-modifiable",
                    m.attr
                )),
            ));
        }
        let unlocks = policy_mods(&mut mods, now)?;
        let by = allowed.who().dn().clone();
        if touches_password {
            self.modify_password(who, by, dn, mods, now).await?;
        } else {
            let ctx = WriteCtx { by, now };
            self.backend.modify(dn, mods, false, &ctx).await?;
        }
        if unlocks {
            self.lockout.clear(dn.norm());
        }
        self.policy_changed(dn);
        Ok(())
    }

    /// Delete (RFC 4511 §4.8).
    pub async fn delete(
        &self,
        who: &Authenticated,
        dn: &Dn,
        now: SystemTime,
    ) -> Result<(), DirError> {
        let allowed = access::may_change_tree(who)?;
        let ctx = WriteCtx {
            by: allowed.who().dn().clone(),
            now,
        };
        self.backend.delete(dn, &ctx).await?;
        self.lockout.clear(dn.norm());
        self.policy_changed(dn);
        // The delete removed the entry's links, msDS-PSOAppliesTo included.
        self.policy_changed(&policy::pso_container(&self.domain.base));
        Ok(())
    }

    /// ModifyDN (RFC 4511 §4.9).
    pub async fn rename(
        &self,
        who: &Authenticated,
        dn: &Dn,
        new_rdn: Rdn,
        delete_old_rdn: bool,
        new_superior: Option<Dn>,
        now: SystemTime,
    ) -> Result<(), DirError> {
        let allowed = access::may_change_tree(who)?;
        let ctx = WriteCtx {
            by: allowed.who().dn().clone(),
            now,
        };
        let moved_into = new_superior.clone();
        self.backend
            .rename(dn, new_rdn, delete_old_rdn, new_superior, &ctx)
            .await?;
        self.policy_changed(dn);
        if let Some(p) = moved_into {
            self.policy_changed(&p);
        }
        // The rename rewrote the links naming the entry or its subtree, msDS-PSOAppliesTo
        // included: the cached password settings objects are stale.
        self.policy_changed(&policy::pso_container(&self.domain.base));
        Ok(())
    }

    /// Password Modify (RFC 3062). Returns the generated password when none was given.
    /// Without a bind, a user may still change their own password by naming it and proving
    /// the old one (the way out of "must change" and "expired", which refuse the bind); the
    /// attempt counts towards lockout like a bind.
    pub async fn password_modify(
        &self,
        who: &Identity,
        secure: bool,
        target: Option<&str>,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<Option<String>, DirError> {
        if !secure {
            return Err(DirError::ConfidentialityRequired);
        }
        let Some(user) = who.user() else {
            return self.anonymous_password_change(target, old, new, now).await;
        };
        let target = match target {
            None | Some("") => user.dn().clone(),
            Some(name) => match self.resolve_account(name).await? {
                Some(dn) => dn,
                None => {
                    return Err(DirError::NoSuchObject {
                        matched: Dn::root(),
                    })
                }
            },
        };
        let allowed = access::may_set_password(user, &target)?;
        let Some(entry) = self.backend.entry(&target).await? else {
            return Err(self.missing(&target).await);
        };
        // RFC 3062 §2: a user changing their own password proves the old one; admins reset.
        if !user.is_admin() || old.is_some() {
            let Some(old) = old else {
                return Err(DirError::UnwillingToPerform("the old password is required"));
            };
            let policy = self.policy_for(&entry).await?;
            self.check_password(&entry, &policy, old, now).await?;
        }
        let (new_pw, generated) = match new {
            Some(p) if !p.is_empty() => (p.to_vec(), None),
            _ => {
                let g = password::generate();
                (g.clone().into_bytes(), Some(g))
            }
        };
        let by = allowed.who().dn().clone();
        let self_service = user.dn() == &target;
        self.set_password(by, &target, new_pw, self_service, now)
            .await?;
        Ok(generated)
    }

    /// RFC 3062 without a bind: userIdentity and oldPasswd are both required.
    async fn anonymous_password_change(
        &self,
        target: Option<&str>,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<Option<String>, DirError> {
        let (Some(name), Some(old)) = (target.filter(|t| !t.is_empty()), old) else {
            return Err(DirError::UnwillingToPerform(
                "password modify without a bind needs the user identity and the old password",
            ));
        };
        let Some(dn) = self.resolve_account(name).await? else {
            return Err(DirError::InvalidCredentials(Some("52e")));
        };
        let Some(entry) = self.backend.entry(&dn).await? else {
            return Err(DirError::InvalidCredentials(Some("52e")));
        };
        let policy = self.policy_for(&entry).await?;
        // An MFA account proves both factors here too (old password followed by the code):
        // otherwise the password alone would let anyone replace it.
        let typed = self.mfa_typed(&entry, old).await?;
        self.check_password(&entry, &policy, typed.password, now)
            .await?;
        if let Some(r @ (policy::Refusal::Disabled | policy::Refusal::AccountExpired)) =
            policy::logon_refusal(&entry, &policy, now)
        {
            return Err(DirError::InvalidCredentials(Some(r.data_code())));
        }
        self.mfa_verify(&entry, &typed).await?;
        let (new_pw, generated) = match new {
            Some(p) if !p.is_empty() => (p.to_vec(), None),
            _ => {
                let g = password::generate();
                (g.clone().into_bytes(), Some(g))
            }
        };
        let me = Authenticated::new(dn.clone(), false);
        let allowed = access::may_set_password(&me, &dn)?;
        let by = allowed.who().dn().clone();
        self.set_password(by, &dn, new_pw, true, now).await?;
        Ok(generated)
    }

    async fn missing(&self, dn: &Dn) -> DirError {
        let mut m = dn.parent();
        while let Some(p) = m {
            if p.is_root() {
                break;
            }
            if let Ok(Some(_)) = self.backend.entry(&p).await {
                return DirError::NoSuchObject { matched: p };
            }
            m = p.parent();
        }
        DirError::NoSuchObject {
            matched: Dn::root(),
        }
    }
}

/// A user's own change within minPwdAge of the last one is refused (unless the password
/// must be changed).
fn check_min_age(e: &Entry, policy: &PasswordPolicy, now: SystemTime) -> Result<(), DirError> {
    if policy.min_age.is_zero() || policy::must_change(e) {
        return Ok(());
    }
    let set = e
        .first_str("pwdLastSet")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .and_then(policy::from_filetime);
    match set {
        Some(t) if t + policy.min_age > now => Err(policy::violation(format!(
            "password policy: minimum password age: the password was changed less than {} \
             minutes ago",
            policy.min_age.as_secs().div_ceil(60)
        ))),
        _ => Ok(()),
    }
}

/// Applies the account-policy meaning of client modifications in place: lockoutTime may only
/// be set to 0 or removed (unlock; returns true), pwdLastSet -1 means now.
fn policy_mods(mods: &mut [Modification], now: SystemTime) -> Result<bool, DirError> {
    let mut unlocks = false;
    for m in mods.iter_mut() {
        let attr = base_attr(&m.attr);
        if attr.eq_ignore_ascii_case("lockoutTime") {
            let only_zero = m.values.iter().all(|v| v.trim_ascii() == b"0");
            if m.op == ModOp::Add || !only_zero {
                return Err(DirError::UnwillingToPerform(
                    "lockoutTime can only be set to 0 (unlock the account)",
                ));
            }
            unlocks = true;
        } else if attr.eq_ignore_ascii_case("pwdLastSet") {
            for v in m.values.iter_mut() {
                if v.trim_ascii() == b"-1" {
                    *v = policy::to_filetime(now).to_string().into_bytes();
                }
            }
        }
    }
    Ok(unlocks)
}

/// userAccountControl ACCOUNTDISABLE (MS-ADTS §2.2.16).
pub const UAC_ACCOUNTDISABLE: i64 = 0x2;

fn uac(e: &Entry) -> i64 {
    e.first_str("userAccountControl")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The attribute selection passed to the backend: the client's, plus memberOf for base-scope
/// reads, where `with_resultant_pso` walks the entry's groups (the LDAP layer still returns
/// only what the client asked for).
fn backend_attrs(spec: &SearchSpec) -> Vec<String> {
    let mut attrs = spec.attrs.clone();
    if spec.scope == Scope::Base {
        if attrs.is_empty() {
            attrs.push("*".into());
        }
        attrs.push("memberOf".into());
    }
    attrs
}

fn fingerprint(spec: &SearchSpec) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    spec.base.norm().hash(&mut h);
    (spec.scope as u8).hash(&mut h);
    format!("{:?}", spec.filter).hash(&mut h);
    h.finish()
}
