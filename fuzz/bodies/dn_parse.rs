//! Fuzz body (shared by `fuzz_targets/dn_parse.rs` and `tests/fuzz_smoke.rs`): the RFC 4514
//! DN and RDN parsers on arbitrary text.
//! Checks that `Dn::parse` / `Rdn::parse` never panic, that a parsed DN prints as a string that
//! parses back to the same DN (same normalised form), that `parent`, `child` and `rebase` keep
//! the normalised forms consistent, and that `escape_value` output parses as one RDN value.

use dird::model::dn::{escape_value, Dn, Rdn};

/// Runs the target on one input; panics on a bug.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = Rdn::parse(&text);
    // escape_value makes any text one attribute value.
    let escaped = format!("cn={}", escape_value(&text));
    let rdn = Rdn::parse(&escaped)
        .unwrap_or_else(|e| panic!("escaped value {escaped:?} does not parse: {e}"));
    let one = Dn::from_rdns(vec![rdn]);
    let again = Dn::parse(&one.to_string())
        .unwrap_or_else(|e| panic!("printed RDN {one} does not parse: {e}"));
    assert_eq!(again.norm(), one.norm(), "escape round trip of {text:?}");

    let Ok(dn) = Dn::parse(&text) else {
        return;
    };
    let printed = dn.to_string();
    let back = Dn::parse(&printed)
        .unwrap_or_else(|e| panic!("printed DN {printed:?} (from {text:?}) does not parse: {e}"));
    assert_eq!(back.norm(), dn.norm(), "print/parse round trip of {text:?}");
    assert_eq!(back.depth(), dn.depth());
    if let Some(parent) = dn.parent() {
        assert!(
            dn.is_within(&parent),
            "{dn} is not within its parent {parent}"
        );
        assert!(dn.is_child_of(&parent) || parent.is_root());
        if let Some(rdn) = dn.rdn() {
            let rebuilt = parent.child(rdn.clone());
            assert_eq!(rebuilt.norm(), dn.norm(), "parent + rdn of {dn}");
        }
        let base = Dn::parse("dc=example,dc=com").unwrap_or_else(|_| Dn::root());
        if let Some(moved) = dn.rebase(&parent, &base) {
            assert!(moved.is_within(&base), "{moved} not below {base}");
            assert_eq!(moved.depth(), base.depth() + 1, "rebase of {dn}");
        }
    }
}
