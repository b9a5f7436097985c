//! OpenLDAP migration (issue 14): hashes as `slapcat` and `slappasswd` produce them are
//! imported and accepted from administrators, binds verify them, the first successful bind
//! upgrades the entry to argon2 with Kerberos keys (kinit fails before, works after), the
//! rootDSE counts the accounts left, out-of-bounds costs are refused, memberUid values are
//! kept consistent with member; and the bind-repeat cache (fast repeats, invalidated by a
//! password change, a disable, a lockout).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;

/// `slappasswd -h scheme [-c fmt] -s pw` (OpenLDAP's own tool, `ldap-utils`/`slapd`).
fn slappasswd(scheme: &str, crypt_format: Option<&str>, pw: &str) -> String {
    let mut cmd = Command::new("slappasswd");
    if scheme.starts_with("{SSHA2") || scheme.starts_with("{SSHA5") {
        cmd.args(["-o", "module-load=pw-sha2"]);
    }
    cmd.args(["-h", scheme, "-s", pw]);
    if let Some(f) = crypt_format {
        cmd.args(["-c", f]);
    }
    let out = cmd.output().expect("slappasswd (install slapd)");
    assert!(out.status.success(), "slappasswd: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `{PBKDF2-SHA256}` in OpenLDAP pw-pbkdf2's format, computed by python3's hashlib.
fn pbkdf2_sha256(pw: &str, iterations: u32) -> String {
    let script = "import base64,hashlib,os,sys\n\
                  salt=os.urandom(16); it=int(sys.argv[2])\n\
                  h=hashlib.pbkdf2_hmac('sha256', sys.argv[1].encode(), salt, it)\n\
                  ab=lambda b: base64.b64encode(b).decode().rstrip('=').replace('+','.')\n\
                  print('{PBKDF2-SHA256}%d$%s$%s' % (it, ab(salt), ab(h)))\n";
    let out = Command::new(python3())
        .args(["-c", script, pw, &iterations.to_string()])
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn user_ldif(name: &str, uid_number: u32, hash: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(hash);
    format!(
        "dn: uid={name},ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: person\n\
         objectClass: organizationalPerson\nobjectClass: inetOrgPerson\nobjectClass: user\n\
         objectClass: posixAccount\ncn: {name}\nsn: {name}\nuid: {name}\n\
         sAMAccountName: {name}\nuidNumber: {uid_number}\ngidNumber: 5000\n\
         homeDirectory: /home/{name}\nuserPassword:: {b64}\n\n"
    )
}

fn user_dn(name: &str) -> String {
    format!("uid={name},ou=People,dc=example,dc=com")
}

fn bind_rc(s: &TestServer, dn: &str, pw: &str) -> i32 {
    rc(&s.whoami(&["-H", &s.ldap_url(), "-D", dn, "-w", pw]))
}

fn legacy_count(s: &TestServer) -> u64 {
    let out = s.search_as_admin(&[
        "-b",
        "",
        "-s",
        "base",
        "(objectClass=*)",
        "dirdLegacyPasswordCount",
    ]);
    let v = values(&out, "dirdLegacyPasswordCount");
    assert_eq!(v.len(), 1, "{}", text(&out));
    v[0].parse().unwrap()
}

const PEOPLE_OU: &str = "dn: ou=People,dc=example,dc=com\nobjectClass: top\n\
                         objectClass: organizationalUnit\nou: People\n\n";

#[test]
fn openldap_hashes_import_verify_upgrade_and_then_kinit() {
    let mut s = TestServer::configured_kdc("");
    let out = s.cli(&["init"]);
    assert!(out.status.success(), "{}", text(&out));
    let users: Vec<(String, String, String)> = [
        ("ssha", "{SSHA}", None),
        ("ssha256", "{SSHA256}", None),
        ("ssha512", "{SSHA512}", None),
        ("sha512crypt", "{CRYPT}", Some("$6$%.16s")),
        ("sha256crypt", "{CRYPT}", Some("$5$rounds=20000$%.16s")),
        ("yescrypt", "{CRYPT}", Some("$y$j9T$%.16s")),
        ("bcrypt", "{CRYPT}", Some("$2b$05$%.22s")),
        ("pbkdf2", "", None),
    ]
    .into_iter()
    .map(|(name, scheme, fmt)| {
        let pw = format!("{name}-Passw0rd!");
        let hash = if name == "pbkdf2" {
            pbkdf2_sha256(&pw, 10_000)
        } else {
            slappasswd(scheme, fmt, &pw)
        };
        (name.to_string(), pw, hash)
    })
    .collect();
    let mut ldif = PEOPLE_OU.to_string();
    for (i, (name, _, hash)) in users.iter().enumerate() {
        ldif.push_str(&user_ldif(name, 20_000 + i as u32, hash));
    }
    // An OpenLDAP group: groupOfNames + posixGroup with explicit memberUid values, one of
    // which names no entry here.
    ldif.push_str(
        "dn: cn=staff,ou=People,dc=example,dc=com\nobjectClass: top\n\
         objectClass: groupOfNames\nobjectClass: posixGroup\ncn: staff\ngidNumber: 5000\n\
         member: uid=ssha,ou=People,dc=example,dc=com\nmemberUid: ssha\nmemberUid: bcrypt\n\
         memberUid: localonly\n\n",
    );
    let file = s.path("slapcat.ldif");
    std::fs::write(&file, &ldif).unwrap();
    let out = s.cli(&["import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    // A hash beyond the cost bounds is refused by import, naming the scheme and the bound.
    let costly = slappasswd("{CRYPT}", Some("$6$rounds=5000000$%.16s"), "x");
    let bad = s.path("costly.ldif");
    std::fs::write(&bad, user_ldif("costly", 29_999, &costly)).unwrap();
    let out = s.cli(&["import", bad.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("CRYPT") && text(&out).contains("rounds=5000000"),
        "{}",
        text(&out)
    );
    // `dird user show` reports the accounts still on a migrated hash.
    let out = s.cli(&["user", "show", "ssha"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("accounts still on a migrated password hash: 8"),
        "{}",
        text(&out)
    );
    assert!(
        stdout(&out).contains("# password: a hash migrated"),
        "{}",
        text(&out)
    );

    s.launch();
    assert_eq!(legacy_count(&s), users.len() as u64);
    // Not for everyone: anonymous rootDSE readers do not see it.
    let out = s.ldapsearch(&[
        "-H",
        &s.ldap_url(),
        "-b",
        "",
        "-s",
        "base",
        "(objectClass=*)",
        "dirdLegacyPasswordCount",
    ]);
    assert!(
        values(&out, "dirdLegacyPasswordCount").is_empty(),
        "{}",
        text(&out)
    );

    // Before the first bind: no Kerberos keys, and the KDC says so.
    let (first, first_pw, _) = &users[0];
    s.krb_fails(
        "krb5.conf",
        "cc.before",
        &["kinit", first],
        &format!("{first_pw}\n"),
        "null key",
    );

    for (i, (name, pw, _)) in users.iter().enumerate() {
        let dn = user_dn(name);
        assert_eq!(
            bind_rc(&s, &dn, "wrong-Passw0rd"),
            49,
            "{name}: wrong password"
        );
        assert_eq!(
            bind_rc(&s, &dn, &format!("{pw}x")),
            49,
            "{name}: longer password"
        );
        assert_eq!(bind_rc(&s, &dn, pw), 0, "{name}: right password");
        assert_eq!(
            legacy_count(&s),
            (users.len() - i - 1) as u64,
            "{name}: upgraded on its first bind"
        );
        // After the upgrade the same password still works (now against argon2).
        assert_eq!(bind_rc(&s, &dn, pw), 0, "{name}: after the upgrade");
        assert_eq!(
            bind_rc(&s, &dn, "wrong-Passw0rd"),
            49,
            "{name}: wrong after"
        );
    }
    // The first bind derived the Kerberos keys.
    s.krb_ok(
        "krb5.conf",
        "cc.after",
        &["kinit", first],
        &format!("{first_pw}\n"),
    );

    // Hashes are never returned over LDAP, even to administrators.
    let out = s.search_as_admin(&["-b", PEOPLE, "(uid=*)", "userPassword", "*", "+"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !stdout(&out).to_lowercase().contains("userpassword"),
        "{}",
        text(&out)
    );

    // memberUid: the values naming users became member links (memberOf works), the one
    // naming nobody is kept and served.
    let out = s.search_as_admin(&[
        "-b",
        "cn=staff,ou=People,dc=example,dc=com",
        "-s",
        "base",
        "(objectClass=*)",
        "member",
        "memberUid",
    ]);
    let mut uids = values(&out, "memberUid");
    uids.sort();
    assert_eq!(uids, ["bcrypt", "localonly", "ssha"], "{}", text(&out));
    let mut members = values(&out, "member");
    members.sort();
    assert_eq!(
        members,
        [user_dn("bcrypt"), user_dn("ssha")],
        "{}",
        text(&out)
    );
    let out = s.search_as_admin(&[
        "-b",
        &user_dn("bcrypt"),
        "-s",
        "base",
        "(objectClass=*)",
        "memberOf",
    ]);
    assert_eq!(
        values(&out, "memberOf"),
        ["cn=staff,ou=People,dc=example,dc=com"],
        "{}",
        text(&out)
    );
    let out = s.search_as_admin(&[
        "-b",
        PEOPLE,
        "(&(objectClass=posixGroup)(memberUid=localonly))",
        "1.1",
    ]);
    assert_eq!(dns(&out).len(), 1, "{}", text(&out));

    // Offline, the export shows argon2 for every upgraded account.
    s.stop();
    let export = s.path("export.ldif");
    let out = s.cli(&["export", "--out", export.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let exported = std::fs::read_to_string(&export).unwrap();
    let argon2 = base64::engine::general_purpose::STANDARD.encode("{ARGON2}");
    let prefix = &argon2[..8]; // "{ARGON2}" is 8 bytes: its first 8 base64 characters are fixed
    let hashes: Vec<&str> = exported
        .lines()
        .filter(|l| l.to_lowercase().starts_with("userpassword"))
        .collect();
    assert!(hashes.len() > users.len(), "{exported}");
    for h in hashes {
        assert!(
            h.contains(prefix) || h.contains("{ARGON2}"),
            "not argon2 after the upgrade: {h}"
        );
    }
}

#[test]
fn administrators_add_migrated_hashes_users_cannot_and_costs_are_bounded() {
    let s = TestServer::start_kdc();
    s.seed(SEED);
    let add = |name: &str, hash: &str| {
        format!(
            "dn: uid={name},ou=People,dc=example,dc=com\nchangetype: add\nobjectClass: top\n\
             objectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\n\
             objectClass: inetOrgPerson\ncn: {name}\nsn: {name}\nuid: {name}\n\
             sAMAccountName: {name}\nuserPassword: {hash}\n\n"
        )
    };
    let before = legacy_count(&s);
    let ssha = slappasswd("{SSHA}", None, "Migrated-Passw0rd");
    let out = s.modify_as_admin(&s.ldaps_url(), &add("mig", &ssha));
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(legacy_count(&s), before + 1);
    assert_eq!(bind_rc(&s, &user_dn("mig"), "Migrated-Passw0rd"), 0);
    assert_eq!(legacy_count(&s), before);

    // Out of bounds: constraintViolation naming the scheme and the bound.
    for (hash, needle) in [
        (
            slappasswd("{CRYPT}", Some("$6$rounds=2000000$%.16s"), "x"),
            "rounds=2000000",
        ),
        (pbkdf2_sha256("x", 2_000_000), "2000000 iterations"),
        (
            "{CRYPT}$2b$17$24M8C4UADlg6J9sZWoMIRO7mB7Y2r9UE98GLMQHqE.NQ7ZL2E5eya".to_string(),
            "cost 17",
        ),
        (slappasswd("{SHA}", None, "x"), "unsalted"),
    ] {
        let out = s.modify_as_admin(&s.ldaps_url(), &add("costly", &hash));
        assert_eq!(rc(&out), 19, "{hash}: {}", text(&out));
        assert!(text(&out).contains(needle), "{hash}: {}", text(&out));
    }

    // A user cannot hand in a migrated hash for themselves.
    let ssha2 = slappasswd("{SSHA}", None, "Other-Passw0rd-2");
    let out = s.tool_stdin(
        "ldapmodify",
        &["-x", "-H", &s.ldaps_url(), "-D", ALICE_DN, "-w", ALICE_PW],
        Some(&format!(
            "dn: {ALICE_DN}\nchangetype: modify\ndelete: userPassword\nuserPassword: {ALICE_PW}\n-\n\
             add: userPassword\nuserPassword: {ssha2}\n-\n"
        )),
    );
    assert_eq!(rc(&out), 19, "{}", text(&out));
    assert!(text(&out).contains("administrator"), "{}", text(&out));
    assert_eq!(bind_rc(&s, ALICE_DN, ALICE_PW), 0);
}

/// Seconds for `n` simple binds of `dn` on one connection: a minimal RFC 4511 BindRequest
/// written by python3 on a TCP_NODELAY socket (python3-ldap3's own write pattern adds ~40 ms
/// of delayed-ACK wait per request, which would hide the server's work).
fn timed_binds(s: &TestServer, dn: &str, pw: &str, n: usize) -> f64 {
    let script = r#"
import sys,time,socket
def tlv(t,b):
    n=len(b)
    l=bytes([n]) if n<128 else (bytes([0x81,n]) if n<256 else bytes([0x82,n>>8,n&255]))
    return bytes([t])+l+b
host,port=sys.argv[1].split('//')[1].rsplit(':',1)
s=socket.create_connection((host,int(port)))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
t=time.monotonic()
for i in range(1,int(sys.argv[4])+1):
    op=tlv(2,b'\x03')+tlv(4,sys.argv[2].encode())+tlv(0x80,sys.argv[3].encode())
    s.sendall(tlv(0x30, tlv(2,bytes([i]))+tlv(0x60,op)))
    d=s.recv(4096)
    assert bytes([0x61]) in d and bytes([0x0a,1,0]) in d, d.hex()
print(time.monotonic()-t)
"#;
    let url = s.ldap_url();
    let out: Output = s.python(script, &[&url, dn, pw, &n.to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    stdout(&out).trim().parse().unwrap()
}

#[test]
fn bind_cache_makes_repeats_cheap_and_forgets_on_every_change() {
    let cached = TestServer::start_seeded();
    let uncached = TestServer::start_with("bind_cache_ttl_secs = 0\n");
    uncached.seed(SEED);
    let n = 20;
    let t_cached = timed_binds(&cached, ALICE_DN, ALICE_PW, n);
    let t_uncached = timed_binds(&uncached, ALICE_DN, ALICE_PW, n);
    println!("{n} binds: cached {t_cached:.3} s, uncached {t_uncached:.3} s");
    assert!(
        t_cached * 3.0 < t_uncached,
        "cached {t_cached:.3} s vs uncached {t_uncached:.3} s"
    );
    let s = cached;
    // A wrong password is never served from the cache.
    assert_eq!(bind_rc(&s, ALICE_DN, "wrong-Passw0rd"), 49);

    // A password change invalidates at once: the old password is refused immediately.
    let out = s.tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &s.ldaps_url(),
            "-D",
            ALICE_DN,
            "-w",
            ALICE_PW,
            "-a",
            ALICE_PW,
            "-s",
            "alice-Changed-1",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        bind_rc(&s, ALICE_DN, ALICE_PW),
        49,
        "old password after the change"
    );
    assert_eq!(bind_rc(&s, ALICE_DN, "alice-Changed-1"), 0);
    assert_eq!(bind_rc(&s, ALICE_DN, "alice-Changed-1"), 0);

    // Disabling the account: the cached credential no longer binds.
    let out = s.modify_as_admin(
        &s.ldaps_url(),
        &format!("dn: {ALICE_DN}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n-\n"),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let out = s.whoami(&["-H", &s.ldap_url(), "-D", ALICE_DN, "-w", "alice-Changed-1"]);
    assert_eq!(rc(&out), 49, "{}", text(&out));
    assert!(text(&out).contains("533"), "{}", text(&out));

    // Lockout applies to a cached credential.
    let out = s.modify_as_admin(
        &s.ldaps_url(),
        &format!(
            "dn: {BASE}\nchangetype: modify\nreplace: lockoutThreshold\nlockoutThreshold: 3\n-\n"
        ),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(bind_rc(&s, BOB_DN, BOB_PW), 0);
    assert_eq!(bind_rc(&s, BOB_DN, BOB_PW), 0); // cached
    for _ in 0..3 {
        assert_eq!(bind_rc(&s, BOB_DN, "wrong-Passw0rd"), 49);
    }
    let start = Instant::now();
    let out = s.whoami(&["-H", &s.ldap_url(), "-D", BOB_DN, "-w", BOB_PW]);
    assert_eq!(rc(&out), 49, "{}", text(&out));
    assert!(text(&out).contains("775"), "{}", text(&out));
    assert!(start.elapsed() < Duration::from_secs(10));
}
