//! libFuzzer entry point for `bodies/ldap_dispatch.rs` (see its header for what is checked).
#![no_main]

#[path = "../bodies/ldap_dispatch.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
