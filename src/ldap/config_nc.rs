//! The configuration partition a joining host reads (MS-ADTS §6.1.1.2): `CN=Configuration`,
//! `CN=Partitions` and the domain's crossRef (`nCName`, `dnsRoot`, `nETBIOSName`), served
//! read-only from the domain's settings rather than stored (they follow the config file, and
//! are not directory objects a tier counts).
//! May import: `directory` (DomainInfo), `model`, `backend::Scope` (a value type).

use crate::backend::Scope;
use crate::directory::DomainInfo;
use crate::model::{Dn, Entry, Rdn};

/// `CN=Configuration,<base>`.
pub fn configuration_dn(domain: &DomainInfo) -> Dn {
    domain.base.child(Rdn::new("cn", "Configuration"))
}

/// True if a search base lies in the configuration partition.
pub fn holds(domain: &DomainInfo, base: &Dn) -> bool {
    base.is_within(&configuration_dn(domain))
}

/// The partition's entries within `scope` of `base`.
pub fn search(domain: &DomainInfo, base: &Dn, scope: Scope) -> Vec<Entry> {
    entries(domain)
        .into_iter()
        .filter(|e| match scope {
            Scope::Base => e.dn.norm() == base.norm(),
            Scope::One => e.dn.is_child_of(base),
            Scope::Subtree => e.dn.is_within(base),
            Scope::Children => e.dn.is_within(base) && e.dn.norm() != base.norm(),
        })
        .collect()
}

/// Every entry of the partition.
pub fn entries(domain: &DomainInfo) -> Vec<Entry> {
    let config = configuration_dn(domain);
    let partitions = config.child(Rdn::new("cn", "Partitions"));
    let mut c = Entry::new(config.clone());
    c.set_str("cn", "Configuration");
    set(&mut c, "objectClass", &["top", "configuration"]);
    let mut p = Entry::new(partitions.clone());
    p.set_str("cn", "Partitions");
    set(&mut p, "objectClass", &["top", "crossRefContainer"]);
    let mut x = Entry::new(partitions.child(Rdn::new("cn", &domain.netbios)));
    x.set_str("cn", &domain.netbios);
    set(&mut x, "objectClass", &["top", "crossRef"]);
    x.set_str("nCName", &domain.base.to_string());
    x.set_str("dnsRoot", &domain.name);
    x.set_str("nETBIOSName", &domain.netbios);
    // FLAG_CR_NTDS_NC | FLAG_CR_NTDS_DOMAIN (MS-ADTS §6.1.1.2.1.1.1)
    x.set_str("systemFlags", "3");
    vec![c, p, x]
}

fn set(e: &mut Entry, name: &str, vals: &[&str]) {
    e.set(name, vals.iter().map(|v| v.as_bytes().to_vec()).collect());
}
