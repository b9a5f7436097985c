//! libFuzzer entry point for `bodies/config_load.rs` (see its header for what is checked).
#![no_main]

#[path = "../bodies/config_load.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
