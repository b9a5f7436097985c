//! The connector's opt-in read cache (`[connector.cache]`, issue 12; AWS AD Connector caches
//! nothing): complete search results as the upstream sent them, keyed by the bound identity
//! and the request's encoding (so one identity never sees what another was answered), kept
//! for `ttl`. Used only while no upstream answers, and only for searches: binds and writes
//! always need the upstream. May import: `ldap::{proto, codec}`.
//! Invariants: at most `max_entries` result messages are held in total (oldest results are
//! evicted first); the lock guards map operations only, never an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ldap::codec::encode_message;
use crate::ldap::proto::{Control, LdapMessage, ProtocolOp};

/// The cache.
pub struct ReadCache {
    ttl: Duration,
    max_entries: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Vec<u8>, (Instant, Vec<LdapMessage>)>,
    order: VecDeque<Vec<u8>>,
    held: usize,
}

impl ReadCache {
    /// A cache keeping results for `ttl`, holding at most `max_entries` messages.
    pub fn new(ttl: Duration, max_entries: usize) -> ReadCache {
        ReadCache {
            ttl,
            max_entries,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The most messages one result may have to be cached.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The key of a search by `identity` (`None` for anything but a search).
    pub fn key(
        identity: &str,
        op: &ProtocolOp,
        controls: &Option<Vec<Control>>,
    ) -> Option<Vec<u8>> {
        if !matches!(op, ProtocolOp::SearchRequest(_)) {
            return None;
        }
        let msg = LdapMessage {
            message_id: 1,
            protocol_op: op.clone(),
            controls: controls.clone(),
        };
        let mut key = identity.to_ascii_lowercase().into_bytes();
        key.push(0);
        key.extend(encode_message(&msg).ok()?);
        Some(key)
    }

    /// A fresh cached result.
    pub fn get(&self, key: &[u8]) -> Option<Vec<LdapMessage>> {
        let inner = self.inner.lock().ok()?;
        let (at, msgs) = inner.map.get(key)?;
        (at.elapsed() <= self.ttl).then(|| msgs.clone())
    }

    /// Stores a complete result, evicting the oldest ones to stay within `max_entries`.
    pub fn put(&self, key: Vec<u8>, msgs: Vec<LdapMessage>) {
        if msgs.len() > self.max_entries {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if let Some((_, old)) = inner.map.remove(&key) {
            inner.held -= old.len();
            inner.order.retain(|k| k != &key);
        }
        while inner.held + msgs.len() > self.max_entries {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some((_, old)) = inner.map.remove(&oldest) {
                inner.held -= old.len();
            }
        }
        inner.held += msgs.len();
        inner.order.push_back(key.clone());
        inner.map.insert(key, (Instant::now(), msgs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ldap::proto::{LdapResult, SearchResultEntry};

    fn result(n: usize) -> Vec<LdapMessage> {
        let mut v: Vec<LdapMessage> = (0..n)
            .map(|i| {
                LdapMessage::new(
                    1,
                    ProtocolOp::SearchResultEntry(SearchResultEntry::new(
                        &format!("cn={i}"),
                        vec![],
                    )),
                )
            })
            .collect();
        v.push(LdapMessage::new(
            1,
            ProtocolOp::SearchResultDone(LdapResult::success()),
        ));
        v
    }

    #[test]
    fn bounded_and_expiring() {
        let c = ReadCache::new(Duration::from_secs(60), 5);
        c.put(b"a".to_vec(), result(2));
        c.put(b"b".to_vec(), result(1));
        assert_eq!(c.get(b"a").map(|v| v.len()), Some(3));
        c.put(b"c".to_vec(), result(2)); // 3 + 2 + 3 > 5: "a" goes
        assert!(c.get(b"a").is_none());
        assert!(c.get(b"b").is_some() && c.get(b"c").is_some());
        c.put(b"d".to_vec(), result(9)); // larger than the cache: not kept
        assert!(c.get(b"d").is_none());
        let c = ReadCache::new(Duration::from_millis(0), 5);
        c.put(b"a".to_vec(), result(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.get(b"a").is_none());
    }
}
