//! DNS wire format (RFC 1035 §4), the small part a zone responder needs: the header and the
//! single question of a query, and answers with A, AAAA, PTR, SRV (RFC 2782) and SOA data.
//! Pure and bounded: parsing never panics, follows no compression pointers (a question has
//! none in practice; one is refused as FORMERR), and reads at most one question.

use std::net::IpAddr;

/// Record types the responder knows.
pub mod rtype {
    /// IPv4 address
    pub const A: u16 = 1;
    /// name server
    pub const NS: u16 = 2;
    /// start of authority
    pub const SOA: u16 = 6;
    /// pointer (reverse lookup)
    pub const PTR: u16 = 12;
    /// IPv6 address
    pub const AAAA: u16 = 28;
    /// service location (RFC 2782)
    pub const SRV: u16 = 33;
    /// any type (RFC 8482: answered like any other type here)
    pub const ANY: u16 = 255;
}

/// Response codes (RFC 1035 §4.1.1, RFC 2136 §2.2).
pub mod rcode {
    /// no error
    pub const NOERROR: u8 = 0;
    /// the query could not be parsed
    pub const FORMERR: u8 = 1;
    /// the name does not exist
    pub const NXDOMAIN: u8 = 3;
    /// the opcode is not implemented
    pub const NOTIMP: u8 = 4;
    /// refused by policy (not our zone, dynamic updates)
    pub const REFUSED: u8 = 5;
}

/// Opcode of a standard query.
pub const OPCODE_QUERY: u8 = 0;

/// A parsed request: the header fields a response echoes, and the question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// transaction id
    pub id: u16,
    /// opcode (0 query, 5 update, …)
    pub opcode: u8,
    /// recursion desired (echoed)
    pub recursion_desired: bool,
    /// the question, when there is exactly one (`None` for an update or an empty query)
    pub question: Option<Question>,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// the name as sent, labels joined with '.', without the trailing dot
    pub name: String,
    /// the labels' raw bytes (for echoing the question exactly)
    pub raw_name: Vec<u8>,
    /// QTYPE
    pub qtype: u16,
    /// QCLASS
    pub qclass: u16,
}

/// Why a message could not be parsed; the answer is FORMERR when the id could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// shorter than a header: no answer at all
    TooShort,
    /// the header was read but the rest is malformed
    Malformed {
        /// the transaction id, for the FORMERR answer
        id: u16,
        /// the opcode
        opcode: u8,
    },
}

/// Parses a request. A response (QR set) is `TooShort` (never answered, so two responders
/// cannot loop).
pub fn parse(msg: &[u8]) -> Result<Request, ParseError> {
    if msg.len() < 12 {
        return Err(ParseError::TooShort);
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & 0x8000 != 0 {
        return Err(ParseError::TooShort);
    }
    let opcode = ((flags >> 11) & 0xf) as u8;
    let malformed = ParseError::Malformed { id, opcode };
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    let recursion_desired = flags & 0x0100 != 0;
    if opcode != OPCODE_QUERY || qdcount == 0 {
        return Ok(Request {
            id,
            opcode,
            recursion_desired,
            question: None,
        });
    }
    if qdcount != 1 {
        return Err(malformed);
    }
    let mut pos = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = usize::from(*msg.get(pos).ok_or(malformed.clone())?);
        if len == 0 {
            pos += 1;
            break;
        }
        // 0xc0: a compression pointer; 0x40/0x80: reserved label types.
        if len > 63 {
            return Err(malformed);
        }
        let label = msg.get(pos + 1..pos + 1 + len).ok_or(malformed.clone())?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        pos += 1 + len;
        if pos - 12 > 255 {
            return Err(malformed);
        }
    }
    let raw_name = msg[12..pos].to_vec();
    let tail = msg.get(pos..pos + 4).ok_or(malformed)?;
    Ok(Request {
        id,
        opcode,
        recursion_desired,
        question: Some(Question {
            name: labels.join("."),
            raw_name,
            qtype: u16::from_be_bytes([tail[0], tail[1]]),
            qclass: u16::from_be_bytes([tail[2], tail[3]]),
        }),
    })
}

/// Record data of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// A or AAAA
    Address(IpAddr),
    /// PTR to a name
    Ptr(String),
    /// SRV: priority, weight, port, target
    Srv {
        /// lower is preferred
        priority: u16,
        /// relative weight among equal priorities
        weight: u16,
        /// the service's port
        port: u16,
        /// the host offering it
        target: String,
    },
    /// NS: the zone's name server
    Ns(String),
    /// SOA of the zone: primary name server, responsible mailbox, serial
    Soa {
        /// MNAME
        primary: String,
        /// RNAME
        mailbox: String,
        /// SERIAL
        serial: u32,
    },
}

impl Data {
    /// The record type of this data.
    pub fn rtype(&self) -> u16 {
        match self {
            Data::Address(IpAddr::V4(_)) => rtype::A,
            Data::Address(IpAddr::V6(_)) => rtype::AAAA,
            Data::Ptr(_) => rtype::PTR,
            Data::Srv { .. } => rtype::SRV,
            Data::Ns(_) => rtype::NS,
            Data::Soa { .. } => rtype::SOA,
        }
    }
}

/// A resource record of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// owner name
    pub name: String,
    /// TTL in seconds
    pub ttl: u32,
    /// the data
    pub data: Data,
}

/// Encodes a response to `req`: the question echoed, `answers`, then `authority` records;
/// AA set. With `max_len`, a response that does not fit is cut to the header and question
/// with TC set (RFC 1035 §4.2.1: the client retries over TCP).
pub fn response(
    req: &Request,
    rcode: u8,
    answers: &[Record],
    authority: &[Record],
    max_len: Option<usize>,
) -> Vec<u8> {
    let full = encode(req, rcode, answers, authority, false);
    match max_len {
        Some(max) if full.len() > max => encode(req, rcode, &[], &[], true),
        _ => full,
    }
}

fn encode(req: &Request, rcode: u8, answers: &[Record], authority: &[Record], tc: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&req.id.to_be_bytes());
    // QR | opcode | AA | TC | RD (echoed) ; RA = 0 | rcode
    let mut flags: u16 = 0x8000 | (u16::from(req.opcode & 0xf) << 11) | 0x0400;
    if tc {
        flags |= 0x0200;
    }
    if req.recursion_desired {
        flags |= 0x0100;
    }
    flags |= u16::from(rcode & 0xf);
    out.extend_from_slice(&flags.to_be_bytes());
    let qd = u16::from(req.question.is_some());
    out.extend_from_slice(&qd.to_be_bytes());
    out.extend_from_slice(&(answers.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    out.extend_from_slice(&(authority.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    if let Some(q) = &req.question {
        out.extend_from_slice(&q.raw_name);
        out.extend_from_slice(&q.qtype.to_be_bytes());
        out.extend_from_slice(&q.qclass.to_be_bytes());
    }
    for r in answers.iter().chain(authority) {
        put_name(&mut out, &r.name);
        out.extend_from_slice(&r.data.rtype().to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // class IN
        out.extend_from_slice(&r.ttl.to_be_bytes());
        let mut rdata = Vec::new();
        match &r.data {
            Data::Address(IpAddr::V4(a)) => rdata.extend_from_slice(&a.octets()),
            Data::Address(IpAddr::V6(a)) => rdata.extend_from_slice(&a.octets()),
            Data::Ptr(n) | Data::Ns(n) => put_name(&mut rdata, n),
            Data::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                rdata.extend_from_slice(&priority.to_be_bytes());
                rdata.extend_from_slice(&weight.to_be_bytes());
                rdata.extend_from_slice(&port.to_be_bytes());
                put_name(&mut rdata, target);
            }
            Data::Soa {
                primary,
                mailbox,
                serial,
            } => {
                put_name(&mut rdata, primary);
                put_name(&mut rdata, mailbox);
                // serial, refresh, retry, expire, minimum (negative-caching TTL)
                for v in [*serial, 900, 600, 86_400, 60] {
                    rdata.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    out
}

/// An uncompressed name (labels longer than 63 bytes are cut; names come from the config).
fn put_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = &label.as_bytes()[..label.len().min(63)];
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        put_name(&mut m, name);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m
    }

    #[test]
    fn a_query_round_trips() {
        let req = parse(&query("_ldap._tcp.Example.com", rtype::SRV)).unwrap();
        let q = req.question.clone().unwrap();
        assert_eq!(
            (req.id, q.name.as_str(), q.qtype),
            (0x1234, "_ldap._tcp.Example.com", 33)
        );
        let rec = Record {
            name: "_ldap._tcp.example.com".into(),
            ttl: 600,
            data: Data::Srv {
                priority: 0,
                weight: 100,
                port: 389,
                target: "dc1.example.com".into(),
            },
        };
        let out = response(&req, rcode::NOERROR, &[rec], &[], Some(512));
        assert_eq!(&out[..4], &[0x12, 0x34, 0x85, 0x00]); // QR AA RD, NOERROR
        assert_eq!(&out[4..12], &[0, 1, 0, 1, 0, 0, 0, 0]);
        assert!(out.ends_with(b"\x00\x00\x00\x64\x01\x85\x03dc1\x07example\x03com\x00"));
        // Too large for the limit: header and question only, TC set.
        let cut = response(&req, rcode::NOERROR, &[], &[], Some(10));
        assert_eq!(cut[2] & 0x02, 0x02);
    }

    #[test]
    fn hostile_messages_are_refused_without_panicking() {
        assert_eq!(parse(&[0; 5]), Err(ParseError::TooShort));
        let mut pointer = query("a.example.com", 1);
        pointer[12] = 0xc0;
        assert!(matches!(parse(&pointer), Err(ParseError::Malformed { .. })));
        let truncated = &query("a.example.com", 1)[..20];
        assert!(matches!(
            parse(truncated),
            Err(ParseError::Malformed { .. })
        ));
        let mut response_bit = query("a.example.com", 1);
        response_bit[2] |= 0x80;
        assert_eq!(parse(&response_bit), Err(ParseError::TooShort));
        // An update (opcode 5) parses without a question.
        let mut update = query("example.com", 6);
        update[2] = 0x28;
        assert_eq!(parse(&update).unwrap().opcode, 5);
    }
}
