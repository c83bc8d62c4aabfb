//! Upstream membership: literal addresses as they are, DNS names resolved again every
//! `server.dns_refresh` (a Kubernetes Service name keeps following its endpoints). A failed
//! lookup keeps the last good set rather than emptying the pool.

use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::Backend;
use pingora::protocols::l4::socket::SocketAddr as PSocketAddr;
use pingora::{Error, ErrorType, Result};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

/// The host name an upstream was configured with, kept on its backends for TLS SNI. Only pools
/// that need it (TLS with no `sni` set) carry it: the balancer clones a backend, extensions
/// included, on every pick, and an empty extension map costs nothing to clone.
#[derive(Debug, Clone)]
pub struct UpstreamName(pub Arc<str>);

#[derive(Debug, Clone)]
pub struct Entry {
    pub host: Arc<str>,
    pub port: u16,
    pub weight: usize,
    /// Set when `host` is a literal address.
    pub literal: Option<SocketAddr>,
}

impl Entry {
    pub fn parse(address: &str, weight: usize) -> Option<Self> {
        if let Ok(sa) = address.parse::<SocketAddr>() {
            return Some(Self {
                host: sa.ip().to_string().into(),
                port: sa.port(),
                weight,
                literal: Some(sa),
            });
        }
        let (host, port) = address.rsplit_once(':')?;
        Some(Self {
            host: host.into(),
            port: port.parse().ok()?,
            weight,
            literal: None,
        })
    }
}

pub struct Discovery {
    entries: Vec<Entry>,
    route: Arc<str>,
    /// Members seen so far: new ones start healthy in `warden_upstream_healthy`, vanished
    /// ones leave it.
    known: parking_lot::Mutex<BTreeSet<SocketAddr>>,
    /// Whether backends carry their [`UpstreamName`].
    names: bool,
}

impl Discovery {
    /// With `names`, each backend carries the [`UpstreamName`] it was found under.
    pub fn new(entries: Vec<Entry>, route: Arc<str>, names: bool) -> Self {
        Self {
            entries,
            route,
            known: Default::default(),
            names,
        }
    }
}

fn backend(addr: SocketAddr, e: &Entry, name: bool) -> Backend {
    let mut b = Backend {
        addr: PSocketAddr::Inet(addr),
        weight: e.weight,
        ext: Default::default(),
    };
    if name {
        b.ext.insert(UpstreamName(e.host.clone()));
    }
    b
}

#[async_trait]
impl ServiceDiscovery for Discovery {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let mut set = BTreeSet::new();
        let mut failed = Vec::new();
        for e in &self.entries {
            match e.literal {
                Some(sa) => {
                    set.insert(backend(sa, e, self.names));
                }
                None => match tokio::net::lookup_host((&*e.host, e.port)).await {
                    Ok(addrs) => {
                        for a in addrs {
                            set.insert(backend(a, e, self.names));
                        }
                    }
                    Err(err) => failed.push(format!("{}: {err}", e.host)),
                },
            }
        }
        if !failed.is_empty() {
            tracing::warn!(route = %self.route, errors = ?failed, "upstream DNS lookup failed");
            if set.is_empty() {
                // Keep serving the last good set: an error leaves the pool untouched.
                return Error::e_explain(ErrorType::ConnectNoRoute, "no upstream name resolved");
            }
        }
        let now: BTreeSet<SocketAddr> = set
            .iter()
            .filter_map(|b| b.addr.as_inet().copied())
            .collect();
        let mut known = self.known.lock();
        let gauge = &crate::metrics::UPSTREAM_HEALTHY;
        for a in now.difference(&known) {
            gauge
                .with_label_values(&[&*self.route, &a.to_string()])
                .set(1);
        }
        for a in known.difference(&now) {
            let _ = gauge.remove_label_values(&[&*self.route, &a.to_string()]);
        }
        *known = now;
        Ok((set, HashMap::new()))
    }
}
