//! The conf sections of annotation, as operators write them:
//!
//! ```yaml
//! identity:
//!   assertion:                       # X-Warden-Jwt-Assertion, and the issuer kube-apiserver trusts
//!     issuer: "https://auth.example.com/"
//!     signing_keys: [/etc/warden/keys/es256-2025.pem, /etc/warden/keys/es256-2024.pem]
//!     ttl: 5m
//! routes:
//!   - name: grafana
//!     identity_headers:              # or `true` (the default) / `false`
//!       groups_filter: ["grafana-*", sre]
//!       max_groups_bytes: 8KiB
//!       claims: { "tenant": X-Tenant, "realm_access.roles": X-Roles }
//!   - name: kubernetes-api
//!     kubernetes:
//!       impersonate_user: email      # or subject
//!       extra: { "acr": "acme.com/acr" }
//! ```

use super::groups::GroupFilter;
use crate::conf::{ByteSize, ConfPath, Duration, FieldError};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Headers whose values belong to the transport, the proxy or another Warden feature: a claim
/// cannot be mapped onto them.
const RESERVED_NAMES: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "host",
    "content-length",
    "content-type",
    "authorization",
    "proxy-authorization",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// A route's `identity_headers`: `true` (the default on authenticated routes), `false`, or the
/// settings below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeadersConf {
    /// Send `X-Warden-User`, `X-Warden-Email`, `X-Warden-Groups` and the claim headers.
    pub enabled: bool,
    /// Only groups matching one of these patterns are sent (`*` matches any run of
    /// characters); all groups when absent.
    pub groups_filter: Option<Vec<String>>,
    /// Largest `X-Warden-Groups` value; a caller with more is refused (`groups_too_large`),
    /// never cut short.
    pub max_groups_bytes: ByteSize,
    /// Claim path (dotted, as in policies) → header name.
    pub claims: BTreeMap<String, String>,
    /// Send `X-Warden-Jwt-Assertion` when `identity.assertion` is configured.
    pub assertion: bool,
    /// The assertion's `aud` for this route (default: `identity.assertion.audience`, else the
    /// route's first host).
    pub assertion_audience: Option<String>,
    /// Pass the client's `Authorization` header upstream on session-authenticated requests
    /// (by default it is removed: the session cookie is the browser's credential).
    pub keep_authorization: bool,
}

/// Default `max_groups_bytes`: 8 KiB, well under the 16–64 KiB header limits of common servers.
pub const DEFAULT_MAX_GROUPS_BYTES: u64 = 8 * 1024;

impl Default for IdentityHeadersConf {
    fn default() -> Self {
        Self {
            enabled: true,
            groups_filter: None,
            max_groups_bytes: ByteSize(DEFAULT_MAX_GROUPS_BYTES),
            claims: BTreeMap::new(),
            assertion: true,
            assertion_audience: None,
            keep_authorization: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityHeadersMap {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    groups_filter: Option<Vec<String>>,
    #[serde(default = "default_max_groups")]
    max_groups_bytes: ByteSize,
    #[serde(default)]
    claims: BTreeMap<String, String>,
    #[serde(default = "yes")]
    assertion: bool,
    #[serde(default)]
    assertion_audience: Option<String>,
    #[serde(default)]
    keep_authorization: bool,
}

fn yes() -> bool {
    true
}

fn default_max_groups() -> ByteSize {
    ByteSize(DEFAULT_MAX_GROUPS_BYTES)
}

impl<'de> Deserialize<'de> for IdentityHeadersConf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdentityHeadersConf;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`true`, `false` or a map of identity header settings")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(IdentityHeadersConf {
                    enabled: v,
                    ..IdentityHeadersConf::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let m =
                    IdentityHeadersMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(IdentityHeadersConf {
                    enabled: m.enabled,
                    groups_filter: m.groups_filter,
                    max_groups_bytes: m.max_groups_bytes,
                    claims: m.claims,
                    assertion: m.assertion,
                    assertion_audience: m.assertion_audience,
                    keep_authorization: m.keep_authorization,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl IdentityHeadersConf {
    /// Every mistake, addressed relative to the section.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Some(g) = &self.groups_filter {
            if let Err(e) = GroupFilter::compile(g) {
                errs.extend(e.into_iter().map(|e| e.under("groups_filter")));
            }
        }
        if self.max_groups_bytes.0 == 0 {
            errs.push(FieldError::new("max_groups_bytes", "must be larger than 0"));
        }
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (path, name) in &self.claims {
            let at = format!("claims.{path}");
            if let Err(m) = check_claim_path(path) {
                errs.push(FieldError::new(&at, m));
            }
            match check_claim_header(name) {
                Err(m) => errs.push(FieldError::new(&at, m)),
                Ok(()) => {
                    let key = name.to_ascii_lowercase().replace('_', "-");
                    if let Some(first) = seen.insert(key, path) {
                        errs.push(FieldError::new(
                            &at,
                            format!("header `{name}` is already filled from claim `{first}`"),
                        ));
                    }
                }
            }
        }
        if let Some(a) = &self.assertion_audience {
            if let Err(m) = check_audience(a) {
                errs.push(FieldError::new("assertion_audience", m));
            }
        }
        errs
    }
}

fn check_claim_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!(
            "`{path}` is not a claim path (names separated by dots, like `realm_access.roles`)"
        ));
    }
    Ok(())
}

/// A claim header: a valid name, not one of the transport's, Warden's or Kubernetes'.
fn check_claim_header(name: &str) -> Result<(), String> {
    let h = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))?;
    let norm = h.as_str().replace('_', "-");
    if RESERVED_NAMES.contains(&norm.as_str()) {
        return Err(format!(
            "`{name}` is managed by the proxy and cannot carry a claim"
        ));
    }
    if super::inbound::is_identity_header(&norm) && !norm.starts_with("x-warden-claim-") {
        return Err(format!(
            "`{name}` is reserved for Warden's own headers; use another name, or `X-Warden-Claim-…`"
        ));
    }
    Ok(())
}

pub(crate) fn check_audience(a: &str) -> Result<(), String> {
    if a.is_empty() || a.bytes().any(|b| b < 0x21 || b == 0x7f) {
        return Err(
            "an audience must be non-empty text without spaces or control characters".into(),
        );
    }
    Ok(())
}

/// Signature algorithm of assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum SigningAlgorithm {
    /// ECDSA P-256 with SHA-256: what kube-apiserver and most JWT libraries accept.
    ES256,
    /// Ed25519. kube-apiserver does **not** accept it (its JWT authenticator allows RS, ES and
    /// PS algorithms only): use it only for upstreams that verify EdDSA.
    EdDSA,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::EdDSA => "EdDSA",
        }
    }
}

/// `identity.assertion`: the signed `X-Warden-Jwt-Assertion` and the issuer behind it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionConf {
    /// The `iss` of every assertion and the `issuer` of the discovery document, byte for byte
    /// (a trailing slash matters): kube-apiserver compares them exactly.
    pub issuer: String,
    /// PKCS#8 PEM private keys (EC P-256 or Ed25519). The first signs; all are published, so
    /// assertions signed by a key being retired stay verifiable while it is still listed.
    /// Without keys Warden signs with a key generated at start (one replica only).
    #[serde(default)]
    pub signing_keys: Vec<ConfPath>,
    /// Lifetime of an assertion.
    #[serde(default = "default_assertion_ttl")]
    pub ttl: Duration,
    /// `aud` of every assertion (default: each route's first host, or its
    /// `identity_headers.assertion_audience`).
    #[serde(default)]
    pub audience: Option<String>,
    /// Default: the first key's algorithm, or ES256 for a generated key.
    #[serde(default)]
    pub algorithm: Option<SigningAlgorithm>,
}

fn default_assertion_ttl() -> Duration {
    Duration::from_secs(300)
}

/// Shortest and longest assertion lifetimes accepted.
const MIN_TTL_SECS: u64 = 30;
const MAX_TTL_SECS: u64 = 24 * 3600;

impl AssertionConf {
    /// Every mistake in the section (key files are read later, by the signer).
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Err(m) = check_issuer(&self.issuer) {
            errs.push(FieldError::new("issuer", m));
        }
        let ttl = self.ttl.get().as_secs();
        if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&ttl) || self.ttl.get().subsec_nanos() != 0 {
            errs.push(FieldError::new(
                "ttl",
                format!("must be whole seconds between {MIN_TTL_SECS}s and 24h"),
            ));
        }
        if let Some(a) = &self.audience {
            if let Err(m) = check_audience(a) {
                errs.push(FieldError::new("audience", m));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, k) in self.signing_keys.iter().enumerate() {
            if !seen.insert(k) {
                errs.push(FieldError::new(
                    format!("signing_keys[{i}]"),
                    "this key file is listed twice",
                ));
            }
        }
        errs
    }
}

/// An issuer kube-apiserver accepts: `https`, a host, no query, fragment or credentials. Plain
/// `http` is accepted for `localhost` and loopback addresses (development and tests).
fn check_issuer(issuer: &str) -> Result<(), String> {
    let u = url::Url::parse(issuer)
        .map_err(|_| format!("`{issuer}` is not a URL like `https://auth.example.com/`"))?;
    let loopback = match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if u.scheme() != "https" && !(u.scheme() == "http" && loopback) {
        return Err(format!(
            "`{issuer}` must use https (kube-apiserver and OIDC clients refuse other issuers)"
        ));
    }
    if u.host_str().is_none() || u.query().is_some() || u.fragment().is_some() {
        return Err(format!(
            "`{issuer}` must be a plain https URL: a host, an optional path, no query or fragment"
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("`{issuer}` must not carry credentials"));
    }
    Ok(())
}

/// How a Kubernetes route tells the API server who the caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KubernetesMode {
    /// Warden's service account token plus `Impersonate-*` headers (needs the impersonation
    /// ClusterRole).
    #[default]
    Impersonate,
    /// `Authorization: Bearer <assertion>`: the API server verifies Warden's assertion itself
    /// (needs the AuthenticationConfiguration in `k8s/authentication-config.yaml`).
    Assertion,
}

/// Which identity field becomes `Impersonate-User`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImpersonateUser {
    #[default]
    Email,
    Subject,
}

/// Default service account token of a pod.
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// A route's `kubernetes` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConf {
    #[serde(default)]
    pub mode: KubernetesMode,
    /// Warden's own credential towards the API server (re-read when the kubelet rotates it).
    #[serde(default = "default_token_file")]
    pub service_account_token_file: ConfPath,
    #[serde(default)]
    pub impersonate_user: ImpersonateUser,
    /// Prepended to the impersonated user name (like the `prefix` of an
    /// AuthenticationConfiguration), so RBAC can tell Warden's users apart.
    #[serde(default)]
    pub user_prefix: String,
    /// Prepended to every impersonated group.
    #[serde(default)]
    pub group_prefix: String,
    /// Only groups matching these patterns are impersonated (all when absent). Groups starting
    /// with `system:` are never impersonated without a `group_prefix`.
    #[serde(default)]
    pub groups_filter: Option<Vec<String>>,
    /// Claim path → extra key, sent as `Impersonate-Extra-<key>` (one header line per value).
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
    /// `aud` of the assertion in `assertion` mode (default: as for `X-Warden-Jwt-Assertion`).
    #[serde(default)]
    pub audience: Option<String>,
}

fn default_token_file() -> ConfPath {
    ConfPath::new(DEFAULT_TOKEN_FILE)
}

impl Default for KubernetesConf {
    fn default() -> Self {
        Self {
            mode: KubernetesMode::default(),
            service_account_token_file: default_token_file(),
            impersonate_user: ImpersonateUser::default(),
            user_prefix: String::new(),
            group_prefix: String::new(),
            groups_filter: None,
            extra: BTreeMap::new(),
            audience: None,
        }
    }
}

impl KubernetesConf {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        for (field, p) in [
            ("user_prefix", &self.user_prefix),
            ("group_prefix", &self.group_prefix),
        ] {
            if p.bytes().any(|b| b < 0x20 || b == 0x7f) {
                errs.push(FieldError::new(
                    field,
                    "must not contain control characters",
                ));
            } else if p.starts_with("system:") {
                errs.push(FieldError::new(
                    field,
                    "must not start with `system:`, which Kubernetes reserves",
                ));
            }
        }
        if let Some(g) = &self.groups_filter {
            if let Err(e) = GroupFilter::compile(g) {
                errs.extend(e.into_iter().map(|e| e.under("groups_filter")));
            }
        }
        for (path, key) in &self.extra {
            let at = format!("extra.{path}");
            if let Err(m) = check_claim_path(path) {
                errs.push(FieldError::new(&at, m));
            }
            if key.is_empty() || key.bytes().any(|b| b < 0x21 || b == 0x7f) {
                errs.push(FieldError::new(
                    &at,
                    "an extra key must be non-empty text without spaces or control characters",
                ));
            } else if key.chars().any(char::is_uppercase) {
                errs.push(FieldError::new(
                    &at,
                    format!(
                        "extra key `{key}` must be lower-case: kube-apiserver lower-cases \
                         Impersonate-Extra-* keys"
                    ),
                ));
            }
        }
        if let Some(a) = &self.audience {
            if self.mode != KubernetesMode::Assertion {
                errs.push(FieldError::new(
                    "audience",
                    "only used with `mode: assertion`",
                ));
            } else if let Err(m) = check_audience(a) {
                errs.push(FieldError::new("audience", m));
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ih(v: serde_json::Value) -> Result<IdentityHeadersConf, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn identity_headers_read_bool_or_map() {
        assert_eq!(ih(json!(true)).unwrap(), IdentityHeadersConf::default());
        assert!(!ih(json!(false)).unwrap().enabled);
        let c = ih(json!({
            "groups_filter": ["team-*"],
            "max_groups_bytes": "1KiB",
            "claims": {"tenant": "X-Tenant"},
            "assertion": false,
            "keep_authorization": true
        }))
        .unwrap();
        assert!(c.enabled && !c.assertion && c.keep_authorization);
        assert_eq!(c.max_groups_bytes, ByteSize(1024));
        assert_eq!(c.claims["tenant"], "X-Tenant");
        assert!(ih(json!({"nope": 1})).unwrap_err().contains("nope"));
        assert!(ih(json!("yes")).is_err());
    }

    #[test]
    fn identity_header_mistakes_are_all_reported() {
        let c = ih(json!({
            "groups_filter": [""],
            "max_groups_bytes": 0,
            "claims": {
                "ok": "X-Ok",
                "bad..path": "X-A",
                "b": "Bad Header",
                "c": "Host",
                "d": "X-Warden-User",
                "e": "impersonate_user",
                "f": "x_ok",
                "g": "X-Warden-Claim-Tier"
            },
            "assertion_audience": ""
        }))
        .unwrap();
        let mut paths: Vec<String> = c.validate().into_iter().map(|e| e.path).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "assertion_audience",
                "claims.b",
                "claims.bad..path",
                "claims.c",
                "claims.d",
                "claims.e",
                "claims.ok",
                "groups_filter[0]",
                "max_groups_bytes"
            ]
        );
        // `claims.ok` is reported because `f` (x_ok) maps to the same header: BTreeMap order puts
        // `f` before `ok`.
    }

    #[test]
    fn assertion_conf_defaults_and_checks() {
        let a: AssertionConf =
            serde_json::from_value(json!({"issuer": "https://auth.example.com/"})).unwrap();
        assert_eq!(a.ttl, Duration::from_secs(300));
        assert!(a.algorithm.is_none() && a.signing_keys.is_empty());
        assert!(a.validate().is_empty());
        let a: AssertionConf = serde_json::from_value(json!({
            "issuer": "https://auth.example.com/k8s", "algorithm": "EdDSA", "ttl": "1h"
        }))
        .unwrap();
        assert_eq!(a.algorithm, Some(SigningAlgorithm::EdDSA));
        assert!(a.validate().is_empty());

        for bad in [
            "http://auth.example.com",
            "auth.example.com",
            "https://auth.example.com/?x=1",
            "https://auth.example.com/#f",
            "https://user:pw@auth.example.com/",
        ] {
            let a = AssertionConf {
                issuer: bad.into(),
                ..a.clone()
            };
            assert_eq!(a.validate().len(), 1, "{bad}");
        }
        for dev in [
            "http://localhost:8080/",
            "http://127.0.0.1:9000",
            "http://[::1]:1/",
        ] {
            let a = AssertionConf {
                issuer: dev.into(),
                ..a.clone()
            };
            assert!(a.validate().is_empty(), "{dev}");
        }
        let a = AssertionConf {
            ttl: Duration::from_secs(5),
            ..a
        };
        assert_eq!(a.validate()[0].path, "ttl");
        assert!(serde_json::from_value::<AssertionConf>(
            json!({"issuer": "x", "algorithm": "HS256"})
        )
        .is_err());
    }

    #[test]
    fn kubernetes_conf_defaults_and_checks() {
        let k: KubernetesConf = serde_json::from_value(json!({})).unwrap();
        assert_eq!(k, KubernetesConf::default());
        assert_eq!(
            k.service_account_token_file.path(),
            std::path::Path::new(DEFAULT_TOKEN_FILE)
        );
        assert_eq!(k.impersonate_user, ImpersonateUser::Email);
        assert_eq!(k.mode, KubernetesMode::Impersonate);
        let k: KubernetesConf = serde_json::from_value(json!({
            "impersonate_user": "subject",
            "user_prefix": "system:x",
            "group_prefix": "warden:",
            "groups_filter": [],
            "extra": {"acr": "Acme.com/ACR", "ok": "acme.com/ok", "..": "k", "sp": "a b"},
            "audience": "k8s"
        }))
        .unwrap();
        let mut paths: Vec<String> = k.validate().into_iter().map(|e| e.path).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "audience",
                "extra...",
                "extra.acr",
                "extra.sp",
                "groups_filter",
                "user_prefix"
            ]
        );
    }
}
