//! `warden-loadtest tokens`: a signing key (ES256, or RS256 for comparisons with peers whose
//! figures are quoted for RS256), its JWKS and bearer tokens for load tests and the demo, so a
//! scenario needs no OpenID provider to exercise the bearer path.

use anyhow::{anyhow, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
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

/// A key tokens are signed with.
pub enum SigningKey {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

impl SigningKey {
    /// The key in `path` (PKCS#8 DER) for `alg` (`ES256`, created when absent; `RS256`, which
    /// must exist: ring cannot generate RSA keys, `openssl genpkey` can).
    pub fn load(alg: &str, path: &Path) -> anyhow::Result<Self> {
        match alg {
            "ES256" => Ok(Self::Es256(load_or_create_key(path)?)),
            "RS256" => {
                let der = std::fs::read(path).with_context(|| {
                    format!(
                        "cannot read {} (create it with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -outform DER -out FILE`)",
                        path.display()
                    )
                })?;
                let key = RsaKeyPair::from_pkcs8(&der)
                    .map_err(|e| anyhow!("{} is not a PKCS#8 RSA key: {e}", path.display()))?;
                Ok(Self::Rs256(key))
            }
            other => Err(anyhow!("unsupported algorithm `{other}`: ES256 or RS256")),
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            Self::Es256(_) => "ES256",
            Self::Rs256(_) => "RS256",
        }
    }

    fn sign(&self, input: &[u8]) -> anyhow::Result<Vec<u8>> {
        let rng = SystemRandom::new();
        match self {
            Self::Es256(k) => Ok(k
                .sign(&rng, input)
                .map_err(|_| anyhow!("signing failed"))?
                .as_ref()
                .to_vec()),
            Self::Rs256(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, input, &mut sig)
                    .map_err(|_| anyhow!("signing failed"))?;
                Ok(sig)
            }
        }
    }

    /// The public JWKS.
    pub fn jwks(&self, kid: &str) -> serde_json::Value {
        match self {
            Self::Es256(k) => jwks(k, kid),
            Self::Rs256(k) => {
                let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public());
                serde_json::json!({ "keys": [{
                    "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                    "n": B64.encode(&c.n), "e": B64.encode(&c.e),
                }]})
            }
        }
    }
}

/// The ES256 signing key in `path` (PKCS#8 DER), created there when absent.
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
pub fn mint(key: &SigningKey, spec: &TokenSpec, now: i64) -> anyhow::Result<String> {
    let header = B64
        .encode(serde_json::json!({ "alg": key.alg(), "typ": "JWT", "kid": spec.kid }).to_string());
    let mut out = String::new();
    for n in 0..spec.count {
        let sub = format!("{}{n}", spec.subject_prefix);
        let claims = serde_json::json!({
            "iss": spec.issuer, "aud": spec.audience, "sub": sub,
            "email": format!("{sub}@loadtest.test"), "groups": spec.groups,
            "iat": now, "nbf": now - 60, "exp": now + spec.ttl_secs,
        });
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        let sig = key.sign(input.as_bytes())?;
        let _ = writeln!(out, "{input}.{}", B64.encode(sig));
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
        let jwk = jwks(&key, "k1")["keys"][0].clone();
        let text = mint(&SigningKey::Es256(key), &spec, 1_700_000_000).unwrap();
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
