//! Backends (slapd's back-mdb / back-ldap split): where directory data lives.
//! May import: `model`, `store`, and the LDAP message types `ldap::{proto, codec}` (pure data,
//! used by the connector's upstream client and `SessionLink`). Must not import: `directory`,
//! the rest of `ldap`, `kdc`.
//! Invariant: a backend applies a whole write in one transaction and returns only after it
//! is durable; access control has already been decided by `directory`.

pub mod check;
pub mod connector;
pub mod discovery;
pub mod foreign;
pub mod links;
pub mod local;
mod member_uid;
pub mod read_cache;
pub mod unique;
pub mod upstream;

use std::collections::{HashSet, VecDeque};
use std::time::{Instant, SystemTime};

use crate::model::{Dn, Entry, Filter, Modification, Rdn};

/// Search scope (RFC 4511 §4.5.1.2, plus the `children` scope of draft-sermersheim).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// the base entry only
    Base,
    /// immediate children of the base
    One,
    /// the base and everything below it
    Subtree,
    /// everything below the base, not the base itself
    Children,
}

/// A search as a backend sees it.
#[derive(Clone, Debug)]
pub struct Query {
    /// where to start
    pub base: Dn,
    /// how deep
    pub scope: Scope,
    /// which entries
    pub filter: Filter,
    /// stop after this many matches (`None`: no cap)
    pub size_limit: Option<usize>,
    /// give up after this instant
    pub deadline: Instant,
    /// the attribute selection of the request (RFC 4511 §4.5.1.8): empty for all user
    /// attributes, else names, `*`, `+` or `1.1`. A backend may leave out computed attributes
    /// the selection does not return; it still computes those the filter mentions.
    pub attrs: Vec<String>,
}

/// Who writes, and when: stamped into operational attributes.
#[derive(Clone, Debug)]
pub struct WriteCtx {
    /// the bound identity (creatorsName/modifiersName)
    pub by: Dn,
    /// the time of the write
    pub now: SystemTime,
}

/// Current object usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// user objects
    pub users: u64,
    /// all objects
    pub objects: u64,
}

/// Which link a group-graph walk follows (nested membership, LDAP_MATCHING_RULE_IN_CHAIN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// downwards: from a group to the values of its `member`
    Member,
    /// upwards: from an entry to the groups whose `member` names it (its memberOf)
    MemberOf,
}

impl Link {
    /// The attribute that holds the link on an entry as `Backend::entry` returns it.
    pub fn attr(self) -> &'static str {
        match self {
            Link::Member => "member",
            Link::MemberOf => "memberOf",
        }
    }
}

/// What a group-graph walk reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Closure {
    /// normalised DNs of the start nodes and of everything reached from them
    pub dns: HashSet<String>,
    /// false if the walk stopped at its node cap (the set is then a subset)
    pub complete: bool,
}

/// A breadth-first walk over a group graph, bounded in time and in nodes: every node is
/// visited once, the visited set and the queue together never hold more than `max_nodes`
/// DNs, and `next_node` fails with `TimeLimit` once the deadline has passed. Shared by the
/// default `Backend::closure` and the backends' own versions.
pub struct Walk {
    seen: HashSet<String>,
    queue: VecDeque<Dn>,
    max_nodes: usize,
    deadline: Option<Instant>,
    complete: bool,
}

impl Walk {
    /// A walk that starts at `start`.
    pub fn new(start: Vec<Dn>, max_nodes: usize, deadline: Option<Instant>) -> Walk {
        let mut walk = Walk {
            seen: HashSet::new(),
            queue: VecDeque::new(),
            max_nodes,
            deadline,
            complete: true,
        };
        walk.offer(start);
        walk
    }

    /// The next node to expand, or `None` when the walk is done.
    pub fn next_node(&mut self) -> Result<Option<Dn>, BackendError> {
        if !self.complete {
            return Ok(None);
        }
        if self.deadline.is_some_and(|d| Instant::now() > d) {
            return Err(BackendError::TimeLimit);
        }
        Ok(self.queue.pop_front())
    }

    /// Records the neighbours of the node just expanded.
    pub fn offer(&mut self, dns: impl IntoIterator<Item = Dn>) {
        for dn in dns {
            if self.seen.contains(dn.norm()) {
                continue;
            }
            if self.seen.len() >= self.max_nodes {
                self.complete = false;
                return;
            }
            self.seen.insert(dn.norm().to_string());
            self.queue.push_back(dn);
        }
    }

    /// What the walk reached.
    pub fn finish(self) -> Closure {
        Closure {
            dns: self.seen,
            complete: self.complete,
        }
    }
}

/// The DN values of `attr` (unparsable values are skipped).
pub fn dn_values(e: &Entry, attr: &str) -> Vec<Dn> {
    e.values(attr)
        .iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .filter_map(|s| Dn::parse(s).ok())
        .collect()
}

/// What a backend can fail with. `directory` maps these to its own errors.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// the named entry does not exist; `matched` is its closest existing ancestor
    #[error("no such object {dn} (matched {matched})")]
    NoSuchObject {
        /// the missing DN
        dn: Dn,
        /// deepest existing ancestor
        matched: Dn,
    },
    /// an entry with that DN exists already
    #[error("entry already exists: {0}")]
    AlreadyExists(Dn),
    /// another entry holds a name that is unique in the domain (sAMAccountName): the message
    /// names the attribute, the value and the holder's DN
    #[error("{0}")]
    NameInUse(String),
    /// the entry has children
    #[error("entry has children: {0}")]
    NotAllowedOnNonLeaf(Dn),
    /// the schema refuses the result of the write
    #[error(transparent)]
    Schema(#[from] crate::model::schema::SchemaViolation),
    /// a modification is not applicable
    #[error(transparent)]
    Modify(#[from] crate::model::modify::ModifyError),
    /// the RDN attribute/value rules were broken
    #[error("naming violation: {0}")]
    Naming(String),
    /// the time limit passed
    #[error("time limit exceeded")]
    TimeLimit,
    /// the search matched more entries than the limit (the entries up to it are kept)
    #[error("size limit exceeded")]
    SizeLimit(Vec<Entry>),
    /// the operation would go over the configured object limit
    #[error("{0}")]
    AdminLimit(String),
    /// storage failed
    #[error("store: {0}")]
    Store(String),
    /// the file system holding the store is full: writes fail until space is freed
    #[error("store: {0}")]
    StoreFull(String),
    /// an upstream directory answered with this LDAP result (connector mode): passed back to
    /// the client unchanged, AD's diagnostics (`data 52e`) included
    #[error("upstream result {code}: {message}")]
    Upstream {
        /// the LDAP result code
        code: u32,
        /// matchedDN
        matched: String,
        /// diagnosticMessage
        message: String,
    },
    /// no upstream directory could answer (connector mode), or the cluster store cannot be
    /// reached or a cluster write's outcome is unknown (cluster mode): unavailable (52)
    #[error("{0}")]
    Unavailable(String),
    /// cluster mode: other nodes' writes kept coming first, through every retry: busy (51)
    #[error("the cluster is busy with concurrent writes; retry")]
    Conflict,
    /// cluster mode: the write is larger than one cluster transaction may be (the detail
    /// names the limit): unwillingToPerform (53)
    #[error("{0}")]
    ClusterLimit(String),
}

/// What a successful credential check established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    /// an anonymous bind
    Anonymous,
    /// bound as this entry
    User(Dn),
}

/// Who answered a forwarded request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Served {
    /// this upstream (its URL)
    Upstream(String),
    /// this upstream (its URL), as this service account (a search with
    /// `[connector] search_as = "service"`)
    UpstreamAs(String, String),
    /// the read cache, while no upstream answered
    Cache,
    /// nobody: the client got an error
    Nowhere,
}

/// A client session's own state in a backend that keeps some (connector: the session's
/// pinned upstream connection, which holds its bind identity and paging cookies). Opened per
/// client connection by `Backend::open_session`, dropped with it.
#[async_trait::async_trait]
pub trait SessionLink: Send + Sync + std::fmt::Debug {
    /// Verifies a simple bind on this session (the backend's verify-credentials operation):
    /// on success the session is bound as the returned identity, on failure it is anonymous.
    async fn verify_credentials(
        &self,
        name: &str,
        password: &[u8],
    ) -> Result<Verified, BackendError>;

    /// Forwards one client request; its responses, carrying the client's message id, are
    /// sent to `out` in order (in batches). Says who answered.
    async fn forward(
        &self,
        msg: crate::ldap::proto::LdapMessage,
        out: tokio::sync::mpsc::Sender<Vec<crate::ldap::proto::LdapMessage>>,
    ) -> Served;

    /// Abandons the forwarded request the client sent with message id `client_id`.
    async fn abandon(&self, client_id: u32);

    /// The upstream the session's requests currently go to (for audit and metrics).
    fn upstream(&self) -> Option<String> {
        None
    }

    /// Looks up the account a bind name (DN, UPN or `DOMAIN\user`) names, before its
    /// credentials are verified (connector mode's MFA decision: groups and sAMAccountName).
    /// `None`: no such account, or the backend cannot look it up.
    async fn lookup_account(&self, _name: &str) -> Result<Option<AccountInfo>, BackendError> {
        Ok(None)
    }

    /// Drops the session's bind identity (after a bind the backend accepted was refused for
    /// another reason, e.g. a wrong one-time code): the session continues anonymously.
    async fn reset(&self) {}

    /// True if this session's searches run as the backend's own service account rather than
    /// as the client (connector `search_as = "service"`): the directory's read ACL then
    /// applies to the client's identity (`Directory::forward`).
    fn searches_as_service(&self) -> bool {
        false
    }
}

/// An account found by `SessionLink::lookup_account`.
#[derive(Clone, Debug)]
pub struct AccountInfo {
    /// its entry
    pub dn: Dn,
    /// its sAMAccountName (the RADIUS User-Name), if it has one
    pub sam_account_name: Option<String>,
    /// the groups it is a member of, with nesting (normalised DNs)
    pub groups: HashSet<String>,
    /// false if the group list may be cut short (then MFA is required, fail closed)
    pub groups_complete: bool,
}

/// The operation interface every mode implements (local store, upstream proxy, trust).
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The entry at `dn` with its computed attributes (memberOf, hasSubordinates, …).
    async fn entry(&self, dn: &Dn) -> Result<Option<Entry>, BackendError>;

    /// Everything reachable from `start` through `link`, `start` included (see [`Walk`]):
    /// fails with `TimeLimit` after `deadline`; stops, incomplete, at `max_nodes`. This
    /// version reads one entry at a time; a backend may walk one snapshot instead.
    async fn closure(
        &self,
        start: Vec<Dn>,
        link: Link,
        deadline: Option<Instant>,
        max_nodes: usize,
    ) -> Result<Closure, BackendError> {
        let mut walk = Walk::new(start, max_nodes, deadline);
        while let Some(dn) = walk.next_node()? {
            if let Some(e) = self.entry(&dn).await? {
                walk.offer(dn_values(&e, link.attr()));
            }
        }
        Ok(walk.finish())
    }

    /// Matching entries, in a stable order. `SizeLimit` carries the entries up to the cap.
    async fn search(&self, q: &Query) -> Result<Vec<Entry>, BackendError>;

    /// The matching entries of `search`, in the same order, sent to `out` in batches as they
    /// are found (a large result is never held whole); returns true if the size limit cut
    /// it short (the entries up to the cap were sent). Stops early, quietly, once `out`'s
    /// receiver is gone. This version runs `search` and sends its result as one batch; a
    /// backend that can stream overrides it.
    async fn search_stream(
        &self,
        q: &Query,
        out: tokio::sync::mpsc::Sender<Vec<Entry>>,
    ) -> Result<bool, BackendError> {
        let (entries, limited) = match self.search(q).await {
            Ok(entries) => (entries, false),
            Err(BackendError::SizeLimit(entries)) => (entries, true),
            Err(e) => return Err(e),
        };
        if !entries.is_empty() {
            let _ = out.send(entries).await;
        }
        Ok(limited)
    }

    /// Matching entries as handles, for server-side paging; fetch pages with `fetch`.
    async fn search_handles(&self, q: &Query) -> Result<Vec<u64>, BackendError>;

    /// One page of a resumable search (RFC 2696 paging without a per-cursor id list): the
    /// handles of matching entries strictly above `after`, ascending, at most `limit`, and
    /// whether more follow. Handles are never reused, so a page resumes correctly after
    /// entries were added, deleted or renamed since the previous one.
    async fn search_handles_after(
        &self,
        q: &Query,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<u64>, bool), BackendError>;

    /// The entries behind handles from `search_handles`; vanished ones are skipped.
    async fn fetch(&self, handles: &[u64]) -> Result<Vec<Entry>, BackendError>;

    /// Adds an entry (schema-checked, stamped with operational attributes).
    async fn add(&self, entry: Entry, ctx: &WriteCtx) -> Result<(), BackendError>;

    /// Applies modifications atomically. `internal` lets the server write
    /// NO-USER-MODIFICATION attributes (password hashes, keys).
    async fn modify(
        &self,
        dn: &Dn,
        mods: Vec<Modification>,
        internal: bool,
        ctx: &WriteCtx,
    ) -> Result<(), BackendError>;

    /// Deletes a leaf entry.
    async fn delete(&self, dn: &Dn, ctx: &WriteCtx) -> Result<(), BackendError>;

    /// ModifyDN: rename and/or move (with its subtree).
    async fn rename(
        &self,
        dn: &Dn,
        new_rdn: Rdn,
        delete_old_rdn: bool,
        new_superior: Option<Dn>,
        ctx: &WriteCtx,
    ) -> Result<(), BackendError>;

    /// The stored password hash (PHC string) of an entry, for bind verification.
    async fn password_hash(&self, dn: &Dn) -> Result<Option<String>, BackendError>;

    /// A counter that changes whenever a write commits, for caches of data derived from the
    /// backend (read it before reading). `None` (the default) if the backend cannot tell, in
    /// which case nothing may be cached.
    fn generation(&self) -> Option<u64> {
        None
    }

    /// The sAMAccountName the backend would derive for a new account that has none (see
    /// `backend::unique::derived_account_name`), so that its Kerberos keys can be derived
    /// before it is added. `None` (the default) if the backend derives none.
    async fn account_name_for(&self, _entry: &Entry) -> Result<Option<String>, BackendError> {
        Ok(None)
    }

    /// Finds the one entry whose `attr` equals `value` (UPN / sAMAccountName bind names).
    async fn find_one(&self, attr: &str, value: &str) -> Result<Option<Dn>, BackendError>;

    /// Highest committed update sequence number.
    async fn usn(&self) -> Result<u64, BackendError>;

    /// Current object usage.
    async fn usage(&self) -> Result<Usage, BackendError>;

    /// How many entries still hold a password hash migrated from another directory (see
    /// `local::has_legacy_password`). O(1).
    async fn legacy_password_count(&self) -> Result<u64, BackendError> {
        Ok(0)
    }

    /// The tier's object caps this backend enforces, if any.
    fn object_limits(&self) -> Option<local::ObjectLimits> {
        None
    }

    /// Per-client-session state, for a backend whose sessions verify their own credentials
    /// and forward their own requests (connector). `None` (the default): the directory
    /// verifies passwords with `password_hash` and runs operations itself.
    fn open_session(&self) -> Option<std::sync::Arc<dyn SessionLink>> {
        None
    }
}
