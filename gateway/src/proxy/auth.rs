//! Who is asking and may they: authentication (bearer token or session cookie), blocks, and
//! the route's policy, evaluated on every request against current identity.

use super::ctx::Ctx;
use super::oidc_endpoints::{request_origin, CALLBACK_PATH};
use super::pages::{self, Refusal};
use super::{respond, Gateway};
use crate::snapshot::{RouteRt, Snapshot};
use pingora::proxy::Session;
use pingora::Result;
use std::sync::Arc;
use std::time::Instant;
use warden_plugins::metrics::AUTHN_TOTAL;
use warden_plugins::oidc::RefreshOutcome;
use warden_plugins::policy::{Decision, RequestFacts, RuleKind};
use warden_plugins::session::{cookie, cookie_header, Session as WardenSession};
use warden_plugins::Identity;

/// What authentication concluded.
pub enum Authn {
    Identity(Arc<Identity>, Option<Arc<WardenSession>>),
    /// No credential, and the request may pass without one (a CORS preflight the policy allows).
    Anonymous,
    /// A response was written.
    Answered,
}

/// `Bearer <token>` (scheme case-insensitive).
fn bearer_token(v: &http::HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    let (scheme, token) = s.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn is_cors_preflight(session: &Session) -> bool {
    let req = session.req_header();
    req.method == http::Method::OPTIONS
        && req.headers.contains_key(http::header::ORIGIN)
        && req
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// How a decision is named in logs and (when allowed) responses: `deny[0]`, `allow[2] (staff)`.
pub fn rule_label(d: &Decision) -> String {
    let kind = match d.rule.kind {
        RuleKind::Allow => "allow",
        RuleKind::Deny => "deny",
        RuleKind::Default => return "default".to_string(),
    };
    match &d.rule.name {
        Some(n) => format!("{kind}[{}] ({n})", d.rule.index),
        None => format!("{kind}[{}]", d.rule.index),
    }
}

impl Gateway {
    /// Authenticates and authorizes a request to a protected route. `Ok(true)`: a response was
    /// written and proxying stops.
    pub(super) async fn guard(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        route: &Arc<RouteRt>,
        snap: &Arc<Snapshot>,
        path: &str,
    ) -> Result<bool> {
        let now = self.state.shared.now();
        let preflight = is_cors_preflight(session);
        let identity = match self
            .authenticate(session, ctx, route, snap, now, preflight)
            .await?
        {
            Authn::Identity(id, s) => {
                ctx.session = s;
                Some(id)
            }
            Authn::Anonymous => None,
            Authn::Answered => return Ok(true),
        };
        if let Some(id) = &identity {
            if self.state.shared.blocks.is_blocked(id, now) {
                ctx.identity = identity.clone();
                self.audit(ctx, route, session, "deny", "blocked", "blocklist");
                route.metrics.denied.inc();
                return self
                    .forbid(
                        session,
                        ctx,
                        "blocked",
                        "your access has been suspended",
                        None,
                    )
                    .await;
            }
        }
        let Some(policy) = &route.auth.policy else {
            // Validation requires a policy on every protected route; fail closed regardless.
            return self
                .forbid(session, ctx, "no_policy", "this route has no policy", None)
                .await;
        };
        let facts = RequestFacts {
            method: session.req_header().method.as_str(),
            path,
            client_ip: ctx
                .client_ip
                .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
            client_cert: ctx.client_cert.as_deref(),
            cors_preflight: preflight,
            now_secs: now,
        };
        let t0 = Instant::now();
        let decision = policy.evaluate(&facts, identity.as_deref());
        crate::metrics::AUTHZ_EVALUATION_DURATION.observe(t0.elapsed().as_secs_f64());
        if let Some(shadow) = &route.auth.shadow {
            let sd = shadow.evaluate(&facts, identity.as_deref());
            if sd.allowed != decision.allowed {
                route.metrics.shadow_mismatches.inc();
                tracing::info!(
                    request_id = %ctx.request_id,
                    route = %route.name,
                    subject = identity.as_ref().map(|i| &*i.subject),
                    enforced = if decision.allowed { "allow" } else { "deny" },
                    enforced_rule = %rule_label(&decision),
                    shadow = if sd.allowed { "allow" } else { "deny" },
                    shadow_rule = %rule_label(&sd),
                    "shadow policy disagrees"
                );
            }
        }
        ctx.identity = identity;
        if decision.allowed {
            route.metrics.allowed.inc();
            let rate = snap.audit_allow_sample_rate;
            if rate > 0.0 && fastrand::f64() < rate {
                self.audit(
                    ctx,
                    route,
                    session,
                    "allow",
                    decision.reason.as_str(),
                    &rule_label(&decision),
                );
            }
            return Ok(false);
        }
        route.metrics.denied.inc();
        let label = rule_label(&decision);
        self.audit(
            ctx,
            route,
            session,
            "deny",
            decision.reason.as_str(),
            &label,
        );
        let detail = route.auth.deny_detail.then_some(label.as_str());
        self.forbid(
            session,
            ctx,
            decision.reason.as_str(),
            "you are not allowed to access this resource",
            detail,
        )
        .await
    }

    async fn forbid(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        reason: &str,
        message: &str,
        rule: Option<&str>,
    ) -> Result<bool> {
        let r = Refusal {
            status: 403,
            error: "forbidden",
            reason,
            message,
            rule,
            request_id: &ctx.request_id,
        };
        pages::refuse(session, &r, &[]).await?;
        Ok(true)
    }

    async fn unauthenticated(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        route: &RouteRt,
        reason: &str,
        message: &str,
    ) -> Result<Authn> {
        let challenge = if route.auth.bearer.is_empty() {
            "Session realm=\"warden\"".to_string()
        } else if reason == "no_credentials" {
            "Bearer realm=\"warden\"".to_string()
        } else {
            // The reason code leads the description: clients that only see headers (HEAD,
            // proxies that drop bodies) still learn it.
            format!(
                "Bearer realm=\"warden\", error=\"invalid_token\", error_description=\"{reason}: {}\"",
                message.replace('"', "'")
            )
        };
        let error = if reason == "no_credentials" {
            "unauthenticated"
        } else {
            "invalid_token"
        };
        let r = Refusal {
            status: 401,
            error,
            reason,
            message,
            rule: None,
            request_id: &ctx.request_id,
        };
        pages::refuse(session, &r, &[("www-authenticate", &challenge)]).await?;
        Ok(Authn::Answered)
    }

    async fn authenticate(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        route: &Arc<RouteRt>,
        snap: &Arc<Snapshot>,
        now: i64,
        preflight: bool,
    ) -> Result<Authn> {
        let authorization = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .cloned();
        if let Some(h) = &authorization {
            if h.len() > snap.identity.max_authorization {
                let r = Refusal {
                    status: 431,
                    error: "header_too_large",
                    reason: "authorization_too_large",
                    message: "the Authorization header is larger than Warden accepts",
                    rule: None,
                    request_id: &ctx.request_id,
                };
                pages::refuse(session, &r, &[]).await?;
                return Ok(Authn::Answered);
            }
        }
        if !route.auth.bearer.is_empty() {
            if let (Some(token), Some(bearer)) = (
                authorization.as_ref().and_then(bearer_token),
                &snap.identity.bearer,
            ) {
                return match bearer.authenticate(token, &route.auth.bearer).await {
                    Ok(id) => Ok(Authn::Identity(id, None)),
                    Err(e) => {
                        tracing::info!(request_id = %ctx.request_id, route = %route.name, reason = e.code(), "bearer token refused");
                        self.unauthenticated(session, ctx, route, e.code(), &e.description())
                            .await
                    }
                };
            }
        }
        if let (Some(provider), Some(rt)) = (&route.auth.login, &snap.identity.cookie) {
            if let Some(s) = self.session_from_cookie(session, rt, provider, now).await {
                if self.keep_current(ctx, snap, &s, now).await {
                    return Ok(Authn::Identity(s.identity(), Some(s)));
                }
            }
        }
        if preflight {
            if let Some(policy) = &route.auth.policy {
                let facts = RequestFacts {
                    method: "OPTIONS",
                    path: ctx
                        .normalized_path
                        .as_deref()
                        .unwrap_or(session.req_header().uri.path()),
                    client_ip: ctx
                        .client_ip
                        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
                    client_cert: ctx.client_cert.as_deref(),
                    cors_preflight: true,
                    now_secs: now,
                };
                if policy.evaluate(&facts, None).allowed {
                    return Ok(Authn::Anonymous);
                }
            }
        }
        if route.auth.login.is_some() && pages::is_browser_navigation(session) {
            if let Some(answered) = self.begin_login(session, ctx, route, snap, now).await? {
                return Ok(answered);
            }
        }
        self.unauthenticated(
            session,
            ctx,
            route,
            "no_credentials",
            "sign in or present a bearer token",
        )
        .await
    }

    /// The caller's live session for `provider`, from the session cookie. A session id found in
    /// the local store is proof enough (256 random bits); the cookie's signature is checked
    /// only when the local store does not know the id, before a remote store is asked.
    async fn session_from_cookie(
        &self,
        session: &Session,
        rt: &crate::identity::CookieRt,
        provider: &str,
        now: i64,
    ) -> Option<Arc<WardenSession>> {
        let store = &self.state.shared.sessions;
        let name = rt.conf.session_cookie_name();
        let mut candidates: Vec<String> = Vec::new();
        for h in session.req_header().headers.get_all(http::header::COOKIE) {
            for value in cookie_header::find(h.as_bytes(), name) {
                let Ok(id) = cookie::parse_unverified(value) else {
                    continue;
                };
                if let Some(s) = store.get_local(&id, now) {
                    if &**s.provider() == provider {
                        s.touch(now);
                        AUTHN_TOTAL
                            .with_label_values(&["session", provider, "ok"])
                            .inc();
                        return Some(s);
                    }
                    continue;
                }
                candidates.push(value.to_string());
            }
        }
        for value in candidates {
            match rt.session_key.decode(&value) {
                Ok(id) => {
                    if let Ok(Some(s)) = store.get(&id, now).await {
                        if &**s.provider() == provider {
                            s.touch(now);
                            AUTHN_TOTAL
                                .with_label_values(&["session", provider, "ok"])
                                .inc();
                            return Some(s);
                        }
                    }
                    AUTHN_TOTAL
                        .with_label_values(&["session", provider, "no_session"])
                        .inc();
                }
                Err(_) => {
                    tracing::info!("session cookie with a bad signature refused");
                    AUTHN_TOTAL
                        .with_label_values(&["session", provider, "bad_cookie"])
                        .inc();
                }
            }
        }
        None
    }

    /// Refreshes the session's tokens or profile when due (a cheap check on every request;
    /// the provider is asked once per access-token lifetime or `userinfo_refresh`, single-flight
    /// per session). `false`: the provider refused the refresh and the session has ended.
    async fn keep_current(
        &self,
        ctx: &Ctx,
        snap: &Snapshot,
        s: &Arc<WardenSession>,
        now: i64,
    ) -> bool {
        let Some(oidc) = &snap.identity.oidc else {
            return true;
        };
        if !oidc.needs_refresh(s, now) {
            return true;
        }
        match oidc.refresh(s, &*self.state.shared.sessions, now).await {
            RefreshOutcome::Ended => {
                tracing::info!(request_id = %ctx.request_id, provider = %s.provider(), subject = %s.subject(), session = %s.handle(), "the provider refused to refresh the session; it has ended");
                false
            }
            RefreshOutcome::Refreshed | RefreshOutcome::Unavailable => true,
        }
    }

    /// Starts an OIDC login for a browser without a session: a redirect to the provider with
    /// the login-state cookie, or a 503 page when the provider cannot be reached.
    async fn begin_login(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        route: &Arc<RouteRt>,
        snap: &Arc<Snapshot>,
        now: i64,
    ) -> Result<Option<Authn>> {
        let (Some(provider), Some(oidc), Some(rt)) = (
            &route.auth.login,
            &snap.identity.oidc,
            &snap.identity.cookie,
        ) else {
            return Ok(None);
        };
        let req = session.req_header();
        let Some(host) = super::request_host(req).and_then(crate::routing::normalize_host) else {
            return Ok(None);
        };
        let origin = request_origin(session, ctx, &host);
        // The URL as asked for, not normalised: after sign-in the browser asks for it again.
        let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let return_to = format!("{origin}{pq}");
        let redirect_uri = format!("{origin}{CALLBACK_PATH}");
        match oidc.begin_login(provider, &return_to, &redirect_uri, &rt.login_key, now) {
            Ok(start) => {
                let name = rt.conf.host_cookie_name(&start.state_cookie_base);
                let cookie = rt.conf.set_host_cookie(
                    &name,
                    &start.state_cookie_value,
                    start.state_cookie_max_age,
                );
                respond::redirect(
                    session,
                    302,
                    &start.authorize_url,
                    &[("x-request-id", &ctx.request_id), ("set-cookie", &cookie)],
                )
                .await?;
            }
            Err(e) => {
                tracing::warn!(request_id = %ctx.request_id, route = %route.name, %provider, reason = e.reason(), error = %e, "cannot start a login");
                let r = Refusal {
                    status: e.status(),
                    error: "login_unavailable",
                    reason: e.reason(),
                    message: e.user_message(),
                    rule: None,
                    request_id: &ctx.request_id,
                };
                let retry: &[(&'static str, &str)] = if e.status() == 503 {
                    &[("retry-after", "30")]
                } else {
                    &[]
                };
                pages::refuse(session, &r, retry).await?;
            }
        }
        Ok(Some(Authn::Answered))
    }

    /// One audit line (its own log, separate from the access log).
    pub(super) fn audit(
        &self,
        ctx: &Ctx,
        route: &RouteRt,
        session: &Session,
        decision: &str,
        reason: &str,
        rule: &str,
    ) {
        let Some(sink) = crate::jsonlog::AUDIT.get() else {
            return;
        };
        let id = ctx.identity.as_deref();
        let mut line = crate::jsonlog::Line::new();
        line.str("type", "audit")
            .time("time")
            .str("request_id", &ctx.request_id)
            .str("route", &route.name)
            .str("method", session.req_header().method.as_str())
            .str(
                "path",
                ctx.normalized_path
                    .as_deref()
                    .unwrap_or(session.req_header().uri.path()),
            )
            .opt_str("subject", id.map(|i| &*i.subject))
            .opt_str("email", id.and_then(|i| i.email.as_deref()))
            .opt_str("auth", id.map(|i| i.method.kind()))
            .opt_str("issuer", id.map(|i| i.method.source_name()))
            .str("decision", decision)
            .str("rule", rule)
            .str("reason", reason)
            .opt_str("client", ctx.client_ip.map(|c| c.to_string()).as_deref());
        line.send(Some(sink));
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;
    use http::HeaderValue;

    #[test]
    fn bearer_token_takes_the_scheme_and_a_visible_ascii_token() {
        let v = |b: &[u8]| HeaderValue::from_bytes(b).unwrap();
        assert_eq!(bearer_token(&v(b"Bearer abc.def.ghi")), Some("abc.def.ghi"));
        assert_eq!(bearer_token(&v(b"bEaReR  abc ")), Some("abc"));
        assert_eq!(
            bearer_token(&v(b"Bearer\tabc")),
            None,
            "the scheme ends at a space"
        );
        assert_eq!(bearer_token(&v(b"Basic abc")), None);
        assert_eq!(bearer_token(&v(b"Bearer ")), None);
        assert_eq!(bearer_token(&v(b"Bearer")), None);
        // A token with bytes outside visible ASCII is refused, not passed on.
        assert_eq!(bearer_token(&v("Bearer abcé".as_bytes())), None);
        assert_eq!(bearer_token(&v(b"Bearer abc\xff")), None);
    }
}
