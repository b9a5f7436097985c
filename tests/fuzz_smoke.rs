//! Stable smoke run of the fuzz targets: each target body in `fuzz/bodies/` (the same code the
//! libFuzzer targets in `fuzz/fuzz_targets/` call) runs over the fixtures in `tests/fixtures`
//! and hand-made seeds, then over deterministic mutations of them (a fixed-seed PRNG, so a
//! failure reproduces). A panic anywhere is a test failure; the failing input is printed.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../fuzz/bodies/config_load.rs"]
mod config_load;
#[path = "../fuzz/bodies/dc_locator.rs"]
mod dc_locator;
#[path = "../fuzz/bodies/dn_parse.rs"]
mod dn_parse;
#[path = "../fuzz/bodies/filter_text.rs"]
mod filter_text;
#[path = "../fuzz/bodies/kdc_decode.rs"]
mod kdc_decode;
#[path = "../fuzz/bodies/kdc_handle.rs"]
mod kdc_handle;
#[path = "../fuzz/bodies/ldap_decode.rs"]
mod ldap_decode;
#[path = "../fuzz/bodies/ldap_dispatch.rs"]
mod ldap_dispatch;
#[path = "../fuzz/bodies/ldif_parse.rs"]
mod ldif_parse;
#[path = "../fuzz/bodies/pac_decode.rs"]
mod pac_decode;
#[path = "../fuzz/bodies/radius_reply.rs"]
mod radius_reply;
#[path = "../fuzz/bodies/sasl_token.rs"]
mod sasl_token;

use std::path::Path;
use std::time::{Duration, SystemTime};

use dird::ldap::controls::{
    BerValue, PagedResults, PasswdModifyRequest, PasswordPolicyResponse, SortKey, SortRequest,
};

/// Mutated inputs per target.
const MUTATIONS: usize = 20_000;

/// SplitMix64: small, fast, and the same sequence everywhere.
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
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to BER, LDIF and filter syntax.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x02, 0x04, 0x0a, 0x30, 0x31, 0x60, 0x63, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x85, 0xa0,
    0xa2, 0xa3, 0xff, b'(', b')', b'*', b'\\', b'=', b'&', b'|', b'!', b':', b'\n', b'\r', b' ',
    b'-', b'<', b'>', b'~',
];

/// One to four stacked mutations of `input` (with `others` for splicing).
fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                out.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                out.drain(a..b);
            }
            4 if len > 0 => {
                out.truncate(rng.below(len));
            }
            5 if len > 0 => {
                // Duplicate a range (nesting and repeated elements).
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let chunk = out[a..b].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, chunk);
            }
            6 if !others.is_empty() => {
                // Splice: our prefix + another seed's suffix.
                let other = &others[rng.below(others.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => {
                // Nudge a byte that may be a length: off by one either way.
                let i = rng.below(len);
                out[i] = if rng.below(2) == 0 {
                    out[i].wrapping_add(1)
                } else {
                    out[i].wrapping_sub(1)
                };
            }
            _ => {
                let i = rng.below(len + 1);
                out.insert(i, rng.next() as u8);
            }
        }
    }
    out
}

/// Runs `body` on every seed, then on `MUTATIONS` mutations; reports the input that panicked.
fn smoke(name: &str, seed: u64, seeds: &[Vec<u8>], body: fn(&[u8])) {
    smoke_n(name, seed, seeds, body, MUTATIONS);
}

/// `smoke` with `mutations` mutated inputs (for the slower, stateful targets).
fn smoke_n(name: &str, seed: u64, seeds: &[Vec<u8>], body: fn(&[u8]), mutations: usize) {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let run = |input: &[u8], what: &str| {
        if let Err(panic) = std::panic::catch_unwind(|| body(input)) {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{name}: panic on {what} {input:02x?}: {msg}");
        }
    };
    for s in seeds {
        run(s, "seed");
    }
    let mut rng = Rng(seed);
    for i in 0..mutations {
        let base = &seeds[i % seeds.len()];
        let input = mutate(&mut rng, base, seeds);
        run(&input, &format!("mutation {i}"));
    }
}

fn fixtures(dir: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin" || x == "ldif"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

#[test]
fn ldap_decode_survives_fixtures_and_mutations() {
    let mut seeds = fixtures("pdu");
    // Several PDUs back to back (the framer's stream path).
    seeds.push(seeds.concat());
    // Control and extended-operation values on their own.
    seeds.push(PagedResults::new(5, vec![0, 0, 0, 5]).to_ber().unwrap());
    seeds.push(
        PasswdModifyRequest {
            user_identity: Some(b"uid=alice,dc=example,dc=com".to_vec().into()),
            old_passwd: Some(b"old".to_vec().into()),
            new_passwd: Some(b"new".to_vec().into()),
        }
        .to_ber()
        .unwrap(),
    );
    seeds.push(
        SortRequest(vec![SortKey {
            attribute_type: "cn".into(),
            ordering_rule: Some("caseIgnoreOrderingMatch".into()),
            reverse_order: true,
        }])
        .to_ber()
        .unwrap(),
    );
    seeds.push(PasswordPolicyResponse::default().to_ber().unwrap());
    // Hostile shapes: unknown bind choice, unknown op, indefinite length, huge length claim.
    seeds.push(vec![
        0x30, 0x0c, 0x02, 0x01, 0x09, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x89, 0x00,
    ]);
    seeds.push(vec![0x30, 0x07, 0x02, 0x01, 0x07, 0x7e, 0x02, 0x04, 0x00]);
    seeds.push(vec![0x30, 0x80, 0x02, 0x01, 0x01, 0x42, 0x00, 0x00, 0x00]);
    seeds.push(vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]);
    smoke("ldap_decode", 0x1da9_0001, &seeds, ldap_decode::run);
}

#[test]
fn filter_text_survives_fixtures_and_mutations() {
    let texts = [
        "(objectClass=*)",
        "(&(objectClass=user)(|(sAMAccountName=alice)(userPrincipalName=alice@example.com)))",
        "(!(userAccountControl:1.2.840.113556.1.4.803:=2))",
        "(memberOf:1.2.840.113556.1.4.1941:=cn=devs,ou=People,dc=example,dc=com)",
        "(objectGUID=\\ff\\fe\\00\\01)",
        "(cn=Al*ce*Li*l)",
        "(cn=*)",
        "(mail=*@example.com)",
        "(uid>=a)",
        "(uid<=b)",
        "(cn~=alice)",
        "(cn:caseExactMatch:=Alice)",
        "(:dn:2.5.13.5:=people)",
        "(cn:dn:=x)",
        "(&)",
        "(|)",
        "cn=bare",
        "( & (a=b) (c=d) )",
        "(cn=\\28paren\\29 \\2a star \\5c backslash)",
        "(description=caf\\c3\\a9)",
        "(&(&(&(&(&(&(&(&(a=b)))))))))",
    ];
    let seeds: Vec<Vec<u8>> = texts.iter().map(|t| t.as_bytes().to_vec()).collect();
    smoke("filter_text", 0x1da9_0002, &seeds, filter_text::run);
}

#[test]
fn ldif_parse_survives_fixtures_and_mutations() {
    // The body's first byte picks the reader's buffer size: give each fixture a few.
    let mut seeds = Vec::new();
    for f in fixtures("ldif") {
        for cap in [0u8, 7, 63] {
            let mut s = vec![cap];
            s.extend_from_slice(&f);
            seeds.push(s);
        }
    }
    // The committed corpus holds the reproducers of crashes fuzzing found (regressions).
    seeds.extend(corpus("ldif_parse"));
    smoke("ldif_parse", 0x1da9_0003, &seeds, ldif_parse::run);
}

#[test]
fn dc_locator_survives_seeds_and_mutations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/dc_locator");
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for name in ["cldap-ping.bin", "dns-srv.bin"] {
        seeds.push(std::fs::read(dir.join(name)).unwrap());
    }
    smoke("dc_locator", 0x1da9_0010, &seeds, dc_locator::run);
}

#[test]
fn kdc_decode_survives_seeds_and_mutations() {
    let mut seeds = vec![as_req_seed()];
    // As a TCP record (4-byte length prefix) and as a kpasswd frame around it.
    let req = as_req_seed();
    let mut tcp = (req.len() as u32).to_be_bytes().to_vec();
    tcp.extend_from_slice(&req);
    seeds.push(tcp);
    let mut kpasswd = Vec::new();
    let total = 6 + req.len() + req.len();
    kpasswd.extend_from_slice(&(total as u16).to_be_bytes());
    kpasswd.extend_from_slice(&0xff80u16.to_be_bytes());
    kpasswd.extend_from_slice(&(req.len() as u16).to_be_bytes());
    kpasswd.extend_from_slice(&req);
    kpasswd.extend_from_slice(&req);
    seeds.push(kpasswd);
    smoke("kdc_decode", 0x1da9_0004, &seeds, kdc_decode::run);
}

/// A DER AS-REQ for alice@EXAMPLE.COM, built with rasn-kerberos.
fn as_req_seed() -> Vec<u8> {
    use dird::kdc::codec;
    use dird::model::principal::PrincipalName;
    use rasn_kerberos::{AsReq, KdcOptions, KdcReq, KdcReqBody};
    let name = |t: &str| codec::wire_name(&PrincipalName::parse(t).unwrap());
    let till = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let req = AsReq(KdcReq {
        pvno: 5.into(),
        msg_type: 10.into(),
        padata: None,
        req_body: KdcReqBody {
            kdc_options: KdcOptions(codec::flags_to_bits(0x4000_0000)),
            cname: Some(name("alice")),
            realm: codec::kerberos_string("EXAMPLE.COM").unwrap(),
            sname: Some(name("krbtgt/EXAMPLE.COM")),
            from: None,
            till: codec::kerberos_time(till),
            rtime: None,
            nonce: 42,
            etype: vec![18, 17],
            addresses: None,
            enc_authorization_data: None,
            additional_tickets: None,
        },
    });
    rasn::der::encode(&req).unwrap()
}

#[test]
fn pac_decode_survives_seeds_and_mutations() {
    let seeds: Vec<Vec<u8>> = corpus("pac_decode");
    smoke("pac_decode", 0x1da9_0a10, &seeds, pac_decode::run);
}

#[test]
fn dn_parse_survives_seeds_and_mutations() {
    let seeds: Vec<Vec<u8>> = corpus("dn_parse");
    smoke("dn_parse", 0x1da9_0005, &seeds, dn_parse::run);
}

#[test]
fn config_load_survives_seeds_and_mutations() {
    let seeds: Vec<Vec<u8>> = corpus("config_load");
    smoke("config_load", 0x1da9_0006, &seeds, config_load::run);
}

#[test]
fn kdc_handle_survives_seeds_and_mutations() {
    let mut seeds = corpus("kdc_handle");
    seeds.push(as_req_seed());
    smoke_n("kdc_handle", 0x1da9_0007, &seeds, kdc_handle::run, 5_000);
}

#[test]
fn ldap_dispatch_survives_fixtures_and_mutations() {
    let mut seeds = fixtures("pdu");
    seeds.push(seeds.concat());
    smoke_n(
        "ldap_dispatch",
        0x1da9_0008,
        &seeds,
        ldap_dispatch::run,
        3_000,
    );
}

#[test]
fn radius_reply_survives_seeds_and_mutations() {
    let seeds: Vec<Vec<u8>> = corpus("radius_reply");
    smoke("radius_reply", 0x1da9_0009, &seeds, radius_reply::run);
}

#[test]
fn sasl_token_survives_seeds_and_mutations() {
    let seeds: Vec<Vec<u8>> = corpus("sasl_token");
    smoke("sasl_token", 0x1da9_0011, &seeds, sasl_token::run);
}

/// The committed seed corpus of a fuzz target (`fuzz/corpus/<target>/`).
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}
