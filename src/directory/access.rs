//! Access control: who may read and write what. The only place such decisions live.
//! May import: `model`, `directory::{identity, error}`.
//! Policy (DESIGN.md §5, issue 2 §6): Domain Admins may do everything; authenticated users
//! read everything but secrets; a user may change their own password; anonymous users get
//! the rootDSE and subschema only unless `anonymous_read` is set; secrets are never returned.
//! Secrets in filters and compares (issue 9 §1): no one, admins included, gets a filter item
//! or a compare evaluated against a secret value; which types are secret is the schema's to
//! say (`Schema::is_secret`), the enforcement is in `model::filter`, the backend and
//! `Directory::compare`.

use crate::directory::error::DirError;
use crate::directory::identity::{Authenticated, Identity};
use crate::model::filter::base_attr;
use crate::model::schema::is_listed_secret;
use crate::model::{Dn, Entry, Modification};

/// Password attributes a user may write on their own entry.
pub const PASSWORD_ATTRS: &[&str] = &["userpassword", "unicodepwd"];

/// The read policy of the server.
#[derive(Clone, Copy, Debug)]
pub struct ReadPolicy {
    /// anonymous identities may search the directory
    pub anonymous_read: bool,
}

/// Proof that a write was authorised.
pub struct Allowed<'a> {
    who: &'a Authenticated,
}

impl Allowed<'_> {
    /// The authorised identity.
    pub fn who(&self) -> &Authenticated {
        self.who
    }
}

/// True if `name` (with or without options, by name or OID) is one of the built-in secret
/// attributes (`model::schema::SECRET_ATTRIBUTES`). With the schema at hand, prefer
/// `Schema::is_secret`, which also knows aliases and the operator's secret types.
pub fn is_secret(name: &str) -> bool {
    is_listed_secret(name)
}

/// May this identity search the directory tree (beyond rootDSE and subschema)?
pub fn may_read(policy: ReadPolicy, who: &Identity) -> Result<(), DirError> {
    match who {
        Identity::User(_) => Ok(()),
        Identity::Anonymous if policy.anonymous_read => Ok(()),
        Identity::Anonymous => Err(DirError::InsufficientAccess),
    }
}

/// Admins may add, delete and rename anything.
pub fn may_change_tree<'a>(who: &'a Authenticated) -> Result<Allowed<'a>, DirError> {
    if who.is_admin() {
        Ok(Allowed { who })
    } else {
        Err(DirError::InsufficientAccess)
    }
}

/// Admins may modify anything; users may modify only the password of their own entry.
pub fn may_modify<'a>(
    who: &'a Authenticated,
    target: &Dn,
    mods: &[Modification],
) -> Result<Allowed<'a>, DirError> {
    if who.is_admin() {
        return Ok(Allowed { who });
    }
    let own = who.dn() == target;
    let only_password = mods.iter().all(|m| {
        PASSWORD_ATTRS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(base_attr(&m.attr)))
    });
    if own && only_password {
        Ok(Allowed { who })
    } else {
        Err(DirError::InsufficientAccess)
    }
}

/// May `who` set the password of `target` (Password Modify, kpasswd)?
pub fn may_set_password<'a>(who: &'a Authenticated, target: &Dn) -> Result<Allowed<'a>, DirError> {
    if who.is_admin() || who.dn() == target {
        Ok(Allowed { who })
    } else {
        Err(DirError::InsufficientAccess)
    }
}

/// Removes the built-in secret attributes from an entry before it leaves the directory (the
/// backend's search results are already stripped by the schema: this is the last guard).
pub fn redact(mut e: Entry) -> Entry {
    let secret: Vec<String> = e
        .attrs()
        .filter(|a| is_listed_secret(&a.name))
        .map(|a| a.name.clone())
        .collect();
    for name in secret {
        e.remove(&name);
    }
    e
}
