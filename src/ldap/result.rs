//! The single mapping from `DirError` to an LDAP result code and client-facing message.
//! May import: `directory`, `ldap::proto`. Invariant: exhaustive, no `_ =>` arm; clients get
//! a fixed message, details are logged where they happen.

use crate::directory::DirError;
use crate::ldap::proto::{LdapResult, LdapString, ResultCode};
use crate::model::modify::ModifyError;
use crate::model::schema::SchemaViolation;

/// The result code for an error.
pub fn code(err: &DirError) -> ResultCode {
    match err {
        DirError::NoSuchObject { .. } => ResultCode::NoSuchObject,
        DirError::InvalidCredentials(_) => ResultCode::InvalidCredentials,
        DirError::InsufficientAccess => ResultCode::InsufficientAccessRights,
        DirError::ConfidentialityRequired => ResultCode::ConfidentialityRequired,
        DirError::UnwillingToPerform(_) => ResultCode::UnwillingToPerform,
        DirError::AlreadyExists | DirError::NameInUse(_) => ResultCode::EntryAlreadyExists,
        DirError::NotAllowedOnNonLeaf => ResultCode::NotAllowedOnNonLeaf,
        DirError::Schema(v) => match v {
            SchemaViolation::ObjectClass(_) => ResultCode::ObjectClassViolation,
            SchemaViolation::UndefinedAttribute(_) => ResultCode::UndefinedAttributeType,
            SchemaViolation::InvalidSyntax(_) => ResultCode::InvalidAttributeSyntax,
            SchemaViolation::Constraint(_) => ResultCode::ConstraintViolation,
            SchemaViolation::ValueExists(_) => ResultCode::AttributeOrValueExists,
            SchemaViolation::NamingViolation(_) => ResultCode::NamingViolation,
        },
        DirError::Modify(m) => match m {
            ModifyError::AttributeOrValueExists(_) => ResultCode::AttributeOrValueExists,
            ModifyError::NoSuchAttribute(_) => ResultCode::NoSuchAttribute,
            ModifyError::Constraint(_) => ResultCode::ConstraintViolation,
            ModifyError::NotAllowedOnRdn(_) => ResultCode::NotAllowedOnRdn,
            ModifyError::UndefinedAttribute(_) => ResultCode::UndefinedAttributeType,
            ModifyError::ObjectClassModsProhibited(_) => ResultCode::ObjectClassModsProhibited,
            ModifyError::NoValues(_) => ResultCode::ProtocolError,
        },
        DirError::NamingViolation(_) => ResultCode::NamingViolation,
        DirError::InvalidDnSyntax => ResultCode::InvalidDnSyntax,
        DirError::Protocol(_) => ResultCode::ProtocolError,
        DirError::AdminLimit(_) => ResultCode::AdminLimitExceeded,
        DirError::TimeLimit => ResultCode::TimeLimitExceeded,
        DirError::Busy => ResultCode::Busy,
        DirError::Unavailable(_) => ResultCode::Unavailable,
        DirError::Referral(_) => ResultCode::Referral,
        DirError::Internal => ResultCode::Other,
        DirError::Upstream { code, .. } => {
            ResultCode::from_code(*code).unwrap_or(ResultCode::Other)
        }
    }
}

/// The diagnostic message clients see.
pub fn message(err: &DirError) -> String {
    match err {
        // AD's wording, which AD-aware clients (and sssd's ad provider) parse for the data code.
        DirError::InvalidCredentials(Some(data)) => {
            format!("80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data {data}, v1db1")
        }
        DirError::Internal => "internal server error".to_string(),
        other => other.to_string(),
    }
}

/// The refusal of a password sent without TLS where `[ldap] cleartext_binds` does not allow
/// it (a transport rule of the LDAP front-end, not a directory error).
pub fn stronger_auth_required() -> LdapResult {
    LdapResult::new(
        ResultCode::StrongerAuthRequired,
        "",
        "passwords must be sent over TLS (LDAPS or StartTLS) on this connection; see [ldap] cleartext_binds",
    )
}

/// An `LdapResult` for an error, with matchedDN for noSuchObject.
pub fn result(err: &DirError) -> LdapResult {
    let matched = match err {
        DirError::NoSuchObject { matched } => matched.to_string(),
        DirError::Upstream { matched, .. } => matched.clone(),
        _ => String::new(),
    };
    let mut result = LdapResult::new(code(err), &matched, &message(err));
    if let DirError::Referral(urls) = err {
        result.referral = Some(urls.iter().map(|u| LdapString(u.clone())).collect());
    }
    result
}
