//! Search filters: the protocol-neutral AST of RFC 4511 §4.5.1.7 and its evaluation
//! with three-valued logic. May import: std, `model::{entry, schema}`.
//! Invariant: assertion values are raw octets (binary-safe); evaluation never errors,
//! an unknown attribute or rule makes a component Undefined.
//!
//! Evaluation matches values stored under the asserted attribute type (any of its names);
//! like Active Directory, and unlike X.500 subtyping, `(name=x)` does not look into `cn`.
//!
//! Secrets (issue 9 §1): a secret's value never takes part in a filter, for anyone. Every
//! item that names a secret attribute type, by any name or OID (equality, substrings,
//! ordering, presence, approx, extensible, `DnIn`), is Undefined, so that neither the item
//! nor its negation selects an entry (RFC 4511 §4.5.1.7: NOT Undefined is Undefined); an
//! extensible match without a type skips secret attributes and secret DN components. The
//! search path also strips secrets from entries before evaluating, so this is the second of
//! two independent guards.

use std::collections::HashSet;

use crate::model::dn::Dn;
use crate::model::entry::Entry;
use crate::model::matching::{self, MatchKind, MatchingRule, RuleUsage};
use crate::model::schema::{AttributeType, Schema};

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
        dns: HashSet<String>,
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

impl Filter {
    /// Evaluates the filter against `entry` (RFC 4511 §4.5.1.7): And is False if any
    /// part is False, else Undefined if any part is Undefined; Or mirrors it; Not swaps
    /// True and False and keeps Undefined. Unknown attribute types and rules, attributes
    /// without the needed matching rule, and unreadable assertion values give Undefined;
    /// `present` of an unknown type is False (it is not listed among the Undefined cases).
    pub fn evaluate(&self, entry: &Entry, schema: &Schema) -> Tri {
        match self {
            Filter::And(parts) => {
                let mut result = Tri::True;
                for p in parts {
                    match p.evaluate(entry, schema) {
                        Tri::False => return Tri::False,
                        Tri::Undefined => result = Tri::Undefined,
                        Tri::True => {}
                    }
                }
                result
            }
            Filter::Or(parts) => {
                let mut result = Tri::False;
                for p in parts {
                    match p.evaluate(entry, schema) {
                        Tri::True => return Tri::True,
                        Tri::Undefined => result = Tri::Undefined,
                        Tri::False => {}
                    }
                }
                result
            }
            Filter::Not(inner) => match inner.evaluate(entry, schema) {
                Tri::True => Tri::False,
                Tri::False => Tri::True,
                Tri::Undefined => Tri::Undefined,
            },
            // RFC 4511 §4.5.1.7.6: approximate matching is implementation-defined;
            // dird uses the equality rule.
            Filter::Equality(attr, value) | Filter::Approx(attr, value) => {
                equality(entry, schema, attr, value)
            }
            Filter::Substrings {
                attr,
                initial,
                any,
                final_,
            } => substrings(
                entry,
                schema,
                attr,
                initial.as_deref(),
                any,
                final_.as_deref(),
            ),
            Filter::GreaterOrEqual(attr, value) => ordering(entry, schema, attr, value, |o| {
                o != std::cmp::Ordering::Less
            }),
            Filter::LessOrEqual(attr, value) => ordering(entry, schema, attr, value, |o| {
                o != std::cmp::Ordering::Greater
            }),
            Filter::Present(attr) => present(entry, schema, attr),
            Filter::Extensible {
                rule,
                attr,
                value,
                dn_attrs,
            } => extensible(
                entry,
                schema,
                rule.as_deref(),
                attr.as_deref(),
                value,
                *dn_attrs,
            ),
            Filter::DnIn { attr, dns } => dn_in(entry, schema, attr, dns),
        }
    }

    /// Every attribute description the filter mentions, in order, with duplicates
    /// (for index planning).
    pub fn attributes(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_attributes(&mut out);
        out
    }

    fn collect_attributes<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Filter::And(parts) | Filter::Or(parts) => {
                for p in parts {
                    p.collect_attributes(out);
                }
            }
            Filter::Not(inner) => inner.collect_attributes(out),
            Filter::Equality(a, _)
            | Filter::Approx(a, _)
            | Filter::GreaterOrEqual(a, _)
            | Filter::LessOrEqual(a, _)
            | Filter::Present(a)
            | Filter::Substrings { attr: a, .. }
            | Filter::DnIn { attr: a, .. } => out.push(a),
            Filter::Extensible { attr, .. } => {
                if let Some(a) = attr {
                    out.push(a);
                }
            }
        }
    }
}

impl From<bool> for Tri {
    fn from(b: bool) -> Tri {
        if b {
            Tri::True
        } else {
            Tri::False
        }
    }
}

/// The attribute description without options: `userCertificate;binary` → `userCertificate`.
pub fn base_attr(desc: &str) -> &str {
    desc.split(';').next().unwrap_or(desc)
}

/// Folds per-value outcomes: True wins, else Undefined if any value was unreadable.
#[derive(Default)]
struct Outcome {
    undefined: bool,
}

impl Outcome {
    /// Records one comparison; returns true when the filter item is decided (True).
    fn record(&mut self, r: Option<bool>) -> bool {
        match r {
            Some(true) => true,
            Some(false) => false,
            None => {
                self.undefined = true;
                false
            }
        }
    }

    fn finish(self) -> Tri {
        if self.undefined {
            Tri::Undefined
        } else {
            Tri::False
        }
    }
}

/// The entry's values of an attribute type, under any of its names.
fn values_of<'e>(entry: &'e Entry, at: &'e AttributeType) -> impl Iterator<Item = &'e [u8]> + 'e {
    at.lower_names()
        .iter()
        .filter_map(move |n| entry.attr(n))
        .flat_map(|a| a.values.iter().map(Vec::as_slice))
}

/// The attribute type a filter item may be evaluated against: `None` (the item is
/// Undefined) for an unknown type and for a secret one.
fn filterable<'s>(schema: &'s Schema, attr: &str) -> Option<&'s AttributeType> {
    schema.attribute(attr).filter(|at| !at.is_secret())
}

fn equality(entry: &Entry, schema: &Schema, attr: &str, value: &[u8]) -> Tri {
    let Some(at) = filterable(schema, attr) else {
        return Tri::Undefined;
    };
    let Some(rule) = at.equality_rule() else {
        return Tri::Undefined;
    };
    // AD short form: (objectCategory=person) names the class, not the category DN;
    // compare it with the first RDN value of the stored DN (MS-ADTS §3.1.1.3.1.3.1).
    if at.name().eq_ignore_ascii_case("objectCategory") && !value.contains(&b'=') {
        let want = String::from_utf8_lossy(value);
        let hit = values_of(entry, at).any(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| Dn::parse(s).ok())
                .and_then(|dn| {
                    dn.rdn()
                        .and_then(|r| r.avas.first())
                        .map(|a| a.value.clone())
                })
                .is_some_and(|rdn| rdn.eq_ignore_ascii_case(want.trim()))
        });
        return hit.into();
    }
    let Some(norm) = schema.normalize_with(rule.kind, value) else {
        return Tri::Undefined;
    };
    let mut out = Outcome::default();
    for v in values_of(entry, at) {
        if out.record(schema.equals_with(rule.kind, v, &norm)) {
            return Tri::True;
        }
    }
    out.finish()
}

fn ordering(
    entry: &Entry,
    schema: &Schema,
    attr: &str,
    value: &[u8],
    accept: impl Fn(std::cmp::Ordering) -> bool,
) -> Tri {
    let Some(at) = filterable(schema, attr) else {
        return Tri::Undefined;
    };
    let Some(rule) = at.ordering_rule() else {
        return Tri::Undefined;
    };
    // An unreadable assertion makes the whole item Undefined.
    if matching::compare(rule.kind, value, value).is_none() {
        return Tri::Undefined;
    }
    let mut out = Outcome::default();
    for v in values_of(entry, at) {
        if out.record(matching::compare(rule.kind, v, value).map(&accept)) {
            return Tri::True;
        }
    }
    out.finish()
}

fn substrings(
    entry: &Entry,
    schema: &Schema,
    attr: &str,
    initial: Option<&[u8]>,
    any: &[Vec<u8>],
    final_: Option<&[u8]>,
) -> Tri {
    let Some(at) = filterable(schema, attr) else {
        return Tri::Undefined;
    };
    let Some(rule) = at.substrings_rule() else {
        return Tri::Undefined;
    };
    let kind = rule.kind;
    let ini = match initial.map(|p| matching::prepare_substring(kind, p, true, false)) {
        Some(None) => return Tri::Undefined,
        Some(Some(p)) => Some(p),
        None => None,
    };
    let fin = match final_.map(|p| matching::prepare_substring(kind, p, false, true)) {
        Some(None) => return Tri::Undefined,
        Some(Some(p)) => Some(p),
        None => None,
    };
    let mut mid = Vec::with_capacity(any.len());
    for p in any {
        match matching::prepare_substring(kind, p, false, false) {
            Some(p) => mid.push(p),
            None => return Tri::Undefined,
        }
    }
    let mut out = Outcome::default();
    for v in values_of(entry, at) {
        if out.record(matching::substrings(
            kind,
            v,
            ini.as_deref(),
            &mid,
            fin.as_deref(),
        )) {
            return Tri::True;
        }
    }
    out.finish()
}

fn present(entry: &Entry, schema: &Schema, attr: &str) -> Tri {
    if schema.is_secret(attr) {
        return Tri::Undefined;
    }
    match schema.attribute(attr) {
        Some(at) => values_of(entry, at).next().is_some().into(),
        None => entry.has(base_attr(attr)).into(),
    }
}

/// RFC 4511 §4.5.1.7.7 extensibleMatch.
fn extensible(
    entry: &Entry,
    schema: &Schema,
    rule: Option<&str>,
    attr: Option<&str>,
    value: &[u8],
    dn_attrs: bool,
) -> Tri {
    let at = match attr {
        Some(a) => match filterable(schema, a) {
            Some(at) => Some(at),
            None => return Tri::Undefined,
        },
        None => None,
    };
    let rule: Option<&'static MatchingRule> = match rule {
        None => None,
        // An IN_CHAIN assertion the directory did not resolve into DnIn: match the DN
        // itself (the chain of length zero).
        Some(r) if r == IN_CHAIN => matching::rule_by_name("distinguishedNameMatch"),
        Some(r) => match matching::rule_by_name(r.trim()) {
            Some(rule) => Some(rule),
            None => return Tri::Undefined,
        },
    };
    let rule = match (rule, at) {
        (Some(r), _) => r,
        (None, Some(at)) => match at.equality_rule() {
            Some(r) => r,
            None => return Tri::Undefined,
        },
        (None, None) => return Tri::Undefined,
    };
    let Some(matcher) = Matcher::new(schema, rule, value) else {
        return Tri::Undefined;
    };
    let mut out = Outcome::default();
    match at {
        Some(at) => {
            for v in values_of(entry, at) {
                if out.record(matcher.matches(schema, v)) {
                    return Tri::True;
                }
            }
        }
        None => {
            // No type: every attribute whose syntax the rule applies to.
            for a in entry.attrs() {
                let Some(t) = filterable(schema, &a.name) else {
                    continue;
                };
                let applies = t.syntax_oid() == rule.syntax
                    || t.equality_rule().is_some_and(|e| e.kind == rule.kind)
                    || matches!(rule.kind, MatchKind::BitAnd | MatchKind::BitOr)
                        && t.equality_rule()
                            .is_some_and(|e| e.kind == MatchKind::Integer);
                if !applies {
                    continue;
                }
                for v in &a.values {
                    if out.record(matcher.matches(schema, v)) {
                        return Tri::True;
                    }
                }
            }
        }
    }
    if dn_attrs {
        for rdn in entry.dn.rdns() {
            for ava in &rdn.avas {
                let same_type = match at {
                    Some(at) => schema.attribute(&ava.attr).is_some_and(|t| t.oid == at.oid),
                    None => !schema.is_secret(&ava.attr),
                };
                if same_type && out.record(matcher.matches(schema, ava.value.as_bytes())) {
                    return Tri::True;
                }
            }
        }
    }
    out.finish()
}

/// A matching rule with its assertion value prepared once per evaluation.
struct Matcher<'a> {
    rule: &'static MatchingRule,
    raw: &'a [u8],
    norm: Vec<u8>,
}

impl<'a> Matcher<'a> {
    fn new(schema: &Schema, rule: &'static MatchingRule, raw: &'a [u8]) -> Option<Matcher<'a>> {
        let norm = match (rule.usage, rule.kind) {
            (RuleUsage::Equality, MatchKind::BitAnd | MatchKind::BitOr) => {
                matching::parse_i64(raw)?;
                Vec::new()
            }
            (RuleUsage::Equality, kind) => schema.normalize_with(kind, raw)?,
            (RuleUsage::Ordering, kind) => {
                matching::compare(kind, raw, raw)?;
                Vec::new()
            }
            // A substrings rule needs a SubstringAssertion value; not supported here.
            (RuleUsage::Substrings, _) => return None,
        };
        Some(Matcher { rule, raw, norm })
    }

    fn matches(&self, schema: &Schema, stored: &[u8]) -> Option<bool> {
        match (self.rule.usage, self.rule.kind) {
            (RuleUsage::Equality, kind @ (MatchKind::BitAnd | MatchKind::BitOr)) => {
                matching::bit_match(kind, stored, self.raw)
            }
            (RuleUsage::Equality, kind) => schema.equals_with(kind, stored, &self.norm),
            (RuleUsage::Ordering, kind) => matching::less_than(kind, stored, self.raw),
            (RuleUsage::Substrings, _) => None,
        }
    }
}

fn dn_in(entry: &Entry, schema: &Schema, attr: &str, dns: &HashSet<String>) -> Tri {
    let Some(at) = filterable(schema, attr) else {
        return Tri::Undefined;
    };
    if dns.is_empty() {
        return Tri::False;
    }
    let mut out = Outcome::default();
    for v in values_of(entry, at) {
        let r = std::str::from_utf8(v)
            .ok()
            .and_then(|s| Dn::parse(s).ok())
            .map(|dn| dns.contains(dn.norm()));
        if out.record(r) {
            return Tri::True;
        }
    }
    out.finish()
}

/// OID of LDAP_MATCHING_RULE_IN_CHAIN.
pub const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";
/// OID of LDAP_MATCHING_RULE_BIT_AND.
pub const BIT_AND: &str = "1.2.840.113556.1.4.803";
/// OID of LDAP_MATCHING_RULE_BIT_OR.
pub const BIT_OR: &str = "1.2.840.113556.1.4.804";

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::builtin().unwrap()
    }

    fn user() -> Entry {
        let mut e = Entry::new(Dn::parse("CN=Bob Jones,CN=Users,DC=example,DC=com").unwrap());
        for (k, v) in [
            ("objectClass", "top"),
            ("objectClass", "person"),
            ("objectClass", "organizationalPerson"),
            ("objectClass", "user"),
            ("cn", "Bob Jones"),
            ("sn", "Jones"),
            ("sAMAccountName", "bob"),
            ("userAccountControl", "66050"),
            ("uidNumber", "1500"),
            ("mail", "Bob.Jones@Example.com"),
            ("telephoneNumber", "+1 555-0100"),
            ("whenCreated", "20240301120000.0Z"),
            ("memberOf", "CN=Staff,CN=Users,DC=example,DC=com"),
            (
                "objectCategory",
                "CN=Person,CN=Schema,CN=Configuration,DC=example,DC=com",
            ),
        ] {
            e.push(k, v.as_bytes().to_vec());
        }
        e.push("userCertificate", vec![0x30, 0x82, 0x01]);
        e
    }

    fn eq(a: &str, v: &str) -> Filter {
        Filter::Equality(a.into(), v.as_bytes().to_vec())
    }

    fn ev(f: &Filter) -> Tri {
        f.evaluate(&user(), &schema())
    }

    const T: Filter = Filter::And(Vec::new());
    const F: Filter = Filter::Or(Vec::new());

    fn u() -> Filter {
        eq("noSuchAttr", "x")
    }

    #[test]
    fn three_valued_logic_table() {
        use Tri::*;
        let vals = [(T, True), (F, False), (u(), Undefined)];
        for (a, ta) in &vals {
            for (b, tb) in &vals {
                let and = ev(&Filter::And(vec![a.clone(), b.clone()]));
                let or = ev(&Filter::Or(vec![a.clone(), b.clone()]));
                let want_and = match (ta, tb) {
                    (False, _) | (_, False) => False,
                    (Undefined, _) | (_, Undefined) => Undefined,
                    _ => True,
                };
                let want_or = match (ta, tb) {
                    (True, _) | (_, True) => True,
                    (Undefined, _) | (_, Undefined) => Undefined,
                    _ => False,
                };
                assert_eq!(and, want_and, "{ta:?} and {tb:?}");
                assert_eq!(or, want_or, "{ta:?} or {tb:?}");
            }
            let not = ev(&Filter::Not(Box::new(a.clone())));
            let want = match ta {
                True => False,
                False => True,
                Undefined => Undefined,
            };
            assert_eq!(not, want);
        }
        assert_eq!(ev(&T), True);
        assert_eq!(ev(&F), False);
    }

    #[test]
    fn unknown_attributes_never_panic() {
        // sssd's sudo lookup against a directory without the sudo schema
        let f = Filter::And(vec![
            eq("objectClass", "sudoRole"),
            Filter::Or(vec![
                eq("sudoHost", "ALL"),
                Filter::Substrings {
                    attr: "sudoHost".into(),
                    initial: Some(b"+".to_vec()),
                    any: vec![],
                    final_: None,
                },
            ]),
        ]);
        assert_eq!(ev(&f), Tri::False);
        assert_eq!(ev(&Filter::Not(Box::new(f))), Tri::True);
        assert_eq!(ev(&eq("sudoHost", "ALL")), Tri::Undefined);
        assert_eq!(ev(&Filter::Present("sudoHost".into())), Tri::False);
        assert_eq!(
            ev(&Filter::GreaterOrEqual("sudoOrder".into(), b"1".to_vec())),
            Tri::Undefined
        );
    }

    #[test]
    fn equality_uses_the_attribute_rule() {
        assert_eq!(ev(&eq("objectClass", "USER")), Tri::True);
        assert_eq!(ev(&eq("objectClass", "1.2.840.113556.1.5.9")), Tri::True);
        assert_eq!(ev(&eq("objectClass", "2.5.6.6")), Tri::True);
        assert_eq!(ev(&eq("objectClass", "inetOrgPerson")), Tri::False);
        assert_eq!(ev(&eq("CN", "  bob   JONES ")), Tri::True);
        assert_eq!(ev(&eq("commonName", "bob jones")), Tri::True);
        assert_eq!(ev(&eq("2.5.4.3", "bob jones")), Tri::True);
        assert_eq!(ev(&eq("mail", "bob.jones@example.COM")), Tri::True);
        assert_eq!(ev(&eq("uidNumber", "01500")), Tri::True);
        assert_eq!(ev(&eq("uidNumber", "abc")), Tri::Undefined);
        assert_eq!(ev(&eq("telephoneNumber", "+15550100")), Tri::True);
        assert_eq!(
            ev(&eq("memberOf", "cn=staff, cn=users, dc=EXAMPLE, dc=com")),
            Tri::True
        );
        assert_eq!(ev(&eq("whenCreated", "20240301130000+0100")), Tri::True);
        assert_eq!(ev(&eq("objectCategory", "person")), Tri::True);
        assert_eq!(ev(&eq("objectCategory", "computer")), Tri::False);
        assert_eq!(
            ev(&Filter::Approx("sn".into(), b"JONES".to_vec())),
            Tri::True
        );
        // attribute options match the base attribute
        assert_eq!(
            ev(&Filter::Equality(
                "userCertificate;binary".into(),
                vec![0x30, 0x82, 0x01]
            )),
            Tri::True
        );
        assert_eq!(
            ev(&Filter::Present("userCertificate;binary".into())),
            Tri::True
        );
        // description has no value here: False, not Undefined
        assert_eq!(ev(&eq("description", "x")), Tri::False);
        // photo has no EQUALITY rule
        assert_eq!(ev(&eq("photo", "x")), Tri::Undefined);
    }

    #[test]
    fn substrings() {
        let sub = |a: &str, i: Option<&str>, any: &[&str], f: Option<&str>| Filter::Substrings {
            attr: a.into(),
            initial: i.map(|s| s.as_bytes().to_vec()),
            any: any.iter().map(|s| s.as_bytes().to_vec()).collect(),
            final_: f.map(|s| s.as_bytes().to_vec()),
        };
        assert_eq!(ev(&sub("cn", Some("BOB"), &[], None)), Tri::True);
        assert_eq!(ev(&sub("cn", Some("bob "), &[], None)), Tri::True);
        assert_eq!(ev(&sub("cn", None, &["b j"], None)), Tri::True);
        assert_eq!(ev(&sub("cn", None, &[], Some("NES"))), Tri::True);
        assert_eq!(ev(&sub("cn", Some("jones"), &[], None)), Tri::False);
        assert_eq!(ev(&sub("mail", None, &["@example."], None)), Tri::True);
        assert_eq!(
            ev(&sub("telephoneNumber", None, &["5550"], None)),
            Tri::True
        );
        // uidNumber has no SUBSTR rule
        assert_eq!(ev(&sub("uidNumber", Some("1"), &[], None)), Tri::Undefined);
        assert_eq!(
            ev(&sub("sAMAccountName", Some("b"), &["o"], Some("b"))),
            Tri::True
        );
        assert_eq!(
            ev(&sub("sAMAccountName", Some("bo"), &[], Some("ob"))),
            Tri::False
        );
    }

    #[test]
    fn ordering() {
        let ge = |a: &str, v: &str| Filter::GreaterOrEqual(a.into(), v.as_bytes().to_vec());
        let le = |a: &str, v: &str| Filter::LessOrEqual(a.into(), v.as_bytes().to_vec());
        assert_eq!(ev(&ge("uidNumber", "1000")), Tri::True);
        assert_eq!(ev(&ge("uidNumber", "1501")), Tri::False);
        assert_eq!(ev(&le("uidNumber", "1500")), Tri::True);
        assert_eq!(ev(&le("uidNumber", "999")), Tri::False);
        assert_eq!(ev(&ge("uidNumber", "x")), Tri::Undefined);
        assert_eq!(ev(&ge("whenCreated", "20240301115959Z")), Tri::True);
        assert_eq!(ev(&ge("whenCreated", "20240301120000.1Z")), Tri::False);
        assert_eq!(ev(&le("whenCreated", "20240301140000+0200")), Tri::True);
        // memberOf has no ORDERING rule
        assert_eq!(ev(&ge("memberOf", "cn=a")), Tri::Undefined);
        // absent attribute with an ordering rule: False
        assert_eq!(ev(&ge("gidNumber", "1")), Tri::False);
    }

    #[test]
    fn extensible_matches() {
        let ext = |rule: Option<&str>, attr: Option<&str>, v: &str, dn: bool| Filter::Extensible {
            rule: rule.map(Into::into),
            attr: attr.map(Into::into),
            value: v.as_bytes().to_vec(),
            dn_attrs: dn,
        };
        // 66050 = NORMAL_ACCOUNT | ACCOUNTDISABLE | DONT_EXPIRE_PASSWORD
        assert_eq!(
            ev(&ext(Some(BIT_AND), Some("userAccountControl"), "2", false)),
            Tri::True
        );
        assert_eq!(
            ev(&ext(Some(BIT_AND), Some("userAccountControl"), "16", false)),
            Tri::False
        );
        assert_eq!(
            ev(&ext(Some(BIT_OR), Some("userAccountControl"), "3", false)),
            Tri::True
        );
        assert_eq!(
            ev(&ext(Some(BIT_AND), Some("userAccountControl"), "x", false)),
            Tri::Undefined
        );
        assert_eq!(
            ev(&Filter::Not(Box::new(ext(
                Some(BIT_AND),
                Some("userAccountControl"),
                "2",
                false
            )))),
            Tri::False
        );
        assert_eq!(
            ev(&ext(Some("caseExactMatch"), Some("sn"), "Jones", false)),
            Tri::True
        );
        assert_eq!(
            ev(&ext(Some("2.5.13.5"), Some("sn"), "jones", false)),
            Tri::False
        );
        assert_eq!(ev(&ext(None, Some("sn"), "JONES", false)), Tri::True);
        assert_eq!(
            ev(&ext(Some("noSuchRule"), Some("sn"), "x", false)),
            Tri::Undefined
        );
        assert_eq!(
            ev(&ext(Some("caseIgnoreMatch"), None, "bob", false)),
            Tri::True
        );
        assert_eq!(ev(&ext(None, None, "bob", false)), Tri::Undefined);
        // dnAttributes: the DN's AVAs take part
        assert_eq!(ev(&ext(None, Some("cn"), "users", true)), Tri::True);
        assert_eq!(ev(&ext(None, Some("cn"), "users", false)), Tri::False);
        assert_eq!(ev(&ext(None, Some("dc"), "example", true)), Tri::True);
        assert_eq!(
            ev(&ext(Some("caseIgnoreMatch"), None, "Users", true)),
            Tri::True
        );
        // ordering rule as extensible: value < assertion
        assert_eq!(
            ev(&ext(
                Some("integerOrderingMatch"),
                Some("uidNumber"),
                "1501",
                false
            )),
            Tri::True
        );
        // unresolved IN_CHAIN: plain DN equality
        assert_eq!(
            ev(&ext(
                Some(IN_CHAIN),
                Some("memberOf"),
                "cn=staff,cn=users,dc=example,dc=com",
                false
            )),
            Tri::True
        );
    }

    #[test]
    fn dn_in_sets() {
        let mut dns = HashSet::new();
        dns.insert("cn=staff,cn=users,dc=example,dc=com".to_string());
        let f = Filter::DnIn {
            attr: "memberOf".into(),
            dns: dns.clone(),
        };
        assert_eq!(ev(&f), Tri::True);
        let g = Filter::DnIn {
            attr: "member".into(),
            dns,
        };
        assert_eq!(ev(&g), Tri::False);
        let h = Filter::DnIn {
            attr: "bogus".into(),
            dns: HashSet::new(),
        };
        assert_eq!(ev(&h), Tri::Undefined);
    }

    #[test]
    fn secrets_never_take_part_in_a_filter() {
        let s = schema();
        let mut e = Entry::new(Dn::parse("cn=v,dc=example,dc=com").unwrap());
        e.push("objectClass", b"person".to_vec());
        e.push("cn", b"v".to_vec());
        e.push("userPassword", b"{ARGON2}$argon2id$v=19$secret".to_vec());
        e.push(
            "dirdPasswordHistory",
            b"{ARGON2}$argon2id$v=19$old".to_vec(),
        );
        let hash = b"{ARGON2}$argon2id$v=19$secret".to_vec();
        let ev = |f: Filter| f.evaluate(&e, &s);
        let ext = |rule: Option<&str>, attr: Option<&str>, v: &[u8], dn: bool| Filter::Extensible {
            rule: rule.map(Into::into),
            attr: attr.map(Into::into),
            value: v.to_vec(),
            dn_attrs: dn,
        };
        for name in [
            "userPassword",
            "USERPASSWORD",
            "userPassword;binary",
            "2.5.4.35",
            "dirdPasswordHistory",
            "2.25.248671599192139908232477066988550965366.1.6",
            "unicodePwd",
            "supplementalCredentials",
        ] {
            let items = [
                Filter::Present(name.into()),
                Filter::Equality(name.into(), hash.clone()),
                Filter::Approx(name.into(), hash.clone()),
                Filter::GreaterOrEqual(name.into(), b"{".to_vec()),
                Filter::LessOrEqual(name.into(), b"~".to_vec()),
                Filter::Substrings {
                    attr: name.into(),
                    initial: Some(b"{".to_vec()),
                    any: vec![],
                    final_: None,
                },
                ext(Some("2.5.13.18"), Some(name), b"\xff", false),
                ext(Some("caseExactOrderingMatch"), Some(name), b"~", false),
                ext(Some("caseExactMatch"), Some(name), &hash, false),
                ext(None, Some(name), &hash, true),
                Filter::DnIn {
                    attr: name.into(),
                    dns: HashSet::from(["x".to_string()]),
                },
            ];
            for f in items {
                assert_eq!(ev(f.clone()), Tri::Undefined, "{f:?}");
                assert_eq!(
                    ev(Filter::Not(Box::new(f.clone()))),
                    Tri::Undefined,
                    "{f:?}"
                );
            }
        }
        // Without a type, secret values are skipped: only cn and objectClass are candidates.
        assert_eq!(
            ev(ext(Some("octetStringMatch"), None, &hash, true)),
            Tri::False
        );
        assert_eq!(ev(ext(Some("2.5.13.18"), None, b"\xff", false)), Tri::False);
        // ... while the same rule still reaches ordinary values of that syntax
        let mut g = e.clone();
        g.push("objectGUID", vec![0x10; 16]);
        assert_eq!(
            ext(Some("2.5.13.18"), None, b"\xff", false).evaluate(&g, &s),
            Tri::True
        );
        // An operator type marked secret, and a subtype of a secret, are secret too.
        let mut sources = crate::model::schema::BUILTIN_SOURCES.to_vec();
        sources.push((
            "99-site.ldif",
            "attributeTypes: ( 1.3.6.1.4.1.99999.1 NAME 'sitePin' EQUALITY octetStringMatch\n  SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 X-DIRD-SECRET 'TRUE' )\n\
             attributeTypes: ( 1.3.6.1.4.1.99999.2 NAME 'legacyPassword' SUP userPassword )\n",
        ));
        let site = Schema::from_sources(&sources).unwrap();
        assert!(site.is_secret("SITEPIN") && site.is_secret("1.3.6.1.4.1.99999.1"));
        assert!(site.is_secret("legacyPassword"));
        assert!(!site.is_secret("cn") && !site.is_secret("objectGUID"));
        let mut h = e.clone();
        h.push("sitePin", b"1234".to_vec());
        h.push("legacyPassword", b"x".to_vec());
        assert_eq!(
            Filter::Present("sitePin".into()).evaluate(&h, &site),
            Tri::Undefined
        );
        assert_eq!(
            Filter::Equality("legacyPassword".into(), b"x".to_vec()).evaluate(&h, &site),
            Tri::Undefined
        );
        assert_eq!(
            ext(Some("octetStringMatch"), None, b"1234", false).evaluate(&h, &site),
            Tri::False
        );
        site.remove_secrets(&mut h);
        assert!(!h.has("sitePin") && !h.has("legacyPassword") && !h.has("userPassword"));
        assert!(!h.has("dirdPasswordHistory") && h.has("cn"));
    }

    #[test]
    fn attributes_lists_every_mention() {
        let f = Filter::And(vec![
            eq("objectClass", "user"),
            Filter::Not(Box::new(Filter::Present("mail".into()))),
            Filter::Extensible {
                rule: Some(BIT_AND.into()),
                attr: Some("userAccountControl".into()),
                value: b"2".to_vec(),
                dn_attrs: false,
            },
        ]);
        assert_eq!(
            f.attributes(),
            vec!["objectClass", "mail", "userAccountControl"]
        );
    }
}
