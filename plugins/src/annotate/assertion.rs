//! `X-Warden-Jwt-Assertion`: a short-lived JWT, signed by Warden, saying who the caller is, for
//! upstreams that verify rather than trust headers — kube-apiserver among them (Structured
//! Authentication Configuration, `k8s/authentication-config.yaml`).
//!
//! - Header: `alg` (ES256 or EdDSA), `kid` (RFC 7638 thumbprint of the signing key), `typ: JWT`.
//! - Claims: `iss` (the conf string exactly), `aud`, `sub`, `email`, `groups`, `name`, `sid`
//!   (the session handle, for sessions), `iat`, `exp` (never after the credential's own
//!   expiry), `jti` (random).
//! - Published: [`AssertionSigner::jwks_json`] (every configured key, so an assertion signed by
//!   a key being rotated out verifies while that key is still listed) and
//!   [`AssertionSigner::openid_configuration_json`], the discovery document kube-apiserver
//!   fetches from `{issuer}/.well-known/openid-configuration` (issuer without its trailing
//!   slash) and whose `issuer` must equal its configured `issuer.url` byte for byte.
//!
//! Signing happens once per (identity, audience) and again only when less than the refresh
//! margin (a fifth of the ttl, at least a minute or half the ttl) remains: requests in between
//! copy a cached `HeaderValue`.

use super::cache::IdentityCache;
use super::conf::{AssertionConf, SigningAlgorithm};
use super::keys::SigningKey;
use super::{AnnotateError, DEFAULT_CACHE_CAPACITY};
use crate::conf::FieldError;
use crate::identity::Identity;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::HeaderValue;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use std::hash::BuildHasher;
use std::sync::Arc;

/// An assertion audience, hashed once (build one per route when the conf is compiled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    value: Arc<str>,
    hash: u64,
}

impl Audience {
    pub fn new(value: &str) -> Self {
        // A fixed hasher: the hash only has to be the same for equal audiences in one process.
        let hasher =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
        Self {
            value: value.into(),
            hash: hasher.hash_one(value),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }
}

#[derive(Clone)]
struct Minted {
    value: HeaderValue,
    audience: Arc<str>,
    /// `exp` is the credential's expiry: minting again would not give a longer-lived token.
    capped: bool,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    groups: &'a [Arc<str>],
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    iat: i64,
    exp: i64,
    jti: &'a str,
}

/// Signs, caches and publishes assertions. One per conf version (keep the same one across
/// reloads that leave `identity.assertion` unchanged, so cached assertions survive and a
/// generated key is not replaced).
pub struct AssertionSigner {
    issuer: Box<str>,
    keys: Box<[SigningKey]>,
    /// base64url of the first key's JOSE header.
    header_b64: Box<str>,
    ttl: i64,
    margin: i64,
    default_audience: Option<Box<str>>,
    ephemeral: bool,
    rng: SystemRandom,
    cache: IdentityCache<Minted>,
    jwks: Bytes,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("issuer", &self.issuer)
            .field("keys", &self.keys)
            .field("ttl", &self.ttl)
            .field("ephemeral", &self.ephemeral)
            .finish_non_exhaustive()
    }
}

/// Seconds before expiry at which a cached assertion is replaced.
fn refresh_margin(ttl: i64) -> i64 {
    (ttl / 5).max(60.min(ttl / 2))
}

impl AssertionSigner {
    /// Builds the signer of `identity.assertion`, reading its key files. Errors are relative to
    /// the section (`signing_keys[1]`).
    pub fn from_conf(conf: &AssertionConf) -> Result<Self, Vec<FieldError>> {
        let mut errs = conf.validate();
        let mut keys = Vec::with_capacity(conf.signing_keys.len());
        for (i, path) in conf.signing_keys.iter().enumerate() {
            let at = format!("signing_keys[{i}]");
            match std::fs::read_to_string(path) {
                Err(e) => errs.push(FieldError::new(
                    at,
                    format!("cannot read `{}`: {e}", path.display()),
                )),
                Ok(pem) => match SigningKey::from_pem(&pem) {
                    Ok(k) => keys.push(k),
                    Err(e) => errs.push(FieldError::new(at, format!("`{}`: {e}", path.display()))),
                },
            }
        }
        if let (Some(want), Some(first)) = (conf.algorithm, keys.first()) {
            if first.algorithm() != want {
                errs.push(FieldError::new(
                    "algorithm",
                    format!(
                        "the first signing key (it signs) is an {} key, not {}",
                        first.algorithm().as_str(),
                        want.as_str()
                    ),
                ));
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let alg = conf.algorithm.unwrap_or(SigningAlgorithm::ES256);
        Self::new(
            &conf.issuer,
            keys,
            alg,
            conf.ttl.get().as_secs(),
            conf.audience.as_deref(),
        )
        .map_err(|e| vec![FieldError::new("signing_keys", e.to_string())])
    }

    /// A signer for `issuer` with `keys` (the first signs). Without keys it generates an
    /// `alg` key and warns: assertions then verify only against this process's JWKS.
    pub fn new(
        issuer: &str,
        mut keys: Vec<SigningKey>,
        alg: SigningAlgorithm,
        ttl_secs: u64,
        default_audience: Option<&str>,
    ) -> Result<Self, super::keys::KeyError> {
        let ephemeral = keys.is_empty();
        if ephemeral {
            keys.push(SigningKey::generate(alg)?);
            tracing::warn!(
                issuer,
                "identity.assertion has no signing_keys: signing with a key generated at start. \
                 Assertions will not verify against other replicas or after a restart; configure \
                 signing_keys when running more than one replica"
            );
        }
        let first = &keys[0];
        let header = serde_json::json!({"alg": first.algorithm().as_str(), "kid": first.kid(), "typ": "JWT"});
        let header_b64 = URL_SAFE_NO_PAD.encode(header.to_string()).into();
        let jwks = serde_json::json!({
            "keys": keys.iter().map(|k| k.public_jwk().clone()).collect::<Vec<_>>()
        });
        let ttl = i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2);
        Ok(Self {
            issuer: issuer.into(),
            header_b64,
            ttl,
            margin: refresh_margin(ttl),
            default_audience: default_audience.map(Into::into),
            ephemeral,
            rng: SystemRandom::new(),
            cache: IdentityCache::new(DEFAULT_CACHE_CAPACITY),
            jwks: Bytes::from(jwks.to_string()),
            keys: keys.into_boxed_slice(),
        })
    }

    /// Bounds the assertion cache (default [`DEFAULT_CACHE_CAPACITY`] entries).
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = IdentityCache::new(capacity);
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// True when the key was generated at start (no `signing_keys`).
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl
    }

    /// The audience for a route: the route's own setting, else the conf's `audience`, else
    /// the route's host.
    pub fn audience(&self, route_host: &str, route_audience: Option<&str>) -> Audience {
        Audience::new(
            route_audience
                .or(self.default_audience.as_deref())
                .unwrap_or(route_host),
        )
    }

    /// The assertion for `id` and `aud`, from the cache unless it is missing or near expiry.
    pub fn assertion(
        &self,
        id: &Arc<Identity>,
        aud: &Audience,
        now: i64,
    ) -> Result<HeaderValue, AnnotateError> {
        if let Some((m, exp)) = self.cache.get(id, aud.hash) {
            let fresh = exp - now > self.margin || (m.capped && exp > now);
            if fresh && (Arc::ptr_eq(&m.audience, &aud.value) || *m.audience == *aud.value) {
                return Ok(m.value);
            }
        }
        let (token, exp, capped) = self.sign(id, aud.as_str(), now)?;
        let value = HeaderValue::from_maybe_shared(Bytes::from(token))
            .map_err(|_| AnnotateError::SigningFailed)?;
        let minted = Minted {
            value: value.clone(),
            audience: aud.value.clone(),
            capped,
        };
        self.cache.insert(id, aud.hash, minted, exp, now);
        Ok(value)
    }

    /// A freshly signed assertion (no cache): what [`Self::assertion`] does on a miss.
    pub fn mint(&self, id: &Identity, audience: &str, now: i64) -> Result<String, AnnotateError> {
        self.sign(id, audience, now).map(|(t, _, _)| t)
    }

    fn sign(
        &self,
        id: &Identity,
        aud: &str,
        now: i64,
    ) -> Result<(String, i64, bool), AnnotateError> {
        let full = now.saturating_add(self.ttl);
        let exp = full.min(id.expires_at);
        if exp <= now {
            return Err(AnnotateError::IdentityExpired);
        }
        let mut jti = [0u8; 16];
        self.rng
            .fill(&mut jti)
            .map_err(|_| AnnotateError::SigningFailed)?;
        let jti = URL_SAFE_NO_PAD.encode(jti);
        let claims = Claims {
            iss: &self.issuer,
            aud,
            sub: &id.subject,
            email: id.email.as_deref(),
            groups: &id.groups,
            name: id.name.as_deref(),
            sid: id.method.session_id(),
            iat: now,
            exp,
            jti: &jti,
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| AnnotateError::SigningFailed)?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let sig = self.keys[0]
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| AnnotateError::SigningFailed)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut token);
        Ok((token, exp, exp < full))
    }

    /// `{"keys": [...]}` with every configured public key: serve it at the `jwks_uri`.
    pub fn jwks_json(&self) -> Bytes {
        self.jwks.clone()
    }

    /// The OpenID discovery document for this issuer, pointing at `jwks_uri`.
    pub fn openid_configuration_json(&self, jwks_uri: &str) -> Bytes {
        let mut algs: Vec<&str> = Vec::new();
        for k in self.keys.iter() {
            let a = k.algorithm().as_str();
            if !algs.contains(&a) {
                algs.push(a);
            }
        }
        let doc = serde_json::json!({
            "issuer": &*self.issuer,
            "jwks_uri": jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algs,
            "claims_supported": ["iss", "aud", "sub", "email", "groups", "name", "sid", "iat", "exp", "jti"],
        });
        Bytes::from(doc.to_string())
    }

    /// `https://{issuer host}/.well-known/warden/jwks.json`: where Warden serves the JWKS.
    pub fn default_jwks_uri(&self) -> String {
        let origin = url::Url::parse(&self.issuer)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| self.issuer.trim_end_matches('/').to_string());
        format!("{origin}{}", super::JWKS_PATH)
    }

    /// The path at which clients look for the discovery document: the issuer's path without
    /// its trailing slash, then `/.well-known/openid-configuration` (what go-oidc and so
    /// kube-apiserver request).
    pub fn discovery_path(&self) -> String {
        let path = url::Url::parse(&self.issuer)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        format!("{path}/.well-known/openid-configuration")
    }

    /// The issuer's host name (where the discovery document is served).
    pub fn issuer_host(&self) -> Option<String> {
        url::Url::parse(&self.issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthMethod;
    use serde_json::Value;

    const NOW: i64 = 1_700_000_000;

    fn signer(ttl: u64) -> AssertionSigner {
        let key = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
        AssertionSigner::new(
            "https://auth.example.com/",
            vec![key],
            SigningAlgorithm::ES256,
            ttl,
            None,
        )
        .unwrap()
    }

    fn session_identity() -> Arc<Identity> {
        Arc::new(
            Identity::new(
                "u-1",
                "https://idp.example.com",
                AuthMethod::Session {
                    provider: "corp".into(),
                    session_id: "a1b2c3d4e5f60718".into(),
                },
            )
            .with_email(Some("jane@example.com"))
            .with_name(Some("Jane"))
            .with_groups(["sre", "dev"])
            .with_expiry(NOW + 12 * 3600),
        )
    }

    fn decode(token: &str) -> (Value, Value) {
        let mut parts = token.split('.');
        let mut part = || -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap()
        };
        (part(), part())
    }

    #[test]
    fn claims_and_header() {
        let s = signer(300);
        let id = session_identity();
        let t = s.mint(&id, "https://app.example.com", NOW).unwrap();
        let (h, c) = decode(&t);
        assert_eq!(h["alg"], "ES256");
        assert_eq!(h["typ"], "JWT");
        assert_eq!(h["kid"], s.keys()[0].kid());
        assert_eq!(c["iss"], "https://auth.example.com/");
        assert_eq!(c["aud"], "https://app.example.com");
        assert_eq!(c["sub"], "u-1");
        assert_eq!(c["email"], "jane@example.com");
        assert_eq!(c["name"], "Jane");
        assert_eq!(c["groups"], serde_json::json!(["dev", "sre"]));
        assert_eq!(c["sid"], "a1b2c3d4e5f60718");
        assert_eq!(c["iat"], NOW);
        assert_eq!(c["exp"], NOW + 300);
        assert_eq!(c["jti"].as_str().unwrap().len(), 22);
        let t2 = s.mint(&id, "https://app.example.com", NOW).unwrap();
        assert_ne!(
            decode(&t2).1["jti"],
            c["jti"],
            "every assertion has its own jti"
        );
    }

    #[test]
    fn bearer_identities_have_no_sid_and_absent_fields_are_omitted() {
        let s = signer(300);
        let id = Identity::new(
            "svc",
            "https://t",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        );
        let (_, c) = decode(&s.mint(&id, "aud", NOW).unwrap());
        for absent in ["sid", "email", "name"] {
            assert!(c.get(absent).is_none(), "{absent}");
        }
        assert_eq!(c["groups"], serde_json::json!([]));
    }

    #[test]
    fn expiry_never_outlives_the_credential() {
        let s = signer(300);
        let id = Identity::new(
            "u",
            "i",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
        .with_expiry(NOW + 100);
        let (_, c) = decode(&s.mint(&id, "a", NOW).unwrap());
        assert_eq!(c["exp"], NOW + 100);
        let expired = Identity::new(
            "u",
            "i",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
        .with_expiry(NOW);
        assert_eq!(
            s.mint(&expired, "a", NOW),
            Err(AnnotateError::IdentityExpired)
        );
    }

    #[test]
    fn cached_until_the_refresh_margin() {
        let s = signer(300); // margin: 60s
        let id = session_identity();
        let aud = s.audience("app.example.com", None);
        let first = s.assertion(&id, &aud, NOW).unwrap();
        assert_eq!(
            s.assertion(&id, &aud, NOW + 239).unwrap(),
            first,
            "240s left: reused"
        );
        let renewed = s.assertion(&id, &aud, NOW + 240).unwrap();
        assert_ne!(renewed, first, "60s left: signed again");
        let (_, c) = decode(renewed.to_str().unwrap());
        assert_eq!(c["iat"], NOW + 240);

        let other = s.audience("other.example.com", None);
        let o = s.assertion(&id, &other, NOW + 240).unwrap();
        assert_eq!(decode(o.to_str().unwrap()).1["aud"], "other.example.com");
    }

    #[test]
    fn a_capped_assertion_is_reused_to_the_end() {
        let s = signer(300);
        let id = Arc::new(
            Identity::new(
                "u",
                "i",
                AuthMethod::Bearer {
                    issuer: "ci".into(),
                },
            )
            .with_expiry(NOW + 30),
        );
        let aud = Audience::new("a");
        let first = s.assertion(&id, &aud, NOW).unwrap();
        assert_eq!(s.assertion(&id, &aud, NOW + 29).unwrap(), first);
        assert_eq!(
            s.assertion(&id, &aud, NOW + 30),
            Err(AnnotateError::IdentityExpired)
        );
    }

    #[test]
    fn margins_scale_with_the_ttl() {
        assert_eq!(refresh_margin(300), 60);
        assert_eq!(refresh_margin(3600), 720);
        assert_eq!(refresh_margin(60), 30);
        assert_eq!(refresh_margin(30), 15);
    }

    #[test]
    fn audiences_prefer_the_route_then_the_conf_then_the_host() {
        let s = signer(300);
        assert_eq!(s.audience("h.example.com", None).as_str(), "h.example.com");
        assert_eq!(s.audience("h.example.com", Some("r")).as_str(), "r");
        let key = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
        let s = AssertionSigner::new(
            "https://a/",
            vec![key],
            SigningAlgorithm::ES256,
            300,
            Some("k8s"),
        )
        .unwrap();
        assert_eq!(s.audience("h.example.com", None).as_str(), "k8s");
        assert_eq!(s.audience("h.example.com", Some("r")).as_str(), "r");
    }

    #[test]
    fn discovery_and_jwks() {
        let a = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
        let b = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let (ka, kb) = (a.kid().to_string(), b.kid().to_string());
        let s = AssertionSigner::new(
            "https://auth.example.com/k8s/",
            vec![a, b],
            SigningAlgorithm::ES256,
            300,
            None,
        )
        .unwrap();
        let jwks: Value = serde_json::from_slice(&s.jwks_json()).unwrap();
        let kids: Vec<_> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [ka.as_str(), kb.as_str()]);
        assert_eq!(
            s.default_jwks_uri(),
            "https://auth.example.com/.well-known/warden/jwks.json"
        );
        assert_eq!(s.discovery_path(), "/k8s/.well-known/openid-configuration");
        assert_eq!(s.issuer_host().as_deref(), Some("auth.example.com"));
        let d: Value =
            serde_json::from_slice(&s.openid_configuration_json("https://x/jwks")).unwrap();
        assert_eq!(
            d["issuer"], "https://auth.example.com/k8s/",
            "exactly the conf string"
        );
        assert_eq!(d["jwks_uri"], "https://x/jwks");
        assert_eq!(
            d["id_token_signing_alg_values_supported"],
            serde_json::json!(["ES256", "EdDSA"])
        );
        assert_eq!(
            d["response_types_supported"],
            serde_json::json!(["id_token"])
        );
        assert_eq!(d["subject_types_supported"], serde_json::json!(["public"]));

        let s = signer(300);
        assert_eq!(s.discovery_path(), "/.well-known/openid-configuration");
    }

    #[test]
    fn from_conf_reads_keys_and_reports_every_problem() {
        let dir = std::env::temp_dir().join(format!("warden-assertion-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ed = dir.join("ed.pem");
        std::fs::write(
            &ed,
            SigningKey::generate_pkcs8_pem(SigningAlgorithm::EdDSA).unwrap(),
        )
        .unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a key").unwrap();
        let conf = |keys: Vec<std::path::PathBuf>, alg: Option<SigningAlgorithm>| AssertionConf {
            issuer: "https://auth.example.com/".into(),
            signing_keys: keys
                .into_iter()
                .map(|k| crate::conf::ConfPath::new(k.display().to_string()))
                .collect(),
            ttl: crate::conf::Duration::from_secs(300),
            audience: None,
            algorithm: alg,
        };
        let s = AssertionSigner::from_conf(&conf(vec![ed.clone()], None)).unwrap();
        assert_eq!(s.keys()[0].algorithm(), SigningAlgorithm::EdDSA);
        assert!(!s.is_ephemeral());
        let errs = AssertionSigner::from_conf(&conf(
            vec![ed.clone(), junk, dir.join("missing.pem")],
            Some(SigningAlgorithm::ES256),
        ))
        .unwrap_err();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["signing_keys[1]", "signing_keys[2]", "algorithm"]);
        let s = AssertionSigner::from_conf(&conf(vec![], None)).unwrap();
        assert!(s.is_ephemeral());
        assert_eq!(s.keys()[0].algorithm(), SigningAlgorithm::ES256);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
