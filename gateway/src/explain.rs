//! `warden explain`: which route a request reaches, which identity the given claims or token
//! make, and what the route's policy decides — with the deciding rule and the full evaluation
//! trace. Nothing is started; the conf is loaded as `warden check` loads it.
//!
//! Exit codes: 0 the request would be allowed, 2 it would be refused (denied, or no route),
//! 1 the conf, the arguments or the identity could not be read.
//!
//! Blocks and sessions live in a running gateway and are not consulted. A `--token` is verified
//! when its issuer's keys are in a local `jwks_file`; otherwise its claims are only decoded and
//! the output says the signature was not verified.

use crate::conf::{self, types::ConfFile};
use crate::routing::normalize_host;
use crate::snapshot::{BuildMode, Snapshot};
use base64::Engine;
use serde_json::Value;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use warden_plugins::identity::{AuthMethod, KubernetesIdentity};
use warden_plugins::jwt::{IssuerKind, JwtIssuerConf, KeySet};
use warden_plugins::policy::{CompiledPolicy, RequestFacts};
use warden_plugins::Identity;

/// Where the caller's identity comes from.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A JSON file of claims (as a verified token would carry).
    Claims(PathBuf),
    /// A compact JWT.
    Token(String),
    /// No identity (an anonymous request).
    Anonymous,
}

/// The first certificate of a PEM file, reduced as the https listener reduces it.
fn read_client_cert(
    file: &std::path::Path,
) -> Result<warden_plugins::policy::ClientCert, ExplainError> {
    let fail = |m: String| ExplainError::ClientCert(format!("{}: {m}", file.display()));
    let pem = std::fs::read(file).map_err(|e| fail(e.to_string()))?;
    let der = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .ok_or_else(|| fail("no PEM certificate in it".into()))?
        .map_err(|e| fail(e.to_string()))?;
    crate::client_certs::reduce(&der).ok_or_else(|| fail("not an X.509 certificate".into()))
}

/// One `warden explain` invocation.
#[derive(Debug, Clone)]
pub struct Request {
    pub conf: PathBuf,
    pub method: String,
    pub url: String,
    pub caller: Caller,
    pub client_ip: IpAddr,
    /// A PEM file with the client certificate presented over mutual TLS (not verified here).
    pub client_cert: Option<PathBuf>,
    /// Unix seconds the decision is taken at (time-bounded rules).
    pub at: i64,
}

/// What `explain` concluded.
#[derive(Debug)]
pub struct Outcome {
    pub allowed: bool,
    /// The report, for stdout.
    pub text: String,
}

/// Something that keeps `explain` from deciding; printed on stderr with exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{0}")]
    Conf(String),
    #[error("--url `{0}` is not an absolute http(s) URL with a host")]
    Url(String),
    #[error("the request path is invalid: {0}")]
    Path(String),
    #[error("cannot read the claims file {file}: {message}")]
    Claims { file: String, message: String },
    #[error("--client-cert: {0}")]
    ClientCert(String),
    #[error("--token is not a JWT: {0}")]
    Token(String),
    #[error("the token was refused by issuer `{issuer}` (verified with its jwks_file): {code}")]
    Refused { issuer: String, code: &'static str },
    #[error("the claims have no subject at `{0}`")]
    NoSubject(String),
}

fn claim_at<'v>(claims: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(claims, |v, seg| v.get(seg))
}

fn str_at<'v>(claims: &'v Value, path: &str) -> Option<&'v str> {
    claim_at(claims, path).and_then(Value::as_str)
}

/// The identity a verified token with these claims would give, mapped through the issuer whose
/// `issuer` equals the claims' `iss` (default claim paths when none does).
fn identity_from_claims(
    claims: Value,
    issuer: Option<&JwtIssuerConf>,
) -> Result<Identity, ExplainError> {
    let paths = issuer.map(|i| i.claims.clone()).unwrap_or_default();
    let subject = str_at(&claims, &paths.subject)
        .ok_or_else(|| ExplainError::NoSubject(paths.subject.clone()))?;
    let mut groups: Vec<String> = match claim_at(&claims, &paths.groups) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(Into::into).collect(),
        _ => Vec::new(),
    };
    let kubernetes = match issuer.map(|i| i.kind) {
        Some(IssuerKind::Kubernetes) => subject
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
            .map(|(ns, sa)| KubernetesIdentity {
                namespace: ns.into(),
                service_account: sa.into(),
            }),
        _ => None,
    };
    if let Some(k) = &kubernetes {
        groups.push("system:serviceaccounts".into());
        groups.push(format!("system:serviceaccounts:{}", k.namespace));
    }
    let name = issuer.map_or("explain", |i| i.name.as_str());
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MAX);
    Ok(Identity::new(
        subject,
        str_at(&claims, "iss").unwrap_or_default(),
        AuthMethod::Bearer {
            issuer: name.into(),
        },
    )
    .with_email(str_at(&claims, &paths.email))
    .with_name(str_at(&claims, &paths.name))
    .with_groups(groups)
    .with_kubernetes(kubernetes)
    .with_expiry(exp)
    .with_claims(claims))
}

fn issuer_for<'c>(conf: &'c ConfFile, claims: &Value) -> Option<&'c JwtIssuerConf> {
    let iss = claims.get("iss").and_then(Value::as_str)?;
    conf.identity.jwt_issuers.iter().find(|i| i.issuer == iss)
}

/// The token's claims, verified when its issuer's keys are local. Returns the claims and a
/// line saying how far they can be trusted.
fn token_claims(conf: &ConfFile, token: &str, now: i64) -> Result<(Value, String), ExplainError> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| ExplainError::Token("expected three dot-separated parts".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| ExplainError::Token(format!("the payload is not base64url: {e}")))?;
    let claims: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ExplainError::Token(format!("the payload is not JSON: {e}")))?;
    let Some(issuer) = issuer_for(conf, &claims) else {
        return Ok((
            claims,
            "signature NOT verified: no identity.jwt_issuers entry has this token's `iss`".into(),
        ));
    };
    let Some(file) = &issuer.jwks_file else {
        return Ok((
            claims,
            format!(
                "signature NOT verified: issuer `{}` fetches its keys remotely; claims were only decoded",
                issuer.name
            ),
        ));
    };
    let keys = std::fs::read(file)
        .map_err(|e| e.to_string())
        .and_then(|b| KeySet::from_jwks_json(&b).map_err(|e| e.to_string()))
        .map_err(|m| ExplainError::Conf(format!("cannot read {}: {m}", file.display())))?;
    match warden_plugins::jwt::verify_with_keys(token, &keys, &issuer.rules(), now) {
        Ok(v) => Ok((
            v.claims,
            format!(
                "signature verified with issuer `{}`'s jwks_file; claims checked",
                issuer.name
            ),
        )),
        Err(e) => Err(ExplainError::Refused {
            issuer: issuer.name.clone(),
            code: e.code(),
        }),
    }
}

fn describe(id: &Identity) -> String {
    let mut s = format!("subject `{}`", id.subject);
    if let Some(e) = &id.email {
        let _ = write!(s, ", email `{e}`");
    }
    let groups: Vec<&str> = id.groups.iter().map(|g| &**g).collect();
    let _ = write!(s, ", groups [{}]", groups.join(", "));
    let _ = write!(s, ", issuer `{}`", id.method.source_name());
    if let Some(k) = &id.kubernetes {
        let _ = write!(s, ", service account {}/{}", k.namespace, k.service_account);
    }
    s
}

fn trace(
    out: &mut String,
    policy: &CompiledPolicy,
    facts: &RequestFacts<'_>,
    id: Option<&Identity>,
) -> bool {
    let (decision, lines) = policy.explain(facts, id);
    let _ = writeln!(out, "decision:  {decision}");
    let _ = writeln!(out, "trace:");
    for l in &lines {
        let _ = writeln!(out, "  {l}");
    }
    decision.allowed
}

/// Runs `explain`.
pub fn explain(req: &Request) -> Result<Outcome, ExplainError> {
    let loaded = conf::load(&req.conf).map_err(conf_errors)?;
    let snap = crate::background::block_on(Snapshot::build(
        loaded.conf.clone(),
        0,
        None,
        &warden_plugins::clock::system(),
        BuildMode::Check,
    ))
    .map_err(|e| conf_errors(loaded.locate(e)))?;
    let conf = &loaded.conf;

    let url = url::Url::parse(&req.url).map_err(|_| ExplainError::Url(req.url.clone()))?;
    let host = url
        .host_str()
        .filter(|_| matches!(url.scheme(), "http" | "https"))
        .and_then(normalize_host)
        .ok_or_else(|| ExplainError::Url(req.url.clone()))?;
    let path = warden_plugins::path::normalize(url.path())
        .map_err(|e| ExplainError::Path(e.to_string()))?;
    let method = req.method.to_ascii_uppercase();

    let mut out = String::new();
    let _ = writeln!(out, "request:   {method} {host}{path}");
    if path != url.path() {
        let _ = writeln!(out, "           (path normalised from {})", url.path());
    }

    let (identity, provenance) = match &req.caller {
        Caller::Anonymous => (None, "no identity given (anonymous request)".to_string()),
        Caller::Claims(file) => {
            let text = std::fs::read_to_string(file).map_err(|e| ExplainError::Claims {
                file: file.display().to_string(),
                message: e.to_string(),
            })?;
            let claims: Value = serde_json::from_str(&text).map_err(|e| ExplainError::Claims {
                file: file.display().to_string(),
                message: e.to_string(),
            })?;
            let id = identity_from_claims(claims.clone(), issuer_for(conf, &claims))?;
            (
                Some(id),
                format!("from claims file {} (taken as verified)", file.display()),
            )
        }
        Caller::Token(t) => {
            let (claims, trust) = token_claims(conf, t, req.at)?;
            let id = identity_from_claims(claims.clone(), issuer_for(conf, &claims))?;
            (Some(id), format!("from --token: {trust}"))
        }
    };
    match &identity {
        Some(id) => {
            let _ = writeln!(out, "identity:  {}", describe(id));
            let _ = writeln!(out, "           {provenance}");
        }
        None => {
            let _ = writeln!(out, "identity:  {provenance}");
        }
    }
    let _ = writeln!(
        out,
        "note:      blocks and sessions of a running gateway are not consulted"
    );

    let Some(route) = snap.router.lookup(&host, &path).map(|i| &snap.routes[i]) else {
        let _ = writeln!(out, "route:     none (the gateway answers 404)");
        let _ = writeln!(out, "decision:  deny (no route)");
        return Ok(Outcome {
            allowed: false,
            text: out,
        });
    };
    let _ = writeln!(out, "route:     {} (routes[{}])", route.name, route.index);
    if route.public {
        let _ = writeln!(out, "decision:  allow (public route: no policy applies)");
        return Ok(Outcome {
            allowed: true,
            text: out,
        });
    }
    let client_cert = match &req.client_cert {
        Some(file) => Some(read_client_cert(file)?),
        None => None,
    };
    let facts = RequestFacts {
        method: &method,
        path: &path,
        client_ip: req.client_ip,
        client_cert: client_cert.as_ref(),
        cors_preflight: false,
        now_secs: req.at,
    };
    let Some(policy) = &route.auth.policy else {
        let _ = writeln!(out, "decision:  deny (the route has no policy)");
        return Ok(Outcome {
            allowed: false,
            text: out,
        });
    };
    let allowed = trace(&mut out, policy, &facts, identity.as_ref());
    if let Some(shadow) = &route.auth.shadow {
        let _ = writeln!(out, "shadow policy (logged and counted, never enforced):");
        let mut shadow_out = String::new();
        trace(&mut shadow_out, shadow, &facts, identity.as_ref());
        for l in shadow_out.lines() {
            let _ = writeln!(out, "  {l}");
        }
    }
    Ok(Outcome { allowed, text: out })
}

fn conf_errors(errs: Vec<conf::ConfError>) -> ExplainError {
    let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    ExplainError::Conf(format!(
        "{}\n{} error(s) in the conf",
        lines.join("\n"),
        lines.len()
    ))
}
