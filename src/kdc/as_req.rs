//! The AS exchange (RFC 4120 §3.1): pre-authentication with PA-ENC-TIMESTAMP, enctype
//! negotiation, TGT (or initial service ticket) issuance; inside FAST (RFC 6113, `fast`) also
//! encrypted challenge and OTP (RFC 6560, `otp`) for principals that need a second factor.
//!
//! Owns: AS-REQ validation, the choice of pre-authentication method and AS-REP construction.
//! May import: `model`, `rasn-kerberos`, siblings. Takes `now` and an RNG; reads no clock.

use std::time::SystemTime;

use rand::{CryptoRng, RngCore};
use rasn_kerberos::{
    AsRep, AsReq, EncAsRepPart, EtypeInfo2Entry, KdcRep, KdcReqBody, PaData, PaEncTsEnc,
};

use super::codec::{self, kdc_options as opt, ticket_flags as tf};
use super::crypto::{self, usage};
use super::db::PrincipalRecord;
use super::error::KdcError;
use super::fast;
use super::fast_types::{PA_ENCRYPTED_CHALLENGE, PA_OTP_REQUEST};
use super::otp;
use super::ticket::{earliest, requested_limit, Issue};
use super::KdcState;
use crate::model::principal::{name_type, KeyMaterial};

/// Longest life of a `kadmin/changepw` ticket (issue 9 item 7; MIT and AD use 5 minutes).
pub const CHANGEPW_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);

/// PA-ENC-TIMESTAMP (RFC 4120 §5.2.7.2).
pub const PA_ENC_TIMESTAMP: i32 = 2;
/// PA-ETYPE-INFO2 (RFC 4120 §5.2.7.5).
pub const PA_ETYPE_INFO2: i32 = 19;

/// Serves one AS-REQ; returns the DER AS-REP. `raw_body` is the outer KDC-REQ-BODY as
/// received (the FAST req-checksum covers it); `armor_out` is set once a FAST armor key is
/// established, so that later errors are sent inside FAST.
pub(super) async fn handle(
    kdc: &KdcState,
    req: &AsReq,
    raw_body: &[u8],
    now: SystemTime,
    rng: &mut (impl RngCore + CryptoRng + Send),
    armor_out: &mut Option<fast::Armor>,
) -> Result<Vec<u8>, KdcError> {
    let req = &req.0;
    super::check_header(&req.pvno, &req.msg_type, 10)?;
    let outer_padata = req.padata.as_deref().unwrap_or_default();
    // RFC 6113 §5.4.2: with FAST, the inner padata and req-body replace the outer ones.
    let fast_req = fast::unwrap_as(kdc, outer_padata, raw_body, now).await?;
    *armor_out = fast_req.as_ref().map(|f| f.armor.clone());
    let armor = fast_req.as_ref().map(|f| &f.armor);
    let (padata, body): (&[PaData], &KdcReqBody) = match &fast_req {
        Some(f) => (&f.padata, &f.body),
        None => (outer_padata, &req.req_body),
    };
    kdc.check_realm(&body.realm)?;
    let cname_wire = body
        .cname
        .as_ref()
        .ok_or(KdcError::Malformed("AS-REQ without cname"))?;
    let sname_wire = body
        .sname
        .as_ref()
        .ok_or(KdcError::Malformed("AS-REQ without sname"))?;
    let cname = codec::principal_name(cname_wire, &body.realm)?;
    let sname = codec::principal_name(sname_wire, &body.realm)?;

    let client = kdc.lookup(&cname).await?.ok_or(KdcError::ClientUnknown)?;
    super::check_account(&client, now)?;
    let service = kdc.service(&sname).await?;
    if client.keys.is_empty() {
        // A migrated password hash yields no keys until the first LDAP bind (the only
        // moment dird sees the cleartext).
        return Err(KdcError::NoKeys);
    }
    if crypto::negotiate(&body.etype, &client.keys).is_none() {
        return Err(KdcError::EtypeNotSupported);
    }

    // RFC 4120 §3.1.1 / RFC 6113 §2: pre-authentication is mandatory for every principal.
    let preauth = match preauthenticate(kdc, padata, body, &client, armor, now, rng).await {
        Ok(preauth) => preauth,
        Err(KdcError::PreauthFailed) => {
            // Counted towards lockout together with the account's failed LDAP binds.
            kdc.db.preauth_failed(&client.canonical, now).await;
            return Err(KdcError::PreauthFailed);
        }
        Err(e) => return Err(e),
    };
    kdc.db.preauth_succeeded(&client.canonical).await;
    // After pre-authentication (only the password holder learns it): an expired password or
    // one that must be changed gets KDC_ERR_KEY_EXPIRED, except for kadmin/changepw tickets,
    // with which the client changes it (RFC 3244; MIT kinit prompts for a new password).
    let changepw = sname.eq_ignore_case(
        &crate::model::principal::PrincipalName::kadmin_changepw(&kdc.config.realm)
            .with_realm(&sname.realm),
    );
    let key_expired =
        client.must_change_password || client.password_expires.is_some_and(|t| t <= now);
    if key_expired && !changepw {
        return Err(KdcError::KeyExpired);
    }
    let (reply_key, reply_kvno) = match &preauth {
        Preauth::LongTerm { material, .. } => (crypto::key(material)?, Some(material.kvno)),
        Preauth::ArmorKey => match armor {
            Some(armor) => (armor.key.clone(), None),
            None => return Err(KdcError::Internal("OTP without FAST".into())),
        },
    };

    let options = codec::bits_to_flags(&body.kdc_options.0);
    if options & (opt::POSTDATED | opt::ALLOW_POSTDATE) != 0 {
        return Err(KdcError::BadOption("postdated tickets are not supported"));
    }
    let mut flags = tf::INITIAL | tf::PRE_AUTHENT;
    if options & opt::FORWARDABLE != 0 {
        flags |= tf::FORWARDABLE;
    }
    if options & opt::PROXIABLE != 0 {
        flags |= tf::PROXIABLE;
    }

    // RFC 4120 §3.1.3: lifetime is the least of the request, the policy and the account expiry.
    // A kadmin/changepw ticket is for one password change: at most CHANGEPW_LIFETIME and never
    // renewable, whatever was asked (as MIT's and AD's KDCs do), so a stolen one is short-lived.
    let start = now;
    let till = requested_limit(Some(&body.till));
    let mut end = earliest(
        earliest(now + kdc.config.ticket_lifetime, till),
        client.expires,
    );
    if changepw {
        end = earliest(end, Some(now + CHANGEPW_LIFETIME));
    }
    if end <= start {
        return Err(KdcError::Policy("ticket would never be valid"));
    }
    let renew_till = renew_limit(
        options,
        till,
        body.rtime.as_ref(),
        end,
        now + kdc.config.renew_lifetime,
    )
    .filter(|_| !changepw);
    if renew_till.is_some() {
        flags |= tf::RENEWABLE;
    }

    let session_etype =
        crypto::session_enctype(&body.etype, &service.keys).ok_or(KdcError::EtypeNotSupported)?;
    let session_key = crypto::session_key(session_etype, rng)?;
    let service_key = crypto::ticket_key(&service.keys).ok_or(KdcError::EtypeNotSupported)?;

    // RFC 6806 §5-6: the ticket and reply carry the canonical client name (sAMAccountName@REALM)
    // when the client asks to canonicalise and always for enterprise names (UPNs). Otherwise
    // the name stays as requested (it resolved case-insensitively to this account): MIT
    // kinit without -C refuses a changed client name ("KDC reply did not match
    // expectations", checked with krb5 1.20/1.21). Either way the ticket is bound to the
    // account itself by `account_id` (objectGUID), not to the name.
    let canonicalize = options & opt::CANONICALIZE != 0 || cname.name_type == name_type::ENTERPRISE;
    let reply_cname = if canonicalize {
        codec::wire_name(&client.canonical)
    } else {
        cname_wire.clone()
    };
    let realm =
        codec::kerberos_string(&kdc.config.realm).ok_or(KdcError::Internal("realm".into()))?;
    let pac = pac_plan(kdc, &client, &service, &reply_cname, sname_wire, now).await?;
    let issue = Issue {
        cname: reply_cname.clone(),
        crealm: realm.clone(),
        sname: sname_wire.clone(),
        srealm: realm.clone(),
        flags,
        session_key: &session_key,
        auth_time: now,
        start_time: start,
        end_time: end,
        renew_till,
        caddr: body.addresses.clone(),
        authorization_data: super::account_id::authorization_data(&client)?,
        transited: None,
        pac: Some(pac),
    };
    let ticket = issue.ticket(service_key)?;
    let enc_part = codec::encode(&EncAsRepPart(issue.rep_part(body.nonce, now)))?;
    let reply_padata = match armor {
        None => {
            let enctype = match &preauth {
                Preauth::LongTerm { material, .. } => material.enctype,
                Preauth::ArmorKey => reply_key.enctype(),
            };
            let enc_part =
                crypto::encrypt(&reply_key, usage::AS_REP_ENC_PART, &enc_part, reply_kvno)?;
            (vec![etype_info2(&client, &[enctype])?], enc_part)
        }
        Some(armor) => {
            // RFC 6113 §5.4.3: the reply key is strengthened, the ticket bound to the armor by
            // KrbFastFinished, and the padata travel inside the armored KrbFastResponse.
            let (strengthen_key, strengthened) = fast::strengthen(&reply_key, rng)?;
            let enc_part = crypto::encrypt(&strengthened, usage::AS_REP_ENC_PART, &enc_part, None)?;
            let mut inner = Vec::new();
            if let Preauth::LongTerm {
                material,
                challenge,
            } = &preauth
            {
                inner.push(etype_info2(&client, &[material.enctype])?);
                if *challenge {
                    inner.push(fast::kdc_challenge(armor, material, now)?);
                }
            }
            let armored = fast::armored_reply(
                armor,
                inner,
                Some(&strengthen_key),
                &realm,
                &reply_cname,
                &ticket,
                now,
            )?;
            (vec![armored.padata], enc_part)
        }
    };
    let (padata, enc_part) = reply_padata;

    let rep = AsRep(KdcRep {
        pvno: 5.into(),
        msg_type: 11.into(),
        padata: Some(padata),
        crealm: realm,
        cname: reply_cname,
        ticket,
        enc_part,
    });
    codec::encode(&rep)
}

/// RFC 4120 §5.2.7.2: decrypts and checks PA-ENC-TIMESTAMP; returns the client key it used.
fn verify_timestamp<'a>(
    value: &[u8],
    client: &'a PrincipalRecord,
    now: SystemTime,
    max_skew: std::time::Duration,
) -> Result<&'a crate::model::principal::KeyMaterial, KdcError> {
    let enc: rasn_kerberos::EncryptedData =
        codec::decode(value, "PA-ENC-TIMESTAMP").map_err(|_| KdcError::PreauthFailed)?;
    let material = crypto::key_for(&client.keys, enc.etype).ok_or(KdcError::PreauthFailed)?;
    let plain = crypto::decrypt(&crypto::key(material)?, usage::PA_ENC_TIMESTAMP, &enc)
        .map_err(|_| KdcError::PreauthFailed)?;
    let ts: PaEncTsEnc =
        codec::decode(&plain, "PA-ENC-TS-ENC").map_err(|_| KdcError::PreauthFailed)?;
    if codec::distance(codec::system_time(&ts.patimestamp), now) > max_skew {
        return Err(KdcError::Skew);
    }
    Ok(material)
}

/// The renew-till of a new ticket, or `None` if it is not renewable (RFC 4120 §3.1.3).
fn renew_limit(
    options: u32,
    till: Option<SystemTime>,
    rtime: Option<&rasn_kerberos::KerberosTime>,
    end: SystemTime,
    policy_limit: SystemTime,
) -> Option<SystemTime> {
    let wanted = if options & opt::RENEWABLE != 0 {
        requested_limit(rtime)
    } else if options & opt::RENEWABLE_OK != 0 && till.is_none_or(|t| t > end) {
        till
    } else {
        return None;
    };
    let renew_till = earliest(policy_limit, wanted);
    (renew_till > end).then_some(renew_till)
}

/// How the client proved itself, and so which key protects the reply.
enum Preauth<'a> {
    /// Encrypted timestamp or (`challenge`) encrypted challenge: the reply key is the client's
    /// long-term key `material`.
    LongTerm {
        material: &'a KeyMaterial,
        challenge: bool,
    },
    /// OTP (RFC 6560 §3.3): the reply key is the armor key.
    ArmorKey,
}

/// Checks the client's pre-authentication. What is accepted depends on FAST and MFA:
/// - an MFA client (per `OtpCheck::required`) must use FAST and send PA-OTP-REQUEST with its
///   password and a code (joined in the otp-value, or the password as otp-pin); without FAST it is told only that FAST exists (PREAUTH_REQUIRED
///   with PA-FX-FAST alone), so no password-only method is ever offered or accepted;
/// - otherwise, inside FAST, encrypted challenge (RFC 6113 §5.4.6; MIT clients do not send
///   encrypted timestamp under FAST) or encrypted timestamp; without FAST, encrypted timestamp.
async fn preauthenticate<'a>(
    kdc: &KdcState,
    padata: &[PaData],
    body: &KdcReqBody,
    client: &'a PrincipalRecord,
    armor: Option<&fast::Armor>,
    now: SystemTime,
    rng: &mut (impl RngCore + CryptoRng + Send),
) -> Result<Preauth<'a>, KdcError> {
    let find = |t: i32| padata.iter().find(|p| p.r#type == t);
    let etypes: Vec<i32> = body
        .etype
        .iter()
        .copied()
        .filter(|&e| crypto::is_supported(e) && crypto::key_for(&client.keys, e).is_some())
        .collect();
    if let Some(otp_config) = &kdc.otp {
        let required = match otp_config.checker.required(client).await {
            Ok(required) => required,
            Err(e) => {
                tracing::warn!(target: "kdc", error = %e, principal = %client.canonical,
                    "MFA policy could not be evaluated; requiring a one-time code");
                true
            }
        };
        if required {
            let Some(armor) = armor else {
                return Err(KdcError::PreauthRequired(codec::encode(&vec![
                    fast::advertisement(),
                ])?));
            };
            let Some(pa) = find(PA_OTP_REQUEST) else {
                return Err(KdcError::PreauthRequired(codec::encode(&vec![
                    etype_info2(client, &etypes)?,
                    otp::challenge(client, now, rng)?,
                ])?));
            };
            let request = otp::parse_request(armor, &pa.value, now, kdc.config.max_skew)?;
            // The password and the code: apart (otp-pin) or joined in the otp-value.
            let (password, code) = match &request.pin {
                Some(pin) => (pin.as_str(), request.value.as_str()),
                None => otp_config
                    .checker
                    .split_combined(&request.value, otp_config.otp_length)
                    .ok_or_else(|| {
                        tracing::info!(target: "kdc", principal = %client.canonical,
                            "OTP pre-authentication refused: the value does not end in a code");
                        KdcError::PreauthFailed
                    })?,
            };
            // The password first: a wrong one never reaches RADIUS (and counts to lockout).
            if !otp::pin_matches(client, zeroize::Zeroizing::new(password.to_owned())).await? {
                tracing::info!(target: "kdc", principal = %client.canonical,
                    "OTP pre-authentication refused: wrong password (PIN)");
                return Err(KdcError::PreauthFailed);
            }
            return match otp_config.checker.check(otp::user_name(client), code).await {
                Ok(()) => Ok(Preauth::ArmorKey),
                // Fail closed, but a RADIUS outage is not the user's failure: no lockout count.
                Err(otp::OtpFailure::Unavailable(reason)) => Err(KdcError::Internal(format!(
                    "second factor could not be checked: {reason}"
                ))),
                Err(e) => {
                    tracing::info!(target: "kdc", principal = %client.canonical, error = %e,
                        "OTP pre-authentication refused: second factor");
                    Err(KdcError::PreauthFailed)
                }
            };
        }
    }
    if let Some(armor) = armor {
        if let Some(pa) = find(PA_ENCRYPTED_CHALLENGE) {
            let material = fast::verify_encrypted_challenge(
                armor,
                &pa.value,
                client,
                now,
                kdc.config.max_skew,
            )?;
            return Ok(Preauth::LongTerm {
                material,
                challenge: true,
            });
        }
    }
    if let Some(pa) = find(PA_ENC_TIMESTAMP) {
        let material = verify_timestamp(&pa.value, client, now, kdc.config.max_skew)?;
        return Ok(Preauth::LongTerm {
            material,
            challenge: false,
        });
    }
    Err(KdcError::PreauthRequired(method_data(
        client,
        &etypes,
        armor.is_some(),
    )?))
}

/// METHOD-DATA for KDC_ERR_PREAUTH_REQUIRED: PA-ETYPE-INFO2 (salt per enctype, client order)
/// and the methods offered: without FAST an empty PA-ENC-TIMESTAMP and PA-FX-FAST (RFC 6113
/// §5.4.1: MIT `kinit -T` only armors once the KDC advertised it); inside FAST an empty
/// PA-ENCRYPTED-CHALLENGE.
fn method_data(
    client: &PrincipalRecord,
    etypes: &[i32],
    inside_fast: bool,
) -> Result<Vec<u8>, KdcError> {
    let method = if inside_fast {
        PA_ENCRYPTED_CHALLENGE
    } else {
        PA_ENC_TIMESTAMP
    };
    let mut method_data = vec![
        etype_info2(client, etypes)?,
        PaData {
            r#type: method,
            value: Vec::new().into(),
        },
    ];
    if !inside_fast {
        method_data.push(fast::advertisement());
    }
    codec::encode(&method_data)
}

/// A PA-ETYPE-INFO2 padata for `etypes` with the client's salt (default iteration counts, so no
/// s2kparams).
fn etype_info2(client: &PrincipalRecord, etypes: &[i32]) -> Result<PaData, KdcError> {
    let salt = codec::kerberos_string(&client.salt);
    let entries: Vec<EtypeInfo2Entry> = etypes
        .iter()
        .map(|&etype| EtypeInfo2Entry {
            etype,
            salt: salt.clone(),
            s2kparams: None,
        })
        .collect();
    Ok(PaData {
        r#type: PA_ETYPE_INFO2,
        value: codec::encode(&entries)?.into(),
    })
}

/// The PAC of a ticket issued in the AS exchange (MS-PAC): built from the directory's view of
/// the client, signed with the service's key and the krbtgt key; a TGT gets no ticket or full
/// signature.
async fn pac_plan(
    kdc: &KdcState,
    client: &PrincipalRecord,
    service: &PrincipalRecord,
    cname: &rasn_kerberos::PrincipalName,
    sname: &rasn_kerberos::PrincipalName,
    now: SystemTime,
) -> Result<super::pac::PacPlan, KdcError> {
    let identity = kdc
        .db
        .account_identity(&client.canonical)
        .await
        .map_err(|e| KdcError::Database(e.0))?;
    let tgs = super::ticket::is_tgs(sname);
    let krbtgt_name = crate::model::principal::PrincipalName::krbtgt(&kdc.config.realm);
    let krbtgt = if tgs {
        service.clone()
    } else {
        kdc.lookup(&krbtgt_name)
            .await?
            .ok_or_else(|| KdcError::Internal("no krbtgt principal".into()))?
    };
    let kdc_key =
        crypto::key(crypto::ticket_key(&krbtgt.keys).ok_or(KdcError::EtypeNotSupported)?)?;
    Ok(super::pac::PacPlan {
        buffers: super::pac::data_buffers(
            identity.as_ref(),
            &super::ticket::pac_client_name(cname),
            &kdc.config.realm,
            now,
        ),
        kdc_key,
        service_ticket: !tgs,
    })
}
