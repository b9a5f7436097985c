//! dird: a directory service daemon (LDAP/LDAPS and a Kerberos KDC over an embedded store).
//!
//! Dependencies flow down only (checked by `tests/layering.rs`):
//! ```text
//! main ──► cli ──► daemon ──► ldap ──► directory ──► backend ──► store ──► model
//!                    │          (LDAP codec: ldap::{proto, codec})        ▲
//!                    ├──► kdc (reaches the directory only through kdc::db::PrincipalDb,
//!                    │         implemented over `directory` by daemon::principals)
//!                    └──► config, daemon::tls            (everything may import model)
//! ```
//! - `model`: DNs, entries, filters, schema, modification semantics (pure, no I/O).
//! - `store`: redb persistence and indexes; the only module naming `redb`.
//! - `backend`: the `Backend` trait (slapd's backend interface), the standalone `Local` and
//!   the `Connector` (connector mode: a per-session relay to upstream AD, `backend::upstream`).
//! - `directory`: access control, identities, password hashing and Kerberos keys (sealed
//!   under the master key), principal lookup, paging, operation order.
//! - `kdc`: the Kerberos KDC (AS, TGS, kpasswd) over UDP and TCP.
//! - `ldap`: the LDAP front-end: codec, typed requests, one file per operation.
//! - `dns`: the domain's DNS responder (DC locator records), a leaf the daemon feeds.
//! - `ldif`: RFC 2849 reader and writer.
//! - `admin`: what each `dird` subcommand does, over `directory`; run by the daemon for
//!   requests on its control socket and by the CLI in-process when no daemon runs.
//! - `daemon`, `cli`, `config`: composition, lifecycle, command line, configuration.
//! - `audit`, `metrics`: leaves any front-end may import (the audit stream; Prometheus metrics).
//! - `mfa`: the second factor (RADIUS one-time codes) shared by LDAP binds and the KDC.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod audit;
pub mod backend;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod directory;
pub mod dns;
pub mod kdc;
pub mod ldap;
pub mod ldif;
pub mod metrics;
pub mod mfa;
pub mod model;
pub mod store;
