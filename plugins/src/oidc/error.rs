//! What can go wrong in a login or a back-channel logout, each with a stable reason code (for
//! metrics, logs and the error page), an HTTP status and a sentence for the user.

use crate::session::RandomError;

/// Starting a login failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("no sign-in provider named `{0}` is configured")]
    UnknownProvider(String),
    #[error("the sign-in provider `{0}` has not been reached yet (discovery pending)")]
    ProviderUnavailable(String),
    #[error("`{0}` is not an absolute http(s) URL")]
    InvalidUrl(String),
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl OidcError {
    pub fn reason(&self) -> &'static str {
        match self {
            OidcError::UnknownProvider(_) => "provider_unknown",
            OidcError::ProviderUnavailable(_) => "provider_unavailable",
            OidcError::InvalidUrl(_) => "invalid_url",
            OidcError::Random(_) => "internal",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            OidcError::ProviderUnavailable(_) => 503,
            OidcError::Random(_) | OidcError::UnknownProvider(_) | OidcError::InvalidUrl(_) => 500,
        }
    }

    pub fn user_message(&self) -> &'static str {
        match self {
            OidcError::ProviderUnavailable(_) => {
                "The sign-in service cannot be reached right now. Please try again in a minute."
            }
            _ => "Sign-in is not available for this site because of a configuration problem.",
        }
    }
}

/// Completing a login (the provider's redirect to `/.warden/callback`) failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("the provider refused the sign-in: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    IdpError {
        error: String,
        description: Option<String>,
    },
    #[error(
        "no login state: the callback has no `state`, or the browser sent no matching login cookie"
    )]
    StateMissing,
    #[error("the login state has expired")]
    StateExpired,
    #[error("the login state was already used")]
    StateReplayed,
    #[error("the login state is not valid (altered, foreign, or for another address)")]
    StateInvalid,
    #[error("the login was started with provider `{0}`, which is no longer configured")]
    UnknownProvider(String),
    #[error("the callback's `iss` names another issuer than the login's provider")]
    IssuerMismatch,
    #[error("the callback has neither `code` nor `error`")]
    CodeMissing,
    #[error("the provider refused the authorization code: {0}")]
    CodeExchangeFailed(String),
    #[error("the ID token is not valid: {0}")]
    IdTokenInvalid(String),
    #[error("the ID token's nonce does not match the login's")]
    NonceMismatch,
    #[error("userinfo could not be read: {0}")]
    UserinfoFailed(String),
    #[error("the provider cannot be reached: {0}")]
    ProviderUnavailable(String),
}

impl LoginError {
    /// The stable reason code: the `result` label of `warden_logins_total` and the `reason` of
    /// the error page.
    pub fn reason(&self) -> &'static str {
        match self {
            LoginError::IdpError { .. } => "idp_error",
            LoginError::StateMissing => "state_missing",
            LoginError::StateExpired => "state_expired",
            LoginError::StateReplayed => "state_replayed",
            LoginError::StateInvalid => "state_invalid",
            LoginError::UnknownProvider(_) => "provider_unknown",
            LoginError::IssuerMismatch => "issuer_mismatch",
            LoginError::CodeMissing => "code_missing",
            LoginError::CodeExchangeFailed(_) => "code_exchange_failed",
            LoginError::IdTokenInvalid(_) => "id_token_invalid",
            LoginError::NonceMismatch => "nonce_mismatch",
            LoginError::UserinfoFailed(_) => "userinfo_failed",
            LoginError::ProviderUnavailable(_) => "provider_unavailable",
        }
    }

    /// 503 when the provider cannot be reached (try again later); 403 when the provider or
    /// the user said no; 400 otherwise (a broken, stale or forged callback).
    pub fn status(&self) -> u16 {
        match self {
            LoginError::ProviderUnavailable(_) => 503,
            LoginError::IdpError { error, .. } if error == "access_denied" => 403,
            _ => 400,
        }
    }

    /// A sentence for the error page; never echoes what the request carried.
    pub fn user_message(&self) -> &'static str {
        match self {
            LoginError::IdpError { error, .. } if error == "access_denied" => {
                "Sign-in was cancelled or refused by the sign-in service."
            }
            LoginError::IdpError { .. } => "The sign-in service reported an error.",
            LoginError::StateMissing | LoginError::StateInvalid => {
                "This sign-in link is not valid in this browser. Please open the page you wanted again."
            }
            LoginError::StateExpired => {
                "The sign-in took too long. Please open the page you wanted again."
            }
            LoginError::StateReplayed => {
                "This sign-in was already completed. Please open the page you wanted again."
            }
            LoginError::UnknownProvider(_) => {
                "The sign-in service of this sign-in is no longer configured. Please open the page you wanted again."
            }
            LoginError::ProviderUnavailable(_) => {
                "The sign-in service cannot be reached right now. Please try again in a minute."
            }
            LoginError::IssuerMismatch
            | LoginError::CodeMissing
            | LoginError::CodeExchangeFailed(_)
            | LoginError::IdTokenInvalid(_)
            | LoginError::NonceMismatch
            | LoginError::UserinfoFailed(_) => {
                "Sign-in could not be completed. Please open the page you wanted again."
            }
        }
    }
}

/// A back-channel logout request was refused.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    #[error("the request has no `logout_token`, or it is not a signed JWT")]
    Malformed,
    #[error("the logout token's issuer is no configured provider")]
    UnknownIssuer,
    #[error("the logout token's provider has not been discovered yet")]
    ProviderUnavailable,
    #[error("the logout token's signature does not verify: {0}")]
    BadSignature(String),
    #[error("the logout token is not valid: {0}")]
    InvalidClaims(String),
    #[error("the logout token was already used")]
    Replayed,
}

impl LogoutError {
    pub fn reason(&self) -> &'static str {
        match self {
            LogoutError::Malformed => "malformed",
            LogoutError::UnknownIssuer => "unknown_issuer",
            LogoutError::ProviderUnavailable => "provider_unavailable",
            LogoutError::BadSignature(_) => "bad_signature",
            LogoutError::InvalidClaims(_) => "invalid_claims",
            LogoutError::Replayed => "replayed",
        }
    }

    /// 400 for a refused token (Back-Channel Logout §2.8); 503 when its keys cannot be known
    /// yet, so the provider retries.
    pub fn status(&self) -> u16 {
        match self {
            LogoutError::ProviderUnavailable => 503,
            _ => 400,
        }
    }
}

/// Trims what a provider sent (`error`, `error_description`) to something safe to log and show:
/// printable ASCII, at most `max` characters.
pub(crate) fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_login_error_is_4xx_except_unavailability() {
        let all = [
            LoginError::IdpError {
                error: "access_denied".into(),
                description: None,
            },
            LoginError::IdpError {
                error: "server_error".into(),
                description: Some("x".into()),
            },
            LoginError::StateMissing,
            LoginError::StateExpired,
            LoginError::StateReplayed,
            LoginError::StateInvalid,
            LoginError::UnknownProvider("x".into()),
            LoginError::IssuerMismatch,
            LoginError::CodeMissing,
            LoginError::CodeExchangeFailed("x".into()),
            LoginError::IdTokenInvalid("x".into()),
            LoginError::NonceMismatch,
            LoginError::UserinfoFailed("x".into()),
        ];
        for e in &all {
            assert!((400..500).contains(&e.status()), "{e}");
            assert!(!e.user_message().is_empty());
            assert!(e
                .reason()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        assert_eq!(all[0].status(), 403);
        assert_eq!(LoginError::ProviderUnavailable("down".into()).status(), 503);
        assert_eq!(
            all[1].to_string(),
            "the provider refused the sign-in: server_error (x)"
        );
    }

    #[test]
    fn provider_text_is_sanitized() {
        assert_eq!(sanitize("bad\r\n<b>\u{7f}é ok", 100), "bad<b> ok");
        assert_eq!(sanitize("abcdef", 3), "abc");
    }
}
