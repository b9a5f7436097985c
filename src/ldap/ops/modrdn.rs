//! ModifyDN (RFC 4511 §4.9): rename, move with newSuperior, deleteOldRDN.

use crate::ldap::ops::OpCtx;
use crate::ldap::proto::{LdapMessage, LdapResult, ProtocolOp};
use crate::ldap::result;
use crate::model::{Dn, Rdn};

pub(super) async fn modrdn(
    ctx: &OpCtx<'_>,
    dn: Dn,
    new_rdn: Rdn,
    delete_old_rdn: bool,
    new_superior: Option<Dn>,
) -> Vec<LdapMessage> {
    let res = match ctx.user() {
        Err(r) => r,
        Ok(who) => match ctx
            .dir
            .rename(who, &dn, new_rdn, delete_old_rdn, new_superior, ctx.now)
            .await
        {
            Ok(()) => LdapResult::success(),
            Err(e) => result::result(&e),
        },
    };
    ctx.reply(ProtocolOp::ModifyDnResponse(res))
}
