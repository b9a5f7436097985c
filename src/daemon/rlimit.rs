//! The open-file limit: one file descriptor per LDAP connection, so `[ldap] max_connections`
//! is only reachable if `RLIMIT_NOFILE` allows it. Login shells and many service managers
//! start processes with a soft limit of 1024; dird raises its soft limit to the hard limit
//! at start (no privilege needed) and warns when even that cannot hold `max_connections`
//! plus the descriptors the daemon needs besides (listeners, the store, logs, KDC sockets).
//! May import: nothing above `config`.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors kept for everything that is not an LDAP connection.
pub const RESERVED_FDS: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft limit in force.
/// Warns (does not fail) if it is below `max_connections + RESERVED_FDS`: connections over
/// it are then refused at accept (EMFILE, logged and backed off) instead of by the cap.
pub fn raise_nofile(max_connections: usize) -> Option<u64> {
    let now = getrlimit(Resource::Nofile);
    let target = now.maximum;
    if now.current != target {
        let new = Rlimit {
            current: target,
            maximum: now.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, new) {
            tracing::warn!(error = %e, "could not raise the open-file limit (RLIMIT_NOFILE)");
        }
    }
    let soft = getrlimit(Resource::Nofile).current;
    let wanted = (max_connections as u64).saturating_add(RESERVED_FDS);
    match soft {
        Some(limit) if limit < wanted => tracing::warn!(
            limit,
            max_connections,
            "the open-file limit (RLIMIT_NOFILE) is below [ldap] max_connections + {RESERVED_FDS}: \
             raise it (systemd LimitNOFILE=, ulimit -Hn) or lower max_connections"
        ),
        _ => tracing::debug!(limit = ?soft, "open-file limit"),
    }
    soft
}
