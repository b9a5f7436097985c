//! The AS exchange (RFC 4120 §3.1): pre-authentication with PA-ENC-TIMESTAMP, enctype
//! negotiation, TGT (or initial service ticket) issuance.
//!
//! Owns: AS-REQ validation and AS-REP construction. May import: `model`, `rasn-kerberos`,
//! siblings. Takes `now` and an RNG; reads no clock. FAST is deliberately not advertised, so MIT
//! clients send plain TGS-REQs afterwards.

use std::time::SystemTime;

use rand::{CryptoRng, RngCore};
use rasn_kerberos::{AsRep, AsReq, EncAsRepPart, EtypeInfo2Entry, KdcRep, PaData, PaEncTsEnc};

use super::codec::{self, kdc_options as opt, ticket_flags as tf};
use super::crypto::{self, usage};
use super::db::PrincipalRecord;
use super::error::KdcError;
use super::ticket::{earliest, requested_limit, Issue};
use super::KdcState;
use crate::model::principal::name_type;

/// Longest life of a `kadmin/changepw` ticket (issue 9 item 7; MIT and AD use 5 minutes).
pub const CHANGEPW_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);

/// PA-ENC-TIMESTAMP (RFC 4120 §5.2.7.2).
pub const PA_ENC_TIMESTAMP: i32 = 2;
/// PA-ETYPE-INFO2 (RFC 4120 §5.2.7.5).
pub const PA_ETYPE_INFO2: i32 = 19;

/// Serves one AS-REQ; returns the DER AS-REP.
pub(super) async fn handle(
    kdc: &KdcState,
    req: &AsReq,
    now: SystemTime,
    rng: &mut (impl RngCore + CryptoRng + Send),
) -> Result<Vec<u8>, KdcError> {
    let req = &req.0;
    super::check_header(&req.pvno, &req.msg_type, 10)?;
    let body = &req.req_body;
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
    let padata = req.padata.as_deref().unwrap_or_default();
    let Some(timestamp) = padata.iter().find(|p| p.r#type == PA_ENC_TIMESTAMP) else {
        return Err(KdcError::PreauthRequired(method_data(
            &client,
            &body.etype,
        )?));
    };
    let reply_key_material =
        match verify_timestamp(&timestamp.value, &client, now, kdc.config.max_skew) {
            Ok(material) => material,
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
    let reply_key = crypto::key(reply_key_material)?;

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
    };
    let ticket = issue.ticket(service_key)?;
    let enc_part = codec::encode(&EncAsRepPart(issue.rep_part(body.nonce, now)))?;
    let enc_part = crypto::encrypt(
        &reply_key,
        usage::AS_REP_ENC_PART,
        &enc_part,
        Some(reply_key_material.kvno),
    )?;

    let rep = AsRep(KdcRep {
        pvno: 5.into(),
        msg_type: 11.into(),
        padata: Some(vec![etype_info2(&client, &[reply_key_material.enctype])?]),
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

/// METHOD-DATA for KDC_ERR_PREAUTH_REQUIRED: PA-ETYPE-INFO2 (salt per enctype, client order)
/// and an empty PA-ENC-TIMESTAMP. No PA-FX-FAST: we do not offer FAST.
fn method_data(client: &PrincipalRecord, client_etypes: &[i32]) -> Result<Vec<u8>, KdcError> {
    let etypes: Vec<i32> = client_etypes
        .iter()
        .copied()
        .filter(|&e| crypto::is_supported(e) && crypto::key_for(&client.keys, e).is_some())
        .collect();
    let method_data = vec![
        etype_info2(client, &etypes)?,
        PaData {
            r#type: PA_ENC_TIMESTAMP,
            value: Vec::new().into(),
        },
    ];
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
