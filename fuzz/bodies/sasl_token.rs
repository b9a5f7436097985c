//! Fuzz body (shared by `fuzz_targets/sasl_token.rs` and `tests/fuzz_smoke.rs`): the
//! Kerberos SASL bind tokens of `dird::ldap::sasl` and its wrapped security layer
//! (RFC 4752 §3.3). The first input byte picks the part (modulo 6), the rest is its input:
//!
//! - 0, 1: a client's first GSSAPI / GSS-SPNEGO token, accepted under a fixed keytab for
//!   `ldap/dc1.example.com@EXAMPLE.COM` whose key no input can know: it must be refused.
//! - 2: the client's answer to the layer offer, as raw bytes (a Wrap token).
//! - 3: the same answer with the rest of the input as its plaintext, wrapped correctly by the
//!   client side of a fixed context (sealed or not, and the offered bits, from byte 1): an
//!   accepted answer installs a layer only if integrity or confidentiality was offered, and
//!   none only if "no layer" was.
//! - 4: the layered framer (4-byte length, Wrap token, LDAP PDU inside) on raw bytes.
//! - 5: the layered framer on the rest cut into pieces (sizes from byte 1), each wrapped by
//!   the client: it must frame exactly the PDUs a plain `LdapCodec` frames from the same
//!   bytes, and fail wherever that one fails.
//!
//! Every path must end in a value or an error, never a panic.

use bytes::BytesMut;
use dird::ldap::codec::LdapCodec;
use dird::ldap::sasl::{establish, layer_choice, Layer, LayeredCodec};
use krb5::token::{ContextKey, PerMessageTokens, Role};
use krb5::{EncType, Keytab, ServiceKey};
use tokio_util::codec::Decoder;

/// The fixed context key (aes256-cts-hmac-sha1-96) of parts 2 to 5.
const KEY: [u8; 32] = [0x5a; 32];
/// The largest PDU the layered framer accepts.
const MAX_PDU: usize = 4096;
const MAX_SIZE: u32 = 65_536;

fn tokens(role: Role) -> PerMessageTokens<ContextKey> {
    match ContextKey::new(18, &KEY) {
        Ok(key) => PerMessageTokens::new(key, role, false),
        Err(e) => panic!("a fixed aes256 key must be usable: {e}"),
    }
}

/// Runs the target on one input; panics on a bug.
pub fn run(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 6 {
        0 | 1 => first_token(sel % 6 == 1, rest),
        2 => {
            let _ = layer_choice(tokens(Role::Acceptor), rest, 7, "", 0, MAX_SIZE);
        }
        3 => wrapped_choice(rest),
        4 => {
            let mut codec = layered(rest.first().is_some_and(|b| b & 1 == 1));
            let mut buf = BytesMut::from(rest);
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
        }
        _ => wrapped_framing(rest),
    }
}

fn first_token(spnego: bool, token: &[u8]) {
    let key: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
    let keytab = Keytab::from_keys(vec![ServiceKey::new(
        "ldap/dc1.example.com",
        "EXAMPLE.COM",
        2,
        EncType::AES256CtsHmacSha196,
        key,
    )]);
    assert!(
        establish(&keytab, spnego, token).is_err(),
        "a token established a context without the service key"
    );
}

fn wrapped_choice(rest: &[u8]) {
    let Some((&flags, plain)) = rest.split_first() else {
        return;
    };
    let client = tokens(Role::Initiator);
    let sealed = flags & 0x80 != 0;
    let wrapped = if sealed {
        client.emit_wrap(0, plain)
    } else {
        client.emit_wrap_unsealed(0, plain, 0)
    };
    let Ok(token) = wrapped else { return };
    let offered = flags & 7;
    match layer_choice(
        tokens(Role::Acceptor),
        &token,
        offered,
        "dn:cn=x",
        1,
        MAX_SIZE,
    ) {
        Ok(Some(_)) => {
            let chosen = plain.first().copied().unwrap_or(0) & offered;
            assert!(
                chosen & 6 != 0,
                "a layer installed that was not chosen and offered"
            );
        }
        Ok(None) => {
            let chosen = plain.first().copied().unwrap_or(0) & offered;
            assert!(
                chosen & 1 != 0,
                "no layer accepted though not chosen and offered"
            );
            assert!(chosen & 6 == 0, "no layer though a stronger one was chosen");
        }
        Err(_) => {}
    }
}

fn layered(seal: bool) -> LayeredCodec {
    let mut codec = LayeredCodec::new(LdapCodec::new(MAX_PDU));
    codec.install(Box::new(Layer::new(
        tokens(Role::Acceptor),
        seal,
        0,
        MAX_SIZE,
    )));
    codec
}

fn wrapped_framing(rest: &[u8]) {
    let Some((&shape, stream)) = rest.split_first() else {
        return;
    };
    let seal = shape & 0x80 != 0;
    let piece = 1 + usize::from(shape & 0x3f);
    // What a plain framer makes of the bytes.
    let mut plain_codec = LdapCodec::new(MAX_PDU);
    let mut plain_buf = BytesMut::from(stream);
    let mut expected = Vec::new();
    let plain_failed = loop {
        match plain_codec.decode(&mut plain_buf) {
            Ok(Some(f)) => expected.push(f.to_vec()),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    // The same bytes wrapped piece by piece by the client.
    let client = tokens(Role::Initiator);
    let mut wire = BytesMut::new();
    for (seq, part) in stream.chunks(piece).enumerate() {
        let seq = seq as u64;
        let token = if seal {
            client.emit_wrap(seq, part)
        } else {
            client.emit_wrap_unsealed(seq, part, 0)
        };
        let Ok(token) = token else { return };
        let Ok(len) = u32::try_from(token.len()) else {
            return;
        };
        wire.extend_from_slice(&len.to_be_bytes());
        wire.extend_from_slice(&token);
    }
    let mut codec = layered(seal);
    let mut got = Vec::new();
    let failed = loop {
        match codec.decode(&mut wire) {
            Ok(Some(f)) => got.push(f.to_vec()),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(
        expected.starts_with(&got),
        "the layer framed PDUs the plain framer did not"
    );
    if !plain_failed {
        assert!(
            !failed,
            "the layer failed on bytes the plain framer accepts"
        );
        assert_eq!(got, expected, "the layer lost PDUs");
    }
}
