//! The `identity.providers` conf section: one entry per OpenID provider browsers sign in with.
//!
//! ```yaml
//! providers:
//!   - name: corp
//!     issuer: "https://idp.example.com"            # discovery at {issuer}/.well-known/openid-configuration
//!     client_id: warden
//!     client_secret_file: /etc/warden/oidc-secret  # or client_secret_env: WARDEN_OIDC_SECRET
//!     scopes: [openid, email, profile, groups]     # default [openid, email, profile]
//!     claims: { email: email, name: name, groups: groups, keep: [department] }
//!     groups_from: id_token                        # or userinfo
//!     userinfo_refresh: 5m
//!     ca_file: /etc/warden/idp-ca.pem              # optional extra CA for the IdP
//!     extra_auth_params: { prompt: login }
//! ```
//!
//! The client secret is never written in the conf, and never logged.

use crate::conf::{ConfPath, Duration, FieldError};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One OpenID provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConf {
    /// How routes (`auth.login`) and metrics name the provider.
    pub name: String,
    /// The issuer URL exactly as the provider writes it in `iss`.
    pub issuer: String,
    pub client_id: String,
    /// A file holding the client secret (trailing whitespace ignored).
    #[serde(default)]
    pub client_secret_file: Option<ConfPath>,
    /// An environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub claims: ClaimNames,
    #[serde(default)]
    pub groups_from: GroupsFrom,
    /// How often a session's profile (groups above all) is re-read from userinfo.
    #[serde(default = "default_userinfo_refresh")]
    pub userinfo_refresh: Duration,
    /// A PEM file of extra CA certificates trusted for the provider's endpoints.
    #[serde(default)]
    pub ca_file: Option<ConfPath>,
    /// Added to every authorization request (`prompt`, `hd`, `acr_values`, …).
    #[serde(default)]
    pub extra_auth_params: BTreeMap<String, String>,
}

/// Which claims hold what. Dotted paths (`realm_access.roles`) walk into objects.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimNames {
    #[serde(default = "default_email_claim")]
    pub email: String,
    #[serde(default = "default_name_claim")]
    pub name: String,
    #[serde(default = "default_groups_claim")]
    pub groups: String,
    /// Further claims kept in the session, for policy `claim` criteria and header mappings.
    /// Nothing else of the tokens is kept.
    #[serde(default)]
    pub keep: Vec<String>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            email: default_email_claim(),
            name: default_name_claim(),
            groups: default_groups_claim(),
            keep: Vec::new(),
        }
    }
}

/// Where a login's groups come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupsFrom {
    /// The ID token; userinfo when the ID token has no groups claim.
    #[default]
    IdToken,
    /// Always userinfo (providers that keep ID tokens small).
    Userinfo,
}

fn default_scopes() -> Vec<String> {
    DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()
}

fn default_email_claim() -> String {
    "email".into()
}

fn default_name_claim() -> String {
    "name".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_userinfo_refresh() -> Duration {
    Duration::from_secs(300)
}

/// Scopes asked for when the conf names none.
pub const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// Authorization request parameters Warden sets itself; overriding them would undo PKCE,
/// state or nonce protection, or send the code elsewhere.
const RESERVED_AUTH_PARAMS: [&str; 11] = [
    "client_id",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "redirect_uri",
    "request",
    "request_uri",
    "response_mode",
    "response_type",
    "scope",
    "state",
];

/// Every problem in the providers list, addressed relative to it (`[0].client_secret_file`).
/// Structural only: no file is read and no provider is contacted (`warden check`).
pub fn validate_conf(confs: &[ProviderConf]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, c) in confs.iter().enumerate() {
        let at = |field: &str| format!("[{i}].{field}");
        if let Err(m) = check_name(&c.name) {
            errors.push(FieldError::new(at("name"), m));
        } else if let Some(j) = confs[..i].iter().position(|o| o.name == c.name) {
            errors.push(FieldError::new(
                at("name"),
                format!(
                    "provider [{j}] already has the name `{}`: names must be unique",
                    c.name
                ),
            ));
        }
        if let Err(m) = check_issuer(&c.issuer) {
            errors.push(FieldError::new(at("issuer"), m));
        }
        if c.client_id.trim().is_empty() {
            errors.push(FieldError::new(
                at("client_id"),
                "must be the client id registered at the provider",
            ));
        }
        match (&c.client_secret_file, &c.client_secret_env) {
            (Some(_), Some(_)) => errors.push(FieldError::new(
                at("client_secret_env"),
                "give either client_secret_file or client_secret_env, not both",
            )),
            (None, None) => errors.push(FieldError::new(
                at("client_secret_file"),
                "missing: name a file (client_secret_file) or an environment variable \
                 (client_secret_env) holding the client secret; secrets are never written in the conf",
            )),
            (None, Some(env)) => {
                if let Err(m) = check_env_name(env) {
                    errors.push(FieldError::new(at("client_secret_env"), m));
                }
            }
            (Some(_), None) => {}
        }
        errors.extend(check_scopes(&c.scopes).map(|m| FieldError::new(at("scopes"), m)));
        for (field, path) in [
            ("email", &c.claims.email),
            ("name", &c.claims.name),
            ("groups", &c.claims.groups),
        ] {
            if let Err(m) = check_claim_path(path) {
                errors.push(FieldError::new(at(&format!("claims.{field}")), m));
            }
        }
        for (k, path) in c.claims.keep.iter().enumerate() {
            if let Err(m) = check_claim_path(path) {
                errors.push(FieldError::new(at(&format!("claims.keep[{k}]")), m));
            }
        }
        if c.userinfo_refresh.get() < std::time::Duration::from_secs(1) {
            errors.push(FieldError::new(
                at("userinfo_refresh"),
                "must be at least 1s (the default is 5m)",
            ));
        }
        for key in c.extra_auth_params.keys() {
            if RESERVED_AUTH_PARAMS.contains(&key.as_str()) {
                errors.push(FieldError::new(
                    at(&format!("extra_auth_params.{key}")),
                    format!("`{key}` is set by Warden on every login and cannot be overridden"),
                ));
            } else if key.is_empty() {
                errors.push(FieldError::new(
                    at("extra_auth_params"),
                    "parameter names cannot be empty",
                ));
            }
        }
    }
    errors
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if name.is_empty() || name.len() > 64 || !name.bytes().all(ok) {
        return Err(format!(
            "`{name}` is not a valid provider name: use 1 to 64 letters, digits, `-` and `_`"
        ));
    }
    Ok(())
}

/// An issuer is an absolute https URL without query or fragment; plain http only on loopback
/// (development and tests).
pub(crate) fn check_issuer(issuer: &str) -> Result<url::Url, String> {
    let u =
        url::Url::parse(issuer).map_err(|e| format!("`{issuer}` is not an absolute URL ({e})"))?;
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!(
            "`{issuer}` must not have a query or fragment (OpenID Connect Discovery §2)"
        ));
    }
    match u.scheme() {
        "https" => {}
        "http" if is_loopback(&u) => {}
        "http" => {
            return Err(format!(
            "`{issuer}` must use https (plain http is accepted only on loopback, for development)"
        ))
        }
        other => return Err(format!("`{issuer}`: unsupported scheme `{other}`")),
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{issuer}` has no host"));
    }
    Ok(u)
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

fn check_env_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!(
            "`{name}` is not an environment variable name (letters, digits and `_`, not starting with a digit)"
        ));
    }
    Ok(())
}

fn check_scopes(scopes: &[String]) -> Option<String> {
    if let Some(bad) = scopes
        .iter()
        .find(|s| s.is_empty() || s.bytes().any(|b| b <= b' ' || b == b'"' || b == b'\\'))
    {
        return Some(format!(
            "`{bad}` is not a scope (scopes are single words without spaces or quotes)"
        ));
    }
    if !scopes.iter().any(|s| s == "openid") {
        return Some("must include `openid` (Warden signs users in with OpenID Connect)".into());
    }
    None
}

fn check_claim_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!(
            "`{path}` is not a claim name or dotted path (like `email` or `realm_access.roles`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml_json: serde_json::Value) -> Result<Vec<ProviderConf>, serde_json::Error> {
        serde_json::from_value(yaml_json)
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "name": "corp",
            "issuer": "https://idp.example.com",
            "client_id": "warden",
            "client_secret_file": "/etc/warden/oidc-secret",
        })
    }

    fn paths(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn defaults_fill_the_rest() {
        let c = &parse(serde_json::json!([minimal()])).unwrap()[0];
        assert_eq!(c.scopes, ["openid", "email", "profile"]);
        assert_eq!(c.claims, ClaimNames::default());
        assert_eq!(c.claims.groups, "groups");
        assert_eq!(c.groups_from, GroupsFrom::IdToken);
        assert_eq!(c.userinfo_refresh, Duration::from_secs(300));
        assert!(c.extra_auth_params.is_empty());
        assert!(validate_conf(std::slice::from_ref(c)).is_empty());
    }

    #[test]
    fn unknown_keys_and_values_are_refused_at_parse() {
        let mut v = minimal();
        v["client_secret"] = "inline".into();
        let err = parse(serde_json::json!([v])).unwrap_err().to_string();
        assert!(err.contains("unknown field `client_secret`"), "{err}");
        let mut v = minimal();
        v["groups_from"] = "access_token".into();
        assert!(parse(serde_json::json!([v])).is_err());
        let mut v = minimal();
        v["claims"] = serde_json::json!({"roles": "x"});
        assert!(parse(serde_json::json!([v])).is_err());
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let confs = parse(serde_json::json!([
            minimal(),
            {
                "name": "corp",
                "issuer": "http://idp.example.com/?x=1",
                "client_id": " ",
                "client_secret_file": "/s",
                "client_secret_env": "S",
                "scopes": ["email"],
                "claims": {"email": "", "groups": "realm..roles", "keep": ["ok", "bad."]},
                "userinfo_refresh": "0s",
                "extra_auth_params": {"state": "x", "prompt": "login"},
            },
            {
                "name": "bad name",
                "issuer": "http://idp.example.com",
                "client_id": "w",
            },
            {
                "name": "env",
                "issuer": "http://127.0.0.1:8080",
                "client_id": "w",
                "client_secret_env": "1BAD",
                "scopes": ["openid", "two words"],
            },
        ]))
        .unwrap();
        let errors = validate_conf(&confs);
        assert_eq!(
            paths(&errors),
            [
                "[1].name",
                "[1].issuer",
                "[1].client_id",
                "[1].client_secret_env",
                "[1].scopes",
                "[1].claims.email",
                "[1].claims.groups",
                "[1].claims.keep[1]",
                "[1].userinfo_refresh",
                "[1].extra_auth_params.state",
                "[2].name",
                "[2].issuer",
                "[2].client_secret_file",
                "[3].client_secret_env",
                "[3].scopes",
            ],
            "{errors:#?}"
        );
        assert!(errors[0].message.contains("[0]"), "{}", errors[0]);
        assert!(errors[4].message.contains("openid"), "{}", errors[4]);
        assert!(errors[11].message.contains("https"), "{}", errors[11]);
        assert!(
            errors[12].message.contains("never written"),
            "{}",
            errors[12]
        );
    }

    #[test]
    fn issuers_are_https_or_loopback_http() {
        for ok in [
            "https://idp.example.com",
            "https://idp.example.com/realms/corp",
            "http://127.0.0.1:5556",
            "http://localhost:8080/dex",
            "http://[::1]:9000",
        ] {
            assert!(check_issuer(ok).is_ok(), "{ok}");
        }
        for bad in [
            "idp.example.com",
            "http://idp.example.com",
            "ftp://idp.example.com",
            "https://idp.example.com#x",
            "https://idp.example.com?a=b",
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
    }
}
