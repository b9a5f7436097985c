//! Accept loops: a connection cap, accept-error backoff, one task per connection, and the
//! TLS handshake (with a timeout) for implicit-TLS listeners.
//! May import: `ldap`. Invariant: a connection over the cap is closed at once and never
//! reaches the protocol code; accept errors (EMFILE) back off instead of spinning.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::ldap::{self, Shared};

/// Accept loop for one LDAP (`implicit_tls = false`) or LDAPS listener.
pub async fn ldap_accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    cap: (usize, &'static str),
    implicit_tls: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; backing off");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = cap.0, set_by = cap.1, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _open = shared.metrics.connection_opened();
            if implicit_tls {
                serve_tls(shared, stream, peer, shutdown).await;
            } else {
                ldap::serve(shared, stream, peer, false, shutdown).await;
            }
        });
    }
}

async fn serve_tls(
    shared: Arc<Shared>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) {
    let Some(acceptor) = shared.tls.as_ref().and_then(|t| t()) else {
        return;
    };
    match tokio::time::timeout(shared.limits.handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => ldap::serve(shared, tls, peer, true, shutdown).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}
