//! Provisioning: the DIT of DESIGN.md §4 (domain root, cn=Users, cn=Computers,
//! ou=Domain Controllers, Administrator in Domain Admins, the built-in groups) with a random
//! domain SID, written in one transaction, plus the `krbtgt` account with random keys and the
//! DC's own computer account (`dc_account`: the `ldap/`, `host/`, `GC/` … principals).
//! May import: `backend`, `store`, `model`, `config`, `directory::{password, policy, secrets, kerberos}`.

use std::time::SystemTime;

use rand::Rng;

use crate::backend::local::{sid_with_rid, Local, META_DOMAIN_SID};
use crate::backend::{BackendError, WriteCtx};
use crate::config::Tier;
use crate::directory::kerberos::{krbtgt_entry, seal_new_random_keys};
use crate::directory::secrets::{self, KeyContext, MasterKey};
use crate::directory::DomainInfo;
use crate::directory::{password, policy};
use crate::model::{Entry, Rdn};
use crate::store::{Store, StoreRead};

/// Meta key set once the DIT exists.
pub const META_PROVISIONED: &str = "provisioned";

/// What provisioning produced.
#[derive(Debug)]
pub struct Provisioned {
    /// the administrator's password when dird generated it (print it once)
    pub generated_password: Option<String>,
}

/// True if the store already holds a provisioned domain.
pub fn is_provisioned(store: &Store) -> Result<bool, BackendError> {
    let txn = store
        .read()
        .map_err(|e| BackendError::Store(e.to_string()))?;
    Ok(txn
        .meta(META_PROVISIONED)
        .map_err(|e| BackendError::Store(e.to_string()))?
        .is_some())
}

/// A fresh domain SID `S-1-5-21-x-y-z` in binary form (MS-DTYP §2.4.2.2).
pub fn new_domain_sid() -> Vec<u8> {
    let mut rng = rand::thread_rng();
    let mut sid = vec![1u8, 4, 0, 0, 0, 0, 0, 5];
    for sub in [21u32, rng.gen(), rng.gen(), rng.gen()] {
        sid.extend_from_slice(&sub.to_le_bytes());
    }
    sid
}

/// Writes the domain SID meta record (before the backend is built, so that it allocates
/// SIDs in this domain).
pub fn set_domain_sid(store: &Store, sid: &[u8]) -> Result<(), BackendError> {
    let mut txn = store
        .write()
        .map_err(|e| BackendError::Store(e.to_string()))?;
    txn.set_meta(META_DOMAIN_SID, sid)
        .map_err(|e| BackendError::Store(e.to_string()))?;
    txn.commit().map_err(|e| BackendError::Store(e.to_string()))
}

/// Creates the DIT. `admin_password`: from `DIRD_ADMIN_PASSWORD`, or generated when `None`.
pub fn provision(
    local: &Local,
    domain: &DomainInfo,
    domain_sid: &[u8],
    admin_password: Option<String>,
    master: &MasterKey,
) -> Result<Provisioned, BackendError> {
    let (pw, generated) = match admin_password {
        Some(p) if !p.is_empty() => (p, None),
        _ => {
            let g = password::generate();
            (g.clone(), Some(g))
        }
    };
    let keys = KeyContext {
        realm: &domain.realm,
        master,
    };
    let base = &domain.base;
    let users = domain.users();
    let first_label = domain.name.split('.').next().unwrap_or("dc").to_string();
    let mut entries = Vec::new();

    let mut root = Entry::new(base.clone());
    set(&mut root, "objectClass", &["top", "domain", "domainDNS"]);
    set(&mut root, "dc", &[&first_label]);
    set(&mut root, "name", &[&first_label]);
    root.set("objectSid", vec![domain_sid.to_vec()]);
    for (attr, value) in policy::DOMAIN_DEFAULTS {
        set(&mut root, attr, &[value]);
    }
    let links = well_known_objects(domain);
    set(
        &mut root,
        "wellKnownObjects",
        &links.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    entries.push(root);
    entries.extend(policy_containers(domain));

    for (rdn, desc) in [
        ("Users", "Default container for upgraded user accounts"),
        (
            "Computers",
            "Default container for upgraded computer accounts",
        ),
    ] {
        let mut c = Entry::new(base.child(Rdn::new("cn", rdn)));
        set(&mut c, "objectClass", &["top", "container"]);
        set(&mut c, "cn", &[rdn]);
        set(&mut c, "description", &[desc]);
        entries.push(c);
    }
    let mut dcs = Entry::new(base.child(Rdn::new("ou", "Domain Controllers")));
    set(&mut dcs, "objectClass", &["top", "organizationalUnit"]);
    set(&mut dcs, "ou", &["Domain Controllers"]);
    set(
        &mut dcs,
        "description",
        &["Default container for domain controllers"],
    );
    entries.push(dcs);

    let admin_dn = domain.administrator();
    let mut admin = Entry::new(admin_dn.clone());
    set(
        &mut admin,
        "objectClass",
        &["top", "person", "organizationalPerson", "user"],
    );
    set(&mut admin, "cn", &["Administrator"]);
    set(&mut admin, "sn", &["Administrator"]);
    set(&mut admin, "sAMAccountName", &["Administrator"]);
    let upn = format!("Administrator@{}", domain.name);
    set(&mut admin, "userPrincipalName", &[&upn]);
    set(
        &mut admin,
        "description",
        &["Built-in account for administering the domain"],
    );
    set(&mut admin, "userAccountControl", &["66048"]);
    set(&mut admin, "primaryGroupID", &["513"]);
    admin.set("objectSid", vec![sid_with_rid(domain_sid, 500)]);
    admin.set("userPassword", vec![pw.into_bytes()]);
    let rules = password::PasswordRules::default();
    set(
        &mut admin,
        "pwdLastSet",
        &[&policy::to_filetime(SystemTime::now()).to_string()],
    );
    secrets::prepare_new_entry(
        &mut admin,
        Some(keys),
        crate::directory::pwvalue::Writer::User,
        &rules,
        SystemTime::now(),
    )
    .map_err(|e| BackendError::Store(format!("Administrator password: {e}")))?;

    let mut krbtgt = krbtgt_entry(domain);
    seal_new_random_keys(&mut krbtgt, keys)
        .map_err(|e| BackendError::Store(format!("krbtgt keys: {e}")))?;
    entries.push(krbtgt);
    let mut dc = dc_account(domain);
    seal_new_random_keys(&mut dc, keys)
        .map_err(|e| BackendError::Store(format!("DC account keys: {e}")))?;
    entries.push(dc);

    for (name, rid, desc) in [
        (
            "Domain Admins",
            512u32,
            "Designated administrators of the domain",
        ),
        ("Domain Users", 513, "All domain users"),
        (
            "Domain Computers",
            515,
            "All workstations and servers joined to the domain",
        ),
    ] {
        let mut g = Entry::new(users.child(Rdn::new("cn", name)));
        set(&mut g, "objectClass", &["top", "group"]);
        set(&mut g, "cn", &[name]);
        set(&mut g, "sAMAccountName", &[name]);
        set(&mut g, "description", &[desc]);
        set(&mut g, "groupType", &["-2147483646"]);
        g.set("objectSid", vec![sid_with_rid(domain_sid, rid)]);
        if rid == 512 {
            set(&mut g, "member", &[&admin_dn.to_string()]);
        }
        entries.push(g);
    }
    // After the groups: the Administrator's gidNumber is Domain Users' (its primary group).
    entries.push(admin);
    let ctx = WriteCtx {
        by: admin_dn,
        now: SystemTime::now(),
    };
    local.add_batch_blocking(entries, &ctx, &[(META_PROVISIONED, b"1")])?;
    Ok(Provisioned {
        generated_password: generated,
    })
}

/// Adds the krbtgt account to a domain provisioned before Kerberos existed (a no-op when it
/// is there already).
pub fn ensure_krbtgt(
    local: &Local,
    domain: &DomainInfo,
    master: &MasterKey,
) -> Result<(), BackendError> {
    ensure_keyed_account(local, domain, master, krbtgt_entry(domain), "krbtgt")
}

/// Adds `entry` with fresh random Kerberos keys sealed under `master`, unless an entry with
/// its DN exists already (a start-time upgrade of an older data directory). `what` names the
/// account in errors.
fn ensure_keyed_account(
    local: &Local,
    domain: &DomainInfo,
    master: &MasterKey,
    mut entry: Entry,
    what: &str,
) -> Result<(), BackendError> {
    let exists = local
        .store()
        .read()
        .and_then(|txn| txn.id_of(&entry.dn))
        .map_err(|e| BackendError::Store(e.to_string()))?
        .is_some();
    if exists {
        return Ok(());
    }
    let keys = KeyContext {
        realm: &domain.realm,
        master,
    };
    seal_new_random_keys(&mut entry, keys)
        .map_err(|e| BackendError::Store(format!("{what} keys: {e}")))?;
    let ctx = WriteCtx {
        by: domain.administrator(),
        now: SystemTime::now(),
    };
    match local.add_batch_blocking(vec![entry], &ctx, &[]) {
        Ok(()) | Err(BackendError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// userAccountControl of a domain controller: SERVER_TRUST_ACCOUNT (0x2000) |
/// TRUSTED_FOR_DELEGATION (0x80000), as AD sets it (MS-ADTS §2.2.16).
pub const UAC_DOMAIN_CONTROLLER: u32 = 0x2000 | 0x80000;

/// The DC's computer account, `cn=SHORT,ou=Domain Controllers,<base>`: `SHORT$`, its
/// dNSHostName and the service principal names AD registers for a DC (MS-DRSR §2.2.3.2 lists
/// them; dird serves LDAP, the global catalog name and host/), in short and long forms.
/// Keys are added by the caller.
pub fn dc_account(domain: &DomainInfo) -> Entry {
    let host = domain.host.to_ascii_lowercase();
    let short = host.split('.').next().unwrap_or("dc1").to_ascii_uppercase();
    let (name, netbios) = (&domain.name, &domain.netbios);
    let dn = domain
        .base
        .child(Rdn::new("ou", "Domain Controllers"))
        .child(Rdn::new("cn", &short));
    let mut e = Entry::new(dn);
    set(
        &mut e,
        "objectClass",
        &["top", "person", "organizationalPerson", "user", "computer"],
    );
    set(&mut e, "cn", &[&short]);
    set(&mut e, "sAMAccountName", &[&format!("{short}$")]);
    set(&mut e, "dNSHostName", &[&host]);
    set(
        &mut e,
        "userAccountControl",
        &[&UAC_DOMAIN_CONTROLLER.to_string()],
    );
    set(&mut e, "primaryGroupID", &["516"]);
    set(&mut e, "operatingSystem", &["dird"]);
    let mut spns = Vec::new();
    for service in ["ldap", "HOST"] {
        spns.push(format!("{service}/{host}"));
        spns.push(format!("{service}/{host}/{name}"));
        spns.push(format!("{service}/{host}/{netbios}"));
        spns.push(format!("{service}/{short}"));
        spns.push(format!("{service}/{short}/{netbios}"));
    }
    spns.push(format!("GC/{host}/{name}"));
    spns.push(format!("RestrictedKrbHost/{host}"));
    spns.push(format!("RestrictedKrbHost/{short}"));
    let spns: Vec<&str> = spns.iter().map(String::as_str).collect();
    set(&mut e, "servicePrincipalName", &spns);
    e
}

/// Adds the DC's computer account (`dc_account`) to a domain provisioned before it existed,
/// or for a `dc_hostname` whose account is missing; a no-op when it is there.
pub fn ensure_dc_account(
    local: &Local,
    domain: &DomainInfo,
    master: &MasterKey,
) -> Result<(), BackendError> {
    match ensure_keyed_account(local, domain, master, dc_account(domain), "DC account") {
        Err(BackendError::AdminLimit(m)) => {
            tracing::warn!(limit = %m, "the DC computer account was not created");
            Ok(())
        }
        other => other,
    }
}

/// The domain root's `wellKnownObjects` (MS-ADTS §6.1.1.4): `B:32:<GUID>:<DN>` for the
/// containers dird provisions; adcli finds the computers container through it.
pub fn well_known_objects(domain: &DomainInfo) -> Vec<String> {
    let base = &domain.base;
    [
        (
            "A9D1CA15768811D1ADED00C04FD8D5CD",
            base.child(Rdn::new("cn", "Users")),
        ),
        (
            "AA312825768811D1ADED00C04FD8D5CD",
            base.child(Rdn::new("cn", "Computers")),
        ),
        (
            "AB1D30F3768811D1ADED00C04FD8D5CD",
            base.child(Rdn::new("cn", policy::SYSTEM_CN)),
        ),
        (
            "A361B2FFFFD211D1AA4B00C04FD7D83A",
            base.child(Rdn::new("ou", "Domain Controllers")),
        ),
    ]
    .iter()
    .map(|(guid, dn)| format!("B:32:{guid}:{dn}"))
    .collect()
}

/// Adds `wellKnownObjects` to the root of a domain provisioned before it existed (a no-op
/// when present).
pub fn ensure_well_known_objects(local: &Local, domain: &DomainInfo) -> Result<(), BackendError> {
    let store_err = |e: crate::store::StoreError| BackendError::Store(e.to_string());
    let mut txn = local.store().write().map_err(store_err)?;
    if let Some((id, mut root)) = txn.entry_by_dn(&domain.base).map_err(store_err)? {
        if !root.has("wellKnownObjects") && root.is_a("domainDNS") {
            let links = well_known_objects(domain);
            root.set(
                "wellKnownObjects",
                links.into_iter().map(String::into_bytes).collect(),
            );
            txn.replace(id, &root).map_err(store_err)?;
            txn.commit().map_err(store_err)?;
        }
    }
    Ok(())
}

/// Refuses to serve when the directory holds more than the configured tier allows (the
/// tier was lowered below current usage): writes would all fail, and the operator should
/// learn it at start, with the numbers.
pub async fn check_tier(local: &Local, tier: Tier) -> anyhow::Result<()> {
    use crate::backend::Backend as _;
    let usage = local
        .usage()
        .await
        .map_err(|e| anyhow::anyhow!("reading the object count: {e}"))?;
    let (max_users, max_objects) = tier.limits();
    let name = tier.name();
    if usage.objects > max_objects {
        anyhow::bail!(
            "tier: \"{name}\" allows {max_objects} directory objects, but the directory holds {}; \
             configure a larger tier (or delete objects under the previous tier first)",
            usage.objects
        );
    }
    if let Some(max_users) = max_users {
        if usage.users > max_users {
            anyhow::bail!(
                "tier: \"{name}\" allows {max_users} users, but the directory holds {}; \
                 configure a larger tier (or delete users under the previous tier first)",
                usage.users
            );
        }
    }
    Ok(())
}

/// `cn=System` and `cn=Password Settings Container,cn=System` (AD's place for fine-grained
/// password policies).
fn policy_containers(domain: &DomainInfo) -> Vec<Entry> {
    let pso = policy::pso_container(&domain.base);
    let mut system = Entry::new(domain.base.child(Rdn::new("cn", policy::SYSTEM_CN)));
    set(&mut system, "objectClass", &["top", "container"]);
    set(&mut system, "cn", &[policy::SYSTEM_CN]);
    set(&mut system, "description", &["Builtin system settings"]);
    let mut c = Entry::new(pso);
    set(
        &mut c,
        "objectClass",
        &["top", "msDS-PasswordSettingsContainer"],
    );
    set(&mut c, "cn", &[policy::PSO_CONTAINER_CN]);
    vec![system, c]
}

/// Brings a domain provisioned before account policy existed up to date: the domain
/// object gets the default policy attributes it lacks, and the password settings containers
/// are created. A no-op on current data; a full tier only skips the containers (logged).
pub fn ensure_policy(local: &Local, domain: &DomainInfo) -> Result<(), BackendError> {
    let store_err = |e: crate::store::StoreError| BackendError::Store(e.to_string());
    {
        let mut txn = local.store().write().map_err(store_err)?;
        if let Some((id, mut root)) = txn.entry_by_dn(&domain.base).map_err(store_err)? {
            let mut changed = false;
            for (attr, value) in policy::DOMAIN_DEFAULTS {
                if !root.has(attr) {
                    root.set_str(attr, value);
                    changed = true;
                }
            }
            if changed && root.is_a("domainDNS") {
                txn.replace(id, &root).map_err(store_err)?;
                txn.commit().map_err(store_err)?;
            }
        }
    }
    let missing: Vec<Entry> = {
        let txn = local.store().read().map_err(store_err)?;
        let mut out = Vec::new();
        for e in policy_containers(domain) {
            if txn.id_of(&e.dn).map_err(store_err)?.is_none() {
                out.push(e);
            }
        }
        out
    };
    if missing.is_empty() {
        return Ok(());
    }
    let ctx = WriteCtx {
        by: domain.administrator(),
        now: SystemTime::now(),
    };
    match local.add_batch_blocking(missing, &ctx, &[]) {
        Ok(()) | Err(BackendError::AlreadyExists(_)) => Ok(()),
        Err(BackendError::AdminLimit(m)) => {
            tracing::warn!(limit = %m, "password settings containers not created");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn set(e: &mut Entry, name: &str, vals: &[&str]) {
    e.set(name, vals.iter().map(|v| v.as_bytes().to_vec()).collect());
}
