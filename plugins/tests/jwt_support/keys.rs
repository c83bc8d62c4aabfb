//! Test keys from the committed fixtures, their public JWKs, and token signing with
//! `jsonwebtoken` (an implementation independent of Warden's verifier).

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/");

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{name}")).unwrap()
}

/// A private key, its algorithm, and its public JWK (with `kid`, `use: sig` and `alg`).
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

impl TestKey {
    pub fn load(file: &str, alg: Algorithm, kid: &str) -> Self {
        let pem = fixture(file);
        let encoding = match alg {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 => {
                EncodingKey::from_rsa_pem(&pem).unwrap()
            }
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem).unwrap(),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
            other => panic!("no test key for {other:?}"),
        };
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).unwrap()).unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Self {
            kid: kid.to_string(),
            alg,
            encoding,
            jwk,
        }
    }

    pub fn rsa_a() -> Self {
        Self::load("rsa2048-a.pem", Algorithm::RS256, "rsa-a")
    }

    pub fn rsa_b() -> Self {
        Self::load("rsa2048-b.pem", Algorithm::RS256, "rsa-b")
    }

    pub fn ec_p256() -> Self {
        Self::load("ec-p256.pem", Algorithm::ES256, "ec-p256")
    }

    pub fn ed25519() -> Self {
        Self::load("ed25519.pem", Algorithm::EdDSA, "ed25519")
    }

    /// The same key under another kid and algorithm (e.g. PS256 with an RSA key).
    pub fn with(mut self, alg: Algorithm, kid: &str) -> Self {
        self.alg = alg;
        self.kid = kid.to_string();
        self.jwk["kid"] = json!(kid);
        self.jwk["alg"] = json!(format!("{alg:?}"));
        self
    }

    pub fn header(&self) -> Header {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        h
    }

    pub fn sign(&self, claims: &Value) -> String {
        sign_with(&self.header(), &self.encoding, claims)
    }
}

pub fn sign_with(header: &Header, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(header, claims, key).unwrap()
}

/// A JWKS document of these keys.
pub fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

/// Claims a `warden`-audience token of `issuer` carries, valid around `now`.
pub fn claims(issuer: &str, now: i64) -> Value {
    json!({
        "iss": issuer,
        "aud": "warden",
        "sub": "workload-1",
        "email": "ci@example.com",
        "groups": ["deployers", "ci"],
        "iat": now,
        "exp": now + 300,
    })
}
