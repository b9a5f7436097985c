//! `dird import` and `dird export`: RFC 2849 LDIF in and out, through the running daemon or
//! offline, both by the `admin` service. Import streams the file in record-aligned chunks:
//! content and add records are written in batches (one transaction each, schema-checked,
//! tier-limited; through the daemon at most `admin::ONLINE_IMPORT_BATCH` entries, so LDAP
//! clients are not starved); changetype modify/delete/moddn records go through `directory`
//! one by one. Export writes a consistent snapshot (one read transaction), parents before
//! children, so that its output imports back: into an empty data directory, an export is
//! restored as is (no second provisioning; SIDs, GUIDs and hashes kept).

use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{anyhow, Context};
use indicatif::{ProgressBar, ProgressStyle};

use crate::admin::proto::{self, AdminRequest, AdminResponse, Reply};
use crate::admin::{count_records, Operator, ONLINE_IMPORT_BATCH};
use crate::cli::remote;
use crate::config::Config;
use crate::daemon;
use crate::daemon::provision::{self, META_PROVISIONED};
use crate::ldif::{LdifReader, LdifRecord};

pub(super) fn import(config: &Config, file: &Path, batch: usize, json: bool) -> anyhow::Result<()> {
    let reply = match remote::connect(config)? {
        remote::Transport::Online(mut stream) => import_online(&mut stream, file)?,
        remote::Transport::Offline => import_offline(config, file, batch)?,
    };
    remote::print(&reply, json)
}

/// Offline: this process opens the database and runs the import itself.
fn import_offline(config: &Config, file: &Path, batch: usize) -> anyhow::Result<Reply> {
    let restore = prepare_restore(config, file)?;
    let admin = remote::offline_with(config, !restore)?;
    // A restore marks the instance provisioned with its first batch, so that `serve` does not
    // provision a second domain root over it.
    let meta = if restore {
        vec![(META_PROVISIONED, b"1".to_vec())]
    } else {
        Vec::new()
    };
    let rt = remote::runtime()?;
    let op = Operator::this_process();
    // The tier's caps hold for the whole file: an import that would cross them is refused
    // before its first write (the batches below are separate transactions).
    let (objects, users) = count_records(file).map_err(|e| anyhow!(e.message))?;
    let mut importer = rt
        .block_on(admin.import_begin(&op, objects, users, batch, meta))
        .map_err(|e| anyhow!(e.message))?;
    // Nothing else uses the store while this process imports: batches skip the fsync, and
    // one durable commit at the end (also after an error, keeping the batches written before
    // it, as before) acknowledges them all.
    importer.defer_durability();
    let bar = progress_bar(file);
    let applied = for_each_chunk(file, batch, usize::MAX, |chunk, pos| {
        let (added, _) = rt
            .block_on(importer.chunk(&admin, chunk))
            .map_err(|e| anyhow!(e.message))?;
        bar.set_position(pos);
        bar.set_message(format!("{added} entries"));
        Ok(())
    });
    let synced = rt
        .block_on(importer.sync(&admin))
        .map_err(|e| anyhow!(e.message));
    applied?;
    synced?;
    bar.finish_and_clear();
    Ok(importer.finish())
}

/// Online: the file is read here and sent to the daemon in record-aligned chunks; the daemon
/// writes them in small batches between LDAP clients' operations.
fn import_online(stream: &mut UnixStream, file: &Path) -> anyhow::Result<Reply> {
    let (objects, users) = count_records(file).map_err(|e| anyhow!(e.message))?;
    proto::write_frame(stream, &AdminRequest::ImportBegin { objects, users })
        .map_err(|e| anyhow!("sending to the daemon: {e}"))?;
    expect_progress(remote::receive(stream)?)?;
    let bar = progress_bar(file);
    for_each_chunk(
        file,
        ONLINE_IMPORT_BATCH,
        ONLINE_CHUNK_BYTES,
        |chunk, pos| {
            let ldif = String::from_utf8(chunk.to_vec()).map_err(|e| {
                anyhow!(
                "{}: not UTF-8 near byte {} of a record; base64-encode such values (`attr:: …`)",
                file.display(),
                e.utf8_error().valid_up_to()
            )
            })?;
            proto::write_frame(stream, &AdminRequest::ImportChunk { ldif })
                .map_err(|e| anyhow!("sending to the daemon: {e}"))?;
            let added = expect_progress(remote::receive(stream)?)?;
            bar.set_position(pos);
            bar.set_message(format!("{added} entries"));
            Ok(())
        },
    )?;
    proto::write_frame(stream, &AdminRequest::ImportEnd)
        .map_err(|e| anyhow!("sending to the daemon: {e}"))?;
    bar.finish_and_clear();
    match remote::receive(stream)? {
        AdminResponse::Done(reply) => Ok(reply),
        AdminResponse::Error { message } => Err(anyhow!(message)),
        other => Err(anyhow!("unexpected answer from the daemon: {other:?}")),
    }
}

fn expect_progress(resp: AdminResponse) -> anyhow::Result<u64> {
    match resp {
        AdminResponse::Progress { added, .. } => Ok(added),
        AdminResponse::Error { message } => Err(anyhow!(message)),
        other => Err(anyhow!("unexpected answer from the daemon: {other:?}")),
    }
}

fn progress_bar(file: &Path) -> ProgressBar {
    let total = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Streams `file` as chunks of whole LDIF records (records end at an empty line; folded
/// lines start with a space, so an empty line always ends a record), each of at most
/// `records` records and, unless one record alone is larger, `max_bytes` bytes. `each` gets
/// the chunk and the file position after it.
fn for_each_chunk(
    file: &Path,
    records: usize,
    max_bytes: usize,
    mut each: impl FnMut(&[u8], u64) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let f = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let (mut chunk, mut record) = (Vec::new(), Vec::new());
    let (mut n, mut pos) = (0usize, 0u64);
    let mut line = Vec::new();
    loop {
        line.clear();
        let got = r
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", file.display()))?;
        pos += got as u64;
        let blank = got == 0 || line.iter().all(|b| b.is_ascii_whitespace());
        if !blank {
            record.extend_from_slice(&line);
            continue;
        }
        if !record.is_empty() {
            if !chunk.is_empty() && chunk.len() + record.len() > max_bytes {
                each(&chunk, pos - record.len() as u64)?;
                chunk.clear();
                n = 0;
            }
            chunk.extend_from_slice(&record);
            chunk.push(b'\n');
            record.clear();
            n += 1;
            if n >= records {
                each(&chunk, pos)?;
                chunk.clear();
                n = 0;
            }
        }
        if got == 0 {
            break;
        }
    }
    if !chunk.is_empty() {
        each(&chunk, pos)?;
    }
    Ok(())
}

/// An export imported into an empty data directory is a restore: when the store holds no
/// domain yet and the file's first record is the domain root, the domain is not provisioned;
/// the file's entries (with their SIDs, GUIDs and password hashes) become the directory, and
/// the domain SID is taken from the root's objectSid. Returns whether this is a restore.
fn prepare_restore(config: &Config, file: &Path) -> anyhow::Result<bool> {
    let f = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let first = LdifReader::new(BufReader::new(f)).next();
    let root = match first {
        Some(Ok(LdifRecord::Content(e) | LdifRecord::Add(e))) if e.dn == config.domain.base => e,
        _ => return Ok(false),
    };
    let (opened, _) = daemon::open(config, false)?;
    if provision::is_provisioned(&opened.store).map_err(|e| anyhow!("{e}"))? {
        return Ok(false);
    }
    let sid = match root.values("objectSid").first() {
        Some(sid) => sid.clone(),
        None => provision::new_domain_sid(),
    };
    provision::set_domain_sid(&opened.store, &sid).map_err(|e| anyhow!("{e}"))?;
    Ok(true)
}

pub(super) fn export(config: &Config, out: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let written = match remote::connect(config)? {
        remote::Transport::Online(mut stream) => export_online(&mut stream, out),
        remote::Transport::Offline => {
            let admin = remote::offline(config)?;
            write_to(out, |w| {
                admin.export_blocking(w).map_err(|e| anyhow!(e.message))
            })
        }
    };
    let n = match written {
        Ok(n) => n,
        Err(e) => {
            if let Some(p) = out {
                let _ = std::fs::remove_file(p);
            }
            return Err(e);
        }
    };
    if out.is_some() || json {
        let reply = Reply::new(
            format!("exported {n} entries"),
            serde_json::json!({ "entries": n }),
        );
        // With the LDIF on standard output, the summary goes to standard error.
        if out.is_none() {
            eprintln!("{}", reply.summary);
        } else {
            remote::print(&reply, json)?;
        }
    }
    Ok(())
}

/// Receives a consistent export from the daemon (it reads one snapshot while writes go on).
fn export_online(stream: &mut UnixStream, out: Option<&Path>) -> anyhow::Result<u64> {
    proto::write_frame(stream, &AdminRequest::Export)
        .map_err(|e| anyhow!("sending to the daemon: {e}"))?;
    write_to(out, |w| loop {
        match remote::receive(stream)? {
            AdminResponse::Data { ldif } => w.write_all(ldif.as_bytes())?,
            AdminResponse::Done(reply) => {
                return Ok(reply.data["entries"].as_u64().unwrap_or(0));
            }
            AdminResponse::Error { message } => return Err(anyhow!(message)),
            other => return Err(anyhow!("unexpected answer from the daemon: {other:?}")),
        }
    })
}

/// Runs `f` on the output (a file, or standard output) and flushes it.
fn write_to(
    out: Option<&Path>,
    f: impl FnOnce(&mut dyn Write) -> anyhow::Result<u64>,
) -> anyhow::Result<u64> {
    let sink: Box<dyn Write> = match out {
        Some(p) => {
            // An export holds every entry (hashes stay out, but names and attributes do not):
            // owner-only, whatever the umask.
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(p)
                .with_context(|| format!("cannot create {}", p.display()))?;
            crate::daemon::files::tighten(p, 0o600)
                .with_context(|| format!("chmod {}", p.display()))?;
            Box::new(f)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = BufWriter::with_capacity(1 << 20, sink);
    let n = f(&mut w)?;
    w.flush()?;
    Ok(n)
}

/// Bytes of LDIF per chunk sent to the daemon (well under the frame limit).
const ONLINE_CHUNK_BYTES: usize = 1 << 20;
