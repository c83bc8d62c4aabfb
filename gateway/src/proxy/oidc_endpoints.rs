//! Warden's own OIDC endpoints on every host of a route with `auth.login`:
//! `/.warden/callback` (the provider's redirect after sign-in), `/.warden/sign_out`,
//! `/.warden/userinfo` (who am I, as JSON) and `/.warden/backchannel_logout` (OpenID Connect
//! Back-Channel Logout 1.0). They are answered before routing and route auth, so they work
//! whatever path prefixes the host's routes have.

use super::ctx::Ctx;
use super::pages::{self, Refusal};
use super::{request_host, respond, Gateway};
use crate::conf::types::Route;
use crate::identity::CookieRt;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use pingora::proxy::Session;
use pingora::Result;
use std::collections::HashMap;
use std::sync::Arc;
use warden_plugins::oidc::{self, OidcProviders};
use warden_plugins::session::{
    cookie_header, RevokeReason, Selector, Session as WardenSession, SessionHandle, SessionStore,
};

/// Where the provider sends the browser back after sign-in (register `{origin}` + this).
pub const CALLBACK_PATH: &str = "/.warden/callback";
pub const SIGN_OUT_PATH: &str = "/.warden/sign_out";
pub const USERINFO_PATH: &str = "/.warden/userinfo";
pub const BACKCHANNEL_LOGOUT_PATH: &str = "/.warden/backchannel_logout";
/// Longest back-channel logout request body read (a logout token is a few KiB).
const MAX_LOGOUT_BODY: usize = 64 * 1024;

/// The hosts of routes with `auth.login`, and the provider each names (the first route's, when
/// routes of one host name different providers).
#[derive(Debug, Default)]
pub struct LoginHosts {
    exact: HashMap<Box<str>, Arc<str>>,
    /// Keyed by the suffix after `*.`, as the router does.
    wildcard: HashMap<Box<str>, Arc<str>>,
}

impl LoginHosts {
    pub fn from_routes(routes: &[Route]) -> Self {
        let mut hosts = Self::default();
        for r in routes.iter().filter(|r| !r.public) {
            let Some(login) = r.auth.as_ref().and_then(|a| a.login.as_deref()) else {
                continue;
            };
            for h in r.host.as_slice() {
                let h = h.to_ascii_lowercase();
                let (map, key) = match h.strip_prefix("*.") {
                    Some(suffix) => (&mut hosts.wildcard, suffix.to_string()),
                    None => (&mut hosts.exact, h),
                };
                map.entry(key.into_boxed_str())
                    .or_insert_with(|| login.into());
            }
        }
        hosts
    }

    /// The provider of browser logins on `host` (lowercase, without port).
    pub fn provider(&self, host: &str) -> Option<&Arc<str>> {
        self.exact.get(host).or_else(|| {
            host.split_once('.')
                .and_then(|(_, suffix)| self.wildcard.get(suffix))
        })
    }
}

/// `scheme://host[:port]` as the browser addressed this request: the scheme from the listener
/// (or `X-Forwarded-Proto` from a trusted proxy), the host as routed, the port as sent.
pub(super) fn request_origin(session: &Session, ctx: &Ctx, host: &str) -> String {
    let req = session.req_header();
    let forwarded_https = ctx.peer_trusted
        && req
            .headers
            .get(&super::X_FORWARDED_PROTO)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let scheme = if ctx.tls || forwarded_https {
        "https"
    } else {
        "http"
    };
    let port = request_host(req)
        .filter(|h| !h.ends_with(']'))
        .and_then(|h| h.rsplit_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    }
}

/// Every value of cookie `name` in the request.
fn cookie_values<'a>(session: &'a Session, name: &'a str) -> Vec<&'a str> {
    session
        .req_header()
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|h| cookie_header::find(h.as_bytes(), name))
        .collect()
}

/// The caller's session from the session cookie, with the signature checked (these endpoints
/// are not on the hot path), whatever its provider.
async fn cookie_session(
    session: &Session,
    rt: &CookieRt,
    store: &dyn SessionStore,
    now: i64,
) -> Option<Arc<WardenSession>> {
    for value in cookie_values(session, rt.conf.session_cookie_name()) {
        let Ok(id) = rt.session_key.decode(value) else {
            continue;
        };
        if let Ok(Some(s)) = store.get(&id, now).await {
            return Some(s);
        }
    }
    None
}

/// Whether `path` is one of Warden's OIDC endpoints on `host`: on hosts with browser logins,
/// and back-channel logout on any host (providers often call it by an internal name; the
/// logout token is its own authentication).
pub(super) fn is_endpoint(snap: &Snapshot, host: &str, path: &str) -> bool {
    if !path.starts_with("/.warden/") {
        return false;
    }
    let id = &snap.identity;
    if id.oidc.is_none() || id.cookie.is_none() {
        return false;
    }
    match path {
        BACKCHANNEL_LOGOUT_PATH => true,
        CALLBACK_PATH | SIGN_OUT_PATH | USERINFO_PATH => id.login_hosts.provider(host).is_some(),
        _ => false,
    }
}

impl Gateway {
    /// Answers a request for which [`is_endpoint`] holds. Always answers (`Ok(true)`).
    pub(super) async fn oidc_endpoint(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        snap: &Arc<Snapshot>,
        host: &str,
        path: &str,
    ) -> Result<bool> {
        let id = &snap.identity;
        let (Some(providers), Some(rt)) = (&id.oidc, &id.cookie) else {
            return self
                .refuse(
                    session,
                    ctx,
                    404,
                    "not_found",
                    "no route for this host and path",
                )
                .await;
        };
        let origin = request_origin(session, ctx, host);
        match path {
            CALLBACK_PATH => {
                self.callback(session, ctx, snap, providers, rt, &origin)
                    .await?
            }
            SIGN_OUT_PATH => self.sign_out(session, ctx, providers, rt, &origin).await?,
            USERINFO_PATH => self.userinfo(session, ctx, rt).await?,
            _ => self.backchannel_logout(session, ctx, providers).await?,
        }
        Ok(true)
    }

    async fn callback(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        snap: &Snapshot,
        providers: &OidcProviders,
        rt: &CookieRt,
        origin: &str,
    ) -> Result<()> {
        let now = self.state.shared.now();
        let query = session.req_header().uri.query().unwrap_or("").to_string();
        let state_cookie = oidc::state_cookie_base_for_callback(&query)
            .map(|base| rt.conf.host_cookie_name(&base));
        let values = state_cookie
            .as_deref()
            .map(|name| cookie_values(session, name))
            .unwrap_or_default();
        let redirect_uri = format!("{origin}{CALLBACK_PATH}");
        let result = providers
            .complete_login(&query, &values, &redirect_uri, &rt.login_key, now)
            .await;
        let clear_state = state_cookie
            .as_deref()
            .map(|n| rt.conf.clear_host_cookie(n));
        let login = match result {
            Ok(login) => login,
            Err(e) => {
                let mut extra = Vec::new();
                if let Some(c) = &clear_state {
                    extra.push(("set-cookie", c.as_str()));
                }
                let r = Refusal {
                    status: e.status(),
                    error: "login_failed",
                    reason: e.reason(),
                    message: e.user_message(),
                    rule: None,
                    request_id: &ctx.request_id,
                };
                return pages::refuse(session, &r, &extra).await;
            }
        };
        let store = &*self.state.shared.sessions;
        let created = WardenSession::create(login.new_session, now, rt.conf.lifetime());
        let s = match created {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "cannot create a session");
                return self.login_unavailable(session, ctx).await;
            }
        };
        if let Err(e) = store.insert(s.clone()).await {
            tracing::error!(request_id = %ctx.request_id, error = %e, "cannot store a session");
            return self.login_unavailable(session, ctx).await;
        }
        tracing::info!(
            request_id = %ctx.request_id,
            provider = %s.provider(),
            subject = %s.subject(),
            session = %s.handle(),
            "signed in"
        );
        let set_session = rt.conf.set_session_cookie(&rt.session_key.encode(s.id()));
        let location = safe_return(&login.return_to, origin, snap);
        let mut extra: Vec<(&'static str, &str)> = vec![
            ("x-request-id", &ctx.request_id),
            ("set-cookie", &set_session),
        ];
        if let Some(c) = &clear_state {
            extra.push(("set-cookie", c));
        }
        respond::redirect(session, 302, &location, &extra).await
    }

    async fn login_unavailable(&self, session: &mut Session, ctx: &Ctx) -> Result<()> {
        let r = Refusal {
            status: 503,
            error: "login_failed",
            reason: "session_store_unavailable",
            message: "Sign-in cannot be completed right now. Please try again in a minute.",
            rule: None,
            request_id: &ctx.request_id,
        };
        pages::refuse(session, &r, &[]).await
    }

    async fn sign_out(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        providers: &OidcProviders,
        rt: &CookieRt,
        origin: &str,
    ) -> Result<()> {
        let now = self.state.shared.now();
        let store = &*self.state.shared.sessions;
        let home = format!("{origin}/");
        let mut location = home.clone();
        if let Some(s) = cookie_session(session, rt, store, now).await {
            if let Err(e) = store
                .revoke(&Selector::Id(*s.id()), RevokeReason::SignOut)
                .await
            {
                tracing::warn!(request_id = %ctx.request_id, error = %e, "cannot end a session at sign-out");
            }
            tracing::info!(request_id = %ctx.request_id, provider = %s.provider(), subject = %s.subject(), session = %s.handle(), "signed out");
            if let Some(url) = providers.end_session_url(s.provider(), &home, None) {
                location = url;
            }
        }
        let clear = rt.conf.clear_session_cookie();
        respond::redirect(
            session,
            302,
            &location,
            &[("x-request-id", &ctx.request_id), ("set-cookie", &clear)],
        )
        .await
    }

    async fn userinfo(&self, session: &mut Session, ctx: &Ctx, rt: &CookieRt) -> Result<()> {
        let now = self.state.shared.now();
        let store = &*self.state.shared.sessions;
        let Some(s) = cookie_session(session, rt, store, now).await else {
            let r = Refusal {
                status: 401,
                error: "unauthenticated",
                reason: "no_session",
                message: "not signed in",
                rule: None,
                request_id: &ctx.request_id,
            };
            // Always JSON: this endpoint is for scripts.
            return respond::write(
                session,
                r.status,
                "application/json",
                Bytes::from(
                    serde_json::json!({
                        "error": r.error,
                        "reason": r.reason,
                        "message": r.message,
                        "request_id": r.request_id,
                    })
                    .to_string()
                        + "\n",
                ),
                &[
                    ("x-request-id", r.request_id),
                    ("www-authenticate", "Session realm=\"warden\""),
                ],
            )
            .await;
        };
        s.touch(now);
        let id = s.identity();
        let body = serde_json::json!({
            "sub": &*id.subject,
            "email": id.email.as_deref(),
            "name": id.name.as_deref(),
            "groups": id.groups.iter().map(|g| &**g).collect::<Vec<_>>(),
            "issuer": &*id.issuer_url,
            "provider": &**s.provider(),
            "session": s.handle().to_string(),
            "expires_at": s.expires_at(),
            "idle_expires_at": s.idle_expires_at(),
        });
        respond::write(
            session,
            200,
            "application/json",
            Bytes::from(body.to_string() + "\n"),
            &[("x-request-id", &ctx.request_id)],
        )
        .await
    }

    async fn backchannel_logout(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        providers: &OidcProviders,
    ) -> Result<()> {
        if session.req_header().method != http::Method::POST {
            return respond::error(
                session,
                405,
                "method_not_allowed",
                "back-channel logout takes a POST with a logout_token",
                &ctx.request_id,
                &[("allow", "POST"), ("x-request-id", &ctx.request_id)],
            )
            .await;
        }
        let mut body = Vec::new();
        let mut too_large = false;
        while let Some(chunk) = session.read_request_body().await? {
            if body.len() + chunk.len() > MAX_LOGOUT_BODY {
                too_large = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let now = self.state.shared.now();
        let verified = if too_large {
            Err(oidc::LogoutError::Malformed)
        } else {
            providers.verify_logout_token(&body, now).await
        };
        let req = match verified {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(request_id = %ctx.request_id, reason = e.reason(), error = %e, "back-channel logout refused");
                let body = serde_json::json!({
                    "error": if e.status() == 503 { "temporarily_unavailable" } else { "invalid_request" },
                    "error_description": e.to_string(),
                })
                .to_string();
                return respond::write(
                    session,
                    e.status(),
                    "application/json",
                    Bytes::from(body),
                    &[("x-request-id", &ctx.request_id)],
                )
                .await;
            }
        };
        let ended = end_sessions(&*self.state.shared.sessions, &req).await;
        tracing::info!(
            request_id = %ctx.request_id,
            provider = %req.provider,
            sid = req.sid.as_deref(),
            subject = req.sub.as_deref(),
            ended,
            "back-channel logout"
        );
        respond::write(
            session,
            200,
            "text/plain; charset=utf-8",
            Bytes::new(),
            &[("x-request-id", &ctx.request_id)],
        )
        .await
    }
}

/// Ends the sessions a verified logout token names: by `sid` when it has one, else every
/// session of `sub` from that provider. Returns how many ended.
async fn end_sessions(store: &dyn SessionStore, req: &oidc::LogoutRequest) -> usize {
    let reason = RevokeReason::Backchannel;
    if let Some(sid) = &req.sid {
        let sel = Selector::Sid {
            provider: req.provider.to_string(),
            sid: sid.clone(),
        };
        return store.revoke(&sel, reason).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot end sessions for a back-channel logout");
            0
        });
    }
    let Some(sub) = &req.sub else { return 0 };
    // `Selector::Subject` spans providers; a provider may only end its own sessions.
    let listed = match store.list(&Selector::Subject(sub.clone())).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list sessions for a back-channel logout");
            return 0;
        }
    };
    let mut ended = 0;
    for s in listed.iter().filter(|s| *s.provider == *req.provider) {
        let Ok(handle) = u64::from_str_radix(&s.session, 16) else {
            continue;
        };
        ended += store
            .revoke(&Selector::Handle(SessionHandle::from_u64(handle)), reason)
            .await
            .unwrap_or(0);
    }
    ended
}

/// Where to send the browser after sign-in: the URL it first asked for when that is on a host
/// Warden serves and came through this origin's login; this origin's root otherwise.
fn safe_return(return_to: &str, origin: &str, snap: &Snapshot) -> String {
    let ok = url::Url::parse(return_to).ok().is_some_and(|u| {
        let same_origin = u.origin().ascii_serialization() == origin;
        let served = u.host_str().is_some_and(|h| snap.router.serves_host(h));
        same_origin && served
    });
    if ok {
        return_to.to_string()
    } else {
        format!("{origin}/")
    }
}
