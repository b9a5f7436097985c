//! Bulk loading (`dird import`, online and offline): the secrets of imported entries are
//! prepared on the directory's bounded hashing pool, like an LDAP add's, so an import with
//! plaintext passwords cannot take every core away from binds.
//! May import: `directory::{password, secrets}`, `model`.

use std::time::SystemTime;

use crate::model::Entry;

use super::password::PasswordRules;
use super::{DirError, Directory};

impl Directory {
    /// Prepares an imported entry's secrets: plaintext `userPassword` values are checked
    /// against `rules` and hashed, a principal gets Kerberos keys, and `{ARGON2}` values (an
    /// export's, with their sealed keys) are kept. Entries without a password pass unchanged.
    pub async fn prepare_imported(
        &self,
        entry: Entry,
        rules: PasswordRules,
    ) -> Result<Entry, DirError> {
        if !entry.has("userPassword") && !entry.has("unicodePwd") {
            return Ok(entry);
        }
        self.prepare_new_entry_with(entry, rules, SystemTime::now())
            .await
    }
}
