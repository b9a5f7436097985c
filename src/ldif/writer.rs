//! LDIF writer: [`LdifRecord`]s and entries out as RFC 2849 text.
//! May import: std, `base64`, `model`. Must not import: store, backend, ldap.
//! Invariants: output is pure ASCII; a value is written plain only when it is a
//! SAFE-STRING of printable ASCII, otherwise as base64 (`attr::`); lines are folded at
//! 76 columns; every record the writer accepts reads back equal through `LdifReader`.

use std::io::{self, Write};

use base64::Engine;

use crate::ldif::{valid_attr_desc, LdifRecord, BASE64};
use crate::model::entry::{Entry, ModOp};

/// Physical line width, counting the leading space of continuation lines (RFC 2849 note 2
/// allows folding anywhere; 76 is the customary width).
const WIDTH: usize = 76;

/// Writes LDIF records to any [`Write`]. Each record is assembled in memory and written
/// with one `write_all`, so an unbuffered writer is fine.
pub struct LdifWriter<W: Write> {
    inner: W,
    /// Something was written, so the next record needs a blank line before it.
    need_separator: bool,
}

impl<W: Write> LdifWriter<W> {
    /// A writer over `w`.
    pub fn new(w: W) -> Self {
        LdifWriter {
            inner: w,
            need_separator: false,
        }
    }

    /// Writes `version: 1` (call first, if at all).
    pub fn write_version(&mut self) -> io::Result<()> {
        let mut buf = Vec::new();
        self.separate(&mut buf);
        buf.extend_from_slice(b"version: 1\n");
        self.emit(&buf)
    }

    /// Writes `e` as a content record (no `changetype`). `objectClass` comes first.
    pub fn write_entry(&mut self, e: &Entry) -> io::Result<()> {
        let mut buf = Vec::new();
        self.separate(&mut buf);
        field(&mut buf, "dn", e.dn.to_string().as_bytes())?;
        attributes(&mut buf, e)?;
        self.emit(&buf)
    }

    /// Writes any record; change records carry `changetype:`.
    ///
    /// Fails with `InvalidInput` (and writes nothing) if an attribute name is not a valid
    /// RFC 4512 attribute description, because such a record could not be read back.
    pub fn write_record(&mut self, r: &LdifRecord) -> io::Result<()> {
        let e = match r {
            LdifRecord::Content(e) => return self.write_entry(e),
            LdifRecord::Add(e) => e,
            _ => {
                let mut buf = Vec::new();
                self.separate(&mut buf);
                change(&mut buf, r)?;
                return self.emit(&buf);
            }
        };
        let mut buf = Vec::new();
        self.separate(&mut buf);
        field(&mut buf, "dn", e.dn.to_string().as_bytes())?;
        buf.extend_from_slice(b"changetype: add\n");
        attributes(&mut buf, e)?;
        self.emit(&buf)
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// RFC 2849: records are separated by one blank line (`1*SEP` after the previous one).
    fn separate(&self, buf: &mut Vec<u8>) {
        if self.need_separator {
            buf.push(b'\n');
        }
    }

    /// Writes one assembled record; only then does the next one need a separator.
    fn emit(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.need_separator = true;
        Ok(())
    }
}

/// The body of a delete, modify or modrdn record, including its `dn:` line.
fn change(buf: &mut Vec<u8>, r: &LdifRecord) -> io::Result<()> {
    field(buf, "dn", r.dn().to_string().as_bytes())?;
    match r {
        LdifRecord::Content(_) | LdifRecord::Add(_) => {}
        LdifRecord::Delete(_) => buf.extend_from_slice(b"changetype: delete\n"),
        LdifRecord::Modify { mods, .. } => {
            buf.extend_from_slice(b"changetype: modify\n");
            for m in mods {
                let op = match m.op {
                    ModOp::Add => "add",
                    ModOp::Delete => "delete",
                    ModOp::Replace => "replace",
                    ModOp::Increment => "increment",
                };
                check_name(&m.attr)?;
                field(buf, op, m.attr.as_bytes())?;
                for v in &m.values {
                    field(buf, &m.attr, v)?;
                }
                buf.extend_from_slice(b"-\n");
            }
        }
        LdifRecord::ModDn {
            new_rdn,
            delete_old_rdn,
            new_superior,
            ..
        } => {
            buf.extend_from_slice(b"changetype: modrdn\n");
            field(buf, "newrdn", new_rdn.as_bytes())?;
            buf.extend_from_slice(if *delete_old_rdn {
                b"deleteoldrdn: 1\n"
            } else {
                b"deleteoldrdn: 0\n"
            });
            if let Some(sup) = new_superior {
                field(buf, "newsuperior", sup.to_string().as_bytes())?;
            }
        }
    }
    Ok(())
}

/// Every attribute of `e`, `objectClass` first (customary, and what humans look for). An
/// attribute named `control` never comes first: right after `dn:` the reader takes it for an
/// RFC 2849 control line (found by the `ldif_parse` fuzz target).
fn attributes(buf: &mut Vec<u8>, e: &Entry) -> io::Result<()> {
    let (classes, rest): (Vec<_>, Vec<_>) = e
        .attrs()
        .partition(|a| a.name.eq_ignore_ascii_case("objectClass"));
    let (controls, rest): (Vec<_>, Vec<_>) = rest
        .into_iter()
        .partition(|a| a.name.eq_ignore_ascii_case("control"));
    if classes.is_empty() && rest.is_empty() && !controls.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an entry whose only attribute is 'control' cannot be written as LDIF",
        ));
    }
    for a in classes.into_iter().chain(rest).chain(controls) {
        check_name(&a.name)?;
        for v in &a.values {
            field(buf, &a.name, v)?;
        }
    }
    Ok(())
}

/// One `name: value` or `name:: base64` line, folded.
fn field(buf: &mut Vec<u8>, name: &str, value: &[u8]) -> io::Result<()> {
    let mut line = Vec::with_capacity(name.len() + 3 + value.len() * 4 / 3 + 4);
    line.extend_from_slice(name.as_bytes());
    if value.is_empty() {
        line.push(b':');
    } else if is_safe_string(value) {
        line.extend_from_slice(b": ");
        line.extend_from_slice(value);
    } else {
        line.extend_from_slice(b":: ");
        line.extend_from_slice(BASE64.encode(value).as_bytes());
    }
    fold(buf, &line);
    Ok(())
}

/// Appends `line` split into physical lines of at most [`WIDTH`] bytes (RFC 2849 note 2:
/// a continuation line starts with one space). `line` is ASCII, so any split is safe.
fn fold(buf: &mut Vec<u8>, line: &[u8]) {
    let (first, mut rest) = line.split_at(line.len().min(WIDTH));
    buf.extend_from_slice(first);
    buf.push(b'\n');
    while !rest.is_empty() {
        let (part, tail) = rest.split_at(rest.len().min(WIDTH - 1));
        buf.push(b' ');
        buf.extend_from_slice(part);
        buf.push(b'\n');
        rest = tail;
    }
}

/// RFC 2849 SAFE-STRING, narrowed to printable ASCII: no leading space, colon or `<`, and
/// no trailing space (RFC 2849 note 8 says such values should be base64 encoded).
fn is_safe_string(v: &[u8]) -> bool {
    let printable = v.iter().all(|&b| (0x20..=0x7e).contains(&b));
    let init_ok = !matches!(v.first(), Some(b' ' | b':' | b'<'));
    printable && init_ok && v.last() != Some(&b' ')
}

fn check_name(name: &str) -> io::Result<()> {
    if valid_attr_desc(name) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("attribute name '{name}' cannot be written as LDIF"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ldif::to_string;
    use crate::model::dn::Dn;

    #[test]
    fn safe_strings_plain_everything_else_base64() {
        assert!(is_safe_string(b"hello world"));
        assert!(is_safe_string(b"a:b<c"));
        for unsafe_value in [
            &b" lead"[..],
            b":colon",
            b"<lt",
            b"trail ",
            b"tab\t",
            b"caf\xc3\xa9",
            b"\0",
            b"a\nb",
        ] {
            assert!(!is_safe_string(unsafe_value), "{unsafe_value:?}");
        }
        let mut e = Entry::new(Dn::parse("cn=a,dc=x").unwrap());
        e.set_str("cn", "a");
        e.set_str("sn", " x");
        e.set("description", vec![Vec::new()]);
        let out = to_string(&[LdifRecord::Content(e)]);
        assert_eq!(out, "dn: cn=a,dc=x\ncn: a\ndescription:\nsn:: IHg=\n");
    }

    #[test]
    fn folds_at_76_columns() {
        let mut e = Entry::new(Dn::parse("cn=a").unwrap());
        e.set_str("description", &"0123456789".repeat(30));
        e.set("jpegPhoto", vec![vec![0xAB; 500]]);
        let out = to_string(&[LdifRecord::Content(e.clone())]);
        for l in out.lines() {
            assert!(l.len() <= WIDTH, "{l}");
        }
        assert!(out.lines().filter(|l| l.starts_with(' ')).count() > 10);
        match &crate::ldif::parse_str(&out).unwrap()[0] {
            LdifRecord::Content(back) => assert_eq!(back, &e),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn version_objectclass_first_and_separators() {
        let mut w = LdifWriter::new(Vec::new());
        w.write_version().unwrap();
        let mut e = Entry::new(Dn::parse("cn=a").unwrap());
        e.set_str("cn", "a");
        e.set_str("objectClass", "person");
        w.write_entry(&e).unwrap();
        w.write_record(&LdifRecord::Delete(Dn::parse("cn=b").unwrap()))
            .unwrap();
        let out = String::from_utf8(w.into_inner()).unwrap();
        assert_eq!(
            out,
            "version: 1\n\ndn: cn=a\nobjectClass: person\ncn: a\n\ndn: cn=b\nchangetype: delete\n"
        );
    }

    #[test]
    fn an_attribute_named_control_is_not_written_first() {
        // Regression (fuzz/corpus/ldif_parse/crash-5507f236…): a content record whose first
        // attribute was `control` was written right after `dn:`, where it reads as a control.
        let mut e = Entry::new(Dn::parse("ou=People,dc=example,dc=com").unwrap());
        e.set_str("control", "1.2.840.113556.1.4.1413 true");
        e.set_str("description", "x");
        let text = to_string(&[LdifRecord::Content(e.clone())]);
        assert_eq!(
            crate::ldif::parse_str(&text).unwrap(),
            [LdifRecord::Content(e.clone())],
            "{text}"
        );
        let add = to_string(&[LdifRecord::Add(e.clone())]);
        assert_eq!(
            crate::ldif::parse_str(&add).unwrap(),
            [LdifRecord::Add(e)],
            "{add}"
        );
        let mut only = Entry::new(Dn::parse("cn=a").unwrap());
        only.set_str("control", "1.2.3");
        let mut w = LdifWriter::new(Vec::new());
        assert_eq!(
            w.write_entry(&only).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn refuses_names_that_would_not_read_back() {
        let mut e = Entry::new(Dn::parse("cn=a").unwrap());
        e.set_str("bad name", "x");
        let mut w = LdifWriter::new(Vec::new());
        let err = w.write_entry(&e).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(w.into_inner().is_empty());
    }
}
