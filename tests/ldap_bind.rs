#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Simple binds (RFC 4511 §4.2, RFC 4513 §5) driven by the real `ldapwhoami`, over ldap://,
//! StartTLS (`-ZZ`) and ldaps://: DN, UPN and `DOMAIN\user` names, anonymous binds, the
//! unauthenticated-bind refusal, wrong passwords and disabled accounts.

mod common;

use common::*;

/// The three transports as ldapwhoami arguments: (label, args).
fn transports(s: &TestServer) -> Vec<(&'static str, Vec<String>)> {
    vec![
        ("ldap://", vec!["-H".into(), s.ldap_url()]),
        ("StartTLS", vec!["-ZZ".into(), "-H".into(), s.ldap_url()]),
        ("ldaps://", vec!["-H".into(), s.ldaps_url()]),
    ]
}

fn whoami_as(s: &TestServer, transport: &[String], name: &str, pw: &str) -> std::process::Output {
    let mut args: Vec<&str> = transport.iter().map(String::as_str).collect();
    args.extend_from_slice(&["-D", name, "-w", pw]);
    s.whoami(&args)
}

/// Binds alice by each of her names over one transport and checks the authzId printed.
fn alice_binds_by_every_name(label: &str, transport: &[String], s: &TestServer) {
    for name in [
        ALICE_DN,
        "alice@example.com",
        "EXAMPLE\\alice",
        "CN=Alice,OU=People,DC=Example,DC=Com",
    ] {
        let out = whoami_as(s, transport, name, ALICE_PW);
        assert_eq!(rc(&out), 0, "bind as {name} over {label}: {}", text(&out));
        assert_eq!(
            stdout(&out).trim(),
            format!("dn:{ALICE_DN}"),
            "whoami after binding as {name} over {label}"
        );
    }
}

#[test]
fn bind_by_dn_upn_and_netbios_name_over_ldap() {
    let s = TestServer::start_seeded();
    let t = transports(&s);
    alice_binds_by_every_name(t[0].0, &t[0].1, &s);
}

#[test]
fn bind_by_dn_upn_and_netbios_name_over_starttls() {
    let s = TestServer::start_seeded();
    let t = transports(&s);
    alice_binds_by_every_name(t[1].0, &t[1].1, &s);
}

#[test]
fn bind_by_dn_upn_and_netbios_name_over_ldaps() {
    let s = TestServer::start_seeded();
    let t = transports(&s);
    alice_binds_by_every_name(t[2].0, &t[2].1, &s);
}

#[test]
fn administrator_binds_over_every_transport() {
    let s = TestServer::start();
    for (label, t) in transports(&s) {
        for name in [
            ADMIN_DN,
            "Administrator@example.com",
            "EXAMPLE\\Administrator",
        ] {
            let out = whoami_as(&s, &t, name, ADMIN_PW);
            assert_eq!(rc(&out), 0, "{name} over {label}: {}", text(&out));
            assert_eq!(
                stdout(&out).trim(),
                format!("dn:{ADMIN_DN}"),
                "{name} over {label}"
            );
        }
    }
}

#[test]
fn anonymous_bind_is_anonymous_over_every_transport() {
    let s = TestServer::start();
    for (label, t) in transports(&s) {
        let args: Vec<&str> = t.iter().map(String::as_str).collect();
        let out = s.whoami(&args);
        assert_eq!(rc(&out), 0, "anonymous over {label}: {}", text(&out));
        assert_eq!(stdout(&out).trim(), "anonymous", "anonymous over {label}");
    }
}

#[test]
fn dn_with_empty_password_is_unwilling_to_perform() {
    // RFC 4513 §5.1.2: an unauthenticated bind (name, no password) must be refusable;
    // dird refuses it with unwillingToPerform (53) instead of treating it as anonymous.
    let s = TestServer::start_seeded();
    for (label, t) in transports(&s) {
        let out = whoami_as(&s, &t, ALICE_DN, "");
        assert_eq!(rc(&out), 53, "empty password over {label}: {}", text(&out));
        assert!(
            text(&out).contains("Server is unwilling to perform (53)"),
            "ldapwhoami names the code over {label}: {}",
            text(&out)
        );
        assert!(
            stdout(&out).trim().is_empty(),
            "no authzId printed: {}",
            text(&out)
        );
    }
}

#[test]
fn wrong_password_is_invalid_credentials_with_ad_data_52e() {
    let s = TestServer::start_seeded();
    for (label, t) in transports(&s) {
        for name in [ALICE_DN, "alice@example.com", "EXAMPLE\\alice"] {
            let out = whoami_as(&s, &t, name, "not-her-password");
            assert_eq!(rc(&out), 49, "{name} over {label}: {}", text(&out));
            let all = text(&out);
            assert!(all.contains("Invalid credentials (49)"), "{all}");
            assert!(
                all.contains("AcceptSecurityContext error, data 52e"),
                "AD diagnostic text: {all}"
            );
            assert!(stdout(&out).trim().is_empty(), "{all}");
        }
    }
}

#[test]
fn unknown_user_is_invalid_credentials() {
    let s = TestServer::start_seeded();
    for name in [
        "cn=nobody,ou=People,dc=example,dc=com",
        "nobody@example.com",
        "EXAMPLE\\nobody",
        "cn=x,dc=other,dc=org",
    ] {
        let out = s.whoami(&["-H", &s.ldap_url(), "-D", name, "-w", "whatever"]);
        assert_eq!(rc(&out), 49, "{name}: {}", text(&out));
        assert!(
            text(&out).contains("data 52e"),
            "no account enumeration: {}",
            text(&out)
        );
    }
}

#[test]
fn disabled_account_is_invalid_credentials() {
    // carol has userAccountControl 514 (ACCOUNTDISABLE); her correct password must not bind.
    let s = TestServer::start_seeded();
    for (label, t) in transports(&s) {
        for name in [CAROL_DN, "EXAMPLE\\carol"] {
            let out = whoami_as(&s, &t, name, CAROL_PW);
            assert_eq!(rc(&out), 49, "disabled {name} over {label}: {}", text(&out));
            assert!(
                text(&out).contains("Invalid credentials (49)"),
                "{}",
                text(&out)
            );
        }
    }
    // ... and enabling her (as Administrator) lets the same password bind.
    let out = s.modify_as_admin(
        &s.ldap_url(),
        &format!("dn: {CAROL_DN}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 512\n"),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let out = s.whoami(&["-H", &s.ldap_url(), "-D", CAROL_DN, "-w", CAROL_PW]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(stdout(&out).trim(), format!("dn:{CAROL_DN}"));
}

#[test]
fn starttls_is_refused_by_the_ldaps_port_and_required_by_zz() {
    // -ZZ against the implicit-TLS port cannot negotiate: the client reports failure,
    // and the server keeps serving others.
    let s = TestServer::start_seeded();
    let url = format!("ldap://{}", s.ldaps);
    let out = s.whoami(&["-ZZ", "-H", &url, "-o", "nettimeout=5"]);
    assert_ne!(rc(&out), 0, "{}", text(&out));
    let out = s.whoami(&["-H", &s.ldaps_url(), "-D", ALICE_DN, "-w", ALICE_PW]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
}

#[test]
fn bound_identity_survives_rebind_on_one_connection() {
    // ldapwhoami binds then asks WhoAmI (RFC 4532) on the same connection: the answer
    // always reflects the last bind, including a failed one leaving the session anonymous.
    let s = TestServer::start_seeded();
    let out = s.python(
        r#"
import sys
from ldap3 import Server, Connection
host, port = sys.argv[1].rsplit(':', 1)
c = Connection(Server(host, int(port)))
c.open()
assert c.rebind('cn=alice,ou=People,dc=example,dc=com', 'alice-Passw0rd'), c.result
print('1', c.extend.standard.who_am_i())
assert c.rebind('bob@example.com', 'bob-Passw0rd'), c.result
print('2', c.extend.standard.who_am_i())
ok = False
try:
    ok = c.rebind('bob@example.com', 'wrong')
except Exception as e:
    print('rebind raised', type(e).__name__)
print('3', ok, c.result['result'] if c.result else None)
print('4', c.extend.standard.who_am_i())
"#,
        &[&s.ldap.to_string()],
    );
    let o = stdout(&out);
    assert!(out.status.success(), "{}", text(&out));
    assert!(o.contains(&format!("1 dn:{ALICE_DN}")), "{o}");
    assert!(o.contains(&format!("2 dn:{BOB_DN}")), "{o}");
    assert!(o.contains("3 False 49"), "{o}");
    assert!(
        o.lines()
            .any(|l| l == "4 None" || l == "4 " || l == "4 anonymous"),
        "after a failed bind the session is anonymous: {o}"
    );
}
