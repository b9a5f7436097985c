//! What a written password value means, before anything is stored: a cleartext password, an
//! `{ARGON2}` hash dird verifies (trusted writers only, within `ARGON2_LIMITS`), or a value
//! in another `{SCHEME}` (refused, naming the scheme); and AD's `unicodePwd` encoding
//! (MS-ADTS 3.1.1.3.1.5: the password in double quotes, UTF-16LE).
//! May import: `directory::{error, password}`, `model::modify` (for the error). Pure code.
//!
//! Migration schemes (the OpenLDAP `{SSHA}`, `{CRYPT}`, `{PBKDF2…}` family, `directory::legacy`)
//! are accepted from trusted writers within their bounds, as [`Written::Legacy`]; weak ones
//! (`{SHA}`, `{MD5}`, `{SMD5}`, DES and MD5 crypt) are refused with the reason.

use crate::directory::error::DirError;
use crate::model::modify::ModifyError;
use zeroize::Zeroizing;

/// Upper bounds for an `{ARGON2}` value written by an administrator or imported, so that no
/// stored hash can make a bind allocate or compute without limit. Binds also refuse to verify
/// a stored hash outside them.
#[derive(Clone, Copy, Debug)]
pub struct Argon2Limits {
    /// memory in KiB (`m`)
    pub max_memory_kib: u32,
    /// iterations (`t`)
    pub max_iterations: u32,
    /// lanes (`p`)
    pub max_parallelism: u32,
}

/// m <= 256 MiB, t <= 16, p <= 4 (dird's own hashes: m = 19 MiB, t = 2, p = 1).
pub const ARGON2_LIMITS: Argon2Limits = Argon2Limits {
    max_memory_kib: 256 * 1024,
    max_iterations: 16,
    max_parallelism: 4,
};

/// A written `userPassword` value, classified.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// a password to check against the policy and hash (zeroized when dropped)
    Cleartext(Zeroizing<Vec<u8>>),
    /// a `{ARGON2}` PHC string within `ARGON2_LIMITS` (kept as is from trusted writers)
    Argon2(String),
    /// a migration hash (`legacy::check` passed), kept as is until the first bind
    Legacy(String),
    /// a password a bind has just verified against the stored migration hash: hashed with
    /// argon2 and given Kerberos keys without policy checks (it is not being chosen).
    /// `classify` never produces it; only the bind's upgrade does.
    Rehash(Zeroizing<Vec<u8>>),
}

/// Who wrote the value: only administrators and `dird import` may hand in a hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// a Domain Admin over LDAP, the local CLI, or `dird import`
    Trusted,
    /// a user changing their own password (or anything else)
    User,
}

fn constraint(msg: String) -> DirError {
    DirError::Modify(ModifyError::Constraint(msg))
}

/// The `{SCHEME}` prefix of a value, if it has one (`{SSHA}…` → `SSHA`). A value that starts
/// with `{`, has a closing `}` within 32 bytes and only letters, digits, `-`, `_` and `.`
/// between them is taken as hashed, whatever the scheme.
pub fn scheme_of(value: &[u8]) -> Option<&str> {
    let rest = value.strip_prefix(b"{")?;
    let end = rest.iter().take(32).position(|&b| b == b'}')?;
    let name = &rest[..end];
    if name.is_empty()
        || !name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return None;
    }
    std::str::from_utf8(name).ok()
}

/// The schemes dird can verify: its own argon2 and the migration schemes.
fn verified_scheme(scheme: &str) -> bool {
    scheme.eq_ignore_ascii_case("ARGON2") || crate::directory::legacy::is_migration_scheme(scheme)
}

/// Classifies a written `userPassword` value. A hashed value is never taken as a cleartext
/// password: `{ARGON2}` is accepted from a trusted writer within `ARGON2_LIMITS`, every other
/// scheme is refused with constraintViolation naming it.
pub fn classify(value: &[u8], writer: Writer) -> Result<Written, DirError> {
    let Some(scheme) = scheme_of(value) else {
        return Ok(Written::Cleartext(Zeroizing::new(value.to_vec())));
    };
    if let Some(why) = crate::directory::legacy::weak_scheme(scheme) {
        return Err(constraint(format!(
            "userPassword: the value is a {{{scheme}}} hash; dird does not accept {scheme} \
             hashes: {why} (remove the value and set the password in cleartext over TLS)"
        )));
    }
    if !verified_scheme(scheme) {
        return Err(constraint(format!(
            "userPassword: the value is a {{{scheme}}} hash; dird does not accept {scheme} \
             hashes (set the password in cleartext over TLS instead)"
        )));
    }
    if writer != Writer::Trusted {
        return Err(constraint(format!(
            "userPassword: a {{{scheme}}} hash may only be written by an administrator or \
             imported; give the password in cleartext"
        )));
    }
    let text = std::str::from_utf8(value)
        .map_err(|_| constraint(format!("userPassword: the {{{scheme}}} value is not text")))?;
    if !scheme.eq_ignore_ascii_case("ARGON2") {
        crate::directory::legacy::check(text).map_err(constraint)?;
        return Ok(Written::Legacy(text.to_string()));
    }
    check_argon2(text)?;
    Ok(Written::Argon2(text.to_string()))
}

/// Checks that a stored `{ARGON2}` PHC string parses and is within `ARGON2_LIMITS`.
pub fn check_argon2(value: &str) -> Result<(), DirError> {
    let bad = |why: &str| constraint(format!("userPassword: {{ARGON2}} value refused: {why}"));
    let Some(phc) = value.get(crate::directory::password::PREFIX.len()..) else {
        return Err(bad("not a PHC string"));
    };
    let hash =
        argon2::password_hash::phc::PasswordHash::new(phc).map_err(|_| bad("not a PHC string"))?;
    if argon2::Algorithm::new(hash.algorithm.as_str()).is_err() {
        return Err(bad("not an argon2 variant"));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(bad("no salt or no hash"));
    }
    let params = argon2::Params::try_from(&hash).map_err(|_| bad("invalid parameters"))?;
    let l = ARGON2_LIMITS;
    if params.m_cost() > l.max_memory_kib
        || params.t_cost() > l.max_iterations
        || params.p_cost() > l.max_parallelism
    {
        return Err(bad(&format!(
            "parameters m={} t={} p={} exceed the limits m<={} t<={} p<={}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
            l.max_memory_kib,
            l.max_iterations,
            l.max_parallelism
        )));
    }
    Ok(())
}

/// Decodes a `unicodePwd` value (MS-ADTS 3.1.1.3.1.5): UTF-16LE of the password in double
/// quotes. Returns the password as UTF-8. Malformed values are constraintViolation.
pub fn decode_unicode_pwd(value: &[u8]) -> Result<Vec<u8>, DirError> {
    let bad = |why: &str| constraint(format!("unicodePwd: {why}"));
    if !value.len().is_multiple_of(2) {
        return Err(bad("the value is not UTF-16LE (odd length)"));
    }
    let units: Vec<u16> = value
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let text = String::from_utf16(&units).map_err(|_| bad("the value is not valid UTF-16LE"))?;
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(|| bad("the password must be enclosed in double quotes"))?;
    Ok(inner.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn unicode_pwd_values() {
        assert_eq!(
            decode_unicode_pwd(&utf16("\"Sécret-1\"")).unwrap(),
            "Sécret-1".as_bytes()
        );
        assert!(decode_unicode_pwd(&utf16("no-quotes")).is_err());
        assert!(decode_unicode_pwd(&utf16("\"open")).is_err());
        assert!(decode_unicode_pwd(b"\"\0a\0\"").is_err()); // odd length
        assert!(decode_unicode_pwd(&[0x00, 0xd8, 0x22, 0x00]).is_err()); // lone surrogate
        assert!(decode_unicode_pwd(&[]).is_err());
        assert!(decode_unicode_pwd(&utf16("\"")).is_err());
        assert_eq!(decode_unicode_pwd(&utf16("\"\"")).unwrap(), b"");
    }

    #[test]
    fn schemes_are_recognised() {
        assert_eq!(scheme_of(b"{SSHA}abc"), Some("SSHA"));
        assert_eq!(scheme_of(b"{PBKDF2-SHA256}x"), Some("PBKDF2-SHA256"));
        assert_eq!(scheme_of(b"{crypt}$6$"), Some("crypt"));
        assert_eq!(scheme_of(b"plain{SSHA}"), None);
        assert_eq!(scheme_of(b"{}x"), None);
        assert_eq!(scheme_of(b"{not a scheme}"), None);
        for v in [
            "{SSHA}abc",
            "{SHA}x",
            "{CRYPT}x",
            "{MD5}x",
            "{SMD5}x",
            "{SSHA512}x",
            "{NOSUCH}x",
        ] {
            let e = classify(v.as_bytes(), Writer::Trusted)
                .unwrap_err()
                .to_string();
            let scheme = &v[1..v.find('}').unwrap()];
            assert!(e.contains(scheme), "{e}");
        }
        assert_eq!(
            classify(b"pw{x}", Writer::User).unwrap(),
            Written::Cleartext(Zeroizing::new(b"pw{x}".to_vec()))
        );
    }

    #[test]
    fn migration_hashes_need_trust() {
        let v = "{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0";
        assert_eq!(
            classify(v.as_bytes(), Writer::Trusted).unwrap(),
            Written::Legacy(v.into())
        );
        let e = classify(v.as_bytes(), Writer::User)
            .unwrap_err()
            .to_string();
        assert!(e.contains("administrator"), "{e}");
        let e = classify(b"{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", Writer::Trusted)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsalted"), "{e}");
    }

    #[test]
    fn argon2_values_need_trust_and_bounds() {
        let good = crate::directory::password::hash_blocking(b"pw").unwrap();
        assert!(classify(good.as_bytes(), Writer::User).is_err());
        assert_eq!(
            classify(good.as_bytes(), Writer::Trusted).unwrap(),
            Written::Argon2(good.clone())
        );
        let huge = "{ARGON2}$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
        let e = classify(huge.as_bytes(), Writer::Trusted)
            .unwrap_err()
            .to_string();
        assert!(e.contains("m=4194304"), "{e}");
        let many = "{ARGON2}$argon2id$v=19$m=19456,t=100,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
        assert!(classify(many.as_bytes(), Writer::Trusted).is_err());
        assert!(classify(b"{ARGON2}garbage", Writer::Trusted).is_err());
    }
}
