#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Crash consistency (issue 15 item 2): concurrent LDAP writers (adds, modifies, renames,
//! deletes, group membership changes, password changes) against dird over LDAPS; every write
//! the server acknowledged is recorded; dird is killed with SIGKILL at a random moment;
//! `dird check-store` must then find the data directory clean (no errors, no warnings), and
//! after a restart every acknowledged write must be there (deleted entries absent, the last
//! acknowledged password of an account binds). A write in flight at the kill may or may not
//! have landed, but atomically: the entry is in its before or its after state, never between.
//!
//! `DIRD_CRASH_ROUNDS` sets the number of rounds (default 20; RELIABILITY.md records a longer
//! run), `DIRD_CRASH_SEED` the random seed (default: from the clock, printed).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ldap3::{LdapConn, LdapConnSettings, Mod, Scope, SearchEntry};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const WRITERS: usize = 4;

/// What a writer knows about one of its accounts (keyed by sAMAccountName).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Account {
    cn: String,
    description: Option<String>,
    in_group: bool,
    /// the last acknowledged password (None: never set, or its last change is in doubt)
    password: Option<String>,
}

/// A write sent but not acknowledged when dird died.
#[derive(Clone, Debug)]
enum InDoubt {
    Add(String),
    Modify(String),
    Rename(String, String),
    Delete(String),
    Group(String),
    Password(String),
}

#[derive(Default)]
struct Writer {
    accounts: BTreeMap<String, Account>,
    in_doubt: Option<InDoubt>,
    acked: u64,
}

fn user_dn(cn: &str) -> String {
    format!("cn={cn},{PEOPLE}")
}

fn group_dn(w: usize) -> String {
    format!("cn=crash-g{w},{PEOPLE}")
}

fn tls() -> LdapConnSettings {
    LdapConnSettings::new()
        .set_conn_timeout(Duration::from_secs(10))
        .set_config(Arc::new(client_config()))
}

static CA: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn client_config() -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let pem = CA.get().expect("CA loaded");
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn admin(url: &str) -> LdapConn {
    let mut l = LdapConn::with_settings(tls(), url).expect("ldaps connect");
    l.simple_bind(ADMIN_DN, ADMIN_PW)
        .unwrap()
        .success()
        .unwrap();
    l
}

/// One writer's loop: random writes on its own accounts until a write fails (dird died) or
/// `stop` is set. Acknowledged writes update the model; the failing one is left in doubt.
fn write_loop(
    url: String,
    w: usize,
    round: usize,
    seed: u64,
    mut st: Writer,
    stop: Arc<AtomicBool>,
) -> Writer {
    let mut rng = StdRng::seed_from_u64(seed);
    let Ok(mut l) = LdapConn::with_settings(tls(), &url) else {
        return st;
    };
    if l.simple_bind(ADMIN_DN, ADMIN_PW)
        .and_then(|r| r.success())
        .is_err()
    {
        return st;
    }
    let _ = l.with_timeout(Duration::from_secs(20));
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let names: Vec<String> = st.accounts.keys().cloned().collect();
        let pick = if names.is_empty() {
            None
        } else {
            Some(names[rng.gen_range(0..names.len())].clone())
        };
        let op = if pick.is_none() || names.len() < 3 {
            0
        } else {
            rng.gen_range(0..10)
        };
        let (doubt, result) = match (op, pick) {
            (0..=2, _) | (_, None) => {
                let sam = format!("w{w}r{round}n{n}");
                let cn = format!("{sam} user");
                let r = l.add(
                    &user_dn(&cn),
                    vec![
                        (
                            "objectClass",
                            ["top", "person", "organizationalPerson", "user"].into(),
                        ),
                        ("cn", [cn.as_str()].into()),
                        ("sn", ["Crash"].into()),
                        ("sAMAccountName", [sam.as_str()].into()),
                    ],
                );
                let ok = r.and_then(|r| r.success()).is_ok();
                if ok {
                    st.accounts.insert(
                        sam.clone(),
                        Account {
                            cn,
                            description: None,
                            in_group: false,
                            password: None,
                        },
                    );
                }
                (InDoubt::Add(sam), ok)
            }
            (3 | 4, Some(sam)) => {
                let value = format!("d{round}-{n}");
                let cn = st.accounts[&sam].cn.clone();
                let r = l.modify(
                    &user_dn(&cn),
                    vec![Mod::Replace("description", [value.as_str()].into())],
                );
                let ok = r.and_then(|r| r.success()).is_ok();
                if ok {
                    st.accounts.get_mut(&sam).unwrap().description = Some(value);
                }
                (InDoubt::Modify(sam), ok)
            }
            (5, Some(sam)) => {
                let old = st.accounts[&sam].cn.clone();
                let new = format!("{sam} r{n}");
                let r = l.modifydn(&user_dn(&old), &format!("cn={new}"), true, None);
                let ok = r.and_then(|r| r.success()).is_ok();
                if ok {
                    st.accounts.get_mut(&sam).unwrap().cn = new.clone();
                }
                (InDoubt::Rename(sam, new), ok)
            }
            (6, Some(sam)) => {
                let cn = st.accounts[&sam].cn.clone();
                let r = l.delete(&user_dn(&cn));
                let ok = r.and_then(|r| r.success()).is_ok();
                if ok {
                    st.accounts.remove(&sam);
                }
                (InDoubt::Delete(sam), ok)
            }
            (7 | 8, Some(sam)) => {
                let a = st.accounts[&sam].clone();
                let dn = user_dn(&a.cn);
                let m = if a.in_group {
                    Mod::Delete("member", [dn.as_str()].into())
                } else {
                    Mod::Add("member", [dn.as_str()].into())
                };
                let r = l.modify(&group_dn(w), vec![m]);
                let ok = r.and_then(|r| r.success()).is_ok();
                if ok {
                    st.accounts.get_mut(&sam).unwrap().in_group = !a.in_group;
                }
                (InDoubt::Group(sam), ok)
            }
            (_, Some(sam)) => {
                let pw = format!("Crash-{round}-{n}-pw");
                let cn = st.accounts[&sam].cn.clone();
                let dn = user_dn(&cn);
                let r = l.extended(ldap3::exop::PasswordModify {
                    user_id: Some(&dn),
                    old_pass: None,
                    new_pass: Some(&pw),
                });
                let ok = r.and_then(|r| r.success()).is_ok();
                if ok {
                    st.accounts.get_mut(&sam).unwrap().password = Some(pw);
                }
                (InDoubt::Password(sam), ok)
            }
        };
        if result {
            st.acked += 1;
        } else {
            st.in_doubt = Some(doubt);
            break;
        }
    }
    st
}

/// What the restarted server holds for the writer's accounts: sAMAccountName → account
/// (password unknown).
fn observe(l: &mut LdapConn) -> BTreeMap<String, Account> {
    let (rs, _) = l
        .search(
            PEOPLE,
            Scope::OneLevel,
            "(&(objectClass=user)(sAMAccountName=w*))",
            vec!["cn", "sAMAccountName", "description", "memberOf"],
        )
        .unwrap()
        .success()
        .unwrap();
    let mut out = BTreeMap::new();
    for e in rs {
        let e = SearchEntry::construct(e);
        let first = |a: &str| e.attrs.get(a).and_then(|v| v.first()).cloned();
        let sam = first("sAMAccountName").unwrap();
        let w: usize = sam[1..].split('r').next().unwrap().parse().unwrap();
        let in_group = e
            .attrs
            .get("memberOf")
            .is_some_and(|v| v.iter().any(|g| g.eq_ignore_ascii_case(&group_dn(w))));
        out.insert(
            sam,
            Account {
                cn: first("cn").unwrap(),
                description: first("description"),
                in_group,
                password: None,
            },
        );
    }
    out
}

fn writer_of(sam: &str) -> usize {
    sam[1..].split('r').next().unwrap().parse().unwrap()
}

/// Compares one writer's model with what the server holds; an in-doubt write may have landed
/// (its after state) or not (its before state). Returns the model adjusted to what is there.
fn verify(w: usize, st: &mut Writer, seen: &BTreeMap<String, Account>, round: usize) {
    let mine: BTreeMap<String, Account> = seen
        .iter()
        .filter(|(sam, _)| writer_of(sam) == w)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let doubt_sam = match &st.in_doubt {
        Some(
            InDoubt::Add(s)
            | InDoubt::Modify(s)
            | InDoubt::Rename(s, _)
            | InDoubt::Delete(s)
            | InDoubt::Group(s)
            | InDoubt::Password(s),
        ) => Some(s.clone()),
        None => None,
    };
    for (sam, want) in &st.accounts {
        if Some(sam) == doubt_sam.as_ref() {
            continue;
        }
        let got = mine.get(sam).unwrap_or_else(|| {
            panic!(
                "round {round}: acknowledged account {sam} ({want:?}) is missing after the crash"
            )
        });
        let mut got = got.clone();
        got.password = want.password.clone();
        assert_eq!(
            &got, want,
            "round {round}: account {sam} lost an acknowledged write"
        );
    }
    for sam in mine.keys() {
        if !st.accounts.contains_key(sam) && Some(sam) != doubt_sam.as_ref() {
            panic!("round {round}: {sam} exists, but its delete was acknowledged (or it was never added)");
        }
    }
    if let (Some(d), Some(sam)) = (st.in_doubt.take(), doubt_sam) {
        let before = st.accounts.get(&sam).cloned();
        let after = mine.get(&sam).cloned();
        match (&d, &before, &after) {
            (InDoubt::Add(_), None, _) => {}
            (InDoubt::Delete(_), Some(b), Some(a)) => assert_eq!(
                (&a.cn, &a.description, a.in_group),
                (&b.cn, &b.description, b.in_group),
                "round {round}: half a delete of {sam}"
            ),
            (InDoubt::Delete(_), Some(_), None) => {}
            (InDoubt::Rename(_, new), Some(b), Some(a)) => assert!(
                a.cn == b.cn || a.cn == *new,
                "round {round}: rename of {sam} left cn {:?} (before {:?}, after {new:?})",
                a.cn,
                b.cn
            ),
            (InDoubt::Modify(_) | InDoubt::Group(_) | InDoubt::Password(_), Some(b), Some(a)) => {
                assert_eq!(a.cn, b.cn, "round {round}: {sam}");
            }
            (_, b, a) => panic!("round {round}: in-doubt {d:?}: before {b:?}, after {a:?}"),
        }
        match after {
            Some(mut a) => {
                // An in-doubt password change leaves the password unknown.
                a.password = match d {
                    InDoubt::Password(_) => None,
                    _ => before.and_then(|b| b.password),
                };
                st.accounts.insert(sam, a);
            }
            None => {
                st.accounts.remove(&sam);
            }
        }
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_and_the_store_checks_clean() {
    let rounds: usize = std::env::var("DIRD_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("DIRD_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash test: {rounds} rounds, DIRD_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut s = TestServer::start();
    CA.set(std::fs::read_to_string(s.ca()).unwrap()).unwrap();
    let mut groups = String::from("dn: ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: organizationalUnit\nou: People\n");
    for w in 0..WRITERS {
        groups.push_str(&format!(
            "\ndn: {}\nobjectClass: top\nobjectClass: group\ncn: crash-g{w}\n",
            group_dn(w)
        ));
    }
    s.seed(&groups);

    let started = Instant::now();
    let mut writers: Vec<Writer> = (0..WRITERS).map(|_| Writer::default()).collect();
    let (mut acked, mut in_doubt, mut pw_checked) = (0u64, 0u64, 0u64);
    for round in 0..rounds {
        let url = s.ldaps_url();
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = std::mem::take(&mut writers)
            .into_iter()
            .enumerate()
            .map(|(w, st)| {
                let (url, stop) = (url.clone(), stop.clone());
                let seed = rng.gen();
                std::thread::spawn(move || write_loop(url, w, round, seed, st, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.gen_range(150..1200)));
        s.kill();
        stop.store(true, Ordering::Relaxed);
        writers = handles
            .into_iter()
            .map(|h| h.join().expect("writer panicked"))
            .collect();
        in_doubt += writers.iter().filter(|w| w.in_doubt.is_some()).count() as u64;
        acked += writers.iter().map(|w| w.acked).sum::<u64>();
        for w in writers.iter_mut() {
            w.acked = 0;
        }

        // Offline check of the data directory exactly as the kill left it.
        let out = s.cli(&["check-store", "--json"]);
        let report: serde_json::Value = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("round {round}: check-store output ({e}): {}", text(&out)));
        assert!(
            out.status.success() && report["errors"] == 0 && report["warnings"] == 0,
            "round {round}: check-store after SIGKILL: {report:#}"
        );

        s.launch();
        let mut l = admin(&s.ldaps_url());
        let seen = observe(&mut l);
        for (w, st) in writers.iter_mut().enumerate() {
            verify(w, st, &seen, round);
        }
        // The last acknowledged password of a few accounts binds.
        for st in &writers {
            for a in st
                .accounts
                .values()
                .filter(|a| a.password.is_some())
                .rev()
                .take(2)
            {
                let mut b = LdapConn::with_settings(tls(), &s.ldaps_url()).unwrap();
                let r = b
                    .simple_bind(&user_dn(&a.cn), a.password.as_deref().unwrap())
                    .unwrap();
                assert_eq!(
                    r.rc, 0,
                    "round {round}: {} cannot bind with its last password: {r:?}",
                    a.cn
                );
                pw_checked += 1;
            }
        }
        let _ = l.unbind();
    }
    let live: usize = writers.iter().map(|w| w.accounts.len()).sum();
    eprintln!(
        "crash test: {rounds} rounds in {:.1} s, {acked} acknowledged writes verified, {in_doubt} writes in doubt at the kill, {pw_checked} password binds, {live} accounts live, check-store clean every round",
        started.elapsed().as_secs_f64()
    );
    assert!(acked > rounds as u64, "the writers barely wrote: {acked}");
}
