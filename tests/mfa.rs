//! RADIUS MFA end to end (issue 11): a real FreeRADIUS 3.2 with rlm_totp, started by each test
//! on a random loopback port with its own config directory, and codes from `oathtool`; a small
//! fake RADIUS server (in this file) for the replies FreeRADIUS never sends (bad or missing
//! Message-Authenticator, another shared secret); binds through the real OpenLDAP clients;
//! an sssd (`auth_provider = ldap`) PAM login with password and code typed together; and an
//! sssd `auth_provider = krb5` login whose two-factor prompts drive OTP inside FAST.
//! Needs (scripts/test-all.sh installs them): freeradius, oathtool, ldap-utils, and for the
//! sssd tests sssd-ldap sssd-krb5 libnss-sss libpam-sss pamtester; runs as root (sssd,
//! /etc/pam.d).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::radius::{free_udp_port, fresh_code, wrong_code, FreeRadius, SECRET};
use common::{rc, text, TestServer};

/// The group whose members (nested) need MFA.
const MFA_GROUP: &str = "cn=MFA Users,ou=People,dc=example,dc=com";
const PW: &str = "Passw0rd-mfa";
const DAVE_DN: &str = "cn=dave,ou=People,dc=example,dc=com";
const SVC_DN: &str = "cn=svc,ou=People,dc=example,dc=com";

fn dn(user: &str) -> String {
    format!("cn={user},ou=People,dc=example,dc=com")
}

/// MFA users u1..u6 (u1 directly in the MFA group, the others through the nested group
/// `inner`), dave (no MFA), svc (in the MFA group but exempt).
fn seed() -> String {
    let mut s = String::from(
        "dn: ou=People,dc=example,dc=com\nobjectClass: organizationalUnit\nou: People\n\n",
    );
    for u in ["u1", "u2", "u3", "u4", "u5", "u6", "dave", "svc"] {
        s.push_str(&format!(
            "dn: {}\nobjectClass: top\nobjectClass: user\ncn: {u}\nsAMAccountName: {u}\nuserAccountControl: 512\nuserPassword: {PW}\n\n",
            dn(u)
        ));
    }
    s.push_str("dn: cn=inner,ou=People,dc=example,dc=com\nobjectClass: group\ncn: inner\n");
    for u in ["u2", "u3", "u4", "u5", "u6"] {
        s.push_str(&format!("member: {}\n", dn(u)));
    }
    s.push_str(&format!(
        "\ndn: {MFA_GROUP}\nobjectClass: group\ncn: MFA Users\nmember: {}\nmember: cn=inner,ou=People,dc=example,dc=com\nmember: {SVC_DN}\n",
        dn("u1")
    ));
    s
}

// ---------------------------------------------------------------------------------------
// dird

/// A dird with `[mfa]` pointing at `servers`, `[audit]` to a file and `[metrics]`, seeded.
fn dird(servers: &[SocketAddr], secret: &str, mfa_extra: &str) -> TestServer {
    let list: Vec<String> = servers
        .iter()
        .map(|a| format!("{{ address = \"{a}\", secret_file = \"{{dir}}/radius.secret\" }}"))
        .collect();
    let extra = format!(
        "[audit]\npath = \"{{dir}}/audit.jsonl\"\n[metrics]\nlisten = [\"127.0.0.1:0\"]\n\
         [mfa]\nservers = [{}]\nrequire_message_authenticator = true\ngroups = [\"{MFA_GROUP}\"]\n\
         exempt = [\"{SVC_DN}\"]\notp_length = 6\n{mfa_extra}\n",
        list.join(", ")
    );
    let mut server = TestServer::prepare(&extra);
    let path = server.dir.path().join("radius.secret");
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    server.launch();
    server.seed(&seed());
    server
}

/// `ldapwhoami` simple bind over LDAPS.
fn bind(server: &TestServer, who: &str, password: &str) -> Output {
    whoami(&server.ldaps_url(), &server.ca(), who, password)
}

/// `ldapwhoami` simple bind to `url` trusting `ca` (usable from other threads).
fn whoami(url: &str, ca: &Path, who: &str, password: &str) -> Output {
    Command::new("ldapwhoami")
        .args([
            "-x",
            "-H",
            url,
            "-D",
            who,
            "-w",
            password,
            "-o",
            "nettimeout=30",
        ])
        .env("LDAPTLS_CACERT", ca)
        .env("LDAPTLS_REQCERT", "demand")
        .env("LDAPCONF", "/dev/null")
        .env("LDAPRC", "/nonexistent-dird-test-ldaprc")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("ldapwhoami could not be run ({e}): install ldap-utils"))
}

fn assert_rc(out: &Output, want: i32, what: &str) {
    assert_eq!(rc(out), want, "{what}: {}", text(out));
}

/// The audit events of kind `mfa` (waits up to 5 s for `at_least` of them).
fn mfa_events(server: &TestServer, at_least: usize) -> Vec<serde_json::Value> {
    let path = server.dir.path().join("audit.jsonl");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == "mfa")
            .collect();
        if events.len() >= at_least || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn outcomes(events: &[serde_json::Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["identity"].as_str().unwrap_or_default().to_string(),
                e["result"]["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// GET /metrics.
fn metrics(server: &TestServer) -> String {
    use std::io::{Read, Write};
    let addr = server.metrics.expect("dird reports metrics=");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

// ---------------------------------------------------------------------------------------
// the tests

#[test]
fn ldap_binds_need_password_and_code() {
    let radius = FreeRadius::start(&["u1", "u2", "u3", "u4"]);
    let server = dird(&[radius.addr()], SECRET, "");

    // A non-MFA user binds with the password alone; an exempt member of the group too.
    assert_rc(
        &bind(&server, DAVE_DN, PW),
        0,
        "dave (no MFA) with a password",
    );
    assert_rc(
        &bind(&server, SVC_DN, PW),
        0,
        "svc (exempt) with a password",
    );

    // The right password and code: accepted (u1 directly in the group, u2 nested).
    let code = fresh_code();
    let ok = bind(&server, &dn("u1"), &format!("{PW}{code}"));
    assert_rc(&ok, 0, "u1 with password + code");
    assert!(text(&ok).contains("u1"), "{}", text(&ok));
    // The same code again (FreeRADIUS 3.2.1 would accept it: rlm_totp has no replay check).
    let replay = bind(&server, &dn("u1"), &format!("{PW}{code}"));
    assert_rc(&replay, 49, "u1 replaying a code");
    let nested = bind(&server, &dn("u2"), &format!("{PW}{code}"));
    assert_rc(&nested, 0, "u2 (nested member) with password + code");

    // A wrong code, a wrong password with a right code, the password alone: all 49, and
    // the client cannot tell which factor failed.
    let code = fresh_code();
    let wrong_code = bind(&server, &dn("u3"), &format!("{PW}{}", wrong_code(&code)));
    assert_rc(&wrong_code, 49, "u3 with a wrong code");
    let wrong_pw = bind(&server, &dn("u3"), &format!("Wrong-pass1{code}"));
    assert_rc(&wrong_pw, 49, "u3 with a wrong password and a right code");
    let alone = bind(&server, &dn("u3"), PW);
    assert_rc(&alone, 49, "u3 with the password alone");
    let diag = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        diag(&wrong_code),
        diag(&wrong_pw),
        "diagnostics differ by factor"
    );
    assert_eq!(
        diag(&alone),
        diag(&wrong_pw),
        "diagnostics differ by factor"
    );
    // ...and the right code still works afterwards (the wrong password never reached RADIUS
    // and did not burn the code).
    assert_rc(
        &bind(&server, &dn("u3"), &format!("{PW}{code}")),
        0,
        "u3 with password + code after the failures",
    );

    // A Password Modify without a bind (RFC 3062, how users with an expired password change
    // it) needs both factors too: the old password alone is refused.
    let passwd = |old: &str| {
        server.tool(
            "ldappasswd",
            &[
                "-x",
                "-H",
                &server.ldaps_url(),
                "-a",
                old,
                "-s",
                "New-Passw0rd-u4",
                &dn("u4"),
                "-o",
                "nettimeout=30",
            ],
        )
    };
    let alone = passwd(PW);
    assert!(
        rc(&alone) != 0 && text(&alone).contains("Invalid credentials (49)"),
        "u4 changing the password with the old one alone: {}",
        text(&alone)
    );
    assert_rc(
        &passwd(&format!("{PW}{code}")),
        0,
        "u4 changing the password with old password + code",
    );

    // The audit stream says what happened, with the RADIUS server; the wrong password made
    // no RADIUS round trip.
    let events = mfa_events(&server, 8);
    assert_eq!(
        outcomes(&events),
        vec![
            ("u1".into(), "accepted".into()),
            ("u1".into(), "replayed".into()),
            ("u2".into(), "accepted".into()),
            ("u3".into(), "rejected".into()),
            ("u3".into(), "missing".into()),
            ("u3".into(), "accepted".into()),
            ("u4".into(), "missing".into()),
            ("u4".into(), "accepted".into()),
        ],
        "{events:#?}"
    );
    let server_addr = radius.addr().to_string();
    assert_eq!(events[0]["details"]["server"], server_addr.as_str());
    assert_eq!(events[3]["details"]["server"], server_addr.as_str());
    let m = metrics(&server);
    assert!(
        m.contains(&format!(
            "dird_mfa_decisions_total{{outcome=\"accepted\",server=\"{server_addr}\"}} 4"
        )),
        "{m}"
    );
    assert!(m.contains("dird_radius_round_trip_seconds_count 5"), "{m}");
}

#[test]
fn radius_down_fails_closed_without_stalling_others_and_recovers() {
    let mut radius = FreeRadius::start(&["u1", "u2", "u3", "u4", "u5", "u6"]);
    // 2 tries of 1.5 s: an MFA bind waits 3 s for a dead server.
    let server = dird(&[radius.addr()], SECRET, "timeout_ms = 1500\nretries = 1\n");
    assert_rc(
        &bind(&server, &dn("u1"), &format!("{PW}{}", fresh_code())),
        0,
        "u1 while RADIUS runs",
    );

    // dave's searches before the outage: the baseline.
    let search = |s: &TestServer| {
        let t = Instant::now();
        let out = s.ldapsearch(&[
            "-H",
            &s.ldaps_url(),
            "-D",
            DAVE_DN,
            "-w",
            PW,
            "-b",
            "ou=People,dc=example,dc=com",
            "(cn=u*)",
            "cn",
        ]);
        assert_rc(&out, 0, "dave's search");
        t.elapsed()
    };
    let baseline = (0..5).map(|_| search(&server)).max().unwrap();

    radius.stop();
    let code = fresh_code();
    let (url, ca) = (server.ldaps_url(), server.ca());
    let mut binds = Vec::new();
    for u in ["u2", "u3", "u4", "u5"] {
        let (url, ca, code) = (url.clone(), ca.clone(), code.clone());
        binds.push(std::thread::spawn(move || {
            let t = Instant::now();
            let out = whoami(&url, &ca, &dn(u), &format!("{PW}{code}"));
            (out, t.elapsed())
        }));
    }
    // While four MFA binds wait for the dead server, dave's searches keep their latency.
    let mut during = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(2500) {
        during.push(search(&server));
    }
    for b in binds {
        let (out, took) = b.join().unwrap();
        assert_rc(&out, 52, "an MFA bind with RADIUS down");
        let msg = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            msg.contains("second factor could not be checked"),
            "diagnostic: {msg}"
        );
        assert!(
            took >= Duration::from_millis(2800) && took < Duration::from_secs(8),
            "refused after {took:?}, the configured wait is 2 x 1.5 s"
        );
    }
    let worst = during.iter().max().copied().unwrap();
    assert!(
        during.len() >= 3 && worst < baseline + Duration::from_millis(1000),
        "dave's searches during the outage: {during:?} (baseline worst {baseline:?})"
    );

    // RADIUS back (same port): MFA binds work again, without restarting dird.
    radius.launch();
    assert_rc(
        &bind(&server, &dn("u6"), &format!("{PW}{}", fresh_code())),
        0,
        "u6 after RADIUS came back",
    );
    let events = mfa_events(&server, 6);
    let timeouts = outcomes(&events)
        .iter()
        .filter(|(_, o)| o == "timeout")
        .count();
    assert_eq!(timeouts, 4, "{events:#?}");
    let m = metrics(&server);
    assert!(m.contains("dird_radius_pending 0"), "{m}");
    assert!(
        m.contains(&format!(
            "dird_mfa_decisions_total{{outcome=\"timeout\",server=\"{}\"}} 4",
            radius.addr()
        )),
        "{m}"
    );
}

#[test]
fn failover_to_the_second_server() {
    let radius = FreeRadius::start(&["u1"]);
    // The first server: a port nobody listens on.
    let dead = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let server = dird(
        &[dead, radius.addr()],
        SECRET,
        "timeout_ms = 300\nretries = 1\n",
    );
    let t = Instant::now();
    let out = bind(&server, &dn("u1"), &format!("{PW}{}", fresh_code()));
    assert_rc(&out, 0, "u1 through the second server");
    assert!(
        t.elapsed() >= Duration::from_millis(550),
        "the first server was not tried"
    );
    let events = mfa_events(&server, 1);
    assert_eq!(outcomes(&events), vec![("u1".into(), "accepted".into())]);
    assert_eq!(
        events[0]["details"]["server"],
        radius.addr().to_string().as_str()
    );
}

/// What the fake server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fake {
    /// a correct Access-Accept with a Message-Authenticator
    Good,
    /// an Access-Accept whose Message-Authenticator is wrong (Response Authenticator right)
    BadMessageAuthenticator,
    /// a correct Access-Accept without a Message-Authenticator
    NoMessageAuthenticator,
    /// an Access-Accept signed with another shared secret
    OtherSecret,
    /// an Access-Challenge with a State first, an Access-Accept to the request echoing it
    Challenge,
    /// no answer to the first datagram; a correct Access-Accept to the retransmission
    DropFirst,
}

struct FakeRadius {
    addr: SocketAddr,
    mode: Arc<Mutex<Fake>>,
    /// requests seen, with whether their Message-Authenticator was first and valid
    seen: Arc<Mutex<Vec<bool>>>,
    /// the datagrams received, in order
    datagrams: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeRadius {
    fn start() -> FakeRadius {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Fake::Good));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let datagrams = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
        let (m, s, st, dg) = (mode.clone(), seen.clone(), stop.clone(), datagrams.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let req = &buf[..n];
                s.lock()
                    .unwrap()
                    .push(request_signed_first(req, SECRET.as_bytes()));
                let first = {
                    let mut all = dg.lock().unwrap();
                    all.push(req.to_vec());
                    all.len() == 1
                };
                let mode = *m.lock().unwrap();
                if mode == Fake::DropFirst && first {
                    continue;
                }
                let reply = fake_reply(req, mode);
                let _ = socket.send_to(&reply, from);
            }
        });
        FakeRadius {
            addr,
            mode,
            seen,
            datagrams,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeRadius {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<md5::Md5> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn md5_of(parts: &[&[u8]]) -> [u8; 16] {
    use md5::Digest;
    let mut h = md5::Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The request carries attribute `kind` with `value`.
fn has_attribute(req: &[u8], kind: u8, value: &[u8]) -> bool {
    let mut at = 20;
    while at + 2 <= req.len() {
        let len = usize::from(req[at + 1]);
        if len < 2 || at + len > req.len() {
            return false;
        }
        if req[at] == kind && &req[at + 2..at + len] == value {
            return true;
        }
        at += len;
    }
    false
}

/// The request's first attribute is a Message-Authenticator and its HMAC is right.
fn request_signed_first(req: &[u8], secret: &[u8]) -> bool {
    if req.len() < 38 || req[20] != 80 || req[21] != 18 {
        return false;
    }
    let mut zeroed = req.to_vec();
    zeroed[22..38].fill(0);
    hmac_md5(secret, &zeroed) == req[22..38]
}

/// An Access-Accept for `req` as `mode` says (RFC 2865 §3 Response Authenticator, RFC 3579
/// §3.2 Message-Authenticator over the packet with the Request Authenticator).
fn fake_reply(req: &[u8], mode: Fake) -> Vec<u8> {
    let secret: &[u8] = if mode == Fake::OtherSecret {
        b"not-the-secret"
    } else {
        SECRET.as_bytes()
    };
    let request_auth = &req[4..20];
    // RFC 2865 §4.4: a challenge carries a State the next request must echo.
    let echoed = has_attribute(req, 24, b"round-2");
    let code = if mode == Fake::Challenge && !echoed {
        11
    } else {
        2
    };
    let mut p = vec![code, req[1], 0, 0];
    p.extend_from_slice(request_auth);
    p.extend_from_slice(&[18, 7, b'h', b'e', b'l', b'l', b'o']);
    if code == 11 {
        p.extend_from_slice(&[24, 9]);
        p.extend_from_slice(b"round-2");
    }
    let ma_at = p.len() + 2;
    if mode != Fake::NoMessageAuthenticator {
        p.extend_from_slice(&[80, 18]);
        p.extend_from_slice(&[0; 16]);
    }
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    if mode != Fake::NoMessageAuthenticator {
        let mut mac = hmac_md5(secret, &p);
        if mode == Fake::BadMessageAuthenticator {
            mac[0] ^= 0xff;
        }
        p[ma_at..ma_at + 16].copy_from_slice(&mac);
    }
    let response_auth = md5_of(&[&p[..4], request_auth, &p[20..], secret]);
    p[4..20].copy_from_slice(&response_auth);
    p
}

#[test]
fn replies_with_bad_or_missing_message_authenticator_or_another_secret_are_refused() {
    let fake = FakeRadius::start();
    let server = dird(&[fake.addr], SECRET, "timeout_ms = 300\nretries = 1\n");
    let set = |m: Fake| *fake.mode.lock().unwrap() = m;

    // The control: a correct signed Accept lets the bind through (the fake accepts any code).
    set(Fake::Good);
    assert_rc(
        &bind(&server, &dn("u1"), &format!("{PW}111111")),
        0,
        "good reply",
    );

    for (mode, code) in [
        (Fake::BadMessageAuthenticator, "222222"),
        (Fake::NoMessageAuthenticator, "333333"),
        (Fake::OtherSecret, "444444"),
    ] {
        set(mode);
        let out = bind(&server, &dn("u1"), &format!("{PW}{code}"));
        assert_rc(&out, 52, &format!("{mode:?}: the reply must be discarded"));
    }
    // Access-Challenge: dird answers with the State (a new request), then gets the Accept.
    set(Fake::Challenge);
    fake.datagrams.lock().unwrap().clear();
    assert_rc(
        &bind(&server, &dn("u2"), &format!("{PW}555555")),
        0,
        "challenge round",
    );
    {
        let d = fake.datagrams.lock().unwrap();
        assert_eq!(d.len(), 2, "one challenge, one answer");
        assert!(!has_attribute(&d[0], 24, b"round-2") && has_attribute(&d[1], 24, b"round-2"));
        assert_ne!(
            d[0][4..20],
            d[1][4..20],
            "a new round has a new Request Authenticator"
        );
    }
    // RFC 5080 §2.2.1: the retransmission after a lost reply is the very same datagram.
    set(Fake::DropFirst);
    fake.datagrams.lock().unwrap().clear();
    assert_rc(
        &bind(&server, &dn("u3"), &format!("{PW}666666")),
        0,
        "retransmission answered",
    );
    {
        let d = fake.datagrams.lock().unwrap();
        assert_eq!(d.len(), 2, "one lost request, one retransmission");
        assert_eq!(d[0], d[1], "the retransmission differs from the request");
    }
    // Every request dird sent carried a valid Message-Authenticator as its first attribute.
    let seen = fake.seen.lock().unwrap().clone();
    assert!(
        seen.len() >= 10 && seen.iter().all(|ok| *ok),
        "requests signed first: {seen:?}"
    );
    let events = mfa_events(&server, 4);
    let reasons: Vec<String> = events
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        reasons[1].contains("bad Message-Authenticator"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("without the required Message-Authenticator"),
        "{reasons:?}"
    );
    assert!(reasons[3].contains("Response Authenticator"), "{reasons:?}");
}

// ---------------------------------------------------------------------------------------
// sssd (auth_provider = ldap): password and code typed together at the PAM prompt

/// One sssd per machine: the sssd tests of every binary take this file lock (flock), and
/// this binary's own tests this mutex.
static SSSD_LOCK: Mutex<()> = Mutex::new(());
const SSSD_LOCK_FILE: &str = "/tmp/dird-sssd.lock";
const PIPES: &str = "/var/lib/sss/pipes";
const PAM_SERVICE: &str = "dird-mfa-test";
const SSSD_PW: &str = "Sssd-Bind-Passw0rd";

const SSSD_SEED: &str = r#"dn: cn=sssd,cn=Users,dc=example,dc=com
objectClass: top
objectClass: user
cn: sssd
sAMAccountName: sssd
userPassword: Sssd-Bind-Passw0rd

dn: cn=mfauser,ou=People,dc=example,dc=com
objectClass: top
objectClass: user
objectClass: posixAccount
cn: mfauser
uid: mfauser
sAMAccountName: u1
uidNumber: 10101
gidNumber: 20101
homeDirectory: /home/mfauser
unixHomeDirectory: /home/mfauser
loginShell: /bin/bash
userAccountControl: 512
userPassword: Passw0rd-mfa
"#;

fn sssd_tools() {
    for (path, pkg) in [
        ("/usr/sbin/sssd", "sssd-ldap (sssd)"),
        ("/usr/bin/pamtester", "pamtester"),
        ("/usr/bin/flock", "util-linux"),
    ] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: install {pkg} (scripts/test-all.sh installs the sssd test packages)"
        );
    }
    std::fs::write(
        format!("/etc/pam.d/{PAM_SERVICE}"),
        "auth required pam_sss.so\naccount required pam_sss.so\n",
    )
    .expect("write the PAM service file (the sssd tests run as root)");
}

fn running_sssd() -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(exe) = std::fs::read_link(e.path().join("exe")) {
            let exe = exe.to_string_lossy().into_owned();
            if exe == "/usr/sbin/sssd" || exe.starts_with("/usr/libexec/sssd/") {
                out.push(pid);
            }
        }
    }
    out
}

fn clean_sssd_state() {
    for dir in ["/var/lib/sss/db", "/var/lib/sss/mc", "/var/log/sssd"] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.path().is_file() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    for p in [format!("{PIPES}/nss"), format!("{PIPES}/pam")] {
        let _ = std::fs::remove_file(p);
    }
    if let Ok(rd) = std::fs::read_dir(format!("{PIPES}/private")) {
        for e in rd.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// sssd in the foreground; stopped (by PID, children included) on drop.
struct Sssd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// holds the cross-binary flock while alive
    _lock: Child,
}

impl Sssd {
    fn start(conf: &str) -> Sssd {
        Sssd::start_env(conf, &[])
    }

    /// `start` with extra environment variables for sssd and its children (krb5_child).
    fn start_env(conf: &str, env: &[(&str, &Path)]) -> Sssd {
        // `flock FILE cat`: holds the lock while `cat` waits on its stdin (closed on drop).
        let mut lock = Command::new("flock")
            .args([SSSD_LOCK_FILE, "sh", "-c", "echo locked; exec cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run flock");
        {
            use std::io::Read;
            let mut first = [0u8; 7];
            lock.stdout
                .as_mut()
                .unwrap()
                .read_exact(&mut first)
                .expect("flock on /tmp/dird-sssd.lock");
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while !running_sssd().is_empty() {
            assert!(
                Instant::now() < deadline,
                "another sssd is running ({:?}); only one may run per machine",
                running_sssd()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        clean_sssd_state();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sssd.conf");
        std::fs::write(&path, conf).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = std::fs::File::create(dir.path().join("sssd.out")).unwrap();
        let child = Command::new("/usr/sbin/sssd")
            .args(["-i", "--logger=files", "-c"])
            .arg(&path)
            .envs(env.iter().copied())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("run sssd");
        let mut s = Sssd {
            child: Some(child),
            dir,
            _lock: lock,
        };
        let ready = [
            PathBuf::from(format!("{PIPES}/nss")),
            PathBuf::from(format!("{PIPES}/pam")),
            PathBuf::from(format!("{PIPES}/private/sbus-dp_example.com")),
        ];
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.iter().all(|p| p.exists()) {
            if let Some(st) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("sssd exited ({st}):\n{}", s.diagnostics());
            }
            assert!(
                Instant::now() < deadline,
                "sssd not ready in 30 s:\n{}",
                s.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    fn diagnostics(&self) -> String {
        let out = std::fs::read_to_string(self.dir.path().join("sssd.out")).unwrap_or_default();
        let log = std::fs::read_to_string("/var/log/sssd/sssd_example.com.log").unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let child = std::fs::read_to_string("/var/log/sssd/krb5_child.log").unwrap_or_default();
        let child_tail: Vec<&str> = child.lines().rev().take(60).collect();
        format!(
            "sssd output:\n{out}\n--- domain log, newest first ---\n{}\n--- krb5_child log, newest first ---\n{}",
            tail.join("\n"),
            child_tail.join("\n")
        )
    }

    fn pam_auth(&self, user: &str, input: &str) -> Output {
        let mut child = Command::new("pamtester")
            .args(["-v", PAM_SERVICE, user, "authenticate"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pamtester");
        common::feed_stdin(&mut child, input.as_bytes());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Sssd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let root = child.id();
            let _ = Command::new("kill")
                .args(["-TERM", &root.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            // The monitor stops its responders on TERM; give them a moment to go.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && !running_sssd().is_empty() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        clean_sssd_state();
    }
}

#[test]
fn sssd_ldap_login_with_password_and_code() {
    let _guard = SSSD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    sssd_tools();
    let radius = FreeRadius::start(&["u1"]);
    let list = format!(
        "{{ address = \"{}\", secret_file = \"{{dir}}/radius.secret\" }}",
        radius.addr()
    );
    // Everyone needs MFA except the service account sssd binds with (and the Administrator
    // the test seeds with).
    let extra = format!(
        "[audit]\npath = \"{{dir}}/audit.jsonl\"\n[mfa]\nservers = [{list}]\neveryone = true\n\
         exempt = [\"cn=sssd,cn=Users,dc=example,dc=com\", \"{}\"]\n",
        common::ADMIN_DN
    );
    let mut server = TestServer::prepare(&extra);
    let secret = server.dir.path().join("radius.secret");
    std::fs::write(&secret, SECRET).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    server.launch();
    server.seed("dn: ou=People,dc=example,dc=com\nobjectClass: organizationalUnit\nou: People\n");
    server.seed(SSSD_SEED);

    let conf = format!(
        "[sssd]\nservices = nss, pam\ndomains = example.com\n[nss]\nmemcache_timeout = 0\n[pam]\n\
         [domain/example.com]\nid_provider = ldap\nauth_provider = ldap\naccess_provider = permit\n\
         ldap_schema = rfc2307\nldap_user_object_class = user\nldap_group_object_class = group\n\
         ldap_id_mapping = false\nldap_uri = {uri}\nldap_search_base = dc=example,dc=com\n\
         ldap_default_bind_dn = cn=sssd,cn=Users,dc=example,dc=com\n\
         ldap_default_authtok_type = password\nldap_default_authtok = {SSSD_PW}\n\
         ldap_tls_cacert = {ca}\nldap_tls_reqcert = demand\nldap_network_timeout = 3\n\
         ldap_opt_timeout = 10\ncache_credentials = false\ndebug_level = 6\n",
        uri = server.ldaps_url(),
        ca = server.ca().display()
    );
    let sssd = Sssd::start(&conf);

    let alone = sssd.pam_auth("mfauser", &format!("{PW}\n"));
    assert!(
        !alone.status.success(),
        "password alone accepted: {}\n{}",
        text(&alone),
        sssd.diagnostics()
    );
    let ok = sssd.pam_auth("mfauser", &format!("{PW}{}\n", fresh_code()));
    assert!(
        ok.status.success(),
        "password + code refused: {}\n{}",
        text(&ok),
        sssd.diagnostics()
    );
    let events = mfa_events(&server, 2);
    assert_eq!(
        outcomes(&events),
        vec![
            ("u1".into(), "missing".into()),
            ("u1".into(), "accepted".into())
        ],
        "{events:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// sssd (auth_provider = krb5, FAST): sssd's two-factor prompts drive OTP inside FAST

const KRB_MFA_GROUP: &str = "cn=Krb MFA,ou=People,dc=example,dc=com";
const KRB_PLAIN_PW: &str = "Plain-Passw0rd";

/// krbmfa and krbmfa2 (in the MFA group; sAMAccountName, uid and Kerberos name agree) and
/// krbplain (no MFA), all POSIX accounts, and the bind account of sssd.
fn krb5_sssd_seed() -> String {
    let mut s = String::from(
        "dn: ou=People,dc=example,dc=com\nobjectClass: organizationalUnit\nou: People\n\n\
         dn: cn=sssd,cn=Users,dc=example,dc=com\nobjectClass: top\nobjectClass: user\ncn: sssd\n\
         sAMAccountName: sssd\nuserPassword: Sssd-Bind-Passw0rd\n\n",
    );
    for (user, uid, pw) in [
        ("krbmfa", 10201, PW),
        ("krbmfa2", 10203, PW),
        ("krbplain", 10202, KRB_PLAIN_PW),
    ] {
        s.push_str(&format!(
            "dn: cn={user},ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: user\n\
             objectClass: posixAccount\ncn: {user}\nuid: {user}\nsAMAccountName: {user}\n\
             uidNumber: {uid}\ngidNumber: 20201\nhomeDirectory: /home/{user}\n\
             unixHomeDirectory: /home/{user}\nloginShell: /bin/bash\nuserAccountControl: 512\n\
             userPassword: {pw}\n\n"
        ));
    }
    s.push_str(&format!(
        "dn: {KRB_MFA_GROUP}\nobjectClass: group\ncn: Krb MFA\nmember: cn=krbmfa,ou=People,dc=example,dc=com\n\
         member: cn=krbmfa2,ou=People,dc=example,dc=com\n"
    ));
    s
}

#[test]
fn sssd_krb5_two_factor_login_through_fast_otp() {
    let _guard = SSSD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    sssd_tools();
    assert!(
        Path::new("/usr/libexec/sssd/krb5_child").exists(),
        "/usr/libexec/sssd/krb5_child is missing: install sssd-krb5 (scripts/test-all.sh does)"
    );
    let radius = FreeRadius::start(&["krbmfa", "krbmfa2"]);
    let extra = format!(
        "[audit]\npath = \"{{dir}}/audit.jsonl\"\n[mfa]\nservers = [{{ address = \"{}\", \
         secret_file = \"{{dir}}/radius.secret\" }}]\nrequire_message_authenticator = true\n\
         groups = [\"{KRB_MFA_GROUP}\"]\notp_length = 6\n",
        radius.addr()
    );
    let mut server = TestServer::prepare_kdc(&extra);
    let secret = server.path("radius.secret");
    std::fs::write(&secret, SECRET).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    server.launch();
    server.seed(&krb5_sssd_seed());
    // The host keytab krb5_child gets its FAST armor TGT with.
    let keytab = server.path("host.keytab");
    let out = server.cli(&[
        "keytab",
        "--principal",
        "host/client.example.com",
        "--out",
        keytab.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "dird keytab: {}", text(&out));

    // krb5_child reads the realm's KDC from this krb5.conf (KRB5_CONFIG), not from an sssd
    // kdcinfo file: the sssd locator plugin would send every other test's EXAMPLE.COM kinit
    // to this KDC while the file exists.
    let krb5_conf = server.path("krb5.conf");
    let kdc = server.kdc.expect("kdc address");
    // [prompting/2fa] makes the PAM responder create pam_preauth_available, so pam_sss asks
    // sssd first (krb5_child sees the OTP challenge) and prompts for the two factors.
    let conf = |prompting: &str| {
        format!(
        "[sssd]\nservices = nss, pam\ndomains = example.com\n[nss]\nmemcache_timeout = 0\n[pam]\n\
         [domain/example.com]\nid_provider = ldap\nauth_provider = krb5\naccess_provider = permit\n\
         ldap_schema = rfc2307\nldap_user_object_class = user\nldap_group_object_class = group\n\
         ldap_id_mapping = false\nldap_uri = {uri}\nldap_search_base = dc=example,dc=com\n\
         ldap_default_bind_dn = cn=sssd,cn=Users,dc=example,dc=com\n\
         ldap_default_authtok_type = password\nldap_default_authtok = {SSSD_PW}\n\
         ldap_tls_cacert = {ca}\nldap_tls_reqcert = demand\nldap_network_timeout = 3\n\
         ldap_opt_timeout = 10\ncache_credentials = false\ndebug_level = 9\n\
         krb5_realm = EXAMPLE.COM\nkrb5_server = {kdc}\nkrb5_use_kdcinfo = false\n\
         krb5_use_fast = demand\nkrb5_fast_principal = host/client.example.com@EXAMPLE.COM\n\
         krb5_keytab = {keytab}\nkrb5_validate = false\nkrb5_store_password_if_offline = false\n\
         krb5_auth_timeout = 30\n[prompting/2fa]\n{prompting}\n",
        uri = server.ldaps_url(),
        ca = server.ca().display(),
        keytab = keytab.display(),
    )
    };
    let sssd = Sssd::start_env(
        &conf("first_prompt = Kerberos password:\nsecond_prompt = One-time code:"),
        &[("KRB5_CONFIG", &krb5_conf)],
    );

    // Password alone (an empty second factor) and password with a wrong code: refused.
    let alone = sssd.pam_auth("krbmfa", &format!("{PW}\n\n"));
    assert!(
        !alone.status.success(),
        "password alone accepted: {}\n{}",
        text(&alone),
        sssd.diagnostics()
    );
    let code = fresh_code();
    let wrong = sssd.pam_auth("krbmfa", &format!("{PW}\n{}\n", wrong_code(&code)));
    assert!(
        !wrong.status.success(),
        "password with a wrong code accepted: {}\n{}",
        text(&wrong),
        sssd.diagnostics()
    );
    // First Factor = the password, Second Factor = the code: a TGT through FAST + OTP.
    let ok = sssd.pam_auth("krbmfa", &format!("{PW}\n{code}\n"));
    assert!(
        ok.status.success(),
        "password + code refused: {}\n{}\n--- radius\n{}",
        text(&ok),
        sssd.diagnostics(),
        radius.log()
    );
    let prompts = text(&ok);
    assert!(
        prompts.contains("Kerberos password:") && prompts.contains("One-time code:"),
        "sssd did not prompt for two factors: {prompts}"
    );
    // A non-MFA user logs in with the password alone (one Password: prompt).
    let plain = sssd.pam_auth("krbplain", &format!("{KRB_PLAIN_PW}\n"));
    assert!(
        plain.status.success(),
        "non-MFA user refused: {}\n{}",
        text(&plain),
        sssd.diagnostics()
    );
    drop(sssd);

    // sssd's single prompt: password and code typed together, as for an LDAP bind.
    let sssd = Sssd::start_env(
        &conf("single_prompt = true\nfirst_prompt = Password + code:"),
        &[("KRB5_CONFIG", &krb5_conf)],
    );
    let alone = sssd.pam_auth("krbmfa2", &format!("{PW}\n"));
    assert!(
        !alone.status.success(),
        "password alone accepted (single prompt): {}\n{}",
        text(&alone),
        sssd.diagnostics()
    );
    let ok = sssd.pam_auth("krbmfa2", &format!("{PW}{}\n", fresh_code()));
    assert!(
        ok.status.success(),
        "password + code refused (single prompt): {}\n{}",
        text(&ok),
        sssd.diagnostics()
    );
    let prompts = text(&ok);
    assert!(
        prompts.contains("Password + code:") && !prompts.contains("One-time code:"),
        "sssd did not use the single prompt: {prompts}"
    );

    // RADIUS saw only the wrong and the right codes: the password alone never got that far.
    let events = mfa_events(&server, 3);
    assert_eq!(
        outcomes(&events),
        vec![
            ("krbmfa".into(), "rejected".into()),
            ("krbmfa".into(), "accepted".into()),
            ("krbmfa2".into(), "accepted".into())
        ],
        "{events:#?}"
    );
}

#[test]
fn a_secret_file_others_can_read_stops_the_start() {
    let extra = "[mfa]\nservers = [{ address = \"127.0.0.1:1812\", secret_file = \"{dir}/radius.secret\" }]\neveryone = true\n";
    let server = TestServer::prepare(extra);
    let path = server.dir.path().join("radius.secret");
    std::fs::write(&path, SECRET).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dird"))
        .arg("--config")
        .arg(server.config_path())
        .arg("serve")
        .env("DIRD_ADMIN_PASSWORD", common::ADMIN_PW)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dird");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dird started with a world-readable RADIUS secret");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("[mfa]") && msg.contains("chmod 600"),
        "the error should name [mfa] and the fix: {msg}"
    );
}
