//! The kpasswd password-change service (RFC 3244, plus the original version-1 protocol MIT's
//! `kpasswd` uses, where the KRB-PRIV user data is the new password itself).
//!
//! Owns: kpasswd message framing, `ChangePasswdData`, result codes, the built-in
//! `kadmin/changepw` service key. May import: `model`, `rasn`, `rasn-kerberos`, siblings.
//! Takes `now` and an RNG.
//!
//! `kadmin/changepw@REALM`: if the `PrincipalDb` has no such principal, the KDC uses a built-in
//! one whose keys are derived from the krbtgt keys with the RFC 6113 PRF+ (pepper
//! `dird-kadmin-changepw`), so rotating krbtgt also rotates it and the integrator needs no object.
//!
//! A principal's own password is changed only with an INITIAL ticket (obtained with the
//! password, RFC 3244 §2; `adcli update` gets one from the machine keytab). Setting another
//! principal's password (the `targname` of ChangePasswdData, as `adcli join` and
//! `kadmin`-less tools send it) may use a ticket from the TGS exchange, as in AD: who may is
//! the `PrincipalDb`'s decision (`set_password`: administrators), refused with ACCESS_DENIED.

use std::net::SocketAddr;
use std::time::SystemTime;

use rand::{CryptoRng, RngCore};
use rasn::prelude::*;
use rasn_kerberos::{
    ApRep, ApReq, EncApRepPart, EncKrbPrivPart, HostAddress, KrbPriv, PrincipalName as WireName,
    Realm,
};

use super::codec::{self, ticket_flags as tf};
use super::crypto::{self, usage};
use super::db::{PasswordChangeError, PrincipalRecord};
use super::error::{self, KdcError};
use super::replay::ReplayError;
use super::tgs_req::verify_ap_req;
use super::{KdcState, Reply};
use crate::model::principal::{KeyMaterial, PrincipalName};

/// RFC 3244 §2 ChangePasswdData, sent with protocol version 0xff80.
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct ChangePasswdData {
    /// The new password.
    #[rasn(tag(explicit(0)))]
    pub newpasswd: OctetString,
    /// The principal whose password is set (absent: the ticket's client).
    #[rasn(tag(explicit(1)))]
    pub targname: Option<WireName>,
    /// The realm of `targname`.
    #[rasn(tag(explicit(2)))]
    pub targrealm: Option<Realm>,
}

/// RFC 3244 §2 result codes (7 is Microsoft's / MIT's KRB5_KPASSWD_INITIAL_FLAG_NEEDED).
pub mod result {
    /// Success.
    pub const SUCCESS: u16 = 0;
    /// Request fails due to being malformed.
    pub const MALFORMED: u16 = 1;
    /// Request fails due to a "hard" error in processing the request.
    pub const HARDERROR: u16 = 2;
    /// Request fails due to an error in authentication processing.
    pub const AUTHERROR: u16 = 3;
    /// Request fails due to a "soft" error (policy) in processing the request.
    pub const SOFTERROR: u16 = 4;
    /// Requestor not authorized.
    pub const ACCESSDENIED: u16 = 5;
    /// The ticket was not obtained with the password.
    pub const INITIAL_FLAG_NEEDED: u16 = 7;
}

/// Protocol version of the original change-password protocol (MIT `krb5_change_password`).
pub const VERSION_CHANGE: u16 = 0x0001;
/// Protocol version of RFC 3244 set/change password with ChangePasswdData.
pub const VERSION_SET: u16 = 0xff80;

/// A decoded kpasswd request frame (RFC 3244 §2): version, AP-REQ bytes, KRB-PRIV bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Protocol version (`VERSION_CHANGE` or `VERSION_SET`).
    pub version: u16,
    /// The DER AP-REQ.
    pub ap_req: &'a [u8],
    /// The DER KRB-PRIV.
    pub krb_priv: &'a [u8],
}

/// Splits a kpasswd request into its parts; `None` if the framing is inconsistent.
pub fn parse_frame(bytes: &[u8]) -> Option<Frame<'_>> {
    let total = usize::from(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]));
    let version = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]);
    let ap_len = usize::from(u16::from_be_bytes([*bytes.get(4)?, *bytes.get(5)?]));
    if total != bytes.len() || ap_len == 0 {
        return None;
    }
    let ap_req = bytes.get(6..6 + ap_len)?;
    let krb_priv = bytes.get(6 + ap_len..)?;
    if krb_priv.is_empty() {
        return None;
    }
    Some(Frame {
        version,
        ap_req,
        krb_priv,
    })
}

/// Serves one kpasswd request; `None` means "drop silently" (not even kpasswd-shaped).
pub(super) async fn handle(
    kdc: &KdcState,
    bytes: &[u8],
    local: SocketAddr,
    now: SystemTime,
    rng: &mut (impl RngCore + CryptoRng + Send),
) -> Option<Reply> {
    let frame = parse_frame(bytes)?;
    let outcome = change(kdc, &frame, local, now, rng).await;
    let reply = match outcome {
        Ok(reply) => Ok(reply),
        Err(Failure { code, text, error }) => {
            tracing::debug!(target: "kdc", result = code, %error, "kpasswd refused");
            let mut e_data = code.to_be_bytes().to_vec();
            e_data.extend_from_slice(text.as_bytes());
            error::krb_error_with_data(error, &kdc.config.realm, e_data, now).map(|err| Reply {
                bytes: wrap(&[], &err),
                replay: None,
                cross: None,
            })
        }
    };
    match reply {
        Ok(reply) => Some(reply),
        Err(e) => {
            tracing::warn!(target: "kdc", error = %e, "kpasswd reply could not be built");
            None
        }
    }
}

/// A failure before an AP-REP could be built: answered with a bare KRB-ERROR.
struct Failure {
    code: u16,
    text: &'static str,
    error: KdcError,
}

impl Failure {
    fn new(code: u16, text: &'static str) -> impl FnOnce(KdcError) -> Failure {
        move |error| Failure { code, text, error }
    }
}

async fn change(
    kdc: &KdcState,
    frame: &Frame<'_>,
    local: SocketAddr,
    now: SystemTime,
    rng: &mut (impl RngCore + CryptoRng + Send),
) -> Result<Reply, Failure> {
    let malformed = Failure::new(result::MALFORMED, "Malformed request");
    let autherror = Failure::new(result::AUTHERROR, "Authentication failed");
    if frame.version != VERSION_CHANGE && frame.version != VERSION_SET {
        return Err(malformed(KdcError::BadProtocolVersion));
    }
    let ap_req: ApReq = codec::decode(frame.ap_req, "AP-REQ").map_err(malformed)?;
    let server = kdc
        .service(&PrincipalName::kadmin_changepw(&kdc.config.realm))
        .await
        .map_err(Failure::new(result::HARDERROR, "Service unavailable"))?;
    let ap = verify_ap_req(kdc, &ap_req, &server, usage::AP_REQ_AUTHENTICATOR, now)
        .map_err(autherror)?;
    kdc.replay
        .check_and_insert(ap.replay_key.clone(), now)
        .await
        .map_err(|e| match e {
            ReplayError::Replayed => Failure {
                code: result::AUTHERROR,
                text: "Replayed request",
                error: KdcError::Repeat,
            },
            // RFC 3244 §2: SOFTERROR is "retry later"; nothing was checked or changed.
            ReplayError::Full => Failure {
                code: result::SOFTERROR,
                text: "Server busy, try again later",
                error: KdcError::ReplayCacheFull,
            },
            // A shared replay cache that cannot be reached: fail closed, retryable.
            ReplayError::Unavailable => Failure {
                code: result::SOFTERROR,
                text: "Server busy, try again later",
                error: KdcError::Internal("shared replay cache unreachable".into()),
            },
        })?;
    let client = codec::principal_name(&ap.ticket.cname, &ap.ticket.crealm)
        .map_err(Failure::new(result::MALFORMED, "Malformed request"))?;

    // The reply key: the authenticator subkey if sent, else the ticket session key.
    let priv_key = match &ap.authenticator.subkey {
        Some(subkey) => crypto::wire_key(subkey)
            .map_err(Failure::new(result::MALFORMED, "Malformed request"))?,
        None => ap.session_key.clone(),
    };
    let seq_number = rng.next_u32() & 0x3fff_ffff;
    let outcome = apply(kdc, frame, &ap.ticket, &client, &priv_key, now).await;
    let (code, text) = match &outcome {
        Ok(()) => (result::SUCCESS, "Password changed".to_owned()),
        Err((code, text)) => (*code, text.clone()),
    };
    tracing::info!(target: "kdc", client = %client, result = code, "kpasswd");

    // RFC 3244 §2: AP-REP (usage 12, ticket session key) + KRB-PRIV (usage 13) with the result.
    let ap_rep_part = EncApRepPart {
        ctime: ap.authenticator.ctime.clone(),
        cusec: ap.authenticator.cusec.clone(),
        subkey: None,
        seq_number: Some(seq_number),
    };
    let build = || -> Result<Vec<u8>, KdcError> {
        let enc = crypto::encrypt(
            &ap.session_key,
            usage::AP_REP_ENC_PART,
            &codec::encode(&ap_rep_part)?,
            None,
        )?;
        let ap_rep = codec::encode(&ApRep {
            pvno: 5.into(),
            msg_type: 15.into(),
            enc_part: enc,
        })?;
        let mut user_data = code.to_be_bytes().to_vec();
        user_data.extend_from_slice(text.as_bytes());
        let (timestamp, usec) = codec::kerberos_time_usec(now);
        let part = EncKrbPrivPart {
            user_data: user_data.into(),
            timestamp: Some(timestamp),
            usec: Some(usec.into()),
            seq_number: Some(seq_number),
            sender_address: host_address(local),
            recipient_address: None,
        };
        let enc = crypto::encrypt(
            &priv_key,
            usage::KRB_PRIV_ENC_PART,
            &codec::encode(&part)?,
            None,
        )?;
        let krb_priv = codec::encode(&KrbPriv {
            pvno: 5.into(),
            msg_type: 21.into(),
            enc_part: enc,
        })?;
        Ok(wrap(&ap_rep, &krb_priv))
    };
    let bytes = build().map_err(Failure::new(result::HARDERROR, "Internal error"))?;
    Ok(Reply {
        bytes,
        replay: Some(ap.replay_key),
        cross: None,
    })
}

/// Decrypts the KRB-PRIV, checks authorisation and changes the password.
async fn apply(
    kdc: &KdcState,
    frame: &Frame<'_>,
    ticket: &rasn_kerberos::EncTicketPart,
    client: &PrincipalName,
    priv_key: &krb5::Key,
    now: SystemTime,
) -> Result<(), (u16, String)> {
    let malformed = |_| (result::MALFORMED, "Malformed request".to_owned());
    let krb_priv: KrbPriv = codec::decode(frame.krb_priv, "KRB-PRIV").map_err(malformed)?;
    if krb_priv.msg_type != 21.into() {
        return Err((result::MALFORMED, "Malformed request".into()));
    }
    // The plaintext holds the new password: zeroized when dropped.
    let plain = zeroize::Zeroizing::new(
        crypto::decrypt(priv_key, usage::KRB_PRIV_ENC_PART, &krb_priv.enc_part)
            .map_err(|_| (result::AUTHERROR, "Cannot decrypt request".to_owned()))?,
    );
    let part: EncKrbPrivPart = codec::decode(&plain, "EncKrbPrivPart").map_err(malformed)?;
    // `other`: the principal whose password is set, when it is not the caller's own.
    let (password, other) = if frame.version == VERSION_SET {
        let data: ChangePasswdData =
            codec::decode(&part.user_data, "ChangePasswdData").map_err(malformed)?;
        let other = match &data.targname {
            Some(target) => {
                let realm = data.targrealm.as_ref().unwrap_or(&ticket.crealm);
                let target = codec::principal_name(target, realm).map_err(malformed)?;
                (!target.eq_ignore_case(client)).then_some(target)
            }
            None => None,
        };
        (data.newpasswd.to_vec(), other)
    } else {
        (part.user_data.to_vec(), None)
    };
    if other.is_none() && codec::bits_to_flags(&ticket.flags.0) & tf::INITIAL == 0 {
        return Err((
            result::INITIAL_FLAG_NEEDED,
            "Ticket must be obtained with the password".into(),
        ));
    }
    let password = zeroize::Zeroizing::new(
        String::from_utf8(password)
            .map_err(|_| (result::MALFORMED, "Password is not UTF-8".to_owned()))?,
    );
    // The changepw ticket may be up to 5 minutes old: re-check the account at the moment of
    // the change. Disabled, locked out or expired since → refused; a different account under
    // the ticket's name (renamed, re-created) → refused.
    let account = kdc
        .lookup(client)
        .await
        .map_err(|_| (result::HARDERROR, "Service unavailable".to_owned()))?
        .ok_or((result::ACCESSDENIED, "No such account".to_owned()))?;
    if super::check_account(&account, now).is_err() {
        return Err((
            result::ACCESSDENIED,
            "Account is disabled, locked out or expired".into(),
        ));
    }
    if super::account_id::check(ticket, &account).is_err() {
        return Err((
            result::ACCESSDENIED,
            "The ticket was issued for another account".into(),
        ));
    }
    let outcome = match &other {
        None => kdc.db.change_password(client, &password).await,
        Some(target) => kdc.db.set_password(client, target, &password).await,
    };
    match outcome {
        Ok(()) => Ok(()),
        Err(PasswordChangeError::Policy(reason)) => Err((result::SOFTERROR, reason)),
        Err(PasswordChangeError::AccessDenied) => {
            Err((result::ACCESSDENIED, "Access denied".into()))
        }
        Err(PasswordChangeError::NoSuchPrincipal) => {
            Err((result::HARDERROR, "No such principal".into()))
        }
        Err(PasswordChangeError::Internal(e)) => {
            tracing::warn!(target: "kdc", error = %e, "password change failed");
            Err((result::HARDERROR, "Password change failed".into()))
        }
    }
}

/// The built-in `kadmin/changepw` record, keyed from the krbtgt keys (see the module header).
pub(super) fn builtin_changepw(
    realm: &str,
    krbtgt: &PrincipalRecord,
) -> Result<PrincipalRecord, KdcError> {
    let keys = krbtgt
        .keys
        .iter()
        .map(|k| {
            let base = crypto::key(k)?;
            let derived = base
                .prf_plus(b"dird-kadmin-changepw", k.key.len())
                .map_err(|e| KdcError::Internal(e.to_string()))?;
            Ok(KeyMaterial {
                enctype: k.enctype,
                kvno: k.kvno,
                key: derived,
            })
        })
        .collect::<Result<Vec<_>, KdcError>>()?;
    Ok(PrincipalRecord {
        canonical: PrincipalName::kadmin_changepw(realm),
        salt: String::new(),
        kvno: krbtgt.kvno,
        keys,
        disabled: false,
        expires: None,
        is_service: true,
        locked: false,
        must_change_password: false,
        password_expires: None,
        account_id: None,
    })
}

/// RFC 3244 §2 reply framing: length, version 1, AP-REP length, AP-REP, then KRB-PRIV or
/// KRB-ERROR.
fn wrap(ap_rep: &[u8], body: &[u8]) -> Vec<u8> {
    let total = 6 + ap_rep.len() + body.len();
    let mut out = Vec::with_capacity(total);
    // Replies are a few hundred bytes; the 16-bit fields cannot overflow.
    out.extend_from_slice(&u16::try_from(total).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&VERSION_CHANGE.to_be_bytes());
    out.extend_from_slice(
        &u16::try_from(ap_rep.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(ap_rep);
    out.extend_from_slice(body);
    out
}

fn host_address(addr: SocketAddr) -> HostAddress {
    match addr {
        SocketAddr::V4(a) => HostAddress {
            addr_type: HostAddress::IPV4,
            address: a.ip().octets().to_vec().into(),
        },
        SocketAddr::V6(a) => HostAddress {
            addr_type: HostAddress::IPV6,
            address: a.ip().octets().to_vec().into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_checked() {
        assert_eq!(parse_frame(&[]), None);
        assert_eq!(
            parse_frame(&[0, 8, 0, 1, 0, 1, 0xaa, 0xbb]),
            Some(Frame {
                version: 1,
                ap_req: &[0xaa],
                krb_priv: &[0xbb]
            })
        );
        assert_eq!(parse_frame(&[0, 9, 0, 1, 0, 1, 0xaa, 0xbb]), None);
        assert_eq!(parse_frame(&[0, 7, 0, 1, 0, 1, 0xaa]), None);
        assert_eq!(parse_frame(&[0, 8, 0, 1, 0, 9, 0xaa, 0xbb]), None);
    }

    #[test]
    fn change_passwd_data_round_trips() {
        let data = ChangePasswdData {
            newpasswd: b"new-password".to_vec().into(),
            targname: None,
            targrealm: None,
        };
        let der = rasn::der::encode(&data).unwrap();
        assert_eq!(rasn::der::decode::<ChangePasswdData>(&der).unwrap(), data);
    }

    #[test]
    fn builtin_changepw_keys_differ_from_krbtgt() {
        let keys = crate::model::principal::random_keys(4).unwrap();
        let krbtgt = PrincipalRecord {
            canonical: PrincipalName::krbtgt("EXAMPLE.COM"),
            salt: String::new(),
            kvno: 4,
            keys,
            disabled: false,
            expires: None,
            is_service: true,
            locked: false,
            must_change_password: false,
            password_expires: None,
            account_id: None,
        };
        let cp = builtin_changepw("EXAMPLE.COM", &krbtgt).unwrap();
        assert_eq!(cp.keys.len(), 4);
        for (a, b) in cp.keys.iter().zip(&krbtgt.keys) {
            assert_eq!(
                (a.enctype, a.kvno, a.key.len()),
                (b.enctype, b.kvno, b.key.len())
            );
            assert_ne!(a.key, b.key);
        }
    }
}
