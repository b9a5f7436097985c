//! Handler-level tests: AS and TGS exchanges built by hand with rasn-kerberos, with a fixed
//! `now`, against the in-memory `PrincipalDb`; plus RESPONSE_TOO_BIG over real sockets.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rasn_kerberos::{
    ApOptions, ApReq, AsRep, AsReq, Authenticator, EncAsRepPart, EncryptedData, EtypeInfo2Entry,
    KdcOptions, KdcReq, KdcReqBody, KrbError, MethodData, PaData, PaEncTsEnc, TgsRep, TgsReq,
    Ticket,
};

use super::codec::{self, kdc_options as opt, ticket_flags as tf};
use super::crypto::{self, usage};
use super::db::{MemoryDb, PrincipalDb};
use super::replay::ReplayCache;
use super::{handle_kdc, KdcConfig, KdcState};
use crate::model::principal::{random_keys, PrincipalName};

const REALM: &str = "EXAMPLE.COM";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn state() -> KdcState {
    let db = MemoryDb::new(REALM);
    db.add_user("alice", "alice-pw-123").unwrap();
    db.add_user("dave", "dave-pw-123").unwrap();
    db.update("dave", |r| r.disabled = true);
    db.add_service("krbtgt/EXAMPLE.COM", random_keys(1).unwrap())
        .unwrap();
    db.add_service("host/client.example.com", random_keys(2).unwrap())
        .unwrap();
    let config = KdcConfig::new(REALM);
    let replay = std::sync::Arc::new(ReplayCache::new(config.max_skew, 1000));
    KdcState {
        config,
        db: Arc::new(db),
        replay,
        observer: None,
        otp: None,
    }
}

fn name(text: &str) -> rasn_kerberos::PrincipalName {
    codec::wire_name(&PrincipalName::parse(text).unwrap())
}

fn realm() -> rasn::types::GeneralString {
    codec::kerberos_string(REALM).unwrap()
}

fn body(
    cname: Option<&str>,
    sname: &str,
    options: u32,
    etypes: Vec<i32>,
    nonce: u32,
) -> KdcReqBody {
    KdcReqBody {
        kdc_options: KdcOptions(codec::flags_to_bits(options)),
        cname: cname.map(name),
        realm: realm(),
        sname: Some(name(sname)),
        from: None,
        till: codec::kerberos_time(now() + Duration::from_secs(86400)),
        rtime: None,
        nonce,
        etype: etypes,
        addresses: None,
        enc_authorization_data: None,
        additional_tickets: None,
    }
}

fn as_req(user: &str, padata: Option<Vec<PaData>>, etypes: Vec<i32>, options: u32) -> Vec<u8> {
    let req = AsReq(KdcReq {
        pvno: 5.into(),
        msg_type: 10.into(),
        padata,
        req_body: body(Some(user), "krbtgt/EXAMPLE.COM", options, etypes, 42),
    });
    rasn::der::encode(&req).unwrap()
}

fn enc_timestamp(password: &str, salt: &str, at: SystemTime) -> PaData {
    let key = krb5::Key::from_password(18, password, salt.as_bytes(), None).unwrap();
    let ts = PaEncTsEnc {
        patimestamp: codec::kerberos_time(at),
        pausec: Some(0.into()),
    };
    let enc = crypto::encrypt(
        &key,
        usage::PA_ENC_TIMESTAMP,
        &rasn::der::encode(&ts).unwrap(),
        None,
    )
    .unwrap();
    PaData {
        r#type: 2,
        value: rasn::der::encode(&enc).unwrap().into(),
    }
}

async fn run(state: &KdcState, msg: &[u8]) -> Vec<u8> {
    handle_kdc(state, msg, None, now(), &mut rand::rngs::OsRng)
        .await
        .unwrap()
        .bytes
}

fn error_code(reply: &[u8]) -> i32 {
    rasn::der::decode::<KrbError>(reply)
        .unwrap_or_else(|_| panic!("not a KRB-ERROR: {reply:02x?}"))
        .error_code
}

/// Logs alice in; returns the TGT and its session key.
async fn login(state: &KdcState) -> (Ticket, krb5::Key) {
    let pa = enc_timestamp("alice-pw-123", "EXAMPLE.COMalice", now());
    let reply = run(
        state,
        &as_req("alice", Some(vec![pa]), vec![18, 17], opt::RENEWABLE_OK),
    )
    .await;
    let rep: AsRep = rasn::der::decode(&reply).expect("AS-REP");
    let key = krb5::Key::from_password(
        rep.0.enc_part.etype,
        "alice-pw-123",
        b"EXAMPLE.COMalice",
        None,
    )
    .unwrap();
    let part: EncAsRepPart =
        rasn::der::decode(&crypto::decrypt(&key, usage::AS_REP_ENC_PART, &rep.0.enc_part).unwrap())
            .unwrap();
    assert_eq!(part.0.nonce, 42);
    let flags = codec::bits_to_flags(&part.0.flags.0);
    assert_eq!(
        flags & (tf::INITIAL | tf::PRE_AUTHENT),
        tf::INITIAL | tf::PRE_AUTHENT
    );
    (rep.0.ticket, crypto::wire_key(&part.0.key).unwrap())
}

/// A TGS-REQ whose authenticator checksums `checksummed` but which carries `sent`.
fn tgs_req(
    tgt: &Ticket,
    session: &krb5::Key,
    checksummed: &KdcReqBody,
    sent: &KdcReqBody,
    cusec: u32,
) -> Vec<u8> {
    let raw = rasn::der::encode(checksummed).unwrap();
    let subkey = crypto::session_key(18, &mut rand::rngs::OsRng).unwrap();
    let auth = Authenticator {
        authenticator_vno: 5.into(),
        crealm: realm(),
        cname: name("alice"),
        cksum: Some(crypto::checksum(session, usage::TGS_REQ_AUTH_CKSUM, &raw).unwrap()),
        cusec: cusec.into(),
        ctime: codec::kerberos_time(now()),
        subkey: Some(crypto::encryption_key(&subkey)),
        seq_number: None,
        authorization_data: None,
    };
    let enc: EncryptedData = crypto::encrypt(
        session,
        usage::TGS_REQ_AUTHENTICATOR,
        &rasn::der::encode(&auth).unwrap(),
        None,
    )
    .unwrap();
    let ap = ApReq {
        pvno: 5.into(),
        msg_type: 14.into(),
        ap_options: ApOptions(codec::flags_to_bits(0)),
        ticket: tgt.clone(),
        authenticator: enc,
    };
    let req = TgsReq(KdcReq {
        pvno: 5.into(),
        msg_type: 12.into(),
        padata: Some(vec![PaData {
            r#type: 1,
            value: rasn::der::encode(&ap).unwrap().into(),
        }]),
        req_body: sent.clone(),
    });
    rasn::der::encode(&req).unwrap()
}

#[tokio::test]
async fn as_without_preauth_asks_for_it_and_advertises_fast() {
    let state = state();
    let reply = run(&state, &as_req("alice", None, vec![17, 18, 23], 0)).await;
    let err: KrbError = rasn::der::decode(&reply).unwrap();
    assert_eq!(err.error_code, 25);
    let methods: MethodData = rasn::der::decode(err.e_data.as_ref().unwrap()).unwrap();
    let types: Vec<i32> = methods.iter().map(|m| m.r#type).collect();
    // RFC 6113 §5.4.1: PA-FX-FAST (136) is advertised, or MIT `kinit -T` never armors.
    assert_eq!(types, vec![19, 2, 136]);
    let info: Vec<EtypeInfo2Entry> = rasn::der::decode(&methods[0].value).unwrap();
    assert_eq!(
        info.iter().map(|e| e.etype).collect::<Vec<_>>(),
        vec![17, 18]
    );
    assert_eq!(
        info[0].salt.as_ref().unwrap().as_bytes(),
        b"EXAMPLE.COMalice"
    );
}

#[tokio::test]
async fn as_errors() {
    let state = state();
    let good = || enc_timestamp("alice-pw-123", "EXAMPLE.COMalice", now());
    let wrong = enc_timestamp("wrong", "EXAMPLE.COMalice", now());
    assert_eq!(
        error_code(&run(&state, &as_req("alice", Some(vec![wrong]), vec![18], 0)).await),
        24
    );
    let skewed = enc_timestamp(
        "alice-pw-123",
        "EXAMPLE.COMalice",
        now() - Duration::from_secs(301),
    );
    assert_eq!(
        error_code(&run(&state, &as_req("alice", Some(vec![skewed]), vec![18], 0)).await),
        37
    );
    assert_eq!(
        error_code(&run(&state, &as_req("ghost", Some(vec![good()]), vec![18], 0)).await),
        6
    );
    assert_eq!(
        error_code(&run(&state, &as_req("dave", Some(vec![good()]), vec![18], 0)).await),
        18
    );
    assert_eq!(
        error_code(
            &run(
                &state,
                &as_req("alice", Some(vec![good()]), vec![23, 16], 0)
            )
            .await
        ),
        14
    );
    let mut bad_realm = rasn::der::decode::<AsReq>(&as_req("alice", None, vec![18], 0)).unwrap();
    bad_realm.0.req_body.realm = codec::kerberos_string("OTHER.COM").unwrap();
    assert_eq!(
        error_code(&run(&state, &rasn::der::encode(&bad_realm).unwrap()).await),
        68
    );
}

/// A replay store shared by two KDC "nodes" (as `cluster::shared::EtcdReplay` is through
/// etcd), which can be made unreachable.
struct SharedStore {
    seen: ReplayCache,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl super::replay::ReplayStore for SharedStore {
    async fn check_and_insert(
        &self,
        key: super::replay::ReplayKey,
        now: SystemTime,
    ) -> Result<(), super::replay::ReplayError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(super::replay::ReplayError::Unavailable);
        }
        self.seen.check_and_insert(key, now)
    }

    async fn forget(&self, key: &super::replay::ReplayKey) {
        self.seen.forget(key)
    }
}

#[tokio::test]
async fn a_shared_replay_store_catches_replays_on_another_node_and_fails_closed() {
    let store = Arc::new(SharedStore {
        seen: ReplayCache::new(Duration::from_secs(300), 100),
        down: std::sync::atomic::AtomicBool::new(false),
    });
    let a = state();
    let b = KdcState {
        config: KdcConfig::new(REALM),
        db: a.db.clone(),
        replay: store.clone(),
        observer: None,
        otp: None,
    };
    let a = KdcState {
        replay: store.clone(),
        ..a
    };
    let (tgt, session) = login(&a).await;
    let req = body(None, "host/client.example.com", 0, vec![18], 7);
    let first = tgs_req(&tgt, &session, &req, &req, 1);
    assert!(rasn::der::decode::<TgsRep>(&run(&a, &first).await).is_ok());
    // The same authenticator sent to node B: KRB_AP_ERR_REPEAT.
    assert_eq!(error_code(&run(&b, &first).await), 34);
    // The store unreachable: KRB_ERR_GENERIC, never accepted unchecked, not called a replay.
    store.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let second = tgs_req(&tgt, &session, &req, &req, 2);
    assert_eq!(error_code(&run(&b, &second).await), 60);
    // Nothing was recorded: once the store is back, the same request is served.
    store.down.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(rasn::der::decode::<TgsRep>(&run(&b, &second).await).is_ok());
}

#[tokio::test]
async fn tgs_issues_service_tickets_and_catches_replays_and_tampering() {
    let state = state();
    let (tgt, session) = login(&state).await;
    let b = body(
        None,
        "host/client.example.com",
        opt::FORWARDABLE,
        vec![18, 17],
        7,
    );

    let reply = run(&state, &tgs_req(&tgt, &session, &b, &b, 1)).await;
    let rep: TgsRep =
        rasn::der::decode(&reply).unwrap_or_else(|_| panic!("code {}", error_code(&reply)));
    assert_eq!(rep.0.ticket.enc_part.kvno, Some(2));
    assert_eq!(rep.0.enc_part.etype, 18);

    // The same authenticator again is a replay.
    assert_eq!(
        error_code(&run(&state, &tgs_req(&tgt, &session, &b, &b, 1)).await),
        34
    );

    // A body that differs from the checksummed one is detected (checksum over the raw body).
    let mut altered = b.clone();
    altered.nonce = 8;
    assert_eq!(
        error_code(&run(&state, &tgs_req(&tgt, &session, &b, &altered, 2)).await),
        41
    );

    // Unknown service; user principals are not ticket targets.
    let ghost = body(None, "nfs/ghost.example.com", 0, vec![18], 9);
    assert_eq!(
        error_code(&run(&state, &tgs_req(&tgt, &session, &ghost, &ghost, 3)).await),
        7
    );
    let user = body(None, "alice", 0, vec![18], 10);
    assert_eq!(
        error_code(&run(&state, &tgs_req(&tgt, &session, &user, &user, 4)).await),
        7
    );
}

#[tokio::test]
async fn tgs_renews_a_renewable_tgt() {
    let state = state();
    let (tgt, session) = login(&state).await;
    let b = body(None, "krbtgt/EXAMPLE.COM", opt::RENEW, vec![18], 11);
    let reply = run(&state, &tgs_req(&tgt, &session, &b, &b, 5)).await;
    let rep: TgsRep =
        rasn::der::decode(&reply).unwrap_or_else(|_| panic!("code {}", error_code(&reply)));
    assert_eq!(rep.0.ticket.sname, name("krbtgt/EXAMPLE.COM"));
    // The reply is encrypted in the authenticator subkey (usage 9); the session key cannot open it.
    assert!(crypto::decrypt(&session, usage::TGS_REP_SESSION_KEY, &rep.0.enc_part).is_err());
}

#[tokio::test]
async fn garbage_never_panics() {
    let state = state();
    let valid = as_req("alice", None, vec![18], 0);
    for n in 0..valid.len() {
        let _ = handle_kdc(&state, &valid[..n], None, now(), &mut rand::rngs::OsRng).await;
    }
    let mut flipped = valid.clone();
    for i in 0..flipped.len() {
        flipped[i] ^= 0xff;
        let _ = handle_kdc(&state, &flipped, None, now(), &mut rand::rngs::OsRng).await;
        flipped[i] ^= 0xff;
    }
    assert!(handle_kdc(
        &state,
        b"GET / HTTP/1.0\r\n",
        None,
        now(),
        &mut rand::rngs::OsRng
    )
    .await
    .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_reply_too_big_then_tcp_succeeds() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let base = state();
    let mut config = KdcConfig::new(REALM);
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.kpasswd_listen = vec![];
    config.udp_reply_limit = 300;
    let kdc = super::Kdc::bind(config, base.db.clone()).await.unwrap();
    let addr = kdc.kdc_addrs()[0];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kdc.run(async {
        let _ = stopped.await;
    }));

    let pa = enc_timestamp("alice-pw-123", "EXAMPLE.COMalice", SystemTime::now());
    let req = as_req("alice", Some(vec![pa]), vec![18], 0);
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(&req, addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), udp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(error_code(&buf[..n]), 52);

    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&codec::frame(&req)).await.unwrap();
    let mut len = [0u8; 4];
    tcp.read_exact(&mut len).await.unwrap();
    let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
    tcp.read_exact(&mut reply).await.unwrap();
    assert!(
        rasn::der::decode::<AsRep>(&reply).is_ok(),
        "expected an AS-REP over TCP"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// A kadmin/changepw ticket for alice from the AS exchange (as kpasswd gets one), its session
/// key and the reply's flags, end and renew-till.
async fn changepw_ticket(
    state: &KdcState,
    options: u32,
) -> (Ticket, krb5::Key, rasn_kerberos::EncKdcRepPart) {
    let pa = enc_timestamp("alice-pw-123", "EXAMPLE.COMalice", now());
    let mut b = body(Some("alice"), "kadmin/changepw", options, vec![18], 43);
    b.rtime = Some(codec::kerberos_time(now() + Duration::from_secs(7 * 86400)));
    let req = AsReq(KdcReq {
        pvno: 5.into(),
        msg_type: 10.into(),
        padata: Some(vec![pa]),
        req_body: b,
    });
    let reply = run(state, &rasn::der::encode(&req).unwrap()).await;
    let rep: AsRep =
        rasn::der::decode(&reply).unwrap_or_else(|_| panic!("code {}", error_code(&reply)));
    let key = krb5::Key::from_password(18, "alice-pw-123", b"EXAMPLE.COMalice", None).unwrap();
    let part: EncAsRepPart =
        rasn::der::decode(&crypto::decrypt(&key, usage::AS_REP_ENC_PART, &rep.0.enc_part).unwrap())
            .unwrap();
    let session = crypto::wire_key(&part.0.key).unwrap();
    (rep.0.ticket, session, part.0)
}

/// A version-1 kpasswd request setting `password` with `ticket`; returns the request and the
/// subkey the reply's KRB-PRIV is encrypted with.
fn kpasswd_request(ticket: &Ticket, session: &krb5::Key, password: &str) -> (Vec<u8>, krb5::Key) {
    kpasswd_request_with(ticket, session, 1, password.as_bytes())
}

/// A kpasswd request of protocol `version` whose KRB-PRIV carries `user_data`.
fn kpasswd_request_with(
    ticket: &Ticket,
    session: &krb5::Key,
    version: u16,
    user_data: &[u8],
) -> (Vec<u8>, krb5::Key) {
    use rasn_kerberos::{EncKrbPrivPart, KrbPriv};
    let subkey = crypto::session_key(18, &mut rand::rngs::OsRng).unwrap();
    let auth = Authenticator {
        authenticator_vno: 5.into(),
        crealm: realm(),
        cname: name("alice"),
        cksum: None,
        cusec: 77.into(),
        ctime: codec::kerberos_time(now()),
        subkey: Some(crypto::encryption_key(&subkey)),
        seq_number: Some(1),
        authorization_data: None,
    };
    let ap = ApReq {
        pvno: 5.into(),
        msg_type: 14.into(),
        ap_options: ApOptions(codec::flags_to_bits(0)),
        ticket: ticket.clone(),
        authenticator: crypto::encrypt(
            session,
            usage::AP_REQ_AUTHENTICATOR,
            &rasn::der::encode(&auth).unwrap(),
            None,
        )
        .unwrap(),
    };
    let part = EncKrbPrivPart {
        user_data: user_data.to_vec().into(),
        timestamp: Some(codec::kerberos_time(now())),
        usec: Some(0.into()),
        seq_number: Some(1),
        sender_address: rasn_kerberos::HostAddress {
            addr_type: rasn_kerberos::HostAddress::IPV4,
            address: vec![127, 0, 0, 1].into(),
        },
        recipient_address: None,
    };
    let krb_priv = KrbPriv {
        pvno: 5.into(),
        msg_type: 21.into(),
        enc_part: crypto::encrypt(
            &subkey,
            usage::KRB_PRIV_ENC_PART,
            &rasn::der::encode(&part).unwrap(),
            None,
        )
        .unwrap(),
    };
    let (ap, pr) = (
        rasn::der::encode(&ap).unwrap(),
        rasn::der::encode(&krb_priv).unwrap(),
    );
    let mut out = Vec::new();
    out.extend_from_slice(
        &u16::try_from(6 + ap.len() + pr.len())
            .unwrap()
            .to_be_bytes(),
    );
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&u16::try_from(ap.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&ap);
    out.extend_from_slice(&pr);
    (out, subkey)
}

/// The kpasswd result code and text in a reply (AP-REP + KRB-PRIV).
fn kpasswd_result(reply: &[u8], subkey: &krb5::Key) -> (u16, String) {
    use rasn_kerberos::{EncKrbPrivPart, KrbPriv};
    let ap_len = usize::from(u16::from_be_bytes([reply[4], reply[5]]));
    assert!(ap_len > 0, "a bare KRB-ERROR, not a kpasswd result");
    let krb_priv: KrbPriv = rasn::der::decode(&reply[6 + ap_len..]).unwrap();
    let plain = crypto::decrypt(subkey, usage::KRB_PRIV_ENC_PART, &krb_priv.enc_part).unwrap();
    let part: EncKrbPrivPart = rasn::der::decode(&plain).unwrap();
    let data = part.user_data.to_vec();
    (
        u16::from_be_bytes([data[0], data[1]]),
        String::from_utf8_lossy(&data[2..]).into_owned(),
    )
}

fn state_over(db: Arc<MemoryDb>) -> KdcState {
    let config = KdcConfig::new(REALM);
    let replay = std::sync::Arc::new(ReplayCache::new(config.max_skew, 1000));
    KdcState {
        config,
        db,
        replay,
        observer: None,
        otp: None,
    }
}

fn memory_db() -> Arc<MemoryDb> {
    let db = MemoryDb::new(REALM);
    db.add_user("alice", "alice-pw-123").unwrap();
    db.add_service("krbtgt/EXAMPLE.COM", random_keys(1).unwrap())
        .unwrap();
    Arc::new(db)
}

#[tokio::test]
async fn changepw_tickets_live_five_minutes_and_are_not_renewable() {
    let state = state();
    let (_, _, part) = changepw_ticket(&state, opt::RENEWABLE | opt::RENEWABLE_OK).await;
    assert_eq!(
        codec::system_time(&part.end_time),
        now() + Duration::from_secs(300)
    );
    assert!(part.renew_till.is_none());
    assert_eq!(codec::bits_to_flags(&part.flags.0) & tf::RENEWABLE, 0);
}

#[tokio::test]
async fn kpasswd_rechecks_the_account_at_the_change() {
    let local: std::net::SocketAddr = "127.0.0.1:464".parse().unwrap();
    // Control: the same request succeeds while the account is enabled.
    let db = memory_db();
    let state = state_over(db.clone());
    let (ticket, session, _) = changepw_ticket(&state, 0).await;
    let (req, subkey) = kpasswd_request(&ticket, &session, "new-password-1");
    let reply = super::kpasswd::handle(&state, &req, local, now(), &mut rand::rngs::OsRng)
        .await
        .unwrap();
    assert_eq!(kpasswd_result(&reply.bytes, &subkey).0, 0);

    // Disabled after the ticket was issued: refused at the change.
    for change in [
        (|r: &mut super::db::PrincipalRecord| r.disabled = true) as fn(&mut _),
        |r| r.locked = true,
        |r| r.account_id = Some(vec![9; 16]),
    ] {
        let db = memory_db();
        let state = state_over(db.clone());
        let (ticket, session, _) = changepw_ticket(&state, 0).await;
        db.update("alice", change);
        let (req, subkey) = kpasswd_request(&ticket, &session, "new-password-1");
        let reply = super::kpasswd::handle(&state, &req, local, now(), &mut rand::rngs::OsRng)
            .await
            .unwrap();
        let (code, text) = kpasswd_result(&reply.bytes, &subkey);
        assert_eq!(code, super::kpasswd::result::ACCESSDENIED, "{text}");
        let keys_now = db
            .lookup(&PrincipalName::parse("alice").unwrap())
            .await
            .unwrap()
            .unwrap()
            .kvno;
        assert_eq!(keys_now, 1, "the password must not have changed");
    }
}

// ---- FAST (RFC 6113) ----

mod fast_exchange {
    use super::*;
    use crate::kdc::fast_types::{
        self as ft, KrbFastArmor, KrbFastArmoredReq, KrbFastReq, KrbFastResponse, PaFxFastReply,
        PaFxFastRequest,
    };

    /// An armor AP-REQ for the TGT (authenticator usage 11, with `subkey`).
    fn armor_ap_req(tgt: &Ticket, session: &krb5::Key, subkey: &krb5::Key) -> Vec<u8> {
        let auth = Authenticator {
            authenticator_vno: 5.into(),
            crealm: realm(),
            cname: name("alice"),
            cksum: None,
            cusec: 7.into(),
            ctime: codec::kerberos_time(now()),
            subkey: Some(crypto::encryption_key(subkey)),
            seq_number: None,
            authorization_data: None,
        };
        let enc = crypto::encrypt(
            session,
            usage::AP_REQ_AUTHENTICATOR,
            &rasn::der::encode(&auth).unwrap(),
            None,
        )
        .unwrap();
        rasn::der::encode(&ApReq {
            pvno: 5.into(),
            msg_type: 14.into(),
            ap_options: ApOptions(codec::flags_to_bits(0)),
            ticket: tgt.clone(),
            authenticator: enc,
        })
        .unwrap()
    }

    struct Fast {
        armor: Vec<u8>,
        key: krb5::Key,
    }

    async fn armor(state: &KdcState) -> Fast {
        let (tgt, session) = login(state).await;
        let subkey = crypto::session_key(18, &mut rand::rngs::OsRng).unwrap();
        Fast {
            armor: armor_ap_req(&tgt, &session, &subkey),
            key: krb5::Key::cf2(&subkey, "subkeyarmor", &session, "ticketarmor").unwrap(),
        }
    }

    /// An armored AS-REQ for `user` carrying `inner` padata; `tamper` edits the armored part.
    fn fast_as_req(
        fast: &Fast,
        user: &str,
        inner: Vec<PaData>,
        tamper: impl FnOnce(&mut KrbFastArmoredReq),
    ) -> Vec<u8> {
        let req_body = body(Some(user), "krbtgt/EXAMPLE.COM", 0, vec![18, 17], 42);
        let fast_req = KrbFastReq {
            fast_options: codec::flags_to_bits(0),
            padata: inner,
            req_body: req_body.clone(),
        };
        let raw_outer = rasn::der::encode(&req_body).unwrap();
        let mut armored = KrbFastArmoredReq {
            armor: Some(KrbFastArmor {
                armor_type: ft::ARMOR_AP_REQUEST,
                armor_value: fast.armor.clone().into(),
            }),
            req_checksum: crypto::checksum(&fast.key, ft::usage::FAST_REQ_CHKSUM, &raw_outer)
                .unwrap(),
            enc_fast_req: crypto::encrypt(
                &fast.key,
                ft::usage::FAST_ENC,
                &rasn::der::encode(&fast_req).unwrap(),
                None,
            )
            .unwrap(),
        };
        tamper(&mut armored);
        let pa = PaData {
            r#type: ft::PA_FX_FAST,
            value: rasn::der::encode(&PaFxFastRequest(armored)).unwrap().into(),
        };
        rasn::der::encode(&AsReq(KdcReq {
            pvno: 5.into(),
            msg_type: 10.into(),
            padata: Some(vec![pa]),
            req_body,
        }))
        .unwrap()
    }

    fn challenge(fast: &Fast, password: &str) -> PaData {
        let long_term = krb5::Key::from_password(18, password, b"EXAMPLE.COMalice", None).unwrap();
        let key = krb5::Key::cf2(
            &fast.key,
            "clientchallengearmor",
            &long_term,
            "challengelongterm",
        )
        .unwrap();
        let ts = PaEncTsEnc {
            patimestamp: codec::kerberos_time(now()),
            pausec: Some(0.into()),
        };
        let enc = crypto::encrypt(
            &key,
            ft::usage::ENC_CHALLENGE_CLIENT,
            &rasn::der::encode(&ts).unwrap(),
            None,
        )
        .unwrap();
        PaData {
            r#type: ft::PA_ENCRYPTED_CHALLENGE,
            value: rasn::der::encode(&enc).unwrap().into(),
        }
    }

    fn open(fast: &Fast, padata: &[PaData]) -> KrbFastResponse {
        let pa = padata.iter().find(|p| p.r#type == ft::PA_FX_FAST).unwrap();
        let rep: PaFxFastReply = rasn::der::decode(&pa.value).unwrap();
        let plain = crypto::decrypt(&fast.key, ft::usage::FAST_REP, &rep.0.enc_fast_rep).unwrap();
        rasn::der::decode(&plain).unwrap()
    }

    #[tokio::test]
    async fn armored_as_with_encrypted_challenge() {
        let state = state();
        let fast = armor(&state).await;
        // No pre-authentication yet: PREAUTH_REQUIRED inside FAST, offering encrypted
        // challenge and a cookie.
        let reply = run(&state, &fast_as_req(&fast, "alice", vec![], |_| {})).await;
        let err: KrbError = rasn::der::decode(&reply).unwrap();
        assert_eq!(err.error_code, 25);
        let outer: MethodData = rasn::der::decode(err.e_data.as_ref().unwrap()).unwrap();
        let inner = open(&fast, &outer);
        assert_eq!(inner.nonce, 42);
        let types: Vec<i32> = inner.padata.iter().map(|p| p.r#type).collect();
        assert_eq!(
            types,
            vec![
                ft::PA_FX_ERROR,
                19,
                ft::PA_ENCRYPTED_CHALLENGE,
                ft::PA_FX_COOKIE
            ]
        );

        // With the challenge: an AS-REP bound to the armor, reply key strengthened.
        let pa = challenge(&fast, "alice-pw-123");
        let reply = run(&state, &fast_as_req(&fast, "alice", vec![pa], |_| {})).await;
        let rep: AsRep = rasn::der::decode(&reply).expect("AS-REP");
        let inner = open(&fast, rep.0.padata.as_deref().unwrap());
        let finished = inner.finished.expect("KrbFastFinished");
        crypto::verify_checksum(
            &fast.key,
            ft::usage::FAST_FINISHED,
            &rasn::der::encode(&rep.0.ticket).unwrap(),
            &finished.ticket_checksum,
        )
        .unwrap();
        assert!(inner
            .padata
            .iter()
            .any(|p| p.r#type == ft::PA_ENCRYPTED_CHALLENGE));
        let strengthen = crypto::wire_key(&inner.strengthen_key.unwrap()).unwrap();
        let long_term =
            krb5::Key::from_password(18, "alice-pw-123", b"EXAMPLE.COMalice", None).unwrap();
        let reply_key =
            krb5::Key::cf2(&strengthen, "strengthenkey", &long_term, "replykey").unwrap();
        let part: EncAsRepPart = rasn::der::decode(
            &crypto::decrypt(&reply_key, usage::AS_REP_ENC_PART, &rep.0.enc_part).unwrap(),
        )
        .unwrap();
        assert_eq!(part.0.nonce, 42);
        assert!(crypto::decrypt(&long_term, usage::AS_REP_ENC_PART, &rep.0.enc_part).is_err());

        // A wrong password: KDC_ERR_PREAUTH_FAILED, inside the armor.
        let pa = challenge(&fast, "wrong-pw");
        let reply = run(&state, &fast_as_req(&fast, "alice", vec![pa], |_| {})).await;
        let err: KrbError = rasn::der::decode(&reply).unwrap();
        assert_eq!(err.error_code, 24);
        let outer: MethodData = rasn::der::decode(err.e_data.as_ref().unwrap()).unwrap();
        assert_eq!(open(&fast, &outer).padata[0].r#type, ft::PA_FX_ERROR);
    }

    #[tokio::test]
    async fn hostile_fast_requests_are_errors() {
        let state = state();
        let fast = armor(&state).await;
        let other = Fast {
            armor: fast.armor.clone(),
            key: crypto::session_key(18, &mut rand::rngs::OsRng).unwrap(),
        };
        let cases: Vec<(Vec<u8>, i32)> = vec![
            // no armor in an AS request
            (fast_as_req(&fast, "alice", vec![], |a| a.armor = None), 60),
            // unknown armor type
            (
                fast_as_req(&fast, "alice", vec![], |a| {
                    a.armor.as_mut().unwrap().armor_type = 2
                }),
                60,
            ),
            // armor that is not an AP-REQ
            (
                fast_as_req(&fast, "alice", vec![], |a| {
                    a.armor.as_mut().unwrap().armor_value = vec![0x30, 0x00].into()
                }),
                60,
            ),
            // req-checksum by another key: KRB_AP_ERR_MODIFIED
            (
                fast_as_req(&fast, "alice", vec![], |a| {
                    a.req_checksum =
                        crypto::checksum(&other.key, ft::usage::FAST_REQ_CHKSUM, b"x").unwrap()
                }),
                41,
            ),
            // enc-fast-req under another key: KRB_AP_ERR_BAD_INTEGRITY (inside FAST)
            (
                fast_as_req(&fast, "alice", vec![], |a| {
                    a.enc_fast_req =
                        crypto::encrypt(&other.key, ft::usage::FAST_ENC, b"junk", None).unwrap()
                }),
                31,
            ),
            // enc-fast-req that decrypts to garbage
            (
                fast_as_req(&fast, "alice", vec![], |a| {
                    a.enc_fast_req =
                        crypto::encrypt(&fast.key, ft::usage::FAST_ENC, b"\x30\x80junk", None)
                            .unwrap()
                }),
                60,
            ),
        ];
        for (msg, code) in cases {
            assert_eq!(error_code(&run(&state, &msg).await), code);
        }
        // PA-FX-FAST values that are not PA-FX-FAST-REQUEST at all
        for junk in [
            &b""[..],
            b"\xa0",
            b"\xa0\x02\x30\x00",
            b"\xa1\x03\x02\x01\x01",
        ] {
            let msg = as_req(
                "alice",
                Some(vec![PaData {
                    r#type: ft::PA_FX_FAST,
                    value: junk.to_vec().into(),
                }]),
                vec![18],
                0,
            );
            assert_eq!(error_code(&run(&state, &msg).await), 60);
        }
    }
}

/// RFC 3244 set-password: a `targname` other than the caller goes to the `PrincipalDb`'s
/// `set_password` (which decides who may: the default refuses with ACCESSDENIED), never to
/// the caller's own change; naming oneself is a change of one's own password.
#[tokio::test]
async fn kpasswd_set_password_for_another_principal_asks_the_db() {
    use super::db::{DbError, PasswordChangeError, PrincipalRecord};
    use super::kpasswd::{result, ChangePasswdData, VERSION_SET};
    use std::sync::Mutex;

    struct Db {
        inner: Arc<MemoryDb>,
        allow: bool,
        calls: Mutex<Vec<(String, String)>>,
    }
    #[async_trait::async_trait]
    impl PrincipalDb for Db {
        async fn lookup(&self, n: &PrincipalName) -> Result<Option<PrincipalRecord>, DbError> {
            self.inner.lookup(n).await
        }
        async fn change_password(
            &self,
            n: &PrincipalName,
            p: &str,
        ) -> Result<(), PasswordChangeError> {
            self.inner.change_password(n, p).await
        }
        async fn set_password(
            &self,
            caller: &PrincipalName,
            target: &PrincipalName,
            _p: &str,
        ) -> Result<(), PasswordChangeError> {
            self.calls
                .lock()
                .unwrap()
                .push((caller.joined(), target.joined()));
            if self.allow {
                Ok(())
            } else {
                Err(PasswordChangeError::AccessDenied)
            }
        }
    }
    let local: std::net::SocketAddr = "127.0.0.1:464".parse().unwrap();
    let set = |target: &str| {
        rasn::der::encode(&ChangePasswdData {
            newpasswd: b"new-password-1".to_vec().into(),
            targname: Some(name(target)),
            targrealm: Some(realm()),
        })
        .unwrap()
    };
    for allow in [true, false] {
        let db = Arc::new(Db {
            inner: memory_db(),
            allow,
            calls: Mutex::new(Vec::new()),
        });
        let state = KdcState {
            db: db.clone(),
            ..state_over(memory_db())
        };
        let (ticket, session, _) = changepw_ticket(&state, 0).await;
        let (req, subkey) = kpasswd_request_with(&ticket, &session, VERSION_SET, &set("bob"));
        let reply = super::kpasswd::handle(&state, &req, local, now(), &mut rand::rngs::OsRng)
            .await
            .unwrap();
        let (code, text) = kpasswd_result(&reply.bytes, &subkey);
        let want = if allow {
            result::SUCCESS
        } else {
            result::ACCESSDENIED
        };
        assert_eq!(code, want, "{text}");
        assert_eq!(
            db.calls.lock().unwrap().as_slice(),
            [("alice".to_owned(), "bob".to_owned())]
        );
        // Naming oneself: the caller's own change (kvno 1 -> 2), not a set (a fresh replay
        // cache: the helper's authenticators all carry the same time).
        let state = KdcState {
            db: db.clone(),
            ..state_over(memory_db())
        };
        let (ticket, session, _) = changepw_ticket(&state, 0).await;
        let (req, subkey) = kpasswd_request_with(&ticket, &session, VERSION_SET, &set("alice"));
        let reply = super::kpasswd::handle(&state, &req, local, now(), &mut rand::rngs::OsRng)
            .await
            .unwrap();
        assert_eq!(kpasswd_result(&reply.bytes, &subkey).0, result::SUCCESS);
        assert_eq!(db.calls.lock().unwrap().len(), 1);
        let alice = PrincipalName::parse("alice").unwrap();
        assert_eq!(db.inner.lookup(&alice).await.unwrap().unwrap().kvno, 2);
    }
}

/// MS-PAC: the TGT carries a PAC the TGS verifies; a TGT without one, or with a changed one,
/// is refused (KRB_AP_ERR_MODIFIED); the service ticket's PAC is re-signed for the service.
#[tokio::test]
async fn tgs_verifies_the_tgt_pac_and_re_signs_it() {
    use rasn_kerberos::EncTicketPart;
    let state = state();
    let (tgt, session) = login(&state).await;
    let krbtgt = state
        .db
        .lookup(&PrincipalName::krbtgt(REALM))
        .await
        .unwrap()
        .unwrap();
    let material = crypto::key_for(&krbtgt.keys, tgt.enc_part.etype).unwrap();
    let krbtgt_key = crypto::key(material).unwrap();
    let part: EncTicketPart =
        rasn::der::decode(&crypto::decrypt(&krbtgt_key, usage::TICKET, &tgt.enc_part).unwrap())
            .unwrap();
    let pac = super::pac::find(part.authorization_data.as_ref())
        .unwrap()
        .expect("the TGT carries a PAC");
    krb5::pac::Pac::parse(&pac)
        .unwrap()
        .verify_server_signature(&krbtgt_key)
        .unwrap();
    let reseal = |part: &EncTicketPart| {
        let mut t = tgt.clone();
        t.enc_part = crypto::encrypt(
            &krbtgt_key,
            usage::TICKET,
            &rasn::der::encode(part).unwrap(),
            Some(material.kvno),
        )
        .unwrap();
        t
    };
    let b = body(None, "host/client.example.com", 0, vec![18], 11);

    // Without its PAC: refused.
    let mut bare = part.clone();
    bare.authorization_data = Some(super::pac::strip(part.authorization_data.as_ref()));
    assert_eq!(
        error_code(&run(&state, &tgs_req(&reseal(&bare), &session, &b, &b, 21)).await),
        41
    );
    // With one byte of the PAC changed (the client name): refused.
    let mut changed = pac.clone();
    let at = changed.len() - 40;
    changed[at] ^= 0x20;
    let mut forged = part.clone();
    let inner = vec![rasn_kerberos::AuthorizationDataValue {
        r#type: super::pac::AD_WIN2K_PAC,
        data: changed.into(),
    }];
    let mut ad = super::pac::strip(part.authorization_data.as_ref());
    ad.insert(
        0,
        rasn_kerberos::AuthorizationDataValue {
            r#type: rasn_kerberos::AuthorizationDataValue::IF_RELEVANT,
            data: rasn::der::encode(&inner).unwrap().into(),
        },
    );
    forged.authorization_data = Some(ad);
    assert_eq!(
        error_code(&run(&state, &tgs_req(&reseal(&forged), &session, &b, &b, 22)).await),
        41
    );
    // As issued: the service ticket's PAC carries all four signatures, which verify.
    let reply = run(&state, &tgs_req(&tgt, &session, &b, &b, 23)).await;
    let rep: TgsRep =
        rasn::der::decode(&reply).unwrap_or_else(|_| panic!("code {}", error_code(&reply)));
    let service = state
        .db
        .lookup(&PrincipalName::parse("host/client.example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let service_key = crypto::key(crypto::ticket_key(&service.keys).unwrap()).unwrap();
    let ticket = rasn::der::encode(&rep.0.ticket).unwrap();
    let pac = krb5::pac::verify_ticket(&ticket, &service_key, &krbtgt_key)
        .unwrap()
        .expect("the service ticket carries a PAC");
    assert_eq!(
        pac.client_info().unwrap().unwrap().name,
        "alice",
        "CLIENT_INFO copied from the TGT"
    );
}
