//! Mutual TLS on the https listener: the verifier built from `tls.client_auth`, and the
//! handshake callback that reduces a verified client certificate to what policy tests (its
//! SHA-256 fingerprint and subject alternative names). The work happens once per connection,
//! so requests only clone an `Arc`.

use crate::conf::types::ClientAuth;
use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use pingora::tls::{ClientCertVerifier, RootCertStore, WebPkiClientVerifier};
use std::any::Any;
use std::sync::Arc;
use warden_plugins::policy::ClientCert;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The verifier for `auth`: chains to one of its CAs, and (unless `required`) no certificate
/// at all is accepted too.
pub fn verifier(auth: &ClientAuth) -> Result<Arc<dyn ClientCertVerifier>, String> {
    pingora::tls::install_default_crypto_provider();
    let file = &auth.ca_file;
    let pem = std::fs::read(file.path()).map_err(|e| format!("cannot read `{file}`: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("`{file}` is not a PEM bundle: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("`{file}` holds an unusable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("`{file}` holds no certificate"));
    }
    let builder = WebPkiClientVerifier::builder(Arc::new(roots));
    let builder = if auth.required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder
        .build()
        .map_err(|e| format!("cannot verify client certificates with `{file}`: {e}"))
}

/// Attaches the verified client certificate (an `Arc<ClientCert>`) to the connection's TLS
/// digest, where requests find it with [`from_session`].
pub struct CaptureClientCert;

#[async_trait]
impl TlsAccept for CaptureClientCert {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let der = tls.peer_certificate_der()?;
        Some(Arc::new(Arc::new(reduce(der)?)))
    }
}

/// The fingerprint and SANs (DNS names, email addresses, URIs) of a DER certificate.
pub fn reduce(der: &[u8]) -> Option<ClientCert> {
    let fingerprint = ring::digest::digest(&ring::digest::SHA256, der);
    let mut sha256_fingerprint = [0u8; 32];
    sha256_fingerprint.copy_from_slice(fingerprint.as_ref());
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    sans.push(s.to_string())
                }
                _ => {}
            }
        }
    }
    Some(ClientCert {
        sha256_fingerprint,
        sans,
    })
}

/// The client certificate of the request's connection, if it presented one.
pub fn from_session(session: &pingora::proxy::Session) -> Option<Arc<ClientCert>> {
    session
        .digest()?
        .ssl_digest
        .as_ref()?
        .extension
        .get::<Arc<ClientCert>>()
        .cloned()
}
