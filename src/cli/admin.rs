//! `dird init`, `dird user|group|ou …`: local administration through `directory`.

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context};

use crate::backend::Backend;
use crate::cli::{GroupCmd, MemberCmd, OuCmd, UserCmd};
use crate::config::Config;
use crate::daemon::{self, Opened};
use crate::directory::{password, Directory, ReadPolicy, SearchLimits};
use crate::model::{Dn, Entry, ModOp, Modification, Rdn};

/// Opens the instance and builds a directory over it (for one CLI command).
pub(super) fn open_directory(config: &Config) -> anyhow::Result<(Opened, Directory)> {
    open_directory_with(config, true)
}

/// `open_directory`, provisioning an empty store only if `provision` (an LDIF restore brings
/// its own domain root instead).
pub(super) fn open_directory_with(
    config: &Config,
    provision: bool,
) -> anyhow::Result<(Opened, Directory)> {
    let (opened, provisioned) = daemon::open(config, provision).map_err(|e| {
        anyhow!("{e:#}\n(is a dird already running on this data directory? stop it first, or use an LDAP client)")
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
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

/// Resolves a user or group name (sAMAccountName, uid, cn, UPN or DN) to a DN.
async fn resolve(dir: &Directory, local: &dyn Backend, name: &str) -> anyhow::Result<Dn> {
    if name.contains('=') {
        return Dn::parse(name).map_err(|e| anyhow!("{name}: {e}"));
    }
    for attr in ["sAMAccountName", "userPrincipalName", "uid", "cn"] {
        if let Some(dn) = local
            .find_one(attr, name)
            .await
            .map_err(|e| anyhow!("{e}"))?
        {
            return Ok(dn);
        }
    }
    bail!("no entry named {name} under {}", dir.domain().base)
}

fn str_values(vals: &[&str]) -> Vec<Vec<u8>> {
    vals.iter().map(|v| v.as_bytes().to_vec()).collect()
}

pub(super) fn user(config: &Config, cmd: UserCmd) -> anyhow::Result<()> {
    let (opened, dir) = open_directory(config)?;
    let admin = dir.local_admin();
    let now = SystemTime::now();
    let local = opened.local.clone();
    runtime()?.block_on(async {
        match cmd {
            UserCmd::Add {
                name,
                password: pw,
                given_name,
                sn,
                mail,
                parent,
            } => {
                let parent = match parent {
                    Some(p) => Dn::parse(&p).map_err(|e| anyhow!("--parent: {e}"))?,
                    None => opened.domain.users(),
                };
                let dn = parent.child(Rdn::new("cn", &name));
                let mut e = Entry::new(dn.clone());
                e.set(
                    "objectClass",
                    str_values(&[
                        "top",
                        "person",
                        "organizationalPerson",
                        "user",
                        "inetOrgPerson",
                    ]),
                );
                e.set_str("cn", &name);
                e.set_str("sn", sn.as_deref().unwrap_or(&name));
                e.set_str("sAMAccountName", &name);
                e.set_str("uid", &name);
                e.set_str(
                    "userPrincipalName",
                    &format!("{name}@{}", opened.domain.name),
                );
                e.set_str("userAccountControl", "512");
                if let Some(g) = given_name {
                    e.set_str("givenName", &g);
                }
                if let Some(m) = mail {
                    e.set_str("mail", &m);
                }
                let (pw, generated) = match pw {
                    Some(p) => (p, false),
                    None => (password::generate(), true),
                };
                e.set_str("userPassword", &pw);
                dir.add(&admin, e, now)
                    .await
                    .context(format!("adding {dn}"))?;
                println!("added {dn}");
                if generated {
                    println!("password: {pw}");
                }
            }
            UserCmd::Passwd { name, password: pw } => {
                let dn = resolve(&dir, &local, &name).await?;
                let (pw, generated) = match pw {
                    Some(p) => (p, false),
                    None => (password::generate(), true),
                };
                let m = Modification {
                    op: ModOp::Replace,
                    attr: "userPassword".into(),
                    values: vec![pw.clone().into_bytes()],
                };
                // The CLI talks to the database file directly: no network, so confidentiality holds.
                dir.modify(&admin, &dn, vec![m], true, now)
                    .await
                    .context(format!("setting the password of {dn}"))?;
                println!("password of {dn} changed");
                if generated {
                    println!("password: {pw}");
                }
            }
            UserCmd::Disable { name } => set_disabled(&dir, &local, &name, true).await?,
            UserCmd::Enable { name } => set_disabled(&dir, &local, &name, false).await?,
            UserCmd::Unlock { name } => {
                let dn = resolve(&dir, &local, &name).await?;
                let m = Modification {
                    op: ModOp::Replace,
                    attr: "lockoutTime".into(),
                    values: vec![b"0".to_vec()],
                };
                dir.modify(&admin, &dn, vec![m], true, now)
                    .await
                    .context(format!("unlocking {dn}"))?;
                println!("{dn} unlocked");
            }
            UserCmd::Show { name } => {
                let dn = resolve(&dir, &local, &name).await?;
                let e = local
                    .entry(&dn)
                    .await
                    .map_err(|e| anyhow!("{e}"))?
                    .ok_or_else(|| anyhow!("no entry {dn}"))?;
                let legacy = crate::backend::local::has_legacy_password(&e);
                let e = crate::directory::access::redact(e);
                let mut out = Vec::new();
                crate::ldif::LdifWriter::new(&mut out).write_entry(&e)?;
                print!("{}", String::from_utf8_lossy(&out));
                // Comments, so that the output stays valid LDIF.
                if legacy {
                    println!(
                        "# password: a hash migrated from another directory; argon2 and \
                         Kerberos keys on the first successful LDAP bind"
                    );
                }
                let left = local
                    .legacy_password_count()
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                println!("# accounts still on a migrated password hash: {left}");
            }
        }
        Ok::<(), anyhow::Error>(())
    })
}

/// Sets or clears userAccountControl ACCOUNTDISABLE (MS-ADTS §2.2.16).
async fn set_disabled(
    dir: &Directory,
    local: &dyn Backend,
    name: &str,
    disabled: bool,
) -> anyhow::Result<()> {
    let dn = resolve(dir, local, name).await?;
    let e = local
        .entry(&dn)
        .await
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| anyhow!("no entry {dn}"))?;
    let uac: i64 = e
        .first_str("userAccountControl")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(512);
    let new = if disabled {
        uac | crate::directory::UAC_ACCOUNTDISABLE
    } else {
        uac & !crate::directory::UAC_ACCOUNTDISABLE
    };
    let m = Modification {
        op: ModOp::Replace,
        attr: "userAccountControl".into(),
        values: vec![new.to_string().into_bytes()],
    };
    dir.modify(&dir.local_admin(), &dn, vec![m], true, SystemTime::now())
        .await
        .context(format!("updating {dn}"))?;
    println!("{dn} {}", if disabled { "disabled" } else { "enabled" });
    Ok(())
}

/// `dird keytab --principal P --out FILE`.
pub(super) fn keytab(
    config: &Config,
    principal: &str,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let name = crate::model::principal::PrincipalName::parse(principal)
        .map_err(|e| anyhow!("--principal {principal}: {e}"))?;
    let (_opened, dir) = open_directory(config)?;
    let admin = dir.local_admin();
    let now = SystemTime::now();
    let entries = runtime()?
        .block_on(dir.keytab_entries(&admin, &name, now))
        .context(format!("setting random keys for {principal}"))?;
    crate::kdc::keytab::write_keytab(out, &entries, now)
        .with_context(|| format!("writing {}", out.display()))?;
    let kvno = entries.first().map_or(0, |(_, k)| k.kvno);
    let mut names: Vec<String> = entries.iter().map(|(n, _)| n.to_string()).collect();
    names.dedup();
    println!(
        "wrote {} (kvno {kvno}): {}",
        out.display(),
        names.join(", ")
    );
    Ok(())
}

/// `dird krbtgt rotate`.
pub(super) fn krbtgt_rotate(config: &Config) -> anyhow::Result<()> {
    let (_opened, dir) = open_directory(config)?;
    let admin = dir.local_admin();
    let kvno = runtime()?
        .block_on(dir.rotate_krbtgt(&admin, SystemTime::now()))
        .context("rotating the krbtgt keys")?;
    println!(
        "krbtgt keys rotated: new kvno {kvno}; tickets issued under kvno {} stay valid until they expire",
        kvno.saturating_sub(1)
    );
    Ok(())
}

pub(super) fn group(config: &Config, cmd: GroupCmd) -> anyhow::Result<()> {
    let (opened, dir) = open_directory(config)?;
    let admin = dir.local_admin();
    let now = SystemTime::now();
    let local = opened.local.clone();
    runtime()?.block_on(async {
        match cmd {
            GroupCmd::Add { name, parent } => {
                let parent = match parent {
                    Some(p) => Dn::parse(&p).map_err(|e| anyhow!("--parent: {e}"))?,
                    None => opened.domain.users(),
                };
                let dn = parent.child(Rdn::new("cn", &name));
                let mut e = Entry::new(dn.clone());
                e.set("objectClass", str_values(&["top", "group"]));
                e.set_str("cn", &name);
                e.set_str("sAMAccountName", &name);
                e.set_str("groupType", "-2147483646");
                dir.add(&admin, e, now)
                    .await
                    .context(format!("adding {dn}"))?;
                println!("added {dn}");
            }
            GroupCmd::Member(cmd) => {
                let (group, member, op) = match cmd {
                    MemberCmd::Add { group, member } => (group, member, ModOp::Add),
                    MemberCmd::Remove { group, member } => (group, member, ModOp::Delete),
                };
                let gdn = resolve(&dir, &local, &group).await?;
                let mdn = resolve(&dir, &local, &member).await?;
                let m = Modification {
                    op,
                    attr: "member".into(),
                    values: vec![mdn.to_string().into_bytes()],
                };
                dir.modify(&admin, &gdn, vec![m], true, now)
                    .await
                    .context(format!("updating {gdn}"))?;
                println!(
                    "{} {mdn} {} {gdn}",
                    if op == ModOp::Add { "added" } else { "removed" },
                    if op == ModOp::Add { "to" } else { "from" }
                );
            }
        }
        Ok::<(), anyhow::Error>(())
    })
}

pub(super) fn ou(config: &Config, cmd: OuCmd) -> anyhow::Result<()> {
    let (opened, dir) = open_directory(config)?;
    let admin = dir.local_admin();
    let now = SystemTime::now();
    runtime()?.block_on(async {
        let OuCmd::Add { name, parent } = cmd;
        let parent = match parent {
            Some(p) => Dn::parse(&p).map_err(|e| anyhow!("--parent: {e}"))?,
            None => opened.domain.base.clone(),
        };
        let dn = parent.child(Rdn::new("ou", &name));
        let mut e = Entry::new(dn.clone());
        e.set("objectClass", str_values(&["top", "organizationalUnit"]));
        e.set_str("ou", &name);
        dir.add(&admin, e, now)
            .await
            .context(format!("adding {dn}"))?;
        println!("added {dn}");
        Ok(())
    })
}
