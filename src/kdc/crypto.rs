//! Thin wrappers over `krb5::Key` (RFC 3961 profile for RFC 3962 and RFC 8009 enctypes):
//! key usages, key selection, encrypt/decrypt into `EncryptedData`, checksum verification.
//!
//! Owns: the RFC 4120 §7.5.1 key usage numbers and enctype preference. May import: `model`,
//! `krb5` (the `Key` type only), `rasn-kerberos`. Note: `krb5::Key` does not zeroise its bytes on
//! drop; keys live only for the duration of one request.

use krb5::Key;
use rand::{CryptoRng, RngCore};
use rasn_kerberos::{Checksum, EncryptedData, EncryptionKey};

use super::error::KdcError;
use crate::model::principal::{KeyMaterial, KEY_ENCTYPES};

/// RFC 4120 §7.5.1 key usage numbers.
pub mod usage {
    /// AS-REQ PA-ENC-TIMESTAMP padata timestamp.
    pub const PA_ENC_TIMESTAMP: u32 = 1;
    /// Ticket enc-part, encrypted with the service key.
    pub const TICKET: u32 = 2;
    /// AS-REP enc-part, encrypted with the client key.
    pub const AS_REP_ENC_PART: u32 = 3;
    /// TGS-REQ PA-TGS-REQ authenticator checksum over the req-body.
    pub const TGS_REQ_AUTH_CKSUM: u32 = 6;
    /// TGS-REQ PA-TGS-REQ authenticator, encrypted with the TGS session key.
    pub const TGS_REQ_AUTHENTICATOR: u32 = 7;
    /// TGS-REP enc-part, encrypted with the TGS session key.
    pub const TGS_REP_SESSION_KEY: u32 = 8;
    /// TGS-REP enc-part, encrypted with the authenticator subkey.
    pub const TGS_REP_SUBKEY: u32 = 9;
    /// AP-REQ authenticator (application servers, kpasswd).
    pub const AP_REQ_AUTHENTICATOR: u32 = 11;
    /// AP-REP enc-part.
    pub const AP_REP_ENC_PART: u32 = 12;
    /// KRB-PRIV enc-part.
    pub const KRB_PRIV_ENC_PART: u32 = 13;
}

/// True if dird can use this enctype.
pub fn is_supported(enctype: i32) -> bool {
    KEY_ENCTYPES.contains(&enctype)
}

/// A `krb5::Key` from stored key material.
pub fn key(material: &KeyMaterial) -> Result<Key, KdcError> {
    Key::new(material.enctype, material.key.clone())
        .map_err(|e| KdcError::Internal(format!("stored key: {e}")))
}

/// A `krb5::Key` from a wire EncryptionKey (session keys, subkeys sent by clients).
pub fn wire_key(key: &EncryptionKey) -> Result<Key, KdcError> {
    Key::new(key.r#type, key.value.to_vec()).map_err(|_| KdcError::Malformed("encryption key"))
}

/// The wire form of a key.
pub fn encryption_key(key: &Key) -> EncryptionKey {
    EncryptionKey {
        r#type: key.enctype(),
        value: key.bytes().to_vec().into(),
    }
}

/// A fresh session key of `enctype` from `rng` (random-to-key is the identity for AES).
pub fn session_key(enctype: i32, rng: &mut (impl RngCore + CryptoRng)) -> Result<Key, KdcError> {
    let len = match enctype {
        17 | 19 => 16,
        18 | 20 => 32,
        _ => return Err(KdcError::EtypeNotSupported),
    };
    let mut bytes = vec![0u8; len];
    rng.fill_bytes(&mut bytes);
    Key::new(enctype, bytes).map_err(|e| KdcError::Internal(e.to_string()))
}

/// The key of `enctype` among `keys`.
pub fn key_for(keys: &[KeyMaterial], enctype: i32) -> Option<&KeyMaterial> {
    keys.iter().find(|k| k.enctype == enctype)
}

/// The key of `enctype` with version `kvno` (any version when `None`, preferring the first,
/// i.e. current, one). Older keys follow the current ones in a record (krbtgt rotation), so a
/// ticket sealed under the previous key still decrypts.
pub fn key_for_version(
    keys: &[KeyMaterial],
    enctype: i32,
    kvno: Option<u32>,
) -> Option<&KeyMaterial> {
    match kvno {
        Some(v) => keys.iter().find(|k| k.enctype == enctype && k.kvno == v),
        None => key_for(keys, enctype),
    }
}

/// The key a ticket for this principal is encrypted with: the first of dird's preferred
/// enctypes that the principal has.
pub fn ticket_key(keys: &[KeyMaterial]) -> Option<&KeyMaterial> {
    KEY_ENCTYPES.iter().find_map(|&e| key_for(keys, e))
}

/// RFC 4120 §3.1.3: the first enctype in the client's list that `keys` holds.
pub fn negotiate(client_etypes: &[i32], keys: &[KeyMaterial]) -> Option<i32> {
    client_etypes
        .iter()
        .copied()
        .find(|&e| is_supported(e) && key_for(keys, e).is_some())
}

/// The session-key enctype: the first client enctype the target service has a key for,
/// else the first client enctype dird supports.
pub fn session_enctype(client_etypes: &[i32], service_keys: &[KeyMaterial]) -> Option<i32> {
    negotiate(client_etypes, service_keys)
        .or_else(|| client_etypes.iter().copied().find(|&e| is_supported(e)))
}

/// RFC 3961 encrypt into an `EncryptedData` carrying `kvno`.
pub fn encrypt(
    key: &Key,
    usage: u32,
    plaintext: &[u8],
    kvno: Option<u32>,
) -> Result<EncryptedData, KdcError> {
    let cipher = key
        .encrypt(usage, plaintext)
        .map_err(|e| KdcError::Internal(format!("encrypt: {e}")))?;
    Ok(EncryptedData {
        etype: key.enctype(),
        kvno,
        cipher: cipher.into(),
    })
}

/// RFC 3961 decrypt of an `EncryptedData`; an etype mismatch or failed integrity check is
/// `BadIntegrity`.
pub fn decrypt(key: &Key, usage: u32, data: &EncryptedData) -> Result<Vec<u8>, KdcError> {
    if data.etype != key.enctype() {
        return Err(KdcError::BadIntegrity);
    }
    key.decrypt(usage, &data.cipher)
        .map_err(|_| KdcError::BadIntegrity)
}

/// Verifies a keyed checksum made with `key` (constant-time compare in `krb5`). Only the
/// enctype's own checksum type is accepted (RFC 3961 §4 "required checksum mechanism").
pub fn verify_checksum(
    key: &Key,
    usage: u32,
    message: &[u8],
    checksum: &Checksum,
) -> Result<(), KdcError> {
    if checksum.r#type != key.checksum_type() {
        return Err(KdcError::InappropriateChecksum);
    }
    match key.verify_checksum(usage, message, &checksum.checksum) {
        Ok(true) => Ok(()),
        Ok(false) | Err(_) => Err(KdcError::Modified),
    }
}

/// A keyed checksum (for tests and for building authenticators in the test client).
pub fn checksum(key: &Key, usage: u32, message: &[u8]) -> Result<Checksum, KdcError> {
    let sum = key
        .checksum(usage, message)
        .map_err(|e| KdcError::Internal(e.to_string()))?;
    Ok(Checksum {
        r#type: key.checksum_type(),
        checksum: sum.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::principal::derive_keys;

    #[test]
    fn key_for_version_finds_previous_generations() {
        let mut keys = crate::model::principal::random_keys(5).unwrap();
        keys.extend(crate::model::principal::random_keys(4).unwrap());
        assert_eq!(key_for_version(&keys, 18, Some(4)).unwrap().kvno, 4);
        assert_eq!(key_for_version(&keys, 18, Some(5)).unwrap().kvno, 5);
        assert_eq!(key_for_version(&keys, 18, None).unwrap().kvno, 5);
        assert!(key_for_version(&keys, 18, Some(3)).is_none());
        assert_eq!(ticket_key(&keys).unwrap().kvno, 5);
    }

    #[test]
    fn encrypt_decrypt_round_trip_for_all_enctypes() {
        let mut rng = rand::rngs::OsRng;
        for &e in &KEY_ENCTYPES {
            let k = session_key(e, &mut rng).unwrap();
            let data = encrypt(&k, usage::TICKET, b"hello ticket", Some(3)).unwrap();
            assert_eq!(data.kvno, Some(3));
            assert_eq!(decrypt(&k, usage::TICKET, &data).unwrap(), b"hello ticket");
            assert_eq!(
                decrypt(&k, usage::AS_REP_ENC_PART, &data),
                Err(KdcError::BadIntegrity)
            );
            let sum = checksum(&k, usage::TGS_REQ_AUTH_CKSUM, b"body").unwrap();
            assert_eq!(
                verify_checksum(&k, usage::TGS_REQ_AUTH_CKSUM, b"body", &sum),
                Ok(())
            );
            assert_eq!(
                verify_checksum(&k, usage::TGS_REQ_AUTH_CKSUM, b"bodx", &sum),
                Err(KdcError::Modified)
            );
        }
    }

    #[test]
    fn negotiation_follows_client_order() {
        let keys = derive_keys("pw", "EXAMPLE.COMalice", 1).unwrap();
        assert_eq!(negotiate(&[23, 17, 18], &keys), Some(17));
        assert_eq!(negotiate(&[23, 16], &keys), None);
        assert_eq!(ticket_key(&keys).map(|k| k.enctype), Some(18));
        assert_eq!(session_enctype(&[20, 18], &keys[..1]), Some(18));
    }
}
