//! Directory entries: a DN plus attributes with binary-safe values.
//! May import: std, `model::dn`. Invariant: attribute names are looked up
//! case-insensitively; the name's first-seen spelling is kept for display.

use std::collections::BTreeMap;

use crate::model::dn::Dn;

/// One attribute: its display name and its values (raw octets; most are UTF-8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    /// Name as first written, e.g. `sAMAccountName`.
    pub name: String,
    /// Values in insertion order.
    pub values: Vec<Vec<u8>>,
}

/// An entry: DN plus attributes keyed by lower-cased name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The entry's name.
    pub dn: Dn,
    attrs: BTreeMap<String, Attribute>,
}

impl Entry {
    /// An entry with no attributes.
    pub fn new(dn: Dn) -> Entry {
        Entry {
            dn,
            attrs: BTreeMap::new(),
        }
    }

    /// The attribute called `name` (any case), if present.
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        // Called for every attribute test of every filter evaluation: lower-case on the
        // stack instead of allocating.
        if !name.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.attrs.get(name);
        }
        let mut buf = [0u8; 64];
        match buf.get_mut(..name.len()) {
            Some(dst) => {
                for (d, c) in dst.iter_mut().zip(name.bytes()) {
                    *d = c.to_ascii_lowercase();
                }
                // ASCII lower-casing keeps UTF-8 valid.
                match std::str::from_utf8(dst) {
                    Ok(lower) => self.attrs.get(lower),
                    Err(_) => self.attrs.get(&name.to_ascii_lowercase()),
                }
            }
            None => self.attrs.get(&name.to_ascii_lowercase()),
        }
    }

    /// The values of `name`, or an empty slice.
    pub fn values(&self, name: &str) -> &[Vec<u8>] {
        self.attr(name).map(|a| a.values.as_slice()).unwrap_or(&[])
    }

    /// The first value of `name` as UTF-8 text.
    pub fn first_str(&self, name: &str) -> Option<&str> {
        self.values(name)
            .first()
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// True if the attribute exists with at least one value.
    pub fn has(&self, name: &str) -> bool {
        !self.values(name).is_empty()
    }

    /// True if `objectClass` holds `class` (case-insensitive).
    pub fn is_a(&self, class: &str) -> bool {
        self.values("objectClass")
            .iter()
            .any(|v| v.eq_ignore_ascii_case(class.as_bytes()))
    }

    /// Iterates over attributes (ordered by lower-cased name).
    pub fn attrs(&self) -> impl Iterator<Item = &Attribute> {
        self.attrs.values()
    }

    /// Consumes the entry, yielding its attributes (ordered by lower-cased name).
    pub fn into_attrs(self) -> impl Iterator<Item = Attribute> {
        self.attrs.into_values()
    }

    /// Mutable access to every attribute.
    pub fn attrs_mut(&mut self) -> impl Iterator<Item = &mut Attribute> {
        self.attrs.values_mut()
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    /// True if the entry has no attributes.
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    /// Replaces all values of `name`; an empty list removes the attribute.
    pub fn set(&mut self, name: &str, values: Vec<Vec<u8>>) {
        let key = name.to_ascii_lowercase();
        if values.is_empty() {
            self.attrs.remove(&key);
        } else {
            let display = self
                .attrs
                .get(&key)
                .map(|a| a.name.clone())
                .unwrap_or_else(|| name.to_string());
            self.attrs.insert(
                key,
                Attribute {
                    name: display,
                    values,
                },
            );
        }
    }

    /// Adds a new attribute under its display name; false (and no change) if the entry
    /// already has one of that name in any case. One lookup: for record decoding.
    pub fn insert_new(&mut self, name: String, values: Vec<Vec<u8>>) -> bool {
        match self.attrs.entry(name.to_ascii_lowercase()) {
            std::collections::btree_map::Entry::Occupied(_) => false,
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(Attribute { name, values });
                true
            }
        }
    }

    /// Sets a single text value.
    pub fn set_str(&mut self, name: &str, value: &str) {
        self.set(name, vec![value.as_bytes().to_vec()]);
    }

    /// Appends values (no duplicate check: callers that need set semantics check first).
    pub fn push(&mut self, name: &str, value: Vec<u8>) {
        let key = name.to_ascii_lowercase();
        self.attrs
            .entry(key)
            .or_insert_with(|| Attribute {
                name: name.to_string(),
                values: Vec::new(),
            })
            .values
            .push(value);
    }

    /// Removes the attribute, returning it.
    pub fn remove(&mut self, name: &str) -> Option<Attribute> {
        // Every write removes the computed attributes (lower-case names) from the entry.
        if !name.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.attrs.remove(name);
        }
        self.attrs.remove(&name.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive() {
        let mut e = Entry::new(Dn::parse("cn=a,dc=x").unwrap());
        e.push("objectClass", b"top".to_vec());
        e.push("OBJECTCLASS", b"person".to_vec());
        assert_eq!(e.values("objectclass").len(), 2);
        assert_eq!(e.attr("objectclass").unwrap().name, "objectClass");
        assert!(e.is_a("PERSON"));
        e.set("objectClass", vec![]);
        assert!(!e.has("objectClass"));
    }
}

/// The kind of change in one modification (RFC 4511 §4.6, RFC 4525 increment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModOp {
    /// add values
    Add,
    /// delete values (all if none listed)
    Delete,
    /// replace all values
    Replace,
    /// add a number to an integer value
    Increment,
}

/// One modification of one attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Modification {
    /// what to do
    pub op: ModOp,
    /// attribute description
    pub attr: String,
    /// values involved
    pub values: Vec<Vec<u8>>,
}
