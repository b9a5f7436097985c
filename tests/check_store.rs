#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `dird check-store` end to end (issue 15 item 2): a directory written by real LDAP clients
//! checks clean (exit 0, text and `--json`); the wrong master.key makes the sealed-keys check
//! fail with exit status 1 and a remedy; a running daemon checks its live store through the admin socket.
//! Each corruption the checker detects is exercised by the unit tests in `store::check` and
//! `backend::check`, which write damaged tables directly.

mod common;

use common::*;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

fn check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {v}"))
}

#[test]
fn a_directory_written_over_ldap_checks_clean_and_a_wrong_master_key_fails() {
    let mut s = TestServer::start_kdc();
    s.seed(SEED);
    // A rename, a delete and a group change, so links and the parent index have moved.
    let out = s.modify_as_admin(
        &s.ldap_url(),
        "dn: cn=bob,ou=People,dc=example,dc=com\nchangetype: modrdn\nnewrdn: cn=robert\n\
         deleteoldrdn: 1\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    s.stop();

    let out = s.cli(&["check-store"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = stdout(&out);
    for name in [
        "index", "dn", "children", "links", "counters", "unique", "keys", "entries",
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("ok") && l.contains(name)),
            "{name} not ok:\n{report}"
        );
    }
    assert!(report.contains("0 errors, 0 warnings"), "{report}");

    let out = s.cli(&["check-store", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["entries"].as_u64().unwrap() > 10, "{v}");
    assert_eq!(check(&v, "keys")["warnings"], 0, "keys were checked: {v}");

    // Another master key: every sealed blob (krbtgt, Administrator, alice, …) fails to open.
    let key = s.data_dir().join("master.key");
    let original = std::fs::read(&key).unwrap();
    std::fs::write(&key, [7u8; 32]).unwrap();
    let out = s.cli(&["check-store"]);
    assert_eq!(rc(&out), 1, "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("FAIL"), "{all}");
    assert!(
        all.contains("does not decrypt under the master key"),
        "{all}"
    );
    assert!(
        all.contains("what to do: if every account fails, master.key is not the one"),
        "{all}"
    );
    assert!(all.contains("krbtgt"), "{all}");
    let out = s.cli(&["check-store", "--json"]);
    assert_eq!(rc(&out), 1, "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert!(check(&v, "keys")["errors"].as_u64().unwrap() >= 3, "{v}");
    assert_eq!(check(&v, "index")["errors"], 0, "{v}");

    std::fs::write(&key, &original).unwrap();
    let out = s.cli(&["check-store"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_running_daemon_checks_its_live_store_through_the_admin_socket() {
    let s = TestServer::start_seeded();
    let out = s.cli(&["check-store"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("(online)"), "{}", text(&out));
    let out = s.cli(&["check-store", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json report");
    assert_eq!(v["ok"], true, "{v}");
    // Repairs rewrite indexes: only offline.
    let out = s.cli(&["check-store", "--repair"]);
    assert_eq!(rc(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("stop the running dird"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_missing_database_is_an_error() {
    let s = TestServer::configured("");
    let out = s.cli(&["check-store"]);
    assert_eq!(rc(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("no database at"), "{}", text(&out));
    assert!(
        !s.data_dir().join("dird.redb").exists(),
        "check-store created a database"
    );
}
