//! Distinguished names: RFC 4514 parsing, escaping and normalisation.
//! May import: std only. Invariant: a `Dn` always holds a parsed, valid name; its
//! normalised form (`Dn::norm`) is the key every index and comparison uses.

use std::fmt;
use std::fmt::Write as _;

/// One attribute-value assertion inside an RDN, e.g. `cn=Alice`.
#[derive(Clone, Debug)]
pub struct Ava {
    /// The attribute type as written (case kept for display).
    pub attr: String,
    /// The unescaped value.
    pub value: String,
}

/// A relative distinguished name: one or more AVAs joined with `+`.
#[derive(Clone, Debug)]
pub struct Rdn {
    /// The AVAs, in the order given.
    pub avas: Vec<Ava>,
}

/// A distinguished name, leaf first (`cn=alice,cn=Users,dc=example,dc=com`).
#[derive(Clone)]
pub struct Dn {
    rdns: Vec<Rdn>,
    norm: String,
}

/// Why a string is not a DN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DN: {0}")]
pub struct DnError(pub &'static str);

impl Dn {
    /// The empty DN (the rootDSE).
    pub fn root() -> Dn {
        Dn {
            rdns: Vec::new(),
            norm: String::new(),
        }
    }

    /// Parses an RFC 4514 string. Accepts `\XX` hex escapes, `\,`-style escapes,
    /// multi-valued RDNs joined with `+`, `#hex` values, and spaces around separators.
    pub fn parse(s: &str) -> Result<Dn, DnError> {
        // Leading spaces are insignificant; trailing ones are dropped by the value parser
        // unless escaped (RFC 4514 §2.4), so the input must not be trimmed at the end here.
        let s = s.trim_start();
        if s.trim_end().is_empty() {
            return Ok(Dn::root());
        }
        let bytes = s.as_bytes();
        let mut rdns = Vec::new();
        let mut avas = Vec::new();
        let mut i = 0;
        loop {
            // attribute type
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            let start = i;
            while i < bytes.len() && bytes[i] != b'=' {
                i += 1;
            }
            if i >= bytes.len() {
                return Err(DnError("missing '=' in RDN"));
            }
            let attr = s[start..i].trim();
            if attr.is_empty() || !valid_attr_type(attr) {
                return Err(DnError("bad attribute type"));
            }
            i += 1; // '='
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            let (value, next) = if i < bytes.len() && bytes[i] == b'#' {
                parse_hex_value(bytes, i + 1)?
            } else {
                parse_string_value(bytes, i)?
            };
            i = next;
            avas.push(Ava {
                attr: attr.to_string(),
                value,
            });
            if i >= bytes.len() {
                rdns.push(Rdn {
                    avas: std::mem::take(&mut avas),
                });
                break;
            }
            match bytes[i] {
                b'+' => {}
                b',' | b';' => rdns.push(Rdn {
                    avas: std::mem::take(&mut avas),
                }),
                _ => return Err(DnError("unexpected character after value")),
            }
            i += 1;
            if i >= bytes.len() {
                return Err(DnError("trailing separator"));
            }
        }
        Ok(Dn::from_rdns(rdns))
    }

    /// Builds a DN from RDNs (leaf first).
    pub fn from_rdns(rdns: Vec<Rdn>) -> Dn {
        let norm = normalise(&rdns);
        Dn { rdns, norm }
    }

    /// `dc=example,dc=com` for `example.com`.
    pub fn from_domain(domain: &str) -> Dn {
        let rdns = domain
            .split('.')
            .filter(|l| !l.is_empty())
            .map(|l| Rdn {
                avas: vec![Ava {
                    attr: "dc".into(),
                    value: l.to_string(),
                }],
            })
            .collect();
        Dn::from_rdns(rdns)
    }

    /// The normalised form: attribute types lower-cased, values lower-cased with
    /// insignificant spaces removed (caseIgnore), AVAs of a multi-valued RDN sorted.
    pub fn norm(&self) -> &str {
        &self.norm
    }

    /// True for the empty DN.
    pub fn is_root(&self) -> bool {
        self.rdns.is_empty()
    }

    /// The RDNs, leaf first.
    pub fn rdns(&self) -> &[Rdn] {
        &self.rdns
    }

    /// The leaf RDN, if any.
    pub fn rdn(&self) -> Option<&Rdn> {
        self.rdns.first()
    }

    /// The parent DN; the root's parent is `None`.
    pub fn parent(&self) -> Option<Dn> {
        if self.rdns.is_empty() {
            None
        } else {
            Some(Dn::from_rdns(self.rdns[1..].to_vec()))
        }
    }

    /// A child of this DN with the given RDN.
    pub fn child(&self, rdn: Rdn) -> Dn {
        let mut rdns = Vec::with_capacity(self.rdns.len() + 1);
        rdns.push(rdn);
        rdns.extend(self.rdns.iter().cloned());
        Dn::from_rdns(rdns)
    }

    /// Number of RDNs.
    pub fn depth(&self) -> usize {
        self.rdns.len()
    }

    /// True if `self` is `other` or below it.
    pub fn is_within(&self, other: &Dn) -> bool {
        if other.rdns.len() > self.rdns.len() {
            return false;
        }
        if other.rdns.is_empty() {
            return true;
        }
        // Compare normal forms: `other`'s must be a suffix of ours that starts right after an
        // RDN separator, i.e. a `,` not escaped by an odd run of backslashes.
        let (a, b) = (self.norm.as_bytes(), other.norm.as_bytes());
        if a.len() == b.len() {
            return a == b;
        }
        if a.len() < b.len() + 2 || !a.ends_with(b) {
            return false;
        }
        let comma = a.len() - b.len() - 1;
        let backslashes = a[..comma].iter().rev().take_while(|c| **c == b'\\').count();
        a[comma] == b',' && backslashes % 2 == 0
    }

    /// True if `self` is an immediate child of `other` (one-level scope).
    pub fn is_child_of(&self, other: &Dn) -> bool {
        self.rdns.len() == other.rdns.len() + 1 && self.is_within(other)
    }

    /// Re-roots: replaces the `old_base` suffix of `self` with `new_base`.
    pub fn rebase(&self, old_base: &Dn, new_base: &Dn) -> Option<Dn> {
        if !self.is_within(old_base) {
            return None;
        }
        let keep = self.rdns.len() - old_base.rdns.len();
        let mut rdns = self.rdns[..keep].to_vec();
        rdns.extend(new_base.rdns.iter().cloned());
        Some(Dn::from_rdns(rdns))
    }
}

impl Rdn {
    /// A single-valued RDN.
    pub fn new(attr: &str, value: &str) -> Rdn {
        Rdn {
            avas: vec![Ava {
                attr: attr.to_string(),
                value: value.to_string(),
            }],
        }
    }

    /// Parses one RDN such as `cn=Bob+uid=bob`.
    pub fn parse(s: &str) -> Result<Rdn, DnError> {
        let dn = Dn::parse(s)?;
        match dn.rdns.len() {
            1 => Ok(dn.rdns.into_iter().next().ok_or(DnError("empty RDN"))?),
            _ => Err(DnError("expected exactly one RDN")),
        }
    }
}

impl fmt::Display for Rdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, ava) in self.avas.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{}={}", ava.attr, escape_value(&ava.value))?;
        }
        Ok(())
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.rdns.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{rdn}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dn({self})")
    }
}

impl PartialEq for Dn {
    fn eq(&self, other: &Dn) -> bool {
        self.norm == other.norm
    }
}
impl Eq for Dn {}
impl std::hash::Hash for Dn {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.norm.hash(h)
    }
}

/// Escapes a value for the RFC 4514 string form.
pub fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    escape_into(&mut out, v);
    out
}

/// `escape_value`, appended to `out`.
fn escape_into(out: &mut String, v: &str) {
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\{:02x}", c as u32);
            }
            _ => out.push(c),
        }
    }
}

fn valid_attr_type(a: &str) -> bool {
    let b = a.as_bytes();
    if b[0].is_ascii_digit() {
        a.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
    } else {
        b[0].is_ascii_alphabetic() && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn parse_hex_value(b: &[u8], mut i: usize) -> Result<(String, usize), DnError> {
    let mut out = Vec::new();
    while i + 1 < b.len() + 1 && i < b.len() && hex_val(b[i]).is_some() {
        let hi = hex_val(b[i]).ok_or(DnError("bad hex"))?;
        let lo = b
            .get(i + 1)
            .and_then(|c| hex_val(*c))
            .ok_or(DnError("odd hex value"))?;
        out.push(hi << 4 | lo);
        i += 2;
    }
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    // The hex form is a BER encoding; keep the raw content octets if it is a primitive
    // string, otherwise the whole thing (lossless enough for naming purposes).
    let value = match out.as_slice() {
        [_, len, rest @ ..] if (*len as usize) == rest.len() => {
            String::from_utf8_lossy(rest).into_owned()
        }
        _ => String::from_utf8_lossy(&out).into_owned(),
    };
    Ok((value, i))
}

fn parse_string_value(b: &[u8], mut i: usize) -> Result<(String, usize), DnError> {
    let mut out: Vec<u8> = Vec::new();
    let mut last_significant = 0usize; // length of out up to the last escaped/non-space char
    while i < b.len() {
        match b[i] {
            b',' | b'+' | b';' => break,
            b'\\' => {
                let c = *b.get(i + 1).ok_or(DnError("dangling escape"))?;
                if let Some(hi) = hex_val(c) {
                    let lo = b
                        .get(i + 2)
                        .and_then(|c| hex_val(*c))
                        .ok_or(DnError("bad hex escape"))?;
                    out.push(hi << 4 | lo);
                    i += 3;
                } else if matches!(
                    c,
                    b' ' | b'"' | b'#' | b'+' | b',' | b';' | b'<' | b'=' | b'>' | b'\\'
                ) {
                    out.push(c);
                    i += 2;
                } else {
                    return Err(DnError("invalid escape"));
                }
                last_significant = out.len();
            }
            b'"' | b'<' | b'>' | b'=' => return Err(DnError("unescaped special character")),
            c => {
                out.push(c);
                if c != b' ' {
                    last_significant = out.len();
                }
                i += 1;
            }
        }
    }
    out.truncate(last_significant);
    let v = String::from_utf8(out).map_err(|_| DnError("value is not UTF-8"))?;
    Ok((v, i))
}

/// caseIgnoreMatch preparation (RFC 4518, simplified): fold case, collapse inner spaces;
/// appended to `out`.
fn norm_value_into(out: &mut String, v: &str) {
    let start = out.len();
    for word in v.split(' ').filter(|w| !w.is_empty()) {
        if out.len() > start {
            out.push(' ');
        }
        if word.is_ascii() {
            out.extend(word.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            out.extend(word.chars().flat_map(char::to_lowercase));
        }
    }
}

/// `attr=value` of one AVA in normal form, appended to `out` (`tmp` is scratch space).
fn push_norm_ava(out: &mut String, a: &Ava, tmp: &mut String) {
    out.extend(a.attr.bytes().map(|b| char::from(b.to_ascii_lowercase())));
    out.push('=');
    tmp.clear();
    norm_value_into(tmp, &a.value);
    escape_into(out, tmp);
}

/// The normal form of a DN: every AVA as lowercase `attr=` + the escaped caseIgnore form
/// of its value, the AVAs of a multi-valued RDN sorted and joined with `+`, RDNs joined
/// with `,`. Built in one buffer: it runs for every DN parsed or decoded.
fn normalise(rdns: &[Rdn]) -> String {
    let mut out = String::with_capacity(
        rdns.iter()
            .map(|r| {
                r.avas
                    .iter()
                    .map(|a| a.attr.len() + a.value.len() + 2)
                    .sum::<usize>()
            })
            .sum(),
    );
    let mut tmp = String::new();
    for (i, r) in rdns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let [one] = r.avas.as_slice() {
            push_norm_ava(&mut out, one, &mut tmp);
            continue;
        }
        let mut parts: Vec<String> = r
            .avas
            .iter()
            .map(|a| {
                let mut p = String::new();
                push_norm_ava(&mut p, a, &mut tmp);
                p
            })
            .collect();
        parts.sort();
        out.push_str(&parts.join("+"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The normal form as first written (one String per AVA), kept as the reference the
    /// single-buffer `normalise` must reproduce byte for byte (stored DN keys depend on it).
    fn reference_norm(rdns: &[Rdn]) -> String {
        fn value(v: &str) -> String {
            let mut out = String::new();
            for word in v.split(' ').filter(|w| !w.is_empty()) {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.extend(word.chars().flat_map(char::to_lowercase));
            }
            out
        }
        rdns.iter()
            .map(|r| {
                let mut parts: Vec<String> = r
                    .avas
                    .iter()
                    .map(|a| {
                        let v = value(&a.value);
                        let n = v.chars().count();
                        let mut e = String::new();
                        for (i, c) in v.chars().enumerate() {
                            match c {
                                ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                                    e.push('\\');
                                    e.push(c);
                                }
                                '#' if i == 0 => e.push_str("\\#"),
                                ' ' if i == 0 || i + 1 == n => e.push_str("\\ "),
                                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                                    e.push_str(&format!("\\{:02x}", c as u32))
                                }
                                _ => e.push(c),
                            }
                        }
                        format!("{}={}", a.attr.to_ascii_lowercase(), e)
                    })
                    .collect();
                parts.sort();
                parts.join("+")
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn normal_form_matches_the_reference() {
        for s in [
            "CN=Bob  Smith,OU=People,DC=Example,DC=com",
            "cn=\\#x\\,y+UID=Ä Ö,dc=x",
            "cn=\\ lead\\ ,dc=x",
            "cn=a\\0ab,dc=x",
            "cn=Straße ÉTÉ,dc=x",
            "cn=x\\;y\\=z\\<\\>\\\"q\\\\,dc=x",
            "uid=b+cn=a+sn=c,dc=x",
            "cn=#04024869,dc=x",
            "",
        ] {
            let dn = Dn::parse(s).unwrap();
            assert_eq!(dn.norm(), reference_norm(dn.rdns()), "{s}");
        }
    }

    #[test]
    fn within_and_child_of_respect_escaped_commas() {
        let base = Dn::parse("dc=example,dc=com").unwrap();
        let p = |s: &str| Dn::parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"));
        assert!(p("cn=a,dc=Example,dc=com").is_within(&base));
        assert!(p("dc=example,dc=com").is_within(&base));
        assert!(p("dc=example,dc=com").is_within(&Dn::root()));
        assert!(!p("dc=com").is_within(&base));
        assert!(!p("cn=a,dc=xexample,dc=com").is_within(&base));
        // An RDN value holding an escaped comma is one RDN.
        assert!(p("cn=x\\,y,dc=org").is_within(&p("dc=org")));
        assert!(!p("cn=x\\,dc\\=org").is_within(&p("dc=org")));
        assert!(!p("cn=x\\,y,dc=org").is_within(&p("cn=y,dc=org")));
        // A value ending in an escaped backslash, then a real separator.
        assert!(p("cn=a\\\\,dc=example,dc=com").is_within(&base));
        assert!(p("cn=a,dc=example,dc=com").is_child_of(&base));
        assert!(!p("cn=b,cn=a,dc=example,dc=com").is_child_of(&base));
        assert!(!base.is_child_of(&base));
    }

    #[test]
    fn parses_and_normalises() {
        let dn = Dn::parse("CN=Alice  Smith , cn=Users,DC=Example,DC=com").unwrap();
        assert_eq!(dn.norm(), "cn=alice smith,cn=users,dc=example,dc=com");
        assert_eq!(dn.depth(), 4);
        assert_eq!(dn.parent().unwrap().norm(), "cn=users,dc=example,dc=com");
    }

    #[test]
    fn escapes_round_trip() {
        let dn = Dn::parse(r"cn=Smith\, John,dc=example,dc=com").unwrap();
        assert_eq!(dn.rdn().unwrap().avas[0].value, "Smith, John");
        assert_eq!(dn.to_string(), r"cn=Smith\, John,dc=example,dc=com");
        let hex = Dn::parse(r"cn=\4a\6fhn,dc=x").unwrap();
        assert_eq!(hex.rdn().unwrap().avas[0].value, "John");
        let sp = Dn::parse(r"cn=\ lead\ ,dc=x").unwrap();
        assert_eq!(sp.rdn().unwrap().avas[0].value, " lead ");
        assert_eq!(Dn::parse(&sp.to_string()).unwrap(), sp);
    }

    #[test]
    fn multi_valued_rdn_is_order_insensitive() {
        let a = Dn::parse("cn=Bob+uid=bob,dc=x").unwrap();
        let b = Dn::parse("UID=bob+CN=bob,dc=x").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.rdn().unwrap().avas.len(), 2);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["cn", "=x", "cn=a,", "cn=a\\", "cn=a\\zz", "c n=x", "cn=a=b"] {
            assert!(Dn::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn containment_and_rebase() {
        let base = Dn::parse("dc=example,dc=com").unwrap();
        let u = Dn::parse("cn=a,cn=Users,dc=example,dc=com").unwrap();
        assert!(u.is_within(&base));
        assert!(!base.is_within(&u));
        let moved = u
            .rebase(
                &Dn::parse("cn=Users,dc=example,dc=com").unwrap(),
                &Dn::parse("ou=X,dc=example,dc=com").unwrap(),
            )
            .unwrap();
        assert_eq!(moved.norm(), "cn=a,ou=x,dc=example,dc=com");
        assert_eq!(Dn::from_domain("example.com"), base);
    }
}
