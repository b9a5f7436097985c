//! Upstream discovery by DNS SRV (connector mode without `[connector] upstreams`, issue 12):
//! the domain controllers of `<domain>` are the targets of `_ldap._tcp.<domain>` (the record
//! every AD DC registers, MS-ADTS §6.3.2.3), ordered as RFC 2782 says: ascending priority,
//! and within one priority a weighted random order. Each target's addresses are resolved
//! through the same resolver (a DC's name is often only in the AD DNS zone).
//!
//! TLS: with `starttls = true` (the default) a discovered DC is reached with StartTLS on the
//! port its SRV record gives (389); with `starttls = false`, with LDAPS on 636. The TLS name
//! checked against the DC's certificate is the SRV target's host name.
//!
//! The resolver is `hickory-resolver`, over `[connector] dns_servers` when given (UDP, then TCP
//! for truncated answers), else the system's resolv.conf. Discovery runs once at start.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use rand::Rng;

use crate::config::UpstreamUrl;

/// One SRV answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvTarget {
    /// lower is tried first
    pub priority: u16,
    /// relative share within one priority
    pub weight: u16,
    /// the DC's host name (no trailing dot)
    pub host: String,
    /// the port the record gives
    pub port: u16,
}

/// RFC 2782 order: by ascending priority; within a priority, repeatedly pick a target with
/// probability proportional to its weight (weight 0 first in the running sum, so it has a
/// small chance only when others weigh more). `pick(n)` returns a number in `0..=n`.
pub fn rfc2782_order(
    mut targets: Vec<SrvTarget>,
    mut pick: impl FnMut(u32) -> u32,
) -> Vec<SrvTarget> {
    targets.sort_by_key(|t| (t.priority, t.weight != 0));
    let mut out = Vec::with_capacity(targets.len());
    let mut rest = targets.as_slice();
    while let Some(first) = rest.first() {
        let end = rest
            .iter()
            .position(|t| t.priority != first.priority)
            .unwrap_or(rest.len());
        let (mut group, tail) = (rest[..end].to_vec(), &rest[end..]);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|t| u32::from(t.weight)).sum();
            let r = pick(total);
            let mut running = 0u32;
            let mut chosen = group.len() - 1;
            for (i, t) in group.iter().enumerate() {
                running += u32::from(t.weight);
                if running >= r {
                    chosen = i;
                    break;
                }
            }
            out.push(group.remove(chosen));
        }
        rest = tail;
    }
    out
}

fn resolver(dns_servers: &[SocketAddr], timeout: Duration) -> anyhow::Result<TokioResolver> {
    let mut builder = if dns_servers.is_empty() {
        Resolver::builder_tokio().map_err(|e| {
            anyhow::anyhow!("connector: no upstreams and no usable resolv.conf for DNS SRV discovery ({e}); set connector.upstreams or connector.dns_servers")
        })?
    } else {
        let servers = dns_servers
            .iter()
            .map(|a| {
                let mut udp = ConnectionConfig::udp();
                udp.port = a.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = a.port();
                NameServerConfig::new(a.ip(), true, vec![udp, tcp])
            })
            .collect();
        Resolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    builder.options_mut().timeout = timeout;
    builder.options_mut().attempts = 2;
    builder
        .build()
        .map_err(|e| anyhow::anyhow!("connector: DNS resolver: {e}"))
}

/// The domain controllers of `domain` by DNS SRV, in RFC 2782 order, as upstream URLs with
/// their resolved addresses (`starttls`: StartTLS on the SRV port, else LDAPS on 636).
pub async fn discover(
    domain: &str,
    dns_servers: &[SocketAddr],
    starttls: bool,
    timeout: Duration,
) -> anyhow::Result<Vec<UpstreamUrl>> {
    let resolver = resolver(dns_servers, timeout)?;
    let name = format!("_ldap._tcp.{}.", domain.trim_end_matches('.'));
    let found = resolver.srv_lookup(name.as_str()).await.map_err(|e| {
        anyhow::anyhow!("connector: DNS SRV discovery of {name} failed: {e}; set connector.upstreams or check connector.dns_servers")
    })?;
    let targets: Vec<SrvTarget> = found
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some(SrvTarget {
                priority: srv.priority,
                weight: srv.weight,
                host: srv.target.to_ascii().trim_end_matches('.').to_string(),
                port: srv.port,
            }),
            _ => None,
        })
        // "." as the target: the service is decidedly not available (RFC 2782)
        .filter(|t| !t.host.is_empty() && t.port != 0)
        .collect();
    let mut rng = rand::thread_rng();
    let ordered = rfc2782_order(targets, |n| rng.gen_range(0..=n));
    let mut out = Vec::new();
    for t in ordered {
        let addrs: Vec<IpAddr> = match resolver.lookup_ip(format!("{}.", t.host)).await {
            Ok(ips) => ips.iter().collect(),
            Err(e) => {
                tracing::warn!(host = %t.host, error = %e, "a discovered domain controller has no address; skipped");
                continue;
            }
        };
        let (url, port, ldaps) = if starttls {
            (format!("ldap://{}:{}", t.host, t.port), t.port, false)
        } else {
            (format!("ldaps://{}", t.host), 636, true)
        };
        tracing::info!(%url, ?addrs, priority = t.priority, weight = t.weight, "discovered upstream domain controller");
        out.push(UpstreamUrl {
            url,
            host: t.host,
            port,
            ldaps,
            addrs,
        });
    }
    if out.is_empty() {
        anyhow::bail!("connector: DNS SRV discovery of {name} found no reachable domain controller; set connector.upstreams");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(priority: u16, weight: u16, host: &str) -> SrvTarget {
        SrvTarget {
            priority,
            weight,
            host: host.into(),
            port: 389,
        }
    }

    fn hosts(v: &[SrvTarget]) -> Vec<&str> {
        v.iter().map(|t| t.host.as_str()).collect()
    }

    #[test]
    fn priority_first_then_weight() {
        let all = vec![t(10, 0, "backup"), t(0, 10, "a"), t(0, 90, "b")];
        // pick 0: the first in the running sum (a, weight 10), then b; backup last.
        assert_eq!(
            hosts(&rfc2782_order(all.clone(), |_| 0)),
            ["a", "b", "backup"]
        );
        // pick 50 of 100: past a's 10, so b first.
        assert_eq!(
            hosts(&rfc2782_order(all, |n| n.min(50))),
            ["b", "a", "backup"]
        );
        // weight 0 sits first in the running sum: chosen only on a pick of 0.
        let z = vec![t(0, 0, "zero"), t(0, 5, "five")];
        assert_eq!(hosts(&rfc2782_order(z.clone(), |_| 0)), ["zero", "five"]);
        assert_eq!(hosts(&rfc2782_order(z, |n| n)), ["five", "zero"]);
    }
}
