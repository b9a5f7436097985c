//! Cross-realm Kerberos (RFC 4120 §1.2, §3.3.3.2; RFC 6806 §8): the trust policy the KDC
//! applies to TGS requests that cross a realm boundary.
//!
//! Owns: `TrustPolicy`; inbound verification of a cross-realm TGT (`krbtgt/OURS@THEIRS`) with
//! the inter-realm key of its kvno, the client-realm and transited checks, selective
//! authentication; outbound referral TGTs (`krbtgt/THEIRS@OURS`) by realm or by host name
//! mapping; the refusal reasons audited for each. May import: `model`, `rasn-kerberos`,
//! siblings. The keys come from `PrincipalDb::trust_key`; group membership of foreign
//! principals from `PrincipalDb::foreign_member_of`.
//!
//! Transited encoding: DOMAIN-X500-COMPRESS (type 1) is read with its "ends with a dot"
//! abbreviation; X.500-style names and the empty element (all realms between) are refused.
//! The tickets dird issues list every realm transited in full (no abbreviation).

use std::time::SystemTime;

use rasn_kerberos::{ApReq, EncTicketPart, TransitedEncoding};

use super::codec;
use super::db::PrincipalRecord;
use super::error::KdcError;
use super::tgs_req::VerifiedApReq;
use super::KdcState;
use crate::model::principal::PrincipalName;

/// One configured trust, as the KDC applies it.
#[derive(Clone, Debug, Default)]
pub struct TrustPolicy {
    /// the trusted realm, upper case
    pub realm: String,
    /// its users may use our services
    pub inbound: bool,
    /// our users may use its services
    pub outbound: bool,
    /// selective authentication is on (only `allowed_*` are admitted)
    pub selective: bool,
    /// admitted principals, `bob@OTHER.COM`
    pub allowed_principals: Vec<String>,
    /// local groups (DNs) whose foreign-principal members are admitted
    pub allowed_groups: Vec<String>,
    /// further realms reachable through this trust (`[capaths]`-style)
    pub transited: Vec<String>,
    /// DNS domains whose hosts are in the trusted realm (`domain_realm`-style), lower case
    pub domains: Vec<String>,
}

/// RFC 4120 §5.3 TRANSITED-POLICY-CHECKED: this KDC checked the transited path.
pub(super) const TRANSITED_POLICY_CHECKED: u32 = 1 << (31 - 12);

const KDC_ERR_POLICY: i32 = 12;
const KDC_ERR_S_PRINCIPAL_UNKNOWN: i32 = 7;
const KDC_ERR_TRTYPE_NOSUPP: i32 = 17;
const KRB_AP_ERR_BAD_INTEGRITY: i32 = 31;
const KRB_AP_ERR_BADKEYVER: i32 = 44;

/// Who a cross-realm decision was about and why (audit identity, metrics labels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrossRealmInfo {
    /// the trusted realm
    pub realm: String,
    /// the client principal (empty when the TGT could not be read)
    pub client: String,
    /// why it was refused: `unknown kvno`, `wrong key`, `not allowed`, `direction`,
    /// `transited`, `policy`; `None` when issued
    pub reason: Option<&'static str>,
}

/// A cross-realm refusal (`KdcError::CrossRealm`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// the KRB-ERROR code sent
    pub code: i32,
    /// who and why
    pub info: CrossRealmInfo,
    /// the full reason, for the audit log
    pub text: String,
}

fn refuse(code: i32, why: &'static str, realm: &str, client: &str, text: String) -> KdcError {
    tracing::info!(target: "kdc", code, %text, "cross-realm request refused");
    KdcError::CrossRealm(Box::new(Refusal {
        code,
        info: CrossRealmInfo {
            realm: realm.to_owned(),
            client: client.to_owned(),
            reason: Some(why),
        },
        text,
    }))
}

/// What an admitted cross-realm request carries into the ticket issued.
pub(super) struct Admitted {
    /// for the audit event of the ticket issued
    pub info: CrossRealmInfo,
    /// the trusted realm the TGT came from
    pub realm: String,
    /// the client, `bob@OTHER.COM`
    pub client: String,
    /// the transited field of the new ticket
    pub transited: TransitedEncoding,
}

/// The trust the TGT of `ap_req` came through, if it was issued by another realm. `None`: a
/// TGT of our own realm (the ordinary path).
pub(super) fn incoming<'a>(
    kdc: &'a KdcState,
    ap_req: &ApReq,
) -> Result<Option<&'a TrustPolicy>, KdcError> {
    let issuer = codec::realm_string(&ap_req.ticket.realm)?;
    let own = &kdc.config.realm;
    if issuer.eq_ignore_ascii_case(own) {
        return Ok(None);
    }
    let sname = codec::principal_name(&ap_req.ticket.sname, &ap_req.ticket.realm)?;
    // Without trusts (standalone) a ticket of another realm is simply not ours.
    if kdc.config.trusts.is_empty() || !sname.is_krbtgt_for(own) {
        return Err(KdcError::NotUs);
    }
    let Some(trust) = kdc
        .config
        .trusts
        .iter()
        .find(|t| t.realm.eq_ignore_ascii_case(&issuer))
    else {
        return Err(refuse(
            KDC_ERR_POLICY,
            "policy",
            &issuer,
            "",
            format!("cross-realm TGT from {issuer}: no trust with that realm"),
        ));
    };
    if !trust.inbound {
        return Err(refuse(
            KDC_ERR_POLICY,
            "direction",
            &issuer,
            "",
            format!(
                "cross-realm TGT from {issuer}: the trust is outbound only, its users may not use this realm's services (direction)"
            ),
        ));
    }
    Ok(Some(trust))
}

/// Verifies the cross-realm TGT with the inbound inter-realm key of its kvno.
pub(super) async fn verify(
    kdc: &KdcState,
    trust: &TrustPolicy,
    ap_req: &ApReq,
    authenticator_usage: u32,
    now: SystemTime,
) -> Result<VerifiedApReq, KdcError> {
    let record = kdc
        .db
        .trust_key(&trust.realm, true)
        .await
        .map_err(|e| KdcError::Database(e.0))?
        .ok_or_else(|| {
            refuse(
                KDC_ERR_POLICY,
                "direction",
                &trust.realm,
                "",
                format!(
                    "cross-realm TGT from {}: no inbound inter-realm key (direction)",
                    trust.realm
                ),
            )
        })?;
    let kvno = ap_req.ticket.enc_part.kvno;
    let kvno_text = kvno.map_or_else(|| "none".to_owned(), |v| v.to_string());
    super::tgs_req::verify_ap_req_from(
        kdc,
        ap_req,
        &record,
        &trust.realm,
        authenticator_usage,
        now,
    )
    .map_err(|e| match e {
        KdcError::BadKeyVersion => refuse(
            KRB_AP_ERR_BADKEYVER,
            "unknown kvno",
            &trust.realm,
            "",
            format!(
                "cross-realm TGT from {} has kvno {kvno_text}, which is not a valid inter-realm key version here (unknown kvno; valid: {})",
                trust.realm,
                valid_kvnos(&record)
            ),
        ),
        KdcError::BadIntegrity => refuse(
            KRB_AP_ERR_BAD_INTEGRITY,
            "wrong key",
            &trust.realm,
            "",
            format!(
                "cross-realm TGT from {} does not decrypt with the inter-realm key kvno {kvno_text} (wrong key: the trust passwords of the two realms differ)",
                trust.realm
            ),
        ),
        other => other,
    })
}

fn valid_kvnos(record: &PrincipalRecord) -> String {
    let mut v: Vec<u32> = record.keys.iter().map(|k| k.kvno).collect();
    v.dedup();
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// RFC 4120 §3.3.3.2 and selective authentication: the client's realm must be reachable
/// through the trust, every realm transited must be one the trust accepts, and with
/// `allowed` the client must be listed (by name or through a local group).
pub(super) async fn admit(
    kdc: &KdcState,
    trust: &TrustPolicy,
    tgt: &EncTicketPart,
) -> Result<Admitted, KdcError> {
    let own = &kdc.config.realm;
    let crealm = codec::realm_string(&tgt.crealm)?;
    let cname = codec::principal_name(&tgt.cname, &tgt.crealm)?;
    let client = cname.to_string();
    let reachable = |r: &str| {
        r.eq_ignore_ascii_case(&trust.realm)
            || trust.transited.iter().any(|t| t.eq_ignore_ascii_case(r))
    };
    if crealm.eq_ignore_ascii_case(own) || !reachable(&crealm) {
        return Err(refuse(
            KDC_ERR_POLICY,
            "transited",
            &trust.realm,
            &client,
            format!(
                "cross-realm TGT from {} for {client}: realm {crealm} is not reachable through this trust (transited)",
                trust.realm
            ),
        ));
    }
    let mut path = decode_transited(&tgt.transited).map_err(|why| {
        refuse(
            KDC_ERR_TRTYPE_NOSUPP,
            "transited",
            &trust.realm,
            &client,
            format!(
                "cross-realm TGT from {} for {client}: transited field {why} (transited)",
                trust.realm
            ),
        )
    })?;
    if let Some(bad) = path
        .iter()
        .find(|r| r.eq_ignore_ascii_case(own) || !reachable(r))
    {
        return Err(refuse(
            KDC_ERR_POLICY,
            "transited",
            &trust.realm,
            &client,
            format!(
                "cross-realm TGT from {} for {client}: transited realm {bad} is not accepted by this trust (transited)",
                trust.realm
            ),
        ));
    }
    // The realm that issued the TGT is transited unless it is the client's own.
    if !trust.realm.eq_ignore_ascii_case(&crealm) {
        path.push(trust.realm.clone());
    }
    if trust.selective {
        let mut allowed = trust
            .allowed_principals
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&client));
        for group in &trust.allowed_groups {
            if allowed {
                break;
            }
            allowed = kdc
                .db
                .foreign_member_of(&client, group)
                .await
                .map_err(|e| KdcError::Database(e.0))?;
        }
        if !allowed {
            return Err(refuse(
                KDC_ERR_POLICY,
                "not allowed",
                &trust.realm,
                &client,
                format!(
                    "{client} is not allowed by the selective authentication of the trust with {} (not allowed)",
                    trust.realm
                ),
            ));
        }
    }
    Ok(Admitted {
        info: CrossRealmInfo {
            realm: trust.realm.clone(),
            client: client.clone(),
            reason: None,
        },
        realm: trust.realm.clone(),
        client,
        transited: TransitedEncoding {
            r#type: 1,
            contents: path.join(",").into_bytes().into(),
        },
    })
}

/// Reads a DOMAIN-X500-COMPRESS transited field into full realm names.
fn decode_transited(t: &TransitedEncoding) -> Result<Vec<String>, &'static str> {
    if t.contents.is_empty() {
        return Ok(Vec::new());
    }
    if t.r#type != 1 {
        return Err("has an unsupported encoding type");
    }
    let text = std::str::from_utf8(&t.contents).map_err(|_| "is not UTF-8")?;
    if text.len() > 1024 {
        return Err("is too long");
    }
    let mut out: Vec<String> = Vec::new();
    for element in text.split(',') {
        if element.is_empty() {
            return Err("uses the empty (all realms between) element");
        }
        if element.starts_with('/') || element.contains('\\') || element.contains('=') {
            return Err("uses X.500-style names");
        }
        // "A realm name ending with a dot is prefixed to the previous one" (§3.3.3.2).
        let full = match (element.strip_suffix('.'), out.last()) {
            (Some(prefix), Some(prev)) => format!("{prefix}.{prev}"),
            (Some(_), None) => return Err("starts with an abbreviated realm"),
            (None, _) => element.to_owned(),
        };
        out.push(full);
        if out.len() > 32 {
            return Err("names too many realms");
        }
    }
    Ok(out)
}

/// The target of a TGS request that crosses a realm boundary: a request for
/// `krbtgt/THEIRS` (a referral TGT, for our own clients only, over an outbound trust).
/// `Ok(None)`: not a cross-realm target (the ordinary service lookup applies).
pub(super) async fn target(
    kdc: &KdcState,
    name: &PrincipalName,
    client: &str,
    cross: Option<&Admitted>,
) -> Result<Option<(PrincipalRecord, CrossRealmInfo)>, KdcError> {
    let own = &kdc.config.realm;
    let is_krbtgt = name.components.len() == 2
        && name
            .components
            .first()
            .is_some_and(|c| c.eq_ignore_ascii_case("krbtgt"));
    if let Some(c) = cross {
        let changepw = name.components.len() == 2
            && name
                .components
                .first()
                .is_some_and(|c| c.eq_ignore_ascii_case("kadmin"));
        if is_krbtgt || changepw {
            return Err(refuse(
                KDC_ERR_POLICY,
                "policy",
                &c.realm,
                &c.client,
                format!(
                    "{} (from {}) asked for {name}: clients of a trusted realm get service tickets only, no TGTs of or through this realm and no kadmin tickets",
                    c.client, c.realm
                ),
            ));
        }
        return Ok(None);
    }
    if !is_krbtgt {
        return Ok(None);
    }
    let Some(realm) = name.components.get(1) else {
        return Ok(None);
    };
    if realm.eq_ignore_ascii_case(own) {
        return Ok(None);
    }
    outbound(kdc, realm, client, &name.to_string())
        .await
        .map(Some)
}

/// The outbound inter-realm principal of the trust with `realm`, if our users may use it.
async fn outbound(
    kdc: &KdcState,
    realm: &str,
    client: &str,
    asked: &str,
) -> Result<(PrincipalRecord, CrossRealmInfo), KdcError> {
    let Some(trust) = kdc
        .config
        .trusts
        .iter()
        .find(|t| t.realm.eq_ignore_ascii_case(realm))
    else {
        return Err(KdcError::ServerUnknown);
    };
    if !trust.outbound {
        return Err(refuse(
            KDC_ERR_POLICY,
            "direction",
            &trust.realm,
            client,
            format!(
                "{asked}: the trust with {} is inbound only, this realm's users may not use its services (direction)",
                trust.realm
            ),
        ));
    }
    let mut record = kdc
        .db
        .trust_key(&trust.realm, false)
        .await
        .map_err(|e| KdcError::Database(e.0))?
        .ok_or_else(|| {
            refuse(
                KDC_ERR_S_PRINCIPAL_UNKNOWN,
                "direction",
                &trust.realm,
                "",
                format!("{asked}: no outbound inter-realm key for {}", trust.realm),
            )
        })?;
    // Referral TGTs are sealed with the current key only.
    let current = record.kvno;
    record.keys.retain(|k| k.kvno == current);
    Ok((
        record,
        CrossRealmInfo {
            realm: trust.realm.clone(),
            client: client.to_owned(),
            reason: None,
        },
    ))
}

/// RFC 6806 §8 referral by host name (`domain_realm`-style): a host-based service whose host
/// lies in the DNS domain of an outbound trust, unknown here, gets a referral TGT
/// `krbtgt/THEIRS@OURS`. Returns that name and its record.
pub(super) async fn referral(
    kdc: &KdcState,
    name: &PrincipalName,
    client: &str,
) -> Result<Option<(PrincipalName, PrincipalRecord, CrossRealmInfo)>, KdcError> {
    let [_, host] = name.components.as_slice() else {
        return Ok(None);
    };
    let host = host.to_ascii_lowercase();
    let Some(trust) = kdc.config.trusts.iter().find(|t| {
        t.domains
            .iter()
            .any(|d| host == *d || host.ends_with(&format!(".{d}")))
    }) else {
        return Ok(None);
    };
    let krbtgt = PrincipalName::new(
        vec!["krbtgt".into(), trust.realm.clone()],
        kdc.config.realm.as_str(),
    );
    let (record, info) = outbound(kdc, &trust.realm, client, &name.to_string()).await?;
    Ok(Some((krbtgt, record, info)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(s: &str) -> TransitedEncoding {
        TransitedEncoding {
            r#type: 1,
            contents: s.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn transited_decodes_full_and_abbreviated_names() {
        assert_eq!(decode_transited(&tr("")).unwrap(), Vec::<String>::new());
        assert_eq!(
            decode_transited(&tr("EDU,MIT.,ATHENA.")).unwrap(),
            vec!["EDU", "MIT.EDU", "ATHENA.MIT.EDU"]
        );
        assert_eq!(
            decode_transited(&tr("A.COM,B.ORG")).unwrap(),
            vec!["A.COM", "B.ORG"]
        );
        assert!(decode_transited(&tr("A.COM,,B.ORG")).is_err());
        assert!(decode_transited(&tr("/C=US/O=X")).is_err());
        assert!(decode_transited(&tr("MIT.")).is_err());
        let mut other = tr("A.COM");
        other.r#type = 2;
        assert!(decode_transited(&other).is_err());
    }
}

#[cfg(test)]
mod flow_tests {
    //! The whole inbound path over hand-made cross-realm TGTs: client realms reached through
    //! `transited` (capaths), the transited field of the ticket issued, and refusals.
    use std::sync::Arc;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use rasn_kerberos::{
        ApOptions, ApReq, Authenticator, EncTicketPart, KdcOptions, KdcReq, KdcReqBody, KrbError,
        PaData, TgsRep, TgsReq, Ticket, TicketFlags, TransitedEncoding,
    };

    use super::super::codec;
    use super::super::crypto::{self, usage};
    use super::super::db::{DbError, MemoryDb, PasswordChangeError, PrincipalDb, PrincipalRecord};
    use super::super::replay::ReplayCache;
    use super::super::{handle_kdc, KdcConfig, KdcState};
    use super::TrustPolicy;
    use crate::model::principal::{random_keys, KeyMaterial, PrincipalName};

    struct Db {
        inner: MemoryDb,
        inbound: Vec<KeyMaterial>,
    }

    #[async_trait::async_trait]
    impl PrincipalDb for Db {
        async fn lookup(&self, n: &PrincipalName) -> Result<Option<PrincipalRecord>, DbError> {
            self.inner.lookup(n).await
        }
        async fn change_password(
            &self,
            n: &PrincipalName,
            p: &str,
        ) -> Result<(), PasswordChangeError> {
            self.inner.change_password(n, p).await
        }
        async fn trust_key(
            &self,
            realm: &str,
            inbound: bool,
        ) -> Result<Option<PrincipalRecord>, DbError> {
            Ok((inbound && realm == "OTHER.COM").then(|| PrincipalRecord {
                canonical: PrincipalName::new(
                    vec!["krbtgt".into(), "EXAMPLE.COM".into()],
                    "OTHER.COM",
                ),
                salt: String::new(),
                kvno: 1,
                keys: self.inbound.clone(),
                disabled: false,
                expires: None,
                is_service: true,
                locked: false,
                must_change_password: false,
                password_expires: None,
                account_id: None,
            }))
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn wire(text: &str) -> rasn_kerberos::PrincipalName {
        codec::wire_name(&PrincipalName::parse(text).unwrap())
    }

    fn ks(s: &str) -> rasn::types::GeneralString {
        codec::kerberos_string(s).unwrap()
    }

    /// A KDC for EXAMPLE.COM trusting OTHER.COM (which reaches SUB.OTHER.COM), the inbound
    /// key, and the key of host/app.example.com.
    fn setup() -> (KdcState, Vec<KeyMaterial>, Vec<KeyMaterial>) {
        let inbound = random_keys(1).unwrap();
        let service = random_keys(1).unwrap();
        let inner = MemoryDb::new("EXAMPLE.COM");
        inner
            .add_service("krbtgt/EXAMPLE.COM", random_keys(1).unwrap())
            .unwrap();
        inner
            .add_service("host/app.example.com", service.clone())
            .unwrap();
        let mut config = KdcConfig::new("EXAMPLE.COM");
        config.trusts = vec![TrustPolicy {
            realm: "OTHER.COM".into(),
            inbound: true,
            transited: vec!["SUB.OTHER.COM".into()],
            ..TrustPolicy::default()
        }];
        let replay = std::sync::Arc::new(ReplayCache::new(config.max_skew, 100));
        let state = KdcState {
            config,
            db: Arc::new(Db {
                inner,
                inbound: inbound.clone(),
            }),
            replay,
            observer: None,
            otp: None,
        };
        (state, inbound, service)
    }

    /// A TGS-REQ for host/app.example.com with a TGT OTHER.COM issued to `client`.
    fn request(inbound: &[KeyMaterial], client: &str, transited: &str) -> Vec<u8> {
        request_with(inbound, client, transited, None)
    }

    /// `request` with `ad` as the TGT's authorization data.
    fn request_with(
        inbound: &[KeyMaterial],
        client: &str,
        transited: &str,
        ad: Option<rasn_kerberos::AuthorizationData>,
    ) -> Vec<u8> {
        let client = PrincipalName::parse(client).unwrap();
        let session = crypto::session_key(18, &mut rand::rngs::OsRng).unwrap();
        let part = EncTicketPart {
            flags: TicketFlags(codec::flags_to_bits(0)),
            key: crypto::encryption_key(&session),
            crealm: ks(&client.realm),
            cname: codec::wire_name(&client),
            transited: TransitedEncoding {
                r#type: 1,
                contents: transited.as_bytes().to_vec().into(),
            },
            auth_time: codec::kerberos_time(now()),
            start_time: Some(codec::kerberos_time(now())),
            end_time: codec::kerberos_time(now() + Duration::from_secs(3600)),
            renew_till: None,
            caddr: None,
            authorization_data: ad,
        };
        let key = crypto::ticket_key(inbound).unwrap();
        let ticket = Ticket {
            tkt_vno: 5.into(),
            realm: ks("OTHER.COM"),
            sname: wire("krbtgt/EXAMPLE.COM"),
            enc_part: crypto::encrypt(
                &crypto::key(key).unwrap(),
                usage::TICKET,
                &rasn::der::encode(&part).unwrap(),
                Some(1),
            )
            .unwrap(),
        };
        let body = KdcReqBody {
            kdc_options: KdcOptions(codec::flags_to_bits(0)),
            cname: None,
            realm: ks("EXAMPLE.COM"),
            sname: Some(wire("host/app.example.com")),
            from: None,
            till: codec::kerberos_time(now() + Duration::from_secs(3600)),
            rtime: None,
            nonce: 7,
            etype: vec![18],
            addresses: None,
            enc_authorization_data: None,
            additional_tickets: None,
        };
        let raw = rasn::der::encode(&body).unwrap();
        let auth = Authenticator {
            authenticator_vno: 5.into(),
            crealm: ks(&client.realm),
            cname: codec::wire_name(&client),
            cksum: Some(crypto::checksum(&session, usage::TGS_REQ_AUTH_CKSUM, &raw).unwrap()),
            cusec: 0.into(),
            ctime: codec::kerberos_time(now()),
            subkey: None,
            seq_number: None,
            authorization_data: None,
        };
        let ap = ApReq {
            pvno: 5.into(),
            msg_type: 14.into(),
            ap_options: ApOptions(codec::flags_to_bits(0)),
            ticket,
            authenticator: crypto::encrypt(
                &session,
                usage::TGS_REQ_AUTHENTICATOR,
                &rasn::der::encode(&auth).unwrap(),
                None,
            )
            .unwrap(),
        };
        rasn::der::encode(&TgsReq(KdcReq {
            pvno: 5.into(),
            msg_type: 12.into(),
            padata: Some(vec![PaData {
                r#type: 1,
                value: rasn::der::encode(&ap).unwrap().into(),
            }]),
            req_body: body,
        }))
        .unwrap()
    }

    /// The transited field of the ticket issued, or the KRB-ERROR code.
    async fn serve(state: &KdcState, msg: &[u8], service: &[KeyMaterial]) -> Result<String, i32> {
        let reply = handle_kdc(state, msg, None, now(), &mut rand::rngs::OsRng)
            .await
            .unwrap()
            .bytes;
        if let Ok(err) = rasn::der::decode::<KrbError>(&reply) {
            return Err(err.error_code);
        }
        let rep: TgsRep = rasn::der::decode(&reply).unwrap();
        let key = crypto::key(crypto::ticket_key(service).unwrap()).unwrap();
        let plain = crypto::decrypt(&key, usage::TICKET, &rep.0.ticket.enc_part).unwrap();
        let part: EncTicketPart = rasn::der::decode(&plain).unwrap();
        let flags = codec::bits_to_flags(&part.flags.0);
        assert_ne!(flags & super::TRANSITED_POLICY_CHECKED, 0);
        Ok(String::from_utf8(part.transited.contents.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn transited_paths_follow_the_trust() {
        let (state, inbound, service) = setup();
        // Direct: nothing transited.
        let msg = request(&inbound, "bob@OTHER.COM", "");
        assert_eq!(serve(&state, &msg, &service).await, Ok(String::new()));
        // A client of SUB.OTHER.COM through OTHER.COM: OTHER.COM is now transited.
        let msg = request(&inbound, "sue@SUB.OTHER.COM", "");
        assert_eq!(
            serve(&state, &msg, &service).await,
            Ok("OTHER.COM".to_string())
        );
        // A realm the trust does not reach, as client realm or on the path: KDC_ERR_POLICY.
        let msg = request(&inbound, "eve@EVIL.ORG", "");
        assert_eq!(serve(&state, &msg, &service).await, Err(12));
        let msg = request(&inbound, "sue@SUB.OTHER.COM", "EVIL.ORG");
        assert_eq!(serve(&state, &msg, &service).await, Err(12));
        // Our own realm's users never arrive through a trust.
        let msg = request(&inbound, "alice@EXAMPLE.COM", "");
        assert_eq!(serve(&state, &msg, &service).await, Err(12));
        // An encoding dird does not read: KDC_ERR_TRTYPE_NOSUPP.
        let msg = request(&inbound, "sue@SUB.OTHER.COM", "SUB.OTHER.COM,,OTHER.COM");
        assert_eq!(serve(&state, &msg, &service).await, Err(17));
        // A TGT sealed with another key: KRB_AP_ERR_BAD_INTEGRITY (wrong key).
        let msg = request(&random_keys(1).unwrap(), "bob@OTHER.COM", "");
        assert_eq!(serve(&state, &msg, &service).await, Err(31));
    }

    /// MS-PAC across the trust: the other realm's PAC must verify with the inter-realm key
    /// (server signature), and none of its SIDs reach the service ticket, whose PAC is
    /// rebuilt (CLIENT_INFO, UPN_DNS_INFO) and signed by this realm.
    #[tokio::test]
    async fn a_foreign_pac_is_verified_and_its_sids_dropped() {
        use crate::kdc::pac;
        let (state, inbound, service) = setup();
        let inter_realm = crypto::key(crypto::ticket_key(&inbound).unwrap()).unwrap();
        let their_krbtgt = crypto::key(&random_keys(1).unwrap()[0]).unwrap();
        let claims = pac::AccountIdentity {
            sam_account_name: "bob".into(),
            sid: vec![
                1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 244, 1, 0,
                0,
            ],
            domain_sid: vec![
                1, 4, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0,
            ],
            primary_group_rid: 512,
            ..pac::AccountIdentity::default()
        };
        let buffers = pac::data_buffers(Some(&claims), "bob", "OTHER.COM", now());
        let element = |server: &krb5::Key| {
            let signed = pac::sign(&buffers, server, &their_krbtgt, None).unwrap();
            let inner = vec![rasn_kerberos::AuthorizationDataValue {
                r#type: pac::AD_WIN2K_PAC,
                data: signed.into(),
            }];
            Some(vec![rasn_kerberos::AuthorizationDataValue {
                r#type: rasn_kerberos::AuthorizationDataValue::IF_RELEVANT,
                data: rasn::der::encode(&inner).unwrap().into(),
            }])
        };
        // Signed with another key: KRB_AP_ERR_MODIFIED (and nothing issued, so the same
        // authenticator is no replay below).
        let msg = request_with(&inbound, "bob@OTHER.COM", "", element(&their_krbtgt));
        assert_eq!(serve(&state, &msg, &service).await, Err(41));
        // Signed with the inter-realm key: accepted, LOGON_INFO (Domain Admins) not carried.
        let msg = request_with(&inbound, "bob@OTHER.COM", "", element(&inter_realm));
        let reply = handle_kdc(&state, &msg, None, now(), &mut rand::rngs::OsRng)
            .await
            .unwrap()
            .bytes;
        let rep: TgsRep = rasn::der::decode(&reply).expect("TGS-REP");
        let service_key = crypto::key(crypto::ticket_key(&service).unwrap()).unwrap();
        let krbtgt = state
            .db
            .lookup(&PrincipalName::krbtgt("EXAMPLE.COM"))
            .await
            .unwrap()
            .unwrap();
        let krbtgt_key = crypto::key(crypto::ticket_key(&krbtgt.keys).unwrap()).unwrap();
        let ticket = rasn::der::encode(&rep.0.ticket).unwrap();
        let ours = krb5::pac::verify_ticket(&ticket, &service_key, &krbtgt_key)
            .unwrap()
            .expect("the service ticket carries a PAC");
        assert!(ours.logon_info().unwrap().is_none());
        assert_eq!(ours.client_info().unwrap().unwrap().name, "bob");
    }
}
