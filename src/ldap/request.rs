//! Decoded LDAP messages → typed `Request`s ("parse, don't validate"). DNs are parsed,
//! filters converted to the model, controls checked. A request that cannot be typed gets an
//! `LdapResult` saying why, sent as the matching response.
//! May import: `model`, `ldap::{proto, controls, convert}`.

use crate::backend::Scope;
use crate::ldap::controls::{self, BerValue, PagedResults};
use crate::ldap::convert;
use crate::ldap::proto::{
    self, AuthenticationChoice, LdapMessage, LdapResult, ProtocolOp, ResultCode,
};
use crate::model::{Dn, Entry, Filter, ModOp, Modification, Rdn};

/// A typed request.
#[derive(Debug)]
pub enum Request {
    /// Bind
    Bind(BindReq),
    /// Unbind
    Unbind,
    /// Search
    Search(SearchReq),
    /// Modify
    Modify {
        /// target
        dn: Dn,
        /// changes in order
        mods: Vec<Modification>,
    },
    /// Add
    Add(Entry),
    /// Delete
    Delete(Dn),
    /// ModifyDN
    ModifyDn {
        /// target
        dn: Dn,
        /// new RDN
        new_rdn: Rdn,
        /// remove the old RDN values
        delete_old_rdn: bool,
        /// new parent
        new_superior: Option<Dn>,
    },
    /// Compare
    Compare {
        /// target
        dn: Dn,
        /// attribute description
        attr: String,
        /// assertion value
        value: Vec<u8>,
    },
    /// Abandon
    Abandon(u32),
    /// Extended operation
    Extended {
        /// OID
        name: String,
        /// request value
        value: Option<Vec<u8>>,
    },
}

/// A bind request.
#[derive(Debug)]
pub struct BindReq {
    /// protocol version
    pub version: u8,
    /// name (DN, UPN or down-level)
    pub name: String,
    /// credentials
    pub auth: BindAuth,
    /// the password-policy request control was sent (set from the message's controls)
    pub ppolicy: bool,
}

/// Bind credentials.
#[derive(Debug)]
pub enum BindAuth {
    /// simple password
    Simple(Vec<u8>),
    /// a SASL mechanism and the client's credentials (empty when absent)
    Sasl(String, Vec<u8>),
}

/// A search request.
#[derive(Debug, Clone)]
pub struct SearchReq {
    /// base DN
    pub base: Dn,
    /// scope
    pub scope: Scope,
    /// size limit
    pub size_limit: u32,
    /// time limit (s)
    pub time_limit: u32,
    /// return attribute names only
    pub types_only: bool,
    /// filter
    pub filter: Filter,
    /// requested attributes
    pub attrs: Vec<String>,
}

/// Request controls dird understands.
#[derive(Debug, Default)]
pub struct RequestControls {
    /// RFC 2696 paged results
    pub paged: Option<PagedResults>,
    /// ManageDsaIT (accepted; dird stores no referral objects)
    pub manage_dsa_it: bool,
    /// password-policy request control
    pub ppolicy: bool,
}

/// Types the controls of a message. An unknown critical control gives
/// unavailableCriticalExtension (RFC 4511 §4.1.11); unknown non-critical ones are ignored.
pub fn controls(msg: &LdapMessage) -> Result<RequestControls, LdapResult> {
    let mut out = RequestControls::default();
    let is_search = matches!(msg.protocol_op, ProtocolOp::SearchRequest(_));
    for c in msg.controls() {
        if c.is(controls::PAGED_RESULTS) && is_search {
            let v = PagedResults::from_ber(c.value()).map_err(|_| {
                LdapResult::new(
                    ResultCode::ProtocolError,
                    "",
                    "malformed paged results control value",
                )
            })?;
            out.paged = Some(v);
        } else if c.is(controls::MANAGE_DSA_IT) {
            out.manage_dsa_it = true;
        } else if c.is(controls::PASSWORD_POLICY) {
            out.ppolicy = true;
        } else if c.criticality {
            return Err(LdapResult::new(
                ResultCode::UnavailableCriticalExtension,
                "",
                &format!("critical control {} is not supported", c.control_type.0),
            ));
        }
    }
    Ok(out)
}

fn dn(s: &proto::LdapString) -> Result<Dn, LdapResult> {
    Dn::parse(&s.0).map_err(|e| LdapResult::new(ResultCode::InvalidDnSyntax, "", &e.to_string()))
}

fn protocol(msg: &str) -> LdapResult {
    LdapResult::new(ResultCode::ProtocolError, "", msg)
}

impl TryFrom<ProtocolOp> for Request {
    type Error = LdapResult;

    fn try_from(op: ProtocolOp) -> Result<Request, LdapResult> {
        Ok(match op {
            ProtocolOp::BindRequest(b) => Request::Bind(BindReq {
                version: b.version,
                name: b.name.0,
                auth: match b.authentication {
                    AuthenticationChoice::Simple(pw) => BindAuth::Simple(pw.to_vec()),
                    AuthenticationChoice::Sasl(s) => BindAuth::Sasl(
                        s.mechanism.0,
                        s.credentials.map(|c| c.to_vec()).unwrap_or_default(),
                    ),
                },
                ppolicy: false,
            }),
            ProtocolOp::UnbindRequest(_) => Request::Unbind,
            ProtocolOp::SearchRequest(s) => Request::Search(SearchReq {
                base: dn(&s.base_object)?,
                scope: match s.scope {
                    proto::SearchScope::BaseObject => Scope::Base,
                    proto::SearchScope::SingleLevel => Scope::One,
                    proto::SearchScope::WholeSubtree => Scope::Subtree,
                    proto::SearchScope::Children => Scope::Children,
                },
                size_limit: s.size_limit,
                time_limit: s.time_limit,
                types_only: s.types_only,
                filter: convert::filter_to_model(&s.filter)
                    .map_err(|e| protocol(&e.to_string()))?,
                attrs: s.attributes.into_iter().map(|a| a.0).collect(),
            }),
            ProtocolOp::ModifyRequest(m) => {
                let dn = dn(&m.object)?;
                let mods = m
                    .changes
                    .into_iter()
                    .map(|c| Modification {
                        op: match c.operation {
                            proto::ModifyOperation::Add => ModOp::Add,
                            proto::ModifyOperation::Delete => ModOp::Delete,
                            proto::ModifyOperation::Replace => ModOp::Replace,
                            proto::ModifyOperation::Increment => ModOp::Increment,
                        },
                        attr: c.modification.attr_type.0,
                        values: c
                            .modification
                            .vals
                            .0
                            .into_iter()
                            .map(|v| v.to_vec())
                            .collect(),
                    })
                    .collect();
                Request::Modify { dn, mods }
            }
            ProtocolOp::AddRequest(a) => {
                let mut e = Entry::new(dn(&a.entry)?);
                for attr in a.attributes {
                    if attr.vals.0.is_empty() {
                        // RFC 4511 §4.7: each attribute of an add carries at least one value.
                        return Err(protocol("attribute without values in add request"));
                    }
                    for v in attr.vals.0 {
                        e.push(&attr.attr_type.0, v.to_vec());
                    }
                }
                Request::Add(e)
            }
            ProtocolOp::DelRequest(d) => Request::Delete(dn(&d)?),
            ProtocolOp::ModifyDnRequest(m) => Request::ModifyDn {
                dn: dn(&m.entry)?,
                new_rdn: Rdn::parse(&m.new_rdn.0).map_err(|e| {
                    LdapResult::new(ResultCode::InvalidDnSyntax, "", &e.to_string())
                })?,
                delete_old_rdn: m.delete_old_rdn,
                new_superior: m.new_superior.as_ref().map(dn).transpose()?,
            },
            ProtocolOp::CompareRequest(c) => Request::Compare {
                dn: dn(&c.entry)?,
                attr: c.ava.attribute_desc.0,
                value: c.ava.assertion_value.to_vec(),
            },
            ProtocolOp::AbandonRequest(id) => Request::Abandon(id),
            ProtocolOp::ExtendedRequest(x) => Request::Extended {
                name: x.request_name.0,
                value: x.request_value.map(|v| v.to_vec()),
            },
            ProtocolOp::BindResponse(_)
            | ProtocolOp::SearchResultEntry(_)
            | ProtocolOp::SearchResultDone(_)
            | ProtocolOp::SearchResultReference(_)
            | ProtocolOp::ModifyResponse(_)
            | ProtocolOp::AddResponse(_)
            | ProtocolOp::DelResponse(_)
            | ProtocolOp::ModifyDnResponse(_)
            | ProtocolOp::CompareResponse(_)
            | ProtocolOp::ExtendedResponse(_)
            | ProtocolOp::IntermediateResponse(_) => {
                return Err(protocol("a response is not a request"))
            }
        })
    }
}
