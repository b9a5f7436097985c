//! Fuzz body (shared by `fuzz_targets/radius_reply.rs` and `tests/fuzz_smoke.rs`): the RADIUS
//! reply parser (`dird::mfa::radius::decode_reply`) on arbitrary datagrams.
//! Checks that it never panics, with and without a required Message-Authenticator, for a
//! request whose Identifier is taken from the input (so that the checks past the Identifier
//! are reached), and that nothing it accepts is accepted without a valid Response
//! Authenticator (random input practically never has one: an accepted reply is re-checked
//! against another secret, which must refuse it).

use dird::mfa::radius::{decode_reply, encode_access_request, AccessRequest, Secret};

/// Runs the target on one input; panics on a bug.
pub fn run(data: &[u8]) {
    let secret = Secret::new(b"fuzz-secret");
    let id = data.get(1).copied().unwrap_or(0);
    let Ok(request) = encode_access_request(
        id,
        [0x5a; 16],
        &secret,
        &AccessRequest {
            user_name: b"alice",
            password: b"123456",
            nas_identifier: b"dird",
            state: None,
        },
    ) else {
        panic!("a fixed request must encode");
    };
    for require in [false, true] {
        if decode_reply(data, &request, &secret, require).is_ok() {
            let other = Secret::new(b"another-secret");
            assert!(
                decode_reply(data, &request, &other, require).is_err(),
                "a reply verified under two secrets"
            );
        }
    }
}
