#![allow(clippy::unwrap_used, clippy::expect_used)]
//! No password in any log or audit line (issue 15 §5). A representative workload runs with
//! `DIRD_LOG=trace` (every crate, so debug included) and the audit stream both in a file and as tracing events:
//! LDAP adds with a password, right and wrong simple binds, Password Modify, a `unicodePwd`
//! self-change and a `userPassword` admin reset, a change refused by the password history,
//! `kinit` right and wrong, `kpasswd` right and with a wrong old password. Then every line
//! the daemon wrote is searched for every password used, as typed, in base64, in hex and as
//! AD's quoted UTF-16LE `unicodePwd` value: none may appear.
//!
//! The same for one-time codes (issue 15 §5): with `[mfa]` and a real FreeRADIUS (rlm_totp,
//! codes from `oathtool`), LDAP binds with password + code (right, wrong, replayed, missing)
//! and `kinit -T` (OTP inside FAST) with right, wrong and replayed codes; every code used
//! must appear in no log or audit line as typed (as a number of its own: six-digit runs
//! inside timestamps are masked first), in base64 or in hex, nor may the RADIUS shared secret.

mod common;

use base64::Engine as _;
use common::radius::{fresh_code, wrong_code, FreeRadius, SECRET, TOTP_KEY};
use common::*;

const ADDED_PW: &str = "Zq-Added-9x";
const WRONG_BIND_PW: &str = "Zq-Wrong-Bind-5x";
const LDAPPASSWD_PW: &str = "Zq-Ldappasswd-1x";
const UNICODE_PW: &str = "Zq-UnicodePwd-2x";
const RESET_PW: &str = "Zq-Reset-3x";
const WRONG_KINIT_PW: &str = "Zq-Wrong-Kinit-6x";
const KPASSWD_PW: &str = "Zq-Kpasswd-4x";
const WRONG_OLD_PW: &str = "Zq-Wrong-Old-7x";

const ALL: [&str; 11] = [
    ADMIN_PW,
    ALICE_PW,
    BOB_PW,
    ADDED_PW,
    WRONG_BIND_PW,
    LDAPPASSWD_PW,
    UNICODE_PW,
    RESET_PW,
    WRONG_KINIT_PW,
    KPASSWD_PW,
    WRONG_OLD_PW,
];

fn unicode_pwd(pw: &str) -> Vec<u8> {
    format!("\"{pw}\"")
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bind_ok(s: &TestServer, dn: &str, pw: &str) -> bool {
    rc(&s.whoami(&["-H", &s.ldaps_url(), "-D", dn, "-w", pw])) == 0
}

fn modify_as(s: &TestServer, dn: &str, pw: &str, ldif: &str) -> std::process::Output {
    s.tool_stdin(
        "ldapmodify",
        &[
            "-x",
            "-H",
            &s.ldaps_url(),
            "-D",
            dn,
            "-w",
            pw,
            "-o",
            "nettimeout=20",
        ],
        Some(ldif),
    )
}

#[test]
fn no_password_reaches_the_log_or_the_audit_stream() {
    let mut s =
        TestServer::configured_kdc("[audit]\npath = \"{dir}/audit.jsonl\"\ntracing = true\n");
    let log = s.dir.path().join("dird.log");
    s.log_to(&log, "trace");
    s.launch();
    s.seed(SEED);
    let out = s.modify_as_admin(
        &s.ldap_url(),
        &format!(
            "dn: {BASE}\nchangetype: modify\nreplace: pwdHistoryLength\npwdHistoryLength: 3\n-\n"
        ),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));

    // An add carrying a password, and binds with right and wrong passwords.
    let dave = format!("cn=dave,{PEOPLE}");
    let out = modify_as(
        &s,
        ADMIN_DN,
        ADMIN_PW,
        &format!(
            "dn: {dave}\nchangetype: add\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\ncn: dave\nsn: Secret\nsAMAccountName: dave\nuserPassword: {ADDED_PW}\n"
        ),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert!(bind_ok(&s, &dave, ADDED_PW));
    assert!(bind_ok(&s, ALICE_DN, ALICE_PW));
    assert!(!bind_ok(&s, ALICE_DN, WRONG_BIND_PW));
    // plain LDAP too (cleartext binds are allowed on loopback)
    let out = s.whoami(&["-H", &s.ldap_url(), "-D", BOB_DN, "-w", BOB_PW]);
    assert_eq!(rc(&out), 0, "{}", text(&out));

    // Password Modify (RFC 3062) by alice over StartTLS.
    let out = s.tool(
        "ldappasswd",
        &[
            "-x",
            "-ZZ",
            "-H",
            &s.ldap_url(),
            "-D",
            ALICE_DN,
            "-w",
            ALICE_PW,
            "-a",
            ALICE_PW,
            "-s",
            LDAPPASSWD_PW,
        ],
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    // unicodePwd self-change (delete old, add new) over LDAPS.
    let out = modify_as(
        &s,
        ALICE_DN,
        LDAPPASSWD_PW,
        &format!(
            "dn: {ALICE_DN}\nchangetype: modify\ndelete: unicodePwd\nunicodePwd:: {}\n-\nadd: unicodePwd\nunicodePwd:: {}\n-\n",
            b64(&unicode_pwd(LDAPPASSWD_PW)),
            b64(&unicode_pwd(UNICODE_PW))
        ),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    // A change back to a password in the history is refused.
    let out = s.tool(
        "ldappasswd",
        &[
            "-x",
            "-ZZ",
            "-H",
            &s.ldap_url(),
            "-D",
            ALICE_DN,
            "-w",
            UNICODE_PW,
            "-a",
            UNICODE_PW,
            "-s",
            LDAPPASSWD_PW,
        ],
    );
    assert_ne!(rc(&out), 0, "history reuse must be refused: {}", text(&out));
    // Admin reset of bob's userPassword; bob binds with it.
    let out = modify_as(
        &s,
        ADMIN_DN,
        ADMIN_PW,
        &format!("dn: {BOB_DN}\nchangetype: modify\nreplace: userPassword\nuserPassword: {RESET_PW}\n-\n"),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert!(bind_ok(&s, BOB_DN, RESET_PW));

    // Kerberos: kinit right and wrong, kpasswd right and with a wrong old password.
    s.krb_ok(
        "krb5.conf",
        "cc.a",
        &["kinit", "alice"],
        &format!("{UNICODE_PW}\n"),
    );
    s.krb_fails(
        "krb5.conf",
        "cc.b",
        &["kinit", "alice"],
        &format!("{WRONG_KINIT_PW}\n"),
        "Password incorrect",
    );
    let out = s.krb_ok(
        "krb5.conf",
        "cc.c",
        &["kpasswd", "alice"],
        &format!("{UNICODE_PW}\n{KPASSWD_PW}\n{KPASSWD_PW}\n"),
    );
    assert!(out.contains("Password changed"), "{out}");
    let out = s.krb(
        "krb5.conf",
        "cc.d",
        &["kpasswd", "bob"],
        &format!("{WRONG_OLD_PW}\n{KPASSWD_PW}\n{KPASSWD_PW}\n"),
    );
    assert!(
        !out.status.success(),
        "kpasswd with a wrong old password: {}",
        text(&out)
    );
    s.krb_ok(
        "krb5.conf",
        "cc.e",
        &["kinit", "alice"],
        &format!("{KPASSWD_PW}\n"),
    );
    assert!(bind_ok(&s, ALICE_DN, KPASSWD_PW));
    s.stop();

    let log_text = std::fs::read(&log).expect("daemon log");
    let audit_text = std::fs::read(s.dir.path().join("audit.jsonl")).expect("audit file");
    let log_s = String::from_utf8_lossy(&log_text);
    let audit_s = String::from_utf8_lossy(&audit_text);
    // The streams really carry the workload (so finding nothing means something).
    assert!(log_s.contains("DEBUG"), "no debug lines in the log");
    let events: std::collections::BTreeSet<String> = audit_s
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["event"].as_str().map(str::to_string))
        .collect();
    for event in [
        "bind",
        "password_change",
        "write",
        "ticket_issued",
        "ticket_refused",
    ] {
        assert!(
            events.contains(event),
            "no {event} event in the audit file: {events:?}"
        );
    }
    assert!(
        log_s.contains("dird::audit") || log_s.contains("audit"),
        "audit events are not in the log (tracing = true)"
    );
    eprintln!(
        "secrets_in_logs: searched {} log lines and {} audit lines",
        log_s.lines().count(),
        audit_s.lines().count()
    );

    let leaks = password_leaks(&ALL, &[("log", &log_s), ("audit", &audit_s)]);
    assert!(
        leaks.is_empty(),
        "passwords in the logs:\n{}",
        leaks.join("\n")
    );
}

/// Every occurrence of `passwords` in `streams` (name, text), as typed, in base64, in hex and
/// as a quoted UTF-16LE `unicodePwd` value (base64 and hex).
fn password_leaks(passwords: &[&str], streams: &[(&str, &str)]) -> Vec<String> {
    let mut leaks = Vec::new();
    for pw in passwords {
        let forms = [
            pw.to_string(),
            b64(pw.as_bytes()),
            hex(pw.as_bytes()),
            b64(&unicode_pwd(pw)),
            hex(&unicode_pwd(pw)),
        ];
        for form in forms {
            for (name, text) in streams {
                if let Some(line) = text.lines().find(|l| l.contains(&form)) {
                    leaks.push(format!("{pw:?} as {form:?} in the {name}: {line}"));
                }
            }
        }
    }
    leaks
}

/// The text with ANSI colour sequences removed and every RFC 3339 timestamp
/// (`2026-12-08T00:40:25.996639Z`) replaced by `<time>`, so that a six-digit code is not
/// "found" in the microseconds of a log line's time.
fn masked(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let b = plain.as_bytes();
    let mut out = String::with_capacity(plain.len());
    let mut i = 0;
    while i < b.len() {
        if let Some(len) = timestamp_at(&b[i..]) {
            out.push_str("<time>");
            i += len;
        } else {
            let ch = plain[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Length of an RFC 3339 timestamp at the start of `b` (`YYYY-MM-DDTHH:MM:SS`, optional
/// fraction, optional `Z`).
fn timestamp_at(b: &[u8]) -> Option<usize> {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < SHAPE.len() {
        return None;
    }
    for (x, s) in b.iter().zip(SHAPE) {
        let ok = match s {
            b'd' => x.is_ascii_digit(),
            _ => x == s,
        };
        if !ok {
            return None;
        }
    }
    let mut n = SHAPE.len();
    if b.get(n) == Some(&b'.') {
        n += 1;
        while b.get(n).is_some_and(u8::is_ascii_digit) {
            n += 1;
        }
    }
    if b.get(n) == Some(&b'Z') {
        n += 1;
    }
    Some(n)
}

/// True if `code` occurs in `line` as a number of its own (no digit right before or after).
fn has_number(line: &str, code: &str) -> bool {
    let b = line.as_bytes();
    line.match_indices(code).any(|(at, _)| {
        let before = at.checked_sub(1).and_then(|i| b.get(i));
        let after = b.get(at + code.len());
        !before.is_some_and(u8::is_ascii_digit) && !after.is_some_and(u8::is_ascii_digit)
    })
}

/// Every occurrence of a code (as a number of its own, in base64, in hex) in `streams`.
fn code_leaks(codes: &[String], streams: &[(&str, &str)]) -> Vec<String> {
    let mut leaks = Vec::new();
    for code in codes {
        for (name, text) in streams {
            for line in text.lines() {
                if has_number(line, code)
                    || line.contains(&b64(code.as_bytes()))
                    || line.contains(&hex(code.as_bytes()))
                {
                    leaks.push(format!("code {code:?} in the {name}: {line}"));
                    break;
                }
            }
        }
    }
    leaks
}

// ---------------------------------------------------------------------------------------
// One-time codes and the RADIUS secret

const MFA_GROUP: &str = "cn=MFA Users,cn=Users,dc=example,dc=com";
const ERIN_DN: &str = "cn=erin,cn=Users,dc=example,dc=com";
const ERIN_PW: &str = "Zq-Erin-Otp-8x";
const GINA_PW: &str = "Zq-Gina-Otp-9x";
const FRANK_PW: &str = "Zq-Frank-Armor-0x";

/// erin and gina need MFA (the group), frank does not (his TGT is the FAST armor).
fn mfa_seed() -> String {
    let mut s = String::new();
    for (u, pw) in [("erin", ERIN_PW), ("gina", GINA_PW), ("frank", FRANK_PW)] {
        s.push_str(&format!(
            "dn: cn={u},cn=Users,dc=example,dc=com\nobjectClass: top\nobjectClass: person\n\
             objectClass: organizationalPerson\nobjectClass: user\ncn: {u}\nsAMAccountName: {u}\n\
             userAccountControl: 512\nuserPassword: {pw}\n\n"
        ));
    }
    s.push_str(&format!(
        "dn: {MFA_GROUP}\nobjectClass: group\ncn: MFA Users\nmember: {ERIN_DN}\n\
         member: cn=gina,cn=Users,dc=example,dc=com\n"
    ));
    s
}

/// Another six-digit code that is neither `code` nor `wrong_code(code)`.
fn other_wrong_code(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 250_000) % 1_000_000)
}

#[test]
fn no_one_time_code_or_radius_secret_reaches_the_log_or_the_audit_stream() {
    let radius = FreeRadius::start(&["erin", "gina"]);
    let mut s = TestServer::configured_kdc(&format!(
        "[audit]\npath = \"{{dir}}/audit.jsonl\"\ntracing = true\n\
         [mfa]\nservers = [{{ address = \"{}\", secret_file = \"{{dir}}/radius.secret\" }}]\n\
         require_message_authenticator = true\ngroups = [\"{MFA_GROUP}\"]\notp_length = 6\n",
        radius.addr()
    ));
    let secret = s.path("radius.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = s.dir.path().join("dird.log");
    s.log_to(&log, "trace");
    s.launch();
    s.seed(&mfa_seed());
    let mut codes = Vec::new();

    // LDAP: password + code right, wrong, the same code again (replay), no code.
    let code = fresh_code();
    let wrong = wrong_code(&code);
    codes.extend([code.clone(), wrong.clone()]);
    assert!(bind_ok(&s, ERIN_DN, &format!("{ERIN_PW}{code}")));
    assert!(!bind_ok(&s, ERIN_DN, &format!("{ERIN_PW}{wrong}")));
    assert!(
        !bind_ok(&s, ERIN_DN, &format!("{ERIN_PW}{code}")),
        "a replayed code was accepted"
    );
    assert!(
        !bind_ok(&s, ERIN_DN, ERIN_PW),
        "a password without a code was accepted"
    );

    // Kerberos: OTP inside FAST (armor: frank's TGT): the right code (first, while it is
    // fresh), the same code again (a replay), a wrong code.
    let conf = "krb5.conf";
    s.krb_ok(
        conf,
        "cc.armor",
        &["kinit", "frank"],
        &format!("{FRANK_PW}\n"),
    );
    let armor = s.path("cc.armor").display().to_string();
    let code = fresh_code();
    let wrong = other_wrong_code(&code);
    codes.extend([code.clone(), wrong.clone()]);
    s.krb_ok(
        conf,
        "cc.gina",
        &["kinit", "-T", &armor, "gina"],
        &format!("{GINA_PW}{code}\n"),
    );
    for (what, typed) in [("a replayed code", &code), ("a wrong code", &wrong)] {
        let out = s.krb(
            conf,
            "cc.again",
            &["kinit", "-T", &armor, "gina"],
            &format!("{GINA_PW}{typed}\n"),
        );
        assert!(!out.status.success(), "{what} gave a TGT: {}", text(&out));
    }
    s.stop();

    let log_s = masked(&String::from_utf8_lossy(
        &std::fs::read(&log).expect("daemon log"),
    ));
    let audit_s = masked(&String::from_utf8_lossy(
        &std::fs::read(s.dir.path().join("audit.jsonl")).expect("audit file"),
    ));
    // The workload really ran through RADIUS, for both protocols.
    let outcomes: Vec<(String, String)> = audit_s
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "mfa")
        .map(|v| {
            (
                v["identity"].as_str().unwrap_or_default().to_string(),
                v["result"]["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (user, outcome) in [
        ("erin", "accepted"),
        ("erin", "rejected"),
        ("erin", "replayed"),
        ("erin", "missing"),
        ("gina", "rejected"),
        ("gina", "accepted"),
        ("gina", "replayed"),
    ] {
        assert!(
            outcomes.contains(&(user.to_string(), outcome.to_string())),
            "no mfa event {user}/{outcome} in the audit file: {outcomes:?}"
        );
    }
    let radius_log = radius.log();
    assert!(radius_log.contains("Login OK: [erin]"), "{radius_log}");
    assert!(radius_log.contains("Login OK: [gina]"), "{radius_log}");
    assert!(log_s.contains("DEBUG"), "no debug lines in the log");
    eprintln!(
        "secrets_in_logs (OTP): searched {} log lines and {} audit lines for {} codes: {codes:?}",
        log_s.lines().count(),
        audit_s.lines().count(),
        codes.len()
    );

    let streams = [("log", log_s.as_str()), ("audit", audit_s.as_str())];
    let mut leaks = code_leaks(&codes, &streams);
    leaks.extend(password_leaks(
        &[SECRET, TOTP_KEY, ERIN_PW, GINA_PW, FRANK_PW, ADMIN_PW],
        &streams,
    ));
    assert!(
        leaks.is_empty(),
        "one-time codes or secrets in the logs:\n{}",
        leaks.join("\n")
    );
}

#[test]
fn the_code_search_finds_what_it_must_and_skips_timestamps() {
    let line = "\u{1b}[2m2026-12-08T00:40:25.123456Z\u{1b}[0m INFO x: took 123456ms";
    let m = masked(line);
    assert!(m.starts_with("<time> INFO"), "{m}");
    assert!(has_number(&m, "123456"));
    assert!(!has_number(
        &masked("2026-12-08T00:40:25.123456Z ok"),
        "123456"
    ));
    assert!(!has_number("id=9123456", "123456"));
    let codes = vec!["654321".to_string()];
    assert_eq!(code_leaks(&codes, &[("log", "v=NjU0MzIx")]).len(), 1);
    assert_eq!(code_leaks(&codes, &[("log", "v=363534333231")]).len(), 1);
    let stamped = masked("t=2026-12-08T00:40:25.654321Z");
    assert!(code_leaks(&codes, &[("log", &stamped)]).is_empty());
}
