//! Matching rules (RFC 4517 §4.2, RFC 4518 string preparation, RFC 4530 UUID, the AD bit
//! rules): how two attribute values compare for equality, ordering and substrings.
//! May import: std, `model::dn`. Invariant: pure functions of their inputs; a value that the
//! rule cannot read yields `None` ("Undefined"), never a panic. The schema decides which
//! rule applies to which attribute (`model::schema`); resolving `objectIdentifierMatch`
//! descriptors to canonical names also happens there, since it needs the schema.

use std::cmp::Ordering;

use crate::model::dn::Dn;

/// The algorithm behind a matching rule. Several rules (equality, ordering, substrings
/// variants of one family) share one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchKind {
    /// caseIgnore*: RFC 4518 insignificant-space handling plus case folding.
    CaseIgnore,
    /// caseExact*: insignificant-space handling, case kept.
    CaseExact,
    /// caseIgnoreIA5*: as CaseIgnore, but values must be ASCII.
    CaseIgnoreIa5,
    /// caseExactIA5*: as CaseExact, but values must be ASCII.
    CaseExactIa5,
    /// integer*: numeric comparison, canonical decimal form.
    Integer,
    /// generalizedTime*: RFC 4517 §3.3.13 parsed and moved to UTC.
    GeneralizedTime,
    /// octetString*: byte-wise.
    OctetString,
    /// distinguishedNameMatch: `Dn::norm` equality.
    DistinguishedName,
    /// booleanMatch: TRUE / FALSE.
    Boolean,
    /// objectIdentifierMatch: numeric OID or descriptor, compared case-insensitively.
    ObjectIdentifier,
    /// numericString*: spaces are insignificant.
    NumericString,
    /// telephoneNumber*: spaces and hyphens are insignificant, case folded.
    TelephoneNumber,
    /// uuid*: RFC 4122 string form, case-insensitive.
    Uuid,
    /// LDAP_MATCHING_RULE_BIT_AND (1.2.840.113556.1.4.803): all assertion bits set.
    BitAnd,
    /// LDAP_MATCHING_RULE_BIT_OR (1.2.840.113556.1.4.804): any assertion bit set.
    BitOr,
}

/// What a matching rule is used for (the EQUALITY, ORDERING or SUBSTR slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleUsage {
    /// EQUALITY rule
    Equality,
    /// ORDERING rule (extensible use: value < assertion)
    Ordering,
    /// SUBSTR rule
    Substrings,
}

/// One matching rule the server implements (RFC 4512 §4.1.3 description fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchingRule {
    /// numeric OID
    pub oid: &'static str,
    /// the rule's name
    pub name: &'static str,
    /// algorithm
    pub kind: MatchKind,
    /// slot the rule fills
    pub usage: RuleUsage,
    /// OID of the assertion syntax
    pub syntax: &'static str,
}

/// A GeneralizedTime value in UTC: seconds since 1970-01-01T00:00:00Z plus nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GeneralizedTime {
    /// whole seconds since the Unix epoch (may be negative)
    pub secs: i64,
    /// fraction of a second, 0..1e9
    pub nanos: u32,
}

/// Every matching rule the server knows, with the RFC 4517 / RFC 4530 / MS-ADTS OIDs.
pub const RULES: &[MatchingRule] = &[
    rule(
        "2.5.13.0",
        "objectIdentifierMatch",
        MatchKind::ObjectIdentifier,
        RuleUsage::Equality,
        OID,
    ),
    rule(
        "2.5.13.1",
        "distinguishedNameMatch",
        MatchKind::DistinguishedName,
        RuleUsage::Equality,
        DN,
    ),
    rule(
        "2.5.13.2",
        "caseIgnoreMatch",
        MatchKind::CaseIgnore,
        RuleUsage::Equality,
        DSTRING,
    ),
    rule(
        "2.5.13.3",
        "caseIgnoreOrderingMatch",
        MatchKind::CaseIgnore,
        RuleUsage::Ordering,
        DSTRING,
    ),
    rule(
        "2.5.13.4",
        "caseIgnoreSubstringsMatch",
        MatchKind::CaseIgnore,
        RuleUsage::Substrings,
        SUBSTR,
    ),
    rule(
        "2.5.13.5",
        "caseExactMatch",
        MatchKind::CaseExact,
        RuleUsage::Equality,
        DSTRING,
    ),
    rule(
        "2.5.13.6",
        "caseExactOrderingMatch",
        MatchKind::CaseExact,
        RuleUsage::Ordering,
        DSTRING,
    ),
    rule(
        "2.5.13.7",
        "caseExactSubstringsMatch",
        MatchKind::CaseExact,
        RuleUsage::Substrings,
        SUBSTR,
    ),
    rule(
        "2.5.13.8",
        "numericStringMatch",
        MatchKind::NumericString,
        RuleUsage::Equality,
        NUMERIC,
    ),
    rule(
        "2.5.13.9",
        "numericStringOrderingMatch",
        MatchKind::NumericString,
        RuleUsage::Ordering,
        NUMERIC,
    ),
    rule(
        "2.5.13.10",
        "numericStringSubstringsMatch",
        MatchKind::NumericString,
        RuleUsage::Substrings,
        SUBSTR,
    ),
    rule(
        "2.5.13.11",
        "caseIgnoreListMatch",
        MatchKind::CaseIgnore,
        RuleUsage::Equality,
        POSTAL,
    ),
    rule(
        "2.5.13.12",
        "caseIgnoreListSubstringsMatch",
        MatchKind::CaseIgnore,
        RuleUsage::Substrings,
        SUBSTR,
    ),
    rule(
        "2.5.13.13",
        "booleanMatch",
        MatchKind::Boolean,
        RuleUsage::Equality,
        BOOLEAN,
    ),
    rule(
        "2.5.13.14",
        "integerMatch",
        MatchKind::Integer,
        RuleUsage::Equality,
        INTEGER,
    ),
    rule(
        "2.5.13.15",
        "integerOrderingMatch",
        MatchKind::Integer,
        RuleUsage::Ordering,
        INTEGER,
    ),
    rule(
        "2.5.13.16",
        "bitStringMatch",
        MatchKind::OctetString,
        RuleUsage::Equality,
        BITSTRING,
    ),
    rule(
        "2.5.13.17",
        "octetStringMatch",
        MatchKind::OctetString,
        RuleUsage::Equality,
        OCTETS,
    ),
    rule(
        "2.5.13.18",
        "octetStringOrderingMatch",
        MatchKind::OctetString,
        RuleUsage::Ordering,
        OCTETS,
    ),
    rule(
        "2.5.13.20",
        "telephoneNumberMatch",
        MatchKind::TelephoneNumber,
        RuleUsage::Equality,
        PHONE,
    ),
    rule(
        "2.5.13.21",
        "telephoneNumberSubstringsMatch",
        MatchKind::TelephoneNumber,
        RuleUsage::Substrings,
        SUBSTR,
    ),
    rule(
        "2.5.13.23",
        "uniqueMemberMatch",
        MatchKind::DistinguishedName,
        RuleUsage::Equality,
        NAME_UID,
    ),
    rule(
        "2.5.13.27",
        "generalizedTimeMatch",
        MatchKind::GeneralizedTime,
        RuleUsage::Equality,
        GTIME,
    ),
    rule(
        "2.5.13.28",
        "generalizedTimeOrderingMatch",
        MatchKind::GeneralizedTime,
        RuleUsage::Ordering,
        GTIME,
    ),
    rule(
        "2.5.13.29",
        "integerFirstComponentMatch",
        MatchKind::Integer,
        RuleUsage::Equality,
        INTEGER,
    ),
    rule(
        "2.5.13.30",
        "objectIdentifierFirstComponentMatch",
        MatchKind::ObjectIdentifier,
        RuleUsage::Equality,
        OID,
    ),
    rule(
        "1.3.6.1.4.1.1466.109.114.1",
        "caseExactIA5Match",
        MatchKind::CaseExactIa5,
        RuleUsage::Equality,
        IA5,
    ),
    rule(
        "1.3.6.1.4.1.1466.109.114.2",
        "caseIgnoreIA5Match",
        MatchKind::CaseIgnoreIa5,
        RuleUsage::Equality,
        IA5,
    ),
    rule(
        "1.3.6.1.4.1.1466.109.114.3",
        "caseIgnoreIA5SubstringsMatch",
        MatchKind::CaseIgnoreIa5,
        RuleUsage::Substrings,
        SUBSTR,
    ),
    rule(
        "1.3.6.1.4.1.4203.1.2.1",
        "caseExactIA5SubstringsMatch",
        MatchKind::CaseExactIa5,
        RuleUsage::Substrings,
        SUBSTR,
    ),
    rule(
        "1.3.6.1.1.16.2",
        "uuidMatch",
        MatchKind::Uuid,
        RuleUsage::Equality,
        UUID,
    ),
    rule(
        "1.3.6.1.1.16.3",
        "uuidOrderingMatch",
        MatchKind::Uuid,
        RuleUsage::Ordering,
        UUID,
    ),
    rule(
        "1.2.840.113556.1.4.803",
        "bitAndMatch",
        MatchKind::BitAnd,
        RuleUsage::Equality,
        INTEGER,
    ),
    rule(
        "1.2.840.113556.1.4.804",
        "bitOrMatch",
        MatchKind::BitOr,
        RuleUsage::Equality,
        INTEGER,
    ),
];

impl MatchKind {
    /// True for the string families whose equality can be checked by streaming
    /// prepared characters (no allocation per stored value).
    fn is_string(self) -> bool {
        matches!(
            self,
            MatchKind::CaseIgnore
                | MatchKind::CaseExact
                | MatchKind::CaseIgnoreIa5
                | MatchKind::CaseExactIa5
                | MatchKind::NumericString
                | MatchKind::TelephoneNumber
        )
    }
}

/// The rule with this numeric OID or name (case-insensitive).
pub fn rule_by_name(name_or_oid: &str) -> Option<&'static MatchingRule> {
    RULES
        .iter()
        .find(|r| r.oid == name_or_oid || r.name.eq_ignore_ascii_case(name_or_oid))
}

/// The canonical equality form of `value` under `kind` (an index key). `None` when the
/// value cannot be read under the rule (e.g. `abc` under integerMatch).
///
/// `ObjectIdentifier` is only lower-cased here; `Schema::normalize` maps descriptors to
/// canonical names on top of this.
pub fn normalize(kind: MatchKind, value: &[u8]) -> Option<Vec<u8>> {
    match kind {
        MatchKind::CaseIgnore
        | MatchKind::CaseExact
        | MatchKind::CaseIgnoreIa5
        | MatchKind::CaseExactIa5
        | MatchKind::NumericString
        | MatchKind::TelephoneNumber => {
            let s = text(kind, value)?;
            let mut out = String::with_capacity(s.len());
            out.extend(prepare(kind, s));
            Some(out.into_bytes())
        }
        MatchKind::Integer | MatchKind::BitAnd | MatchKind::BitOr => {
            let (neg, digits) = parse_integer(value)?;
            let mut out = Vec::with_capacity(digits.len() + 1);
            if neg {
                out.push(b'-');
            }
            out.extend_from_slice(digits);
            Some(out)
        }
        MatchKind::GeneralizedTime => {
            parse_generalized_time(value).map(|t| format_generalized_time(t).into_bytes())
        }
        MatchKind::OctetString => Some(value.to_vec()),
        MatchKind::DistinguishedName => {
            let s = std::str::from_utf8(value).ok()?;
            Dn::parse(s).ok().map(|dn| dn.norm().as_bytes().to_vec())
        }
        MatchKind::Boolean => parse_boolean(value).map(|b| {
            if b {
                b"TRUE".to_vec()
            } else {
                b"FALSE".to_vec()
            }
        }),
        MatchKind::ObjectIdentifier => {
            let s = std::str::from_utf8(value).ok()?.trim();
            if s.is_empty() {
                return None;
            }
            Some(s.to_ascii_lowercase().into_bytes())
        }
        MatchKind::Uuid => parse_uuid(value).map(|u| u.to_vec()),
    }
}

/// Equality of a stored value against an assertion already passed through
/// [`normalize`]. String rules stream the stored value's prepared characters, so a search
/// over many entries allocates nothing per stored value.
pub fn equals_normalized(kind: MatchKind, stored: &[u8], assertion: &[u8]) -> Option<bool> {
    if kind.is_string() {
        let s = text(kind, stored)?;
        let a = std::str::from_utf8(assertion).ok()?;
        return Some(prepare(kind, s).eq(a.chars()));
    }
    match kind {
        MatchKind::OctetString => Some(stored == assertion),
        MatchKind::Integer => {
            let (neg, digits) = parse_integer(stored)?;
            let (aneg, adigits) = match assertion.split_first() {
                Some((b'-', rest)) => (true, rest),
                _ => (false, assertion),
            };
            Some(neg == aneg && digits == adigits)
        }
        MatchKind::BitAnd | MatchKind::BitOr => bit_match(kind, stored, assertion),
        _ => normalize(kind, stored).map(|n| n == assertion),
    }
}

/// Orders two raw values under the ordering rule of `kind`; `None` if either value is
/// unreadable or the kind has no ordering.
pub fn compare(kind: MatchKind, a: &[u8], b: &[u8]) -> Option<Ordering> {
    match kind {
        MatchKind::Integer => compare_integers(parse_integer(a)?, parse_integer(b)?).into(),
        MatchKind::GeneralizedTime => {
            Some(parse_generalized_time(a)?.cmp(&parse_generalized_time(b)?))
        }
        MatchKind::OctetString => Some(a.cmp(b)),
        MatchKind::Uuid => Some(parse_uuid(a)?.cmp(&parse_uuid(b)?)),
        k if k.is_string() => {
            let (sa, sb) = (text(k, a)?, text(k, b)?);
            Some(prepare(k, sa).cmp(prepare(k, sb)))
        }
        _ => None,
    }
}

/// Substring match (RFC 4511 §4.5.1.7.2) of a stored value against prepared pieces
/// (each piece passed through [`prepare_substring`]).
pub fn substrings(
    kind: MatchKind,
    stored: &[u8],
    initial: Option<&str>,
    any: &[String],
    final_: Option<&str>,
) -> Option<bool> {
    let value: String = if kind == MatchKind::OctetString {
        // octetStringSubstringsMatch on UTF-8 text; binary values are compared lossily.
        String::from_utf8_lossy(stored).into_owned()
    } else if kind.is_string() {
        prepare(kind, text(kind, stored)?).collect()
    } else {
        return None;
    };
    let mut rest = value.as_str();
    if let Some(ini) = initial {
        match rest.strip_prefix(ini) {
            Some(r) => rest = r,
            None => return Some(false),
        }
    }
    if let Some(f) = final_ {
        // The final piece must not overlap the initial piece or the middle ones.
        if rest.len() < f.len() || !rest.ends_with(f) {
            return Some(false);
        }
        rest = &rest[..rest.len() - f.len()];
    }
    for piece in any {
        match rest.find(piece.as_str()) {
            Some(pos) => rest = &rest[pos + piece.len()..],
            None => return Some(false),
        }
    }
    Some(true)
}

/// Prepares one substring assertion piece (RFC 4518 §2.6.1): case folding as for
/// equality, inner runs of spaces collapsed, but a boundary space kept as one space so
/// `(cn=john *)` does not match `johnny`. `leading`/`trailing` trim the piece's start
/// (the `initial` piece) or end (the `final` piece), as the stored value is trimmed there.
pub fn prepare_substring(
    kind: MatchKind,
    piece: &[u8],
    leading: bool,
    trailing: bool,
) -> Option<String> {
    if kind == MatchKind::OctetString {
        return Some(String::from_utf8_lossy(piece).into_owned());
    }
    if !kind.is_string() {
        return None;
    }
    let s = text(kind, piece)?;
    let starts_space = s.starts_with(' ') && !leading;
    let ends_space = s.ends_with(' ') && !trailing;
    let mut out = String::with_capacity(s.len() + 2);
    if starts_space && !s.trim().is_empty() && !drops_spaces(kind) {
        out.push(' ');
    }
    out.extend(prepare(kind, s));
    if ends_space && !out.is_empty() && !out.ends_with(' ') && !drops_spaces(kind) {
        out.push(' ');
    }
    Some(out)
}

/// Applies an ordering rule as an extensible match (RFC 4517 §4.2: an ordering rule is
/// TRUE when the attribute value is less than the assertion).
pub fn less_than(kind: MatchKind, stored: &[u8], assertion: &[u8]) -> Option<bool> {
    compare(kind, stored, assertion).map(|o| o == Ordering::Less)
}

/// LDAP_MATCHING_RULE_BIT_AND / _OR: both sides read as 64-bit two's-complement
/// integers (AD stores flags such as groupType as signed 32-bit decimals).
pub fn bit_match(kind: MatchKind, stored: &[u8], assertion: &[u8]) -> Option<bool> {
    let v = parse_i64(stored)?;
    let a = parse_i64(assertion)?;
    match kind {
        MatchKind::BitAnd => Some(v & a == a),
        MatchKind::BitOr => Some(v & a != 0),
        _ => None,
    }
}

/// Reads an RFC 4517 §3.3.16 Integer into (negative, digits without leading zeros).
/// Leading zeros and a leading `+` are tolerated here (the syntax check is stricter).
pub fn parse_integer(value: &[u8]) -> Option<(bool, &[u8])> {
    let v = trim_ascii(value);
    let (neg, digits) = match v.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, v),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let first_nonzero = digits.iter().position(|d| *d != b'0');
    match first_nonzero {
        None => Some((false, &digits[digits.len() - 1..])),
        Some(i) => Some((neg, &digits[i..])),
    }
}

/// Reads an integer into an `i64`, if it fits.
pub fn parse_i64(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(trim_ascii(value)).ok()?.parse().ok()
}

/// True if `value` is a valid RFC 4517 Integer (no leading zeros, no `+`, `-0` refused).
pub fn is_valid_integer(value: &[u8]) -> bool {
    let digits = match value.split_first() {
        Some((b'-', rest)) => {
            if rest.first() == Some(&b'0') {
                return false;
            }
            rest
        }
        _ => value,
    };
    !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits.len() == 1 || digits[0] != b'0')
}

/// Parses RFC 4517 §3.3.13 GeneralizedTime: `YYYYMMDDHH[MM[SS]][(.|,)frac](Z|±HH[MM])`.
/// The fraction applies to the last unit given; the result is in UTC.
pub fn parse_generalized_time(value: &[u8]) -> Option<GeneralizedTime> {
    let v = value;
    let num = |i: usize, n: usize| -> Option<i64> {
        let part = v.get(i..i + n)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            part.iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')),
        )
    };
    let year = num(0, 4)?;
    let month = num(4, 2)?;
    let day = num(6, 2)?;
    let hour = num(8, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 {
        return None;
    }
    let mut i = 10;
    let mut minute = 0;
    let mut second = 0;
    let mut unit: i64 = 3600; // seconds in the last unit given, for the fraction
    if v.get(i).is_some_and(u8::is_ascii_digit) {
        minute = num(i, 2)?;
        i += 2;
        unit = 60;
        if minute > 59 {
            return None;
        }
        if v.get(i).is_some_and(u8::is_ascii_digit) {
            second = num(i, 2)?;
            i += 2;
            unit = 1;
            if second > 60 {
                return None; // 60 is a leap second
            }
        }
    }
    // fraction, as nanoseconds of the last unit
    let mut frac_nanos: i128 = 0;
    if matches!(v.get(i), Some(b'.') | Some(b',')) {
        i += 1;
        let start = i;
        while v.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &v[start..i.min(start + 18)];
        let n = digits
            .iter()
            .fold(0i128, |acc, d| acc * 10 + i128::from(d - b'0'));
        let scale = 10i128.pow(digits.len() as u32);
        frac_nanos = n * i128::from(unit) * 1_000_000_000 / scale;
    }
    // time zone
    let offset_secs: i64 = match v.get(i)? {
        b'Z' => {
            i += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let oh = num(i + 1, 2)?;
            i += 3;
            let mut om = 0;
            if v.get(i).is_some_and(u8::is_ascii_digit) {
                om = num(i, 2)?;
                i += 2;
            }
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    if i != v.len() {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let local = days * 86_400 + hour * 3600 + minute * 60 + second;
    let total_nanos = i128::from(local - offset_secs) * 1_000_000_000 + frac_nanos;
    let secs = i64::try_from(total_nanos.div_euclid(1_000_000_000)).ok()?;
    let nanos = u32::try_from(total_nanos.rem_euclid(1_000_000_000)).ok()?;
    Some(GeneralizedTime { secs, nanos })
}

/// Canonical UTC form `YYYYMMDDHHMMSS[.fraction]Z` (fraction without trailing zeros).
pub fn format_generalized_time(t: GeneralizedTime) -> String {
    let days = t.secs.div_euclid(86_400);
    let rem = t.secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        y,
        m,
        d,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if t.nanos != 0 {
        let frac = format!("{:09}", t.nanos);
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Reads booleanMatch values; `TRUE`/`FALSE` (case-insensitive for leniency).
pub fn parse_boolean(value: &[u8]) -> Option<bool> {
    let v = trim_ascii(value);
    if v.eq_ignore_ascii_case(b"TRUE") {
        Some(true)
    } else if v.eq_ignore_ascii_case(b"FALSE") {
        Some(false)
    } else {
        None
    }
}

/// Reads the RFC 4122 string form `8-4-4-4-12` hex into 36 lower-case bytes.
pub fn parse_uuid(value: &[u8]) -> Option<[u8; 36]> {
    let v = trim_ascii(value);
    if v.len() != 36 {
        return None;
    }
    let mut out = [0u8; 36];
    for (i, c) in v.iter().enumerate() {
        let ok = if matches!(i, 8 | 13 | 18 | 23) {
            *c == b'-'
        } else {
            c.is_ascii_hexdigit()
        };
        if !ok {
            return None;
        }
        out[i] = c.to_ascii_lowercase();
    }
    Some(out)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn compare_integers(a: (bool, &[u8]), b: (bool, &[u8])) -> Ordering {
    match (a.0, b.0) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (neg, _) => {
            let mag = a.1.len().cmp(&b.1.len()).then_with(|| a.1.cmp(b.1));
            if neg {
                mag.reverse()
            } else {
                mag
            }
        }
    }
}

/// The value as text under a string rule: UTF-8, and ASCII for the IA5 rules.
fn text(kind: MatchKind, value: &[u8]) -> Option<&str> {
    if matches!(kind, MatchKind::CaseIgnoreIa5 | MatchKind::CaseExactIa5) && !value.is_ascii() {
        return None;
    }
    std::str::from_utf8(value).ok()
}

/// Rules whose preparation removes every space (RFC 4518 §2.6.2, §2.6.3).
fn drops_spaces(kind: MatchKind) -> bool {
    matches!(kind, MatchKind::NumericString | MatchKind::TelephoneNumber)
}

/// RFC 4518 string preparation, simplified: control characters dropped, all white space
/// mapped to SPACE, leading/trailing spaces removed and inner runs collapsed to one
/// (or, for numericString/telephoneNumber, every space and hyphen removed), and case
/// folded for the caseIgnore families.
fn prepare(kind: MatchKind, s: &str) -> impl Iterator<Item = char> + '_ {
    let fold = matches!(
        kind,
        MatchKind::CaseIgnore | MatchKind::CaseIgnoreIa5 | MatchKind::TelephoneNumber
    );
    let drop_spaces = drops_spaces(kind);
    let phone = kind == MatchKind::TelephoneNumber;
    let mut pending_space = false;
    let mut started = false;
    s.chars()
        .filter(|c| !c.is_control() || c.is_whitespace())
        .filter(move |c| !(phone && (*c == '-' || *c == '\u{2010}' || *c == '\u{2212}')))
        .flat_map(move |c| {
            let mut out: [Option<char>; 2] = [None, None];
            if c.is_whitespace() {
                if started && !drop_spaces {
                    pending_space = true;
                }
                return Fold::new(out, None, false);
            }
            if pending_space {
                out[0] = Some(' ');
                pending_space = false;
            }
            started = true;
            Fold::new(out, Some(c), fold)
        })
}

/// Small iterator yielding an optional pending space then a (possibly case-folded)
/// character, so `prepare` allocates nothing.
struct Fold {
    space: Option<char>,
    lower: Option<std::char::ToLowercase>,
    plain: Option<char>,
}

impl Fold {
    fn new(out: [Option<char>; 2], c: Option<char>, fold: bool) -> Fold {
        match c {
            Some(c) if fold => Fold {
                space: out[0],
                lower: Some(c.to_lowercase()),
                plain: None,
            },
            c => Fold {
                space: out[0],
                lower: None,
                plain: c,
            },
        }
    }
}

impl Iterator for Fold {
    type Item = char;
    fn next(&mut self) -> Option<char> {
        if let Some(s) = self.space.take() {
            return Some(s);
        }
        if let Some(l) = self.lower.as_mut() {
            return l.next();
        }
        self.plain.take()
    }
}

fn trim_ascii(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|c| *c != b' ').unwrap_or(v.len());
    let end = v.iter().rposition(|c| *c != b' ').map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

const fn rule(
    oid: &'static str,
    name: &'static str,
    kind: MatchKind,
    usage: RuleUsage,
    syntax: &'static str,
) -> MatchingRule {
    MatchingRule {
        oid,
        name,
        kind,
        usage,
        syntax,
    }
}

const OID: &str = "1.3.6.1.4.1.1466.115.121.1.38";
const DN: &str = "1.3.6.1.4.1.1466.115.121.1.12";
const DSTRING: &str = "1.3.6.1.4.1.1466.115.121.1.15";
const SUBSTR: &str = "1.3.6.1.4.1.1466.115.121.1.58";
const NUMERIC: &str = "1.3.6.1.4.1.1466.115.121.1.36";
const POSTAL: &str = "1.3.6.1.4.1.1466.115.121.1.41";
const BOOLEAN: &str = "1.3.6.1.4.1.1466.115.121.1.7";
const INTEGER: &str = "1.3.6.1.4.1.1466.115.121.1.27";
const BITSTRING: &str = "1.3.6.1.4.1.1466.115.121.1.6";
const OCTETS: &str = "1.3.6.1.4.1.1466.115.121.1.40";
const PHONE: &str = "1.3.6.1.4.1.1466.115.121.1.50";
const NAME_UID: &str = "1.3.6.1.4.1.1466.115.121.1.34";
const GTIME: &str = "1.3.6.1.4.1.1466.115.121.1.24";
const IA5: &str = "1.3.6.1.4.1.1466.115.121.1.26";
const UUID: &str = "1.3.6.1.1.16.1";

#[cfg(test)]
mod tests {
    use super::*;

    fn n(kind: MatchKind, v: &str) -> Option<String> {
        normalize(kind, v.as_bytes()).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn case_ignore_folds_and_collapses_spaces() {
        assert_eq!(
            n(MatchKind::CaseIgnore, "  Alice   SMITH ").unwrap(),
            "alice smith"
        );
        assert_eq!(n(MatchKind::CaseIgnore, "ÄBC").unwrap(), "äbc");
        assert_eq!(
            n(MatchKind::CaseExact, " Alice  Smith").unwrap(),
            "Alice Smith"
        );
        assert_eq!(n(MatchKind::CaseIgnore, "a\tb").unwrap(), "a b");
        assert!(n(MatchKind::CaseIgnoreIa5, "äbc").is_none());
        let a = normalize(MatchKind::CaseIgnore, b"alice smith").unwrap();
        assert_eq!(
            equals_normalized(MatchKind::CaseIgnore, b" ALICE   Smith", &a),
            Some(true)
        );
        assert_eq!(
            equals_normalized(MatchKind::CaseExact, b"Alice", b"alice"),
            Some(false)
        );
    }

    #[test]
    fn case_ignore_ordering() {
        assert_eq!(
            compare(MatchKind::CaseIgnore, b"apple", b"BANANA"),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare(MatchKind::CaseExact, b"apple", b"BANANA"),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn integers() {
        assert_eq!(n(MatchKind::Integer, "007").unwrap(), "7");
        assert_eq!(n(MatchKind::Integer, "-0").unwrap(), "0");
        assert_eq!(n(MatchKind::Integer, "-12").unwrap(), "-12");
        assert!(n(MatchKind::Integer, "1a").is_none());
        assert!(n(MatchKind::Integer, "").is_none());
        assert!(n(MatchKind::Integer, "-").is_none());
        let c = |a: &str, b: &str| compare(MatchKind::Integer, a.as_bytes(), b.as_bytes());
        assert_eq!(c("10", "9"), Some(Ordering::Greater));
        assert_eq!(c("-10", "-9"), Some(Ordering::Less));
        assert_eq!(c("-1", "0"), Some(Ordering::Less));
        assert_eq!(c("00", "-0"), Some(Ordering::Equal));
        assert_eq!(
            c("123456789012345678901234567890", "99"),
            Some(Ordering::Greater)
        );
        assert_eq!(
            equals_normalized(MatchKind::Integer, b"0042", b"42"),
            Some(true)
        );
        assert!(is_valid_integer(b"-5"));
        assert!(!is_valid_integer(b"05"));
        assert!(!is_valid_integer(b"-0"));
        assert!(!is_valid_integer(b"+5"));
    }

    #[test]
    fn generalized_time_forms() {
        let t = |s: &str| parse_generalized_time(s.as_bytes());
        let base = t("20240131235959Z").unwrap();
        assert_eq!(format_generalized_time(base), "20240131235959Z");
        assert_eq!(t("20240201005959+0100").unwrap(), base);
        assert_eq!(t("20240131225959-01").unwrap(), base);
        assert_eq!(
            format_generalized_time(t("20240131235959.500Z").unwrap()),
            "20240131235959.5Z"
        );
        assert_eq!(
            format_generalized_time(t("2024013123,5Z").unwrap()),
            "20240131233000Z"
        );
        assert_eq!(
            format_generalized_time(t("202401312359.5Z").unwrap()),
            "20240131235930Z"
        );
        assert_eq!(
            format_generalized_time(t("2024022912Z").unwrap()),
            "20240229120000Z"
        );
        assert!(t("2023022912Z").is_none());
        assert!(t("20240131235959").is_none());
        assert!(t("20241331235959Z").is_none());
        assert!(t("20240131245959Z").is_none());
        assert!(t("20240131235959.Z").is_none());
        assert!(t("20240131235959Zjunk").is_none());
        assert_eq!(
            format_generalized_time(t("19691231235959Z").unwrap()),
            "19691231235959Z"
        );
    }

    #[test]
    fn generalized_time_ordering_across_zones_and_fractions() {
        let c = |a: &str, b: &str| compare(MatchKind::GeneralizedTime, a.as_bytes(), b.as_bytes());
        assert_eq!(
            c("20240101000000Z", "20240101000000.5Z"),
            Some(Ordering::Less)
        );
        assert_eq!(
            c("20240101010000+0100", "20240101000000Z"),
            Some(Ordering::Equal)
        );
        assert_eq!(
            c("20240101000000-0100", "20240101005959Z"),
            Some(Ordering::Greater)
        );
        assert_eq!(c("bad", "20240101000000Z"), None);
    }

    #[test]
    fn other_kinds() {
        assert_eq!(n(MatchKind::Boolean, "true").unwrap(), "TRUE");
        assert!(n(MatchKind::Boolean, "yes").is_none());
        assert_eq!(n(MatchKind::NumericString, " 12 34 ").unwrap(), "1234");
        assert_eq!(
            n(MatchKind::TelephoneNumber, "+1 555-0100").unwrap(),
            n(MatchKind::TelephoneNumber, "+15550100").unwrap()
        );
        assert_eq!(
            n(MatchKind::Uuid, "3F2504E0-4F89-11D3-9A0C-0305E82C3301").unwrap(),
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
        );
        assert!(n(MatchKind::Uuid, "3F2504E0").is_none());
        assert_eq!(
            n(MatchKind::DistinguishedName, "CN=A , DC=X").unwrap(),
            "cn=a,dc=x"
        );
        assert!(n(MatchKind::DistinguishedName, "garbage").is_none());
        assert_eq!(
            normalize(MatchKind::OctetString, &[0, 255]).unwrap(),
            vec![0, 255]
        );
        assert_eq!(compare(MatchKind::Boolean, b"TRUE", b"FALSE"), None);
        assert_eq!(
            n(MatchKind::ObjectIdentifier, " Person ").unwrap(),
            "person"
        );
    }

    #[test]
    fn bit_rules() {
        assert_eq!(bit_match(MatchKind::BitAnd, b"514", b"2"), Some(true));
        assert_eq!(bit_match(MatchKind::BitAnd, b"512", b"2"), Some(false));
        assert_eq!(bit_match(MatchKind::BitAnd, b"514", b"514"), Some(true));
        assert_eq!(bit_match(MatchKind::BitOr, b"512", b"3"), Some(false));
        assert_eq!(bit_match(MatchKind::BitOr, b"513", b"3"), Some(true));
        // groupType of a global security group
        assert_eq!(
            bit_match(MatchKind::BitAnd, b"-2147483646", b"2147483648"),
            Some(true)
        );
        assert_eq!(bit_match(MatchKind::BitAnd, b"x", b"1"), None);
    }

    #[test]
    fn substrings_with_boundary_spaces() {
        let k = MatchKind::CaseIgnore;
        let ini = prepare_substring(k, b"John ", true, false).unwrap();
        assert_eq!(ini, "john ");
        assert_eq!(
            substrings(k, b"John  Smith", Some(&ini), &[], None),
            Some(true)
        );
        assert_eq!(substrings(k, b"Johnny", Some(&ini), &[], None), Some(false));
        let any = vec![prepare_substring(k, b"MI", false, false).unwrap()];
        assert_eq!(
            substrings(k, b"John Smith", None, &any, Some("th")),
            Some(true)
        );
        // final must not overlap initial
        assert_eq!(
            substrings(k, b"ab", Some("ab"), &[], Some("b")),
            Some(false)
        );
        assert_eq!(
            substrings(MatchKind::Integer, b"12", Some("1"), &[], None),
            None
        );
        let tel = MatchKind::TelephoneNumber;
        let p = prepare_substring(tel, b"555-01", false, false).unwrap();
        assert_eq!(
            substrings(tel, b"+1 555 0100", None, &[p], None),
            Some(true)
        );
    }

    #[test]
    fn rule_lookup() {
        assert_eq!(rule_by_name("CASEIGNOREMATCH").unwrap().oid, "2.5.13.2");
        assert_eq!(
            rule_by_name("1.2.840.113556.1.4.803").unwrap().kind,
            MatchKind::BitAnd
        );
        assert!(rule_by_name("nope").is_none());
    }
}
