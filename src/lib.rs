//! dird: a directory service daemon (LDAP/LDAPS over an embedded store; Kerberos next).
//!
//! Dependencies flow down only (checked by `tests/layering.rs`):
//! ```text
//! main ──► cli ──► daemon ──► ldap ──► directory ──► backend ──► store ──► model
//!                    │          (LDAP codec: ldap::{proto, codec})        ▲
//!                    └──► config, daemon::tls            (everything may import model)
//! ```
//! - `model`: DNs, entries, filters, schema, modification semantics (pure, no I/O).
//! - `store`: redb persistence and indexes; the only module naming `redb`.
//! - `backend`: the `Backend` trait (slapd's backend interface) and the standalone `Local`.
//! - `directory`: access control, identities, password hashing, paging, operation order.
//! - `ldap`: the LDAP front-end: codec, typed requests, one file per operation.
//! - `ldif`: RFC 2849 reader and writer.
//! - `daemon`, `cli`, `config`: composition, lifecycle, command line, configuration.
//! - `audit`, `metrics`: leaves any front-end may import (the audit stream; Prometheus metrics).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod audit;
pub mod backend;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod directory;
pub mod kdc;
pub mod ldap;
pub mod ldif;
pub mod metrics;
pub mod model;
pub mod store;
