//! Bulk loading (`dird import`, online and offline): the secrets of imported entries are
//! prepared on the directory's bounded hashing pool, like an LDAP add's, so an import with
//! plaintext passwords cannot take every core away from binds.
//! May import: `directory::{password, secrets}`, `model`.

use std::time::SystemTime;

use crate::model::Entry;

use super::password::PasswordRules;
use super::pwvalue::Writer;
use super::{secrets, DirError, Directory};

impl Directory {
    /// Prepares an imported entry's secrets: plaintext `userPassword` values are checked
    /// against `rules` and hashed, a principal gets Kerberos keys, and `{ARGON2}` values (an
    /// export's, with their sealed keys) are kept. Entries without a password pass unchanged.
    pub async fn prepare_imported(
        &self,
        mut entry: Entry,
        rules: PasswordRules,
    ) -> Result<Entry, DirError> {
        if !entry.has("userPassword") && !entry.has("unicodePwd") {
            return Ok(entry);
        }
        let (realm, master) = (self.domain.realm.clone(), self.master.clone());
        let now = SystemTime::now();
        self.hasher
            .run(move || {
                let ctx = master.as_deref().map(|master| secrets::KeyContext {
                    realm: &realm,
                    master,
                });
                secrets::prepare_new_entry(&mut entry, ctx, Writer::Trusted, &rules, now)?;
                Ok(entry)
            })
            .await
    }
}
