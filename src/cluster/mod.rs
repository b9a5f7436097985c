//! Cluster mode (issue 17): several dird nodes over one etcd cluster. Each node keeps its
//! redb store as a local replica with its own indexes; writes are etcd transactions
//! (`replica`), a watch feeds every replica (`watch`), and `seed` holds `dird cluster
//! init`/`join`.
//! State that is not entries is shared through etcd leases too: `shared` (cluster-wide
//! lockout counters and Kerberos replay cache) and `nodes` (the node registry behind `dird
//! status` and every node's DNS SRV records).
//! May import: `config`, `store`, `model`, `dns` (zone peers), `etcd_client`, and the storage
//! traits `shared` implements (`directory::lockout`, `kdc::replay`). Must not import: `ldap`,
//! the rest of `kdc` and `directory`, `redb` (the store's replica API is the only way in).
//!
//! etcd layout under `prefix` (keys below `<prefix>/`):
//!
//! | key               | value                                              |
//! |-------------------|----------------------------------------------------|
//! | `e/<16 hex>`      | an entry, `store::encode_entry` bytes, by entry id  |
//! | `m/<meta key>`    | a replicated meta value (counters included)        |
//! | `head`            | `<node name> <write id>`: put by every write       |
//!
//! Index rows are not stored: every replica derives its own. Other keys below the prefix
//! (e.g. the shared lockout counters) are ignored by the replicas.
//!
//! Invariant: every write compares `head`'s mod revision with the head the writer's
//! replica held when the write began, so writes are serialised cluster-wide through that
//! one key (see README "Cluster mode").

pub mod nodes;
pub mod outcome;
pub mod replica;
pub mod seed;
pub mod shared;
pub mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use crate::config::ClusterConfig;
use crate::store::{Change, EntryId};

/// How long one etcd call may take before the node treats etcd as unreachable.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the configured etcd members (one balanced channel over all of them).
pub async fn connect(cfg: &ClusterConfig) -> anyhow::Result<Client> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(CALL_TIMEOUT)
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(3))
        .with_keep_alive_while_idle(true);
    if let Some(t) = &cfg.tls {
        let read = |what: &str, p: &std::path::Path| {
            std::fs::read(p).map_err(|e| {
                anyhow::anyhow!("cluster.tls.{what}: cannot read {}: {e}", p.display())
            })
        };
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read("ca_file", &t.ca_file)?))
            .identity(Identity::from_pem(
                read("cert", &t.cert)?,
                read("key", &t.key)?,
            ));
        opts = opts.with_tls(tls);
    }
    Client::connect(&cfg.etcd, Some(opts))
        .await
        .map_err(|e| anyhow::anyhow!("cluster.etcd: cannot connect to {:?}: {e}", cfg.etcd))
}

/// Makes `store` this node's replica: catches up with etcd (returns once it holds the head
/// etcd had at the call), keeps it following, and routes its writes through etcd.
pub async fn attach(cfg: &ClusterConfig, store: crate::store::Store) -> anyhow::Result<Attached> {
    let client = connect(cfg).await?;
    let layout = Layout::new(&cfg.prefix);
    let heartbeat =
        (cfg.max_staleness / 10).clamp(Duration::from_millis(200), Duration::from_secs(2));
    let feed = watch::start(client.clone(), layout.clone(), store.clone(), heartbeat).await?;
    let applied = feed.head.clone();
    let contact = feed.contact.clone();
    let audit = outcome::AuditSlot::default();
    let replicator = replica::EtcdReplicator::new(
        client.clone(),
        layout,
        cfg.node_name.clone(),
        tokio::runtime::Handle::current(),
        feed.head,
        feed.contact,
        cfg.max_staleness,
    )
    .with_audit(audit.clone());
    store.set_replica_mode(crate::store::ReplicaMode::Replicated(Arc::new(replicator)));
    tracing::info!(node = %cfg.node_name, prefix = %cfg.prefix, "cluster: replica caught up; writes go through etcd");
    Ok(Attached {
        client,
        applied,
        contact,
        audit,
    })
}

/// What a node that joined its cluster holds for the services that share state through
/// etcd (lockout, replay cache, node registry).
#[derive(Clone)]
pub struct Attached {
    /// the etcd client (one balanced channel over every member)
    pub client: Client,
    /// the head revision the replica has applied (published after its redb commit)
    pub applied: tokio::sync::watch::Receiver<u64>,
    /// when this node last heard from an etcd quorum
    pub contact: Arc<Contact>,
    /// where unknown-outcome writes record their verdict (set once the audit stream exists)
    pub audit: outcome::AuditSlot,
}

/// Key names under one prefix.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `<prefix>/`
    root: String,
}

/// What a key below the prefix stands for.
#[derive(Debug, PartialEq, Eq)]
pub enum Key {
    /// an entry
    Entry(EntryId),
    /// a meta value
    Meta(String),
    /// the head
    Head,
    /// not ours (ignored)
    Other,
}

impl Layout {
    /// The layout under `prefix` (no trailing `/`).
    pub fn new(prefix: &str) -> Layout {
        Layout {
            root: format!("{prefix}/"),
        }
    }

    /// `<prefix>/`: every key of the directory starts with it.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The end of the key range of `root` (exclusive).
    pub fn range_end(&self) -> Vec<u8> {
        let mut end = self.root.as_bytes().to_vec();
        // The root ends with '/', so the next byte value closes the range.
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        end
    }

    /// The key of an entry.
    pub fn entry(&self, id: EntryId) -> String {
        format!("{}e/{id:016x}", self.root)
    }

    /// The key of a meta value.
    pub fn meta(&self, key: &str) -> String {
        format!("{}m/{key}", self.root)
    }

    /// The head key.
    pub fn head(&self) -> String {
        format!("{}head", self.root)
    }

    /// Classifies a key read from etcd.
    pub fn parse(&self, key: &[u8]) -> Key {
        let Some(rest) = key.strip_prefix(self.root.as_bytes()) else {
            return Key::Other;
        };
        if rest == b"head" {
            return Key::Head;
        }
        if let Some(hex) = rest.strip_prefix(b"e/") {
            return match std::str::from_utf8(hex)
                .ok()
                .filter(|h| h.len() == 16)
                .and_then(|h| u64::from_str_radix(h, 16).ok())
            {
                Some(id) if id != 0 => Key::Entry(id),
                _ => Key::Other,
            };
        }
        if let Some(k) = rest.strip_prefix(b"m/") {
            if let Ok(k) = std::str::from_utf8(k) {
                if crate::store::replica::is_replicated_meta(k) {
                    return Key::Meta(k.to_string());
                }
            }
        }
        Key::Other
    }

    /// The change a put (`value: Some`) or delete of `key` stands for, if it is ours.
    pub fn change(&self, key: &[u8], value: Option<&[u8]>) -> Option<Change> {
        match self.parse(key) {
            Key::Entry(id) => Some(Change::Entry(id, value.map(<[u8]>::to_vec))),
            Key::Meta(k) => value.map(|v| Change::Meta(k, v.to_vec())),
            Key::Head | Key::Other => None,
        }
    }
}

/// When this node last heard from etcd (a successful call or watch message).
#[derive(Debug)]
pub struct Contact {
    base: Instant,
    last_ms: AtomicU64,
}

impl Contact {
    /// Contact as of now.
    pub fn new() -> Arc<Contact> {
        Arc::new(Contact {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    /// Notes a successful exchange with etcd.
    pub fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Time since the last exchange.
    pub fn since(&self) -> Duration {
        let now = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_foreign_keys_are_ignored() {
        let l = Layout::new("/dird/example.com");
        assert_eq!(l.entry(42), "/dird/example.com/e/000000000000002a");
        assert_eq!(l.parse(l.entry(42).as_bytes()), Key::Entry(42));
        assert_eq!(
            l.parse(l.meta("store.usn").as_bytes()),
            Key::Meta("store.usn".into())
        );
        assert_eq!(l.parse(l.head().as_bytes()), Key::Head);
        assert_eq!(l.parse(b"/dird/example.com/e/zz"), Key::Other);
        assert_eq!(l.parse(b"/dird/example.com/e/0000000000000000"), Key::Other);
        assert_eq!(l.parse(b"/dird/example.com/lockout/x"), Key::Other);
        assert_eq!(
            l.parse(b"/dird/example.com/m/cluster.applied_rev"),
            Key::Other
        );
        assert_eq!(l.parse(b"/dird/example.org/head"), Key::Other);
        assert_eq!(l.range_end(), b"/dird/example.com0".to_vec());
    }
}
