#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Floods and slow clients (issue 15 §3), with the memory and latency bounds that
//! RELIABILITY.md states: 10,000 idle connections; then, all at once, 1,000 concurrent
//! wrong-password binds, slowloris connections sending one byte per second, clients that never
//! read their results and a UDP flood at the KDC. Throughout, dird's RSS must stay under the
//! bound and a well-behaved client's search p99 within 5x its quiet value (with a 50 ms floor:
//! a quiet p99 of about 1 ms on a shared 2-core machine is noise), and a
//! correct `kinit` must still get a ticket.
//!
//! The daemon is started with a soft open-file limit of 1024 (the usual login/service
//! default); dird must raise it itself (`daemon::rlimit`) to hold 10,000 connections.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use dird::ldap::codec::encode_message;
use dird::ldap::proto::{
    BindRequest, DerefAliases, Filter, LdapMessage, ProtocolOp, SearchRequest, SearchScope,
};
use ldap3::{LdapConn, Scope};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Idle connections held at once.
const IDLE: usize = 10_000;
/// Documented bound (RELIABILITY.md) on dird's RSS growth while holding the idle
/// connections and under the floods, over its RSS with the seeded directory before them.
const RSS_GROWTH_BOUND_MIB: u64 = 512;
/// Latency floor under which p99 comparisons are noise: on the shared 2-core test machine a
/// well-behaved client's p99 moves between 1 and 15 ms with nothing but other builds running.
const P99_FLOOR: Duration = Duration::from_millis(50);

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

/// Sets this process's soft RLIMIT_NOFILE (children started afterwards inherit it).
fn set_soft_nofile(soft: Option<u64>) {
    let now = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: soft.or(now.maximum),
            maximum: now.maximum,
        },
    )
    .expect("setrlimit NOFILE");
}

/// A bound well-behaved client: the p99 of `n` one-entry searches.
fn search_p99(url: &str, n: usize) -> Duration {
    let mut l = LdapConn::new(url).expect("connect");
    l.simple_bind(BOB_DN, BOB_PW).unwrap().success().unwrap();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (rs, _) = l
            .search(PEOPLE, Scope::Subtree, "(cn=alice)", vec!["cn"])
            .unwrap()
            .success()
            .unwrap();
        times.push(t.elapsed());
        assert_eq!(rs.len(), 1);
    }
    let _ = l.unbind();
    times.sort();
    times[(n * 99 / 100).min(n - 1)]
}

fn bind_pdu(id: u32, dn: &str, pw: &str) -> Vec<u8> {
    encode_message(&LdapMessage::new(
        id,
        ProtocolOp::BindRequest(BindRequest::simple(dn, pw.as_bytes())),
    ))
    .expect("encode bind")
}

fn search_all_pdu(id: u32) -> Vec<u8> {
    encode_message(&LdapMessage::new(
        id,
        ProtocolOp::SearchRequest(SearchRequest {
            base_object: BASE.into(),
            scope: SearchScope::WholeSubtree,
            deref_aliases: DerefAliases::Never,
            size_limit: 0,
            time_limit: 0,
            types_only: false,
            filter: Filter::Present("objectClass".into()),
            attributes: vec![],
        }),
    ))
    .expect("encode search")
}

#[test]
fn idle_connections_and_floods_stay_within_the_memory_and_latency_bounds() {
    let hard = getrlimit(Resource::Nofile).maximum;
    assert!(
        hard.is_none_or(|h| h >= 12_500),
        "the hard open-file limit is {hard:?}: this test holds {IDLE} connections from each side \
         and needs 12,500 (raise it: ulimit -Hn, or LimitNOFILE= for the CI runner)"
    );
    // dird starts with the common soft limit of 1024 descriptors.
    set_soft_nofile(Some(1024));
    let mut s = TestServer::configured_kdc(&format!("max_connections = {}\n", IDLE + 2_000));
    s.launch();
    set_soft_nofile(None);
    let pid = s.pid();
    s.seed(SEED);
    // Account lockout on, as a deployment facing floods has it: the wrong-password burst
    // costs `lockoutThreshold` argon2 checks, the rest are refused without hashing.
    let out = s.modify_as_admin(
        &s.ldap_url(),
        &format!(
            "dn: {BASE}\nchangetype: modify\nreplace: lockoutThreshold\nlockoutThreshold: 5\n-\n"
        ),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let url = s.ldap_url();

    search_p99(&url, 50); // warm up
    let quiet = search_p99(&url, 300);
    let rss0 = common::rss_kib(pid);

    // 10,000 idle connections.
    let t = Instant::now();
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|i| {
            TcpStream::connect_timeout(&s.ldap, Duration::from_secs(10)).unwrap_or_else(|e| {
                panic!(
                    "idle connection {i}: connect: {e} (dird stopped accepting: open-file limit?)"
                )
            })
        })
        .collect();
    let opened = t.elapsed();
    // dird holds every one of them (one descriptor each).
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_fds(pid) < IDLE && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let fds = open_fds(pid);
    assert!(
        fds >= IDLE,
        "dird holds {fds} descriptors with {IDLE} connections open: it did not accept them all \
         (open-file limit?)"
    );
    let rss_idle = common::rss_kib(pid);
    let with_idle = search_p99(&url, 300);

    // Now the floods, all at once, on top of the idle connections.
    let stop = Arc::new(AtomicBool::new(false));
    let mut floods = Vec::new();
    // 1,000 concurrent wrong-password binds (alice exists: each is a real check).
    let bind_codes = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(1_001));
    let binders: Vec<_> = (0..1_000)
        .map(|i| {
            let addr = s.ldap;
            let barrier = barrier.clone();
            let codes = bind_codes.clone();
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let mut c = TcpStream::connect(addr).expect("bind flood connect");
                    barrier.wait();
                    c.write_all(&bind_pdu(1, ALICE_DN, &format!("wrong-{i}")))
                        .expect("send bind");
                    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                    let mut buf = [0u8; 512];
                    let n = c.read(&mut buf).unwrap_or(0);
                    // BindResponse resultCode 49 (invalidCredentials): ENUMERATED 0x0a 0x01 0x31
                    if buf[..n].windows(3).any(|w| w == [0x0a, 0x01, 49]) {
                        codes.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .expect("spawn binder")
        })
        .collect();
    barrier.wait();
    let flood_start = Instant::now();
    // Slowloris: 50 connections each sending a bind one byte per second.
    for _ in 0..50 {
        let addr = s.ldap;
        let stop = stop.clone();
        floods.push(std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).expect("slowloris connect");
            let pdu = bind_pdu(1, BOB_DN, BOB_PW);
            for b in pdu {
                if stop.load(Ordering::Relaxed) || c.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }));
    }
    // Clients that never read: 20 connections each queueing 60 whole-tree searches.
    let never_readers: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut c = TcpStream::connect(s.ldap).expect("never-reader connect");
            c.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
            for id in 1..=60 {
                if c.write_all(&search_all_pdu(id)).is_err() {
                    break;
                }
            }
            c
        })
        .collect();
    // A UDP flood at the KDC: junk and truncated Kerberos from 2 senders, 10,000 datagrams a
    // second each (a sender spinning flat out would measure this machine's 2 cores, not dird).
    let kdc = s.kdc.expect("kdc address");
    let udp_sent = Arc::new(AtomicU64::new(0));
    for t in 0..2u8 {
        let stop = stop.clone();
        let sent = udp_sent.clone();
        floods.push(std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("udp bind");
            let mut junk = vec![0u8; 1400];
            let mut x: u32 = 0x9e37_79b9 ^ u32::from(t);
            let started = Instant::now();
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if n.is_multiple_of(100) {
                    let due = started + Duration::from_millis(n / 10);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                for b in junk.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    *b = x as u8;
                }
                // every other datagram looks like the start of an AS-REQ ([APPLICATION 10])
                if x & 1 == 0 {
                    junk[0] = 0x6a;
                }
                let len = 20 + (x as usize % 1380);
                if sock.send_to(&junk[..len], kdc).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    // Under all of it: the well-behaved client, the memory bound, and a correct kinit.
    std::thread::sleep(Duration::from_secs(2));
    let loaded = search_p99(&url, 300);
    let mut peak = common::rss_kib(pid);
    s.krb_ok(
        "krb5.conf",
        "cc.flood",
        &["kinit", "bob"],
        &format!("{BOB_PW}\n"),
    );
    peak = peak.max(common::rss_kib(pid));
    let binds_done_at = {
        for b in binders {
            b.join().expect("binder thread");
            peak = peak.max(common::rss_kib(pid));
        }
        flood_start.elapsed()
    };
    peak = peak.max(common::rss_kib(pid));
    stop.store(true, Ordering::Relaxed);
    for f in floods {
        f.join().expect("flood thread");
    }
    let invalid = bind_codes.load(Ordering::Relaxed);
    let udp = udp_sent.load(Ordering::Relaxed);

    let growth_mib = peak.saturating_sub(rss0) / 1024;
    eprintln!(
        "flood: {IDLE} idle connections opened in {opened:?}, dird fds {fds}; RSS {} MiB quiet, \
         {} MiB with idle connections, {} MiB peak under the floods (growth {growth_mib} MiB, \
         bound {RSS_GROWTH_BOUND_MIB}); search p99 quiet {quiet:?}, with idle {with_idle:?}, \
         under floods {loaded:?}; 1000 wrong binds answered 49: {invalid}, all done in \
         {binds_done_at:?}; {udp} UDP datagrams sent at the KDC",
        rss0 / 1024,
        rss_idle / 1024,
        peak / 1024
    );
    assert_eq!(
        invalid, 1_000,
        "every wrong-password bind gets invalidCredentials"
    );
    assert!(
        growth_mib <= RSS_GROWTH_BOUND_MIB,
        "dird's RSS grew by {growth_mib} MiB (bound {RSS_GROWTH_BOUND_MIB} MiB)"
    );
    let limit = quiet.max(P99_FLOOR) * 5;
    assert!(
        with_idle <= limit,
        "search p99 with idle connections {with_idle:?} > {limit:?}"
    );
    assert!(
        loaded <= limit,
        "search p99 under the floods {loaded:?} > {limit:?}"
    );

    // The idle connections are still held (none was closed by the floods).
    let held = idle
        .iter()
        .step_by(97)
        .filter(|c| {
            c.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            matches!((&**c).read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock)
        })
        .count();
    assert_eq!(
        held,
        IDLE.div_ceil(97),
        "idle connections closed under the floods"
    );
    drop(never_readers);
    drop(idle);
    s.stop();
}
