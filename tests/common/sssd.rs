//! The sssd harness shared by tests/sssd.rs and tests/cluster.rs: a real sssd (`sssd -i`,
//! no systemd) started on a private sssd.conf in a temp dir. sssd's sockets and caches live
//! at fixed paths, so only one sssd may run per machine: every sssd test of a binary holds
//! `SSSD_LOCK`, and `Sssd::start` waits for any other sssd (another test binary) to finish.
//! Needs root and sssd-ldap sssd-tools libnss-sss libpam-sss pamtester ldap-utils.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Only one sssd per machine.
pub static SSSD_LOCK: Mutex<()> = Mutex::new(());

/// PAM service `require_tools` writes (auth/account/password/session through pam_sss).
pub const PAM_SERVICE: &str = "dird-sssd-test";
/// The sssd domain name used by the deploy files.
pub const DOMAIN: &str = "example.com";

/// A running sssd; stopped by PID (TERM to the monitor stops its children) on drop.
pub struct Sssd {
    pub child: Option<Child>,
    pub conf_dir: tempfile::TempDir,
}

pub const PIPES: &str = "/var/lib/sss/pipes";

pub fn require_tools() {
    for (path, pkg) in [
        ("/usr/sbin/sssd", "sssd-ldap (sssd)"),
        ("/usr/sbin/sss_cache", "sssd-tools"),
        ("/usr/bin/pamtester", "pamtester"),
        ("/usr/bin/ldapwhoami", "ldap-utils"),
    ] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: install {pkg} (scripts/test-all.sh installs the sssd test packages)"
        );
    }
    let pam_sss = [
        "/usr/lib/x86_64-linux-gnu/security/pam_sss.so",
        "/usr/lib/aarch64-linux-gnu/security/pam_sss.so",
        "/lib/x86_64-linux-gnu/security/pam_sss.so",
        "/usr/lib/security/pam_sss.so",
    ];
    assert!(
        pam_sss.iter().any(|p| Path::new(p).exists()),
        "pam_sss.so is missing: install libpam-sss"
    );
    let ldap_provider = [
        "/usr/lib/x86_64-linux-gnu/sssd/libsss_ldap.so",
        "/usr/lib/aarch64-linux-gnu/sssd/libsss_ldap.so",
    ];
    assert!(
        ldap_provider.iter().any(|p| Path::new(p).exists()),
        "sssd's LDAP provider is missing: install sssd-ldap"
    );
    let nss = std::fs::read_to_string("/etc/nsswitch.conf").expect("read /etc/nsswitch.conf");
    for db in ["passwd", "group"] {
        let ok = nss.lines().any(|l| {
            l.trim_start().starts_with(&format!("{db}:"))
                && l.split_whitespace().any(|w| w == "sss")
        });
        assert!(
            ok,
            "/etc/nsswitch.conf has no `sss` source for {db} (libnss-sss's postinst adds it; reinstall libnss-sss)"
        );
    }
    std::fs::write(
        format!("/etc/pam.d/{PAM_SERVICE}"),
        "auth required pam_sss.so\naccount required pam_sss.so\npassword required pam_sss.so\nsession optional pam_sss.so\n",
    )
    .expect("write the PAM service file (the sssd tests run as root)");
}

/// Every running sssd process (monitor or responder/backend): (pid, command line).
pub fn running_sssd() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(exe) = std::fs::read_link(e.path().join("exe")) {
                let exe = exe.to_string_lossy().into_owned();
                if exe == "/usr/sbin/sssd" || exe.starts_with("/usr/libexec/sssd/") {
                    let cmd = std::fs::read(e.path().join("cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                        .unwrap_or_default();
                    out.push((pid, cmd));
                }
            }
        }
    }
    out
}

/// The processes below `root` (sssd's monitor forks sssd_be, sssd_nss, sssd_pam, …).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            if let Some(ppid) = status
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .and_then(|v| v.trim().parse().ok())
            {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (pid, ppid) in &parent_of {
            if *ppid == p && !out.contains(pid) {
                out.push(*pid);
                frontier.push(*pid);
            }
        }
    }
    out
}

pub fn alive(pid: u32) -> bool {
    // A zombie has no exe link; it is gone for our purposes.
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok()
}

/// Removes sssd's caches and the sockets it leaves behind (stale sockets would make the
/// readiness wait pass before the new sssd listens).
pub fn clean_sssd_state() {
    for dir in ["/var/lib/sss/db", "/var/lib/sss/mc", "/var/log/sssd"] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.path().is_file() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    for p in [format!("{PIPES}/nss"), format!("{PIPES}/pam")] {
        let _ = std::fs::remove_file(p);
    }
    if let Ok(rd) = std::fs::read_dir(format!("{PIPES}/private")) {
        for e in rd.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// `deploy` with `overrides` (section, key, value) applied: a key is replaced in its section,
/// or appended at the end of the section.
pub fn edit_conf(deploy: &str, overrides: &[(&str, &str, String)]) -> String {
    let mut sections: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
    for line in deploy.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            sections.push((t[1..t.len() - 1].to_string(), vec![line.to_string()]));
        } else if let Some(last) = sections.last_mut() {
            last.1.push(line.to_string());
        }
    }
    for (section, key, value) in overrides {
        let Some(sec) = sections.iter_mut().find(|(name, _)| {
            name == section || (*section == "domain" && name.starts_with("domain/"))
        }) else {
            panic!("deploy file has no [{section}] section");
        };
        let new = format!("{key} = {value}");
        match sec.1.iter_mut().find(|l| {
            l.split_once('=')
                .is_some_and(|(k, _)| k.trim() == *key && !l.trim_start().starts_with('#'))
        }) {
            Some(l) => *l = new,
            None => sec.1.push(new),
        }
    }
    let mut out = String::new();
    for (_, lines) in sections {
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

impl Sssd {
    pub fn start(conf: &str) -> Sssd {
        // Another sssd (a lab script, another checkout's tests) may be finishing: give it a
        // while, then fail with what it is.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let others = running_sssd();
            if others.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "another sssd is running: {others:?}; sssd allows one instance per machine: stop it first"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        clean_sssd_state();
        let conf_dir = tempfile::tempdir().expect("tempdir");
        let path = conf_dir.path().join("sssd.conf");
        std::fs::write(&path, conf).expect("write sssd.conf");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
        let out = std::fs::File::create(conf_dir.path().join("sssd.out")).expect("sssd.out");
        let child = Command::new("/usr/sbin/sssd")
            .args(["-i", "--logger=files", "-c"])
            .arg(&path)
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run /usr/sbin/sssd ({e}): install sssd-ldap"));
        let mut s = Sssd {
            child: Some(child),
            conf_dir,
        };
        // Ready: the NSS and PAM responder sockets and the domain's data provider bus exist.
        let ready = [
            PathBuf::from(format!("{PIPES}/nss")),
            PathBuf::from(format!("{PIPES}/pam")),
            PathBuf::from(format!("{PIPES}/private/sbus-dp_{DOMAIN}")),
        ];
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ready.iter().all(|p| p.exists()) {
                break;
            }
            if let Some(status) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "sssd exited ({status}) before it was ready:\n{}",
                    s.diagnostics()
                );
            }
            assert!(
                Instant::now() < deadline,
                "sssd did not come up within 30 s (sockets {ready:?}):\n{}",
                s.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// sssd's own output and the tail of the domain log, for failure messages.
    pub fn diagnostics(&self) -> String {
        let out =
            std::fs::read_to_string(self.conf_dir.path().join("sssd.out")).unwrap_or_default();
        let log =
            std::fs::read_to_string(format!("/var/log/sssd/sssd_{DOMAIN}.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let conf =
            std::fs::read_to_string(self.conf_dir.path().join("sssd.conf")).unwrap_or_default();
        format!(
            "sssd.conf:\n{conf}\nsssd output:\n{out}\n--- sssd_{DOMAIN}.log (last 60 lines, newest first) ---\n{}",
            tail.join("\n")
        )
    }

    /// The domain log (debug_level 7 shows every filter sssd sends).
    pub fn domain_log(&self) -> String {
        std::fs::read_to_string(format!("/var/log/sssd/sssd_{DOMAIN}.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let below = descendants(child.id());
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // The monitor stops its children on TERM; wait for them, then kill stragglers
            // (by PID: they are this test's processes).
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && below.iter().any(|p| alive(*p)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            for p in below.iter().filter(|p| alive(**p)) {
                let _ = Command::new("kill")
                    .args(["-KILL", &p.to_string()])
                    .status();
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && below.iter().any(|p| alive(*p)) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        clean_sssd_state();
    }
}

impl Drop for Sssd {
    fn drop(&mut self) {
        self.stop();
    }
}
