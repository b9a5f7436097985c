#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 9 items 4 and 5, end to end with the real `dird` binary and real clients
//! (OpenLDAP's ldapadd/ldapmodify/ldapmodrdn/ldapsearch, MIT kinit, the `dird` CLI):
//! sAMAccountName, userPrincipalName, servicePrincipalName, uidNumber and group gidNumber are
//! unique in the domain on every write path (add, modify, modrdn, offline import, 20
//! concurrent adds), the KDC's names cannot be taken, the POSIX id allocator skips taken
//! numbers, a user added without sAMAccountName gets one and can kinit at once; and the links
//! dird interprets (msDS-PSOAppliesTo, member, manager) follow renames, subtree moves and
//! deletes. A missing tool fails the test with a clear message (never skips).

mod common;

use std::process::{Command, Stdio};

use common::*;

const UDP: &str = "krb5.conf";
const PSO_CONTAINER: &str = "cn=Password Settings Container,cn=System,dc=example,dc=com";

fn require_tools() {
    for tool in [
        "ldapadd",
        "ldapmodify",
        "ldapmodrdn",
        "ldapdelete",
        "ldapsearch",
        "kinit",
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` is not on PATH: install ldap-utils and krb5-user (scripts/test-all.sh does)"
        );
    }
}

/// `ldapadd` as Administrator over LDAPS (passwords travel only over TLS).
fn add(s: &TestServer, ldif: &str) -> std::process::Output {
    s.tool_stdin(
        "ldapadd",
        &[
            "-x",
            "-H",
            &s.ldaps_url(),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            "-o",
            "nettimeout=10",
        ],
        Some(ldif),
    )
}

/// `ldapmodify` as Administrator over LDAPS.
fn modify(s: &TestServer, ldif: &str) -> std::process::Output {
    s.modify_as_admin(&s.ldaps_url(), ldif)
}

/// `ldapmodrdn` as Administrator; `extra` are the rename options (`-r`, `-s SUPERIOR`).
fn modrdn(s: &TestServer, dn: &str, new_rdn: &str, extra: &[&str]) -> std::process::Output {
    let url = s.ldaps_url();
    let mut args = vec![
        "-x",
        "-H",
        url.as_str(),
        "-D",
        ADMIN_DN,
        "-w",
        ADMIN_PW,
        "-o",
        "nettimeout=10",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[dn, new_rdn]);
    s.tool("ldapmodrdn", &args)
}

/// Asserts that a write failed with `code` and a message naming every one of `words`.
fn refused(out: &std::process::Output, code: i32, words: &[&str]) {
    let all = text(out);
    assert_eq!(rc(out), code, "{all}");
    for w in words {
        assert!(all.contains(w), "expected {w:?} in:\n{all}");
    }
}

fn ok(out: &std::process::Output) {
    assert_eq!(rc(out), 0, "{}", text(out));
}

fn user(dn: &str, cn: &str, extra: &str) -> String {
    format!(
        "dn: {dn}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n\
         objectClass: user\ncn: {cn}\nsn: {cn}\n{extra}\n"
    )
}

fn group(dn: &str, cn: &str, extra: &str) -> String {
    format!("dn: {dn}\nobjectClass: top\nobjectClass: group\ncn: {cn}\n{extra}\n")
}

/// One attribute of one entry, read as Administrator.
fn attr(s: &TestServer, dn: &str, name: &str) -> Vec<String> {
    let out = s.search_as_admin(&["-b", dn, "-s", "base", "(objectClass=*)", name]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    values(&out, name)
}

/// DNs matching `filter` under the base.
fn find(s: &TestServer, filter: &str) -> Vec<String> {
    let out = s.search_as_admin(&["-b", BASE, filter, "1.1"]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    dns(&out)
}

#[test]
fn account_names_are_unique_across_users_groups_and_computers() {
    require_tools();
    let s = TestServer::start_seeded();
    // user/user, any case: entryAlreadyExists naming attribute, value and holder
    let out = add(
        &s,
        &user(
            "cn=alice2,ou=People,dc=example,dc=com",
            "alice2",
            "sAMAccountName: ALICE",
        ),
    );
    refused(&out, 68, &["sAMAccountName", "ALICE", ALICE_DN]);
    // group named like a user: explicitly, and through the name derived from its cn
    let out = add(
        &s,
        &group(
            "cn=g1,ou=People,dc=example,dc=com",
            "g1",
            "sAMAccountName: bob",
        ),
    );
    refused(&out, 68, &["sAMAccountName", BOB_DN]);
    let out = add(
        &s,
        &group("cn=carol,cn=Users,dc=example,dc=com", "carol", ""),
    );
    refused(&out, 68, &["sAMAccountName", "carol", CAROL_DN]);
    // computer whose name is a user's
    let out = add(
        &s,
        "dn: cn=alice,cn=Computers,dc=example,dc=com\nobjectClass: top\nobjectClass: person\n\
             objectClass: organizationalPerson\nobjectClass: user\nobjectClass: computer\n\
             cn: alice\nsn: alice\nsAMAccountName: alice\n",
    );
    refused(&out, 68, &["sAMAccountName", ALICE_DN]);
    // a user named like a group
    let out = add(
        &s,
        &user(
            "cn=devs,cn=Users,dc=example,dc=com",
            "devs",
            "sAMAccountName: Devs",
        ),
    );
    refused(
        &out,
        68,
        &["sAMAccountName", "cn=devs,ou=People,dc=example,dc=com"],
    );
    // krbtgt: the ticket-granting service's name, as group or user, any case
    for ldif in [
        group("cn=krbtgt,ou=People,dc=example,dc=com", "krbtgt", ""),
        group(
            "cn=tgs,ou=People,dc=example,dc=com",
            "tgs",
            "sAMAccountName: KrbTgt",
        ),
        user(
            "cn=k,ou=People,dc=example,dc=com",
            "k",
            "sAMAccountName: krbtgt",
        ),
    ] {
        let out = add(&s, &ldif);
        refused(
            &out,
            68,
            &["krbtgt", "cn=krbtgt,cn=Users,dc=example,dc=com"],
        );
    }
    // a distinct name is fine, and nothing refused above was stored
    ok(&add(
        &s,
        &group("cn=g2,ou=People,dc=example,dc=com", "g2", ""),
    ));
    assert_eq!(
        attr(&s, "cn=g2,ou=People,dc=example,dc=com", "sAMAccountName"),
        vec!["g2"]
    );
    assert_eq!(find(&s, "(sAMAccountName=alice)"), vec![ALICE_DN]);
    assert_eq!(
        find(&s, "(sAMAccountName=krbtgt)"),
        vec!["cn=krbtgt,cn=Users,dc=example,dc=com"]
    );
    assert!(find(&s, "(|(cn=g1)(cn=alice2)(cn=tgs)(cn=k))").is_empty());
}

#[test]
fn principal_names_are_unique_and_the_kdc_names_reserved() {
    require_tools();
    let s = TestServer::start_seeded();
    // UPN, other case
    let out = add(
        &s,
        &user(
            "cn=alice2,ou=People,dc=example,dc=com",
            "alice2",
            "sAMAccountName: alice2\nuserPrincipalName: Alice@Example.COM",
        ),
    );
    refused(&out, 19, &["userPrincipalName", ALICE_DN]);
    // SPN: host/x and HOST/x are the same service
    ok(&add(
        &s,
        &user(
            "cn=web1,ou=People,dc=example,dc=com",
            "web1",
            "sAMAccountName: web1\nservicePrincipalName: host/web.example.com\nservicePrincipalName: HTTP/web.example.com",
        ),
    ));
    let out = add(
        &s,
        &user(
            "cn=web2,ou=People,dc=example,dc=com",
            "web2",
            "sAMAccountName: web2\nservicePrincipalName: HOST/WEB.example.com",
        ),
    );
    refused(
        &out,
        19,
        &[
            "servicePrincipalName",
            "cn=web1,ou=People,dc=example,dc=com",
        ],
    );
    // the KDC's own services
    for spn in [
        "kadmin/changepw",
        "krbtgt/EXAMPLE.COM",
        "KRBTGT/OTHER.ORG@EXAMPLE.COM",
    ] {
        let out = add(
            &s,
            &user(
                "cn=evil,ou=People,dc=example,dc=com",
                "evil",
                &format!("sAMAccountName: evil\nservicePrincipalName: {spn}"),
            ),
        );
        refused(&out, 19, &["servicePrincipalName", spn, "reserved"]);
    }
    assert!(find(&s, "(|(cn=alice2)(cn=web2)(cn=evil))").is_empty());
}

#[test]
fn modify_and_modrdn_cannot_take_a_name() {
    require_tools();
    let s = TestServer::start_seeded();
    let change = |dn: &str, op: &str, a: &str, v: &str| {
        modify(
            &s,
            &format!("dn: {dn}\nchangetype: modify\n{op}: {a}\n{a}: {v}\n-\n"),
        )
    };
    refused(
        &change(BOB_DN, "replace", "sAMAccountName", "Alice"),
        68,
        &[ALICE_DN],
    );
    refused(
        &change(BOB_DN, "replace", "userPrincipalName", "ALICE@example.com"),
        19,
        &["userPrincipalName", ALICE_DN],
    );
    ok(&change(
        ALICE_DN,
        "add",
        "servicePrincipalName",
        "cifs/files.example.com",
    ));
    refused(
        &change(
            BOB_DN,
            "add",
            "servicePrincipalName",
            "CIFS/files.example.com",
        ),
        19,
        &["servicePrincipalName", ALICE_DN],
    );
    refused(
        &change(BOB_DN, "add", "servicePrincipalName", "kadmin/changepw"),
        19,
        &["reserved"],
    );
    // a group renamed (by its sAMAccountName) to a user's name
    refused(
        &change(
            "cn=devs,ou=People,dc=example,dc=com",
            "replace",
            "sAMAccountName",
            "carol",
        ),
        68,
        &[CAROL_DN],
    );
    // its own name again, in another case, and unrelated changes are fine
    ok(&change(BOB_DN, "replace", "sAMAccountName", "BOB"));
    ok(&change(BOB_DN, "replace", "description", "still bob"));
    assert_eq!(attr(&s, BOB_DN, "sAMAccountName"), vec!["BOB"]);
    assert_eq!(
        attr(&s, BOB_DN, "userPrincipalName"),
        vec!["bob@example.com"]
    );

    // modrdn whose new RDN value is a taken sAMAccountName
    ok(&add(
        &s,
        "dn: sAMAccountName=temp,ou=People,dc=example,dc=com\nobjectClass: top\n\
             objectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\n\
             cn: temp\nsn: temp\nsAMAccountName: temp\n",
    ));
    let out = modrdn(
        &s,
        "sAMAccountName=temp,ou=People,dc=example,dc=com",
        "sAMAccountName=alice",
        &["-r"],
    );
    refused(&out, 68, &["sAMAccountName", ALICE_DN]);
    assert_eq!(
        find(&s, "(sAMAccountName=temp)"),
        vec!["sAMAccountName=temp,ou=People,dc=example,dc=com"]
    );
}

#[test]
fn posix_ids_are_unique_and_the_allocator_skips_taken_ones() {
    require_tools();
    let s = TestServer::start_seeded();
    // explicit uidNumber in use (alice has 10001)
    let out = add(
        &s,
        &user(
            "cn=u0,ou=People,dc=example,dc=com",
            "u0",
            "sAMAccountName: u0\nuidNumber: 10001",
        ),
    );
    refused(&out, 19, &["uidNumber", "10001", ALICE_DN]);
    // gidNumber: unique among groups; a user's gidNumber names its primary group
    let devs = "cn=devs,ou=People,dc=example,dc=com";
    let devs_gid = attr(&s, devs, "gidNumber");
    assert_eq!(devs_gid.len(), 1, "devs has a gidNumber");
    let devs_gid = &devs_gid[0];
    let out = add(
        &s,
        &group(
            "cn=g3,ou=People,dc=example,dc=com",
            "g3",
            &format!("gidNumber: {devs_gid}"),
        ),
    );
    refused(&out, 19, &["gidNumber", devs_gid, devs]);
    ok(&add(
        &s,
        &user(
            "cn=u1,ou=People,dc=example,dc=com",
            "u1",
            &format!("sAMAccountName: u1\ngidNumber: {devs_gid}"),
        ),
    ));
    // a modify cannot take a number either
    let out = modify(
        &s,
        &format!("dn: cn=ops,ou=People,dc=example,dc=com\nchangetype: modify\nreplace: gidNumber\ngidNumber: {devs_gid}\n-\n"),
    );
    refused(&out, 19, &["gidNumber", devs]);
    let out = modify(
        &s,
        &format!("dn: {BOB_DN}\nchangetype: modify\nreplace: uidNumber\nuidNumber: 10001\n-\n"),
    );
    refused(&out, 19, &["uidNumber", ALICE_DN]);

    // The allocator: the next user gets n; an admin then sets another user's uidNumber to
    // n+2 with a modify; the following users get n+1 and then n+3, never n+2.
    let uid_of = |dn: &str| -> u64 { attr(&s, dn, "uidNumber")[0].parse().unwrap() };
    ok(&add(
        &s,
        &user("cn=a1,ou=People,dc=example,dc=com", "a1", ""),
    ));
    let n = uid_of("cn=a1,ou=People,dc=example,dc=com");
    ok(&modify(
        &s,
        &format!(
            "dn: cn=u1,ou=People,dc=example,dc=com\nchangetype: modify\nreplace: uidNumber\nuidNumber: {}\n-\n",
            n + 2
        ),
    ));
    ok(&add(
        &s,
        &user("cn=a2,ou=People,dc=example,dc=com", "a2", ""),
    ));
    ok(&add(
        &s,
        &user("cn=a3,ou=People,dc=example,dc=com", "a3", ""),
    ));
    assert_eq!(uid_of("cn=a2,ou=People,dc=example,dc=com"), n + 1);
    assert_eq!(uid_of("cn=a3,ou=People,dc=example,dc=com"), n + 3);
    let holders = find(&s, &format!("(uidNumber={})", n + 2));
    assert_eq!(holders, vec!["cn=u1,ou=People,dc=example,dc=com"]);

    // The same for groups: a gidNumber set by a modify is skipped by the allocator.
    ok(&add(
        &s,
        &group("cn=b1,ou=People,dc=example,dc=com", "b1", ""),
    ));
    let g: u64 = attr(&s, "cn=b1,ou=People,dc=example,dc=com", "gidNumber")[0]
        .parse()
        .unwrap();
    ok(&modify(
        &s,
        &format!(
            "dn: cn=ops,ou=People,dc=example,dc=com\nchangetype: modify\nreplace: gidNumber\ngidNumber: {}\n-\n",
            g + 1
        ),
    ));
    ok(&add(
        &s,
        &group("cn=b2,ou=People,dc=example,dc=com", "b2", ""),
    ));
    let g2: u64 = attr(&s, "cn=b2,ou=People,dc=example,dc=com", "gidNumber")[0]
        .parse()
        .unwrap();
    assert_eq!(g2, g + 2);
}

#[test]
fn twenty_concurrent_adds_of_one_name_one_wins() {
    require_tools();
    let s = TestServer::start_seeded();
    // 20 ldapadd processes started back to back, before any is waited for.
    let children: Vec<_> = (0..20)
        .map(|i| {
            let ldif = user(
                &format!("cn=racer{i},ou=People,dc=example,dc=com"),
                &format!("racer{i}"),
                &format!("sAMAccountName: racer\nuserPrincipalName: racer{i}@example.com"),
            );
            let mut child = Command::new("ldapadd")
                .args(["-x", "-H", &s.ldaps_url(), "-D", ADMIN_DN, "-w", ADMIN_PW])
                .args(["-o", "nettimeout=30"])
                .env("LDAPTLS_CACERT", s.ca())
                .env("LDAPTLS_REQCERT", "demand")
                .env("LDAPCONF", "/dev/null")
                .env("LDAPRC", "/nonexistent-dird-test-ldaprc")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run ldapadd (install ldap-utils)");
            common::feed_stdin(&mut child, ldif.as_bytes());
            child
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let won = outs.iter().filter(|o| rc(o) == 0).count();
    assert_eq!(won, 1, "exactly one add succeeds");
    for o in outs.iter().filter(|o| rc(o) != 0) {
        refused(o, 68, &["sAMAccountName", "racer"]);
    }
    assert_eq!(find(&s, "(sAMAccountName=racer)").len(), 1);
}

#[test]
fn a_user_without_a_name_gets_one_and_can_kinit_at_once() {
    require_tools();
    let s = TestServer::start_kdc();
    ok(&add(
        &s,
        "dn: ou=People,dc=example,dc=com\nobjectClass: organizationalUnit\nou: People\n\n\
         dn: ou=Staff,dc=example,dc=com\nobjectClass: organizationalUnit\nou: Staff\n",
    ));
    // only cn (+ the sn person requires) and a password, over LDAPS
    ok(&add(
        &s,
        &user(
            "cn=zoe,ou=People,dc=example,dc=com",
            "zoe",
            "userPassword: Zoe-Passw0rd-1",
        ),
    ));
    assert_eq!(
        attr(&s, "cn=zoe,ou=People,dc=example,dc=com", "sAMAccountName"),
        vec!["zoe"]
    );
    let out = s.krb(UDP, "cc.zoe", &["kinit", "zoe"], "Zoe-Passw0rd-1\n");
    assert!(out.status.success(), "kinit zoe: {}", text(&out));
    // the same cn elsewhere: made unique
    ok(&add(
        &s,
        &user(
            "cn=zoe,ou=Staff,dc=example,dc=com",
            "zoe",
            "userPassword: Zoe-Staff-Passw0rd-2",
        ),
    ));
    assert_eq!(
        attr(&s, "cn=zoe,ou=Staff,dc=example,dc=com", "sAMAccountName"),
        vec!["zoe1"]
    );
    let out = s.krb(UDP, "cc.zoe1", &["kinit", "zoe1"], "Zoe-Staff-Passw0rd-2\n");
    assert!(out.status.success(), "kinit zoe1: {}", text(&out));
    // AD's 20-character limit
    let long = "Maximilian Alexander Longname";
    ok(&add(
        &s,
        &user(
            &format!("cn={long},ou=People,dc=example,dc=com"),
            long,
            "userPassword: Long-Passw0rd-3",
        ),
    ));
    let name = attr(
        &s,
        &format!("cn={long},ou=People,dc=example,dc=com"),
        "sAMAccountName",
    );
    assert_eq!(name, vec!["Maximilian Alexander"]);
    let out = s.krb(
        UDP,
        "cc.long",
        &["kinit", "Maximilian Alexander"],
        "Long-Passw0rd-3\n",
    );
    assert!(
        out.status.success(),
        "kinit by the truncated name: {}",
        text(&out)
    );
}

#[test]
fn offline_import_refuses_duplicates_all_or_nothing() {
    require_tools();
    let mut s = TestServer::configured("");
    let init = s.cli(&["init"]);
    assert!(init.status.success(), "{}", text(&init));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dup.ldif");
    // two new users with one name in one file
    std::fs::write(
        &file,
        format!(
            "dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: People\n\n{}\n{}",
            user(ALICE_DN, "alice", "sAMAccountName: alice"),
            user(BOB_DN, "bob", "sAMAccountName: Alice"),
        ),
    )
    .unwrap();
    let out = s.cli(&["import", file.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("sAMAccountName") && all.contains(ALICE_DN),
        "{all}"
    );
    // a name the provisioned directory holds
    std::fs::write(
        &file,
        group(
            "cn=Admins,cn=Users,dc=example,dc=com",
            "Admins",
            "sAMAccountName: administrator",
        ),
    )
    .unwrap();
    let out = s.cli(&["import", file.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("cn=Administrator,cn=Users,dc=example,dc=com"),
        "{}",
        text(&out)
    );
    // the CLI too
    let out = s.cli(&[
        "group",
        "add",
        "Administrator",
        "--parent",
        "cn=Computers,dc=example,dc=com",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("sAMAccountName"), "{}", text(&out));
    assert!(text(&out).contains(ADMIN_DN), "{}", text(&out));

    s.launch();
    assert!(find(&s, "(|(sAMAccountName=alice)(cn=Admins)(ou=People))").is_empty());
    assert_eq!(find(&s, "(sAMAccountName=administrator)"), vec![ADMIN_DN]);
}

#[test]
fn links_follow_renames_moves_and_deletes() {
    require_tools();
    let s = TestServer::start_seeded();
    let pso = format!("cn=people-pso,{PSO_CONTAINER}");
    let dan_entry = user(
        "cn=dan,ou=Team,ou=Dept,dc=example,dc=com",
        "dan",
        &format!("sAMAccountName: dan\nmanager: {ALICE_DN}"),
    );
    let pso_entry = format!(
        "dn: {pso}\nobjectClass: top\nobjectClass: msDS-PasswordSettings\ncn: people-pso\n\
         msDS-PasswordSettingsPrecedence: 5\nmsDS-MinimumPasswordLength: 14\n\
         msDS-PasswordComplexityEnabled: FALSE\n\
         msDS-PSOAppliesTo: {ALICE_DN}\nmsDS-PSOAppliesTo: cn=dan,ou=Team,ou=Dept,dc=example,dc=com\n"
    );
    ok(&add(
        &s,
        &format!(
            "dn: ou=Dept,dc=example,dc=com\nobjectClass: organizationalUnit\nou: Dept\n\n\
             dn: ou=Team,ou=Dept,dc=example,dc=com\nobjectClass: organizationalUnit\nou: Team\n\n\
             {dan_entry}\n{pso_entry}"
        ),
    ));
    let resultant = |dn: &str| attr(&s, dn, "msDS-ResultantPSO");
    let applies = || {
        let mut v = attr(&s, &pso, "msDS-PSOAppliesTo");
        v.sort();
        v
    };
    assert_eq!(resultant(ALICE_DN), vec![pso.clone()]);

    // rename alice: the PSO still applies, its link and dan's manager show the new DN
    ok(&modrdn(&s, ALICE_DN, "cn=alicia", &["-r"]));
    let alicia = "cn=alicia,ou=People,dc=example,dc=com";
    assert_eq!(resultant(alicia), vec![pso.clone()]);
    assert_eq!(
        applies(),
        vec![
            alicia.to_string(),
            "cn=dan,ou=Team,ou=Dept,dc=example,dc=com".to_string()
        ]
    );
    assert_eq!(
        attr(&s, "cn=dan,ou=Team,ou=Dept,dc=example,dc=com", "manager"),
        vec![alicia]
    );
    // the policy is enforced for the renamed user, not just reported
    let out = modify(
        &s,
        &format!("dn: {alicia}\nchangetype: modify\nreplace: userPassword\nuserPassword: Short-pw-12\n-\n"),
    );
    refused(&out, 19, &["14"]);

    // subtree rename of the OU above dan, then a move of dan to another parent
    ok(&modrdn(
        &s,
        "ou=Dept,dc=example,dc=com",
        "ou=Division",
        &["-r"],
    ));
    let dan = "cn=dan,ou=Team,ou=Division,dc=example,dc=com";
    assert_eq!(applies(), vec![alicia.to_string(), dan.to_string()]);
    assert_eq!(resultant(dan), vec![pso.clone()]);
    ok(&modrdn(&s, dan, "cn=dan", &["-s", PEOPLE]));
    let dan = "cn=dan,ou=People,dc=example,dc=com";
    assert_eq!(applies(), vec![alicia.to_string(), dan.to_string()]);
    assert_eq!(resultant(dan), vec![pso.clone()]);

    // membership follows too (as before), through the subtree move of alice's group
    assert!(attr(&s, "cn=devs,ou=People,dc=example,dc=com", "member").contains(&alicia.to_string()));

    // delete: the links go away in the same write; a new entry at the old DN inherits nothing
    let out = s.tool(
        "ldapdelete",
        &[
            "-x",
            "-H",
            &s.ldaps_url(),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            alicia,
        ],
    );
    ok(&out);
    assert_eq!(applies(), vec![dan.to_string()]);
    assert!(attr(&s, dan, "manager").is_empty());
    assert!(
        !attr(&s, "cn=devs,ou=People,dc=example,dc=com", "member").contains(&alicia.to_string())
    );
    ok(&add(&s, &user(alicia, "alicia", "sAMAccountName: alicia")));
    assert!(
        resultant(alicia).is_empty(),
        "a new entry at a deleted DN has no PSO"
    );
}
