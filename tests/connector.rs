//! Connector mode (issue 12) end to end: a real Samba AD DC, provisioned by this binary in a
//! temporary directory, behind a dird with `mode = "connector"`, driven by the OpenLDAP
//! clients. Samba insists on the standard AD ports, so the DC is provisioned once per binary
//! (a shared fixture), the tests are serialised (`SERIAL`), and the binary holds the lock
//! file /tmp/dird-std-ports.lock (flock) while the DC runs, so no other test binary uses
//! those ports at once. Samba runs in the foreground (`samba -i`) with its stdin on a pipe
//! held by this process: it terminates when the test process exits, however it exits.
//! Needs (scripts/test-all.sh installs them): samba samba-ad-dc samba-common-bin
//! ldap-utils openssl; runs as root (Samba).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use common::{rc, text, TestServer};

const DOMAIN: &str = "corp.example.com";
const BASE: &str = "DC=corp,DC=example,DC=com";
const ADMIN_UPN: &str = "Administrator@corp.example.com";
const ADMIN_DN: &str = "CN=Administrator,CN=Users,DC=corp,DC=example,DC=com";
const ADMIN_PW: &str = "Lab-Passw0rd!";
/// The user made with `samba-tool user add`.
const JDOE_DN: &str = "CN=John Doe,CN=Users,DC=corp,DC=example,DC=com";
const JDOE_PW: &str = "Jd-Passw0rd!";
const PORTS_LOCK: &str = "/tmp/dird-std-ports.lock";

/// One test at a time: they share the DC (and one of them stops it).
static SERIAL: Mutex<()> = Mutex::new(());
static SAMBA: OnceLock<Samba> = OnceLock::new();

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Samba AD DC of this test binary.
struct Samba {
    dir: PathBuf,
    conf: PathBuf,
    ca: PathBuf,
    child: Mutex<Option<Child>>,
    _lock: File,
    _reaper: Child,
}

fn need(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is missing: install samba samba-ad-dc samba-common-bin ldap-utils openssl (scripts/test-all.sh does)"
    );
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", text(&out));
    out
}

impl Samba {
    fn get() -> &'static Samba {
        let s = SAMBA.get_or_init(Samba::provision);
        s.ensure_running();
        s
    }

    fn provision() -> Samba {
        for tool in ["samba", "samba-tool", "openssl", "ldapsearch", "ldapmodify"] {
            need(tool);
        }
        let lock = File::create(PORTS_LOCK).expect("create the ports lock file");
        lock.lock().expect("flock /tmp/dird-std-ports.lock");
        // Kept for the life of the process (the fixture is static).
        let dir = tempfile::Builder::new()
            .prefix("dird-connector-samba")
            .tempdir()
            .expect("tempdir")
            .keep();
        // The fixture is static (never dropped): a reaper removes the directory when this
        // process exits, however it exits (its stdin, a pipe we hold, then closes).
        let reaper = Command::new("sh")
            .arg("-c")
            .arg("cat >/dev/null; sleep 2; rm -rf \"$0\"")
            .arg(&dir)
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn the tempdir reaper");
        let t0 = Instant::now();
        let d = dir.display().to_string();
        let opt = |o: String| format!("--option={o}");
        run(
            Command::new("samba-tool").args([
                "domain",
                "provision",
                "--realm=CORP.EXAMPLE.COM",
                "--domain=CORP",
                "--server-role=dc",
                // Samba's internal DNS (on 127.0.0.1:53) serves _ldap._tcp for discovery.
                "--dns-backend=SAMBA_INTERNAL",
                &format!("--adminpass={ADMIN_PW}"),
                "--use-rfc2307",
                &format!("--targetdir={d}/sam"),
                "--host-name=dc1",
                &opt("interfaces = lo".into()),
                &opt("bind interfaces only = yes".into()),
                &opt(format!("log file = {d}/log.%m")),
                &opt(format!("pid directory = {d}/run")),
                &opt(format!("ncalrpc dir = {d}/run/ncalrpc")),
                &opt(format!("winbindd socket directory = {d}/run/winbindd")),
                &opt(format!("ntp signd socket directory = {d}/run/ntp_signd")),
                &opt("server services = -dnsupdate -nbt -wrepl -s3fs".into()),
                &opt("disable netbios = yes".into()),
            ]),
            "samba-tool domain provision",
        );
        // A CA of our own and a DC certificate for 127.0.0.1, so that dird verifies the
        // upstream certificate for real (Samba's self-made one names only its host name).
        let sh = |script: &str, what: &str| {
            run(
                Command::new("sh").arg("-c").arg(script).current_dir(&dir),
                what,
            );
        };
        sh(
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=dird test AD CA' \
               -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>&1 && \
             openssl req -newkey rsa:2048 -nodes -keyout dc.key -out dc.csr -subj /CN=dc1.corp.example.com 2>&1 && \
             printf 'subjectAltName=IP:127.0.0.1,DNS:dc1.corp.example.com\\nextendedKeyUsage=serverAuth\\n' > ext.cnf && \
             openssl x509 -req -in dc.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out dc.pem -days 2 -extfile ext.cnf 2>&1 && \
             chmod 600 dc.key",
            "openssl: test CA and DC certificate",
        );
        let conf = dir.join("sam/etc/smb.conf");
        let smb = std::fs::read_to_string(&conf).expect("read smb.conf");
        // provision copies the host's resolver as `dns forwarder`: nothing leaves the box.
        let smb: String = smb
            .lines()
            .filter(|l| !l.trim_start().starts_with("dns forwarder"))
            .map(|l| format!("{l}\n"))
            .collect();
        // ldb:nosync: no fsync per write (a throwaway DC; as Samba's own selftest runs it);
        // old password allowed period = 0: a replaced password stops working at once.
        let smb = smb.replacen(
            "[global]",
            &format!(
                "[global]\n\tldb:nosync = true\n\told password allowed period = 0\n\ttls enabled = yes\n\ttls keyfile = {d}/dc.key\n\ttls certfile = {d}/dc.pem\n\ttls cafile = {d}/ca.pem\n"
            ),
            1,
        );
        std::fs::write(&conf, smb).expect("write smb.conf");
        let conf_s = conf.display().to_string();
        // Users may change their own password right away (the default minimum age is a day).
        run(
            Command::new("samba-tool").args([
                "domain",
                "passwordsettings",
                "set",
                "--min-pwd-age=0",
                "-s",
                &conf_s,
            ]),
            "samba-tool domain passwordsettings",
        );
        run(
            Command::new("samba-tool").args([
                "user",
                "add",
                "jdoe",
                JDOE_PW,
                "--given-name=John",
                "--surname=Doe",
                "-s",
                &conf_s,
            ]),
            "samba-tool user add jdoe",
        );
        // The service account dird's MFA lookups and `search_as = "service"` searches use.
        run(
            Command::new("samba-tool").args(["user", "add", "svc-dird", SVC_PW, "-s", &conf_s]),
            "samba-tool user add svc-dird",
        );
        let samba = Samba {
            ca: dir.join("ca.pem"),
            dir,
            conf,
            child: Mutex::new(None),
            _lock: lock,
            _reaper: reaper,
        };
        samba.start();
        samba.add_dc_address();
        eprintln!("samba AD DC provisioned and started in {:?}", t0.elapsed());
        samba
    }

    fn ensure_running(&self) {
        let running = self.child.lock().unwrap().is_some();
        if !running {
            self.start();
        }
    }

    /// Starts `samba -i` and waits until LDAPS answers.
    fn start(&self) {
        let mut guard = self.child.lock().unwrap();
        assert!(guard.is_none(), "samba is already running");
        let log = File::create(self.dir.join("samba.out")).expect("samba log");
        let child = Command::new("samba")
            .args(["-i", "-M", "single", "-s"])
            .arg(&self.conf)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn samba");
        *guard = Some(child);
        drop(guard);
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect("127.0.0.1:636").is_err() {
            assert!(
                Instant::now() < deadline,
                "samba did not listen on 636 within 60 s; see {}",
                self.dir.join("samba.out").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The SRV target dc1.corp.example.com needs an address in Samba's DNS (provision skips
    /// loopback ones), for `upstreams_discovered_by_dns_srv`. Added once, after the first
    /// start; `samba-tool dns` goes over RPC, which listens some time after LDAPS does, so a
    /// refused connection is retried. The record is stored in the directory and outlives
    /// restarts.
    fn add_dc_address(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = Command::new("samba-tool")
                .args(["dns", "add", "127.0.0.1", DOMAIN, "dc1", "A", "127.0.0.1"])
                .arg(format!("-UAdministrator%{ADMIN_PW}"))
                .arg("-s")
                .arg(&self.conf)
                .output()
                .expect("samba-tool dns add");
            if out.status.success() || text(&out).contains("ALREADY_EXISTS") {
                return;
            }
            assert!(
                text(&out).contains("refused") && Instant::now() < deadline,
                "samba-tool dns add dc1 A 127.0.0.1: {}",
                text(&out)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Stops the DC (EOF on its stdin, the way `samba -i` is told to terminate).
    fn stop(&self) {
        let Some(mut child) = self.child.lock().unwrap().take() else {
            return;
        };
        drop(child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().expect("wait samba").is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect("127.0.0.1:636").is_ok() {
            assert!(
                Instant::now() < deadline,
                "port 636 still open after samba stopped"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A dird in connector mode in front of this DC; `extra` adds `[connector]` keys.
    fn dird(&self, upstreams: &str, extra: &str) -> TestServer {
        self.dird_kdc(upstreams, extra, false)
    }

    fn dird_kdc(&self, upstreams: &str, extra: &str, with_kdc: bool) -> TestServer {
        TestServer::start_connector(
            DOMAIN,
            &format!(
                "upstreams = {upstreams}\nca_file = \"{}\"\n{extra}",
                self.ca.display()
            ),
            with_kdc,
        )
    }

    /// An OpenLDAP tool pointed at the DC itself (not through dird).
    fn direct(&self, tool: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(tool)
            .args(args)
            .env("LDAPTLS_CACERT", &self.ca)
            .env("LDAPTLS_REQCERT", "demand")
            .env("LDAPCONF", "/dev/null")
            .env("LDAPRC", "/nonexistent-dird-test-ldaprc")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tool");
        if let Some(input) = stdin {
            common::feed_stdin(&mut child, input.as_bytes());
        }
        child.wait_with_output().expect("wait tool")
    }

    fn conf(&self) -> String {
        self.conf.display().to_string()
    }
}

fn whoami(s: &TestServer, url: &str, who: &str, pw: &str) -> Output {
    s.whoami(&["-H", url, "-D", who, "-w", pw])
}

fn assert_whoami(s: &TestServer, url: &str, who: &str, pw: &str, dn: &str) {
    let out = whoami(s, url, who, pw);
    assert_eq!(
        rc(&out),
        0,
        "ldapwhoami as {who} through dird: {}",
        text(&out)
    );
    assert_eq!(
        common::stdout(&out).trim(),
        format!("dn:{dn}"),
        "ldapwhoami as {who}"
    );
}

#[test]
fn binds_and_searches_pass_through_to_ad() {
    let _g = serial();
    let samba = Samba::get();
    let s = samba.dird("[\"ldaps://127.0.0.1\"]", "");
    let (ldaps, ldap) = (s.ldaps_url(), s.ldap_url());

    // ldapwhoami: Administrator by UPN, the samba-tool user by UPN, down-level name and DN.
    assert_whoami(&s, &ldaps, ADMIN_UPN, ADMIN_PW, ADMIN_DN);
    assert_whoami(&s, &ldaps, "jdoe@corp.example.com", JDOE_PW, JDOE_DN);
    assert_whoami(&s, &ldaps, "CORP\\jdoe", JDOE_PW, JDOE_DN);
    assert_whoami(&s, &ldap, JDOE_DN, JDOE_PW, JDOE_DN);

    // ldapsearch as Administrator (LDAPS) and as jdoe (StartTLS to dird).
    let out = s.ldapsearch(&[
        "-H",
        &ldaps,
        "-D",
        ADMIN_UPN,
        "-w",
        ADMIN_PW,
        "-b",
        BASE,
        "(sAMAccountName=jdoe)",
        "sAMAccountName",
        "userPrincipalName",
        "objectSid",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(
        common::dns(&out),
        vec![JDOE_DN.to_string()],
        "{}",
        text(&out)
    );
    assert_eq!(common::values(&out, "sAMAccountName"), vec!["jdoe"]);
    // binary values survive the relay (objectSid is base64 in LDIF)
    assert!(
        common::stdout(&out).contains("objectSid:: AQUAAAAAAAUVAAAA"),
        "{}",
        text(&out)
    );
    let out = s.ldapsearch(&[
        "-ZZ",
        "-H",
        &ldap,
        "-D",
        "CORP\\jdoe",
        "-w",
        JDOE_PW,
        "-b",
        BASE,
        "(sAMAccountName=Administrator)",
        "dn",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(
        common::dns(&out),
        vec![ADMIN_DN.to_string()],
        "{}",
        text(&out)
    );

    // compare is forwarded
    let out = s.tool(
        "ldapcompare",
        &[
            "-x",
            "-H",
            &ldaps,
            "-D",
            ADMIN_UPN,
            "-w",
            ADMIN_PW,
            JDOE_DN,
            "sAMAccountName:jdoe",
        ],
    );
    assert_eq!(rc(&out), 6, "compareTrue expected: {}", text(&out));

    // A wrong password: AD's own result and diagnostic, unchanged.
    for who in ["jdoe@corp.example.com", "CORP\\jdoe", JDOE_DN] {
        let out = whoami(&s, &ldaps, who, "wrong-Passw0rd");
        assert_eq!(rc(&out), 49, "{}", text(&out));
        let t = text(&out);
        assert!(
            t.contains("AcceptSecurityContext error, data 52e"),
            "AD's data 52e diagnostic expected through dird: {t}"
        );
    }

    // StartTLS upstream (ldap:// with starttls = true, the default) works the same way.
    let st = samba.dird("[\"ldap://127.0.0.1\"]", "starttls = true");
    assert_whoami(&st, &st.ldaps_url(), ADMIN_UPN, ADMIN_PW, ADMIN_DN);
    let out = st.ldapsearch(&[
        "-H",
        &st.ldaps_url(),
        "-D",
        "jdoe@corp.example.com",
        "-w",
        JDOE_PW,
        "-b",
        BASE,
        "(sAMAccountName=jdoe)",
        "dn",
    ]);
    assert_eq!(
        common::dns(&out),
        vec![JDOE_DN.to_string()],
        "{}",
        text(&out)
    );
}

#[test]
fn upstream_certificate_is_verified() {
    let _g = serial();
    let samba = Samba::get();
    // A CA that did not sign the DC's certificate: every bind fails with unavailable.
    let other = samba.dir.join("other-ca.pem");
    run(
        Command::new("sh").arg("-c").arg(format!(
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -out {} -days 2 -subj '/CN=unrelated CA' 2>&1",
            other.display()
        )),
        "openssl: unrelated CA",
    );
    let s = TestServer::start_connector(
        DOMAIN,
        &format!(
            "upstreams = [\"ldaps://127.0.0.1\"]\nca_file = \"{}\"",
            other.display()
        ),
        false,
    );
    let out = whoami(&s, &s.ldaps_url(), ADMIN_UPN, ADMIN_PW);
    assert_eq!(
        rc(&out),
        52,
        "an unverifiable upstream must not be used: {}",
        text(&out)
    );
}

#[test]
fn writes_and_paged_enumeration_of_2000_users() {
    let _g = serial();
    let samba = Samba::get();
    let s = samba.dird("[\"ldaps://127.0.0.1\"]", "");
    let ldaps = s.ldaps_url();
    let admin = ["-x", "-H", ldaps.as_str(), "-D", ADMIN_UPN, "-w", ADMIN_PW];

    // 2,000 users added through dird (one ldapadd session).
    let ou = format!("OU=Bulk,{BASE}");
    let mut ldif = format!("dn: {ou}\nobjectClass: organizationalUnit\nou: Bulk\n\n");
    for i in 0..2000 {
        ldif.push_str(&format!(
            "dn: CN=bulk{i:04},{ou}\nobjectClass: user\nsAMAccountName: bulk{i:04}\n\n"
        ));
    }
    // (from a file: ldapmodify's progress output would fill a pipe nobody reads yet)
    let file = s.path("bulk.ldif");
    std::fs::write(&file, ldif).unwrap();
    let file = file.display().to_string();
    let t0 = Instant::now();
    let mut args = vec!["-a", "-f", &file];
    args.extend_from_slice(&admin);
    let out = s.tool("ldapmodify", &args);
    assert_eq!(
        rc(&out),
        0,
        "ldapadd of 2000 users through dird: {}",
        text(&out)
    );
    eprintln!("2000 adds through dird: {:?}", t0.elapsed());

    // Paged enumeration through dird (the paging cookies are Samba's, on the pinned
    // connection).
    let t0 = Instant::now();
    let mut args = admin.to_vec();
    args.extend_from_slice(&[
        "-E",
        "pr=300/noprompt",
        "-b",
        &ou,
        "(objectClass=user)",
        "sAMAccountName",
    ]);
    let out = s.ldapsearch(&args);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let names = common::values(&out, "sAMAccountName");
    assert_eq!(names.len(), 2000, "paged enumeration through dird");
    assert!(names.contains(&"bulk1999".to_string()));
    eprintln!(
        "paged enumeration of 2000 users through dird: {:?}",
        t0.elapsed()
    );
    // Unpaged, the 2,000 entries stream through in batches.
    let mut args = admin.to_vec();
    args.extend_from_slice(&["-b", &ou, "(objectClass=user)", "dn"]);
    let out = s.ldapsearch(&args);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(common::dns(&out).len(), 2000, "unpaged search through dird");

    // modify, modrdn, delete through dird; checked on the DC directly.
    let m = format!(
        "dn: CN=bulk0000,{ou}\nchangetype: modify\nreplace: description\ndescription: set through dird\n\n\
         dn: CN=bulk0001,{ou}\nchangetype: modrdn\nnewrdn: CN=renamed0001\ndeleteoldrdn: 1\n\n\
         dn: CN=bulk0002,{ou}\nchangetype: delete\n\n"
    );
    let out = s.tool_stdin("ldapmodify", &admin, Some(&m));
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let out = samba.direct(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-o",
            "ldif_wrap=no",
            "-H",
            "ldaps://127.0.0.1",
            "-D",
            ADMIN_UPN,
            "-w",
            ADMIN_PW,
            "-b",
            &ou,
            "(|(cn=bulk0000)(cn=renamed0001)(cn=bulk0001)(cn=bulk0002))",
            "description",
        ],
        None,
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let mut found = common::dns(&out);
    found.sort();
    assert_eq!(
        found,
        vec![format!("CN=bulk0000,{ou}"), format!("CN=renamed0001,{ou}")],
        "{}",
        text(&out)
    );
    assert_eq!(
        common::values(&out, "description"),
        vec!["set through dird"]
    );

    // An anonymous client may not write: the upstream decides (operationsError from Samba).
    let out = s.tool_stdin(
        "ldapmodify",
        &["-x", "-H", &ldaps],
        Some(&format!("dn: CN=bulk0003,{ou}\nchangetype: delete\n")),
    );
    assert_ne!(
        rc(&out),
        0,
        "an anonymous delete must be refused: {}",
        text(&out)
    );
}

/// `"pw"` as the UTF-16LE, quoted value AD wants in unicodePwd, base64 for LDIF.
fn unicode_pwd(pw: &str) -> String {
    use base64::Engine as _;
    let quoted = format!("\"{pw}\"");
    let bytes: Vec<u8> = quoted
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn user_changes_own_password_through_dird() {
    let _g = serial();
    let samba = Samba::get();
    let (old, new) = ("Pw-Old-Passw0rd1", "Pw-New-Passw0rd2");
    let conf = samba.conf();
    // A fresh account for this test (deleted first in case the fixture is reused).
    let _ = Command::new("samba-tool")
        .args(["user", "delete", "pwuser", "-s", &conf])
        .output();
    run(
        Command::new("samba-tool").args(["user", "add", "pwuser", old, "-s", &conf]),
        "samba-tool user add pwuser",
    );
    let s = samba.dird("[\"ldaps://127.0.0.1\"]", "");
    let dn = format!("CN=pwuser,CN=Users,{BASE}");
    let ldif = format!(
        "dn: {dn}\nchangetype: modify\ndelete: unicodePwd\nunicodePwd:: {}\n-\nadd: unicodePwd\nunicodePwd:: {}\n-\n",
        unicode_pwd(old),
        unicode_pwd(new)
    );
    // Never over the client's cleartext leg (not even from loopback).
    let out = s.tool_stdin(
        "ldapmodify",
        &[
            "-x",
            "-H",
            &s.ldap_url(),
            "-D",
            "pwuser@corp.example.com",
            "-w",
            old,
        ],
        Some(&ldif),
    );
    assert_eq!(
        rc(&out),
        13,
        "confidentialityRequired expected: {}",
        text(&out)
    );
    let out = s.tool_stdin(
        "ldapmodify",
        &[
            "-x",
            "-H",
            &s.ldaps_url(),
            "-D",
            "pwuser@corp.example.com",
            "-w",
            old,
        ],
        Some(&ldif),
    );
    assert_eq!(
        rc(&out),
        0,
        "own password change through dird: {}",
        text(&out)
    );
    // Samba itself now accepts the new password and refuses the old one.
    let bind = |pw: &str| {
        samba.direct(
            "ldapsearch",
            &[
                "-x",
                "-H",
                "ldaps://127.0.0.1",
                "-D",
                "pwuser@corp.example.com",
                "-w",
                pw,
                "-b",
                "",
                "-s",
                "base",
                "dn",
            ],
            None,
        )
    };
    let out = bind(new);
    assert_eq!(
        rc(&out),
        0,
        "Samba refuses the new password: {}",
        text(&out)
    );
    let out = bind(old);
    assert_eq!(
        rc(&out),
        49,
        "Samba still takes the old password: {}",
        text(&out)
    );
    // and so does dird
    assert_whoami(&s, &s.ldaps_url(), "CORP\\pwuser", new, &dn);
}

#[test]
fn kinit_through_dird_kdc_port() {
    let _g = serial();
    let samba = Samba::get();
    // dird forwards [kdc] to the upstream hosts on 88 (and kpasswd 464) by default.
    let s = samba.dird_kdc("[\"ldaps://127.0.0.1\"]", "", true);
    let (kdc, kpasswd) = (s.kdc.unwrap(), s.kpasswd.unwrap());
    assert_ne!(
        kdc.port(),
        88,
        "the test must reach Samba through dird, not directly"
    );
    for (name, extra) in [
        ("corp.conf", ""),
        ("corp-tcp.conf", "udp_preference_limit = 1"),
    ] {
        std::fs::write(
            s.path(name),
            format!(
                "[libdefaults]\n  default_realm = CORP.EXAMPLE.COM\n  dns_lookup_kdc = false\n  dns_lookup_realm = false\n  \
                 rdns = false\n  {extra}\n[realms]\n  CORP.EXAMPLE.COM = {{\n    kdc = {kdc}\n    kpasswd_server = {kpasswd}\n  }}\n"
            ),
        )
        .unwrap();
        let cc = format!("cc-{name}");
        s.krb_ok(
            name,
            &cc,
            &["kinit", "jdoe@CORP.EXAMPLE.COM"],
            &format!("{JDOE_PW}\n"),
        );
        let list = s.krb_ok(name, &cc, &["klist"], "");
        assert!(
            list.contains("krbtgt/CORP.EXAMPLE.COM@CORP.EXAMPLE.COM"),
            "a TGT from Samba through dird expected: {list}"
        );
        // a service ticket too (TGS through dird)
        s.krb_ok(name, &cc, &["kvno", "DC1$@CORP.EXAMPLE.COM"], "");
        s.krb_fails(
            name,
            &cc,
            &["kinit", "jdoe@CORP.EXAMPLE.COM"],
            "wrong-Passw0rd\n",
            "Password incorrect",
        );
    }
}

#[test]
fn failover_outage_and_recovery() {
    let _g = serial();
    let samba = Samba::get();
    // The first upstream refuses connections (nothing listens on port 1).
    let s = samba.dird(
        "[\"ldaps://127.0.0.1:1\", \"ldaps://127.0.0.1\"]",
        "connect_timeout_ms = 2000\n[metrics]\nlisten = [\"127.0.0.1:0\"]",
    );
    let ldaps = s.ldaps_url();
    assert_whoami(&s, &ldaps, ADMIN_UPN, ADMIN_PW, ADMIN_DN);
    // Health per upstream on /metrics (dird_upstream_up): the dead first one 0, Samba 1.
    let metrics = s.metrics.expect("metrics address");
    let up = "dird_upstream_up{upstream=\"ldaps://127.0.0.1\"}";
    let wait_health = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = metrics_text(metrics);
            if m.contains(want) {
                return m;
            }
            assert!(Instant::now() < deadline, "no `{want}` on /metrics: {m}");
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    wait_health(&format!("{up} 1"));
    wait_health("dird_upstream_up{upstream=\"ldaps://127.0.0.1:1\"} 0");
    let search = || {
        s.ldapsearch(&[
            "-H",
            &ldaps,
            "-D",
            ADMIN_UPN,
            "-w",
            ADMIN_PW,
            "-b",
            BASE,
            "(sAMAccountName=jdoe)",
            "dn",
        ])
    };
    let out = search();
    assert_eq!(
        common::dns(&out),
        vec![JDOE_DN.to_string()],
        "{}",
        text(&out)
    );

    // Every DC down: a clear error, fast (within connect_timeout_ms plus client overhead).
    samba.stop();
    let t0 = Instant::now();
    let out = search();
    let took = t0.elapsed();
    assert_eq!(
        rc(&out),
        52,
        "unavailable expected with every DC down: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("no upstream domain controller is reachable"),
        "{}",
        text(&out)
    );
    assert!(
        took < Duration::from_millis(3000),
        "the error took {took:?}"
    );
    wait_health(&format!("{up} 0"));

    // The DC comes back: dird recovers by itself, without a restart.
    samba.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = search();
        if rc(&out) == 0 {
            assert_eq!(
                common::dns(&out),
                vec![JDOE_DN.to_string()],
                "{}",
                text(&out)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dird did not recover: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_health(&format!("{up} 1"));
}

#[test]
fn connector_config_is_validated() {
    let _g = serial();
    // Without [connector], and with a plain upstream without StartTLS: refused at start with
    // the key named.
    let dir = tempfile::tempdir().unwrap();
    let write = |body: &str| {
        let p = dir.path().join("dird.toml");
        std::fs::write(
            &p,
            format!(
                "mode = \"connector\"\ndata_dir = \"{}\"\n[domain]\nname = \"{DOMAIN}\"\n[ldap]\nlisten = [\"127.0.0.1:0\"]\n{body}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        p
    };
    let check = |p: &Path| {
        Command::new(env!("CARGO_BIN_EXE_dird"))
            .arg("--config")
            .arg(p)
            .arg("check-config")
            .output()
            .unwrap()
    };
    let out = check(&write(""));
    assert!(!out.status.success());
    assert!(text(&out).contains("`connector`"), "{}", text(&out));
    let out = check(&write(&format!(
        "[connector]\nupstreams = [\"ldap://127.0.0.1\"]\nstarttls = false\nca_file = \"{}\"\n",
        dir.path().join("dird.toml").display()
    )));
    assert!(!out.status.success());
    assert!(text(&out).contains("connector.starttls"), "{}", text(&out));
    let out = check(&write(&format!(
        "[connector]\nupstreams = [\"ldaps://127.0.0.1\"]\nca_file = \"{}\"\n",
        dir.path().join("dird.toml").display()
    )));
    assert!(out.status.success(), "{}", text(&out));
    // The shipped example validates (with a CA file that exists here, data_dir in the temp).
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/connector.toml"),
    )
    .unwrap()
    .replace(
        "/etc/dird/corp-ca.pem",
        &dir.path().join("dird.toml").display().to_string(),
    )
    .replace(
        "/var/lib/dird",
        &dir.path().join("data").display().to_string(),
    )
    .replace("[tls]", "[unused_tls_example]");
    let example = example
        .split("[unused_tls_example]")
        .next()
        .unwrap()
        .to_string()
        + &example[example.find("[kdc]").unwrap()..];
    let p = dir.path().join("example.toml");
    std::fs::write(&p, example).unwrap();
    let out = check(&p);
    assert!(
        out.status.success(),
        "deploy/connector.toml: {}",
        text(&out)
    );
}

// ---------------------------------------------------------------------------------------
// sssd (id_provider = ldap, ldap_schema = ad) pointed at dird in front of Samba

const PAM_SERVICE: &str = "dird-connector-test";
const SSSD_PIPES: &str = "/var/lib/sss/pipes";

/// Every running sssd process id (sssd allows one instance per machine).
fn sssd_pids() -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
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
    for dir in [
        "/var/lib/sss/db",
        "/var/lib/sss/mc",
        "/var/log/sssd",
        "/var/lib/sss/pipes/private",
    ] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_file() || dir.ends_with("private") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    for p in ["nss", "pam"] {
        let _ = std::fs::remove_file(format!("{SSSD_PIPES}/{p}"));
    }
}

/// A foreground sssd (`sssd -i`); stopped (with the processes it started) on drop.
struct Sssd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Sssd {
    fn start(conf: &str) -> Sssd {
        for path in ["/usr/sbin/sssd", "/usr/bin/pamtester"] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install sssd-ldap libnss-sss libpam-sss pamtester (scripts/test-all.sh does)"
            );
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while !sssd_pids().is_empty() {
            assert!(
                Instant::now() < deadline,
                "another sssd keeps running: {:?}",
                sssd_pids()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        clean_sssd_state();
        std::fs::write(
            format!("/etc/pam.d/{PAM_SERVICE}"),
            "auth required pam_sss.so\naccount required pam_sss.so\n",
        )
        .expect("write the PAM service file (runs as root)");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sssd.conf");
        std::fs::write(&path, conf).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let log = File::create(dir.path().join("sssd.out")).unwrap();
        let child = Command::new("/usr/sbin/sssd")
            .args(["-i", "--logger=files", "-c"])
            .arg(&path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run sssd");
        let s = Sssd { child, dir };
        let ready = [
            format!("{SSSD_PIPES}/nss"),
            format!("{SSSD_PIPES}/pam"),
            format!("{SSSD_PIPES}/private/sbus-dp_{DOMAIN}"),
        ];
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.iter().all(|p| Path::new(p).exists()) {
            assert!(
                Instant::now() < deadline,
                "sssd did not start:\n{}",
                s.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    fn diagnostics(&self) -> String {
        let out = std::fs::read_to_string(self.dir.path().join("sssd.out")).unwrap_or_default();
        let log =
            std::fs::read_to_string(format!("/var/log/sssd/sssd_{DOMAIN}.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        format!(
            "sssd output:\n{out}\n--- domain log, newest first ---\n{}",
            tail.join("\n")
        )
    }
}

impl Drop for Sssd {
    fn drop(&mut self) {
        let pid = self.child.id();
        // sssd's monitor stops the responders and providers it forked on TERM.
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sssd_pids().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        clean_sssd_state();
    }
}

fn pamtester(user: &str, password: &str) -> Output {
    let mut child = Command::new("pamtester")
        .args(["-v", PAM_SERVICE, user, "authenticate", "acct_mgmt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pamtester");
    common::feed_stdin(&mut child, format!("{password}\n").as_bytes());
    child.wait_with_output().expect("wait pamtester")
}

#[test]
fn sssd_ad_schema_through_dird() {
    let _g = serial();
    let samba = Samba::get();
    let s = samba.dird("[\"ldaps://127.0.0.1\"]", "");
    let conf = format!(
        "[sssd]\nservices = nss, pam\ndomains = {DOMAIN}\n[nss]\n[pam]\n[domain/{DOMAIN}]\n\
         id_provider = ldap\nauth_provider = ldap\naccess_provider = permit\n\
         ldap_schema = ad\nldap_id_mapping = true\nldap_referrals = false\n\
         ldap_uri = {uri}\nldap_search_base = {BASE}\n\
         ldap_default_bind_dn = {ADMIN_DN}\nldap_default_authtok_type = password\nldap_default_authtok = {ADMIN_PW}\n\
         ldap_tls_cacert = {ca}\nldap_tls_reqcert = demand\n\
         fallback_homedir = /home/%u\ndefault_shell = /bin/bash\ncache_credentials = false\nenumerate = false\n\
         debug_level = 6\n",
        uri = s.ldaps_url(),
        ca = s.ca().display()
    );
    let sssd = Sssd::start(&conf);
    let out = Command::new("getent")
        .args(["passwd", "jdoe"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "getent passwd jdoe: {}\n{}",
        text(&out),
        sssd.diagnostics()
    );
    let line = common::stdout(&out);
    assert!(line.starts_with("jdoe:"), "{line}");
    assert!(line.contains(":/home/jdoe:/bin/bash"), "{line}");
    let out = Command::new("id").arg("jdoe").output().unwrap();
    assert!(
        out.status.success(),
        "id jdoe: {}\n{}",
        text(&out),
        sssd.diagnostics()
    );
    assert!(
        common::stdout(&out).to_lowercase().contains("domain users"),
        "jdoe's primary group (from objectSid id mapping): {}",
        text(&out)
    );
    let out = Command::new("getent")
        .args(["group", "Domain Admins"])
        .output()
        .unwrap();
    assert!(
        common::stdout(&out)
            .to_lowercase()
            .contains("administrator"),
        "getent group 'Domain Admins': {}\n{}",
        text(&out),
        sssd.diagnostics()
    );
    let out = pamtester("jdoe", JDOE_PW);
    assert!(
        out.status.success(),
        "pamtester jdoe: {}\n{}",
        text(&out),
        sssd.diagnostics()
    );
    let out = pamtester("jdoe", "wrong-Passw0rd");
    assert!(
        !out.status.success(),
        "a wrong password must fail: {}",
        text(&out)
    );
}

fn metrics_text(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

#[test]
fn forwarded_binds_and_writes_are_audited_with_their_upstream() {
    let _g = serial();
    let samba = Samba::get();
    let logs = tempfile::tempdir().unwrap();
    let audit = logs.path().join("audit.jsonl");
    let s = samba.dird(
        "[\"ldaps://127.0.0.1\"]",
        &format!(
            "[audit]\npath = \"{}\"\n[metrics]\nlisten = [\"127.0.0.1:0\"]",
            audit.display()
        ),
    );
    let ldaps = s.ldaps_url();
    let out = s.tool_stdin(
        "ldapmodify",
        &["-x", "-H", &ldaps, "-D", ADMIN_UPN, "-w", ADMIN_PW],
        Some(&format!(
            "dn: {JDOE_DN}\nchangetype: modify\nreplace: description\ndescription: audited\n"
        )),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let out = whoami(&s, &ldaps, "CORP\\jdoe", "wrong-Passw0rd");
    assert_eq!(rc(&out), 49);
    // The audit writer is asynchronous: wait for the three events.
    let deadline = Instant::now() + Duration::from_secs(10);
    let events: Vec<serde_json::Value> = loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        let events: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if events.len() >= 3 || Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let find = |op: &str, code: u64| {
        events
            .iter()
            .find(|e| e["operation"] == op && e["result"]["code"] == code)
            .unwrap_or_else(|| panic!("no {op} event with code {code} in {events:#?}"))
    };
    let bind = find("bind", 0);
    assert_eq!(bind["identity"], ADMIN_DN);
    assert_eq!(bind["details"]["upstream"], "ldaps://127.0.0.1");
    let modify = find("modify", 0);
    assert_eq!(modify["target"], JDOE_DN);
    assert_eq!(modify["details"]["upstream"], "ldaps://127.0.0.1");
    let refused = find("bind", 49);
    assert!(
        refused["reason"]
            .as_str()
            .unwrap_or("")
            .contains("data 52e"),
        "{refused}"
    );
    let m = metrics_text(s.metrics.expect("metrics address"));
    assert!(
        m.contains("dird_upstream_operations_total{upstream=\"ldaps://127.0.0.1\",op=\"modify\",code=\"success\"} 1"),
        "{m}"
    );
}

/// A python3-ldap3 client that binds and searches, waits for `flag`, then searches again on
/// the same connection (the outage happens in between).
const CACHE_CLIENT: &str = r#"
import os, sys, time
from ldap3 import Server, Connection, SUBTREE
host, port, flag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = Connection(Server(host, port), 'CORP\\jdoe', sys.argv[4], auto_bind=True, receive_timeout=20)
def search(f):
    c.search('DC=corp,DC=example,DC=com', f, SUBTREE, attributes=['sAMAccountName'])
    return '%s %s' % (c.result['result'], ','.join(e.entry_dn for e in c.entries))
print('before', search('(sAMAccountName=jdoe)'), flush=True)
while not os.path.exists(flag):
    time.sleep(0.1)
print('cached', search('(sAMAccountName=jdoe)'), flush=True)
print('uncached', search('(sAMAccountName=Administrator)'), flush=True)
"#;

#[test]
fn cache_answers_earlier_searches_during_an_outage() {
    use std::io::BufRead;
    let _g = serial();
    let samba = Samba::get();
    let logs = tempfile::tempdir().unwrap();
    let audit = logs.path().join("audit.jsonl");
    let s = samba.dird(
        "[\"ldaps://127.0.0.1\"]",
        &format!(
            "connect_timeout_ms = 1000\n[connector.cache]\nttl_secs = 300\nmax_entries = 1000\n[audit]\npath = \"{}\"",
            audit.display()
        ),
    );
    let flag = logs.path().join("samba-stopped");
    let mut child = Command::new(common::python3())
        .arg("-c")
        .arg(CACHE_CLIENT)
        .args([
            &s.ldap.ip().to_string(),
            &s.ldap.port().to_string(),
            &flag.display().to_string(),
            JDOE_PW,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (install python3-ldap3)");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(first, format!("before 0 {JDOE_DN}"));
    samba.stop();
    std::fs::write(&flag, "").unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = child.wait_with_output().unwrap();
    samba.start();
    assert_eq!(
        rest,
        vec![format!("cached 0 {JDOE_DN}"), "uncached 52 ".to_string()],
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The cached answer is marked in the audit stream.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        if text.contains("\"cached_read\"") {
            assert!(text.contains(JDOE_DN), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cached_read event in the audit stream: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------
// MFA on connector binds (issues 11 and 12): FreeRADIUS with TOTP behind dird's [mfa]

const MFA_USERS_DN: &str = "CN=MFA Users,CN=Users,DC=corp,DC=example,DC=com";
const MFA_INNER_DN: &str = "CN=MFA Inner,CN=Users,DC=corp,DC=example,DC=com";
const MFAUSER_DN: &str = "CN=mfauser,CN=Users,DC=corp,DC=example,DC=com";
const MFAUSER_PW: &str = "Mfa-Passw0rd!";
/// Not in the MFA group; the password ends in six digits (must not be cut as a code).
const PLAIN_PW: &str = "Plain-Pw-123456";
const SVC_PW: &str = "Svc-Dird-Passw0rd!";

/// Python (ldap3): a bind with a wrong code is refused, then WhoAmI on the same connection
/// must be anonymous (the pinned upstream connection is not left bound as the user).
const WHOAMI_AFTER_REFUSAL: &str = r#"
import ssl, sys
from ldap3 import Server, Connection, Tls
url, who, pw = sys.argv[1], sys.argv[2], sys.argv[3]
import os
tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=os.environ["LDAPTLS_CACERT"])
c = Connection(Server(url, use_ssl=True, tls=tls), user=who, password=pw, raise_exceptions=False)
c.open()
ok = c.bind()
print("bind", ok, c.result["result"])
w = c.extend.standard.who_am_i()
print("whoami", repr(w or ""), c.result["result"])
# Searches are forwarded: Samba answers an anonymous one with an error, never the entry.
c.search(sys.argv[4], "(sAMAccountName=mfauser)", attributes=["cn"])
print("search entries", len(c.entries), "code", c.result["result"])
"#;

#[test]
fn mfa_on_connector_binds_with_freeradius() {
    let _g = serial();
    let samba = Samba::get();
    // An MFA user in a group nested in the MFA group, a plain user (the service account
    // svc-dird is made at provisioning).
    let user = |cn: &str, pw: &str| {
        format!(
            "dn: CN={cn},CN=Users,{BASE}\nchangetype: add\nobjectClass: user\nsAMAccountName: {cn}\n\
             userPrincipalName: {cn}@{DOMAIN}\nunicodePwd:: {}\nuserAccountControl: 512\n\n",
            unicode_pwd(pw)
        )
    };
    let ldif = format!(
        "{}{}dn: {MFA_INNER_DN}\nchangetype: add\nobjectClass: group\nsAMAccountName: mfainner\nmember: {MFAUSER_DN}\n\n\
         dn: {MFA_USERS_DN}\nchangetype: add\nobjectClass: group\nsAMAccountName: mfausers\nmember: {MFA_INNER_DN}\n",
        user("mfauser", MFAUSER_PW),
        user("plainuser", PLAIN_PW),
    );
    let out = samba.direct(
        "ldapmodify",
        &[
            "-x",
            "-H",
            "ldaps://127.0.0.1",
            "-D",
            ADMIN_UPN,
            "-w",
            ADMIN_PW,
        ],
        Some(&ldif),
    );
    assert_eq!(
        rc(&out),
        0,
        "adding the MFA test accounts to Samba: {}",
        text(&out)
    );

    let mut radius = common::radius::FreeRadius::start(&["mfauser"]);
    let files = tempfile::tempdir().unwrap();
    let secret = files.path().join("radius.secret");
    let svc_pw = files.path().join("svc.password");
    let audit = files.path().join("audit.jsonl");
    for (path, body) in [(&secret, common::radius::SECRET), (&svc_pw, SVC_PW)] {
        std::fs::write(path, format!("{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let s = samba.dird(
        "[\"ldaps://127.0.0.1\"]",
        &format!(
            "service_account = \"svc-dird@{DOMAIN}\"\nservice_password_file = \"{}\"\n\
             [audit]\npath = \"{}\"\n\
             [mfa]\nservers = [{{ address = \"{}\", secret_file = \"{}\" }}]\n\
             require_message_authenticator = true\ntimeout_ms = 500\nretries = 0\n\
             groups = [\"{MFA_USERS_DN}\"]\notp_length = 6\n",
            svc_pw.display(),
            audit.display(),
            radius.addr(),
            secret.display()
        ),
    );
    let ldaps = s.ldaps_url();
    let upn = format!("mfauser@{DOMAIN}");

    // Password + code: accepted (by UPN); the same code again: refused as a replay.
    let code = common::radius::fresh_code();
    assert_whoami(&s, &ldaps, &upn, &format!("{MFAUSER_PW}{code}"), MFAUSER_DN);
    let replay = whoami(&s, &ldaps, &upn, &format!("{MFAUSER_PW}{code}"));
    assert_eq!(rc(&replay), 49, "replayed code: {}", text(&replay));
    // Password alone, wrong code, wrong password (+ right-looking code): all 49, and the
    // client cannot tell which factor failed (the same diagnostic).
    let alone = whoami(&s, &ldaps, &upn, MFAUSER_PW);
    assert_eq!(rc(&alone), 49, "password alone: {}", text(&alone));
    let wrong_code = common::radius::wrong_code(&code);
    let bad_code = whoami(&s, &ldaps, &upn, &format!("{MFAUSER_PW}{wrong_code}"));
    assert_eq!(rc(&bad_code), 49, "wrong code: {}", text(&bad_code));
    let bad_pw = whoami(&s, &ldaps, &upn, &format!("Wrong-Passw0rd!{code}"));
    assert_eq!(rc(&bad_pw), 49, "wrong password: {}", text(&bad_pw));
    assert!(text(&bad_pw).contains("data 52e"), "{}", text(&bad_pw));
    assert_eq!(
        text(&bad_code),
        text(&bad_pw),
        "the refusals must read alike"
    );
    assert_eq!(text(&alone), text(&bad_pw), "the refusals must read alike");
    // A refused code leaves the session anonymous upstream (not bound as the user).
    let out = s.python(
        WHOAMI_AFTER_REFUSAL,
        &[
            &ldaps,
            MFAUSER_DN,
            &format!("{MFAUSER_PW}{wrong_code}"),
            BASE,
        ],
    );
    let said = text(&out);
    assert!(said.contains("bind False 49"), "{said}");
    assert!(
        !said.to_lowercase().contains("mfauser"),
        "still bound as the user: {said}"
    );
    assert!(
        said.contains("whoami '' 0"),
        "WhoAmI after the refusal: {said}"
    );
    assert!(
        said.contains("search entries 0 code "),
        "search after the refusal: {said}"
    );
    assert!(
        !said.contains("search entries 0 code 0\n"),
        "search after the refusal: {said}"
    );

    // Users outside the MFA group bind with a password alone, even one ending in digits,
    // by DOMAIN\user and by DN.
    let plain_dn = format!("CN=plainuser,CN=Users,{BASE}");
    assert_whoami(&s, &ldaps, "CORP\\plainuser", PLAIN_PW, &plain_dn);
    assert_whoami(&s, &ldaps, JDOE_DN, JDOE_PW, JDOE_DN);

    // The audit stream says which factor failed (RADIUS User-Name = sAMAccountName).
    let deadline = Instant::now() + Duration::from_secs(5);
    let outcomes: Vec<(String, String)> = loop {
        let o: Vec<(String, String)> = std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == "mfa")
            .map(|e| {
                (
                    e["identity"].as_str().unwrap_or_default().to_string(),
                    e["result"]["name"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        if o.len() >= 5 || Instant::now() > deadline {
            break o;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let want: Vec<(String, String)> = ["accepted", "replayed", "missing", "rejected", "rejected"]
        .iter()
        .map(|o| ("mfauser".to_string(), o.to_string()))
        .collect();
    assert_eq!(outcomes, want, "mfa audit events");

    // RADIUS down: the second factor cannot be checked, 52 (fail closed, within the timeout).
    // (A code not accepted before: the one accepted above would be refused as a replay.)
    radius.stop();
    let t0 = Instant::now();
    let down = whoami(&s, &ldaps, &upn, &format!("{MFAUSER_PW}{wrong_code}"));
    assert_eq!(rc(&down), 52, "RADIUS down: {}", text(&down));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

/// Reads the audit file until `pred` holds for one event (the writer is asynchronous).
fn audit_event(path: &Path, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let events: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if let Some(e) = events.iter().find(|e| pred(e)) {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no such audit event in {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn search_as_service_applies_dirds_read_acl() {
    let _g = serial();
    let samba = Samba::get();
    let files = tempfile::tempdir().unwrap();
    let svc_pw = files.path().join("svc.password");
    std::fs::write(&svc_pw, format!("{SVC_PW}\n")).unwrap();
    let audit = files.path().join("audit.jsonl");
    let connector = format!(
        "upstreams = [\"ldaps://127.0.0.1\"]\nca_file = \"{}\"\nsearch_as = \"service\"\n\
         service_account = \"svc-dird@{DOMAIN}\"\nservice_password_file = \"{}\"\n\
         [audit]\npath = \"{}\"",
        samba.ca.display(),
        svc_pw.display(),
        audit.display()
    );
    let s = TestServer::start_connector(DOMAIN, &connector, false);
    let ldaps = s.ldaps_url();
    let search = |auth: &[&str], filter: &str| {
        let mut args = vec!["-H", ldaps.as_str()];
        args.extend_from_slice(auth);
        args.extend_from_slice(&["-b", BASE, filter, "dn"]);
        s.ldapsearch(&args)
    };
    let jdoe = ["-D", "CORP\\jdoe", "-w", JDOE_PW];
    // A bound Samba user: the search runs as the service account, and results come back.
    let out = search(&jdoe, "(sAMAccountName=jdoe)");
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(
        common::dns(&out),
        vec![JDOE_DN.to_string()],
        "{}",
        text(&out)
    );
    // The audit names the service account and the client it searched for.
    let e = audit_event(&audit, |e| e["event"] == "service_read");
    assert_eq!(e["operation"], "search", "{e}");
    assert_eq!(e["identity"], JDOE_DN, "{e}");
    assert_eq!(
        e["details"]["search_as"],
        format!("svc-dird@{DOMAIN}"),
        "{e}"
    );
    assert_eq!(e["details"]["upstream"], "ldaps://127.0.0.1", "{e}");
    // Binds still pass through for the user's credentials (AD's diagnostic unchanged).
    let out = search(
        &["-D", "CORP\\jdoe", "-w", "Wrong-Passw0rd"],
        "(sAMAccountName=jdoe)",
    );
    assert_eq!(rc(&out), 49, "{}", text(&out));
    assert!(text(&out).contains("data 52e"), "{}", text(&out));
    // A filter naming a secret attribute is refused (no oracle through the service account).
    let out = search(&jdoe, "(unicodePwd=*)");
    assert_eq!(rc(&out), 50, "{}", text(&out));
    // Anonymous: dird's ACL (anonymous_read = false by default) refuses, though the service
    // account could read; the rootDSE stays readable.
    let out = search(&["-x"], "(sAMAccountName=jdoe)");
    assert_eq!(rc(&out), 50, "anonymous search: {}", text(&out));
    let out = s.ldapsearch(&[
        "-H",
        &ldaps,
        "-x",
        "-s",
        "base",
        "-b",
        "",
        "(objectClass=*)",
        "defaultNamingContext",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert!(common::stdout(&out).contains(BASE), "{}", text(&out));
    drop(s);
    // With anonymous_read = true dird's ACL lets anonymous read, and the answer comes from
    // the service account (Samba itself refuses anonymous searches of the domain).
    let s = TestServer::start_connector_with(DOMAIN, &connector, "anonymous_read = true", false);
    let ldaps = s.ldaps_url();
    let out = s.ldapsearch(&[
        "-H",
        &ldaps,
        "-x",
        "-b",
        BASE,
        "(sAMAccountName=jdoe)",
        "dn",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(
        common::dns(&out),
        vec![JDOE_DN.to_string()],
        "{}",
        text(&out)
    );
    let direct = samba.direct(
        "ldapsearch",
        &[
            "-x",
            "-H",
            "ldaps://127.0.0.1",
            "-b",
            BASE,
            "(sAMAccountName=jdoe)",
            "dn",
        ],
        None,
    );
    assert_ne!(
        rc(&direct),
        0,
        "Samba answered an anonymous search: {}",
        text(&direct)
    );
}

/// Two sessions against a cap of two sessions and one upstream connection: the second
/// session's bind finds the pool full (busy), a third connection is closed; after the first
/// session unbinds, the second binds.
const CAPS_CLIENT: &str = r#"
import sys, time
from ldap3 import Server, Connection
host, port, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3]
srv = lambda: Server(host, port, connect_timeout=5)
c1 = Connection(srv(), 'CORP\\jdoe', pw, auto_bind=True, receive_timeout=10)
print('first', c1.result['result'], flush=True)
c2 = Connection(srv(), 'CORP\\jdoe', pw, receive_timeout=10)
c2.open()
c2.bind()
print('second', c2.result['result'], c2.result['message'], flush=True)
c3 = Connection(srv(), 'CORP\\jdoe', pw, receive_timeout=10)
try:
    c3.open()
    ok = c3.bind()
    print('third', 'bound' if ok else 'refused %s' % c3.result, flush=True)
except Exception as e:
    print('third', 'closed', type(e).__name__, flush=True)
c1.unbind()
deadline = time.time() + 10
while True:
    c2.bind()
    if c2.result['result'] == 0 or time.time() > deadline:
        break
    time.sleep(0.2)
print('again', c2.result['result'], flush=True)
"#;

#[test]
fn tier_caps_limit_sessions_and_upstream_pool() {
    let _g = serial();
    let samba = Samba::get();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("dird.log");
    let mut s = samba.dird(
        "[\"ldaps://127.0.0.1\"]",
        "max_sessions = 2\nmax_upstream_connections = 1",
    );
    s.stop();
    s.log_to(&log, "warn");
    s.launch();
    let out = s.python(
        CAPS_CLIENT,
        &[
            &s.ldap.ip().to_string(),
            &s.ldap.port().to_string(),
            JDOE_PW,
        ],
    );
    let o = common::stdout(&out);
    assert!(o.contains("first 0"), "{}", text(&out));
    assert!(
        o.contains("second 51") && o.contains("upstream connections"),
        "{}",
        text(&out)
    );
    assert!(o.contains("third closed"), "{}", text(&out));
    assert!(o.contains("again 0"), "{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let l = std::fs::read_to_string(&log).unwrap_or_default();
        if l.contains("connection limit reached") && l.contains("client-session cap") {
            assert!(l.contains("upstream connection pool exhausted"), "{l}");
            break;
        }
        assert!(Instant::now() < deadline, "no logged reason: {l}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A DNS query for `_ldap._tcp.corp.example.com` SRV to 127.0.0.1:53: true once answered
/// with NOERROR and at least one answer (Samba's DNS is up).
fn srv_answers() -> bool {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in format!("_ldap._tcp.{DOMAIN}").split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 33, 0, 1]);
    if sock.send_to(&q, "127.0.0.1:53").is_err() {
        return false;
    }
    let mut buf = [0u8; 1500];
    match sock.recv(&mut buf) {
        Ok(n) if n >= 12 => buf[3] & 0x0f == 0 && u16::from_be_bytes([buf[6], buf[7]]) > 0,
        _ => false,
    }
}

#[test]
fn upstreams_discovered_by_dns_srv() {
    let _g = serial();
    let samba = Samba::get();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !srv_answers() {
        assert!(
            Instant::now() < deadline,
            "Samba's DNS does not answer _ldap._tcp.{DOMAIN} SRV on 127.0.0.1:53"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // No upstreams: dird asks Samba's DNS for _ldap._tcp.corp.example.com, and reaches
    // dc1.corp.example.com:389 with StartTLS (its certificate names dc1.corp.example.com).
    let s = TestServer::start_connector(
        DOMAIN,
        &format!(
            "ca_file = \"{}\"\ndns_servers = [\"127.0.0.1\"]\n[metrics]\nlisten = [\"127.0.0.1:0\"]",
            samba.ca.display()
        ),
        false,
    );
    let ldaps = s.ldaps_url();
    assert_whoami(&s, &ldaps, ADMIN_UPN, ADMIN_PW, ADMIN_DN);
    let out = s.ldapsearch(&[
        "-H",
        &ldaps,
        "-D",
        "CORP\\jdoe",
        "-w",
        JDOE_PW,
        "-b",
        BASE,
        "(sAMAccountName=jdoe)",
        "dn",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(
        common::dns(&out),
        vec![JDOE_DN.to_string()],
        "{}",
        text(&out)
    );
    let m = metrics_text(s.metrics.expect("metrics address"));
    assert!(
        m.contains("dird_upstream_up{upstream=\"ldap://dc1.corp.example.com:389\"} 1"),
        "{m}"
    );
}

#[test]
fn continuation_references_returned_or_chased() {
    let _g = serial();
    let samba = Samba::get();
    // A subtree search from the domain root, without ManageDsaIT: Samba answers the
    // application partitions below it (DomainDnsZones, ForestDnsZones) with continuation
    // references naming the domain.
    let args = |url: &str| -> Vec<String> {
        [
            "-H",
            url,
            "-D",
            ADMIN_UPN,
            "-w",
            ADMIN_PW,
            "-b",
            BASE,
            "(objectClass=dnsZone)",
            "dn",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // (ldapsearch -LLL prints a reference as `# ref<URL>`; over LDAPS Samba's URLs are ldaps.)
    let zone_ref = format!("# refldaps://{DOMAIN}/DC=DomainDnsZones,{BASE}");
    let zone_dn = format!("dn: DC={DOMAIN},CN=MicrosoftDNS,DC=DomainDnsZones,{BASE}");
    let mut d = args("ldaps://127.0.0.1");
    d.extend(["-x", "-LLL", "-o", "ldif_wrap=no"].map(String::from));
    let direct = samba.direct(
        "ldapsearch",
        &d.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    assert_eq!(rc(&direct), 0, "{}", text(&direct));
    assert!(
        common::stdout(&direct).contains(&zone_ref),
        "Samba itself: {}",
        text(&direct)
    );
    // By default dird returns the references as AD sent them.
    let s = samba.dird("[\"ldaps://127.0.0.1\"]", "");
    let ldaps = s.ldaps_url();
    let a = args(&ldaps);
    let out = s.ldapsearch(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let o = common::stdout(&out);
    assert!(o.contains(&zone_ref), "{}", text(&out));
    assert!(!o.contains(&zone_dn), "{}", text(&out));
    drop(s);
    // chase_referrals = true: dird follows them on the session's own connection (as the
    // same identity) and the zone entries come back in their place.
    let s = samba.dird("[\"ldaps://127.0.0.1\"]", "chase_referrals = true");
    let ldaps = s.ldaps_url();
    let a = args(&ldaps);
    let out = s.ldapsearch(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let o = common::stdout(&out);
    assert!(o.contains(&zone_dn), "{}", text(&out));
    assert!(!o.contains("# ref"), "{}", text(&out));
}
