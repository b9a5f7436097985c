//! Process metrics in the Prometheus text format: the registry and the handles the
//! front-ends increment. The HTTP endpoint that serves them is `daemon::http`.
//! May import: nothing else of dird (a leaf, like `audit`). Invariant: recording a metric is
//! a few atomic operations and never blocks; values that must be read from the store (tier
//! usage, file size) are set by the endpoint at scrape time with [`Metrics::set_usage`].
//!
//! # Metric names
//!
//! | name | type | labels |
//! |---|---|---|
//! | `dird_ldap_operations_total` | counter | `op`, `code` (result code name) |
//! | `dird_ldap_operation_duration_seconds` | histogram | `op` |
//! | `dird_ldap_connections` | gauge (open connections) | |
//! | `dird_ldap_binds_total` | counter | `outcome` (`success`, `invalid_credentials`, `failure`) |
//! | `dird_kerberos_requests_total` | counter | `request` (`as_req`, `tgs_req`, `kpasswd`), `outcome` |
//! | `dird_kerberos_cross_realm_total` | counter | `realm`, `outcome` (`issued`, `refused`), `reason` |
//! | `dird_tier_users`, `dird_tier_objects`, `dird_tier_objects_limit`, `dird_tier_users_limit` | gauge | |
//! | `dird_store_size_bytes` | gauge | |
//! | `dird_audit_failures_total` | counter | |
//! | `dird_mfa_decisions_total` | counter | `outcome` (`accepted`, `rejected`, `replayed`, `unavailable`, `timeout`, `overloaded`, `missing`), `server` |
//! | `dird_radius_round_trip_seconds` | histogram | |
//! | `dird_radius_pending` | gauge (RADIUS exchanges in flight) | |
//! | `dird_upstream_operations_total` | counter | `upstream` (URL), `op`, `code` (connector mode) |
//! | `dird_upstream_operation_duration_seconds` | histogram | `upstream` (connector mode) |
//! | `dird_upstream_up` | gauge | `upstream` (connector mode): 1 answering, 0 down (health check) |
//! | `dird_cluster_applied_revision` | gauge | etcd head revision this node's replica has applied (cluster mode; 0 otherwise) |
//! | `dird_cluster_etcd_contact_age_seconds` | gauge | seconds since this node last heard from an etcd quorum (cluster mode; 0 otherwise) |
//!
//! # For the KDC
//!
//! Call `metrics.kerberos_request("as_req", "issued")` (or `"refused"`, `"error"`) once per
//! request; the daemon passes the same `Arc<Metrics>` to the KDC as to the LDAP front-end.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the operation counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: String,
    code: String,
}

/// Label of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: String,
}

/// Label of the bind counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// Labels of the Kerberos counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KerberosLabels {
    request: String,
    outcome: String,
}

/// Labels of the MFA decision counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MfaLabels {
    outcome: String,
    server: String,
}

/// Labels of the cross-realm ticket counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CrossRealmLabels {
    realm: String,
    outcome: String,
    reason: String,
}

type HistogramFamily = Family<OpLabel, Histogram, fn() -> Histogram>;

/// Labels of the per-upstream counter (connector mode).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
    op: String,
    code: String,
}

/// Label of the per-upstream latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabel {
    upstream: String,
}

/// The process's metrics. Share one `Arc<Metrics>` between all front-ends.
pub struct Metrics {
    registry: Registry,
    ops: Family<OpLabels, Counter>,
    latency: HistogramFamily,
    connections: Gauge,
    binds: Family<OutcomeLabel, Counter>,
    kerberos: Family<KerberosLabels, Counter>,
    cross_realm: Family<CrossRealmLabels, Counter>,
    users: Gauge,
    objects: Gauge,
    users_limit: Gauge,
    objects_limit: Gauge,
    store_size: Gauge,
    audit_failures: Counter,
    admin: Family<OpLabels, Counter>,
    mfa: Family<MfaLabels, Counter>,
    radius_latency: Histogram,
    radius_pending: Gauge,
    upstream_ops: Family<UpstreamLabels, Counter>,
    upstream_latency: Family<UpstreamLabel, Histogram, fn() -> Histogram>,
    upstream_up: Family<UpstreamLabel, Gauge>,
    cluster_applied: Gauge,
    cluster_contact_age: Gauge<f64, AtomicU64>,
    /// cluster mode: reads (applied revision, time since etcd contact) at each scrape
    cluster_source: OnceLock<ClusterSource>,
}

/// Reads a cluster node's (applied revision, time since the last etcd contact).
pub type ClusterSource = Box<dyn Fn() -> (u64, Duration) + Send + Sync>;

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every dird metric registered (at zero).
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("dird");
        let ops = Family::<OpLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let connections = Gauge::default();
        let binds = Family::<OutcomeLabel, Counter>::default();
        let kerberos = Family::<KerberosLabels, Counter>::default();
        let cross_realm = Family::<CrossRealmLabels, Counter>::default();
        let (users, objects, users_limit, objects_limit, store_size) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        let audit_failures = Counter::default();
        let admin = Family::<OpLabels, Counter>::default();
        let upstream_ops = Family::<UpstreamLabels, Counter>::default();
        let upstream_latency: Family<UpstreamLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "upstream_operations",
            "Operations forwarded to upstream directories (connector mode) by upstream, operation and result code",
            upstream_ops.clone(),
        );
        let upstream_up = Family::<UpstreamLabel, Gauge>::default();
        registry.register(
            "upstream_up",
            "Health of each upstream domain controller (connector mode): 1 answering, 0 down",
            upstream_up.clone(),
        );
        registry.register(
            "upstream_operation_duration_seconds",
            "Latency of operations forwarded to upstream directories (connector mode)",
            upstream_latency.clone(),
        );
        registry.register(
            "ldap_operations",
            "LDAP operations by operation and result code",
            ops.clone(),
        );
        registry.register(
            "ldap_operation_duration_seconds",
            "LDAP operation latency by operation",
            latency.clone(),
        );
        registry.register(
            "ldap_connections",
            "Open LDAP connections",
            connections.clone(),
        );
        registry.register("ldap_binds", "LDAP binds by outcome", binds.clone());
        registry.register(
            "kerberos_requests",
            "Kerberos requests by type and outcome",
            kerberos.clone(),
        );
        registry.register(
            "kerberos_cross_realm",
            "Cross-realm tickets issued or refused by trusted realm, outcome and reason",
            cross_realm.clone(),
        );
        registry.register("tier_users", "User objects in the directory", users.clone());
        registry.register("tier_objects", "Objects in the directory", objects.clone());
        registry.register(
            "tier_users_limit",
            "User objects the tier allows (0: no separate user cap)",
            users_limit.clone(),
        );
        registry.register(
            "tier_objects_limit",
            "Objects the tier allows",
            objects_limit.clone(),
        );
        registry.register(
            "store_size_bytes",
            "Size of the database file",
            store_size.clone(),
        );
        let cluster_applied = Gauge::default();
        registry.register(
            "cluster_applied_revision",
            "etcd head revision this node's replica has applied (cluster mode)",
            cluster_applied.clone(),
        );
        let cluster_contact_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "cluster_etcd_contact_age_seconds",
            "Seconds since this node last heard from an etcd quorum (cluster mode)",
            cluster_contact_age.clone(),
        );
        registry.register(
            "audit_failures",
            "Audit events that could not be written (queue full or file error)",
            audit_failures.clone(),
        );
        registry.register(
            "admin_requests",
            "dird CLI requests by operation and result (admin socket, and offline commands)",
            admin.clone(),
        );
        let mfa = Family::<MfaLabels, Counter>::default();
        let radius_latency = latency_histogram();
        let radius_pending = Gauge::default();
        registry.register(
            "mfa_decisions",
            "Second-factor (MFA) decisions by outcome and RADIUS server",
            mfa.clone(),
        );
        registry.register(
            "radius_round_trip_seconds",
            "RADIUS request/reply round trips",
            radius_latency.clone(),
        );
        registry.register(
            "radius_pending",
            "RADIUS exchanges waiting for a reply",
            radius_pending.clone(),
        );
        Metrics {
            mfa,
            radius_latency,
            radius_pending,
            admin,
            registry,
            ops,
            latency,
            connections,
            binds,
            kerberos,
            cross_realm,
            users,
            objects,
            users_limit,
            objects_limit,
            store_size,
            audit_failures,
            upstream_ops,
            upstream_latency,
            upstream_up,
            cluster_applied,
            cluster_contact_age,
            cluster_source: OnceLock::new(),
        }
    }

    /// Cluster mode: where each scrape reads the applied revision and the etcd contact age.
    pub fn set_cluster_source(&self, source: ClusterSource) {
        if self.cluster_source.set(source).is_err() {
            tracing::warn!("metrics: cluster source set twice; keeping the first");
        }
    }

    /// Sets one upstream's health (connector mode): 1 answering, 0 down.
    pub fn upstream_health(&self, upstream: &str, up: bool) {
        self.upstream_up
            .get_or_create(&UpstreamLabel {
                upstream: upstream.to_string(),
            })
            .set(i64::from(up));
    }

    /// Records one operation an upstream directory served (connector mode).
    pub fn upstream_operation(&self, upstream: &str, op: &str, code: &str, elapsed: Duration) {
        self.upstream_ops
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_string(),
                op: op.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.upstream_latency
            .get_or_create(&UpstreamLabel {
                upstream: upstream.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one finished LDAP operation and its latency. `code` is the result code's name
    /// (e.g. `success`, `noSuchObject`).
    pub fn ldap_operation(&self, op: &str, code: &str, elapsed: Duration) {
        self.ops
            .get_or_create(&OpLabels {
                op: op.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&OpLabel { op: op.to_string() })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one bind by outcome.
    pub fn bind(&self, outcome: &str) {
        self.binds
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counts one Kerberos request (`as_req`, `tgs_req`, `kpasswd`) by outcome (`issued`,
    /// `refused`, `error`, or a KRB-ERROR name).
    pub fn kerberos_request(&self, request: &str, outcome: &str) {
        self.kerberos
            .get_or_create(&KerberosLabels {
                request: request.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counts one cross-realm ticket issued or refused (`reason` empty when issued).
    pub fn kerberos_cross_realm(&self, realm: &str, outcome: &str, reason: &str) {
        self.cross_realm
            .get_or_create(&CrossRealmLabels {
                realm: realm.to_string(),
                outcome: outcome.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Marks a connection open until the returned guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.connections.inc();
        ConnectionGuard {
            gauge: self.connections.clone(),
        }
    }

    /// Counts one admin request (`dird user add`, …) by operation and result (`success`,
    /// `error`). The latency is not kept: admin requests are rare.
    pub fn admin_request(&self, op: &str, result: &str, _elapsed: Duration) {
        self.admin
            .get_or_create(&OpLabels {
                op: op.to_string(),
                code: result.to_string(),
            })
            .inc();
    }

    /// Counts one MFA decision (`accepted`, `rejected`, `replayed`, `unavailable`, `timeout`,
    /// `overloaded`, `missing`) with the RADIUS server that made it (empty: none asked).
    pub fn mfa_decision(&self, outcome: &str, server: &str) {
        self.mfa
            .get_or_create(&MfaLabels {
                outcome: outcome.to_string(),
                server: server.to_string(),
            })
            .inc();
    }

    /// Records one RADIUS round trip.
    pub fn radius_round_trip(&self, elapsed: Duration) {
        self.radius_latency.observe(elapsed.as_secs_f64());
    }

    /// Marks a RADIUS exchange in flight until the returned guard is dropped.
    pub fn radius_pending(&self) -> GaugeGuard {
        self.radius_pending.inc();
        GaugeGuard {
            gauge: self.radius_pending.clone(),
        }
    }

    /// Open LDAP connections now.
    pub fn connections(&self) -> i64 {
        self.connections.get()
    }

    /// Counts one audit failure.
    pub fn audit_failure(&self) {
        self.audit_failures.inc();
    }

    /// Sets the scrape-time values: tier usage and limits, store size.
    pub fn set_usage(
        &self,
        users: u64,
        objects: u64,
        users_limit: Option<u64>,
        objects_limit: u64,
        store_size: u64,
    ) {
        self.users.set(clamp(users));
        self.objects.set(clamp(objects));
        self.users_limit.set(clamp(users_limit.unwrap_or(0)));
        self.objects_limit.set(clamp(objects_limit));
        self.store_size.set(clamp(store_size));
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn encode(&self) -> String {
        if let Some(source) = self.cluster_source.get() {
            let (applied, age) = source();
            self.cluster_applied.set(clamp(applied));
            self.cluster_contact_age.set(age.as_secs_f64());
        }
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Keeps the open-connections gauge up while alive.
pub struct ConnectionGuard {
    gauge: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Keeps a gauge up by one while alive.
pub struct GaugeGuard {
    gauge: Gauge,
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

fn latency_histogram() -> Histogram {
    // 100 µs .. ~6.5 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_exposition() {
        let m = Metrics::new();
        m.ldap_operation("search", "success", Duration::from_millis(3));
        m.bind("success");
        m.kerberos_request("as_req", "issued");
        m.set_usage(3, 10, Some(500), 2000, 4096);
        let _g = m.connection_opened();
        let text = m.encode();
        assert!(
            text.contains("dird_ldap_operations_total{op=\"search\",code=\"success\"} 1"),
            "{text}"
        );
        assert!(text.contains("dird_ldap_binds_total{outcome=\"success\"} 1"));
        assert!(
            text.contains("dird_kerberos_requests_total{request=\"as_req\",outcome=\"issued\"} 1")
        );
        assert!(text.contains("dird_ldap_connections 1"));
        assert!(text.contains("dird_tier_objects_limit 2000"));
        assert!(
            text.contains("dird_ldap_operation_duration_seconds_bucket{"),
            "{text}"
        );
    }
}
