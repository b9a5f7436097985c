//! The admin service: what every `dird` subcommand does, over the `directory` layer, for
//! both transports. The daemon runs it for requests on its control socket; the CLI runs the
//! same code in-process when no daemon serves the data directory. So policy, tier caps,
//! uniqueness, audit events and metrics are the same either way.
//! May import: `directory`, `backend` (the standalone `Local`: batch import, name lookup),
//! `store` (the export's read snapshot), `ldif`, `audit`, `metrics`, `config`, `model`,
//! `kdc::keytab` (encoding only), `ldap::{result, observe}` (the one DirError → result-code
//! mapping, for audit outcomes), `cluster::nodes` (the node list `dird status` prints).
//! Invariants: every change acts as the built-in Administrator
//! and is audited with the local operator (a Unix uid) as the actor; no transaction or lock
//! is held across `.await`; an import writes in bounded batches, each one transaction.

mod import;
pub mod proto;
mod status;
pub mod trust;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use serde_json::json;

use crate::audit::{Audit, Event, Kind, Outcome};
use crate::backend::local::Local;
use crate::backend::{Backend as _, Scope};
use crate::config::Config;
use crate::directory::password;
use crate::directory::{Authenticated, DirError, Directory, Identity, SearchSpec};
use crate::ldif::LdifWriter;
use crate::metrics::Metrics;
use crate::model::filter::Filter;
use crate::model::{Dn, Entry, ModOp, Modification, Rdn};
use crate::store::{Store, StoreRead as _};

pub use import::{count_records, Importer};
pub use proto::{AdminRequest, AdminResponse, Reply};

/// Entries per transaction of an import through the running daemon: small enough that an
/// LDAP write waits for at most one batch, large enough to amortise the commit.
pub const ONLINE_IMPORT_BATCH: usize = 500;

/// Who asked: the local operator, as the kernel reports it (SO_PEERCRED on the socket, the
/// process's own uid offline).
#[derive(Clone, Copy, Debug)]
pub struct Operator {
    /// the operator's uid
    pub uid: u32,
    /// the operator's process, when known
    pub pid: Option<i32>,
    /// true: over the daemon's socket; false: the CLI opened the database itself
    pub online: bool,
}

impl Operator {
    /// The operator of an offline command: this process.
    pub fn this_process() -> Operator {
        Operator {
            uid: effective_uid(),
            pid: i32::try_from(std::process::id()).ok(),
            online: false,
        }
    }

    /// The actor named in audit events.
    pub fn actor(&self) -> String {
        format!("uid={}", self.uid)
    }
}

/// The effective uid of this process (the owner of `/proc/self`; `u32::MAX`, which matches
/// no one, if unknown). Offline it only names the actor in audit events: whoever can open
/// the database file already controls the directory.
pub fn effective_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

/// What only a running daemon knows, for `dird status`.
#[derive(Debug)]
pub struct DaemonInfo {
    started: Instant,
    listeners: OnceLock<serde_json::Value>,
}

impl DaemonInfo {
    /// Starts the uptime clock.
    pub fn new() -> DaemonInfo {
        DaemonInfo {
            started: Instant::now(),
            listeners: OnceLock::new(),
        }
    }

    /// Records the bound listeners (once every listener is up).
    pub fn set_listeners(&self, listeners: serde_json::Value) {
        let _ = self.listeners.set(listeners);
    }
}

impl Default for DaemonInfo {
    fn default() -> Self {
        DaemonInfo::new()
    }
}

/// The admin service.
pub struct Admin {
    dir: Arc<Directory>,
    local: Local,
    store: Store,
    config: Config,
    audit: Audit,
    /// offline: the audit file, appended to synchronously (the process exits right after)
    direct_audit: Option<PathBuf>,
    metrics: Arc<Metrics>,
    daemon: Option<Arc<DaemonInfo>>,
    /// the cluster's node registry (`[cluster]` configured): `dird status` lists the nodes
    cluster: Option<crate::cluster::nodes::Nodes>,
}

/// A failed admin request: the message says what went wrong and, where it can, what to do.
#[derive(Debug)]
pub struct AdminError {
    /// the message shown to the operator
    pub message: String,
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AdminError {}

fn fail(message: impl Into<String>) -> AdminError {
    AdminError {
        message: message.into(),
    }
}

/// A `DirError` with what was being done and, for the common cases, what to do about it.
fn dir_fail(doing: &str, e: &DirError) -> AdminError {
    let hint = match e {
        DirError::AlreadyExists => "; choose another name, or delete the existing entry first",
        DirError::NoSuchObject { .. } => "; check the name or DN (and --parent)",
        DirError::NotAllowedOnNonLeaf => "; delete or move the entries below it first",
        DirError::AdminLimit(_) => "; raise `tier` in the config, or delete unused objects",
        _ => "",
    };
    fail(format!(
        "{doing}: {}{hint}",
        crate::ldap::result::message(e)
    ))
}

impl Admin {
    /// The service over an opened instance. `daemon` is `Some` inside the running daemon.
    pub fn new(
        dir: Arc<Directory>,
        local: Local,
        store: Store,
        config: Config,
        audit: Audit,
        metrics: Arc<Metrics>,
        daemon: Option<Arc<DaemonInfo>>,
    ) -> Admin {
        Admin {
            dir,
            local,
            store,
            config,
            audit,
            direct_audit: None,
            metrics,
            daemon,
            cluster: None,
        }
    }

    /// A node of a cluster: `dird status` lists every node of `nodes` with its applied
    /// revision and lag.
    pub fn with_cluster(mut self, nodes: crate::cluster::nodes::Nodes) -> Admin {
        self.cluster = Some(nodes);
        self
    }

    /// Offline: audit events are appended to `[audit] path` synchronously instead of through
    /// the queued stream (a one-shot process would exit before the writer runs).
    pub fn with_direct_audit(mut self, path: Option<PathBuf>) -> Admin {
        self.direct_audit = path;
        self
    }

    /// The directory this service administers.
    pub fn directory(&self) -> &Directory {
        &self.dir
    }

    fn admin(&self) -> Authenticated {
        self.dir.local_admin()
    }

    /// Runs one request that is not a stream (everything but import and export).
    pub async fn execute(&self, op: &Operator, req: AdminRequest) -> Result<Reply, AdminError> {
        let name = op_name(&req);
        let started = Instant::now();
        let result = self.dispatch(op, req).await;
        self.metrics.admin_request(
            name,
            if result.is_ok() { "success" } else { "error" },
            started.elapsed(),
        );
        result
    }

    async fn dispatch(&self, op: &Operator, req: AdminRequest) -> Result<Reply, AdminError> {
        #[allow(clippy::disallowed_methods)] // admin is a composition root; it reads the clock
        let now = SystemTime::now();
        match req {
            AdminRequest::Ping => Ok(Reply::new(
                format!("dird {}", env!("CARGO_PKG_VERSION")),
                json!({ "version": env!("CARGO_PKG_VERSION") }),
            )),
            AdminRequest::Status => self.status().await,
            AdminRequest::CheckStore => self.check_store().await,
            AdminRequest::UserAdd {
                name,
                password: pw,
                given_name,
                sn,
                mail,
                parent,
            } => {
                let parent = self.parent(parent.as_deref(), self.dir.domain().users())?;
                let dn = parent.child(Rdn::new("cn", &name));
                let mut e = Entry::new(dn.clone());
                e.set(
                    "objectClass",
                    str_values(&[
                        "top",
                        "person",
                        "organizationalPerson",
                        "user",
                        "inetOrgPerson",
                    ]),
                );
                e.set_str("cn", &name);
                e.set_str("sn", sn.as_deref().unwrap_or(&name));
                e.set_str("sAMAccountName", &name);
                e.set_str("uid", &name);
                e.set_str(
                    "userPrincipalName",
                    &format!("{name}@{}", self.dir.domain().name),
                );
                e.set_str("userAccountControl", "512");
                if let Some(g) = given_name {
                    e.set_str("givenName", &g);
                }
                if let Some(m) = mail {
                    e.set_str("mail", &m);
                }
                let (pw, generated) = pick_password(pw);
                e.set_str("userPassword", &pw);
                self.add(op, e, now).await?;
                let mut summary = format!("added {dn}");
                let mut data = json!({ "dn": dn.to_string() });
                if generated {
                    summary.push_str(&format!("\npassword: {pw}"));
                    data["password"] = json!(pw);
                }
                Ok(Reply::new(summary, data))
            }
            AdminRequest::UserPasswd { name, password: pw } => {
                let dn = self.resolve(&name).await?;
                let (pw, generated) = pick_password(pw);
                let m = Modification {
                    op: ModOp::Replace,
                    attr: "userPassword".into(),
                    values: vec![pw.clone().into_bytes()],
                };
                self.modify(op, &dn, vec![m], "setting the password of", now)
                    .await?;
                let mut summary = format!("password of {dn} changed");
                let mut data = json!({ "dn": dn.to_string() });
                if generated {
                    summary.push_str(&format!("\npassword: {pw}"));
                    data["password"] = json!(pw);
                }
                Ok(Reply::new(summary, data))
            }
            AdminRequest::UserDisable { name } => self.set_disabled(op, &name, true, now).await,
            AdminRequest::UserEnable { name } => self.set_disabled(op, &name, false, now).await,
            AdminRequest::UserUnlock { name } => {
                let dn = self.resolve(&name).await?;
                let m = Modification {
                    op: ModOp::Replace,
                    attr: "lockoutTime".into(),
                    values: vec![b"0".to_vec()],
                };
                self.modify(op, &dn, vec![m], "unlocking", now).await?;
                Ok(Reply::new(
                    format!("{dn} unlocked"),
                    json!({ "dn": dn.to_string() }),
                ))
            }
            AdminRequest::UserDelete { name } | AdminRequest::GroupDelete { name } => {
                let dn = self.resolve(&name).await?;
                self.delete(op, &dn, now).await
            }
            AdminRequest::UserShow { name } | AdminRequest::GroupShow { name } => {
                let dn = self.resolve(&name).await?;
                self.show(&dn).await
            }
            AdminRequest::UserList => {
                let users = Filter::And(vec![
                    Filter::Equality("objectClass".into(), b"user".to_vec()),
                    Filter::Not(Box::new(Filter::Equality(
                        "objectClass".into(),
                        b"computer".to_vec(),
                    ))),
                ]);
                self.list(users, "users").await
            }
            AdminRequest::GroupList => {
                self.list(
                    Filter::Equality("objectClass".into(), b"group".to_vec()),
                    "groups",
                )
                .await
            }
            AdminRequest::GroupAdd { name, parent } => {
                let parent = self.parent(parent.as_deref(), self.dir.domain().users())?;
                let dn = parent.child(Rdn::new("cn", &name));
                let mut e = Entry::new(dn.clone());
                e.set("objectClass", str_values(&["top", "group"]));
                e.set_str("cn", &name);
                e.set_str("sAMAccountName", &name);
                e.set_str("groupType", "-2147483646");
                self.add(op, e, now).await?;
                Ok(Reply::new(
                    format!("added {dn}"),
                    json!({ "dn": dn.to_string() }),
                ))
            }
            AdminRequest::Member { group, member, add } => {
                let gdn = self.resolve(&group).await?;
                let mdn = self.resolve(&member).await?;
                let m = Modification {
                    op: if add { ModOp::Add } else { ModOp::Delete },
                    attr: "member".into(),
                    values: vec![mdn.to_string().into_bytes()],
                };
                self.modify(op, &gdn, vec![m], "updating", now).await?;
                let summary = if add {
                    format!("added {mdn} to {gdn}")
                } else {
                    format!("removed {mdn} from {gdn}")
                };
                Ok(Reply::new(
                    summary,
                    json!({ "group": gdn.to_string(), "member": mdn.to_string(), "added": add }),
                ))
            }
            AdminRequest::OuAdd { name, parent } => {
                let parent = self.parent(parent.as_deref(), self.dir.domain().base.clone())?;
                let dn = parent.child(Rdn::new("ou", &name));
                let mut e = Entry::new(dn.clone());
                e.set("objectClass", str_values(&["top", "organizationalUnit"]));
                e.set_str("ou", &name);
                self.add(op, e, now).await?;
                Ok(Reply::new(
                    format!("added {dn}"),
                    json!({ "dn": dn.to_string() }),
                ))
            }
            AdminRequest::OuDelete { name, parent } => {
                let dn = if name.contains('=') {
                    Dn::parse(&name).map_err(|e| fail(format!("{name}: {e}")))?
                } else {
                    self.parent(parent.as_deref(), self.dir.domain().base.clone())?
                        .child(Rdn::new("ou", &name))
                };
                self.delete(op, &dn, now).await
            }
            AdminRequest::Keytab { principal } => self.keytab(op, &principal, now).await,
            AdminRequest::KrbtgtRotate => {
                let krbtgt = format!("krbtgt/{}", self.dir.domain().realm);
                let done = self.dir.rotate_krbtgt(&self.admin(), now).await;
                self.record(op, Kind::Write, "krbtgt_rotate", &krbtgt, vec![], &done);
                let kvno = done.map_err(|e| dir_fail("rotating the krbtgt keys", &e))?;
                Ok(Reply::new(
                    format!(
                        "krbtgt keys rotated: new kvno {kvno}; tickets issued under kvno {} stay valid until they expire",
                        kvno.saturating_sub(1)
                    ),
                    json!({ "kvno": kvno }),
                ))
            }
            AdminRequest::TrustRotate { realm, password } => {
                self.trust_rotate(op, &realm, password, now).await
            }
            AdminRequest::ImportBegin { .. }
            | AdminRequest::ImportChunk { .. }
            | AdminRequest::ImportEnd
            | AdminRequest::Export => Err(fail(
                "import and export are streams; this request cannot be sent on its own",
            )),
        }
    }

    fn parent(&self, parent: Option<&str>, default: Dn) -> Result<Dn, AdminError> {
        match parent {
            Some(p) => Dn::parse(p).map_err(|e| fail(format!("--parent {p}: {e}"))),
            None => Ok(default),
        }
    }

    /// Resolves a user or group name (sAMAccountName, UPN, uid, cn or DN) to a DN.
    async fn resolve(&self, name: &str) -> Result<Dn, AdminError> {
        if name.contains('=') {
            return Dn::parse(name).map_err(|e| fail(format!("{name}: {e}")));
        }
        for attr in ["sAMAccountName", "userPrincipalName", "uid", "cn"] {
            if let Some(dn) = self
                .local
                .find_one(attr, name)
                .await
                .map_err(|e| fail(format!("looking up {name}: {e}")))?
            {
                return Ok(dn);
            }
        }
        Err(fail(format!(
            "no entry named {name} under {} (give a sAMAccountName, UPN or DN)",
            self.dir.domain().base
        )))
    }

    async fn add(&self, op: &Operator, e: Entry, now: SystemTime) -> Result<(), AdminError> {
        let dn = e.dn.to_string();
        let attrs: Vec<String> = e.attrs().map(|a| a.name.clone()).collect();
        let done = self.dir.add(&self.admin(), e, now).await;
        self.record(op, Kind::Write, "add", &dn, attrs, &done);
        done.map_err(|e| dir_fail(&format!("adding {dn}"), &e))
    }

    async fn modify(
        &self,
        op: &Operator,
        dn: &Dn,
        mods: Vec<Modification>,
        doing: &str,
        now: SystemTime,
    ) -> Result<(), AdminError> {
        let attrs: Vec<String> = mods.iter().map(|m| m.attr.clone()).collect();
        let kind = if attrs.iter().any(|a| a.eq_ignore_ascii_case("userPassword")) {
            Kind::PasswordChange
        } else {
            Kind::Write
        };
        // The socket is local and owner-only; there is no network to protect passwords from.
        let done = self.dir.modify(&self.admin(), dn, mods, true, now).await;
        self.record(op, kind, "modify", &dn.to_string(), attrs, &done);
        done.map_err(|e| dir_fail(&format!("{doing} {dn}"), &e))
    }

    async fn delete(&self, op: &Operator, dn: &Dn, now: SystemTime) -> Result<Reply, AdminError> {
        let done = self.dir.delete(&self.admin(), dn, now).await;
        self.record(op, Kind::Write, "delete", &dn.to_string(), vec![], &done);
        done.map_err(|e| dir_fail(&format!("deleting {dn}"), &e))?;
        Ok(Reply::new(
            format!("deleted {dn}"),
            json!({ "dn": dn.to_string() }),
        ))
    }

    async fn set_disabled(
        &self,
        op: &Operator,
        name: &str,
        disabled: bool,
        now: SystemTime,
    ) -> Result<Reply, AdminError> {
        let dn = self.resolve(name).await?;
        let e = self.entry(&dn).await?;
        let uac: i64 = e
            .first_str("userAccountControl")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(512);
        // MS-ADTS §2.2.16: ACCOUNTDISABLE.
        let new = if disabled {
            uac | crate::directory::UAC_ACCOUNTDISABLE
        } else {
            uac & !crate::directory::UAC_ACCOUNTDISABLE
        };
        let m = Modification {
            op: ModOp::Replace,
            attr: "userAccountControl".into(),
            values: vec![new.to_string().into_bytes()],
        };
        self.modify(op, &dn, vec![m], "updating", now).await?;
        let word = if disabled { "disabled" } else { "enabled" };
        Ok(Reply::new(
            format!("{dn} {word}"),
            json!({ "dn": dn.to_string(), "disabled": disabled }),
        ))
    }

    async fn entry(&self, dn: &Dn) -> Result<Entry, AdminError> {
        self.local
            .entry(dn)
            .await
            .map_err(|e| fail(format!("reading {dn}: {e}")))?
            .ok_or_else(|| fail(format!("no entry {dn}")))
    }

    async fn show(&self, dn: &Dn) -> Result<Reply, AdminError> {
        let e = self.entry(dn).await?;
        let legacy = crate::backend::local::has_legacy_password(&e);
        let e = crate::directory::access::redact(e);
        let left = self
            .local
            .legacy_password_count()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut out = Vec::new();
        LdifWriter::new(&mut out)
            .write_entry(&e)
            .map_err(|e| fail(e.to_string()))?;
        let mut attrs = serde_json::Map::new();
        for a in e.attrs() {
            let vals: Vec<String> = a
                .values
                .iter()
                .map(|v| match std::str::from_utf8(v) {
                    Ok(s) => s.to_string(),
                    Err(_) => {
                        use base64::Engine as _;
                        format!(
                            "base64:{}",
                            base64::engine::general_purpose::STANDARD.encode(v)
                        )
                    }
                })
                .collect();
            attrs.insert(a.name.clone(), json!(vals));
        }
        let mut text = String::from_utf8_lossy(&out).trim_end().to_string();
        // Comments, so that the output stays valid LDIF (issue 14: migrated hashes).
        if legacy {
            text.push_str(
                "\n# password: a hash migrated from another directory; argon2 and Kerberos keys \
                 on the first successful LDAP bind",
            );
        }
        text.push_str(&format!(
            "\n# accounts still on a migrated password hash: {left}"
        ));
        Ok(Reply::new(
            text,
            json!({
                "dn": dn.to_string(),
                "attributes": attrs,
                "migrated_password_hash": legacy,
                "accounts_on_migrated_hashes": left,
            }),
        ))
    }

    async fn list(&self, filter: Filter, what: &str) -> Result<Reply, AdminError> {
        let spec = SearchSpec {
            base: self.dir.domain().base.clone(),
            scope: Scope::Subtree,
            filter,
            size_limit: 0,
            time_limit: 0,
            attrs: vec!["sAMAccountName".into(), "userAccountControl".into()],
        };
        let found = self
            .dir
            .search(&Identity::User(self.admin()), spec)
            .await
            .map_err(|e| dir_fail(&format!("listing {what}"), &e))?;
        let mut rows: Vec<(String, String, bool)> = found
            .entries
            .iter()
            .map(|e| {
                let name = e.first_str("sAMAccountName").unwrap_or("").to_string();
                let disabled = e
                    .first_str("userAccountControl")
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .is_some_and(|u| u & crate::directory::UAC_ACCOUNTDISABLE != 0);
                (name, e.dn.to_string(), disabled)
            })
            .collect();
        rows.sort_by_key(|r| r.0.to_ascii_lowercase());
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let summary = rows
            .iter()
            .map(|(n, dn, disabled)| {
                format!(
                    "{n:width$}  {dn}{}",
                    if *disabled { "  (disabled)" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let data: Vec<serde_json::Value> = rows
            .iter()
            .map(|(n, dn, disabled)| json!({ "name": n, "dn": dn, "disabled": disabled }))
            .collect();
        Ok(Reply::new(summary, json!({ what: data })))
    }

    async fn keytab(
        &self,
        op: &Operator,
        principal: &str,
        now: SystemTime,
    ) -> Result<Reply, AdminError> {
        let name = crate::model::principal::PrincipalName::parse(principal)
            .map_err(|e| fail(format!("--principal {principal}: {e}")))?;
        let done = self.dir.keytab_entries(&self.admin(), &name, now).await;
        self.record(
            op,
            Kind::Write,
            "keytab",
            principal,
            vec!["msDS-KeyVersionNumber".into()],
            &done,
        );
        let entries =
            done.map_err(|e| dir_fail(&format!("setting random keys for {principal}"), &e))?;
        let bytes = crate::kdc::keytab::encode_keytab(&entries, now)
            .map_err(|e| fail(format!("encoding the keytab: {e}")))?;
        let kvno = entries.first().map_or(0, |(_, k)| k.kvno);
        let mut names: Vec<String> = entries.iter().map(|(n, _)| n.to_string()).collect();
        names.dedup();
        use base64::Engine as _;
        Ok(Reply {
            summary: format!("(kvno {kvno}): {}", names.join(", ")),
            data: json!({ "kvno": kvno, "principals": names }),
            keytab: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        })
    }

    /// `dird trust rotate`: see `admin::trust`.
    async fn trust_rotate(
        &self,
        op: &Operator,
        realm: &str,
        password: String,
        now: SystemTime,
    ) -> Result<Reply, AdminError> {
        let Some(t) = self
            .config
            .trusts
            .iter()
            .find(|t| t.realm.eq_ignore_ascii_case(realm))
            .cloned()
        else {
            return Err(fail(format!(
                "no [[trust]] table for realm {realm} in the config; add one (realm, direction, password_file) first"
            )));
        };
        let Some(master) = self.dir.master_key() else {
            return Err(fail("Kerberos is not enabled (no master key)"));
        };
        let (local, domain) = (self.local.clone(), self.dir.domain().clone());
        let done = tokio::task::spawn_blocking(move || {
            trust::rotate(&local, &domain, &master, &t, &password, now)
        })
        .await
        .map_err(|e| fail(format!("rotation task failed: {e}")))
        .and_then(|r| r.map_err(|e| fail(format!("{e:#}"))));
        let target = format!("krbtgt/{}@{realm}", self.dir.domain().realm);
        let audited: Result<(), DirError> = match &done {
            Ok(_) => Ok(()),
            Err(_) => Err(DirError::UnwillingToPerform("trust rotation failed")),
        };
        self.record(op, Kind::Write, "trust_rotate", &target, vec![], &audited);
        let (kvno, overlap) = done?;
        Ok(Reply::new(
            format!(
                "inter-realm keys with {realm} rotated: new kvno {kvno}; kvno {} stays valid for {} s",
                kvno.saturating_sub(1),
                overlap
            ),
            json!({ "realm": realm.to_ascii_uppercase(), "kvno": kvno }),
        ))
    }

    /// Records the audit event of a change: the operator is the actor.
    fn record<T>(
        &self,
        op: &Operator,
        kind: Kind,
        operation: &str,
        target: &str,
        attributes: Vec<String>,
        result: &Result<T, DirError>,
    ) {
        #[allow(clippy::disallowed_methods)] // admin is a composition root; it reads the clock
        let now = SystemTime::now();
        let (kind, outcome, reason) = match result {
            Ok(_) => (kind, Outcome::new(0, "success"), String::new()),
            Err(e) => {
                let code = crate::ldap::result::code(e);
                let kind = if matches!(e, DirError::AdminLimit(_)) {
                    Kind::LimitRefusal
                } else {
                    kind
                };
                (
                    kind,
                    Outcome::new(code.code(), crate::ldap::observe::code_name(code)),
                    crate::ldap::result::message(e),
                )
            }
        };
        let mut event = Event::new(kind, operation, now)
            .protocol("admin")
            .identity(op.actor())
            .target(target)
            .attributes(attributes)
            .outcome(outcome)
            .reason(reason)
            .detail("operator_uid", op.uid.to_string())
            .detail("acting_as", self.dir.domain().administrator().to_string())
            .detail(
                "transport",
                if op.online { "admin socket" } else { "offline" },
            );
        if let Some(pid) = op.pid {
            event.client = Some(format!("unix:pid={pid}"));
        }
        match &self.direct_audit {
            Some(path) => {
                if let Err(e) = crate::audit::append_now(path, &event) {
                    tracing::error!(error = %e, file = %path.display(), "cannot write the audit event");
                }
            }
            None => self.audit.record(event),
        }
    }

    /// Writes a consistent snapshot of the whole directory as LDIF to `out`, parents before
    /// children (one read transaction: writes that commit meanwhile are not seen). Blocking:
    /// call it from a blocking thread. Returns the number of entries.
    pub fn export_blocking(&self, out: &mut dyn Write) -> Result<u64, AdminError> {
        let io = |e: std::io::Error| fail(format!("writing the export: {e}"));
        let mut w = LdifWriter::new(out);
        w.write_version().map_err(io)?;
        let txn = self
            .store
            .read()
            .map_err(|e| fail(format!("reading the store: {e}")))?;
        let mut n = 0u64;
        // Breadth-first from the root: parents always precede their children.
        for id in txn
            .subtree(0)
            .map_err(|e| fail(format!("reading the store: {e}")))?
        {
            if let Some(e) = txn
                .entry(id)
                .map_err(|e| fail(format!("reading the store: {e}")))?
            {
                w.write_entry(&e).map_err(io)?;
                n += 1;
            }
        }
        w.flush().map_err(io)?;
        Ok(n)
    }

    /// `dird check-store` online (issue 15): the store and backend checks over one read
    /// snapshot of the live store, on the blocking pool, with the daemon's master key. Broken
    /// invariants are an error whose message is the report.
    async fn check_store(&self) -> Result<Reply, AdminError> {
        let local = self.local.clone();
        let master = self.dir.master_key();
        let report = tokio::task::spawn_blocking(move || {
            let open = |e: &Entry| -> Result<u32, String> {
                match &master {
                    Some(key) => crate::directory::secrets::check_entry_keys(e, key),
                    None => Err("no master key".into()),
                }
            };
            local.check_store(master.is_some().then_some(&open as _))
        })
        .await
        .map_err(|e| fail(format!("check-store stopped: {e}")))?
        .map_err(|e| fail(e.to_string()))?;
        let text = format!("dird check-store (online): {}", report.render());
        if report.errors() > 0 {
            return Err(fail(format!(
                "{text}\n{} errors in the live store",
                report.errors()
            )));
        }
        let mut value = serde_json::to_value(&report).map_err(|e| fail(e.to_string()))?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("ok".into(), true.into());
            obj.insert("errors".into(), 0.into());
            obj.insert("warnings".into(), report.warnings().into());
        }
        Ok(Reply::new(text.trim_end().to_string(), value))
    }

    /// Counts a finished stream request in the metrics.
    pub fn count_request(&self, op: &str, ok: bool, elapsed: std::time::Duration) {
        self.metrics
            .admin_request(op, if ok { "success" } else { "error" }, elapsed);
    }
}

/// The metrics/audit name of a request.
pub fn op_name(req: &AdminRequest) -> &'static str {
    match req {
        AdminRequest::Ping => "ping",
        AdminRequest::Status => "status",
        AdminRequest::CheckStore => "check_store",
        AdminRequest::UserAdd { .. } => "user_add",
        AdminRequest::UserShow { .. } => "user_show",
        AdminRequest::UserList => "user_list",
        AdminRequest::UserPasswd { .. } => "user_passwd",
        AdminRequest::UserDisable { .. } => "user_disable",
        AdminRequest::UserEnable { .. } => "user_enable",
        AdminRequest::UserUnlock { .. } => "user_unlock",
        AdminRequest::UserDelete { .. } => "user_delete",
        AdminRequest::GroupAdd { .. } => "group_add",
        AdminRequest::GroupShow { .. } => "group_show",
        AdminRequest::GroupList => "group_list",
        AdminRequest::GroupDelete { .. } => "group_delete",
        AdminRequest::Member { .. } => "group_member",
        AdminRequest::OuAdd { .. } => "ou_add",
        AdminRequest::OuDelete { .. } => "ou_delete",
        AdminRequest::Keytab { .. } => "keytab",
        AdminRequest::KrbtgtRotate => "krbtgt_rotate",
        AdminRequest::TrustRotate { .. } => "trust_rotate",
        AdminRequest::ImportBegin { .. }
        | AdminRequest::ImportChunk { .. }
        | AdminRequest::ImportEnd => "import",
        AdminRequest::Export => "export",
    }
}

fn pick_password(given: Option<String>) -> (String, bool) {
    match given {
        Some(p) => (p, false),
        None => (password::generate(), true),
    }
}

fn str_values(vals: &[&str]) -> Vec<Vec<u8>> {
    vals.iter().map(|v| v.as_bytes().to_vec()).collect()
}
