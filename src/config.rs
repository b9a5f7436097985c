//! Configuration: the TOML file (DESIGN.md §6) parsed into a validated `Config`.
//! May import: `model`. Invariant: a `Config` only holds checked values; every error names
//! the key at fault and how to fix it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::model::Dn;

/// Which backend serves the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// dird owns the domain (Simple AD analogue).
    Standalone,
    /// proxy to an upstream Active Directory (AD Connector analogue).
    Connector,
    /// standalone plus a cross-realm trust.
    Trust,
}

/// Object-limit tier (DESIGN.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// 500 users, 2,000 objects
    Small,
    /// 5,000 users, 20,000 objects
    Large,
    /// 30,000 objects
    Standard,
    /// 500,000 objects
    Enterprise,
}

impl Tier {
    /// (max users, max objects); `None` means no separate user cap.
    pub fn limits(self) -> (Option<u64>, u64) {
        match self {
            Tier::Small => (Some(500), 2_000),
            Tier::Large => (Some(5_000), 20_000),
            Tier::Standard => (None, 30_000),
            Tier::Enterprise => (None, 500_000),
        }
    }

    /// Connector mode's caps: (client LDAP sessions, upstream LDAP connections). Each
    /// session pins one upstream connection, and one more with `search_as = "service"`, so
    /// the pool is twice the sessions.
    pub fn connector_limits(self) -> (usize, usize) {
        let sessions = match self {
            Tier::Small => 100,
            Tier::Large => 500,
            Tier::Standard => 1_000,
            Tier::Enterprise => 5_000,
        };
        (sessions, 2 * sessions)
    }

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Small => "small",
            Tier::Large => "large",
            Tier::Standard => "standard",
            Tier::Enterprise => "enterprise",
        }
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// backend mode
    pub mode: Mode,
    /// object-limit tier
    pub tier: Tier,
    /// where the database, master key and generated certificates live
    pub data_dir: PathBuf,
    /// the domain
    pub domain: Domain,
    /// LDAP front-end; `None` turns LDAP off
    pub ldap: Option<LdapConfig>,
    /// TLS material; `None` means "generate into data_dir"
    pub tls: Option<TlsFiles>,
    /// Kerberos KDC; `None` turns it off
    pub kdc: Option<KdcSettings>,
    /// metrics endpoint
    pub metrics: Option<MetricsConfig>,
    /// audit stream
    pub audit: Option<AuditConfig>,
    /// scheduled backups (`[backup]`); `None`: no scheduled backups
    pub backup: Option<BackupConfig>,
    /// log filter from `[log] level` (an `EnvFilter` directive such as `info` or
    /// `dird=debug,info`); `None`: `DIRD_LOG`, else `info`
    pub log_level: Option<String>,
    /// extra schema files directory (loaded after the built-in ones)
    pub schema_dir: Option<PathBuf>,
    /// attributes indexed in the store
    pub index: IndexSettings,
    /// POSIX id allocation ranges
    pub posix: PosixRanges,
    /// `[mfa]`: a second factor checked by RADIUS (absent: no MFA)
    pub mfa: Option<MfaConfig>,
    /// `[[trust]]`: cross-realm Kerberos trusts (only with `mode = "trust"`)
    pub trusts: Vec<TrustConfig>,
    /// `[connector]` (issue 12): the upstream AD domain controllers; `Some` exactly when
    /// `mode = "connector"`
    pub connector: Option<ConnectorConfig>,
    /// DNS responder for the domain (`[dns]`); `None` turns it off
    pub dns: Option<DnsConfig>,
    /// `[cluster]` (issue 17): this node is one of several over an etcd cluster; `None`:
    /// a single node on its own redb file
    pub cluster: Option<ClusterConfig>,
}

/// `[cluster]`: the etcd cluster this node's store replicates through (src/cluster/).
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// etcd client URLs (`http://host:port` or `https://host:port`)
    pub etcd: Vec<String>,
    /// the key prefix holding this directory in etcd, without a trailing `/`
    pub prefix: String,
    /// this node's unique name
    pub node_name: String,
    /// how long reads are served from the local replica without contact with etcd
    pub max_staleness: std::time::Duration,
    /// client TLS towards etcd
    pub tls: Option<ClusterTls>,
}

/// `[cluster] tls`: the CA that signs the etcd servers' certificates and this node's client
/// certificate and key.
#[derive(Clone, Debug)]
pub struct ClusterTls {
    /// PEM CA bundle
    pub ca_file: PathBuf,
    /// PEM client certificate
    pub cert: PathBuf,
    /// PEM client key
    pub key: PathBuf,
}

/// Which way a trust goes (the `direction` key of a `[[trust]]` table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustDirection {
    /// the trusted realm's users may use our services (`krbtgt/OURS@THEIRS`)
    Inbound,
    /// our users may use the trusted realm's services (`krbtgt/THEIRS@OURS`)
    Outbound,
    /// both
    Both,
}

impl TrustDirection {
    /// True if the trusted realm's users may use our services.
    pub fn inbound(self) -> bool {
        matches!(self, TrustDirection::Inbound | TrustDirection::Both)
    }
    /// True if our users may use the trusted realm's services.
    pub fn outbound(self) -> bool {
        matches!(self, TrustDirection::Outbound | TrustDirection::Both)
    }
}

/// One entry of a trust's `allowed` list (selective authentication).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustAllowed {
    /// a foreign principal, `bob@OTHER.COM`
    Principal(String),
    /// a local group whose foreign-principal members are allowed (`group:DN`)
    Group(Dn),
}

/// `[[trust]]`: a cross-realm Kerberos trust with another realm (issue 13).
#[derive(Clone, Debug)]
pub struct TrustConfig {
    /// the trusted realm, upper case
    pub realm: String,
    /// its KDCs (`host:port`), for the krb5.conf snippet and documentation
    pub kdc: Vec<String>,
    /// which way the trust goes
    pub direction: TrustDirection,
    /// the file holding the inter-realm password (shared with the other realm's admin)
    pub password_file: PathBuf,
    /// the initial key version number (later ones come from `dird trust rotate`)
    pub kvno: u32,
    /// selective authentication; `None`: every principal of the trusted realm
    pub allowed: Option<Vec<TrustAllowed>>,
    /// how long the previous kvno stays valid after a rotation
    pub overlap: Duration,
    /// `[capaths]`-style: further realms reachable through this trust (client realms and
    /// transited realms accepted in addition to `realm`)
    pub transited: Vec<String>,
    /// `ldap = { url, base }`: the trusted realm's directory; LDAP requests under its naming
    /// context are answered with a referral to it
    pub ldap: Option<TrustLdap>,
}

/// The trusted realm's LDAP directory (`[[trust]] ldap`).
#[derive(Clone, Debug)]
pub struct TrustLdap {
    /// `ldap://host[:port]` or `ldaps://host[:port]`, without a trailing `/`
    pub url: String,
    /// its naming context (default: the realm's labels as `dc=` components)
    pub base: Dn,
}

/// One upstream domain controller of `[connector] upstreams`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// the URL as written (for logs, audit and metrics)
    pub url: String,
    /// host name or IP literal (also the TLS server name checked against the certificate)
    pub host: String,
    /// TCP port (default 636 for ldaps://, 389 for ldap://)
    pub port: u16,
    /// implicit TLS (`ldaps://`); otherwise StartTLS is sent first
    pub ldaps: bool,
    /// addresses found by DNS SRV discovery (empty: `host` is resolved by the system)
    pub addrs: Vec<std::net::IpAddr>,
}

/// Who runs searches in connector mode (`[connector] search_as`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchAs {
    /// the client's own upstream identity (its pinned, bound upstream connection)
    User,
    /// the service account (`service_account`), on a connection of the session's own; dird's
    /// read ACL applies to the client's identity
    Service,
}

/// `[connector]`: dird in front of an existing Active Directory (issue 12).
#[derive(Clone, Debug)]
pub struct ConnectorConfig {
    /// domain controllers, tried in order; empty: discovered at start by DNS SRV
    /// (`_ldap._tcp.<domain>`, see `backend::discovery`)
    pub upstreams: Vec<UpstreamUrl>,
    /// StartTLS on ldap:// upstreams (and on discovered ones; `false`: LDAPS on 636)
    pub starttls: bool,
    /// DNS servers for SRV discovery (empty: the system's resolv.conf)
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// search continuation references to the domain are chased (default: returned)
    pub chase_referrals: bool,
    /// PEM CA bundle every upstream certificate is verified against
    pub ca_file: PathBuf,
    /// who runs searches
    pub search_as: SearchAs,
    /// budget for reaching an upstream (TCP + TLS + StartTLS), across all upstreams
    pub connect_timeout: Duration,
    /// an upstream operation that takes longer gets `unavailable` (52)
    pub op_timeout: Duration,
    /// upstream KDCs (`host:port`) that `[kdc]` forwards to, in order
    pub kdcs: Vec<String>,
    /// upstream kpasswd servers: the KDC hosts on port 464
    pub kpasswds: Vec<String>,
    /// `[connector.cache]`: (ttl, max cached result messages); `None`: nothing is cached
    pub cache: Option<(Duration, usize)>,
    /// client LDAP sessions served at once (the tier's cap, or lower with `max_sessions`)
    pub max_sessions: usize,
    /// upstream LDAP connections open at once (the tier's pool size, or lower with
    /// `max_upstream_connections`)
    pub max_upstream_connections: usize,
    /// the service account and its password file: looks up accounts' groups and
    /// sAMAccountName for `[mfa]`, and runs the searches with `search_as = "service"`
    /// (required with either)
    pub service_account: Option<(String, PathBuf)>,
}

/// `[dns]`: the domain's DNS responder (SRV, A and PTR records a joining host looks up;
/// MS-ADTS §6.3.2).
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// UDP and TCP addresses
    pub listen: Vec<SocketAddr>,
    /// the DC's addresses in its A/AAAA records; empty: the specific (not 0.0.0.0) addresses
    /// of `[ldap] listen`, else of `[dns] listen`
    pub addresses: Vec<std::net::IpAddr>,
}

/// `[posix]`: the ranges uidNumber and gidNumber are allocated from for users and groups
/// that have none (issue 3). Explicit values are always kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PosixRanges {
    /// first uidNumber handed out (default 10000)
    pub uid_min: u64,
    /// last uidNumber handed out (default 1999999999)
    pub uid_max: u64,
    /// first gidNumber handed out (default 10000)
    pub gid_min: u64,
    /// last gidNumber handed out (default 1999999999)
    pub gid_max: u64,
}

/// `[domain]`
#[derive(Clone, Debug)]
pub struct Domain {
    /// DNS name, e.g. `example.com`
    pub name: String,
    /// `dc=example,dc=com`
    pub base: Dn,
    /// `EXAMPLE.COM`
    pub realm: String,
    /// `EXAMPLE`
    pub netbios: String,
    /// the DC's own DNS name (`[domain] dc_hostname`; `None`: the machine's host name in
    /// the domain)
    pub dc_hostname: Option<String>,
    /// `[domain] join_group`: members (nested) may create computer accounts in
    /// `join_container` and manage the ones they created, as AD's delegated "join computers
    /// to the domain" right (Domain Admins always may)
    pub join_group: Option<Dn>,
    /// `[domain] join_container`: where `join_group` members create computers (default
    /// `cn=Computers,<base>`)
    pub join_container: Dn,
}

/// `[ldap] cleartext_binds`: where a password may travel without TLS (a simple bind with a
/// password, an add carrying one). Password changes always need TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleartextBinds {
    /// never: TLS (LDAPS or StartTLS) is required
    Never,
    /// only from a loopback peer (127.0.0.0/8, ::1)
    Loopback,
    /// from anywhere
    Always,
}

impl CleartextBinds {
    /// True if a password may be sent without TLS by a client at `peer`.
    pub fn allows(self, peer: std::net::IpAddr) -> bool {
        let peer = match peer {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            v4 => v4,
        };
        match self {
            CleartextBinds::Never => false,
            CleartextBinds::Loopback => peer.is_loopback(),
            CleartextBinds::Always => true,
        }
    }
}

/// `[ldap]`
#[derive(Clone, Debug)]
pub struct LdapConfig {
    /// plain LDAP (+StartTLS) addresses
    pub listen: Vec<SocketAddr>,
    /// implicit-TLS addresses
    pub ldaps_listen: Vec<SocketAddr>,
    /// largest accepted PDU in bytes
    pub max_pdu: usize,
    /// concurrent connections
    pub max_connections: usize,
    /// outstanding operations per connection
    pub max_ops_per_connection: usize,
    /// idle connections are closed after this
    pub idle_timeout: Duration,
    /// a response write that takes longer than this closes the connection
    pub write_timeout: Duration,
    /// server-side cap on entries per search (non-paged)
    pub size_limit: u32,
    /// server-side cap on search time
    pub time_limit: Duration,
    /// the most entries one page may return (like AD's MaxPageSize)
    pub max_page_size: u32,
    /// paged searches open at once, server-wide; the least recently used is released
    /// beyond it (`[ldap] max_paged_cursors`)
    pub max_paged_cursors: usize,
    /// let anonymous binds read the directory (default: rootDSE and subschema only)
    pub anonymous_read: bool,
    /// concurrent password hashes (argon2) across the server
    pub max_concurrent_hashes: usize,
    /// where passwords may be sent without TLS
    pub cleartext_binds: CleartextBinds,
    /// how long a verified simple bind is remembered (`[ldap] bind_cache_ttl_secs`, 0: off;
    /// see `directory::bind_cache`)
    pub bind_cache_ttl: Duration,
    /// UDP addresses of the CLDAP NetLogon ping (`[ldap] cldap_listen`); `None`: the same
    /// addresses as `listen` (a failure to bind one is then logged, not fatal)
    pub cldap_listen: Option<Vec<SocketAddr>>,
    /// global catalog addresses, plain LDAP (`[ldap] gc_listen`); `None`: port 3268 on every
    /// `listen` address that uses the standard port 389 (a failure to bind one is then
    /// logged, not fatal); `[]`: no global catalog
    pub gc_listen: Option<Vec<SocketAddr>>,
    /// global catalog addresses with implicit TLS (`[ldap] gc_ldaps_listen`); `None`: port
    /// 3269 on every `ldaps_listen` address that uses port 636
    pub gc_ldaps_listen: Option<Vec<SocketAddr>>,
}

/// `[tls]`
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// PEM certificate chain
    pub cert: PathBuf,
    /// PEM private key
    pub key: PathBuf,
}

/// `[kdc]`
#[derive(Clone, Debug)]
pub struct KdcSettings {
    /// KDC addresses (UDP and TCP)
    pub listen: Vec<SocketAddr>,
    /// kpasswd addresses (UDP and TCP)
    pub kpasswd_listen: Vec<SocketAddr>,
    /// ticket lifetime
    pub ticket_lifetime: Duration,
    /// renewable lifetime
    pub renew_lifetime: Duration,
    /// live authenticators the replay cache holds; when full, requests are refused
    /// (retryable) rather than an entry forgotten (`[kdc] replay_cache_size`)
    pub replay_cache_size: usize,
}

/// `[metrics]`
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// HTTP addresses for /metrics and /healthz
    pub listen: Vec<SocketAddr>,
}

/// `[audit]`
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// JSON-lines file; `None`: no file (use `tracing = true`)
    pub path: Option<PathBuf>,
    /// also emit every event as a `tracing` event with target `audit`
    pub tracing: bool,
    /// refuse writes (unwillingToPerform) while the audit sink is failing
    pub fail_closed: bool,
    /// events queued for the writer before new ones are dropped (and counted)
    pub queue: usize,
}

/// `[backup]`: scheduled snapshots with retention.
#[derive(Clone, Debug)]
pub struct BackupConfig {
    /// where snapshots are written
    pub dir: PathBuf,
    /// time between snapshots
    pub interval: Duration,
    /// snapshots kept (older ones are deleted)
    pub keep: usize,
    /// put the master key into scheduled snapshots too
    pub include_master_key: bool,
}

/// `[index]`
#[derive(Clone, Debug)]
pub struct IndexSettings {
    /// extra equality+presence indexed attributes
    pub equality: Vec<String>,
    /// extra substring-indexed attributes
    pub substring: Vec<String>,
    /// keep the built-in substring (trigram) indexes (cn, uid, sAMAccountName, mail,
    /// userPrincipalName, displayName); false: only `substring` is substring-indexed
    pub substring_defaults: bool,
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings {
            equality: Vec::new(),
            substring: Vec::new(),
            substring_defaults: true,
        }
    }
}

/// A configuration error naming the key and the fix.
#[derive(Debug, thiserror::Error)]
#[error("config error at `{key}`: {message}")]
pub struct ConfigError {
    /// the TOML key, e.g. `ldap.listen`
    pub key: String,
    /// what is wrong and how to fix it
    pub message: String,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            key: "(file)".into(),
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        Config::parse(&text)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            key: e
                .span()
                .map(|s| key_at(text, s.start))
                .unwrap_or_else(|| "(file)".into()),
            message: e.message().to_string(),
        })?;
        raw.validate()
    }

    /// The no-config demo: standalone, everything on at the DESIGN.md §1 defaults, data in `./data`.
    pub fn demo() -> Config {
        let raw = RawConfig {
            mode: Mode::Standalone,
            tier: Tier::Enterprise,
            data_dir: PathBuf::from("./data"),
            domain: RawDomain {
                name: "example.com".into(),
                netbios: None,
                dc_hostname: None,
                join_group: None,
                join_container: None,
            },
            ldap: Some(RawLdap::default()),
            tls: None,
            kdc: Some(RawKdc::default()),
            metrics: Some(RawMetrics::default()),
            audit: None,
            schema: None,
            index: None,
            backup: None,
            log: None,
            posix: None,
            mfa: None,
            trust: Vec::new(),
            connector: None,
            dns: None,
            cluster: None,
        };
        // The demo values are constants that validate; fall back to a minimal config otherwise.
        match raw.validate() {
            Ok(c) => c,
            Err(e) => unreachable_config(e),
        }
    }
}

#[cold]
fn unreachable_config(e: ConfigError) -> Config {
    // The demo configuration is a compile-time constant; reaching this is a programming error.
    panic!("built-in demo configuration is invalid: {e}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_mode")]
    mode: Mode,
    #[serde(default = "default_tier")]
    tier: Tier,
    data_dir: PathBuf,
    domain: RawDomain,
    ldap: Option<RawLdap>,
    tls: Option<RawTls>,
    kdc: Option<RawKdc>,
    metrics: Option<RawMetrics>,
    audit: Option<RawAudit>,
    schema: Option<RawSchema>,
    index: Option<RawIndex>,
    backup: Option<RawBackup>,
    log: Option<RawLog>,
    posix: Option<RawPosix>,
    mfa: Option<RawMfa>,
    #[serde(default)]
    trust: Vec<RawTrust>,
    connector: Option<RawConnector>,
    dns: Option<RawDns>,
    cluster: Option<RawCluster>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    etcd: Vec<String>,
    prefix: Option<String>,
    node_name: String,
    #[serde(default = "default_max_staleness")]
    max_staleness_secs: u64,
    tls: Option<RawClusterTls>,
}

fn default_max_staleness() -> u64 {
    30
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClusterTls {
    ca_file: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl RawCluster {
    fn validate(self, mode: Mode, domain: &str) -> Result<ClusterConfig, ConfigError> {
        if mode != Mode::Standalone {
            return Err(err(
                "cluster",
                "[cluster] applies to the standalone mode (the nodes hold the directory); remove it or set mode = \"standalone\"",
            ));
        }
        if self.etcd.is_empty() {
            return Err(err(
                "cluster.etcd",
                "list the etcd client URLs, e.g. [\"http://10.0.0.1:2379\", \"http://10.0.0.2:2379\", \"http://10.0.0.3:2379\"]",
            ));
        }
        for u in &self.etcd {
            let rest = u
                .strip_prefix("http://")
                .or_else(|| u.strip_prefix("https://"));
            let ok = rest.is_some_and(|r| {
                let host_port = r.trim_end_matches('/');
                !host_port.is_empty()
                    && !host_port.contains('/')
                    && host_port.rsplit_once(':').is_some_and(|(h, p)| {
                        !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)
                    })
            });
            if !ok {
                return Err(err(
                    "cluster.etcd",
                    format!("`{u}` is not an etcd client URL; write it as \"http://10.0.0.1:2379\" (or https:// with [cluster] tls)"),
                ));
            }
        }
        let https = self
            .etcd
            .iter()
            .filter(|u| u.starts_with("https://"))
            .count();
        if https != 0 && https != self.etcd.len() {
            return Err(err(
                "cluster.etcd",
                "mix of http:// and https:// URLs; use one scheme for all members",
            ));
        }
        if https > 0 && self.tls.is_none() {
            return Err(err(
                "cluster.tls",
                "https:// etcd URLs need tls = { ca_file = \"…\", cert = \"…\", key = \"…\" }",
            ));
        }
        let prefix = self
            .prefix
            .unwrap_or_else(|| format!("/dird/{domain}"))
            .trim_end_matches('/')
            .to_string();
        if !prefix.starts_with('/') || prefix.len() < 2 || prefix.chars().any(|c| c.is_control()) {
            return Err(err(
                "cluster.prefix",
                format!("`{prefix}` must be an absolute key path such as \"/dird/{domain}\" (not \"/\" alone)"),
            ));
        }
        let name_ok = !self.node_name.is_empty()
            && self.node_name.len() <= 63
            && self
                .node_name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if !name_ok {
            return Err(err(
                "cluster.node_name",
                format!("`{}` must be 1 to 63 letters, digits, `-` or `_`, unique per node, e.g. \"dc1\"", self.node_name),
            ));
        }
        if self.max_staleness_secs == 0 || self.max_staleness_secs > 86_400 {
            return Err(err(
                "cluster.max_staleness_secs",
                "give 1 to 86400 seconds (default 30): how long a node cut off from etcd serves reads",
            ));
        }
        let tls = self.tls.map(|t| ClusterTls {
            ca_file: t.ca_file,
            cert: t.cert,
            key: t.key,
        });
        Ok(ClusterConfig {
            etcd: self.etcd,
            prefix,
            node_name: self.node_name,
            max_staleness: std::time::Duration::from_secs(self.max_staleness_secs),
            tls,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    realm: String,
    #[serde(default)]
    kdc: Vec<String>,
    direction: String,
    password_file: PathBuf,
    #[serde(default = "default_trust_kvno")]
    kvno: u32,
    allowed: Option<Vec<String>>,
    #[serde(default = "default_overlap")]
    overlap_secs: u64,
    #[serde(default)]
    transited: Vec<String>,
    ldap: Option<RawTrustLdap>,
}

/// `ldap = { … }` of a `[[trust]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrustLdap {
    url: String,
    base: Option<String>,
    bind_dn: Option<String>,
    password_file: Option<PathBuf>,
}

/// Validates `[[trust]] ldap`: an LDAP URL of a server, and the naming context it holds.
fn trust_ldap(key: &str, realm: &str, raw: RawTrustLdap) -> Result<TrustLdap, ConfigError> {
    let url = raw.url.trim().trim_end_matches('/');
    let host = url
        .strip_prefix("ldaps://")
        .or_else(|| url.strip_prefix("ldap://"))
        .unwrap_or("");
    if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
        return Err(err(
            &format!("{key}.url"),
            format!(
                "`{}` is not an LDAP server URL; write it as \"ldaps://ldap.other.com\"",
                raw.url
            ),
        ));
    }
    let base_text = raw.base.unwrap_or_else(|| {
        realm
            .split('.')
            .map(|l| format!("dc={}", l.to_ascii_lowercase()))
            .collect::<Vec<_>>()
            .join(",")
    });
    let base = Dn::parse(&base_text)
        .ok()
        .filter(|d| !d.is_root())
        .ok_or_else(|| {
            err(
                &format!("{key}.base"),
                format!("`{base_text}` is not a DN; write the trusted realm's naming context, e.g. \"dc=other,dc=com\""),
            )
        })?;
    if raw.bind_dn.is_some() != raw.password_file.is_some() {
        return Err(err(
            &format!("{key}.bind_dn"),
            "bind_dn and password_file go together (give both or neither)",
        ));
    }
    if let Some(dn) = &raw.bind_dn {
        Dn::parse(dn)
            .map_err(|e| err(&format!("{key}.bind_dn"), format!("`{dn}`: not a DN ({e})")))?;
    }
    Ok(TrustLdap {
        url: url.to_string(),
        base,
    })
}

fn default_trust_kvno() -> u32 {
    1
}

fn default_overlap() -> u64 {
    7 * 24 * 3600
}

/// A Kerberos realm name as accepted in `[[trust]]`: DNS-like labels, upper-cased.
fn realm_name(key: &str, text: &str) -> Result<String, ConfigError> {
    let ok = !text.is_empty()
        && text.len() <= 255
        && text
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
    if !ok {
        return Err(err(
            key,
            format!("`{text}` is not a realm name; write it as \"OTHER.COM\""),
        ));
    }
    Ok(text.to_ascii_uppercase())
}

fn validate_trusts(
    mode: Mode,
    own_realm: &str,
    raw: Vec<RawTrust>,
) -> Result<Vec<TrustConfig>, ConfigError> {
    if mode != Mode::Trust {
        if raw.is_empty() {
            return Ok(Vec::new());
        }
        return Err(err(
            "trust",
            "[[trust]] tables need mode = \"trust\" (or remove them)",
        ));
    }
    if raw.is_empty() {
        return Err(err(
            "trust",
            "mode = \"trust\" needs at least one [[trust]] table (realm, direction, password_file)",
        ));
    }
    let mut out: Vec<TrustConfig> = Vec::new();
    for (i, t) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("trust[{i}].{k}");
        let realm = realm_name(&key("realm"), &t.realm)?;
        if realm == own_realm {
            return Err(err(
                &key("realm"),
                format!("`{realm}` is this directory's own realm; name the other realm"),
            ));
        }
        if out.iter().any(|o| o.realm == realm) {
            return Err(err(
                &key("realm"),
                format!("`{realm}` has two [[trust]] tables; keep one"),
            ));
        }
        let direction = match t.direction.as_str() {
            "inbound" => TrustDirection::Inbound,
            "outbound" => TrustDirection::Outbound,
            "both" => TrustDirection::Both,
            other => {
                return Err(err(
                    &key("direction"),
                    format!("`{other}` is not one of \"inbound\", \"outbound\" or \"both\""),
                ))
            }
        };
        for k in &t.kdc {
            let (host, port) = k.rsplit_once(':').unwrap_or((k.as_str(), "88"));
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(err(
                    &key("kdc"),
                    format!("`{k}` is not host:port; write it as \"kdc.other.com:88\""),
                ));
            }
        }
        if t.password_file.as_os_str().is_empty() {
            return Err(err(
                &key("password_file"),
                "must name the file holding the inter-realm password",
            ));
        }
        if t.kvno == 0 {
            return Err(err(
                &key("kvno"),
                "must be at least 1 (the kvno the other realm's admin used, default 1)",
            ));
        }
        if t.overlap_secs > 365 * 24 * 3600 {
            return Err(err(
                &key("overlap_secs"),
                "must be at most one year (default 604800, a week)",
            ));
        }
        let ldap = match t.ldap {
            None => None,
            Some(l) => Some(trust_ldap(&key("ldap"), &realm, l)?),
        };
        let allowed = match t.allowed {
            None => None,
            Some(list) => {
                let mut parsed = Vec::new();
                for a in list {
                    if let Some(dn) = a.strip_prefix("group:") {
                        let dn = Dn::parse(dn.trim())
                            .map_err(|e| err(&key("allowed"), format!("`{a}`: not a DN ({e})")))?;
                        parsed.push(TrustAllowed::Group(dn));
                    } else {
                        match a.rsplit_once('@') {
                            Some((name, r)) if !name.is_empty() => {
                                let r = realm_name(&key("allowed"), r)?;
                                parsed.push(TrustAllowed::Principal(format!("{name}@{r}")));
                            }
                            _ => {
                                return Err(err(
                                    &key("allowed"),
                                    format!("`{a}` is neither a principal (\"bob@{realm}\") nor \"group:<DN>\""),
                                ))
                            }
                        }
                    }
                }
                Some(parsed)
            }
        };
        let transited = t
            .transited
            .iter()
            .map(|r| realm_name(&key("transited"), r))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(TrustConfig {
            realm,
            kdc: t.kdc,
            direction,
            password_file: t.password_file,
            kvno: t.kvno,
            allowed,
            overlap: Duration::from_secs(t.overlap_secs),
            transited,
            ldap,
        });
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnector {
    upstreams: Option<Vec<String>>,
    #[serde(default = "default_true")]
    starttls: bool,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_search_as")]
    search_as: String,
    #[serde(default = "default_connect_timeout_ms")]
    connect_timeout_ms: u64,
    #[serde(default = "default_op_timeout_ms")]
    op_timeout_ms: u64,
    kdcs: Option<Vec<String>>,
    cache: Option<RawConnectorCache>,
    service_account: Option<String>,
    service_password_file: Option<PathBuf>,
    max_sessions: Option<usize>,
    max_upstream_connections: Option<usize>,
    dns_servers: Option<Vec<String>>,
    #[serde(default)]
    chase_referrals: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnectorCache {
    #[serde(default = "default_cache_ttl")]
    ttl_secs: u64,
    #[serde(default = "default_cache_entries")]
    max_entries: usize,
}

fn default_cache_ttl() -> u64 {
    300
}

fn default_cache_entries() -> usize {
    100_000
}

fn default_true() -> bool {
    true
}

fn default_search_as() -> String {
    "user".into()
}

fn default_connect_timeout_ms() -> u64 {
    3000
}

fn default_op_timeout_ms() -> u64 {
    10_000
}

impl RawConnector {
    fn validate(self, tier: Tier) -> Result<ConnectorConfig, ConfigError> {
        let (tier_sessions, tier_pool) = tier.connector_limits();
        let capped = |key: &str, v: Option<usize>, cap: usize| match v {
            None => Ok(cap),
            Some(n) if (1..=cap).contains(&n) => Ok(n),
            Some(_) => Err(err(
                key,
                format!(
                    "must be between 1 and {cap}, the cap of tier \"{}\" (raise the tier for more)",
                    tier.name()
                ),
            )),
        };
        let max_sessions = capped("connector.max_sessions", self.max_sessions, tier_sessions)?;
        let max_upstream_connections = capped(
            "connector.max_upstream_connections",
            self.max_upstream_connections,
            tier_pool,
        )?;
        // No upstreams: discovery by DNS SRV at start (through dns_servers, or resolv.conf).
        let discover = self.upstreams.is_none();
        let mut dns_servers = Vec::new();
        for d in self.dns_servers.iter().flatten() {
            let parsed = d
                .parse::<std::net::SocketAddr>()
                .or_else(|_| d.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                .map_err(|_| {
                    err(
                        "connector.dns_servers",
                        format!("`{d}` is not an IP address or IP:port, e.g. \"10.0.0.10\" or \"[::1]:53\""),
                    )
                })?;
            dns_servers.push(parsed);
        }
        if !discover && !dns_servers.is_empty() {
            return Err(err(
                "connector.dns_servers",
                "only used for DNS SRV discovery: remove it, or remove upstreams to discover the domain controllers",
            ));
        }
        let list = self.upstreams.unwrap_or_default();
        if list.is_empty() && !discover {
            return Err(err(
                "connector.upstreams",
                "needs at least one URL, e.g. \"ldaps://dc1.corp.example.com\"",
            ));
        }
        let mut upstreams = Vec::new();
        for u in &list {
            let parsed = parse_upstream(u).map_err(|m| err("connector.upstreams", m))?;
            if !parsed.ldaps && !self.starttls {
                return Err(err(
                    "connector.starttls",
                    format!("`{u}` is plain ldap:// and starttls = false: passwords would cross the network in the clear; set starttls = true or use ldaps://"),
                ));
            }
            upstreams.push(parsed);
        }
        let Some(ca_file) = self.ca_file else {
            return Err(err(
                "connector.ca_file",
                "give the PEM CA bundle that signed the domain controllers' certificates (upstream certificates are always verified)",
            ));
        };
        if let Err(e) = std::fs::metadata(&ca_file) {
            return Err(err(
                "connector.ca_file",
                format!("cannot read {}: {e}", ca_file.display()),
            ));
        }
        let search_as = match self.search_as.as_str() {
            "user" => SearchAs::User,
            "service" => SearchAs::Service,
            other => {
                return Err(err(
                    "connector.search_as",
                    format!("`{other}` is not a choice; use \"user\" (searches run as the bound client) or \"service\" (as service_account, with dird's read ACL)"),
                ))
            }
        };
        if !(1..=60_000).contains(&self.connect_timeout_ms) {
            return Err(err(
                "connector.connect_timeout_ms",
                "must be between 1 and 60000 milliseconds (default 3000)",
            ));
        }
        if !(1..=600_000).contains(&self.op_timeout_ms) {
            return Err(err(
                "connector.op_timeout_ms",
                "must be between 1 and 600000 milliseconds (default 10000)",
            ));
        }
        let kdcs = match self.kdcs {
            // discovery: the discovered domain controllers on 88 (filled in at start)
            None if discover => Vec::new(),
            None => upstreams
                .iter()
                .map(|u| host_port(&u.host, 88))
                .collect::<Vec<_>>(),
            Some(list) => {
                for k in &list {
                    let ok = k.rsplit_once(':').is_some_and(|(h, p)| {
                        !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0)
                    });
                    if !ok {
                        return Err(err(
                            "connector.kdcs",
                            format!("`{k}` is not host:port, e.g. \"dc1.corp.example.com:88\""),
                        ));
                    }
                }
                list
            }
        };
        let kpasswds = kdcs
            .iter()
            .filter_map(|k| k.rsplit_once(':'))
            .map(|(h, _)| format!("{h}:464"))
            .collect();
        let service_account = match (self.service_account, self.service_password_file) {
            (None, None) if search_as == SearchAs::Service => {
                return Err(err(
                    "connector.service_account",
                    "search_as = \"service\" needs service_account and service_password_file (the account searches run as)",
                ))
            }
            (None, None) => None,
            (Some(a), Some(f)) => {
                if let Err(e) = std::fs::metadata(&f) {
                    return Err(err(
                        "connector.service_password_file",
                        format!("cannot read {}: {e}", f.display()),
                    ));
                }
                Some((a, f))
            }
            (Some(_), None) => {
                return Err(err(
                    "connector.service_password_file",
                    "service_account needs service_password_file (a file holding its password)",
                ))
            }
            (None, Some(_)) => return Err(err(
                "connector.service_account",
                "service_password_file needs service_account (e.g. \"svc-dird@corp.example.com\")",
            )),
        };
        let cache = match self.cache {
            None => None,
            Some(c) => {
                if c.ttl_secs == 0 || c.ttl_secs > 7 * 86_400 {
                    return Err(err(
                        "connector.cache.ttl_secs",
                        "must be between 1 and 604800 seconds (default 300)",
                    ));
                }
                if c.max_entries == 0 || c.max_entries > 10_000_000 {
                    return Err(err(
                        "connector.cache.max_entries",
                        "must be between 1 and 10000000 (default 100000)",
                    ));
                }
                Some((Duration::from_secs(c.ttl_secs), c.max_entries))
            }
        };
        Ok(ConnectorConfig {
            starttls: self.starttls,
            chase_referrals: self.chase_referrals,
            dns_servers,
            max_sessions,
            max_upstream_connections,
            service_account,
            cache,
            kdcs,
            kpasswds,
            upstreams,
            ca_file,
            search_as,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            op_timeout: Duration::from_millis(self.op_timeout_ms),
        })
    }
}

/// `host:port`, with brackets around an IPv6 literal.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `ldaps://host[:port]` or `ldap://host[:port]` (IPv6 literals in brackets), nothing after.
fn parse_upstream(u: &str) -> Result<UpstreamUrl, String> {
    let (ldaps, rest) = if let Some(r) = u.strip_prefix("ldaps://") {
        (true, r)
    } else if let Some(r) = u.strip_prefix("ldap://") {
        (false, r)
    } else {
        return Err(format!(
            "`{u}` must start with ldaps:// or ldap:// (e.g. \"ldaps://dc1.corp.example.com\")"
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let bad = || format!("`{u}` is not ldap[s]://host[:port] (no path, no query)");
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, after) = r.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.to_string(), None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':'));
    if !host_ok {
        return Err(bad());
    }
    let port = match port {
        None => {
            if ldaps {
                636
            } else {
                389
            }
        }
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
    };
    Ok(UpstreamUrl {
        addrs: Vec::new(),
        url: u.to_string(),
        host,
        port,
        ldaps,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    listen: Vec<String>,
    #[serde(default)]
    addresses: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPosix {
    uid_min: u64,
    uid_max: u64,
    gid_min: u64,
    gid_max: u64,
}

impl Default for RawPosix {
    fn default() -> Self {
        RawPosix {
            uid_min: 10_000,
            uid_max: 1_999_999_999,
            gid_min: 10_000,
            gid_max: 1_999_999_999,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    name: String,
    netbios: Option<String>,
    dc_hostname: Option<String>,
    #[serde(default)]
    join_group: Option<String>,
    #[serde(default)]
    join_container: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLdap {
    listen: Vec<String>,
    ldaps_listen: Vec<String>,
    max_pdu: usize,
    max_connections: usize,
    max_ops_per_connection: usize,
    idle_timeout_secs: u64,
    write_timeout_secs: u64,
    size_limit: u32,
    time_limit_secs: u64,
    max_page_size: u32,
    anonymous_read: bool,
    max_concurrent_hashes: usize,
    cleartext_binds: String,
    max_paged_cursors: usize,
    bind_cache_ttl_secs: u64,
    cldap_listen: Option<Vec<String>>,
    gc_listen: Option<Vec<String>>,
    gc_ldaps_listen: Option<Vec<String>>,
}

impl Default for RawLdap {
    fn default() -> Self {
        RawLdap {
            listen: vec!["127.0.0.1:3389".into()],
            ldaps_listen: vec!["127.0.0.1:3636".into()],
            max_pdu: 1024 * 1024,
            max_connections: 4096,
            max_ops_per_connection: 64,
            idle_timeout_secs: 900,
            write_timeout_secs: 30,
            size_limit: 1000,
            time_limit_secs: 60,
            max_page_size: 1000,
            anonymous_read: false,
            max_concurrent_hashes: 0,
            cleartext_binds: "loopback".into(),
            max_paged_cursors: 10_000,
            bind_cache_ttl_secs: 60,
            cldap_listen: None,
            gc_listen: None,
            gc_ldaps_listen: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawKdc {
    listen: Vec<String>,
    kpasswd_listen: Vec<String>,
    ticket_lifetime_secs: u64,
    renew_lifetime_secs: u64,
    replay_cache_size: usize,
}

impl Default for RawKdc {
    fn default() -> Self {
        RawKdc {
            listen: vec!["127.0.0.1:8888".into()],
            kpasswd_listen: vec!["127.0.0.1:8464".into()],
            ticket_lifetime_secs: 10 * 3600,
            renew_lifetime_secs: 7 * 24 * 3600,
            replay_cache_size: 100_000,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    listen: Vec<String>,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            listen: vec!["127.0.0.1:9389".into()],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    path: Option<PathBuf>,
    #[serde(default)]
    tracing: bool,
    #[serde(default)]
    fail_closed: bool,
    #[serde(default = "default_audit_queue")]
    queue: usize,
}

fn default_audit_queue() -> usize {
    8192
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    dir: PathBuf,
    #[serde(default = "default_backup_interval")]
    interval_secs: u64,
    #[serde(default = "default_backup_keep")]
    keep: usize,
    #[serde(default)]
    include_master_key: bool,
}

fn default_backup_interval() -> u64 {
    86_400
}

fn default_backup_keep() -> usize {
    5
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
struct RawIndex {
    equality: Vec<String>,
    substring: Vec<String>,
    substring_defaults: Option<bool>,
}

fn default_mode() -> Mode {
    Mode::Standalone
}

fn default_tier() -> Tier {
    Tier::Enterprise
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

fn addrs(key: &str, list: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
    list.iter()
        .map(|s| {
            s.parse::<SocketAddr>().map_err(|_| {
                err(key, format!("`{s}` is not a socket address; write it as \"127.0.0.1:3389\" or \"[::1]:3389\""))
            })
        })
        .collect()
}

fn attr_names(key: &str, list: &[String]) -> Result<Vec<String>, ConfigError> {
    for a in list {
        let ok = !a.is_empty()
            && a.as_bytes()[0].is_ascii_alphabetic()
            && a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
        if !ok {
            return Err(err(
                key,
                format!("`{a}` is not an attribute name (letters, digits and '-')"),
            ));
        }
    }
    Ok(list.to_vec())
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let name = self
            .domain
            .name
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let labels: Vec<&str> = name.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(err(
                "domain.name",
                format!(
                    "`{}` is not a DNS domain name with at least two labels, e.g. \"example.com\"",
                    self.domain.name
                ),
            ));
        }
        let netbios = match self.domain.netbios {
            Some(n) => {
                if n.is_empty()
                    || n.len() > 15
                    || !n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                {
                    return Err(err("domain.netbios", "must be 1-15 letters, digits or '-'"));
                }
                n.to_ascii_uppercase()
            }
            None => labels[0]
                .chars()
                .take(15)
                .collect::<String>()
                .to_ascii_uppercase(),
        };
        let dc_hostname = match self.domain.dc_hostname {
            None => None,
            Some(h) => {
                let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
                let (short, parent) = h.split_once('.').unwrap_or((h.as_str(), ""));
                if !label_ok(&short) || short.len() > 15 || parent != name {
                    return Err(err(
                        "domain.dc_hostname",
                        format!(
                            "`{h}` must be a host name directly inside the domain, with a first label of \
                             at most 15 letters, digits or '-', e.g. \"dc1.{name}\""
                        ),
                    ));
                }
                Some(h)
            }
        };
        let base = Dn::from_domain(&name);
        // A DN inside the domain, for the join delegation keys.
        let inside = |key: &str, text: &str, example: &str| -> Result<Dn, ConfigError> {
            match Dn::parse(text.trim()) {
                Ok(dn) if dn.is_within(&base) && dn != base => Ok(dn),
                _ => Err(err(
                    key,
                    format!("`{text}` must be a DN inside the domain, e.g. \"{example},{base}\""),
                )),
            }
        };
        let join_group = match &self.domain.join_group {
            None => None,
            Some(g) => Some(inside(
                "domain.join_group",
                g,
                "cn=Computer Joiners,cn=Users",
            )?),
        };
        let join_container = match &self.domain.join_container {
            None => base.child(crate::model::dn::Rdn::new("cn", "Computers")),
            Some(c) => inside("domain.join_container", c, "cn=Computers")?,
        };
        let domain = Domain {
            base,
            realm: name.to_ascii_uppercase(),
            netbios,
            name,
            dc_hostname,
            join_group,
            join_container,
        };
        if self.data_dir.as_os_str().is_empty() {
            return Err(err(
                "data_dir",
                "must name a directory, e.g. \"/var/lib/dird\"",
            ));
        }
        let ldap = match self.ldap {
            None => None,
            Some(l) => {
                if l.max_pdu < 4096 || l.max_pdu > 256 * 1024 * 1024 {
                    return Err(err(
                        "ldap.max_pdu",
                        "must be between 4096 and 268435456 bytes (default 1048576)",
                    ));
                }
                if l.max_connections == 0 {
                    return Err(err("ldap.max_connections", "must be at least 1"));
                }
                if l.max_ops_per_connection == 0 {
                    return Err(err("ldap.max_ops_per_connection", "must be at least 1"));
                }
                if l.max_paged_cursors == 0 {
                    return Err(err("ldap.max_paged_cursors", "must be at least 1"));
                }
                if l.bind_cache_ttl_secs > 3600 {
                    return Err(err(
                        "ldap.bind_cache_ttl_secs",
                        "must be at most 3600 seconds (default 60; 0 turns the cache off)",
                    ));
                }
                if l.max_page_size == 0 {
                    return Err(err("ldap.max_page_size", "must be at least 1"));
                }
                if l.idle_timeout_secs == 0 || l.write_timeout_secs == 0 {
                    return Err(err(
                        "ldap.idle_timeout_secs",
                        "timeouts must be at least 1 second",
                    ));
                }
                let hashes = if l.max_concurrent_hashes == 0 {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(2)
                } else {
                    l.max_concurrent_hashes
                };
                let cleartext_binds = match l.cleartext_binds.as_str() {
                    "never" => CleartextBinds::Never,
                    "loopback" => CleartextBinds::Loopback,
                    "always" => CleartextBinds::Always,
                    other => {
                        return Err(err(
                            "ldap.cleartext_binds",
                            format!(
                                "`{other}` is not one of \"never\", \"loopback\" (the default) or \"always\""
                            ),
                        ))
                    }
                };
                let listen = addrs("ldap.listen", &l.listen)?;
                let ldaps_listen = addrs("ldap.ldaps_listen", &l.ldaps_listen)?;
                if listen.is_empty() && ldaps_listen.is_empty() {
                    return Err(err("ldap.listen", "give at least one address in ldap.listen or ldap.ldaps_listen, or remove [ldap]"));
                }
                for (key, list) in [
                    ("ldap.gc_listen", &l.gc_listen),
                    ("ldap.gc_ldaps_listen", &l.gc_ldaps_listen),
                ] {
                    for a in addrs(key, list.as_deref().unwrap_or_default())? {
                        if listen.contains(&a) || ldaps_listen.contains(&a) {
                            return Err(err(key, format!("{a} is also an ldap.listen/ldaps_listen address; the global catalog needs its own port (AD uses 3268, and 3269 with TLS)")));
                        }
                    }
                }
                Some(LdapConfig {
                    listen,
                    ldaps_listen,
                    max_pdu: l.max_pdu,
                    max_connections: l.max_connections,
                    max_ops_per_connection: l.max_ops_per_connection,
                    idle_timeout: Duration::from_secs(l.idle_timeout_secs),
                    write_timeout: Duration::from_secs(l.write_timeout_secs),
                    size_limit: l.size_limit,
                    time_limit: Duration::from_secs(l.time_limit_secs.max(1)),
                    max_page_size: l.max_page_size,
                    max_paged_cursors: l.max_paged_cursors,
                    anonymous_read: l.anonymous_read,
                    max_concurrent_hashes: hashes,
                    cleartext_binds,
                    bind_cache_ttl: Duration::from_secs(l.bind_cache_ttl_secs),
                    cldap_listen: match &l.cldap_listen {
                        None => None,
                        Some(list) => Some(addrs("ldap.cldap_listen", list)?),
                    },
                    gc_listen: match &l.gc_listen {
                        None => None,
                        Some(list) => Some(addrs("ldap.gc_listen", list)?),
                    },
                    gc_ldaps_listen: match &l.gc_ldaps_listen {
                        None => None,
                        Some(list) => Some(addrs("ldap.gc_ldaps_listen", list)?),
                    },
                })
            }
        };
        let tls = self.tls.map(|t| TlsFiles {
            cert: t.cert,
            key: t.key,
        });
        let kdc = match self.kdc {
            None => None,
            Some(k) => {
                if k.ticket_lifetime_secs < 60 {
                    return Err(err(
                        "kdc.ticket_lifetime_secs",
                        "must be at least 60 seconds (default 36000)",
                    ));
                }
                if k.renew_lifetime_secs < k.ticket_lifetime_secs {
                    return Err(err(
                        "kdc.renew_lifetime_secs",
                        "must not be shorter than kdc.ticket_lifetime_secs",
                    ));
                }
                if k.replay_cache_size == 0 {
                    return Err(err(
                        "kdc.replay_cache_size",
                        "must be at least 1 (default 100000)",
                    ));
                }
                Some(KdcSettings {
                    replay_cache_size: k.replay_cache_size,
                    listen: addrs("kdc.listen", &k.listen)?,
                    kpasswd_listen: addrs("kdc.kpasswd_listen", &k.kpasswd_listen)?,
                    ticket_lifetime: Duration::from_secs(k.ticket_lifetime_secs),
                    renew_lifetime: Duration::from_secs(k.renew_lifetime_secs),
                })
            }
        };
        let metrics = match self.metrics {
            None => None,
            Some(m) => Some(MetricsConfig {
                listen: addrs("metrics.listen", &m.listen)?,
            }),
        };
        let index = match self.index {
            None => IndexSettings::default(),
            Some(i) => IndexSettings {
                equality: attr_names("index.equality", &i.equality)?,
                substring: attr_names("index.substring", &i.substring)?,
                substring_defaults: i.substring_defaults.unwrap_or(true),
            },
        };
        let audit = match self.audit {
            None => None,
            Some(a) => {
                if a.path.is_none() && !a.tracing {
                    return Err(err(
                        "audit.path",
                        "give a file (path = \"/var/log/dird/audit.jsonl\") or set tracing = true",
                    ));
                }
                if a.queue == 0 {
                    return Err(err("audit.queue", "must be at least 1 (default 8192)"));
                }
                Some(AuditConfig {
                    path: a.path,
                    tracing: a.tracing,
                    fail_closed: a.fail_closed,
                    queue: a.queue,
                })
            }
        };
        let backup = match self.backup {
            None => None,
            Some(b) => {
                if b.interval_secs == 0 {
                    return Err(err(
                        "backup.interval_secs",
                        "must be at least 1 second (default 86400, daily)",
                    ));
                }
                if b.keep == 0 {
                    return Err(err("backup.keep", "must be at least 1 (default 5)"));
                }
                Some(BackupConfig {
                    dir: b.dir,
                    interval: Duration::from_secs(b.interval_secs),
                    keep: b.keep,
                    include_master_key: b.include_master_key,
                })
            }
        };
        let log_level = match self.log.and_then(|l| l.level) {
            None => None,
            Some(level) => {
                if let Err(e) = tracing_subscriber::EnvFilter::try_new(&level) {
                    return Err(err(
                        "log.level",
                        format!("`{level}` is not a log filter ({e}); write e.g. \"info\" or \"dird=debug,info\""),
                    ));
                }
                Some(level)
            }
        };
        let dns = match self.dns {
            None => None,
            Some(d) => {
                let listen = addrs("dns.listen", &d.listen)?;
                if listen.is_empty() {
                    return Err(err(
                        "dns.listen",
                        "give at least one address, e.g. [\"127.0.0.1:53\"], or remove [dns]",
                    ));
                }
                let addresses = d
                    .addresses
                    .iter()
                    .map(|a| {
                        a.parse::<std::net::IpAddr>().map_err(|_| {
                            err(
                                "dns.addresses",
                                format!("`{a}` is not an IP address; write it as \"192.0.2.10\""),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(DnsConfig { listen, addresses })
            }
        };
        let p = self.posix.unwrap_or_default();
        // 0 is root's id, and ids above 2^32-2 do not fit uid_t (4294967295 is (uid_t)-1).
        for (key, min, max) in [
            ("posix.uid_min", p.uid_min, p.uid_max),
            ("posix.gid_min", p.gid_min, p.gid_max),
        ] {
            if min == 0 || min > max || max > 4_294_967_294 {
                return Err(err(
                    key,
                    "need 1 <= min <= max <= 4294967294 (defaults 10000 and 1999999999)",
                ));
            }
        }
        let posix = PosixRanges {
            uid_min: p.uid_min,
            uid_max: p.uid_max,
            gid_min: p.gid_min,
            gid_max: p.gid_max,
        };
        let trusts = validate_trusts(self.mode, &domain.realm, self.trust)?;
        if self.mode == Mode::Trust && kdc.is_none() {
            return Err(err("kdc", "mode = \"trust\" needs a [kdc] section"));
        }
        let connector = match (self.mode, self.connector) {
            (Mode::Connector, Some(c)) => Some(c.validate(self.tier)?),
            (Mode::Connector, None) => return Err(err(
                "connector",
                "mode = \"connector\" needs a [connector] section naming the upstreams and ca_file",
            )),
            (_, Some(_)) => {
                return Err(err(
                    "connector",
                    "[connector] only applies with mode = \"connector\"; remove it or set the mode",
                ))
            }
            (_, None) => None,
        };
        let mfa = self.mfa.map(RawMfa::validate).transpose()?;
        // In connector mode, who needs MFA (groups with nesting, exempt) and the RADIUS
        // User-Name (sAMAccountName) are looked up through the service account before the
        // upstream bind; without one MFA could not be applied.
        if let (Some(m), Some(c)) = (&mfa, &connector) {
            if c.service_account.is_none() {
                let rule = if m.everyone {
                    "mfa.everyone"
                } else {
                    "mfa.groups"
                };
                return Err(err(
                    "connector.service_account",
                    format!(
                        "[mfa] ({rule}) in connector mode needs connector.service_account and connector.service_password_file: \
                         dird looks up each user's groups and sAMAccountName with it before the upstream bind"
                    ),
                ));
            }
        }
        let cluster = self
            .cluster
            .map(|c| c.validate(self.mode, &domain.name))
            .transpose()?;
        Ok(Config {
            mode: self.mode,
            tier: self.tier,
            data_dir: self.data_dir,
            domain,
            ldap,
            tls,
            kdc,
            metrics,
            audit,
            backup,
            log_level,
            schema_dir: self.schema.map(|s| s.dir),
            index,
            posix,
            mfa,
            trusts,
            connector,
            dns,
            cluster,
        })
    }
}

/// Finds the dotted key for a byte offset in the TOML text (section + key on that line).
fn key_at(text: &str, offset: usize) -> String {
    let mut section = String::new();
    let mut key = String::new();
    let mut pos = 0;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') && !t.starts_with("[[") {
            section = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            key.clear();
        } else if let Some((k, _)) = t.split_once('=') {
            key = k.trim().to_string();
        }
        pos += line.len() + 1;
        if pos > offset {
            break;
        }
    }
    match (section.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => section,
        (false, false) => format!("{section}.{key}"),
    }
}

/// `[mfa]`: RADIUS-checked one-time codes (issue 11).
#[derive(Clone, Debug)]
pub struct MfaConfig {
    /// RADIUS servers, tried in order
    pub servers: Vec<RadiusServerConfig>,
    /// replies without a Message-Authenticator are dropped (RFC 3579 §3.2; BlastRADIUS)
    pub require_message_authenticator: bool,
    /// wait per try
    pub timeout: Duration,
    /// further tries per server, then the next server
    pub retries: u32,
    /// members of these groups (nested) need MFA
    pub groups: Vec<Dn>,
    /// every account needs MFA (except `exempt`)
    pub everyone: bool,
    /// accounts (or groups of accounts) that never need MFA: service accounts
    pub exempt: Vec<Dn>,
    /// digits of a code
    pub otp_length: usize,
    /// typed between the password and the code ("" : none)
    pub separator: String,
    /// an accepted code is refused again for this long (replay window)
    pub replay_window: Duration,
    /// RADIUS exchanges in flight at once; beyond it MFA binds are refused as unavailable
    pub max_pending: usize,
    /// NAS-Identifier sent to the RADIUS servers
    pub nas_identifier: String,
}

/// One `[[mfa.servers]]` entry.
#[derive(Clone, Debug)]
pub struct RadiusServerConfig {
    /// UDP address of the server
    pub address: SocketAddr,
    /// file holding the shared secret (mode 0600)
    pub secret_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRadiusServer {
    address: String,
    secret_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMfa {
    servers: Vec<RawRadiusServer>,
    require_message_authenticator: bool,
    timeout_ms: u64,
    retries: u32,
    groups: Vec<String>,
    everyone: bool,
    exempt: Vec<String>,
    otp_length: usize,
    separator: String,
    replay_window_secs: u64,
    max_pending: usize,
    nas_identifier: String,
}

impl Default for RawMfa {
    fn default() -> Self {
        RawMfa {
            servers: Vec::new(),
            require_message_authenticator: true,
            timeout_ms: 2000,
            retries: 2,
            groups: Vec::new(),
            everyone: false,
            exempt: Vec::new(),
            otp_length: 6,
            separator: String::new(),
            replay_window_secs: 120,
            max_pending: 256,
            nas_identifier: "dird".into(),
        }
    }
}

impl RawMfa {
    fn validate(self) -> Result<MfaConfig, ConfigError> {
        if self.servers.is_empty() {
            return Err(err(
                "mfa.servers",
                "give at least one server, e.g. servers = [{ address = \"127.0.0.1:1812\", secret_file = \"/etc/dird/radius.secret\" }], or remove [mfa]",
            ));
        }
        let mut servers = Vec::with_capacity(self.servers.len());
        for (i, s) in self.servers.into_iter().enumerate() {
            let address = s.address.parse::<SocketAddr>().map_err(|_| {
                err(
                    &format!("mfa.servers[{i}].address"),
                    format!(
                        "`{}` is not an IP address and port, e.g. \"127.0.0.1:1812\"",
                        s.address
                    ),
                )
            })?;
            if s.secret_file.as_os_str().is_empty() {
                return Err(err(
                    &format!("mfa.servers[{i}].secret_file"),
                    "must name a file (mode 0600) holding the shared secret",
                ));
            }
            servers.push(RadiusServerConfig {
                address,
                secret_file: s.secret_file,
            });
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            return Err(err(
                "mfa.timeout_ms",
                "must be between 100 and 60000 milliseconds (default 2000)",
            ));
        }
        if self.retries > 10 {
            return Err(err("mfa.retries", "must be at most 10 (default 2)"));
        }
        if self.groups.is_empty() && !self.everyone {
            return Err(err(
                "mfa.groups",
                "name the groups whose members need MFA, or set everyone = true",
            ));
        }
        let dns = |key: &str, list: &[String]| -> Result<Vec<Dn>, ConfigError> {
            list.iter()
                .map(|d| {
                    Dn::parse(d).map_err(|_| {
                        err(key, format!("`{d}` is not a DN, e.g. \"cn=MFA Users,cn=Users,dc=example,dc=com\""))
                    })
                })
                .collect()
        };
        let groups = dns("mfa.groups", &self.groups)?;
        let exempt = dns("mfa.exempt", &self.exempt)?;
        if !(4..=10).contains(&self.otp_length) {
            return Err(err(
                "mfa.otp_length",
                "must be between 4 and 10 digits (default 6)",
            ));
        }
        if self.separator.len() > 8 {
            return Err(err(
                "mfa.separator",
                "must be at most 8 characters (default \"\": none)",
            ));
        }
        if !(1..=3600).contains(&self.replay_window_secs) {
            return Err(err(
                "mfa.replay_window_secs",
                "must be between 1 and 3600 seconds (default 120)",
            ));
        }
        if self.max_pending == 0 {
            return Err(err("mfa.max_pending", "must be at least 1 (default 256)"));
        }
        if self.nas_identifier.is_empty() || self.nas_identifier.len() > 253 {
            return Err(err(
                "mfa.nas_identifier",
                "must be 1 to 253 characters (default \"dird\")",
            ));
        }
        Ok(MfaConfig {
            servers,
            require_message_authenticator: self.require_message_authenticator,
            timeout: Duration::from_millis(self.timeout_ms),
            retries: self.retries,
            groups,
            everyone: self.everyone,
            exempt,
            otp_length: self.otp_length,
            separator: self.separator,
            replay_window: Duration::from_secs(self.replay_window_secs),
            max_pending: self.max_pending,
            nas_identifier: self.nas_identifier,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
mode = "standalone"
tier = "small"
data_dir = "/tmp/x"
[domain]
name = "Example.COM"
[ldap]
listen = ["127.0.0.1:3389"]
ldaps_listen = []
"#;

    fn connector(body: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!(
            "mode = \"connector\"\ndata_dir = \"/tmp/x\"\n[domain]\nname = \"corp.example.com\"\n{body}"
        ))
    }

    #[test]
    fn cluster_section_is_validated() {
        let parse = |body: &str| Config::parse(&format!("{GOOD}[cluster]\n{body}"));
        let c = parse(
            "etcd = [\"http://10.0.0.1:2379\", \"http://10.0.0.2:2379/\"]\nnode_name = \"dc1\"",
        )
        .unwrap()
        .cluster
        .unwrap();
        assert_eq!(c.prefix, "/dird/example.com");
        assert_eq!(c.max_staleness, std::time::Duration::from_secs(30));
        assert!(Config::parse(GOOD).unwrap().cluster.is_none());
        for (body, key) in [
            ("etcd = []\nnode_name = \"dc1\"", "cluster.etcd"),
            (
                "etcd = [\"10.0.0.1:2379\"]\nnode_name = \"dc1\"",
                "cluster.etcd",
            ),
            (
                "etcd = [\"https://a:2379\"]\nnode_name = \"dc1\"",
                "cluster.tls",
            ),
            (
                "etcd = [\"http://a:2379\"]\nnode_name = \"dc 1\"",
                "cluster.node_name",
            ),
            (
                "etcd = [\"http://a:2379\"]\nnode_name = \"dc1\"\nprefix = \"dird\"",
                "cluster.prefix",
            ),
            (
                "etcd = [\"http://a:2379\"]\nnode_name = \"dc1\"\nmax_staleness_secs = 0",
                "cluster.max_staleness_secs",
            ),
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.key, key, "{body}: {e}");
        }
    }

    #[test]
    fn connector_section_is_validated() {
        let ca = std::env::temp_dir().join("dird-config-test-ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let ca = ca.display().to_string();
        let c = connector(&format!(
            "[connector]\nupstreams = [\"ldaps://dc1.corp.example.com\", \"ldap://[::1]:3389\"]\nca_file = \"{ca}\"\nconnect_timeout_ms = 500"
        ))
        .unwrap();
        let k = c.connector.unwrap();
        // The tier (enterprise by default) sizes the caps.
        assert_eq!(
            (k.max_sessions, k.max_upstream_connections),
            (5_000, 10_000)
        );
        assert_eq!(k.upstreams[0].port, 636);
        assert!(k.upstreams[0].ldaps);
        assert_eq!(
            (k.upstreams[1].host.as_str(), k.upstreams[1].port),
            ("::1", 3389)
        );
        assert_eq!(k.connect_timeout, Duration::from_millis(500));
        assert_eq!(k.kdcs, vec!["dc1.corp.example.com:88", "[::1]:88"]);
        assert_eq!(k.kpasswds, vec!["dc1.corp.example.com:464", "[::1]:464"]);
        // No upstreams: DNS SRV discovery, through dns_servers (port 53 by default).
        let d = connector(&format!(
            "[connector]\nca_file = \"{ca}\"\ndns_servers = [\"127.0.0.1\", \"[::1]:5353\"]"
        ))
        .unwrap()
        .connector
        .unwrap();
        assert!(d.upstreams.is_empty() && d.kdcs.is_empty());
        assert_eq!(
            d.dns_servers,
            vec![
                "127.0.0.1:53".parse::<std::net::SocketAddr>().unwrap(),
                "[::1]:5353".parse().unwrap()
            ]
        );
        for (body, key) in [
            ("", "connector"),
            ("[connector]\nupstreams = []", "connector.upstreams"),
            (
                "[connector]\ndns_servers = [\"dns1\"]",
                "connector.dns_servers",
            ),
            (
                "[connector]\nupstreams = [\"ldaps://dc1\"]\ndns_servers = [\"10.0.0.1\"]",
                "connector.dns_servers",
            ),
            (
                "[connector]\nupstreams = [\"http://dc1\"]",
                "connector.upstreams",
            ),
            (
                "[connector]\nupstreams = [\"ldaps://dc1:0\"]",
                "connector.upstreams",
            ),
            (
                "[connector]\nupstreams = [\"ldaps://dc1\"]",
                "connector.ca_file",
            ),
            (
                "[connector]\nupstreams = [\"ldaps://dc1\"]\nca_file = \"/nonexistent/ca.pem\"",
                "connector.ca_file",
            ),
        ] {
            let e = connector(body).unwrap_err();
            assert_eq!(e.key, key, "{body}: {e}");
        }
        for (extra, key) in [
            (
                "starttls = false\nupstreams = [\"ldap://dc1\"]",
                "connector.starttls",
            ),
            (
                "upstreams = [\"ldaps://dc1\"]\nsearch_as = \"admin\"",
                "connector.search_as",
            ),
            (
                "upstreams = [\"ldaps://dc1\"]\nsearch_as = \"service\"",
                "connector.service_account",
            ),
            (
                "upstreams = [\"ldaps://dc1\"]\nconnect_timeout_ms = 0",
                "connector.connect_timeout_ms",
            ),
            (
                "upstreams = [\"ldaps://dc1\"]\nmax_sessions = 5001",
                "connector.max_sessions",
            ),
            (
                "upstreams = [\"ldaps://dc1\"]\nmax_upstream_connections = 0",
                "connector.max_upstream_connections",
            ),
            (
                "upstreams = [\"ldaps://dc1\"]\nkdcs = [\"dc1\"]",
                "connector.kdcs",
            ),
            (
                "upstreams = [\"ldaps://dc1\"]\nservice_account = \"svc\"",
                "connector.service_password_file",
            ),
            (
                "upstreams = [\"ldaps://dc1\"]\n[connector.cache]\nttl_secs = 0",
                "connector.cache.ttl_secs",
            ),
        ] {
            let e = connector(&format!("[connector]\nca_file = \"{ca}\"\n{extra}")).unwrap_err();
            assert_eq!(e.key, key, "{extra}: {e}");
        }
        let e = Config::parse(&format!(
            "data_dir = \"/tmp/x\"\n[domain]\nname = \"a.com\"\n[connector]\nupstreams = [\"ldaps://dc1\"]\nca_file = \"{ca}\""
        ))
        .unwrap_err();
        assert_eq!(e.key, "connector");
        // [mfa] in connector mode needs the service account (groups and sAMAccountName).
        let mfa = "[mfa]\nservers = [{ address = \"127.0.0.1:1812\", secret_file = \"/etc/s\" }]\ngroups = [\"cn=MFA,dc=corp\"]\n";
        let e = connector(&format!(
            "[connector]\nca_file = \"{ca}\"\nupstreams = [\"ldaps://dc1\"]\n{mfa}"
        ))
        .unwrap_err();
        assert_eq!(e.key, "connector.service_account", "{e}");
        assert!(
            e.to_string().contains("mfa.groups") && e.to_string().contains("service_password_file"),
            "{e}"
        );
        let ok = connector(&format!(
            "[connector]\nca_file = \"{ca}\"\nupstreams = [\"ldaps://dc1\"]\nservice_account = \"svc\"\nservice_password_file = \"{ca}\"\n{mfa}"
        ));
        assert!(ok.is_ok_and(|c| c.mfa.is_some()));
    }

    #[test]
    fn mfa_section_parses_and_bad_values_name_the_field() {
        let ok = format!(
            "{GOOD}[mfa]\nservers = [{{ address = \"127.0.0.1:1812\", secret_file = \"/etc/s\" }}]\n\
             groups = [\"cn=MFA Users,cn=Users,dc=example,dc=com\"]\nseparator = \",\"\n"
        );
        let m = Config::parse(&ok).unwrap().mfa.unwrap();
        assert_eq!(m.servers[0].address.port(), 1812);
        assert!(m.require_message_authenticator);
        assert_eq!(
            (m.timeout, m.retries, m.otp_length),
            (Duration::from_secs(2), 2, 6)
        );
        assert_eq!(m.separator, ",");
        assert!(Config::parse(GOOD).unwrap().mfa.is_none());
        for (bad, key) in [
            ("servers = []\neveryone = true", "mfa.servers"),
            ("servers = [{ address = \"nohost\", secret_file = \"/s\" }]\neveryone = true", "mfa.servers[0].address"),
            ("servers = [{ address = \"127.0.0.1:1812\", secret_file = \"/s\" }]", "mfa.groups"),
            ("servers = [{ address = \"127.0.0.1:1812\", secret_file = \"/s\" }]\ngroups = [\"not a dn\"]", "mfa.groups"),
            ("servers = [{ address = \"127.0.0.1:1812\", secret_file = \"/s\" }]\neveryone = true\ntimeout_ms = 5", "mfa.timeout_ms"),
            ("servers = [{ address = \"127.0.0.1:1812\", secret_file = \"/s\" }]\neveryone = true\notp_length = 2", "mfa.otp_length"),
            ("servers = [{ address = \"127.0.0.1:1812\", secret_file = \"/s\" }]\neveryone = true\nretries = 99", "mfa.retries"),
        ] {
            let e = Config::parse(&format!("{GOOD}[mfa]\n{bad}\n")).unwrap_err();
            assert_eq!(e.key, key, "{bad}: {e}");
        }
    }

    #[test]
    fn parses_a_good_file() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.domain.realm, "EXAMPLE.COM");
        assert_eq!(c.domain.netbios, "EXAMPLE");
        assert_eq!(c.domain.base.norm(), "dc=example,dc=com");
        assert_eq!(c.tier, Tier::Small);
        assert!(c.kdc.is_none());
        assert_eq!(c.ldap.unwrap().max_pdu, 1024 * 1024);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::parse(&GOOD.replace("127.0.0.1:3389", "nonsense")).unwrap_err();
        assert_eq!(e.key, "ldap.listen");
        let e = Config::parse(&GOOD.replace("\"small\"", "\"huge\"")).unwrap_err();
        assert_eq!(e.key, "tier", "{e}");
        let e = Config::parse(&GOOD.replace("Example.COM", "nodots")).unwrap_err();
        assert_eq!(e.key, "domain.name");
        let e = Config::parse(&format!("{GOOD}\nbogus = 1\n")).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn index_substring_defaults_narrow_the_trigram_indexes() {
        // GOOD ends inside [ldap]; [index] follows.
        let text = format!("{GOOD}[index]\nsubstring_defaults = false\nsubstring = [\"cn\"]\n");
        let c = Config::parse(&text).unwrap();
        assert!(!c.index.substring_defaults);
        let index = crate::daemon::index_config(&c);
        assert_eq!(index.substring, vec!["cn".to_string()]);
        // Equality and presence indexes (uniqueness checks, sssd lookups) are not narrowed.
        assert_eq!(
            index.equality,
            crate::store::IndexConfig::default_attrs().equality
        );
        let c = Config::parse(GOOD).unwrap();
        assert!(c.index.substring_defaults);
        assert_eq!(
            crate::daemon::index_config(&c).substring,
            crate::store::IndexConfig::default_attrs().substring
        );
        for bad in ["\"no\"", "0", "[]"] {
            let text = format!("{GOOD}[index]\nsubstring_defaults = {bad}\n");
            let e = Config::parse(&text).unwrap_err();
            assert_eq!(e.key, "index.substring_defaults", "{bad}: {e}");
        }
    }

    #[test]
    fn domain_controller_keys_parse_and_validate() {
        let dc = GOOD.replace(
            "name = \"Example.COM\"",
            "name = \"Example.COM\"\ndc_hostname = \"DC1.example.com.\"",
        );
        // GOOD ends inside [ldap]: cldap_listen belongs there.
        let text =
            format!("{dc}cldap_listen = [\"127.0.0.1:389\"]\n[dns]\nlisten = [\"127.0.0.1:53\"]\n");
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.domain.dc_hostname.as_deref(), Some("dc1.example.com"));
        let ldap = c.ldap.unwrap();
        assert_eq!(ldap.cldap_listen.unwrap().len(), 1);
        let dns = c.dns.unwrap();
        assert_eq!((dns.listen.len(), dns.addresses.len()), (1, 0));
        assert!(Config::parse(GOOD).unwrap().dns.is_none());
        for bad in [
            "dc1.other.org",
            "dc1",
            "waytoolongforanetbiosname.example.com",
        ] {
            let e = Config::parse(&dc.replace("DC1.example.com.", bad)).unwrap_err();
            assert_eq!(e.key, "domain.dc_hostname", "{bad}: {e}");
        }
        let e = Config::parse(&format!("{GOOD}[dns]\nlisten = []\n")).unwrap_err();
        assert_eq!(e.key, "dns.listen");
        // Join delegation: DNs inside the domain; the container defaults to cn=Computers.
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.domain.join_group, None);
        assert_eq!(
            c.domain.join_container.to_string(),
            "cn=Computers,dc=example,dc=com"
        );
        let join = GOOD.replace(
            "name = \"Example.COM\"",
            "name = \"Example.COM\"\njoin_group = \"cn=Joiners,cn=Users,dc=example,dc=com\"\n\
             join_container = \"ou=Linux,dc=example,dc=com\"",
        );
        let c = Config::parse(&join).unwrap();
        assert_eq!(
            c.domain.join_group.unwrap().to_string(),
            "cn=Joiners,cn=Users,dc=example,dc=com"
        );
        assert_eq!(
            c.domain.join_container.to_string(),
            "ou=Linux,dc=example,dc=com"
        );
        for (key, bad) in [
            ("domain.join_group", "cn=Joiners,dc=other,dc=org"),
            ("domain.join_container", "not a dn"),
            ("domain.join_container", "dc=example,dc=com"),
        ] {
            let field = key.trim_start_matches("domain.");
            let text = GOOD.replace(
                "name = \"Example.COM\"",
                &format!("name = \"Example.COM\"\n{field} = \"{bad}\""),
            );
            let e = Config::parse(&text).unwrap_err();
            assert_eq!(e.key, key, "{bad}: {e}");
        }
        let e = Config::parse(&format!(
            "{GOOD}[dns]\nlisten = [\"127.0.0.1:53\"]\naddresses = [\"x\"]\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "dns.addresses");
    }

    #[test]
    fn global_catalog_keys_parse_and_validate() {
        // GOOD ends inside [ldap].
        let c = Config::parse(GOOD).unwrap().ldap.unwrap();
        assert!(c.gc_listen.is_none() && c.gc_ldaps_listen.is_none());
        let text = format!("{GOOD}gc_listen = [\"127.0.0.1:3268\"]\ngc_ldaps_listen = []\n");
        let c = Config::parse(&text).unwrap().ldap.unwrap();
        assert_eq!(c.gc_listen.unwrap().len(), 1);
        assert_eq!(c.gc_ldaps_listen.unwrap().len(), 0);
        for (bad, key) in [
            ("gc_listen = [\"x\"]", "ldap.gc_listen"),
            ("gc_listen = [\"127.0.0.1:3389\"]", "ldap.gc_listen"),
            (
                "gc_ldaps_listen = [\"127.0.0.1:3389\"]",
                "ldap.gc_ldaps_listen",
            ),
        ] {
            let e = Config::parse(&format!("{GOOD}{bad}\n")).unwrap_err();
            assert_eq!(e.key, key, "{bad}: {e}");
        }
    }

    #[test]
    fn ops_sections_parse_and_validate() {
        let text = format!(
            "{GOOD}[audit]\npath = \"/var/log/dird/audit.jsonl\"\nfail_closed = true\n\
             [backup]\ndir = \"/var/backups/dird\"\n[log]\nlevel = \"warn,audit=info\"\n"
        );
        let c = Config::parse(&text).unwrap();
        let a = c.audit.unwrap();
        assert!(a.fail_closed && !a.tracing && a.queue == 8192);
        let b = c.backup.unwrap();
        assert_eq!((b.interval.as_secs(), b.keep), (86_400, 5));
        assert_eq!(c.log_level.as_deref(), Some("warn,audit=info"));
        let e = Config::parse(&format!("{GOOD}[audit]\nfail_closed = true\n")).unwrap_err();
        assert_eq!(e.key, "audit.path");
        let e = Config::parse(&format!("{GOOD}[backup]\ndir = \"/x\"\nkeep = 0\n")).unwrap_err();
        assert_eq!(e.key, "backup.keep");
        let e = Config::parse(&format!("{GOOD}[log]\nlevel = \"=,=[\"\n")).unwrap_err();
        assert_eq!(e.key, "log.level", "{e}");
    }

    #[test]
    fn the_trust_example_config_is_valid() {
        let c = Config::parse(include_str!("../deploy/trust.toml")).unwrap();
        assert_eq!(c.mode, Mode::Trust);
        assert_eq!(c.trusts[0].realm, "OTHER.COM");
    }

    #[test]
    fn trust_tables_parse_and_validate() {
        let base = GOOD.replace("mode = \"standalone\"", "mode = \"trust\"");
        let trust = |lines: &str| {
            format!(
                "{base}[kdc]\n[[trust]]\nrealm = \"other.com\"\ndirection = \"both\"\n\
                 password_file = \"/etc/dird/trust.pw\"\n{lines}\n"
            )
        };
        let c = Config::parse(&trust(
            "allowed = [\"bob@OTHER.COM\", \"group:cn=Ops,cn=Users,dc=example,dc=com\"]\n\
             transited = [\"sub.other.com\"]\noverlap_secs = 60",
        ))
        .unwrap();
        assert_eq!(c.mode, Mode::Trust);
        let t = &c.trusts[0];
        assert_eq!((t.realm.as_str(), t.kvno), ("OTHER.COM", 1));
        assert_eq!(t.direction, TrustDirection::Both);
        assert_eq!(t.overlap, Duration::from_secs(60));
        assert_eq!(t.transited, vec!["SUB.OTHER.COM".to_string()]);
        let allowed = t.allowed.as_ref().unwrap();
        assert_eq!(allowed[0], TrustAllowed::Principal("bob@OTHER.COM".into()));
        assert!(matches!(&allowed[1], TrustAllowed::Group(dn) if dn.norm().starts_with("cn=ops")));
        // Defaults: kvno 1, a week of overlap, no selective authentication.
        let c = Config::parse(&trust("ldap = { url = \"ldaps://ldap.other.com/\" }")).unwrap();
        let l = c.trusts[0].ldap.as_ref().unwrap();
        assert_eq!(l.url, "ldaps://ldap.other.com");
        assert_eq!(l.base.norm(), "dc=other,dc=com");
        let c = Config::parse(&trust("")).unwrap();
        assert_eq!(c.trusts[0].overlap, Duration::from_secs(604_800));
        assert!(c.trusts[0].allowed.is_none());
        for (lines, key) in [
            ("kvno = 0", "trust[0].kvno"),
            ("allowed = [\"bob\"]", "trust[0].allowed"),
            ("allowed = [\"group:not a dn\"]", "trust[0].allowed"),
            ("kdc = [\"host:port\"]", "trust[0].kdc"),
            ("ldap = { url = \"http://x\" }", "trust[0].ldap.url"),
            ("ldap = { url = \"ldaps://\" }", "trust[0].ldap.url"),
            (
                "ldap = { url = \"ldaps://x\", base = \"not a dn\" }",
                "trust[0].ldap.base",
            ),
            (
                "ldap = { url = \"ldaps://x\", bind_dn = \"cn=r,dc=other,dc=com\" }",
                "trust[0].ldap.bind_dn",
            ),
            ("transited = [\"bad realm\"]", "trust[0].transited"),
        ] {
            let e = Config::parse(&trust(lines)).unwrap_err();
            assert_eq!(e.key, key, "{lines}: {e}");
        }
        let e = Config::parse(&trust("").replace("\"both\"", "\"sideways\"")).unwrap_err();
        assert_eq!(e.key, "trust[0].direction");
        let e = Config::parse(&trust("").replace("other.com", "example.com")).unwrap_err();
        assert_eq!(e.key, "trust[0].realm");
        // [[trust]] needs mode = "trust", and mode = "trust" needs a trust and a KDC.
        let e = Config::parse(&trust("").replace("mode = \"trust\"", "mode = \"standalone\""))
            .unwrap_err();
        assert_eq!(e.key, "trust");
        let e = Config::parse(&format!("{base}[kdc]\n")).unwrap_err();
        assert_eq!(e.key, "trust");
        let e = Config::parse(&trust("").replace("[kdc]\n", "")).unwrap_err();
        assert_eq!(e.key, "kdc");
    }

    #[test]
    fn posix_ranges() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!((c.posix.uid_min, c.posix.gid_max), (10_000, 1_999_999_999));
        let c = Config::parse(&format!("{GOOD}[posix]\nuid_min = 5000\n")).unwrap();
        assert_eq!((c.posix.uid_min, c.posix.gid_min), (5000, 10_000));
        let e = Config::parse(&format!("{GOOD}[posix]\nuid_min = 0\n")).unwrap_err();
        assert_eq!(e.key, "posix.uid_min");
        let e = Config::parse(&format!("{GOOD}[posix]\ngid_min = 9\ngid_max = 8\n")).unwrap_err();
        assert_eq!(e.key, "posix.gid_min");
    }

    #[test]
    fn cleartext_binds_setting_and_decision() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.ldap.unwrap().cleartext_binds, CleartextBinds::Loopback);
        let with = |v: &str| {
            GOOD.replace(
                "ldaps_listen = []",
                &format!("ldaps_listen = []\ncleartext_binds = \"{v}\""),
            )
        };
        assert_eq!(
            Config::parse(&with("never"))
                .unwrap()
                .ldap
                .unwrap()
                .cleartext_binds,
            CleartextBinds::Never
        );
        let e = Config::parse(&with("sometimes")).unwrap_err();
        assert_eq!(e.key, "ldap.cleartext_binds");
        assert!(
            e.message.contains("\"never\", \"loopback\""),
            "{}",
            e.message
        );
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        for (mode, peer, allowed) in [
            (CleartextBinds::Loopback, "127.0.0.1", true),
            (CleartextBinds::Loopback, "127.5.6.7", true),
            (CleartextBinds::Loopback, "::1", true),
            (CleartextBinds::Loopback, "::ffff:127.0.0.1", true),
            (CleartextBinds::Loopback, "192.0.2.10", false),
            (CleartextBinds::Loopback, "::ffff:192.0.2.10", false),
            (CleartextBinds::Loopback, "2001:db8::1", false),
            (CleartextBinds::Never, "127.0.0.1", false),
            (CleartextBinds::Always, "192.0.2.10", true),
        ] {
            assert_eq!(mode.allows(ip(peer)), allowed, "{mode:?} {peer}");
        }
    }

    #[test]
    fn demo_is_valid() {
        let c = Config::demo();
        assert!(c.kdc.is_some() && c.metrics.is_some() && c.ldap.is_some());
    }
}
