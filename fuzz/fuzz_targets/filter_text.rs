//! libFuzzer entry point for `bodies/filter_text.rs` (see its header for what is checked).
#![no_main]

#[path = "../bodies/filter_text.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
