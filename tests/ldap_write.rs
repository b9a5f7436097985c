#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Writes (RFC 4511 §4.6-4.11, RFC 3062) driven by the real OpenLDAP tools: ldapadd,
//! ldapmodify, ldapdelete, ldapmodrdn, ldapcompare, ldappasswd; schema errors with their exact
//! result codes; write access control; a 10,000-member group; Abandon.

mod common;

use common::*;

/// ldapmodify as `dn`/`pw` over `url` (with `-ZZ` when `starttls`), feeding `ldif`.
fn modify_as(
    s: &TestServer,
    url: &str,
    starttls: bool,
    dn: &str,
    pw: &str,
    ldif: &str,
) -> std::process::Output {
    let mut args = vec!["-x", "-o", "nettimeout=10", "-H", url, "-D", dn, "-w", pw];
    if starttls {
        args.push("-ZZ");
    }
    s.tool_stdin("ldapmodify", &args, Some(ldif))
}

/// ldapmodify as Administrator over ldap://.
fn admin_modify(s: &TestServer, ldif: &str) -> std::process::Output {
    s.modify_as_admin(&s.ldap_url(), ldif)
}

/// Reads one entry's attributes as Administrator.
fn read(s: &TestServer, dn: &str, attrs: &[&str]) -> std::process::Output {
    let mut args = vec!["-b", dn, "-s", "base", "(objectClass=*)"];
    args.extend_from_slice(attrs);
    s.search_as_admin(&args)
}

/// The admin tool arguments for `tool` over a transport.
fn admin_args(url: &str, starttls: bool) -> Vec<String> {
    let mut v: Vec<String> = [
        "-x",
        "-o",
        "nettimeout=10",
        "-H",
        url,
        "-D",
        ADMIN_DN,
        "-w",
        ADMIN_PW,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if starttls {
        v.push("-ZZ".into());
    }
    v
}

fn run(
    s: &TestServer,
    tool: &str,
    base: &[String],
    extra: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    let mut args: Vec<&str> = base.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    s.tool_stdin(tool, &args, stdin)
}

#[test]
fn ldapadd_over_ldap_starttls_and_ldaps() {
    let s = TestServer::start_seeded();
    for (i, (url, tls)) in [
        (s.ldap_url(), false),
        (s.ldap_url(), true),
        (s.ldaps_url(), false),
    ]
    .into_iter()
    .enumerate()
    {
        let dn = format!("cn=user{i},{PEOPLE}");
        let ldif = format!(
            "dn: {dn}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\ncn: user{i}\nsn: Number{i}\nsAMAccountName: user{i}\ndescription: added over {url} tls={tls}\nuserPassword: user{i}-Passw0rd\n"
        );
        let out = run(&s, "ldapadd", &admin_args(&url, tls), &[], Some(&ldif));
        assert_eq!(rc(&out), 0, "{}", text(&out));
        assert!(
            stdout(&out).contains(&format!("adding new entry \"{dn}\"")),
            "{}",
            text(&out)
        );
        let got = read(&s, &dn, &["sn", "description", "objectSid", "objectGUID"]);
        assert_eq!(values(&got, "sn"), vec![format!("Number{i}")]);
        assert_eq!(
            values(&got, "description"),
            vec![format!("added over {url} tls={tls}")]
        );
        assert_eq!(
            values(&got, "objectSid").len(),
            1,
            "a user gets a SID: {}",
            text(&got)
        );
        assert_eq!(values(&got, "objectGUID").len(), 1, "{}", text(&got));
        // the password given at add binds
        let who = s.whoami(&[
            "-H",
            &s.ldap_url(),
            "-D",
            &format!("user{i}@example.com"),
            "-w",
            &format!("user{i}-Passw0rd"),
        ]);
        assert_eq!(rc(&who), 0, "{}", text(&who));
        assert_eq!(stdout(&who).trim(), format!("dn:{dn}"));
    }
}

#[test]
fn ldapmodify_add_delete_replace_and_increment() {
    let s = TestServer::start_seeded();
    let out = admin_modify(
        &s,
        &format!(
            "dn: {ALICE_DN}\nchangetype: modify\nadd: description\ndescription: one\ndescription: two\ndescription: three\n-\ndelete: description\ndescription: two\n-\nreplace: sn\nsn: Pleasance\n-\nincrement: uidNumber\nuidNumber: 5\n-\ndelete: loginShell\n-\nreplace: telephoneNumber\ntelephoneNumber: +1 555 0100\n"
        ),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let got = read(
        &s,
        ALICE_DN,
        &[
            "description",
            "sn",
            "uidNumber",
            "loginShell",
            "telephoneNumber",
        ],
    );
    let mut d = values(&got, "description");
    d.sort();
    assert_eq!(d, vec!["one", "three"]);
    assert_eq!(values(&got, "sn"), vec!["Pleasance"]);
    assert_eq!(
        values(&got, "uidNumber"),
        vec!["10006"],
        "increment by 5 (RFC 4525)"
    );
    assert!(values(&got, "loginShell").is_empty());
    assert_eq!(values(&got, "telephoneNumber"), vec!["+1 555 0100"]);
    // negative increment, replace with no values deletes, and the new values are searchable
    let out = admin_modify(&s, &format!("dn: {ALICE_DN}\nchangetype: modify\nincrement: uidNumber\nuidNumber: -6\n-\nreplace: description\n"));
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let got = read(&s, ALICE_DN, &["description", "uidNumber"]);
    assert_eq!(values(&got, "uidNumber"), vec!["10000"]);
    assert!(values(&got, "description").is_empty());
    let out = s.search_as_admin(&["-b", BASE, "(&(sn=Pleasance)(uidNumber=10000))", "1.1"]);
    assert_eq!(
        dns(&out),
        vec![ALICE_DN.to_string()],
        "indexes follow modifies"
    );
    let out = s.search_as_admin(&["-b", BASE, "(sn=Liddell)", "1.1"]);
    assert!(dns(&out).is_empty(), "old value gone from the index");
    // a modify is atomic: one bad change leaves the entry as it was
    let out = admin_modify(&s, &format!("dn: {ALICE_DN}\nchangetype: modify\nreplace: sn\nsn: Changed\n-\nadd: uidNumber\nuidNumber: 7\n"));
    assert_eq!(
        rc(&out),
        19,
        "second uidNumber on a single-valued attribute: {}",
        text(&out)
    );
    assert_eq!(
        values(&read(&s, ALICE_DN, &["sn"]), "sn"),
        vec!["Pleasance"]
    );
    // modify of a missing entry
    let out = admin_modify(
        &s,
        &format!("dn: cn=ghost,{PEOPLE}\nchangetype: modify\nreplace: sn\nsn: x\n"),
    );
    assert_eq!(rc(&out), 32, "{}", text(&out));
}

#[test]
fn ldapdelete_leaf_and_non_leaf() {
    let s = TestServer::start_seeded();
    let out = run(
        &s,
        "ldapdelete",
        &admin_args(&s.ldap_url(), false),
        &[PEOPLE],
        None,
    );
    assert_eq!(rc(&out), 66, "notAllowedOnNonLeaf: {}", text(&out));
    assert!(text(&out).contains("Operation not allowed on non-leaf (66)"));
    let out = run(
        &s,
        "ldapdelete",
        &admin_args(&s.ldaps_url(), false),
        &[CAROL_DN],
        None,
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let out = read(&s, CAROL_DN, &[]);
    assert_eq!(rc(&out), 32, "deleted: {}", text(&out));
    let out = run(
        &s,
        "ldapdelete",
        &admin_args(&s.ldap_url(), true),
        &[CAROL_DN],
        None,
    );
    assert_eq!(rc(&out), 32, "already gone: {}", text(&out));
    // delete a member: memberOf is computed, the group's member value is what remains
    let out = run(
        &s,
        "ldapdelete",
        &admin_args(&s.ldap_url(), false),
        &[&format!("cn=ops,{PEOPLE}")],
        None,
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let out = s.search_as_admin(&[
        "-b",
        BASE,
        "(memberOf:1.2.840.113556.1.4.1941:=cn=devs,ou=People,dc=example,dc=com)",
        "1.1",
    ]);
    assert_eq!(
        dns(&out),
        vec![ALICE_DN.to_string()],
        "bob is no longer in devs through ops: {}",
        text(&out)
    );
    // -r deletes a subtree leaf-first
    let out = run(
        &s,
        "ldapdelete",
        &admin_args(&s.ldap_url(), false),
        &["-r", PEOPLE],
        None,
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let out = s.search_as_admin(&["-b", BASE, "(cn=alice)", "1.1"]);
    assert!(dns(&out).is_empty());
}

#[test]
fn ldapmodrdn_rename_delete_old_rdn_and_move_subtree() {
    let s = TestServer::start_seeded();
    let a = admin_args(&s.ldap_url(), false);
    // rename, keeping the old RDN value
    let out = run(&s, "ldapmodrdn", &a, &[ALICE_DN, "cn=alice2"], None);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let new_dn = format!("cn=alice2,{PEOPLE}");
    let got = read(&s, &new_dn, &["cn", "entryDN"]);
    let mut cn = values(&got, "cn");
    cn.sort();
    assert_eq!(cn, vec!["alice", "alice2"]);
    assert_eq!(values(&got, "entryDN"), vec![new_dn.clone()]);
    assert_eq!(rc(&read(&s, ALICE_DN, &[])), 32);
    // alice still binds under her new DN, and UPN
    let who = s.whoami(&[
        "-H",
        &s.ldap_url(),
        "-D",
        "alice@example.com",
        "-w",
        ALICE_PW,
    ]);
    assert_eq!(
        stdout(&who).trim(),
        format!("dn:{new_dn}"),
        "{}",
        text(&who)
    );
    // -r: delete the old RDN value
    let out = run(&s, "ldapmodrdn", &a, &["-r", &new_dn, "cn=alice3"], None);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let got = read(&s, &format!("cn=alice3,{PEOPLE}"), &["cn"]);
    let mut cn = values(&got, "cn");
    cn.sort();
    assert_eq!(cn, vec!["alice", "alice3"], "alice2 removed, alice kept");
    // rename onto an existing entry
    let out = run(&s, "ldapmodrdn", &a, &[BOB_DN, "cn=carol"], None);
    assert_eq!(rc(&out), 68, "{}", text(&out));
    // move a subtree with newSuperior
    let out = admin_modify(&s, "dn: ou=Staff,dc=example,dc=com\nchangetype: add\nobjectClass: organizationalUnit\nou: Staff\n");
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let out = run(
        &s,
        "ldapmodrdn",
        &a,
        &["-s", "ou=Staff,dc=example,dc=com", PEOPLE, "ou=People"],
        None,
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let moved = "ou=People,ou=Staff,dc=example,dc=com";
    let out = s.search_as_admin(&["-b", moved, "(objectClass=*)", "entryDN"]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let mut got = dns(&out);
    got.sort();
    let mut want: Vec<String> = ["cn=alice3", "cn=bob", "cn=carol", "cn=devs", "cn=ops"]
        .iter()
        .map(|r| format!("{r},{moved}"))
        .collect();
    want.push(moved.to_string());
    want.sort();
    assert_eq!(got, want);
    let mut edn = values(&out, "entryDN");
    edn.sort();
    assert_eq!(edn, want, "descendants have their new DNs");
    assert!(
        dns(&s.search_as_admin(&["-b", BASE, "(cn=bob)", "1.1"]))
            == vec![format!("cn=bob,{moved}")]
    );
    assert_eq!(rc(&read(&s, PEOPLE, &[])), 32, "old location is empty");
    // Group links follow renames and moves (AD-style referential integrity): devs still
    // holds alice (renamed twice, then moved) and the moved ops group.
    let devs = read(&s, &format!("cn=devs,{moved}"), &["member"]);
    let mut members = values(&devs, "member");
    members.sort();
    assert_eq!(
        members,
        vec![format!("cn=alice3,{moved}"), format!("cn=ops,{moved}")],
        "{}",
        text(&devs)
    );
    let alice = read(&s, &format!("cn=alice3,{moved}"), &["memberOf"]);
    assert_eq!(values(&alice, "memberOf"), vec![format!("cn=devs,{moved}")]);
    // ... and deletes: deleting bob removes him from ops.
    let out = run(&s, "ldapdelete", &a, &[&format!("cn=bob,{moved}")], None);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let ops = read(&s, &format!("cn=ops,{moved}"), &["member"]);
    assert!(values(&ops, "member").is_empty(), "{}", text(&ops));
    let out = admin_modify(&s, &format!("dn: cn=bob,{moved}\nchangetype: add\nobjectClass: user\ncn: bob\nsAMAccountName: bob\nuserPassword: {BOB_PW}\n"));
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let ops = read(&s, &format!("cn=ops,{moved}"), &["member"]);
    assert!(
        values(&ops, "member").is_empty(),
        "a new bob does not inherit the old one's groups"
    );
    // bob binds at the new place
    let who = s.whoami(&[
        "-H",
        &s.ldap_url(),
        "-D",
        &format!("cn=bob,{moved}"),
        "-w",
        BOB_PW,
    ]);
    assert_eq!(rc(&who), 0, "{}", text(&who));
    // moving under one's own subtree is refused
    let out = run(
        &s,
        "ldapmodrdn",
        &a,
        &["-s", &format!("cn=bob,{moved}"), moved, "ou=People"],
        None,
    );
    assert_ne!(rc(&out), 0, "{}", text(&out));
    // moving under a missing parent
    let out = run(
        &s,
        "ldapmodrdn",
        &a,
        &[
            "-s",
            "ou=Nowhere,dc=example,dc=com",
            &format!("cn=bob,{moved}"),
            "cn=bob",
        ],
        None,
    );
    assert_eq!(rc(&out), 32, "{}", text(&out));
}

#[test]
fn ldapcompare_true_false_and_undefined() {
    let s = TestServer::start_seeded();
    for (url, tls) in [
        (s.ldap_url(), false),
        (s.ldap_url(), true),
        (s.ldaps_url(), false),
    ] {
        let a = admin_args(&url, tls);
        let out = run(&s, "ldapcompare", &a, &[ALICE_DN, "sn:Liddell"], None);
        assert_eq!(
            (rc(&out), stdout(&out).trim().to_string()),
            (6, "TRUE".into()),
            "{}",
            text(&out)
        );
        let out = run(&s, "ldapcompare", &a, &[ALICE_DN, "sn:LIDDELL"], None);
        assert_eq!(rc(&out), 6, "caseIgnoreMatch: {}", text(&out));
        let out = run(&s, "ldapcompare", &a, &[ALICE_DN, "sn:Nope"], None);
        assert_eq!(
            (rc(&out), stdout(&out).trim().to_string()),
            (5, "FALSE".into()),
            "{}",
            text(&out)
        );
        let out = run(&s, "ldapcompare", &a, &[ALICE_DN, "uidNumber:10001"], None);
        assert_eq!(rc(&out), 6, "{}", text(&out));
        let out = run(
            &s,
            "ldapcompare",
            &a,
            &[ALICE_DN, "noSuchAttribute:x"],
            None,
        );
        assert_eq!(rc(&out), 17, "undefinedAttributeType: {}", text(&out));
        assert!(stdout(&out).contains("UNDEFINED"), "{}", text(&out));
        let out = run(&s, "ldapcompare", &a, &[ALICE_DN, "description:x"], None);
        assert_eq!(
            rc(&out),
            16,
            "noSuchAttribute (attribute absent): {}",
            text(&out)
        );
        let out = run(
            &s,
            "ldapcompare",
            &a,
            &[&format!("cn=ghost,{PEOPLE}"), "cn:ghost"],
            None,
        );
        assert_eq!(rc(&out), 32, "{}", text(&out));
        let out = run(
            &s,
            "ldapcompare",
            &a,
            &[
                &format!("cn=devs,{PEOPLE}"),
                &format!("member:CN=Alice,{PEOPLE}"),
            ],
            None,
        );
        assert_eq!(rc(&out), 6, "DN syntax compare: {}", text(&out));
    }
    // userPassword is no compare oracle, even for the administrator
    for (dn, pw) in [(ADMIN_DN, ADMIN_PW), (BOB_DN, BOB_PW)] {
        let out = s.tool(
            "ldapcompare",
            &[
                "-x",
                "-H",
                &s.ldap_url(),
                "-D",
                dn,
                "-w",
                pw,
                ALICE_DN,
                &format!("userPassword:{ALICE_PW}"),
            ],
        );
        assert_ne!(rc(&out), 6, "{dn}: {}", text(&out));
        assert_ne!(rc(&out), 5, "{dn}: {}", text(&out));
    }
}

#[test]
fn ldappasswd_self_service_generated_and_cleartext_refused() {
    let s = TestServer::start_seeded();
    // self-service with old and new over ldaps
    let out = s.tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &s.ldaps_url(),
            "-D",
            BOB_DN,
            "-w",
            BOB_PW,
            "-a",
            BOB_PW,
            "-s",
            "bob-New-Passw0rd",
        ],
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let old = s.whoami(&["-H", &s.ldap_url(), "-D", BOB_DN, "-w", BOB_PW]);
    assert_eq!(rc(&old), 49, "old password no longer binds: {}", text(&old));
    let new = s.whoami(&["-H", &s.ldap_url(), "-D", BOB_DN, "-w", "bob-New-Passw0rd"]);
    assert_eq!(rc(&new), 0, "{}", text(&new));
    // a wrong old password
    let out = s.tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &s.ldaps_url(),
            "-D",
            BOB_DN,
            "-w",
            "bob-New-Passw0rd",
            "-a",
            "wrong",
            "-s",
            "x-Passw0rd-9",
        ],
    );
    assert_ne!(rc(&out), 0, "{}", text(&out));
    assert!(s
        .whoami(&["-H", &s.ldap_url(), "-D", BOB_DN, "-w", "bob-New-Passw0rd"])
        .status
        .success());
    // a generated password (no -s) is printed and works; over StartTLS
    let out = s.tool(
        "ldappasswd",
        &[
            "-x",
            "-ZZ",
            "-H",
            &s.ldap_url(),
            "-D",
            BOB_DN,
            "-w",
            "bob-New-Passw0rd",
            "-a",
            "bob-New-Passw0rd",
        ],
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let generated = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("New password: "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no 'New password:' line: {}", text(&out)));
    assert!(generated.len() >= 12, "{generated}");
    let who = s.whoami(&["-H", &s.ldaps_url(), "-D", BOB_DN, "-w", &generated]);
    assert_eq!(
        stdout(&who).trim(),
        format!("dn:{BOB_DN}"),
        "{}",
        text(&who)
    );
    // cleartext: confidentialityRequired (13), password unchanged
    let out = s.tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &s.ldap_url(),
            "-D",
            BOB_DN,
            "-w",
            &generated,
            "-a",
            &generated,
            "-s",
            "plain-Passw0rd-1",
        ],
    );
    assert_ne!(rc(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("Confidentiality required (13)"),
        "{}",
        text(&out)
    );
    assert_eq!(
        rc(&s.whoami(&["-H", &s.ldap_url(), "-D", BOB_DN, "-w", &generated])),
        0
    );
    // the administrator resets another user's password (target DN argument)
    let out = s.tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &s.ldaps_url(),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            "-s",
            "reset-Passw0rd-2",
            ALICE_DN,
        ],
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(
        rc(&s.whoami(&[
            "-H",
            &s.ldap_url(),
            "-D",
            ALICE_DN,
            "-w",
            "reset-Passw0rd-2"
        ])),
        0
    );
    // a user cannot reset someone else's password
    let out = s.tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &s.ldaps_url(),
            "-D",
            BOB_DN,
            "-w",
            &generated,
            "-s",
            "evil-Passw0rd-3",
            ALICE_DN,
        ],
    );
    assert_ne!(rc(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("Insufficient access (50)"),
        "{}",
        text(&out)
    );
    assert_eq!(
        rc(&s.whoami(&["-H", &s.ldap_url(), "-D", ALICE_DN, "-w", "evil-Passw0rd-3"])),
        49
    );
    // anonymous Password Modify without a target is refused
    let out = s.tool(
        "ldappasswd",
        &["-x", "-H", &s.ldaps_url(), "-s", "anon-Passw0rd-4"],
    );
    assert_ne!(rc(&out), 0, "{}", text(&out));
}

#[test]
fn user_password_modify_needs_tls() {
    let s = TestServer::start_seeded();
    let change = |pw: &str| {
        format!("dn: {BOB_DN}\nchangetype: modify\nreplace: userPassword\nuserPassword: {pw}\n")
    };
    // A user proves the old password: delete of the old value plus add of the new one.
    let own = |old: &str, new: &str| {
        format!(
            "dn: {BOB_DN}\nchangetype: modify\ndelete: userPassword\nuserPassword: {old}\n-\n\
             add: userPassword\nuserPassword: {new}\n-\n"
        )
    };
    let out = modify_as(
        &s,
        &s.ldap_url(),
        false,
        BOB_DN,
        BOB_PW,
        &own(BOB_PW, "clear-Passw0rd-1"),
    );
    assert_eq!(
        rc(&out),
        13,
        "confidentialityRequired over cleartext: {}",
        text(&out)
    );
    assert_eq!(
        rc(&s.whoami(&["-H", &s.ldap_url(), "-D", BOB_DN, "-w", BOB_PW])),
        0,
        "unchanged"
    );
    let out = modify_as(
        &s,
        &s.ldap_url(),
        true,
        BOB_DN,
        BOB_PW,
        &own(BOB_PW, "tls-Passw0rd-1"),
    );
    assert_eq!(rc(&out), 0, "over StartTLS: {}", text(&out));
    assert_eq!(
        rc(&s.whoami(&["-H", &s.ldap_url(), "-D", BOB_DN, "-w", "tls-Passw0rd-1"])),
        0
    );
    let out = modify_as(
        &s,
        &s.ldaps_url(),
        false,
        BOB_DN,
        "tls-Passw0rd-1",
        &own("tls-Passw0rd-1", "ldaps-Passw0rd-1"),
    );
    assert_eq!(rc(&out), 0, "over ldaps: {}", text(&out));
    assert_eq!(
        rc(&s.whoami(&["-H", &s.ldap_url(), "-D", BOB_DN, "-w", "ldaps-Passw0rd-1"])),
        0
    );
    // the administrator over cleartext is refused too
    let out = modify_as(
        &s,
        &s.ldap_url(),
        false,
        ADMIN_DN,
        ADMIN_PW,
        &change("admin-Passw0rd-1"),
    );
    assert_eq!(rc(&out), 13, "{}", text(&out));
    // and the stored value is a hash, never the cleartext
    let out = s.search_as_admin(&[
        "-b",
        BOB_DN,
        "-s",
        "base",
        "(objectClass=*)",
        "userPassword",
    ]);
    assert!(!stdout(&out).contains("ldaps-Passw0rd-1"));
}

#[test]
fn users_cannot_modify_others_or_their_own_other_attributes() {
    let s = TestServer::start_seeded();
    let url = s.ldaps_url();
    for (target, attr) in [
        (ALICE_DN, "sn"),
        (ALICE_DN, "userPassword"),
        (BOB_DN, "sn"),
        (BOB_DN, "userAccountControl"),
        (BOB_DN, "memberOf"),
    ] {
        let ldif = format!("dn: {target}\nchangetype: modify\nreplace: {attr}\n{attr}: 512\n");
        let out = modify_as(&s, &url, false, BOB_DN, BOB_PW, &ldif);
        assert_eq!(
            rc(&out),
            50,
            "bob modifying {attr} of {target}: {}",
            text(&out)
        );
    }
    // groups: bob cannot add himself
    let out = modify_as(
        &s,
        &url,
        false,
        BOB_DN,
        BOB_PW,
        &format!("dn: cn=devs,{PEOPLE}\nchangetype: modify\nadd: member\nmember: {BOB_DN}\n"),
    );
    assert_eq!(rc(&out), 50, "{}", text(&out));
    // nor add, delete or rename entries
    let out = modify_as(
        &s,
        &url,
        false,
        BOB_DN,
        BOB_PW,
        &format!("dn: cn=x,{PEOPLE}\nchangetype: add\nobjectClass: person\ncn: x\nsn: x\n"),
    );
    assert_eq!(rc(&out), 50, "{}", text(&out));
    let out = s.tool(
        "ldapdelete",
        &["-x", "-H", &url, "-D", BOB_DN, "-w", BOB_PW, CAROL_DN],
    );
    assert_eq!(rc(&out), 50, "{}", text(&out));
    let out = s.tool(
        "ldapmodrdn",
        &[
            "-x",
            "-H",
            &url,
            "-D",
            BOB_DN,
            "-w",
            BOB_PW,
            CAROL_DN,
            "cn=carol2",
        ],
    );
    assert_eq!(rc(&out), 50, "{}", text(&out));
    // anonymous writes are refused
    let out = s.tool_stdin(
        "ldapmodify",
        &["-x", "-H", &url],
        Some(&format!(
            "dn: {ALICE_DN}\nchangetype: modify\nreplace: sn\nsn: anon\n"
        )),
    );
    assert_eq!(rc(&out), 50, "{}", text(&out));
    let out = s.tool("ldapdelete", &["-x", "-H", &url, CAROL_DN]);
    assert_eq!(rc(&out), 50, "{}", text(&out));
    // nothing changed
    let got = read(&s, ALICE_DN, &["sn"]);
    assert_eq!(values(&got, "sn"), vec!["Liddell"]);
    assert_eq!(rc(&read(&s, CAROL_DN, &[])), 0);
    let out = s.search_as_admin(&[
        "-b",
        &format!("cn=devs,{PEOPLE}"),
        "-s",
        "base",
        "(member=cn=bob,ou=People,dc=example,dc=com)",
        "1.1",
    ]);
    assert!(dns(&out).is_empty());
}

#[test]
fn schema_violations_have_exact_result_codes() {
    let s = TestServer::start_seeded();
    let cases: &[(&str, i32, &str)] = &[
        (
            "missing MUST (posixAccount needs uidNumber, gidNumber, homeDirectory)",
            65,
            "dn: cn=m1,ou=People,dc=example,dc=com\nchangetype: add\nobjectClass: account\nobjectClass: posixAccount\ncn: m1\nuid: m1\n",
        ),
        ("no structural class", 65, "dn: cn=m2,ou=People,dc=example,dc=com\nchangetype: add\nobjectClass: top\ncn: m2\n"),
        ("unknown objectClass", 65, "dn: cn=m3,ou=People,dc=example,dc=com\nchangetype: add\nobjectClass: noSuchClass\ncn: m3\n"),
        ("attribute not allowed by the classes", 65, "dn: ou=m4,ou=People,dc=example,dc=com\nchangetype: add\nobjectClass: organizationalUnit\nou: m4\nuidNumber: 5\n"),
        ("unknown attribute", 17, "dn: cn=u1,ou=People,dc=example,dc=com\nchangetype: add\nobjectClass: person\ncn: u1\nsn: u\nbogusAttribute: 1\n"),
        ("single-valued with two values", 19, "dn: cn=c1,ou=People,dc=example,dc=com\nchangetype: add\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\ncn: c1\nsn: c\nuserAccountControl: 512\nuserAccountControl: 514\n"),
        ("bad integer syntax", 21, "dn: cn=s1,ou=People,dc=example,dc=com\nchangetype: add\nobjectClass: account\nobjectClass: posixAccount\ncn: s1\nuid: s1\nuidNumber: abc\ngidNumber: 1\nhomeDirectory: /home/s1\n"),
        ("bad DN syntax", 21, "dn: cn=s2,ou=People,dc=example,dc=com\nchangetype: add\nobjectClass: top\nobjectClass: group\ncn: s2\nmember: not a dn\n"),
        ("add existing", 68, "dn: cn=alice,ou=People,dc=example,dc=com\nchangetype: add\nobjectClass: person\ncn: alice\nsn: x\n"),
        ("add under a missing parent", 32, "dn: cn=p1,ou=Nowhere,dc=example,dc=com\nchangetype: add\nobjectClass: person\ncn: p1\nsn: p\n"),
        ("add outside the naming context", 32, "dn: cn=p2,dc=other,dc=org\nchangetype: add\nobjectClass: person\ncn: p2\nsn: p\n"),
        ("duplicate value", 20, "dn: cn=alice,ou=People,dc=example,dc=com\nchangetype: modify\nadd: mail\nmail: ALICE@example.com\n"),
        ("duplicate value within one add", 20, "dn: cn=alice,ou=People,dc=example,dc=com\nchangetype: modify\nadd: description\ndescription: d\ndescription: d\n"),
        ("delete a missing value", 16, "dn: cn=alice,ou=People,dc=example,dc=com\nchangetype: modify\ndelete: mail\nmail: nope@example.com\n"),
        ("delete a missing attribute", 16, "dn: cn=alice,ou=People,dc=example,dc=com\nchangetype: modify\ndelete: description\n"),
        ("modify removes a MUST", 65, "dn: cn=alice,ou=People,dc=example,dc=com\nchangetype: modify\ndelete: uidNumber\n"),
        ("modify breaks syntax", 21, "dn: cn=alice,ou=People,dc=example,dc=com\nchangetype: modify\nreplace: gidNumber\ngidNumber: twenty\n"),
        ("modify adds an unknown attribute", 17, "dn: cn=alice,ou=People,dc=example,dc=com\nchangetype: modify\nadd: bogusAttribute\nbogusAttribute: 1\n"),
        ("modify makes single-valued multi", 19, "dn: cn=alice,ou=People,dc=example,dc=com\nchangetype: modify\nadd: uidNumber\nuidNumber: 3\n"),
        ("increment a non-integer", 19, "dn: cn=alice,ou=People,dc=example,dc=com\nchangetype: modify\nincrement: sn\nsn: 1\n"),
        ("modify of the RDN value away", 67, "dn: cn=alice,ou=People,dc=example,dc=com\nchangetype: modify\ndelete: cn\ncn: alice\n"),
        ("NO-USER-MODIFICATION attribute", 19, "dn: cn=alice,ou=People,dc=example,dc=com\nchangetype: modify\nreplace: entryUUID\nentryUUID: 00000000-0000-0000-0000-000000000000\n"),
    ];
    let mut failures = Vec::new();
    for (what, code, ldif) in cases {
        let out = admin_modify(&s, ldif);
        if rc(&out) != *code {
            failures.push(format!(
                "{what}: expected {code}, got {}: {}",
                rc(&out),
                text(&out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // nothing of the failed writes is left behind
    let out = s.search_as_admin(&[
        "-b",
        BASE,
        "(|(cn=m*)(cn=u1)(cn=c1)(cn=s1)(cn=s2)(cn=p1)(ou=m4))",
        "1.1",
    ]);
    assert!(dns(&out).is_empty(), "{}", text(&out));
    let got = read(&s, ALICE_DN, &["mail", "uidNumber", "gidNumber", "cn"]);
    assert_eq!(values(&got, "mail"), vec!["alice@example.com"]);
    assert_eq!(values(&got, "uidNumber"), vec!["10001"]);
    assert_eq!(values(&got, "gidNumber"), vec!["20001"]);
}

#[test]
fn group_with_ten_thousand_members_is_added_and_read_back() {
    let s = TestServer::start_seeded();
    let mut ldif = format!("dn: cn=huge,{PEOPLE}\nobjectClass: top\nobjectClass: group\ncn: huge\nsAMAccountName: huge\n");
    for i in 0..10_000 {
        ldif.push_str(&format!(
            "member: cn=member-number-{i:05},ou=People,dc=example,dc=com\n"
        ));
    }
    ldif.push_str(&format!("member: {ALICE_DN}\n"));
    assert!(ldif.len() > 500_000, "a ~600 KB PDU: {}", ldif.len());
    let out = s.tool_stdin(
        "ldapadd",
        &["-x", "-H", &s.ldaps_url(), "-D", ADMIN_DN, "-w", ADMIN_PW],
        Some(&ldif),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let out = read(&s, &format!("cn=huge,{PEOPLE}"), &["member"]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let members = values(&out, "member");
    assert_eq!(members.len(), 10_001);
    assert!(members.contains(&"cn=member-number-09999,ou=People,dc=example,dc=com".to_string()));
    // the member index sees it: alice's memberOf now has two groups
    let out = read(&s, ALICE_DN, &["memberOf"]);
    let mut m = values(&out, "memberOf");
    m.sort();
    assert_eq!(
        m,
        vec![format!("cn=devs,{PEOPLE}"), format!("cn=huge,{PEOPLE}")]
    );
    let out = s.search_as_admin(&[
        "-b",
        BASE,
        "(member=cn=member-number-04242,ou=People,dc=example,dc=com)",
        "1.1",
    ]);
    assert_eq!(dns(&out), vec![format!("cn=huge,{PEOPLE}")]);
    // and it can be modified (one value out of 10,001)
    let out = admin_modify(&s, &format!("dn: cn=huge,{PEOPLE}\nchangetype: modify\ndelete: member\nmember: cn=member-number-00000,ou=People,dc=example,dc=com\n"));
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(
        values(
            &read(&s, &format!("cn=huge,{PEOPLE}"), &["member"]),
            "member"
        )
        .len(),
        10_000
    );
}

#[test]
fn abandon_does_not_break_the_connection() {
    let s = TestServer::start_seeded();
    let out = s.python(
        r#"
import sys
from ldap3 import Server, Connection, ASYNC
host, port = sys.argv[1].rsplit(':', 1)
c = Connection(Server(host, int(port)), 'cn=Administrator,cn=Users,dc=example,dc=com', 'Admin-Passw0rd!',
               client_strategy=ASYNC, auto_bind=True)
# abandon in-flight searches, then a search on the same connection still answers
for i in range(5):
    mid = c.search('dc=example,dc=com', '(objectClass=*)', attributes=['*', '+'])
    print('abandon', mid, c.abandon(mid))
# abandon of an unknown message id (0, the "ping") is ignored by the server
print('ping', c.abandon(0))
mid = c.search('dc=example,dc=com', '(cn=alice)', attributes=['cn'])
resp, result = c.get_response(mid, timeout=10)
print('result', result['result'], [r['dn'] for r in resp if r.get('type') == 'searchResEntry'])
assert result['result'] == 0
assert [r['dn'] for r in resp if r.get('type') == 'searchResEntry'] == ['cn=alice,ou=People,dc=example,dc=com']
mid = c.extend.standard.who_am_i()
print('whoami ok')
c.unbind()
"#,
        &[&s.ldap.to_string()],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("result 0 ['cn=alice,ou=People,dc=example,dc=com']"),
        "{}",
        text(&out)
    );
    // the server still serves others
    let who = s.whoami(&["-H", &s.ldap_url(), "-D", ALICE_DN, "-w", ALICE_PW]);
    assert_eq!(rc(&who), 0, "{}", text(&who));
}
