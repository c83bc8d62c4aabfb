//! JSON Web Keys (RFC 7517) parsed once into verifier-ready public keys, and key sets.
//!
//! Each key is bound to its family at parse time (RSA, P-256, P-384, Ed25519): an RSA key can
//! only ever verify RS*/PS* signatures, so key confusion (an RSA key used as an HMAC secret)
//! cannot be expressed.

use super::algorithm::Algorithm;
use super::error::BearerError;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine as _};
use ring::signature::{self as sig, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use std::fmt;

/// RSA keys below this size are refused (NIST SP 800-131A; ring's minimum too).
pub const RSA_MIN_BITS: usize = 2048;
/// ring verifies RSA keys up to 8192 bits.
pub const RSA_MAX_BITS: usize = 8192;

/// JWK members are base64url; tolerate padding there (some issuers emit it), unlike in tokens.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why one JWK cannot be used to verify signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    #[error("not a JSON object with the JWK members kty, kid, alg, use, n, e, crv, x, y")]
    NotAJwk,
    #[error("key type `{0}` is not supported (use RSA, EC or OKP)")]
    UnsupportedKeyType(String),
    #[error("key is for `use: {0}`, not `sig`")]
    NotForSignatures(String),
    #[error("key_ops does not include `verify`")]
    NoVerifyOperation,
    #[error("key algorithm `{0}` is not one Warden verifies")]
    UnsupportedAlgorithm(String),
    #[error("key algorithm {alg} does not fit a {family} key")]
    AlgorithmMismatch {
        alg: Algorithm,
        family: &'static str,
    },
    #[error("member `{0}` is missing")]
    MissingMember(&'static str),
    #[error("member `{0}` is not base64url")]
    BadBase64(&'static str),
    #[error("RSA modulus of {bits} bits is too small (at least {RSA_MIN_BITS} bits required)")]
    RsaTooSmall { bits: usize },
    #[error("RSA modulus of {bits} bits is too large (at most {RSA_MAX_BITS} bits supported)")]
    RsaTooLarge { bits: usize },
    #[error("RSA public exponent must be odd, at least 3 and at most 2^33 - 1")]
    BadExponent,
    #[error("curve `{0}` is not supported (use P-256, P-384 or Ed25519)")]
    UnsupportedCurve(String),
    #[error("coordinate `{0}` has the wrong length for the curve")]
    BadCoordinate(&'static str),
}

/// Why a JWKS document cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("the JWKS is not JSON of the form {{\"keys\": [...]}}: {0}")]
    NotAJwks(String),
    #[error("the JWKS holds no key usable for signature verification{}", describe_skipped(.0))]
    NoUsableKeys(Vec<SkippedKey>),
}

fn describe_skipped(skipped: &[SkippedKey]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = skipped.iter().map(ToString::to_string).collect();
    format!(" ({})", parts.join("; "))
}

/// A key of a JWKS that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    pub kid: Option<String>,
    pub reason: JwkError,
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "key `{kid}`: {}", self.reason),
            None => write!(f, "key without kid: {}", self.reason),
        }
    }
}

/// The public numbers of a key, ready for ring.
#[derive(Clone, PartialEq, Eq)]
enum Material {
    /// Big-endian modulus and exponent without leading zeros.
    Rsa {
        n: Box<[u8]>,
        e: Box<[u8]>,
    },
    /// Uncompressed SEC1 point `04 || x || y`.
    P256(Box<[u8]>),
    P384(Box<[u8]>),
    Ed25519(Box<[u8]>),
}

impl Material {
    fn family(&self) -> &'static str {
        match self {
            Material::Rsa { .. } => "RSA",
            Material::P256(_) => "EC P-256",
            Material::P384(_) => "EC P-384",
            Material::Ed25519(_) => "Ed25519",
        }
    }

    fn fits(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (
                Material::Rsa { .. },
                RS256 | RS384 | RS512 | PS256 | PS384 | PS512
            ) | (Material::P256(_), ES256)
                | (Material::P384(_), ES384)
                | (Material::Ed25519(_), EdDSA)
        )
    }
}

/// One public key, parsed and checked, that verifies signatures of its family.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<Box<str>>,
    /// The JWK's `alg`, when it pins one.
    alg: Option<Algorithm>,
    material: Material,
    /// Identifies the key material (with kid and alg) across fetches: cached tokens remember
    /// which key verified them, so they can be dropped when that key leaves the set.
    fingerprint: u64,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("family", &self.material.family())
            .finish()
    }
}

#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

fn member<'a>(v: &'a Option<String>, name: &'static str) -> Result<&'a str, JwkError> {
    v.as_deref().ok_or(JwkError::MissingMember(name))
}

fn decode(v: &Option<String>, name: &'static str) -> Result<Vec<u8>, JwkError> {
    JWK_B64
        .decode(member(v, name)?)
        .map_err(|_| JwkError::BadBase64(name))
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

fn bit_len(be: &[u8]) -> usize {
    match be.first() {
        Some(&first) => (be.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

fn parse_rsa(raw: &RawJwk) -> Result<Material, JwkError> {
    let n = decode(&raw.n, "n")?;
    let e = decode(&raw.e, "e")?;
    let n = strip_leading_zeros(&n);
    let e = strip_leading_zeros(&e);
    let bits = bit_len(n);
    if bits < RSA_MIN_BITS {
        return Err(JwkError::RsaTooSmall { bits });
    }
    if bits > RSA_MAX_BITS {
        return Err(JwkError::RsaTooLarge { bits });
    }
    let e_value = if e.len() <= 8 {
        e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    } else {
        u64::MAX
    };
    if e_value < 3 || e_value % 2 == 0 || e_value > (1 << 33) - 1 {
        return Err(JwkError::BadExponent);
    }
    Ok(Material::Rsa {
        n: n.into(),
        e: e.into(),
    })
}

fn parse_ec(raw: &RawJwk) -> Result<Material, JwkError> {
    let crv = member(&raw.crv, "crv")?;
    let len = match crv {
        "P-256" => 32,
        "P-384" => 48,
        other => return Err(JwkError::UnsupportedCurve(other.to_string())),
    };
    let x = decode(&raw.x, "x")?;
    let y = decode(&raw.y, "y")?;
    if x.len() != len {
        return Err(JwkError::BadCoordinate("x"));
    }
    if y.len() != len {
        return Err(JwkError::BadCoordinate("y"));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(if len == 32 {
        Material::P256(point.into())
    } else {
        Material::P384(point.into())
    })
}

fn parse_okp(raw: &RawJwk) -> Result<Material, JwkError> {
    let crv = member(&raw.crv, "crv")?;
    if crv != "Ed25519" {
        return Err(JwkError::UnsupportedCurve(crv.to_string()));
    }
    let x = decode(&raw.x, "x")?;
    if x.len() != 32 {
        return Err(JwkError::BadCoordinate("x"));
    }
    Ok(Material::Ed25519(x.into()))
}

fn fingerprint(material: &Material, kid: Option<&str>, alg: Option<Algorithm>) -> u64 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut part = |tag: u8, bytes: &[u8]| {
        ctx.update(&[tag]);
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    };
    match material {
        Material::Rsa { n, e } => {
            part(1, n);
            part(2, e);
        }
        Material::P256(p) => part(3, p),
        Material::P384(p) => part(4, p),
        Material::Ed25519(x) => part(5, x),
    }
    part(6, kid.unwrap_or_default().as_bytes());
    part(7, alg.map(Algorithm::name).unwrap_or_default().as_bytes());
    let digest = ctx.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

impl VerifyingKey {
    /// Parses one JWK. Keys for encryption, of unsupported types or curves, RSA keys under
    /// 2048 bits, and keys whose `alg` does not fit their type are refused.
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<Self, JwkError> {
        let raw = RawJwk::deserialize(jwk).map_err(|_| JwkError::NotAJwk)?;
        if let Some(u) = &raw.use_ {
            if u != "sig" {
                return Err(JwkError::NotForSignatures(u.clone()));
            }
        }
        if let Some(ops) = &raw.key_ops {
            if !ops.iter().any(|o| o == "verify") {
                return Err(JwkError::NoVerifyOperation);
            }
        }
        let alg = match &raw.alg {
            None => None,
            Some(a) => Some(
                Algorithm::from_name(a).ok_or_else(|| JwkError::UnsupportedAlgorithm(a.clone()))?,
            ),
        };
        let material = match member(&raw.kty, "kty")? {
            "RSA" => parse_rsa(&raw)?,
            "EC" => parse_ec(&raw)?,
            "OKP" => parse_okp(&raw)?,
            other => return Err(JwkError::UnsupportedKeyType(other.to_string())),
        };
        if let Some(alg) = alg {
            if !material.fits(alg) {
                return Err(JwkError::AlgorithmMismatch {
                    alg,
                    family: material.family(),
                });
            }
        }
        let fingerprint = fingerprint(&material, raw.kid.as_deref(), alg);
        Ok(Self {
            kid: raw.kid.map(Into::into),
            alg,
            material,
            fingerprint,
        })
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether this key may verify a signature made with `alg`.
    pub fn supports(&self, alg: Algorithm) -> bool {
        self.material.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Checks `signature` over `message`. The caller has checked `supports(alg)`.
    pub(crate) fn verify(
        &self,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), BearerError> {
        use Algorithm::*;
        let rsa = |params: &sig::RsaParameters, n: &[u8], e: &[u8]| {
            RsaPublicKeyComponents { n, e }.verify(params, message, signature)
        };
        let outcome = match (&self.material, alg) {
            (Material::Rsa { n, e }, RS256) => rsa(&sig::RSA_PKCS1_2048_8192_SHA256, n, e),
            (Material::Rsa { n, e }, RS384) => rsa(&sig::RSA_PKCS1_2048_8192_SHA384, n, e),
            (Material::Rsa { n, e }, RS512) => rsa(&sig::RSA_PKCS1_2048_8192_SHA512, n, e),
            (Material::Rsa { n, e }, PS256) => rsa(&sig::RSA_PSS_2048_8192_SHA256, n, e),
            (Material::Rsa { n, e }, PS384) => rsa(&sig::RSA_PSS_2048_8192_SHA384, n, e),
            (Material::Rsa { n, e }, PS512) => rsa(&sig::RSA_PSS_2048_8192_SHA512, n, e),
            (Material::P256(p), ES256) => {
                UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, p).verify(message, signature)
            }
            (Material::P384(p), ES384) => {
                UnparsedPublicKey::new(&sig::ECDSA_P384_SHA384_FIXED, p).verify(message, signature)
            }
            (Material::Ed25519(x), EdDSA) => {
                UnparsedPublicKey::new(&sig::ED25519, x).verify(message, signature)
            }
            _ => return Err(BearerError::UnknownKey),
        };
        outcome.map_err(|_| BearerError::BadSignature)
    }
}

/// The keys of one issuer (or OIDC provider), parsed from its JWKS.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    skipped: Vec<SkippedKey>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        Self {
            keys,
            skipped: Vec::new(),
        }
    }

    /// Parses a JWKS document (`{"keys": [...]}`). Keys Warden cannot use (encryption keys,
    /// unsupported types, weak RSA) are skipped and listed in [`KeySet::skipped`]; a document
    /// with no usable key at all is an error.
    pub fn from_jwks_json(bytes: &[u8]) -> Result<Self, JwksError> {
        let raw: RawJwks =
            serde_json::from_slice(bytes).map_err(|e| JwksError::NotAJwks(e.to_string()))?;
        let mut set = KeySet::default();
        for jwk in &raw.keys {
            match VerifyingKey::from_jwk(jwk) {
                Ok(k) => set.keys.push(k),
                Err(reason) => set.skipped.push(SkippedKey {
                    kid: jwk.get("kid").and_then(|k| k.as_str()).map(str::to_string),
                    reason,
                }),
            }
        }
        if set.keys.is_empty() {
            return Err(JwksError::NoUsableKeys(set.skipped));
        }
        Ok(set)
    }

    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// The keys of the document that were left out, and why.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key that verifies a token with header `kid` and `alg`: the key with that kid, or,
    /// when the token names none, the only key that fits the algorithm.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<&VerifyingKey, BearerError> {
        let mut fitting = self.keys.iter().filter(|k| k.supports(alg));
        match kid {
            Some(kid) => fitting
                .find(|k| k.kid() == Some(kid))
                .ok_or(BearerError::UnknownKey),
            None => match (fitting.next(), fitting.next()) {
                (Some(only), None) => Ok(only),
                _ => Err(BearerError::UnknownKey),
            },
        }
    }

    pub(crate) fn contains_fingerprint(&self, fingerprint: u64) -> bool {
        self.keys.iter().any(|k| k.fingerprint == fingerprint)
    }

    /// Whether both sets hold the same keys (in any order).
    pub(crate) fn same_keys(&self, other: &KeySet) -> bool {
        self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .all(|k| other.contains_fingerprint(k.fingerprint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa_jwk(bits: usize) -> serde_json::Value {
        let mut n = vec![0xC5u8; bits / 8];
        n[0] = 0x80 | 0x45;
        json!({"kty": "RSA", "kid": "r", "n": b64(&n), "e": "AQAB"})
    }

    fn ec_jwk(crv: &str, len: usize) -> serde_json::Value {
        json!({"kty": "EC", "kid": "e", "crv": crv, "x": b64(&vec![1; len]), "y": b64(&vec![2; len])})
    }

    #[test]
    fn rsa_2048_parses_and_fits_only_rsa_algorithms() {
        let k = VerifyingKey::from_jwk(&rsa_jwk(2048)).unwrap();
        assert_eq!(k.kid(), Some("r"));
        for a in Algorithm::ALL {
            let rsa = a.name().starts_with("RS") || a.name().starts_with("PS");
            assert_eq!(k.supports(a), rsa, "{a}");
        }
    }

    #[test]
    fn rsa_1024_is_refused() {
        assert_eq!(
            VerifyingKey::from_jwk(&rsa_jwk(1024)).unwrap_err(),
            JwkError::RsaTooSmall { bits: 1024 }
        );
        // Leading zero bytes do not make a small modulus larger.
        let mut n = vec![0u8; 256];
        n[255] = 0xFF;
        let padded = json!({"kty": "RSA", "n": b64(&n), "e": "AQAB"});
        assert_eq!(
            VerifyingKey::from_jwk(&padded).unwrap_err(),
            JwkError::RsaTooSmall { bits: 8 }
        );
    }

    #[test]
    fn rsa_bad_exponents_are_refused() {
        for e in [
            b64(&[1]),
            b64(&[2]),
            b64(&[0x01, 0x00, 0x00]),
            b64(&[0xFF; 9]),
        ] {
            let mut jwk = rsa_jwk(2048);
            jwk["e"] = json!(e);
            assert_eq!(
                VerifyingKey::from_jwk(&jwk).unwrap_err(),
                JwkError::BadExponent
            );
        }
    }

    #[test]
    fn rsa_over_8192_bits_is_refused() {
        assert_eq!(
            VerifyingKey::from_jwk(&rsa_jwk(8200)).unwrap_err(),
            JwkError::RsaTooLarge { bits: 8200 }
        );
    }

    #[test]
    fn ec_keys_bind_to_their_curve() {
        let p256 = VerifyingKey::from_jwk(&ec_jwk("P-256", 32)).unwrap();
        assert!(p256.supports(Algorithm::ES256) && !p256.supports(Algorithm::ES384));
        let p384 = VerifyingKey::from_jwk(&ec_jwk("P-384", 48)).unwrap();
        assert!(p384.supports(Algorithm::ES384) && !p384.supports(Algorithm::ES256));
        assert_eq!(
            VerifyingKey::from_jwk(&ec_jwk("P-256", 31)).unwrap_err(),
            JwkError::BadCoordinate("x")
        );
        assert_eq!(
            VerifyingKey::from_jwk(&ec_jwk("P-521", 66)).unwrap_err(),
            JwkError::UnsupportedCurve("P-521".into())
        );
        let mut no_y = ec_jwk("P-256", 32);
        no_y.as_object_mut().unwrap().remove("y");
        assert_eq!(
            VerifyingKey::from_jwk(&no_y).unwrap_err(),
            JwkError::MissingMember("y")
        );
    }

    #[test]
    fn ed25519_keys_parse_and_ed448_is_refused() {
        let k =
            VerifyingKey::from_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 32])}))
                .unwrap();
        assert!(k.supports(Algorithm::EdDSA) && !k.supports(Algorithm::ES256));
        assert_eq!(
            VerifyingKey::from_jwk(&json!({"kty": "OKP", "crv": "Ed448", "x": b64(&[7; 57])}))
                .unwrap_err(),
            JwkError::UnsupportedCurve("Ed448".into())
        );
    }

    #[test]
    fn symmetric_and_unknown_key_types_are_refused() {
        assert_eq!(
            VerifyingKey::from_jwk(&json!({"kty": "oct", "k": "c2VjcmV0"})).unwrap_err(),
            JwkError::UnsupportedKeyType("oct".into())
        );
        assert_eq!(
            VerifyingKey::from_jwk(&json!(["not", "an", "object"])).unwrap_err(),
            JwkError::NotAJwk
        );
    }

    #[test]
    fn use_key_ops_and_alg_must_allow_signature_verification() {
        let mut enc = rsa_jwk(2048);
        enc["use"] = json!("enc");
        assert_eq!(
            VerifyingKey::from_jwk(&enc).unwrap_err(),
            JwkError::NotForSignatures("enc".into())
        );
        let mut ops = rsa_jwk(2048);
        ops["key_ops"] = json!(["encrypt"]);
        assert_eq!(
            VerifyingKey::from_jwk(&ops).unwrap_err(),
            JwkError::NoVerifyOperation
        );
        let mut hs = rsa_jwk(2048);
        hs["alg"] = json!("HS256");
        assert_eq!(
            VerifyingKey::from_jwk(&hs).unwrap_err(),
            JwkError::UnsupportedAlgorithm("HS256".into())
        );
        let mut es = rsa_jwk(2048);
        es["alg"] = json!("ES256");
        assert!(matches!(
            VerifyingKey::from_jwk(&es).unwrap_err(),
            JwkError::AlgorithmMismatch { .. }
        ));
        // A pinned alg narrows the key to that algorithm.
        let mut ps = rsa_jwk(2048);
        ps["alg"] = json!("PS256");
        ps["use"] = json!("sig");
        let k = VerifyingKey::from_jwk(&ps).unwrap();
        assert!(k.supports(Algorithm::PS256) && !k.supports(Algorithm::RS256));
    }

    #[test]
    fn jwks_skips_unusable_keys_and_requires_one_usable() {
        let doc = json!({"keys": [rsa_jwk(1024), ec_jwk("P-256", 32), {"kty": "oct"}]});
        let set = KeySet::from_jwks_json(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.skipped().len(), 2);
        assert_eq!(set.skipped()[0].kid.as_deref(), Some("r"));

        let none = json!({"keys": [rsa_jwk(1024)]});
        match KeySet::from_jwks_json(none.to_string().as_bytes()) {
            Err(e @ JwksError::NoUsableKeys(_)) => {
                assert!(e.to_string().contains("too small"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            KeySet::from_jwks_json(b"{\"nokeys\": 1}"),
            Err(JwksError::NotAJwks(_))
        ));
    }

    #[test]
    fn find_uses_kid_or_the_only_fitting_key() {
        let mut second_rsa = rsa_jwk(2048);
        second_rsa["kid"] = json!("r2");
        let doc = json!({"keys": [rsa_jwk(2048), ec_jwk("P-256", 32), second_rsa]});
        let set = KeySet::from_jwks_json(doc.to_string().as_bytes()).unwrap();
        assert_eq!(
            set.find(Some("r2"), Algorithm::RS256).unwrap().kid(),
            Some("r2")
        );
        // A kid naming a key of another family is no match.
        assert_eq!(
            set.find(Some("e"), Algorithm::RS256).unwrap_err(),
            BearerError::UnknownKey
        );
        assert_eq!(set.find(None, Algorithm::ES256).unwrap().kid(), Some("e"));
        // Two RSA keys: without a kid the choice would be a guess.
        assert_eq!(
            set.find(None, Algorithm::RS256).unwrap_err(),
            BearerError::UnknownKey
        );
        assert_eq!(
            set.find(Some("missing"), Algorithm::ES256).unwrap_err(),
            BearerError::UnknownKey
        );
    }

    #[test]
    fn fingerprints_follow_material_and_kid() {
        let a = VerifyingKey::from_jwk(&rsa_jwk(2048)).unwrap();
        let b = VerifyingKey::from_jwk(&rsa_jwk(2048)).unwrap();
        let mut renamed = rsa_jwk(2048);
        renamed["kid"] = json!("other");
        let c = VerifyingKey::from_jwk(&renamed).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        let s1 = KeySet::new(vec![a.clone(), c.clone()]);
        let s2 = KeySet::new(vec![c, b]);
        assert!(s1.same_keys(&s2));
        assert!(!s1.same_keys(&KeySet::new(vec![a])));
    }
}
