//! `warden-loadtest tokens`: an ES256 signing key, its JWKS and bearer tokens for load tests
//! and the demo, so a scenario needs no OpenID provider to exercise the bearer path.

use anyhow::{anyhow, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::fmt::Write as _;
use std::path::Path;

/// What to mint.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub issuer: String,
    pub audience: String,
    /// Subjects are `{subject_prefix}{n}` for n in 0..count.
    pub subject_prefix: String,
    pub groups: Vec<String>,
    pub count: usize,
    pub ttl_secs: i64,
    pub kid: String,
}

/// The signing key in `path` (PKCS#8 DER), created there when absent.
pub fn load_or_create_key(path: &Path) -> anyhow::Result<EcdsaKeyPair> {
    let rng = SystemRandom::new();
    let der = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| anyhow!("cannot generate a P-256 key"))?;
            std::fs::write(path, doc.as_ref())
                .with_context(|| format!("cannot write {}", path.display()))?;
            doc.as_ref().to_vec()
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
        .map_err(|_| anyhow!("{} is not a PKCS#8 P-256 key", path.display()))
}

/// The public JWKS of `key`.
pub fn jwks(key: &EcdsaKeyPair, kid: &str) -> serde_json::Value {
    // An uncompressed P-256 point: 0x04, then x and y, 32 bytes each.
    let point = key.public_key().as_ref();
    serde_json::json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
    }]})
}

/// `spec.count` signed tokens, one per line, issued at `now`.
pub fn mint(key: &EcdsaKeyPair, spec: &TokenSpec, now: i64) -> anyhow::Result<String> {
    let rng = SystemRandom::new();
    let header = B64
        .encode(serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": spec.kid }).to_string());
    let mut out = String::new();
    for n in 0..spec.count {
        let sub = format!("{}{n}", spec.subject_prefix);
        let claims = serde_json::json!({
            "iss": spec.issuer, "aud": spec.audience, "sub": sub,
            "email": format!("{sub}@loadtest.test"), "groups": spec.groups,
            "iat": now, "nbf": now - 60, "exp": now + spec.ttl_secs,
        });
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        let sig = key
            .sign(&rng, input.as_bytes())
            .map_err(|_| anyhow!("signing failed"))?;
        let _ = writeln!(out, "{input}.{}", B64.encode(sig.as_ref()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_against_the_published_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create_key(&dir.path().join("k.der")).unwrap();
        let again = load_or_create_key(&dir.path().join("k.der")).unwrap();
        assert_eq!(key.public_key().as_ref(), again.public_key().as_ref());
        let spec = TokenSpec {
            issuer: "https://iss.test".into(),
            audience: "warden".into(),
            subject_prefix: "user-".into(),
            groups: vec!["dev".into()],
            count: 3,
            ttl_secs: 3600,
            kid: "k1".into(),
        };
        let text = mint(&key, &spec, 1_700_000_000).unwrap();
        let jwk = &jwks(&key, "k1")["keys"][0];
        let x = B64.decode(jwk["x"].as_str().unwrap()).unwrap();
        let y = B64.decode(jwk["y"].as_str().unwrap()).unwrap();
        let public = [&[4u8][..], &x, &y].concat();
        let verifier = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            public,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        for (n, t) in lines.iter().enumerate() {
            let (input, sig) = t.rsplit_once('.').unwrap();
            verifier
                .verify(input.as_bytes(), &B64.decode(sig).unwrap())
                .expect("signature verifies");
            let claims: serde_json::Value =
                serde_json::from_slice(&B64.decode(input.split('.').nth(1).unwrap()).unwrap())
                    .unwrap();
            assert_eq!(claims["sub"], format!("user-{n}"));
            assert_eq!(claims["exp"], 1_700_003_600);
        }
    }
}
