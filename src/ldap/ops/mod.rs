//! LDAP operations: one file per operation, each a function from a typed request to the
//! response messages. No I/O: the connection loop writes what these return.
//! May import: `directory`, `model`, `ldap::{proto, request, result, session, rootdse}`.

mod add;
mod bind;
mod compare;
mod delete;
mod extended;
mod modify;
mod modrdn;
mod search;

use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::directory::{Authenticated, Directory, Identity};
use crate::ldap::proto::{LdapMessage, LdapResult, ProtocolOp, ResultCode};
use crate::ldap::request::{Request, RequestControls};
use crate::ldap::session::Session;

pub use bind::bind;
pub use extended::{is_start_tls, start_tls_refusal};

/// What an operation needs besides its request.
pub struct OpCtx<'a> {
    /// the directory core
    pub dir: &'a Directory,
    /// the connection's state (a snapshot for concurrent operations)
    pub session: &'a Session,
    /// the request's message ID
    pub msgid: u32,
    /// the request's typed controls
    pub controls: RequestControls,
    /// the time the request arrived
    pub now: SystemTime,
}

impl OpCtx<'_> {
    /// A single response message.
    pub fn reply(&self, op: ProtocolOp) -> Vec<LdapMessage> {
        vec![LdapMessage::new(self.msgid, op)]
    }

    /// The bound user, or the error write operations get without one.
    pub fn user(&self) -> Result<&Authenticated, LdapResult> {
        match &self.session.identity {
            Identity::User(u) => Ok(u),
            Identity::Anonymous => Err(LdapResult::new(
                ResultCode::InsufficientAccessRights,
                "",
                "anonymous clients may not change the directory; bind first",
            )),
        }
    }
}

/// Runs a request that does not change connection state (everything but Bind, Unbind,
/// Abandon and StartTLS, which the connection loop handles itself).
pub async fn dispatch(ctx: OpCtx<'_>, req: Request) -> Vec<LdapMessage> {
    dispatch_to(ctx, req, None).await
}

/// `dispatch`, with a non-paged search's entries sent to `out` (the connection writer's
/// queue) as they are found: only the remaining messages (SearchResultDone) are returned.
pub async fn dispatch_to(
    ctx: OpCtx<'_>,
    req: Request,
    out: Option<&mpsc::Sender<Vec<LdapMessage>>>,
) -> Vec<LdapMessage> {
    match req {
        Request::Search(r) => search::search(&ctx, r, out).await,
        Request::Modify { dn, mods } => modify::modify(&ctx, dn, mods).await,
        Request::Add(e) => add::add(&ctx, e).await,
        Request::Delete(dn) => delete::delete(&ctx, dn).await,
        Request::ModifyDn {
            dn,
            new_rdn,
            delete_old_rdn,
            new_superior,
        } => modrdn::modrdn(&ctx, dn, new_rdn, delete_old_rdn, new_superior).await,
        Request::Compare { dn, attr, value } => compare::compare(&ctx, dn, attr, value).await,
        Request::Extended { name, value } => extended::extended(&ctx, &name, value).await,
        // Handled by the connection loop; nothing to answer here.
        Request::Bind(_) | Request::Unbind | Request::Abandon(_) => Vec::new(),
    }
}
