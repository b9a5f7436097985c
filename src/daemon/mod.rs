//! Composition root and process lifecycle: open the store, build the backend for the mode,
//! build the directory, start the listeners, stop on shutdown.
//! May import: everything. Invariant: the only place that reads the clock for the process
//! and decides which backend serves.

pub mod backup;
pub mod control;
pub mod files;
pub mod http;
pub mod listener;
pub mod master_key;
pub mod principals;
pub mod provision;
pub mod reload;
pub mod rlimit;
pub mod services;
pub mod tls;
pub mod trust;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::backend::local::{IdRanges, Local, ObjectLimits};
use crate::config::Config;
use crate::directory::secrets::MasterKey;
use crate::directory::{Directory, DomainInfo, ReadPolicy, SearchLimits};
use crate::ldap::{ConnLimits, Shared, TlsSource};
use crate::model::Schema;
use crate::store::{IndexConfig, Store};

/// The database file inside `data_dir`.
pub const DB_FILE: &str = "dird.redb";

/// An opened standalone instance (store + backend), before any listener starts.
pub struct Opened {
    /// the schema in force
    pub schema: Arc<Schema>,
    /// the store
    pub store: Store,
    /// the standalone backend
    pub local: Local,
    /// the domain
    pub domain: DomainInfo,
    /// the master key sealing Kerberos keys
    pub master: Arc<MasterKey>,
    /// this node's membership of its cluster (`dird serve` with `[cluster]`)
    pub cluster: Option<crate::cluster::Attached>,
}

/// Loads the built-in schema plus the operator's `[schema] dir` files (sorted by name).
pub fn load_schema(config: &Config) -> anyhow::Result<Schema> {
    let mut extra: Vec<(String, String)> = Vec::new();
    if let Some(dir) = &config.schema_dir {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("schema.dir: cannot read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "ldif"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("schema.dir: cannot read {}", f.display()))?;
            extra.push((f.display().to_string(), text));
        }
    }
    let mut sources: Vec<(&str, &str)> = crate::model::schema::BUILTIN_SOURCES.to_vec();
    sources.extend(extra.iter().map(|(a, b)| (a.as_str(), b.as_str())));
    let schema = Schema::from_sources(&sources).map_err(|e| anyhow::anyhow!("schema: {e}"))?;
    Ok(schema)
}

/// The index configuration of an instance: the defaults plus the config's `[index]` lists.
/// `substring_defaults = false` drops the built-in substring (trigram) indexes, keeping only
/// the configured ones: substring filters on the others are answered from the equality index
/// (an `initial` piece) or by a scan, with the same results.
pub fn index_config(config: &Config) -> IndexConfig {
    let mut index = IndexConfig::default_attrs();
    if !config.index.substring_defaults {
        index.substring.clear();
    }
    index.equality.extend(config.index.equality.iter().cloned());
    index.presence.extend(config.index.equality.iter().cloned());
    index
        .substring
        .extend(config.index.substring.iter().cloned());
    index
}

/// This host's DNS name inside the domain, for dnsHostName and certificates.
pub fn host_name(domain: &str) -> String {
    let short = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| {
            s.trim()
                .split('.')
                .next()
                .unwrap_or("dc1")
                .to_ascii_lowercase()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "dc1".into());
    format!("{short}.{domain}")
}

/// How `open_with` treats a node's store when the config has `[cluster]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterRole {
    /// an offline command: the replica may be read, writes are refused (they would reach
    /// this node's replica only)
    Offline,
    /// `dird serve`: catch up with etcd, then replicate every write (needs a tokio runtime:
    /// call from its blocking pool)
    Attach,
    /// `dird cluster init`/`join`: the local file as it is, written directly
    Seed,
}

/// Opens (creating if needed) the store and backend of a standalone instance. With
/// `provision`, an empty store gets the DIT; the generated admin password is returned.
/// A cluster node's store is opened read-only (`ClusterRole::Offline`).
pub fn open(
    config: &Config,
    provision_if_empty: bool,
) -> anyhow::Result<(Opened, Option<provision::Provisioned>)> {
    open_with(config, provision_if_empty, ClusterRole::Offline)
}

/// `open` with the cluster role of the caller.
pub fn open_with(
    config: &Config,
    provision_if_empty: bool,
    role: ClusterRole,
) -> anyhow::Result<(Opened, Option<provision::Provisioned>)> {
    files::private_dir(&config.data_dir)
        .with_context(|| format!("data_dir: cannot create {}", config.data_dir.display()))?;
    let master = Arc::new(master_key::load_or_create(&config.data_dir)?);
    let schema = Arc::new(load_schema(config)?);
    let index = index_config(config);
    let path = config.data_dir.join(DB_FILE);
    let store = Store::open(&path, schema.clone(), index)
        .with_context(|| format!("opening {}", path.display()))?;
    files::tighten(&path, 0o600).with_context(|| format!("chmod {}", path.display()))?;
    let mut attached = None;
    if let Some(cluster) = &config.cluster {
        match role {
            ClusterRole::Offline => {
                store.set_replica_mode(crate::store::ReplicaMode::ReadOnly(
                    "this node is part of a cluster ([cluster] in the config): write through the running daemon (LDAP or the admin socket); offline writes would reach this node's replica only".into(),
                ));
            }
            ClusterRole::Attach => {
                let rt = tokio::runtime::Handle::try_current()
                    .context("cluster mode needs the daemon's runtime")?;
                attached = Some(
                    rt.block_on(crate::cluster::attach(cluster, store.clone()))
                        .context("joining the cluster (etcd)")?,
                );
            }
            ClusterRole::Seed => {}
        }
    }
    let domain = DomainInfo {
        name: config.domain.name.clone(),
        base: config.domain.base.clone(),
        realm: config.domain.realm.clone(),
        netbios: config.domain.netbios.clone(),
        host: config
            .domain
            .dc_hostname
            .clone()
            .unwrap_or_else(|| host_name(&config.domain.name)),
        join_group: config.domain.join_group.clone(),
        join_container: config.domain.join_container.clone(),
    };
    let (max_users, max_objects) = config.tier.limits();
    let limits = ObjectLimits {
        max_users,
        max_objects,
        tier: config.tier.name(),
    };
    let id_ranges = IdRanges {
        uid_min: config.posix.uid_min,
        uid_max: config.posix.uid_max,
        gid_min: config.posix.gid_min,
        gid_max: config.posix.gid_max,
    };
    let mut provisioned = None;
    if provision_if_empty && !provision::is_provisioned(&store)? {
        let sid = provision::new_domain_sid();
        provision::set_domain_sid(&store, &sid)?;
        let local = Local::new(store.clone(), domain.base.clone(), schema.clone(), limits)?
            .with_id_ranges(id_ranges);
        let pw = std::env::var("DIRD_ADMIN_PASSWORD").ok();
        provisioned = Some(provision::provision(&local, &domain, &sid, pw, &master)?);
    }
    let local = Local::new(store.clone(), domain.base.clone(), schema.clone(), limits)?
        .with_id_ranges(id_ranges);
    if provision::is_provisioned(&store)? {
        provision::ensure_krbtgt(&local, &domain, &master)?;
        provision::ensure_policy(&local, &domain)?;
        provision::ensure_dc_account(&local, &domain, &master)?;
        provision::ensure_well_known_objects(&local, &domain)?;
    }
    Ok((
        Opened {
            schema,
            store,
            local,
            domain,
            master,
            cluster: attached,
        },
        provisioned,
    ))
}

/// SIGHUP's re-read of the trust password files (the `[[trust]]` tables as started).
fn trust_reload(opened: &Opened, config: &Config) -> Option<reload::TrustReload> {
    if config.trusts.is_empty() {
        return None;
    }
    let (local, domain, master, trusts) = (
        opened.local.clone(),
        opened.domain.clone(),
        opened.master.clone(),
        config.trusts.clone(),
    );
    Some(Arc::new(move || {
        trust::ensure_all(&local, &domain, &master, &trusts).map_err(|e| format!("{e:#}"))
    }))
}

/// Addresses the daemon actually bound (port 0 resolved).
#[derive(Debug, Clone, Default)]
pub struct Bound {
    /// plain LDAP
    pub ldap: Vec<SocketAddr>,
    /// LDAPS
    pub ldaps: Vec<SocketAddr>,
    /// Kerberos KDC (UDP and TCP on each address); empty without `[kdc]`
    pub kdc: Vec<SocketAddr>,
    /// kpasswd (UDP and TCP on each address); empty without `[kdc]`
    pub kpasswd: Vec<SocketAddr>,
    /// metrics and health endpoint
    pub metrics: Vec<SocketAddr>,
    /// CLDAP (UDP NetLogon ping)
    pub cldap: Vec<SocketAddr>,
    /// DNS responder (UDP and TCP on each address); empty without `[dns]`
    pub dns: Vec<SocketAddr>,
    /// global catalog, plain LDAP (`[ldap] gc_listen`)
    pub gc: Vec<SocketAddr>,
    /// global catalog with implicit TLS (`[ldap] gc_ldaps_listen`)
    pub gc_ldaps: Vec<SocketAddr>,
}

/// The default global catalog addresses: port `gc_port` on every address that uses the
/// standard LDAP port `std_port` (a DC on the standard ports gets AD's 3268/3269).
fn gc_defaults(listen: &[SocketAddr], std_port: u16, gc_port: u16) -> Vec<SocketAddr> {
    listen
        .iter()
        .filter(|a| a.port() == std_port)
        .map(|a| SocketAddr::new(a.ip(), gc_port))
        .collect()
}

/// The DNS zone of the domain: the DC's name and addresses (`[dns] addresses`, else the
/// specific addresses LDAP, then DNS, listens on) and the ports actually bound.
fn dns_zone(
    dns: &crate::config::DnsConfig,
    domain: &DomainInfo,
    bound: &Bound,
) -> crate::dns::Zone {
    let port = |v: &[SocketAddr]| v.first().map(|a| a.port());
    crate::dns::Zone {
        domain: domain.name.to_ascii_lowercase(),
        host: domain.host.to_ascii_lowercase(),
        addresses: dc_addresses(Some(dns), bound),
        site: crate::ldap::netlogon::SITE.to_string(),
        ldap_port: port(&bound.ldap),
        kdc_port: port(&bound.kdc),
        kpasswd_port: port(&bound.kpasswd),
        gc_port: port(&bound.gc),
        peers: Default::default(),
    }
}

/// The addresses this DC is reached at (its A/AAAA records): `[dns] addresses`, else the
/// specific addresses of the LDAP listeners, else those of the DNS listeners.
fn dc_addresses(dns: Option<&crate::config::DnsConfig>, bound: &Bound) -> Vec<std::net::IpAddr> {
    let specific = |v: &[SocketAddr]| -> Vec<std::net::IpAddr> {
        let mut ips: Vec<std::net::IpAddr> = Vec::new();
        for a in v {
            if !a.ip().is_unspecified() && !ips.contains(&a.ip()) {
                ips.push(a.ip());
            }
        }
        ips
    };
    let mut addresses = dns.map(|d| d.addresses.clone()).unwrap_or_default();
    if addresses.is_empty() {
        addresses = specific(&bound.ldap);
    }
    if addresses.is_empty() {
        addresses = dns.map(|d| specific(&d.listen)).unwrap_or_default();
    }
    addresses
}

/// What this node publishes in the cluster's node registry.
fn node_info(
    node_name: &str,
    domain: &DomainInfo,
    dns: Option<&crate::config::DnsConfig>,
    bound: &Bound,
) -> crate::cluster::nodes::NodeInfo {
    crate::cluster::nodes::NodeInfo {
        node_name: node_name.to_string(),
        host: domain.host.to_ascii_lowercase(),
        addresses: dc_addresses(dns, bound),
        ldap: bound.ldap.clone(),
        ldaps: bound.ldaps.clone(),
        gc: bound.gc.clone(),
        kdc: bound.kdc.clone(),
        kpasswd: bound.kpasswd.clone(),
        applied_revision: 0,
        updated: 0,
    }
}

/// Runs the daemon until `shutdown` resolves. `on_ready` receives the bound addresses once
/// every listener is up.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
    on_ready: impl FnOnce(&Bound, Option<&PathBuf>),
) -> anyhow::Result<()> {
    let cfg = config.clone();
    // Connector mode keeps no directory of its own: nothing to provision.
    let provision = cfg.connector.is_none();
    let (opened, provisioned) =
        tokio::task::spawn_blocking(move || open_with(&cfg, provision, ClusterRole::Attach))
            .await??;
    if let Some(p) = &provisioned {
        if let Some(pw) = &p.generated_password {
            // Printed once, on the first start only (DESIGN.md §6).
            eprintln!(
                "dird: provisioned {}; Administrator password: {pw}",
                opened.domain.name
            );
        }
    }
    provision::check_tier(&opened.local, config.tier).await?;
    if !config.trusts.is_empty() {
        let (local, domain, master, trusts) = (
            opened.local.clone(),
            opened.domain.clone(),
            opened.master.clone(),
            config.trusts.clone(),
        );
        tokio::task::spawn_blocking(move || trust::ensure_all(&local, &domain, &master, &trusts))
            .await??;
    }
    let Some(ldap_cfg) = config.ldap.clone() else {
        bail!("nothing to serve: add an [ldap] section to the config");
    };
    let tls = tls::load_or_generate(config.tls.as_ref(), &config.data_dir, &opened.domain.host)?;
    let acceptor = Arc::new(RwLock::new(TlsAcceptor::from(tls.config.clone())));
    let source: TlsSource = {
        let acceptor = acceptor.clone();
        Arc::new(move || acceptor.read().ok().map(|a| a.clone()))
    };
    let mut probe = None;
    let mut health_of = None;
    let mut discovered: Vec<crate::config::UpstreamUrl> = Vec::new();
    let backend: Arc<dyn crate::backend::Backend> = match &config.connector {
        None => Arc::new(opened.local.clone()),
        Some(c) => {
            let targets = if c.upstreams.is_empty() {
                // No upstreams configured: the domain's DCs by DNS SRV (_ldap._tcp.<domain>).
                crate::backend::discovery::discover(
                    &opened.domain.name,
                    &c.dns_servers,
                    c.starttls,
                    c.connect_timeout,
                )
                .await?
            } else {
                c.upstreams.clone()
            };
            discovered = targets.clone();
            let upstreams = crate::backend::upstream::Upstreams::new(
                targets,
                &c.ca_file,
                c.connect_timeout,
                c.op_timeout,
                c.max_upstream_connections,
            )?;
            let mut connector = crate::backend::connector::Connector::new(
                upstreams,
                opened.domain.base.clone(),
                &opened.domain.name,
            );
            if let Some((account, password_file)) = &c.service_account {
                connector = connector.with_service_account(account, password_file);
                if c.search_as == crate::config::SearchAs::Service {
                    connector = connector.searching_as_service();
                }
            }
            if c.chase_referrals {
                connector = connector.chasing_referrals();
            }
            if let Some((ttl, max)) = c.cache {
                connector =
                    connector.with_cache(crate::backend::read_cache::ReadCache::new(ttl, max));
            }
            probe = Some(tokio::spawn(
                connector
                    .upstreams()
                    .clone()
                    .probe_loop(Duration::from_secs(5)),
            ));
            health_of = Some(connector.upstreams().clone());
            Arc::new(connector)
        }
    };
    let (audit, metrics) = services::observability(&config);
    // The global catalog's addresses: configured, or AD's ports beside the standard ones
    // (whether a default one binds is only known later; a failure there is logged).
    let gc_plain = match &ldap_cfg.gc_listen {
        Some(list) => (list.clone(), true),
        None => (gc_defaults(&ldap_cfg.listen, 389, 3268), false),
    };
    let gc_tls = match &ldap_cfg.gc_ldaps_listen {
        Some(list) => (list.clone(), true),
        None => (gc_defaults(&ldap_cfg.ldaps_listen, 636, 3269), false),
    };
    let serves_gc = !gc_plain.0.is_empty() || !gc_tls.0.is_empty();
    // Connector mode: each upstream's health as a gauge (dird_upstream_up), refreshed often
    // enough that a scrape sees a change within a second or two of the probe's.
    let health_task = health_of.map(|upstreams| {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            loop {
                for (url, up) in upstreams.health() {
                    metrics.upstream_health(&url, up);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    });
    let mut dir = Directory::new(
        backend,
        opened.schema.clone(),
        opened.domain.clone(),
        ReadPolicy {
            anonymous_read: ldap_cfg.anonymous_read,
        },
        SearchLimits {
            size_limit: ldap_cfg.size_limit,
            time_limit: ldap_cfg.time_limit,
            max_page_size: ldap_cfg.max_page_size,
        },
        ldap_cfg.max_concurrent_hashes,
    )
    .with_master_key(opened.master.clone())
    .with_paged_cursor_limit(ldap_cfg.max_paged_cursors)
    .with_global_catalog(serves_gc)
    .with_bind_cache(ldap_cfg.bind_cache_ttl)
    .with_referrals(crate::directory::referral::Referrals::new(
        config
            .trusts
            .iter()
            .filter_map(|t| t.ldap.as_ref().map(|l| (l.base.clone(), l.url.clone())))
            .collect(),
    ));
    // Cluster mode (issue 17): failed binds count cluster-wide.
    let cluster = config.cluster.as_ref().zip(opened.cluster.clone());
    if let Some((c, attached)) = &cluster {
        let (applied, contact) = (attached.applied.clone(), attached.contact.clone());
        metrics.set_cluster_source(Box::new(move || (*applied.borrow(), contact.since())));
        if attached.audit.set(audit.clone()).is_err() {
            tracing::warn!("cluster: audit stream set twice");
        }
        dir = dir.with_lockout(crate::cluster::shared::EtcdLockout::start(
            attached.client.clone(),
            &c.prefix,
        ));
    }
    if let Some(mfa_cfg) = &config.mfa {
        // A secret file that cannot be read stops the start: MFA must not silently be off.
        let mfa = crate::mfa::Mfa::from_config(mfa_cfg, audit.clone(), metrics.clone())
            .map_err(|e| anyhow::anyhow!("[mfa]: {e}"))?;
        tracing::info!(servers = ?mfa.servers(), "MFA: RADIUS one-time codes required");
        dir = dir.with_mfa(Arc::new(mfa));
    }
    let dir = Arc::new(dir);
    let daemon_info = Arc::new(crate::admin::DaemonInfo::new());
    let mut admin = crate::admin::Admin::new(
        dir.clone(),
        opened.local.clone(),
        opened.store.clone(),
        config.clone(),
        audit.clone(),
        metrics.clone(),
        Some(daemon_info.clone()),
    );
    if let Some((c, attached)) = &cluster {
        admin = admin.with_cluster(crate::cluster::nodes::Nodes::new(
            attached.client.clone(),
            &c.prefix,
        ));
    }
    let admin = Arc::new(admin);
    let shared = Arc::new(Shared {
        audit: audit.clone(),
        metrics: metrics.clone(),
        dir: dir.clone(),
        limits: ConnLimits {
            max_pdu: ldap_cfg.max_pdu,
            max_ops: ldap_cfg.max_ops_per_connection,
            idle_timeout: ldap_cfg.idle_timeout,
            write_timeout: ldap_cfg.write_timeout,
            handshake_timeout: Duration::from_secs(10),
        },
        tls: Some(source),
        cleartext_binds: ldap_cfg.cleartext_binds,
        global_catalog: false,
    });
    // Connector mode: the tier's client-session cap (or connector.max_sessions) bounds the
    // LDAP connections too.
    let (session_cap, cap_source) = match &config.connector {
        Some(c) if c.max_sessions < ldap_cfg.max_connections => (
            c.max_sessions,
            "the connector's client-session cap (tier, connector.max_sessions)",
        ),
        _ => (ldap_cfg.max_connections, "ldap.max_connections"),
    };
    rlimit::raise_nofile(session_cap);
    let permits = Arc::new(Semaphore::new(session_cap));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut bound = Bound::default();
    let mut loops = tokio::task::JoinSet::new();
    for (addrs, implicit) in [(&ldap_cfg.listen, false), (&ldap_cfg.ldaps_listen, true)] {
        for addr in addrs {
            let l = TcpListener::bind(addr).await.with_context(|| {
                format!(
                    "{}: cannot listen on {addr}",
                    if implicit {
                        "ldap.ldaps_listen"
                    } else {
                        "ldap.listen"
                    }
                )
            })?;
            let local = l.local_addr()?;
            if implicit {
                bound.ldaps.push(local)
            } else {
                bound.ldap.push(local)
            }
            loops.spawn(listener::ldap_accept_loop(
                l,
                shared.clone(),
                permits.clone(),
                (session_cap, cap_source),
                implicit,
                stop_rx.clone(),
            ));
        }
    }
    // The global catalog (issue 10): the same front-end, read-only, on its own ports.
    let gc_shared = Arc::new(Shared {
        dir: shared.dir.clone(),
        limits: shared.limits,
        tls: shared.tls.clone(),
        audit: shared.audit.clone(),
        metrics: shared.metrics.clone(),
        cleartext_binds: shared.cleartext_binds,
        global_catalog: true,
    });
    for ((addrs, explicit), implicit, key) in [
        (gc_plain, false, "ldap.gc_listen"),
        (gc_tls, true, "ldap.gc_ldaps_listen"),
    ] {
        for addr in addrs {
            let l = match TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) if explicit => {
                    return Err(e).with_context(|| format!("{key}: cannot listen on {addr}"))
                }
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "no global catalog on this address (set {key})");
                    continue;
                }
            };
            let local = l.local_addr()?;
            if implicit {
                bound.gc_ldaps.push(local)
            } else {
                bound.gc.push(local)
            }
            loops.spawn(listener::ldap_accept_loop(
                l,
                gc_shared.clone(),
                permits.clone(),
                (session_cap, cap_source),
                implicit,
                stop_rx.clone(),
            ));
        }
    }
    // CLDAP: `[ldap] cldap_listen`, by default the LDAP addresses (UDP, same port).
    let (cldap_addrs, cldap_explicit) = match &ldap_cfg.cldap_listen {
        Some(list) => (list.clone(), true),
        None => (bound.ldap.clone(), false),
    };
    for addr in cldap_addrs {
        match tokio::net::UdpSocket::bind(addr).await {
            Ok(socket) => {
                bound.cldap.push(socket.local_addr()?);
                loops.spawn(crate::ldap::cldap::serve(
                    dir.clone(),
                    socket,
                    stop_rx.clone(),
                ));
            }
            Err(e) if cldap_explicit => {
                return Err(e)
                    .with_context(|| format!("ldap.cldap_listen: cannot listen on {addr}"))
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "no CLDAP NetLogon ping on this address (set ldap.cldap_listen)")
            }
        }
    }
    let kdc_task = match (&config.kdc, &config.connector) {
        (None, _) => None,
        (Some(k), Some(c)) => {
            // Connector mode: dird holds no keys; the upstream KDCs answer.
            let proxy = crate::kdc::proxy::KdcProxy::bind(crate::kdc::proxy::ProxyConfig {
                listen: k.listen.clone(),
                kpasswd_listen: k.kpasswd_listen.clone(),
                kdcs: if c.kdcs.is_empty() {
                    // discovered DCs (DNS SRV) on 88
                    upstream_hosts(&discovered, 88)
                } else {
                    c.kdcs.clone()
                },
                kpasswds: if c.kdcs.is_empty() {
                    upstream_hosts(&discovered, 464)
                } else {
                    c.kpasswds.clone()
                },
                timeout: c.connect_timeout,
                max_message: 64 * 1024,
                max_in_flight: 1024,
            })
            .await
            .context("kdc: cannot listen on kdc.listen / kdc.kpasswd_listen")?;
            bound.kdc = proxy.kdc_addrs().to_vec();
            bound.kpasswd = proxy.kpasswd_addrs().to_vec();
            let mut stop = stop_rx.clone();
            Some(tokio::spawn(proxy.run(async move {
                let _ = stop.wait_for(|s| *s).await;
            })))
        }
        (Some(k), None) => {
            let mut kdc_cfg = crate::kdc::KdcConfig::new(&opened.domain.realm);
            kdc_cfg.listen = k.listen.clone();
            kdc_cfg.kpasswd_listen = k.kpasswd_listen.clone();
            kdc_cfg.ticket_lifetime = k.ticket_lifetime;
            kdc_cfg.renew_lifetime = k.renew_lifetime;
            kdc_cfg.replay_cache_size = k.replay_cache_size;
            kdc_cfg.trusts = trust::policies(&config.trusts);
            let db = Arc::new(
                principals::DirectoryPrincipals::new(shared.dir.clone()).with_audit(audit.clone()),
            );
            let observer = Arc::new(principals::KdcAudit {
                audit: audit.clone(),
                metrics: metrics.clone(),
            });
            let max_skew = kdc_cfg.max_skew;
            let mut kdc = crate::kdc::Kdc::bind(kdc_cfg, db)
                .await
                .context("kdc: cannot listen on kdc.listen / kdc.kpasswd_listen")?
                .with_observer(observer);
            // Cluster mode: a replayed authenticator is caught on any node.
            if let Some((c, attached)) = &cluster {
                kdc = kdc.with_replay_store(crate::cluster::shared::EtcdReplay::new(
                    attached.client.clone(),
                    &c.prefix,
                    max_skew,
                ));
            }
            // Issue 11: MFA accounts need OTP inside FAST, checked by the same `Mfa` service.
            if let (Some(mfa), Some(mfa_cfg)) = (shared.dir.mfa(), &config.mfa) {
                kdc = kdc.with_otp(
                    Arc::new(principals::KdcMfa {
                        dir: shared.dir.clone(),
                        mfa,
                    }),
                    i32::try_from(mfa_cfg.otp_length).ok(),
                );
            }
            bound.kdc = kdc.kdc_addrs().to_vec();
            bound.kpasswd = kdc.kpasswd_addrs().to_vec();
            let mut stop = stop_rx.clone();
            Some(tokio::spawn(kdc.run(async move {
                let _ = stop.wait_for(|s| *s).await;
            })))
        }
    };
    let mut zone_feed = None;
    if let Some(dns_cfg) = &config.dns {
        let zone = Arc::new(dns_zone(dns_cfg, &opened.domain, &bound));
        // Cluster mode: every node advertises every registered node's SRV and A records.
        if let Some((c, attached)) = &cluster {
            zone_feed = Some(crate::cluster::nodes::feed_zone(
                crate::cluster::nodes::Nodes::new(attached.client.clone(), &c.prefix),
                c.node_name.clone(),
                zone.peers.clone(),
                Duration::from_secs(5),
            ));
        }
        for addr in &dns_cfg.listen {
            let tcp = TcpListener::bind(addr)
                .await
                .with_context(|| format!("dns.listen: cannot listen on {addr} (TCP)"))?;
            let local = tcp.local_addr()?;
            let udp = tokio::net::UdpSocket::bind(local)
                .await
                .with_context(|| format!("dns.listen: cannot listen on {local} (UDP)"))?;
            bound.dns.push(local);
            loops.spawn(crate::dns::serve_udp(zone.clone(), udp, stop_rx.clone()));
            loops.spawn(crate::dns::serve_tcp(zone.clone(), tcp, stop_rx.clone()));
        }
    }
    let services = services::Services::start(
        services::Parts {
            config: config.clone(),
            store: opened.store.clone(),
            dir: dir.clone(),
            metrics,
            reload: reload::Reloadable {
                acceptor: acceptor.clone(),
                tls: config.tls.clone(),
                data_dir: config.data_dir.clone(),
                host: opened.domain.host.clone(),
                audit,
                trusts: trust_reload(&opened, &config),
            },
            admin,
        },
        stop_rx.clone(),
    )
    .await?;
    bound.metrics = services.metrics.clone();
    let addrs = |v: &[SocketAddr]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    daemon_info.set_listeners(serde_json::json!({
        "ldap": addrs(&bound.ldap),
        "ldaps": addrs(&bound.ldaps),
        "kdc": addrs(&bound.kdc),
        "kpasswd": addrs(&bound.kpasswd),
        "metrics": addrs(&bound.metrics),
        "cldap": addrs(&bound.cldap),
        "dns": addrs(&bound.dns),
        "gc": addrs(&bound.gc),
        "gc_ldaps": addrs(&bound.gc_ldaps),
    }));
    tracing::info!(ldap = ?bound.ldap, ldaps = ?bound.ldaps, kdc = ?bound.kdc, kpasswd = ?bound.kpasswd, metrics = ?bound.metrics, domain = %opened.domain.name, "dird ready");
    // Cluster mode: this node in the registry (`dird status`, the other nodes' DNS).
    let registration = cluster.as_ref().map(|(c, attached)| {
        crate::cluster::nodes::Registration::start(
            attached.client.clone(),
            &c.prefix,
            node_info(&c.node_name, &opened.domain, config.dns.as_ref(), &bound),
            attached.applied.clone(),
            crate::cluster::nodes::NODE_TTL,
        )
    });
    on_ready(&bound, tls.generated_ca.as_ref());
    shutdown.await;
    if let Some(r) = registration {
        r.leave().await;
    }
    if let Some(t) = zone_feed {
        t.abort();
    }
    tracing::info!("shutting down: draining connections");
    services.draining();
    let _ = stop_tx.send(true);
    // Wait until every connection has finished its in-flight operations (they hold permits).
    let drained = tokio::time::timeout(
        Duration::from_secs(30),
        permits.acquire_many(session_cap as u32),
    )
    .await;
    if drained.is_err() {
        tracing::warn!("some connections did not drain within 30 s");
    }
    loops.abort_all();
    if let Some(p) = probe {
        p.abort();
    }
    if let Some(t) = health_task {
        t.abort();
    }
    services.stop().await;
    if let Some(task) = kdc_task {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the KDC stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "the KDC task failed"),
        }
    }
    drop(opened);
    tracing::info!("stopped");
    Ok(())
}

/// `ip:port` (or `host:port`) of each upstream, for the KDC proxy of discovered DCs.
fn upstream_hosts(upstreams: &[crate::config::UpstreamUrl], port: u16) -> Vec<String> {
    upstreams
        .iter()
        .map(|u| match u.addrs.first() {
            Some(ip) => std::net::SocketAddr::from((*ip, port)).to_string(),
            None => format!("{}:{port}", u.host),
        })
        .collect()
}
