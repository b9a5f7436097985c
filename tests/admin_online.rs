#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 16: every `dird` subcommand works while the daemon serves, over its admin socket,
//! with LDAP clients searching all along; the effect of each is visible over LDAP at once
//! (and `kinit -k` works at once with the keytabs of `keytab` and `computer add`); a large
//! import keeps ldapsearch latency bounded; an export taken during writes re-imports
//! cleanly; a non-root user is refused; the audit names the operator's uid; without the
//! daemon the same commands run offline.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

const UDP: &str = "krb5.conf";

/// Runs a CLI command, asserting success; returns stdout.
fn ok(s: &TestServer, args: &[&str]) -> String {
    let out = s.cli(args);
    assert!(out.status.success(), "dird {args:?}: {}", text(&out));
    stdout(&out)
}

/// Runs the CLI with `stdin`.
fn cli_stdin(s: &TestServer, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dird"))
        .arg("--config")
        .arg(s.config_path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::feed_stdin(&mut child, stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn bind(s: &TestServer, name: &str, pw: &str) -> Output {
    s.whoami(&["-H", &s.ldap_url(), "-D", name, "-w", pw])
}

fn exists(s: &TestServer, dn: &str) -> bool {
    let out = s.search_as_admin(&["-b", dn, "-s", "base", "(objectClass=*)", "1.1"]);
    match rc(&out) {
        0 => true,
        32 => false,
        _ => panic!("{}", text(&out)),
    }
}

/// ldapsearch clients running in a loop until stopped; each records its latencies.
struct SearchLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<(Duration, bool, String)>>>,
}

impl SearchLoad {
    fn start(s: &TestServer, clients: usize) -> SearchLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|_| {
                let (url, ca, stop) = (s.ldap_url(), s.ca(), stop.clone());
                std::thread::spawn(move || {
                    let mut samples = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let out = search_once(&url, &ca);
                        samples.push((t.elapsed(), out.status.success(), text(&out)));
                    }
                    samples
                })
            })
            .collect();
        SearchLoad { stop, threads }
    }

    /// Stops the clients; asserts every search succeeded; returns the latencies, sorted.
    fn finish(self) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.threads {
            for (d, ok, out) in t.join().unwrap() {
                assert!(ok, "an ldapsearch failed during the admin commands: {out}");
                all.push(d);
            }
        }
        assert!(!all.is_empty(), "the search clients ran no search");
        all.sort();
        all
    }
}

/// One ldapsearch as Administrator: an indexed lookup of the Administrator account.
fn search_once(url: &str, ca: &Path) -> Output {
    Command::new("ldapsearch")
        .args([
            "-x",
            "-LLL",
            "-o",
            "nettimeout=10",
            "-H",
            url,
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            "-b",
            BASE,
            "(sAMAccountName=Administrator)",
            "1.1",
        ])
        .env("LDAPTLS_CACERT", ca)
        .env("LDAPCONF", "/dev/null")
        .env("LDAPRC", "/nonexistent-dird-test-ldaprc")
        .output()
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[test]
fn every_subcommand_works_online_while_ldap_clients_search() {
    let s = TestServer::start_kdc();
    let load = SearchLoad::start(&s, 2);

    // status: the daemon answers, with its listeners and usage.
    let st = ok(&s, &["--json", "status"]);
    let v: serde_json::Value = serde_json::from_str(st.trim()).unwrap();
    assert_eq!(v["daemon"], "running", "{st}");
    assert_eq!(v["tier"], "enterprise", "{st}");
    assert_eq!(v["listeners"]["ldap"][0], s.ldap.to_string(), "{st}");
    assert!(v["uptime_secs"].as_u64().is_some(), "{st}");
    assert!(v["objects"].as_u64().unwrap() > 5, "{st}");
    assert!(v["connections"].as_i64().is_some(), "{st}");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"), "{st}");
    let human = ok(&s, &["status"]);
    assert!(human.contains("daemon running"), "{human}");
    assert!(human.contains(&s.ldap.to_string()), "{human}");

    // ou add
    let o = ok(&s, &["ou", "add", "Staff"]);
    assert!(o.contains("added ou=Staff,dc=example,dc=com"), "{o}");
    assert!(exists(&s, "ou=Staff,dc=example,dc=com"));

    // user add, the password read from standard input
    let erin = "cn=erin,ou=Staff,dc=example,dc=com";
    let out = cli_stdin(
        &s,
        &[
            "user",
            "add",
            "erin",
            "--parent",
            "ou=Staff,dc=example,dc=com",
            "--password-file",
            "-",
        ],
        "erin-Online-Passw0rd\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("added {erin}")),
        "{}",
        text(&out)
    );
    assert_eq!(rc(&bind(&s, "erin@example.com", "erin-Online-Passw0rd")), 0);
    // the policy runs as for LDAP: too short a password is refused, naming the rule
    let out = s.cli(&["user", "add", "short", "--password", "x"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).to_lowercase().contains("password"),
        "{}",
        text(&out)
    );
    // uniqueness too: the same name again
    let out = s.cli(&[
        "user",
        "add",
        "erin",
        "--parent",
        "ou=Staff,dc=example,dc=com",
        "--password",
        "erin-Online-Passw0rd",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("already exists"), "{}", text(&out));

    // user show / list
    let o = ok(&s, &["user", "show", "erin"]);
    assert!(o.starts_with(&format!("dn: {erin}")), "{o}");
    assert!(!o.to_lowercase().contains("userpassword"), "{o}");
    let o = ok(&s, &["--json", "user", "list"]);
    let v: serde_json::Value = serde_json::from_str(o.trim()).unwrap();
    let names: Vec<&str> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"erin") && names.contains(&"Administrator"),
        "{o}"
    );
    let o = ok(&s, &["user", "list"]);
    assert!(
        o.lines().any(|l| l.starts_with("erin") && l.contains(erin)),
        "{o}"
    );

    // user passwd (from a file)
    let pwfile = s.path("pw.txt");
    std::fs::write(&pwfile, "erin-Online-Passw0rd-2\n").unwrap();
    ok(
        &s,
        &[
            "user",
            "passwd",
            "erin",
            "--password-file",
            pwfile.to_str().unwrap(),
        ],
    );
    assert_eq!(rc(&bind(&s, erin, "erin-Online-Passw0rd-2")), 0);
    assert_eq!(rc(&bind(&s, erin, "erin-Online-Passw0rd")), 49);

    // disable / enable / unlock
    let o = ok(&s, &["user", "disable", "erin"]);
    assert!(o.contains("disabled"), "{o}");
    let out = bind(&s, erin, "erin-Online-Passw0rd-2");
    assert_eq!(rc(&out), 49);
    assert!(text(&out).contains("data 533"), "{}", text(&out));
    ok(&s, &["user", "enable", "erin"]);
    assert_eq!(rc(&bind(&s, erin, "erin-Online-Passw0rd-2")), 0);
    let o = ok(&s, &["user", "unlock", "erin"]);
    assert!(o.contains("unlocked"), "{o}");
    let out = s.search_as_admin(&["-b", erin, "-s", "base", "(objectClass=*)", "lockoutTime"]);
    assert_eq!(values(&out, "lockoutTime"), vec!["0"], "{}", text(&out));

    // groups
    let devs = "cn=ops2,ou=Staff,dc=example,dc=com";
    ok(
        &s,
        &[
            "group",
            "add",
            "ops2",
            "--parent",
            "ou=Staff,dc=example,dc=com",
        ],
    );
    ok(&s, &["group", "member", "add", "ops2", "erin"]);
    let out = s.search_as_admin(&["-b", devs, "-s", "base", "(objectClass=*)", "member"]);
    assert_eq!(values(&out, "member"), vec![erin], "{}", text(&out));
    let out = s.search_as_admin(&["-b", erin, "-s", "base", "(objectClass=*)", "memberOf"]);
    assert_eq!(values(&out, "memberOf"), vec![devs], "{}", text(&out));
    let o = ok(&s, &["group", "show", "ops2"]);
    assert!(
        o.starts_with(&format!("dn: {devs}")) && o.contains(erin),
        "{o}"
    );
    let o = ok(&s, &["group", "list"]);
    assert!(o.lines().any(|l| l.starts_with("ops2")), "{o}");
    assert!(o.lines().any(|l| l.starts_with("Domain Admins")), "{o}");
    ok(&s, &["group", "member", "remove", "ops2", "erin"]);
    let out = s.search_as_admin(&["-b", devs, "-s", "base", "(objectClass=*)", "member"]);
    assert!(values(&out, "member").is_empty(), "{}", text(&out));
    ok(&s, &["group", "delete", "ops2"]);
    assert!(!exists(&s, devs));

    // computer add: the account and a keytab that kinit -k takes at once
    let kt = s.path("client.keytab");
    let o = ok(
        &s,
        &["computer", "add", "client", "--out", kt.to_str().unwrap()],
    );
    assert!(o.contains("host/client.example.com@EXAMPLE.COM"), "{o}");
    assert!(exists(&s, "cn=CLIENT,cn=Computers,dc=example,dc=com"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kt).unwrap().permissions().mode() & 0o777,
        0o600
    );
    s.krb_ok(
        UDP,
        "cc.client",
        &[
            "kinit",
            "-k",
            "-t",
            kt.to_str().unwrap(),
            "host/client.example.com",
        ],
        "",
    );
    // keytab for another service principal
    let kt2 = s.path("web.keytab");
    let o = ok(
        &s,
        &[
            "keytab",
            "--principal",
            "HTTP/web.example.com",
            "--out",
            kt2.to_str().unwrap(),
        ],
    );
    assert!(o.contains("kvno 1"), "{o}");
    s.krb_ok(
        UDP,
        "cc.web",
        &[
            "kinit",
            "-k",
            "-t",
            kt2.to_str().unwrap(),
            "HTTP/web.example.com",
        ],
        "",
    );
    // a second keytab for the same principal: new keys (kvno 2), the first keytab is stale
    let kt3 = s.path("web2.keytab");
    let o = ok(
        &s,
        &[
            "keytab",
            "--principal",
            "HTTP/web.example.com",
            "--out",
            kt3.to_str().unwrap(),
        ],
    );
    assert!(o.contains("kvno 2"), "{o}");
    s.krb_ok(
        UDP,
        "cc.web2",
        &[
            "kinit",
            "-k",
            "-t",
            kt3.to_str().unwrap(),
            "HTTP/web.example.com",
        ],
        "",
    );

    // krbtgt rotate: a TGT from before still gets service tickets
    s.krb_ok(
        UDP,
        "cc.alice",
        &["kinit", "erin@EXAMPLE.COM"],
        "erin-Online-Passw0rd-2\n",
    );
    let o = ok(&s, &["krbtgt", "rotate"]);
    assert!(o.contains("new kvno 2"), "{o}");
    s.krb_ok(UDP, "cc.alice", &["kvno", "host/client.example.com"], "");

    // deletes
    ok(&s, &["user", "delete", "erin"]);
    assert!(!exists(&s, erin));
    assert_eq!(rc(&bind(&s, erin, "erin-Online-Passw0rd-2")), 49);
    ok(&s, &["ou", "delete", "Staff"]);
    assert!(!exists(&s, "ou=Staff,dc=example,dc=com"));

    // errors name what to fix
    let out = s.cli(&["user", "show", "nobody-here"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no entry named nobody-here"),
        "{}",
        text(&out)
    );

    let out = s.cli(&["--json", "user", "show", "nobody-here"]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    assert!(v["error"].as_str().unwrap().contains("nobody-here"), "{v}");

    let latencies = load.finish();
    eprintln!(
        "{} searches during the admin commands; p99 {:?}",
        latencies.len(),
        percentile(&latencies, 0.99)
    );
}

/// A 20,000-entry LDIF: one OU, then users without passwords (an import of hashed
/// passwords costs argon2 per entry whatever the transport).
fn big_ldif(path: &Path, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "version: 1\n").unwrap();
    writeln!(
        f,
        "dn: ou=Bulk,dc=example,dc=com\nobjectClass: top\nobjectClass: organizationalUnit\nou: Bulk\n"
    )
    .unwrap();
    for i in 0..n {
        writeln!(
            f,
            "dn: cn=bulk{i},ou=Bulk,dc=example,dc=com\nobjectClass: top\nobjectClass: person\n\
             objectClass: organizationalPerson\nobjectClass: user\nobjectClass: inetOrgPerson\n\
             cn: bulk{i}\nsn: User {i}\nsAMAccountName: bulk{i}\nuid: bulk{i}\n\
             mail: bulk{i}@example.com\nuserAccountControl: 512\n"
        )
        .unwrap();
    }
    f.flush().unwrap();
}

/// p99 of ldapsearch (one process per search, as an operator's scripts run it) while an
/// import of 20,000 entries goes through the daemon. The bound is documented in README.md.
const IMPORT_P99_BOUND: Duration = Duration::from_millis(1500);

#[test]
fn online_import_of_20000_entries_keeps_ldapsearch_p99_bounded() {
    let s = TestServer::start();
    let file = s.path("bulk.ldif");
    big_ldif(&file, 20_000);
    // baseline without the import
    let base = SearchLoad::start(&s, 2);
    std::thread::sleep(Duration::from_secs(2));
    let baseline = base.finish();
    let load = SearchLoad::start(&s, 2);
    let started = Instant::now();
    let o = ok(&s, &["import", file.to_str().unwrap()]);
    let took = started.elapsed();
    let during = load.finish();
    assert!(o.contains("imported 20001 entries"), "{o}");
    let (p50, p99) = (percentile(&during, 0.5), percentile(&during, 0.99));
    eprintln!(
        "import of 20,001 entries took {took:?}; ldapsearch during it: {} searches, p50 {p50:?}, \
         p99 {p99:?}, max {:?}; baseline p50 {:?} p99 {:?}",
        during.len(),
        during.last().unwrap(),
        percentile(&baseline, 0.5),
        percentile(&baseline, 0.99),
    );
    assert!(
        p99 < IMPORT_P99_BOUND,
        "ldapsearch p99 {p99:?} during the import is over {IMPORT_P99_BOUND:?}"
    );
    // visible over LDAP at once, all of it
    let out = s.search_as_admin(&[
        "-b",
        "ou=Bulk,dc=example,dc=com",
        "-E",
        "pr=1000/noprompt",
        "(objectClass=user)",
        "1.1",
    ]);
    assert_eq!(
        dns(&out).len(),
        20_000,
        "{}",
        &text(&out)[..500.min(text(&out).len())]
    );
}

#[test]
fn export_during_writes_reimports_into_a_fresh_offline_store() {
    let s = TestServer::start_seeded();
    // a writer adding users over LDAP the whole time
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, ca, stop) = (s.ldap_url(), s.ca(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let ldif = format!(
                    "dn: cn=w{n},ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: person\n\
                     objectClass: organizationalPerson\nobjectClass: user\ncn: w{n}\nsn: W\n\
                     sAMAccountName: w{n}\nuserPassword: w{n}-Writer-Passw0rd\n"
                );
                let mut child = Command::new("ldapadd")
                    .args(["-x", "-H", &url, "-D", ADMIN_DN, "-w", ADMIN_PW])
                    .env("LDAPTLS_CACERT", &ca)
                    .env("LDAPCONF", "/dev/null")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                common::feed_stdin(&mut child, ldif.as_bytes());
                assert!(child.wait().unwrap().success(), "ldapadd w{n} failed");
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let mut exports = Vec::new();
    for i in 0..3 {
        let f = s.path(&format!("export{i}.ldif"));
        let o = ok(&s, &["export", "--out", f.to_str().unwrap()]);
        let n: usize = o
            .trim()
            .strip_prefix("exported ")
            .and_then(|r| r.strip_suffix(" entries"))
            .unwrap_or_else(|| panic!("{o}"))
            .parse()
            .unwrap();
        exports.push((f, n));
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 0, "the writer added nothing");
    // the last export, imported into a fresh data directory offline, is the same directory
    let (file, n) = exports.pop().unwrap();
    let text_of = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text_of.matches("\ndn: ").count() + usize::from(text_of.starts_with("dn: ")),
        n
    );
    let mut fresh = TestServer::configured("");
    let o = ok(&fresh, &["import", file.to_str().unwrap()]);
    assert!(o.contains(&format!("imported {n} entries")), "{o}");
    fresh.launch();
    let out = fresh.search_as_admin(&["-b", BASE, "(objectClass=*)", "1.1"]);
    assert_eq!(dns(&out).len(), n, "{}", text(&out));
    // passwords (hashes and keys) came along
    assert_eq!(rc(&bind(&fresh, ALICE_DN, ALICE_PW)), 0);
    assert_eq!(
        rc(&bind(
            &fresh,
            "cn=w0,ou=People,dc=example,dc=com",
            "w0-Writer-Passw0rd"
        )),
        0
    );
}

/// Makes the test's temporary directory and config readable by `nobody` (the data
/// directory, the socket and the master key keep their own modes).
fn open_to_nobody(s: &TestServer) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(s.config_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(s.data_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn cli_as_nobody(s: &TestServer, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_dird"))
        .arg("--config")
        .arg(s.config_path())
        .args(args)
        .current_dir("/")
        .output()
        .unwrap()
}

#[test]
fn a_non_root_user_is_refused_by_the_socket() {
    let s = TestServer::start();
    open_to_nobody(&s);
    let sock = s.data_dir().join("dird.sock");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // 1. the file mode keeps nobody out; the CLI says so and does not try the database
    let out = cli_as_nobody(
        &s,
        &["user", "add", "mallory", "--password", "Mallory-Passw0rd"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = text(&out);
    assert!(
        err.contains("permission denied on the admin socket")
            && err.contains("only root and the daemon's user"),
        "{err}"
    );
    // 2. with the mode loosened by mistake, SO_PEERCRED still refuses
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = cli_as_nobody(
        &s,
        &["user", "add", "mallory", "--password", "Mallory-Passw0rd"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = text(&out);
    assert!(
        err.contains("permission denied: the admin socket")
            && err.contains("accepts only root and the daemon's user (uid 0)")
            && err.contains("you are uid 65534"),
        "{err}"
    );
    let out = cli_as_nobody(&s, &["export"]);
    assert!(
        !out.status.success() && text(&out).contains("you are uid 65534"),
        "{}",
        text(&out)
    );
    assert!(!exists(&s, "cn=mallory,cn=Users,dc=example,dc=com"));
    // root still may
    ok(
        &s,
        &["user", "add", "trent", "--password", "Trent-Passw0rd"],
    );
    assert!(exists(&s, "cn=trent,cn=Users,dc=example,dc=com"));
}

#[test]
fn the_audit_event_of_a_socket_write_names_the_operator_uid() {
    let mut s = TestServer::start_with("[audit]\npath = \"{dir}/audit.log\"\n");
    ok(
        &s,
        &["user", "add", "oscar", "--password", "Oscar-Passw0rd"],
    );
    ok(
        &s,
        &["user", "passwd", "oscar", "--password", "Oscar-Passw0rd-2"],
    );
    let log: PathBuf = s.path("audit.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &serde_json::Value| v["protocol"] == "admin")
            .collect();
        if lines.len() >= 2 || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let add = lines
        .iter()
        .find(|v| v["operation"] == "add")
        .unwrap_or_else(|| panic!("no admin add event in {lines:?}"));
    assert_eq!(add["event"], "write");
    assert_eq!(add["identity"], "uid=0", "{add}");
    assert_eq!(add["details"]["operator_uid"], "0", "{add}");
    assert_eq!(add["details"]["transport"], "admin socket", "{add}");
    assert_eq!(
        add["target"], "cn=oscar,cn=Users,dc=example,dc=com",
        "{add}"
    );
    assert_eq!(add["result"]["name"], "success", "{add}");
    assert!(
        add["client"].as_str().unwrap().starts_with("unix:pid="),
        "{add}"
    );
    let pw = lines
        .iter()
        .find(|v| v["event"] == "password_change")
        .unwrap_or_else(|| panic!("no password change event in {lines:?}"));
    assert_eq!(pw["identity"], "uid=0", "{pw}");
    let all = std::fs::read_to_string(&log).unwrap();
    assert!(
        !all.contains("Oscar-Passw0rd"),
        "no password in the audit log"
    );
    // offline, the same event, from the same code, names the same operator
    s.stop();
    ok(
        &s,
        &["user", "add", "olive", "--password", "Olive-Passw0rd"],
    );
    let all = std::fs::read_to_string(&log).unwrap();
    let offline: serde_json::Value = all
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["target"] == "cn=olive,cn=Users,dc=example,dc=com")
        .unwrap_or_else(|| panic!("no offline event in {all}"));
    assert_eq!(offline["identity"], "uid=0", "{offline}");
    assert_eq!(offline["operation"], "add", "{offline}");
    assert_eq!(offline["details"]["transport"], "offline", "{offline}");
}

#[test]
fn without_the_daemon_the_same_commands_run_offline() {
    let mut s = TestServer::configured_kdc("");
    let v: serde_json::Value = serde_json::from_str(ok(&s, &["--json", "status"]).trim()).unwrap();
    assert_eq!(v["daemon"], "stopped", "{v}");
    ok(&s, &["ou", "add", "Staff"]);
    ok(
        &s,
        &[
            "user",
            "add",
            "erin",
            "--parent",
            "ou=Staff,dc=example,dc=com",
            "--password",
            "erin-Offline-Passw0rd",
        ],
    );
    ok(
        &s,
        &["user", "add", "gone", "--password", "gone-Offline-Passw0rd"],
    );
    ok(&s, &["user", "delete", "gone"]);
    ok(&s, &["group", "add", "team"]);
    ok(&s, &["group", "member", "add", "team", "erin"]);
    assert!(ok(&s, &["user", "list"]).contains("erin"));
    assert!(!ok(&s, &["user", "list"]).contains("gone"));
    assert!(ok(&s, &["group", "list"]).contains("team"));
    let kt = s.path("client.keytab");
    ok(
        &s,
        &["computer", "add", "client", "--out", kt.to_str().unwrap()],
    );
    s.launch();
    assert!(exists(&s, "cn=erin,ou=Staff,dc=example,dc=com"));
    assert!(!exists(&s, "cn=gone,cn=Users,dc=example,dc=com"));
    let out = s.search_as_admin(&[
        "-b",
        "cn=team,cn=Users,dc=example,dc=com",
        "-s",
        "base",
        "(objectClass=*)",
        "member",
    ]);
    assert_eq!(
        values(&out, "member"),
        vec!["cn=erin,ou=Staff,dc=example,dc=com"]
    );
    s.krb_ok(
        UDP,
        "cc.client",
        &[
            "kinit",
            "-k",
            "-t",
            kt.to_str().unwrap(),
            "host/client.example.com",
        ],
        "",
    );
}

#[test]
fn a_locked_database_without_a_socket_is_a_clear_error() {
    let s = TestServer::start();
    // The daemon runs, but its socket is gone (removed by mistake).
    std::fs::remove_file(s.data_dir().join("dird.sock")).unwrap();
    let out = s.cli(&["user", "add", "x", "--password", "x-Passw0rd-long"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("no dird answers on its admin socket"),
        "{}",
        text(&out)
    );
}

#[test]
fn status_reports_the_last_scheduled_backup() {
    let s =
        TestServer::start_with("[backup]\ndir = \"{dir}/backups\"\ninterval_secs = 1\nkeep = 2\n");
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let v: serde_json::Value =
            serde_json::from_str(ok(&s, &["--json", "status"]).trim()).unwrap();
        if !v["last_backup"].is_null() || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let file = v["last_backup"]["file"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        file.starts_with(&s.path("backups").display().to_string()),
        "{v}"
    );
    assert!(file.ends_with(".dirdbak"), "{v}");
    assert!(
        v["last_backup"]["time"].as_str().unwrap().ends_with('Z'),
        "{v}"
    );
    let human = ok(&s, &["status"]);
    assert!(
        human.contains("last scheduled backup: ") && human.contains(".dirdbak"),
        "{human}"
    );
}

#[test]
fn the_socket_answers_malformed_requests_with_errors_and_keeps_serving() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    let s = TestServer::start();
    let sock = s.data_dir().join("dird.sock");
    let answer = |bytes: &[u8]| -> String {
        let mut c = UnixStream::connect(&sock).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(bytes).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    // a frame announced at 16 MiB: refused before it is read
    let a = answer(&[0, 0xff, 0xff, 0xff]);
    assert!(a.contains("over the limit"), "{a:?}");
    // a frame of garbage, and an unknown operation
    let a = answer(&[0, 0, 0, 3, b'{', b'x', b'}']);
    assert!(a.contains("bad request"), "{a:?}");
    let body = br#"{"op":"format_disk"}"#;
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    let a = answer(&frame);
    assert!(
        a.contains("bad request") && a.contains("format_disk"),
        "{a:?}"
    );
    // an import chunk without ImportBegin
    let body = br#"{"op":"import_chunk","ldif":"dn: cn=x,dc=example,dc=com\n"}"#;
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    let a = answer(&frame);
    assert!(a.contains("streams"), "{a:?}");
    // a truncated frame, then silence: the daemon gives up on it, others are served
    let mut stuck = UnixStream::connect(&sock).unwrap();
    stuck.write_all(&[0, 0, 1, 0, b'{']).unwrap();
    // the line protocol still answers, and the CLI works
    assert!(answer(b"ping\n").starts_with("ok dird "), "ping");
    ok(
        &s,
        &["user", "add", "after", "--password", "After-Passw0rd"],
    );
    assert!(exists(&s, "cn=after,cn=Users,dc=example,dc=com"));
    drop(stuck);
}

/// Drives `dird user add pat` on a pseudo-terminal: answers both password prompts once the
/// terminal's echo is off, and prints everything the terminal showed.
const PROMPT_DRIVER: &str = r#"
import os, pty, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "--config", sys.argv[2], "user", "add", "pat"])
seen = b""
def wait_for(token):
    global seen
    while token not in seen:
        seen += os.read(fd, 1024)
def echo_off():
    deadline = time.time() + 10
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        if time.time() > deadline:
            raise SystemExit("echo never turned off")
        time.sleep(0.01)
wait_for(b"New password for pat")
echo_off()
os.write(fd, b"Pat-Prompt-Passw0rd\n")
wait_for(b"Repeat it")
echo_off()
os.write(fd, b"Pat-Prompt-Passw0rd\n")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[test]
fn the_password_is_prompted_for_without_echo() {
    let s = TestServer::start();
    let out = s.python(
        PROMPT_DRIVER,
        &[
            env!("CARGO_BIN_EXE_dird"),
            s.config_path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains("added cn=pat,cn=Users,dc=example,dc=com"),
        "{shown}"
    );
    assert!(
        !shown.contains("Pat-Prompt-Passw0rd"),
        "the password was echoed: {shown}"
    );
    assert_eq!(rc(&bind(&s, "pat@example.com", "Pat-Prompt-Passw0rd")), 0);
}
