//! Bind (RFC 4511 §4.2, RFC 4513 §5): simple binds by DN, UPN or down-level name.

use crate::directory::{Directory, Identity};
use crate::ldap::proto::{BindResponse, LdapMessage, LdapResult, ProtocolOp, ResultCode};
use crate::ldap::request::{BindAuth, BindReq};
use crate::ldap::result;

/// Runs a bind; returns the response and the new identity (None: the bind failed, and per
/// RFC 4513 §4 the connection becomes anonymous).
pub async fn bind(
    dir: &Directory,
    msgid: u32,
    req: BindReq,
) -> (Vec<LdapMessage>, Option<Identity>) {
    let reply = |res: LdapResult| {
        vec![LdapMessage::new(
            msgid,
            ProtocolOp::BindResponse(BindResponse::new(res, None)),
        )]
    };
    if req.version != 3 {
        let r = LdapResult::new(ResultCode::ProtocolError, "", "only LDAPv3 is supported");
        return (reply(r), None);
    }
    match req.auth {
        BindAuth::Sasl(mech) => {
            let r = LdapResult::new(
                ResultCode::AuthMethodNotSupported,
                "",
                &format!("SASL mechanism {mech} is not supported; use a simple bind over TLS"),
            );
            (reply(r), None)
        }
        BindAuth::Simple(pw) => match dir.bind(&req.name, &pw).await {
            Ok(id) => (reply(LdapResult::success()), Some(id)),
            Err(e) => (reply(result::result(&e)), None),
        },
    }
}
