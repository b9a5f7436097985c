#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Interop test for Kerberos FAST (RFC 6113) and OTP pre-authentication (RFC 6560), driven by
//! MIT `kinit -T <armor ccache>` and `kvno` from Debian's `krb5-user`:
//! - dird's KDC in-process (127.0.0.1 port 0, in-memory principals), the second factor checked
//!   through the KDC's `OtpCheck` boundary by a recording checker (which user, which code);
//! - the real `dird` binary with `[kdc]` and `[mfa]`, the code checked by a real FreeRADIUS
//!   (rlm_totp, started by the test on a random loopback port) with codes from `oathtool`.
//!
//! The tools must be on PATH; the test fails (never skips) if they are missing.

mod common;

use std::process::Output;
use std::sync::{Arc, Mutex};

use common::kdc_lab::{require_mit_tools, show, Lab};
use dird::kdc::db::{MemoryDb, PrincipalRecord};
use dird::kdc::otp::{OtpCheck, OtpFailure};
use dird::model::principal::random_keys;

use common::radius::{fresh_code, FreeRadius, SECRET};

const REALM: &str = "EXAMPLE.COM";
const ALICE_PW: &str = "alice-Passw0rd";
const CAROL_PW: &str = "carol-Passw0rd";
const GOOD_CODE: &str = "314159";
/// A code the test checker cannot check (as if RADIUS were down).
const DOWN_CODE: &str = "555555";

/// A second-factor checker standing in for the MFA service: `carol` needs a code; it accepts
/// `GOOD_CODE` once (a replay is refused) and records every (User-Name, code) it was asked.
#[derive(Default)]
struct RecordingOtp {
    asked: Mutex<Vec<(String, String)>>,
    used: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl OtpCheck for RecordingOtp {
    async fn required(&self, client: &PrincipalRecord) -> Result<bool, String> {
        Ok(client.canonical.components == ["carol"])
    }

    async fn check(&self, user: &str, code: &str) -> Result<(), OtpFailure> {
        self.asked
            .lock()
            .unwrap()
            .push((user.to_owned(), code.to_owned()));
        if code == DOWN_CODE {
            return Err(OtpFailure::Unavailable("RADIUS unreachable".into()));
        }
        let mut used = self.used.lock().unwrap();
        if code != GOOD_CODE || used.iter().any(|c| c == code) {
            return Err(OtpFailure::Rejected);
        }
        used.push(code.to_owned());
        Ok(())
    }
}

fn database() -> Arc<MemoryDb> {
    let db = MemoryDb::new(REALM);
    db.add_user("alice", ALICE_PW).unwrap();
    db.add_user("carol", CAROL_PW).unwrap();
    db.add_service(&format!("krbtgt/{REALM}"), random_keys(1).unwrap())
        .unwrap();
    db.add_service("host/client.example.com", random_keys(3).unwrap())
        .unwrap();
    Arc::new(db)
}

fn trace(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn fast_armored_as_and_tgs_with_mit_kinit_and_kvno() {
    require_mit_tools();
    let lab = Lab::start(database(), None);
    let conf = "krb5.conf";
    // The armor ccache: an ordinary TGT of alice.
    lab.ok(
        conf,
        "cc.armor",
        &["kinit", "alice"],
        &format!("{ALICE_PW}\n"),
    );

    // kinit -T: the AS exchange runs inside FAST (encrypted challenge, armored reply with
    // strengthened reply key and KrbFastFinished), which MIT verifies.
    let out = lab.run(
        conf,
        "cc.fast",
        &[
            "kinit",
            "-T",
            &lab.path("cc.armor").display().to_string(),
            "alice",
        ],
        &format!("{ALICE_PW}\n"),
    );
    let t = trace(&out);
    assert!(out.status.success(), "kinit -T failed:\n{}", show(&out));
    assert!(
        t.contains("FAST armor key"),
        "no FAST armor in the trace:\n{t}"
    );
    assert!(
        t.contains("encrypted_challenge (138) (real) returned: 0/Success"),
        "kinit -T did not use encrypted challenge:\n{t}"
    );
    assert!(
        t.contains("FAST reply key"),
        "reply key not strengthened:\n{t}"
    );
    let klist = lab.ok(conf, "cc.fast", &["klist"], "");
    assert!(klist.contains("krbtgt/EXAMPLE.COM@EXAMPLE.COM"), "{klist}");

    // kvno with the FAST TGT: the TGS exchange is armored too.
    let out = lab.run(conf, "cc.fast", &["kvno", "host/client.example.com"], "");
    assert!(out.status.success(), "kvno failed:\n{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("kvno = 3"));
    let t = trace(&out);
    assert!(
        t.contains("Encoding request body and padata into FAST request")
            && t.contains("Decoding FAST response"),
        "kvno did not use FAST:\n{t}"
    );

    // A wrong password inside FAST: refused, the error travels inside the armor.
    lab.fails(
        conf,
        "cc.bad",
        &[
            "kinit",
            "-T",
            &lab.path("cc.armor").display().to_string(),
            "alice",
        ],
        "wrong-password\n",
        "Preauthentication failed",
    );
}

#[test]
fn otp_inside_fast_needs_password_and_code() {
    require_mit_tools();
    let otp = Arc::new(RecordingOtp::default());
    let lab = Lab::start(database(), Some(otp.clone()));
    let conf = "krb5.conf";
    let armor = lab.path("cc.armor").display().to_string();
    // A non-MFA user is unaffected: plain kinit with a password works, and serves as armor.
    lab.ok(
        conf,
        "cc.armor",
        &["kinit", "alice"],
        &format!("{ALICE_PW}\n"),
    );

    // Without FAST, the MFA user gets no ticket for the password alone.
    let out = lab.run(
        conf,
        "cc.plain",
        &["kinit", "carol"],
        &format!("{CAROL_PW}\n"),
    );
    assert!(
        !out.status.success(),
        "password alone gave a TGT:\n{}",
        show(&out)
    );
    assert!(otp.asked.lock().unwrap().is_empty());

    // With FAST: MIT prompts once ("Enter OTP Token Value") for the password immediately
    // followed by the code, as for an LDAP bind; both are needed.
    let out = lab.run(
        conf,
        "cc.carol",
        &["kinit", "-T", &armor, "carol"],
        &format!("{CAROL_PW}{GOOD_CODE}\n"),
    );
    assert!(
        out.status.success(),
        "kinit -T with OTP failed:\n{}",
        show(&out)
    );
    let shown = show(&out);
    assert!(
        shown.contains("Enter OTP Token Value") && !shown.contains("OTP Token PIN"),
        "kinit should prompt once for password and code:\n{shown}"
    );
    let klist = lab.ok(conf, "cc.carol", &["klist"], "");
    assert!(klist.contains("carol@EXAMPLE.COM"), "{klist}");
    assert_eq!(
        otp.asked.lock().unwrap().as_slice(),
        &[("carol".to_owned(), GOOD_CODE.to_owned())]
    );
    // The FAST TGT serves TGS requests.
    let out = lab.ok(conf, "cc.carol", &["kvno", "host/client.example.com"], "");
    assert!(out.contains("kvno = 3"), "{out}");

    // The same code again (replay), a wrong code, a code that cannot be checked (fail closed),
    // or a wrong password: refused. A wrong password never reaches the checker.
    for (code, pw) in [
        (GOOD_CODE, CAROL_PW),
        ("000000", CAROL_PW),
        (DOWN_CODE, CAROL_PW),
        ("271828", "wrong-password"),
    ] {
        let out = lab.run(
            conf,
            "cc.refused",
            &["kinit", "-T", &armor, "carol"],
            &format!("{pw}{code}\n"),
        );
        assert!(
            !out.status.success(),
            "code {code} / password {pw} gave a TGT:\n{}",
            show(&out)
        );
    }
    let asked = otp.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 4, "{asked:?}");
    assert!(asked
        .iter()
        .all(|(user, code)| user == "carol" && code != "271828"));

    // alice (non-MFA) still gets FAST tickets with her password alone.
    lab.ok(
        conf,
        "cc.alice-fast",
        &["kinit", "-T", &armor, "alice"],
        &format!("{ALICE_PW}\n"),
    );
}

// ---------------------------------------------------------------------------------------
// The real daemon with [mfa] and a real FreeRADIUS (rlm_totp)

/// The TOTP key of the MFA user in FreeRADIUS (base32).
const MFA_GROUP: &str = "cn=MFA Users,cn=Users,dc=example,dc=com";
const ERIN_PW: &str = "erin-Passw0rd";
const FRANK_PW: &str = "frank-Passw0rd";

/// erin needs MFA (through a nested group), frank does not.
const MFA_SEED: &str = r#"dn: cn=erin,cn=Users,dc=example,dc=com
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: user
cn: erin
sAMAccountName: erin
userAccountControl: 512
userPassword: erin-Passw0rd

dn: cn=frank,cn=Users,dc=example,dc=com
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: user
cn: frank
sAMAccountName: frank
userAccountControl: 512
userPassword: frank-Passw0rd

dn: cn=inner,cn=Users,dc=example,dc=com
objectClass: group
cn: inner
member: cn=erin,cn=Users,dc=example,dc=com

dn: cn=MFA Users,cn=Users,dc=example,dc=com
objectClass: group
cn: MFA Users
member: cn=inner,cn=Users,dc=example,dc=com
"#;

#[test]
fn dird_kdc_checks_the_code_with_radius() {
    require_mit_tools();
    let radius = FreeRadius::start(&["erin"]);
    let extra = format!(
        "[mfa]\nservers = [{{ address = \"{}\", secret_file = \"{{dir}}/radius.secret\" }}]\n\
         require_message_authenticator = true\ngroups = [\"{MFA_GROUP}\"]\notp_length = 6\n",
        radius.addr()
    );
    let mut server = common::TestServer::prepare_kdc(&extra);
    let secret = server.path("radius.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    server.launch();
    server.seed(MFA_SEED);
    let conf = "krb5.conf";

    // frank (no MFA): a password alone, as before; his TGT is the armor.
    server.krb_ok(
        conf,
        "cc.armor",
        &["kinit", "frank"],
        &format!("{FRANK_PW}\n"),
    );
    let armor = server.path("cc.armor").display().to_string();

    // erin (MFA through a nested group): no TGT for the password alone, with or without FAST
    // unless a code is given.
    let out = server.krb(conf, "cc.erin", &["kinit", "erin"], &format!("{ERIN_PW}\n"));
    assert!(
        !out.status.success(),
        "password alone gave a TGT:\n{}",
        show(&out)
    );
    let out = server.krb(
        conf,
        "cc.erin",
        &["kinit", "-T", &armor, "erin"],
        &format!("{ERIN_PW}000000\n"),
    );
    assert!(
        !out.status.success(),
        "a wrong code gave a TGT:\n{}",
        show(&out)
    );

    // Password (PIN) + the current TOTP code, checked by FreeRADIUS: a TGT.
    let code = fresh_code();
    let out = server.krb(
        conf,
        "cc.erin",
        &["kinit", "-T", &armor, "erin"],
        &format!("{ERIN_PW}{code}\n"),
    );
    assert!(
        out.status.success(),
        "kinit -T with password and code failed:\n{}\n--- radius\n{}",
        show(&out),
        radius.log()
    );
    // RADIUS saw the sAMAccountName: one rejected code, then one accepted.
    let log = radius.log();
    assert!(log.contains("Login incorrect: [erin]"), "{log}");
    assert!(log.contains("Login OK: [erin]"), "{log}");
    let klist = server.krb_ok(conf, "cc.erin", &["klist"], "");
    assert!(klist.contains("erin@EXAMPLE.COM"), "{klist}");
    // The same code again is a replay (refused by dird's MFA service), a wrong password with
    // a code never gets a TGT.
    let out = server.krb(
        conf,
        "cc.again",
        &["kinit", "-T", &armor, "erin"],
        &format!("{ERIN_PW}{code}\n"),
    );
    assert!(
        !out.status.success(),
        "a replayed code gave a TGT:\n{}",
        show(&out)
    );
    let out = server.krb(
        conf,
        "cc.again",
        &["kinit", "-T", &armor, "erin"],
        &format!("wrong-Passw0rd{code}\n"),
    );
    assert!(
        !out.status.success(),
        "a wrong password gave a TGT:\n{}",
        show(&out)
    );
    // frank still gets FAST tickets with a password alone.
    server.krb_ok(
        conf,
        "cc.frank",
        &["kinit", "-T", &armor, "frank"],
        &format!("{FRANK_PW}\n"),
    );
}
