//! The second factor (issue 11): who needs a one-time code (`Mfa::required_for`), how it is
//! typed after the password (`Mfa::split_code`), and whether a code is right
//! (`Mfa::check_code`, asked of RADIUS through `radius::Client`). Front-end neutral: LDAP binds
//! (through `directory`) and the KDC call the same service, with the account's
//! sAMAccountName as the RADIUS User-Name.
//! May import: `config`, `audit`, `metrics`, `model`, and its own `radius`. Must not import:
//! `ldap`, `kdc`, `directory`, `backend`, `store`.
//! Invariants: every decision is one audit event (user, server, outcome) and one count in
//! `dird_mfa_decisions_total`; an accepted code is refused again within the replay window
//! (the replay cache is bounded: when full of live codes new checks are refused as
//! unavailable rather than a live code forgotten); RADIUS waits are async and at most
//! `max_pending` at once (more are refused at once, never queued); no lock is held across an
//! `.await`. The caller maps `MfaError` to its protocol: LDAP 49 for `Rejected`/`Replayed`
//! and 52 for `Unavailable`, in `directory::error` / `ldap::result`.
//!
//! # For the KDC (and any other front-end)
//!
//! `Directory::mfa()` hands out the shared `Arc<Mfa>` (None without `[mfa]`), and
//! `Directory::mfa_required(&entry)` evaluates the group rule (nested membership, `everyone`,
//! `exempt`) for an account. After the password is proven, call
//! `mfa.check_code(sam_account_name, code).await` and map the error: `Rejected`/`Replayed` to
//! a pre-authentication failure, `Unavailable` to a retryable "service unavailable". The
//! audit event and the metrics are recorded here, so the caller records only its own event.

pub mod radius;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::audit::{Audit, Event, Kind, Outcome};
use crate::config::MfaConfig;
use crate::metrics::Metrics;
use crate::model::Dn;

/// Why a second factor was not accepted. Front-ends map these to their protocol's codes and
/// must not tell the client which factor failed (the audit stream says it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MfaError {
    /// the RADIUS server rejected the code (or no code was typed)
    #[error("the one-time code was rejected")]
    Rejected,
    /// the code was accepted before, within the replay window
    #[error("the one-time code was already used")]
    Replayed,
    /// the code could not be checked: RADIUS down, timed out, or too many checks in flight
    #[error("the second factor could not be checked")]
    Unavailable,
}

/// The MFA service, built once from `[mfa]` and shared by every front-end.
pub struct Mfa {
    client: radius::Client,
    /// normalised DNs of the groups whose members (nested) need MFA
    groups: HashSet<String>,
    everyone: bool,
    /// normalised DNs of exempt accounts and groups
    exempt: HashSet<String>,
    otp_length: usize,
    separator: Vec<u8>,
    replay_window: Duration,
    replay: Mutex<ReplayCache>,
    pending: Arc<Semaphore>,
    audit: Audit,
    metrics: Arc<Metrics>,
}

impl Mfa {
    /// Builds the service from `[mfa]`: reads each server's secret file (mode 0600). Errors
    /// name the file and the fix.
    pub fn from_config(
        cfg: &MfaConfig,
        audit: Audit,
        metrics: Arc<Metrics>,
    ) -> Result<Mfa, String> {
        let mut servers = Vec::with_capacity(cfg.servers.len());
        for s in &cfg.servers {
            let secret = radius::Secret::from_file(&s.secret_file)
                .map_err(|e| format!("mfa.servers secret_file: {e}"))?;
            servers.push(radius::Server {
                address: s.address,
                secret,
            });
        }
        let client = radius::Client::new(
            servers,
            radius::Timing {
                timeout: cfg.timeout,
                retries: cfg.retries,
            },
            cfg.require_message_authenticator,
            &cfg.nas_identifier,
        );
        Ok(Mfa {
            client,
            groups: cfg.groups.iter().map(|d| d.norm().to_string()).collect(),
            everyone: cfg.everyone,
            exempt: cfg.exempt.iter().map(|d| d.norm().to_string()).collect(),
            otp_length: cfg.otp_length,
            separator: cfg.separator.as_bytes().to_vec(),
            replay_window: cfg.replay_window,
            replay: Mutex::new(ReplayCache::new(REPLAY_CAPACITY)),
            pending: Arc::new(Semaphore::new(cfg.max_pending)),
            audit,
            metrics,
        })
    }

    /// True if `user` must give a second factor. `groups` are the normalised DNs of every
    /// group the user is in, nested; `groups_complete` is false when that closure was cut
    /// short (then the user is treated as a member: MFA fails closed, and no exemption is
    /// granted through a group).
    pub fn required_for(&self, user: &Dn, groups: &HashSet<String>, groups_complete: bool) -> bool {
        if self.exempt.contains(user.norm()) {
            return false;
        }
        if groups_complete && groups.iter().any(|g| self.exempt.contains(g)) {
            return false;
        }
        self.everyone
            || !groups_complete
            || self.groups.contains(user.norm())
            || groups.iter().any(|g| self.groups.contains(g))
    }

    /// Splits what an MFA user typed into (password, code): the code is the last
    /// `otp_length` characters, all digits, after the separator. `None` when there is no
    /// code (or nothing left for the password).
    pub fn split_code<'a>(&self, typed: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
        let cut = typed.len().checked_sub(self.otp_length)?;
        let (head, code) = typed.split_at(cut);
        if !code.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let password = head.strip_suffix(self.separator.as_slice())?;
        (!password.is_empty()).then_some((password, code))
    }

    /// Checks a one-time code with RADIUS (User-Name = `sam_account_name`, User-Password =
    /// `code`). A code accepted before within the replay window is refused without asking
    /// RADIUS; every decision is audited and counted.
    pub async fn check_code(&self, sam_account_name: &str, code: &str) -> Result<(), MfaError> {
        let key = ReplayKey {
            user: sam_account_name.to_ascii_lowercase(),
            code: Zeroizing::new(code.to_string()),
        };
        // Reserve the code before asking RADIUS, so that two binds racing with the same code
        // cannot both succeed; the reservation is dropped again if the code is not accepted.
        let reserved = match self.replay.lock() {
            Ok(mut cache) => cache.reserve(key.clone(), Instant::now(), self.replay_window),
            Err(_) => Reservation::Full,
        };
        match reserved {
            Reservation::Reserved => {}
            Reservation::Replayed => {
                self.decide(
                    sam_account_name,
                    "replayed",
                    "",
                    "code already used within the replay window",
                );
                return Err(MfaError::Replayed);
            }
            Reservation::Full => {
                self.decide(
                    sam_account_name,
                    "overloaded",
                    "",
                    "replay cache full of live codes",
                );
                return Err(MfaError::Unavailable);
            }
        }
        let result = self.ask_radius(sam_account_name, code).await;
        if result.is_err() {
            if let Ok(mut cache) = self.replay.lock() {
                cache.release(&key);
            }
        }
        result
    }

    /// Records that an MFA user gave no code (the password may have been right). The caller
    /// refuses the authentication like a wrong password.
    pub fn record_missing(&self, sam_account_name: &str) {
        self.decide(
            sam_account_name,
            "missing",
            "",
            "no one-time code after the password",
        );
    }

    /// The RADIUS servers, in order.
    pub fn servers(&self) -> Vec<std::net::SocketAddr> {
        self.client.servers()
    }

    async fn ask_radius(&self, user: &str, code: &str) -> Result<(), MfaError> {
        // Bounded waits: beyond `max_pending` exchanges in flight, refuse at once (fail
        // closed) instead of queueing authentications behind a dead server.
        let Ok(_permit) = self.pending.clone().try_acquire_owned() else {
            self.decide(
                user,
                "overloaded",
                "",
                "too many RADIUS exchanges in flight (mfa.max_pending)",
            );
            return Err(MfaError::Unavailable);
        };
        let _gauge = self.metrics.radius_pending();
        match self
            .client
            .authenticate(user.as_bytes(), code.as_bytes())
            .await
        {
            Ok(answer) => {
                for rtt in &answer.round_trips {
                    self.metrics.radius_round_trip(*rtt);
                }
                let server = answer.server.to_string();
                let said = answer.reply.messages.join(" / ");
                match answer.reply.verdict {
                    radius::Verdict::Accept => {
                        self.decide(user, "accepted", &server, &said);
                        Ok(())
                    }
                    // A challenge is answered inside the client; a final one cannot reach here.
                    radius::Verdict::Reject | radius::Verdict::Challenge { .. } => {
                        let why = if said.is_empty() {
                            "wrong code".to_string()
                        } else {
                            format!("wrong code: {said}")
                        };
                        self.decide(user, "rejected", &server, &why);
                        Err(MfaError::Rejected)
                    }
                }
            }
            Err(e) => {
                let server = e.server.map(|s| s.to_string()).unwrap_or_default();
                let outcome = if e.timed_out {
                    "timeout"
                } else {
                    "unavailable"
                };
                self.decide(user, outcome, &server, &e.detail);
                Err(MfaError::Unavailable)
            }
        }
    }

    /// One audit event and one metric per decision.
    fn decide(&self, user: &str, outcome: &str, server: &str, reason: &str) {
        self.metrics.mfa_decision(outcome, server);
        let code = if outcome == "accepted" { 0 } else { 1 };
        let mut e = Event::new(Kind::Mfa, "mfa", wall_clock())
            .protocol("radius")
            .identity(user)
            .outcome(Outcome::new(code, outcome))
            .detail("mechanism", "radius");
        if !server.is_empty() {
            e = e.target(server).detail("server", server);
        }
        if code != 0 {
            e = e.reason(reason);
        } else if !reason.is_empty() {
            e = e.detail("reply_message", reason);
        }
        self.audit.record(e);
    }
}

/// A code as the replay cache keeps it: the account (lower case) and the code, which is
/// wiped from memory when the entry is dropped (expired, released or evicted).
#[derive(Clone, PartialEq, Eq)]
struct ReplayKey {
    user: String,
    code: Zeroizing<String>,
}

impl std::hash::Hash for ReplayKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.user.hash(state);
        self.code.as_str().hash(state);
    }
}

/// Live accepted (or being checked) codes per user, each until its expiry.
struct ReplayCache {
    live: HashMap<ReplayKey, Instant>,
    capacity: usize,
}

enum Reservation {
    Reserved,
    Replayed,
    Full,
}

impl ReplayCache {
    fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            live: HashMap::new(),
            capacity,
        }
    }

    fn reserve(&mut self, key: ReplayKey, now: Instant, window: Duration) -> Reservation {
        if let Some(expiry) = self.live.get(&key) {
            if *expiry > now {
                return Reservation::Replayed;
            }
        }
        if self.live.len() >= self.capacity {
            self.live.retain(|_, expiry| *expiry > now);
            if self.live.len() >= self.capacity {
                return Reservation::Full;
            }
        }
        self.live.insert(key, now + window);
        Reservation::Reserved
    }

    fn release(&mut self, key: &ReplayKey) {
        self.live.remove(key);
    }
}

#[allow(clippy::disallowed_methods)]
fn wall_clock() -> SystemTime {
    // Only the audit event's timestamp; decisions use the monotonic clock.
    SystemTime::now()
}

/// Live codes remembered at most (about 100 bytes each).
const REPLAY_CAPACITY: usize = 100_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RadiusServerConfig;

    fn service(everyone: bool, separator: &str) -> Mfa {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cfg = MfaConfig {
            servers: vec![RadiusServerConfig {
                address: "127.0.0.1:9".parse().unwrap(),
                secret_file: path,
            }],
            require_message_authenticator: true,
            timeout: Duration::from_millis(100),
            retries: 0,
            groups: vec![Dn::parse("cn=MFA,dc=example,dc=com").unwrap()],
            everyone,
            exempt: vec![Dn::parse("cn=svc,dc=example,dc=com").unwrap()],
            otp_length: 6,
            separator: separator.into(),
            replay_window: Duration::from_secs(60),
            max_pending: 4,
            nas_identifier: "dird".into(),
        };
        Mfa::from_config(&cfg, Audit::disabled(), Arc::new(Metrics::new())).unwrap()
    }

    #[test]
    fn who_needs_mfa() {
        let m = service(false, "");
        let alice = Dn::parse("cn=alice,dc=example,dc=com").unwrap();
        let svc = Dn::parse("cn=svc,dc=example,dc=com").unwrap();
        let mfa = HashSet::from([Dn::parse("cn=MFA,dc=example,dc=com")
            .unwrap()
            .norm()
            .to_string()]);
        assert!(m.required_for(&alice, &mfa, true));
        assert!(!m.required_for(&alice, &HashSet::new(), true));
        assert!(
            m.required_for(&alice, &HashSet::new(), false),
            "a cut-short closure fails closed"
        );
        assert!(!m.required_for(&svc, &mfa, true));
        let all = service(true, "");
        assert!(all.required_for(&alice, &HashSet::new(), true));
        assert!(!all.required_for(&svc, &HashSet::new(), true));
    }

    #[test]
    fn code_is_split_off_the_end() {
        let m = service(false, "");
        assert_eq!(
            m.split_code(b"pw123456"),
            Some((&b"pw"[..], &b"123456"[..]))
        );
        assert_eq!(m.split_code(b"123456"), None);
        assert_eq!(m.split_code(b"pw12345x"), None);
        let s = service(false, ":");
        assert_eq!(
            s.split_code(b"pw:123456"),
            Some((&b"pw"[..], &b"123456"[..]))
        );
        assert_eq!(s.split_code(b"pw123456"), None);
    }

    #[test]
    fn remembered_codes_are_wiped_on_drop() {
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>(_: &T) {}
        let key = ReplayKey {
            user: "u".into(),
            code: Zeroizing::new("123456".into()),
        };
        wiped_on_drop(&key.code);
    }

    #[test]
    fn replay_cache_is_bounded_and_expires() {
        let mut c = ReplayCache::new(2);
        let t = Instant::now();
        let w = Duration::from_secs(10);
        let k = |s: &str| ReplayKey {
            user: "u".to_string(),
            code: Zeroizing::new(s.to_string()),
        };
        assert!(matches!(c.reserve(k("1"), t, w), Reservation::Reserved));
        assert!(matches!(c.reserve(k("1"), t, w), Reservation::Replayed));
        assert!(matches!(c.reserve(k("2"), t, w), Reservation::Reserved));
        assert!(matches!(c.reserve(k("3"), t, w), Reservation::Full));
        let later = t + Duration::from_secs(11);
        assert!(matches!(c.reserve(k("3"), later, w), Reservation::Reserved));
        assert!(matches!(c.reserve(k("1"), later, w), Reservation::Reserved));
        c.release(&k("1"));
        assert!(matches!(c.reserve(k("1"), later, w), Reservation::Reserved));
    }

    #[tokio::test]
    async fn unreachable_radius_is_unavailable_within_the_timeout() {
        let m = service(false, "");
        let t = Instant::now();
        assert_eq!(
            m.check_code("alice", "123456").await,
            Err(MfaError::Unavailable)
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        // the failed check did not burn the code
        assert_eq!(
            m.check_code("alice", "123456").await,
            Err(MfaError::Unavailable)
        );
    }

    #[tokio::test]
    async fn waits_are_bounded_in_number() {
        // A server that never answers, and room for one exchange in flight.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut m = service(false, "");
        m.client = radius::Client::new(
            vec![radius::Server {
                address: silent.local_addr().unwrap(),
                secret: radius::Secret::new(b"x"),
            }],
            radius::Timing {
                timeout: Duration::from_millis(800),
                retries: 0,
            },
            true,
            "dird",
        );
        m.pending = Arc::new(Semaphore::new(1));
        let m = Arc::new(m);
        let first = tokio::spawn({
            let m = m.clone();
            async move { m.check_code("alice", "111111").await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        assert_eq!(
            m.check_code("bob", "222222").await,
            Err(MfaError::Unavailable)
        );
        assert!(
            t.elapsed() < Duration::from_millis(300),
            "the second wait was queued"
        );
        let text = m.metrics.encode();
        assert!(text.contains("outcome=\"overloaded\""), "{text}");
        assert!(text.contains("dird_radius_pending 1"), "{text}");
        assert_eq!(first.await.unwrap(), Err(MfaError::Unavailable));
        assert!(m.metrics.encode().contains("dird_radius_pending 0"));
    }
}
