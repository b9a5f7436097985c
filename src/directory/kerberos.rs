//! Kerberos principals over the directory: how a principal name maps to an entry, the key
//! material the KDC needs, kpasswd password changes, random keys (keytab export, krbtgt).
//!
//! May import: `model`, `backend` (trait), `directory::{secrets, access, identity}`. Must not
//! import `kdc`: the composition root adapts these protocol-neutral results to the KDC's
//! `PrincipalDb` (see `daemon::principals`).
//!
//! Name mapping (AD semantics, case-insensitive, within the directory's realm):
//! - one component `name`: the account whose sAMAccountName is `name` (users, `HOST$`);
//! - one component `user@domain` (NT-ENTERPRISE, RFC 6806 §5): the account with that UPN, or
//!   the sAMAccountName `user` when `domain` is ours;
//! - `krbtgt/REALM`: the `krbtgt` account created at provisioning;
//! - anything else (`host/fqdn`, `ldap/fqdn`, …): the account listing it in
//!   servicePrincipalName.

use std::time::SystemTime;

use crate::backend::WriteCtx;
use crate::directory::identity::Authenticated;
use crate::directory::secrets::{self, KeyContext};
use crate::directory::{access, DirError, Directory, DomainInfo, UAC_ACCOUNTDISABLE};
use crate::model::principal::{name_type, KeyMaterial, PrincipalName};
use crate::model::{Dn, Entry, ModOp, Modification, Rdn};

/// sAMAccountName of the ticket-granting service account.
pub const KRBTGT_ACCOUNT: &str = "krbtgt";

/// userAccountControl WORKSTATION_TRUST_ACCOUNT (MS-ADTS §2.2.16): a computer account.
pub const UAC_WORKSTATION_TRUST_ACCOUNT: i64 = 0x1000;

/// What the KDC needs to know about one principal, read from its entry.
#[derive(Clone, Debug)]
pub struct KerberosPrincipal {
    /// The canonical name (sAMAccountName for accounts, the SPN for services).
    pub canonical: PrincipalName,
    /// The salt the password keys were derived with.
    pub salt: String,
    /// The current key version number.
    pub kvno: u32,
    /// Current keys first, then older ones still accepted (krbtgt rotation). Empty when the
    /// account has no password set since Kerberos was enabled.
    pub keys: Vec<KeyMaterial>,
    /// userAccountControl ACCOUNTDISABLE.
    pub disabled: bool,
    /// accountExpires.
    pub expires: Option<SystemTime>,
    /// May be the target of a service ticket (computers, accounts with SPNs, krbtgt).
    pub is_service: bool,
}

/// How a principal name was resolved.
struct Resolved {
    dn: Dn,
    canonical: PrincipalName,
    service: bool,
    /// The entry, when resolving already read it.
    entry: Option<Entry>,
}

impl Directory {
    /// True if passwords also produce Kerberos keys (a master key is configured).
    pub fn kerberos_enabled(&self) -> bool {
        self.master.is_some()
    }

    /// A counter that changes whenever a write commits, so a `kerberos_principal` result
    /// read after observing value G is current for as long as the counter still reads G
    /// (password changes, disabling, deletion, renames, SPN edits all commit a write). `None`
    /// if the backend cannot tell: then nothing may be cached.
    pub fn principal_generation(&self) -> Option<u64> {
        self.backend.generation()
    }

    /// Looks up a principal for the KDC. `None` for unknown names, other realms, entries that
    /// are not accounts, or when Kerberos is not enabled.
    pub async fn kerberos_principal(
        &self,
        name: &PrincipalName,
    ) -> Result<Option<KerberosPrincipal>, DirError> {
        let Some(master) = self.master.clone() else {
            return Ok(None);
        };
        let Some(found) = self.resolve_principal(name).await? else {
            return Ok(None);
        };
        let entry = match found.entry {
            Some(e) => e,
            None => match self.backend.entry(&found.dn).await? {
                Some(e) => e,
                None => return Ok(None),
            },
        };
        if !secrets::is_principal(&entry) {
            return Ok(None);
        }
        let stored = secrets::open_entry_keys(&entry, &master)?;
        let (salt, keys) = match stored {
            Some(s) => (s.salt.clone(), s.keys.clone()),
            None => (String::new(), Vec::new()),
        };
        let kvno = keys.first().map_or(0, |k| k.kvno);
        Ok(Some(KerberosPrincipal {
            canonical: found.canonical,
            salt,
            kvno,
            keys,
            disabled: super::uac(&entry) & UAC_ACCOUNTDISABLE != 0,
            expires: secrets::account_expires(&entry),
            is_service: found.service
                || entry.is_a("computer")
                || entry.has("servicePrincipalName"),
        }))
    }

    /// kpasswd (RFC 3244): the principal, already authenticated by the KDC with an initial
    /// ticket, sets its own password through the directory's one password path (policy,
    /// hash and keys, one transaction).
    pub async fn kerberos_change_password(
        &self,
        name: &PrincipalName,
        new_password: &str,
        now: SystemTime,
    ) -> Result<(), DirError> {
        let Some(found) = self.resolve_principal(name).await? else {
            return Err(DirError::NoSuchObject {
                matched: Dn::root(),
            });
        };
        let me = Authenticated::new(found.dn.clone(), false);
        let allowed = access::may_set_password(&me, &found.dn)?;
        let by = allowed.who().dn().clone();
        self.set_password(by, &found.dn, new_password.as_bytes().to_vec(), now)
            .await
    }

    /// Gives the account at `dn` fresh random keys with the next kvno (its password, if any,
    /// no longer works for Kerberos). With `keep_previous`, the current keys remain usable
    /// for decryption (krbtgt rotation). Returns the new keys.
    pub async fn set_random_keys(
        &self,
        who: &Authenticated,
        dn: &Dn,
        keep_previous: bool,
        now: SystemTime,
    ) -> Result<Vec<KeyMaterial>, DirError> {
        let allowed = access::may_change_tree(who)?;
        let Some(master) = self.master.clone() else {
            return Err(DirError::UnwillingToPerform("Kerberos is not enabled"));
        };
        let Some(entry) = self.backend.entry(dn).await? else {
            return Err(self.missing(dn).await);
        };
        let realm = self.domain.realm.clone();
        let (blob, kvno, fresh) = self
            .hasher
            .run(move || {
                let ctx = KeyContext {
                    realm: &realm,
                    master: &master,
                };
                secrets::random_secrets(&entry, ctx, keep_previous)
            })
            .await?;
        let mods = vec![
            Modification {
                op: ModOp::Replace,
                attr: secrets::KEYS_ATTR.into(),
                values: vec![blob],
            },
            Modification {
                op: ModOp::Replace,
                attr: secrets::KVNO_ATTR.into(),
                values: vec![kvno.to_string().into_bytes()],
            },
        ];
        let ctx = WriteCtx {
            by: allowed.who().dn().clone(),
            now,
        };
        self.backend.modify(dn, mods, true, &ctx).await?;
        Ok(fresh)
    }

    /// `dird krbtgt rotate`: new krbtgt keys with kvno+1; the previous keys stay valid so
    /// that tickets issued before the rotation keep working until they expire. Returns the
    /// new kvno.
    pub async fn rotate_krbtgt(
        &self,
        who: &Authenticated,
        now: SystemTime,
    ) -> Result<u32, DirError> {
        let dn = self.krbtgt_dn().await?;
        let keys = self.set_random_keys(who, &dn, true, now).await?;
        Ok(keys.first().map_or(0, |k| k.kvno))
    }

    /// `dird keytab`: finds or creates the account of `principal` (a computer
    /// `cn=SHORT,cn=Computers` with sAMAccountName `SHORT$`, dNSHostName and SPNs for
    /// `service/fqdn`; an existing account for a plain name or a known SPN), gives it fresh
    /// random keys and returns keytab entries for the requested name, each SPN of the
    /// account and its sAMAccountName.
    pub async fn keytab_entries(
        &self,
        who: &Authenticated,
        principal: &PrincipalName,
        now: SystemTime,
    ) -> Result<Vec<(PrincipalName, KeyMaterial)>, DirError> {
        access::may_change_tree(who)?;
        let realm = self.domain.realm.clone();
        if !principal.realm.is_empty() && !principal.realm.eq_ignore_ascii_case(&realm) {
            return Err(DirError::UnwillingToPerform(
                "the principal is not in this directory's realm",
            ));
        }
        let dn = match self.resolve_principal(principal).await? {
            Some(found) => found.dn,
            None if principal.components.len() >= 2 => {
                self.ensure_computer(who, principal, now).await?
            }
            None => {
                return Err(DirError::NoSuchObject {
                    matched: Dn::root(),
                })
            }
        };
        let keys = self.set_random_keys(who, &dn, false, now).await?;
        let Some(entry) = self.backend.entry(&dn).await? else {
            return Err(self.missing(&dn).await);
        };
        let mut names = vec![principal.clone().with_realm(&realm)];
        let spns = entry
            .values("servicePrincipalName")
            .iter()
            .filter_map(|v| std::str::from_utf8(v).ok())
            .filter_map(|s| PrincipalName::parse(s).ok());
        let sam = entry
            .first_str("sAMAccountName")
            .map(|s| PrincipalName::new(vec![s.to_owned()], realm.as_str()));
        for name in spns.chain(sam) {
            let name = name.with_realm(&realm);
            if !names.iter().any(|n| n.eq_ignore_case(&name)) {
                names.push(name);
            }
        }
        Ok(names
            .into_iter()
            .flat_map(|n| keys.iter().map(move |k| (n.clone(), k.clone())))
            .collect())
    }

    async fn krbtgt_dn(&self) -> Result<Dn, DirError> {
        self.backend
            .find_one("sAMAccountName", KRBTGT_ACCOUNT)
            .await?
            .ok_or(DirError::NoSuchObject {
                matched: Dn::root(),
            })
    }

    /// Creates `cn=SHORT,cn=Computers` for `service/fqdn`, or adds the SPN to it.
    async fn ensure_computer(
        &self,
        who: &Authenticated,
        principal: &PrincipalName,
        now: SystemTime,
    ) -> Result<Dn, DirError> {
        let spn = principal.joined();
        let fqdn = principal
            .components
            .get(1)
            .map(|h| h.to_ascii_lowercase())
            .unwrap_or_default();
        let short = fqdn
            .split('.')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        if short.is_empty() {
            return Err(DirError::UnwillingToPerform(
                "no host name in the principal",
            ));
        }
        let dn = self
            .domain
            .base
            .child(Rdn::new("cn", "Computers"))
            .child(Rdn::new("cn", &short));
        if self.backend.entry(&dn).await?.is_some() {
            let mods = vec![Modification {
                op: ModOp::Add,
                attr: "servicePrincipalName".into(),
                values: vec![spn.into_bytes()],
            }];
            self.modify(who, &dn, mods, true, now).await?;
            return Ok(dn);
        }
        let mut spns: Vec<String> = vec![spn];
        for extra in [format!("host/{fqdn}"), format!("HOST/{short}")] {
            if !spns.iter().any(|s| s.eq_ignore_ascii_case(&extra)) {
                spns.push(extra);
            }
        }
        let mut e = Entry::new(dn.clone());
        e.set(
            "objectClass",
            ["top", "person", "organizationalPerson", "user", "computer"]
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect(),
        );
        e.set_str("cn", &short);
        e.set_str("sAMAccountName", &format!("{short}$"));
        e.set_str(
            "userAccountControl",
            &UAC_WORKSTATION_TRUST_ACCOUNT.to_string(),
        );
        if fqdn.contains('.') {
            e.set_str("dNSHostName", &fqdn);
        }
        e.set(
            "servicePrincipalName",
            spns.into_iter().map(String::into_bytes).collect(),
        );
        self.add(who, e, now).await?;
        Ok(dn)
    }

    async fn resolve_principal(&self, name: &PrincipalName) -> Result<Option<Resolved>, DirError> {
        let realm = self.domain.realm.as_str();
        if !name.realm.is_empty() && !name.realm.eq_ignore_ascii_case(realm) {
            return Ok(None);
        }
        let account = |sam: &str| PrincipalName::new(vec![sam.to_owned()], realm);
        match name.components.as_slice() {
            [one] if one.contains('@') || name.name_type == name_type::ENTERPRISE => {
                let dn = match self.backend.find_one("userPrincipalName", one).await? {
                    Some(dn) => Some(dn),
                    None => match one.rsplit_once('@') {
                        Some((user, domain))
                            if !user.is_empty()
                                && (domain.eq_ignore_ascii_case(&self.domain.name)
                                    || domain.eq_ignore_ascii_case(realm)) =>
                        {
                            self.backend.find_one("sAMAccountName", user).await?
                        }
                        _ => None,
                    },
                };
                let Some(dn) = dn else { return Ok(None) };
                let Some(entry) = self.backend.entry(&dn).await? else {
                    return Ok(None);
                };
                let Some(sam) = entry.first_str("sAMAccountName") else {
                    return Ok(None);
                };
                Ok(Some(Resolved {
                    canonical: account(sam),
                    dn,
                    service: false,
                    entry: Some(entry),
                }))
            }
            [one] => {
                let Some(dn) = self.backend.find_one("sAMAccountName", one).await? else {
                    return Ok(None);
                };
                let Some(entry) = self.backend.entry(&dn).await? else {
                    return Ok(None);
                };
                let sam = entry.first_str("sAMAccountName").unwrap_or(one.as_str());
                Ok(Some(Resolved {
                    canonical: account(sam),
                    dn,
                    service: false,
                    entry: Some(entry),
                }))
            }
            _ if name.is_krbtgt_for(realm) => Ok(self
                .backend
                .find_one("sAMAccountName", KRBTGT_ACCOUNT)
                .await?
                .map(|dn| Resolved {
                    dn,
                    canonical: PrincipalName::krbtgt(realm),
                    service: true,
                    entry: None,
                })),
            [first, ..] if first.eq_ignore_ascii_case("krbtgt") => Ok(None), // other realms
            _ => {
                let spn = name.joined();
                Ok(self
                    .backend
                    .find_one("servicePrincipalName", &spn)
                    .await?
                    .map(|dn| Resolved {
                        dn,
                        canonical: PrincipalName {
                            name_type: name.name_type,
                            components: name.components.clone(),
                            realm: realm.to_owned(),
                        },
                        service: true,
                        entry: None,
                    }))
            }
        }
    }
}

/// The krbtgt account created at provisioning: `cn=krbtgt,cn=Users`, disabled for LDAP binds
/// (it has no password; its keys are random), like AD's.
pub fn krbtgt_entry(domain: &DomainInfo) -> Entry {
    let mut e = Entry::new(domain.users().child(Rdn::new("cn", KRBTGT_ACCOUNT)));
    e.set(
        "objectClass",
        ["top", "person", "organizationalPerson", "user"]
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect(),
    );
    e.set_str("cn", KRBTGT_ACCOUNT);
    e.set_str("sn", KRBTGT_ACCOUNT);
    e.set_str("sAMAccountName", KRBTGT_ACCOUNT);
    e.set_str("description", "Key Distribution Center Service Account");
    // ACCOUNTDISABLE | NORMAL_ACCOUNT, as AD's krbtgt (514).
    e.set_str("userAccountControl", "514");
    e
}

/// Gives a new (not yet stored) entry random keys with kvno 1 (provisioning).
pub fn seal_new_random_keys(entry: &mut Entry, ctx: KeyContext<'_>) -> Result<(), DirError> {
    secrets::ensure_guid(entry);
    let (blob, kvno, _) = secrets::random_secrets(entry, ctx, false)?;
    entry.set(secrets::KEYS_ATTR, vec![blob]);
    entry.set_str(secrets::KVNO_ATTR, &kvno.to_string());
    Ok(())
}
