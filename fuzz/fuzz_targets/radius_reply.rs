//! libFuzzer entry point for `bodies/radius_reply.rs` (see its header for what is checked).
#![no_main]

#[path = "../bodies/radius_reply.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
