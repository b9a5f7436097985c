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
}
