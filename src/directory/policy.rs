//! Account policy, AD-style: the domain password policy (attributes of the domain object),
//! fine-grained password settings objects (msDS-PasswordSettings), password quality rules
//! and the account state (userAccountControl, pwdLastSet, accountExpires, lockoutTime) that
//! decides whether a correct password may log on.
//!
//! May import: `model`, `directory::error`. Pure: no I/O and no clock (`now` is passed in).
//!
//! AD representations (MS-ADTS §3.1.1.5.3, MS-SAMR §2.2.x): ages and durations are 100 ns
//! intervals stored as negative numbers (`-864000000000` is one day); positive values are
//! accepted too. For `maxPwdAge`, 0 and i64::MIN (0x8000000000000000) mean "never expires";
//! for `lockoutDuration`, 0 and i64::MIN mean "until an administrator unlocks". Times
//! (pwdLastSet, lockoutTime, accountExpires) are FILETIMEs: 100 ns intervals since 1601-01-01.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::directory::error::DirError;
use crate::model::modify::ModifyError;
use crate::model::{Dn, Entry, Rdn};

/// userAccountControl DONT_EXPIRE_PASSWORD (MS-ADTS §2.2.16).
pub const UAC_DONT_EXPIRE_PASSWORD: i64 = 0x10000;
/// userAccountControl PASSWORD_EXPIRED (MS-ADTS §2.2.16; constructed in AD, honoured here).
pub const UAC_PASSWORD_EXPIRED: i64 = 0x80_0000;
/// pwdProperties DOMAIN_PASSWORD_COMPLEX (MS-SAMR §2.2.3.10).
pub const PWD_COMPLEX: i64 = 0x1;

/// The RDN values of the containers holding password settings objects, under the base.
pub const SYSTEM_CN: &str = "System";
/// `cn=Password Settings Container,cn=System,<base>`.
pub const PSO_CONTAINER_CN: &str = "Password Settings Container";

/// FILETIME of the Unix epoch (100 ns intervals between 1601-01-01 and 1970-01-01).
const FILETIME_UNIX_EPOCH: i64 = 116_444_736_000_000_000;

/// The domain defaults written at provisioning (and added at start to older data). They
/// follow AD's defaults where those cannot break existing deployments: a 7-character
/// minimum, a 30-minute lockout and observation window; complexity, history, expiry and
/// lockout are off until the operator turns them on (a directory migrated from LDIF keeps
/// working, and NIST SP 800-63B §5.1.1.2 advises against composition rules and periodic
/// expiry). See the README's "Account policy" section.
pub const DOMAIN_DEFAULTS: &[(&str, &str)] = &[
    ("minPwdLength", "7"),
    ("pwdProperties", "0"),
    ("pwdHistoryLength", "0"),
    ("maxPwdAge", "-9223372036854775808"),
    ("minPwdAge", "0"),
    ("lockoutThreshold", "0"),
    ("lockoutDuration", "-18000000000"),
    ("lockOutObservationWindow", "-18000000000"),
];

/// One effective password and lockout policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// the password settings object it comes from (`None`: the domain policy)
    pub source: Option<Dn>,
    /// minimum length in characters
    pub min_length: u32,
    /// AD complexity rules (3 of 4 classes, no account or display name parts)
    pub complexity: bool,
    /// remembered passwords (the current one included)
    pub history_length: u32,
    /// passwords expire this long after they are set (`None`: never)
    pub max_age: Option<Duration>,
    /// a user may change their own password only this long after the last change
    pub min_age: Duration,
    /// failed logons within `observation_window` that lock the account (0: never)
    pub lockout_threshold: u32,
    /// how long a lockout lasts (`None`: until an administrator unlocks)
    pub lockout_duration: Option<Duration>,
    /// failures further apart than this start counting again
    pub observation_window: Duration,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        let mut e = Entry::new(Dn::root());
        for (a, v) in DOMAIN_DEFAULTS {
            e.set_str(a, v);
        }
        PasswordPolicy::from_domain(&e)
    }
}

impl PasswordPolicy {
    /// The domain policy from the attributes of the domain object (missing ones take the
    /// defaults of `DOMAIN_DEFAULTS`' meaning: no rule).
    pub fn from_domain(e: &Entry) -> PasswordPolicy {
        PasswordPolicy {
            source: None,
            min_length: int(e, "minPwdLength").unwrap_or(0).clamp(0, 256) as u32,
            complexity: int(e, "pwdProperties").unwrap_or(0) & PWD_COMPLEX != 0,
            history_length: int(e, "pwdHistoryLength").unwrap_or(0).clamp(0, 1024) as u32,
            max_age: int(e, "maxPwdAge").and_then(max_age),
            min_age: int(e, "minPwdAge").and_then(interval).unwrap_or_default(),
            lockout_threshold: int(e, "lockoutThreshold").unwrap_or(0).clamp(0, 1 << 20) as u32,
            lockout_duration: int(e, "lockoutDuration")
                .map(lockout_duration)
                .unwrap_or(Some(Duration::from_secs(1800))),
            observation_window: int(e, "lockOutObservationWindow")
                .and_then(interval)
                .unwrap_or(Duration::from_secs(1800)),
        }
    }

    /// A password settings object over the domain policy: its precedence and policy. Fields
    /// the object leaves out keep the domain's value. `None` if it has no precedence.
    pub fn from_pso(e: &Entry, domain: &PasswordPolicy) -> Option<(i64, PasswordPolicy)> {
        let precedence = int(e, "msDS-PasswordSettingsPrecedence")?;
        let mut p = domain.clone();
        p.source = Some(e.dn.clone());
        if let Some(v) = int(e, "msDS-MinimumPasswordLength") {
            p.min_length = v.clamp(0, 256) as u32;
        }
        if let Some(v) = e.first_str("msDS-PasswordComplexityEnabled") {
            p.complexity = v.trim().eq_ignore_ascii_case("TRUE");
        }
        if let Some(v) = int(e, "msDS-PasswordHistoryLength") {
            p.history_length = v.clamp(0, 1024) as u32;
        }
        if let Some(v) = int(e, "msDS-MaximumPasswordAge") {
            p.max_age = max_age(v);
        }
        if let Some(v) = int(e, "msDS-MinimumPasswordAge") {
            p.min_age = interval(v).unwrap_or_default();
        }
        if let Some(v) = int(e, "msDS-LockoutThreshold") {
            p.lockout_threshold = v.clamp(0, 1 << 20) as u32;
        }
        if let Some(v) = int(e, "msDS-LockoutDuration") {
            p.lockout_duration = lockout_duration(v);
        }
        if let Some(v) = int(e, "msDS-LockoutObservationWindow") {
            p.observation_window = interval(v).unwrap_or_default();
        }
        Some((precedence, p))
    }

    /// The quality rules (length, complexity) for a new password of `account`. The reason
    /// names the rule that failed.
    pub fn check_quality(&self, password: &[u8], account: &Account<'_>) -> Result<(), DirError> {
        let text = String::from_utf8_lossy(password);
        let chars = text.chars().count();
        if chars < self.min_length as usize {
            return Err(violation(format!(
                "password policy: the password must be at least {} characters long",
                self.min_length
            )));
        }
        if !self.complexity {
            return Ok(());
        }
        // MS-SAMR §3.1.1.7.2 / AD "Password must meet complexity requirements".
        let classes = [
            text.chars().any(char::is_uppercase),
            text.chars().any(char::is_lowercase),
            text.chars().any(|c| c.is_ascii_digit()),
            text.chars().any(|c| !c.is_alphanumeric()),
        ];
        if classes.iter().filter(|&&c| c).count() < 3 {
            return Err(violation(
                "password policy: complexity: the password must contain characters from three of: \
                 upper case, lower case, digits, symbols"
                    .into(),
            ));
        }
        let lower = text.to_lowercase();
        if let Some(sam) = account.sam {
            // AD skips the check for account names shorter than three characters.
            if sam.chars().count() >= 3 && lower.contains(&sam.to_lowercase()) {
                return Err(violation(
                    "password policy: complexity: the password must not contain the account name"
                        .into(),
                ));
            }
        }
        if let Some(display) = account.display_name {
            // AD splits the display name at , . - _ # space and tab; parts shorter than three
            // characters are ignored.
            let hit = display
                .split([',', '.', '-', '_', '#', ' ', '\t'])
                .filter(|t| t.chars().count() >= 3)
                .any(|t| lower.contains(&t.to_lowercase()));
            if hit {
                return Err(violation(
                    "password policy: complexity: the password must not contain a part of the \
                     user's display name"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

/// What the quality rules need to know about the account.
#[derive(Clone, Copy, Debug, Default)]
pub struct Account<'a> {
    /// sAMAccountName
    pub sam: Option<&'a str>,
    /// displayName
    pub display_name: Option<&'a str>,
}

impl<'a> Account<'a> {
    /// The account fields of an entry.
    pub fn of(e: &'a Entry) -> Account<'a> {
        Account {
            sam: e.first_str("sAMAccountName"),
            display_name: e.first_str("displayName"),
        }
    }
}

/// One password settings object.
#[derive(Clone, Debug)]
pub struct Pso {
    /// msDS-PasswordSettingsPrecedence (lowest wins)
    pub precedence: i64,
    /// normalised DNs of msDS-PSOAppliesTo
    pub applies_to: HashSet<String>,
    /// the resulting policy
    pub policy: PasswordPolicy,
}

/// The domain policy and every password settings object.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    /// the domain policy
    pub domain: PasswordPolicy,
    /// the password settings objects, lowest precedence first (ties: DN order)
    pub psos: Vec<Pso>,
}

impl Policies {
    /// Builds the set from the domain object and the password settings objects.
    pub fn new(domain: Option<&Entry>, psos: &[Entry]) -> Policies {
        let domain = domain.map(PasswordPolicy::from_domain).unwrap_or_default();
        let mut list: Vec<Pso> = psos
            .iter()
            .filter(|e| e.is_a("msDS-PasswordSettings"))
            .filter_map(|e| {
                let (precedence, policy) = PasswordPolicy::from_pso(e, &domain)?;
                let applies_to = e
                    .values("msDS-PSOAppliesTo")
                    .iter()
                    .filter_map(|v| std::str::from_utf8(v).ok())
                    .filter_map(|s| Dn::parse(s).ok())
                    .map(|d| d.norm().to_string())
                    .collect();
                Some(Pso {
                    precedence,
                    applies_to,
                    policy,
                })
            })
            .collect();
        list.sort_by(|a, b| {
            a.precedence.cmp(&b.precedence).then_with(|| {
                let dn = |p: &Pso| p.policy.source.as_ref().map(|d| d.norm().to_string());
                dn(a).cmp(&dn(b))
            })
        });
        Policies { domain, psos: list }
    }

    /// The resultant policy of a user (AD semantics, MS-ADTS §3.1.1.5.3.2): among the
    /// objects linked to the user directly, the lowest precedence wins; only without those,
    /// the lowest among the objects linked to a group the user belongs to (nested groups
    /// included); otherwise the domain policy.
    pub fn resultant(&self, user: &Dn, groups: &HashSet<String>) -> &PasswordPolicy {
        let direct = self
            .psos
            .iter()
            .find(|p| p.applies_to.contains(user.norm()));
        let by_group = || {
            self.psos
                .iter()
                .find(|p| p.applies_to.iter().any(|g| groups.contains(g)))
        };
        direct.or_else(by_group).map_or(&self.domain, |p| &p.policy)
    }
}

/// The container of password settings objects.
pub fn pso_container(base: &Dn) -> Dn {
    base.child(Rdn::new("cn", SYSTEM_CN))
        .child(Rdn::new("cn", PSO_CONTAINER_CN))
}

/// Why a correct password may not log on now, with AD's bind diagnostic data code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 533: ACCOUNTDISABLE
    Disabled,
    /// 701: accountExpires passed
    AccountExpired,
    /// 773: pwdLastSet = 0, the password must be changed
    MustChange,
    /// 532: pwdLastSet + maxPwdAge passed
    PasswordExpired,
    /// 775: locked out
    Locked,
}

impl Refusal {
    /// The AD data code of the refusal (in the bind's diagnostic message).
    pub fn data_code(self) -> &'static str {
        match self {
            Refusal::Disabled => "533",
            Refusal::AccountExpired => "701",
            Refusal::MustChange => "773",
            Refusal::PasswordExpired => "532",
            Refusal::Locked => "775",
        }
    }
}

/// When the account's lockout ends: `Some(None)` locked until unlocked, `Some(Some(t))`
/// locked until `t`, `None` not locked.
pub fn locked_until(
    e: &Entry,
    policy: &PasswordPolicy,
    now: SystemTime,
) -> Option<Option<SystemTime>> {
    let at = filetime_attr(e, "lockoutTime")?;
    match policy.lockout_duration {
        None => Some(None),
        Some(d) => {
            let until = at + d;
            (until > now).then_some(Some(until))
        }
    }
}

/// When the password expires (`None`: never, or not set since dird tracks pwdLastSet).
pub fn password_expires(e: &Entry, policy: &PasswordPolicy) -> Option<SystemTime> {
    if uac(e) & UAC_DONT_EXPIRE_PASSWORD != 0 {
        return None;
    }
    let max = policy.max_age?;
    let set = filetime_attr(e, "pwdLastSet")?;
    Some(set + max)
}

/// pwdLastSet is 0 (or PASSWORD_EXPIRED is set): the password must be changed before use.
pub fn must_change(e: &Entry) -> bool {
    let zero = e
        .first_str("pwdLastSet")
        .and_then(|v| v.trim().parse::<i64>().ok())
        == Some(0);
    zero || uac(e) & UAC_PASSWORD_EXPIRED != 0
}

/// The state checks of a logon with a correct password, in AD's order (disabled, account
/// expired, must change, password expired). Lockout is checked before the password.
pub fn logon_refusal(e: &Entry, policy: &PasswordPolicy, now: SystemTime) -> Option<Refusal> {
    if uac(e) & crate::directory::UAC_ACCOUNTDISABLE != 0 {
        return Some(Refusal::Disabled);
    }
    if crate::directory::secrets::account_expires(e).is_some_and(|t| t <= now) {
        return Some(Refusal::AccountExpired);
    }
    if must_change(e) {
        return Some(Refusal::MustChange);
    }
    if password_expires(e, policy).is_some_and(|t| t <= now) {
        return Some(Refusal::PasswordExpired);
    }
    None
}

/// A time as a FILETIME (100 ns intervals since 1601-01-01).
pub fn to_filetime(t: SystemTime) -> i64 {
    let since = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos() / 100).unwrap_or(i64::MAX - FILETIME_UNIX_EPOCH),
        Err(_) => 0,
    };
    FILETIME_UNIX_EPOCH.saturating_add(since)
}

/// A FILETIME as a time; `None` for values <= 0 (AD: "never" / "not set").
pub fn from_filetime(v: i64) -> Option<SystemTime> {
    if v <= 0 {
        return None;
    }
    let since = v.checked_sub(FILETIME_UNIX_EPOCH)?;
    if since <= 0 {
        return Some(UNIX_EPOCH);
    }
    let nanos = u64::try_from(since).ok()?.saturating_mul(100);
    Some(UNIX_EPOCH + Duration::from_nanos(nanos))
}

fn filetime_attr(e: &Entry, attr: &str) -> Option<SystemTime> {
    let v: i64 = e.first_str(attr)?.trim().parse().ok()?;
    if v == i64::MAX {
        return None;
    }
    from_filetime(v)
}

/// An AD interval (negative 100 ns units; positive accepted) as a duration.
pub fn interval(v: i64) -> Option<Duration> {
    if v == i64::MIN {
        return None;
    }
    let units = v.unsigned_abs();
    Some(Duration::from_nanos(units.saturating_mul(100)))
}

fn max_age(v: i64) -> Option<Duration> {
    if v == 0 || v == i64::MIN {
        None
    } else {
        interval(v)
    }
}

fn lockout_duration(v: i64) -> Option<Duration> {
    if v == 0 || v == i64::MIN {
        None
    } else {
        interval(v)
    }
}

fn int(e: &Entry, attr: &str) -> Option<i64> {
    e.first_str(attr)?.trim().parse().ok()
}

fn uac(e: &Entry) -> i64 {
    int(e, "userAccountControl").unwrap_or(0)
}

/// A constraintViolation carrying the rule that failed (shown to LDAP clients and, through
/// kpasswd's soft error, to Kerberos users).
pub fn violation(reason: String) -> DirError {
    DirError::Modify(ModifyError::Constraint(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    fn complex() -> PasswordPolicy {
        PasswordPolicy {
            min_length: 8,
            complexity: true,
            ..PasswordPolicy::default()
        }
    }

    #[test]
    fn defaults_parse_from_the_ad_forms() {
        let p = PasswordPolicy::default();
        assert_eq!(p.min_length, 7);
        assert!(!p.complexity);
        assert_eq!(p.max_age, None);
        assert_eq!(p.lockout_duration, Some(Duration::from_secs(1800)));
        assert_eq!(p.observation_window, Duration::from_secs(1800));
        let mut e = Entry::new(dn("dc=example,dc=com"));
        e.set_str("maxPwdAge", "-36288000000000"); // 42 days
        e.set_str("lockoutDuration", "-9223372036854775808");
        let p = PasswordPolicy::from_domain(&e);
        assert_eq!(p.max_age, Some(Duration::from_secs(42 * 86400)));
        assert_eq!(p.lockout_duration, None);
    }

    #[test]
    fn quality_rules_name_the_rule() {
        let p = complex();
        let acct = Account {
            sam: Some("alice"),
            display_name: Some("Alice van der Berg"),
        };
        let reason = |pw: &str| match p.check_quality(pw.as_bytes(), &acct) {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        assert!(reason("Ab1!").contains("at least 8"));
        assert!(reason("alllowercase1").contains("three of"));
        assert!(reason("xALICEx-99").contains("account name"));
        assert!(reason("Berg-2024-xx").contains("display name"));
        assert_eq!(reason("Tr0ub4dor&3"), "ok");
        // Short display-name parts (van, der: 3 chars count; "de" would not).
        assert!(reason("Xvan-2024-yy").contains("display name"));
    }

    #[test]
    fn resultant_prefers_direct_links_then_lowest_precedence() {
        let base = dn("dc=example,dc=com");
        let c = pso_container(&base);
        let pso = |name: &str, prec: &str, applies: &[&str], len: &str| {
            let mut e = Entry::new(c.child(Rdn::new("cn", name)));
            e.set(
                "objectClass",
                vec![b"top".to_vec(), b"msDS-PasswordSettings".to_vec()],
            );
            e.set_str("msDS-PasswordSettingsPrecedence", prec);
            e.set_str("msDS-MinimumPasswordLength", len);
            e.set(
                "msDS-PSOAppliesTo",
                applies.iter().map(|a| a.as_bytes().to_vec()).collect(),
            );
            e
        };
        let alice = dn("cn=alice,cn=Users,dc=example,dc=com");
        let staff = "cn=staff,cn=Users,dc=example,dc=com";
        let admins = "cn=admins,cn=Users,dc=example,dc=com";
        let set = Policies::new(
            None,
            &[
                pso("group-low", "5", &[staff], "10"),
                pso("group-high", "1", &[admins], "20"),
                pso("direct", "50", &[alice.to_string().as_str()], "30"),
            ],
        );
        let groups: HashSet<String> = [dn(staff).norm().to_string(), dn(admins).norm().to_string()]
            .into_iter()
            .collect();
        assert_eq!(set.resultant(&alice, &groups).min_length, 30);
        let bob = dn("cn=bob,cn=Users,dc=example,dc=com");
        assert_eq!(set.resultant(&bob, &groups).min_length, 20);
        assert_eq!(set.resultant(&bob, &HashSet::new()).source, None);
    }

    #[test]
    fn account_state_in_ad_order() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let p = PasswordPolicy {
            max_age: Some(Duration::from_secs(86400)),
            ..PasswordPolicy::default()
        };
        let mut e = Entry::new(dn("cn=a,dc=example,dc=com"));
        e.set_str("userAccountControl", "512");
        e.set_str("pwdLastSet", &to_filetime(now).to_string());
        assert_eq!(logon_refusal(&e, &p, now), None);
        let later = now + Duration::from_secs(2 * 86400);
        assert_eq!(logon_refusal(&e, &p, later), Some(Refusal::PasswordExpired));
        e.set_str("userAccountControl", "66048");
        assert_eq!(logon_refusal(&e, &p, later), None);
        e.set_str("pwdLastSet", "0");
        assert_eq!(logon_refusal(&e, &p, now), Some(Refusal::MustChange));
        e.set_str("accountExpires", &to_filetime(now).to_string());
        assert_eq!(logon_refusal(&e, &p, now), Some(Refusal::AccountExpired));
        e.set_str("userAccountControl", "514");
        assert_eq!(logon_refusal(&e, &p, now), Some(Refusal::Disabled));
    }

    #[test]
    fn lockout_ends_after_the_duration() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let p = PasswordPolicy::default();
        let mut e = Entry::new(dn("cn=a,dc=example,dc=com"));
        assert_eq!(locked_until(&e, &p, now), None);
        e.set_str("lockoutTime", &to_filetime(now).to_string());
        assert!(locked_until(&e, &p, now + Duration::from_secs(60)).is_some());
        assert_eq!(locked_until(&e, &p, now + Duration::from_secs(1801)), None);
        e.set_str("lockoutTime", "0");
        assert_eq!(locked_until(&e, &p, now), None);
        let forever = PasswordPolicy {
            lockout_duration: None,
            ..p
        };
        e.set_str("lockoutTime", &to_filetime(now).to_string());
        assert_eq!(
            locked_until(&e, &forever, now + Duration::from_secs(1 << 30)),
            Some(None)
        );
    }

    #[test]
    fn filetime_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(978_307_200);
        assert_eq!(to_filetime(t), 126_227_808_000_000_000);
        assert_eq!(from_filetime(126_227_808_000_000_000), Some(t));
        assert_eq!(from_filetime(0), None);
    }
}
