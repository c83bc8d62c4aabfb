//! Logout with the provider: the RP-initiated logout URL (the browser is sent there after
//! `/.warden/sign_out`), and verification of back-channel logout tokens (OpenID Connect
//! Back-Channel Logout 1.0), which the gateway turns into revocations.

use super::discovery::is_public_key_alg;
use super::error::LogoutError;
use super::id_token::LEEWAY_SECS;
use super::provider::Provider;
use super::OidcProviders;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::CoreJwsSigningAlgorithm;
use openidconnect::JsonWebKey;
use serde_json::Value;
use std::sync::Arc;

/// The `events` member every logout token carries.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Logout tokens issued longer ago than this are refused; their `jti`s are remembered as long.
pub const LOGOUT_TOKEN_MAX_AGE_SECS: i64 = 300;
/// Longest logout token considered.
const MAX_LOGOUT_TOKEN_LEN: usize = 16 * 1024;

/// A verified back-channel logout: end the provider's sessions named by `sid`, or all of the
/// subject's sessions from this provider when only `sub` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub provider: Arc<str>,
    pub sid: Option<String>,
    pub sub: Option<String>,
}

impl OidcProviders {
    /// Where to send the browser to end its session at `provider` too (the provider's
    /// `end_session_endpoint`, with `client_id` and `post_logout_redirect_uri`, which must be
    /// registered at the provider). `None` when the provider has none, or is not discovered.
    /// Warden keeps no ID token, so `id_token_hint` is normally `None`; providers that insist
    /// on one show their own confirmation page instead.
    pub fn end_session_url(
        &self,
        provider: &str,
        post_logout_redirect_uri: &str,
        id_token_hint: Option<&str>,
    ) -> Option<String> {
        let p = self.provider(provider)?;
        let mut url = p.discovered()?.end_session_endpoint.clone()?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &p.conf.client_id);
            q.append_pair("post_logout_redirect_uri", post_logout_redirect_uri);
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
        }
        Some(url.into())
    }

    /// Verifies the `logout_token` in a back-channel logout request body
    /// (`application/x-www-form-urlencoded`): signature with the issuing provider's keys,
    /// `aud` = its client id, `iat` recent, the back-channel logout event, `sid` or `sub`, no
    /// `nonce`, and a `jti` not seen before.
    pub async fn verify_logout_token(
        &self,
        form_body: &[u8],
        now: i64,
    ) -> Result<LogoutRequest, LogoutError> {
        let token = url::form_urlencoded::parse(form_body)
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .filter(|t| t.len() <= MAX_LOGOUT_TOKEN_LEN)
            .ok_or(LogoutError::Malformed)?;
        let jws = Jws::parse(&token)?;
        let claims = &jws.claims;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| LogoutError::InvalidClaims("no `iss`".into()))?;
        let audiences = audiences(claims.get("aud"));
        let from_issuer: Vec<Arc<Provider>> = self
            .providers
            .values()
            .filter(|p| p.conf.issuer == iss)
            .cloned()
            .collect();
        if from_issuer.is_empty() {
            return Err(LogoutError::UnknownIssuer);
        }
        let p = from_issuer
            .into_iter()
            .find(|p| audiences.contains(&p.conf.client_id.as_str()))
            .ok_or_else(|| LogoutError::InvalidClaims("`aud` is not Warden's client id".into()))?;
        let d = p.discovered().ok_or(LogoutError::ProviderUnavailable)?;
        if !jws.verify_with(&d.jwks())? {
            if !jws.names_unknown_key(&d.jwks()) || !d.refetch_jwks(&p.http, now).await {
                return Err(LogoutError::BadSignature(
                    "no published key verifies it".into(),
                ));
            }
            if !jws.verify_with(&d.jwks())? {
                return Err(LogoutError::BadSignature(
                    "no published key verifies it".into(),
                ));
            }
        }
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or_else(|| LogoutError::InvalidClaims("no `iat`".into()))?;
        if iat > now + LEEWAY_SECS {
            return Err(LogoutError::InvalidClaims("issued in the future".into()));
        }
        if iat < now - LOGOUT_TOKEN_MAX_AGE_SECS {
            return Err(LogoutError::InvalidClaims("issued too long ago".into()));
        }
        if claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_some_and(|exp| exp + LEEWAY_SECS <= now)
        {
            return Err(LogoutError::InvalidClaims("expired".into()));
        }
        if !claims
            .get("events")
            .and_then(|e| e.get(BACKCHANNEL_LOGOUT_EVENT))
            .is_some_and(Value::is_object)
        {
            return Err(LogoutError::InvalidClaims(
                "no back-channel logout event".into(),
            ));
        }
        if claims.get("nonce").is_some() {
            return Err(LogoutError::InvalidClaims(
                "a logout token must not carry a nonce (is this an ID token?)".into(),
            ));
        }
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
        let (sid, sub) = (text("sid"), text("sub"));
        if sid.is_none() && sub.is_none() {
            return Err(LogoutError::InvalidClaims("neither `sid` nor `sub`".into()));
        }
        let jti = text("jti").ok_or_else(|| LogoutError::InvalidClaims("no `jti`".into()))?;
        let remember_until = iat + LOGOUT_TOKEN_MAX_AGE_SECS + LEEWAY_SECS;
        if !self
            .used_jtis
            .first_use(&format!("{iss}\n{jti}"), remember_until, now)
        {
            return Err(LogoutError::Replayed);
        }
        Ok(LogoutRequest {
            provider: p.name.clone(),
            sid,
            sub,
        })
    }
}

fn audiences(aud: Option<&Value>) -> Vec<&str> {
    match aud {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// A compact JWS, decoded but not yet verified.
struct Jws<'a> {
    signing_input: &'a str,
    signature: Vec<u8>,
    alg: CoreJwsSigningAlgorithm,
    kid: Option<String>,
    claims: Value,
}

impl<'a> Jws<'a> {
    fn parse(token: &'a str) -> Result<Self, LogoutError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(LogoutError::Malformed)?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(LogoutError::Malformed)?;
        let json = |part: &str| -> Result<Value, LogoutError> {
            let bytes = URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| LogoutError::Malformed)?;
            serde_json::from_slice(&bytes).map_err(|_| LogoutError::Malformed)
        };
        let header = json(header)?;
        let claims = json(payload)?;
        if !claims.is_object() {
            return Err(LogoutError::Malformed);
        }
        let alg: CoreJwsSigningAlgorithm = header
            .get("alg")
            .cloned()
            .and_then(|a| serde_json::from_value(a).ok())
            .filter(is_public_key_alg)
            .ok_or_else(|| LogoutError::BadSignature("missing or refused `alg`".into()))?;
        if let Some(typ) = header.get("typ") {
            let typ = typ.as_str().unwrap_or_default().to_ascii_lowercase();
            let typ = typ.strip_prefix("application/").unwrap_or(&typ);
            if typ != "logout+jwt" && typ != "jwt" {
                return Err(LogoutError::InvalidClaims(format!(
                    "`typ` {typ} is not a logout token's"
                )));
            }
        }
        Ok(Self {
            signing_input,
            signature: URL_SAFE_NO_PAD
                .decode(signature)
                .map_err(|_| LogoutError::Malformed)?,
            alg,
            kid: header
                .get("kid")
                .and_then(Value::as_str)
                .map(str::to_string),
            claims,
        })
    }

    /// Whether a key of `keys` (with the token's `kid`, if it names one) verifies the signature.
    fn verify_with(
        &self,
        keys: &openidconnect::core::CoreJsonWebKeySet,
    ) -> Result<bool, LogoutError> {
        Ok(keys
            .keys()
            .iter()
            .filter(|k| {
                self.kid.is_none() || k.key_id().map(|id| id.as_str()) == self.kid.as_deref()
            })
            .any(|k| {
                k.verify_signature(&self.alg, self.signing_input.as_bytes(), &self.signature)
                    .is_ok()
            }))
    }

    fn names_unknown_key(&self, keys: &openidconnect::core::CoreJsonWebKeySet) -> bool {
        self.kid.as_deref().is_some_and(|kid| {
            !keys
                .keys()
                .iter()
                .any(|k| k.key_id().map(|id| id.as_str()) == Some(kid))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn tokens_that_are_not_signed_jwts_are_malformed_or_refused() {
        let claims = b64(&serde_json::json!({"iss": "x"}));
        for header in [
            serde_json::json!({"alg": "none"}),
            serde_json::json!({"alg": "HS256"}),
            serde_json::json!({"typ": "logout+jwt"}),
            serde_json::json!({"alg": "RS256", "typ": "at+jwt"}),
        ] {
            let token = format!("{}.{claims}.c2ln", b64(&header));
            assert!(Jws::parse(&token).is_err(), "{header}");
        }
        for bad in ["", "a.b", "a.b.c", "!!.e30.c2ln"] {
            assert!(
                matches!(Jws::parse(bad), Err(LogoutError::Malformed)),
                "{bad}"
            );
        }
        let good = format!(
            "{}.{claims}.c2ln",
            b64(&serde_json::json!({"alg": "RS256", "typ": "logout+jwt", "kid": "k1"}))
        );
        let jws = Jws::parse(&good).unwrap();
        assert_eq!(jws.kid.as_deref(), Some("k1"));
        assert_eq!(jws.claims["iss"], "x");
    }

    #[test]
    fn audiences_are_a_string_or_a_list() {
        assert_eq!(audiences(Some(&serde_json::json!("a"))), ["a"]);
        assert_eq!(
            audiences(Some(&serde_json::json!(["a", 1, "b"]))),
            ["a", "b"]
        );
        assert!(audiences(None).is_empty());
    }
}
