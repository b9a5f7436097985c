//! Server-side paged-results cursors (RFC 2696), server-wide.
//!
//! Owns: `Cursor` (where a paged search resumes) and `Cursors` (the registry every connection
//! shares). May import: std.
//!
//! Invariants (issue 9 item 6):
//! - A cursor is a fixed-size position, never a list of results: the fingerprint of the
//!   request (base, scope, filter) and the handle of the last entry returned. The next page
//!   re-runs the request, with the caller's identity at that moment, from that position, so
//!   memory per cursor does not grow with the result size.
//! - At most `capacity` cursors live server-wide and `PER_CONNECTION` per connection; when
//!   either is reached the least recently used cursor (server-wide, or the connection's own)
//!   is released. A released cookie is refused like an unknown one
//!   (`CursorError::Unknown`, unwillingToPerform) and the client restarts the search.
//! - A cookie names a cursor of the connection that got it only, and is single-use: every
//!   page returns a fresh cookie.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

/// Live cursors per connection (the oldest of the connection's own is released first).
pub const PER_CONNECTION: usize = 16;

/// Default server-wide cap (`[ldap] max_paged_cursors`).
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Where one paged search resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// fingerprint of the request that created it (base, scope, filter): a cookie presented
    /// with a different search is refused
    pub fingerprint: u64,
    /// handle of the last entry returned; the next page starts after it
    pub after: u64,
}

/// Why a cookie was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorError {
    /// Not a live cursor of this connection: forged, already used, finished, or released
    /// because a cursor limit was reached.
    Unknown,
}

/// Every open paged search of the server.
#[derive(Debug)]
pub struct Cursors {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    /// sequence number (= cookie) → cursor; ascending is least recently used first
    live: BTreeMap<u64, Slot>,
    /// connection → its live sequence numbers, oldest first (at most `PER_CONNECTION`)
    by_connection: HashMap<u64, VecDeque<u64>>,
    next_connection: u64,
    released: u64,
}

#[derive(Debug)]
struct Slot {
    connection: u64,
    cursor: Cursor,
}

impl Default for Cursors {
    fn default() -> Self {
        Cursors::new(DEFAULT_CAPACITY)
    }
}

impl Cursors {
    /// A registry holding at most `capacity` cursors (at least 1).
    pub fn new(capacity: usize) -> Cursors {
        Cursors {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// A fresh connection id, for `insert`, `take` and `release_connection`.
    pub fn connection(&self) -> u64 {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.next_connection += 1;
        inner.next_connection
    }

    /// Stores a cursor for `connection` and returns its cookie, releasing the connection's
    /// oldest cursor beyond `PER_CONNECTION` and the server's oldest beyond the capacity.
    pub fn insert(&self, connection: u64, cursor: Cursor) -> Vec<u8> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.next += 1;
        let seq = inner.next;
        let own = inner.by_connection.entry(connection).or_default();
        let own_oldest = (own.len() >= PER_CONNECTION)
            .then(|| own.pop_front())
            .flatten();
        own.push_back(seq);
        if let Some(old) = own_oldest {
            inner.live.remove(&old);
            inner.released += 1;
        }
        while inner.live.len() >= self.capacity {
            let Some((old, slot)) = inner.live.pop_first() else {
                break;
            };
            inner.forget_in_connection(slot.connection, old);
            inner.released += 1;
        }
        inner.live.insert(seq, Slot { connection, cursor });
        cookie(seq)
    }

    /// Takes the cursor a cookie names, if it is a live cursor of `connection` (it is
    /// re-inserted under a new cookie if more pages remain).
    pub fn take(&self, connection: u64, cookie: &[u8]) -> Result<Cursor, CursorError> {
        let seq = parse(cookie).ok_or(CursorError::Unknown)?;
        let mut guard = self.lock();
        let inner = &mut *guard;
        match inner.live.get(&seq) {
            Some(slot) if slot.connection == connection => {}
            _ => return Err(CursorError::Unknown),
        }
        let slot = inner.live.remove(&seq).ok_or(CursorError::Unknown)?;
        inner.forget_in_connection(connection, seq);
        Ok(slot.cursor)
    }

    /// Drops every cursor of a closed connection.
    pub fn release_connection(&self, connection: u64) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Some(seqs) = inner.by_connection.remove(&connection) {
            for seq in seqs {
                inner.live.remove(&seq);
            }
        }
    }

    /// Number of live cursors, server-wide.
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    /// True when no paged search is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cursors released early because a limit was reached, since start.
    pub fn released(&self) -> u64 {
        self.lock().released
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a task panicked mid-update of plain maps; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn forget_in_connection(&mut self, connection: u64, seq: u64) {
        if let Some(own) = self.by_connection.get_mut(&connection) {
            own.retain(|s| *s != seq);
            if own.is_empty() {
                self.by_connection.remove(&connection);
            }
        }
    }
}

/// The cookie of sequence number `seq`: a tag plus the number, so a cookie from elsewhere is
/// recognisably foreign.
fn cookie(seq: u64) -> Vec<u8> {
    let mut out = COOKIE_TAG.to_vec();
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

fn parse(cookie: &[u8]) -> Option<u64> {
    let rest = cookie.strip_prefix(COOKIE_TAG)?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

const COOKIE_TAG: &[u8] = b"dirdPG";

#[cfg(test)]
mod tests {
    use super::*;

    fn c(after: u64) -> Cursor {
        Cursor {
            fingerprint: 7,
            after,
        }
    }

    #[test]
    fn cookies_are_single_use_and_per_connection() {
        let reg = Cursors::new(100);
        let (a, b) = (reg.connection(), reg.connection());
        let k = reg.insert(a, c(1));
        assert_eq!(reg.take(b, &k), Err(CursorError::Unknown));
        assert_eq!(reg.take(a, &k), Ok(c(1)));
        assert_eq!(reg.take(a, &k), Err(CursorError::Unknown));
        assert_eq!(reg.take(a, b"junk"), Err(CursorError::Unknown));
        assert_eq!(reg.take(a, b""), Err(CursorError::Unknown));
        assert!(reg.is_empty());
    }

    #[test]
    fn per_connection_cap_releases_the_connections_oldest() {
        let reg = Cursors::new(1000);
        let (a, b) = (reg.connection(), reg.connection());
        let other = reg.insert(b, c(0));
        let first = reg.insert(a, c(0));
        for i in 0..PER_CONNECTION as u64 {
            reg.insert(a, c(i));
        }
        assert_eq!(reg.len(), PER_CONNECTION + 1);
        assert_eq!(reg.take(a, &first), Err(CursorError::Unknown));
        assert_eq!(reg.take(b, &other), Ok(c(0)));
        assert_eq!(reg.released(), 1);
    }

    #[test]
    fn server_cap_releases_the_oldest_anywhere() {
        let reg = Cursors::new(3);
        let conns: Vec<u64> = (0..4).map(|_| reg.connection()).collect();
        let cookies: Vec<Vec<u8>> = conns.iter().map(|&k| reg.insert(k, c(k))).collect();
        assert_eq!(reg.len(), 3);
        assert_eq!(reg.take(conns[0], &cookies[0]), Err(CursorError::Unknown));
        for i in 1..4 {
            assert_eq!(reg.take(conns[i], &cookies[i]), Ok(c(conns[i])));
        }
    }

    #[test]
    fn closing_a_connection_releases_its_cursors() {
        let reg = Cursors::new(100);
        let (a, b) = (reg.connection(), reg.connection());
        reg.insert(a, c(1));
        reg.insert(a, c(2));
        let kb = reg.insert(b, c(3));
        reg.release_connection(a);
        assert_eq!(reg.len(), 1);
        assert_eq!(reg.take(b, &kb), Ok(c(3)));
    }
}
