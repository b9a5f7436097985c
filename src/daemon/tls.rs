//! TLS: the rustls server configuration, loaded from `[tls]` files or generated on first
//! start into `<data_dir>/tls/` (a private CA plus a server certificate signed by it).
//! May import: `config`. Invariant: the only module that reads key files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::TlsFiles;

/// Where the certificate came from.
#[derive(Debug)]
pub struct TlsMaterial {
    /// the server config for tokio-rustls
    pub config: Arc<ServerConfig>,
    /// certificate file in use
    pub cert: PathBuf,
    /// CA certificate clients should trust, when dird generated one
    pub generated_ca: Option<PathBuf>,
}

/// Errors loading or generating TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// a file could not be read or parsed
    #[error("tls.{key}: {path}: {message}")]
    File {
        /// config key (`cert` or `key`)
        key: &'static str,
        /// the file
        path: String,
        /// what went wrong
        message: String,
    },
    /// generation failed
    #[error("generating a TLS certificate: {0}")]
    Generate(String),
}

/// Loads the configured files, or generates (once) into `data_dir/tls`.
pub fn load_or_generate(
    files: Option<&TlsFiles>,
    data_dir: &Path,
    host: &str,
) -> Result<TlsMaterial, TlsError> {
    let (cert, key, generated_ca) = match files {
        Some(f) => (f.cert.clone(), f.key.clone(), None),
        None => {
            let dir = data_dir.join("tls");
            let (cert, key, ca) = (
                dir.join("server.pem"),
                dir.join("server.key"),
                dir.join("ca.pem"),
            );
            if !cert.exists() || !key.exists() {
                generate(&dir, host)?;
            }
            discard_ca_key(&dir)?;
            super::files::tighten(&dir, 0o700).map_err(|e| file_err("key", &dir, e.to_string()))?;
            super::files::tighten(&key, 0o600).map_err(|e| file_err("key", &key, e.to_string()))?;
            (cert, key, Some(ca))
        }
    };
    let config = server_config(&cert, &key)?;
    Ok(TlsMaterial {
        config,
        cert,
        generated_ca,
    })
}

/// Builds a rustls server config from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err("cert", cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err("cert", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_err(
            "cert",
            cert,
            "no CERTIFICATE block found; give a PEM certificate chain".into(),
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| file_err("key", key, format!("{e}; give a PEM private key")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| file_err("cert", cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| file_err("key", key, format!("does not match the certificate: {e}")))?;
    Ok(Arc::new(config))
}

fn file_err(key: &'static str, path: &Path, message: String) -> TlsError {
    TlsError::File {
        key,
        path: path.display().to_string(),
        message,
    }
}

/// Generates `ca.pem`, `server.pem` and `server.key` (mode 0600) into `dir` (mode 0700).
/// The CA's private key lives only in memory: it signs the server certificate and is dropped,
/// so a stolen data directory cannot mint certificates clients trust. Rotation is therefore a
/// new CA: delete `dir` (or the two server files) and restart, then redistribute `ca.pem`.
pub fn generate(dir: &Path, host: &str) -> Result<(), TlsError> {
    let g = |e: &dyn std::fmt::Display| TlsError::Generate(e.to_string());
    super::files::private_dir(dir).map_err(|e| g(&e))?;
    let ca_key = KeyPair::generate().map_err(|e| g(&e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| g(&e))?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "dird local CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| g(&e))?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let mut names = vec!["localhost".to_string()];
    if !host.is_empty() && host != "localhost" {
        names.push(host.to_string());
    }
    let mut params = CertificateParams::new(names).map_err(|e| g(&e))?;
    for ip in ["127.0.0.1", "::1"] {
        if let Ok(addr) = ip.parse() {
            params.subject_alt_names.push(SanType::IpAddress(addr));
        }
    }
    params.distinguished_name.push(DnType::CommonName, host);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(|e| g(&e))?;
    let cert = params.signed_by(&key, &issuer).map_err(|e| g(&e))?;

    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).map_err(|e| g(&e))?;
    write_private(&dir.join("server.key"), key.serialize_pem().as_bytes()).map_err(|e| g(&e))?;
    std::fs::write(dir.join("server.pem"), cert.pem()).map_err(|e| g(&e))?;
    drop(issuer);
    drop(ca_key);
    Ok(())
}

/// Removes a CA private key an older dird kept in `dir` (it is never needed again: the server
/// certificate is already signed), with a warning.
fn discard_ca_key(dir: &Path) -> Result<(), TlsError> {
    let ca_key = dir.join(CA_KEY_FILE);
    match std::fs::remove_file(&ca_key) {
        Ok(()) => {
            tracing::warn!(
                path = %ca_key.display(),
                "removed the generated CA's private key: dird no longer keeps it"
            );
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(file_err("key", &ca_key, e.to_string())),
    }
}

/// The CA private key file older versions kept; removed at start.
const CA_KEY_FILE: &str = "ca.key";

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}
