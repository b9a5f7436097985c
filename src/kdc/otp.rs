//! OTP pre-authentication (RFC 6560) inside FAST: the `OtpCheck` boundary through which the
//! KDC asks whether a principal needs a one-time code and has the code checked (by the MFA
//! service, i.e. RADIUS), the PA-OTP-CHALLENGE the KDC offers, and the checks of a
//! PA-OTP-REQUEST.
//!
//! Owns: OTP challenge construction, nonce freshness, PIN (= password) verification and the
//! order of the two factors. May import: `model`, `rasn-kerberos` (its RFC 6560 types),
//! `krb5::Key`, siblings. Does not know RADIUS: the integrator implements `OtpCheck`.
//!
//! Both factors are required: the challenge sets collect-pin and separate-pin-required (RFC 6560
//! §4.1 OTPFlags bits 3 and 6), so MIT clients prompt for the PIN and send it apart from the
//! code. The PIN is the account password; it is verified against the account's Kerberos keys
//! first (a wrong password never reaches RADIUS and counts towards
//! lockout), then the code is checked through `OtpCheck`. The reply key is the armor key
//! (RFC 6560 §3.3, as MIT does), strengthened by the FAST reply.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::{CryptoRng, RngCore};
use rasn_kerberos::PaData;
use subtle::ConstantTimeEq;

use super::codec;
use super::crypto;
use super::db::PrincipalRecord;
use super::error::KdcError;
use super::fast::Armor;
use super::fast_types::{
    usage, OtpTokenInfo, PaOtpChallenge, PaOtpEncRequest, PaOtpRequest, OTP_FORMAT_DECIMAL,
    PA_OTP_CHALLENGE,
};

/// Why a one-time code was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpFailure {
    /// The checker refused the code (wrong, replayed, expired).
    #[error("one-time code refused")]
    Rejected,
    /// The code could not be checked (RADIUS unreachable, timeout): fail closed.
    #[error("second factor could not be checked: {0}")]
    Unavailable(String),
}

/// The KDC's view of the MFA service. Implementations must not block (await I/O instead).
#[async_trait::async_trait]
pub trait OtpCheck: Send + Sync + 'static {
    /// True if `client` must present a one-time code. An error means the policy could not be
    /// evaluated; the KDC then treats the client as needing one (fail closed).
    async fn required(&self, client: &PrincipalRecord) -> Result<bool, String>;

    /// Checks `code` for the account whose sAMAccountName is `user` (the RADIUS User-Name).
    async fn check(&self, user: &str, code: &str) -> Result<(), OtpFailure>;
}

/// OTPFlags bit numbers (RFC 6560 §4.1; bit 0 is the most significant bit).
mod flags {
    /// collect-pin (3): the client asks the user for a PIN.
    pub const COLLECT_PIN: u32 = 1 << (31 - 3);
    /// separate-pin-required (6): the PIN travels in otp-pin, not joined to the code. Needed
    /// for MIT clients: without it MIT 1.20 concatenates PIN and code into an otp-value whose
    /// length it then computes as zero (preauth_otp.c `make_request`), so nothing is sent.
    pub const SEPARATE_PIN_REQUIRED: u32 = 1 << (31 - 6);
}

/// Length of the challenge nonce: 8 octets of issue time and 16 random octets.
const NONCE_LEN: usize = 24;
/// Longest accepted one-time code or PIN (bytes).
const MAX_FIELD: usize = 256;

/// The PA-OTP-CHALLENGE offered to an MFA client inside FAST (RFC 6560 §4.1): one token with
/// collect-pin, `otp_length` decimal digits, and a fresh nonce carrying its issue time.
pub(super) fn challenge(
    client: &PrincipalRecord,
    otp_length: Option<i32>,
    now: SystemTime,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<PaData, KdcError> {
    let mut nonce = vec![0u8; NONCE_LEN];
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    nonce[..8].copy_from_slice(&secs.to_be_bytes());
    rng.fill_bytes(&mut nonce[8..]);
    let token = OtpTokenInfo {
        flags: codec::flags_to_bits(flags::COLLECT_PIN | flags::SEPARATE_PIN_REQUIRED),
        otp_vendor: Some("dird".into()),
        otp_challenge: None,
        otp_length,
        otp_format: Some(OTP_FORMAT_DECIMAL),
    };
    let challenge = PaOtpChallenge {
        nonce: nonce.into(),
        otp_service: Some("dird MFA".into()),
        otp_token_info: vec![token],
        salt: codec::kerberos_string(&client.salt),
        s2kparams: None,
    };
    Ok(PaData {
        r#type: PA_OTP_CHALLENGE,
        value: codec::encode(&challenge)?.into(),
    })
}

/// What a PA-OTP-REQUEST carried, once its nonce checked out.
pub(super) struct OtpRequest {
    /// The one-time code.
    pub code: String,
    /// The PIN (the account password).
    pub pin: String,
}

/// RFC 6560 §4.2: decodes a PA-OTP-REQUEST, decrypts enc-data (PA-OTP-ENC-REQUEST, usage 45)
/// under the armor key and checks that its nonce is one of ours and fresh (issued within
/// `max_skew`). Any defect is KDC_ERR_PREAUTH_FAILED.
pub(super) fn parse_request(
    armor: &Armor,
    value: &[u8],
    now: SystemTime,
    max_skew: Duration,
) -> Result<OtpRequest, KdcError> {
    let req: PaOtpRequest =
        codec::decode(value, "PA-OTP-REQUEST").map_err(|_| KdcError::PreauthFailed)?;
    let plain = crypto::decrypt(&armor.key, usage::PA_OTP_REQUEST, &req.enc_data)
        .map_err(|_| KdcError::PreauthFailed)?;
    let enc: PaOtpEncRequest =
        codec::decode(&plain, "PA-OTP-ENC-REQUEST").map_err(|_| KdcError::PreauthFailed)?;
    let nonce: &[u8] = enc.nonce.as_ref();
    if nonce.len() != NONCE_LEN {
        return Err(KdcError::PreauthFailed);
    }
    if let Some(clear) = &req.nonce {
        if !bool::from(clear.as_ref().ct_eq(nonce)) {
            return Err(KdcError::PreauthFailed);
        }
    }
    let mut secs = [0u8; 8];
    secs.copy_from_slice(nonce.get(..8).ok_or(KdcError::PreauthFailed)?);
    let issued = UNIX_EPOCH + Duration::from_secs(u64::from_be_bytes(secs).min(1 << 40));
    if codec::distance(issued, now) > max_skew {
        return Err(KdcError::PreauthFailed);
    }
    let code = req
        .otp_value
        .as_ref()
        .and_then(|v| std::str::from_utf8(v.as_ref()).ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_FIELD)
        .ok_or(KdcError::PreauthFailed)?
        .to_owned();
    let pin = req
        .otp_pin
        .as_ref()
        .map(|p| p.to_string())
        .filter(|p| !p.is_empty() && p.len() <= MAX_FIELD)
        .ok_or(KdcError::PreauthFailed)?;
    Ok(OtpRequest { code, pin })
}

/// True if `pin` is the account's password: its string-to-key (RFC 3962 §4 / RFC 8009 §4,
/// on a blocking thread) equals the stored key of the first enctype, compared in constant time.
pub(super) async fn pin_matches(client: &PrincipalRecord, pin: String) -> Result<bool, KdcError> {
    let Some(stored) = crypto::ticket_key(&client.keys).cloned() else {
        return Ok(false);
    };
    let salt = client.salt.clone();
    let derived = tokio::task::spawn_blocking(move || {
        krb5::Key::from_password(stored.enctype, &pin, salt.as_bytes(), None)
            .map(|k| bool::from(k.bytes().ct_eq(&stored.key)))
    })
    .await
    .map_err(|e| KdcError::Internal(format!("PIN check: {e}")))?;
    derived.map_err(|e| KdcError::Internal(format!("PIN check: {e}")))
}

/// The RADIUS User-Name of a client: its sAMAccountName, i.e. the first component of the
/// canonical name.
pub(super) fn user_name(client: &PrincipalRecord) -> &str {
    client
        .canonical
        .components
        .first()
        .map(String::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::principal::{derive_keys, PrincipalName};

    fn record() -> PrincipalRecord {
        PrincipalRecord {
            canonical: PrincipalName::new(vec!["carol".into()], "EXAMPLE.COM"),
            salt: "EXAMPLE.COMcarol".into(),
            kvno: 1,
            keys: derive_keys("carol-Passw0rd", "EXAMPLE.COMcarol", 1).unwrap(),
            disabled: false,
            expires: None,
            is_service: false,
            locked: false,
            must_change_password: false,
            password_expires: None,
            account_id: None,
        }
    }

    fn armor() -> Armor {
        Armor {
            key: krb5::Key::new(18, vec![5; 32]).unwrap(),
            nonce: 1,
        }
    }

    fn request(armor: &Armor, nonce: &[u8], code: &str, pin: Option<&str>) -> Vec<u8> {
        let enc = codec::encode(&PaOtpEncRequest {
            nonce: nonce.to_vec().into(),
        })
        .unwrap();
        let enc_data = crypto::encrypt(&armor.key, usage::PA_OTP_REQUEST, &enc, None).unwrap();
        codec::encode(&PaOtpRequest {
            flags: codec::flags_to_bits(0),
            nonce: Some(nonce.to_vec().into()),
            enc_data,
            hash_alg: None,
            iteration_count: None,
            otp_value: Some(code.as_bytes().to_vec().into()),
            otp_pin: pin.map(Into::into),
            otp_challenge: None,
            otp_time: None,
            otp_counter: None,
            otp_format: None,
            otp_token_id: None,
            otp_alg_id: None,
            otp_vendor: None,
        })
        .unwrap()
    }

    fn nonce_of(pa: &PaData) -> Vec<u8> {
        let c: PaOtpChallenge = rasn::der::decode(&pa.value).unwrap();
        c.nonce.to_vec()
    }

    #[test]
    fn challenge_asks_for_a_pin_and_round_trips_a_fresh_request() {
        let now = SystemTime::now();
        let pa = challenge(&record(), Some(6), now, &mut rand::rngs::OsRng).unwrap();
        assert_eq!(pa.r#type, 141);
        let c: PaOtpChallenge = rasn::der::decode(&pa.value).unwrap();
        let bits = codec::bits_to_flags(&c.otp_token_info[0].flags);
        assert_eq!(bits, flags::COLLECT_PIN | flags::SEPARATE_PIN_REQUIRED);
        let a = armor();
        let skew = Duration::from_secs(300);
        let ok = parse_request(
            &a,
            &request(&a, &nonce_of(&pa), "123456", Some("pw")),
            now,
            skew,
        )
        .unwrap();
        assert_eq!((ok.code.as_str(), ok.pin.as_str()), ("123456", "pw"));
        // no PIN, stale nonce, wrong armor key, garbage: all refused
        let nonce = nonce_of(&pa);
        assert!(parse_request(&a, &request(&a, &nonce, "1", None), now, skew).is_err());
        assert!(parse_request(
            &a,
            &request(&a, &nonce, "1", Some("pw")),
            now + Duration::from_secs(3600),
            skew
        )
        .is_err());
        let other = Armor {
            key: krb5::Key::new(18, vec![6; 32]).unwrap(),
            nonce: 1,
        };
        assert!(parse_request(&other, &request(&a, &nonce, "1", Some("pw")), now, skew).is_err());
        for junk in [&[][..], &[0x30, 0x80], &[0x30, 0x03, 0x80, 0x01, 0x00]] {
            assert!(parse_request(&a, junk, now, skew).is_err());
        }
    }

    #[tokio::test]
    async fn pin_is_the_password() {
        let r = record();
        assert!(pin_matches(&r, "carol-Passw0rd".into()).await.unwrap());
        assert!(!pin_matches(&r, "carol-passw0rd".into()).await.unwrap());
        assert_eq!(user_name(&r), "carol");
    }
}
