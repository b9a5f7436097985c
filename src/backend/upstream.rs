//! The LDAP client to the upstream Active Directory domain controllers (connector mode,
//! issue 12): TLS connections (LDAPS, or StartTLS on ldap://) verified against `ca_file`,
//! failover in configured order with a per-upstream health mark, and one multiplexed
//! connection object per client session (`UpstreamConn`) that allocates its own message ids.
//!
//! Why dird's own codec (`ldap::proto`, `ldap::codec`) rather than the `ldap3` crate: the
//! connector relays client PDUs (controls, paging cookies, referrals, diagnostics) unchanged,
//! so it needs the same typed messages the front-end decodes, not a second, lossy
//! representation; and the codec is pure data (no I/O), so using it from `backend` adds no
//! dependency on the LDAP front-end's behaviour. The codec enforces the same PDU size cap and
//! nesting bound on upstream input as on client input (the upstream is a network peer too).
//!
//! Invariants: no lock is held across `.await` (the pending-request map is a std mutex used
//! for map operations only); every upstream wait is bounded by `connect_timeout` or
//! `op_timeout`; memory per connection is bounded (per-request channels are bounded, so a slow
//! client slows its own upstream connection, never grows a buffer).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_util::codec::Framed;

use crate::config::UpstreamUrl;
use crate::ldap::codec::{decode_message, LdapCodec};
use crate::ldap::proto::{
    Control, DerefAliases, ExtendedRequest, Filter, LdapMessage, ProtocolOp, ResultCode,
    SearchRequest, SearchScope, MAX_INT,
};

/// The StartTLS extended operation (RFC 4511 §4.14).
const START_TLS: &str = "1.3.6.1.4.1.1466.20037";
/// Largest PDU accepted from an upstream (AD's own MaxReceiveBuffer is 10 MB).
const MAX_UPSTREAM_PDU: usize = 16 * 1024 * 1024;
/// Responses buffered per request before the upstream reader waits for the client.
const PER_REQUEST_QUEUE: usize = 256;
/// Requests queued for the upstream writer.
const WRITE_QUEUE: usize = 64;
/// How long a failed upstream is skipped before it is tried again.
const DOWN_FOR: Duration = Duration::from_secs(5);

/// Why the upstream could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// no upstream could be reached within the connect budget
    #[error("no upstream domain controller is reachable: {0}")]
    Unreachable(String),
    /// the connection to the upstream broke or it stopped answering
    #[error("the upstream domain controller {0} went away")]
    Lost(String),
    /// the upstream took longer than op_timeout_ms
    #[error("the upstream domain controller {0} did not answer within op_timeout_ms")]
    Timeout(String),
    /// the service account could not be bound (`search_as = "service"`)
    #[error("{0}")]
    Service(String),
    /// every upstream connection of the pool is in use (`max_upstream_connections`)
    #[error("dird is busy: all {0} upstream connections (the tier's pool, connector.max_upstream_connections) are in use")]
    Busy(usize),
}

/// Connection settings shared by every session.
pub struct Upstreams {
    targets: Vec<UpstreamUrl>,
    /// `Some(t)`: skipped until `t` (the last attempt failed)
    down_until: Vec<Mutex<Option<Instant>>>,
    /// the last probe or connection attempt succeeded (health, for metrics)
    up: Vec<AtomicBool>,
    tls: TlsConnector,
    connect_timeout: Duration,
    op_timeout: Duration,
    /// one permit per open upstream connection (the tier's pool size)
    pool: Arc<tokio::sync::Semaphore>,
    pool_size: usize,
}

impl Upstreams {
    /// Settings for `targets`, verifying certificates against the PEM bundle `ca_file`, with
    /// at most `pool_size` upstream connections open at once.
    pub fn new(
        targets: Vec<UpstreamUrl>,
        ca_file: &std::path::Path,
        connect_timeout: Duration,
        op_timeout: Duration,
        pool_size: usize,
    ) -> anyhow::Result<Upstreams> {
        let mut roots = rustls::RootCertStore::empty();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
            .map_err(|e| {
                anyhow::anyhow!("connector.ca_file: cannot read {}: {e}", ca_file.display())
            })?
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("connector.ca_file: {}: {e}", ca_file.display()))?;
        for c in certs {
            roots.add(c).map_err(|e| {
                anyhow::anyhow!(
                    "connector.ca_file: {}: unusable certificate: {e}",
                    ca_file.display()
                )
            })?;
        }
        if roots.is_empty() {
            anyhow::bail!(
                "connector.ca_file: {} holds no PEM certificate",
                ca_file.display()
            );
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS client setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let down_until = targets.iter().map(|_| Mutex::new(None)).collect();
        let up = targets.iter().map(|_| AtomicBool::new(true)).collect();
        Ok(Upstreams {
            targets,
            down_until,
            up,
            tls: TlsConnector::from(Arc::new(config)),
            connect_timeout,
            op_timeout,
            pool: Arc::new(tokio::sync::Semaphore::new(pool_size)),
            pool_size,
        })
    }

    /// True if `host` (lower case) is one of the upstream DCs' host names.
    pub fn is_upstream_host(&self, host: &str) -> bool {
        self.targets
            .iter()
            .any(|t| t.host.eq_ignore_ascii_case(host))
    }

    /// The per-operation timeout.
    pub fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    fn is_down(&self, i: usize, now: Instant) -> bool {
        self.down_until
            .get(i)
            .and_then(|m| m.lock().ok().and_then(|g| *g))
            .is_some_and(|t| t > now)
    }

    fn mark(&self, i: usize, up: bool) {
        if let Some(u) = self.up.get(i) {
            u.store(up, Ordering::SeqCst);
        }
        if let Some(Ok(mut g)) = self.down_until.get(i).map(|m| m.lock()) {
            *g = if up {
                None
            } else {
                Some(Instant::now() + DOWN_FOR)
            };
        }
    }

    /// Health of each upstream, in configured order: (url, whether the last health probe or
    /// connection attempt to it succeeded).
    pub fn health(&self) -> Vec<(String, bool)> {
        self.targets
            .iter()
            .zip(&self.up)
            .map(|(t, up)| (t.url.clone(), up.load(Ordering::SeqCst)))
            .collect()
    }

    /// A new TLS connection to the first upstream that answers, in configured order: those
    /// marked down are tried last. The whole attempt takes at most `connect_timeout`.
    pub async fn connect(&self) -> Result<UpstreamConn, UpstreamError> {
        let Ok(permit) = self.pool.clone().try_acquire_owned() else {
            tracing::warn!(
                pool = self.pool_size,
                "upstream connection pool exhausted; answering busy"
            );
            return Err(UpstreamError::Busy(self.pool_size));
        };
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let now = Instant::now();
        let mut order: Vec<usize> = (0..self.targets.len())
            .filter(|i| !self.is_down(*i, now))
            .collect();
        order.extend((0..self.targets.len()).filter(|i| self.is_down(*i, now)));
        let mut errors = Vec::new();
        for i in order {
            let Some(target) = self.targets.get(i) else {
                continue;
            };
            match tokio::time::timeout_at(deadline, self.connect_one(target)).await {
                Ok(Ok(stream)) => {
                    self.mark(i, true);
                    return Ok(UpstreamConn::start(stream, target.url.clone(), permit));
                }
                Ok(Err(e)) => {
                    tracing::warn!(upstream = %target.url, error = %e, "upstream connection failed");
                    self.mark(i, false);
                    errors.push(format!("{}: {e}", target.url));
                }
                Err(_) => {
                    tracing::warn!(upstream = %target.url, "upstream connection timed out");
                    self.mark(i, false);
                    errors.push(format!("{}: timed out (connect_timeout_ms)", target.url));
                    break;
                }
            }
        }
        Err(UpstreamError::Unreachable(errors.join("; ")))
    }

    /// The health check: every `every`, each upstream's rootDSE is read over a fresh
    /// connection (anonymously, as AD allows), and the upstream is marked up or down, so a
    /// failed DC is skipped until it answers again. Runs until the task is aborted.
    pub async fn probe_loop(self: Arc<Self>, every: Duration) {
        loop {
            for (i, t) in self.targets.iter().enumerate() {
                let ok = matches!(
                    tokio::time::timeout(self.connect_timeout + self.op_timeout, self.probe(t))
                        .await,
                    Ok(Ok(()))
                );
                if ok == self.is_down(i, Instant::now()) {
                    tracing::info!(upstream = %t.url, up = ok, "upstream health changed");
                }
                self.mark(i, ok);
            }
            tokio::time::sleep(every).await;
        }
    }

    async fn probe(&self, t: &UpstreamUrl) -> std::io::Result<()> {
        let stream = self.connect_one(t).await?;
        let mut framed = Framed::new(stream, LdapCodec::new(MAX_UPSTREAM_PDU));
        let req = LdapMessage::new(
            1,
            ProtocolOp::SearchRequest(SearchRequest {
                base_object: "".into(),
                scope: SearchScope::BaseObject,
                deref_aliases: DerefAliases::Never,
                size_limit: 1,
                time_limit: 0,
                types_only: false,
                filter: Filter::Present("objectClass".into()),
                attributes: vec!["1.1".into()],
            }),
        );
        framed.send(req).await?;
        while let Some(frame) = framed.next().await {
            let msg = decode_message(&frame?).map_err(|e| io_err(&e.to_string()))?;
            if let ProtocolOp::SearchResultDone(r) = msg.protocol_op {
                return if r.result_code == ResultCode::Success {
                    Ok(())
                } else {
                    Err(io_err("rootDSE search refused"))
                };
            }
        }
        Err(io_err("upstream closed the connection"))
    }

    async fn connect_one(&self, t: &UpstreamUrl) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = if t.addrs.is_empty() {
            TcpStream::connect((t.host.as_str(), t.port)).await?
        } else {
            // discovered by DNS SRV: the addresses the discovery resolved
            let addrs: Vec<std::net::SocketAddr> =
                t.addrs.iter().map(|ip| (*ip, t.port).into()).collect();
            TcpStream::connect(addrs.as_slice()).await?
        };
        let _ = tcp.set_nodelay(true);
        let name = match t.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(t.host.clone())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        };
        let tcp = if t.ldaps { tcp } else { start_tls(tcp).await? };
        self.tls.connect(name, tcp).await
    }
}

/// Sends StartTLS on a fresh plain connection and waits for its success.
async fn start_tls(tcp: TcpStream) -> std::io::Result<TcpStream> {
    let mut framed = Framed::new(tcp, LdapCodec::new(MAX_UPSTREAM_PDU));
    let req = LdapMessage::new(
        1,
        ProtocolOp::ExtendedRequest(ExtendedRequest::new(START_TLS, None)),
    );
    framed.send(req).await?;
    let frame = framed
        .next()
        .await
        .ok_or_else(|| io_err("upstream closed the connection during StartTLS"))??;
    let msg = decode_message(&frame).map_err(|e| io_err(&e.to_string()))?;
    match msg.protocol_op {
        ProtocolOp::ExtendedResponse(r) if r.result_code == ResultCode::Success => {}
        ProtocolOp::ExtendedResponse(r) => {
            return Err(io_err(&format!(
                "upstream refused StartTLS: {:?} {}",
                r.result_code,
                r.diagnostic_message.as_str()
            )))
        }
        _ => return Err(io_err("upstream sent no StartTLS response")),
    }
    let parts = framed.into_parts();
    if !parts.read_buf.is_empty() {
        return Err(io_err("upstream sent data before the TLS handshake"));
    }
    Ok(parts.io)
}

fn io_err(m: &str) -> std::io::Error {
    std::io::Error::other(m.to_string())
}

type Pending = Arc<Mutex<HashMap<u32, mpsc::Sender<LdapMessage>>>>;

/// One upstream connection, shared by the operations of one client session. Requests get
/// fresh upstream message ids; responses are routed back by id. Dropping the last handle
/// closes the connection.
pub struct UpstreamConn {
    url: String,
    writer: mpsc::Sender<LdapMessage>,
    pending: Pending,
    next_id: AtomicU32,
    alive: Arc<AtomicBool>,
    tasks: Vec<tokio::task::AbortHandle>,
    /// this connection's place in the pool, released when it closes
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for UpstreamConn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl std::fmt::Debug for UpstreamConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConn")
            .field("url", &self.url)
            .finish()
    }
}

/// The responses of one forwarded request, in order.
pub struct Responses {
    /// the upstream message id the request was sent with (for abandon)
    pub upstream_id: u32,
    rx: mpsc::Receiver<LdapMessage>,
    url: String,
    op_timeout: Duration,
}

impl Responses {
    /// The next response; `Ok(None)` after the final one.
    pub async fn next(&mut self) -> Result<Option<LdapMessage>, UpstreamError> {
        match tokio::time::timeout(self.op_timeout, self.rx.recv()).await {
            Ok(Some(m)) => Ok(Some(m)),
            Ok(None) => Err(UpstreamError::Lost(self.url.clone())),
            Err(_) => Err(UpstreamError::Timeout(self.url.clone())),
        }
    }
}

/// True for the response that ends a request (everything but entries, references and
/// intermediate responses).
pub fn is_final(op: &ProtocolOp) -> bool {
    !matches!(
        op,
        ProtocolOp::SearchResultEntry(_)
            | ProtocolOp::SearchResultReference(_)
            | ProtocolOp::IntermediateResponse(_)
    )
}

impl UpstreamConn {
    fn start(
        stream: TlsStream<TcpStream>,
        url: String,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> UpstreamConn {
        let framed = Framed::new(stream, LdapCodec::new(MAX_UPSTREAM_PDU));
        let (mut sink, mut source) = framed.split::<LdapMessage>();
        let (writer, mut queue) = mpsc::channel::<LdapMessage>(WRITE_QUEUE);
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let alive = Arc::new(AtomicBool::new(true));
        let write_task = {
            let alive = alive.clone();
            tokio::spawn(async move {
                while let Some(m) = queue.recv().await {
                    if sink.send(m).await.is_err() {
                        break;
                    }
                }
                alive.store(false, Ordering::SeqCst);
            })
        };
        let read_task = {
            let (pending, alive, url) = (pending.clone(), alive.clone(), url.clone());
            tokio::spawn(async move {
                while let Some(Ok(frame)) = source.next().await {
                    let msg = match decode_message(&frame) {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(upstream = %url, error = %e, "undecodable upstream PDU; closing");
                            break;
                        }
                    };
                    if msg.message_id == 0 {
                        // Notice of Disconnection (RFC 4511 §4.4.1): the upstream closes.
                        tracing::info!(upstream = %url, "upstream sent a notice of disconnection");
                        break;
                    }
                    let last = is_final(&msg.protocol_op);
                    let tx = {
                        let Ok(mut map) = pending.lock() else { break };
                        if last {
                            map.remove(&msg.message_id)
                        } else {
                            map.get(&msg.message_id).cloned()
                        }
                    };
                    if let Some(tx) = tx {
                        // A receiver that went away (abandoned) just drops the message.
                        let _ = tx.send(msg).await;
                    }
                }
                alive.store(false, Ordering::SeqCst);
                // Every request still waiting sees its channel close: `Lost`.
                if let Ok(mut map) = pending.lock() {
                    map.clear();
                }
            })
        };
        UpstreamConn {
            url,
            writer,
            pending,
            next_id: AtomicU32::new(1),
            alive,
            tasks: vec![write_task.abort_handle(), read_task.abort_handle()],
            _permit: permit,
        }
    }

    /// The upstream this connection reaches.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// False once the connection broke.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    fn fresh_id(&self) -> u32 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) % MAX_INT;
        id.max(1)
    }

    /// Sends a request (with a fresh upstream message id) and returns its responses.
    pub async fn request(
        &self,
        op: ProtocolOp,
        controls: Option<Vec<Control>>,
        op_timeout: Duration,
    ) -> Result<Responses, UpstreamError> {
        if !self.is_alive() {
            return Err(UpstreamError::Lost(self.url.clone()));
        }
        let id = self.fresh_id();
        let expects_reply = !matches!(
            op,
            ProtocolOp::AbandonRequest(_) | ProtocolOp::UnbindRequest(_)
        );
        let (tx, rx) = mpsc::channel(PER_REQUEST_QUEUE);
        if expects_reply {
            let Ok(mut map) = self.pending.lock() else {
                return Err(UpstreamError::Lost(self.url.clone()));
            };
            map.insert(id, tx);
        }
        let msg = LdapMessage {
            message_id: id,
            protocol_op: op,
            controls,
        };
        if tokio::time::timeout(op_timeout, self.writer.send(msg))
            .await
            .map_err(|_| UpstreamError::Timeout(self.url.clone()))?
            .is_err()
        {
            self.forget(id);
            return Err(UpstreamError::Lost(self.url.clone()));
        }
        Ok(Responses {
            upstream_id: id,
            rx,
            url: self.url.clone(),
            op_timeout,
        })
    }

    /// Stops routing responses of `upstream_id` (after an abandon or a timeout).
    pub fn forget(&self, upstream_id: u32) {
        if let Ok(mut map) = self.pending.lock() {
            map.remove(&upstream_id);
        }
    }
}
