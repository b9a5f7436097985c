//! What the operator sees of each LDAP operation: the audit event (binds, writes, password
//! changes, limit refusals) and the metrics (operations by result code, latency, binds).
//! May import: `audit`, `metrics`, `ldap::{proto, request, controls, session}`, `directory`
//! (identity only). Invariants: events carry attribute names, never values; the connection
//! loop calls [`describe`] before an operation and [`finish`] after it, once per operation.

use std::time::{Instant, SystemTime};

use crate::audit::{Event, Kind, Outcome};
use crate::directory::{Identity, Served};
use crate::ldap::controls::{self, BerValue, PasswdModifyRequest};
use crate::ldap::proto::{LdapMessage, LdapResult, ProtocolOp, ResultCode};
use crate::ldap::request::{BindAuth, BindReq, Request};
use crate::ldap::session::Session;
use crate::ldap::Shared;

/// What was asked, captured before the request is consumed.
pub struct OpRecord {
    op: &'static str,
    write: Option<Kind>,
    target: Option<String>,
    attributes: Vec<String>,
    started: Instant,
}

impl OpRecord {
    /// True for operations that change the directory (refused while a fail-closed audit
    /// sink is failing).
    pub fn is_write(&self) -> bool {
        self.write.is_some()
    }

    /// True for writes that carry a password (password changes, adds with one): they need
    /// TLS. Used for forwarded requests, which skip the operations' own checks.
    pub fn carries_password(&self) -> bool {
        self.write.is_some() && self.attributes.iter().any(|a| is_password_attr(a))
    }
}

/// Captures the operation name, target and changed attribute names of a request.
pub fn describe(req: &Request, session: &Session) -> OpRecord {
    let (op, write, target, attributes) = match req {
        Request::Search(s) => ("search", None, Some(s.base.to_string()), Vec::new()),
        Request::Compare { dn, .. } => ("compare", None, Some(dn.to_string()), Vec::new()),
        Request::Add(e) => (
            "add",
            Some(Kind::Write),
            Some(e.dn.to_string()),
            e.attrs().map(|a| a.name.clone()).collect(),
        ),
        Request::Modify { dn, mods } => {
            let names: Vec<String> = dedup(mods.iter().map(|m| m.attr.clone()));
            let password = names.iter().any(|n| is_password_attr(n));
            let kind = if password {
                Kind::PasswordChange
            } else {
                Kind::Write
            };
            ("modify", Some(kind), Some(dn.to_string()), names)
        }
        Request::Delete(dn) => (
            "delete",
            Some(Kind::Write),
            Some(dn.to_string()),
            Vec::new(),
        ),
        Request::ModifyDn { dn, .. } => (
            "modrdn",
            Some(Kind::Write),
            Some(dn.to_string()),
            Vec::new(),
        ),
        Request::Extended { name, value } => match name.as_str() {
            controls::PASSWORD_MODIFY => {
                let target = value
                    .as_deref()
                    .filter(|v| !v.is_empty())
                    .and_then(|v| PasswdModifyRequest::from_ber(v).ok())
                    .and_then(|r| r.user_identity)
                    .map(|id| String::from_utf8_lossy(&id).into_owned())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| session.bound_dn());
                (
                    "password_modify",
                    Some(Kind::PasswordChange),
                    Some(target),
                    vec!["userPassword".to_string()],
                )
            }
            controls::WHO_AM_I => ("whoami", None, None, Vec::new()),
            _ => ("extended", None, None, Vec::new()),
        },
        Request::Bind(_) => ("bind", None, None, Vec::new()),
        Request::Unbind => ("unbind", None, None, Vec::new()),
        Request::Abandon(_) => ("abandon", None, None, Vec::new()),
    };
    OpRecord {
        op,
        write,
        target,
        attributes,
        started: Instant::now(),
    }
}

/// The refusal sent instead of running a write while the audit sink fails closed.
/// The refusal of a write that this session may not make: on a global catalog connection
/// (read-only, as AD's port 3268), else while the audit log cannot be written.
pub fn write_refusal(session: &Session, msgid: u32, request_tag: u8) -> Vec<LdapMessage> {
    if !session.global_catalog {
        return audit_refusal(msgid, request_tag);
    }
    let res = LdapResult::new(
        ResultCode::UnwillingToPerform,
        "",
        "the global catalog is read-only; write to the domain controller's LDAP port",
    );
    ProtocolOp::response_to(request_tag, res)
        .map(|op| vec![LdapMessage::new(msgid, op)])
        .unwrap_or_default()
}

pub fn audit_refusal(msgid: u32, request_tag: u8) -> Vec<LdapMessage> {
    let res = LdapResult::new(
        ResultCode::UnwillingToPerform,
        "",
        "the audit log cannot be written; changes are refused until it recovers",
    );
    ProtocolOp::response_to(request_tag, res)
        .map(|op| vec![LdapMessage::new(msgid, op)])
        .unwrap_or_default()
}

/// Records the metrics and (for writes and limit refusals) the audit event of a finished
/// operation, from the messages it answered with.
pub fn finish(
    shared: &Shared,
    session: &Session,
    rec: OpRecord,
    out: &[LdapMessage],
    now: SystemTime,
) {
    finish_served(
        shared,
        session,
        rec,
        out,
        now,
        upstream_of(session),
        false,
        None,
    )
}

/// `finish` for a request a relaying backend answered (connector mode): metrics per
/// upstream, the upstream in the audit event, and reads answered from the cache audited.
pub fn finish_forwarded(
    shared: &Shared,
    session: &Session,
    rec: OpRecord,
    out: &[LdapMessage],
    now: SystemTime,
    served: Served,
) {
    let (upstream, cached, service) = match served {
        Served::Upstream(u) => (Some(u), false, None),
        Served::UpstreamAs(u, a) => (Some(u), false, Some(a)),
        Served::Cache => (Some("cache".to_string()), true, None),
        Served::Nowhere => (None, false, None),
    };
    finish_served(shared, session, rec, out, now, upstream, cached, service)
}

/// `service`: the service account a forwarded search ran as (connector `search_as =
/// "service"`); such searches are audited, naming it.
#[allow(clippy::too_many_arguments)]
fn finish_served(
    shared: &Shared,
    session: &Session,
    rec: OpRecord,
    out: &[LdapMessage],
    now: SystemTime,
    upstream: Option<String>,
    cached: bool,
    service: Option<String>,
) {
    let Some((code, diagnostic)) = final_result(out) else {
        return; // abandoned or answerless
    };
    shared
        .metrics
        .ldap_operation(rec.op, &code_name(code), rec.started.elapsed());
    if let Some(u) = upstream.as_ref().filter(|_| !cached) {
        shared
            .metrics
            .upstream_operation(u, rec.op, &code_name(code), rec.started.elapsed());
    }
    let kind = if code == ResultCode::AdminLimitExceeded {
        Some(Kind::LimitRefusal)
    } else if cached {
        Some(Kind::CachedRead)
    } else if service.is_some() {
        Some(Kind::ServiceRead)
    } else {
        rec.write
    };
    let Some(kind) = kind else { return };
    let mut event = Event::new(kind, rec.op, now)
        .client(session.peer)
        .identity(session.bound_dn())
        .attributes(rec.attributes)
        .outcome(Outcome::new(code.code(), code_name(code)));
    if let Some(t) = rec.target {
        event = event.target(t);
    }
    if let Some(u) = upstream {
        event = event.detail("upstream", u);
    }
    if let Some(a) = service {
        event = event.detail("search_as", a);
    }
    if code != ResultCode::Success {
        event = event.reason(diagnostic);
    }
    shared.audit.record(event);
}

/// The upstream directory that served a relaying session (connector mode).
fn upstream_of(session: &Session) -> Option<String> {
    session.relay.as_ref().and_then(|r| r.upstream())
}

/// A record for a request forwarded without being typed (connector mode): described from a
/// typed copy when it converts, else by its protocol op alone.
pub fn describe_forwarded(op: &ProtocolOp, session: &Session) -> OpRecord {
    match Request::try_from(op.clone()) {
        Ok(req) => describe(&req, session),
        Err(_) => OpRecord {
            op: "forwarded",
            write: None,
            target: None,
            attributes: Vec::new(),
            started: Instant::now(),
        },
    }
}

/// The bind's name and mechanism, captured before the request is consumed.
pub fn bind_info(req: &BindReq) -> (String, String) {
    let mech = match &req.auth {
        BindAuth::Simple(_) => "simple".to_string(),
        BindAuth::Sasl(m, _) => m.clone(),
    };
    (req.name.clone(), mech)
}

/// Records a finished bind: metrics and the audit event (success or failure).
pub fn bind(
    shared: &Shared,
    session: &Session,
    (name, mech): (String, String),
    out: &[LdapMessage],
    started: Instant,
    now: SystemTime,
) {
    let (code, diagnostic) =
        final_result(out).unwrap_or((ResultCode::Other, String::from("no response")));
    shared
        .metrics
        .ldap_operation("bind", &code_name(code), started.elapsed());
    shared.metrics.bind(match code {
        ResultCode::Success => "success",
        ResultCode::InvalidCredentials => "invalid_credentials",
        _ => "failure",
    });
    let resolved = match &session.identity {
        Identity::User(u) if code == ResultCode::Success => u.dn().to_string(),
        _ => String::new(),
    };
    let target = if resolved.is_empty() {
        name.clone()
    } else {
        resolved.clone()
    };
    let mut event = Event::new(Kind::Bind, "bind", now)
        .client(session.peer)
        .identity(resolved)
        .target(target)
        .mechanism(mech)
        .bind_name(name)
        .outcome(Outcome::new(code.code(), code_name(code)));
    if let Some(u) = upstream_of(session) {
        shared
            .metrics
            .upstream_operation(&u, "bind", &code_name(code), started.elapsed());
        event = event.detail("upstream", u);
    }
    if code != ResultCode::Success {
        event = event.reason(diagnostic);
    }
    shared.audit.record(event);
}

/// The RFC 4511 name of a result code (`success`, `invalidCredentials`, …).
pub fn code_name(code: ResultCode) -> String {
    let debug = format!("{code:?}");
    let mut chars = debug.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => debug,
    }
}

/// The result code and diagnostic of the final response among `out`.
fn final_result(out: &[LdapMessage]) -> Option<(ResultCode, String)> {
    let res = match &out.last()?.protocol_op {
        ProtocolOp::BindResponse(b) => b.result(),
        ProtocolOp::ExtendedResponse(x) => x.result(),
        ProtocolOp::SearchResultDone(r)
        | ProtocolOp::ModifyResponse(r)
        | ProtocolOp::AddResponse(r)
        | ProtocolOp::DelResponse(r)
        | ProtocolOp::ModifyDnResponse(r)
        | ProtocolOp::CompareResponse(r) => r.clone(),
        _ => return None,
    };
    Some((res.result_code, res.diagnostic_message.to_string()))
}

fn is_password_attr(name: &str) -> bool {
    let base = name.split(';').next().unwrap_or(name);
    // by name or OID (the directory recognises them through the schema as well)
    [
        "userPassword",
        "unicodePwd",
        "2.5.4.35",
        "1.2.840.113556.1.4.90",
    ]
    .iter()
    .any(|p| p.eq_ignore_ascii_case(base))
}

fn dedup(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&n)) {
            out.push(n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_follow_rfc_4511() {
        assert_eq!(code_name(ResultCode::Success), "success");
        assert_eq!(
            code_name(ResultCode::InvalidCredentials),
            "invalidCredentials"
        );
        assert_eq!(
            code_name(ResultCode::AdminLimitExceeded),
            "adminLimitExceeded"
        );
    }
}
