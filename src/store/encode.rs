//! Entry ⇄ bytes: the stored record format of the `entries` table (versioned).
//! May import: `model`, `store`. Invariant: `decode` never panics and never allocates more
//! than the input justifies; malformed bytes give `StoreError::Corrupt`.
//!
//! Version 1 layout (all integers big-endian):
//! ```text
//! u8  version (= 1)
//! u16 rdn count, then per RDN:  u16 ava count, then per AVA: str attr, str value
//! u32 attribute count, then per attribute: str name, u32 value count, then per value: bytes
//! str   = u16 length + UTF-8 bytes
//! bytes = u32 length + raw octets
//! ```
//! The DN is stored as its parsed RDNs (not as a string) so decoding is lossless and does not
//! re-run the RFC 4514 parser.

use crate::model::dn::{Ava, Dn, Rdn};
use crate::model::entry::Entry;

use super::StoreError;

/// The record version `encode` writes.
pub const RECORD_VERSION: u8 = 1;

/// Encodes an entry. Fails only if a component exceeds the format's length fields.
pub fn encode(entry: &Entry) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(256);
    out.push(RECORD_VERSION);
    let rdns = entry.dn.rdns();
    put_u16(&mut out, rdns.len(), "RDN count")?;
    for rdn in rdns {
        put_u16(&mut out, rdn.avas.len(), "AVA count")?;
        for ava in &rdn.avas {
            put_str(&mut out, &ava.attr)?;
            put_str(&mut out, &ava.value)?;
        }
    }
    put_u32(&mut out, entry.len(), "attribute count")?;
    for attr in entry.attrs() {
        put_str(&mut out, &attr.name)?;
        put_u32(&mut out, attr.values.len(), "value count")?;
        for v in &attr.values {
            put_u32(&mut out, v.len(), "value length")?;
            out.extend_from_slice(v);
        }
    }
    Ok(out)
}

/// Decodes a stored record. Errors: `Corrupt` on truncation, bad lengths, bad UTF-8,
/// trailing bytes or an unknown record version.
pub fn decode(bytes: &[u8]) -> Result<Entry, StoreError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let dn = read_dn(&mut r)?;
    let mut entry = Entry::new(dn);
    let n_attrs = r.u32()? as usize;
    for _ in 0..n_attrs {
        let name = r.str()?;
        let n_values = r.u32()? as usize;
        let mut values = Vec::with_capacity(n_values.min(r.remaining() / 4));
        for _ in 0..n_values {
            let len = r.u32()? as usize;
            values.push(r.take(len)?.to_vec());
        }
        // An empty value list would vanish on `set`; keep the old rule: it is not stored.
        if values.is_empty() {
            if entry.has(&name) {
                return Err(corrupt("duplicate attribute"));
            }
            continue;
        }
        if !entry.insert_new(name, values) {
            return Err(corrupt("duplicate attribute"));
        }
    }
    if r.remaining() != 0 {
        return Err(corrupt("trailing bytes after entry"));
    }
    Ok(entry)
}

/// Decodes only the DN of a stored record (the record's first field), without the
/// attributes: for callers that need an entry's name, such as the computed memberOf.
pub fn decode_dn(bytes: &[u8]) -> Result<Dn, StoreError> {
    read_dn(&mut Reader { buf: bytes, pos: 0 })
}

/// Decodes only the attributes of a stored record named in `names` (case-insensitive,
/// exact names as stored), into `entry`; the DN bytes are skipped, not parsed, and every
/// other attribute is skipped without allocating. For reads that need one or two attributes
/// of many entries (the POSIX names of a group's members). Errors as `decode`.
pub fn decode_selected(bytes: &[u8], names: &[&str], entry: &mut Entry) -> Result<(), StoreError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let version = r.u8()?;
    if version != RECORD_VERSION {
        return Err(StoreError::Corrupt(format!(
            "unknown entry record version {version}"
        )));
    }
    let n_rdns = r.u16()?;
    for _ in 0..n_rdns {
        let n_avas = r.u16()?;
        if n_avas == 0 {
            return Err(corrupt("empty RDN"));
        }
        for _ in 0..n_avas {
            r.skip_str()?;
            r.skip_str()?;
        }
    }
    read_attrs(
        &mut r,
        &mut |name| names.iter().any(|n| n.eq_ignore_ascii_case(name)),
        entry,
    )
}

/// Decodes the DN and only the attributes for which `keep` (given the name as stored) is
/// true; the others are skipped without allocating. For searches, which return a few
/// requested attributes of each match and evaluate the filter on a few more: building the
/// whole entry first cost more than the rest of the search (issue 14). Errors as `decode`.
pub fn decode_projected(
    bytes: &[u8],
    keep: &mut dyn FnMut(&str) -> bool,
) -> Result<Entry, StoreError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let mut entry = Entry::new(read_dn(&mut r)?);
    read_attrs(&mut r, keep, &mut entry)?;
    Ok(entry)
}

/// The attribute list of a record (after its DN), the attributes `keep` accepts into
/// `entry`; the reader must end exactly at the end of the record.
fn read_attrs(
    r: &mut Reader<'_>,
    keep: &mut dyn FnMut(&str) -> bool,
    entry: &mut Entry,
) -> Result<(), StoreError> {
    let n_attrs = r.u32()? as usize;
    for _ in 0..n_attrs {
        let name = r.str_slice()?;
        let n_values = r.u32()? as usize;
        if keep(name) {
            let mut values = Vec::with_capacity(n_values.min(r.remaining() / 4));
            for _ in 0..n_values {
                let len = r.u32()? as usize;
                values.push(r.take(len)?.to_vec());
            }
            if values.is_empty() {
                if entry.has(name) {
                    return Err(corrupt("duplicate attribute"));
                }
                continue;
            }
            if !entry.insert_new(name.to_string(), values) {
                return Err(corrupt("duplicate attribute"));
            }
        } else {
            for _ in 0..n_values {
                let len = r.u32()? as usize;
                r.take(len)?;
            }
        }
    }
    if r.remaining() != 0 {
        return Err(corrupt("trailing bytes after entry"));
    }
    Ok(())
}

/// The version byte and the RDNs.
fn read_dn(r: &mut Reader<'_>) -> Result<Dn, StoreError> {
    let version = r.u8()?;
    if version != RECORD_VERSION {
        return Err(StoreError::Corrupt(format!(
            "unknown entry record version {version}"
        )));
    }
    let n_rdns = r.u16()? as usize;
    // Each RDN needs at least 2 bytes, so cap pre-allocation by what the input can hold.
    let mut rdns = Vec::with_capacity(n_rdns.min(r.remaining() / 2));
    for _ in 0..n_rdns {
        let n_avas = r.u16()? as usize;
        if n_avas == 0 {
            return Err(corrupt("empty RDN"));
        }
        let mut avas = Vec::with_capacity(n_avas.min(r.remaining() / 4));
        for _ in 0..n_avas {
            let attr = r.str()?;
            let value = r.str()?;
            avas.push(Ava { attr, value });
        }
        rdns.push(Rdn { avas });
    }
    Ok(Dn::from_rdns(rdns))
}

/// A bounds-checked cursor over a byte slice.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| corrupt("length overflow"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| corrupt("truncated entry record"))?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, StoreError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn str_slice(&mut self) -> Result<&'a str, StoreError> {
        let len = self.u16()? as usize;
        let b = self.take(len)?;
        std::str::from_utf8(b).map_err(|_| corrupt("string is not UTF-8"))
    }

    fn skip_str(&mut self) -> Result<(), StoreError> {
        let len = self.u16()? as usize;
        self.take(len).map(|_| ())
    }

    fn str(&mut self) -> Result<String, StoreError> {
        let len = self.u16()? as usize;
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| corrupt("string is not UTF-8"))
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn put_u16(out: &mut Vec<u8>, n: usize, what: &str) -> Result<(), StoreError> {
    let n = u16::try_from(n).map_err(|_| StoreError::TooLarge(what.to_string()))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn put_u32(out: &mut Vec<u8>, n: usize, what: &str) -> Result<(), StoreError> {
    let n = u32::try_from(n).map_err(|_| StoreError::TooLarge(what.to_string()))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), StoreError> {
    put_u16(out, s.len(), "name length")?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        let mut e = Entry::new(Dn::parse("cn=Bob+uid=bob,ou=People,dc=example,dc=com").unwrap());
        e.push("objectClass", b"top".to_vec());
        e.push("objectClass", b"person".to_vec());
        e.set_str("cn", "Bob");
        e.set("objectGUID", vec![vec![0, 0xff, 0xfe, 1, 2]]);
        e
    }

    #[test]
    fn round_trips() {
        let e = sample();
        let bytes = encode(&e).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.dn.to_string(), e.dn.to_string());
        assert_eq!(back.attr("objectclass").unwrap().name, "objectClass");
        assert_eq!(decode_dn(&bytes).unwrap(), e.dn);
        let mut part = Entry::new(e.dn.clone());
        decode_selected(&bytes, &["objectclass", "CN"], &mut part).unwrap();
        assert_eq!(part.values("objectClass"), e.values("objectClass"));
        assert_eq!(part.values("cn"), e.values("cn"));
        assert!(!part.has("objectGUID"));
        for n in 0..bytes.len() {
            let mut p = Entry::new(e.dn.clone());
            assert!(decode_selected(&bytes[..n], &["cn"], &mut p).is_err());
        }
        let mut seen = Vec::new();
        let proj = decode_projected(&bytes, &mut |n| {
            seen.push(n.to_string());
            n == "cn"
        })
        .unwrap();
        assert_eq!(proj.dn, e.dn);
        assert_eq!(proj.dn.to_string(), e.dn.to_string());
        assert_eq!(proj.values("cn"), e.values("cn"));
        assert_eq!(proj.len(), 1);
        seen.sort();
        assert_eq!(seen, ["cn", "objectClass", "objectGUID"]);
        assert_eq!(decode_projected(&bytes, &mut |_| true).unwrap(), e);
        for n in 0..bytes.len() {
            assert!(decode_projected(&bytes[..n], &mut |_| false).is_err());
        }
    }

    #[test]
    fn every_truncation_is_corrupt() {
        let bytes = encode(&sample()).unwrap();
        for n in 0..bytes.len() {
            assert!(
                matches!(decode(&bytes[..n]), Err(StoreError::Corrupt(_))),
                "prefix of {n} bytes decoded"
            );
        }
    }

    #[test]
    fn garbled_input_never_panics() {
        let bytes = encode(&sample()).unwrap();
        // Flip each byte to several values; decoding must return (Ok or Corrupt), not panic.
        for i in 0..bytes.len() {
            for x in [0x00u8, 0xff, 0x80, 0x7f, 0x01] {
                let mut b = bytes.clone();
                b[i] = x;
                let _ = decode(&b);
            }
        }
        assert!(matches!(decode(&[9]), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode(&[]), Err(StoreError::Corrupt(_))));
        // Huge counts with no data behind them.
        assert!(matches!(
            decode(&[1, 0xff, 0xff, 0xff, 0xff]),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            decode(&[1, 0, 0, 0xff, 0xff, 0xff, 0xff]),
            Err(StoreError::Corrupt(_))
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(decode(&trailing), Err(StoreError::Corrupt(_))));
    }
}
