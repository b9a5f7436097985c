//! The domain's DNS responder (`[dns] listen`): authoritative answers for the records a
//! joining host looks up to find the DC (MS-ADTS §6.3.2), over UDP and TCP (RFC 1035 §4.2,
//! RFC 7766). Queries only: dynamic updates (RFC 2136, GSS-TSIG from sssd and `net ads`)
//! are REFUSED, other opcodes NOTIMP, names outside the zone REFUSED.
//! May import: `model` (nothing else: the daemon builds the `Zone` from the settings).
//! Invariant: only the loops in this file write to sockets; every input is bounded (one
//! question, 512-byte UDP answers, 64 KiB TCP messages, a TCP idle timeout).

pub mod message;
pub mod zone;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};

use message::{rcode, ParseError};
pub use zone::Zone;

/// The largest UDP answer without EDNS (RFC 1035 §4.2.1).
const UDP_MAX: usize = 512;
/// A TCP connection that sends nothing for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// TCP connections served at once.
const TCP_CONNECTIONS: usize = 64;

/// The answer to one message (`None`: no answer), with an optional size cap (UDP).
pub fn handle(zone: &Zone, msg: &[u8], max_len: Option<usize>) -> Option<Vec<u8>> {
    let req = match message::parse(msg) {
        Ok(r) => r,
        Err(ParseError::TooShort) => return None,
        Err(ParseError::Malformed { id, opcode }) => {
            let req = message::Request {
                id,
                opcode,
                recursion_desired: false,
                question: None,
            };
            return Some(message::response(&req, rcode::FORMERR, &[], &[], max_len));
        }
    };
    let code = match req.opcode {
        message::OPCODE_QUERY => None,
        // RFC 2136 UPDATE: dird's records follow its settings, not clients.
        5 => Some(rcode::REFUSED),
        _ => Some(rcode::NOTIMP),
    };
    if let Some(code) = code {
        let bare = message::Request {
            question: None,
            ..req
        };
        return Some(message::response(&bare, code, &[], &[], max_len));
    }
    let Some(q) = &req.question else {
        return Some(message::response(&req, rcode::FORMERR, &[], &[], max_len));
    };
    if q.qclass != 1 && q.qclass != 255 {
        return Some(message::response(&req, rcode::REFUSED, &[], &[], max_len));
    }
    let a = zone.answer(q);
    Some(message::response(
        &req,
        a.rcode,
        &a.answers,
        &a.authority,
        max_len,
    ))
}

/// Serves DNS over UDP on `socket` until `stop` turns true.
pub async fn serve_udp(zone: Arc<Zone>, socket: UdpSocket, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "dns: receive failed");
                    continue;
                }
            },
        };
        if let Some(reply) = handle(&zone, &buf[..n], Some(UDP_MAX)) {
            if let Err(e) = socket.send_to(&reply, peer).await {
                tracing::debug!(%peer, error = %e, "dns: send failed");
            }
        }
    }
}

/// Serves DNS over TCP on `listener` until `stop` turns true.
pub async fn serve_tcp(zone: Arc<Zone>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(TCP_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!(error = %e, "dns: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue; // too many connections: drop this one
        };
        let zone = zone.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = serve_connection(&zone, stream).await;
        });
    }
}

/// Messages with a two-byte length prefix (RFC 1035 §4.2.2) until the peer closes or idles.
async fn serve_connection(zone: &Zone, mut stream: TcpStream) -> std::io::Result<()> {
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut msg)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let Some(reply) = handle(zone, &msg, Some(usize::from(u16::MAX))) else {
            return Ok(());
        };
        let mut out = Vec::with_capacity(reply.len() + 2);
        out.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        out.extend_from_slice(&reply);
        stream.write_all(&out).await?;
    }
}
