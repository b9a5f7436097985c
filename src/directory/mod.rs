//! Protocol-neutral core: who may do what to which entry, and in which order.
//! May import: `model`, `backend` (the trait and its value types). Must not import: `ldap`,
//! `kdc`, `store`, `redb`. Invariant: the order of the cross-cutting steps of every
//! operation (access → rewrite → backend → redact) is written here, once per operation.

pub mod access;
pub mod error;
pub mod identity;
pub mod kerberos;
pub mod paging;
pub mod password;
pub mod secrets;

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher as _};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::backend::{Backend, BackendError, Query, Scope, Usage, WriteCtx};
use crate::model::filter::{base_attr, Filter, IN_CHAIN};
use crate::model::{Dn, Entry, ModOp, Modification, Rdn, Schema};
use secrets::MasterKey;

pub use access::ReadPolicy;
pub use error::DirError;
pub use identity::{Authenticated, Identity};
pub use paging::Cursors;
use password::Hasher;

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
}

/// Longest chain walked for nested groups (LDAP_MATCHING_RULE_IN_CHAIN, admin checks).
const MAX_CHAIN_NODES: usize = 10_000;

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
        }
    }

    /// Enables Kerberos keys: every password set from now on also derives the principal's
    /// keys, sealed under `master` (DESIGN.md §5). Without it, only LDAP hashes are written.
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

    /// Highest committed USN.
    pub async fn usn(&self) -> Result<u64, DirError> {
        Ok(self.backend.usn().await?)
    }

    /// Object usage.
    pub async fn usage(&self) -> Result<Usage, DirError> {
        Ok(self.backend.usage().await?)
    }

    /// Simple bind (RFC 4513 §5.1). `name` may be a DN, a UPN (`alice@example.com`) or a
    /// down-level name (`EXAMPLE\alice`).
    pub async fn bind(&self, name: &str, password: &[u8]) -> Result<Identity, DirError> {
        if name.is_empty() && password.is_empty() {
            return Ok(Identity::Anonymous); // RFC 4513 §5.1.1 anonymous bind
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
            return Err(DirError::InvalidCredentials(Some("52e")));
        };
        let Some(stored) = entry.first_str("userPassword").map(str::to_string) else {
            return Err(DirError::InvalidCredentials(Some("52e")));
        };
        if !self
            .hasher
            .verify_as(dn.norm(), stored, password.to_vec())
            .await?
        {
            return Err(DirError::InvalidCredentials(Some("52e")));
        }
        if uac(&entry) & UAC_ACCOUNTDISABLE != 0 {
            return Err(DirError::InvalidCredentials(Some("533")));
        }
        let admin = self.is_admin(&entry).await?;
        Ok(Identity::User(Authenticated::new(entry.dn, admin)))
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

    /// All groups an entry belongs to, directly or through nesting (normalised DNs).
    async fn groups_up(&self, entry: &Entry) -> Result<HashSet<String>, DirError> {
        let mut seen = HashSet::new();
        let mut queue: VecDeque<Dn> = dn_values(entry, "memberOf").into();
        while let Some(g) = queue.pop_front() {
            if seen.len() >= MAX_CHAIN_NODES || !seen.insert(g.norm().to_string()) {
                continue;
            }
            if let Some(ge) = self.backend.entry(&g).await? {
                queue.extend(dn_values(&ge, "memberOf"));
            }
        }
        Ok(seen)
    }

    /// Groups nested inside `group` (and itself), following `member` downwards.
    async fn groups_down(&self, group: &Dn) -> Result<HashSet<String>, DirError> {
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([group.clone()]);
        while let Some(g) = queue.pop_front() {
            if seen.len() >= MAX_CHAIN_NODES || !seen.insert(g.norm().to_string()) {
                continue;
            }
            if let Some(ge) = self.backend.entry(&g).await? {
                if ge.has("member") {
                    queue.extend(dn_values(&ge, "member"));
                }
            }
        }
        Ok(seen)
    }

    /// Rewrites LDAP_MATCHING_RULE_IN_CHAIN assertions into `DnIn` sets (the closure is
    /// computed here, where the backend can be asked about groups).
    fn resolve_chains<'a>(
        &'a self,
        f: Filter,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Filter, DirError>> + Send + 'a>>
    {
        Box::pin(async move {
            Ok(match f {
                Filter::And(v) => {
                    let mut out = Vec::with_capacity(v.len());
                    for x in v {
                        out.push(self.resolve_chains(x).await?);
                    }
                    Filter::And(out)
                }
                Filter::Or(v) => {
                    let mut out = Vec::with_capacity(v.len());
                    for x in v {
                        out.push(self.resolve_chains(x).await?);
                    }
                    Filter::Or(out)
                }
                Filter::Not(x) => Filter::Not(Box::new(self.resolve_chains(*x).await?)),
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
                    let dns = match base_attr(&attr).to_ascii_lowercase().as_str() {
                        "memberof" => self.groups_down(&target).await?,
                        "member" => {
                            let mut set = match self.backend.entry(&target).await? {
                                Some(e) => self.groups_up(&e).await?,
                                None => HashSet::new(),
                            };
                            set.insert(target.norm().to_string());
                            set
                        }
                        _ => HashSet::from([target.norm().to_string()]),
                    };
                    Filter::DnIn { attr, dns }
                }
                other => other,
            })
        })
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
        }
    }

    /// A non-paged search.
    pub async fn search(&self, who: &Identity, spec: SearchSpec) -> Result<Found, DirError> {
        access::may_read(self.read_policy, who)?;
        let filter = self
            .resolve_chains(access::redact_filter(spec.filter.clone()))
            .await?;
        let q = self.query(who, &spec, filter, false);
        match self.backend.search(&q).await {
            Ok(entries) => Ok(Found {
                entries: entries.into_iter().map(access::redact).collect(),
                size_limited: false,
            }),
            Err(BackendError::SizeLimit(entries)) => Ok(Found {
                entries: entries.into_iter().map(access::redact).collect(),
                size_limited: true,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// One page of a paged search (RFC 2696). `cursor` is the cursor the client's cookie
    /// named (None: a new search). A page size of 0 abandons the search. Returns the page and
    /// the cursor to keep for the next one.
    pub async fn search_page(
        &self,
        who: &Identity,
        spec: SearchSpec,
        page_size: u32,
        cursor: Option<paging::Cursor>,
    ) -> Result<(Page, Option<paging::Cursor>), DirError> {
        access::may_read(self.read_policy, who)?;
        let fingerprint = fingerprint(&spec);
        let empty = Page {
            entries: Vec::new(),
            estimate: 0,
        };
        if page_size == 0 {
            return Ok((empty, None));
        }
        let mut cursor = match cursor {
            Some(c) if c.fingerprint == fingerprint => c,
            Some(_) => {
                return Err(DirError::Protocol(
                    "paged results cookie does not belong to this search",
                ))
            }
            None => {
                let filter = self
                    .resolve_chains(access::redact_filter(spec.filter.clone()))
                    .await?;
                let q = self.query(who, &spec, filter, true);
                let handles = self.backend.search_handles(&q).await?;
                paging::Cursor {
                    remaining: handles.into(),
                    fingerprint,
                }
            }
        };
        let size = page_size.min(self.limits.max_page_size) as usize;
        let take: Vec<u64> = cursor
            .remaining
            .drain(..size.min(cursor.remaining.len()))
            .collect();
        let entries: Vec<Entry> = self
            .backend
            .fetch(&take)
            .await?
            .into_iter()
            .map(access::redact)
            .collect();
        let estimate = cursor.remaining.len() as u64;
        let next = (!cursor.remaining.is_empty()).then_some(cursor);
        Ok((Page { entries, estimate }, next))
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
        if access::is_secret(attr) {
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

    /// Add (RFC 4511 §4.7).
    pub async fn add(
        &self,
        who: &Authenticated,
        mut entry: Entry,
        now: SystemTime,
    ) -> Result<(), DirError> {
        let allowed = access::may_change_tree(who)?;
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
        for internal in [secrets::KEYS_ATTR, "dirdPasswordHash"] {
            if entry.has(internal) {
                return Err(DirError::Modify(
                    crate::model::modify::ModifyError::Constraint(format!(
                        "{internal} is not user-modifiable"
                    )),
                ));
            }
        }
        if entry.has("userPassword") {
            let (realm, master) = (self.domain.realm.clone(), self.master.clone());
            entry = self
                .hasher
                .run(move || {
                    let ctx = master.as_deref().map(|master| secrets::KeyContext {
                        realm: &realm,
                        master,
                    });
                    secrets::prepare_new_entry(&mut entry, ctx, true)?;
                    Ok(entry)
                })
                .await?;
        }
        let ctx = WriteCtx {
            by: allowed.who().dn().clone(),
            now,
        };
        self.backend.add(entry, &ctx).await?;
        Ok(())
    }

    /// Modify (RFC 4511 §4.6). Password changes need a confidential connection.
    pub async fn modify(
        &self,
        who: &Authenticated,
        dn: &Dn,
        mut mods: Vec<Modification>,
        secure: bool,
        now: SystemTime,
    ) -> Result<(), DirError> {
        let allowed = access::may_modify(who, dn, &mods)?;
        let touches_password = mods.iter().any(|m| {
            access::PASSWORD_ATTRS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(base_attr(&m.attr)))
        });
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
        if mods.iter().any(is_user_password) {
            self.secure_password_mods(dn, &mut mods, who.is_admin())
                .await?;
        }
        let ctx = WriteCtx {
            by: allowed.who().dn().clone(),
            now,
        };
        self.backend
            .modify(dn, mods, touches_password, &ctx)
            .await?;
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
        self.backend
            .rename(dn, new_rdn, delete_old_rdn, new_superior, &ctx)
            .await?;
        Ok(())
    }

    /// Password Modify (RFC 3062). Returns the generated password when none was given.
    pub async fn password_modify(
        &self,
        who: &Identity,
        secure: bool,
        target: Option<&str>,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<Option<String>, DirError> {
        let Some(user) = who.user() else {
            return Err(DirError::UnwillingToPerform(
                "password modify requires an authenticated identity",
            ));
        };
        if !secure {
            return Err(DirError::ConfidentialityRequired);
        }
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
            let stored = entry
                .first_str("userPassword")
                .unwrap_or_default()
                .to_string();
            let Some(old) = old else {
                return Err(DirError::UnwillingToPerform("the old password is required"));
            };
            if !self.hasher.verify(stored, old.to_vec()).await? {
                return Err(DirError::InvalidCredentials(None));
            }
        }
        let (new_pw, generated) = match new {
            Some(p) if !p.is_empty() => (p.to_vec(), None),
            _ => {
                let g = password::generate();
                (g.clone().into_bytes(), Some(g))
            }
        };
        let by = allowed.who().dn().clone();
        self.set_password(by, &target, new_pw, now).await?;
        Ok(generated)
    }

    /// The one password-set path shared by Password Modify, kpasswd and key-only callers:
    /// policy, then hash and keys computed together, then one backend write.
    async fn set_password(
        &self,
        by: Dn,
        target: &Dn,
        new_password: Vec<u8>,
        now: SystemTime,
    ) -> Result<(), DirError> {
        let mut mods = vec![Modification {
            op: ModOp::Replace,
            attr: "userPassword".into(),
            values: vec![new_password],
        }];
        self.secure_password_mods(target, &mut mods, false).await?;
        let ctx = WriteCtx { by, now };
        self.backend.modify(target, mods, true, &ctx).await?;
        Ok(())
    }

    /// Turns the plaintext `userPassword` values of a modification list into what is stored,
    /// in one task on the blocking pool: each value is hashed (an `{ARGON2}` value from a
    /// `trusted` admin is kept, as from an LDIF export), and when Kerberos is enabled and the
    /// target is a principal, the keys of the last password set are derived and appended as
    /// internal modifications (sealed `dirdKerberosKeys`, next `msDS-KeyVersionNumber`), so
    /// that hash and keys land in the same store transaction. A password write that yields no
    /// keys removes the old ones: they would no longer match the password.
    ///
    /// The kvno is read before the write transaction: two concurrent changes of one account
    /// may both write kvno n+1; each write is still self-consistent (keys and kvno agree).
    async fn secure_password_mods(
        &self,
        dn: &Dn,
        mods: &mut Vec<Modification>,
        trusted: bool,
    ) -> Result<(), DirError> {
        let key_source = mods
            .iter()
            .rposition(|m| is_user_password(m) && m.op != ModOp::Delete && !m.values.is_empty())
            .filter(|&i| {
                mods.get(i)
                    .and_then(|m| m.values.first())
                    .is_some_and(|v| !(trusted && v.starts_with(password::PREFIX.as_bytes())))
            });
        let post = match (key_source, &self.master) {
            (Some(_), Some(_)) => match self.backend.entry(dn).await? {
                Some(mut e) => {
                    // The entry as it will be (a modify may also set sAMAccountName); errors
                    // are reported by the backend's own apply.
                    let _ = crate::model::modify::apply(&mut e, mods, &self.schema, true);
                    Some(e)
                }
                None => None,
            },
            _ => None,
        };
        let (realm, master) = (self.domain.realm.clone(), self.master.clone());
        let mut work = std::mem::take(mods);
        let (work, keys) = self
            .hasher
            .run(move || {
                let ctx = master.as_deref().map(|master| secrets::KeyContext {
                    realm: &realm,
                    master,
                });
                let mut keys = None;
                for (i, m) in work.iter_mut().enumerate() {
                    if !is_user_password(m) || m.op == ModOp::Delete {
                        continue;
                    }
                    for (j, v) in std::mem::take(&mut m.values).into_iter().enumerate() {
                        if trusted && v.starts_with(password::PREFIX.as_bytes()) {
                            m.values.push(v);
                            continue;
                        }
                        password::check_policy(&v)?;
                        if Some(i) == key_source && j == 0 {
                            let stored = match &post {
                                Some(e) => secrets::password_secrets(e, &v, ctx)?,
                                None => secrets::PasswordSecrets {
                                    phc: password::hash_blocking(&v)?,
                                    kerberos: None,
                                },
                            };
                            keys = stored.kerberos;
                            m.values.push(stored.phc.into_bytes());
                        } else {
                            m.values.push(password::hash_blocking(&v)?.into_bytes());
                        }
                    }
                }
                Ok((work, keys))
            })
            .await?;
        *mods = work;
        match keys {
            Some((blob, kvno)) => {
                mods.push(Modification {
                    op: ModOp::Replace,
                    attr: secrets::KEYS_ATTR.into(),
                    values: vec![blob],
                });
                mods.push(Modification {
                    op: ModOp::Replace,
                    attr: secrets::KVNO_ATTR.into(),
                    values: vec![kvno.to_string().into_bytes()],
                });
            }
            None => mods.push(Modification {
                op: ModOp::Replace,
                attr: secrets::KEYS_ATTR.into(),
                values: Vec::new(),
            }),
        }
        Ok(())
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

fn is_user_password(m: &Modification) -> bool {
    base_attr(&m.attr).eq_ignore_ascii_case("userPassword")
}

/// userAccountControl ACCOUNTDISABLE (MS-ADTS §2.2.16).
pub const UAC_ACCOUNTDISABLE: i64 = 0x2;

fn uac(e: &Entry) -> i64 {
    e.first_str("userAccountControl")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn dn_values(e: &Entry, attr: &str) -> Vec<Dn> {
    e.values(attr)
        .iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .filter_map(|s| Dn::parse(s).ok())
        .collect()
}

fn fingerprint(spec: &SearchSpec) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    spec.base.norm().hash(&mut h);
    (spec.scope as u8).hash(&mut h);
    format!("{:?}", spec.filter).hash(&mut h);
    h.finish()
}
