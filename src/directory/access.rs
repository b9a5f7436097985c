//! Access control: who may read and write what. The only place such decisions live.
//! May import: `model`, `directory::{identity, error}`.
//! Policy (DESIGN.md §5, issue 2 §6): Domain Admins may do everything; authenticated users
//! read everything but secrets; a user may change their own password; anonymous users get
//! the rootDSE and subschema only unless `anonymous_read` is set; secrets are never returned.

use crate::directory::error::DirError;
use crate::directory::identity::{Authenticated, Identity};
use crate::model::filter::{base_attr, Filter};
use crate::model::{Dn, Entry, Modification};

/// Attributes that are never returned to anyone, nor usable in filters or compares.
pub const SECRET_ATTRS: &[&str] = &[
    "userpassword",
    "unicodepwd",
    "dirdkerberoskeys",
    "dirdpasswordhash",
    "dbcspwd",
    "ntpwdhistory",
    "lmpwdhistory",
    "supplementalcredentials",
    "dirdpasswordhistory",
];

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

/// True if `name` (with or without options) is a secret attribute.
pub fn is_secret(name: &str) -> bool {
    let b = base_attr(name);
    SECRET_ATTRS.iter().any(|s| s.eq_ignore_ascii_case(b))
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

/// Removes secret attributes from an entry before it leaves the directory.
pub fn redact(mut e: Entry) -> Entry {
    for s in SECRET_ATTRS {
        e.remove(s);
    }
    e
}

/// Rewrites filter components on secret attributes to FALSE, so that filters cannot be
/// used to probe secret values.
pub fn redact_filter(f: Filter) -> Filter {
    let never = || Filter::Not(Box::new(Filter::And(Vec::new())));
    match f {
        Filter::And(v) => Filter::And(v.into_iter().map(redact_filter).collect()),
        Filter::Or(v) => Filter::Or(v.into_iter().map(redact_filter).collect()),
        Filter::Not(x) => Filter::Not(Box::new(redact_filter(*x))),
        Filter::Equality(ref a, _)
        | Filter::GreaterOrEqual(ref a, _)
        | Filter::LessOrEqual(ref a, _)
        | Filter::Approx(ref a, _)
        | Filter::Present(ref a)
            if is_secret(a) =>
        {
            never()
        }
        Filter::Substrings { ref attr, .. } if is_secret(attr) => never(),
        Filter::Extensible {
            attr: Some(ref a), ..
        } if is_secret(a) => never(),
        other => other,
    }
}
