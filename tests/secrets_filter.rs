#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 9 item 1: no secret ever takes part in a filter or a compare. A bound user probes
//! userPassword, dirdPasswordHistory, dirdKerberosKeys and unicodePwd by name, alias case,
//! option and OID, with every filter type (presence, equality, substrings, ordering, approx,
//! extensible with and without an attribute type, dnAttributes, NOT), through the real
//! `ldapsearch` and `ldapcompare`; none may select an entry. Positive controls prove the
//! secrets are there and that the same filter shapes work on ordinary attributes.

mod common;

use common::*;

const VICTIM_DN: &str = "cn=victim,ou=People,dc=example,dc=com";
const VICTIM2_DN: &str = "cn=victim2,ou=People,dc=example,dc=com";
const VICTIM_PW: &str = "victim-Passw0rd";

/// `\xx` for every byte: an RFC 4515 assertion value that carries any octets.
fn esc(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A KDC-enabled server with the seed, password history on, a victim whose userPassword
/// (and so its history) is a known argon2 string, bob with Kerberos keys and a history from
/// an admin reset, and a second victim given a unicodePwd in AD form.
fn setup() -> (TestServer, String, Vec<u8>) {
    let s = TestServer::start_kdc();
    s.seed(SEED);
    let out = s.modify_as_admin(
        &s.ldap_url(),
        &format!(
            "dn: {BASE}\nchangetype: modify\nreplace: pwdHistoryLength\npwdHistoryLength: 5\n"
        ),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    // An admin may store an already hashed {ARGON2} value: the stored secret is then known.
    let hash = dird::directory::password::hash_blocking(VICTIM_PW.as_bytes()).unwrap();
    s.seed(&format!(
        "dn: {VICTIM_DN}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n\
         objectClass: inetOrgPerson\ncn: victim\nsn: Victim\nuid: victim\nuserPassword: {hash}\n\n\
         dn: {VICTIM2_DN}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n\
         objectClass: user\ncn: victim2\nsn: Victim2\nsAMAccountName: victim2\n\
         userPassword: victim2-Passw0rd\n"
    ));
    // bob's password reset by the admin: new Kerberos keys and a history value.
    let out = s.tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &s.ldaps_url(),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            "-s",
            "bob-Passw0rd-2",
            BOB_DN,
        ],
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    // AD form (MS-ADTS 3.1.1.3.1.5): the quoted password in UTF-16LE, over TLS.
    let unicode: Vec<u8> = "\"victim2-Passw0rd-3\""
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let out = s.modify_as_admin(
        &s.ldaps_url(),
        &format!(
            "dn: {VICTIM2_DN}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
            base64(&unicode)
        ),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    (s, hash, unicode)
}

/// DNs selected by `filter` under ou=People as `who`; the search itself must succeed.
fn probe(s: &TestServer, who: (&str, &str), filter: &str) -> Vec<String> {
    let url = s.ldap_url();
    let out = s.ldapsearch(&[
        "-H", &url, "-D", who.0, "-w", who.1, "-b", PEOPLE, filter, "1.1",
    ]);
    assert_eq!(rc(&out), 0, "{filter}: {}", text(&out));
    dns(&out)
}

/// Runs every filter as `who` in one `ldapsearch -f` (one search per line, one bind; the
/// pattern `(&%s)` wraps each in an And of one, which evaluates exactly as the filter itself)
/// and returns `(filter, selected DNs)` for each; every search must end with success.
fn probe_all(s: &TestServer, who: (&str, &str), filters: &[String]) -> Vec<(String, Vec<String>)> {
    let file = s.dir.path().join("filters.txt");
    std::fs::write(&file, filters.join("\n") + "\n").unwrap();
    let url = s.ldap_url();
    let out = s.tool(
        "ldapsearch",
        &[
            "-x",
            "-c",
            "-o",
            "ldif_wrap=no",
            "-o",
            "nettimeout=10",
            "-H",
            &url,
            "-D",
            who.0,
            "-w",
            who.1,
            "-b",
            PEOPLE,
            "-f",
            file.to_str().unwrap(),
            "(&%s)",
            "1.1",
        ],
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let mut results: Vec<(String, Vec<String>)> = Vec::new();
    let mut successes = 0;
    for line in stdout(&out).lines() {
        if let Some(f) = line.strip_prefix("# filter: ") {
            results.push((f.to_string(), Vec::new()));
        } else if let Some(dn) = line.strip_prefix("dn: ") {
            results
                .last_mut()
                .expect("a filter header first")
                .1
                .push(dn.to_string());
        } else if line == "result: 0 Success" {
            successes += 1;
        }
    }
    assert_eq!(results.len(), filters.len(), "{}", text(&out));
    assert_eq!(
        successes,
        filters.len(),
        "every probe succeeds: {}",
        text(&out)
    );
    results
}

/// Every filter shape on every name of every secret attribute.
fn secret_probes(hash: &str, unicode: &[u8]) -> Vec<String> {
    let oid_arc = "2.25.248671599192139908232477066988550965366";
    let designators: Vec<String> = vec![
        "userPassword".into(),
        "USERPASSWORD".into(),
        "userpassword".into(),
        "2.5.4.35".into(),
        "userPassword;binary".into(),
        "dirdPasswordHistory".into(),
        format!("{oid_arc}.1.6"),
        "dirdKerberosKeys".into(),
        format!("{oid_arc}.1.1"),
        "dirdPasswordHash".into(),
        format!("{oid_arc}.1.2"),
        "unicodePwd".into(),
        "1.2.840.113556.1.4.90".into(),
    ];
    let h = esc(hash.as_bytes());
    let u = esc(unicode);
    let mut filters = Vec::new();
    for d in &designators {
        for item in [
            format!("{d}=*"),
            format!("{d}=\\7b*"),
            format!("{d}=*argon2*"),
            format!("{d}>=\\00"),
            format!("{d}>=\\7b"),
            format!("{d}<=\\7e"),
            format!("{d}<=\\ff"),
            format!("{d}~={h}"),
            format!("{d}={h}"),
            format!("{d}={u}"),
            format!("{d}:={h}"),
            format!("{d}:2.5.13.18:=\\ff"),
            format!("{d}:2.5.13.18:=\\7b\\41\\52\\47\\4f\\4e\\32\\7d"),
            format!("{d}:octetStringOrderingMatch:=\\ff"),
            format!("{d}:2.5.13.17:={h}"),
            format!("{d}:octetStringMatch:={u}"),
            format!("{d}:caseExactMatch:={h}"),
            format!("{d}:caseIgnoreMatch:={h}"),
            format!("{d}:caseExactOrderingMatch:=\\7e"),
            format!("{d}:2.5.13.6:=\\7e"),
            format!("{d}:caseIgnoreOrderingMatch:=\\7e"),
            format!("{d}:dn:2.5.13.18:=\\ff"),
        ] {
            filters.push(format!("({item})"));
            // NOT of an Undefined item is Undefined (RFC 4511 §4.5.1.7): absence is not
            // revealed either.
            filters.push(format!("(!({item}))"));
            filters.push(format!("(|({item})(cn=nobody))"));
        }
    }
    // Extensible match without an attribute type must skip secret values.
    for rule in [
        "2.5.13.17",
        "octetStringMatch",
        "caseExactMatch",
        "caseIgnoreMatch",
    ] {
        filters.push(format!("(:{rule}:={h})"));
        filters.push(format!("(:dn:{rule}:={h})"));
        filters.push(format!("(:{rule}:={u})"));
    }
    filters
}

#[test]
fn no_secret_takes_part_in_a_filter_for_a_user_or_an_admin() {
    let (s, hash, unicode) = setup();
    let alice = (ALICE_DN, ALICE_PW);
    let admin = (ADMIN_DN, ADMIN_PW);

    // Positive controls: the victims exist, the stored hash is the known one (it binds),
    // and the same filter shapes select entries on ordinary attributes.
    let out = s.whoami(&["-H", &s.ldap_url(), "-D", VICTIM_DN, "-w", VICTIM_PW]);
    assert_eq!(
        rc(&out),
        0,
        "the victim's hash is the known one: {}",
        text(&out)
    );
    for (filter, want) in [
        ("(sn=*)", VICTIM_DN),
        ("(sn=victim)", VICTIM_DN),
        ("(sn=vic*)", VICTIM_DN),
        ("(2.5.4.4=victim)", VICTIM_DN),
        ("(sn:caseExactMatch:=Victim)", VICTIM_DN),
        ("(sn:2.5.13.5:=Victim)", VICTIM_DN),
        ("(:caseExactMatch:=Victim)", VICTIM_DN),
        ("(!(sn=Nobody))", VICTIM_DN),
        ("(sn=*)", BOB_DN),
        ("(sn=*)", VICTIM2_DN),
    ] {
        let got = probe(&s, alice, filter);
        assert!(
            got.iter().any(|d| d.eq_ignore_ascii_case(want)),
            "control {filter} must select {want}: {got:?}"
        );
    }

    let mut leaks = Vec::new();
    let probes = secret_probes(&hash, &unicode);
    for who in [alice, admin] {
        for (filter, got) in probe_all(&s, who, &probes) {
            if !got.is_empty() {
                leaks.push(format!("{} {filter} -> {got:?}", who.0));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} filters on secrets selected entries:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

#[test]
fn compare_on_a_secret_is_refused_by_any_name() {
    let (s, hash, _) = setup();
    let url = s.ldap_url();
    let compare = |who: (&str, &str), dn: &str, ava: &str| {
        s.tool(
            "ldapcompare",
            &["-x", "-H", &url, "-D", who.0, "-w", who.1, dn, ava],
        )
    };
    let alice = (ALICE_DN, ALICE_PW);
    // control: compare works on an ordinary attribute
    let out = compare(alice, VICTIM_DN, "sn:Victim");
    assert_eq!(rc(&out), 6, "{}", text(&out));
    let oid_arc = "2.25.248671599192139908232477066988550965366";
    for who in [alice, (ADMIN_DN, ADMIN_PW)] {
        for attr in [
            "userPassword".to_string(),
            "userpassword".into(),
            "USERPASSWORD;binary".into(),
            "2.5.4.35".into(),
            "dirdPasswordHistory".into(),
            format!("{oid_arc}.1.6"),
            format!("{oid_arc}.1.1"),
            "1.2.840.113556.1.4.90".into(),
        ] {
            for value in [hash.as_str(), VICTIM_PW] {
                let out = compare(who, VICTIM_DN, &format!("{attr}:{value}"));
                assert_eq!(
                    rc(&out),
                    50,
                    "{} comparing {attr} must get insufficientAccessRights: {}",
                    who.0,
                    text(&out)
                );
            }
        }
    }
}
