//! `DirError`: everything a directory operation can fail with, protocol-neutral.
//! May import: `model`, `backend` (to convert its errors). The LDAP layer maps each variant
//! to a result code in exactly one place (`ldap::result`).

use crate::backend::BackendError;
use crate::model::modify::ModifyError;
use crate::model::schema::SchemaViolation;
use crate::model::Dn;

/// A failed directory operation.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// the entry does not exist; `matched` is the deepest existing ancestor
    #[error("no such object")]
    NoSuchObject {
        /// deepest existing ancestor
        matched: Dn,
    },
    /// wrong name or password, or an account that may not bind (with an AD-style data code)
    #[error("invalid credentials")]
    InvalidCredentials(Option<&'static str>),
    /// the identity may not do this
    #[error("insufficient access rights")]
    InsufficientAccess,
    /// needs TLS (RFC 4513 §3, password changes over cleartext)
    #[error("confidentiality required")]
    ConfidentialityRequired,
    /// refused by policy
    #[error("unwilling to perform: {0}")]
    UnwillingToPerform(&'static str),
    /// an entry with that name exists
    #[error("entry already exists")]
    AlreadyExists,
    /// a name unique in the domain is taken (the message names attribute, value and holder)
    #[error("{0}")]
    NameInUse(String),
    /// operation needs a leaf
    #[error("not allowed on non-leaf")]
    NotAllowedOnNonLeaf,
    /// the schema refuses the entry
    #[error(transparent)]
    Schema(SchemaViolation),
    /// a modification does not apply
    #[error(transparent)]
    Modify(ModifyError),
    /// naming rules broken
    #[error("naming violation: {0}")]
    NamingViolation(String),
    /// a DN does not parse
    #[error("invalid DN syntax")]
    InvalidDnSyntax,
    /// a request is malformed
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// the tier's object limit
    #[error("{0}")]
    AdminLimit(String),
    /// time limit reached
    #[error("time limit exceeded")]
    TimeLimit,
    /// too busy
    #[error("busy")]
    Busy,
    /// the target is held by another directory (a trusted realm's): a referral to these LDAP
    /// URLs (RFC 4511 §4.1.10)
    #[error("the entry is held by another directory; follow the referral")]
    Referral(Vec<String>),
    /// storage or internal failure (detail logged where it happened)
    #[error("internal error")]
    Internal,
    /// the upstream directory's own answer (connector mode), passed through unchanged
    #[error("{message}")]
    Upstream {
        /// the LDAP result code
        code: u32,
        /// matchedDN
        matched: String,
        /// diagnosticMessage (AD's, e.g. `... AcceptSecurityContext error, data 52e, v1db1`)
        message: String,
    },
    /// a service the operation depends on cannot be reached: the RADIUS second factor, or
    /// (connector mode) every upstream directory
    #[error("{0}")]
    Unavailable(String),
}

impl From<crate::mfa::MfaError> for DirError {
    /// A refused second factor reads like a wrong password (the client must not learn which
    /// factor failed; the audit stream says it); an unreachable RADIUS is `Unavailable`.
    fn from(e: crate::mfa::MfaError) -> DirError {
        match e {
            crate::mfa::MfaError::Rejected | crate::mfa::MfaError::Replayed => {
                DirError::InvalidCredentials(Some("52e"))
            }
            crate::mfa::MfaError::Unavailable => DirError::Unavailable(
                "the second factor could not be checked (RADIUS unavailable); try again later"
                    .into(),
            ),
        }
    }
}

impl From<BackendError> for DirError {
    fn from(e: BackendError) -> DirError {
        match e {
            BackendError::NoSuchObject { matched, .. } => DirError::NoSuchObject { matched },
            BackendError::AlreadyExists(_) => DirError::AlreadyExists,
            BackendError::NameInUse(m) => DirError::NameInUse(m),
            BackendError::NotAllowedOnNonLeaf(_) => DirError::NotAllowedOnNonLeaf,
            BackendError::Schema(v) => DirError::Schema(v),
            BackendError::Modify(m) => DirError::Modify(m),
            BackendError::Naming(m) => DirError::NamingViolation(m),
            BackendError::TimeLimit => DirError::TimeLimit,
            BackendError::AdminLimit(m) => DirError::AdminLimit(m),
            BackendError::SizeLimit(_) => DirError::Internal,
            BackendError::Upstream {
                code,
                matched,
                message,
            } => DirError::Upstream {
                code,
                matched,
                message,
            },
            BackendError::Unavailable(m) => DirError::Unavailable(m),
            BackendError::Conflict => DirError::Busy,
            BackendError::ClusterLimit(detail) => {
                tracing::warn!(%detail, "write refused: too large for one cluster transaction");
                DirError::UnwillingToPerform(
                    "the change is too large for one cluster transaction (etcd allows 128 operations and 1.5 MiB per transaction; see --max-txn-ops and --max-request-bytes)",
                )
            }
            BackendError::Store(detail) => {
                tracing::error!(%detail, "store failure");
                DirError::Internal
            }
            BackendError::StoreFull(detail) => {
                tracing::error!(%detail, "write refused: the data directory is full");
                DirError::UnwillingToPerform(
                    "the server's data directory is full (no space left on device): writes are refused until space is freed; reads still work",
                )
            }
        }
    }
}
