#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Large searches stream (issue 15 §3): a non-paged search over tens of thousands of entries
//! is sent as the backend finds it, so dird's memory does not grow with the result. Real
//! `ldapsearch` clients over a directory of `DIRD_STREAM_ENTRIES` device entries (default
//! 50,000, imported with `dird import`; devices, not users, because a debug-build import of
//! 50,000 full user entries takes ~7 minutes here): one reads as fast as it can, one stops
//! reading for a while and then reads slowly (its stdout is a pipe this test drains at a
//! fixed pace, so ldapsearch stops reading its socket and TCP pushes back on dird). Each must
//! get every entry, and dird's RSS must stay within `RSS_GROWTH_BOUND_MIB` of its quiet
//! value throughout. Without streaming (the whole result handed to the writer at once) it
//! grew with every returned entry: +105 MiB (fast reader) and +162 MiB (slow reader) for
//! 50,000 devices here, about 2 to 3 KiB per entry (7.5 KiB per full user entry).
//! While the slow client is stalled, another client's search is answered.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// Documented bound (RELIABILITY.md) on dird's RSS growth during one large search, over
/// its RSS with the directory loaded and a small search served.
const RSS_GROWTH_BOUND_MIB: u64 = 64;
/// How long the slow client reads nothing at all.
const STALL: Duration = Duration::from_secs(4);
/// The slow client's pace: this many bytes of LDIF, then a pause.
const SLOW_CHUNK: usize = 16 * 1024;
const SLOW_PAUSE: Duration = Duration::from_millis(4);

/// Samples dird's RSS every 50 ms until stopped; returns the peak (KiB).
struct RssWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl RssWatch {
    fn start(pid: u32) -> RssWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(common::rss_kib(pid)));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(common::rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        RssWatch { stop, peak, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("rss watcher");
        self.peak.load(Ordering::Relaxed)
    }
}

const DEVICES: &str = "ou=Devices,dc=example,dc=com";

/// The LDIF of `n` device entries under `DEVICES`.
fn devices_ldif(n: usize) -> String {
    let mut out = format!(
        "version: 1\n\ndn: {DEVICES}\nobjectClass: top\nobjectClass: organizationalUnit\nou: Devices\n\n"
    );
    for i in 1..=n {
        out.push_str(&format!(
            "dn: cn=dev{i},{DEVICES}\nobjectClass: top\nobjectClass: device\ncn: dev{i}\n\
             serialNumber: SN-{i:08}\ndescription: streaming test device number {i} with a \
             description long enough to look like real data\n\n"
        ));
    }
    out
}

/// `ldapsearch` as Administrator for every device, all user attributes, stdout piped.
fn spawn_big_search(srv: &TestServer) -> std::process::Child {
    Command::new("ldapsearch")
        .args(["-x", "-LLL", "-o", "ldif_wrap=no", "-H"])
        .arg(srv.ldap_url())
        .args(["-D", ADMIN_DN, "-w", ADMIN_PW, "-b", DEVICES])
        .arg("(objectClass=device)")
        .env("LDAPCONF", "/dev/null")
        .env("LDAPRC", "/nonexistent-dird-test-ldaprc")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("ldapsearch could not be run ({e}): install ldap-utils"))
}

/// Waits for a big search and checks it returned `n` entries and success.
fn check_big_search(child: std::process::Child, out: Vec<u8>, n: usize) {
    let res = child.wait_with_output().expect("wait ldapsearch");
    let text = String::from_utf8_lossy(&out);
    let dns = text.lines().filter(|l| l.starts_with("dn: ")).count();
    assert!(
        res.status.success(),
        "ldapsearch failed ({:?}): {}",
        res.status,
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(dns, n, "entries returned");
    assert!(text.contains(&format!("dn: cn=dev1,{DEVICES}\n")));
    let last = format!("dn: cn=dev{n},{DEVICES}\n");
    assert!(text.contains(&last), "{last}");
}

#[test]
fn large_searches_stream_in_bounded_memory_to_fast_and_slow_readers() {
    let n: usize = std::env::var("DIRD_STREAM_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let mut srv = TestServer::prepare("");
    let ldif = srv.dir.path().join("devices.ldif");
    let t = Instant::now();
    std::fs::write(&ldif, devices_ldif(n)).expect("write LDIF");
    let imported = srv.cli(&["import", ldif.to_str().expect("utf-8 path")]);
    assert!(
        imported.status.success(),
        "dird import: {}",
        text(&imported)
    );
    eprintln!("{n} devices imported in {:?}", t.elapsed());
    srv.launch();
    let pid = srv.pid();

    // Quiet value: the directory loaded and a small search served.
    let one = srv.search_as_admin(&["-b", DEVICES, "(cn=dev7)", "cn"]);
    assert!(stdout(&one).contains("cn: dev7"), "{}", text(&one));
    let quiet = common::rss_kib(pid);
    let bound = quiet + RSS_GROWTH_BOUND_MIB * 1024;

    // A fast reader.
    let watch = RssWatch::start(pid);
    let t = Instant::now();
    let mut child = spawn_big_search(&srv);
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut out)
        .expect("read ldapsearch output");
    let fast_time = t.elapsed();
    let fast_bytes = out.len();
    check_big_search(child, out, n);
    let fast_peak = watch.finish();
    eprintln!(
        "fast reader: {n} entries ({} KiB of LDIF) in {fast_time:?} ({:.0} entries/s); dird RSS quiet {} MiB, peak {} MiB",
        fast_bytes / 1024,
        n as f64 / fast_time.as_secs_f64(),
        quiet / 1024,
        fast_peak / 1024
    );

    // A slow reader: nothing for STALL, then SLOW_CHUNK every SLOW_PAUSE.
    let watch = RssWatch::start(pid);
    let t = Instant::now();
    let mut child = spawn_big_search(&srv);
    let mut stdout_pipe = child.stdout.take().expect("stdout");
    std::thread::sleep(STALL / 2);
    // Stalled: dird has filled the socket and ldapsearch's pipe, and waits. Another client
    // is served meanwhile.
    let side = Instant::now();
    let other = srv.search_as_admin(&["-b", DEVICES, "(cn=dev42)", "cn"]);
    assert!(stdout(&other).contains("cn: dev42"), "{}", text(&other));
    let side_time = side.elapsed();
    std::thread::sleep(STALL.saturating_sub(STALL / 2 + side_time));
    let stalled_rss = common::rss_kib(pid);
    let mut out = Vec::new();
    let mut buf = vec![0u8; SLOW_CHUNK];
    loop {
        let got = stdout_pipe.read(&mut buf).expect("read ldapsearch output");
        if got == 0 {
            break;
        }
        out.extend_from_slice(&buf[..got]);
        std::thread::sleep(SLOW_PAUSE);
    }
    let slow_time = t.elapsed();
    check_big_search(child, out, n);
    let slow_peak = watch.finish();
    eprintln!(
        "slow reader: {n} entries in {slow_time:?}; dird RSS while stalled {} MiB, peak {} MiB; \
         another client's search during the stall took {side_time:?}",
        stalled_rss / 1024,
        slow_peak / 1024
    );

    for (what, peak) in [("fast", fast_peak), ("slow", slow_peak)] {
        assert!(
            peak <= bound,
            "{what} reader: dird's RSS peaked at {} MiB, over the bound of {} MiB ({} MiB quiet + {RSS_GROWTH_BOUND_MIB} MiB)",
            peak / 1024,
            bound / 1024,
            quiet / 1024
        );
    }
}
