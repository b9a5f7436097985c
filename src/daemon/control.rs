//! The admin control socket `<data_dir>/dird.sock`: how `dird backup` and `dird restore`
//! talk to a running daemon (the daemon holds the database file exclusively).
//! May import: `store`, `daemon::backup`. Invariants: the socket is mode 0600 (owner only;
//! root can always connect); one request line in, one reply line out, then the connection
//! closes; requests are bounded in size and time.
//!
//! Requests and replies:
//! - `ping` → `ok dird <version>`
//! - `snapshot` → `ok <path>`: a consistent copy of the database ([`Store::backup`]) written
//!   into the data directory as `snapshot-<pid>-<n>.redb`; the caller copies it and deletes
//!   it. On failure: `error <message>`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::store::Store;

/// The socket's file name inside the data directory.
pub const SOCKET: &str = "dird.sock";

/// Prefix of the snapshot files the daemon writes for `dird backup`.
const SNAPSHOT_PREFIX: &str = "snapshot-";

/// `<data_dir>/dird.sock`
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// Binds the control socket (replacing a stale socket file left by a crash) with mode 0600,
/// and removes snapshot files a crashed `dird backup` left behind.
pub fn bind(data_dir: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    // The database lock is already ours, so no other daemon serves this data directory:
    // a socket file here is stale.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .map_err(|e| anyhow::anyhow!("control socket {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| anyhow::anyhow!("control socket {}: {e}", path.display()))?;
    if let Ok(entries) = std::fs::read_dir(data_dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(SNAPSHOT_PREFIX) && name.ends_with(".redb") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(listener)
}

/// Serves the control socket until `stop` changes; removes the socket file on exit.
pub async fn serve(
    listener: UnixListener,
    store: Store,
    data_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let counter = Arc::new(AtomicU64::new(0));
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (store, data_dir, counter) = (store.clone(), data_dir.clone(), counter.clone());
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
            let got = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await;
            if !matches!(got, Ok(Ok(n)) if n > 0) {
                return;
            }
            let reply = handle(line.trim(), &store, &data_dir, &counter).await;
            let _ = write.write_all(format!("{reply}\n").as_bytes()).await;
            let _ = write.shutdown().await;
        });
    }
    let _ = std::fs::remove_file(socket_path(&data_dir));
}

async fn handle(request: &str, store: &Store, data_dir: &Path, counter: &AtomicU64) -> String {
    match request {
        "ping" => format!("ok dird {}", env!("CARGO_PKG_VERSION")),
        "snapshot" => {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let path = data_dir.join(format!("{SNAPSHOT_PREFIX}{}-{n}.redb", std::process::id()));
            let store = store.clone();
            let target = path.clone();
            let done = tokio::task::spawn_blocking(move || store.backup(&target)).await;
            match done {
                Ok(Ok(())) => {
                    tracing::info!(file = %path.display(), "snapshot taken for dird backup");
                    format!("ok {}", path.display())
                }
                Ok(Err(e)) => format!("error {e}"),
                Err(e) => format!("error {e}"),
            }
        }
        other => format!("error unknown request {other:?}; send ping or snapshot"),
    }
}

/// Sends one request to the daemon of `data_dir`. `Ok(None)` when no daemon listens (no
/// socket file, or nobody accepts on it).
pub fn request(data_dir: &Path, line: &str) -> anyhow::Result<Option<String>> {
    let path = socket_path(data_dir);
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(anyhow::anyhow!("control socket {}: {e}", path.display())),
    };
    // A snapshot of a large database takes a while; a stuck daemon should not hang forever.
    stream.set_read_timeout(Some(Duration::from_secs(3600)))?;
    stream.write_all(format!("{line}\n").as_bytes())?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    Ok(Some(reply.trim().to_string()))
}

const MAX_REQUEST: u64 = 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
