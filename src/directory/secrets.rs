//! Kerberos key material at rest: the master key, the sealed key blob stored in
//! `dirdKerberosKeys`, and the one function that turns a new password into everything that is
//! stored for it (argon2 hash, Kerberos keys, key version number).
//!
//! May import: `model`, `directory::{error, password, pwvalue, policy}`, `ring` (AEAD). No I/O: the master key
//! file is read by `daemon` and handed in as bytes.
//!
//! Envelope encryption (DESIGN.md §5, like MIT's stash file): each entry's keys are encrypted
//! with AES-256-GCM under the 32-byte master key, with a fresh random 96-bit nonce per write
//! and the entry's `objectGUID` as associated data, so a blob copied onto another entry does not
//! decrypt. The GUID (not the DN) is bound because it survives renames.
//!
//! Blob layout (version 1): `01 | nonce (12) | AES-256-GCM(plaintext) with tag`, plaintext:
//! u16 salt length, salt (UTF-8), u16 key count, then per key i32 enctype, u32 kvno, u16 length,
//! key octets (all big-endian). The current keys come first; older keys (krbtgt rotation) follow.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::directory::error::DirError;
use crate::directory::password;
use crate::directory::pwvalue::{self, Writer, Written};
use crate::model::principal::{default_salt, derive_keys, KeyMaterial, PrincipalName};
use crate::model::Entry;

/// The attribute holding the sealed key blob.
pub const KEYS_ATTR: &str = "dirdKerberosKeys";
/// The attribute holding the current key version number (AD's msDS-KeyVersionNumber).
pub const KVNO_ATTR: &str = "msDS-KeyVersionNumber";

/// The attribute holding the password history (argon2id PHC strings, newest first; a secret).
pub const HISTORY_ATTR: &str = "dirdPasswordHistory";

/// Length of the master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

const BLOB_VERSION: u8 = 1;

/// The master key that seals every entry's Kerberos keys. Zeroised on drop.
pub struct MasterKey {
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Why sealed keys could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The master key file does not hold exactly 32 bytes.
    #[error("the master key must be {MASTER_KEY_LEN} bytes, found {0}")]
    BadMasterKey(usize),
    /// The blob is not a version-1 blob or is truncated.
    #[error("malformed key blob")]
    Malformed,
    /// Authentication failed: wrong master key, tampered blob, or a blob of another entry.
    #[error("key blob does not decrypt under the master key")]
    Decrypt,
    /// The system random generator failed.
    #[error("random generator failed")]
    Random,
}

impl MasterKey {
    /// A master key from the bytes of the key file.
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, SealError> {
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        if bytes.len() != MASTER_KEY_LEN {
            return Err(SealError::BadMasterKey(bytes.len()));
        }
        key.copy_from_slice(bytes);
        Ok(MasterKey { bytes: key })
    }

    /// A fresh random master key (first start).
    pub fn generate() -> Result<MasterKey, SealError> {
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        SystemRandom::new()
            .fill(&mut key[..])
            .map_err(|_| SealError::Random)?;
        Ok(MasterKey { bytes: key })
    }

    /// The raw key, for writing the key file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..]
    }

    fn aead(&self) -> Result<LessSafeKey, SealError> {
        UnboundKey::new(&AES_256_GCM, &self.bytes[..])
            .map(LessSafeKey::new)
            .map_err(|_| SealError::BadMasterKey(MASTER_KEY_LEN))
    }

    /// Seals `keys` for the entry whose objectGUID is `guid`.
    pub fn seal(&self, guid: &[u8], keys: &StoredKeys) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut data = Zeroizing::new(keys.encode()?);
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(guid),
                &mut *data,
            )
            .map_err(|_| SealError::Decrypt)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + data.len());
        out.push(BLOB_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Opens a blob sealed for the entry whose objectGUID is `guid`.
    pub fn open(&self, guid: &[u8], blob: &[u8]) -> Result<StoredKeys, SealError> {
        let (&version, rest) = blob.split_first().ok_or(SealError::Malformed)?;
        if version != BLOB_VERSION || rest.len() < NONCE_LEN {
            return Err(SealError::Malformed);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Malformed)?;
        let mut data = Zeroizing::new(sealed.to_vec());
        let plain = self
            .aead()?
            .open_in_place(nonce, Aad::from(guid), &mut data)
            .map_err(|_| SealError::Decrypt)?;
        StoredKeys::decode(plain)
    }
}

/// The decrypted content of a key blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKeys {
    /// The salt the password keys were derived with (sent to clients in ETYPE-INFO2).
    pub salt: String,
    /// Current keys first, then any older keys still accepted for decryption.
    pub keys: Vec<KeyMaterial>,
}

impl StoredKeys {
    /// The current key version number (that of the first key).
    pub fn kvno(&self) -> u32 {
        self.keys.first().map_or(0, |k| k.kvno)
    }

    fn encode(&self) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::new();
        put_counted(&mut out, self.salt.as_bytes())?;
        put_u16(&mut out, self.keys.len())?;
        for k in &self.keys {
            out.extend_from_slice(&k.enctype.to_be_bytes());
            out.extend_from_slice(&k.kvno.to_be_bytes());
            put_counted(&mut out, &k.key)?;
        }
        Ok(out)
    }

    fn decode(mut bytes: &[u8]) -> Result<StoredKeys, SealError> {
        let salt = String::from_utf8(take_counted(&mut bytes)?.to_vec())
            .map_err(|_| SealError::Malformed)?;
        let count = take_u16(&mut bytes)?;
        let mut keys = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let enctype = i32::from_be_bytes(take_array(&mut bytes)?);
            let kvno = u32::from_be_bytes(take_array(&mut bytes)?);
            let key = take_counted(&mut bytes)?.to_vec();
            keys.push(KeyMaterial { enctype, kvno, key });
        }
        if !bytes.is_empty() {
            return Err(SealError::Malformed);
        }
        Ok(StoredKeys { salt, keys })
    }
}

/// How a password maps to Kerberos keys in this directory.
#[derive(Clone, Copy)]
pub struct KeyContext<'a> {
    /// The realm (`EXAMPLE.COM`).
    pub realm: &'a str,
    /// The master key sealing the keys.
    pub master: &'a MasterKey,
}

/// Everything stored for one new password.
pub struct PasswordSecrets {
    /// The `{ARGON2}` PHC string for `userPassword`.
    pub phc: String,
    /// The sealed keys and their kvno, for Kerberos principals.
    pub kerberos: Option<(Vec<u8>, u32)>,
}

/// True if `entry` is a Kerberos principal: a user or computer account with a sAMAccountName.
pub fn is_principal(entry: &Entry) -> bool {
    (entry.is_a("user") || entry.is_a("computer")) && entry.first_str("sAMAccountName").is_some()
}

/// The MIT-style salt of an account: the realm followed by its sAMAccountName.
pub fn account_salt(realm: &str, sam: &str) -> String {
    default_salt(realm, &PrincipalName::new(vec![sam.to_owned()], realm))
}

/// The salt of `entry`'s password keys: AD's computer salt for computer accounts (MS-KILE
/// 3.1.1.2: the realm, `host`, the lower-case name without its `$`, `.`, the lower-case
/// realm; `adcli` and Samba derive a joined machine's keytab with it), else `account_salt`.
pub fn entry_salt(entry: &Entry, realm: &str, sam: &str) -> String {
    if entry.is_a("computer") {
        computer_salt(realm, sam)
    } else {
        account_salt(realm, sam)
    }
}

/// AD's salt for the computer `NAME$`: `REALMhostname.realm` (lower-case name, no `$`).
pub fn computer_salt(realm: &str, sam: &str) -> String {
    let name = sam.strip_suffix('$').unwrap_or(sam).to_lowercase();
    format!(
        "{}host{name}.{}",
        realm.to_uppercase(),
        realm.to_lowercase()
    )
}

/// The entry's current key version number (0 when it has none).
pub fn current_kvno(entry: &Entry) -> u32 {
    entry
        .first_str(KVNO_ATTR)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Hashes `password` and, when `entry` (the entry as it will be after the write, with its
/// objectGUID) is a Kerberos principal, derives and seals its keys with the next kvno.
/// CPU-heavy (argon2 plus four PBKDF2 runs): call it on the blocking pool.
pub fn password_secrets(
    entry: &Entry,
    password: &[u8],
    kerberos: Option<KeyContext<'_>>,
) -> Result<PasswordSecrets, DirError> {
    let phc = password::hash_blocking(password)?;
    let kerberos = match (kerberos, principal_parts(entry)) {
        (Some(ctx), Some((sam, guid))) => match std::str::from_utf8(password) {
            Ok(text) => {
                let kvno = current_kvno(entry).wrapping_add(1).max(1);
                let salt = entry_salt(entry, ctx.realm, sam);
                let keys = derive_keys(text, &salt, kvno).map_err(|e| {
                    tracing::error!(error = %e, "Kerberos key derivation failed");
                    DirError::Internal
                })?;
                let blob = ctx
                    .master
                    .seal(guid, &StoredKeys { salt, keys })
                    .map_err(seal_failed)?;
                Some((blob, kvno))
            }
            Err(_) => {
                // RFC 3961 string-to-key takes a UTF-8 string; such a password still works for
                // LDAP binds but cannot be used with Kerberos.
                tracing::warn!(dn = %entry.dn, "password is not UTF-8: no Kerberos keys derived");
                None
            }
        },
        _ => None,
    };
    Ok(PasswordSecrets { phc, kerberos })
}

/// Seals random keys (computer accounts, krbtgt, keytab export) with the next kvno. With
/// `keep_previous`, the current keys stay in the blob after the new ones, so that tickets
/// issued under them remain valid (krbtgt rotation). Returns the blob, kvno and new keys.
pub fn random_secrets(
    entry: &Entry,
    ctx: KeyContext<'_>,
    keep_previous: bool,
) -> Result<(Vec<u8>, u32, Vec<KeyMaterial>), DirError> {
    let (sam, guid) = principal_parts(entry).ok_or(DirError::UnwillingToPerform(
        "the entry is not a Kerberos principal (user or computer with a sAMAccountName)",
    ))?;
    let kvno = current_kvno(entry).wrapping_add(1).max(1);
    let fresh = crate::model::principal::random_keys(kvno).map_err(|e| {
        tracing::error!(error = %e, "random key generation failed");
        DirError::Internal
    })?;
    let mut all = fresh.clone();
    let mut salt = entry_salt(entry, ctx.realm, sam);
    if keep_previous {
        if let Some(old) = open_entry_keys(entry, ctx.master)? {
            // Keep only the directly previous generation: one rotation back is enough for
            // tickets issued before it to live out their lifetime.
            let prev = old.kvno();
            salt = old.salt;
            all.extend(old.keys.into_iter().filter(|k| k.kvno == prev));
        }
    }
    let blob = ctx
        .master
        .seal(guid, &StoredKeys { salt, keys: all })
        .map_err(seal_failed)?;
    Ok((blob, kvno, fresh))
}

/// Decrypts the keys stored on `entry`, if any.
pub fn open_entry_keys(entry: &Entry, master: &MasterKey) -> Result<Option<StoredKeys>, DirError> {
    let Some(blob) = entry.values(KEYS_ATTR).first() else {
        return Ok(None);
    };
    let guid = entry
        .values("objectGUID")
        .first()
        .cloned()
        .unwrap_or_default();
    master.open(&guid, blob).map(Some).map_err(|e| {
        tracing::error!(dn = %entry.dn, error = %e, "stored Kerberos keys cannot be opened");
        DirError::Internal
    })
}

/// `dird check-store`'s key check: opens the sealed keys of `entry` (which has some) under
/// `master` and returns their current kvno, or why they do not open. Logs nothing (the report
/// names the entry).
pub fn check_entry_keys(entry: &Entry, master: &MasterKey) -> Result<u32, String> {
    let Some(blob) = entry.values(KEYS_ATTR).first() else {
        return Err(format!("{KEYS_ATTR} is empty"));
    };
    let Some(guid) = entry.values("objectGUID").first() else {
        return Err(format!(
            "{KEYS_ATTR} is present but objectGUID, the blob's associated data, is not"
        ));
    };
    master
        .open(guid, blob)
        .map(|k| k.kvno())
        .map_err(|e| format!("{KEYS_ATTR}: {e}"))
}

/// Gives a new entry an objectGUID (the associated data of its key blob) if it has none, in
/// the form the backend would have assigned.
pub fn ensure_guid(entry: &mut Entry) {
    if !entry.has("objectGUID") {
        let uuid = uuid::Uuid::new_v4();
        entry.set("objectGUID", vec![uuid.to_bytes_le().to_vec()]);
        if !entry.has("entryUUID") {
            entry.set_str("entryUUID", &uuid.hyphenated().to_string());
        }
    }
}

/// One new password, as the single password path receives it (from every writer: LDAP add
/// and modify of userPassword or unicodePwd, Password Modify, kpasswd, the CLI, LDIF import).
pub struct NewPassword<'a> {
    /// the entry as it will be after the write (with its objectGUID)
    pub entry: &'a Entry,
    /// the classified value (`pwvalue::classify`)
    pub value: Written,
    /// the policy and the history the password is checked against
    pub rules: &'a password::PasswordRules,
    /// stored hashes, newest first (the entry's history), that the new history continues
    pub previous: &'a [String],
    /// Kerberos keys are derived when enabled and the entry is a principal
    pub kerberos: Option<KeyContext<'a>>,
    /// the time of the change (pwdLastSet)
    pub now: SystemTime,
}

/// Everything stored for a new password, computed together.
pub struct PasswordUpdate {
    /// the `{ARGON2}` PHC string for userPassword
    pub phc: String,
    /// sealed keys and kvno; `None`: no keys match the password any more (remove them)
    pub kerberos: Option<(Vec<u8>, u32)>,
    /// the new password history (empty when history is off)
    pub history: Vec<Vec<u8>>,
    /// the new pwdLastSet (user accounts)
    pub pwd_last_set: Option<String>,
    /// the password was given in cleartext (false: an `{ARGON2}` hash was kept)
    pub from_cleartext: bool,
}

/// THE password path: policy (length, complexity, history), argon2, Kerberos keys with the
/// next kvno, the new history and pwdLastSet, for one new password. Every writer calls this
/// (through `Directory::write_password` or `prepare_new_entry`) and stores all of the result
/// in one transaction. An `{ARGON2}` hash (trusted writers, checked by `pwvalue`) is kept as
/// is and yields no Kerberos keys (none can be derived from a hash).
/// CPU-heavy: call it on the hash threads.
pub fn new_password(p: NewPassword<'_>) -> Result<PasswordUpdate, DirError> {
    let rehash = matches!(p.value, Written::Rehash(_));
    let (phc, kerberos, from_cleartext) = match p.value {
        Written::Cleartext(pw) => {
            {
                let account = crate::directory::policy::Account::of(p.entry);
                password::check_policy(&pw, p.rules, &account)?;
            }
            let secrets = password_secrets(p.entry, &pw, p.kerberos)?;
            (secrets.phc, secrets.kerberos, true)
        }
        Written::Argon2(phc) | Written::Legacy(phc) => (phc, None, false),
        // The bind's upgrade of a verified migration hash: no policy (the password is not
        // being chosen), but argon2 and the Kerberos keys it could not have before.
        Written::Rehash(pw) => {
            let secrets = password_secrets(p.entry, &pw, p.kerberos)?;
            (secrets.phc, secrets.kerberos, true)
        }
    };
    let keep = p.rules.policy.history_length as usize;
    let history = std::iter::once(phc.clone())
        .chain(p.previous.iter().cloned())
        .take(keep)
        .map(String::into_bytes)
        .collect();
    // A rehash keeps the password, so its age (pwdLastSet) stays.
    let pwd_last_set = (p.entry.is_a("user") && !rehash)
        .then(|| crate::directory::policy::to_filetime(p.now).to_string());
    Ok(PasswordUpdate {
        phc,
        kerberos,
        history,
        pwd_last_set,
        from_cleartext,
    })
}

/// Prepares a new entry's secrets in place (LDAP add, CLI, LDIF import, provisioning): its
/// password (one `userPassword` value, or a `unicodePwd` in AD's quoted UTF-16LE form, which
/// is never stored) goes through `new_password`. A kept `{ARGON2}` value (an export being
/// imported) keeps the entry's own keys, history and pwdLastSet; a cleartext one gets keys,
/// starts the history and sets pwdLastSet unless the entry sets it (e.g. 0: must change).
/// `writer`: only `Trusted` writers may hand in an `{ARGON2}` hash. Blocking.
pub fn prepare_new_entry(
    entry: &mut Entry,
    kerberos: Option<KeyContext<'_>>,
    writer: Writer,
    rules: &password::PasswordRules,
    now: SystemTime,
) -> Result<(), DirError> {
    let mut written = Vec::new();
    for v in entry.values("userPassword") {
        written.push(pwvalue::classify(v, writer)?);
    }
    for v in entry.values("unicodePwd") {
        let pw = pwvalue::decode_unicode_pwd(v)?;
        written.push(pwvalue::classify(&pw, Writer::User)?);
    }
    entry.remove("unicodePwd");
    if written.len() > 1 {
        return Err(DirError::Modify(
            crate::model::modify::ModifyError::Constraint(
                "an entry has one password: give one userPassword or unicodePwd value".into(),
            ),
        ));
    }
    let Some(value) = written.pop() else {
        return Ok(());
    };
    ensure_guid(entry);
    let update = new_password(NewPassword {
        entry,
        value,
        rules,
        previous: &[],
        kerberos,
        now,
    })?;
    entry.set("userPassword", vec![update.phc.into_bytes()]);
    if let Some(t) = update.pwd_last_set {
        if !entry.has("pwdLastSet") {
            entry.set_str("pwdLastSet", &t);
        }
    }
    if !update.from_cleartext {
        return Ok(());
    }
    if let Some((blob, kvno)) = update.kerberos {
        entry.set(KEYS_ATTR, vec![blob]);
        entry.set_str(KVNO_ATTR, &kvno.to_string());
    }
    if !update.history.is_empty() {
        entry.set(HISTORY_ATTR, update.history);
    }
    Ok(())
}

/// accountExpires (MS-ADTS §2.2.16 / FILETIME: 100 ns intervals since 1601-01-01) as a time;
/// `None` for "never" (0 or i64::MAX) or an unreadable value.
pub fn account_expires(entry: &Entry) -> Option<SystemTime> {
    const FILETIME_UNIX_EPOCH: i64 = 116_444_736_000_000_000;
    let v: i64 = entry.first_str("accountExpires")?.trim().parse().ok()?;
    if v <= 0 || v == i64::MAX {
        return None;
    }
    let since_unix = v.checked_sub(FILETIME_UNIX_EPOCH)?;
    if since_unix <= 0 {
        return Some(UNIX_EPOCH);
    }
    let since_unix = u64::try_from(since_unix).ok()?;
    Some(UNIX_EPOCH + Duration::from_nanos(since_unix.saturating_mul(100)))
}

fn principal_parts(entry: &Entry) -> Option<(&str, &[u8])> {
    if !is_principal(entry) {
        return None;
    }
    let sam = entry.first_str("sAMAccountName")?;
    let guid = entry.values("objectGUID").first()?;
    Some((sam, guid.as_slice()))
}

fn seal_failed(e: SealError) -> DirError {
    tracing::error!(error = %e, "sealing Kerberos keys failed");
    DirError::Internal
}

fn put_u16(out: &mut Vec<u8>, n: usize) -> Result<(), SealError> {
    let n = u16::try_from(n).map_err(|_| SealError::Malformed)?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn put_counted(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), SealError> {
    put_u16(out, bytes.len())?;
    out.extend_from_slice(bytes);
    Ok(())
}

fn take_array<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], SealError> {
    let (head, rest) = bytes.split_at_checked(N).ok_or(SealError::Malformed)?;
    *bytes = rest;
    head.try_into().map_err(|_| SealError::Malformed)
}

fn take_u16(bytes: &mut &[u8]) -> Result<u16, SealError> {
    take_array::<2>(bytes).map(u16::from_be_bytes)
}

fn take_counted<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], SealError> {
    let n = usize::from(take_u16(bytes)?);
    let (head, rest) = bytes.split_at_checked(n).ok_or(SealError::Malformed)?;
    *bytes = rest;
    Ok(head)
}

#[cfg(test)]
mod tests {

    #[test]
    fn computers_use_ads_computer_salt() {
        assert_eq!(
            computer_salt("EXAMPLE.COM", "CLIENT1$"),
            "EXAMPLE.COMhostclient1.example.com"
        );
        let mut computer =
            Entry::new(Dn::parse("cn=CLIENT1,cn=Computers,dc=example,dc=com").unwrap());
        computer.set_str("objectClass", "computer");
        assert_eq!(
            entry_salt(&computer, "EXAMPLE.COM", "CLIENT1$"),
            "EXAMPLE.COMhostclient1.example.com"
        );
        let mut user = Entry::new(Dn::parse("cn=alice,dc=example,dc=com").unwrap());
        user.set_str("objectClass", "user");
        assert_eq!(
            entry_salt(&user, "EXAMPLE.COM", "alice"),
            "EXAMPLE.COMalice"
        );
    }

    use super::*;
    use crate::model::Dn;

    fn user(sam: &str) -> Entry {
        let mut e = Entry::new(Dn::parse(&format!("cn={sam},cn=Users,dc=example,dc=com")).unwrap());
        e.set_str("objectClass", "user");
        e.set_str("sAMAccountName", sam);
        e.set("objectGUID", vec![vec![7u8; 16]]);
        e
    }

    #[test]
    fn seal_and_open_round_trip_bound_to_the_guid() {
        let master = MasterKey::generate().unwrap();
        let keys = StoredKeys {
            salt: "EXAMPLE.COMalice".into(),
            keys: crate::model::principal::random_keys(3).unwrap(),
        };
        let blob = master.seal(b"guid-1", &keys).unwrap();
        assert_eq!(master.open(b"guid-1", &blob).unwrap(), keys);
        assert_eq!(master.open(b"guid-2", &blob), Err(SealError::Decrypt));
        let other = MasterKey::generate().unwrap();
        assert_eq!(other.open(b"guid-1", &blob), Err(SealError::Decrypt));
        let mut tampered = blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(master.open(b"guid-1", &tampered), Err(SealError::Decrypt));
        assert_eq!(
            master.open(b"guid-1", &blob[..5]),
            Err(SealError::Malformed)
        );
        // The key bytes do not appear in the blob.
        let k = &keys.keys[0].key;
        assert!(!blob.windows(k.len()).any(|w| w == k.as_slice()));
    }

    #[test]
    fn master_key_length_is_checked() {
        assert_eq!(
            MasterKey::from_bytes(&[0u8; 31]).unwrap_err(),
            SealError::BadMasterKey(31)
        );
        assert!(MasterKey::from_bytes(&[0u8; 32]).is_ok());
    }

    #[test]
    fn new_entry_gets_hash_and_keys_with_kvno_1() {
        let master = MasterKey::generate().unwrap();
        let ctx = KeyContext {
            realm: "EXAMPLE.COM",
            master: &master,
        };
        let mut e = user("alice");
        e.set_str("userPassword", "alice-Passw0rd");
        prepare_new_entry(
            &mut e,
            Some(ctx),
            Writer::Trusted,
            &Default::default(),
            SystemTime::now(),
        )
        .unwrap();
        assert!(e.first_str("userPassword").unwrap().starts_with("{ARGON2}"));
        assert_eq!(e.first_str(KVNO_ATTR), Some("1"));
        let stored = open_entry_keys(&e, &master).unwrap().unwrap();
        assert_eq!(stored.salt, "EXAMPLE.COMalice");
        let expected = derive_keys("alice-Passw0rd", "EXAMPLE.COMalice", 1).unwrap();
        assert_eq!(stored.keys, expected);
    }

    #[test]
    fn non_principals_get_only_a_hash() {
        let master = MasterKey::generate().unwrap();
        let ctx = KeyContext {
            realm: "EXAMPLE.COM",
            master: &master,
        };
        let mut e = Entry::new(Dn::parse("uid=x,dc=example,dc=com").unwrap());
        e.set_str("objectClass", "inetOrgPerson");
        e.set_str("userPassword", "pw-long-enough");
        prepare_new_entry(
            &mut e,
            Some(ctx),
            Writer::Trusted,
            &Default::default(),
            SystemTime::now(),
        )
        .unwrap();
        assert!(!e.has(KEYS_ATTR));
    }

    #[test]
    fn random_rotation_keeps_the_previous_generation() {
        let master = MasterKey::generate().unwrap();
        let ctx = KeyContext {
            realm: "EXAMPLE.COM",
            master: &master,
        };
        let mut e = user("krbtgt");
        for round in 1..=3u32 {
            let (blob, kvno, fresh) = random_secrets(&e, ctx, true).unwrap();
            assert_eq!(kvno, round);
            e.set(KEYS_ATTR, vec![blob]);
            e.set_str(KVNO_ATTR, &kvno.to_string());
            let stored = open_entry_keys(&e, &master).unwrap().unwrap();
            assert_eq!(stored.kvno(), round);
            assert_eq!(&stored.keys[..fresh.len()], &fresh[..]);
            let older: Vec<u32> = stored.keys[fresh.len()..].iter().map(|k| k.kvno).collect();
            if round == 1 {
                assert!(older.is_empty());
            } else {
                assert!(older.iter().all(|&k| k == round - 1) && !older.is_empty());
            }
        }
    }

    #[test]
    fn account_expiry_from_filetime() {
        let mut e = user("a");
        assert_eq!(account_expires(&e), None);
        e.set_str("accountExpires", "9223372036854775807");
        assert_eq!(account_expires(&e), None);
        e.set_str("accountExpires", "0");
        assert_eq!(account_expires(&e), None);
        // 2001-01-01T00:00:00Z
        e.set_str("accountExpires", "126227808000000000");
        assert_eq!(
            account_expires(&e),
            Some(UNIX_EPOCH + Duration::from_secs(978_307_200))
        );
    }
}
