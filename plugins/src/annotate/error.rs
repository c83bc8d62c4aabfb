//! Why a request could not be annotated: each error has a stable `code` (access log, JSON error
//! bodies, metrics labels) and the status the gateway answers with.

use http::StatusCode;

/// A request whose identity cannot be passed upstream as the route asks. The gateway answers
/// it itself (the upstream never sees a half-annotated request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotateError {
    /// `X-Warden-Groups` would exceed the route's `max_groups_bytes`. Never truncated: a
    /// partial group list could grant or deny the wrong thing upstream.
    #[error(
        "the caller's groups need {size} bytes in X-Warden-Groups, more than the route's \
         max_groups_bytes ({max}); narrow them with identity_headers.groups_filter or raise the limit"
    )]
    GroupsTooLarge { size: usize, max: usize },
    /// The route impersonates by email and the identity has none.
    #[error("this route passes the caller's email to Kubernetes, and the caller has no email")]
    MissingEmail,
    /// A value Kubernetes would read as-is contains characters no header may carry.
    #[error("the caller's {what} contains control characters and cannot be sent to Kubernetes")]
    InvalidValue { what: &'static str },
    /// The user name would be one of Kubernetes' own (`system:` names): refusing it keeps an
    /// identity provider from naming its users into cluster roles.
    #[error("the caller's Kubernetes user name `{name}` starts with `system:`, which is reserved")]
    ReservedKubernetesName { name: String },
    /// A route that speaks for its caller (Kubernetes) got a request without an identity.
    #[error("this route needs an authenticated caller")]
    Unauthenticated,
    /// The identity expired before the request could be annotated.
    #[error("the caller's credential has expired")]
    IdentityExpired,
    /// The service account token could not be read.
    #[error("the service account token is unavailable: {0}")]
    TokenUnavailable(String),
    /// The system random generator or the signing key failed.
    #[error("signing the identity assertion failed")]
    SigningFailed,
}

impl AnnotateError {
    /// A stable, machine-readable reason (`groups_too_large`, …).
    pub fn code(&self) -> &'static str {
        match self {
            AnnotateError::GroupsTooLarge { .. } => "groups_too_large",
            AnnotateError::MissingEmail => "missing_email",
            AnnotateError::InvalidValue { .. } => "invalid_identity_value",
            AnnotateError::ReservedKubernetesName { .. } => "reserved_kubernetes_name",
            AnnotateError::Unauthenticated => "unauthenticated",
            AnnotateError::IdentityExpired => "identity_expired",
            AnnotateError::TokenUnavailable(_) => "token_unavailable",
            AnnotateError::SigningFailed => "signing_failed",
        }
    }

    /// The status to answer with: 403 when this identity cannot use the route as configured,
    /// 401 when it must sign in again, 503 when Warden itself lacks what it needs.
    pub fn status(&self) -> StatusCode {
        match self {
            AnnotateError::GroupsTooLarge { .. }
            | AnnotateError::MissingEmail
            | AnnotateError::InvalidValue { .. }
            | AnnotateError::ReservedKubernetesName { .. } => StatusCode::FORBIDDEN,
            AnnotateError::Unauthenticated | AnnotateError::IdentityExpired => {
                StatusCode::UNAUTHORIZED
            }
            AnnotateError::TokenUnavailable(_) | AnnotateError::SigningFailed => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_statuses_fit() {
        let cases = [
            (
                AnnotateError::GroupsTooLarge { size: 9, max: 8 },
                "groups_too_large",
                403,
            ),
            (AnnotateError::MissingEmail, "missing_email", 403),
            (
                AnnotateError::InvalidValue { what: "group" },
                "invalid_identity_value",
                403,
            ),
            (
                AnnotateError::ReservedKubernetesName {
                    name: "system:admin".into(),
                },
                "reserved_kubernetes_name",
                403,
            ),
            (AnnotateError::Unauthenticated, "unauthenticated", 401),
            (AnnotateError::IdentityExpired, "identity_expired", 401),
            (
                AnnotateError::TokenUnavailable("gone".into()),
                "token_unavailable",
                503,
            ),
            (AnnotateError::SigningFailed, "signing_failed", 503),
        ];
        for (e, code, status) in cases {
            assert_eq!((e.code(), e.status().as_u16()), (code, status), "{e}");
        }
        assert!(AnnotateError::GroupsTooLarge {
            size: 9000,
            max: 8192
        }
        .to_string()
        .contains("groups_filter"));
    }
}
