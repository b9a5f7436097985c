//! Access control: who may read and write what. The only place such decisions live.
//! May import: `model`, `directory::{identity, error}`.
//! Policy (DESIGN.md §5, issue 2 §6): Domain Admins may do everything; authenticated users
//! read everything but secrets; a user may change their own password; anonymous users get
//! the rootDSE and subschema only unless `anonymous_read` is set; secrets are never returned.
//! Secrets in filters and compares (issue 9 §1): no one, admins included, gets a filter item
//! or a compare evaluated against a secret value; which types are secret is the schema's to
//! say (`Schema::is_secret`), the enforcement is in `model::filter`, the backend and
//! `Directory::compare`.
//! Join delegation (issue 10 §4): members of `[domain] join_group` may add workstation
//! computer accounts in `[domain] join_container`, and modify and reset (kpasswd) the ones
//! they created (`creatorsName`), as AD's "add workstations to the domain" right does. A
//! computer writes its own DNS names, SPNs and OS attributes (`may_modify_own_computer`).

use crate::directory::error::DirError;
use crate::directory::identity::{Authenticated, Identity};
use crate::model::filter::base_attr;
use crate::model::schema::is_listed_secret;
use crate::model::{Dn, Entry, Modification};

/// Password attributes a user may write on their own entry.
pub const PASSWORD_ATTRS: &[&str] = &["userpassword", "unicodepwd"];

/// The read policy of the server.
#[derive(Clone, Copy, Debug)]
pub struct ReadPolicy {
    /// anonymous identities may search the directory
    pub anonymous_read: bool,
}

/// Proof that a write was authorised.
pub struct Allowed<'a> {
    who: &'a Authenticated,
}

impl Allowed<'_> {
    /// The authorised identity.
    pub fn who(&self) -> &Authenticated {
        self.who
    }
}

/// True if `name` (with or without options, by name or OID) is one of the built-in secret
/// attributes (`model::schema::SECRET_ATTRIBUTES`). With the schema at hand, prefer
/// `Schema::is_secret`, which also knows aliases and the operator's secret types.
pub fn is_secret(name: &str) -> bool {
    is_listed_secret(name)
}

/// May this identity search the directory tree (beyond rootDSE and subschema)?
pub fn may_read(policy: ReadPolicy, who: &Identity) -> Result<(), DirError> {
    match who {
        Identity::User(_) => Ok(()),
        Identity::Anonymous if policy.anonymous_read => Ok(()),
        Identity::Anonymous => Err(DirError::InsufficientAccess),
    }
}

/// Admins may add, delete and rename anything.
pub fn may_change_tree<'a>(who: &'a Authenticated) -> Result<Allowed<'a>, DirError> {
    if who.is_admin() {
        Ok(Allowed { who })
    } else {
        Err(DirError::InsufficientAccess)
    }
}

/// Admins may modify anything; users may modify only the password of their own entry.
pub fn may_modify<'a>(
    who: &'a Authenticated,
    target: &Dn,
    mods: &[Modification],
) -> Result<Allowed<'a>, DirError> {
    if who.is_admin() {
        return Ok(Allowed { who });
    }
    let own = who.dn() == target;
    let only_password = mods.iter().all(|m| {
        PASSWORD_ATTRS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(base_attr(&m.attr)))
    });
    if own && only_password {
        Ok(Allowed { who })
    } else {
        Err(DirError::InsufficientAccess)
    }
}

/// May `who` set the password of `target` (Password Modify, kpasswd)?
pub fn may_set_password<'a>(who: &'a Authenticated, target: &Dn) -> Result<Allowed<'a>, DirError> {
    if who.is_admin() || who.dn() == target {
        Ok(Allowed { who })
    } else {
        Err(DirError::InsufficientAccess)
    }
}

/// The object classes of a computer as `adcli join` and Samba add it (with its chain).
const COMPUTER_CLASSES: &[&str] = &["top", "person", "organizationalperson", "user", "computer"];

/// Attributes a delegated joiner (`[domain] join_group`) may set on a computer it creates or
/// created: what adcli and Samba write at join and update (these plus `COMPUTER_SELF_ATTRS`).
/// Passwords go over kpasswd.
const JOIN_ATTRS: &[&str] = &[
    "useraccountcontrol",
    "userprincipalname",
    "description",
    "displayname",
];

/// Attributes a delegated joiner sets only when creating the computer; they stay as created.
const JOIN_CREATE_ONLY_ATTRS: &[&str] = &["cn", "objectclass", "samaccountname"];

/// Is `attr` (a base attribute name) one of `list`, case-insensitively?
fn listed(list: &[&str], attr: &str) -> bool {
    list.iter().any(|j| j.eq_ignore_ascii_case(attr))
}

/// userAccountControl bits a delegated joiner may set (MS-ADTS 2.2.16): ACCOUNTDISABLE,
/// PASSWD_NOTREQD, WORKSTATION_TRUST_ACCOUNT (required), DONT_EXPIRE_PASSWORD. Never
/// SERVER_TRUST_ACCOUNT (a DC), delegation or interdomain trust bits.
const JOIN_UAC_BITS: u64 = 0x2 | 0x20 | 0x1000 | 0x10000;
const UAC_WORKSTATION_TRUST_ACCOUNT: u64 = 0x1000;

/// The join delegation of `[domain] join_group`, with the facts the directory gathered.
pub struct JoinDelegation<'a> {
    /// `who` is a member (nested) of the join group
    pub member: bool,
    /// `[domain] join_container`
    pub container: &'a Dn,
}

fn join_uac_ok(values: &[Vec<u8>]) -> bool {
    values.iter().all(|v| {
        std::str::from_utf8(v)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .is_some_and(|n| n & !JOIN_UAC_BITS == 0 && n & UAC_WORKSTATION_TRUST_ACCOUNT != 0)
    })
}

/// May a delegated joiner add `entry` (the entry as it will be stored, objectClass chain
/// included)? Only a workstation computer account directly in the join container, carrying
/// only the join attributes (`JOIN_CREATE_ONLY_ATTRS`, `JOIN_ATTRS`, `COMPUTER_SELF_ATTRS`).
pub fn may_add_computer<'a>(
    who: &'a Authenticated,
    join: &JoinDelegation<'_>,
    entry: &Entry,
) -> Result<Allowed<'a>, DirError> {
    let classes_ok = entry.is_a("computer")
        && entry.values("objectClass").iter().all(|v| {
            COMPUTER_CLASSES
                .iter()
                .any(|c| c.as_bytes().eq_ignore_ascii_case(v))
        });
    let attrs_ok = entry.attrs().all(|a| {
        let a = base_attr(&a.name);
        listed(JOIN_CREATE_ONLY_ATTRS, a) || listed(JOIN_ATTRS, a) || listed(COMPUTER_SELF_ATTRS, a)
    });
    if join.member
        && classes_ok
        && attrs_ok
        && entry.dn.is_child_of(join.container)
        && join_uac_ok(entry.values("userAccountControl"))
    {
        Ok(Allowed { who })
    } else {
        Err(DirError::InsufficientAccess)
    }
}

/// True if `target` is a computer in the join container that `who` created (AD makes the
/// creator its owner): what a delegated joiner may manage.
fn own_computer(who: &Authenticated, join: &JoinDelegation<'_>, target: &Entry) -> bool {
    join.member
        && target.is_a("computer")
        && target.dn.is_child_of(join.container)
        && target
            .first_str("creatorsName")
            .and_then(|c| Dn::parse(c).ok())
            .is_some_and(|c| &c == who.dn())
}

/// May a delegated joiner modify `target` with `mods`? Only a computer it created, only the
/// join attributes except the naming and class ones, and userAccountControl within the join
/// bits.
pub fn may_modify_computer<'a>(
    who: &'a Authenticated,
    join: &JoinDelegation<'_>,
    target: &Entry,
    mods: &[Modification],
) -> Result<Allowed<'a>, DirError> {
    let mods_ok = mods.iter().all(|m| {
        let a = base_attr(&m.attr);
        (listed(JOIN_ATTRS, a) || listed(COMPUTER_SELF_ATTRS, a))
            && (!a.eq_ignore_ascii_case("userAccountControl") || join_uac_ok(&m.values))
    });
    if mods_ok && own_computer(who, join, target) {
        Ok(Allowed { who })
    } else {
        Err(DirError::InsufficientAccess)
    }
}

/// What a computer may write on its own entry (AD's SELF rights on computer objects: the
/// validated writes of DNS host name and SPN, and what `adcli update` and sssd refresh).
const COMPUTER_SELF_ATTRS: &[&str] = &[
    "dnshostname",
    "msds-additionaldnshostname",
    "serviceprincipalname",
    "msds-supportedencryptiontypes",
    "operatingsystem",
    "operatingsystemversion",
    "operatingsystemservicepack",
    "operatingsystemhotfix",
];

/// May the computer `target` (bound as itself) modify its own entry with `mods`? Only the
/// `COMPUTER_SELF_ATTRS`, and, as AD's validated writes (MS-ADTS 3.1.1.5.3.1.1.4/5), DNS
/// names only of the form `<its name>.<…>`, SPNs only for its own names (its NetBIOS name,
/// its DNS names, old or new).
pub fn may_modify_own_computer<'a>(
    who: &'a Authenticated,
    target: &Entry,
    mods: &[Modification],
) -> Result<Allowed<'a>, DirError> {
    let denied = Err(DirError::InsufficientAccess);
    let short = target
        .first_str("sAMAccountName")
        .and_then(|s| s.strip_suffix('$'))
        .unwrap_or_default()
        .to_ascii_lowercase();
    if who.dn() != &target.dn || !target.is_a("computer") || short.is_empty() {
        return denied;
    }
    let text = |v: &Vec<u8>| String::from_utf8_lossy(v).to_ascii_lowercase();
    let own_dns_name = |v: &Vec<u8>| {
        text(v)
            .split_once('.')
            .is_some_and(|(first, rest)| first == short && !rest.is_empty())
    };
    // The host names the computer's SPNs may name.
    let mut hosts: Vec<String> = vec![short.clone()];
    for attr in ["dNSHostName", "msDS-AdditionalDnsHostName"] {
        hosts.extend(target.values(attr).iter().map(text));
        for m in mods
            .iter()
            .filter(|m| base_attr(&m.attr).eq_ignore_ascii_case(attr))
        {
            hosts.extend(m.values.iter().map(text));
        }
    }
    for m in mods {
        let a = base_attr(&m.attr);
        if !listed(COMPUTER_SELF_ATTRS, a) {
            return denied;
        }
        let valid = if a.eq_ignore_ascii_case("dNSHostName")
            || a.eq_ignore_ascii_case("msDS-AdditionalDnsHostName")
        {
            m.values.iter().all(own_dns_name)
        } else if a.eq_ignore_ascii_case("servicePrincipalName") {
            m.values.iter().all(|v| {
                let spn = text(v);
                let host = spn
                    .split('/')
                    .nth(1)
                    .and_then(|h| h.split(':').next())
                    .unwrap_or_default();
                hosts.iter().any(|h| h == host)
            })
        } else {
            true
        };
        if !valid {
            return denied;
        }
    }
    Ok(Allowed { who })
}

/// May a delegated joiner set the password of `target` (kpasswd set-password)? Only of a
/// computer it created.
pub fn may_reset_computer<'a>(
    who: &'a Authenticated,
    join: &JoinDelegation<'_>,
    target: &Entry,
) -> Result<Allowed<'a>, DirError> {
    if own_computer(who, join, target) {
        Ok(Allowed { who })
    } else {
        Err(DirError::InsufficientAccess)
    }
}

/// Removes the built-in secret attributes from an entry before it leaves the directory (the
/// backend's search results are already stripped by the schema: this is the last guard).
pub fn redact(mut e: Entry) -> Entry {
    let secret: Vec<String> = e
        .attrs()
        .filter(|a| is_listed_secret(&a.name))
        .map(|a| a.name.clone())
        .collect();
    for name in secret {
        e.remove(&name);
    }
    e
}
