//! LDAP front-end (slapd's "frontend"): LDAP PDUs in, `directory` calls, LDAP PDUs out.
//! May import: `directory`, `model`, `backend::Scope` and `config::CleartextBinds` (value
//! types), the LDAP codec below, and the leaves `audit` and `metrics` (through `observe`).
//! Must not import: `store`, `kdc`.
//! Invariant: only the connection loop in this file writes to the socket; operations run
//! concurrently (up to a per-connection cap) and hand their responses to the loop.

pub mod cldap;
pub mod codec;
pub mod config_nc;
pub mod controls;
pub mod convert;
pub mod filter_text;
pub mod netlogon;
pub mod observe;
pub mod ops;
pub mod proto;
pub mod relay;
pub mod request;
pub mod result;
pub mod rootdse;
pub mod sasl;
pub mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{Framed, FramedParts};

use crate::directory::Directory;
use codec::{LdapCodec, Undecodable};
use proto::{LdapMessage, ProtocolOp, ResultCode};
use request::Request;
use session::Session;

/// Where the current TLS acceptor comes from (swapped on certificate reload).
pub type TlsSource = Arc<dyn Fn() -> Option<TlsAcceptor> + Send + Sync>;

/// Per-connection limits.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// largest PDU accepted
    pub max_pdu: usize,
    /// operations in flight per connection
    pub max_ops: usize,
    /// idle connections close after this
    pub idle_timeout: Duration,
    /// a write taking longer than this closes the connection
    pub write_timeout: Duration,
    /// a TLS handshake taking longer than this closes the connection
    pub handshake_timeout: Duration,
}

/// What every connection shares.
pub struct Shared {
    /// the directory core
    pub dir: Arc<Directory>,
    /// limits
    pub limits: ConnLimits,
    /// TLS for StartTLS and LDAPS
    pub tls: Option<TlsSource>,
    /// the audit stream (binds, writes, password changes, limit refusals)
    pub audit: crate::audit::Audit,
    /// operation, bind and connection metrics
    pub metrics: Arc<crate::metrics::Metrics>,
    /// where passwords may be sent without TLS (`[ldap] cleartext_binds`)
    pub cleartext_binds: crate::config::CleartextBinds,
    /// connections of this listener are global catalog sessions (`[ldap] gc_listen`): a
    /// read-only view of the domain whose root search base `""` covers the domain NC
    pub global_catalog: bool,
}

enum Next<S> {
    Close,
    StartTls(S),
}

/// Serves one accepted connection until it closes. `secure` is true for LDAPS (the TLS
/// handshake already happened).
pub async fn serve<S>(
    shared: Arc<Shared>,
    io: S,
    peer: SocketAddr,
    secure: bool,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut session = Session::new(peer, secure, shared.dir.cursors());
    session.cleartext_allowed = shared.cleartext_binds.allows(peer.ip());
    session.global_catalog = shared.global_catalog;
    session.relay = shared.dir.open_relay();
    match run(&shared, io, &mut session, &mut shutdown).await {
        Ok(Next::Close) => {}
        Ok(Next::StartTls(io)) => {
            let Some(acceptor) = shared.tls.as_ref().and_then(|t| t()) else {
                return;
            };
            match timeout(shared.limits.handshake_timeout, acceptor.accept(io)).await {
                Ok(Ok(tls)) => {
                    session.secure = true;
                    if let Err(e) = run(&shared, tls, &mut session, &mut shutdown).await {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "StartTLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "StartTLS handshake timed out"),
            }
        }
        Err(e) => tracing::debug!(%peer, error = %e, "connection ended"),
    }
}

struct Conn<S> {
    framed: Framed<S, sasl::LayeredCodec>,
    tasks: JoinSet<()>,
    inflight: HashMap<u32, AbortHandle>,
    by_task: HashMap<tokio::task::Id, u32>,
    tx: mpsc::Sender<Vec<LdapMessage>>,
    rx: mpsc::Receiver<Vec<LdapMessage>>,
    write_timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn write(&mut self, msgs: Vec<LdapMessage>) -> std::io::Result<()> {
        let framed = &mut self.framed;
        let fut = async {
            for m in msgs {
                SinkExt::<LdapMessage>::feed(framed, m).await?;
            }
            SinkExt::<LdapMessage>::flush(framed).await
        };
        match timeout(self.write_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "write timed out",
            )),
        }
    }

    fn reap(&mut self, id: tokio::task::Id) {
        if let Some(msgid) = self.by_task.remove(&id) {
            self.inflight.remove(&msgid);
        }
    }

    /// Waits for every operation in flight, writing their responses.
    async fn drain(&mut self) -> std::io::Result<()> {
        while !self.tasks.is_empty() {
            tokio::select! {
                Some(msgs) = self.rx.recv() => self.write(msgs).await?,
                Some(res) = self.tasks.join_next_with_id() => {
                    if let Ok((id, ())) = res { self.reap(id) } else if let Err(e) = res { self.reap(e.id()) }
                }
            }
        }
        while let Ok(msgs) = self.rx.try_recv() {
            self.write(msgs).await?;
        }
        Ok(())
    }
}

async fn run<S>(
    shared: &Arc<Shared>,
    io: S,
    session: &mut Session,
    shutdown: &mut watch::Receiver<bool>,
) -> std::io::Result<Next<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits;
    let (tx, rx) = mpsc::channel(limits.max_ops.max(1));
    let mut c = Conn {
        framed: Framed::new(io, sasl::LayeredCodec::new(LdapCodec::new(limits.max_pdu))),
        tasks: JoinSet::new(),
        inflight: HashMap::new(),
        by_task: HashMap::new(),
        tx,
        rx,
        write_timeout: limits.write_timeout,
    };
    let mut deadline = Instant::now() + limits.idle_timeout;
    // A SASL bind in progress (GSSAPI takes three round trips).
    let mut exchange: Option<sasl::Exchange> = None;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                c.drain().await?;
                let notice = codec::notice_of_disconnection(ResultCode::Unavailable, "server is shutting down");
                let _ = c.write(vec![notice]).await;
                return Ok(Next::Close);
            }
            Some(msgs) = c.rx.recv() => c.write(msgs).await?,
            Some(res) = c.tasks.join_next_with_id(), if !c.tasks.is_empty() => {
                match res { Ok((id, ())) => c.reap(id), Err(e) => c.reap(e.id()) }
            }
            frame = c.framed.next(), if c.tasks.len() < limits.max_ops => {
                let frame = match frame {
                    None => {
                        c.tasks.abort_all();
                        return Ok(Next::Close);
                    }
                    Some(Err(e)) => {
                        // Framing failed (bad tag, indefinite or oversized length): the stream
                        // cannot be resynchronised, so say why and close (RFC 4511 §4.4.1).
                        tracing::info!(peer = %session.peer, error = %e, "closing connection: bad PDU framing");
                        c.drain().await?;
                        let _ = c.write(vec![codec::notice_of_disconnection(ResultCode::ProtocolError, &e.to_string())]).await;
                        return Ok(Next::Close);
                    }
                    Some(Ok(f)) => f,
                };
                deadline = Instant::now() + limits.idle_timeout;
                let msg = match codec::decode_message(&frame) {
                    Ok(m) => m,
                    Err(e) => match codec::undecodable(&frame, &e) {
                        Undecodable::Reply(m) => { c.write(vec![m]).await?; continue; }
                        Undecodable::Ignore => continue,
                        Undecodable::Disconnect(m) => {
                            tracing::info!(peer = %session.peer, error = %e, "closing connection: undecodable PDU");
                            c.drain().await?;
                            let _ = c.write(vec![m]).await;
                            return Ok(Next::Close);
                        }
                    },
                };
                let msgid = msg.message_id;
                let tag = msg.protocol_op.tag_byte();
                if !is_request(&msg.protocol_op) {
                    // RFC 4511 §4.4.1: a protocolOp that is not a request gets a Notice of
                    // Disconnection (there is no response type to answer it with).
                    tracing::info!(peer = %session.peer, tag, "closing connection: client sent a response op");
                    c.drain().await?;
                    let _ = c.write(vec![codec::notice_of_disconnection(ResultCode::ProtocolError, "protocolOp is not a request")]).await;
                    return Ok(Next::Close);
                }
                if let Some(relay) = session.relay.clone().filter(|_| relay::forwarded(&msg.protocol_op)) {
                    // A relaying backend (connector mode) answers this request itself.
                    let (shared, snapshot, tx) = (shared.clone(), session.clone(), c.tx.clone());
                    let handle = c.tasks.spawn(async move {
                        let now = SystemTime::now();
                        let rec = observe::describe_forwarded(&msg.protocol_op, &snapshot);
                        if rec.carries_password() && !snapshot.secure {
                            // DESIGN.md §5: passwords never cross the client's leg in the clear.
                            let res = proto::LdapResult::new(ResultCode::ConfidentialityRequired, "", "password changes need TLS (LDAPS or StartTLS)");
                            let out: Vec<LdapMessage> = ProtocolOp::response_to(tag, res).map(|op| vec![LdapMessage::new(msgid, op)]).unwrap_or_default();
                            observe::finish(&shared, &snapshot, rec, &out, now);
                            let _ = tx.send(out).await;
                            return;
                        }
                        if rec.is_write() && (shared.audit.refuses_writes() || snapshot.global_catalog) {
                            let out = observe::write_refusal(&snapshot, msgid, tag);
                            observe::finish(&shared, &snapshot, rec, &out, now);
                            let _ = tx.send(out).await;
                            return;
                        }
                        if let Err(e) = relay::check(&shared.dir, &relay, &snapshot.identity, &msg.protocol_op) {
                            // dird's read ACL, when the backend searches as its service account.
                            let out: Vec<LdapMessage> = ProtocolOp::response_to(tag, result::result(&e)).map(|op| vec![LdapMessage::new(msgid, op)]).unwrap_or_default();
                            observe::finish(&shared, &snapshot, rec, &out, now);
                            let _ = tx.send(out).await;
                            return;
                        }
                        let (ltx, mut lrx) = mpsc::channel::<Vec<LdapMessage>>(1);
                        let pass = async {
                            let mut last = Vec::new();
                            while let Some(batch) = lrx.recv().await {
                                last = batch.last().cloned().into_iter().collect::<Vec<_>>();
                                if tx.send(batch).await.is_err() { break; }
                            }
                            last
                        };
                        let (served, last) = tokio::join!(relay::forward(&shared.dir, &relay, msg, ltx), pass);
                        observe::finish_forwarded(&shared, &snapshot, rec, &last, now, served);
                    });
                    c.by_task.insert(handle.id(), msgid);
                    c.inflight.insert(msgid, handle);
                    continue;
                }
                let controls = match request::controls(&msg) {
                    Ok(ctl) => ctl,
                    Err(res) => {
                        if let Some(op) = ProtocolOp::response_to(tag, res) { c.write(vec![LdapMessage::new(msgid, op)]).await?; }
                        continue;
                    }
                };
                let req = match Request::try_from(msg.protocol_op) {
                    Ok(r) => r,
                    Err(res) => {
                        if let Some(op) = ProtocolOp::response_to(tag, res) { c.write(vec![LdapMessage::new(msgid, op)]).await?; }
                        continue;
                    }
                };
                match req {
                    Request::Unbind => {
                        c.tasks.abort_all();
                        return Ok(Next::Close);
                    }
                    Request::Abandon(id) => {
                        if let Some(h) = c.inflight.remove(&id) { h.abort(); }
                        if let Some(relay) = session.relay.clone() {
                            tokio::spawn(async move { relay.abandon(id).await });
                        }
                    }
                    Request::Bind(mut b) => {
                        b.ppolicy = controls.ppolicy;
                        // RFC 4511 §4.2.1: operations in progress complete before the bind.
                        c.drain().await?;
                        let in_progress = exchange.take();
                        if let request::BindAuth::Sasl(mech, creds) = &b.auth {
                            if sasl::supports(mech) && b.version == 3 {
                                let (started, info) = (Instant::now(), observe::bind_info(&b));
                                let step = sasl::step(&shared.dir, mech, creds, in_progress, session.secure, limits.max_pdu, SystemTime::now()).await;
                                // RFC 4513 §5.2.1.2: the connection is anonymous until the bind completes.
                                session.identity = Default::default();
                                let reply = |res: proto::LdapResult, creds: Option<Vec<u8>>| vec![LdapMessage::new(msgid, ProtocolOp::BindResponse(proto::BindResponse::new(res, creds)))];
                                match step {
                                    sasl::Step::Continue(token, next) => {
                                        exchange = Some(next);
                                        c.write(reply(proto::LdapResult::new(ResultCode::SaslBindInProgress, "", ""), Some(token))).await?;
                                    }
                                    sasl::Step::Done(identity, creds, layer) => {
                                        session.identity = identity;
                                        let out = reply(proto::LdapResult::success(), creds);
                                        observe::bind(shared, session, info, &out, started.into_std(), SystemTime::now());
                                        c.write(out).await?;
                                        if let Some(layer) = layer {
                                            // RFC 4752 §3.3: the layer takes effect after the success response.
                                            c.framed.codec_mut().install(layer);
                                        }
                                    }
                                    sasl::Step::Failed(e) => {
                                        let out = reply(result::result(&e), None);
                                        observe::bind(shared, session, info, &out, started.into_std(), SystemTime::now());
                                        c.write(out).await?;
                                    }
                                }
                                continue;
                            }
                        }
                        let (started, info) = (Instant::now(), observe::bind_info(&b));
                        let (out, identity) = ops::bind(&shared.dir, session.relay.as_ref(), msgid, b, session.may_send_password()).await;
                        session.identity = identity.unwrap_or_default();
                        observe::bind(shared, session, info, &out, started.into_std(), SystemTime::now());
                        c.write(out).await?;
                    }
                    Request::Extended { ref name, .. } if ops::is_start_tls(name) => {
                        c.drain().await?;
                        if session.secure {
                            c.write(vec![ops::start_tls_refusal(msgid, ResultCode::OperationsError, "TLS is already active")]).await?;
                            continue;
                        }
                        if shared.tls.as_ref().and_then(|t| t()).is_none() {
                            c.write(vec![ops::start_tls_refusal(msgid, ResultCode::Unavailable, "TLS is not configured")]).await?;
                            continue;
                        }
                        c.write(vec![ops::start_tls_refusal(msgid, ResultCode::Success, "")]).await?;
                        let FramedParts { io, read_buf, .. } = c.framed.into_parts();
                        if !read_buf.is_empty() {
                            // RFC 4511 §4.14.1: nothing may follow StartTLS before the handshake.
                            return Ok(Next::Close);
                        }
                        return Ok(Next::StartTls(io));
                    }
                    other => {
                        let shared = shared.clone();
                        let snapshot = session.clone();
                        let tx = c.tx.clone();
                        let handle = c.tasks.spawn(async move {
                            let now = SystemTime::now();
                            let rec = observe::describe(&other, &snapshot);
                            let out = if rec.is_write() && (shared.audit.refuses_writes() || snapshot.global_catalog) {
                                observe::write_refusal(&snapshot, msgid, tag)
                            } else {
                                let ctx = ops::OpCtx { dir: &shared.dir, session: &snapshot, msgid, controls, now };
                                ops::dispatch_to(ctx, other, Some(&tx)).await
                            };
                            observe::finish(&shared, &snapshot, rec, &out, now);
                            let _ = tx.send(out).await;
                        });
                        c.by_task.insert(handle.id(), msgid);
                        c.inflight.insert(msgid, handle);
                    }
                }
            }
            _ = sleep_until(deadline), if c.tasks.is_empty() => {
                tracing::debug!(peer = %session.peer, "closing idle connection");
                let _ = c.write(vec![codec::notice_of_disconnection(ResultCode::Unavailable, "idle timeout")]).await;
                return Ok(Next::Close);
            }
        }
    }
}

/// Whether a decoded protocolOp is one a client may send (RFC 4511 §4.1.1).
fn is_request(op: &ProtocolOp) -> bool {
    match op {
        ProtocolOp::BindRequest(_)
        | ProtocolOp::UnbindRequest(_)
        | ProtocolOp::SearchRequest(_)
        | ProtocolOp::ModifyRequest(_)
        | ProtocolOp::AddRequest(_)
        | ProtocolOp::DelRequest(_)
        | ProtocolOp::ModifyDnRequest(_)
        | ProtocolOp::CompareRequest(_)
        | ProtocolOp::AbandonRequest(_)
        | ProtocolOp::ExtendedRequest(_) => true,
        ProtocolOp::BindResponse(_)
        | ProtocolOp::SearchResultEntry(_)
        | ProtocolOp::SearchResultDone(_)
        | ProtocolOp::SearchResultReference(_)
        | ProtocolOp::ModifyResponse(_)
        | ProtocolOp::AddResponse(_)
        | ProtocolOp::DelResponse(_)
        | ProtocolOp::ModifyDnResponse(_)
        | ProtocolOp::CompareResponse(_)
        | ProtocolOp::ExtendedResponse(_)
        | ProtocolOp::IntermediateResponse(_) => false,
    }
}
