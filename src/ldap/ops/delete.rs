//! Delete (RFC 4511 §4.8).

use crate::ldap::ops::OpCtx;
use crate::ldap::proto::{LdapMessage, LdapResult, ProtocolOp};
use crate::ldap::result;
use crate::model::Dn;

pub(super) async fn delete(ctx: &OpCtx<'_>, dn: Dn) -> Vec<LdapMessage> {
    let res = match ctx.user() {
        Err(r) => r,
        Ok(who) => match ctx.dir.delete(who, &dn, ctx.now).await {
            Ok(()) => LdapResult::success(),
            Err(e) => result::result(&e),
        },
    };
    ctx.reply(ProtocolOp::DelResponse(res))
}
