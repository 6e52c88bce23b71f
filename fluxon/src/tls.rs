//! TLS for the server, its cloud endpoint and their clients: rustls with the `ring` provider.
//!
//! A server proves itself with a [`TlsIdentity`]: a certificate chain and key read from PEM files,
//! or, for development, a self-signed certificate made on request. A client is told what to trust
//! with [`ClientTls`]: root certificates (a CA bundle, or the self-signed certificate itself), or
//! one pinned certificate that is accepted and nothing else. Nothing is trusted by default: a
//! client without a `ClientTls` speaks clear text, and one with a `ClientTls` accepts only what it
//! names.
//!
//! ```
//! use fluxon::tls::{ClientTls, TlsIdentity};
//! # fn main() -> Result<(), fluxon::tls::TlsError> {
//! // Development: a certificate for this machine, made now, trusted explicitly by the client.
//! let (identity, certificate) = TlsIdentity::self_signed(&["localhost", "127.0.0.1"])?;
//! let client = ClientTls::pinned(&certificate);
//! # let _ = (identity, client);
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read or parsed.
    #[error("cannot read {what} from {path}: {reason}")]
    Pem {
        /// What was being read ("certificates", "private key").
        what: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The file held no certificate.
    #[error("{0} holds no certificate")]
    NoCertificate(String),
    /// rustls refused the configuration (a key that does not match the certificate, ...).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The self-signed certificate could not be made.
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(String),
    /// The address has no host part usable as a server name.
    #[error("`{0}` is not a name or address a certificate can be checked against")]
    ServerName(String),
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate, as a client is told to trust it.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate(CertificateDer<'static>);

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Certificate({} bytes)", self.0.len())
    }
}

impl Certificate {
    /// The first certificate in a PEM file.
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Certificate, TlsError> {
        let path = path.as_ref();
        let mut all = read_certificates(path)?;
        if all.is_empty() {
            return Err(TlsError::NoCertificate(path.display().to_string()));
        }
        Ok(Certificate(all.swap_remove(0)))
    }

    /// The certificate in PEM text.
    pub fn from_pem(pem: &str) -> Result<Certificate, TlsError> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .map(Certificate)
            .map_err(|e| TlsError::Pem {
                what: "a certificate",
                path: "PEM text".into(),
                reason: e.to_string(),
            })
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.0
    }
}

pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |e: rustls::pki_types::pem::Error| TlsError::Pem {
        what: "certificates",
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    CertificateDer::pem_file_iter(path)
        .map_err(error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(error)
}

/// What a server presents: its certificate chain and private key.
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsIdentity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsIdentity {
    /// The certificate chain (leaf first) and the private key, from PEM files.
    pub fn from_pem_files(
        certificates: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsIdentity, TlsError> {
        let certificates = certificates.as_ref();
        let chain = read_certificates(certificates)?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(certificates.display().to_string()));
        }
        let key = key.as_ref();
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
            what: "a private key",
            path: key.display().to_string(),
            reason: e.to_string(),
        })?;
        let identity = TlsIdentity { chain, key };
        // A key that does not match the certificate fails here, not at the first connection.
        identity.server_config()?;
        Ok(identity)
    }

    /// For development: a fresh self-signed certificate for `names` (host names or IP addresses),
    /// and that certificate for the client, which must be told to trust it
    /// ([`ClientTls::pinned`] or [`ClientTls::trusting`]).
    pub fn self_signed(names: &[&str]) -> Result<(TlsIdentity, Certificate), TlsError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
        let certificate = made.cert.der().clone();
        let key = PrivateKeyDer::try_from(made.key_pair.serialize_der())
            .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
        let identity = TlsIdentity {
            chain: vec![certificate.clone()],
            key,
        };
        Ok((identity, Certificate(certificate)))
    }

    /// The leaf certificate (what a client pins).
    pub fn certificate(&self) -> Option<Certificate> {
        self.chain.first().cloned().map(Certificate)
    }

    fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        Ok(rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?)
    }

    /// The acceptor servers wrap accepted sockets with.
    pub(crate) fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(
            self.server_config()?,
        )))
    }
}

/// What a client trusts.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls(..)")
    }
}

impl ClientTls {
    /// Trusts servers whose certificates chain to one of these roots and name the host dialled.
    pub fn with_roots(roots: RootCertStore) -> Result<ClientTls, TlsError> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// Trusts the roots in a PEM file (a CA bundle).
    pub fn with_roots_from_pem_file(path: impl AsRef<Path>) -> Result<ClientTls, TlsError> {
        let mut roots = RootCertStore::empty();
        for certificate in read_certificates(path.as_ref())? {
            roots.add(certificate)?;
        }
        Self::with_roots(roots)
    }

    /// Trusts one certificate as a root (a self-signed certificate trusts itself): the server's
    /// certificate must still name the host dialled and be within its dates.
    pub fn trusting(certificate: &Certificate) -> Result<ClientTls, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(certificate.0.clone())?;
        Self::with_roots(roots)
    }

    /// Accepts exactly this certificate and nothing else (the server must still prove it holds
    /// the certificate's key); names and dates are not checked, the pin is the check.
    pub fn pinned(certificate: &Certificate) -> ClientTls {
        let provider = provider();
        let verifier = Verifier {
            accept: Accept::Pinned(certificate.0.clone()),
            provider: Arc::clone(&provider),
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|builder| {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
                    .with_no_client_auth()
            });
        // The ring provider supports the default versions; if that ever changed, refuse every
        // server rather than accept one unchecked.
        let config = config.unwrap_or_else(|_| {
            rustls::ClientConfig::builder()
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth()
        });
        ClientTls {
            config: Arc::new(config),
        }
    }

    /// Wraps a connected socket, checking the server against `addr`'s host part.
    pub(crate) async fn connect(
        &self,
        addr: &str,
        stream: tokio::net::TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let name = server_name(addr)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
            .connect(name, stream)
            .await
    }
}

/// An accepted socket as a server speaks on it: wrapped in TLS when the server has an acceptor
/// (the TLS handshake bounded by `limit`; `None` if it fails).
pub(crate) async fn accept(
    stream: tokio::net::TcpStream,
    tls: Option<&tokio_rustls::TlsAcceptor>,
    limit: std::time::Duration,
) -> Option<crate::wire::Stream> {
    let Some(acceptor) = tls else {
        return Some(crate::wire::Stream::Plain(stream));
    };
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(crate::wire::Stream::TlsServer(Box::new(stream))),
        Ok(Err(err)) => {
            tracing::info!(%err, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

/// The host part of `host:port` (or `[v6]:port`) as a name a certificate is checked against.
fn server_name(addr: &str) -> Result<ServerName<'static>, TlsError> {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|_| TlsError::ServerName(addr.to_owned()))
}

/// A server-certificate check other than the web's rules. Whatever it accepts, the handshake's
/// signatures are verified, so the server must hold the key of the certificate it shows.
#[derive(Debug)]
pub(crate) struct Verifier {
    accept: Accept,
    provider: Arc<CryptoProvider>,
}

#[derive(Debug)]
enum Accept {
    /// One certificate, byte for byte.
    Pinned(CertificateDer<'static>),
    /// A chain to these roots whatever name it is for (libpq's `verify-ca`), or with no roots
    /// any certificate (libpq's `require`).
    ChainIgnoringName(Option<Arc<rustls::client::WebPkiServerVerifier>>),
}

impl Verifier {
    /// Accepts a certificate that chains to `chain`'s roots, for any name; with no `chain`, any
    /// certificate.
    pub(crate) fn chain_ignoring_name(
        chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
        provider: Arc<CryptoProvider>,
    ) -> Verifier {
        Verifier {
            accept: Accept::ChainIgnoringName(chain),
            provider,
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError;
        match &self.accept {
            Accept::Pinned(certificate) if end_entity.as_ref() == certificate.as_ref() => {
                Ok(ServerCertVerified::assertion())
            }
            Accept::Pinned(_) => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            Accept::ChainIgnoringName(None) => Ok(ServerCertVerified::assertion()),
            Accept::ChainIgnoringName(Some(chain)) => {
                match chain.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                ) {
                    Err(rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. },
                    )) => Ok(ServerCertVerified::assertion()),
                    other => other,
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_host_part() {
        assert!(matches!(
            server_name("127.0.0.1:8080"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("[::1]:8080"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("localhost:8080"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("bad name:1").is_err());
    }

    #[test]
    fn identities_load_from_pem_and_a_mismatched_key_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.path().join("a.pem"), a.cert.pem()).unwrap();
        std::fs::write(dir.path().join("a.key"), a.key_pair.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("b.key"), b.key_pair.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("empty.pem"), "").unwrap();
        let identity =
            TlsIdentity::from_pem_files(dir.path().join("a.pem"), dir.path().join("a.key"))
                .unwrap();
        assert_eq!(identity.certificate().unwrap().der(), a.cert.der().as_ref());
        assert!(!format!("{identity:?}").contains("key:"));
        assert!(matches!(
            TlsIdentity::from_pem_files(dir.path().join("a.pem"), dir.path().join("b.key")),
            Err(TlsError::Config(_))
        ));
        assert!(matches!(
            TlsIdentity::from_pem_files(dir.path().join("empty.pem"), dir.path().join("a.key")),
            Err(TlsError::NoCertificate(_))
        ));
        assert!(matches!(
            TlsIdentity::from_pem_files(dir.path().join("none.pem"), dir.path().join("a.key")),
            Err(TlsError::Pem { .. })
        ));
        let pinned = Certificate::from_pem_file(dir.path().join("a.pem")).unwrap();
        assert_eq!(pinned, Certificate::from_pem(&a.cert.pem()).unwrap());
    }
}
