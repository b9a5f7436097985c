#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Interop test: dird's KDC (in-process, 127.0.0.1 port 0, in-memory principals) driven by the
//! real MIT Kerberos tools from Debian's `krb5-user` (`kinit`, `klist`, `kvno`, `kpasswd`).
//! The tools must be on PATH; the test fails (never skips) if they are missing.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::kdc_lab::{require_mit_tools, show, Lab};
use dird::kdc::db::MemoryDb;
use dird::kdc::keytab::write_keytab;
use dird::model::principal::{random_keys, PrincipalName};

const REALM: &str = "EXAMPLE.COM";
const ALICE_PW: &str = "alice-Passw0rd";
const BOB_PW: &str = "bob-Passw0rd";

fn database() -> (Arc<MemoryDb>, Vec<dird::model::principal::KeyMaterial>) {
    let db = MemoryDb::new(REALM);
    db.add_user("alice", ALICE_PW).unwrap();
    db.add_user("bob", BOB_PW).unwrap();
    db.add_user("carol", "carol-Passw0rd").unwrap();
    db.update("carol", |r| r.disabled = true);
    db.add_alias("alice@example.com", "alice");
    db.add_service(&format!("krbtgt/{REALM}"), random_keys(1).unwrap())
        .unwrap();
    let host_keys = random_keys(3).unwrap();
    db.add_service("host/client.example.com", host_keys.clone())
        .unwrap();
    db.add_service("ldap/dc.example.com", random_keys(1).unwrap())
        .unwrap();
    // kadmin/changepw is deliberately absent: the KDC's built-in changepw key is exercised.
    (Arc::new(db), host_keys)
}

#[test]
fn mit_clients_against_dird_kdc() {
    require_mit_tools();
    let (db, host_keys) = database();
    let lab = Lab::start(db, None);
    let udp = "krb5.conf";
    let tcp = "krb5-tcp.conf";

    // kinit over UDP, then klist.
    lab.ok(
        udp,
        "cc.alice",
        &["kinit", "alice"],
        &format!("{ALICE_PW}\n"),
    );
    let list = lab.ok(udp, "cc.alice", &["klist"], "");
    assert!(
        list.contains("Default principal: alice@EXAMPLE.COM"),
        "{list}"
    );
    assert!(list.contains("krbtgt/EXAMPLE.COM@EXAMPLE.COM"), "{list}");

    // kinit over TCP (udp_preference_limit = 1).
    let out = lab.run(tcp, "cc.tcp", &["kinit", "bob"], &format!("{BOB_PW}\n"));
    assert!(
        out.status.success(),
        "kinit over TCP failed:\n{}",
        show(&out)
    );
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(
        trace.contains("TCP request") || trace.contains("stream 127.0.0.1"),
        "not sent over TCP:\n{trace}"
    );
    lab.ok(tcp, "cc.tcp", &["klist", "-s"], "");

    // Wrong password, unknown user, disabled user.
    lab.fails(
        udp,
        "cc.bad",
        &["kinit", "alice"],
        "wrong-password\n",
        "Password incorrect",
    );
    lab.fails(
        udp,
        "cc.bad",
        &["kinit", "ghost"],
        "whatever\n",
        "not found in Kerberos database",
    );
    lab.fails(
        udp,
        "cc.bad",
        &["kinit", "carol"],
        "carol-Passw0rd\n",
        "revoked",
    );

    // Enterprise (UPN) name with canonicalisation.
    lab.ok(
        udp,
        "cc.upn",
        &["kinit", "-E", "alice@example.com"],
        &format!("{ALICE_PW}\n"),
    );
    let list = lab.ok(udp, "cc.upn", &["klist"], "");
    assert!(
        list.contains("Default principal: alice@EXAMPLE.COM"),
        "{list}"
    );

    // Service tickets.
    let out = lab.ok(udp, "cc.alice", &["kvno", "host/client.example.com"], "");
    assert!(out.contains("kvno = 3"), "{out}");
    let out = lab.ok(tcp, "cc.alice", &["kvno", "ldap/dc.example.com"], "");
    assert!(out.contains("kvno = 1"), "{out}");
    lab.fails(
        udp,
        "cc.alice",
        &["kvno", "nfs/nowhere.example.com"],
        "",
        "not found in Kerberos database",
    );
    let list = lab.ok(udp, "cc.alice", &["klist"], "");
    assert!(
        list.contains("host/client.example.com@EXAMPLE.COM"),
        "{list}"
    );

    // Renewal.
    lab.ok(
        udp,
        "cc.renew",
        &["kinit", "-r", "1d", "alice"],
        &format!("{ALICE_PW}\n"),
    );
    let list = lab.ok(udp, "cc.renew", &["klist"], "");
    assert!(list.contains("renew until"), "{list}");
    lab.ok(udp, "cc.renew", &["kinit", "-R"], "");
    lab.ok(udp, "cc.renew", &["kvno", "host/client.example.com"], "");

    // Forwardable TGT and ticket flags.
    lab.ok(
        udp,
        "cc.fwd",
        &["kinit", "-f", "alice"],
        &format!("{ALICE_PW}\n"),
    );
    let list = lab.ok(udp, "cc.fwd", &["klist", "-f"], "");
    let flags = list
        .split("Flags: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    for flag in ['F', 'I', 'A'] {
        assert!(
            flags.contains(flag),
            "TGT flags {flags:?} lack {flag} (forwardable, initial, pre-authent):\n{list}"
        );
    }
    let list = lab.ok(udp, "cc.alice", &["klist", "-f"], "");
    let flags = list
        .split("Flags: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    assert!(
        !flags.contains('F'),
        "TGT without -f is forwardable: {list}"
    );

    // kpasswd: policy rejection, then a change; new password works, old one does not.
    lab.fails(
        udp,
        "cc.kp",
        &["kpasswd", "bob"],
        &format!("{BOB_PW}\nshort\nshort\n"),
        "8 characters",
    );
    let out = lab.ok(
        udp,
        "cc.kp",
        &["kpasswd", "bob"],
        &format!("{BOB_PW}\nbob-New-Passw0rd\nbob-New-Passw0rd\n"),
    );
    assert!(out.contains("Password changed"), "{out}");
    lab.ok(udp, "cc.bob", &["kinit", "bob"], "bob-New-Passw0rd\n");
    lab.fails(
        udp,
        "cc.bad",
        &["kinit", "bob"],
        &format!("{BOB_PW}\n"),
        "Password incorrect",
    );
    // kpasswd over TCP.
    let out = lab.ok(
        tcp,
        "cc.kp2",
        &["kpasswd", "bob"],
        "bob-New-Passw0rd\nbob-Third-Passw0rd\nbob-Third-Passw0rd\n",
    );
    assert!(out.contains("Password changed"), "{out}");
    lab.ok(tcp, "cc.bob", &["kinit", "bob"], "bob-Third-Passw0rd\n");

    // Keytab export: kinit -k, klist -k, kvno -k.
    let keytab = lab.path("host.keytab");
    let host = PrincipalName::parse("host/client.example.com@EXAMPLE.COM").unwrap();
    let entries: Vec<_> = host_keys
        .iter()
        .map(|k| (host.clone(), k.clone()))
        .collect();
    write_keytab(&keytab, &entries, SystemTime::now()).unwrap();
    let kt = keytab.to_str().unwrap();
    let listed = lab.ok(udp, "cc.kt", &["klist", "-k", "-e", kt], "");
    assert!(
        listed.contains("host/client.example.com@EXAMPLE.COM"),
        "{listed}"
    );
    assert!(listed.contains("aes256-cts-hmac-sha1-96"), "{listed}");
    lab.ok(
        udp,
        "cc.kt",
        &["kinit", "-k", "-t", kt, "host/client.example.com"],
        "",
    );
    let list = lab.ok(udp, "cc.kt", &["klist"], "");
    assert!(
        list.contains("Default principal: host/client.example.com@EXAMPLE.COM"),
        "{list}"
    );
    lab.ok(
        udp,
        "cc.alice",
        &["kvno", "-k", kt, "host/client.example.com"],
        "",
    );

    // Hostile input over UDP and TCP, then the KDC still serves kinit.
    send_garbage(lab.kdc, lab.kpasswd, &lab.path("cc.alice"));
    lab.ok(
        udp,
        "cc.after",
        &["kinit", "alice"],
        &format!("{ALICE_PW}\n"),
    );
    lab.ok(
        tcp,
        "cc.after",
        &["kinit", "alice"],
        &format!("{ALICE_PW}\n"),
    );
    lab.ok(udp, "cc.after", &["kvno", "ldap/dc.example.com"], "");
}

/// Truncated and garbage UDP datagrams and TCP records; checks that malformed KDC requests get
/// a KRB-ERROR (or are dropped) and that nothing kills the listeners.
fn send_garbage(kdc: SocketAddr, kpasswd: SocketAddr, _ccache: &Path) {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut random = move |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect()
    };
    // A syntactically plausible AS-REQ prefix, cut at every length.
    let as_req_prefix = [
        0x6a, 0x81, 0xb0, 0x30, 0x81, 0xad, 0xa1, 0x03, 0x02, 0x01, 0x05, 0xa2, 0x03, 0x02, 0x01,
        0x0a,
    ];
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut datagrams: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x6a],
        vec![0x6c, 0x80],
        vec![0x6a, 0x84, 0xff, 0xff, 0xff, 0xff],
    ];
    for n in 1..as_req_prefix.len() {
        datagrams.push(as_req_prefix[..n].to_vec());
    }
    for n in [1, 7, 64, 700, 1500, 9000] {
        datagrams.push(random(n));
        let mut tagged = random(n);
        tagged[0] = 0x6c;
        datagrams.push(tagged);
    }
    for d in &datagrams {
        udp.send_to(d, kdc).unwrap();
        udp.send_to(d, kpasswd).unwrap();
    }
    // A malformed AS-REQ gets a KRB-ERROR (APPLICATION 30 = 0x7e).
    udp.send_to(&[0x6a, 0x03, 0x30, 0x01, 0x00], kdc).unwrap();
    let mut buf = [0u8; 2048];
    let mut got_error = false;
    while let Ok((n, _)) = udp.recv_from(&mut buf) {
        if n > 0 && buf[0] == 0x7e {
            got_error = true;
        }
    }
    assert!(got_error, "no KRB-ERROR for a malformed AS-REQ");

    for target in [kdc, kpasswd] {
        // High bit set in the record mark, oversize length, truncated record, junk content.
        for payload in [
            vec![0x80, 0, 0, 10],
            vec![0x7f, 0xff, 0xff, 0xff],
            vec![0, 0, 0, 100, 0x6a, 0x01],
            [&[0, 0, 0, 64][..], &random(64)].concat(),
            [&[0, 0, 0, 5][..], &[0x6c, 0x03, 0x30, 0x01, 0x00][..]].concat(),
            vec![0, 0],
        ] {
            let mut stream = TcpStream::connect(target).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            stream.write_all(&payload).unwrap();
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            let mut reply = Vec::new();
            let _ = stream.read_to_end(&mut reply);
            if target == kdc && payload.len() == 9 {
                assert!(
                    reply.len() > 4 && reply[4] == 0x7e,
                    "no KRB-ERROR for malformed TGS-REQ over TCP: {reply:?}"
                );
            }
        }
    }
}
