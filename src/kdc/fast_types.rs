//! ASN.1 types of Kerberos FAST (RFC 6113 §5.4, module KerberosV5-FAST, EXPLICIT TAGS) that
//! `rasn-kerberos` lacks, with rasn derives. Decoding and encoding only: what the fields mean
//! is `kdc::fast`'s business.
//!
//! Owns: the wire shapes of PA-FX-FAST-REQUEST/REPLY, KrbFastArmor, KrbFastArmoredReq,
//! KrbFastReq, KrbFastArmoredRep, KrbFastResponse and KrbFastFinished, and the FAST padata
//! type and key usage numbers; likewise the RFC 6560 OTP types (`rasn-kerberos` has them only
//! behind a feature that pulls in `rasn-pkix`, and its OTPFlags constants are mis-numbered). May import: `rasn`, `rasn-kerberos`.

use rasn::prelude::*;
use rasn_kerberos::{
    Checksum, EncryptedData, EncryptionKey, KdcReqBody, KerberosFlags, KerberosTime, PaData,
    PrincipalName, Realm,
};

/// PA-FX-COOKIE (RFC 6113 §5.2).
pub const PA_FX_COOKIE: i32 = 133;
/// PA-FX-FAST (RFC 6113 §5.4.1).
pub const PA_FX_FAST: i32 = 136;
/// PA-FX-ERROR (RFC 6113 §5.4.4).
pub const PA_FX_ERROR: i32 = 137;
/// PA-ENCRYPTED-CHALLENGE (RFC 6113 §5.4.6).
pub const PA_ENCRYPTED_CHALLENGE: i32 = 138;
/// PA-OTP-CHALLENGE (RFC 6560 §4.1).
pub const PA_OTP_CHALLENGE: i32 = 141;
/// PA-OTP-REQUEST (RFC 6560 §4.2).
pub const PA_OTP_REQUEST: i32 = 142;

/// armor-type FX_FAST_ARMOR_AP_REQUEST (RFC 6113 §5.4.1.1).
pub const ARMOR_AP_REQUEST: i32 = 1;

/// RFC 6113 key usage numbers (§5.4.2, §5.4.3, §5.4.6) and RFC 6560 §4.2.
pub mod usage {
    /// KEY_USAGE_FAST_REQ_CHKSUM: req-checksum of KrbFastArmoredReq.
    pub const FAST_REQ_CHKSUM: u32 = 50;
    /// KEY_USAGE_FAST_ENC: enc-fast-req.
    pub const FAST_ENC: u32 = 51;
    /// KEY_USAGE_FAST_REP: enc-fast-rep.
    pub const FAST_REP: u32 = 52;
    /// KEY_USAGE_FAST_FINISHED: ticket-checksum of KrbFastFinished.
    pub const FAST_FINISHED: u32 = 53;
    /// KEY_USAGE_ENC_CHALLENGE_CLIENT.
    pub const ENC_CHALLENGE_CLIENT: u32 = 54;
    /// KEY_USAGE_ENC_CHALLENGE_KDC.
    pub const ENC_CHALLENGE_KDC: u32 = 55;
    /// KEY_USAGE_PA_OTP_REQUEST (RFC 6560 §4.2): enc-data of PA-OTP-REQUEST.
    pub const PA_OTP_REQUEST: u32 = 45;
}

/// PA-FX-FAST-REQUEST ::= CHOICE { armored-data [0] KrbFastArmoredReq, ... }. The one
/// alternative is modelled as an explicitly tagged wrapper (same DER).
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
#[rasn(tag(explicit(context, 0)), delegate)]
pub struct PaFxFastRequest(pub KrbFastArmoredReq);

/// KrbFastArmor ::= SEQUENCE { armor-type [0] Int32, armor-value [1] OCTET STRING, ... }
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct KrbFastArmor {
    #[rasn(tag(explicit(0)))]
    pub armor_type: i32,
    #[rasn(tag(explicit(1)))]
    pub armor_value: OctetString,
}

/// KrbFastArmoredReq ::= SEQUENCE { armor [0] OPTIONAL, req-checksum [1] Checksum,
/// enc-fast-req [2] EncryptedData -- KrbFastReq -- }
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct KrbFastArmoredReq {
    #[rasn(tag(explicit(0)))]
    pub armor: Option<KrbFastArmor>,
    #[rasn(tag(explicit(1)))]
    pub req_checksum: Checksum,
    #[rasn(tag(explicit(2)))]
    pub enc_fast_req: EncryptedData,
}

/// KrbFastReq ::= SEQUENCE { fast-options [0] FastOptions, padata [1] SEQUENCE OF PA-DATA,
/// req-body [2] KDC-REQ-BODY, ... }
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct KrbFastReq {
    #[rasn(tag(explicit(0)))]
    pub fast_options: KerberosFlags,
    #[rasn(tag(explicit(1)))]
    pub padata: SequenceOf<PaData>,
    #[rasn(tag(explicit(2)))]
    pub req_body: KdcReqBody,
}

/// PA-FX-FAST-REPLY ::= CHOICE { armored-data [0] KrbFastArmoredRep, ... }
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
#[rasn(tag(explicit(context, 0)), delegate)]
pub struct PaFxFastReply(pub KrbFastArmoredRep);

/// KrbFastArmoredRep ::= SEQUENCE { enc-fast-rep [0] EncryptedData -- KrbFastResponse --, ... }
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct KrbFastArmoredRep {
    #[rasn(tag(explicit(0)))]
    pub enc_fast_rep: EncryptedData,
}

/// KrbFastResponse ::= SEQUENCE { padata [0] SEQUENCE OF PA-DATA, strengthen-key [1]
/// EncryptionKey OPTIONAL, finished [2] KrbFastFinished OPTIONAL, nonce [3] UInt32, ... }
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct KrbFastResponse {
    #[rasn(tag(explicit(0)))]
    pub padata: SequenceOf<PaData>,
    #[rasn(tag(explicit(1)))]
    pub strengthen_key: Option<EncryptionKey>,
    #[rasn(tag(explicit(2)))]
    pub finished: Option<KrbFastFinished>,
    #[rasn(tag(explicit(3)))]
    pub nonce: u32,
}

/// KrbFastFinished ::= SEQUENCE { timestamp [0] KerberosTime, usec [1] Microseconds,
/// crealm [2] Realm, cname [3] PrincipalName, ticket-checksum [4] Checksum, ... }
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct KrbFastFinished {
    #[rasn(tag(explicit(0)))]
    pub timestamp: KerberosTime,
    #[rasn(tag(explicit(1)))]
    pub usec: u32,
    #[rasn(tag(explicit(2)))]
    pub crealm: Realm,
    #[rasn(tag(explicit(3)))]
    pub cname: PrincipalName,
    #[rasn(tag(explicit(4)))]
    pub ticket_checksum: Checksum,
}

// ---- RFC 6560 (module OTPKerberos, IMPLICIT TAGS): the OTP pre-authentication types ----

/// OTP-FORMAT decimal (RFC 6560 §4.1).
pub const OTP_FORMAT_DECIMAL: i32 = 0;

/// PA-OTP-CHALLENGE ::= SEQUENCE { nonce [0] OCTET STRING, otp-service [1] UTF8String
/// OPTIONAL, otp-tokenInfo [2] SEQUENCE (SIZE(1..MAX)) OF OTP-TOKENINFO, salt [3]
/// KerberosString OPTIONAL, s2kparams [4] OCTET STRING OPTIONAL, ... }
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct PaOtpChallenge {
    #[rasn(tag(0))]
    pub nonce: OctetString,
    #[rasn(tag(1))]
    pub otp_service: Option<Utf8String>,
    #[rasn(tag(2))]
    pub otp_token_info: SequenceOf<OtpTokenInfo>,
    #[rasn(tag(3))]
    pub salt: Option<rasn_kerberos::KerberosString>,
    #[rasn(tag(4))]
    pub s2kparams: Option<OctetString>,
}

/// OTP-TOKENINFO ::= SEQUENCE { flags [0] OTPFlags, otp-vendor [1] UTF8String OPTIONAL,
/// otp-challenge [2] OCTET STRING OPTIONAL, otp-length [3] Int32 OPTIONAL, otp-format [4]
/// OTPFormat OPTIONAL, ... } (the remaining optional fields are not sent by dird).
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct OtpTokenInfo {
    #[rasn(tag(0))]
    pub flags: KerberosFlags,
    #[rasn(tag(1))]
    pub otp_vendor: Option<Utf8String>,
    #[rasn(tag(2))]
    pub otp_challenge: Option<OctetString>,
    #[rasn(tag(3))]
    pub otp_length: Option<i32>,
    #[rasn(tag(4))]
    pub otp_format: Option<i32>,
}

/// PA-OTP-REQUEST ::= SEQUENCE { flags [0] OTPFlags, nonce [1] OCTET STRING OPTIONAL,
/// encData [2] EncryptedData, hashAlg [3] AlgorithmIdentifier OPTIONAL, iterationCount [4]
/// Int32 OPTIONAL, otp-value [5] OCTET STRING OPTIONAL, otp-pin [6] UTF8String OPTIONAL,
/// otp-challenge [7] OCTET STRING OPTIONAL, otp-time [8] KerberosTime OPTIONAL, otp-counter
/// [9] OCTET STRING OPTIONAL, otp-format [10] OTPFormat OPTIONAL, otp-tokenID [11] OCTET
/// STRING OPTIONAL, otp-algID [12] AnyURI OPTIONAL, otp-vendor [13] UTF8String OPTIONAL, ... }
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct PaOtpRequest {
    #[rasn(tag(0))]
    pub flags: KerberosFlags,
    #[rasn(tag(1))]
    pub nonce: Option<OctetString>,
    #[rasn(tag(2))]
    pub enc_data: EncryptedData,
    #[rasn(tag(3))]
    pub hash_alg: Option<Any>,
    #[rasn(tag(4))]
    pub iteration_count: Option<i32>,
    #[rasn(tag(5))]
    pub otp_value: Option<OctetString>,
    #[rasn(tag(6))]
    pub otp_pin: Option<Utf8String>,
    #[rasn(tag(7))]
    pub otp_challenge: Option<OctetString>,
    #[rasn(tag(8))]
    pub otp_time: Option<KerberosTime>,
    #[rasn(tag(9))]
    pub otp_counter: Option<OctetString>,
    #[rasn(tag(10))]
    pub otp_format: Option<i32>,
    #[rasn(tag(11))]
    pub otp_token_id: Option<OctetString>,
    #[rasn(tag(12))]
    pub otp_alg_id: Option<Utf8String>,
    #[rasn(tag(13))]
    pub otp_vendor: Option<Utf8String>,
}

/// PA-OTP-ENC-REQUEST ::= SEQUENCE { nonce [0] OCTET STRING, ... }
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct PaOtpEncRequest {
    #[rasn(tag(0))]
    pub nonce: OctetString,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_request_round_trips_with_explicit_choice_tag() {
        let req = PaFxFastRequest(KrbFastArmoredReq {
            armor: Some(KrbFastArmor {
                armor_type: ARMOR_AP_REQUEST,
                armor_value: vec![1, 2, 3].into(),
            }),
            req_checksum: Checksum {
                r#type: 16,
                checksum: vec![9; 12].into(),
            },
            enc_fast_req: EncryptedData {
                etype: 18,
                kvno: None,
                cipher: vec![7; 40].into(),
            },
        });
        let der = rasn::der::encode(&req).unwrap();
        // [0] { SEQUENCE { [0] { SEQUENCE { [0] INTEGER 1 ...
        assert_eq!(&der[..1], &[0xa0]);
        assert_eq!(der[2], 0x30);
        let back: PaFxFastRequest = rasn::der::decode(&der).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn hostile_bytes_do_not_decode() {
        for input in [
            &[][..],
            &[0xa0],
            &[0xa0, 0x02, 0x30, 0x00],
            &[0xa0, 0x84, 0xff],
        ] {
            assert!(rasn::der::decode::<PaFxFastRequest>(input).is_err());
            assert!(rasn::der::decode::<KrbFastReq>(input).is_err());
        }
    }
}
