//! Password hashes migrated from OpenLDAP (`slapcat`, `ldapsearch`): which `{SCHEME}` values
//! dird accepts from trusted writers, their cost bounds, and their constant-time
//! verification. dird never produces these: the first successful bind replaces one with
//! argon2 and derives the account's Kerberos keys (`Directory::bind`).
//! May import: `directory::password` (for the password length bound). Pure, blocking code:
//! call `verify` on the hash threads.
//!
//! Accepted (RFC 2307 / OpenLDAP formats):
//! - `{SSHA}`, `{SSHA256}`, `{SSHA512}`: base64(digest(password ‖ salt) ‖ salt), salt 1–64 bytes;
//! - `{CRYPT}` with `$5$`/`$6$` (SHA-crypt, rounds ≤ [`LIMITS`]), `$y$` (yescrypt: memory,
//!   `p` and `t` bounded) and `$2a$`/`$2b$`/`$2y$` (bcrypt, cost bounded);
//! - `{PBKDF2}` (= `{PBKDF2-SHA1}`), `{PBKDF2-SHA256}`, `{PBKDF2-SHA512}` in OpenLDAP
//!   pw-pbkdf2's form `ITER$SALT$HASH`, salt and hash in "adapted base64" (the standard
//!   alphabet with `.` for `+`, no padding).
//!
//! Refused, with the reason: `{SHA}` and `{MD5}` (unsalted: one precomputed table cracks every
//! account at once), `{SMD5}` and `{CRYPT}` DES / MD5-crypt (`$1$`) (too cheap to compute:
//! keeping them would leave the imported directory as crackable as its export). Such accounts
//! are imported without them by removing the value, and get a password set by an
//! administrator.
//!
//! Every bound below is checked when the value is written (constraintViolation naming the
//! scheme and the bound) and again before a bind computes it, so a value stored by other
//! means can never make a bind burn CPU or allocate without limit.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// Cost bounds of the migration schemes.
#[derive(Clone, Copy, Debug)]
pub struct LegacyLimits {
    /// SHA-crypt `rounds=` (glibc's default is 5,000; passlib's 535,000–656,000)
    pub sha_crypt_max_rounds: u32,
    /// PBKDF2 iterations (OpenLDAP's default is 10,000)
    pub pbkdf2_max_iterations: u32,
    /// yescrypt memory, 128 · r · N bytes (libxcrypt's default is 16 MiB)
    pub yescrypt_max_memory: u64,
    /// yescrypt `p`
    pub yescrypt_max_p: u32,
    /// yescrypt `t` (extra time at the same memory)
    pub yescrypt_max_t: u32,
    /// bcrypt cost (log2 of the rounds; 10–12 is common)
    pub bcrypt_max_cost: u32,
}

/// The bounds: about as much work as the largest `{ARGON2}` value dird accepts.
pub const LIMITS: LegacyLimits = LegacyLimits {
    sha_crypt_max_rounds: 1_000_000,
    pbkdf2_max_iterations: 1_000_000,
    yescrypt_max_memory: 256 * 1024 * 1024,
    yescrypt_max_p: 4,
    yescrypt_max_t: 4,
    bcrypt_max_cost: 14,
};

/// Longest salt accepted in `{SSHA*}` and `{PBKDF2*}` values.
const MAX_SALT: usize = 64;

/// A parsed, bounded migration hash.
enum Legacy {
    Salted {
        digest: Sha,
        hash: Vec<u8>,
        salt: Vec<u8>,
    },
    ShaCrypt(String),
    Yescrypt(String),
    Bcrypt(String),
    Pbkdf2 {
        prf: Sha,
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

#[derive(Clone, Copy)]
enum Sha {
    One,
    Two256,
    Two512,
}

impl Sha {
    fn len(self) -> usize {
        match self {
            Sha::One => 20,
            Sha::Two256 => 32,
            Sha::Two512 => 64,
        }
    }

    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Sha::One => run::<sha1::Sha1>(parts),
            Sha::Two256 => run::<sha2::Sha256>(parts),
            Sha::Two512 => run::<sha2::Sha512>(parts),
        }
    }
}

/// True if `scheme` (the name between the braces) is a migration scheme dird verifies.
pub fn is_migration_scheme(scheme: &str) -> bool {
    const SCHEMES: [&str; 8] = [
        "SSHA",
        "SSHA256",
        "SSHA512",
        "CRYPT",
        "PBKDF2",
        "PBKDF2-SHA1",
        "PBKDF2-SHA256",
        "PBKDF2-SHA512",
    ];
    SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme))
}

/// True if `stored` is a migration hash (anything with a `{SCHEME}` other than dird's own
/// `{ARGON2}`): a bind that verifies it upgrades the entry.
pub fn is_legacy(stored: &[u8]) -> bool {
    crate::directory::pwvalue::scheme_of(stored).is_some_and(|s| !s.eq_ignore_ascii_case("ARGON2"))
}

/// Why a known but weak scheme is refused, if `scheme` is one.
pub fn weak_scheme(scheme: &str) -> Option<&'static str> {
    let s = scheme.to_ascii_uppercase();
    match s.as_str() {
        "SHA" | "MD5" => {
            Some("it is unsalted: one precomputed table would crack every such account at once")
        }
        "SMD5" => Some("salted MD5 is too cheap to compute to protect a password"),
        _ => None,
    }
}

/// Checks a written `{SCHEME}…` migration value: accepted scheme, well-formed, within
/// [`LIMITS`]. The error names the scheme and the bound (shown as constraintViolation).
pub fn check(value: &str) -> Result<(), String> {
    parse(value).map(|_| ())
}

/// Verifies `password` against a stored migration hash, in constant time for the compare.
/// A malformed value, one outside [`LIMITS`], or a password longer than
/// `password::MAX_PASSWORD_BYTES` never matches (SHA-crypt's cost grows with the square of
/// the password's length). Blocking: run it on the hash threads.
pub fn verify(stored: &str, password: &[u8]) -> bool {
    if password.len() > crate::directory::password::MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(parsed) = parse(stored) else {
        return false;
    };
    match parsed {
        Legacy::Salted { digest, hash, salt } => {
            let computed = digest.digest(&[password, &salt]);
            computed.ct_eq(&hash).into()
        }
        Legacy::Pbkdf2 {
            prf,
            iterations,
            salt,
            hash,
        } => {
            let mut out = vec![0u8; hash.len()];
            match prf {
                Sha::One => {
                    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, &salt, iterations, &mut out)
                }
                Sha::Two256 => {
                    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, &salt, iterations, &mut out)
                }
                Sha::Two512 => {
                    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, &salt, iterations, &mut out)
                }
            }
            out.ct_eq(&hash).into()
        }
        Legacy::ShaCrypt(mcf) => {
            use sha_crypt::PasswordVerifier as _;
            sha_crypt::ShaCrypt::default()
                .verify_password(password, mcf.as_str())
                .is_ok()
        }
        Legacy::Yescrypt(mcf) => {
            use yescrypt::PasswordVerifier as _;
            yescrypt::Yescrypt::default()
                .verify_password(password, mcf.as_str())
                .is_ok()
        }
        // bcrypt compares with subtle's ConstantTimeEq; it uses the first 72 bytes, as
        // every bcrypt implementation does.
        Legacy::Bcrypt(mcf) => bcrypt::verify(password, &mcf).unwrap_or(false),
    }
}

fn parse(value: &str) -> Result<Legacy, String> {
    let Some(scheme) = crate::directory::pwvalue::scheme_of(value.as_bytes()) else {
        return Err("not a {SCHEME} value".into());
    };
    let scheme = scheme.to_ascii_uppercase();
    let body = &value[scheme.len() + 2..];
    let bad = |why: &str| format!("userPassword: {{{scheme}}} value refused: {why}");
    match scheme.as_str() {
        "SSHA" | "SSHA256" | "SSHA512" => {
            let digest = match scheme.as_str() {
                "SSHA" => Sha::One,
                "SSHA256" => Sha::Two256,
                _ => Sha::Two512,
            };
            let raw = base64_std()
                .decode(body.trim())
                .map_err(|_| bad("not base64"))?;
            if raw.len() <= digest.len() || raw.len() > digest.len() + MAX_SALT {
                return Err(bad(&format!(
                    "expected a {}-byte digest followed by a salt of 1 to {MAX_SALT} bytes",
                    digest.len()
                )));
            }
            let (hash, salt) = raw.split_at(digest.len());
            Ok(Legacy::Salted {
                digest,
                hash: hash.to_vec(),
                salt: salt.to_vec(),
            })
        }
        "PBKDF2" | "PBKDF2-SHA1" | "PBKDF2-SHA256" | "PBKDF2-SHA512" => {
            let prf = match scheme.as_str() {
                "PBKDF2-SHA256" => Sha::Two256,
                "PBKDF2-SHA512" => Sha::Two512,
                _ => Sha::One,
            };
            let mut parts = body.split('$');
            let (Some(iter), Some(salt), Some(hash), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("expected ITERATIONS$SALT$HASH"));
            };
            let iterations: u32 = iter
                .parse()
                .map_err(|_| bad("the iteration count is not a number"))?;
            if iterations == 0 || iterations > LIMITS.pbkdf2_max_iterations {
                return Err(bad(&format!(
                    "{iterations} iterations; dird accepts 1 to {}",
                    LIMITS.pbkdf2_max_iterations
                )));
            }
            let salt = adapted_base64(salt).ok_or_else(|| bad("the salt is not adapted base64"))?;
            let hash = adapted_base64(hash).ok_or_else(|| bad("the hash is not adapted base64"))?;
            if salt.is_empty() || salt.len() > MAX_SALT {
                return Err(bad(&format!("the salt must be 1 to {MAX_SALT} bytes")));
            }
            if hash.len() != prf.len() {
                return Err(bad(&format!("the hash must be {} bytes", prf.len())));
            }
            Ok(Legacy::Pbkdf2 {
                prf,
                iterations,
                salt,
                hash,
            })
        }
        "CRYPT" => parse_crypt(body).map_err(|why| bad(&why)),
        _ => Err(match weak_scheme(&scheme) {
            Some(why) => bad(why),
            None => bad("dird does not know this scheme"),
        }),
    }
}

/// `{CRYPT}` bodies: the crypt(3) modular formats dird verifies.
fn parse_crypt(body: &str) -> Result<Legacy, String> {
    let id = body
        .strip_prefix('$')
        .and_then(|r| r.split('$').next())
        .unwrap_or("");
    match id {
        "5" | "6" => {
            let fields: Vec<&str> = body.split('$').collect();
            // ["", "6", ("rounds=N",)? salt, hash]
            let rounds = match fields.as_slice() {
                [_, _, r, _, _] => {
                    let n = r
                        .strip_prefix("rounds=")
                        .and_then(|n| n.parse::<u32>().ok())
                        .ok_or("SHA-crypt: malformed rounds= field")?;
                    // glibc clamps rounds to 1,000..999,999,999 when hashing; a stored value
                    // outside that range was not made by crypt(3).
                    if n < 1000 {
                        return Err(format!("SHA-crypt: rounds={n} is below 1000"));
                    }
                    n
                }
                [_, _, _, _] => 5000,
                _ => return Err("SHA-crypt: expected $ID$[rounds=N$]SALT$HASH".into()),
            };
            // The salt is at most 16 characters, the hash 43 ($5$) or 86 ($6$) crypt-base64
            // characters.
            let (salt, hash) = (fields[fields.len() - 2], fields[fields.len() - 1]);
            let want = if id == "5" { 43 } else { 86 };
            if salt.len() > 16 || hash.len() != want || !hash.bytes().all(is_crypt64) {
                return Err(format!(
                    "SHA-crypt: expected a salt of at most 16 characters and a {want}-character hash"
                ));
            }
            if rounds > LIMITS.sha_crypt_max_rounds {
                return Err(format!(
                    "SHA-crypt: rounds={rounds} exceeds dird's limit of {}",
                    LIMITS.sha_crypt_max_rounds
                ));
            }
            Ok(Legacy::ShaCrypt(body.to_string()))
        }
        "y" => {
            let params = body
                .split('$')
                .nth(2)
                .ok_or("yescrypt: expected $y$PARAMS$SALT$HASH")?;
            let p: yescrypt::Params = params
                .parse()
                .map_err(|_| "yescrypt: unreadable parameters".to_string())?;
            let memory = 128u64
                .saturating_mul(u64::from(p.r()))
                .saturating_mul(p.n());
            let l = LIMITS;
            if memory > l.yescrypt_max_memory || p.p() > l.yescrypt_max_p {
                return Err(format!(
                    "yescrypt: N={} r={} p={} needs {} MiB; dird's limits are {} MiB and p<={}",
                    p.n(),
                    p.r(),
                    p.p(),
                    memory >> 20,
                    l.yescrypt_max_memory >> 20,
                    l.yescrypt_max_p
                ));
            }
            // The crate does not expose `t`: rebuild the parameters with each allowed `t`
            // and accept only if one of them is the stored set.
            let modes = [
                yescrypt::Mode::Classic,
                yescrypt::Mode::Worm,
                yescrypt::Mode::Rw,
            ];
            let within_t = modes.iter().any(|&mode| {
                (0..=l.yescrypt_max_t).any(|t| {
                    yescrypt::Params::new_with_all_params(mode, p.n(), p.r(), p.p(), t, 0)
                        .is_ok_and(|q| q == p)
                })
            });
            if !within_t {
                return Err(format!(
                    "yescrypt: the time parameter exceeds dird's limit t<={}",
                    l.yescrypt_max_t
                ));
            }
            Ok(Legacy::Yescrypt(body.to_string()))
        }
        "2a" | "2b" | "2y" => {
            let cost: u32 = body
                .get(4..6)
                .and_then(|c| c.parse().ok())
                .ok_or("bcrypt: expected $2b$CC$ with a two-digit cost")?;
            if !(4..=LIMITS.bcrypt_max_cost).contains(&cost) {
                return Err(format!(
                    "bcrypt: cost {cost}; dird accepts 4 to {}",
                    LIMITS.bcrypt_max_cost
                ));
            }
            if body.len() != 60 {
                return Err("bcrypt: expected a 60-character hash".into());
            }
            Ok(Legacy::Bcrypt(body.to_string()))
        }
        "1" => Err("MD5-crypt ($1$) is too cheap to compute to protect a password".into()),
        "" => Err(
            "traditional DES crypt uses only 8 characters of the password and is too cheap \
             to compute"
                .into(),
        ),
        other => Err(format!("crypt format ${other}$ is not supported")),
    }
}

fn is_crypt64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'/'
}

fn base64_std() -> GeneralPurpose {
    GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

/// OpenLDAP pw-pbkdf2's "adapted base64": the standard alphabet with `.` instead of `+`,
/// without padding.
fn adapted_base64(s: &str) -> Option<Vec<u8>> {
    base64_std().decode(s.replace('.', "+")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssha_family() {
        let salt = b"abcd";
        for (scheme, sha) in [
            ("SSHA", Sha::One),
            ("SSHA256", Sha::Two256),
            ("SSHA512", Sha::Two512),
        ] {
            let mut raw = sha.digest(&[b"secret", salt]);
            raw.extend_from_slice(salt);
            let v = format!("{{{scheme}}}{}", base64_std().encode(&raw));
            check(&v).unwrap();
            assert!(verify(&v, b"secret"), "{scheme}");
            assert!(!verify(&v, b"Secret"), "{scheme}");
        }
        // Real slappasswd output (OpenLDAP 2.5; {SSHA512} with -o module-load=pw-sha2)
        for v in [
            "{SSHA}/Km5HRtPxtlsq0QQAYjQUW5F6BL9+STD",
            "{SSHA512}KNO14nTlfFD0o+Yk8dFzt0xjzTDQM4qWOYU7lthzXGG85LHn6rfVbMvbHzpW/2/VtRRoWJ0QtBkGCuJnVkB8U172NadtOLHT",
        ] {
            assert!(verify(v, b"secret"), "{v}");
            assert!(!verify(v, b"secre"), "{v}");
        }
        // Known vector: python3 hashlib.sha1(b"secret" + b"salt").digest() + b"salt"
        let known = "{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0";
        check(known).unwrap();
        assert!(verify(known, b"secret"));
        assert!(!verify(known, b"secreT"));
        assert!(check("{SSHA}AAAA").unwrap_err().contains("SSHA"));
    }

    #[test]
    fn pbkdf2_openldap_vector() {
        // slapd-pw-pbkdf2(5) EXAMPLES: the password 'secret'.
        let v = "{PBKDF2-SHA512}10000$/oQ4xZi382mk7kvCd3ZdkA$2wqjpuyV2l0U/a1QwoQPOtlQL.UcJGNACj1O24balruqQb/NgPW6OCvvrrJP8.SzA3/5iYvLnwWPzeX8IK/bEQ";
        check(v).unwrap();
        assert!(verify(v, b"secret"));
        assert!(!verify(v, b"secret2"));
        let over = "{PBKDF2-SHA256}5000000$/oQ4xZi382mk7kvCd3ZdkA$2wqjpuyV2l0U/a1QwoQPOtlQL.UcJGNACj1O24balru";
        let e = check(over).unwrap_err();
        assert!(e.contains("PBKDF2-SHA256") && e.contains("1000000"), "{e}");
        assert!(!verify(over, b"secret"));
    }

    #[test]
    fn crypt_formats() {
        // glibc crypt(3): crypt("secret", "$6$saltsalt$") and "$5$rounds=10000$saltsalt$" (python3 crypt)
        let sha512 = "{CRYPT}$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        check(sha512).unwrap();
        assert!(verify(sha512, b"secret"));
        assert!(!verify(sha512, b"secrets"));
        let sha256 = "{CRYPT}$5$rounds=10000$saltsalt$RUsnTSO2Cw.gkRW/RZSmG6BCeuh1a6eDbZfnX4oz1c5";
        check(sha256).unwrap();
        assert!(verify(sha256, b"secret"));
        let many = "{CRYPT}$6$rounds=50000000$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        let e = check(many).unwrap_err();
        assert!(e.contains("CRYPT") && e.contains("rounds=50000000"), "{e}");
        // libxcrypt: crypt("secret", "$y$j9T$abcdefghijklmnop$")
        let y = "{CRYPT}$y$j9T$abcdefghijklmnop$3dL1LkYnZM.OVXuVdnnaKVDlLYT92dRwOzDZ5XiVCe.";
        check(y).unwrap();
        assert!(verify(y, b"secret"));
        assert!(!verify(y, b"secret!"));
        let e = check("{CRYPT}$y$jGT$abcdefghijklmnop$3dL1LkYnZM.OVXuVdnnaKVDlLYT92dRwOzDZ5XiVCe.")
            .unwrap_err();
        assert!(e.contains("yescrypt") && e.contains("MiB"), "{e}");
        // bcrypt: libxcrypt crypt("secret", "$2b$04$cVWp4XaNU8a4v1uMRum2SO")
        let b = "{CRYPT}$2b$04$cVWp4XaNU8a4v1uMRum2SOm.9aF0rnnFsZ2nl/0OFFUoJQDc7NTQu";
        check(b).unwrap();
        assert!(verify(b, b"secret"));
        assert!(!verify(b, b"Secret"));
        let e = check("{CRYPT}$2b$20$cVWp4XaNU8a4v1uMRum2SOm.9aF0rnnFsZ2nl/0OFFUoJQDc7NTQu")
            .unwrap_err();
        assert!(e.contains("cost 20"), "{e}");
        assert!(check("{CRYPT}$1$salt$abc")
            .unwrap_err()
            .contains("MD5-crypt"));
        assert!(check("{CRYPT}$6$salt$hash")
            .unwrap_err()
            .contains("86-character"));
        assert!(check("{CRYPT}abJnggxhB/yWI").unwrap_err().contains("DES"));
        assert!(check("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=")
            .unwrap_err()
            .contains("unsalted"));
        assert!(check("{SMD5}abc").unwrap_err().contains("MD5"));
    }

    #[test]
    fn long_passwords_never_match() {
        let v = "{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0";
        assert!(!verify(v, &vec![b'a'; 100_000]));
    }
}
