//! Certificates for TLS tests: one test CA and leaf certificates per host name, as PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;

pub struct TestCa {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    pub ca_pem: String,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Warden Test CA");
        let key = rcgen::KeyPair::generate().expect("key");
        let ca = rcgen::CertifiedIssuer::self_signed(params, key).expect("ca");
        let ca_pem = ca.pem();
        Self { ca, ca_pem }
    }

    /// Writes `{stem}.crt` and `{stem}.key` for `hosts` into `dir`; returns their paths.
    pub fn leaf(&self, dir: &Path, stem: &str, hosts: &[&str]) -> (PathBuf, PathBuf) {
        let params =
            rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
                .expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        let crt = dir.join(format!("{stem}.crt"));
        let keyp = dir.join(format!("{stem}.key"));
        std::fs::write(&crt, cert.pem()).expect("write crt");
        std::fs::write(&keyp, key.serialize_pem()).expect("write key");
        (crt, keyp)
    }

    /// A client certificate (extended key usage `clientAuth`) with subject alternative
    /// names `sans`, as reqwest takes it: key and certificate in one PEM.
    pub fn client_identity(&self, sans: &[&str]) -> (reqwest::Identity, Vec<u8>) {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|h| h.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        let pem = format!("{}{}", key.serialize_pem(), cert.pem());
        let identity = reqwest::Identity::from_pem(pem.as_bytes()).expect("identity");
        (identity, cert.der().to_vec())
    }

    /// A rustls server configuration with a fresh leaf for `hosts`, offering h2 and
    /// HTTP/1.1 by ALPN (for TLS upstreams).
    pub fn server_config(&self, hosts: &[&str]) -> Arc<ServerConfig> {
        let params =
            rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
                .expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        let key = PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .expect("server config");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    pub fn reqwest_root(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("ca pem")
    }
}

/// The DER bytes of the (first) certificate in a PEM file, to compare with what a peer showed.
pub fn der_of(pem_file: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem_file)
        .expect("PEM certificate")
        .to_vec()
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
