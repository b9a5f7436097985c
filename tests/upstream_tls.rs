#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Connector mode refuses an upstream whose TLS certificate is expired or names another host
//! (issue 15 §4), over LDAPS and over StartTLS, and uses one whose certificate is good.
//!
//! The upstream is a real OpenLDAP `slapd` started by the test on a free loopback port, with
//! a test CA and server certificates made here with rcgen: good (SAN `localhost`), expired
//! (SAN `localhost`, valid 2020–2021) and mismatched (SAN `dc9.other.example` only). dird's
//! `ca_file` is the test CA. A bind through dird as slapd's rootdn must work with the good
//! certificate and fail with `unavailable` (52) with the other two, and dird's log must name
//! the certificate problem.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SUFFIX: &str = "dc=example,dc=com";
const ROOT_DN: &str = "cn=upstream-admin,dc=example,dc=com";
const ROOT_PW: &str = "Upstream-Root-9";

/// Which server certificate slapd presents.
#[derive(Clone, Copy, Debug)]
enum Cert {
    Good,
    Expired,
    OtherName,
}

/// A test CA (PEM) and a server certificate and key (PEM) of the given kind, signed by it.
fn make_certs(kind: Cert) -> (String, String, String) {
    use rcgen::{
        date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "dird upstream test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let name = match kind {
        Cert::Good | Cert::Expired => "localhost",
        Cert::OtherName => "dc9.other.example",
    };
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    if let Cert::Expired = kind {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// A running slapd with TLS (LDAPS on one port, plain LDAP with StartTLS on another).
struct Slapd {
    child: Child,
    ldap: SocketAddr,
    ldaps: SocketAddr,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

impl Slapd {
    /// Starts slapd in `dir` presenting `cert`/`key`.
    fn start(dir: &Path, cert: &str, key: &str) -> Slapd {
        if Command::new("slapd").arg("-VV").output().is_err()
            && !Path::new("/usr/sbin/slapd").exists()
        {
            panic!("slapd is not installed: apt-get install -y slapd");
        }
        let db = dir.join("db");
        std::fs::create_dir_all(&db).unwrap();
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        let conf = dir.join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\n\
                 pidfile {d}/slapd.pid\n\
                 modulepath /usr/lib/ldap\n\
                 moduleload back_mdb\n\
                 TLSCertificateFile {d}/cert.pem\n\
                 TLSCertificateKeyFile {d}/key.pem\n\
                 database mdb\n\
                 suffix \"{SUFFIX}\"\n\
                 rootdn \"{ROOT_DN}\"\n\
                 rootpw {ROOT_PW}\n\
                 directory {db}\n",
                d = dir.display(),
                db = db.display()
            ),
        )
        .unwrap();
        let (ldap, ldaps) = (free_port(), free_port());
        let slapd = if Path::new("/usr/sbin/slapd").exists() {
            PathBuf::from("/usr/sbin/slapd")
        } else {
            PathBuf::from("slapd")
        };
        // `-d 0`: stay in the foreground (so the test owns the process), log nothing.
        let child = Command::new(slapd)
            .arg("-f")
            .arg(&conf)
            .arg("-h")
            .arg(format!("ldap://{ldap}/ ldaps://{ldaps}/"))
            .args(["-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run slapd (apt-get install -y slapd)");
        let mut s = Slapd { child, ldap, ldaps };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(s.ldaps).is_err() || TcpStream::connect(s.ldap).is_err() {
            if let Ok(Some(status)) = s.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = s.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("slapd exited with {status}: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }
}

/// slapd with a `kind` certificate, and dird in connector mode in front of it over `scheme`
/// (`ldaps` or `ldap` = StartTLS) trusting the test CA, logging to a file.
fn setup(kind: Cert, scheme: &str) -> (Slapd, TestServer, PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (ca, cert, key) = make_certs(kind);
    let slapd = Slapd::start(&dir, &cert, &key);
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let port = match scheme {
        "ldaps" => slapd.ldaps.port(),
        _ => slapd.ldap.port(),
    };
    let mut s = TestServer::prepare_connector(
        "example.com",
        &format!(
            "upstreams = [\"{scheme}://localhost:{port}\"]\nca_file = \"{}\"\nconnect_timeout_ms = 5000",
            ca_file.display()
        ),
    );
    let log = s.path("dird.log");
    s.log_to(&log, "info");
    s.launch();
    (slapd, s, log, tmp)
}

fn bind_through(s: &TestServer) -> std::process::Output {
    s.whoami(&["-H", &s.ldap_url(), "-D", ROOT_DN, "-w", ROOT_PW])
}

fn check_refused(kind: Cert, scheme: &str, problem: &str) {
    let (_slapd, s, log, _tmp) = setup(kind, scheme);
    let out = bind_through(&s);
    assert_eq!(
        rc(&out),
        52,
        "{kind:?} certificate over {scheme}: the bind must fail with unavailable: {}",
        text(&out)
    );
    let log = std::fs::read_to_string(&log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("upstream connection failed"))
        .unwrap_or_else(|| panic!("no 'upstream connection failed' line in dird's log:\n{log}"));
    eprintln!("{kind:?} over {scheme}: {line}");
    assert!(
        line.contains(problem),
        "{kind:?} over {scheme}: the log line does not name the problem ({problem}): {line}"
    );
}

#[test]
fn good_upstream_certificate_is_used() {
    for scheme in ["ldaps", "ldap"] {
        let (_slapd, s, _log, _tmp) = setup(Cert::Good, scheme);
        let out = bind_through(&s);
        assert_eq!(
            rc(&out),
            0,
            "good certificate over {scheme}: {}",
            text(&out)
        );
        assert!(
            stdout(&out).contains(&format!("dn:{ROOT_DN}")),
            "whoami over {scheme}: {}",
            text(&out)
        );
    }
}

#[test]
fn expired_upstream_certificate_is_refused() {
    check_refused(Cert::Expired, "ldaps", "expired");
    check_refused(Cert::Expired, "ldap", "expired");
}

#[test]
fn mismatched_upstream_certificate_is_refused() {
    check_refused(Cert::OtherName, "ldaps", "not valid for name");
    check_refused(Cert::OtherName, "ldap", "not valid for name");
}
