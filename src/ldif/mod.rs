//! LDIF (RFC 2849): a streaming reader and a writer for directory records.
//! May import: std, `base64`, `model`. Knows nothing of the store, the backend or LDAP.
//! Invariants: the reader never panics and never holds more than one logical line plus
//! one record in memory; the writer only emits LDIF that the reader reads back equal.
//!
//! Choices where RFC 2849 leaves room (each one documented on the item it concerns):
//! - `attr:< URL` values are refused with "URL values are not supported".
//! - `control:` lines in change records are checked for an OID and then ignored.
//! - Plain (`attr: value`) values may be any UTF-8, not only the ASCII SAFE-STRING of
//!   RFC 2849 §"Formal Syntax"; values that are not UTF-8 must be base64 (`attr::`).
//! - Content and change records may be mixed in one file.
//! - The final `-` of the last modification in a modify record may be omitted.
//! - A UTF-8 byte-order mark at the start of the input is skipped.

mod reader;
mod writer;

use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::model::dn::Dn;
use crate::model::entry::{Entry, Modification};

pub use reader::LdifReader;
pub use writer::LdifWriter;

/// Longest logical (unfolded) line the reader accepts, in bytes (16 MiB).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Largest record (sum of its logical lines) the reader accepts, in bytes (256 MiB).
pub const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;

/// One LDIF record (RFC 2849 `ldif-attrval-record` or `ldif-change-record`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LdifRecord {
    /// A content record: a DN and attributes, no `changetype`.
    Content(Entry),
    /// `changetype: add`.
    Add(Entry),
    /// `changetype: delete`.
    Delete(Dn),
    /// `changetype: modify`: `add:`/`delete:`/`replace:`/`increment:` blocks ended by `-`.
    Modify {
        /// The entry to modify.
        dn: Dn,
        /// The modifications, in file order.
        mods: Vec<Modification>,
    },
    /// `changetype: modrdn` or `changetype: moddn` (written back as `modrdn`).
    ModDn {
        /// The entry to rename.
        dn: Dn,
        /// The new RDN as written in the file (checked with `Rdn::parse`).
        new_rdn: String,
        /// `deleteoldrdn: 1`.
        delete_old_rdn: bool,
        /// `newsuperior:`, if present.
        new_superior: Option<Dn>,
    },
}

impl LdifRecord {
    /// The DN the record names.
    pub fn dn(&self) -> &Dn {
        match self {
            LdifRecord::Content(e) | LdifRecord::Add(e) => &e.dn,
            LdifRecord::Delete(dn) => dn,
            LdifRecord::Modify { dn, .. } | LdifRecord::ModDn { dn, .. } => dn,
        }
    }
}

/// Why the input is not valid LDIF, and on which (1-based, physical) line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LdifError {
    /// The physical line where the offending logical line starts.
    pub line: usize,
    /// What is wrong, in words.
    pub message: String,
}

impl LdifError {
    /// An error at `line`.
    pub(crate) fn new(line: usize, message: impl Into<String>) -> LdifError {
        LdifError {
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for LdifError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for LdifError {}

/// Parses a whole LDIF document held in memory, stopping at the first error.
pub fn parse_str(s: &str) -> Result<Vec<LdifRecord>, LdifError> {
    LdifReader::new(s.as_bytes()).collect()
}

/// Writes records as an LDIF document (no `version:` line; records separated by a blank line).
pub fn to_string(records: &[LdifRecord]) -> String {
    let mut out = LdifWriter::new(Vec::new());
    for r in records {
        // Writing to a Vec cannot fail; an invalid attribute name makes the writer refuse
        // the record, which we skip rather than emit LDIF that would not read back.
        let _ = out.write_record(r);
    }
    let bytes = out.into_inner();
    // The writer emits ASCII only (anything else is base64), so this is always UTF-8.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Base64 as RFC 2849 uses it (RFC 4648 standard alphabet); padding optional on input
/// because some exporters drop it.
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// RFC 4512 §2.5 AttributeDescription: `AttributeType *( ";" option )`, where the type is
/// a keystring (`ALPHA *(ALPHA / DIGIT / "-")`) or a numeric OID, and an option is
/// `1*(ALPHA / DIGIT / "-")`.
pub(crate) fn valid_attr_desc(s: &str) -> bool {
    let mut parts = s.split(';');
    let ty = parts.next().unwrap_or("");
    let keystring = ty.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && ty.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let oid = !ty.is_empty()
        && ty
            .split('.')
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (keystring || oid)
        && parts.all(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

#[cfg(test)]
mod tests;
