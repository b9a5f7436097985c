//! Standalone backend: everything lives in the embedded redb store.
//! May import: `model`, `store`. Invariant: each write is one store transaction committed
//! durably before the call returns; the blocking store work runs on tokio's blocking pool
//! (except searches the indexes bound to a few candidates, which run inline: see
//! `INLINE_CANDIDATES`, and streamed searches, which run on threads of their own: see
//! `search_stream`) and no transaction is held across an `.await`. Search results
//! (`search`, `fetch`) never carry secret attributes (`Schema::is_secret`): they are removed
//! before the filter is evaluated; `entry` keeps them for the directory's own password checks.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, Semaphore};

use crate::backend::member_uid;
use crate::backend::{
    dn_values, links, unique, Backend, BackendError, Closure, Link, Query, Scope, Usage, Walk,
    WriteCtx,
};
use crate::model::filter::{base_attr, Filter};
use crate::model::{modify, Dn, Entry, Modification, Rdn, Schema};
use crate::store::{EntryId, Store, StoreError, StoreRead, WriteTxn};

/// Object caps of the tier, checked inside the write transaction so that concurrent adds
/// can never overshoot (the store has a single writer).
#[derive(Clone, Copy, Debug)]
pub struct ObjectLimits {
    /// most user objects (`None`: no separate cap)
    pub max_users: Option<u64>,
    /// most objects in all
    pub max_objects: u64,
    /// the tier's name, for messages
    pub tier: &'static str,
}

/// The standalone backend.
#[derive(Clone)]
pub struct Local {
    store: Store,
    suffix: Dn,
    schema: Arc<Schema>,
    limits: ObjectLimits,
    domain_sid: Option<Vec<u8>>,
    ids: IdRanges,
    member_names: Arc<std::sync::Mutex<MemberNames>>,
    /// permits for streaming searches (`STREAM_THREADS`)
    streams: Arc<Semaphore>,
}

/// Memo of `member` value → the POSIX name of the user it names (`None`: not a user, no
/// name, or no such entry), for the computed memberUid (issue 14: resolving a group's members
/// was ~40 % of the sssd group search). Keyed by the raw stored value, so a hit costs neither
/// a DN parse nor a store read. Valid for one store write generation only: any committed
/// write (a uid changed, a user renamed, deleted or added) empties it, so a name is never
/// served from before a write the reader's snapshot contains. Bounded: emptied when full.
#[derive(Default)]
struct MemberNames {
    generation: u64,
    names: std::collections::HashMap<Vec<u8>, Option<Vec<u8>>>,
}

/// Most `member` values `MemberNames` holds before it starts over.
const MEMBER_NAMES_MAX: usize = 65_536;

impl MemberNames {
    /// The memoised name of `member` for a snapshot of generation `g`, if any.
    fn get(&mut self, g: u64, member: &[u8]) -> Option<Option<Vec<u8>>> {
        if g > self.generation {
            self.generation = g;
            self.names.clear();
            return None;
        }
        if g < self.generation {
            return None;
        }
        self.names.get(member).cloned()
    }

    /// Records what a snapshot of generation `g` resolved `member` to.
    fn put(&mut self, g: u64, member: &[u8], name: Option<Vec<u8>>) {
        if g != self.generation {
            return;
        }
        if self.names.len() >= MEMBER_NAMES_MAX {
            self.names.clear();
        }
        self.names.insert(member.to_vec(), name);
    }
}

/// The ranges POSIX ids are allocated from when an entry has none (`[posix]` in the
/// config). Counters live in the store's meta table and move inside the write transaction,
/// so concurrent adds never get the same number (redb has one writer); an explicit value
/// inside a range pushes its counter above it, so it is never handed out again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRanges {
    /// first uidNumber handed out
    pub uid_min: u64,
    /// last uidNumber handed out
    pub uid_max: u64,
    /// first gidNumber handed out
    pub gid_min: u64,
    /// last gidNumber handed out
    pub gid_max: u64,
}

impl Default for IdRanges {
    fn default() -> Self {
        IdRanges {
            uid_min: 10_000,
            uid_max: 1_999_999_999,
            gid_min: 10_000,
            gid_max: 1_999_999_999,
        }
    }
}

/// The computed attributes to produce for an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Wanted {
    member_of: bool,
    has_subordinates: bool,
    member_uid: bool,
    entry_dn: bool,
    /// AD's `distinguishedName` (the entry's DN as an attribute): only when named, so `*`
    /// results stay as they were
    distinguished_name: bool,
    subschema: bool,
    token_groups: bool,
}

impl Wanted {
    const NONE: Wanted = Wanted {
        member_of: false,
        has_subordinates: false,
        member_uid: false,
        entry_dn: false,
        distinguished_name: false,
        subschema: false,
        token_groups: false,
    };

    const ALL: Wanted = Wanted {
        member_of: true,
        has_subordinates: true,
        member_uid: true,
        entry_dn: true,
        distinguished_name: true,
        subschema: true,
        token_groups: true,
    };

    /// The computed attributes an attribute selection (RFC 4511 §4.5.1.8, RFC 3673) can
    /// return: no list or `*` → the user ones, `+` → all (operational and AD system ones),
    /// names (any case, options, aliases or OIDs) → those named. A superset of what the LDAP
    /// layer's selection keeps, so it never drops a value the client would have seen.
    fn selected(attrs: &[String], schema: &Schema) -> Wanted {
        let wants = |name: &str| {
            let user = !schema.is_operational(name);
            if attrs.is_empty() {
                return user;
            }
            let canonical = schema.canonical_name(name);
            attrs.iter().any(|a| match a.as_str() {
                "*" => user,
                "+" => true,
                other => {
                    let b = base_attr(other);
                    b.eq_ignore_ascii_case(name)
                        || canonical.is_some_and(|c| {
                            schema
                                .canonical_name(b)
                                .is_some_and(|x| x.eq_ignore_ascii_case(c))
                        })
                }
            })
        };
        Wanted {
            member_of: wants("memberOf"),
            has_subordinates: wants("hasSubordinates"),
            member_uid: wants("memberUid"),
            entry_dn: wants("entryDN"),
            distinguished_name: attrs
                .iter()
                .any(|a| base_attr(a).eq_ignore_ascii_case("distinguishedName")),
            subschema: wants("subschemaSubentry"),
            token_groups: wants("tokenGroups"),
        }
    }

    /// The computed attributes a filter needs before it can be evaluated: those it names
    /// (any case, alias or OID); all of them for an extensible match without a type.
    fn for_filter(f: &Filter, schema: &Schema) -> Wanted {
        let mut names: Vec<&str> = Vec::new();
        if !collect_filter_attrs(f, &mut names) {
            return Wanted::ALL;
        }
        let named = |c: &str| {
            names.iter().any(|n| {
                let b = base_attr(n);
                schema
                    .canonical_name(b)
                    .unwrap_or(b)
                    .eq_ignore_ascii_case(c)
            })
        };
        Wanted {
            member_of: named("memberOf"),
            has_subordinates: named("hasSubordinates"),
            member_uid: named("memberUid"),
            entry_dn: named("entryDN"),
            distinguished_name: named("distinguishedName"),
            subschema: named("subschemaSubentry"),
            token_groups: false,
        }
    }

    /// The computed attributes in `self` that `done` has not computed yet.
    fn without(self, done: Wanted) -> Wanted {
        Wanted {
            member_of: self.member_of && !done.member_of,
            has_subordinates: self.has_subordinates && !done.has_subordinates,
            member_uid: self.member_uid && !done.member_uid,
            entry_dn: self.entry_dn && !done.entry_dn,
            distinguished_name: self.distinguished_name && !done.distinguished_name,
            subschema: self.subschema && !done.subschema,
            token_groups: self.token_groups && !done.token_groups,
        }
    }
}

/// Which stored attributes a search decodes (issue 14): a search that names its attributes
/// gets only those, the ones its filter evaluates and the ones its computed attributes are
/// made from; every other stored attribute is skipped without being decoded. Decoding the
/// whole entry of every candidate before projecting was the largest per-entry cost of an
/// indexed search.
#[derive(Debug)]
enum Projection {
    /// the whole entry: `*`, `+`, no list, a base read (its constructed attributes read the
    /// entry), or a filter that may look at any attribute
    All,
    /// names (lower case, without options) as requested or named by the filter, with their
    /// canonical names: a stored attribute is kept if its name or its type's name is listed
    Only(Vec<String>),
}

impl Projection {
    fn new(q: &Query, filter: &Filter, member_uid: bool, schema: &Schema) -> Projection {
        if q.scope == Scope::Base
            || q.attrs.is_empty()
            || q.attrs.iter().any(|a| a == "*" || a == "+")
        {
            return Projection::All;
        }
        let mut names: Vec<&str> = q
            .attrs
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "1.1")
            .collect();
        if !collect_filter_attrs(filter, &mut names) {
            return Projection::All;
        }
        if member_uid {
            // The computed memberUid merges the stored values with the members' names.
            names.extend(["member", "memberUid"]);
        }
        let mut out: Vec<String> = Vec::with_capacity(names.len() * 2);
        for n in names {
            let b = base_attr(n);
            for name in [Some(b), schema.canonical_name(b)].into_iter().flatten() {
                let lower = name.to_ascii_lowercase();
                if !out.contains(&lower) {
                    out.push(lower);
                }
            }
        }
        Projection::Only(out)
    }

    /// True if the stored attribute `name` is decoded.
    fn keeps(&self, name: &str, schema: &Schema) -> bool {
        let Projection::Only(list) = self else {
            return true;
        };
        let b = base_attr(name);
        list.iter().any(|n| n.eq_ignore_ascii_case(b))
            || schema
                .canonical_name(b)
                .is_some_and(|c| list.iter().any(|n| n.eq_ignore_ascii_case(c)))
    }
}

/// Pushes every attribute `f` names; false if some item has no attribute type (an
/// extensible match without one may look at any attribute).
fn collect_filter_attrs<'f>(f: &'f Filter, out: &mut Vec<&'f str>) -> bool {
    match f {
        Filter::And(v) | Filter::Or(v) => v.iter().all(|x| collect_filter_attrs(x, out)),
        Filter::Not(x) => collect_filter_attrs(x, out),
        Filter::Extensible { attr: None, .. } => false,
        other => {
            out.extend(other.attributes());
            true
        }
    }
}

/// The ids of a search's matches, and the entries if asked for.
type Matches = (Vec<u64>, Vec<Entry>);

/// How a search's receiver paces it (see `Local::scan`).
struct Pace {
    /// time spent waiting for the receiver to take a batch: added to the deadline, so a
    /// slowly reading client does not turn into timeLimitExceeded (the limit is search work)
    waited: Cell<Duration>,
    /// whether the receiver is gone (abandoned, connection closed)
    gone: Box<dyn Fn() -> bool>,
}

impl Default for Pace {
    fn default() -> Pace {
        Pace {
            waited: Cell::new(Duration::ZERO),
            gone: Box::new(|| false),
        }
    }
}

/// Entries per batch a streaming search hands to its receiver: with the receiver's bounded
/// channels this is what bounds a large search's memory (not the result size).
pub const STREAM_BATCH: usize = 32;

/// Streaming searches producing at once, server-wide. Each holds one thread of its own (not
/// one of tokio's few blocking threads, which writes need) and one read snapshot for as long
/// as its client takes to read the result; more wait for a permit within their time limit.
const STREAM_THREADS: usize = 64;

/// Matches plus "stopped early" (see `Local::run_search_from`).
type Resumed = (Vec<u64>, Vec<Entry>, bool);

/// Where a resumed (paged) search continues: after handle `after`, at most `limit` matches.
#[derive(Clone, Copy, Debug)]
struct PagePosition {
    after: u64,
    limit: usize,
}

/// Searches whose indexes leave at most this many candidates run on the calling task
/// instead of the blocking pool (see `Backend::search`).
const INLINE_CANDIDATES: usize = 16;

/// Times a write operation runs before a run of cluster conflicts is answered busy.
const WRITE_ATTEMPTS: usize = 16;

/// Most stored attribute names whose projection verdict a search remembers.
const MEMO_NAMES: usize = 64;

/// Attributes that are never stored as sent but computed at read time.
const COMPUTED: &[&str] = &[
    "memberof",
    "hassubordinates",
    "entrydn",
    "subschemasubentry",
    "numsubordinates",
];

impl Local {
    /// Wraps an open store serving the naming context `suffix`.
    pub fn new(
        store: Store,
        suffix: Dn,
        schema: Arc<Schema>,
        limits: ObjectLimits,
    ) -> Result<Local, BackendError> {
        let domain_sid = store
            .read()
            .map_err(store_err)?
            .meta(META_DOMAIN_SID)
            .map_err(store_err)?;
        Ok(Local {
            store,
            suffix,
            schema,
            limits,
            domain_sid,
            ids: IdRanges::default(),
            member_names: Arc::default(),
            streams: Arc::new(Semaphore::new(STREAM_THREADS)),
        })
    }

    /// An empty store at `dir/t.redb` with the default indexes and no user cap, for the unit
    /// tests of the layers above (which may not name the store themselves).
    #[cfg(test)]
    pub(crate) fn scratch(dir: &std::path::Path, suffix: Dn, schema: Arc<Schema>) -> Local {
        let index = crate::store::IndexConfig::default_attrs();
        let store = Store::open(&dir.join("t.redb"), schema.clone(), index).unwrap();
        let limits = ObjectLimits {
            max_users: None,
            max_objects: 1000,
            tier: "test",
        };
        Local::new(store, suffix, schema, limits).unwrap()
    }

    /// Uses `ids` for uidNumber/gidNumber allocation instead of the defaults.
    pub fn with_id_ranges(mut self, ids: IdRanges) -> Local {
        self.ids = ids;
        self
    }

    /// The underlying store (for CLI import/export and backups).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Verifies the store and the backend's invariants on one snapshot (`dird check-store`;
    /// see `backend::check`). Synchronous: call it from a blocking context.
    pub fn check_store(
        &self,
        keys: Option<crate::backend::check::KeyCheck<'_>>,
    ) -> Result<crate::store::check::Report, BackendError> {
        crate::backend::check::run(&self.store, &self.schema, &self.suffix, keys).map_err(store_err)
    }

    /// Rebuilds what is derived from the entries: the attribute indexes and the user
    /// counter (`dird check-store --repair`). Returns the number of entries indexed.
    pub fn repair_derived(&self) -> Result<u64, BackendError> {
        let n = self.store.reindex().map_err(store_err)?;
        self.write_retry(&|this| {
            let mut txn = this.store.write().map_err(store_err)?;
            let users = count_users(&txn)?;
            txn.set_meta(META_USER_COUNT, &users.to_be_bytes())
                .map_err(store_err)?;
            txn.commit().map_err(store_err)
        })?;
        Ok(n)
    }

    /// Runs a write on the blocking pool through [`Self::write_retry`].
    async fn write_blocking<T, F>(&self, f: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: Fn(&Local) -> Result<T, BackendError> + Send + 'static,
    {
        self.blocking(move |this| this.write_retry(&f)).await
    }

    /// Runs a whole write operation (read, decide, write, commit) again when its commit
    /// reports a conflict: in cluster mode another node's write came first and the replica
    /// has caught up with it, so the decisions (uniqueness, limits, ids) are taken again on
    /// the new state. After `WRITE_ATTEMPTS` conflicts the client gets busy (51). Standalone
    /// stores never conflict: the closure runs once.
    fn write_retry<T>(
        &self,
        f: &dyn Fn(&Local) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        for attempt in 1..=WRITE_ATTEMPTS {
            match f(self) {
                Err(BackendError::Conflict) => {
                    tracing::debug!(attempt, "cluster write conflict: retrying on the new state");
                }
                other => return other,
            }
        }
        Err(BackendError::Conflict)
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Local) -> Result<T, BackendError> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| BackendError::Store(format!("blocking task failed: {e}")))?
    }

    /// Adds a batch of entries in one transaction (provisioning, LDIF import), together with
    /// meta records. All or nothing; synchronous (call from a blocking context).
    pub fn add_batch_blocking(
        &self,
        entries: Vec<Entry>,
        ctx: &WriteCtx,
        meta: &[(&str, &[u8])],
    ) -> Result<(), BackendError> {
        self.add_batch_with(entries, ctx, meta, true)
    }

    /// [`Self::add_batch_blocking`], committed with `durable = false` as
    /// `WriteTxn::commit_deferred`: for the intermediate batches of an offline import, whose
    /// caller makes them durable with [`Self::sync_blocking`] before it reports anything.
    pub fn add_batch_deferred_blocking(
        &self,
        entries: Vec<Entry>,
        ctx: &WriteCtx,
        meta: &[(&str, &[u8])],
    ) -> Result<(), BackendError> {
        self.add_batch_with(entries, ctx, meta, false)
    }

    /// Makes every earlier (deferred) commit durable: an empty durable commit.
    pub fn sync_blocking(&self) -> Result<(), BackendError> {
        self.store
            .write()
            .map_err(store_err)?
            .commit()
            .map_err(store_err)
    }

    fn add_batch_with(
        &self,
        entries: Vec<Entry>,
        ctx: &WriteCtx,
        meta: &[(&str, &[u8])],
        durable: bool,
    ) -> Result<(), BackendError> {
        self.write_retry(&|this| this.add_batch_once(&entries, ctx, meta, durable))
    }

    fn add_batch_once(
        &self,
        entries: &[Entry],
        ctx: &WriteCtx,
        meta: &[(&str, &[u8])],
        durable: bool,
    ) -> Result<(), BackendError> {
        let mut txn = self.store.write().map_err(store_err)?;
        let extra_users = entries.iter().filter(|e| is_user(e)).count() as u64;
        let legacy = entries.iter().filter(|e| has_legacy_password(e)).count();
        self.check_limits(&txn, entries.len() as u64, extra_users)?;
        for e in entries {
            let mut e = e.clone();
            self.check_placement(&txn, &e.dn)?;
            self.prepare_new(&mut txn, &mut e, ctx)?;
            member_uid::convert(&txn, &self.schema, &mut e).map_err(store_err)?;
            unique::check(&txn, &self.schema, &self.suffix, None, None, &e)?;
            txn.add(&e).map_err(|err| map_store_err(err, &e.dn))?;
        }
        adjust_user_count(&mut txn, extra_users as i64)?;
        adjust_legacy_count(&mut txn, legacy as i64)?;
        for (k, v) in meta {
            txn.set_meta(k, v).map_err(store_err)?;
        }
        if durable {
            txn.commit().map_err(store_err)
        } else {
            txn.commit_deferred().map_err(store_err)
        }
    }

    /// New entries live under the naming context, and their parent exists.
    fn check_placement(&self, txn: &WriteTxn, dn: &Dn) -> Result<(), BackendError> {
        if !dn.is_within(&self.suffix) {
            return Err(BackendError::NoSuchObject {
                dn: dn.clone(),
                matched: Dn::root(),
            });
        }
        if txn.id_of(dn).map_err(store_err)?.is_some() {
            return Err(BackendError::AlreadyExists(dn.clone()));
        }
        if *dn != self.suffix {
            if let Some(parent) = dn.parent() {
                if txn.id_of(&parent).map_err(store_err)?.is_none() {
                    return Err(no_such_object(txn, &parent));
                }
            }
        }
        Ok(())
    }

    fn check_limits(
        &self,
        txn: &WriteTxn,
        adding: u64,
        adding_users: u64,
    ) -> Result<(), BackendError> {
        let objects = txn.count().map_err(store_err)?;
        if objects + adding > self.limits.max_objects {
            return Err(BackendError::AdminLimit(format!(
                "tier {} allows {} directory objects; {} exist",
                self.limits.tier, self.limits.max_objects, objects
            )));
        }
        if let Some(max_users) = self.limits.max_users {
            if adding_users > 0 {
                let users = user_count(txn)?;
                if users + adding_users > max_users {
                    return Err(BackendError::AdminLimit(format!(
                        "tier {} allows {} users; {} exist",
                        self.limits.tier, max_users, users
                    )));
                }
            }
        }
        Ok(())
    }

    /// Schema check plus operational stamps for a new entry.
    fn prepare_new(
        &self,
        txn: &mut WriteTxn,
        e: &mut Entry,
        ctx: &WriteCtx,
    ) -> Result<(), BackendError> {
        for a in COMPUTED {
            e.remove(a);
        }
        let usn = txn.next_usn().map_err(store_err)?;
        let ts = generalized_time(ctx.now);
        let uuid = uuid::Uuid::new_v4();
        if !e.has("entryUUID") {
            e.set_str("entryUUID", &uuid.hyphenated().to_string());
        }
        if !e.has("objectGUID") {
            e.set("objectGUID", vec![uuid.to_bytes_le().to_vec()]);
        }
        // Stamps already present come from an import of an export (a restore) and are kept;
        // `directory` refuses them in LDAP adds (NO-USER-MODIFICATION). AD's names for the
        // same stamps (sssd's ad schema reads whenChanged) are kept alongside.
        let by = ctx.by.to_string();
        for (attr, value) in [
            ("createTimestamp", ts.as_str()),
            ("modifyTimestamp", ts.as_str()),
            ("whenCreated", ts.as_str()),
            ("whenChanged", ts.as_str()),
            ("creatorsName", by.as_str()),
            ("modifiersName", by.as_str()),
        ] {
            if !e.has(attr) {
                e.set_str(attr, value);
            }
        }
        e.set_str("uSNCreated", &usn.to_string());
        e.set_str("uSNChanged", &usn.to_string());
        if needs_sid(e) && !e.has("objectSid") {
            if let Some(domain_sid) = &self.domain_sid {
                let rid = next_counter(txn, META_NEXT_RID, FIRST_RID)?;
                e.set("objectSid", vec![sid_with_rid(domain_sid, rid as u32)]);
            }
        } else if let (Some(domain_sid), Some(sid)) =
            (&self.domain_sid, e.values("objectSid").first())
        {
            // An entry arriving with a SID of this domain (LDIF restore): never hand its RID
            // out again.
            if let Some(rid) = rid_in_domain(domain_sid, sid) {
                raise_counter(txn, META_NEXT_RID, FIRST_RID, u64::from(rid) + 1)?;
            }
        }
        super::foreign::assign_sid(txn, e)?;
        self.assign_posix(txn, e)?;
        if let Some(sc) = self.schema.structural_class(e) {
            e.set_str("structuralObjectClass", &sc);
        }
        self.schema.check_entry(e)?;
        Ok(())
    }

    /// Referential integrity of the link attributes (`links::LINK_ATTRS`: member,
    /// msDS-PSOAppliesTo, manager, managedBy), as AD keeps its links: after `old` (and its
    /// subtree) was deleted (`new` = None) or renamed/moved to `new`, the values of the
    /// `linking` entries that named it are removed or rewritten, in the same transaction.
    fn relink(
        &self,
        txn: &mut WriteTxn,
        linking: Vec<EntryId>,
        old: &Dn,
        new: Option<&Dn>,
        ctx: &WriteCtx,
    ) -> Result<(), BackendError> {
        for id in linking {
            let Some(mut e) = txn.entry(id).map_err(store_err)? else {
                continue;
            };
            if links::rewrite(&mut e, old, new) {
                for a in COMPUTED {
                    e.remove(a);
                }
                self.stamp_modified(txn, &mut e, ctx)?;
                txn.replace(id, &e).map_err(store_err)?;
            }
        }
        Ok(())
    }

    /// Creates the foreign principals `e` names as members that do not exist yet (trust
    /// mode, `backend::foreign`), in the caller's transaction.
    fn add_foreign_members(
        &self,
        txn: &mut WriteTxn,
        e: &Entry,
        ctx: &WriteCtx,
    ) -> Result<(), BackendError> {
        for mut f in super::foreign::missing_members(txn, &self.suffix, e)? {
            self.prepare_new(txn, &mut f, ctx)?;
            txn.add(&f).map_err(|err| map_store_err(err, &f.dn))?;
        }
        Ok(())
    }

    fn stamp_modified(
        &self,
        txn: &mut WriteTxn,
        e: &mut Entry,
        ctx: &WriteCtx,
    ) -> Result<(), BackendError> {
        let usn = txn.next_usn().map_err(store_err)?;
        e.set_str("modifyTimestamp", &generalized_time(ctx.now));
        e.set_str("whenChanged", &generalized_time(ctx.now));
        e.set_str("modifiersName", &ctx.by.to_string());
        e.set_str("uSNChanged", &usn.to_string());
        Ok(())
    }

    /// POSIX and AD identity defaults (issue 3): users get primaryGroupID (Domain Users,
    /// or Domain Computers for computers), a uidNumber from the uid range and the gidNumber
    /// of their primary group; groups get a gidNumber from the gid range. Explicit values
    /// are kept and push the counters above them.
    fn assign_posix(&self, txn: &mut WriteTxn, e: &mut Entry) -> Result<(), BackendError> {
        let r = self.ids;
        if let Some(v) = int_value(e, "uidNumber") {
            bump_counter(txn, META_NEXT_UID, r.uid_min, r.uid_max, v)?;
        }
        if let Some(v) = int_value(e, "gidNumber") {
            // A user's gidNumber names a group too: never hand it out to a new group.
            bump_counter(txn, META_NEXT_GID, r.gid_min, r.gid_max, v)?;
        }
        // AD clients (sssd's ad schema) name users and groups by sAMAccountName; AD
        // requires one, dird derives it when absent (uid or cn, made unique).
        if let Some(name) =
            unique::derived_account_name(&*txn, &self.schema, &self.suffix, e).map_err(store_err)?
        {
            e.set_str("sAMAccountName", &name);
        }
        if e.is_a("group") && !e.has("groupType") {
            // MS-ADTS §2.2.12: GROUP_TYPE_ACCOUNT_GROUP | GROUP_TYPE_SECURITY_ENABLED, AD's
            // default for a new group (sssd's ad schema refuses groups without groupType).
            e.set_str("groupType", "-2147483646");
        }
        if e.is_a("user") && !e.has("primaryGroupID") {
            let rid = if e.is_a("computer") {
                RID_DOMAIN_COMPUTERS
            } else {
                RID_DOMAIN_USERS
            };
            e.set_str("primaryGroupID", &rid.to_string());
        }
        if is_user(e) && !e.is_a("computer") {
            if !e.has("uidNumber") && !self.is_builtin_account(e) {
                let n = self.allocate(txn, META_NEXT_UID, r.uid_min, r.uid_max, "uid")?;
                e.set_str("uidNumber", &n.to_string());
            }
            if !e.has("gidNumber") {
                if let Some(gid) = self.primary_gid(txn, e)? {
                    e.set_str("gidNumber", &gid);
                }
            }
        } else if is_group(e) && !e.has("gidNumber") {
            let n = self.allocate(txn, META_NEXT_GID, r.gid_min, r.gid_max, "gid")?;
            e.set_str("gidNumber", &n.to_string());
        }
        Ok(())
    }

    /// Hands out the next id of a range (`what`: "uid" or "gid", for the attribute and the
    /// error message), skipping values an entry already carries (set explicitly by a modify,
    /// or stored before the counter existed): the number handed out is never in use.
    fn allocate(
        &self,
        txn: &mut WriteTxn,
        key: &str,
        min: u64,
        max: u64,
        what: &str,
    ) -> Result<u64, BackendError> {
        let attr = format!("{what}Number");
        let mut next = read_counter(txn, key)?.unwrap_or(min).max(min);
        while next <= max
            && unique::in_use(&*txn, &self.schema, &attr, next.to_string().as_bytes())
                .map_err(store_err)?
        {
            next += 1;
        }
        if next > max {
            return Err(BackendError::AdminLimit(format!(
                "the {what}Number range {min}-{max} is used up; raise posix.{what}_max in the config"
            )));
        }
        txn.set_meta(key, &(next + 1).to_be_bytes())
            .map_err(store_err)?;
        Ok(next)
    }

    /// The domain's built-in accounts (well-known RIDs below 1000, MS-DTYP §2.4.2.4: the
    /// Administrator) and the KDC's krbtgt account never log on to a host, so they take no
    /// uidNumber from the range: its numbers stay for the accounts people use (and for the
    /// explicit numbers an LDIF from another directory carries, which must not clash).
    fn is_builtin_account(&self, e: &Entry) -> bool {
        let well_known = match (&self.domain_sid, e.values("objectSid").first()) {
            (Some(domain), Some(sid)) => rid_in_domain(domain, sid).is_some_and(|rid| rid < 1000),
            _ => false,
        };
        well_known
            || e.first_str("sAMAccountName")
                .is_some_and(|n| n.eq_ignore_ascii_case(unique::KRBTGT))
    }

    /// The gidNumber of the entry's primary group (primaryGroupID, default Domain Users).
    fn primary_gid<T: StoreRead>(
        &self,
        txn: &T,
        e: &Entry,
    ) -> Result<Option<String>, BackendError> {
        let Some(domain_sid) = &self.domain_sid else {
            return Ok(None);
        };
        let rid = int_value(e, "primaryGroupID").unwrap_or(u64::from(RID_DOMAIN_USERS));
        let Ok(rid) = u32::try_from(rid) else {
            return Ok(None);
        };
        let f = Filter::Equality("objectSid".into(), sid_with_rid(domain_sid, rid));
        for id in txn.candidates(&f).map_err(store_err)?.unwrap_or_default() {
            if let Some(g) = txn.entry(id).map_err(store_err)? {
                if f.evaluate(&g, &self.schema).is_true() {
                    if let Some(gid) = g.first_str("gidNumber") {
                        return Ok(Some(gid.to_string()));
                    }
                }
            }
        }
        Ok(None)
    }

    /// tokenGroups (MS-ADTS §3.1.1.4.5.19): the SIDs of every group the principal is in,
    /// through nesting, plus its primary group. Computed for base-scope reads only, as AD does.
    fn token_groups<T: StoreRead>(&self, txn: &T, e: &Entry) -> Result<Vec<Vec<u8>>, BackendError> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        if let (Some(domain_sid), Some(rid)) = (&self.domain_sid, int_value(e, "primaryGroupID")) {
            if let Ok(rid) = u32::try_from(rid) {
                out.push(sid_with_rid(domain_sid, rid));
            }
        }
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut queue: std::collections::VecDeque<Dn> = std::collections::VecDeque::new();
        queue.push_back(e.dn.clone());
        while let Some(dn) = queue.pop_front() {
            for g in groups_of(txn, &dn, &self.schema)? {
                let Some(gdn) = std::str::from_utf8(&g).ok().and_then(|s| Dn::parse(s).ok()) else {
                    continue;
                };
                if seen.len() >= MAX_NESTING || !seen.insert(gdn.norm().to_string()) {
                    continue;
                }
                if let Some((_, ge)) = txn.entry_by_dn(&gdn).map_err(store_err)? {
                    if let Some(sid) = ge.values("objectSid").first() {
                        if !out.contains(sid) {
                            out.push(sid.clone());
                        }
                    }
                }
                queue.push_back(gdn);
            }
        }
        Ok(out)
    }

    /// Rewrites assertions on computed attributes so that the indexes give a superset of the
    /// matches and evaluation on computed entries gives the exact result:
    /// - `(memberUid=x)` becomes `(|(memberUid=x)(member∈{users named x}))`: the computed
    ///   memberUid holds x exactly when a `member` value names a user whose uid (or
    ///   sAMAccountName) is x, so both forms agree, and both halves are indexed (sssd's
    ///   initgroups search stays an index lookup);
    /// - other memberUid assertions are widened to also consider entries with `member`
    ///   (an Or with a FALSE branch: the evaluation is unchanged);
    /// - `(objectSid=S-1-5-…)` in string form (as AD accepts, and sssd sends) becomes binary.
    fn rewrite_filter<T: StoreRead>(&self, txn: &T, f: Filter) -> Result<Filter, BackendError> {
        Ok(match f {
            Filter::And(v) => Filter::And(
                v.into_iter()
                    .map(|x| self.rewrite_filter(txn, x))
                    .collect::<Result<_, _>>()?,
            ),
            Filter::Or(v) => Filter::Or(
                v.into_iter()
                    .map(|x| self.rewrite_filter(txn, x))
                    .collect::<Result<_, _>>()?,
            ),
            Filter::Not(x) => Filter::Not(Box::new(self.rewrite_filter(txn, *x)?)),
            Filter::Equality(a, v) if base_attr(&a).eq_ignore_ascii_case("memberUid") => {
                let dns = self.users_named(txn, &v)?;
                Filter::Or(vec![
                    Filter::Equality(a, v),
                    Filter::DnIn {
                        attr: "member".into(),
                        dns,
                    },
                ])
            }
            Filter::Equality(a, v) if base_attr(&a).eq_ignore_ascii_case("objectSid") => {
                match std::str::from_utf8(&v).ok().and_then(parse_sid) {
                    Some(bin) => Filter::Equality(a, bin),
                    None => Filter::Equality(a, v),
                }
            }
            other if names_member_uid(&other) => {
                let never = Filter::Not(Box::new(Filter::And(Vec::new())));
                Filter::Or(vec![
                    other,
                    Filter::And(vec![Filter::Present("member".into()), never]),
                ])
            }
            other => other,
        })
    }

    /// Normalised DNs of the users whose POSIX name (the computed memberUid) is `name`.
    fn users_named<T: StoreRead>(
        &self,
        txn: &T,
        name: &[u8],
    ) -> Result<std::collections::HashSet<String>, BackendError> {
        let mut out = std::collections::HashSet::new();
        let Ok(text) = std::str::from_utf8(name) else {
            return Ok(out);
        };
        let want = self.schema.normalize("memberUid", name);
        let f = Filter::Or(vec![
            Filter::Equality("uid".into(), name.to_vec()),
            Filter::Equality("sAMAccountName".into(), name.to_vec()),
        ]);
        let Some(ids) = txn.candidates(&f).map_err(store_err)? else {
            return Err(BackendError::Store(format!(
                "uid/sAMAccountName are not indexed (memberUid={text})"
            )));
        };
        for id in ids {
            let u = txn
                .entry_projected(id, &mut |n| {
                    POSIX_NAME_ATTRS.iter().any(|a| a.eq_ignore_ascii_case(n))
                })
                .map_err(store_err)?;
            if let Some(u) = u {
                if !is_user(&u) {
                    continue;
                }
                if let Some(n) = posix_name(&u) {
                    if self.schema.normalize("memberUid", n.as_bytes()) == want {
                        out.insert(u.dn.norm().to_string());
                    }
                }
            }
        }
        Ok(out)
    }

    /// memberUid of a group: its stored values plus the POSIX name of every `member` that is
    /// a user, so one `member` list serves RFC 2307 and RFC 2307bis clients.
    fn member_uids<T: StoreRead>(&self, txn: &T, e: &Entry) -> Result<Vec<Vec<u8>>, BackendError> {
        let mut out: Vec<Vec<u8>> = e.values("memberUid").to_vec();
        let mut seen: std::collections::HashSet<Vec<u8>> = out.iter().cloned().collect();
        let members = e.values("member");
        // Names from the memo (read snapshots only), one lock for the whole group.
        let generation = txn.snapshot_generation();
        let mut known: Vec<Option<Option<Vec<u8>>>> = vec![None; members.len()];
        if let Some(g) = generation {
            if let Ok(mut memo) = self.member_names.lock() {
                for (slot, m) in known.iter_mut().zip(members) {
                    *slot = memo.get(g, m);
                }
            }
        }
        let mut resolved: Vec<(usize, Option<Vec<u8>>)> = Vec::new();
        for (i, (m, hit)) in members.iter().zip(known).enumerate() {
            let name = match hit {
                Some(name) => name,
                None => {
                    let name = self.member_name(txn, m)?;
                    resolved.push((i, name.clone()));
                    name
                }
            };
            if let Some(v) = name {
                if seen.insert(v.clone()) {
                    out.push(v);
                }
            }
        }
        if let (Some(g), false) = (generation, resolved.is_empty()) {
            if let Ok(mut memo) = self.member_names.lock() {
                for (i, name) in resolved {
                    if let Some(m) = members.get(i) {
                        memo.put(g, m, name);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The POSIX name of the user a `member` value names, if it names a user that has one.
    fn member_name<T: StoreRead>(
        &self,
        txn: &T,
        member: &[u8],
    ) -> Result<Option<Vec<u8>>, BackendError> {
        let Some(dn) = std::str::from_utf8(member)
            .ok()
            .and_then(|s| Dn::parse(s).ok())
        else {
            return Ok(None);
        };
        // Only what `is_user` and `posix_name` look at: a DN lookup and a partial decode,
        // not a whole entry.
        let Some(u) = txn
            .entry_attrs_by_dn(&dn, POSIX_NAME_ATTRS)
            .map_err(store_err)?
        else {
            return Ok(None);
        };
        if !is_user(&u) {
            return Ok(None);
        }
        Ok(posix_name(&u).map(|n| n.as_bytes().to_vec()))
    }

    fn with_computed<T: StoreRead>(
        &self,
        txn: &T,
        id: EntryId,
        mut e: Entry,
        want: Wanted,
    ) -> Result<Entry, BackendError> {
        if want.member_of {
            let groups = groups_of(txn, &e.dn, &self.schema)?;
            if !groups.is_empty() {
                e.set("memberOf", groups);
            }
        }
        if want.has_subordinates {
            let has_children = txn.has_children(id).map_err(store_err)?;
            e.set_str(
                "hasSubordinates",
                if has_children { "TRUE" } else { "FALSE" },
            );
        }
        if want.member_uid && e.has("member") {
            let uids = self.member_uids(txn, &e)?;
            if !uids.is_empty() {
                e.set("memberUid", uids);
            }
        }
        if want.entry_dn {
            e.set_str("entryDN", &e.dn.to_string());
        }
        if want.distinguished_name && !e.has("distinguishedName") {
            e.set_str("distinguishedName", &e.dn.to_string());
        }
        if want.subschema {
            e.set_str("subschemaSubentry", "cn=Subschema");
        }
        Ok(e)
    }

    /// The closure of `start` under `link` in one read snapshot; only the link is read for
    /// each node (no computed attributes): `member` as stored, memberOf from the `member`
    /// index.
    fn walk(
        &self,
        start: Vec<Dn>,
        link: Link,
        deadline: Option<Instant>,
        max_nodes: usize,
    ) -> Result<Closure, BackendError> {
        let txn = self.store.read().map_err(store_err)?;
        let mut walk = Walk::new(start, max_nodes, deadline);
        while let Some(dn) = walk.next_node()? {
            match link {
                Link::Member => {
                    if let Some(e) = txn.entry_attrs_by_dn(&dn, &["member"]).map_err(store_err)? {
                        walk.offer(dn_values(&e, "member"));
                    }
                }
                Link::MemberOf => {
                    walk.offer(group_dns_of(&txn, &dn, &self.schema)?);
                }
            }
        }
        Ok(walk.finish())
    }

    /// Runs a search in one read snapshot. With `cap`, gives up (`Ok(None)`) before reading
    /// any entry if the indexes leave more than `cap` candidates or cannot bound them: the
    /// caller then runs it on the blocking pool instead.
    fn run_search(
        &self,
        q: &Query,
        want_entries: bool,
        cap: Option<usize>,
    ) -> Result<Option<Matches>, BackendError> {
        match self.run_search_from(q, want_entries, cap, None)? {
            None => Ok(None),
            Some((_, entries, true)) => Err(BackendError::SizeLimit(entries)),
            Some((ids, entries, false)) => Ok(Some((ids, entries))),
        }
    }

    /// `run_search`, optionally resumed (`page`: only ids above `after`, ascending, at most
    /// `limit` of them). The flag is true if the search stopped early: at `q.size_limit`
    /// (without `page`) or with more matches after the `limit` returned (with `page`).
    fn run_search_from(
        &self,
        q: &Query,
        want_entries: bool,
        cap: Option<usize>,
        page: Option<PagePosition>,
    ) -> Result<Option<Resumed>, BackendError> {
        let mut ids: Vec<u64> = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        let mut collect = |id: u64, e: Option<Entry>| {
            ids.push(id);
            entries.extend(e);
            true
        };
        let pace = Pace::default();
        let Some(stopped) = self.scan(q, want_entries, cap, page, &pace, &mut collect)? else {
            return Ok(None);
        };
        Ok(Some((ids, entries, stopped)))
    }

    /// The search loop of `run_search_from`, in one read snapshot: each match goes to `emit`
    /// (its id, and its entry with `want_entries`) as soon as it is found; `emit` returning
    /// false ends the search quietly (the receiver is gone). `Ok(None)`: `cap` refused it
    /// before any entry was read; `Ok(Some(stopped))` as `run_search_from`'s flag. The
    /// deadline is `q.deadline` plus the time `pace` says the caller spent waiting for its
    /// client (backpressure is not search time: see `search_stream`).
    fn scan(
        &self,
        q: &Query,
        want_entries: bool,
        cap: Option<usize>,
        page: Option<PagePosition>,
        pace: &Pace,
        emit: &mut dyn FnMut(u64, Option<Entry>) -> bool,
    ) -> Result<Option<bool>, BackendError> {
        let txn = self.store.read().map_err(store_err)?;
        let Some(base_id) = txn.id_of(&q.base).map_err(store_err)? else {
            return Err(no_such_object(&txn, &q.base));
        };
        let filter = self.rewrite_filter(&txn, q.filter.clone())?;
        let mut candidates = match q.scope {
            Scope::Base => Some(vec![base_id]),
            Scope::One => Some(txn.children(base_id).map_err(store_err)?),
            _ => txn.candidates(&filter).map_err(store_err)?,
        };
        if let Some(p) = page {
            // Resume: ids are allocated ascending and never reused, so "after the last id
            // returned" is a position that survives adds, deletes and renames in between.
            let mut list = match candidates {
                Some(list) => list,
                None => {
                    let mut all = txn.subtree(base_id).map_err(store_err)?;
                    all.sort_unstable();
                    all
                }
            };
            let start = list.partition_point(|id| *id <= p.after);
            candidates = Some(list.split_off(start));
        }
        if let Some(cap) = cap {
            if candidates.as_ref().is_none_or(|c| c.len() > cap) {
                return Ok(None);
            }
        }
        // A filter on a computed attribute needs them all before evaluation (as before);
        // otherwise only matching entries get them, and only those the request returns.
        let needs_computed = filter_uses_computed(&filter);
        let for_filter = if needs_computed {
            Wanted::for_filter(&filter, &self.schema)
        } else {
            Wanted::NONE
        };
        let want = Wanted::selected(&q.attrs, &self.schema);
        let projection = Projection::new(
            q,
            &filter,
            want.member_uid || for_filter.member_uid,
            &self.schema,
        );
        // Entries of one search mostly store the same attribute names: each name's verdict
        // (a schema lookup) is remembered for the search, for at most MEMO_NAMES names.
        let verdicts: std::cell::RefCell<Vec<(Box<str>, bool)>> = Default::default();
        let load = |id: EntryId| -> Result<Option<Entry>, BackendError> {
            match &projection {
                Projection::All => txn.entry(id),
                Projection::Only(_) => txn.entry_projected(id, &mut |n| {
                    let mut memo = verdicts.borrow_mut();
                    if let Some((_, keep)) = memo.iter().find(|(m, _)| &**m == n) {
                        return *keep;
                    }
                    let keep = projection.keeps(n, &self.schema);
                    if memo.len() < MEMO_NAMES {
                        memo.push((n.into(), keep));
                    }
                    keep
                }),
            }
            .map_err(store_err)
        };
        let mut matched = 0usize;
        // Some(flag): stop the loop with that flag (true: over the limit; false: receiver gone).
        let mut consider = |id: EntryId, mut raw: Entry| -> Result<Option<bool>, BackendError> {
            if Instant::now() > q.deadline + pace.waited.get() {
                return Err(BackendError::TimeLimit);
            }
            // Issue 9 §1: secrets leave the entry before the filter sees it, so no filter
            // (whatever name, OID or rule it uses) can be evaluated against a secret value.
            self.schema.remove_secrets(&mut raw);
            let in_scope = match q.scope {
                Scope::Base => id == base_id,
                Scope::One => raw.dn.is_child_of(&q.base),
                Scope::Subtree => raw.dn.is_within(&q.base),
                Scope::Children => id != base_id && raw.dn.is_within(&q.base),
            };
            if !in_scope {
                return Ok(None);
            }
            // Only the computed attributes the filter names are computed before evaluation
            // (memberOf for an IN_CHAIN search, not every group's memberUid).
            let mut e = if needs_computed {
                self.with_computed(&txn, id, raw, for_filter)?
            } else {
                raw
            };
            if !filter.evaluate(&e, &self.schema).is_true() {
                return Ok(None);
            }
            if let Some(limit) = page.map(|p| p.limit).or(q.size_limit) {
                if matched >= limit {
                    return Ok(Some(true));
                }
            }
            matched += 1;
            let entry = if want_entries {
                e = self.with_computed(&txn, id, e, want.without(for_filter))?;
                if want.token_groups && q.scope == Scope::Base && e.has("objectSid") {
                    let tg = self.token_groups(&txn, &e)?;
                    if !tg.is_empty() {
                        e.set("tokenGroups", tg);
                    }
                }
                Some(e)
            } else {
                None
            };
            Ok((!emit(id, entry)).then_some(false))
        };
        let list = match candidates {
            Some(list) => list,
            None => txn.subtree(base_id).map_err(store_err)?,
        };
        for (n, id) in list.into_iter().enumerate() {
            // A search that matches rarely still notices an abandoned receiver.
            if n % 1024 == 1023 && (pace.gone)() {
                return Ok(Some(false));
            }
            if let Some(raw) = load(id)? {
                if let Some(stopped) = consider(id, raw)? {
                    return Ok(Some(stopped));
                }
            }
        }
        Ok(Some(false))
    }

    /// A search streamed to `out` in batches of `STREAM_BATCH` from one read snapshot, on
    /// the calling (dedicated) thread: each full batch waits for room in `out`, so memory
    /// follows the batch and the receiver's bounds, not the result. Returns true if the
    /// size limit cut it short. Ends quietly once `out`'s receiver is gone.
    fn stream_blocking(
        &self,
        q: &Query,
        out: &mpsc::Sender<Vec<Entry>>,
    ) -> Result<bool, BackendError> {
        let closed = out.clone();
        let pace = Pace {
            waited: Cell::new(Duration::ZERO),
            gone: Box::new(move || closed.is_closed()),
        };
        let send = |batch: Vec<Entry>| -> bool {
            let started = Instant::now();
            let sent = out.blocking_send(batch).is_ok();
            pace.waited.set(pace.waited.get() + started.elapsed());
            sent
        };
        let mut batch = Vec::with_capacity(STREAM_BATCH);
        let mut emit = |_: u64, e: Option<Entry>| -> bool {
            batch.extend(e);
            if batch.len() < STREAM_BATCH {
                return true;
            }
            send(std::mem::replace(
                &mut batch,
                Vec::with_capacity(STREAM_BATCH),
            ))
        };
        let stopped = self
            .scan(q, true, None, None, &pace, &mut emit)?
            .unwrap_or(false);
        if !batch.is_empty() {
            send(batch);
        }
        Ok(stopped)
    }

    /// A whole search on the blocking pool.
    async fn search_blocking(
        &self,
        q: &Query,
        want_entries: bool,
    ) -> Result<(Vec<u64>, Vec<Entry>), BackendError> {
        let q = q.clone();
        self.blocking(move |this| {
            this.run_search(&q, want_entries, None)?
                .ok_or_else(|| BackendError::Store("uncapped search gave no result".into()))
        })
        .await
    }
}

impl Local {
    /// `stream_blocking` on a thread of its own, once a `STREAM_THREADS` permit is free
    /// (waiting counts against the time limit).
    async fn stream_on_thread(
        &self,
        q: &Query,
        out: mpsc::Sender<Vec<Entry>>,
    ) -> Result<bool, BackendError> {
        let deadline = tokio::time::Instant::from_std(q.deadline);
        let permit = tokio::time::timeout_at(deadline, self.streams.clone().acquire_owned())
            .await
            .map_err(|_| BackendError::TimeLimit)?
            .map_err(|_| BackendError::Store("search permits closed".into()))?;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let (this, q) = (self.clone(), q.clone());
        std::thread::Builder::new()
            .name("dird-search".into())
            .spawn(move || {
                let outcome = this.stream_blocking(&q, &out);
                drop(out);
                drop(permit);
                let _ = done_tx.send(outcome);
            })
            .map_err(|e| BackendError::Store(format!("cannot start a search thread: {e}")))?;
        done_rx
            .await
            .map_err(|_| BackendError::Store("search thread ended without an outcome".into()))?
    }
}

#[async_trait::async_trait]
impl Backend for Local {
    fn generation(&self) -> Option<u64> {
        Some(self.store.generation())
    }

    async fn entry(&self, dn: &Dn) -> Result<Option<Entry>, BackendError> {
        // A point read (every bind reads its entry, with memberOf for the admin and policy
        // checks) takes microseconds: it runs on the calling task, like a small search (see
        // `search`). Only a group whose computed memberUid would read many members goes to
        // the blocking pool.
        {
            let txn = self.store.read().map_err(store_err)?;
            match txn.entry_by_dn(dn).map_err(store_err)? {
                None => return Ok(None),
                Some((id, e)) if e.values("member").len() <= INLINE_CANDIDATES => {
                    return Ok(Some(self.with_computed(&txn, id, e, Wanted::ALL)?));
                }
                Some(_) => {}
            }
        }
        let dn = dn.clone();
        self.blocking(move |this| {
            let txn = this.store.read().map_err(store_err)?;
            match txn.entry_by_dn(&dn).map_err(store_err)? {
                Some((id, e)) => Ok(Some(this.with_computed(&txn, id, e, Wanted::ALL)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn closure(
        &self,
        start: Vec<Dn>,
        link: Link,
        deadline: Option<Instant>,
        max_nodes: usize,
    ) -> Result<Closure, BackendError> {
        // The usual walk (a user's few groups, for the admin check of every bind) runs on
        // the calling task within a small cap; one that reaches the cap is walked again on
        // the blocking pool with the caller's cap.
        if max_nodes > INLINE_CANDIDATES {
            let small = self.walk(start.clone(), link, deadline, INLINE_CANDIDATES)?;
            if small.complete {
                return Ok(small);
            }
        }
        self.blocking(move |this| this.walk(start, link, deadline, max_nodes))
            .await
    }

    async fn search(&self, q: &Query) -> Result<Vec<Entry>, BackendError> {
        // An index-answered search with a few candidates (lookups by uid, SID, member, a base
        // read) takes microseconds: running it here saves two thread hand-offs, which cost
        // more than the search. Anything larger goes to the blocking pool.
        if let Some((_, entries)) = self.run_search(q, true, Some(INLINE_CANDIDATES))? {
            return Ok(entries);
        }
        self.search_blocking(q, true).await.map(|(_, e)| e)
    }

    async fn search_stream(
        &self,
        q: &Query,
        out: mpsc::Sender<Vec<Entry>>,
    ) -> Result<bool, BackendError> {
        // Small searches as `search` (inline, one batch).
        let (entries, stopped) = match self.run_search(q, true, Some(INLINE_CANDIDATES)) {
            Ok(Some((_, entries))) => (entries, false),
            Err(BackendError::SizeLimit(entries)) => (entries, true),
            Err(e) => return Err(e),
            Ok(None) => return self.stream_on_thread(q, out).await,
        };
        if !entries.is_empty() {
            let _ = out.send(entries).await;
        }
        Ok(stopped)
    }

    async fn search_handles(&self, q: &Query) -> Result<Vec<u64>, BackendError> {
        if let Some((ids, _)) = self.run_search(q, false, Some(INLINE_CANDIDATES))? {
            return Ok(ids);
        }
        self.search_blocking(q, false).await.map(|(ids, _)| ids)
    }

    async fn search_handles_after(
        &self,
        q: &Query,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<u64>, bool), BackendError> {
        let page = PagePosition { after, limit };
        let q = q.clone();
        self.blocking(move |this| {
            this.run_search_from(&q, false, None, Some(page))?
                .map(|(ids, _, more)| (ids, more))
                .ok_or_else(|| BackendError::Store("uncapped search gave no result".into()))
        })
        .await
    }

    async fn fetch(&self, handles: &[u64]) -> Result<Vec<Entry>, BackendError> {
        let handles = handles.to_vec();
        self.blocking(move |this| {
            let txn = this.store.read().map_err(store_err)?;
            let mut out = Vec::with_capacity(handles.len());
            for id in handles {
                if let Some(mut e) = txn.entry(id).map_err(store_err)? {
                    this.schema.remove_secrets(&mut e);
                    out.push(this.with_computed(&txn, id, e, Wanted::ALL)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn add(&self, entry: Entry, ctx: &WriteCtx) -> Result<(), BackendError> {
        let ctx = ctx.clone();
        self.write_blocking(move |this| {
            let mut e = entry.clone();
            let mut txn = this.store.write().map_err(store_err)?;
            this.check_placement(&txn, &e.dn)?;
            let user = is_user(&e);
            this.check_limits(&txn, 1, u64::from(user))?;
            this.prepare_new(&mut txn, &mut e, &ctx)?;
            member_uid::convert(&txn, &this.schema, &mut e).map_err(store_err)?;
            unique::check(&txn, &this.schema, &this.suffix, None, None, &e)?;
            this.add_foreign_members(&mut txn, &e, &ctx)?;
            txn.add(&e).map_err(|err| map_store_err(err, &e.dn))?;
            adjust_user_count(&mut txn, i64::from(user))?;
            adjust_legacy_count(&mut txn, i64::from(has_legacy_password(&e)))?;
            txn.commit().map_err(store_err)
        })
        .await
    }

    async fn modify(
        &self,
        dn: &Dn,
        mods: Vec<Modification>,
        internal: bool,
        ctx: &WriteCtx,
    ) -> Result<(), BackendError> {
        let dn = dn.clone();
        let ctx = ctx.clone();
        self.write_blocking(move |this| {
            let mut txn = this.store.write().map_err(store_err)?;
            let Some((id, mut e)) = txn.entry_by_dn(&dn).map_err(store_err)? else {
                return Err(no_such_object(&txn, &dn));
            };
            let before = e.clone();
            let was_user = is_user(&e);
            modify::apply(&mut e, &mods, &this.schema, internal)?;
            for a in COMPUTED {
                e.remove(a);
            }
            if !was_user && is_user(&e) {
                this.check_limits(&txn, 0, 1)?;
            }
            // Ids are filled in when a modify makes an entry a user or group (e.g. adds the
            // posixAccount class), but never behind a client that changes them explicitly.
            let touches_ids = mods.iter().any(|m| {
                let a = crate::model::filter::base_attr(&m.attr);
                a.eq_ignore_ascii_case("uidNumber") || a.eq_ignore_ascii_case("gidNumber")
            });
            if !touches_ids {
                this.assign_posix(&mut txn, &mut e)?;
            }
            if let Some(sc) = this.schema.structural_class(&e) {
                e.set_str("structuralObjectClass", &sc);
            }
            this.stamp_modified(&mut txn, &mut e, &ctx)?;
            this.schema.check_entry(&e)?;
            unique::check(
                &txn,
                &this.schema,
                &this.suffix,
                Some(id),
                Some(&before),
                &e,
            )?;
            this.add_foreign_members(&mut txn, &e, &ctx)?;
            txn.replace(id, &e).map_err(|err| map_store_err(err, &dn))?;
            adjust_user_count(&mut txn, i64::from(is_user(&e)) - i64::from(was_user))?;
            adjust_legacy_count(
                &mut txn,
                i64::from(has_legacy_password(&e)) - i64::from(has_legacy_password(&before)),
            )?;
            txn.commit().map_err(store_err)
        })
        .await
    }

    async fn delete(&self, dn: &Dn, ctx: &WriteCtx) -> Result<(), BackendError> {
        let dn = dn.clone();
        let ctx = ctx.clone();
        self.write_blocking(move |this| {
            let mut txn = this.store.write().map_err(store_err)?;
            let Some((id, old)) = txn.entry_by_dn(&dn).map_err(store_err)? else {
                return Err(no_such_object(&txn, &dn));
            };
            if txn.has_children(id).map_err(store_err)? {
                return Err(BackendError::NotAllowedOnNonLeaf(dn.clone()));
            }
            txn.next_usn().map_err(store_err)?;
            let linking = links::referencing(&txn, &this.schema, std::slice::from_ref(&dn))
                .map_err(store_err)?;
            txn.delete(id).map_err(|err| map_store_err(err, &dn))?;
            this.relink(&mut txn, linking, &dn, None, &ctx)?;
            adjust_user_count(&mut txn, -i64::from(is_user(&old)))?;
            adjust_legacy_count(&mut txn, -i64::from(has_legacy_password(&old)))?;
            txn.commit().map_err(store_err)
        })
        .await
    }

    async fn rename(
        &self,
        dn: &Dn,
        new_rdn: Rdn,
        delete_old_rdn: bool,
        new_superior: Option<Dn>,
        ctx: &WriteCtx,
    ) -> Result<(), BackendError> {
        let dn = dn.clone();
        let ctx = ctx.clone();
        self.write_blocking(move |this| {
            let mut txn = this.store.write().map_err(store_err)?;
            let Some((id, mut e)) = txn.entry_by_dn(&dn).map_err(store_err)? else {
                return Err(no_such_object(&txn, &dn));
            };
            let before = e.clone();
            let was_user = is_user(&e);
            let parent = match new_superior.clone() {
                Some(p) => {
                    if txn.id_of(&p).map_err(store_err)?.is_none() {
                        return Err(no_such_object(&txn, &p));
                    }
                    if p.is_within(&dn) {
                        return Err(BackendError::Naming(
                            "cannot move an entry below itself".into(),
                        ));
                    }
                    p
                }
                None => dn.parent().unwrap_or_else(Dn::root),
            };
            let new_dn = parent.child(new_rdn.clone());
            if new_dn != dn && txn.id_of(&new_dn).map_err(store_err)?.is_some() {
                return Err(BackendError::AlreadyExists(new_dn));
            }
            // RFC 4511 §4.9: the new RDN's values are added; with deleteoldrdn the old RDN's
            // values are removed.
            if delete_old_rdn {
                if let Some(old) = dn.rdn() {
                    for ava in &old.avas {
                        let still = new_rdn.avas.iter().any(|n| {
                            n.attr.eq_ignore_ascii_case(&ava.attr)
                                && this.schema.values_equal(
                                    &n.attr,
                                    n.value.as_bytes(),
                                    ava.value.as_bytes(),
                                )
                        });
                        if !still {
                            remove_value(&mut e, &ava.attr, ava.value.as_bytes(), &this.schema);
                        }
                    }
                }
            }
            for ava in &new_rdn.avas {
                if !has_value(&e, &ava.attr, ava.value.as_bytes(), &this.schema) {
                    e.push(&ava.attr, ava.value.as_bytes().to_vec());
                }
            }
            e.dn = new_dn;
            for a in COMPUTED {
                e.remove(a);
            }
            this.stamp_modified(&mut txn, &mut e, &ctx)?;
            this.schema.check_entry(&e)?;
            unique::check(
                &txn,
                &this.schema,
                &this.suffix,
                Some(id),
                Some(&before),
                &e,
            )?;
            let moved: Vec<Dn> = {
                let mut dns = Vec::new();
                for sub in txn.subtree(id).map_err(store_err)? {
                    if let Some(x) = txn.entry(sub).map_err(store_err)? {
                        dns.push(x.dn);
                    }
                }
                dns
            };
            let linking = links::referencing(&txn, &this.schema, &moved).map_err(store_err)?;
            let new_dn = e.dn.clone();
            txn.rename(id, &e).map_err(|err| map_store_err(err, &dn))?;
            this.relink(&mut txn, linking, &dn, Some(&new_dn), &ctx)?;
            adjust_user_count(&mut txn, i64::from(is_user(&e)) - i64::from(was_user))?;
            txn.commit().map_err(store_err)
        })
        .await
    }

    async fn password_hash(&self, dn: &Dn) -> Result<Option<String>, BackendError> {
        let dn = dn.clone();
        self.blocking(move |this| {
            let txn = this.store.read().map_err(store_err)?;
            Ok(txn
                .entry_by_dn(&dn)
                .map_err(store_err)?
                .and_then(|(_, e)| e.first_str("userPassword").map(str::to_string)))
        })
        .await
    }

    async fn account_name_for(&self, entry: &Entry) -> Result<Option<String>, BackendError> {
        let entry = entry.clone();
        self.blocking(move |this| {
            let txn = this.store.read().map_err(store_err)?;
            unique::derived_account_name(&txn, &this.schema, &this.suffix, &entry)
                .map_err(store_err)
        })
        .await
    }

    async fn find_one(&self, attr: &str, value: &str) -> Result<Option<Dn>, BackendError> {
        let filter = Filter::Equality(attr.to_string(), value.as_bytes().to_vec());
        let attr = attr.to_string();
        self.blocking(move |this| {
            let txn = this.store.read().map_err(store_err)?;
            let ids = match txn.candidates(&filter).map_err(store_err)? {
                Some(ids) => ids,
                None => {
                    return Err(BackendError::Store(format!(
                        "attribute {attr} is not indexed"
                    )))
                }
            };
            let mut found = None;
            for id in ids {
                if let Some(e) = txn.entry(id).map_err(store_err)? {
                    if filter.evaluate(&e, &this.schema).is_true() {
                        if found.is_some() {
                            return Ok(None); // ambiguous: refuse rather than guess
                        }
                        found = Some(e.dn);
                    }
                }
            }
            Ok(found)
        })
        .await
    }

    async fn usn(&self) -> Result<u64, BackendError> {
        self.blocking(|this| {
            this.store
                .read()
                .map_err(store_err)?
                .usn()
                .map_err(store_err)
        })
        .await
    }

    async fn usage(&self) -> Result<Usage, BackendError> {
        self.blocking(|this| {
            let txn = this.store.read().map_err(store_err)?;
            Ok(Usage {
                objects: txn.count().map_err(store_err)?,
                users: user_count(&txn)?,
            })
        })
        .await
    }

    fn object_limits(&self) -> Option<ObjectLimits> {
        Some(self.limits)
    }

    async fn legacy_password_count(&self) -> Result<u64, BackendError> {
        self.blocking(|this| legacy_count(&this.store.read().map_err(store_err)?))
            .await
    }
}

/// The groups whose `member` holds `dn` (the computed memberOf). With a `member` equality
/// index this is one index read plus the group DNs (not the groups' member lists).
fn groups_of<T: StoreRead>(
    txn: &T,
    dn: &Dn,
    schema: &Schema,
) -> Result<Vec<Vec<u8>>, BackendError> {
    Ok(group_dns_of(txn, dn, schema)?
        .iter()
        .map(|g| g.to_string().into_bytes())
        .collect())
}

/// The groups whose `member` names `dn` (its memberOf), as DNs.
fn group_dns_of<T: StoreRead>(txn: &T, dn: &Dn, schema: &Schema) -> Result<Vec<Dn>, BackendError> {
    let mut out = Vec::new();
    if let Some(ids) = txn.dn_value_ids("member", dn).map_err(store_err)? {
        for id in ids {
            if let Some(g) = txn.dn_of(id).map_err(store_err)? {
                out.push(g);
            }
        }
        return Ok(out);
    }
    let filter = Filter::Equality("member".into(), dn.to_string().into_bytes());
    // Without a `member` index there is no memberOf (a scan per entry would be quadratic).
    let ids = txn
        .candidates(&filter)
        .map_err(store_err)?
        .unwrap_or_default();
    for id in ids {
        if let Some(g) = txn.entry(id).map_err(store_err)? {
            if filter.evaluate(&g, schema).is_true() {
                out.push(g.dn);
            }
        }
    }
    Ok(out)
}

/// Meta key of the domain SID (binary, set at provisioning).
pub const META_DOMAIN_SID: &str = "domain_sid";
pub(super) const META_NEXT_RID: &str = "next_rid";
pub(super) const FIRST_RID: u64 = 1100;
const META_NEXT_UID: &str = "next_uid_number";
const META_NEXT_GID: &str = "next_gid_number";
/// RID of Domain Users (MS-ADTS §6.1.1.6.6): every user's default primary group.
pub const RID_DOMAIN_USERS: u32 = 513;
/// RID of Domain Computers: computers' default primary group.
pub const RID_DOMAIN_COMPUTERS: u32 = 515;
/// Most groups walked when computing tokenGroups.
const MAX_NESTING: usize = 10_000;

fn read_counter(txn: &WriteTxn, key: &str) -> Result<Option<u64>, BackendError> {
    Ok(match txn.meta(key).map_err(store_err)? {
        Some(v) if v.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v);
            Some(u64::from_be_bytes(b))
        }
        _ => None,
    })
}

/// Keeps a range counter above an explicitly written id inside the range.
fn bump_counter(
    txn: &mut WriteTxn,
    key: &str,
    min: u64,
    max: u64,
    value: u64,
) -> Result<(), BackendError> {
    if value < min || value > max {
        return Ok(());
    }
    let next = read_counter(txn, key)?.unwrap_or(min).max(min);
    if value >= next {
        txn.set_meta(key, &(value + 1).to_be_bytes())
            .map_err(store_err)?;
    }
    Ok(())
}

fn int_value(e: &Entry, attr: &str) -> Option<u64> {
    e.first_str(attr).and_then(|v| v.trim().parse().ok())
}

/// The attributes `is_user` and `posix_name` read.
const POSIX_NAME_ATTRS: &[&str] = &["objectClass", "uid", "sAMAccountName"];

/// The name a user has in POSIX group listings (memberUid): uid, else sAMAccountName.
pub fn posix_name(e: &Entry) -> Option<&str> {
    e.first_str("uid").or_else(|| e.first_str("sAMAccountName"))
}

fn is_group(e: &Entry) -> bool {
    e.is_a("group") || e.is_a("posixGroup")
}

fn names_member_uid(f: &Filter) -> bool {
    let attr = match f {
        Filter::Equality(a, _)
        | Filter::GreaterOrEqual(a, _)
        | Filter::LessOrEqual(a, _)
        | Filter::Approx(a, _)
        | Filter::Present(a) => Some(a.as_str()),
        Filter::Substrings { attr, .. } | Filter::DnIn { attr, .. } => Some(attr.as_str()),
        Filter::Extensible { attr, .. } => attr.as_deref(),
        _ => None,
    };
    attr.is_some_and(|a| base_attr(a).eq_ignore_ascii_case("memberUid"))
}

/// Parses a string SID `S-1-5-21-…` (MS-DTYP §2.4.2.1) into its binary form (§2.4.2.2).
pub fn parse_sid(s: &str) -> Option<Vec<u8>> {
    let rest = s.strip_prefix("S-").or_else(|| s.strip_prefix("s-"))?;
    let mut parts = rest.split('-');
    let revision: u8 = parts.next()?.parse().ok()?;
    let authority: u64 = parts.next()?.parse().ok()?;
    if authority >= 1 << 48 {
        return None;
    }
    let subs: Vec<u32> = parts.map(|p| p.parse().ok()).collect::<Option<_>>()?;
    if subs.is_empty() || subs.len() > 15 {
        return None;
    }
    let mut out = vec![revision, subs.len() as u8];
    out.extend_from_slice(&authority.to_be_bytes()[2..]);
    for sub in subs {
        out.extend_from_slice(&sub.to_le_bytes());
    }
    Some(out)
}

pub(super) fn next_counter(txn: &mut WriteTxn, key: &str, first: u64) -> Result<u64, BackendError> {
    let cur = match txn.meta(key).map_err(store_err)? {
        Some(v) if v.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v);
            u64::from_be_bytes(b)
        }
        _ => first,
    };
    txn.set_meta(key, &(cur + 1).to_be_bytes())
        .map_err(store_err)?;
    Ok(cur)
}

/// Makes the counter at `key` at least `at_least` (it stays if already higher).
fn raise_counter(
    txn: &mut WriteTxn,
    key: &str,
    first: u64,
    at_least: u64,
) -> Result<(), BackendError> {
    let cur = match txn.meta(key).map_err(store_err)? {
        Some(v) if v.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v);
            u64::from_be_bytes(b)
        }
        _ => first,
    };
    if at_least > cur {
        txn.set_meta(key, &at_least.to_be_bytes())
            .map_err(store_err)?;
    }
    Ok(())
}

/// The RID of `sid` if it is `domain_sid` plus one sub-authority (MS-DTYP §2.4.2.2).
pub(super) fn rid_in_domain(domain_sid: &[u8], sid: &[u8]) -> Option<u32> {
    if sid.len() != domain_sid.len() + 4 || domain_sid.len() < 8 {
        return None;
    }
    let same = sid[0] == domain_sid[0]
        && sid[1] == domain_sid[1].saturating_add(1)
        && sid[2..domain_sid.len()] == domain_sid[2..];
    let tail: [u8; 4] = sid[domain_sid.len()..].try_into().ok()?;
    same.then(|| u32::from_le_bytes(tail))
}

/// Appends a RID to a binary domain SID (MS-DTYP §2.4.2.2).
pub fn sid_with_rid(domain_sid: &[u8], rid: u32) -> Vec<u8> {
    let mut sid = domain_sid.to_vec();
    if sid.len() >= 2 {
        sid[1] = sid[1].saturating_add(1);
    }
    sid.extend_from_slice(&rid.to_le_bytes());
    sid
}

fn needs_sid(e: &Entry) -> bool {
    e.is_a("user") || e.is_a("group") || e.is_a("computer")
}

/// True for the objects the tier's user cap counts: users (not computers), posixAccount and
/// inetOrgPerson objects.
pub fn is_user(e: &Entry) -> bool {
    (e.is_a("user") && !e.is_a("computer")) || e.is_a("posixAccount") || e.is_a("inetOrgPerson")
}

/// Meta key of the number of user objects. Every write adjusts it in its own transaction, so
/// the tier's user cap is checked in O(1) and atomically with the write (a count through the
/// objectClass index would cost O(users) per write).
pub(super) const META_USER_COUNT: &str = "user_count";

/// The number of user objects: the counter, or (in a store written before the counter
/// existed) a count through the objectClass index.
fn user_count<T: StoreRead>(txn: &T) -> Result<u64, BackendError> {
    match txn.meta(META_USER_COUNT).map_err(store_err)? {
        Some(v) if v.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v);
            Ok(u64::from_be_bytes(b))
        }
        Some(_) => Err(BackendError::Store("user counter is corrupt".into())),
        None => count_users(txn),
    }
}

/// Applies `delta` to the user counter after the write transaction changed entries. Without
/// a counter yet, counts through the index instead (the count already sees this transaction's
/// changes), so the counter is right from its first write on.
fn adjust_user_count(txn: &mut WriteTxn, delta: i64) -> Result<(), BackendError> {
    let n = match txn.meta(META_USER_COUNT).map_err(store_err)? {
        Some(_) if delta == 0 => return Ok(()),
        Some(_) => user_count(txn)?.saturating_add_signed(delta),
        None => count_users(txn)?,
    };
    txn.set_meta(META_USER_COUNT, &n.to_be_bytes())
        .map_err(store_err)
}

/// True if the entry's `userPassword` is a hash migrated from another directory (a
/// `{SCHEME}` other than dird's own `{ARGON2}`), still waiting for its first bind.
pub fn has_legacy_password(e: &Entry) -> bool {
    e.values("userPassword")
        .iter()
        .any(|v| v.starts_with(b"{") && !v.starts_with(b"{ARGON2}"))
}

/// Meta key of the number of entries `has_legacy_password` accepts, adjusted by every write
/// in its own transaction (so the rootDSE and `dird user show` report it in O(1)). Stores
/// written before it existed could hold no such entry: a missing counter is 0.
const META_LEGACY_COUNT: &str = "legacy_password_count";

fn legacy_count<T: StoreRead>(txn: &T) -> Result<u64, BackendError> {
    match txn.meta(META_LEGACY_COUNT).map_err(store_err)? {
        Some(v) => v
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| BackendError::Store("legacy password counter is corrupt".into())),
        None => Ok(0),
    }
}

fn adjust_legacy_count(txn: &mut WriteTxn, delta: i64) -> Result<(), BackendError> {
    if delta == 0 {
        return Ok(());
    }
    let n = legacy_count(txn)?.saturating_add_signed(delta);
    txn.set_meta(META_LEGACY_COUNT, &n.to_be_bytes())
        .map_err(store_err)
}

/// Counts the objects `is_user` accepts through the objectClass index (O(users); only for
/// stores without the counter): user, posixAccount or inetOrgPerson objects, minus computers
/// that are neither posixAccount nor inetOrgPerson.
pub(super) fn count_users<T: StoreRead>(txn: &T) -> Result<u64, BackendError> {
    let class = |c: &str| -> Result<Vec<EntryId>, BackendError> {
        txn.candidates(&Filter::Equality(
            "objectClass".into(),
            c.as_bytes().to_vec(),
        ))
        .map_err(store_err)?
        .ok_or_else(|| BackendError::Store("objectClass is not indexed".into()))
    };
    let mut ids: Vec<EntryId> = class("user")?;
    let posix = class("posixAccount")?;
    let inet = class("inetOrgPerson")?;
    let computers = class("computer")?;
    ids.extend_from_slice(&posix);
    ids.extend_from_slice(&inet);
    ids.sort_unstable();
    ids.dedup();
    let plain_computers = computers
        .iter()
        .filter(|id| {
            ids.binary_search(id).is_ok()
                && posix.binary_search(id).is_err()
                && inet.binary_search(id).is_err()
        })
        .count();
    Ok((ids.len() - plain_computers) as u64)
}

fn filter_uses_computed(f: &Filter) -> bool {
    match f {
        Filter::And(v) | Filter::Or(v) => v.iter().any(filter_uses_computed),
        Filter::Not(x) => filter_uses_computed(x),
        Filter::Equality(a, _)
        | Filter::GreaterOrEqual(a, _)
        | Filter::LessOrEqual(a, _)
        | Filter::Approx(a, _)
        | Filter::Present(a) => is_computed(a),
        Filter::Substrings { attr, .. } | Filter::DnIn { attr, .. } => is_computed(attr),
        Filter::Extensible { attr, .. } => attr.as_deref().is_none_or(is_computed),
    }
}

fn is_computed(a: &str) -> bool {
    // memberUid is stored (classic RFC 2307 data) and computed (from member) at once.
    COMPUTED
        .iter()
        .chain(&["memberuid"])
        .any(|c| c.eq_ignore_ascii_case(base_attr(a)))
}

fn has_value(e: &Entry, attr: &str, v: &[u8], schema: &Schema) -> bool {
    e.values(attr)
        .iter()
        .any(|x| schema.values_equal(attr, x, v))
}

fn remove_value(e: &mut Entry, attr: &str, v: &[u8], schema: &Schema) {
    let kept: Vec<Vec<u8>> = e
        .values(attr)
        .iter()
        .filter(|x| !schema.values_equal(attr, x, v))
        .cloned()
        .collect();
    e.set(attr, kept);
}

fn no_such_object<T: StoreRead>(txn: &T, dn: &Dn) -> BackendError {
    let mut matched = dn.parent();
    while let Some(m) = matched {
        if m.is_root() || matches!(txn.id_of(&m), Ok(Some(_))) {
            return BackendError::NoSuchObject {
                dn: dn.clone(),
                matched: m,
            };
        }
        matched = m.parent();
    }
    BackendError::NoSuchObject {
        dn: dn.clone(),
        matched: Dn::root(),
    }
}

/// RFC 4517 §3.3.13 GeneralizedTime in UTC, e.g. `20261129110000Z`.
pub fn generalized_time(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%Y%m%d%H%M%SZ").to_string()
}

fn store_err(e: StoreError) -> BackendError {
    match e {
        StoreError::Full(_) => BackendError::StoreFull(e.to_string()),
        StoreError::Conflict => BackendError::Conflict,
        StoreError::Unavailable(m) => BackendError::Unavailable(m),
        StoreError::ClusterLimit(m) => BackendError::ClusterLimit(m),
        other => BackendError::Store(other.to_string()),
    }
}

fn map_store_err(e: StoreError, dn: &Dn) -> BackendError {
    match e {
        StoreError::AlreadyExists => BackendError::AlreadyExists(dn.clone()),
        StoreError::NotLeaf => BackendError::NotAllowedOnNonLeaf(dn.clone()),
        StoreError::NoParent => BackendError::NoSuchObject {
            dn: dn.clone(),
            matched: Dn::root(),
        },
        other => store_err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::IndexConfig;

    #[test]
    fn computed_attributes_follow_the_selection() {
        let schema = Schema::builtin().unwrap();
        let sel = |attrs: &[&str]| {
            let v: Vec<String> = attrs.iter().map(|a| a.to_string()).collect();
            Wanted::selected(&v, &schema)
        };
        let none = Wanted {
            member_of: false,
            has_subordinates: false,
            member_uid: false,
            entry_dn: false,
            distinguished_name: false,
            subschema: false,
            token_groups: false,
        };
        // No list and `*`: user attributes only (memberUid); memberOf & co. are operational.
        let user = Wanted {
            member_uid: true,
            ..none
        };
        assert_eq!(sel(&[]), user);
        assert_eq!(sel(&["*"]), user);
        assert_eq!(sel(&["1.1"]), none);
        // AD's distinguishedName only when named (sssd's GPO lookup asks for it).
        let all_but_dn = Wanted {
            distinguished_name: false,
            ..Wanted::ALL
        };
        assert_eq!(sel(&["+"]), all_but_dn);
        assert_eq!(
            sel(&["distinguishedName"]),
            Wanted {
                distinguished_name: true,
                ..none
            }
        );
        assert_eq!(
            sel(&["MEMBEROF", "hasSubordinates;x-opt"]),
            Wanted {
                member_of: true,
                has_subordinates: true,
                ..none
            }
        );
        // by OID
        assert_eq!(
            sel(&["1.2.840.113556.1.2.102"]),
            Wanted {
                member_of: true,
                ..none
            }
        );
    }

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    fn ctx() -> WriteCtx {
        WriteCtx {
            by: dn("cn=admin,dc=example,dc=com"),
            now: SystemTime::now(),
        }
    }

    fn ou(d: &str, name: &str) -> Entry {
        let mut e = Entry::new(dn(d));
        e.push("objectClass", b"top".to_vec());
        e.push("objectClass", b"organizationalUnit".to_vec());
        e.set_str("ou", name);
        e
    }

    fn person(uid: &str) -> Entry {
        let mut e = Entry::new(dn(&format!("uid={uid},ou=People,dc=example,dc=com")));
        for c in ["top", "person", "inetOrgPerson"] {
            e.push("objectClass", c.as_bytes().to_vec());
        }
        e.set_str("uid", uid);
        e.set_str("cn", uid);
        e.set_str("sn", uid);
        e
    }

    fn backend(dir: &std::path::Path, max_users: u64) -> Local {
        let schema = Arc::new(Schema::builtin().unwrap());
        let store = Store::open(
            &dir.join("t.redb"),
            schema.clone(),
            IndexConfig::default_attrs(),
        )
        .unwrap();
        let limits = ObjectLimits {
            max_users: Some(max_users),
            max_objects: 1000,
            tier: "test",
        };
        let local = Local::new(store, dn("dc=example,dc=com"), schema, limits).unwrap();
        let mut base = Entry::new(dn("dc=example,dc=com"));
        for c in ["top", "domain"] {
            base.push("objectClass", c.as_bytes().to_vec());
        }
        base.set_str("dc", "example");
        local
            .add_batch_blocking(
                vec![base, ou("ou=People,dc=example,dc=com", "People")],
                &ctx(),
                &[],
            )
            .unwrap();
        local
    }

    fn group(name: &str, members: &[&str]) -> Entry {
        let mut e = Entry::new(dn(&format!("cn={name},ou=People,dc=example,dc=com")));
        for c in ["top", "groupOfNames"] {
            e.push("objectClass", c.as_bytes().to_vec());
        }
        e.set_str("cn", name);
        for m in members {
            e.push("member", m.as_bytes().to_vec());
        }
        e
    }

    /// The memo of member names (issue 14) never outlives a write: a group's computed
    /// memberUid follows a member's uid change at once, and a user added later appears.
    #[tokio::test]
    async fn computed_member_uid_follows_writes_through_the_memo() {
        let tmp = tempfile::tempdir().unwrap();
        let local = backend(tmp.path(), 100);
        // Named by cn, as OpenLDAP imports name them, so that uid can change.
        let user = |name: &str| {
            let mut e = person(name);
            e.dn = dn(&format!("cn={name},ou=People,dc=example,dc=com"));
            e
        };
        let a = "cn=a,ou=People,dc=example,dc=com";
        let b = "cn=b,ou=People,dc=example,dc=com";
        local
            .add_batch_blocking(vec![user("a"), group("g", &[a, b])], &ctx(), &[])
            .unwrap();
        let uids = || async {
            let q = Query {
                base: dn("cn=g,ou=People,dc=example,dc=com"),
                scope: Scope::Base,
                filter: Filter::Present("objectClass".into()),
                size_limit: None,
                deadline: Instant::now() + std::time::Duration::from_secs(60),
                attrs: vec!["memberUid".into()],
            };
            let found = local.search(&q).await.unwrap();
            let mut v: Vec<String> = found[0]
                .values("memberUid")
                .iter()
                .map(|x| String::from_utf8_lossy(x).into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(uids().await, ["a"]);
        assert_eq!(uids().await, ["a"]); // served from the memo
        let rename = Modification {
            op: crate::model::entry::ModOp::Replace,
            attr: "uid".into(),
            values: vec![b"alpha".to_vec()],
        };
        local
            .modify(&dn(a), vec![rename], false, &ctx())
            .await
            .unwrap();
        assert_eq!(uids().await, ["alpha"]);
        local.add(user("b"), &ctx()).await.unwrap();
        assert_eq!(uids().await, ["alpha", "b"]);
    }

    /// A search that names its attributes decodes only those, the filter's and the ones its
    /// computed attributes need (issue 14); names, aliases and filters still work as before.
    #[tokio::test]
    async fn searches_decode_only_the_requested_and_filter_attributes() {
        let tmp = tempfile::tempdir().unwrap();
        let local = backend(tmp.path(), 100);
        let a = "uid=a,ou=People,dc=example,dc=com";
        let mut alice = person("a");
        alice.set_str("mail", "a@example.com");
        alice.set_str("description", "first");
        local
            .add_batch_blocking(vec![alice, group("g", &[a])], &ctx(), &[])
            .unwrap();
        let q = |filter: Filter, attrs: &[&str]| Query {
            base: dn("dc=example,dc=com"),
            scope: Scope::Subtree,
            filter,
            size_limit: None,
            deadline: Instant::now() + std::time::Duration::from_secs(60),
            attrs: attrs.iter().map(|s| s.to_string()).collect(),
        };
        let names = |e: &Entry| {
            let mut v: Vec<String> = e.attrs().map(|a| a.name.to_ascii_lowercase()).collect();
            v.sort();
            v
        };
        // (uid=a) asking for mail: mail and the filter's uid, nothing else.
        let found = local
            .search(&q(Filter::Equality("uid".into(), b"a".to_vec()), &["mail"]))
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].dn, dn(a));
        assert_eq!(names(&found[0]), ["mail", "uid"]);
        assert_eq!(found[0].first_str("mail"), Some("a@example.com"));
        // Aliases: surname in the filter, commonName requested; stored as sn and cn.
        let found = local
            .search(&q(
                Filter::Equality("surname".into(), b"a".to_vec()),
                &["commonName;x-opt"],
            ))
            .await
            .unwrap();
        assert_eq!(names(&found[0]), ["cn", "sn"]);
        // 1.1: the filter's attributes only; the entry still matches.
        let found = local
            .search(&q(Filter::Present("description".into()), &["1.1"]))
            .await
            .unwrap();
        assert_eq!(names(&found[0]), ["description"]);
        // memberUid is computed from member, which is read although not requested.
        let found = local
            .search(&q(
                Filter::Equality("cn".into(), b"g".to_vec()),
                &["memberUid"],
            ))
            .await
            .unwrap();
        assert_eq!(found[0].values("memberUid"), [b"a".to_vec()]);
        // `*` and no list: the whole entry, as before.
        for all in [&["*"][..], &[]] {
            let found = local
                .search(&q(Filter::Equality("uid".into(), b"a".to_vec()), all))
                .await
                .unwrap();
            assert!(found[0].has("description") && found[0].has("objectClass"));
        }
    }

    #[tokio::test]
    async fn closures_walk_both_ways_within_the_cap_and_the_deadline() {
        let tmp = tempfile::tempdir().unwrap();
        let local = backend(tmp.path(), 100);
        let a = "uid=a,ou=People,dc=example,dc=com";
        let (g1, g2, g3) = (
            "cn=g1,ou=People,dc=example,dc=com",
            "cn=g2,ou=People,dc=example,dc=com",
            "cn=g3,ou=People,dc=example,dc=com",
        );
        local
            .add_batch_blocking(
                vec![
                    person("a"),
                    group("g1", &[a]),
                    group("g2", &[g1]),
                    // a cycle back to g2 is walked once
                    group("g3", &[g2, g1]),
                ],
                &ctx(),
                &[],
            )
            .unwrap();
        let norm = |d: &str| dn(d).norm().to_string();
        let far = Some(Instant::now() + std::time::Duration::from_secs(60));
        let down = local
            .closure(vec![dn(g3)], Link::Member, far, 100)
            .await
            .unwrap();
        assert!(down.complete);
        let want: std::collections::HashSet<String> = [g3, g2, g1, a].map(norm).into();
        assert_eq!(down.dns, want);
        let up = local
            .closure(vec![dn(a)], Link::MemberOf, far, 100)
            .await
            .unwrap();
        assert!(up.complete);
        assert_eq!(up.dns, want);
        // the default (entry by entry) walk agrees
        let mut walk = Walk::new(vec![dn(g3)], 100, far);
        while let Some(d) = walk.next_node().unwrap() {
            let e = local.entry(&d).await.unwrap().unwrap();
            walk.offer(dn_values(&e, Link::Member.attr()));
        }
        assert_eq!(walk.finish().dns, want);
        // the cap: the visited set never grows past it, and the walk says it is incomplete
        let capped = local
            .closure(vec![dn(g3)], Link::Member, far, 2)
            .await
            .unwrap();
        assert!(!capped.complete);
        assert_eq!(capped.dns.len(), 2);
        // a deadline in the past ends the walk with TimeLimit
        let past = Some(Instant::now() - std::time::Duration::from_millis(1));
        let err = local
            .closure(vec![dn(g3)], Link::Member, past, 100)
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::TimeLimit), "{err:?}");
    }

    #[tokio::test]
    async fn searches_never_see_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let local = backend(tmp.path(), 100);
        let mut p = person("a");
        p.set_str("userPassword", "{ARGON2}$argon2id$v=19$x");
        local.add_batch_blocking(vec![p], &ctx(), &[]).unwrap();
        let q = |filter: Filter| Query {
            base: dn("dc=example,dc=com"),
            scope: Scope::Subtree,
            filter,
            size_limit: None,
            deadline: Instant::now() + std::time::Duration::from_secs(60),
            attrs: vec!["*".into(), "+".into()],
        };
        let found = local
            .search(&q(Filter::Equality("uid".into(), b"a".to_vec())))
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert!(!found[0].has("userPassword"));
        for f in [
            Filter::Present("userPassword".into()),
            Filter::Present("2.5.4.35".into()),
            Filter::Not(Box::new(Filter::Present("userPassword".into()))),
        ] {
            let found = local.search(&q(f.clone())).await.unwrap();
            assert!(
                found.iter().all(|e| !e.dn.to_string().starts_with("uid=a")),
                "{f:?}: {found:?}"
            );
        }
        // the directory's own reads keep the hash
        let e = local
            .entry(&dn("uid=a,ou=People,dc=example,dc=com"))
            .await
            .unwrap()
            .unwrap();
        assert!(e.has("userPassword"));
    }

    #[tokio::test]
    async fn user_counter_follows_every_write_and_enforces_the_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let local = backend(tmp.path(), 3);
        assert_eq!(local.usage().await.unwrap().users, 0);

        local
            .add_batch_blocking(vec![person("a"), person("b")], &ctx(), &[])
            .unwrap();
        assert_eq!(local.usage().await.unwrap().users, 2);
        // A batch that would overshoot is refused as a whole.
        let err = local
            .add_batch_blocking(vec![person("c"), person("d")], &ctx(), &[])
            .unwrap_err();
        assert!(matches!(err, BackendError::AdminLimit(_)), "{err:?}");
        assert_eq!(local.usage().await.unwrap().users, 2);

        local.add(person("c"), &ctx()).await.unwrap();
        let err = local.add(person("d"), &ctx()).await.unwrap_err();
        assert!(matches!(err, BackendError::AdminLimit(_)), "{err:?}");

        // Deleting a user frees a slot; a non-user (an OU) does not count.
        local
            .delete(&dn("uid=a,ou=People,dc=example,dc=com"), &ctx())
            .await
            .unwrap();
        assert_eq!(local.usage().await.unwrap().users, 2);
        local
            .add(ou("ou=Other,dc=example,dc=com", "Other"), &ctx())
            .await
            .unwrap();
        assert_eq!(local.usage().await.unwrap().users, 2);
        local.add(person("d"), &ctx()).await.unwrap();
        assert_eq!(local.usage().await.unwrap().users, 3);

        // The counter agrees with a count through the index.
        let txn = local.store.read().unwrap();
        assert_eq!(count_users(&txn).unwrap(), 3);
    }

    #[tokio::test]
    async fn a_store_without_the_counter_is_counted_once() {
        let tmp = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::builtin().unwrap());
        let store = Store::open(
            &tmp.path().join("t.redb"),
            schema.clone(),
            IndexConfig::default_attrs(),
        )
        .unwrap();
        // Entries written straight to the store, as by a build before the counter existed.
        {
            let mut base = Entry::new(dn("dc=example,dc=com"));
            base.push("objectClass", b"domain".to_vec());
            base.set_str("dc", "example");
            let mut txn = store.write().unwrap();
            txn.add(&base).unwrap();
            txn.add(&ou("ou=People,dc=example,dc=com", "People"))
                .unwrap();
            txn.add(&person("a")).unwrap();
            txn.add(&person("b")).unwrap();
            txn.commit().unwrap();
        }
        let limits = ObjectLimits {
            max_users: Some(3),
            max_objects: 1000,
            tier: "test",
        };
        let local = Local::new(store, dn("dc=example,dc=com"), schema, limits).unwrap();
        assert_eq!(local.usage().await.unwrap().users, 2);
        local.add(person("c"), &ctx()).await.unwrap();
        let stored = local.store.read().unwrap().meta(META_USER_COUNT).unwrap();
        assert_eq!(stored, Some(3u64.to_be_bytes().to_vec()));
        let err = local.add(person("d"), &ctx()).await.unwrap_err();
        assert!(matches!(err, BackendError::AdminLimit(_)), "{err:?}");
    }

    #[test]
    fn string_sids_parse_to_binary() {
        let domain = parse_sid("S-1-5-21-1-2-3").unwrap();
        assert_eq!(&domain[..8], &[1, 4, 0, 0, 0, 0, 0, 5]);
        assert_eq!(
            parse_sid("S-1-5-21-1-2-3-513").unwrap(),
            sid_with_rid(&domain, 513)
        );
        for bad in [
            "",
            "S-1",
            "S-1-5",
            "X-1-5-21",
            "S-1-5-x",
            "S-1-281474976710656-1",
        ] {
            assert_eq!(parse_sid(bad), None, "{bad}");
        }
    }

    #[test]
    fn member_uid_assertions_are_recognised() {
        assert!(names_member_uid(&Filter::Present("memberuid".into())));
        assert!(names_member_uid(&Filter::Substrings {
            attr: "memberUid".into(),
            initial: Some(b"a".to_vec()),
            any: vec![],
            final_: None,
        }));
        assert!(!names_member_uid(&Filter::Present("member".into())));
    }
}
