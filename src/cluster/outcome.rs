//! Settles writes whose outcome was unknown (etcd gave no answer within the write deadline,
//! answered 52 to the client): in the background, once etcd answers a quorum read again,
//! decides from the head's history whether the write's unique head marker was applied, and
//! records a `write_outcome` audit event with the verdict.
//! May import: `cluster`, `audit`, `etcd_client`, tokio. Invariants: runs on the runtime
//! (never on the store's write thread); bounded in time (gives up after `GIVE_UP`, with an
//! `unknown` verdict); one event per unknown write.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use etcd_client::{Client, WatchOptions};

use crate::audit::{Audit, Event, Kind, Outcome};

/// How long a write's outcome is looked for before it is recorded as unknown.
const GIVE_UP: Duration = Duration::from_secs(600);
/// Pause between attempts while etcd does not answer.
const RETRY: Duration = Duration::from_millis(500);
/// How long one look (a quorum read, or the first history event) may take.
const LOOK: Duration = Duration::from_secs(3);

/// The audit stream, set once the daemon has built it (the replicator exists before).
pub type AuditSlot = Arc<OnceLock<Audit>>;

/// A write whose outcome is unknown: it was applied if the first head change after
/// `base` carries `marker`.
pub struct Unknown {
    /// the head key
    pub head_key: String,
    /// the head's mod revision the write was based on
    pub base: u64,
    /// the write's unique head value
    pub marker: String,
    /// this node
    pub node: String,
}

/// Looks for the verdict in the background and records it.
pub fn settle(rt: &tokio::runtime::Handle, client: Client, audit: AuditSlot, w: Unknown) {
    rt.spawn(async move {
        let verdict = tokio::time::timeout(GIVE_UP, verdict(&client, &w))
            .await
            .ok()
            .flatten();
        let applied = match verdict {
            Some(true) => "true",
            Some(false) => "false",
            None => "unknown",
        };
        tracing::info!(marker = %w.marker, applied, "cluster: outcome of an unanswered write settled");
        if let Some(audit) = audit.get() {
            audit.record(
                Event::new(Kind::WriteOutcome, "write_outcome", SystemTime::now())
                    .identity(w.node.clone())
                    .outcome(match verdict {
                        Some(true) => Outcome::new(0, "applied"),
                        Some(false) => Outcome::new(0, "not_applied"),
                        None => Outcome::new(52, "unknown"),
                    })
                    .detail("applied", applied)
                    .detail("marker", w.marker.clone())
                    .detail("base_revision", w.base.to_string()),
            );
        }
    });
}

/// `Some(applied)` once etcd answers; `None` if the history was compacted away.
async fn verdict(client: &Client, w: &Unknown) -> Option<bool> {
    loop {
        match look(client, w).await {
            Ok(v) => return v,
            Err(e) => {
                tracing::debug!(error = %e, marker = %w.marker, "cluster: write outcome not known yet");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

async fn look(client: &Client, w: &Unknown) -> anyhow::Result<Option<bool>> {
    // A quorum read: once it answers, every proposal of the old term was committed or lost.
    let mut kv = client.kv_client();
    let got = tokio::time::timeout(LOOK, kv.get(w.head_key.as_str(), None))
        .await
        .map_err(|_| anyhow::anyhow!("no answer"))??;
    let now = got
        .kvs()
        .first()
        .map(|k| u64::try_from(k.mod_revision()).unwrap_or(0))
        .unwrap_or(0);
    if now <= w.base {
        return Ok(Some(false));
    }
    // The head moved: the first change after `base` is this write iff it carries the marker.
    let from = i64::try_from(w.base.saturating_add(1)).unwrap_or(i64::MAX);
    let mut watcher = client.watch_client();
    let mut stream = watcher
        .watch(
            w.head_key.as_str(),
            Some(WatchOptions::new().with_start_revision(from)),
        )
        .await?;
    loop {
        let msg = tokio::time::timeout(LOOK, stream.message())
            .await
            .map_err(|_| anyhow::anyhow!("no history event"))??
            .ok_or_else(|| anyhow::anyhow!("the watch stream ended"))?;
        if msg.compact_revision() > 0 {
            return Ok(None);
        }
        if let Some(kv) = msg.events().iter().find_map(|e| e.kv()) {
            return Ok(Some(kv.value() == w.marker.as_bytes()));
        }
    }
}
