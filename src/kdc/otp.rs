//! OTP pre-authentication (RFC 6560) inside FAST: the `OtpCheck` boundary through which the
//! KDC asks whether a principal needs a one-time code and has the code checked (by the MFA
//! service, i.e. RADIUS), the PA-OTP-CHALLENGE the KDC offers, and the checks of a
//! PA-OTP-REQUEST.
//!
//! Owns: OTP challenge construction, nonce freshness, PIN (= password) verification and the
//! order of the two factors. May import: `model`, `rasn-kerberos` (its RFC 6560 types),
//! `krb5::Key`, siblings. Does not know RADIUS: the integrator implements `OtpCheck`.
//!
//! Both factors are required, and travel together: the PIN is the account password, typed
//! immediately before the code (`password` + `code`, the same value an MFA user types for an
//! LDAP bind). The challenge offers one token without collect-pin, length or format (RFC 6560
//! §4.1), because that is the one shape every MIT 1.20 client path can answer:
//! - `kinit` (prompter): one "Enter OTP Token Value" prompt, sent as typed;
//! - sssd's krb5_child (responder): First Factor + Second Factor, or a single prompt, joined.
//!
//! With collect-pin and separate-pin, MIT's responder reports the token as "nextOTP"
//! (preauth_otp.c `codec_encode_tokeninfo`) and sssd refuses to answer it; with collect-pin
//! alone, MIT's prompter joins PIN and code into an otp-value of length zero (`make_request`).
//! A request that does carry a separate otp-pin is still accepted (PIN = password, value =
//! code). The password is verified against the account's Kerberos keys first (a wrong password
//! never reaches RADIUS and counts towards lockout), then the code through `OtpCheck`. The
//! reply key is the armor key (RFC 6560 §3.3, as MIT does), strengthened by the FAST reply.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::{CryptoRng, RngCore};
use rasn_kerberos::PaData;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::codec;
use super::crypto;
use super::db::PrincipalRecord;
use super::error::KdcError;
use super::fast::Armor;
use super::fast_types::{
    usage, OtpTokenInfo, PaOtpChallenge, PaOtpEncRequest, PaOtpRequest, PA_OTP_CHALLENGE,
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

    /// Splits an otp-value that carries the password and the code together into
    /// (password, code); `None` if it does not end in a code. By default the code is the last
    /// `otp_length` (6 if unset) digits with nothing between it and the password.
    fn split_combined<'a>(
        &self,
        value: &'a str,
        otp_length: Option<i32>,
    ) -> Option<(&'a str, &'a str)> {
        let len = otp_length
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(6);
        split_combined(value, len, "")
    }
}

/// Splits `value` into (password, code): the code is the last `otp_length` characters, all
/// ASCII digits, after `separator`; the password is what precedes them and must not be empty.
pub fn split_combined<'a>(
    value: &'a str,
    otp_length: usize,
    separator: &str,
) -> Option<(&'a str, &'a str)> {
    if otp_length == 0 {
        return None;
    }
    let cut = value.len().checked_sub(otp_length)?;
    // `get` refuses a cut inside a multi-byte character (the code is ASCII digits only).
    let code = value.get(cut..)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let password = value.get(..cut)?.strip_suffix(separator)?;
    (!password.is_empty()).then_some((password, code))
}

/// Length of the challenge nonce: 8 octets of issue time and 16 random octets.
const NONCE_LEN: usize = 24;
/// Longest accepted one-time code or PIN (bytes).
const MAX_FIELD: usize = 256;

/// The PA-OTP-CHALLENGE offered to an MFA client inside FAST (RFC 6560 §4.1): one token with
/// no flags, length or format (the value is password and code together, see the module
/// header), and a fresh nonce carrying its issue time.
pub(super) fn challenge(
    client: &PrincipalRecord,
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
        flags: codec::flags_to_bits(0),
        otp_vendor: Some("dird".into()),
        otp_challenge: None,
        otp_length: None,
        otp_format: None,
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

/// What a PA-OTP-REQUEST carried, once its nonce checked out. Both are wiped from memory when
/// dropped (the decoded request they were copied from is not: rasn's octet strings are
/// shared, immutable buffers).
pub(super) struct OtpRequest {
    /// The otp-value: password and code together, or the code alone when `pin` is present.
    pub value: Zeroizing<String>,
    /// The otp-pin (the account password), from clients that send it apart.
    pub pin: Option<Zeroizing<String>>,
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
    let mut req: PaOtpRequest =
        codec::decode(value, "PA-OTP-REQUEST").map_err(|_| KdcError::PreauthFailed)?;
    // Taken out at once, so that it is wiped on every return below.
    let pin = req.otp_pin.take().map(Zeroizing::new);
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
    let value = req
        .otp_value
        .as_ref()
        .and_then(|v| std::str::from_utf8(v.as_ref()).ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_FIELD)
        .map(|v| Zeroizing::new(v.to_owned()))
        .ok_or(KdcError::PreauthFailed)?;
    if pin
        .as_ref()
        .is_some_and(|p| p.is_empty() || p.len() > MAX_FIELD)
    {
        return Err(KdcError::PreauthFailed);
    }
    Ok(OtpRequest { value, pin })
}

/// True if `pin` is the account's password: its string-to-key (RFC 3962 §4 / RFC 8009 §4,
/// on a blocking thread) equals the stored key of the first enctype, compared in constant time.
pub(super) async fn pin_matches(
    client: &PrincipalRecord,
    pin: Zeroizing<String>,
) -> Result<bool, KdcError> {
    let Some(stored) = crypto::ticket_key(&client.keys).cloned() else {
        return Ok(false);
    };
    let salt = client.salt.clone();
    let derived = tokio::task::spawn_blocking(move || {
        krb5::Key::from_password(stored.enctype, pin.as_str(), salt.as_bytes(), None)
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
    fn challenge_offers_one_plain_token_and_round_trips_a_fresh_request() {
        let now = SystemTime::now();
        let pa = challenge(&record(), now, &mut rand::rngs::OsRng).unwrap();
        assert_eq!(pa.r#type, 141);
        let c: PaOtpChallenge = rasn::der::decode(&pa.value).unwrap();
        assert_eq!(c.otp_token_info.len(), 1);
        let token = &c.otp_token_info[0];
        // No collect-pin / separate-pin (MIT's responder would call it nextOTP and sssd would
        // not answer), no length or format (sssd checks them against the joined value).
        assert_eq!(codec::bits_to_flags(&token.flags), 0);
        assert_eq!((token.otp_length, token.otp_format), (None, None));
        let a = armor();
        let skew = Duration::from_secs(300);
        let nonce = nonce_of(&pa);
        // password and code joined (kinit, sssd)
        let joined = parse_request(
            &a,
            &request(&a, &nonce, "carol-Passw0rd123456", None),
            now,
            skew,
        )
        .unwrap();
        assert_eq!(joined.value.as_str(), "carol-Passw0rd123456");
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>(_: &T) {}
        wiped_on_drop(&joined.value);
        assert_eq!(joined.pin, None);
        // a client that sends the PIN apart
        let apart =
            parse_request(&a, &request(&a, &nonce, "123456", Some("pw")), now, skew).unwrap();
        assert_eq!(
            (apart.value.as_str(), apart.pin.as_ref().map(|p| p.as_str())),
            ("123456", Some("pw"))
        );
        if let Some(pin) = &apart.pin {
            wiped_on_drop(pin);
        }
        // empty value, empty PIN, stale nonce, wrong armor key, garbage: all refused
        assert!(parse_request(&a, &request(&a, &nonce, "", None), now, skew).is_err());
        assert!(parse_request(&a, &request(&a, &nonce, "1", Some("")), now, skew).is_err());
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

    #[test]
    fn a_joined_value_splits_into_password_and_code() {
        assert_eq!(
            split_combined("carol-Passw0rd123456", 6, ""),
            Some(("carol-Passw0rd", "123456"))
        );
        assert_eq!(
            split_combined("pw,12345678", 8, ","),
            Some(("pw", "12345678"))
        );
        // a password ending in digits: the code is always the last otp_length characters
        assert_eq!(
            split_combined("pw99123456", 6, ""),
            Some(("pw99", "123456"))
        );
        // no code, a code with a non-digit, no password, missing separator, nothing at all
        for (value, len, sep) in [
            ("carol-Passw0rd", 6, ""),
            ("password12345x", 6, ""),
            ("123456", 6, ""),
            ("pw123456", 6, ","),
            ("", 6, ""),
            ("pw123456", 0, ""),
        ] {
            assert_eq!(split_combined(value, len, sep), None, "{value:?}");
        }
        // a cut inside a multi-byte character is refused, not a panic
        assert_eq!(split_combined("pwé12345", 6, ""), None);
        assert_eq!(split_combined("pé123456", 6, ""), Some(("pé", "123456")));
    }

    #[tokio::test]
    async fn pin_is_the_password() {
        let r = record();
        assert!(pin_matches(&r, Zeroizing::new("carol-Passw0rd".into()))
            .await
            .unwrap());
        assert!(!pin_matches(&r, Zeroizing::new("carol-passw0rd".into()))
            .await
            .unwrap());
        assert_eq!(user_name(&r), "carol");
    }
}
