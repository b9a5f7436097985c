//! `dird-bench`: the benchmark tool behind BENCHMARKS.md. Generates a directory as LDIF
//! (`gen`: AD-style for dird, or as OpenLDAP holds it, for slapadd and `dird import` alike),
//! drives LDAP load against any server (`search`, `sssd`, `substring`, `bind`, `bind-repeat`,
//! `modify`, `mixed`), dird or OpenLDAP slapd alike, with the independent `ldap3` client
//! library, and Kerberos load against any KDC (`kdc-as`, `kdc-tgs`), dird or MIT krb5kdc
//! alike, with the independent `krb5` client. Every load ends with one machine-readable
//! `RESULT` line (ops/s, p50/p99/p99.9) that `scripts/bench-pin.sh` collects.
//! May import: `dird::directory::password` (one precomputed argon2 hash for every generated
//! user), `ldap3`, `krb5` (client side only; never dird's own `kdc` codec), `ring` (SHA-1 of
//! the generated `{SSHA}` values). It is a benchmark, not a test: nothing here runs under
//! `cargo test` except the `gen` smoke tests in `tests/bench_gen.rs`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand, ValueEnum};
use ldap3::{LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use rand::{Rng, SeedableRng};

/// The password of every generated user (documented in BENCHMARKS.md).
const USER_PASSWORD: &str = "Bench-Passw0rd!";
/// Base DN of the generated directory.
const BASE: &str = "dc=example,dc=com";
/// First uidNumber/gidNumber handed out.
const FIRST_ID: u64 = 100_000;

#[derive(Parser, Debug)]
#[command(
    name = "dird-bench",
    about = "Data generator and LDAP load driver for BENCHMARKS.md"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write a directory (ou=People, ou=Groups under dc=example,dc=com) as LDIF.
    Gen {
        /// Number of users (cn=userN,ou=People,…, N = 1..=users).
        #[arg(long)]
        users: u64,
        /// Number of groups (cn=groupN,ou=Groups,…); default users/10.
        #[arg(long)]
        groups: Option<u64>,
        /// Members per group (users are assigned round-robin, so each user is in
        /// groups*members/users groups).
        #[arg(long, default_value_t = 50)]
        members: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// `dird`: user/group AD classes, `cn=userN` users, for `dird import` on a provisioned
        /// domain (the base entry exists). `openldap`: the directory as OpenLDAP holds it
        /// (issue 14): `uid=userN` inetOrgPerson + posixAccount users with a salted `{SSHA}`
        /// password each (as slapcat prints them), groupOfNames + posixGroup groups with
        /// `member` and the matching explicit `memberUid` values, and no base entry (`dird
        /// import` runs on a provisioned domain; `slapadd` takes `--base-entry`), for slapadd
        /// with the core/cosine/inetorgperson schemas and rfc2307bis (posixGroup auxiliary),
        /// and for `dird import`.
        #[arg(long, value_enum, default_value_t = Flavor::Dird)]
        flavor: Flavor,
        /// Also write the base entry `dc=example,dc=com` (dcObject + organization) first, as
        /// slapadd needs it (the `openldap` flavour only; `dird import` refuses it on a
        /// provisioned domain, where it exists).
        #[arg(long)]
        base_entry: bool,
        /// Precomputed value (e.g. an `{ARGON2}` PHC string) to store as every userPassword
        /// (default: the `dird` flavour hashes the built-in password once with argon2, the
        /// `openldap` flavour writes a differently salted `{SSHA}` per user).
        #[arg(long, conflicts_with_all = ["plaintext_password", "no_passwords"])]
        password_hash: Option<String>,
        /// Write no userPassword at all (the import comparison of issue 14 is "passwords
        /// removed").
        #[arg(long, conflicts_with = "plaintext_password")]
        no_passwords: bool,
        /// Store the built-in password in the clear, so that `dird import` hashes it and
        /// derives each user's Kerberos keys (import derives keys from plaintext only; a
        /// precomputed `{ARGON2}` value gives users no keys). Slow: argon2 and four PBKDF2
        /// string-to-keys per user at import.
        #[arg(long)]
        plaintext_password: bool,
    },
    /// Indexed equality searches `(uid=userN)` with random N over concurrent connections.
    Search {
        #[command(flatten)]
        load: Load,
        /// Search base.
        #[arg(long, default_value = BASE)]
        base: String,
        /// Attributes to request (comma separated; `*` for all user attributes).
        #[arg(long, default_value = "*")]
        attrs: String,
    },
    /// What sssd asks for a login: `(&(objectClass=posixAccount)(uid=userN))`, then
    /// `(&(objectClass=posixGroup)(memberUid=userN))` asking for memberUid. One op is the pair;
    /// the first must find exactly the user, the second at least one group, each listing
    /// `userN` among its memberUid values.
    Sssd {
        #[command(flatten)]
        load: Load,
        /// Search base.
        #[arg(long, default_value = BASE)]
        base: String,
    },
    /// Substring searches `(cn=userNN*)`, NN a random two-digit number, with a size limit;
    /// sizeLimitExceeded with at most the limit's entries counts as success.
    Substring {
        #[command(flatten)]
        load: Load,
        /// Search base.
        #[arg(long, default_value = BASE)]
        base: String,
        /// Attributes to request (comma separated).
        #[arg(long, default_value = "cn,uid,mail,uidNumber")]
        attrs: String,
        /// Size limit sent with every search.
        #[arg(long, default_value_t = 100)]
        size_limit: i32,
    },
    /// Simple binds by a small set of users over and over (an application that authenticates
    /// every request), on persistent connections.
    BindRepeat {
        #[command(flatten)]
        load: Load,
        /// DN of user N, `{}` standing for N.
        #[arg(long, default_value = "cn=user{},ou=People,dc=example,dc=com")]
        dn_template: String,
        /// Password of the generated users.
        #[arg(long, default_value = USER_PASSWORD)]
        user_password: String,
        /// How many distinct users bind (spread evenly over 1..=users).
        #[arg(long, default_value_t = 100)]
        pool: u64,
    },
    /// Replace the description of random users (the connections bind as --bind-dn, which
    /// must be allowed to write them).
    Modify {
        #[command(flatten)]
        load: Load,
        /// DN of user N, `{}` standing for N.
        #[arg(long, default_value = "cn=user{},ou=People,dc=example,dc=com")]
        dn_template: String,
    },
    /// `search` and `modify` on the same connections: --modify-percent of the ops modify.
    Mixed {
        #[command(flatten)]
        load: Load,
        /// Search base.
        #[arg(long, default_value = BASE)]
        base: String,
        /// Attributes the searches request (comma separated).
        #[arg(long, default_value = "*")]
        attrs: String,
        /// DN of user N, `{}` standing for N.
        #[arg(long, default_value = "cn=user{},ou=People,dc=example,dc=com")]
        dn_template: String,
        /// Share of modifies, in percent.
        #[arg(long, default_value_t = 10)]
        modify_percent: u32,
    },
    /// Simple binds as random users (password `Bench-Passw0rd!`) on persistent connections.
    Bind {
        #[command(flatten)]
        load: Load,
        /// DN of user N, `{}` standing for N.
        #[arg(long, default_value = "cn=user{},ou=People,dc=example,dc=com")]
        dn_template: String,
        /// Password of the generated users.
        #[arg(long, default_value = USER_PASSWORD)]
        user_password: String,
        /// Open a new connection for every bind (connect, bind, unbind) instead of
        /// re-binding on a persistent connection.
        #[arg(long)]
        reconnect: bool,
    },
    /// Kerberos password logins (AS exchange with PA-ENC-TIMESTAMP) as random users.
    ///
    /// One op is one complete login as MIT's `kinit` makes it: an AS-REQ without padata, the
    /// KDC's PREAUTH_REQUIRED error with ETYPE-INFO2, the AS-REQ again with PA-ENC-TIMESTAMP,
    /// and the AS-REP (a TGT), decrypted and checked by the client. That is two request/reply
    /// exchanges per op. The user's long-term key is derived from the password once per user
    /// before the run (string-to-key is the client's cost, not the KDC's, and would otherwise
    /// dominate the client's CPU).
    KdcAs {
        #[command(flatten)]
        load: KdcLoad,
    },
    /// Kerberos TGS exchanges: each client logs in once (not measured), then asks for service
    /// tickets for `--service` with its TGT. One op is one TGS-REQ/TGS-REP exchange.
    KdcTgs {
        #[command(flatten)]
        load: KdcLoad,
        /// The service principal tickets are requested for (it must exist in the KDC).
        #[arg(long, default_value = "host/bench.example.com")]
        service: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Flavor {
    Dird,
    Openldap,
}

#[derive(clap::Args, Debug, Clone)]
struct Load {
    /// Server URL, e.g. ldap://127.0.0.1:3389.
    #[arg(long)]
    url: String,
    /// DN the search connections bind as (bind mode: ignored).
    #[arg(long, default_value = "")]
    bind_dn: String,
    /// Password for --bind-dn.
    #[arg(long, default_value = "")]
    password: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured run time, e.g. 20s, 500ms, 1m.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured run time before the measurement.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// Number of generated users (N is drawn from 1..=users).
    #[arg(long)]
    users: u64,
    /// Client runtime threads (1 keeps the load generator on one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Options of the Kerberos load (`kdc-as`, `kdc-tgs`).
#[derive(clap::Args, Debug, Clone)]
struct KdcLoad {
    /// KDC address, `host:port`.
    #[arg(long)]
    kdc: String,
    /// The realm.
    #[arg(long, default_value = "EXAMPLE.COM")]
    realm: String,
    /// Transport: `udp` (a fresh connected socket per exchange, as MIT's client) or `tcp` (a
    /// new connection per exchange, as MIT's client).
    #[arg(long, value_enum, default_value_t = KdcTransport::Udp)]
    transport: KdcTransport,
    /// Concurrent clients (each has one exchange in flight at a time).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Measured run time, e.g. 20s, 500ms, 1m.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured run time before the measurement.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// Number of users (user N is drawn from 1..=users; kdc-tgs uses users 1..=clients).
    #[arg(long)]
    users: u64,
    /// Principal name of user N, `{}` standing for N.
    #[arg(long, default_value = "user{}")]
    principal_template: String,
    /// Password of the users.
    #[arg(long, default_value = USER_PASSWORD)]
    user_password: String,
    /// The one enctype the client offers (18 = aes256-cts-hmac-sha1-96, which MIT and dird
    /// both hold keys for), so both KDCs do the same crypto.
    #[arg(long, default_value_t = 18)]
    enctype: i32,
    /// Client runtime threads (1 keeps the load generator on one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum KdcTransport {
    Udp,
    Tcp,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Splits a comma-separated attribute list.
fn attr_list(attrs: &str) -> Arc<Vec<String>> {
    Arc::new(attrs.split(',').map(|a| a.trim().to_string()).collect())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Gen {
            users,
            groups,
            members,
            out,
            flavor,
            base_entry,
            password_hash,
            no_passwords,
            plaintext_password,
        } => {
            let passwords = if no_passwords {
                Passwords::None
            } else if plaintext_password {
                Passwords::Same(USER_PASSWORD.to_owned())
            } else if let Some(h) = password_hash {
                Passwords::Same(h)
            } else {
                match flavor {
                    Flavor::Dird => Passwords::Same(
                        dird::directory::password::hash_blocking(USER_PASSWORD.as_bytes())
                            .map_err(|e| anyhow!("hashing the user password: {e}"))?,
                    ),
                    Flavor::Openldap => Passwords::Ssha,
                }
            };
            let spec = GenSpec {
                users,
                groups: groups.unwrap_or(users / 10),
                members,
                flavor,
                base_entry,
            };
            gen(&spec, &out, passwords)
        }
        Cmd::KdcAs { load } => kdc::as_load(&load),
        Cmd::KdcTgs { load, service } => kdc::tgs_load(&load, &service),
        Cmd::Search { load, base, attrs } => {
            let attrs = attr_list(&attrs);
            let base = Arc::new(base);
            run_load(&load, "search", move |ldap, n| {
                let base = base.clone();
                let attrs = attrs.clone();
                Box::pin(async move { search_one(ldap, &base, &attrs, n).await })
            })
        }
        Cmd::Sssd { load, base } => {
            let base = Arc::new(base);
            run_load(&load, "sssd", move |ldap, n| {
                let base = base.clone();
                Box::pin(async move { sssd_one(ldap, &base, n).await })
            })
        }
        Cmd::Substring {
            load,
            base,
            attrs,
            size_limit,
        } => {
            let attrs = attr_list(&attrs);
            let base = Arc::new(base);
            run_load(&load, "substring", move |ldap, n| {
                let base = base.clone();
                let attrs = attrs.clone();
                // NN: a two-digit prefix 10..=99 derived from the random N.
                let nn = 10 + n % 90;
                Box::pin(async move { substring_one(ldap, &base, &attrs, nn, size_limit).await })
            })
        }
        Cmd::Bind {
            load,
            dn_template,
            user_password,
            reconnect,
        } => {
            let tpl = Arc::new(dn_template);
            let pw = Arc::new(user_password);
            let url = Arc::new(load.url.clone());
            run_load(&load, "bind", move |ldap, n| {
                let dn = tpl.replace("{}", &n.to_string());
                let pw = pw.clone();
                let url = url.clone();
                Box::pin(async move {
                    if reconnect {
                        let (conn, mut fresh) = LdapConnAsync::new(&url).await?;
                        ldap3::drive!(conn);
                        fresh.simple_bind(&dn, &pw).await?.success()?;
                        fresh.unbind().await?;
                        Ok(())
                    } else {
                        ldap.simple_bind(&dn, &pw).await?.success()?;
                        Ok(())
                    }
                })
            })
        }
        Cmd::BindRepeat {
            load,
            dn_template,
            user_password,
            pool,
        } => {
            if pool == 0 {
                return Err(anyhow!("--pool must be at least 1"));
            }
            let pool = pool.min(load.users);
            let stride = (load.users / pool).max(1);
            let tpl = Arc::new(dn_template);
            let pw = Arc::new(user_password);
            run_load(&load, "bind-repeat", move |ldap, n| {
                // The pool: users 1, 1+stride, 1+2*stride, ... (pool of them).
                let user = 1 + (n % pool) * stride;
                let dn = tpl.replace("{}", &user.to_string());
                let pw = pw.clone();
                Box::pin(async move {
                    ldap.simple_bind(&dn, &pw).await?.success()?;
                    Ok(())
                })
            })
        }
        Cmd::Modify { load, dn_template } => {
            let tpl = Arc::new(dn_template);
            run_load(&load, "modify", move |ldap, n| {
                let dn = tpl.replace("{}", &n.to_string());
                let value = format!("bench {}", rand::random::<u64>());
                Box::pin(async move { modify_one(ldap, &dn, value).await })
            })
        }
        Cmd::Mixed {
            load,
            base,
            attrs,
            dn_template,
            modify_percent,
        } => {
            let attrs = attr_list(&attrs);
            let base = Arc::new(base);
            let tpl = Arc::new(dn_template);
            run_load(&load, "mixed", move |ldap, n| {
                let modify = rand::thread_rng().gen_range(0..100) < modify_percent;
                let base = base.clone();
                let attrs = attrs.clone();
                let dn = tpl.replace("{}", &n.to_string());
                let value = format!("bench {}", rand::random::<u64>());
                Box::pin(async move {
                    if modify {
                        modify_one(ldap, &dn, value).await
                    } else {
                        search_one(ldap, &base, &attrs, n).await
                    }
                })
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// gen

/// What `gen` writes.
struct GenSpec {
    users: u64,
    groups: u64,
    members: u64,
    flavor: Flavor,
    base_entry: bool,
}

/// The userPassword values `gen` writes.
enum Passwords {
    /// No userPassword.
    None,
    /// This value for every user.
    Same(String),
    /// `{SSHA}` of the built-in password with a per-user salt, as slapcat prints them.
    Ssha,
}

fn gen(spec: &GenSpec, out: &PathBuf, passwords: Passwords) -> anyhow::Result<()> {
    let GenSpec {
        users,
        groups,
        members,
        flavor,
        base_entry,
    } = *spec;
    if users == 0 && groups > 0 {
        return Err(anyhow!("groups need users"));
    }
    if base_entry && matches!(flavor, Flavor::Dird) {
        return Err(anyhow!("--base-entry is for the openldap flavour"));
    }
    let f = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    if base_entry {
        // slapadd takes plain content records (no version line).
        write!(
            w,
            "dn: {BASE}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n\
             o: Example\ndc: example\n\n"
        )?;
    } else if matches!(flavor, Flavor::Dird) {
        writeln!(w, "version: 1\n")?;
    }
    for ou in ["People", "Groups"] {
        write!(
            w,
            "dn: ou={ou},{BASE}\nobjectClass: top\nobjectClass: organizationalUnit\nou: {ou}\n\n"
        )?;
    }
    // Salts are drawn from a fixed seed, so the same arguments write the same file.
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    for n in 1..=users {
        let pw = match &passwords {
            Passwords::None => None,
            Passwords::Same(v) => Some(v.clone()),
            Passwords::Ssha => Some(ssha(USER_PASSWORD, rng.gen())),
        };
        write_user(&mut w, n, pw.as_deref(), flavor)?;
    }
    for g in 1..=groups {
        write_group(&mut w, g, users, members, flavor)?;
    }
    w.flush()?;
    let pw = match passwords {
        Passwords::None => "no user has a password".to_owned(),
        _ => format!("every user's password is {USER_PASSWORD:?}"),
    };
    eprintln!(
        "wrote {users} users and {groups} groups ({members} members each) to {}; {pw}",
        out.display()
    );
    Ok(())
}

/// `{SSHA}` as OpenLDAP writes it: base64(SHA-1(password || salt) || salt), 4-byte salt.
fn ssha(password: &str, salt: [u8; 4]) -> String {
    use base64::Engine as _;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(password.as_bytes());
    ctx.update(&salt);
    let mut raw = ctx.finish().as_ref().to_vec();
    raw.extend_from_slice(&salt);
    format!(
        "{{SSHA}}{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// RDN of user N: `cn=userN` in the dird flavour, `uid=userN` as OpenLDAP directories name
/// their accounts.
fn user_dn(n: u64, flavor: Flavor) -> String {
    match flavor {
        Flavor::Dird => format!("cn=user{n},ou=People,{BASE}"),
        Flavor::Openldap => format!("uid=user{n},ou=People,{BASE}"),
    }
}

fn write_user(
    w: &mut impl Write,
    n: u64,
    password: Option<&str>,
    flavor: Flavor,
) -> std::io::Result<()> {
    let name = format!("user{n}");
    write!(
        w,
        "dn: {}\nobjectClass: top\nobjectClass: person\n",
        user_dn(n, flavor)
    )?;
    writeln!(w, "objectClass: organizationalPerson")?;
    if matches!(flavor, Flavor::Dird) {
        writeln!(w, "objectClass: user")?;
    }
    write!(
        w,
        "objectClass: inetOrgPerson\nobjectClass: posixAccount\ncn: {name}\nsn: User{n}\n\
         givenName: Bench\nuid: {name}\nmail: {name}@example.com\nuidNumber: {}\n\
         gidNumber: {FIRST_ID}\nhomeDirectory: /home/{name}\nloginShell: /bin/bash\n",
        FIRST_ID + n
    )?;
    if matches!(flavor, Flavor::Dird) {
        write!(
            w,
            "sAMAccountName: {name}\nuserPrincipalName: {name}@example.com\n"
        )?;
    }
    if let Some(pw) = password {
        writeln!(w, "userPassword: {pw}")?;
    }
    writeln!(w)
}

fn write_group(
    w: &mut impl Write,
    g: u64,
    users: u64,
    members: u64,
    flavor: Flavor,
) -> std::io::Result<()> {
    let name = format!("group{g}");
    write!(w, "dn: cn={name},ou=Groups,{BASE}\nobjectClass: top\n")?;
    match flavor {
        Flavor::Dird => write!(
            w,
            "objectClass: group\ncn: {name}\nsAMAccountName: {name}\ngidNumber: {}\n",
            FIRST_ID + g
        )?,
        Flavor::Openldap => write!(
            w,
            "objectClass: groupOfNames\nobjectClass: posixGroup\ncn: {name}\ngidNumber: {}\n",
            FIRST_ID + g
        )?,
    }
    // Round-robin: group g holds users (g-1)*members+1 …, wrapping around, each user once.
    let start = (g - 1) * members;
    let count = members.min(users);
    let member = |k: u64| (start + k) % users + 1;
    for k in 0..count {
        writeln!(w, "member: {}", user_dn(member(k), flavor))?;
    }
    if matches!(flavor, Flavor::Openldap) {
        // RFC 2307 groups name their members by uid as well; OpenLDAP keeps both lists.
        for k in 0..count {
            writeln!(w, "memberUid: user{}", member(k))?;
        }
    }
    writeln!(w)
}

// ---------------------------------------------------------------------------------------------
// load

type OpFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// Per-connection outcome: latencies of successful measured ops (µs) and error count.
#[derive(Default)]
struct Tally {
    lat_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// True if `dn` names user N (`cn=userN,…` or `uid=userN,…`).
fn is_user_dn(dn: &str, n: u64) -> bool {
    let dn = dn.to_ascii_lowercase();
    let rdn = format!("user{n},");
    ["cn=", "uid="].iter().any(|t| {
        dn.strip_prefix(t)
            .is_some_and(|rest| rest.starts_with(&rdn))
    })
}

/// The values of `attr` in `e` (attribute names are case-insensitive).
fn values<'e>(e: &'e SearchEntry, attr: &str) -> &'e [String] {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .map_or(&[], |(_, v)| v.as_slice())
}

async fn search_one(
    ldap: &mut ldap3::Ldap,
    base: &str,
    attrs: &[String],
    n: u64,
) -> anyhow::Result<()> {
    let filter = format!("(uid=user{n})");
    let (rs, _res) = ldap
        .search(base, Scope::Subtree, &filter, attrs)
        .await?
        .success()?;
    if rs.len() != 1 {
        return Err(anyhow!("{filter}: {} entries", rs.len()));
    }
    let e = SearchEntry::construct(rs.into_iter().next().ok_or_else(|| anyhow!("no entry"))?);
    if !is_user_dn(&e.dn, n) {
        return Err(anyhow!("{filter}: unexpected entry {}", e.dn));
    }
    Ok(())
}

/// The attributes sssd's LDAP provider asks for when it looks up a user (the POSIX subset).
const SSSD_USER_ATTRS: &[&str] = &[
    "objectClass",
    "uid",
    "userPassword",
    "uidNumber",
    "gidNumber",
    "gecos",
    "homeDirectory",
    "loginShell",
    "cn",
];

async fn sssd_one(ldap: &mut ldap3::Ldap, base: &str, n: u64) -> anyhow::Result<()> {
    let uid = format!("user{n}");
    let filter = format!("(&(objectClass=posixAccount)(uid={uid}))");
    let (rs, _res) = ldap
        .search(base, Scope::Subtree, &filter, SSSD_USER_ATTRS)
        .await?
        .success()?;
    if rs.len() != 1 {
        return Err(anyhow!("{filter}: {} entries", rs.len()));
    }
    let filter = format!("(&(objectClass=posixGroup)(memberUid={uid}))");
    let (rs, _res) = ldap
        .search(
            base,
            Scope::Subtree,
            &filter,
            &["objectClass", "cn", "gidNumber", "memberUid"],
        )
        .await?
        .success()?;
    if rs.is_empty() {
        return Err(anyhow!("{filter}: no group"));
    }
    for r in rs {
        let e = SearchEntry::construct(r);
        if !values(&e, "memberUid").contains(&uid) {
            return Err(anyhow!("{filter}: {} lacks memberUid {uid}", e.dn));
        }
    }
    Ok(())
}

async fn substring_one(
    ldap: &mut ldap3::Ldap,
    base: &str,
    attrs: &[String],
    nn: u64,
    size_limit: i32,
) -> anyhow::Result<()> {
    let filter = format!("(cn=user{nn}*)");
    let ldap3::SearchResult(rs, res) = ldap
        .with_search_options(ldap3::SearchOptions::new().sizelimit(size_limit))
        .search(base, Scope::Subtree, &filter, attrs)
        .await?;
    // 4: sizeLimitExceeded, the expected outcome when more entries match than the limit.
    if res.rc != 0 && res.rc != 4 {
        return Err(anyhow!("{filter}: {res}"));
    }
    let limit = usize::try_from(size_limit).unwrap_or(usize::MAX);
    if rs.is_empty() || (size_limit > 0 && rs.len() > limit) {
        return Err(anyhow!(
            "{filter}: {} entries (limit {size_limit})",
            rs.len()
        ));
    }
    Ok(())
}

async fn modify_one(ldap: &mut ldap3::Ldap, dn: &str, value: String) -> anyhow::Result<()> {
    let mods = vec![Mod::Replace(
        "description".to_owned(),
        HashSet::from([value]),
    )];
    ldap.modify(dn, mods)
        .await?
        .success()
        .with_context(|| format!("modify {dn}"))?;
    Ok(())
}

fn run_load<F>(load: &Load, what: &str, op: F) -> anyhow::Result<()>
where
    F: for<'a> Fn(&'a mut ldap3::Ldap, u64) -> OpFuture<'a> + Send + Sync + 'static,
{
    if load.users == 0 {
        return Err(anyhow!("--users must be at least 1"));
    }
    let rt = if load.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(load.threads)
            .enable_all()
            .build()?
    };
    let op = Arc::new(op);
    let run = load.clone();
    let (tallies, elapsed) = rt.block_on(async move {
        let load = run;
        // Every connection connects and binds first (a slow argon2 bind must not eat into
        // the run); then the clock starts for all of them at once.
        let connected = Arc::new(tokio::sync::Barrier::new(load.connections + 1));
        let go = Arc::new(tokio::sync::Barrier::new(load.connections + 1));
        let window: Arc<std::sync::OnceLock<(Instant, Instant)>> = Arc::default();
        let mut handles = Vec::new();
        for _ in 0..load.connections {
            let op = op.clone();
            let load = load.clone();
            let (connected, go, window) = (connected.clone(), go.clone(), window.clone());
            handles.push(tokio::spawn(async move {
                let ldap = connect(&load).await;
                connected.wait().await;
                go.wait().await;
                let (measure_from, end) = *window
                    .get()
                    .ok_or_else(|| anyhow!("measurement window not set"))?;
                connection(&load, ldap?, op.as_ref(), measure_from, end).await
            }));
        }
        connected.wait().await;
        let measure_from = Instant::now() + load.warmup;
        let _ = window.set((measure_from, measure_from + load.duration));
        go.wait().await;
        let mut tallies = Vec::new();
        for h in handles {
            tallies.push(h.await.map_err(|e| anyhow!("connection task: {e}"))??);
        }
        anyhow::Ok((tallies, load.duration))
    })?;
    report(what, load.connections, tallies, elapsed);
    Ok(())
}

/// Opens one connection and binds as --bind-dn (if given).
async fn connect(load: &Load) -> anyhow::Result<ldap3::Ldap> {
    let settings = LdapConnSettings::new().set_conn_timeout(Duration::from_secs(10));
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &load.url)
        .await
        .with_context(|| format!("connecting to {}", load.url))?;
    ldap3::drive!(conn);
    if !load.bind_dn.is_empty() {
        ldap.simple_bind(&load.bind_dn, &load.password)
            .await?
            .success()
            .with_context(|| format!("bind as {}", load.bind_dn))?;
    }
    Ok(ldap)
}

async fn connection<F>(
    load: &Load,
    mut ldap: ldap3::Ldap,
    op: &F,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<Tally>
where
    F: for<'a> Fn(&'a mut ldap3::Ldap, u64) -> OpFuture<'a>,
{
    let mut tally = Tally::default();
    let mut rng = rand::rngs::StdRng::from_entropy();
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let n = rng.gen_range(1..=load.users);
        let res = op(&mut ldap, n).await;
        if t0 < measure_from {
            continue;
        }
        match res {
            Ok(()) => {
                let us = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                tally.lat_us.push(us);
            }
            Err(e) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(format!("{e:#}"));
                }
            }
        }
    }
    let _ = ldap.unbind().await;
    Ok(tally)
}

fn report(what: &str, connections: usize, tallies: Vec<Tally>, elapsed: Duration) {
    let mut lat: Vec<u32> = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tallies {
        lat.extend(t.lat_us);
        errors += t.errors;
        if first_error.is_none() {
            first_error = t.first_error;
        }
    }
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        f64::from(lat[i]) / 1000.0
    };
    let ops = lat.len() as f64 / elapsed.as_secs_f64();
    let max = lat.last().map(|&m| f64::from(m) / 1000.0).unwrap_or(0.0);
    let (p50, p99, p999) = (pct(0.50), pct(0.99), pct(0.999));
    println!(
        "{what}: {} ok, {errors} errors in {:.1}s over {} connections: {ops:.0} ops/s, \
         latency ms p50 {p50:.2} p99 {p99:.2} p99.9 {p999:.2} max {max:.2}",
        lat.len(),
        elapsed.as_secs_f64(),
        connections,
    );
    if let Some(e) = first_error {
        println!("first error: {e}");
    }
    // One line for scripts (scripts/bench-pin.sh): the workload name without spaces.
    println!(
        "RESULT workload={} ops={ops:.1} p50_ms={p50:.3} p99_ms={p99:.3} p999_ms={p999:.3} \
         max_ms={max:.3} ok={} errors={errors}",
        what.split_whitespace().next().unwrap_or(what),
        lat.len(),
    );
}

// ---------------------------------------------------------------------------------------------
// Kerberos load

mod kdc {
    //! `kdc-as` and `kdc-tgs`: Kerberos load with the `krb5` crate's async client, an
    //! implementation independent of dird's KDC (its own DER codec and crypto), so neither
    //! server is measured with a client written against it.

    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use anyhow::{anyhow, Context};
    use krb5::acceptor::{EncType, Keytab, ServiceKey};
    use krb5::{AsyncKdcClient, KdcClient, Key, Principal};
    use rand::{Rng, SeedableRng};

    use super::{report, KdcLoad, KdcTransport, Tally};

    /// A user's principal and its long-term key, as a one-entry keytab.
    struct User {
        principal: Principal,
        keytab: Keytab,
    }

    fn client(load: &KdcLoad) -> AsyncKdcClient {
        let kdc = KdcClient::new(load.realm.clone(), [load.kdc.clone()])
            .with_enctypes(&[load.enctype])
            .with_udp(matches!(load.transport, KdcTransport::Udp))
            // Encrypted timestamps only: neither KDC offers SPAKE here, and saying so keeps
            // the client from sending its support message.
            .with_spake_groups(&[])
            .with_timeout(Duration::from_secs(5));
        AsyncKdcClient::new(kdc)
    }

    fn principal(load: &KdcLoad, n: u64) -> anyhow::Result<Principal> {
        let name = load.principal_template.replace("{}", &n.to_string());
        Principal::parse_in_realm(&name, &load.realm).map_err(|e| anyhow!("{name}: {e}"))
    }

    /// Derives the keys of users `first..=last` from the password (RFC 3962 string-to-key
    /// with the default salt), on every core, before any measurement.
    fn users(load: &KdcLoad, first: u64, last: u64) -> anyhow::Result<Vec<Arc<User>>> {
        let etype = EncType::from_i32(load.enctype)
            .ok_or_else(|| anyhow!("enctype {} is not supported", load.enctype))?;
        let t0 = Instant::now();
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
        let all: Vec<u64> = (first..=last).collect();
        let chunk = (all.len() as u64).div_ceil(threads).max(1) as usize;
        let mut out = Vec::with_capacity(all.len());
        std::thread::scope(|scope| {
            let handles: Vec<_> = all
                .chunks(chunk)
                .map(|ns| {
                    scope.spawn(move || {
                        ns.iter()
                            .map(|&n| {
                                let principal = principal(load, n)?;
                                let key = Key::from_password(
                                    load.enctype,
                                    &load.user_password,
                                    &principal.default_salt(),
                                    None,
                                )
                                .map_err(|e| anyhow!("string-to-key: {e}"))?;
                                let entry = ServiceKey::new(
                                    principal.name(),
                                    principal.realm.clone(),
                                    1,
                                    etype,
                                    key.bytes().to_vec(),
                                );
                                Ok(Arc::new(User {
                                    principal,
                                    keytab: Keytab::from_keys(vec![entry]),
                                }))
                            })
                            .collect::<anyhow::Result<Vec<_>>>()
                    })
                })
                .collect();
            for h in handles {
                out.extend(h.join().map_err(|_| anyhow!("key derivation panicked"))??);
            }
            anyhow::Ok(())
        })?;
        eprintln!(
            "derived {} user keys (enctype {}) in {:.1}s",
            out.len(),
            load.enctype,
            t0.elapsed().as_secs_f64()
        );
        Ok(out)
    }

    fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
        Ok(if threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()?
        })
    }

    /// Records one op's outcome if it started inside the measured window.
    fn record(tally: &mut Tally, t0: Instant, measure_from: Instant, res: anyhow::Result<()>) {
        if t0 < measure_from {
            return;
        }
        match res {
            Ok(()) => {
                let us = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                tally.lat_us.push(us);
            }
            Err(e) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(format!("{e:#}"));
                }
            }
        }
    }

    /// `kdc-as`: each client logs in as random users until the end of the run.
    pub fn as_load(load: &KdcLoad) -> anyhow::Result<()> {
        if load.users == 0 {
            return Err(anyhow!("--users must be at least 1"));
        }
        let users = Arc::new(users(load, 1, load.users)?);
        let kdc = client(load);
        let rt = runtime(load.threads)?;
        let run = load.clone();
        let tallies = rt.block_on(async move {
            let start = Instant::now();
            let measure_from = start + run.warmup;
            let end = measure_from + run.duration;
            let mut tasks = Vec::new();
            for _ in 0..run.clients {
                let (users, kdc) = (users.clone(), kdc.clone());
                tasks.push(tokio::spawn(async move {
                    let mut tally = Tally::default();
                    let mut rng = rand::rngs::StdRng::from_entropy();
                    loop {
                        let t0 = Instant::now();
                        if t0 >= end {
                            break;
                        }
                        let user = &users[rng.gen_range(0..users.len())];
                        let res = kdc
                            .login_with_keytab(&user.principal, &user.keytab)
                            .await
                            .map_err(anyhow::Error::from)
                            .and_then(|tgt| {
                                if tgt.client.components != user.principal.components {
                                    return Err(anyhow!("TGT for {}", tgt.client.name()));
                                }
                                Ok(())
                            })
                            .with_context(|| format!("login as {}", user.principal.name()));
                        record(&mut tally, t0, measure_from, res);
                    }
                    tally
                }));
            }
            let mut tallies = Vec::new();
            for t in tasks {
                tallies.push(t.await.map_err(|e| anyhow!("client task: {e}"))?);
            }
            anyhow::Ok(tallies)
        })?;
        report("kdc-as (logins)", load.clients, tallies, load.duration);
        Ok(())
    }

    /// `kdc-tgs`: client i logs in as user i once, then asks for service tickets.
    pub fn tgs_load(load: &KdcLoad, service: &str) -> anyhow::Result<()> {
        if load.users < load.clients as u64 {
            return Err(anyhow!(
                "kdc-tgs gives each client its own user: --users must be at least --clients"
            ));
        }
        let service = Principal::parse_in_realm(service, &load.realm)
            .map_err(|e| anyhow!("--service {service}: {e}"))?;
        let users = users(load, 1, load.clients as u64)?;
        let kdc = client(load);
        let rt = runtime(load.threads)?;
        let run = load.clone();
        let tallies = rt.block_on(async move {
            let mut tgts = Vec::new();
            for user in &users {
                let tgt = kdc
                    .login_with_keytab(&user.principal, &user.keytab)
                    .await
                    .with_context(|| format!("initial login as {}", user.principal.name()))?;
                tgts.push(Arc::new(tgt));
            }
            let start = Instant::now();
            let measure_from = start + run.warmup;
            let end = measure_from + run.duration;
            let service = Arc::new(service);
            let mut tasks = Vec::new();
            for tgt in tgts {
                let (kdc, service) = (kdc.clone(), service.clone());
                tasks.push(tokio::spawn(async move {
                    let mut tally = Tally::default();
                    loop {
                        let t0 = Instant::now();
                        if t0 >= end {
                            break;
                        }
                        let res = kdc
                            .service_ticket(&tgt, &service)
                            .await
                            .map_err(anyhow::Error::from)
                            .and_then(|st| {
                                if st.server.components != service.components {
                                    return Err(anyhow!("ticket for {}", st.server.name()));
                                }
                                Ok(())
                            })
                            .with_context(|| format!("TGS for {}", service.name()));
                        record(&mut tally, t0, measure_from, res);
                    }
                    tally
                }));
            }
            let mut tallies = Vec::new();
            for t in tasks {
                tallies.push(t.await.map_err(|e| anyhow!("client task: {e}"))?);
            }
            anyhow::Ok(tallies)
        })?;
        report(
            "kdc-tgs (service tickets)",
            load.clients,
            tallies,
            load.duration,
        );
        Ok(())
    }
}
