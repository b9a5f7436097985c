#![allow(clippy::unwrap_used, clippy::expect_used)]
//! No password in any log or audit line (issue 15 §5). A representative workload runs with
//! `DIRD_LOG=trace` (every crate, so debug included) and the audit stream both in a file and as tracing events:
//! LDAP adds with a password, right and wrong simple binds, Password Modify, a `unicodePwd`
//! self-change and a `userPassword` admin reset, a change refused by the password history,
//! `kinit` right and wrong, `kpasswd` right and with a wrong old password. Then every line
//! the daemon wrote is searched for every password used, as typed, in base64, in hex and as
//! AD's quoted UTF-16LE `unicodePwd` value: none may appear.

mod common;

use base64::Engine as _;
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

    let mut leaks = Vec::new();
    for pw in ALL {
        let forms = [
            pw.to_string(),
            b64(pw.as_bytes()),
            hex(pw.as_bytes()),
            b64(&unicode_pwd(pw)),
            hex(&unicode_pwd(pw)),
        ];
        for form in forms {
            for (name, text) in [("log", &log_s), ("audit", &audit_s)] {
                if let Some(line) = text.lines().find(|l| l.contains(&form)) {
                    leaks.push(format!("{pw:?} as {form:?} in the {name}: {line}"));
                }
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "passwords in the logs:\n{}",
        leaks.join("\n")
    );
}
