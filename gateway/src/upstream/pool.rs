//! One pool per route: Pingora's `LoadBalancer` (weighted round robin or Ketama consistent
//! hashing) over [`Discovery`], with active health checks run on the background runtime.
//! Pools whose settings are unchanged survive a conf reload, health state included.

use super::discovery::{Discovery, Entry, UpstreamName};
use crate::conf::types::{HealthCheck, LoadBalancing, UpstreamProtocol};
use async_trait::async_trait;
use pingora::lb::health_check::{HealthObserve, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::{Consistent, RoundRobin};
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::prelude::HttpPeer;
use pingora::protocols::tls::CaType;
use pingora::protocols::ALPN;
use pingora::services::background::BackgroundService;
use pingora::{Error, ErrorType, Result};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What consistent hashing keys on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HashKey {
    None,
    Header(http::HeaderName),
    Cookie(String),
    ClientAddress,
}

#[derive(Clone)]
pub struct UpstreamTlsSettings {
    pub verify: bool,
    pub sni: Option<String>,
    pub ca: Option<Arc<CaType>>,
    /// Identifies the CA contents for pool reuse across reloads.
    pub ca_fingerprint: u64,
}

/// Everything a pool is built from. Two equal settings build equivalent pools, which is what
/// lets a reload keep a pool (and its health state) instead of starting over.
#[derive(Clone)]
pub struct PoolSettings {
    pub route: Arc<str>,
    pub entries: Vec<(String, usize)>,
    pub lb: LoadBalancing,
    pub hash_key: HashKey,
    pub health: Option<HealthCheck>,
    pub health_host: String,
    pub tls: Option<UpstreamTlsSettings>,
    pub protocol: UpstreamProtocol,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
    pub dns_refresh: Duration,
}

impl PoolSettings {
    pub fn fingerprint(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.route.hash(&mut h);
        self.entries.hash(&mut h);
        self.lb.hash(&mut h);
        self.hash_key.hash(&mut h);
        self.health.hash(&mut h);
        self.health_host.hash(&mut h);
        if let Some(t) = &self.tls {
            (t.verify, &t.sni, t.ca_fingerprint).hash(&mut h);
        }
        self.protocol.hash(&mut h);
        (
            self.connect_timeout,
            self.read_timeout,
            self.idle_timeout,
            self.dns_refresh,
        )
            .hash(&mut h);
        h.finish()
    }
}

/// The backends one request has tried, in order. Nearly every request tries one, so the first
/// is kept inline and only retries allocate.
#[derive(Debug, Default)]
pub struct Tried {
    first: Option<SocketAddr>,
    more: Vec<SocketAddr>,
}

impl Tried {
    pub fn push(&mut self, a: SocketAddr) {
        if self.first.is_none() {
            self.first = Some(a);
        } else {
            self.more.push(a);
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub fn contains(&self, a: &SocketAddr) -> bool {
        self.first.as_ref() == Some(a) || self.more.contains(a)
    }
}

enum Balancer {
    RoundRobin(Arc<LoadBalancer<RoundRobin>>),
    Hash(Arc<LoadBalancer<Consistent>>),
}

pub struct Pool {
    pub fingerprint: u64,
    pub settings: PoolSettings,
    balancer: Balancer,
    stop: watch::Sender<bool>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Its `warden_upstream_healthy` series are left alone: the pool that replaced this one
        // may own them now. A reload removes the series no route uses any more.
        let _ = self.stop.send(true);
    }
}

/// Records a health check's verdict in `warden_upstream_healthy` and logs the transition.
pub fn mark_health(route: &str, b: &Backend, healthy: bool) {
    let addr = b.addr.to_string();
    if healthy {
        tracing::info!(route, backend = %addr, "backend healthy again");
    } else {
        tracing::warn!(route, backend = %addr, "backend failed its health check: ejected");
    }
    crate::metrics::UPSTREAM_HEALTHY
        .with_label_values(&[route, &addr])
        .set(healthy as i64);
}

struct HealthGauge {
    route: Arc<str>,
}

#[async_trait]
impl HealthObserve for HealthGauge {
    async fn observe(&self, target: &Backend, healthy: bool) {
        mark_health(&self.route, target, healthy);
    }
}

fn health_check(
    s: &PoolSettings,
    hc: &HealthCheck,
) -> Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync> {
    let observer = Box::new(HealthGauge {
        route: s.route.clone(),
    });
    match &hc.path {
        None => {
            let mut t = match &s.tls {
                Some(tls) => TcpHealthCheck::new_tls(tls.sni.as_deref().unwrap_or(&s.health_host)),
                None => TcpHealthCheck::new(),
            };
            t.consecutive_success = hc.healthy_threshold;
            t.consecutive_failure = hc.unhealthy_threshold;
            t.peer_template.options.connection_timeout = Some(hc.timeout.get());
            t.health_changed_callback = Some(observer);
            t
        }
        Some(path) => {
            let mut t = HttpHealthCheck::new(&s.health_host, s.tls.is_some());
            t.consecutive_success = hc.healthy_threshold;
            t.consecutive_failure = hc.unhealthy_threshold;
            t.peer_template.options.connection_timeout = Some(hc.timeout.get());
            t.peer_template.options.read_timeout = Some(hc.timeout.get());
            if let Some(tls) = &s.tls {
                t.peer_template.options.verify_cert = tls.verify;
                t.peer_template.options.verify_hostname = tls.verify;
                t.peer_template.options.ca = tls.ca.clone();
                if let Some(sni) = &tls.sni {
                    t.peer_template.sni = sni.clone();
                }
            }
            if let Ok(uri) = http::Uri::try_from(path.as_str()) {
                t.req.set_uri(uri);
            }
            t.validator = Some(Box::new(|resp| {
                if resp.status.is_success() || resp.status.is_redirection() {
                    Ok(())
                } else {
                    Error::e_explain(
                        ErrorType::CustomCode("unhealthy status", resp.status.as_u16()),
                        "during http health check",
                    )
                }
            }));
            t.health_changed_callback = Some(observer);
            Box::new(t)
        }
    }
}

fn build_lb<S>(s: &PoolSettings, entries: Vec<Entry>) -> LoadBalancer<S>
where
    S: pingora::lb::selection::BackendSelection + 'static,
    S::Iter: pingora::lb::selection::BackendIter,
{
    let any_dns = entries.iter().any(|e| e.literal.is_none());
    // The upstream's name is SNI only when TLS has no `sni` of its own.
    let names = s.tls.as_ref().is_some_and(|t| t.sni.is_none());
    let discovery = Discovery::new(entries, s.route.clone(), names);
    let mut backends = Backends::new(Box::new(discovery));
    if let Some(hc) = &s.health {
        backends.set_health_check(health_check(s, hc));
    }
    let mut lb = LoadBalancer::from_backends(backends);
    lb.update_frequency = any_dns.then_some(s.dns_refresh);
    lb.health_check_frequency = s.health.as_ref().map(|h| h.interval.get());
    lb.parallel_health_check = true;
    lb
}

fn run_in_background<S>(lb: &Arc<LoadBalancer<S>>, stop: watch::Receiver<bool>)
where
    S: pingora::lb::selection::BackendSelection + Send + Sync + 'static,
    S::Iter: pingora::lb::selection::BackendIter,
{
    let lb = lb.clone();
    crate::background::spawn(async move { lb.start(stop).await });
}

impl Pool {
    /// Builds the pool and resolves its members once. With `run`, health checks and DNS
    /// refreshes continue in the background until the pool is dropped.
    pub async fn start(
        settings: PoolSettings,
        run: bool,
    ) -> std::result::Result<Arc<Self>, String> {
        let entries: Vec<Entry> = settings
            .entries
            .iter()
            .map(|(a, w)| {
                Entry::parse(a, *w).ok_or_else(|| format!("`{a}` is not an upstream address"))
            })
            .collect::<std::result::Result<_, _>>()?;
        let (stop, stop_rx) = watch::channel(false);
        let balancer = match settings.lb {
            LoadBalancing::RoundRobin => {
                let lb = Arc::new(build_lb::<RoundRobin>(&settings, entries));
                if run {
                    initial_update(&settings, lb.update()).await;
                    run_in_background(&lb, stop_rx);
                }
                Balancer::RoundRobin(lb)
            }
            LoadBalancing::ConsistentHash(_) => {
                let lb = Arc::new(build_lb::<Consistent>(&settings, entries));
                if run {
                    initial_update(&settings, lb.update()).await;
                    run_in_background(&lb, stop_rx);
                }
                Balancer::Hash(lb)
            }
        };
        Ok(Arc::new(Self {
            fingerprint: settings.fingerprint(),
            settings,
            balancer,
            stop,
        }))
    }

    pub fn backends(&self) -> Vec<Backend> {
        let set = match &self.balancer {
            Balancer::RoundRobin(lb) => lb.backends().get_backend(),
            Balancer::Hash(lb) => lb.backends().get_backend(),
        };
        set.iter().cloned().collect()
    }

    /// Picks a healthy backend not tried yet for this request. `key` only matters for
    /// consistent hashing.
    pub fn select(&self, key: &[u8], tried: &Tried) -> Option<Backend> {
        let accept = |b: &Backend, healthy: bool| {
            healthy && b.addr.as_inet().is_none_or(|a| !tried.contains(a))
        };
        match &self.balancer {
            Balancer::RoundRobin(lb) => lb.select_with(key, 256, accept),
            Balancer::Hash(lb) => lb.select_with(key, 256, accept),
        }
    }

    /// Writes every member's current health to `warden_upstream_healthy`.
    pub fn publish_health(&self) {
        for b in self.backends() {
            let healthy = match &self.balancer {
                Balancer::RoundRobin(lb) => lb.backends().ready(&b),
                Balancer::Hash(lb) => lb.backends().ready(&b),
            };
            crate::metrics::UPSTREAM_HEALTHY
                .with_label_values(&[&*self.settings.route, &b.addr.to_string()])
                .set(healthy as i64);
        }
    }

    /// How many members the pool has (healthy or not).
    pub fn size(&self) -> usize {
        match &self.balancer {
            Balancer::RoundRobin(lb) => lb.backends().get_backend().len(),
            Balancer::Hash(lb) => lb.backends().get_backend().len(),
        }
    }

    /// The connection settings for one attempt at `b`. Upgrades (websockets) always use
    /// HTTP/1.1, and have no read timeout: an idle websocket is not a stuck upstream.
    pub fn peer(&self, b: &Backend, upgrade: bool) -> Box<HttpPeer> {
        let s = &self.settings;
        let addr = b
            .addr
            .as_inet()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let sni = match &s.tls {
            Some(t) => t
                .sni
                .clone()
                .or_else(|| b.ext.get::<UpstreamName>().map(|n| n.0.to_string()))
                .unwrap_or_default(),
            None => String::new(),
        };
        let mut peer = HttpPeer::new(addr, s.tls.is_some(), sni);
        let o = &mut peer.options;
        o.connection_timeout = Some(s.connect_timeout);
        o.idle_timeout = Some(s.idle_timeout);
        o.write_timeout = Some(s.read_timeout);
        if upgrade {
            o.read_timeout = None;
            o.alpn = ALPN::H1;
        } else {
            o.read_timeout = Some(s.read_timeout);
            match s.protocol {
                UpstreamProtocol::H1 => {}
                UpstreamProtocol::H2 => {
                    o.set_http_version(2, 1);
                    o.max_h2_streams = 100;
                }
                UpstreamProtocol::H2c => {
                    o.set_http_version(2, 2);
                    o.max_h2_streams = 100;
                }
            }
        }
        if let Some(t) = &s.tls {
            o.verify_cert = t.verify;
            o.verify_hostname = t.verify;
            o.ca = t.ca.clone();
            // Pingora's connection reuse key leaves the CA out: without this, a connection
            // verified against one route's CA would be reused by a route trusting another.
            peer.group_key = t.ca_fingerprint;
        }
        Box::new(peer)
    }
}

async fn initial_update(s: &PoolSettings, update: impl std::future::Future<Output = Result<()>>) {
    // A pool whose names do not resolve yet still starts (empty): requests get 503 until the
    // background refresh finds members, instead of the whole conf being refused.
    match tokio::time::timeout(Duration::from_secs(5), update).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(route = %s.route, error = %e, "upstream discovery failed"),
        Err(_) => tracing::warn!(route = %s.route, "upstream discovery timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tried_keeps_every_backend_in_order_of_trying() {
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let c: SocketAddr = "10.0.0.3:80".parse().unwrap();
        let mut t = Tried::default();
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        assert!(!t.contains(&a));
        t.push(a);
        assert!(!t.is_empty());
        assert_eq!(t.len(), 1);
        assert!(t.contains(&a) && !t.contains(&b));
        t.push(b);
        t.push(c);
        assert_eq!(t.len(), 3);
        assert!(t.contains(&a) && t.contains(&b) && t.contains(&c));
        assert!(!t.contains(&"10.0.0.4:80".parse().unwrap()));
    }

    fn settings(entries: &[(&str, usize)], lb: LoadBalancing) -> PoolSettings {
        PoolSettings {
            route: "r".into(),
            entries: entries.iter().map(|(a, w)| (a.to_string(), *w)).collect(),
            lb,
            hash_key: HashKey::None,
            health: None,
            health_host: "h".into(),
            tls: None,
            protocol: UpstreamProtocol::H1,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            dns_refresh: Duration::from_secs(60),
        }
    }

    // The vendored balancer keeps the first pick's key inline and hands out keys computed when
    // the selection was built. Skipping what it already tried, a request still reaches every
    // member before the pick runs out: none is lost to the inline key or to a readiness lookup
    // under a wrong key. (`select` itself refuses tried backends, so "offered twice" guards
    // the test's own bookkeeping, not the balancer's.)
    #[test]
    fn selection_offers_every_member_once_then_none() {
        let members = [("10.0.0.1:80", 1), ("10.0.0.2:80", 3), ("10.0.0.3:80", 1)];
        for lb in [
            LoadBalancing::RoundRobin,
            LoadBalancing::ConsistentHash(crate::conf::types::HashOn {
                header: None,
                cookie: None,
                client_address: true,
            }),
        ] {
            let pool =
                crate::background::block_on(Pool::start(settings(&members, lb), true)).unwrap();
            for key in [&b""[..], b"a", b"some key"] {
                let mut tried = Tried::default();
                while let Some(b) = pool.select(key, &tried) {
                    let a = *b.addr.as_inet().unwrap();
                    assert!(!tried.contains(&a), "{a} offered twice");
                    tried.push(a);
                }
                assert_eq!(tried.len(), members.len());
            }
            // Round robin moves on from one request to the next.
            let first = |p: &Pool| p.select(b"", &Tried::default()).unwrap().addr;
            if matches!(pool.settings.lb, LoadBalancing::RoundRobin) {
                let picks: std::collections::HashSet<_> =
                    (0..12).map(|_| first(&pool).to_string()).collect();
                assert_eq!(picks.len(), members.len());
            }
        }
    }
}
