//! Bulk loading (`dird import`, online and offline): the secrets of imported entries are
//! prepared on the directory's bounded hashing pool, like an LDAP add's, so an import with
//! plaintext passwords cannot take every core away from binds. Entries whose password is
//! already a hash (an export's `{ARGON2}`, an OpenLDAP `{SSHA}`/`{CRYPT}`/`{PBKDF2…}` value)
//! need no hashing: they are prepared on the importing thread (parse and bound checks only,
//! microseconds), without a round trip through the pool.
//! May import: `directory::{password, pwvalue, secrets}`, `model`.

use std::time::SystemTime;

use crate::model::Entry;

use super::password::PasswordRules;
use super::pwvalue::{self, Writer};
use super::{secrets, DirError, Directory};

impl Directory {
    /// Prepares an imported entry's secrets when that needs no hashing, in place: entries
    /// without a password pass unchanged, and `userPassword` values that are all `{SCHEME}`
    /// hashes are classified and checked (weak or unknown schemes refused, `{ARGON2}` and
    /// migration hashes kept, no Kerberos keys: none can be derived from a hash). Returns
    /// false, leaving the entry untouched, when it carries a cleartext password or a
    /// `unicodePwd`: then [`Directory::prepare_imported`] must hash it on the pool.
    pub fn prepare_imported_inline(
        &self,
        entry: &mut Entry,
        rules: &PasswordRules,
    ) -> Result<bool, DirError> {
        if entry.has("unicodePwd") {
            return Ok(false);
        }
        let values = entry.values("userPassword");
        if values.is_empty() {
            return Ok(true);
        }
        // A value without a scheme is a cleartext password: policy, argon2 and keys.
        if !values.iter().all(|v| pwvalue::scheme_of(v).is_some()) {
            return Ok(false);
        }
        // Only `Written::Argon2`/`Written::Legacy` (or an error) can come out of classifying
        // these values for a trusted writer, and neither hashes nor derives keys.
        secrets::prepare_new_entry(entry, None, Writer::Trusted, rules, SystemTime::now())?;
        Ok(true)
    }

    /// Prepares an imported entry's secrets: plaintext `userPassword` values are checked
    /// against `rules` and hashed on the pool, a principal gets Kerberos keys, and
    /// `{ARGON2}` values (an export's, with their sealed keys) and migration hashes are kept
    /// (inline, see [`Directory::prepare_imported_inline`]). Entries without a password pass
    /// unchanged.
    pub async fn prepare_imported(
        &self,
        mut entry: Entry,
        rules: PasswordRules,
    ) -> Result<Entry, DirError> {
        if self.prepare_imported_inline(&mut entry, &rules)? {
            return Ok(entry);
        }
        self.prepare_new_entry_with(entry, rules, SystemTime::now())
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::backend::local::Local;
    use crate::directory::{DomainInfo, ReadPolicy, SearchLimits};
    use crate::model::{Dn, Schema};

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    /// A directory over a fresh store with a hashing pool of one thread.
    fn directory(path: &std::path::Path) -> Directory {
        let schema = Arc::new(Schema::builtin().unwrap());
        let local = Local::scratch(path, dn("dc=example,dc=com"), schema.clone());
        let domain = DomainInfo {
            name: "example.com".into(),
            base: dn("dc=example,dc=com"),
            realm: "EXAMPLE.COM".into(),
            netbios: "EXAMPLE".into(),
            host: "dc.example.com".into(),
            join_group: None,
            join_container: dn("cn=Computers,dc=example,dc=com"),
        };
        let limits = SearchLimits {
            size_limit: 0,
            time_limit: Duration::from_secs(60),
            max_page_size: 1000,
        };
        let read = ReadPolicy {
            anonymous_read: false,
        };
        Directory::new(Arc::new(local), schema, domain, read, limits, 1)
    }

    fn user(uid: &str, password: &str) -> Entry {
        let mut e = Entry::new(dn(&format!("uid={uid},ou=People,dc=example,dc=com")));
        for c in ["top", "person", "organizationalPerson", "inetOrgPerson"] {
            e.push("objectClass", c.as_bytes().to_vec());
        }
        e.set_str("uid", uid);
        e.set_str("cn", uid);
        e.set_str("sn", uid);
        e.set_str("userPassword", password);
        e
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn prehashed_entries_do_not_wait_for_the_hashing_pool() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = directory(tmp.path());
        // Occupy the pool's only thread until told to stop.
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let hasher = dir.hasher.clone();
        let blocker = tokio::spawn(async move {
            hasher
                .run(move || {
                    let _ = started_tx.send(());
                    let _ = stop_rx.recv();
                    Ok(())
                })
                .await
        });
        started_rx.await.unwrap();

        let rules = PasswordRules {
            policy: Default::default(),
            history: Vec::new(),
        };
        // A 20-byte SHA-1 digest followed by a 4-byte salt, as slapcat prints them.
        let ssha = "{SSHA}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let ready = tokio::time::timeout(
            Duration::from_secs(10),
            dir.prepare_imported(user("ann", ssha), rules.clone()),
        )
        .await
        .expect("a pre-hashed entry waited for the busy hashing pool")
        .unwrap();
        assert_eq!(ready.first_str("userPassword"), Some(ssha));
        assert!(ready.has("objectGUID"), "the entry got its GUID");
        // A weak scheme is refused as before, also without the pool.
        let weak = tokio::time::timeout(
            Duration::from_secs(10),
            dir.prepare_imported(
                user("bob", "{SHA}AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                rules.clone(),
            ),
        )
        .await
        .expect("a refused hash waited for the busy hashing pool");
        assert!(weak.unwrap_err().to_string().contains("SHA"));
        // A cleartext password still goes through the pool: it waits while the pool is busy.
        let waited = tokio::time::timeout(
            Duration::from_millis(300),
            dir.prepare_imported(user("cid", "Cleartext-Passw0rd!"), rules.clone()),
        )
        .await;
        assert!(
            waited.is_err(),
            "a cleartext password was hashed off the pool"
        );
        stop_tx.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        let hashed = dir
            .prepare_imported(user("cid", "Cleartext-Passw0rd!"), rules)
            .await
            .unwrap();
        assert!(hashed
            .first_str("userPassword")
            .unwrap()
            .starts_with("{ARGON2}"));
    }
}
