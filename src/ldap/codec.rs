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
