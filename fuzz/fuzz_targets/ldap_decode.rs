//! Fuzz the LDAP wire path as the connection loop drives it: frame the input with `LdapCodec`,
//! decode every frame, decide the answer for undecodable ones, decode every known control value,
//! convert search filters to the model, and re-encode what decoded.
//! Seeds: tests/fixtures/pdu/*.bin (`cargo fuzz run ldap_decode fuzz/corpus/ldap_decode ../tests/fixtures/pdu`).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder as FrameDecoder;

use dird::ldap::codec::{decode_message, encode_message, peek, undecodable, LdapCodec};
use dird::ldap::controls::{
    BerValue, PagedResults, PasswdModifyRequest, PasswdModifyResponse, PasswordPolicyResponse,
    SortRequest, SortResponse, PASSWORD_MODIFY,
};
use dird::ldap::convert::{filter_from_model, filter_to_model};
use dird::ldap::proto::ProtocolOp;

fuzz_target!(|data: &[u8]| {
    // Small cap so that length handling near the limit is exercised too.
    let mut codec = LdapCodec::new(64 * 1024);
    let mut buf = BytesMut::from(data);
    loop {
        let frame = match codec.decode(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => break,
        };
        let _ = peek(&frame);
        let msg = match decode_message(&frame) {
            Ok(msg) => msg,
            Err(err) => {
                let _ = undecodable(&frame, &err);
                continue;
            }
        };
        for control in msg.controls() {
            let v = control.value();
            let _ = PagedResults::from_ber(v);
            let _ = PasswordPolicyResponse::from_ber(v);
            let _ = SortRequest::from_ber(v);
            let _ = SortResponse::from_ber(v);
        }
        match &msg.protocol_op {
            ProtocolOp::SearchRequest(s) => {
                if let Ok(model) = filter_to_model(&s.filter) {
                    let _ = filter_from_model(&model);
                    let _ = dird::ldap::filter_text::format(&model);
                }
            }
            ProtocolOp::ExtendedRequest(x) if x.request_name == PASSWORD_MODIFY => {
                let v = x.request_value.as_deref().unwrap_or_default();
                let _ = PasswdModifyRequest::from_ber(v);
                let _ = PasswdModifyResponse::from_ber(v);
            }
            _ => {}
        }
        // Whatever decodes must encode again and decode to the same message.
        if let Ok(bytes) = encode_message(&msg) {
            let again = decode_message(&bytes);
            assert!(
                matches!(again, Ok(ref m) if *m == msg),
                "re-encode mismatch"
            );
        }
    }
});
