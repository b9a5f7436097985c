//! SASL binds with Kerberos: GSSAPI (RFC 4752) and GSS-SPNEGO (RFC 4178 as Cyrus SASL and
//! Windows use it), accepting service tickets for the DC's `ldap/` principal, and the
//! negotiated security layer (RFC 4752 §3.3, RFC 4422 §3.7): integrity or confidentiality
//! Wrap tokens (RFC 4121 §4.2.6.2) framed with a 4-byte length after the bind.
//! May import: `directory`, `model`, the `krb5` crate (the only module that names it on the
//! LDAP side). Invariant: every token is attacker input; a bad one ends the exchange with
//! invalidCredentials, never a panic; a layer's buffers are bounded by the PDU limit.

use std::time::SystemTime;

use bytes::BytesMut;
use krb5::acceptor::AcceptOptions;
use krb5::token::{ContextKey, PerMessageTokens};
use krb5::{EncType, KerberosContext, Keytab, ServiceKey};

use tokio_util::codec::{Decoder, Encoder};

use crate::directory::{DirError, Directory, Identity};
use crate::ldap::codec::LdapCodec;
use crate::model::principal::PrincipalName;

/// GSS_C_CONF_FLAG (RFC 2744 §5.1).
const GSS_C_CONF_FLAG: u32 = 16;
/// GSS_C_INTEG_FLAG.
const GSS_C_INTEG_FLAG: u32 = 32;

/// RFC 4752 §3.3 security layer bits.
const LAYER_NONE: u8 = 1;
const LAYER_INTEGRITY: u8 = 2;
const LAYER_CONFIDENTIALITY: u8 = 4;

/// The SASL mechanisms dird offers in `supportedSASLMechanisms`.
pub const MECHANISMS: &[&str] = &["GSSAPI", "GSS-SPNEGO"];

/// Whether dird implements `mechanism`.
pub fn supports(mechanism: &str) -> bool {
    MECHANISMS.iter().any(|m| m.eq_ignore_ascii_case(mechanism))
}

/// A SASL exchange in progress on one connection (GSSAPI needs three round trips).
pub struct Exchange {
    mechanism: &'static str,
    state: State,
}

enum State {
    /// GSSAPI: the context is established and the AP-REP was sent; the client answers with
    /// an empty token, then gets the layer offer.
    AwaitEmpty(Box<Accepted>),
    /// GSSAPI: the layer offer was sent; the client's Wrap token chooses.
    AwaitChoice(Box<Accepted>, u8),
}

/// An established Kerberos context and the identity it proves.
struct Accepted {
    identity: Identity,
    tokens: PerMessageTokens<ContextKey>,
    send_seq: u64,
    max_size: u32,
}

/// What one SASL bind step produced.
pub enum Step {
    /// Answer saslBindInProgress with these server credentials and keep the exchange.
    Continue(Vec<u8>, Exchange),
    /// Bind succeeded: the identity, the final server credentials (if any) and the layer to
    /// install after the success response is written (`None`: no layer).
    Done(Identity, Option<Vec<u8>>, Option<Box<Layer>>),
    /// Bind failed with this error.
    Failed(DirError),
}

/// Runs one step: `exchange` is the one in progress (for the second and later GSSAPI
/// messages), `creds` the client's credentials. `secure`: the connection is under TLS
/// (then only "no layer" is offered, RFC 4752 over LDAPS).
pub async fn step(
    dir: &Directory,
    mechanism: &str,
    creds: &[u8],
    exchange: Option<Exchange>,
    secure: bool,
    max_pdu: usize,
    now: SystemTime,
) -> Step {
    let max_size = u32::try_from(max_pdu).unwrap_or(u32::MAX).min(0x00ff_ffff);
    // RFC 4513 §5.2.1.2: a bind naming another mechanism abandons the exchange in progress.
    let exchange = exchange.filter(|e| e.mechanism.eq_ignore_ascii_case(mechanism));
    match exchange.map(|e| e.state) {
        None => first(dir, mechanism, creds, secure, max_size, now).await,
        Some(State::AwaitEmpty(acc)) => offer(*acc, secure),
        Some(State::AwaitChoice(acc, offered)) => choose(*acc, creds, offered),
    }
}

async fn first(
    dir: &Directory,
    mechanism: &str,
    creds: &[u8],
    secure: bool,
    max_size: u32,
    now: SystemTime,
) -> Step {
    let keytab = match keytab(dir).await {
        Ok(k) => k,
        Err(e) => return Step::Failed(e),
    };
    let spnego = mechanism.eq_ignore_ascii_case("GSS-SPNEGO");
    let Established {
        ctx,
        reply,
        send_seq,
    } = match establish(&keytab, spnego, creds) {
        Ok(e) => e,
        Err(e) => return rejected(&e),
    };
    let Ok(client) = PrincipalName::parse(&ctx.client_principal) else {
        return Step::Failed(DirError::InvalidCredentials(None));
    };
    let identity = match dir.kerberos_bind(&client, now).await {
        Ok(i) => i,
        Err(e) => return Step::Failed(e),
    };
    let Ok(tokens) = ctx.per_message_tokens() else {
        return Step::Failed(DirError::InvalidCredentials(None));
    };
    let acc = Accepted {
        identity,
        tokens,
        send_seq,
        max_size,
    };
    if spnego {
        // GSS-SPNEGO (Cyrus): no layer negotiation; the context's flags pick the layer.
        let seal = if secure {
            None
        } else if ctx.gss_flags & GSS_C_CONF_FLAG != 0 {
            Some(true)
        } else if ctx.gss_flags & GSS_C_INTEG_FLAG != 0 {
            Some(false)
        } else {
            None
        };
        let layer = seal.map(|seal| Box::new(Layer::new(acc.tokens, seal, acc.send_seq, max_size)));
        return Step::Done(acc.identity, reply, layer);
    }
    match reply {
        Some(ap_rep) => Step::Continue(
            ap_rep,
            Exchange {
                mechanism: "GSSAPI",
                state: State::AwaitEmpty(Box::new(acc)),
            },
        ),
        None => offer(acc, secure),
    }
}

/// A Kerberos context a client's first token established, before the directory is asked
/// who the client is (public for the `sasl_token` fuzz target).
pub struct Established {
    /// the context (client principal, flags, keys)
    pub ctx: KerberosContext,
    /// the token to answer with (AP-REP, or SPNEGO's accept-completed)
    pub reply: Option<Vec<u8>>,
    /// the acceptor's first sequence number
    pub send_seq: u64,
}

/// Accepts a client's first GSSAPI (RFC 4752: an RFC 2743 §3.1 InitialContextToken holding
/// an AP-REQ) or GSS-SPNEGO (RFC 4178 NegTokenInit) token under `keytab`. Pure: no
/// directory, no I/O besides the krb5 crate's replay cache. A SPNEGO negotiation that needs
/// more than one round trip (another mechanism first, a MIC exchange) is refused.
pub fn establish(
    keytab: &Keytab,
    spnego: bool,
    creds: &[u8],
) -> Result<Established, krb5::KerberosError> {
    // Replays are refused by the krb5 crate's process-wide replay cache (the default).
    let opts = AcceptOptions::default();
    if spnego {
        let mut acceptor = krb5::spnego::SpnegoAcceptor::with_options(keytab, opts);
        let reply = acceptor.step(creds)?;
        let send_seq = acceptor.send_seq();
        let Some(ctx) = acceptor.into_context() else {
            return Err(krb5::KerberosError::Negotiation(
                "SPNEGO negotiation needs more than one round trip".into(),
            ));
        };
        return Ok(Established {
            ctx,
            reply,
            send_seq,
        });
    }
    let (ctx, ap_rep) = KerberosContext::accept_token_with(keytab, creds, &opts)?;
    let send_seq = u64::from(ctx.acceptor_seq);
    Ok(Established {
        ctx,
        reply: (!ap_rep.is_empty()).then_some(ap_rep),
        send_seq,
    })
}

/// RFC 4752 §3.1: the server's Wrap (without confidentiality) of the offered layers and the
/// largest buffer it accepts.
fn offer(mut acc: Accepted, secure: bool) -> Step {
    let offered = if secure {
        LAYER_NONE
    } else {
        LAYER_NONE | LAYER_INTEGRITY | LAYER_CONFIDENTIALITY
    };
    let size = acc.max_size.to_be_bytes();
    let msg = [offered, size[1], size[2], size[3]];
    match acc.tokens.emit_wrap_unsealed(acc.send_seq, &msg, 0) {
        Ok(token) => {
            acc.send_seq += 1;
            Step::Continue(
                token,
                Exchange {
                    mechanism: "GSSAPI",
                    state: State::AwaitChoice(Box::new(acc), offered),
                },
            )
        }
        Err(_) => Step::Failed(DirError::InvalidCredentials(None)),
    }
}

/// RFC 4752 §3.1: the client's chosen layer, its buffer size and authzid.
fn choose(acc: Accepted, creds: &[u8], offered: u8) -> Step {
    let own = match &acc.identity {
        Identity::User(u) => format!("dn:{}", u.dn()),
        Identity::Anonymous => String::new(),
    };
    match layer_choice(acc.tokens, creds, offered, &own, acc.send_seq, acc.max_size) {
        Ok(layer) => Step::Done(acc.identity, None, layer.map(Box::new)),
        Err(BadLayerChoice) => Step::Failed(DirError::InvalidCredentials(None)),
    }
}

/// The client's answer to the layer offer (RFC 4752 §3.1): a Wrap token (sealed or not)
/// under the context's `tokens` holding the chosen layer bits, its buffer size and an
/// authzid, which must be empty or `own_authzid` (no proxy authorisation). Returns the
/// layer to install after the bind (`None`: no layer), the strongest one both chose and
/// `offered` holds. Public for the `sasl_token` fuzz target.
pub fn layer_choice(
    tokens: PerMessageTokens<ContextKey>,
    creds: &[u8],
    offered: u8,
    own_authzid: &str,
    send_seq: u64,
    max_size: u32,
) -> Result<Option<Layer>, BadLayerChoice> {
    let message = unwrap_any(&tokens, creds).map_err(|()| BadLayerChoice)?;
    let (&chosen, rest) = message.split_first().ok_or(BadLayerChoice)?;
    let authzid = rest.get(3..).ok_or(BadLayerChoice)?;
    if !authzid.is_empty() && !String::from_utf8_lossy(authzid).eq_ignore_ascii_case(own_authzid) {
        return Err(BadLayerChoice);
    }
    // Cyrus's ad_compat answers with every bit it can do (0x06): take the strongest offered.
    let chosen = chosen & offered;
    let seal = if chosen & LAYER_CONFIDENTIALITY != 0 {
        true
    } else if chosen & LAYER_INTEGRITY != 0 {
        false
    } else if chosen & LAYER_NONE != 0 {
        return Ok(None);
    } else {
        return Err(BadLayerChoice);
    };
    Ok(Some(Layer::new(tokens, seal, send_seq, max_size)))
}

/// A layer choice refused: a bad Wrap token, a short message, a foreign authzid, or no
/// offered layer chosen (the bind fails with invalidCredentials).
#[derive(Debug, PartialEq, Eq)]
pub struct BadLayerChoice;

/// The negotiated security layer of a connection: every PDU after the bind travels as a
/// 4-byte length and a Wrap token (RFC 4752 §3.3, RFC 4422 §3.7).
pub struct Layer {
    tokens: PerMessageTokens<ContextKey>,
    seal: bool,
    send_seq: u64,
    max_size: u32,
}

impl Layer {
    /// A layer over an established context's per-message tokens: `seal` for
    /// confidentiality (else integrity only), `send_seq` the acceptor's next sequence
    /// number, `max_size` the buffer size advertised to the client.
    pub fn new(
        tokens: PerMessageTokens<ContextKey>,
        seal: bool,
        send_seq: u64,
        max_size: u32,
    ) -> Layer {
        Layer {
            tokens,
            seal,
            send_seq,
            max_size,
        }
    }

    /// The largest Wrap token accepted from the client: our advertised buffer size plus
    /// room for the token header and checksum.
    pub fn max_token(&self) -> usize {
        self.max_size as usize + 128
    }

    /// Wraps outgoing bytes.
    pub fn wrap(&mut self, plain: &[u8]) -> std::io::Result<Vec<u8>> {
        let token = if self.seal {
            self.tokens.emit_wrap(self.send_seq, plain)
        } else {
            self.tokens.emit_wrap_unsealed(self.send_seq, plain, 0)
        }
        .map_err(|e| std::io::Error::other(format!("SASL wrap: {e}")))?;
        self.send_seq += 1;
        Ok(token)
    }

    /// Unwraps an incoming token; on a confidential layer the client must seal.
    pub fn unwrap(&self, token: &[u8]) -> std::io::Result<Vec<u8>> {
        if self.seal && !is_sealed(token) {
            return Err(std::io::Error::other(
                "SASL: an unsealed token on a confidential layer",
            ));
        }
        unwrap_any(&self.tokens, token).map_err(|_| std::io::Error::other("SASL: bad Wrap token"))
    }
}

/// The connection's framer: LDAP PDUs as they are, or inside the SASL layer's buffers
/// (a 4-byte big-endian length, then a Wrap token) once a layer is installed.
pub struct LayeredCodec {
    inner: LdapCodec,
    layer: Option<Layer>,
    /// unwrapped bytes not yet framed into a PDU
    plain: BytesMut,
}

impl LayeredCodec {
    /// No layer yet.
    pub fn new(inner: LdapCodec) -> LayeredCodec {
        LayeredCodec {
            inner,
            layer: None,
            plain: BytesMut::new(),
        }
    }

    /// Installs the negotiated layer: from now on every PDU is wrapped.
    pub fn install(&mut self, layer: Box<Layer>) {
        self.layer = Some(*layer);
    }
}

impl Decoder for LayeredCodec {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<BytesMut>> {
        let Some(layer) = &self.layer else {
            return self.inner.decode(buf);
        };
        loop {
            if let Some(frame) = self.inner.decode(&mut self.plain)? {
                return Ok(Some(frame));
            }
            let Some(head) = buf.get(..4) else {
                return Ok(None);
            };
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if len > layer.max_token() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("SASL buffer of {len} bytes exceeds the negotiated size"),
                ));
            }
            if buf.len() < 4 + len {
                buf.reserve(4 + len - buf.len());
                return Ok(None);
            }
            let token = buf.split_to(4 + len);
            let plain = layer.unwrap(&token[4..])?;
            if self.plain.len() + plain.len() > self.inner.max_pdu.saturating_add(layer.max_token())
            {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "SASL: unframed data exceeds the PDU limit",
                ));
            }
            self.plain.extend_from_slice(&plain);
        }
    }
}

impl<T> Encoder<T> for LayeredCodec
where
    LdapCodec: Encoder<T, Error = std::io::Error>,
{
    type Error = std::io::Error;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> std::io::Result<()> {
        let Some(layer) = &mut self.layer else {
            return self.inner.encode(item, dst);
        };
        let mut pdu = BytesMut::new();
        self.inner.encode(item, &mut pdu)?;
        let token = layer.wrap(&pdu)?;
        let len = u32::try_from(token.len()).map_err(std::io::Error::other)?;
        dst.extend_from_slice(&len.to_be_bytes());
        dst.extend_from_slice(&token);
        Ok(())
    }
}

/// RFC 4121 §4.2.2 Flags octet: bit 1 (0x02) is Sealed.
fn is_sealed(token: &[u8]) -> bool {
    token.get(2).is_some_and(|f| f & 0x02 != 0)
}

fn unwrap_any(tokens: &PerMessageTokens<ContextKey>, token: &[u8]) -> Result<Vec<u8>, ()> {
    let verified = if is_sealed(token) {
        tokens.unwrap(token)
    } else {
        tokens.verify_wrap_unsealed(token)
    };
    verified.map(|v| v.message).map_err(|_| ())
}

fn rejected(e: &krb5::KerberosError) -> Step {
    tracing::info!(error = %e, "SASL Kerberos token refused");
    Step::Failed(DirError::InvalidCredentials(None))
}

/// The acceptor's keytab: the keys of the account holding `ldap/<dc_hostname>`, under
/// every name it lists.
async fn keytab(dir: &Directory) -> Result<Keytab, DirError> {
    let d = dir.domain();
    let service = PrincipalName::new(vec!["ldap".into(), d.host.clone()], d.realm.clone());
    let Some((names, keys)) = dir.service_keys(&service).await? else {
        tracing::warn!(principal = %service.joined(), "no keys for the LDAP service principal");
        return Err(DirError::InvalidCredentials(None));
    };
    let mut out = Vec::new();
    for name in &names {
        for k in &keys {
            let Some(enctype) = EncType::from_i32(k.enctype) else {
                continue;
            };
            out.push(ServiceKey::new(
                name.clone(),
                d.realm.clone(),
                k.kvno,
                enctype,
                k.key.clone(),
            ));
        }
    }
    Ok(Keytab::from_keys(out))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use krb5::token::Role;

    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn tokens(role: Role) -> PerMessageTokens<ContextKey> {
        PerMessageTokens::new(ContextKey::new(18, &KEY).unwrap(), role, false)
    }

    fn accepted() -> Accepted {
        Accepted {
            identity: Identity::Anonymous,
            tokens: tokens(Role::Acceptor),
            send_seq: 0,
            max_size: 65536,
        }
    }

    /// RFC 4752 §3.1 with Cyrus's ad_compat answer (0x06): the offer is an unsealed Wrap the
    /// initiator verifies, the sealed answer picks confidentiality, and the installed layer
    /// frames PDUs both ways (4-byte length + Wrap).
    #[test]
    fn layer_negotiation_and_wrapped_framing() {
        let client = tokens(Role::Initiator);
        let Step::Continue(offer_token, exchange) = offer(accepted(), false) else {
            panic!("no offer")
        };
        let offered = client.verify_wrap_unsealed(&offer_token).unwrap().message;
        assert_eq!(offered, vec![7, 0x01, 0x00, 0x00]);
        let State::AwaitChoice(acc, offered) = exchange.state else {
            panic!("wrong state")
        };
        let answer = client.emit_wrap(0, &[0x06, 0x00, 0x10, 0x00]).unwrap();
        let Step::Done(_, None, Some(layer)) = choose(*acc, &answer, offered) else {
            panic!("no layer")
        };
        assert!(layer.seal);

        let mut codec = LayeredCodec::new(LdapCodec::new(4096));
        codec.install(layer);
        // Server → client: one wrapped PDU.
        let pdu = Bytes::from_static(&[0x30, 0x05, 0x02, 0x01, 0x01, 0x42, 0x00]);
        let mut out = BytesMut::new();
        codec.encode(pdu.clone(), &mut out).unwrap();
        let len = u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        assert_eq!(len + 4, out.len());
        assert_eq!(client.unwrap(&out[4..]).unwrap().message, pdu.to_vec());
        // Client → server: a PDU split across two Wrap tokens, then the next one.
        let mut wire = BytesMut::new();
        for (seq, part) in [(1u64, &pdu[..3]), (2, &pdu[3..]), (3, &pdu[..])] {
            let t = client.emit_wrap(seq, part).unwrap();
            wire.extend_from_slice(&(t.len() as u32).to_be_bytes());
            wire.extend_from_slice(&t);
        }
        assert_eq!(
            codec.decode(&mut wire).unwrap().unwrap().to_vec(),
            pdu.to_vec()
        );
        assert_eq!(
            codec.decode(&mut wire).unwrap().unwrap().to_vec(),
            pdu.to_vec()
        );
        assert!(codec.decode(&mut wire).unwrap().is_none());
        // An unsealed token on a confidential layer, and an oversized buffer, are refused.
        let plain = client.emit_wrap_unsealed(4, &pdu, 0).unwrap();
        let mut bad = BytesMut::from(&(plain.len() as u32).to_be_bytes()[..]);
        bad.extend_from_slice(&plain);
        assert!(codec.decode(&mut bad).is_err());
        let mut huge = BytesMut::from(&0x00ff_ffffu32.to_be_bytes()[..]);
        assert!(codec.decode(&mut huge).is_err());
    }

    /// A choice outside the offer (confidentiality over TLS) or a garbled token fails.
    #[test]
    fn bad_choices_fail() {
        let client = tokens(Role::Initiator);
        let answer = client.emit_wrap(0, &[0x04, 0x00, 0x10, 0x00]).unwrap();
        assert!(matches!(
            choose(accepted(), &answer, LAYER_NONE),
            Step::Failed(_)
        ));
        assert!(matches!(
            choose(accepted(), b"\x05\x04garbage", LAYER_NONE),
            Step::Failed(_)
        ));
    }
}
