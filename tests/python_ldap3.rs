#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Second, independent client library: python3-ldap3 (Debian package) drives the main flows
//! in `tests/interop/ldap3_flows.py` (bind, search, paged search, add, modify, delete,
//! StartTLS, WhoAmI, Password Modify). The script exits non-zero on any failure.

mod common;

use std::process::Command;

use common::*;

#[test]
fn python_ldap3_main_flows() {
    let s = TestServer::start_seeded();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ldap3_flows.py");
    let py = python3();
    let out = match Command::new(&py)
        .arg(&script)
        .arg(s.ldap.to_string())
        .arg(s.ldaps.to_string())
        .arg(s.ca())
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("{py} could not be run ({e}): install python3 and python3-ldap3"),
    };
    println!("{}", text(&out));
    assert!(
        out.status.success(),
        "ldap3_flows.py failed:\n{}",
        text(&out)
    );
    let o = stdout(&out);
    assert!(o.contains("all flows passed"), "{o}");
    assert!(!o.contains("FAIL"), "{o}");
    assert!(
        o.lines().filter(|l| l.starts_with("ok ")).count() >= 40,
        "{o}"
    );
}
