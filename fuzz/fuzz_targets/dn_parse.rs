//! libFuzzer entry point for `bodies/dn_parse.rs` (see its header for what is checked).
#![no_main]

#[path = "../bodies/dn_parse.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
