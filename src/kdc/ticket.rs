//! Ticket and reply-part construction shared by the AS and TGS exchanges (RFC 4120 §5.3, §5.4.2).
//!
//! Owns: `Issue` (everything that goes into a new ticket) and the functions that turn it into an
//! encrypted `Ticket` and an `EncKdcRepPart`. May import: `model`, `rasn-kerberos`, siblings.

use std::time::SystemTime;

use krb5::Key;
use rasn_kerberos::{
    AuthorizationData, EncKdcRepPart, EncTicketPart, EncryptionKey, HostAddresses, KerberosString,
    LastReqValue, PrincipalName as WireName, Ticket, TicketFlags, TransitedEncoding,
};

use super::codec;
use super::crypto::{self, usage};
use super::error::KdcError;
use super::pac::{self, PacPlan};
use crate::model::principal::KeyMaterial;

/// The contents of a ticket about to be issued.
pub(super) struct Issue<'a> {
    /// Client name and realm as they go into the ticket and reply.
    pub cname: WireName,
    pub crealm: KerberosString,
    /// Server name and realm as they go into the ticket and reply.
    pub sname: WireName,
    pub srealm: KerberosString,
    /// RFC 4120 §5.3 ticket flags.
    pub flags: u32,
    /// The new session key.
    pub session_key: &'a Key,
    pub auth_time: SystemTime,
    pub start_time: SystemTime,
    pub end_time: SystemTime,
    pub renew_till: Option<SystemTime>,
    pub caddr: Option<HostAddresses>,
    pub authorization_data: Option<AuthorizationData>,
    /// RFC 4120 §3.3.3.2 transited realms (cross-realm); `None`: none.
    pub transited: Option<TransitedEncoding>,
    /// The PAC to seal into the ticket (MS-PAC), signed with the ticket's key as server key.
    pub pac: Option<PacPlan>,
}

impl Issue<'_> {
    /// The ticket, its enc-part encrypted with the service's long-term key (usage 2).
    pub(super) fn ticket(&self, service_key: &KeyMaterial) -> Result<Ticket, KdcError> {
        let mut part = EncTicketPart {
            flags: TicketFlags(codec::flags_to_bits(self.flags)),
            key: self.wire_session_key(),
            crealm: self.crealm.clone(),
            cname: self.cname.clone(),
            // RFC 4120 §3.3.3.2: DOMAIN-X500-COMPRESS, no transited realms unless cross-realm.
            transited: self.transited.clone().unwrap_or(TransitedEncoding {
                r#type: 1,
                contents: Vec::new().into(),
            }),
            auth_time: codec::kerberos_time(self.auth_time),
            start_time: Some(codec::kerberos_time(self.start_time)),
            end_time: codec::kerberos_time(self.end_time),
            renew_till: self.renew_till.map(codec::kerberos_time),
            caddr: self.caddr.clone(),
            authorization_data: self.authorization_data.clone(),
        };
        if let Some(plan) = &self.pac {
            pac::seal(&mut part, plan, &crypto::key(service_key)?)?;
        }
        let plain = codec::encode(&part)?;
        let enc_part = crypto::encrypt(
            &crypto::key(service_key)?,
            usage::TICKET,
            &plain,
            Some(service_key.kvno),
        )?;
        Ok(Ticket {
            tkt_vno: 5.into(),
            realm: self.srealm.clone(),
            sname: self.sname.clone(),
            enc_part,
        })
    }

    /// The reply's encrypted part (EncASRepPart / EncTGSRepPart body), RFC 4120 §5.4.2.
    pub(super) fn rep_part(&self, nonce: u32, last_req_time: SystemTime) -> EncKdcRepPart {
        EncKdcRepPart {
            key: self.wire_session_key(),
            // RFC 4120 §5.4.2: lr-type 0 = no information about the last request.
            last_req: vec![LastReqValue {
                r#type: 0,
                value: codec::kerberos_time(last_req_time),
            }],
            nonce,
            key_expiration: None,
            flags: TicketFlags(codec::flags_to_bits(self.flags)),
            auth_time: codec::kerberos_time(self.auth_time),
            start_time: Some(codec::kerberos_time(self.start_time)),
            end_time: codec::kerberos_time(self.end_time),
            renew_till: self.renew_till.map(codec::kerberos_time),
            srealm: self.srealm.clone(),
            sname: self.sname.clone(),
            caddr: self.caddr.clone(),
            encrypted_pa_data: None,
        }
    }

    fn wire_session_key(&self) -> EncryptionKey {
        crypto::encryption_key(self.session_key)
    }
}

/// `min(a, b)` where `None` means unlimited.
pub(super) fn earliest(a: SystemTime, b: Option<SystemTime>) -> SystemTime {
    match b {
        Some(b) if b < a => b,
        _ => a,
    }
}

/// A requested `till`/`rtime`: the epoch (or absent) means "as long as allowed" (RFC 4120 §5.4.1).
pub(super) fn requested_limit(t: Option<&rasn_kerberos::KerberosTime>) -> Option<SystemTime> {
    t.map(codec::system_time)
        .filter(|&t| t != SystemTime::UNIX_EPOCH)
}

/// True if `name` is a ticket-granting service (`krbtgt/REALM`, local or inter-realm).
pub(super) fn is_tgs(name: &WireName) -> bool {
    name.string.len() == 2
        && name
            .string
            .first()
            .is_some_and(|c| c.as_bytes().eq_ignore_ascii_case(b"krbtgt"))
}

/// The client name as PAC_CLIENT_INFO carries it: the components without the realm.
pub(super) fn pac_client_name(cname: &WireName) -> String {
    cname
        .string
        .iter()
        .map(|c| String::from_utf8_lossy(c.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join("/")
}
