//! The records of the domain's zone that locate the DC (MS-ADTS §6.3.2, RFC 2782): SRV for
//! LDAP, Kerberos and kpasswd (plain, `dc._msdcs`, per site), the DC's A/AAAA, the domain
//! name's A/AAAA, the PTR of the DC's addresses, and the zone's SOA/NS.
//! Pure: built from the settings, answers a question. Names outside the zone and its reverse
//! names are REFUSED (dird is no recursive resolver).
//!
//! Several DCs (issue 17): `Zone::peers` lists the other nodes of a cluster (fed from the node
//! registry, `cluster::nodes::feed_zone`, replaceable while serving); each is advertised like
//! this DC (its own SRV, A/AAAA and PTR records, and the domain name's A/AAAA), so a client
//! asking any node finds every node.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use crate::dns::message::{rcode, rtype, Data, Question, Record};

/// TTL of every record (AD's default for DC locator records).
const TTL: u32 = 600;

/// What the zone publishes.
#[derive(Debug, Clone)]
pub struct Zone {
    /// the domain, `example.com` (lower case)
    pub domain: String,
    /// the DC's name, `dc1.example.com` (lower case)
    pub host: String,
    /// the DC's addresses
    pub addresses: Vec<IpAddr>,
    /// the AD site name
    pub site: String,
    /// the LDAP port (None: no LDAP SRV records)
    pub ldap_port: Option<u16>,
    /// the Kerberos KDC port (None: no Kerberos SRV records)
    pub kdc_port: Option<u16>,
    /// the kpasswd port
    pub kpasswd_port: Option<u16>,
    /// the global catalog port
    pub gc_port: Option<u16>,
    /// the other DCs of the domain (a cluster's nodes; empty for a single node)
    pub peers: Peers,
}

/// Another DC the zone advertises beside this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// its name, `dc2.example.com` (lower case)
    pub host: String,
    /// its addresses
    pub addresses: Vec<IpAddr>,
    /// its LDAP port
    pub ldap_port: Option<u16>,
    /// its Kerberos KDC port
    pub kdc_port: Option<u16>,
    /// its kpasswd port
    pub kpasswd_port: Option<u16>,
    /// its global catalog port
    pub gc_port: Option<u16>,
}

/// The other DCs, shared between the zone and whatever keeps the list current (a clone is the
/// same list). Read once per question; the lock is never held across an `.await`.
#[derive(Debug, Clone, Default)]
pub struct Peers(Arc<RwLock<Arc<Vec<Peer>>>>);

impl Peers {
    /// Replaces the list.
    pub fn set(&self, peers: Vec<Peer>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(peers);
    }

    /// The current list.
    pub fn get(&self) -> Arc<Vec<Peer>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The services SRV records locate.
#[derive(Debug, Clone, Copy)]
enum Locates {
    Ldap,
    Gc,
    Kdc,
    Kpasswd,
}

/// The answer to one question: rcode, answers, authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// response code
    pub rcode: u8,
    /// answer section
    pub answers: Vec<Record>,
    /// authority section (the SOA, for negative answers)
    pub authority: Vec<Record>,
}

impl Zone {
    /// The answer to `q`.
    pub fn answer(&self, q: &Question) -> Answer {
        let name = q.name.trim_end_matches('.').to_ascii_lowercase();
        let in_zone = name == self.domain || name.ends_with(&format!(".{}", self.domain));
        let records = self.records_for(&name);
        if !in_zone && records.is_empty() {
            return Answer {
                rcode: rcode::REFUSED,
                answers: Vec::new(),
                authority: Vec::new(),
            };
        }
        let soa = self.soa();
        if records.is_empty() {
            return Answer {
                rcode: rcode::NXDOMAIN,
                answers: Vec::new(),
                authority: vec![soa],
            };
        }
        let answers: Vec<Record> = records
            .into_iter()
            .filter(|r| q.qtype == rtype::ANY || r.data.rtype() == q.qtype)
            .collect();
        let authority = if answers.is_empty() {
            vec![soa]
        } else {
            Vec::new()
        };
        Answer {
            rcode: rcode::NOERROR,
            answers,
            authority,
        }
    }

    /// Every record owned by `name` (lower case, no trailing dot).
    fn records_for(&self, name: &str) -> Vec<Record> {
        let rec = |data: Data| Record {
            name: name.to_owned(),
            ttl: TTL,
            data,
        };
        let peers = self.peers.get();
        let this = Peer {
            host: self.host.clone(),
            addresses: self.addresses.clone(),
            ldap_port: self.ldap_port,
            kdc_port: self.kdc_port,
            kpasswd_port: self.kpasswd_port,
            gc_port: self.gc_port,
        };
        // This DC first, then the others (a peer with this DC's name is this DC).
        let dcs: Vec<&Peer> = std::iter::once(&this)
            .chain(peers.iter().filter(|p| p.host != self.host))
            .collect();
        let mut out = Vec::new();
        for dc in &dcs {
            if name == dc.host || name == self.domain {
                out.extend(dc.addresses.iter().map(|a| rec(Data::Address(*a))));
            }
        }
        if name == self.domain {
            out.push(self.soa());
            out.extend(dcs.iter().map(|dc| rec(Data::Ns(dc.host.clone()))));
        }
        for dc in &dcs {
            for addr in &dc.addresses {
                if name == reverse_name(addr) {
                    out.push(rec(Data::Ptr(dc.host.clone())));
                }
            }
        }
        if let Some(service) = self.locates(name) {
            for dc in &dcs {
                let port = match service {
                    Locates::Ldap => dc.ldap_port,
                    Locates::Gc => dc.gc_port,
                    Locates::Kdc => dc.kdc_port,
                    Locates::Kpasswd => dc.kpasswd_port,
                };
                if let Some(port) = port {
                    out.push(rec(Data::Srv {
                        priority: 0,
                        weight: 100,
                        port,
                        target: dc.host.clone(),
                    }));
                }
            }
        }
        out
    }

    /// The service an SRV owner name locates, if it is one the zone publishes.
    fn locates(&self, name: &str) -> Option<Locates> {
        let rest = name.strip_suffix(&format!(".{}", self.domain))?;
        let site = format!("{}._sites", self.site.to_ascii_lowercase());
        // `_svc._proto` [`.site._sites`] [`.dc._msdcs` | `.pdc._msdcs` | `.gc._msdcs`]
        let (service, scope) = rest.split_once('.')?;
        let (proto, scope) = scope.split_once('.').unwrap_or((scope, ""));
        let scope = scope
            .strip_prefix(&site)
            .map(|s| s.trim_start_matches('.'))
            .unwrap_or(scope);
        let msdcs = match scope {
            "" => None,
            "dc._msdcs" => Some("dc"),
            "pdc._msdcs" => Some("pdc"),
            "gc._msdcs" => Some("gc"),
            _ => return None,
        };
        match (service, proto, msdcs) {
            ("_ldap", "_tcp", None | Some("dc") | Some("pdc")) => Some(Locates::Ldap),
            ("_ldap", "_tcp", Some("gc")) | ("_gc", "_tcp", None) => Some(Locates::Gc),
            ("_kerberos", "_tcp" | "_udp", None) | ("_kerberos", "_tcp", Some("dc")) => {
                Some(Locates::Kdc)
            }
            ("_kpasswd", "_tcp" | "_udp", None) => Some(Locates::Kpasswd),
            _ => None,
        }
    }

    fn soa(&self) -> Record {
        Record {
            name: self.domain.clone(),
            ttl: TTL,
            data: Data::Soa {
                primary: self.host.clone(),
                mailbox: format!("hostmaster.{}", self.domain),
                serial: 1,
            },
        }
    }
}

/// `d.c.b.a.in-addr.arpa` / the nibble form under `ip6.arpa` (RFC 1035 §3.5, RFC 3596 §2.5).
pub fn reverse_name(addr: &IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let mut s = String::new();
            for byte in a.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        Zone {
            domain: "example.com".into(),
            host: "dc1.example.com".into(),
            addresses: vec!["127.0.0.1".parse().unwrap()],
            site: "Default-First-Site-Name".into(),
            ldap_port: Some(389),
            kdc_port: Some(88),
            kpasswd_port: Some(464),
            gc_port: None,
            peers: Peers::default(),
        }
    }

    fn ask(name: &str, qtype: u16) -> Answer {
        zone().answer(&Question {
            name: name.into(),
            raw_name: Vec::new(),
            qtype,
            qclass: 1,
        })
    }

    fn srv_port(a: &Answer) -> Option<u16> {
        match a.answers.first().map(|r| &r.data) {
            Some(Data::Srv { port, target, .. }) if target == "dc1.example.com" => Some(*port),
            _ => None,
        }
    }

    #[test]
    fn locator_records_are_published() {
        for (name, port) in [
            ("_ldap._tcp.example.com", 389),
            ("_ldap._tcp.dc._msdcs.EXAMPLE.com", 389),
            ("_ldap._tcp.pdc._msdcs.example.com", 389),
            ("_ldap._tcp.Default-First-Site-Name._sites.example.com", 389),
            (
                "_ldap._tcp.default-first-site-name._sites.dc._msdcs.example.com",
                389,
            ),
            ("_kerberos._tcp.example.com", 88),
            ("_kerberos._udp.example.com", 88),
            ("_kerberos._tcp.dc._msdcs.example.com", 88),
            ("_kpasswd._udp.example.com", 464),
            ("_kpasswd._tcp.example.com", 464),
        ] {
            let a = ask(name, rtype::SRV);
            assert_eq!(
                (a.rcode, srv_port(&a)),
                (rcode::NOERROR, Some(port)),
                "{name}"
            );
        }
        let a = ask("dc1.example.com", rtype::A);
        assert_eq!(
            a.answers[0].data,
            Data::Address("127.0.0.1".parse().unwrap())
        );
        let a = ask("1.0.0.127.in-addr.arpa", rtype::PTR);
        assert_eq!(a.answers[0].data, Data::Ptr("dc1.example.com".into()));
    }

    #[test]
    fn other_names_are_refused_or_do_not_exist() {
        assert_eq!(ask("example.org", rtype::A).rcode, rcode::REFUSED);
        assert_eq!(
            ask("2.0.0.127.in-addr.arpa", rtype::PTR).rcode,
            rcode::REFUSED
        );
        assert_eq!(ask("nope.example.com", rtype::A).rcode, rcode::NXDOMAIN);
        // No global catalog configured: no _gc record.
        assert_eq!(
            ask("_gc._tcp.example.com", rtype::SRV).rcode,
            rcode::NXDOMAIN
        );
        // The name exists, the type does not: NOERROR with no answer and the SOA.
        let a = ask("dc1.example.com", rtype::SRV);
        assert_eq!(
            (a.rcode, a.answers.len(), a.authority.len()),
            (rcode::NOERROR, 0, 1)
        );
    }

    #[test]
    fn peers_are_advertised_beside_this_dc() {
        let z = zone();
        z.peers.set(vec![
            Peer {
                host: "dc2.example.com".into(),
                addresses: vec!["127.0.0.2".parse().unwrap()],
                ldap_port: Some(1389),
                kdc_port: Some(1088),
                kpasswd_port: None,
                gc_port: None,
            },
            // this DC as the registry lists it: not twice
            Peer {
                host: "dc1.example.com".into(),
                addresses: vec!["127.0.0.1".parse().unwrap()],
                ldap_port: Some(389),
                kdc_port: Some(88),
                kpasswd_port: Some(464),
                gc_port: None,
            },
        ]);
        let q = |name: &str, qtype| {
            z.answer(&Question {
                name: name.into(),
                raw_name: Vec::new(),
                qtype,
                qclass: 1,
            })
        };
        let srv: Vec<(String, u16)> = q("_ldap._tcp.dc._msdcs.example.com", rtype::SRV)
            .answers
            .into_iter()
            .filter_map(|r| match r.data {
                Data::Srv { port, target, .. } => Some((target, port)),
                _ => None,
            })
            .collect();
        assert_eq!(
            srv,
            vec![
                ("dc1.example.com".to_string(), 389),
                ("dc2.example.com".to_string(), 1389)
            ]
        );
        // kpasswd only where a node serves it
        assert_eq!(q("_kpasswd._udp.example.com", rtype::SRV).answers.len(), 1);
        let a = q("dc2.example.com", rtype::A);
        assert_eq!(
            a.answers[0].data,
            Data::Address("127.0.0.2".parse().unwrap())
        );
        assert_eq!(q("example.com", rtype::A).answers.len(), 2);
        let ptr = q("2.0.0.127.in-addr.arpa", rtype::PTR);
        assert_eq!(ptr.answers[0].data, Data::Ptr("dc2.example.com".into()));
        // The list is replaced while serving.
        z.peers.set(Vec::new());
        assert_eq!(q("dc2.example.com", rtype::A).rcode, rcode::NXDOMAIN);
    }
}
