//! Kerberos KDC front-end: AS and TGS exchanges (RFC 4120) and kpasswd (RFC 3244) over UDP and
//! TCP, serving principals from a `PrincipalDb`.
//!
//! May import: `model`, `rasn`/`rasn-kerberos` (messages), `krb5::Key` (RFC 3961 crypto), tokio.
//! Must not import: `ldap`, `store`, `backend` (the directory is reached only through
//! `db::PrincipalDb`, implemented by the integrator).
//!
//! Invariants:
//! - Only the listener tasks in this file touch sockets; handlers return bytes.
//! - Handlers take `now` and an RNG; the clock is read here, once per request.
//! - Every request runs in its own task on the multi-threaded runtime, so both cores serve
//!   requests; per-request crypto is a few AES/HMAC operations and runs inline. Password-based
//!   key derivation (kpasswd) happens in the `PrincipalDb` on a blocking thread.
//! - Hostile input never panics: UDP datagrams that do not start like a KDC request are dropped
//!   (answering them would make us a reflector); malformed requests get a KRB-ERROR.

pub mod account_id;
pub mod as_req;
pub mod codec;
pub mod cross_realm;
pub mod crypto;
pub mod db;
pub mod error;
mod fast;
pub mod fast_types;
pub mod keytab;
pub mod kpasswd;
pub mod otp;
pub mod pac;
pub mod proxy;
pub mod replay;
#[cfg(test)]
mod tests;
pub mod tgs_req;
mod ticket;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::{CryptoRng, RngCore};
use rasn::types::{GeneralString, Integer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use self::codec::KdcRequest;
use self::db::{PrincipalDb, PrincipalRecord};
use self::error::{ErrorContext, KdcError};
use self::replay::{ReplayCache, ReplayKey, ReplayStore};
use crate::model::principal::PrincipalName;

/// KDC settings (the `[kdc]` section of the daemon config).
#[derive(Clone, Debug)]
pub struct KdcConfig {
    /// The realm served, upper case (`EXAMPLE.COM`).
    pub realm: String,
    /// KDC addresses; each is bound for both UDP and TCP on the same port (port 0 picks one).
    pub listen: Vec<SocketAddr>,
    /// kpasswd addresses, UDP and TCP.
    pub kpasswd_listen: Vec<SocketAddr>,
    /// Maximum ticket lifetime (default 10 h).
    pub ticket_lifetime: Duration,
    /// Maximum renewable lifetime (default 7 d).
    pub renew_lifetime: Duration,
    /// Allowed clock skew (default 5 min).
    pub max_skew: Duration,
    /// Largest accepted request (UDP datagram or TCP record), default 64 KiB.
    pub max_message: usize,
    /// Largest UDP reply; bigger replies become KRB_ERR_RESPONSE_TOO_BIG so the client retries
    /// over TCP (default 1400, below MIT's udp_preference_limit of 1465).
    pub udp_reply_limit: usize,
    /// TCP idle/read/write timeout per connection (default 10 s).
    pub tcp_timeout: Duration,
    /// Requests (UDP) or connections (TCP) in flight per listener before new ones are dropped.
    pub max_in_flight: usize,
    /// Capacity of the authenticator replay cache.
    pub replay_cache_size: usize,
    /// Cross-realm trusts (`mode = "trust"`); empty: cross-realm TGTs are not accepted.
    pub trusts: Vec<cross_realm::TrustPolicy>,
}

impl KdcConfig {
    /// Defaults for `realm`: `127.0.0.1:8888` and kpasswd `127.0.0.1:8464`.
    pub fn new(realm: &str) -> Self {
        KdcConfig {
            realm: realm.to_owned(),
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8888))],
            kpasswd_listen: vec![SocketAddr::from(([127, 0, 0, 1], 8464))],
            ticket_lifetime: Duration::from_secs(10 * 3600),
            renew_lifetime: Duration::from_secs(7 * 24 * 3600),
            max_skew: Duration::from_secs(300),
            max_message: 64 * 1024,
            udp_reply_limit: 1400,
            tcp_timeout: Duration::from_secs(10),
            max_in_flight: 1024,
            replay_cache_size: 100_000,
            trusts: Vec::new(),
        }
    }
}

/// What the KDC decided about one AS or TGS request, for the audit stream and metrics.
#[derive(Clone, Debug)]
pub struct KdcEvent {
    /// `"AS"` or `"TGS"`
    pub request: &'static str,
    /// the client principal named in the request (empty if unreadable)
    pub client: String,
    /// the service principal requested (empty if unreadable)
    pub service: String,
    /// the client's address, when known
    pub peer: Option<SocketAddr>,
    /// `None` when a ticket was issued, else the KRB-ERROR code sent
    pub error_code: Option<i32>,
    /// why it was refused
    pub reason: Option<String>,
    /// the request crossed a realm boundary (a trust): realm, client and refusal reason
    pub cross_realm: Option<cross_realm::CrossRealmInfo>,
}

/// Receives a `KdcEvent` for every ticket issued or refused. Called inline: implementations
/// must not block (the audit stream queues, metrics are counters).
pub trait KdcObserver: Send + Sync + 'static {
    /// One decision.
    fn observe(&self, event: KdcEvent);
}

/// A KDC with its sockets bound, ready to `run`.
pub struct Kdc {
    state: Arc<KdcState>,
    listeners: Vec<Listener>,
    kdc_addrs: Vec<SocketAddr>,
    kpasswd_addrs: Vec<SocketAddr>,
}

/// Binds and runs a KDC until `shutdown` completes.
pub async fn serve(
    config: KdcConfig,
    db: Arc<dyn PrincipalDb>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    Kdc::bind(config, db).await?.run(shutdown).await
}

impl Kdc {
    /// Binds every configured address (UDP and TCP on the same port; port 0 picks a free port
    /// usable for both, as krb5.conf names one port for both transports).
    pub async fn bind(config: KdcConfig, db: Arc<dyn PrincipalDb>) -> io::Result<Kdc> {
        let mut listeners = Vec::new();
        let mut kdc_addrs = Vec::new();
        let mut kpasswd_addrs = Vec::new();
        for (addrs, service, bound) in [
            (&config.listen, Service::Kdc, &mut kdc_addrs),
            (&config.kpasswd_listen, Service::Kpasswd, &mut kpasswd_addrs),
        ] {
            for &addr in addrs {
                let (udp, tcp, local) = bind_pair(addr).await?;
                listeners.push(Listener::Udp(udp, service));
                listeners.push(Listener::Tcp(tcp, service));
                bound.push(local);
            }
        }
        let replay = Arc::new(ReplayCache::new(config.max_skew, config.replay_cache_size));
        Ok(Kdc {
            state: Arc::new(KdcState {
                config,
                db,
                replay,
                observer: None,
                otp: None,
            }),
            listeners,
            kdc_addrs,
            kpasswd_addrs,
        })
    }

    /// Reports every ticket issued or refused to `observer` (call before `run`).
    pub fn with_observer(mut self, observer: Arc<dyn KdcObserver>) -> Kdc {
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.observer = Some(observer);
        }
        self
    }

    /// Remembers authenticators in `store` instead of this process's cache (a cluster's
    /// shared replay cache, `cluster::shared::EtcdReplay`; call before `run`).
    pub fn with_replay_store(mut self, store: Arc<dyn ReplayStore>) -> Kdc {
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.replay = store;
        }
        self
    }

    /// Requires a one-time code (RFC 6560 OTP inside FAST) from the principals `checker` says
    /// need one, and has the codes checked by it (call before `run`). `otp_length` is the
    /// number of digits announced to clients.
    pub fn with_otp(mut self, checker: Arc<dyn otp::OtpCheck>, otp_length: Option<i32>) -> Kdc {
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.otp = Some(OtpConfig {
                checker,
                otp_length,
            });
        }
        self
    }

    /// The bound KDC addresses (same port for UDP and TCP).
    pub fn kdc_addrs(&self) -> &[SocketAddr] {
        &self.kdc_addrs
    }

    /// The bound kpasswd addresses (same port for UDP and TCP).
    pub fn kpasswd_addrs(&self) -> &[SocketAddr] {
        &self.kpasswd_addrs
    }

    /// Serves until `shutdown` completes; in-flight requests are then abandoned.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let mut loops = JoinSet::new();
        for listener in self.listeners {
            let state = self.state.clone();
            match listener {
                Listener::Udp(socket, service) => {
                    loops.spawn(udp_loop(state, Arc::new(socket), service))
                }
                Listener::Tcp(listener, service) => loops.spawn(tcp_loop(state, listener, service)),
            };
        }
        tokio::pin!(shutdown);
        let result = tokio::select! {
            () = &mut shutdown => Ok(()),
            Some(ended) = loops.join_next() => match ended {
                Ok(Err(e)) => Err(e),
                Ok(Ok(())) => Ok(()),
                Err(e) => Err(io::Error::other(e)),
            },
        };
        loops.abort_all();
        result
    }

    /// Serves one KDC message in-process (tests, benchmarks): the reply bytes, or `None` if the
    /// message is dropped.
    pub async fn handle(&self, message: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        handle_kdc(&self.state, message, None, now, &mut rand::rngs::OsRng)
            .await
            .map(|r| r.bytes)
    }
}

/// Shared state of all KDC tasks.
pub(crate) struct KdcState {
    config: KdcConfig,
    db: Arc<dyn PrincipalDb>,
    replay: Arc<dyn ReplayStore>,
    observer: Option<Arc<dyn KdcObserver>>,
    otp: Option<OtpConfig>,
}

/// The MFA side of the KDC (see `otp`).
pub(crate) struct OtpConfig {
    checker: Arc<dyn otp::OtpCheck>,
    otp_length: Option<i32>,
}

/// A handler's reply and the replay-cache entry it created (undone if the reply is not sent).
pub(crate) struct Reply {
    bytes: Vec<u8>,
    replay: Option<ReplayKey>,
    /// a cross-realm ticket was issued (`cross_realm`): to whom, through which trust
    cross: Option<cross_realm::CrossRealmInfo>,
}

#[derive(Clone, Copy, Debug)]
enum Service {
    Kdc,
    Kpasswd,
}

enum Listener {
    Udp(UdpSocket, Service),
    Tcp(TcpListener, Service),
}

impl KdcState {
    async fn lookup(&self, name: &PrincipalName) -> Result<Option<PrincipalRecord>, KdcError> {
        self.db.lookup(name).await.map_err(|e| {
            tracing::warn!(target: "kdc", error = %e, principal = %name, "principal lookup failed");
            KdcError::Database(e.0)
        })
    }

    /// A principal that may be the target of a ticket; `kadmin/changepw` falls back to the
    /// built-in record (see `kpasswd`).
    async fn service(&self, name: &PrincipalName) -> Result<PrincipalRecord, KdcError> {
        match self.lookup(name).await? {
            Some(record) if record.is_service => Ok(record),
            Some(_) => Err(KdcError::ServerUnknown),
            None if name.eq_ignore_case(
                &PrincipalName::kadmin_changepw(&self.config.realm).with_realm(&name.realm),
            ) =>
            {
                let krbtgt = self
                    .lookup(&PrincipalName::krbtgt(&self.config.realm))
                    .await?
                    .ok_or_else(|| KdcError::Internal("no krbtgt principal".into()))?;
                kpasswd::builtin_changepw(&self.config.realm, &krbtgt)
            }
            None => Err(KdcError::ServerUnknown),
        }
    }

    fn check_realm(&self, realm: &GeneralString) -> Result<(), KdcError> {
        if codec::realm_string(realm)?.eq_ignore_ascii_case(&self.config.realm) {
            Ok(())
        } else {
            Err(KdcError::WrongRealm)
        }
    }
}

/// Maps a replay-cache refusal: a replay is KRB_AP_ERR_REPEAT, a full cache a retryable
/// KRB_ERR_GENERIC (the cache never forgets a live entry to make room, see `replay`).
fn replay_error(e: replay::ReplayError) -> KdcError {
    match e {
        replay::ReplayError::Replayed => KdcError::Repeat,
        replay::ReplayError::Full => {
            tracing::warn!("replay cache full: request refused (raise [kdc] replay_cache_size)");
            KdcError::ReplayCacheFull
        }
        // Fail closed: an authenticator that cannot be checked is not accepted, and it is
        // not a replay either (KRB_AP_ERR_REPEAT would be a lie): KRB_ERR_GENERIC.
        replay::ReplayError::Unavailable => {
            KdcError::Internal("shared replay cache unreachable".into())
        }
    }
}

/// RFC 4120 §5.4.1: pvno is 5 and msg-type matches the message.
fn check_header(pvno: &Integer, msg_type: &Integer, expected: i64) -> Result<(), KdcError> {
    if *pvno != Integer::from(5) {
        return Err(KdcError::BadProtocolVersion);
    }
    if *msg_type != Integer::from(expected) {
        return Err(KdcError::MessageType);
    }
    Ok(())
}

/// Disabled, expired and locked-out accounts get no tickets (RFC 4120 §7.5.9
/// KDC_ERR_CLIENT_REVOKED).
fn check_account(record: &PrincipalRecord, now: SystemTime) -> Result<(), KdcError> {
    if record.disabled || record.locked || record.expires.is_some_and(|t| t <= now) {
        return Err(KdcError::ClientRevoked);
    }
    Ok(())
}

/// Decodes and serves one KDC message.
async fn handle_kdc(
    state: &KdcState,
    message: &[u8],
    peer: Option<SocketAddr>,
    now: SystemTime,
    rng: &mut (impl RngCore + CryptoRng + Send),
) -> Option<Reply> {
    if !codec::looks_like_kdc_request(message) {
        return None;
    }
    let mut request = "AS";
    // Set by the handlers once a FAST armor key is established: later errors go inside it.
    let mut armor: Option<fast::Armor> = None;
    let (result, ctx) = match codec::decode_request(message) {
        Err(e) => (Err(e), ErrorContext::default()),
        Ok(KdcRequest::As(req)) => {
            let ctx = context(&req.0.req_body);
            let result = match codec::raw_req_body(message) {
                Ok(raw_body) => as_req::handle(state, &req, raw_body, now, rng, &mut armor)
                    .await
                    .map(|bytes| Reply {
                        bytes,
                        replay: None,
                        cross: None,
                    }),
                Err(e) => Err(e),
            };
            (result, ctx)
        }
        Ok(KdcRequest::Tgs { req, raw_body }) => {
            request = "TGS";
            let ctx = context(&req.0.req_body);
            (
                tgs_req::handle(state, &req, &raw_body, now, rng, &mut armor).await,
                ctx,
            )
        }
    };
    if let Some(observer) = &state.observer {
        let name = |n: &Option<rasn_kerberos::PrincipalName>| {
            n.as_ref()
                .map(|n| {
                    n.string
                        .iter()
                        .map(|c| codec::realm_string(c).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .unwrap_or_default()
        };
        let cross_realm = match &result {
            Ok(reply) => reply.cross.clone(),
            Err(KdcError::CrossRealm(r)) => Some(r.info.clone()),
            Err(_) => None,
        };
        observer.observe(KdcEvent {
            request,
            client: match (&cross_realm, &ctx.cname, &ctx.crealm) {
                (Some(c), _, _) if !c.client.is_empty() => c.client.clone(),
                (_, Some(_), Some(realm)) => format!("{}@{realm}", name(&ctx.cname)),
                _ => name(&ctx.cname),
            },
            cross_realm,
            service: name(&ctx.sname),
            peer,
            error_code: result.as_ref().err().map(|e| e.code()),
            reason: result.as_ref().err().map(|e| e.to_string()),
        });
    }
    match (result, armor) {
        (Ok(reply), _) => Some(reply),
        (Err(err), Some(armor)) => fast_error_reply(state, &err, &armor, &ctx, now),
        (Err(err), None) => error_reply(state, &err, &ctx, now),
    }
}

/// An error inside FAST (RFC 6113 §5.4.4).
fn fast_error_reply(
    state: &KdcState,
    err: &KdcError,
    armor: &fast::Armor,
    ctx: &ErrorContext,
    now: SystemTime,
) -> Option<Reply> {
    tracing::debug!(target: "kdc", error = %err, code = err.code(), "request refused (FAST)");
    let method_data = match err {
        KdcError::PreauthRequired(method_data) => Some(method_data.as_slice()),
        _ => None,
    };
    let message = error::krb_error_message(err, &state.config.realm, ctx, now);
    match fast::armored_error(armor, message, method_data) {
        Ok(bytes) => Some(Reply {
            bytes,
            replay: None,
            cross: None,
        }),
        Err(e) => {
            tracing::warn!(target: "kdc", error = %e, "FAST KRB-ERROR could not be built");
            error_reply(state, err, ctx, now)
        }
    }
}

fn context(body: &rasn_kerberos::KdcReqBody) -> ErrorContext {
    ErrorContext {
        cname: body.cname.clone(),
        crealm: codec::realm_string(&body.realm).ok(),
        sname: body.sname.clone(),
    }
}

fn error_reply(
    state: &KdcState,
    err: &KdcError,
    ctx: &ErrorContext,
    now: SystemTime,
) -> Option<Reply> {
    if err.is_internal() {
        tracing::warn!(target: "kdc", error = %err, "request failed");
    } else {
        tracing::debug!(target: "kdc", error = %err, code = err.code(), "request refused");
    }
    match error::krb_error(err, &state.config.realm, ctx, now) {
        Ok(bytes) => Some(Reply {
            bytes,
            replay: None,
            cross: None,
        }),
        Err(e) => {
            tracing::warn!(target: "kdc", error = %e, "KRB-ERROR could not be encoded");
            None
        }
    }
}

async fn dispatch(
    state: &KdcState,
    service: Service,
    message: &[u8],
    local: SocketAddr,
    peer: SocketAddr,
) -> Option<Reply> {
    // The one clock read per request (handlers take `now`).
    let now = SystemTime::now();
    let mut rng = rand::rngs::OsRng;
    match service {
        Service::Kdc => handle_kdc(state, message, Some(peer), now, &mut rng).await,
        Service::Kpasswd => kpasswd::handle(state, message, local, now, &mut rng).await,
    }
}

/// Binds UDP and TCP on the same address; with port 0, retries until a port is free for both.
async fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener, SocketAddr)> {
    if addr.port() != 0 {
        let tcp = TcpListener::bind(addr).await?;
        let udp = UdpSocket::bind(addr).await?;
        let local = tcp.local_addr()?;
        return Ok((udp, tcp, local));
    }
    let mut last_error = None;
    for _ in 0..32 {
        let tcp = TcpListener::bind(addr).await?;
        let local = tcp.local_addr()?;
        match UdpSocket::bind(local).await {
            Ok(udp) => return Ok((udp, tcp, local)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no free port for UDP and TCP")))
}

async fn udp_loop(
    state: Arc<KdcState>,
    socket: Arc<UdpSocket>,
    service: Service,
) -> io::Result<()> {
    let local = socket.local_addr()?;
    let permits = Arc::new(Semaphore::new(state.config.max_in_flight));
    let mut tasks = JoinSet::new();
    // One spare byte detects datagrams larger than max_message (they are truncated by recv).
    let mut buf = vec![0u8; state.config.max_message + 1];
    loop {
        while tasks.try_join_next().is_some() {}
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                tracing::debug!(target: "kdc", error = %e, "UDP receive failed");
                continue;
            }
        };
        if len > state.config.max_message {
            continue;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(target: "kdc", "too many UDP requests in flight; dropping");
            continue;
        };
        let message = buf.get(..len).unwrap_or_default().to_vec();
        let (state, socket) = (state.clone(), socket.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let Some(mut reply) = dispatch(&state, service, &message, local, peer).await else {
                return;
            };
            if matches!(service, Service::Kdc) && reply.bytes.len() > state.config.udp_reply_limit {
                // RFC 4120 §7.2.1: the client retries over TCP with the same authenticator.
                if let Some(key) = &reply.replay {
                    state.replay.forget(key).await;
                }
                let Some(too_big) = error_reply(
                    &state,
                    &KdcError::ResponseTooBig,
                    &ErrorContext::default(),
                    SystemTime::now(),
                ) else {
                    return;
                };
                reply = too_big;
            }
            if let Err(e) = socket.send_to(&reply.bytes, peer).await {
                tracing::debug!(target: "kdc", error = %e, %peer, "UDP send failed");
            }
        });
    }
}

async fn tcp_loop(state: Arc<KdcState>, listener: TcpListener, service: Service) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(state.config.max_in_flight));
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Transient (EMFILE, ECONNABORTED): back off briefly instead of spinning.
                tracing::warn!(target: "kdc", error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(target: "kdc", %peer, "too many TCP connections; dropping");
            continue;
        };
        let state = state.clone();
        tasks.spawn(async move {
            let _permit = permit;
            if let Err(e) = tcp_connection(&state, stream, service, peer).await {
                tracing::debug!(target: "kdc", error = %e, %peer, "TCP connection ended");
            }
        });
    }
}

/// RFC 4120 §7.2.2: each request and reply is preceded by a 4-octet record mark.
async fn tcp_connection(
    state: &KdcState,
    mut stream: TcpStream,
    service: Service,
    peer: SocketAddr,
) -> io::Result<()> {
    let local = stream.local_addr()?;
    let timeout = state.config.tcp_timeout;
    loop {
        let mut header = [0u8; 4];
        match tokio::time::timeout(timeout, stream.read_exact(&mut header)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()), // idle timeout
        }
        let len = match codec::record_length(header, state.config.max_message) {
            Ok(len) => len,
            Err(e) => {
                // RFC 4120 §7.2.2: reserved bit or oversize record → KRB-ERROR and close.
                if let (Service::Kdc, Some(reply)) = (
                    service,
                    error_reply(state, &e, &ErrorContext::default(), SystemTime::now()),
                ) {
                    let _ = tokio::time::timeout(
                        timeout,
                        stream.write_all(&codec::frame(&reply.bytes)),
                    )
                    .await;
                }
                return Ok(());
            }
        };
        let mut message = vec![0u8; len];
        match tokio::time::timeout(timeout, stream.read_exact(&mut message)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        }
        let Some(reply) = dispatch(state, service, &message, local, peer).await else {
            return Ok(());
        };
        match tokio::time::timeout(timeout, stream.write_all(&codec::frame(&reply.bytes))).await {
            Ok(result) => result?,
            Err(_) => return Ok(()),
        }
    }
}
