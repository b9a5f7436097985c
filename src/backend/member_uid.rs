//! Explicit `memberUid` values of a new group (an OpenLDAP `posixGroup` arriving by LDAP add
//! or `dird import`) become `member` links where they name a user. May import: `model`,
//! `store`. Runs inside the adding write transaction.
//!
//! dird serves a group's memberUid as its stored values plus the POSIX name (uid, else
//! sAMAccountName) of every user in `member`. A stored value naming a user is therefore
//! served either way, but only a `member` link makes that membership visible to memberOf,
//! tokenGroups, LDAP_MATCHING_RULE_IN_CHAIN and nested groups, and only a link follows the
//! user through renames and is removed when the user is deleted. So: each memberUid value
//! that names exactly one user becomes a `member` value (the user's DN) and is no longer
//! stored; values that name nobody (a user not imported yet, a local account of one host)
//! or several users stay stored as they are, and are still served. Nothing is dropped.
//! If the group's classes do not allow `member`, the entry is left as it came.
//! Users come before their groups in slapcat output; a user added after the group is not
//! linked (its name stays a stored memberUid value, still served).

use crate::model::{Dn, Entry, Filter, Schema};
use crate::store::{StoreError, StoreRead};

/// Converts `e`'s memberUid values that name exactly one user into `member` values; returns
/// how many were converted.
pub(super) fn convert<T: StoreRead>(
    txn: &T,
    schema: &Schema,
    e: &mut Entry,
) -> Result<usize, StoreError> {
    let uids = e.values("memberUid").to_vec();
    if uids.is_empty() {
        return Ok(0);
    }
    let mut members: Vec<Vec<u8>> = e.values("member").to_vec();
    let mut member_norms: Vec<String> = members
        .iter()
        .filter_map(|m| std::str::from_utf8(m).ok().and_then(|s| Dn::parse(s).ok()))
        .map(|d| d.norm().to_string())
        .collect();
    let mut kept = Vec::new();
    let mut converted = 0;
    for uid in uids {
        match user_named(txn, schema, &uid)? {
            Some(dn) => {
                if !member_norms.iter().any(|n| n == dn.norm()) {
                    member_norms.push(dn.norm().to_string());
                    members.push(dn.to_string().into_bytes());
                }
                converted += 1;
            }
            None => kept.push(uid),
        }
    }
    if converted == 0 {
        return Ok(0);
    }
    let mut candidate = e.clone();
    candidate.set("member", members);
    if kept.is_empty() {
        candidate.remove("memberUid");
    } else {
        candidate.set("memberUid", kept);
    }
    if schema.check_entry(&candidate).is_err() {
        return Ok(0);
    }
    *e = candidate;
    Ok(converted)
}

/// The DN of the one user whose POSIX name is `name` (memberUid matching), if exactly one.
fn user_named<T: StoreRead>(
    txn: &T,
    schema: &Schema,
    name: &[u8],
) -> Result<Option<Dn>, StoreError> {
    let f = Filter::Or(vec![
        Filter::Equality("uid".into(), name.to_vec()),
        Filter::Equality("sAMAccountName".into(), name.to_vec()),
    ]);
    // Without uid/sAMAccountName indexes, keep the value as it is rather than scan.
    let Some(ids) = txn.candidates(&f)? else {
        return Ok(None);
    };
    let want = schema.normalize("memberUid", name);
    let mut found: Option<Dn> = None;
    for id in ids {
        // Only what the test below reads: the classes and the POSIX name (the DN comes along).
        let mut keep = |name: &str| {
            ["objectClass", "uid", "sAMAccountName"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(name))
        };
        let Some(u) = txn.entry_projected(id, &mut keep)? else {
            continue;
        };
        if !super::local::is_user(&u) {
            continue;
        }
        let Some(n) = super::local::posix_name(&u) else {
            continue;
        };
        if schema.normalize("memberUid", n.as_bytes()) != want {
            continue;
        }
        if found.as_ref().is_some_and(|d| *d != u.dn) {
            return Ok(None); // ambiguous: keep the value
        }
        found = Some(u.dn);
    }
    Ok(found)
}
