//! Certificates for TLS tests: one test CA and leaf certificates per host name, as PEM files.

use std::path::{Path, PathBuf};

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

    pub fn reqwest_root(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("ca pem")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
