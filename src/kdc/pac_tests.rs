//! PAC encoding and decoding against a PAC captured from a Windows 2003 DC (the one Samba's
//! torture suite and MIT's t_pac test use), and signatures checked by the `krb5` crate's
//! independent PAC verifier.

use super::*;

/// The captured PAC: LOGON_INFO, CLIENT_INFO, server and KDC signatures (HMAC-MD5).
const W2003: &[u8] = include_bytes!("../../tests/fixtures/pac-w2003.bin");
/// Its authtime (unix seconds).
const W2003_AUTHTIME: u64 = 1_120_440_609;

fn sid(s: &str) -> Vec<u8> {
    let mut parts = s.trim_start_matches("S-").split('-');
    let rev: u8 = parts.next().unwrap().parse().unwrap();
    let auth: u64 = parts.next().unwrap().parse().unwrap();
    let subs: Vec<u32> = parts.map(|p| p.parse().unwrap()).collect();
    let mut out = vec![rev, subs.len() as u8];
    out.extend_from_slice(&auth.to_be_bytes()[2..]);
    for s in subs {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[test]
fn decodes_the_captured_windows_pac() {
    let pac = Pac::decode(W2003).unwrap();
    assert_eq!(pac.types(), vec![1, 10, 6, 7]);
    let li = pac.logon_info().unwrap().unwrap();
    assert_eq!(li.effective_name, "W2003FINAL$");
    assert_eq!(li.full_name, "");
    assert_eq!(li.logon_count, 101);
    assert_eq!(li.user_id, 1005);
    assert_eq!(li.primary_group_id, 516);
    assert_eq!(li.group_ids, vec![(516, 7)]);
    assert_eq!(li.user_flags, LOGON_EXTRA_SIDS);
    assert_eq!(li.logon_server, "W2003FINAL");
    assert_eq!(li.logon_domain_name, "WIN2K3THINK");
    assert_eq!(
        li.logon_domain_id,
        Some(sid("S-1-5-21-3048156945-3961193616-3706469200"))
    );
    assert_eq!(li.user_account_control, 0x2100);
    assert_eq!(li.extra_sids, vec![(sid("S-1-5-9"), 7)]);
    assert_eq!(li.logoff_time, NEVER);
    let ci = pac.client_info().unwrap().unwrap();
    assert_eq!(ci.name, "w2003final$");
    assert_eq!(
        ci.client_id,
        filetime(std::time::UNIX_EPOCH + std::time::Duration::from_secs(W2003_AUTHTIME))
    );
    let (ctype, sum) = pac.signature(bt::SERVER_CHECKSUM).unwrap().unwrap();
    assert_eq!((ctype, sum.len()), (-138, 16));
}

#[test]
fn encodes_the_captured_pac_byte_for_byte() {
    let pac = Pac::decode(W2003).unwrap();
    // CLIENT_INFO re-encodes exactly.
    let ci = pac.client_info().unwrap().unwrap();
    assert_eq!(ci.encode(), pac.buffer(bt::CLIENT_INFO).unwrap());
    // The container re-encodes exactly from its buffers.
    let all: Vec<(u32, Vec<u8>)> = pac
        .types()
        .into_iter()
        .map(|t| (t, pac.buffer(t).unwrap().to_vec()))
        .collect();
    assert_eq!(encode(&all), W2003);
    // LOGON_INFO re-encodes exactly except where Windows left room for a terminating NUL
    // (MaximumLength one character above Length in LogonServer and LogonDomainName, and the
    // matching conformance counts): dird writes MaximumLength = Length.
    let li = pac.logon_info().unwrap().unwrap();
    let ours = li.encode();
    let theirs = pac.buffer(bt::LOGON_INFO).unwrap();
    assert_eq!(ours.len(), theirs.len());
    let differ: Vec<usize> = (0..ours.len()).filter(|&i| ours[i] != theirs[i]).collect();
    // The MaximumLength fields of LogonServer and LogonDomainName, and the MaxCount of
    // their deferred arrays: nothing else differs.
    assert_eq!(differ, [158, 166, 344, 376], "ours {ours:02x?}");
    assert_eq!((ours[158], theirs[158]), (0x14, 0x16));
    assert_eq!((ours[344], theirs[344]), (0x0a, 0x0b));
    // Decoding our encoding gives the same values back.
    assert_eq!(LogonInfo::decode(&ours).unwrap(), li);
}

fn keys() -> (Key, Key) {
    let service = Key::new(18, (0u8..32).collect()).unwrap();
    let krbtgt = Key::new(17, (100u8..116).collect()).unwrap();
    (service, krbtgt)
}

fn identity() -> AccountIdentity {
    let domain = sid("S-1-5-21-1-2-3");
    AccountIdentity {
        sam_account_name: "alice".into(),
        full_name: "Alice Liddell".into(),
        upn: Some("alice@example.com".into()),
        sid: sid("S-1-5-21-1-2-3-1105"),
        domain_sid: domain,
        primary_group_rid: 513,
        group_sids: vec![
            sid("S-1-5-21-1-2-3-513"),
            sid("S-1-5-21-1-2-3-1106"),
            sid("S-1-5-21-1-2-3-1107"),
            sid("S-1-5-32-545"),
        ],
        user_account_control: 0x10200,
        password_last_set: 0,
        netbios_domain: "EXAMPLE".into(),
        logon_server: "DC1".into(),
    }
}

#[test]
fn new_pac_decodes_with_the_krb5_crate() {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let buffers = data_buffers(Some(&identity()), "alice", "EXAMPLE.COM", at);
    let (service, krbtgt) = keys();
    let bytes = sign(&buffers, &service, &krbtgt, None).unwrap();
    let theirs = krb5::pac::Pac::parse(&bytes).unwrap();
    theirs.verify_server_signature(&service).unwrap();
    theirs.verify_kdc_signature(&krbtgt).unwrap();
    let li = theirs.logon_info().unwrap().unwrap();
    assert_eq!(li.effective_name, "alice");
    assert_eq!(li.full_name, "Alice Liddell");
    assert_eq!(li.user_id, 1105);
    assert_eq!(li.primary_group_id, 513);
    assert_eq!(
        li.group_ids.iter().map(|g| g.rid).collect::<Vec<_>>(),
        vec![513, 1106, 1107]
    );
    assert_eq!(li.logon_domain_name, "EXAMPLE");
    assert_eq!(li.extra_sids.len(), 1);
    let ci = theirs.client_info().unwrap().unwrap();
    assert_eq!(ci.name, "alice");
    assert_eq!(ci.authtime.unix_secs(), Some(1_700_000_000));
    let upn = theirs.upn_dns_info().unwrap().unwrap();
    assert_eq!(upn.upn, "alice@example.com");
    assert_eq!(upn.dns_domain, "EXAMPLE.COM");
    // Our own decoder agrees, and our verifier accepts what we signed.
    let ours = Pac::decode(&bytes).unwrap();
    assert_eq!(ours.types(), vec![1, 10, 12, 17, 18, 6, 7]);
    ours.verify(
        std::slice::from_ref(&service),
        std::slice::from_ref(&krbtgt),
    )
    .unwrap();
    let u = ours.upn_dns_info().unwrap().unwrap();
    assert_eq!(
        u.sam_name_and_sid,
        Some(("alice".into(), sid("S-1-5-21-1-2-3-1105")))
    );
    assert_eq!(
        ours.logon_info().unwrap().unwrap().extra_sids,
        vec![(sid("S-1-5-32-545"), 7)]
    );
    // A wrong key or a changed byte fails.
    assert!(ours
        .verify(std::slice::from_ref(&krbtgt), std::slice::from_ref(&krbtgt))
        .is_err());
    let mut bad = bytes.clone();
    let at = bad.len() / 3;
    bad[at] ^= 1;
    if let Ok(p) = Pac::decode(&bad) {
        assert!(p
            .verify(
                std::slice::from_ref(&service),
                std::slice::from_ref(&krbtgt)
            )
            .is_err());
    }
}

#[test]
fn service_ticket_signatures_verify_with_the_krb5_crate() {
    use rasn_kerberos::{
        EncryptionKey, KerberosString, PrincipalName, TicketFlags, TransitedEncoding,
    };
    let (service, krbtgt) = keys();
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let other = AuthorizationDataValue {
        r#type: AuthorizationDataValue::IF_RELEVANT,
        data: codec::encode(&vec![AuthorizationDataValue {
            r#type: -3,
            data: vec![1, 2, 3].into(),
        }])
        .unwrap()
        .into(),
    };
    let name = PrincipalName {
        r#type: 1,
        string: vec![KerberosString::try_from("alice".to_string()).unwrap()],
    };
    let mut part = EncTicketPart {
        flags: TicketFlags(codec::flags_to_bits(0)),
        key: EncryptionKey {
            r#type: 18,
            value: vec![7u8; 32].into(),
        },
        crealm: KerberosString::try_from("EXAMPLE.COM".to_string()).unwrap(),
        cname: name,
        transited: TransitedEncoding {
            r#type: 1,
            contents: Vec::new().into(),
        },
        auth_time: codec::kerberos_time(at),
        start_time: None,
        end_time: codec::kerberos_time(at),
        renew_till: None,
        caddr: None,
        authorization_data: Some(vec![other.clone()]),
    };
    let plan = PacPlan {
        buffers: data_buffers(Some(&identity()), "alice", "EXAMPLE.COM", at),
        kdc_key: krbtgt.clone(),
        service_ticket: true,
    };
    seal(&mut part, &plan, &service).unwrap();
    // Sealing twice replaces the PAC rather than adding one.
    seal(&mut part, &plan, &service).unwrap();
    let ad = part.authorization_data.clone().unwrap();
    assert_eq!(ad.len(), 2);
    assert_eq!(ad[1], other);
    let pac_bytes = find(Some(&ad)).unwrap().unwrap();
    let theirs = krb5::pac::Pac::parse(&pac_bytes).unwrap();
    theirs.verify_server_signature(&service).unwrap();
    theirs.verify_kdc_signature(&krbtgt).unwrap();
    theirs.verify_full_signature(&krbtgt).unwrap();
    let encoded = codec::encode(&part).unwrap();
    krb5::pac::verify_ticket_signature(&encoded, &krbtgt).unwrap();
    let ours = Pac::decode(&pac_bytes).unwrap();
    assert_eq!(ours.types(), vec![1, 10, 12, 6, 7, 16, 19]);
    ours.verify_full(std::slice::from_ref(&krbtgt)).unwrap();
    // Stripping leaves the other element.
    assert_eq!(strip(Some(&ad)), vec![other]);
}

#[test]
fn hostile_input_is_refused_without_panicking() {
    assert!(Pac::decode(&[]).is_err());
    // A huge buffer count, offsets outside the data, a duplicate type.
    assert!(Pac::decode(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_err());
    let mut dup = encode(&[(10, vec![0; 12]), (10, vec![0; 12])]);
    assert!(Pac::decode(&dup).is_err());
    dup[16] = 0x70;
    assert!(Pac::decode(&dup).is_err());
    // Every truncation and every single-byte change of the captured PAC decodes or fails
    // cleanly.
    for n in 0..W2003.len() {
        if let Ok(p) = Pac::decode(&W2003[..n]) {
            let _ = p.logon_info();
            let _ = p.client_info();
        }
    }
    for i in 0..W2003.len() {
        for v in [0x00, 0xff, 0x80] {
            let mut b = W2003.to_vec();
            b[i] = v;
            if let Ok(p) = Pac::decode(&b) {
                let _ = p.logon_info();
                let _ = p.client_info();
                let _ = p.upn_dns_info();
                let _ = p.signature(bt::SERVER_CHECKSUM);
            }
        }
    }
    // A LOGON_INFO claiming a billion groups.
    let li = LogonInfo {
        group_ids: vec![(513, 7)],
        ..LogonInfo::default()
    };
    let mut b = li.encode();
    let count_at = 16 + 4 + 6 * 8 + 6 * 8 + 4 + 8;
    b[count_at..count_at + 4].copy_from_slice(&0x4000_0000u32.to_le_bytes());
    assert!(LogonInfo::decode(&b).is_err());
}

#[test]
fn overlong_strings_are_capped_not_wrapped() {
    let long = "x".repeat(40_000);
    let li = LogonInfo {
        full_name: long.clone(),
        ..LogonInfo::default()
    };
    let back = LogonInfo::decode(&li.encode()).unwrap();
    assert_eq!(back.full_name.len(), 0x7FFF);
    let upn = UpnDnsInfo {
        upn: long.clone(),
        dns_domain: long.clone(),
        flags: 0,
        sam_name_and_sid: Some((long.clone(), sid("S-1-5-21-1-2-3-1105"))),
    };
    let back = UpnDnsInfo::decode(&upn.encode()).unwrap();
    assert_eq!(back.upn.len(), 1024);
    let ci = ClientInfo {
        client_id: 1,
        name: long,
    };
    assert_eq!(ClientInfo::decode(&ci.encode()).unwrap().name.len(), 1024);
}
