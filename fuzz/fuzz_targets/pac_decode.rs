//! libFuzzer entry point for `bodies/pac_decode.rs` (see its header for what is checked).
#![no_main]

#[path = "../bodies/pac_decode.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
