//! OIDs of the controls and extended operations dird knows, and the typed BER values carried in
//! `Control.controlValue`, `ExtendedRequest.requestValue` and `ExtendedResponse.responseValue`.
//! May import: `ldap::proto`, `rasn`, std.
//! Invariant: decoding a value never panics; every function returns `Result`. A value must be
//! exactly one BER element (trailing bytes are an error).

use rasn::prelude::*;

use crate::ldap::proto::{AttributeDescription, Control, MatchingRuleId, ResultCode};

/// RFC 2696 simple paged results control.
pub const PAGED_RESULTS: &str = "1.2.840.113556.1.4.319";
/// RFC 3296 ManageDsaIT control (no value).
pub const MANAGE_DSA_IT: &str = "2.16.840.1.113730.3.4.2";
/// draft-behera-ldap-password-policy request (no value) and response control.
pub const PASSWORD_POLICY: &str = "1.3.6.1.4.1.42.2.27.8.5.1";
/// RFC 2891 server-side sort request control.
pub const SORT_REQUEST: &str = "1.2.840.113556.1.4.473";
/// RFC 2891 server-side sort response control.
pub const SORT_RESPONSE: &str = "1.2.840.113556.1.4.474";
/// RFC 4511 §4.14 StartTLS extended operation.
pub const START_TLS: &str = "1.3.6.1.4.1.1466.20037";
/// RFC 4532 "Who am I?" extended operation.
pub const WHO_AM_I: &str = "1.3.6.1.4.1.4203.1.11.3";
/// RFC 3062 Password Modify extended operation.
pub const PASSWORD_MODIFY: &str = "1.3.6.1.4.1.4203.1.11.1";
/// RFC 4511 §4.4.1 Notice of Disconnection (unsolicited notification).
pub const NOTICE_OF_DISCONNECTION: &str = "1.3.6.1.4.1.1466.20036";

/// Why a control or extended-operation value could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// The value is not valid BER for its type.
    #[error("malformed control or extended operation value: {0}")]
    Decode(#[from] rasn::error::DecodeError),
    /// Bytes follow the value.
    #[error("{0} bytes after the end of the control or extended operation value")]
    TrailingBytes(usize),
    /// The value could not be encoded.
    #[error("cannot encode value: {0}")]
    Encode(String),
}

/// A typed BER value identified by an OID (a control value or an extended-operation value).
pub trait BerValue: Encode + Decode + Sized {
    /// The control or extended operation OID this value belongs to.
    const OID: &'static str;

    /// Decode exactly one value from `bytes`.
    fn from_ber(bytes: &[u8]) -> Result<Self, ValueError> {
        let (value, rest) = rasn::ber::decode_with_remainder::<Self>(bytes)?;
        if !rest.is_empty() {
            return Err(ValueError::TrailingBytes(rest.len()));
        }
        Ok(value)
    }

    /// Encode to BER.
    fn to_ber(&self) -> Result<Vec<u8>, ValueError> {
        rasn::ber::encode(self).map_err(|e| ValueError::Encode(e.to_string()))
    }

    /// A control of type `OID` carrying this value.
    fn to_control(&self, criticality: bool) -> Result<Control, ValueError> {
        Ok(Control::new(Self::OID, criticality, Some(self.to_ber()?)))
    }
}

/// RFC 2696 §2 `realSearchControlValue ::= SEQUENCE { size INTEGER (0..maxInt),
/// cookie OCTET STRING }`. In a request `size` is the page size; in the response it is the
/// server's estimate of the total (0 if unknown). An empty cookie ends the paging.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct PagedResults {
    /// Page size (request) or result-set size estimate (response).
    #[rasn(value("0..=2147483647"))]
    pub size: u32,
    /// Opaque server cookie; empty on the first request and on the last response.
    pub cookie: OctetString,
}

/// RFC 3062 §2 `PasswdModifyRequestValue`.
#[derive(AsnType, Encode, Decode, Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswdModifyRequest {
    /// `userIdentity [0] OCTET STRING OPTIONAL`: absent means the bound user.
    #[rasn(tag(0))]
    pub user_identity: Option<OctetString>,
    /// `oldPasswd [1] OCTET STRING OPTIONAL`.
    #[rasn(tag(1))]
    pub old_passwd: Option<OctetString>,
    /// `newPasswd [2] OCTET STRING OPTIONAL`: absent asks the server to generate one.
    #[rasn(tag(2))]
    pub new_passwd: Option<OctetString>,
}

/// RFC 3062 §2 `PasswdModifyResponseValue`.
#[derive(AsnType, Encode, Decode, Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswdModifyResponse {
    /// `genPasswd [0] OCTET STRING OPTIONAL`: the generated password, if the server made one.
    #[rasn(tag(0))]
    pub gen_passwd: Option<OctetString>,
}

/// draft-behera-ldap-password-policy-10 §6.2 `PasswordPolicyResponseValue`.
#[derive(AsnType, Encode, Decode, Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordPolicyResponse {
    /// `warning [0] CHOICE {...} OPTIONAL` (explicit: a tagged CHOICE, X.680 §31.2.7).
    #[rasn(tag(explicit(0)))]
    pub warning: Option<PasswordPolicyWarning>,
    /// `error [1] ENUMERATED {...} OPTIONAL`.
    #[rasn(tag(1))]
    pub error: Option<PasswordPolicyError>,
}

/// The `warning` CHOICE of the password policy response.
#[derive(AsnType, Encode, Decode, Debug, Clone, Copy, PartialEq, Eq)]
#[rasn(choice)]
pub enum PasswordPolicyWarning {
    /// `timeBeforeExpiration [0] INTEGER (0 .. maxInt)`, in seconds.
    #[rasn(tag(0))]
    TimeBeforeExpiration(#[rasn(value("0..=2147483647"))] u32),
    /// `graceAuthNsRemaining [1] INTEGER (0 .. maxInt)`.
    #[rasn(tag(1))]
    GraceAuthNsRemaining(#[rasn(value("0..=2147483647"))] u32),
}

/// The `error` ENUMERATED of the password policy response.
#[derive(AsnType, Encode, Decode, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rasn(enumerated)]
pub enum PasswordPolicyError {
    /// 0
    PasswordExpired = 0,
    /// 1
    AccountLocked = 1,
    /// 2
    ChangeAfterReset = 2,
    /// 3
    PasswordModNotAllowed = 3,
    /// 4
    MustSupplyOldPassword = 4,
    /// 5
    InsufficientPasswordQuality = 5,
    /// 6
    PasswordTooShort = 6,
    /// 7
    PasswordTooYoung = 7,
    /// 8
    PasswordInHistory = 8,
    /// 9 (later drafts / OpenLDAP 2.6)
    PasswordTooLong = 9,
}

/// RFC 2891 §1.1 `SortKeyList ::= SEQUENCE OF SEQUENCE {...}`: the sort request value.
#[derive(AsnType, Encode, Decode, Debug, Clone, Default, PartialEq, Eq)]
#[rasn(delegate)]
pub struct SortRequest(pub Vec<SortKey>);

/// One key of the RFC 2891 sort request.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// `attributeType AttributeDescription`.
    pub attribute_type: AttributeDescription,
    /// `orderingRule [0] MatchingRuleId OPTIONAL`.
    #[rasn(tag(0))]
    pub ordering_rule: Option<MatchingRuleId>,
    /// `reverseOrder [1] BOOLEAN DEFAULT FALSE`.
    #[rasn(tag(1), default)]
    pub reverse_order: bool,
}

/// RFC 2891 §1.2 `SortResult`. `sort_result` takes the listed subset of result codes.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct SortResponse {
    /// `sortResult ENUMERATED {...}`.
    pub sort_result: ResultCode,
    /// `attributeType [0] AttributeDescription OPTIONAL`: the key that failed.
    #[rasn(tag(0))]
    pub attribute_type: Option<AttributeDescription>,
}

impl BerValue for PagedResults {
    const OID: &'static str = PAGED_RESULTS;
}

impl BerValue for PasswdModifyRequest {
    const OID: &'static str = PASSWORD_MODIFY;
}

impl BerValue for PasswdModifyResponse {
    const OID: &'static str = PASSWORD_MODIFY;
}

impl BerValue for PasswordPolicyResponse {
    const OID: &'static str = PASSWORD_POLICY;
}

impl BerValue for SortRequest {
    const OID: &'static str = SORT_REQUEST;
}

impl BerValue for SortResponse {
    const OID: &'static str = SORT_RESPONSE;
}

impl PagedResults {
    /// A paged-results value.
    pub fn new(size: u32, cookie: Vec<u8>) -> Self {
        Self {
            size,
            cookie: OctetString::from(cookie),
        }
    }
}

/// RFC 4532 §2.2 authzId for the WhoAmI response value: `dn:<dn>` for a bound DN, empty for
/// anonymous.
pub fn who_am_i_value(bound_dn: Option<&str>) -> Vec<u8> {
    match bound_dn {
        Some(dn) => format!("dn:{dn}").into_bytes(),
        None => Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn paged_results_bytes_and_round_trip() {
        // What ldapsearch -E pr=5/noprompt sends: 30 05 02 01 05 04 00
        let v = PagedResults::from_ber(&[0x30, 0x05, 0x02, 0x01, 0x05, 0x04, 0x00]).unwrap();
        assert_eq!(v, PagedResults::new(5, vec![]));
        let resp = PagedResults::new(14, vec![0, 0, 0, 5]);
        let c = resp.to_control(false).unwrap();
        assert!(c.is(PAGED_RESULTS) && !c.criticality);
        assert_eq!(
            c.value(),
            [0x30, 0x09, 0x02, 0x01, 0x0e, 0x04, 0x04, 0, 0, 0, 5]
        );
        assert_eq!(PagedResults::from_ber(c.value()).unwrap(), resp);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(PagedResults::from_ber(&[]).is_err());
        assert!(PagedResults::from_ber(&[0x30, 0x03, 0x02, 0x01, 0xff]).is_err());
        // negative size
        assert!(PagedResults::from_ber(&[0x30, 0x05, 0x02, 0x01, 0xff, 0x04, 0x00]).is_err());
        assert!(matches!(
            PagedResults::from_ber(&[0x30, 0x05, 0x02, 0x01, 0x05, 0x04, 0x00, 0x00]),
            Err(ValueError::TrailingBytes(1))
        ));
        assert!(PasswdModifyRequest::from_ber(&[0x30, 0x02, 0x83, 0x00]).is_err());
        assert!(SortRequest::from_ber(&[0x30, 0x02, 0x30, 0x00]).is_err());
        assert!(PasswordPolicyResponse::from_ber(&[0x30, 0x03, 0x81, 0x01, 0x63]).is_err());
    }

    #[test]
    fn passwd_modify_values() {
        let empty = PasswdModifyRequest::default();
        assert_eq!(empty.to_ber().unwrap(), [0x30, 0x00]);
        assert_eq!(PasswdModifyRequest::from_ber(&[0x30, 0x00]).unwrap(), empty);
        let only_new = PasswdModifyRequest {
            new_passwd: Some(OctetString::from_static(b"\xffpw")),
            ..Default::default()
        };
        let bytes = only_new.to_ber().unwrap();
        assert_eq!(bytes, [0x30, 0x05, 0x82, 0x03, 0xff, b'p', b'w']);
        assert_eq!(PasswdModifyRequest::from_ber(&bytes).unwrap(), only_new);
        let resp = PasswdModifyResponse {
            gen_passwd: Some(OctetString::from_static(b"gen")),
        };
        let bytes = resp.to_ber().unwrap();
        assert_eq!(bytes, [0x30, 0x05, 0x80, 0x03, b'g', b'e', b'n']);
        assert_eq!(PasswdModifyResponse::from_ber(&bytes).unwrap(), resp);
    }

    #[test]
    fn password_policy_response_values() {
        // OpenLDAP: "grace logins remaining 3" = warning [0] { graceAuthNsRemaining [1] 3 }
        let grace = PasswordPolicyResponse {
            warning: Some(PasswordPolicyWarning::GraceAuthNsRemaining(3)),
            error: None,
        };
        let bytes = grace.to_ber().unwrap();
        assert_eq!(bytes, [0x30, 0x05, 0xa0, 0x03, 0x81, 0x01, 0x03]);
        assert_eq!(PasswordPolicyResponse::from_ber(&bytes).unwrap(), grace);
        let expired = PasswordPolicyResponse {
            warning: None,
            error: Some(PasswordPolicyError::PasswordExpired),
        };
        assert_eq!(expired.to_ber().unwrap(), [0x30, 0x03, 0x81, 0x01, 0x00]);
        let both = PasswordPolicyResponse {
            warning: Some(PasswordPolicyWarning::TimeBeforeExpiration(86_400)),
            error: Some(PasswordPolicyError::ChangeAfterReset),
        };
        let bytes = both.to_ber().unwrap();
        assert_eq!(PasswordPolicyResponse::from_ber(&bytes).unwrap(), both);
        assert_eq!(
            PasswordPolicyResponse::default().to_ber().unwrap(),
            [0x30, 0x00]
        );
        let c = expired.to_control(false).unwrap();
        assert!(c.is(PASSWORD_POLICY));
    }

    #[test]
    fn sort_request_and_response() {
        // ldapsearch -E sss=cn/-uid:caseExactOrderingMatch
        let req = SortRequest(vec![
            SortKey {
                attribute_type: "cn".into(),
                ordering_rule: None,
                reverse_order: false,
            },
            SortKey {
                attribute_type: "uid".into(),
                ordering_rule: Some("caseExactOrderingMatch".into()),
                reverse_order: true,
            },
        ]);
        // The control value ldapsearch sent (tests/fixtures/pdu/search_sort.bin).
        let mut sent = vec![0x30, 0x28, 0x30, 0x04, 0x04, 0x02, b'c', b'n', 0x30, 0x20];
        sent.extend_from_slice(&[0x04, 0x03, b'u', b'i', b'd', 0x80, 0x16]);
        sent.extend_from_slice(b"caseExactOrderingMatch");
        sent.extend_from_slice(&[0x81, 0x01, 0xff]);
        assert_eq!(req.to_ber().unwrap(), sent);
        assert_eq!(SortRequest::from_ber(&sent).unwrap(), req);
        let resp = SortResponse {
            sort_result: ResultCode::InappropriateMatching,
            attribute_type: Some("uid".into()),
        };
        let bytes = resp.to_ber().unwrap();
        assert_eq!(
            bytes,
            [0x30, 0x08, 0x0a, 0x01, 0x12, 0x80, 0x03, b'u', b'i', b'd']
        );
        assert_eq!(SortResponse::from_ber(&bytes).unwrap(), resp);
    }

    #[test]
    fn who_am_i() {
        assert_eq!(who_am_i_value(Some("cn=a,dc=x")), b"dn:cn=a,dc=x");
        assert!(who_am_i_value(None).is_empty());
    }
}
