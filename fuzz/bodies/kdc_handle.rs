//! Fuzz body (shared by `fuzz_targets/kdc_handle.rs` and `tests/fuzz_smoke.rs`): whole KDC
//! requests, decoded and handled (AS and TGS paths, pre-authentication, error replies) by a
//! real `Kdc` over an in-memory principal database with a user and the krbtgt service.
//! Checks that handling never panics and that every reply is a DER message of the KDC's:
//! an AS-REP, a TGS-REP or a KRB-ERROR (APPLICATION 11, 13 or 30).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dird::kdc::db::MemoryDb;
use dird::kdc::{Kdc, KdcConfig};

struct World {
    rt: tokio::runtime::Runtime,
    kdc: Kdc,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let db = MemoryDb::new("EXAMPLE.COM");
        db.add_user("alice", "alice-pw-123").expect("alice");
        db.add_service(
            "krbtgt/EXAMPLE.COM",
            dird::model::principal::random_keys(1).expect("keys"),
        )
        .expect("krbtgt");
        let mut config = KdcConfig::new("EXAMPLE.COM");
        config.listen = Vec::new();
        config.kpasswd_listen = Vec::new();
        let kdc = rt
            .block_on(Kdc::bind(config, Arc::new(db)))
            .expect("kdc without sockets");
        World { rt, kdc }
    })
}

/// Runs the target on one input; panics on a bug.
pub fn run(data: &[u8]) {
    let w = world();
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for at in [now, SystemTime::now()] {
        if let Some(reply) = w.rt.block_on(w.kdc.handle(data, at)) {
            let tag = reply.first().copied().unwrap_or_default();
            assert!(
                matches!(tag, 0x6b | 0x6d | 0x7e),
                "reply with tag {tag:#x} to {data:02x?}"
            );
        }
    }
}
