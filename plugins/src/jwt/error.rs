//! Why a bearer token was refused: stable reason codes for metrics, logs and error bodies.

/// The reason a bearer token was refused. The codes (`code()`) are part of Warden's surface:
/// they label `warden_authn_total` and appear in 401 bodies and audit logs. Extend, don't rename.
///
/// The variants carry no detail on purpose: what a client learns from a refusal is the code and
/// the fixed description, never which key or which claim value was involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum BearerError {
    #[error("the token is not a well-formed compact JWS (three base64url parts with JSON header and payload)")]
    Malformed,
    #[error("the token is larger than Warden accepts")]
    TokenTooLarge,
    #[error("the token's signing algorithm is not allowed for its issuer")]
    UnsupportedAlgorithm,
    #[error("no key of the issuer's key set can verify this token (unknown or mismatched kid)")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf or iat in the future)")]
    NotYetValid,
    #[error("the token has no numeric exp claim")]
    MissingExp,
    #[error("the token's iss does not match the issuer")]
    BadIssuer,
    #[error("the token's aud does not name an accepted audience")]
    BadAudience,
    #[error("the token lacks a claim the issuer requires")]
    MissingClaim,
    #[error("the token's issuer is not accepted here")]
    UnknownIssuer,
    #[error("the issuer's keys have not been loaded yet")]
    NoKeys,
}

impl BearerError {
    /// Every reason, in a fixed order (metrics are pre-registered for each).
    pub const ALL: [BearerError; 13] = [
        BearerError::Malformed,
        BearerError::TokenTooLarge,
        BearerError::UnsupportedAlgorithm,
        BearerError::UnknownKey,
        BearerError::BadSignature,
        BearerError::Expired,
        BearerError::NotYetValid,
        BearerError::MissingExp,
        BearerError::BadIssuer,
        BearerError::BadAudience,
        BearerError::MissingClaim,
        BearerError::UnknownIssuer,
        BearerError::NoKeys,
    ];

    /// The stable, machine-readable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            BearerError::Malformed => "malformed",
            BearerError::TokenTooLarge => "token_too_large",
            BearerError::UnsupportedAlgorithm => "unsupported_algorithm",
            BearerError::UnknownKey => "unknown_key",
            BearerError::BadSignature => "bad_signature",
            BearerError::Expired => "expired",
            BearerError::NotYetValid => "not_yet_valid",
            BearerError::MissingExp => "missing_exp",
            BearerError::BadIssuer => "bad_issuer",
            BearerError::BadAudience => "bad_audience",
            BearerError::MissingClaim => "missing_claim",
            BearerError::UnknownIssuer => "unknown_issuer",
            BearerError::NoKeys => "no_keys",
        }
    }

    /// A sentence for humans (the same as `Display`).
    pub fn description(&self) -> String {
        self.to_string()
    }

    /// The position of this reason in [`BearerError::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_indexed_in_order() {
        let mut codes: Vec<&str> = BearerError::ALL.iter().map(BearerError::code).collect();
        for (i, e) in BearerError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), BearerError::ALL.len());
    }
}
