//! `dird status`: version, mode, tier usage, and (inside the daemon) listeners, connections
//! and uptime; the last scheduled backup from `[backup] dir`; in a cluster, every node by
//! `node_name` with its applied revision and lag (issue 17).
//! May import: `admin`, `audit` (time format), `daemon::backup` (the file suffix),
//! `cluster::nodes` (the registry's view).

use std::path::PathBuf;
use std::time::SystemTime;

use serde_json::json;

use super::{dir_fail, Admin, AdminError, Reply};
use crate::cluster::nodes::ClusterView;

impl Admin {
    /// The status reply.
    pub(super) async fn status(&self) -> Result<Reply, AdminError> {
        let usage = self
            .dir
            .usage()
            .await
            .map_err(|e| dir_fail("reading usage", &e))?;
        let (users_limit, objects_limit) = self.config.tier.limits();
        let tier = self.config.tier.name();
        let last_backup = self.last_backup();
        let version = env!("CARGO_PKG_VERSION");
        let mut data = json!({
            "version": version,
            "mode": "standalone",
            "domain": self.dir.domain().name,
            "daemon": if self.daemon.is_some() { "running" } else { "stopped" },
            "tier": tier,
            "users": usage.users,
            "users_limit": users_limit,
            "objects": usage.objects,
            "objects_limit": objects_limit,
            "last_backup": last_backup.as_ref().map(|(f, t)| json!({
                "file": f.display().to_string(),
                "time": crate::audit::rfc3339(*t),
            })),
        });
        let mut lines = vec![
            format!(
                "dird {version}, mode standalone, domain {}",
                self.dir.domain().name
            ),
            format!(
                "tier {tier}: {} of {} objects, {} users{}",
                usage.objects,
                objects_limit,
                usage.users,
                users_limit.map_or(String::new(), |l| format!(" of {l}"))
            ),
        ];
        match &self.daemon {
            Some(d) => {
                let uptime = d.started.elapsed().as_secs();
                let listeners = d.listeners.get().cloned().unwrap_or(json!({}));
                let connections = self.metrics.connections();
                lines.push(format!(
                    "daemon running (pid {}), up {}",
                    std::process::id(),
                    human_duration(uptime)
                ));
                lines.push(format!("listeners: {}", listener_text(&listeners)));
                lines.push(format!("LDAP connections: {connections}"));
                data["pid"] = json!(std::process::id());
                data["uptime_secs"] = json!(uptime);
                data["listeners"] = listeners;
                data["connections"] = json!(connections);
            }
            None => lines.push("daemon not running (offline)".to_string()),
        }
        if let Some(nodes) = &self.cluster {
            let (text, value) = match nodes.list().await {
                Ok(view) => cluster_section(&view),
                Err(e) => (
                    vec![format!("cluster: node registry unreachable ({e})")],
                    json!({ "error": e.to_string() }),
                ),
            };
            lines.extend(text);
            data["cluster"] = value;
        }
        lines.push(match &last_backup {
            Some((f, t)) => format!(
                "last scheduled backup: {} ({})",
                f.display(),
                crate::audit::rfc3339(*t)
            ),
            None if self.config.backup.is_none() => {
                "last scheduled backup: none ([backup] is not configured)".to_string()
            }
            None => "last scheduled backup: none yet".to_string(),
        });
        Ok(Reply::new(lines.join("\n"), data))
    }

    /// The newest scheduled snapshot in `[backup] dir`, with its modification time.
    fn last_backup(&self) -> Option<(PathBuf, SystemTime)> {
        let dir = &self.config.backup.as_ref()?.dir;
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("dird-") && n.ends_with(crate::daemon::backup::SUFFIX)
            })
            .filter_map(|e| Some((e.path(), e.metadata().ok()?.modified().ok()?)))
            .max_by_key(|(p, _)| p.clone())
    }
}

/// The cluster part of the status: one line per node (name, applied revision, lag, host and
/// addresses), and the same as JSON.
fn cluster_section(view: &ClusterView) -> (Vec<String>, serde_json::Value) {
    let mut lines = vec![format!(
        "cluster: {} node{} at directory head revision {}",
        view.nodes.len(),
        if view.nodes.len() == 1 { "" } else { "s" },
        view.revision
    )];
    let width = view
        .nodes
        .iter()
        .map(|n| n.info.node_name.len())
        .max()
        .unwrap_or(0);
    for n in &view.nodes {
        let serves: Vec<String> = [
            ("ldap", &n.info.ldap),
            ("ldaps", &n.info.ldaps),
            ("kdc", &n.info.kdc),
        ]
        .iter()
        .filter(|(_, a)| !a.is_empty())
        .map(|(k, a)| {
            let list: Vec<String> = a.iter().map(ToString::to_string).collect();
            format!("{k} {}", list.join(","))
        })
        .collect();
        lines.push(format!(
            "  {:width$}  applied {}  lag {}  {}{}",
            n.info.node_name,
            n.info.applied_revision,
            n.lag,
            n.info.host,
            if serves.is_empty() {
                String::new()
            } else {
                format!(" ({})", serves.join("; "))
            },
        ));
    }
    let nodes: Vec<serde_json::Value> = view
        .nodes
        .iter()
        .map(|n| {
            json!({
                "node_name": n.info.node_name,
                "host": n.info.host,
                "applied_revision": n.info.applied_revision,
                "lag": n.lag,
                "updated": n.info.updated,
                "ldap": n.info.ldap,
                "ldaps": n.info.ldaps,
                "kdc": n.info.kdc,
            })
        })
        .collect();
    (lines, json!({ "revision": view.revision, "nodes": nodes }))
}

fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn listener_text(v: &serde_json::Value) -> String {
    let Some(map) = v.as_object() else {
        return String::new();
    };
    map.iter()
        .filter_map(|(k, addrs)| {
            let list: Vec<&str> = addrs
                .as_array()?
                .iter()
                .filter_map(|a| a.as_str())
                .collect();
            (!list.is_empty()).then(|| format!("{k} {}", list.join(",")))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::nodes::{NodeInfo, NodeStatus};

    #[test]
    fn cluster_section_lists_every_node_with_its_lag() {
        let node = |name: &str, applied: u64, lag: u64| NodeStatus {
            info: NodeInfo {
                node_name: name.into(),
                host: format!("{name}.example.com"),
                addresses: Vec::new(),
                ldap: vec!["127.0.0.1:389".parse().unwrap()],
                ldaps: Vec::new(),
                gc: Vec::new(),
                kdc: vec!["127.0.0.1:88".parse().unwrap()],
                kpasswd: Vec::new(),
                applied_revision: applied,
                updated: 0,
            },
            lag,
        };
        let view = ClusterView {
            revision: 120,
            nodes: vec![node("dc1", 120, 0), node("dc10", 100, 20)],
        };
        let (lines, value) = cluster_section(&view);
        assert_eq!(
            lines,
            vec![
                "cluster: 2 nodes at directory head revision 120".to_string(),
                "  dc1   applied 120  lag 0  dc1.example.com (ldap 127.0.0.1:389; kdc 127.0.0.1:88)"
                    .to_string(),
                "  dc10  applied 100  lag 20  dc10.example.com (ldap 127.0.0.1:389; kdc 127.0.0.1:88)"
                    .to_string(),
            ]
        );
        assert_eq!(value["nodes"][1]["lag"], 20);
        assert_eq!(value["nodes"][0]["node_name"], "dc1");
    }
}
