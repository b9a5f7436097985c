//! One password path (issue 9 items 2, 3 and the bind part of 6), through real clients:
//! `unicodePwd` as AD writes it (admin replace, user delete-old/add-new, python3-ldap3's
//! `modify_password`), userPassword self-service forms, hashed values, import, history across
//! paths with kpasswd, `[ldap] cleartext_binds`, and binds to names without a password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;

/// `unicodePwd` value for `pw`: the password in double quotes, UTF-16LE, base64 for LDIF.
fn unicode_pwd(pw: &str) -> String {
    let bytes: Vec<u8> = format!("\"{pw}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `ldapmodify` as `dn`/`pw` over `url` (`-ZZ` with `starttls`).
fn modify_as(s: &TestServer, url: &str, starttls: bool, dn: &str, pw: &str, ldif: &str) -> Output {
    let mut args = vec!["-x", "-H", url, "-D", dn, "-w", pw, "-o", "nettimeout=10"];
    if starttls {
        args.push("-ZZ");
    }
    s.tool_stdin("ldapmodify", &args, Some(ldif))
}

/// A user's own change: delete of the old value plus add of the new one, in one modify.
fn change(dn: &str, attr: &str, old: &str, new: &str) -> String {
    if attr == "unicodePwd" {
        format!(
            "dn: {dn}\nchangetype: modify\ndelete: unicodePwd\nunicodePwd:: {}\n-\nadd: unicodePwd\nunicodePwd:: {}\n-\n",
            unicode_pwd(old),
            unicode_pwd(new)
        )
    } else {
        format!(
            "dn: {dn}\nchangetype: modify\ndelete: {attr}\n{attr}: {old}\n-\nadd: {attr}\n{attr}: {new}\n-\n"
        )
    }
}

fn bind_rc(s: &TestServer, url: &str, dn: &str, pw: &str) -> i32 {
    rc(&s.whoami(&["-H", url, "-D", dn, "-w", pw]))
}

fn admin_modify_ok(s: &TestServer, ldif: &str) {
    let out = s.modify_as_admin(&s.ldaps_url(), ldif);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn unicode_pwd_admin_reset_sets_the_password_for_ldap_and_kerberos() {
    let s = TestServer::start_kdc();
    s.seed(SEED);
    let reset = |pw: &str| {
        format!(
            "dn: {ALICE_DN}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n-\n",
            unicode_pwd(pw)
        )
    };
    // Over plain LDAP a password change is refused (confidentialityRequired), nothing changes.
    let out = s.modify_as_admin(&s.ldap_url(), &reset("Plain-Passw0rd-1"));
    assert_eq!(rc(&out), 13, "{}", text(&out));
    assert_eq!(bind_rc(&s, &s.ldap_url(), ALICE_DN, ALICE_PW), 0);

    let out = s.modify_as_admin(&s.ldaps_url(), &reset("Uni-Passw0rd-1"));
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(bind_rc(&s, &s.ldap_url(), ALICE_DN, "Uni-Passw0rd-1"), 0);
    assert_eq!(bind_rc(&s, &s.ldap_url(), ALICE_DN, ALICE_PW), 49);
    s.krb_ok(
        "krb5.conf",
        "cc.alice",
        &["kinit", "alice"],
        "Uni-Passw0rd-1\n",
    );
    // Never stored, never readable; pwdLastSet and the kvno moved.
    let out = s.search_as_admin(&[
        "-b",
        ALICE_DN,
        "-s",
        "base",
        "(objectClass=*)",
        "*",
        "+",
        "unicodePwd",
    ]);
    let all = text(&out);
    assert!(!all.to_lowercase().contains("unicodepwd"), "{all}");
    assert!(!all.contains("Uni-Passw0rd-1"), "{all}");
    assert_eq!(values(&out, "msDS-KeyVersionNumber"), vec!["2"], "{all}");

    // Malformed values: constraintViolation, and the server still answers.
    for bad in [
        base64::engine::general_purpose::STANDARD.encode("no-quotes-utf8"),
        base64::engine::general_purpose::STANDARD.encode([0x22u8, 0x00, 0x41]),
        base64::engine::general_purpose::STANDARD.encode([0x22u8, 0x00, 0x00, 0xd8, 0x22, 0x00]),
    ] {
        let out = s.modify_as_admin(
            &s.ldaps_url(),
            &format!(
                "dn: {ALICE_DN}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {bad}\n-\n"
            ),
        );
        assert_eq!(rc(&out), 19, "{bad}: {}", text(&out));
    }
    assert_eq!(bind_rc(&s, &s.ldap_url(), ALICE_DN, "Uni-Passw0rd-1"), 0);
}

#[test]
fn unicode_pwd_self_change_proves_the_old_password_and_counts_towards_lockout() {
    let s = TestServer::start_seeded();
    admin_modify_ok(
        &s,
        &format!(
            "dn: {BASE}\nchangetype: modify\nreplace: lockoutThreshold\nlockoutThreshold: 3\n-\n"
        ),
    );
    // A user may not reset their own password with replace.
    let out = modify_as(
        &s,
        &s.ldaps_url(),
        false,
        ALICE_DN,
        ALICE_PW,
        &format!(
            "dn: {ALICE_DN}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n-\n",
            unicode_pwd("Self-Reset-Pw1")
        ),
    );
    assert_eq!(rc(&out), 53, "{}", text(&out));
    // Right old password: changed.
    let out = modify_as(
        &s,
        &s.ldaps_url(),
        false,
        ALICE_DN,
        ALICE_PW,
        &change(ALICE_DN, "unicodePwd", ALICE_PW, "Self-Change-Pw1"),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(bind_rc(&s, &s.ldap_url(), ALICE_DN, "Self-Change-Pw1"), 0);
    assert_eq!(bind_rc(&s, &s.ldap_url(), ALICE_DN, ALICE_PW), 49);
    // Wrong old password: refused (constraintViolation, as AD), and each one counts. (One
    // connection, `-c`: a successful bind would clear the failure count, as in AD.)
    let three: String = (0..3)
        .map(|i| {
            change(
                ALICE_DN,
                "unicodePwd",
                "not-the-old-one",
                &format!("Next-Pw-{i}x"),
            ) + "\n"
        })
        .collect();
    let out = s.tool_stdin(
        "ldapmodify",
        &[
            "-x",
            "-c",
            "-H",
            &s.ldaps_url(),
            "-D",
            ALICE_DN,
            "-w",
            "Self-Change-Pw1",
            "-o",
            "nettimeout=10",
        ],
        Some(&three),
    );
    assert_eq!(rc(&out), 19, "{}", text(&out));
    assert_eq!(
        text(&out).matches("old password is not correct").count(),
        3,
        "{}",
        text(&out)
    );
    // Three wrong old passwords locked the account: even the right password is refused.
    let out = s.whoami(&["-H", &s.ldap_url(), "-D", ALICE_DN, "-w", "Self-Change-Pw1"]);
    assert_eq!(rc(&out), 49, "{}", text(&out));
    assert!(text(&out).contains("data 775"), "{}", text(&out));
}

#[test]
fn user_password_self_service_needs_the_old_password() {
    let s = TestServer::start_seeded();
    let ldaps = s.ldaps_url();
    // replace of one's own userPassword: refused, nothing changed
    let out = modify_as(
        &s,
        &ldaps,
        false,
        BOB_DN,
        BOB_PW,
        &format!("dn: {BOB_DN}\nchangetype: modify\nreplace: userPassword\nuserPassword: Bob-Replace-1\n"),
    );
    assert_eq!(rc(&out), 53, "{}", text(&out));
    assert_eq!(bind_rc(&s, &s.ldap_url(), BOB_DN, BOB_PW), 0);
    // the same by OID
    let out = modify_as(
        &s,
        &ldaps,
        false,
        BOB_DN,
        BOB_PW,
        &format!("dn: {BOB_DN}\nchangetype: modify\nreplace: 2.5.4.35\n2.5.4.35: Bob-Replace-2\n"),
    );
    assert_eq!(rc(&out), 53, "{}", text(&out));
    // delete-old/add-new: accepted by name and by OID
    let out = modify_as(
        &s,
        &ldaps,
        false,
        BOB_DN,
        BOB_PW,
        &change(BOB_DN, "userPassword", BOB_PW, "Bob-Change-1"),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(bind_rc(&s, &s.ldap_url(), BOB_DN, "Bob-Change-1"), 0);
    let out = modify_as(
        &s,
        &ldaps,
        false,
        BOB_DN,
        "Bob-Change-1",
        &change(BOB_DN, "2.5.4.35", "Bob-Change-1", "Bob-Change-2"),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(bind_rc(&s, &s.ldap_url(), BOB_DN, "Bob-Change-2"), 0);
    // with a wrong old value: refused
    let out = modify_as(
        &s,
        &ldaps,
        false,
        BOB_DN,
        "Bob-Change-2",
        &change(BOB_DN, "userPassword", "wrong", "Bob-Change-3"),
    );
    assert_eq!(rc(&out), 19, "{}", text(&out));
    assert_eq!(bind_rc(&s, &s.ldap_url(), BOB_DN, "Bob-Change-2"), 0);
    // an administrator's replace stays allowed
    admin_modify_ok(
        &s,
        &format!(
            "dn: {BOB_DN}\nchangetype: modify\nreplace: userPassword\nuserPassword: Bob-Reset-1\n"
        ),
    );
    assert_eq!(bind_rc(&s, &s.ldap_url(), BOB_DN, "Bob-Reset-1"), 0);
}

#[test]
fn hashed_values_are_never_cleartext_and_argon2_is_bounded() {
    let s = TestServer::start_seeded();
    let set = |v: &str| {
        format!("dn: {ALICE_DN}\nchangetype: modify\nreplace: userPassword\nuserPassword: {v}\n")
    };
    for (value, scheme) in [
        ("{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SSHA"),
        ("{CRYPT}$6$salt$hash", "CRYPT"),
        ("{PBKDF2-SHA256}10000$c2FsdA$aGFzaA", "PBKDF2-SHA256"),
        ("{MD5}X03MO1qnZdYdgyfeuILPmQ==", "MD5"),
    ] {
        let out = s.modify_as_admin(&s.ldaps_url(), &set(value));
        assert_eq!(rc(&out), 19, "{value}: {}", text(&out));
        assert!(text(&out).contains(scheme), "{value}: {}", text(&out));
        // ... and the hash string does not become the password either
        assert_eq!(bind_rc(&s, &s.ldap_url(), ALICE_DN, value), 49);
    }
    assert_eq!(bind_rc(&s, &s.ldap_url(), ALICE_DN, ALICE_PW), 0);
    // {ARGON2} beyond the bounds (4 GiB of memory per bind): refused
    let huge = "{ARGON2}$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
    let out = s.modify_as_admin(&s.ldaps_url(), &set(huge));
    assert_eq!(rc(&out), 19, "{}", text(&out));
    assert!(text(&out).contains("m=4194304"), "{}", text(&out));
    // A valid PHC string from an administrator: accepted, the user binds with its cleartext.
    let phc = dird::directory::password::hash_blocking(b"Phc-Passw0rd-1").unwrap();
    let out = s.modify_as_admin(&s.ldaps_url(), &set(&phc));
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(bind_rc(&s, &s.ldap_url(), ALICE_DN, "Phc-Passw0rd-1"), 0);
    // ... but not from the user themselves
    let phc2 = dird::directory::password::hash_blocking(b"Phc-Passw0rd-2").unwrap();
    let out = modify_as(
        &s,
        &s.ldaps_url(),
        false,
        ALICE_DN,
        "Phc-Passw0rd-1",
        &change(ALICE_DN, "userPassword", "Phc-Passw0rd-1", &phc2),
    );
    assert_eq!(rc(&out), 19, "{}", text(&out));
    assert_eq!(bind_rc(&s, &s.ldap_url(), ALICE_DN, "Phc-Passw0rd-1"), 0);
}

#[test]
fn import_hashes_cleartext_with_keys_and_refuses_foreign_hashes() {
    let mut s = TestServer::configured_kdc("");
    let out = s.cli(&["init"]);
    assert!(out.status.success(), "{}", text(&out));
    let user = |name: &str, pw: &str| {
        format!(
            "dn: cn={name},cn=Users,dc=example,dc=com\nobjectClass: top\nobjectClass: person\n\
             objectClass: organizationalPerson\nobjectClass: user\ncn: {name}\nsn: {name}\n\
             sAMAccountName: {name}\nuserPassword: {pw}\n\n"
        )
    };
    let good = s.path("good.ldif");
    std::fs::write(&good, user("dave", "Dave-Passw0rd-1")).unwrap();
    let out = s.cli(&["import", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let bad = s.path("bad.ldif");
    std::fs::write(&bad, user("erin", "{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=")).unwrap();
    let out = s.cli(&["import", bad.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("SSHA") && text(&out).contains("cn=erin"),
        "{}",
        text(&out)
    );
    s.launch();
    let dave = "cn=dave,cn=Users,dc=example,dc=com";
    assert_eq!(bind_rc(&s, &s.ldap_url(), dave, "Dave-Passw0rd-1"), 0);
    s.krb_ok(
        "krb5.conf",
        "cc.dave",
        &["kinit", "dave"],
        "Dave-Passw0rd-1\n",
    );
    let out = s.search_as_admin(&["-b", dave, "-s", "base", "(objectClass=*)", "pwdLastSet"]);
    assert_eq!(values(&out, "pwdLastSet").len(), 1, "{}", text(&out));
    assert_eq!(
        rc(&s.search_as_admin(&["-b", "cn=erin,cn=Users,dc=example,dc=com", "-s", "base"])),
        32,
        "nothing of the refused file was written"
    );
}

#[test]
fn history_applies_across_paths_and_kpasswd_still_works() {
    let s = TestServer::start_kdc_with("[audit]\npath = \"{dir}/audit.jsonl\"\n");
    s.seed(SEED);
    admin_modify_ok(
        &s,
        &format!(
            "dn: {BASE}\nchangetype: modify\nreplace: pwdHistoryLength\npwdHistoryLength: 3\n-\n"
        ),
    );
    let url = s.ldap_url();
    // Password Modify (ldappasswd) as alice: first change.
    let out = s.tool(
        "ldappasswd",
        &[
            "-x",
            "-ZZ",
            "-H",
            &url,
            "-D",
            ALICE_DN,
            "-w",
            ALICE_PW,
            "-a",
            ALICE_PW,
            "-s",
            "Hist-Passw0rd-1",
            ALICE_DN,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    // unicodePwd back to the original: in the history, refused.
    let out = modify_as(
        &s,
        &s.ldaps_url(),
        false,
        ALICE_DN,
        "Hist-Passw0rd-1",
        &change(ALICE_DN, "unicodePwd", "Hist-Passw0rd-1", ALICE_PW),
    );
    assert_eq!(rc(&out), 19, "{}", text(&out));
    assert!(text(&out).contains("history"), "{}", text(&out));
    // unicodePwd to a new one: accepted.
    let out = modify_as(
        &s,
        &s.ldaps_url(),
        false,
        ALICE_DN,
        "Hist-Passw0rd-1",
        &change(ALICE_DN, "unicodePwd", "Hist-Passw0rd-1", "Hist-Passw0rd-2"),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    s.krb_ok(
        "krb5.conf",
        "cc.a2",
        &["kinit", "alice"],
        "Hist-Passw0rd-2\n",
    );
    // kpasswd: back to a password set through LDAP is refused, a new one works.
    s.krb_fails(
        "krb5.conf",
        "cc.kp",
        &["kpasswd", "alice"],
        "Hist-Passw0rd-2\nHist-Passw0rd-1\nHist-Passw0rd-1\n",
        "history",
    );
    s.krb_ok(
        "krb5.conf",
        "cc.kp",
        &["kpasswd", "alice"],
        "Hist-Passw0rd-2\nHist-Passw0rd-3\nHist-Passw0rd-3\n",
    );
    s.krb_ok(
        "krb5.conf",
        "cc.a3",
        &["kinit", "alice"],
        "Hist-Passw0rd-3\n",
    );
    assert_eq!(bind_rc(&s, &url, ALICE_DN, "Hist-Passw0rd-3"), 0);
    // ldappasswd back to the one set through unicodePwd: refused.
    let out = s.tool(
        "ldappasswd",
        &[
            "-x",
            "-ZZ",
            "-H",
            &url,
            "-D",
            ALICE_DN,
            "-w",
            "Hist-Passw0rd-3",
            "-a",
            "Hist-Passw0rd-3",
            "-s",
            "Hist-Passw0rd-2",
            ALICE_DN,
        ],
    );
    assert!(
        !out.status.success() && text(&out).contains("history"),
        "{}",
        text(&out)
    );
    // Every path leaves the same audit event: LDAP Password Modify, unicodePwd, kpasswd.
    let audit = s.path("audit.jsonl");
    let deadline = Instant::now() + Duration::from_secs(10);
    let changes = loop {
        let raw = std::fs::read_to_string(&audit).unwrap_or_default();
        let changes: Vec<String> = raw
            .lines()
            .filter(|l| l.contains("\"event\":\"password_change\""))
            .map(str::to_string)
            .collect();
        if changes.len() >= 6 || Instant::now() > deadline {
            break changes;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let kpasswd: Vec<&String> = changes
        .iter()
        .filter(|l| l.contains("\"operation\":\"kpasswd\""))
        .collect();
    assert_eq!(kpasswd.len(), 2, "{changes:#?}");
    assert!(kpasswd.iter().any(|l| l.contains("history")), "{kpasswd:?}");
    assert!(
        changes
            .iter()
            .any(|l| l.contains("\"operation\":\"password_modify\"")),
        "{changes:#?}"
    );
    assert!(
        changes.iter().any(|l| l.contains("unicodePwd")),
        "{changes:#?}"
    );
    assert!(
        !changes.iter().any(|l| l.contains("Hist-Passw0rd")),
        "no secret in the audit log"
    );
}

#[test]
fn python_ldap3_microsoft_modify_password_works() {
    let s = TestServer::start_seeded();
    let script = r#"
import sys, ssl
from ldap3 import Server, Connection, Tls
host, port, ca, dn, old, new = sys.argv[1:7]
tls = Tls(ca_certs_file=ca, validate=ssl.CERT_REQUIRED)
c = Connection(Server(host, int(port), use_ssl=True, tls=tls), dn, old, auto_bind=True)
ok = c.extend.microsoft.modify_password(dn, new, old)
print("RESULT", ok, c.result.get('result'), c.result.get('description'))
"#;
    let (host, port) = (s.ldaps.ip().to_string(), s.ldaps.port().to_string());
    let ca = s.ca().display().to_string();
    let out = s.python(
        script,
        &[&host, &port, &ca, ALICE_DN, ALICE_PW, "Py-Passw0rd-1"],
    );
    assert!(stdout(&out).contains("RESULT True 0"), "{}", text(&out));
    assert_eq!(bind_rc(&s, &s.ldap_url(), ALICE_DN, "Py-Passw0rd-1"), 0);
    assert_eq!(bind_rc(&s, &s.ldap_url(), ALICE_DN, ALICE_PW), 49);
}

#[test]
fn cleartext_binds_never_requires_tls() {
    let s = TestServer::start_with("cleartext_binds = \"never\"");
    let (plain, ldaps) = (s.ldap_url(), s.ldaps_url());
    let out = s.whoami(&["-H", &plain, "-D", ADMIN_DN, "-w", ADMIN_PW]);
    assert_eq!(rc(&out), 8, "strongerAuthRequired: {}", text(&out));
    assert_eq!(
        rc(&s.whoami(&["-H", &plain, "-ZZ", "-D", ADMIN_DN, "-w", ADMIN_PW])),
        0
    );
    assert_eq!(
        rc(&s.whoami(&["-H", &ldaps, "-D", ADMIN_DN, "-w", ADMIN_PW])),
        0
    );
    // anonymous binds carry no password and stay possible
    assert_eq!(rc(&s.whoami(&["-H", &plain])), 0);
}

#[test]
fn cleartext_binds_loopback_and_always_allow_plain_binds_from_loopback() {
    for setting in [
        "",
        "cleartext_binds = \"loopback\"",
        "cleartext_binds = \"always\"",
    ] {
        let s = TestServer::start_with(setting);
        let out = s.whoami(&["-H", &s.ldap_url(), "-D", ADMIN_DN, "-w", ADMIN_PW]);
        assert_eq!(rc(&out), 0, "{setting}: {}", text(&out));
        // an add carrying a password over plain LDAP from loopback is allowed, too
        s.seed(
            "dn: cn=frank,cn=Users,dc=example,dc=com\nobjectClass: user\ncn: frank\nsn: f\nsAMAccountName: frank\nuserPassword: Frank-Passw0rd-1\n",
        );
        assert_eq!(
            bind_rc(
                &s,
                &s.ldap_url(),
                "cn=frank,cn=Users,dc=example,dc=com",
                "Frank-Passw0rd-1"
            ),
            0
        );
    }
    let out = TestServer::configured("cleartext_binds = \"sometimes\"").cli(&["check-config"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ldap.cleartext_binds") && text(&out).contains("loopback"),
        "{}",
        text(&out)
    );
}

/// CPU time (user + system, in clock ticks) the dird process has used so far. The argon2
/// work a bind costs is CPU time on the server, which, unlike wall time, does not depend on
/// what else the machine is running.
fn server_cpu_ticks(s: &TestServer) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", s.pid())).unwrap();
    // Fields after the command name (which is in parentheses): state is field 3, utime 14,
    // stime 15 (proc(5)).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Server CPU ticks spent on `n` ldapwhoami binds; asserts each answers 49 `data 52e`.
fn bind_cost(s: &TestServer, dn: &str, pw: &str, n: usize) -> u64 {
    let before = server_cpu_ticks(s);
    for _ in 0..n {
        let out = s.whoami(&["-H", &s.ldap_url(), "-D", dn, "-w", pw]);
        assert_eq!(rc(&out), 49, "{dn}: {}", text(&out));
        assert!(text(&out).contains("data 52e"), "{dn}: {}", text(&out));
    }
    server_cpu_ticks(s) - before
}

#[test]
fn binds_to_names_without_a_password_cost_the_same_argon2_work() {
    let s = TestServer::start_seeded();
    let n = 10;
    // warm up (decoy hash, connection paths)
    let _ = bind_cost(&s, ALICE_DN, "wrong-password", 2);
    let _ = bind_cost(
        &s,
        "cn=nobody,ou=People,dc=example,dc=com",
        "wrong-password",
        1,
    );
    let wrong = bind_cost(&s, ALICE_DN, "wrong-password", n);
    let missing = bind_cost(
        &s,
        "cn=nobody,ou=People,dc=example,dc=com",
        "wrong-password",
        n,
    );
    let ou = bind_cost(&s, PEOPLE, "wrong-password", n);
    let group = bind_cost(
        &s,
        "cn=devs,ou=People,dc=example,dc=com",
        "wrong-password",
        n,
    );
    eprintln!(
        "server CPU ticks for {n} binds: wrong password {wrong}, no such DN {missing}, OU {ou}, \
         group {group}"
    );
    // Each argon2 check is tens of milliseconds of CPU: several ticks per bind.
    assert!(
        wrong >= n as u64,
        "wrong password binds cost only {wrong} ticks"
    );
    for (what, t) in [("nonexistent DN", missing), ("OU", ou), ("group", group)] {
        assert!(
            t * 2 >= wrong,
            "{what}: {t} CPU ticks against {wrong} for a wrong password"
        );
    }
}
