//! Test harness: starts the real `dird` binary on a temporary data directory with every
//! listener on port 0, waits for its readiness line, and drives the real OpenLDAP clients.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Administrator password every test server is provisioned with.
pub const ADMIN_PW: &str = "Admin-Passw0rd!";
/// Base DN of the test domain.
pub const BASE: &str = "dc=example,dc=com";
/// Administrator DN.
pub const ADMIN_DN: &str = "cn=Administrator,cn=Users,dc=example,dc=com";

/// A running dird.
pub struct TestServer {
    child: Option<Child>,
    /// the temporary data directory (kept alive while the server runs)
    pub dir: tempfile::TempDir,
    /// plain LDAP address
    pub ldap: SocketAddr,
    /// LDAPS address
    pub ldaps: SocketAddr,
    extra: String,
}

impl TestServer {
    /// A standalone server with the default test config.
    pub fn start() -> TestServer {
        TestServer::start_with("")
    }

    /// A standalone server; `extra` is appended to the `[ldap]` section.
    pub fn start_with(extra: &str) -> TestServer {
        let mut s = TestServer::prepare(extra);
        s.spawn();
        s
    }

    /// Writes the config but does not start the daemon yet (so that `cli(["import", …])`
    /// can load data first); start it with `launch`.
    pub fn prepare(extra: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = TestServer {
            child: None,
            dir,
            ldap: "127.0.0.1:0".parse().expect("addr"),
            ldaps: "127.0.0.1:0".parse().expect("addr"),
            extra: extra.to_string(),
        };
        s.write_config();
        s
    }

    /// Starts a server made with `prepare`.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.spawn();
    }

    /// Path of the config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("dird.toml")
    }

    /// Path of the generated CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("data/tls/ca.pem")
    }

    /// `ldap://127.0.0.1:PORT`
    pub fn ldap_url(&self) -> String {
        format!("ldap://{}", self.ldap)
    }

    /// `ldaps://127.0.0.1:PORT`
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}", self.ldaps)
    }

    fn write_config(&self) {
        let cfg = format!(
            r#"mode = "standalone"
tier = "enterprise"
data_dir = "{data}"
[domain]
name = "example.com"
[ldap]
listen = ["127.0.0.1:0"]
ldaps_listen = ["127.0.0.1:0"]
{extra}
"#,
            data = self.dir.path().join("data").display(),
            extra = self.extra
        );
        std::fs::write(self.config_path(), cfg).expect("write config");
    }

    fn spawn(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dird"))
            .arg("--config")
            .arg(self.config_path())
            .arg("serve")
            .env("DIRD_ADMIN_PASSWORD", ADMIN_PW)
            .env("DIRD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn dird");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("dird ready") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("dird did not report ready within 60 s");
            }
        };
        for part in line.split_whitespace() {
            if let Some(v) = part.strip_prefix("ldap=") {
                self.ldap = v.split(',').next().expect("ldap addr").parse().expect("ldap addr");
            }
            if let Some(v) = part.strip_prefix("ldaps=") {
                self.ldaps = v.split(',').next().expect("ldaps addr").parse().expect("ldaps addr");
            }
        }
        self.child = Some(child);
    }

    /// Stops with SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            for _ in 0..200 {
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(status.success(), "dird exited with {status}");
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("dird did not stop within 10 s of SIGTERM");
        }
    }

    /// Stops and starts again on the same data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// PID of the running daemon.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Runs `dird` CLI against this server's config (the server must be stopped for writes).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dird"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env("DIRD_ADMIN_PASSWORD", ADMIN_PW)
            .output()
            .expect("run dird cli")
    }

    /// Runs an OpenLDAP client tool with this server's CA trusted.
    pub fn tool(&self, tool: &str, args: &[&str]) -> Output {
        self.tool_stdin(tool, args, None)
    }

    /// Same, feeding `stdin`.
    pub fn tool_stdin(&self, tool: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(tool);
        cmd.args(args)
            .env("LDAPTLS_CACERT", self.ca())
            .env("LDAPTLS_REQCERT", "demand")
            // Not LDAPNOINIT: it also turns off the LDAPTLS_* variables (ldap.conf(5)).
            .env("LDAPCONF", "/dev/null")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("{tool} could not be run ({e}): install ldap-utils (the README test command does)"),
        };
        if let Some(input) = stdin {
            child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("wait tool")
    }

    /// `ldapadd`/`ldapmodify` as Administrator over the given URL; returns the output.
    pub fn modify_as_admin(&self, url: &str, ldif: &str) -> Output {
        self.tool_stdin("ldapmodify", &["-x", "-H", url, "-D", ADMIN_DN, "-w", ADMIN_PW, "-o", "nettimeout=10"], Some(ldif))
    }

    /// Adds LDIF as Administrator over ldap:// and asserts success.
    pub fn seed(&self, ldif: &str) {
        let out = self.tool_stdin(
            "ldapadd",
            &["-x", "-H", &self.ldap_url(), "-D", ADMIN_DN, "-w", ADMIN_PW, "-o", "nettimeout=10"],
            Some(ldif),
        );
        assert!(out.status.success(), "seed failed: {}", text(&out));
    }

    /// `ldapsearch -LLL` as Administrator; returns stdout, asserting success.
    pub fn search_admin(&self, base: &str, filter: &str, attrs: &[&str]) -> String {
        let url = self.ldap_url();
        let mut args = vec!["-x", "-LLL", "-o", "ldif_wrap=no", "-o", "nettimeout=10", "-H", &url, "-D", ADMIN_DN, "-w", ADMIN_PW, "-b", base, filter];
        args.extend_from_slice(attrs);
        let out = self.tool("ldapsearch", &args);
        assert!(out.status.success(), "ldapsearch failed: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// stdout + stderr of a tool, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status={:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The LDAP result code a tool exited with.
pub fn rc(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// The seed used by most tests: an OU, three users with passwords, and two groups.
pub const SEED: &str = r#"dn: ou=People,dc=example,dc=com
objectClass: top
objectClass: organizationalUnit
ou: People

dn: cn=alice,ou=People,dc=example,dc=com
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: user
objectClass: inetOrgPerson
objectClass: posixAccount
cn: alice
sn: Liddell
givenName: Alice
uid: alice
sAMAccountName: alice
userPrincipalName: alice@example.com
mail: alice@example.com
uidNumber: 10001
gidNumber: 20001
homeDirectory: /home/alice
loginShell: /bin/bash
userAccountControl: 512
userPassword: alice-Passw0rd

dn: cn=bob,ou=People,dc=example,dc=com
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: user
objectClass: inetOrgPerson
objectClass: posixAccount
cn: bob
sn: Builder
uid: bob
sAMAccountName: bob
userPrincipalName: bob@example.com
mail: bob@example.com
uidNumber: 10002
gidNumber: 20001
homeDirectory: /home/bob
userAccountControl: 512
userPassword: bob-Passw0rd

dn: cn=carol,ou=People,dc=example,dc=com
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: user
objectClass: inetOrgPerson
cn: carol
sn: Singer
uid: carol
sAMAccountName: carol
userAccountControl: 514
userPassword: carol-Passw0rd

dn: cn=devs,ou=People,dc=example,dc=com
objectClass: top
objectClass: group
cn: devs
sAMAccountName: devs
member: cn=alice,ou=People,dc=example,dc=com
member: cn=ops,ou=People,dc=example,dc=com

dn: cn=ops,ou=People,dc=example,dc=com
objectClass: top
objectClass: group
cn: ops
sAMAccountName: ops
member: cn=bob,ou=People,dc=example,dc=com
"#;

/// Path of a fixture file.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}
