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
mod tests {
    use std::io::{self, BufReader, Read};

    use super::*;
    use crate::model::dn::{Ava, Rdn};
    use crate::model::entry::ModOp;

    const CONTENT: &str = include_str!("../../tests/fixtures/ldif/content.ldif");
    const CONTENT_CRLF: &str = include_str!("../../tests/fixtures/ldif/content-crlf.ldif");
    const CHANGES: &str = include_str!("../../tests/fixtures/ldif/changes.ldif");

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    /// Write → read must give back exactly the records (and the same DN strings).
    fn assert_round_trip(records: &[LdifRecord]) {
        let text = to_string(records);
        let back = parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, records, "\n{text}");
        for (a, b) in back.iter().zip(records) {
            assert_eq!(a.dn().to_string(), b.dn().to_string());
        }
        assert_eq!(to_string(&back), text, "writing is deterministic");
    }

    #[test]
    fn round_trips_every_record_kind() {
        let mut content = Entry::new(dn("cn=Alice,ou=People,dc=example,dc=com"));
        content.set_str("objectClass", "person");
        content.push("objectClass", b"top".to_vec());
        content.set_str("cn", "Alice");
        content.set_str("description", "colon: fine, <lt> too, trailing sp ");
        let mut add = Entry::new(dn("cn=Bob,dc=example,dc=com"));
        add.set_str("cn", "Bob");
        add.set(
            "objectGUID",
            vec![vec![
                0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 0xff, 0xee, 0x0a, 0x0d, 0x20, 0x3a, 0x3c, 0,
            ]],
        );
        add.set("userCertificate;binary", vec![vec![0x30, 0x82, 0x01, 0x01]]);
        let modify = LdifRecord::Modify {
            dn: dn("cn=Bob,dc=example,dc=com"),
            mods: vec![
                Modification {
                    op: ModOp::Add,
                    attr: "mail".into(),
                    values: vec![b"b@x".to_vec(), b"c@x".to_vec()],
                },
                Modification {
                    op: ModOp::Delete,
                    attr: "fax".into(),
                    values: vec![],
                },
                Modification {
                    op: ModOp::Delete,
                    attr: "mail".into(),
                    values: vec![b"old@x".to_vec()],
                },
                Modification {
                    op: ModOp::Replace,
                    attr: "jpegPhoto".into(),
                    values: vec![vec![0xff; 300]],
                },
                Modification {
                    op: ModOp::Replace,
                    attr: "seeAlso".into(),
                    values: vec![],
                },
                Modification {
                    op: ModOp::Increment,
                    attr: "uidNumber".into(),
                    values: vec![b"-5".to_vec()],
                },
            ],
        };
        let records = vec![
            LdifRecord::Content(content),
            LdifRecord::Add(add),
            modify,
            LdifRecord::Delete(dn("cn=Gone,dc=example,dc=com")),
            LdifRecord::ModDn {
                dn: dn("cn=Bob,dc=example,dc=com"),
                new_rdn: "cn=Robert Smith+uid=rs".into(),
                delete_old_rdn: true,
                new_superior: Some(dn("ou=Staff,dc=example,dc=com")),
            },
            LdifRecord::ModDn {
                dn: dn("cn=Carol,dc=example,dc=com"),
                new_rdn: "cn=Caroline".into(),
                delete_old_rdn: false,
                new_superior: None,
            },
        ];
        assert_round_trip(&records);
    }

    #[test]
    fn fixture_content() {
        let recs = parse_str(CONTENT).unwrap();
        assert_eq!(recs.len(), 4);
        let entries: Vec<&Entry> = recs
            .iter()
            .map(|r| match r {
                LdifRecord::Content(e) => e,
                r => panic!("{r:?}"),
            })
            .collect();
        assert_eq!(entries[1].first_str("description"), Some("A long description that is folded over more than one physical line, as RFC 2849 allows."));
        let alice = entries[2];
        assert_eq!(alice.values("objectGUID")[0].len(), 16);
        assert_eq!(alice.values("objectguid")[0][..4], [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(
            alice.values("userCertificate;binary")[0],
            [0x30, 0x82, 1, 1]
        );
        assert_eq!(alice.first_str("description"), Some(" leading space"));
        assert_eq!(
            entries[3].dn.to_string(),
            "cn=Åsa Ström,ou=People,dc=example,dc=com"
        );
        assert_eq!(entries[3].first_str("cn"), Some("Åsa Ström"));
        assert_eq!(parse_str(CONTENT_CRLF).unwrap(), recs);
        assert_round_trip(&recs);
    }

    #[test]
    fn fixture_changes() {
        let recs = parse_str(CHANGES).unwrap();
        let kinds: Vec<&str> = recs
            .iter()
            .map(|r| match r {
                LdifRecord::Content(_) => "content",
                LdifRecord::Add(_) => "add",
                LdifRecord::Delete(_) => "delete",
                LdifRecord::Modify { .. } => "modify",
                LdifRecord::ModDn { .. } => "moddn",
            })
            .collect();
        assert_eq!(kinds, ["add", "modify", "moddn", "moddn", "delete"]);
        match &recs[1] {
            LdifRecord::Modify { mods, .. } => {
                assert_eq!(mods.len(), 6);
                assert_eq!(mods[2].values, [b"+1 555 0100".to_vec()]);
                assert!(mods[4].values.is_empty());
                assert_eq!(mods[5].op, ModOp::Increment);
            }
            r => panic!("{r:?}"),
        }
        match &recs[2] {
            LdifRecord::ModDn {
                new_superior,
                delete_old_rdn,
                ..
            } => {
                assert!(delete_old_rdn);
                assert_eq!(
                    new_superior.as_ref().map(|d| d.to_string()).as_deref(),
                    Some("ou=Staff,dc=example,dc=com")
                );
            }
            r => panic!("{r:?}"),
        }
        assert_round_trip(&recs);
    }

    #[test]
    fn tiny_read_buffers_give_the_same_records() {
        for text in [CONTENT, CONTENT_CRLF, CHANGES] {
            let whole = parse_str(text).unwrap();
            for capacity in 1..=9 {
                let r = BufReader::with_capacity(capacity, text.as_bytes());
                let pieces: Result<Vec<_>, _> = LdifReader::new(r).collect();
                assert_eq!(pieces.unwrap(), whole, "capacity {capacity}");
            }
        }
    }

    /// SplitMix64: a small deterministic generator, enough for property-style tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
        fn bytes(&mut self, max: usize) -> Vec<u8> {
            let n = self.below(max + 1);
            match self.below(3) {
                // arbitrary bytes
                0 => (0..n).map(|_| self.next() as u8).collect(),
                // printable ASCII with the awkward characters
                1 => (0..n).map(|_| *self.pick(b"aZ09 :<#-,=+\\\"~")).collect(),
                // UTF-8 text
                _ => {
                    let chars = ['a', 'é', 'Ω', '中', ' ', ':', '😀', '\t'];
                    (0..n)
                        .map(|_| *self.pick(&chars))
                        .collect::<String>()
                        .into_bytes()
                }
            }
        }
        fn name(&mut self) -> String {
            let base = self.pick(&[
                "cn",
                "sn",
                "mail",
                "objectGUID",
                "description",
                "x-Custom-9",
                "2.5.4.3",
            ]);
            match self.below(4) {
                0 => format!("{base};binary"),
                1 => format!("{base};lang-en;x-a"),
                _ => base.to_string(),
            }
        }
        fn dn(&mut self) -> Dn {
            let depth = 1 + self.below(4);
            let rdns = (0..depth)
                .map(|_| {
                    let len = 1 + self.below(12);
                    // Leading/trailing spaces and control characters are left out: they are
                    // a matter for `Dn` (RFC 4514), not for LDIF.
                    let mut value: String = (0..len)
                        .map(|_| {
                            *self.pick(&[
                                'a', 'B', '7', ',', '+', '"', '\\', '<', '>', ';', '=', '#', ' ',
                                'é', '中',
                            ])
                        })
                        .collect();
                    value = value.trim().to_string();
                    if value.is_empty() {
                        value.push('v');
                    }
                    let attr = self.pick(&["cn", "ou", "dc", "uid"]).to_string();
                    let mut avas = vec![Ava { attr, value }];
                    if self.below(5) == 0 {
                        avas.push(Ava {
                            attr: "sn".into(),
                            value: "multi".into(),
                        });
                    }
                    Rdn { avas }
                })
                .collect();
            Dn::from_rdns(rdns)
        }
        fn entry(&mut self) -> Entry {
            let mut e = Entry::new(self.dn());
            for _ in 0..1 + self.below(6) {
                let name = self.name();
                for _ in 0..1 + self.below(3) {
                    let max = if self.below(10) == 0 { 400 } else { 30 };
                    let v = self.bytes(max);
                    e.push(&name, v);
                }
            }
            e
        }
        fn record(&mut self) -> LdifRecord {
            match self.below(5) {
                0 => LdifRecord::Content(self.entry()),
                1 => LdifRecord::Add(self.entry()),
                2 => LdifRecord::Delete(self.dn()),
                3 => {
                    let mods = (0..self.below(5))
                        .map(|_| {
                            let op = *self.pick(&[
                                ModOp::Add,
                                ModOp::Delete,
                                ModOp::Replace,
                                ModOp::Increment,
                            ]);
                            let values = if op == ModOp::Increment {
                                vec![format!("{}", self.next() as i32).into_bytes()]
                            } else {
                                (0..self.below(3)).map(|_| self.bytes(20)).collect()
                            };
                            Modification {
                                op,
                                attr: self.name(),
                                values,
                            }
                        })
                        .collect();
                    LdifRecord::Modify {
                        dn: self.dn(),
                        mods,
                    }
                }
                _ => {
                    let parent = self.dn();
                    LdifRecord::ModDn {
                        dn: self.dn(),
                        new_rdn: parent.rdn().map(|r| r.to_string()).unwrap_or_default(),
                        delete_old_rdn: self.below(2) == 0,
                        new_superior: if self.below(2) == 0 {
                            Some(self.dn())
                        } else {
                            None
                        },
                    }
                }
            }
        }
    }

    #[test]
    fn random_records_round_trip() {
        let mut rng = Rng(0x1d1f_2849);
        for _ in 0..50 {
            let records: Vec<LdifRecord> = (0..20).map(|_| rng.record()).collect();
            assert_round_trip(&records);
        }
    }

    #[test]
    fn mutated_input_never_panics_and_what_parses_round_trips() {
        let mut rng = Rng(7);
        let seeds = [
            CONTENT.as_bytes(),
            CHANGES.as_bytes(),
            CONTENT_CRLF.as_bytes(),
        ];
        let (mut parsed, mut rejected) = (0, 0);
        for i in 0..1500 {
            let mut input = seeds[i % seeds.len()].to_vec();
            for _ in 0..1 + rng.below(8) {
                let pos = rng.below(input.len());
                match rng.below(4) {
                    0 => input[pos] = rng.next() as u8,
                    1 => input[pos] = *rng.pick(b"\n \r:<#-=,"),
                    2 => {
                        input.remove(pos);
                    }
                    _ => input.insert(pos, *rng.pick(b"\n :")),
                }
            }
            for item in LdifReader::new(&input[..]) {
                match item {
                    Ok(record) => {
                        parsed += 1;
                        assert_round_trip(std::slice::from_ref(&record));
                    }
                    Err(_) => rejected += 1,
                }
            }
        }
        assert!(
            parsed > 1000 && rejected > 500,
            "{parsed} parsed, {rejected} rejected"
        );
    }

    /// Generates `n` small records on the fly, so nothing but the reader holds them.
    struct Generator {
        next: usize,
        n: usize,
        pending: Vec<u8>,
        at: usize,
    }

    impl Read for Generator {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.pending.len() {
                if self.next == self.n {
                    return Ok(0);
                }
                let i = self.next;
                self.next += 1;
                self.pending = format!(
                    "dn: uid=user{i},ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\n\
                     uid: user{i}\ncn: User {i}\nobjectGUID:: AAECAwQFBgcICQoLDA0ODw==\n\n"
                )
                .into_bytes();
                self.at = 0;
            }
            let k = buf.len().min(self.pending.len() - self.at);
            buf[..k].copy_from_slice(&self.pending[self.at..self.at + k]);
            self.at += k;
            Ok(k)
        }
    }

    #[test]
    fn streams_two_hundred_thousand_records() {
        let n = 200_000;
        let mut reader = LdifReader::new(BufReader::new(Generator {
            next: 0,
            n,
            pending: Vec::new(),
            at: 0,
        }));
        let mut count = 0;
        let mut last_uid = String::new();
        for record in reader.by_ref() {
            match record {
                Ok(LdifRecord::Content(e)) => {
                    count += 1;
                    if count == n {
                        last_uid = e.first_str("uid").unwrap_or_default().to_string();
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(count, n);
        assert_eq!(last_uid, format!("user{}", n - 1));
        assert_eq!(reader.line(), n * 6);
        assert!(reader.bytes_read() > 100 * n as u64);
    }

    #[test]
    fn attribute_descriptions() {
        for ok in [
            "cn",
            "userCertificate;binary",
            "x-a-9;lang-en;x",
            "2.5.4.3",
            "c",
        ] {
            assert!(valid_attr_desc(ok), "{ok}");
        }
        for bad in [
            "", "9cn", "c n", "cn;", ";x", "1..2", "näme", "cn_x", "2.5.a",
        ] {
            assert!(!valid_attr_desc(bad), "{bad}");
        }
    }
}
