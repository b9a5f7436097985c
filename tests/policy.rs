//! Tiers and account policy (issue 5), end to end with the real `dird` binary and real
//! clients (OpenLDAP's ldapadd/ldapmodify/ldappasswd/ldapwhoami, MIT kinit/kpasswd, the
//! `dird` CLI): tier caps on every write path (50 concurrent adds at the boundary, LDIF import
//! refused before it writes, CLI, start with a lowered tier), usage in the rootDSE for admins,
//! the domain password policy and fine-grained password settings objects, lockout from LDAP
//! binds and Kerberos pre-authentication together (a 1,000-guess burst), and the account
//! state (must change, expired, account expiry, password-policy response control).
//! A missing tool fails the test with a clear message (never skips).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{rc, stdout, text, values, TestServer, ADMIN_DN, ADMIN_PW, BASE, SEED};

const ALICE_DN: &str = "cn=alice,ou=People,dc=example,dc=com";
const BOB_DN: &str = "cn=bob,ou=People,dc=example,dc=com";
const CAROL_DN: &str = "cn=carol,ou=People,dc=example,dc=com";
const DEVS_DN: &str = "cn=devs,ou=People,dc=example,dc=com";
const PSO_CONTAINER: &str = "cn=Password Settings Container,cn=System,dc=example,dc=com";
const UDP: &str = "krb5.conf";

/// Most a correct bind of another account may take while a 1,000-guess burst runs against
/// one account (README, "Account policy"): the burst costs `lockoutThreshold` argon2 checks,
/// then each guess is refused before any hashing.
const GOOD_BIND_BOUND: Duration = Duration::from_secs(2);

fn require_tools() {
    for tool in [
        "ldapadd",
        "ldapmodify",
        "ldappasswd",
        "ldapwhoami",
        "ldapsearch",
        "kinit",
        "kpasswd",
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` is not on PATH: install ldap-utils and krb5-user (scripts/test-all.sh does)"
        );
    }
}

fn cli_ok(s: &TestServer, args: &[&str]) -> String {
    let out = s.cli(args);
    assert!(
        out.status.success(),
        "dird {} failed:\n{}",
        args.join(" "),
        text(&out)
    );
    stdout(&out)
}

/// `ldapmodify` as Administrator over LDAPS (password changes need TLS).
fn admin_modify(s: &TestServer, ldif: &str) -> std::process::Output {
    s.modify_as_admin(&s.ldaps_url(), ldif)
}

fn admin_modify_ok(s: &TestServer, ldif: &str) {
    let out = admin_modify(s, ldif);
    assert!(
        out.status.success(),
        "ldapmodify failed for\n{ldif}\n{}",
        text(&out)
    );
}

fn replace(dn: &str, attr: &str, value: &str) -> String {
    format!("dn: {dn}\nchangetype: modify\nreplace: {attr}\n{attr}: {value}\n")
}

/// `ldapwhoami` as `dn`/`pw` over ldap://, with extra arguments (e.g. `-e ppolicy`).
fn whoami(s: &TestServer, dn: &str, pw: &str, extra: &[&str]) -> std::process::Output {
    let url = s.ldap_url();
    let mut args = vec!["-H", url.as_str(), "-D", dn, "-w", pw];
    args.extend_from_slice(extra);
    s.whoami(&args)
}

/// `ldappasswd` over StartTLS: as `bind` (`None`: anonymous) for `target`, with the old
/// password if given.
fn ldappasswd(
    s: &TestServer,
    bind: Option<(&str, &str)>,
    target: &str,
    old: Option<&str>,
    new: &str,
) -> std::process::Output {
    let url = s.ldap_url();
    let mut args = vec!["-x", "-ZZ", "-H", url.as_str(), "-o", "nettimeout=10"];
    if let Some((dn, pw)) = bind {
        args.extend_from_slice(&["-D", dn, "-w", pw]);
    }
    if let Some(old) = old {
        args.extend_from_slice(&["-a", old]);
    }
    args.extend_from_slice(&["-s", new, target]);
    s.tool("ldappasswd", &args)
}

/// A FILETIME (100 ns since 1601) for `t`.
fn filetime(t: SystemTime) -> i64 {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    (secs + 11_644_473_600) * 10_000_000
}

fn root_dse_as(s: &TestServer, bind: Option<(&str, &str)>) -> std::process::Output {
    let url = s.ldap_url();
    let mut args = vec!["-H", url.as_str()];
    if let Some((dn, pw)) = bind {
        args.extend_from_slice(&["-D", dn, "-w", pw]);
    }
    args.extend_from_slice(&["-b", "", "-s", "base", "(objectClass=*)", "+"]);
    s.ldapsearch(&args)
}

fn usage_value(s: &TestServer, attr: &str) -> u64 {
    let out = root_dse_as(s, Some((ADMIN_DN, ADMIN_PW)));
    values(&out, attr)
        .first()
        .unwrap_or_else(|| panic!("no {attr} in the rootDSE: {}", text(&out)))
        .parse()
        .unwrap()
}

fn groups_ldif(prefix: &str, n: usize) -> String {
    let mut out = format!(
        "dn: ou={prefix},dc=example,dc=com\nobjectClass: top\nobjectClass: organizationalUnit\nou: {prefix}\n\n"
    );
    for i in 1..n {
        out.push_str(&format!(
            "dn: cn={prefix}{i},ou={prefix},dc=example,dc=com\nobjectClass: top\nobjectClass: group\ncn: {prefix}{i}\n\n"
        ));
    }
    out
}

fn users_ldif(prefix: &str, n: usize) -> String {
    let mut out = format!(
        "dn: ou={prefix},dc=example,dc=com\nobjectClass: top\nobjectClass: organizationalUnit\nou: {prefix}\n\n"
    );
    for i in 0..n {
        out.push_str(&format!(
            "dn: cn={prefix}{i},ou={prefix},dc=example,dc=com\nobjectClass: top\nobjectClass: person\n\
             objectClass: organizationalPerson\nobjectClass: user\ncn: {prefix}{i}\nsAMAccountName: {prefix}{i}\n\n"
        ));
    }
    out
}

fn user_add_ldif(dn_cn: &str) -> String {
    format!(
        "dn: cn={dn_cn},cn=Users,dc=example,dc=com\nchangetype: add\nobjectClass: top\nobjectClass: person\n\
         objectClass: organizationalPerson\nobjectClass: user\ncn: {dn_cn}\nsAMAccountName: {dn_cn}\n"
    )
}

#[test]
fn small_tier_caps_hold_on_every_write_path() {
    require_tools();
    let mut s = TestServer::configured("");
    s.set_tier("small");
    cli_ok(&s, &["init"]);
    // The provisioned domain holds 12 objects (2 users, the DC's computer account); fill up
    // to 1,980 objects.
    let fill = s.path("fill.ldif");
    std::fs::write(&fill, groups_ldif("bulk", 1968)).unwrap();
    cli_ok(&s, &["import", fill.to_str().unwrap()]);

    // An import that would cross the cap is refused before it writes anything.
    let over = s.path("over.ldif");
    std::fs::write(&over, groups_ldif("over", 21)).unwrap();
    let out = s.cli(&["import", over.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("tier small allows 2000 directory objects; 1980 exist")
            && msg.contains("nothing was written"),
        "{msg}"
    );

    s.launch();
    assert_eq!(
        usage_value(&s, "dirdObjectCount"),
        1980,
        "the refused import wrote nothing"
    );
    assert_eq!(usage_value(&s, "dirdObjectLimit"), 2000);
    assert_eq!(usage_value(&s, "dirdUserCount"), 2);
    assert_eq!(usage_value(&s, "dirdUserLimit"), 500);
    let out = root_dse_as(&s, Some((ADMIN_DN, ADMIN_PW)));
    assert_eq!(values(&out, "dirdTier"), vec!["small"]);
    // Not for anonymous clients.
    let out = root_dse_as(&s, None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(values(&out, "dirdObjectCount").is_empty(), "{}", text(&out));

    // 50 concurrent ldapadd of users at the boundary: exactly 20 fit.
    let start = Arc::new(Barrier::new(50));
    let url = s.ldap_url();
    let ca = s.ca();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let (start, url, ca) = (start.clone(), url.clone(), ca.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut child = Command::new("ldapadd")
                    .args([
                        "-x",
                        "-H",
                        &url,
                        "-D",
                        ADMIN_DN,
                        "-w",
                        ADMIN_PW,
                        "-o",
                        "nettimeout=30",
                    ])
                    .env("LDAPTLS_CACERT", ca)
                    .env("LDAPCONF", "/dev/null")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("ldapadd");
                common::feed_stdin(&mut child, user_add_ldif(&format!("racer{i}")).as_bytes());
                child.wait_with_output().unwrap()
            })
        })
        .collect();
    let outs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = outs.iter().filter(|o| o.status.success()).count();
    let refused: Vec<_> = outs.iter().filter(|o| !o.status.success()).collect();
    assert_eq!(ok, 20, "exactly the room left succeeds");
    for o in &refused {
        assert_eq!(rc(o), 11, "adminLimitExceeded: {}", text(o));
        assert!(
            text(o).contains("tier small allows 2000 directory objects; 2000 exist"),
            "{}",
            text(o)
        );
    }
    assert_eq!(usage_value(&s, "dirdObjectCount"), 2000);

    // The CLI is refused too, with the same message.
    s.stop();
    let out = s.cli(&["user", "add", "late", "--password", "late-Passw0rd-1"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("tier small allows 2000 directory objects"),
        "{}",
        text(&out)
    );
}

#[test]
fn user_cap_import_and_lowered_tier() {
    require_tools();
    let mut s = TestServer::configured("");
    s.set_tier("small");
    cli_ok(&s, &["init"]);
    // 2 provisioned users + 498 = the small tier's 500.
    let fill = s.path("users.ldif");
    std::fs::write(&fill, users_ldif("u", 498)).unwrap();
    cli_ok(&s, &["import", fill.to_str().unwrap()]);
    let one = s.path("one.ldif");
    std::fs::write(&one, users_ldif("v", 1)).unwrap();
    let out = s.cli(&["import", one.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("tier small allows 500 users; 500 exist"),
        "{}",
        text(&out)
    );

    s.launch();
    assert_eq!(usage_value(&s, "dirdUserCount"), 500);
    let out = admin_modify(&s, &user_add_ldif("extra"));
    assert_eq!(rc(&out), 11, "{}", text(&out));
    assert!(
        text(&out).contains("tier small allows 500 users; 500 exist"),
        "{}",
        text(&out)
    );
    // Objects that are not users still fit.
    admin_modify_ok(
        &s,
        "dn: ou=more,dc=example,dc=com\nchangetype: add\nobjectClass: organizationalUnit\nou: more\n",
    );
    s.stop();

    // Under a larger tier one more user fits; lowering the tier again is refused at start.
    s.set_tier("large");
    cli_ok(
        &s,
        &["user", "add", "over", "--password", "over-Passw0rd-1"],
    );
    s.set_tier("small");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dird"))
        .arg("--config")
        .arg(s.config_path())
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dird started with a tier below its usage");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(
        err.contains("tier: \"small\" allows 500 users, but the directory holds 501"),
        "{err}"
    );
}

/// The domain password policy on every path: LDAP modify, Password Modify, CLI, kpasswd.
#[test]
fn domain_password_policy_on_every_path() {
    require_tools();
    let mut s = TestServer::start_kdc();
    s.seed(SEED);
    // Provisioning wrote AD-style defaults on the domain object.
    let out = stdout(&s.search_as_admin(&[
        "-b",
        BASE,
        "-s",
        "base",
        "(objectClass=*)",
        "minPwdLength",
        "lockoutThreshold",
    ]));
    assert!(out.contains("minPwdLength: 7"), "{out}");
    assert!(out.contains("lockoutThreshold: 0"), "{out}");

    admin_modify_ok(
        &s,
        &format!(
            "dn: {BASE}\nchangetype: modify\nreplace: minPwdLength\nminPwdLength: 10\n-\n\
             replace: pwdProperties\npwdProperties: 1\n-\nreplace: pwdHistoryLength\npwdHistoryLength: 3\n"
        ),
    );
    admin_modify_ok(&s, &replace(ALICE_DN, "displayName", "Alice Liddell"));
    let rejected = |out: &std::process::Output, rule: &str| {
        // ldapmodify exits with the result code; ldappasswd exits 1 and prints it.
        assert!(
            rc(out) == 19 || text(out).contains("Constraint violation (19)"),
            "constraintViolation expected: {}",
            text(out)
        );
        assert!(
            text(out).contains(rule),
            "expected {rule:?} in {}",
            text(out)
        );
    };
    // LDAP modify (admin reset): length, complexity classes, account name, display name.
    rejected(
        &admin_modify(&s, &replace(ALICE_DN, "userPassword", "Sh0rt-pw")),
        "at least 10 characters",
    );
    rejected(
        &admin_modify(&s, &replace(ALICE_DN, "userPassword", "alllowercase12")),
        "three of",
    );
    rejected(
        &admin_modify(&s, &replace(ALICE_DN, "userPassword", "xALICEx-2024")),
        "account name",
    );
    rejected(
        &admin_modify(&s, &replace(ALICE_DN, "userPassword", "Liddell-2024")),
        "display name",
    );
    // LDAP add with a weak password.
    rejected(
        &admin_modify(
            &s,
            "dn: cn=weak,cn=Users,dc=example,dc=com\nchangetype: add\nobjectClass: user\ncn: weak\n\
             sAMAccountName: weak\nuserPassword: weakweak12\n",
        ),
        "three of",
    );
    admin_modify_ok(&s, &replace(ALICE_DN, "userPassword", "Tr0ub4dor&3x"));
    let pwd_last_set: i64 = s
        .search_admin(ALICE_DN, "(objectClass=*)", &["pwdLastSet"])
        .lines()
        .find_map(|l| l.strip_prefix("pwdLastSet: "))
        .expect("pwdLastSet set by the password change")
        .parse()
        .unwrap();
    assert!((pwd_last_set - filetime(SystemTime::now())).abs() < 600 * 10_000_000);

    // Password Modify, self-service: rules and history (3 remembered).
    rejected(
        &ldappasswd(
            &s,
            Some((ALICE_DN, "Tr0ub4dor&3x")),
            ALICE_DN,
            Some("Tr0ub4dor&3x"),
            "nocomplexity1",
        ),
        "three of",
    );
    for next in ["Second-Pass-2", "Third-Pass-33"] {
        let prev = if next.starts_with("Second") {
            "Tr0ub4dor&3x"
        } else {
            "Second-Pass-2"
        };
        let out = ldappasswd(&s, Some((ALICE_DN, prev)), ALICE_DN, Some(prev), next);
        assert!(out.status.success(), "{}", text(&out));
    }
    rejected(
        &ldappasswd(
            &s,
            Some((ALICE_DN, "Third-Pass-33")),
            ALICE_DN,
            Some("Third-Pass-33"),
            "Tr0ub4dor&3x",
        ),
        "history",
    );
    // An administrator's reset is exempt from the history (as in AD).
    let out = ldappasswd(
        &s,
        Some((ADMIN_DN, ADMIN_PW)),
        ALICE_DN,
        None,
        "Tr0ub4dor&3x",
    );
    assert!(out.status.success(), "{}", text(&out));
    // Minimum age: a user's own change within a day of the last one is refused.
    admin_modify_ok(&s, &replace(BASE, "minPwdAge", "-864000000000"));
    rejected(
        &ldappasswd(
            &s,
            Some((ALICE_DN, "Tr0ub4dor&3x")),
            ALICE_DN,
            Some("Tr0ub4dor&3x"),
            "Fourth-Pass-44",
        ),
        "minimum password age",
    );
    admin_modify_ok(&s, &replace(BASE, "minPwdAge", "0"));

    // kpasswd: the policy's reason comes back as the soft error.
    let out = s.krb(
        UDP,
        "cc.kp",
        &["kpasswd", "alice"],
        "Tr0ub4dor&3x\nshortpw\nshortpw\n",
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("at least 10 characters"),
        "{}",
        text(&out)
    );
    let out = s.krb(
        UDP,
        "cc.kp",
        &["kpasswd", "alice"],
        "Tr0ub4dor&3x\nKpasswd-Pass-5\nKpasswd-Pass-5\n",
    );
    assert!(out.status.success(), "{}", text(&out));

    // The CLI.
    s.stop();
    let out = s.cli(&["user", "passwd", "alice", "--password", "Alice-is-weak1"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("account name"), "{}", text(&out));
    let out = s.cli(&["user", "add", "dora", "--password", "short"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("at least 10 characters"),
        "{}",
        text(&out)
    );
}

#[test]
fn fine_grained_policies_lowest_precedence_wins() {
    require_tools();
    let s = TestServer::start();
    s.seed(SEED);
    let pso = |name: &str, prec: u32, applies: &str, len: u32| {
        format!(
            "dn: cn={name},{PSO_CONTAINER}\nchangetype: add\nobjectClass: top\nobjectClass: msDS-PasswordSettings\n\
             cn: {name}\nmsDS-PasswordSettingsPrecedence: {prec}\nmsDS-MinimumPasswordLength: {len}\n\
             msDS-PasswordComplexityEnabled: FALSE\nmsDS-PSOAppliesTo: {applies}\n"
        )
    };
    admin_modify_ok(&s, &pso("devs-pso", 10, DEVS_DN, 16));
    admin_modify_ok(&s, &pso("bob-pso", 50, BOB_DN, 12));
    let resultant = |dn: &str| -> Vec<String> {
        let out = s.search_as_admin(&[
            "-b",
            dn,
            "-s",
            "base",
            "(objectClass=*)",
            "msDS-ResultantPSO",
        ]);
        values(&out, "msDS-ResultantPSO")
    };
    assert_eq!(
        resultant(ALICE_DN),
        vec![format!("cn=devs-pso,{PSO_CONTAINER}")]
    );
    // bob is in ops, nested in devs; the PSO linked to bob directly wins regardless of precedence.
    assert_eq!(
        resultant(BOB_DN),
        vec![format!("cn=bob-pso,{PSO_CONTAINER}")]
    );
    assert!(
        resultant(CAROL_DN).is_empty(),
        "carol has the domain policy"
    );

    let out = admin_modify(&s, &replace(ALICE_DN, "userPassword", "Twelve-chars"));
    assert_eq!(rc(&out), 19, "{}", text(&out));
    assert!(
        text(&out).contains("at least 16 characters"),
        "{}",
        text(&out)
    );
    admin_modify_ok(&s, &replace(BOB_DN, "userPassword", "Twelve-chars"));
    admin_modify_ok(&s, &replace(CAROL_DN, "userPassword", "seven77"));

    // A lower precedence on the same group takes over.
    admin_modify_ok(&s, &pso("strict", 1, DEVS_DN, 20));
    assert_eq!(
        resultant(ALICE_DN),
        vec![format!("cn=strict,{PSO_CONTAINER}")]
    );
    let out = admin_modify(&s, &replace(ALICE_DN, "userPassword", "Sixteen-chars-16"));
    assert!(
        text(&out).contains("at least 20 characters"),
        "{}",
        text(&out)
    );
}

/// A minimal LDAP client for the flood (raw BER over a real socket): one simple bind,
/// returning the result code.
struct RawLdap {
    stream: TcpStream,
    id: u8,
}

impl RawLdap {
    fn connect(addr: SocketAddr) -> RawLdap {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        RawLdap { stream, id: 0 }
    }

    fn bind(&mut self, dn: &str, pw: &str) -> u8 {
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            if body.len() < 128 {
                out.push(body.len() as u8);
            } else {
                out.push(0x82);
                out.extend_from_slice(&(body.len() as u16).to_be_bytes());
            }
            out.extend_from_slice(body);
            out
        }
        self.id = self.id.wrapping_add(1).max(1) % 120 + 1;
        let mut req = tlv(0x02, &[3]);
        req.extend(tlv(0x04, dn.as_bytes()));
        req.extend(tlv(0x80, pw.as_bytes()));
        let mut msg = tlv(0x02, &[self.id]);
        msg.extend(tlv(0x60, &req));
        self.stream.write_all(&tlv(0x30, &msg)).unwrap();
        let mut head = [0u8; 2];
        self.stream.read_exact(&mut head).unwrap();
        let len = if head[1] & 0x80 == 0 {
            head[1] as usize
        } else {
            let n = (head[1] & 0x7f) as usize;
            let mut b = vec![0u8; n];
            self.stream.read_exact(&mut b).unwrap();
            b.iter().fold(0usize, |a, &x| a << 8 | x as usize)
        };
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).unwrap();
        // 02 01 id, 61 len, 0a 01 code
        let op = 2 + body[1] as usize;
        assert_eq!(body[op], 0x61, "BindResponse");
        let at = if body[op + 1] & 0x80 == 0 {
            op + 2
        } else {
            op + 2 + (body[op + 1] & 0x7f) as usize
        };
        assert_eq!(body[at], 0x0a, "resultCode");
        body[at + 2]
    }
}

#[test]
fn burst_of_bad_binds_locks_the_account_without_slowing_others() {
    require_tools();
    let mut s = TestServer::start();
    s.seed(SEED);
    admin_modify_ok(
        &s,
        &format!(
            "dn: {BASE}\nchangetype: modify\nreplace: lockoutThreshold\nlockoutThreshold: 5\n-\n\
             replace: lockoutDuration\nlockoutDuration: -18000000000\n-\n\
             replace: lockOutObservationWindow\nlockOutObservationWindow: -18000000000\n"
        ),
    );
    // Baseline latency of a correct bind.
    let timed = |dn: &str, pw: &str| {
        let t = Instant::now();
        let out = whoami(&s, dn, pw, &[]);
        (t.elapsed(), out)
    };
    let (baseline, out) = timed(ALICE_DN, "alice-Passw0rd");
    assert!(out.status.success(), "{}", text(&out));

    // 1,000 wrong passwords for bob over 20 connections, while alice keeps binding.
    let addr = s.ldap;
    let burst_start = Instant::now();
    let workers: Vec<_> = (0..20)
        .map(|w| {
            std::thread::spawn(move || {
                let mut c = RawLdap::connect(addr);
                let mut codes = Vec::new();
                for i in 0..50 {
                    codes.push(c.bind(BOB_DN, &format!("guess-{w}-{i}")));
                }
                codes
            })
        })
        .collect();
    let mut worst = Duration::ZERO;
    let mut samples = 0;
    while workers.iter().any(|h| !h.is_finished()) || samples < 3 {
        let (took, out) = timed(ALICE_DN, "alice-Passw0rd");
        assert!(
            out.status.success(),
            "alice during the burst: {}",
            text(&out)
        );
        worst = worst.max(took);
        samples += 1;
    }
    let codes: Vec<u8> = workers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let burst = burst_start.elapsed();
    assert_eq!(codes.len(), 1000);
    assert!(
        codes.iter().all(|&c| c == 49),
        "every guess is invalidCredentials"
    );
    eprintln!(
        "burst of 1000 bad binds: {burst:?}; good bind baseline {baseline:?}, worst during burst {worst:?} over {samples} samples"
    );
    assert!(
        worst < GOOD_BIND_BOUND,
        "a correct bind took {worst:?} during the burst (bound {GOOD_BIND_BOUND:?}, baseline {baseline:?})"
    );

    // bob is locked: even the right password gets 49 with AD's data 775; ppolicy says so.
    let out = whoami(&s, BOB_DN, "bob-Passw0rd", &["-e", "ppolicy"]);
    assert_eq!(rc(&out), 49, "{}", text(&out));
    assert!(text(&out).contains("data 775"), "{}", text(&out));
    assert!(
        text(&out).to_lowercase().contains("locked"),
        "{}",
        text(&out)
    );
    // One write: lockoutTime.
    let out = s.search_admin(BOB_DN, "(objectClass=*)", &["lockoutTime"]);
    assert!(out.contains("lockoutTime: "), "{out}");

    // The lockout survives a restart.
    s.restart();
    let out = whoami(&s, BOB_DN, "bob-Passw0rd", &[]);
    assert!(text(&out).contains("data 775"), "{}", text(&out));
    // Only 0 may be written (unlock).
    let out = admin_modify(&s, &replace(BOB_DN, "lockoutTime", "12345"));
    assert_eq!(rc(&out), 53, "{}", text(&out));
    admin_modify_ok(&s, &replace(BOB_DN, "lockoutTime", "0"));
    assert!(whoami(&s, BOB_DN, "bob-Passw0rd", &[]).status.success());

    // Lock again, then `dird user unlock` with the daemon stopped.
    for i in 0..5 {
        let out = whoami(&s, BOB_DN, &format!("wrong-{i}"), &[]);
        assert!(text(&out).contains("data 52e"), "{}", text(&out));
    }
    assert!(text(&whoami(&s, BOB_DN, "bob-Passw0rd", &[])).contains("data 775"));
    // The built-in Administrator is never locked out.
    for i in 0..6 {
        let _ = whoami(&s, ADMIN_DN, &format!("wrong-{i}"), &[]);
    }
    assert!(whoami(&s, ADMIN_DN, ADMIN_PW, &[]).status.success());
    s.stop();
    let out = cli_ok(&s, &["user", "unlock", "bob"]);
    assert!(out.contains("unlocked"), "{out}");
    s.launch();
    assert!(whoami(&s, BOB_DN, "bob-Passw0rd", &[]).status.success());
}

#[test]
fn kerberos_and_ldap_failures_lock_together_and_account_state() {
    require_tools();
    let s = TestServer::start_kdc();
    s.seed(SEED);
    admin_modify_ok(
        &s,
        &format!(
            "dn: {BASE}\nchangetype: modify\nreplace: lockoutThreshold\nlockoutThreshold: 3\n"
        ),
    );
    // Two failed kinits and one failed LDAP bind lock bob.
    for _ in 0..2 {
        s.krb_fails(
            UDP,
            "cc.bob",
            &["kinit", "bob"],
            "wrong-password\n",
            "Password incorrect",
        );
    }
    assert!(text(&whoami(&s, BOB_DN, "wrong-password", &[])).contains("data 52e"));
    s.krb_fails(
        UDP,
        "cc.bob",
        &["kinit", "bob"],
        "bob-Passw0rd\n",
        "revoked",
    );
    assert!(text(&whoami(&s, BOB_DN, "bob-Passw0rd", &[])).contains("data 775"));
    admin_modify_ok(&s, &replace(BOB_DN, "lockoutTime", "0"));
    s.krb_ok(UDP, "cc.bob", &["kinit", "bob"], "bob-Passw0rd\n");
    // Three failed kinits alone lock too.
    for _ in 0..3 {
        s.krb_fails(
            UDP,
            "cc.bob",
            &["kinit", "bob"],
            "wrong-password\n",
            "Password incorrect",
        );
    }
    assert!(text(&whoami(&s, BOB_DN, "bob-Passw0rd", &[])).contains("data 775"));

    // Disabled (exists): 533.
    assert!(text(&whoami(&s, CAROL_DN, "carol-Passw0rd", &[])).contains("data 533"));

    // Must change (pwdLastSet = 0): bind 49 data 773 with changeAfterReset; Kerberos
    // KEY_EXPIRED, and MIT kinit changes the password through kadmin/changepw.
    admin_modify_ok(&s, &replace(ALICE_DN, "pwdLastSet", "0"));
    let out = whoami(&s, ALICE_DN, "alice-Passw0rd", &["-e", "ppolicy"]);
    assert_eq!(rc(&out), 49, "{}", text(&out));
    assert!(text(&out).contains("data 773"), "{}", text(&out));
    assert!(text(&out).contains("must be changed"), "{}", text(&out));
    let out = s.krb_ok(
        UDP,
        "cc.alice",
        &["kinit", "alice"],
        "alice-Passw0rd\nalice-Changed-1\nalice-Changed-1\n",
    );
    let _ = out;
    assert!(whoami(&s, ALICE_DN, "alice-Changed-1", &[])
        .status
        .success());
    // Over LDAP: a must-change user changes it without a bind (Password Modify with the old one).
    admin_modify_ok(&s, &replace(ALICE_DN, "pwdLastSet", "0"));
    let out = ldappasswd(
        &s,
        None,
        ALICE_DN,
        Some("alice-Changed-1"),
        "alice-Changed-2",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(whoami(&s, ALICE_DN, "alice-Changed-2", &[])
        .status
        .success());

    // Expired password (maxPwdAge 1 day, last set 2 days ago): 532 / KEY_EXPIRED.
    admin_modify_ok(&s, &replace(BASE, "maxPwdAge", "-864000000000"));
    let two_days_ago = filetime(SystemTime::now() - Duration::from_secs(2 * 86400));
    admin_modify_ok(
        &s,
        &replace(ALICE_DN, "pwdLastSet", &two_days_ago.to_string()),
    );
    let out = whoami(&s, ALICE_DN, "alice-Changed-2", &["-e", "ppolicy"]);
    assert!(text(&out).contains("data 532"), "{}", text(&out));
    assert!(
        text(&out).to_lowercase().contains("expired"),
        "{}",
        text(&out)
    );
    let out = s.krb(UDP, "cc.alice2", &["kinit", "alice"], "alice-Changed-2\n");
    assert!(!out.status.success());
    assert!(text(&out).contains("Password expired"), "{}", text(&out));
    // DONT_EXPIRE_PASSWORD.
    admin_modify_ok(&s, &replace(ALICE_DN, "userAccountControl", "66048"));
    assert!(whoami(&s, ALICE_DN, "alice-Changed-2", &[])
        .status
        .success());
    s.krb_ok(UDP, "cc.alice3", &["kinit", "alice"], "alice-Changed-2\n");
    admin_modify_ok(&s, &replace(ALICE_DN, "userAccountControl", "512"));

    // Expiry warning: within 14 days of expiry, a ppolicy bind gets timeBeforeExpiration.
    admin_modify_ok(&s, &replace(BASE, "maxPwdAge", "-8640000000000")); // 10 days
    admin_modify_ok(&s, &replace(ALICE_DN, "pwdLastSet", "-1")); // now
    let out = whoami(&s, ALICE_DN, "alice-Changed-2", &["-e", "ppolicy"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("expires in"), "{}", text(&out));

    // Account expiry (accountExpires in the past): 701 / CLIENT_REVOKED.
    let past = filetime(SystemTime::now() - Duration::from_secs(3600));
    admin_modify_ok(&s, &replace(ALICE_DN, "accountExpires", &past.to_string()));
    assert!(text(&whoami(&s, ALICE_DN, "alice-Changed-2", &[])).contains("data 701"));
    s.krb_fails(
        UDP,
        "cc.alice4",
        &["kinit", "alice"],
        "alice-Changed-2\n",
        "revoked",
    );
    admin_modify_ok(
        &s,
        &replace(ALICE_DN, "accountExpires", "9223372036854775807"),
    );
    assert!(whoami(&s, ALICE_DN, "alice-Changed-2", &[])
        .status
        .success());
}
