//! Fuzz body (shared by `fuzz_targets/config_load.rs` and `tests/fuzz_smoke.rs`): the config
//! loader (TOML syntax, then dird's own validation of every key) on arbitrary text.
//! Checks that `Config::parse` never panics and that every error it returns has a message.

use dird::config::Config;

/// Runs the target on one input; panics on a bug.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text) {
        Ok(c) => {
            let _ = c.tier.limits();
            let _ = c.tier.name();
        }
        Err(e) => assert!(!e.to_string().is_empty(), "empty error for {text:?}"),
    }
}
