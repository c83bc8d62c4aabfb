//! Warden's assertions checked by an independent JWT implementation (`jsonwebtoken`, RustCrypto
//! backend) the way kube-apiserver checks them: it knows only the configured issuer URL and
//! audiences, reads the discovery document at `{issuer without trailing slash}/.well-known/
//! openid-configuration`, requires its `issuer` to equal the configured URL exactly, fetches
//! the `jwks_uri`, picks the key by `kid`, and checks signature, `iss`, `aud`, `exp` and the
//! algorithm against its allow list (RS*, ES*, PS* — not EdDSA).

use jsonwebtoken::jwk::{JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use warden_plugins::annotate::{AssertionConf, AssertionSigner, SigningAlgorithm, SigningKey};
use warden_plugins::conf::{ConfPath, Duration};
use warden_plugins::{AuthMethod, Identity};

const ISSUER: &str = "https://auth.example.com/";
const AUDIENCE: &str = "kubernetes";

fn fixture(name: &str) -> ConfPath {
    ConfPath::new(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/annotate")
            .join(name)
            .display()
            .to_string(),
    )
}

fn signer(keys: &[&str]) -> AssertionSigner {
    AssertionSigner::from_conf(&AssertionConf {
        issuer: ISSUER.into(),
        signing_keys: keys.iter().map(|k| fixture(k)).collect(),
        ttl: Duration::from_secs(300),
        audience: Some(AUDIENCE.into()),
        algorithm: None,
    })
    .expect("signer")
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn jane() -> Arc<Identity> {
    Arc::new(
        Identity::new(
            "00u1abcd",
            "https://idp.example.com",
            AuthMethod::Session {
                provider: "corp".into(),
                session_id: "5f3c9a0b1d2e4f60".into(),
            },
        )
        .with_email(Some("jane@example.com"))
        .with_name(Some("Jane Doe"))
        .with_groups(["sre", "developers"])
        .with_expiry(now() + 3600),
    )
}

/// What the API server does with a token, given its AuthenticationConfiguration
/// (`issuer.url`, `audiences`) and the two documents Warden publishes.
struct ApiServer {
    issuer_url: String,
    audiences: Vec<String>,
    allowed: Vec<Algorithm>,
}

impl ApiServer {
    fn new(issuer_url: &str) -> Self {
        Self {
            issuer_url: issuer_url.into(),
            audiences: vec![AUDIENCE.into()],
            // kube-apiserver with --authentication-config: every algorithm of
            // oidc.AllValidSigningAlgorithms(), which has no EdDSA.
            allowed: vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
        }
    }

    /// The URL go-oidc fetches the discovery document from.
    fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer_url.trim_end_matches('/')
        )
    }

    fn verify(&self, signer: &AssertionSigner, token: &str) -> Result<Value, String> {
        // 1. Discovery: served by Warden at the issuer host + discovery_path().
        let served_at = format!(
            "https://{}{}",
            signer.issuer_host().unwrap(),
            signer.discovery_path()
        );
        if served_at != self.discovery_url() {
            return Err(format!(
                "discovery served at {served_at}, fetched from {}",
                self.discovery_url()
            ));
        }
        let doc: Value =
            serde_json::from_slice(&signer.openid_configuration_json(&signer.default_jwks_uri()))
                .map_err(|e| e.to_string())?;
        if doc["issuer"] != self.issuer_url.as_str() {
            return Err(format!(
                "oidc: issuer did not match the issuer returned by provider, expected {:?} got {}",
                self.issuer_url, doc["issuer"]
            ));
        }
        assert_eq!(
            doc["jwks_uri"],
            "https://auth.example.com/.well-known/warden/jwks.json"
        );
        // 2. The JWKS at jwks_uri.
        let jwks: JwkSet =
            serde_json::from_slice(&signer.jwks_json()).map_err(|e| e.to_string())?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        // The allow list is checked first (jsonwebtoken's own list must stay within one key
        // family, so it gets only the token's algorithm).
        if !self.allowed.contains(&header.alg) {
            return Err("InvalidAlgorithm".into());
        }
        let kid = header.kid.ok_or("no kid")?;
        let jwk = jwks
            .find(&kid)
            .ok_or_else(|| format!("no key {kid} in the JWKS"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        // 3. Signature and claims.
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.issuer_url]);
        v.set_audience(&self.audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 0;
        jsonwebtoken::decode::<Value>(token, &key, &v)
            .map(|t| t.claims)
            .map_err(|e| format!("{:?}", e.into_kind()))
    }
}

#[test]
fn an_assertion_verifies_with_only_the_published_documents() {
    let s = signer(&["es256-a.pem"]);
    let id = jane();
    let aud = s.audience("k8s.example.com", None);
    assert_eq!(aud.as_str(), AUDIENCE);
    let token = s.assertion(&id, &aud, now()).unwrap();
    let claims = ApiServer::new(ISSUER)
        .verify(&s, token.to_str().unwrap())
        .expect("verifies");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], "00u1abcd");
    assert_eq!(claims["email"], "jane@example.com");
    assert_eq!(claims["groups"], serde_json::json!(["developers", "sre"]));
    assert_eq!(claims["sid"], "5f3c9a0b1d2e4f60");
    let header = jsonwebtoken::decode_header(token.to_str().unwrap()).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
}

#[test]
fn the_kid_is_the_rfc7638_thumbprint() {
    for (file, n) in [("es256-a.pem", 0), ("ed25519.pem", 0)] {
        let s = signer(&[file]);
        let jwks: JwkSet = serde_json::from_slice(&s.jwks_json()).unwrap();
        let jwk = &jwks.keys[n];
        assert_eq!(
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
            s.keys()[n].kid(),
            "{file}"
        );
    }
}

#[test]
fn the_issuer_must_match_to_the_trailing_slash() {
    let s = signer(&["es256-a.pem"]);
    let token = s.mint(&jane(), AUDIENCE, now()).unwrap();
    let without_slash = ApiServer::new("https://auth.example.com");
    let e = without_slash.verify(&s, &token).unwrap_err();
    assert!(e.contains("issuer did not match"), "{e}");

    // An issuer with a path: discovery under the path, issuer compared whole.
    let with_path = AssertionSigner::from_conf(&AssertionConf {
        issuer: "https://auth.example.com/k8s".into(),
        signing_keys: vec![fixture("es256-a.pem")],
        ttl: Duration::from_secs(300),
        audience: None,
        algorithm: None,
    })
    .unwrap();
    let token = with_path.mint(&jane(), AUDIENCE, now()).unwrap();
    let api = ApiServer::new("https://auth.example.com/k8s");
    assert_eq!(
        api.discovery_url(),
        "https://auth.example.com/k8s/.well-known/openid-configuration"
    );
    api.verify(&with_path, &token).expect("verifies");
}

#[test]
fn audience_algorithm_and_expiry_are_enforced() {
    let s = signer(&["es256-a.pem"]);
    let api = ApiServer::new(ISSUER);

    let other_aud = s
        .mint(&jane(), "https://grafana.example.com", now())
        .unwrap();
    assert_eq!(api.verify(&s, &other_aud).unwrap_err(), "InvalidAudience");

    // Minted 301 s ago with a 300 s ttl: expired.
    let old = s.mint(&jane(), AUDIENCE, now() - 301).unwrap();
    assert_eq!(api.verify(&s, &old).unwrap_err(), "ExpiredSignature");

    // EdDSA verifies with a library that allows it, and is refused by the API server's list.
    let ed = signer(&["ed25519.pem"]);
    let token = ed.mint(&jane(), AUDIENCE, now()).unwrap();
    assert_eq!(api.verify(&ed, &token).unwrap_err(), "InvalidAlgorithm");
    let mut eddsa_ok = ApiServer::new(ISSUER);
    eddsa_ok.allowed = vec![Algorithm::EdDSA];
    eddsa_ok
        .verify(&ed, &token)
        .expect("EdDSA verifies where allowed");

    // A token whose payload was changed fails the signature check.
    let token = s.mint(&jane(), AUDIENCE, now()).unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let forged =
        serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "admin", "exp": now() + 60});
    use base64::Engine;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
    assert_eq!(
        api.verify(&s, &parts.join(".")).unwrap_err(),
        "InvalidSignature"
    );
}

#[test]
fn rotation_keeps_old_assertions_verifiable_while_the_old_key_is_listed() {
    let api = ApiServer::new(ISSUER);
    let before = signer(&["es256-a.pem"]);
    let old_token = before.mint(&jane(), AUDIENCE, now()).unwrap();

    // Step 1 of a rotation: the new key first (it signs), the old one still published.
    let during = signer(&["es256-b.pem", "es256-a.pem"]);
    api.verify(&during, &old_token)
        .expect("an assertion of the old key verifies with the new JWKS");
    let new_token = during.mint(&jane(), AUDIENCE, now()).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .unwrap()
            .kid
            .as_deref(),
        Some(during.keys()[0].kid()),
        "the first key signs"
    );
    api.verify(&during, &new_token)
        .expect("new assertions verify");

    // Step 2, after one ttl: the old key is removed and its assertions no longer verify.
    let after = signer(&["es256-b.pem"]);
    assert!(api
        .verify(&after, &old_token)
        .unwrap_err()
        .contains("no key"));
    api.verify(&after, &new_token).expect("still verifies");
}

#[test]
fn openssl_key_formats() {
    // PKCS#8 from OpenSSL loads (Ed25519 v1 without the public key included, too).
    assert_eq!(
        signer(&["ed25519.pem"]).keys()[0].algorithm(),
        SigningAlgorithm::EdDSA
    );
    let sec1 = std::fs::read_to_string(fixture("ec-sec1.pem").path()).unwrap();
    let e = SigningKey::from_pem(&sec1).unwrap_err().to_string();
    assert!(e.contains("openssl pkcs8 -topk8"), "{e}");
    let errs = AssertionSigner::from_conf(&AssertionConf {
        issuer: ISSUER.into(),
        signing_keys: vec![fixture("ec-sec1.pem")],
        ttl: Duration::from_secs(300),
        audience: None,
        algorithm: None,
    })
    .unwrap_err();
    assert_eq!(errs[0].path, "signing_keys[0]");
}
