//! Fuzz the RFC 4515 parser: it must never panic, and whatever parses must format to text
//! that parses back to the same filter, and convert to the wire form and back.
#![no_main]

use libfuzzer_sys::fuzz_target;

use dird::ldap::convert::{filter_from_model, filter_to_model};
use dird::ldap::filter_text::{format, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(filter) = parse(text) else {
        return;
    };
    let formatted = format(&filter);
    assert_eq!(
        parse(&formatted).as_ref(),
        Ok(&filter),
        "format/parse mismatch: {formatted}"
    );
    if let Ok(wire) = filter_from_model(&filter) {
        assert_eq!(filter_to_model(&wire).as_ref(), Ok(&filter));
    }
});
