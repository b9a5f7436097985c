//! The rootDSE (RFC 4512 §5.1) and the subschema entry, as the LDAP front-end publishes
//! them. May import: `directory`, `model`, `ldap::controls`.
//! The rootDSE carries everything sssd reads on every new connection (see the lab README)
//! plus the AD naming attributes.

use std::time::SystemTime;

use crate::directory::{Directory, Identity};
use crate::ldap::controls;
use crate::model::{Dn, Entry};

/// Controls advertised in `supportedControl`.
pub const SUPPORTED_CONTROLS: &[&str] = &[
    controls::PAGED_RESULTS,
    controls::MANAGE_DSA_IT,
    controls::PASSWORD_POLICY,
];

/// `supportedCapabilities` (MS-ADTS §3.1.1.3.4.3): LDAP_CAP_ACTIVE_DIRECTORY_OID,
/// _V51_OID (2003), _V60_OID (2008), _V61_R2_OID (2008 R2).
pub const AD_CAPABILITIES: &[&str] = &[
    "1.2.840.113556.1.4.800",
    "1.2.840.113556.1.4.1670",
    "1.2.840.113556.1.4.1935",
    "1.2.840.113556.1.4.2080",
];

/// Extended operations advertised in `supportedExtension`.
pub const SUPPORTED_EXTENSIONS: &[&str] = &[
    controls::START_TLS,
    controls::WHO_AM_I,
    controls::PASSWORD_MODIFY,
];

/// RFC 4512 features: all-operational-attributes `+` (RFC 3673), absolute true/false
/// filters (RFC 4526), increment (RFC 4525), objectClass attribute lists (RFC 4529).
pub const SUPPORTED_FEATURES: &[&str] = &[
    "1.3.6.1.4.1.4203.1.5.1",
    "1.3.6.1.4.1.4203.1.5.2",
    "1.3.6.1.4.1.4203.1.5.3",
    "1.3.6.1.1.14",
];

/// DN of the subschema subentry.
pub const SUBSCHEMA_DN: &str = "cn=Subschema";

/// Builds the rootDSE. Administrators also see the tier's usage (DESIGN.md §3): dirdTier,
/// dirdObjectCount, dirdObjectLimit, dirdUserCount and dirdUserLimit (the last absent for
/// tiers without a user cap), and dirdLegacyPasswordCount (accounts still on a migrated hash).
pub async fn root_dse(dir: &Directory, who: &Identity, now: SystemTime) -> Entry {
    let d = dir.domain();
    let base = d.base.to_string();
    let usn = dir.usn().await.unwrap_or(0).to_string();
    let mut e = Entry::new(Dn::root());
    let mut set = |name: &str, vals: &[&str]| {
        e.set(name, vals.iter().map(|v| v.as_bytes().to_vec()).collect())
    };
    set("objectClass", &["top", "rootDSE"]);
    set("namingContexts", &[&base]);
    set("defaultNamingContext", &[&base]);
    set("rootDomainNamingContext", &[&base]);
    let config = format!("CN=Configuration,{base}");
    let schema_nc = format!("CN=Schema,CN=Configuration,{base}");
    set("configurationNamingContext", &[&config]);
    set("schemaNamingContext", &[&schema_nc]);
    set("supportedControl", SUPPORTED_CONTROLS);
    set("supportedExtension", SUPPORTED_EXTENSIONS);
    set("supportedFeatures", SUPPORTED_FEATURES);
    set("supportedLDAPVersion", &["3"]);
    set("supportedSASLMechanisms", crate::ldap::sasl::MECHANISMS);
    set("supportedLDAPPolicies", &["MaxPageSize"]);
    set("subschemaSubentry", &[SUBSCHEMA_DN]);
    set("vendorName", &["dird"]);
    set(
        "vendorVersion",
        &[concat!("dird ", env!("CARGO_PKG_VERSION"))],
    );
    set("highestCommittedUSN", &[&usn]);
    set("dnsHostName", &[&d.host]);
    let service = format!(
        "{}:{}$@{}",
        d.name,
        d.host.split('.').next().unwrap_or("dc"),
        d.realm
    );
    set("ldapServiceName", &[&service]);
    set("isSynchronized", &["TRUE"]);
    set(
        "isGlobalCatalogReady",
        &[if dir.global_catalog() {
            "TRUE"
        } else {
            "FALSE"
        }],
    );
    // What AD clients (adcli, realmd, sssd, Samba's net ads) read to recognise a DC:
    // MS-ADTS §3.1.1.3.2 (rootDSE attributes) and §3.1.1.3.4.3 (capabilities).
    set("supportedCapabilities", AD_CAPABILITIES);
    let short = d
        .host
        .split('.')
        .next()
        .unwrap_or("dc")
        .to_ascii_uppercase();
    let server = format!(
        "CN={short},CN=Servers,CN={},CN=Sites,{config}",
        crate::ldap::netlogon::SITE
    );
    set("dsServiceName", &[&format!("CN=NTDS Settings,{server}")]);
    set("serverName", &[&server]);
    // Windows Server 2008 R2 functional levels (4), as Samba 4.17 provisions by default.
    set("domainFunctionality", &["4"]);
    set("forestFunctionality", &["4"]);
    set("domainControllerFunctionality", &["4"]);
    let time = chrono::DateTime::<chrono::Utc>::from(now)
        .format("%Y%m%d%H%M%S.0Z")
        .to_string();
    set("currentTime", &[&time]);
    if who.user().is_some_and(|u| u.is_admin()) {
        if let (Ok(usage), Some((tier, max_users, max_objects))) =
            (dir.usage().await, dir.object_limits())
        {
            e.set_str("dirdTier", tier);
            e.set_str("dirdObjectCount", &usage.objects.to_string());
            e.set_str("dirdObjectLimit", &max_objects.to_string());
            e.set_str("dirdUserCount", &usage.users.to_string());
            if let Some(max) = max_users {
                e.set_str("dirdUserLimit", &max.to_string());
            }
        }
        // Accounts imported with an OpenLDAP hash that have not bound yet (no argon2, no
        // Kerberos keys).
        if let Ok(n) = dir.legacy_password_count().await {
            e.set_str("dirdLegacyPasswordCount", &n.to_string());
        }
    }
    e
}

/// Builds the subschema subentry.
pub fn subschema(dir: &Directory) -> Entry {
    dir.schema()
        .subschema_entry(Dn::parse(SUBSCHEMA_DN).unwrap_or_else(|_| Dn::root()))
}
