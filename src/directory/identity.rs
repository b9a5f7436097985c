//! Who is asking: `Identity` and the bind proof `Authenticated`.
//! May import: `model`. Invariant: an `Authenticated` can only be made by `directory`
//! after a successful bind (the constructor is `pub(super)`).

use crate::model::Dn;

/// Proof that a bind succeeded.
#[derive(Clone, Debug)]
pub struct Authenticated {
    dn: Dn,
    admin: bool,
    _sealed: (),
}

impl Authenticated {
    pub(super) fn new(dn: Dn, admin: bool) -> Authenticated {
        Authenticated {
            dn,
            admin,
            _sealed: (),
        }
    }

    /// The bound entry.
    pub fn dn(&self) -> &Dn {
        &self.dn
    }

    /// Member of Domain Admins (directly or nested), or the built-in Administrator.
    pub fn is_admin(&self) -> bool {
        self.admin
    }
}

/// The identity of a connection.
#[derive(Clone, Debug, Default)]
pub enum Identity {
    /// no bind, or an anonymous bind
    #[default]
    Anonymous,
    /// a successful simple bind
    User(Authenticated),
}

impl Identity {
    /// The bound user, if any.
    pub fn user(&self) -> Option<&Authenticated> {
        match self {
            Identity::Anonymous => None,
            Identity::User(a) => Some(a),
        }
    }
}
