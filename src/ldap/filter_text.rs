//! RFC 4515 string filters: parse text into `model::filter::Filter` and format it back.
//! Used by tests, the CLI, configuration and the connector.
//! May import: `model::filter`, std.
//! Invariants:
//! - Binary-safe: `\XX` escapes become raw bytes; formatting escapes `* ( ) \`, NUL and other
//!   ASCII controls, and every byte that is not part of valid UTF-8, so `parse(format(f)) == f`
//!   for parser output.
//! - Nesting is limited to `MAX_DEPTH` filters, checked before recursing (no stack overflow).
//! - Errors carry the byte offset in the input and a fixed reason.
//!
//! Leniencies beyond RFC 4515 §3 (as OpenLDAP's tools allow): a filter without the outer
//! parentheses (`cn=x`), whitespace between the components of `&`, `|` and `!`, and empty
//! `(&)`/`(|)` (RFC 4526 absolute true/false).

use crate::model::filter::Filter;

/// The deepest nesting of filters accepted (`(&(!(a=b)))` has depth 3). Below the ~125 levels
/// the BER decoder allows, so every parsed filter can also be sent and decoded.
pub const MAX_DEPTH: usize = 64;

/// A filter string that is not valid RFC 4515.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter at byte {position}: {reason}")]
pub struct FilterParseError {
    /// Byte offset in the input where the problem was found.
    pub position: usize,
    /// What is wrong.
    pub reason: &'static str,
}

/// Parse an RFC 4515 filter string.
pub fn parse(text: &str) -> Result<Filter, FilterParseError> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
    };
    p.skip_ws();
    if p.at_end() {
        return Err(p.err("empty filter"));
    }
    let filter = if p.peek() == Some(b'(') {
        p.filter(1)?
    } else {
        p.component(1)?
    };
    p.skip_ws();
    if !p.at_end() {
        return Err(p.err("unexpected text after the filter"));
    }
    Ok(filter)
}

/// Format a filter as an RFC 4515 string. `DnIn` (the resolved in-chain form) is written as
/// an OR of equality assertions, in sorted order.
pub fn format(filter: &Filter) -> String {
    let mut out = String::new();
    write_filter(filter, &mut out);
    out
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, reason: &'static str) -> FilterParseError {
        FilterParseError {
            position: self.pos,
            reason,
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    /// `filter = LPAREN filtercomp RPAREN` at nesting `depth`.
    fn filter(&mut self, depth: usize) -> Result<Filter, FilterParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("filter nested too deeply"));
        }
        if self.peek() != Some(b'(') {
            return Err(self.err("expected '('"));
        }
        self.pos += 1;
        let f = self.component(depth)?;
        if self.peek() != Some(b')') {
            return Err(self.err("expected ')'"));
        }
        self.pos += 1;
        Ok(f)
    }

    /// `filtercomp = and / or / not / item`.
    fn component(&mut self, depth: usize) -> Result<Filter, FilterParseError> {
        match self.peek() {
            Some(b'&') => {
                self.pos += 1;
                Ok(Filter::And(self.list(depth)?))
            }
            Some(b'|') => {
                self.pos += 1;
                Ok(Filter::Or(self.list(depth)?))
            }
            Some(b'!') => {
                self.pos += 1;
                self.skip_ws();
                let inner = self.filter(depth + 1)?;
                self.skip_ws();
                Ok(Filter::Not(Box::new(inner)))
            }
            Some(_) => self.item(),
            None => Err(self.err("unexpected end of filter")),
        }
    }

    /// `filterlist = 1*filter` (0 allowed, RFC 4526).
    fn list(&mut self, depth: usize) -> Result<Vec<Filter>, FilterParseError> {
        let mut list = Vec::new();
        self.skip_ws();
        while self.peek() == Some(b'(') {
            list.push(self.filter(depth + 1)?);
            self.skip_ws();
        }
        Ok(list)
    }

    /// `item = simple / present / substring / extensible`; ends at the first `)` (which must
    /// be escaped inside values) or at the end of the input.
    fn item(&mut self) -> Result<Filter, FilterParseError> {
        let start = self.pos;
        let len = self.s[start..]
            .iter()
            .position(|&b| b == b')')
            .unwrap_or(self.s.len() - start);
        let item = &self.s[start..start + len];
        let Some(eq) = item.iter().position(|&b| b == b'=') else {
            return Err(self.err("missing '=' in filter item"));
        };
        let value_at = start + eq + 1;
        let value = &item[eq + 1..];
        let (op, attr_end) = match eq.checked_sub(1).map(|i| item[i]) {
            Some(b @ (b'~' | b'>' | b'<' | b':')) => (b, eq - 1),
            _ => (b'=', eq),
        };
        let left = &item[..attr_end];
        let filter = if op == b':' {
            let (attr, rule, dn_attrs) =
                extensible_left(left).map_err(|reason| FilterParseError {
                    position: start,
                    reason,
                })?;
            Filter::Extensible {
                rule,
                attr,
                value: unescape(value, value_at)?,
                dn_attrs,
            }
        } else {
            let attr = attribute(left).ok_or(FilterParseError {
                position: start,
                reason: "invalid attribute description",
            })?;
            match op {
                b'~' => Filter::Approx(attr, unescape(value, value_at)?),
                b'>' => Filter::GreaterOrEqual(attr, unescape(value, value_at)?),
                b'<' => Filter::LessOrEqual(attr, unescape(value, value_at)?),
                _ if value == b"*" => Filter::Present(attr),
                _ if value.contains(&b'*') => substrings(attr, value, value_at)?,
                _ => Filter::Equality(attr, unescape(value, value_at)?),
            }
        };
        self.pos = start + len;
        Ok(filter)
    }
}

/// `attr [":dn"] [":" matchingrule]` or `[":dn"] ":" matchingrule` (RFC 4515 §3), without
/// the final `:` (consumed as part of `:=`). Returns (attr, rule, dnAttributes).
type ExtensibleLeft = (Option<String>, Option<String>, bool);

fn extensible_left(left: &[u8]) -> Result<ExtensibleLeft, &'static str> {
    let mut parts = left.split(|&b| b == b':');
    let attr_part = parts.next().unwrap_or_default();
    let attr = if attr_part.is_empty() {
        None
    } else {
        Some(attribute(attr_part).ok_or("invalid attribute description")?)
    };
    let mut rest: Vec<&[u8]> = parts.collect();
    let dn_attrs = rest.first().is_some_and(|p| p.eq_ignore_ascii_case(b"dn"));
    if dn_attrs {
        rest.remove(0);
    }
    let rule = match rest.as_slice() {
        [] => None,
        [rule] if !rule.is_empty() && rule.iter().all(|&b| is_oid_or_descr_char(b)) => {
            Some(String::from_utf8_lossy(rule).into_owned())
        }
        [_] => return Err("invalid matching rule"),
        _ => return Err("too many ':' in extensible match"),
    };
    if attr.is_none() && rule.is_none() {
        return Err("extensible match needs an attribute or a matching rule");
    }
    Ok((attr, rule, dn_attrs))
}

/// An attribute description: descr or numericoid with `;options` (RFC 4512 §2.5). `_` is
/// accepted too, as some deployed schemas use it.
fn attribute(s: &[u8]) -> Option<String> {
    let ok = s.first().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.iter()
            .all(|&b| is_oid_or_descr_char(b) || b == b';' || b == b'_');
    ok.then(|| String::from_utf8_lossy(s).into_owned())
}

fn is_oid_or_descr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

/// `substring = attr EQUALS [initial] any [final]`; empty `any` parts (`a**b`) are skipped.
fn substrings(attr: String, value: &[u8], at: usize) -> Result<Filter, FilterParseError> {
    let mut parts = Vec::new();
    let mut offset = at;
    for part in value.split(|&b| b == b'*') {
        parts.push(unescape(part, offset)?);
        offset += part.len() + 1;
    }
    // `value` contains a '*', so there are at least two parts.
    let final_ = parts.pop().filter(|p| !p.is_empty());
    let mut parts = parts.into_iter();
    let initial = parts.next().filter(|p| !p.is_empty());
    let any: Vec<Vec<u8>> = parts.filter(|p| !p.is_empty()).collect();
    if initial.is_none() && any.is_empty() && final_.is_none() {
        return Err(FilterParseError {
            position: at,
            reason: "substring filter without any value",
        });
    }
    Ok(Filter::Substrings {
        attr,
        initial,
        any,
        final_,
    })
}

/// `valueencoding` (RFC 4515 §3): `\XX` hex escapes to bytes; NUL, `(`, `)`, `*` and a lone
/// `\` must be escaped.
fn unescape(value: &[u8], at: usize) -> Result<Vec<u8>, FilterParseError> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        let err = |reason| FilterParseError {
            position: at + i,
            reason,
        };
        match b {
            b'\\' => {
                let hex = value
                    .get(i + 1..i + 3)
                    .ok_or(err("'\\' must be followed by two hex digits"))?;
                let hi = hex_digit(hex[0]).ok_or(err("'\\' must be followed by two hex digits"))?;
                let lo = hex_digit(hex[1]).ok_or(err("'\\' must be followed by two hex digits"))?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'*' => return Err(err("unescaped '*' in value")),
            b'(' => return Err(err("unescaped '(' in value")),
            0 => return Err(err("unescaped NUL in value")),
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn write_filter(filter: &Filter, out: &mut String) {
    out.push('(');
    match filter {
        Filter::And(list) => {
            out.push('&');
            list.iter().for_each(|f| write_filter(f, out));
        }
        Filter::Or(list) => {
            out.push('|');
            list.iter().for_each(|f| write_filter(f, out));
        }
        Filter::Not(inner) => {
            out.push('!');
            write_filter(inner, out);
        }
        Filter::Equality(attr, value) => write_simple(out, attr, "=", value),
        Filter::GreaterOrEqual(attr, value) => write_simple(out, attr, ">=", value),
        Filter::LessOrEqual(attr, value) => write_simple(out, attr, "<=", value),
        Filter::Approx(attr, value) => write_simple(out, attr, "~=", value),
        Filter::Present(attr) => {
            out.push_str(attr);
            out.push_str("=*");
        }
        Filter::Substrings {
            attr,
            initial,
            any,
            final_,
        } => {
            out.push_str(attr);
            out.push('=');
            if let Some(v) = initial {
                escape(v, out);
            }
            out.push('*');
            for v in any {
                escape(v, out);
                out.push('*');
            }
            if let Some(v) = final_ {
                escape(v, out);
            }
        }
        Filter::Extensible {
            rule,
            attr,
            value,
            dn_attrs,
        } => {
            if let Some(a) = attr {
                out.push_str(a);
            }
            if *dn_attrs {
                out.push_str(":dn");
            }
            if let Some(r) = rule {
                out.push(':');
                out.push_str(r);
            }
            out.push_str(":=");
            escape(value, out);
        }
        Filter::DnIn { attr, dns } => {
            out.push('|');
            let mut dns: Vec<&String> = dns.iter().collect();
            dns.sort();
            for dn in dns {
                out.push('(');
                write_simple(out, attr, "=", dn.as_bytes());
                out.push(')');
            }
        }
    }
    out.push(')');
}

fn write_simple(out: &mut String, attr: &str, op: &str, value: &[u8]) {
    out.push_str(attr);
    out.push_str(op);
    escape(value, out);
}

/// RFC 4515 §3 value escaping (`* ( ) \` NUL); also escapes ASCII control characters, so the
/// text is safe to log, and bytes that are not valid UTF-8.
fn escape(value: &[u8], out: &mut String) {
    for chunk in value.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '*' | '(' | ')' | '\\' => push_hex(out, c as u8),
                c if c.is_ascii_control() => push_hex(out, c as u8),
                _ => out.push(c),
            }
        }
        for &b in chunk.invalid() {
            push_hex(out, b);
        }
    }
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::model::filter::{BIT_AND, IN_CHAIN};

    fn eq(a: &str, v: &[u8]) -> Filter {
        Filter::Equality(a.into(), v.to_vec())
    }

    /// Parse, check the formatted form, and check it parses back to the same filter.
    fn check(text: &str, want: Filter, formatted: &str) {
        let got = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(got, want, "{text}");
        assert_eq!(format(&got), formatted, "{text}");
        assert_eq!(parse(formatted).unwrap(), want, "{formatted}");
    }

    #[test]
    fn binary_guid() {
        let f = eq("objectGUID", b"\xff\xfe\x00\x01");
        check(
            r"(objectGUID=\ff\fe\00\01)",
            f.clone(),
            r"(objectGUID=\ff\fe\00\01)",
        );
        check(
            r"(objectGUID=\FF\FE\00\01)",
            f,
            r"(objectGUID=\ff\fe\00\01)",
        );
    }

    #[test]
    fn substrings() {
        let sub = |attr: &str, i: Option<&str>, any: &[&str], f: Option<&str>| Filter::Substrings {
            attr: attr.into(),
            initial: i.map(|s| s.as_bytes().to_vec()),
            any: any.iter().map(|s| s.as_bytes().to_vec()).collect(),
            final_: f.map(|s| s.as_bytes().to_vec()),
        };
        check(
            "(sudoHost=+*)",
            sub("sudoHost", Some("+"), &[], None),
            "(sudoHost=+*)",
        );
        check(
            "(cn=Al*ce*Li*l)",
            sub("cn", Some("Al"), &["ce", "Li"], Some("l")),
            "(cn=Al*ce*Li*l)",
        );
        check(
            "(mail=*@example.com)",
            sub("mail", None, &[], Some("@example.com")),
            "(mail=*@example.com)",
        );
        check("(cn=*a*)", sub("cn", None, &["a"], None), "(cn=*a*)");
        check(
            "(cn=a**b)",
            sub("cn", Some("a"), &[], Some("b")),
            "(cn=a*b)",
        );
        check(
            r"(cn=\2a*\28x\29)",
            sub("cn", Some("*"), &[], Some("(x)")),
            r"(cn=\2a*\28x\29)",
        );
    }

    #[test]
    fn extensible() {
        check(
            "(memberOf:1.2.840.113556.1.4.1941:=cn=g,dc=x)",
            Filter::Extensible {
                rule: Some(IN_CHAIN.into()),
                attr: Some("memberOf".into()),
                value: b"cn=g,dc=x".to_vec(),
                dn_attrs: false,
            },
            "(memberOf:1.2.840.113556.1.4.1941:=cn=g,dc=x)",
        );
        check(
            "(userAccountControl:1.2.840.113556.1.4.803:=2)",
            Filter::Extensible {
                rule: Some(BIT_AND.into()),
                attr: Some("userAccountControl".into()),
                value: b"2".to_vec(),
                dn_attrs: false,
            },
            "(userAccountControl:1.2.840.113556.1.4.803:=2)",
        );
        check(
            "(:DN:2.5.13.5:=people)",
            Filter::Extensible {
                rule: Some("2.5.13.5".into()),
                attr: None,
                value: b"people".to_vec(),
                dn_attrs: true,
            },
            "(:dn:2.5.13.5:=people)",
        );
        check(
            "(cn:dn:=x)",
            Filter::Extensible {
                rule: None,
                attr: Some("cn".into()),
                value: b"x".to_vec(),
                dn_attrs: true,
            },
            "(cn:dn:=x)",
        );
        check(
            "(cn:caseExactMatch:=Alice Liddell)",
            Filter::Extensible {
                rule: Some("caseExactMatch".into()),
                attr: Some("cn".into()),
                value: b"Alice Liddell".to_vec(),
                dn_attrs: false,
            },
            "(cn:caseExactMatch:=Alice Liddell)",
        );
    }

    #[test]
    fn boolean_operators_and_simple_items() {
        check(
            "(&(|(uid>=a)(uid<=b))(!(cn~=bob))(objectClass=*))",
            Filter::And(vec![
                Filter::Or(vec![
                    Filter::GreaterOrEqual("uid".into(), b"a".to_vec()),
                    Filter::LessOrEqual("uid".into(), b"b".to_vec()),
                ]),
                Filter::Not(Box::new(Filter::Approx("cn".into(), b"bob".to_vec()))),
                Filter::Present("objectClass".into()),
            ]),
            "(&(|(uid>=a)(uid<=b))(!(cn~=bob))(objectClass=*))",
        );
        check("(&)", Filter::And(vec![]), "(&)");
        check("(|)", Filter::Or(vec![]), "(|)");
    }

    #[test]
    fn leniencies() {
        assert_eq!(parse("cn=x").unwrap(), eq("cn", b"x"));
        assert_eq!(parse("  (cn=x)  ").unwrap(), eq("cn", b"x"));
        assert_eq!(
            parse("(& (a=b)\n (c=d) )").unwrap(),
            Filter::And(vec![eq("a", b"b"), eq("c", b"d")])
        );
        assert_eq!(parse("(cn=)").unwrap(), eq("cn", b""));
        assert_eq!(parse("(cn= spaced )").unwrap(), eq("cn", b" spaced "));
        assert_eq!(
            parse("(userCertificate;binary=\\00)").unwrap(),
            eq("userCertificate;binary", b"\0")
        );
        assert_eq!(parse("(2.5.4.3=x)").unwrap(), eq("2.5.4.3", b"x"));
        assert_eq!(
            parse("(cn=caf\u{e9})").unwrap(),
            eq("cn", "caf\u{e9}".as_bytes())
        );
        assert_eq!(parse("(cn=a=b)").unwrap(), eq("cn", b"a=b"));
    }

    #[test]
    fn formatting_escapes() {
        assert_eq!(
            format(&eq("cn", b"a*b(c)d\\e\0")),
            r"(cn=a\2ab\28c\29d\5ce\00)"
        );
        assert_eq!(format(&eq("cn", "caf\u{e9}".as_bytes())), "(cn=caf\u{e9})");
        assert_eq!(format(&eq("cn", b"caf\xc3")), r"(cn=caf\c3)");
        let dn_in = Filter::DnIn {
            attr: "memberOf".into(),
            dns: ["cn=b,dc=x".to_string(), "cn=a,dc=x".to_string()]
                .into_iter()
                .collect(),
        };
        assert_eq!(
            format(&dn_in),
            "(|(memberOf=cn=a,dc=x)(memberOf=cn=b,dc=x))"
        );
    }

    fn error(text: &str) -> FilterParseError {
        parse(text).expect_err(text)
    }

    #[test]
    fn invalid_filters() {
        assert_eq!(error("").reason, "empty filter");
        assert_eq!(error("(cn=x").reason, "expected ')'");
        assert_eq!(error("(cn=x))").reason, "unexpected text after the filter");
        assert_eq!(error("(cn)").reason, "missing '=' in filter item");
        assert_eq!(error("(=x)").reason, "invalid attribute description");
        assert_eq!(error("(c n=x)").reason, "invalid attribute description");
        let e = error(r"(cn=\zz)");
        assert_eq!(
            (e.position, e.reason),
            (4, "'\\' must be followed by two hex digits")
        );
        assert_eq!(error(r"(cn=ab\f)").position, 6);
        assert_eq!(
            error("(cn=**)").reason,
            "substring filter without any value"
        );
        assert_eq!(error("(cn~=a*)").reason, "unescaped '*' in value");
        assert_eq!(error("(cn>=*)").reason, "unescaped '*' in value");
        assert_eq!(error("(cn=a(b)").reason, "unescaped '(' in value");
        assert_eq!(error("(cn=a\0)").reason, "unescaped NUL in value");
        assert_eq!(
            error("(:=x)").reason,
            "extensible match needs an attribute or a matching rule"
        );
        assert_eq!(
            error("(cn:a:b:=x)").reason,
            "too many ':' in extensible match"
        );
        assert_eq!(error("(cn:r@le:=x)").reason, "invalid matching rule");
        assert_eq!(error("(!(a=b)(c=d))").reason, "expected ')'");
        assert_eq!(error("(!)").reason, "expected '('");
        assert_eq!(error("(&(a=b)x)").reason, "expected ')'");
        assert_eq!(error("((a=b))").reason, "invalid attribute description");
    }

    #[test]
    fn depth_is_limited() {
        let nested = |n: usize| format!("{}(a=b){}", "(!".repeat(n - 1), ")".repeat(n - 1));
        assert!(parse(&nested(MAX_DEPTH)).is_ok());
        assert_eq!(
            error(&nested(MAX_DEPTH + 1)).reason,
            "filter nested too deeply"
        );
        // Far too deep: rejected quickly, no stack overflow.
        assert_eq!(error(&nested(100_000)).reason, "filter nested too deeply");
        let ands = format!("{}(a=b){}", "(&".repeat(200), ")".repeat(200));
        assert_eq!(error(&ands).reason, "filter nested too deeply");
    }
}
