//! Replica mode of the store (cluster, issue 17): the change list a write records, the
//! [`Replicator`] it is handed to instead of the redb commit, and the apply path that makes
//! the local file follow the cluster (the changes of one cluster revision, or a whole
//! snapshot after the history was compacted).
//! May import: `model`, `redb`, `store`. Must not import: the cluster transport (etcd): the
//! replicator is a trait object that the composition root sets on the store.
//!
//! Invariants:
//! - Only entries (by id, as `encode` bytes) and replicated meta travel; the apply path
//!   derives the `dn`, `children` and attribute index rows from the entries, by difference,
//!   so every replica builds its own indexes (with its own index configuration).
//! - `cluster.applied_rev` and `cluster.head_rev` are written in the same redb transaction
//!   as the changes they cover, so a crash never leaves the replica claiming a revision it
//!   does not hold.
//! - A replicated write never commits to the local file: its redb transaction is aborted
//!   before the replicator is called (the apply path needs the write lock to apply it).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable};

use crate::model::entry::Entry;

use super::sealed::Source;
use super::tables::{
    CHILDREN, DNS, ENTRIES, META, META_FORMAT_VERSION, META_INDEX_CONFIG, META_NEXT_ID, META_USN,
    ROOT_ID,
};
use super::{encode, index, meta_u64, EntryId, Result, StoreError, WriteTxn};

/// Meta keys with this prefix belong to the replica itself and are never replicated.
pub const CLUSTER_META_PREFIX: &str = "cluster.";
/// Meta key: the last cluster revision applied to this replica (8 bytes big-endian).
pub const META_APPLIED_REV: &str = "cluster.applied_rev";
/// Meta key: the revision of the cluster head this replica holds (8 bytes big-endian).
pub const META_HEAD_REV: &str = "cluster.head_rev";

/// One change a replicated write made, in the order it made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The entry's new state (`encode` bytes), or `None`: deleted.
    Entry(EntryId, Option<Vec<u8>>),
    /// A meta value (keys are never deleted).
    Meta(String, Vec<u8>),
}

/// Commits a replicated write cluster-wide. Implemented by the cluster module.
pub trait Replicator: Send + Sync {
    /// Commits `changes` if the cluster head is still the one this replica held when the
    /// write began (`base_head`), and returns the cluster revision once this replica has
    /// applied it (read-your-writes). Errors: `Conflict` (the head moved; the replica has
    /// caught up, re-run the operation), `Unavailable` (the cluster cannot be reached or the
    /// outcome is unknown), `ClusterLimit` (too large for one cluster transaction).
    fn commit(&self, base_head: u64, changes: Vec<Change>) -> Result<u64>;

    /// Ok if this replica is fresh enough to serve reads; `Unavailable` otherwise.
    fn check_read(&self) -> Result<()>;
}

/// How a store in a cluster behaves.
#[derive(Clone)]
pub enum ReplicaMode {
    /// Writes go through the replicator; reads are gated by its freshness check.
    Replicated(Arc<dyn Replicator>),
    /// Writes are refused with `Unavailable(reason)` (e.g. an offline command on a cluster
    /// node, which would otherwise write to its replica only).
    ReadOnly(String),
}

impl ReplicaMode {
    pub(super) fn check_read(&self) -> Result<()> {
        match self {
            ReplicaMode::Replicated(r) => r.check_read(),
            ReplicaMode::ReadOnly(_) => Ok(()),
        }
    }
}

impl std::fmt::Debug for ReplicaMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplicaMode::Replicated(_) => f.write_str("Replicated"),
            ReplicaMode::ReadOnly(why) => write!(f, "ReadOnly({why})"),
        }
    }
}

/// Lets one replicated write of this process run at a time (see `Ctx::gate`). Taken before
/// the redb write lock and released after the cluster commit; the apply path never takes it.
#[derive(Debug, Default)]
pub struct Gate {
    busy: std::sync::Mutex<bool>,
    free: std::sync::Condvar,
}

/// A held `Gate`, released on drop.
pub(super) struct Held(Arc<Gate>);

impl Gate {
    pub(super) fn enter(gate: &Arc<Gate>) -> Held {
        let mut busy = gate
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *busy {
            busy = gate
                .free
                .wait(busy)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *busy = true;
        Held(gate.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut busy = self
            .0
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *busy = false;
        self.0.free.notify_one();
    }
}

/// What a replicated write touched, in first-touch order (final states are read at commit).
pub(super) struct ChangeLog {
    replicator: Arc<dyn Replicator>,
    _held: Held,
    base_head: u64,
    entries: Vec<EntryId>,
    seen: HashSet<EntryId>,
    meta: Vec<String>,
}

impl ChangeLog {
    pub(super) fn new(replicator: Arc<dyn Replicator>, base_head: u64, held: Held) -> ChangeLog {
        ChangeLog {
            replicator,
            _held: held,
            base_head,
            entries: Vec::new(),
            seen: HashSet::new(),
            meta: Vec::new(),
        }
    }

    pub(super) fn meta(&mut self, key: &str) {
        if !self.meta.iter().any(|k| k == key) {
            self.meta.push(key.to_string());
        }
    }
}

/// True for meta keys that travel between replicas: all but the local file's format and
/// index fingerprint and the replica's own revisions.
pub fn is_replicated_meta(key: &str) -> bool {
    key != META_FORMAT_VERSION && key != META_INDEX_CONFIG && !key.starts_with(CLUSTER_META_PREFIX)
}

/// One entry's move from its state before a batch of changes to its state after.
struct Step {
    id: EntryId,
    old: Option<Entry>,
    old_parent: EntryId,
    new: Option<(Entry, Vec<u8>)>,
}

impl WriteTxn {
    /// Notes that entry `id` changed (replica mode only).
    pub(super) fn record(&mut self, id: EntryId) {
        if let Some(log) = self.log.as_mut() {
            if log.seen.insert(id) {
                log.entries.push(id);
            }
        }
    }

    /// The replicated commit: collect the final states, abort the local transaction, hand
    /// the list to the replicator.
    pub(super) fn commit_replicated(self, log: ChangeLog) -> Result<()> {
        let mut changes = Vec::with_capacity(log.entries.len() + log.meta.len() + 2);
        {
            let entries = self.txn.open_table(ENTRIES)?;
            for &id in &log.entries {
                let state = entries.get(id)?.map(|g| g.value().to_vec());
                changes.push(Change::Entry(id, state));
            }
        }
        {
            let meta = self.txn.open_table(META)?;
            for key in &log.meta {
                if let Some(v) = meta.get(key.as_str())? {
                    changes.push(Change::Meta(key.clone(), v.value().to_vec()));
                }
            }
        }
        if self.counters_dirty {
            changes.push(Change::Meta(
                META_NEXT_ID.into(),
                self.next_id.to_be_bytes().to_vec(),
            ));
            changes.push(Change::Meta(
                META_USN.into(),
                self.usn.to_be_bytes().to_vec(),
            ));
        }
        self.txn.abort()?;
        if changes.is_empty() {
            return Ok(());
        }
        log.replicator.commit(log.base_head, changes).map(|_| ())
    }

    /// (applied revision, head revision) of this replica; zeros before the first apply.
    pub fn replica_revisions(&self) -> Result<(u64, u64)> {
        let meta = self.txn.open_table(META)?;
        Ok((
            meta_u64(&meta, META_APPLIED_REV)?.unwrap_or(0),
            meta_u64(&meta, META_HEAD_REV)?.unwrap_or(0),
        ))
    }

    /// Records the revisions this transaction brings the replica to (`head`: only when the
    /// head key changed in them).
    pub fn set_replica_revisions(&mut self, applied: u64, head: Option<u64>) -> Result<()> {
        let mut meta = self.txn.open_table(META)?;
        meta.insert(META_APPLIED_REV, applied.to_be_bytes().as_slice())?;
        if let Some(h) = head {
            meta.insert(META_HEAD_REV, h.to_be_bytes().as_slice())?;
        }
        Ok(())
    }

    /// Applies the changes of one cluster revision (in order; an entry changed twice takes
    /// its last state). Meta keys that are not replicated are refused as `Corrupt`.
    pub fn apply_changes(&mut self, changes: &[Change]) -> Result<()> {
        let mut order: Vec<EntryId> = Vec::new();
        let mut last: BTreeMap<EntryId, Option<&[u8]>> = BTreeMap::new();
        for c in changes {
            match c {
                Change::Entry(id, state) => {
                    if last.insert(*id, state.as_deref()).is_none() {
                        order.push(*id);
                    }
                }
                Change::Meta(key, value) => self.apply_meta(key, value)?,
            }
        }
        let states: Vec<(EntryId, Option<&[u8]>)> = order
            .into_iter()
            .map(|id| (id, last.get(&id).copied().flatten()))
            .collect();
        self.apply_entries(&states)
    }

    /// Sets a replicated meta value as received (reserved store counters included).
    pub fn apply_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        if !is_replicated_meta(key) {
            return Err(StoreError::Corrupt(format!(
                "meta key {key:?} is local to each replica and cannot be applied"
            )));
        }
        self.txn.open_table(META)?.insert(key, value)?;
        Ok(())
    }

    /// Makes the local entries and replicated meta equal to a snapshot (a full resync after
    /// the cluster history was compacted, or `cluster join`): ids absent from the snapshot
    /// are removed, differing entries are applied, equal ones are left alone.
    pub fn resync(
        &mut self,
        entries: &BTreeMap<EntryId, Vec<u8>>,
        meta: &BTreeMap<String, Vec<u8>>,
    ) -> Result<()> {
        let mut states: Vec<(EntryId, Option<&[u8]>)> = Vec::new();
        let mut same: HashSet<EntryId> = HashSet::new();
        {
            let table = self.txn.open_table(ENTRIES)?;
            for item in table.iter()? {
                let (id, bytes) = item?;
                let id = id.value();
                match entries.get(&id) {
                    None => states.push((id, None)),
                    Some(b) if b.as_slice() == bytes.value() => {
                        same.insert(id);
                    }
                    Some(_) => {}
                }
            }
        }
        for (id, bytes) in entries {
            if !same.contains(id) {
                states.push((*id, Some(bytes.as_slice())));
            }
        }
        self.apply_entries(&states)?;
        let stale: Vec<String> = {
            let table = self.txn.open_table(META)?;
            let mut keys = Vec::new();
            for item in table.iter()? {
                let (k, _) = item?;
                let k = k.value();
                if is_replicated_meta(k) && !meta.contains_key(k) {
                    keys.push(k.to_string());
                }
            }
            keys
        };
        {
            let mut table = self.txn.open_table(META)?;
            for k in stale {
                table.remove(k.as_str())?;
            }
        }
        for (k, v) in meta {
            if is_replicated_meta(k) {
                self.apply_meta(k, v)?;
            }
        }
        Ok(())
    }

    /// Applies entry states: removals deepest first, then additions and changes shallowest
    /// first, each with its DN, parent and index rows derived from the entry (parents are
    /// taken from the state before the batch, so a renamed subtree keeps its links).
    fn apply_entries(&mut self, states: &[(EntryId, Option<&[u8]>)]) -> Result<()> {
        if states.is_empty() {
            return Ok(());
        }
        let mut steps = Vec::with_capacity(states.len());
        for &(id, bytes) in states {
            if id == ROOT_ID {
                return Err(StoreError::Corrupt("a change names entry id 0".into()));
            }
            let old = self.load(id)?;
            let old_parent = match &old {
                Some(o) => self.current_parent(&o.dn)?,
                None => ROOT_ID,
            };
            let new = match bytes {
                Some(b) => Some((encode::decode(b)?, b.to_vec())),
                None => None,
            };
            steps.push(Step {
                id,
                old,
                old_parent,
                new,
            });
        }
        self.suffixes = None;
        let (mut removals, mut upserts): (Vec<Step>, Vec<Step>) =
            steps.into_iter().partition(|s| s.new.is_none());
        removals.sort_by_key(|s| std::cmp::Reverse(s.old.as_ref().map_or(0, |o| o.dn.depth())));
        upserts.sort_by_key(|s| s.new.as_ref().map_or(0, |(e, _)| e.dn.depth()));
        for s in removals {
            let Some(old) = s.old else { continue };
            {
                let mut dns = self.txn.open_table(DNS)?;
                let holder = dns.get(old.dn.norm())?.map(|g| g.value());
                if holder == Some(s.id) {
                    dns.remove(old.dn.norm())?;
                }
            }
            self.txn.open_table(ENTRIES)?.remove(s.id)?;
            {
                let mut children = self.txn.open_multimap_table(CHILDREN)?;
                children.remove(s.old_parent, s.id)?;
                // Children left behind (not expected: they are removed first) become
                // suffixes, which keeps the parent invariant.
                let left: Vec<EntryId> = super::child_ids(&children, s.id)?;
                for c in left {
                    children.remove(s.id, c)?;
                    children.insert(ROOT_ID, c)?;
                }
            }
            let keys = index::index_keys(&self.ctx.schema, &self.ctx.plan, &old);
            self.update_index(s.id, &keys, &std::collections::BTreeSet::new())?;
            self.suffixes = None;
        }
        for s in upserts {
            let Some((entry, bytes)) = s.new else {
                continue;
            };
            let dn_changed = s
                .old
                .as_ref()
                .is_none_or(|o| o.dn.norm() != entry.dn.norm());
            {
                let mut dns = self.txn.open_table(DNS)?;
                if let Some(old) = &s.old {
                    if dn_changed && dns.get(old.dn.norm())?.map(|g| g.value()) == Some(s.id) {
                        dns.remove(old.dn.norm())?;
                    }
                }
                dns.insert(entry.dn.norm(), s.id)?;
            }
            self.txn
                .open_table(ENTRIES)?
                .insert(s.id, bytes.as_slice())?;
            let new_parent = self.current_parent(&entry.dn)?;
            if s.old.is_none() || new_parent != s.old_parent {
                let mut children = self.txn.open_multimap_table(CHILDREN)?;
                if s.old.is_some() {
                    children.remove(s.old_parent, s.id)?;
                }
                children.insert(new_parent, s.id)?;
            }
            let empty = Entry::new(entry.dn.clone());
            self.reindex_entry(s.id, s.old.as_ref().unwrap_or(&empty), &entry)?;
            self.suffixes = None;
            if dn_changed {
                self.adopt_orphans(s.id, &entry.dn)?;
            }
        }
        Ok(())
    }
}

impl super::Store {
    /// (applied revision, head revision) of this replica, from the last committed state.
    pub fn replica_revisions(&self) -> Result<(u64, u64)> {
        let txn = self.db.get()?.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok((
            meta_u64(&meta, META_APPLIED_REV)?.unwrap_or(0),
            meta_u64(&meta, META_HEAD_REV)?.unwrap_or(0),
        ))
    }

    /// Every entry (`encode` bytes) and replicated meta value of one committed snapshot, in
    /// id and key order (`cluster init` seeds the cluster from it). Bypasses the read gate.
    pub fn replicated_snapshot(&self, f: &mut dyn FnMut(Change) -> Result<()>) -> Result<()> {
        let txn = self.db.get()?.begin_read()?;
        {
            let entries = txn.open_table(ENTRIES)?;
            for item in entries.iter()? {
                let (id, bytes) = item?;
                f(Change::Entry(id.value(), Some(bytes.value().to_vec())))?;
            }
        }
        let meta = txn.open_table(META)?;
        for item in meta.iter()? {
            let (k, v) = item?;
            if is_replicated_meta(k.value()) {
                f(Change::Meta(k.value().to_string(), v.value().to_vec()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::model::dn::Dn;
    use crate::model::filter::Filter;
    use crate::model::schema::Schema;
    use crate::store::check::Report;
    use crate::store::{IndexConfig, Store, StoreRead};

    /// Applies every write to each of `stores` (the writer's own included), like the cluster
    /// watch does, and checks the head like the cluster transaction does.
    struct Fanout {
        stores: Mutex<Vec<Store>>,
        rev: AtomicU64,
    }

    impl Replicator for Fanout {
        fn commit(&self, base_head: u64, changes: Vec<Change>) -> Result<u64> {
            let head = self.rev.load(Ordering::SeqCst);
            if base_head != head {
                return Err(StoreError::Conflict);
            }
            let rev = head + 1;
            for s in self.stores.lock().unwrap().iter() {
                let mut w = s.apply_txn()?;
                w.apply_changes(&changes)?;
                w.set_replica_revisions(rev, Some(rev))?;
                w.commit()?;
            }
            self.rev.store(rev, Ordering::SeqCst);
            Ok(rev)
        }
        fn check_read(&self) -> Result<()> {
            Ok(())
        }
    }

    fn open_at(path: &Path) -> Store {
        Store::open(
            path,
            Arc::new(Schema::builtin().unwrap()),
            IndexConfig::default_attrs(),
        )
        .unwrap()
    }

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    fn entry(d: &str, class: &str, attrs: &[(&str, &str)]) -> Entry {
        let mut e = Entry::new(dn(d));
        e.push("objectClass", b"top".to_vec());
        e.push("objectClass", class.as_bytes().to_vec());
        for (a, v) in attrs {
            e.push(a, v.as_bytes().to_vec());
        }
        e
    }

    fn dump(s: &Store) -> Vec<(EntryId, String, Entry)> {
        let r = s.read().unwrap();
        let mut out = Vec::new();
        r.scan(&mut |id, e| {
            out.push((id, e.dn.to_string(), e));
            true
        })
        .unwrap();
        out
    }

    fn assert_consistent(s: &Store) {
        let mut report = Report::default();
        s.read().unwrap().check_store(&mut report).unwrap();
        assert_eq!(report.errors(), 0, "{}", report.render());
    }

    fn uid(s: &Store, v: &str) -> Vec<EntryId> {
        let f = Filter::Equality("uid".into(), v.as_bytes().to_vec());
        s.read().unwrap().candidates(&f).unwrap().unwrap()
    }

    #[test]
    fn replicated_writes_rebuild_the_same_store_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let a = open_at(&dir.path().join("a.redb"));
        let b = open_at(&dir.path().join("b.redb"));
        let fan = Arc::new(Fanout {
            stores: Mutex::new(vec![a.clone(), b.clone()]),
            rev: AtomicU64::new(0),
        });
        assert!(a.set_replica_mode(ReplicaMode::Replicated(fan.clone())));

        let mut w = a.write().unwrap();
        w.add(&entry("dc=example,dc=com", "domain", &[])).unwrap();
        let people = w
            .add(&entry(
                "ou=People,dc=example,dc=com",
                "organizationalUnit",
                &[],
            ))
            .unwrap();
        let alice = w
            .add(&entry(
                "uid=alice,ou=People,dc=example,dc=com",
                "inetOrgPerson",
                &[("uid", "alice"), ("cn", "Alice")],
            ))
            .unwrap();
        w.next_usn().unwrap();
        w.set_meta("domain.sid", b"S-1-5-21-1").unwrap();
        w.commit().unwrap();
        // Nothing was committed by the write itself: the local file changed by the apply.
        assert_eq!(a.replica_revisions().unwrap(), (1, 1));
        assert_eq!(dump(&a).len(), 3);

        // A change, a subtree rename and a delete, each one revision.
        let mut w = a.write().unwrap();
        let mut e = w.entry(alice).unwrap().unwrap();
        e.set_str("uid", "alice2");
        w.replace(alice, &e).unwrap();
        w.commit().unwrap();
        let mut w = a.write().unwrap();
        w.add(&entry(
            "uid=bob,ou=People,dc=example,dc=com",
            "inetOrgPerson",
            &[("uid", "bob"), ("cn", "Bob")],
        ))
        .unwrap();
        w.commit().unwrap();
        let mut w = a.write().unwrap();
        w.rename(
            people,
            &entry("ou=Staff,dc=example,dc=com", "organizationalUnit", &[]),
        )
        .unwrap();
        w.commit().unwrap();
        let mut w = a.write().unwrap();
        let bob = w
            .id_of(&dn("uid=bob,ou=Staff,dc=example,dc=com"))
            .unwrap()
            .unwrap();
        w.delete(bob).unwrap();
        w.commit().unwrap();

        assert_eq!(b.replica_revisions().unwrap(), (5, 5));
        assert_eq!(dump(&a), dump(&b));
        assert_consistent(&a);
        assert_consistent(&b);
        assert_eq!(uid(&b, "alice2"), vec![alice]);
        assert!(uid(&b, "alice").is_empty());
        assert!(uid(&b, "bob").is_empty());
        let r = b.read().unwrap();
        assert_eq!(
            r.id_of(&dn("uid=alice,ou=Staff,dc=example,dc=com"))
                .unwrap(),
            Some(alice)
        );
        assert_eq!(r.usn().unwrap(), 1);
        assert_eq!(
            r.meta("domain.sid").unwrap().as_deref(),
            Some(&b"S-1-5-21-1"[..])
        );

        // A write begun on an old head is refused, and nothing reaches the file.
        fan.rev.store(99, Ordering::SeqCst);
        let mut w = a.write().unwrap();
        w.add(&entry("ou=X,dc=example,dc=com", "organizationalUnit", &[]))
            .unwrap();
        assert_eq!(w.commit(), Err(StoreError::Conflict));
        assert_eq!(dump(&a), dump(&b));
    }

    #[test]
    fn resync_makes_the_replica_equal_to_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let a = open_at(&dir.path().join("a.redb"));
        let c = open_at(&dir.path().join("c.redb"));
        // c: an old state (an entry since deleted, one since changed, a stray meta key)
        let mut w = c.write().unwrap();
        w.add(&entry("dc=example,dc=com", "domain", &[])).unwrap();
        w.add(&entry(
            "ou=Old,dc=example,dc=com",
            "organizationalUnit",
            &[],
        ))
        .unwrap();
        w.set_meta("stale", b"1").unwrap();
        w.commit().unwrap();
        let mut w = a.write().unwrap();
        w.add(&entry(
            "dc=example,dc=com",
            "domain",
            &[("description", "new")],
        ))
        .unwrap();
        w.next_usn().unwrap();
        w.add(&entry(
            "ou=New,dc=example,dc=com",
            "organizationalUnit",
            &[],
        ))
        .unwrap();
        w.add(&entry(
            "uid=carol,ou=New,dc=example,dc=com",
            "inetOrgPerson",
            &[("uid", "carol"), ("cn", "Carol")],
        ))
        .unwrap();
        w.set_meta("domain.sid", b"S-1").unwrap();
        w.commit().unwrap();

        let mut entries = BTreeMap::new();
        let mut meta = BTreeMap::new();
        a.replicated_snapshot(&mut |ch| {
            match ch {
                Change::Entry(id, Some(b)) => {
                    entries.insert(id, b);
                }
                Change::Entry(_, None) => unreachable!(),
                Change::Meta(k, v) => {
                    meta.insert(k, v);
                }
            }
            Ok(())
        })
        .unwrap();
        assert!(!meta.contains_key(META_FORMAT_VERSION));
        let mut w = c.apply_txn().unwrap();
        w.resync(&entries, &meta).unwrap();
        w.set_replica_revisions(42, Some(40)).unwrap();
        w.commit().unwrap();

        assert_eq!(dump(&a), dump(&c));
        assert_consistent(&c);
        assert_eq!(c.replica_revisions().unwrap(), (42, 40));
        let r = c.read().unwrap();
        assert_eq!(r.meta("stale").unwrap(), None);
        assert_eq!(r.usn().unwrap(), 1);
        assert_eq!(uid(&c, "carol").len(), 1);
    }

    #[test]
    fn read_only_replica_refuses_writes_and_cluster_meta_is_reserved() {
        let dir = tempfile::tempdir().unwrap();
        let a = open_at(&dir.path().join("a.redb"));
        let mut w = a.write().unwrap();
        assert!(matches!(
            w.set_meta(META_APPLIED_REV, b"x"),
            Err(StoreError::ReservedMetaKey(_))
        ));
        drop(w);
        assert!(a.set_replica_mode(ReplicaMode::ReadOnly("offline".into())));
        assert!(!a.set_replica_mode(ReplicaMode::ReadOnly("again".into())));
        assert!(matches!(a.write(), Err(StoreError::Unavailable(m)) if m == "offline"));
        assert!(a.read().is_ok());
        let mut w = a.apply_txn().unwrap();
        assert!(matches!(
            w.apply_meta(META_INDEX_CONFIG, b"x"),
            Err(StoreError::Corrupt(_))
        ));
    }
}
