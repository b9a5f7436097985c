//! Operations (issue 6) against the real daemon: the audit stream, metrics and health,
//! online backup and restore, SIGTERM drain and SIGHUP certificate reload.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{rc, text, TestServer, ADMIN_DN, ADMIN_PW, SEED};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// audit

#[test]
fn audit_lines_for_binds_writes_and_password_changes() {
    let server = TestServer::start_with("[audit]\npath = \"{dir}/audit.jsonl\"\n");
    let audit = server.dir.path().join("audit.jsonl");
    server.seed(SEED); // admin bind + 6 adds
    let alice = "cn=alice,ou=People,dc=example,dc=com";
    let bob = "cn=bob,ou=People,dc=example,dc=com";

    // A successful bind by UPN, a failed bind by DN.
    let ok = server.tool(
        "ldapwhoami",
        &[
            "-x",
            "-H",
            &server.ldap_url(),
            "-D",
            "alice@example.com",
            "-w",
            "alice-Passw0rd",
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    let bad = server.tool(
        "ldapwhoami",
        &[
            "-x",
            "-H",
            &server.ldap_url(),
            "-D",
            alice,
            "-w",
            "wrong-password",
        ],
    );
    assert_eq!(rc(&bad), 49, "{}", text(&bad));

    // Password Modify extended operation over ldaps (RFC 3062).
    let pw = server.tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &server.ldaps_url(),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            "-s",
            "New-Alice-Pw1",
            alice,
        ],
    );
    assert!(pw.status.success(), "{}", text(&pw));
    // A password change by LDAP modify of userPassword.
    let m = server.modify_as_admin(
        &server.ldaps_url(),
        &format!(
            "dn: {bob}\nchangetype: modify\nreplace: userPassword\nuserPassword: New-Bob-Pw1\n"
        ),
    );
    assert!(m.status.success(), "{}", text(&m));

    // seed: 1 bind + 6 adds; 2 binds; ldappasswd: bind + change; ldapmodify: bind + change
    let lines = audit_lines(&audit, 13);
    let raw = std::fs::read_to_string(&audit).unwrap();
    for secret in [
        "alice-Passw0rd",
        "bob-Passw0rd",
        "New-Alice-Pw1",
        "New-Bob-Pw1",
        "wrong-password",
        ADMIN_PW,
    ] {
        assert!(
            !raw.contains(secret),
            "a secret value reached the audit log: {secret}"
        );
    }
    for l in &lines {
        let t = l["time"].as_str().expect("time");
        chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("time {t}: {e}"));
        assert!(
            l["client"]
                .as_str()
                .expect("client")
                .starts_with("127.0.0.1:"),
            "{l}"
        );
        assert_eq!(l["protocol"], "ldap");
    }

    // The successful bind: mechanism, name as sent, resolved DN.
    let b = find(&lines, |l| {
        l["event"] == "bind" && l["bind_name"] == "alice@example.com"
    });
    assert_eq!(b["operation"], "bind");
    assert_eq!(b["mechanism"], "simple");
    assert_eq!(b["identity"], alice);
    assert_eq!(b["target"], alice);
    assert_eq!(b["result"]["code"], 0);
    assert_eq!(b["result"]["name"], "success");
    assert!(b.get("reason").is_none());

    // The failed bind: no identity, the reason.
    let f = find(&lines, |l| {
        l["event"] == "bind" && l["result"]["code"] == 49
    });
    assert_eq!(f["bind_name"], alice);
    assert_eq!(f["target"], alice);
    assert_eq!(f["identity"], "");
    assert_eq!(f["mechanism"], "simple");
    assert_eq!(f["result"]["name"], "invalidCredentials");
    assert!(
        f["reason"].as_str().expect("reason").contains("data 52e"),
        "{f}"
    );

    // The add: DN, attribute names, no values.
    let a = find(&lines, |l| l["event"] == "write" && l["target"] == alice);
    assert_eq!(a["operation"], "add");
    assert_eq!(a["identity"], ADMIN_DN);
    assert_eq!(a["result"]["code"], 0);
    let attrs: HashSet<String> = a["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|v| v.as_str().unwrap().to_ascii_lowercase())
        .collect();
    for name in [
        "objectclass",
        "cn",
        "sn",
        "samaccountname",
        "userpassword",
        "mail",
    ] {
        assert!(attrs.contains(name), "{name} missing from {a}");
    }

    // Password Modify: target alice, by the admin.
    let p = find(&lines, |l| {
        l["event"] == "password_change" && l["operation"] == "password_modify"
    });
    assert_eq!(p["target"], alice);
    assert_eq!(p["identity"], ADMIN_DN);
    assert_eq!(p["result"]["name"], "success");
    // LDAP modify of userPassword.
    let p = find(&lines, |l| {
        l["event"] == "password_change" && l["operation"] == "modify"
    });
    assert_eq!(p["target"], bob);
    assert_eq!(p["identity"], ADMIN_DN);
    assert_eq!(p["attributes"], serde_json::json!(["userPassword"]));
}

#[test]
fn failing_audit_sink_refuses_writes_when_fail_closed() {
    let server = TestServer::start_with(
        "[audit]\npath = \"{dir}/no/such/dir/audit.jsonl\"\nfail_closed = true\n\
         [metrics]\nlisten = [\"127.0.0.1:0\"]\n",
    );
    let add = server.modify_as_admin(
        &server.ldap_url(),
        "dn: ou=Refused,dc=example,dc=com\nchangetype: add\nobjectClass: organizationalUnit\nou: Refused\n",
    );
    assert_eq!(rc(&add), 53, "unwillingToPerform expected: {}", text(&add));
    // Reads and binds still work.
    let out = server.search_admin("dc=example,dc=com", "(ou=Refused)", &["ou"]);
    assert!(out.trim().is_empty(), "{out}");
    let (status, body) = http_get(server.metrics.expect("metrics addr"), "/metrics");
    assert_eq!(status, 200);
    assert!(metric(&body, "dird_audit_failures_total") >= 1.0, "{body}");
}

// ---------------------------------------------------------------------------------------
// metrics and health

#[test]
fn metrics_counters_move_and_health_is_ok() {
    let server = TestServer::start_with("[metrics]\nlisten = [\"127.0.0.1:0\"]\n");
    let addr = server
        .metrics
        .expect("the ready line names the metrics address");
    let (status, body) = http_get(addr, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let (_, before) = http_get(addr, "/metrics");
    let adds = "dird_ldap_operations_total{op=\"add\",code=\"success\"}";
    let binds = "dird_ldap_binds_total{outcome=\"success\"}";
    let failed = "dird_ldap_binds_total{outcome=\"invalid_credentials\"}";
    let objects = "dird_tier_objects";
    assert_eq!(metric(&before, adds), 0.0);
    assert_eq!(metric(&before, "dird_tier_objects_limit"), 500_000.0);
    assert!(metric(&before, "dird_store_size_bytes") > 0.0);
    let objects_before = metric(&before, objects);

    server.seed(SEED);
    let bad = server.tool(
        "ldapwhoami",
        &["-x", "-H", &server.ldap_url(), "-D", ADMIN_DN, "-w", "nope"],
    );
    assert_eq!(rc(&bad), 49);
    server.search_admin("dc=example,dc=com", "(uid=alice)", &["cn"]);

    // A connection held open shows in the gauge.
    let held = TcpStream::connect(server.ldap).unwrap();
    let (_, after) = wait_metrics(addr, |m| metric(m, "dird_ldap_connections") >= 1.0);
    drop(held);
    assert_eq!(metric(&after, adds), 6.0, "{after}");
    assert!(metric(&after, binds) >= metric(&before, binds) + 2.0);
    assert_eq!(metric(&after, failed), metric(&before, failed) + 1.0);
    assert!(
        metric(
            &after,
            "dird_ldap_operations_total{op=\"search\",code=\"success\"}"
        ) >= 1.0
    );
    assert_eq!(metric(&after, objects), objects_before + 6.0);
    assert!(
        metric(
            &after,
            "dird_ldap_operation_duration_seconds_count{op=\"add\"}"
        ) >= 6.0,
        "{after}"
    );
    let (status, _) = http_get(addr, "/nope");
    assert_eq!(status, 404);
}

// ---------------------------------------------------------------------------------------
// backup and restore

#[test]
fn online_backup_during_writes_restores_every_acknowledged_write() {
    let mut server = TestServer::start();
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..2)
        .map(|n| spawn_loader(server.ldap_url(), format!("bk{n}"), stop.clone()))
        .collect();
    wait_until(|| {
        server
            .search_admin("cn=Users,dc=example,dc=com", "(cn=bk1-*)", &["1.1"])
            .lines()
            .filter(|l| l.starts_with("dn:"))
            .count()
            >= 10
    });

    let out_file = server.dir.path().join("online.dirdbak");
    let started = Instant::now();
    let backup = server.cli(&["backup", "--out", out_file.to_str().unwrap()]);
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<(String, Instant)> = loaders
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(backup.status.success(), "{}", text(&backup));
    assert!(
        String::from_utf8_lossy(&backup.stdout).contains("online snapshot"),
        "{}",
        text(&backup)
    );
    assert!(
        String::from_utf8_lossy(&backup.stderr).contains("master key"),
        "the master-key reminder is printed"
    );
    let before: Vec<&String> = acked
        .iter()
        .filter(|(_, t)| *t < started)
        .map(|(dn, _)| dn)
        .collect();
    assert!(before.len() >= 10, "the load ran before the backup");
    // The daemon removed nothing it should not, and left no snapshot file behind.
    let leftovers: Vec<_> = std::fs::read_dir(server.data_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("snapshot-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The same file is never overwritten.
    let again = server.cli(&["backup", "--out", out_file.to_str().unwrap()]);
    assert!(!again.status.success());

    // Restore refuses while a daemon runs.
    let fresh = TestServer::configured("");
    let refused = server.cli(&["restore", out_file.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("running"),
        "{}",
        text(&refused)
    );

    // Restore into a fresh data directory, start, and find every acknowledged write.
    let restored = fresh.cli(&["restore", out_file.to_str().unwrap()]);
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(
        String::from_utf8_lossy(&restored.stderr).contains("WARNING: the backup has no master key"),
        "{}",
        text(&restored)
    );
    let again = fresh.cli(&["restore", out_file.to_str().unwrap()]);
    assert!(
        !again.status.success(),
        "refuses to overwrite without --force"
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--force"),
        "{}",
        text(&again)
    );
    let forced = fresh.cli(&["restore", "--force", out_file.to_str().unwrap()]);
    assert!(forced.status.success(), "{}", text(&forced));

    let mut fresh = fresh;
    fresh.launch();
    let found = fresh.search_admin(
        "cn=Users,dc=example,dc=com",
        "(|(cn=bk0-*)(cn=bk1-*))",
        &["description", "sn"],
    );
    let entries = parse_ldif(&found);
    for dn in &before {
        let e = entries
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(dn))
            .unwrap_or_else(|| panic!("{dn} acknowledged before the backup but missing"));
        // None is half-written: every restored entry has all its attributes.
        let cn = dn.trim_start_matches("cn=").split(',').next().unwrap();
        assert!(
            e.1.contains(&format!("description: payload of {cn}")),
            "{e:?}"
        );
        assert!(e.1.contains(&format!("sn: {cn}")), "{e:?}");
    }
    for (dn, attrs) in &entries {
        assert!(
            attrs
                .iter()
                .any(|a| a.starts_with("description: payload of")),
            "half-written {dn}: {attrs:?}"
        );
    }
    // The original instance still serves after the backup.
    server.restart();
    server.search_admin("dc=example,dc=com", "(cn=Administrator)", &["cn"]);
}

#[test]
fn restored_instance_answers_ldap_and_kinit_as_before() {
    let mut a = TestServer::start_kdc();
    a.seed(SEED);
    a.krb_ok(
        "krb5.conf",
        "cc.before",
        &["kinit", "alice"],
        "alice-Passw0rd\n",
    );
    let before = a.search_admin(
        "dc=example,dc=com",
        "(cn=alice)",
        &["entryUUID", "memberOf"],
    );
    // Online, through the running daemon, with the master key (the Kerberos keys are sealed
    // under it).
    let file = a.dir.path().join("online.dirdbak");
    let out = a.cli(&[
        "backup",
        "--include-master-key",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    a.stop();

    let mut b = TestServer::configured_kdc("");
    let r = b.cli(&["restore", file.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r));
    b.launch();
    assert_eq!(
        b.search_admin(
            "dc=example,dc=com",
            "(cn=alice)",
            &["entryUUID", "memberOf"]
        ),
        before,
        "LDAP answers exactly as before"
    );
    let list = b.krb_ok(
        "krb5.conf",
        "cc.after",
        &["kinit", "alice"],
        "alice-Passw0rd\n",
    );
    let _ = list;
    let klist = b.krb_ok("krb5.conf", "cc.after", &["klist"], "");
    assert!(klist.contains("alice@EXAMPLE.COM"), "{klist}");
    b.krb_fails(
        "krb5.conf",
        "cc.bad",
        &["kinit", "alice"],
        "wrong-password\n",
        "kinit",
    );
}

#[test]
fn offline_backup_with_master_key_and_scheduled_backups() {
    let mut server =
        TestServer::start_with("[backup]\ndir = \"{dir}/backups\"\ninterval_secs = 1\nkeep = 2\n");
    std::fs::write(
        server.data_dir().join("master.key"),
        b"0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    // Scheduled snapshots appear (one a second) and are pruned to `keep`.
    let backups = server.dir.path().join("backups");
    let mut seen = HashSet::new();
    wait_until(|| {
        seen.extend(list_backups(&backups));
        seen.len() >= 3
    });
    server.stop(); // waits for a snapshot in progress, so nothing is half-pruned
    let left = list_backups(&backups);
    assert!(left.len() <= 2 && !left.is_empty(), "{left:?}");

    let out_file = server.dir.path().join("offline.dirdbak");
    let out = server.cli(&[
        "backup",
        "--include-master-key",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("offline"),
        "{}",
        text(&out)
    );

    let mut fresh = TestServer::configured("");
    let r = fresh.cli(&["restore", out_file.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r));
    assert_eq!(
        std::fs::read(fresh.data_dir().join("master.key")).unwrap(),
        b"0123456789abcdef0123456789abcdef"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(fresh.data_dir().join("master.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    fresh.launch();
    fresh.search_admin("dc=example,dc=com", "(cn=Administrator)", &["cn"]);
    // A scheduled backup restores too.
    fresh.stop();
    let sched = list_backups(&backups).pop().unwrap();
    let r = fresh.cli(&["restore", "--force", sched.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r));
}

// ---------------------------------------------------------------------------------------
// lifecycle

#[test]
fn sigterm_during_writes_loses_no_acknowledged_write() {
    let mut server = TestServer::start();
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..3)
        .map(|n| spawn_loader(server.ldap_url(), format!("term{n}"), stop.clone()))
        .collect();
    wait_until(|| {
        server
            .search_admin("cn=Users,dc=example,dc=com", "(cn=term2-*)", &["1.1"])
            .lines()
            .filter(|l| l.starts_with("dn:"))
            .count()
            >= 10
    });
    // An idle connection open at SIGTERM gets a Notice of Disconnection (RFC 4511 §4.4.1).
    let mut idle = TcpStream::connect(server.ldap).unwrap();
    server.stop(); // SIGTERM; asserts a clean exit within 10 s
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut notice = Vec::new();
    let _ = idle.read_to_end(&mut notice);
    let notice_oid = b"1.3.6.1.4.1.1466.20036";
    assert!(
        notice.windows(notice_oid.len()).any(|w| w == notice_oid),
        "no Notice of Disconnection: {notice:02x?}"
    );
    let acked: Vec<(String, Instant)> = loaders
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(acked.len() >= 10);
    server.launch();
    let found = server.search_admin(
        "cn=Users,dc=example,dc=com",
        "(|(cn=term0-*)(cn=term1-*)(cn=term2-*))",
        &["1.1"],
    );
    let dns: HashSet<String> = found
        .lines()
        .filter_map(|l| l.strip_prefix("dn: "))
        .map(|d| d.to_ascii_lowercase())
        .collect();
    for (dn, _) in &acked {
        assert!(
            dns.contains(&dn.to_ascii_lowercase()),
            "{dn} was acknowledged but is gone after SIGTERM"
        );
    }
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_open_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca_a, cert_a, key_a) = make_ca_and_cert("Test CA A");
    let (ca_b, cert_b, key_b) = make_ca_and_cert("Test CA B");
    let ca_a_path = tmp.path().join("ca-a.pem");
    let ca_b_path = tmp.path().join("ca-b.pem");
    std::fs::write(&ca_a_path, &ca_a).unwrap();
    std::fs::write(&ca_b_path, &ca_b).unwrap();
    let cert = tmp.path().join("server.pem");
    let key = tmp.path().join("server.key");
    std::fs::write(&cert, &cert_a).unwrap();
    std::fs::write(&key, &key_a).unwrap();
    let server = TestServer::start_with(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n[audit]\npath = \"{{dir}}/audit.jsonl\"\n",
        cert.display(),
        key.display()
    ));
    let audit = server.dir.path().join("audit.jsonl");
    let whoami = |ca: &Path| {
        Command::new("ldapwhoami")
            .args([
                "-x",
                "-H",
                &server.ldaps_url(),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PW,
                "-o",
                "nettimeout=10",
            ])
            .env("LDAPTLS_CACERT", ca)
            .env("LDAPTLS_REQCERT", "demand")
            .env("LDAPCONF", "/dev/null")
            .output()
            .expect("ldapwhoami (install ldap-utils)")
    };
    assert!(whoami(&ca_a_path).status.success());
    assert!(!whoami(&ca_b_path).status.success());

    // A connection opened before the reload, trusting only CA A.
    let settings = ldap3::LdapConnSettings::new().set_config(Arc::new(client_config(&ca_a)));
    let mut old =
        ldap3::LdapConn::with_settings(settings, &server.ldaps_url()).expect("ldaps connect");
    old.simple_bind(ADMIN_DN, ADMIN_PW)
        .unwrap()
        .success()
        .unwrap();

    // Log rotation: move the audit file away; SIGHUP reopens it by path.
    audit_lines(&audit, 2);
    std::fs::rename(&audit, server.dir.path().join("audit.jsonl.1")).unwrap();

    // New certificate from another CA, then SIGHUP.
    std::fs::write(tmp.path().join("server.pem.new"), &cert_b).unwrap();
    std::fs::write(tmp.path().join("server.key.new"), &key_b).unwrap();
    std::fs::rename(tmp.path().join("server.key.new"), &key).unwrap();
    std::fs::rename(tmp.path().join("server.pem.new"), &cert).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let line = server.wait_stdout("dird reloaded", Duration::from_secs(20));
    assert_eq!(line, "dird reloaded tls=ok log=ok");

    // New connections see the new certificate (checked with two clients).
    let b = whoami(&ca_b_path);
    assert!(b.status.success(), "{}", text(&b));
    let fresh = audit_lines(&audit, 1);
    assert_eq!(
        fresh[0]["event"], "bind",
        "events after SIGHUP go to the new file"
    );
    assert!(
        !whoami(&ca_a_path).status.success(),
        "the old certificate is no longer served"
    );
    let s_client = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &server.ldaps.to_string(),
            "-showcerts",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl (install openssl)");
    let shown = String::from_utf8_lossy(&s_client.stdout);
    assert!(shown.contains("Test CA B"), "{shown}");

    // The connection opened before keeps working.
    let (rs, _) = old
        .search(
            "dc=example,dc=com",
            ldap3::Scope::Base,
            "(objectClass=*)",
            vec!["dc"],
        )
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(rs.len(), 1);
    let who = old
        .extended(ldap3::exop::WhoAmI)
        .unwrap()
        .success()
        .unwrap();
    drop(who);
    old.unbind().unwrap();
}

#[test]
fn sighup_with_a_broken_certificate_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert_pem, key_pem) = make_ca_and_cert("Test CA C");
    let ca_path = tmp.path().join("ca.pem");
    std::fs::write(&ca_path, &ca).unwrap();
    let cert = tmp.path().join("server.pem");
    let key = tmp.path().join("server.key");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, &key_pem).unwrap();
    let server = TestServer::start_with(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    std::fs::write(&cert, "not a certificate\n").unwrap();
    Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    let line = server.wait_stdout("dird reloaded", Duration::from_secs(20));
    assert_eq!(line, "dird reloaded tls=error log=ok");
    let out = Command::new("ldapwhoami")
        .args([
            "-x",
            "-H",
            &server.ldaps_url(),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
        ])
        .env("LDAPTLS_CACERT", &ca_path)
        .env("LDAPCONF", "/dev/null")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

// ---------------------------------------------------------------------------------------
// helpers

/// Adds `cn=<prefix>-<n>,cn=Users,…` entries until `stop`, returning the DNs whose add was
/// acknowledged and when. Stops at the first error (e.g. the server shutting down).
fn spawn_loader(
    url: String,
    prefix: String,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<(String, Instant)>> {
    std::thread::spawn(move || {
        let mut acked = Vec::new();
        let Ok(mut conn) = ldap3::LdapConn::new(&url) else {
            return acked;
        };
        if conn
            .simple_bind(ADMIN_DN, ADMIN_PW)
            .and_then(|r| r.success())
            .is_err()
        {
            return acked;
        }
        let mut n = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let cn = format!("{prefix}-{n}");
            let dn = format!("cn={cn},cn=Users,dc=example,dc=com");
            let desc = format!("payload of {cn}");
            let attrs = vec![
                ("objectClass", HashSet::from(["top", "person"])),
                ("cn", HashSet::from([cn.as_str()])),
                ("sn", HashSet::from([cn.as_str()])),
                ("description", HashSet::from([desc.as_str()])),
            ];
            match conn.add(&dn, attrs).and_then(|r| r.success()) {
                Ok(_) => acked.push((dn, Instant::now())),
                Err(_) => break,
            }
            n += 1;
        }
        acked
    })
}

/// Polls `cond` (a state the test cannot be notified of) for up to 60 s.
fn wait_until(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "condition not reached within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn audit_lines_for_kerberos_tickets() {
    let server = TestServer::start_kdc_with("[audit]\npath = \"{dir}/audit.jsonl\"\n");
    let audit = server.dir.path().join("audit.jsonl");
    server.seed(SEED);
    let ok = server.krb(
        "krb5.conf",
        "cc.alice",
        &["kinit", "alice"],
        "alice-Passw0rd\n",
    );
    assert!(ok.status.success(), "kinit: {}", text(&ok));
    let bad = server.krb("krb5.conf", "cc.bad", &["kinit", "bob"], "wrong-password\n");
    assert!(
        !bad.status.success(),
        "kinit with a wrong password succeeded"
    );
    let lines = audit_lines(&audit, 1);
    let wanted = |lines: &[Value]| {
        lines
            .iter()
            .any(|l| l["event"] == "ticket_issued" && l["identity"] == "alice@EXAMPLE.COM")
            && lines.iter().any(|l| {
                l["event"] == "ticket_refused"
                    && l["identity"] == "bob@EXAMPLE.COM"
                    && l["result"]["code"] == 24
            })
    };
    let mut lines = lines;
    for _ in 0..100 {
        if wanted(&lines) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        lines = audit_lines(&audit, 1);
    }
    let issued = find(&lines, |l| {
        l["event"] == "ticket_issued" && l["identity"] == "alice@EXAMPLE.COM"
    });
    assert_eq!(issued["protocol"], "kerberos");
    assert_eq!(issued["operation"], "AS");
    assert_eq!(issued["target"], "krbtgt/EXAMPLE.COM");
    assert_eq!(issued["result"]["code"], 0);
    assert!(
        issued["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("127.0.0.1:")),
        "{issued}"
    );
    assert!(
        issued["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{issued}"
    );
    let refused = find(&lines, |l| {
        l["event"] == "ticket_refused" && l["identity"] == "bob@EXAMPLE.COM"
    });
    assert_eq!(
        refused["result"]["code"], 24,
        "PREAUTH_FAILED expected: {refused}"
    );
    assert!(
        refused["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{refused}"
    );
}

/// Waits for at least `n` lines in the audit file (the writer is asynchronous).
fn audit_lines(path: &Path, n: usize) -> Vec<Value> {
    wait_until(|| std::fs::read_to_string(path).is_ok_and(|s| s.lines().count() >= n));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn find(lines: &[Value], pred: impl Fn(&Value) -> bool) -> &Value {
    lines.iter().find(|l| pred(l)).unwrap_or_else(|| {
        panic!(
            "no matching audit line in:\n{}",
            lines
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// A GET over a fresh HTTP/1.1 connection: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
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
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, body.to_string())
}

fn wait_metrics(addr: SocketAddr, cond: impl Fn(&str) -> bool) -> (u16, String) {
    let mut last = (0, String::new());
    wait_until(|| {
        last = http_get(addr, "/metrics");
        cond(&last.1)
    });
    last
}

/// The value of a sample (`name{labels}` exactly as exposed), 0 when absent.
fn metric(text: &str, key: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().expect("number"))
        .unwrap_or(0.0)
}

fn parse_ldif(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines().filter(|l| !l.is_empty());
        let Some(first) = lines.next() else { continue };
        let Some(dn) = first.strip_prefix("dn: ") else {
            continue;
        };
        out.push((dn.to_string(), lines.map(str::to_string).collect()));
    }
    out
}

fn list_backups(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "dirdbak"))
                .collect()
        })
        .unwrap_or_default()
}

/// A CA and a server certificate for 127.0.0.1/localhost signed by it: (ca, cert, key) PEM.
fn make_ca_and_cert(ca_name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn client_config(ca_pem: &str) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}
