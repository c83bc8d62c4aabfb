//! The `identity.jwt_issuers` conf section and its validation (what `warden check` runs,
//! without network).

use super::algorithm::{Algorithm, AlgorithmSet};
use super::verify::ValidationRules;
use crate::conf::{Duration, FieldError};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;

pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(30);
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(600);
/// Refresh intervals (configured or from `Cache-Control: max-age`) are kept in this range.
pub const MIN_REFRESH: Duration = Duration::from_secs(30);
pub const MAX_REFRESH: Duration = Duration::from_secs(24 * 3600);
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(600);

pub const KUBERNETES_API_SERVER: &str = "https://kubernetes.default.svc";
pub const KUBERNETES_CA_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
pub const KUBERNETES_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// Where the API server serves its service-account issuer keys.
pub const KUBERNETES_JWKS_PATH: &str = "/openid/v1/jwks";

/// What issues the tokens, which decides defaults and how identities are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssuerKind {
    /// Any OIDC-style issuer.
    #[default]
    Generic,
    /// A Kubernetes cluster's service-account token issuer.
    Kubernetes,
}

/// Where the identity fields are read from in the claims (dotted paths).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimPaths {
    pub subject: String,
    pub email: String,
    pub name: String,
    pub groups: String,
}

impl Default for ClaimPaths {
    fn default() -> Self {
        Self {
            subject: "sub".into(),
            email: "email".into(),
            name: "name".into(),
            groups: "groups".into(),
        }
    }
}

fn default_algorithms() -> Vec<Algorithm> {
    Algorithm::DEFAULT.to_vec()
}

fn default_clock_skew() -> Duration {
    DEFAULT_CLOCK_SKEW
}

fn default_refresh_interval() -> Duration {
    DEFAULT_REFRESH_INTERVAL
}

fn default_required_claims() -> Vec<String> {
    vec!["sub".into()]
}

/// One entry of `identity.jwt_issuers`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuerConf {
    /// The name routes use (`auth: { bearer: [NAME] }`), metrics and logs show.
    pub name: String,
    #[serde(default)]
    pub kind: IssuerKind,
    /// The exact `iss` of accepted tokens.
    pub issuer: String,
    /// Find the keys through `{issuer}/.well-known/openid-configuration` (the default when no
    /// other key source is given).
    #[serde(default)]
    pub discovery: Option<bool>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A static JWKS file, read at start and on reload.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Accepted `aud` values; required and non-empty (fail closed).
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Algorithm>,
    #[serde(default = "default_clock_skew")]
    pub clock_skew: Duration,
    /// Claims (dotted paths) that must be present; `exp` always is.
    #[serde(default = "default_required_claims")]
    pub required_claims: Vec<String>,
    #[serde(default)]
    pub claims: ClaimPaths,
    /// How often keys are refetched when the JWKS response has no `Cache-Control: max-age`.
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: Duration,
    /// A PEM bundle trusted for fetching discovery and JWKS (kind `kubernetes`: the only trust).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Kind `kubernetes`: the API server serving the keys.
    #[serde(default)]
    pub api_server: Option<String>,
    /// A bearer token sent when fetching discovery and JWKS, re-read on every fetch.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// Where an issuer's keys come from, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySourceKind {
    /// `{0}` is the discovery document URL.
    Discovery(String),
    Url(String),
    File(PathBuf),
}

/// Everything that decides how an issuer's keys are fetched: two confs with equal sources can
/// share one JWKS cache across a conf reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySource {
    pub issuer_name: String,
    /// The `iss` a discovery document must name.
    pub expected_issuer: String,
    pub kind: KeySourceKind,
    pub ca_file: Option<PathBuf>,
    /// Only the CA file is trusted (kind `kubernetes`), not the built-in roots.
    pub ca_only: bool,
    pub token_file: Option<PathBuf>,
    pub refresh_interval: std::time::Duration,
}

impl JwtIssuerConf {
    fn api_server(&self) -> &str {
        self.api_server
            .as_deref()
            .unwrap_or(KUBERNETES_API_SERVER)
            .trim_end_matches('/')
    }

    /// The key source with the defaults of the issuer's kind applied.
    pub fn key_source(&self) -> KeySource {
        let kube = self.kind == IssuerKind::Kubernetes;
        let kind = if let Some(url) = &self.jwks_url {
            KeySourceKind::Url(url.clone())
        } else if let Some(file) = &self.jwks_file {
            KeySourceKind::File(file.clone())
        } else if kube && self.discovery != Some(true) {
            KeySourceKind::Url(format!("{}{KUBERNETES_JWKS_PATH}", self.api_server()))
        } else {
            let base = if kube {
                self.api_server()
            } else {
                self.issuer.trim_end_matches('/')
            };
            KeySourceKind::Discovery(format!("{base}/.well-known/openid-configuration"))
        };
        let default_path = |explicit: &Option<PathBuf>, default: &str| {
            explicit
                .clone()
                .or_else(|| kube.then(|| PathBuf::from(default)))
        };
        KeySource {
            issuer_name: self.name.clone(),
            expected_issuer: self.issuer.clone(),
            kind,
            ca_file: default_path(&self.ca_file, KUBERNETES_CA_FILE),
            ca_only: kube,
            token_file: default_path(&self.token_file, KUBERNETES_TOKEN_FILE),
            refresh_interval: self
                .refresh_interval
                .get()
                .clamp(MIN_REFRESH.get(), MAX_REFRESH.get()),
        }
    }

    /// The claim rules of this issuer.
    pub fn rules(&self) -> ValidationRules {
        let mut required = self.required_claims.clone();
        if !required.contains(&self.claims.subject) {
            required.push(self.claims.subject.clone());
        }
        ValidationRules {
            issuer: self.issuer.clone(),
            audiences: self.audiences.clone(),
            algorithms: self.algorithms.iter().copied().collect::<AlgorithmSet>(),
            clock_skew_secs: i64::try_from(self.clock_skew.as_secs()).unwrap_or(i64::MAX),
            required_claims: required,
        }
    }
}

/// Whether `url` may be fetched: https, or http to a loopback address (tests, sidecars).
pub(crate) fn check_fetch_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("`{url}` has no host")),
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "`{url}` must use https (plain http is only accepted for loopback addresses)"
        )),
    }
}

fn validate_one(c: &JwtIssuerConf, out: &mut Vec<FieldError>) {
    let mut err = |field: &str, msg: String| out.push(FieldError::new(field, msg));
    if c.name.trim().is_empty() {
        err("name", "an issuer needs a non-empty name".into());
    } else if c.name == "unknown" {
        err(
            "name",
            "`unknown` is reserved (it labels tokens of no configured issuer in metrics)".into(),
        );
    }
    if c.issuer.trim().is_empty() {
        err(
            "issuer",
            "the exact `iss` of accepted tokens is required".into(),
        );
    }
    let explicit_sources = [
        c.discovery == Some(true),
        c.jwks_url.is_some(),
        c.jwks_file.is_some(),
    ]
    .into_iter()
    .filter(|x| *x)
    .count();
    if explicit_sources > 1 {
        err(
            "discovery",
            "give exactly one key source: `discovery: true`, `jwks_url` or `jwks_file`".into(),
        );
    } else if explicit_sources == 0 && c.discovery == Some(false) {
        err(
            "discovery",
            "with `discovery: false` give `jwks_url` or `jwks_file`".into(),
        );
    }
    if let Some(url) = &c.jwks_url {
        if let Err(m) = check_fetch_url(url) {
            err("jwks_url", m);
        }
    }
    match (c.kind, &c.api_server) {
        (IssuerKind::Kubernetes, Some(api)) => {
            if let Err(m) = check_fetch_url(api) {
                err("api_server", m);
            }
        }
        (IssuerKind::Generic, Some(_)) => err(
            "api_server",
            "`api_server` applies to `kind: kubernetes` issuers only".into(),
        ),
        _ => {}
    }
    if matches!(c.key_source().kind, KeySourceKind::Discovery(_))
        && c.kind == IssuerKind::Generic
        && !c.issuer.trim().is_empty()
    {
        if let Err(m) = check_fetch_url(&c.issuer) {
            err(
                "issuer",
                format!(
                    "discovery fetches from the issuer URL: {m}; or set `jwks_url`/`jwks_file`"
                ),
            );
        }
    }
    if c.audiences.is_empty() {
        err(
            "audiences",
            "at least one accepted audience is required: without it any token of the issuer, \
             minted for any service, would be accepted"
                .into(),
        );
    }
    for (i, a) in c.audiences.iter().enumerate() {
        if a.trim().is_empty() {
            err(
                &format!("audiences[{i}]"),
                "an audience cannot be empty".into(),
            );
        }
    }
    if c.algorithms.is_empty() {
        err("algorithms", "at least one algorithm is required".into());
    }
    if c.clock_skew > MAX_CLOCK_SKEW {
        err(
            "clock_skew",
            format!(
                "`{}` is more than the maximum of {MAX_CLOCK_SKEW}",
                c.clock_skew
            ),
        );
    }
    if c.refresh_interval < MIN_REFRESH || c.refresh_interval > MAX_REFRESH {
        err(
            "refresh_interval",
            format!("must be between {MIN_REFRESH} and {MAX_REFRESH}"),
        );
    }
    for (i, claim) in c.required_claims.iter().enumerate() {
        if claim.trim().is_empty() {
            err(
                &format!("required_claims[{i}]"),
                "a claim path cannot be empty".into(),
            );
        }
    }
    for (field, path) in [
        ("subject", &c.claims.subject),
        ("email", &c.claims.email),
        ("name", &c.claims.name),
        ("groups", &c.claims.groups),
    ] {
        if path.trim().is_empty() || path.split('.').any(str::is_empty) {
            err(
                &format!("claims.{field}"),
                format!("`{path}` is not a claim path such as `sub` or `realm_access.roles`"),
            );
        }
    }
}

/// Checks every issuer and returns all problems, addressed relative to the list (`[1].audiences`).
pub fn validate(confs: &[JwtIssuerConf]) -> Vec<FieldError> {
    let mut out = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, c) in confs.iter().enumerate() {
        let mut errors = Vec::new();
        validate_one(c, &mut errors);
        if let Some(first) = seen.insert(c.name.as_str(), i) {
            errors.push(FieldError::new(
                "name",
                format!("`{}` is already the name of issuer [{first}]", c.name),
            ));
        }
        out.extend(errors.into_iter().map(|e| e.under(&format!("[{i}]"))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml_json: serde_json::Value) -> Result<Vec<JwtIssuerConf>, serde_json::Error> {
        serde_json::from_value(yaml_json)
    }

    fn paths(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn defaults_apply() {
        let confs = parse(serde_json::json!([{
            "name": "ci", "issuer": "https://token.example.com", "audiences": ["warden"]
        }]))
        .unwrap();
        let c = &confs[0];
        assert_eq!(c.kind, IssuerKind::Generic);
        assert_eq!(c.algorithms, Algorithm::DEFAULT.to_vec());
        assert_eq!(c.clock_skew, DEFAULT_CLOCK_SKEW);
        assert_eq!(c.required_claims, vec!["sub".to_string()]);
        assert_eq!(c.claims, ClaimPaths::default());
        assert_eq!(
            c.key_source().kind,
            KeySourceKind::Discovery(
                "https://token.example.com/.well-known/openid-configuration".into()
            )
        );
        assert!(validate(&confs).is_empty(), "{:?}", validate(&confs));
    }

    #[test]
    fn kubernetes_defaults_point_at_the_api_server() {
        let confs = parse(serde_json::json!([{
            "name": "cluster", "kind": "kubernetes",
            "issuer": "https://kubernetes.default.svc.cluster.local", "audiences": ["warden"]
        }]))
        .unwrap();
        let s = confs[0].key_source();
        assert_eq!(
            s.kind,
            KeySourceKind::Url("https://kubernetes.default.svc/openid/v1/jwks".into())
        );
        assert_eq!(s.ca_file, Some(PathBuf::from(KUBERNETES_CA_FILE)));
        assert_eq!(s.token_file, Some(PathBuf::from(KUBERNETES_TOKEN_FILE)));
        assert!(s.ca_only);
        assert!(validate(&confs).is_empty());

        let mut discover = confs[0].clone();
        discover.discovery = Some(true);
        discover.api_server = Some("https://10.0.0.1:6443/".into());
        assert_eq!(
            discover.key_source().kind,
            KeySourceKind::Discovery(
                "https://10.0.0.1:6443/.well-known/openid-configuration".into()
            )
        );
    }

    #[test]
    fn unknown_fields_and_refused_algorithms_fail_to_parse() {
        let unknown = parse(serde_json::json!([{
            "name": "ci", "issuer": "https://x", "audiences": ["w"], "audience": "w"
        }]));
        assert!(unknown.unwrap_err().to_string().contains("unknown field"));
        let hs = parse(serde_json::json!([{
            "name": "ci", "issuer": "https://x", "audiences": ["w"], "algorithms": ["RS256", "HS256"]
        }]));
        assert!(hs.unwrap_err().to_string().contains("HMAC"));
        let none = parse(serde_json::json!([{
            "name": "ci", "issuer": "https://x", "audiences": ["w"], "algorithms": ["none"]
        }]));
        assert!(none.unwrap_err().to_string().contains("unsigned"));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let confs = parse(serde_json::json!([
            {"name": "ok", "issuer": "https://a.example", "audiences": ["w"]},
            {"name": "ok", "issuer": "http://b.example", "audiences": [],
             "discovery": true, "jwks_url": "ftp://b.example/jwks", "algorithms": [],
             "clock_skew": "1h", "refresh_interval": "1s", "required_claims": [""],
             "claims": {"subject": "a..b"}, "api_server": "https://k"},
            {"name": "", "issuer": " ", "discovery": false, "audiences": ["w", ""]}
        ]))
        .unwrap();
        let errors = validate(&confs);
        let got = paths(&errors);
        for want in [
            "[1].discovery",
            "[1].jwks_url",
            "[1].api_server",
            "[1].audiences",
            "[1].algorithms",
            "[1].clock_skew",
            "[1].refresh_interval",
            "[1].required_claims[0]",
            "[1].claims.subject",
            "[1].name",
            "[2].name",
            "[2].issuer",
            "[2].discovery",
            "[2].audiences[1]",
        ] {
            assert!(got.contains(&want), "{want} missing from {got:?}");
        }
        assert!(!got.iter().any(|p| p.starts_with("[0]")), "{got:?}");
        let dup = errors.iter().find(|e| e.path == "[1].name").unwrap();
        assert!(dup.message.contains("[0]"), "{dup}");
    }

    #[test]
    fn discovery_needs_an_https_issuer_but_loopback_http_is_fine() {
        let confs = parse(serde_json::json!([
            {"name": "a", "issuer": "http://idp.example", "audiences": ["w"]},
            {"name": "b", "issuer": "http://127.0.0.1:8080", "audiences": ["w"]},
            {"name": "c", "issuer": "not-a-url", "audiences": ["w"], "jwks_file": "/k.json"}
        ]))
        .unwrap();
        assert_eq!(paths(&validate(&confs)), vec!["[0].issuer"]);
    }

    #[test]
    fn rules_always_require_the_subject_claim() {
        let mut c = parse(serde_json::json!([{
            "name": "ci", "issuer": "https://x", "audiences": ["w"], "required_claims": [],
            "claims": {"subject": "client_id"}, "clock_skew": "5s"
        }]))
        .unwrap()
        .remove(0);
        let r = c.rules();
        assert_eq!(r.required_claims, vec!["client_id".to_string()]);
        assert_eq!(r.clock_skew_secs, 5);
        c.required_claims = vec!["client_id".into()];
        assert_eq!(c.rules().required_claims, vec!["client_id".to_string()]);
    }
}
