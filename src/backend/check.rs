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
                                format!("{KVNO_ATTR} is {stored}, the sealed keys have kvno {kvno}"),
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
