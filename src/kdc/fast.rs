//! Kerberos FAST (RFC 6113): the armor key, unwrapping armored AS and TGS requests, armored
//! replies and errors, and the encrypted challenge (PA-ENCRYPTED-CHALLENGE).
//!
//! Owns: what the FAST fields mean (the wire types live in `fast_types`). May import: `model`,
//! `rasn-kerberos`, `krb5::Key`, siblings. Takes `now`; reads no clock.
//!
//! Key derivations (RFC 6113 §5.1 KRB-FX-CF2, built on the RFC 3961 PRF of RFC 3962 §6 /
//! RFC 8009 §5, `krb5::Key::cf2`, which the `krb5` crate checks against MIT's t_cf2 vectors):
//! - armor key, AP-REQ armor (§5.4.1.1): CF2(armor subkey, "subkeyarmor", ticket session key,
//!   "ticketarmor"); for a TGS request the authenticator subkey and TGT session key of the
//!   PA-TGS-REQ take those roles;
//! - reply key strengthening (§5.4.3): CF2(strengthen-key, "strengthenkey", reply key,
//!   "replykey");
//! - encrypted challenge (§5.4.6): CF2(armor key, "clientchallengearmor" / "kdcchallengearmor",
//!   client long-term key, "challengelongterm").

use std::time::SystemTime;

use krb5::Key;
use rand::{CryptoRng, RngCore};
use rasn_kerberos::{
    ApReq, EncryptedData, KdcReqBody, KrbError, PaData, PaEncTsEnc, PrincipalName as WireName,
    Ticket,
};

use super::codec;
use super::crypto::{self, usage as krb_usage};
use super::db::PrincipalRecord;
use super::error::KdcError;
use super::fast_types::{
    usage, KrbFastArmoredRep, KrbFastFinished, KrbFastReq, KrbFastResponse, PaFxFastReply,
    PaFxFastRequest, ARMOR_AP_REQUEST, PA_ENCRYPTED_CHALLENGE, PA_FX_COOKIE, PA_FX_ERROR,
    PA_FX_FAST,
};
use super::tgs_req::{verify_ap_req, VerifiedApReq};
use super::KdcState;
use crate::model::principal::{KeyMaterial, PrincipalName};

/// The armor of one FAST request: everything needed to answer inside the tunnel.
#[derive(Clone, Debug)]
pub(super) struct Armor {
    /// The armor key (RFC 6113 §5.4.1.1).
    pub key: Key,
    /// The nonce of the inner request body, echoed in KrbFastResponse.
    pub nonce: u32,
}

/// An unwrapped FAST request: the armor and the inner KrbFastReq, whose padata and req-body
/// replace the outer ones (RFC 6113 §5.4.2).
pub(super) struct FastRequest {
    pub armor: Armor,
    pub padata: Vec<PaData>,
    pub body: KdcReqBody,
}

/// The PA-FX-FAST padata of a request, if any.
fn fast_padata(padata: &[PaData]) -> Option<&PaData> {
    padata.iter().find(|p| p.r#type == PA_FX_FAST)
}

/// AS-REQ: if the request carries PA-FX-FAST, checks the AP-REQ armor (a TGT of this realm
/// with a subkey), the req-checksum over the outer KDC-REQ-BODY as received, and decrypts the
/// inner request. `None` for an unarmored request.
pub(super) async fn unwrap_as(
    kdc: &KdcState,
    padata: &[PaData],
    raw_body: &[u8],
    now: SystemTime,
) -> Result<Option<FastRequest>, KdcError> {
    let Some(pa) = fast_padata(padata) else {
        return Ok(None);
    };
    let armored: PaFxFastRequest = codec::decode(&pa.value, "PA-FX-FAST")?;
    let armored = armored.0;
    // RFC 6113 §5.4.2: an AS request must carry armor; only AP-REQ armor is defined.
    let armor = armored
        .armor
        .as_ref()
        .ok_or(KdcError::Malformed("FAST AS-REQ without armor"))?;
    if armor.armor_type != ARMOR_AP_REQUEST {
        return Err(KdcError::Malformed("unknown FAST armor type"));
    }
    let ap_req: ApReq = codec::decode(&armor.armor_value, "FAST armor AP-REQ")?;
    let krbtgt = kdc
        .lookup(&PrincipalName::krbtgt(&kdc.config.realm))
        .await?
        .ok_or_else(|| KdcError::Internal("no krbtgt principal".into()))?;
    // The armor ticket is a TGT of this realm (§5.4.1.1), its authenticator uses the AP-REQ
    // usage (11) and must carry a subkey.
    let ap = verify_ap_req(kdc, &ap_req, &krbtgt, krb_usage::AP_REQ_AUTHENTICATOR, now)?;
    let key = armor_key(&ap)?;
    crypto::verify_checksum(
        &key,
        usage::FAST_REQ_CHKSUM,
        raw_body,
        &armored.req_checksum,
    )?;
    open(key, &armored.enc_fast_req).map(Some)
}

/// TGS-REQ: if the request carries PA-FX-FAST, derives the armor key from the PA-TGS-REQ
/// (armor field absent, §5.4.1.1), checks the req-checksum over the PA-TGS-REQ AP-REQ as
/// received and decrypts the inner request.
pub(super) fn unwrap_tgs(
    padata: &[PaData],
    ap: &VerifiedApReq,
    raw_ap_req: &[u8],
) -> Result<Option<FastRequest>, KdcError> {
    let Some(pa) = fast_padata(padata) else {
        return Ok(None);
    };
    let armored: PaFxFastRequest = codec::decode(&pa.value, "PA-FX-FAST")?;
    let armored = armored.0;
    if armored.armor.is_some() {
        // §5.4.1.1: "the armor field MUST be absent" in a TGS request.
        return Err(KdcError::Malformed("armor in a FAST TGS-REQ"));
    }
    let key = armor_key(ap)?;
    crypto::verify_checksum(
        &key,
        usage::FAST_REQ_CHKSUM,
        raw_ap_req,
        &armored.req_checksum,
    )?;
    open(key, &armored.enc_fast_req).map(Some)
}

/// CF2(subkey, "subkeyarmor", ticket session key, "ticketarmor"); the subkey is mandatory.
fn armor_key(ap: &VerifiedApReq) -> Result<Key, KdcError> {
    let subkey = ap
        .authenticator
        .subkey
        .as_ref()
        .ok_or(KdcError::Malformed("FAST armor without a subkey"))?;
    let subkey = crypto::wire_key(subkey)?;
    cf2(&subkey, "subkeyarmor", &ap.session_key, "ticketarmor")
}

/// KRB-FX-CF2 (RFC 6113 §5.1).
pub(super) fn cf2(k1: &Key, pepper1: &str, k2: &Key, pepper2: &str) -> Result<Key, KdcError> {
    Key::cf2(k1, pepper1, k2, pepper2).map_err(|e| KdcError::Internal(format!("KRB-FX-CF2: {e}")))
}

/// Decrypts enc-fast-req (usage 51) into the inner request.
fn open(key: Key, enc: &EncryptedData) -> Result<FastRequest, KdcError> {
    let plain = crypto::decrypt(&key, usage::FAST_ENC, enc)?;
    let inner: KrbFastReq = codec::decode(&plain, "KrbFastReq")?;
    Ok(FastRequest {
        armor: Armor {
            key,
            nonce: inner.req_body.nonce,
        },
        padata: inner.padata,
        body: inner.req_body,
    })
}

/// A successful reply's FAST part: the PA-FX-FAST padata to put in the KDC-REP (the caller
/// encrypts the enc-part with the reply key, strengthened by `strengthen` in AS replies).
pub(super) struct ArmoredReply {
    pub padata: PaData,
}

/// A fresh strengthen-key of the reply key's enctype and the strengthened reply key.
pub(super) fn strengthen(
    reply_key: &Key,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(Key, Key), KdcError> {
    let strengthen_key = crypto::session_key(reply_key.enctype(), rng)?;
    let strengthened = cf2(&strengthen_key, "strengthenkey", reply_key, "replykey")?;
    Ok((strengthen_key, strengthened))
}

/// Builds the PA-FX-FAST of a successful AS or TGS reply (§5.4.3): KrbFastResponse with the
/// inner padata, the strengthen-key if any, and KrbFastFinished whose ticket-checksum (usage
/// 53) binds the ticket to the armor.
pub(super) fn armored_reply(
    armor: &Armor,
    padata: Vec<PaData>,
    strengthen_key: Option<&Key>,
    crealm: &rasn_kerberos::Realm,
    cname: &WireName,
    ticket: &Ticket,
    now: SystemTime,
) -> Result<ArmoredReply, KdcError> {
    let (timestamp, usec) = codec::kerberos_time_usec(now);
    let ticket_checksum =
        crypto::checksum(&armor.key, usage::FAST_FINISHED, &codec::encode(ticket)?)?;
    let response = KrbFastResponse {
        padata,
        strengthen_key: strengthen_key.map(crypto::encryption_key),
        finished: Some(KrbFastFinished {
            timestamp,
            usec,
            crealm: crealm.clone(),
            cname: cname.clone(),
            ticket_checksum,
        }),
        nonce: armor.nonce,
    };
    Ok(ArmoredReply {
        padata: seal(armor, &response)?,
    })
}

/// Encrypts a KrbFastResponse (usage 52) into a PA-FX-FAST padata.
fn seal(armor: &Armor, response: &KrbFastResponse) -> Result<PaData, KdcError> {
    let enc_fast_rep =
        crypto::encrypt(&armor.key, usage::FAST_REP, &codec::encode(response)?, None)?;
    Ok(PaData {
        r#type: PA_FX_FAST,
        value: codec::encode(&PaFxFastReply(KrbFastArmoredRep { enc_fast_rep }))?.into(),
    })
}

/// RFC 6113 §5.4.4: an error inside FAST. The inner KRB-ERROR (without e-data) travels in
/// PA-FX-ERROR inside the encrypted KrbFastResponse, followed by the padata the error carried
/// (e.g. the METHOD-DATA of PREAUTH_REQUIRED); the outer KRB-ERROR keeps code and names and
/// carries only the PA-FX-FAST as its e-data.
pub(super) fn armored_error(
    armor: &Armor,
    mut error: KrbError,
    method_data: Option<&[u8]>,
) -> Result<Vec<u8>, KdcError> {
    error.e_data = None;
    let mut padata = vec![PaData {
        r#type: PA_FX_ERROR,
        value: codec::encode(&error)?.into(),
    }];
    if let Some(method_data) = method_data {
        let entries: Vec<PaData> = codec::decode(method_data, "METHOD-DATA")?;
        padata.extend(entries);
        // RFC 6113 §5.2: the client echoes PA-FX-COOKIE in its next request; MIT clients only
        // retry an error inside FAST when one is present. dird keeps no state in it.
        padata.push(PaData {
            r#type: PA_FX_COOKIE,
            value: b"dird".to_vec().into(),
        });
    }
    let response = KrbFastResponse {
        padata,
        strengthen_key: None,
        finished: None,
        nonce: armor.nonce,
    };
    let outer = vec![seal(armor, &response)?];
    error.e_data = Some(codec::encode(&outer)?.into());
    codec::encode(&error)
}

/// RFC 6113 §5.4.6: checks the client's PA-ENCRYPTED-CHALLENGE (a PA-ENC-TS-ENC under
/// CF2(armor key, "clientchallengearmor", client key, "challengelongterm"), usage 54).
/// Returns the client key it used.
pub(super) fn verify_encrypted_challenge<'a>(
    armor: &Armor,
    value: &[u8],
    client: &'a PrincipalRecord,
    now: SystemTime,
    max_skew: std::time::Duration,
) -> Result<&'a KeyMaterial, KdcError> {
    let enc: EncryptedData =
        codec::decode(value, "PA-ENCRYPTED-CHALLENGE").map_err(|_| KdcError::PreauthFailed)?;
    let material = crypto::key_for(&client.keys, enc.etype).ok_or(KdcError::PreauthFailed)?;
    let long_term = crypto::key(material)?;
    let challenge_key = cf2(
        &armor.key,
        "clientchallengearmor",
        &long_term,
        "challengelongterm",
    )?;
    let plain = crypto::decrypt(&challenge_key, usage::ENC_CHALLENGE_CLIENT, &enc)
        .map_err(|_| KdcError::PreauthFailed)?;
    let ts: PaEncTsEnc =
        codec::decode(&plain, "PA-ENC-TS-ENC").map_err(|_| KdcError::PreauthFailed)?;
    if codec::distance(codec::system_time(&ts.patimestamp), now) > max_skew {
        return Err(KdcError::Skew);
    }
    Ok(material)
}

/// The KDC's PA-ENCRYPTED-CHALLENGE for the reply: its own timestamp under
/// CF2(armor key, "kdcchallengearmor", client key, "challengelongterm"), usage 55.
pub(super) fn kdc_challenge(
    armor: &Armor,
    client_key: &KeyMaterial,
    now: SystemTime,
) -> Result<PaData, KdcError> {
    let long_term = crypto::key(client_key)?;
    let challenge_key = cf2(
        &armor.key,
        "kdcchallengearmor",
        &long_term,
        "challengelongterm",
    )?;
    let (patimestamp, pausec) = codec::kerberos_time_usec(now);
    let ts = codec::encode(&PaEncTsEnc {
        patimestamp,
        pausec: Some(pausec.into()),
    })?;
    let enc = crypto::encrypt(&challenge_key, usage::ENC_CHALLENGE_KDC, &ts, None)?;
    Ok(PaData {
        r#type: PA_ENCRYPTED_CHALLENGE,
        value: codec::encode(&enc)?.into(),
    })
}

/// An empty PA-FX-FAST, advertised in PREAUTH_REQUIRED (RFC 6113 §5.4.1: "the KDC MUST
/// include PA-FX-FAST" in the METHOD-DATA so that clients know FAST is available).
pub(super) fn advertisement() -> PaData {
    PaData {
        r#type: PA_FX_FAST,
        value: Vec::new().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(etype: i32, byte: u8) -> Key {
        let len = if etype == 17 || etype == 19 { 16 } else { 32 };
        Key::new(etype, vec![byte; len]).unwrap()
    }

    #[test]
    fn cf2_is_prf_plus_xor_and_depends_on_both_keys() {
        for etype in [17, 18, 19, 20] {
            let (k1, k2) = (key(etype, 1), key(etype, 2));
            let a = cf2(&k1, "subkeyarmor", &k2, "ticketarmor").unwrap();
            let n = k1.bytes().len();
            let p1 = k1.prf_plus(b"subkeyarmor", n).unwrap();
            let p2 = k2.prf_plus(b"ticketarmor", n).unwrap();
            let xor: Vec<u8> = p1.iter().zip(&p2).map(|(x, y)| x ^ y).collect();
            assert_eq!(a.bytes(), &xor[..]);
            assert_eq!(a.enctype(), etype);
            assert_ne!(
                a.bytes(),
                cf2(&k1, "subkeyarmor", &key(etype, 3), "ticketarmor")
                    .unwrap()
                    .bytes()
            );
        }
    }

    /// RFC 3962 §6 / RFC 8009 §5 PRF outputs are 16 octets for the SHA-1 enctypes (AES of
    /// the truncated SHA-1), and 32 / 48 octets for aes128-sha256 / aes256-sha384.
    #[test]
    fn prf_output_sizes_follow_the_rfcs() {
        assert_eq!(key(17, 1).prf(b"x").unwrap().len(), 16);
        assert_eq!(key(18, 1).prf(b"x").unwrap().len(), 16);
        assert_eq!(key(19, 1).prf(b"x").unwrap().len(), 32);
        assert_eq!(key(20, 1).prf(b"x").unwrap().len(), 48);
    }

    /// RFC 8009 Appendix A "Sample results for PRF" vectors.
    #[test]
    fn prf_matches_rfc8009_vectors() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let k19 = Key::new(19, hex("3705D96080C17728A0E800EAB6E0D23C")).unwrap();
        assert_eq!(
            k19.prf(b"test").unwrap(),
            hex("9D188616F63852FE86915BB840B4A886FF3E6BB0F819B49B893393D393854295")
        );
        let k20 = Key::new(
            20,
            hex("6D404D37FAF79F9DF0D33568D320669800EB4836472EA8A026D16B7182460C52"),
        )
        .unwrap();
        assert_eq!(
            k20.prf(b"test").unwrap(),
            hex("9801F69A368C2BF675E59521E177D9A07F67EFE1CFDE8D3C8D6F6A0256E3B17DB3C1B62AD1B8553360D17367EB1514D2")
        );
    }

    #[test]
    fn armored_error_round_trips_inside_the_armor() {
        let armor = Armor {
            key: key(18, 7),
            nonce: 42,
        };
        let err = super::super::error::krb_error_message(
            &KdcError::PreauthFailed,
            "EXAMPLE.COM",
            &Default::default(),
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
        );
        let bytes = armored_error(&armor, err, None).unwrap();
        let outer: KrbError = rasn::der::decode(&bytes).unwrap();
        assert_eq!(outer.error_code, 24);
        let pa: Vec<PaData> = rasn::der::decode(outer.e_data.as_ref().unwrap()).unwrap();
        assert_eq!(pa[0].r#type, PA_FX_FAST);
        let rep: PaFxFastReply = rasn::der::decode(&pa[0].value).unwrap();
        let plain = armor
            .key
            .decrypt(usage::FAST_REP, &rep.0.enc_fast_rep.cipher)
            .unwrap();
        let response: KrbFastResponse = rasn::der::decode(&plain).unwrap();
        assert_eq!(response.nonce, 42);
        assert_eq!(response.padata[0].r#type, PA_FX_ERROR);
        let inner: KrbError = rasn::der::decode(&response.padata[0].value).unwrap();
        assert_eq!(inner.error_code, 24);
    }
}
