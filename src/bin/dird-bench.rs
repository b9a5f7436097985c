//! `dird-bench`: the benchmark tool behind BENCHMARKS.md. Generates an AD-style directory as
//! LDIF (`gen`) and drives LDAP load against any server (`search`, `bind`), dird or OpenLDAP
//! slapd alike, with the independent `ldap3` client library.
//! May import: `dird::directory::password` (one precomputed argon2 hash for every generated
//! user), `ldap3`. It is a benchmark, not a test: nothing here runs under `cargo test`
//! except the `gen` smoke test in `tests/bench_gen.rs`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand, ValueEnum};
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
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
    /// Write an AD-style directory (ou=People, ou=Groups under dc=example,dc=com) as LDIF.
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
        /// `dird`: user/group AD classes, for `dird import` on a provisioned domain (the
        /// base entry exists). `openldap`: inetOrgPerson/posixAccount and groupOfNames plus the
        /// base entry, for `slapadd` with the stock core/cosine/inetorgperson/nis schemas.
        #[arg(long, value_enum, default_value_t = Flavor::Dird)]
        flavor: Flavor,
        /// Precomputed `{ARGON2}` PHC value to store as every userPassword (default: hash
        /// the built-in password once).
        #[arg(long)]
        password_hash: Option<String>,
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Gen {
            users,
            groups,
            members,
            out,
            flavor,
            password_hash,
        } => gen(
            users,
            groups.unwrap_or(users / 10),
            members,
            &out,
            flavor,
            password_hash,
        ),
        Cmd::Search { load, base, attrs } => {
            let attrs: Vec<String> = attrs.split(',').map(|a| a.trim().to_string()).collect();
            let base = Arc::new(base);
            let attrs = Arc::new(attrs);
            run_load(&load, "search", move |ldap, n| {
                let base = base.clone();
                let attrs = attrs.clone();
                Box::pin(async move { search_one(ldap, &base, &attrs, n).await })
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
    }
}

// ---------------------------------------------------------------------------------------------
// gen

fn gen(
    users: u64,
    groups: u64,
    members: u64,
    out: &PathBuf,
    flavor: Flavor,
    password_hash: Option<String>,
) -> anyhow::Result<()> {
    if users == 0 && groups > 0 {
        return Err(anyhow!("groups need users"));
    }
    let hash = match password_hash {
        Some(h) => h,
        None => dird::directory::password::hash_blocking(USER_PASSWORD.as_bytes())
            .map_err(|e| anyhow!("hashing the user password: {e}"))?,
    };
    let f = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    if matches!(flavor, Flavor::Dird) {
        writeln!(w, "version: 1\n")?;
    } else {
        // slapadd takes plain content records (no version line).
        write!(
            w,
            "dn: {BASE}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n\
             o: Example\ndc: example\n\n"
        )?;
    }
    for ou in ["People", "Groups"] {
        write!(
            w,
            "dn: ou={ou},{BASE}\nobjectClass: top\nobjectClass: organizationalUnit\nou: {ou}\n\n"
        )?;
    }
    for n in 1..=users {
        write_user(&mut w, n, &hash, flavor)?;
    }
    for g in 1..=groups {
        write_group(&mut w, g, users, members, flavor)?;
    }
    w.flush()?;
    eprintln!(
        "wrote {users} users and {groups} groups ({members} members each) to {}; \
         every user's password is {USER_PASSWORD:?}",
        out.display()
    );
    Ok(())
}

fn write_user(w: &mut impl Write, n: u64, hash: &str, flavor: Flavor) -> std::io::Result<()> {
    let name = format!("user{n}");
    write!(
        w,
        "dn: cn={name},ou=People,{BASE}\nobjectClass: top\nobjectClass: person\n"
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
    write!(w, "userPassword: {hash}\n\n")
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
        Flavor::Openldap => write!(w, "objectClass: groupOfNames\ncn: {name}\n")?,
    }
    // Round-robin: group g holds users (g-1)*members+1 …, wrapping around, each user once.
    let start = (g - 1) * members;
    let count = members.min(users);
    for k in 0..count {
        let u = (start + k) % users + 1;
        writeln!(w, "member: cn=user{u},ou=People,{BASE}")?;
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
    if !e
        .dn
        .to_ascii_lowercase()
        .starts_with(&format!("cn=user{n},"))
    {
        return Err(anyhow!("{filter}: unexpected entry {}", e.dn));
    }
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
        let mut handles = Vec::new();
        let start = Instant::now();
        let measure_from = start + load.warmup;
        let end = measure_from + load.duration;
        for _ in 0..load.connections {
            let op = op.clone();
            let load = load.clone();
            handles.push(tokio::spawn(async move {
                connection(&load, op.as_ref(), measure_from, end).await
            }));
        }
        let mut tallies = Vec::new();
        for h in handles {
            tallies.push(h.await.map_err(|e| anyhow!("connection task: {e}"))??);
        }
        anyhow::Ok((tallies, load.duration))
    })?;
    report(what, load, tallies, elapsed);
    Ok(())
}

async fn connection<F>(
    load: &Load,
    op: &F,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<Tally>
where
    F: for<'a> Fn(&'a mut ldap3::Ldap, u64) -> OpFuture<'a>,
{
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

fn report(what: &str, load: &Load, tallies: Vec<Tally>, elapsed: Duration) {
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
    println!(
        "{what}: {} ok, {errors} errors in {:.1}s over {} connections: {ops:.0} ops/s, \
         latency ms p50 {:.2} p99 {:.2} max {:.2}",
        lat.len(),
        elapsed.as_secs_f64(),
        load.connections,
        pct(0.50),
        pct(0.99),
        lat.last().map(|&m| f64::from(m) / 1000.0).unwrap_or(0.0),
    );
    if let Some(e) = first_error {
        println!("first error: {e}");
    }
}
