//! Issue 9 item 8: files at rest are the owner's only, whatever the umask, and the generated
//! CA's private key is not kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn files_are_private_under_umask_000() {
    let mut s = TestServer::configured_kdc(
        "[backup]\ndir = \"{dir}/backups\"\ninterval_secs = 1\nkeep = 2\n",
    );
    s.set_umask(0o000);
    s.launch();
    let data = s.data_dir();
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&data.join("dird.redb")), 0o600, "database");
    assert_eq!(mode(&data.join("master.key")), 0o600, "master key");
    assert_eq!(mode(&data.join("tls")), 0o700, "tls dir");
    assert_eq!(mode(&data.join("tls/server.key")), 0o600, "tls key");
    assert!(
        data.join("tls/ca.pem").exists(),
        "ca.pem is kept for clients"
    );
    assert!(
        !data.join("tls/ca.key").exists(),
        "the generated CA's private key must not be kept"
    );
    // The certificate still works for clients (the CA signed it before its key was dropped).
    let out = s.whoami(&["-x", "-H", &s.ldaps_url(), "-D", ADMIN_DN, "-w", ADMIN_PW]);
    assert_eq!(rc(&out), 0, "{}", text(&out));

    // An online backup through the running daemon.
    let backup = s.path("online.dirdbak");
    let out = s.cli(&["backup", "--out", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(mode(&backup), 0o600, "backup file");
    // A scheduled snapshot (every second here) lands in a private directory.
    let dir = s.path("backups");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let snap = loop {
        let found = std::fs::read_dir(&dir).ok().and_then(|d| {
            d.flatten().map(|e| e.path()).find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("dird-"))
            })
        });
        if let Some(p) = found {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled backup in 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(mode(&dir), 0o700, "backup dir");
    assert_eq!(mode(&snap), 0o600, "scheduled backup");
    s.stop();

    // Offline: export to a file and a keytab.
    let export = s.path("export.ldif");
    let out = s.cli(&["export", "--out", export.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(mode(&export), 0o600, "export file");
    let keytab = s.path("client.keytab");
    let out = s.cli(&[
        "keytab",
        "--principal",
        "host/client.example.com",
        "--out",
        keytab.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(mode(&keytab), 0o600, "keytab");

    // Loose modes left by an older version or an operator are tightened at start, and a
    // CA key an older dird kept is removed.
    for (p, m) in [
        (data.clone(), 0o755),
        (data.join("dird.redb"), 0o644),
        (data.join("tls/server.key"), 0o644),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    std::fs::write(data.join("tls/ca.key"), b"old key").unwrap();
    s.launch();
    assert_eq!(mode(&data), 0o700, "data dir tightened");
    assert_eq!(mode(&data.join("dird.redb")), 0o600, "database tightened");
    assert_eq!(
        mode(&data.join("tls/server.key")),
        0o600,
        "tls key tightened"
    );
    assert!(!data.join("tls/ca.key").exists(), "old CA key removed");
    s.stop();
}
