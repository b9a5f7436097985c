//! SIGHUP: reload the TLS certificate and key files and the log level, and reopen the audit
//! file, without dropping connections.
//! May import: `config`, `daemon::tls`. Invariants: a reload that fails keeps what was in
//! force (a bad certificate file never takes TLS down); connections already open keep the
//! TLS session they negotiated; new handshakes use the new certificate.
//!
//! The log level comes from `[log] level` in the config file when it is set, else from
//! `DIRD_LOG`, else `info`. The binary installs the function that swaps the filter
//! ([`set_log_reloader`]) and names the config file ([`set_config_path`]); a reload re-reads
//! that file for `[log] level` only (other settings need a restart).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, TlsFiles};

/// Swaps the process's log filter; returns why a filter was refused.
pub type LogReloader = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static LOG_RELOADER: OnceLock<LogReloader> = OnceLock::new();
static CONFIG_PATH: OnceLock<PathBuf> = OnceLock::new();

/// Installs the log filter swapper (once per process; the binary calls this).
pub fn set_log_reloader(f: LogReloader) {
    let _ = LOG_RELOADER.set(f);
}

/// Records the config file the process was started with (once per process).
pub fn set_config_path(path: PathBuf) {
    let _ = CONFIG_PATH.set(path);
}

/// Applies the log level a config asks for (`[log] level`, else `DIRD_LOG`, else `info`).
pub fn apply_log_level(config: &Config) -> Result<(), String> {
    let Some(reload) = LOG_RELOADER.get() else {
        return Ok(()); // a library user without a reloadable subscriber
    };
    let spec = config
        .log_level
        .clone()
        .or_else(|| std::env::var("DIRD_LOG").ok())
        .unwrap_or_else(|| "info".to_string());
    reload(&spec)
}

/// What a reload changes.
pub struct Reloadable {
    /// the acceptor every new TLS handshake reads
    pub acceptor: Arc<RwLock<TlsAcceptor>>,
    /// `[tls]` files, or `None` for the generated ones in `data_dir/tls`
    pub tls: Option<TlsFiles>,
    /// the data directory
    pub data_dir: PathBuf,
    /// this host's name (for a generated certificate)
    pub host: String,
    /// the audit stream (its file is reopened, for log rotation)
    pub audit: crate::audit::Audit,
    /// re-reads the `[[trust]]` password files (trust mode; blocking, PBKDF2)
    pub trusts: Option<TrustReload>,
}

/// Re-applies the trust password files (`daemon::trust::ensure_all`).
pub type TrustReload = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

impl Reloadable {
    /// Re-reads the certificate and key and swaps the acceptor. Returns a description of
    /// the outcome for the log.
    pub fn reload_tls(&self) -> Result<String, String> {
        let material = super::tls::load_or_generate(self.tls.as_ref(), &self.data_dir, &self.host)
            .map_err(|e| e.to_string())?;
        let fresh = TlsAcceptor::from(material.config);
        match self.acceptor.write() {
            Ok(mut a) => *a = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(material.cert.display().to_string())
    }
}

/// Waits for SIGHUP and reloads, until `stop` changes. Prints `dird reloaded tls=ok|error
/// log=ok|error` on stdout after each reload (a readiness signal for scripts and tests).
pub async fn on_sighup(what: Reloadable, mut stop: watch::Receiver<bool>) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGHUP handler; reload is unavailable");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        let tls = match what.reload_tls() {
            Ok(cert) => {
                tracing::info!(%cert, "SIGHUP: TLS certificate reloaded");
                "ok"
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: TLS reload failed; keeping the certificate in use");
                "error"
            }
        };
        let log = match reload_log_level() {
            Ok(()) => "ok",
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: log level reload failed; keeping the level in use");
                "error"
            }
        };
        what.audit.reopen();
        let trust = match &what.trusts {
            None => String::new(),
            Some(f) => {
                let f = f.clone();
                match tokio::task::spawn_blocking(move || f()).await {
                    Ok(Ok(())) => " trust=ok".to_owned(),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "SIGHUP: trust password files not applied");
                        " trust=error".to_owned()
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "SIGHUP: trust reload task failed");
                        " trust=error".to_owned()
                    }
                }
            }
        };
        println!("dird reloaded tls={tls} log={log}{trust}");
    }
}

fn reload_log_level() -> Result<(), String> {
    let config = match CONFIG_PATH.get() {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => return Ok(()), // demo config: nothing to re-read
    };
    apply_log_level(&config)?;
    tracing::info!(level = ?config.log_level, "SIGHUP: log level applied");
    Ok(())
}
