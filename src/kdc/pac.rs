//! The Privilege Attribute Certificate (MS-PAC) in the tickets the KDC issues.
//!
//! Owns: the PAC container (PACTYPE, MS-PAC §2.3-2.4), the NDR encoding and decoding of
//! KERB_VALIDATION_INFO (LOGON_INFO, §2.5, NDR type serialization version 1, MS-RPCE §2.2.6),
//! PAC_CLIENT_INFO (§2.7), UPN_DNS_INFO with the SAM name and SID extension (§2.10), and the
//! signatures (§2.8): ticket (16), full (19), server (6) and KDC (7), computed in that order
//! over zeroed signature fields, key usage 17. Also where the PAC sits in a ticket: alone in
//! the first AD-IF-RELEVANT element, as AD-WIN2K-PAC (128). May import: `krb5::Key`,
//! `rasn-kerberos`, siblings.
//!
//! Decoding is bounded and never panics: every count and length is checked against the bytes
//! that remain before anything is allocated, and the whole PAC is at most `MAX_PAC` bytes.

use krb5::Key;
use rasn_kerberos::{AuthorizationData, AuthorizationDataValue, EncTicketPart};

use super::codec;
use super::error::KdcError;

/// AD-WIN2K-PAC (RFC 4120 §7.5.4 / MS-PAC §2.1).
pub const AD_WIN2K_PAC: i32 = 128;
/// KERB_NON_KERB_CKSUM_SALT: the key usage of every PAC signature (MS-PAC §2.8).
pub const KEY_USAGE: u32 = 17;
/// Largest PAC decoded.
pub const MAX_PAC: usize = 64 * 1024;
/// Most buffers in a PAC.
pub const MAX_BUFFERS: usize = 64;

/// PAC_INFO_BUFFER types (MS-PAC §2.4).
pub mod buffer_type {
    /// KERB_VALIDATION_INFO.
    pub const LOGON_INFO: u32 = 1;
    /// Server signature.
    pub const SERVER_CHECKSUM: u32 = 6;
    /// KDC (privilege server) signature.
    pub const PRIVSVR_CHECKSUM: u32 = 7;
    /// PAC_CLIENT_INFO.
    pub const CLIENT_INFO: u32 = 10;
    /// UPN_DNS_INFO.
    pub const UPN_DNS_INFO: u32 = 12;
    /// Ticket signature.
    pub const TICKET_CHECKSUM: u32 = 16;
    /// PAC_ATTRIBUTES_INFO (TGTs only).
    pub const ATTRIBUTES_INFO: u32 = 17;
    /// PAC_REQUESTOR: the SID of the account the TGT was issued to (TGTs only).
    pub const REQUESTOR: u32 = 18;
    /// Extended KDC (full PAC) signature.
    pub const FULL_CHECKSUM: u32 = 19;
}
use buffer_type as bt;

/// The signature buffer types, which a re-signing KDC replaces.
const SIGNATURES: [u32; 4] = [
    bt::SERVER_CHECKSUM,
    bt::PRIVSVR_CHECKSUM,
    bt::TICKET_CHECKSUM,
    bt::FULL_CHECKSUM,
];

/// A malformed PAC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed PAC: {0}")]
pub struct PacError(pub &'static str);

type Result<T> = std::result::Result<T, PacError>;

/// A decoded PAC: its bytes as received and the buffer table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pac {
    raw: Vec<u8>,
    /// (type, offset, size) per buffer, in table order.
    table: Vec<(u32, usize, usize)>,
}

impl Pac {
    /// Parses a PACTYPE (MS-PAC §2.3): bounded, buffers 8-aligned inside the data, no type twice.
    pub fn decode(data: &[u8]) -> Result<Pac> {
        if data.len() > MAX_PAC {
            return Err(PacError("too large"));
        }
        let mut r = Reader::new(data);
        let count = r.u32()? as usize;
        if count > MAX_BUFFERS {
            return Err(PacError("too many buffers"));
        }
        if r.u32()? != 0 {
            return Err(PacError("version"));
        }
        let mut table = Vec::with_capacity(count);
        for _ in 0..count {
            let ty = r.u32()?;
            let size = r.u32()? as usize;
            let offset = usize::try_from(r.u64()?).map_err(|_| PacError("offset"))?;
            let end = offset.checked_add(size).ok_or(PacError("offset"))?;
            if !offset.is_multiple_of(8) || offset < 8 + 16 * count || end > data.len() {
                return Err(PacError("buffer outside the PAC"));
            }
            if table.iter().any(|&(t, _, _)| t == ty) {
                return Err(PacError("buffer type twice"));
            }
            table.push((ty, offset, size));
        }
        Ok(Pac {
            raw: data.to_vec(),
            table,
        })
    }

    /// The PAC's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The buffer types, in table order.
    pub fn types(&self) -> Vec<u32> {
        self.table.iter().map(|&(t, _, _)| t).collect()
    }

    /// The contents of the buffer of type `ty`.
    pub fn buffer(&self, ty: u32) -> Option<&[u8]> {
        self.table
            .iter()
            .find(|&&(t, _, _)| t == ty)
            .and_then(|&(_, o, s)| self.raw.get(o..o + s))
    }

    /// The data buffers (all but the signatures), for re-signing.
    pub fn data_buffers(&self) -> Vec<(u32, Vec<u8>)> {
        self.table
            .iter()
            .filter(|(t, _, _)| !SIGNATURES.contains(t))
            .filter_map(|&(t, o, s)| self.raw.get(o..o + s).map(|b| (t, b.to_vec())))
            .collect()
    }

    /// The decoded LOGON_INFO buffer, if present.
    pub fn logon_info(&self) -> Result<Option<LogonInfo>> {
        self.buffer(bt::LOGON_INFO)
            .map(LogonInfo::decode)
            .transpose()
    }

    /// The decoded CLIENT_INFO buffer, if present.
    pub fn client_info(&self) -> Result<Option<ClientInfo>> {
        self.buffer(bt::CLIENT_INFO)
            .map(ClientInfo::decode)
            .transpose()
    }

    /// The decoded UPN_DNS_INFO buffer, if present.
    pub fn upn_dns_info(&self) -> Result<Option<UpnDnsInfo>> {
        self.buffer(bt::UPN_DNS_INFO)
            .map(UpnDnsInfo::decode)
            .transpose()
    }

    /// The (checksum type, checksum) of signature buffer `ty`.
    pub fn signature(&self, ty: u32) -> Result<Option<(i32, &[u8])>> {
        let Some(b) = self.buffer(ty) else {
            return Ok(None);
        };
        let head: [u8; 4] = b
            .get(..4)
            .and_then(|h| h.try_into().ok())
            .ok_or(PacError("signature"))?;
        let ctype = i32::from_le_bytes(head);
        let len = checksum_len(ctype).ok_or(PacError("signature type"))?;
        let sum = b.get(4..4 + len).ok_or(PacError("signature"))?;
        Ok(Some((ctype, sum)))
    }

    /// The PAC bytes with the checksums of the signature buffers `types` zeroed.
    fn zeroed(&self, types: &[u32]) -> Vec<u8> {
        let mut out = self.raw.clone();
        for &(t, o, s) in &self.table {
            if types.contains(&t) && s > 4 {
                if let Some(b) = out.get_mut(o + 4..o + s) {
                    b.fill(0);
                }
            }
        }
        out
    }

    /// Verifies the server signature with one of `server_keys` and the KDC signature with one
    /// of `kdc_keys` (MS-PAC §2.8.1-2); the key must be of the signature's checksum type.
    pub fn verify(
        &self,
        server_keys: &[Key],
        kdc_keys: &[Key],
    ) -> std::result::Result<(), KdcError> {
        let (stype, ssum) = self
            .signature(bt::SERVER_CHECKSUM)
            .map_err(|_| KdcError::Modified)?
            .ok_or(KdcError::Modified)?;
        let (ktype, ksum) = self
            .signature(bt::PRIVSVR_CHECKSUM)
            .map_err(|_| KdcError::Modified)?
            .ok_or(KdcError::Modified)?;
        let signed = self.zeroed(&[bt::SERVER_CHECKSUM, bt::PRIVSVR_CHECKSUM]);
        if !verify_with(server_keys, stype, &signed, ssum)
            || !verify_with(kdc_keys, ktype, ssum, ksum)
        {
            return Err(KdcError::Modified);
        }
        Ok(())
    }

    /// Verifies only the server signature with one of `keys`: a cross-realm TGT's PAC, whose
    /// KDC signature is made with the other realm's own krbtgt key (MIT and AD check it so).
    pub fn verify_server(&self, keys: &[Key]) -> std::result::Result<(), KdcError> {
        let (stype, ssum) = self
            .signature(bt::SERVER_CHECKSUM)
            .map_err(|_| KdcError::Modified)?
            .ok_or(KdcError::Modified)?;
        let signed = self.zeroed(&[bt::SERVER_CHECKSUM, bt::PRIVSVR_CHECKSUM]);
        if verify_with(keys, stype, &signed, ssum) {
            Ok(())
        } else {
            Err(KdcError::Modified)
        }
    }

    /// Verifies the full signature (MS-PAC §2.8.5) with one of `kdc_keys`.
    pub fn verify_full(&self, kdc_keys: &[Key]) -> std::result::Result<(), KdcError> {
        let (ftype, fsum) = self
            .signature(bt::FULL_CHECKSUM)
            .map_err(|_| KdcError::Modified)?
            .ok_or(KdcError::Modified)?;
        let signed = self.zeroed(&[bt::SERVER_CHECKSUM, bt::PRIVSVR_CHECKSUM, bt::FULL_CHECKSUM]);
        if verify_with(kdc_keys, ftype, &signed, fsum) {
            Ok(())
        } else {
            Err(KdcError::Modified)
        }
    }
}

fn verify_with(keys: &[Key], ctype: i32, message: &[u8], sum: &[u8]) -> bool {
    keys.iter()
        .filter(|k| k.checksum_type() == ctype)
        .any(|k| matches!(k.verify_checksum(KEY_USAGE, message, sum), Ok(true)))
}

/// Checksum length of the keyed checksum types dird signs with (RFC 3962 §7, RFC 8009 §8),
/// plus HMAC-MD5 (-138) so PACs from older Windows decode.
fn checksum_len(ctype: i32) -> Option<usize> {
    match ctype {
        15 | 16 => Some(12),
        19 => Some(16),
        20 => Some(24),
        -138 => Some(16),
        _ => None,
    }
}

/// Encodes a PACTYPE from (type, contents) buffers: table first, then the contents, each at
/// an 8-aligned offset and zero-padded to 8 (MS-PAC §2.3).
pub fn encode(buffers: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let header = 8 + 16 * buffers.len();
    let mut out = Vec::with_capacity(header + buffers.iter().map(|b| b.1.len() + 8).sum::<usize>());
    out.extend_from_slice(&(buffers.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut offset = header;
    for (ty, data) in buffers {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        offset += data.len().div_ceil(8) * 8;
    }
    for (_, data) in buffers {
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(8) * 8, 0);
    }
    out
}

/// Signs a PAC (MS-PAC §2.8): `buffers` are its data buffers, `server_key` the key of the
/// ticket's service, `kdc_key` the krbtgt key (for a referral TGT, the inter-realm key).
/// With `ticket_signature` (service tickets), the ticket signature goes in first and the
/// full signature is computed next; then the server signature over the PAC with the server
/// and KDC signatures zeroed, and the KDC signature over the server signature.
pub fn sign(
    buffers: &[(u32, Vec<u8>)],
    server_key: &Key,
    kdc_key: &Key,
    ticket_signature: Option<Vec<u8>>,
) -> std::result::Result<Vec<u8>, KdcError> {
    let mut all: Vec<(u32, Vec<u8>)> = buffers
        .iter()
        .filter(|(t, _)| !SIGNATURES.contains(t))
        .cloned()
        .collect();
    let blank = |key: &Key| -> std::result::Result<Vec<u8>, KdcError> {
        let len = checksum(key, b"")?.len();
        let mut b = key.checksum_type().to_le_bytes().to_vec();
        b.resize(4 + len, 0);
        Ok(b)
    };
    all.push((bt::SERVER_CHECKSUM, blank(server_key)?));
    all.push((bt::PRIVSVR_CHECKSUM, blank(kdc_key)?));
    let service_ticket = ticket_signature.is_some();
    if let Some(sum) = ticket_signature {
        let mut b = kdc_key.checksum_type().to_le_bytes().to_vec();
        b.extend_from_slice(&sum);
        all.push((bt::TICKET_CHECKSUM, b));
        all.push((bt::FULL_CHECKSUM, blank(kdc_key)?));
    }
    let set = |all: &mut Vec<(u32, Vec<u8>)>, ty: u32, sum: &[u8]| {
        if let Some((_, b)) = all.iter_mut().find(|(t, _)| *t == ty) {
            b.truncate(4);
            b.extend_from_slice(sum);
        }
    };
    if service_ticket {
        let full = checksum(kdc_key, &encode(&all))?;
        set(&mut all, bt::FULL_CHECKSUM, &full);
    }
    let server = checksum(server_key, &encode(&all))?;
    set(&mut all, bt::SERVER_CHECKSUM, &server);
    let kdc = checksum(kdc_key, &server)?;
    set(&mut all, bt::PRIVSVR_CHECKSUM, &kdc);
    Ok(encode(&all))
}

fn checksum(key: &Key, message: &[u8]) -> std::result::Result<Vec<u8>, KdcError> {
    key.checksum(KEY_USAGE, message)
        .map_err(|e| KdcError::Internal(format!("PAC checksum: {e}")))
}

/// The AD-IF-RELEVANT element holding `pac` as AD-WIN2K-PAC.
fn pac_element(pac: &[u8]) -> std::result::Result<AuthorizationDataValue, KdcError> {
    let inner: AuthorizationData = vec![AuthorizationDataValue {
        r#type: AD_WIN2K_PAC,
        data: pac.to_vec().into(),
    }];
    Ok(AuthorizationDataValue {
        r#type: AuthorizationDataValue::IF_RELEVANT,
        data: codec::encode(&inner)?.into(),
    })
}

fn inner_elements(ad: &AuthorizationDataValue) -> Option<AuthorizationData> {
    (ad.r#type == AuthorizationDataValue::IF_RELEVANT)
        .then(|| codec::decode::<AuthorizationData>(&ad.data, "AD-IF-RELEVANT").ok())
        .flatten()
}

/// The PAC in a ticket's authorization data: `None` if there is none, an error if there is
/// more than one or one is not alone in its AD-IF-RELEVANT element.
pub fn find(ad: Option<&AuthorizationData>) -> std::result::Result<Option<Vec<u8>>, KdcError> {
    let mut found = None;
    for outer in ad.into_iter().flatten() {
        let Some(inner) = inner_elements(outer) else {
            continue;
        };
        let pacs: Vec<_> = inner.iter().filter(|a| a.r#type == AD_WIN2K_PAC).collect();
        if pacs.is_empty() {
            continue;
        }
        if found.is_some() || pacs.len() != 1 || inner.len() != 1 {
            return Err(KdcError::Modified);
        }
        found = pacs.first().map(|a| a.data.to_vec());
    }
    Ok(found)
}

/// The authorization data without its PAC element(s).
pub fn strip(ad: Option<&AuthorizationData>) -> AuthorizationData {
    ad.into_iter()
        .flatten()
        .filter(|outer| {
            !inner_elements(outer)
                .is_some_and(|inner| inner.iter().any(|a| a.r#type == AD_WIN2K_PAC))
        })
        .cloned()
        .collect()
}

/// What to put into a new ticket: the PAC's data buffers and the KDC's signing key.
#[derive(Clone)]
pub struct PacPlan {
    /// The data buffers (LOGON_INFO, CLIENT_INFO, UPN_DNS_INFO, ...).
    pub buffers: Vec<(u32, Vec<u8>)>,
    /// The key of the KDC signature (and ticket and full signatures): the krbtgt key, or the
    /// inter-realm key for a referral TGT.
    pub kdc_key: Key,
    /// Service tickets get the ticket and full signatures; TGTs (local, referral) do not.
    pub service_ticket: bool,
}

/// Puts the signed PAC into `part` as its first authorization-data element (any PAC already
/// there is removed). The ticket signature is computed first, over `part` encoded with the
/// PAC element holding a single zero byte instead (MS-PAC §2.8.3).
pub fn seal(
    part: &mut EncTicketPart,
    plan: &PacPlan,
    server_key: &Key,
) -> std::result::Result<(), KdcError> {
    let rest = strip(part.authorization_data.as_ref());
    let with = |first: AuthorizationDataValue| -> Option<AuthorizationData> {
        let mut ad = Vec::with_capacity(rest.len() + 1);
        ad.push(first);
        ad.extend(rest.iter().cloned());
        Some(ad)
    };
    // MS-PAC §2.14-2.15: the attributes and requestor buffers belong to TGTs only.
    let buffers: Vec<(u32, Vec<u8>)> = plan
        .buffers
        .iter()
        .filter(|(t, _)| !plan.service_ticket || (*t != bt::ATTRIBUTES_INFO && *t != bt::REQUESTOR))
        .cloned()
        .collect();
    let ticket_signature = if plan.service_ticket {
        part.authorization_data = with(pac_element(&[0])?);
        Some(checksum(&plan.kdc_key, &codec::encode(&*part)?)?)
    } else {
        None
    };
    let pac = sign(&buffers, server_key, &plan.kdc_key, ticket_signature)?;
    part.authorization_data = with(pac_element(&pac)?);
    Ok(())
}

// ---- the data buffers ----

/// FILETIME "never" (MS-PAC §2.5: 0x7FFFFFFFFFFFFFFF).
pub const NEVER: u64 = 0x7FFF_FFFF_FFFF_FFFF;

/// A time as a FILETIME (100 ns since 1601-01-01).
pub fn filetime(t: std::time::SystemTime) -> u64 {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs + 11_644_473_600) * 10_000_000
}

/// GROUP_MEMBERSHIP attributes: mandatory, enabled by default, enabled (MS-PAC §2.2.2).
pub const SE_GROUP_DEFAULT: u32 = 7;
/// KERB_VALIDATION_INFO UserFlags: ExtraSids is filled (LOGON_EXTRA_SIDS).
pub const LOGON_EXTRA_SIDS: u32 = 0x20;

/// KERB_VALIDATION_INFO (MS-PAC §2.5). SIDs are in binary form (MS-DTYP §2.4.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogonInfo {
    pub logon_time: u64,
    pub logoff_time: u64,
    pub kick_off_time: u64,
    pub password_last_set: u64,
    pub password_can_change: u64,
    pub password_must_change: u64,
    pub effective_name: String,
    pub full_name: String,
    pub logon_script: String,
    pub profile_path: String,
    pub home_directory: String,
    pub home_directory_drive: String,
    pub logon_count: u16,
    pub bad_password_count: u16,
    pub user_id: u32,
    pub primary_group_id: u32,
    /// (RID, attributes).
    pub group_ids: Vec<(u32, u32)>,
    pub user_flags: u32,
    pub user_session_key: [u8; 16],
    pub logon_server: String,
    pub logon_domain_name: String,
    pub logon_domain_id: Option<Vec<u8>>,
    /// SAM account flags (MS-SAMR §2.2.1.12 USER_*), not the LDAP UF_* flags.
    pub user_account_control: u32,
    pub sub_auth_status: u32,
    pub last_successful_ilogon: u64,
    pub last_failed_ilogon: u64,
    pub failed_ilogon_count: u32,
    /// (SID, attributes).
    pub extra_sids: Vec<(Vec<u8>, u32)>,
    pub resource_group_domain_sid: Option<Vec<u8>>,
    pub resource_group_ids: Vec<(u32, u32)>,
}

/// LDAP userAccountControl (MS-ADTS §2.2.16) to the SAM flags of KERB_VALIDATION_INFO.
pub fn sam_account_flags(uac: u32) -> u32 {
    const MAP: [(u32, u32); 8] = [
        (0x0002, 0x0001),  // ACCOUNTDISABLE -> USER_ACCOUNT_DISABLED
        (0x0008, 0x0002),  // HOMEDIR_REQUIRED
        (0x0020, 0x0004),  // PASSWD_NOTREQD
        (0x0200, 0x0010),  // NORMAL_ACCOUNT
        (0x0800, 0x0040),  // INTERDOMAIN_TRUST_ACCOUNT
        (0x1000, 0x0080),  // WORKSTATION_TRUST_ACCOUNT
        (0x2000, 0x0100),  // SERVER_TRUST_ACCOUNT
        (0x10000, 0x0200), // DONT_EXPIRE_PASSWORD
    ];
    MAP.iter()
        .filter(|(ldap, _)| uac & ldap != 0)
        .fold(0, |acc, (_, sam)| acc | sam)
}

/// Longest RPC_UNICODE_STRING written (its byte length is a u16).
const NDR_STRING_MAX: usize = 0x7FFF;
/// Longest string in UPN_DNS_INFO and CLIENT_INFO (their offsets and lengths are u16).
const SHORT_STRING_MAX: usize = 1024;

/// `s` as UTF-16 code units, at most `max` of them.
fn units(s: &str, max: usize) -> Vec<u16> {
    s.encode_utf16().take(max).collect()
}

struct Ndr {
    buf: Vec<u8>,
    next_ref: u32,
}

impl Ndr {
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn filetime(&mut self, v: u64) {
        self.u32(v as u32);
        self.u32((v >> 32) as u32);
    }
    fn pointer(&mut self, present: bool) {
        if present {
            self.next_ref += 4;
            let r = self.next_ref;
            self.u32(r);
        } else {
            self.u32(0);
        }
    }
    fn align4(&mut self) {
        self.buf.resize(self.buf.len().div_ceil(4) * 4, 0);
    }
    fn string_header(&mut self, s: &str) {
        let bytes = (units(s, NDR_STRING_MAX).len() * 2) as u16;
        self.u16(bytes);
        self.u16(bytes);
        self.pointer(true);
    }
    fn string_body(&mut self, s: &str) {
        let units = units(s, NDR_STRING_MAX);
        let n = units.len() as u32;
        self.u32(n);
        self.u32(0);
        self.u32(n);
        for c in units {
            self.u16(c);
        }
        self.align4();
    }
    fn sid(&mut self, sid: &[u8]) {
        self.u32(u32::from(sid.get(1).copied().unwrap_or(0)));
        self.buf.extend_from_slice(sid);
    }
}

impl LogonInfo {
    /// The NDR type serialization (version 1) of this KERB_VALIDATION_INFO.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Ndr {
            buf: Vec::with_capacity(512),
            next_ref: 0x0001_FFFC,
        };
        w.pointer(true); // the top-level pointer's referent
        for t in [
            self.logon_time,
            self.logoff_time,
            self.kick_off_time,
            self.password_last_set,
            self.password_can_change,
            self.password_must_change,
        ] {
            w.filetime(t);
        }
        let names = [
            &self.effective_name,
            &self.full_name,
            &self.logon_script,
            &self.profile_path,
            &self.home_directory,
            &self.home_directory_drive,
        ];
        for s in names {
            w.string_header(s);
        }
        w.u16(self.logon_count);
        w.u16(self.bad_password_count);
        w.u32(self.user_id);
        w.u32(self.primary_group_id);
        w.u32(self.group_ids.len() as u32);
        w.pointer(!self.group_ids.is_empty());
        w.u32(self.user_flags);
        w.buf.extend_from_slice(&self.user_session_key);
        w.string_header(&self.logon_server);
        w.string_header(&self.logon_domain_name);
        w.pointer(self.logon_domain_id.is_some());
        w.u32(0); // Reserved1
        w.u32(0);
        w.u32(self.user_account_control);
        w.u32(self.sub_auth_status);
        w.filetime(self.last_successful_ilogon);
        w.filetime(self.last_failed_ilogon);
        w.u32(self.failed_ilogon_count);
        w.u32(0); // Reserved3
        w.u32(self.extra_sids.len() as u32);
        w.pointer(!self.extra_sids.is_empty());
        w.pointer(self.resource_group_domain_sid.is_some());
        w.u32(self.resource_group_ids.len() as u32);
        w.pointer(!self.resource_group_ids.is_empty());
        // Deferred referents, in the order of their pointers.
        for s in names {
            w.string_body(s);
        }
        let groups = |w: &mut Ndr, g: &[(u32, u32)]| {
            w.u32(g.len() as u32);
            for &(rid, attr) in g {
                w.u32(rid);
                w.u32(attr);
            }
        };
        if !self.group_ids.is_empty() {
            groups(&mut w, &self.group_ids);
        }
        w.string_body(&self.logon_server);
        w.string_body(&self.logon_domain_name);
        if let Some(sid) = &self.logon_domain_id {
            w.sid(sid);
        }
        if !self.extra_sids.is_empty() {
            w.u32(self.extra_sids.len() as u32);
            for (_, attr) in &self.extra_sids {
                w.pointer(true);
                w.u32(*attr);
            }
            for (sid, _) in &self.extra_sids {
                w.sid(sid);
            }
        }
        if let Some(sid) = &self.resource_group_domain_sid {
            w.sid(sid);
        }
        if !self.resource_group_ids.is_empty() {
            groups(&mut w, &self.resource_group_ids);
        }
        // MS-RPCE §2.2.6: common header, private header (object length, padded to 8), data.
        let len = w.buf.len().div_ceil(8) * 8;
        let mut out = Vec::with_capacity(16 + len);
        out.extend_from_slice(&[0x01, 0x10, 0x08, 0x00, 0xcc, 0xcc, 0xcc, 0xcc]);
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&w.buf);
        out.resize(16 + len, 0);
        out
    }

    /// Decodes an NDR type serialization version 1 KERB_VALIDATION_INFO (little-endian).
    pub fn decode(data: &[u8]) -> Result<LogonInfo> {
        let mut r = Reader::new(data);
        let header = r.take(8)?;
        if header.get(..4) != Some(&[0x01, 0x10, 0x08, 0x00][..]) {
            return Err(PacError("NDR header"));
        }
        let len = r.u32()? as usize;
        r.u32()?;
        let body = r.take(len)?;
        let mut r = Reader::new(body);
        if r.u32()? == 0 {
            return Err(PacError("null LOGON_INFO"));
        }
        let mut li = LogonInfo {
            logon_time: r.filetime()?,
            logoff_time: r.filetime()?,
            kick_off_time: r.filetime()?,
            password_last_set: r.filetime()?,
            password_can_change: r.filetime()?,
            password_must_change: r.filetime()?,
            ..LogonInfo::default()
        };
        let mut names = [(0u16, 0u32); 6];
        for n in &mut names {
            *n = r.string_header()?;
        }
        li.logon_count = r.u16()?;
        li.bad_password_count = r.u16()?;
        li.user_id = r.u32()?;
        li.primary_group_id = r.u32()?;
        let group_count = r.u32()?;
        let group_ptr = r.u32()?;
        li.user_flags = r.u32()?;
        li.user_session_key.copy_from_slice(r.take(16)?);
        let server = r.string_header()?;
        let domain = r.string_header()?;
        let domain_id_ptr = r.u32()?;
        r.take(8)?;
        li.user_account_control = r.u32()?;
        li.sub_auth_status = r.u32()?;
        li.last_successful_ilogon = r.filetime()?;
        li.last_failed_ilogon = r.filetime()?;
        li.failed_ilogon_count = r.u32()?;
        r.u32()?;
        let sid_count = r.u32()?;
        let sids_ptr = r.u32()?;
        let resource_domain_ptr = r.u32()?;
        let resource_count = r.u32()?;
        let resource_ptr = r.u32()?;

        let mut texts: [String; 6] = Default::default();
        for (text, header) in texts.iter_mut().zip(names) {
            *text = r.string_body(header)?;
        }
        let [effective_name, full_name, logon_script, profile_path, home_directory, home_directory_drive] =
            texts;
        li.effective_name = effective_name;
        li.full_name = full_name;
        li.logon_script = logon_script;
        li.profile_path = profile_path;
        li.home_directory = home_directory;
        li.home_directory_drive = home_directory_drive;
        li.group_ids = r.groups(group_ptr, group_count)?;
        li.logon_server = r.string_body(server)?;
        li.logon_domain_name = r.string_body(domain)?;
        if domain_id_ptr != 0 {
            li.logon_domain_id = Some(r.sid()?);
        }
        if sids_ptr != 0 {
            if r.u32()? != sid_count {
                return Err(PacError("ExtraSids count"));
            }
            r.fits(sid_count as usize, 8)?;
            let mut entries = Vec::with_capacity(sid_count as usize);
            for _ in 0..sid_count {
                let ptr = r.u32()?;
                let attr = r.u32()?;
                entries.push((ptr, attr));
            }
            for (ptr, attr) in entries {
                if ptr == 0 {
                    return Err(PacError("null ExtraSid"));
                }
                li.extra_sids.push((r.sid()?, attr));
            }
        } else if sid_count != 0 {
            return Err(PacError("ExtraSids count"));
        }
        if resource_domain_ptr != 0 {
            li.resource_group_domain_sid = Some(r.sid()?);
        }
        li.resource_group_ids = r.groups(resource_ptr, resource_count)?;
        Ok(li)
    }
}

/// PAC_CLIENT_INFO (MS-PAC §2.7): the ticket's authtime and the client name without realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub client_id: u64,
    pub name: String,
}

impl ClientInfo {
    /// The buffer's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let name = units(&self.name, SHORT_STRING_MAX);
        let mut out = Vec::with_capacity(10 + name.len() * 2);
        out.extend_from_slice(&self.client_id.to_le_bytes());
        out.extend_from_slice(&((name.len() * 2) as u16).to_le_bytes());
        for c in name {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    /// Decodes the buffer.
    pub fn decode(data: &[u8]) -> Result<ClientInfo> {
        let mut r = Reader::new(data);
        let client_id = r.u64()?;
        let len = r.u16()? as usize;
        let name = utf16(r.take(len)?)?;
        Ok(ClientInfo { client_id, name })
    }
}

/// UPN_DNS_INFO flag: the account has no UPN, the one given is constructed.
pub const UPN_CONSTRUCTED: u32 = 1;
/// UPN_DNS_INFO flag: the SAM name and SID follow (Samba's extension, MS-PAC §2.10).
pub const UPN_HAS_SAM_NAME_AND_SID: u32 = 2;

/// UPN_DNS_INFO (MS-PAC §2.10) with the SAM name and SID extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpnDnsInfo {
    pub upn: String,
    pub dns_domain: String,
    pub flags: u32,
    /// With `UPN_HAS_SAM_NAME_AND_SID`: (sAMAccountName, objectSid).
    pub sam_name_and_sid: Option<(String, Vec<u8>)>,
}

impl UpnDnsInfo {
    /// The buffer's bytes: the fixed header, then each string (and the SID) 8-aligned.
    pub fn encode(&self) -> Vec<u8> {
        let utf16le = |s: &str| -> Vec<u8> {
            units(s, SHORT_STRING_MAX)
                .into_iter()
                .flat_map(u16::to_le_bytes)
                .collect()
        };
        let mut parts = vec![utf16le(&self.upn), utf16le(&self.dns_domain)];
        let mut flags = self.flags & !UPN_HAS_SAM_NAME_AND_SID;
        if let Some((sam, sid)) = &self.sam_name_and_sid {
            flags |= UPN_HAS_SAM_NAME_AND_SID;
            parts.push(utf16le(sam));
            parts.push(sid.clone());
        }
        let header: usize = if parts.len() > 2 { 20 } else { 12 };
        let mut offset = header.div_ceil(8) * 8;
        let mut table = Vec::new();
        for p in &parts {
            table.push((p.len() as u16, offset as u16));
            offset = (offset + p.len()).div_ceil(8) * 8;
        }
        let mut out = Vec::with_capacity(offset);
        for (i, (len, off)) in table.iter().enumerate() {
            if i == 2 {
                out.extend_from_slice(&flags.to_le_bytes());
            }
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&off.to_le_bytes());
        }
        if parts.len() == 2 {
            out.extend_from_slice(&flags.to_le_bytes());
        }
        for (p, (_, off)) in parts.iter().zip(&table) {
            out.resize(usize::from(*off), 0);
            out.extend_from_slice(p);
        }
        out
    }

    /// Decodes the buffer.
    pub fn decode(data: &[u8]) -> Result<UpnDnsInfo> {
        let mut r = Reader::new(data);
        let upn = (r.u16()?, r.u16()?);
        let dns = (r.u16()?, r.u16()?);
        let flags = r.u32()?;
        let at = |(len, off): (u16, u16)| -> Result<&[u8]> {
            let off = usize::from(off);
            data.get(off..off + usize::from(len))
                .ok_or(PacError("UPN_DNS_INFO offset"))
        };
        let sam_name_and_sid = if flags & UPN_HAS_SAM_NAME_AND_SID != 0 {
            let sam = (r.u16()?, r.u16()?);
            let sid = (r.u16()?, r.u16()?);
            let sid = at(sid)?.to_vec();
            check_sid(&sid)?;
            Some((utf16(at(sam)?)?, sid))
        } else {
            None
        };
        Ok(UpnDnsInfo {
            upn: utf16(at(upn)?)?,
            dns_domain: utf16(at(dns)?)?,
            flags,
            sam_name_and_sid,
        })
    }
}

fn utf16(bytes: &[u8]) -> Result<String> {
    if !bytes.len().is_multiple_of(2) {
        return Err(PacError("odd UTF-16 length"));
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| PacError("UTF-16"))
}

fn check_sid(sid: &[u8]) -> Result<()> {
    match sid.get(1) {
        Some(&n) if n <= 15 && sid.len() == 8 + 4 * usize::from(n) => Ok(()),
        _ => Err(PacError("SID")),
    }
}

/// The RID of `sid` if it is `domain` plus one sub-authority.
pub fn rid_in(domain: &[u8], sid: &[u8]) -> Option<u32> {
    if domain.len() < 8 || sid.len() != domain.len() + 4 {
        return None;
    }
    let same = sid.first() == domain.first()
        && sid.get(1).copied() == domain.get(1).map(|n| n.saturating_add(1))
        && sid.get(2..domain.len()) == domain.get(2..);
    let tail: [u8; 4] = sid.get(domain.len()..)?.try_into().ok()?;
    same.then(|| u32::from_le_bytes(tail))
}

/// A bounded little-endian reader.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(PacError("truncated"))?;
        let out = self.data.get(self.pos..end).ok_or(PacError("truncated"))?;
        self.pos = end;
        Ok(out)
    }
    fn fits(&self, count: usize, each: usize) -> Result<()> {
        match count.checked_mul(each) {
            Some(n) if n <= self.data.len().saturating_sub(self.pos) => Ok(()),
            _ => Err(PacError("count exceeds data")),
        }
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from(self.u32()?) | (u64::from(self.u32()?) << 32))
    }
    fn filetime(&mut self) -> Result<u64> {
        self.u64()
    }
    fn align4(&mut self) -> Result<()> {
        let pad = self.pos.div_ceil(4) * 4 - self.pos;
        self.take(pad).map(|_| ())
    }
    /// RPC_UNICODE_STRING: (Length in bytes, pointer).
    fn string_header(&mut self) -> Result<(u16, u32)> {
        let len = self.u16()?;
        let max = self.u16()?;
        if len > max || !len.is_multiple_of(2) {
            return Err(PacError("string length"));
        }
        Ok((len, self.u32()?))
    }
    /// The deferred conformant varying array of a RPC_UNICODE_STRING.
    fn string_body(&mut self, (len, ptr): (u16, u32)) -> Result<String> {
        if ptr == 0 {
            return if len == 0 {
                Ok(String::new())
            } else {
                Err(PacError("null string"))
            };
        }
        let max = self.u32()? as usize;
        let offset = self.u32()?;
        let actual = self.u32()? as usize;
        if offset != 0 || actual > max || actual * 2 != usize::from(len) {
            return Err(PacError("string array"));
        }
        let s = utf16(self.take(actual * 2)?)?;
        self.align4()?;
        Ok(s)
    }
    fn groups(&mut self, ptr: u32, count: u32) -> Result<Vec<(u32, u32)>> {
        if ptr == 0 {
            return if count == 0 {
                Ok(Vec::new())
            } else {
                Err(PacError("null group array"))
            };
        }
        if self.u32()? != count {
            return Err(PacError("group count"));
        }
        self.fits(count as usize, 8)?;
        (0..count).map(|_| Ok((self.u32()?, self.u32()?))).collect()
    }
    /// A deferred RPC_SID: conformance count, then the binary SID.
    fn sid(&mut self) -> Result<Vec<u8>> {
        let count = self.u32()? as usize;
        if count > 15 {
            return Err(PacError("SID"));
        }
        let sid = self.take(8 + 4 * count)?.to_vec();
        if usize::from(sid[1]) != count {
            return Err(PacError("SID count"));
        }
        Ok(sid)
    }
}

pub use crate::model::principal::AccountIdentity;

/// The data buffers of a new PAC: LOGON_INFO (when the account's SIDs are known),
/// CLIENT_INFO, UPN_DNS_INFO and, for TGTs (`seal` drops them from service tickets),
/// PAC_ATTRIBUTES_INFO (PAC was requested) and PAC_REQUESTOR (the account's SID).
/// `client_name` is the ticket's cname without realm.
pub fn data_buffers(
    identity: Option<&AccountIdentity>,
    client_name: &str,
    realm: &str,
    auth_time: std::time::SystemTime,
) -> Vec<(u32, Vec<u8>)> {
    let auth = filetime(auth_time);
    let mut out = Vec::with_capacity(3);
    if let Some(id) = identity {
        let user_rid = rid_in(&id.domain_sid, &id.sid).unwrap_or(0);
        let mut groups = vec![(id.primary_group_rid, SE_GROUP_DEFAULT)];
        let mut extra = Vec::new();
        for sid in &id.group_sids {
            match rid_in(&id.domain_sid, sid) {
                Some(rid) if !groups.iter().any(|g| g.0 == rid) => {
                    groups.push((rid, SE_GROUP_DEFAULT));
                }
                Some(_) => {}
                None => {
                    if check_sid(sid).is_ok() && !extra.iter().any(|(s, _)| s == sid) {
                        extra.push((sid.clone(), SE_GROUP_DEFAULT));
                    }
                }
            }
        }
        let info = LogonInfo {
            logon_time: auth,
            logoff_time: NEVER,
            kick_off_time: NEVER,
            password_last_set: id.password_last_set,
            password_can_change: id.password_last_set,
            password_must_change: NEVER,
            effective_name: id.sam_account_name.clone(),
            full_name: id.full_name.clone(),
            user_id: user_rid,
            primary_group_id: id.primary_group_rid,
            group_ids: groups,
            user_flags: if extra.is_empty() {
                0
            } else {
                LOGON_EXTRA_SIDS
            },
            logon_server: id.logon_server.clone(),
            logon_domain_name: id.netbios_domain.clone(),
            logon_domain_id: Some(id.domain_sid.clone()),
            user_account_control: sam_account_flags(id.user_account_control),
            extra_sids: extra,
            ..LogonInfo::default()
        };
        out.push((bt::LOGON_INFO, info.encode()));
    }
    out.push((
        bt::CLIENT_INFO,
        ClientInfo {
            client_id: auth,
            name: client_name.to_owned(),
        }
        .encode(),
    ));
    let (upn, flags) = match identity.and_then(|i| i.upn.clone()) {
        Some(u) => (u, 0),
        None => (
            format!(
                "{}@{}",
                identity.map_or(client_name, |i| i.sam_account_name.as_str()),
                realm.to_ascii_lowercase()
            ),
            UPN_CONSTRUCTED,
        ),
    };
    out.push((
        bt::UPN_DNS_INFO,
        UpnDnsInfo {
            upn,
            dns_domain: realm.to_ascii_uppercase(),
            flags,
            sam_name_and_sid: identity.map(|i| (i.sam_account_name.clone(), i.sid.clone())),
        }
        .encode(),
    ));
    if let Some(id) = identity {
        // PAC_ATTRIBUTES_INFO: FlagsLength 2 (bits), PAC_WAS_REQUESTED.
        let mut attributes = 2u32.to_le_bytes().to_vec();
        attributes.extend_from_slice(&1u32.to_le_bytes());
        out.push((bt::ATTRIBUTES_INFO, attributes));
        out.push((bt::REQUESTOR, id.sid.clone()));
    }
    out
}

#[cfg(test)]
#[path = "pac_tests.rs"]
mod tests;
