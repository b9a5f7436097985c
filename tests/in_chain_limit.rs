#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 9 item 6 (IN_CHAIN part): resolving LDAP_MATCHING_RULE_IN_CHAIN
//! (1.2.840.113556.1.4.1941) counts against the search's time limit. A wide nested group
//! graph is imported with the real CLI; `ldapsearch -l 1` with an IN_CHAIN filter must end
//! within about a second, either with timeLimitExceeded (3) or with the complete answer.

mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::*;

/// Groups under the top group, and users in every one of them.
const GROUPS: usize = 60;
const USERS: usize = 1500;

fn graph_ldif() -> String {
    let mut l = String::from(
        "version: 1\n\ndn: ou=Chain,dc=example,dc=com\nobjectClass: organizationalUnit\nou: Chain\n\n",
    );
    for u in 0..USERS {
        let _ = write!(
            l,
            "dn: cn=u{u},ou=Chain,dc=example,dc=com\nobjectClass: top\nobjectClass: person\n\
             objectClass: organizationalPerson\nobjectClass: user\ncn: u{u}\nsn: U\n\
             sAMAccountName: u{u}\n\n"
        );
    }
    for g in 0..GROUPS {
        let _ = write!(
            l,
            "dn: cn=g{g},ou=Chain,dc=example,dc=com\nobjectClass: top\nobjectClass: group\n\
             cn: g{g}\nsAMAccountName: g{g}\n"
        );
        for u in 0..USERS {
            let _ = writeln!(l, "member: cn=u{u},ou=Chain,dc=example,dc=com");
        }
        l.push('\n');
    }
    let _ = write!(
        l,
        "dn: cn=top,ou=Chain,dc=example,dc=com\nobjectClass: top\nobjectClass: group\n\
         cn: top\nsAMAccountName: top\n"
    );
    for g in 0..GROUPS {
        let _ = writeln!(l, "member: cn=g{g},ou=Chain,dc=example,dc=com");
    }
    l.push('\n');
    l
}

#[test]
fn in_chain_resolution_honours_the_search_time_limit() {
    // The imported accounts take POSIX ids from a range clear of the explicit ones in SEED.
    let mut s = TestServer::configured("[posix]\nuid_min = 100000\ngid_min = 100000\n");
    let out = s.cli(&["init"]);
    assert!(out.status.success(), "{}", text(&out));
    let file = s.dir.path().join("chain.ldif");
    std::fs::write(&file, graph_ldif()).unwrap();
    let out = s.cli(&["import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    s.launch();
    s.seed(SEED);

    let url = s.ldap_url();
    // Control: without a client limit the search completes with every nested user.
    let filter = "(memberOf:1.2.840.113556.1.4.1941:=cn=top,ou=Chain,dc=example,dc=com)";
    let started = Instant::now();
    let out = s.ldapsearch(&[
        "-H",
        &url,
        "-D",
        ADMIN_DN,
        "-w",
        ADMIN_PW,
        "-b",
        "ou=Chain,dc=example,dc=com",
        filter,
        "1.1",
    ]);
    let unlimited = started.elapsed();
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(dns(&out).len(), USERS + GROUPS, "{}", text(&out));
    eprintln!("IN_CHAIN search without a limit took {unlimited:?}");

    // With `-l 1`, the whole search, chain resolution included, stops after about 1 s.
    let started = Instant::now();
    let out = s.ldapsearch(&[
        "-H",
        &url,
        "-D",
        ADMIN_DN,
        "-w",
        ADMIN_PW,
        "-l",
        "1",
        "-b",
        "ou=Chain,dc=example,dc=com",
        filter,
        "1.1",
    ]);
    let limited = started.elapsed();
    eprintln!(
        "IN_CHAIN search with -l 1 took {limited:?}: rc {}",
        rc(&out)
    );
    let complete = rc(&out) == 0 && dns(&out).len() == USERS + GROUPS;
    assert!(
        rc(&out) == 3 || complete,
        "timeLimitExceeded (3) or the complete answer: {}",
        text(&out)
    );
    assert!(
        limited < Duration::from_millis(4000),
        "the time limit bounds IN_CHAIN resolution: took {limited:?}"
    );
    // The server is still responsive afterwards.
    let out = s.ldapsearch(&[
        "-H", &url, "-D", ADMIN_DN, "-w", ADMIN_PW, "-b", PEOPLE, "-s", "base", "1.1",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
}
