//! `dird check-store`: asks a running daemon to check its live store (admin socket), or opens
//! a stopped instance's store (without provisioning or any other
//! write), runs the store and backend checks (`backend::check`) with the master key's key
//! check, prints the report (text or `--json`) and fails when an invariant is broken.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};

use crate::admin::proto::AdminRequest;
use crate::backend::local::{IdRanges, Local, ObjectLimits};
use crate::cli::remote;
use crate::config::Config;
use crate::daemon::{self, backup::read_master_key, DB_FILE};
use crate::directory::secrets::{self, MasterKey};
use crate::model::Entry;
use crate::store::Store;

pub(super) fn check_store(config: &Config, json: bool, repair: bool) -> anyhow::Result<()> {
    // A running daemon holds the database: ask it to check its live store (one snapshot).
    if let remote::Transport::Online(mut stream) = remote::connect(config)? {
        if repair {
            bail!("--repair rewrites indexes: stop the running dird first, then repair offline");
        }
        let reply = remote::call(&mut stream, &AdminRequest::CheckStore)?;
        return remote::print(&reply, json);
    }
    let path = config.data_dir.join(DB_FILE);
    if !path.exists() {
        bail!("no database at {}", path.display());
    }
    let schema = Arc::new(daemon::load_schema(config)?);
    let store = Store::open(&path, schema.clone(), daemon::index_config(config))
        .with_context(|| format!("opening {}", path.display()))
        .map_err(|e| anyhow!("{e:#}\n(is a dird running on this data directory? stop it first)"))?;
    let (max_users, max_objects) = config.tier.limits();
    let limits = ObjectLimits {
        max_users,
        max_objects,
        tier: config.tier.name(),
    };
    let local =
        Local::new(store, config.domain.base.clone(), schema, limits)?.with_id_ranges(IdRanges {
            uid_min: config.posix.uid_min,
            uid_max: config.posix.uid_max,
            gid_min: config.posix.gid_min,
            gid_max: config.posix.gid_max,
        });
    if repair {
        let n = local.repair_derived()?;
        eprintln!(
            "dird check-store: rebuilt the attribute indexes of {n} entries and the user counter"
        );
    }
    let master = read_master_key(&config.data_dir)?
        .map(|bytes| MasterKey::from_bytes(&bytes).map_err(|e| e.to_string()));
    let open = |e: &Entry| -> Result<u32, String> {
        match &master {
            Some(Ok(key)) => secrets::check_entry_keys(e, key),
            Some(Err(why)) => Err(format!("master.key is unusable: {why}")),
            None => Err("no master key".into()),
        }
    };
    let report = local.check_store(master.is_some().then_some(&open as _))?;
    if json {
        let mut value = serde_json::to_value(&report)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("ok".into(), (report.errors() == 0).into());
            obj.insert("errors".into(), report.errors().into());
            obj.insert("warnings".into(), report.warnings().into());
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("dird check-store {}: {}", path.display(), report.render());
    }
    match report.errors() {
        0 => Ok(()),
        // With --json the report above is the whole answer (one JSON document on stdout);
        // the exit status says it failed.
        _ if json => {
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            std::process::exit(1)
        }
        n => bail!("{n} errors in {}", path.display()),
    }
}
