//! One immutable, compiled view of a conf version: the router, the routes with their pools,
//! trusted proxies and certificates. Requests load the current snapshot once and keep it to
//! the end; a reload builds a new one off the hot path and swaps it in.

use crate::conf::types::{ConfFile, HeaderOps, LoadBalancing, Route};
use crate::identity::{IdentityRt, RouteIdentity};
use crate::metrics::RouteMetrics;
use crate::routing::{PathMatch, Router};
use crate::tls::CertStore;
use crate::upstream::pool::{HashKey, UpstreamTlsSettings};
use crate::upstream::{Pool, PoolSettings};
use http::{HeaderName, HeaderValue};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use warden_plugins::conf::FieldError;

/// Whether a build may reach out (resolve names, start health checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMode {
    /// `warden check`: validate and load files, start nothing.
    Check,
    /// Serving: pools resolve and run their health checks.
    Serve,
}

#[derive(Debug, Default, Clone)]
pub struct HeaderEdits {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderEdits {
    fn compile(ops: &HeaderOps) -> Self {
        Self {
            set: ops
                .set
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        HeaderName::from_bytes(k.as_bytes()).ok()?,
                        HeaderValue::from_str(v).ok()?,
                    ))
                })
                .collect(),
            remove: ops
                .remove
                .iter()
                .filter_map(|k| HeaderName::from_bytes(k.as_bytes()).ok())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// A route, compiled.
pub struct RouteRt {
    pub index: usize,
    pub name: Arc<str>,
    pub path: PathMatch,
    pub pool: Arc<Pool>,
    pub retries: usize,
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
    /// (matched prefix without trailing slash, replacement).
    pub rewrite: Option<(String, String)>,
    pub max_body_size: Option<u64>,
    pub websocket: bool,
    /// A Kubernetes API route: any upgrade protocol is forwarded (SPDY for older kubectl).
    pub kubernetes: bool,
    pub public: bool,
    pub auth: RouteIdentity,
    pub metrics: RouteMetrics,
}

pub struct Snapshot {
    pub generation: u64,
    pub conf: Arc<ConfFile>,
    pub router: Router,
    pub routes: Vec<Arc<RouteRt>>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub redirect_to_https: bool,
    /// Port for HTTPS redirects; `None` means the default 443.
    pub https_port: Option<u16>,
    pub certs: Arc<CertStore>,
    pub access_log: bool,
    pub identity: IdentityRt,
    pub audit_allow_sample_rate: f64,
}

impl Snapshot {
    /// Compiles a validated conf. `previous` lends its pools to routes whose upstream settings
    /// did not change, so health state and connections survive the reload.
    pub async fn build(
        conf: ConfFile,
        generation: u64,
        previous: Option<&Snapshot>,
        clock: &warden_plugins::SharedClock,
        mode: BuildMode,
    ) -> Result<Snapshot, Vec<FieldError>> {
        let mut errs = Vec::new();
        let (identity, ierrs) =
            IdentityRt::build(&conf, previous.map(|p| &p.identity), clock, mode).await;
        errs.extend(ierrs);
        let certs = match CertStore::load(&conf.tls.certificates) {
            Ok(c) => c,
            Err(e) => {
                errs.extend(e);
                CertStore::default()
            }
        };
        if let Some(auth) = &conf.tls.client_auth {
            // Only the listener (built at start) uses it; checked here so that `check` and a
            // reload report a bad CA bundle.
            if let Err(m) = crate::client_certs::verifier(auth) {
                errs.push(FieldError::new("tls.client_auth.ca_file", m));
            }
        }
        let old_pools: HashMap<u64, Arc<Pool>> = previous
            .map(|p| {
                p.routes
                    .iter()
                    .map(|r| (r.pool.fingerprint, r.pool.clone()))
                    .collect()
            })
            .unwrap_or_default();

        let mut router = Router::new();
        let mut routes = Vec::with_capacity(conf.routes.len());
        for (i, r) in conf.routes.iter().enumerate() {
            let settings = match pool_settings(r, &conf, i) {
                Ok(s) => s,
                Err(e) => {
                    errs.push(e);
                    continue;
                }
            };
            let pool = match old_pools.get(&settings.fingerprint()) {
                Some(p) if mode == BuildMode::Serve => p.clone(),
                _ => match Pool::start(settings, mode == BuildMode::Serve).await {
                    Ok(p) => p,
                    Err(m) => {
                        errs.push(FieldError::new(format!("routes[{i}].upstreams"), m));
                        continue;
                    }
                },
            };
            let path = match (&r.path_exact, &r.path_prefix) {
                (Some(e), _) => PathMatch::Exact(e.clone()),
                (None, Some(p)) => PathMatch::Prefix(p.clone()),
                (None, None) => PathMatch::Prefix("/".into()),
            };
            let rewrite = match (&r.rewrite_prefix, &path) {
                (Some(to), PathMatch::Prefix(from)) => Some((
                    from.trim_end_matches('/').to_string(),
                    to.trim_end_matches('/').to_string(),
                )),
                _ => None,
            };
            for h in r.host.as_slice() {
                router.insert(h, &path, routes.len());
            }
            let name: Arc<str> = r.name.as_str().into();
            let Some(auth) = identity.route(i, r, &mut errs) else {
                continue;
            };
            routes.push(Arc::new(RouteRt {
                auth,
                index: routes.len(),
                metrics: RouteMetrics::new(&name),
                name,
                path,
                pool,
                retries: r.retries,
                request_headers: HeaderEdits::compile(&r.request_headers),
                response_headers: HeaderEdits::compile(&r.response_headers),
                rewrite,
                max_body_size: r.max_body_size.map(|b| b.0),
                websocket: r.websocket,
                kubernetes: r.kubernetes.is_some(),
                public: r.public,
            }));
        }
        if let Some(d) = &conf.default_route {
            router.set_default(routes.iter().position(|r| &*r.name == d));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let https_port = conf.listen.https_public_port.or_else(|| {
            conf.listen
                .https
                .as_deref()
                .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                .map(|a| a.port())
        });
        Ok(Snapshot {
            generation,
            trusted_proxies: conf
                .trusted_proxies
                .iter()
                .filter_map(|p| crate::conf::validate::parse_net(p))
                .collect(),
            redirect_to_https: conf.listen.redirect_to_https,
            https_port: https_port.filter(|p| *p != 443),
            certs: Arc::new(certs),
            access_log: conf.access_log.enabled,
            identity,
            audit_allow_sample_rate: conf.audit.allow_sample_rate,
            router,
            routes,
            conf: Arc::new(conf),
        })
    }

    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        !self.trusted_proxies.is_empty() && self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

fn pool_settings(r: &Route, conf: &ConfFile, i: usize) -> Result<PoolSettings, FieldError> {
    let tls = match &r.upstream_tls {
        None => None,
        Some(t) => {
            let (ca, fp) = match &t.ca_file {
                None => (None, 0),
                Some(f) => {
                    let (ca, fp) = load_ca(f).map_err(|m| {
                        FieldError::new(format!("routes[{i}].upstream_tls.ca_file"), m)
                    })?;
                    (Some(ca), fp)
                }
            };
            Some(UpstreamTlsSettings {
                verify: t.verify,
                sni: t.sni.clone(),
                ca,
                ca_fingerprint: fp,
            })
        }
    };
    let hash_key = match &r.lb {
        LoadBalancing::RoundRobin => HashKey::None,
        LoadBalancing::ConsistentHash(h) => match (&h.header, &h.cookie) {
            (Some(hn), _) => {
                HashKey::Header(HeaderName::from_bytes(hn.as_bytes()).map_err(|_| {
                    FieldError::new(
                        format!("routes[{i}].lb.consistent_hash.header"),
                        "invalid header name",
                    )
                })?)
            }
            (None, Some(c)) => HashKey::Cookie(c.clone()),
            (None, None) => HashKey::ClientAddress,
        },
    };
    let health_host = r
        .health_check
        .as_ref()
        .and_then(|h| h.host.clone())
        .or_else(|| {
            r.host
                .as_slice()
                .iter()
                .find(|h| !h.starts_with('*'))
                .cloned()
        })
        .unwrap_or_else(|| "localhost".into());
    Ok(PoolSettings {
        route: r.name.as_str().into(),
        entries: r
            .upstreams
            .iter()
            .map(|u| (u.address().to_string(), u.weight()))
            .collect(),
        lb: r.lb.clone(),
        hash_key,
        health: r.health_check.clone(),
        health_host,
        tls,
        protocol: r.upstream_protocol,
        connect_timeout: r.timeouts.connect.get(),
        read_timeout: r.timeouts.read.get(),
        idle_timeout: r.timeouts.idle.get(),
        dns_refresh: conf.server.dns_refresh.get().max(Duration::from_secs(1)),
    })
}

fn load_ca(
    path: &warden_plugins::conf::ConfPath,
) -> Result<(Arc<pingora::protocols::tls::CaType>, u64), String> {
    use pingora::utils::tls::{parse_x509, WrappedX509};
    let pem = std::fs::read(path.path()).map_err(|e| format!("cannot read `{path}`: {e}"))?;
    let mut reader = std::io::BufReader::new(&pem[..]);
    let mut certs = Vec::new();
    for item in rustls_pemfile::certs(&mut reader) {
        let der =
            item.map_err(|e| format!("`{}` is not a PEM certificate bundle: {e}", path.display()))?;
        // parse_x509 panics on bad DER, so check it first.
        x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("`{}` holds an invalid certificate: {e}", path.display()))?;
        certs.push(WrappedX509::new(der.to_vec(), parse_x509));
    }
    if certs.is_empty() {
        return Err(format!("`{}` contains no certificate", path.display()));
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    pem.hash(&mut h);
    Ok((Arc::from(certs.into_boxed_slice()), h.finish()))
}
