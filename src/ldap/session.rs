//! Per-connection state: identity, TLS state, peer address and paged-search cursors.
//! May import: `directory`. Invariant: the cursors are behind a std mutex that is only held
//! for map operations, never across an `.await`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::directory::paging::Cursor;
use crate::directory::{Cursors, Identity};

/// State of one LDAP connection.
#[derive(Debug, Clone)]
pub struct Session {
    /// current identity (changed only by Bind, with no operation outstanding)
    pub identity: Identity,
    /// true once TLS is active (LDAPS or after StartTLS)
    pub secure: bool,
    /// the client's address
    pub peer: SocketAddr,
    /// `[ldap] cleartext_binds` lets this peer send passwords without TLS
    pub cleartext_allowed: bool,
    cursors: Arc<Mutex<Cursors>>,
}

impl Session {
    /// A fresh anonymous session.
    pub fn new(peer: SocketAddr, secure: bool) -> Session {
        Session {
            identity: Identity::Anonymous,
            secure,
            peer,
            cleartext_allowed: false,
            cursors: Arc::default(),
        }
    }

    /// Takes the cursor a cookie names.
    pub fn take_cursor(&self, cookie: &[u8]) -> Option<Cursor> {
        self.cursors.lock().ok()?.take(cookie)
    }

    /// Stores a cursor, returning its cookie.
    pub fn put_cursor(&self, cursor: Cursor) -> Vec<u8> {
        match self.cursors.lock() {
            Ok(mut c) => c.insert(cursor),
            Err(_) => Vec::new(),
        }
    }

    /// True if a password may be sent on this connection (a simple bind with a password, an
    /// add carrying one): TLS is active, or `[ldap] cleartext_binds` allows this peer.
    pub fn may_send_password(&self) -> bool {
        self.secure || self.cleartext_allowed
    }

    /// The bound DN as text, or empty for anonymous.
    pub fn bound_dn(&self) -> String {
        self.identity
            .user()
            .map(|u| u.dn().to_string())
            .unwrap_or_default()
    }
}
