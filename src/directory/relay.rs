//! `Relay`: a client session's handle on a backend that keeps per-session state and forwards
//! requests itself (connector mode). The LDAP front-end holds one per connection when the
//! directory offers it (`Directory::open_relay`), passes it to `Directory::bind_via`, and
//! hands it the requests it does not answer itself; it never learns which backend runs.
//! May import: `backend` (the `SessionLink` trait), the LDAP message types it carries.

use std::sync::Arc;

use crate::backend::SessionLink;
use crate::ldap::proto::LdapMessage;

/// Who answered a forwarded request (for audit and metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Served {
    /// this upstream (its URL)
    Upstream(String),
    /// the backend's read cache, while no upstream answered
    Cache,
    /// nobody: the client got an error
    Nowhere,
}

/// One client session's link to the backend (cheap to clone; closed when the last clone of
/// the session drops).
#[derive(Clone, Debug)]
pub struct Relay(pub(crate) Arc<dyn SessionLink>);

impl Relay {
    /// Forwards one request; its responses go to `out`. Says who answered.
    pub async fn forward(
        &self,
        msg: LdapMessage,
        out: tokio::sync::mpsc::Sender<Vec<LdapMessage>>,
    ) -> Served {
        match self.0.forward(msg, out).await {
            crate::backend::Served::Upstream(u) => Served::Upstream(u),
            crate::backend::Served::Cache => Served::Cache,
            crate::backend::Served::Nowhere => Served::Nowhere,
        }
    }

    /// The upstream this session's requests go to now, if any (audit, metrics).
    pub fn upstream(&self) -> Option<String> {
        self.0.upstream()
    }

    /// Abandons a forwarded request by the client's message id.
    pub async fn abandon(&self, client_id: u32) {
        self.0.abandon(client_id).await
    }
}
