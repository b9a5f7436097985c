//! The audit stream: who did what, to which object, with which result. One JSON object per
//! line, to a file (`[audit] path`) and/or as `tracing` events with target `audit`.
//! May import: nothing else of dird (a leaf, so that the LDAP front-end, the KDC and the
//! daemon can all record events). Invariants: recording never blocks the caller (a bounded
//! queue to one writer thread; a full queue drops the event and counts it); secret values
//! (passwords, keys) never appear in an event, only attribute names; every failure to write
//! is logged (rate-limited) and counted in `audit_failures_total`.
//!
//! # Recording events (for the LDAP front-end, the KDC and MFA)
//!
//! ```no_run
//! # use dird::audit::{Audit, Event, Kind, Outcome};
//! # fn f(audit: &Audit, now: std::time::SystemTime, peer: std::net::SocketAddr) {
//! audit.record(
//!     Event::new(Kind::TicketIssued, "as_req", now)
//!         .client(peer)
//!         .identity("alice@EXAMPLE.COM")
//!         .target("krbtgt/EXAMPLE.COM@EXAMPLE.COM")
//!         .outcome(Outcome::new(0, "ok")),
//! );
//! audit.record(
//!     Event::new(Kind::TicketRefused, "as_req", now)
//!         .client(peer)
//!         .identity("alice@EXAMPLE.COM")
//!         .outcome(Outcome::new(24, "KDC_ERR_PREAUTH_FAILED"))
//!         .reason("pre-authentication failed"),
//! );
//! audit.record(
//!     Event::new(Kind::Mfa, "radius", now)
//!         .identity("alice@EXAMPLE.COM")
//!         .outcome(Outcome::new(0, "accept"))
//!         .detail("mechanism", "radius"),
//! );
//! # }
//! ```
//!
//! The line written for an event (fields that are empty are left out):
//! `{"time":"2026-01-02T03:04:05.123Z","event":"bind","protocol":"ldap","client":"127.0.0.1:40000",
//! "identity":"cn=alice,…","operation":"bind","target":"cn=alice,…","result":{"code":0,"name":"success"},
//! "mechanism":"simple","bind_name":"alice@example.com"}`

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// What kind of thing happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// an LDAP bind (simple or SASL), successful or not
    Bind,
    /// a change to the directory (add, modify, delete, modrdn), successful or not
    Write,
    /// a password change (LDAP modify of a password attribute, Password Modify, kpasswd)
    PasswordChange,
    /// a request refused by the tier's object limit (adminLimitExceeded)
    LimitRefusal,
    /// a Kerberos ticket issued (AS or TGS exchange)
    TicketIssued,
    /// a Kerberos ticket request refused
    TicketRefused,
    /// a second-factor (MFA) decision
    Mfa,
    /// a search answered from the connector's read cache while no upstream answered
    CachedRead,
    /// a search the connector ran as its service account for a client (`search_as =
    /// "service"`), with the account in `details.search_as`
    ServiceRead,
    /// cluster mode: the settled outcome of a write answered "outcome unknown" (52), with
    /// `details.applied` (`true`, `false`, `unknown`) and `details.marker`
    WriteOutcome,
}

/// The result of the audited operation: the protocol's numeric code and its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// numeric result code (LDAP resultCode, Kerberos error-code, 0 for success)
    pub code: u32,
    /// the code's name (`success`, `invalidCredentials`, `KDC_ERR_PREAUTH_FAILED`, …)
    pub name: String,
}

impl Outcome {
    /// An outcome with the given code and name.
    pub fn new(code: u32, name: impl Into<String>) -> Outcome {
        Outcome {
            code,
            name: name.into(),
        }
    }
}

/// One audit event. Build it with [`Event::new`] and the chained setters, then hand it to
/// [`Audit::record`].
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// RFC 3339 UTC time with milliseconds
    pub time: String,
    /// what kind of event
    pub event: Kind,
    /// `ldap` or `kerberos` (or another front-end's name)
    pub protocol: &'static str,
    /// cluster mode: the node that recorded the event (`cluster.node_name`); set by
    /// [`Audit::record`] on a stream that [`Audit::set_node`] named
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// the client's address
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// who acted: a DN or principal; empty for anonymous
    pub identity: String,
    /// the operation (`bind`, `add`, `modify`, `delete`, `modrdn`, `password_modify`,
    /// `as_req`, `tgs_req`, `kpasswd`, …)
    pub operation: String,
    /// the object acted on (a DN or principal)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// the result
    pub result: Outcome,
    /// why it was refused (the diagnostic), for failures
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// authentication mechanism for binds (`simple`, or the SASL mechanism name)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<String>,
    /// the name the client bound with, as sent
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_name: Option<String>,
    /// names of the attributes a write changed (never their values)
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// further protocol-specific fields (e.g. `new_dn`, `enctype`, `service`)
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

impl Event {
    /// A new event of `kind` for `operation` at `now` (protocol `ldap`, success, anonymous,
    /// until the setters say otherwise).
    pub fn new(kind: Kind, operation: impl Into<String>, now: SystemTime) -> Event {
        Event {
            time: rfc3339(now),
            event: kind,
            protocol: "ldap",
            node: None,
            client: None,
            identity: String::new(),
            operation: operation.into(),
            target: None,
            result: Outcome::new(0, "success"),
            reason: None,
            mechanism: None,
            bind_name: None,
            attributes: Vec::new(),
            details: BTreeMap::new(),
        }
    }

    /// Sets the protocol (`kerberos` for KDC events).
    pub fn protocol(mut self, protocol: &'static str) -> Event {
        self.protocol = protocol;
        self
    }

    /// Sets the client address.
    pub fn client(mut self, addr: SocketAddr) -> Event {
        self.client = Some(addr.to_string());
        self
    }

    /// Sets the acting identity.
    pub fn identity(mut self, who: impl Into<String>) -> Event {
        self.identity = who.into();
        self
    }

    /// Sets the target object.
    pub fn target(mut self, target: impl Into<String>) -> Event {
        self.target = Some(target.into());
        self
    }

    /// Sets the result.
    pub fn outcome(mut self, outcome: Outcome) -> Event {
        self.result = outcome;
        self
    }

    /// Sets the refusal reason (ignored when empty).
    pub fn reason(mut self, reason: impl Into<String>) -> Event {
        let r = reason.into();
        self.reason = (!r.is_empty()).then_some(r);
        self
    }

    /// Sets the bind mechanism.
    pub fn mechanism(mut self, mech: impl Into<String>) -> Event {
        self.mechanism = Some(mech.into());
        self
    }

    /// Sets the name the client bound with.
    pub fn bind_name(mut self, name: impl Into<String>) -> Event {
        self.bind_name = Some(name.into());
        self
    }

    /// Sets the changed attribute names (values must never be passed here).
    pub fn attributes(mut self, names: Vec<String>) -> Event {
        self.attributes = names;
        self
    }

    /// Adds a protocol-specific field.
    pub fn detail(mut self, key: impl Into<String>, value: impl Into<String>) -> Event {
        self.details.insert(key.into(), value.into());
        self
    }

    /// The JSON line for this event (without the newline).
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings and numbers cannot fail; keep a fallback anyway.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                "{{\"event\":\"encoding_failed\",\"error\":{:?}}}",
                e.to_string()
            )
        })
    }
}

/// Where the audit stream goes.
#[derive(Clone, Debug, Default)]
pub struct AuditSettings {
    /// JSON-lines file (appended to; created mode 0600)
    pub path: Option<PathBuf>,
    /// also emit each line as a tracing event with target `audit`
    pub tracing: bool,
    /// refuse writes while the sink is failing
    pub fail_closed: bool,
    /// queue length in front of the writer thread
    pub queue: usize,
}

/// Handle to the audit stream. Cheap to clone; every clone feeds the same writer.
#[derive(Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Option<SyncSender<String>>,
    /// cluster mode: this node's name, stamped on every event
    node: std::sync::OnceLock<String>,
    tracing: bool,
    fail_closed: bool,
    state: Arc<State>,
}

/// Sink health shared with the writer thread.
struct State {
    /// true while the last attempt to write failed (or the queue overflowed)
    failing: AtomicBool,
    /// events lost or not written
    failures: AtomicU64,
    /// unix seconds of the last "audit failing" error log (rate limit)
    last_report: AtomicU64,
    /// set by [`Audit::reopen`]: the writer reopens the file before its next batch
    reopen: AtomicBool,
    /// extra failure hook (the metrics counter)
    on_failure: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Audit {
    /// An audit stream that records nothing (no `[audit]` section).
    pub fn disabled() -> Audit {
        Audit {
            inner: Arc::new(Inner {
                tx: None,
                node: std::sync::OnceLock::new(),
                tracing: false,
                fail_closed: false,
                state: Arc::new(State::new()),
            }),
        }
    }

    /// Starts the stream: opens the file (a failure to open is reported and counted, and the
    /// writer keeps retrying on later events) and spawns the writer thread.
    pub fn start(settings: &AuditSettings) -> Audit {
        let state = Arc::new(State::new());
        let tx = settings.path.as_ref().map(|path| {
            let (tx, rx) = sync_channel::<String>(settings.queue.max(1));
            let writer = Writer {
                path: path.clone(),
                file: None,
                state: state.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name("dird-audit".into())
                .spawn(move || writer.run(rx));
            if let Err(e) = spawned {
                state.fail(&format!("cannot start the audit writer thread: {e}"));
            }
            tx
        });
        if let Some(path) = &settings.path {
            // Open once now so that a bad path is reported at start, not at the first event.
            if let Err(e) = open_append(path) {
                state.fail(&format!("audit file {}: {e}", path.display()));
            }
        }
        Audit {
            inner: Arc::new(Inner {
                tx,
                node: std::sync::OnceLock::new(),
                tracing: settings.tracing,
                fail_closed: settings.fail_closed,
                state,
            }),
        }
    }

    /// Cluster mode: every event recorded from now on names `node` (its `node` field).
    pub fn set_node(&self, node: &str) {
        if self.inner.node.set(node.to_string()).is_err() {
            tracing::warn!("audit: node name set twice; keeping the first");
        }
    }

    /// Records an event. Never blocks: with the queue full the event is dropped, reported
    /// and counted.
    pub fn record(&self, mut event: Event) {
        let inner = &self.inner;
        if inner.tx.is_none() && !inner.tracing {
            return;
        }
        if let (None, Some(node)) = (&event.node, inner.node.get()) {
            event.node = Some(node.clone());
        }
        let line = event.to_json();
        if inner.tracing {
            tracing::info!(target: "audit", "{line}");
        }
        if let Some(tx) = &inner.tx {
            match tx.try_send(line) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => inner
                    .state
                    .fail("audit queue is full: the audit file cannot keep up; event dropped"),
                Err(TrySendError::Disconnected(_)) => inner
                    .state
                    .fail("audit writer thread is gone; event dropped"),
            }
        }
    }

    /// True when writes must be refused: `fail_closed` is set and the sink is failing.
    pub fn refuses_writes(&self) -> bool {
        self.inner.fail_closed && self.is_failing()
    }

    /// True while the sink is failing (the last write failed or the queue overflowed).
    pub fn is_failing(&self) -> bool {
        self.inner.state.failing.load(Ordering::Relaxed)
    }

    /// Events lost or not written since start.
    pub fn failures(&self) -> u64 {
        self.inner.state.failures.load(Ordering::Relaxed)
    }

    /// Makes the writer reopen the file (by path) before its next write: after log rotation
    /// moved the file away, new events go to a new file (SIGHUP calls this).
    pub fn reopen(&self) {
        self.inner.state.reopen.store(true, Ordering::Relaxed);
    }

    /// Calls `hook` once per failure from now on (the daemon wires the metrics counter
    /// here). Only the first hook set is kept.
    pub fn on_failure(&self, hook: Box<dyn Fn() + Send + Sync>) {
        let _ = self.inner.state.on_failure.set(hook);
    }
}

impl State {
    fn new() -> State {
        State {
            failing: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            last_report: AtomicU64::new(0),
            reopen: AtomicBool::new(false),
            on_failure: std::sync::OnceLock::new(),
        }
    }

    /// Marks the sink failing, counts it and logs loudly at most once every 10 seconds.
    fn fail(&self, what: &str) {
        self.failing.store(true, Ordering::Relaxed);
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(hook) = self.on_failure.get() {
            hook();
        }
        let now = unix_secs(wall_clock());
        let last = self.last_report.load(Ordering::Relaxed);
        if now >= last + REPORT_EVERY_SECS
            && self
                .last_report
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(failures_total = n, "AUDIT FAILURE: {what}");
        }
    }

    fn ok(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::warn!("audit stream recovered: events are being written again");
        }
    }
}

/// The writer thread: appends lines to the file, reopening it after an error.
struct Writer {
    path: PathBuf,
    file: Option<std::fs::File>,
    state: Arc<State>,
}

impl Writer {
    fn run(mut self, rx: Receiver<String>) {
        while let Ok(first) = rx.recv() {
            // Write everything queued, then flush once (durable at batch granularity).
            let mut batch = vec![first];
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
                if batch.len() >= 1024 {
                    break;
                }
            }
            match self.write(&batch) {
                Ok(()) => self.state.ok(),
                Err(e) => {
                    self.file = None;
                    for _ in &batch {
                        self.state
                            .fail(&format!("cannot write {}: {e}", self.path.display()));
                    }
                }
            }
        }
    }

    fn write(&mut self, batch: &[String]) -> std::io::Result<()> {
        if self.state.reopen.swap(false, Ordering::Relaxed) {
            self.file = None;
        }
        if self.file.is_none() {
            self.file = Some(open_append(&self.path)?);
        }
        let Some(f) = self.file.as_mut() else {
            return Err(std::io::Error::other("audit file not open"));
        };
        let mut buf = Vec::with_capacity(batch.iter().map(|l| l.len() + 1).sum());
        for line in batch {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        f.write_all(&buf)?;
        f.sync_data()
    }
}

/// Appends one event to the audit file at once, without the writer thread: for one-shot
/// processes (the offline CLI), which would exit before a queued event is written.
pub fn append_now(path: &Path, event: &Event) -> std::io::Result<()> {
    let mut f = open_append(path)?;
    f.write_all(format!("{}\n", event.to_json()).as_bytes())?;
    f.sync_data()
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

/// Formats a time as RFC 3339 UTC with milliseconds (`2026-01-02T03:04:05.123Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[allow(clippy::disallowed_methods)]
fn wall_clock() -> SystemTime {
    // Only used to rate-limit error logs, never for a decision.
    SystemTime::now()
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

const REPORT_EVERY_SECS: u64 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_serialises_without_empty_fields() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let e = Event::new(Kind::Write, "add", t)
            .client("127.0.0.1:4000".parse().unwrap())
            .identity("cn=admin")
            .target("cn=x,dc=example,dc=com")
            .attributes(vec!["cn".into(), "objectClass".into()]);
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["event"], "write");
        assert_eq!(v["result"]["code"], 0);
        assert_eq!(v["result"]["name"], "success");
        assert_eq!(v["attributes"][1], "objectClass");
        assert!(v.get("reason").is_none() && v.get("mechanism").is_none());
    }

    #[test]
    fn file_sink_writes_lines_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::start(&AuditSettings {
            path: Some(path.clone()),
            tracing: false,
            fail_closed: true,
            queue: 16,
        });
        audit.record(Event::new(Kind::Bind, "bind", UNIX_EPOCH));
        // Wait for the writer thread (bounded).
        for _ in 0..200 {
            if std::fs::read_to_string(&path).is_ok_and(|s| s.lines().count() == 1) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        assert!(!audit.refuses_writes());

        let bad = Audit::start(&AuditSettings {
            path: Some(dir.path().join("missing/dir/audit.jsonl")),
            tracing: false,
            fail_closed: true,
            queue: 16,
        });
        assert!(bad.refuses_writes());
        assert!(bad.failures() >= 1);
    }
}
