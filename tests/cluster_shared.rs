//! Issue 17 item 4–6: the cluster-wide state that is not entries, against ONE real etcd
//! (`etcd-server`, started here on random loopback ports in a temporary directory). Two
//! "nodes" are two independent instances (own etcd client, own watch) with different node
//! names on the same etcd: failed binds spread over both lock the account, a success clears
//! the count, an authenticator replayed on node B after node A is refused, leases free all of
//! them, the node registry lists both nodes with their lag and drops a node whose lease
//! lapses, and the DNS zone fed from it advertises both DCs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use dird::cluster::nodes::{self, NodeInfo, Nodes, Registration};
use dird::cluster::shared::{EtcdLockout, EtcdReplay};
use dird::directory::lockout::{FailureCounter, Outcome};
use dird::dns::message::{rtype, Data, Question};
use dird::dns::zone::{Peers, Zone};
use dird::kdc::replay::{ReplayError, ReplayKey, ReplayStore};
use etcd_client::{Client, GetOptions};
use tokio::sync::watch;

const PREFIX: &str = "/dird/example.com";
const ALICE: &str = "uid=alice,ou=people,dc=example,dc=com";

/// One etcd member on loopback, killed (by PID) on drop.
struct Etcd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    fn start() -> Etcd {
        assert!(
            Command::new("etcd").arg("--version").output().is_ok(),
            "etcd not found: install the Debian package etcd-server (scripts/test-all.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts");
        Etcd {
            child,
            url,
            _dir: dir,
        }
    }

    /// A client once etcd answers (each "node" gets its own).
    async fn client(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Ok(mut c)) = tokio::time::timeout(
                Duration::from_secs(2),
                Client::connect([self.url.as_str()], None),
            )
            .await
            {
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(2), c.get("probe", None)).await
                {
                    return c;
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not start: {}",
                log_of(self._dir.path())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
async fn eventually<F: std::future::Future<Output = bool>>(
    limit: Duration,
    what: &str,
    mut cond: impl FnMut() -> F,
) {
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The keys (and values) under `<PREFIX>/<sub>`.
async fn keys(client: &Client, sub: &str) -> Vec<(String, String)> {
    let mut c = client.clone();
    let resp = c
        .get(
            format!("{PREFIX}/{sub}"),
            Some(GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    resp.kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
            )
        })
        .collect()
}

/// The failure count etcd holds for an account (0: no count key).
async fn etcd_count(client: &Client) -> u64 {
    for (k, v) in keys(client, "lockout/").await {
        if k.ends_with("/count") {
            let v: serde_json::Value = serde_json::from_str(&v).unwrap();
            return v["count"].as_u64().unwrap();
        }
    }
    0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_binds_spread_over_two_nodes_lock_the_account_and_a_success_clears_the_count() {
    let etcd = Etcd::start();
    let (a, b) = (
        EtcdLockout::start(etcd.client().await, PREFIX),
        EtcdLockout::start(etcd.client().await, PREFIX),
    );
    let probe = etcd.client().await;
    let (window, duration) = (Duration::from_secs(60), Some(Duration::from_secs(600)));
    let now = SystemTime::now();

    // A success on one node clears the count the other node's failures built.
    assert_eq!(
        a.record_failure(ALICE, now, 3, window, duration).await,
        Outcome::Counted
    );
    assert_eq!(
        b.record_failure(ALICE, now, 3, window, duration).await,
        Outcome::Counted
    );
    assert_eq!(etcd_count(&probe).await, 2, "two nodes' failures add up");
    eventually(
        Duration::from_secs(5),
        "B's watch sees the count",
        || async { b.tracked(ALICE) },
    )
    .await;
    b.clear(ALICE); // a successful bind on B
    eventually(
        Duration::from_secs(5),
        "the count is deleted in etcd",
        || async { keys(&probe, "lockout/").await.is_empty() },
    )
    .await;

    // Three failures over both nodes lock the account; exactly one node sees LockNow.
    assert_eq!(
        a.record_failure(ALICE, now, 3, window, duration).await,
        Outcome::Counted
    );
    assert_eq!(
        b.record_failure(ALICE, now, 3, window, duration).await,
        Outcome::Counted
    );
    assert!(!a.is_locked(ALICE, now, duration));
    assert_eq!(
        a.record_failure(ALICE, now, 3, window, duration).await,
        Outcome::LockNow
    );
    assert_eq!(
        b.record_failure(ALICE, now, 3, window, duration).await,
        Outcome::AlreadyLocked
    );
    eventually(
        Duration::from_secs(5),
        "B sees the lock from its watch",
        || async { b.is_locked(ALICE, now, duration) },
    )
    .await;
    let other = "uid=bob,ou=people,dc=example,dc=com";
    assert!(!b.is_locked(other, now, duration), "only alice is locked");

    // Concurrent failures on both nodes: every one is counted once, one locks.
    let (x, y) = (
        "uid=carol,ou=people,dc=example,dc=com",
        Duration::from_secs(60),
    );
    let mut tasks = Vec::new();
    for i in 0..10 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            node.record_failure(x, now, 10, y, duration).await
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::LockNow).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Counted).count(),
        9,
        "{outcomes:?}"
    );

    // An administrator unlock on B frees the account on A too.
    b.clear_now(ALICE).await.unwrap();
    eventually(Duration::from_secs(5), "A sees the unlock", || async {
        !a.is_locked(ALICE, now, duration)
    })
    .await;
    assert_eq!(
        a.record_failure(ALICE, now, 3, window, duration).await,
        Outcome::Counted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_leases_lapse_with_the_window_and_the_duration() {
    let etcd = Etcd::start();
    let (a, b) = (
        EtcdLockout::start(etcd.client().await, PREFIX),
        EtcdLockout::start(etcd.client().await, PREFIX),
    );
    let probe = etcd.client().await;
    // etcd's shortest lease is 2 s.
    let (window, duration) = (Duration::from_secs(2), Some(Duration::from_secs(2)));
    let now = SystemTime::now();
    assert_eq!(
        a.record_failure(ALICE, now, 3, window, duration).await,
        Outcome::Counted
    );
    assert_eq!(
        b.record_failure(ALICE, now, 3, window, duration).await,
        Outcome::Counted
    );
    eventually(
        Duration::from_secs(10),
        "the count lapses with its lease",
        || async { keys(&probe, "lockout/").await.is_empty() },
    )
    .await;
    let later = SystemTime::now();
    assert_eq!(
        a.record_failure(ALICE, later, 3, window, duration).await,
        Outcome::Counted
    );
    assert_eq!(etcd_count(&probe).await, 1, "counting started over");

    // A lock lapses with the lockout duration.
    b.record_failure(ALICE, later, 3, window, duration).await;
    assert_eq!(
        a.record_failure(ALICE, later, 3, window, duration).await,
        Outcome::LockNow
    );
    assert!(keys(&probe, "lockout/").await[0].0.ends_with("/locked"));
    eventually(
        Duration::from_secs(10),
        "the lock lapses with its lease",
        || async { keys(&probe, "lockout/").await.is_empty() },
    )
    .await;
    let after = SystemTime::now();
    eventually(
        Duration::from_secs(5),
        "B's mirror drops the lock",
        || async { !b.is_locked(ALICE, after, None) },
    )
    .await;
    assert_eq!(
        b.record_failure(ALICE, after, 3, window, duration).await,
        Outcome::Counted
    );
}

fn authenticator(cusec: u32) -> ReplayKey {
    ReplayKey {
        client: "alice@EXAMPLE.COM".into(),
        server: "host/ws1.example.com@EXAMPLE.COM".into(),
        ctime: 1_765_000_000,
        cusec,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticator_replayed_on_another_node_is_refused_until_its_lease_lapses() {
    let etcd = Etcd::start();
    let window = Duration::from_secs(1); // entries live 2 × 1 s + a 1 s bucket
    let a = EtcdReplay::new(etcd.client().await, PREFIX, window);
    let b = EtcdReplay::new(etcd.client().await, PREFIX, window);
    let probe = etcd.client().await;
    let now = SystemTime::now();
    assert_eq!(a.check_and_insert(authenticator(1), now).await, Ok(()));
    assert_eq!(
        b.check_and_insert(authenticator(1), now).await,
        Err(ReplayError::Replayed),
        "node B refuses what node A accepted"
    );
    assert_eq!(
        a.check_and_insert(authenticator(1), now).await,
        Err(ReplayError::Replayed)
    );
    assert_eq!(b.check_and_insert(authenticator(2), now).await, Ok(()));
    // The key is a digest: nothing of the authenticator is stored.
    let stored = keys(&probe, "replay/").await;
    assert_eq!(stored.len(), 2);
    for (k, v) in &stored {
        assert!(!k.contains("alice") && !k.contains("ws1"), "{k}");
        assert!(v.is_empty());
    }
    // forget (reply not delivered) on B lets A accept the retry.
    b.forget(&authenticator(2)).await;
    assert_eq!(a.check_and_insert(authenticator(2), now).await, Ok(()));
    eventually(Duration::from_secs(10), "replay keys lapse", || async {
        keys(&probe, "replay/").await.is_empty()
    })
    .await;
    assert_eq!(
        b.check_and_insert(authenticator(1), SystemTime::now())
            .await,
        Ok(())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_etcd_replays_fail_closed_and_lockout_counts_locally() {
    let mut etcd = Etcd::start();
    let replay = EtcdReplay::new(etcd.client().await, PREFIX, Duration::from_secs(300));
    let lockout = EtcdLockout::start(etcd.client().await, PREFIX);
    let now = SystemTime::now();
    assert_eq!(replay.check_and_insert(authenticator(1), now).await, Ok(()));
    etcd.kill();
    let started = Instant::now();
    assert_eq!(
        replay.check_and_insert(authenticator(2), now).await,
        Err(ReplayError::Unavailable),
        "an authenticator that cannot be checked is refused, and is not called a replay"
    );
    let (w, d) = (Duration::from_secs(60), Some(Duration::from_secs(600)));
    assert_eq!(
        lockout.record_failure(ALICE, now, 2, w, d).await,
        Outcome::Counted
    );
    assert_eq!(
        lockout.record_failure(ALICE, now, 2, w, d).await,
        Outcome::LockNow
    );
    assert!(lockout.is_locked(ALICE, now, d), "the local lock holds");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "each etcd call gives up after its timeout"
    );
}

fn info(name: &str, port: u16) -> NodeInfo {
    NodeInfo {
        node_name: name.into(),
        host: format!("{name}.example.com"),
        addresses: vec![format!("127.0.0.{}", port % 100).parse().unwrap()],
        ldap: vec![format!("127.0.0.1:{port}").parse().unwrap()],
        ldaps: Vec::new(),
        gc: Vec::new(),
        kdc: vec![format!("127.0.0.1:{}", port + 1).parse().unwrap()],
        kpasswd: Vec::new(),
        applied_revision: 0,
        updated: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_lists_both_nodes_with_lag_and_drops_a_lapsed_one() {
    let etcd = Etcd::start();
    let ttl = Duration::from_secs(2);
    let (applied1, rx1) = watch::channel(0u64);
    let (applied2, rx2) = watch::channel(0u64);
    let mut dc1 = Registration::start(etcd.client().await, PREFIX, info("dc1", 1389), rx1, ttl);
    let mut dc2 = Registration::start(etcd.client().await, PREFIX, info("dc2", 2389), rx2, ttl);
    assert!(dc1.registered(Duration::from_secs(10)).await);
    assert!(dc2.registered(Duration::from_secs(10)).await);
    let registry = Nodes::new(etcd.client().await, PREFIX);

    // A directory write moves the head; dc1 has applied it, dc2 lags one revision behind.
    etcd.client()
        .await
        .put(format!("{PREFIX}/head"), "dc1 1", None)
        .await
        .unwrap();
    let current = registry.list().await.unwrap().revision;
    assert!(current > 1, "the head's mod revision is listed");
    applied1.send_replace(current);
    applied2.send_replace(current.saturating_sub(1).max(1));
    let registry2 = registry.clone();
    eventually(
        Duration::from_secs(10),
        "both applied revisions published",
        || {
            let r = registry2.clone();
            async move {
                let v = r.list().await.unwrap();
                v.nodes.len() == 2
                    && v.nodes[0].info.applied_revision == current
                    && v.nodes[1].info.applied_revision == current.saturating_sub(1).max(1)
            }
        },
    )
    .await;
    let view = registry.list().await.unwrap();
    let names: Vec<&str> = view
        .nodes
        .iter()
        .map(|n| n.info.node_name.as_str())
        .collect();
    assert_eq!(names, ["dc1", "dc2"]);
    for n in &view.nodes {
        assert_eq!(n.lag, view.revision - n.info.applied_revision, "{n:?}");
        assert!(n.info.updated > 0);
    }
    assert!(view.nodes[1].lag > view.nodes[0].lag);

    // The DNS zone of dc1, fed from the registry, advertises dc2 beside itself.
    let zone = Zone {
        domain: "example.com".into(),
        host: "dc1.example.com".into(),
        addresses: vec!["127.0.0.89".parse().unwrap()],
        site: "Default-First-Site-Name".into(),
        ldap_port: Some(1389),
        kdc_port: Some(1390),
        kpasswd_port: None,
        gc_port: None,
        peers: Peers::default(),
    };
    let feeder = nodes::feed_zone(
        registry.clone(),
        "dc1".into(),
        zone.peers.clone(),
        Duration::from_millis(200),
    );
    let srv_targets = |zone: &Zone| -> Vec<(String, u16)> {
        zone.answer(&Question {
            name: "_ldap._tcp.dc._msdcs.example.com".into(),
            raw_name: Vec::new(),
            qtype: rtype::SRV,
            qclass: 1,
        })
        .answers
        .into_iter()
        .filter_map(|r| match r.data {
            Data::Srv { target, port, .. } => Some((target, port)),
            _ => None,
        })
        .collect()
    };
    eventually(Duration::from_secs(5), "the zone learns dc2", || async {
        srv_targets(&zone).len() == 2
    })
    .await;
    assert_eq!(
        srv_targets(&zone),
        [
            ("dc1.example.com".to_string(), 1389),
            ("dc2.example.com".to_string(), 2389)
        ]
    );

    // dc2 stops keeping its lease alive (a crash): it disappears once the lease lapses.
    drop(dc2);
    eventually(Duration::from_secs(10), "dc2 lapses", || {
        let r = registry.clone();
        async move { r.list().await.unwrap().nodes.len() == 1 }
    })
    .await;
    assert_eq!(
        registry.list().await.unwrap().nodes[0].info.node_name,
        "dc1"
    );
    eventually(Duration::from_secs(5), "the zone forgets dc2", || async {
        srv_targets(&zone).len() == 1
    })
    .await;
    // dc1 outlived several TTLs through its keep-alives; leaving removes it at once.
    assert!(dc1.registered(Duration::from_secs(1)).await);
    dc1.leave().await;
    assert!(registry.list().await.unwrap().nodes.is_empty());
    feeder.abort();
}
