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
    for attr in entry.attrs() {
        if attr.values.is_empty() {
            continue;
        }
        let a = attr_key(schema, &attr.name);
        let eq = plan.equality.contains(&a);
        let sub = plan.substring.contains(&a);
        if plan.presence.contains(&a) {
            keys.insert((IndexKind::Presence, a.as_bytes().to_vec()));
        }
        if !eq && !sub {
            continue;
        }
        for v in &attr.values {
            let k = value_key(schema, &a, v);
            if sub {
                for gram in k.windows(TRIGRAM) {
                    keys.insert((IndexKind::Substring, joined(&a, gram)));
                }
            }
            if eq {
                keys.insert((IndexKind::Equality, joined(&a, &k)));
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

/// Once the running intersection of an And is at most this long, further parts are read
/// only if their lists are short too (see `and_candidates`).
const SELECTIVE: usize = 256;
/// A part whose list is more than this many times longer than a selective running
/// intersection is not read: evaluating the few candidates costs less than reading it.
const SKIP_FACTOR: u64 = 8;

/// Candidates of an And: the intersection of its indexed parts, smallest first. Equality
/// and presence parts are sized first (one index read each, without reading their lists),
/// so that `(&(objectClass=user)(uid=x))` reads the one-id `uid` row and never the
/// objectClass row of every user. Leaving a part out keeps the result a superset.
fn and_candidates<S: Source + ?Sized>(
    src: &S,
    parts: &[Filter],
) -> Result<Option<Vec<EntryId>>, StoreError> {
    let mut sized: Vec<(u64, IndexKey)> = Vec::new();
    let mut others: Vec<&Filter> = Vec::new();
    for p in parts {
        match single_key(src, p) {
            Some((kind, key)) => {
                let n = src.index_len(kind, &key)?;
                if n == 0 {
                    return Ok(Some(Vec::new()));
                }
                sized.push((n, (kind, key)));
            }
            None => others.push(p),
        }
    }
    sized.sort_by_key(|(n, _)| *n);
    let mut acc: Option<Vec<EntryId>> = None;
    for (n, (kind, key)) in sized {
        if let Some(a) = &acc {
            if a.len() <= SELECTIVE && n > SKIP_FACTOR * (a.len() as u64).max(1) {
                break; // sorted: every later part is at least as long
            }
        }
        let ids = src.index_ids(kind, &key)?;
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
                Some(a) => intersect_all(vec![a, ids]).unwrap_or_default(),
            };
            if next.is_empty() {
                return Ok(Some(next));
            }
            acc = Some(next);
        }
    }
    Ok(acc)
}

/// Substring candidates: every trigram of every (normalised) piece must be present; an
/// `initial` part can also use a prefix range of the equality index.
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
    let mut sets = Vec::new();
    if ctx.plan.substring.contains(&a) {
        let mut grams: BTreeSet<Vec<u8>> = BTreeSet::new();
        let pieces = initial.into_iter().chain(any.iter().map(Vec::as_slice));
        for piece in pieces.chain(final_) {
            // A piece the schema cannot normalise adds no constraint (we cannot know its
            // normalised bytes), which keeps the result a superset.
            if let Some(norm) = schema.normalize(&a, piece) {
                grams.extend(norm.windows(TRIGRAM).map(<[u8]>::to_vec));
            }
        }
        for g in grams {
            let ids = src.index_ids(IndexKind::Substring, &joined(&a, &g))?;
            if ids.is_empty() {
                return Ok(Some(ids));
            }
            sets.push(ids);
        }
    }
    if let Some(ini) = initial {
        if ctx.plan.equality.contains(&a) {
            if let Some(norm) = schema.normalize(&a, ini) {
                // A short prefix range may be wide; use it only when it is selective or the
                // only constraint available.
                if !norm.is_empty() && (sets.is_empty() || norm.len() >= TRIGRAM) {
                    let ids = src.index_prefix_ids(IndexKind::Equality, &joined(&a, &norm))?;
                    if ids.is_empty() {
                        return Ok(Some(ids));
                    }
                    sets.push(ids);
                }
            }
        }
    }
    Ok(intersect_all(sets))
}

/// Intersection of sorted, deduplicated id lists; `None` for no lists.
fn intersect_all(mut sets: Vec<Vec<EntryId>>) -> Option<Vec<EntryId>> {
    sets.sort_by_key(Vec::len);
    let mut iter = sets.into_iter();
    let mut acc = iter.next()?;
    for other in iter {
        if acc.is_empty() {
            break;
        }
        acc = intersect(&acc, &other);
    }
    Some(acc)
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

    #[test]
    fn intersects_sorted_lists() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[2, 3, 7, 9]), vec![3, 7]);
        assert_eq!(
            intersect_all(vec![vec![1, 2, 3], vec![2, 3], vec![3, 4]]),
            Some(vec![3])
        );
        assert_eq!(intersect_all(vec![]), None);
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
