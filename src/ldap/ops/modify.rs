//! Modify (RFC 4511 §4.6, increment per RFC 4525).

use crate::ldap::ops::OpCtx;
use crate::ldap::proto::{LdapMessage, LdapResult, ProtocolOp};
use crate::ldap::result;
use crate::model::{Dn, Modification};

pub(super) async fn modify(ctx: &OpCtx<'_>, dn: Dn, mods: Vec<Modification>) -> Vec<LdapMessage> {
    let res = match ctx.user() {
        Err(r) => r,
        Ok(who) => match ctx
            .dir
            .modify(who, &dn, mods, ctx.session.secure, ctx.now)
            .await
        {
            Ok(()) => LdapResult::success(),
            Err(e) => result::result(&e),
        },
    };
    ctx.reply(ProtocolOp::ModifyResponse(res))
}
