//! Server-side paged-results cursors (RFC 2696), held per connection.
//! May import: std. Invariant: a cookie names a cursor of this connection only; at most
//! `MAX_CURSORS` live at once (the oldest is dropped), so a client cannot grow memory
//! without bound.

use std::collections::{HashMap, VecDeque};

/// Live cursors per connection.
pub const MAX_CURSORS: usize = 16;

/// One paged search in progress.
#[derive(Debug)]
pub struct Cursor {
    /// handles still to return
    pub remaining: VecDeque<u64>,
    /// fingerprint of the request that created it (base, scope, filter): a cookie presented
    /// with a different search is refused
    pub fingerprint: u64,
}

/// The cursors of one connection.
#[derive(Debug, Default)]
pub struct Cursors {
    next: u64,
    live: HashMap<u64, Cursor>,
    order: VecDeque<u64>,
}

impl Cursors {
    /// Stores a cursor and returns its cookie.
    pub fn insert(&mut self, cursor: Cursor) -> Vec<u8> {
        self.next += 1;
        let id = self.next ^ COOKIE_SALT;
        if self.live.len() >= MAX_CURSORS {
            if let Some(old) = self.order.pop_front() {
                self.live.remove(&old);
            }
        }
        self.live.insert(id, cursor);
        self.order.push_back(id);
        id.to_be_bytes().to_vec()
    }

    /// Takes the cursor a cookie names (it is re-inserted if more pages remain).
    pub fn take(&mut self, cookie: &[u8]) -> Option<Cursor> {
        let id = u64::from_be_bytes(cookie.try_into().ok()?);
        let c = self.live.remove(&id)?;
        self.order.retain(|x| *x != id);
        Some(c)
    }

    /// Number of live cursors.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when no paged search is in progress.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

const COOKIE_SALT: u64 = 0x6469_7264_5047_0000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_single_use_and_bounded() {
        let mut c = Cursors::default();
        let k = c.insert(Cursor {
            remaining: VecDeque::from(vec![1, 2]),
            fingerprint: 7,
        });
        assert!(c.take(&k).is_some());
        assert!(c.take(&k).is_none());
        assert!(c.take(b"junk").is_none());
        let first = c.insert(Cursor {
            remaining: VecDeque::new(),
            fingerprint: 0,
        });
        for _ in 0..MAX_CURSORS {
            c.insert(Cursor {
                remaining: VecDeque::new(),
                fingerprint: 0,
            });
        }
        assert_eq!(c.len(), MAX_CURSORS);
        assert!(c.take(&first).is_none());
    }
}
