//! Search filters: the protocol-neutral AST of RFC 4511 §4.5.1.7 and its evaluation
//! with three-valued logic. May import: std, `model::{entry, schema}`.
//! Invariant: assertion values are raw octets (binary-safe); evaluation never errors,
//! an unknown attribute or rule makes a component Undefined.

/// A search filter. Attribute names are kept as sent (may carry options like `;binary`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// All must be true (empty And is TRUE, RFC 4526).
    And(Vec<Filter>),
    /// Any must be true (empty Or is FALSE).
    Or(Vec<Filter>),
    /// Negation (Undefined stays Undefined).
    Not(Box<Filter>),
    /// `(attr=value)`
    Equality(String, Vec<u8>),
    /// `(attr=ini*any*fin)`
    Substrings {
        /// attribute description
        attr: String,
        /// leading part
        initial: Option<Vec<u8>>,
        /// middle parts in order
        any: Vec<Vec<u8>>,
        /// trailing part
        final_: Option<Vec<u8>>,
    },
    /// `(attr>=value)`
    GreaterOrEqual(String, Vec<u8>),
    /// `(attr<=value)`
    LessOrEqual(String, Vec<u8>),
    /// `(attr=*)`
    Present(String),
    /// `(attr~=value)`
    Approx(String, Vec<u8>),
    /// `(attr:dn:rule:=value)`
    Extensible {
        /// matching rule OID or name
        rule: Option<String>,
        /// attribute description
        attr: Option<String>,
        /// assertion value
        value: Vec<u8>,
        /// also match the DN's attributes
        dn_attrs: bool,
    },
    /// Resolved form of an LDAP_MATCHING_RULE_IN_CHAIN assertion: the entry matches if
    /// its `attr` holds one of these normalised DNs (the directory computes the closure).
    DnIn {
        /// attribute, e.g. `member` or `memberOf`
        attr: String,
        /// normalised DNs
        dns: std::collections::HashSet<String>,
    },
}

/// The result of evaluating a filter against an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tri {
    /// matched
    True,
    /// did not match
    False,
    /// could not be evaluated (unknown attribute, bad value)
    Undefined,
}

impl Tri {
    /// Only `True` selects an entry.
    pub fn is_true(self) -> bool {
        self == Tri::True
    }
}

/// The attribute description without options: `userCertificate;binary` → `userCertificate`.
pub fn base_attr(desc: &str) -> &str {
    desc.split(';').next().unwrap_or(desc)
}

/// OID of LDAP_MATCHING_RULE_IN_CHAIN.
pub const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";
/// OID of LDAP_MATCHING_RULE_BIT_AND.
pub const BIT_AND: &str = "1.2.840.113556.1.4.803";
/// OID of LDAP_MATCHING_RULE_BIT_OR.
pub const BIT_OR: &str = "1.2.840.113556.1.4.804";
