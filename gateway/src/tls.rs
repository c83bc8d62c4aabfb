//! Downstream TLS: certificates chosen per SNI name by a resolver that reads an `ArcSwap`, so a
//! conf reload swaps certificates without touching the listener.

use arc_swap::ArcSwap;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use warden_plugins::conf::FieldError;

/// Certificates by host: exact names, `*.suffix` wildcards (one label), and the first
/// certificate as the default for clients that send no (or an unknown) SNI name.
#[derive(Default)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CertStore {
    /// Loads every certificate; problems are reported per conf entry.
    pub fn load(certs: &[crate::conf::types::Certificate]) -> Result<Self, Vec<FieldError>> {
        pingora::tls::install_default_crypto_provider();
        let mut store = CertStore::default();
        let mut errs = Vec::new();
        for (i, c) in certs.iter().enumerate() {
            let path = format!("tls.certificates[{i}]");
            match load_pair(c) {
                Ok(ck) => {
                    let ck = Arc::new(ck);
                    for h in &c.hosts {
                        let h = h.to_ascii_lowercase();
                        match h.strip_prefix("*.") {
                            Some(s) => store
                                .wildcard
                                .entry(s.to_string())
                                .or_insert_with(|| ck.clone()),
                            None => store.exact.entry(h).or_insert_with(|| ck.clone()),
                        };
                    }
                    store.default.get_or_insert(ck);
                }
                Err(m) => errs.push(FieldError::new(path, m)),
            }
        }
        if errs.is_empty() {
            Ok(store)
        } else {
            Err(errs)
        }
    }

    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let name = name.to_ascii_lowercase();
            if let Some(c) = self.exact.get(&name) {
                return Some(c.clone());
            }
            if let Some(c) = name.split_once('.').and_then(|(_, s)| self.wildcard.get(s)) {
                return Some(c.clone());
            }
        }
        self.default.clone()
    }
}

fn load_pair(c: &crate::conf::types::Certificate) -> Result<CertifiedKey, String> {
    let (cert, key) = (c.cert.display(), c.key.display());
    for f in [&c.cert, &c.key] {
        if let Err(e) = std::fs::metadata(f.path()) {
            return Err(format!("cannot read `{f}`: {e}"));
        }
    }
    let (chain, key_der) = match pingora::tls::load_certs_and_key_files(
        &c.cert.path().display().to_string(),
        &c.key.path().display().to_string(),
    ) {
        Ok(Some(pair)) => pair,
        Ok(None) => {
            return Err(format!(
                "no certificate in `{cert}` or no private key in `{key}`"
            ))
        }
        Err(e) => return Err(format!("cannot load `{cert}` / `{key}`: {e}")),
    };
    let provider = CryptoProvider::get_default()
        .ok_or_else(|| "no TLS crypto provider installed".to_string())?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| format!("`{key}` is not a usable private key: {e}"))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match()
        .map_err(|e| format!("`{key}` does not belong to `{cert}`: {e}"))?;
    Ok(ck)
}

/// The rustls resolver installed on the https listener; reloads swap its store.
#[derive(Debug, Default)]
pub struct CertResolver {
    store: ArcSwap<CertStore>,
}

impl CertResolver {
    pub fn set(&self, store: Arc<CertStore>) {
        self.store.store(store);
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.store.load().lookup(hello.server_name())
    }
}

pub static RESOLVER: LazyLock<Arc<CertResolver>> = LazyLock::new(Default::default);
