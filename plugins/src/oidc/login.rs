//! The browser login: authorization code flow with PKCE (S256), `state` and `nonce`.
//!
//! Everything a login must remember between the redirect to the provider and the callback
//! (provider, state, nonce, PKCE verifier, the URL the user asked for, the callback URL) is
//! sealed into a short-lived signed cookie ([`LOGIN_STATE_TTL_SECS`]). The cookie is signed,
//! not encrypted: it holds nothing the user may not see, and the PKCE verifier is useless
//! without the code, which only reaches this browser's callback.
//!
//! **Several logins at once** (tabs): each login has its own cookie, named
//! [`LOGIN_STATE_COOKIE_PREFIX`] followed by 12 hex digits of SHA-256(state), so a new login
//! never overwrites another's. The callback's `state` names the cookie to read
//! ([`state_cookie_base_for_callback`]); the gateway passes every value it finds under that
//! name and clears the cookie once the login completes. Abandoned logins leave a cookie that
//! expires with its Max-Age.
//!
//! A state is accepted once: used states are remembered until they expire (bounded memory,
//! per replica; a replay on another replica still fails at the provider, which accepts each
//! code once).

use super::error::{sanitize, LoginError, OidcError};
use super::http::TransportError;
use super::id_token::{self, IdTokenError, NonceCheck};
use super::profile;
use super::userinfo::{self, UserinfoError};
use super::{GroupsFrom, OidcProviders};
use crate::metrics;
use crate::session::cookie::CookieError;
use crate::session::{CookieKey, NewSession, Profile, RandomError, Secret, Tokens};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreErrorResponseType};
use openidconnect::{
    AuthorizationCode, CsrfToken, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, Scope, StandardErrorResponse, TokenResponse,
};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

/// How long a login may take from the redirect to the provider until the callback.
pub const LOGIN_STATE_TTL_SECS: i64 = 600;
/// Login-state cookies are named this, then 12 hex digits of SHA-256(state). The gateway adds
/// the `__Host-` prefix where it can (`CookieConf::host_cookie_name`).
pub const LOGIN_STATE_COOKIE_PREFIX: &str = "warden_login_";
/// Longest `return_to` kept; a longer one is cut back to its origin (cookies are small).
const MAX_RETURN_TO: usize = 2048;

/// What the gateway needs to send the browser to the provider.
#[derive(Debug, Clone)]
pub struct LoginStart {
    /// Where to redirect the browser (302).
    pub authorize_url: String,
    /// The login-state cookie's name before any `__Host-` prefix.
    pub state_cookie_base: String,
    /// Set it host-only, `HttpOnly`, `SameSite=Lax`, `Path=/` for `state_cookie_max_age`.
    pub state_cookie_value: String,
    pub state_cookie_max_age: i64,
}

/// A login that succeeded: the session to create and where to send the browser.
#[derive(Debug)]
pub struct CompletedLogin {
    pub new_session: NewSession,
    /// The absolute URL the user asked for before signing in.
    pub return_to: String,
    /// The login-state cookie to clear (name before any `__Host-` prefix).
    pub state_cookie_base: String,
}

/// The sealed login state. Short keys: it travels in a cookie.
#[derive(Serialize, Deserialize)]
struct LoginState {
    /// Provider name.
    p: String,
    /// `state`.
    s: String,
    /// `nonce`.
    n: String,
    /// PKCE verifier.
    v: String,
    /// Return URL.
    r: String,
    /// Redirect (callback) URI.
    u: String,
}

/// The name (before any `__Host-` prefix) of the login-state cookie for `state`.
pub fn state_cookie_base(state: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, state.as_bytes());
    format!(
        "{LOGIN_STATE_COOKIE_PREFIX}{}",
        hex::encode(&d.as_ref()[..6])
    )
}

/// The login-state cookie name for a callback, from its `state` parameter.
pub fn state_cookie_base_for_callback(callback_query: &str) -> Option<String> {
    param(callback_query, "state").map(|s| state_cookie_base(&s))
}

fn param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// 256 random bits, base64url: states, nonces and PKCE verifiers (43 characters, as RFC 7636
/// asks of a verifier).
fn random_token(rng: &SystemRandom) -> Result<String, RandomError> {
    let mut b = [0u8; 32];
    rng.fill(&mut b).map_err(|_| RandomError)?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

fn is_http_url(s: &str) -> Option<url::Url> {
    url::Url::parse(s)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

type TokenError = RequestTokenError<TransportError, StandardErrorResponse<CoreErrorResponseType>>;

/// How a token endpoint failure reads, and whether it is the provider's "no".
pub(crate) enum TokenFailure {
    Unavailable(String),
    /// `invalid_grant`: the code or refresh token is no good (used, expired, revoked).
    InvalidGrant(String),
    Other(String),
}

pub(crate) fn token_failure(e: TokenError) -> TokenFailure {
    match e {
        RequestTokenError::Request(t) => TokenFailure::Unavailable(t.to_string()),
        RequestTokenError::ServerResponse(r) => {
            let text = match r.error_description() {
                Some(d) => format!("{}: {}", r.error(), sanitize(d, 200)),
                None => r.error().to_string(),
            };
            if *r.error() == CoreErrorResponseType::InvalidGrant {
                TokenFailure::InvalidGrant(text)
            } else {
                TokenFailure::Other(text)
            }
        }
        RequestTokenError::Parse(e, _) => {
            TokenFailure::Other(format!("unreadable token response: {e}"))
        }
        RequestTokenError::Other(m) => TokenFailure::Other(m),
    }
}

impl OidcProviders {
    /// Starts a login with `provider`: the provider's authorization URL and the login-state
    /// cookie to set. `return_to` is the absolute URL the user asked for; `redirect_uri` is
    /// this host's callback (`https://{host}/.warden/callback`), registered at the provider.
    pub fn begin_login(
        &self,
        provider: &str,
        return_to: &str,
        redirect_uri: &str,
        cookie_key: &CookieKey,
        now: i64,
    ) -> Result<LoginStart, OidcError> {
        let p = self
            .provider(provider)
            .ok_or_else(|| OidcError::UnknownProvider(provider.to_string()))?;
        let Some(d) = p.discovered().filter(|_| !p.is_unreachable()) else {
            count_login(&p.name, "provider_unavailable");
            return Err(OidcError::ProviderUnavailable(provider.to_string()));
        };
        if is_http_url(redirect_uri).is_none() {
            return Err(OidcError::InvalidUrl(redirect_uri.to_string()));
        }
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|_| OidcError::InvalidUrl(redirect_uri.to_string()))?;
        let return_to = match is_http_url(return_to) {
            Some(_) if return_to.len() <= MAX_RETURN_TO => return_to.to_string(),
            Some(u) => format!("{}/", u.origin().ascii_serialization()),
            None => return Err(OidcError::InvalidUrl(return_to.to_string())),
        };
        let rng = SystemRandom::new();
        let state = random_token(&rng)?;
        let nonce = random_token(&rng)?;
        let verifier = random_token(&rng)?;
        let challenge =
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.clone()));
        let (s, n) = (state.clone(), nonce.clone());
        let mut req = d
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(s),
                move || Nonce::new(n),
            )
            .set_pkce_challenge(challenge)
            .set_redirect_uri(Cow::Owned(redirect));
        // The client adds `openid` itself.
        for scope in p.conf.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(scope.clone()));
        }
        for (k, v) in &p.conf.extra_auth_params {
            req = req.add_extra_param(k.clone(), v.clone());
        }
        let (authorize_url, _, _) = req.url();
        let sealed = LoginState {
            p: p.name.to_string(),
            s: state.clone(),
            n: nonce,
            v: verifier,
            r: return_to,
            u: redirect_uri.to_string(),
        };
        // Serializing a struct of strings cannot fail.
        let payload = serde_json::to_vec(&sealed).unwrap_or_default();
        Ok(LoginStart {
            authorize_url: authorize_url.into(),
            state_cookie_base: state_cookie_base(&state),
            state_cookie_value: cookie_key.seal(&payload, now + LOGIN_STATE_TTL_SECS),
            state_cookie_max_age: LOGIN_STATE_TTL_SECS,
        })
    }

    /// Completes a login from the provider's redirect: `callback_query` is the callback's
    /// query string, `state_cookie_values` every value of the login-state cookie the browser
    /// sent (see [`state_cookie_base_for_callback`]). Exchanges the code, verifies the ID token
    /// and reads userinfo when groups come from there. Counts `warden_logins_total`.
    pub async fn complete_login(
        &self,
        callback_query: &str,
        state_cookie_values: &[&str],
        redirect_uri: &str,
        cookie_key: &CookieKey,
        now: i64,
    ) -> Result<CompletedLogin, LoginError> {
        let mut provider_label: Option<Arc<str>> = None;
        let result = self
            .complete(
                callback_query,
                state_cookie_values,
                redirect_uri,
                cookie_key,
                now,
                &mut provider_label,
            )
            .await;
        let provider = provider_label.as_deref().unwrap_or("none");
        match &result {
            Ok(_) => count_login(provider, "ok"),
            Err(e) => {
                count_login(provider, e.reason());
                tracing::info!(provider, reason = e.reason(), error = %e, "login failed");
            }
        }
        result
    }

    async fn complete(
        &self,
        query: &str,
        cookie_values: &[&str],
        redirect_uri: &str,
        cookie_key: &CookieKey,
        now: i64,
        provider_label: &mut Option<Arc<str>>,
    ) -> Result<CompletedLogin, LoginError> {
        let state_param = param(query, "state").ok_or(LoginError::StateMissing)?;
        let login = open_state(&state_param, cookie_values, cookie_key, now)?;
        let p = self
            .provider(&login.p)
            .ok_or_else(|| LoginError::UnknownProvider(login.p.clone()))?;
        *provider_label = Some(p.name.clone());
        if login.u != redirect_uri {
            return Err(LoginError::StateInvalid);
        }
        if !self
            .used_states
            .first_use(&login.s, now + LOGIN_STATE_TTL_SECS, now)
        {
            return Err(LoginError::StateReplayed);
        }
        let d = p
            .discovered()
            .ok_or_else(|| LoginError::ProviderUnavailable("discovery pending".into()))?;
        // RFC 9207: a provider that names itself in the callback must be the one we sent the
        // user to (mix-up defence).
        if param(query, "iss").is_some_and(|iss| iss != d.issuer.as_str()) {
            return Err(LoginError::IssuerMismatch);
        }
        if let Some(error) = param(query, "error") {
            return Err(LoginError::IdpError {
                error: sanitize(&error, 64),
                description: param(query, "error_description").map(|d| sanitize(&d, 200)),
            });
        }
        let code = param(query, "code").ok_or(LoginError::CodeMissing)?;
        let redirect = RedirectUrl::new(login.u.clone()).map_err(|_| LoginError::StateInvalid)?;
        let response = d
            .client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| LoginError::ProviderUnavailable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(login.v.clone()))
            .set_redirect_uri(Cow::Owned(redirect))
            .request_async(&p.http)
            .await
            .map_err(|e| match token_failure(e) {
                TokenFailure::Unavailable(m) => {
                    p.mark_unreachable();
                    LoginError::ProviderUnavailable(m)
                }
                TokenFailure::InvalidGrant(m) | TokenFailure::Other(m) => {
                    LoginError::CodeExchangeFailed(m)
                }
            })?;
        let token = response.id_token().ok_or_else(|| {
            LoginError::IdTokenInvalid("the token response has no id_token".into())
        })?;
        let nonce = Nonce::new(login.n.clone());
        let verified = id_token::verify(
            &d,
            &p.http,
            &p.client_id,
            &p.secret,
            token,
            NonceCheck::Expect(&nonce),
            now,
        )
        .await
        .map_err(|e| match e {
            IdTokenError::NonceMismatch => LoginError::NonceMismatch,
            IdTokenError::Invalid(m) => LoginError::IdTokenInvalid(m),
        })?;

        let mut profile = Profile::default();
        let from_id_token = p.conf.groups_from == GroupsFrom::IdToken;
        let had_groups = profile::merge(
            &mut profile,
            &verified.claims,
            &p.conf.claims,
            from_id_token,
        );
        if !from_id_token || !had_groups {
            match &d.userinfo_endpoint {
                Some(endpoint) => {
                    let claims = userinfo::fetch(
                        &p.http,
                        endpoint,
                        response.access_token().secret(),
                        &verified.subject,
                    )
                    .await
                    .map_err(|e| match e {
                        UserinfoError::Transport(t) => {
                            LoginError::ProviderUnavailable(t.to_string())
                        }
                        other => LoginError::UserinfoFailed(other.to_string()),
                    })?;
                    profile::merge(&mut profile, &claims, &p.conf.claims, true);
                }
                None if !from_id_token => {
                    return Err(LoginError::UserinfoFailed(
                        "groups_from is userinfo but the provider has no userinfo endpoint".into(),
                    ))
                }
                None => {}
            }
        }
        let sid = verified
            .claims
            .get("sid")
            .and_then(|v| v.as_str())
            .map(Into::into);
        Ok(CompletedLogin {
            new_session: NewSession {
                provider: p.name.clone(),
                issuer_url: d.issuer.as_str().into(),
                subject: verified.subject.into(),
                sid,
                profile,
                tokens: Tokens {
                    refresh_token: response
                        .refresh_token()
                        .map(|t| Secret::new(t.secret().as_str())),
                    access_token: Some(Secret::new(response.access_token().secret().as_str())),
                    access_token_expires_at: response.expires_in().map(|d| {
                        now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    }),
                },
            },
            return_to: login.r,
            state_cookie_base: state_cookie_base(&state_param),
        })
    }
}

/// The login state among `values` whose `state` is `state`. When none matches, the most telling
/// reason: an expired cookie, then an altered one, then none at all.
fn open_state(
    state: &str,
    values: &[&str],
    key: &CookieKey,
    now: i64,
) -> Result<LoginState, LoginError> {
    let mut failure = LoginError::StateMissing;
    for v in values {
        match key.open(v, now) {
            Ok(payload) => match serde_json::from_slice::<LoginState>(&payload) {
                Ok(login) if login.s == state => return Ok(login),
                Ok(_) => {}
                Err(_) => failure = LoginError::StateInvalid,
            },
            Err(CookieError::Expired) => failure = LoginError::StateExpired,
            Err(CookieError::BadSignature | CookieError::Malformed) => {
                if !matches!(failure, LoginError::StateExpired) {
                    failure = LoginError::StateInvalid;
                }
            }
        }
    }
    Err(failure)
}

pub(crate) fn count_login(provider: &str, result: &str) {
    metrics::LOGINS_TOTAL
        .with_label_values(&[provider, result])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::CookieSecret;

    fn key() -> CookieKey {
        CookieSecret::new(&[7u8; 32])
            .unwrap()
            .key(crate::session::cookie::purpose::LOGIN_STATE)
    }

    fn sealed(state: &str, expires_at: i64) -> String {
        let s = LoginState {
            p: "corp".into(),
            s: state.into(),
            n: "n".into(),
            v: "v".into(),
            r: "https://app.example.com/x".into(),
            u: "https://app.example.com/.warden/callback".into(),
        };
        key().seal(&serde_json::to_vec(&s).unwrap(), expires_at)
    }

    #[test]
    fn cookie_names_follow_the_state() {
        let a = state_cookie_base("state-a");
        assert!(a.starts_with(LOGIN_STATE_COOKIE_PREFIX));
        assert_eq!(a.len(), LOGIN_STATE_COOKIE_PREFIX.len() + 12);
        assert_ne!(a, state_cookie_base("state-b"));
        assert_eq!(
            state_cookie_base_for_callback("code=c&state=state-a").as_deref(),
            Some(a.as_str())
        );
        assert_eq!(state_cookie_base_for_callback("code=c"), None);
    }

    #[test]
    fn the_matching_state_is_found_among_several_cookies() {
        let (a, b) = (sealed("a", 100), sealed("b", 100));
        let found = open_state("b", &[&a, &b], &key(), 50).unwrap();
        assert_eq!(found.s, "b");
        assert!(matches!(
            open_state("c", &[&a, &b], &key(), 50),
            Err(LoginError::StateMissing)
        ));
        assert!(matches!(
            open_state("a", &[], &key(), 50),
            Err(LoginError::StateMissing)
        ));
    }

    #[test]
    fn expired_and_forged_cookies_say_so() {
        let a = sealed("a", 100);
        assert!(matches!(
            open_state("a", &[&a], &key(), 100),
            Err(LoginError::StateExpired)
        ));
        let forged = CookieSecret::new(&[8u8; 32])
            .unwrap()
            .key(crate::session::cookie::purpose::LOGIN_STATE)
            .seal(br#"{"p":"corp","s":"a","n":"","v":"","r":"","u":""}"#, 100);
        assert!(matches!(
            open_state("a", &[&forged], &key(), 50),
            Err(LoginError::StateInvalid)
        ));
        assert!(matches!(
            open_state("a", &[&forged, &sealed("a", 10)], &key(), 50),
            Err(LoginError::StateExpired)
        ));
        let not_json = key().seal(b"nope", 100);
        assert!(matches!(
            open_state("a", &[&not_json], &key(), 50),
            Err(LoginError::StateInvalid)
        ));
    }
}
