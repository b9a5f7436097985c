//! libFuzzer entry point for `bodies/sasl_token.rs` (see its header for what is checked).
#![no_main]

#[path = "../bodies/sasl_token.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
