//! Attribute indexes: which index keys an entry produces, and which entry ids a filter may
//! match (a superset, from the index tables). May import: `model`, `store`.
//!
//! Invariants:
//! - Index attribute names are the schema's canonical name, ASCII-lowercased, without
//!   `;options` (a value of `cn;lang-en` is indexed under `cn`, which keeps every lookup a
//!   superset, RFC 4512 §2.5).
//! - A value's key is `schema.normalize(attr, value)`. Values the schema cannot normalise
//!   (unknown attribute, or a value its syntax rejects) are indexed under their ASCII-lowercased
//!   raw bytes instead of being skipped; lookups apply the same rule to the assertion value, so
//!   the two sides always agree on the key.
//! - `candidates` never leaves out an entry that could match: `None` means "not answerable from
//!   the indexes, scan"; `Some(ids)` is sorted, deduplicated, and may contain non-matches.
//! - Secret attributes (`Schema::is_secret`) are never indexed, whatever the configuration, and
//!   no index is read for them: a filter item on a secret is Undefined for every entry
//!   (`model::filter`), so its candidate set is empty without looking at any data.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::model::entry::Entry;
use crate::model::filter::{base_attr, Filter};
use crate::model::schema::Schema;

use super::sealed::Source;
use super::{EntryId, StoreError};

/// Which attributes get which index. Names may be given in any case or by alias; they are
/// canonicalised with the schema when the store opens. Changing this between runs makes
/// `Store::open` rebuild the index tables.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexConfig {
    /// Attributes with an equality index (`(attr=value)`, `DnIn`, `initial` substrings).
    pub equality: Vec<String>,
    /// Attributes with a presence index (`(attr=*)`).
    pub presence: Vec<String>,
    /// Attributes with a trigram substring index (`(attr=*abc*)`).
    pub substring: Vec<String>,
}

impl IndexConfig {
    /// The indexes a directory serving LDAP, SSSD/nss and AD-style clients needs.
    pub fn default_attrs() -> IndexConfig {
        let eq: Vec<String> = [
            "objectClass",
            "cn",
            "uid",
            "sAMAccountName",
            "userPrincipalName",
            "mail",
            "member",
            "memberUid",
            "uidNumber",
            "gidNumber",
            "objectSid",
            "objectGUID",
            "servicePrincipalName",
            "entryUUID",
            // DN-valued links whose values follow renames and deletes (`backend::links`).
            "msDS-PSOAppliesTo",
            "manager",
            "managedBy",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let sub = [
            "cn",
            "uid",
            "sAMAccountName",
            "mail",
            "userPrincipalName",
            "displayName",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        IndexConfig {
            presence: eq.clone(),
            equality: eq,
            substring: sub,
        }
    }

    /// No indexes at all (every filter scans).
    pub fn none() -> IndexConfig {
        IndexConfig {
            equality: Vec::new(),
            presence: Vec::new(),
            substring: Vec::new(),
        }
    }
}

/// The three index tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IndexKind {
    /// `idx_eq`
    Equality,
    /// `idx_pres`
    Presence,
    /// `idx_sub`
    Substring,
}

/// One row key in one index table.
pub type IndexKey = (IndexKind, Vec<u8>);

/// An `IndexConfig` resolved against the schema: canonical lowercase names.
#[derive(Debug, Clone)]
pub struct IndexPlan {
    equality: HashSet<String>,
    presence: HashSet<String>,
    substring: HashSet<String>,
}

impl IndexPlan {
    /// Canonicalises the configured names.
    pub(super) fn new(schema: &Schema, cfg: &IndexConfig) -> IndexPlan {
        // An index on a secret would answer presence and equality from the hash.
        let canon = |names: &[String]| {
            names
                .iter()
                .filter(|n| !schema.is_secret(n))
                .map(|n| attr_key(schema, n))
                .collect()
        };
        IndexPlan {
            equality: canon(&cfg.equality),
            presence: canon(&cfg.presence),
            substring: canon(&cfg.substring),
        }
    }

    /// A stable description of the plan, stored in meta; a different fingerprint at open
    /// means the index tables were built for another configuration and must be rebuilt.
    pub(super) fn fingerprint(&self) -> Vec<u8> {
        let list = |set: &HashSet<String>| {
            let mut v: Vec<&str> = set.iter().map(String::as_str).collect();
            v.sort_unstable();
            v.join(",")
        };
        format!(
            "keys={KEY_DERIVATION_VERSION};eq={};pres={};sub={}",
            list(&self.equality),
            list(&self.presence),
            list(&self.substring)
        )
        .into_bytes()
    }

    /// True if `attr` (canonical lowercase) has an equality index.
    pub(super) fn has_equality(&self, attr: &str) -> bool {
        self.equality.contains(attr)
    }
}

/// The index name of an attribute description: options stripped, canonical name, lowercase.
pub(super) fn attr_key(schema: &Schema, desc: &str) -> String {
    let base = base_attr(desc);
    schema
        .canonical_name(base)
        .unwrap_or(base)
        .to_ascii_lowercase()
}

/// The normalised key of one value (see the module invariants for the fallback).
pub(super) fn value_key(schema: &Schema, attr: &str, value: &[u8]) -> Vec<u8> {
    schema
        .normalize(attr, value)
        .unwrap_or_else(|| value.to_ascii_lowercase())
}

/// `attr` 0x00 `rest`: the key layout of the equality and substring tables.
pub(super) fn joined(attr: &str, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(attr.len() + 1 + rest.len());
    k.extend_from_slice(attr.as_bytes());
    k.push(0);
    k.extend_from_slice(rest);
    k
}

/// Every index row key `entry` needs under `plan`.
pub(super) fn index_keys(schema: &Schema, plan: &IndexPlan, entry: &Entry) -> BTreeSet<IndexKey> {
    let mut keys = BTreeSet::new();
    // The index name of each attribute (`attr_key`), built in one reused buffer: this runs
    // for every entry written.
    let mut name = String::new();
    for attr in entry.attrs() {
        if attr.values.is_empty() {
            continue;
        }
        let base = base_attr(&attr.name);
        name.clear();
        name.push_str(schema.canonical_name(base).unwrap_or(base));
        name.make_ascii_lowercase();
        let a = name.as_str();
        let eq = plan.equality.contains(a);
        let sub = plan.substring.contains(a);
        if plan.presence.contains(a) {
            keys.insert((IndexKind::Presence, a.as_bytes().to_vec()));
        }
        if !eq && !sub {
            continue;
        }
        for v in &attr.values {
            let k = value_key(schema, a, v);
            if sub {
                for gram in k.windows(TRIGRAM) {
                    keys.insert((IndexKind::Substring, joined(a, gram)));
                }
            }
            if eq {
                keys.insert((IndexKind::Equality, joined(a, &k)));
            }
        }
    }
    keys
}

/// A sorted, deduplicated superset of the ids matching `filter`, or `None` if the indexes
/// cannot bound it (the caller must scan). RFC 4511 §4.5.1.7 semantics: an entry can only
/// match an And if it matches every part, an Or if it matches some part.
pub(super) fn candidates<S: Source + ?Sized>(
    src: &S,
    filter: &Filter,
) -> Result<Option<Vec<EntryId>>, StoreError> {
    let ctx = src.ctx();
    let schema = &*ctx.schema;
    let plan = &ctx.plan;
    if names_secret(schema, filter) {
        // Undefined for every entry: no entry can match, and no index is consulted.
        return Ok(Some(Vec::new()));
    }
    match filter {
        Filter::And(parts) => and_candidates(src, parts),
        Filter::Or(parts) => {
            let mut all = Vec::new();
            for p in parts {
                match candidates(src, p)? {
                    Some(ids) => all.extend(ids),
                    None => return Ok(None),
                }
            }
            all.sort_unstable();
            all.dedup();
            Ok(Some(all))
        }
        Filter::Equality(..) | Filter::Present(..) => match single_key(src, filter) {
            Some((kind, key)) => Ok(Some(src.index_ids(kind, &key)?)),
            None => Ok(None),
        },
        Filter::Substrings {
            attr,
            initial,
            any,
            final_,
        } => substring_candidates(src, attr, initial.as_deref(), any, final_.as_deref()),
        Filter::DnIn { attr, dns } => {
            let a = attr_key(schema, attr);
            if !plan.equality.contains(&a) {
                return Ok(None);
            }
            let mut all = Vec::new();
            for dn in dns {
                // The DNs are already normalised (`Dn::norm`); normalising again is assumed
                // idempotent, which keeps the key identical to the one stored for the value.
                let key = joined(&a, &value_key(schema, &a, dn.as_bytes()));
                all.extend(src.index_ids(IndexKind::Equality, &key)?);
            }
            all.sort_unstable();
            all.dedup();
            Ok(Some(all))
        }
        // Not: the complement of a superset is not a superset. Ordering, approx and extensible
        // matches use rules the equality index does not encode.
        Filter::Not(_)
        | Filter::GreaterOrEqual(..)
        | Filter::LessOrEqual(..)
        | Filter::Approx(..)
        | Filter::Extensible { .. } => Ok(None),
    }
}

/// True if `filter` is a single item (not And/Or/Not) on a secret attribute type.
fn names_secret(schema: &Schema, filter: &Filter) -> bool {
    match filter {
        Filter::Equality(a, _)
        | Filter::Approx(a, _)
        | Filter::GreaterOrEqual(a, _)
        | Filter::LessOrEqual(a, _)
        | Filter::Present(a)
        | Filter::Substrings { attr: a, .. }
        | Filter::DnIn { attr: a, .. }
        | Filter::Extensible { attr: Some(a), .. } => schema.is_secret(a),
        Filter::And(_) | Filter::Or(_) | Filter::Not(_) | Filter::Extensible { attr: None, .. } => {
            false
        }
    }
}

/// The one index row an equality or presence assertion reads, if its attribute is indexed.
fn single_key<S: Source + ?Sized>(src: &S, filter: &Filter) -> Option<IndexKey> {
    let ctx = src.ctx();
    let schema = &*ctx.schema;
    match filter {
        Filter::Equality(attr, value) => {
            let a = attr_key(schema, attr);
            ctx.plan.equality.contains(&a).then(|| {
                (
                    IndexKind::Equality,
                    joined(&a, &value_key(schema, &a, value)),
                )
            })
        }
        Filter::Present(attr) => {
            let a = attr_key(schema, attr);
            ctx.plan
                .presence
                .contains(&a)
                .then(|| (IndexKind::Presence, a.into_bytes()))
        }
        _ => None,
    }
}

/// A part of an And (or a trigram list of a substring) is not read when its list is more
/// than this many times longer than the running intersection: evaluating the few candidates
/// left costs less than reading the long list (an id read is far cheaper than an entry
/// read, so the factor can be generous).
const SKIP_FACTOR: u64 = 8;

/// An upper bound on the number of ids `candidates(filter)` gives, from the index row
/// lengths alone (redb keeps each multimap row's length, so no list is read), or `None` if
/// the indexes cannot bound the filter cheaply. Used to order the parts of an And so that the
/// most selective one is read first and a long one (`objectClass=posixGroup` beside a
/// `memberUid` or `uid` assertion) is never read at all.
fn estimate<S: Source + ?Sized>(src: &S, filter: &Filter) -> Result<Option<u64>, StoreError> {
    let ctx = src.ctx();
    let schema = &*ctx.schema;
    if names_secret(schema, filter) {
        return Ok(Some(0));
    }
    match filter {
        Filter::Equality(..) | Filter::Present(..) => match single_key(src, filter) {
            Some((kind, key)) => Ok(Some(src.index_len(kind, &key)?)),
            None => Ok(None),
        },
        Filter::Or(parts) => {
            let mut sum: u64 = 0;
            for p in parts {
                match estimate(src, p)? {
                    Some(n) => sum = sum.saturating_add(n),
                    None => return Ok(None),
                }
            }
            Ok(Some(sum))
        }
        Filter::And(parts) => {
            let mut best: Option<u64> = None;
            for p in parts {
                if let Some(n) = estimate(src, p)? {
                    best = Some(best.map_or(n, |b| b.min(n)));
                }
            }
            Ok(best)
        }
        Filter::DnIn { attr, dns } => {
            let a = attr_key(schema, attr);
            if !ctx.plan.equality.contains(&a) {
                return Ok(None);
            }
            let mut sum: u64 = 0;
            for dn in dns {
                let key = joined(&a, &value_key(schema, &a, dn.as_bytes()));
                sum = sum.saturating_add(src.index_len(IndexKind::Equality, &key)?);
            }
            Ok(Some(sum))
        }
        Filter::Substrings {
            attr,
            initial,
            any,
            final_,
        } => {
            let a = attr_key(schema, attr);
            let grams = substring_grams(
                schema,
                &ctx.plan,
                &a,
                initial.as_deref(),
                any,
                final_.as_deref(),
            );
            let mut best: Option<u64> = None;
            for g in grams {
                let n = src.index_len(IndexKind::Substring, &joined(&a, &g))?;
                best = Some(best.map_or(n, |b| b.min(n)));
            }
            Ok(best)
        }
        Filter::Not(_)
        | Filter::GreaterOrEqual(..)
        | Filter::LessOrEqual(..)
        | Filter::Approx(..)
        | Filter::Extensible { .. } => Ok(None),
    }
}

/// Candidates of an And: the intersection of its indexed parts, smallest first. Every part is
/// sized first from the index row lengths (`estimate`, no list read), so that
/// `(&(objectClass=posixAccount)(uid=x))` reads the one-id `uid` row and
/// `(&(objectClass=posixGroup)(memberUid=x))` the few ids of the memberUid/member rows, and
/// neither ever reads the objectClass row of every user or group: once the running
/// intersection is short, a part whose list is much longer is left out (the remaining
/// conjuncts are evaluated on the few candidate entries instead). Leaving a part out keeps the
/// result a superset.
fn and_candidates<S: Source + ?Sized>(
    src: &S,
    parts: &[Filter],
) -> Result<Option<Vec<EntryId>>, StoreError> {
    let mut sized: Vec<(u64, &Filter)> = Vec::new();
    let mut others: Vec<&Filter> = Vec::new();
    for p in parts {
        match estimate(src, p)? {
            Some(0) => return Ok(Some(Vec::new())),
            Some(n) => sized.push((n, p)),
            None => others.push(p),
        }
    }
    sized.sort_by_key(|(n, _)| *n);
    let mut acc: Option<Vec<EntryId>> = None;
    for (n, p) in sized {
        if let Some(a) = &acc {
            if n > SKIP_FACTOR.saturating_mul((a.len() as u64).max(1)) {
                break; // sorted: every later part is at least as long
            }
        }
        let Some(ids) = candidates(src, p)? else {
            continue;
        };
        let next = match acc {
            None => ids,
            Some(a) => intersect(&a, &ids),
        };
        if next.is_empty() {
            return Ok(Some(next));
        }
        acc = Some(next);
    }
    for p in others {
        if acc.as_ref().is_some_and(|a| a.len() <= SELECTIVE) {
            break;
        }
        if let Some(ids) = candidates(src, p)? {
            let next = match acc {
                None => ids,
                Some(a) => intersect(&a, &ids),
            };
            if next.is_empty() {
                return Ok(Some(next));
            }
            acc = Some(next);
        }
    }
    Ok(acc)
}

/// Once the running intersection of an And is at most this long, parts the indexes cannot
/// size are not read at all.
const SELECTIVE: usize = 256;

/// The trigrams a substring assertion's pieces require, normalised. A piece the schema cannot
/// normalise adds no constraint (its normalised bytes are unknown), which keeps every use a
/// superset. Empty if the attribute has no substring index.
fn substring_grams(
    schema: &Schema,
    plan: &IndexPlan,
    a: &str,
    initial: Option<&[u8]>,
    any: &[Vec<u8>],
    final_: Option<&[u8]>,
) -> BTreeSet<Vec<u8>> {
    let mut grams: BTreeSet<Vec<u8>> = BTreeSet::new();
    if plan.substring.contains(a) {
        let pieces = initial.into_iter().chain(any.iter().map(Vec::as_slice));
        for piece in pieces.chain(final_) {
            if let Some(norm) = schema.normalize(a, piece) {
                grams.extend(norm.windows(TRIGRAM).map(<[u8]>::to_vec));
            }
        }
    }
    grams
}

/// Substring candidates. An `initial` piece of at least three bytes on an attribute with an
/// equality index is answered by a prefix range of that index first (the values starting
/// with it: exactly the answer of `(attr=initial*)`, so its own trigrams add nothing). Then
/// the trigram lists of the other pieces, shortest first, each only while it is not much
/// longer than the running intersection (`SKIP_FACTOR`): `(cn=user12*)` over 450,000 users
/// reads the few thousand `user12…` ids, never the `use`/`ser` lists of every user.
fn substring_candidates<S: Source + ?Sized>(
    src: &S,
    attr: &str,
    initial: Option<&[u8]>,
    any: &[Vec<u8>],
    final_: Option<&[u8]>,
) -> Result<Option<Vec<EntryId>>, StoreError> {
    let ctx = src.ctx();
    let schema = &*ctx.schema;
    let a = attr_key(schema, attr);
    let eq_indexed = ctx.plan.equality.contains(&a);
    let prefix = initial
        .filter(|_| eq_indexed)
        .and_then(|ini| schema.normalize(&a, ini))
        .filter(|norm| !norm.is_empty());
    let mut acc: Option<Vec<EntryId>> = None;
    let mut rest_initial = initial;
    if let Some(norm) = prefix.as_ref().filter(|n| n.len() >= TRIGRAM) {
        let ids = src.index_prefix_ids(IndexKind::Equality, &joined(&a, norm))?;
        if ids.is_empty() {
            return Ok(Some(ids));
        }
        acc = Some(ids);
        rest_initial = None;
    }
    let grams = substring_grams(schema, &ctx.plan, &a, rest_initial, any, final_);
    let mut sized: Vec<(u64, Vec<u8>)> = Vec::with_capacity(grams.len());
    for g in grams {
        let key = joined(&a, &g);
        let n = src.index_len(IndexKind::Substring, &key)?;
        if n == 0 {
            return Ok(Some(Vec::new()));
        }
        sized.push((n, key));
    }
    sized.sort();
    for (n, key) in sized {
        if let Some(acc) = &acc {
            if n > SKIP_FACTOR.saturating_mul((acc.len() as u64).max(1)) {
                break;
            }
        }
        let ids = src.index_ids(IndexKind::Substring, &key)?;
        let next = match acc {
            None => ids,
            Some(a) => intersect(&a, &ids),
        };
        if next.is_empty() {
            return Ok(Some(next));
        }
        acc = Some(next);
    }
    if acc.is_none() {
        // A short initial piece and nothing else to go by: the (possibly wide) prefix range.
        if let Some(norm) = prefix {
            let ids = src.index_prefix_ids(IndexKind::Equality, &joined(&a, &norm))?;
            acc = Some(ids);
        }
    }
    Ok(acc)
}

/// Intersection of two sorted lists.
fn intersect(a: &[EntryId], b: &[EntryId]) -> Vec<EntryId> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(*x);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Substring index granularity (bytes).
const TRIGRAM: usize = 3;
/// Bumped when `value_key`/`index_keys` derive keys differently; forces a rebuild at open.
const KEY_DERIVATION_VERSION: u32 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreRead;

    #[test]
    fn intersects_sorted_lists() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[2, 3, 7, 9]), vec![3, 7]);
    }

    /// A `Source` that counts the ids it hands out of the index tables: the work of a
    /// candidate computation, which must follow the answer, not the directory (issue 14).
    struct Counting<'a> {
        inner: &'a crate::store::ReadTxn,
        ids_read: std::cell::Cell<usize>,
    }

    impl Source for Counting<'_> {
        fn ctx(&self) -> &crate::store::sealed::Ctx {
            self.inner.ctx()
        }
        fn load(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
            self.inner.load(id)
        }
        fn load_attrs(
            &self,
            id: EntryId,
            names: &[&str],
            into: &mut Entry,
        ) -> Result<bool, StoreError> {
            self.inner.load_attrs(id, names, into)
        }
        fn load_dn(&self, id: EntryId) -> Result<Option<crate::model::Dn>, StoreError> {
            self.inner.load_dn(id)
        }
        fn lookup_dn(&self, norm: &str) -> Result<Option<EntryId>, StoreError> {
            self.inner.lookup_dn(norm)
        }
        fn child_ids(&self, id: EntryId) -> Result<Vec<EntryId>, StoreError> {
            self.inner.child_ids(id)
        }
        fn has_child(&self, id: EntryId) -> Result<bool, StoreError> {
            self.inner.has_child(id)
        }
        fn index_ids(&self, kind: IndexKind, key: &[u8]) -> Result<Vec<EntryId>, StoreError> {
            let ids = self.inner.index_ids(kind, key)?;
            self.ids_read.set(self.ids_read.get() + ids.len());
            Ok(ids)
        }
        fn index_len(&self, kind: IndexKind, key: &[u8]) -> Result<u64, StoreError> {
            self.inner.index_len(kind, key)
        }
        fn index_prefix_ids(
            &self,
            kind: IndexKind,
            prefix: &[u8],
        ) -> Result<Vec<EntryId>, StoreError> {
            let ids = self.inner.index_prefix_ids(kind, prefix)?;
            self.ids_read.set(self.ids_read.get() + ids.len());
            Ok(ids)
        }
        fn scan_all(&self, f: &mut dyn FnMut(EntryId, Entry) -> bool) -> Result<(), StoreError> {
            self.inner.scan_all(f)
        }
        fn entry_count(&self) -> Result<u64, StoreError> {
            self.inner.entry_count()
        }
        fn current_usn(&self) -> Result<u64, StoreError> {
            self.inner.current_usn()
        }
        fn meta_value(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.meta_value(key)
        }
    }

    /// 2,000 inetOrgPerson/posixAccount users `userN` and 400 groupOfNames/posixGroup groups
    /// of 20 (`member` and explicit `memberUid`, round-robin: every user is in 4 groups), as an
    /// OpenLDAP import holds them.
    fn openldap_like() -> (tempfile::TempDir, crate::store::Store) {
        use crate::model::Dn;
        let dir = tempfile::tempdir().unwrap();
        let schema = std::sync::Arc::new(Schema::builtin().unwrap());
        let store = crate::store::Store::open(
            &dir.path().join("i.redb"),
            schema,
            IndexConfig::default_attrs(),
        )
        .unwrap();
        let mut w = store.write().unwrap();
        let entry = |dn: &str, classes: &[&str]| {
            let mut e = Entry::new(Dn::parse(dn).unwrap());
            for c in classes {
                e.push("objectClass", c.as_bytes().to_vec());
            }
            e
        };
        w.add(&entry("dc=example,dc=com", &["domain"])).unwrap();
        w.add(&entry(
            "ou=People,dc=example,dc=com",
            &["organizationalUnit"],
        ))
        .unwrap();
        w.add(&entry(
            "ou=Groups,dc=example,dc=com",
            &["organizationalUnit"],
        ))
        .unwrap();
        for n in 1..=2000 {
            let mut e = entry(
                &format!("cn=user{n},ou=People,dc=example,dc=com"),
                &["inetOrgPerson", "posixAccount"],
            );
            e.set_str("cn", &format!("user{n}"));
            e.set_str("uid", &format!("user{n}"));
            w.add(&e).unwrap();
        }
        for g in 0..400u64 {
            let mut e = entry(
                &format!("cn=group{g},ou=Groups,dc=example,dc=com"),
                &["groupOfNames", "posixGroup"],
            );
            e.set_str("cn", &format!("group{g}"));
            for k in 0..20 {
                let u = (g * 20 + k) % 2000 + 1;
                e.push(
                    "member",
                    format!("cn=user{u},ou=People,dc=example,dc=com").into_bytes(),
                );
                e.push("memberUid", format!("user{u}").into_bytes());
            }
            w.add(&e).unwrap();
        }
        w.commit().unwrap();
        (dir, store)
    }

    fn eq(a: &str, v: &str) -> Filter {
        Filter::Equality(a.into(), v.as_bytes().to_vec())
    }

    /// The sssd pair (issue 14): the objectClass conjunct names every user or every group; it
    /// must never be read when the other conjunct names a handful of entries, whatever
    /// shape that conjunct has (the backend turns `(memberUid=x)` into an Or with a `member`
    /// DnIn).
    #[test]
    fn and_reads_the_selective_part_not_the_objectclass_list() {
        let (_dir, store) = openldap_like();
        let txn = store.read().unwrap();
        let src = Counting {
            inner: &txn,
            ids_read: std::cell::Cell::new(0),
        };
        let user = Filter::And(vec![eq("objectClass", "posixAccount"), eq("uid", "user7")]);
        let ids = candidates(&src, &user).unwrap().unwrap();
        assert_eq!(ids.len(), 1);
        assert!(src.ids_read.get() <= 2, "read {} ids", src.ids_read.get());

        src.ids_read.set(0);
        let dns: HashSet<String> = ["cn=user7,ou=people,dc=example,dc=com".to_string()].into();
        let groups = Filter::And(vec![
            eq("objectClass", "posixGroup"),
            Filter::Or(vec![
                eq("memberUid", "user7"),
                Filter::DnIn {
                    attr: "member".into(),
                    dns,
                },
            ]),
        ]);
        let ids = candidates(&src, &groups).unwrap().unwrap();
        // user7 is in 4 groups (found through memberUid and through member).
        assert_eq!(ids.len(), 4);
        assert!(
            src.ids_read.get() <= 16,
            "read {} ids for 4 groups (400 posixGroup ids would be the cliff)",
            src.ids_read.get()
        );
    }

    /// `(cn=user12*)`: the candidates are the `user12…` values (111 of 2,000), read from
    /// the prefix range; the trigram lists `use`/`ser` of every user are never read.
    #[test]
    fn initial_substring_reads_the_prefix_not_every_trigram_list() {
        let (_dir, store) = openldap_like();
        let txn = store.read().unwrap();
        let src = Counting {
            inner: &txn,
            ids_read: std::cell::Cell::new(0),
        };
        let f = Filter::Substrings {
            attr: "cn".into(),
            initial: Some(b"user12".to_vec()),
            any: Vec::new(),
            final_: None,
        };
        let ids = candidates(&src, &f).unwrap().unwrap();
        assert_eq!(ids.len(), 111); // user12, user120..129, user1200..1299
        assert!(src.ids_read.get() <= 400, "read {} ids", src.ids_read.get());
        // Still a superset with any/final pieces, and still bounded.
        src.ids_read.set(0);
        let f = Filter::Substrings {
            attr: "cn".into(),
            initial: Some(b"user1".to_vec()),
            any: vec![b"99".to_vec()],
            final_: Some(b"9".to_vec()),
        };
        let ids = candidates(&src, &f).unwrap().unwrap();
        let dn = crate::model::Dn::parse("cn=user1999,ou=People,dc=example,dc=com").unwrap();
        let id = txn.id_of(&dn).unwrap().unwrap();
        assert!(ids.contains(&id), "user1999 missing");
        assert!(
            src.ids_read.get() <= 2000,
            "read {} ids",
            src.ids_read.get()
        );
    }

    #[test]
    fn keys_cover_equality_presence_and_trigrams() {
        let schema = Schema::builtin().unwrap();
        let plan = IndexPlan::new(&schema, &IndexConfig::default_attrs());
        let mut e = Entry::new(crate::model::Dn::parse("uid=ab,dc=x").unwrap());
        e.set_str("uid", "ABcd");
        e.set_str("description", "not indexed");
        let keys = index_keys(&schema, &plan, &e);
        assert!(keys.contains(&(IndexKind::Presence, b"uid".to_vec())));
        assert!(keys.contains(&(IndexKind::Equality, b"uid\0abcd".to_vec())));
        assert!(keys.contains(&(IndexKind::Substring, b"uid\0abc".to_vec())));
        assert!(keys.contains(&(IndexKind::Substring, b"uid\0bcd".to_vec())));
        assert_eq!(keys.len(), 4);
    }
}
