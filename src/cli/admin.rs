//! `dird init`, `dird user|group|ou|computer|keytab|krbtgt|status`: each subcommand becomes
//! an [`AdminRequest`] that `cli::remote` runs on the daemon or offline; this file turns
//! arguments into requests (and reads passwords) and replies into output.
//! May import: `admin`, `daemon` (opening the instance), `directory`, `cli::remote`.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};

use crate::admin::proto::AdminRequest;
use crate::backend::Backend;
use crate::cli::{remote, ComputerCmd, GroupCmd, MemberCmd, OuCmd, PasswordArgs, UserCmd};
use crate::config::Config;
use crate::daemon::{self, Opened};
use crate::directory::{Directory, ReadPolicy, SearchLimits};

/// Opens the instance and builds a directory over it (for one offline CLI command),
/// provisioning an empty store only if `provision` (an LDIF restore brings its own domain
/// root instead).
pub(super) fn open_directory_with(
    config: &Config,
    provision: bool,
) -> anyhow::Result<(Opened, Directory)> {
    let (opened, provisioned) = daemon::open(config, provision).map_err(|e| {
        if format!("{e:#}").contains("already open") {
            anyhow!("{e:#}\n({})", remote::locked_hint(config))
        } else {
            e
        }
    })?;
    if let Some(pw) = provisioned.and_then(|p| p.generated_password) {
        println!(
            "provisioned {}; Administrator password: {pw}",
            opened.domain.name
        );
    }
    let backend: Arc<dyn Backend> = Arc::new(opened.local.clone());
    let limits = SearchLimits {
        size_limit: 0,
        time_limit: std::time::Duration::from_secs(3600),
        max_page_size: 1000,
    };
    let dir = Directory::new(
        backend,
        opened.schema.clone(),
        opened.domain.clone(),
        ReadPolicy {
            anonymous_read: false,
        },
        limits,
        2,
    )
    .with_master_key(opened.master.clone());
    Ok((opened, dir))
}

pub(super) fn init(config: &Config) -> anyhow::Result<()> {
    let (opened, provisioned) = daemon::open(config, true)?;
    match provisioned {
        Some(p) => {
            println!(
                "provisioned domain {} in {}",
                opened.domain.name,
                config.data_dir.display()
            );
            if let Some(pw) = p.generated_password {
                println!("Administrator password: {pw}");
            }
        }
        None => println!(
            "domain {} already provisioned in {}",
            opened.domain.name,
            config.data_dir.display()
        ),
    }
    Ok(())
}

/// Runs a request (online or offline) and prints its reply.
fn run(config: &Config, req: AdminRequest, json: bool) -> anyhow::Result<()> {
    let reply = remote::execute(config, req)?;
    remote::print(&reply, json)
}

/// The password the operator chose: `--password`, `--password-file FILE|-`, a prompt on a
/// terminal, or `None` (the service generates one and prints it).
fn password(args: PasswordArgs, who: &str) -> anyhow::Result<Option<String>> {
    if let Some(p) = args.password {
        return Ok(Some(p));
    }
    if let Some(file) = args.password_file {
        let line = if file.as_os_str() == "-" {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            line
        } else {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("--password-file {}", file.display()))?;
            text.lines().next().unwrap_or("").to_string()
        };
        let pw = line.trim_end_matches(['\n', '\r']).to_string();
        if pw.is_empty() {
            bail!(
                "--password-file {}: the first line is empty; put the password on it",
                file.display()
            );
        }
        return Ok(Some(pw));
    }
    if args.generate || !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let pw = rpassword::prompt_password(format!("New password for {who} (empty: generate one): "))
        .context("reading the password from the terminal")?;
    if pw.is_empty() {
        return Ok(None);
    }
    let again = rpassword::prompt_password("Repeat it: ")
        .context("reading the password from the terminal")?;
    if pw != again {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(Some(pw))
}

pub(super) fn user(config: &Config, cmd: UserCmd, json: bool) -> anyhow::Result<()> {
    let req = match cmd {
        UserCmd::Add {
            name,
            password: pw,
            given_name,
            sn,
            mail,
            parent,
        } => AdminRequest::UserAdd {
            password: password(pw, &name)?,
            name,
            given_name,
            sn,
            mail,
            parent,
        },
        UserCmd::Passwd { name, password: pw } => AdminRequest::UserPasswd {
            password: password(pw, &name)?,
            name,
        },
        UserCmd::Disable { name } => AdminRequest::UserDisable { name },
        UserCmd::Enable { name } => AdminRequest::UserEnable { name },
        UserCmd::Unlock { name } => AdminRequest::UserUnlock { name },
        UserCmd::Show { name } => AdminRequest::UserShow { name },
        UserCmd::Delete { name } => AdminRequest::UserDelete { name },
        UserCmd::List => AdminRequest::UserList,
    };
    run(config, req, json)
}

pub(super) fn group(config: &Config, cmd: GroupCmd, json: bool) -> anyhow::Result<()> {
    let req = match cmd {
        GroupCmd::Add { name, parent } => AdminRequest::GroupAdd { name, parent },
        GroupCmd::Show { name } => AdminRequest::GroupShow { name },
        GroupCmd::List => AdminRequest::GroupList,
        GroupCmd::Delete { name } => AdminRequest::GroupDelete { name },
        GroupCmd::Member(MemberCmd::Add { group, member }) => AdminRequest::Member {
            group,
            member,
            add: true,
        },
        GroupCmd::Member(MemberCmd::Remove { group, member }) => AdminRequest::Member {
            group,
            member,
            add: false,
        },
    };
    run(config, req, json)
}

pub(super) fn ou(config: &Config, cmd: OuCmd, json: bool) -> anyhow::Result<()> {
    let req = match cmd {
        OuCmd::Add { name, parent } => AdminRequest::OuAdd { name, parent },
        OuCmd::Delete { name, parent } => AdminRequest::OuDelete { name, parent },
    };
    run(config, req, json)
}

/// `dird keytab --principal P --out FILE`: the keys are made where the database is (the
/// daemon or this process); the keytab file is written by this process (mode 0600).
pub(super) fn keytab(
    config: &Config,
    principal: &str,
    out: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let mut reply = remote::execute(
        config,
        AdminRequest::Keytab {
            principal: principal.to_string(),
        },
    )?;
    let b64 = reply
        .keytab
        .take()
        .ok_or_else(|| anyhow!("the daemon sent no keytab"))?;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| anyhow!("the daemon sent a malformed keytab: {e}"))?;
    remote::write_private(out, &bytes)?;
    reply.summary = format!("wrote {} {}", out.display(), reply.summary);
    reply.data["file"] = serde_json::json!(out.display().to_string());
    remote::print(&reply, json)
}

/// `dird computer add NAME --out FILE`: a computer account `cn=NAME,cn=Computers` with
/// `host/NAME.<domain>` and a keytab for it.
pub(super) fn computer(config: &Config, cmd: ComputerCmd, json: bool) -> anyhow::Result<()> {
    let ComputerCmd::Add { name, out } = cmd;
    if name.is_empty() || name.contains(['/', '@', '=', ',']) {
        bail!(
            "computer name {name:?}: give a host name such as `client` or `client.{}`",
            config.domain.name
        );
    }
    let fqdn = if name.contains('.') {
        name.to_ascii_lowercase()
    } else {
        format!("{}.{}", name.to_ascii_lowercase(), config.domain.name)
    };
    keytab(config, &format!("host/{fqdn}"), &out, json)
}

/// `dird krbtgt rotate`.
pub(super) fn krbtgt_rotate(config: &Config, json: bool) -> anyhow::Result<()> {
    run(config, AdminRequest::KrbtgtRotate, json)
}

/// `dird trust rotate REALM --password-file F`.
pub(super) fn trust_rotate(
    config: &Config,
    realm: &str,
    password_file: &std::path::Path,
    json: bool,
) -> anyhow::Result<()> {
    let password = crate::daemon::trust::read_password(password_file)?;
    run(
        config,
        AdminRequest::TrustRotate {
            realm: realm.to_owned(),
            password: password.to_string(),
        },
        json,
    )
}

/// `dird status` (offline, it does not provision an empty data directory).
pub(super) fn status(config: &Config, json: bool) -> anyhow::Result<()> {
    let reply = match remote::connect(config)? {
        remote::Transport::Online(mut s) => remote::call(&mut s, &AdminRequest::Status)?,
        remote::Transport::Offline => {
            let admin = remote::offline_with(config, false)?;
            let op = crate::admin::Operator::this_process();
            remote::runtime()?
                .block_on(admin.execute(&op, AdminRequest::Status))
                .map_err(|e| anyhow!(e.message))?
        }
    };
    remote::print(&reply, json)
}
