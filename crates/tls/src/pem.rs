//! PEM files into rustls types, and the rustls configurations built from them: the HEP TLS
//! listener's server configuration and the root store of the TLS clients.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

/// A PEM file or the configuration built from it is unusable.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or is not PEM.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS or PEM error.
        #[source]
        source: io::Error,
    },
    /// A PEM file held no certificate or key.
    #[error("{0} holds no usable PEM {1}")]
    Empty(String, &'static str),
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA set is unusable for a verifier.
    #[error("certificate verifier: {0}")]
    Verifier(String),
}

/// The crypto provider every hepstack TLS endpoint uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| read_error(path, source))
}

fn read_error(path: &Path, source: io::Error) -> TlsError {
    TlsError::Read {
        path: path.display().to_string(),
        source,
    }
}

/// Every certificate of a PEM file; an error when there is none.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::Empty(path.display().to_string(), "certificate"));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|e| read_error(path, e))?
        .ok_or_else(|| TlsError::Empty(path.display().to_string(), "private key"))
}

/// A root store of the CA certificates in a PEM file. Certificates rustls cannot parse are
/// skipped; an error when none is left.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(load_certs(path)?);
    if added == 0 {
        return Err(TlsError::Empty(
            path.display().to_string(),
            "CA certificate",
        ));
    }
    Ok(roots)
}

/// A server configuration from certificate chain and key files (TLS 1.2 and 1.3); with
/// `client_ca`, clients must present a certificate that chains to one of its CAs.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = load_certs(cert_file)?;
    let key = load_private_key(key_file)?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for ca in load_certs(ca_file)? {
                roots.add(ca)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(builder.with_single_cert(certs, key)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn loads_a_certificate_and_key_into_a_server_config() {
        let dir = tempfile::tempdir().expect("dir");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let c = write(dir.path(), "c.pem", &cert.cert.pem());
        let k = write(dir.path(), "k.pem", &cert.key_pair.serialize_pem());
        assert_eq!(load_certs(&c).expect("certs").len(), 1);
        load_private_key(&k).expect("key");
        load_roots(&c).expect("roots");
        server_config(&c, &k, None).expect("server config");
        server_config(&c, &k, Some(&c)).expect("with client CA");
    }

    #[test]
    fn missing_empty_and_mismatched_files_are_typed_errors() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("none.pem");
        assert!(matches!(load_certs(&missing), Err(TlsError::Read { .. })));
        let empty = write(dir.path(), "e.pem", "not pem\n");
        assert!(matches!(
            load_certs(&empty),
            Err(TlsError::Empty(_, "certificate"))
        ));
        assert!(matches!(
            load_private_key(&empty),
            Err(TlsError::Empty(_, "private key"))
        ));
        let a = rcgen::generate_simple_self_signed(vec!["a".into()]).expect("a");
        let b = rcgen::generate_simple_self_signed(vec!["b".into()]).expect("b");
        let c = write(dir.path(), "a.pem", &a.cert.pem());
        let k = write(dir.path(), "b.key", &b.key_pair.serialize_pem());
        assert!(matches!(
            server_config(&c, &k, None),
            Err(TlsError::Rustls(_))
        ));
    }
}
