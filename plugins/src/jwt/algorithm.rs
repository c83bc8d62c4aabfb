//! The JWS algorithms Warden verifies: public-key signatures only. `none` and the HMAC family
//! are not representable, so no conf, header or key can select them.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// A public-key JWS algorithm (RFC 7518 §3, RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The issuer default: the algorithms real issuers use.
    pub const DEFAULT: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Parses an `alg` value; `None` for anything Warden does not verify.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == s)
    }

    fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(a) = Self::from_name(s) {
            return Ok(a);
        }
        let supported = Self::ALL.map(Algorithm::name).join(", ");
        if s.eq_ignore_ascii_case("none") {
            Err(format!(
                "`{s}` is refused: unsigned tokens would let anyone claim any identity; \
                 use one of {supported}"
            ))
        } else if s.len() >= 2 && s[..2].eq_ignore_ascii_case("HS") {
            Err(format!(
                "`{s}` is refused: shared-secret (HMAC) tokens can be minted by every verifier; \
                 Warden verifies bearer tokens with public keys only: {supported}"
            ))
        } else {
            Err(format!(
                "`{s}` is not a supported algorithm; use one of {supported}"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for Algorithm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Algorithm;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JWS algorithm such as RS256, ES256 or EdDSA")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Algorithm, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// A set of algorithms, as a bit mask (checked on every token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    pub fn contains(self, a: Algorithm) -> bool {
        self.0 & a.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |m, a| m | a.bit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
        }
    }

    #[test]
    fn none_and_hmac_are_refused_with_a_reason() {
        let e = "none".parse::<Algorithm>().unwrap_err();
        assert!(e.contains("unsigned"), "{e}");
        for hs in ["HS256", "HS384", "HS512", "hs256"] {
            let e = hs.parse::<Algorithm>().unwrap_err();
            assert!(e.contains("HMAC"), "{e}");
        }
        assert!("RS1"
            .parse::<Algorithm>()
            .unwrap_err()
            .contains("not a supported"));
    }

    #[test]
    fn sets_hold_what_they_were_built_from() {
        let s: AlgorithmSet = Algorithm::DEFAULT.into_iter().collect();
        assert!(s.contains(Algorithm::RS256) && s.contains(Algorithm::EdDSA));
        assert!(!s.contains(Algorithm::PS256));
        assert!(AlgorithmSet::default().is_empty());
    }
}
