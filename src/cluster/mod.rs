//! Several dird nodes over one etcd cluster (issue 17). This file is merged with the cluster
//! core (config, writes, replica); this branch adds only the state that is not entries.
//! May import: everything below `daemon` (`directory`, `kdc`, `dns` traits and types), `etcd_client`.

pub mod nodes;
pub mod shared;
