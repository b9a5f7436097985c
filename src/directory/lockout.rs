//! Failed-authentication counting for account lockout, in memory.
//!
//! May import: std only. Invariant: a failure costs a map update under a std mutex held for
//! that update only (never across an `.await`), and no disk write: a brute-force flood must
//! not become a write flood. The one durable effect is the caller's single write of
//! `lockoutTime` when `record_failure` reports the transition to locked; that is what makes a
//! lockout survive a restart (the counts themselves are forgotten, as a restarted AD DC's
//! in-flight badPwdCount would be on another DC).
//!
//! LDAP binds and Kerberos pre-authentication failures of an account count together: both
//! front-ends call the same `Directory` method, keyed by the account's normalised DN.
//!
//! Storage is pluggable (`FailureCounter`): `Lockout` is the single-node counter and the
//! default; a cluster (issue 17) passes its own implementation (`cluster::shared`, counters on
//! etcd leases) to `Directory::with_lockout`. The lock check (`is_locked`) and `clear` stay
//! synchronous (they run on every bind, the check inside the hash pool): an implementation
//! answers them from memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

/// Accounts tracked before expired records are swept (bounded memory under a flood that
/// spreads over many real accounts; unknown names are never tracked).
const SWEEP_AT: usize = 100_000;

/// Where failure counts live: this process (`Lockout`) or a cluster-wide store.
#[async_trait]
pub trait FailureCounter: Send + Sync {
    /// Counts a failure of `account` at `now` (see `Lockout::record_failure`).
    async fn record_failure(
        &self,
        account: &str,
        now: SystemTime,
        threshold: u32,
        window: Duration,
        duration: Option<Duration>,
    ) -> Outcome;

    /// True while a lock of `account` reached by counting is in force. From memory: no I/O.
    fn is_locked(&self, account: &str, now: SystemTime, duration: Option<Duration>) -> bool;

    /// Forgets the failures of `account` (successful logon, administrator unlock). Returns at
    /// once; a shared store clears its copy in the background.
    fn clear(&self, account: &str);
}

/// Failure counts per account.
#[derive(Debug, Default)]
pub struct Lockout {
    accounts: Mutex<HashMap<String, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: SystemTime,
    /// the count reached the threshold at this time (until the duration passes, every
    /// attempt is refused even before the lockoutTime write is visible)
    locked_at: Option<SystemTime>,
}

/// What one failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// still below the threshold (or lockout disabled)
    Counted,
    /// this failure reached the threshold: write lockoutTime once
    LockNow,
    /// the account was already locked by an earlier failure
    AlreadyLocked,
}

impl Lockout {
    /// An empty counter.
    pub fn new() -> Lockout {
        Lockout::default()
    }

    /// Counts a failure of `account` at `now`. Failures further apart than `window` start a
    /// new count (AD's lockOutObservationWindow). `threshold` 0 disables lockout.
    pub fn record_failure(
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
        let mut map = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_AT {
            map.retain(|_, f| since(f.last, now) <= window || still_locked(f, now, duration));
        }
        let f = map.entry(account.to_string()).or_insert(Failures {
            count: 0,
            last: now,
            locked_at: None,
        });
        if still_locked(f, now, duration) {
            f.last = now;
            return Outcome::AlreadyLocked;
        }
        if f.locked_at.is_some() || since(f.last, now) > window {
            *f = Failures {
                count: 0,
                last: now,
                locked_at: None,
            };
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        if f.count >= threshold {
            f.locked_at = Some(now);
            Outcome::LockNow
        } else {
            Outcome::Counted
        }
    }

    /// True while an in-memory lock of `account` (reached in this process) is in force.
    pub fn is_locked(&self, account: &str, now: SystemTime, duration: Option<Duration>) -> bool {
        let map = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        map.get(account)
            .is_some_and(|f| still_locked(f, now, duration))
    }

    /// Forgets the failures of `account` (successful logon, administrator unlock).
    pub fn clear(&self, account: &str) {
        let mut map = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(account);
    }

    /// The current failure count of `account` (within no particular window; for tests and
    /// diagnostics).
    pub fn count(&self, account: &str) -> u32 {
        let map = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        map.get(account).map_or(0, |f| f.count)
    }
}

#[async_trait]
impl FailureCounter for Lockout {
    async fn record_failure(
        &self,
        account: &str,
        now: SystemTime,
        threshold: u32,
        window: Duration,
        duration: Option<Duration>,
    ) -> Outcome {
        Lockout::record_failure(self, account, now, threshold, window, duration)
    }

    fn is_locked(&self, account: &str, now: SystemTime, duration: Option<Duration>) -> bool {
        Lockout::is_locked(self, account, now, duration)
    }

    fn clear(&self, account: &str) {
        Lockout::clear(self, account)
    }
}

fn since(then: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or_default()
}

fn still_locked(f: &Failures, now: SystemTime, duration: Option<Duration>) -> bool {
    match (f.locked_at, duration) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(at), Some(d)) => since(at, now) < d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_at_the_threshold_once() {
        let l = Lockout::new();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let w = Duration::from_secs(60);
        let d = Some(Duration::from_secs(600));
        assert_eq!(l.record_failure("a", t0, 3, w, d), Outcome::Counted);
        assert_eq!(l.record_failure("a", t0, 3, w, d), Outcome::Counted);
        assert_eq!(l.record_failure("a", t0, 3, w, d), Outcome::LockNow);
        assert_eq!(l.record_failure("a", t0, 3, w, d), Outcome::AlreadyLocked);
        assert!(l.is_locked("a", t0, d));
        assert!(!l.is_locked("b", t0, d));
        // After the duration, counting starts over.
        let later = t0 + Duration::from_secs(601);
        assert!(!l.is_locked("a", later, d));
        assert_eq!(l.record_failure("a", later, 3, w, d), Outcome::Counted);
        l.clear("a");
        assert_eq!(l.count("a"), 0);
    }

    #[test]
    fn failures_outside_the_window_start_over() {
        let l = Lockout::new();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let w = Duration::from_secs(60);
        for i in 0..5 {
            let t = t0 + Duration::from_secs(i * 61);
            assert_eq!(l.record_failure("a", t, 2, w, None), Outcome::Counted);
        }
        assert_eq!(l.record_failure("a", t0, 0, w, None), Outcome::Counted);
    }
}
