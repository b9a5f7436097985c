//! Modify semantics (RFC 4511 §4.6, RFC 4525 increment): applies a list of modifications
//! to an entry with set semantics decided by each attribute's equality rule.
//! May import: std, `model::{entry, schema, matching, filter}`.
//! Invariants: all-or-nothing — on error the entry is left exactly as it was; values are
//! compared through the schema's equality rule (octets when a type has none). Schema
//! conformance of the result (MUST/MAY, syntax, single-value) is the caller's next step
//! (`Schema::check_entry`); this module maps nothing to LDAP result codes.

use crate::model::entry::{Entry, ModOp, Modification};
use crate::model::matching;
use crate::model::schema::{AttributeType, Schema};

/// Why a modification list cannot be applied. The LDAP layer maps each to a result code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModifyError {
    /// noSuchAttribute (16): delete of a missing value or attribute, increment of a
    /// missing attribute.
    #[error("no such attribute: {0}")]
    NoSuchAttribute(String),
    /// undefinedAttributeType (17)
    #[error("undefined attribute type: {0}")]
    UndefinedAttribute(String),
    /// constraintViolation (19): NO-USER-MODIFICATION attribute, bad increment.
    #[error("constraint violation: {0}")]
    Constraint(String),
    /// attributeOrValueExists (20): add of a value already present (or given twice).
    #[error("attribute or value exists: {0}")]
    AttributeOrValueExists(String),
    /// notAllowedOnRDN (67): the change removes a value the entry's RDN names.
    #[error("not allowed on RDN: {0}")]
    NotAllowedOnRdn(String),
    /// objectClassModsProhibited (69): the structural object class would change
    /// (RFC 4512 §2.4.2).
    #[error("object class modifications prohibited: {0}")]
    ObjectClassModsProhibited(String),
    /// protocolError (2): an add or increment without values.
    #[error("protocol error: {0}")]
    NoValues(String),
}

/// Applies `mods` in order to `entry` (RFC 4511 §4.6: the whole list succeeds or the entry
/// is unchanged). `internal` is true for the server's own writes (timestamps, computed
/// attributes, key material), which may touch NO-USER-MODIFICATION attributes and change
/// the structural class. New attributes are stored under their canonical name.
pub fn apply(
    entry: &mut Entry,
    mods: &[Modification],
    schema: &Schema,
    internal: bool,
) -> Result<(), ModifyError> {
    let before = if internal {
        None
    } else {
        schema.structural_class(entry)
    };
    let mut work = entry.clone();
    let mut touched: Vec<usize> = Vec::new();
    for m in mods {
        let idx = schema
            .attr_idx(&m.attr)
            .ok_or_else(|| ModifyError::UndefinedAttribute(m.attr.clone()))?;
        let at = schema.attr_at(idx);
        if at.no_user_modification && !internal {
            return Err(ModifyError::Constraint(format!(
                "{} is not user-modifiable",
                at.name()
            )));
        }
        touched.push(idx);
        let key = stored_key(&work, at);
        match m.op {
            ModOp::Add => add(&mut work, schema, at, &key, &m.values)?,
            ModOp::Delete => delete(&mut work, schema, at, &key, &m.values)?,
            ModOp::Replace => {
                check_distinct(schema, at, &m.values)?;
                remove_all(&mut work, at);
                if !m.values.is_empty() {
                    work.set(&key, m.values.clone());
                }
            }
            ModOp::Increment => increment(&mut work, at, &key, &m.values)?,
        }
    }
    // RFC 4511 §4.6: a modify must not remove the values named in the RDN.
    if let Some(rdn) = entry.dn.rdn() {
        for ava in &rdn.avas {
            let Some(idx) = schema.attr_idx(&ava.attr) else {
                continue;
            };
            if !touched.contains(&idx) {
                continue;
            }
            let at = schema.attr_at(idx);
            let want = schema.value_key(at, ava.value.as_bytes());
            let kept = values(&work, at).any(|v| schema.value_key(at, v) == want);
            if !kept {
                return Err(ModifyError::NotAllowedOnRdn(format!(
                    "{}={}",
                    ava.attr, ava.value
                )));
            }
        }
    }
    if let Some(old) = before {
        let new = schema.structural_class(&work);
        if new
            .as_deref()
            .is_some_and(|n| !n.eq_ignore_ascii_case(&old))
        {
            return Err(ModifyError::ObjectClassModsProhibited(format!(
                "structural class {old} cannot change"
            )));
        }
    }
    *entry = work;
    Ok(())
}

/// The key the entry stores the attribute under (an alias the entry already uses), or
/// the canonical name for a new attribute.
fn stored_key(entry: &Entry, at: &AttributeType) -> String {
    at.lower_names()
        .iter()
        .find_map(|n| entry.attr(n).map(|a| a.name.clone()))
        .unwrap_or_else(|| at.name().to_string())
}

fn values<'e>(entry: &'e Entry, at: &'e AttributeType) -> impl Iterator<Item = &'e [u8]> + 'e {
    at.lower_names()
        .iter()
        .filter_map(move |n| entry.attr(n))
        .flat_map(|a| a.values.iter().map(Vec::as_slice))
}

/// Removes the attribute under every alias and returns all its values.
fn take_all(entry: &mut Entry, at: &AttributeType) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in at.lower_names() {
        if let Some(a) = entry.remove(n) {
            out.extend(a.values);
        }
    }
    out
}

fn remove_all(entry: &mut Entry, at: &AttributeType) {
    for n in at.lower_names() {
        entry.remove(n);
    }
}

fn check_distinct(
    schema: &Schema,
    at: &AttributeType,
    vals: &[Vec<u8>],
) -> Result<(), ModifyError> {
    for (i, v) in vals.iter().enumerate() {
        let k = schema.value_key(at, v);
        if vals[..i].iter().any(|w| schema.value_key(at, w) == k) {
            return Err(ModifyError::AttributeOrValueExists(format!(
                "{} given twice",
                at.name()
            )));
        }
    }
    Ok(())
}

fn add(
    entry: &mut Entry,
    schema: &Schema,
    at: &AttributeType,
    key: &str,
    vals: &[Vec<u8>],
) -> Result<(), ModifyError> {
    if vals.is_empty() {
        return Err(ModifyError::NoValues(format!(
            "add of {} without values",
            at.name()
        )));
    }
    check_distinct(schema, at, vals)?;
    let mut current = take_all(entry, at);
    for v in vals {
        let k = schema.value_key(at, v);
        if current.iter().any(|c| schema.value_key(at, c) == k) {
            return Err(ModifyError::AttributeOrValueExists(at.name().to_string()));
        }
    }
    current.extend(vals.iter().cloned());
    entry.set(key, current);
    Ok(())
}

fn delete(
    entry: &mut Entry,
    schema: &Schema,
    at: &AttributeType,
    key: &str,
    vals: &[Vec<u8>],
) -> Result<(), ModifyError> {
    let mut current = take_all(entry, at);
    if current.is_empty() {
        return Err(ModifyError::NoSuchAttribute(at.name().to_string()));
    }
    // No values listed: the whole attribute goes.
    if vals.is_empty() {
        return Ok(());
    }
    for v in vals {
        let k = schema.value_key(at, v);
        match current.iter().position(|c| schema.value_key(at, c) == k) {
            Some(i) => {
                current.remove(i);
            }
            None => {
                return Err(ModifyError::NoSuchAttribute(format!(
                    "{}: value not present",
                    at.name()
                )))
            }
        }
    }
    entry.set(key, current);
    Ok(())
}

/// RFC 4525: adds the (single) delta to every value of an integer attribute.
fn increment(
    entry: &mut Entry,
    at: &AttributeType,
    key: &str,
    vals: &[Vec<u8>],
) -> Result<(), ModifyError> {
    let delta = match vals {
        [one] => parse_int(one).ok_or_else(|| {
            ModifyError::Constraint(format!("{}: increment is not an integer", at.name()))
        })?,
        [] => {
            return Err(ModifyError::NoValues(format!(
                "increment of {} without a value",
                at.name()
            )))
        }
        _ => {
            return Err(ModifyError::Constraint(format!(
                "{}: increment takes one value",
                at.name()
            )))
        }
    };
    if !at
        .equality_rule()
        .is_some_and(|r| r.kind == matching::MatchKind::Integer)
    {
        return Err(ModifyError::Constraint(format!(
            "{} is not an integer attribute",
            at.name()
        )));
    }
    let current = take_all(entry, at);
    if current.is_empty() {
        return Err(ModifyError::NoSuchAttribute(at.name().to_string()));
    }
    let mut next = Vec::with_capacity(current.len());
    for v in &current {
        let n = parse_int(v)
            .and_then(|n| n.checked_add(delta))
            .ok_or_else(|| {
                ModifyError::Constraint(format!("{}: value cannot be incremented", at.name()))
            })?;
        next.push(n.to_string().into_bytes());
    }
    entry.set(key, next);
    Ok(())
}

fn parse_int(v: &[u8]) -> Option<i128> {
    let (neg, digits) = matching::parse_integer(v)?;
    let s = std::str::from_utf8(digits).ok()?;
    let n: i128 = s.parse().ok()?;
    Some(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dn::Dn;

    fn schema() -> Schema {
        Schema::builtin().unwrap()
    }

    fn alice() -> Entry {
        let mut e = Entry::new(Dn::parse("uid=alice,ou=People,dc=example,dc=com").unwrap());
        for (k, v) in [
            ("objectClass", "top"),
            ("objectClass", "inetOrgPerson"),
            ("objectClass", "posixAccount"),
            ("uid", "alice"),
            ("cn", "Alice"),
            ("sn", "Smith"),
            ("uidNumber", "1000"),
            ("gidNumber", "1000"),
            ("homeDirectory", "/home/alice"),
            ("mail", "alice@example.com"),
        ] {
            e.push(k, v.as_bytes().to_vec());
        }
        e
    }

    fn m(op: ModOp, attr: &str, vals: &[&str]) -> Modification {
        Modification {
            op,
            attr: attr.to_string(),
            values: vals.iter().map(|v| v.as_bytes().to_vec()).collect(),
        }
    }

    #[test]
    fn add_delete_replace() {
        let s = schema();
        let mut e = alice();
        apply(
            &mut e,
            &[m(ModOp::Add, "mail", &["a2@example.com"])],
            &s,
            false,
        )
        .unwrap();
        assert_eq!(e.values("mail").len(), 2);
        assert_eq!(
            apply(
                &mut e,
                &[m(ModOp::Add, "mail", &["ALICE@example.com"])],
                &s,
                false
            ),
            Err(ModifyError::AttributeOrValueExists("mail".into()))
        );
        assert!(matches!(
            apply(
                &mut e,
                &[m(ModOp::Add, "description", &["x", "X"])],
                &s,
                false
            ),
            Err(ModifyError::AttributeOrValueExists(_))
        ));
        apply(
            &mut e,
            &[m(ModOp::Delete, "mail", &["A2@EXAMPLE.COM"])],
            &s,
            false,
        )
        .unwrap();
        assert_eq!(e.values("mail"), &[b"alice@example.com".to_vec()]);
        assert!(matches!(
            apply(
                &mut e,
                &[m(ModOp::Delete, "mail", &["nobody@x"])],
                &s,
                false
            ),
            Err(ModifyError::NoSuchAttribute(_))
        ));
        assert!(matches!(
            apply(&mut e, &[m(ModOp::Delete, "description", &[])], &s, false),
            Err(ModifyError::NoSuchAttribute(_))
        ));
        apply(&mut e, &[m(ModOp::Delete, "mail", &[])], &s, false).unwrap();
        assert!(!e.has("mail"));
        // replace with nothing on an absent attribute is fine
        apply(&mut e, &[m(ModOp::Replace, "description", &[])], &s, false).unwrap();
        apply(
            &mut e,
            &[m(ModOp::Replace, "commonName", &["Alice", "Ali"])],
            &s,
            false,
        )
        .unwrap();
        assert_eq!(e.values("cn").len(), 2);
        apply(&mut e, &[m(ModOp::Add, "description", &["new"])], &s, false).unwrap();
        assert_eq!(e.attr("description").unwrap().name, "description");
        assert!(matches!(
            apply(&mut e, &[m(ModOp::Add, "description", &[])], &s, false),
            Err(ModifyError::NoValues(_))
        ));
    }

    #[test]
    fn failures_leave_the_entry_unchanged() {
        let s = schema();
        let mut e = alice();
        let before = e.clone();
        let err = apply(
            &mut e,
            &[
                m(ModOp::Replace, "mail", &["new@example.com"]),
                m(ModOp::Delete, "description", &["missing"]),
            ],
            &s,
            false,
        );
        assert!(matches!(err, Err(ModifyError::NoSuchAttribute(_))));
        assert_eq!(e, before);
    }

    #[test]
    fn unknown_and_protected_attributes() {
        let s = schema();
        let mut e = alice();
        assert_eq!(
            apply(&mut e, &[m(ModOp::Add, "fooBar", &["x"])], &s, false),
            Err(ModifyError::UndefinedAttribute("fooBar".into()))
        );
        assert!(matches!(
            apply(
                &mut e,
                &[m(
                    ModOp::Replace,
                    "entryUUID",
                    &["3f2504e0-4f89-11d3-9a0c-0305e82c3301"]
                )],
                &s,
                false
            ),
            Err(ModifyError::Constraint(_))
        ));
        apply(
            &mut e,
            &[
                m(
                    ModOp::Replace,
                    "entryUUID",
                    &["3f2504e0-4f89-11d3-9a0c-0305e82c3301"],
                ),
                m(ModOp::Replace, "modifyTimestamp", &["20240101000000Z"]),
            ],
            &s,
            true,
        )
        .unwrap();
        assert!(e.has("entryUUID"));
    }

    #[test]
    fn rdn_values_stay() {
        let s = schema();
        let mut e = alice();
        assert!(matches!(
            apply(&mut e, &[m(ModOp::Replace, "uid", &["bob"])], &s, false),
            Err(ModifyError::NotAllowedOnRdn(_))
        ));
        assert!(matches!(
            apply(&mut e, &[m(ModOp::Delete, "uid", &[])], &s, false),
            Err(ModifyError::NotAllowedOnRdn(_))
        ));
        // adding a second uid and then removing a non-RDN value is fine; case differences
        // in the RDN value are equal under caseIgnoreMatch
        apply(
            &mut e,
            &[m(ModOp::Replace, "uid", &["ALICE", "al"])],
            &s,
            false,
        )
        .unwrap();
        apply(&mut e, &[m(ModOp::Delete, "uid", &["al"])], &s, false).unwrap();
    }

    #[test]
    fn increment() {
        let s = schema();
        let mut e = alice();
        apply(
            &mut e,
            &[m(ModOp::Increment, "uidNumber", &["5"])],
            &s,
            false,
        )
        .unwrap();
        assert_eq!(e.first_str("uidNumber"), Some("1005"));
        apply(
            &mut e,
            &[m(ModOp::Increment, "uidNumber", &["-1006"])],
            &s,
            false,
        )
        .unwrap();
        assert_eq!(e.first_str("uidNumber"), Some("-1"));
        assert!(matches!(
            apply(
                &mut e,
                &[m(ModOp::Increment, "shadowMax", &["1"])],
                &s,
                false
            ),
            Err(ModifyError::NoSuchAttribute(_))
        ));
        assert!(matches!(
            apply(&mut e, &[m(ModOp::Increment, "cn", &["1"])], &s, false),
            Err(ModifyError::Constraint(_))
        ));
        assert!(matches!(
            apply(
                &mut e,
                &[m(ModOp::Increment, "uidNumber", &["x"])],
                &s,
                false
            ),
            Err(ModifyError::Constraint(_))
        ));
        assert!(matches!(
            apply(
                &mut e,
                &[m(ModOp::Increment, "uidNumber", &["1", "2"])],
                &s,
                false
            ),
            Err(ModifyError::Constraint(_))
        ));
    }

    #[test]
    fn structural_class_cannot_change() {
        let s = schema();
        let mut e = alice();
        assert!(matches!(
            apply(
                &mut e,
                &[m(
                    ModOp::Replace,
                    "objectClass",
                    &["top", "account", "posixAccount"]
                )],
                &s,
                false
            ),
            Err(ModifyError::ObjectClassModsProhibited(_))
        ));
        // adding an auxiliary class is fine
        apply(
            &mut e,
            &[m(ModOp::Add, "objectClass", &["shadowAccount"])],
            &s,
            false,
        )
        .unwrap();
        assert!(matches!(
            apply(
                &mut e,
                &[m(ModOp::Add, "objectClass", &["SHADOWACCOUNT"])],
                &s,
                false
            ),
            Err(ModifyError::AttributeOrValueExists(_))
        ));
        s.check_entry(&e).unwrap();
    }
}
