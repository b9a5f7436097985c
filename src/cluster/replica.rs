//! The store's `Replicator` over etcd: a write's change list becomes one etcd transaction
//! that succeeds only if the cluster head is still the one this replica held when the
//! write began; the write returns once this node's watch has applied it.
//! May import: `cluster`, `store`, `etcd_client`, tokio.
//! Invariant: runs on a blocking thread (the store's write path): etcd calls are driven with
//! `Handle::block_on`, and no redb transaction is open meanwhile (the store aborted it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::outcome::{self, AuditSlot};
use super::{Contact, Layout};
use crate::store::{Change, Replicator, StoreError};

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;
/// etcd's default `--max-request-bytes` (1.5 MiB), less room for the request's framing.
pub const MAX_TXN_BYTES: usize = 1_572_864 - 16 * 1024;
/// How long a write keeps (re)sending its transaction before its outcome is unknown.
const WRITE_DEADLINE: Duration = Duration::from_secs(8);
/// How long one send of a write's transaction may take.
const ATTEMPT: Duration = Duration::from_millis(1500);
/// How long a committed write waits for this node's watch to apply it.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// Writes through etcd; reads are allowed while etcd was heard from recently enough.
pub struct EtcdReplicator {
    client: Client,
    layout: Layout,
    node: String,
    rt: Handle,
    /// the head revision this node's replica has applied (sent by the watch)
    head: watch::Receiver<u64>,
    contact: Arc<Contact>,
    max_staleness: Duration,
    writes: AtomicU64,
    /// random per process: with `node` and `writes` it makes every head value unique, so a
    /// resent transaction can tell that its first send was applied
    nonce: u64,
    /// where the verdict on unknown-outcome writes is recorded
    audit: AuditSlot,
}

impl EtcdReplicator {
    /// A replicator for `node` over `client`; `head` follows the watch's applied head.
    pub fn new(
        client: Client,
        layout: Layout,
        node: String,
        rt: Handle,
        head: watch::Receiver<u64>,
        contact: Arc<Contact>,
        max_staleness: Duration,
    ) -> EtcdReplicator {
        EtcdReplicator {
            client,
            layout,
            node,
            rt,
            head,
            contact,
            max_staleness,
            writes: AtomicU64::new(0),
            nonce: rand::random(),
            audit: AuditSlot::default(),
        }
    }

    /// Records the verdict on unknown-outcome writes in `audit` (once it is set).
    pub fn with_audit(mut self, audit: AuditSlot) -> EtcdReplicator {
        self.audit = audit;
        self
    }

    fn ops(&self, changes: Vec<Change>) -> Result<(Vec<TxnOp>, String), StoreError> {
        let n = changes.len() + 1;
        if n > MAX_TXN_OPS {
            return Err(StoreError::ClusterLimit(format!(
                "this write changes {n} keys; one etcd transaction allows {MAX_TXN_OPS} (--max-txn-ops)"
            )));
        }
        let mut bytes = 0usize;
        let mut ops = Vec::with_capacity(n);
        for c in changes {
            match c {
                Change::Entry(id, Some(v)) => {
                    bytes += v.len() + 64;
                    ops.push(TxnOp::put(self.layout.entry(id), v, None));
                }
                Change::Entry(id, None) => {
                    bytes += 64;
                    ops.push(TxnOp::delete(self.layout.entry(id), None));
                }
                Change::Meta(k, v) => {
                    bytes += k.len() + v.len() + 64;
                    ops.push(TxnOp::put(self.layout.meta(&k), v, None));
                }
            }
        }
        if bytes > MAX_TXN_BYTES {
            return Err(StoreError::ClusterLimit(format!(
                "this write is {bytes} bytes; one etcd request allows 1.5 MiB (--max-request-bytes)"
            )));
        }
        let id = self.writes.fetch_add(1, Ordering::Relaxed);
        let marker = format!("{} {:016x} {id}", self.node, self.nonce);
        ops.push(TxnOp::put(self.layout.head(), marker.clone(), None));
        Ok((ops, marker))
    }

    /// Waits until this node's replica holds head revision `rev`.
    fn wait_applied(&self, rev: u64) -> bool {
        let mut rx = self.head.clone();
        guarded_block_on(&self.rt, async move {
            tokio::time::timeout(APPLY_WAIT, rx.wait_for(|h| *h >= rev))
                .await
                .is_ok_and(|r| r.is_ok())
        })
        .unwrap_or(false)
    }
}

/// `rt.block_on(f)` from a blocking-pool thread, or `None` if the runtime is shutting down
/// meanwhile: tokio then panics when the future arms a timer ("a Tokio 1.x context was
/// found, but it is being shutdown"), and a write in flight at shutdown must get an error,
/// not a panic. The caller answers `Unavailable` (nothing was acknowledged).
fn guarded_block_on<F: std::future::Future>(rt: &Handle, f: F) -> Option<F::Output> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(f))).ok()
}

impl Replicator for EtcdReplicator {
    fn commit(&self, base_head: u64, changes: Vec<Change>) -> Result<u64, StoreError> {
        let (ops, marker) = self.ops(changes)?;
        let head = self.layout.head();
        let unknown = outcome::Unknown {
            head_key: head.clone(),
            base: base_head,
            marker: marker.clone(),
            node: self.node.clone(),
        };
        let base = i64::try_from(base_head)
            .map_err(|_| StoreError::Corrupt("head revision out of range".into()))?;
        let txn = Txn::new()
            .when([Compare::mod_revision(head.clone(), CompareOp::Equal, base)])
            .and_then(ops)
            .or_else([TxnOp::get(head, None)]);
        let mut kv = self.client.kv_client();
        let outcome = guarded_block_on(&self.rt, async move {
            tokio::time::timeout(WRITE_DEADLINE, async {
                // A member that went down breaks its connection or refuses new ones: the
                // transaction is sent again (to another member). It cannot apply twice: a
                // resend of an applied one fails the head compare, and the head it finds is
                // this write's own marker (checked below).
                let mut attempt = 0;
                loop {
                    // A proposal sent to a leader that just died waits for etcd's own request
                    // timeout (5 s and more): give each send less, and send again.
                    match tokio::time::timeout(ATTEMPT, kv.txn(txn.clone())).await {
                        Ok(Err(e)) if !definitive(&e) => {
                            attempt += 1;
                            tracing::debug!(error = %e, attempt, "cluster write: sending again");
                            tokio::time::sleep(Duration::from_millis(50 * attempt.min(10))).await;
                        }
                        Err(_) => {
                            attempt += 1;
                            tracing::debug!(attempt, "cluster write: no answer; sending again");
                        }
                        Ok(other) => return other,
                    }
                }
            })
            .await
        })
        .ok_or_else(|| {
            StoreError::Unavailable(
                "the daemon is shutting down: the outcome of this write is unknown (it was not acknowledged); check the entry before retrying"
                    .into(),
            )
        })?;
        let resp = match outcome {
            Err(_) => {
                let m = unknown.marker.clone();
                outcome::settle(&self.rt, self.client.clone(), self.audit.clone(), unknown);
                return Err(StoreError::Unavailable(format!(
                    "the cluster store (etcd) did not answer in time: the outcome of this write is unknown (it may still be applied; the audit stream records the verdict as write_outcome with marker \"{m}\"); check the entry before retrying"
                )));
            }
            Ok(Err(etcd_client::Error::GRpcStatus(s)))
                // 3 = InvalidArgument: etcd checked the request and refused it unapplied.
                if s.code() as i32 == 3
                    && (s.message().contains("too many operations")
                        || s.message().contains("too large")) =>
            {
                return Err(StoreError::ClusterLimit(format!(
                    "etcd refused the write: {}",
                    s.message()
                )))
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cluster write failed");
                return Err(StoreError::Unavailable(format!(
                    "the cluster store (etcd) refused the write ({e}); it was not applied"
                )));
            }
            Ok(Ok(r)) => r,
        };
        self.contact.touch();
        let revision = resp
            .header()
            .map(|h| u64::try_from(h.revision()).unwrap_or(0))
            .unwrap_or(0);
        if resp.succeeded() {
            if !self.wait_applied(revision) {
                return Err(StoreError::Unavailable(format!(
                    "the write was committed in the cluster (revision {revision}) but this node has not applied it yet; it will appear shortly"
                )));
            }
            return Ok(revision);
        }
        // The head moved: wait for this replica to hold the newer head, so the retry decides
        // on the state that won. If the head is this write's own marker, an earlier send of
        // this very transaction was applied: the write succeeded.
        let (newer, own) = resp
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().first().map(|kv| {
                    (
                        u64::try_from(kv.mod_revision()).unwrap_or(0),
                        kv.value() == marker.as_bytes(),
                    )
                }),
                _ => None,
            })
            .unwrap_or((0, false));
        if own {
            if !self.wait_applied(newer) {
                return Err(StoreError::Unavailable(format!(
                    "the write was committed in the cluster (revision {newer}) but this node has not applied it yet; it will appear shortly"
                )));
            }
            return Ok(newer);
        }
        if !self.wait_applied(newer) {
            return Err(StoreError::Unavailable(
                "this node's replica is behind the cluster and did not catch up in time; try again"
                    .into(),
            ));
        }
        Err(StoreError::Conflict)
    }

    fn check_read(&self) -> Result<(), StoreError> {
        let since = self.contact.since();
        if since > self.max_staleness {
            return Err(StoreError::Unavailable(format!(
                "this node has had no contact with the cluster store (etcd) for {}s (cluster.max_staleness_secs = {}): reads are refused until etcd is back",
                since.as_secs(),
                self.max_staleness.as_secs()
            )));
        }
        Ok(())
    }
}

/// An answer etcd gave after checking the request (it was not applied): sending it again
/// would not help. Transport failures are not definitive.
fn definitive(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            // Unavailable (14), Unknown (2, broken connections), DeadlineExceeded (4):
            // the member went away or timed out; anything else is etcd's own verdict.
            !matches!(s.code() as i32, 2 | 4 | 14)
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => false,
        _ => true,
    }
}
