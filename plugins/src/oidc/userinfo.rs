//! Reading the provider's userinfo endpoint with a session's access token.

use super::http::{IdpHttp, TransportError};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub(crate) enum UserinfoError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("userinfo refused the access token (HTTP {0})")]
    Refused(u16),
    #[error("userinfo answered something other than a JSON object: {0}")]
    Invalid(String),
    #[error("userinfo is about another subject than the ID token")]
    WrongSubject,
}

/// The userinfo claims for `access_token`, checked to be about `subject` (OIDC Core §5.3.2).
pub(crate) async fn fetch(
    http: &IdpHttp,
    endpoint: &url::Url,
    access_token: &str,
    subject: &str,
) -> Result<Value, UserinfoError> {
    let req = http
        .get(endpoint.as_str())
        .bearer_auth(access_token)
        .header(reqwest::header::ACCEPT, "application/json")
        .build()
        .map_err(|e| TransportError::Request(e.to_string()))?;
    let resp = http.execute(req).await?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(UserinfoError::Refused(status));
    }
    let is_json = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    if !is_json {
        return Err(UserinfoError::Invalid(
            "not application/json (signed or encrypted userinfo is not supported)".into(),
        ));
    }
    let claims: Value =
        serde_json::from_slice(resp.body()).map_err(|e| UserinfoError::Invalid(e.to_string()))?;
    if !claims.is_object() {
        return Err(UserinfoError::Invalid("not an object".into()));
    }
    if claims.get("sub").and_then(Value::as_str) != Some(subject) {
        return Err(UserinfoError::WrongSubject);
    }
    Ok(claims)
}
