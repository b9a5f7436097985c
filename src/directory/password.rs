//! Password hashing (argon2id PHC strings) on a small fixed pool of threads.
//! May import: `directory::{error, policy}`, `model::modify` (for the policy error). Invariant: hashing never runs on an
//! async worker thread, and at most `permits` hashes run at once, on at most `permits`
//! threads that reuse their argon2 memory, so a bind flood can neither starve the runtime
//! nor grow memory past `permits` × argon2's working set. Checks against one account use at most half the pool (`verify_as`;
//! one at a time on a 2-core machine), so a flood of guesses against one account queues
//! behind itself instead of in front of every other account's binds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use rand::Rng;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

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
    pool: Arc<Pool>,
}

impl Hasher {
    /// At most `concurrency` hashes at once.
    pub fn new(concurrency: usize) -> Hasher {
        Hasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            per_account: (concurrency / 2).max(1),
            accounts: Arc::new(Mutex::new(HashMap::new())),
            pool: Arc::new(Pool::new(concurrency.max(1))),
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
        let password = Zeroizing::new(password);
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
        let password = Zeroizing::new(password);
        self.run(move || hash_blocking(&password)).await
    }

    /// Runs other CPU-heavy password work (hash plus Kerberos key derivation) on the hash
    /// threads, under the same concurrency bound as hashing.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, DirError> + Send + 'static,
    ) -> Result<T, DirError> {
        let _permit = self.permits.acquire().await.map_err(|_| DirError::Busy)?;
        self.pool.run(work).await?
    }

    /// Checks a password against a stored value. Unknown schemes never match. An empty
    /// `stored` is checked against `decoy_hash` (same cost, never matches).
    pub async fn verify(&self, stored: String, password: Vec<u8>) -> Result<bool, DirError> {
        let password = Zeroizing::new(password);
        let _permit = self.permits.acquire().await.map_err(|_| DirError::Busy)?;
        self.pool
            .run(move || {
                if stored.is_empty() {
                    let _ = verify_blocking(&decoy_hash(), &password);
                    return false;
                }
                verify_blocking(&stored, &password)
            })
            .await
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The threads password work runs on: as many as there are permits, started on first use
/// and kept until the hasher is dropped. argon2id needs 19 MiB of blocks per hash; allocated
/// per hash on tokio's growing blocking pool, glibc kept such blocks in the arena of every
/// thread that ever hashed (0.8–1.3 GiB under a bind load). On these threads
/// `verify_blocking` reuses one buffer per thread instead: at most `size` × 19 MiB.
struct Pool {
    size: usize,
    tx: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
    rx: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<Job>>>,
    started: std::sync::Once,
    running: std::sync::atomic::AtomicUsize,
}

impl Pool {
    fn new(size: usize) -> Pool {
        let (tx, rx) = std::sync::mpsc::channel();
        Pool {
            size,
            tx: std::sync::Mutex::new(tx),
            rx: Arc::new(std::sync::Mutex::new(rx)),
            started: std::sync::Once::new(),
            running: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn start(&self) {
        for i in 0..self.size {
            let rx = self.rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("dird-hash-{i}"))
                .spawn(move || {
                    HASH_THREAD.with(|h| h.set(true));
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the hasher is gone
                        }
                    }
                });
            match spawned {
                Ok(_) => {
                    self.running
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => tracing::error!(error = %e, "cannot start a password hashing thread"),
            }
        }
    }

    /// Runs `work` on a hash thread (on tokio's blocking pool if none could be started).
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, DirError> {
        self.started.call_once(|| self.start());
        if self.running.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            return tokio::task::spawn_blocking(work)
                .await
                .map_err(|_| DirError::Internal);
        }
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = done.send(out);
        });
        self.tx
            .lock()
            .map_err(|_| DirError::Internal)?
            .send(job)
            .map_err(|_| DirError::Internal)?;
        match result.await {
            Ok(Ok(v)) => Ok(v),
            _ => Err(DirError::Internal),
        }
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

/// Verifies synchronously. On the hasher's threads the argon2 memory is reused between calls
/// (`verify_reusing_memory`); elsewhere (CLI, import) it is allocated per call.
pub fn verify_blocking(stored: &str, password: &[u8]) -> bool {
    if !stored.starts_with(PREFIX) && crate::directory::legacy::is_legacy(stored.as_bytes()) {
        return crate::directory::legacy::verify(stored, password);
    }
    // A stored hash outside the documented bounds (written before they existed, or by hand)
    // is never computed: no bind may make the server allocate or work without limit.
    if crate::directory::pwvalue::check_argon2(stored).is_err() {
        return false;
    }
    if HASH_THREAD.with(std::cell::Cell::get) {
        return verify_reusing_memory(stored, password);
    }
    verify_allocating(stored, password)
}

fn verify_allocating(stored: &str, password: &[u8]) -> bool {
    let Some(phc) = stored.strip_prefix(PREFIX) else {
        return false;
    };
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(password, &h).is_ok(),
        Err(_) => false,
    }
}

/// Most argon2 blocks (1 KiB each) a hash thread keeps between verifications: four times
/// the default working set (m=19456 KiB).
const RETAINED_BLOCKS_MAX: usize = 4 * 19 * 1024;

thread_local! {
    /// Set on the hasher's threads (`Pool`).
    static HASH_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// argon2 working memory of this thread, kept between verifications.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `verify_allocating` in the thread's reusable argon2 memory: no 19 MiB allocation and
/// zeroing per check, and one working set per thread however allocator arenas behave.
fn verify_reusing_memory(stored: &str, password: &[u8]) -> bool {
    let Some(h) = stored
        .strip_prefix(PREFIX)
        .and_then(|phc| PasswordHash::new(phc).ok())
    else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&h.salt, &h.hash) else {
        return false;
    };
    let Ok(params) = argon2::Params::try_from(&h) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::new(h.algorithm.as_str()) else {
        return false;
    };
    let version = match h.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let blocks = params.block_count();
    if blocks > RETAINED_BLOCKS_MAX {
        // An unusually expensive stored hash: verify it in transient memory instead of
        // keeping that much per thread.
        return verify_allocating(stored, password);
    }
    let mut out = vec![0u8; expected.len()];
    let hashed = BLOCKS.with(|cell| {
        let Ok(mut memory) = cell.try_borrow_mut() else {
            return false;
        };
        if memory.len() < blocks {
            memory.resize(blocks, argon2::Block::default());
        }
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
            .is_ok()
    });
    // `Output`'s equality is constant-time.
    hashed && argon2::password_hash::phc::Output::new(&out).is_ok_and(|o| &o == expected)
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
    fn verification_in_reused_memory_agrees() {
        let h = hash_blocking(b"s3cret").unwrap();
        for _ in 0..2 {
            assert!(verify_reusing_memory(&h, b"s3cret"));
            assert!(!verify_reusing_memory(&h, b"s3cret "));
        }
        assert!(!verify_reusing_memory("{SSHA}abc", b"s3cret"));
        assert!(!verify_reusing_memory("{ARGON2}garbage", b"s3cret"));
        // Other parameters (smaller memory, other variant) still verify.
        let params = argon2::Params::new(4096, 3, 1, None).unwrap();
        let small = Argon2::new(argon2::Algorithm::Argon2i, argon2::Version::V0x13, params)
            .hash_password(b"pw")
            .unwrap();
        assert!(verify_reusing_memory(&format!("{PREFIX}{small}"), b"pw"));
        assert!(!verify_reusing_memory(&format!("{PREFIX}{small}"), b"px"));
    }

    #[tokio::test]
    async fn hasher_threads_verify() {
        let hasher = Hasher::new(2);
        let h = hash_blocking(b"s3cret").unwrap();
        let (a, b, c) = tokio::join!(
            hasher.verify(h.clone(), b"s3cret".to_vec()),
            hasher.verify(h.clone(), b"nope".to_vec()),
            hasher.verify_as("cn=x", h.clone(), b"s3cret".to_vec())
        );
        assert!(a.unwrap());
        assert!(!b.unwrap());
        assert!(c.unwrap());
        assert!(!hasher.verify(String::new(), b"x".to_vec()).await.unwrap());
        let on_pool = hasher
            .run(|| Ok(HASH_THREAD.with(std::cell::Cell::get)))
            .await
            .unwrap();
        assert!(on_pool);
        let hashed = hasher.hash(b"pw".to_vec()).await.unwrap();
        assert!(verify_blocking(&hashed, b"pw"));
    }

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
