//! Password hashing (argon2id PHC strings) on a bounded blocking pool.
//! May import: `directory::{error, policy}`, `model::modify` (for the policy error). Invariant: hashing never runs on an
//! async worker thread, and at most `permits` hashes run at once, so a bind flood cannot
//! starve the runtime. Checks against one account use at most half the pool (`verify_as`;
//! one at a time on a 2-core machine), so a flood of guesses against one account queues
//! behind itself instead of in front of every other account's binds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use rand::Rng;
use tokio::sync::Semaphore;

use crate::directory::error::DirError;
use crate::directory::policy::{Account, PasswordPolicy};

/// Scheme prefix of stored hashes (RFC 3112 style `{SCHEME}`).
pub const PREFIX: &str = "{ARGON2}";

/// A bounded hasher.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// checks one account may have running or queued on the pool at once
    per_account: usize,
    /// One semaphore per account with a check in progress or queued; an entry
    /// is removed by the last check that used it, so the map holds only live accounts.
    accounts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl Hasher {
    /// At most `concurrency` hashes at once.
    pub fn new(concurrency: usize) -> Hasher {
        Hasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            per_account: (concurrency / 2).max(1),
            accounts: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Like `verify`, but at most half the pool's permits' worth of checks per `account` (a
    /// normalised DN) run or wait for the shared pool at a time: the pool's FIFO queue then
    /// holds a few waiters per account, and a correct bind to another account waits for a
    /// few hashes, not for every guess of a flood.
    pub async fn verify_as(
        &self,
        account: &str,
        stored: String,
        password: Vec<u8>,
    ) -> Result<bool, DirError> {
        self.run_as(account, move || {
            if stored.is_empty() {
                let _ = verify_blocking(&decoy_hash(), &password);
                return Ok(false);
            }
            Ok(verify_blocking(&stored, &password))
        })
        .await
    }

    /// `run` under the per-account gate of `verify_as` (bind checks, which a flood against
    /// one account must not let starve the others).
    pub async fn run_as<T: Send + 'static>(
        &self,
        account: &str,
        work: impl FnOnce() -> Result<T, DirError> + Send + 'static,
    ) -> Result<T, DirError> {
        let gate = {
            // The lock is never held across an await; a poisoned map is still consistent
            // (every operation on it is a single insert/get/remove).
            let mut map = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(account.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_account)))
                .clone()
        };
        let result = match gate.acquire().await {
            Ok(_turn) => self.run(work).await,
            Err(_) => Err(DirError::Busy),
        };
        let mut map = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        // Two references: ours and the map's. Nobody else is waiting: forget the account.
        if Arc::strong_count(&gate) <= 2 {
            map.remove(account);
        }
        result
    }

    /// Hashes a password into `{ARGON2}$argon2id$…`.
    pub async fn hash(&self, password: Vec<u8>) -> Result<String, DirError> {
        let _permit = self.permits.acquire().await.map_err(|_| DirError::Busy)?;
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .map_err(|_| DirError::Internal)?
    }

    /// Runs other CPU-heavy password work (hash plus Kerberos key derivation) on the blocking
    /// pool, under the same concurrency bound as hashing.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, DirError> + Send + 'static,
    ) -> Result<T, DirError> {
        let _permit = self.permits.acquire().await.map_err(|_| DirError::Busy)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| DirError::Internal)?
    }

    /// Checks a password against a stored value. Unknown schemes never match. An empty
    /// `stored` is checked against `decoy_hash` (same cost, never matches).
    pub async fn verify(&self, stored: String, password: Vec<u8>) -> Result<bool, DirError> {
        let _permit = self.permits.acquire().await.map_err(|_| DirError::Busy)?;
        tokio::task::spawn_blocking(move || {
            if stored.is_empty() {
                let _ = verify_blocking(&decoy_hash(), &password);
                return false;
            }
            verify_blocking(&stored, &password)
        })
        .await
        .map_err(|_| DirError::Internal)
    }
}

/// Longest password accepted, in bytes (AD allows 256 characters); every byte costs argon2 and
/// four PBKDF2 runs, so an unbounded length would be a cheap denial of service.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The password policy, applied to every new plaintext password on every path (LDAP add and
/// modify, Password Modify, kpasswd, CLI, LDIF import). The reason is shown to the user
/// (kpasswd soft error, LDAP constraintViolation). The fixed rules (not empty, at most
/// `MAX_PASSWORD_BYTES`) come first, then the effective policy's quality rules for `account`
/// (`directory::policy`), then its history: `rules.history` holds the stored hashes the new
/// password must not match (empty unless the change is a user's own). CPU-heavy when there is
/// a history (one argon2 verification per entry): call it on the blocking pool.
pub fn check_policy(
    password: &[u8],
    rules: &PasswordRules,
    account: &Account<'_>,
) -> Result<(), DirError> {
    let reason = if password.is_empty() {
        "the password must not be empty"
    } else if password.len() > MAX_PASSWORD_BYTES {
        "the password is longer than 1024 bytes"
    } else {
        rules.policy.check_quality(password, account)?;
        if rules.history.iter().any(|h| verify_blocking(h, password)) {
            return Err(crate::directory::policy::violation(format!(
                "password policy: history: the password matches one of the last {} passwords",
                rules.policy.history_length
            )));
        }
        return Ok(());
    };
    Err(DirError::Modify(
        crate::model::modify::ModifyError::Constraint(reason.into()),
    ))
}

/// A hash of a random secret, with the default parameters, that no password matches. Binds
/// to names that do not exist are verified against it, so they cost the same argon2 time as
/// real ones and timing does not reveal which names exist.
pub fn decoy_hash() -> String {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY
        .get_or_init(|| {
            let secret: [u8; 32] = rand::random();
            hash_blocking(&secret).unwrap_or_default()
        })
        .clone()
}

/// The policy a new password is checked against.
#[derive(Clone, Debug, Default)]
pub struct PasswordRules {
    /// the effective (domain or fine-grained) policy
    pub policy: PasswordPolicy,
    /// stored hashes the password must not match (password history)
    pub history: Vec<String>,
}

/// Hashes synchronously (CLI and import use this from their own threads).
pub fn hash_blocking(password: &[u8]) -> Result<String, DirError> {
    let phc = Argon2::default().hash_password(password).map_err(|e| {
        tracing::error!(error = %e, "argon2 hashing failed");
        DirError::Internal
    })?;
    Ok(format!("{PREFIX}{phc}"))
}

/// Verifies synchronously.
pub fn verify_blocking(stored: &str, password: &[u8]) -> bool {
    let Some(phc) = stored.strip_prefix(PREFIX) else {
        return false;
    };
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(password, &h).is_ok(),
        Err(_) => false,
    }
}

/// A random password of 20 characters from an unambiguous alphabet, with at least one
/// character of each class so that complexity policies accept it.
pub fn generate() -> String {
    const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"-_.+!";
    let mut rng = rand::thread_rng();
    let all: Vec<u8> = [LOWER, UPPER, DIGIT, SYMBOL].concat();
    let mut out: Vec<u8> = (0..16).map(|_| all[rng.gen_range(0..all.len())]).collect();
    for class in [LOWER, UPPER, DIGIT, SYMBOL] {
        out.push(class[rng.gen_range(0..class.len())]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_blocking(b"s3cret").unwrap();
        assert!(h.starts_with("{ARGON2}$argon2id$"));
        assert!(verify_blocking(&h, b"s3cret"));
        assert!(!verify_blocking(&h, b"wrong"));
        assert!(!verify_blocking("{SSHA}abc", b"s3cret"));
        assert!(!verify_blocking("plain", b"plain"));
    }

    #[tokio::test]
    async fn per_account_gates_are_forgotten() {
        let h = Hasher::new(1);
        let stored = hash_blocking(b"pw").unwrap();
        let (a, b) = tokio::join!(
            h.verify_as("cn=a", stored.clone(), b"pw".to_vec()),
            h.verify_as("cn=a", stored.clone(), b"no".to_vec())
        );
        assert!(a.unwrap());
        assert!(!b.unwrap());
        assert!(h.accounts.lock().unwrap().is_empty());
    }

    #[test]
    fn generated_passwords_have_every_class() {
        let p = generate();
        assert_eq!(p.len(), 20);
        assert!(p.chars().any(|c| c.is_ascii_lowercase()));
        assert!(p.chars().any(|c| c.is_ascii_uppercase()));
        assert!(p.chars().any(|c| c.is_ascii_digit()));
    }
}
