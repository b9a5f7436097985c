//! Binds tickets to the account they were issued for (issue 9 item 7).
//!
//! Owns: the dird-private authorization-data element carrying the client account's immutable
//! id (its objectGUID) inside the encrypted part of every ticket the KDC issues, and the check
//! that a presented ticket's client still is that account. May import: `rasn-kerberos`,
//! siblings.
//!
//! Why: names are reusable. Without the id, renaming `alice` to `alice2` and creating a new
//! `alice` would let the old TGT (whose cname is `alice`) get service tickets as the new
//! account. The element sits inside AD-IF-RELEVANT (RFC 4120 §5.2.6.1), so services that do
//! not know it ignore it; its type is negative, reserved for local use (RFC 4120 §7.5.4).
//! A ticket without the element (issued before this check existed) is refused for an account
//! that has an id: the user obtains a new TGT once.

use rasn_kerberos::{AuthorizationData, AuthorizationDataValue, EncTicketPart};

use super::codec;
use super::db::PrincipalRecord;
use super::error::KdcError;

/// The local ad-type of the account-id element ("dird" in decimal-ish, negative: local use).
pub const AD_DIRD_ACCOUNT_ID: i32 = -3_472_002;

/// The authorization data for a new ticket of `client`: one AD-IF-RELEVANT holding the
/// account-id element, or `None` for a principal without an id (in-memory test databases).
pub(super) fn authorization_data(
    client: &PrincipalRecord,
) -> Result<Option<AuthorizationData>, KdcError> {
    let Some(id) = &client.account_id else {
        return Ok(None);
    };
    let inner: AuthorizationData = vec![AuthorizationDataValue {
        r#type: AD_DIRD_ACCOUNT_ID,
        data: id.clone().into(),
    }];
    Ok(Some(vec![AuthorizationDataValue {
        r#type: AuthorizationDataValue::IF_RELEVANT,
        data: codec::encode(&inner)?.into(),
    }]))
}

/// The account id a ticket was issued for, if it carries one.
pub(super) fn of_ticket(ticket: &EncTicketPart) -> Option<Vec<u8>> {
    let outer = ticket.authorization_data.as_ref()?;
    outer
        .iter()
        .filter(|ad| ad.r#type == AuthorizationDataValue::IF_RELEVANT)
        .filter_map(|ad| codec::decode::<AuthorizationData>(&ad.data, "AD-IF-RELEVANT").ok())
        .flatten()
        .find(|ad| ad.r#type == AD_DIRD_ACCOUNT_ID)
        .map(|ad| ad.data.to_vec())
}

/// The ticket's client must still be the account it was issued for: same id (objectGUID)
/// under the name. A renamed, deleted or re-created account gets KDC_ERR_CLIENT_REVOKED.
pub(super) fn check(ticket: &EncTicketPart, current: &PrincipalRecord) -> Result<(), KdcError> {
    if of_ticket(ticket) == current.account_id {
        Ok(())
    } else {
        tracing::info!(
            target: "kdc",
            client = %current.canonical,
            "ticket was issued for another account of the same name: refused"
        );
        Err(KdcError::ClientRevoked)
    }
}
