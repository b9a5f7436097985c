//! dird's own LDAPv3 message types, written from the ASN.1 module of RFC 4511 Appendix B
//! (IMPLICIT TAGS), with `rasn` derives for BER.
//! May import: `rasn`, std. Pure data: no I/O, no `model` (see `convert` for the bridge).
//! Invariants:
//! - Values (attribute values, assertion values, passwords, control values) are `OctetString`:
//!   binary-safe. Only `LDAPString`s (DNs, attribute descriptions, OIDs, messages) are UTF-8.
//! - The values of an attribute are encoded in insertion order (`AttributeValues` is a SET-tagged
//!   SEQUENCE OF, so rasn does not sort it DER-style); decoding accepts any order.
//! - `And`/`Or` filter components are encoded in the order given.
//! - rasn's BER decoder bounds nesting at 128 levels, so hostile nesting is an error, not a
//!   stack overflow (tested with a 100,000-deep NOT in `codec`).

use rasn::prelude::*;

/// RFC 4511 §4.1.1 MessageID: `INTEGER (0 .. maxInt)`, maxInt = 2^31-1.
pub type MessageId = u32;

/// The largest MessageID (RFC 4511 §4.1.1 `maxInt`).
pub const MAX_INT: u32 = 2_147_483_647;

/// RFC 4511 §4.1.2 `LDAPString ::= OCTET STRING -- UTF-8 encoded`. Decoding checks UTF-8.
#[derive(AsnType, Encode, Decode, Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[rasn(delegate, tag(universal, 4))]
pub struct LdapString(pub String);

/// RFC 4511 §4.1.3 `LDAPDN`: an RFC 4514 string (not parsed here).
pub type LdapDn = LdapString;
/// RFC 4511 §4.1.3 `RelativeLDAPDN`.
pub type RelativeLdapDn = LdapString;
/// RFC 4511 §4.1.4 `AttributeDescription`.
pub type AttributeDescription = LdapString;
/// RFC 4511 §4.1.8 `MatchingRuleId`.
pub type MatchingRuleId = LdapString;
/// RFC 4511 §4.1.10 `URI`.
pub type Uri = LdapString;
/// RFC 4511 §4.1.2 `LDAPOID ::= OCTET STRING -- <numericoid>`; kept as text, not syntax-checked.
pub type LdapOid = LdapString;
/// RFC 4511 §4.1.10 `Referral ::= SEQUENCE SIZE (1..MAX) OF uri URI`.
pub type Referral = Vec<Uri>;

/// RFC 4511 §4.1.1 `LDAPMessage`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct LdapMessage {
    /// `messageID MessageID` (0 is reserved for unsolicited notifications, §4.4).
    #[rasn(value("0..=2147483647"))]
    pub message_id: MessageId,
    /// `protocolOp CHOICE { ... }`.
    pub protocol_op: ProtocolOp,
    /// `controls [0] Controls OPTIONAL` (§4.1.11).
    #[rasn(tag(0))]
    pub controls: Option<Vec<Control>>,
}

/// RFC 4511 §4.1.1 the `protocolOp` CHOICE. Each variant carries its `[APPLICATION n]` tag.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
#[rasn(choice)]
pub enum ProtocolOp {
    /// `[APPLICATION 0]` §4.2.
    #[rasn(tag(application, 0))]
    BindRequest(BindRequest),
    /// `[APPLICATION 1]` §4.2.2.
    #[rasn(tag(application, 1))]
    BindResponse(BindResponse),
    /// `[APPLICATION 2] NULL` §4.3.
    #[rasn(tag(application, 2))]
    UnbindRequest(()),
    /// `[APPLICATION 3]` §4.5.1.
    #[rasn(tag(application, 3))]
    SearchRequest(SearchRequest),
    /// `[APPLICATION 4]` §4.5.2.
    #[rasn(tag(application, 4))]
    SearchResultEntry(SearchResultEntry),
    /// `[APPLICATION 5] LDAPResult` §4.5.2.
    #[rasn(tag(application, 5))]
    SearchResultDone(LdapResult),
    /// `[APPLICATION 19] SEQUENCE SIZE (1..MAX) OF uri URI` §4.5.3.
    #[rasn(tag(application, 19))]
    SearchResultReference(Vec<Uri>),
    /// `[APPLICATION 6]` §4.6.
    #[rasn(tag(application, 6))]
    ModifyRequest(ModifyRequest),
    /// `[APPLICATION 7] LDAPResult` §4.6.
    #[rasn(tag(application, 7))]
    ModifyResponse(LdapResult),
    /// `[APPLICATION 8]` §4.7.
    #[rasn(tag(application, 8))]
    AddRequest(AddRequest),
    /// `[APPLICATION 9] LDAPResult` §4.7.
    #[rasn(tag(application, 9))]
    AddResponse(LdapResult),
    /// `[APPLICATION 10] LDAPDN` §4.8.
    #[rasn(tag(application, 10))]
    DelRequest(LdapDn),
    /// `[APPLICATION 11] LDAPResult` §4.8.
    #[rasn(tag(application, 11))]
    DelResponse(LdapResult),
    /// `[APPLICATION 12]` §4.9.
    #[rasn(tag(application, 12))]
    ModifyDnRequest(ModifyDnRequest),
    /// `[APPLICATION 13] LDAPResult` §4.9.
    #[rasn(tag(application, 13))]
    ModifyDnResponse(LdapResult),
    /// `[APPLICATION 14]` §4.10.
    #[rasn(tag(application, 14))]
    CompareRequest(CompareRequest),
    /// `[APPLICATION 15] LDAPResult` §4.10.
    #[rasn(tag(application, 15))]
    CompareResponse(LdapResult),
    /// `[APPLICATION 16] MessageID` §4.11.
    #[rasn(tag(application, 16))]
    AbandonRequest(MessageId),
    /// `[APPLICATION 23]` §4.12.
    #[rasn(tag(application, 23))]
    ExtendedRequest(ExtendedRequest),
    /// `[APPLICATION 24]` §4.12.
    #[rasn(tag(application, 24))]
    ExtendedResponse(ExtendedResponse),
    /// `[APPLICATION 25]` §4.13.
    #[rasn(tag(application, 25))]
    IntermediateResponse(IntermediateResponse),
}

/// RFC 4511 §4.1.11 `Control`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// `controlType LDAPOID`.
    pub control_type: LdapOid,
    /// `criticality BOOLEAN DEFAULT FALSE` (FALSE is omitted on encode).
    #[rasn(default)]
    pub criticality: bool,
    /// `controlValue OCTET STRING OPTIONAL`: the BER of the control's own value type.
    pub control_value: Option<OctetString>,
}

/// RFC 4511 §4.2 `BindRequest`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct BindRequest {
    /// `version INTEGER (1 .. 127)`; only 3 is supported (checked by the caller, not here,
    /// so that another version gets a protocolError answer rather than a decode failure).
    pub version: u8,
    /// `name LDAPDN` (empty for anonymous and most SASL binds).
    pub name: LdapDn,
    /// `authentication AuthenticationChoice`.
    pub authentication: AuthenticationChoice,
}

/// RFC 4511 §4.2 `AuthenticationChoice`. Any other choice (e.g. MS Sicily `[9]`) fails to
/// decode; `codec::undecodable` maps such a bind to authMethodNotSupported.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
#[rasn(choice)]
pub enum AuthenticationChoice {
    /// `simple [0] OCTET STRING` (the password; binary-safe).
    #[rasn(tag(0))]
    Simple(OctetString),
    /// `sasl [3] SaslCredentials`.
    #[rasn(tag(3))]
    Sasl(SaslCredentials),
}

/// RFC 4511 §4.2 `SaslCredentials`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    /// `mechanism LDAPString`.
    pub mechanism: LdapString,
    /// `credentials OCTET STRING OPTIONAL`.
    pub credentials: Option<OctetString>,
}

/// RFC 4511 §4.2.2 `BindResponse ::= [APPLICATION 1] SEQUENCE { COMPONENTS OF LDAPResult,
/// serverSaslCreds [7] OCTET STRING OPTIONAL }`. The LDAPResult components are inlined.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct BindResponse {
    /// `resultCode`.
    pub result_code: ResultCode,
    /// `matchedDN`.
    pub matched_dn: LdapDn,
    /// `diagnosticMessage`.
    pub diagnostic_message: LdapString,
    /// `referral [3] Referral OPTIONAL`.
    #[rasn(tag(3))]
    pub referral: Option<Referral>,
    /// `serverSaslCreds [7] OCTET STRING OPTIONAL`.
    #[rasn(tag(7))]
    pub server_sasl_creds: Option<OctetString>,
}

/// RFC 4511 §4.5.1 `SearchRequest`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    /// `baseObject LDAPDN`.
    pub base_object: LdapDn,
    /// `scope ENUMERATED`.
    pub scope: SearchScope,
    /// `derefAliases ENUMERATED`.
    pub deref_aliases: DerefAliases,
    /// `sizeLimit INTEGER (0 .. maxInt)`; 0 = no client limit.
    #[rasn(value("0..=2147483647"))]
    pub size_limit: u32,
    /// `timeLimit INTEGER (0 .. maxInt)` in seconds; 0 = no client limit.
    #[rasn(value("0..=2147483647"))]
    pub time_limit: u32,
    /// `typesOnly BOOLEAN`.
    pub types_only: bool,
    /// `filter Filter`.
    pub filter: Filter,
    /// `attributes AttributeSelection ::= SEQUENCE OF selector LDAPString`.
    pub attributes: Vec<LdapString>,
}

/// RFC 4511 §4.5.1.2 search scope, plus `children` (3) from
/// draft-sermersheim-ldap-subordinate-scope (sent by `ldapsearch -s children`).
#[derive(AsnType, Encode, Decode, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rasn(enumerated)]
pub enum SearchScope {
    /// `baseObject (0)`.
    BaseObject = 0,
    /// `singleLevel (1)`.
    SingleLevel = 1,
    /// `wholeSubtree (2)`.
    WholeSubtree = 2,
    /// `subordinateSubtree (3)`: the subtree without the base.
    Children = 3,
}

/// RFC 4511 §4.5.1.3 `derefAliases`.
#[derive(AsnType, Encode, Decode, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rasn(enumerated)]
pub enum DerefAliases {
    /// `neverDerefAliases (0)`.
    Never = 0,
    /// `derefInSearching (1)`.
    InSearching = 1,
    /// `derefFindingBaseObj (2)`.
    FindingBaseObj = 2,
    /// `derefAlways (3)`.
    Always = 3,
}

/// RFC 4511 §4.5.1.7 `Filter`. `and`/`or` are `SET SIZE (1..MAX) OF Filter`; RFC 4526 allows
/// them empty (absolute true/false), so no size check here.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
#[rasn(choice)]
pub enum Filter {
    /// `and [0] SET OF Filter`.
    #[rasn(tag(0))]
    And(Vec<Filter>),
    /// `or [1] SET OF Filter`.
    #[rasn(tag(1))]
    Or(Vec<Filter>),
    /// `not [2] Filter` (explicit, because Filter is a CHOICE: X.680 §31.2.7).
    #[rasn(tag(explicit(2)))]
    Not(Box<Filter>),
    /// `equalityMatch [3] AttributeValueAssertion`.
    #[rasn(tag(3))]
    EqualityMatch(AttributeValueAssertion),
    /// `substrings [4] SubstringFilter`.
    #[rasn(tag(4))]
    Substrings(SubstringFilter),
    /// `greaterOrEqual [5] AttributeValueAssertion`.
    #[rasn(tag(5))]
    GreaterOrEqual(AttributeValueAssertion),
    /// `lessOrEqual [6] AttributeValueAssertion`.
    #[rasn(tag(6))]
    LessOrEqual(AttributeValueAssertion),
    /// `present [7] AttributeDescription`.
    #[rasn(tag(7))]
    Present(AttributeDescription),
    /// `approxMatch [8] AttributeValueAssertion`.
    #[rasn(tag(8))]
    ApproxMatch(AttributeValueAssertion),
    /// `extensibleMatch [9] MatchingRuleAssertion`.
    #[rasn(tag(9))]
    ExtensibleMatch(MatchingRuleAssertion),
}

/// RFC 4511 §4.1.6 `AttributeValueAssertion`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct AttributeValueAssertion {
    /// `attributeDesc AttributeDescription`.
    pub attribute_desc: AttributeDescription,
    /// `assertionValue AssertionValue` (binary-safe).
    pub assertion_value: OctetString,
}

/// RFC 4511 §4.5.1.7 `SubstringFilter`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct SubstringFilter {
    /// `type AttributeDescription`.
    pub attr_type: AttributeDescription,
    /// `substrings SEQUENCE SIZE (1..MAX) OF substring CHOICE {...}`.
    pub substrings: Vec<Substring>,
}

/// One element of `SubstringFilter.substrings`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
#[rasn(choice)]
pub enum Substring {
    /// `initial [0] AssertionValue` (at most one, first).
    #[rasn(tag(0))]
    Initial(OctetString),
    /// `any [1] AssertionValue`.
    #[rasn(tag(1))]
    Any(OctetString),
    /// `final [2] AssertionValue` (at most one, last).
    #[rasn(tag(2))]
    Final(OctetString),
}

/// RFC 4511 §4.5.1.7 `MatchingRuleAssertion`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct MatchingRuleAssertion {
    /// `matchingRule [1] MatchingRuleId OPTIONAL`.
    #[rasn(tag(1))]
    pub matching_rule: Option<MatchingRuleId>,
    /// `type [2] AttributeDescription OPTIONAL`.
    #[rasn(tag(2))]
    pub attr_type: Option<AttributeDescription>,
    /// `matchValue [3] AssertionValue`.
    #[rasn(tag(3))]
    pub match_value: OctetString,
    /// `dnAttributes [4] BOOLEAN DEFAULT FALSE`.
    #[rasn(tag(4), default)]
    pub dn_attributes: bool,
}

/// RFC 4511 §4.5.2 `SearchResultEntry`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct SearchResultEntry {
    /// `objectName LDAPDN`.
    pub object_name: LdapDn,
    /// `attributes PartialAttributeList ::= SEQUENCE OF PartialAttribute`.
    pub attributes: Vec<PartialAttribute>,
}

/// RFC 4511 §4.1.7 `PartialAttribute` (also used for `Attribute`, whose `vals` must be
/// non-empty; that check belongs to the operation, which answers with a proper result code).
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct PartialAttribute {
    /// `type AttributeDescription`.
    pub attr_type: AttributeDescription,
    /// `vals SET OF value AttributeValue` (empty for typesOnly).
    pub vals: AttributeValues,
}

/// RFC 4511 §4.1.7 `Attribute`: a `PartialAttribute` with at least one value.
pub type Attribute = PartialAttribute;

/// `SET OF AttributeValue`, encoded in insertion order (see the module invariants: a SET-tagged
/// newtype over `Vec`, so rasn's DER-style sorting of `SetOf` is avoided; BER does not require
/// sorting, X.690 §8.12.3).
#[derive(AsnType, Encode, Decode, Debug, Clone, Default, PartialEq, Eq)]
#[rasn(delegate, tag(universal, 17))]
pub struct AttributeValues(pub Vec<OctetString>);

/// RFC 4511 §4.6 `ModifyRequest`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct ModifyRequest {
    /// `object LDAPDN`.
    pub object: LdapDn,
    /// `changes SEQUENCE OF change SEQUENCE {...}`, applied in order.
    pub changes: Vec<Change>,
}

/// One element of `ModifyRequest.changes`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `operation ENUMERATED`.
    pub operation: ModifyOperation,
    /// `modification PartialAttribute`.
    pub modification: PartialAttribute,
}

/// RFC 4511 §4.6 modify operation, plus `increment` (3) from RFC 4525.
#[derive(AsnType, Encode, Decode, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rasn(enumerated)]
pub enum ModifyOperation {
    /// `add (0)`.
    Add = 0,
    /// `delete (1)`.
    Delete = 1,
    /// `replace (2)`.
    Replace = 2,
    /// `increment (3)`, RFC 4525 §2.
    Increment = 3,
}

/// RFC 4511 §4.7 `AddRequest`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct AddRequest {
    /// `entry LDAPDN`.
    pub entry: LdapDn,
    /// `attributes AttributeList ::= SEQUENCE OF attribute Attribute`.
    pub attributes: Vec<Attribute>,
}

/// RFC 4511 §4.9 `ModifyDNRequest`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct ModifyDnRequest {
    /// `entry LDAPDN`.
    pub entry: LdapDn,
    /// `newrdn RelativeLDAPDN`.
    pub new_rdn: RelativeLdapDn,
    /// `deleteoldrdn BOOLEAN`.
    pub delete_old_rdn: bool,
    /// `newSuperior [0] LDAPDN OPTIONAL`.
    #[rasn(tag(0))]
    pub new_superior: Option<LdapDn>,
}

/// RFC 4511 §4.10 `CompareRequest`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct CompareRequest {
    /// `entry LDAPDN`.
    pub entry: LdapDn,
    /// `ava AttributeValueAssertion`.
    pub ava: AttributeValueAssertion,
}

/// RFC 4511 §4.12 `ExtendedRequest`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct ExtendedRequest {
    /// `requestName [0] LDAPOID`.
    #[rasn(tag(0))]
    pub request_name: LdapOid,
    /// `requestValue [1] OCTET STRING OPTIONAL`.
    #[rasn(tag(1))]
    pub request_value: Option<OctetString>,
}

/// RFC 4511 §4.12 `ExtendedResponse ::= [APPLICATION 24] SEQUENCE { COMPONENTS OF LDAPResult,
/// responseName [10] LDAPOID OPTIONAL, responseValue [11] OCTET STRING OPTIONAL }`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct ExtendedResponse {
    /// `resultCode`.
    pub result_code: ResultCode,
    /// `matchedDN`.
    pub matched_dn: LdapDn,
    /// `diagnosticMessage`.
    pub diagnostic_message: LdapString,
    /// `referral [3] Referral OPTIONAL`.
    #[rasn(tag(3))]
    pub referral: Option<Referral>,
    /// `responseName [10] LDAPOID OPTIONAL`.
    #[rasn(tag(10))]
    pub response_name: Option<LdapOid>,
    /// `responseValue [11] OCTET STRING OPTIONAL`.
    #[rasn(tag(11))]
    pub response_value: Option<OctetString>,
}

/// RFC 4511 §4.13 `IntermediateResponse`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct IntermediateResponse {
    /// `responseName [0] LDAPOID OPTIONAL`.
    #[rasn(tag(0))]
    pub response_name: Option<LdapOid>,
    /// `responseValue [1] OCTET STRING OPTIONAL`.
    #[rasn(tag(1))]
    pub response_value: Option<OctetString>,
}

/// RFC 4511 §4.1.9 `LDAPResult`.
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct LdapResult {
    /// `resultCode ENUMERATED`.
    pub result_code: ResultCode,
    /// `matchedDN LDAPDN`.
    pub matched_dn: LdapDn,
    /// `diagnosticMessage LDAPString`.
    pub diagnostic_message: LdapString,
    /// `referral [3] Referral OPTIONAL`.
    #[rasn(tag(3))]
    pub referral: Option<Referral>,
}

/// RFC 4511 §4.1.9 and Appendix A result codes, plus RFC 3909 (118–121), RFC 4528 (122),
/// RFC 4370 (123), RFC 4533 (4096) and the VLV draft (76).
#[derive(AsnType, Encode, Decode, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rasn(enumerated)]
pub enum ResultCode {
    /// 0
    Success = 0,
    /// 1
    OperationsError = 1,
    /// 2
    ProtocolError = 2,
    /// 3
    TimeLimitExceeded = 3,
    /// 4
    SizeLimitExceeded = 4,
    /// 5
    CompareFalse = 5,
    /// 6
    CompareTrue = 6,
    /// 7
    AuthMethodNotSupported = 7,
    /// 8
    StrongerAuthRequired = 8,
    /// 10
    Referral = 10,
    /// 11
    AdminLimitExceeded = 11,
    /// 12
    UnavailableCriticalExtension = 12,
    /// 13
    ConfidentialityRequired = 13,
    /// 14
    SaslBindInProgress = 14,
    /// 16
    NoSuchAttribute = 16,
    /// 17
    UndefinedAttributeType = 17,
    /// 18
    InappropriateMatching = 18,
    /// 19
    ConstraintViolation = 19,
    /// 20
    AttributeOrValueExists = 20,
    /// 21
    InvalidAttributeSyntax = 21,
    /// 32
    NoSuchObject = 32,
    /// 33
    AliasProblem = 33,
    /// 34
    InvalidDnSyntax = 34,
    /// 36
    AliasDereferencingProblem = 36,
    /// 48
    InappropriateAuthentication = 48,
    /// 49
    InvalidCredentials = 49,
    /// 50
    InsufficientAccessRights = 50,
    /// 51
    Busy = 51,
    /// 52
    Unavailable = 52,
    /// 53
    UnwillingToPerform = 53,
    /// 54
    LoopDetect = 54,
    /// 64
    NamingViolation = 64,
    /// 65
    ObjectClassViolation = 65,
    /// 66
    NotAllowedOnNonLeaf = 66,
    /// 67
    NotAllowedOnRdn = 67,
    /// 68
    EntryAlreadyExists = 68,
    /// 69
    ObjectClassModsProhibited = 69,
    /// 71
    AffectsMultipleDsas = 71,
    /// 76 (draft-ietf-ldapext-ldapv3-vlv)
    VirtualListViewError = 76,
    /// 80
    Other = 80,
    /// 118 (RFC 3909)
    Canceled = 118,
    /// 119 (RFC 3909)
    NoSuchOperation = 119,
    /// 120 (RFC 3909)
    TooLate = 120,
    /// 121 (RFC 3909)
    CannotCancel = 121,
    /// 122 (RFC 4528)
    AssertionFailed = 122,
    /// 123 (RFC 4370)
    AuthorizationDenied = 123,
    /// 4096 (RFC 4533 e-syncRefreshRequired)
    SyncRefreshRequired = 4096,
}

impl LdapMessage {
    /// A message without controls.
    pub fn new(message_id: MessageId, protocol_op: ProtocolOp) -> Self {
        Self {
            message_id,
            protocol_op,
            controls: None,
        }
    }

    /// The same message with `controls` attached (an empty list is sent as absent).
    pub fn with_controls(mut self, controls: Vec<Control>) -> Self {
        self.controls = if controls.is_empty() {
            None
        } else {
            Some(controls)
        };
        self
    }

    /// The controls, or an empty slice.
    pub fn controls(&self) -> &[Control] {
        self.controls.as_deref().unwrap_or(&[])
    }
}

impl ProtocolOp {
    /// The BER identifier octet of this op (e.g. 0x60 for BindRequest, 0x42 for UnbindRequest),
    /// as `codec::peek` reports it.
    pub fn tag_byte(&self) -> u8 {
        // X.690 §8.1.2: class APPLICATION = 0b01, constructed bit 0x20.
        const APP: u8 = 0x40;
        const CONS: u8 = 0x60;
        match self {
            ProtocolOp::BindRequest(_) => CONS,
            ProtocolOp::BindResponse(_) => CONS | 1,
            ProtocolOp::UnbindRequest(_) => APP | 2,
            ProtocolOp::SearchRequest(_) => CONS | 3,
            ProtocolOp::SearchResultEntry(_) => CONS | 4,
            ProtocolOp::SearchResultDone(_) => CONS | 5,
            ProtocolOp::SearchResultReference(_) => CONS | 19,
            ProtocolOp::ModifyRequest(_) => CONS | 6,
            ProtocolOp::ModifyResponse(_) => CONS | 7,
            ProtocolOp::AddRequest(_) => CONS | 8,
            ProtocolOp::AddResponse(_) => CONS | 9,
            ProtocolOp::DelRequest(_) => APP | 10,
            ProtocolOp::DelResponse(_) => CONS | 11,
            ProtocolOp::ModifyDnRequest(_) => CONS | 12,
            ProtocolOp::ModifyDnResponse(_) => CONS | 13,
            ProtocolOp::CompareRequest(_) => CONS | 14,
            ProtocolOp::CompareResponse(_) => CONS | 15,
            ProtocolOp::AbandonRequest(_) => APP | 16,
            ProtocolOp::ExtendedRequest(_) => CONS | 23,
            ProtocolOp::ExtendedResponse(_) => CONS | 24,
            ProtocolOp::IntermediateResponse(_) => CONS | 25,
        }
    }

    /// The response op that answers a request with the given BER identifier octet with
    /// `result`, or `None` for requests without a response (unbind, abandon) and for
    /// response tags. Used to answer a request that failed to decode (RFC 4511 §4.1.1).
    pub fn response_to(request_tag: u8, result: LdapResult) -> Option<ProtocolOp> {
        Some(match request_tag {
            0x60 => ProtocolOp::BindResponse(BindResponse::new(result, None)),
            0x63 => ProtocolOp::SearchResultDone(result),
            0x66 => ProtocolOp::ModifyResponse(result),
            0x68 => ProtocolOp::AddResponse(result),
            0x4a | 0x6a => ProtocolOp::DelResponse(result),
            0x6c => ProtocolOp::ModifyDnResponse(result),
            0x6e => ProtocolOp::CompareResponse(result),
            0x77 => ProtocolOp::ExtendedResponse(ExtendedResponse::new(result, None, None)),
            _ => return None,
        })
    }
}

impl Control {
    /// A control with the given OID, criticality and optional BER value.
    pub fn new(oid: &str, criticality: bool, value: Option<Vec<u8>>) -> Self {
        Self {
            control_type: oid.into(),
            criticality,
            control_value: value.map(OctetString::from),
        }
    }

    /// Whether this control has the OID `oid`.
    pub fn is(&self, oid: &str) -> bool {
        self.control_type.0 == oid
    }

    /// The control value bytes, or empty if absent.
    pub fn value(&self) -> &[u8] {
        self.control_value.as_deref().unwrap_or(&[])
    }
}

impl BindRequest {
    /// An LDAPv3 simple bind.
    pub fn simple(name: &str, password: &[u8]) -> Self {
        Self {
            version: 3,
            name: name.into(),
            authentication: AuthenticationChoice::Simple(OctetString::from_slice(password)),
        }
    }

    /// An LDAPv3 SASL bind.
    pub fn sasl(name: &str, mechanism: &str, credentials: Option<Vec<u8>>) -> Self {
        Self {
            version: 3,
            name: name.into(),
            authentication: AuthenticationChoice::Sasl(SaslCredentials {
                mechanism: mechanism.into(),
                credentials: credentials.map(OctetString::from),
            }),
        }
    }
}

impl BindResponse {
    /// A bind response carrying `result` and, for SASL, the server's credentials.
    pub fn new(result: LdapResult, server_sasl_creds: Option<Vec<u8>>) -> Self {
        Self {
            result_code: result.result_code,
            matched_dn: result.matched_dn,
            diagnostic_message: result.diagnostic_message,
            referral: result.referral,
            server_sasl_creds: server_sasl_creds.map(OctetString::from),
        }
    }

    /// The LDAPResult components.
    pub fn result(&self) -> LdapResult {
        LdapResult {
            result_code: self.result_code,
            matched_dn: self.matched_dn.clone(),
            diagnostic_message: self.diagnostic_message.clone(),
            referral: self.referral.clone(),
        }
    }
}

impl ExtendedResponse {
    /// An extended response carrying `result`, an optional response name and value.
    pub fn new(result: LdapResult, name: Option<&str>, value: Option<Vec<u8>>) -> Self {
        Self {
            result_code: result.result_code,
            matched_dn: result.matched_dn,
            diagnostic_message: result.diagnostic_message,
            referral: result.referral,
            response_name: name.map(LdapString::from),
            response_value: value.map(OctetString::from),
        }
    }

    /// The LDAPResult components.
    pub fn result(&self) -> LdapResult {
        LdapResult {
            result_code: self.result_code,
            matched_dn: self.matched_dn.clone(),
            diagnostic_message: self.diagnostic_message.clone(),
            referral: self.referral.clone(),
        }
    }
}

impl ExtendedRequest {
    /// An extended request with the given OID and optional value.
    pub fn new(name: &str, value: Option<Vec<u8>>) -> Self {
        Self {
            request_name: name.into(),
            request_value: value.map(OctetString::from),
        }
    }
}

impl LdapResult {
    /// A result without referral.
    pub fn new(result_code: ResultCode, matched_dn: &str, diagnostic_message: &str) -> Self {
        Self {
            result_code,
            matched_dn: matched_dn.into(),
            diagnostic_message: diagnostic_message.into(),
            referral: None,
        }
    }

    /// `success` with empty matchedDN and message.
    pub fn success() -> Self {
        Self::new(ResultCode::Success, "", "")
    }
}

impl PartialAttribute {
    /// An attribute with the given values (in this order on the wire).
    pub fn new(attr_type: &str, vals: Vec<Vec<u8>>) -> Self {
        Self {
            attr_type: attr_type.into(),
            vals: AttributeValues(vals.into_iter().map(OctetString::from).collect()),
        }
    }
}

impl SearchResultEntry {
    /// An entry with the given DN and attributes.
    pub fn new(object_name: &str, attributes: Vec<PartialAttribute>) -> Self {
        Self {
            object_name: object_name.into(),
            attributes,
        }
    }
}

impl AttributeValueAssertion {
    /// `attribute_desc = value`.
    pub fn new(attribute_desc: &str, value: &[u8]) -> Self {
        Self {
            attribute_desc: attribute_desc.into(),
            assertion_value: OctetString::from_slice(value),
        }
    }
}

impl ResultCode {
    /// The numeric code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The result code for a number, if dird knows it.
    pub fn from_code(code: u32) -> Option<Self> {
        ALL_RESULT_CODES.iter().copied().find(|c| c.code() == code)
    }
}

/// Every `ResultCode`, in numeric order.
pub const ALL_RESULT_CODES: [ResultCode; 47] = {
    use ResultCode::*;
    [
        Success,
        OperationsError,
        ProtocolError,
        TimeLimitExceeded,
        SizeLimitExceeded,
        CompareFalse,
        CompareTrue,
        AuthMethodNotSupported,
        StrongerAuthRequired,
        Referral,
        AdminLimitExceeded,
        UnavailableCriticalExtension,
        ConfidentialityRequired,
        SaslBindInProgress,
        NoSuchAttribute,
        UndefinedAttributeType,
        InappropriateMatching,
        ConstraintViolation,
        AttributeOrValueExists,
        InvalidAttributeSyntax,
        NoSuchObject,
        AliasProblem,
        InvalidDnSyntax,
        AliasDereferencingProblem,
        InappropriateAuthentication,
        InvalidCredentials,
        InsufficientAccessRights,
        Busy,
        Unavailable,
        UnwillingToPerform,
        LoopDetect,
        NamingViolation,
        ObjectClassViolation,
        NotAllowedOnNonLeaf,
        NotAllowedOnRdn,
        EntryAlreadyExists,
        ObjectClassModsProhibited,
        AffectsMultipleDsas,
        VirtualListViewError,
        Other,
        Canceled,
        NoSuchOperation,
        TooLate,
        CannotCancel,
        AssertionFailed,
        AuthorizationDenied,
        SyncRefreshRequired,
    ]
};

impl LdapString {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for LdapString {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LdapString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for LdapString {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for LdapString {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<LdapString> for String {
    fn from(s: LdapString) -> Self {
        s.0
    }
}

impl PartialEq<str> for LdapString {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for LdapString {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl AttributeValues {
    /// The values as byte slices, in wire order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(|v| v.as_ref())
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No values (typesOnly).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn round_trip(op: ProtocolOp) -> Vec<u8> {
        let mut msg = LdapMessage::new(42, op);
        msg.controls = Some(vec![Control::new("1.2.3.4", true, Some(vec![1, 2, 3]))]);
        let bytes = rasn::ber::encode(&msg).unwrap();
        let back: LdapMessage = rasn::ber::decode(&bytes).unwrap();
        assert_eq!(back, msg);
        bytes
    }

    fn filter() -> Filter {
        Filter::And(vec![
            Filter::Or(vec![
                Filter::EqualityMatch(AttributeValueAssertion::new(
                    "objectGUID",
                    b"\xff\xfe\0\x01",
                )),
                Filter::Present("mail".into()),
            ]),
            Filter::Not(Box::new(Filter::Substrings(SubstringFilter {
                attr_type: "cn".into(),
                substrings: vec![
                    Substring::Initial(OctetString::from_static(b"Al")),
                    Substring::Any(OctetString::from_static(b"ce")),
                    Substring::Final(OctetString::from_static(b"l")),
                ],
            }))),
            Filter::GreaterOrEqual(AttributeValueAssertion::new("uid", b"a")),
            Filter::LessOrEqual(AttributeValueAssertion::new("uid", b"b")),
            Filter::ApproxMatch(AttributeValueAssertion::new("cn", b"alice")),
            Filter::ExtensibleMatch(MatchingRuleAssertion {
                matching_rule: Some("1.2.840.113556.1.4.803".into()),
                attr_type: Some("userAccountControl".into()),
                match_value: OctetString::from_static(b"2"),
                dn_attributes: true,
            }),
            Filter::And(vec![]),
        ])
    }

    #[test]
    fn every_op_round_trips() {
        let result = LdapResult {
            referral: Some(vec!["ldap://other/".into()]),
            ..LdapResult::new(ResultCode::Referral, "dc=x", "see other")
        };
        let ops = vec![
            ProtocolOp::BindRequest(BindRequest::simple("cn=a", b"\xff\xfe")),
            ProtocolOp::BindRequest(BindRequest::sasl("", "GSSAPI", Some(vec![1, 2]))),
            ProtocolOp::BindRequest(BindRequest::sasl("", "EXTERNAL", None)),
            ProtocolOp::BindResponse(BindResponse::new(result.clone(), Some(vec![9]))),
            ProtocolOp::UnbindRequest(()),
            ProtocolOp::SearchRequest(SearchRequest {
                base_object: "dc=example,dc=com".into(),
                scope: SearchScope::Children,
                deref_aliases: DerefAliases::Always,
                size_limit: MAX_INT,
                time_limit: 10,
                types_only: true,
                filter: filter(),
                attributes: vec!["cn".into(), "+".into()],
            }),
            ProtocolOp::SearchResultEntry(SearchResultEntry::new(
                "cn=a,dc=x",
                vec![
                    PartialAttribute::new("cn", vec![b"a".to_vec()]),
                    PartialAttribute::new("objectGUID", vec![vec![0xff, 0]]),
                    PartialAttribute::new("typesOnly", vec![]),
                ],
            )),
            ProtocolOp::SearchResultDone(result.clone()),
            ProtocolOp::SearchResultReference(vec!["ldap://a/dc=x".into(), "ldap://b/".into()]),
            ProtocolOp::ModifyRequest(ModifyRequest {
                object: "cn=a".into(),
                changes: vec![
                    Change {
                        operation: ModifyOperation::Increment,
                        modification: PartialAttribute::new("uidNumber", vec![b"1".to_vec()]),
                    },
                    Change {
                        operation: ModifyOperation::Delete,
                        modification: PartialAttribute::new("sn", vec![]),
                    },
                ],
            }),
            ProtocolOp::ModifyResponse(LdapResult::success()),
            ProtocolOp::AddRequest(AddRequest {
                entry: "cn=a".into(),
                attributes: vec![PartialAttribute::new(
                    "sn",
                    vec![b"zz".to_vec(), b"aa".to_vec()],
                )],
            }),
            ProtocolOp::AddResponse(LdapResult::new(ResultCode::EntryAlreadyExists, "", "")),
            ProtocolOp::DelRequest("cn=a".into()),
            ProtocolOp::DelResponse(LdapResult::new(ResultCode::NotAllowedOnNonLeaf, "", "")),
            ProtocolOp::ModifyDnRequest(ModifyDnRequest {
                entry: "cn=a,dc=x".into(),
                new_rdn: "cn=b".into(),
                delete_old_rdn: true,
                new_superior: Some("ou=y,dc=x".into()),
            }),
            ProtocolOp::ModifyDnRequest(ModifyDnRequest {
                entry: "cn=a,dc=x".into(),
                new_rdn: "cn=b".into(),
                delete_old_rdn: false,
                new_superior: None,
            }),
            ProtocolOp::ModifyDnResponse(LdapResult::success()),
            ProtocolOp::CompareRequest(CompareRequest {
                entry: "cn=a".into(),
                ava: AttributeValueAssertion::new("sn", b"zz"),
            }),
            ProtocolOp::CompareResponse(LdapResult::new(ResultCode::CompareTrue, "", "")),
            ProtocolOp::AbandonRequest(MAX_INT),
            ProtocolOp::ExtendedRequest(ExtendedRequest::new("1.3.6.1.4.1.4203.1.11.3", None)),
            ProtocolOp::ExtendedRequest(ExtendedRequest::new("1.2.3", Some(vec![0, 1]))),
            ProtocolOp::ExtendedResponse(ExtendedResponse::new(
                LdapResult::success(),
                Some("1.2.3"),
                Some(b"dn:cn=a".to_vec()),
            )),
            ProtocolOp::IntermediateResponse(IntermediateResponse {
                response_name: Some("1.2.3".into()),
                response_value: Some(OctetString::from_static(b"v")),
            }),
            ProtocolOp::IntermediateResponse(IntermediateResponse {
                response_name: None,
                response_value: None,
            }),
        ];
        for op in ops {
            let tag = op.tag_byte();
            let bytes = round_trip(op);
            // 30 len 02 01 2a <op tag>
            let at = bytes
                .windows(3)
                .position(|w| w == [0x02, 0x01, 0x2a])
                .unwrap();
            assert_eq!(bytes[at + 3], tag, "{bytes:02x?}");
        }
    }

    #[test]
    fn every_result_code_round_trips() {
        for code in ALL_RESULT_CODES {
            assert_eq!(ResultCode::from_code(code.code()), Some(code));
            round_trip(ProtocolOp::ModifyResponse(LdapResult::new(code, "", "")));
        }
        assert_eq!(
            ResultCode::from_code(4096),
            Some(ResultCode::SyncRefreshRequired)
        );
        assert_eq!(ResultCode::from_code(9), None);
        let bytes = rasn::ber::encode(&ResultCode::SyncRefreshRequired).unwrap();
        assert_eq!(bytes, [0x0a, 0x02, 0x10, 0x00]);
    }

    #[test]
    fn search_result_done_matches_libldap_bytes() {
        // ldap-codec.md: identical to ldap3_proto and accepted by libldap.
        let msg = LdapMessage::new(7, ProtocolOp::SearchResultDone(LdapResult::success()));
        let bytes = rasn::ber::encode(&msg).unwrap();
        assert_eq!(
            bytes,
            [0x30, 0x0c, 0x02, 0x01, 0x07, 0x65, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00]
        );
    }

    #[test]
    fn attribute_values_keep_insertion_order() {
        let attr = PartialAttribute::new("sn", vec![b"zz".to_vec(), b"a".to_vec(), b"mm".to_vec()]);
        let bytes = rasn::ber::encode(&attr).unwrap();
        let tail = [
            0x31, 0x0b, 0x04, 0x02, b'z', b'z', 0x04, 0x01, b'a', 0x04, 0x02, b'm', b'm',
        ];
        assert!(bytes.ends_with(&tail), "{bytes:02x?}");
        // Decoding takes any order and keeps the wire order.
        let back: PartialAttribute = rasn::ber::decode(&bytes).unwrap();
        assert_eq!(
            back.vals.iter().collect::<Vec<_>>(),
            vec![&b"zz"[..], b"a", b"mm"]
        );
    }

    #[test]
    fn not_filter_is_explicitly_tagged() {
        let f = Filter::Not(Box::new(Filter::Present("uid".into())));
        assert_eq!(
            rasn::ber::encode(&f).unwrap(),
            [0xa2, 0x05, 0x87, 0x03, b'u', b'i', b'd']
        );
    }

    #[test]
    fn control_criticality_false_is_omitted() {
        let c = Control::new("1.2", false, None);
        assert_eq!(
            rasn::ber::encode(&c).unwrap(),
            [0x30, 0x05, 0x04, 0x03, b'1', b'.', b'2']
        );
        let c = Control::new("1.2", true, None);
        let bytes = rasn::ber::encode(&c).unwrap();
        assert_eq!(
            bytes,
            [0x30, 0x08, 0x04, 0x03, b'1', b'.', b'2', 0x01, 0x01, 0xff]
        );
        assert!(rasn::ber::decode::<Control>(&bytes).unwrap().criticality);
    }

    #[test]
    fn message_id_range_is_enforced() {
        // 30 07 02 04 80 00 00 00 42 00 : msgid 2^31 (as unsigned) -> out of range
        let too_big = [0x30, 0x09, 0x02, 0x05, 0x00, 0x80, 0, 0, 0, 0x42, 0x00];
        assert!(rasn::ber::decode::<LdapMessage>(&too_big).is_err());
        let negative = [0x30, 0x05, 0x02, 0x01, 0xff, 0x42, 0x00];
        assert!(rasn::ber::decode::<LdapMessage>(&negative).is_err());
        let max = [0x30, 0x08, 0x02, 0x04, 0x7f, 0xff, 0xff, 0xff, 0x42, 0x00];
        assert_eq!(
            rasn::ber::decode::<LdapMessage>(&max).unwrap().message_id,
            MAX_INT
        );
    }

    #[test]
    fn non_utf8_ldap_string_is_rejected() {
        let del = [0x30, 0x06, 0x02, 0x01, 0x01, 0x4a, 0x01, 0xff];
        assert!(rasn::ber::decode::<LdapMessage>(&del).is_err());
    }

    #[test]
    fn response_to_covers_every_request() {
        let r = LdapResult::success();
        for (tag, want) in [
            (0x60u8, 0x61u8),
            (0x63, 0x65),
            (0x66, 0x67),
            (0x68, 0x69),
            (0x4a, 0x6b),
            (0x6c, 0x6d),
            (0x6e, 0x6f),
            (0x77, 0x78),
        ] {
            let op = ProtocolOp::response_to(tag, r.clone()).unwrap();
            assert_eq!(op.tag_byte(), want);
        }
        assert!(ProtocolOp::response_to(0x42, r.clone()).is_none());
        assert!(ProtocolOp::response_to(0x50, r.clone()).is_none());
        assert!(ProtocolOp::response_to(0x61, r).is_none());
    }
}
