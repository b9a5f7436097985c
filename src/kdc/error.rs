//! The single KDC error enum and its one exhaustive mapping to KRB-ERROR codes (RFC 4120 §7.5.9).
//!
//! Owns: `KdcError`, `KdcError::code`, KRB-ERROR construction. May import: `model`,
//! `rasn-kerberos`, sibling `codec`. Clients get a code and a fixed text; details go to the log
//! at the place the error is created.

use std::time::SystemTime;

use rasn_kerberos::{KrbError, PrincipalName as WireName};

use super::codec;

/// Everything that can go wrong while serving a KDC or kpasswd request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KdcError {
    /// The message could not be decoded or violates the protocol structure.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// Wrong protocol version number (pvno != 5).
    #[error("bad protocol version")]
    BadProtocolVersion,
    /// The message type is not the one expected on this path.
    #[error("unexpected message type")]
    MessageType,
    /// The request is for a realm this KDC does not serve.
    #[error("wrong realm")]
    WrongRealm,
    /// The client principal is unknown.
    #[error("client principal unknown")]
    ClientUnknown,
    /// The server principal is unknown (or may not be a ticket target).
    #[error("server principal unknown")]
    ServerUnknown,
    /// The client account is disabled, expired or locked out.
    #[error("client revoked")]
    ClientRevoked,
    /// The client's password has expired or must be changed (RFC 4120 §7.5.9
    /// KDC_ERR_KEY_EXPIRED); the client may still get a `kadmin/changepw` ticket.
    #[error("password has expired")]
    KeyExpired,
    /// No enctype in common with the client.
    #[error("no common enctype")]
    EtypeNotSupported,
    /// The client has no keys at all: its password is a hash migrated from another
    /// directory (or was set as `{ARGON2}`) and no cleartext has been seen yet.
    #[error("client has no Kerberos keys")]
    NoKeys,
    /// Pre-authentication is needed; carries the DER METHOD-DATA for e-data.
    #[error("pre-authentication required")]
    PreauthRequired(Vec<u8>),
    /// The encrypted timestamp did not decrypt with the client's key.
    #[error("pre-authentication failed")]
    PreauthFailed,
    /// A timestamp is outside the allowed clock skew.
    #[error("clock skew too great")]
    Skew,
    /// The requested options cannot be honoured.
    #[error("bad option: {0}")]
    BadOption(&'static str),
    /// The request violates KDC policy.
    #[error("policy: {0}")]
    Policy(&'static str),
    /// The ticket has expired.
    #[error("ticket expired")]
    TicketExpired,
    /// The ticket is not yet valid.
    #[error("ticket not yet valid")]
    TicketNotYetValid,
    /// The authenticator was seen before.
    #[error("replayed authenticator")]
    Repeat,
    /// The ticket is not for this server.
    #[error("ticket not for us")]
    NotUs,
    /// A ciphertext failed its integrity check.
    #[error("integrity check failed")]
    BadIntegrity,
    /// The ticket names a key version we do not have.
    #[error("key version not available")]
    BadKeyVersion,
    /// The authenticator and ticket name different clients.
    #[error("ticket and authenticator do not match")]
    BadMatch,
    /// A checksum did not verify.
    #[error("message modified")]
    Modified,
    /// The checksum type is missing or not keyed / not allowed.
    #[error("inappropriate checksum type")]
    InappropriateChecksum,
    /// The reply does not fit in a UDP datagram; the client should retry over TCP.
    #[error("response too big for UDP")]
    ResponseTooBig,
    /// The replay cache is full of live entries: the request cannot be checked for replay,
    /// so it is refused (retryable) rather than risk forgetting a live authenticator.
    #[error("replay cache full")]
    ReplayCacheFull,
    /// A cross-realm request was refused (`kdc::cross_realm`): the KRB-ERROR code, who and
    /// why, for the audit log and metrics.
    #[error("cross-realm: {}", .0.text)]
    CrossRealm(Box<super::cross_realm::Refusal>),
    /// The principal store failed.
    #[error("database: {0}")]
    Database(String),
    /// A local crypto or encoding step failed.
    #[error("internal: {0}")]
    Internal(String),
}

impl KdcError {
    /// The RFC 4120 §7.5.9 error code for this error. Exhaustive: a new variant forces a choice.
    pub fn code(&self) -> i32 {
        match self {
            KdcError::BadProtocolVersion => 3,     // KDC_ERR_BAD_PVNO
            KdcError::ClientRevoked => 18,         // KDC_ERR_CLIENT_REVOKED
            KdcError::KeyExpired => 23,            // KDC_ERR_KEY_EXPIRED
            KdcError::ClientUnknown => 6,          // KDC_ERR_C_PRINCIPAL_UNKNOWN
            KdcError::ServerUnknown => 7,          // KDC_ERR_S_PRINCIPAL_UNKNOWN
            KdcError::Policy(_) => 12,             // KDC_ERR_POLICY
            KdcError::BadOption(_) => 13,          // KDC_ERR_BADOPTION
            KdcError::EtypeNotSupported => 14,     // KDC_ERR_ETYPE_NOSUPP
            KdcError::NoKeys => 9,                 // KDC_ERR_NULL_KEY
            KdcError::PreauthFailed => 24,         // KDC_ERR_PREAUTH_FAILED
            KdcError::PreauthRequired(_) => 25,    // KDC_ERR_PREAUTH_REQUIRED
            KdcError::BadIntegrity => 31,          // KRB_AP_ERR_BAD_INTEGRITY
            KdcError::TicketExpired => 32,         // KRB_AP_ERR_TKT_EXPIRED
            KdcError::TicketNotYetValid => 33,     // KRB_AP_ERR_TKT_NYV
            KdcError::Repeat => 34,                // KRB_AP_ERR_REPEAT
            KdcError::NotUs => 35,                 // KRB_AP_ERR_NOT_US
            KdcError::BadMatch => 36,              // KRB_AP_ERR_BADMATCH
            KdcError::Skew => 37,                  // KRB_AP_ERR_SKEW
            KdcError::MessageType => 39,           // KRB_AP_ERR_MSG_TYPE
            KdcError::Modified => 41,              // KRB_AP_ERR_MODIFIED
            KdcError::BadKeyVersion => 44,         // KRB_AP_ERR_BADKEYVER
            KdcError::InappropriateChecksum => 50, // KRB_AP_ERR_INAPP_CKSUM
            KdcError::ResponseTooBig => 52,        // KRB_ERR_RESPONSE_TOO_BIG
            KdcError::Malformed(_) => 60,          // KRB_ERR_GENERIC
            KdcError::ReplayCacheFull => 60,       // KRB_ERR_GENERIC (retryable, see text)
            KdcError::Database(_) => 60,           // KRB_ERR_GENERIC
            KdcError::CrossRealm(r) => r.code,     // chosen by kdc::cross_realm
            KdcError::Internal(_) => 60,           // KRB_ERR_GENERIC
            KdcError::WrongRealm => 68,            // KDC_ERR_WRONG_REALM
        }
    }

    /// The fixed text sent in e-text (no internal detail leaks to the client).
    fn text(&self) -> &'static str {
        if *self == KdcError::ReplayCacheFull {
            return "KDC busy (replay cache full), try again later";
        }
        if *self == KdcError::NoKeys {
            return "The account has no Kerberos keys yet (its password was migrated as a hash): \
                    bind once over LDAP with the password, or have it reset";
        }
        match self.code() {
            6 => "Client not found in database",
            7 => "Server not found in database",
            18 => "Client's credentials have been revoked",
            23 => "Password has expired",
            24 => "Pre-authentication failed",
            25 => "Additional pre-authentication required",
            37 => "Clock skew too great",
            52 => "Response too big for UDP, retry with TCP",
            _ => "Request failed",
        }
    }

    /// True for errors caused by the server side (logged at warn rather than debug).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            KdcError::Database(_) | KdcError::Internal(_) | KdcError::ReplayCacheFull
        )
    }
}

/// Who the error is about, for the KRB-ERROR fields (RFC 4120 §5.9.1).
#[derive(Clone, Debug, Default)]
pub struct ErrorContext {
    /// The client name from the request, if known.
    pub cname: Option<WireName>,
    /// The client realm from the request, if known.
    pub crealm: Option<String>,
    /// The server name from the request; defaults to `krbtgt/REALM`.
    pub sname: Option<WireName>,
}

/// Builds the DER KRB-ERROR for `err`.
pub fn krb_error(
    err: &KdcError,
    realm: &str,
    ctx: &ErrorContext,
    now: SystemTime,
) -> Result<Vec<u8>, KdcError> {
    codec::encode(&krb_error_message(err, realm, ctx, now))
}

/// The KRB-ERROR for `err`, before encoding (FAST wraps it, see `kdc::fast`).
pub fn krb_error_message(
    err: &KdcError,
    realm: &str,
    ctx: &ErrorContext,
    now: SystemTime,
) -> KrbError {
    let (stime, susec) = codec::kerberos_time_usec(now);
    let e_data = match err {
        KdcError::PreauthRequired(method_data) => Some(method_data.clone().into()),
        _ => None,
    };
    let sname = ctx.sname.clone().unwrap_or_else(|| {
        codec::wire_name(&crate::model::principal::PrincipalName::krbtgt(realm))
    });
    KrbError {
        pvno: 5.into(),
        msg_type: 30.into(),
        ctime: None,
        cusec: None,
        stime,
        susec: susec.into(),
        error_code: err.code(),
        crealm: ctx.crealm.as_deref().and_then(codec::kerberos_string),
        cname: ctx.cname.clone(),
        realm: codec::kerberos_string(realm).unwrap_or_default(),
        sname,
        e_text: codec::kerberos_string(err.text()),
        e_data,
    }
}

/// Builds a KRB-ERROR with explicit e-data (kpasswd puts its result code there, RFC 3244 §2).
pub fn krb_error_with_data(
    code: KdcError,
    realm: &str,
    e_data: Vec<u8>,
    now: SystemTime,
) -> Result<Vec<u8>, KdcError> {
    let (stime, susec) = codec::kerberos_time_usec(now);
    let msg = KrbError {
        pvno: 5.into(),
        msg_type: 30.into(),
        ctime: None,
        cusec: None,
        stime,
        susec: susec.into(),
        error_code: code.code(),
        crealm: None,
        cname: None,
        realm: codec::kerberos_string(realm).unwrap_or_default(),
        sname: codec::wire_name(&crate::model::principal::PrincipalName::kadmin_changepw(
            realm,
        )),
        e_text: codec::kerberos_string(code.text()),
        e_data: Some(e_data.into()),
    };
    codec::encode(&msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_rfc4120() {
        assert_eq!(KdcError::PreauthRequired(vec![]).code(), 25);
        assert_eq!(KdcError::PreauthFailed.code(), 24);
        assert_eq!(KdcError::ClientUnknown.code(), 6);
        assert_eq!(KdcError::ServerUnknown.code(), 7);
        assert_eq!(KdcError::ClientRevoked.code(), 18);
        assert_eq!(KdcError::KeyExpired.code(), 23);
        assert_eq!(KdcError::EtypeNotSupported.code(), 14);
        assert_eq!(KdcError::Skew.code(), 37);
        assert_eq!(KdcError::Repeat.code(), 34);
        assert_eq!(KdcError::ResponseTooBig.code(), 52);
    }

    #[test]
    fn krb_error_round_trips() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let bytes = krb_error(
            &KdcError::PreauthRequired(vec![0x30, 0x00]),
            "EXAMPLE.COM",
            &ErrorContext::default(),
            now,
        )
        .unwrap();
        let decoded: KrbError = rasn::der::decode(&bytes).unwrap();
        assert_eq!(decoded.error_code, 25);
        assert_eq!(decoded.e_data.unwrap().as_ref(), &[0x30, 0x00]);
    }
}
