//! libFuzzer entry point for `bodies/dc_locator.rs` (see its header for what is checked).
#![no_main]

#[path = "../bodies/dc_locator.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
