//! ID token verification: signature with the provider's JWKS (refetched once if the token names
//! an unknown key), `iss`, `aud`, `azp`, `exp`, `iat` and `nonce` — then the token's claims as
//! JSON, for the conf's claim mapping.

use super::discovery::Discovered;
use super::http::IdpHttp;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier};
use openidconnect::{
    ClaimsVerificationError, ClientId, ClientSecret, Nonce, SignatureVerificationError,
};
use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};

/// Clock difference tolerated between Warden and the provider, in seconds.
pub const LEEWAY_SECS: i64 = 30;

pub(crate) enum NonceCheck<'a> {
    /// A login: the token must carry the nonce the login sent.
    Expect(&'a Nonce),
    /// A refresh: no nonce was sent.
    None,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum IdTokenError {
    #[error("the ID token's nonce does not match")]
    NonceMismatch,
    #[error("{0}")]
    Invalid(String),
}

/// What a verified ID token says.
pub(crate) struct VerifiedIdToken {
    pub subject: String,
    pub claims: Value,
}

pub(crate) async fn verify(
    d: &Discovered,
    http: &IdpHttp,
    client_id: &ClientId,
    secret: &ClientSecret,
    token: &CoreIdToken,
    nonce: NonceCheck<'_>,
    now: i64,
) -> Result<VerifiedIdToken, IdTokenError> {
    let mut refetched = false;
    loop {
        let verifier = CoreIdTokenVerifier::new_confidential_client(
            client_id.clone(),
            secret.clone(),
            d.issuer.clone(),
            (*d.jwks()).clone(),
        )
        .set_allowed_algs(d.algs.iter().cloned())
        .set_time_fn(move || {
            (UNIX_EPOCH + Duration::from_secs(u64::try_from(now - LEEWAY_SECS).unwrap_or(0))).into()
        })
        .set_issue_time_verifier_fn(move |iat| {
            if iat.timestamp() > now + LEEWAY_SECS {
                Err("the ID token was issued in the future (check the clocks)".into())
            } else {
                Ok(())
            }
        })
        // Several audiences are accepted only when `azp` names this client (checked below).
        .set_other_audience_verifier_fn(|_| true);
        let result = match nonce {
            NonceCheck::Expect(n) => token.claims(&verifier, n),
            NonceCheck::None => token.claims(&verifier, |_: Option<&Nonce>| Ok(())),
        };
        match result {
            Ok(claims) => {
                match claims.authorized_party() {
                    Some(azp) if **azp != **client_id => {
                        return Err(IdTokenError::Invalid(format!(
                            "azp `{}` is not this client",
                            azp.as_str()
                        )))
                    }
                    None if claims.audiences().len() > 1 => {
                        return Err(IdTokenError::Invalid("several audiences but no azp".into()))
                    }
                    _ => {}
                }
                let subject = claims.subject().to_string();
                return Ok(VerifiedIdToken {
                    subject,
                    claims: payload(&token.to_string())?,
                });
            }
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) if !refetched => {
                refetched = true;
                if !d.refetch_jwks(http, now).await {
                    return Err(IdTokenError::Invalid(
                        "signed with a key the provider does not publish".into(),
                    ));
                }
            }
            Err(ClaimsVerificationError::InvalidNonce(_)) => {
                return Err(IdTokenError::NonceMismatch)
            }
            Err(e) => return Err(IdTokenError::Invalid(e.to_string())),
        }
    }
}

/// The claims of a compact JWS whose signature was already verified.
pub(crate) fn payload(jwt: &str) -> Result<Value, IdTokenError> {
    let part = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| IdTokenError::Invalid("not a compact JWS".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| IdTokenError::Invalid("payload is not base64url".into()))?;
    serde_json::from_slice(&bytes).map_err(|e| IdTokenError::Invalid(e.to_string()))
}
