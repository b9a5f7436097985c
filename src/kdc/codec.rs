//! Wire helpers for the KDC: request decoding, the raw KDC-REQ-BODY slice, TCP record marking,
//! and conversions between rasn-kerberos wire types and dird types (names, times, flags).
//!
//! Owns: everything that touches DER bytes directly. May import: `model`, `rasn`,
//! `rasn-kerberos`. Invariant: nothing here panics on hostile input (all indexing is checked);
//! the fuzz target `kdc_decode` drives `decode_request` and `raw_req_body`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rasn::types::{BitString, GeneralString};
use rasn_kerberos::{AsReq, KerberosTime, PrincipalName as WireName, TgsReq};

use super::error::KdcError;
use crate::model::principal::PrincipalName;

/// A decoded KDC request.
#[derive(Debug)]
pub enum KdcRequest {
    /// An AS-REQ (RFC 4120 §5.4.1, APPLICATION 10).
    As(Box<AsReq>),
    /// A TGS-REQ (APPLICATION 12) with the exact received bytes of its KDC-REQ-BODY, over which
    /// the authenticator checksum is computed (RFC 4120 §7.2.2 note: never re-encode).
    Tgs {
        /// The decoded request.
        req: Box<TgsReq>,
        /// The raw DER of `req-body` as received.
        raw_body: Vec<u8>,
    },
}

/// First octet of a DER AS-REQ: [APPLICATION 10] constructed.
pub const TAG_AS_REQ: u8 = 0x6a;
/// First octet of a DER TGS-REQ: [APPLICATION 12] constructed.
pub const TAG_TGS_REQ: u8 = 0x6c;

/// True if `bytes` starts like a KDC request (used to drop non-Kerberos UDP noise silently
/// instead of answering it, which would make us a reflector).
pub fn looks_like_kdc_request(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(&TAG_AS_REQ) | Some(&TAG_TGS_REQ))
}

/// Decodes an AS-REQ or TGS-REQ from DER.
pub fn decode_request(bytes: &[u8]) -> Result<KdcRequest, KdcError> {
    match bytes.first() {
        Some(&TAG_AS_REQ) => {
            let req: AsReq = rasn::der::decode(bytes).map_err(|_| KdcError::Malformed("AS-REQ"))?;
            Ok(KdcRequest::As(Box::new(req)))
        }
        Some(&TAG_TGS_REQ) => {
            let raw_body = raw_req_body(bytes)?.to_vec();
            let req: TgsReq =
                rasn::der::decode(bytes).map_err(|_| KdcError::Malformed("TGS-REQ"))?;
            Ok(KdcRequest::Tgs {
                req: Box::new(req),
                raw_body,
            })
        }
        _ => Err(KdcError::MessageType),
    }
}

/// Returns the received bytes of the `req-body [4] KDC-REQ-BODY` element of an AS-REQ or
/// TGS-REQ: the SEQUENCE TLV inside the `[4]` wrapper (RFC 4120 §5.4.1).
pub fn raw_req_body(bytes: &[u8]) -> Result<&[u8], KdcError> {
    let (tag, outer) = tlv(bytes)?;
    if tag != TAG_AS_REQ && tag != TAG_TGS_REQ {
        return Err(KdcError::MessageType);
    }
    let (tag, mut fields) = tlv(outer.content)?;
    if tag != 0x30 {
        return Err(KdcError::Malformed("KDC-REQ is not a SEQUENCE"));
    }
    while !fields.content.is_empty() {
        let (tag, field) = tlv(fields.content)?;
        if tag == 0xa4 {
            let (inner_tag, inner) = tlv(field.content)?;
            if inner_tag != 0x30 || inner.total != field.content.len() {
                return Err(KdcError::Malformed("req-body"));
            }
            return Ok(field.content);
        }
        fields.content = fields
            .content
            .get(field.total..)
            .ok_or(KdcError::Malformed("DER length"))?;
    }
    Err(KdcError::Malformed("no req-body"))
}

/// A DER element: its content and the total length of tag + length + content.
struct Tlv<'a> {
    content: &'a [u8],
    total: usize,
}

/// Parses one DER TLV with a single-octet tag and a definite length of at most 4 octets.
fn tlv(bytes: &[u8]) -> Result<(u8, Tlv<'_>), KdcError> {
    const BAD: KdcError = KdcError::Malformed("DER length");
    let tag = *bytes.first().ok_or(BAD)?;
    if tag & 0x1f == 0x1f {
        return Err(KdcError::Malformed("high tag number"));
    }
    let first = *bytes.get(1).ok_or(BAD)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(BAD); // indefinite (BER) or absurd lengths
        }
        let octets = bytes.get(2..2 + n).ok_or(BAD)?;
        let len = octets
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, 2 + n)
    };
    let end = header.checked_add(len).ok_or(BAD)?;
    let content = bytes.get(header..end).ok_or(BAD)?;
    Ok((
        tag,
        Tlv {
            content,
            total: end,
        },
    ))
}

/// DER-encodes a rasn value.
pub fn encode<T: rasn::Encode>(value: &T) -> Result<Vec<u8>, KdcError> {
    rasn::der::encode(value).map_err(|e| KdcError::Internal(format!("DER encode: {e}")))
}

/// DER-decodes a rasn value, mapping failure to `Malformed(what)`.
pub fn decode<T: rasn::Decode>(bytes: &[u8], what: &'static str) -> Result<T, KdcError> {
    rasn::der::decode(bytes).map_err(|_| KdcError::Malformed(what))
}

/// RFC 4120 §7.2.2: the TCP record mark is a 4-octet big-endian length whose high bit is
/// reserved and must be zero. Returns the record length if acceptable.
pub fn record_length(header: [u8; 4], max_message: usize) -> Result<usize, KdcError> {
    let raw = u32::from_be_bytes(header);
    if raw & 0x8000_0000 != 0 {
        return Err(KdcError::Malformed("reserved bit in TCP record mark"));
    }
    let len = usize::try_from(raw).map_err(|_| KdcError::Malformed("record too long"))?;
    if len == 0 || len > max_message {
        return Err(KdcError::Malformed("record length out of range"));
    }
    Ok(len)
}

/// Prefixes a reply with its TCP record mark.
pub fn frame(reply: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(reply.len() + 4);
    // Replies are bounded by max_message (<< 2^31), so the length fits the 31-bit mark.
    out.extend_from_slice(
        &(u32::try_from(reply.len()).unwrap_or(u32::MAX) & 0x7fff_ffff).to_be_bytes(),
    );
    out.extend_from_slice(reply);
    out
}

// ---- names ----

/// A wire PrincipalName from a dird name (the realm is carried separately on the wire).
pub fn wire_name(name: &PrincipalName) -> WireName {
    WireName {
        r#type: name.name_type,
        string: name
            .components
            .iter()
            .filter_map(|c| kerberos_string(c))
            .collect(),
    }
}

/// A dird name from a wire PrincipalName and realm. Components must be non-empty and UTF-8
/// (MIT sends UTF-8; RFC 4120 §5.2.1 restricts to IA5 in practice).
pub fn principal_name(name: &WireName, realm: &GeneralString) -> Result<PrincipalName, KdcError> {
    if name.string.is_empty() || name.string.len() > 8 {
        return Err(KdcError::Malformed("principal name component count"));
    }
    let components = name
        .string
        .iter()
        .map(|c| {
            let s = std::str::from_utf8(c.as_bytes())
                .map_err(|_| KdcError::Malformed("principal name encoding"))?;
            if s.is_empty() {
                return Err(KdcError::Malformed("empty principal name component"));
            }
            Ok(s.to_owned())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PrincipalName {
        name_type: name.r#type,
        components,
        realm: realm_string(realm)?,
    })
}

/// A realm as a Rust string.
pub fn realm_string(realm: &GeneralString) -> Result<String, KdcError> {
    std::str::from_utf8(realm.as_bytes())
        .map(str::to_owned)
        .map_err(|_| KdcError::Malformed("realm encoding"))
}

/// A KerberosString from text; `None` if the text has characters GeneralString refuses.
pub fn kerberos_string(text: &str) -> Option<GeneralString> {
    GeneralString::from_bytes(text.as_bytes()).ok()
}

// ---- times ----

/// KerberosTime for `t`, truncated to whole seconds (RFC 4120 §5.2.3: no fractional seconds).
pub fn kerberos_time(t: SystemTime) -> KerberosTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let secs = i64::try_from(secs).unwrap_or(i64::MAX).min(253_402_300_799); // 9999-12-31T23:59:59Z
    let dt = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    KerberosTime(dt.fixed_offset())
}

/// KerberosTime plus microseconds for `t` (stime/susec, ctime/cusec).
pub fn kerberos_time_usec(t: SystemTime) -> (KerberosTime, u32) {
    let usec = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0);
    (kerberos_time(t), usec)
}

/// SystemTime for a KerberosTime. Times before 1970 map to the epoch, which MIT uses for
/// "no limit" in `till` (RFC 4120 §5.4.1 "19700101000000Z").
pub fn system_time(t: &KerberosTime) -> SystemTime {
    let secs = t.0.timestamp();
    if secs <= 0 {
        return UNIX_EPOCH;
    }
    UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
}

/// The absolute difference between two times.
pub fn distance(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap_or_default()
}

// ---- flags ----

/// RFC 4120 §5.4.1 KDCOptions bit numbers (bit 0 is the most significant bit).
pub mod kdc_options {
    /// forwardable (1).
    pub const FORWARDABLE: u32 = 1 << (31 - 1);
    /// forwarded (2).
    pub const FORWARDED: u32 = 1 << (31 - 2);
    /// proxiable (3).
    pub const PROXIABLE: u32 = 1 << (31 - 3);
    /// proxy (4).
    pub const PROXY: u32 = 1 << (31 - 4);
    /// allow-postdate (5).
    pub const ALLOW_POSTDATE: u32 = 1 << (31 - 5);
    /// postdated (6).
    pub const POSTDATED: u32 = 1 << (31 - 6);
    /// renewable (8).
    pub const RENEWABLE: u32 = 1 << (31 - 8);
    /// canonicalize (15, RFC 6806).
    pub const CANONICALIZE: u32 = 1 << (31 - 15);
    /// renewable-ok (27).
    pub const RENEWABLE_OK: u32 = 1 << (31 - 27);
    /// enc-tkt-in-skey (28).
    pub const ENC_TKT_IN_SKEY: u32 = 1 << (31 - 28);
    /// renew (30).
    pub const RENEW: u32 = 1 << (31 - 30);
    /// validate (31).
    pub const VALIDATE: u32 = 1;
}

/// RFC 4120 §5.3 TicketFlags bit numbers.
pub mod ticket_flags {
    /// forwardable (1).
    pub const FORWARDABLE: u32 = 1 << (31 - 1);
    /// forwarded (2).
    pub const FORWARDED: u32 = 1 << (31 - 2);
    /// proxiable (3).
    pub const PROXIABLE: u32 = 1 << (31 - 3);
    /// proxy (4).
    pub const PROXY: u32 = 1 << (31 - 4);
    /// renewable (8).
    pub const RENEWABLE: u32 = 1 << (31 - 8);
    /// initial (9).
    pub const INITIAL: u32 = 1 << (31 - 9);
    /// pre-authent (10).
    pub const PRE_AUTHENT: u32 = 1 << (31 - 10);
}

/// A 32-bit KerberosFlags BIT STRING (RFC 4120 §5.2.8: at least 32 bits are sent).
pub fn flags_to_bits(flags: u32) -> BitString {
    BitString::from_slice(&flags.to_be_bytes())
}

/// The first 32 bits of a KerberosFlags BIT STRING (missing bits are zero).
pub fn bits_to_flags(bits: &BitString) -> u32 {
    bits.iter().take(32).enumerate().fold(
        0u32,
        |acc, (i, bit)| if *bit { acc | (1 << (31 - i)) } else { acc },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_marks() {
        assert_eq!(record_length([0, 0, 1, 0], 65536), Ok(256));
        assert!(record_length([0x80, 0, 0, 1], 65536).is_err());
        assert!(record_length([0, 1, 0, 1], 65536).is_err());
        assert!(record_length([0, 0, 0, 0], 65536).is_err());
        assert_eq!(frame(&[1, 2]), vec![0, 0, 0, 2, 1, 2]);
    }

    #[test]
    fn flags_round_trip() {
        let f = ticket_flags::FORWARDABLE | ticket_flags::INITIAL | ticket_flags::PRE_AUTHENT;
        let bits = flags_to_bits(f);
        assert_eq!(bits.len(), 32);
        assert_eq!(bits_to_flags(&bits), f);
        assert_eq!(
            bits_to_flags(&BitString::from_slice(&[0x40])),
            kdc_options::FORWARDABLE
        );
    }

    #[test]
    fn times_are_whole_seconds() {
        let t = UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_789);
        let kt = kerberos_time(t);
        let der = rasn::der::encode(&kt).unwrap();
        assert_eq!(&der[2..], b"20270115080000Z");
        assert_eq!(
            system_time(&kt),
            UNIX_EPOCH + Duration::from_secs(1_800_000_000)
        );
        assert_eq!(kerberos_time_usec(t).1, 123_456);
    }

    #[test]
    fn garbage_is_rejected_without_panic() {
        for input in [
            &[][..],
            &[0x6a],
            &[0x6c, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x6c, 0x03, 0x30, 0x01, 0xa4],
            &[0x6c, 0x80, 0, 0],
            &[0x13, 0x00],
        ] {
            assert!(decode_request(input).is_err());
            let _ = raw_req_body(input);
        }
    }

    #[test]
    fn raw_body_is_sliced_from_a_tgs_req() {
        // [APPLICATION 12] { SEQUENCE { [1] INTEGER 5, [4] SEQUENCE { NULL } } }
        let msg = [
            0x6c, 0x0b, 0x30, 0x09, 0xa1, 0x03, 0x02, 0x01, 0x05, 0xa4, 0x02, 0x30, 0x00,
        ];
        assert_eq!(raw_req_body(&msg).unwrap(), &[0x30, 0x00]);
    }
}
