//! Protocol-neutral core: who may do what to which entry, and in which order.
//! May import: `model`, `backend` (the trait and its value types). Must not import: `ldap`,
//! `kdc`, `store`, `redb`. Invariant: the order of the cross-cutting steps of every
//! operation (access → rewrite → backend → redact) is written here, once per operation.

pub mod access;
pub mod error;
pub mod identity;
pub mod paging;
pub mod password;

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher as _};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::backend::{Backend, BackendError, Query, Scope, Usage, WriteCtx};
use crate::model::filter::{base_attr, Filter, IN_CHAIN};
use crate::model::{Dn, Entry, ModOp, Modification, Rdn, Schema};

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
        }
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
            let _ = self.hasher.verify(String::new(), password.to_vec()).await;
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
        self.hash_password_values(&mut entry).await?;
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
        for m in &mut mods {
            if base_attr(&m.attr).eq_ignore_ascii_case("userPassword") && m.op != ModOp::Delete {
                let mut hashed = Vec::with_capacity(m.values.len());
                for v in std::mem::take(&mut m.values) {
                    hashed.push(self.hash_value(v, who.is_admin()).await?);
                }
                m.values = hashed;
            }
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
        let phc = self.hasher.hash(new_pw).await?;
        let ctx = WriteCtx {
            by: allowed.who().dn().clone(),
            now,
        };
        let mods = vec![Modification {
            op: ModOp::Replace,
            attr: "userPassword".into(),
            values: vec![phc.into_bytes()],
        }];
        self.backend.modify(&target, mods, true, &ctx).await?;
        Ok(generated)
    }

    async fn hash_password_values(&self, entry: &mut Entry) -> Result<(), DirError> {
        let values = entry.values("userPassword").to_vec();
        if values.is_empty() {
            return Ok(());
        }
        let mut hashed = Vec::with_capacity(values.len());
        for v in values {
            hashed.push(self.hash_value(v, true).await?);
        }
        entry.set("userPassword", hashed);
        Ok(())
    }

    /// Hashes a plaintext value; an already-hashed `{ARGON2}` value from an admin is kept
    /// (LDIF import of exported data).
    async fn hash_value(&self, v: Vec<u8>, trusted: bool) -> Result<Vec<u8>, DirError> {
        if trusted && v.starts_with(password::PREFIX.as_bytes()) {
            return Ok(v);
        }
        Ok(self.hasher.hash(v).await?.into_bytes())
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
