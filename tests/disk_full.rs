#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A full disk (issue 15 §2): dird's data directory on a small tmpfs, filled up while the
//! daemon runs. Writes must be refused with a clear error (unwillingToPerform naming the full
//! data directory), reads must keep working, writes must work again by themselves once space
//! is freed (redb poisons an open database after an I/O error; dird re-opens it), the daemon
//! must stop promptly on SIGTERM, and `dird check-store` must find the directory clean.
//!
//! Needs root (`mount -t tmpfs`), as the test machine and CI run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Unmounts the tmpfs when the test ends, however it ends (after the daemon is gone).
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).expect("mkdir data");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("mount(8) must be installed (util-linux)");
        assert!(
            out.status.success(),
            "mount -t tmpfs failed (this test needs root): {}",
            text(&out)
        );
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` with one file until `write` fails with ENOSPC.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("create filler");
    let block = vec![0x5au8; 64 * 1024];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the tmpfs: {e}"),
        }
    }
    // the last partial blocks
    let small = [0x5au8; 512];
    while let Ok(n) = f.write(&small) {
        if n == 0 {
            break;
        }
    }
    let _ = f.sync_all();
    path
}

fn user(cn: &str) -> String {
    // a large description so the write needs fresh pages in the database file
    let desc = "x".repeat(3000);
    format!(
        "dn: cn={cn},{PEOPLE}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\ncn: {cn}\nsn: Full\nsAMAccountName: {cn}\ndescription: {desc}\n\n"
    )
}

fn add(s: &TestServer, ldif: &str) -> std::process::Output {
    s.tool_stdin(
        "ldapadd",
        &[
            "-x",
            "-H",
            &s.ldap_url(),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            "-o",
            "nettimeout=20",
        ],
        Some(ldif),
    )
}

#[test]
fn a_full_data_directory_refuses_writes_serves_reads_and_recovers() {
    let mut s = TestServer::configured("");
    let data = s.data_dir();
    let mount = Mount::tmpfs(&data, "24m");
    s.launch();
    s.seed(SEED);

    // Fill the disk, then write until the database needs a page it cannot get.
    let filler = fill(&data);
    let mut refused = None;
    for i in 0..200 {
        let out = add(&s, &user(&format!("full{i}")));
        if rc(&out) != 0 {
            refused = Some(out);
            break;
        }
    }
    let out = refused.expect("200 adds of 3 kB each all succeeded on a full 24 MiB tmpfs");
    assert_eq!(
        rc(&out),
        53,
        "a write on a full disk must be refused with unwillingToPerform (53): {}",
        text(&out)
    );
    assert!(
        text(&out).contains("data directory is full"),
        "the refusal must name the full data directory: {}",
        text(&out)
    );

    // Still full: further writes are refused the same way, reads and binds keep working.
    for i in 0..3 {
        let out = add(&s, &user(&format!("again{i}")));
        assert_eq!(rc(&out), 53, "write {i} while full: {}", text(&out));
        assert!(
            text(&out).contains("data directory is full"),
            "{}",
            text(&out)
        );
        let found = s.search_admin(PEOPLE, "(cn=alice)", &["cn"]);
        assert!(found.contains("dn: cn=alice,"), "read while full: {found}");
        let out = s.whoami(&["-H", &s.ldap_url(), "-D", BOB_DN, "-w", BOB_PW]);
        assert_eq!(rc(&out), 0, "bind while full: {}", text(&out));
    }

    // Space returns: writes work again without a restart.
    std::fs::remove_file(&filler).expect("remove filler");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    loop {
        let out = add(&s, &user(&format!("after{n}")));
        if rc(&out) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not recover within 20 s of space returning: {}",
            text(&out)
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = s.modify_as_admin(
        &s.ldap_url(),
        &format!("dn: {ALICE_DN}\nchangetype: modify\nreplace: description\ndescription: after the full disk\n"),
    );
    assert_eq!(rc(&out), 0, "modify after recovery: {}", text(&out));
    let found = s.search_admin(PEOPLE, &format!("(cn=after{n})"), &["cn"]);
    assert!(found.contains(&format!("cn: after{n}")), "{found}");

    // SIGTERM is prompt (the harness allows 10 s), and the directory is clean.
    let t = Instant::now();
    s.stop();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
    eprintln!("disk_full: SIGTERM to exit took {:?}", t.elapsed());
    let out = s.cli(&["check-store", "--json"]);
    assert_eq!(
        rc(&out),
        0,
        "check-store after the full disk: {}",
        text(&out)
    );

    // A restart sees every acknowledged write.
    s.launch();
    let found = s.search_admin(ALICE_DN, "(objectClass=*)", &["description"]);
    assert!(found.contains("after the full disk"), "{found}");
    s.stop();
    drop(mount);
}
