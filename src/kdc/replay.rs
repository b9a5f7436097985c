//! A bounded replay cache for authenticators (RFC 4120 §3.2.3, §10).
//!
//! Owns: `ReplayCache`. May import: std only. Entries are keyed by client, server and the
//! authenticator's ctime/cusec, and live twice the skew window from when they were seen (an
//! authenticator older than that is refused as skewed anyway; the client's clock may be ahead
//! of ours by up to one window).
//!
//! Invariant (issue 9 item 6): an entry is never dropped while it is live. When the cache holds
//! `capacity` live entries, a new authenticator is refused with `ReplayError::Full` (the KDC
//! answers KRB_ERR_GENERIC with a "try again" e-text) instead of evicting one: eviction would
//! let an attacker flush the cache and then replay. Expiry and `forget` cost O(log n): entries
//! are ordered by an insertion sequence number in a `BTreeMap`, indexed by key in a `HashMap`.
//!
//! Storage is pluggable (`ReplayStore`): `ReplayCache` is the single-node cache and the
//! default; a cluster (issue 17) passes a cluster-wide store (`cluster::shared::EtcdReplay`)
//! to `Kdc::with_replay_store`, so a replay sent to another node is caught. A store that
//! cannot check answers `ReplayError::Unavailable` (fail closed).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

/// Identifies one authenticator.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReplayKey {
    /// The client principal, `name@REALM`.
    pub client: String,
    /// The server principal the authenticator was sent to.
    pub server: String,
    /// Authenticator ctime, seconds since the epoch.
    pub ctime: u64,
    /// Authenticator cusec.
    pub cusec: u32,
}

/// A bounded, time-windowed set of seen authenticators, safe to share between tasks.
pub struct ReplayCache {
    window: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// key → its sequence number in `order`
    seen: HashMap<Arc<ReplayKey>, u64>,
    /// sequence number → (when seen, key); ascending sequence is arrival order
    order: BTreeMap<u64, (SystemTime, Arc<ReplayKey>)>,
    next: u64,
    refused: u64,
}

/// Why an authenticator was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// The authenticator was already seen inside the window.
    Replayed,
    /// The cache is full of live entries; the request cannot be checked and must be retried.
    Full,
    /// A shared store could not be reached: the request cannot be checked and is refused
    /// (never accepted unchecked, never called a replay).
    Unavailable,
}

/// Where seen authenticators are remembered: this process (`ReplayCache`) or a cluster.
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Records `key` seen at `now`; `Err(Replayed)` if it was seen inside the window.
    async fn check_and_insert(&self, key: ReplayKey, now: SystemTime) -> Result<(), ReplayError>;

    /// Forgets `key` (the reply was not delivered; see `ReplayCache::forget`).
    async fn forget(&self, key: &ReplayKey);
}

impl ReplayCache {
    /// A cache whose entries live twice `window` (the maximum clock skew) and which holds at
    /// most `capacity` live entries.
    pub fn new(window: Duration, capacity: usize) -> Self {
        ReplayCache {
            window,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records `key` seen at `now`. `Err(Replayed)` if it is already present, `Err(Full)` if
    /// the cache holds `capacity` live entries (nothing is evicted early).
    pub fn check_and_insert(&self, key: ReplayKey, now: SystemTime) -> Result<(), ReplayError> {
        // A poisoned lock only means another task panicked mid-update; the set is still usable.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.expire(now, self.window);
        if inner.seen.contains_key(&key) {
            return Err(ReplayError::Replayed);
        }
        if inner.seen.len() >= self.capacity {
            inner.refused += 1;
            return Err(ReplayError::Full);
        }
        let seq = inner.next;
        inner.next += 1;
        let key = Arc::new(key);
        inner.seen.insert(key.clone(), seq);
        inner.order.insert(seq, (now, key));
        Ok(())
    }

    /// Forgets `key` (used when a reply could not be delivered, e.g. RESPONSE_TOO_BIG over UDP,
    /// so the client's retry over TCP with the same authenticator is not a replay). O(log n).
    pub fn forget(&self, key: &ReplayKey) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(seq) = inner.seen.remove(key) {
            inner.order.remove(&seq);
        }
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .seen
            .len()
    }

    /// True if no entries are live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Requests refused because the cache was full, since start (a non-zero value means the
    /// cache is too small for the load: raise `[kdc] replay_cache_size`).
    pub fn refused(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).refused
    }
}

#[async_trait]
impl ReplayStore for ReplayCache {
    async fn check_and_insert(&self, key: ReplayKey, now: SystemTime) -> Result<(), ReplayError> {
        ReplayCache::check_and_insert(self, key, now)
    }

    async fn forget(&self, key: &ReplayKey) {
        ReplayCache::forget(self, key)
    }
}

impl Inner {
    /// Drops the entries seen more than two windows before `now`, oldest first. Arrival order
    /// is `now` order except when the clock steps back; such entries then just live longer.
    fn expire(&mut self, now: SystemTime, window: Duration) {
        let life = window.saturating_mul(2);
        while let Some(entry) = self.order.first_entry() {
            let (seen, _) = entry.get();
            if now.duration_since(*seen).unwrap_or_default() <= life {
                break;
            }
            let (_, key) = entry.remove();
            self.seen.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(cusec: u32) -> ReplayKey {
        ReplayKey {
            client: "alice@EXAMPLE.COM".into(),
            server: "krbtgt/EXAMPLE.COM".into(),
            ctime: 1000,
            cusec,
        }
    }

    #[test]
    fn detects_replays() {
        let cache = ReplayCache::new(Duration::from_secs(300), 100);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(cache.check_and_insert(key(1), now), Ok(()));
        assert_eq!(cache.check_and_insert(key(2), now), Ok(()));
        assert_eq!(
            cache.check_and_insert(key(1), now),
            Err(ReplayError::Replayed)
        );
        cache.forget(&key(1));
        assert_eq!(cache.check_and_insert(key(1), now), Ok(()));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn entries_expire_after_the_window() {
        let cache = ReplayCache::new(Duration::from_secs(300), 100);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        cache.check_and_insert(key(1), now).unwrap();
        let later = now + Duration::from_secs(601);
        assert_eq!(cache.check_and_insert(key(2), later), Ok(()));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.check_and_insert(key(1), later), Ok(()));
    }

    #[test]
    fn a_full_cache_refuses_instead_of_forgetting() {
        let cache = ReplayCache::new(Duration::from_secs(300), 3);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        for i in 0..3 {
            cache.check_and_insert(key(i), now).unwrap();
        }
        assert_eq!(cache.check_and_insert(key(3), now), Err(ReplayError::Full));
        assert_eq!(cache.refused(), 1);
        // Every live entry is still remembered: the oldest is still a replay.
        assert_eq!(
            cache.check_and_insert(key(0), now),
            Err(ReplayError::Replayed)
        );
        // Still full just inside the window ...
        let inside = now + Duration::from_secs(600);
        assert_eq!(
            cache.check_and_insert(key(3), inside),
            Err(ReplayError::Full)
        );
        // ... and room again once the old entries are outside it.
        let after = now + Duration::from_secs(601);
        assert_eq!(cache.check_and_insert(key(3), after), Ok(()));
        assert_eq!(cache.len(), 1);
        // forget frees a slot at once.
        cache.forget(&key(3));
        assert!(cache.is_empty());
    }

    #[test]
    fn forget_in_the_middle_keeps_order_consistent() {
        let cache = ReplayCache::new(Duration::from_secs(300), 10);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        for i in 0..5 {
            cache
                .check_and_insert(key(i), now + Duration::from_secs(u64::from(i)))
                .unwrap();
        }
        cache.forget(&key(2));
        let later = now + Duration::from_secs(603);
        // 0..=2 are out of the window (1000+i+600 < 1603 for i < 3), 3 and 4 remain.
        assert_eq!(cache.check_and_insert(key(9), later), Ok(()));
        assert_eq!(cache.len(), 3);
        assert_eq!(
            cache.check_and_insert(key(4), later),
            Err(ReplayError::Replayed)
        );
    }
}
