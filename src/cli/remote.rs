//! One CLI, two transports: a subcommand's [`AdminRequest`] goes to the running daemon over
//! its control socket when one answers for the config's data directory, and otherwise runs
//! in-process on the opened database through the same [`Admin`] service.
//! May import: `admin`, `daemon::{control, services}`, `cli::admin` (opening the instance).
//! Invariants: a socket that exists but refuses us (permission) is an error, never a reason
//! to fall back to offline; a database locked by another process with no socket answering is
//! an error that says so.

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};

use crate::admin::proto::{self, AdminRequest, AdminResponse, Reply};
use crate::admin::{Admin, Operator};
use crate::config::Config;
use crate::daemon::control;

/// Where a request runs.
pub(super) enum Transport {
    /// the running daemon, over this connection
    Online(UnixStream),
    /// no daemon: open the database in this process
    Offline,
}

/// Finds the running daemon of `config`'s data directory.
pub(super) fn connect(config: &Config) -> anyhow::Result<Transport> {
    let path = control::socket_path(&config.data_dir);
    match UnixStream::connect(&path) {
        Ok(s) => {
            // A large import batch or export walk takes a while; a stuck daemon should not
            // hang the CLI forever.
            s.set_read_timeout(Some(Duration::from_secs(3600)))?;
            Ok(Transport::Online(s))
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(Transport::Offline)
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "permission denied on the admin socket {} of the running dird: only root and the \
             daemon's user may administer it. Run the command as one of them (sudo)",
            path.display()
        ),
        Err(e) => Err(anyhow!("admin socket {}: {e}", path.display())),
    }
}

/// Sends one request to the daemon and returns its reply.
pub(super) fn call(stream: &mut UnixStream, req: &AdminRequest) -> anyhow::Result<Reply> {
    proto::write_frame(stream, req).map_err(|e| anyhow!("sending to the daemon: {e}"))?;
    match receive(stream)? {
        AdminResponse::Done(reply) => Ok(reply),
        AdminResponse::Error { message } => Err(anyhow!(message)),
        other => Err(anyhow!("unexpected answer from the daemon: {other:?}")),
    }
}

/// Reads one response from the daemon.
pub(super) fn receive(stream: &mut UnixStream) -> anyhow::Result<AdminResponse> {
    proto::read_frame(stream).map_err(|e| match e {
        proto::FrameError::Closed => {
            anyhow!("the daemon closed the admin connection without an answer (see its log)")
        }
        other => anyhow!("reading the daemon's answer: {other}"),
    })
}

/// Runs `req` where it belongs: on the daemon if one runs, else offline.
pub(super) fn execute(config: &Config, req: AdminRequest) -> anyhow::Result<Reply> {
    match connect(config)? {
        Transport::Online(mut s) => call(&mut s, &req),
        Transport::Offline => {
            let admin = offline(config)?;
            let rt = runtime()?;
            rt.block_on(admin.execute(&Operator::this_process(), req))
                .map_err(|e| anyhow!(e.message))
        }
    }
}

/// The admin service over the database opened in this process (no daemon runs).
pub(super) fn offline(config: &Config) -> anyhow::Result<Admin> {
    offline_with(config, true)
}

/// `offline`, provisioning an empty store only if `provision`.
pub(super) fn offline_with(config: &Config, provision: bool) -> anyhow::Result<Admin> {
    let (opened, dir) = super::admin::open_directory_with(config, provision)?;
    let metrics = Arc::new(crate::metrics::Metrics::new());
    Ok(Admin::new(
        Arc::new(dir),
        opened.local.clone(),
        opened.store.clone(),
        config.clone(),
        crate::audit::Audit::disabled(),
        metrics,
        None,
    )
    .with_direct_audit(config.audit.as_ref().and_then(|a| a.path.clone())))
}

/// A runtime for one offline command.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Prints a reply: its summary, or with `--json` one JSON object (`ok`, `message`, data).
pub(super) fn print(reply: &Reply, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let mut v = match &reply.data {
            serde_json::Value::Object(m) => serde_json::Value::Object(m.clone()),
            serde_json::Value::Null => serde_json::json!({}),
            other => serde_json::json!({ "data": other }),
        };
        v["ok"] = serde_json::json!(true);
        v["message"] = serde_json::json!(reply.summary);
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
    } else if !reply.summary.is_empty() {
        writeln!(out, "{}", reply.summary)?;
    }
    Ok(())
}

/// The error message for a database that another process holds while no socket answers.
pub(super) fn locked_hint(config: &Config) -> String {
    format!(
        "another process holds the database in {}, but no dird answers on its admin socket {}: \
         if a dird runs there, it cannot be administered online (check its log for the admin \
         socket); otherwise stop the other process",
        config.data_dir.display(),
        control::socket_path(&config.data_dir).display()
    )
}

/// Writes `bytes` to `path` with mode 0600, atomically (temporary file, then rename).
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        bail!("writing {}: {e}", path.display());
    }
    Ok(())
}
