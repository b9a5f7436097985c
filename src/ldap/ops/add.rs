//! Add (RFC 4511 §4.7). An entry carrying a password (userPassword or unicodePwd) over a
//! connection without TLS is refused with strongerAuthRequired unless `[ldap]
//! cleartext_binds` allows the peer.

use crate::ldap::ops::OpCtx;
use crate::ldap::proto::{LdapMessage, LdapResult, ProtocolOp};
use crate::ldap::result;
use crate::model::Entry;

pub(super) async fn add(ctx: &OpCtx<'_>, entry: Entry) -> Vec<LdapMessage> {
    let res = match ctx.user() {
        Err(r) => r,
        Ok(_)
            if !ctx.session.may_send_password()
                && entry.attrs().any(|a| ctx.dir.is_password_attr(&a.name)) =>
        {
            result::stronger_auth_required()
        }
        Ok(who) => match ctx.dir.add(who, entry, ctx.now).await {
            Ok(()) => LdapResult::success(),
            Err(e) => result::result(&e),
        },
    };
    ctx.reply(ProtocolOp::AddResponse(res))
}
