//! A bounded replay cache for authenticators (RFC 4120 §3.2.3, §10).
//!
//! Owns: `ReplayCache`. May import: std only. Entries are keyed by client, server and the
//! authenticator's ctime/cusec, and expire once their ctime is outside the skew window (an older
//! authenticator is refused as skewed anyway). When full, the oldest entries are evicted first;
//! eviction is safe because an evicted entry is at least as old as every remaining one, and the
//! capacity must be sized so entries survive the skew window under expected load (the daemon
//! logs evictions).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

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
    seen: HashSet<ReplayKey>,
    order: VecDeque<(SystemTime, ReplayKey)>,
    evicted: u64,
}

/// The authenticator was already seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed;

impl ReplayCache {
    /// A cache whose entries live `window` (the maximum clock skew) and which holds at most
    /// `capacity` entries.
    pub fn new(window: Duration, capacity: usize) -> Self {
        ReplayCache {
            window,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records `key` seen at `now`; `Err(Replayed)` if it is already present.
    pub fn check_and_insert(&self, key: ReplayKey, now: SystemTime) -> Result<(), Replayed> {
        // A poisoned lock only means another task panicked mid-update; the set is still usable.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.expire(now, self.window);
        if inner.seen.contains(&key) {
            return Err(Replayed);
        }
        while inner.order.len() >= self.capacity {
            if let Some((_, old)) = inner.order.pop_front() {
                inner.seen.remove(&old);
                inner.evicted += 1;
            }
        }
        inner.seen.insert(key.clone());
        inner.order.push_back((now, key));
        Ok(())
    }

    /// Forgets `key` (used when a reply could not be delivered, e.g. RESPONSE_TOO_BIG over UDP,
    /// so the client's retry over TCP with the same authenticator is not a replay).
    pub fn forget(&self, key: &ReplayKey) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.seen.remove(key) {
            inner.order.retain(|(_, k)| k != key);
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

    /// Entries evicted for capacity since start (a non-zero value means the cache is too small).
    pub fn evicted(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).evicted
    }
}

impl Inner {
    fn expire(&mut self, now: SystemTime, window: Duration) {
        // Entries are inserted in arrival order; both sides of the window matter because the
        // client's ctime may be ahead of ours by up to `window`.
        while let Some((inserted, _)) = self.order.front() {
            let age = now.duration_since(*inserted).unwrap_or_default();
            if age <= window.saturating_mul(2) {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
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
        assert_eq!(cache.check_and_insert(key(1), now), Err(Replayed));
        cache.forget(&key(1));
        assert_eq!(cache.check_and_insert(key(1), now), Ok(()));
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
    fn capacity_is_bounded() {
        let cache = ReplayCache::new(Duration::from_secs(300), 3);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        for i in 0..10 {
            cache.check_and_insert(key(i), now).unwrap();
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.evicted(), 7);
        assert_eq!(cache.check_and_insert(key(9), now), Err(Replayed));
    }
}
