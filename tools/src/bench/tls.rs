//! keel-bench's TLS client: the rustls configuration, built once per run
//! from `--cacert`, `--cert`/`--key` (mutual TLS) and
//! `--insecure-skip-tls-verify` (ring provider, ALPN `h2`), and the
//! handshake over a glommio socket. Plaintext connections never pass
//! through here.
//!
//! A TLS failure must read as one: the handshake's own errors carry the
//! `rustls::Error`, which `TlsClient::explain` words with its likely
//! cause; a failure after the handshake is caught by `tls_stream.rs`.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use futures_rustls::client::TlsStream;
use futures_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use futures_rustls::rustls::crypto::{self, CryptoProvider};
use futures_rustls::rustls::pki_types::pem::{self, PemObject};
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use futures_rustls::rustls::{
    self, AlertDescription, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use futures_rustls::TlsConnector;
use glommio::net::TcpStream;

use crate::args::TlsFiles;
use crate::tls_stream::TlsIo;

/// Where the system's CA bundle is looked for when `--cacert` is not
/// given (after `SSL_CERT_FILE`): Debian/Ubuntu, Fedora/RHEL, openSUSE,
/// Alpine.
const SYSTEM_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Said when the server closes the connection during the handshake.
const NOT_TLS_HINT: &str = "the server closed the connection: does it serve TLS on this port?";

/// Why the TLS configuration could not be built.
#[derive(Debug)]
pub enum TlsConfigError {
    /// A PEM file could not be read or held no usable section.
    Pem {
        flag: &'static str,
        path: PathBuf,
        error: pem::Error,
    },
    /// `--cacert` (or the system bundle) held no certificate rustls took.
    NoCaCertificate { path: PathBuf },
    /// No `--cacert`, and no system CA bundle was found.
    NoSystemRoots,
    /// `--cert` held no certificate.
    NoClientCertificate { path: PathBuf },
    /// rustls refused the protocol versions or the client certificate and
    /// key (for instance, a key that is not the certificate's).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::Pem { flag, path, error } => {
                write!(f, "--{flag} {}: {error}", path.display())
            }
            TlsConfigError::NoCaCertificate { path } => {
                write!(f, "{}: no CA certificate in it", path.display())
            }
            TlsConfigError::NoSystemRoots => write!(
                f,
                "no --cacert given and no system CA bundle found (SSL_CERT_FILE, {})",
                SYSTEM_CA_BUNDLES.join(", ")
            ),
            TlsConfigError::NoClientCertificate { path } => {
                write!(f, "--cert {}: no certificate in it", path.display())
            }
            TlsConfigError::Rustls(error) => write!(f, "TLS configuration refused: {error}"),
        }
    }
}

/// The TLS side of every connection a run makes (cheap to clone: the
/// configuration is shared).
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    /// `--cert/--key` given: a refused handshake is not for lack of one.
    has_client_certificate: bool,
}

impl TlsClient {
    /// Reads the files `files` names and builds the configuration.
    pub fn new(files: &TlsFiles) -> Result<TlsClient, TlsConfigError> {
        let provider = Arc::new(crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsConfigError::Rustls)?;
        let builder = if files.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCertificate(provider)))
        } else {
            builder.with_root_certificates(root_store(files.ca_cert.as_deref())?)
        };
        let mut config = match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => {
                let (chain, key) = client_identity(cert, key)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(TlsConfigError::Rustls)?
            }
            // args.rs refuses one without the other.
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            has_client_certificate: files.cert.is_some(),
        })
    }

    /// The TLS handshake on `stream` with the server named `host` (an IP
    /// address is matched against the certificate's IP SANs).
    pub(crate) async fn handshake(
        &self,
        stream: TcpStream,
        host: &str,
    ) -> Result<TlsIo<TlsStream<TcpStream>>, String> {
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|_| format!("{host:?} is not a valid TLS server name"))?;
        let stream =
            self.connector.connect(server_name, stream).await.map_err(
                |error| match rustls_error(&error) {
                    Some(error) => self.explain(error),
                    None if error.kind() == io::ErrorKind::UnexpectedEof => {
                        format!("{error} ({NOT_TLS_HINT})")
                    }
                    None => error.to_string(),
                },
            )?;
        Ok(TlsIo::new(stream))
    }

    /// A rustls error, with what probably caused it where that is known.
    pub(crate) fn explain(&self, error: &rustls::Error) -> String {
        let hint = match error {
            rustls::Error::InvalidCertificate(_) => {
                " (the server's certificate did not verify against --cacert; \
                 is it the CA that signed it, and does the certificate name this host?)"
            }
            rustls::Error::AlertReceived(
                AlertDescription::BadCertificate
                | AlertDescription::CertificateRequired
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown,
            ) => {
                if self.has_client_certificate {
                    " (the server refused keel-bench's client certificate, --cert)"
                } else {
                    " (the server requires a client certificate: give --cert and --key)"
                }
            }
            _ => "",
        };
        format!("{error}{hint}")
    }
}

/// The `rustls::Error` inside an I/O error from futures-rustls, if any.
pub(crate) fn rustls_error(error: &io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

fn root_store(ca_cert: Option<&str>) -> Result<RootCertStore, TlsConfigError> {
    let path = match ca_cert {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .into_iter()
            .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
            .find(|path| path.is_file())
            .ok_or(TlsConfigError::NoSystemRoots)?,
    };
    let certificates = CertificateDer::pem_file_iter(&path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| TlsConfigError::Pem {
            flag: "cacert",
            path: path.clone(),
            error,
        })?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(TlsConfigError::NoCaCertificate { path });
    }
    Ok(roots)
}

type ClientIdentity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn client_identity(cert: &str, key: &str) -> Result<ClientIdentity, TlsConfigError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| TlsConfigError::Pem {
            flag: "cert",
            path: cert.into(),
            error,
        })?;
    if chain.is_empty() {
        return Err(TlsConfigError::NoClientCertificate { path: cert.into() });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|error| TlsConfigError::Pem {
        flag: "key",
        path: key.into(),
        error,
    })?;
    Ok((chain, key))
}

/// `--insecure-skip-tls-verify`: any server certificate is taken; the
/// handshake's signatures are still checked (they prove the server holds
/// the key of the certificate it sent).
#[derive(Debug)]
struct AcceptAnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
