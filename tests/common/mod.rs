//! Test harness: starts the real `dird` binary on a temporary data directory with every
//! listener on port 0, waits for its readiness line, and drives the real OpenLDAP clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod kdc_lab;
pub mod radius;
pub mod sssd;

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

/// alice (in SEED): enabled, member of devs.
pub const ALICE_DN: &str = "cn=alice,ou=People,dc=example,dc=com";
/// alice's password.
pub const ALICE_PW: &str = "alice-Passw0rd";
/// bob (in SEED): enabled, member of ops (which is in devs).
pub const BOB_DN: &str = "cn=bob,ou=People,dc=example,dc=com";
/// bob's password.
pub const BOB_PW: &str = "bob-Passw0rd";
/// carol (in SEED): disabled (userAccountControl 514).
pub const CAROL_DN: &str = "cn=carol,ou=People,dc=example,dc=com";
/// carol's password.
pub const CAROL_PW: &str = "carol-Passw0rd";
/// The seeded OU.
pub const PEOPLE: &str = "ou=People,dc=example,dc=com";

/// A running dird.
pub struct TestServer {
    child: Option<Child>,
    /// the temporary data directory (kept alive while the server runs)
    pub dir: tempfile::TempDir,
    /// plain LDAP address
    pub ldap: SocketAddr,
    /// LDAPS address
    pub ldaps: SocketAddr,
    /// KDC address (UDP and TCP), when started with `[kdc]`
    pub kdc: Option<SocketAddr>,
    /// kpasswd address (UDP and TCP), when started with `[kdc]`
    pub kpasswd: Option<SocketAddr>,
    /// metrics endpoint address (when the config has `[metrics]`)
    pub metrics: Option<SocketAddr>,
    extra: String,
    with_kdc: bool,
    stdout: Option<mpsc::Receiver<String>>,
    /// process umask for the daemon and `cli` (None: inherited)
    umask: Option<u32>,
    /// extra lines for the `[kdc]` section
    kdc_extra: String,
    /// the daemon's stderr (its log) goes to this file, appended (None: inherited) with
    /// `DIRD_LOG` set to the given filter
    stderr_log: Option<(PathBuf, String)>,
    /// connector mode (issue 12): (domain name, body of `[connector]`)
    connector: Option<(String, String)>,
}

/// Kerberos realm of the test domain.
pub const REALM: &str = "EXAMPLE.COM";

impl TestServer {
    /// A standalone server with the default test config.
    pub fn start() -> TestServer {
        TestServer::start_with("")
    }

    /// A standalone server; `extra` is appended to the `[ldap]` section (it may open further
    /// sections; `{dir}` in it stands for the temporary directory).
    pub fn start_with(extra: &str) -> TestServer {
        let mut s = TestServer::configured(extra);
        s.spawn();
        s
    }

    /// Writes the config but does not start the daemon yet (so that `cli(["import", …])`
    /// can load data first); start it with `launch`.
    pub fn prepare(extra: &str) -> TestServer {
        TestServer::configured(extra)
    }

    /// A started server holding `common::SEED`.
    pub fn start_seeded() -> TestServer {
        let s = TestServer::start();
        s.seed(SEED);
        s
    }

    /// A standalone server that also runs the KDC (`[kdc]` on port 0); `krb5.conf` and
    /// `krb5-tcp.conf` (TCP only) pointing at it are written into the temp directory and
    /// rewritten on every (re)start.
    pub fn start_kdc() -> TestServer {
        TestServer::start_kdc_with("")
    }

    /// `start_kdc` with `extra` appended to the config (as in `start_with`).
    pub fn start_kdc_with(extra: &str) -> TestServer {
        let mut s = TestServer::configured_inner(extra, true);
        s.spawn();
        s
    }

    /// `prepare` with `[kdc]` (as `start_kdc`): the config is written, the daemon is not
    /// started (so that `cli(["keytab", …])` can run first); start it with `launch`.
    pub fn prepare_kdc(extra: &str) -> TestServer {
        TestServer::configured_inner(extra, true)
    }

    /// A config file and an empty data directory, with no daemon running (for CLI tests);
    /// `extra` is appended to the `[ldap]` section (it may open further sections; `{dir}` in
    /// it stands for the temporary directory). Call `launch` to start the daemon.
    pub fn configured(extra: &str) -> TestServer {
        TestServer::configured_inner(extra, false)
    }

    /// `configured` with the KDC on (`start_kdc` without starting).
    pub fn configured_kdc(extra: &str) -> TestServer {
        TestServer::configured_inner(extra, true)
    }

    fn configured_inner(extra: &str, with_kdc: bool) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = TestServer {
            child: None,
            extra: extra.replace("{dir}", &dir.path().display().to_string()),
            dir,
            ldap: "127.0.0.1:0".parse().expect("addr"),
            ldaps: "127.0.0.1:0".parse().expect("addr"),
            kdc: None,
            kpasswd: None,
            with_kdc,
            metrics: None,
            stdout: None,
            umask: None,
            kdc_extra: String::new(),
            stderr_log: None,
            connector: None,
        };
        s.write_config();
        s
    }

    /// A started connector-mode server (issue 12) fronting the AD domain `domain`;
    /// `connector` is the body of its `[connector]` section.
    /// With `with_kdc`, `[kdc]` listens on port 0 (forwarding to the upstream KDCs).
    pub fn start_connector(domain: &str, connector: &str, with_kdc: bool) -> TestServer {
        TestServer::start_connector_with(domain, connector, "", with_kdc)
    }

    /// `start_connector` with `ldap_extra` appended to the `[ldap]` section.
    pub fn start_connector_with(
        domain: &str,
        connector: &str,
        ldap_extra: &str,
        with_kdc: bool,
    ) -> TestServer {
        let mut s = TestServer::configured_inner(ldap_extra, with_kdc);
        s.connector = Some((domain.to_string(), connector.to_string()));
        s.write_config();
        s.spawn();
        s
    }

    /// `start_connector` without starting the daemon (so that `log_to` can be set first);
    /// start it with `launch`.
    pub fn prepare_connector(domain: &str, connector: &str) -> TestServer {
        let mut s = TestServer::configured_inner("", false);
        s.connector = Some((domain.to_string(), connector.to_string()));
        s.write_config();
        s
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Waits for a line on the daemon's stdout starting with `prefix` (after the ready line).
    pub fn wait_stdout(&self, prefix: &str, within: Duration) -> String {
        let rx = self.stdout.as_ref().expect("running");
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => continue,
                Err(_) => panic!("dird printed no line starting with {prefix:?} within {within:?}"),
            }
        }
    }

    /// Starts the daemon (after `configured`, `stop` or `kill`) and waits for readiness.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "dird is already running");
        self.spawn();
    }

    /// Kills the daemon with SIGKILL (no chance to flush anything) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let st = Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .expect("run kill");
            assert!(st.success(), "kill -9 {pid} failed");
            let status = child.wait().expect("wait dird");
            assert!(!status.success(), "dird survived SIGKILL: {status}");
        }
    }

    /// Rewrites the `tier = ...` line of this server's config (takes effect at the next start).
    pub fn set_tier(&self, tier: &str) {
        let path = self.config_path();
        let cfg = std::fs::read_to_string(&path).unwrap();
        assert!(cfg.contains("\ntier = "), "no tier line in {cfg}");
        let cfg: String = cfg
            .lines()
            .map(|l| {
                if l.starts_with("tier = ") {
                    format!("tier = \"{tier}\"")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&path, cfg + "\n").unwrap();
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

    /// Adds `lines` to the `[kdc]` section (before `launch`), e.g. `replay_cache_size = 2`.
    pub fn set_kdc_extra(&mut self, lines: &str) {
        self.kdc_extra = lines.to_string();
        self.write_config();
    }

    fn write_config(&self) {
        let (mode, domain, connector) = match &self.connector {
            None => ("standalone", "example.com", String::new()),
            Some((d, c)) => ("connector", d.as_str(), format!("[connector]\n{c}\n")),
        };
        let cfg = format!(
            r#"mode = "{mode}"
tier = "enterprise"
data_dir = "{data}"
[domain]
name = "{domain}"
dc_hostname = "dc1.{domain}"
{connector}[ldap]
listen = ["127.0.0.1:0"]
ldaps_listen = ["127.0.0.1:0"]
{extra}
{kdc}"#,
            data = self.dir.path().join("data").display(),
            extra = self.extra,
            kdc = if self.with_kdc {
                format!(
                    "[kdc]\nlisten = [\"127.0.0.1:0\"]\nkpasswd_listen = [\"127.0.0.1:0\"]\n{}\n",
                    self.kdc_extra
                )
            } else {
                String::new()
            }
        );
        std::fs::write(self.config_path(), cfg).expect("write config");
    }

    /// From the next start, the daemon logs with `DIRD_LOG=filter` into `path` (appended).
    pub fn log_to(&mut self, path: &Path, filter: &str) {
        self.stderr_log = Some((path.to_path_buf(), filter.to_string()));
    }

    /// Runs the daemon (from the next start) and `cli` under this umask, e.g. 0o000.
    pub fn set_umask(&mut self, umask: u32) {
        self.umask = Some(umask);
    }

    /// `dird` (or `sh -c 'umask …; exec dird'` when `set_umask` was called).
    fn dird_command(&self) -> Command {
        match self.umask {
            None => Command::new(env!("CARGO_BIN_EXE_dird")),
            Some(mask) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("umask {mask:03o}; exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_dird"));
                c
            }
        }
    }

    fn spawn(&mut self) {
        let (stderr, filter) = match &self.stderr_log {
            Some((path, filter)) => (
                Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .expect("open the daemon's log file"),
                ),
                filter.as_str(),
            ),
            None => (Stdio::inherit(), "warn"),
        };
        let mut child = self
            .dird_command()
            .arg("--config")
            .arg(self.config_path())
            .arg("serve")
            .env("DIRD_ADMIN_PASSWORD", ADMIN_PW)
            .env("DIRD_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn dird");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let line = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.starts_with("dird ready") => break Ok(l),
                Ok(_) => continue,
                Err(e) => break Err(e),
            }
        };
        let line = match line {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("dird did not report ready within 60 s");
            }
        };
        for part in line.split_whitespace() {
            if let Some(v) = part.strip_prefix("ldap=") {
                self.ldap = v
                    .split(',')
                    .next()
                    .expect("ldap addr")
                    .parse()
                    .expect("ldap addr");
            }
            if let Some(v) = part.strip_prefix("ldaps=") {
                self.ldaps = v
                    .split(',')
                    .next()
                    .expect("ldaps addr")
                    .parse()
                    .expect("ldaps addr");
            }
            if let Some(v) = part.strip_prefix("kdc=") {
                self.kdc = Some(
                    v.split(',')
                        .next()
                        .expect("kdc addr")
                        .parse()
                        .expect("kdc addr"),
                );
            }
            if let Some(v) = part.strip_prefix("kpasswd=") {
                self.kpasswd = Some(
                    v.split(',')
                        .next()
                        .expect("kpasswd addr")
                        .parse()
                        .expect("kpasswd addr"),
                );
            }
            if let Some(v) = part.strip_prefix("metrics=") {
                self.metrics = v.split(',').next().and_then(|a| a.parse().ok());
            }
        }
        self.child = Some(child);
        self.stdout = Some(rx);
        if self.with_kdc {
            assert!(
                self.kdc.is_some() && self.kpasswd.is_some(),
                "no kdc=/kpasswd= in: {line}"
            );
            self.write_krb5_conf("krb5.conf", "");
            self.write_krb5_conf("krb5-tcp.conf", "udp_preference_limit = 1");
        }
    }

    /// Writes an MIT krb5.conf for this server's KDC into the temp directory.
    fn write_krb5_conf(&self, name: &str, extra: &str) {
        let (kdc, kpasswd) = (self.kdc.expect("kdc"), self.kpasswd.expect("kpasswd"));
        let conf = format!(
            "[libdefaults]\n  default_realm = {REALM}\n  dns_lookup_kdc = false\n  dns_lookup_realm = false\n  \
             dns_canonicalize_hostname = false\n  rdns = false\n  {extra}\n[realms]\n  {REALM} = {{\n    \
             kdc = {kdc}\n    kpasswd_server = {kpasswd}\n  }}\n[domain_realm]\n  .example.com = {REALM}\n"
        );
        std::fs::write(self.dir.path().join(name), conf).expect("write krb5.conf");
    }

    /// A path inside the temp directory (ccaches, keytabs).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs an MIT Kerberos tool (`args[0]`) with `KRB5_CONFIG` = `conf` (`krb5.conf` or
    /// `krb5-tcp.conf` in the temp dir), the file ccache `cc`, a trace on stderr, and `stdin`.
    pub fn krb(&self, conf: &str, cc: &str, args: &[&str], stdin: &str) -> Output {
        let tool = args[0];
        let mut child = Command::new(tool)
            .args(&args[1..])
            .env("KRB5_CONFIG", self.path(conf))
            .env("KRB5CCNAME", format!("FILE:{}", self.path(cc).display()))
            .env("KRB5_TRACE", "/dev/stderr")
            .env_remove("KRB5_KTNAME")
            .env_remove("KRB5_CLIENT_KTNAME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run MIT `{tool}` ({e}): install krb5-user (apt-get install -y krb5-user)")
            });
        feed_stdin(&mut child, stdin.as_bytes());
        child.wait_with_output().expect("wait tool")
    }

    /// Like `krb`, asserting success; returns stdout.
    pub fn krb_ok(&self, conf: &str, cc: &str, args: &[&str], stdin: &str) -> String {
        let out = self.krb(conf, cc, args, stdin);
        assert_ran_ok(&out, args, &text(&out))
    }

    /// Like `krb`, asserting failure with `expect` somewhere in the output.
    pub fn krb_fails(&self, conf: &str, cc: &str, args: &[&str], stdin: &str, expect: &str) {
        let out = self.krb(conf, cc, args, stdin);
        assert_ran_fails(&out, args, &text(&out), expect)
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
        self.dird_command()
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
            // Ignore /etc/ldap/ldap.conf and ~/.ldaprc (LDAPNOINIT would also ignore the
            // LDAPTLS_* variables above).
            .env("LDAPCONF", "/dev/null")
            .env("LDAPRC", "/nonexistent-dird-test-ldaprc")
            .env_remove("LDAPNOINIT")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!(
                "{tool} could not be run ({e}): install ldap-utils (the README test command does)"
            ),
        };
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("wait tool")
    }

    /// `ldapadd`/`ldapmodify` as Administrator over the given URL; returns the output.
    pub fn modify_as_admin(&self, url: &str, ldif: &str) -> Output {
        self.tool_stdin(
            "ldapmodify",
            &[
                "-x",
                "-H",
                url,
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PW,
                "-o",
                "nettimeout=10",
            ],
            Some(ldif),
        )
    }

    /// Adds LDIF as Administrator over ldap:// and asserts success.
    pub fn seed(&self, ldif: &str) {
        let out = self.tool_stdin(
            "ldapadd",
            &[
                "-x",
                "-H",
                &self.ldap_url(),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PW,
                "-o",
                "nettimeout=10",
            ],
            Some(ldif),
        );
        assert!(out.status.success(), "seed failed: {}", text(&out));
    }

    /// `ldapsearch -LLL` as Administrator; returns stdout, asserting success.
    pub fn search_admin(&self, base: &str, filter: &str, attrs: &[&str]) -> String {
        let url = self.ldap_url();
        let mut args = vec![
            "-x",
            "-LLL",
            "-o",
            "ldif_wrap=no",
            "-o",
            "nettimeout=10",
            "-H",
            &url,
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            "-b",
            base,
            filter,
        ];
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

impl TestServer {
    /// `ldapsearch -x -LLL` (no wrapping) with the given arguments; returns the raw output.
    pub fn ldapsearch(&self, args: &[&str]) -> Output {
        let mut all = vec!["-x", "-LLL", "-o", "ldif_wrap=no", "-o", "nettimeout=10"];
        all.extend_from_slice(args);
        self.tool("ldapsearch", &all)
    }

    /// `ldapsearch` as Administrator over ldap:// with `args` after the bind options.
    pub fn search_as_admin(&self, args: &[&str]) -> Output {
        let url = self.ldap_url();
        let mut all = vec!["-H", url.as_str(), "-D", ADMIN_DN, "-w", ADMIN_PW];
        all.extend_from_slice(args);
        self.ldapsearch(&all)
    }

    /// `ldapwhoami -x` with the given arguments.
    pub fn whoami(&self, args: &[&str]) -> Output {
        let mut all = vec!["-x", "-o", "nettimeout=10"];
        all.extend_from_slice(args);
        self.tool("ldapwhoami", &all)
    }

    /// Runs an inline Python script with the system interpreter (which has python3-ldap3);
    /// `argv` follows the script. Returns the output.
    pub fn python(&self, script: &str, argv: &[&str]) -> Output {
        let py = python3();
        let mut child = match Command::new(&py)
            .arg("-")
            .args(argv)
            .env("LDAPTLS_CACERT", self.ca())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!("{py} could not be run ({e}): install python3 and python3-ldap3"),
        };
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write script");
        child.wait_with_output().expect("wait python")
    }
}

/// The Python interpreter that sees Debian's python3-ldap3 (`/usr/bin/python3`, not a pyenv
/// shim that may come first on PATH); `DIRD_TEST_PYTHON` overrides it.
pub fn python3() -> String {
    if let Ok(p) = std::env::var("DIRD_TEST_PYTHON") {
        return p;
    }
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3".into()
    } else {
        "python3".into()
    }
}

/// The DNs in `ldapsearch -LLL` output, in order.
pub fn dns(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("dn: "))
        .map(str::to_string)
        .collect()
}

/// The values of `attr` (case-insensitive name, plain `attr: value` lines) in LDIF output.
pub fn values(out: &Output, attr: &str) -> Vec<String> {
    let prefix = format!("{}:", attr.to_ascii_lowercase());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim_start_matches(':').trim().to_string())
        .collect()
}

/// stdout of a tool as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Resident memory of a process in KiB (`VmRSS` of /proc/PID/status).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read /proc/PID/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Asserts that the tool run as `args` succeeded (`shown` renders its output for the
/// message); returns its stdout.
pub fn assert_ran_ok(out: &Output, args: &[&str], shown: &str) -> String {
    assert!(
        out.status.success(),
        "`{}` failed:\n{shown}",
        args.join(" ")
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that the tool run as `args` failed with `expect` somewhere in `shown` (its
/// rendered output).
pub fn assert_ran_fails(out: &Output, args: &[&str], shown: &str, expect: &str) {
    assert!(
        !out.status.success(),
        "`{}` unexpectedly succeeded:\n{shown}",
        args.join(" ")
    );
    assert!(
        shown.contains(expect),
        "`{}`: expected {expect:?} in:\n{shown}",
        args.join(" ")
    );
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
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Writes `input` to a spawned client's stdin and closes it. A client that
/// fails before it reads (kinit for an unknown principal, a pamtester whose
/// account is refused) closes the pipe first; that broken pipe is the client's
/// answer, which its exit status then reports, not a test failure.
pub fn feed_stdin(child: &mut std::process::Child, input: &[u8]) {
    use std::io::Write;
    if let Some(mut pipe) = child.stdin.take() {
        match pipe.write_all(input) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => panic!("cannot write a client's stdin: {e}"),
        }
    }
}
