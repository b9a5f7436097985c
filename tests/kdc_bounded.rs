#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 9 items 6 (replay cache) and 7 (Kerberos), end to end with the real dird binary and
//! the MIT tools from Debian's `krb5-user` (kinit, klist, kvno, kpasswd). A missing tool fails
//! the test (never skips).

mod common;

use common::{TestServer, SEED};

const UDP: &str = "krb5.conf";

/// A service account with three SPNs, keyed from its password.
const SERVICES: &str = r#"dn: cn=svc,cn=Users,dc=example,dc=com
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: user
cn: svc
sAMAccountName: svc
servicePrincipalName: host/a.example.com
servicePrincipalName: host/b.example.com
servicePrincipalName: host/c.example.com
userAccountControl: 512
userPassword: svc-Passw0rd-1
"#;

#[test]
fn a_full_replay_cache_refuses_instead_of_forgetting() {
    let mut s = TestServer::prepare_kdc("");
    s.set_kdc_extra("replay_cache_size = 2");
    s.launch();
    s.seed(SEED);
    s.seed(SERVICES);
    s.krb_ok(UDP, "cc.alice", &["kinit", "alice"], "alice-Passw0rd\n");
    // Two TGS requests fill the cache (each authenticator stays for the skew window) ...
    s.krb_ok(UDP, "cc.alice", &["kvno", "host/a.example.com"], "");
    s.krb_ok(UDP, "cc.alice", &["kvno", "host/b.example.com"], "");
    // ... so the third is refused with a retryable KRB_ERR_GENERIC and its e-text, and no
    // entry was forgotten to make room.
    s.krb_fails(
        UDP,
        "cc.alice",
        &["kvno", "host/c.example.com"],
        "",
        "replay cache full",
    );
}
