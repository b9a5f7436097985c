//! The admin socket protocol: the typed requests and responses of `dird` subcommands, and
//! their framing on the control socket.
//! May import: std, serde, tokio (I/O only). Invariants: a frame is a 4-byte big-endian length
//! followed by that many bytes of JSON; a frame longer than [`MAX_FRAME`] is refused before
//! it is read (bounded memory); nothing here knows what a request does (that is `admin`).
//!
//! A conversation: the client sends one [`AdminRequest`] and the server answers with one
//! [`AdminResponse::Done`] or [`AdminResponse::Error`]. Two requests stream:
//! - `Export`: the server sends any number of `Data` frames (LDIF text), then `Done`.
//! - `ImportBegin`: the server answers `Progress` (room checked) or `Error`; the client then
//!   sends `ImportChunk` frames, each answered with `Progress` (or `Error`, which ends the
//!   import), and finally `ImportEnd`, answered with `Done`.
//!
//! The first byte of a frame is always 0 (frames are far below 16 MiB), which is how the
//! server tells this protocol from the older one-line requests (`ping`, `snapshot`).

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest frame accepted in either direction (an LDIF chunk, a keytab, a user list).
pub const MAX_FRAME: usize = 8 << 20;

/// What a `dird` subcommand asks for.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    /// Is a daemon there, and which version?
    Ping,
    /// `dird status`
    Status,
    /// `dird check-store` against the running daemon (read-only: one snapshot)
    CheckStore,
    /// `dird user add`
    UserAdd {
        /// sAMAccountName / uid / cn
        name: String,
        /// the password; `None`: generate one and return it
        password: Option<String>,
        /// givenName
        given_name: Option<String>,
        /// sn (default: the name)
        sn: Option<String>,
        /// mail
        mail: Option<String>,
        /// parent DN (default: cn=Users)
        parent: Option<String>,
    },
    /// `dird user show`
    UserShow {
        /// sAMAccountName, UPN or DN
        name: String,
    },
    /// `dird user list`
    UserList,
    /// `dird user passwd`
    UserPasswd {
        /// sAMAccountName, UPN or DN
        name: String,
        /// the new password; `None`: generate one and return it
        password: Option<String>,
    },
    /// `dird user disable`
    UserDisable {
        /// sAMAccountName, UPN or DN
        name: String,
    },
    /// `dird user enable`
    UserEnable {
        /// sAMAccountName, UPN or DN
        name: String,
    },
    /// `dird user unlock`
    UserUnlock {
        /// sAMAccountName, UPN or DN
        name: String,
    },
    /// `dird user delete`
    UserDelete {
        /// sAMAccountName, UPN or DN
        name: String,
    },
    /// `dird group add`
    GroupAdd {
        /// cn / sAMAccountName
        name: String,
        /// parent DN (default: cn=Users)
        parent: Option<String>,
    },
    /// `dird group show`
    GroupShow {
        /// name or DN
        name: String,
    },
    /// `dird group list`
    GroupList,
    /// `dird group delete`
    GroupDelete {
        /// name or DN
        name: String,
    },
    /// `dird group member add|remove`
    Member {
        /// group name or DN
        group: String,
        /// member name, UPN or DN
        member: String,
        /// true: add; false: remove
        add: bool,
    },
    /// `dird ou add`
    OuAdd {
        /// ou
        name: String,
        /// parent DN (default: the domain root)
        parent: Option<String>,
    },
    /// `dird ou delete`
    OuDelete {
        /// ou name or DN
        name: String,
        /// parent DN (default: the domain root), when `name` is not a DN
        parent: Option<String>,
    },
    /// `dird keytab` and `dird computer add`: fresh random keys, returned as a keytab.
    Keytab {
        /// the principal (`host/client.example.com`)
        principal: String,
    },
    /// `dird krbtgt rotate`
    KrbtgtRotate,
    /// `dird trust rotate REALM --password-file F`
    TrustRotate {
        /// the trusted realm
        realm: String,
        /// the new inter-realm password (read from the file by the CLI)
        password: String,
    },
    /// `dird import`: start; the counts are checked against the tier before anything is
    /// written.
    ImportBegin {
        /// content and add records in the whole file
        objects: u64,
        /// of which users
        users: u64,
    },
    /// `dird import`: the next records (whole LDIF records, UTF-8).
    ImportChunk {
        /// LDIF text
        ldif: String,
    },
    /// `dird import`: no more records.
    ImportEnd,
    /// `dird export`
    Export,
}

/// What the daemon (or the offline path) answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdminResponse {
    /// The request is done.
    Done(Reply),
    /// The request failed; nothing more follows.
    Error {
        /// what went wrong and what to do about it
        message: String,
    },
    /// Import progress so far.
    Progress {
        /// entries added
        added: u64,
        /// change records applied
        changed: u64,
    },
    /// Export output.
    Data {
        /// LDIF text
        ldif: String,
    },
}

/// The result of a finished request.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    /// what a person reads (human output)
    pub summary: String,
    /// what a script reads (`--json`)
    #[serde(default)]
    pub data: serde_json::Value,
    /// a keytab (MIT format, base64) for `keytab` and `computer add`; the CLI writes it
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keytab: Option<String>,
}

impl Reply {
    /// A reply with a summary and JSON data.
    pub fn new(summary: impl Into<String>, data: serde_json::Value) -> Reply {
        Reply {
            summary: summary.into(),
            data,
            keytab: None,
        }
    }
}

/// A frame that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// the peer closed the connection
    #[error("the connection closed")]
    Closed,
    /// I/O failure
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// a frame over [`MAX_FRAME`]
    #[error("frame of {0} bytes is over the limit of {MAX_FRAME}")]
    TooLarge(usize),
    /// not the JSON of the expected type
    #[error("malformed frame: {0}")]
    Json(#[from] serde_json::Error),
}

/// Encodes one frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge(body.len()))?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Writes one frame (blocking; the CLI side).
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame (blocking; the CLI side).
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    if let Err(e) = r.read_exact(&mut len) {
        return Err(match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Closed,
            _ => FrameError::Io(e),
        });
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}

/// Reads one frame whose 4 length bytes are `len` (the server has already read them).
pub async fn read_body<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncReadExt + Unpin),
    len: [u8; 4],
) -> Result<T, FrameError> {
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

/// Reads one frame (async; the server side).
pub async fn read_frame_async<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncReadExt + Unpin),
) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    if let Err(e) = r.read_exact(&mut len).await {
        return Err(match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Closed,
            _ => FrameError::Io(e),
        });
    }
    read_body(r, len).await
}

/// Writes one frame (async; the server side).
pub async fn write_frame_async<T: Serialize>(
    w: &mut (impl AsyncWriteExt + Unpin),
    msg: &T,
) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_frames_are_refused() {
        let mut buf = Vec::new();
        write_frame(
            &mut buf,
            &AdminRequest::UserShow {
                name: "alice".into(),
            },
        )
        .unwrap();
        assert_eq!(buf[0], 0, "the first byte tells frames from line requests");
        let back: AdminRequest = read_frame(&mut buf.as_slice()).unwrap();
        assert!(matches!(back, AdminRequest::UserShow { name } if name == "alice"));
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        let err = read_frame::<AdminRequest>(&mut &huge[..]).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(_)));
        let garbage = [0u8, 0, 0, 2, b'{', b'x'];
        assert!(read_frame::<AdminRequest>(&mut &garbage[..]).is_err());
    }
}
