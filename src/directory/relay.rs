//! `Relay`: a client session's handle on a backend that keeps per-session state and forwards
//! requests itself (connector mode). The LDAP front-end holds one per connection when the
//! directory offers it (`Directory::open_relay`), passes it to `Directory::bind_via`, and
//! hands it the requests it does not answer itself; it never learns which backend runs.
//! When the backend searches as its own service account (connector `search_as = "service"`),
//! `Directory::check_forwarded_search` applies dird's read ACL to the client's identity: the
//! read policy decides who may search and a filter naming a secret attribute is refused (no
//! oracle); the front-end, which decodes the messages, asks `Directory::is_secret` to strip
//! secret attributes from what reaches the client (`ldap::relay`).
//! May import: `backend` (the `SessionLink` trait), the LDAP message type it carries (never
//! looked into here).

use std::sync::Arc;

use crate::backend::SessionLink;
use crate::directory::error::DirError;
use crate::directory::{access, Directory, Identity};
use crate::ldap::proto::LdapMessage;
use crate::model::filter::base_attr;

/// Who answered a forwarded request (for audit and metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Served {
    /// this upstream (its URL)
    Upstream(String),
    /// this upstream (its URL), as this service account (`search_as = "service"`)
    UpstreamAs(String, String),
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
            crate::backend::Served::UpstreamAs(u, a) => Served::UpstreamAs(u, a),
            crate::backend::Served::Cache => Served::Cache,
            crate::backend::Served::Nowhere => Served::Nowhere,
        }
    }

    /// The upstream this session's requests go to now, if any (audit, metrics).
    pub fn upstream(&self) -> Option<String> {
        self.0.upstream()
    }

    /// True when the backend runs this session's searches as its own service account
    /// (dird's read ACL and secret stripping then apply).
    pub fn searches_as_service(&self) -> bool {
        self.0.searches_as_service()
    }

    /// Abandons a forwarded request by the client's message id.
    pub async fn abandon(&self, client_id: u32) {
        self.0.abandon(client_id).await
    }
}

impl Directory {
    /// The read ACL for a search a relay will forward, when the backend searches as its own
    /// service account (the upstream's ACL then says nothing about the client): the read
    /// policy must let `who` search (the rootDSE, `root_dse`, excepted), and the filter must
    /// not name a secret attribute (`filter_types`: every attribute type the filter names).
    /// Nothing to check otherwise: the upstream decides as the client.
    pub fn check_forwarded_search(
        &self,
        relay: &Relay,
        who: &Identity,
        root_dse: bool,
        filter_types: &[&str],
    ) -> Result<(), DirError> {
        if !relay.searches_as_service() || root_dse {
            return Ok(());
        }
        access::may_read(self.read_policy, who)?;
        if filter_types.iter().any(|t| self.is_secret(t)) {
            return Err(DirError::InsufficientAccess);
        }
        Ok(())
    }

    /// Is this attribute description (name or OID, options allowed) a secret, never shown?
    pub fn is_secret(&self, attr: &str) -> bool {
        self.schema.is_secret(base_attr(attr))
    }
}
