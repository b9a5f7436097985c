//! Persistence on redb: entries under stable ids, the DN and parent indexes, attribute
//! indexes, counters and metadata. The only module that names `redb`.
//! May import: `model`, `redb`. Must not import: anything above `store` (backend, directory, …).
//!
//! The API is synchronous; async callers use `tokio::task::spawn_blocking` and never hold a
//! transaction across `.await`. Concurrency is redb's: many `ReadTxn`s (each a consistent
//! snapshot) and one `WriteTxn` at a time (`Store::write` blocks while another is open).
//!
//! Invariants:
//! - Entry ids come from a counter in meta, start at 1 and are never reused; id 0 stands for
//!   the root DN (the parent of suffix entries) and never holds an entry.
//! - An entry's parent (in `children`) is the entry named by its parent DN if one exists,
//!   else 0: the entry is a suffix (naming context), e.g. `dc=example,dc=com` with no
//!   `dc=com` entry.
//! - Every mutation keeps `entries`, `dn`, `children` and the attribute indexes in step inside
//!   one redb write transaction; `WriteTxn::commit` makes all of it durable at once
//!   (`Durability::Immediate`), dropping the `WriteTxn` discards all of it. The one exception,
//!   `WriteTxn::commit_deferred`, is for an offline import's intermediate batches, which are
//!   acknowledged only by the import's final durable commit.
//! - Logical errors (`AlreadyExists`, `NoParent`, `NotLeaf`, …) are detected before anything is
//!   written, so the transaction stays usable. After `Redb`/`Corrupt`/`Io`/`Full` errors the
//!   transaction may hold a partial change and must be dropped.
//! - After an I/O error (e.g. `ENOSPC` on a full file system) redb refuses every later
//!   operation on that `Database` ("Previous I/O error") until it is closed and re-opened. The
//!   store then re-opens the file by itself (`Handle::recover`) on the next `read`/`write`, so
//!   reads go on and writes work again once space returns; a commit that failed left the file
//!   at the previous commit (redb's commit writes the new header last), and the re-open runs
//!   redb's repair. While the file system stays full each write fails with `Full`.
//! - Replica mode (cluster, issue 17; see `replica`): with a [`Replicator`] set, a
//!   `WriteTxn` records what it changes (entries by id, meta by key, the counters) and its
//!   commit hands that list to the replicator instead of committing to redb; the local file
//!   is then only written by the apply path (`Store::apply_txn`, `WriteTxn::apply_entries`),
//!   which derives the DN, parent and attribute indexes itself. Without a replicator nothing
//!   is recorded (one `Option` check per table write).

pub mod check;
mod encode;
mod index;
mod migrate;
pub mod replica;
mod tables;

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{
    Database, Durability, MultimapTableDefinition, ReadOnlyMultimapTable, ReadOnlyTable,
    ReadTransaction, ReadableDatabase, ReadableMultimapTable, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};

use crate::model::dn::Dn;
use crate::model::entry::Entry;
use crate::model::filter::Filter;
use crate::model::schema::Schema;

pub use encode::{decode as decode_entry, encode as encode_entry, RECORD_VERSION};
pub use index::IndexConfig;
pub use tables::{FORMAT_VERSION, RESERVED_META_PREFIX};

use index::{IndexKey, IndexKind, IndexPlan};
use replica::ChangeLog;
pub use replica::{Change, ReplicaMode, Replicator, META_APPLIED_REV, META_HEAD_REV};
use sealed::{Ctx, Source};
use tables::{
    CHILDREN, DNS, ENTRIES, EQUALITY, META, META_FORMAT_VERSION, META_INDEX_CONFIG, META_NEXT_ID,
    META_USN, PRESENCE, ROOT_ID, SUBSTRING,
};

/// A stable entry identifier (never reused; 0 is the root DN and holds no entry).
pub type EntryId = u64;

/// Result type of this module.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// An entry with this DN exists (LDAP entryAlreadyExists).
    #[error("an entry with this DN already exists")]
    AlreadyExists,
    /// No entry with this id or DN (LDAP noSuchObject).
    #[error("no such entry")]
    NoSuchEntry,
    /// The parent of the DN does not exist (LDAP noSuchObject).
    #[error("the parent entry does not exist")]
    NoParent,
    /// The entry has children (LDAP notAllowedOnNonLeaf).
    #[error("the entry has subordinates")]
    NotLeaf,
    /// The root DN (empty DN) cannot be stored, renamed to or deleted.
    #[error("the root DN cannot be stored")]
    RootDn,
    /// `replace` was given an entry with a different DN (use `rename`).
    #[error("replace must keep the DN; use rename")]
    DnMismatch,
    /// `rename` would move an entry below itself.
    #[error("cannot move an entry below itself")]
    MoveIntoSubtree,
    /// The meta key is reserved for the store.
    #[error("meta key {0:?} is reserved for the store")]
    ReservedMetaKey(String),
    /// A component is too large for the record format.
    #[error("too large to store: {0}")]
    TooLarge(String),
    /// Stored bytes or tables are inconsistent.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// The file's format is newer (or has no upgrade path).
    #[error("store format version {found} is not supported (this build uses {expected})")]
    FormatVersion {
        /// version found in the file
        found: u32,
        /// version this build writes
        expected: u32,
    },
    /// File-system error.
    #[error("store I/O error: {0}")]
    Io(String),
    /// The file system holding the database is full (`ENOSPC`/`EDQUOT`): writes fail until
    /// space is freed; reads still work.
    #[error("the data directory is full ({0}); writes are refused until space is freed")]
    Full(String),
    /// Error reported by redb (includes "database already open").
    #[error("database error: {0}")]
    Redb(String),
    /// Replica mode: another node's write moved the cluster head since this write began;
    /// the replica has caught up, so re-run the whole operation.
    #[error("another node wrote first; retry")]
    Conflict,
    /// Replica mode: the cluster store cannot be reached, or the outcome of a write is
    /// unknown (the message says which), or this replica is too stale to serve reads.
    #[error("{0}")]
    Unavailable(String),
    /// Replica mode: the write is larger than one cluster transaction may be (the message
    /// names the limit).
    #[error("{0}")]
    ClusterLimit(String),
}

/// Handle to the database. Cheap to clone; all clones share one `redb::Database` (one
/// `Handle`, which replaces it after an I/O error).
#[derive(Clone)]
pub struct Store {
    db: Arc<Handle>,
    ctx: Arc<Ctx>,
    path: PathBuf,
}

impl Store {
    /// Opens `path`, creating the file if it does not exist. Checks the on-disk format
    /// version (a newer one fails with `FormatVersion`), runs `migrate` for older ones, and
    /// rebuilds the attribute indexes if `index` differs from the one they were built with.
    /// A file can be open once per process (redb's lock): share it by cloning the `Store`;
    /// a second `open` of the same file fails with `Redb("Database already open…")`.
    pub fn open(path: &Path, schema: Arc<Schema>, index: IndexConfig) -> Result<Store> {
        create_private(path)?;
        let db = Database::create(path)?;
        let plan = IndexPlan::new(&schema, &index);
        let ctx = Arc::new(Ctx {
            schema,
            plan,
            generation: std::sync::atomic::AtomicU64::new(0),
            replica: std::sync::OnceLock::new(),
            gate: Arc::default(),
        });
        let mut txn = db.begin_write()?;
        prepare(&txn, &ctx)?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        Ok(Store {
            db: Arc::new(Handle::new(db, path)),
            ctx,
            path: path.to_path_buf(),
        })
    }

    /// Begins a read transaction: a consistent snapshot as of the last commit.
    pub fn read(&self) -> Result<ReadTxn> {
        if let Some(mode) = self.ctx.replica.get() {
            mode.check_read()?;
        }
        let db = self.db.get()?;
        match self.read_on(&db) {
            Err(e) if e.is_io() => {
                let db = self.db.recover(db)?;
                self.read_on(&db).map_err(|e| self.db.failed(e))
            }
            other => other,
        }
    }

    fn read_on(&self, db: &Database) -> Result<ReadTxn> {
        // Read before the snapshot begins: the snapshot holds every write this counts.
        let generation = self.generation();
        let txn = db.begin_read()?;
        Ok(ReadTxn {
            generation,
            entries: txn.open_table(ENTRIES)?,
            dns: txn.open_table(DNS)?,
            children: txn.open_multimap_table(CHILDREN)?,
            equality: txn.open_multimap_table(EQUALITY)?,
            presence: txn.open_multimap_table(PRESENCE)?,
            substring: txn.open_multimap_table(SUBSTRING)?,
            meta: txn.open_table(META)?,
            _txn: txn,
            ctx: self.ctx.clone(),
        })
    }

    /// Begins the write transaction, waiting while another one is open.
    pub fn write(&self) -> Result<WriteTxn> {
        let db = self.db.get()?;
        match self.write_on(&db) {
            Err(e) if e.is_io() => {
                let db = self.db.recover(db)?;
                self.write_on(&db).map_err(|e| self.db.failed(e))
            }
            other => other,
        }
    }

    fn write_on(&self, db: &Database) -> Result<WriteTxn> {
        let replicator = match self.ctx.replica.get() {
            None => None,
            Some(ReplicaMode::ReadOnly(why)) => return Err(StoreError::Unavailable(why.clone())),
            Some(ReplicaMode::Replicated(r)) => Some(r.clone()),
        };
        let held = replicator
            .as_ref()
            .map(|_| replica::Gate::enter(&self.ctx.gate));
        let mut txn = self.begin_on(db)?;
        if let (Some(replicator), Some(held)) = (replicator, held) {
            // Read inside the write transaction: the apply path needs this same lock, so the
            // replica cannot move between this read and the end of the write.
            let base_head = txn.replica_revisions()?.1;
            txn.log = Some(Box::new(ChangeLog::new(replicator, base_head, held)));
        }
        Ok(txn)
    }

    fn begin_on(&self, db: &Database) -> Result<WriteTxn> {
        let txn = db.begin_write()?;
        let (next_id, usn) = {
            let meta = txn.open_table(META)?;
            (
                meta_u64(&meta, META_NEXT_ID)?.unwrap_or(1),
                meta_u64(&meta, META_USN)?.unwrap_or(0),
            )
        };
        Ok(WriteTxn {
            txn,
            ctx: self.ctx.clone(),
            handle: self.db.clone(),
            next_id,
            usn,
            counters_dirty: false,
            suffixes: None,
            log: None,
        })
    }

    /// Puts the store in replica mode (once per process; later calls are ignored and return
    /// false). `ReplicaMode::Replicated` routes every `write` through the replicator;
    /// `ReplicaMode::ReadOnly` refuses writes with `Unavailable` and the given reason.
    pub fn set_replica_mode(&self, mode: ReplicaMode) -> bool {
        self.ctx.replica.set(mode).is_ok()
    }

    /// Begins a write transaction on the local file itself, bypassing the replicator: the
    /// apply path of replica mode (and `cluster init`/`join`). Nothing it does is recorded.
    pub fn apply_txn(&self) -> Result<WriteTxn> {
        let db = self.db.get()?;
        match self.begin_on(&db) {
            Err(e) if e.is_io() => {
                let db = self.db.recover(db)?;
                self.begin_on(&db).map_err(|e| self.db.failed(e))
            }
            other => other,
        }
    }

    /// Size of the database file in bytes.
    pub fn file_size(&self) -> Result<u64> {
        Ok(std::fs::metadata(&self.path)?.len())
    }

    /// Writes a consistent copy of the database to `out` (which must not exist). The copy is
    /// taken from one read snapshot, so writers are not blocked and the copy reflects exactly
    /// one committed state. It is written to `out` + `.partial`, committed durably and then
    /// renamed, so `out` never holds a half-written file.
    pub fn backup(&self, out: &Path) -> Result<()> {
        if out.exists() {
            return Err(StoreError::Io(format!("{} already exists", out.display())));
        }
        let mut tmp_name = out.as_os_str().to_owned();
        tmp_name.push(".partial");
        let tmp = PathBuf::from(tmp_name);
        if tmp.exists() {
            std::fs::remove_file(&tmp)?;
        }
        let src = self.db.get()?.begin_read()?;
        {
            create_private(&tmp)?;
            let dst = Database::create(&tmp)?;
            let mut w = dst.begin_write()?;
            copy_table(&src, &w, ENTRIES)?;
            copy_table(&src, &w, DNS)?;
            copy_table(&src, &w, META)?;
            copy_multimap(&src, &w, CHILDREN)?;
            copy_multimap(&src, &w, EQUALITY)?;
            copy_multimap(&src, &w, PRESENCE)?;
            copy_multimap(&src, &w, SUBSTRING)?;
            w.set_durability(Durability::Immediate)?;
            w.commit()?;
        }
        std::fs::rename(&tmp, out)?;
        Ok(())
    }

    /// Rebuilds the attribute indexes from the entries (e.g. after the schema's
    /// normalisation changed). Returns the number of entries indexed.
    pub fn reindex(&self) -> Result<u64> {
        let mut txn = self.db.get()?.begin_write()?;
        let n = rebuild_indexes(&txn, &self.ctx)?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        Ok(n)
    }

    /// A counter that changes after every committed write of this process (it starts at 0
    /// when the store is opened). Read it *before* a read transaction: if it is unchanged
    /// later, nothing was committed since, so whatever was derived from that snapshot is
    /// still current (the KDC's principal cache relies on this).
    pub fn generation(&self) -> u64 {
        self.ctx
            .generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The schema the store normalises index keys with.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.ctx.schema
    }
}

/// Creates `path` empty with mode 0600 if it does not exist (whatever the umask), so the
/// database and its copies are never readable by others, not even for a moment; redb then
/// initialises the empty file. An existing file is left as it is (the daemon tightens modes
/// at start, see `daemon::files`).
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Read access shared by `ReadTxn` and `WriteTxn` (bring it into scope with
/// `use crate::store::StoreRead`). In a `WriteTxn` the methods see its uncommitted changes.
pub trait StoreRead: Source {
    /// The id of the entry named `dn`.
    fn id_of(&self, dn: &Dn) -> Result<Option<EntryId>> {
        self.lookup_dn(dn.norm())
    }

    /// The entry with this id.
    fn entry(&self, id: EntryId) -> Result<Option<Entry>> {
        self.load(id)
    }

    /// The entry with this id, with only the attributes `keep` accepts (given each name as
    /// stored); the others are skipped without being decoded (`encode::decode_projected`).
    fn entry_projected(
        &self,
        id: EntryId,
        keep: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Option<Entry>> {
        self.load_projected(id, keep)
    }

    /// The DN of the entry with this id, without decoding its attributes.
    fn dn_of(&self, id: EntryId) -> Result<Option<Dn>> {
        self.load_dn(id)
    }

    /// Only the attributes `names` (as stored, any case) of the entry named `dn`, in an entry
    /// carrying `dn` as given: one DN lookup and a partial decode (see
    /// `encode::decode_selected`), much cheaper than `entry_by_dn` when a caller needs one
    /// attribute of many entries.
    fn entry_attrs_by_dn(&self, dn: &Dn, names: &[&str]) -> Result<Option<Entry>> {
        let Some(id) = self.lookup_dn(dn.norm())? else {
            return Ok(None);
        };
        let mut e = Entry::new(dn.clone());
        if !self.load_attrs(id, names, &mut e)? {
            return Err(StoreError::Corrupt(format!(
                "dn index points to missing id {id}"
            )));
        }
        Ok(Some(e))
    }

    /// The entry named `dn`, with its id.
    fn entry_by_dn(&self, dn: &Dn) -> Result<Option<(EntryId, Entry)>> {
        let Some(id) = self.lookup_dn(dn.norm())? else {
            return Ok(None);
        };
        match self.load(id)? {
            Some(e) => Ok(Some((id, e))),
            None => Err(StoreError::Corrupt(format!(
                "dn index points to missing id {id}"
            ))),
        }
    }

    /// Ids of the immediate children, ascending. `children(0)` lists the suffix entries.
    fn children(&self, id: EntryId) -> Result<Vec<EntryId>> {
        self.child_ids(id)
    }

    /// True if the entry has at least one child.
    fn has_children(&self, id: EntryId) -> Result<bool> {
        self.has_child(id)
    }

    /// `id` followed by all its descendants, breadth first (every parent precedes its
    /// children). Does not check that `id` exists. `subtree(0)` lists every entry after 0.
    fn subtree(&self, id: EntryId) -> Result<Vec<EntryId>> {
        let mut out = vec![id];
        let mut queue = VecDeque::from([id]);
        while let Some(next) = queue.pop_front() {
            for child in self.child_ids(next)? {
                out.push(child);
                queue.push_back(child);
            }
        }
        Ok(out)
    }

    /// A sorted, deduplicated superset of the ids matching `filter`, from the indexes.
    /// `None`: the filter cannot be answered from the indexes and the caller must scan.
    fn candidates(&self, filter: &Filter) -> Result<Option<Vec<EntryId>>> {
        index::candidates(self, filter)
    }

    /// The ids of the entries holding a value of `attr` equal to `value` under the
    /// attribute's equality rule, straight from the equality index, ascending. Exact, not a
    /// superset: the key of an indexed value is its normalised form, and the schema's syntax
    /// check admits only values that normalise. `None` if `attr` has no equality index or
    /// `value` cannot be normalised (the caller must fall back to `candidates` + evaluation).
    fn equality_ids(&self, attr: &str, value: &[u8]) -> Result<Option<Vec<EntryId>>> {
        let ctx = self.ctx();
        let a = index::attr_key(&ctx.schema, attr);
        if !ctx.plan.has_equality(&a) {
            return Ok(None);
        }
        let Some(norm) = ctx.schema.normalize(&a, value) else {
            return Ok(None);
        };
        Ok(Some(self.index_ids(
            IndexKind::Equality,
            &index::joined(&a, &norm),
        )?))
    }

    /// The ids of the entries whose DN-valued `attr` holds `dn`, from the equality index,
    /// ascending: `equality_ids` for a value already in normal form. A DN's normal form is
    /// its equality key (distinguishedNameMatch), so this skips printing and re-parsing it
    /// (memberOf and the group walks of every bind). `None` as `equality_ids`.
    fn dn_value_ids(&self, attr: &str, dn: &Dn) -> Result<Option<Vec<EntryId>>> {
        let ctx = self.ctx();
        let a = index::attr_key(&ctx.schema, attr);
        if !ctx.plan.has_equality(&a) {
            return Ok(None);
        }
        Ok(Some(self.index_ids(
            IndexKind::Equality,
            &index::joined(&a, dn.norm().as_bytes()),
        )?))
    }

    /// Calls `f` for every entry in id order until it returns false.
    fn scan(&self, f: &mut dyn FnMut(EntryId, Entry) -> bool) -> Result<()> {
        self.scan_all(f)
    }

    /// Number of entries.
    fn count(&self) -> Result<u64> {
        self.entry_count()
    }

    /// Number of entries whose objectClass holds `class`: O(1) with the objectClass equality
    /// index, a full scan without it.
    fn count_where_class(&self, class: &str) -> Result<u64> {
        let ctx = self.ctx();
        let attr = index::attr_key(&ctx.schema, "objectClass");
        if ctx.plan.has_equality(&attr) {
            let value = index::value_key(&ctx.schema, &attr, class.as_bytes());
            return self.index_len(IndexKind::Equality, &index::joined(&attr, &value));
        }
        let mut n = 0;
        self.scan_all(&mut |_, e| {
            if e.is_a(class) {
                n += 1;
            }
            true
        })?;
        Ok(n)
    }

    /// The highest USN handed out (in a `WriteTxn`, including its own `next_usn` calls).
    fn usn(&self) -> Result<u64> {
        self.current_usn()
    }

    /// A metadata value.
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.meta_value(key)
    }

    /// For a read snapshot, `ReadTxn::generation`; `None` for the write transaction (its
    /// uncommitted changes belong to no generation, so nothing read through it is memoised).
    fn snapshot_generation(&self) -> Option<u64> {
        None
    }
}

/// A read snapshot. Holds its tables open; many may exist at once.
pub struct ReadTxn {
    /// `Store::generation` read just before the snapshot began.
    generation: u64,
    entries: ReadOnlyTable<u64, &'static [u8]>,
    dns: ReadOnlyTable<&'static str, u64>,
    children: ReadOnlyMultimapTable<u64, u64>,
    equality: ReadOnlyMultimapTable<&'static [u8], u64>,
    presence: ReadOnlyMultimapTable<&'static [u8], u64>,
    substring: ReadOnlyMultimapTable<&'static [u8], u64>,
    meta: ReadOnlyTable<&'static str, &'static [u8]>,
    _txn: ReadTransaction,
    ctx: Arc<Ctx>,
}

impl ReadTxn {
    /// The store's write generation read just before this snapshot began: every write
    /// counted by it is visible in the snapshot. Values derived from the snapshot may be
    /// memoised under it and served while `Store::generation` still equals it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn index(&self, kind: IndexKind) -> &ReadOnlyMultimapTable<&'static [u8], u64> {
        match kind {
            IndexKind::Equality => &self.equality,
            IndexKind::Presence => &self.presence,
            IndexKind::Substring => &self.substring,
        }
    }
}

impl StoreRead for ReadTxn {
    fn snapshot_generation(&self) -> Option<u64> {
        Some(self.generation)
    }
}

impl Source for ReadTxn {
    fn ctx(&self) -> &Ctx {
        &self.ctx
    }
    fn load(&self, id: EntryId) -> Result<Option<Entry>> {
        load_entry(&self.entries, id)
    }
    fn load_attrs(&self, id: EntryId, names: &[&str], into: &mut Entry) -> Result<bool> {
        load_attrs(&self.entries, id, names, into)
    }
    fn load_projected(
        &self,
        id: EntryId,
        keep: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Option<Entry>> {
        load_projected(&self.entries, id, keep)
    }
    fn load_dn(&self, id: EntryId) -> Result<Option<Dn>> {
        load_dn(&self.entries, id)
    }
    fn lookup_dn(&self, norm: &str) -> Result<Option<EntryId>> {
        Ok(self.dns.get(norm)?.map(|g| g.value()))
    }
    fn child_ids(&self, id: EntryId) -> Result<Vec<EntryId>> {
        child_ids(&self.children, id)
    }
    fn has_child(&self, id: EntryId) -> Result<bool> {
        Ok(!self.children.get(id)?.is_empty())
    }
    fn index_ids(&self, kind: IndexKind, key: &[u8]) -> Result<Vec<EntryId>> {
        ids_at(self.index(kind), key)
    }
    fn index_len(&self, kind: IndexKind, key: &[u8]) -> Result<u64> {
        Ok(self.index(kind).get(key)?.len())
    }
    fn index_prefix_ids(&self, kind: IndexKind, prefix: &[u8]) -> Result<Vec<EntryId>> {
        ids_with_prefix(self.index(kind), prefix)
    }
    fn scan_all(&self, f: &mut dyn FnMut(EntryId, Entry) -> bool) -> Result<()> {
        for item in self.entries.iter()? {
            let (id, bytes) = item?;
            if !f(id.value(), encode::decode(bytes.value())?) {
                break;
            }
        }
        Ok(())
    }
    fn entry_count(&self) -> Result<u64> {
        Ok(self.entries.len()?)
    }
    fn current_usn(&self) -> Result<u64> {
        Ok(meta_u64(&self.meta, META_USN)?.unwrap_or(0))
    }
    fn meta_value(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.meta.get(key)?.map(|g| g.value().to_vec()))
    }
}

/// The single write transaction. All changes commit together or not at all; dropping it
/// without `commit` discards them.
pub struct WriteTxn {
    txn: WriteTransaction,
    ctx: Arc<Ctx>,
    handle: Arc<Handle>,
    next_id: EntryId,
    usn: u64,
    counters_dirty: bool,
    /// Suffix entries (parent 0) with their parent DN's norm; loaded on demand, dropped
    /// whenever the set of suffixes may change.
    suffixes: Option<Vec<(EntryId, String)>>,
    /// Replica mode: what this transaction changed, for the replicator (None: standalone).
    log: Option<Box<ChangeLog>>,
}

impl WriteTxn {
    /// Increments the update sequence number and returns the new value.
    pub fn next_usn(&mut self) -> Result<u64> {
        self.usn = self
            .usn
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupt("USN overflow".into()))?;
        self.counters_dirty = true;
        Ok(self.usn)
    }

    /// Stores a new entry and returns its id. Errors: `AlreadyExists` if the DN is taken,
    /// `RootDn` for the empty DN, `NoParent` if the parent DN has no entry while some other
    /// ancestor does. An entry none of whose ancestors exists starts a new suffix (parent 0),
    /// so `dc=example,dc=com` can be added without `dc=com`; the caller (directory layer)
    /// decides which suffixes are allowed.
    pub fn add(&mut self, entry: &Entry) -> Result<EntryId> {
        if self.lookup_dn(entry.dn.norm())?.is_some() {
            return Err(StoreError::AlreadyExists);
        }
        let parent = self.parent_for_new(&entry.dn)?;
        let bytes = encode::encode(entry)?;
        let id = self.next_id;
        self.next_id = id
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupt("entry id space exhausted".into()))?;
        self.counters_dirty = true;
        self.txn.open_table(DNS)?.insert(entry.dn.norm(), id)?;
        self.txn.open_table(ENTRIES)?.insert(id, bytes.as_slice())?;
        self.record(id);
        self.txn.open_multimap_table(CHILDREN)?.insert(parent, id)?;
        let keys = index::index_keys(&self.ctx.schema, &self.ctx.plan, entry);
        self.update_index(id, &BTreeSet::new(), &keys)?;
        if parent == ROOT_ID {
            self.suffixes = None;
        }
        self.adopt_orphans(id, &entry.dn)?;
        Ok(id)
    }

    /// Replaces the stored entry `id` by `entry`, which must have the same (normalised) DN;
    /// the display form of the DN may change. Index rows are updated by difference.
    pub fn replace(&mut self, id: EntryId, entry: &Entry) -> Result<()> {
        let old = self.load(id)?.ok_or(StoreError::NoSuchEntry)?;
        if old.dn != entry.dn {
            return Err(StoreError::DnMismatch);
        }
        let bytes = encode::encode(entry)?;
        self.txn.open_table(ENTRIES)?.insert(id, bytes.as_slice())?;
        self.record(id);
        self.reindex_entry(id, &old, entry)
    }

    /// Deletes a leaf entry. Errors: `NoSuchEntry`, `NotLeaf`.
    pub fn delete(&mut self, id: EntryId) -> Result<()> {
        let old = self.load(id)?.ok_or(StoreError::NoSuchEntry)?;
        if self.has_child(id)? {
            return Err(StoreError::NotLeaf);
        }
        let parent = self.current_parent(&old.dn)?;
        if parent == ROOT_ID {
            self.suffixes = None;
        }
        self.txn.open_table(DNS)?.remove(old.dn.norm())?;
        self.txn.open_table(ENTRIES)?.remove(id)?;
        self.record(id);
        self.txn.open_multimap_table(CHILDREN)?.remove(parent, id)?;
        let keys = index::index_keys(&self.ctx.schema, &self.ctx.plan, &old);
        self.update_index(id, &keys, &BTreeSet::new())
    }

    /// Renames and/or moves entry `id` to `new_entry` (new DN and possibly changed
    /// attributes, e.g. the new RDN value). Updates the DN and parent indexes, the attribute
    /// indexes by difference, and rewrites the stored DN of every descendant (RFC 4511 §4.9:
    /// a moved entry takes its subtree with it). Errors: `NoSuchEntry`, `AlreadyExists`,
    /// `NoParent`, `MoveIntoSubtree`, `RootDn`.
    pub fn rename(&mut self, id: EntryId, new_entry: &Entry) -> Result<()> {
        let old = self.load(id)?.ok_or(StoreError::NoSuchEntry)?;
        if old.dn == new_entry.dn {
            // Same normalised DN: only the display form may change (e.g. `ou=people` →
            // `ou=People`); descendants carry the parent's display form, so rewrite them too.
            self.replace(id, new_entry)?;
            if old.dn.to_string() != new_entry.dn.to_string() {
                let descendants = self.subtree(id)?;
                self.rewrite_descendants(
                    descendants.get(1..).unwrap_or(&[]),
                    &old.dn,
                    &new_entry.dn,
                )?;
            }
            return Ok(());
        }
        if new_entry.dn.is_within(&old.dn) {
            return Err(StoreError::MoveIntoSubtree);
        }
        if self.lookup_dn(new_entry.dn.norm())?.is_some() {
            return Err(StoreError::AlreadyExists);
        }
        let new_parent = self.parent_for_new(&new_entry.dn)?;
        let old_parent = self.current_parent(&old.dn)?;
        if old_parent == ROOT_ID || new_parent == ROOT_ID {
            self.suffixes = None;
        }
        let descendants = self.subtree(id)?;

        let bytes = encode::encode(new_entry)?;
        {
            let mut dns = self.txn.open_table(DNS)?;
            dns.remove(old.dn.norm())?;
            dns.insert(new_entry.dn.norm(), id)?;
        }
        self.txn.open_table(ENTRIES)?.insert(id, bytes.as_slice())?;
        self.record(id);
        if old_parent != new_parent {
            let mut children = self.txn.open_multimap_table(CHILDREN)?;
            children.remove(old_parent, id)?;
            children.insert(new_parent, id)?;
        }
        self.reindex_entry(id, &old, new_entry)?;
        self.rewrite_descendants(descendants.get(1..).unwrap_or(&[]), &old.dn, &new_entry.dn)?;
        self.adopt_orphans(id, &new_entry.dn)
    }

    /// Sets a metadata value. Keys starting with `store.` are reserved.
    pub fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        if key.starts_with(RESERVED_META_PREFIX) {
            return Err(StoreError::ReservedMetaKey(key.to_string()));
        }
        if key.starts_with(replica::CLUSTER_META_PREFIX) {
            return Err(StoreError::ReservedMetaKey(key.to_string()));
        }
        self.txn.open_table(META)?.insert(key, value)?;
        if let Some(log) = self.log.as_mut() {
            log.meta(key);
        }
        Ok(())
    }

    /// Commits durably (`Durability::Immediate`): when this returns Ok, the changes survive
    /// a crash.
    pub fn commit(self) -> Result<()> {
        self.commit_with(Durability::Immediate)
    }

    /// Commits without waiting for the disk (`Durability::None`), for the intermediate
    /// batches of an offline import only: the changes are visible to later transactions of
    /// this process, and become durable with the next [`WriteTxn::commit`] (redb makes every
    /// earlier commit durable with it). A crash before that leaves the store as of the last
    /// durable commit, which is consistent. Nothing may be acknowledged on such a commit.
    pub fn commit_deferred(self) -> Result<()> {
        self.commit_with(Durability::None)
    }

    fn commit_with(mut self, durability: Durability) -> Result<()> {
        if let Some(log) = self.log.take() {
            return self.commit_replicated(*log);
        }
        let handle = self.handle.clone();
        self.commit_inner(durability)
            .map_err(|e| handle.failed(e))?;
        handle.committed();
        Ok(())
    }

    fn commit_inner(mut self, durability: Durability) -> Result<()> {
        if self.counters_dirty {
            let mut meta = self.txn.open_table(META)?;
            meta.insert(META_NEXT_ID, self.next_id.to_be_bytes().as_slice())?;
            meta.insert(META_USN, self.usn.to_be_bytes().as_slice())?;
        }
        self.txn.set_durability(durability)?;
        self.txn.commit()?;
        // After the commit: a reader that sees the new value begins its snapshot later.
        self.ctx
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Discards every change (same as dropping the transaction).
    pub fn abort(self) -> Result<()> {
        self.txn.abort()?;
        Ok(())
    }

    /// The parent id for a new DN. If the parent DN has no entry, the DN starts a new suffix
    /// (parent 0) provided none of its ancestors exists either; otherwise the parent is
    /// genuinely missing. Errors: `RootDn`, `NoParent`.
    fn parent_for_new(&self, dn: &Dn) -> Result<EntryId> {
        let mut ancestor = dn.parent().ok_or(StoreError::RootDn)?;
        if ancestor.is_root() {
            return Ok(ROOT_ID);
        }
        if let Some(id) = self.lookup_dn(ancestor.norm())? {
            return Ok(id);
        }
        while let Some(up) = ancestor.parent() {
            if up.is_root() {
                break;
            }
            if self.lookup_dn(up.norm())?.is_some() {
                return Err(StoreError::NoParent);
            }
            ancestor = up;
        }
        Ok(ROOT_ID)
    }

    /// The parent id a stored entry has: its parent DN's id, or 0 (suffix).
    fn current_parent(&self, dn: &Dn) -> Result<EntryId> {
        match dn.parent() {
            Some(p) if !p.is_root() => Ok(self.lookup_dn(p.norm())?.unwrap_or(ROOT_ID)),
            _ => Ok(ROOT_ID),
        }
    }

    /// Keeps the parent invariant (an entry's parent is the entry named by its parent DN if
    /// that exists, else 0) when `dn` appears: suffix entries directly below `dn` (added
    /// before it, e.g. `dc=example,dc=com` before `dc=com`) become its children.
    fn adopt_orphans(&mut self, id: EntryId, dn: &Dn) -> Result<()> {
        if self.suffixes.is_none() {
            let mut list = Vec::new();
            for s in self.child_ids(ROOT_ID)? {
                let e = self
                    .load(s)?
                    .ok_or_else(|| StoreError::Corrupt(format!("suffix id {s} has no entry")))?;
                let parent =
                    e.dn.parent()
                        .map(|p| p.norm().to_string())
                        .unwrap_or_default();
                list.push((s, parent));
            }
            self.suffixes = Some(list);
        }
        let orphans: Vec<EntryId> = self
            .suffixes
            .iter()
            .flatten()
            .filter(|(s, parent)| *s != id && parent == dn.norm())
            .map(|(s, _)| *s)
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        let mut children = self.txn.open_multimap_table(CHILDREN)?;
        for s in orphans {
            children.remove(ROOT_ID, s)?;
            children.insert(id, s)?;
        }
        self.suffixes = None;
        Ok(())
    }

    /// Rebases the stored DN of each of `ids` from `old` to `new`. Descendants keep their
    /// ids, parents and attributes (so their index rows stay valid); only their DNs change.
    fn rewrite_descendants(&mut self, ids: &[EntryId], old: &Dn, new: &Dn) -> Result<()> {
        for &d in ids {
            self.record(d);
        }
        let mut dns = self.txn.open_table(DNS)?;
        let mut entries = self.txn.open_table(ENTRIES)?;
        for &d in ids {
            let mut e = load_entry(&entries, d)?
                .ok_or_else(|| StoreError::Corrupt(format!("child id {d} has no entry")))?;
            let moved = e
                .dn
                .rebase(old, new)
                .ok_or_else(|| StoreError::Corrupt(format!("child id {d} is not below parent")))?;
            dns.remove(e.dn.norm())?;
            dns.insert(moved.norm(), d)?;
            e.dn = moved;
            let bytes = encode::encode(&e)?;
            entries.insert(d, bytes.as_slice())?;
        }
        Ok(())
    }

    fn reindex_entry(&mut self, id: EntryId, old: &Entry, new: &Entry) -> Result<()> {
        let old_keys = index::index_keys(&self.ctx.schema, &self.ctx.plan, old);
        let new_keys = index::index_keys(&self.ctx.schema, &self.ctx.plan, new);
        self.update_index(id, &old_keys, &new_keys)
    }

    /// Removes rows in `old` but not `new`, inserts rows in `new` but not `old`.
    fn update_index(
        &mut self,
        id: EntryId,
        old: &BTreeSet<IndexKey>,
        new: &BTreeSet<IndexKey>,
    ) -> Result<()> {
        let mut eq = self.txn.open_multimap_table(EQUALITY)?;
        let mut pres = self.txn.open_multimap_table(PRESENCE)?;
        let mut sub = self.txn.open_multimap_table(SUBSTRING)?;
        for (kind, key) in old.difference(new) {
            let table = match kind {
                IndexKind::Equality => &mut eq,
                IndexKind::Presence => &mut pres,
                IndexKind::Substring => &mut sub,
            };
            table.remove(key.as_slice(), id)?;
        }
        for (kind, key) in new.difference(old) {
            let table = match kind {
                IndexKind::Equality => &mut eq,
                IndexKind::Presence => &mut pres,
                IndexKind::Substring => &mut sub,
            };
            table.insert(key.as_slice(), id)?;
        }
        Ok(())
    }

    fn index_def(kind: IndexKind) -> MultimapTableDefinition<'static, &'static [u8], u64> {
        match kind {
            IndexKind::Equality => EQUALITY,
            IndexKind::Presence => PRESENCE,
            IndexKind::Substring => SUBSTRING,
        }
    }
}

impl StoreRead for WriteTxn {}

// Each method opens the tables it needs and closes them before returning, because redb
// allows a table to be open only once per write transaction.
impl Source for WriteTxn {
    fn ctx(&self) -> &Ctx {
        &self.ctx
    }
    fn load(&self, id: EntryId) -> Result<Option<Entry>> {
        load_entry(&self.txn.open_table(ENTRIES)?, id)
    }
    fn load_attrs(&self, id: EntryId, names: &[&str], into: &mut Entry) -> Result<bool> {
        load_attrs(&self.txn.open_table(ENTRIES)?, id, names, into)
    }
    fn load_projected(
        &self,
        id: EntryId,
        keep: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Option<Entry>> {
        load_projected(&self.txn.open_table(ENTRIES)?, id, keep)
    }
    fn load_dn(&self, id: EntryId) -> Result<Option<Dn>> {
        load_dn(&self.txn.open_table(ENTRIES)?, id)
    }
    fn lookup_dn(&self, norm: &str) -> Result<Option<EntryId>> {
        Ok(self.txn.open_table(DNS)?.get(norm)?.map(|g| g.value()))
    }
    fn child_ids(&self, id: EntryId) -> Result<Vec<EntryId>> {
        child_ids(&self.txn.open_multimap_table(CHILDREN)?, id)
    }
    fn has_child(&self, id: EntryId) -> Result<bool> {
        let children = self.txn.open_multimap_table(CHILDREN)?;
        let empty = children.get(id)?.is_empty();
        Ok(!empty)
    }
    fn index_ids(&self, kind: IndexKind, key: &[u8]) -> Result<Vec<EntryId>> {
        ids_at(&self.txn.open_multimap_table(Self::index_def(kind))?, key)
    }
    fn index_len(&self, kind: IndexKind, key: &[u8]) -> Result<u64> {
        let table = self.txn.open_multimap_table(Self::index_def(kind))?;
        let n = table.get(key)?.len();
        Ok(n)
    }
    fn index_prefix_ids(&self, kind: IndexKind, prefix: &[u8]) -> Result<Vec<EntryId>> {
        ids_with_prefix(
            &self.txn.open_multimap_table(Self::index_def(kind))?,
            prefix,
        )
    }
    fn scan_all(&self, f: &mut dyn FnMut(EntryId, Entry) -> bool) -> Result<()> {
        // Read in batches and close the table before calling `f`, so `f` may call other
        // read methods of this transaction.
        let mut from: EntryId = 0;
        loop {
            let mut batch = Vec::with_capacity(SCAN_BATCH);
            {
                let entries = self.txn.open_table(ENTRIES)?;
                for item in entries.range(from..)?.take(SCAN_BATCH) {
                    let (id, bytes) = item?;
                    batch.push((id.value(), encode::decode(bytes.value())?));
                }
            }
            let Some(&(last, _)) = batch.last() else {
                return Ok(());
            };
            for (id, e) in batch {
                if !f(id, e) {
                    return Ok(());
                }
            }
            match last.checked_add(1) {
                Some(next) => from = next,
                None => return Ok(()),
            }
        }
    }
    fn entry_count(&self) -> Result<u64> {
        Ok(self.txn.open_table(ENTRIES)?.len()?)
    }
    fn current_usn(&self) -> Result<u64> {
        Ok(self.usn)
    }
    fn meta_value(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let meta = self.txn.open_table(META)?;
        let value = meta.get(key)?.map(|g| g.value().to_vec());
        Ok(value)
    }
}

/// The sealed half of `StoreRead`: table access implemented by both transaction types.
mod sealed {
    use std::sync::Arc;

    use crate::model::dn::Dn;
    use crate::model::entry::Entry;
    use crate::model::schema::Schema;

    use super::index::{IndexKind, IndexPlan};
    use super::{EntryId, Result};

    /// What every transaction knows besides its tables.
    #[derive(Debug)]
    pub struct Ctx {
        /// Normalises index keys.
        pub schema: Arc<Schema>,
        /// Which attributes are indexed.
        pub plan: IndexPlan,
        /// Bumped after every successful write commit (see `Store::generation`).
        pub generation: std::sync::atomic::AtomicU64,
        /// Replica mode (cluster), set at most once; unset: standalone.
        pub replica: std::sync::OnceLock<super::ReplicaMode>,
        /// Replica mode: one replicated write of this process at a time, from its base head
        /// to its commit (writes of one node never conflict with each other).
        pub gate: Arc<super::replica::Gate>,
    }

    /// Raw table access (not nameable outside `store`, so `StoreRead` cannot be implemented
    /// elsewhere).
    pub trait Source {
        /// Schema and index plan.
        fn ctx(&self) -> &Ctx;
        /// entries[id], decoded.
        fn load(&self, id: EntryId) -> Result<Option<Entry>>;
        /// The attributes `names` of entries[id] into `into`; false if there is no such id.
        fn load_attrs(&self, id: EntryId, names: &[&str], into: &mut Entry) -> Result<bool>;
        /// entries[id] with only the attributes `keep` accepts. The default decodes the whole
        /// entry and drops the others.
        fn load_projected(
            &self,
            id: EntryId,
            keep: &mut dyn FnMut(&str) -> bool,
        ) -> Result<Option<Entry>> {
            Ok(self.load(id)?.map(|mut e| {
                let drop: Vec<String> = e
                    .attrs()
                    .filter(|a| !keep(&a.name))
                    .map(|a| a.name.clone())
                    .collect();
                for name in drop {
                    e.remove(&name);
                }
                e
            }))
        }
        /// The DN of entries[id].
        fn load_dn(&self, id: EntryId) -> Result<Option<Dn>>;
        /// dn[norm].
        fn lookup_dn(&self, norm: &str) -> Result<Option<EntryId>>;
        /// children[id], ascending.
        fn child_ids(&self, id: EntryId) -> Result<Vec<EntryId>>;
        /// children[id] is non-empty.
        fn has_child(&self, id: EntryId) -> Result<bool>;
        /// index[key], ascending.
        fn index_ids(&self, kind: IndexKind, key: &[u8]) -> Result<Vec<EntryId>>;
        /// |index[key]|.
        fn index_len(&self, kind: IndexKind, key: &[u8]) -> Result<u64>;
        /// Union of index[k] for keys starting with `prefix`, sorted and deduplicated.
        fn index_prefix_ids(&self, kind: IndexKind, prefix: &[u8]) -> Result<Vec<EntryId>>;
        /// Every entry in id order until `f` returns false.
        fn scan_all(&self, f: &mut dyn FnMut(EntryId, Entry) -> bool) -> Result<()>;
        /// Number of entries.
        fn entry_count(&self) -> Result<u64>;
        /// Highest USN.
        fn current_usn(&self) -> Result<u64>;
        /// meta[key].
        fn meta_value(&self, key: &str) -> Result<Option<Vec<u8>>>;
    }
}

/// Version check, upgrade, table creation and index (re)build, inside the opening
/// transaction.
fn prepare(txn: &WriteTransaction, ctx: &Ctx) -> Result<()> {
    let found = {
        let meta = txn.open_table(META)?;
        let v = meta.get(META_FORMAT_VERSION)?;
        v.map(|g| tables::decode_u32(META_FORMAT_VERSION, g.value()))
            .transpose()?
    };
    match found {
        None => {
            if !txn.open_table(ENTRIES)?.is_empty()? {
                return Err(StoreError::Corrupt(
                    "file has entries but no format version".into(),
                ));
            }
            migrate::record_version(txn, FORMAT_VERSION)?;
        }
        Some(v) if v == FORMAT_VERSION => {}
        Some(v) => migrate::upgrade(txn, v)?,
    }
    // Opening a table in a write transaction creates it: afterwards every table exists, so
    // read transactions can open all of them.
    txn.open_table(ENTRIES)?;
    txn.open_table(DNS)?;
    txn.open_multimap_table(CHILDREN)?;
    txn.open_multimap_table(EQUALITY)?;
    txn.open_multimap_table(PRESENCE)?;
    txn.open_multimap_table(SUBSTRING)?;

    let fingerprint = ctx.plan.fingerprint();
    let stored = {
        let meta = txn.open_table(META)?;
        let v = meta.get(META_INDEX_CONFIG)?;
        v.map(|g| g.value().to_vec())
    };
    if stored.as_deref() != Some(fingerprint.as_slice()) {
        let n = rebuild_indexes(txn, ctx)?;
        tracing::info!(
            entries = n,
            "store: attribute indexes rebuilt for a new index configuration"
        );
        txn.open_table(META)?
            .insert(META_INDEX_CONFIG, fingerprint.as_slice())?;
    }
    Ok(())
}

/// Empties the three attribute index tables and refills them from `entries`.
fn rebuild_indexes(txn: &WriteTransaction, ctx: &Ctx) -> Result<u64> {
    txn.delete_multimap_table(EQUALITY)?;
    txn.delete_multimap_table(PRESENCE)?;
    txn.delete_multimap_table(SUBSTRING)?;
    let mut eq = txn.open_multimap_table(EQUALITY)?;
    let mut pres = txn.open_multimap_table(PRESENCE)?;
    let mut sub = txn.open_multimap_table(SUBSTRING)?;
    let entries = txn.open_table(ENTRIES)?;
    let mut n = 0;
    for item in entries.iter()? {
        let (id, bytes) = item?;
        let id = id.value();
        let entry = encode::decode(bytes.value())?;
        for (kind, key) in index::index_keys(&ctx.schema, &ctx.plan, &entry) {
            let table = match kind {
                IndexKind::Equality => &mut eq,
                IndexKind::Presence => &mut pres,
                IndexKind::Substring => &mut sub,
            };
            table.insert(key.as_slice(), id)?;
        }
        n += 1;
    }
    Ok(n)
}

fn load_entry(t: &impl ReadableTable<u64, &'static [u8]>, id: EntryId) -> Result<Option<Entry>> {
    match t.get(id)? {
        Some(bytes) => Ok(Some(encode::decode(bytes.value())?)),
        None => Ok(None),
    }
}

fn load_attrs(
    t: &impl ReadableTable<u64, &'static [u8]>,
    id: EntryId,
    names: &[&str],
    into: &mut Entry,
) -> Result<bool> {
    match t.get(id)? {
        Some(bytes) => {
            encode::decode_selected(bytes.value(), names, into)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

fn load_projected(
    t: &impl ReadableTable<u64, &'static [u8]>,
    id: EntryId,
    keep: &mut dyn FnMut(&str) -> bool,
) -> Result<Option<Entry>> {
    match t.get(id)? {
        Some(bytes) => Ok(Some(encode::decode_projected(bytes.value(), keep)?)),
        None => Ok(None),
    }
}

fn load_dn(t: &impl ReadableTable<u64, &'static [u8]>, id: EntryId) -> Result<Option<Dn>> {
    match t.get(id)? {
        Some(bytes) => Ok(Some(encode::decode_dn(bytes.value())?)),
        None => Ok(None),
    }
}

fn child_ids(t: &impl ReadableMultimapTable<u64, u64>, id: EntryId) -> Result<Vec<EntryId>> {
    let mut out = Vec::new();
    for v in t.get(id)? {
        out.push(v?.value());
    }
    Ok(out)
}

fn ids_at(t: &impl ReadableMultimapTable<&'static [u8], u64>, key: &[u8]) -> Result<Vec<EntryId>> {
    let values = t.get(key)?;
    let mut out = Vec::with_capacity(usize::try_from(values.len()).unwrap_or(0));
    for v in values {
        out.push(v?.value());
    }
    Ok(out)
}

fn ids_with_prefix(
    t: &impl ReadableMultimapTable<&'static [u8], u64>,
    prefix: &[u8],
) -> Result<Vec<EntryId>> {
    let mut out = Vec::new();
    for item in t.range::<&[u8]>(prefix..)? {
        let (key, values) = item?;
        if !key.value().starts_with(prefix) {
            break;
        }
        for v in values {
            out.push(v?.value());
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn meta_u64(t: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Result<Option<u64>> {
    match t.get(key)? {
        Some(v) => Ok(Some(tables::decode_u64(key, v.value())?)),
        None => Ok(None),
    }
}

fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<()> {
    let from = src.open_table(def)?;
    let mut to = dst.open_table(def)?;
    for item in from.iter()? {
        let (k, v) = item?;
        to.insert(k.value(), v.value())?;
    }
    Ok(())
}

fn copy_multimap<K: redb::Key + 'static, V: redb::Key + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: MultimapTableDefinition<K, V>,
) -> Result<()> {
    let from = src.open_multimap_table(def)?;
    let mut to = dst.open_multimap_table(def)?;
    for item in from.iter()? {
        let (k, values) = item?;
        for v in values {
            to.insert(k.value(), v?.value())?;
        }
    }
    Ok(())
}

/// Entries decoded per table opening in `WriteTxn::scan`.
const SCAN_BATCH: usize = 512;

/// Maps every redb error type to a `StoreError` (the detail is kept as text): I/O errors to
/// `Full` (no space or quota left) or `Io` (any other, and redb's "Previous I/O error" and
/// "Database closed", which call for a re-open), everything else to `Redb`.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                classify(redb::Error::from(e))
            }
        }
    )*};
}

fn classify(e: redb::Error) -> StoreError {
    match &e {
        redb::Error::Io(io) if is_no_space(io) => StoreError::Full(io.to_string()),
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed => {
            StoreError::Io(e.to_string())
        }
        _ => StoreError::Redb(e.to_string()),
    }
}

/// `ENOSPC` or `EDQUOT`: the file system (or the user's quota) has no room left.
fn is_no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122))
}

impl StoreError {
    /// An I/O failure of the database file, after which redb needs the file re-opened.
    fn is_io(&self) -> bool {
        matches!(self, StoreError::Io(_) | StoreError::Full(_))
    }
}

/// The open `redb::Database`, replaced by a fresh one after an I/O error. redb fails every
/// operation on a handle that saw an I/O error until it is closed (redb 4.6 `Database::close`
/// releases the file and its lock at once, even with read transactions still alive; those
/// then fail with "Database closed"), so `recover` drops the failed handle and opens the file
/// again, which runs redb's repair. If the re-open fails (another thread still holds the old
/// handle for a moment, or the repair cannot write), the slot stays empty and the next
/// `get` tries again.
struct Handle {
    path: PathBuf,
    current: std::sync::RwLock<Option<Arc<Database>>>,
    /// the last I/O failure was a full file system and no commit has succeeded since: later
    /// "Previous I/O error"s are reported as `Full` too
    full: std::sync::atomic::AtomicBool,
    /// an operation on the current handle failed with an I/O error: `get` re-opens first
    /// (a `begin_read` on a failed handle may succeed and its reads fail later)
    poisoned: std::sync::atomic::AtomicBool,
}

impl Handle {
    fn new(db: Database, path: &Path) -> Handle {
        Handle {
            path: path.to_path_buf(),
            current: std::sync::RwLock::new(Some(Arc::new(db))),
            full: std::sync::atomic::AtomicBool::new(false),
            poisoned: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The open database, re-opening the file if an earlier recovery could not.
    fn get(&self) -> Result<Arc<Database>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match current {
            Some(db) if self.poisoned.load(std::sync::atomic::Ordering::Acquire) => {
                self.reopen(Some(db))
            }
            Some(db) => Ok(db),
            None => self.reopen(None),
        }
    }

    /// `failed` saw an I/O error: replace it (unless another thread already did).
    fn recover(&self, failed: Arc<Database>) -> Result<Arc<Database>> {
        self.reopen(Some(failed))
    }

    fn reopen(&self, failed: Option<Arc<Database>>) -> Result<Arc<Database>> {
        let mut slot = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (slot.as_ref(), failed.as_ref()) {
            // another thread re-opened it already
            (Some(now), Some(old)) if !Arc::ptr_eq(now, old) => return Ok(now.clone()),
            (Some(now), None) => return Ok(now.clone()),
            _ => {}
        }
        // Drop every reference this thread holds, so the file is closed (and its lock
        // released) unless another thread is inside a call on it right now.
        drop(failed);
        drop(slot.take());
        match Database::create(&self.path) {
            Ok(db) => {
                let db = Arc::new(db);
                *slot = Some(db.clone());
                self.poisoned
                    .store(false, std::sync::atomic::Ordering::Release);
                tracing::warn!(path = %self.path.display(), "store re-opened after an I/O error");
                Ok(db)
            }
            // Always an I/O-class error, so that the next call tries again and a full file
            // system is still reported as such (e.g. "already open" while another thread's
            // write transaction keeps the old handle for a moment).
            Err(e) => Err(self.failed(StoreError::Io(format!(
                "re-opening the database after an I/O error: {e}"
            )))),
        }
    }

    /// Notes an error on its way out: a full file system is remembered, so that the redb
    /// errors that follow it ("Previous I/O error") say so too.
    fn failed(&self, e: StoreError) -> StoreError {
        use std::sync::atomic::Ordering;
        if e.is_io() {
            self.poisoned.store(true, Ordering::Release);
        }
        match e {
            StoreError::Full(_) => {
                self.full.store(true, Ordering::Release);
                e
            }
            StoreError::Io(detail) if self.full.load(Ordering::Acquire) => {
                StoreError::Full(format!("no space left on device; then: {detail}"))
            }
            other => other,
        }
    }

    /// A commit went through: space is back.
    fn committed(&self) {
        self.full.store(false, std::sync::atomic::Ordering::Release);
    }
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> StoreError {
        StoreError::Io(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::builtin().unwrap())
    }

    fn open_at(path: &Path) -> Store {
        Store::open(path, schema(), IndexConfig::default_attrs()).unwrap()
    }

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    fn container(d: &str, class: &str) -> Entry {
        let mut e = Entry::new(dn(d));
        e.push("objectClass", b"top".to_vec());
        e.push("objectClass", class.as_bytes().to_vec());
        e
    }

    fn person(d: &str, uid: &str, cn: &str) -> Entry {
        let mut e = container(d, "inetOrgPerson");
        e.push("objectClass", b"posixAccount".to_vec());
        e.set_str("uid", uid);
        e.set_str("cn", cn);
        e
    }

    /// dc=example,dc=com / ou=People / {uid=alice, uid=bob}, ou=Groups
    fn seed(store: &Store) -> [EntryId; 5] {
        let mut w = store.write().unwrap();
        let base = w.add(&container("dc=example,dc=com", "domain")).unwrap();
        let people = w
            .add(&container(
                "ou=People,dc=example,dc=com",
                "organizationalUnit",
            ))
            .unwrap();
        let groups = w
            .add(&container(
                "ou=Groups,dc=example,dc=com",
                "organizationalUnit",
            ))
            .unwrap();
        let alice = w
            .add(&person(
                "uid=alice,ou=People,dc=example,dc=com",
                "alice",
                "Alice Liddell",
            ))
            .unwrap();
        let bob = w
            .add(&person(
                "uid=bob,ou=People,dc=example,dc=com",
                "bob",
                "Bob Builder",
            ))
            .unwrap();
        w.commit().unwrap();
        [base, people, groups, alice, bob]
    }

    fn eq(attr: &str, v: &str) -> Filter {
        Filter::Equality(attr.into(), v.as_bytes().to_vec())
    }

    fn sub(attr: &str, initial: Option<&str>, any: &[&str], fin: Option<&str>) -> Filter {
        Filter::Substrings {
            attr: attr.into(),
            initial: initial.map(|s| s.as_bytes().to_vec()),
            any: any.iter().map(|s| s.as_bytes().to_vec()).collect(),
            final_: fin.map(|s| s.as_bytes().to_vec()),
        }
    }

    fn all_entries(r: &impl StoreRead) -> Vec<(EntryId, Entry)> {
        let mut out = Vec::new();
        r.scan(&mut |id, e| {
            out.push((id, e));
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn add_get_replace_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(&dir.path().join("d.redb"));
        let [base, people, groups, alice, bob] = seed(&store);
        assert!(base >= 1);

        let r = store.read().unwrap();
        assert_eq!(r.count().unwrap(), 5);
        assert_eq!(
            r.id_of(&dn("UID=Alice,OU=people,DC=Example,DC=com"))
                .unwrap(),
            Some(alice)
        );
        let (id, e) = r
            .entry_by_dn(&dn("uid=bob,ou=People,dc=example,dc=com"))
            .unwrap()
            .unwrap();
        assert_eq!(id, bob);
        assert_eq!(e.first_str("cn"), Some("Bob Builder"));
        assert_eq!(
            r.entry(alice).unwrap().unwrap().first_str("uid"),
            Some("alice")
        );
        assert_eq!(r.entry(999).unwrap(), None);
        assert_eq!(r.children(ROOT_ID).unwrap(), vec![base]);
        assert_eq!(r.children(base).unwrap(), vec![people, groups]);
        assert_eq!(r.children(people).unwrap(), vec![alice, bob]);
        assert!(r.has_children(people).unwrap());
        assert!(!r.has_children(groups).unwrap());
        assert_eq!(
            r.subtree(base).unwrap(),
            vec![base, people, groups, alice, bob]
        );
        assert_eq!(r.subtree(people).unwrap(), vec![people, alice, bob]);
        drop(r);

        let mut w = store.write().unwrap();
        let mut a = w.entry(alice).unwrap().unwrap();
        a.set_str("mail", "alice@example.com");
        w.replace(alice, &a).unwrap();
        w.delete(bob).unwrap();
        assert_eq!(w.entry(bob).unwrap(), None);
        assert_eq!(w.count().unwrap(), 4);
        w.commit().unwrap();

        let r = store.read().unwrap();
        assert_eq!(
            r.entry(alice).unwrap().unwrap().first_str("mail"),
            Some("alice@example.com")
        );
        assert_eq!(
            r.id_of(&dn("uid=bob,ou=People,dc=example,dc=com")).unwrap(),
            None
        );
        assert_eq!(r.children(people).unwrap(), vec![alice]);
        assert_eq!(r.candidates(&eq("uid", "bob")).unwrap(), Some(vec![]));
        assert_eq!(r.count().unwrap(), 4);
    }

    #[test]
    fn logical_errors_leave_the_transaction_usable() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(&dir.path().join("d.redb"));
        let [base, people, _groups, alice, _bob] = seed(&store);
        let mut w = store.write().unwrap();
        assert_eq!(
            w.add(&person("uid=ALICE,ou=people,dc=example,dc=com", "x", "x")),
            Err(StoreError::AlreadyExists)
        );
        assert_eq!(
            w.add(&person("uid=x,ou=Nowhere,dc=example,dc=com", "x", "x")),
            Err(StoreError::NoParent)
        );
        assert_eq!(w.add(&Entry::new(Dn::root())), Err(StoreError::RootDn));
        assert_eq!(w.delete(people), Err(StoreError::NotLeaf));
        assert_eq!(w.delete(999), Err(StoreError::NoSuchEntry));
        let other = person("uid=zed,ou=People,dc=example,dc=com", "zed", "Zed");
        assert_eq!(w.replace(alice, &other), Err(StoreError::DnMismatch));
        assert_eq!(
            w.rename(
                people,
                &container("ou=Sub,ou=People,dc=example,dc=com", "x")
            ),
            Err(StoreError::MoveIntoSubtree)
        );
        assert_eq!(
            w.rename(
                alice,
                &person("uid=alice,ou=Groups,dc=example,dc=com", "a", "a")
            )
            .map(|_| ()),
            Ok(())
        );
        assert_eq!(
            w.rename(base, &container("dc=example,dc=org", "domain"))
                .map(|_| ()),
            Ok(()),
            "a suffix can be renamed to another suffix"
        );
        assert_eq!(
            w.set_meta("store.usn", b"x"),
            Err(StoreError::ReservedMetaKey("store.usn".into()))
        );
        // A second suffix is allowed.
        w.add(&container("dc=other", "domain")).unwrap();
        w.commit().unwrap();
        let r = store.read().unwrap();
        assert_eq!(
            r.id_of(&dn("uid=alice,ou=Groups,dc=example,dc=org"))
                .unwrap(),
            Some(alice)
        );
        assert_eq!(r.count().unwrap(), 6);
    }

    #[test]
    fn rename_moves_a_subtree() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(&dir.path().join("d.redb"));
        let [base, people, groups, alice, bob] = seed(&store);
        let mut w = store.write().unwrap();
        // Move ou=People under ou=Groups and rename it to ou=Staff.
        let mut staff = w.entry(people).unwrap().unwrap();
        staff.dn = dn("ou=Staff,ou=Groups,dc=example,dc=com");
        staff.set_str("ou", "Staff");
        w.rename(people, &staff).unwrap();
        w.commit().unwrap();

        let r = store.read().unwrap();
        assert_eq!(r.id_of(&dn("ou=People,dc=example,dc=com")).unwrap(), None);
        assert_eq!(
            r.id_of(&dn("uid=alice,ou=People,dc=example,dc=com"))
                .unwrap(),
            None
        );
        assert_eq!(
            r.id_of(&dn("uid=alice,ou=Staff,ou=Groups,dc=example,dc=com"))
                .unwrap(),
            Some(alice)
        );
        let b = r.entry(bob).unwrap().unwrap();
        assert_eq!(
            b.dn.to_string(),
            "uid=bob,ou=Staff,ou=Groups,dc=example,dc=com"
        );
        assert_eq!(r.children(base).unwrap(), vec![groups]);
        assert_eq!(r.children(groups).unwrap(), vec![people]);
        assert_eq!(
            r.subtree(base).unwrap(),
            vec![base, groups, people, alice, bob]
        );
        // Attributes of the renamed entry were re-indexed; descendants' indexes still hold.
        assert_eq!(r.candidates(&eq("uid", "bob")).unwrap(), Some(vec![bob]));
        drop(r);

        // Renaming onto an existing DN fails.
        let mut w = store.write().unwrap();
        let mut a = w.entry(alice).unwrap().unwrap();
        a.dn = dn("uid=bob,ou=Staff,ou=Groups,dc=example,dc=com");
        assert_eq!(w.rename(alice, &a), Err(StoreError::AlreadyExists));
        a.dn = dn("uid=alice,ou=Missing,dc=example,dc=com");
        assert_eq!(w.rename(alice, &a), Err(StoreError::NoParent));
        // A rename that only changes the RDN value and the naming attribute.
        let mut renamed = person(
            "uid=alicia,ou=Staff,ou=Groups,dc=example,dc=com",
            "alicia",
            "Alicia",
        );
        renamed.set_str("mail", "alicia@example.com");
        w.rename(alice, &renamed).unwrap();
        assert_eq!(w.candidates(&eq("uid", "alice")).unwrap(), Some(vec![]));
        assert_eq!(
            w.candidates(&eq("uid", "alicia")).unwrap(),
            Some(vec![alice])
        );
        w.commit().unwrap();
    }

    #[test]
    fn indexes_follow_replace() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(&dir.path().join("d.redb"));
        let [_, _, _, alice, bob] = seed(&store);
        let mut w = store.write().unwrap();
        let mut a = w.entry(alice).unwrap().unwrap();
        a.set_str("uid", "alice2");
        a.set_str("cn", "Alice Pleasance");
        a.set_str("mail", "a@example.com");
        w.replace(alice, &a).unwrap();
        let mut b = w.entry(bob).unwrap().unwrap();
        b.remove("cn");
        w.replace(bob, &b).unwrap();
        w.commit().unwrap();

        let r = store.read().unwrap();
        assert_eq!(r.candidates(&eq("uid", "alice")).unwrap(), Some(vec![]));
        assert_eq!(
            r.candidates(&eq("uid", "ALICE2")).unwrap(),
            Some(vec![alice])
        );
        assert_eq!(
            r.candidates(&eq("mail", "a@example.com")).unwrap(),
            Some(vec![alice])
        );
        assert_eq!(
            r.candidates(&Filter::Present("cn".into())).unwrap(),
            Some(vec![alice])
        );
        assert_eq!(
            r.candidates(&Filter::Present("mail".into())).unwrap(),
            Some(vec![alice])
        );
        assert_eq!(
            r.candidates(&sub("cn", None, &["lidd"], None)).unwrap(),
            Some(vec![])
        );
        assert_eq!(
            r.candidates(&sub("cn", None, &["pleas"], None)).unwrap(),
            Some(vec![alice])
        );
        assert_eq!(r.count_where_class("posixAccount").unwrap(), 2);
        assert_eq!(r.count_where_class("organizationalUnit").unwrap(), 2);
    }

    #[test]
    fn candidates_follow_filter_logic() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(&dir.path().join("d.redb"));
        let [_, people, groups, alice, bob] = seed(&store);
        let r = store.read().unwrap();
        let c = |f: &Filter| r.candidates(f).unwrap();

        // Substrings: initial, any, final, short initial via the equality prefix range.
        assert_eq!(c(&sub("cn", Some("ali"), &[], None)), Some(vec![alice]));
        assert_eq!(c(&sub("cn", Some("A"), &[], None)), Some(vec![alice]));
        assert_eq!(c(&sub("cn", None, &["LIDD"], None)), Some(vec![alice]));
        assert_eq!(c(&sub("cn", None, &[], Some("builder"))), Some(vec![bob]));
        assert_eq!(
            c(&sub("cn", Some("bo"), &["bui"], Some("der"))),
            Some(vec![bob])
        );
        assert_eq!(c(&sub("cn", None, &["zzz"], None)), Some(vec![]));
        assert_eq!(
            c(&sub("cn", None, &["li"], None)),
            None,
            "too short for trigrams"
        );
        assert_eq!(c(&sub("description", Some("abc"), &[], None)), None);

        // Boolean structure.
        let and = Filter::And(vec![eq("objectClass", "posixAccount"), eq("uid", "bob")]);
        assert_eq!(c(&and), Some(vec![bob]));
        let and_part = Filter::And(vec![eq("description", "x"), eq("uid", "bob")]);
        assert_eq!(c(&and_part), Some(vec![bob]));
        assert_eq!(c(&Filter::And(vec![eq("description", "x")])), None);
        assert_eq!(c(&Filter::And(vec![])), None);
        let or = Filter::Or(vec![eq("uid", "bob"), eq("uid", "alice")]);
        assert_eq!(c(&or), Some(vec![alice, bob]));
        assert_eq!(
            c(&Filter::Or(vec![eq("uid", "bob"), eq("description", "x")])),
            None
        );
        assert_eq!(c(&Filter::Or(vec![])), Some(vec![]));
        assert_eq!(c(&Filter::Not(Box::new(eq("uid", "bob")))), None);
        assert_eq!(c(&eq("description", "x")), None);
        assert_eq!(
            c(&Filter::GreaterOrEqual("uidNumber".into(), b"5".to_vec())),
            None
        );
        assert_eq!(
            c(&eq("objectClass", "organizationalUnit")),
            Some(vec![people, groups])
        );
        assert_eq!(
            c(&eq("uid;x-opt", "alice")),
            Some(vec![alice]),
            "options stripped"
        );
        assert_eq!(
            c(&Filter::Present("objectclass".into())).map(|v| v.len()),
            Some(5)
        );
        assert_eq!(c(&Filter::Present("description".into())), None);
    }

    #[test]
    fn dn_in_uses_the_equality_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(&dir.path().join("d.redb"));
        let [_, _, _, alice, _] = seed(&store);
        let mut w = store.write().unwrap();
        let mut g = container("cn=admins,ou=Groups,dc=example,dc=com", "groupOfNames");
        g.set_str("cn", "admins");
        g.set_str("member", "uid=alice,ou=People,dc=example,dc=com");
        let gid = w.add(&g).unwrap();
        w.commit().unwrap();
        let r = store.read().unwrap();
        let dns = [dn("uid=Alice,ou=People,dc=example,dc=com")
            .norm()
            .to_string()]
        .into_iter()
        .collect();
        let f = Filter::DnIn {
            attr: "member".into(),
            dns,
        };
        assert_eq!(r.candidates(&f).unwrap(), Some(vec![gid]));
        assert_ne!(gid, alice);
    }

    #[test]
    fn usn_and_ids_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.redb");
        let bob = {
            let store = open_at(&path);
            let [_, _, _, _, bob] = seed(&store);
            let mut w = store.write().unwrap();
            assert_eq!(w.usn().unwrap(), 0);
            assert_eq!(w.next_usn().unwrap(), 1);
            assert_eq!(w.next_usn().unwrap(), 2);
            assert_eq!(w.usn().unwrap(), 2);
            w.delete(bob).unwrap();
            w.set_meta("sid.next_rid", b"1000").unwrap();
            w.commit().unwrap();
            // An aborted transaction changes nothing.
            let mut w = store.write().unwrap();
            w.next_usn().unwrap();
            w.add(&container("dc=gone", "domain")).unwrap();
            drop(w);
            assert_eq!(store.read().unwrap().usn().unwrap(), 2);
            bob
        };
        let store = open_at(&path);
        let r = store.read().unwrap();
        assert_eq!(r.usn().unwrap(), 2);
        assert_eq!(r.meta("sid.next_rid").unwrap(), Some(b"1000".to_vec()));
        assert_eq!(r.id_of(&dn("dc=gone")).unwrap(), None);
        assert_eq!(r.count().unwrap(), 4);
        drop(r);
        let mut w = store.write().unwrap();
        assert_eq!(w.next_usn().unwrap(), 3);
        let id = w.add(&container("dc=new", "domain")).unwrap();
        assert!(id > bob, "ids are never reused");
        w.commit().unwrap();
    }

    #[test]
    fn newer_format_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.redb");
        drop(open_at(&path));
        {
            let db = Database::create(&path).unwrap();
            let w = db.begin_write().unwrap();
            migrate::record_version(&w, FORMAT_VERSION + 1).unwrap();
            w.commit().unwrap();
        }
        let err = Store::open(&path, schema(), IndexConfig::default_attrs())
            .err()
            .unwrap();
        assert_eq!(
            err,
            StoreError::FormatVersion {
                found: FORMAT_VERSION + 1,
                expected: FORMAT_VERSION
            }
        );
        assert!(err.to_string().contains("not supported"));
    }

    #[test]
    fn corrupt_records_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.redb");
        let alice = {
            let store = open_at(&path);
            seed(&store)[3]
        };
        {
            let db = Database::create(&path).unwrap();
            let w = db.begin_write().unwrap();
            w.open_table(ENTRIES)
                .unwrap()
                .insert(alice, [1u8, 0, 5, 0].as_slice())
                .unwrap();
            w.commit().unwrap();
        }
        let store = open_at(&path);
        let r = store.read().unwrap();
        assert!(matches!(r.entry(alice), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            r.scan(&mut |_, _| true),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn backup_is_an_identical_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(&dir.path().join("d.redb"));
        let [_, _, _, alice, _] = seed(&store);
        let mut w = store.write().unwrap();
        w.next_usn().unwrap();
        w.set_meta("k", b"v").unwrap();
        w.commit().unwrap();
        let out = dir.path().join("backup.redb");
        store.backup(&out).unwrap();
        assert!(matches!(store.backup(&out), Err(StoreError::Io(_))));
        assert!(store.file_size().unwrap() > 0);

        let copy = open_at(&out);
        let (a, b) = (store.read().unwrap(), copy.read().unwrap());
        assert_eq!(all_entries(&a), all_entries(&b));
        assert_eq!(a.usn().unwrap(), b.usn().unwrap());
        assert_eq!(b.meta("k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(
            b.candidates(&eq("uid", "alice")).unwrap(),
            Some(vec![alice])
        );
        assert_eq!(a.subtree(ROOT_ID).unwrap(), b.subtree(ROOT_ID).unwrap());
        drop(b);
        let mut w = copy.write().unwrap();
        assert!(w.add(&container("dc=more", "domain")).unwrap() > alice);
        w.commit().unwrap();
    }

    #[test]
    fn changed_index_config_rebuilds_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.redb");
        {
            let store = Store::open(&path, schema(), IndexConfig::none()).unwrap();
            seed(&store);
            assert_eq!(
                store.read().unwrap().candidates(&eq("uid", "bob")).unwrap(),
                None
            );
        }
        let store = open_at(&path);
        let r = store.read().unwrap();
        let bob = r.id_of(&dn("uid=bob,ou=People,dc=example,dc=com")).unwrap();
        assert_eq!(
            r.candidates(&eq("uid", "bob")).unwrap(),
            bob.map(|b| vec![b])
        );
        assert_eq!(store.reindex().unwrap(), 5);
    }

    #[test]
    fn write_txn_scan_allows_nested_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(&dir.path().join("d.redb"));
        seed(&store);
        let w = store.write().unwrap();
        let mut seen = 0;
        w.scan(&mut |id, e| {
            assert_eq!(w.id_of(&e.dn).unwrap(), Some(id));
            seen += 1;
            true
        })
        .unwrap();
        assert_eq!(seen, 5);
    }

    /// Sanity check for bulk loads: 5,000 entries in batches, then an indexed equality
    /// returns exactly the right id (from the index: the attribute values are unique).
    #[test]
    fn bulk_add_and_exact_equality_candidates() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(&dir.path().join("d.redb"));
        let [_, people, ..] = seed(&store);
        let started = std::time::Instant::now();
        let mut ids = Vec::new();
        for batch in 0..5 {
            let mut w = store.write().unwrap();
            for i in 0..1000 {
                let n = batch * 1000 + i;
                let mut e = person(
                    &format!("uid=user{n},ou=People,dc=example,dc=com"),
                    &format!("user{n}"),
                    &format!("User Number {n}"),
                );
                e.set_str("mail", &format!("user{n}@example.com"));
                e.set_str("uidNumber", &(10000 + n).to_string());
                ids.push(w.add(&e).unwrap());
            }
            w.commit().unwrap();
        }
        eprintln!("5000 adds: {:?}", started.elapsed());
        let r = store.read().unwrap();
        assert_eq!(r.count().unwrap(), 5005);
        assert_eq!(
            r.candidates(&eq("uid", "user1234")).unwrap(),
            Some(vec![ids[1234]])
        );
        assert_eq!(
            r.candidates(&eq("uidNumber", "14999")).unwrap(),
            Some(vec![ids[4999]])
        );
        assert_eq!(
            r.candidates(&sub("mail", Some("user4321@"), &[], None))
                .unwrap(),
            Some(vec![ids[4321]])
        );
        assert_eq!(r.children(people).unwrap().len(), 5002);
        assert_eq!(r.count_where_class("posixAccount").unwrap(), 5002);
        // An And starts from its shortest list and does not need the long objectClass one.
        let and = |v: Vec<Filter>| Filter::And(v);
        assert_eq!(
            r.candidates(&and(vec![
                eq("objectClass", "posixAccount"),
                eq("uid", "user77")
            ]))
            .unwrap(),
            Some(vec![ids[77]])
        );
        assert_eq!(
            r.candidates(&and(vec![eq("uid", "user77"), eq("uid", "user78")]))
                .unwrap(),
            Some(vec![])
        );
        assert_eq!(
            r.candidates(&and(vec![
                eq("objectClass", "posixAccount"),
                eq("cn", "nobody")
            ]))
            .unwrap(),
            Some(vec![])
        );
        assert_eq!(
            r.equality_ids("UID", b"USER77").unwrap(),
            Some(vec![ids[77]])
        );
        assert_eq!(r.equality_ids("description", b"x").unwrap(), None);
        assert_eq!(
            r.dn_of(ids[77]).unwrap().map(|d| d.to_string()),
            Some("uid=user77,ou=People,dc=example,dc=com".to_string())
        );
    }

    #[test]
    fn suffixes_and_late_parents() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(&dir.path().join("d.redb"));
        let mut w = store.write().unwrap();
        let example = w.add(&container("dc=example,dc=com", "domain")).unwrap();
        let other = w.add(&container("dc=other,dc=org", "domain")).unwrap();
        assert_eq!(w.children(ROOT_ID).unwrap(), vec![example, other]);
        // dc=com appears later: dc=example,dc=com becomes its child.
        let com = w.add(&container("dc=com", "domain")).unwrap();
        assert_eq!(w.children(ROOT_ID).unwrap(), vec![other, com]);
        assert_eq!(w.children(com).unwrap(), vec![example]);
        assert_eq!(w.subtree(com).unwrap(), vec![com, example]);
        assert_eq!(w.delete(com), Err(StoreError::NotLeaf));
        // Below an existing suffix a missing parent is an error, not a new suffix.
        assert_eq!(
            w.add(&container("ou=x,ou=missing,dc=other,dc=org", "x")),
            Err(StoreError::NoParent)
        );
        // Renaming a suffix under dc=com keeps the parent invariant too.
        let mut o = w.entry(other).unwrap().unwrap();
        o.dn = dn("dc=other,dc=com");
        w.rename(other, &o).unwrap();
        assert_eq!(w.children(com).unwrap(), vec![example, other]);
        assert_eq!(w.children(ROOT_ID).unwrap(), vec![com]);
        w.commit().unwrap();
    }

    #[test]
    fn handles_cross_threads() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<Store>();
        sync::<Store>();
        send::<ReadTxn>();
        send::<WriteTxn>();
    }

    #[test]
    fn case_only_rename_rewrites_descendant_display_dns() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(&dir.path().join("d.redb"));
        let [_, people, _, alice, _] = seed(&store);
        let mut w = store.write().unwrap();
        let mut p = w.entry(people).unwrap().unwrap();
        p.dn = dn("OU=PEOPLE,dc=example,dc=com");
        w.rename(people, &p).unwrap();
        w.commit().unwrap();
        let r = store.read().unwrap();
        let a = r.entry(alice).unwrap().unwrap();
        assert_eq!(a.dn.to_string(), "uid=alice,OU=PEOPLE,dc=example,dc=com");
        assert_eq!(r.id_of(&a.dn).unwrap(), Some(alice));
    }
}
