//! Bind (RFC 4511 §4.2, RFC 4513 §5): simple binds by DN, UPN or down-level name, with the
//! password-policy response control (draft-behera-ldap-password-policy-10 §6.2) when the
//! request carried the request control: timeBeforeExpiration when the password expires within
//! the warning window, and the error (accountLocked, changeAfterReset, passwordExpired) of a
//! refused bind, so that clients such as sssd can tell the user why.

use std::time::SystemTime;

use crate::directory::{DirError, Directory, Identity, Relay};
use crate::ldap::controls::{
    BerValue, PasswordPolicyError, PasswordPolicyResponse, PasswordPolicyWarning,
};
use crate::ldap::proto::{BindResponse, LdapMessage, LdapResult, ProtocolOp, ResultCode};
use crate::ldap::request::{BindAuth, BindReq};
use crate::ldap::result;

/// Runs a bind; returns the response and the new identity (None: the bind failed, and per
/// RFC 4513 §4 the connection becomes anonymous).
pub async fn bind(
    dir: &Directory,
    relay: Option<&Relay>,
    msgid: u32,
    req: BindReq,
    may_send_password: bool,
) -> (Vec<LdapMessage>, Option<Identity>) {
    let ppolicy = req.ppolicy;
    let reply = |res: LdapResult, policy: Option<PasswordPolicyResponse>| {
        let msg = LdapMessage::new(
            msgid,
            ProtocolOp::BindResponse(BindResponse::new(res, None)),
        );
        let control = policy
            .filter(|_| ppolicy)
            .and_then(|p| p.to_control(false).ok());
        vec![msg.with_controls(control.into_iter().collect())]
    };
    if req.version != 3 {
        let r = LdapResult::new(ResultCode::ProtocolError, "", "only LDAPv3 is supported");
        return (reply(r, None), None);
    }
    match req.auth {
        BindAuth::Sasl(mech, _) => {
            let r = LdapResult::new(
                ResultCode::AuthMethodNotSupported,
                "",
                &format!("SASL mechanism {mech} is not supported; use a simple bind over TLS"),
            );
            (reply(r, None), None)
        }
        BindAuth::Simple(pw) if !pw.is_empty() && !may_send_password => {
            // `[ldap] cleartext_binds`: the password has crossed the network in the clear
            // already; refuse without checking it, so a sniffed guess learns nothing.
            (reply(result::stronger_auth_required(), None), None)
        }
        BindAuth::Simple(pw) => {
            // The front-end reads the clock for the operation (as for every other operation).
            let now = SystemTime::now();
            match dir.bind_via(relay, &req.name, &pw, now).await {
                Ok(ok) => {
                    let policy = ok.expires_in.map(|left| PasswordPolicyResponse {
                        warning: Some(PasswordPolicyWarning::TimeBeforeExpiration(
                            u32::try_from(left.as_secs()).unwrap_or(u32::MAX >> 1),
                        )),
                        error: None,
                    });
                    // A user bind always answers a ppolicy request (an empty value: no
                    // warning, no error), as OpenLDAP's ppolicy overlay does.
                    let policy = match (&ok.identity, policy) {
                        (_, Some(p)) => Some(p),
                        (Identity::User(_), None) => Some(PasswordPolicyResponse::default()),
                        (Identity::Anonymous, None) => None,
                    };
                    (reply(LdapResult::success(), policy), Some(ok.identity))
                }
                Err(e) => {
                    let policy = policy_error(&e).map(|error| PasswordPolicyResponse {
                        warning: None,
                        error: Some(error),
                    });
                    (reply(result::result(&e), policy), None)
                }
            }
        }
    }
}

/// The password-policy error of a refused bind, from its AD data code.
fn policy_error(e: &DirError) -> Option<PasswordPolicyError> {
    match e {
        DirError::InvalidCredentials(Some("775")) => Some(PasswordPolicyError::AccountLocked),
        DirError::InvalidCredentials(Some("773")) => Some(PasswordPolicyError::ChangeAfterReset),
        DirError::InvalidCredentials(Some("532")) => Some(PasswordPolicyError::PasswordExpired),
        _ => None,
    }
}
