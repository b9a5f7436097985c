//! Per-connection state: identity, TLS state, peer address and the connection's handle on
//! the server-wide paged-search cursors. May import: `directory`. Invariant: the cursor
//! registry's lock is only held for map operations, never across an `.await`; a closed
//! connection's cursors are released when its last `Session` clone is dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::directory::paging::{Cursor, CursorError};
use crate::directory::{Cursors, Identity, Relay};

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
    /// the backend's per-session relay (connector mode), `None` for the local store
    pub relay: Option<Relay>,
    /// a global catalog connection (`[ldap] gc_listen`): read-only, base `""` is the domain
    pub global_catalog: bool,
    cursors: Arc<ConnectionCursors>,
}

/// This connection's id in the cursor registry; releases its cursors on drop.
#[derive(Debug)]
struct ConnectionCursors {
    registry: Arc<Cursors>,
    id: u64,
}

impl Drop for ConnectionCursors {
    fn drop(&mut self) {
        self.registry.release_connection(self.id);
    }
}

impl Session {
    /// A fresh anonymous session, registered with the server's cursor registry.
    pub fn new(peer: SocketAddr, secure: bool, registry: Arc<Cursors>) -> Session {
        let id = registry.connection();
        Session {
            identity: Identity::Anonymous,
            secure,
            peer,
            cleartext_allowed: false,
            relay: None,
            global_catalog: false,
            cursors: Arc::new(ConnectionCursors { registry, id }),
        }
    }

    /// Takes the cursor a cookie names (a live cursor of this connection only).
    pub fn take_cursor(&self, cookie: &[u8]) -> Result<Cursor, CursorError> {
        self.cursors.registry.take(self.cursors.id, cookie)
    }

    /// Stores a cursor, returning its cookie.
    pub fn put_cursor(&self, cursor: Cursor) -> Vec<u8> {
        self.cursors.registry.insert(self.cursors.id, cursor)
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
