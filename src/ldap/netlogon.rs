//! The NetLogon ping (MS-ADTS §6.3.3): an LDAP search of the rootDSE for the `Netlogon`
//! attribute, over TCP LDAP or CLDAP (UDP), whose filter carries the query (`DnsDomain`,
//! `NtVer`, …), answered with a NETLOGON_SAM_LOGON_RESPONSE_EX (MS-ADTS §6.3.1.9).
//! May import: `model`. Pure: the query parser and the response encoder take everything as
//! arguments, so they are unit-tested against the byte layout of the specification.
//! Invariant: hostile filters only ever yield `None` (no ping) or a bounded query.

use std::net::Ipv4Addr;

use crate::model::Filter;

/// NETLOGON_NT_VERSION_5EX (MS-ADTS §6.3.1.1): the client understands the _EX response.
pub const NT_VERSION_5EX: u32 = 0x4;
/// NETLOGON_NT_VERSION_5EX_WITH_IP: include the DC's socket address.
pub const NT_VERSION_5EX_WITH_IP: u32 = 0x8;
/// NETLOGON_NT_VERSION_WITH_CLOSEST_SITE: include NextClosestSiteName.
pub const NT_VERSION_WITH_CLOSEST_SITE: u32 = 0x10;

/// LOGON_SAM_LOGON_RESPONSE_EX (MS-ADTS §6.3.1.9 Opcode).
const OPCODE_SAM_LOGON_RESPONSE_EX: u16 = 23;

/// DS_FLAG values of the response (MS-ADTS §6.3.1.2): PDC | LDAP | DS | KDC | TIMESERV |
/// CLOSEST | WRITABLE | GOOD_TIMESERV | FULL_SECRET_DOMAIN_6 | DNS_CONTROLLER | DNS_DOMAIN |
/// DNS_FOREST. GC (0x4) is added when the global catalog is served.
pub const DC_FLAGS: u32 = 0x1
    | 0x8
    | 0x10
    | 0x20
    | 0x40
    | 0x80
    | 0x100
    | 0x200
    | 0x1000
    | 0x2000_0000
    | 0x4000_0000
    | 0x8000_0000;

/// DS_GC_FLAG (MS-ADTS §6.3.1.2): the DC is a global catalog server.
pub const DS_GC_FLAG: u32 = 0x4;

/// The name of the site dird reports (AD's default site).
pub const SITE: &str = "Default-First-Site-Name";

/// A NetLogon ping's query, from the search filter's equality assertions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    /// `NtVer`: the response versions the client understands (4 bytes, little-endian)
    pub nt_version: u32,
    /// `DnsDomain`: the domain the client looks for
    pub dns_domain: Option<String>,
    /// `User`: the account name the client asks about
    pub user: Option<String>,
    /// `DomainGuid`
    pub domain_guid: Option<Vec<u8>>,
}

impl Query {
    /// The ping in a rootDSE search filter, or `None` when the filter is not one (no `NtVer`,
    /// or a shape other than an AND of equality assertions).
    pub fn from_filter(filter: &Filter) -> Option<Query> {
        let terms: Vec<&Filter> = match filter {
            Filter::And(list) => list.iter().collect(),
            one @ Filter::Equality(..) => vec![one],
            _ => return None,
        };
        let mut q = Query::default();
        let mut have_version = false;
        for term in terms {
            let Filter::Equality(attr, value) = term else {
                return None;
            };
            let text = || std::str::from_utf8(value).ok().map(str::to_owned);
            match attr.to_ascii_lowercase().as_str() {
                "ntver" => {
                    let bytes: [u8; 4] = value.as_slice().try_into().ok()?;
                    q.nt_version = u32::from_le_bytes(bytes);
                    have_version = true;
                }
                "dnsdomain" => q.dns_domain = Some(text()?.trim_end_matches('.').to_owned()),
                "user" => q.user = Some(text()?),
                "domainguid" => q.domain_guid = Some(value.clone()),
                // Host, DnsHostName, AAC, DomainSid: accepted, not used for the answer.
                "host" | "dnshostname" | "aac" | "domainsid" => {}
                _ => return None,
            }
        }
        have_version.then_some(q)
    }

    /// Whether the client understands the _EX response dird sends.
    pub fn wants_ex(&self) -> bool {
        self.nt_version & (NT_VERSION_5EX | NT_VERSION_5EX_WITH_IP) != 0
    }
}

/// What the response describes: this DC and its domain.
#[derive(Debug, Clone)]
pub struct DcInfo {
    /// the domain's objectGUID (16 bytes, as stored)
    pub domain_guid: [u8; 16],
    /// DNS forest and domain name, `example.com`
    pub dns_domain: String,
    /// the DC's DNS name, `dc1.example.com`
    pub dns_host: String,
    /// NetBIOS domain name, `EXAMPLE`
    pub netbios_domain: String,
    /// NetBIOS computer name, `DC1`
    pub netbios_host: String,
    /// the DC's IPv4 address, for NETLOGON_NT_VERSION_5EX_WITH_IP
    pub address: Option<Ipv4Addr>,
    /// the DC serves the global catalog (DS_GC_FLAG)
    pub global_catalog: bool,
}

impl DcInfo {
    /// Whether a query is for this domain (MS-ADTS §6.3.3.2: a ping naming another domain
    /// or GUID gets no answer).
    pub fn answers(&self, q: &Query) -> bool {
        let domain_ok = q
            .dns_domain
            .as_deref()
            .is_none_or(|d| d.eq_ignore_ascii_case(&self.dns_domain));
        let guid_ok = q
            .domain_guid
            .as_deref()
            .is_none_or(|g| g == self.domain_guid);
        domain_ok && guid_ok && q.wants_ex()
    }

    /// NETLOGON_SAM_LOGON_RESPONSE_EX (MS-ADTS §6.3.1.9), little-endian, names as
    /// uncompressed RFC 1035 label sequences.
    pub fn response_ex(&self, q: &Query) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(&OPCODE_SAM_LOGON_RESPONSE_EX.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // Sbz
        let flags = if self.global_catalog {
            DC_FLAGS | DS_GC_FLAG
        } else {
            DC_FLAGS
        };
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&self.domain_guid);
        put_name(&mut out, &self.dns_domain); // DnsForestName
        put_name(&mut out, &self.dns_domain); // DnsDomainName
        put_name(&mut out, &self.dns_host); // DnsHostName
        put_name(&mut out, &self.netbios_domain); // NetbiosDomainName
        put_name(&mut out, &self.netbios_host); // NetbiosComputerName
        put_name(&mut out, q.user.as_deref().unwrap_or("")); // UserName
        put_name(&mut out, SITE); // DcSiteName
        put_name(&mut out, SITE); // ClientSiteName
                                  // NtVersion names the optional fields present: Samba's parser (sssd, net) reads the
                                  // trailer's flags, not the request's, to decide whether to expect them.
        let mut version = 0x1 | NT_VERSION_5EX;
        if q.nt_version & NT_VERSION_5EX_WITH_IP != 0 {
            version |= NT_VERSION_5EX_WITH_IP;
            // DcSockAddrSize, then a SOCKADDR_IN: family AF_INET (2, little-endian), port 0,
            // the address in network order, 8 zero bytes.
            out.push(16);
            out.extend_from_slice(&2u16.to_le_bytes());
            out.extend_from_slice(&0u16.to_be_bytes());
            out.extend_from_slice(&self.address.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
            out.extend_from_slice(&[0u8; 8]);
        }
        if q.nt_version & NT_VERSION_WITH_CLOSEST_SITE != 0 {
            version |= NT_VERSION_WITH_CLOSEST_SITE;
            put_name(&mut out, ""); // NextClosestSiteName
        }
        // NtVersion: NETLOGON_NT_VERSION_1 | NETLOGON_NT_VERSION_5EX | the fields above;
        // LmNtToken; Lm20Token.
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&0xffffu16.to_le_bytes());
        out.extend_from_slice(&0xffffu16.to_le_bytes());
        out
    }
}

/// An RFC 1035 §3.1 name: length-prefixed labels (at most 63 bytes each, longer ones are
/// cut), then a zero byte. The empty name is the single zero byte.
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

    fn eq(attr: &str, v: &[u8]) -> Filter {
        Filter::Equality(attr.into(), v.to_vec())
    }

    fn dc() -> DcInfo {
        DcInfo {
            domain_guid: [
                0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
                0xff, 0x00,
            ],
            dns_domain: "example.com".into(),
            dns_host: "dc1.example.com".into(),
            netbios_domain: "EXAMPLE".into(),
            netbios_host: "DC1".into(),
            address: Some(Ipv4Addr::new(127, 0, 0, 1)),
            global_catalog: false,
        }
    }

    #[test]
    fn adcli_and_sssd_queries_parse() {
        // adcli / realmd: (&(NtVer=\06\00\00\00)(AAC=\00\00\00\00))
        let f = Filter::And(vec![eq("NtVer", &[6, 0, 0, 0]), eq("AAC", &[0, 0, 0, 0])]);
        let q = Query::from_filter(&f).unwrap();
        assert_eq!(q.nt_version, 6);
        assert!(q.wants_ex() && dc().answers(&q));
        // sssd: (&(DnsDomain=example.com)(NtVer=\14\00\00\00))
        let f = Filter::And(vec![
            eq("DnsDomain", b"EXAMPLE.COM"),
            eq("NtVer", &[0x14, 0, 0, 0]),
        ]);
        let q = Query::from_filter(&f).unwrap();
        assert_eq!(q.dns_domain.as_deref(), Some("EXAMPLE.COM"));
        assert!(dc().answers(&q));
        // Another domain, an old-only version, a non-ping filter, a bad NtVer length.
        let other = Filter::And(vec![
            eq("DnsDomain", b"other.org"),
            eq("NtVer", &[6, 0, 0, 0]),
        ]);
        assert!(!dc().answers(&Query::from_filter(&other).unwrap()));
        assert!(!dc().answers(&Query::from_filter(&eq("NtVer", &[2, 0, 0, 0])).unwrap()));
        assert_eq!(
            Query::from_filter(&Filter::Present("objectClass".into())),
            None
        );
        assert_eq!(Query::from_filter(&eq("NtVer", &[6, 0, 0])), None);
        assert_eq!(
            Query::from_filter(&Filter::And(vec![
                eq("NtVer", &[6, 0, 0, 0]),
                eq("cn", b"x")
            ])),
            None
        );
    }

    /// The byte layout of MS-ADTS §6.3.1.9 for NtVer = 5EX | 5EX_WITH_IP, field by field.
    #[test]
    fn response_ex_layout_matches_the_specification() {
        let q = Query {
            nt_version: NT_VERSION_5EX | NT_VERSION_5EX_WITH_IP,
            ..Query::default()
        };
        let got = dc().response_ex(&q);
        let mut want: Vec<u8> = vec![23, 0, 0, 0];
        want.extend_from_slice(&[0xf9, 0x13, 0x00, 0xe0]); // flags 0xe00013f9
        want.extend_from_slice(&dc().domain_guid);
        for name in [
            &b"\x07example\x03com\x00"[..],
            b"\x07example\x03com\x00",
            b"\x03dc1\x07example\x03com\x00",
            b"\x07EXAMPLE\x00",
            b"\x03DC1\x00",
            b"\x00",
            b"\x17Default-First-Site-Name\x00",
            b"\x17Default-First-Site-Name\x00",
        ] {
            want.extend_from_slice(name);
        }
        want.push(16);
        want.extend_from_slice(&[2, 0, 0, 0, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[0xd, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(got, want);
        // Without WITH_IP there is no socket address; with CLOSEST_SITE an empty name.
        let q = Query {
            nt_version: NT_VERSION_5EX | NT_VERSION_WITH_CLOSEST_SITE,
            ..Query::default()
        };
        let got = dc().response_ex(&q);
        assert_eq!(got.len(), want.len() - 17 + 1);
        assert_eq!(&got[4..8], &[0xf9, 0x13, 0x00, 0xe0]);
        // A global catalog server adds DS_GC_FLAG.
        let gc = DcInfo {
            global_catalog: true,
            ..dc()
        };
        assert_eq!(&gc.response_ex(&q)[4..8], &[0xfd, 0x13, 0x00, 0xe0]);
        assert_eq!(
            &got[got.len() - 9..],
            &[0, 0x15, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
    }
}
