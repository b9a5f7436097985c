//! Kerberos principals and their long-term key material.
//!
//! Owns: `PrincipalName` (components + realm, `a/b@REALM` text form), `KeyMaterial`
//! (zeroised on drop), password-to-key derivation (RFC 3962 / RFC 8009 string-to-key) and the
//! MIT-style default salt, and `AccountIdentity` (what a PAC says about an account). May import: std, `krb5` (for the RFC 3961 key functions only),
//! `zeroize`. No I/O, no async.
//!
//! Key derivation is CPU-heavy (PBKDF2 with 4096 iterations for the SHA-1 enctypes and 32768
//! for the SHA-2 ones, RFC 8009 §4): async callers must run `derive_keys` inside
//! `tokio::task::spawn_blocking`.

use std::fmt;

use zeroize::Zeroize;

/// aes128-cts-hmac-sha1-96 (RFC 3962).
pub const AES128_CTS_HMAC_SHA1_96: i32 = 17;
/// aes256-cts-hmac-sha1-96 (RFC 3962).
pub const AES256_CTS_HMAC_SHA1_96: i32 = 18;
/// aes128-cts-hmac-sha256-128 (RFC 8009).
pub const AES128_CTS_HMAC_SHA256_128: i32 = 19;
/// aes256-cts-hmac-sha384-192 (RFC 8009).
pub const AES256_CTS_HMAC_SHA384_192: i32 = 20;

/// The enctypes dird derives and serves, strongest-and-most-compatible first (the order MIT
/// uses for `supported_enctypes`).
pub const KEY_ENCTYPES: [i32; 4] = [
    AES256_CTS_HMAC_SHA1_96,
    AES128_CTS_HMAC_SHA1_96,
    AES256_CTS_HMAC_SHA384_192,
    AES128_CTS_HMAC_SHA256_128,
];

/// RFC 4120 §6.2 name types used by dird.
pub mod name_type {
    /// NT-UNKNOWN.
    pub const UNKNOWN: i32 = 0;
    /// NT-PRINCIPAL: users.
    pub const PRINCIPAL: i32 = 1;
    /// NT-SRV-INST: `krbtgt/REALM`, `kadmin/changepw`.
    pub const SRV_INST: i32 = 2;
    /// NT-SRV-HST: `host/fqdn`.
    pub const SRV_HST: i32 = 3;
    /// NT-ENTERPRISE (RFC 6806 §5): a single `user@domain` component.
    pub const ENTERPRISE: i32 = 10;
}

/// A Kerberos principal name: name type, components and realm.
///
/// The text form is `comp1/comp2@REALM`; `/`, `@` and `\` inside a component are escaped with
/// `\` (as MIT's `krb5_unparse_name` does).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PrincipalName {
    /// RFC 4120 §6.2 name type (see [`name_type`]).
    pub name_type: i32,
    /// The name components, at least one.
    pub components: Vec<String>,
    /// The realm (may be empty when unknown).
    pub realm: String,
}

/// Why a principal name could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalNameError {
    /// The name has no component or an empty one.
    #[error("empty principal name component")]
    EmptyComponent,
    /// A trailing `\` escapes nothing.
    #[error("dangling escape in principal name")]
    DanglingEscape,
    /// More than one unescaped `@`.
    #[error("more than one realm separator in principal name")]
    TwoRealms,
}

impl PrincipalName {
    /// A name from parts. The name type is `SRV_INST` for two or more components, else `PRINCIPAL`.
    pub fn new(components: Vec<String>, realm: impl Into<String>) -> Self {
        let name_type = if components.len() > 1 {
            name_type::SRV_INST
        } else {
            name_type::PRINCIPAL
        };
        PrincipalName {
            name_type,
            components,
            realm: realm.into(),
        }
    }

    /// Parses `a/b@REALM` (realm optional: it is then empty). Escapes: `\/`, `\@`, `\\`.
    pub fn parse(text: &str) -> Result<Self, PrincipalNameError> {
        let mut components = Vec::new();
        let mut current = String::new();
        let mut realm: Option<String> = None;
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => current.push('\n'),
                    Some('t') => current.push('\t'),
                    Some('0') => current.push('\0'),
                    Some(other) => current.push(other),
                    None => return Err(PrincipalNameError::DanglingEscape),
                },
                '/' if realm.is_none() => components.push(std::mem::take(&mut current)),
                '@' => {
                    if realm.is_some() {
                        return Err(PrincipalNameError::TwoRealms);
                    }
                    components.push(std::mem::take(&mut current));
                    realm = Some(String::new());
                }
                other => current.push(other),
            }
        }
        match realm.as_mut() {
            Some(r) => *r = current,
            None => components.push(current),
        }
        if components.iter().any(String::is_empty) {
            return Err(PrincipalNameError::EmptyComponent);
        }
        Ok(PrincipalName::new(components, realm.unwrap_or_default()))
    }

    /// The components joined with `/`, without realm and without escaping (for keys/logs).
    pub fn joined(&self) -> String {
        self.components.join("/")
    }

    /// This name with another realm.
    pub fn with_realm(mut self, realm: &str) -> Self {
        self.realm = realm.to_owned();
        self
    }

    /// Case-insensitive comparison of components and realm (AD semantics); name type ignored.
    pub fn eq_ignore_case(&self, other: &PrincipalName) -> bool {
        self.realm.eq_ignore_ascii_case(&other.realm)
            && self.components.len() == other.components.len()
            && self
                .components
                .iter()
                .zip(&other.components)
                .all(|(a, b)| a.to_lowercase() == b.to_lowercase())
    }

    /// True for `krbtgt/<realm>` (case-insensitive).
    pub fn is_krbtgt_for(&self, realm: &str) -> bool {
        self.components.len() == 2
            && self.components[0].eq_ignore_ascii_case("krbtgt")
            && self.components[1].eq_ignore_ascii_case(realm)
    }

    /// `krbtgt/REALM@REALM`.
    pub fn krbtgt(realm: &str) -> Self {
        PrincipalName::new(vec!["krbtgt".into(), realm.into()], realm)
    }

    /// `kadmin/changepw@REALM`, the kpasswd service (RFC 3244 §2).
    pub fn kadmin_changepw(realm: &str) -> Self {
        PrincipalName::new(vec!["kadmin".into(), "changepw".into()], realm)
    }
}

impl fmt::Display for PrincipalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, component) in self.components.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            write_escaped(f, component)?;
        }
        if !self.realm.is_empty() {
            f.write_str("@")?;
            write_escaped(f, &self.realm)?;
        }
        Ok(())
    }
}

fn write_escaped(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    for c in s.chars() {
        match c {
            '/' | '@' | '\\' => write!(f, "\\{c}")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\0' => f.write_str("\\0")?,
            other => write!(f, "{other}")?,
        }
    }
    Ok(())
}

/// One long-term key of a principal. The key bytes are zeroised when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// RFC 3961 enctype number (17–20).
    pub enctype: i32,
    /// Key version number.
    pub kvno: u32,
    /// Raw key octets (16 or 32 bytes for the AES enctypes).
    pub key: Vec<u8>,
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("enctype", &self.enctype)
            .field("kvno", &self.kvno)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// Key derivation failed (an enctype the crypto library refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key derivation failed: {0}")]
pub struct KeyDerivationError(pub String);

/// Derives the keys of all [`KEY_ENCTYPES`] from a password and salt (RFC 3962 §4, RFC 8009 §4,
/// default iteration counts). CPU-heavy: call it from `spawn_blocking` in async code.
pub fn derive_keys(
    password: &str,
    salt: &str,
    kvno: u32,
) -> Result<Vec<KeyMaterial>, KeyDerivationError> {
    KEY_ENCTYPES
        .iter()
        .map(|&enctype| {
            let key = krb5::Key::from_password(enctype, password, salt.as_bytes(), None)
                .map_err(|e| KeyDerivationError(e.to_string()))?;
            Ok(KeyMaterial {
                enctype,
                kvno,
                key: key.bytes().to_vec(),
            })
        })
        .collect()
}

/// Fresh random keys for all [`KEY_ENCTYPES`] (computer accounts, krbtgt, keytab export);
/// random-to-key is the identity for AES (RFC 3962 §6).
pub fn random_keys(kvno: u32) -> Result<Vec<KeyMaterial>, KeyDerivationError> {
    KEY_ENCTYPES
        .iter()
        .map(|&enctype| {
            let key = krb5::Key::random(enctype).map_err(|e| KeyDerivationError(e.to_string()))?;
            Ok(KeyMaterial {
                enctype,
                kvno,
                key: key.bytes().to_vec(),
            })
        })
        .collect()
}

/// The MIT default salt (RFC 4120 §4): the realm followed by the components, concatenated
/// without separators: `EXAMPLE.COM` + `alice` = `EXAMPLE.COMalice`,
/// `host/client.example.com` → `EXAMPLE.COMhostclient.example.com`.
pub fn default_salt(realm: &str, principal: &PrincipalName) -> String {
    let mut salt = String::from(realm);
    for component in &principal.components {
        salt.push_str(component);
    }
    salt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn parses_and_displays_names() {
        let p = PrincipalName::parse("host/client.example.com@EXAMPLE.COM").unwrap();
        assert_eq!(p.components, vec!["host", "client.example.com"]);
        assert_eq!(p.realm, "EXAMPLE.COM");
        assert_eq!(p.name_type, name_type::SRV_INST);
        assert_eq!(p.to_string(), "host/client.example.com@EXAMPLE.COM");

        let u = PrincipalName::parse("alice").unwrap();
        assert_eq!(u.components, vec!["alice"]);
        assert_eq!(u.realm, "");
        assert_eq!(u.name_type, name_type::PRINCIPAL);

        let e = PrincipalName::parse("alice\\@example.com@EXAMPLE.COM").unwrap();
        assert_eq!(e.components, vec!["alice@example.com"]);
        assert_eq!(e.to_string(), "alice\\@example.com@EXAMPLE.COM");
        assert_eq!(PrincipalName::parse(&e.to_string()).unwrap(), e);
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(
            PrincipalName::parse(""),
            Err(PrincipalNameError::EmptyComponent)
        );
        assert_eq!(
            PrincipalName::parse("a//b"),
            Err(PrincipalNameError::EmptyComponent)
        );
        assert_eq!(
            PrincipalName::parse("a@B@C"),
            Err(PrincipalNameError::TwoRealms)
        );
        assert_eq!(
            PrincipalName::parse("a\\"),
            Err(PrincipalNameError::DanglingEscape)
        );
    }

    #[test]
    fn compares_case_insensitively() {
        let a = PrincipalName::parse("HOST/Client.Example.com@example.com").unwrap();
        let b = PrincipalName::parse("host/client.example.com@EXAMPLE.COM").unwrap();
        assert!(a.eq_ignore_case(&b));
        assert!(PrincipalName::parse("krbtgt/example.com")
            .unwrap()
            .is_krbtgt_for("EXAMPLE.COM"));
    }

    #[test]
    fn default_salt_is_mit_style() {
        let alice = PrincipalName::parse("alice@EXAMPLE.COM").unwrap();
        assert_eq!(default_salt("EXAMPLE.COM", &alice), "EXAMPLE.COMalice");
        let host = PrincipalName::parse("host/client.example.com").unwrap();
        assert_eq!(
            default_salt("EXAMPLE.COM", &host),
            "EXAMPLE.COMhostclient.example.com"
        );
    }

    #[test]
    fn rfc3962_password_key_at_4096_iterations() {
        let keys = derive_keys("password", "ATHENA.MIT.EDUraeburn", 3).unwrap();
        let aes256 = keys
            .iter()
            .find(|k| k.enctype == AES256_CTS_HMAC_SHA1_96)
            .unwrap();
        assert_eq!(
            hex(&aes256.key),
            "01b897121d933ab44b47eb5494db15e50eb74530dbdae9b634d65020ff5d88c1"
        );
        assert_eq!(aes256.kvno, 3);
        assert_eq!(keys.len(), 4);
        let aes128 = keys
            .iter()
            .find(|k| k.enctype == AES128_CTS_HMAC_SHA1_96)
            .unwrap();
        // RFC 3962 Appendix B does not list 4096 iterations for aes128; check the length only.
        assert_eq!(aes128.key.len(), 16);
    }

    #[test]
    fn random_keys_have_enctype_lengths() {
        let keys = random_keys(1).unwrap();
        let lens: Vec<_> = keys.iter().map(|k| (k.enctype, k.key.len())).collect();
        assert_eq!(lens, vec![(18, 32), (17, 16), (20, 32), (19, 16)]);
        assert!(!format!("{:?}", keys[0]).contains(&hex(&keys[0].key)));
    }
}

/// Who a Kerberos PAC (MS-PAC LOGON_INFO, UPN_DNS_INFO) describes: what the directory knows
/// about an account, SIDs in binary form (MS-DTYP §2.4.2.2). Read by `directory`, encoded by
/// `kdc::pac`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountIdentity {
    /// sAMAccountName.
    pub sam_account_name: String,
    /// displayName (KERB_VALIDATION_INFO FullName), may be empty.
    pub full_name: String,
    /// userPrincipalName, if set.
    pub upn: Option<String>,
    /// The account's objectSid (binary).
    pub sid: Vec<u8>,
    /// The domain SID (binary).
    pub domain_sid: Vec<u8>,
    /// primaryGroupID.
    pub primary_group_rid: u32,
    /// The SIDs of every group the account is in, nested groups included (tokenGroups).
    pub group_sids: Vec<Vec<u8>>,
    /// LDAP userAccountControl.
    pub user_account_control: u32,
    /// pwdLastSet as a FILETIME (0: never set).
    pub password_last_set: u64,
    /// The NetBIOS domain name (LogonDomainName).
    pub netbios_domain: String,
    /// The DC's NetBIOS-style host name (LogonServer).
    pub logon_server: String,
}
