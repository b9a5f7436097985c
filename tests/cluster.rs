#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 17, end to end: three real `etcd` members (Debian etcd-server 3.4) on loopback
//! ports and two `dird` nodes on them (`dird cluster init` on the first, the master key
//! copied and `dird cluster join` on the second), driven with OpenLDAP's ldapadd/ldapsearch:
//! a write on one node is read on the other, conflicting concurrent writes on the two nodes
//! have exactly one winner, acknowledged writes survive a kill -9 of the writer, losing etcd
//! quorum refuses writes (52) and, after the staleness bound, reads, and a node that missed
//! compacted history resyncs fully; a user added on one node gets a TGT from the other
//! node's KDC (MIT kinit) and is resolved (getent, id) by a real sssd pointed at the other
//! node only (the harness in tests/common/sssd.rs); the tier's user cap holds when two
//! nodes race for the last slot; audit events and metrics name their node; a write answered
//! 52 is settled in the audit stream; a node's backup seeds a new cluster.
//! A missing tool fails the test with a clear message.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::*;

fn require_tools() {
    for tool in [
        "etcd",
        "etcdctl",
        "ldapadd",
        "ldapsearch",
        "ldapdelete",
        "kinit",
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "{tool} is not installed: install etcd-server, etcd-client and ldap-utils (scripts/test-all.sh does)"
        );
    }
}

/// A port free right now and never handed out before in this test binary (the tests run
/// in parallel, each starting three members with two ports each).
fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// One etcd member.
struct Member {
    name: String,
    client: u16,
    peer: u16,
    data: PathBuf,
    child: Option<Child>,
}

/// Three etcd members on loopback, each with its own data directory.
struct Etcd {
    members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts three members; a start that does not become healthy (a port taken by another
    /// process between the probe and etcd's bind) is retried on new ports.
    fn start() -> Etcd {
        for _ in 0..3 {
            let mut e = Etcd::start_once();
            if e.healthy_within(&[0, 1, 2], Duration::from_secs(15)) {
                return e;
            }
            for i in 0..3 {
                e.stop_member(i);
            }
        }
        panic!("three etcd members did not become healthy (three tries)");
    }

    fn start_once() -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<Member> = (0..3)
            .map(|i| Member {
                name: format!("m{i}"),
                client: free_port(),
                peer: free_port(),
                data: dir.path().join(format!("m{i}")),
                child: None,
            })
            .collect();
        let mut e = Etcd { members, _dir: dir };
        for i in 0..3 {
            e.start_member(i);
        }
        e
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn start_member(&mut self, i: usize) {
        let cluster = self.initial_cluster();
        let m = &mut self.members[i];
        assert!(m.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{}.log", m.data.display()))
            .unwrap();
        let child = Command::new("etcd")
            .args([
                "--name",
                &m.name,
                "--data-dir",
                &m.data.display().to_string(),
                "--listen-client-urls",
                &format!("http://127.0.0.1:{}", m.client),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{}", m.client),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{}", m.peer),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{}", m.peer),
                "--initial-cluster",
                &cluster,
                "--initial-cluster-token",
                "dird-test",
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("etcd could not be started: install etcd-server");
        m.child = Some(child);
    }

    /// Kills member `i` (SIGKILL) and reaps it.
    fn stop_member(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect()
    }

    fn etcdctl(&self, args: &[&str]) -> Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(self.endpoints().join(","))
            .args(args)
            .output()
            .expect("etcdctl could not be run: install etcd-client")
    }

    fn wait_healthy(&self, which: &[usize]) {
        assert!(
            self.healthy_within(which, Duration::from_secs(30)),
            "etcd members {which:?} not healthy within 30 s"
        );
    }

    fn healthy_within(&self, which: &[usize], within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let ok = which.iter().all(|&i| {
                Command::new("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .args([
                        "--endpoints",
                        &format!("http://127.0.0.1:{}", self.members[i].client),
                        "endpoint",
                        "health",
                    ])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            });
            if ok {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The cluster's current revision.
    fn revision(&self) -> u64 {
        let out = self.etcdctl(&[
            "get",
            "/",
            "--prefix",
            "--keys-only",
            "--limit",
            "1",
            "-w",
            "json",
        ]);
        let s = String::from_utf8_lossy(&out.stdout);
        let at = s.find("\"revision\":").expect("revision in etcdctl output") + 11;
        s[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.stop_member(i);
        }
    }
}

fn cluster_section(etcd: &Etcd, node: &str, staleness: u64) -> String {
    let list = etcd
        .endpoints()
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[cluster]\netcd = [{list}]\nprefix = \"/dird/example.com\"\nnode_name = \"{node}\"\nmax_staleness_secs = {staleness}\n"
    )
}

fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", text(out));
}

/// Node A (`cluster init` + serve) and node B (master key copied, `cluster join` + serve).
fn two_nodes(etcd: &Etcd, staleness: u64) -> (TestServer, TestServer) {
    two_nodes_with(etcd, staleness, false)
}

/// `two_nodes`, with the KDC on both nodes if `kdc`.
fn two_nodes_with(etcd: &Etcd, staleness: u64, kdc: bool) -> (TestServer, TestServer) {
    two_nodes_extra(etcd, staleness, kdc, "")
}

/// `two_nodes_with`, with `extra` appended to both configs (`{dir}`: each node's temp dir).
fn two_nodes_extra(
    etcd: &Etcd,
    staleness: u64,
    kdc: bool,
    extra: &str,
) -> (TestServer, TestServer) {
    let configured = |node: &str| {
        let section = cluster_section(etcd, node, staleness) + extra;
        if kdc {
            TestServer::configured_kdc(&section)
        } else {
            TestServer::configured(&section)
        }
    };
    let mut a = configured("a");
    assert_ok(&a.cli(&["cluster", "init"]), "dird cluster init");
    // A second init is refused: the prefix is not empty.
    let again = a.cli(&["cluster", "init"]);
    assert!(
        !again.status.success() && text(&again).contains("not empty"),
        "{}",
        text(&again)
    );
    a.launch();
    let mut b = configured("b");
    // Without the master key, join names the missing step.
    let out = b.cli(&["cluster", "join"]);
    assert!(
        !out.status.success() && text(&out).contains("master.key"),
        "{}",
        text(&out)
    );
    copy_master_key(&a.data_dir(), &b.data_dir());
    assert_ok(&b.cli(&["cluster", "join"]), "dird cluster join");
    b.launch();
    (a, b)
}

fn copy_master_key(from: &Path, to: &Path) {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(to)
        .unwrap();
    let key = std::fs::read(from.join("master.key")).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to.join("master.key"))
        .unwrap();
    std::io::Write::write_all(&mut f, &key).unwrap();
}

fn add(s: &TestServer, ldif: &str) -> Output {
    ldapadd(&s.ldap_url(), &s.ca(), ldif)
}

/// `ldapadd` as Administrator (usable from threads: no `TestServer` needed).
fn ldapadd(url: &str, ca: &Path, ldif: &str) -> Output {
    let mut child = Command::new("ldapadd")
        .args([
            "-x",
            "-H",
            url,
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            "-o",
            "nettimeout=20",
        ])
        .env("LDAPTLS_CACERT", ca)
        .env("LDAPCONF", "/dev/null")
        .env("LDAPRC", "/nonexistent-dird-test-ldaprc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ldapadd could not be run: install ldap-utils");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), ldif.as_bytes()).unwrap();
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn person(uid: &str) -> String {
    format!("dn: uid={uid},ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n")
}

fn people() -> String {
    "dn: ou=People,dc=example,dc=com\nobjectClass: organizationalUnit\nou: People\n".into()
}

/// DNs under the base matching `filter`, as Administrator (None: the search failed).
fn find(s: &TestServer, filter: &str) -> Result<Vec<String>, Output> {
    let out = s.search_as_admin(&["-b", "dc=example,dc=com", filter, "1.1"]);
    if rc(&out) == 0 {
        Ok(dns(&out))
    } else {
        Err(out)
    }
}

/// Polls until `filter` matches `n` entries on `s`.
fn wait_count(s: &TestServer, filter: &str, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = find(s, filter);
        if matches!(&got, Ok(v) if v.len() == n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{filter} did not reach {n} entries within {within:?}: {:?}",
            got.map_err(|o| text(&o))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn writes_are_seen_on_the_other_node_and_conflicts_have_one_winner() {
    require_tools();
    let etcd = Etcd::start();
    let (a, b) = two_nodes_with(&etcd, 30, true);

    // A write on A is read on B within a bound (and on A at once: read-your-writes).
    let t0 = Instant::now();
    assert_ok(&add(&a, &people()), "add ou=People on A");
    assert_ok(&add(&a, &person("ann")), "add ann on A");
    assert_eq!(
        find(&a, "(uid=ann)").unwrap().len(),
        1,
        "read-your-writes on A"
    );
    wait_count(&b, "(uid=ann)", 1, Duration::from_secs(5));
    eprintln!("visible on B {:?} after the add on A began", t0.elapsed());
    // and the other way
    assert_ok(&add(&b, &person("ben")), "add ben on B");
    wait_count(&a, "(uid=ben)", 1, Duration::from_secs(5));
    // A user with a password added on A gets a TGT from B's KDC (keys sealed with the
    // master key that was copied, never sent through etcd).
    let kim = "dn: cn=kim,ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: person\n\
               objectClass: organizationalPerson\nobjectClass: user\ncn: kim\nsn: kim\n\
               userPassword: Kim-Passw0rd-1\n";
    assert_ok(
        &ldapadd(&a.ldaps_url(), &a.ca(), kim),
        "add kim on A over LDAPS",
    );
    wait_count(&b, "(sAMAccountName=kim)", 1, Duration::from_secs(5));
    let out = b.krb("krb5.conf", "cc.kim", &["kinit", "kim"], "Kim-Passw0rd-1\n");
    assert!(
        out.status.success(),
        "kinit kim against B's KDC: {}",
        text(&out)
    );

    let at = (a.ldap_url(), a.ca());
    let bt = (b.ldap_url(), b.ca());
    let race = |ldif_a: String, ldif_b: String| -> (Output, Output) {
        let gate = Arc::new(Barrier::new(2));
        let (g, (url, ca)) = (gate.clone(), at.clone());
        let ta = std::thread::spawn(move || {
            g.wait();
            ldapadd(&url, &ca, &ldif_a)
        });
        let (g, (url, ca)) = (gate, bt.clone());
        let tb = std::thread::spawn(move || {
            g.wait();
            ldapadd(&url, &ca, &ldif_b)
        });
        (ta.join().unwrap(), tb.join().unwrap())
    };
    for i in 0..4 {
        // The same new DN on both nodes at once: one add succeeds, the other gets 68.
        let (ra, rb) = race(person(&format!("same{i}")), person(&format!("same{i}")));
        let mut codes = [rc(&ra), rc(&rb)];
        codes.sort();
        assert_eq!(codes, [0, 68], "A: {}\nB: {}", text(&ra), text(&rb));
        // The same sAMAccountName under two DNs: one add succeeds, the other gets 68.
        let group = |cn: &str| {
            format!("dn: cn={cn},ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: group\ncn: {cn}\nsAMAccountName: acct{i}\n")
        };
        let (ra, rb) = race(group(&format!("ga{i}")), group(&format!("gb{i}")));
        let mut codes = [rc(&ra), rc(&rb)];
        codes.sort();
        assert_eq!(codes, [0, 68], "A: {}\nB: {}", text(&ra), text(&rb));
        let loser = if rc(&ra) == 0 { &rb } else { &ra };
        assert!(text(loser).contains("sAMAccountName"), "{}", text(loser));
        for node in [&a, &b] {
            wait_count(node, &format!("(uid=same{i})"), 1, Duration::from_secs(5));
            wait_count(
                node,
                &format!("(sAMAccountName=acct{i})"),
                1,
                Duration::from_secs(5),
            );
        }
    }
    // Non-conflicting writes from both nodes at once all land (conflicts on the head are
    // retried inside the server).
    let (ra, rb) = race(
        (0..10)
            .map(|i| person(&format!("pa{i}")))
            .collect::<Vec<_>>()
            .join("\n"),
        (0..10)
            .map(|i| person(&format!("pb{i}")))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    assert_ok(&ra, "10 adds on A");
    assert_ok(&rb, "10 adds on B");
    for node in [&a, &b] {
        wait_count(node, "(|(uid=pa*)(uid=pb*))", 20, Duration::from_secs(5));
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_of_the_writing_node() {
    require_tools();
    let etcd = Etcd::start();
    let (mut a, b) = two_nodes(&etcd, 30);
    assert_ok(&add(&a, &people()), "add ou=People");
    let url = a.ldap_url();
    let ca = a.ca();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            for i in 0.. {
                let uid = format!("load{i}");
                let out = ldapadd(&url, &ca, &person(&uid));
                if !out.status.success() {
                    return;
                }
                acked.lock().unwrap().push(uid);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 15 {
        assert!(Instant::now() < deadline, "the write load made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    a.kill();
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    // Every acknowledged write is on B.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let have = find(&b, "(uid=load*)").unwrap();
        let missing: Vec<&String> = acked
            .iter()
            .filter(|u| !have.iter().any(|d| d.starts_with(&format!("uid={u},"))))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged but missing on B: {missing:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A restarts on its replica and catches up.
    a.launch();
    wait_count(
        &a,
        "(uid=load*)",
        find(&b, "(uid=load*)").unwrap().len(),
        Duration::from_secs(10),
    );
}

#[test]
fn losing_etcd_quorum_refuses_writes_then_stale_reads_and_recovers() {
    require_tools();
    let mut etcd = Etcd::start();
    let (a, b) = two_nodes_extra(&etcd, 3, false, "[audit]\npath = \"{dir}/audit.log\"\n");
    assert_ok(&add(&a, &people()), "add ou=People");
    // One member down: writes go on.
    etcd.stop_member(2);
    for i in 0..3 {
        assert_ok(
            &add(&a, &person(&format!("one{i}"))),
            "add with one etcd member down",
        );
    }
    wait_count(&b, "(uid=one*)", 3, Duration::from_secs(5));
    // Two down: no quorum. Reads on B still work right away (within the bound)...
    etcd.stop_member(1);
    let started = Instant::now();
    assert_eq!(find(&b, "(uid=one*)").unwrap().len(), 3);
    assert!(started.elapsed() < Duration::from_secs(3));
    // ... writes are refused with unavailable (52) and say why ...
    let out_noquorum = add(&a, &person("noquorum"));
    let out = &out_noquorum;
    assert_eq!(rc(out), 52, "{}", text(out));
    assert!(
        text(out).contains("etcd") && text(out).contains("outcome"),
        "{}",
        text(out)
    );
    // ... and once the staleness bound (3 s) has passed, reads are refused too.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(started.elapsed()));
    let out = b.search_as_admin(&["-b", "dc=example,dc=com", "(uid=one0)", "1.1"]);
    assert_eq!(rc(&out), 52, "{}", text(&out));
    assert!(text(&out).contains("max_staleness_secs"), "{}", text(&out));
    // Members back: reads and writes resume, and both nodes catch up.
    etcd.start_member(1);
    etcd.start_member(2);
    etcd.wait_healthy(&[0, 1, 2]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = add(&a, &person("back"));
        if rc(&out) == 0 || rc(&out) == 68 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not resume: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_count(&b, "(uid=back)", 1, Duration::from_secs(10));
    wait_count(&a, "(uid=back)", 1, Duration::from_secs(10));
    // The write answered 52 is settled in the background: exactly one write_outcome event
    // on A, naming the marker the client was given, with the verdict the directory shows.
    let marker = text(&out_noquorum)
        .split("marker \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the 52 message names the write's marker")
        .to_string();
    let is_outcome = |e: &serde_json::Value| e["event"] == "write_outcome";
    let deadline = Instant::now() + Duration::from_secs(20);
    let outcomes = loop {
        let events = audit_events(&a, is_outcome);
        let outcomes: Vec<serde_json::Value> = events.into_iter().filter(is_outcome).collect();
        if !outcomes.is_empty() || Instant::now() > deadline {
            break outcomes;
        }
    };
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    let ev = &outcomes[0];
    assert_eq!(ev["details"]["marker"], marker.as_str(), "{ev}");
    assert_eq!(ev["node"], "a", "{ev}");
    let exists = find(&a, "(uid=noquorum)").unwrap().len() == 1;
    assert_eq!(
        ev["details"]["applied"],
        if exists { "true" } else { "false" },
        "entry exists: {exists}; {ev}"
    );
    eprintln!(
        "unknown-outcome write settled: applied = {}",
        ev["details"]["applied"]
    );
    std::thread::sleep(Duration::from_millis(500));
    let events = audit_events(&a, is_outcome);
    assert_eq!(
        events.iter().filter(|e| is_outcome(e)).count(),
        1,
        "{events:?}"
    );
}

#[test]
fn a_node_behind_compacted_history_resyncs_fully() {
    require_tools();
    let etcd = Etcd::start();
    let (a, mut b) = two_nodes(&etcd, 30);
    assert_ok(&add(&a, &people()), "add ou=People");
    assert_ok(&add(&a, &person("gone")), "add gone");
    wait_count(&b, "(uid=gone)", 1, Duration::from_secs(5));
    b.stop();
    for i in 0..5 {
        assert_ok(
            &add(&a, &person(&format!("while{i}"))),
            "add while B is down",
        );
    }
    let out = a.tool(
        "ldapdelete",
        &[
            "-x",
            "-H",
            &a.ldap_url(),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            "uid=gone,ou=People,dc=example,dc=com",
        ],
    );
    assert_ok(&out, "delete gone");
    let rev = etcd.revision();
    assert_ok(
        &etcd.etcdctl(&["compact", &rev.to_string()]),
        "etcdctl compact",
    );
    b.launch();
    wait_count(&b, "(uid=while*)", 5, Duration::from_secs(10));
    wait_count(&b, "(uid=gone)", 0, Duration::from_secs(5));
    // And it follows again afterwards.
    assert_ok(&add(&a, &person("after")), "add after the resync");
    wait_count(&b, "(uid=after)", 1, Duration::from_secs(5));
}

/// `ldapwhoami` result code of a simple bind on `s`.
fn bind_rc(s: &TestServer, dn: &str, pw: &str) -> (i32, String) {
    let url = s.ldap_url();
    let out = s.whoami(&["-H", url.as_str(), "-D", dn, "-w", pw, "-e", "ppolicy"]);
    (rc(&out), text(&out))
}

#[test]
fn failed_binds_spread_over_two_nodes_lock_the_account_and_status_lists_both() {
    require_tools();
    let etcd = Etcd::start();
    let (a, b) = two_nodes(&etcd, 30);
    let carol = "uid=carol,ou=People,dc=example,dc=com";
    let policy = "dn: dc=example,dc=com\nchangetype: modify\nreplace: lockoutThreshold\nlockoutThreshold: 4\n-\n";
    let out = a.tool_stdin(
        "ldapmodify",
        &["-x", "-H", &a.ldap_url(), "-D", ADMIN_DN, "-w", ADMIN_PW],
        Some(policy),
    );
    assert_ok(&out, "set lockoutThreshold");
    assert_ok(&add(&a, &people()), "add ou=People");
    assert_ok(
        &add(
            &a,
            &format!("{}userPassword: Carol-Passw0rd-17\n", person("carol")),
        ),
        "add carol",
    );
    wait_count(&b, "(uid=carol)", 1, Duration::from_secs(5));
    wait_count(&b, "(lockoutThreshold=4)", 1, Duration::from_secs(5));
    // The right password works on both nodes.
    assert_eq!(bind_rc(&a, carol, "Carol-Passw0rd-17").0, 0);
    assert_eq!(bind_rc(&b, carol, "Carol-Passw0rd-17").0, 0);

    // Two wrong guesses on each node: each node alone saw fewer than the threshold, the
    // cluster saw four, so the account is locked on both.
    for s in [&a, &b, &a, &b] {
        let (code, out) = bind_rc(s, carol, "wrong-guess");
        assert_eq!(code, 49, "{out}");
    }
    for (name, s) in [("a", &a), ("b", &b)] {
        let (code, out) = bind_rc(s, carol, "Carol-Passw0rd-17");
        assert_eq!(
            code, 49,
            "node {name}: the right password after 4 failures: {out}"
        );
        assert!(out.contains("data 775"), "node {name}: {out}");
    }

    // `dird status` on either node lists both nodes by name, with their applied revision.
    let out = a.cli(&["--json", "status"]);
    assert_ok(&out, "dird status");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status JSON: {e}: {}", text(&out)));
    let nodes = v["cluster"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no cluster nodes in {v}"));
    let names: Vec<&str> = nodes
        .iter()
        .filter_map(|n| n["node_name"].as_str())
        .collect();
    assert_eq!(names, ["a", "b"], "{v}");
    let head = v["cluster"]["revision"].as_u64().unwrap();
    assert!(head > 0, "{v}");
    for n in nodes {
        assert!(n["applied_revision"].as_u64().unwrap() > 0, "{n}");
    }
    let human = b.cli(&["status"]);
    assert_ok(&human, "dird status (human)");
    assert!(
        text(&human).contains("cluster: 2 nodes"),
        "{}",
        text(&human)
    );
}

/// A user entry under cn=Users (counted against the tier's user cap).
fn user(cn: &str) -> String {
    format!(
        "dn: cn={cn},cn=Users,dc=example,dc=com\nobjectClass: top\nobjectClass: person\n\
         objectClass: organizationalPerson\nobjectClass: user\ncn: {cn}\nsAMAccountName: {cn}\n"
    )
}

#[test]
fn the_tier_user_cap_holds_across_nodes() {
    require_tools();
    let etcd = Etcd::start();
    // Node A: the small tier (500 users), provisioned (2 users) and filled to 499 users by
    // an offline import while still standalone, then `cluster init`.
    let mut a = TestServer::configured("");
    a.set_tier("small");
    assert_ok(&a.cli(&["init"]), "dird init");
    let mut fill = "dn: ou=fill,dc=example,dc=com\nobjectClass: top\nobjectClass: organizationalUnit\nou: fill\n\n".to_string();
    for i in 0..497 {
        fill.push_str(&format!(
            "dn: cn=f{i},ou=fill,dc=example,dc=com\nobjectClass: top\nobjectClass: person\n\
             objectClass: organizationalPerson\nobjectClass: user\ncn: f{i}\nsAMAccountName: f{i}\n\n"
        ));
    }
    let path = a.path("fill.ldif");
    std::fs::write(&path, fill).unwrap();
    assert_ok(&a.cli(&["import", path.to_str().unwrap()]), "dird import");
    let cfg = std::fs::read_to_string(a.config_path()).unwrap();
    std::fs::write(
        a.config_path(),
        format!("{cfg}\n{}", cluster_section(&etcd, "a", 30)),
    )
    .unwrap();
    assert_ok(&a.cli(&["cluster", "init"]), "dird cluster init");
    a.launch();
    let mut b = TestServer::configured(&cluster_section(&etcd, "b", 30));
    b.set_tier("small");
    copy_master_key(&a.data_dir(), &b.data_dir());
    assert_ok(&b.cli(&["cluster", "join"]), "dird cluster join");
    b.launch();
    wait_count(&b, "(cn=f496)", 1, Duration::from_secs(5));

    // Two different users at once, one on each node: one slot, so exactly one succeeds and
    // the other is refused with adminLimitExceeded (11) naming the cap.
    let gate = Arc::new(Barrier::new(2));
    let spawn = |s: &TestServer, cn: &'static str| {
        let (g, url, ca) = (gate.clone(), s.ldap_url(), s.ca());
        std::thread::spawn(move || {
            g.wait();
            ldapadd(&url, &ca, &user(cn))
        })
    };
    let (ta, tb) = (spawn(&a, "racer-a"), spawn(&b, "racer-b"));
    let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
    let mut codes = [rc(&ra), rc(&rb)];
    codes.sort();
    assert_eq!(codes, [0, 11], "A: {}\nB: {}", text(&ra), text(&rb));
    let loser = if rc(&ra) == 0 { &rb } else { &ra };
    assert!(
        text(loser).contains("tier small allows 500 users; 500 exist"),
        "{}",
        text(loser)
    );
    for node in [&a, &b] {
        wait_count(node, "(cn=racer-*)", 1, Duration::from_secs(5));
    }
    // Full on both nodes: a further user is refused on either.
    for (node, cn) in [(&a, "late-a"), (&b, "late-b")] {
        let out = add(node, &user(cn));
        assert_eq!(rc(&out), 11, "{}", text(&out));
    }
}

/// `GET path` on a metrics endpoint: the body.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// The value of an unlabelled sample, None when absent.
fn metric(s: &TestServer, name: &str) -> Option<f64> {
    let body = http_get(s.metrics.expect("metrics address"), "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .map(|v| v.trim().parse().expect("number"))
}

/// The JSON audit events in `s`'s `audit.log` (waits up to 5 s for one matching `want`).
fn audit_events(
    s: &TestServer,
    want: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events: Vec<serde_json::Value> = std::fs::read_to_string(s.path("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect();
        if events.iter().any(&want) || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn audit_events_name_their_node_and_metrics_show_the_applied_revision() {
    require_tools();
    let etcd = Etcd::start();
    let (a, b) = two_nodes_extra(
        &etcd,
        30,
        false,
        "[audit]\npath = \"{dir}/audit.log\"\n[metrics]\nlisten = [\"127.0.0.1:0\"]\n",
    );
    assert_ok(&add(&a, &people()), "add ou=People on A");
    let dana = "uid=dana,ou=People,dc=example,dc=com";
    assert_ok(
        &add(
            &a,
            &format!("{}userPassword: Dana-Passw0rd-1\n", person("dana")),
        ),
        "add dana on A",
    );
    wait_count(&b, "(uid=dana)", 1, Duration::from_secs(5));
    let (code, out) = bind_rc(&b, dana, "Dana-Passw0rd-1");
    assert_eq!(code, 0, "{out}");

    // The add is recorded on A as node "a", the bind on B as node "b".
    let is_add = |e: &serde_json::Value| e["event"] == "write" && e["target"] == dana;
    let events = audit_events(&a, is_add);
    let add_ev = events
        .iter()
        .find(|e| is_add(e))
        .expect("add of dana in A's audit");
    assert_eq!(add_ev["node"], "a", "{add_ev}");
    let is_bind = |e: &serde_json::Value| e["event"] == "bind" && e["target"] == dana;
    let events = audit_events(&b, is_bind);
    let bind_ev = events
        .iter()
        .find(|e| is_bind(e))
        .expect("bind of dana in B's audit");
    assert_eq!(bind_ev["node"], "b", "{bind_ev}");
    assert!(
        events.iter().all(|e| e["node"] == "b"),
        "every event on B names node b: {events:?}"
    );

    // B's applied revision reaches A's (the same etcd head), and both heard from etcd lately.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ra = metric(&a, "dird_cluster_applied_revision").expect("A's applied revision");
        let rb = metric(&b, "dird_cluster_applied_revision").expect("B's applied revision");
        if ra > 0.0 && ra == rb {
            break;
        }
        assert!(Instant::now() < deadline, "applied revisions A {ra} B {rb}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for node in [&a, &b] {
        let age = metric(node, "dird_cluster_etcd_contact_age_seconds").expect("contact age");
        assert!((0.0..10.0).contains(&age), "etcd contact age {age}");
    }
}

#[test]
fn a_backup_of_a_node_seeds_a_new_cluster() {
    require_tools();
    let etcd = Etcd::start();
    let (a, b) = two_nodes(&etcd, 30);
    assert_ok(&add(&a, &people()), "add ou=People on A");
    for i in 0..3 {
        assert_ok(&add(&a, &person(&format!("kept{i}"))), "add on A");
    }
    wait_count(&b, "(uid=kept*)", 3, Duration::from_secs(5));
    // An online backup on B (a consistent snapshot of its replica), with the master key.
    let file = b.path("b.dirdbak");
    assert_ok(
        &b.cli(&[
            "backup",
            "--out",
            file.to_str().unwrap(),
            "--include-master-key",
        ]),
        "dird backup on B",
    );
    // Restored into a fresh data directory under a NEW prefix: `cluster init` seeds it.
    let section = cluster_section(&etcd, "c", 30).replace("/dird/example.com", "/dird/restored");
    let mut c = TestServer::configured(&section);
    assert_ok(
        &c.cli(&["restore", file.to_str().unwrap()]),
        "dird restore on C",
    );
    assert_ok(
        &c.cli(&["cluster", "init"]),
        "dird cluster init (new prefix)",
    );
    c.launch();
    wait_count(&c, "(uid=kept*)", 3, Duration::from_secs(5));
    // The new cluster takes writes of its own; the old one does not see them.
    assert_ok(&add(&c, &person("fresh")), "add on C");
    assert_eq!(find(&c, "(uid=fresh)").unwrap().len(), 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(find(&a, "(uid=fresh)").unwrap().len(), 0);
}

/// The LDIF of `both_nodes_serve_sssd_for_a_user_added_on_the_other_node`: the sssd service
/// account, a POSIX user and two POSIX groups (one by primary gid, one by membership).
const SSSD_SEED: &str = "dn: cn=sssd,cn=Users,dc=example,dc=com
objectClass: top
objectClass: user
cn: sssd
sAMAccountName: sssd
userPassword: Sssd-Bind-Passw0rd

dn: ou=People,dc=example,dc=com
objectClass: top
objectClass: organizationalUnit
ou: People

dn: cn=nora,ou=People,dc=example,dc=com
objectClass: top
objectClass: user
objectClass: posixAccount
cn: nora
uid: nora
gecos: Nora Node
uidNumber: 17001
gidNumber: 27001
homeDirectory: /home/nora
unixHomeDirectory: /home/nora
loginShell: /bin/bash
userAccountControl: 512
userPassword: Nora-Passw0rd-1

dn: cn=staff17,ou=People,dc=example,dc=com
objectClass: top
objectClass: group
objectClass: posixGroup
cn: staff17
gidNumber: 27001

dn: cn=ops17,ou=People,dc=example,dc=com
objectClass: top
objectClass: group
objectClass: posixGroup
cn: ops17
gidNumber: 27002
member: cn=nora,ou=People,dc=example,dc=com
";

#[test]
fn both_nodes_serve_sssd_for_a_user_added_on_the_other_node() {
    let _guard = common::sssd::SSSD_LOCK
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    require_tools();
    common::sssd::require_tools();
    let etcd = Etcd::start();
    let (a, b) = two_nodes(&etcd, 30);
    // Written on A only.
    assert_ok(
        &add(&a, SSSD_SEED),
        "ldapadd of the POSIX user and groups on A",
    );
    wait_count(
        &b,
        "(|(cn=nora)(cn=staff17)(cn=ops17)(cn=sssd))",
        4,
        Duration::from_secs(10),
    );
    // sssd knows only node B: the shipped rfc2307bis deploy file with B's URI and CA.
    let deploy = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/sssd-rfc2307bis.conf"),
    )
    .unwrap();
    let overrides: Vec<(&str, &str, String)> = vec![
        ("domain", "ldap_uri", b.ldaps_url()),
        ("domain", "ldap_tls_cacert", b.ca().display().to_string()),
        (
            "domain",
            "ldap_default_authtok",
            "Sssd-Bind-Passw0rd".into(),
        ),
        ("domain", "debug_level", "7".into()),
        ("domain", "ldap_network_timeout", "3".into()),
        ("domain", "ldap_opt_timeout", "10".into()),
        ("domain", "cache_credentials", "false".into()),
        ("nss", "memcache_timeout", "0".into()),
    ];
    let sssd = common::sssd::Sssd::start(&common::sssd::edit_conf(&deploy, &overrides));
    let run = |cmd: &str, args: &[&str]| -> String {
        let out = Command::new(cmd).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd} {args:?} through sssd on node B: {}\n{}",
            text(&out),
            sssd.diagnostics()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // Group first, on a cold cache (sssd lists members it has not cached as users yet).
    let ops = run("getent", &["group", "ops17"]);
    assert_eq!(ops, "ops17:*:27002:nora", "getent group ops17");
    let passwd = run("getent", &["passwd", "nora"]);
    assert_eq!(
        passwd, "nora:*:17001:27001:Nora Node:/home/nora:/bin/bash",
        "getent passwd nora"
    );
    let id = run("id", &["nora"]);
    assert!(
        id.starts_with("uid=17001(nora) gid=27001(staff17)") && id.contains("27002(ops17)"),
        "id nora: {id}\n{}",
        sssd.diagnostics()
    );
    assert!(
        !sssd.domain_log().contains(&a.ldaps_url()),
        "sssd talked to node A"
    );
    drop(sssd);
}
