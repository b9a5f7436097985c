#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Trust mode (issue 13) against a real MIT KDC: the test creates an OTHER.COM realm in a
//! temporary directory (`kdb5_util create -s`, `kadmin.local addprinc`), runs Debian's
//! `krb5kdc -n` on a free loopback port, and drives MIT `kinit`/`kvno` through dird
//! (EXAMPLE.COM) and MIT across the trust. The tools must be installed; missing ones fail the
//! test with the package to install.

mod common;

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{text, TestServer, ADMIN_DN, ADMIN_PW, ALICE_PW, REALM};

const OTHER: &str = "OTHER.COM";
const TRUST_PW: &str = "trust-Secret-1";
const TRUST_PW2: &str = "trust-Secret-2";

fn need(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
                .any(|d| d.join(tool).exists())
        })
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is missing: apt-get install -y {package} (this test never skips)"
    );
}

fn sbin(tool: &str) -> PathBuf {
    for d in ["/usr/sbin", "/sbin"] {
        let p = Path::new(d).join(tool);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(tool)
}

/// A port free for both UDP and TCP on 127.0.0.1 (krb5kdc listens on both).
fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port for UDP and TCP");
}

/// An MIT KDC for OTHER.COM run by the test.
struct MitRealm {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl MitRealm {
    fn start() -> MitRealm {
        need("krb5kdc", "krb5-kdc");
        need("kdb5_util", "krb5-kdc");
        need("kadmin.local", "krb5-admin-server");
        need("kinit", "krb5-user");
        need("kvno", "krb5-user");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display().to_string();
        std::fs::write(
            dir.path().join("kdc.conf"),
            format!(
                "[kdcdefaults]\n  kdc_listen = 127.0.0.1:{port}\n  kdc_tcp_listen = 127.0.0.1:{port}\n\
                 [realms]\n  {OTHER} = {{\n    database_name = {d}/principal\n    key_stash_file = {d}/stash\n    \
                 acl_file = {d}/kadm5.acl\n    kdc_listen = 127.0.0.1:{port}\n    kdc_tcp_listen = 127.0.0.1:{port}\n    \
                 max_life = 10h\n    max_renewable_life = 7d\n    default_principal_flags = +preauth\n  }}\n\
                 [logging]\n  kdc = FILE:{d}/kdc.log\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("kadm5.acl"), "").unwrap();
        let mut realm = MitRealm {
            dir,
            port,
            child: None,
        };
        realm.admin_tool(
            "kdb5_util",
            &["create", "-r", OTHER, "-s", "-P", "master-OTHER"],
        );
        for q in [
            "addprinc -pw bobpw bob".to_string(),
            "addprinc -pw carolpw carol".to_string(),
            "addprinc -randkey HTTP/web.other.com".to_string(),
            format!("ktadd -k {d}/other.keytab HTTP/web.other.com"),
            format!("addprinc -pw {TRUST_PW} krbtgt/{REALM}@{OTHER}"),
            format!("addprinc -pw {TRUST_PW} krbtgt/{OTHER}@{REALM}"),
        ] {
            realm.kadmin(&q);
        }
        let child = Command::new(sbin("krb5kdc"))
            .args(["-n", "-r", OTHER])
            .env("KRB5_KDC_PROFILE", realm.dir.path().join("kdc.conf"))
            .env("KRB5_CONFIG", realm.dir.path().join("kdc.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run krb5kdc");
        realm.child = Some(child);
        // Ready when it answers on TCP.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return realm;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("krb5kdc for {OTHER} did not listen on {port}");
    }

    fn admin_tool(&self, tool: &str, args: &[&str]) -> String {
        let out = Command::new(sbin(tool))
            .args(args)
            .env("KRB5_KDC_PROFILE", self.dir.path().join("kdc.conf"))
            .env("KRB5_CONFIG", self.dir.path().join("kdc.conf"))
            .output()
            .expect("run MIT admin tool");
        assert!(
            out.status.success(),
            "{tool} {args:?} failed:\n{}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn kadmin(&self, query: &str) -> String {
        self.admin_tool("kadmin.local", &["-r", OTHER, "-q", query])
    }

    fn keytab(&self) -> String {
        self.dir.path().join("other.keytab").display().to_string()
    }
}

impl Drop for MitRealm {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// A dird in trust mode with one `[[trust]]` for OTHER.COM (`trust_lines` inside it), an
/// audit file, and a keytab for host/app.example.com exported before the start.
fn dird(mit: &MitRealm, password: &str, trust_lines: &str) -> TestServer {
    let extra = format!(
        "[audit]\npath = \"{{dir}}/audit.jsonl\"\n[metrics]\nlisten = [\"127.0.0.1:0\"]\n[[trust]]\nrealm = \"{OTHER}\"\nkdc = [\"127.0.0.1:{}\"]\n\
         password_file = \"{{dir}}/trust.pw\"\n{trust_lines}\n",
        mit.port
    );
    let mut s = TestServer::configured_kdc(&extra);
    std::fs::write(s.path("trust.pw"), format!("{password}\n")).unwrap();
    let cfg = std::fs::read_to_string(s.config_path()).unwrap();
    std::fs::write(
        s.config_path(),
        cfg.replace("mode = \"standalone\"", "mode = \"trust\""),
    )
    .unwrap();
    let kt = s.path("app.keytab");
    let out = s.cli(&[
        "keytab",
        "--principal",
        "host/app.example.com",
        "--out",
        kt.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "dird keytab: {}", text(&out));
    s.launch();
    s.seed(common::SEED);
    write_conf(&s, mit, "krb5x.conf");
    s
}

/// A krb5.conf naming both realms (dird for EXAMPLE.COM, MIT for OTHER.COM).
fn write_conf(s: &TestServer, mit: &MitRealm, name: &str) {
    let conf = format!(
        "[libdefaults]\n  default_realm = {REALM}\n  dns_lookup_kdc = false\n  dns_lookup_realm = false\n  \
         dns_canonicalize_hostname = false\n  rdns = false\n[realms]\n  {REALM} = {{\n    kdc = {}\n  }}\n  \
         {OTHER} = {{\n    kdc = 127.0.0.1:{}\n  }}\n[domain_realm]\n  .example.com = {REALM}\n  .other.com = {OTHER}\n",
        s.kdc.unwrap(),
        mit.port
    );
    std::fs::write(s.path(name), conf).unwrap();
}

fn audit(s: &TestServer) -> String {
    // The audit stream is written asynchronously.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::read_to_string(s.path("audit.jsonl")).unwrap_or_default()
}

const CONF: &str = "krb5x.conf";

/// `GET /metrics` from the daemon's metrics endpoint.
fn metrics(s: &TestServer) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(s.metrics.expect("metrics address")).unwrap();
    c.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn two_way_trust_with_mit_and_selective_authentication() {
    let mit = MitRealm::start();
    let s = dird(
        &mit,
        TRUST_PW,
        "direction = \"both\"\nkvno = 1\nallowed = [\"bob@OTHER.COM\"]",
    );
    let kt = s.path("app.keytab").display().to_string();

    // Inbound: bob@OTHER.COM (MIT) uses host/app.example.com (dird); the service ticket
    // verifies against the keytab dird exported.
    s.krb_ok(CONF, "cc.bob", &["kinit", "bob@OTHER.COM"], "bobpw\n");
    let out = s.krb_ok(
        CONF,
        "cc.bob",
        &["kvno", "-k", &kt, "host/app.example.com@EXAMPLE.COM"],
        "",
    );
    assert!(out.contains("keytab entry valid"), "{out}");
    let list = s.krb_ok(CONF, "cc.bob", &["klist"], "");
    assert!(list.contains("krbtgt/EXAMPLE.COM@OTHER.COM"), "{list}");

    // Selective authentication: carol@OTHER.COM is not in `allowed`: KDC_ERR_POLICY.
    s.krb_ok(CONF, "cc.carol", &["kinit", "carol@OTHER.COM"], "carolpw\n");
    s.krb_fails(
        CONF,
        "cc.carol",
        &["kvno", "host/app.example.com@EXAMPLE.COM"],
        "",
        "KDC policy rejects request",
    );
    let m = metrics(&s);
    assert!(
        m.lines()
            .any(|l| l.starts_with("dird_kerberos_cross_realm_total{")
                && l.contains("realm=\"OTHER.COM\"")
                && l.contains("outcome=\"refused\"")
                && l.contains("reason=\"not allowed\"")),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l.starts_with("dird_kerberos_cross_realm_total{")
                && l.contains("outcome=\"issued\"")),
        "{m}"
    );
    let log = audit(&s);
    assert!(
        log.lines().any(|l| l.contains("carol@OTHER.COM")
            && l.contains("not allowed")
            && l.contains("ticket_refused")),
        "no refusal for carol in the audit log:\n{log}"
    );

    // Outbound: alice@EXAMPLE.COM (dird) uses HTTP/web.other.com (MIT) through a referral
    // TGT krbtgt/OTHER.COM@EXAMPLE.COM that MIT accepts.
    s.krb_ok(
        CONF,
        "cc.alice",
        &["kinit", "alice"],
        &format!("{ALICE_PW}\n"),
    );
    let out = s.krb_ok(
        CONF,
        "cc.alice",
        &["kvno", "-k", &mit.keytab(), "HTTP/web.other.com@OTHER.COM"],
        "",
    );
    assert!(out.contains("keytab entry valid"), "{out}");
    let list = s.krb_ok(CONF, "cc.alice", &["klist"], "");
    assert!(list.contains("krbtgt/OTHER.COM@EXAMPLE.COM"), "{list}");

    // RFC 6806 referral: with no domain_realm entry for other.com, the client asks dird for
    // HTTP/web.other.com and is referred to OTHER.COM by host name.
    let conf = std::fs::read_to_string(s.path(CONF)).unwrap();
    std::fs::write(
        s.path("krb5-noref.conf"),
        conf.replace("  .other.com = OTHER.COM\n", ""),
    )
    .unwrap();
    s.krb_ok(
        "krb5-noref.conf",
        "cc.alice2",
        &["kinit", "alice"],
        &format!("{ALICE_PW}\n"),
    );
    let out = s.krb(
        "krb5-noref.conf",
        "cc.alice2",
        &["kvno", "-S", "HTTP", "web.other.com"],
        "",
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("Following referral TGT krbtgt/OTHER.COM@EXAMPLE.COM"),
        "no referral from dird:\n{all}"
    );
}

#[test]
fn one_way_trust_and_wrong_password_are_refused_with_clear_reasons() {
    let mit = MitRealm::start();
    // Inbound only, and a password that is not the one MIT's trust principals have.
    let s = dird(&mit, "not-the-trust-password", "direction = \"inbound\"");

    s.krb_ok(CONF, "cc.bob", &["kinit", "bob@OTHER.COM"], "bobpw\n");
    let out = s.krb(
        CONF,
        "cc.bob",
        &["kvno", "host/app.example.com@EXAMPLE.COM"],
        "",
    );
    assert!(
        !out.status.success(),
        "wrong trust key accepted:\n{}",
        text(&out)
    );
    let log = audit(&s);
    assert!(
        log.lines().any(|l| l.contains("ticket_refused")
            && l.contains("wrong key")
            && l.contains("OTHER.COM")),
        "no wrong-key refusal in the audit log:\n{log}"
    );

    // Outbound is not part of an inbound trust.
    s.krb_ok(
        CONF,
        "cc.alice",
        &["kinit", "alice"],
        &format!("{ALICE_PW}\n"),
    );
    s.krb_fails(
        CONF,
        "cc.alice",
        &["kvno", "HTTP/web.other.com@OTHER.COM"],
        "",
        "KDC policy rejects request",
    );
    let log = audit(&s);
    assert!(
        log.lines()
            .any(|l| l.contains("ticket_refused") && l.contains("inbound only")),
        "no direction refusal in the audit log:\n{log}"
    );
}

#[test]
fn rotation_keeps_the_previous_kvno_for_the_overlap_online_and_offline() {
    let mit = MitRealm::start();
    let mut s = dird(&mit, TRUST_PW, "direction = \"both\"\noverlap_secs = 8");
    let kt = s.path("app.keytab").display().to_string();
    let kt2 = s.path("app2.keytab").display().to_string();
    // A second service, exported online through the running daemon.
    let out = s.cli(&[
        "keytab",
        "--principal",
        "host/app2.example.com",
        "--out",
        &kt2,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let inbound = format!("krbtgt/{REALM}@{OTHER}");
    let outbound = format!("krbtgt/{OTHER}@{REALM}");

    // bob's cross-realm TGT under kvno 1.
    s.krb_ok(CONF, "cc.bob", &["kinit", "bob@OTHER.COM"], "bobpw\n");
    let out = s.krb_ok(CONF, "cc.bob", &["kvno", &inbound], "");
    assert!(out.contains("kvno = 1"), "{out}");

    // Both admins change the trust password: MIT with cpw, dird with `trust rotate` (online).
    mit.kadmin(&format!("cpw -pw {TRUST_PW2} {inbound}"));
    mit.kadmin(&format!("cpw -pw {TRUST_PW2} {outbound}"));
    std::fs::write(s.path("trust2.pw"), format!("{TRUST_PW2}\n")).unwrap();
    let out = s.cli(&[
        "trust",
        "rotate",
        "OTHER.COM",
        "--password-file",
        s.path("trust2.pw").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("new kvno 2"), "{}", text(&out));
    let rotated = std::time::Instant::now();

    // During the overlap the kvno-1 TGT still works; a new one is under kvno 2.
    let out = s.krb_ok(
        CONF,
        "cc.bob",
        &["kvno", "-k", &kt, "host/app.example.com@EXAMPLE.COM"],
        "",
    );
    assert!(out.contains("keytab entry valid"), "{out}");
    s.krb_ok(CONF, "cc.bob2", &["kinit", "bob@OTHER.COM"], "bobpw\n");
    let out = s.krb_ok(CONF, "cc.bob2", &["kvno", &inbound], "");
    assert!(out.contains("kvno = 2"), "{out}");
    let out = s.krb_ok(
        CONF,
        "cc.bob2",
        &["kvno", "-k", &kt, "host/app.example.com@EXAMPLE.COM"],
        "",
    );
    assert!(out.contains("keytab entry valid"), "{out}");
    // Outbound referral TGTs use the new kvno, which MIT accepts.
    s.krb_ok(
        CONF,
        "cc.alice",
        &["kinit", "alice"],
        &format!("{ALICE_PW}\n"),
    );
    let out = s.krb_ok(
        CONF,
        "cc.alice",
        &["kvno", "-k", &mit.keytab(), "HTTP/web.other.com@OTHER.COM"],
        "",
    );
    assert!(out.contains("keytab entry valid"), "{out}");
    let out = s.krb_ok(CONF, "cc.alice", &["kvno", &outbound], "");
    assert!(out.contains("kvno = 2"), "{out}");

    // After the overlap the kvno-1 TGT is refused, with the reason in the audit log.
    std::thread::sleep(Duration::from_secs(9).saturating_sub(rotated.elapsed()));
    let out = s.krb(
        CONF,
        "cc.bob",
        &["kvno", "host/app2.example.com@EXAMPLE.COM"],
        "",
    );
    assert!(
        !out.status.success(),
        "kvno 1 accepted after the overlap:\n{}",
        text(&out)
    );
    let log = audit(&s);
    assert!(
        log.lines()
            .any(|l| l.contains("ticket_refused") && l.contains("unknown kvno")),
        "no unknown-kvno refusal in the audit log:\n{log}"
    );

    // Offline rotation (daemon stopped) to kvno 3, with the new password written into the
    // configured password file; the restart finds the file matching the keys in use.
    s.stop();
    // The store with trust key holders passes the store check (sealed keys open).
    let out = s.cli(&["check-store"]);
    assert!(out.status.success(), "check-store: {}", text(&out));
    mit.kadmin(&format!("cpw -pw trust-Secret-3 {inbound}"));
    std::fs::write(s.path("trust.pw"), "trust-Secret-3\n").unwrap();
    let out = s.cli(&[
        "trust",
        "rotate",
        "OTHER.COM",
        "--password-file",
        s.path("trust.pw").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("new kvno 3"), "{}", text(&out));
    s.launch();
    write_conf(&s, &mit, CONF);
    s.krb_ok(CONF, "cc.bob3", &["kinit", "bob@OTHER.COM"], "bobpw\n");
    let out = s.krb_ok(
        CONF,
        "cc.bob3",
        &["kvno", "-k", &kt2, "host/app2.example.com@EXAMPLE.COM"],
        "",
    );
    assert!(out.contains("keytab entry valid"), "{out}");
    // The kvno-2 TGT from before is inside the new overlap.
    let out = s.krb_ok(
        CONF,
        "cc.bob2",
        &["kvno", "-k", &kt2, "host/app2.example.com@EXAMPLE.COM"],
        "",
    );
    assert!(out.contains("keytab entry valid"), "{out}");

    // A new password in the file, then SIGHUP: rotated to kvno 4.
    mit.kadmin(&format!("cpw -pw trust-Secret-4 {inbound}"));
    std::fs::write(s.path("trust.pw"), "trust-Secret-4\n").unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let line = s.wait_stdout("dird reloaded", Duration::from_secs(30));
    assert!(line.contains("trust=ok"), "{line}");
    s.krb_ok(CONF, "cc.bob4", &["kinit", "bob@OTHER.COM"], "bobpw\n");
    let out = s.krb_ok(CONF, "cc.bob4", &["kvno", &inbound], "");
    assert!(out.contains("kvno = 4"), "{out}");
    let out = s.krb_ok(
        CONF,
        "cc.bob4",
        &["kvno", "-k", &kt2, "host/app2.example.com@EXAMPLE.COM"],
        "",
    );
    assert!(out.contains("keytab entry valid"), "{out}");
}

#[test]
fn foreign_principals_in_groups_and_selective_authentication_by_group() {
    let mit = MitRealm::start();
    let group = "cn=Trusted Ops,cn=Users,dc=example,dc=com";
    // Selective authentication names an outer group; bob is in it through "Trusted Ops".
    let outer = "cn=Trusted All,cn=Users,dc=example,dc=com";
    let s = dird(
        &mit,
        TRUST_PW,
        &format!("direction = \"inbound\"\nallowed = [\"group:{outer}\"]"),
    );
    let kt = s.path("app.keytab").display().to_string();
    let fsp = "cn=bob@OTHER.COM,cn=ForeignSecurityPrincipals,dc=example,dc=com";

    // Before bob is in the group, selective authentication refuses him.
    s.krb_ok(CONF, "cc.bob", &["kinit", "bob@OTHER.COM"], "bobpw\n");
    s.krb_fails(
        CONF,
        "cc.bob",
        &["kvno", "host/app.example.com@EXAMPLE.COM"],
        "",
        "KDC policy rejects request",
    );

    // Naming bob as a member value creates his foreignSecurityPrincipal entry.
    s.seed(&format!(
        "dn: {group}\nobjectClass: top\nobjectClass: group\ncn: Trusted Ops\nmember: {fsp}\n"
    ));
    s.seed(&format!(
        "dn: {outer}\nobjectClass: top\nobjectClass: group\ncn: Trusted All\nmember: {group}\n"
    ));
    // An explicitly added one gets a SID in the same per-trust domain.
    s.seed(
        "dn: cn=dave@OTHER.COM,cn=ForeignSecurityPrincipals,dc=example,dc=com\n\
            objectClass: top\nobjectClass: foreignSecurityPrincipal\ncn: dave@OTHER.COM\n",
    );
    let out = s.search_admin(group, "(objectClass=*)", &["member"]);
    assert!(out.to_lowercase().contains(&fsp.to_lowercase()), "{out}");
    let out = s.search_admin(
        fsp,
        "(objectClass=*)",
        &["memberOf", "objectSid", "objectClass"],
    );
    assert!(
        out.to_lowercase()
            .contains(&format!("memberof: {}", group.to_lowercase())),
        "{out}"
    );
    assert!(out.contains("foreignSecurityPrincipal"), "{out}");
    let sid_of = |dn: &str| {
        let out = s.search_admin(dn, "(objectClass=*)", &["objectSid"]);
        out.lines()
            .find_map(|l| l.strip_prefix("objectSid:: "))
            .unwrap_or_else(|| panic!("no objectSid on {dn}: {out}"))
            .to_owned()
    };
    let bob_sid = sid_of(fsp);
    let dave_sid = sid_of("cn=dave@OTHER.COM,cn=ForeignSecurityPrincipals,dc=example,dc=com");
    assert_ne!(bob_sid, dave_sid);
    // Same domain part (first 24 bytes = 32 base64 characters), different RIDs.
    assert_eq!(bob_sid[..32], dave_sid[..32]);

    // Now the group admits bob; carol (not a member) is still refused.
    let out = s.krb_ok(
        CONF,
        "cc.bob",
        &["kvno", "-k", &kt, "host/app.example.com@EXAMPLE.COM"],
        "",
    );
    assert!(out.contains("keytab entry valid"), "{out}");
    s.krb_ok(CONF, "cc.carol", &["kinit", "carol@OTHER.COM"], "carolpw\n");
    s.krb_fails(
        CONF,
        "cc.carol",
        &["kvno", "host/app.example.com@EXAMPLE.COM"],
        "",
        "KDC policy rejects request",
    );
    let log = audit(&s);
    assert!(
        log.lines().any(|l| l.contains("ticket_issued")
            && l.contains("bob@OTHER.COM")
            && l.contains("cross-realm ticket through the trust with OTHER.COM")),
        "no cross-realm issuance for bob in the audit log:\n{log}"
    );
}

/// `[[trust]] ldap`: LDAP requests under the trusted realm's naming context are answered with
/// a referral to its directory (RFC 4511 §4.1.10), the target DN in the URL (RFC 4516); the
/// local directory is unaffected.
#[test]
fn searches_under_the_trusted_realms_naming_context_get_a_referral() {
    let mit = MitRealm::start();
    let s = dird(
        &mit,
        TRUST_PW,
        "direction = \"both\"\nldap = { url = \"ldaps://ldap.other.com:636/\", bind_dn = \"cn=reader,dc=other,dc=com\", password_file = \"/etc/dird/other-ldap.pw\" }",
    );
    let url = s.ldap_url();
    let base = "ou=People,dc=other,dc=com";
    let out = s.ldapsearch(&[
        "-H",
        &url,
        "-D",
        ADMIN_DN,
        "-w",
        ADMIN_PW,
        "-b",
        base,
        "(uid=bob)",
    ]);
    let all = text(&out);
    assert_eq!(
        out.status.code(),
        Some(10),
        "expected a referral (10):\n{all}"
    );
    assert!(
        all.contains("ldaps://ldap.other.com:636/ou=People,dc=other,dc=com"),
        "the referral names the trusted realm's server and the target DN:\n{all}"
    );
    // A compare on an entry there is referred too.
    let out = s.tool(
        "ldapcompare",
        &[
            "-x",
            "-H",
            &url,
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            "uid=bob,ou=People,dc=other,dc=com",
            "uid:bob",
        ],
    );
    assert_eq!(out.status.code(), Some(10), "compare: {}", text(&out));
    // The local naming context answers as before.
    let out = s.ldapsearch(&[
        "-H",
        &url,
        "-D",
        ADMIN_DN,
        "-w",
        ADMIN_PW,
        "-b",
        "dc=example,dc=com",
        "-s",
        "base",
        "dn",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("dn: dc=example,dc=com"),
        "{}",
        text(&out)
    );
}
