#![allow(clippy::unwrap_used, clippy::expect_used)]
//! MS-PAC in dird's tickets (issue 10 item 6), checked by independent implementations: the
//! real `dird` binary with `[kdc]` on random ports; MIT `kinit`/`kvno` get a service ticket
//! for a keytab'd service; the PAC is taken out of the ticket with the `krb5` crate (which
//! also checks the server, KDC, ticket and full signatures, as MIT's
//! `krb5_kdc_verify_ticket` does), decoded by Samba's `ndrdump krb5pac PAC_DATA` (names,
//! RIDs, nested groups, UPN_DNS_INFO) and verified by MIT libkrb5's `krb5_pac_verify` (server
//! and KDC checksums) through python3 ctypes. Missing tools fail the test (never skip).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use common::{text, TestServer, SEED};
use krb5::Key;

const UDP: &str = "krb5.conf";
const ALICE_DN: &str = "cn=alice,ou=People,dc=example,dc=com";

/// A group holding `devs` (of which alice is a member): alice is in `eng` through nesting.
const NESTED: &str = r#"dn: cn=eng,ou=People,dc=example,dc=com
objectClass: top
objectClass: group
cn: eng
sAMAccountName: eng
member: cn=devs,ou=People,dc=example,dc=com
"#;

fn require(tool: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{tool}` is missing: apt-get install -y {package} (this test never skips)")
    })
}

/// The RID (last sub-authority) and the domain part (`S-1-5-21-a-b-c`) of an entry's objectSid.
fn sid_of(s: &TestServer, dn: &str) -> (u32, String) {
    let out = s.search_admin(dn, "(objectClass=*)", &["objectSid"]);
    let b64 = out
        .lines()
        .find_map(|l| l.strip_prefix("objectSid:: "))
        .unwrap_or_else(|| panic!("{dn} has no objectSid:\n{out}"));
    let sid = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    let n = usize::from(sid[1]);
    let auth = u64::from_be_bytes([0, 0, sid[2], sid[3], sid[4], sid[5], sid[6], sid[7]]);
    let subs: Vec<u32> = (0..n)
        .map(|i| u32::from_le_bytes(sid[8 + 4 * i..12 + 4 * i].try_into().unwrap()))
        .collect();
    let domain: Vec<String> = subs[..n - 1].iter().map(ToString::to_string).collect();
    (
        subs[n - 1],
        format!("S-{}-{auth}-{}", sid[0], domain.join("-")),
    )
}

/// Every (principal, enctype, kvno, key) in an MIT keytab file (format 0x0502).
fn keytab_keys(path: &Path) -> Vec<(String, i32, u32, Vec<u8>)> {
    let data = std::fs::read(path).unwrap();
    assert_eq!(&data[..2], &[5, 2], "keytab version");
    let mut out = Vec::new();
    let mut pos = 2;
    let be32 = |d: &[u8], p: usize| i32::from_be_bytes(d[p..p + 4].try_into().unwrap());
    let be16 = |d: &[u8], p: usize| usize::from(u16::from_be_bytes([d[p], d[p + 1]]));
    while pos + 4 <= data.len() {
        let len = be32(&data, pos);
        pos += 4;
        if len <= 0 {
            pos += len.unsigned_abs() as usize;
            continue;
        }
        let rec = &data[pos..pos + len as usize];
        pos += len as usize;
        let mut p = 0;
        let count = be16(rec, p);
        p += 2;
        let rlen = be16(rec, p);
        let realm = String::from_utf8_lossy(&rec[p + 2..p + 2 + rlen]).into_owned();
        p += 2 + rlen;
        let mut comps = Vec::new();
        for _ in 0..count {
            let l = be16(rec, p);
            comps.push(String::from_utf8_lossy(&rec[p + 2..p + 2 + l]).into_owned());
            p += 2 + l;
        }
        p += 4 + 4; // name type, timestamp
        let mut kvno = u32::from(rec[p]);
        p += 1;
        let enctype = i32::from(u16::from_be_bytes([rec[p], rec[p + 1]]));
        let klen = be16(rec, p + 2);
        let key = rec[p + 4..p + 4 + klen].to_vec();
        p += 4 + klen;
        if p + 4 <= rec.len() {
            kvno = be32(rec, p) as u32;
        }
        out.push((format!("{}@{realm}", comps.join("/")), enctype, kvno, key));
    }
    out
}

fn key_of(keys: &[(String, i32, u32, Vec<u8>)], principal: &str, enctype: i32) -> Key {
    let (_, e, _, k) = keys
        .iter()
        .filter(|(p, e, _, _)| p == principal && *e == enctype)
        .max_by_key(|(_, _, v, _)| *v)
        .unwrap_or_else(|| panic!("no enctype {enctype} key for {principal} in the keytab"));
    Key::new(*e, k.clone()).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// MIT libkrb5's krb5_pac_parse + krb5_pac_verify through ctypes. argv: pac file, authtime,
/// client principal, server enctype, server key hex, krbtgt enctype, krbtgt key hex.
/// Prints `verified` or `refused <code>`.
const MIT_VERIFY: &str = r#"
import ctypes, sys
k5 = ctypes.CDLL("libkrb5.so.3")
class Keyblock(ctypes.Structure):
    _fields_ = [("magic", ctypes.c_int32), ("enctype", ctypes.c_int32),
                ("length", ctypes.c_uint), ("contents", ctypes.c_char_p)]
def keyblock(enctype, hexkey):
    raw = bytes.fromhex(hexkey)
    return Keyblock(0, int(enctype), len(raw), raw)
ctx = ctypes.c_void_p()
assert k5.krb5_init_context(ctypes.byref(ctx)) == 0
data = open(sys.argv[1], "rb").read()
pac = ctypes.c_void_p()
rc = k5.krb5_pac_parse(ctx, data, ctypes.c_size_t(len(data)), ctypes.byref(pac))
if rc != 0:
    print("parse failed", rc); sys.exit(0)
princ = ctypes.c_void_p()
assert k5.krb5_parse_name(ctx, sys.argv[3].encode(), ctypes.byref(princ)) == 0
server = keyblock(sys.argv[4], sys.argv[5])
kdc = keyblock(sys.argv[6], sys.argv[7])
k5.krb5_pac_verify.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                               ctypes.c_void_p, ctypes.POINTER(Keyblock), ctypes.POINTER(Keyblock)]
rc = k5.krb5_pac_verify(ctx, pac, int(sys.argv[2]), princ, ctypes.byref(server), ctypes.byref(kdc))
print("verified" if rc == 0 else "refused %d" % rc)
"#;

fn mit_verify(
    s: &TestServer,
    pac: &Path,
    authtime: i64,
    client: &str,
    server: &Key,
    krbtgt: &Key,
) -> String {
    let out = s.python(
        MIT_VERIFY,
        &[
            pac.to_str().unwrap(),
            &authtime.to_string(),
            client,
            &server.enctype().to_string(),
            &hex(server.bytes()),
            &krbtgt.enctype().to_string(),
            &hex(krbtgt.bytes()),
        ],
    );
    assert!(out.status.success(), "python ctypes: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn service_ticket_pac_decodes_and_verifies_with_samba_and_mit() {
    let ndrdump = require("ndrdump", "samba-testsuite");
    for tool in ["kinit", "kvno", "klist"] {
        require(tool, "krb5-user");
    }
    let mut s = TestServer::start_kdc();
    s.seed(SEED);
    s.seed(NESTED);

    // Keytabs for the service (creating its computer account) and for krbtgt (new keys,
    // before any TGT is issued), both made by the daemon.
    let service_kt = s.path("app.keytab");
    let krbtgt_kt = s.path("krbtgt.keytab");
    for (principal, out) in [
        ("host/app.example.com", &service_kt),
        ("krbtgt/EXAMPLE.COM", &krbtgt_kt),
    ] {
        let o = s.cli(&[
            "keytab",
            "--principal",
            principal,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "dird keytab {principal}: {}", text(&o));
    }

    // MIT kinit, then kvno into the keytab'd service (the ticket decrypts with the keytab).
    s.krb_ok(UDP, "cc.alice", &["kinit", "alice"], "alice-Passw0rd\n");
    let out = s.krb_ok(
        UDP,
        "cc.alice",
        &[
            "kvno",
            "-k",
            service_kt.to_str().unwrap(),
            "host/app.example.com",
        ],
        "",
    );
    assert!(out.contains("keytab entry valid"), "{out}");

    // The service ticket from the ccache; every signature checked by the krb5 crate.
    let cc = krb5::CCache::read(s.path("cc.alice")).unwrap();
    let creds = cc
        .credentials()
        .find(|c| c.server.components == ["host", "app.example.com"])
        .expect("service ticket in the ccache");
    let keys = keytab_keys(&service_kt);
    let service_key = key_of(
        &keys,
        "host/app.example.com@EXAMPLE.COM",
        creds.ticket_enctype,
    );
    let tgt_keys = keytab_keys(&krbtgt_kt);
    let krbtgt = key_of(&tgt_keys, "krbtgt/EXAMPLE.COM@EXAMPLE.COM", 18);
    let pac = krb5::pac::verify_ticket(&creds.ticket, &service_key, &krbtgt)
        .unwrap_or_else(|e| panic!("krb5 crate refused the service ticket's PAC: {e}"))
        .expect("the service ticket carries a PAC");
    let types: Vec<u32> = pac.buffer_types().collect();
    for t in [1, 6, 7, 10, 12, 16, 19] {
        assert!(types.contains(&t), "PAC buffer {t} missing: {types:?}");
    }
    let pac_file = s.path("alice.pac");
    std::fs::write(&pac_file, pac.as_bytes()).unwrap();

    // Samba's NDR decoder shows the names, RIDs and groups (nested included).
    let (alice_rid, domain) = sid_of(&s, ALICE_DN);
    let (devs_rid, _) = sid_of(&s, "cn=devs,ou=People,dc=example,dc=com");
    let (eng_rid, _) = sid_of(&s, "cn=eng,ou=People,dc=example,dc=com");
    let out = Command::new(&ndrdump)
        .args(["krb5pac", "PAC_DATA", "struct"])
        .arg(&pac_file)
        .output()
        .unwrap();
    let dump = text(&out);
    assert!(
        out.status.success() && dump.contains("pull returned Success"),
        "{dump}"
    );
    let has = |needle: &str| assert!(dump.contains(needle), "ndrdump lacks {needle:?}:\n{dump}");
    has("string                   : 'alice'");
    has("string                   : 'EXAMPLE'");
    has(&format!(
        "rid                      : 0x{alice_rid:08x} ({alice_rid})"
    ));
    has("primary_gid              : 0x00000201 (513)");
    for rid in [513, devs_rid, eng_rid] {
        has(&format!("rid                      : 0x{rid:08x} ({rid})"));
    }
    has(&format!("domain_sid               : {domain}\n"));
    has("account_name             : 'alice'");
    has("upn_name                 : 'alice@example.com'");
    has("dns_domain_name          : 'EXAMPLE.COM'");
    has("samaccountname           : 'alice'");
    has(&format!("objectsid                : {domain}-{alice_rid}"));
    has("PAC_TYPE_TICKET_CHECKSUM");
    has("PAC_TYPE_FULL_CHECKSUM");

    // MIT libkrb5 verifies the server and KDC checksums, and refuses a changed PAC or a
    // wrong krbtgt key (so the verification is real).
    let client = "alice@EXAMPLE.COM";
    let verdict = mit_verify(&s, &pac_file, creds.authtime, client, &service_key, &krbtgt);
    assert_eq!(verdict, "verified");
    let wrong = Key::new(18, vec![7; 32]).unwrap();
    let verdict = mit_verify(&s, &pac_file, creds.authtime, client, &service_key, &wrong);
    assert!(verdict.starts_with("refused"), "{verdict}");
    let mut tampered = pac.as_bytes().to_vec();
    let logon = pac.buffer(1).unwrap();
    let at = tampered
        .windows(logon.len())
        .position(|w| w == logon)
        .unwrap();
    tampered[at + 0x60] ^= 1; // inside KERB_VALIDATION_INFO
    let tampered_file = s.path("tampered.pac");
    std::fs::write(&tampered_file, &tampered).unwrap();
    let verdict = mit_verify(
        &s,
        &tampered_file,
        creds.authtime,
        client,
        &service_key,
        &krbtgt,
    );
    assert!(verdict.starts_with("refused"), "{verdict}");

    // The TGT carries a PAC too (server and KDC signatures with the krbtgt key), and MIT
    // clients keep working with PACs present: renewal and a second service ticket.
    let tgt = cc
        .credentials()
        .find(|c| c.server.components == ["krbtgt", "EXAMPLE.COM"])
        .expect("TGT in the ccache");
    let tgt_pac = krb5::pac::verify_ticket(&tgt.ticket, &krbtgt, &krbtgt)
        .unwrap()
        .expect("the TGT carries a PAC");
    let tgt_types: Vec<u32> = tgt_pac.buffer_types().collect();
    assert!(
        tgt_types.contains(&1) && !tgt_types.contains(&16),
        "{tgt_types:?}"
    );
    s.krb_ok(
        UDP,
        "cc.bob",
        &["kinit", "-r", "1d", "bob"],
        "bob-Passw0rd\n",
    );
    s.krb_ok(UDP, "cc.bob", &["kinit", "-R"], "");
    let out = s.krb_ok(
        UDP,
        "cc.bob",
        &[
            "kvno",
            "-k",
            service_kt.to_str().unwrap(),
            "host/app.example.com",
        ],
        "",
    );
    assert!(out.contains("keytab entry valid"), "{out}");
    s.stop();
}
