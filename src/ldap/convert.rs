//! Conversion between the wire filter (`ldap::proto::Filter`, RFC 4511 §4.5.1.7) and the
//! protocol-neutral `model::filter::Filter`.
//! May import: `ldap::proto`, `ldap::filter_text` (depth limit), `model::filter`, `rasn` types.
//! Invariants:
//! - Values are copied byte for byte (binary-safe); attribute names and rule ids as sent.
//! - Both directions check nesting before recursing: wire → model allows what the BER decoder
//!   allows (`WIRE_MAX_DEPTH`); model → wire allows `filter_text::MAX_DEPTH`, so whatever dird
//!   sends (e.g. the connector, upstream) can be decoded again by dird itself.
//! - `DnIn` has no wire form of its own: it is sent as an OR of equality assertions.

use rasn::types::OctetString;

use crate::ldap::filter_text;
use crate::ldap::proto::{
    AttributeValueAssertion, Filter as WireFilter, MatchingRuleAssertion, Substring,
    SubstringFilter,
};
use crate::model::filter::Filter;

/// Deepest wire filter converted to the model (rasn's BER decoder stops at about 125).
pub const WIRE_MAX_DEPTH: usize = 128;

/// A filter that cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// `substrings` must have at least one element (RFC 4511 §4.5.1.7: SIZE (1..MAX)).
    #[error("substring filter without any substring")]
    EmptySubstrings,
    /// `initial` may appear only first and `final` only last (RFC 4511 §4.5.1.7.2).
    #[error("substring filter with 'initial' not first or 'final' not last")]
    MisplacedSubstring,
    /// Nested deeper than the limit of the direction.
    #[error("filter nested too deeply")]
    TooDeep,
}

/// Wire filter → model filter.
pub fn filter_to_model(filter: &WireFilter) -> Result<Filter, ConvertError> {
    to_model(filter, 1)
}

/// Model filter → wire filter.
pub fn filter_from_model(filter: &Filter) -> Result<WireFilter, ConvertError> {
    from_model(filter, 1)
}

impl TryFrom<&WireFilter> for Filter {
    type Error = ConvertError;
    fn try_from(filter: &WireFilter) -> Result<Self, ConvertError> {
        filter_to_model(filter)
    }
}

impl TryFrom<&Filter> for WireFilter {
    type Error = ConvertError;
    fn try_from(filter: &Filter) -> Result<Self, ConvertError> {
        filter_from_model(filter)
    }
}

fn to_model(filter: &WireFilter, depth: usize) -> Result<Filter, ConvertError> {
    if depth > WIRE_MAX_DEPTH {
        return Err(ConvertError::TooDeep);
    }
    let list = |items: &[WireFilter]| -> Result<Vec<Filter>, ConvertError> {
        items.iter().map(|f| to_model(f, depth + 1)).collect()
    };
    let ava =
        |a: &AttributeValueAssertion| (a.attribute_desc.0.clone(), a.assertion_value.to_vec());
    Ok(match filter {
        WireFilter::And(items) => Filter::And(list(items)?),
        WireFilter::Or(items) => Filter::Or(list(items)?),
        WireFilter::Not(inner) => Filter::Not(Box::new(to_model(inner, depth + 1)?)),
        WireFilter::EqualityMatch(a) => {
            let (attr, value) = ava(a);
            Filter::Equality(attr, value)
        }
        WireFilter::GreaterOrEqual(a) => {
            let (attr, value) = ava(a);
            Filter::GreaterOrEqual(attr, value)
        }
        WireFilter::LessOrEqual(a) => {
            let (attr, value) = ava(a);
            Filter::LessOrEqual(attr, value)
        }
        WireFilter::ApproxMatch(a) => {
            let (attr, value) = ava(a);
            Filter::Approx(attr, value)
        }
        WireFilter::Present(attr) => Filter::Present(attr.0.clone()),
        WireFilter::Substrings(s) => substrings_to_model(s)?,
        WireFilter::ExtensibleMatch(m) => Filter::Extensible {
            rule: m.matching_rule.as_ref().map(|r| r.0.clone()),
            attr: m.attr_type.as_ref().map(|a| a.0.clone()),
            value: m.match_value.to_vec(),
            dn_attrs: m.dn_attributes,
        },
    })
}

fn substrings_to_model(s: &SubstringFilter) -> Result<Filter, ConvertError> {
    if s.substrings.is_empty() {
        return Err(ConvertError::EmptySubstrings);
    }
    let last = s.substrings.len() - 1;
    let mut initial = None;
    let mut any = Vec::new();
    let mut final_ = None;
    for (i, part) in s.substrings.iter().enumerate() {
        match part {
            Substring::Initial(v) if i == 0 => initial = Some(v.to_vec()),
            Substring::Final(v) if i == last => final_ = Some(v.to_vec()),
            Substring::Any(v) => any.push(v.to_vec()),
            Substring::Initial(_) | Substring::Final(_) => {
                return Err(ConvertError::MisplacedSubstring)
            }
        }
    }
    Ok(Filter::Substrings {
        attr: s.attr_type.0.clone(),
        initial,
        any,
        final_,
    })
}

fn from_model(filter: &Filter, depth: usize) -> Result<WireFilter, ConvertError> {
    if depth > filter_text::MAX_DEPTH {
        return Err(ConvertError::TooDeep);
    }
    let list = |items: &[Filter]| -> Result<Vec<WireFilter>, ConvertError> {
        items.iter().map(|f| from_model(f, depth + 1)).collect()
    };
    let ava = |attr: &str, value: &[u8]| AttributeValueAssertion::new(attr, value);
    Ok(match filter {
        Filter::And(items) => WireFilter::And(list(items)?),
        Filter::Or(items) => WireFilter::Or(list(items)?),
        Filter::Not(inner) => WireFilter::Not(Box::new(from_model(inner, depth + 1)?)),
        Filter::Equality(a, v) => WireFilter::EqualityMatch(ava(a, v)),
        Filter::GreaterOrEqual(a, v) => WireFilter::GreaterOrEqual(ava(a, v)),
        Filter::LessOrEqual(a, v) => WireFilter::LessOrEqual(ava(a, v)),
        Filter::Approx(a, v) => WireFilter::ApproxMatch(ava(a, v)),
        Filter::Present(a) => WireFilter::Present(a.as_str().into()),
        Filter::Substrings {
            attr,
            initial,
            any,
            final_,
        } => {
            let octets = |v: &Vec<u8>| OctetString::from_slice(v);
            let substrings: Vec<Substring> = initial
                .iter()
                .map(|v| Substring::Initial(octets(v)))
                .chain(any.iter().map(|v| Substring::Any(octets(v))))
                .chain(final_.iter().map(|v| Substring::Final(octets(v))))
                .collect();
            if substrings.is_empty() {
                return Err(ConvertError::EmptySubstrings);
            }
            WireFilter::Substrings(SubstringFilter {
                attr_type: attr.as_str().into(),
                substrings,
            })
        }
        Filter::Extensible {
            rule,
            attr,
            value,
            dn_attrs,
        } => WireFilter::ExtensibleMatch(MatchingRuleAssertion {
            matching_rule: rule.as_deref().map(Into::into),
            attr_type: attr.as_deref().map(Into::into),
            match_value: OctetString::from_slice(value),
            dn_attributes: *dn_attrs,
        }),
        Filter::DnIn { attr, dns } => {
            let mut dns: Vec<&String> = dns.iter().collect();
            dns.sort();
            WireFilter::Or(
                dns.into_iter()
                    .map(|dn| WireFilter::EqualityMatch(ava(attr, dn.as_bytes())))
                    .collect(),
            )
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::ldap::filter_text::{format, parse};

    /// text → model → wire → BER → wire → model → text
    fn through_the_wire(text: &str) -> String {
        let model = parse(text).unwrap();
        let wire = filter_from_model(&model).unwrap();
        let ber = rasn::ber::encode(&wire).unwrap();
        let back: WireFilter = rasn::ber::decode(&ber).unwrap();
        assert_eq!(back, wire);
        let model_back = filter_to_model(&back).unwrap();
        assert_eq!(model_back, model, "{text}");
        format(&model_back)
    }

    #[test]
    fn round_trips() {
        for text in [
            r"(objectGUID=\ff\fe\00\01)",
            "(sudoHost=+*)",
            "(cn=Al*ce*Li*l)",
            "(cn=*x*y*)",
            "(memberOf:1.2.840.113556.1.4.1941:=cn=g,dc=x)",
            "(userAccountControl:1.2.840.113556.1.4.803:=2)",
            "(:dn:2.5.13.5:=people)",
            "(&(|(uid>=a)(uid<=b))(!(cn~=bob))(objectClass=*)(&)(|))",
        ] {
            assert_eq!(through_the_wire(text), text);
        }
    }

    #[test]
    fn ber_matches_ldapsearch() {
        // The filter bytes of tests/fixtures/pdu/search_guid_paged.bin.
        let wire = filter_from_model(&parse(r"(objectGUID=\ff\fe\00\01)").unwrap()).unwrap();
        let mut want = vec![0xa3, 0x12, 0x04, 0x0a];
        want.extend_from_slice(b"objectGUID");
        want.extend_from_slice(&[0x04, 0x04, 0xff, 0xfe, 0x00, 0x01]);
        assert_eq!(rasn::ber::encode(&wire).unwrap(), want);
    }

    #[test]
    fn bad_substrings() {
        let sub = |parts: Vec<Substring>| {
            WireFilter::Substrings(SubstringFilter {
                attr_type: "cn".into(),
                substrings: parts,
            })
        };
        let v = || OctetString::from_static(b"x");
        assert_eq!(
            filter_to_model(&sub(vec![])),
            Err(ConvertError::EmptySubstrings)
        );
        assert_eq!(
            filter_to_model(&sub(vec![Substring::Any(v()), Substring::Initial(v())])),
            Err(ConvertError::MisplacedSubstring)
        );
        assert_eq!(
            filter_to_model(&sub(vec![Substring::Final(v()), Substring::Any(v())])),
            Err(ConvertError::MisplacedSubstring)
        );
        assert_eq!(
            filter_to_model(&sub(vec![Substring::Initial(v()), Substring::Initial(v())])),
            Err(ConvertError::MisplacedSubstring)
        );
        let empty = Filter::Substrings {
            attr: "cn".into(),
            initial: None,
            any: vec![],
            final_: None,
        };
        assert_eq!(
            filter_from_model(&empty),
            Err(ConvertError::EmptySubstrings)
        );
    }

    #[test]
    fn dn_in_becomes_or_of_equalities() {
        let f = Filter::DnIn {
            attr: "member".into(),
            dns: ["cn=b".to_string(), "cn=a".to_string()]
                .into_iter()
                .collect(),
        };
        assert_eq!(
            filter_from_model(&f).unwrap(),
            WireFilter::Or(vec![
                WireFilter::EqualityMatch(AttributeValueAssertion::new("member", b"cn=a")),
                WireFilter::EqualityMatch(AttributeValueAssertion::new("member", b"cn=b")),
            ])
        );
    }

    #[test]
    fn depth_limits() {
        let mut model = Filter::Present("a".into());
        for _ in 1..filter_text::MAX_DEPTH {
            model = Filter::Not(Box::new(model));
        }
        let wire = filter_from_model(&model).unwrap();
        assert_eq!(filter_to_model(&wire).unwrap(), model);
        let too_deep = Filter::And(vec![model]);
        assert_eq!(filter_from_model(&too_deep), Err(ConvertError::TooDeep));
        let mut wire = WireFilter::Present("a".into());
        for _ in 0..WIRE_MAX_DEPTH {
            wire = WireFilter::Not(Box::new(wire));
        }
        assert_eq!(filter_to_model(&wire), Err(ConvertError::TooDeep));
    }
}
