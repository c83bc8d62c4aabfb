//! The conf file as written by operators: plain serde types, validated afterwards (`validate.rs`)
//! and compiled into a runtime [`crate::snapshot::Snapshot`].
//!
//! Every struct denies unknown keys; the YAML front end (`yaml.rs`) reports them all with their
//! position. Conf types never use `#[serde(flatten)]`, which would hide unknown keys.

use serde::Deserialize;
use std::collections::BTreeMap;
use warden_plugins::annotate::{AssertionConf, IdentityHeadersConf, KubernetesConf};
use warden_plugins::conf::ConfPath;
use warden_plugins::conf::{ByteSize, Duration};
use warden_plugins::jwt::JwtIssuerConf;
use warden_plugins::oidc::ProviderConf;
use warden_plugins::policy::{NamedPolicies, PolicyRef};
use warden_plugins::session::{CookieConf, MemoryStoreConf};

/// A value that may be written as one item or a list of items.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany::Many(Vec::new())
    }
}

impl<T> OneOrMany<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(t) => std::slice::from_ref(t),
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfFile {
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub tls: Tls,
    /// Peers allowed to set `X-Forwarded-*` and `X-Request-Id` (CIDRs or addresses).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub access_log: AccessLog,
    /// A route that serves requests no other route matches (ingress-nginx's default backend).
    /// Without it such requests get 404.
    #[serde(default)]
    pub default_route: Option<String>,
    #[serde(default)]
    pub identity: IdentityConf,
    #[serde(default)]
    pub sessions: SessionsConf,
    /// Named policies that routes refer to by name (`policy: engineers`).
    #[serde(default)]
    pub policies: NamedPolicies,
    #[serde(default)]
    pub audit: AuditConf,
    #[serde(default)]
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConf {
    /// The session cookie (needed by routes with `auth.login`).
    #[serde(default)]
    pub cookie: Option<CookieConf>,
    /// OpenID providers browsers sign in with (`auth.login` on routes).
    #[serde(default)]
    pub providers: Vec<ProviderConf>,
    /// Issuers of bearer tokens (`auth.bearer` on routes).
    #[serde(default)]
    pub jwt_issuers: Vec<JwtIssuerConf>,
    /// Verified bearer tokens kept (a repeated token costs a lookup, not a signature check).
    #[serde(default = "default_token_cache_size")]
    pub token_cache_size: usize,
    /// Larger `Authorization` headers are refused with 431.
    #[serde(default = "default_max_authorization")]
    pub max_authorization_size: ByteSize,
    /// Warden as an issuer: the signed `X-Warden-Jwt-Assertion` upstreams (and kube-apiserver)
    /// can verify.
    #[serde(default)]
    pub assertion: Option<AssertionConf>,
}

fn default_token_cache_size() -> usize {
    warden_plugins::jwt::DEFAULT_TOKEN_CACHE_SIZE
}
fn default_max_authorization() -> ByteSize {
    ByteSize(8 * 1024)
}

impl Default for IdentityConf {
    fn default() -> Self {
        Self {
            cookie: None,
            providers: Vec::new(),
            jwt_issuers: Vec::new(),
            token_cache_size: default_token_cache_size(),
            max_authorization_size: default_max_authorization(),
            assertion: None,
        }
    }
}

/// Where sessions live. `memory` serves one replica; several replicas share a store.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SessionStoreKind {
    #[default]
    Memory,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SessionsConf {
    #[serde(default)]
    pub store: SessionStoreKind,
    #[serde(default)]
    pub memory: MemoryStoreConf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConf {
    /// `stdout`, `stderr` or a file path; the access log is separate.
    #[serde(default = "default_audit_target")]
    pub target: String,
    /// Share of allowed requests also written to the audit log (denials always are).
    #[serde(default)]
    pub allow_sample_rate: f64,
}

fn default_audit_target() -> String {
    "stderr".into()
}

impl Default for AuditConf {
    fn default() -> Self {
        Self {
            target: default_audit_target(),
            allow_sample_rate: 0.0,
        }
    }
}

/// How callers of a route prove who they are.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteAuth {
    /// OIDC provider for browser logins (`identity.providers`).
    #[serde(default)]
    pub login: Option<String>,
    /// Accepted bearer-token issuers (`identity.jwt_issuers`).
    #[serde(default)]
    pub bearer: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// Plain-HTTP listener (HTTP/1.1 and h2c on the same port).
    #[serde(default)]
    pub http: Option<String>,
    /// TLS listener (HTTP/1.1 and HTTP/2 by ALPN).
    #[serde(default)]
    pub https: Option<String>,
    /// Accept HTTP/2 with prior knowledge (h2c) on the plain listener.
    #[serde(default = "yes")]
    pub h2c: bool,
    /// Answer every plain-HTTP request with a redirect to HTTPS.
    #[serde(default)]
    pub redirect_to_https: bool,
    /// The port HTTPS is reachable on from outside, for redirects (default: the https
    /// listener's port, omitted when 443).
    #[serde(default)]
    pub https_public_port: Option<u16>,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            http: Some("0.0.0.0:8080".into()),
            https: None,
            h2c: true,
            redirect_to_https: false,
            https_public_port: None,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// Bearer token protecting `/admin/*`. Without it, `/admin/*` is disabled (probes and
    /// `/metrics` stay available).
    #[serde(default)]
    pub token_file: Option<ConfPath>,
}

fn default_admin_listen() -> String {
    "127.0.0.1:9901".into()
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Worker threads of the proxy (default: the number of CPUs).
    #[serde(default)]
    pub threads: Option<usize>,
    /// On SIGTERM, how long requests in flight may take to finish.
    #[serde(default = "default_grace")]
    pub grace_period: Duration,
    /// Idle upstream connections kept per worker thread.
    #[serde(default = "default_pool_size")]
    pub upstream_keepalive_pool_size: usize,
    /// How often upstream DNS names are resolved again.
    #[serde(default = "default_dns_refresh")]
    pub dns_refresh: Duration,
    /// Watch the conf file and reload it when it changes.
    #[serde(default = "yes")]
    pub watch_conf: bool,
}

fn default_grace() -> Duration {
    Duration::from_secs(10)
}
fn default_pool_size() -> usize {
    128
}
fn default_dns_refresh() -> Duration {
    Duration::from_secs(30)
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            threads: None,
            grace_period: default_grace(),
            upstream_keepalive_pool_size: default_pool_size(),
            dns_refresh: default_dns_refresh(),
            watch_conf: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    /// Mutual TLS on the https listener: client certificates verified against a CA, for the
    /// `client_certificate` policy criterion. Read at start; a change needs a restart.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientAuth {
    /// PEM bundle of the CAs that issue client certificates.
    pub ca_file: ConfPath,
    /// Refuse the TLS handshake without a valid client certificate. When false, a client
    /// without one still connects and policy decides (browsers rarely have one).
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// SNI names served with this certificate: exact or `*.suffix`.
    pub hosts: Vec<String>,
    pub cert: ConfPath,
    pub key: ConfPath,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `stdout`, `stderr` or a file path.
    #[serde(default = "default_log_target")]
    pub target: String,
}

fn default_log_target() -> String {
    "stdout".into()
}

impl Default for AccessLog {
    fn default() -> Self {
        Self {
            enabled: true,
            target: default_log_target(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub name: String,
    /// Exact host names or `*.suffix` wildcards.
    pub host: OneOrMany<String>,
    /// Segment-wise prefix match (`/api` matches `/api` and `/api/x`, not `/apix`); the default
    /// is `/`, which matches every path.
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub path_exact: Option<String>,
    pub upstreams: Vec<Upstream>,
    #[serde(default)]
    pub lb: LoadBalancing,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Further backends tried when connecting fails.
    #[serde(default = "default_retries")]
    pub retries: usize,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub request_headers: HeaderOps,
    #[serde(default)]
    pub response_headers: HeaderOps,
    /// Replaces the matched `path_prefix` with this prefix upstream.
    #[serde(default)]
    pub rewrite_prefix: Option<String>,
    #[serde(default)]
    pub max_body_size: Option<ByteSize>,
    #[serde(default = "yes")]
    pub websocket: bool,
    #[serde(default)]
    pub upstream_protocol: UpstreamProtocol,
    #[serde(default)]
    pub upstream_tls: Option<UpstreamTls>,
    /// Serve without authentication or policy: the only way to leave a route open.
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub auth: Option<RouteAuth>,
    /// Who may do what (inline, or the name of an entry of `policies`). Required unless
    /// `public: true`.
    #[serde(default)]
    pub policy: Option<PolicyRef>,
    /// Evaluated beside `policy` and only logged and counted when it disagrees: for rollouts.
    #[serde(default)]
    pub policy_shadow: Option<PolicyRef>,
    /// Include the deciding rule in denial responses (it always goes to the audit log).
    #[serde(default)]
    pub deny_detail: bool,
    /// What the upstream is told about the caller (default: `X-Warden-*` headers, and the
    /// signed assertion when `identity.assertion` is set).
    #[serde(default)]
    pub identity_headers: Option<IdentityHeadersConf>,
    /// A Kubernetes API route: Warden's service-account token plus impersonation headers.
    #[serde(default)]
    pub kubernetes: Option<KubernetesConf>,
}

fn default_retries() -> usize {
    2
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(untagged)]
pub enum Upstream {
    Address(String),
    Weighted(WeightedUpstream),
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct WeightedUpstream {
    pub address: String,
    #[serde(default = "one")]
    pub weight: usize,
}

fn one() -> usize {
    1
}

impl Upstream {
    pub fn address(&self) -> &str {
        match self {
            Upstream::Address(a) => a,
            Upstream::Weighted(w) => &w.address,
        }
    }

    pub fn weight(&self) -> usize {
        match self {
            Upstream::Address(_) => 1,
            Upstream::Weighted(w) => w.weight,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancing {
    #[default]
    RoundRobin,
    ConsistentHash(HashOn),
}

/// What consistent hashing keys on: exactly one of the three.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct HashOn {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub cookie: Option<String>,
    #[serde(default)]
    pub client_address: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default = "default_hc_interval")]
    pub interval: Duration,
    #[serde(default = "default_hc_timeout")]
    pub timeout: Duration,
    /// HTTP GET of this path (any 2xx/3xx is healthy); without it, a TCP connect.
    #[serde(default)]
    pub path: Option<String>,
    /// Host header for HTTP checks (default: the route's first host).
    #[serde(default)]
    pub host: Option<String>,
    /// Consecutive successes to mark a backend healthy again.
    #[serde(default = "one")]
    pub healthy_threshold: usize,
    /// Consecutive failures to eject a backend.
    #[serde(default = "default_unhealthy")]
    pub unhealthy_threshold: usize,
}

fn default_hc_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_hc_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_unhealthy() -> usize {
    2
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default = "default_connect_timeout")]
    pub connect: Duration,
    /// Longest wait for the upstream to send (also between frames of a websocket).
    #[serde(default = "default_read_timeout")]
    pub read: Duration,
    /// How long an idle upstream connection is kept for reuse.
    #[serde(default = "default_idle_timeout")]
    pub idle: Duration,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: default_connect_timeout(),
            read: default_read_timeout(),
            idle: default_idle_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HeaderOps {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    #[default]
    H1,
    /// HTTP/2 over TLS (ALPN, falls back to HTTP/1.1).
    H2,
    /// HTTP/2 with prior knowledge over plain TCP (gRPC).
    H2c,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    #[serde(default = "yes")]
    pub verify: bool,
    /// Server name sent and verified (default: the upstream's host name).
    #[serde(default)]
    pub sni: Option<String>,
    /// Extra CA bundle (PEM) trusted for this upstream.
    #[serde(default)]
    pub ca_file: Option<ConfPath>,
}
