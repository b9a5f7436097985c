//! MIT keytab writer (file format version 0x502, as read by MIT `kinit -k`, `kvno -k`, `klist -k`).
//!
//! Owns: keytab encoding. May import: std, `model`. Layout (all big-endian): `05 02`, then per
//! entry a signed 32-bit size followed by: u16 component count, realm and each component as
//! u16-length-prefixed octets, u32 name type, u32 timestamp, u8 kvno (low 8 bits), keyblock
//! (u16 enctype, u16 length, key), and the full u32 kvno.

use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::principal::{KeyMaterial, PrincipalName};

/// Encodes a keytab with `entries`, stamped with `timestamp`.
pub fn encode_keytab(
    entries: &[(PrincipalName, KeyMaterial)],
    timestamp: SystemTime,
) -> io::Result<Vec<u8>> {
    let stamp = timestamp
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let stamp = u32::try_from(stamp).unwrap_or(u32::MAX);
    let mut out = vec![0x05, 0x02];
    for (name, key) in entries {
        let mut entry = Vec::new();
        put_u16(&mut entry, name.components.len())?;
        put_counted(&mut entry, name.realm.as_bytes())?;
        for component in &name.components {
            put_counted(&mut entry, component.as_bytes())?;
        }
        entry.extend_from_slice(&u32::try_from(name.name_type).unwrap_or(1).to_be_bytes());
        entry.extend_from_slice(&stamp.to_be_bytes());
        entry.push((key.kvno & 0xff) as u8);
        put_u16(
            &mut entry,
            usize::try_from(key.enctype).map_err(|_| invalid("negative enctype"))?,
        )?;
        put_counted(&mut entry, &key.key)?;
        entry.extend_from_slice(&key.kvno.to_be_bytes());
        let size = i32::try_from(entry.len()).map_err(|_| invalid("keytab entry too large"))?;
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&entry);
    }
    Ok(out)
}

/// Writes a keytab file readable only by its owner (mode 0600), replacing any existing file
/// atomically (write to a temporary file beside it, then rename). The entries' timestamp is
/// `timestamp` (pass the current time; this module reads no clock).
pub fn write_keytab(
    path: &Path,
    entries: &[(PrincipalName, KeyMaterial)],
    timestamp: SystemTime,
) -> io::Result<()> {
    let bytes = encode_keytab(entries, timestamp)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| invalid("keytab path has no file name"))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

fn put_u16(out: &mut Vec<u8>, n: usize) -> io::Result<()> {
    let n = u16::try_from(n).map_err(|_| invalid("keytab field too long"))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn put_counted(out: &mut Vec<u8>, bytes: &[u8]) -> io::Result<()> {
    put_u16(out, bytes.len())?;
    out.extend_from_slice(bytes);
    Ok(())
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_one_entry() {
        let name = PrincipalName::parse("host/a@R").unwrap();
        let key = KeyMaterial {
            enctype: 17,
            kvno: 258,
            key: vec![0xab; 16],
        };
        let t = UNIX_EPOCH + std::time::Duration::from_secs(0x01020304);
        let bytes = encode_keytab(&[(name, key)], t).unwrap();
        let expected_entry: Vec<u8> = [
            &[0, 2][..],
            &[0, 1, b'R'],
            &[0, 4, b'h', b'o', b's', b't'],
            &[0, 1, b'a'],
            &[0, 0, 0, 2],
            &[1, 2, 3, 4],
            &[2],
            &[0, 17, 0, 16],
            &[0xab; 16],
            &[0, 0, 1, 2],
        ]
        .concat();
        let mut expected = vec![5, 2];
        expected.extend_from_slice(&(expected_entry.len() as i32).to_be_bytes());
        expected.extend_from_slice(&expected_entry);
        assert_eq!(bytes, expected);
    }
}
