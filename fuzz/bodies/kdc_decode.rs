//! Fuzz body (shared by `fuzz_targets/kdc_decode.rs` and `tests/fuzz_smoke.rs`): the KDC and
//! kpasswd request decoders must never panic on any input.
//! Drives `kdc::codec::decode_request` (AS-REQ / TGS-REQ via rasn-kerberos), the raw
//! KDC-REQ-BODY slicer, the TCP record mark check, and the kpasswd frame + inner decoders.

use dird::kdc::{codec, kpasswd};

/// Runs the target on one input; panics on a bug.
pub fn run(data: &[u8]) {
    let _ = codec::decode_request(data);
    let _ = codec::raw_req_body(data);
    if let Some(header) = data.get(..4) {
        let _ = codec::record_length([header[0], header[1], header[2], header[3]], 64 * 1024);
    }
    if let Some(frame) = kpasswd::parse_frame(data) {
        let _ = codec::decode::<rasn_kerberos::ApReq>(frame.ap_req, "AP-REQ");
        let _ = codec::decode::<rasn_kerberos::KrbPriv>(frame.krb_priv, "KRB-PRIV");
    }
    let _ = codec::decode::<kpasswd::ChangePasswdData>(data, "ChangePasswdData");
    let _ = codec::decode::<rasn_kerberos::Authenticator>(data, "Authenticator");
    let _ = codec::decode::<rasn_kerberos::EncTicketPart>(data, "EncTicketPart");
}
