//! The admin control socket `<data_dir>/dird.sock`: how every `dird` subcommand talks to a
//! running daemon (the daemon holds the database file exclusively).
//! May import: `store`, `admin`, `daemon::backup`. Invariants: the socket is mode 0600, and
//! every connection's peer (SO_PEERCRED) must be root or the daemon's own uid, else it is
//! refused with a message saying so; requests are bounded in size ([`proto::MAX_FRAME`]) and
//! time; at most [`MAX_CLIENTS`] connections are served at once.
//!
//! Two request forms share the socket, told apart by the first byte (a frame's is 0):
//! - framed JSON ([`crate::admin::proto`]): every CLI subcommand, handled by the same
//!   [`Admin`] service the offline CLI runs;
//! - one text line (older `dird backup`/`dird restore`): `ping` → `ok dird <version>`;
//!   `snapshot` → `ok <path>`: a consistent copy of the database ([`Store::backup`]) written
//!   into the data directory as `snapshot-<pid>-<n>.redb`; the caller copies it and deletes
//!   it. On failure: `error <message>`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};

use crate::admin::proto::{self, AdminRequest, AdminResponse, FrameError};
use crate::admin::{Admin, Operator, ONLINE_IMPORT_BATCH};
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
    admin: Arc<Admin>,
    data_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let counter = Arc::new(AtomicU64::new(0));
    let own_uid = crate::admin::effective_uid();
    let clients = Arc::new(Semaphore::new(MAX_CLIENTS));
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
        let Ok(permit) = clients.clone().try_acquire_owned() else {
            tracing::warn!("control socket: too many connections; one refused");
            continue;
        };
        let (store, data_dir, counter, admin) = (
            store.clone(),
            data_dir.clone(),
            counter.clone(),
            admin.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            connection(stream, own_uid, &store, &admin, &data_dir, &counter).await;
        });
    }
    let _ = std::fs::remove_file(socket_path(&data_dir));
}

/// Who may use the socket: root and the daemon's own uid (the file mode already keeps
/// others out; this holds even if the mode is loosened by mistake).
pub fn authorized(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == own_uid
}

async fn connection(
    mut stream: UnixStream,
    own_uid: u32,
    store: &Store,
    admin: &Arc<Admin>,
    data_dir: &Path,
    counter: &AtomicU64,
) {
    let cred = match stream.peer_cred() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "control socket: no peer credentials; refused");
            return;
        }
    };
    let mut first = [0u8; 1];
    match tokio::time::timeout(REQUEST_TIMEOUT, stream.read_exact(&mut first)).await {
        Ok(Ok(_)) => {}
        _ => return,
    }
    let framed = first[0] == 0;
    if !authorized(cred.uid(), own_uid) {
        tracing::warn!(uid = cred.uid(), pid = ?cred.pid(), "control socket: refused a client that is neither root nor the daemon's user");
        let message = format!(
            "permission denied: the admin socket {} accepts only root and the daemon's user \
             (uid {own_uid}); you are uid {}. Run the command as one of them (sudo)",
            socket_path(data_dir).display(),
            cred.uid()
        );
        if framed {
            let _ = proto::write_frame_async(&mut stream, &AdminResponse::Error { message }).await;
        } else {
            let _ = stream
                .write_all(format!("error {message}\n").as_bytes())
                .await;
        }
        let _ = stream.shutdown().await;
        return;
    }
    let operator = Operator {
        uid: cred.uid(),
        pid: cred.pid(),
        online: true,
    };
    if framed {
        framed_connection(stream, first[0], admin, &operator).await;
        return;
    }
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    line.push(char::from(first[0]));
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
    let got = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await;
    if !matches!(got, Ok(Ok(_))) {
        return;
    }
    let reply = handle(line.trim(), store, data_dir, counter).await;
    let _ = write.write_all(format!("{reply}\n").as_bytes()).await;
    let _ = write.shutdown().await;
}

/// One framed request (and, for import and export, its stream).
async fn framed_connection(mut stream: UnixStream, first: u8, admin: &Arc<Admin>, op: &Operator) {
    let mut len = [first, 0, 0, 0];
    let read = async {
        stream.read_exact(&mut len[1..]).await?;
        proto::read_body::<AdminRequest>(&mut stream, len).await
    };
    let req = match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let message = format!("bad request: {e}");
            let _ = proto::write_frame_async(&mut stream, &AdminResponse::Error { message }).await;
            return;
        }
        Err(_) => return,
    };
    let started = std::time::Instant::now();
    match req {
        AdminRequest::Export => {
            let ok = export(&mut stream, admin).await;
            admin.count_request("export", ok, started.elapsed());
        }
        AdminRequest::ImportBegin { objects, users } => {
            let ok = import(&mut stream, admin, op, objects, users).await;
            admin.count_request("import", ok, started.elapsed());
        }
        other => {
            let resp = match admin.execute(op, other).await {
                Ok(reply) => AdminResponse::Done(reply),
                Err(e) => AdminResponse::Error { message: e.message },
            };
            let _ = proto::write_frame_async(&mut stream, &resp).await;
        }
    }
    let _ = stream.shutdown().await;
}

/// Streams a consistent export: a blocking thread walks one read transaction and hands
/// LDIF text to this task through a small channel (so a slow reader slows the walk, and
/// memory stays bounded).
async fn export(stream: &mut UnixStream, admin: &Arc<Admin>) -> bool {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
    let walk = {
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || {
            let mut sink = ChannelWriter {
                tx,
                buf: Vec::with_capacity(EXPORT_CHUNK),
            };
            let n = admin.export_blocking(&mut sink);
            let flushed = sink.send();
            n.and_then(|n| {
                flushed.map(|_| n).map_err(|e| crate::admin::AdminError {
                    message: format!("writing the export: {e}"),
                })
            })
        })
    };
    let mut client_gone = false;
    while let Some(ldif) = rx.recv().await {
        if proto::write_frame_async(stream, &AdminResponse::Data { ldif })
            .await
            .is_err()
        {
            client_gone = true;
            break;
        }
    }
    drop(rx);
    let done = walk.await;
    if client_gone {
        return false;
    }
    let resp = match done {
        Ok(Ok(n)) => AdminResponse::Done(crate::admin::Reply::new(
            format!("exported {n} entries"),
            serde_json::json!({ "entries": n }),
        )),
        Ok(Err(e)) => AdminResponse::Error { message: e.message },
        Err(e) => AdminResponse::Error {
            message: format!("export task failed: {e}"),
        },
    };
    let ok = matches!(resp, AdminResponse::Done(_));
    let _ = proto::write_frame_async(stream, &resp).await;
    ok
}

/// Runs an import stream: room check, then chunks until `ImportEnd`.
async fn import(
    stream: &mut UnixStream,
    admin: &Admin,
    op: &Operator,
    objects: u64,
    users: u64,
) -> bool {
    let mut importer = match admin
        .import_begin(op, objects, users, ONLINE_IMPORT_BATCH, Vec::new())
        .await
    {
        Ok(i) => i,
        Err(e) => {
            let _ = proto::write_frame_async(stream, &AdminResponse::Error { message: e.message })
                .await;
            return false;
        }
    };
    let progress = AdminResponse::Progress {
        added: 0,
        changed: 0,
    };
    if proto::write_frame_async(stream, &progress).await.is_err() {
        return false;
    }
    loop {
        let next: Result<AdminRequest, FrameError> = match tokio::time::timeout(
            IMPORT_IDLE_TIMEOUT,
            proto::read_frame_async(stream),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => return false,
        };
        let resp = match next {
            Ok(AdminRequest::ImportChunk { ldif }) => {
                match importer.chunk(admin, ldif.as_bytes()).await {
                    Ok((added, changed)) => AdminResponse::Progress { added, changed },
                    Err(e) => AdminResponse::Error { message: e.message },
                }
            }
            Ok(AdminRequest::ImportEnd) => {
                let reply = importer.finish();
                let _ = proto::write_frame_async(stream, &AdminResponse::Done(reply)).await;
                return true;
            }
            Ok(other) => AdminResponse::Error {
                message: format!(
                    "unexpected {} request during an import",
                    crate::admin::op_name(&other)
                ),
            },
            Err(e) => AdminResponse::Error {
                message: format!("import stream: {e}"),
            },
        };
        let failed = matches!(resp, AdminResponse::Error { .. });
        if proto::write_frame_async(stream, &resp).await.is_err() || failed {
            return false;
        }
    }
}

/// Collects LDIF text and sends it in chunks of about [`EXPORT_CHUNK`] bytes.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<String>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8(std::mem::take(&mut self.buf))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.tx
            .blocking_send(text)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        // Whole lines only: LDIF lines are ASCII (the writer base64-encodes anything else),
        // so a cut after a newline is also a cut between UTF-8 characters.
        if self.buf.len() >= EXPORT_CHUNK {
            if let Some(cut) = self.buf.iter().rposition(|b| *b == b'\n') {
                let rest = self.buf.split_off(cut + 1);
                self.send()?;
                self.buf = rest;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
/// Longest pause between two chunks of an import before the daemon gives up on it.
const IMPORT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Admin connections served at once (more are closed at once).
pub const MAX_CLIENTS: usize = 16;
/// Bytes of LDIF per export frame.
const EXPORT_CHUNK: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_the_daemons_own_user_are_authorized() {
        assert!(authorized(0, 998));
        assert!(authorized(998, 998));
        assert!(!authorized(65534, 998));
        assert!(!authorized(1000, 0));
    }
}
