//! BER framing of LDAP PDUs and the decode/encode entry points.
//! May import: `ldap::proto`, `ldap::controls` (OIDs), `rasn`, `tokio_util`, `bytes`.
//! Invariants:
//! - The framer (`LdapCodec` as a `FrameDecoder`) only splits the byte stream into complete
//!   `LDAPMessage` TLVs; it never decodes. A bad frame header (not a SEQUENCE, indefinite length,
//!   length over `max_pdu`) is an `io::ErrorKind::InvalidData` error: the stream cannot be
//!   resynchronised, so the connection must close (after a Notice of Disconnection).
//! - `decode_message` decodes exactly one PDU and rejects trailing bytes (rasn does not).
//! - A frame that does not decode gets an answer chosen by `undecodable` (per-message error when
//!   the messageID is readable, otherwise a Notice of Disconnection, RFC 4511 §4.4.1).
//! - Nesting is bounded by rasn's BER decoder (128 levels), so a 100,000-deep NOT filter is an
//!   error, not a stack overflow.
//!
//! Note: rasn's `Encode`/`Decode` derives need `rasn::{Encoder, Decoder}` in scope, so tokio_util's
//! codec traits are imported as `FrameDecoder`/`FrameEncoder` (ldap-codec.md quirk 10).

use std::io;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder as FrameDecoder, Encoder as FrameEncoder};

use crate::ldap::controls::NOTICE_OF_DISCONNECTION;
use crate::ldap::proto::{
    ExtendedResponse, LdapMessage, LdapResult, MessageId, ProtocolOp, ResultCode, MAX_INT,
};

/// The default PDU size cap: 8 MiB holds a 5,000-member group add with room to spare
/// (ldap-codec.md §1), while bounding decode memory (about 18× the PDU size).
pub const DEFAULT_MAX_PDU: usize = 8 * 1024 * 1024;

/// The BER identifier of `LDAPMessage ::= SEQUENCE` (X.690 §8.9: universal, constructed, 16).
const SEQUENCE: u8 = 0x30;

/// How much buffer to reserve ahead for a PDU still arriving: a header that claims a large
/// length must not make us allocate it before the bytes come.
const MAX_RESERVE: usize = 64 * 1024;

/// A tokio_util framer that yields one complete raw `LDAPMessage` per frame and encodes
/// `LdapMessage`s (or pre-encoded PDUs) on the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LdapCodec {
    /// Largest accepted PDU, counting the tag and length octets.
    pub max_pdu: usize,
}

/// Why a frame did not decode into an `LdapMessage`.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The BER is malformed or does not match RFC 4511 (including non-UTF-8 LDAPStrings,
    /// unknown enumerated values, unknown CHOICE alternatives and nesting deeper than 128).
    #[error("malformed LDAPMessage: {0}")]
    Ber(#[from] rasn::error::DecodeError),
    /// Bytes follow the LDAPMessage inside the frame.
    #[error("{0} bytes after the end of the LDAPMessage")]
    TrailingBytes(usize),
}

/// What the connection loop should do with a frame that failed to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undecodable {
    /// Send this answer (to the frame's messageID) and keep the connection.
    Reply(LdapMessage),
    /// Send nothing (a malformed unbind or abandon request has no response) and keep going.
    Ignore,
    /// Send this Notice of Disconnection, then close the connection.
    Disconnect(LdapMessage),
}

impl LdapCodec {
    /// A framer with the given PDU size cap.
    pub fn new(max_pdu: usize) -> Self {
        Self { max_pdu }
    }
}

impl Default for LdapCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PDU)
    }
}

impl FrameDecoder for LdapCodec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        if first != SEQUENCE {
            return Err(invalid(format!(
                "LDAP PDU must start with a SEQUENCE tag (0x30), got 0x{first:02x}"
            )));
        }
        let Some(&len0) = buf.get(1) else {
            return Ok(None);
        };
        // X.690 §8.1.3: short form (< 0x80), indefinite (0x80, forbidden by RFC 4511 §5.1),
        // long form (0x81..=0xfe: that many length octets follow).
        let (header, body) = match len0 {
            0..=0x7f => (2usize, usize::from(len0)),
            0x80 => {
                return Err(invalid(
                    "indefinite-length BER is not allowed in LDAP (RFC 4511 §5.1)".into(),
                ))
            }
            0x81..=0x84 => {
                let n = usize::from(len0 & 0x7f);
                let Some(octets) = buf.get(2..2 + n) else {
                    return Ok(None);
                };
                let len = octets
                    .iter()
                    .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                let len = usize::try_from(len)
                    .map_err(|_| invalid(format!("PDU length {len} does not fit in memory")))?;
                (2 + n, len)
            }
            _ => {
                return Err(invalid(format!(
                    "PDU length uses {} octets; at most 4 are supported",
                    len0 & 0x7f
                )))
            }
        };
        let total = header.saturating_add(body);
        if total > self.max_pdu {
            return Err(invalid(format!(
                "PDU of {total} bytes exceeds the limit of {} bytes",
                self.max_pdu
            )));
        }
        if buf.len() < total {
            buf.reserve((total - buf.len()).min(MAX_RESERVE));
            return Ok(None);
        }
        Ok(Some(buf.split_to(total)))
    }
}

impl FrameEncoder<LdapMessage> for LdapCodec {
    type Error = io::Error;

    fn encode(&mut self, msg: LdapMessage, dst: &mut BytesMut) -> io::Result<()> {
        FrameEncoder::<&LdapMessage>::encode(self, &msg, dst)
    }
}

impl FrameEncoder<&LdapMessage> for LdapCodec {
    type Error = io::Error;

    fn encode(&mut self, msg: &LdapMessage, dst: &mut BytesMut) -> io::Result<()> {
        let bytes = encode_message(msg)?;
        dst.extend_from_slice(&bytes);
        Ok(())
    }
}

/// Pre-encoded PDUs (e.g. cached entries) are written as they are.
impl FrameEncoder<Bytes> for LdapCodec {
    type Error = io::Error;

    fn encode(&mut self, pdu: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        dst.extend_from_slice(&pdu);
        Ok(())
    }
}

/// Encode one message to BER.
pub fn encode_message(msg: &LdapMessage) -> io::Result<Vec<u8>> {
    rasn::ber::encode(msg).map_err(|e| invalid(format!("cannot encode LDAPMessage: {e}")))
}

/// Decode exactly one `LDAPMessage` from a frame produced by `LdapCodec`.
pub fn decode_message(frame: &[u8]) -> Result<LdapMessage, DecodeError> {
    let (msg, rest) = rasn::ber::decode_with_remainder::<LdapMessage>(frame)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}

/// Read the messageID and the protocolOp's BER identifier octet of a frame by hand, without
/// decoding the op. `None` if even that much is unreadable (or the id is out of range).
pub fn peek(frame: &[u8]) -> Option<(MessageId, u8)> {
    let (tag, body, _) = tlv(frame)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, id, rest) = tlv(body)?;
    if tag != 0x02 {
        return None;
    }
    let id = message_id(id)?;
    let op = *rest.first()?;
    Some((id, op))
}

/// Decide the answer to a frame that `decode_message` rejected (RFC 4511 §4.1.1, §4.4.1):
/// - messageID unreadable, or the op is not a request: Notice of Disconnection, close;
/// - a bind whose AuthenticationChoice is neither simple nor SASL: authMethodNotSupported
///   (RFC 4511 §4.2);
/// - any other request: its response type with protocolError;
/// - unbind and abandon, which have no response: nothing.
pub fn undecodable(frame: &[u8], error: &DecodeError) -> Undecodable {
    let Some((id, tag)) = peek(frame) else {
        return Undecodable::Disconnect(notice_of_disconnection(
            ResultCode::ProtocolError,
            "malformed LDAPMessage",
        ));
    };
    // 0x42 UnbindRequest, 0x50 AbandonRequest ([APPLICATION 2/16], primitive).
    if tag == 0x42 || tag == 0x50 {
        return Undecodable::Ignore;
    }
    let result = if tag == 0x60 && !bind_choice_known(frame) {
        LdapResult::new(
            ResultCode::AuthMethodNotSupported,
            "",
            "only simple and SASL authentication are supported",
        )
    } else {
        LdapResult::new(ResultCode::ProtocolError, "", &error.to_string())
    };
    match ProtocolOp::response_to(tag, result) {
        Some(op) => Undecodable::Reply(LdapMessage::new(id, op)),
        None => Undecodable::Disconnect(notice_of_disconnection(
            ResultCode::ProtocolError,
            "unrecognised protocol operation",
        )),
    }
}

/// RFC 4511 §4.4.1 Notice of Disconnection: an unsolicited ExtendedResponse with messageID 0
/// and responseName 1.3.6.1.4.1.1466.20036, sent just before the server closes the connection.
pub fn notice_of_disconnection(code: ResultCode, message: &str) -> LdapMessage {
    LdapMessage::new(
        0,
        ProtocolOp::ExtendedResponse(ExtendedResponse::new(
            LdapResult::new(code, "", message),
            Some(NOTICE_OF_DISCONNECTION),
            None,
        )),
    )
}

/// Whether a bind frame's AuthenticationChoice is one we decode: `simple [0]` (0x80) or
/// `sasl [3]` (0xa3). An unparseable prefix counts as known (the answer is protocolError).
fn bind_choice_known(frame: &[u8]) -> bool {
    let auth_tag = (|| {
        let (_, body, _) = tlv(frame)?;
        let (_, _, rest) = tlv(body)?; // messageID
        let (_, bind, _) = tlv(rest)?; // [APPLICATION 0]
        let (_, _, rest) = tlv(bind)?; // version
        let (_, _, rest) = tlv(rest)?; // name
        rest.first().copied()
    })();
    match auth_tag {
        Some(tag) => tag == 0x80 || tag == 0xa3,
        None => true,
    }
}

/// One BER TLV with a single-octet tag and a definite length: (tag, contents, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers do not occur in LDAP
    }
    let (&len0, rest) = rest.split_first()?;
    let (len, rest) = match len0 {
        0..=0x7f => (usize::from(len0), rest),
        0x81..=0x84 => {
            let n = usize::from(len0 & 0x7f);
            let octets = rest.get(..n)?;
            let len = octets
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, rest.get(n..)?)
        }
        _ => return None,
    };
    let contents = rest.get(..len)?;
    Some((tag, contents, rest.get(len..)?))
}

/// An INTEGER's contents as a MessageID (0 ..= 2^31-1, RFC 4511 §4.1.1).
fn message_id(contents: &[u8]) -> Option<MessageId> {
    if contents.is_empty() || contents.len() > 5 || contents[0] & 0x80 != 0 {
        return None;
    }
    let v = contents
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    u32::try_from(v).ok().filter(|&v| v <= MAX_INT)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::ldap::controls::{BerValue, PagedResults, PasswdModifyRequest, MANAGE_DSA_IT};
    use crate::ldap::proto::*;
    use rasn::types::OctetString;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/pdu/{name}.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap()
    }

    /// Frame the fixture, decode it, check it re-encodes to the same bytes.
    fn decode_fixture(name: &str) -> LdapMessage {
        let bytes = fixture(name);
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = LdapCodec::default().decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        let msg = decode_message(&frame).unwrap();
        assert_eq!(
            encode_message(&msg).unwrap(),
            bytes,
            "{name} re-encodes identically"
        );
        assert_eq!(
            peek(&frame),
            Some((msg.message_id, msg.protocol_op.tag_byte()))
        );
        msg
    }

    fn av(s: &str, v: &[u8]) -> AttributeValueAssertion {
        AttributeValueAssertion::new(s, v)
    }

    #[test]
    fn ldapsearch_binary_filter_with_paged_control() {
        let msg = decode_fixture("search_guid_paged");
        assert_eq!(msg.message_id, 2);
        let ProtocolOp::SearchRequest(s) = &msg.protocol_op else {
            panic!("{msg:?}")
        };
        assert_eq!(s.base_object, "dc=example,dc=com");
        assert_eq!(s.scope, SearchScope::WholeSubtree);
        assert_eq!(
            s.filter,
            Filter::EqualityMatch(av("objectGUID", b"\xff\xfe\x00\x01"))
        );
        let c = &msg.controls()[0];
        assert!(c.is(crate::ldap::controls::PAGED_RESULTS));
        assert!(!c.criticality);
        assert_eq!(
            PagedResults::from_ber(c.value()).unwrap(),
            PagedResults::new(5, vec![])
        );
    }

    #[test]
    fn ldapsearch_children_scope_and_complex_filter() {
        let msg = decode_fixture("search_children_complex");
        let ProtocolOp::SearchRequest(s) = &msg.protocol_op else {
            panic!("{msg:?}")
        };
        assert_eq!(s.scope, SearchScope::Children);
        assert_eq!(s.attributes, vec![LdapString::from("cn"), "mail".into()]);
        let Filter::And(parts) = &s.filter else {
            panic!("{:?}", s.filter)
        };
        assert_eq!(parts.len(), 7);
        assert_eq!(
            parts[0],
            Filter::Or(vec![
                Filter::Substrings(SubstringFilter {
                    attr_type: "cn".into(),
                    substrings: vec![
                        Substring::Initial(OctetString::from_static(b"Al")),
                        Substring::Any(OctetString::from_static(b"ce")),
                        Substring::Any(OctetString::from_static(b"Li")),
                        Substring::Final(OctetString::from_static(b"l")),
                    ],
                }),
                Filter::Substrings(SubstringFilter {
                    attr_type: "mail".into(),
                    substrings: vec![Substring::Final(OctetString::from_static(b"@example.com"))],
                }),
            ])
        );
        assert_eq!(
            parts[1],
            Filter::Not(Box::new(Filter::EqualityMatch(av("uid", b"bob"))))
        );
        assert_eq!(parts[2], Filter::GreaterOrEqual(av("uid", b"a")));
        assert_eq!(parts[3], Filter::LessOrEqual(av("uid", b"b")));
        assert_eq!(parts[4], Filter::ApproxMatch(av("cn", b"alice")));
        assert_eq!(
            parts[5],
            Filter::ExtensibleMatch(MatchingRuleAssertion {
                matching_rule: Some("caseExactMatch".into()),
                attr_type: Some("cn".into()),
                match_value: OctetString::from_static(b"Alice"),
                dn_attributes: false,
            })
        );
        assert_eq!(
            parts[6],
            Filter::ExtensibleMatch(MatchingRuleAssertion {
                matching_rule: Some("2.5.13.5".into()),
                attr_type: None,
                match_value: OctetString::from_static(b"people"),
                dn_attributes: true,
            })
        );
    }

    #[test]
    fn binds_whoami_unbind() {
        let msg = decode_fixture("bind_anonymous");
        assert_eq!(
            msg.protocol_op,
            ProtocolOp::BindRequest(BindRequest::simple("", b""))
        );
        let msg = decode_fixture("bind_simple");
        assert_eq!(
            msg.protocol_op,
            ProtocolOp::BindRequest(BindRequest::simple("cn=admin,dc=example,dc=com", b"secret"))
        );
        let msg = decode_fixture("whoami");
        assert_eq!(
            msg.protocol_op,
            ProtocolOp::ExtendedRequest(ExtendedRequest::new(
                crate::ldap::controls::WHO_AM_I,
                None
            ))
        );
        let msg = decode_fixture("unbind");
        assert_eq!(msg.protocol_op, ProtocolOp::UnbindRequest(()));
        assert_eq!(msg.message_id, 3);
    }

    #[test]
    fn ldapadd_keeps_value_order() {
        let msg = decode_fixture("add");
        let ProtocolOp::AddRequest(a) = &msg.protocol_op else {
            panic!("{msg:?}")
        };
        assert_eq!(a.entry, "cn=test,dc=example,dc=com");
        let sn = a.attributes.iter().find(|a| a.attr_type == "sn").unwrap();
        assert_eq!(
            sn.vals.iter().collect::<Vec<_>>(),
            vec![&b"zz"[..], b"aa", b"mm"]
        );
    }

    #[test]
    fn ldapmodify_increment() {
        let msg = decode_fixture("modify_increment");
        let ProtocolOp::ModifyRequest(m) = &msg.protocol_op else {
            panic!("{msg:?}")
        };
        assert_eq!(m.changes[0].operation, ModifyOperation::Increment);
        assert_eq!(
            m.changes[0].modification,
            PartialAttribute::new("uidNumber", vec![b"1".to_vec()])
        );
        assert_eq!(m.changes[1].operation, ModifyOperation::Replace);
    }

    #[test]
    fn ldappasswd_request_value() {
        let msg = decode_fixture("passwd_modify");
        let ProtocolOp::ExtendedRequest(x) = &msg.protocol_op else {
            panic!("{msg:?}")
        };
        assert_eq!(x.request_name, crate::ldap::controls::PASSWORD_MODIFY);
        let v = PasswdModifyRequest::from_ber(x.request_value.as_deref().unwrap()).unwrap();
        assert_eq!(
            v.user_identity.as_deref(),
            Some(&b"uid=alice,dc=example,dc=com"[..])
        );
        assert_eq!(v.old_passwd.as_deref(), Some(&b"old"[..]));
        assert_eq!(v.new_passwd.as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn modrdn_delete_compare_managedsait() {
        let msg = decode_fixture("modrdn");
        assert_eq!(
            msg.protocol_op,
            ProtocolOp::ModifyDnRequest(ModifyDnRequest {
                entry: "cn=test,dc=example,dc=com".into(),
                new_rdn: "cn=test2".into(),
                delete_old_rdn: true,
                new_superior: Some("ou=new,dc=example,dc=com".into()),
            })
        );
        let msg = decode_fixture("delete");
        assert_eq!(
            msg.protocol_op,
            ProtocolOp::DelRequest("cn=test,dc=example,dc=com".into())
        );
        let msg = decode_fixture("compare");
        let ProtocolOp::CompareRequest(c) = &msg.protocol_op else {
            panic!("{msg:?}")
        };
        assert_eq!(c.ava, av("sn", b"zz"));
        let msg = decode_fixture("search_rootdse_managedsait");
        let ProtocolOp::SearchRequest(s) = &msg.protocol_op else {
            panic!("{msg:?}")
        };
        assert_eq!(s.scope, SearchScope::BaseObject);
        assert_eq!(s.filter, Filter::Present("objectClass".into()));
        assert!(msg.controls()[0].is(MANAGE_DSA_IT));
    }

    #[test]
    fn sort_and_ppolicy_controls() {
        let msg = decode_fixture("search_sort");
        let c = &msg.controls()[0];
        assert!(c.is(crate::ldap::controls::SORT_REQUEST));
        let keys = crate::ldap::controls::SortRequest::from_ber(c.value()).unwrap();
        assert_eq!(keys.0.len(), 2);
        assert!(keys.0[1].reverse_order);
        let msg = decode_fixture("bind_ppolicy");
        let c = &msg.controls()[0];
        assert!(c.is(crate::ldap::controls::PASSWORD_POLICY));
        assert!(c.control_value.is_none());
    }

    #[test]
    fn framer_waits_for_partial_input() {
        let bytes = fixture("search_guid_paged");
        let mut codec = LdapCodec::default();
        let mut buf = BytesMut::new();
        for (i, b) in bytes.iter().enumerate() {
            assert!(codec.decode(&mut buf).unwrap().is_none(), "at {i}");
            buf.extend_from_slice(&[*b]);
        }
        // Two PDUs back to back plus the start of a third.
        buf.extend_from_slice(&bytes);
        buf.extend_from_slice(&bytes[..3]);
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], &bytes[..]);
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], &bytes[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert_eq!(&buf[..], &bytes[..3]);
    }

    #[test]
    fn framer_long_form_lengths() {
        let mut codec = LdapCodec::default();
        // 0x81 with the length byte still missing.
        let mut buf = BytesMut::from(&[0x30, 0x82, 0x01][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        // Non-minimal long form is legal BER: 30 84 00 00 00 02 <2 bytes>.
        let mut buf = BytesMut::from(&[0x30, 0x84, 0, 0, 0, 2, 0xaa, 0xbb, 0x30][..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().len(), 8);
        assert_eq!(&buf[..], &[0x30]);
    }

    fn framer_error(input: &[u8], max: usize) -> String {
        let err = LdapCodec::new(max)
            .decode(&mut BytesMut::from(input))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        err.to_string()
    }

    #[test]
    fn framer_rejects_bad_headers() {
        assert!(framer_error(&[0x30, 0x80, 0x02, 0x01], 100).contains("indefinite"));
        assert!(framer_error(&[0x31, 0x00], 100).contains("0x31"));
        assert!(framer_error(b"GET / HTTP/1.1\r\n", 100).contains("0x47"));
        assert!(framer_error(&[0x30, 0x85, 1, 0, 0, 0, 0], 100).contains("5 octets"));
        assert!(framer_error(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], 1 << 20).contains("exceeds"));
        assert!(framer_error(&[0x30, 0x64], 100).contains("102 bytes exceeds the limit of 100"));
        // exactly at the limit is fine
        let mut buf = BytesMut::from(&[0x30, 0x62][..]);
        assert!(LdapCodec::new(100).decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn framer_encodes_messages_and_bytes() {
        let mut codec = LdapCodec::default();
        let mut out = BytesMut::new();
        let msg = LdapMessage::new(7, ProtocolOp::SearchResultDone(LdapResult::success()));
        codec.encode(msg.clone(), &mut out).unwrap();
        codec.encode(&msg, &mut out).unwrap();
        codec
            .encode(Bytes::from_static(b"\x30\x00"), &mut out)
            .unwrap();
        assert_eq!(out.len(), 14 + 14 + 2);
        let first = codec.decode(&mut out).unwrap().unwrap();
        assert_eq!(decode_message(&first).unwrap(), msg);
    }

    #[test]
    fn trailing_bytes_inside_frame_are_rejected() {
        // 30 07 02 01 03 42 00 | 00 00: the SEQUENCE says 7 but the message is 5
        let frame = [0x30, 0x07, 0x02, 0x01, 0x03, 0x42, 0x00, 0x00, 0x00];
        // rasn reads the SEQUENCE contents; the extra component inside is an error too.
        assert!(decode_message(&frame).is_err());
        let two = [0x30, 0x05, 0x02, 0x01, 0x03, 0x42, 0x00, 0x30, 0x00];
        assert!(matches!(
            decode_message(&two),
            Err(DecodeError::TrailingBytes(2))
        ));
    }

    /// A SearchRequest whose filter is `depth` nested NOTs around (a=b), built by hand so
    /// building it needs no recursion.
    fn deep_not_search(depth: usize) -> Vec<u8> {
        fn header(tag: u8, len: usize, out: &mut Vec<u8>) {
            out.push(tag);
            if len < 0x80 {
                out.push(len as u8);
            } else {
                out.extend_from_slice(&[0x84]);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
        }
        let mut filter = vec![0xa3, 0x06, 0x04, 0x01, b'a', 0x04, 0x01, b'b'];
        // Build inside-out by prepending headers in reverse order: collect headers first.
        let mut headers = Vec::with_capacity(depth);
        let mut len = filter.len();
        for _ in 0..depth {
            let mut h = Vec::new();
            header(0xa2, len, &mut h);
            len += h.len();
            headers.push(h);
        }
        let mut f = Vec::with_capacity(len);
        for h in headers.iter().rev() {
            f.extend_from_slice(h);
        }
        f.append(&mut filter);
        let mut body = vec![
            0x04, 0x00, 0x0a, 0x01, 0x02, 0x0a, 0x01, 0x00, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00,
            0x01, 0x01, 0x00,
        ];
        body.extend_from_slice(&f);
        body.extend_from_slice(&[0x30, 0x00]);
        let mut op = Vec::new();
        header(0x63, body.len(), &mut op);
        op.extend_from_slice(&body);
        let mut msg = vec![0x02, 0x01, 0x05];
        msg.extend_from_slice(&op);
        let mut pdu = Vec::new();
        header(0x30, msg.len(), &mut pdu);
        pdu.extend_from_slice(&msg);
        pdu
    }

    #[test]
    fn deep_filters_are_rejected_without_overflow() {
        let pdu = deep_not_search(100_000);
        let err = decode_message(&pdu).unwrap_err();
        assert_eq!(
            undecodable(&pdu, &err),
            Undecodable::Reply(LdapMessage::new(
                5,
                ProtocolOp::SearchResultDone(LdapResult::new(
                    ResultCode::ProtocolError,
                    "",
                    &err.to_string()
                ))
            ))
        );
        // rasn's budget of 128 levels per message allows 125 nested NOTs in a SearchRequest.
        assert!(decode_message(&deep_not_search(125)).is_ok());
        assert!(decode_message(&deep_not_search(126)).is_err());
    }

    #[test]
    fn deepest_filter_decodes_on_a_small_stack() {
        // Debug build, 256 KiB: a connection task on a tokio worker has 2 MiB.
        let pdu = deep_not_search(125);
        let t = std::thread::Builder::new().stack_size(256 * 1024);
        let ok = t
            .spawn(move || decode_message(&pdu).is_ok())
            .unwrap()
            .join()
            .unwrap();
        assert!(ok);
    }

    #[test]
    fn peek_reads_id_and_tag() {
        assert_eq!(
            peek(&[0x30, 0x05, 0x02, 0x01, 0x03, 0x42, 0x00]),
            Some((3, 0x42))
        );
        // msgid 0x7fffffff with a garbage op
        assert_eq!(
            peek(&[0x30, 0x07, 0x02, 0x04, 0x7f, 0xff, 0xff, 0xff, 0x99]),
            Some((MAX_INT, 0x99))
        );
        assert_eq!(peek(&[0x30, 0x03, 0x02, 0x01, 0x80]), None); // negative, no op
        assert_eq!(peek(&[0x30, 0x03, 0x02, 0x01, 0x01]), None); // no op
        assert_eq!(peek(&[0x30, 0x04, 0x04, 0x01, 0x01, 0x60]), None); // not INTEGER
        assert_eq!(
            peek(&[0x30, 0x09, 0x02, 0x05, 0x00, 0x80, 0, 0, 0, 0x60]),
            None
        ); // > maxInt
        assert_eq!(peek(&[0x30]), None);
        assert_eq!(peek(&[]), None);
    }

    fn bind_with_auth(auth: &[u8]) -> Vec<u8> {
        let mut bind = vec![0x02, 0x01, 0x03, 0x04, 0x00];
        bind.extend_from_slice(auth);
        let mut msg = vec![0x02, 0x01, 0x09, 0x60, bind.len() as u8];
        msg.extend_from_slice(&bind);
        let mut pdu = vec![0x30, msg.len() as u8];
        pdu.extend_from_slice(&msg);
        pdu
    }

    fn answer(frame: &[u8]) -> Undecodable {
        let err = decode_message(frame).unwrap_err();
        undecodable(frame, &err)
    }

    fn reply_code(u: Undecodable) -> (u32, u8, ResultCode) {
        let Undecodable::Reply(m) = u else {
            panic!("{u:?}")
        };
        let code = match &m.protocol_op {
            ProtocolOp::BindResponse(r) => r.result_code,
            ProtocolOp::ExtendedResponse(r) => r.result_code,
            ProtocolOp::SearchResultDone(r)
            | ProtocolOp::ModifyResponse(r)
            | ProtocolOp::AddResponse(r)
            | ProtocolOp::DelResponse(r) => r.result_code,
            other => panic!("{other:?}"),
        };
        (m.message_id, m.protocol_op.tag_byte(), code)
    }

    #[test]
    fn undecodable_bind_choices() {
        // MS Sicily [9] (0x89): unknown AuthenticationChoice.
        let sicily = bind_with_auth(&[0x89, 0x00]);
        assert_eq!(
            reply_code(answer(&sicily)),
            (9, 0x61, ResultCode::AuthMethodNotSupported)
        );
        // Known choice, broken contents: protocolError.
        let broken = bind_with_auth(&[0xa3, 0x02, 0x05, 0x00]);
        assert_eq!(
            reply_code(answer(&broken)),
            (9, 0x61, ResultCode::ProtocolError)
        );
        // Sanity: a correct simple bind decodes.
        assert!(decode_message(&bind_with_auth(&[0x80, 0x01, b'x'])).is_ok());
    }

    #[test]
    fn undecodable_requests_get_protocol_error() {
        // Non-UTF-8 DN in a delete: 4a 01 ff
        let del = [0x30, 0x06, 0x02, 0x01, 0x04, 0x4a, 0x01, 0xff];
        assert_eq!(
            reply_code(answer(&del)),
            (4, 0x6b, ResultCode::ProtocolError)
        );
        // Search with scope 7.
        let mut search = fixture("search_guid_paged");
        let at = search
            .windows(3)
            .position(|w| w == [0x0a, 0x01, 0x02])
            .unwrap();
        search[at + 2] = 7;
        assert_eq!(
            reply_code(answer(&search)),
            (2, 0x65, ResultCode::ProtocolError)
        );
        // Extended request without a name.
        let ext = [0x30, 0x05, 0x02, 0x01, 0x06, 0x77, 0x00];
        assert_eq!(
            reply_code(answer(&ext)),
            (6, 0x78, ResultCode::ProtocolError)
        );
        // Broken abandon: nothing to answer.
        let abandon = [0x30, 0x05, 0x02, 0x01, 0x06, 0x50, 0x00];
        assert_eq!(answer(&abandon), Undecodable::Ignore);
    }

    #[test]
    fn undecodable_without_id_disconnects() {
        let frame = [0x30, 0x03, 0x04, 0x01, 0x00];
        let Undecodable::Disconnect(notice) = answer(&frame) else {
            panic!()
        };
        assert_eq!(
            notice,
            notice_of_disconnection(ResultCode::ProtocolError, "malformed LDAPMessage")
        );
        // A response op sent by a client is not a request: disconnect.
        let frame = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x63, 0x04, 0x00, 0x04, 0x00,
        ];
        assert!(matches!(answer(&frame), Undecodable::Disconnect(_)));
    }

    #[test]
    fn notice_of_disconnection_bytes() {
        let bytes =
            encode_message(&notice_of_disconnection(ResultCode::ProtocolError, "")).unwrap();
        let mut want = vec![
            0x30, 0x24, 0x02, 0x01, 0x00, 0x78, 0x1f, 0x0a, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00,
            0x8a, 0x16,
        ];
        want.extend_from_slice(b"1.3.6.1.4.1.1466.20036");
        assert_eq!(bytes, want);
    }
}
