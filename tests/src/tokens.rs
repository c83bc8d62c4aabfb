//! Bearer tokens for end-to-end tests: an ES256 key generated per issuer, its JWKS for a
//! `jwks_file`, and tokens signed with `jsonwebtoken` (independent of Warden's verifier).

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::Path;

/// The audience every test token carries (`audiences: [warden]` in test confs).
pub const AUDIENCE: &str = "warden";

/// A token issuer with a fresh P-256 key.
pub struct Issuer {
    /// The `iss` of its tokens.
    pub issuer: String,
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Issuer {
    pub fn new(issuer: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("generate a P-256 key");
        let encoding = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).expect("EC key");
        let kid = "test-es256".to_string();
        let mut jwk = serde_json::to_value(
            Jwk::from_encoding_key(&encoding, Algorithm::ES256).expect("public JWK"),
        )
        .expect("JWK as JSON");
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Self {
            issuer: issuer.into(),
            kid,
            encoding,
            jwk,
        }
    }

    /// The issuer's JWKS document.
    pub fn jwks(&self) -> String {
        json!({ "keys": [self.jwk.clone()] }).to_string()
    }

    /// Writes the JWKS where a conf's `jwks_file` points.
    pub fn write_jwks(&self, path: &Path) {
        std::fs::write(path, self.jwks()).expect("write the JWKS file");
    }

    /// Signs `claims` as they are.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }

    /// The claims of a valid token for `sub` (ten minutes), with email and groups.
    pub fn claims(&self, sub: &str, email: Option<&str>, groups: &[&str]) -> Value {
        let now = now();
        let mut c = json!({
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": sub,
            "groups": groups,
            "iat": now,
            "exp": now + 600,
        });
        if let Some(e) = email {
            c["email"] = json!(e);
        }
        c
    }

    /// A valid token for `sub` with email and groups.
    pub fn token(&self, sub: &str, email: Option<&str>, groups: &[&str]) -> String {
        self.sign(&self.claims(sub, email, groups))
    }
}

/// The admin token [`prepare`] writes for confs starting with [`CONF_HEAD`].
pub const ADMIN_TOKEN: &str = "admin-token-for-authz-tests-0123456789";

/// The start of a conf whose routes accept bearer tokens of issuer `ci`
/// (`https://tokens.test`, keys in `${DIR}/jwks.json`), with the admin API and the audit log
/// (`${DIR}/audit.log`); the caller appends `routes:`.
pub const CONF_HEAD: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}", token_file: "${DIR}/admin-token" }
audit: { target: "${DIR}/audit.log" }
identity:
  jwt_issuers:
    - { name: ci, issuer: "https://tokens.test", audiences: [warden], jwks_file: "${DIR}/jwks.json" }
"#;

/// Writes the issuer's JWKS and the admin token where [`CONF_HEAD`] expects them; returns
/// the issuer.
pub fn prepare(setup: &crate::warden::Setup) -> Issuer {
    let issuer = Issuer::new("https://tokens.test");
    issuer.write_jwks(&setup.path("jwks.json"));
    std::fs::write(setup.path("admin-token"), ADMIN_TOKEN).expect("write the admin token");
    issuer
}

/// Sends an admin API request with [`ADMIN_TOKEN`]; returns the status and the JSON body.
pub async fn admin(
    w: &crate::Warden,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = crate::client()
        .request(method.parse().expect("method"), w.admin_url(path))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("admin request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Replaces the conf with `template` (rendered) and reloads through the admin API.
pub async fn reload(w: &crate::Warden, template: &str, vars: &[(&str, String)]) {
    w.write_conf(&w.render(template, vars));
    let (status, body) = admin(w, "POST", "/admin/reload", None).await;
    assert_eq!(status, 200, "reload refused: {body}");
}
