#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 9 item 6: paged-results cursors cost a fixed, small amount of memory whatever the
//! result size, and there is a server-wide cap on open cursors. 200 connections each leave 16
//! paged searches over 20,000 entries open (first page read, never finished); dird's RSS must
//! rise by less than 64 MiB, and paging still returns every entry to a normal client.

mod common;

use std::time::Instant;

use ldap3::controls::{ControlType, PagedResults};
use ldap3::{LdapConnAsync, Scope};

use common::{rc, stdout, text, TestServer, ADMIN_DN, ADMIN_PW, BASE};

const ENTRIES: usize = 20_000;
const CONNECTIONS: usize = 200;
const SEARCHES: usize = 16;
const BULK: &str = "ou=Bulk,dc=example,dc=com";

fn bulk_ldif() -> String {
    let mut s =
        format!("dn: {BULK}\nobjectClass: top\nobjectClass: organizationalUnit\nou: Bulk\n\n");
    for i in 0..ENTRIES {
        s.push_str(&format!(
            "dn: cn=p{i:05},{BULK}\nobjectClass: top\nobjectClass: person\ncn: p{i:05}\nsn: Person {i}\n\n"
        ));
    }
    s
}

/// Opens a connection, starts `SEARCHES` paged searches (page size 5) and returns the
/// connection (kept open, every search left unfinished) and the cookies it got.
async fn open_searches(url: String) -> (ldap3::Ldap, Vec<Vec<u8>>) {
    let (conn, mut ldap) = LdapConnAsync::new(&url).await.expect("connect");
    ldap3::drive!(conn);
    // Anonymous reads (enabled for this server): the test is about cursors, not 200 argon2
    // binds.
    let mut cookies = Vec::new();
    for _ in 0..SEARCHES {
        let res = ldap
            .with_controls(PagedResults {
                size: 5,
                cookie: Vec::new(),
            })
            .search(BULK, Scope::OneLevel, "(objectClass=person)", vec!["cn"])
            .await
            .unwrap();
        let (entries, result) = res.success().unwrap();
        assert_eq!(entries.len(), 5);
        let cookie = result
            .ctrls
            .iter()
            .find(|c| matches!(c.0, Some(ControlType::PagedResults)))
            .map(|c| c.1.parse::<PagedResults>().cookie)
            .expect("paged results control");
        assert!(!cookie.is_empty(), "more pages must remain");
        cookies.push(cookie);
    }
    (ldap, cookies)
}

#[test]
fn open_paged_searches_have_bounded_memory() {
    let mut s = TestServer::prepare("anonymous_read = true");
    let ldif = s.path("bulk.ldif");
    std::fs::write(&ldif, bulk_ldif()).unwrap();
    let out = s.cli(&["import", ldif.to_str().unwrap()]);
    assert!(out.status.success(), "dird import failed: {}", text(&out));
    s.launch();
    let pid = s.pid();
    let url = s.ldap_url();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Warm up: one full paged pass, so caches and allocator pools are in the baseline.
    rt.block_on(open_searches(url.clone()));
    let before = common::rss_kib(pid);
    let started = Instant::now();
    let conns = rt.block_on(async {
        let mut all = Vec::new();
        // 20 connections at a time: the server sees 200 live connections at the end.
        for _ in 0..CONNECTIONS / 20 {
            let batch: Vec<_> = (0..20)
                .map(|_| tokio::spawn(open_searches(url.clone())))
                .collect();
            for t in batch {
                all.push(t.await.unwrap());
            }
        }
        all
    });
    let after = common::rss_kib(pid);
    let raise_mib = after.saturating_sub(before) as f64 / 1024.0;
    println!(
        "{} paged searches over {ENTRIES} entries on {CONNECTIONS} connections open in {:?}: \
         RSS {before} kB -> {after} kB (+{raise_mib:.1} MiB)",
        CONNECTIONS * SEARCHES,
        started.elapsed()
    );
    assert_eq!(conns.len(), CONNECTIONS);
    assert!(
        raise_mib < 64.0,
        "RSS rose by {raise_mib:.1} MiB with {} open paged searches",
        CONNECTIONS * SEARCHES
    );

    // The cursors are live: one of them continues where it stopped, without duplicates.
    let (mut ldap, cookies) = rt.block_on(async { conns.into_iter().next().unwrap() });
    let next = rt.block_on(async {
        ldap.with_controls(PagedResults {
            size: 5,
            cookie: cookies[0].clone(),
        })
        .search(BULK, Scope::OneLevel, "(objectClass=person)", vec!["cn"])
        .await
        .unwrap()
        .success()
        .unwrap()
    });
    let names: Vec<String> = next
        .0
        .into_iter()
        .map(|e| ldap3::SearchEntry::construct(e).dn)
        .collect();
    assert_eq!(
        names,
        (5..10)
            .map(|i| format!("cn=p{i:05},{BULK}"))
            .collect::<Vec<_>>()
    );

    // A normal client pages through everything.
    let out = s.ldapsearch(&[
        "-x",
        "-H",
        &url,
        "-D",
        ADMIN_DN,
        "-w",
        ADMIN_PW,
        "-b",
        BASE,
        "-E",
        "pr=100/noprompt",
        "(objectClass=person)",
        "1.1",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let dns = stdout(&out)
        .lines()
        .filter(|l| l.starts_with("dn: cn=p") && l.ends_with(BULK))
        .count();
    assert_eq!(dns, ENTRIES, "paged ldapsearch returned {dns} bulk entries");
    drop(rt);
    s.stop();
}
