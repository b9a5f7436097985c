//! Issue 10: dird as a domain controller that stock Debian tools find and use. dird listens
//! on the standard ports of 127.0.0.1 (53, 88, 389 TCP+UDP, 464, 636), so the tests here run
//! one at a time (a static mutex) and hold the flock `/tmp/dird-std-ports.lock` against other
//! test binaries that use those ports (Samba in the connector tests).
//! The client tools run in a private mount namespace (`unshare -m`) whose /etc/resolv.conf
//! names dird's DNS and whose /etc/hosts is the test's own: the host's resolver is never
//! touched. Tools: adcli, samba-common-bin (`net`), ldap-utils, krb5-user, python3.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::File;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

use common::{text, TestServer, ADMIN_DN, ADMIN_PW, ALICE_DN, ALICE_PW, BASE, BOB_DN, BOB_PW};

static SERIAL: Mutex<()> = Mutex::new(());

const LOCK: &str = "/tmp/dird-std-ports.lock";
const DC: &str = "dc1.example.com";

/// The standard ports, held for the life of one test.
struct Ports {
    _file: File,
    _serial: MutexGuard<'static, ()>,
}

fn ports() -> Ports {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK)
        .expect("open the standard-ports lock file");
    file.lock().expect("flock /tmp/dird-std-ports.lock");
    Ports {
        _file: file,
        _serial: serial,
    }
}

fn need(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: apt-get install -y {package} (scripts/test-all.sh does)"
    );
}

/// A DC on the standard ports with DNS on 53; the private resolver files, krb5.conf and
/// smb.conf are written into its temp directory.
fn start_dc() -> TestServer {
    let mut s = TestServer::configured("");
    let data = s.data_dir();
    let cfg = format!(
        r#"mode = "standalone"
data_dir = "{data}"
[domain]
name = "example.com"
dc_hostname = "{DC}"
[ldap]
listen = ["127.0.0.1:389"]
ldaps_listen = ["127.0.0.1:636"]
[kdc]
listen = ["127.0.0.1:88"]
kpasswd_listen = ["127.0.0.1:464"]
[dns]
listen = ["127.0.0.1:53"]
"#,
        data = data.display()
    );
    std::fs::write(s.config_path(), cfg).unwrap();
    s.launch();
    std::fs::write(s.path("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    // No entry for the DC: its address comes from dird's DNS.
    std::fs::write(s.path("hosts"), "127.0.0.1 localhost\n").unwrap();
    std::fs::write(
        s.path("krb5.conf"),
        "[libdefaults]\n  default_realm = EXAMPLE.COM\n  dns_lookup_kdc = true\n  \
         dns_lookup_realm = false\n  dns_canonicalize_hostname = false\n  rdns = false\n",
    )
    .unwrap();
    let samba = s.path("samba");
    std::fs::create_dir_all(&samba).unwrap();
    let d = samba.display();
    std::fs::write(
        s.path("smb.conf"),
        format!(
            "[global]\nworkgroup = EXAMPLE\nrealm = EXAMPLE.COM\nsecurity = ads\n\
             disable netbios = yes\nlock directory = {d}\nstate directory = {d}\n\
             cache directory = {d}\nprivate dir = {d}\npid directory = {d}\n\
             ncalrpc dir = {d}\nlog file = {d}/log\n"
        ),
    )
    .unwrap();
    s
}

/// Runs `script` with sh in a private mount namespace whose /etc/resolv.conf and /etc/hosts
/// are the test's (KRB5_CONFIG and LDAPTLS_CACERT point at the test's files too).
fn in_namespace(s: &TestServer, script: &str) -> Output {
    let setup = format!(
        "mount --bind {resolv} /etc/resolv.conf && mount --bind {hosts} /etc/hosts && {script}",
        resolv = s.path("resolv.conf").display(),
        hosts = s.path("hosts").display(),
    );
    Command::new("unshare")
        .args(["-m", "sh", "-c", &setup])
        .env("KRB5_CONFIG", s.path("krb5.conf"))
        .env("KRB5CCNAME", format!("FILE:{}", s.path("cc").display()))
        .env("LDAPTLS_CACERT", s.ca())
        .env("LDAPCONF", "/dev/null")
        .output()
        .expect("run unshare")
}

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed: {}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn adcli_and_net_ads_find_dird_as_a_domain_controller() {
    need("adcli", "adcli");
    need("net", "samba-common-bin");
    let _ports = ports();
    let s = start_dc();

    // adcli: SRV lookup through dird's DNS, then the CLDAP NetLogon ping.
    let out = ok(&in_namespace(&s, "adcli info example.com"), "adcli info");
    for want in [
        "domain-name = example.com",
        "domain-short = EXAMPLE",
        "domain-controller = dc1.example.com",
        "domain-controller-site = Default-First-Site-Name",
        "domain-controller-usable = yes",
    ] {
        assert!(out.contains(want), "adcli info lacks {want:?}:\n{out}");
    }
    let flags = out
        .lines()
        .find(|l| l.starts_with("domain-controller-flags"))
        .unwrap_or_default();
    for flag in ["ldap", "ds", "kdc", "writable"] {
        assert!(
            flags.split_whitespace().any(|f| f == flag),
            "{flag} missing: {flags}"
        );
    }

    // Samba's net: CLDAP NetLogon (NETLOGON_SAM_LOGON_RESPONSE_EX), then the rootDSE.
    let conf = s.path("smb.conf");
    let c = conf.display();
    let out = ok(
        &in_namespace(&s, &format!("net ads lookup -s {c}")),
        "net ads lookup",
    );
    for want in [
        "Response Type: LOGON_SAM_LOGON_RESPONSE_EX",
        "Domain Controller: dc1.example.com",
        "Pre-Win2k Domain: EXAMPLE",
        "Pre-Win2k Hostname: DC1",
        "Server Site Name: Default-First-Site-Name",
    ] {
        assert!(out.contains(want), "net ads lookup lacks {want:?}:\n{out}");
    }
    let out = ok(
        &in_namespace(&s, &format!("net ads info -s {c}")),
        "net ads info",
    );
    for want in [
        "LDAP server name: dc1.example.com",
        "Realm: EXAMPLE.COM",
        "KDC server: 127.0.0.1",
    ] {
        assert!(out.contains(want), "net ads info lacks {want:?}:\n{out}");
    }
}

/// DNS answers that no client above checks: updates and foreign names are REFUSED, an
/// unknown name in the zone is NXDOMAIN, PTR names the DC; TCP works like UDP.
#[test]
fn dns_refuses_updates_and_foreign_names() {
    let _ports = ports();
    let _dc = start_dc();
    let script = r#"
import socket, struct, sys
def name(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"
def ask(n, qtype, opcode=0, tcp=False):
    msg = struct.pack(">HHHHHH", 0x4242, opcode << 11 | 0x100, 1, 0, 0, 0) + name(n) + struct.pack(">HH", qtype, 1)
    if tcp:
        c = socket.create_connection(("127.0.0.1", 53), timeout=5)
        c.sendall(struct.pack(">H", len(msg)) + msg)
        ln = struct.unpack(">H", c.recv(2))[0]
        r = b""
        while len(r) < ln:
            r += c.recv(ln - len(r))
    else:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
        u.sendto(msg, ("127.0.0.1", 53)); r = u.recv(4096)
    assert struct.unpack(">H", r[:2])[0] == 0x4242
    return r[3] & 0xf, struct.unpack(">H", r[6:8])[0], r
print("srv", ask("_ldap._tcp.dc._msdcs.example.com", 33)[:2])
print("srv-tcp", ask("_kerberos._tcp.example.com", 33, tcp=True)[:2])
print("a", ask("dc1.example.com", 1)[:2])
rc, n, r = ask("1.0.0.127.in-addr.arpa", 12)
print("ptr", rc, n, b"\x03dc1\x07example\x03com" in r[40:])
print("update", ask("example.com", 6, opcode=5)[:2])
print("foreign", ask("www.example.org", 1)[:2])
print("nx", ask("nobody.example.com", 1)[:2])
"#;
    let out = std::process::Command::new(common::python3())
        .args(["-c", script])
        .output()
        .expect("python3");
    let out = ok(&out, "python3 DNS client");
    for want in [
        "srv (0, 1)",
        "srv-tcp (0, 1)",
        "a (0, 1)",
        "ptr 0 1 True",
        "update (5, 0)",
        "foreign (5, 0)",
        "nx (3, 0)",
    ] {
        assert!(out.contains(want), "{want:?} missing:\n{out}");
    }
}

/// Item 1: the DC's computer account (keys for ldap/ and host/), the certificate for
/// dc_hostname, the AD rootDSE, the crossRef and wellKnownObjects, and the account's
/// re-creation at start for a data directory without it.
#[test]
fn the_dc_has_an_account_keys_and_a_certificate_for_its_name() {
    let _ports = ports();
    let mut s = start_dc();
    let dc_dn = format!("cn=DC1,ou=Domain Controllers,{BASE}");
    let check_account = |s: &TestServer| {
        let out = s.search_admin(
            &dc_dn,
            "(objectClass=computer)",
            &[
                "sAMAccountName",
                "dNSHostName",
                "userAccountControl",
                "servicePrincipalName",
            ],
        );
        for want in [
            "sAMAccountName: DC1$",
            "dNSHostName: dc1.example.com",
            "userAccountControl: 532480",
            "servicePrincipalName: ldap/dc1.example.com",
            "servicePrincipalName: HOST/dc1.example.com",
            "servicePrincipalName: GC/dc1.example.com/example.com",
        ] {
            assert!(out.contains(want), "{want:?} missing:\n{out}");
        }
    };
    check_account(&s);

    // kinit through the KDC found by DNS SRV, then tickets for the DC's services.
    let kinit = format!("echo '{ADMIN_PW}' | kinit Administrator@EXAMPLE.COM");
    let out = in_namespace(
        &s,
        &format!("{kinit} && kvno ldap/dc1.example.com host/dc1.example.com"),
    );
    let out = ok(&out, "kinit + kvno");
    assert!(
        out.contains("ldap/dc1.example.com@EXAMPLE.COM: kvno = 1"),
        "{out}"
    );

    // LDAPS to the DC's name (resolved by dird's DNS) verifies against the generated CA.
    let out = in_namespace(
        &s,
        &format!("ldapsearch -LLL -o ldif_wrap=no -x -H ldaps://{DC} -D '{ADMIN_DN}' -w '{ADMIN_PW}' -b '' -s base dnsHostName supportedCapabilities serverName"),
    );
    let out = ok(&out, "ldapsearch over LDAPS to dc1.example.com");
    for want in [
        "dnsHostName: dc1.example.com",
        "supportedCapabilities: 1.2.840.113556.1.4.800",
        "supportedCapabilities: 1.2.840.113556.1.4.1670",
        "supportedCapabilities: 1.2.840.113556.1.4.1935",
        "serverName: CN=DC1,CN=Servers,CN=Default-First-Site-Name,CN=Sites,CN=Configuration,",
    ] {
        assert!(out.contains(want), "{want:?} missing:\n{out}");
    }

    // The crossRef adcli and net read, and the well-known containers.
    let out = s.search_admin(
        &format!("CN=Partitions,CN=Configuration,{BASE}"),
        "(&(objectClass=crossRef)(nCName=dc=example,dc=com))",
        &["nETBIOSName", "dnsRoot"],
    );
    assert!(
        out.contains("nETBIOSName: EXAMPLE") && out.contains("dnsRoot: example.com"),
        "{out}"
    );
    let out = s.search_admin(BASE, "(objectClass=domainDNS)", &["wellKnownObjects"]);
    assert!(
        out.to_ascii_lowercase().contains(
            "wellknownobjects: b:32:aa312825768811d1aded00c04fd8d5cd:cn=computers,dc=example,dc=com"
        ),
        "{out}"
    );

    // A data directory without the DC account (as before this version) gets it at start.
    let del = s.tool(
        "ldapdelete",
        &[
            "-x",
            "-H",
            &s.ldap_url(),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
            &dc_dn,
        ],
    );
    assert!(del.status.success(), "{}", text(&del));
    s.stop();
    s.launch();
    check_account(&s);
}

/// Item 3: SASL GSSAPI (RFC 4752) and GSS-SPNEGO binds with a service ticket for
/// ldap/dc1.example.com: without a layer (maxssf=0), with integrity and with sealing, and
/// over LDAPS; the bound identity is the ticket's client; a disabled account is refused.
#[test]
fn sasl_gssapi_and_gss_spnego_bind_as_the_ticket_client() {
    need("ldapwhoami", "ldap-utils");
    let sasl_gssapi = std::path::Path::new("/usr/lib/x86_64-linux-gnu/sasl2/libgssapiv2.so");
    assert!(
        sasl_gssapi.exists() || std::path::Path::new("/usr/lib/sasl2/libgssapiv2.so").exists(),
        "the Cyrus GSSAPI plugin is missing: apt-get install -y libsasl2-modules-gssapi-mit"
    );
    let _ports = ports();
    let s = start_dc();
    s.seed(common::SEED);
    let kinit = |user: &str, pw: &str| format!("echo '{pw}' | kinit {user}@EXAMPLE.COM >/dev/null");
    let whoami = |args: &str| format!("ldapwhoami -N -H ldap://{DC} {args}");
    for (mech, ssf) in [
        ("GSSAPI", "-O maxssf=0"),
        ("GSSAPI", "-O minssf=1,maxssf=1"),
        ("GSSAPI", "-O minssf=56"),
        ("GSS-SPNEGO", "-O maxssf=0"),
        ("GSS-SPNEGO", "-O minssf=56"),
    ] {
        let script = format!(
            "{} && {}",
            kinit("alice", ALICE_PW),
            whoami(&format!("-Y {mech} {ssf}"))
        );
        let out = ok(
            &in_namespace(&s, &script),
            &format!("ldapwhoami -Y {mech} {ssf}"),
        );
        assert_eq!(out.trim(), format!("dn:{ALICE_DN}"), "{mech} {ssf}");
    }
    // A search through the sealed layer returns entries (the wrapped framing both ways).
    let script = format!(
        "{} && ldapsearch -N -LLL -o ldif_wrap=no -Y GSSAPI -O minssf=56 -H ldap://{DC} -b '{BASE}' '(uid=bob)' uid",
        kinit("alice", ALICE_PW)
    );
    let out = ok(&in_namespace(&s, &script), "ldapsearch -Y GSSAPI sealed");
    assert!(out.contains("uid: bob"), "{out}");
    // Over LDAPS only "no layer" is offered, and the bind still works.
    let script = format!(
        "{} && ldapwhoami -N -H ldaps://{DC} -Y GSSAPI",
        kinit("alice", ALICE_PW)
    );
    let out = ok(
        &in_namespace(&s, &script),
        "ldapwhoami -Y GSSAPI over LDAPS",
    );
    assert_eq!(out.trim(), format!("dn:{ALICE_DN}"));

    // Policy applies: bob's ticket stays valid, but his disabled account is refused.
    let script = format!("{} && kvno ldap/{DC} >/dev/null", kinit("bob", BOB_PW));
    ok(&in_namespace(&s, &script), "kinit bob + kvno");
    let out = s.modify_as_admin(
        &s.ldap_url(),
        &format!("dn: {BOB_DN}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n"),
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = in_namespace(&s, &whoami("-Y GSSAPI -O maxssf=0"));
    assert!(
        !out.status.success(),
        "a disabled account bound: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("Invalid credentials (49)"),
        "{}",
        text(&out)
    );
}

// ---- Items 4 and 5: computer accounts made by `adcli join`, machine password rotation and
// kpasswd set-password (helpers below are this section's own).

const CLIENT: &str = "client1.example.com";

/// Runs an adcli subcommand in the private namespace with verbose output; `stdin` (the
/// administrator's password) is piped in when given.
fn adcli(s: &TestServer, args: &str, stdin: Option<&str>) -> Output {
    // A private UTS namespace too: `adcli testjoin` takes the machine's name from its host
    // name (it has no --host-fqdn).
    let script = match stdin {
        Some(pw) => format!("echo '{pw}' | adcli {args} --stdin-password -v"),
        None => format!("adcli {args} -v"),
    };
    let script = format!("unshare -u sh -c \"hostname {CLIENT} && {script}\"");
    in_namespace(s, &script)
}

/// `adcli join` as Administrator into the test's keytab `client1.keytab`.
fn join_client(s: &TestServer) -> String {
    let keytab = s.path("client1.keytab");
    let out = adcli(
        s,
        &format!(
            "join --domain example.com --domain-controller {DC} --host-fqdn {CLIENT} \
             --computer-name CLIENT1 --host-keytab {} -U Administrator",
            keytab.display()
        ),
        Some(ADMIN_PW),
    );
    ok(&out, "adcli join")
}

/// The keytab's entries as `klist -k` lists them (kvno and principal per line).
fn keytab_list(s: &TestServer) -> String {
    let out = in_namespace(
        s,
        &format!("klist -k {}", s.path("client1.keytab").display()),
    );
    ok(&out, "klist -k")
}

/// The kvno of `CLIENT1$@EXAMPLE.COM` in the keytab (the highest listed).
fn keytab_kvno(s: &TestServer) -> u32 {
    let list = keytab_list(s);
    list.lines()
        .filter(|l| l.contains("CLIENT1$@EXAMPLE.COM"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .max()
        .unwrap_or_else(|| panic!("no CLIENT1$ entry in the keytab:\n{list}"))
}

/// `msDS-KeyVersionNumber` of the computer account as the directory reports it.
fn account_kvno(s: &TestServer) -> u32 {
    let out = s.search_admin(
        BASE,
        "(sAMAccountName=CLIENT1$)",
        &["msDS-KeyVersionNumber"],
    );
    out.lines()
        .find_map(|l| l.strip_prefix("msDS-KeyVersionNumber: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no msDS-KeyVersionNumber:\n{out}"))
}

/// `kinit -k` as the machine with the test's keytab.
fn kinit_machine(s: &TestServer) -> Output {
    let kt = s.path("client1.keytab");
    in_namespace(
        s,
        &format!(
            "kinit -k -t {} 'CLIENT1$@EXAMPLE.COM' && klist",
            kt.display()
        ),
    )
}

/// Items 4 and 5 through adcli: the join (LDAP add of the computer by Administrator, then
/// its password set over kpasswd with `targname`), the account AD's way (implied cn,
/// objectClass chain, primaryGroupID 515, objectSid, SPNs, operatingSystem), `kinit -k`,
/// `adcli testjoin`, the machine's own password change (`adcli update`, kvno + 1) and an
/// administrator's reset (`adcli reset-computer`) whose keys carry AD's computer salt.
#[test]
fn adcli_join_testjoin_and_update_with_the_machine_keytab() {
    need("adcli", "adcli");
    need("ktutil", "krb5-user");
    let _ports = ports();
    let s = start_dc();
    join_client(&s);

    let dn = format!("CN=CLIENT1,cn=Computers,{BASE}");
    let out = s.search_admin(
        &dn,
        "(objectClass=*)",
        &[
            "cn",
            "objectClass",
            "sAMAccountName",
            "userAccountControl",
            "primaryGroupID",
            "objectSid",
            "dNSHostName",
            "servicePrincipalName",
            "operatingSystem",
            "msDS-supportedEncryptionTypes",
        ],
    );
    for want in [
        "cn: CLIENT1",
        "objectClass: top",
        "objectClass: person",
        "objectClass: organizationalPerson",
        "objectClass: user",
        "objectClass: computer",
        "sAMAccountName: CLIENT1$",
        "userAccountControl: 69632",
        "primaryGroupID: 515",
        "objectSid:: ",
        "dNSHostName: client1.example.com",
        "servicePrincipalName: host/client1.example.com",
        "servicePrincipalName: host/client1",
        "servicePrincipalName: restrictedkrbhost/client1.example.com",
        "operatingSystem: ",
        "msDS-supportedEncryptionTypes: ",
    ] {
        let lower = out.to_ascii_lowercase();
        assert!(
            out.contains(want)
                || (want.starts_with("servicePrincipalName")
                    && lower.contains(&want.to_ascii_lowercase())),
            "{want:?} missing:\n{out}"
        );
    }

    // The keytab adcli wrote holds the account's current keys.
    let kvno = keytab_kvno(&s);
    assert_eq!(kvno, account_kvno(&s));
    let out = ok(&kinit_machine(&s), "kinit -k CLIENT1$");
    assert!(out.contains("CLIENT1$@EXAMPLE.COM"), "{out}");
    let kt = s.path("client1.keytab");
    let kt = kt.display();
    let id = format!("--domain example.com --domain-controller {DC} --host-fqdn {CLIENT} --computer-name CLIENT1 --host-keytab {kt}");
    let test = format!("testjoin --domain example.com --domain-controller {DC} --host-keytab {kt}");
    ok(&adcli(&s, &test, None), "adcli testjoin");

    // The machine changes its own password (kpasswd with a changepw ticket from its keytab).
    ok(
        &adcli(
            &s,
            &format!(
                "update {id} --computer-password-lifetime=0 \
                 --add-service-principal=nfs/{CLIENT} --os-service-pack=bookworm"
            ),
            None,
        ),
        "adcli update",
    );
    assert_eq!(keytab_kvno(&s), kvno + 1, "{}", keytab_list(&s));
    assert_eq!(account_kvno(&s), kvno + 1);
    ok(&kinit_machine(&s), "kinit -k after adcli update");
    // The machine wrote its own SPN and OS attributes (AD's SELF rights)...
    let out = s.search_admin(
        &dn,
        "(objectClass=computer)",
        &["servicePrincipalName", "operatingSystemServicePack"],
    );
    for want in [
        "servicePrincipalName: nfs/client1.example.com",
        "operatingSystemServicePack: bookworm",
    ] {
        assert!(out.contains(want), "{want:?} missing:\n{out}");
    }
    // ... but not an SPN for another host, nor another attribute (GSSAPI bind as CLIENT1$).
    for (attr, value) in [
        ("servicePrincipalName", "host/dc1.example.com"),
        ("dNSHostName", "dc1.example.com"),
        ("description", "mine"),
    ] {
        let script = format!(
            "kinit -k -t {kt} 'CLIENT1$@EXAMPLE.COM' && printf 'dn: {dn}\\nchangetype: modify\\nadd: {attr}\\n{attr}: {value}\\n' | ldapmodify -N -Y GSSAPI -H ldap://{DC}"
        );
        let out = in_namespace(&s, &script);
        assert!(
            !out.status.success() && text(&out).contains("Insufficient access (50)"),
            "CLIENT1$ wrote {attr}: {value}: {}",
            text(&out)
        );
    }
    // An administrator writes msDS-AdditionalDnsHostName (in the schema for Samba's joins).
    let out = s.modify_as_admin(
        &s.ldap_url(),
        &format!("dn: {dn}\nchangetype: modify\nadd: msDS-AdditionalDnsHostName\nmsDS-AdditionalDnsHostName: client1-alias.example.com\n"),
    );
    assert!(out.status.success(), "{}", text(&out));
    ok(&adcli(&s, &test, None), "adcli testjoin after update");

    // An administrator resets the account (kpasswd set-password of CLIENT1$ by
    // Administrator): the password becomes the lower-case name, the old keytab stops working,
    // and a key made from the new password with AD's computer salt works.
    ok(
        &adcli(
            &s,
            &format!("reset-computer --domain example.com --domain-controller {DC} -U Administrator CLIENT1"),
            Some(ADMIN_PW),
        ),
        "adcli reset-computer",
    );
    let reset = account_kvno(&s);
    assert_eq!(reset, kvno + 2);
    let out = kinit_machine(&s);
    assert!(
        !out.status.success(),
        "the old keys still work: {}",
        text(&out)
    );
    let salted = s.path("salted.keytab");
    let salted = salted.display();
    let script = format!(
        "printf 'addent -password -p CLIENT1$@EXAMPLE.COM -k {reset} -e aes256-cts-hmac-sha1-96 -s EXAMPLE.COMhostclient1.example.com\\nclient1\\nwkt {salted}\\nq\\n' | ktutil >/dev/null && kinit -k -t {salted} 'CLIENT1$@EXAMPLE.COM'"
    );
    ok(
        &in_namespace(&s, &script),
        "kinit -k with the computer-salted key",
    );

    // A second join (a reinstalled host) finds the existing account and takes it over.
    join_client(&s);
    assert_eq!(keytab_kvno(&s), account_kvno(&s));
    assert_eq!(account_kvno(&s), reset + 1);
    ok(&kinit_machine(&s), "kinit -k after joining again");
}

/// `adcli join` of `name` (upper case) as `user`, keytab `<name>.keytab`; `extra` adds options.
fn join_as(s: &TestServer, name: &str, user: &str, pw: &str, extra: &str) -> Output {
    let lower = name.to_ascii_lowercase();
    let keytab = s.path(&format!("{lower}.keytab"));
    adcli(
        s,
        &format!(
            "join --domain example.com --domain-controller {DC} --host-fqdn {lower}.example.com \
             --computer-name {name} --host-keytab {} -U {user} {extra}",
            keytab.display()
        ),
        Some(pw),
    )
}

/// `adcli reset-computer NAME` as `user` (kpasswd set-password of NAME$ by `user`).
fn reset_as(s: &TestServer, name: &str, user: &str, pw: &str) -> Output {
    adcli(
        s,
        &format!("reset-computer --domain example.com --domain-controller {DC} -U {user} {name}"),
        Some(pw),
    )
}

/// The value of `attr` on the computer `NAME$`, if the account exists.
fn computer_attr(s: &TestServer, name: &str, attr: &str) -> Option<String> {
    let out = s.search_admin(BASE, &format!("(sAMAccountName={name}$)"), &[attr]);
    let prefix = format!("{attr}: ");
    out.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::to_owned)
}

/// Items 4 and 5, who may: a user who is neither a Domain Admin nor in `[domain]
/// join_group` can neither add a computer nor set a computer's password over kpasswd; a
/// member of the join group joins a computer into `join_container`, resets the one it
/// created, and nothing else (another's computer, another container).
#[test]
fn only_admins_and_the_join_group_create_computers_and_set_their_passwords() {
    need("adcli", "adcli");
    let _ports = ports();
    let mut s = start_dc();
    // The same DC with a join group: ops (bob is a member, alice is not).
    let cfg = std::fs::read_to_string(s.config_path()).unwrap();
    let cfg = cfg.replace(
        &format!("dc_hostname = \"{DC}\"\n"),
        &format!(
            "dc_hostname = \"{DC}\"\njoin_group = \"cn=ops,ou=People,{BASE}\"\n\
             join_container = \"cn=Computers,{BASE}\"\n"
        ),
    );
    assert!(cfg.contains("join_group"), "{cfg}");
    std::fs::write(s.config_path(), cfg).unwrap();
    s.stop();
    s.launch();
    s.seed(common::SEED);
    join_client(&s);
    let kvno1 = account_kvno(&s);

    // alice: no computer account, and no password set on CLIENT1$ (kpasswd ACCESSDENIED).
    let out = join_as(&s, "CLIENT2", "alice", ALICE_PW, "");
    assert!(!out.status.success(), "alice joined: {}", text(&out));
    assert!(
        text(&out).contains("insufficient access rights"),
        "not an access refusal: {}",
        text(&out)
    );
    assert_eq!(computer_attr(&s, "CLIENT2", "sAMAccountName"), None);
    let out = reset_as(&s, "CLIENT1", "alice", ALICE_PW);
    assert!(
        !out.status.success(),
        "alice reset CLIENT1$: {}",
        text(&out)
    );
    assert!(text(&out).contains("Access denied"), "{}", text(&out));
    assert_eq!(account_kvno(&s), kvno1, "CLIENT1$'s password changed");

    // bob (in ops): joins CLIENT2, which he then owns; its keytab works.
    let out = join_as(&s, "CLIENT2", "bob", BOB_PW, "");
    ok(&out, "adcli join as a join-group member");
    assert_eq!(
        computer_attr(&s, "CLIENT2", "creatorsName").map(|d| d.to_ascii_lowercase()),
        Some(BOB_DN.to_ascii_lowercase())
    );
    let kt = s.path("client2.keytab");
    let out = in_namespace(
        &s,
        &format!("kinit -k -t {} 'CLIENT2$@EXAMPLE.COM'", kt.display()),
    );
    ok(&out, "kinit -k CLIENT2$");
    let kvno2: u32 = computer_attr(&s, "CLIENT2", "msDS-KeyVersionNumber")
        .and_then(|v| v.parse().ok())
        .expect("CLIENT2$ kvno");
    ok(
        &reset_as(&s, "CLIENT2", "bob", BOB_PW),
        "bob resets his computer",
    );
    assert_eq!(
        computer_attr(&s, "CLIENT2", "msDS-KeyVersionNumber"),
        Some((kvno2 + 1).to_string())
    );
    // ... but not the administrator's computer, nor one outside the join container.
    let out = reset_as(&s, "CLIENT1", "bob", BOB_PW);
    assert!(!out.status.success(), "bob reset CLIENT1$: {}", text(&out));
    assert!(text(&out).contains("Access denied"), "{}", text(&out));
    assert_eq!(account_kvno(&s), kvno1, "CLIENT1$'s password changed");
    let out = join_as(
        &s,
        "CLIENT3",
        "bob",
        BOB_PW,
        &format!("--domain-ou=ou=People,{BASE}"),
    );
    assert!(
        !out.status.success(),
        "bob joined into ou=People: {}",
        text(&out)
    );
    assert!(text(&out).contains("insufficient access"), "{}", text(&out));
    assert_eq!(computer_attr(&s, "CLIENT3", "sAMAccountName"), None);
}

// ---------------------------------------------------------------------------------------
// Items 7 and 8: the global catalog and sssd with `id_provider = ad`.

/// Item 7: the global catalog on 3268 (and 3269 with TLS), by default beside LDAP on 389:
/// base "" covers the domain, writes are refused, SASL binds work, and DNS publishes
/// `_gc._tcp`.
#[test]
fn global_catalog_is_a_read_only_view_of_the_domain() {
    let _ports = ports();
    let s = start_dc();
    s.seed(common::SEED);
    let admin = format!("-x -D '{ADMIN_DN}' -w '{ADMIN_PW}'");
    // Base "" with scope sub: the whole domain NC (AD's GC search), over plain and TLS.
    for url in [format!("ldap://{DC}:3268"), format!("ldaps://{DC}:3269")] {
        let out = in_namespace(
            &s,
            &format!("ldapsearch -LLL -o ldif_wrap=no {admin} -H {url} -b '' -s sub '(sAMAccountName=alice)' objectSid sAMAccountName"),
        );
        let out = ok(&out, &format!("GC search on {url}"));
        assert!(out.contains(&format!("dn: {ALICE_DN}")), "{url}: {out}");
        assert!(out.contains("objectSid:: "), "{url}: {out}");
    }
    // One level below "" is the domain root; base "" is still the rootDSE.
    let out = in_namespace(
        &s,
        &format!("ldapsearch -LLL -o ldif_wrap=no {admin} -H ldap://{DC}:3268 -b '' -s one '(objectClass=*)' 1.1"),
    );
    assert_eq!(
        ok(&out, "GC one-level search").trim(),
        format!("dn: {BASE}")
    );
    let out = in_namespace(
        &s,
        &format!("ldapsearch -LLL -o ldif_wrap=no -x -H ldap://{DC}:3268 -b '' -s base defaultNamingContext isGlobalCatalogReady"),
    );
    let out = ok(&out, "GC rootDSE");
    assert!(
        out.contains(&format!("defaultNamingContext: {BASE}"))
            && out.contains("isGlobalCatalogReady: TRUE"),
        "{out}"
    );
    // Writes are refused (unwillingToPerform), and nothing changed.
    let out = in_namespace(
        &s,
        &format!(
            "printf 'dn: {ALICE_DN}\\nchangetype: modify\\nreplace: description\\ndescription: via gc\\n' | ldapmodify {admin} -H ldap://{DC}:3268"
        ),
    );
    assert!(
        !out.status.success(),
        "a GC write succeeded: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("Server is unwilling to perform (53)"),
        "{}",
        text(&out)
    );
    let out = s.search_admin(ALICE_DN, "(objectClass=*)", &["description"]);
    assert!(!out.contains("via gc"), "{out}");
    // SASL GSS-SPNEGO on the GC port, as sssd binds.
    let script = format!(
        "echo '{ALICE_PW}' | kinit alice@EXAMPLE.COM >/dev/null && ldapwhoami -N -H ldap://{DC}:3268 -Y GSS-SPNEGO"
    );
    let out = ok(
        &in_namespace(&s, &script),
        "ldapwhoami -Y GSS-SPNEGO on 3268",
    );
    assert_eq!(out.trim(), format!("dn:{ALICE_DN}"));
    // The SRV record clients find the GC by (sssd's AD_GC service).
    let out = Command::new(common::python3())
        .args(["-c", &SRV_QUERY.replace("{name}", "_gc._tcp.example.com")])
        .output()
        .expect("python3");
    let out = ok(&out, "DNS SRV _gc._tcp");
    assert!(out.contains("srv 0 3268 dc1.example.com"), "{out}");
}

/// A python3 DNS client: prints `srv PRIORITY PORT TARGET` for the SRV records of {name}.
const SRV_QUERY: &str = r#"
import socket, struct
def name(n):
    return b''.join(bytes([len(l)]) + l.encode() for l in n.split('.')) + b'\0'
def read_name(r, i):
    out = []
    while True:
        n = r[i]
        if n & 0xc0 == 0xc0:
            rest, _ = read_name(r, ((n & 0x3f) << 8) | r[i + 1])
            return '.'.join(out + [rest]) if rest else '.'.join(out), i + 2
        i += 1
        if n == 0:
            return '.'.join(out), i
        out.append(r[i:i + n].decode()); i += n
q = struct.pack('>HHHHHH', 7, 0x100, 1, 0, 0, 0) + name('{name}') + struct.pack('>HH', 33, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
u.sendto(q, ('127.0.0.1', 53)); r = u.recv(4096)
an = struct.unpack('>H', r[6:8])[0]
i = 12 + len(name('{name}')) + 4
for _ in range(an):
    _, i = read_name(r, i)
    t, c, ttl, ln = struct.unpack('>HHIH', r[i:i + 10]); i += 10
    if t == 33:
        prio, w, port = struct.unpack('>HHH', r[i:i + 6])
        print('srv', prio, port, read_name(r, i + 6)[0])
    i += ln
"#;

/// PAM service of the sssd AD test (auth/account/password through pam_sss).
const AD_PAM_SERVICE: &str = "dird-sssd-ad-test";

/// An sssd (`id_provider = ad`) in its own mount namespace: /var/lib/sss and /var/log/sssd
/// are directories of the test and /run (sssd.pid) a tmpfs, so an sssd of another test
/// binary neither disturbs nor is disturbed by this one; resolv.conf,
/// hosts and krb5.conf are the test's. Clients run in the same namespace (`nsenter`).
/// Stopped by PID on drop (TERM to the monitor, then its remaining children).
struct AdSssd {
    child: Option<std::process::Child>,
    state: std::path::PathBuf,
    _lock: File,
}

impl AdSssd {
    fn start(s: &TestServer, conf: &str) -> AdSssd {
        // tests/mfa.rs serialises its sssd runs on this lock; tests/sssd.rs waits for any
        // sssd to end: keep to one at a time.
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/dird-sssd.lock")
            .expect("open /tmp/dird-sssd.lock");
        lock.lock().expect("flock /tmp/dird-sssd.lock");
        let state = s.path("sss");
        for d in [
            "db",
            "mc",
            "pipes/private",
            "pubconf/krb5.include.d",
            "gpo_cache",
            "secrets",
            "deskprofile",
            "log",
        ] {
            std::fs::create_dir_all(state.join(d)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        for (d, mode) in [
            ("", 0o755),
            ("db", 0o700),
            ("pipes", 0o755),
            ("pipes/private", 0o700),
            ("pubconf", 0o755),
            ("mc", 0o775),
        ] {
            std::fs::set_permissions(state.join(d), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let path = s.path("sssd.conf");
        std::fs::write(&path, conf).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = File::create(s.path("sssd.out")).unwrap();
        let setup = format!(
            "mount --bind {resolv} /etc/resolv.conf && mount --bind {hosts} /etc/hosts && \
             mount --bind {krb5} /etc/krb5.conf && mount --bind {st} /var/lib/sss && \
             mount --bind {st}/log /var/log/sssd && mount -t tmpfs -o mode=755 dird-sssd /run && \
             exec /usr/sbin/sssd -i --logger=files -c {conf}",
            resolv = s.path("resolv.conf").display(),
            hosts = s.path("hosts").display(),
            krb5 = s.path("krb5.conf").display(),
            st = state.display(),
            conf = path.display(),
        );
        // unshare execs sh, which execs sssd: the child's PID is sssd's monitor.
        let child = Command::new("unshare")
            .args(["-m", "sh", "-c", &setup])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("run unshare + sssd");
        let mut me = AdSssd {
            child: Some(child),
            state,
            _lock: lock,
        };
        let ready = [
            "pipes/nss",
            "pipes/pam",
            "pipes/private/sbus-dp_example.com",
        ];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        // sbus-dp_<domain> is a symlink to an absolute path inside the namespace: test the
        // link itself.
        let there = |p: &std::path::Path| std::fs::symlink_metadata(p).is_ok();
        while !ready.iter().all(|p| there(&me.state.join(p))) {
            if let Some(st) = me.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "sssd exited ({st}) before it was ready:\n{}",
                    me.diagnostics(s)
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sssd did not come up within 30 s (missing: {:?}):\n{}",
                ready
                    .iter()
                    .map(|p| me.state.join(p))
                    .filter(|p| !there(p))
                    .collect::<Vec<_>>(),
                me.diagnostics(s)
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        me
    }

    /// Runs `script` with sh inside sssd's namespace (its NSS and PAM sockets).
    fn run(&self, script: &str) -> Output {
        let pid = self.child.as_ref().expect("sssd runs").id().to_string();
        Command::new("nsenter")
            .args(["-t", &pid, "-m", "sh", "-c", script])
            .output()
            .expect("run nsenter")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state.join("log/sssd_example.com.log")).unwrap_or_default()
    }

    fn diagnostics(&self, s: &TestServer) -> String {
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(80).collect();
        format!(
            "sssd output:\n{}\n--- sssd_example.com.log (last 80 lines, newest first) ---\n{}",
            std::fs::read_to_string(s.path("sssd.out")).unwrap_or_default(),
            tail.join("\n")
        )
    }

    /// The PIDs below `root` (the monitor's sssd_be, sssd_nss, sssd_pam, …).
    fn descendants(root: u32) -> Vec<u32> {
        let mut parent_of = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            if let Some(ppid) = status
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .and_then(|v| v.trim().parse::<u32>().ok())
            {
                parent_of.push((pid, ppid));
            }
        }
        let (mut out, mut frontier) = (Vec::new(), vec![root]);
        while let Some(p) = frontier.pop() {
            for (pid, ppid) in &parent_of {
                if *ppid == p && !out.contains(pid) {
                    out.push(*pid);
                    frontier.push(*pid);
                }
            }
        }
        out
    }
}

impl Drop for AdSssd {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let below = AdSssd::descendants(child.id());
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while !matches!(child.try_wait(), Ok(Some(_))) {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let alive = |p: &u32| std::fs::read_link(format!("/proc/{p}/exe")).is_ok();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline && below.iter().any(alive) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        for p in below.iter().filter(|p| alive(p)) {
            let _ = Command::new("kill")
                .args(["-KILL", &p.to_string()])
                .status();
        }
    }
}

/// Item 8: sssd's AD provider against dird, as on a joined host: the machine keytab from
/// `dird computer add`, GSS-SPNEGO binds with it, DC and GC found through dird's DNS and the
/// CLDAP ping, users and groups by SID-mapped ids with nested groups (tokenGroups), GPO
/// access control (enforcing) that finds no GPO, and PAM authentication and password change
/// through dird's KDC and kpasswd.
#[test]
fn sssd_ad_provider_resolves_authenticates_and_changes_passwords() {
    for (path, pkg) in [
        ("/usr/sbin/sssd", "sssd"),
        ("/usr/bin/pamtester", "pamtester"),
        ("/usr/bin/nsenter", "util-linux"),
    ] {
        assert!(
            std::path::Path::new(path).exists(),
            "{path} is missing: apt-get install -y {pkg} (scripts/test-all.sh does)"
        );
    }
    assert!(
        [
            "/usr/lib/x86_64-linux-gnu/sssd/libsss_ad.so",
            "/usr/lib/aarch64-linux-gnu/sssd/libsss_ad.so"
        ]
        .iter()
        .any(|p| std::path::Path::new(p).exists()),
        "sssd's AD provider is missing: apt-get install -y sssd-ad (scripts/test-all.sh does)"
    );
    assert!(
        std::fs::read_to_string("/etc/nsswitch.conf")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("passwd:") && l.contains("sss")),
        "/etc/nsswitch.conf has no `sss` source for passwd: reinstall libnss-sss"
    );
    std::fs::write(
        format!("/etc/pam.d/{AD_PAM_SERVICE}"),
        "auth required pam_sss.so\naccount required pam_sss.so\n\
         password required pam_sss.so\nsession optional pam_sss.so\n",
    )
    .expect("write the PAM service file (the test runs as root)");
    let _ports = ports();
    let s = start_dc();
    s.seed(common::SEED);
    // leads ∋ devs ∋ alice: alice is in leads through nesting.
    s.seed(
        "dn: cn=leads,ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: group\n\
         cn: leads\nsAMAccountName: leads\nmember: cn=devs,ou=People,dc=example,dc=com\n",
    );
    // The machine account and its keytab (CLIENT1$, host/client1.example.com).
    let keytab = s.path("client1.keytab");
    let out = s.cli(&[
        "computer",
        "add",
        "client1",
        "--out",
        keytab.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "dird computer add: {}", text(&out));
    let conf = format!(
        "[sssd]\nservices = nss, pam\ndomains = example.com\n\
         [nss]\nmemcache_timeout = 0\n[pam]\n\
         [domain/example.com]\nid_provider = ad\nauth_provider = ad\nchpass_provider = ad\n\
         access_provider = ad\nad_domain = example.com\nad_hostname = client1.example.com\n\
         krb5_realm = EXAMPLE.COM\nkrb5_keytab = {keytab}\nkrb5_ccachedir = {cc}\n\
         ad_gpo_map_interactive = +{AD_PAM_SERVICE}\ndyndns_update = false\n\
         cache_credentials = false\nentry_cache_timeout = 5\nldap_network_timeout = 3\n\
         ldap_opt_timeout = 10\ndebug_level = 7\n",
        keytab = keytab.display(),
        cc = s.path("ccaches").display(),
    );
    let cc = s.path("ccaches");
    std::fs::create_dir_all(&cc).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cc, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let sssd = AdSssd::start(&s, &conf);
    let fail =
        |what: &str, out: &Output| format!("{what}: {}\n{}", text(out), sssd.diagnostics(&s));

    let out = sssd.run("getent passwd alice@example.com");
    assert!(out.status.success(), "{}", fail("getent passwd", &out));
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(line.starts_with("alice:"), "{line}");
    // ids come from objectSid (ldap_id_mapping), not the posix uidNumber 10001.
    let uid: u64 = line.split(':').nth(2).unwrap().parse().unwrap();
    assert!(uid > 100_000, "not a SID-mapped uid: {line}");

    let out = sssd.run("id alice@example.com");
    assert!(out.status.success(), "{}", fail("id", &out));
    let id = String::from_utf8_lossy(&out.stdout).into_owned();
    for group in ["(domain users)", "(devs)", "(leads)"] {
        assert!(
            id.contains(group),
            "{group} missing: {id}\n{}",
            sssd.diagnostics(&s)
        );
    }

    let pam = |user_side: bool, ops: &str, input: &str| {
        let run_as = if user_side {
            "runuser -u alice@example.com -- "
        } else {
            ""
        };
        sssd.run(&format!(
            "printf '{input}' | {run_as}pamtester -v {AD_PAM_SERVICE} alice@example.com {ops}"
        ))
    };
    let out = pam(false, "authenticate acct_mgmt", &format!("{ALICE_PW}\\n"));
    assert!(
        out.status.success(),
        "{}",
        fail("pamtester authenticate", &out)
    );
    let out = pam(false, "authenticate", "wrong-Passw0rd\\n");
    assert!(
        !out.status.success(),
        "{}",
        fail("a wrong password passed", &out)
    );
    // As the user (root gets "Password reset by root is not supported"): old, new, new.
    let new_pw = "alice-Changed-Passw0rd-1";
    let out = pam(
        true,
        "chauthtok",
        &format!("{ALICE_PW}\\n{new_pw}\\n{new_pw}\\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        fail("pamtester chauthtok", &out)
    );
    let out = pam(false, "authenticate", &format!("{new_pw}\\n"));
    assert!(out.status.success(), "{}", fail("the new password", &out));
    let out = pam(false, "authenticate", &format!("{ALICE_PW}\\n"));
    assert!(
        !out.status.success(),
        "{}",
        fail("the old password still works", &out)
    );

    // How sssd got there: the machine account's GSS-SPNEGO bind, the GC on 3268 from the
    // _gc._tcp record, and a GPO search that found none.
    let log = sssd.log();
    for want in [
        "Executing sasl bind mech: GSS-SPNEGO, user: CLIENT1$",
        "Marking port 3268 of server 'dc1.example.com' as 'working'",
        "No GPOs found that apply to this system.",
        "GPO-based access control successful.",
    ] {
        assert!(
            log.contains(want),
            "sssd log lacks {want:?}\n{}",
            sssd.diagnostics(&s)
        );
    }
    drop(sssd);
}
