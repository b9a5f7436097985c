//! Which requests a session with a backend relay (connector mode, `directory::Relay`)
//! forwards as they are: everything except what changes the connection's own state (Bind,
//! which goes through `Directory::bind_via`; Unbind; Abandon; StartTLS, which secures the
//! client's leg) and WhoAmI, answered from the session's identity (Samba does not implement
//! RFC 4532). With a backend that searches as its service account, it also applies dird's
//! read ACL (`Directory::check_forwarded_search`) and strips secret attributes from the
//! entries on their way back (`forward`). May import: `ldap::proto`, `directory`.

use crate::directory::{DirError, Directory, Identity, Relay, Served};
use crate::ldap::proto::{Filter, LdapMessage, ProtocolOp, SearchRequest, SearchScope};

/// RFC 4532 WhoAmI.
const WHO_AM_I: &str = "1.3.6.1.4.1.4203.1.11.3";
/// RFC 4511 §4.14 StartTLS.
const START_TLS: &str = "1.3.6.1.4.1.1466.20037";

/// True if a relaying session sends this request to its backend unchanged.
pub fn forwarded(op: &ProtocolOp) -> bool {
    match op {
        ProtocolOp::BindRequest(_)
        | ProtocolOp::UnbindRequest(_)
        | ProtocolOp::AbandonRequest(_) => false,
        ProtocolOp::ExtendedRequest(e) => {
            let name = e.request_name.as_str();
            name != WHO_AM_I && name != START_TLS
        }
        _ => true,
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
fn is_root_dse(s: &SearchRequest) -> bool {
    s.scope == SearchScope::BaseObject && s.base_object.as_str().is_empty()
}

/// dird's own read ACL for a request about to be forwarded (searches only; the directory
/// decides, this decodes what it needs).
pub fn check(
    dir: &Directory,
    relay: &Relay,
    who: &Identity,
    op: &ProtocolOp,
) -> Result<(), DirError> {
    let ProtocolOp::SearchRequest(s) = op else {
        return Ok(());
    };
    let mut types = Vec::new();
    filter_types(&s.filter, &mut types);
    dir.check_forwarded_search(relay, who, is_root_dse(s), &types)
}

/// Forwards one request through `relay` (after `check`); when the backend searches as its
/// service account, secret attributes are removed from every entry on the way to `out`.
pub async fn forward(
    dir: &Directory,
    relay: &Relay,
    msg: LdapMessage,
    out: tokio::sync::mpsc::Sender<Vec<LdapMessage>>,
) -> Served {
    if !relay.searches_as_service() {
        return relay.forward(msg, out).await;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<LdapMessage>>(1);
    let redact = async {
        while let Some(mut batch) = rx.recv().await {
            for m in &mut batch {
                if let ProtocolOp::SearchResultEntry(e) = &mut m.protocol_op {
                    e.attributes
                        .retain(|a| !dir.is_secret(a.attr_type.as_str()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ldap::proto::{BindRequest, ExtendedRequest};

    #[test]
    fn connection_state_stays_local() {
        assert!(!forwarded(&ProtocolOp::BindRequest(BindRequest::simple(
            "a", b"b"
        ))));
        assert!(!forwarded(&ProtocolOp::AbandonRequest(3)));
        assert!(!forwarded(&ProtocolOp::ExtendedRequest(
            ExtendedRequest::new(WHO_AM_I, None)
        )));
        assert!(!forwarded(&ProtocolOp::ExtendedRequest(
            ExtendedRequest::new(START_TLS, None)
        )));
        assert!(forwarded(&ProtocolOp::ExtendedRequest(
            ExtendedRequest::new("1.3.6.1.4.1.4203.1.11.1", None)
        )));
        assert!(forwarded(&ProtocolOp::DelRequest("cn=x".into())));
    }
}
