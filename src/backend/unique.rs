//! Uniqueness of names and numbers in the domain (issue 9 item 4), checked inside the write
//! transaction of every write (`backend::local` calls [`check`] from add, batch add (LDIF
//! import, provisioning), modify and rename, the only paths that write entries): redb has one
//! writer, so two concurrent writes can never both take a name.
//!
//! May import: `model`, `store`, `backend`. Rules (as AD, MS-ADTS §3.1.1.5.2.2 and
//! §3.1.1.5.3.2):
//! - sAMAccountName: one namespace for users, groups and computers, case-insensitive; a clash
//!   is entryAlreadyExists (68). It also names the account's Kerberos principal
//!   (`NAME@REALM`, computers `NAME$@REALM`), so principal names cannot clash either;
//!   `krbtgt` is reserved for the ticket-granting service account.
//! - userPrincipalName and servicePrincipalName (every value; `HOST/x` and `host/x` are the
//!   same name): constraintViolation (19). SPNs of the KDC's own services (`krbtgt/…`,
//!   `kadmin/changepw`) cannot be taken.
//! - uidNumber among accounts, gidNumber among groups (a user's gidNumber names its primary
//!   group and is not a clash): constraintViolation (19).
//!
//! Only values a write adds are checked, so entries stored before these rules existed can
//! still be changed in other ways. Lookups go through the equality index (every attribute
//! here is in `IndexConfig::default_attrs`), O(log n) per value; without the index they fall
//! back to a scan rather than miss a clash.

use crate::backend::BackendError;
use crate::model::filter::Filter;
use crate::model::modify::ModifyError;
use crate::model::{Dn, Entry, Rdn, Schema};
use crate::store::{EntryId, StoreError, StoreRead};

/// Fails if `new` (the entry as it will be stored, with id `id` if it exists already, and
/// `old` its stored form) takes a name or number another entry holds, or a reserved name.
pub fn check<T: StoreRead>(
    txn: &T,
    schema: &Schema,
    suffix: &Dn,
    id: Option<EntryId>,
    old: Option<&Entry>,
    new: &Entry,
) -> Result<(), BackendError> {
    for rule in RULES {
        if !(rule.applies)(new) {
            continue;
        }
        let before: &[Vec<u8>] = match old {
            Some(o) if (rule.applies)(o) => o.values(rule.attr),
            _ => &[],
        };
        for value in new.values(rule.attr) {
            if before
                .iter()
                .any(|b| schema.values_equal(rule.attr, b, value))
            {
                continue;
            }
            reserved(rule.attr, value, suffix, &new.dn)?;
            for holder in holders(txn, schema, rule.attr, value).map_err(store_err)? {
                if Some(holder) == id {
                    continue;
                }
                let Some(other) = txn.entry(holder).map_err(store_err)? else {
                    continue;
                };
                if other.dn == new.dn || !(rule.applies)(&other) {
                    continue;
                }
                let msg = format!(
                    "{} {} is already in use by {}",
                    rule.attr,
                    String::from_utf8_lossy(value),
                    other.dn
                );
                return Err(if rule.already_exists {
                    BackendError::NameInUse(msg)
                } else {
                    BackendError::Modify(ModifyError::Constraint(msg))
                });
            }
        }
    }
    Ok(())
}

/// The sAMAccountName dird gives a user, computer or group that has none (a derived name must
/// exist before the account's Kerberos keys are derived: it is their salt). AD-style, without
/// the characters AD forbids: users from uid or cn, truncated to 20 characters and made unique
/// with a number (`alice`, `alice1`, …); computers from cn, truncated to 15 characters, plus
/// `$`; groups their cn. A computer's or group's name is its identity on the hosts (the
/// `NAME$` principal, the POSIX group name), so it is not renamed to dodge a clash: `check`
/// refuses it instead (a group named like a user, or `krbtgt`). `None` if the entry has one,
/// is no account, or has no usable name.
pub fn derived_account_name<T: StoreRead>(
    txn: &T,
    schema: &Schema,
    suffix: &Dn,
    e: &Entry,
) -> Result<Option<String>, StoreError> {
    if e.has("sAMAccountName") {
        return Ok(None);
    }
    let (source, max_chars, tail) = if e.is_a("computer") {
        (e.first_str("cn"), 15usize, "$")
    } else if e.is_a("user") {
        (e.first_str("uid").or_else(|| e.first_str("cn")), 20, "")
    } else if e.is_a("group") {
        (e.first_str("cn"), 256, "")
    } else {
        return Ok(None);
    };
    let Some(base) = source.map(sanitize).filter(|b| !b.is_empty()) else {
        return Ok(None);
    };
    if !tail.is_empty() || !e.is_a("user") {
        let stem: String = base.chars().take(max_chars).collect();
        return Ok(Some(format!("{}{tail}", stem.trim_end())));
    }
    for n in 0..MAX_SUFFIX {
        let number = if n == 0 { String::new() } else { n.to_string() };
        let keep = max_chars.saturating_sub(number.chars().count());
        let stem: String = base.chars().take(keep).collect();
        let name = format!("{}{number}", stem.trim_end());
        let free = reserved("sAMAccountName", name.as_bytes(), suffix, &e.dn).is_ok()
            && holders(txn, schema, "sAMAccountName", name.as_bytes())?.is_empty();
        if free {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// True if some entry holds `attr` = `value` (the POSIX id allocator skips such values).
pub fn in_use<T: StoreRead>(
    txn: &T,
    schema: &Schema,
    attr: &str,
    value: &[u8],
) -> Result<bool, StoreError> {
    Ok(!holders(txn, schema, attr, value)?.is_empty())
}

/// The uniqueness rules as (attribute, the entries the rule covers), for `backend::check`.
pub fn rules() -> impl Iterator<Item = (&'static str, fn(&Entry) -> bool)> {
    RULES.iter().map(|r| (r.attr, r.applies))
}

/// Why `value` of `attr` may not be held by the entry at `dn` (a name reserved for the KDC),
/// or `None`.
pub fn reserved_reason(attr: &str, value: &[u8], suffix: &Dn, dn: &Dn) -> Option<String> {
    reserved(attr, value, suffix, dn)
        .err()
        .map(|e| e.to_string())
}

/// One uniqueness rule.
struct Rule {
    attr: &'static str,
    /// entryAlreadyExists (68) rather than constraintViolation (19)
    already_exists: bool,
    /// the entries the rule covers, both the one written and the ones it may clash with
    applies: fn(&Entry) -> bool,
}

const RULES: &[Rule] = &[
    Rule {
        attr: "sAMAccountName",
        already_exists: true,
        applies: any,
    },
    Rule {
        attr: "userPrincipalName",
        already_exists: false,
        applies: any,
    },
    Rule {
        attr: "servicePrincipalName",
        already_exists: false,
        applies: any,
    },
    Rule {
        attr: "uidNumber",
        already_exists: false,
        applies: any,
    },
    Rule {
        attr: "gidNumber",
        already_exists: false,
        applies: is_group,
    },
];

/// Most numbers tried when making a derived user name unique.
const MAX_SUFFIX: u32 = 10_000;

fn any(_: &Entry) -> bool {
    true
}

fn is_group(e: &Entry) -> bool {
    e.is_a("group") || e.is_a("posixGroup")
}

/// Refuses the names the KDC owns: the sAMAccountName `krbtgt` anywhere but on the
/// ticket-granting service account, and SPNs of its own services.
fn reserved(attr: &str, value: &[u8], suffix: &Dn, dn: &Dn) -> Result<(), BackendError> {
    let text = String::from_utf8_lossy(value);
    if attr.eq_ignore_ascii_case("sAMAccountName") && text.trim().eq_ignore_ascii_case(KRBTGT) {
        let home = suffix
            .child(Rdn::new("cn", "Users"))
            .child(Rdn::new("cn", KRBTGT));
        if *dn != home {
            return Err(BackendError::NameInUse(format!(
                "sAMAccountName {text} is reserved for the Kerberos ticket-granting service account {home}"
            )));
        }
    }
    if attr.eq_ignore_ascii_case("servicePrincipalName") {
        // RFC 4120 §6.2: `service/instance@REALM`; the realm part does not change the name.
        let name = text.rsplit_once('@').map_or(text.as_ref(), |(n, _)| n);
        let service = name.split('/').next().unwrap_or_default();
        if service.eq_ignore_ascii_case(KRBTGT) || name.eq_ignore_ascii_case("kadmin/changepw") {
            return Err(BackendError::Modify(ModifyError::Constraint(format!(
                "servicePrincipalName {text} is reserved for the KDC"
            ))));
        }
    }
    Ok(())
}

/// sAMAccountName of the ticket-granting service account (`directory::kerberos` creates it).
pub const KRBTGT: &str = "krbtgt";

/// Ids of the entries holding `attr` = `value` under the attribute's equality rule.
fn holders<T: StoreRead>(
    txn: &T,
    schema: &Schema,
    attr: &str,
    value: &[u8],
) -> Result<Vec<EntryId>, StoreError> {
    if let Some(ids) = txn.equality_ids(attr, value)? {
        return Ok(ids);
    }
    let f = Filter::Equality(attr.to_string(), value.to_vec());
    let mut out = Vec::new();
    match txn.candidates(&f)? {
        Some(ids) => {
            for id in ids {
                if let Some(e) = txn.entry(id)? {
                    if f.evaluate(&e, schema).is_true() {
                        out.push(id);
                    }
                }
            }
        }
        None => txn.scan(&mut |id, e| {
            if f.evaluate(&e, schema).is_true() {
                out.push(id);
            }
            true
        })?,
    }
    Ok(out)
}

/// A name without the characters AD refuses in sAMAccountName (MS-ADTS §3.1.1.5.2.2:
/// `"/\[]:;|=,+*?<>@` and control characters), without leading/trailing blanks and dots.
fn sanitize(name: &str) -> String {
    const FORBIDDEN: &str = "\"/\\[]:;|=,+*?<>@";
    let kept: String = name
        .chars()
        .filter(|c| !c.is_control() && !FORBIDDEN.contains(*c))
        .collect();
    kept.trim_matches(|c: char| c == ' ' || c == '.')
        .to_string()
}

fn store_err(e: StoreError) -> BackendError {
    BackendError::Store(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_drop_forbidden_characters() {
        assert_eq!(
            sanitize(" a/b\\c[d]e:f;g|h=i,j+k*l?m<n>o@p\"q. "),
            "abcdefghijklmnopq"
        );
        assert_eq!(sanitize("Alice Smith"), "Alice Smith");
        assert_eq!(sanitize("..."), "");
    }

    #[test]
    fn kdc_names_are_reserved() {
        let suffix = Dn::parse("dc=example,dc=com").unwrap();
        let other = Dn::parse("cn=x,dc=example,dc=com").unwrap();
        let home = Dn::parse("cn=krbtgt,cn=Users,dc=example,dc=com").unwrap();
        assert!(reserved("sAMAccountName", b"KRBTGT", &suffix, &other).is_err());
        assert!(reserved("sAMAccountName", b"krbtgt", &suffix, &home).is_ok());
        for spn in [
            "krbtgt/EXAMPLE.COM",
            "KRBTGT/OTHER.COM@EXAMPLE.COM",
            "kadmin/changepw",
            "Kadmin/ChangePW@EXAMPLE.COM",
        ] {
            assert!(
                reserved("servicePrincipalName", spn.as_bytes(), &suffix, &other).is_err(),
                "{spn}"
            );
        }
        for spn in [
            "host/x.example.com",
            "kadmin/admin",
            "HTTP/krbtgt.example.com",
        ] {
            assert!(
                reserved("servicePrincipalName", spn.as_bytes(), &suffix, &other).is_ok(),
                "{spn}"
            );
        }
    }
}
