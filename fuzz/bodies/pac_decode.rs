//! Fuzz body (shared by `fuzz_targets/pac_decode.rs` and `tests/fuzz_smoke.rs`): the MS-PAC
//! decoders (`kdc::pac`) must never panic and stay bounded on any input, and a
//! KERB_VALIDATION_INFO that decodes must survive an encode/decode round trip unchanged.
//! The PAC comes from a ticket, i.e. from whoever holds a service or inter-realm key.

use dird::kdc::pac::{ClientInfo, LogonInfo, Pac, UpnDnsInfo};

/// Runs the target on one input; panics on a bug.
pub fn run(data: &[u8]) {
    if let Ok(pac) = Pac::decode(data) {
        let _ = pac.logon_info();
        let _ = pac.client_info();
        let _ = pac.upn_dns_info();
        for t in pac.types() {
            let _ = pac.signature(t);
        }
        let _ = pac.data_buffers();
    }
    if let Ok(li) = LogonInfo::decode(data) {
        let again = LogonInfo::decode(&li.encode()).expect("our own LOGON_INFO decodes");
        assert_eq!(again, li, "LOGON_INFO round trip");
    }
    let _ = ClientInfo::decode(data);
    let _ = UpnDnsInfo::decode(data);
}
