//! The NetLogon ping's answer (over TCP LDAP, from `ops::search`) and CLDAP (RFC 1798 as AD
//! uses it, MS-ADTS §6.3.3): one LDAP search request per UDP datagram, answered with the
//! SearchResultEntry and SearchResultDone in one datagram.
//! May import: `directory`, `model`, the LDAP codec, `ldap::netlogon`.
//! Invariant: a datagram that is not a NetLogon ping gets no answer (CLDAP serves nothing
//! else), and nothing in a datagram can make the loop fail or allocate beyond one reply.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::directory::Directory;
use crate::ldap::codec::{decode_message, encode_message};
use crate::ldap::netlogon::{DcInfo, Query};
use crate::ldap::proto::{
    LdapMessage, LdapResult, LdapString, PartialAttribute, ProtocolOp, SearchResultEntry,
};
use crate::ldap::request::Request;

/// The largest CLDAP request read (a ping is about 100 bytes).
const MAX_DATAGRAM: usize = 4096;

/// The responses to a NetLogon ping: the rootDSE entry with only `Netlogon` (when the
/// query is for this domain and understands the _EX form), then success.
pub async fn ping_answer(
    dir: &Directory,
    msgid: u32,
    query: &Query,
    address: Option<Ipv4Addr>,
) -> Vec<LdapMessage> {
    let info = dc_info(dir, address).await;
    let mut out = Vec::with_capacity(2);
    if info.answers(query) {
        let entry = SearchResultEntry {
            object_name: LdapString(String::new()),
            attributes: vec![PartialAttribute::new(
                "Netlogon",
                vec![info.response_ex(query)],
            )],
        };
        out.push(LdapMessage::new(
            msgid,
            ProtocolOp::SearchResultEntry(entry),
        ));
    }
    out.push(LdapMessage::new(
        msgid,
        ProtocolOp::SearchResultDone(LdapResult::success()),
    ));
    out
}

/// The answer to one CLDAP datagram, or `None` when it gets none.
pub async fn answer_datagram(
    dir: &Directory,
    datagram: &[u8],
    local: Option<Ipv4Addr>,
) -> Option<Vec<u8>> {
    let msg = decode_message(datagram).ok()?;
    let msgid = msg.message_id;
    let Ok(Request::Search(req)) = Request::try_from(msg.protocol_op) else {
        return None;
    };
    if !req.base.is_root() {
        return None;
    }
    let query = Query::from_filter(&req.filter)?;
    let mut out = Vec::new();
    for m in ping_answer(dir, msgid, &query, local).await {
        out.extend_from_slice(&encode_message(&m).ok()?);
    }
    Some(out)
}

/// Serves CLDAP on `socket` until `stop` turns true.
pub async fn serve(dir: Arc<Directory>, socket: UdpSocket, mut stop: watch::Receiver<bool>) {
    let local = match socket.local_addr() {
        Ok(SocketAddr::V4(a)) if !a.ip().is_unspecified() => Some(*a.ip()),
        _ => None,
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, peer) = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "cldap: receive failed");
                    continue;
                }
            },
        };
        let local = local.or(match peer.ip() {
            IpAddr::V4(v4) if v4.is_loopback() => Some(Ipv4Addr::LOCALHOST),
            _ => None,
        });
        if let Some(reply) = answer_datagram(&dir, &buf[..n], local).await {
            if let Err(e) = socket.send_to(&reply, peer).await {
                tracing::debug!(%peer, error = %e, "cldap: send failed");
            }
        }
    }
}

/// This DC as the NetLogon response describes it.
async fn dc_info(dir: &Directory, address: Option<Ipv4Addr>) -> DcInfo {
    let d = dir.domain();
    let guid = dir.domain_guid().await;
    let mut domain_guid = [0u8; 16];
    if let Some(g) = guid.filter(|g| g.len() == 16) {
        domain_guid.copy_from_slice(&g);
    }
    DcInfo {
        domain_guid,
        dns_domain: d.name.clone(),
        dns_host: d.host.clone(),
        netbios_domain: d.netbios.clone(),
        netbios_host: d
            .host
            .split('.')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase(),
        address,
        global_catalog: dir.global_catalog(),
    }
}
