//! dird: a directory service daemon (LDAP/LDAPS + Kerberos KDC over an embedded store).
//!
//! Dependencies flow down only (checked by `tests/layering.rs`):
//! ```text
//! daemon ──► ldap ─┐
//!    │   ──► kdc  ─┴─► directory ──► backend ──► store ──► model
//!    └──► config, tls                 (everything may import model)
//! ```

pub mod kdc;
pub mod model;
