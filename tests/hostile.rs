//! Hostile LDAP clients (issue 2 §8): malformed BER, oversized PDUs, deep nesting, slowloris,
//! clients that never read, the connection and outstanding-operation limits, and a bind flood.
//! Each case drives the real `dird` binary over raw TCP sockets, decodes the server's answers
//! with dird's own codec (`dird::ldap::{codec, proto}`), and afterwards checks with the
//! OpenLDAP tools that the server process is alive and still serves other clients.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use common::{text, TestServer, ADMIN_DN, ADMIN_PW, BASE};
use dird::ldap::codec::{decode_message, encode_message, LdapCodec};
use dird::ldap::controls::NOTICE_OF_DISCONNECTION;
use dird::ldap::proto::{
    AddRequest, Attribute, AttributeValues, BindRequest, DerefAliases, ExtendedRequest, Filter,
    LdapMessage, LdapResult, ProtocolOp, ResultCode, SearchRequest, SearchScope,
};

const WHO_AM_I: &str = "1.3.6.1.4.1.4203.1.11.3";
const ALICE_DN: &str = "cn=alice,ou=People,dc=example,dc=com";
const BOB_DN: &str = "cn=bob,ou=People,dc=example,dc=com";

// ---------------------------------------------------------------------------------------------
// A raw LDAP client over std TCP, framed and decoded by dird's own codec.

/// What a read produced.
#[derive(Debug)]
enum Got {
    Msg(Box<LdapMessage>),
    /// the server closed the connection (EOF or reset)
    Closed,
    /// nothing within the timeout
    Timeout,
}

struct Raw {
    s: TcpStream,
    buf: BytesMut,
    codec: LdapCodec,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).expect("connect to dird");
        s.set_nodelay(true).expect("nodelay");
        Raw {
            s,
            buf: BytesMut::new(),
            // The client side accepts anything the server sends (search results can be big).
            codec: LdapCodec::new(256 * 1024 * 1024),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send to dird");
    }

    fn send_msg(&mut self, msg: &LdapMessage) {
        let bytes = encode_message(msg).expect("encode");
        self.send(&bytes);
    }

    /// Reads the next message, waiting at most `wait`.
    fn recv(&mut self, wait: Duration) -> Got {
        let deadline = Instant::now() + wait;
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    let msg = decode_message(&frame).unwrap_or_else(|e| {
                        panic!("server sent an undecodable PDU ({e}): {:02x?}", &frame[..])
                    });
                    return Got::Msg(Box::new(msg));
                }
                Ok(None) => {}
                Err(e) => panic!("server sent bad framing: {e}"),
            }
            let now = Instant::now();
            if now >= deadline {
                return Got::Timeout;
            }
            self.s
                .set_read_timeout(Some(deadline - now))
                .expect("read timeout");
            let mut chunk = [0u8; 64 * 1024];
            match self.s.read(&mut chunk) {
                Ok(0) => return Got::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Got::Timeout
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Got::Closed
                }
                Err(e) => panic!("read from dird: {e}"),
            }
        }
    }

    /// The next message, which must arrive within 10 s.
    fn expect_msg(&mut self) -> LdapMessage {
        match self.recv(Duration::from_secs(10)) {
            Got::Msg(m) => *m,
            other => panic!("expected a message from dird, got {other:?}"),
        }
    }

    /// The server must send a Notice of Disconnection (RFC 4511 §4.4.1) and then close.
    fn expect_notice_and_close(&mut self) -> LdapResult {
        let msg = self.expect_msg();
        let result = notice_result(&msg);
        self.expect_closed(Duration::from_secs(10));
        result
    }

    /// The server must close the connection within `wait` (any messages before are ignored).
    fn expect_closed(&mut self, wait: Duration) -> Vec<LdapMessage> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Got::Closed => return seen,
                Got::Msg(m) => seen.push(*m),
                Got::Timeout => panic!("dird did not close the connection within {wait:?}"),
            }
        }
    }

    /// Simple bind; returns the result code.
    fn bind(&mut self, msgid: u32, dn: &str, pw: &str) -> ResultCode {
        self.bind_within(msgid, dn, pw, Duration::from_secs(10))
    }

    /// Simple bind whose answer may take up to `wait`.
    fn bind_within(&mut self, msgid: u32, dn: &str, pw: &str, wait: Duration) -> ResultCode {
        self.send_msg(&LdapMessage::new(
            msgid,
            ProtocolOp::BindRequest(BindRequest::simple(dn, pw.as_bytes())),
        ));
        let m = match self.recv(wait) {
            Got::Msg(m) => *m,
            other => panic!("expected a BindResponse within {wait:?}, got {other:?}"),
        };
        assert_eq!(m.message_id, msgid);
        match m.protocol_op {
            ProtocolOp::BindResponse(r) => r.result_code,
            other => panic!("expected BindResponse, got {other:?}"),
        }
    }

    /// WhoAmI on this connection proves it is still open and served.
    fn who_am_i(&mut self, msgid: u32) -> String {
        self.send_msg(&LdapMessage::new(
            msgid,
            ProtocolOp::ExtendedRequest(ExtendedRequest::new(WHO_AM_I, None)),
        ));
        let m = self.expect_msg();
        assert_eq!(m.message_id, msgid, "{m:?}");
        match m.protocol_op {
            ProtocolOp::ExtendedResponse(r) => {
                assert_eq!(r.result_code, ResultCode::Success);
                String::from_utf8_lossy(r.response_value.as_deref().unwrap_or_default()).into()
            }
            other => panic!("expected ExtendedResponse, got {other:?}"),
        }
    }
}

fn notice_result(msg: &LdapMessage) -> LdapResult {
    assert_eq!(msg.message_id, 0, "a notice has messageID 0: {msg:?}");
    let ProtocolOp::ExtendedResponse(r) = &msg.protocol_op else {
        panic!("expected a Notice of Disconnection, got {msg:?}")
    };
    assert_eq!(
        r.response_name.as_ref().map(|n| n.as_str()),
        Some(NOTICE_OF_DISCONNECTION),
        "{msg:?}"
    );
    r.result()
}

fn search(base: &str, scope: SearchScope, filter: Filter, attrs: &[&str]) -> ProtocolOp {
    ProtocolOp::SearchRequest(SearchRequest {
        base_object: base.into(),
        scope,
        deref_aliases: DerefAliases::Never,
        size_limit: 0,
        time_limit: 0,
        types_only: false,
        filter,
        attributes: attrs.iter().map(|a| (*a).into()).collect(),
    })
}

fn present(attr: &str) -> Filter {
    Filter::Present((*attr).into())
}

fn done_code(msg: &LdapMessage) -> ResultCode {
    match &msg.protocol_op {
        ProtocolOp::SearchResultDone(r) => r.result_code,
        other => panic!("expected SearchResultDone, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Health checks after every case.

/// The dird process exists and is not a zombie.
fn assert_alive(server: &TestServer) {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid()))
        .expect("dird process is gone");
    // /proc/PID/stat: "pid (comm) state ..."; comm may contain spaces, so split after ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("?");
    assert!(state != "Z" && state != "X", "dird died (state {state})");
}

/// Resident memory of the daemon in KiB.
fn vm_rss_kib(server: &TestServer) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// After every hostile case: the process is alive, and a fresh client gets answers from
/// `ldapwhoami` (bound as Administrator) and an anonymous rootDSE search.
fn assert_serves_others(server: &TestServer) {
    assert_alive(server);
    let url = server.ldap_url();
    let out = server.tool(
        "ldapwhoami",
        &[
            "-x",
            "-H",
            &url,
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            "-o",
            "nettimeout=10",
        ],
    );
    assert!(out.status.success(), "ldapwhoami failed: {}", text(&out));
    let who = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        who.contains(&format!("dn:{}", ADMIN_DN.to_ascii_lowercase())),
        "{who}"
    );
    let out = server.tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &url,
            "-o",
            "nettimeout=10",
            "-b",
            "",
            "-s",
            "base",
            "(objectClass=*)",
            "namingContexts",
        ],
    );
    assert!(
        out.status.success(),
        "rootDSE search failed: {}",
        text(&out)
    );
    let root = String::from_utf8_lossy(&out.stdout);
    assert!(root.contains(&format!("namingContexts: {BASE}")), "{root}");
    assert_alive(server);
}

/// The inode of the server's socket for the TCP connection between the server's listening port
/// and a client's local port (from /proc/net/tcp, IPv4 loopback).
fn server_socket_inode(server_port: u16, client_port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let port = |addr: &str| {
        addr.rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, inode) = (f.get(1)?, f.get(2)?, f.get(9)?);
        (port(local)? == server_port && port(remote)? == client_port)
            .then(|| inode.parse().ok())
            .flatten()
    })
}

/// Whether the daemon still has the socket with this inode open.
fn server_holds_socket(server: &TestServer, inode: u64) -> bool {
    let want = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .expect("read /proc/PID/fd")
        .filter_map(|e| e.ok())
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == want.as_str()))
}

// ---------------------------------------------------------------------------------------------
// Malformed BER.

#[test]
fn garbage_first_byte_gets_notice_and_close() {
    let server = TestServer::start();
    let mut c = Raw::connect(server.ldap);
    c.send(b"GET / HTTP/1.1\r\nHost: dird\r\n\r\n");
    let r = c.expect_notice_and_close();
    assert_eq!(r.result_code, ResultCode::ProtocolError);
    assert_serves_others(&server);
}

#[test]
fn bad_length_gets_notice_and_close() {
    let server = TestServer::start();
    // Five length octets: more than any LDAP PDU can use.
    let mut c = Raw::connect(server.ldap);
    c.send(&[0x30, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00]);
    assert_eq!(
        c.expect_notice_and_close().result_code,
        ResultCode::ProtocolError
    );
    // An inner length running past the end of the PDU: the messageID cannot be read.
    let mut c = Raw::connect(server.ldap);
    c.send(&[0x30, 0x05, 0x02, 0x7f, 0x01, 0x42, 0x00]);
    assert_eq!(
        c.expect_notice_and_close().result_code,
        ResultCode::ProtocolError
    );
    assert_serves_others(&server);
}

#[test]
fn indefinite_length_gets_notice_and_close() {
    let server = TestServer::start();
    let mut c = Raw::connect(server.ldap);
    // RFC 4511 §5.1: only the definite form of length encoding is allowed.
    c.send(&[0x30, 0x80, 0x02, 0x01, 0x01, 0x42, 0x00, 0x00, 0x00]);
    assert_eq!(
        c.expect_notice_and_close().result_code,
        ResultCode::ProtocolError
    );
    assert_serves_others(&server);
}

#[test]
fn truncated_pdu_then_close() {
    let server = TestServer::start();
    let mut c = Raw::connect(server.ldap);
    let whole = encode_message(&LdapMessage::new(
        1,
        search("", SearchScope::BaseObject, present("objectClass"), &[]),
    ))
    .expect("encode");
    c.send(&whole[..whole.len() / 2]);
    c.s.shutdown(Shutdown::Write).expect("half-close");
    // The server may say why before it closes; if it does, it is a notice.
    let said = c.expect_closed(Duration::from_secs(10));
    assert!(said.len() <= 1, "{said:?}");
    for m in &said {
        notice_result(m);
    }
    assert_serves_others(&server);
}

#[test]
fn undecodable_body_without_message_id_gets_notice() {
    let server = TestServer::start();
    let mut c = Raw::connect(server.ldap);
    // Valid framing, but the first element is an OCTET STRING, not the messageID INTEGER.
    c.send(&[0x30, 0x05, 0x04, 0x01, 0x00, 0x42, 0x00]);
    assert_eq!(
        c.expect_notice_and_close().result_code,
        ResultCode::ProtocolError
    );
    assert_serves_others(&server);
}

#[test]
fn undecodable_body_with_message_id_gets_protocol_error_and_connection_lives() {
    let server = TestServer::start();
    let mut c = Raw::connect(server.ldap);
    // A DelRequest whose DN is not UTF-8: per-message protocolError (RFC 4511 §4.1.1).
    c.send(&[0x30, 0x06, 0x02, 0x01, 0x04, 0x4a, 0x01, 0xff]);
    let m = c.expect_msg();
    assert_eq!(m.message_id, 4);
    let ProtocolOp::DelResponse(r) = &m.protocol_op else {
        panic!("{m:?}")
    };
    assert_eq!(r.result_code, ResultCode::ProtocolError);
    // A SearchRequest with scope 7 (not in the ENUMERATED).
    let mut bytes = encode_message(&LdapMessage::new(
        5,
        search(BASE, SearchScope::WholeSubtree, present("cn"), &[]),
    ))
    .expect("encode");
    let at = bytes
        .windows(3)
        .position(|w| w == [0x0a, 0x01, 0x02])
        .expect("scope");
    bytes[at + 2] = 7;
    c.send(&bytes);
    let m = c.expect_msg();
    assert_eq!(m.message_id, 5);
    assert_eq!(done_code(&m), ResultCode::ProtocolError);
    // The connection is still usable.
    assert_eq!(c.who_am_i(6), "");
    assert_serves_others(&server);
}

#[test]
fn bind_with_unknown_auth_choice_gets_auth_method_not_supported() {
    let server = TestServer::start();
    let mut c = Raw::connect(server.ldap);
    // BindRequest { version 3, name "", authentication [9] (MS "Sicily") }.
    c.send(&[
        0x30, 0x0c, 0x02, 0x01, 0x09, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x89, 0x00,
    ]);
    let m = c.expect_msg();
    assert_eq!(m.message_id, 9);
    let ProtocolOp::BindResponse(r) = &m.protocol_op else {
        panic!("{m:?}")
    };
    assert_eq!(r.result_code, ResultCode::AuthMethodNotSupported);
    assert_eq!(r.result_code.code(), 7);
    // Still usable: a real bind works afterwards.
    assert_eq!(c.bind(10, ADMIN_DN, ADMIN_PW), ResultCode::Success);
    assert_eq!(
        c.who_am_i(11).to_ascii_lowercase(),
        format!("dn:{}", ADMIN_DN.to_ascii_lowercase())
    );
    assert_serves_others(&server);
}

#[test]
fn unknown_protocol_op_gets_notice_and_close() {
    let server = TestServer::start();
    let mut c = Raw::connect(server.ldap);
    // messageID 7, protocolOp [APPLICATION 30] (constructed): no such request (RFC 4511
    // §4.4.1: "the tag of the protocolOp is not recognized as a request").
    c.send(&[0x30, 0x07, 0x02, 0x01, 0x07, 0x7e, 0x02, 0x04, 0x00]);
    assert_eq!(
        c.expect_notice_and_close().result_code,
        ResultCode::ProtocolError
    );
    // A response op sent by a client is not a request either.
    let mut c = Raw::connect(server.ldap);
    c.send_msg(&LdapMessage::new(
        8,
        ProtocolOp::SearchResultDone(LdapResult::success()),
    ));
    assert_eq!(
        c.expect_notice_and_close().result_code,
        ResultCode::ProtocolError
    );
    assert_serves_others(&server);
}

// ---------------------------------------------------------------------------------------------
// Size caps.

#[test]
fn length_header_over_max_pdu_is_refused_without_allocating() {
    let server = TestServer::start();
    let before = vm_rss_kib(&server);
    let mut c = Raw::connect(server.ldap);
    // Claims a 2 GiB PDU; only the header is ever sent.
    c.send(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]);
    let r = c.expect_notice_and_close();
    assert_eq!(r.result_code, ResultCode::ProtocolError);
    assert!(r.diagnostic_message.as_str().contains("exceeds"), "{r:?}");
    let after = vm_rss_kib(&server);
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB on a 2 GiB length claim"
    );
    assert_serves_others(&server);
}

/// LDIF of one inetOrgPerson whose `description` values add up to about `bytes`.
fn big_entry_ldif(cn: &str, bytes: usize) -> String {
    let mut ldif = format!(
        "dn: cn={cn},{BASE}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson\ncn: {cn}\nsn: big\n"
    );
    let value = "x".repeat(1000);
    for i in 0..bytes / 1000 {
        ldif.push_str(&format!("description: {i:06} {value}\n"));
    }
    ldif
}

const TWO_MIB: usize = 2 * 1024 * 1024;

#[test]
fn two_mib_add_is_refused_with_the_default_cap() {
    let server = TestServer::start();
    let ldif = big_entry_ldif("huge", TWO_MIB).replacen('\n', "\nchangetype: add\n", 1);
    let out = server.modify_as_admin(&server.ldap_url(), &ldif);
    assert!(
        !out.status.success(),
        "2 MiB add must be refused: {}",
        text(&out)
    );
    // Over a raw socket the refusal is a Notice of Disconnection naming the limit.
    let mut c = Raw::connect(server.ldap);
    assert_eq!(c.bind(1, ADMIN_DN, ADMIN_PW), ResultCode::Success);
    let add = big_add("huge2", TWO_MIB);
    let writer = {
        let mut s = c.s.try_clone().expect("clone socket");
        std::thread::spawn(move || {
            let _ = s.write_all(&add); // the server may close before we finish: fine
        })
    };
    let msg = c.expect_msg();
    let r = notice_result(&msg);
    assert!(
        r.diagnostic_message
            .as_str()
            .contains("exceeds the limit of 1048576"),
        "{r:?}"
    );
    writer.join().expect("writer thread");
    // Nothing was added.
    let found = server.search_admin(BASE, "(|(cn=huge)(cn=huge2))", &["1.1"]);
    assert!(found.trim().is_empty(), "{found}");
    assert_serves_others(&server);
}

#[test]
fn two_mib_add_works_when_max_pdu_is_raised() {
    let server = TestServer::start_with("max_pdu = 4194304");
    let ldif = big_entry_ldif("huge", TWO_MIB).replacen('\n', "\nchangetype: add\n", 1);
    let out = server.modify_as_admin(&server.ldap_url(), &ldif);
    assert!(
        out.status.success(),
        "2 MiB add with max_pdu = 4 MiB: {}",
        text(&out)
    );
    let found = server.search_admin(BASE, "(cn=huge)", &["description"]);
    assert_eq!(
        found.matches("description: ").count(),
        TWO_MIB / 1000,
        "all values stored"
    );
    assert_serves_others(&server);
}

/// A BER AddRequest (msgid 2) of about `bytes` bytes.
fn big_add(cn: &str, bytes: usize) -> Vec<u8> {
    let value = "y".repeat(1000);
    let vals: Vec<Vec<u8>> = (0..bytes / 1000)
        .map(|i| format!("{i:06} {value}").into_bytes())
        .collect();
    let attr = |name: &str, vals: Vec<Vec<u8>>| Attribute {
        attr_type: name.into(),
        vals: AttributeValues(vals.into_iter().map(Into::into).collect()),
    };
    encode_message(&LdapMessage::new(
        2,
        ProtocolOp::AddRequest(AddRequest {
            entry: format!("cn={cn},{BASE}").into(),
            attributes: vec![
                attr("objectClass", vec![b"top".to_vec(), b"person".to_vec()]),
                attr("cn", vec![cn.as_bytes().to_vec()]),
                attr("sn", vec![b"big".to_vec()]),
                attr("description", vals),
            ],
        }),
    ))
    .expect("encode add")
}

// ---------------------------------------------------------------------------------------------
// Deep nesting.

/// A SearchRequest (msgid 5) whose filter is `depth` nested NOTs around (a=b), built
/// iteratively (no recursion in the test either).
fn deep_not_search(depth: usize) -> Vec<u8> {
    fn header(tag: u8, len: usize) -> Vec<u8> {
        let mut h = vec![tag];
        if len < 0x80 {
            h.push(len as u8);
        } else {
            h.push(0x84);
            h.extend_from_slice(&(len as u32).to_be_bytes());
        }
        h
    }
    let inner = [0xa3, 0x06, 0x04, 0x01, b'a', 0x04, 0x01, b'b'];
    let mut headers = Vec::with_capacity(depth);
    let mut len = inner.len();
    for _ in 0..depth {
        let h = header(0xa2, len);
        len += h.len();
        headers.push(h);
    }
    let mut filter = Vec::with_capacity(len);
    for h in headers.iter().rev() {
        filter.extend_from_slice(h);
    }
    filter.extend_from_slice(&inner);
    // base "", scope base, derefAliases never, sizeLimit 0, timeLimit 0, typesOnly FALSE
    let mut body = vec![
        0x04, 0x00, 0x0a, 0x01, 0x00, 0x0a, 0x01, 0x00, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x01,
        0x01, 0x00,
    ];
    body.extend_from_slice(&filter);
    body.extend_from_slice(&[0x30, 0x00]);
    let mut msg = vec![0x02, 0x01, 0x05];
    msg.extend(header(0x63, body.len()));
    msg.extend_from_slice(&body);
    let mut pdu = header(0x30, msg.len());
    pdu.extend_from_slice(&msg);
    pdu
}

#[test]
fn deeply_nested_filter_is_refused_without_overflow() {
    let server = TestServer::start();
    let mut c = Raw::connect(server.ldap);
    c.send(&deep_not_search(100_000));
    // Either a per-message protocolError for msgid 5, or a notice and a close.
    let m = c.expect_msg();
    if m.message_id == 0 {
        notice_result(&m);
        c.expect_closed(Duration::from_secs(10));
    } else {
        assert_eq!(m.message_id, 5);
        assert_eq!(done_code(&m), ResultCode::ProtocolError);
        assert_eq!(c.who_am_i(6), "");
    }
    assert_serves_others(&server);
}

// ---------------------------------------------------------------------------------------------
// Slow and stuck clients.

#[test]
fn slowloris_is_closed_after_idle_timeout_while_others_are_served() {
    let server = TestServer::start_with("idle_timeout_secs = 2");
    let mut slow = Raw::connect(server.ldap);
    let whole = encode_message(&LdapMessage::new(
        1,
        search("", SearchScope::BaseObject, present("objectClass"), &[]),
    ))
    .expect("encode");
    let started = Instant::now();
    slow.send(&whole[..whole.len() / 2]);
    // Others are served meanwhile, promptly.
    for _ in 0..2 {
        let t = Instant::now();
        assert_serves_others(&server);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "others were slowed down"
        );
    }
    // The stalled client is closed after the idle timeout (with a notice, then EOF).
    let said = slow.expect_closed(Duration::from_secs(15));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "closed too late: {waited:?}"
    );
    assert!(said.len() <= 1, "{said:?}");
    for m in &said {
        notice_result(m);
    }
    assert_serves_others(&server);
}

#[test]
fn client_that_never_reads_is_dropped_after_write_timeout() {
    let server = TestServer::start_with("write_timeout_secs = 2");
    // Five entries of ~50 KB each, so every search answers with ~250 KB: 200 of them are far
    // more than the socket buffers between the server and the hog can hold.
    let mut ldif = String::new();
    for i in 0..5 {
        ldif.push_str(&big_entry_ldif(&format!("bulk{i}"), 50_000));
        ldif.push('\n');
    }
    server.seed(&ldif);
    let rss_before = vm_rss_kib(&server);

    let mut hog = Raw::connect(server.ldap);
    assert_eq!(hog.bind(1, ADMIN_DN, ADMIN_PW), ResultCode::Success);
    // 200 searches (~50 MB of results) that are never read.
    let mut burst = Vec::new();
    for id in 2..202 {
        burst.extend(
            encode_message(&LdapMessage::new(
                id,
                search(
                    BASE,
                    SearchScope::WholeSubtree,
                    Filter::EqualityMatch(dird::ldap::proto::AttributeValueAssertion::new(
                        "sn", b"big",
                    )),
                    &["*"],
                ),
            ))
            .expect("encode"),
        );
    }
    hog.s
        .set_write_timeout(Some(Duration::from_secs(10)))
        .expect("write timeout");
    // The server stops reading once its outstanding-op cap is reached; the burst is small
    // enough (~14 KB) to sit in the socket buffers.
    hog.send(&burst);
    let started = Instant::now();
    // Other clients are served while the hog's connection is stuck: a fresh connection gets
    // its WhoAmI answered while the server still holds the hog's socket.
    let inode = server_socket_inode(server.ldap.port(), hog.s.local_addr().expect("addr").port())
        .expect("server-side socket of the hog in /proc/net/tcp");
    let mut probe = Raw::connect(server.ldap);
    assert_eq!(probe.who_am_i(1), "");
    assert!(
        server_holds_socket(&server, inode),
        "the hog was dropped before another client was served"
    );
    drop(probe);

    // Readiness signal: the server closes its end of the hog's connection (its socket leaves
    // /proc/PID/fd). The hog must not read until then, or it would relieve the pressure.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server_holds_socket(&server, inode) {
        assert!(
            Instant::now() < deadline,
            "hog connection was never dropped"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dropped_after = started.elapsed();
    assert!(
        dropped_after >= Duration::from_millis(1500),
        "dropped before the write timeout could expire: {dropped_after:?}"
    );
    // Reading now drains whatever the kernel buffered, then hits EOF/reset well before
    // all 200 results.
    let mut total = 0usize;
    let mut dones = 0usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "hog connection was never dropped"
        );
        match hog.recv(Duration::from_secs(10)) {
            Got::Msg(m) => {
                total += 1;
                if matches!(m.protocol_op, ProtocolOp::SearchResultDone(_)) {
                    dones += 1;
                }
            }
            Got::Closed => break,
            Got::Timeout => panic!("hog connection still open after write timeout"),
        }
    }
    assert!(
        dones < 200,
        "all {dones} searches were answered: the hog was never dropped"
    );
    eprintln!(
        "hog dropped after {dropped_after:?}; it got {total} messages ({dones} searches done)"
    );
    let rss_after = vm_rss_kib(&server);
    assert!(
        rss_after < rss_before + 256 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert_serves_others(&server);
}

// ---------------------------------------------------------------------------------------------
// Limits.

/// A connection the server accepted and served (a WhoAmI answered), retrying for up to 5 s
/// while the server releases the slot of a connection that just closed.
fn connect_served(addr: SocketAddr) -> Raw {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Raw::connect(addr);
        c.send_msg(&LdapMessage::new(
            1,
            ProtocolOp::ExtendedRequest(ExtendedRequest::new(WHO_AM_I, None)),
        ));
        match c.recv(Duration::from_secs(5)) {
            Got::Msg(m) if m.message_id == 1 => return c,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "no free connection slot: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn connection_limit_closes_the_extra_connection() {
    let server = TestServer::start_with("max_connections = 5");
    let mut held: Vec<Raw> = (0..5).map(|_| Raw::connect(server.ldap)).collect();
    // Each of the five is accepted and served.
    for (i, c) in held.iter_mut().enumerate() {
        assert_eq!(c.who_am_i(i as u32 + 1), "");
    }
    // The sixth is closed at once, without being served.
    let mut sixth = Raw::connect(server.ldap);
    let t = Instant::now();
    match sixth.recv(Duration::from_secs(5)) {
        Got::Closed => {}
        Got::Msg(m) => {
            notice_result(&m);
            sixth.expect_closed(Duration::from_secs(5));
        }
        Got::Timeout => panic!("the 6th connection was not closed"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "not closed immediately"
    );
    // A real client is refused too while the five are held.
    let url = server.ldap_url();
    let out = server.tool("ldapwhoami", &["-x", "-H", &url, "-o", "nettimeout=5"]);
    assert!(
        !out.status.success(),
        "a 6th client was served: {}",
        text(&out)
    );
    // The held ones still work.
    for (i, c) in held.iter_mut().enumerate() {
        assert_eq!(c.who_am_i(i as u32 + 100), "");
    }
    // Unbind and close them; the server frees their slots as it sees each close.
    for mut c in held.drain(..) {
        c.send_msg(&LdapMessage::new(200, ProtocolOp::UnbindRequest(())));
        c.expect_closed(Duration::from_secs(5));
    }
    // The server closed each of them, so their slots are free (the permit is released just
    // after the server's close, hence the retry in `connect_served`): five new ones work.
    let mut five: Vec<Raw> = (0..5).map(|_| connect_served(server.ldap)).collect();
    for (i, c) in five.iter_mut().enumerate() {
        assert_eq!(c.who_am_i(i as u32 + 10), "");
    }
    drop(five);
    // assert_serves_others needs two slots: wait until the five are gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let url = server.ldap_url();
        let out = server.tool("ldapwhoami", &["-x", "-H", &url, "-o", "nettimeout=5"]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slots never freed: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_serves_others(&server);
}

#[test]
fn pipelined_searches_are_all_answered_with_two_outstanding_ops() {
    let server = TestServer::start_with("max_ops_per_connection = 2");
    server.seed(common::SEED);
    let users = ["alice", "bob", "carol"];
    let mut c = Raw::connect(server.ldap);
    assert_eq!(c.bind(1, ADMIN_DN, ADMIN_PW), ResultCode::Success);
    // 50 searches in one write, each for one user picked by msgid.
    let mut burst = Vec::new();
    for id in 2..52u32 {
        let user = users[id as usize % 3];
        burst.extend(
            encode_message(&LdapMessage::new(
                id,
                search(
                    &format!("cn={user},ou=People,{BASE}"),
                    SearchScope::BaseObject,
                    present("objectClass"),
                    &["cn"],
                ),
            ))
            .expect("encode"),
        );
    }
    c.send(&burst);
    let mut entries = std::collections::HashMap::<u32, Vec<String>>::new();
    let mut done_order = Vec::new();
    while done_order.len() < 50 {
        let m = c.expect_msg();
        let id = m.message_id;
        assert!(
            !done_order.contains(&id),
            "response for {id} after its done"
        );
        // With two outstanding operations, request `id` was only read while at most one
        // earlier request was unfinished, and a finished operation's responses are written
        // before its slot is freed: so at most one earlier search can still lack its done.
        let earlier_open = (2..id).filter(|j| !done_order.contains(j)).count();
        assert!(
            earlier_open <= 1,
            "response for {id} while {earlier_open} earlier searches are unanswered: more than 2 ops in flight"
        );
        match m.protocol_op {
            ProtocolOp::SearchResultEntry(e) => {
                entries.entry(id).or_default().push(e.object_name.0.clone())
            }
            ProtocolOp::SearchResultDone(r) => {
                assert_eq!(r.result_code, ResultCode::Success, "msgid {id}: {r:?}");
                done_order.push(id);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    for id in 2..52u32 {
        let user = users[id as usize % 3];
        assert_eq!(
            entries.get(&id).map(Vec::as_slice),
            Some(&[format!("cn={user},ou=People,{BASE}")][..]),
            "msgid {id}"
        );
    }
    assert_eq!(
        c.who_am_i(60).to_ascii_lowercase(),
        format!("dn:{}", ADMIN_DN.to_ascii_lowercase())
    );
    assert_serves_others(&server);
}

#[test]
fn bind_flood_does_not_starve_a_correct_bind() {
    let server = TestServer::start();
    server.seed(common::SEED);
    let addr = server.ldap;
    // 200 connections, each with one wrong-password bind for alice, all in flight together.
    // Every guess costs a real argon2 check (alice exists and has a password).
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(201));
    let flood: Vec<_> = (0..200)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut c = Raw::connect(addr);
                barrier.wait();
                // The guesses against one account are checked one at a time: allow for
                // 200 sequential argon2 checks on a loaded 2-core machine.
                c.bind_within(1, ALICE_DN, "wrong-password", Duration::from_secs(120))
            })
        })
        .collect();
    barrier.wait();
    // A correct bind from another client (another account), while the flood is hashed.
    let t = Instant::now();
    let url = server.ldap_url();
    let out = server.tool(
        "ldapwhoami",
        &[
            "-x",
            "-H",
            &url,
            "-D",
            BOB_DN,
            "-w",
            "bob-Passw0rd",
            "-o",
            "nettimeout=30",
        ],
    );
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "correct bind during flood: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .to_ascii_lowercase()
            .contains("dn:cn=bob"),
        "{}",
        text(&out)
    );
    // The flood was really in progress while the correct bind was served.
    let still_flooding = flood.iter().filter(|h| !h.is_finished()).count();
    assert!(
        still_flooding > 0,
        "the flood finished before the correct bind: no contention"
    );
    for h in flood {
        let code = h.join().expect("flood thread");
        assert_eq!(code, ResultCode::InvalidCredentials);
        assert_eq!(code.code(), 49);
    }
    eprintln!(
        "correct bind during a 200-bind flood took {took:?}; {still_flooding} guesses were still pending"
    );
    assert!(took < Duration::from_secs(5), "correct bind took {took:?}");
    assert_serves_others(&server);
}
