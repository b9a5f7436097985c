//! The KDC's `PrincipalDb` over the directory: adapts `Directory`'s protocol-neutral
//! Kerberos calls (`directory::kerberos`) to the KDC's trait, so that neither `kdc` nor
//! `directory` imports the other.
//!
//! May import: `kdc::db`, `directory`, `model`. Invariant: every password change goes through
//! `Directory::kerberos_change_password`, the same path as LDAP (policy, hash, keys, one
//! transaction); errors keep their meaning (policy → soft error with the reason).
//!
//! Lookups are cached (the KDC hot path: an AS login looks up the client and krbtgt twice, a
//! TGS request krbtgt, the client and the service; each uncached lookup is an index search,
//! an entry read and the unsealing of the keys, on the blocking pool). A cached record is used
//! only while the directory's write generation is the one read before the record was read, so
//! any committed write (a password set by any path, an account disabled, deleted or renamed,
//! an SPN edited, a key rotated) makes every cached record stale at once: a changed password
//! works for `kinit` immediately. Records also expire after `CACHE_TTL`, which bounds how long
//! unsealed keys of an idle principal stay in memory, and the cache holds at most
//! `CACHE_CAPACITY` names (unknown names included, so a flood of them cannot grow it).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::directory::{DirError, Directory};
use crate::kdc::db::{DbError, PasswordChangeError, PrincipalDb, PrincipalRecord};
use crate::model::modify::ModifyError;
use crate::model::principal::{name_type, PrincipalName};

/// How long a cached principal may be served while nothing is written.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Most names cached at once; when full, stale entries are dropped, then all of them.
const CACHE_CAPACITY: usize = 65_536;

/// The directory as the KDC's principal database.
pub struct DirectoryPrincipals {
    dir: Arc<Directory>,
    cache: RwLock<HashMap<CacheKey, Cached>>,
}

/// What `Directory::kerberos_principal` resolves a name by: its components and realm
/// case-insensitively, and whether it is an enterprise name (resolved through the UPN).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    enterprise: bool,
    name: String,
    realm: String,
}

impl CacheKey {
    fn of(name: &PrincipalName) -> CacheKey {
        CacheKey {
            enterprise: name.name_type == name_type::ENTERPRISE,
            name: name.joined().to_lowercase(),
            realm: name.realm.to_ascii_lowercase(),
        }
    }
}

struct Cached {
    /// The directory's write generation read before the record was.
    generation: u64,
    at: Instant,
    record: Option<PrincipalRecord>,
}

impl DirectoryPrincipals {
    /// Serves principals from `dir` (which must have a master key).
    pub fn new(dir: Arc<Directory>) -> DirectoryPrincipals {
        DirectoryPrincipals {
            dir,
            cache: RwLock::new(HashMap::new()),
        }
    }

    async fn read(&self, name: &PrincipalName) -> Result<Option<PrincipalRecord>, DbError> {
        let found = self
            .dir
            .kerberos_principal(name)
            .await
            .map_err(|e| DbError(e.to_string()))?;
        Ok(found.map(|p| PrincipalRecord {
            canonical: p.canonical,
            salt: p.salt,
            kvno: p.kvno,
            keys: p.keys,
            disabled: p.disabled,
            expires: p.expires,
            is_service: p.is_service,
        }))
    }

    fn cached(&self, key: &CacheKey, generation: u64) -> Option<Option<PrincipalRecord>> {
        let cache = self.cache.read().ok()?;
        let hit = cache.get(key)?;
        (hit.generation == generation && hit.at.elapsed() < CACHE_TTL).then(|| hit.record.clone())
    }

    fn remember(&self, key: CacheKey, generation: u64, record: &Option<PrincipalRecord>) {
        let Ok(mut cache) = self.cache.write() else {
            return;
        };
        if cache.len() >= CACHE_CAPACITY && !cache.contains_key(&key) {
            cache.retain(|_, c| c.generation == generation && c.at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                generation,
                at: Instant::now(),
                record: record.clone(),
            },
        );
    }
}

#[async_trait::async_trait]
impl PrincipalDb for DirectoryPrincipals {
    async fn lookup(&self, name: &PrincipalName) -> Result<Option<PrincipalRecord>, DbError> {
        // Read before the record: a write committed meanwhile leaves the entry stale-marked.
        let Some(generation) = self.dir.principal_generation() else {
            return self.read(name).await;
        };
        let key = CacheKey::of(name);
        if let Some(hit) = self.cached(&key, generation) {
            return Ok(hit);
        }
        let record = self.read(name).await?;
        self.remember(key, generation, &record);
        Ok(record)
    }

    async fn change_password(
        &self,
        name: &PrincipalName,
        new_password: &str,
    ) -> Result<(), PasswordChangeError> {
        // The composition root reads the clock for the directory write's timestamps.
        let now = SystemTime::now();
        match self
            .dir
            .kerberos_change_password(name, new_password, now)
            .await
        {
            Ok(()) => Ok(()),
            Err(DirError::Modify(ModifyError::Constraint(reason))) => {
                Err(PasswordChangeError::Policy(reason))
            }
            Err(DirError::NoSuchObject { .. }) => Err(PasswordChangeError::NoSuchPrincipal),
            Err(DirError::InsufficientAccess) => Err(PasswordChangeError::AccessDenied),
            Err(e) => Err(PasswordChangeError::Internal(e.to_string())),
        }
    }
}

/// Reports the KDC's decisions to the audit stream and the metrics (issue 6: every Kerberos
/// ticket issued or refused is audited; Kerberos requests are counted by outcome).
pub struct KdcAudit {
    /// the audit stream
    pub audit: crate::audit::Audit,
    /// the metrics registry
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl crate::kdc::KdcObserver for KdcAudit {
    fn observe(&self, event: crate::kdc::KdcEvent) {
        use crate::audit::{Event, Kind, Outcome};
        let (kind, outcome) = match event.error_code {
            None => (Kind::TicketIssued, Outcome::new(0, "issued")),
            Some(code) => (
                Kind::TicketRefused,
                Outcome::new(
                    u32::try_from(code).unwrap_or(0),
                    format!("KRB_ERROR_{code}"),
                ),
            ),
        };
        // RFC 4120 §5.2.7.1: PREAUTH_REQUIRED (25) is the first step of every password login,
        // a negotiation rather than a decision: counted, not audited.
        const PREAUTH_REQUIRED: i32 = 25;
        if event.error_code == Some(PREAUTH_REQUIRED) {
            self.metrics
                .kerberos_request(event.request, "preauth_required");
            return;
        }
        self.metrics.kerberos_request(
            event.request,
            if event.error_code.is_none() {
                "issued"
            } else {
                "refused"
            },
        );
        let mut e = Event::new(kind, event.request, std::time::SystemTime::now())
            .protocol("kerberos")
            .identity(event.client.clone())
            .target(event.service)
            .outcome(outcome);
        if let Some(peer) = event.peer {
            e = e.client(peer);
        }
        if let Some(reason) = event.reason {
            e = e.reason(reason);
        }
        self.audit.record(e);
    }
}
