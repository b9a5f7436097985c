//! The TGS exchange (RFC 4120 §3.3): TGT and authenticator verification, replay detection,
//! service tickets for SPNs, renewal, forwardable/forwarded handling.
//!
//! Owns: TGS-REQ validation and TGS-REP construction (armored with FAST when the client asks,
//! RFC 6113), plus `verify_ap_req`, the AP-REQ check shared with kpasswd and FAST armor. May import: `model`, `rasn-kerberos`, siblings. Takes `now` and an RNG.
//! Not supported (answered with KDC_ERR_BADOPTION): user-to-user (ENC-TKT-IN-SKEY), VALIDATE,
//! PROXY. Cross-realm TGTs and referral TGTs follow the configured trusts (`cross_realm`).

use std::time::{Duration, SystemTime};

use krb5::Key;
use rand::{CryptoRng, RngCore};
use rasn_kerberos::{ApReq, Authenticator, EncTgsRepPart, EncTicketPart, KdcRep, TgsRep, TgsReq};

use super::codec::{self, kdc_options as opt, ticket_flags as tf};
use super::crypto::{self, usage};
use super::db::PrincipalRecord;
use super::error::KdcError;
use super::fast;
use super::replay::ReplayKey;
use super::ticket::{earliest, requested_limit, Issue};
use super::{KdcState, Reply};
use crate::model::principal::PrincipalName;

/// PA-TGS-REQ (RFC 4120 §5.2.7.1).
pub const PA_TGS_REQ: i32 = 1;

/// A verified AP-REQ: the decrypted ticket and authenticator (RFC 4120 §3.2.3).
pub(super) struct VerifiedApReq {
    pub ticket: EncTicketPart,
    pub authenticator: Authenticator,
    pub session_key: Key,
    pub replay_key: ReplayKey,
}

/// Serves one TGS-REQ; `raw_body` is the KDC-REQ-BODY exactly as received.
pub(super) async fn handle(
    kdc: &KdcState,
    req: &TgsReq,
    raw_body: &[u8],
    now: SystemTime,
    rng: &mut (impl RngCore + CryptoRng + Send),
    armor_out: &mut Option<fast::Armor>,
) -> Result<Reply, KdcError> {
    let req = &req.0;
    super::check_header(&req.pvno, &req.msg_type, 12)?;
    let body = &req.req_body;
    kdc.check_realm(&body.realm)?;
    let padata = req.padata.as_deref().unwrap_or_default();
    let pa = padata
        .iter()
        .find(|p| p.r#type == PA_TGS_REQ)
        .ok_or(KdcError::Malformed("no PA-TGS-REQ"))?;
    let ap_req: ApReq = codec::decode(&pa.value, "AP-REQ")?;
    let cross = super::cross_realm::incoming(kdc, &ap_req)?;

    let krbtgt_name = PrincipalName::krbtgt(&kdc.config.realm);
    let krbtgt = kdc
        .lookup(&krbtgt_name)
        .await?
        .ok_or_else(|| KdcError::Internal("no krbtgt principal".into()))?;
    let ap = match cross {
        None => verify_ap_req(kdc, &ap_req, &krbtgt, usage::TGS_REQ_AUTHENTICATOR, now)?,
        Some(trust) => {
            super::cross_realm::verify(kdc, trust, &ap_req, usage::TGS_REQ_AUTHENTICATOR, now)
                .await?
        }
    };
    let tgt = &ap.ticket;

    // RFC 4120 §7.2.2 note / §5.5.1: the checksum covers the req-body bytes as sent.
    let cksum = ap
        .authenticator
        .cksum
        .as_ref()
        .ok_or(KdcError::InappropriateChecksum)?;
    crypto::verify_checksum(&ap.session_key, usage::TGS_REQ_AUTH_CKSUM, raw_body, cksum)?;
    // RFC 6113 §5.4.1.1: an armored TGS-REQ takes its armor key from this AP-REQ; the inner
    // req-body replaces the outer one.
    let fast_req = fast::unwrap_tgs(padata, &ap, &pa.value)?;
    *armor_out = fast_req.as_ref().map(|f| f.armor.clone());
    let body = fast_req.as_ref().map_or(body, |f| &f.body);
    let armor = fast_req.as_ref().map(|f| &f.armor);

    let admitted = match cross {
        Some(trust) => Some(super::cross_realm::admit(kdc, trust, tgt).await?),
        None => {
            // The client must still be allowed to get tickets (disabled or deleted after the TGT).
            let client_name = codec::principal_name(&tgt.cname, &tgt.crealm)?;
            let client = kdc
                .lookup(&client_name)
                .await?
                .ok_or(KdcError::ClientRevoked)?;
            super::check_account(&client, now)?;
            // ... and still be the account the TGT was issued to (not a new one given the old name).
            super::account_id::check(tgt, &client)?;
            None
        }
    };

    kdc.replay
        .check_and_insert(ap.replay_key.clone(), now)
        .await
        .map_err(super::replay_error)?;
    let result = issue(kdc, body, tgt, &ap, &krbtgt, admitted.as_ref(), now, rng)
        .await
        .and_then(|(mut rep, cross)| {
            // RFC 6113 §5.4.3: an armored reply binds the ticket to the armor
            // (KrbFastFinished); the reply key stays the subkey or session key (no
            // strengthen-key in TGS replies).
            if let Some(armor) = armor {
                let fast = fast::armored_reply(
                    armor,
                    Vec::new(),
                    None,
                    &rep.0.crealm,
                    &rep.0.cname,
                    &rep.0.ticket,
                    now,
                )?;
                rep.0.padata = Some(vec![fast.padata]);
            }
            Ok((codec::encode(&rep)?, cross))
        });
    if result.is_err() {
        // Nothing was issued: a corrected retry with the same authenticator is not a replay.
        kdc.replay.forget(&ap.replay_key).await;
    }
    let (bytes, cross) = result?;
    Ok(Reply {
        bytes,
        replay: Some(ap.replay_key),
        cross,
    })
}

#[allow(clippy::too_many_arguments)] // one TGS request's verified state
async fn issue(
    kdc: &KdcState,
    body: &rasn_kerberos::KdcReqBody,
    tgt: &EncTicketPart,
    ap: &VerifiedApReq,
    krbtgt: &PrincipalRecord,
    cross: Option<&super::cross_realm::Admitted>,
    now: SystemTime,
    rng: &mut (impl RngCore + CryptoRng + Send),
) -> Result<(TgsRep, Option<super::cross_realm::CrossRealmInfo>), KdcError> {
    let pac_buffers = tgt_pac(kdc, tgt, krbtgt, cross.map(|c| c.realm.as_str())).await?;
    let options = codec::bits_to_flags(&body.kdc_options.0);
    let tgt_flags = codec::bits_to_flags(&tgt.flags.0);
    if options
        & (opt::ENC_TKT_IN_SKEY | opt::VALIDATE | opt::PROXY | opt::POSTDATED | opt::ALLOW_POSTDATE)
        != 0
    {
        return Err(KdcError::BadOption("unsupported KDC option"));
    }
    let tgt_end = codec::system_time(&tgt.end_time);
    let tgt_renew_till = tgt.renew_till.as_ref().map(codec::system_time);
    let realm =
        codec::kerberos_string(&kdc.config.realm).ok_or(KdcError::Internal("realm".into()))?;

    let (sname, service, flags, end, renew_till, caddr, session_etype);
    let mut cross_info = cross.map(|c| c.info.clone());
    if options & opt::RENEW != 0 && cross.is_some() {
        return Err(KdcError::BadOption(
            "a cross-realm TGT is renewed by the realm that issued it",
        ));
    }
    if options & opt::RENEW != 0 {
        // RFC 4120 §3.3.3.1: a renewable ticket is renewed until its renew-till.
        let renew_limit = tgt_renew_till.ok_or(KdcError::BadOption("ticket is not renewable"))?;
        if tgt_flags & tf::RENEWABLE == 0 {
            return Err(KdcError::BadOption("ticket is not renewable"));
        }
        if now > renew_limit {
            return Err(KdcError::TicketExpired);
        }
        let old_start = tgt.start_time.as_ref().unwrap_or(&tgt.auth_time);
        let lifetime = tgt_end
            .duration_since(codec::system_time(old_start))
            .unwrap_or(Duration::ZERO);
        sname = ap_ticket_sname(kdc);
        service = krbtgt.clone();
        flags = tgt_flags & !tf::INITIAL;
        end = earliest(now + lifetime, Some(renew_limit));
        renew_till = Some(renew_limit);
        caddr = tgt.caddr.clone();
        session_etype = crypto::session_enctype(&body.etype, &service.keys);
    } else {
        let sname_wire = body
            .sname
            .as_ref()
            .ok_or(KdcError::Malformed("TGS-REQ without sname"))?;
        let name = codec::principal_name(sname_wire, &body.realm)?;
        let changepw = name.eq_ignore_case(
            &PrincipalName::kadmin_changepw(&kdc.config.realm).with_realm(&name.realm),
        );
        let client = codec::principal_name(&tgt.cname, &tgt.crealm)?.to_string();
        (service, sname) = match super::cross_realm::target(kdc, &name, &client, cross).await? {
            Some((record, info)) => {
                cross_info = Some(info);
                (record, sname_wire.clone())
            }
            None => match kdc.service(&name).await {
                // RFC 6806 §8: an unknown host in a trusted realm's domain gets a referral.
                Err(KdcError::ServerUnknown)
                    if cross.is_none() && options & opt::CANONICALIZE != 0 =>
                {
                    match super::cross_realm::referral(kdc, &name, &client).await? {
                        Some((krbtgt, record, info)) => {
                            cross_info = Some(info);
                            (record, codec::wire_name(&krbtgt))
                        }
                        None => return Err(KdcError::ServerUnknown),
                    }
                }
                other => (other?, sname_wire.clone()),
            },
        };
        let mut f = tgt_flags & tf::PRE_AUTHENT;
        if options & opt::FORWARDABLE != 0 && tgt_flags & tf::FORWARDABLE != 0 {
            f |= tf::FORWARDABLE;
        }
        if options & opt::PROXIABLE != 0 && tgt_flags & tf::PROXIABLE != 0 {
            f |= tf::PROXIABLE;
        }
        // RFC 4120 §2.6: FORWARDED needs a forwardable TGT; the new ticket gets the requested
        // addresses. Tickets derived from a forwarded TGT stay marked forwarded.
        if options & opt::FORWARDED != 0 {
            if tgt_flags & tf::FORWARDABLE == 0 {
                return Err(KdcError::BadOption("TGT is not forwardable"));
            }
            f |= tf::FORWARDED;
            caddr = body.addresses.clone();
        } else {
            caddr = tgt.caddr.clone();
        }
        if tgt_flags & tf::FORWARDED != 0 {
            f |= tf::FORWARDED;
        }
        let till = requested_limit(Some(&body.till));
        let mut limit_end = earliest(
            earliest(now + kdc.config.ticket_lifetime, till),
            Some(tgt_end),
        );
        // As in the AS exchange: a changepw ticket lives 5 minutes and is not renewable.
        if changepw {
            limit_end = earliest(limit_end, Some(now + super::as_req::CHANGEPW_LIFETIME));
        }
        end = limit_end;
        let wants_renewable = !changepw
            && (options & opt::RENEWABLE != 0
                || (options & opt::RENEWABLE_OK != 0 && till.is_none_or(|t| t > end)));
        renew_till = match (
            wants_renewable && tgt_flags & tf::RENEWABLE != 0,
            tgt_renew_till,
        ) {
            (true, Some(limit)) => {
                let wanted = if options & opt::RENEWABLE != 0 {
                    requested_limit(body.rtime.as_ref())
                } else {
                    till
                };
                Some(earliest(limit, wanted)).filter(|&r| r > end)
            }
            _ => None,
        };
        if renew_till.is_some() {
            f |= tf::RENEWABLE;
        }
        if cross.is_some() {
            f |= super::cross_realm::TRANSITED_POLICY_CHECKED;
        }
        flags = f;
        session_etype = crypto::session_enctype(&body.etype, &service.keys);
    }
    if end <= now {
        return Err(KdcError::TicketExpired);
    }
    let session_key = crypto::session_key(session_etype.ok_or(KdcError::EtypeNotSupported)?, rng)?;
    let service_key = crypto::ticket_key(&service.keys).ok_or(KdcError::EtypeNotSupported)?;
    // MS-PAC: the TGT's PAC, re-signed. A service ticket gets the ticket and full signatures
    // (krbtgt key); a TGT none; a referral TGT is signed with the inter-realm key (the only
    // key the other realm's KDC can check).
    let tgs = super::ticket::is_tgs(&sname);
    let referral = tgs
        && sname.string.get(1).is_some_and(|r| {
            !r.as_bytes()
                .eq_ignore_ascii_case(kdc.config.realm.as_bytes())
        });
    let kdc_key = if referral {
        service_key
    } else {
        crypto::ticket_key(&krbtgt.keys).ok_or(KdcError::EtypeNotSupported)?
    };
    let pac = super::pac::PacPlan {
        buffers: pac_buffers,
        kdc_key: crypto::key(kdc_key)?,
        service_ticket: !tgs,
    };

    let issue = Issue {
        cname: tgt.cname.clone(),
        crealm: tgt.crealm.clone(),
        sname,
        srealm: realm,
        flags,
        session_key: &session_key,
        auth_time: codec::system_time(&tgt.auth_time),
        start_time: now,
        end_time: end,
        renew_till,
        caddr,
        authorization_data: tgt.authorization_data.clone(),
        transited: cross.map(|c| c.transited.clone()),
        pac: Some(pac),
    };
    let ticket = issue.ticket(service_key)?;
    let enc_part = codec::encode(&EncTgsRepPart(issue.rep_part(body.nonce, now)))?;
    // RFC 4120 §5.4.2: with an authenticator subkey the reply uses it (usage 9).
    let enc_part = match &ap.authenticator.subkey {
        Some(subkey) => crypto::encrypt(
            &crypto::wire_key(subkey)?,
            usage::TGS_REP_SUBKEY,
            &enc_part,
            None,
        )?,
        None => crypto::encrypt(&ap.session_key, usage::TGS_REP_SESSION_KEY, &enc_part, None)?,
    };
    let rep = TgsRep(KdcRep {
        pvno: 5.into(),
        msg_type: 13.into(),
        padata: None,
        crealm: tgt.crealm.clone(),
        cname: tgt.cname.clone(),
        ticket,
        enc_part,
    });
    Ok((rep, cross_info))
}

/// The data buffers of the TGT's PAC after verifying its signatures (MS-PAC §2.8): with the
/// krbtgt keys for a TGT of this realm, which must carry a PAC; for a cross-realm TGT, the
/// server signature with the inbound inter-realm key (its KDC signature is the other realm's
/// krbtgt key's), if it has a PAC, and the new PAC is rebuilt with CLIENT_INFO and
/// UPN_DNS_INFO only (the other realm's SIDs are dropped).
async fn tgt_pac(
    kdc: &KdcState,
    tgt: &EncTicketPart,
    krbtgt: &PrincipalRecord,
    cross: Option<&str>,
) -> Result<Vec<(u32, Vec<u8>)>, KdcError> {
    let found = super::pac::find(tgt.authorization_data.as_ref())?;
    let keys = match cross {
        None => krbtgt.keys.clone(),
        Some(realm) => kdc
            .db
            .trust_key(realm, true)
            .await
            .map_err(|e| KdcError::Database(e.0))?
            .map(|r| r.keys)
            .unwrap_or_default(),
    };
    let keys: Vec<Key> = keys.iter().filter_map(|m| crypto::key(m).ok()).collect();
    if let Some(bytes) = &found {
        let pac = super::pac::Pac::decode(bytes).map_err(|e| {
            tracing::info!(target: "kdc", error = %e, "TGT PAC does not decode: refused");
            KdcError::Modified
        })?;
        let verified = match cross {
            None => pac.verify(&keys, &keys),
            Some(_) => pac.verify_server(&keys),
        };
        verified.inspect_err(|_| {
            tracing::info!(target: "kdc", "TGT PAC signature does not verify: refused");
        })?;
        if cross.is_none() {
            return Ok(pac.data_buffers());
        }
    } else if cross.is_none() {
        tracing::info!(target: "kdc", "TGT without a PAC: refused");
        return Err(KdcError::Modified);
    }
    // Cross-realm: no SID another realm asserts reaches this realm's services (no SID
    // filtering to get wrong): the PAC is rebuilt from the ticket, without LOGON_INFO.
    Ok(super::pac::data_buffers(
        None,
        &super::ticket::pac_client_name(&tgt.cname),
        &codec::realm_string(&tgt.crealm)?,
        codec::system_time(&tgt.auth_time),
    ))
}

fn ap_ticket_sname(kdc: &KdcState) -> rasn_kerberos::PrincipalName {
    codec::wire_name(&PrincipalName::krbtgt(&kdc.config.realm))
}

/// RFC 4120 §3.2.3: decrypts the ticket with the server's key and the authenticator with the
/// session key, checks names, ticket times and clock skew. The caller checks replay and any
/// checksum. `server` is the principal the ticket must be for.
pub(super) fn verify_ap_req(
    kdc: &KdcState,
    ap_req: &ApReq,
    server: &PrincipalRecord,
    authenticator_usage: u32,
    now: SystemTime,
) -> Result<VerifiedApReq, KdcError> {
    verify_ap_req_from(
        kdc,
        ap_req,
        server,
        &kdc.config.realm,
        authenticator_usage,
        now,
    )
}

/// `verify_ap_req` for a ticket issued by `issuer` (our realm, or a trusted realm for a
/// cross-realm TGT).
pub(super) fn verify_ap_req_from(
    kdc: &KdcState,
    ap_req: &ApReq,
    server: &PrincipalRecord,
    issuer: &str,
    authenticator_usage: u32,
    now: SystemTime,
) -> Result<VerifiedApReq, KdcError> {
    super::check_header(&ap_req.pvno, &ap_req.msg_type, 14)?;
    let ticket = &ap_req.ticket;
    let ticket_sname = codec::principal_name(&ticket.sname, &ticket.realm)?;
    if !ticket_sname
        .with_realm(&kdc.config.realm)
        .eq_ignore_case(&server.canonical.clone().with_realm(&kdc.config.realm))
        || !codec::realm_string(&ticket.realm)?.eq_ignore_ascii_case(issuer)
    {
        return Err(KdcError::NotUs);
    }
    let material =
        crypto::key_for_version(&server.keys, ticket.enc_part.etype, ticket.enc_part.kvno)
            .ok_or(KdcError::BadKeyVersion)?;
    let plain = crypto::decrypt(&crypto::key(material)?, usage::TICKET, &ticket.enc_part)?;
    let enc_ticket: EncTicketPart = codec::decode(&plain, "EncTicketPart")?;
    let session_key = crypto::wire_key(&enc_ticket.key)?;
    let plain = crypto::decrypt(&session_key, authenticator_usage, &ap_req.authenticator)?;
    let authenticator: Authenticator = codec::decode(&plain, "Authenticator")?;
    if authenticator.cname != enc_ticket.cname || authenticator.crealm != enc_ticket.crealm {
        return Err(KdcError::BadMatch);
    }
    let ctime = codec::system_time(&authenticator.ctime);
    if codec::distance(ctime, now) > kdc.config.max_skew {
        return Err(KdcError::Skew);
    }
    let start = codec::system_time(
        enc_ticket
            .start_time
            .as_ref()
            .unwrap_or(&enc_ticket.auth_time),
    );
    if start > now + kdc.config.max_skew {
        return Err(KdcError::TicketNotYetValid);
    }
    if now > codec::system_time(&enc_ticket.end_time) + kdc.config.max_skew {
        return Err(KdcError::TicketExpired);
    }
    let client = codec::principal_name(&enc_ticket.cname, &enc_ticket.crealm)?;
    let replay_key = ReplayKey {
        client: client.to_string(),
        server: server.canonical.joined(),
        ctime: ctime
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        cusec: u32::try_from(&authenticator.cusec).unwrap_or(u32::MAX),
    };
    Ok(VerifiedApReq {
        ticket: enc_ticket,
        authenticator,
        session_key,
        replay_key,
    })
}
