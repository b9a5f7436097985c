//! `dird cluster init|join` (issue 17): the steps that make a data directory a cluster
//! replica before `dird serve`.
//! May import: everything (composition root). Invariant: the master key never goes to etcd;
//! `join` refuses to start without the copy an operator made.

use anyhow::{bail, Context};

use crate::cluster::{connect, seed, Layout};
use crate::config::Config;
use crate::daemon::{self, master_key, ClusterRole};
use crate::store::{Store, StoreRead};

/// `dird cluster init`: provision if empty, then copy the directory into the empty prefix.
pub(super) fn init(config: &Config) -> anyhow::Result<()> {
    let Some(cluster) = config.cluster.clone() else {
        bail!("`dird cluster init` needs a [cluster] section in the config");
    };
    let (opened, provisioned) = daemon::open_with(config, true, ClusterRole::Seed)?;
    if let Some(pw) = provisioned.and_then(|p| p.generated_password) {
        println!(
            "provisioned {}; Administrator password: {pw}",
            opened.domain.name
        );
    }
    let rt = super::remote::runtime()?;
    let rev = rt.block_on(async {
        let client = connect(&cluster).await?;
        seed::init(
            &client,
            &Layout::new(&cluster.prefix),
            &cluster.node_name,
            &opened.store,
        )
        .await
    })?;
    println!(
        "cluster initialised: {} under {} at revision {rev}; start this node with `dird serve`, then copy {} to each other node and run `dird cluster join` there",
        opened.domain.name,
        cluster.prefix,
        master_key::MASTER_KEY_FILE
    );
    Ok(())
}

/// `dird cluster join`: a fresh data directory filled from etcd.
pub(super) fn join(config: &Config) -> anyhow::Result<()> {
    let Some(cluster) = config.cluster.clone() else {
        bail!("`dird cluster join` needs a [cluster] section in the config");
    };
    let key = master_key::path(&config.data_dir);
    if !key.exists() {
        bail!(
            "step 1 of joining is missing: copy {} from an existing node to {} (mode 0600, owned by the dird user); the master key is never stored in etcd",
            master_key::MASTER_KEY_FILE,
            key.display()
        );
    }
    daemon::files::private_dir(&config.data_dir)
        .with_context(|| format!("data_dir: cannot create {}", config.data_dir.display()))?;
    let schema = std::sync::Arc::new(daemon::load_schema(config)?);
    let path = config.data_dir.join(daemon::DB_FILE);
    let store = Store::open(&path, schema, daemon::index_config(config))
        .with_context(|| format!("opening {}", path.display()))?;
    let (applied, _) = store.replica_revisions()?;
    if applied == 0 && store.read()?.count()? > 0 {
        bail!(
            "{} already holds a directory that is not a cluster replica: move it away to join (or run `dird cluster init` if this node should seed the cluster)",
            path.display()
        );
    }
    let rt = super::remote::runtime()?;
    let rev = rt.block_on(async {
        let client = connect(&cluster).await?;
        seed::join(&client, &Layout::new(&cluster.prefix), &store).await
    })?;
    println!(
        "joined the cluster under {} at revision {rev}; start this node with `dird serve`",
        cluster.prefix
    );
    Ok(())
}
