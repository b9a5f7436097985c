//! Offline/online consistency check of the store's own invariants (`dird check-store`): every
//! entry decodes, the DN table and the entries agree both ways, every entry has exactly the
//! parent row the parent invariant demands, the attribute index tables hold exactly the rows
//! the entries produce, the id and USN counters are ahead of everything stored, and the file's
//! format and index configuration are the ones this build uses. It also owns the report type
//! the backend's checks (`backend::check`) add to.
//! May import: `model`, `store`. Runs over one `ReadTxn`, so it sees one committed state and
//! never blocks writers (the online path can run it next to a serving daemon).
//!
//! Memory: O(entries) for the id → DN and id → parent maps (tens of bytes per entry); the
//! index comparison is streamed: each (table, attribute) group is summarised as a row count
//! plus an order-independent sum of SHA-256 row digests on both sides, and only a group whose
//! summaries differ is materialised to name the missing and stale rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use redb::{ReadableMultimapTable, ReadableTable, ReadableTableMetadata};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::index::{self, IndexKind};
use super::tables::{self, FORMAT_VERSION, META_FORMAT_VERSION, META_INDEX_CONFIG, META_NEXT_ID};
use super::{encode, EntryId, ReadTxn, Result, StoreRead, ROOT_ID};

/// Examples kept per check; further findings are only counted.
pub const MAX_EXAMPLES: usize = 50;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// an invariant is broken: the store must be repaired or restored
    Error,
    /// suspicious but not a broken invariant dird relies on
    Warning,
}

/// One problem found.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// error or warning
    pub severity: Severity,
    /// the entry concerned, if one is
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<EntryId>,
    /// its DN, if known
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
    /// what is wrong, in words an operator can act on
    pub message: String,
}

/// The outcome of one named check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckOutcome {
    /// the check's name (`index`, `dn`, `children`, …)
    pub name: &'static str,
    /// what the check verifies
    pub what: &'static str,
    /// what to do when it fails
    pub remedy: &'static str,
    /// errors found (including those beyond the examples)
    pub errors: u64,
    /// warnings found (including those beyond the examples)
    pub warnings: u64,
    /// the first [`MAX_EXAMPLES`] findings
    pub findings: Vec<Finding>,
}

/// The whole report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// entries in the store
    pub entries: u64,
    /// the USN counter
    pub usn: u64,
    /// every check that ran, in order
    pub checks: Vec<CheckOutcome>,
}

impl Report {
    /// Starts a check (findings go to the last one started).
    pub fn begin(&mut self, name: &'static str, what: &'static str, remedy: &'static str) {
        self.checks.push(CheckOutcome {
            name,
            what,
            remedy,
            errors: 0,
            warnings: 0,
            findings: Vec::new(),
        });
    }

    /// Records a finding against the current check.
    pub fn add(
        &mut self,
        severity: Severity,
        id: Option<EntryId>,
        dn: Option<String>,
        message: String,
    ) {
        let Some(check) = self.checks.last_mut() else {
            return;
        };
        match severity {
            Severity::Error => check.errors += 1,
            Severity::Warning => check.warnings += 1,
        }
        if check.findings.len() < MAX_EXAMPLES {
            check.findings.push(Finding {
                severity,
                id,
                dn,
                message,
            });
        }
    }

    /// An error against the current check.
    pub fn error(&mut self, id: Option<EntryId>, dn: Option<String>, message: String) {
        self.add(Severity::Error, id, dn, message);
    }

    /// A warning against the current check.
    pub fn warning(&mut self, id: Option<EntryId>, dn: Option<String>, message: String) {
        self.add(Severity::Warning, id, dn, message);
    }

    /// Errors over all checks.
    pub fn errors(&self) -> u64 {
        self.checks.iter().map(|c| c.errors).sum()
    }

    /// Warnings over all checks.
    pub fn warnings(&self) -> u64 {
        self.checks.iter().map(|c| c.warnings).sum()
    }

    /// The outcome of the check named `name`.
    pub fn check(&self, name: &str) -> Option<&CheckOutcome> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// A human-readable report (one line per check, the examples below a failing one, the
    /// remedy, and a summary line).
    pub fn render(&self) -> String {
        let mut out = format!("{} entries, USN {}\n", self.entries, self.usn);
        for c in &self.checks {
            let status = match (c.errors, c.warnings) {
                (0, 0) => "ok  ".to_string(),
                (0, w) => format!("WARN ({w})"),
                (e, _) => format!("FAIL ({e} errors)"),
            };
            out.push_str(&format!("{status:<16} {:<10} {}\n", c.name, c.what));
            for f in &c.findings {
                let sev = match f.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                };
                let who = match (&f.id, &f.dn) {
                    (Some(id), Some(dn)) => format!("id {id} {dn}: "),
                    (Some(id), None) => format!("id {id}: "),
                    (None, Some(dn)) => format!("{dn}: "),
                    (None, None) => String::new(),
                };
                out.push_str(&format!("    {sev}: {who}{}\n", f.message));
            }
            let shown = c.findings.len() as u64;
            if c.errors + c.warnings > shown {
                out.push_str(&format!(
                    "    … and {} more\n",
                    c.errors + c.warnings - shown
                ));
            }
            if c.errors + c.warnings > 0 {
                out.push_str(&format!("    what to do: {}\n", c.remedy));
            }
        }
        out.push_str(&format!(
            "{} errors, {} warnings\n",
            self.errors(),
            self.warnings()
        ));
        out
    }
}

impl ReadTxn {
    /// Runs the store's checks into `report`. Storage errors (redb failing to read) end the
    /// check with `Err`; everything the data itself gets wrong becomes a finding.
    pub fn check_store(&self, report: &mut Report) -> Result<()> {
        let usn = self.usn()?;
        report.entries = self.entries.len()?;
        report.usn = usn;
        let next_id = match self.meta.get(META_NEXT_ID)? {
            Some(v) => tables::decode_u64(META_NEXT_ID, v.value()).ok(),
            None => None,
        };

        report.begin(
            "format",
            "format version and index configuration",
            "a newer dird wrote this file (use that version), or the index configuration changed: \
             `dird check-store --repair` (or the next start) rebuilds the indexes",
        );
        match self.meta.get(META_FORMAT_VERSION)? {
            Some(v) => match tables::decode_u32(META_FORMAT_VERSION, v.value()) {
                Ok(FORMAT_VERSION) => {}
                Ok(found) => report.error(
                    None,
                    None,
                    format!("format version {found}, this build uses {FORMAT_VERSION}"),
                ),
                Err(e) => report.error(None, None, e.to_string()),
            },
            None => report.error(None, None, "no format version recorded".into()),
        }
        let fingerprint = self.ctx.plan.fingerprint();
        let stored = self
            .meta
            .get(META_INDEX_CONFIG)?
            .map(|g| g.value().to_vec());
        if stored.as_deref() != Some(fingerprint.as_slice()) {
            report.warning(
                None,
                None,
                "the attribute indexes were built for another index configuration".into(),
            );
        }

        // Pass over the entries: decode, DN row, counters, expected parent, expected index
        // rows (summarised).
        report.begin(
            "entries",
            "every entry decodes; ids and USNs are below their counters",
            "restore the last good backup (`dird restore`); a USN or id counter behind the \
             entries means writes were lost or the file was edited",
        );
        let mut dns: HashMap<EntryId, String> = HashMap::new();
        let mut parents: HashMap<EntryId, EntryId> = HashMap::new();
        let mut expected: BTreeMap<(IndexKind, String), Summary> = BTreeMap::new();
        let mut max_id = 0;
        let mut undecodable = BTreeSet::new();
        let mut decoded = Vec::new();
        for item in self.entries.iter()? {
            let (id, bytes) = item?;
            let id = id.value();
            max_id = max_id.max(id);
            let entry = match encode::decode(bytes.value()) {
                Ok(e) => e,
                Err(e) => {
                    report.error(Some(id), None, format!("cannot be decoded: {e}"));
                    undecodable.insert(id);
                    continue;
                }
            };
            let dn = entry.dn.to_string();
            if id == ROOT_ID {
                report.error(
                    Some(id),
                    Some(dn.clone()),
                    "id 0 is reserved for the root DN".into(),
                );
            }
            if next_id.is_some_and(|n| id >= n) {
                report.error(
                    Some(id),
                    Some(dn.clone()),
                    format!(
                        "id is not below the next-id counter {}: a new entry would reuse it",
                        next_id.unwrap_or_default()
                    ),
                );
            }
            let changed = usn_value(&entry, "uSNChanged");
            let created = usn_value(&entry, "uSNCreated");
            match (created, changed) {
                (Some(Err(())), _) | (_, Some(Err(()))) => report.error(
                    Some(id),
                    Some(dn.clone()),
                    "uSNCreated or uSNChanged is not a number".into(),
                ),
                (c, Some(Ok(ch))) => {
                    if ch > usn {
                        report.error(
                            Some(id),
                            Some(dn.clone()),
                            format!("uSNChanged {ch} is above the USN counter {usn}"),
                        );
                    }
                    if let Some(Ok(cr)) = c {
                        if cr > ch {
                            report.error(
                                Some(id),
                                Some(dn.clone()),
                                format!("uSNCreated {cr} is above uSNChanged {ch}"),
                            );
                        }
                    }
                }
                (Some(Ok(cr)), None) => {
                    if cr > usn {
                        report.error(
                            Some(id),
                            Some(dn.clone()),
                            format!("uSNCreated {cr} is above the USN counter {usn}"),
                        );
                    }
                }
                (None, None) => {}
            }
            for (kind, key) in index::index_keys(&self.ctx.schema, &self.ctx.plan, &entry) {
                expected
                    .entry((kind, group_of(kind, &key)))
                    .or_default()
                    .add(kind, &key, id);
            }
            dns.insert(id, entry.dn.norm().to_string());
            decoded.push((id, entry.dn));
        }
        if next_id.is_none() && max_id > 0 {
            report.error(None, None, "the next-id counter is missing".into());
        }

        // DN table, both ways.
        report.begin(
            "dn",
            "the DN table and the entries agree both ways",
            "restore the last good backup (`dird restore`); the DN table is not derived data",
        );
        for (id, dn) in &decoded {
            match self.dns.get(dn.norm())? {
                Some(g) if g.value() == *id => {}
                Some(g) => report.error(
                    Some(*id),
                    Some(dn.to_string()),
                    format!("the DN table names id {} for this DN", g.value()),
                ),
                None => report.error(
                    Some(*id),
                    Some(dn.to_string()),
                    "the DN table has no row for this entry: it cannot be found by name".into(),
                ),
            }
        }
        for item in self.dns.iter()? {
            let (norm, id) = item?;
            let (norm, id) = (norm.value().to_string(), id.value());
            match dns.get(&id) {
                Some(n) if *n == norm => {}
                Some(n) => report.error(
                    Some(id),
                    Some(norm.clone()),
                    format!("the DN table maps this name to an entry named {n}"),
                ),
                None if undecodable.contains(&id) => {}
                None => report.error(
                    Some(id),
                    Some(norm.clone()),
                    "the DN table names an entry that does not exist".into(),
                ),
            }
        }

        // Parent links: exactly one children row per entry, at the parent the invariant
        // names (the parent DN's entry, else 0 with no existing ancestor).
        report.begin(
            "children",
            "every entry has exactly one parent row, at its parent DN's entry",
            "restore the last good backup (`dird restore`): one-level and subtree searches \
             miss or repeat entries until then",
        );
        for (id, dn) in &decoded {
            let mut parent = ROOT_ID;
            if let Some(p) = dn.parent().filter(|p| !p.is_root()) {
                match self.dns.get(p.norm())? {
                    Some(g) => parent = g.value(),
                    None => {
                        let mut up = p.parent();
                        while let Some(a) = up.filter(|a| !a.is_root()) {
                            if self.dns.get(a.norm())?.is_some() {
                                report.error(
                                    Some(*id),
                                    Some(dn.to_string()),
                                    format!("the parent entry {p} is missing while {a} exists"),
                                );
                                break;
                            }
                            up = a.parent();
                        }
                    }
                }
            }
            parents.insert(*id, parent);
        }
        let mut seen: HashMap<EntryId, EntryId> = HashMap::new();
        for item in self.children.iter()? {
            let (parent, children) = item?;
            let parent = parent.value();
            for child in children {
                let child = child?.value();
                let dn = dns.get(&child).cloned();
                if undecodable.contains(&child) {
                    continue;
                }
                if dn.is_none() {
                    report.error(
                        Some(child),
                        None,
                        format!(
                            "a parent row under id {parent} names an entry that does not exist"
                        ),
                    );
                    continue;
                }
                if let Some(first) = seen.insert(child, parent) {
                    report.error(
                        Some(child),
                        dn.clone(),
                        format!("has two parent rows (ids {first} and {parent})"),
                    );
                }
                if parents.get(&child).is_some_and(|p| *p != parent) {
                    report.error(
                        Some(child),
                        dn,
                        format!(
                            "is listed under id {parent}, its parent is id {}",
                            parents.get(&child).copied().unwrap_or_default()
                        ),
                    );
                }
            }
        }
        for (id, dn) in &decoded {
            if !seen.contains_key(id) {
                report.error(
                    Some(*id),
                    Some(dn.to_string()),
                    "has no parent row: searches below its parent do not find it".into(),
                );
            }
        }

        // Attribute indexes: compare the summaries, then name the rows of groups that differ.
        report.begin(
            "index",
            "the attribute index tables hold exactly the rows the entries produce",
            "the indexes are derived data: `dird check-store --repair` rebuilds them from the \
             entries (daemon stopped)",
        );
        let mut actual: BTreeMap<(IndexKind, String), Summary> = BTreeMap::new();
        for kind in [
            IndexKind::Equality,
            IndexKind::Presence,
            IndexKind::Substring,
        ] {
            for item in self.index(kind).iter()? {
                let (key, ids) = item?;
                let key = key.value();
                let group = group_of(kind, key);
                let s = actual.entry((kind, group)).or_default();
                for id in ids {
                    s.add(kind, key, id?.value());
                }
            }
        }
        let groups: BTreeSet<&(IndexKind, String)> = expected.keys().chain(actual.keys()).collect();
        for g in groups {
            if expected.get(g) == actual.get(g) {
                continue;
            }
            self.diagnose_index(report, g.0, &g.1, &dns)?;
        }
        Ok(())
    }

    /// Names the missing and stale rows of one (table, attribute) group.
    fn diagnose_index(
        &self,
        report: &mut Report,
        kind: IndexKind,
        attr: &str,
        dns: &HashMap<EntryId, String>,
    ) -> Result<()> {
        let mut want: BTreeSet<(Vec<u8>, EntryId)> = BTreeSet::new();
        for item in self.entries.iter()? {
            let (id, bytes) = item?;
            let Ok(entry) = encode::decode(bytes.value()) else {
                continue;
            };
            for (k, key) in index::index_keys(&self.ctx.schema, &self.ctx.plan, &entry) {
                if k == kind && group_of(k, &key) == attr {
                    want.insert((key, id.value()));
                }
            }
        }
        let mut have: BTreeSet<(Vec<u8>, EntryId)> = BTreeSet::new();
        let prefix = match kind {
            IndexKind::Presence => attr.as_bytes().to_vec(),
            _ => index::joined(attr, b""),
        };
        for item in self.index(kind).range::<&[u8]>(prefix.as_slice()..)? {
            let (key, ids) = item?;
            let key = key.value();
            if !key.starts_with(&prefix) {
                break;
            }
            if group_of(kind, key) != attr {
                continue;
            }
            for id in ids {
                have.insert((key.to_vec(), id?.value()));
            }
        }
        let table = match kind {
            IndexKind::Equality => "idx_eq",
            IndexKind::Presence => "idx_pres",
            IndexKind::Substring => "idx_sub",
        };
        for (key, id) in want.difference(&have) {
            report.error(
                Some(*id),
                dns.get(id).cloned(),
                format!(
                    "{table} lacks the row {}: searches on {attr} miss this entry",
                    show_key(key)
                ),
            );
        }
        for (key, id) in have.difference(&want) {
            let what = if dns.contains_key(id) {
                "the entry does not hold that value"
            } else {
                "no entry has that id"
            };
            report.error(
                Some(*id),
                dns.get(id).cloned(),
                format!("{table} has a stale row {}: {what}", show_key(key)),
            );
        }
        Ok(())
    }
}

impl ReadTxn {
    /// Calls `f` for every entry that decodes, in id order, until it returns false (the
    /// checks report the others; `StoreRead::scan` stops at the first).
    pub fn scan_decodable(
        &self,
        f: &mut dyn FnMut(EntryId, crate::model::Entry) -> bool,
    ) -> Result<()> {
        for item in self.entries.iter()? {
            let (id, bytes) = item?;
            if let Ok(e) = encode::decode(bytes.value()) {
                if !f(id.value(), e) {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Row count plus a wrapping sum of row digests: equal for equal multisets of rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Summary {
    rows: u64,
    sum: u128,
}

impl Summary {
    fn add(&mut self, kind: IndexKind, key: &[u8], id: EntryId) {
        let mut h = Sha256::new();
        h.update([kind as u8]);
        h.update((key.len() as u64).to_be_bytes());
        h.update(key);
        h.update(id.to_be_bytes());
        let d = h.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        self.rows += 1;
        self.sum = self.sum.wrapping_add(u128::from_be_bytes(b));
    }
}

/// The attribute an index key belongs to.
fn group_of(kind: IndexKind, key: &[u8]) -> String {
    let attr = match kind {
        IndexKind::Presence => key,
        _ => key.split(|b| *b == 0).next().unwrap_or(key),
    };
    String::from_utf8_lossy(attr).into_owned()
}

/// An index key for a message: `attr=value` with non-printable bytes escaped.
fn show_key(key: &[u8]) -> String {
    let text: String = key
        .iter()
        .map(|&b| {
            if b == 0 {
                "=".to_string()
            } else if b.is_ascii_graphic() || b == b' ' {
                (b as char).to_string()
            } else {
                format!("\\{b:02x}")
            }
        })
        .collect();
    format!("`{text}`")
}

/// A USN attribute: absent, a number, or garbage.
fn usn_value(e: &crate::model::Entry, attr: &str) -> Option<std::result::Result<u64, ()>> {
    e.first_str(attr)
        .map(|v| v.trim().parse::<u64>().map_err(|_| ()))
        .or_else(|| (!e.values(attr).is_empty()).then_some(Err(())))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use redb::Durability;

    use super::*;
    use crate::model::{Dn, Entry, Schema};
    use crate::store::tables::{CHILDREN, DNS, ENTRIES, EQUALITY, META, META_USN, SUBSTRING};
    use crate::store::{IndexConfig, Store};

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    /// dc=example,dc=com / ou=People / uid=alice, uid=bob — with USN stamps like the backend's.
    fn seeded(path: &Path) -> (Store, [EntryId; 4]) {
        let schema = Arc::new(Schema::builtin().unwrap());
        let store = Store::open(path, schema, IndexConfig::default_attrs()).unwrap();
        let mut w = store.write().unwrap();
        let mut ids = Vec::new();
        for (d, class, uid) in [
            ("dc=example,dc=com", "domain", None),
            ("ou=People,dc=example,dc=com", "organizationalUnit", None),
            (
                "uid=alice,ou=People,dc=example,dc=com",
                "inetOrgPerson",
                Some("alice"),
            ),
            (
                "uid=bob,ou=People,dc=example,dc=com",
                "inetOrgPerson",
                Some("bob"),
            ),
        ] {
            let mut e = Entry::new(dn(d));
            e.push("objectClass", b"top".to_vec());
            e.push("objectClass", class.as_bytes().to_vec());
            if let Some(u) = uid {
                e.set_str("uid", u);
                e.set_str("cn", &format!("{u} Liddell"));
            }
            let usn = w.next_usn().unwrap();
            e.set_str("uSNCreated", &usn.to_string());
            e.set_str("uSNChanged", &usn.to_string());
            ids.push(w.add(&e).unwrap());
        }
        w.commit().unwrap();
        (store, [ids[0], ids[1], ids[2], ids[3]])
    }

    fn report(store: &Store) -> Report {
        let mut r = Report::default();
        store.read().unwrap().check_store(&mut r).unwrap();
        r
    }

    /// A raw redb write: bypasses every invariant the store keeps.
    fn corrupt(store: &Store, f: impl FnOnce(&redb::WriteTransaction)) {
        let mut txn = store.db.get().unwrap().begin_write().unwrap();
        f(&txn);
        txn.set_durability(Durability::Immediate).unwrap();
        txn.commit().unwrap();
    }

    fn errors_of(r: &Report, check: &str) -> Vec<String> {
        let c = r.check(check).unwrap();
        assert_eq!(
            c.errors as usize,
            c.findings.len(),
            "{check}: {:?}",
            c.findings
        );
        c.findings.iter().map(|f| f.message.clone()).collect()
    }

    /// The report fails exactly in `check` (every other check is clean).
    fn only_fails(r: &Report, check: &str) {
        for c in &r.checks {
            if c.name != check {
                assert_eq!(
                    c.errors, 0,
                    "{} unexpectedly failed: {:?}",
                    c.name, c.findings
                );
            }
        }
        assert!(r.check(check).unwrap().errors > 0, "{check} did not fire");
    }

    #[test]
    fn a_consistent_store_is_clean() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _) = seeded(&tmp.path().join("d.redb"));
        let r = report(&store);
        assert_eq!((r.errors(), r.warnings()), (0, 0), "{}", r.render());
        assert_eq!(r.entries, 4);
        assert_eq!(r.usn, 4);
        // Writes through the API (rename, delete) keep it clean.
        let mut w = store.write().unwrap();
        let (id, mut e) = w
            .entry_by_dn(&dn("uid=bob,ou=People,dc=example,dc=com"))
            .unwrap()
            .unwrap();
        e.dn = dn("uid=robert,dc=example,dc=com");
        e.set_str("uid", "robert");
        w.rename(id, &e).unwrap();
        let alice = w
            .id_of(&dn("uid=alice,ou=People,dc=example,dc=com"))
            .unwrap()
            .unwrap();
        w.delete(alice).unwrap();
        w.commit().unwrap();
        let r = report(&store);
        assert_eq!(r.errors(), 0, "{}", r.render());
    }

    #[test]
    fn a_missing_or_stale_index_row_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, [_, _, alice, _]) = seeded(&tmp.path().join("d.redb"));
        corrupt(&store, |t| {
            let mut eq = t.open_multimap_table(EQUALITY).unwrap();
            assert!(eq.remove(b"uid\0alice".as_slice(), alice).unwrap());
            eq.insert(b"uid\0mallory".as_slice(), 999).unwrap();
            let mut sub = t.open_multimap_table(SUBSTRING).unwrap();
            sub.insert(b"cn\0zzz".as_slice(), alice).unwrap();
        });
        let r = report(&store);
        only_fails(&r, "index");
        let msgs = errors_of(&r, "index");
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(
            msgs.iter()
                .any(|m| m.contains("idx_eq lacks the row `uid=alice`")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(
                |m| m.contains("stale row `uid=mallory`") && m.contains("no entry has that id")
            ),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("idx_sub has a stale row `cn=zzz`")),
            "{msgs:?}"
        );
        // The remedy works: rebuilding the indexes makes the store clean again.
        store.reindex().unwrap();
        assert_eq!(report(&store).errors(), 0);
    }

    #[test]
    fn dn_table_damage_is_found_both_ways() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, [_, _, alice, bob]) = seeded(&tmp.path().join("d.redb"));
        corrupt(&store, |t| {
            let mut dns = t.open_table(DNS).unwrap();
            dns.remove("uid=alice,ou=people,dc=example,dc=com").unwrap();
            dns.insert("uid=bob,ou=people,dc=example,dc=com", alice)
                .unwrap();
            dns.insert("uid=ghost,dc=example,dc=com", 4242).unwrap();
        });
        let r = report(&store);
        let msgs = errors_of(&r, "dn");
        assert!(
            msgs.iter().any(|m| m.contains("has no row for this entry")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains(&format!("names id {alice}"))),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("maps this name to an entry named uid=alice")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("names an entry that does not exist")),
            "{msgs:?}"
        );
        let _ = bob;
    }

    #[test]
    fn parent_rows_must_match_the_parent_dn() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, [base, people, alice, bob]) = seeded(&tmp.path().join("d.redb"));
        corrupt(&store, |t| {
            let mut ch = t.open_multimap_table(CHILDREN).unwrap();
            assert!(ch.remove(people, alice).unwrap()); // alice: no parent row
            ch.insert(base, bob).unwrap(); // bob: a second, wrong parent row
            ch.insert(people, 777).unwrap(); // a child that does not exist
        });
        let r = report(&store);
        only_fails(&r, "children");
        let msgs = errors_of(&r, "children");
        assert!(
            msgs.iter().any(|m| m.contains("has no parent row")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("has two parent rows")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains(&format!(
                "is listed under id {base}, its parent is id {people}"
            ))),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("names an entry that does not exist")),
            "{msgs:?}"
        );
    }

    #[test]
    fn usn_and_id_counters_behind_the_entries_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, [_, _, _, bob]) = seeded(&tmp.path().join("d.redb"));
        corrupt(&store, |t| {
            let mut meta = t.open_table(META).unwrap();
            meta.insert(META_USN, 2u64.to_be_bytes().as_slice())
                .unwrap();
            meta.insert(META_NEXT_ID, bob.to_be_bytes().as_slice())
                .unwrap();
        });
        let r = report(&store);
        only_fails(&r, "entries");
        let msgs = errors_of(&r, "entries");
        assert!(
            msgs.iter()
                .any(|m| m.contains("uSNChanged 3 is above the USN counter 2")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("uSNChanged 4 is above the USN counter 2")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("not below the next-id counter")),
            "{msgs:?}"
        );
    }

    #[test]
    fn an_undecodable_entry_is_reported_and_the_rest_still_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, [_, _, alice, bob]) = seeded(&tmp.path().join("d.redb"));
        corrupt(&store, |t| {
            let mut entries = t.open_table(ENTRIES).unwrap();
            entries.insert(alice, b"\xffgarbage".as_slice()).unwrap();
            let mut eq = t.open_multimap_table(EQUALITY).unwrap();
            eq.remove(b"uid\0bob".as_slice(), bob).unwrap();
        });
        let r = report(&store);
        let msgs = errors_of(&r, "entries");
        assert!(
            msgs.iter().any(|m| m.contains("cannot be decoded")),
            "{msgs:?}"
        );
        // bob's missing row is still named
        let idx = errors_of(&r, "index");
        assert!(
            idx.iter().any(|m| m.contains("lacks the row `uid=bob`")),
            "{idx:?}"
        );
        let mut seen = Vec::new();
        store
            .read()
            .unwrap()
            .scan_decodable(&mut |id, _| {
                seen.push(id);
                true
            })
            .unwrap();
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn findings_beyond_the_examples_are_counted() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, [_, _, alice, _]) = seeded(&tmp.path().join("d.redb"));
        corrupt(&store, |t| {
            let mut eq = t.open_multimap_table(EQUALITY).unwrap();
            for i in 0..(MAX_EXAMPLES + 10) {
                eq.insert(format!("uid\0x{i}").as_bytes(), alice).unwrap();
            }
        });
        let r = report(&store);
        let c = r.check("index").unwrap();
        assert_eq!(c.errors as usize, MAX_EXAMPLES + 10);
        assert_eq!(c.findings.len(), MAX_EXAMPLES);
        assert!(r.render().contains("… and 10 more"), "{}", r.render());
    }
}
