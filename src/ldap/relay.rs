//! Which requests a session with a backend relay (connector mode, `directory::Relay`)
//! forwards as they are: everything except what changes the connection's own state (Bind,
//! which goes through `Directory::bind_via`; Unbind; Abandon; StartTLS, which secures the
//! client's leg) and WhoAmI, answered from the session's identity (Samba does not implement
//! RFC 4532). May import: `ldap::proto`.

use crate::ldap::proto::ProtocolOp;

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
