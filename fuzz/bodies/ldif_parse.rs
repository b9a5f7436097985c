//! Fuzz body (shared by `fuzz_targets/ldif_parse.rs` and `tests/fuzz_smoke.rs`): the LDIF
//! reader on arbitrary bytes.
//! Checks that the reader never panics, that it terminates, and that every record it
//! accepts is written back by `LdifWriter` as LDIF that reads back equal.
//! The first input byte picks the `BufReader` capacity, so records split across buffer
//! refills (a CR at a chunk end, a fold at a chunk start) are exercised too.

use std::io::BufReader;

use dird::ldif::{parse_str, to_string, LdifReader};

/// Runs the target on one input; panics on a bug.
pub fn run(data: &[u8]) {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let capacity = 1 + usize::from(first % 64);
    let reader = LdifReader::new(BufReader::with_capacity(capacity, input))
        .with_limits(64 * 1024, 1024 * 1024);
    for item in reader {
        let Ok(record) = item else { continue };
        let text = to_string(std::slice::from_ref(&record));
        let back = parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, [record], "\n{text}");
    }
}
