//! The connector backend (issue 12, slapd's back-ldap analogue): dird keeps no directory of
//! its own and every client session is pinned to its own upstream AD connection
//! (`ConnectorSession`), which carries the session's bind identity and paging cookies.
//!
//! - Credentials are verified by the upstream (`SessionLink::verify_credentials`): a simple
//!   bind by DN, UPN or `DOMAIN\user` is sent as it is, and a refusal comes back with AD's
//!   result code and diagnostic unchanged (`data 52e`, `data 533`, `data 775`).
//! - Every other request the front-end forwards keeps its controls and values; only the
//!   message id is rewritten (upstream ids are allocated per upstream connection) and mapped
//!   back on each response. Access control is the upstream's.
//! - A session whose upstream connection broke answers `unavailable` (52); a bound session
//!   does not silently reconnect as anonymous: the client binds again, which reconnects.
//!
//! - With a service account (`[connector] service_account`), `lookup_account` finds a bind
//!   name's entry, sAMAccountName and nested groups (LDAP_MATCHING_RULE_IN_CHAIN) on a
//!   shared upstream connection of its own, before the user's bind: connector mode's MFA
//!   decision needs them, and the user's password is sent upstream only once.
//!
//! - Search continuation references (RFC 4511 §4.5.3) are returned to the client as AD sends
//!   them; with `chase_referrals`, those naming the domain or one of the upstream DCs
//!   (AD's DomainDnsZones/ForestDnsZones/Configuration references name the domain) are
//!   chased on the session's own connection, as the same identity, and their entries take
//!   the reference's place (at most `MAX_CHASES` per search; a reference that cannot be
//!   chased, or whose search fails, goes to the client unchanged).
//!
//! The entry-level `Backend` operations (used by the KDC and the admin tools) see an empty
//! directory: in connector mode those reach the upstream through the LDAP front-end only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::backend::read_cache::ReadCache;
use crate::backend::upstream::{is_final, UpstreamConn, UpstreamError, Upstreams};
use crate::backend::Served;
use crate::backend::{AccountInfo, BackendError, Query, SessionLink, Usage, Verified, WriteCtx};
use crate::ldap::proto::{
    AttributeValueAssertion, BindRequest, DerefAliases, Filter, LdapMessage, LdapResult,
    MatchingRuleAssertion, ProtocolOp, ResultCode, SearchRequest, SearchScope,
};
use crate::model::{Dn, Entry, Modification, Rdn};

/// Entries sent to the client per batch.
const BATCH: usize = 64;
/// Continuation references chased for one search (nested ones included).
const MAX_CHASES: usize = 16;
/// AD's LDAP_MATCHING_RULE_IN_CHAIN: membership through nested groups.
const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";
/// Groups of one account read for the MFA decision; beyond it the list counts as incomplete
/// (and MFA is required: fail closed).
const MAX_GROUPS: usize = 4096;

/// The service account and its shared upstream connection (bound as it, reopened when lost).
struct Service {
    account: String,
    password_file: std::path::PathBuf,
    conn: Mutex<Option<Arc<UpstreamConn>>>,
}

impl Service {
    /// The live service connection, connecting and binding as the service account if needed.
    /// No lock is held across an `.await`; two binds racing may both connect (one is kept).
    async fn conn(&self, upstreams: &Upstreams) -> Result<Arc<UpstreamConn>, BackendError> {
        if let Ok(c) = self.conn.lock() {
            if let Some(c) = c.as_ref().filter(|c| c.is_alive()) {
                return Ok(c.clone());
            }
        }
        let conn = self.bind_new(upstreams).await?;
        if let Ok(mut c) = self.conn.lock() {
            *c = Some(conn.clone());
        }
        Ok(conn)
    }

    /// A new upstream connection bound as the service account.
    async fn bind_new(&self, upstreams: &Upstreams) -> Result<Arc<UpstreamConn>, BackendError> {
        let password = tokio::fs::read(&self.password_file).await.map_err(|e| {
            BackendError::Unavailable(format!(
                "service account password file {}: {e}",
                self.password_file.display()
            ))
        })?;
        let password = zeroize::Zeroizing::new(password);
        let end = password
            .iter()
            .rposition(|b| *b != b'\n' && *b != b'\r')
            .map_or(0, |i| i + 1);
        let conn = Arc::new(upstreams.connect().await.map_err(|e| unavailable(&e))?);
        let req = ProtocolOp::BindRequest(BindRequest::simple(&self.account, &password[..end]));
        let res = bind_result(&conn, req, upstreams.op_timeout()).await?;
        if res.result_code != ResultCode::Success {
            return Err(BackendError::Unavailable(format!(
                "the service account {} cannot bind to {} ({}: {})",
                self.account,
                conn.url(),
                res.result_code.code(),
                res.diagnostic_message.as_str()
            )));
        }
        Ok(conn)
    }
}

/// Sends a bind request and waits for its response.
async fn bind_result(
    conn: &UpstreamConn,
    req: ProtocolOp,
    op_timeout: std::time::Duration,
) -> Result<LdapResult, BackendError> {
    let mut rs = conn
        .request(req, None, op_timeout)
        .await
        .map_err(|e| unavailable(&e))?;
    loop {
        match rs.next().await.map_err(|e| unavailable(&e))? {
            Some(LdapMessage {
                protocol_op: ProtocolOp::BindResponse(r),
                ..
            }) => return Ok(r.result()),
            Some(_) => continue,
            None => {
                return Err(BackendError::Unavailable(
                    "the upstream sent no bind response".into(),
                ))
            }
        }
    }
}

/// Runs a search on `conn`: its entries (at most `limit`; more make the answer incomplete)
/// and whether the search completed successfully within that limit.
async fn search_all(
    conn: &UpstreamConn,
    req: SearchRequest,
    op_timeout: std::time::Duration,
    limit: usize,
) -> Result<(Vec<crate::ldap::proto::SearchResultEntry>, bool), BackendError> {
    let mut rs = conn
        .request(ProtocolOp::SearchRequest(req), None, op_timeout)
        .await
        .map_err(|e| unavailable(&e))?;
    let mut found = Vec::new();
    let mut complete = true;
    loop {
        match rs.next().await.map_err(|e| unavailable(&e))? {
            Some(LdapMessage {
                protocol_op: ProtocolOp::SearchResultEntry(e),
                ..
            }) => {
                if found.len() < limit {
                    found.push(e);
                } else {
                    complete = false;
                }
            }
            Some(LdapMessage {
                protocol_op: ProtocolOp::SearchResultDone(r),
                ..
            }) => {
                if r.result_code != ResultCode::Success {
                    complete = false;
                }
                break;
            }
            Some(_) => continue,
            None => {
                complete = false;
                break;
            }
        }
    }
    Ok((found, complete))
}

/// The connector backend: the upstream settings and the domain it fronts.
pub struct Connector {
    upstreams: Arc<Upstreams>,
    service: Option<Arc<Service>>,
    cache: Option<Arc<ReadCache>>,
    base: Dn,
    dns_domain: String,
    /// `search_as = "service"`: searches run on a session connection bound as the service
    search_as_service: bool,
    /// `chase_referrals`: continuation references to the domain are followed
    chase_referrals: bool,
}

impl Connector {
    /// A connector for the domain `dns_domain` (base `base`) served by `upstreams`.
    pub fn new(upstreams: Upstreams, base: Dn, dns_domain: &str) -> Connector {
        Connector {
            cache: None,
            service: None,
            upstreams: Arc::new(upstreams),
            base,
            dns_domain: dns_domain.to_ascii_lowercase(),
            search_as_service: false,
            chase_referrals: false,
        }
    }

    /// Chases search continuation references to the domain (`chase_referrals = true`).
    pub fn chasing_referrals(mut self) -> Connector {
        self.chase_referrals = true;
        self
    }

    /// Searches run as the service account (`search_as = "service"`; needs
    /// `with_service_account`), each session on a connection of its own bound as it (paging
    /// cookies belong to one connection); dird's read ACL applies to the client's identity.
    pub fn searching_as_service(mut self) -> Connector {
        self.search_as_service = true;
        self
    }

    /// With the opt-in read cache (`[connector.cache]`).
    pub fn with_cache(mut self, cache: ReadCache) -> Connector {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// With the service account (`[connector] service_account`, its password read from
    /// `password_file` on each (re)connect): `lookup_account` works (MFA in connector mode).
    pub fn with_service_account(
        mut self,
        account: &str,
        password_file: &std::path::Path,
    ) -> Connector {
        self.service = Some(Arc::new(Service {
            account: account.to_string(),
            password_file: password_file.to_path_buf(),
            conn: Mutex::new(None),
        }));
        self
    }

    /// The upstream settings (health, for metrics).
    pub fn upstreams(&self) -> &Arc<Upstreams> {
        &self.upstreams
    }
}

fn refused() -> BackendError {
    BackendError::Upstream {
        code: ResultCode::UnwillingToPerform.code(),
        matched: String::new(),
        message: "connector mode keeps no local directory; write through LDAP".into(),
    }
}

#[async_trait::async_trait]
impl crate::backend::Backend for Connector {
    async fn entry(&self, _dn: &Dn) -> Result<Option<Entry>, BackendError> {
        Ok(None)
    }
    async fn search(&self, _q: &Query) -> Result<Vec<Entry>, BackendError> {
        Ok(Vec::new())
    }
    async fn search_handles(&self, _q: &Query) -> Result<Vec<u64>, BackendError> {
        Ok(Vec::new())
    }
    async fn search_handles_after(
        &self,
        _q: &Query,
        _after: u64,
        _limit: usize,
    ) -> Result<(Vec<u64>, bool), BackendError> {
        Ok((Vec::new(), false))
    }
    async fn fetch(&self, _handles: &[u64]) -> Result<Vec<Entry>, BackendError> {
        Ok(Vec::new())
    }
    async fn add(&self, _entry: Entry, _ctx: &WriteCtx) -> Result<(), BackendError> {
        Err(refused())
    }
    async fn modify(
        &self,
        _dn: &Dn,
        _mods: Vec<Modification>,
        _internal: bool,
        _ctx: &WriteCtx,
    ) -> Result<(), BackendError> {
        Err(refused())
    }
    async fn delete(&self, _dn: &Dn, _ctx: &WriteCtx) -> Result<(), BackendError> {
        Err(refused())
    }
    async fn rename(
        &self,
        _dn: &Dn,
        _new_rdn: Rdn,
        _delete_old_rdn: bool,
        _new_superior: Option<Dn>,
        _ctx: &WriteCtx,
    ) -> Result<(), BackendError> {
        Err(refused())
    }
    async fn password_hash(&self, _dn: &Dn) -> Result<Option<String>, BackendError> {
        Ok(None)
    }
    async fn find_one(&self, _attr: &str, _value: &str) -> Result<Option<Dn>, BackendError> {
        Ok(None)
    }
    async fn usn(&self) -> Result<u64, BackendError> {
        Ok(0)
    }
    async fn usage(&self) -> Result<Usage, BackendError> {
        Ok(Usage::default())
    }
    fn open_session(&self) -> Option<Arc<dyn SessionLink>> {
        Some(Arc::new(ConnectorSession {
            upstreams: self.upstreams.clone(),
            service: self.service.clone(),
            cache: self.cache.clone(),
            base: self.base.clone(),
            dns_domain: self.dns_domain.clone(),
            search_as_service: self.search_as_service && self.service.is_some(),
            chase_referrals: self.chase_referrals,
            state: Mutex::new(State::default()),
        }))
    }
}

#[derive(Default)]
struct State {
    conn: Option<Arc<UpstreamConn>>,
    /// the session's connection bound as the service account (`search_as = "service"`)
    search_conn: Option<Arc<UpstreamConn>>,
    /// the session is bound as a user: a lost connection must not turn it anonymous
    bound: bool,
    /// client message id → the connection and upstream message id of forwarded requests in
    /// flight
    inflight: HashMap<u32, (Arc<UpstreamConn>, u32)>,
    /// the bound DN (empty: anonymous), the read cache's partition
    identity: String,
}

/// One client session's pinned upstream connection (opened on first use).
pub struct ConnectorSession {
    upstreams: Arc<Upstreams>,
    service: Option<Arc<Service>>,
    cache: Option<Arc<ReadCache>>,
    base: Dn,
    dns_domain: String,
    search_as_service: bool,
    chase_referrals: bool,
    state: Mutex<State>,
}

impl std::fmt::Debug for ConnectorSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorSession").finish()
    }
}

/// An upstream failure as a backend error: busy (51) when the pool is full, else
/// unavailable (52).
fn unavailable(e: &UpstreamError) -> BackendError {
    match e {
        UpstreamError::Busy(_) => BackendError::Upstream {
            code: ResultCode::Busy.code(),
            matched: String::new(),
            message: e.to_string(),
        },
        _ => BackendError::Unavailable(e.to_string()),
    }
}

/// The result code a client gets for an upstream failure.
fn failure_code(e: &UpstreamError) -> ResultCode {
    match e {
        UpstreamError::Busy(_) => ResultCode::Busy,
        _ => ResultCode::Unavailable,
    }
}

impl ConnectorSession {
    /// The live pinned connection, if any: `Err` if the session was bound and lost it.
    fn current(&self) -> Result<Option<Arc<UpstreamConn>>, UpstreamError> {
        let Ok(st) = self.state.lock() else {
            return Err(UpstreamError::Lost("(session state)".into()));
        };
        match &st.conn {
            Some(c) if c.is_alive() => Ok(Some(c.clone())),
            Some(c) if st.bound => Err(UpstreamError::Lost(format!(
                "{}; bind again to reconnect",
                c.url()
            ))),
            _ => Ok(None),
        }
    }

    /// The pinned connection, connecting (anonymously) if there is none yet.
    async fn conn(&self) -> Result<Arc<UpstreamConn>, UpstreamError> {
        if let Some(c) = self.current()? {
            return Ok(c);
        }
        self.reconnect().await
    }

    /// The session's connection bound as the service account, opened (and bound) if there is
    /// none or it broke: it carries no client identity, so reconnecting changes nobody's
    /// rights (only paging cookies of the lost connection become stale).
    async fn search_conn(&self, service: &Service) -> Result<Arc<UpstreamConn>, UpstreamError> {
        if let Ok(st) = self.state.lock() {
            if let Some(c) = st.search_conn.as_ref().filter(|c| c.is_alive()) {
                return Ok(c.clone());
            }
        }
        let fresh = service
            .bind_new(&self.upstreams)
            .await
            .map_err(|e| UpstreamError::Service(e.to_string()))?;
        if let Ok(mut st) = self.state.lock() {
            st.search_conn = Some(fresh.clone());
        }
        Ok(fresh)
    }

    /// The search a continuation reference `urls` asks for, when it can be chased on the
    /// session's own connection: an LDAP URL naming the domain or one of the upstream DCs.
    fn chase_target(
        &self,
        urls: &[crate::ldap::proto::Uri],
        orig: &SearchRequest,
    ) -> Option<SearchRequest> {
        urls.iter().find_map(|u| {
            let (host, dn, scope) = parse_ldap_url(u.as_str())?;
            if host != self.dns_domain && !self.upstreams.is_upstream_host(&host) {
                return None;
            }
            let mut req = orig.clone();
            req.base_object = dn.as_str().into();
            // RFC 4511 §4.5.3: the URL's scope, else the original's (a one-level search's
            // references name the base).
            req.scope = scope.unwrap_or(match orig.scope {
                SearchScope::SingleLevel => SearchScope::BaseObject,
                s => s,
            });
            Some(req)
        })
    }

    /// Runs the chased searches `todo` on `conn`, their entries (as `client_id`) into
    /// `batch` (sent to `out` when full); a reference that cannot be chased, or whose search
    /// fails, is passed on unchanged.
    async fn chase(
        &self,
        conn: &UpstreamConn,
        orig: &SearchRequest,
        mut todo: Vec<(SearchRequest, LdapMessage)>,
        client_id: u32,
        out: &tokio::sync::mpsc::Sender<Vec<LdapMessage>>,
        batch: &mut Vec<LdapMessage>,
    ) {
        let mut chased = 0;
        // in the order AD sent them (nested ones after)
        while !todo.is_empty() {
            let (req, reference) = todo.remove(0);
            chased += 1;
            let base = req.base_object.as_str().to_string();
            let mut found = Vec::new();
            let mut ok = false;
            if let Ok(mut rs) = conn
                .request(
                    ProtocolOp::SearchRequest(req),
                    None,
                    self.upstreams.op_timeout(),
                )
                .await
            {
                while let Ok(Some(mut m)) = rs.next().await {
                    match &m.protocol_op {
                        ProtocolOp::SearchResultDone(r) => {
                            ok = r.result_code == ResultCode::Success;
                            break;
                        }
                        ProtocolOp::SearchResultReference(urls) => {
                            match self.chase_target(urls, orig) {
                                Some(next) if chased + todo.len() < MAX_CHASES => {
                                    m.message_id = client_id;
                                    todo.push((next, m));
                                }
                                _ => {
                                    m.message_id = client_id;
                                    found.push(m);
                                }
                            }
                        }
                        _ => {
                            m.message_id = client_id;
                            found.push(m);
                        }
                    }
                }
            }
            tracing::debug!(%base, ok, entries = found.len(), "chased a continuation reference");
            if ok {
                batch.extend(found);
            } else {
                batch.push(reference);
            }
            if batch.len() >= BATCH && out.send(std::mem::take(batch)).await.is_err() {
                return;
            }
        }
    }

    /// A fresh connection replacing the pinned one (the session becomes anonymous).
    async fn reconnect(&self) -> Result<Arc<UpstreamConn>, UpstreamError> {
        let fresh = Arc::new(self.upstreams.connect().await?);
        if let Ok(mut st) = self.state.lock() {
            st.conn = Some(fresh.clone());
            st.bound = false;
            st.identity.clear();
            st.inflight.clear();
        }
        Ok(fresh)
    }

    fn set_bound(&self, bound: Option<&Dn>) {
        if let Ok(mut st) = self.state.lock() {
            st.bound = bound.is_some();
            st.identity = bound.map(|d| d.norm().to_string()).unwrap_or_default();
        }
    }

    /// The filter finding the account a bind name that is not a DN names: `DOMAIN\user`
    /// by sAMAccountName, a UPN by userPrincipalName (or AD's implicit UPN), else by
    /// sAMAccountName.
    fn name_filter(&self, name: &str) -> Filter {
        let eq =
            |a: &str, v: &str| Filter::EqualityMatch(AttributeValueAssertion::new(a, v.as_bytes()));
        if let Some((_, user)) = name.split_once('\\') {
            eq("sAMAccountName", user)
        } else if let Some((user, domain)) = name.rsplit_once('@') {
            let mut any = vec![eq("userPrincipalName", name)];
            if domain.eq_ignore_ascii_case(&self.dns_domain) {
                // AD's implicit UPN: sAMAccountName@dnsDomain
                any.push(eq("sAMAccountName", user));
            }
            Filter::Or(any)
        } else {
            eq("sAMAccountName", name)
        }
    }

    /// The DN of the account a successful bind named: the name itself when it is a DN, else
    /// a lookup (as the now bound user) of the UPN or sAMAccountName.
    async fn bound_dn(&self, conn: &UpstreamConn, name: &str) -> Dn {
        if let Ok(dn) = Dn::parse(name) {
            if !dn.is_root() && name.contains('=') {
                return dn;
            }
        }
        let filter = self.name_filter(name);
        let req = ProtocolOp::SearchRequest(SearchRequest {
            base_object: self.base.to_string().as_str().into(),
            scope: SearchScope::WholeSubtree,
            deref_aliases: DerefAliases::Never,
            size_limit: 2,
            time_limit: 0,
            types_only: false,
            filter,
            attributes: vec!["1.1".into()],
        });
        let mut found = None;
        if let Ok(mut rs) = conn.request(req, None, self.upstreams.op_timeout()).await {
            while let Ok(Some(m)) = rs.next().await {
                if let ProtocolOp::SearchResultEntry(e) = &m.protocol_op {
                    if found.is_none() {
                        found = Dn::parse(e.object_name.as_str()).ok();
                    }
                }
                if is_final(&m.protocol_op) {
                    break;
                }
            }
        }
        found.unwrap_or_else(|| {
            tracing::warn!(%name, "upstream bind succeeded but its entry was not found");
            Dn::from_rdns(vec![Rdn::new("cn", name)])
        })
    }
}

/// The base DN and scope an `ldap://host[:port]/dn[?attrs?scope...]` URL (RFC 4516) names.
fn parse_ldap_url(url: &str) -> Option<(String, String, Option<SearchScope>)> {
    let rest = url
        .strip_prefix("ldap://")
        .or_else(|| url.strip_prefix("ldaps://"))?;
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
    };
    let mut parts = path.split('?');
    let dn = percent_decode(parts.next().unwrap_or(""))?;
    let scope = match parts.nth(1) {
        Some("base") => Some(SearchScope::BaseObject),
        Some("one") => Some(SearchScope::SingleLevel),
        Some("sub") => Some(SearchScope::WholeSubtree),
        _ => None,
    };
    Some((host.to_ascii_lowercase(), dn, scope))
}

/// RFC 3986 percent-decoding (UTF-8); `None` for a malformed escape.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The error response to a request with BER tag `tag`.
fn error_reply(client_id: u32, tag: u8, code: ResultCode, message: &str) -> Vec<LdapMessage> {
    ProtocolOp::response_to(tag, LdapResult::new(code, "", message))
        .map(|op| vec![LdapMessage::new(client_id, op)])
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl SessionLink for ConnectorSession {
    async fn verify_credentials(
        &self,
        name: &str,
        password: &[u8],
    ) -> Result<Verified, BackendError> {
        // A bind on a lost connection starts over on a fresh one (that is how a client
        // recovers after an upstream restart).
        let conn = match self.current() {
            Ok(Some(c)) => c,
            _ => self.reconnect().await.map_err(|e| unavailable(&e))?,
        };
        self.set_bound(None);
        let req = ProtocolOp::BindRequest(BindRequest::simple(name, password));
        let res = bind_result(&conn, req, self.upstreams.op_timeout()).await?;
        if res.result_code != ResultCode::Success {
            tracing::debug!(upstream = %conn.url(), code = res.result_code.code(), "upstream refused a bind");
            return Err(BackendError::Upstream {
                code: res.result_code.code(),
                matched: res.matched_dn.as_str().to_string(),
                message: res.diagnostic_message.as_str().to_string(),
            });
        }
        if name.is_empty() {
            return Ok(Verified::Anonymous);
        }
        let dn = self.bound_dn(&conn, name).await;
        self.set_bound(Some(&dn));
        Ok(Verified::User(dn))
    }

    async fn forward(
        &self,
        msg: LdapMessage,
        out: tokio::sync::mpsc::Sender<Vec<LdapMessage>>,
    ) -> Served {
        let client_id = msg.message_id;
        let tag = msg.protocol_op.tag_byte();
        let key = self.cache.as_ref().and_then(|_| {
            let identity = self.state.lock().ok()?.identity.clone();
            ReadCache::key(&identity, &msg.protocol_op, &msg.controls)
        });
        // No upstream: a cached answer to this very search by this identity, else 52.
        let unavailable = |e: UpstreamError| {
            let cached = key
                .as_ref()
                .filter(|_| !matches!(e, UpstreamError::Busy(_)))
                .and_then(|k| self.cache.as_ref().and_then(|c| c.get(k)));
            match cached {
                Some(mut msgs) => {
                    tracing::warn!(error = %e, "no upstream answers: search answered from the read cache");
                    for m in &mut msgs {
                        m.message_id = client_id;
                    }
                    (msgs, Served::Cache)
                }
                None => (
                    error_reply(client_id, tag, failure_code(&e), &e.to_string()),
                    Served::Nowhere,
                ),
            }
        };
        // search_as = "service": searches go over the session's service-bound connection.
        let service = self
            .service
            .as_ref()
            .filter(|_| self.search_as_service)
            .filter(|_| matches!(msg.protocol_op, ProtocolOp::SearchRequest(_)));
        let conn = match service {
            Some(svc) => self.search_conn(svc).await,
            None => self.conn().await,
        };
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                let (msgs, served) = unavailable(e);
                let _ = out.send(msgs).await;
                return served;
            }
        };
        let op_timeout = self.upstreams.op_timeout();
        let chase_req = match &msg.protocol_op {
            ProtocolOp::SearchRequest(s) if self.chase_referrals => Some(s.clone()),
            _ => None,
        };
        let mut to_chase: Vec<(SearchRequest, LdapMessage)> = Vec::new();
        let mut rs = match conn
            .request(msg.protocol_op, msg.controls, op_timeout)
            .await
        {
            Ok(rs) => rs,
            Err(e) => {
                let (msgs, served) = unavailable(e);
                let _ = out.send(msgs).await;
                return served;
            }
        };
        if let Ok(mut st) = self.state.lock() {
            st.inflight
                .insert(client_id, (conn.clone(), rs.upstream_id));
        }
        let limit = self.cache.as_ref().map_or(0, |c| c.max_entries());
        let mut keep: Option<Vec<LdapMessage>> = key.as_ref().map(|_| Vec::new());
        let (mut batch, mut sent_any) = (Vec::new(), false);
        let mut served = match service {
            Some(svc) => Served::UpstreamAs(conn.url().to_string(), svc.account.clone()),
            None => Served::Upstream(conn.url().to_string()),
        };
        loop {
            match rs.next().await {
                Ok(Some(mut m)) => {
                    let last = is_final(&m.protocol_op);
                    if let (Some(orig), ProtocolOp::SearchResultReference(urls)) =
                        (&chase_req, &m.protocol_op)
                    {
                        if let Some(req) = self.chase_target(urls, orig) {
                            if to_chase.len() < MAX_CHASES {
                                m.message_id = client_id;
                                to_chase.push((req, m));
                                // a chased answer is not kept in the read cache
                                keep = None;
                                continue;
                            }
                        }
                    }
                    if let (true, Some(orig)) = (last && !to_chase.is_empty(), &chase_req) {
                        let todo = std::mem::take(&mut to_chase);
                        self.chase(&conn, orig, todo, client_id, &out, &mut batch)
                            .await;
                    }
                    if let Some(k) = keep.as_mut() {
                        if k.len() < limit {
                            k.push(m.clone());
                        } else {
                            keep = None;
                        }
                    }
                    m.message_id = client_id;
                    batch.push(m);
                    if last {
                        break;
                    }
                    if batch.len() >= BATCH {
                        sent_any = true;
                        if out.send(std::mem::take(&mut batch)).await.is_err() {
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    keep = None;
                    conn.forget(rs.upstream_id);
                    if matches!(e, UpstreamError::Timeout(_)) {
                        let _ = conn
                            .request(ProtocolOp::AbandonRequest(rs.upstream_id), None, op_timeout)
                            .await;
                    }
                    if sent_any {
                        batch.extend(error_reply(
                            client_id,
                            tag,
                            ResultCode::Unavailable,
                            &e.to_string(),
                        ));
                        served = Served::Nowhere;
                    } else {
                        let (msgs, s) = unavailable(e);
                        batch = msgs;
                        served = s;
                    }
                    break;
                }
            }
        }
        if let Ok(mut st) = self.state.lock() {
            st.inflight.remove(&client_id);
        }
        // Only complete, successful results are cached.
        let complete = keep.filter(|k| {
            matches!(k.last(), Some(LdapMessage { protocol_op: ProtocolOp::SearchResultDone(r), .. }) if r.result_code == ResultCode::Success)
        });
        if let (Some(cache), Some(key), Some(msgs)) = (&self.cache, key, complete) {
            cache.put(key, msgs);
        }
        let _ = out.send(batch).await;
        served
    }

    async fn lookup_account(&self, name: &str) -> Result<Option<AccountInfo>, BackendError> {
        let Some(service) = &self.service else {
            return Ok(None);
        };
        let conn = service.conn(&self.upstreams).await?;
        let op_timeout = self.upstreams.op_timeout();
        let as_dn = Dn::parse(name)
            .ok()
            .filter(|dn| !dn.is_root() && name.contains('='));
        let (base, scope, filter) = match &as_dn {
            Some(_) => (
                name.to_string(),
                SearchScope::BaseObject,
                Filter::Present("objectClass".into()),
            ),
            None => (
                self.base.to_string(),
                SearchScope::WholeSubtree,
                self.name_filter(name),
            ),
        };
        let req = SearchRequest {
            base_object: base.as_str().into(),
            scope,
            deref_aliases: DerefAliases::Never,
            size_limit: 2,
            time_limit: 0,
            types_only: false,
            filter,
            attributes: vec!["sAMAccountName".into()],
        };
        let (found, _) = search_all(&conn, req, op_timeout, 2).await?;
        // No such account, or a name that is not unique: nothing to decide on.
        let [entry] = found.as_slice() else {
            return Ok(None);
        };
        let Ok(dn) = Dn::parse(entry.object_name.as_str()) else {
            return Ok(None);
        };
        let sam_account_name = entry
            .attributes
            .iter()
            .find(|a| a.attr_type.as_str().eq_ignore_ascii_case("sAMAccountName"))
            .and_then(|a| a.vals.0.first())
            .map(|v| String::from_utf8_lossy(v).into_owned());
        // Every group the account is a member of, through nesting, in one search.
        let req = SearchRequest {
            base_object: self.base.to_string().as_str().into(),
            scope: SearchScope::WholeSubtree,
            deref_aliases: DerefAliases::Never,
            // one more than kept: a longer list ends in sizeLimitExceeded (incomplete)
            size_limit: u32::try_from(MAX_GROUPS).map_or(0, |n| n + 1),
            time_limit: 0,
            types_only: false,
            filter: Filter::ExtensibleMatch(MatchingRuleAssertion {
                matching_rule: Some(IN_CHAIN.into()),
                attr_type: Some("member".into()),
                match_value: rasn::types::OctetString::from(
                    entry.object_name.as_str().as_bytes().to_vec(),
                ),
                dn_attributes: false,
            }),
            attributes: vec!["1.1".into()],
        };
        let (groups, mut groups_complete) = search_all(&conn, req, op_timeout, MAX_GROUPS).await?;
        let mut norm = std::collections::HashSet::new();
        for g in groups {
            match Dn::parse(g.object_name.as_str()) {
                Ok(g) => {
                    norm.insert(g.norm().to_string());
                }
                Err(_) => groups_complete = false,
            }
        }
        Ok(Some(AccountInfo {
            dn,
            sam_account_name,
            groups: norm,
            groups_complete,
        }))
    }

    async fn reset(&self) {
        // Drop the connection bound as the user; the next request connects anonymously.
        let dropped = self.state.lock().ok().map(|mut st| {
            st.bound = false;
            st.identity.clear();
            st.inflight.clear();
            st.conn.take()
        });
        if let Some(Some(conn)) = dropped {
            let _ = conn
                .request(
                    ProtocolOp::UnbindRequest(()),
                    None,
                    self.upstreams.op_timeout(),
                )
                .await;
        }
    }

    fn upstream(&self) -> Option<String> {
        let st = self.state.lock().ok()?;
        st.conn.as_ref().map(|c| c.url().to_string())
    }

    async fn abandon(&self, client_id: u32) {
        let (conn, upstream_id) = {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            let Some(found) = st.inflight.remove(&client_id) else {
                return;
            };
            found
        };
        conn.forget(upstream_id);
        let _ = conn
            .request(
                ProtocolOp::AbandonRequest(upstream_id),
                None,
                self.upstreams.op_timeout(),
            )
            .await;
    }

    fn searches_as_service(&self) -> bool {
        self.search_as_service
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldap_urls_name_host_dn_and_scope() {
        assert_eq!(
            parse_ldap_url("ldap://corp.example.com/DC=DomainDnsZones,DC=corp,DC=example,DC=com"),
            Some((
                "corp.example.com".into(),
                "DC=DomainDnsZones,DC=corp,DC=example,DC=com".into(),
                None
            ))
        );
        assert_eq!(
            parse_ldap_url("ldaps://DC1:636/CN=a%20b,DC=x??base"),
            Some((
                "dc1".into(),
                "CN=a b,DC=x".into(),
                Some(SearchScope::BaseObject)
            ))
        );
        assert_eq!(
            parse_ldap_url("ldap://[::1]:389/dc=x?cn?one"),
            Some(("::1".into(), "dc=x".into(), Some(SearchScope::SingleLevel)))
        );
        assert_eq!(parse_ldap_url("http://x/dc=x"), None);
        assert_eq!(parse_ldap_url("ldap://x/dc=%zz"), None);
        assert_eq!(parse_ldap_url("ldap://x/dc=%4"), None);
    }
}
