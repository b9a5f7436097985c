//! Streaming LDIF reader: bytes in, one [`LdifRecord`] at a time out (RFC 2849).
//! May import: std, `base64`, `model`. Must not import: store, backend, ldap.
//! Invariants: memory is bounded by one logical line (`max_line`) plus one record
//! (`max_record`); hostile input yields [`LdifError`]s, never a panic. After an error in a
//! record the reader skips to the next blank line and carries on, so a caller may report
//! every bad record; an I/O error ends the stream.

use std::io::{self, BufRead};

use base64::Engine;

use crate::ldif::{
    valid_attr_desc, LdifError, LdifRecord, BASE64, MAX_LINE_BYTES, MAX_RECORD_BYTES,
};
use crate::model::dn::{Dn, Rdn};
use crate::model::entry::{Entry, ModOp, Modification};

/// Reads LDIF records from any [`BufRead`], one at a time.
///
/// Iterating yields `Ok(record)` for each record and `Err(LdifError)` for each bad record
/// (then continues with the next one). Use `.collect::<Result<Vec<_>, _>>()` to stop at the
/// first error.
pub struct LdifReader<R: BufRead> {
    inner: R,
    /// Physical lines consumed so far.
    line: usize,
    bytes_read: u64,
    /// One physical line of lookahead, needed to see whether the next line is a fold.
    peeked: Option<Physical>,
    eof: bool,
    /// No more items: end of input or an I/O error.
    fused: bool,
    /// A `version:` line is only allowed as the first logical line of the input.
    started: bool,
    /// Inside a record (a non-blank line was read and no blank line since).
    in_record: bool,
    record_bytes: usize,
    max_line: usize,
    max_record: usize,
}

impl<R: BufRead> LdifReader<R> {
    /// A reader with the default limits ([`MAX_LINE_BYTES`], [`MAX_RECORD_BYTES`]).
    pub fn new(r: R) -> Self {
        LdifReader {
            inner: r,
            line: 0,
            bytes_read: 0,
            peeked: None,
            eof: false,
            fused: false,
            started: false,
            in_record: false,
            record_bytes: 0,
            max_line: MAX_LINE_BYTES,
            max_record: MAX_RECORD_BYTES,
        }
    }

    /// Sets the longest logical line and the largest record accepted, in bytes.
    pub fn with_limits(mut self, max_line: usize, max_record: usize) -> Self {
        self.max_line = max_line;
        self.max_record = max_record;
        self
    }

    /// The number of the last physical line read (1-based). The reader looks one line
    /// ahead to detect folding, so this may be one past the last record returned.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Bytes consumed from the underlying reader so far (for a progress bar).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Parses one record, or `None` at end of input.
    fn record(&mut self) -> Result<Option<LdifRecord>, LdifError> {
        let Some((mut number, mut raw)) = self.first_line()? else {
            return Ok(None);
        };
        if !self.started {
            self.started = true;
            // RFC 2849: `ldif-content = version-spec 1*(1*SEP ldif-attrval-record)`; many
            // writers omit the blank line after the version, so accept both.
            let (attr, value) = parse_line(number, &raw)?;
            if attr.eq_ignore_ascii_case("version") {
                if value.trim_ascii() != b"1" {
                    return Err(LdifError::new(
                        number,
                        format!(
                            "unsupported LDIF version '{}' (only 1 is defined)",
                            shorten(&value)
                        ),
                    ));
                }
                match self.next_line()? {
                    Some(next) => (number, raw) = next,
                    None => match self.first_line()? {
                        Some(next) => (number, raw) = next,
                        None => return Ok(None),
                    },
                }
            }
        }

        let (attr, value) = parse_line(number, &raw)?;
        if !attr.eq_ignore_ascii_case("dn") {
            return Err(LdifError::new(
                number,
                format!("missing dn: a record must start with 'dn:', found '{attr}:'"),
            ));
        }
        let dn = dn_value(number, value, "DN")?;
        let dn_line = number;

        // RFC 2849: `ldif-change-record = dn-spec SEP *control changerecord`. Controls are
        // checked for an OID and ignored: an import applies changes locally, not over LDAP.
        let mut next = self.attr_line()?;
        let mut controls = false;
        while let Some((n, a, v)) = &next {
            if !a.eq_ignore_ascii_case("control") {
                break;
            }
            let oid = v
                .split(|&b| b == b' ')
                .find(|s| !s.is_empty())
                .unwrap_or(&[]);
            let oid_ok = !oid.is_empty()
                && oid
                    .split(|&b| b == b'.')
                    .all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
            if !oid_ok {
                return Err(LdifError::new(*n, "control: needs a numeric OID"));
            }
            controls = true;
            next = self.attr_line()?;
        }

        let Some((n, attr, value)) = next else {
            return Err(LdifError::new(
                dn_line,
                if controls {
                    "change record has control lines but no changetype"
                } else {
                    "entry has no attributes"
                },
            ));
        };
        if !attr.eq_ignore_ascii_case("changetype") {
            if controls {
                return Err(LdifError::new(
                    n,
                    "control lines are only allowed in change records (missing changetype)",
                ));
            }
            let entry = self.attributes(Entry::new(dn), Some((n, attr, value)), dn_line)?;
            return Ok(Some(LdifRecord::Content(entry)));
        }

        let kind = String::from_utf8_lossy(&value).trim().to_ascii_lowercase();
        let record = match kind.as_str() {
            "add" => LdifRecord::Add(self.attributes(Entry::new(dn), None, n)?),
            "delete" => {
                if let Some((m, _)) = self.next_line()? {
                    return Err(LdifError::new(
                        m,
                        "unexpected line after 'changetype: delete'",
                    ));
                }
                LdifRecord::Delete(dn)
            }
            "modify" => self.modify(dn)?,
            "modrdn" | "moddn" => self.moddn(dn, n)?,
            _ => {
                return Err(LdifError::new(
                    n,
                    format!(
                        "unknown changetype '{}' (expected add, delete, modify, modrdn or moddn)",
                        shorten(kind.as_bytes())
                    ),
                ))
            }
        };
        Ok(Some(record))
    }

    /// Reads `attr: value` lines to the end of the record into `entry`.
    fn attributes(
        &mut self,
        mut entry: Entry,
        first: Option<(usize, String, Vec<u8>)>,
        context_line: usize,
    ) -> Result<Entry, LdifError> {
        let mut next = first;
        if next.is_none() {
            next = self.attr_line()?;
        }
        while let Some((n, attr, value)) = next {
            if attr.eq_ignore_ascii_case("dn") {
                return Err(LdifError::new(
                    n,
                    "'dn:' inside a record (records must be separated by a blank line)",
                ));
            }
            if attr.eq_ignore_ascii_case("changetype") {
                return Err(LdifError::new(
                    n,
                    "'changetype:' must come right after 'dn:' (and any control lines)",
                ));
            }
            entry.push(&attr, value);
            next = self.attr_line()?;
        }
        if entry.is_empty() {
            return Err(LdifError::new(context_line, "entry has no attributes"));
        }
        Ok(entry)
    }

    /// The body of `changetype: modify` (RFC 2849 `change-modify`, RFC 4525 increment).
    fn modify(&mut self, dn: Dn) -> Result<LdifRecord, LdifError> {
        let mut mods = Vec::new();
        while let Some((n, raw)) = self.next_line()? {
            let (word, value) = parse_line(n, &raw)?;
            let op = match word.to_ascii_lowercase().as_str() {
                "add" => ModOp::Add,
                "delete" => ModOp::Delete,
                "replace" => ModOp::Replace,
                "increment" => ModOp::Increment,
                _ => {
                    return Err(LdifError::new(
                        n,
                        format!("expected 'add:', 'delete:', 'replace:' or 'increment:' in a modify record, found '{word}:'"),
                    ))
                }
            };
            let attr = String::from_utf8(value)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| valid_attr_desc(s))
                .ok_or_else(|| {
                    LdifError::new(n, format!("'{word}:' needs a valid attribute name"))
                })?;
            let mut values = Vec::new();
            let mut closed = false;
            while let Some((m, raw)) = self.next_line()? {
                if raw.trim_ascii() == b"-" {
                    closed = true;
                    break;
                }
                let (a, v) = parse_line(m, &raw)?;
                if !a.eq_ignore_ascii_case(&attr) {
                    return Err(LdifError::new(
                        m,
                        format!("'{a}:' inside the '{word}: {attr}' block (a block names one attribute and ends with '-')"),
                    ));
                }
                values.push(v);
            }
            if op == ModOp::Increment {
                let ok = values.len() == 1 && is_integer(&values[0]);
                if !ok {
                    return Err(LdifError::new(
                        n,
                        "'increment:' needs exactly one integer value (RFC 4525)",
                    ));
                }
            }
            mods.push(Modification { op, attr, values });
            if !closed {
                // The record ended without the final "-": accepted, as ldapmodify does.
                break;
            }
        }
        Ok(LdifRecord::Modify { dn, mods })
    }

    /// The body of `changetype: modrdn` / `moddn` (RFC 2849 `change-moddn`).
    fn moddn(&mut self, dn: Dn, changetype_line: usize) -> Result<LdifRecord, LdifError> {
        let (n, attr, value) = self
            .attr_line()?
            .ok_or_else(|| LdifError::new(changetype_line, "modrdn record is missing 'newrdn:'"))?;
        if !attr.eq_ignore_ascii_case("newrdn") {
            return Err(LdifError::new(
                n,
                format!("expected 'newrdn:', found '{attr}:'"),
            ));
        }
        let new_rdn =
            String::from_utf8(value).map_err(|_| LdifError::new(n, "newrdn is not valid UTF-8"))?;
        Rdn::parse(&new_rdn).map_err(|e| LdifError::new(n, format!("newrdn: {e}")))?;

        let (m, attr, value) = self
            .attr_line()?
            .ok_or_else(|| LdifError::new(n, "modrdn record is missing 'deleteoldrdn:'"))?;
        if !attr.eq_ignore_ascii_case("deleteoldrdn") {
            return Err(LdifError::new(
                m,
                format!("expected 'deleteoldrdn:', found '{attr}:'"),
            ));
        }
        let delete_old_rdn = match value.trim_ascii() {
            b"0" => false,
            b"1" => true,
            _ => return Err(LdifError::new(m, "deleteoldrdn must be 0 or 1")),
        };

        let mut new_superior = None;
        if let Some((k, attr, value)) = self.attr_line()? {
            if !attr.eq_ignore_ascii_case("newsuperior") {
                return Err(LdifError::new(
                    k,
                    format!("unexpected '{attr}:' in a modrdn record (only newsuperior may follow deleteoldrdn)"),
                ));
            }
            new_superior = Some(dn_value(k, value, "newsuperior")?);
            if let Some((j, _)) = self.next_line()? {
                return Err(LdifError::new(j, "unexpected line after 'newsuperior:'"));
            }
        }
        Ok(LdifRecord::ModDn {
            dn,
            new_rdn,
            delete_old_rdn,
            new_superior,
        })
    }

    /// The first logical line of the next record, skipping blank lines; `None` at the end.
    fn first_line(&mut self) -> Result<Option<(usize, Vec<u8>)>, LdifError> {
        loop {
            match self.logical() {
                Ok(Logical::Blank) => continue,
                Ok(Logical::Eof) => return Ok(None),
                Ok(Logical::Line(n, text)) => {
                    self.in_record = true;
                    self.record_bytes = text.len();
                    return Ok(Some((n, text)));
                }
                Err(e) => {
                    // A bad line (too long, stray fold) starts a record too: skip the rest.
                    self.in_record = !self.fused;
                    return Err(e);
                }
            }
        }
    }

    /// The next logical line of the current record; `None` at its end (blank line or EOF).
    fn next_line(&mut self) -> Result<Option<(usize, Vec<u8>)>, LdifError> {
        match self.logical()? {
            Logical::Blank | Logical::Eof => {
                self.in_record = false;
                Ok(None)
            }
            Logical::Line(n, text) => {
                self.record_bytes = self.record_bytes.saturating_add(text.len());
                if self.record_bytes > self.max_record {
                    return Err(LdifError::new(
                        n,
                        format!("record is larger than {} bytes", self.max_record),
                    ));
                }
                Ok(Some((n, text)))
            }
        }
    }

    /// [`Self::next_line`], split into attribute description and value.
    fn attr_line(&mut self) -> Result<Option<(usize, String, Vec<u8>)>, LdifError> {
        match self.next_line()? {
            Some((n, raw)) => {
                let (attr, value) = parse_line(n, &raw)?;
                Ok(Some((n, attr, value)))
            }
            None => Ok(None),
        }
    }

    /// Discards the rest of a record after an error in it.
    fn skip_record(&mut self) {
        while self.in_record && !self.fused {
            match self.logical() {
                Ok(Logical::Blank | Logical::Eof) => self.in_record = false,
                Ok(Logical::Line(..)) | Err(_) => {}
            }
        }
    }

    /// One logical line: a physical line plus its folded continuations, with comments
    /// (and their continuations) dropped (RFC 2849 notes 2 and 3).
    fn logical(&mut self) -> Result<Logical, LdifError> {
        loop {
            let Some(first) = self.next_physical()? else {
                return Ok(Logical::Eof);
            };
            let number = first.number;
            let mut too_long = first.too_long;
            match first.text.first() {
                None if !too_long => return Ok(Logical::Blank),
                Some(b' ') => {
                    // A fold with nothing to continue. A line of spaces only is taken as a
                    // blank line (a common editing slip); anything else is an error.
                    if !too_long && first.text.iter().all(|&b| b == b' ') {
                        return Ok(Logical::Blank);
                    }
                    return Err(LdifError::new(
                        number,
                        "line starts with a space but there is no line to continue",
                    ));
                }
                _ => {}
            }
            let is_comment = first.text.first() == Some(&b'#');
            let mut text = if is_comment { Vec::new() } else { first.text };
            while let Some(next) = self.read_physical()? {
                if next.text.first() != Some(&b' ') {
                    self.peeked = Some(next);
                    break;
                }
                if is_comment || too_long {
                    continue;
                }
                let part = &next.text[1..];
                if next.too_long || text.len() + part.len() > self.max_line {
                    too_long = true;
                    text = Vec::new();
                } else {
                    text.extend_from_slice(part);
                }
            }
            if is_comment {
                continue;
            }
            if too_long {
                return Err(LdifError::new(
                    number,
                    format!("line is longer than {} bytes", self.max_line),
                ));
            }
            return Ok(Logical::Line(number, text));
        }
    }

    fn next_physical(&mut self) -> Result<Option<Physical>, LdifError> {
        match self.peeked.take() {
            Some(p) => Ok(Some(p)),
            None => self.read_physical(),
        }
    }

    /// Reads one physical line (LF or CRLF ended), keeping at most `max_line` bytes of it.
    fn read_physical(&mut self) -> Result<Option<Physical>, LdifError> {
        if self.eof {
            return Ok(None);
        }
        let mut text = Vec::new();
        let mut too_long = false;
        let mut any = false;
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.fused = true;
                    return Err(LdifError::new(self.line + 1, format!("read error: {e}")));
                }
            };
            if buf.is_empty() {
                self.eof = true;
                break;
            }
            any = true;
            let (chunk, used, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            if !too_long {
                // +1: room for the CR of a CRLF ending, stripped below.
                let room = (self.max_line + 1).saturating_sub(text.len());
                if chunk.len() > room {
                    too_long = true;
                    text.extend_from_slice(&chunk[..room]);
                } else {
                    text.extend_from_slice(chunk);
                }
            }
            self.inner.consume(used);
            self.bytes_read += used as u64;
            if done {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        if text.last() == Some(&b'\r') {
            text.pop();
        }
        if text.len() > self.max_line {
            too_long = true;
        }
        self.line += 1;
        if self.line == 1 && text.starts_with(b"\xEF\xBB\xBF") {
            text.drain(..3);
        }
        Ok(Some(Physical {
            number: self.line,
            text,
            too_long,
        }))
    }
}

impl<R: BufRead> Iterator for LdifReader<R> {
    type Item = Result<LdifRecord, LdifError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.skip_record();
        if self.fused {
            return None;
        }
        match self.record() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.fused = true;
                None
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// One line as read, before unfolding.
struct Physical {
    number: usize,
    text: Vec<u8>,
    /// The line was longer than the limit; `text` holds only its start.
    too_long: bool,
}

/// What [`LdifReader::logical`] found.
enum Logical {
    Line(usize, Vec<u8>),
    Blank,
    Eof,
}

/// Splits `attr: value`, `attr:: base64` (RFC 2849 `attrval-spec`) into the attribute
/// description and the raw value bytes.
fn parse_line(number: usize, raw: &[u8]) -> Result<(String, Vec<u8>), LdifError> {
    let colon = raw.iter().position(|&b| b == b':').ok_or_else(|| {
        LdifError::new(
            number,
            format!("expected 'attribute: value', found '{}'", shorten(raw)),
        )
    })?;
    let name = &raw[..colon];
    let attr = std::str::from_utf8(name)
        .ok()
        .filter(|n| valid_attr_desc(n))
        .ok_or_else(|| {
            LdifError::new(
                number,
                format!(
                    "invalid attribute name '{}' (names are ASCII letters, digits, '-', \
                     a numeric OID, and ';options')",
                    shorten(name)
                ),
            )
        })?
        .to_string();
    let rest = &raw[colon + 1..];
    match rest.first() {
        Some(b':') => {
            let encoded = rest[1..].trim_ascii();
            let value = BASE64.decode(encoded).map_err(|e| {
                LdifError::new(number, format!("bad base64 in the value of '{attr}': {e}"))
            })?;
            Ok((attr, value))
        }
        Some(b'<') => Err(LdifError::new(
            number,
            format!("URL values are not supported ('{attr}:<')"),
        )),
        _ => {
            let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
            let value = &rest[start..];
            if std::str::from_utf8(value).is_err() {
                return Err(LdifError::new(
                    number,
                    format!("value of '{attr}' is not valid UTF-8 (write it as '{attr}::' base64)"),
                ));
            }
            Ok((attr, value.to_vec()))
        }
    }
}

/// Parses a DN value (`dn:`, `newsuperior:`) with [`Dn::parse`].
fn dn_value(number: usize, value: Vec<u8>, what: &str) -> Result<Dn, LdifError> {
    let s = String::from_utf8(value)
        .map_err(|_| LdifError::new(number, format!("{what} is not valid UTF-8")))?;
    Dn::parse(&s)
        .map_err(|e| LdifError::new(number, format!("{what} '{}': {e}", shorten(s.as_bytes()))))
}

/// An optionally signed decimal integer, as RFC 4525 increment values are.
fn is_integer(v: &[u8]) -> bool {
    let digits = v.strip_prefix(b"-").unwrap_or(v);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// A short, printable rendering of possibly hostile bytes for an error message.
fn shorten(bytes: &[u8]) -> String {
    const MAX: usize = 60;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    let mut out: String = text.chars().filter(|c| !c.is_control()).collect();
    if bytes.len() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ldif::parse_str;

    fn err(s: &str) -> LdifError {
        match parse_str(s) {
            Ok(r) => panic!("expected an error, got {r:?}"),
            Err(e) => e,
        }
    }

    fn one(s: &str) -> LdifRecord {
        let mut v = parse_str(s).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    fn content(s: &str) -> Entry {
        match one(s) {
            LdifRecord::Content(e) => e,
            other => panic!("not content: {other:?}"),
        }
    }

    #[test]
    fn plain_base64_and_options() {
        let e = content(
            "version: 1\ndn: cn=a,dc=x\ncn:  a\nuserCertificate;binary:: AAEC/w==\ndescription::\n",
        );
        assert_eq!(e.dn.to_string(), "cn=a,dc=x");
        assert_eq!(e.values("cn"), &[b"a".to_vec()]);
        assert_eq!(e.values("usercertificate;binary"), &[vec![0u8, 1, 2, 255]]);
        assert_eq!(e.values("description"), &[Vec::<u8>::new()]);
    }

    #[test]
    fn version_needs_no_blank_line_and_may_have_one() {
        assert_eq!(
            parse_str("version: 1\n\ndn: cn=a\ncn: a\n").unwrap().len(),
            1
        );
        assert_eq!(parse_str("version: 1\n").unwrap().len(), 0);
        assert_eq!(parse_str("").unwrap().len(), 0);
        assert_eq!(parse_str("\n\n# only a comment\n").unwrap().len(), 0);
    }

    #[test]
    fn folding_lf_and_crlf() {
        let lf = "dn: cn=long\n ,dc=x\ndescription: one\n  two\n three\ncn: long\n";
        let e = content(lf);
        assert_eq!(e.dn.to_string(), "cn=long,dc=x");
        assert_eq!(e.first_str("description"), Some("one twothree"));
        let crlf = lf.replace('\n', "\r\n");
        assert_eq!(content(&crlf), e);
        // Folding inside base64 and inside the attribute name.
        let e = content("dn: cn=a\ndescri\n ption:: aGVs\n bG8=\n");
        assert_eq!(e.first_str("description"), Some("hello"));
    }

    #[test]
    fn comments_and_folded_comments_are_ignored() {
        let s = "# header\n#  folded\n  comment: not an attribute\ndn: cn=a\n# inside\n \
                 more comment\ncn: a\n\n\n# between\n\ndn: cn=b\ncn: b\n# trailing";
        let recs = parse_str(s).unwrap();
        assert_eq!(recs.len(), 2);
        match &recs[0] {
            LdifRecord::Content(e) => assert_eq!(e.len(), 1),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn base64_dn_and_bom() {
        // "cn=Åsa,dc=x"
        let e = content("\u{feff}dn:: Y249w4VzYSxkYz14\ncn: Åsa\n");
        assert_eq!(e.dn.to_string(), "cn=Åsa,dc=x");
    }

    #[test]
    fn change_records() {
        let s = "dn: cn=a,dc=x\ncontrol: 1.2.840.113556.1.4.805 true\nchangetype: delete\n\n\
                 dn: cn=b,dc=x\nchangetype: moddn\nnewrdn: cn=c\ndeleteoldrdn: 0\nnewsuperior: ou=y,dc=x\n\n\
                 dn: cn=d,dc=x\nchangetype: modify\nadd: mail\nmail: a@x\nmail: b@x\n-\ndelete: fax\n-\n\
                 replace: cn\ncn: D\n-\nincrement: uidNumber\nuidNumber: -2\n-\n\n\
                 dn: cn=e,dc=x\nchangetype: modify\nreplace: cn\ncn: e\n";
        let recs = parse_str(s).unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[0], LdifRecord::Delete(Dn::parse("cn=a,dc=x").unwrap()));
        assert_eq!(
            recs[1],
            LdifRecord::ModDn {
                dn: Dn::parse("cn=b,dc=x").unwrap(),
                new_rdn: "cn=c".into(),
                delete_old_rdn: false,
                new_superior: Some(Dn::parse("ou=y,dc=x").unwrap()),
            }
        );
        match &recs[2] {
            LdifRecord::Modify { mods, .. } => {
                let ops: Vec<_> = mods
                    .iter()
                    .map(|m| (m.op, m.attr.as_str(), m.values.len()))
                    .collect();
                assert_eq!(
                    ops,
                    [
                        (ModOp::Add, "mail", 2),
                        (ModOp::Delete, "fax", 0),
                        (ModOp::Replace, "cn", 1),
                        (ModOp::Increment, "uidNumber", 1)
                    ]
                );
            }
            r => panic!("{r:?}"),
        }
        // Missing final "-" accepted.
        match &recs[3] {
            LdifRecord::Modify { mods, .. } => assert_eq!(mods.len(), 1),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn error_lines_and_messages() {
        let cases: &[(&str, usize, &str)] = &[
            ("cn: a\n", 1, "missing dn"),
            ("dn: cn=a\ncn: a\n\ncn: b\n", 4, "missing dn"),
            ("dn: cn=a\ncn:: !!!\n", 2, "bad base64"),
            ("dn: cn=a\njpegPhoto:< file:///etc/passwd\n", 2, "URL values are not supported"),
            ("dn: cn=a\nchangetype: frobnicate\n", 2, "unknown changetype 'frobnicate'"),
            ("\n\ndn: cn=a,,dc=x\ncn: a\n", 3, "invalid DN"),
            ("dn:: !!\ncn: a\n", 1, "bad base64"),
            ("dn:: /w==\ncn: a\n", 1, "not valid UTF-8"),
            ("dn: cn=a\nc n: a\n", 2, "invalid attribute name"),
            ("dn: cn=a\ncn\n", 2, "expected 'attribute: value'"),
            ("dn: cn=a\n", 1, "entry has no attributes"),
            ("dn: cn=a\nchangetype: add\n", 2, "entry has no attributes"),
            ("dn: cn=a\ncn: a\ndn: cn=b\n", 3, "'dn:' inside a record"),
            ("dn: cn=a\ncn: a\nchangetype: add\n", 3, "must come right after"),
            ("dn: cn=a\nchangetype: delete\ncn: a\n", 3, "unexpected line"),
            ("dn: cn=a\nchangetype: modify\nadd: mail\nmail: a\ncn: b\n-\n", 5, "inside the 'add: mail' block"),
            ("dn: cn=a\nchangetype: modify\nadd: mail\nmail: a\nreplace: cn\n", 5, "inside the 'add: mail' block"),
            ("dn: cn=a\nchangetype: modify\nmail: a\n", 3, "expected 'add:'"),
            ("dn: cn=a\nchangetype: modify\nadd: bad name\n", 3, "valid attribute name"),
            ("dn: cn=a\nchangetype: modify\nincrement: n\nn: 1\nn: 2\n-\n", 3, "exactly one integer"),
            ("dn: cn=a\nchangetype: modify\nincrement: n\nn: x\n-\n", 3, "exactly one integer"),
            ("dn: cn=a\nchangetype: modrdn\n", 2, "missing 'newrdn:'"),
            ("dn: cn=a\nchangetype: modrdn\nnewrdn: cn=b\n", 3, "missing 'deleteoldrdn:'"),
            ("dn: cn=a\nchangetype: modrdn\nnewrdn: nonsense\ndeleteoldrdn: 1\n", 3, "newrdn"),
            ("dn: cn=a\nchangetype: modrdn\nnewrdn: cn=b\ndeleteoldrdn: 2\n", 4, "0 or 1"),
            ("dn: cn=a\nchangetype: modrdn\ndeleteoldrdn: 1\n", 3, "expected 'newrdn:'"),
            ("dn: cn=a\nchangetype: modrdn\nnewrdn: cn=b\ndeleteoldrdn: 1\nnewsuperior: x\n", 5, "newsuperior"),
            ("dn: cn=a\nchangetype: modrdn\nnewrdn: cn=b\ndeleteoldrdn: 1\nfoo: x\n", 5, "unexpected 'foo:'"),
            ("dn: cn=a\nchangetype: modrdn\nnewrdn: cn=b\ndeleteoldrdn: 1\nnewsuperior: dc=x\ncn: a\n", 6, "after 'newsuperior:'"),
            ("dn: cn=a\ncontrol: 1.2.3\n", 1, "no changetype"),
            ("dn: cn=a\ncontrol: abc\nchangetype: delete\n", 2, "numeric OID"),
            ("dn: cn=a\ncontrol: 1.2.3\ncn: a\n", 3, "only allowed in change records"),
            ("version: 2\ndn: cn=a\ncn: a\n", 1, "unsupported LDIF version"),
            ("dn: cn=a\ncn: \u{0}ok\ncn: caf\u{e9}\n", 0, ""), // plain UTF-8 is fine
            (" leading fold\n", 1, "no line to continue"),
        ];
        for (input, line, needle) in cases {
            if needle.is_empty() {
                parse_str(input).unwrap();
                continue;
            }
            let e = err(input);
            assert_eq!(e.line, *line, "{input:?}: {e}");
            assert!(e.message.contains(needle), "{input:?}: {e}");
            assert!(e.to_string().starts_with(&format!("line {line}: ")));
        }
    }

    #[test]
    fn plain_values_must_be_utf8_and_names_ascii() {
        let bad = b"dn: cn=a\ncn: \xff\xfe\n";
        let e = LdifReader::new(&bad[..]).next().unwrap().unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("not valid UTF-8"));
        let bad = "dn: cn=a\nnäme: x\n";
        assert!(err(bad).message.contains("invalid attribute name"));
    }

    #[test]
    fn reader_recovers_after_a_bad_record() {
        let s =
            "dn: cn=a\ncn:: !!\nsn: skipped\n\ndn: cn=b\ncn: b\n\nnot ldif\n\ndn: cn=c\ncn: c\n";
        let items: Vec<_> = LdifReader::new(s.as_bytes()).collect();
        assert_eq!(items.len(), 4);
        assert_eq!(items[0].as_ref().unwrap_err().line, 2);
        assert_eq!(items[1].as_ref().unwrap().dn().to_string(), "cn=b");
        assert_eq!(items[2].as_ref().unwrap_err().line, 8);
        assert_eq!(items[3].as_ref().unwrap().dn().to_string(), "cn=c");
        // An error found at the end of a record must not swallow the next one.
        let s = "dn: cn=a\n\ndn: cn=b\ncn: b\n";
        let items: Vec<_> = LdifReader::new(s.as_bytes()).collect();
        assert_eq!(items.len(), 2);
        assert!(items[1].is_ok());
    }

    #[test]
    fn long_lines_are_refused_without_buffering_them() {
        let mut s = String::from("dn: cn=a\ncn: a\ndescription: ");
        s.push_str(&"x".repeat(5000));
        s.push_str("\n\ndn: cn=b\ncn: b\n");
        let items: Vec<_> = LdifReader::new(s.as_bytes())
            .with_limits(1024, 1 << 20)
            .collect();
        assert_eq!(items.len(), 2);
        let e = items[0].as_ref().unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("longer than 1024"));
        assert!(items[1].is_ok());

        // Folded lines count after unfolding.
        let mut s = String::from("dn: cn=a\ndescription: ");
        for _ in 0..40 {
            s.push_str("\n ");
            s.push_str(&"y".repeat(60));
        }
        let e = LdifReader::new(s.as_bytes())
            .with_limits(1024, 1 << 20)
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(e.line, 2);

        // Record size limit.
        let mut s = String::from("dn: cn=a\n");
        for i in 0..100 {
            s.push_str(&format!("description: {i:0100}\n"));
        }
        let e = LdifReader::new(s.as_bytes())
            .with_limits(1024, 4096)
            .next()
            .unwrap()
            .unwrap_err();
        assert!(e.message.contains("record is larger"), "{e}");
    }

    #[test]
    fn default_limit_is_sixteen_mib() {
        let mut s = String::from("dn: cn=a\ncn: ");
        s.push_str(&"z".repeat(MAX_LINE_BYTES + 10));
        let e = err(&s);
        assert_eq!(e.line, 2);
        assert!(e.message.contains("longer than"));
    }

    #[test]
    fn io_errors_end_the_stream() {
        struct Failing(usize);
        impl io::Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                self.0 = 0;
                let data = b"dn: cn=a\ncn: a\n\ndn: cn=b\n";
                buf[..data.len()].copy_from_slice(data);
                Ok(data.len())
            }
        }
        let items: Vec<_> = LdifReader::new(io::BufReader::new(Failing(1))).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(items[1]
            .as_ref()
            .unwrap_err()
            .message
            .contains("disk on fire"));
    }

    #[test]
    fn line_and_bytes_read_track_progress() {
        let s = "dn: cn=a\ncn: a\n\ndn: cn=b\ncn: b\n";
        let mut r = LdifReader::new(s.as_bytes());
        r.next().unwrap().unwrap();
        assert!(r.line() >= 3);
        assert!(r.next().unwrap().is_ok());
        assert!(r.next().is_none());
        assert!(r.next().is_none());
        assert_eq!(r.line(), 5);
        assert_eq!(r.bytes_read(), s.len() as u64);
    }
}
