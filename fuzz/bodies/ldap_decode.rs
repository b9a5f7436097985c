//! Fuzz body (shared by `fuzz_targets/ldap_decode.rs` and `tests/fuzz_smoke.rs`): the LDAP
//! codec on arbitrary bytes.
//! Drives the framer (`LdapCodec` with a small cap, over the input as a byte stream),
//! `decode_message`, `peek` and `undecodable` on every frame and on the whole input, request
//! typing (`request::controls`, `Request::try_from`), search filter conversion to the model and
//! back, and every control and extended-operation value decoder. Checks that nothing panics, and that every message that decodes re-encodes
//! to BER that decodes back to the same message (likewise for every control value).

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use dird::ldap::codec::{self, LdapCodec};
use dird::ldap::controls::{
    BerValue, PagedResults, PasswdModifyRequest, PasswdModifyResponse, PasswordPolicyResponse,
    SortRequest, SortResponse,
};
use dird::ldap::convert::{filter_from_model, filter_to_model};
use dird::ldap::filter_text;
use dird::ldap::proto::ProtocolOp;
use dird::ldap::request::{self, Request};

/// Runs the target on one input; panics on a bug.
pub fn run(data: &[u8]) {
    // The input as a stream: frames until the framer wants more or refuses the header.
    let mut framer = LdapCodec::new(64 * 1024);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = framer.decode(&mut buf) {
        frame_body(&frame);
    }
    // The input as one frame (the framer's checks skipped).
    frame_body(data);
    // The input as every kind of value.
    values(data);
}

fn frame_body(frame: &[u8]) {
    let _ = codec::peek(frame);
    let msg = match codec::decode_message(frame) {
        Ok(m) => m,
        Err(e) => {
            let _ = codec::undecodable(frame, &e);
            return;
        }
    };
    let bytes = codec::encode_message(&msg)
        .unwrap_or_else(|e| panic!("decoded message does not encode: {e}: {msg:?}"));
    let back = codec::decode_message(&bytes)
        .unwrap_or_else(|e| panic!("re-encoded message does not decode: {e}: {msg:?}"));
    assert_eq!(back, msg, "round trip changed the message");
    for c in msg.controls() {
        values(c.value());
    }
    match &msg.protocol_op {
        ProtocolOp::ExtendedRequest(x) => {
            if let Some(v) = &x.request_value {
                values(v);
            }
        }
        ProtocolOp::SearchRequest(s) => {
            // Whatever converts to the model converts back and formats as text.
            if let Ok(model) = filter_to_model(&s.filter) {
                let _ = filter_from_model(&model);
                let _ = filter_text::format(&model);
            }
        }
        _ => {}
    }
    let _ = request::controls(&msg);
    let _ = Request::try_from(msg.protocol_op);
}

fn values(v: &[u8]) {
    round_trip::<PagedResults>(v);
    round_trip::<PasswdModifyRequest>(v);
    round_trip::<PasswdModifyResponse>(v);
    round_trip::<PasswordPolicyResponse>(v);
    round_trip::<SortRequest>(v);
    round_trip::<SortResponse>(v);
}

fn round_trip<T: BerValue + PartialEq + std::fmt::Debug>(v: &[u8]) {
    let Ok(value) = T::from_ber(v) else { return };
    let bytes = value
        .to_ber()
        .unwrap_or_else(|e| panic!("{} value does not encode: {e}: {value:?}", T::OID));
    let back = T::from_ber(&bytes)
        .unwrap_or_else(|e| panic!("{} value does not decode back: {e}: {value:?}", T::OID));
    assert_eq!(back, value, "{} value round trip", T::OID);
}
