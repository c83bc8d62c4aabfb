//! Signed cookie values: the session cookie (a session id and its HMAC tag) and sealed values
//! (a payload with an expiry and an HMAC tag: the OIDC login-state cookie). Signed, not
//! encrypted: sealed payloads must hold nothing the browser may not read.
//!
//! Keys are derived per purpose from one secret, so a value signed for one purpose is refused
//! for any other.

use super::{SessionId, SESSION_ID_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use std::fmt;
use std::path::{Path, PathBuf};

/// The purposes Warden signs cookies for; each gets its own key.
pub mod purpose {
    /// The session cookie.
    pub const SESSION: &str = "session";
    /// The OIDC login-state cookie (state, nonce, PKCE verifier, return URL).
    pub const LOGIN_STATE: &str = "login_state";
}

/// Characters of a base64url (unpadded) encoding of 32 bytes.
const B64_32_LEN: usize = 43;
/// Length of an encoded session cookie value: id, `.`, tag.
pub const SESSION_VALUE_LEN: usize = 2 * B64_32_LEN + 1;
/// Longest sealed value `open` considers (browsers cap a cookie near 4 KiB).
pub const MAX_SEALED_LEN: usize = 4096;

/// Domain separation between key derivation and the two value formats.
const KEY_DERIVATION_LABEL: &[u8] = b"warden cookie key v1\0";
const SESSION_TAG_PREFIX: u8 = b'i';
const SEALED_TAG_PREFIX: u8 = b's';

/// Why a cookie value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    #[error("the cookie value is not in Warden's format")]
    Malformed,
    #[error("the cookie's signature does not match (altered, or signed with another secret or for another purpose)")]
    BadSignature,
    #[error("the cookie has expired")]
    Expired,
}

/// The cookie secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CookieKeyError {
    #[error(
        "the cookie secret has {len} bytes; at least {min} are needed \
         (create one with `head -c 48 /dev/urandom | base64 > FILE`)",
        min = CookieSecret::MIN_LEN
    )]
    TooShort { len: usize },
    #[error("cannot read the cookie secret file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The root secret cookie keys are derived from (`identity.cookie.secret_file`). Every replica
/// must load the same secret to accept each other's cookies.
pub struct CookieSecret(hmac::Key);

impl fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieSecret(***)")
    }
}

impl CookieSecret {
    /// Fewest secret bytes accepted.
    pub const MIN_LEN: usize = 32;

    pub fn new(secret: &[u8]) -> Result<Self, CookieKeyError> {
        if secret.len() < Self::MIN_LEN {
            return Err(CookieKeyError::TooShort { len: secret.len() });
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }

    /// Reads the secret from `path`. Trailing whitespace (the newline editors and `echo` add)
    /// is not part of the secret.
    pub fn from_file(path: &Path) -> Result<Self, CookieKeyError> {
        let bytes = std::fs::read(path).map_err(|source| CookieKeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::new(bytes.trim_ascii_end())
    }

    /// The key for one purpose: HMAC-SHA256(secret, label ‖ purpose).
    pub fn key(&self, purpose: &str) -> CookieKey {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(KEY_DERIVATION_LABEL);
        ctx.update(purpose.as_bytes());
        CookieKey(hmac::Key::new(hmac::HMAC_SHA256, ctx.sign().as_ref()))
    }
}

/// A key for one purpose. Session values: [`CookieKey::encode`] / [`CookieKey::decode`];
/// sealed values: [`CookieKey::seal`] / [`CookieKey::open`].
pub struct CookieKey(hmac::Key);

impl fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieKey(***)")
    }
}

impl CookieKey {
    /// The session cookie value: `base64url(id) "." base64url(HMAC tag)`.
    pub fn encode(&self, id: &SessionId) -> String {
        let tag = hmac::sign(&self.0, &session_tag_input(id));
        let mut out = String::with_capacity(SESSION_VALUE_LEN);
        URL_SAFE_NO_PAD.encode_string(id.as_bytes(), &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut out);
        out
    }

    /// The session id in a session cookie value, once its shape and tag are checked (the tag
    /// in constant time).
    pub fn decode(&self, value: &str) -> Result<SessionId, CookieError> {
        let id = parse_unverified(value)?;
        let tag = decode_32(&value[B64_32_LEN + 1..])?;
        hmac::verify(&self.0, &session_tag_input(&id), &tag)
            .map_err(|_| CookieError::BadSignature)?;
        Ok(id)
    }

    /// Checks a session cookie value's shape and tag.
    pub fn verify(&self, value: &str) -> Result<(), CookieError> {
        self.decode(value).map(drop)
    }

    /// A signed value carrying `payload` until `expires_at` (Unix seconds):
    /// `base64url(payload) "." expires_at "." base64url(HMAC tag)`.
    pub fn seal(&self, payload: &[u8], expires_at: i64) -> String {
        let mut out = URL_SAFE_NO_PAD.encode(payload);
        out.push('.');
        out.push_str(&expires_at.to_string());
        let tag = hmac::sign(&self.0, &sealed_tag_input(&out));
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut out);
        out
    }

    /// The payload of a value sealed with this key, if its tag matches and it has not expired
    /// at `now` (valid strictly before `expires_at`).
    pub fn open(&self, value: &str, now: i64) -> Result<Vec<u8>, CookieError> {
        if value.len() > MAX_SEALED_LEN {
            return Err(CookieError::Malformed);
        }
        let (signed, tag) = value.rsplit_once('.').ok_or(CookieError::Malformed)?;
        let (payload, expires_at) = signed.rsplit_once('.').ok_or(CookieError::Malformed)?;
        if expires_at.is_empty() || !expires_at.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CookieError::Malformed);
        }
        let tag = decode_32(tag)?;
        hmac::verify(&self.0, &sealed_tag_input(signed), &tag)
            .map_err(|_| CookieError::BadSignature)?;
        let expires_at: i64 = expires_at.parse().map_err(|_| CookieError::Malformed)?;
        if now >= expires_at {
            return Err(CookieError::Expired);
        }
        URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| CookieError::Malformed)
    }
}

/// The session id in a session cookie value, checking only its shape — for the hot path, where
/// finding a 256-bit random id in the store is proof enough; on a store miss, call
/// [`CookieKey::decode`] before going further.
pub fn parse_unverified(value: &str) -> Result<SessionId, CookieError> {
    if value.len() != SESSION_VALUE_LEN || value.as_bytes()[B64_32_LEN] != b'.' {
        return Err(CookieError::Malformed);
    }
    decode_32(&value[..B64_32_LEN]).map(SessionId::from_bytes)
}

/// Decodes exactly 32 bytes of canonical base64url without allocating.
fn decode_32(s: &str) -> Result<[u8; 32], CookieError> {
    if s.len() != B64_32_LEN {
        return Err(CookieError::Malformed);
    }
    let mut out = [0u8; 32];
    match URL_SAFE_NO_PAD.decode_slice(s, &mut out) {
        Ok(32) => Ok(out),
        _ => Err(CookieError::Malformed),
    }
}

fn session_tag_input(id: &SessionId) -> [u8; SESSION_ID_LEN + 1] {
    let mut input = [0u8; SESSION_ID_LEN + 1];
    input[0] = SESSION_TAG_PREFIX;
    input[1..].copy_from_slice(id.as_bytes());
    input
}

fn sealed_tag_input(signed: &str) -> Vec<u8> {
    let mut input = Vec::with_capacity(signed.len() + 1);
    input.push(SEALED_TAG_PREFIX);
    input.extend_from_slice(signed.as_bytes());
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

    fn key(purpose: &str) -> CookieKey {
        CookieSecret::new(SECRET).unwrap().key(purpose)
    }

    #[test]
    fn session_cookie_roundtrips() {
        let k = key(purpose::SESSION);
        let id = SessionId::generate().unwrap();
        let v = k.encode(&id);
        assert_eq!(v.len(), SESSION_VALUE_LEN);
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'));
        assert_eq!(k.decode(&v), Ok(id));
        assert_eq!(k.verify(&v), Ok(()));
        assert_eq!(parse_unverified(&v), Ok(id));
        // Deterministic: the same id encodes the same way (replicas agree).
        assert_eq!(k.encode(&id), v);
    }

    #[test]
    fn tampered_forged_or_foreign_session_cookies_are_refused() {
        let k = key(purpose::SESSION);
        let id = SessionId::from_bytes([9; 32]);
        let v = k.encode(&id);

        // One character of the id changed: the tag no longer matches.
        let mut chars: Vec<char> = v.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        let altered: String = chars.iter().collect();
        assert_eq!(k.decode(&altered), Err(CookieError::BadSignature));

        // An id with a tag made up by the client.
        let forged = format!("{}.{}", &v[..43], URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert_eq!(k.decode(&forged), Err(CookieError::BadSignature));

        // Signed with another secret, or for another purpose.
        let other = CookieSecret::new(&[7u8; 32]).unwrap().key(purpose::SESSION);
        assert_eq!(k.decode(&other.encode(&id)), Err(CookieError::BadSignature));
        let state = key(purpose::LOGIN_STATE);
        assert_eq!(k.decode(&state.encode(&id)), Err(CookieError::BadSignature));
    }

    #[test]
    fn malformed_session_cookies_are_refused_before_any_crypto() {
        let k = key(purpose::SESSION);
        let v = k.encode(&SessionId::from_bytes([1; 32]));
        let cases = [
            String::new(),
            "abc".into(),
            v.replace('.', "-"),
            format!("{v}x"),
            v[..v.len() - 1].to_string(),
            format!("{}={}", &v[..43], &v[44..]),
            format!("{}+{}", &v[..42], &v[43..]),
            // 43 chars whose final character carries bits outside the 32 bytes.
            format!("{}B{}", &v[..42], &v[43..]),
        ];
        for c in &cases {
            assert_eq!(parse_unverified(c), Err(CookieError::Malformed), "{c:?}");
            assert!(k.decode(c).is_err(), "{c:?}");
        }
    }

    #[test]
    fn sealed_values_roundtrip_until_they_expire() {
        let k = key(purpose::LOGIN_STATE);
        let payload = br#"{"state":"s1","nonce":"n1","return_to":"/a?b=c"}"#;
        let v = k.seal(payload, 1_000);
        assert_eq!(k.open(&v, 999), Ok(payload.to_vec()));
        assert_eq!(k.open(&v, 1_000), Err(CookieError::Expired));
        assert_eq!(k.open(&k.seal(b"", 5), 4), Ok(Vec::new()));
    }

    #[test]
    fn tampered_or_foreign_sealed_values_are_refused() {
        let k = key(purpose::LOGIN_STATE);
        let v = k.seal(b"hello", 1_000);
        let (payload, rest) = v.split_once('.').unwrap();
        let (_, tag) = rest.split_once('.').unwrap();

        let later = format!("{payload}.9999.{tag}");
        assert_eq!(
            k.open(&later, 0),
            Err(CookieError::BadSignature),
            "expiry is signed"
        );
        let other_payload = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(b"hellO"));
        assert_eq!(k.open(&other_payload, 0), Err(CookieError::BadSignature));
        let session_key = key(purpose::SESSION);
        assert_eq!(session_key.open(&v, 0), Err(CookieError::BadSignature));
        // An expired value that was also altered reports the alteration.
        assert_eq!(k.open(&later, 10_000), Err(CookieError::BadSignature));

        for bad in [
            "",
            "a.b",
            "aGVsbG8..x",
            &format!("{payload}.-5.{tag}"),
            &format!("{payload}.1e3.{tag}"),
            &format!("{payload}.1000.{tag}x"),
            &format!("{}.1.{tag}", "a".repeat(MAX_SEALED_LEN)),
        ] {
            assert_eq!(k.open(bad, 0), Err(CookieError::Malformed), "{bad:?}");
        }
        // A session value is not a sealed value, even under the same key.
        let as_session = k.encode(&SessionId::from_bytes([3; 32]));
        assert!(k.open(&as_session, 0).is_err());
    }

    #[test]
    fn purposes_get_different_keys() {
        let s = CookieSecret::new(SECRET).unwrap();
        let id = SessionId::from_bytes([5; 32]);
        assert_ne!(
            s.key(purpose::SESSION).encode(&id),
            s.key(purpose::LOGIN_STATE).encode(&id)
        );
        assert_eq!(
            s.key(purpose::SESSION).encode(&id),
            CookieSecret::new(SECRET)
                .unwrap()
                .key(purpose::SESSION)
                .encode(&id)
        );
    }

    #[test]
    fn short_or_missing_secrets_are_refused() {
        assert!(matches!(
            CookieSecret::new(&[1; 31]),
            Err(CookieKeyError::TooShort { len: 31 })
        ));
        let dir = std::env::temp_dir().join(format!("warden-cookie-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        // 31 bytes and a newline: the newline does not count.
        std::fs::write(&short, [b"x".repeat(31), b"\n".to_vec()].concat()).unwrap();
        let err = CookieSecret::from_file(&short).unwrap_err();
        assert!(err.to_string().contains("31 bytes"), "{err}");
        let good = dir.join("good");
        std::fs::write(&good, [SECRET, b"\n"].concat()).unwrap();
        let id = SessionId::from_bytes([2; 32]);
        assert_eq!(
            CookieSecret::from_file(&good)
                .unwrap()
                .key(purpose::SESSION)
                .encode(&id),
            key(purpose::SESSION).encode(&id),
            "the trailing newline is not part of the secret"
        );
        let missing = CookieSecret::from_file(&dir.join("missing")).unwrap_err();
        assert!(missing.to_string().contains("missing"), "{missing}");
        assert_eq!(
            format!("{:?}", CookieSecret::new(SECRET).unwrap()),
            "CookieSecret(***)"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
