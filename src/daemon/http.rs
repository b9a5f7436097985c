//! The metrics endpoint (`[metrics] listen`): `GET /metrics` in the Prometheus text format
//! and `GET /healthz`, over HTTP/1.1 (hyper).
//! May import: `directory`, `store`, `metrics`. Invariants: a scrape reads the store through
//! short read transactions only (usage counters, file size); every connection is bounded in
//! time; the endpoint stops with the daemon.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::directory::Directory;
use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::store::Store;

/// What the endpoint reads.
pub struct Endpoint {
    /// the directory (usage, health probe)
    pub dir: Arc<Directory>,
    /// the store (file size)
    pub store: Store,
    /// the registry
    pub metrics: Arc<Metrics>,
    /// the tier's user cap
    pub users_limit: Option<u64>,
    /// the tier's object cap
    pub objects_limit: u64,
    /// true while the LDAP (and KDC) listeners accept connections
    pub listeners_up: Arc<AtomicBool>,
}

/// Serves HTTP on `listener` until `stop` changes.
pub async fn serve(listener: TcpListener, ep: Arc<Endpoint>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed; backing off");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ep = ep.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let ep = ep.clone();
                async move { Ok::<_, Infallible>(handle(&ep, req).await) }
            });
            let conn = http1::Builder::new()
                .header_read_timeout(Duration::from_secs(10))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        });
    }
}

async fn handle(ep: &Endpoint, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match req.uri().path() {
        "/metrics" => {
            match ep.dir.usage().await {
                Ok(u) => {
                    let size = ep.store.file_size().unwrap_or(0);
                    ep.metrics.set_usage(
                        u.users,
                        u.objects,
                        ep.users_limit,
                        ep.objects_limit,
                        size,
                    );
                }
                Err(e) => tracing::warn!(error = %e, "metrics: cannot read usage"),
            }
            let mut r = Response::new(Full::new(Bytes::from(ep.metrics.encode())));
            if let Ok(v) = hyper::header::HeaderValue::from_str(CONTENT_TYPE) {
                r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
            }
            r
        }
        "/healthz" => match health(ep).await {
            Ok(()) => text(StatusCode::OK, "ok\n"),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("{why}\n")),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics or /healthz\n",
        ),
    }
}

/// Ok when the store answers a read and the listeners are up; else the reason.
async fn health(ep: &Endpoint) -> Result<(), String> {
    if !ep.listeners_up.load(Ordering::Relaxed) {
        return Err("listeners are not accepting connections (starting or shutting down)".into());
    }
    match tokio::time::timeout(HEALTH_TIMEOUT, ep.dir.usn()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("store is not readable: {e}")),
        Err(_) => Err(format!(
            "store did not answer a read within {} s",
            HEALTH_TIMEOUT.as_secs()
        )),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
