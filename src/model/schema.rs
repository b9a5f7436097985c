//! STUB — to be replaced by the schema implementation (see the helper brief).
//! Schema: attribute types, object classes, syntaxes and matching rules loaded from
//! `schema/*.ldif`; value normalisation, ordering and entry checks.

use std::cmp::Ordering;

use crate::model::entry::Entry;

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
}

/// The loaded schema.
#[derive(Debug, Default)]
pub struct Schema {}

impl Schema {
    /// The schema compiled in from `schema/*.ldif`.
    pub fn builtin() -> Result<Schema, String> {
        Ok(Schema {})
    }

    /// Canonical attribute name, if the attribute is known.
    pub fn canonical_name<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        Some(name)
    }

    /// True if the attribute is operational (returned only with `+` or by name).
    pub fn is_operational(&self, _name: &str) -> bool {
        false
    }

    /// True if the attribute is single-valued.
    pub fn is_single_valued(&self, _name: &str) -> bool {
        false
    }

    /// Equality-normalised form of a value, used as index key. None: unknown attribute or
    /// a value the syntax rejects.
    pub fn normalize(&self, _attr: &str, value: &[u8]) -> Option<Vec<u8>> {
        Some(value.to_ascii_lowercase())
    }

    /// Ordering between two values under the attribute's ORDERING rule.
    pub fn order(&self, _attr: &str, a: &[u8], b: &[u8]) -> Option<Ordering> {
        Some(a.cmp(b))
    }

    /// Checks MUST/MAY, single-value and syntax rules.
    pub fn check_entry(&self, _entry: &Entry) -> Result<(), SchemaViolation> {
        Ok(())
    }
}
