//! Cluster-wide state that is not entries (issue 17 item 4): account-lockout failure counters
//! and the Kerberos replay cache, on etcd keys with leases, so that a brute force spread over
//! several nodes locks the account and an authenticator replayed to another node is caught.
//!
//! Owns: `EtcdLockout` (a `directory::lockout::FailureCounter`) and `EtcdReplay` (a
//! `kdc::replay::ReplayStore`). May import: `directory::lockout`, `kdc::replay`, `etcd_client`.
//!
//! Keys, under the cluster's `prefix` (account and authenticator keys are SHA-256 digests: a
//! DN never becomes a key path, and no authenticator is ever stored):
//! - `<prefix>/lockout/<sha256(account)>/count`: `{"count":n,"last":secs}`, on a lease of the
//!   observation window granted afresh at every failure (so the count lapses a window after
//!   the last failure, AD's lockOutObservationWindow); the previous lease is revoked.
//! - `<prefix>/lockout/<sha256(account)>/locked`: `{"at":secs}`, on a lease of the lockout
//!   duration (no lease when the duration is "until an administrator unlocks").
//! - `<prefix>/replay/<sha256(client, server, ctime, cusec)>`: empty, on a shared lease.
//!
//! Invariants:
//! - An increment is a transaction comparing the `mod_revision` of both account keys as they
//!   were read (`create_revision == 0` for an absent one); a node that lost the race reads
//!   again and retries, so failures on two nodes add up and exactly one of them reaches the
//!   threshold (`LockNow`: that node writes lockoutTime once).
//! - `is_locked` and `clear` do no I/O: a watch of `<prefix>/lockout/` mirrors which accounts
//!   have etcd state (bounded: the keys lapse with their leases), so a successful bind of an
//!   account without failures costs nothing, and only one with some deletes its keys.
//! - etcd unreachable (or slower than `ETCD_TIMEOUT`): lockout falls back to this node's own
//!   counter with a warning (a lock reached there holds on this node); the replay cache fails
//!   closed with `ReplayError::Unavailable` (the KDC answers KRB_ERR_GENERIC, kpasswd
//!   SOFTERROR), since an authenticator that cannot be checked must not be accepted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::directory::lockout::{FailureCounter, Lockout, Outcome};
use crate::kdc::replay::{ReplayError, ReplayKey, ReplayStore};

/// The longest one etcd exchange of a bind or a TGS request may take before the node falls
/// back (lockout) or refuses (replay cache).
pub const ETCD_TIMEOUT: Duration = Duration::from_secs(2);

/// Increments that lost a race with another node, retried this many times before the
/// failure is counted locally (a storm of failures on one account across nodes).
const MAX_RACES: usize = 16;

/// Accounts with failure counts the mirror remembers at most (locked accounts always); past
/// it, `clear` of an unmirrored account deletes nothing and its count lapses with its lease.
const MIRROR_COUNTS_MAX: usize = 200_000;

/// Replay keys share one lease per this many seconds (at most; at most one skew window): a
/// lease per authenticator would load etcd with one lease per TGS request. Each key lives
/// between two skew windows and two skew windows plus the bucket.
const REPLAY_BUCKET_SECS: u64 = 10;

/// Pause before the lockout mirror reconnects its watch.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// Failure counters shared by every node through etcd, with this node's own counter as the
/// fallback while etcd cannot be reached.
pub struct EtcdLockout {
    client: Client,
    /// `<prefix>/lockout/`
    root: String,
    /// the fallback, and locks reached while etcd was unreachable
    local: Lockout,
    /// accounts with etcd state, fed by the watch (`mirror_loop`)
    mirror: Arc<Mutex<Mirror>>,
    watcher: JoinHandle<()>,
    warned: Throttle,
}

/// What the watch has seen of one account's keys.
#[derive(Debug, Default, Clone, Copy)]
struct Known {
    counting: bool,
    /// the lock's time (seconds since the epoch), while its key exists
    locked_at: Option<u64>,
}

#[derive(Debug, Default)]
struct Mirror {
    accounts: HashMap<String, Known>,
    counting: usize,
}

/// The value of a `count` key.
#[derive(Debug, Serialize, Deserialize)]
struct CountValue {
    count: u32,
    /// the last failure, seconds since the epoch
    last: u64,
}

/// The value of a `locked` key.
#[derive(Debug, Serialize, Deserialize)]
struct LockValue {
    /// when the threshold was reached, seconds since the epoch
    at: u64,
}

/// One key as read before an increment.
struct Seen<T> {
    value: Option<T>,
    mod_revision: i64,
    lease: i64,
}

impl EtcdLockout {
    /// Counters under `<prefix>/lockout/` of the etcd `client` connects to; starts the watch
    /// that mirrors locked accounts (stopped when this is dropped). Call inside the runtime.
    pub fn start(client: Client, prefix: &str) -> Arc<EtcdLockout> {
        let root = format!("{}/lockout/", prefix.trim_end_matches('/'));
        let mirror = Arc::new(Mutex::new(Mirror::default()));
        let watcher = tokio::spawn(mirror_loop(client.clone(), root.clone(), mirror.clone()));
        Arc::new(EtcdLockout {
            client,
            root,
            local: Lockout::new(),
            mirror,
            watcher,
            warned: Throttle::default(),
        })
    }

    /// True if the watch has seen etcd state (a count or a lock) of `account` (diagnostics and
    /// tests: `clear` deletes only such accounts' keys).
    pub fn tracked(&self, account: &str) -> bool {
        let mirror = self.mirror.lock().unwrap_or_else(|p| p.into_inner());
        mirror.accounts.contains_key(&account_key(account))
    }

    /// Deletes `account`'s count and lock in etcd and forgets them here, waiting for etcd.
    pub async fn clear_now(&self, account: &str) -> Result<(), etcd_client::Error> {
        self.local.clear(account);
        let key = account_key(account);
        self.mirror
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        delete_account(self.client.clone(), format!("{}{key}/", self.root)).await
    }

    /// One failure counted in etcd (read both keys, then a transaction on their revisions).
    async fn record_remote(
        &self,
        account: &str,
        now: SystemTime,
        threshold: u32,
        window: Duration,
        duration: Option<Duration>,
    ) -> Result<Outcome, etcd_client::Error> {
        let base = format!("{}{}/", self.root, account_key(account));
        let (count_key, lock_key) = (format!("{base}count"), format!("{base}locked"));
        let now_secs = secs(now);
        let mut client = self.client.clone();
        for _ in 0..MAX_RACES {
            let resp = client
                .get(base.as_str(), Some(GetOptions::new().with_prefix()))
                .await?;
            let mut count: Seen<CountValue> = Seen::absent();
            let mut lock: Seen<LockValue> = Seen::absent();
            for kv in resp.kvs() {
                if kv.key() == count_key.as_bytes() {
                    count = Seen::of(kv);
                } else if kv.key() == lock_key.as_bytes() {
                    lock = Seen::of(kv);
                }
            }
            if let Some(l) = &lock.value {
                if lock_in_force(l.at, now_secs, duration) {
                    self.mirror_lock(account, l.at);
                    return Ok(Outcome::AlreadyLocked);
                }
            }
            // A lock whose duration passed (its lease not yet reaped) starts a new count.
            let stale_lock = lock.mod_revision != 0;
            let fresh = count
                .value
                .as_ref()
                .filter(|c| !stale_lock && now_secs.saturating_sub(c.last) <= window.as_secs());
            let n = fresh.map_or(0, |c| c.count).saturating_add(1);
            let compares = vec![count.compare(&count_key), lock.compare(&lock_key)];
            let mut ops = Vec::new();
            let (outcome, lease) = if n >= threshold {
                let lease = match duration {
                    Some(d) => Some(client.lease_grant(ttl_secs(d), None).await?.id()),
                    None => None,
                };
                let value = json(&LockValue { at: now_secs });
                ops.push(TxnOp::put(lock_key.as_str(), value, put_options(lease)));
                if count.mod_revision != 0 {
                    ops.push(TxnOp::delete(count_key.as_str(), None));
                }
                (Outcome::LockNow, lease)
            } else {
                if stale_lock {
                    ops.push(TxnOp::delete(lock_key.as_str(), None));
                }
                let lease = client.lease_grant(ttl_secs(window), None).await?.id();
                let value = json(&CountValue {
                    count: n,
                    last: now_secs,
                });
                ops.push(TxnOp::put(
                    count_key.as_str(),
                    value,
                    put_options(Some(lease)),
                ));
                (Outcome::Counted, Some(lease))
            };
            let txn = Txn::new().when(compares).and_then(ops);
            if client.txn(txn).await?.succeeded() {
                if count.lease != 0 {
                    // The count moved to a new lease (or was deleted): the old one goes.
                    let _ = client.lease_revoke(count.lease).await;
                }
                if outcome == Outcome::LockNow {
                    self.mirror_lock(account, now_secs);
                }
                return Ok(outcome);
            }
            if let Some(lease) = lease {
                let _ = client.lease_revoke(lease).await;
            }
        }
        Err(etcd_client::Error::InvalidArgs(format!(
            "failure count still contended after {MAX_RACES} attempts"
        )))
    }

    /// Records a lock seen or made by this node before the watch reports it.
    fn mirror_lock(&self, account: &str, at: u64) {
        let mut mirror = self.mirror.lock().unwrap_or_else(|p| p.into_inner());
        mirror.set_lock(account_key(account), Some(at));
    }
}

impl Drop for EtcdLockout {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

#[async_trait]
impl FailureCounter for EtcdLockout {
    async fn record_failure(
        &self,
        account: &str,
        now: SystemTime,
        threshold: u32,
        window: Duration,
        duration: Option<Duration>,
    ) -> Outcome {
        if threshold == 0 {
            return Outcome::Counted;
        }
        let remote = self.record_remote(account, now, threshold, window, duration);
        match tokio::time::timeout(ETCD_TIMEOUT, remote).await {
            Ok(Ok(outcome)) => outcome,
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {ETCD_TIMEOUT:?}"),
                };
                if self.warned.due() {
                    tracing::warn!(
                        account,
                        error,
                        "etcd unreachable: failed logons counted on this node only"
                    );
                }
                self.local
                    .record_failure(account, now, threshold, window, duration)
            }
        }
    }

    fn is_locked(&self, account: &str, now: SystemTime, duration: Option<Duration>) -> bool {
        if self.local.is_locked(account, now, duration) {
            return true;
        }
        let mirror = self.mirror.lock().unwrap_or_else(|p| p.into_inner());
        mirror
            .accounts
            .get(&account_key(account))
            .and_then(|k| k.locked_at)
            .is_some_and(|at| lock_in_force(at, secs(now), duration))
    }

    fn clear(&self, account: &str) {
        self.local.clear(account);
        let key = account_key(account);
        let known = self
            .mirror
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        if !known {
            return; // nothing in etcd as far as the watch knows: no etcd round trip
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(account, "failure count not cleared in etcd (no runtime)");
            return;
        };
        let (client, base) = (self.client.clone(), format!("{}{key}/", self.root));
        let account = account.to_string();
        runtime.spawn(async move {
            match tokio::time::timeout(ETCD_TIMEOUT, delete_account(client, base)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(account, error = %e, "failure count not cleared in etcd")
                }
                Err(_) => tracing::warn!(account, "failure count not cleared in etcd (timeout)"),
            }
        });
    }
}

impl<T: for<'de> Deserialize<'de>> Seen<T> {
    fn absent() -> Seen<T> {
        Seen {
            value: None,
            mod_revision: 0,
            lease: 0,
        }
    }

    /// A key as read; a value that does not decode counts as absent but keeps its revision
    /// (the transaction still overwrites exactly that version).
    fn of(kv: &KeyValue) -> Seen<T> {
        Seen {
            value: serde_json::from_slice(kv.value()).ok(),
            mod_revision: kv.mod_revision(),
            lease: kv.lease(),
        }
    }

    /// The transaction's condition: the key is still as read.
    fn compare(&self, key: &str) -> Compare {
        if self.mod_revision == 0 {
            Compare::create_revision(key, CompareOp::Equal, 0)
        } else {
            Compare::mod_revision(key, CompareOp::Equal, self.mod_revision)
        }
    }
}

impl Mirror {
    /// Forgets `key`; true if there was something to forget.
    fn remove(&mut self, key: &str) -> bool {
        match self.accounts.remove(key) {
            Some(k) => {
                if k.counting {
                    self.counting = self.counting.saturating_sub(1);
                }
                true
            }
            None => false,
        }
    }

    fn update(&mut self, key: String, change: impl FnOnce(&mut Known)) {
        let entry = self.accounts.entry(key.clone()).or_default();
        let was = entry.counting;
        change(entry);
        match (was, entry.counting) {
            (false, true) => self.counting += 1,
            (true, false) => self.counting = self.counting.saturating_sub(1),
            _ => {}
        }
        if !entry.counting && entry.locked_at.is_none() {
            self.accounts.remove(&key);
        }
    }

    fn set_lock(&mut self, key: String, at: Option<u64>) {
        self.update(key, |k| k.locked_at = at);
    }

    fn set_counting(&mut self, key: String, counting: bool) {
        if counting && self.counting >= MIRROR_COUNTS_MAX && !self.accounts.contains_key(&key) {
            return;
        }
        self.update(key, |k| k.counting = counting);
    }

    /// Applies one key (`<sha>/count` or `<sha>/locked` below the root); `None`: deleted.
    fn apply(&mut self, rest: &str, value: Option<&[u8]>) {
        let Some((key, kind)) = rest.split_once('/') else {
            return;
        };
        match kind {
            "count" => self.set_counting(key.to_string(), value.is_some()),
            "locked" => {
                let at = value.map(|v| serde_json::from_slice::<LockValue>(v).map_or(0, |l| l.at));
                self.set_lock(key.to_string(), at)
            }
            _ => {}
        }
    }
}

/// Keeps `mirror` equal to the keys under `root`: a full read, then a watch from the next
/// revision; on any error (etcd away, history compacted) it starts over.
async fn mirror_loop(client: Client, root: String, mirror: Arc<Mutex<Mirror>>) {
    loop {
        if let Err(e) = mirror_once(client.clone(), &root, &mirror).await {
            tracing::debug!(error = %e, "lockout watch interrupted; reconnecting");
        }
        tokio::time::sleep(WATCH_RETRY).await;
    }
}

async fn mirror_once(
    mut client: Client,
    root: &str,
    mirror: &Mutex<Mirror>,
) -> Result<(), etcd_client::Error> {
    let resp = client
        .get(root, Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    {
        let mut m = mirror.lock().unwrap_or_else(|p| p.into_inner());
        *m = Mirror::default();
        for kv in resp.kvs() {
            if let Some(rest) = kv.key().strip_prefix(root.as_bytes()) {
                m.apply(&String::from_utf8_lossy(rest), Some(kv.value()));
            }
        }
    }
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision.saturating_add(1));
    let mut stream = client.watch(root, Some(options)).await?;
    while let Some(msg) = stream.message().await? {
        if msg.canceled() {
            return Ok(()); // compacted past our revision, or closed: read everything again
        }
        let mut m = mirror.lock().unwrap_or_else(|p| p.into_inner());
        for event in msg.events() {
            let Some(kv) = event.kv() else { continue };
            let Some(rest) = kv.key().strip_prefix(root.as_bytes()) else {
                continue;
            };
            // A delete event carries version 0 (checked here rather than through the
            // client's event-type accessor, which panics on an unknown type).
            let value = (kv.version() != 0).then(|| kv.value());
            m.apply(&String::from_utf8_lossy(rest), value);
        }
    }
    Ok(())
}

async fn delete_account(mut client: Client, base: String) -> Result<(), etcd_client::Error> {
    client
        .delete(base, Some(DeleteOptions::new().with_prefix()))
        .await
        .map(|_| ())
}

/// Seen authenticators shared by every node through etcd. Fails closed: an authenticator is
/// accepted only once etcd confirmed it was not there.
pub struct EtcdReplay {
    client: Client,
    /// `<prefix>/replay/`
    root: String,
    /// the maximum clock skew (`[kdc] max_skew`)
    window: Duration,
    /// the lease of the current bucket: (bucket number, lease id)
    lease: Mutex<Option<(u64, i64)>>,
    warned: Throttle,
}

impl EtcdReplay {
    /// A replay cache under `<prefix>/replay/`; `window` is the KDC's maximum clock skew
    /// (entries live twice that, as in `ReplayCache`: the client's clock may be ahead).
    pub fn new(client: Client, prefix: &str, window: Duration) -> Arc<EtcdReplay> {
        Arc::new(EtcdReplay {
            client,
            root: format!("{}/replay/", prefix.trim_end_matches('/')),
            window,
            lease: Mutex::new(None),
            warned: Throttle::default(),
        })
    }

    /// The etcd key of `key` (a digest of the four fields, each length-prefixed).
    pub fn key_of(&self, key: &ReplayKey) -> String {
        let mut h = Sha256::new();
        for part in [key.client.as_bytes(), key.server.as_bytes()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.update(key.ctime.to_be_bytes());
        h.update(key.cusec.to_be_bytes());
        format!("{}{}", self.root, hex(&h.finalize()))
    }

    /// The lease of `now`'s bucket, granted once per bucket.
    async fn bucket_lease(
        &self,
        client: &mut Client,
        now: SystemTime,
    ) -> Result<i64, etcd_client::Error> {
        let width = REPLAY_BUCKET_SECS.min(self.window.as_secs()).max(1);
        let bucket = secs(now) / width;
        if let Some((b, id)) = *self.lease.lock().unwrap_or_else(|p| p.into_inner()) {
            if b == bucket {
                return Ok(id);
            }
        }
        let ttl = self
            .window
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(width));
        let id = client.lease_grant(ttl_secs(ttl), None).await?.id();
        *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = Some((bucket, id));
        Ok(id)
    }

    async fn insert(&self, key: String, now: SystemTime) -> Result<bool, etcd_client::Error> {
        let mut client = self.client.clone();
        let lease = self.bucket_lease(&mut client, now).await?;
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), "", put_options(Some(lease)))]);
        match client.txn(txn).await {
            Ok(r) => Ok(r.succeeded()),
            Err(e) => {
                // Perhaps the bucket's lease is gone (etcd restored): the next call grants anew.
                *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl ReplayStore for EtcdReplay {
    async fn check_and_insert(&self, key: ReplayKey, now: SystemTime) -> Result<(), ReplayError> {
        let k = self.key_of(&key);
        match tokio::time::timeout(ETCD_TIMEOUT, self.insert(k, now)).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(ReplayError::Replayed),
            Ok(Err(e)) => {
                if self.warned.due() {
                    tracing::warn!(error = %e, "etcd unreachable: requests refused (replay cache cannot be checked)");
                }
                Err(ReplayError::Unavailable)
            }
            Err(_) => {
                if self.warned.due() {
                    tracing::warn!(
                        "etcd did not answer in time: requests refused (replay cache cannot be checked)"
                    );
                }
                Err(ReplayError::Unavailable)
            }
        }
    }

    async fn forget(&self, key: &ReplayKey) {
        let k = self.key_of(key);
        let mut client = self.client.clone();
        match tokio::time::timeout(ETCD_TIMEOUT, client.delete(k, None)).await {
            Ok(Ok(_)) => {}
            _ => tracing::warn!(
                "replay cache entry not forgotten in etcd (a retry will be refused as a replay)"
            ),
        }
    }
}

/// At most one warning per `WARN_EVERY` (an etcd outage under load must not flood the log
/// with one line per request).
#[derive(Default)]
struct Throttle(Mutex<Option<std::time::Instant>>);

const WARN_EVERY: Duration = Duration::from_secs(10);

impl Throttle {
    fn due(&self) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// The etcd key part naming `account` (a normalised DN): hex SHA-256.
fn account_key(account: &str) -> String {
    hex(&Sha256::digest(account.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A lease TTL in whole seconds, rounded up, at least 1.
fn ttl_secs(d: Duration) -> i64 {
    let s = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    i64::try_from(s.max(1)).unwrap_or(i64::MAX)
}

fn lock_in_force(at: u64, now: u64, duration: Option<Duration>) -> bool {
    match duration {
        None => true,
        Some(d) => now.saturating_sub(at) < d.as_secs().max(1),
    }
}

fn put_options(lease: Option<i64>) -> Option<PutOptions> {
    lease.map(|id| PutOptions::new().with_lease(id))
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_follows_counts_and_locks() {
        let mut m = Mirror::default();
        m.apply("abc/count", Some(b"{\"count\":1,\"last\":5}"));
        assert!(m.accounts.contains_key("abc"));
        m.apply("abc/locked", Some(b"{\"at\":7}"));
        assert_eq!(m.accounts["abc"].locked_at, Some(7));
        m.apply("abc/count", None);
        assert_eq!(m.counting, 0);
        m.apply("abc/locked", None);
        assert!(m.accounts.is_empty());
        // Junk below the root is ignored.
        m.apply("nonsense", Some(b""));
        m.apply("x/other", Some(b""));
        assert!(m.accounts.is_empty());
    }

    #[test]
    fn ttl_rounds_up() {
        assert_eq!(ttl_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ttl_secs(Duration::ZERO), 1);
        assert_eq!(ttl_secs(Duration::from_secs(1800)), 1800);
    }
}
