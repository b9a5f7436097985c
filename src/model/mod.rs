//! Pure data: DNs, entries, filters, schema. No I/O, no async, no protocol crates.
//! May import: std and small crates. Everything else may import `model`.

pub mod dn;
pub mod entry;
pub mod filter;
pub mod matching;
pub mod modify;
pub mod principal;
pub mod schema;

pub use dn::{Dn, Rdn};
pub use entry::{Attribute, Entry, ModOp, Modification};
pub use filter::{Filter, Tri};
pub use schema::Schema;
