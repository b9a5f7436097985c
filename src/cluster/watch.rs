//! The replica feed: a watch on the prefix from the last applied revision, each revision
//! applied in one durable redb transaction; a full resync (a paged snapshot at one
//! revision) when the history the replica needs was compacted; a heartbeat that keeps
//! "last contact with etcd" current for the read staleness bound.
//! May import: `cluster`, `store`, `etcd_client`, tokio.
//! Invariants: redb work runs on one dedicated thread (`Applier`), never on tokio's blocking
//! pool: writers wait on that pool for their write to be applied, so applying there could
//! starve behind them; no transaction is held across an `.await`; the applied head is
//! published only after its redb commit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use tokio::sync::watch;

use super::{Contact, Key, Layout, CALL_TIMEOUT};
use crate::store::{Change, EntryId, Store};

/// Keys per page of a full resync's range reads.
const PAGE: i64 = 500;

/// Why a watch ended.
enum Ended {
    /// the revision the replica needs is compacted away: resync fully
    Compacted,
    /// anything else: reconnect after a pause
    Failed(anyhow::Error),
}

/// The running feed of one replica: its applied head, for writers to wait on.
pub struct Feed {
    /// the applied head revision
    pub head: watch::Receiver<u64>,
    /// last contact with etcd
    pub contact: Arc<Contact>,
}

/// Brings `store` up to the cluster's current head and keeps it following: returns once
/// the replica holds the head etcd had when this was called; the watch and heartbeat tasks
/// keep running on the current runtime.
pub async fn start(
    client: Client,
    layout: Layout,
    store: Store,
    heartbeat: Duration,
) -> anyhow::Result<Feed> {
    let contact = Contact::new();
    let applier = Applier::new(store)?;
    let (applied, head) = applier.run(|s| Ok(s.replica_revisions()?)).await?;
    if applied == 0 {
        return Err(anyhow!(
            "this data directory holds no cluster replica yet: run `dird cluster join` (or `dird cluster init` on the first node) before `dird serve`"
        ));
    }
    let target = current_head(&client, &layout).await?;
    contact.touch();
    let (tx, rx) = watch::channel(head);
    tokio::spawn(follow(
        client.clone(),
        layout.clone(),
        applier,
        tx,
        contact.clone(),
    ));
    tokio::spawn(beat(client, layout, contact.clone(), heartbeat));
    let mut wait = rx.clone();
    wait.wait_for(|h| *h >= target)
        .await
        .map_err(|_| anyhow!("the cluster watch ended before catching up"))?;
    Ok(Feed { head: rx, contact })
}

/// The head key's mod revision now (0 if there is none).
async fn current_head(client: &Client, layout: &Layout) -> anyhow::Result<u64> {
    let mut kv = client.kv_client();
    let resp = tokio::time::timeout(CALL_TIMEOUT, kv.get(layout.head(), None))
        .await
        .map_err(|_| anyhow!("etcd did not answer within {CALL_TIMEOUT:?}"))?
        .context("reading the cluster head from etcd")?;
    Ok(resp
        .kvs()
        .first()
        .map(|kv| u64::try_from(kv.mod_revision()).unwrap_or(0))
        .unwrap_or(0))
}

/// Keeps the watch running: reconnects with backoff, resyncs after compaction.
async fn follow(
    client: Client,
    layout: Layout,
    store: Applier,
    tx: watch::Sender<u64>,
    contact: Arc<Contact>,
) {
    let mut pause = Duration::from_millis(100);
    loop {
        let ended = watch_once(&client, &layout, &store, &tx).await;
        match ended {
            Ended::Compacted => {
                tracing::warn!(
                    "cluster: the history this replica needs was compacted; full resync"
                );
                match resync(&client, &layout, &store, &contact).await {
                    Ok((rev, head)) => {
                        tracing::info!(revision = rev, "cluster: full resync done");
                        tx.send_replace(head);
                        pause = Duration::from_millis(100);
                        continue;
                    }
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "cluster: resync failed"),
                }
            }
            Ended::Failed(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cluster: watch interrupted; reconnecting");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// One watch stream from the applied revision + 1, until it fails.
async fn watch_once(
    client: &Client,
    layout: &Layout,
    store: &Applier,
    tx: &watch::Sender<u64>,
) -> Ended {
    let applied = match store.run(|s| Ok(s.replica_revisions()?)).await {
        Ok((a, _)) => a,
        Err(e) => return Ended::Failed(e),
    };
    let from = i64::try_from(applied.saturating_add(1)).unwrap_or(i64::MAX);
    let opts = WatchOptions::new()
        .with_range(layout.range_end())
        .with_start_revision(from)
        .with_progress_notify();
    let mut w = client.watch_client();
    let mut stream = match w.watch(layout.root(), Some(opts)).await {
        Ok(s) => s,
        Err(e) => return Ended::Failed(anyhow!("starting the watch: {e}")),
    };
    loop {
        let msg = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return Ended::Failed(anyhow!("the watch stream ended")),
            Err(e) => return Ended::Failed(anyhow!("watch: {e}")),
        };
        // No `contact.touch()` here: a member cut off from the majority still answers a
        // watch (and creates new ones), so only quorum reads and writes count as contact.
        if msg.compact_revision() > 0 {
            return Ended::Compacted;
        }
        if msg.canceled() {
            return Ended::Failed(anyhow!("watch canceled: {}", msg.cancel_reason()));
        }
        // Group the events by revision: each revision is one redb transaction.
        let mut revisions: Vec<(u64, Vec<Change>, bool)> = Vec::new();
        for ev in msg.events() {
            let Some(kv) = ev.kv() else { continue };
            let rev = u64::try_from(kv.mod_revision()).unwrap_or(0);
            if revisions.last().is_none_or(|(r, _, _)| *r != rev) {
                revisions.push((rev, Vec::new(), false));
            }
            let Some((_, changes, head)) = revisions.last_mut() else {
                continue;
            };
            let value = match ev.event_type() {
                EventType::Put => Some(kv.value()),
                EventType::Delete => None,
            };
            if layout.parse(kv.key()) == Key::Head {
                *head = true;
            } else if let Some(c) = layout.change(kv.key(), value) {
                changes.push(c);
            }
        }
        for (rev, changes, head) in revisions {
            let result = store
                .run(move |s| {
                    let mut w = s.apply_txn()?;
                    w.apply_changes(&changes)?;
                    w.set_replica_revisions(rev, head.then_some(rev))?;
                    w.commit()?;
                    Ok(())
                })
                .await;
            if let Err(e) = result {
                return Ended::Failed(e.context(format!("applying revision {rev}")));
            }
            if head {
                tx.send_replace(rev);
            }
        }
    }
}

/// A full resync: the whole prefix at one revision into the replica, in one redb
/// transaction. Returns (revision, head revision).
pub async fn resync(
    client: &Client,
    layout: &Layout,
    store: &Applier,
    contact: &Contact,
) -> anyhow::Result<(u64, u64)> {
    let mut kv = client.kv_client();
    let mut entries: BTreeMap<EntryId, Vec<u8>> = BTreeMap::new();
    let mut meta: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut head = 0u64;
    let mut at: Option<i64> = None;
    let mut from = layout.root().as_bytes().to_vec();
    loop {
        let mut opts = GetOptions::new()
            .with_range(layout.range_end())
            .with_limit(PAGE);
        if let Some(r) = at {
            opts = opts.with_revision(r);
        }
        let resp = tokio::time::timeout(CALL_TIMEOUT, kv.get(from.clone(), Some(opts)))
            .await
            .map_err(|_| anyhow!("etcd did not answer within {CALL_TIMEOUT:?}"))?
            .context("reading the cluster snapshot from etcd")?;
        contact.touch();
        if at.is_none() {
            at = Some(resp.header().map(|h| h.revision()).unwrap_or(0));
        }
        for item in resp.kvs() {
            match layout.parse(item.key()) {
                Key::Entry(id) => {
                    entries.insert(id, item.value().to_vec());
                }
                Key::Meta(k) => {
                    meta.insert(k, item.value().to_vec());
                }
                Key::Head => head = u64::try_from(item.mod_revision()).unwrap_or(0),
                Key::Other => {}
            }
        }
        match resp.kvs().last() {
            Some(last) if resp.more() => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => break,
        }
    }
    let rev = u64::try_from(at.unwrap_or(0)).unwrap_or(0);
    if head == 0 {
        return Err(anyhow!(
            "the cluster prefix {} holds no directory: run `dird cluster init` on the first node",
            layout.root()
        ));
    }
    store
        .run(move |s| {
            let mut w = s.apply_txn()?;
            w.resync(&entries, &meta)?;
            w.set_replica_revisions(rev, Some(head))?;
            w.commit()?;
            Ok(())
        })
        .await?;
    Ok((rev, head))
}

/// Keeps "last contact" current while the watch is quiet: a linearizable read of the head
/// (it needs an etcd quorum, so a node cut off from the majority stops touching).
async fn beat(client: Client, layout: Layout, contact: Arc<Contact>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if current_head(&client, &layout).await.is_ok() {
            contact.touch();
        }
    }
}

/// Work for the apply thread.
type Job = Box<dyn FnOnce(&Store) + Send>;

/// The one thread that writes the replica for the feed (see the module invariants).
pub struct Applier {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Applier {
    /// Starts the thread, which owns `store` until every `Applier` handle is dropped.
    pub fn new(store: Store) -> anyhow::Result<Applier> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("cluster-apply".into())
            .spawn(move || {
                for job in rx {
                    job(&store);
                }
            })
            .context("starting the cluster apply thread")?;
        Ok(Applier { jobs: tx })
    }

    /// Runs `f` on the apply thread and waits for its result.
    pub async fn run<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> anyhow::Result<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move |s: &Store| {
                let _ = tx.send(f(s));
            }))
            .map_err(|_| anyhow!("the cluster apply thread has stopped"))?;
        rx.await
            .map_err(|_| anyhow!("the cluster apply thread has stopped"))?
    }
}
