//! Compare (RFC 4511 §4.10): compareTrue (6) / compareFalse (5).

use crate::ldap::ops::OpCtx;
use crate::ldap::proto::{LdapMessage, LdapResult, ProtocolOp, ResultCode};
use crate::ldap::result;
use crate::model::Dn;

pub(super) async fn compare(
    ctx: &OpCtx<'_>,
    dn: Dn,
    attr: String,
    value: Vec<u8>,
) -> Vec<LdapMessage> {
    let res = match ctx
        .dir
        .compare(&ctx.session.identity, &dn, &attr, &value)
        .await
    {
        Ok(true) => LdapResult::new(ResultCode::CompareTrue, "", ""),
        Ok(false) => LdapResult::new(ResultCode::CompareFalse, "", ""),
        Err(e) => result::result(&e),
    };
    ctx.reply(ProtocolOp::CompareResponse(res))
}
