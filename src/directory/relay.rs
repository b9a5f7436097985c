//! `Relay`: a client session's handle on a backend that keeps per-session state and forwards
//! requests itself (connector mode). The LDAP front-end holds one per connection when the
//! directory offers it (`Directory::open_relay`), passes it to `Directory::bind_via`, and
//! hands it the requests it does not answer itself; it never learns which backend runs.
//! When the backend searches as its own service account (connector `search_as = "service"`),
//! `Directory::check_forwarded` and `Directory::forward` apply dird's read ACL to the
//! client's identity: the read policy decides who may search, a filter naming a secret
//! attribute is refused (no oracle), and secret attributes never reach the client.
//! May import: `backend` (the `SessionLink` trait), the LDAP message types it carries.

use std::sync::Arc;

use crate::backend::SessionLink;
use crate::directory::error::DirError;
use crate::directory::{access, Directory, Identity};
use crate::ldap::proto::{Filter, LdapMessage, ProtocolOp, SearchRequest, SearchScope};
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

    /// Abandons a forwarded request by the client's message id.
    pub async fn abandon(&self, client_id: u32) {
        self.0.abandon(client_id).await
    }
}

/// The attribute types a filter names (every item, through and/or/not).
fn filter_types<'a>(f: &'a Filter, out: &mut Vec<&'a str>) {
    match f {
        Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| filter_types(f, out)),
        Filter::Not(f) => filter_types(f, out),
        Filter::EqualityMatch(a)
        | Filter::GreaterOrEqual(a)
        | Filter::LessOrEqual(a)
        | Filter::ApproxMatch(a) => out.push(a.attribute_desc.as_str()),
        Filter::Substrings(s) => out.push(s.attr_type.as_str()),
        Filter::Present(t) => out.push(t.as_str()),
        Filter::ExtensibleMatch(m) => out.extend(m.attr_type.as_ref().map(|t| t.as_str())),
    }
}

/// Reads anyone may make: the rootDSE (RFC 4512 §5.1).
fn is_public(s: &SearchRequest) -> bool {
    s.scope == SearchScope::BaseObject && s.base_object.as_str().is_empty()
}

impl Directory {
    /// The read ACL for a request a relay will forward, when the backend searches as its own
    /// service account (the upstream's ACL then says nothing about the client): the read
    /// policy must let `who` search (the rootDSE excepted), and the filter must not name a
    /// secret attribute. Nothing to check otherwise: the upstream decides as the client.
    pub fn check_forwarded(
        &self,
        relay: &Relay,
        who: &Identity,
        op: &ProtocolOp,
    ) -> Result<(), DirError> {
        let ProtocolOp::SearchRequest(s) = op else {
            return Ok(());
        };
        if !relay.0.searches_as_service() || is_public(s) {
            return Ok(());
        }
        access::may_read(self.read_policy, who)?;
        let mut types = Vec::new();
        filter_types(&s.filter, &mut types);
        if types.iter().any(|t| self.schema.is_secret(base_attr(t))) {
            return Err(DirError::InsufficientAccess);
        }
        Ok(())
    }

    /// Forwards one request through `relay` (after `check_forwarded`); when the backend
    /// searches as its service account, secret attributes are removed from every entry on
    /// the way to the client.
    pub async fn forward(
        &self,
        relay: &Relay,
        msg: LdapMessage,
        out: tokio::sync::mpsc::Sender<Vec<LdapMessage>>,
    ) -> Served {
        if !relay.0.searches_as_service() {
            return relay.forward(msg, out).await;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<LdapMessage>>(1);
        let redact = async {
            while let Some(mut batch) = rx.recv().await {
                for m in &mut batch {
                    if let ProtocolOp::SearchResultEntry(e) = &mut m.protocol_op {
                        e.attributes
                            .retain(|a| !self.schema.is_secret(base_attr(a.attr_type.as_str())));
                    }
                }
                if out.send(batch).await.is_err() {
                    break;
                }
            }
        };
        let (served, ()) = tokio::join!(relay.forward(msg, tx), redact);
        served
    }
}
