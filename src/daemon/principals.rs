//! The KDC's `PrincipalDb` over the directory: adapts `Directory`'s protocol-neutral
//! Kerberos calls (`directory::kerberos`) to the KDC's trait, so that neither `kdc` nor
//! `directory` imports the other.
//!
//! May import: `kdc::db`, `directory`, `model`. Invariant: every password change goes through
//! `Directory::kerberos_change_password`, the same path as LDAP (policy, hash, keys, one
//! transaction); errors keep their meaning (policy → soft error with the reason).

use std::sync::Arc;
use std::time::SystemTime;

use crate::directory::{DirError, Directory};
use crate::kdc::db::{DbError, PasswordChangeError, PrincipalDb, PrincipalRecord};
use crate::model::modify::ModifyError;
use crate::model::principal::PrincipalName;

/// The directory as the KDC's principal database.
pub struct DirectoryPrincipals {
    dir: Arc<Directory>,
    audit: Option<crate::audit::Audit>,
}

impl DirectoryPrincipals {
    /// Serves principals from `dir` (which must have a master key).
    pub fn new(dir: Arc<Directory>) -> DirectoryPrincipals {
        DirectoryPrincipals { dir, audit: None }
    }

    /// Records kpasswd changes in `audit` as the LDAP front-end records its password changes
    /// (event `password_change`, operation `kpasswd`).
    pub fn with_audit(mut self, audit: crate::audit::Audit) -> DirectoryPrincipals {
        self.audit = Some(audit);
        self
    }

    fn audit_change(
        &self,
        caller: &PrincipalName,
        target: &PrincipalName,
        now: SystemTime,
        refused: Option<String>,
    ) {
        use crate::audit::{Event, Kind, Outcome};
        let Some(audit) = &self.audit else { return };
        let mut e = Event::new(Kind::PasswordChange, "kpasswd", now)
            .protocol("kerberos")
            .identity(caller.to_string())
            .target(target.to_string());
        e = match refused {
            None => e.outcome(Outcome::new(0, "success")),
            Some(reason) => e.outcome(Outcome::new(1, "refused")).reason(reason),
        };
        audit.record(e);
    }
}

#[async_trait::async_trait]
impl PrincipalDb for DirectoryPrincipals {
    async fn lookup(&self, name: &PrincipalName) -> Result<Option<PrincipalRecord>, DbError> {
        let found = self
            .dir
            .kerberos_principal(name, SystemTime::now())
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
            locked: p.locked,
            must_change_password: p.must_change_password,
            password_expires: p.password_expires,
            account_id: p.account_id,
        }))
    }

    async fn trust_key(
        &self,
        realm: &str,
        inbound: bool,
    ) -> Result<Option<PrincipalRecord>, DbError> {
        let found = self
            .dir
            .kerberos_trust_key(realm, inbound, SystemTime::now())
            .await
            .map_err(|e| DbError(e.to_string()))?;
        Ok(found.map(|(name, stored)| PrincipalRecord {
            canonical: name,
            kvno: stored.kvno(),
            salt: stored.salt.clone(),
            keys: stored.keys.clone(),
            disabled: false,
            expires: None,
            is_service: true,
            locked: false,
            must_change_password: false,
            password_expires: None,
            account_id: None,
        }))
    }

    async fn account_identity(
        &self,
        name: &PrincipalName,
    ) -> Result<Option<crate::kdc::pac::AccountIdentity>, DbError> {
        self.dir
            .kerberos_account_sids(name)
            .await
            .map_err(|e| DbError(e.to_string()))
    }

    async fn foreign_member_of(&self, principal: &str, group_dn: &str) -> Result<bool, DbError> {
        self.dir
            .foreign_member_of(principal, group_dn)
            .await
            .map_err(|e| DbError(e.to_string()))
    }

    async fn preauth_failed(&self, name: &PrincipalName, now: SystemTime) {
        if let Err(e) = self.dir.kerberos_preauth_failed(name, now).await {
            tracing::warn!(principal = %name, error = %e, "failed pre-authentication not counted");
        }
    }

    async fn preauth_succeeded(&self, name: &PrincipalName) {
        if let Err(e) = self.dir.kerberos_preauth_succeeded(name).await {
            tracing::warn!(principal = %name, error = %e, "pre-authentication success not recorded");
        }
    }

    async fn change_password(
        &self,
        name: &PrincipalName,
        new_password: &str,
    ) -> Result<(), PasswordChangeError> {
        // The composition root reads the clock for the directory write's timestamps.
        let now = SystemTime::now();
        let result = self
            .dir
            .kerberos_change_password(name, new_password, now)
            .await;
        self.audit_change(
            name,
            name,
            now,
            result.as_ref().err().map(ToString::to_string),
        );
        password_result(result)
    }

    async fn set_password(
        &self,
        caller: &PrincipalName,
        target: &PrincipalName,
        new_password: &str,
    ) -> Result<(), PasswordChangeError> {
        let now = SystemTime::now();
        let result = self
            .dir
            .kerberos_set_password(caller, target, new_password, now)
            .await;
        self.audit_change(
            caller,
            target,
            now,
            result.as_ref().err().map(ToString::to_string),
        );
        password_result(result)
    }
}

/// A directory password write's outcome as kpasswd sees it (policy → soft error with the
/// reason).
fn password_result(result: Result<(), DirError>) -> Result<(), PasswordChangeError> {
    match result {
        Ok(()) => Ok(()),
        Err(DirError::Modify(ModifyError::Constraint(reason))) => {
            Err(PasswordChangeError::Policy(reason))
        }
        Err(DirError::NoSuchObject { .. }) => Err(PasswordChangeError::NoSuchPrincipal),
        Err(DirError::InsufficientAccess) => Err(PasswordChangeError::AccessDenied),
        Err(e) => Err(PasswordChangeError::Internal(e.to_string())),
    }
}

/// The KDC's second-factor boundary (`kdc::otp::OtpCheck`) over the directory's MFA policy and
/// the shared `Mfa` service: the same group rules, RADIUS servers, replay cache, audit events
/// and metrics as LDAP binds, with the sAMAccountName as RADIUS User-Name.
pub struct KdcMfa {
    /// the directory (who needs MFA: groups, nesting, exemptions)
    pub dir: Arc<Directory>,
    /// the MFA service (RADIUS)
    pub mfa: Arc<crate::mfa::Mfa>,
}

#[async_trait::async_trait]
impl crate::kdc::otp::OtpCheck for KdcMfa {
    async fn required(&self, client: &PrincipalRecord) -> Result<bool, String> {
        self.dir
            .kerberos_mfa_required(&client.canonical)
            .await
            .map_err(|e| e.to_string())
    }

    async fn check(&self, user: &str, code: &str) -> Result<(), crate::kdc::otp::OtpFailure> {
        use crate::kdc::otp::OtpFailure;
        use crate::mfa::MfaError;
        self.mfa.check_code(user, code).await.map_err(|e| match e {
            MfaError::Rejected | MfaError::Replayed => OtpFailure::Rejected,
            MfaError::Unavailable => OtpFailure::Unavailable(e.to_string()),
        })
    }

    /// The same split as for LDAP binds: `[mfa] otp_length` digits after `[mfa] separator`.
    fn split_combined<'a>(
        &self,
        value: &'a str,
        _otp_length: Option<i32>,
    ) -> Option<(&'a str, &'a str)> {
        let (password, code) = self.mfa.split_code(value.as_bytes())?;
        Some((
            std::str::from_utf8(password).ok()?,
            std::str::from_utf8(code).ok()?,
        ))
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
        if let Some(c) = &event.cross_realm {
            self.metrics.kerberos_cross_realm(
                &c.realm,
                if event.error_code.is_none() {
                    "issued"
                } else {
                    "refused"
                },
                c.reason.unwrap_or(""),
            );
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
        match (event.reason, &event.cross_realm) {
            (Some(reason), _) => e = e.reason(reason),
            (None, Some(c)) => {
                e = e.reason(format!(
                    "cross-realm ticket through the trust with {}",
                    c.realm
                ))
            }
            (None, None) => {}
        }
        self.audit.record(e);
    }
}
