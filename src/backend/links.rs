//! Referential integrity of DN-valued links (issue 9 item 5): the one list of link
//! attributes dird follows, which entries link to a set of DNs, and how a link value is
//! rewritten when its target is renamed, moved (with its subtree) or deleted.
//! May import: `model`, `store`. Pure helpers plus index reads; the caller (`backend::local`)
//! applies the rewrites inside the same write transaction as the rename or delete, as AD
//! keeps its forward links.
//!
//! Invariant: every attribute in [`LINK_ATTRS`] has an equality index in
//! `IndexConfig::default_attrs` (the config can only add indexes), so finding the entries
//! that link to a DN is one index read per attribute and DN; without the index (a store
//! opened with another configuration) the lookup falls back to a scan rather than missing a
//! link.

use crate::model::filter::Filter;
use crate::model::{Dn, Entry, Schema};
use crate::store::{EntryId, StoreError, StoreRead};

/// The DN-valued attributes whose values follow their target: group membership, the
/// password settings objects' targets (`directory::policy` reads them), and AD's manager
/// links. Each must be equality-indexed (see the module invariant).
pub const LINK_ATTRS: &[&str] = &["member", "msDS-PSOAppliesTo", "manager", "managedBy"];

/// Ids of the entries with a link value naming one of `dns`, sorted and deduplicated.
pub fn referencing<T: StoreRead>(
    txn: &T,
    schema: &Schema,
    dns: &[Dn],
) -> Result<Vec<EntryId>, StoreError> {
    let mut ids = Vec::new();
    let mut unindexed = Vec::new();
    for attr in LINK_ATTRS {
        for dn in dns {
            match txn.equality_ids(attr, dn.to_string().as_bytes())? {
                Some(found) => ids.extend(found),
                None => unindexed.push(Filter::Equality(
                    (*attr).to_string(),
                    dn.to_string().into_bytes(),
                )),
            }
        }
    }
    if !unindexed.is_empty() {
        let any = Filter::Or(unindexed);
        match txn.candidates(&any)? {
            Some(found) => {
                for id in found {
                    if let Some(e) = txn.entry(id)? {
                        if any.evaluate(&e, schema).is_true() {
                            ids.push(id);
                        }
                    }
                }
            }
            None => txn.scan(&mut |id, e| {
                if any.evaluate(&e, schema).is_true() {
                    ids.push(id);
                }
                true
            })?,
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Rewrites the link values of `e` that name `old` or an entry below it: to the same place
/// below `new` (a rename or move), or away (`new` = None, a delete). Values that do not parse
/// as DNs are kept as they are. Returns whether anything changed.
pub fn rewrite(e: &mut Entry, old: &Dn, new: Option<&Dn>) -> bool {
    let mut changed = false;
    for attr in LINK_ATTRS {
        let current = e.values(attr);
        if current.is_empty() {
            continue;
        }
        let mut values = Vec::with_capacity(current.len());
        let mut touched = false;
        for v in current {
            let parsed = std::str::from_utf8(v).ok().and_then(|t| Dn::parse(t).ok());
            match (parsed, new) {
                (Some(d), Some(new)) if d.is_within(old) => {
                    touched = true;
                    if let Some(moved) = d.rebase(old, new) {
                        let moved = moved.to_string().into_bytes();
                        if !values.contains(&moved) {
                            values.push(moved);
                        }
                    }
                }
                (Some(d), None) if d.is_within(old) => touched = true,
                _ => values.push(v.clone()),
            }
        }
        if touched {
            e.set(attr, values); // keeps the attribute's display name
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    #[test]
    fn rewrites_every_link_attribute_below_the_old_name() {
        let mut e = Entry::new(dn("cn=pso,cn=System,dc=x"));
        e.set_str("msDS-PSOAppliesTo", "CN=Alice,ou=Old,dc=x");
        e.push("msDS-PSOAppliesTo", b"cn=devs,dc=x".to_vec());
        e.set_str("manager", "cn=bob,ou=Old,dc=x");
        e.set_str("description", "cn=alice,ou=Old,dc=x");
        assert!(rewrite(
            &mut e,
            &dn("ou=old,dc=x"),
            Some(&dn("ou=New,dc=x"))
        ));
        assert_eq!(
            e.values("msDS-PSOAppliesTo"),
            &[b"CN=Alice,ou=New,dc=x".to_vec(), b"cn=devs,dc=x".to_vec()]
        );
        assert_eq!(e.first_str("manager"), Some("cn=bob,ou=New,dc=x"));
        // not a link attribute: untouched
        assert_eq!(e.first_str("description"), Some("cn=alice,ou=Old,dc=x"));
        // delete
        assert!(rewrite(&mut e, &dn("cn=alice,ou=new,dc=x"), None));
        assert_eq!(e.values("msDS-PSOAppliesTo"), &[b"cn=devs,dc=x".to_vec()]);
        assert!(!rewrite(&mut e, &dn("cn=nobody,dc=x"), None));
    }

    #[test]
    fn link_attributes_are_indexed_and_an_old_file_gets_the_index_at_open() {
        use crate::store::{IndexConfig, Store};
        let schema = std::sync::Arc::new(Schema::builtin().unwrap());
        let defaults = IndexConfig::default_attrs();
        for attr in LINK_ATTRS {
            assert!(
                defaults
                    .equality
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(attr)),
                "{attr}"
            );
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("old.redb");
        // A file written with the index list of a build before the link attributes were
        // indexed.
        let mut old = defaults.clone();
        old.equality.retain(|a| a != "msDS-PSOAppliesTo");
        old.presence.retain(|a| a != "msDS-PSOAppliesTo");
        let target = dn("cn=alice,dc=x");
        {
            let store = Store::open(&path, schema.clone(), old).unwrap();
            let mut pso = Entry::new(dn("cn=pso,dc=x"));
            pso.set_str("objectClass", "msDS-PasswordSettings");
            pso.set_str("msDS-PSOAppliesTo", "cn=alice,dc=x");
            let mut txn = store.write().unwrap();
            txn.add(&pso).unwrap();
            txn.commit().unwrap();
            let txn = store.read().unwrap();
            assert_eq!(
                txn.equality_ids("msDS-PSOAppliesTo", b"cn=alice,dc=x")
                    .unwrap(),
                None
            );
            // not indexed: still found, by the fallback
            assert_eq!(
                referencing(&txn, &schema, std::slice::from_ref(&target))
                    .unwrap()
                    .len(),
                1
            );
        }
        let store = Store::open(&path, schema.clone(), defaults).unwrap();
        let txn = store.read().unwrap();
        let ids = txn
            .equality_ids("msDS-PSOAppliesTo", b"CN=Alice,DC=x")
            .unwrap();
        assert_eq!(ids.map(|v| v.len()), Some(1), "rebuilt at open");
        assert_eq!(referencing(&txn, &schema, &[target]).unwrap().len(), 1);
    }
}
