//! sssd end to end (issue 3): a real sssd (`sssd -i`, no systemd) against a dird started by
//! the test, for `ldap_schema` = rfc2307, rfc2307bis and ad (with `ldap_id_mapping`), over
//! LDAPS and over StartTLS. sssd's sockets and caches live at fixed paths, so only one sssd
//! may run per machine: every sssd test holds `SSSD_LOCK`. The sssd.conf of each test is the
//! shipped `deploy/sssd-<schema>.conf` with only the site values (URI, CA, service password)
//! and the test's timing knobs replaced, so these tests also prove the deploy files.
//! The `krb5_auth_provider_*` tests authenticate through dird's KDC instead (issue 4).
//! Needs (scripts/test-all.sh installs them): sssd-ldap sssd-krb5 libnss-sss libpam-sss
//! sssd-tools pamtester ldap-utils; runs as root (sssd, /etc/pam.d).

#![allow(clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use common::sssd::{edit_conf, require_tools, Sssd, DOMAIN, PAM_SERVICE, SSSD_LOCK};
use common::{rc, text, TestServer, ADMIN_DN, ADMIN_PW, BASE};

/// Password of the sssd service account `cn=sssd,cn=Users,…` (as in the deploy files).
const SSSD_PW: &str = "Sssd-Bind-Passw0rd";
const ALICE_DN: &str = "cn=alice,ou=People,dc=example,dc=com";
const ALICE_PW: &str = "alice-Passw0rd";
const BOB_PW: &str = "bob-Passw0rd";
const CAROL_PW: &str = "carol-Passw0rd";

/// Users: alice (primary group devs), bob (primary group devs, member of ops), carol
/// (disabled). Groups: devs ∋ {alice, ops}, ops ∋ {bob}, leads ∋ {devs}: so with nesting
/// alice is in devs and leads, bob in ops, devs and leads.
const SEED: &str = r#"dn: cn=sssd,cn=Users,dc=example,dc=com
objectClass: top
objectClass: user
cn: sssd
sAMAccountName: sssd
description: service account sssd binds with
userPassword: Sssd-Bind-Passw0rd

dn: ou=People,dc=example,dc=com
objectClass: top
objectClass: organizationalUnit
ou: People

dn: cn=alice,ou=People,dc=example,dc=com
objectClass: top
objectClass: user
objectClass: posixAccount
cn: alice
sn: Liddell
uid: alice
gecos: Alice Liddell
uidNumber: 10001
gidNumber: 20001
homeDirectory: /home/alice
unixHomeDirectory: /home/alice
loginShell: /bin/bash
userAccountControl: 512
userPassword: alice-Passw0rd

dn: cn=bob,ou=People,dc=example,dc=com
objectClass: top
objectClass: user
objectClass: posixAccount
cn: bob
uid: bob
gecos: Bob Builder
uidNumber: 10002
gidNumber: 20001
homeDirectory: /home/bob
unixHomeDirectory: /home/bob
loginShell: /bin/sh
userAccountControl: 512
userPassword: bob-Passw0rd

dn: cn=carol,ou=People,dc=example,dc=com
objectClass: top
objectClass: user
objectClass: posixAccount
cn: carol
uid: carol
uidNumber: 10003
gidNumber: 20001
homeDirectory: /home/carol
unixHomeDirectory: /home/carol
loginShell: /bin/bash
userAccountControl: 514
userPassword: carol-Passw0rd

dn: cn=ops,ou=People,dc=example,dc=com
objectClass: top
objectClass: group
objectClass: posixGroup
cn: ops
gidNumber: 20002
member: cn=bob,ou=People,dc=example,dc=com

dn: cn=devs,ou=People,dc=example,dc=com
objectClass: top
objectClass: group
objectClass: posixGroup
cn: devs
gidNumber: 20001
member: cn=alice,ou=People,dc=example,dc=com
member: cn=ops,ou=People,dc=example,dc=com

dn: cn=leads,ou=People,dc=example,dc=com
objectClass: top
objectClass: group
objectClass: posixGroup
cn: leads
gidNumber: 20003
member: cn=devs,ou=People,dc=example,dc=com
"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Schema {
    Rfc2307,
    Rfc2307bis,
    Ad,
}

impl Schema {
    fn deploy_file(self) -> PathBuf {
        let name = match self {
            Schema::Rfc2307 => "sssd-rfc2307.conf",
            Schema::Rfc2307bis => "sssd-rfc2307bis.conf",
            Schema::Ad => "sssd-ad.conf",
        };
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy")
            .join(name)
    }

    /// Whether the schema resolves nested groups.
    fn nests(self) -> bool {
        self != Schema::Rfc2307
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Ldaps,
    StartTls,
}

// ---------------------------------------------------------------------------------------
// the lab: dird + sssd

struct Lab {
    sssd: Sssd,
    server: TestServer,
    _guard: MutexGuard<'static, ()>,
}

#[derive(Default)]
struct Options {
    /// extra `[ldap]`/other TOML for dird
    dird_extra: &'static str,
    /// LDIF imported with `dird import` before the server starts (bulk data)
    import: Option<String>,
    /// more sssd.conf overrides
    sssd: Vec<(&'static str, &'static str, String)>,
    /// Run dird's KDC and authenticate through it: `auth_provider = krb5` against dird's KDC,
    /// `krb5_validate = true` with a keytab for this principal exported by `dird keytab`.
    krb5_host: Option<String>,
}

fn lab(schema: Schema, transport: Transport, opts: Options) -> Lab {
    let guard = SSSD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    require_tools();
    let mut server = match opts.krb5_host {
        Some(_) => TestServer::prepare_kdc(opts.dird_extra),
        None => TestServer::prepare(opts.dird_extra),
    };
    if let Some(ldif) = &opts.import {
        let path = server.dir.path().join("bulk.ldif");
        std::fs::write(&path, ldif).expect("write bulk LDIF");
        let out = server.cli(&["import", path.to_str().expect("utf-8 path")]);
        assert!(out.status.success(), "dird import failed: {}", text(&out));
    }
    // `dird keytab` writes to the store: before the daemon starts.
    let keytab = opts.krb5_host.as_ref().map(|principal| {
        let path = server.path("host.keytab");
        let out = server.cli(&[
            "keytab",
            "--principal",
            principal,
            "--out",
            path.to_str().expect("utf-8 path"),
        ]);
        assert!(out.status.success(), "dird keytab failed: {}", text(&out));
        path
    });
    server.launch();
    server.seed(SEED);
    let uri = match transport {
        Transport::Ldaps => server.ldaps_url(),
        Transport::StartTls => server.ldap_url(),
    };
    let mut overrides: Vec<(&str, &str, String)> = vec![
        ("domain", "ldap_uri", uri),
        (
            "domain",
            "ldap_tls_cacert",
            server.ca().display().to_string(),
        ),
        ("domain", "ldap_default_authtok", SSSD_PW.to_string()),
        ("domain", "debug_level", "7".into()),
        ("domain", "ldap_network_timeout", "3".into()),
        ("domain", "ldap_opt_timeout", "10".into()),
        ("domain", "cache_credentials", "false".into()),
        ("domain", "entry_cache_timeout", "5".into()),
        // the memory cache would answer getent from stale copies
        ("nss", "memcache_timeout", "0".into()),
    ];
    if transport == Transport::StartTls {
        overrides.push(("domain", "ldap_id_use_start_tls", "true".into()));
    }
    if let Some(keytab) = keytab {
        let kdc = server.kdc.expect("dird started with [kdc] reports kdc=");
        // krb5_child stores each user's TGT, as that user: in a sticky world-writable
        // directory inside the test's temp dir, so the ccaches go with it.
        let ccaches = server.path("ccaches");
        std::fs::create_dir_all(&ccaches).expect("create the ccache directory");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ccaches, std::fs::Permissions::from_mode(0o1777))
            .expect("chmod 1777 the ccache directory");
        // The temp dir itself must be searchable by the users.
        std::fs::set_permissions(server.dir.path(), std::fs::Permissions::from_mode(0o711))
            .expect("chmod 711 the temp dir");
        overrides.extend([
            ("domain", "auth_provider", "krb5".to_string()),
            ("domain", "krb5_server", kdc.to_string()),
            ("domain", "krb5_realm", common::REALM.to_string()),
            ("domain", "krb5_validate", "true".into()),
            ("domain", "krb5_keytab", keytab.display().to_string()),
            ("domain", "krb5_ccachedir", ccaches.display().to_string()),
            (
                "domain",
                "krb5_ccname_template",
                format!("FILE:{}/krb5cc_%U_XXXXXX", ccaches.display()),
            ),
            // No kpasswd here: passwords are not changed through this test's sssd.
            ("domain", "chpass_provider", "none".into()),
        ]);
    }
    overrides.extend(opts.sssd);
    let deploy = std::fs::read_to_string(schema.deploy_file()).expect("read deploy sssd.conf");
    let sssd = Sssd::start(&edit_conf(&deploy, &overrides));
    Lab {
        sssd,
        server,
        _guard: guard,
    }
}

impl Lab {
    fn fail(&self, what: &str, out: &Output) -> String {
        format!("{what}: {}\n{}", text(out), self.sssd.diagnostics())
    }

    fn getent(&self, args: &[&str]) -> Output {
        Command::new("getent")
            .args(args)
            .output()
            .expect("run getent")
    }

    fn getent_ok(&self, args: &[&str]) -> String {
        let out = self.getent(args);
        assert!(
            out.status.success(),
            "{}",
            self.fail(&format!("getent {args:?}"), &out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn id(&self, user: &str) -> String {
        let out = Command::new("id").arg(user).output().expect("run id");
        assert!(
            out.status.success(),
            "{}",
            self.fail(&format!("id {user}"), &out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// pamtester with `input` on stdin, optionally as `run_as` (runuser -u).
    fn pam(&self, user: &str, ops: &[&str], input: &str, run_as: Option<&str>) -> Output {
        let mut cmd = match run_as {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--", "pamtester", "-v", PAM_SERVICE, user]);
                c
            }
            None => {
                let mut c = Command::new("pamtester");
                c.args(["-v", PAM_SERVICE, user]);
                c
            }
        };
        cmd.args(ops)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run pamtester (install pamtester)");
        common::feed_stdin(&mut child, input.as_bytes());
        child.wait_with_output().expect("wait pamtester")
    }

    fn whoami(&self, dn: &str, pw: &str) -> Output {
        self.server.tool(
            "ldapwhoami",
            &[
                "-x",
                "-H",
                &self.server.ldaps_url(),
                "-D",
                dn,
                "-w",
                pw,
                "-o",
                "nettimeout=10",
            ],
        )
    }

    /// Polls `check` every 500 ms until it holds or `limit` passes (sssd's background tasks
    /// have no completion signal a client can wait on).
    fn wait_for(&self, what: &str, limit: Duration, check: impl FnMut() -> bool) {
        self.wait_for_every(Duration::from_millis(500), what, limit, check)
    }

    fn wait_for_every(
        &self,
        every: Duration,
        what: &str,
        limit: Duration,
        mut check: impl FnMut() -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !check() {
            assert!(
                Instant::now() < deadline,
                "{what}: not seen within {limit:?}\n{}",
                self.sssd.diagnostics()
            );
            std::thread::sleep(every);
        }
    }
}

fn fields(line: &str) -> Vec<String> {
    line.split(':').map(str::to_string).collect()
}

fn group_members(line: &str) -> Vec<String> {
    let f = fields(line);
    let mut m: Vec<String> = f
        .get(3)
        .map(|s| {
            s.split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    m.sort();
    m
}

/// The group names in `id` output: `uid=…(alice) gid=…(devs) groups=…(devs),…(leads)`.
fn id_groups(id: &str) -> Vec<String> {
    let groups = id.split("groups=").nth(1).unwrap_or("");
    let mut names: Vec<String> = groups
        .split(',')
        .filter_map(|g| {
            g.split_once('(')
                .map(|(_, n)| n.trim_end_matches(')').to_string())
        })
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------
// the cases

fn nss(schema: Schema, transport: Transport) {
    let lab = lab(schema, transport, Options::default());
    // Groups first, on a cold cache: sssd 2.8 lists a nested group's members (ghost entries)
    // only for users it has not cached as full entries yet, so after `getent passwd bob` the
    // member list of devs would lack bob whatever the server says.
    // group: memberUid computed from member (rfc2307), member DNs with nesting (bis, ad)
    let devs = lab.getent_ok(&["group", "devs"]);
    let want: Vec<String> = if schema.nests() {
        vec!["alice".into(), "bob".into()] // bob through the nested ops
    } else {
        vec!["alice".into()]
    };
    assert_eq!(group_members(&devs), want, "getent group devs: {devs}");
    if schema != Schema::Ad {
        assert_eq!(fields(&devs)[2], "20001", "{devs}");
    }

    if schema.nests() {
        let leads = lab.getent_ok(&["group", "leads"]);
        assert_eq!(
            group_members(&leads),
            vec!["alice", "bob"],
            "getent group leads: {leads}"
        );
    }

    // passwd
    let alice = lab.getent_ok(&["passwd", "alice"]);
    let f = fields(&alice);
    assert_eq!(f.len(), 7, "{alice}");
    assert_eq!(f[0], "alice");
    assert_eq!(f[4], "Alice Liddell", "gecos: {alice}");
    assert_eq!(f[5], "/home/alice", "home: {alice}");
    assert_eq!(f[6], "/bin/bash", "shell: {alice}");
    if schema == Schema::Ad {
        // ID mapping: uid/gid come from objectSid (RID 1100+ in the domain's slice).
        let uid: u64 = f[2].parse().expect("uid");
        assert!(uid >= 200_000, "mapped uid expected: {alice}");
    } else {
        assert_eq!(
            (f[2].as_str(), f[3].as_str()),
            ("10001", "20001"),
            "{alice}"
        );
    }
    assert!(!lab.getent(&["passwd", "nosuchuser"]).status.success());

    // initgroups
    let id_alice = lab.id("alice");
    let id_bob = lab.id("bob");
    let (want_alice, want_bob): (&[&str], &[&str]) = match schema {
        Schema::Rfc2307 => (&["devs"], &["devs", "ops"]),
        Schema::Rfc2307bis => (&["devs", "leads"], &["devs", "leads", "ops"]),
        // AD: the primary group is Domain Users (primaryGroupID 513)
        Schema::Ad => (
            &["Domain Users", "devs", "leads"],
            &["Domain Users", "devs", "leads", "ops"],
        ),
    };
    let mut want_alice: Vec<String> = want_alice.iter().map(|s| s.to_string()).collect();
    let mut want_bob: Vec<String> = want_bob.iter().map(|s| s.to_string()).collect();
    want_alice.sort();
    want_bob.sort();
    assert_eq!(id_groups(&id_alice), want_alice, "id alice: {id_alice}");
    assert_eq!(id_groups(&id_bob), want_bob, "id bob: {id_bob}");

    // sssd's startup searches on unknown attributes and classes (sudo rules, ipService) must
    // have succeeded with no entries, not failed.
    let log = lab.sssd.domain_log();
    assert!(
        log.contains("objectClass=sudoRole"),
        "sssd did not search sudo rules:\n{}",
        lab.sssd.diagnostics()
    );
    assert!(
        !log.contains("Search result: Other") && !log.contains("Search result: Protocol error"),
        "a search of sssd failed:\n{}",
        lab.sssd.diagnostics()
    );
}

fn pam_auth(schema: Schema, transport: Transport) {
    let lab = lab(schema, transport, Options::default());
    let _ = schema;
    let ok = lab.pam("alice", &["authenticate"], &format!("{ALICE_PW}\n"), None);
    assert!(
        ok.status.success(),
        "{}",
        lab.fail("pam authenticate alice", &ok)
    );
    let bad = lab.pam("alice", &["authenticate"], "wrong-password\n", None);
    assert!(
        !bad.status.success(),
        "{}",
        lab.fail("wrong password accepted", &bad)
    );
    let bob = lab.pam(
        "bob",
        &["authenticate", "acct_mgmt"],
        &format!("{BOB_PW}\n"),
        None,
    );
    assert!(
        bob.status.success(),
        "{}",
        lab.fail("pam authenticate+acct_mgmt bob", &bob)
    );
    let nobody = lab.pam("nosuchuser", &["authenticate"], "x\n", None);
    assert!(
        !nobody.status.success(),
        "{}",
        lab.fail("unknown user accepted", &nobody)
    );
}

fn chauthtok(schema: Schema, transport: Transport) {
    let lab = lab(schema, transport, Options::default());
    let _ = schema;
    let new_pw = "Changed-Passw0rd-1";
    // As the user (root gets "Password reset by root is not supported"): old, new, new.
    let out = lab.pam(
        "alice",
        &["chauthtok"],
        &format!("{ALICE_PW}\n{new_pw}\n{new_pw}\n"),
        Some("alice"),
    );
    assert!(
        out.status.success(),
        "{}",
        lab.fail("pam chauthtok alice", &out)
    );
    let old = lab.pam("alice", &["authenticate"], &format!("{ALICE_PW}\n"), None);
    assert!(
        !old.status.success(),
        "{}",
        lab.fail("old password still accepted by sssd", &old)
    );
    let new = lab.pam("alice", &["authenticate"], &format!("{new_pw}\n"), None);
    assert!(
        new.status.success(),
        "{}",
        lab.fail("new password refused by sssd", &new)
    );
    let bind_new = lab.whoami(ALICE_DN, new_pw);
    assert!(
        bind_new.status.success(),
        "ldapwhoami with the new password: {}",
        text(&bind_new)
    );
    let bind_old = lab.whoami(ALICE_DN, ALICE_PW);
    assert_eq!(
        rc(&bind_old),
        49,
        "ldapwhoami with the old password: {}",
        text(&bind_old)
    );
}

fn disabled(schema: Schema, transport: Transport) {
    // The deploy files carry ldap_access_order = expire, ldap_account_expire_policy = ad.
    let lab = lab(schema, transport, Options::default());
    let _ = schema;
    let carol = lab.getent_ok(&["passwd", "carol"]);
    assert!(carol.starts_with("carol:"), "{carol}");
    let acct = lab.pam("carol", &["acct_mgmt"], "", None);
    assert!(
        !acct.status.success(),
        "{}",
        lab.fail("disabled carol passed acct_mgmt", &acct)
    );
    let err = String::from_utf8_lossy(&acct.stderr).to_string();
    assert!(
        err.contains("Permission denied") || err.contains("expired"),
        "{}",
        lab.fail("acct_mgmt refusal reason", &acct)
    );
    let auth = lab.pam(
        "carol",
        &["authenticate", "acct_mgmt"],
        &format!("{CAROL_PW}\n"),
        None,
    );
    assert!(
        !auth.status.success(),
        "{}",
        lab.fail("disabled carol logged in", &auth)
    );
    let alice = lab.pam("alice", &["acct_mgmt"], "", None);
    assert!(
        alice.status.success(),
        "{}",
        lab.fail("enabled alice refused by acct_mgmt", &alice)
    );
}

const BULK_USERS: usize = 5000;

fn bulk_ldif() -> String {
    // One precomputed hash for all: importing 5,000 users takes seconds, not 5,000 argon2 runs.
    let hash = dird::directory::password::hash_blocking(b"Bulk-Passw0rd").expect("hash");
    let mut s = String::from("dn: ou=Bulk,dc=example,dc=com\nobjectClass: top\nobjectClass: organizationalUnit\nou: Bulk\n\n");
    for i in 0..BULK_USERS {
        // No uidNumber/gidNumber: dird allocates them (and Domain Users' gidNumber).
        s.push_str(&format!(
            "dn: cn=u{i:05},ou=Bulk,dc=example,dc=com\nobjectClass: top\nobjectClass: user\nobjectClass: posixAccount\ncn: u{i:05}\nuid: u{i:05}\nhomeDirectory: /home/u{i:05}\nuserPassword: {hash}\n\n"
        ));
    }
    s
}

fn enumerate(schema: Schema, transport: Transport) {
    let lab = lab(
        schema,
        transport,
        Options {
            // The seed's explicit uidNumbers (10001-10003) come after the import: allocate the
            // bulk users elsewhere, or they would share numbers (dird does not refuse an
            // explicit number that is already in use; sssd drops such users).
            dird_extra: "max_page_size = 1000\n[posix]\nuid_min = 100000",
            import: Some(bulk_ldif()),
            sssd: vec![
                ("domain", "enumerate", "true".into()),
                // ask for more than the server's cap: dird must page at 1,000
                ("domain", "ldap_page_size", "2000".into()),
                // level 6 logs the end of each enumeration task: the readiness signal below
                ("domain", "debug_level", "6".into()),
                // Storing 5,000 users keeps sssd_be busy; on a loaded 2-core machine the
                // default 10 s watchdog would kill it mid-enumeration and start over.
                ("domain", "timeout", "300".into()),
                ("domain", "ldap_enumeration_search_timeout", "300".into()),
                // getent passwd lists only unexpired cache entries: storing 5,000 users takes
                // longer than the 5 s the other tests use
                ("domain", "entry_cache_timeout", "3600".into()),
                ("nss", "timeout", "300".into()),
            ],
            ..Options::default()
        },
    );
    let count = || {
        let out = Command::new("getent")
            .arg("passwd")
            .output()
            .expect("getent passwd");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                let name = l.split(':').next().unwrap_or("");
                name.len() == 6
                    && name.starts_with('u')
                    && name[1..].bytes().all(|b| b.is_ascii_digit())
            })
            .count()
    };
    // Wait for sssd_be's first enumeration to finish, then ask nss once: the responder keeps
    // an enumeration answer for enum_cache_timeout (120 s), so asking earlier pins a partial list.
    let done = format!("Task [Enumeration [id] of {DOMAIN}]: finished successfully");
    lab.wait_for_every(
        Duration::from_secs(1),
        "sssd's first enumeration of 5,000 users",
        Duration::from_secs(300),
        || lab.sssd.domain_log().contains(&done),
    );
    assert_eq!(count(), BULK_USERS);
    // the allocated ids are distinct
    let out = Command::new("getent")
        .arg("passwd")
        .output()
        .expect("getent passwd");
    let mut uids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('u') && l.split(':').next().is_some_and(|n| n.len() == 6))
        .filter_map(|l| l.split(':').nth(2).map(str::to_string))
        .collect();
    let n = uids.len();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), n, "duplicate uid numbers in the enumeration");
    // a bulk user authenticates with the imported hash
    let auth = lab.pam("u04999", &["authenticate"], "Bulk-Passw0rd\n", None);
    assert!(
        auth.status.success(),
        "{}",
        lab.fail("pam authenticate u04999", &auth)
    );
}

fn refresh(schema: Schema, transport: Transport) {
    // Cached entries stay valid for an hour: only sssd's background refresh (enumeration
    // refresh with a USN or modifyTimestamp filter) can bring the change in.
    let lab = lab(
        schema,
        transport,
        Options {
            sssd: vec![
                ("domain", "enumerate", "true".into()),
                ("domain", "ldap_enumeration_refresh_timeout", "2".into()),
                ("domain", "entry_cache_timeout", "3600".into()),
            ],
            ..Options::default()
        },
    );
    let listed = || {
        let out = Command::new("getent")
            .arg("passwd")
            .output()
            .expect("getent passwd");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with("alice:") && l.ends_with(":/bin/bash"))
    };
    lab.wait_for(
        "alice in the first enumeration",
        Duration::from_secs(120),
        listed,
    );

    // What the refresh filters must find: exactly the changed entry.
    let usn_before = highest_usn(&lab.server);
    let out = lab.server.modify_as_admin(
        &lab.server.ldap_url(),
        &format!("dn: {ALICE_DN}\nchangetype: modify\nreplace: loginShell\nloginShell: /bin/zsh\n"),
    );
    assert!(out.status.success(), "modify loginShell: {}", text(&out));
    let changed =
        lab.server
            .search_admin(BASE, &format!("(uSNChanged>={})", usn_before + 1), &["1.1"]);
    assert_eq!(
        dns(&changed),
        vec![ALICE_DN.to_string()],
        "(uSNChanged>=N) after one modify"
    );
    let stamp = lab
        .server
        .search_admin(ALICE_DN, "(objectClass=*)", &["modifyTimestamp"]);
    let ts = stamp
        .lines()
        .find_map(|l| l.strip_prefix("modifyTimestamp: "))
        .expect("modifyTimestamp")
        .to_string();
    let since = lab.server.search_admin(
        BASE,
        &format!("(&(uid=*)(modifyTimestamp>={ts}))"),
        &["1.1"],
    );
    assert!(
        dns(&since).contains(&ALICE_DN.to_string()),
        "(modifyTimestamp>={ts}): {since}"
    );

    lab.wait_for(
        "the new shell through sssd's background refresh",
        Duration::from_secs(120),
        || {
            let out = Command::new("getent")
                .args(["passwd", "alice"])
                .output()
                .expect("getent");
            String::from_utf8_lossy(&out.stdout)
                .trim_end()
                .ends_with(":/bin/zsh")
        },
    );
    // sssd uses the USN scheme when the rootDSE advertises highestCommittedUSN (dird does),
    // else modifyTimestamp; either filter must have selected the change.
    let log = lab.sssd.domain_log();
    assert!(
        log.contains("uSNChanged>=") || log.contains("modifyTimestamp>="),
        "sssd's refresh used neither (uSNChanged>=…) nor (modifyTimestamp>=…):\n{}",
        lab.sssd.diagnostics()
    );
}

fn highest_usn(server: &TestServer) -> u64 {
    let out = server.tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &server.ldap_url(),
            "-s",
            "base",
            "-b",
            "",
            "(objectClass=*)",
            "highestCommittedUSN",
        ],
    );
    assert!(out.status.success(), "rootDSE: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("highestCommittedUSN: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("highestCommittedUSN in the rootDSE")
}

fn dns(ldif: &str) -> Vec<String> {
    ldif.lines()
        .filter_map(|l| l.strip_prefix("dn: "))
        .map(str::to_string)
        .collect()
}

macro_rules! matrix {
    ($($module:ident: $schema:expr, $transport:expr;)*) => {$(
        mod $module {
            use super::*;
            #[test]
            fn getent_and_id() {
                nss($schema, $transport)
            }
            #[test]
            fn pam_authenticate() {
                pam_auth($schema, $transport)
            }
            #[test]
            fn pam_chauthtok() {
                chauthtok($schema, $transport)
            }
            #[test]
            fn disabled_account_refused() {
                disabled($schema, $transport)
            }
            #[test]
            fn enumerate_5000_users_paged() {
                enumerate($schema, $transport)
            }
            #[test]
            fn background_refresh() {
                refresh($schema, $transport)
            }
        }
    )*};
}

matrix! {
    rfc2307_ldaps: Schema::Rfc2307, Transport::Ldaps;
    rfc2307_starttls: Schema::Rfc2307, Transport::StartTls;
    rfc2307bis_ldaps: Schema::Rfc2307bis, Transport::Ldaps;
    rfc2307bis_starttls: Schema::Rfc2307bis, Transport::StartTls;
    ad_ldaps: Schema::Ad, Transport::Ldaps;
    ad_starttls: Schema::Ad, Transport::StartTls;
}

// ---------------------------------------------------------------------------------------
// auth_provider = krb5 against dird's KDC (issue 4, "Also")

/// `host/<short host name>.example.com`: the host principal of this machine in the test realm
/// (sssd validates TGTs with the first principal of the realm in its keytab).
fn host_principal() -> String {
    // The kernel's host name, not `hostname -f`: the FQDN needs name resolution, which a
    // fresh CI machine may not have; sssd only needs a host principal of the realm.
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("read the host name");
    let short = name
        .trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_lowercase();
    let short = if short.is_empty() {
        "client".to_string()
    } else {
        short
    };
    format!("host/{short}.example.com")
}

/// A ticket decision in dird's audit stream: (identity, operation, target). The identity of
/// a TGS request is empty (the client is named inside the TGT, not in the request body).
type Ticket = (String, String, String);

/// The audit lines of `kind` (`ticket_issued`, `ticket_refused`), once one of them satisfies
/// `want` (the audit writer is asynchronous: polled for up to 10 s; then whatever is there).
fn tickets(audit: &Path, kind: &str, want: impl Fn(&Ticket) -> bool) -> Vec<Ticket> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = read_tickets(audit, kind);
        if found.iter().any(&want) || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_tickets(audit: &Path, kind: &str) -> Vec<Ticket> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["event"] == kind)
        .map(|l| {
            (
                l["identity"].as_str().unwrap_or_default().to_string(),
                l["operation"].as_str().unwrap_or_default().to_string(),
                l["target"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// sssd identifies users over LDAP and checks passwords with a Kerberos login at dird's KDC
/// (`auth_provider = krb5`); `krb5_validate = true` makes it verify each TGT by getting a
/// service ticket for the host principal and decrypting it with the keytab `dird keytab`
/// exported. dird's audit stream shows both exchanges, so the test knows the password was
/// checked by the KDC, not by an LDAP bind.
fn krb5_auth(transport: Transport) {
    let krb5_provider = [
        "/usr/lib/x86_64-linux-gnu/sssd/libsss_krb5.so",
        "/usr/lib/aarch64-linux-gnu/sssd/libsss_krb5.so",
    ];
    assert!(
        krb5_provider.iter().any(|p| Path::new(p).exists()),
        "sssd's Kerberos provider is missing: install sssd-krb5 (scripts/test-all.sh does)"
    );
    let host = host_principal();
    let lab = lab(
        Schema::Rfc2307,
        transport,
        Options {
            dird_extra: "[audit]\npath = \"{dir}/audit.jsonl\"\n",
            krb5_host: Some(host.clone()),
            ..Options::default()
        },
    );
    let audit = lab.server.path("audit.jsonl");
    // sssd asks the KDC for alice@EXAMPLE.COM: the account needs that sAMAccountName, and the
    // password set again with it so that its keys are derived with the salt EXAMPLE.COMalice.
    let out = lab.server.modify_as_admin(
        &lab.server.ldaps_url(),
        &format!(
            "dn: {ALICE_DN}\nchangetype: modify\nreplace: sAMAccountName\nsAMAccountName: alice\n-\n\
             replace: userPassword\nuserPassword: {ALICE_PW}\n-\n"
        ),
    );
    assert!(
        out.status.success(),
        "give alice a principal: {}",
        text(&out)
    );

    let ok = lab.pam("alice", &["authenticate"], &format!("{ALICE_PW}\n"), None);
    assert!(
        ok.status.success(),
        "{}",
        lab.fail("pam authenticate alice through the KDC", &ok)
    );
    let realm = common::REALM;
    let tgt = |(who, op, target): &Ticket| {
        who == "alice@EXAMPLE.COM" && op == "AS" && *target == format!("krbtgt/{realm}")
    };
    let issued = tickets(&audit, "ticket_issued", tgt);
    assert!(
        issued.iter().any(tgt),
        "no TGT issued to alice: {issued:?}\n{}",
        lab.sssd.diagnostics()
    );
    // krb5_validate: the TGT was used for a ticket to the host principal of the keytab.
    let validated = |(_, op, target): &Ticket| op == "TGS" && target.eq_ignore_ascii_case(&host);
    let issued = tickets(&audit, "ticket_issued", validated);
    assert!(
        issued.iter().any(validated),
        "no service ticket for {host} (krb5_validate): {issued:?}\n{}\n--- krb5_child.log ---\n{}",
        lab.sssd.diagnostics(),
        std::fs::read_to_string("/var/log/sssd/krb5_child.log").unwrap_or_default()
    );

    let bad = lab.pam("alice", &["authenticate"], "wrong-password\n", None);
    assert!(
        !bad.status.success(),
        "{}",
        lab.fail("wrong password accepted", &bad)
    );
    let wrong = |(who, op, _): &Ticket| who == "alice@EXAMPLE.COM" && op == "AS";
    let refused = tickets(&audit, "ticket_refused", wrong);
    assert!(
        refused.iter().any(wrong),
        "the wrong password never reached the KDC: {refused:?}"
    );
    // bob was added without sAMAccountName: dird derived one (`bob`) before his Kerberos keys
    // (issue 9 §4), so the KDC knows him at once and his login goes through it too.
    let bob = lab.pam("bob", &["authenticate"], &format!("{BOB_PW}\n"), None);
    assert!(
        bob.status.success(),
        "{}",
        lab.fail("bob (derived sAMAccountName) through the KDC", &bob)
    );
    let bob_tgt = |(who, op, _): &Ticket| who == "bob@EXAMPLE.COM" && op == "AS";
    let issued = tickets(&audit, "ticket_issued", bob_tgt);
    assert!(
        issued.iter().any(bob_tgt),
        "bob's login did not go through the KDC: {issued:?}"
    );
}

#[test]
fn krb5_auth_provider_ldaps() {
    krb5_auth(Transport::Ldaps)
}

#[test]
fn krb5_auth_provider_starttls() {
    krb5_auth(Transport::StartTls)
}

// ---------------------------------------------------------------------------------------
// identity attributes over LDAP (no sssd needed)

#[test]
fn identity_attributes() {
    let server = TestServer::start_with("\n[posix]\nuid_min = 50000\ngid_min = 60000\n");
    server.seed(SEED);
    let alice = search_base(
        &server,
        ALICE_DN,
        &[
            "objectSid",
            "objectGUID",
            "primaryGroupID",
            "uidNumber",
            "tokenGroups",
            "whenChanged",
            "uSNChanged",
        ],
    );
    for want in [
        "objectSid:: ",
        "objectGUID:: ",
        "primaryGroupID: 513",
        "uidNumber: 10001",
        "tokenGroups:: ",
        "whenChanged: ",
        "uSNChanged: ",
    ] {
        assert!(alice.contains(want), "alice lacks {want}:\n{alice}");
    }
    // tokenGroups: Domain Users (primary) + devs + leads (nested), on base searches
    assert_eq!(alice.matches("tokenGroups:: ").count(), 3, "{alice}");
    let sub = server.search_admin(BASE, "(uid=alice)", &["tokenGroups"]);
    assert!(
        !sub.contains("tokenGroups"),
        "tokenGroups only on base searches:\n{sub}"
    );

    // allocation from the configured ranges, counters above explicit values
    server.seed(
        "dn: cn=dave,ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: user\nobjectClass: posixAccount\ncn: dave\nuid: dave\nhomeDirectory: /home/dave\n\n\
         dn: cn=erin,ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: user\ncn: erin\nuidNumber: 50007\n\n\
         dn: cn=frank,ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: user\ncn: frank\n\n\
         dn: cn=qa,ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: group\ncn: qa\nmember: cn=dave,ou=People,dc=example,dc=com\nmember: cn=frank,ou=People,dc=example,dc=com\n",
    );
    let du = server.search_admin(BASE, "(cn=Domain Users)", &["gidNumber"]);
    let du_gid = du
        .lines()
        .find_map(|l| l.strip_prefix("gidNumber: "))
        .expect("Domain Users gidNumber")
        .to_string();
    assert!(du_gid.parse::<u64>().expect("gid") >= 60000, "{du}");
    let dave = server.search_admin(
        BASE,
        "(uid=dave)",
        &["uidNumber", "gidNumber", "sAMAccountName"],
    );
    assert!(
        dave.contains(&format!("gidNumber: {du_gid}")),
        "dave's gid is Domain Users': {dave}"
    );
    assert!(dave.contains("sAMAccountName: dave"), "{dave}");
    let frank = server.search_admin(BASE, "(cn=frank)", &["uidNumber"]);
    let frank_uid: u64 = frank
        .lines()
        .find_map(|l| l.strip_prefix("uidNumber: "))
        .expect("uid")
        .parse()
        .expect("n");
    assert!(
        frank_uid > 50007,
        "the counter must pass the explicit 50007: {frank}"
    );
    let qa = server.search_admin(BASE, "(cn=qa)", &["gidNumber", "memberUid", "groupType"]);
    assert!(
        qa.contains("memberUid: dave") && qa.contains("memberUid: frank"),
        "{qa}"
    );
    assert!(qa.contains("groupType: -2147483646"), "{qa}");

    // memberUid filters see the computed values (sssd's rfc2307 initgroups)
    let g = server.search_admin(
        BASE,
        "(&(memberUid=alice)(objectClass=posixGroup))",
        &["1.1"],
    );
    assert_eq!(dns(&g), vec!["cn=devs,ou=People,dc=example,dc=com"], "{g}");
    let g = server.search_admin(BASE, "(&(objectClass=group)(memberUid=fr*))", &["1.1"]);
    assert_eq!(dns(&g), vec!["cn=qa,ou=People,dc=example,dc=com"], "{g}");
    let g = server.search_admin(BASE, "(&(objectClass=group)(!(memberUid=*)))", &["cn"]);
    assert!(g.contains("cn: leads") && !g.contains("cn: devs"), "{g}");

    // nested groups: LDAP_MATCHING_RULE_IN_CHAIN both ways
    let g = server.search_admin(
        BASE,
        &format!("(member:1.2.840.113556.1.4.1941:={ALICE_DN})"),
        &["1.1"],
    );
    let mut got = dns(&g);
    got.sort();
    assert_eq!(
        got,
        vec![
            "cn=devs,ou=People,dc=example,dc=com",
            "cn=leads,ou=People,dc=example,dc=com"
        ]
    );
    let u = server.search_admin(BASE, "(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=cn=leads,ou=People,dc=example,dc=com))", &["1.1"]);
    let mut got = dns(&u);
    got.sort();
    assert_eq!(got, vec![ALICE_DN, "cn=bob,ou=People,dc=example,dc=com"]);

    // string SIDs in filters (sssd's ad schema looks groups up by them)
    let sid = server.search_admin(BASE, "(cn=Domain Users)", &["objectSid"]);
    let b64 = sid
        .lines()
        .find_map(|l| l.strip_prefix("objectSid:: "))
        .expect("sid")
        .to_string();
    let text_sid = sid_text(&b64);
    let g = server.search_admin(
        BASE,
        &format!("(&(objectSid={text_sid})(objectClass=group))"),
        &["cn"],
    );
    assert!(g.contains("cn: Domain Users"), "{text_sid}: {g}");

    // sssd's startup filter on unknown attributes/classes, with its attribute list: no error
    let url = server.ldap_url();
    let out = server.tool("ldapsearch", &[
        "-x", "-LLL", "-H", &url, "-D", ADMIN_DN, "-w", ADMIN_PW, "-b", BASE,
        "(&(objectClass=sudoRole)(|(&(!(sudoHost=*))(cn=defaults))(sudoHost=ALL)(sudoHost=vm)(sudoHost=192.0.2.0/24)(sudoHost=fd00::/64)(sudoHost=+*)))",
        "objectClass", "cn", "sudoCommand", "sudoHost", "sudoUser", "sudoOrder", "modifyTimestamp",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "{}",
        text(&out)
    );
    let out = server.tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &url,
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            "-b",
            BASE,
            "(&(uid=alice)(objectClass=posixAccount)(uid=*)(&(uidNumber=*)(!(uidNumber=0))))",
            "uid",
            "uidNumber",
            "krbPrincipalName",
            "nsAccountLock",
            "userCertificate;binary",
            "sshPublicKey",
            "modifyTimestamp",
        ],
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains("uidNumber: 10001") && body.contains("modifyTimestamp:"),
        "{body}"
    );
}

#[test]
fn concurrent_adds_get_distinct_ids() {
    let server = TestServer::start();
    let mut children = Vec::new();
    for t in 0..4 {
        let mut ldif = String::new();
        for i in 0..15 {
            ldif.push_str(&format!(
                "dn: cn=c{t}x{i},cn=Users,dc=example,dc=com\nobjectClass: top\nobjectClass: user\ncn: c{t}x{i}\n\n\
                 dn: cn=g{t}x{i},cn=Users,dc=example,dc=com\nobjectClass: top\nobjectClass: group\ncn: g{t}x{i}\n\n"
            ));
        }
        let mut child = Command::new("ldapadd")
            .args([
                "-x",
                "-H",
                &server.ldap_url(),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PW,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldapadd (install ldap-utils)");
        common::feed_stdin(&mut child, ldif.as_bytes());
        children.push(child);
    }
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", text(&out));
    }
    for (filter, attr) in [
        ("(objectClass=user)", "uidNumber"),
        ("(objectClass=group)", "gidNumber"),
    ] {
        let out = server.search_admin(BASE, filter, &[attr]);
        let mut vals: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{attr}: ") as &str))
            .collect();
        let n = vals.len();
        assert!(n >= 60, "{attr}: {n} values");
        vals.sort();
        vals.dedup();
        assert_eq!(vals.len(), n, "duplicate {attr} under concurrent adds");
    }
}

/// A base-scope `ldapsearch -LLL` as Administrator.
fn search_base(server: &TestServer, dn: &str, attrs: &[&str]) -> String {
    let url = server.ldap_url();
    let mut args = vec![
        "-x",
        "-LLL",
        "-o",
        "ldif_wrap=no",
        "-H",
        &url,
        "-D",
        ADMIN_DN,
        "-w",
        ADMIN_PW,
        "-s",
        "base",
        "-b",
        dn,
        "(objectClass=*)",
    ];
    args.extend_from_slice(attrs);
    let out = server.tool("ldapsearch", &args);
    assert!(out.status.success(), "ldapsearch: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Binary SID (base64) → `S-1-5-21-…` (MS-DTYP §2.4.2.1).
fn sid_text(b64: &str) -> String {
    let bytes = base64_decode(b64);
    let count = bytes[1] as usize;
    let mut auth = 0u64;
    for b in &bytes[2..8] {
        auth = (auth << 8) | u64::from(*b);
    }
    let mut s = format!("S-{}-{}", bytes[0], auth);
    for i in 0..count {
        let o = 8 + 4 * i;
        let v = u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        s.push_str(&format!("-{v}"));
    }
    s
}

fn base64_decode(s: &str) -> Vec<u8> {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = T.iter().position(|t| *t == c).expect("base64") as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}
