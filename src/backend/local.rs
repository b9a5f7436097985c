//! Standalone backend: everything lives in the embedded redb store.
//! May import: `model`, `store`. Invariant: each write is one store transaction committed
//! durably before the call returns; the blocking store work runs on tokio's blocking pool
//! and no transaction is held across an `.await`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::backend::{Backend, BackendError, Query, Scope, Usage, WriteCtx};
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
}

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
        })
    }

    /// The underlying store (for CLI import/export and backups).
    pub fn store(&self) -> &Store {
        &self.store
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
        let mut txn = self.store.write().map_err(store_err)?;
        let extra_users = entries.iter().filter(|e| is_user(e)).count() as u64;
        self.check_limits(&txn, entries.len() as u64, extra_users)?;
        for mut e in entries {
            self.check_placement(&txn, &e.dn)?;
            self.prepare_new(&mut txn, &mut e, ctx)?;
            txn.add(&e).map_err(|err| map_store_err(err, &e.dn))?;
        }
        for (k, v) in meta {
            txn.set_meta(k, v).map_err(store_err)?;
        }
        txn.commit().map_err(store_err)
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
                let users = count_users(txn)?;
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
        check_rdn_present(e)?;
        let usn = txn.next_usn().map_err(store_err)?;
        let ts = generalized_time(ctx.now);
        let uuid = uuid::Uuid::new_v4();
        if !e.has("entryUUID") {
            e.set_str("entryUUID", &uuid.hyphenated().to_string());
        }
        if !e.has("objectGUID") {
            e.set("objectGUID", vec![uuid.to_bytes_le().to_vec()]);
        }
        e.set_str("createTimestamp", &ts);
        e.set_str("modifyTimestamp", &ts);
        e.set_str("creatorsName", &ctx.by.to_string());
        e.set_str("modifiersName", &ctx.by.to_string());
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
        if let Some(sc) = self.schema.structural_class(e) {
            e.set_str("structuralObjectClass", &sc);
        }
        self.schema.check_entry(e)?;
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
        e.set_str("modifiersName", &ctx.by.to_string());
        e.set_str("uSNChanged", &usn.to_string());
        Ok(())
    }

    fn with_computed<T: StoreRead>(
        &self,
        txn: &T,
        id: EntryId,
        mut e: Entry,
    ) -> Result<Entry, BackendError> {
        let groups = groups_of(txn, &e.dn, &self.schema)?;
        if !groups.is_empty() {
            e.set("memberOf", groups);
        }
        let has_children = txn.has_children(id).map_err(store_err)?;
        e.set_str(
            "hasSubordinates",
            if has_children { "TRUE" } else { "FALSE" },
        );
        e.set_str("entryDN", &e.dn.to_string());
        e.set_str("subschemaSubentry", "cn=Subschema");
        Ok(e)
    }

    fn run_search(
        &self,
        q: &Query,
        want_entries: bool,
    ) -> Result<(Vec<u64>, Vec<Entry>), BackendError> {
        let txn = self.store.read().map_err(store_err)?;
        let Some(base_id) = txn.id_of(&q.base).map_err(store_err)? else {
            return Err(no_such_object(&txn, &q.base));
        };
        let needs_computed = filter_uses_computed(&q.filter);
        let mut ids: Vec<u64> = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        let mut consider = |id: EntryId, raw: Entry| -> Result<bool, BackendError> {
            if Instant::now() > q.deadline {
                return Err(BackendError::TimeLimit);
            }
            let in_scope = match q.scope {
                Scope::Base => id == base_id,
                Scope::One => raw.dn.parent().is_some_and(|p| p == q.base),
                Scope::Subtree => raw.dn.is_within(&q.base),
                Scope::Children => id != base_id && raw.dn.is_within(&q.base),
            };
            if !in_scope {
                return Ok(true);
            }
            let e = if needs_computed || want_entries {
                self.with_computed(&txn, id, raw)?
            } else {
                raw
            };
            if !q.filter.evaluate(&e, &self.schema).is_true() {
                return Ok(true);
            }
            if let Some(limit) = q.size_limit {
                if ids.len() >= limit {
                    return Ok(false);
                }
            }
            ids.push(id);
            if want_entries {
                entries.push(e);
            }
            Ok(true)
        };
        let mut over_limit = false;
        let candidates = match q.scope {
            Scope::Base => Some(vec![base_id]),
            Scope::One => Some(txn.children(base_id).map_err(store_err)?),
            _ => txn.candidates(&q.filter).map_err(store_err)?,
        };
        match candidates {
            Some(list) => {
                for id in list {
                    if let Some(raw) = txn.entry(id).map_err(store_err)? {
                        if !consider(id, raw)? {
                            over_limit = true;
                            break;
                        }
                    }
                }
            }
            None => {
                let list = txn.subtree(base_id).map_err(store_err)?;
                for id in list {
                    if let Some(raw) = txn.entry(id).map_err(store_err)? {
                        if !consider(id, raw)? {
                            over_limit = true;
                            break;
                        }
                    }
                }
            }
        }
        if over_limit {
            return Err(BackendError::SizeLimit(entries));
        }
        Ok((ids, entries))
    }
}

#[async_trait::async_trait]
impl Backend for Local {
    async fn entry(&self, dn: &Dn) -> Result<Option<Entry>, BackendError> {
        let dn = dn.clone();
        self.blocking(move |this| {
            let txn = this.store.read().map_err(store_err)?;
            match txn.entry_by_dn(&dn).map_err(store_err)? {
                Some((id, e)) => Ok(Some(this.with_computed(&txn, id, e)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn search(&self, q: &Query) -> Result<Vec<Entry>, BackendError> {
        let q = q.clone();
        self.blocking(move |this| this.run_search(&q, true).map(|(_, e)| e))
            .await
    }

    async fn search_handles(&self, q: &Query) -> Result<Vec<u64>, BackendError> {
        let q = q.clone();
        self.blocking(move |this| this.run_search(&q, false).map(|(ids, _)| ids))
            .await
    }

    async fn fetch(&self, handles: &[u64]) -> Result<Vec<Entry>, BackendError> {
        let handles = handles.to_vec();
        self.blocking(move |this| {
            let txn = this.store.read().map_err(store_err)?;
            let mut out = Vec::with_capacity(handles.len());
            for id in handles {
                if let Some(e) = txn.entry(id).map_err(store_err)? {
                    out.push(this.with_computed(&txn, id, e)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn add(&self, entry: Entry, ctx: &WriteCtx) -> Result<(), BackendError> {
        let ctx = ctx.clone();
        self.blocking(move |this| {
            let mut e = entry;
            let mut txn = this.store.write().map_err(store_err)?;
            this.check_placement(&txn, &e.dn)?;
            this.check_limits(&txn, 1, u64::from(is_user(&e)))?;
            this.prepare_new(&mut txn, &mut e, &ctx)?;
            txn.add(&e).map_err(|err| map_store_err(err, &e.dn))?;
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
        self.blocking(move |this| {
            let mut txn = this.store.write().map_err(store_err)?;
            let Some((id, mut e)) = txn.entry_by_dn(&dn).map_err(store_err)? else {
                return Err(no_such_object(&txn, &dn));
            };
            let was_user = is_user(&e);
            modify::apply(&mut e, &mods, &this.schema, internal)?;
            for a in COMPUTED {
                e.remove(a);
            }
            if !was_user && is_user(&e) {
                this.check_limits(&txn, 0, 1)?;
            }
            if let Some(sc) = this.schema.structural_class(&e) {
                e.set_str("structuralObjectClass", &sc);
            }
            this.stamp_modified(&mut txn, &mut e, &ctx)?;
            this.schema.check_entry(&e)?;
            txn.replace(id, &e).map_err(|err| map_store_err(err, &dn))?;
            txn.commit().map_err(store_err)
        })
        .await
    }

    async fn delete(&self, dn: &Dn, _ctx: &WriteCtx) -> Result<(), BackendError> {
        let dn = dn.clone();
        self.blocking(move |this| {
            let mut txn = this.store.write().map_err(store_err)?;
            let Some(id) = txn.id_of(&dn).map_err(store_err)? else {
                return Err(no_such_object(&txn, &dn));
            };
            if txn.has_children(id).map_err(store_err)? {
                return Err(BackendError::NotAllowedOnNonLeaf(dn));
            }
            txn.next_usn().map_err(store_err)?;
            txn.delete(id).map_err(|err| map_store_err(err, &dn))?;
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
        self.blocking(move |this| {
            let mut txn = this.store.write().map_err(store_err)?;
            let Some((id, mut e)) = txn.entry_by_dn(&dn).map_err(store_err)? else {
                return Err(no_such_object(&txn, &dn));
            };
            let parent = match new_superior {
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
                                && this.schema.normalize(&n.attr, n.value.as_bytes())
                                    == this.schema.normalize(&ava.attr, ava.value.as_bytes())
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
            txn.rename(id, &e).map_err(|err| map_store_err(err, &dn))?;
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
                users: count_users(&txn)?,
            })
        })
        .await
    }

    fn object_limits(&self) -> Option<ObjectLimits> {
        Some(self.limits)
    }
}

/// The groups whose `member` holds `dn` (the computed memberOf).
fn groups_of<T: StoreRead>(
    txn: &T,
    dn: &Dn,
    schema: &Schema,
) -> Result<Vec<Vec<u8>>, BackendError> {
    let filter = Filter::Equality("member".into(), dn.to_string().into_bytes());
    let mut out = Vec::new();
    if let Some(ids) = txn.candidates(&filter).map_err(store_err)? {
        for id in ids {
            if let Some(g) = txn.entry(id).map_err(store_err)? {
                if filter.evaluate(&g, schema).is_true() {
                    out.push(g.dn.to_string().into_bytes());
                }
            }
        }
    }
    Ok(out)
}

/// Meta key of the domain SID (binary, set at provisioning).
pub const META_DOMAIN_SID: &str = "domain_sid";
const META_NEXT_RID: &str = "next_rid";
const FIRST_RID: u64 = 1100;

fn next_counter(txn: &mut WriteTxn, key: &str, first: u64) -> Result<u64, BackendError> {
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
fn rid_in_domain(domain_sid: &[u8], sid: &[u8]) -> Option<u32> {
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

fn count_users<T: StoreRead>(txn: &T) -> Result<u64, BackendError> {
    count_user_ids(txn.candidates(&user_filter()).map_err(store_err)?)
}

fn user_filter() -> Filter {
    // Users are user (minus computers), posixAccount or inetOrgPerson objects; the objectClass
    // index answers this without touching entries.
    Filter::Or(vec![
        Filter::Equality("objectClass".into(), b"user".to_vec()),
        Filter::Equality("objectClass".into(), b"posixAccount".to_vec()),
        Filter::Equality("objectClass".into(), b"inetOrgPerson".to_vec()),
    ])
}

fn count_user_ids(ids: Option<Vec<EntryId>>) -> Result<u64, BackendError> {
    ids.map(|v| v.len() as u64)
        .ok_or_else(|| BackendError::Store("objectClass is not indexed".into()))
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
    COMPUTED
        .iter()
        .any(|c| c.eq_ignore_ascii_case(base_attr(a)))
}

fn check_rdn_present(e: &Entry) -> Result<(), BackendError> {
    if let Some(rdn) = e.dn.rdn() {
        for ava in &rdn.avas {
            if !e.has(&ava.attr) {
                // RFC 4511 §4.7: the RDN's values are part of the entry; add them for the client.
                return Err(BackendError::Naming(format!(
                    "RDN attribute {} missing from entry",
                    ava.attr
                )));
            }
        }
    }
    Ok(())
}

fn has_value(e: &Entry, attr: &str, v: &[u8], schema: &Schema) -> bool {
    let want = schema.normalize(attr, v);
    e.values(attr)
        .iter()
        .any(|x| schema.normalize(attr, x) == want)
}

fn remove_value(e: &mut Entry, attr: &str, v: &[u8], schema: &Schema) {
    let want = schema.normalize(attr, v);
    let kept: Vec<Vec<u8>> = e
        .values(attr)
        .iter()
        .filter(|x| schema.normalize(attr, x) != want)
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
    BackendError::Store(e.to_string())
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
