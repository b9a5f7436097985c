//! The operator-facing services around the protocol listeners: the metrics and health
//! endpoint, the admin control socket, scheduled backups and the SIGHUP reload. `daemon::run`
//! starts them once the listeners are bound and stops them on shutdown.
//! May import: `daemon::{http, control, backup, reload}`, `config`, `store`, `directory`,
//! `metrics`, `audit`, `admin`. Invariant: none of these can stop the daemon from serving LDAP; their
//! failures are logged (and, for backups, retried at the next interval). Only a metrics
//! address that cannot be bound stops the start, like an LDAP address would.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::audit::{Audit, AuditSettings};
use crate::config::Config;
use crate::directory::Directory;
use crate::metrics::Metrics;
use crate::store::Store;

use super::reload::Reloadable;
use super::{backup, control, http, reload};

/// The audit stream and metrics of a daemon, built before the listeners (the front-ends
/// hold them).
pub fn observability(config: &Config) -> (Audit, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let audit = match &config.audit {
        None => Audit::disabled(),
        Some(a) => {
            let audit = Audit::start(&AuditSettings {
                path: a.path.clone(),
                tracing: a.tracing,
                fail_closed: a.fail_closed,
                queue: a.queue,
            });
            // Failures before the hook was installed (a bad path at start) count too.
            for _ in 0..audit.failures() {
                metrics.audit_failure();
            }
            let m = metrics.clone();
            audit.on_failure(Box::new(move || m.audit_failure()));
            if let Some(c) = &config.cluster {
                audit.set_node(&c.node_name);
            }
            audit
        }
    };
    (audit, metrics)
}

/// The running services.
pub struct Services {
    tasks: JoinSet<()>,
    listeners_up: Arc<AtomicBool>,
    /// addresses the metrics endpoint listens on
    pub metrics: Vec<SocketAddr>,
}

/// What the services need from the daemon.
pub struct Parts {
    /// the configuration
    pub config: Config,
    /// the store
    pub store: Store,
    /// the directory
    pub dir: Arc<Directory>,
    /// the metrics registry
    pub metrics: Arc<Metrics>,
    /// what SIGHUP reloads
    pub reload: Reloadable,
    /// the admin service behind the control socket
    pub admin: Arc<crate::admin::Admin>,
}

impl Services {
    /// Binds and starts every service. Call it after the protocol listeners are bound.
    pub async fn start(parts: Parts, stop: watch::Receiver<bool>) -> anyhow::Result<Services> {
        let Parts {
            config,
            store,
            dir,
            metrics,
            reload,
            admin,
        } = parts;
        let mut tasks = JoinSet::new();
        let listeners_up = Arc::new(AtomicBool::new(false));
        let mut bound = Vec::new();
        if let Some(m) = &config.metrics {
            let (users_limit, objects_limit) = config.tier.limits();
            let ep = Arc::new(http::Endpoint {
                dir: dir.clone(),
                store: store.clone(),
                metrics: metrics.clone(),
                users_limit,
                objects_limit,
                listeners_up: listeners_up.clone(),
            });
            for addr in &m.listen {
                let l = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("metrics.listen: cannot listen on {addr}"))?;
                bound.push(l.local_addr()?);
                tasks.spawn(http::serve(l, ep.clone(), stop.clone()));
            }
        }
        match control::bind(&config.data_dir) {
            Ok(socket) => {
                tasks.spawn(control::serve(
                    socket,
                    store.clone(),
                    admin,
                    config.data_dir.clone(),
                    stop.clone(),
                ));
            }
            // Serving LDAP matters more; the CLI then needs the daemon stopped.
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "admin socket unavailable: online backups are disabled")
            }
        }
        if let Some(b) = config.backup.clone() {
            tasks.spawn(scheduled_backups(
                store.clone(),
                b,
                config.data_dir.clone(),
                stop.clone(),
            ));
        }
        tasks.spawn(reload::on_sighup(reload, stop.clone()));
        listeners_up.store(true, Ordering::Relaxed);
        Ok(Services {
            tasks,
            listeners_up,
            metrics: bound,
        })
    }

    /// Marks the listeners down (health turns 503) at the start of a shutdown.
    pub fn draining(&self) {
        self.listeners_up.store(false, Ordering::Relaxed);
    }

    /// Waits for the services to notice the stop signal (the control socket file is
    /// removed), then ends what is left.
    pub async fn stop(mut self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
    }
}

async fn scheduled_backups(
    store: Store,
    cfg: crate::config::BackupConfig,
    data_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + cfg.interval, cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let (store, cfg2, data_dir) = (store.clone(), cfg.clone(), data_dir.clone());
        #[allow(clippy::disallowed_methods)] // daemon/ reads the clock
        let now = std::time::SystemTime::now();
        let done =
            tokio::task::spawn_blocking(move || backup::scheduled(&store, &cfg2, &data_dir, now))
                .await;
        match done {
            Ok(Ok(file)) => tracing::info!(file = %file.display(), "scheduled backup written"),
            Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "scheduled backup failed"),
            Err(e) => tracing::error!(error = %e, "scheduled backup task failed"),
        }
    }
}
