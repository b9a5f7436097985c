//! Extended operations: WhoAmI (RFC 4532) and Password Modify (RFC 3062). StartTLS
//! (RFC 4511 §4.14) changes the connection, so the loop runs it; this file says whether a
//! request is StartTLS and builds its answers.

use crate::ldap::controls::{self, BerValue, PasswdModifyRequest, PasswdModifyResponse};
use crate::ldap::ops::OpCtx;
use crate::ldap::proto::{ExtendedResponse, LdapMessage, LdapResult, ProtocolOp, ResultCode};
use crate::ldap::result;

pub(super) async fn extended(
    ctx: &OpCtx<'_>,
    name: &str,
    value: Option<Vec<u8>>,
) -> Vec<LdapMessage> {
    let resp = match name {
        controls::WHO_AM_I => {
            let dn = ctx.session.identity.user().map(|u| u.dn().to_string());
            ExtendedResponse::new(
                LdapResult::success(),
                None,
                Some(controls::who_am_i_value(dn.as_deref())),
            )
        }
        controls::PASSWORD_MODIFY => password_modify(ctx, value.as_deref().unwrap_or(&[])).await,
        other => ExtendedResponse::new(
            LdapResult::new(
                ResultCode::ProtocolError,
                "",
                &format!("unsupported extended operation {other}"),
            ),
            None,
            None,
        ),
    };
    ctx.reply(ProtocolOp::ExtendedResponse(resp))
}

async fn password_modify(ctx: &OpCtx<'_>, value: &[u8]) -> ExtendedResponse {
    let req = if value.is_empty() {
        PasswdModifyRequest::default()
    } else {
        match PasswdModifyRequest::from_ber(value) {
            Ok(r) => r,
            Err(_) => {
                let r = LdapResult::new(
                    ResultCode::ProtocolError,
                    "",
                    "malformed password modify request value",
                );
                return ExtendedResponse::new(r, None, None);
            }
        }
    };
    let target = req
        .user_identity
        .as_ref()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let outcome = ctx
        .dir
        .password_modify(
            &ctx.session.identity,
            ctx.session.secure,
            target.as_deref(),
            req.old_passwd.as_deref(),
            req.new_passwd.as_deref(),
            ctx.now,
        )
        .await;
    match outcome {
        Ok(None) => ExtendedResponse::new(LdapResult::success(), None, None),
        Ok(Some(generated)) => {
            let v = PasswdModifyResponse {
                gen_passwd: Some(generated.into_bytes().into()),
            };
            match v.to_ber() {
                Ok(ber) => ExtendedResponse::new(LdapResult::success(), None, Some(ber)),
                Err(_) => ExtendedResponse::new(
                    LdapResult::new(ResultCode::Other, "", "encoding failed"),
                    None,
                    None,
                ),
            }
        }
        Err(e) => ExtendedResponse::new(result::result(&e), None, None),
    }
}

/// True for the StartTLS extended request.
pub fn is_start_tls(name: &str) -> bool {
    name == controls::START_TLS
}

/// The answer to a StartTLS that cannot be honoured (already TLS, or no certificate).
pub fn start_tls_refusal(msgid: u32, code: ResultCode, why: &str) -> LdapMessage {
    LdapMessage::new(
        msgid,
        ProtocolOp::ExtendedResponse(ExtendedResponse::new(
            LdapResult::new(code, "", why),
            Some(controls::START_TLS),
            None,
        )),
    )
}
