//! Fuzz body (shared by `fuzz_targets/dc_locator.rs` and `tests/fuzz_smoke.rs`): the DC
//! locator's network inputs must never panic: a DNS message through the zone responder
//! (`dns::handle`, UDP and TCP size limits), and an LDAP PDU as a NetLogon ping (the
//! request filter parsed by `ldap::netlogon::Query`, the response encoded for it).

use dird::dns::{self, Zone};
use dird::ldap::codec::decode_message;
use dird::ldap::netlogon::{DcInfo, Query};
use dird::ldap::request::Request;

/// Runs the target on one input; panics on a bug.
pub fn run(data: &[u8]) {
    let zone = Zone {
        domain: "example.com".into(),
        host: "dc1.example.com".into(),
        addresses: vec![
            std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::Ipv6Addr::LOCALHOST.into(),
        ],
        site: "Default-First-Site-Name".into(),
        ldap_port: Some(389),
        kdc_port: Some(88),
        kpasswd_port: Some(464),
        gc_port: None,
        peers: Default::default(),
    };
    // A second DC (a cluster node, issue 17): its records are built from network-free data,
    // but every answer now walks the peer list too.
    zone.peers.set(vec![dns::zone::Peer {
        host: "dc2.example.com".into(),
        addresses: vec![std::net::Ipv4Addr::new(127, 0, 0, 2).into()],
        ldap_port: Some(389),
        kdc_port: Some(88),
        kpasswd_port: None,
        gc_port: Some(3268),
    }]);
    if let Some(reply) = dns::handle(&zone, data, Some(512)) {
        assert!(reply.len() <= 512, "UDP answer over 512 bytes");
    }
    let _ = dns::handle(&zone, data, None);
    if let Ok(msg) = decode_message(data) {
        if let Ok(Request::Search(req)) = Request::try_from(msg.protocol_op) {
            if let Some(q) = Query::from_filter(&req.filter) {
                let dc = DcInfo {
                    domain_guid: [7; 16],
                    dns_domain: "example.com".into(),
                    dns_host: "dc1.example.com".into(),
                    netbios_domain: "EXAMPLE".into(),
                    netbios_host: "DC1".into(),
                    address: Some(std::net::Ipv4Addr::LOCALHOST),
                    global_catalog: data.first().is_some_and(|b| b & 1 == 1),
                };
                if dc.answers(&q) {
                    let _ = dc.response_ex(&q);
                }
            }
        }
    }
}
