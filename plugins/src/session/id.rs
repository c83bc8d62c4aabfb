//! Session ids (256 random bits, the bearer secret inside the cookie) and session handles (a
//! short public name for a session, safe to log, list and type into the admin API).

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::str::FromStr;

/// Bytes in a session id.
pub const SESSION_ID_LEN: usize = 32;

/// A session id: 32 bytes from the system's secure random generator.
///
/// It is a bearer secret: `Debug` shows only its handle, and there is no `Display`.
#[derive(Clone, Copy)]
pub struct SessionId([u8; SESSION_ID_LEN]);

/// The system random number generator failed (no entropy source); no session can be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed; cannot create a session id")]
pub struct RandomError;

impl SessionId {
    /// A fresh id from `ring::rand::SystemRandom`.
    pub fn generate() -> Result<Self, RandomError> {
        Self::generate_with(&SystemRandom::new())
    }

    /// A fresh id from `rng` (tests and benchmarks may pass a seeded source).
    pub fn generate_with(rng: &dyn SecureRandom) -> Result<Self, RandomError> {
        let mut b = [0u8; SESSION_ID_LEN];
        rng.fill(&mut b).map_err(|_| RandomError)?;
        Ok(Self(b))
    }

    /// An id from its bytes (decoded cookies, stores that persist sessions).
    pub const fn from_bytes(bytes: [u8; SESSION_ID_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; SESSION_ID_LEN] {
        &self.0
    }

    /// The public handle: the first 8 bytes of SHA-256(id). It names the session without
    /// letting anyone who reads it present the session.
    pub fn handle(&self) -> SessionHandle {
        let d = digest::digest(&digest::SHA256, &self.0);
        let mut first = [0u8; 8];
        first.copy_from_slice(&d.as_ref()[..8]);
        SessionHandle(u64::from_be_bytes(first))
    }

    fn word(&self, i: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    }

    /// Which of `n` shards (a power of two) holds this id. Uses other bits than [`Hash`] so
    /// the table inside a shard still sees uniformly random hashes.
    pub(crate) fn shard(&self, n: usize) -> usize {
        (self.word(1) as usize) & (n - 1)
    }
}

/// Constant time: the store compares a presented (unverified) id with stored ones, and an
/// early exit would tell a prober how many leading bytes it guessed right.
impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        let diff =
            (0..SESSION_ID_LEN / 8).fold(0u64, |acc, i| acc | (self.word(i) ^ other.word(i)));
        diff == 0
    }
}

impl Eq for SessionId {}

/// The id is uniformly random, so its first 8 bytes are already a perfect hash; see
/// [`IdHashBuilder`]. Only ids Warden generated are ever inserted, so a client choosing the
/// ids it presents cannot crowd a bucket.
impl Hash for SessionId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.word(0));
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.handle())
    }
}

/// A session's public name: 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionHandle(u64);

impl SessionHandle {
    pub const fn from_u64(v: u64) -> Self {
        Self(v)
    }

    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

/// A handle is itself a random 64-bit value; it is hashed as is.
impl Hash for SessionHandle {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for SessionHandle {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "`{s}` is not a session handle (16 hex digits, as listed by GET /admin/sessions)"
            ));
        }
        u64::from_str_radix(s, 16)
            .map(Self)
            .map_err(|e| format!("`{s}` is not a session handle: {e}"))
    }
}

/// Hashes keys that are already uniformly random 64-bit values ([`SessionId`],
/// [`SessionHandle`]) by passing the value through: no SipHash rounds on the hot path.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHashBuilder;

impl BuildHasher for IdHashBuilder {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// See [`IdHashBuilder`].
#[derive(Debug, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }

    // Only reached if a key type hashes other than through `write_u64`; FNV-1a keeps the
    // hasher correct (if slower) for such keys.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_differ_and_compare_by_value() {
        let a = SessionId::generate().unwrap();
        let b = SessionId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a, SessionId::from_bytes(*a.as_bytes()));
        let mut last_byte_differs = *a.as_bytes();
        last_byte_differs[31] ^= 1;
        assert_ne!(a, SessionId::from_bytes(last_byte_differs));
    }

    #[test]
    fn handle_is_sha256_prefix_and_roundtrips() {
        let id = SessionId::from_bytes([7; 32]);
        let d = digest::digest(&digest::SHA256, &[7; 32]);
        assert_eq!(id.handle().to_string(), hex::encode(&d.as_ref()[..8]));
        assert_eq!(
            id.handle().to_string().parse::<SessionHandle>(),
            Ok(id.handle())
        );
        for bad in [
            "",
            "abc",
            "0123456789abcdeg",
            "0123456789abcdef0",
            "+123456789abcdef",
        ] {
            assert!(bad.parse::<SessionHandle>().is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_id() {
        let id = SessionId::from_bytes([0xab; 32]);
        let s = format!("{id:?}");
        assert!(!s.contains("abab"), "{s}");
        assert!(s.contains(&id.handle().to_string()));
    }

    #[test]
    fn shard_and_hash_use_different_bytes() {
        let mut b = [0u8; 32];
        b[8] = 5;
        let id = SessionId::from_bytes(b);
        assert_eq!(id.shard(256), 5);
        assert_eq!(IdHashBuilder.hash_one(id), 0);
    }
}
