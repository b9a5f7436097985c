//! Schema: attribute types, object classes, syntaxes and matching rules loaded from
//! `schema/*.ldif` (compiled in) and operator files; value normalisation, ordering,
//! entry checks (RFC 4512 §2, §4.1) and the subschema subentry (RFC 4512 §4.2).
//! May import: std, `model::{dn, entry, matching}`.
//! Invariants: a `Schema` is fully resolved when built (every SUP, MUST, MAY and matching
//! rule reference exists, no SUP cycles); lookups by name or OID are case-insensitive
//! hash lookups that allocate nothing for names up to 64 bytes; the schema is immutable.
//!
//! File format: LDIF-like lines `attributeTypes: ( … )`, `objectClasses: ( … )`,
//! `ldapSyntaxes: ( … )` and `matchingRules: ( … )` holding RFC 4512 §4.1 descriptions,
//! folded with a leading space as in LDIF (RFC 2849). OpenLDAP's `olcAttributeTypes: {n}( … )`
//! spelling is accepted too. `#` starts a comment; other attributes (`dn:`, `objectClass:`,
//! `cn:`) are ignored. A later definition with the same OID replaces an earlier one (this is
//! how `04-ad.ldif` adapts `person` and `top` to Active Directory); reusing a name for a
//! different OID is an error.
//!
//! Secrets (issue 9 §1): an attribute type is *secret* if its OID is in [`SECRET_ATTRIBUTES`],
//! if its description carries `X-DIRD-SECRET 'TRUE'` (operator schema files), or if it
//! inherits from a secret type through SUP. The flag belongs to the type, so every name, alias
//! and OID of it (`userPassword`, `USERPASSWORD;binary`, `2.5.4.35`) resolves to it; a later
//! file that redefines a listed OID cannot clear it.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::model::dn::Dn;
use crate::model::entry::Entry;
use crate::model::filter::base_attr;
use crate::model::matching::{self, MatchKind, MatchingRule, RuleUsage};

/// Why an entry breaks the schema; each maps to one LDAP result code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaViolation {
    /// objectClassViolation (65)
    #[error("object class violation: {0}")]
    ObjectClass(String),
    /// undefinedAttributeType (17)
    #[error("undefined attribute type: {0}")]
    UndefinedAttribute(String),
    /// invalidAttributeSyntax (21)
    #[error("invalid attribute syntax: {0}")]
    InvalidSyntax(String),
    /// constraintViolation (19)
    #[error("constraint violation: {0}")]
    Constraint(String),
    /// attributeOrValueExists (20): the same value (by equality) twice in one attribute.
    #[error("attribute or value exists: {0}")]
    ValueExists(String),
    /// namingViolation (64): an RDN value is missing from the entry's attributes.
    #[error("naming violation: {0}")]
    NamingViolation(String),
}

/// RFC 4512 §4.1.2 AttributeUsage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// userApplications (user attribute)
    UserApplications,
    /// directoryOperation
    DirectoryOperation,
    /// distributedOperation
    DistributedOperation,
    /// dSAOperation
    DsaOperation,
}

/// RFC 4512 §4.1.1 ObjectClassDescription kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassKind {
    /// ABSTRACT
    Abstract,
    /// STRUCTURAL (the default)
    Structural,
    /// AUXILIARY
    Auxiliary,
}

/// How values of a syntax are checked (RFC 4517 §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyntaxKind {
    /// Directory String: non-empty UTF-8
    DirectoryString,
    /// IA5 String: ASCII
    Ia5String,
    /// Printable String
    PrintableString,
    /// Country String: two printable characters
    CountryString,
    /// INTEGER
    Integer,
    /// Generalized Time
    GeneralizedTime,
    /// DN
    Dn,
    /// Boolean: TRUE / FALSE
    Boolean,
    /// OID: numeric OID or descriptor
    Oid,
    /// Numeric String: digits and spaces
    NumericString,
    /// Octet String and other binary syntaxes: anything
    OctetString,
    /// UUID (RFC 4530)
    Uuid,
}

/// An attribute type (RFC 4512 §4.1.2), with its inherited rules resolved.
#[derive(Clone, Debug)]
pub struct AttributeType {
    /// numeric OID
    pub oid: String,
    /// NAME values; the first is canonical
    pub names: Vec<String>,
    /// DESC
    pub desc: Option<String>,
    /// OBSOLETE
    pub obsolete: bool,
    /// SUP (as written)
    pub sup: Option<String>,
    /// EQUALITY (as written)
    pub equality: Option<String>,
    /// ORDERING (as written)
    pub ordering: Option<String>,
    /// SUBSTR (as written)
    pub substr: Option<String>,
    /// SYNTAX OID (as written, without the length bound)
    pub syntax: Option<String>,
    /// the `{len}` bound of SYNTAX
    pub syntax_len: Option<u32>,
    /// SINGLE-VALUE
    pub single_value: bool,
    /// COLLECTIVE
    pub collective: bool,
    /// NO-USER-MODIFICATION
    pub no_user_modification: bool,
    /// USAGE
    pub usage: Usage,
    /// file the definition came from
    pub source: String,
    eq_rule: Option<&'static MatchingRule>,
    ord_rule: Option<&'static MatchingRule>,
    sub_rule: Option<&'static MatchingRule>,
    syntax_oid: String,
    syntax_kind: SyntaxKind,
    lower_names: Vec<String>,
    secret: bool,
}

/// An object class (RFC 4512 §4.1.1), with superclasses and attribute lists resolved.
#[derive(Clone, Debug)]
pub struct ObjectClass {
    /// numeric OID
    pub oid: String,
    /// NAME values; the first is canonical
    pub names: Vec<String>,
    /// DESC
    pub desc: Option<String>,
    /// OBSOLETE
    pub obsolete: bool,
    /// SUP (as written)
    pub sup: Vec<String>,
    /// ABSTRACT / STRUCTURAL / AUXILIARY
    pub kind: ClassKind,
    /// MUST (as written)
    pub must: Vec<String>,
    /// MAY (as written)
    pub may: Vec<String>,
    /// file the definition came from
    pub source: String,
    ancestors: Vec<usize>,
    all_must: Vec<usize>,
    all_may: Vec<usize>,
}

/// An LDAP syntax the schema publishes (RFC 4512 §4.1.5).
#[derive(Clone, Debug)]
pub struct LdapSyntax {
    /// numeric OID
    pub oid: String,
    /// DESC
    pub desc: String,
    /// how values are checked
    pub kind: SyntaxKind,
}

/// The loaded schema.
#[derive(Debug, Default)]
pub struct Schema {
    attrs: Vec<AttributeType>,
    attr_index: NameMap,
    classes: Vec<ObjectClass>,
    class_index: NameMap,
    syntaxes: Vec<LdapSyntax>,
    /// lower-case class/attribute name or OID → lower-case canonical name, for
    /// objectIdentifierMatch (objectClass values).
    oid_names: HashMap<String, String>,
    extensible_object: Option<usize>,
}

/// The secret attribute types, by OID and name: password hashes, Kerberos keys, password
/// history, and Active Directory's credential attributes (listed even where dird's schema
/// does not define them, so that a filter naming one is refused whatever the schema).
/// Operator schema files mark further types with `X-DIRD-SECRET 'TRUE'`.
pub const SECRET_ATTRIBUTES: &[(&str, &str)] = &[
    ("2.5.4.35", "userPassword"),
    ("1.2.840.113556.1.4.90", "unicodePwd"),
    ("1.2.840.113556.1.4.55", "dBCSPwd"),
    ("1.2.840.113556.1.4.94", "ntPwdHistory"),
    ("1.2.840.113556.1.4.160", "lmPwdHistory"),
    ("1.2.840.113556.1.4.125", "supplementalCredentials"),
    (
        "2.25.248671599192139908232477066988550965366.1.1",
        "dirdKerberosKeys",
    ),
    (
        "2.25.248671599192139908232477066988550965366.1.2",
        "dirdPasswordHash",
    ),
    (
        "2.25.248671599192139908232477066988550965366.1.6",
        "dirdPasswordHistory",
    ),
];

/// True if [`SECRET_ATTRIBUTES`] lists `name_or_oid` (any case, `;options` ignored). Code
/// without a schema at hand uses this; with one, [`Schema::is_secret`] also knows the
/// operator's secret types and every alias.
pub fn is_listed_secret(name_or_oid: &str) -> bool {
    let b = base_attr(name_or_oid.trim());
    SECRET_ATTRIBUTES
        .iter()
        .any(|(oid, name)| b == *oid || b.eq_ignore_ascii_case(name))
}

/// The compiled-in schema files, in load order.
pub const BUILTIN_SOURCES: &[(&str, &str)] = &[
    ("00-core.ldif", include_str!("../../schema/00-core.ldif")),
    (
        "01-cosine.ldif",
        include_str!("../../schema/01-cosine.ldif"),
    ),
    (
        "02-inetorgperson.ldif",
        include_str!("../../schema/02-inetorgperson.ldif"),
    ),
    (
        "03-rfc2307bis.ldif",
        include_str!("../../schema/03-rfc2307bis.ldif"),
    ),
    ("04-ad.ldif", include_str!("../../schema/04-ad.ldif")),
    ("05-dird.ldif", include_str!("../../schema/05-dird.ldif")),
    (
        "06-ad-domain-join.ldif",
        include_str!("../../schema/06-ad-domain-join.ldif"),
    ),
];

impl Schema {
    /// The schema compiled in from `schema/*.ldif`.
    pub fn builtin() -> Result<Schema, String> {
        Schema::from_sources(BUILTIN_SOURCES)
    }

    /// Builds a schema from `(file name, text)` pairs, loaded in order. The daemon passes
    /// [`BUILTIN_SOURCES`] followed by the operator's files. Errors name file and line.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Schema, String> {
        let mut raw = RawSchema::default();
        for (name, text) in sources {
            raw.load(name, text)?;
        }
        raw.resolve()
    }

    /// The attribute type called `name_or_oid` (any case; `;options` are ignored).
    pub fn attribute(&self, name_or_oid: &str) -> Option<&AttributeType> {
        self.attr_idx(name_or_oid).map(|i| &self.attrs[i])
    }

    /// The object class called `name_or_oid` (any case).
    pub fn object_class(&self, name_or_oid: &str) -> Option<&ObjectClass> {
        lookup(&self.class_index, name_or_oid.trim()).map(|i| &self.classes[i])
    }

    /// The superclass chain of an object class, most general first and the class itself
    /// last (`computer`: top, person, organizationalPerson, user, computer), by canonical
    /// names; empty for an unknown class.
    pub fn class_chain(&self, name_or_oid: &str) -> Vec<&str> {
        let Some(i) = lookup(&self.class_index, name_or_oid.trim()) else {
            return Vec::new();
        };
        let c = &self.classes[i];
        c.ancestors
            .iter()
            .rev()
            .map(|&a| self.classes[a].name())
            .chain(std::iter::once(c.name()))
            .collect()
    }

    /// All attribute types, in load order.
    pub fn attribute_types(&self) -> impl Iterator<Item = &AttributeType> {
        self.attrs.iter()
    }

    /// All object classes, in load order.
    pub fn object_classes(&self) -> impl Iterator<Item = &ObjectClass> {
        self.classes.iter()
    }

    /// True if `name_or_oid` (any case, with or without `;options`) names a secret attribute
    /// type; a name the schema does not know is secret if [`SECRET_ATTRIBUTES`] lists it.
    pub fn is_secret(&self, name_or_oid: &str) -> bool {
        match self.attribute(name_or_oid) {
            Some(at) => at.secret,
            None => is_listed_secret(name_or_oid),
        }
    }

    /// Removes every secret attribute from `entry`, whatever name it is stored under.
    pub fn remove_secrets(&self, entry: &mut Entry) {
        let secret: Vec<String> = entry
            .attrs()
            .filter(|a| self.is_secret(&a.name))
            .map(|a| a.name.clone())
            .collect();
        for name in secret {
            entry.remove(&name);
        }
    }

    /// Canonical attribute name, if the attribute is known (`commonName` → `cn`).
    pub fn canonical_name<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.attribute(name).map(AttributeType::name)
    }

    /// True if the attribute is operational (returned only with `+` or by name).
    pub fn is_operational(&self, name: &str) -> bool {
        self.attribute(name)
            .is_some_and(AttributeType::is_operational)
    }

    /// True if the attribute is single-valued.
    pub fn is_single_valued(&self, name: &str) -> bool {
        self.attribute(name).is_some_and(|a| a.single_value)
    }

    /// True if clients may write the attribute (known and not NO-USER-MODIFICATION).
    pub fn is_user_modifiable(&self, name: &str) -> bool {
        self.attribute(name)
            .is_some_and(|a| !a.no_user_modification)
    }

    /// Equality-normalised form of a value, used as index key. None: unknown attribute,
    /// an attribute without an EQUALITY rule, or a value the rule cannot read.
    pub fn normalize(&self, attr: &str, value: &[u8]) -> Option<Vec<u8>> {
        let at = self.attribute(attr)?;
        self.normalize_with(at.eq_rule?.kind, value)
    }

    /// Ordering between two values under the attribute's ORDERING rule.
    pub fn order(&self, attr: &str, a: &[u8], b: &[u8]) -> Option<Ordering> {
        let at = self.attribute(attr)?;
        matching::compare(at.ord_rule?.kind, a, b)
    }

    /// True if the two values are equal under the attribute's EQUALITY rule, or
    /// octet-equal if it has none (used for set semantics in modify and add).
    pub fn values_equal(&self, attr: &str, a: &[u8], b: &[u8]) -> bool {
        match self.attribute(attr) {
            Some(at) => self.value_key(at, a) == self.value_key(at, b),
            None => a == b,
        }
    }

    /// The most specific structural object class of the entry (for
    /// `structuralObjectClass`), or None if it has none or several unrelated ones.
    pub fn structural_class(&self, entry: &Entry) -> Option<String> {
        let classes = self.entry_classes(entry).ok()?;
        let idx = self.structural_of(&classes).ok()??;
        Some(self.classes[idx].name().to_string())
    }

    /// Checks an entry against RFC 4512: known object classes, one structural chain,
    /// MUST present, every user attribute allowed by some class, single-value, syntax,
    /// no duplicate values, and the RDN's values present. Operational attributes are
    /// allowed regardless of class.
    pub fn check_entry(&self, entry: &Entry) -> Result<(), SchemaViolation> {
        let classes = self.entry_classes(entry)?;
        if classes.is_empty() {
            return Err(SchemaViolation::ObjectClass("no objectClass".into()));
        }
        if self.structural_of(&classes)?.is_none() {
            return Err(SchemaViolation::ObjectClass(
                "no structural object class".into(),
            ));
        }
        // All classes including implied superclasses (RFC 4512 §2.4.1).
        let mut all: Vec<usize> = Vec::new();
        for &c in &classes {
            for &k in std::iter::once(&c).chain(self.classes[c].ancestors.iter()) {
                if !all.contains(&k) {
                    all.push(k);
                }
            }
        }
        let extensible = self.extensible_object.is_some_and(|x| all.contains(&x));

        // Per attribute type: the entry's values (aliases merge into one type), as one list
        // of (type, value) sorted by type, values in entry order within a type; and the
        // types present (also those of attributes without values). Two allocations per
        // entry: this runs for every entry an import or an add writes.
        let mut flat: Vec<(usize, &[u8])> = Vec::new();
        let mut types: Vec<usize> = Vec::with_capacity(entry.len());
        for a in entry.attrs() {
            let idx = self
                .attr_idx(&a.name)
                .ok_or_else(|| SchemaViolation::UndefinedAttribute(a.name.clone()))?;
            types.push(idx);
            flat.extend(a.values.iter().map(|v| (idx, v.as_slice())));
        }
        flat.sort_by_key(|&(idx, _)| idx); // stable
        types.sort_unstable();
        types.dedup();
        let values_of = |idx: usize| -> &[(usize, &[u8])] {
            let start = flat.partition_point(|&(i, _)| i < idx);
            let end = start + flat[start..].partition_point(|&(i, _)| i == idx);
            &flat[start..end]
        };
        for &c in &all {
            for &m in &self.classes[c].all_must {
                if values_of(m).is_empty() {
                    return Err(SchemaViolation::ObjectClass(format!(
                        "missing required attribute {} (object class {})",
                        self.attrs[m].name(),
                        self.classes[c].name()
                    )));
                }
            }
        }
        for &idx in &types {
            let values = values_of(idx);
            let at = &self.attrs[idx];
            if !at.is_operational()
                && !extensible
                && !all.iter().any(|&c| {
                    self.classes[c].all_may.contains(&idx)
                        || self.classes[c].all_must.contains(&idx)
                })
            {
                return Err(SchemaViolation::ObjectClass(format!(
                    "attribute {} not allowed by the entry's object classes",
                    at.name()
                )));
            }
            if at.single_value && values.len() > 1 {
                return Err(SchemaViolation::Constraint(format!(
                    "{} is single-valued",
                    at.name()
                )));
            }
            // The equality keys of a multi-valued attribute (for the duplicate check), once.
            let keys: Vec<Cow<'_, [u8]>> = if values.len() > 1 {
                values.iter().map(|&(_, v)| self.value_key(at, v)).collect()
            } else {
                Vec::new()
            };
            // distinguishedNameMatch normalises a value only if it parses as a DN, which is
            // the DN syntax check: a group's member values are not parsed a second time.
            let dn_keyed = at.syntax_kind == SyntaxKind::Dn
                && at
                    .eq_rule
                    .is_some_and(|r| r.kind == MatchKind::DistinguishedName);
            for (i, &(_, v)) in values.iter().enumerate() {
                let parsed = dn_keyed && matches!(keys.get(i), Some(Cow::Owned(_)));
                if !parsed && !valid_syntax(at.syntax_kind, v) {
                    return Err(SchemaViolation::InvalidSyntax(format!(
                        "{}: value does not match syntax {}",
                        at.name(),
                        at.syntax_oid
                    )));
                }
            }
            // A few values (objectClass, a small group's member): pairwise, no hash set.
            let twice = if keys.len() <= 32 {
                keys.iter()
                    .enumerate()
                    .any(|(i, k)| keys[i + 1..].contains(k))
            } else {
                let mut seen = HashSet::with_capacity(keys.len());
                !keys.iter().all(|k| seen.insert(k))
            };
            if twice {
                return Err(SchemaViolation::ValueExists(format!(
                    "{} holds a value twice",
                    at.name()
                )));
            }
        }
        // RFC 4512 §2.3: the RDN's attribute values are values of the entry.
        if let Some(rdn) = entry.dn.rdn() {
            for ava in &rdn.avas {
                let idx = self
                    .attr_idx(&ava.attr)
                    .ok_or_else(|| SchemaViolation::UndefinedAttribute(ava.attr.clone()))?;
                let at = &self.attrs[idx];
                let want = self.value_key(at, ava.value.as_bytes());
                let found = values_of(idx)
                    .iter()
                    .any(|&(_, v)| self.value_key(at, v) == want);
                if !found {
                    return Err(SchemaViolation::NamingViolation(format!(
                        "RDN value {}={} is not in the entry",
                        ava.attr, ava.value
                    )));
                }
            }
        }
        Ok(())
    }

    /// The subschema subentry (RFC 4512 §4.2) at `dn`: objectClass top/subentry/subschema,
    /// `cn`, and the attributeTypes, objectClasses, ldapSyntaxes, matchingRules and
    /// matchingRuleUse values in RFC 4512 §4.1 form.
    pub fn subschema_entry(&self, dn: Dn) -> Entry {
        let cn = dn
            .rdn()
            .and_then(|r| r.avas.first())
            .map(|a| a.value.clone())
            .unwrap_or_else(|| "Subschema".to_string());
        let mut e = Entry::new(dn);
        e.set(
            "objectClass",
            vec![b"top".to_vec(), b"subentry".to_vec(), b"subschema".to_vec()],
        );
        e.set_str("cn", &cn);
        e.set(
            "ldapSyntaxes",
            self.syntaxes
                .iter()
                .map(|s| format!("( {} DESC '{}' )", s.oid, qdstring(&s.desc)).into_bytes())
                .collect(),
        );
        e.set(
            "matchingRules",
            matching::RULES
                .iter()
                .map(|r| {
                    format!("( {} NAME '{}' SYNTAX {} )", r.oid, r.name, r.syntax).into_bytes()
                })
                .collect(),
        );
        let mut uses = Vec::new();
        for r in matching::RULES {
            let applies: Vec<&str> = self
                .attrs
                .iter()
                .filter(|a| {
                    [a.eq_rule, a.ord_rule, a.sub_rule]
                        .iter()
                        .any(|x| x.is_some_and(|x| x.oid == r.oid))
                })
                .map(AttributeType::name)
                .collect();
            if !applies.is_empty() {
                uses.push(
                    format!("( {} NAME '{}' APPLIES {} )", r.oid, r.name, oids(&applies))
                        .into_bytes(),
                );
            }
        }
        e.set("matchingRuleUse", uses);
        e.set(
            "attributeTypes",
            self.attrs
                .iter()
                .map(|a| a.description().into_bytes())
                .collect(),
        );
        e.set(
            "objectClasses",
            self.classes
                .iter()
                .map(|c| c.description().into_bytes())
                .collect(),
        );
        e
    }

    // ---- crate-internal helpers used by filter evaluation and modify ----

    pub(crate) fn attr_idx(&self, name: &str) -> Option<usize> {
        lookup(&self.attr_index, base_attr(name.trim()))
    }

    /// Normalises under `kind`, resolving object class / attribute descriptors for
    /// objectIdentifierMatch.
    pub(crate) fn normalize_with(&self, kind: MatchKind, value: &[u8]) -> Option<Vec<u8>> {
        if kind == MatchKind::ObjectIdentifier {
            let s = std::str::from_utf8(value).ok()?;
            let key = self.oid_key(s)?;
            return Some(key.into_owned().into_bytes());
        }
        matching::normalize(kind, value)
    }

    /// Equality of a stored value against an assertion normalised by `normalize_with`.
    pub(crate) fn equals_with(
        &self,
        kind: MatchKind,
        stored: &[u8],
        assertion: &[u8],
    ) -> Option<bool> {
        if kind == MatchKind::ObjectIdentifier {
            let s = std::str::from_utf8(stored).ok()?;
            return Some(self.oid_key(s)?.as_bytes() == assertion);
        }
        matching::equals_normalized(kind, stored, assertion)
    }

    /// Key for set semantics: the equality form, or the raw octets when the attribute
    /// has no equality rule or the value is unreadable (the syntax check reports that).
    pub(crate) fn value_key<'v>(&self, at: &AttributeType, v: &'v [u8]) -> Cow<'v, [u8]> {
        match at.eq_rule.and_then(|r| self.normalize_with(r.kind, v)) {
            Some(n) => Cow::Owned(n),
            None => Cow::Borrowed(v),
        }
    }

    pub(crate) fn attr_at(&self, idx: usize) -> &AttributeType {
        &self.attrs[idx]
    }

    fn oid_key<'a>(&'a self, s: &'a str) -> Option<Cow<'a, str>> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        if let Some(canon) = with_lower(s, |k| self.oid_names.get(k).map(String::as_str)) {
            return Some(Cow::Borrowed(canon));
        }
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Some(Cow::Owned(s.to_ascii_lowercase()))
        } else {
            Some(Cow::Borrowed(s))
        }
    }

    /// Resolves the entry's objectClass values to class indices.
    fn entry_classes(&self, entry: &Entry) -> Result<Vec<usize>, SchemaViolation> {
        let mut out = Vec::new();
        for v in entry.values("objectClass") {
            let name = std::str::from_utf8(v)
                .map_err(|_| SchemaViolation::InvalidSyntax("objectClass: not UTF-8".into()))?;
            let idx = lookup(&self.class_index, name.trim()).ok_or_else(|| {
                SchemaViolation::ObjectClass(format!("unknown object class {name}"))
            })?;
            if !out.contains(&idx) {
                out.push(idx);
            }
        }
        Ok(out)
    }

    /// The most specific structural class: every structural class of the entry must
    /// be it or one of its superclasses (RFC 4512 §2.4.2).
    fn structural_of(&self, classes: &[usize]) -> Result<Option<usize>, SchemaViolation> {
        let structural: Vec<usize> = classes
            .iter()
            .copied()
            .filter(|&c| self.classes[c].kind == ClassKind::Structural)
            .collect();
        if structural.is_empty() {
            return Ok(None);
        }
        for &s in &structural {
            let anc = &self.classes[s].ancestors;
            if structural.iter().all(|&t| t == s || anc.contains(&t)) {
                return Ok(Some(s));
            }
        }
        let names: Vec<&str> = structural.iter().map(|&c| self.classes[c].name()).collect();
        Err(SchemaViolation::ObjectClass(format!(
            "more than one structural object class chain: {}",
            names.join(", ")
        )))
    }
}

impl AttributeType {
    /// The canonical (first) name, or the OID if the type has no name.
    pub fn name(&self) -> &str {
        self.names.first().map_or(self.oid.as_str(), String::as_str)
    }

    /// True for USAGE other than userApplications.
    pub fn is_operational(&self) -> bool {
        self.usage != Usage::UserApplications
    }

    /// Effective EQUALITY rule (own or inherited through SUP).
    pub fn equality_rule(&self) -> Option<&'static MatchingRule> {
        self.eq_rule
    }

    /// Effective ORDERING rule.
    pub fn ordering_rule(&self) -> Option<&'static MatchingRule> {
        self.ord_rule
    }

    /// Effective SUBSTR rule.
    pub fn substrings_rule(&self) -> Option<&'static MatchingRule> {
        self.sub_rule
    }

    /// Effective syntax OID.
    pub fn syntax_oid(&self) -> &str {
        &self.syntax_oid
    }

    /// How values are checked.
    pub fn syntax_kind(&self) -> SyntaxKind {
        self.syntax_kind
    }

    /// Lower-case names (entries key attributes by lower-case name).
    pub fn lower_names(&self) -> &[String] {
        &self.lower_names
    }

    /// True for a secret type (see the module header): its values never leave the server,
    /// never take part in a filter and cannot be compared.
    pub fn is_secret(&self) -> bool {
        self.secret
    }

    /// RFC 4512 §4.1.2 description text, as published in `attributeTypes`.
    pub fn description(&self) -> String {
        let mut s = format!("( {}", self.oid);
        push_names(&mut s, &self.names);
        push_desc(&mut s, self.desc.as_deref());
        if self.obsolete {
            s.push_str(" OBSOLETE");
        }
        for (kw, v) in [
            ("SUP", &self.sup),
            ("EQUALITY", &self.equality),
            ("ORDERING", &self.ordering),
            ("SUBSTR", &self.substr),
        ] {
            if let Some(v) = v {
                let _ = write!(s, " {kw} {v}");
            }
        }
        if let Some(syn) = &self.syntax {
            let _ = write!(s, " SYNTAX {syn}");
            if let Some(len) = self.syntax_len {
                let _ = write!(s, "{{{len}}}");
            }
        }
        for (flag, kw) in [
            (self.single_value, "SINGLE-VALUE"),
            (self.collective, "COLLECTIVE"),
            (self.no_user_modification, "NO-USER-MODIFICATION"),
        ] {
            if flag {
                s.push(' ');
                s.push_str(kw);
            }
        }
        let usage = match self.usage {
            Usage::UserApplications => None,
            Usage::DirectoryOperation => Some("directoryOperation"),
            Usage::DistributedOperation => Some("distributedOperation"),
            Usage::DsaOperation => Some("dSAOperation"),
        };
        if let Some(u) = usage {
            let _ = write!(s, " USAGE {u}");
        }
        s.push_str(" )");
        s
    }
}

impl ObjectClass {
    /// The canonical (first) name, or the OID.
    pub fn name(&self) -> &str {
        self.names.first().map_or(self.oid.as_str(), String::as_str)
    }

    /// RFC 4512 §4.1.1 description text, as published in `objectClasses`.
    pub fn description(&self) -> String {
        let mut s = format!("( {}", self.oid);
        push_names(&mut s, &self.names);
        push_desc(&mut s, self.desc.as_deref());
        if self.obsolete {
            s.push_str(" OBSOLETE");
        }
        if !self.sup.is_empty() {
            let _ = write!(s, " SUP {}", oids(&self.sup));
        }
        s.push_str(match self.kind {
            ClassKind::Abstract => " ABSTRACT",
            ClassKind::Structural => " STRUCTURAL",
            ClassKind::Auxiliary => " AUXILIARY",
        });
        if !self.must.is_empty() {
            let _ = write!(s, " MUST {}", oids(&self.must));
        }
        if !self.may.is_empty() {
            let _ = write!(s, " MAY {}", oids(&self.may));
        }
        s.push_str(" )");
        s
    }
}

// ---------------------------------------------------------------------------------------
// Loading: LDIF-ish lines → RFC 4512 descriptions → resolved schema.

/// Definitions as parsed, before references are resolved.
#[derive(Default)]
struct RawSchema {
    attrs: Vec<AttributeType>,
    attr_by_oid: HashMap<String, usize>,
    classes: Vec<ObjectClass>,
    class_by_oid: HashMap<String, usize>,
    syntaxes: Vec<LdapSyntax>,
    /// where each definition came from, for errors: oid → "file:line"
    origin: HashMap<String, String>,
}

impl RawSchema {
    fn load(&mut self, file: &str, text: &str) -> Result<(), String> {
        for (line_no, line) in logical_lines(text) {
            let at = format!("{file}:{line_no}");
            let Some((key, value)) = line.split_once(':') else {
                return Err(format!("{at}: expected `attribute: value`"));
            };
            if value.starts_with(':') || value.starts_with('<') {
                return Err(format!("{at}: base64 and URL values are not supported"));
            }
            let key = key.trim().to_ascii_lowercase();
            let key = key.strip_prefix("olc").unwrap_or(&key);
            let mut value = value.trim();
            // OpenLDAP cn=config ordering prefix `{n}`
            if value.starts_with('{') {
                if let Some(end) = value.find('}') {
                    value = value[end + 1..].trim_start();
                }
            }
            let result = match key {
                "attributetypes" => parse_description(value).and_then(|d| self.add_attr(d, file)),
                "objectclasses" => parse_description(value).and_then(|d| self.add_class(d, file)),
                "ldapsyntaxes" => parse_description(value).and_then(|d| self.add_syntax(d)),
                "matchingrules" => parse_description(value).and_then(|d| {
                    if matching::rule_by_name(&d.oid).is_some() {
                        Ok(None)
                    } else {
                        Err(format!("matching rule {} is not implemented", d.oid))
                    }
                }),
                _ => Ok(None), // dn:, objectClass:, cn: … of a subschema LDIF
            };
            match result {
                Ok(Some(oid)) => {
                    self.origin.insert(oid, at);
                }
                Ok(None) => {}
                Err(e) => return Err(format!("{at}: {e}")),
            }
        }
        Ok(())
    }

    fn add_attr(&mut self, d: Description, file: &str) -> Result<Option<String>, String> {
        let mut at = AttributeType {
            oid: d.oid.clone(),
            names: Vec::new(),
            desc: None,
            obsolete: false,
            sup: None,
            equality: None,
            ordering: None,
            substr: None,
            syntax: None,
            syntax_len: None,
            single_value: false,
            collective: false,
            no_user_modification: false,
            usage: Usage::UserApplications,
            source: file.to_string(),
            eq_rule: None,
            ord_rule: None,
            sub_rule: None,
            syntax_oid: String::new(),
            syntax_kind: SyntaxKind::OctetString,
            lower_names: Vec::new(),
            secret: false,
        };
        for (kw, vals) in d.fields {
            let one = || vals.first().cloned().ok_or(format!("{kw} needs a value"));
            match kw.as_str() {
                "NAME" => at.names = vals,
                "DESC" => at.desc = Some(one()?),
                "OBSOLETE" => at.obsolete = true,
                "SUP" => at.sup = Some(one()?),
                "EQUALITY" => at.equality = Some(one()?),
                "ORDERING" => at.ordering = Some(one()?),
                "SUBSTR" => at.substr = Some(one()?),
                "SYNTAX" => {
                    let v = one()?;
                    match v.split_once('{') {
                        Some((oid, len)) => {
                            let len = len
                                .strip_suffix('}')
                                .and_then(|l| l.parse().ok())
                                .ok_or(format!("bad syntax length in {v}"))?;
                            at.syntax = Some(oid.to_string());
                            at.syntax_len = Some(len);
                        }
                        None => at.syntax = Some(v),
                    }
                }
                "SINGLE-VALUE" => at.single_value = true,
                "COLLECTIVE" => at.collective = true,
                "NO-USER-MODIFICATION" => at.no_user_modification = true,
                "USAGE" => {
                    at.usage = match one()?.to_ascii_lowercase().as_str() {
                        "userapplications" => Usage::UserApplications,
                        "directoryoperation" => Usage::DirectoryOperation,
                        "distributedoperation" => Usage::DistributedOperation,
                        "dsaoperation" => Usage::DsaOperation,
                        other => return Err(format!("unknown USAGE {other}")),
                    }
                }
                "X-DIRD-SECRET" => at.secret = one()?.eq_ignore_ascii_case("TRUE"),
                k if k.starts_with("X-") => {}
                k => return Err(format!("unexpected {k} in attribute type {}", d.oid)),
            }
        }
        let oid = at.oid.clone();
        match self.attr_by_oid.get(&oid) {
            Some(&i) => self.attrs[i] = at,
            None => {
                self.attr_by_oid.insert(oid.clone(), self.attrs.len());
                self.attrs.push(at);
            }
        }
        Ok(Some(oid))
    }

    fn add_class(&mut self, d: Description, file: &str) -> Result<Option<String>, String> {
        let mut oc = ObjectClass {
            oid: d.oid.clone(),
            names: Vec::new(),
            desc: None,
            obsolete: false,
            sup: Vec::new(),
            kind: ClassKind::Structural,
            must: Vec::new(),
            may: Vec::new(),
            source: file.to_string(),
            ancestors: Vec::new(),
            all_must: Vec::new(),
            all_may: Vec::new(),
        };
        for (kw, vals) in d.fields {
            match kw.as_str() {
                "NAME" => oc.names = vals,
                "DESC" => oc.desc = vals.into_iter().next(),
                "OBSOLETE" => oc.obsolete = true,
                "SUP" => oc.sup = vals,
                "ABSTRACT" => oc.kind = ClassKind::Abstract,
                "STRUCTURAL" => oc.kind = ClassKind::Structural,
                "AUXILIARY" => oc.kind = ClassKind::Auxiliary,
                "MUST" => oc.must = vals,
                "MAY" => oc.may = vals,
                k if k.starts_with("X-") => {}
                k => return Err(format!("unexpected {k} in object class {}", d.oid)),
            }
        }
        let oid = oc.oid.clone();
        match self.class_by_oid.get(&oid) {
            Some(&i) => self.classes[i] = oc,
            None => {
                self.class_by_oid.insert(oid.clone(), self.classes.len());
                self.classes.push(oc);
            }
        }
        Ok(Some(oid))
    }

    fn add_syntax(&mut self, d: Description) -> Result<Option<String>, String> {
        let mut desc = String::new();
        for (kw, vals) in d.fields {
            match kw.as_str() {
                "DESC" => desc = vals.into_iter().next().unwrap_or_default(),
                k if k.starts_with("X-") => {}
                k => return Err(format!("unexpected {k} in syntax {}", d.oid)),
            }
        }
        let kind = builtin_syntax(&d.oid).map_or(SyntaxKind::OctetString, |s| s.2);
        match self.syntaxes.iter_mut().find(|s| s.oid == d.oid) {
            Some(s) => s.desc = desc,
            None => self.syntaxes.push(LdapSyntax {
                oid: d.oid,
                desc,
                kind,
            }),
        }
        Ok(None)
    }

    fn resolve(mut self) -> Result<Schema, String> {
        let origin = |oid: &str| self.origin.get(oid).cloned().unwrap_or_default();
        // Name indexes (names and OIDs, lower-case); a name used by two OIDs is an error.
        let mut attr_index = NameMap::default();
        for (i, a) in self.attrs.iter().enumerate() {
            for key in std::iter::once(&a.oid).chain(a.names.iter()) {
                if let Some(prev) = attr_index.insert(key.to_ascii_lowercase(), i) {
                    if prev != i {
                        return Err(format!(
                            "{}: attribute name {key} already used by {}",
                            origin(&a.oid),
                            self.attrs[prev].oid
                        ));
                    }
                }
            }
        }
        let mut class_index = NameMap::default();
        for (i, c) in self.classes.iter().enumerate() {
            for key in std::iter::once(&c.oid).chain(c.names.iter()) {
                if let Some(prev) = class_index.insert(key.to_ascii_lowercase(), i) {
                    if prev != i {
                        return Err(format!(
                            "{}: object class name {key} already used by {}",
                            origin(&c.oid),
                            self.classes[prev].oid
                        ));
                    }
                }
            }
        }
        // Built-in syntaxes, then file-defined ones not yet listed.
        let mut syntaxes: Vec<LdapSyntax> = BUILTIN_SYNTAXES
            .iter()
            .map(|(oid, desc, kind)| LdapSyntax {
                oid: (*oid).to_string(),
                desc: (*desc).to_string(),
                kind: *kind,
            })
            .collect();
        for s in self.syntaxes.drain(..) {
            match syntaxes.iter_mut().find(|x| x.oid == s.oid) {
                Some(x) => x.desc = s.desc,
                None => syntaxes.push(s),
            }
        }

        // Attribute types: SUP chains give syntax and matching rules (RFC 4512 §2.5.1).
        let n = self.attrs.len();
        for i in 0..n {
            let mut chain = vec![i];
            let mut cur = i;
            while let Some(sup) = self.attrs[cur].sup.clone() {
                let next = lookup(&attr_index, &sup).ok_or_else(|| {
                    format!(
                        "{}: unknown SUP {sup} of {}",
                        origin(&self.attrs[cur].oid),
                        self.attrs[cur].name()
                    )
                })?;
                if chain.contains(&next) {
                    return Err(format!(
                        "{}: SUP cycle at {}",
                        origin(&self.attrs[i].oid),
                        self.attrs[i].name()
                    ));
                }
                chain.push(next);
                cur = next;
            }
            let find = |f: fn(&AttributeType) -> &Option<String>| {
                chain.iter().find_map(|&c| f(&self.attrs[c]).clone())
            };
            let rule = |name: Option<String>, usage: RuleUsage| -> Result<_, String> {
                match name {
                    None => Ok(None),
                    Some(n) => match matching::rule_by_name(&n) {
                        Some(r) if r.usage == usage => Ok(Some(r)),
                        Some(_) => Err(format!(
                            "{}: {n} cannot be used as {usage:?} rule of {}",
                            origin(&self.attrs[i].oid),
                            self.attrs[i].name()
                        )),
                        None => Err(format!(
                            "{}: unknown matching rule {n} in {}",
                            origin(&self.attrs[i].oid),
                            self.attrs[i].name()
                        )),
                    },
                }
            };
            let eq = rule(find(|a| &a.equality), RuleUsage::Equality)?;
            let ord = rule(find(|a| &a.ordering), RuleUsage::Ordering)?;
            let sub = rule(find(|a| &a.substr), RuleUsage::Substrings)?;
            let syntax = find(|a| &a.syntax).ok_or_else(|| {
                format!(
                    "{}: attribute type {} has neither SYNTAX nor SUP",
                    origin(&self.attrs[i].oid),
                    self.attrs[i].name()
                )
            })?;
            let kind = syntaxes
                .iter()
                .find(|s| s.oid == syntax)
                .map_or(SyntaxKind::OctetString, |s| s.kind);
            let secret = chain
                .iter()
                .any(|&c| self.attrs[c].secret || is_listed_secret(&self.attrs[c].oid));
            let a = &mut self.attrs[i];
            a.secret = secret;
            a.eq_rule = eq;
            a.ord_rule = ord;
            a.sub_rule = sub;
            a.syntax_oid = syntax;
            a.syntax_kind = kind;
            a.lower_names = a.names.iter().map(|n| n.to_ascii_lowercase()).collect();
            if a.lower_names.is_empty() {
                a.lower_names.push(a.oid.clone());
            }
        }

        // Object classes: superclass closure and inherited MUST/MAY (RFC 4512 §2.4).
        let m = self.classes.len();
        let mut direct: Vec<(Vec<usize>, Vec<usize>, Vec<usize>)> = Vec::with_capacity(m);
        for c in &self.classes {
            let at = origin(&c.oid);
            let sups = c
                .sup
                .iter()
                .map(|s| {
                    lookup(&class_index, s)
                        .ok_or_else(|| format!("{at}: unknown SUP {s} of {}", c.name()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let attrs = |list: &[String]| {
                list.iter()
                    .map(|s| {
                        lookup(&attr_index, s)
                            .ok_or_else(|| format!("{at}: unknown attribute {s} in {}", c.name()))
                    })
                    .collect::<Result<Vec<_>, String>>()
            };
            direct.push((sups, attrs(&c.must)?, attrs(&c.may)?));
        }
        for i in 0..m {
            let mut ancestors: Vec<usize> = Vec::new();
            let mut stack = direct[i].0.clone();
            while let Some(s) = stack.pop() {
                if s == i {
                    return Err(format!(
                        "{}: SUP cycle at {}",
                        origin(&self.classes[i].oid),
                        self.classes[i].name()
                    ));
                }
                if !ancestors.contains(&s) {
                    ancestors.push(s);
                    stack.extend(direct[s].0.iter().copied());
                }
            }
            let mut must = Vec::new();
            let mut may = Vec::new();
            for &c in std::iter::once(&i).chain(ancestors.iter()) {
                for &a in &direct[c].1 {
                    if !must.contains(&a) {
                        must.push(a);
                    }
                }
                for &a in &direct[c].2 {
                    if !may.contains(&a) {
                        may.push(a);
                    }
                }
            }
            let c = &mut self.classes[i];
            c.ancestors = ancestors;
            c.all_must = must;
            c.all_may = may;
        }

        let mut oid_names = HashMap::new();
        for a in &self.attrs {
            let canon = a.name().to_ascii_lowercase();
            for key in std::iter::once(&a.oid).chain(a.names.iter()) {
                oid_names.insert(key.to_ascii_lowercase(), canon.clone());
            }
        }
        // Classes last, so their names win (objectClass values are the common case).
        for c in &self.classes {
            let canon = c.name().to_ascii_lowercase();
            for key in std::iter::once(&c.oid).chain(c.names.iter()) {
                oid_names.insert(key.to_ascii_lowercase(), canon.clone());
            }
        }
        let extensible_object = lookup(&class_index, "extensibleObject");
        Ok(Schema {
            attrs: self.attrs,
            attr_index,
            classes: self.classes,
            class_index,
            syntaxes,
            oid_names,
            extensible_object,
        })
    }
}

/// A parsed RFC 4512 description: the OID and `KEYWORD values…` fields.
struct Description {
    oid: String,
    fields: Vec<(String, Vec<String>)>,
}

#[derive(Debug, PartialEq)]
enum Token {
    Open,
    Close,
    Dollar,
    Quoted(String),
    Word(String),
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '$' => {
                chars.next();
                out.push(Token::Dollar);
            }
            '\'' => {
                chars.next();
                let start = i + 1;
                let mut end = None;
                for (j, c) in chars.by_ref() {
                    if c == '\'' {
                        end = Some(j);
                        break;
                    }
                }
                let end = end.ok_or("unterminated quoted string")?;
                out.push(Token::Quoted(unescape_qdstring(&s[start..end])));
            }
            _ => {
                let start = i;
                let mut end = s.len();
                while let Some(&(j, c)) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '$' | '\'') {
                        end = j;
                        break;
                    }
                    chars.next();
                }
                out.push(Token::Word(s[start..end].to_string()));
            }
        }
    }
    Ok(out)
}

/// Parses `( numericoid KEYWORD value … )` (RFC 4512 §4.1). Values are a quoted string,
/// a word, or a parenthesised list of either separated by `$` or spaces.
fn parse_description(s: &str) -> Result<Description, String> {
    let tokens = tokenize(s)?;
    let mut it = tokens.into_iter().peekable();
    if it.next() != Some(Token::Open) {
        return Err("description must start with '('".into());
    }
    let oid = match it.next() {
        Some(Token::Word(w)) if is_numeric_oid(&w) => w,
        other => return Err(format!("expected a numeric OID, found {other:?}")),
    };
    let mut fields = Vec::new();
    loop {
        match it.next() {
            Some(Token::Close) => break,
            Some(Token::Word(kw)) => {
                let kw = kw.to_ascii_uppercase();
                let mut vals = Vec::new();
                let takes_value = !matches!(
                    kw.as_str(),
                    "OBSOLETE"
                        | "SINGLE-VALUE"
                        | "COLLECTIVE"
                        | "NO-USER-MODIFICATION"
                        | "ABSTRACT"
                        | "STRUCTURAL"
                        | "AUXILIARY"
                );
                if takes_value {
                    match it.next() {
                        Some(Token::Quoted(q)) => vals.push(q),
                        Some(Token::Word(w)) => vals.push(w),
                        Some(Token::Open) => loop {
                            match it.next() {
                                Some(Token::Close) => break,
                                Some(Token::Dollar) => {}
                                Some(Token::Quoted(q)) | Some(Token::Word(q)) => vals.push(q),
                                _ => return Err(format!("unterminated list after {kw}")),
                            }
                        },
                        other => return Err(format!("{kw} needs a value, found {other:?}")),
                    }
                }
                fields.push((kw, vals));
            }
            None => return Err("missing ')'".into()),
            Some(other) => return Err(format!("unexpected {other:?}")),
        }
    }
    if it.next().is_some() {
        return Err("text after the closing ')'".into());
    }
    Ok(Description { oid, fields })
}

/// Joins folded LDIF lines (RFC 2849: a line starting with one space continues the
/// previous one), dropping comments and blank lines. Yields (first line number, text).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut in_comment = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(cont) = line.strip_prefix(' ') {
            if in_comment {
                continue;
            }
            if let Some(last) = out.last_mut() {
                last.1.push_str(cont);
                continue;
            }
        }
        in_comment = line.starts_with('#');
        if in_comment || line.trim().is_empty() {
            continue;
        }
        out.push((i + 1, line.to_string()));
    }
    out
}

fn is_numeric_oid(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_descr(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

fn unescape_qdstring(s: &str) -> String {
    // RFC 4512 §4.1: `'` is written \27 and `\` is written \5C inside qdstrings.
    s.replace("\\27", "'")
        .replace("\\5C", "\\")
        .replace("\\5c", "\\")
}

fn qdstring(s: &str) -> String {
    s.replace('\\', "\\5C").replace('\'', "\\27")
}

fn push_names(s: &mut String, names: &[String]) {
    match names {
        [] => {}
        [one] => {
            let _ = write!(s, " NAME '{one}'");
        }
        many => {
            s.push_str(" NAME (");
            for n in many {
                let _ = write!(s, " '{n}'");
            }
            s.push_str(" )");
        }
    }
}

fn push_desc(s: &mut String, desc: Option<&str>) {
    if let Some(d) = desc {
        let _ = write!(s, " DESC '{}'", qdstring(d));
    }
}

fn oids<S: AsRef<str>>(list: &[S]) -> String {
    match list {
        [one] => one.as_ref().to_string(),
        many => {
            let joined: Vec<&str> = many.iter().map(AsRef::as_ref).collect();
            format!("( {} )", joined.join(" $ "))
        }
    }
}

/// Lower-cased attribute/class name or OID → index. Looked up several times per attribute of
/// every returned entry, so it hashes with FNV-1a rather than SipHash (issue 14: SipHash was
/// ~5 % of a search's profile). The key set is fixed when the schema loads; hostile names
/// only probe it, so a keyed hash buys nothing here.
type NameMap = HashMap<String, usize, std::hash::BuildHasherDefault<NameHasher>>;

/// FNV-1a (64-bit) for the short ASCII keys of `NameMap`.
struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> NameHasher {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Case-insensitive lookup of a lower-cased key map without allocating for short names.
fn lookup(map: &NameMap, key: &str) -> Option<usize> {
    with_lower(key, |k| map.get(k).copied())
}

/// Calls `f` with the ASCII-lower-cased `s`, on the stack when `s` is short.
fn with_lower<R>(s: &str, f: impl FnOnce(&str) -> R) -> R {
    if !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return f(s);
    }
    let b = s.as_bytes();
    if b.len() <= 64 {
        let mut buf = [0u8; 64];
        for (d, c) in buf.iter_mut().zip(b) {
            *d = c.to_ascii_lowercase();
        }
        // ASCII lower-casing keeps UTF-8 valid, so this never takes the fallback.
        if let Ok(k) = std::str::from_utf8(&buf[..b.len()]) {
            return f(k);
        }
    }
    f(&s.to_ascii_lowercase())
}

/// Syntax checks (RFC 4517 §3.3), one per [`SyntaxKind`].
fn valid_syntax(kind: SyntaxKind, v: &[u8]) -> bool {
    let printable = |c: &u8| c.is_ascii_alphanumeric() || b"'()+,-./:? =".contains(c);
    match kind {
        SyntaxKind::OctetString => true,
        SyntaxKind::DirectoryString => !v.is_empty() && std::str::from_utf8(v).is_ok(),
        SyntaxKind::Ia5String => v.is_ascii(),
        SyntaxKind::PrintableString => !v.is_empty() && v.iter().all(printable),
        SyntaxKind::CountryString => v.len() == 2 && v.iter().all(printable),
        SyntaxKind::Integer => matching::is_valid_integer(v),
        SyntaxKind::GeneralizedTime => matching::parse_generalized_time(v).is_some(),
        SyntaxKind::Dn => std::str::from_utf8(v).is_ok_and(|s| Dn::parse(s).is_ok()),
        SyntaxKind::Boolean => v == b"TRUE" || v == b"FALSE",
        SyntaxKind::Oid => std::str::from_utf8(v).is_ok_and(|s| is_numeric_oid(s) || is_descr(s)),
        SyntaxKind::NumericString => {
            !v.is_empty() && v.iter().all(|c| c.is_ascii_digit() || *c == b' ')
        }
        SyntaxKind::Uuid => matching::parse_uuid(v).is_some(),
    }
}

fn builtin_syntax(oid: &str) -> Option<&'static (&'static str, &'static str, SyntaxKind)> {
    BUILTIN_SYNTAXES.iter().find(|s| s.0 == oid)
}

/// Syntaxes implemented by the server (RFC 4517 §3.3, RFC 2307bis, RFC 4530, MS-ADTS).
const BUILTIN_SYNTAXES: &[(&str, &str, SyntaxKind)] = {
    use SyntaxKind::*;
    &[
        (
            "1.3.6.1.4.1.1466.115.121.1.3",
            "Attribute Type Description",
            DirectoryString,
        ),
        ("1.3.6.1.4.1.1466.115.121.1.5", "Binary", OctetString),
        (
            "1.3.6.1.4.1.1466.115.121.1.6",
            "Bit String",
            DirectoryString,
        ),
        ("1.3.6.1.4.1.1466.115.121.1.7", "Boolean", Boolean),
        ("1.3.6.1.4.1.1466.115.121.1.8", "Certificate", OctetString),
        (
            "1.3.6.1.4.1.1466.115.121.1.9",
            "Certificate List",
            OctetString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.10",
            "Certificate Pair",
            OctetString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.11",
            "Country String",
            CountryString,
        ),
        ("1.3.6.1.4.1.1466.115.121.1.12", "DN", Dn),
        (
            "1.3.6.1.4.1.1466.115.121.1.14",
            "Delivery Method",
            DirectoryString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.15",
            "Directory String",
            DirectoryString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.16",
            "DIT Content Rule Description",
            DirectoryString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.17",
            "DIT Structure Rule Description",
            DirectoryString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.21",
            "Enhanced Guide",
            DirectoryString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.22",
            "Facsimile Telephone Number",
            DirectoryString,
        ),
        ("1.3.6.1.4.1.1466.115.121.1.23", "Fax", OctetString),
        (
            "1.3.6.1.4.1.1466.115.121.1.24",
            "Generalized Time",
            GeneralizedTime,
        ),
        ("1.3.6.1.4.1.1466.115.121.1.25", "Guide", DirectoryString),
        ("1.3.6.1.4.1.1466.115.121.1.26", "IA5 String", Ia5String),
        ("1.3.6.1.4.1.1466.115.121.1.27", "INTEGER", Integer),
        ("1.3.6.1.4.1.1466.115.121.1.28", "JPEG", OctetString),
        (
            "1.3.6.1.4.1.1466.115.121.1.30",
            "Matching Rule Description",
            DirectoryString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.31",
            "Matching Rule Use Description",
            DirectoryString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.34",
            "Name And Optional UID",
            DirectoryString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.35",
            "Name Form Description",
            DirectoryString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.36",
            "Numeric String",
            NumericString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.37",
            "Object Class Description",
            DirectoryString,
        ),
        ("1.3.6.1.4.1.1466.115.121.1.38", "OID", Oid),
        (
            "1.3.6.1.4.1.1466.115.121.1.39",
            "Other Mailbox",
            DirectoryString,
        ),
        ("1.3.6.1.4.1.1466.115.121.1.40", "Octet String", OctetString),
        (
            "1.3.6.1.4.1.1466.115.121.1.41",
            "Postal Address",
            DirectoryString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.44",
            "Printable String",
            PrintableString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.49",
            "Supported Algorithm",
            OctetString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.50",
            "Telephone Number",
            DirectoryString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.51",
            "Teletex Terminal Identifier",
            DirectoryString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.52",
            "Telex Number",
            DirectoryString,
        ),
        ("1.3.6.1.4.1.1466.115.121.1.53", "UTC Time", DirectoryString),
        (
            "1.3.6.1.4.1.1466.115.121.1.54",
            "LDAP Syntax Description",
            DirectoryString,
        ),
        (
            "1.3.6.1.4.1.1466.115.121.1.58",
            "Substring Assertion",
            DirectoryString,
        ),
        ("1.3.6.1.1.16.1", "UUID", Uuid),
        (
            "1.3.6.1.1.1.0.0",
            "RFC2307 NIS Netgroup Triple",
            DirectoryString,
        ),
        ("1.3.6.1.1.1.0.1", "RFC2307 Boot Parameter", DirectoryString),
        (
            "1.2.840.113556.1.4.903",
            "Object(DN-Binary)",
            DirectoryString,
        ),
        (
            "1.2.840.113556.1.4.904",
            "Object(DN-String)",
            DirectoryString,
        ),
        ("1.2.840.113556.1.4.906", "Large Integer", Integer),
        (
            "1.2.840.113556.1.4.907",
            "Object(NT-Security-Descriptor)",
            OctetString,
        ),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::builtin().unwrap()
    }

    fn entry(dn: &str, attrs: &[(&str, &str)]) -> Entry {
        let mut e = Entry::new(Dn::parse(dn).unwrap());
        for (k, v) in attrs {
            e.push(k, v.as_bytes().to_vec());
        }
        e
    }

    #[test]
    fn every_builtin_file_parses_alone_or_in_order() {
        let s = schema();
        assert!(s.attrs.len() > 150, "{}", s.attrs.len());
        assert!(s.classes.len() > 30);
        // each prefix of the file list resolves on its own (no forward references)
        for n in 1..=BUILTIN_SOURCES.len() {
            Schema::from_sources(&BUILTIN_SOURCES[..n])
                .unwrap_or_else(|e| panic!("first {n} files: {e}"));
        }
    }

    #[test]
    fn descriptions_parse() {
        let d = parse_description(
            "( 2.5.4.3 NAME ( 'cn' 'commonName' ) DESC 'it\\27s' SUP name \
             SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{64} X-ORIGIN ( 'RFC 4519' 'x' ) )",
        )
        .unwrap();
        assert_eq!(d.oid, "2.5.4.3");
        assert_eq!(
            d.fields[0],
            ("NAME".into(), vec!["cn".into(), "commonName".into()])
        );
        assert_eq!(d.fields[1].1, vec!["it's".to_string()]);
        let c =
            parse_description("( 1.2 NAME 'x' SUP top AUXILIARY MUST ( a $ b ) MAY c )").unwrap();
        assert_eq!(c.fields[3], ("MUST".into(), vec!["a".into(), "b".into()]));
        for bad in [
            "2.5.4.3 NAME 'x' )",
            "( cn NAME 'x' )",
            "( 1.2 NAME 'x' ",
            "( 1.2 NAME 'x ) ",
            "( 1.2 NAME ( 'x' )",
            "( 1.2 ) extra",
        ] {
            assert!(parse_description(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attribute_inheritance_and_lookup() {
        let s = schema();
        let cn = s.attribute("commonName").unwrap();
        assert_eq!(cn.name(), "cn");
        assert_eq!(cn.equality_rule().unwrap().name, "caseIgnoreMatch");
        assert_eq!(cn.syntax_oid(), "1.3.6.1.4.1.1466.115.121.1.15");
        assert_eq!(s.canonical_name("COMMONNAME"), Some("cn"));
        assert_eq!(s.canonical_name("2.5.4.3"), Some("cn"));
        assert_eq!(
            s.canonical_name("userCertificate;binary"),
            Some("userCertificate")
        );
        assert_eq!(s.canonical_name("noSuchThing"), None);
        assert!(s.is_operational("createTimestamp"));
        assert!(s.is_operational("entryUUID"));
        assert!(s.is_operational("memberOf"));
        assert!(!s.is_operational("cn"));
        assert!(s.is_single_valued("uidNumber"));
        assert!(s.is_single_valued("objectGUID"));
        assert!(!s.is_single_valued("member"));
        assert!(!s.is_user_modifiable("entryUUID"));
        assert!(!s.is_user_modifiable("dirdKerberosKeys"));
        assert!(s.is_user_modifiable("mail"));
        assert!(!s.is_user_modifiable("bogus"));
        assert_eq!(
            s.object_class("INETORGPERSON").unwrap().name(),
            "inetOrgPerson"
        );
        assert_eq!(s.object_class("2.5.6.6").unwrap().name(), "person");
    }

    #[test]
    fn normalize_and_order_by_attribute() {
        let s = schema();
        assert_eq!(s.normalize("cn", b" Alice  SMITH").unwrap(), b"alice smith");
        assert_eq!(s.normalize("uidNumber", b"0100").unwrap(), b"100");
        assert_eq!(s.normalize("uidNumber", b"x"), None);
        assert_eq!(s.normalize("nope", b"x"), None);
        assert_eq!(
            s.normalize("objectClass", b"InetOrgPerson").unwrap(),
            b"inetorgperson"
        );
        assert_eq!(s.normalize("objectClass", b"2.5.6.6").unwrap(), b"person");
        assert_eq!(s.normalize("objectClass", b"Unknown").unwrap(), b"unknown");
        assert_eq!(
            s.normalize("member", b"CN=A,DC=X").unwrap(),
            b"cn=a,dc=x".to_vec()
        );
        assert_eq!(
            s.normalize("modifyTimestamp", b"20240101010000+0100")
                .unwrap(),
            b"20240101000000Z".to_vec()
        );
        assert_eq!(s.order("uidNumber", b"9", b"10"), Some(Ordering::Less));
        assert_eq!(
            s.order("createTimestamp", b"20240101000000Z", b"20231231235959Z"),
            Some(Ordering::Greater)
        );
        // member has no ORDERING rule
        assert_eq!(s.order("member", b"cn=a", b"cn=b"), None);
        assert!(s.values_equal("mail", b"A@X.com", b"a@x.COM"));
        assert!(s.values_equal("nope", b"a", b"a"));
    }

    fn person() -> Entry {
        entry(
            "uid=alice,ou=People,dc=example,dc=com",
            &[
                ("objectClass", "top"),
                ("objectClass", "inetOrgPerson"),
                ("objectClass", "posixAccount"),
                ("uid", "alice"),
                ("cn", "Alice"),
                ("sn", "Smith"),
                ("uidNumber", "1000"),
                ("gidNumber", "1000"),
                ("homeDirectory", "/home/alice"),
                ("mail", "alice@example.com"),
                ("createTimestamp", "20240101000000Z"),
            ],
        )
    }

    #[test]
    fn check_entry_accepts_valid_entries() {
        let s = schema();
        s.check_entry(&person()).unwrap();
        assert_eq!(
            s.structural_class(&person()).as_deref(),
            Some("inetOrgPerson")
        );
        let ad_user = entry(
            "CN=Bob,CN=Users,DC=example,DC=com",
            &[
                ("objectClass", "top"),
                ("objectClass", "person"),
                ("objectClass", "organizationalPerson"),
                ("objectClass", "user"),
                ("cn", "Bob"),
                ("sAMAccountName", "bob"),
                ("userPrincipalName", "bob@example.com"),
                ("userAccountControl", "512"),
                ("objectSid", "\u{1}\u{5}"),
                ("whenCreated", "20240101000000.0Z"),
                ("uidNumber", "1001"),
                ("unixHomeDirectory", "/home/bob"),
            ],
        );
        s.check_entry(&ad_user).unwrap();
        assert_eq!(s.structural_class(&ad_user).as_deref(), Some("user"));
        let computer = entry(
            "CN=WS1,CN=Computers,DC=example,DC=com",
            &[
                ("objectClass", "computer"),
                ("cn", "WS1"),
                ("dNSHostName", "ws1.example.com"),
                ("servicePrincipalName", "host/ws1.example.com"),
            ],
        );
        s.check_entry(&computer).unwrap();
        let group = entry(
            "CN=Domain Users,CN=Users,DC=example,DC=com",
            &[
                ("objectClass", "group"),
                ("objectClass", "posixGroup"),
                ("cn", "Domain Users"),
                ("groupType", "-2147483646"),
                ("gidNumber", "513"),
                ("member", "CN=Bob,CN=Users,DC=example,DC=com"),
            ],
        );
        s.check_entry(&group).unwrap();
        let root = entry(
            "DC=example,DC=com",
            &[
                ("objectClass", "top"),
                ("objectClass", "domain"),
                ("objectClass", "domainDNS"),
                ("dc", "example"),
            ],
        );
        s.check_entry(&root).unwrap();
        assert_eq!(s.structural_class(&root).as_deref(), Some("domainDNS"));
        let ext = entry(
            "cn=x,dc=example,dc=com",
            &[
                ("objectClass", "device"),
                ("objectClass", "extensibleObject"),
                ("cn", "x"),
                ("mail", "x@y"),
            ],
        );
        s.check_entry(&ext).unwrap();
    }

    #[test]
    fn check_entry_object_class_violations() {
        let s = schema();
        let mut e = person();
        e.remove("objectClass");
        assert!(matches!(
            s.check_entry(&e),
            Err(SchemaViolation::ObjectClass(_))
        ));
        let mut e = person();
        e.push("objectClass", b"noSuchClass".to_vec());
        assert!(matches!(
            s.check_entry(&e),
            Err(SchemaViolation::ObjectClass(_))
        ));
        let mut e = person();
        e.remove("cn");
        let err = s.check_entry(&e).unwrap_err();
        assert!(
            matches!(&err, SchemaViolation::ObjectClass(m) if m.contains("cn")),
            "{err}"
        );
        let ou = entry(
            "ou=x,dc=example,dc=com",
            &[("objectClass", "organizationalUnit")],
        );
        assert!(
            matches!(s.check_entry(&ou), Err(SchemaViolation::ObjectClass(m)) if m.contains("ou"))
        );
        let mut e = person();
        e.remove("uidNumber"); // MUST of the auxiliary posixAccount
        assert!(matches!(
            s.check_entry(&e),
            Err(SchemaViolation::ObjectClass(_))
        ));
        let mut e = person();
        e.push("objectClass", b"organizationalUnit".to_vec());
        e.push("ou", b"x".to_vec());
        assert!(
            matches!(s.check_entry(&e), Err(SchemaViolation::ObjectClass(m)) if m.contains("structural"))
        );
        let aux_only = entry(
            "uid=a,dc=x",
            &[("objectClass", "posixAccount"), ("uid", "a"), ("cn", "a")],
        );
        assert!(matches!(
            s.check_entry(&aux_only),
            Err(SchemaViolation::ObjectClass(_))
        ));
        let mut e = person();
        e.push("dNSHostName", b"x.example.com".to_vec()); // allowed by computer only
        assert!(matches!(
            s.check_entry(&e),
            Err(SchemaViolation::ObjectClass(_))
        ));
    }

    #[test]
    fn check_entry_attribute_violations() {
        let s = schema();
        let mut e = person();
        e.push("fooBar", b"x".to_vec());
        assert_eq!(
            s.check_entry(&e),
            Err(SchemaViolation::UndefinedAttribute("fooBar".into()))
        );
        let mut e = person();
        e.push("uidNumber", b"1001".to_vec());
        assert!(matches!(
            s.check_entry(&e),
            Err(SchemaViolation::Constraint(_))
        ));
        let mut e = person();
        e.set_str("uidNumber", "12a");
        assert!(matches!(
            s.check_entry(&e),
            Err(SchemaViolation::InvalidSyntax(_))
        ));
        let mut e = person();
        e.set_str("createTimestamp", "yesterday");
        assert!(matches!(
            s.check_entry(&e),
            Err(SchemaViolation::InvalidSyntax(_))
        ));
        let mut e = person();
        e.set_str("cn", "");
        assert!(matches!(
            s.check_entry(&e),
            Err(SchemaViolation::InvalidSyntax(_))
        ));
        let mut e = person();
        e.push("mail", b"ALICE@example.com".to_vec());
        assert!(matches!(
            s.check_entry(&e),
            Err(SchemaViolation::ValueExists(_))
        ));
        let mut e = person();
        e.set_str("uid", "bob");
        assert!(matches!(
            s.check_entry(&e),
            Err(SchemaViolation::NamingViolation(_))
        ));
        let mut e = person();
        e.push("seeAlso", b"not a dn".to_vec());
        assert!(matches!(
            s.check_entry(&e),
            Err(SchemaViolation::InvalidSyntax(_))
        ));
        // operational attributes are allowed whatever the classes
        let mut e = person();
        e.push(
            "entryUUID",
            b"3f2504e0-4f89-11d3-9a0c-0305e82c3301".to_vec(),
        );
        e.push("memberOf", b"cn=g,dc=x".to_vec());
        s.check_entry(&e).unwrap();
        e.set_str("entryUUID", "nope");
        assert!(matches!(
            s.check_entry(&e),
            Err(SchemaViolation::InvalidSyntax(_))
        ));
    }

    #[test]
    fn multi_valued_dn_attributes_are_checked_once_per_value() {
        // The DN syntax of several values is taken from their distinguishedNameMatch keys
        // (one parse per value): a bad value among good ones is still refused, and the
        // duplicate check compares normal forms (case, spaces).
        let s = schema();
        let group = |members: &[&str]| {
            let mut e = entry(
                "cn=g,dc=example,dc=com",
                &[
                    ("objectClass", "top"),
                    ("objectClass", "groupOfNames"),
                    ("cn", "g"),
                ],
            );
            for m in members {
                e.push("member", m.as_bytes().to_vec());
            }
            e
        };
        s.check_entry(&group(&[
            "cn=a,dc=example,dc=com",
            "cn=b,dc=example,dc=com",
        ]))
        .unwrap();
        for bad in ["not a dn", "cn=x,=y"] {
            assert!(
                matches!(
                    s.check_entry(&group(&["cn=a,dc=example,dc=com", bad])),
                    Err(SchemaViolation::InvalidSyntax(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            s.check_entry(&group(&[
                "cn=a,dc=example,dc=com",
                "CN=A, DC=Example,dc=com"
            ])),
            Err(SchemaViolation::ValueExists(_))
        ));
        // More values than the pairwise check handles go through the hash set.
        let many: Vec<String> = (0..40)
            .map(|i| format!("cn=u{i},dc=example,dc=com"))
            .collect();
        let mut refs: Vec<&str> = many.iter().map(String::as_str).collect();
        s.check_entry(&group(&refs)).unwrap();
        refs.push("CN=U7,dc=example,dc=com");
        assert!(matches!(
            s.check_entry(&group(&refs)),
            Err(SchemaViolation::ValueExists(_))
        ));
        // Aliases merge into one type: `commonName` and `cn` are the same attribute.
        let mut e = group(&["cn=a,dc=example,dc=com"]);
        e.push("commonName", b"G".to_vec());
        assert!(matches!(
            s.check_entry(&e),
            Err(SchemaViolation::ValueExists(_))
        ));
    }

    #[test]
    fn operator_files_extend_and_report_errors() {
        let extra = "# sudo\n\
            attributeTypes: ( 1.3.6.1.4.1.15953.9.1.1 NAME 'sudoUser'\n  DESC 'User(s) who may  run sudo'\n  EQUALITY caseExactIA5Match SUBSTR caseExactIA5SubstringsMatch\n  SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )\n\
            olcObjectClasses: {0}( 1.3.6.1.4.1.15953.9.2.1 NAME 'sudoRole' SUP top STRUCTURAL\n  MUST cn MAY sudoUser )\n";
        let mut sources = BUILTIN_SOURCES.to_vec();
        sources.push(("sudo.ldif", extra));
        let s = Schema::from_sources(&sources).unwrap();
        assert_eq!(
            s.attribute("sudouser").unwrap().desc.as_deref(),
            Some("User(s) who may  run sudo")
        );
        assert_eq!(
            s.object_class("sudoRole").unwrap().kind,
            ClassKind::Structural
        );

        let bad = [
            ("attributeTypes: ( 1.9.9 NAME 'x' SUP nope )", "x.ldif:1", "unknown SUP"),
            ("\n\nattributeTypes: ( 1.9.9 NAME 'x' EQUALITY fuzzyMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )", "x.ldif:3", "unknown matching rule"),
            ("attributeTypes: ( 1.9.9 NAME 'cn' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )", "x.ldif:1", "already used"),
            ("objectClasses: ( 1.9.9 NAME 'x' MUST nope )", "x.ldif:1", "unknown attribute"),
            ("attributeTypes: ( 1.9.9 NAME 'x' )", "x.ldif:1", "neither SYNTAX"),
            ("attributeTypes: ( 1.9.9 NAME 'x' SYNTAX 1.2{x} )", "x.ldif:1", "length"),
            ("attributeTypes: ( 1.9.9 NAME 'x'\n BOGUS 1 )", "x.ldif:1", "unexpected BOGUS"),
            ("attributeTypes: ( 1.9.9 NAME 'x' EQUALITY integerOrderingMatch SYNTAX 1.2 )", "x.ldif:1", "cannot be used"),
            ("matchingRules: ( 1.9.9 NAME 'x' SYNTAX 1.2 )", "x.ldif:1", "not implemented"),
            ("no colon here", "x.ldif:1", "expected"),
            ("objectClasses: ( 1.9.8 NAME 'a' SUP b )\nobjectClasses: ( 1.9.9 NAME 'b' SUP a )", "x.ldif", "cycle"),
        ];
        for (text, at, msg) in bad {
            let mut sources = BUILTIN_SOURCES.to_vec();
            sources.push(("x.ldif", text));
            let err = Schema::from_sources(&sources).unwrap_err();
            assert!(err.starts_with(at) && err.contains(msg), "{text}: {err}");
        }
    }

    #[test]
    fn later_definition_with_same_oid_replaces() {
        let s = schema();
        // 04-ad.ldif relaxes person: sn is optional as in Active Directory
        assert!(s.object_class("person").unwrap().source.contains("04-ad"));
        let redefine =
            "attributeTypes: ( 2.5.4.3 NAME ( 'cn' 'commonName' ) SUP name SINGLE-VALUE )";
        let mut sources = BUILTIN_SOURCES.to_vec();
        sources.push(("x.ldif", redefine));
        let s = Schema::from_sources(&sources).unwrap();
        assert!(s.is_single_valued("cn"));
    }

    #[test]
    fn subschema_entry_publishes_descriptions_that_parse_back() {
        let s = schema();
        let e = s.subschema_entry(Dn::parse("cn=Subschema").unwrap());
        assert!(e.is_a("subschema"));
        assert_eq!(e.first_str("cn"), Some("Subschema"));
        assert_eq!(e.values("attributeTypes").len(), s.attrs.len());
        assert_eq!(e.values("objectClasses").len(), s.classes.len());
        assert!(!e.values("ldapSyntaxes").is_empty());
        assert!(!e.values("matchingRules").is_empty());
        assert!(!e.values("matchingRuleUse").is_empty());
        // round trip: publish → parse → same schema shape
        let mut text = String::new();
        for key in [
            "attributeTypes",
            "objectClasses",
            "ldapSyntaxes",
            "matchingRules",
        ] {
            for v in e.values(key) {
                text.push_str(&format!("{key}: {}\n", std::str::from_utf8(v).unwrap()));
            }
        }
        let again = Schema::from_sources(&[("published", &text)]).unwrap();
        assert_eq!(again.attrs.len(), s.attrs.len());
        assert_eq!(again.classes.len(), s.classes.len());
        for a in &s.attrs {
            assert_eq!(
                again.attribute(&a.oid).unwrap().description(),
                a.description()
            );
        }
        let cn = s.attribute("cn").unwrap().description();
        assert!(
            cn.starts_with("( 2.5.4.3 NAME ( 'cn' 'commonName' )"),
            "{cn}"
        );
    }

    #[test]
    fn logical_lines_unfold() {
        let l = logical_lines("# c\n continued comment\na: (\n  x\n )\n\nb: y\r\n");
        assert_eq!(l, vec![(3, "a: ( x)".to_string()), (7, "b: y".to_string())]);
    }
}
