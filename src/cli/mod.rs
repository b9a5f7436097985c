//! The command-line interface: `dird serve|init|status|import|export|user|group|ou|computer|
//! keytab|krbtgt|backup|restore|check-config`.
//! May import: everything (like `daemon`, it is a composition root). Invariant: every
//! administrative subcommand is an `admin::AdminRequest`, sent to the running daemon over its
//! admin socket or, with no daemon, run in-process on the opened database by the same
//! `admin::Admin` service (`cli::remote`), so it gets the same schema checks, password
//! policy, tier limits and audit as LDAP clients either way.

mod admin;
mod backup;
mod check;
mod cluster;
mod remote;
mod transfer;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;

/// dird: a small, fast, memory-safe directory service (LDAP/LDAPS + Kerberos).
#[derive(Parser, Debug)]
#[command(name = "dird", version, about)]
pub struct Cli {
    /// Config file (TOML). Without it: the demo defaults (data in ./data, example.com).
    #[arg(long, short, global = true, env = "DIRD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Print the result as one JSON object (for scripts) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// human-readable lines
    Human,
    /// one JSON object per line
    Json,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon (provisions the domain on first start).
    Serve,
    /// Create the data directory and provision the domain, then exit.
    Init,
    /// Show the version, mode, tier usage, listeners, connections, uptime and last backup.
    Status,
    /// Cluster mode (`[cluster]`): seed etcd from this node, or prepare a node from etcd.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Import an LDIF file (RFC 2849, content or changetype records).
    Import {
        /// The LDIF file.
        file: PathBuf,
        /// Entries per transaction for content records, offline. Larger batches rewrite fewer
        /// copy-on-write pages (100k users: 5,000 wrote 915 MB, 50,000 wrote 444 MB and took
        /// 27 % less time) at the cost of holding the batch in memory. Through a running
        /// daemon, batches are 500 entries so that LDAP clients are not starved.
        #[arg(long, default_value_t = 50_000)]
        batch: usize,
    },
    /// Export the whole directory as LDIF (a consistent snapshot).
    Export {
        /// Output file (default: standard output).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage groups.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Manage organizational units.
    #[command(subcommand)]
    Ou(OuCmd),
    /// Manage computer accounts.
    #[command(subcommand)]
    Computer(ComputerCmd),
    /// Create or update the account of a Kerberos service principal, give it new random
    /// keys (kvno+1) and write them to an MIT keytab.
    Keytab {
        /// The principal, e.g. `host/client.example.com` (a computer account
        /// `cn=CLIENT,cn=Computers` is created if none has this SPN).
        #[arg(long)]
        principal: String,
        /// The keytab file to write (mode 0600, replaced atomically).
        #[arg(long)]
        out: PathBuf,
    },
    /// Manage the krbtgt (ticket-granting service) account.
    #[command(subcommand)]
    Krbtgt(KrbtgtCmd),
    /// Manage cross-realm trusts (`mode = "trust"`).
    #[command(subcommand)]
    Trust(TrustCmd),
    /// Validate the config file without starting anything.
    CheckConfig,
    /// Write a consistent backup (online through the running daemon, else offline).
    Backup {
        /// The backup file to create (must not exist).
        #[arg(long, short)]
        out: PathBuf,
        /// Also store the master key (<data_dir>/master.key) in the backup.
        #[arg(long)]
        include_master_key: bool,
    },
    /// Verify the data directory of a stopped instance: indexes, DN and parent links, link
    /// targets, counters, uniqueness, USNs and the sealed Kerberos keys. Exit status 1 if any
    /// invariant is broken.
    CheckStore {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// First rebuild what is derived from the entries (attribute indexes, user counter).
        #[arg(long)]
        repair: bool,
    },
    /// Restore a backup into the data directory of a stopped instance.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Replace an existing database (and a different master key).
        #[arg(long)]
        force: bool,
    },
}

/// `dird cluster …`
#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Seed the empty etcd prefix from this data directory (provisioning the domain first
    /// if the directory is empty), then exit. Run once, on the first node.
    Init,
    /// Fill this node's empty data directory from etcd, then exit. Copy `master.key` from
    /// an existing node into the data directory (mode 0600) first.
    Join,
}

/// `dird krbtgt …`
#[derive(Subcommand, Debug)]
pub enum KrbtgtCmd {
    /// New random krbtgt keys (kvno+1). The previous keys stay valid for tickets already
    /// issued; rotate twice (one ticket lifetime apart) to retire a key completely.
    Rotate,
}

/// `dird trust …`
#[derive(Subcommand, Debug)]
pub enum TrustCmd {
    /// New inter-realm keys (kvno+1) from a new password shared with the other realm's
    /// admin; the previous kvno stays valid for the trust's overlap_secs.
    Rotate {
        /// The trusted realm (`OTHER.COM`).
        realm: String,
        /// The file holding the new password (first line).
        #[arg(long)]
        password_file: PathBuf,
    },
}

/// `dird user …`
#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user (in cn=Users unless --parent is given).
    Add {
        /// sAMAccountName / uid
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// Given name.
        #[arg(long)]
        given_name: Option<String>,
        /// Surname (default: the name).
        #[arg(long)]
        sn: Option<String>,
        /// E-mail address.
        #[arg(long)]
        mail: Option<String>,
        /// Parent DN (e.g. an OU).
        #[arg(long)]
        parent: Option<String>,
    },
    /// Set a user's password.
    Passwd {
        /// sAMAccountName, UPN or DN
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Disable a user (userAccountControl ACCOUNTDISABLE).
    Disable {
        /// sAMAccountName, UPN or DN
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        /// sAMAccountName, UPN or DN
        name: String,
    },
    /// Unlock a user locked out after failed logons (sets lockoutTime to 0).
    Unlock {
        /// sAMAccountName, UPN or DN
        name: String,
    },
    /// Show a user as LDIF.
    Show {
        /// sAMAccountName, UPN or DN
        name: String,
    },
    /// List the users (not computers).
    List,
    /// Delete a user.
    Delete {
        /// sAMAccountName, UPN or DN
        name: String,
    },
}

/// How a new password is given. Without any: prompted for on a terminal (no echo), else
/// generated and printed.
#[derive(clap::Args, Debug, Default)]
pub struct PasswordArgs {
    /// The password (visible in the process list; prefer --password-file or the prompt).
    #[arg(long, conflicts_with = "password_file")]
    pub password: Option<String>,
    /// Read the password from the first line of FILE (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Generate a password (and print it) instead of prompting.
    #[arg(long, conflicts_with_all = ["password", "password_file"])]
    pub generate: bool,
}

/// `dird computer …`
#[derive(Subcommand, Debug)]
pub enum ComputerCmd {
    /// Add a computer account (cn=NAME,cn=Computers, SPN host/NAME.<domain>) and write a
    /// keytab for it (running again gives it new keys).
    Add {
        /// host name (`client`) or fully qualified (`client.example.com`)
        name: String,
        /// The keytab file to write (mode 0600, replaced atomically).
        #[arg(long, short)]
        out: PathBuf,
    },
}

/// `dird group …`
#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Add a group (in cn=Users unless --parent is given).
    Add {
        /// group name
        name: String,
        /// Parent DN.
        #[arg(long)]
        parent: Option<String>,
    },
    /// Show a group as LDIF.
    Show {
        /// group name or DN
        name: String,
    },
    /// List the groups.
    List,
    /// Delete a group.
    Delete {
        /// group name or DN
        name: String,
    },
    /// Manage members.
    #[command(subcommand)]
    Member(MemberCmd),
}

/// `dird group member …`
#[derive(Subcommand, Debug)]
pub enum MemberCmd {
    /// Add a member.
    Add {
        /// group name or DN
        group: String,
        /// member: user name, UPN or DN
        member: String,
    },
    /// Remove a member.
    Remove {
        /// group name or DN
        group: String,
        /// member: user name, UPN or DN
        member: String,
    },
}

/// `dird ou …`
#[derive(Subcommand, Debug)]
pub enum OuCmd {
    /// Add an organizational unit (under the domain root unless --parent is given).
    Add {
        /// OU name
        name: String,
        /// Parent DN.
        #[arg(long)]
        parent: Option<String>,
    },
    /// Delete an (empty) organizational unit.
    Delete {
        /// OU name or DN
        name: String,
        /// Parent DN, when NAME is not a DN (default: the domain root).
        #[arg(long)]
        parent: Option<String>,
    },
}

/// Loads the config named on the command line, or the demo defaults.
pub fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None => Ok(Config::demo()),
    }
}

/// Runs a parsed command line. Returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(cli.config.as_ref())?;
    if let Some(p) = &cli.config {
        crate::daemon::reload::set_config_path(p.clone());
    }
    if let Err(e) = crate::daemon::reload::apply_log_level(&config) {
        eprintln!("dird: log level: {e}");
    }
    let json = cli.json;
    let result = dispatch(cli.command, config, json);
    if let (Err(e), true) = (&result, json) {
        // Scripts read one JSON object on standard output either way.
        println!(
            "{}",
            serde_json::json!({ "ok": false, "error": format!("{e:#}") })
        );
    }
    result
}

fn dispatch(command: Command, config: Config, json: bool) -> anyhow::Result<()> {
    match command {
        Command::CheckConfig => {
            let summary = format!(
                "config OK: mode standalone, domain {}, tier {}",
                config.domain.name,
                config.tier.name()
            );
            let reply = crate::admin::Reply::new(
                summary,
                serde_json::json!({
                    "mode": "standalone",
                    "domain": config.domain.name,
                    "tier": config.tier.name(),
                    "data_dir": config.data_dir.display().to_string(),
                }),
            );
            remote::print(&reply, json)
        }
        Command::Serve => serve(config),
        Command::Cluster(ClusterCmd::Init) => cluster::init(&config),
        Command::Cluster(ClusterCmd::Join) => cluster::join(&config),
        Command::Init => admin::init(&config),
        Command::Status => admin::status(&config, json),
        Command::Import { file, batch } => transfer::import(&config, &file, batch, json),
        Command::Export { out } => transfer::export(&config, out.as_deref(), json),
        Command::User(c) => admin::user(&config, c, json),
        Command::Group(c) => admin::group(&config, c, json),
        Command::Ou(c) => admin::ou(&config, c, json),
        Command::Computer(c) => admin::computer(&config, c, json),
        Command::Keytab { principal, out } => admin::keytab(&config, &principal, &out, json),
        Command::Krbtgt(KrbtgtCmd::Rotate) => admin::krbtgt_rotate(&config, json),
        Command::Trust(TrustCmd::Rotate {
            realm,
            password_file,
        }) => admin::trust_rotate(&config, &realm, &password_file, json),
        Command::Backup {
            out,
            include_master_key,
        } => backup::backup(&config, &out, include_master_key),
        Command::Restore { file, force } => backup::restore(&config, &file, force),
        Command::CheckStore { json, repair } => check::check_store(&config, json, repair),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    // Password hashing has its own fixed threads (`directory::password`); the blocking pool
    // runs store work (writes, large searches), which contends on one writer and two cores
    // anyway, so more threads than a few per core only add memory (tokio's default is 512).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads((4 * cores).max(8))
        .build()?;
    rt.block_on(async move {
        // Install the handlers before the readiness line: a SIGTERM sent right after it must
        // shut down cleanly, not kill the process with the default disposition.
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        let shutdown = async move {
            let (mut term, mut int) = match (term, int) {
                (Ok(t), Ok(i)) => (t, i),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "cannot install SIGTERM/SIGINT handlers");
                    return std::future::pending().await;
                }
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        crate::daemon::run(config, shutdown, |bound, ca| {
            let list = |v: &[std::net::SocketAddr]| {
                v.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            // A machine-readable readiness line on stdout (tests and scripts wait for it).
            let mut line = format!(
                "dird ready ldap={} ldaps={} metrics={}",
                list(&bound.ldap),
                list(&bound.ldaps),
                list(&bound.metrics)
            );
            if !bound.kdc.is_empty() {
                line.push_str(&format!(
                    " kdc={} kpasswd={}",
                    list(&bound.kdc),
                    list(&bound.kpasswd)
                ));
            }
            if !bound.cldap.is_empty() {
                line.push_str(&format!(" cldap={}", list(&bound.cldap)));
            }
            if !bound.dns.is_empty() {
                line.push_str(&format!(" dns={}", list(&bound.dns)));
            }
            if !bound.gc.is_empty() || !bound.gc_ldaps.is_empty() {
                line.push_str(&format!(
                    " gc={} gc_ldaps={}",
                    list(&bound.gc),
                    list(&bound.gc_ldaps)
                ));
            }
            println!("{line}");
            if let Some(ca) = ca {
                println!("dird TLS CA certificate: {}", ca.display());
            }
        })
        .await
    })
}
