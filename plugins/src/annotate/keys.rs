//! Assertion signing keys: PKCS#8 PEM files (EC P-256 for ES256, Ed25519 for EdDSA) loaded
//! with `ring`, their public JWKs and RFC 7638 thumbprints (the `kid`).
//!
//! To make a key: `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out es256.pem`
//! (or `-algorithm ed25519`).

use super::conf::SigningAlgorithm;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// Why a key file cannot be used; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no `-----BEGIN PRIVATE KEY-----` block (a PKCS#8 PEM private key) found")]
    NotPem,
    #[error(
        "this is a SEC1 `EC PRIVATE KEY`; convert it to PKCS#8 with \
         `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pkcs8.pem`"
    )]
    Sec1,
    #[error("encrypted private keys are not supported; store the key unencrypted in a Secret")]
    Encrypted,
    #[error("the PEM block is not valid base64")]
    Base64,
    #[error("not an EC P-256 or Ed25519 PKCS#8 private key ({0})")]
    Unsupported(String),
    #[error("the system random number generator failed")]
    Random,
}

enum Pair {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// One signing key with its public half as a JWK.
pub struct SigningKey {
    pair: Pair,
    kid: String,
    jwk: serde_json::Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.algorithm())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn pem_block<'a>(pem: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = pem[start..].find(&end)? + start;
    Some(&pem[start..stop])
}

impl SigningKey {
    /// Reads a PKCS#8 PEM private key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
            return Err(KeyError::Sec1);
        }
        if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(KeyError::Encrypted);
        }
        let body = pem_block(pem, "PRIVATE KEY").ok_or(KeyError::NotPem)?;
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD.decode(b64).map_err(|_| KeyError::Base64)?;
        Self::from_pkcs8_der(&der)
    }

    /// Reads a PKCS#8 DER private key: EC P-256 or Ed25519.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let ec = match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
            Ok(k) => return Ok(Self::with_pair(Pair::Es256(k))),
            Err(e) => e,
        };
        match Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            Ok(k) => Ok(Self::with_pair(Pair::Ed25519(k))),
            Err(ed) => Err(KeyError::Unsupported(format!(
                "as EC P-256: {ec}; as Ed25519: {ed}"
            ))),
        }
    }

    /// A new random key.
    pub fn generate(alg: SigningAlgorithm) -> Result<Self, KeyError> {
        Self::from_pkcs8_der(&Self::generate_pkcs8_der(alg)?)
    }

    fn generate_pkcs8_der(alg: SigningAlgorithm) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        let doc = match alg {
            SigningAlgorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
            SigningAlgorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| KeyError::Random)?;
        Ok(doc.as_ref().to_vec())
    }

    /// A new random key as a PKCS#8 PEM file's contents (for tests and key tooling).
    pub fn generate_pkcs8_pem(alg: SigningAlgorithm) -> Result<String, KeyError> {
        let b64 = STANDARD.encode(Self::generate_pkcs8_der(alg)?);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok(pem)
    }

    fn with_pair(pair: Pair) -> Self {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        // The RFC 7638 thumbprint input: the required members, in lexicographic order, no
        // whitespace. Every value is base64url or a fixed name, so no escaping is needed.
        let (thumb_input, mut jwk) = match &pair {
            Pair::Es256(k) => {
                // An uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
                let p = k.public_key().as_ref();
                let (x, y) = (b64(&p[1..33]), b64(&p[33..65]));
                (
                    format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
                    serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                )
            }
            Pair::Ed25519(k) => {
                let x = b64(k.public_key().as_ref());
                (
                    format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
                    serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
                )
            }
        };
        let kid = b64(ring::digest::digest(&ring::digest::SHA256, thumb_input.as_bytes()).as_ref());
        let alg = match &pair {
            Pair::Es256(_) => SigningAlgorithm::ES256,
            Pair::Ed25519(_) => SigningAlgorithm::EdDSA,
        };
        if let Some(o) = jwk.as_object_mut() {
            o.insert("kid".into(), kid.clone().into());
            o.insert("use".into(), "sig".into());
            o.insert("alg".into(), alg.as_str().into());
        }
        Self { pair, kid, jwk }
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        match self.pair {
            Pair::Es256(_) => SigningAlgorithm::ES256,
            Pair::Ed25519(_) => SigningAlgorithm::EdDSA,
        }
    }

    /// The RFC 7638 JWK SHA-256 thumbprint, base64url: stable for a key wherever it is loaded.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (`kty`, `crv`, `x`, `y`, `kid`, `use`, `alg`).
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.jwk
    }

    /// The JWS signature of `msg` (ES256: the 64-byte `r || s` form JWS uses).
    pub(crate) fn sign(&self, rng: &SystemRandom, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Es256(k) => k
                .sign(rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Random),
            Pair::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thumbprint is checked against an independent implementation (jsonwebtoken) in
    /// `tests/annotate_assertion.rs`; here: it is stable for a key and differs between keys.
    #[test]
    fn kids_are_stable_and_distinct() {
        for alg in [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
            let pem = SigningKey::generate_pkcs8_pem(alg).unwrap();
            let a = SigningKey::from_pem(&pem).unwrap();
            let b = SigningKey::from_pem(&pem).unwrap();
            assert_eq!(a.kid(), b.kid());
            assert_eq!(a.algorithm(), alg);
            assert_eq!(a.kid().len(), 43, "base64url of 32 bytes");
            let c = SigningKey::generate(alg).unwrap();
            assert_ne!(a.kid(), c.kid());
            let jwk = a.public_jwk();
            assert_eq!(jwk["kid"], a.kid());
            assert_eq!(jwk["alg"], alg.as_str());
            assert_eq!(jwk["use"], "sig");
            assert!(jwk.get("d").is_none(), "never the private part");
        }
    }

    #[test]
    fn jwks_members_match_the_key_type() {
        let ec = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
        let j = ec.public_jwk();
        assert_eq!(
            (j["kty"].as_str(), j["crv"].as_str()),
            (Some("EC"), Some("P-256"))
        );
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(j["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(j["y"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        let ed = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let j = ed.public_jwk();
        assert_eq!(
            (j["kty"].as_str(), j["crv"].as_str()),
            (Some("OKP"), Some("Ed25519"))
        );
        assert!(j.get("y").is_none());
    }

    #[test]
    fn bad_key_files_say_what_to_do() {
        assert_eq!(SigningKey::from_pem("hello").unwrap_err(), KeyError::NotPem);
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n";
        let e = SigningKey::from_pem(sec1).unwrap_err();
        assert_eq!(e, KeyError::Sec1);
        assert!(e.to_string().contains("openssl pkcs8 -topk8"));
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----";
        assert_eq!(SigningKey::from_pem(enc).unwrap_err(), KeyError::Encrypted);
        let junk = "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----";
        assert_eq!(SigningKey::from_pem(junk).unwrap_err(), KeyError::Base64);
        let wrong = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----";
        assert!(matches!(
            SigningKey::from_pem(wrong),
            Err(KeyError::Unsupported(_))
        ));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let k = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
        let d = format!("{k:?}");
        assert!(d.contains(k.kid()) && d.contains("ES256") && !d.contains("pair"));
    }
}
