//! LDAP wire layer: RFC 4511 messages (`proto`), the BER framer (`codec`), typed control and
//! extended-operation values (`controls`), the RFC 4515 string filter (`filter_text`) and the
//! conversion between wire filters and `model::filter::Filter` (`convert`).
//! May import: `model`, `rasn`, `tokio_util`, `bytes`. Must not import: `store`, `backend`, `kdc`.
//! (Placeholder header: the integrator replaces this file with the connection loop.)

pub mod codec;
pub mod controls;
pub mod convert;
pub mod filter_text;
pub mod proto;
