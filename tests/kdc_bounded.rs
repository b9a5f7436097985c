#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 9 items 6 (replay cache) and 7 (Kerberos), end to end with the real dird binary and
//! the MIT tools from Debian's `krb5-user` (kinit, klist, kvno, kpasswd). A missing tool fails
//! the test (never skips).

mod common;

use common::{text, TestServer, SEED};

const UDP: &str = "krb5.conf";

/// A service account with three SPNs, keyed from its password.
const SERVICES: &str = r#"dn: cn=svc,cn=Users,dc=example,dc=com
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: user
cn: svc
sAMAccountName: svc
servicePrincipalName: host/a.example.com
servicePrincipalName: host/b.example.com
servicePrincipalName: host/c.example.com
userAccountControl: 512
userPassword: svc-Passw0rd-1
"#;

#[test]
fn a_full_replay_cache_refuses_instead_of_forgetting() {
    let mut s = TestServer::prepare_kdc("");
    s.set_kdc_extra("replay_cache_size = 2");
    s.launch();
    s.seed(SEED);
    s.seed(SERVICES);
    s.krb_ok(UDP, "cc.alice", &["kinit", "alice"], "alice-Passw0rd\n");
    // Two TGS requests fill the cache (each authenticator stays for the skew window) ...
    s.krb_ok(UDP, "cc.alice", &["kvno", "host/a.example.com"], "");
    s.krb_ok(UDP, "cc.alice", &["kvno", "host/b.example.com"], "");
    // ... so the third is refused with a retryable KRB_ERR_GENERIC and its e-text, and no
    // entry was forgotten to make room.
    s.krb_fails(
        UDP,
        "cc.alice",
        &["kvno", "host/c.example.com"],
        "",
        "replay cache full",
    );
}

/// Seconds between klist's "Valid starting" and "Expires" columns for the ticket to `service`
/// (klist's default date format `MM/DD/YY HH:MM:SS`, as C locale prints it), and whether it
/// has a "renew until" line.
fn ticket_life(klist: &str, service: &str) -> (i64, bool) {
    let lines: Vec<&str> = klist.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.contains(service))
        .unwrap_or_else(|| panic!("no {service} in:\n{klist}"));
    let f: Vec<&str> = lines[i].split_whitespace().collect();
    let secs = |date: &str, time: &str| -> i64 {
        let d: Vec<i64> = date.split('/').map(|x| x.parse().unwrap()).collect();
        let t: Vec<i64> = time.split(':').map(|x| x.parse().unwrap()).collect();
        // days since a fixed origin are enough for a difference within one month.
        ((d[2] * 12 + d[0]) * 31 + d[1]) * 86400 + t[0] * 3600 + t[1] * 60 + t[2]
    };
    let life = secs(f[2], f[3]) - secs(f[0], f[1]);
    let renewable = lines
        .get(i + 1)
        .is_some_and(|l| l.trim_start().starts_with("renew until"));
    (life, renewable)
}

#[test]
fn changepw_tickets_are_short_and_not_renewable() {
    let s = TestServer::start_kdc();
    s.seed(SEED);
    s.krb_ok(
        UDP,
        "cc.cpw",
        &[
            "kinit",
            "-S",
            "kadmin/changepw",
            "-l",
            "10h",
            "-r",
            "7d",
            "alice",
        ],
        "alice-Passw0rd\n",
    );
    let list = s.krb_ok(UDP, "cc.cpw", &["klist", "-f"], "");
    let (life, renewable) = ticket_life(&list, "kadmin/changepw@EXAMPLE.COM");
    assert!(life <= 300, "changepw ticket lives {life} s:\n{list}");
    assert!(!renewable, "changepw ticket is renewable:\n{list}");
    // A TGT with the same request is still long and renewable (the cap is for changepw only).
    s.krb_ok(
        UDP,
        "cc.tgt",
        &["kinit", "-l", "10h", "-r", "7d", "alice"],
        "alice-Passw0rd\n",
    );
    let list = s.krb_ok(UDP, "cc.tgt", &["klist", "-f"], "");
    let (life, renewable) = ticket_life(&list, "krbtgt/EXAMPLE.COM@EXAMPLE.COM");
    assert!(life > 3600, "TGT lives {life} s:\n{list}");
    assert!(renewable, "TGT not renewable:\n{list}");
}

#[test]
fn a_renamed_account_name_given_to_another_cannot_reuse_old_tickets() {
    let s = TestServer::start_kdc();
    s.seed(SEED);
    s.seed(SERVICES);
    s.krb_ok(UDP, "cc.old", &["kinit", "alice"], "alice-Passw0rd\n");
    s.krb_ok(UDP, "cc.old", &["kvno", "host/a.example.com"], "");
    // Other spellings of the same account (another case with -C, the UPN as an enterprise
    // name) get tickets naming its canonical principal (RFC 6806; without -C MIT refuses a
    // changed client name, so dird keeps the requested spelling then). Those tickets are
    // bound to the account's objectGUID too.
    for (cc, args) in [
        ("cc.upper", vec!["kinit", "-C", "ALICE"]),
        ("cc.upn", vec!["kinit", "-E", "alice@example.com"]),
        ("cc.plain-upper", vec!["kinit", "ALICE"]),
    ] {
        s.krb_ok(UDP, cc, &args, "alice-Passw0rd\n");
        let list = s.krb_ok(UDP, cc, &["klist"], "");
        if cc != "cc.plain-upper" {
            assert!(
                list.contains("Default principal: alice@EXAMPLE.COM"),
                "{args:?}:\n{list}"
            );
        }
        s.krb_ok(UDP, cc, &["kvno", "host/a.example.com"], "");
    }

    // alice becomes alice2, and a new account takes the name alice.
    let out = s.modify_as_admin(
        &s.ldap_url(),
        "dn: cn=alice,ou=People,dc=example,dc=com\nchangetype: modify\nreplace: sAMAccountName\nsAMAccountName: alice2\n-\nreplace: userPrincipalName\nuserPrincipalName: alice2@example.com\n-\n",
    );
    assert!(out.status.success(), "rename: {}", text(&out));
    s.seed(
        "dn: cn=alice-new,ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\ncn: alice-new\nsn: New\nsAMAccountName: alice\nuserPrincipalName: alice@example.com\nuserAccountControl: 512\nuserPassword: new-alice-Passw0rd\n",
    );

    // The old TGTs name "alice", which is now another account: refused.
    for cc in ["cc.old", "cc.upper", "cc.upn", "cc.plain-upper"] {
        s.krb_fails(UDP, cc, &["kvno", "host/b.example.com"], "", "revoked");
    }
    // The new alice and the renamed alice2 each get their own tickets.
    s.krb_ok(UDP, "cc.new", &["kinit", "alice"], "new-alice-Passw0rd\n");
    s.krb_ok(UDP, "cc.new", &["kvno", "host/b.example.com"], "");
}
