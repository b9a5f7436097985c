#![allow(clippy::unwrap_used, clippy::expect_used)]
//! TLS hardening (issue 15 §4): only TLS 1.2 and 1.3 are offered (a TLS 1.1 or 1.0 `openssl
//! s_client` is refused on the LDAPS port and after StartTLS), plaintext LDAP on the LDAPS port
//! never reaches the LDAP code, and nothing a client pipelines after its StartTLS request,
//! before the handshake, is processed (RFC 4513 §3.1.1, RFC 4511 §4.14.1): tested with a raw
//! socket client that sends StartTLS and a bind in one write.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use dird::ldap::codec::encode_message;
use dird::ldap::proto::{BindRequest, ExtendedRequest, LdapMessage, ProtocolOp};

const START_TLS: &str = "1.3.6.1.4.1.1466.20037";

/// `openssl s_client` with one protocol version forced; `@SECLEVEL=0` so that the client
/// itself is willing to speak TLS 1.1 (Debian's OpenSSL 3 refuses it at the default level).
fn s_client(s: &TestServer, version: &str, starttls: bool) -> Output {
    let addr = if starttls { s.ldap } else { s.ldaps };
    let mut args = vec![
        "s_client".to_string(),
        "-connect".into(),
        addr.to_string(),
        version.into(),
        "-CAfile".into(),
        s.ca().display().to_string(),
    ];
    if version != "-tls1_3" {
        args.extend(["-cipher".into(), "DEFAULT:@SECLEVEL=0".into()]);
    }
    if starttls {
        args.extend(["-starttls".into(), "ldap".into()]);
    }
    Command::new("openssl")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl must be installed (Debian package openssl)")
}

/// The protocol `s_client` reports as negotiated ("New, TLSv1.3, Cipher is …").
fn negotiated(out: &Output) -> Option<String> {
    text(out)
        .lines()
        .find(|l| l.starts_with("New, TLSv1"))
        .and_then(|l| l.split(',').nth(1))
        .map(|v| v.trim().to_string())
}

#[test]
fn only_tls_1_2_and_1_3_are_accepted() {
    let s = TestServer::start();
    for starttls in [false, true] {
        let where_ = if starttls { "StartTLS" } else { "LDAPS" };
        for (flag, name) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
            let out = s_client(&s, flag, starttls);
            assert!(out.status.success(), "{where_} {flag}: {}", text(&out));
            assert_eq!(
                negotiated(&out).as_deref(),
                Some(name),
                "{where_} {flag}: {}",
                text(&out)
            );
            assert!(
                text(&out).contains("Verify return code: 0 (ok)"),
                "{}",
                text(&out)
            );
        }
        for flag in ["-tls1_1", "-tls1"] {
            let out = s_client(&s, flag, starttls);
            let all = text(&out);
            assert!(
                !out.status.success(),
                "{where_} {flag} must be refused: {all}"
            );
            assert!(
                // rustls answers a ClientHello without 1.2/1.3 with a handshake_failure alert
                all.contains("alert protocol version")
                    || all.contains("alert handshake failure")
                    || all.contains("unsupported protocol"),
                "{where_} {flag}: expected a protocol-version refusal: {all}"
            );
            assert!(
                negotiated(&out).is_none(),
                "{where_} {flag} negotiated: {all}"
            );
        }
    }
}

/// Reads until EOF (or `wait`), returning what arrived and whether the peer closed.
fn read_to_close(c: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        c.set_read_timeout(Some(deadline - Instant::now())).unwrap();
        match c.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => return (got, false),
        }
    }
    (got, false)
}

fn start_tls_pdu() -> Vec<u8> {
    encode_message(&LdapMessage::new(
        1,
        ProtocolOp::ExtendedRequest(ExtendedRequest::new(START_TLS, None)),
    ))
    .unwrap()
}

fn bind_pdu(id: u32, dn: &str, pw: &str) -> Vec<u8> {
    encode_message(&LdapMessage::new(
        id,
        ProtocolOp::BindRequest(BindRequest::simple(dn, pw.as_bytes())),
    ))
    .unwrap()
}

#[test]
fn plaintext_ldap_on_the_ldaps_port_is_refused() {
    let s = TestServer::start();
    let mut c = TcpStream::connect(s.ldaps).unwrap();
    c.write_all(&bind_pdu(1, ADMIN_DN, ADMIN_PW)).unwrap();
    let (got, closed) = read_to_close(&mut c, Duration::from_secs(15));
    assert!(
        closed,
        "dird must close a plaintext connection on the LDAPS port"
    );
    // No LDAP message (a SEQUENCE, 0x30) comes back: at most a TLS alert record (0x15).
    assert!(
        got.first().is_none_or(|b| *b == 0x15),
        "plaintext on LDAPS got an answer other than a TLS alert: {got:02x?}"
    );
    // ldapsearch over ldap:// to the LDAPS port fails too; LDAPS itself still works.
    let out = s.ldapsearch(&["-H", &format!("ldap://{}", s.ldaps), "-b", "", "-s", "base"]);
    assert_ne!(rc(&out), 0, "{}", text(&out));
    let out = s.ldapsearch(&[
        "-H",
        &s.ldaps_url(),
        "-b",
        "",
        "-s",
        "base",
        "namingContexts",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
}

#[test]
fn bytes_pipelined_after_starttls_are_not_processed() {
    let s = TestServer::start();
    // A bind pipelined behind the StartTLS request in the same write, before any handshake:
    // RFC 4513 §3.1.1 forbids processing it. (A wrong password: a processed bind answers 49.)
    let mut pdus = start_tls_pdu();
    pdus.extend(bind_pdu(2, ALICE_DN, "pipelined-secret"));
    let mut c = TcpStream::connect(s.ldap).unwrap();
    c.write_all(&pdus).unwrap();
    let (got, closed) = read_to_close(&mut c, Duration::from_secs(15));
    assert!(closed, "dird must close the connection: got {got:02x?}");
    // No answer to message 2: a BindResponse is [APPLICATION 1] (0x61).
    assert!(
        !got.contains(&0x61),
        "the pipelined bind was answered: {got:02x?}"
    );

    // The pipelined bytes arriving after the StartTLS response: they reach the TLS layer as
    // something other than a ClientHello, the handshake fails and nothing is answered.
    let mut c = TcpStream::connect(s.ldap).unwrap();
    c.write_all(&start_tls_pdu()).unwrap();
    let mut buf = [0u8; 512];
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = c.read(&mut buf).unwrap();
    assert!(
        n > 0 && buf[0] == 0x30,
        "StartTLS response: {:02x?}",
        &buf[..n]
    );
    c.write_all(&bind_pdu(2, ALICE_DN, "pipelined-secret"))
        .unwrap();
    let (got, closed) = read_to_close(&mut c, Duration::from_secs(15));
    assert!(closed, "dird must close the connection: got {got:02x?}");
    assert!(
        got.first().is_none_or(|b| *b == 0x15),
        "plaintext after StartTLS got an answer other than a TLS alert: {got:02x?}"
    );

    // The server is fine and a real StartTLS client works.
    let out = s.whoami(&["-ZZ", "-H", &s.ldap_url(), "-D", ADMIN_DN, "-w", ADMIN_PW]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
}
