#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The admin CLI (issue 2 §9): `dird init`, `user`, `group`, `ou`, `check-config`, `export`
//! and `import`, each checked through its output and then through a real LDAP client against
//! the daemon started on the same data directory.

mod common;

use std::process::{Command, Output};

use common::*;

/// Runs a CLI command, asserting success; returns stdout.
fn ok(s: &TestServer, args: &[&str]) -> String {
    let out = s.cli(args);
    assert!(out.status.success(), "dird {args:?}: {}", text(&out));
    stdout(&out)
}

/// Runs a CLI command, asserting failure; returns stdout + stderr.
fn fails(s: &TestServer, args: &[&str]) -> String {
    let out = s.cli(args);
    assert!(
        !out.status.success(),
        "dird {args:?} should fail: {}",
        text(&out)
    );
    text(&out)
}

fn bind(s: &TestServer, name: &str, pw: &str) -> Output {
    s.whoami(&["-H", &s.ldap_url(), "-D", name, "-w", pw])
}

fn dird(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dird"))
        .args(args)
        .env_remove("DIRD_ADMIN_PASSWORD")
        .output()
        .expect("run dird")
}

#[test]
fn init_provisions_once_and_the_admin_binds() {
    let mut s = TestServer::configured("");
    let o = ok(&s, &["init"]);
    assert!(o.contains("provisioned domain example.com"), "{o}");
    assert!(
        !o.contains("Administrator password:"),
        "DIRD_ADMIN_PASSWORD was given: {o}"
    );
    let o = ok(&s, &["init"]);
    assert!(o.contains("already provisioned"), "{o}");
    s.launch();
    let who = bind(&s, "EXAMPLE\\Administrator", ADMIN_PW);
    assert_eq!(
        stdout(&who).trim(),
        format!("dn:{ADMIN_DN}"),
        "{}",
        text(&who)
    );
    let out = s.search_as_admin(&["-b", BASE, "-s", "one", "(objectClass=*)", "1.1"]);
    let mut got = dns(&out);
    got.sort();
    assert_eq!(
        got,
        vec![
            "cn=Computers,dc=example,dc=com",
            "cn=System,dc=example,dc=com",
            "cn=Users,dc=example,dc=com",
            "ou=Domain Controllers,dc=example,dc=com"
        ]
    );
    let out = s.search_as_admin(&["-b", ADMIN_DN, "-s", "base", "(objectClass=*)", "memberOf"]);
    assert!(
        values(&out, "memberOf")
            .iter()
            .any(|g| g.starts_with("cn=Domain Admins,")),
        "{}",
        text(&out)
    );
}

#[test]
fn init_without_admin_password_generates_and_prints_one() {
    let mut s = TestServer::configured("");
    let cfg = s.config_path();
    let out = dird(&["--config", cfg.to_str().expect("utf-8 path"), "init"]);
    assert!(out.status.success(), "{}", text(&out));
    let o = stdout(&out);
    let pw = o
        .lines()
        .find_map(|l| l.split("Administrator password: ").nth(1))
        .map(|p| p.trim().to_string())
        .unwrap_or_else(|| panic!("no generated password printed: {o}"));
    assert!(pw.len() >= 12, "{pw}");
    // printed once: a second init does not print it again
    let again = dird(&["--config", cfg.to_str().expect("utf-8 path"), "init"]);
    assert!(!stdout(&again).contains(&pw), "{}", text(&again));
    s.launch();
    let who = bind(&s, ADMIN_DN, &pw);
    assert_eq!(rc(&who), 0, "{}", text(&who));
    assert_eq!(rc(&bind(&s, ADMIN_DN, ADMIN_PW)), 49);
}

#[test]
fn user_add_passwd_disable_enable_show() {
    let mut s = TestServer::configured("");
    let o = ok(
        &s,
        &[
            "user",
            "add",
            "erin",
            "--password",
            "erin-Passw0rd-1",
            "--given-name",
            "Erin",
            "--sn",
            "Example",
            "--mail",
            "erin@example.com",
        ],
    );
    let erin = "cn=erin,cn=Users,dc=example,dc=com";
    assert!(o.contains(&format!("added {erin}")), "{o}");
    let o = ok(&s, &["user", "show", "erin"]);
    assert!(o.starts_with(&format!("dn: {erin}")), "{o}");
    for line in [
        "sAMAccountName: erin",
        "userPrincipalName: erin@example.com",
        "givenName: Erin",
        "sn: Example",
        "mail: erin@example.com",
        "userAccountControl: 512",
    ] {
        assert!(o.lines().any(|l| l == line), "{line} in {o}");
    }
    assert!(
        o.contains("objectSid::") && o.contains("objectGUID::"),
        "{o}"
    );
    assert!(
        !o.to_ascii_lowercase().contains("userpassword"),
        "show never prints the password: {o}"
    );
    // show by UPN and by DN
    assert!(ok(&s, &["user", "show", "erin@example.com"]).starts_with(&format!("dn: {erin}")));
    assert!(ok(&s, &["user", "show", erin]).starts_with(&format!("dn: {erin}")));
    assert!(fails(&s, &["user", "show", "nobody"]).contains("nobody"));
    // a duplicate add fails
    let e = fails(&s, &["user", "add", "erin", "--password", "x-Passw0rd-1"]);
    assert!(e.to_ascii_lowercase().contains("exists"), "{e}");

    s.launch();
    assert_eq!(
        stdout(&bind(&s, "EXAMPLE\\erin", "erin-Passw0rd-1")).trim(),
        format!("dn:{erin}")
    );
    assert_eq!(
        stdout(&bind(&s, "erin@example.com", "erin-Passw0rd-1")).trim(),
        format!("dn:{erin}")
    );
    s.stop();

    let o = ok(
        &s,
        &["user", "passwd", "erin", "--password", "erin-Passw0rd-2"],
    );
    assert!(o.contains(erin), "{o}");
    let o = ok(&s, &["user", "passwd", "erin"]);
    let generated = o
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .map(|p| p.trim().to_string())
        .unwrap_or_else(|| panic!("generated password printed: {o}"));
    s.launch();
    assert_eq!(rc(&bind(&s, erin, "erin-Passw0rd-1")), 49);
    assert_eq!(rc(&bind(&s, erin, "erin-Passw0rd-2")), 49);
    assert_eq!(rc(&bind(&s, erin, &generated)), 0);
    s.stop();

    let o = ok(&s, &["user", "disable", "erin"]);
    assert!(o.contains("disabled"), "{o}");
    assert!(ok(&s, &["user", "show", "erin"])
        .lines()
        .any(|l| l == "userAccountControl: 514"));
    s.launch();
    assert_eq!(
        rc(&bind(&s, erin, &generated)),
        49,
        "disabled users cannot bind"
    );
    s.stop();

    let o = ok(&s, &["user", "enable", "erin"]);
    assert!(o.contains("enabled"), "{o}");
    assert!(ok(&s, &["user", "show", "erin"])
        .lines()
        .any(|l| l == "userAccountControl: 512"));
    s.launch();
    assert_eq!(rc(&bind(&s, erin, &generated)), 0);
}

#[test]
fn user_add_without_password_prints_a_generated_one() {
    let mut s = TestServer::configured("");
    let o = ok(&s, &["ou", "add", "Staff"]);
    assert!(o.contains("added ou=Staff,dc=example,dc=com"), "{o}");
    let o = ok(
        &s,
        &[
            "user",
            "add",
            "frank",
            "--parent",
            "ou=Staff,dc=example,dc=com",
        ],
    );
    let pw = o
        .lines()
        .find_map(|l| l.split("password: ").nth(1))
        .map(|p| p.trim().to_string())
        .unwrap_or_else(|| panic!("generated password printed: {o}"));
    s.launch();
    let who = bind(&s, "frank@example.com", &pw);
    assert_eq!(
        stdout(&who).trim(),
        "dn:cn=frank,ou=Staff,dc=example,dc=com",
        "{}",
        text(&who)
    );
}

#[test]
fn group_add_and_member_add_remove() {
    let mut s = TestServer::configured("");
    ok(
        &s,
        &["user", "add", "gina", "--password", "gina-Passw0rd-1"],
    );
    ok(
        &s,
        &["user", "add", "hank", "--password", "hank-Passw0rd-1"],
    );
    let o = ok(&s, &["group", "add", "staff"]);
    let staff = "cn=staff,cn=Users,dc=example,dc=com";
    assert!(o.contains(&format!("added {staff}")), "{o}");
    ok(&s, &["ou", "add", "Teams"]);
    let o = ok(
        &s,
        &[
            "group",
            "add",
            "ops",
            "--parent",
            "ou=Teams,dc=example,dc=com",
        ],
    );
    assert!(o.contains("added cn=ops,ou=Teams,dc=example,dc=com"), "{o}");
    let o = ok(&s, &["group", "member", "add", "staff", "gina"]);
    assert!(
        o.contains("cn=gina,cn=Users,dc=example,dc=com") && o.contains(staff),
        "{o}"
    );
    ok(&s, &["group", "member", "add", staff, "hank@example.com"]);
    ok(&s, &["group", "member", "add", "ops", "staff"]);
    // adding twice is an error naming the problem
    let e = fails(&s, &["group", "member", "add", "staff", "gina"]);
    assert!(e.to_ascii_lowercase().contains("exists"), "{e}");
    ok(&s, &["group", "member", "remove", "staff", "hank"]);
    let e = fails(&s, &["group", "member", "remove", "staff", "hank"]);
    assert!(e.to_ascii_lowercase().contains("no such"), "{e}");
    assert!(fails(&s, &["group", "member", "add", "staff", "nobody"]).contains("nobody"));

    s.launch();
    let out = s.search_as_admin(&[
        "-b",
        staff,
        "-s",
        "base",
        "(objectClass=*)",
        "member",
        "objectClass",
        "sAMAccountName",
    ]);
    assert_eq!(
        values(&out, "member"),
        vec!["cn=gina,cn=Users,dc=example,dc=com"],
        "{}",
        text(&out)
    );
    assert!(values(&out, "objectClass").iter().any(|c| c == "group"));
    assert_eq!(values(&out, "sAMAccountName"), vec!["staff"]);
    let out = s.search_as_admin(&[
        "-b",
        BASE,
        "(memberOf:1.2.840.113556.1.4.1941:=cn=ops,ou=Teams,dc=example,dc=com)",
        "1.1",
    ]);
    let mut got = dns(&out);
    got.sort();
    assert_eq!(
        got,
        vec!["cn=gina,cn=Users,dc=example,dc=com", staff],
        "nested through staff"
    );
    let out = s.search_as_admin(&[
        "-b",
        "cn=hank,cn=Users,dc=example,dc=com",
        "-s",
        "base",
        "(objectClass=*)",
        "memberOf",
    ]);
    assert!(
        !values(&out, "memberOf").iter().any(|g| g == staff),
        "{}",
        text(&out)
    );
}

#[test]
fn ou_add_nested() {
    let mut s = TestServer::configured("");
    ok(&s, &["ou", "add", "Europe"]);
    let o = ok(
        &s,
        &[
            "ou",
            "add",
            "Paris",
            "--parent",
            "ou=Europe,dc=example,dc=com",
        ],
    );
    assert!(
        o.contains("added ou=Paris,ou=Europe,dc=example,dc=com"),
        "{o}"
    );
    let e = fails(
        &s,
        &[
            "ou",
            "add",
            "Lyon",
            "--parent",
            "ou=Nowhere,dc=example,dc=com",
        ],
    );
    assert!(e.to_ascii_lowercase().contains("no such"), "{e}");
    assert!(fails(&s, &["ou", "add", "Europe"])
        .to_ascii_lowercase()
        .contains("exists"));
    s.launch();
    let out = s.search_as_admin(&[
        "-b",
        "ou=Europe,dc=example,dc=com",
        "(objectClass=organizationalUnit)",
        "ou",
    ]);
    let mut ous = values(&out, "ou");
    ous.sort();
    assert_eq!(ous, vec!["Europe", "Paris"]);
}

#[test]
fn check_config_accepts_good_and_names_the_key_of_bad() {
    let s = TestServer::configured("");
    let o = ok(&s, &["check-config"]);
    assert!(o.contains("config OK") && o.contains("example.com"), "{o}");
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read_to_string(s.config_path()).expect("read config");
    let cases: &[(&str, &str, &str)] = &[
        (
            "ldap.listen",
            r#"listen = ["127.0.0.1:0"]"#,
            r#"listen = ["not-an-address"]"#,
        ),
        ("ldap.max_pdu", "[ldap]\n", "[ldap]\nmax_pdu = \"big\"\n"),
        ("ldap.listn", "[ldap]\n", "[ldap]\nlistn = []\n"),
        ("mode", r#"mode = "standalone""#, r#"mode = "sideways""#),
        ("tier", r#"tier = "enterprise""#, r#"tier = "galactic""#),
        (
            "domain.name",
            r#"name = "example.com""#,
            r#"name = "not a domain""#,
        ),
    ];
    for (key, from, to) in cases {
        assert!(good.contains(from), "{from} in {good}");
        let path = dir.path().join(format!("{key}.toml"));
        std::fs::write(&path, good.replacen(from, to, 1)).expect("write");
        let out = dird(&["--config", path.to_str().expect("utf-8"), "check-config"]);
        assert!(!out.status.success(), "{key}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("`{key}`")),
            "error names {key}: {}",
            text(&out)
        );
    }
    let out = dird(&["--config", "/nonexistent/dird.toml", "check-config"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("/nonexistent/dird.toml"),
        "{}",
        text(&out)
    );
}

#[test]
fn export_then_import_into_a_fresh_instance_round_trips() {
    let mut a = TestServer::start_seeded();
    // a password changed over LDAP must survive too
    let out = a.tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &a.ldaps_url(),
            "-D",
            BOB_DN,
            "-w",
            BOB_PW,
            "-a",
            BOB_PW,
            "-s",
            "bob-Exported-1",
        ],
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let before = a.search_as_admin(&["-b", BASE, "(objectClass=*)", "*", "entryUUID"]);
    assert_eq!(rc(&before), 0);
    a.stop();
    let file = a.dir.path().join("export.ldif");
    let o = ok(&a, &["export", "--out", file.to_str().expect("utf-8")]);
    let n_before = dns(&before).len();
    assert!(
        o.contains(&format!("exported {n_before} entries")),
        "{o} vs {n_before}"
    );
    let ldif = std::fs::read_to_string(&file).expect("read export");
    assert!(
        ldif.starts_with("version: 1"),
        "{}",
        &ldif[..40.min(ldif.len())]
    );
    assert!(
        ldif.contains("userPassword: {ARGON2}"),
        "hashes are exported, never cleartext"
    );
    assert!(!ldif.contains("alice-Passw0rd") && !ldif.contains("bob-Exported-1"));
    // export to stdout is the same snapshot
    let stdout_export = ok(&a, &["export"]);
    assert_eq!(
        stdout_export.matches("\ndn: ").count() + usize::from(stdout_export.starts_with("dn: ")),
        n_before
    );

    let mut b = TestServer::configured("");
    let o = ok(&b, &["import", file.to_str().expect("utf-8")]);
    assert!(o.contains(&format!("imported {n_before} entries")), "{o}");
    b.launch();
    let after = b.search_as_admin(&["-b", BASE, "(objectClass=*)", "*", "entryUUID"]);
    assert_eq!(rc(&after), 0, "{}", text(&after));
    let (rb, ra) = (sorted_records(&before), sorted_records(&after));
    assert_eq!(rb.len(), ra.len());
    for (x, y) in rb.iter().zip(&ra) {
        assert_eq!(x, y, "same DNs, user attributes and entryUUIDs");
    }
    // passwords (as hashes) came along, and the administrator is the exported one
    assert_eq!(rc(&bind(&b, ALICE_DN, ALICE_PW)), 0);
    assert_eq!(rc(&bind(&b, "EXAMPLE\\bob", "bob-Exported-1")), 0);
    assert_eq!(rc(&bind(&b, ADMIN_DN, ADMIN_PW)), 0);
    assert_eq!(rc(&bind(&b, CAROL_DN, CAROL_PW)), 49, "still disabled");
    // computed memberOf is back, and new users get fresh, unused SIDs
    let out = b.search_as_admin(&["-b", BOB_DN, "-s", "base", "(objectClass=*)", "memberOf"]);
    assert_eq!(values(&out, "memberOf"), vec![format!("cn=ops,{PEOPLE}")]);
    let out = b.tool_stdin(
        "ldapadd",
        &["-x", "-H", &b.ldap_url(), "-D", ADMIN_DN, "-w", ADMIN_PW],
        Some(&format!("dn: cn=newbie,{PEOPLE}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\ncn: newbie\nsAMAccountName: newbie\n")),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let sids = b.search_as_admin(&["-b", BASE, "(objectClass=user)", "objectSid"]);
    let all = values(&sids, "objectSid");
    let mut uniq = all.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), all.len(), "no SID reused after import: {all:?}");
    // importing the same file again into the running instance's data is refused cleanly
    b.stop();
    let e = fails(&b, &["import", file.to_str().expect("utf-8")]);
    assert!(e.contains("already exists"), "{e}");
}

/// Each entry's lines, sorted, minus attributes that legitimately change on import.
fn sorted_records(out: &Output) -> Vec<String> {
    let mut recs: Vec<String> = stdout(out)
        .split("\n\n")
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            // USNs are this instance's write counter: an import writes the entries anew
            let mut lines: Vec<&str> = r
                .lines()
                .filter(|l| !l.starts_with("uSNCreated:") && !l.starts_with("uSNChanged:"))
                .collect();
            lines.sort();
            lines.join("\n")
        })
        .collect();
    recs.sort();
    recs
}

#[test]
fn import_applies_changetype_records() {
    let mut s = TestServer::configured("");
    ok(&s, &["init"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("changes.ldif");
    std::fs::write(
        &file,
        format!(
            "version: 1\n\n# content record\ndn: {PEOPLE}\nobjectClass: organizationalUnit\nou: People\n\n\
dn: {ALICE_DN}\nchangetype: add\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\ncn: alice\nsn: Liddell\nsAMAccountName: alice\nuserPassword: alice-Passw0rd\ndescription: temp\n\n\
dn: {BOB_DN}\nchangetype: add\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\ncn: bob\nsn: Builder\nsAMAccountName: bob\n\n\
dn: cn=team,{PEOPLE}\nchangetype: add\nobjectClass: top\nobjectClass: group\ncn: team\nmember: {BOB_DN}\n\n\
dn: {ALICE_DN}\nchangetype: modify\nadd: mail\nmail: alice@example.com\n-\ndelete: description\n-\nreplace: sn\nsn: Pleasance\n-\n\n\
dn: cn=team,{PEOPLE}\nchangetype: modify\nadd: member\nmember: {ALICE_DN}\n-\n\n\
dn: {BOB_DN}\nchangetype: modrdn\nnewrdn: cn=robert\ndeleteoldrdn: 1\n\n\
dn: ou=Staff,dc=example,dc=com\nchangetype: add\nobjectClass: organizationalUnit\nou: Staff\n\n\
dn: cn=robert,{PEOPLE}\nchangetype: moddn\nnewrdn: cn=robert\ndeleteoldrdn: 0\nnewsuperior: ou=Staff,dc=example,dc=com\n\n\
dn: cn=robert,ou=Staff,dc=example,dc=com\nchangetype: delete\n"
        ),
    )
    .expect("write ldif");
    let o = ok(&s, &["import", file.to_str().expect("utf-8")]);
    assert!(
        o.contains("imported") && o.contains("change records"),
        "{o}"
    );
    // a failing change record stops the import with an error naming the DN
    let bad = dir.path().join("bad.ldif");
    std::fs::write(
        &bad,
        format!("dn: cn=ghost,{PEOPLE}\nchangetype: modify\nreplace: sn\nsn: x\n-\n"),
    )
    .expect("write");
    let e = fails(&s, &["import", bad.to_str().expect("utf-8")]);
    assert!(e.contains("cn=ghost"), "{e}");
    // a syntax error in the file is reported, too
    std::fs::write(&bad, "dn: cn=x,dc=example,dc=com\nchangetype: frobnicate\n").expect("write");
    let e = fails(&s, &["import", bad.to_str().expect("utf-8")]);
    assert!(e.contains("bad.ldif"), "{e}");

    s.launch();
    let out = s.search_as_admin(&[
        "-b",
        ALICE_DN,
        "-s",
        "base",
        "(objectClass=*)",
        "mail",
        "sn",
        "description",
        "memberOf",
    ]);
    assert_eq!(
        values(&out, "mail"),
        vec!["alice@example.com"],
        "{}",
        text(&out)
    );
    assert_eq!(values(&out, "sn"), vec!["Pleasance"]);
    assert!(values(&out, "description").is_empty());
    assert_eq!(values(&out, "memberOf"), vec![format!("cn=team,{PEOPLE}")]);
    assert_eq!(
        rc(&bind(&s, "EXAMPLE\\alice", ALICE_PW)),
        0,
        "plaintext userPassword in LDIF is hashed on import"
    );
    for gone in [
        BOB_DN.to_string(),
        format!("cn=robert,{PEOPLE}"),
        "cn=robert,ou=Staff,dc=example,dc=com".to_string(),
    ] {
        assert_eq!(
            rc(&s.search_as_admin(&["-b", &gone, "-s", "base"])),
            32,
            "{gone}"
        );
    }
    let out = s.search_as_admin(&[
        "-b",
        "ou=Staff,dc=example,dc=com",
        "-s",
        "base",
        "(objectClass=*)",
        "1.1",
    ]);
    assert_eq!(rc(&out), 0);
}

#[test]
fn every_command_has_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["init"],
        &["import"],
        &["export"],
        &["user"],
        &["user", "add"],
        &["user", "passwd"],
        &["user", "disable"],
        &["user", "enable"],
        &["user", "show"],
        &["group"],
        &["group", "add"],
        &["group", "member"],
        &["group", "member", "add"],
        &["group", "member", "remove"],
        &["ou"],
        &["ou", "add"],
        &["ou", "delete"],
        &["user", "list"],
        &["user", "delete"],
        &["user", "unlock"],
        &["group", "show"],
        &["group", "list"],
        &["group", "delete"],
        &["computer"],
        &["computer", "add"],
        &["keytab"],
        &["krbtgt", "rotate"],
        &["status"],
        &["check-config"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let out = dird(&args);
        assert!(out.status.success(), "dird {args:?}: {}", text(&out));
        let o = stdout(&out);
        assert!(o.contains("Usage: dird"), "dird {args:?}: {o}");
        if let Some(last) = c.last() {
            assert!(o.contains(last), "{o}");
        }
    }
    let out = dird(&["--version"]);
    assert!(
        out.status.success() && stdout(&out).starts_with("dird "),
        "{}",
        text(&out)
    );
    let out = dird(&["no-such-command"]);
    assert!(!out.status.success());
}

#[test]
fn offline_import_keeps_batches_before_an_error_and_substring_defaults_narrow() {
    // slapd's substring set: trigrams for cn only; mail keeps its equality index.
    let mut s =
        TestServer::configured("[index]\nsubstring_defaults = false\nsubstring = [\"cn\"]\n");
    ok(&s, &["init"]);
    let user = |n: u32, parent: &str| {
        format!(
            "dn: cn=pupil{n},{parent}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\ncn: pupil{n}\nsAMAccountName: pupil{n}\nmail: pupil{n}@example.com\n\n"
        )
    };
    let mut ldif =
        format!("version: 1\n\ndn: {PEOPLE}\nobjectClass: organizationalUnit\nou: People\n\n");
    for n in 1..=7 {
        ldif.push_str(&user(n, PEOPLE));
    }
    // Chunks of 2 records (the version line counts): [ou], [1, 2], [3, 4], [5, 6], then the
    // batch [7, 9] fails as a whole (9 has no parent) and the import stops before 8.
    ldif.push_str(&user(9, "ou=Nowhere,dc=example,dc=com"));
    ldif.push_str(&user(8, PEOPLE));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pupils.ldif");
    std::fs::write(&file, ldif).expect("write ldif");
    let e = fails(
        &s,
        &["import", "--batch", "2", file.to_str().expect("utf-8")],
    );
    assert!(
        e.contains("batch starting at cn=pupil7") && e.contains("no such object"),
        "{e}"
    );
    // The four batches committed before the error (without an fsync each) were made durable
    // by the import's final commit and are there for the daemon, the failed one is not.
    s.launch();
    let out = s.search_as_admin(&["-b", PEOPLE, "(cn=*upil*)", "cn"]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let mut cns = values(&out, "cn");
    cns.sort();
    let want: Vec<String> = (1..=6).map(|n| format!("pupil{n}")).collect();
    assert_eq!(cns, want);
    // Substring filters on attributes without a trigram index still answer exactly (an
    // `initial` piece from the equality index, the others by evaluation).
    let out = s.search_as_admin(&["-b", PEOPLE, "(mail=*l5@*)", "cn"]);
    assert_eq!(values(&out, "cn"), vec!["pupil5"], "{}", text(&out));
    let out = s.search_as_admin(&["-b", PEOPLE, "(sAMAccountName=pupil3*)", "cn"]);
    assert_eq!(values(&out, "cn"), vec!["pupil3"], "{}", text(&out));
    let out = s.search_as_admin(&["-b", PEOPLE, "(mail=*example.com)", "cn"]);
    assert_eq!(values(&out, "cn").len(), 6, "{}", text(&out));
}
