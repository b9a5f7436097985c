//! Every redb table definition and the on-disk format version, in one file.
//! May import: `redb`, `store`. Invariant: a change to any table layout, key derivation or
//! meta encoding bumps [`FORMAT_VERSION`] and adds a step to `store::migrate`.
//!
//! Layout (format version 1):
//!
//! | table        | kind     | key                                   | value                  |
//! |--------------|----------|---------------------------------------|------------------------|
//! | `entries`    | table    | entry id (`u64`, never reused)        | `encode::encode` bytes |
//! | `dn`         | table    | normalised DN (`Dn::norm`)            | entry id               |
//! | `children`   | multimap | parent id (0 = suffix, parent is root)| child id               |
//! | `idx_eq`     | multimap | attr + 0x00 + normalised value        | entry id               |
//! | `idx_pres`   | multimap | attr                                  | entry id               |
//! | `idx_sub`    | multimap | attr + 0x00 + 3-byte trigram          | entry id               |
//! | `meta`       | table    | text key                              | bytes                  |
//!
//! `attr` in index keys is the schema's canonical name, ASCII-lowercased, without options.
//! Meta keys starting with [`RESERVED_META_PREFIX`] belong to the store; counters are
//! 8-byte big-endian integers.

use redb::{MultimapTableDefinition, TableDefinition};

use super::StoreError;

/// The on-disk format this build writes and reads. `Store::open` refuses a newer file and
/// upgrades an older one through `migrate::upgrade`.
pub const FORMAT_VERSION: u32 = 1;

/// Entry id → encoded entry.
pub(super) const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// Normalised DN → entry id.
pub(super) const DNS: TableDefinition<&str, u64> = TableDefinition::new("dn");
/// Parent id → child ids (parent 0 holds the suffix entries).
pub(super) const CHILDREN: MultimapTableDefinition<u64, u64> =
    MultimapTableDefinition::new("children");
/// Equality index.
pub(super) const EQUALITY: MultimapTableDefinition<&[u8], u64> =
    MultimapTableDefinition::new("idx_eq");
/// Presence index.
pub(super) const PRESENCE: MultimapTableDefinition<&[u8], u64> =
    MultimapTableDefinition::new("idx_pres");
/// Substring (trigram) index.
pub(super) const SUBSTRING: MultimapTableDefinition<&[u8], u64> =
    MultimapTableDefinition::new("idx_sub");
/// Store metadata and caller metadata.
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Meta keys with this prefix are owned by the store; `WriteTxn::set_meta` refuses them.
pub const RESERVED_META_PREFIX: &str = "store.";
/// Meta key: on-disk format version (4 bytes big-endian).
pub(super) const META_FORMAT_VERSION: &str = "store.format_version";
/// Meta key: the next entry id to hand out (ids start at 1; 0 is the root's id).
pub(super) const META_NEXT_ID: &str = "store.next_id";
/// Meta key: the highest USN handed out.
pub(super) const META_USN: &str = "store.usn";
/// Meta key: fingerprint of the index configuration the index tables were built with.
pub(super) const META_INDEX_CONFIG: &str = "store.index_config";

/// The id every suffix entry (whose parent is the root DN) has as parent.
pub(super) const ROOT_ID: u64 = 0;

/// Decodes an 8-byte big-endian counter.
pub(super) fn decode_u64(key: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("meta {key}: expected 8 bytes")))?;
    Ok(u64::from_be_bytes(arr))
}

/// Decodes a 4-byte big-endian version number.
pub(super) fn decode_u32(key: &str, bytes: &[u8]) -> Result<u32, StoreError> {
    let arr: [u8; 4] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("meta {key}: expected 4 bytes")))?;
    Ok(u32::from_be_bytes(arr))
}
