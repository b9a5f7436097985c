//! `dird cluster init` (seed an empty etcd prefix from a local store) and `dird cluster
//! join` (fill a fresh local store from etcd), on the etcd side.
//! May import: `cluster`, `store`, `etcd_client`.
//! Invariants: `init` refuses a non-empty prefix and writes `head` last, in a transaction
//! that fails if another `init` wrote one meanwhile; every seeding transaction stays within
//! etcd's default limits (120 operations, under 1.5 MiB).

use anyhow::{anyhow, bail, Context};
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};

use super::replica::MAX_TXN_BYTES;
use super::watch::resync;
use super::{Contact, Layout, CALL_TIMEOUT};
use crate::store::{Change, Store};

/// Operations per seeding transaction (etcd's default limit is 128).
const SEED_OPS: usize = 120;

/// Copies every entry and replicated meta value of `store` into the empty prefix, then the
/// head, and marks the store as the replica at that revision. Returns the revision.
pub async fn init(
    client: &Client,
    layout: &Layout,
    node: &str,
    store: &Store,
) -> anyhow::Result<u64> {
    let mut kv = client.kv_client();
    let existing = tokio::time::timeout(
        CALL_TIMEOUT,
        kv.get(
            layout.root(),
            Some(
                GetOptions::new()
                    .with_range(layout.range_end())
                    .with_count_only(),
            ),
        ),
    )
    .await
    .map_err(|_| anyhow!("etcd did not answer within {CALL_TIMEOUT:?}"))?
    .context("reading the cluster prefix")?;
    if existing.count() > 0 {
        bail!(
            "the etcd prefix {} is not empty: this cluster was initialised already; run `dird cluster join` on this node instead (or set another cluster.prefix)",
            layout.root()
        );
    }
    let snapshot = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            store.replicated_snapshot(&mut |c| {
                all.push(c);
                Ok(())
            })?;
            anyhow::Ok(all)
        })
        .await??
    };
    let not_initialised = || Compare::version(layout.head(), CompareOp::Equal, 0);
    let mut batch: Vec<TxnOp> = Vec::new();
    let mut bytes = 0usize;
    let mut sent = 0usize;
    let total = snapshot.len();
    for c in snapshot {
        let (key, value) = match c {
            Change::Entry(id, Some(v)) => (layout.entry(id), v),
            Change::Meta(k, v) => (layout.meta(&k), v),
            Change::Entry(_, None) => continue,
        };
        let size = key.len() + value.len() + 64;
        if batch.len() >= SEED_OPS || (bytes + size > MAX_TXN_BYTES && !batch.is_empty()) {
            sent += batch.len();
            put_batch(client, std::mem::take(&mut batch), not_initialised()).await?;
            tracing::info!(sent, total, "cluster init: seeding");
            bytes = 0;
        }
        if size > MAX_TXN_BYTES {
            bail!("{key} is {size} bytes, over etcd's 1.5 MiB request limit");
        }
        bytes += size;
        batch.push(TxnOp::put(key, value, None));
    }
    if !batch.is_empty() {
        put_batch(client, batch, not_initialised()).await?;
    }
    let resp = tokio::time::timeout(
        CALL_TIMEOUT,
        kv.txn(Txn::new().when([not_initialised()]).and_then([TxnOp::put(
            layout.head(),
            format!("{node} init"),
            None,
        )])),
    )
    .await
    .map_err(|_| anyhow!("etcd did not answer within {CALL_TIMEOUT:?}"))?
    .context("writing the cluster head")?;
    if !resp.succeeded() {
        bail!(
            "another node initialised the cluster at the same time: run `dird cluster join` here"
        );
    }
    let rev = u64::try_from(resp.header().map(|h| h.revision()).unwrap_or(0)).unwrap_or(0);
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = store.apply_txn()?;
        w.set_replica_revisions(rev, Some(rev))?;
        w.commit()?;
        anyhow::Ok(())
    })
    .await??;
    Ok(rev)
}

async fn put_batch(client: &Client, ops: Vec<TxnOp>, guard: Compare) -> anyhow::Result<()> {
    let mut kv = client.kv_client();
    let resp = tokio::time::timeout(CALL_TIMEOUT, kv.txn(Txn::new().when([guard]).and_then(ops)))
        .await
        .map_err(|_| anyhow!("etcd did not answer within {CALL_TIMEOUT:?}"))?
        .context("seeding the cluster")?;
    if !resp.succeeded() {
        bail!(
            "another node initialised the cluster at the same time: run `dird cluster join` here"
        );
    }
    Ok(())
}

/// Fills `store` (fresh) from the cluster: a full resync. Returns the revision.
pub async fn join(client: &Client, layout: &Layout, store: &Store) -> anyhow::Result<u64> {
    let contact = Contact::new();
    let applier = super::watch::Applier::new(store.clone())?;
    let (rev, _) = resync(client, layout, &applier, &contact).await?;
    Ok(rev)
}
