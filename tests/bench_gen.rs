//! Keeps the benchmark tool from rotting: `dird-bench gen` output imports with `dird import`,
//! and a generated user can bind and be found by the equality search the load driver uses.
//! (The benchmark itself is not a test; see BENCHMARKS.md.)

#![allow(clippy::expect_used)]

mod common;

use std::process::Command;

use common::{text, TestServer, BASE};

#[test]
fn generated_ldif_imports_and_serves() {
    let mut srv = TestServer::start();
    srv.stop();
    let ldif = srv.dir.path().join("bench.ldif");
    let out = Command::new(env!("CARGO_BIN_EXE_dird-bench"))
        .args([
            "gen",
            "--users",
            "10",
            "--groups",
            "2",
            "--members",
            "5",
            "--out",
        ])
        .arg(&ldif)
        .output()
        .expect("run dird-bench");
    assert!(
        out.status.success(),
        "dird-bench gen failed: {}",
        text(&out)
    );

    let ldif_path = ldif.to_str().expect("utf-8 path");
    let out = srv.cli(&["import", ldif_path]);
    assert!(out.status.success(), "dird import failed: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 14 entries"),
        "{}",
        text(&out)
    );

    srv.restart();
    let found = srv.search_admin(BASE, "(uid=user7)", &["uidNumber", "memberOf"]);
    assert!(
        found.contains("dn: cn=user7,ou=People,dc=example,dc=com"),
        "{found}"
    );
    assert!(found.contains("uidNumber: 100007"), "{found}");
    // Group 2 holds users 6..=10 (round-robin, 5 members per group).
    assert!(
        found.contains("memberOf: cn=group2,ou=Groups,dc=example,dc=com"),
        "{found}"
    );

    let url = srv.ldap_url();
    let who = srv.tool(
        "ldapwhoami",
        &[
            "-x",
            "-H",
            &url,
            "-D",
            "cn=user7,ou=People,dc=example,dc=com",
            "-w",
            "Bench-Passw0rd!",
        ],
    );
    assert!(who.status.success(), "bind as user7: {}", text(&who));
}
