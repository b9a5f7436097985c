//! A non-paged search's result as a stream of entry batches (issue 15 §3: a search returning
//! hundreds of thousands of entries must not grow the server's memory with its size).
//! Owns: the receiving end of a backend's `search_stream`, redaction of each batch as it
//! arrives, and the search's outcome (size limit hit, or the error that ended it).
//! Invariant: at most the channel's capacity in batches (plus the one the backend is filling)
//! is buffered between the backend and the caller; dropping the stream closes the channel,
//! which stops the backend's producer at its next batch.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backend::BackendError;
use crate::directory::access;
use crate::directory::error::DirError;
use crate::model::Entry;

/// Batches queued between a backend producer and the stream's reader.
pub(super) const QUEUED_BATCHES: usize = 1;

/// The entries of a search, in batches, then its outcome.
pub struct EntryStream {
    rx: mpsc::Receiver<Vec<Entry>>,
    outcome: Outcome,
}

enum Outcome {
    /// the search ran whole before the stream was made (base scope)
    Known(bool),
    /// the backend producer, still running
    Running(JoinHandle<Result<bool, BackendError>>),
}

impl EntryStream {
    /// A stream over a result already in hand.
    pub(super) fn ready(entries: Vec<Entry>, size_limited: bool) -> EntryStream {
        let (tx, rx) = mpsc::channel(1);
        if !entries.is_empty() {
            // The channel is new and has room for one batch: this cannot fail.
            let _ = tx.try_send(entries);
        }
        EntryStream {
            rx,
            outcome: Outcome::Known(size_limited),
        }
    }

    /// A stream fed by a running producer that sends to the sender of `rx`.
    pub(super) fn running(
        rx: mpsc::Receiver<Vec<Entry>>,
        producer: JoinHandle<Result<bool, BackendError>>,
    ) -> EntryStream {
        EntryStream {
            rx,
            outcome: Outcome::Running(producer),
        }
    }

    /// The next batch of entries, redacted; `None` once the producer is done.
    pub async fn next_batch(&mut self) -> Option<Vec<Entry>> {
        let batch = self.rx.recv().await?;
        Some(batch.into_iter().map(access::redact).collect())
    }

    /// How the search ended, once `next_batch` returned `None`: Ok(true) if the size limit
    /// cut it short, or the error that ended it (the entries before it were streamed).
    pub async fn finish(self) -> Result<bool, DirError> {
        match self.outcome {
            Outcome::Known(limited) => Ok(limited),
            Outcome::Running(handle) => match handle.await {
                Ok(outcome) => outcome.map_err(DirError::from),
                Err(e) => Err(DirError::from(BackendError::Store(format!(
                    "search task failed: {e}"
                )))),
            },
        }
    }
}
