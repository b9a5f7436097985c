//! The backend half of `dird check-store`: the invariants the standalone backend keeps on top
//! of the store's (those are `store::check`): link attributes name existing entries (memberOf
//! is computed from `member`, so a dangling `member` is the only way the two can disagree),
//! the user counter equals the number of user objects, the RID counter is above every RID
//! handed out, the uniqueness rules of `backend::unique` hold across the whole store, and every
//! sealed Kerberos key blob opens under the master key (through a caller-supplied check, since
//! sealing belongs to `directory`).
//! May import: `model`, `store`, `backend`. Reads one snapshot; never writes.

use std::collections::HashMap;

use crate::backend::local::{self, is_user};
use crate::backend::{links, unique};
use crate::model::{Dn, Entry, Schema};
use crate::store::check::{Report, Severity};
use crate::store::{EntryId, Store, StoreError, StoreRead};

/// Opens the sealed Kerberos keys of an entry that has some: `Ok(kvno)` of the current keys,
/// or why they do not open. Supplied by the caller that holds the master key.
pub type KeyCheck<'a> = &'a (dyn Fn(&Entry) -> Result<u32, String> + Sync);

/// The attribute that holds an entry's sealed Kerberos keys (`directory::secrets::KEYS_ATTR`).
const KEYS_ATTR: &str = "dirdKerberosKeys";
/// The key version number attribute (`directory::secrets::KVNO_ATTR`).
const KVNO_ATTR: &str = "msDS-KeyVersionNumber";

/// Runs every check over one snapshot of `store`. `keys` = None: the keys are not checked
/// (no master key), which the report says.
pub fn run(
    store: &Store,
    schema: &Schema,
    suffix: &Dn,
    keys: Option<KeyCheck<'_>>,
) -> Result<Report, StoreError> {
    let txn = store.read()?;
    let mut report = Report::default();
    txn.check_store(&mut report)?;
    let mut state = State::default();
    let mut failed = None;
    // One streamed pass (entries that do not decode were reported by the store checks).
    txn.scan_decodable(&mut |id, e| {
        if let Err(err) = state.entry(&txn, schema, suffix, keys, id, &e) {
            failed = Some(err);
            return false;
        }
        true
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    state.finish(&txn, keys.is_some(), &mut report)?;
    Ok(report)
}

/// A finding waiting for its check's section of the report.
type Pending = Vec<(Severity, EntryId, String, String)>;

/// What the streamed pass collects: findings per check, plus small per-entry state.
#[derive(Default)]
struct State {
    links: Pending,
    unique: Pending,
    keys: Pending,
    users: u64,
    /// (rule attribute, normalised value) → first holder
    holders: HashMap<(&'static str, Vec<u8>), (EntryId, String)>,
    /// (id, DN, objectSid), checked against the domain's RID counter at the end
    rids: Vec<(EntryId, String, Vec<u8>)>,
}

impl State {
    fn entry<T: StoreRead>(
        &mut self,
        txn: &T,
        schema: &Schema,
        suffix: &Dn,
        keys: Option<KeyCheck<'_>>,
        id: EntryId,
        e: &Entry,
    ) -> Result<(), StoreError> {
        let dn = e.dn.to_string();
        // links
        for attr in links::LINK_ATTRS {
            for v in e.values(attr) {
                let text = String::from_utf8_lossy(v);
                match Dn::parse(&text) {
                    Ok(target) => {
                        if txn.id_of(&target)?.is_none() {
                            self.links.push((
                                Severity::Warning,
                                id,
                                dn.clone(),
                                format!("{attr} names {target}, which does not exist"),
                            ));
                        }
                    }
                    Err(_) => self.links.push((
                        Severity::Warning,
                        id,
                        dn.clone(),
                        format!("{attr} value {text:?} is not a DN"),
                    )),
                }
            }
        }
        // counters
        if is_user(e) {
            self.users += 1;
        }
        for sid in e.values("objectSid") {
            self.rids.push((id, dn.clone(), sid.clone()));
        }
        // uniqueness
        for (attr, applies) in unique::rules() {
            if !applies(e) {
                continue;
            }
            for v in e.values(attr) {
                if let Some(why) = unique::reserved_reason(attr, v, suffix, &e.dn) {
                    self.unique.push((Severity::Error, id, dn.clone(), why));
                }
                let key = schema
                    .normalize(attr, v)
                    .unwrap_or_else(|| v.to_ascii_lowercase());
                match self.holders.get(&(attr, key.clone())) {
                    Some((other, other_dn)) if *other != id => self.unique.push((
                        Severity::Error,
                        id,
                        dn.clone(),
                        format!(
                            "{attr} {} is also held by {other_dn} (id {other})",
                            String::from_utf8_lossy(v)
                        ),
                    )),
                    Some(_) => {}
                    None => {
                        self.holders.insert((attr, key), (id, dn.clone()));
                    }
                }
            }
        }
        // keys
        if let Some(open) = keys {
            if !e.values(KEYS_ATTR).is_empty() {
                match open(e) {
                    Ok(kvno) => {
                        let stored = e
                            .first_str(KVNO_ATTR)
                            .and_then(|v| v.trim().parse::<u32>().ok());
                        if let Some(stored) = stored.filter(|s| *s != kvno) {
                            self.keys.push((
                                Severity::Error,
                                id,
                                dn.clone(),
                                format!(
                                    "{KVNO_ATTR} is {stored}, the sealed keys have kvno {kvno}"
                                ),
                            ));
                        }
                    }
                    Err(why) => self.keys.push((Severity::Error, id, dn.clone(), why)),
                }
            }
        }
        Ok(())
    }

    fn finish<T: StoreRead>(
        self,
        txn: &T,
        keys_checked: bool,
        report: &mut Report,
    ) -> Result<(), StoreError> {
        let flush = |report: &mut Report, list: Pending| {
            for (sev, id, dn, msg) in list {
                report.add(sev, Some(id), Some(dn), msg);
            }
        };
        report.begin(
            "links",
            "member, msDS-PSOAppliesTo, manager and managedBy name existing entries",
            "a dangling link shows no memberOf on its target and would apply to an entry created \
             later under that name: delete the value (ldapmodify) or re-create the target",
        );
        flush(report, self.links);

        report.begin(
            "counters",
            "the user counter equals the user objects; the RID counter is above every RID",
            "`dird check-store --repair` recounts the users; a RID counter behind the SIDs \
             would hand an existing SID to the next account: restore the last good backup",
        );
        match txn.meta(local::META_USER_COUNT)? {
            Some(v) if v.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&v);
                let stored = u64::from_be_bytes(b);
                if stored != self.users {
                    report.error(
                        None,
                        None,
                        format!(
                            "the user counter says {stored}, the store holds {} user objects: \
                             the tier's user cap is enforced against the wrong number",
                            self.users
                        ),
                    );
                }
            }
            Some(v) => report.error(
                None,
                None,
                format!("the user counter is {} bytes, not 8", v.len()),
            ),
            None => {}
        }
        if let Some(domain_sid) = txn.meta(local::META_DOMAIN_SID)? {
            let next = match txn.meta(local::META_NEXT_RID)? {
                Some(v) if v.len() == 8 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&v);
                    u64::from_be_bytes(b)
                }
                _ => local::FIRST_RID,
            };
            for (id, dn, sid) in self.rids {
                let Some(rid) = local::rid_in_domain(&domain_sid, &sid) else {
                    continue;
                };
                if u64::from(rid) >= local::FIRST_RID && u64::from(rid) >= next {
                    report.error(
                        Some(id),
                        Some(dn),
                        format!(
                            "holds RID {rid}, not below the RID counter {next}: the next \
                             account would get the same objectSid"
                        ),
                    );
                }
            }
        }

        report.begin(
            "unique",
            "sAMAccountName, userPrincipalName, servicePrincipalName, uidNumber and group \
             gidNumber are unique; KDC names are reserved",
            "rename or renumber all but one holder (ldapmodify): until then binds, Kerberos \
             principals or POSIX ids are ambiguous",
        );
        flush(report, self.unique);

        report.begin(
            "keys",
            "every sealed Kerberos key blob opens under master.key and matches its kvno",
            "if every account fails, master.key is not the one this database was written with: \
             put the right one back (a backup taken with --include-master-key holds it); for \
             single accounts set the password again (`dird user passwd`, or `dird krbtgt rotate`)",
        );
        if !keys_checked {
            report.warning(
                None,
                None,
                "not checked: no master key (data_dir/master.key is missing)".into(),
            );
        }
        flush(report, self.keys);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;
    use crate::backend::local::{Local, ObjectLimits};
    use crate::backend::{Backend, WriteCtx};
    use crate::store::IndexConfig;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    fn ctx() -> WriteCtx {
        WriteCtx {
            by: dn("cn=admin,dc=example,dc=com"),
            now: SystemTime::now(),
        }
    }

    fn entry(d: &str, classes: &[&str], attrs: &[(&str, &str)]) -> Entry {
        let mut e = Entry::new(dn(d));
        for c in classes {
            e.push("objectClass", c.as_bytes().to_vec());
        }
        for (a, v) in attrs {
            e.push(a, v.as_bytes().to_vec());
        }
        e
    }

    fn user(name: &str) -> Entry {
        entry(
            &format!("cn={name},ou=People,dc=example,dc=com"),
            &["top", "person", "organizationalPerson", "user"],
            &[("cn", name), ("sn", name), ("sAMAccountName", name)],
        )
    }

    /// A backend with a domain SID, two users and a group of both, written through the
    /// backend (so every invariant holds).
    async fn backend(dir: &std::path::Path) -> Local {
        let schema = Arc::new(Schema::builtin().unwrap());
        let store = Store::open(
            &dir.join("t.redb"),
            schema.clone(),
            IndexConfig::default_attrs(),
        )
        .unwrap();
        let mut w = store.write().unwrap();
        let sid = crate::backend::local::parse_sid("S-1-5-21-1-2-3").unwrap();
        w.set_meta(local::META_DOMAIN_SID, &sid).unwrap();
        w.commit().unwrap();
        let limits = ObjectLimits {
            max_users: None,
            max_objects: 1000,
            tier: "test",
        };
        let local = Local::new(store, dn("dc=example,dc=com"), schema, limits).unwrap();
        local
            .add_batch_blocking(
                vec![
                    entry(
                        "dc=example,dc=com",
                        &["top", "domain"],
                        &[("dc", "example")],
                    ),
                    entry(
                        "ou=People,dc=example,dc=com",
                        &["top", "organizationalUnit"],
                        &[("ou", "People")],
                    ),
                ],
                &ctx(),
                &[],
            )
            .unwrap();
        local.add(user("alice"), &ctx()).await.unwrap();
        local.add(user("bob"), &ctx()).await.unwrap();
        let mut g = entry(
            "cn=devs,ou=People,dc=example,dc=com",
            &["top", "group"],
            &[("cn", "devs")],
        );
        g.push("member", b"cn=alice,ou=People,dc=example,dc=com".to_vec());
        g.push("member", b"cn=bob,ou=People,dc=example,dc=com".to_vec());
        local.add(g, &ctx()).await.unwrap();
        local
    }

    fn check(local: &Local) -> Report {
        local.check_store(None).unwrap()
    }

    fn messages(r: &Report, name: &str) -> Vec<String> {
        r.check(name)
            .unwrap()
            .findings
            .iter()
            .map(|f| f.message.clone())
            .collect()
    }

    /// Rewrites a stored entry without any backend rule (as a bug or a bad edit would).
    fn overwrite(local: &Local, d: &str, f: impl FnOnce(&mut Entry)) {
        let mut w = local.store().write().unwrap();
        let (id, mut e) = w.entry_by_dn(&dn(d)).unwrap().unwrap();
        f(&mut e);
        w.replace(id, &e).unwrap();
        w.commit().unwrap();
    }

    #[tokio::test]
    async fn a_store_written_through_the_backend_is_clean() {
        let tmp = tempfile::tempdir().unwrap();
        let local = backend(tmp.path()).await;
        // Renames and deletes keep links (member follows its target).
        local
            .rename(
                &dn("cn=bob,ou=People,dc=example,dc=com"),
                crate::model::Rdn::new("cn", "robert"),
                true,
                None,
                &ctx(),
            )
            .await
            .unwrap();
        local
            .delete(&dn("cn=alice,ou=People,dc=example,dc=com"), &ctx())
            .await
            .unwrap();
        let r = check(&local);
        assert_eq!(r.errors(), 0, "{}", r.render());
        // Only the missing master key is a warning.
        assert_eq!(r.warnings(), 1, "{}", r.render());
        assert_eq!(r.check("keys").unwrap().warnings, 1);
    }

    #[tokio::test]
    async fn a_dangling_member_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let local = backend(tmp.path()).await;
        // A delete that skipped the link rewrite: alice's entry gone, the group still names her.
        let mut w = local.store().write().unwrap();
        let id = w
            .id_of(&dn("cn=alice,ou=People,dc=example,dc=com"))
            .unwrap()
            .unwrap();
        w.delete(id).unwrap();
        w.commit().unwrap();
        overwrite(&local, "cn=devs,ou=People,dc=example,dc=com", |e| {
            e.push("manager", b"not a dn".to_vec())
        });
        let r = check(&local);
        let m = messages(&r, "links");
        assert!(
            m.iter().any(|m| m.contains(
                "member names cn=alice,ou=People,dc=example,dc=com, which does not exist"
            )),
            "{m:?}"
        );
        assert!(m.iter().any(|m| m.contains("is not a DN")), "{m:?}");
        assert_eq!(r.check("links").unwrap().warnings, 2);
    }

    #[tokio::test]
    async fn counters_behind_the_entries_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let local = backend(tmp.path()).await;
        let mut w = local.store().write().unwrap();
        w.set_meta(local::META_USER_COUNT, &7u64.to_be_bytes())
            .unwrap();
        w.set_meta(local::META_NEXT_RID, &local::FIRST_RID.to_be_bytes())
            .unwrap();
        w.commit().unwrap();
        let r = check(&local);
        let m = messages(&r, "counters");
        assert!(
            m.iter()
                .any(|m| m.contains("the user counter says 7, the store holds 2 user objects")),
            "{m:?}"
        );
        // alice got RID 1100, bob 1101, devs 1102: all at or above the rewound counter
        assert_eq!(
            m.iter()
                .filter(|m| m.contains("not below the RID counter 1100"))
                .count(),
            3,
            "{m:?}"
        );
        // --repair recounts the users
        local.repair_derived().unwrap();
        let r = check(&local);
        assert!(!messages(&r, "counters")
            .iter()
            .any(|m| m.contains("user counter")));
    }

    #[tokio::test]
    async fn duplicate_and_reserved_names_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let local = backend(tmp.path()).await;
        overwrite(&local, "cn=bob,ou=People,dc=example,dc=com", |e| {
            e.set_str("sAMAccountName", "ALICE");
            e.set_str("uidNumber", "20000");
        });
        overwrite(&local, "cn=alice,ou=People,dc=example,dc=com", |e| {
            e.set_str("uidNumber", "20000");
            e.set_str("servicePrincipalName", "krbtgt/EXAMPLE.COM");
        });
        let r = check(&local);
        let m = messages(&r, "unique");
        assert!(
            m.iter()
                .any(|m| m.contains("sAMAccountName ALICE is also held by cn=alice")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|m| m.contains("uidNumber 20000 is also held by")),
            "{m:?}"
        );
        assert!(
            m.iter().any(|m| m.contains("reserved for the KDC")),
            "{m:?}"
        );
        assert_eq!(r.check("unique").unwrap().errors, 3, "{m:?}");
    }

    #[tokio::test]
    async fn keys_that_do_not_open_or_disagree_with_the_kvno_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let local = backend(tmp.path()).await;
        overwrite(&local, "cn=alice,ou=People,dc=example,dc=com", |e| {
            e.set(KEYS_ATTR, vec![b"sealed-good".to_vec()]);
            e.set_str(KVNO_ATTR, "3");
        });
        overwrite(&local, "cn=bob,ou=People,dc=example,dc=com", |e| {
            e.set(KEYS_ATTR, vec![b"sealed-bad".to_vec()]);
        });
        // The key check the caller supplies (directory::secrets in dird): here a stand-in.
        let open = |e: &Entry| -> Result<u32, String> {
            match e.values(KEYS_ATTR).first().map(Vec::as_slice) {
                Some(b"sealed-good") => Ok(2),
                _ => Err("key blob does not decrypt under the master key".into()),
            }
        };
        let r = local.check_store(Some(&open)).unwrap();
        let m = messages(&r, "keys");
        assert_eq!(r.check("keys").unwrap().errors, 2, "{m:?}");
        assert!(
            m.iter()
                .any(|m| m.contains("msDS-KeyVersionNumber is 3, the sealed keys have kvno 2")),
            "{m:?}"
        );
        assert!(m.iter().any(|m| m.contains("does not decrypt")), "{m:?}");
    }
}
