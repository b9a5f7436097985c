//! The verified-credential cache of simple binds ("bind-repeat": an application that binds
//! as its users on every request). May import: `model`, `ring` (HMAC). Pure, synchronous.
//!
//! Why it does not weaken what is stored:
//! - It lives in memory only and holds no password and no password hash: each entry is an
//!   HMAC-SHA256 tag, keyed with 32 random bytes drawn when the process starts, of the
//!   entry's normalised DN, its `uSNChanged`, its stored `userPassword` value and the
//!   password that was verified. A memory dump shows tags that cannot be tested offline
//!   without the key, and the key dies with the process.
//! - Any write to the entry changes its `uSNChanged` (every backend write stamps it): a
//!   password change, disable (userAccountControl), lockout (lockoutTime), expiry
//!   (accountExpires), a rename or a delete. The tag of the old state is never computed
//!   again, so a remembered credential stops working at once; it ages out of the cache.
//! - Only successful checks are remembered. A wrong password always pays the full hash and
//!   counts towards lockout. The bind still reads the entry and applies the lockout check
//!   before the cache and the account-state checks (disabled, expired, must change) after it,
//!   on every bind, so policy decided by time or by another entry (a password settings
//!   object) is never cached.
//! - Entries live at most the TTL (`[ldap] bind_cache_ttl_secs`, default 60 s, 0 = off), and
//!   at most `capacity` are held: the oldest is dropped first (all share one TTL, so
//!   insertion order is expiry order).
//!
//! A hit saves the argon2 (or migrated hash) computation, which is what makes repeated binds
//! as cheap as slapd's salted SHA-1 without storing anything weaker than argon2.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::hmac;

use crate::model::Entry;

/// A tag identifying one (entry state, password) pair.
pub type Tag = [u8; 32];

/// The cache; cheap to share behind an `Arc` (one mutex around a map and a queue).
pub struct BindCache {
    key: hmac::Key,
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    expiry: HashMap<Tag, Instant>,
    order: VecDeque<(Tag, Instant)>,
}

/// Most remembered binds (about 100 bytes each).
pub const DEFAULT_CAPACITY: usize = 100_000;

impl BindCache {
    /// A cache remembering successes for `ttl` (zero: off), at most `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> BindCache {
        let secret: [u8; 32] = rand::random();
        BindCache {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            ttl,
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The cache is on.
    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.capacity > 0
    }

    /// The tag of `password` for `entry` as it is now; `None` (never cached) when the cache
    /// is off or the entry has no change counter or no stored password.
    pub fn tag(&self, entry: &Entry, password: &[u8]) -> Option<Tag> {
        if !self.enabled() {
            return None;
        }
        let usn = entry.values("uSNChanged").first()?;
        let stored = entry.values("userPassword").first()?;
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [entry.dn.norm().as_bytes(), usn, stored, password] {
            // Length-prefixed, so that no two different tuples give the same input.
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let mut tag = [0u8; 32];
        tag.copy_from_slice(ctx.sign().as_ref());
        Some(tag)
    }

    /// True if `tag` was remembered less than the TTL ago.
    pub fn hit(&self, tag: &Tag, now: Instant) -> bool {
        let Ok(inner) = self.inner.lock() else {
            return false;
        };
        inner.expiry.get(tag).is_some_and(|&until| now < until)
    }

    /// Remembers a verified `tag` until `now + ttl`.
    pub fn remember(&self, tag: Tag, now: Instant) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        // Drop what has expired, then the oldest beyond capacity.
        while let Some(&(old, until)) = inner.order.front() {
            if until > now && inner.order.len() < self.capacity {
                break;
            }
            inner.order.pop_front();
            // A tag remembered again later has a later expiry: keep that one.
            if inner.expiry.get(&old) == Some(&until) {
                inner.expiry.remove(&old);
            }
        }
        let until = now + self.ttl;
        inner.expiry.insert(tag, until);
        inner.order.push_back((tag, until));
    }

    /// Remembered binds (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.expiry.len()).unwrap_or(0)
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dn;

    fn user(usn: &str) -> Entry {
        let mut e = Entry::new(Dn::parse("uid=a,dc=example,dc=com").unwrap());
        e.set_str("uSNChanged", usn);
        e.set_str("userPassword", "{ARGON2}x");
        e
    }

    #[test]
    fn tags_change_with_the_entry_and_the_password() {
        let c = BindCache::new(Duration::from_secs(60), 10);
        let t = c.tag(&user("5"), b"pw").unwrap();
        assert_eq!(c.tag(&user("5"), b"pw"), Some(t));
        assert_ne!(c.tag(&user("6"), b"pw"), Some(t));
        assert_ne!(c.tag(&user("5"), b"pw2"), Some(t));
        let other = BindCache::new(Duration::from_secs(60), 10);
        assert_ne!(
            other.tag(&user("5"), b"pw"),
            Some(t),
            "the key is per process"
        );
        let mut no_usn = user("5");
        no_usn.remove("uSNChanged");
        assert_eq!(c.tag(&no_usn, b"pw"), None);
        assert_eq!(
            BindCache::new(Duration::ZERO, 10).tag(&user("5"), b"pw"),
            None
        );
    }

    #[test]
    fn entries_expire_and_capacity_is_bounded() {
        let c = BindCache::new(Duration::from_secs(60), 3);
        let now = Instant::now();
        let tags: Vec<Tag> = (0..5)
            .map(|i| c.tag(&user(&i.to_string()), b"p").unwrap())
            .collect();
        c.remember(tags[0], now);
        assert!(c.hit(&tags[0], now + Duration::from_secs(59)));
        assert!(!c.hit(&tags[0], now + Duration::from_secs(60)));
        for t in &tags[1..] {
            c.remember(*t, now);
        }
        assert!(c.len() <= 3);
        assert!(!c.hit(&tags[0], now) && !c.hit(&tags[1], now));
        assert!(c.hit(&tags[4], now));
    }
}
