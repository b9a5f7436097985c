//! Fuzz body (shared by `fuzz_targets/ldap_dispatch.rs` and `tests/fuzz_smoke.rs`): LDAP PDUs
//! decoded, typed and dispatched (`ldap::ops::dispatch`: search, compare, add, modify,
//! delete, modify DN, extended operations) against a real directory: a provisioned
//! standalone instance in a temporary data directory, as the built-in Administrator (every
//! write path reachable) or anonymously (alternating by input length). Bind, Unbind and Abandon
//! belong to the connection loop and are skipped.
//! Checks that nothing panics, every operation answers within 10 s, and every response
//! encodes as BER that decodes back to the same message.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use dird::backend::Backend;
use dird::config::Config;
use dird::directory::{Directory, Identity, ReadPolicy, SearchLimits};
use dird::ldap::codec::{self, LdapCodec};
use dird::ldap::ops::{self, OpCtx};
use dird::ldap::request::{self, Request};
use dird::ldap::session::Session;

/// Most PDUs taken from one input.
const MAX_PDUS: usize = 16;

struct World {
    rt: tokio::runtime::Runtime,
    dir: Arc<Directory>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let data = std::env::temp_dir().join(format!("dird-fuzz-dispatch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let mut config = Config::demo();
        config.data_dir = data;
        config.kdc = None;
        config.metrics = None;
        config.audit = None;
        config.backup = None;
        std::env::set_var("DIRD_ADMIN_PASSWORD", "Fuzz-Admin-Passw0rd!");
        let (opened, _) = dird::daemon::open(&config, true).expect("provision a fuzz instance");
        let backend: Arc<dyn Backend> = Arc::new(opened.local.clone());
        let dir = Directory::new(
            backend,
            opened.schema.clone(),
            opened.domain.clone(),
            ReadPolicy {
                anonymous_read: true,
            },
            SearchLimits {
                size_limit: 100,
                time_limit: Duration::from_secs(5),
                max_page_size: 100,
            },
            1,
        )
        .with_master_key(opened.master.clone());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        World {
            rt,
            dir: Arc::new(dir),
        }
    })
}

/// Runs the target on one input; panics on a bug.
pub fn run(data: &[u8]) {
    let w = world();
    let peer: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 40000));
    let mut session = Session::new(peer, true, w.dir.cursors());
    session.cleartext_allowed = true;
    if data.len().is_multiple_of(2) {
        session.identity = Identity::User(w.dir.local_admin());
    }
    let mut framer = LdapCodec::new(64 * 1024);
    let mut buf = BytesMut::from(data);
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = framer.decode(&mut buf) {
        frames.push(frame);
        if frames.len() >= MAX_PDUS {
            break;
        }
    }
    if frames.is_empty() {
        frames.push(BytesMut::from(data));
    }
    for frame in frames {
        let Ok(msg) = codec::decode_message(&frame) else {
            continue;
        };
        let msgid = msg.message_id;
        let Ok(controls) = request::controls(&msg) else {
            continue;
        };
        let Ok(req) = Request::try_from(msg.protocol_op) else {
            continue;
        };
        let ctx = OpCtx {
            dir: &w.dir,
            session: &session,
            msgid,
            controls,
            now: SystemTime::now(),
        };
        let replies =
            w.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), ops::dispatch(ctx, req)).await
            })
            .unwrap_or_else(|_| panic!("operation took over 10 s: {:02x?}", &frame[..]));
        for m in replies {
            let bytes = codec::encode_message(&m)
                .unwrap_or_else(|e| panic!("response does not encode: {e}: {m:?}"));
            let back = codec::decode_message(&bytes)
                .unwrap_or_else(|e| panic!("response does not decode: {e}: {m:?}"));
            assert_eq!(back, m, "response round trip");
        }
    }
}
