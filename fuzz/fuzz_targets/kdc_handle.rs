//! libFuzzer entry point for `bodies/kdc_handle.rs` (see its header for what is checked).
#![no_main]

#[path = "../bodies/kdc_handle.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
