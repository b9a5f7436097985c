#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end: the real `dird` binary with `[kdc]` serves the directory's principals to the
//! real MIT tools from Debian's `krb5-user` (kinit, klist, kvno, kpasswd), and passwords set
//! over LDAP, the CLI, LDIF import and kpasswd work for both LDAP binds and Kerberos at once.
//! The tools must be on PATH: a missing tool fails the test (never skips).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::{rc, text, TestServer, ADMIN_DN, ADMIN_PW, BASE, SEED};

const UDP: &str = "krb5.conf";
const TCP: &str = "krb5-tcp.conf";
const ALICE_DN: &str = "cn=alice,ou=People,dc=example,dc=com";

/// A service account for ldap/dc.example.com, keyed from its password.
const LDAP_SERVICE: &str = r#"dn: cn=ldapsvc,cn=Users,dc=example,dc=com
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: user
cn: ldapsvc
sAMAccountName: ldapsvc
servicePrincipalName: ldap/dc.example.com
userAccountControl: 512
userPassword: ldapsvc-Passw0rd
"#;

fn require_tools() {
    for tool in [
        "kinit",
        "klist",
        "kvno",
        "kpasswd",
        "ldapsearch",
        "ldappasswd",
        "ldapwhoami",
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` is not on PATH: install krb5-user and ldap-utils (scripts/test-all.sh does)"
        );
    }
}

/// `ldapwhoami` as `dn` with `pw` over ldap://; true if the bind succeeded.
fn ldap_bind_ok(s: &TestServer, dn: &str, pw: &str) -> bool {
    let out = s.tool(
        "ldapwhoami",
        &[
            "-x",
            "-H",
            &s.ldap_url(),
            "-D",
            dn,
            "-w",
            pw,
            "-o",
            "nettimeout=10",
        ],
    );
    out.status.success()
}

/// The value of a single-valued attribute of `dn`, searched as Administrator with `+`.
fn attr(s: &TestServer, dn: &str, name: &str) -> Option<String> {
    let out = s.search_admin(dn, "(objectClass=*)", &[name]);
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
}

fn kvno_of(s: &TestServer, dn: &str) -> u32 {
    attr(s, dn, "msDS-KeyVersionNumber")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{dn} has no msDS-KeyVersionNumber"))
}

fn cli_ok(s: &TestServer, args: &[&str]) -> String {
    let out = s.cli(args);
    assert!(
        out.status.success(),
        "dird {} failed:\n{}",
        args.join(" "),
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn directory_principals_through_mit_tools() {
    require_tools();
    let mut s = TestServer::start_kdc();
    s.seed(SEED);
    s.seed(LDAP_SERVICE);

    // The master key was created 0600 beside the database.
    let master = s.path("data/master.key");
    let mode = std::fs::metadata(&master)
        .expect("master.key exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "master.key mode {mode:o}");
    assert_eq!(std::fs::metadata(&master).unwrap().len(), 32);

    // kinit over UDP with the LDAP-set password, then klist.
    let out = s.krb(UDP, "cc.alice", &["kinit", "alice"], "alice-Passw0rd\n");
    assert!(out.status.success(), "kinit alice over UDP: {}", text(&out));
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(trace.contains("dgram"), "not sent over UDP:\n{trace}");
    let list = s.krb_ok(UDP, "cc.alice", &["klist"], "");
    assert!(
        list.contains("Default principal: alice@EXAMPLE.COM"),
        "{list}"
    );
    assert!(list.contains("krbtgt/EXAMPLE.COM@EXAMPLE.COM"), "{list}");

    // kinit over TCP.
    let out = s.krb(TCP, "cc.bob", &["kinit", "bob"], "bob-Passw0rd\n");
    assert!(out.status.success(), "kinit bob over TCP: {}", text(&out));
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(
        trace.contains("stream 127.0.0.1"),
        "not sent over TCP:\n{trace}"
    );

    // Wrong password, unknown user, disabled account (carol has userAccountControl 514).
    s.krb_fails(
        UDP,
        "cc.bad",
        &["kinit", "alice"],
        "wrong-Passw0rd\n",
        "Password incorrect",
    );
    s.krb_fails(
        UDP,
        "cc.bad",
        &["kinit", "ghost"],
        "whatever\n",
        "not found in Kerberos database",
    );
    s.krb_fails(
        UDP,
        "cc.bad",
        &["kinit", "carol"],
        "carol-Passw0rd\n",
        "revoked",
    );
    // Groups have a sAMAccountName but are not principals.
    s.krb_fails(
        UDP,
        "cc.bad",
        &["kinit", "devs"],
        "x\n",
        "not found in Kerberos database",
    );

    // The UPN as an enterprise name (RFC 6806), canonicalised to the account name.
    s.krb_ok(
        UDP,
        "cc.upn",
        &["kinit", "-E", "alice@example.com"],
        "alice-Passw0rd\n",
    );
    let list = s.krb_ok(UDP, "cc.upn", &["klist"], "");
    assert!(list.contains("alice@EXAMPLE.COM"), "{list}");

    // A service ticket for an SPN of an account keyed from its LDAP password.
    let out = s.krb_ok(UDP, "cc.alice", &["kvno", "ldap/dc.example.com"], "");
    assert!(
        out.contains("ldap/dc.example.com@EXAMPLE.COM: kvno = 1"),
        "{out}"
    );
    s.krb_fails(
        UDP,
        "cc.alice",
        &["kvno", "nfs/nowhere.example.com"],
        "",
        "not found in Kerberos database",
    );

    // Keys are never readable over LDAP, not even by the Administrator asking for '+' or by
    // name, and cannot be probed with a filter; the kvno is visible.
    for attrs in [
        &["*", "+"][..],
        &["dirdKerberosKeys", "userPassword", "dirdPasswordHash"][..],
    ] {
        let out = s.search_admin(ALICE_DN, "(objectClass=*)", attrs);
        assert!(out.contains("dn: cn=alice"), "{out}");
        for secret in ["dirdKerberosKeys", "userPassword", "dirdPasswordHash"] {
            assert!(
                !out.to_lowercase().contains(&secret.to_lowercase()),
                "{secret} leaked:\n{out}"
            );
        }
    }
    let probe = s.search_admin(BASE, "(dirdKerberosKeys=*)", &["dn"]);
    assert!(probe.trim().is_empty(), "filter on keys matched:\n{probe}");
    assert_eq!(kvno_of(&s, ALICE_DN), 1);
    // Clients cannot write keys either, not even alongside a password change.
    let out = s.modify_as_admin(
        &s.ldaps_url(),
        &format!(
            "dn: {ALICE_DN}\nchangetype: modify\nreplace: dirdKerberosKeys\ndirdKerberosKeys: x\n"
        ),
    );
    assert_eq!(rc(&out), 19, "{}", text(&out));
    let out = s.modify_as_admin(
        &s.ldaps_url(),
        "dn: cn=mallory,cn=Users,dc=example,dc=com\nchangetype: add\nobjectClass: user\ncn: mallory\n\
         sAMAccountName: mallory\ndirdKerberosKeys: x\n",
    );
    assert_eq!(rc(&out), 19, "{}", text(&out));

    // kpasswd, then the new password works for kinit and for an LDAP simple bind.
    let out = s.krb_ok(
        UDP,
        "cc.kp",
        &["kpasswd", "alice"],
        "alice-Passw0rd\nalice-Kpasswd-2\nalice-Kpasswd-2\n",
    );
    assert!(out.contains("Password changed"), "{out}");
    s.krb_ok(UDP, "cc.alice2", &["kinit", "alice"], "alice-Kpasswd-2\n");
    s.krb_fails(
        UDP,
        "cc.bad",
        &["kinit", "alice"],
        "alice-Passw0rd\n",
        "Password incorrect",
    );
    assert!(
        ldap_bind_ok(&s, ALICE_DN, "alice-Kpasswd-2"),
        "LDAP bind with the kpasswd password"
    );
    assert!(
        !ldap_bind_ok(&s, ALICE_DN, "alice-Passw0rd"),
        "old password still binds"
    );
    assert_eq!(kvno_of(&s, ALICE_DN), 2);
    // kpasswd over TCP.
    let out = s.krb_ok(
        TCP,
        "cc.kp",
        &["kpasswd", "alice"],
        "alice-Kpasswd-2\nalice-Kpasswd-3\nalice-Kpasswd-3\n",
    );
    assert!(out.contains("Password changed"), "{out}");
    s.krb_ok(TCP, "cc.alice2", &["kinit", "alice"], "alice-Kpasswd-3\n");

    // A password set over LDAP (Password Modify, RFC 3062, over StartTLS) works for kinit at
    // once; so does an LDAP modify of userPassword (over LDAPS).
    let out = s.tool(
        "ldappasswd",
        &[
            "-x",
            "-ZZ",
            "-H",
            &s.ldap_url(),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            "-s",
            "bob-Ldappasswd-2",
            "cn=bob,ou=People,dc=example,dc=com",
        ],
    );
    assert!(out.status.success(), "ldappasswd: {}", text(&out));
    s.krb_ok(UDP, "cc.bob2", &["kinit", "bob"], "bob-Ldappasswd-2\n");
    s.krb_fails(
        UDP,
        "cc.bad",
        &["kinit", "bob"],
        "bob-Passw0rd\n",
        "Password incorrect",
    );
    let out = s.modify_as_admin(
        &s.ldaps_url(),
        &format!("dn: {ALICE_DN}\nchangetype: modify\nreplace: userPassword\nuserPassword: alice-Modify-4\n"),
    );
    assert!(
        out.status.success(),
        "ldapmodify userPassword: {}",
        text(&out)
    );
    s.krb_ok(UDP, "cc.alice2", &["kinit", "alice"], "alice-Modify-4\n");
    assert_eq!(kvno_of(&s, ALICE_DN), 4);
    // A user changing their own password (Password Modify with the old one) too.
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
            "alice-Modify-4",
            "-a",
            "alice-Modify-4",
            "-s",
            "alice-Self-5",
        ],
    );
    assert!(out.status.success(), "ldappasswd (self): {}", text(&out));
    s.krb_ok(UDP, "cc.alice2", &["kinit", "alice"], "alice-Self-5\n");

    // Renewal: a renewable TGT, renewed with kinit -R.
    s.krb_ok(
        UDP,
        "cc.renew",
        &["kinit", "-r", "2h", "-l", "1h", "bob"],
        "bob-Ldappasswd-2\n",
    );
    let list = s.krb_ok(UDP, "cc.renew", &["klist"], "");
    assert!(list.contains("renew until"), "{list}");
    s.krb_ok(UDP, "cc.renew", &["kinit", "-R"], "");
    s.krb_ok(UDP, "cc.renew", &["kvno", "ldap/dc.example.com"], "");

    // With the daemon stopped: a keytab for host/client.example.com (creating the computer
    // account), CLI-added users, a CLI password reset and an LDIF import with a plaintext
    // password; and a krbtgt rotation.
    s.stop();
    let kt = s.path("client.keytab");
    let kt = kt.to_str().unwrap();
    let out = cli_ok(
        &s,
        &[
            "keytab",
            "--principal",
            "host/client.example.com",
            "--out",
            kt,
        ],
    );
    assert!(out.contains("kvno 1"), "{out}");
    let kt_mode = std::fs::metadata(kt).unwrap().permissions().mode();
    assert_eq!(kt_mode & 0o777, 0o600);
    cli_ok(
        &s,
        &["user", "add", "dave", "--password", "dave-Cli-Passw0rd"],
    );
    cli_ok(
        &s,
        &["user", "add", "erin", "--password", "erin-Cli-Passw0rd"],
    );
    cli_ok(
        &s,
        &[
            "user",
            "passwd",
            "erin",
            "--password",
            "erin-Cli-Passw0rd-2",
        ],
    );
    let ldif = s.path("import.ldif");
    std::fs::write(
        &ldif,
        "dn: cn=frank,cn=Users,dc=example,dc=com\nobjectClass: top\nobjectClass: person\n\
         objectClass: organizationalPerson\nobjectClass: user\ncn: frank\nsAMAccountName: frank\n\
         userAccountControl: 512\nuserPassword: frank-Import-Passw0rd\n",
    )
    .unwrap();
    cli_ok(&s, &["import", ldif.to_str().unwrap()]);
    let out = cli_ok(&s, &["krbtgt", "rotate"]);
    assert!(out.contains("new kvno 2"), "{out}");
    s.launch();

    // Tickets issued before the rotation (under krbtgt kvno 1) are still honoured.
    s.krb_ok(UDP, "cc.alice", &["kvno", "ldap/dc.example.com"], "");
    // kvno for the host/ service, verified against the exported keytab.
    let out = s.krb_ok(UDP, "cc.alice2", &["kvno", "host/client.example.com"], "");
    assert!(
        out.contains("host/client.example.com@EXAMPLE.COM: kvno = 1"),
        "{out}"
    );
    let out = s.krb_ok(
        UDP,
        "cc.alice2",
        &["kvno", "-k", kt, "host/client.example.com"],
        "",
    );
    assert!(out.contains("keytab entry valid"), "{out}");
    // kinit -k with the exported keytab.
    s.krb_ok(
        UDP,
        "cc.host",
        &["kinit", "-k", "-t", kt, "host/client.example.com"],
        "",
    );
    let list = s.krb_ok(UDP, "cc.host", &["klist"], "");
    assert!(
        list.contains("Default principal: host/client.example.com@EXAMPLE.COM"),
        "{list}"
    );
    let computer = s.search_admin(
        &format!("cn=CLIENT,cn=Computers,{BASE}"),
        "(objectClass=computer)",
        &[
            "sAMAccountName",
            "dNSHostName",
            "servicePrincipalName",
            "msDS-KeyVersionNumber",
        ],
    );
    for want in [
        "sAMAccountName: CLIENT$",
        "dNSHostName: client.example.com",
        "servicePrincipalName: host/client.example.com",
        "servicePrincipalName: HOST/CLIENT",
        "msDS-KeyVersionNumber: 1",
    ] {
        assert!(computer.contains(want), "missing {want:?}:\n{computer}");
    }
    // The computer's own name works with the same keys.
    s.krb_ok(UDP, "cc.host2", &["kinit", "-k", "-t", kt, "CLIENT$"], "");

    // CLI and import passwords: both kinit and LDAP bind.
    s.krb_ok(TCP, "cc.dave", &["kinit", "dave"], "dave-Cli-Passw0rd\n");
    s.krb_ok(TCP, "cc.erin", &["kinit", "erin"], "erin-Cli-Passw0rd-2\n");
    s.krb_fails(
        TCP,
        "cc.bad",
        &["kinit", "erin"],
        "erin-Cli-Passw0rd\n",
        "Password incorrect",
    );
    s.krb_ok(
        TCP,
        "cc.frank",
        &["kinit", "frank"],
        "frank-Import-Passw0rd\n",
    );
    assert!(ldap_bind_ok(
        &s,
        &format!("cn=frank,cn=Users,{BASE}"),
        "frank-Import-Passw0rd"
    ));

    // A TGT obtained after the rotation, and the Administrator (provisioned password).
    s.krb_ok(
        UDP,
        "cc.admin",
        &["kinit", "Administrator"],
        &format!("{ADMIN_PW}\n"),
    );
    s.krb_ok(UDP, "cc.admin", &["kvno", "host/client.example.com"], "");

    // Disabling an account over LDAP revokes it for the KDC at once.
    let out = s.modify_as_admin(
        &s.ldap_url(),
        "dn: cn=dave,cn=Users,dc=example,dc=com\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    s.krb_fails(
        UDP,
        "cc.bad",
        &["kinit", "dave"],
        "dave-Cli-Passw0rd\n",
        "revoked",
    );
    s.krb_fails(
        UDP,
        "cc.dave",
        &["kvno", "ldap/dc.example.com"],
        "",
        "revoked",
    );

    // The krbtgt account exists, is disabled for LDAP and has no readable keys.
    let krbtgt = s.search_admin(BASE, "(sAMAccountName=krbtgt)", &["*", "+"]);
    assert!(krbtgt.contains("userAccountControl: 514"), "{krbtgt}");
    assert!(krbtgt.contains("msDS-KeyVersionNumber: 2"), "{krbtgt}");
    assert!(
        !krbtgt.to_lowercase().contains("dirdkerberoskeys"),
        "{krbtgt}"
    );
    s.stop();
}

#[test]
fn a_master_key_readable_by_others_is_refused() {
    let mut s = TestServer::start_kdc();
    s.stop();
    let master = s.path("data/master.key");
    std::fs::set_permissions(&master, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dird"))
        .arg("--config")
        .arg(s.config_path())
        .arg("serve")
        .stdin(Stdio::null())
        .output()
        .expect("run dird");
    assert!(
        !out.status.success(),
        "dird started with a 0644 master key:\n{}",
        text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("master.key") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&master, std::fs::Permissions::from_mode(0o600)).unwrap();
    s.launch();
    s.stop();
}
