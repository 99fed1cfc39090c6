//! Trust roots for every TLS connection the agent makes (OAuth, REST and the
//! WebSocket): the system's roots plus the PEM certificates of `--ca-file`.
//! Verification of certificates and host names is always on.

use std::path::{Path, PathBuf};

use ureq::tls::{Certificate, PemItem, RootCerts};

/// Places where Debian, Fedora, Alpine and SUSE keep the system bundle, tried
/// in order after `SSL_CERT_FILE`.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

#[derive(Debug)]
pub enum TlsError {
    Read { path: PathBuf, reason: String },
    NoCertificates { path: PathBuf },
    BadCertificate { path: PathBuf, reason: String },
    Connector(String),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Read { path, reason } => {
                write!(f, "cannot read CA file {}: {reason}", path.display())
            }
            TlsError::NoCertificates { path } => write!(
                f,
                "CA file {} holds no PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)",
                path.display()
            ),
            TlsError::BadCertificate { path, reason } => {
                write!(
                    f,
                    "invalid certificate in CA file {}: {reason}",
                    path.display()
                )
            }
            TlsError::Connector(reason) => write!(f, "cannot set up TLS: {reason}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// The extra roots from `--ca-file`, as DER, loaded once at start-up.
#[derive(Clone, Default)]
pub struct TrustRoots {
    extra_der: Vec<Vec<u8>>,
}

impl TrustRoots {
    /// Loads the certificates of `ca_file`, or no extra roots when it is None.
    pub fn load(ca_file: Option<&Path>) -> Result<Self, TlsError> {
        let Some(path) = ca_file else {
            return Ok(Self::default());
        };
        let pem = std::fs::read(path).map_err(|err| TlsError::Read {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
        let extra_der = pem_certificates(&pem).map_err(|reason| TlsError::BadCertificate {
            path: path.to_path_buf(),
            reason,
        })?;
        if extra_der.is_empty() {
            return Err(TlsError::NoCertificates {
                path: path.to_path_buf(),
            });
        }
        for der in &extra_der {
            native_tls::Certificate::from_der(der).map_err(|err| TlsError::BadCertificate {
                path: path.to_path_buf(),
                reason: err.to_string(),
            })?;
        }
        Ok(Self { extra_der })
    }

    pub fn has_extra(&self) -> bool {
        !self.extra_der.is_empty()
    }

    /// Roots for ureq. With native-tls, ureq either uses the system roots
    /// alone or a given list alone, so with extra roots the list is the
    /// system bundle read from disk plus the extra ones.
    pub fn ureq_roots(&self) -> RootCerts {
        if self.extra_der.is_empty() {
            return RootCerts::PlatformVerifier;
        }
        let mut certs: Vec<Certificate<'static>> = system_bundle_der()
            .into_iter()
            .map(|der| Certificate::from_der(&der).to_owned())
            .collect();
        certs.extend(
            self.extra_der
                .iter()
                .map(|der| Certificate::from_der(der).to_owned()),
        );
        RootCerts::new_with_certs(&certs)
    }

    /// A connector for the WebSocket: system roots plus the extra ones.
    pub fn native_connector(&self) -> Result<native_tls::TlsConnector, TlsError> {
        let mut builder = native_tls::TlsConnector::builder();
        for der in &self.extra_der {
            let cert = native_tls::Certificate::from_der(der)
                .map_err(|err| TlsError::Connector(err.to_string()))?;
            builder.add_root_certificate(cert);
        }
        builder
            .build()
            .map_err(|err| TlsError::Connector(err.to_string()))
    }
}

fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert.der().to_vec()),
            Ok(_) => {}
            Err(err) => return Err(err.to_string()),
        }
    }
    Ok(certs)
}

fn system_bundle_der() -> Vec<Vec<u8>> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let candidates = from_env
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from));
    for path in candidates {
        if let Ok(pem) = std::fs::read(&path)
            && let Ok(certs) = pem_certificates(&pem)
            && !certs.is_empty()
        {
            return certs;
        }
    }
    log::warn!(
        "no system CA bundle found; only the roots of --ca-file are trusted for REST and OAuth"
    );
    Vec::new()
}
