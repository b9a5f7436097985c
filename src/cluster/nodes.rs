//! The node registry (issue 17 items 5 and 6): each node keeps `<prefix>/nodes/<node_name>`
//! on a lease (TTL ~10 s, kept alive) holding a JSON `NodeInfo` (its name, host, the
//! addresses it serves, the replica revision it has applied, when it wrote this). `Nodes::list`
//! gives every live node with its lag (etcd's current revision − applied) for `dird status`;
//! `feed_zone` keeps the DNS zone's peer list equal to the registry.
//!
//! Owns: `NodeInfo`, `Registration`, `Nodes`, `ClusterView`. May import: `dns::zone` (the peer
//! type it feeds), `etcd_client`.
//!
//! Invariants: a node that stops (crash, lost network) disappears once its lease lapses; the
//! applied revision is published when it changes but at most once per `PUBLISH_MIN` (each
//! publish is itself an etcd revision, so publishing every change would keep every node's lag
//! from ever reaching 0), and the lease is kept alive without writes in between.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_client::{Client, GetOptions, PutOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::dns::zone::{Peer, Peers};

/// The lease TTL of a node's registry key.
pub const NODE_TTL: Duration = Duration::from_secs(10);

/// The applied revision is written at most this often.
const PUBLISH_MIN: Duration = Duration::from_secs(1);

/// How long `list` (and so `dird status`) waits for etcd.
const LIST_TIMEOUT: Duration = Duration::from_secs(3);

/// Pause before a registration that lost its lease or its etcd connection starts over.
const RETRY: Duration = Duration::from_secs(1);

/// Largest value of a registry key read back (a hostile or corrupt key is skipped).
const MAX_VALUE: usize = 64 * 1024;

/// What a node publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `[cluster] node_name`
    pub node_name: String,
    /// its host name in the domain's zone (`dc2.example.com`)
    pub host: String,
    /// the addresses clients reach it at (its A/AAAA records)
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    /// bound LDAP listeners
    #[serde(default)]
    pub ldap: Vec<SocketAddr>,
    /// bound LDAPS listeners
    #[serde(default)]
    pub ldaps: Vec<SocketAddr>,
    /// bound global catalog listeners
    #[serde(default)]
    pub gc: Vec<SocketAddr>,
    /// bound KDC listeners (UDP and TCP on the same port)
    #[serde(default)]
    pub kdc: Vec<SocketAddr>,
    /// bound kpasswd listeners
    #[serde(default)]
    pub kpasswd: Vec<SocketAddr>,
    /// the etcd revision its replica has applied (set by the registration)
    #[serde(default)]
    pub applied_revision: u64,
    /// when this was written, seconds since the epoch (set by the registration)
    #[serde(default)]
    pub updated: u64,
}

/// One node as listed, with its lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// what the node published
    pub info: NodeInfo,
    /// the directory's head revision minus the head the node's replica has applied
    pub lag: u64,
}

/// Every live node, against the directory's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// the directory's head: the etcd revision of the last directory write (the mod revision
    /// of `<prefix>/head`; 0 before the first). Lockout, replay-cache and registry keys also
    /// move etcd's revision, but no replica has anything to apply for them, so a node's lag
    /// is counted against this head, not against etcd's current revision.
    pub revision: u64,
    /// the nodes, by name
    pub nodes: Vec<NodeStatus>,
}

/// A node's membership in the registry: a task keeping its key alive. Dropping it stops the
/// keep-alive (the key lapses with its lease); `leave` removes the key at once.
pub struct Registration {
    task: JoinHandle<()>,
    lease: watch::Receiver<Option<i64>>,
    client: Client,
}

/// The registry of one cluster, for listing (a cheap clone of the etcd client).
#[derive(Clone)]
pub struct Nodes {
    client: Client,
    /// `<prefix>/nodes/`
    root: String,
    /// `<prefix>/head`, the key every directory write puts (see `cluster`)
    head: String,
}

impl Registration {
    /// Publishes `info` under `<prefix>/nodes/<node_name>` on a lease of `ttl` (`NODE_TTL` in
    /// the daemon) and keeps it alive; `applied` is the replica's applied revision, published
    /// when it changes. Re-registers after a lapse (etcd away longer than `ttl`).
    pub fn start(
        client: Client,
        prefix: &str,
        info: NodeInfo,
        applied: watch::Receiver<u64>,
        ttl: Duration,
    ) -> Registration {
        let key = format!("{}{}", nodes_root(prefix), info.node_name);
        let (lease_tx, lease) = watch::channel(None);
        let task = tokio::spawn(register_loop(
            client.clone(),
            key,
            info,
            applied,
            ttl,
            lease_tx,
        ));
        Registration {
            task,
            lease,
            client,
        }
    }

    /// Waits until the key has been written once (or `timeout` passed): true if registered.
    pub async fn registered(&mut self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.lease.wait_for(Option::is_some)).await,
            Ok(Ok(_))
        )
    }

    /// Stops the keep-alive and revokes the lease: the node leaves the registry at once.
    pub async fn leave(mut self) {
        self.task.abort();
        let lease = *self.lease.borrow();
        if let Some(id) = lease {
            let revoke = self.client.lease_revoke(id);
            if !matches!(tokio::time::timeout(LIST_TIMEOUT, revoke).await, Ok(Ok(_))) {
                tracing::warn!("node registry lease not revoked; the node lapses with it");
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Nodes {
    /// The registry under `<prefix>/nodes/` of the etcd `client` connects to.
    pub fn new(client: Client, prefix: &str) -> Nodes {
        Nodes {
            client,
            root: nodes_root(prefix),
            head: format!("{}/head", prefix.trim_end_matches('/')),
        }
    }

    /// Every live node by name, with its lag behind the directory's head.
    pub async fn list(&self) -> Result<ClusterView, etcd_client::Error> {
        let mut client = self.client.clone();
        let get = client.get(self.root.as_str(), Some(GetOptions::new().with_prefix()));
        let resp = tokio::time::timeout(LIST_TIMEOUT, get)
            .await
            .map_err(|_| etcd_client::Error::InvalidArgs("etcd did not answer in time".into()))??;
        let head = client.get(self.head.as_str(), None);
        let head = tokio::time::timeout(LIST_TIMEOUT, head)
            .await
            .map_err(|_| etcd_client::Error::InvalidArgs("etcd did not answer in time".into()))??;
        let revision = head
            .kvs()
            .first()
            .map_or(0, |kv| u64::try_from(kv.mod_revision()).unwrap_or(0));
        let mut nodes: Vec<NodeStatus> = resp
            .kvs()
            .iter()
            .filter(|kv| kv.value().len() <= MAX_VALUE)
            .filter_map(|kv| serde_json::from_slice::<NodeInfo>(kv.value()).ok())
            .map(|info| NodeStatus {
                lag: revision.saturating_sub(info.applied_revision),
                info,
            })
            .collect();
        nodes.sort_by(|a, b| a.info.node_name.cmp(&b.info.node_name));
        Ok(ClusterView { revision, nodes })
    }
}

/// Keeps `peers` equal to the registry's nodes other than `own` (this DC, which the zone
/// publishes itself), read every `every`. While etcd is unreachable the last list stays.
pub fn feed_zone(nodes: Nodes, own: String, peers: Peers, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match nodes.list().await {
                Ok(view) => peers.set(
                    view.nodes
                        .iter()
                        .filter(|n| n.info.node_name != own)
                        .map(|n| peer(&n.info))
                        .collect(),
                ),
                Err(e) => {
                    tracing::debug!(error = %e, "node registry not read; DNS keeps the last list")
                }
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// The DNS view of a node: its host, addresses and the ports of its first listeners.
pub fn peer(info: &NodeInfo) -> Peer {
    let port = |v: &[SocketAddr]| v.first().map(SocketAddr::port);
    Peer {
        host: info.host.trim_end_matches('.').to_ascii_lowercase(),
        addresses: info.addresses.clone(),
        ldap_port: port(&info.ldap),
        kdc_port: port(&info.kdc),
        kpasswd_port: port(&info.kpasswd),
        gc_port: port(&info.gc),
    }
}

fn nodes_root(prefix: &str) -> String {
    format!("{}/nodes/", prefix.trim_end_matches('/'))
}

async fn register_loop(
    client: Client,
    key: String,
    info: NodeInfo,
    mut applied: watch::Receiver<u64>,
    ttl: Duration,
    lease: watch::Sender<Option<i64>>,
) {
    loop {
        if let Err(e) = register_once(client.clone(), &key, &info, &mut applied, ttl, &lease).await
        {
            tracing::warn!(key, error = %e, "node registry: registration interrupted; retrying");
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// One lease's life: grant, publish, keep alive (and publish applied-revision changes) until
/// the lease is lost or etcd fails.
async fn register_once(
    mut client: Client,
    key: &str,
    info: &NodeInfo,
    applied: &mut watch::Receiver<u64>,
    ttl: Duration,
    lease_slot: &watch::Sender<Option<i64>>,
) -> Result<(), etcd_client::Error> {
    let ttl_secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
    let lease = client.lease_grant(ttl_secs, None).await?.id();
    let (mut keeper, mut answers) = client.lease_keep_alive(lease).await?;
    let mut revision = *applied.borrow_and_update();
    publish(&mut client, key, info, revision, lease).await?;
    lease_slot.send_replace(Some(lease));
    let beat = (ttl / 3).max(Duration::from_millis(200));
    let publish_min = PUBLISH_MIN.min(ttl / 4);
    let mut ticks = tokio::time::interval(beat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_publish = Instant::now();
    let mut following = true;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                keeper.keep_alive().await?;
                match tokio::time::timeout(beat, answers.message()).await {
                    Ok(Ok(Some(a))) if a.ttl() > 0 => {}
                    Ok(Ok(Some(_))) => return Ok(()), // the lease lapsed: register again
                    Ok(Ok(None)) => return Ok(()),
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Ok(()),
                }
            }
            changed = applied.changed(), if following => {
                if changed.is_err() {
                    following = false; // the replica is gone: keep the last value alive
                    continue;
                }
                let wait = publish_min.saturating_sub(last_publish.elapsed());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let now = *applied.borrow_and_update();
                if now != revision {
                    revision = now;
                    publish(&mut client, key, info, revision, lease).await?;
                    last_publish = Instant::now();
                }
            }
        }
    }
}

async fn publish(
    client: &mut Client,
    key: &str,
    info: &NodeInfo,
    applied: u64,
    lease: i64,
) -> Result<(), etcd_client::Error> {
    let info = NodeInfo {
        applied_revision: applied,
        updated: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        ..info.clone()
    };
    let value = serde_json::to_vec(&info).unwrap_or_default();
    client
        .put(key, value, Some(PutOptions::new().with_lease(lease)))
        .await
        .map(|_| ())
}
