//! Fuzz body (shared by `fuzz_targets/filter_text.rs` and `tests/fuzz_smoke.rs`): the RFC 4515
//! string-filter parser on arbitrary text.
//! Checks that `filter_text::parse` never panics (nesting is bounded), that `format` of a
//! parsed filter parses back to the same filter, and that every parsed filter converts to the
//! wire form, encodes in a SearchRequest, decodes, and converts back to the same filter.

use dird::ldap::codec;
use dird::ldap::convert::{filter_from_model, filter_to_model};
use dird::ldap::filter_text;
use dird::ldap::proto::{DerefAliases, LdapMessage, ProtocolOp, SearchRequest, SearchScope};

/// Runs the target on one input; panics on a bug.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(filter) = filter_text::parse(&text) else {
        return;
    };
    let formatted = filter_text::format(&filter);
    let back = filter_text::parse(&formatted)
        .unwrap_or_else(|e| panic!("formatted filter {formatted:?} does not parse: {e}"));
    assert_eq!(
        back, filter,
        "format/parse round trip of {text:?} via {formatted:?}"
    );

    let wire = filter_from_model(&filter)
        .unwrap_or_else(|e| panic!("parsed filter {text:?} has no wire form: {e}"));
    let msg = LdapMessage::new(
        1,
        ProtocolOp::SearchRequest(SearchRequest {
            base_object: "".into(),
            scope: SearchScope::BaseObject,
            deref_aliases: DerefAliases::Never,
            size_limit: 0,
            time_limit: 0,
            types_only: false,
            filter: wire.clone(),
            attributes: Vec::new(),
        }),
    );
    let bytes = codec::encode_message(&msg)
        .unwrap_or_else(|e| panic!("filter {text:?} does not encode: {e}"));
    let decoded = codec::decode_message(&bytes)
        .unwrap_or_else(|e| panic!("filter {text:?} does not decode back: {e}"));
    assert_eq!(decoded, msg, "BER round trip of {text:?}");
    let model = filter_to_model(&wire)
        .unwrap_or_else(|e| panic!("wire form of {text:?} does not convert back: {e}"));
    assert_eq!(model, filter, "wire round trip of {text:?}");
}
