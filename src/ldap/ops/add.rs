//! Add (RFC 4511 §4.7).

use crate::ldap::ops::OpCtx;
use crate::ldap::proto::{LdapMessage, LdapResult, ProtocolOp};
use crate::ldap::result;
use crate::model::Entry;

pub(super) async fn add(ctx: &OpCtx<'_>, entry: Entry) -> Vec<LdapMessage> {
    let res = match ctx.user() {
        Err(r) => r,
        Ok(who) => match ctx.dir.add(who, entry, ctx.now).await {
            Ok(()) => LdapResult::success(),
            Err(e) => result::result(&e),
        },
    };
    ctx.reply(ProtocolOp::AddResponse(res))
}
