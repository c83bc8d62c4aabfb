//! The `ProxyHttp` implementation: Pingora's phases, in order, for every request.

pub mod annotate;
pub mod auth;
pub mod ctx;
pub mod forwarded;
pub mod oidc_endpoints;
pub mod pages;
pub mod respond;

use crate::routing::normalize_host;
use crate::state::State;
use crate::upstream::pool::HashKey;
use async_trait::async_trait;
use ctx::{Ctx, Refusal};
use http::HeaderName;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::H1UpgradePolicy;
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::sync::Arc;

pub struct Gateway {
    pub state: Arc<State>,
}

// Parsed names: a `&str` is parsed again on every lookup and insert.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

fn header<'a>(req: &'a RequestHeader, name: &HeaderName) -> Option<&'a [u8]> {
    req.headers.get(name).map(|v| v.as_bytes())
}

/// The request's host: the Host header, or the authority of an HTTP/2 request.
fn request_host(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

/// [`request_host`] as a header value. The Host header's value is shared, not copied.
fn request_host_value(req: &RequestHeader) -> Option<http::HeaderValue> {
    match req.headers.get(http::header::HOST) {
        Some(v) if v.to_str().is_ok() => Some(v.clone()),
        _ => req
            .uri
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok()),
    }
}

impl Gateway {
    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        status: u16,
        code: &str,
        message: &str,
    ) -> Result<bool> {
        respond::error(
            session,
            status,
            code,
            message,
            &ctx.request_id,
            &[("x-request-id", &ctx.request_id)],
        )
        .await?;
        Ok(true)
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new()
    }

    // Warden compresses nothing. Pingora's default adds its compression module, disabled,
    // which still costs every request five allocations to build and run it.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let snap = self.state.current();
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        if ctx.tls {
            ctx.client_cert = crate::client_certs::from_session(session);
        }
        let peer_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let req = session.req_header();
        if let Some(peer) = peer_ip {
            ctx.peer_trusted = snap.is_trusted_proxy(peer);
            ctx.client_ip = Some(forwarded::client_ip(
                peer,
                header(req, &X_FORWARDED_FOR),
                |ip| snap.is_trusted_proxy(ip),
            ));
        }
        ctx.request_id = header(req, &X_REQUEST_ID)
            .filter(|_| ctx.peer_trusted)
            .and_then(forwarded::inbound_request_id)
            .unwrap_or_else(forwarded::new_request_id);

        let Some(host) = request_host(req).and_then(normalize_host) else {
            ctx.snapshot = Some(snap);
            return self
                .refuse(
                    session,
                    ctx,
                    400,
                    "bad_host",
                    "the request has no valid Host",
                )
                .await;
        };

        if snap.redirect_to_https && !ctx.tls {
            let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let location = match snap.https_port {
                Some(port) => format!("https://{host}:{port}{pq}"),
                None => format!("https://{host}{pq}"),
            };
            ctx.snapshot = Some(snap);
            respond::redirect(
                session,
                308,
                &location,
                &[("x-request-id", &ctx.request_id)],
            )
            .await?;
            return Ok(true);
        }

        // Paths are normalised once: routing, policy and the upstream all see the same path,
        // so `/x/../admin`, `/%61dmin` and `//admin` cannot slip past a rule on `/admin`.
        let path = match warden_plugins::path::normalize(req.uri.path()) {
            Ok(std::borrow::Cow::Borrowed(_)) => None,
            Ok(std::borrow::Cow::Owned(p)) => Some(p),
            Err(e) => {
                ctx.snapshot = Some(snap);
                let msg = format!("the request path is invalid: {e}");
                return self.refuse(session, ctx, 400, "bad_path", &msg).await;
            }
        };
        ctx.normalized_path = path;
        let path = ctx.normalized_path.as_deref().unwrap_or(req.uri.path());
        if path.starts_with("/.well-known/") {
            if let Some((status, ctype, body)) = well_known(&snap, &host, path) {
                ctx.snapshot = Some(snap);
                let rid = ctx.request_id;
                respond::write(session, status, ctype, body, &[("x-request-id", &rid)]).await?;
                return Ok(true);
            }
        }
        if oidc_endpoints::is_endpoint(&snap, &host, path) {
            let (host, path) = (host.into_owned(), path.to_string());
            ctx.snapshot = Some(snap.clone());
            return self.oidc_endpoint(session, ctx, &snap, &host, &path).await;
        }
        let Some(route) = snap
            .router
            .lookup(&host, path)
            .map(|i| snap.routes[i].clone())
        else {
            ctx.snapshot = Some(snap);
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
        ctx.snapshot = Some(snap);

        if let Some(max) = route.max_body_size {
            let declared = header(session.req_header(), &http::header::CONTENT_LENGTH)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > max) {
                ctx.route = Some(route);
                return self
                    .refuse(
                        session,
                        ctx,
                        413,
                        "body_too_large",
                        "the request body is larger than this route allows",
                    )
                    .await;
            }
        }
        if !route.public {
            let path = ctx
                .normalized_path
                .clone()
                .unwrap_or_else(|| session.req_header().uri.path().to_string());
            ctx.route = Some(route.clone());
            let snap = ctx.snapshot.clone().unwrap_or_else(|| self.state.current());
            if self.guard(session, ctx, &route, &snap, &path).await? {
                return Ok(true);
            }
        }
        let now = self.state.shared.now();
        match route.auth.annotations.prepare(ctx.identity.as_ref(), now) {
            Ok(p) => ctx.prepared = Some(p),
            Err(e) => {
                ctx.route = Some(route);
                tracing::warn!(request_id = %ctx.request_id, reason = e.code(), error = %e, "cannot annotate the request");
                let r = pages::Refusal {
                    status: e.status().as_u16(),
                    error: "annotation_failed",
                    reason: e.code(),
                    message: &e.to_string(),
                    rule: None,
                    request_id: &ctx.request_id,
                };
                pages::refuse(session, &r, &[]).await?;
                return Ok(true);
            }
        }
        if session.is_upgrade_req() && !route.websocket {
            ctx.route = Some(route);
            return self
                .refuse(
                    session,
                    ctx,
                    400,
                    "upgrade_refused",
                    "this route does not accept protocol upgrades",
                )
                .await;
        }
        ctx.route = Some(route);
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let (Some(b), Some(max)) = (
            body.as_ref(),
            ctx.route.as_ref().and_then(|r| r.max_body_size),
        ) {
            ctx.body_bytes += b.len() as u64;
            if ctx.body_bytes > max {
                ctx.refusal = Some(Refusal::BodyTooLarge);
                return Error::e_explain(
                    ErrorType::HTTPStatus(413),
                    "request body over max_body_size",
                );
            }
        }
        Ok(())
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let Some(route) = ctx.route.clone() else {
            return Error::e_explain(ErrorType::InternalError, "no route selected");
        };
        let pool = &route.pool;
        let ip_bytes;
        let key: &[u8] = match &pool.settings.hash_key {
            HashKey::None => b"",
            HashKey::Header(h) => session
                .req_header()
                .headers
                .get(h)
                .map(|v| v.as_bytes())
                .unwrap_or(b""),
            HashKey::Cookie(name) => cookie_value(session.req_header(), name).unwrap_or(b""),
            HashKey::ClientAddress => {
                ip_bytes = ctx.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
                ip_bytes.as_bytes()
            }
        };
        match pool.select(key, &ctx.tried) {
            Some(b) => {
                if let Some(a) = b.addr.as_inet() {
                    ctx.tried.push(*a);
                    ctx.upstream = Some(*a);
                }
                let upgrade = session.is_upgrade_req();
                let mut peer = pool.peer(&b, upgrade);
                if upgrade && route.kubernetes {
                    // kubectl before 1.30 (and port-forward until later) upgrades to SPDY/3.1,
                    // which Pingora's default WebSocket-only policy would strip; the Connection
                    // header is rebuilt in `upstream_request_filter`.
                    peer.options.http_upstream_request_policy.h1_upgrade =
                        H1UpgradePolicy::Preserve;
                }
                Ok(peer)
            }
            None => {
                ctx.refusal = Some(Refusal::NoHealthyBackend);
                Error::e_explain(ErrorType::HTTPStatus(503), "no healthy backend")
            }
        }
    }

    async fn connected_to_upstream(
        &self,
        session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        fd: std::os::fd::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if session.is_upgrade_req() {
            ctx.stream = crate::streams::register(&self.state, session, fd, ctx);
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(route) = &ctx.route {
            if ctx.tried.len() <= route.retries && ctx.tried.len() < route.pool.size() {
                e.set_retry(true);
            }
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // Forwarding headers, the request id, identity headers, the assertion and
        // impersonation: room for them at once rather than a map growth every few inserts.
        let extra = ctx
            .route
            .as_ref()
            .map_or(0, |r| r.request_headers.set.len());
        up.reserve_headers(12 + extra);
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        // X-Forwarded-For: appended to a trusted proxy's list, replaced otherwise.
        let xff = match (ctx.peer_trusted, up.headers.get(&X_FORWARDED_FOR), peer) {
            (true, Some(prev), Some(p)) => {
                let mut v = prev.as_bytes().to_vec();
                v.extend_from_slice(b", ");
                crate::textfmt::push_ip(&mut v, p);
                Some(v)
            }
            (_, _, Some(p)) => {
                let mut v = Vec::with_capacity(15);
                crate::textfmt::push_ip(&mut v, p);
                Some(v)
            }
            _ => None,
        };
        match xff {
            Some(v) => up.insert_header(X_FORWARDED_FOR, v)?,
            None => {
                up.remove_header(&X_FORWARDED_FOR);
            }
        }
        if !(ctx.peer_trusted && up.headers.contains_key(&X_FORWARDED_PROTO)) {
            up.insert_header(X_FORWARDED_PROTO, if ctx.tls { "https" } else { "http" })?;
        }
        if !(ctx.peer_trusted && up.headers.contains_key(&X_FORWARDED_HOST)) {
            match request_host_value(session.req_header()) {
                Some(h) => up.insert_header(X_FORWARDED_HOST, h)?,
                None => {
                    up.remove_header(&X_FORWARDED_HOST);
                }
            }
        }
        if !up.headers.contains_key(http::header::HOST) {
            if let Some(a) = up.uri.authority().map(|a| a.to_string()) {
                up.insert_header(http::header::HOST, a)?;
            }
        }
        up.insert_header(X_REQUEST_ID, ctx.request_id.as_str())?;
        if ctx.route.as_ref().is_some_and(|r| r.kubernetes) && session.is_upgrade_req() {
            // The preserved upgrade keeps the client's Connection header, which could nominate
            // the impersonation headers added below as hop-by-hop: only `Upgrade` stays.
            up.insert_header(http::header::CONNECTION, "Upgrade")?;
            for h in ["keep-alive", "proxy-connection", "te", "http2-settings"] {
                up.remove_header(h);
            }
        }

        if let Some(route) = &ctx.route {
            // Strips what the client must not send (identity headers on every route), then
            // adds what Warden verified.
            let none = warden_plugins::annotate::Prepared::default();
            route.auth.annotations.apply(
                ctx.prepared.as_ref().unwrap_or(&none),
                &mut annotate::UpstreamHeaders(up),
            );
            for h in &route.request_headers.remove {
                up.remove_header(h);
            }
            for (k, v) in &route.request_headers.set {
                up.insert_header(k.clone(), v.clone())?;
            }
        }
        // The path upstream is the normalised one, after the route's prefix rewrite.
        let current = up.uri.path();
        let path = ctx.normalized_path.as_deref().unwrap_or(current);
        let rewritten = ctx
            .route
            .as_ref()
            .and_then(|r| r.rewrite.as_ref())
            .and_then(|(from, to)| {
                path.strip_prefix(from.as_str())
                    .map(|rest| match (to.as_str(), rest) {
                        ("", "") => "/".to_string(),
                        ("", r) => r.to_string(),
                        (t, r) => format!("{t}{r}"),
                    })
            });
        let new_path = rewritten.as_deref().unwrap_or(path);
        if new_path != current {
            let new = match up.uri.query() {
                Some(q) => format!("{new_path}?{q}"),
                None => new_path.to_string(),
            };
            let uri = http::Uri::try_from(new)
                .map_err(|e| Error::because(ErrorType::InternalError, "rewriting the path", e))?;
            up.set_uri(uri);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // X-Request-Id, the route's headers, and what Pingora may add when writing (`Date`,
        // `Connection`): the parsed response has no room to spare.
        let extra = ctx
            .route
            .as_ref()
            .map_or(0, |r| r.response_headers.set.len());
        resp.reserve_headers(3 + extra);
        if let Some(route) = &ctx.route {
            for h in &route.response_headers.remove {
                resp.remove_header(h);
            }
            for (k, v) in &route.response_headers.set {
                resp.insert_header(k.clone(), v.clone())?;
            }
        }
        resp.insert_header(X_REQUEST_ID, ctx.request_id.as_str())?;
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let (status, code, message): (u16, &str, &str) = match (e.etype(), ctx.refusal) {
            (_, Some(Refusal::NoHealthyBackend)) => (
                503,
                "no_healthy_backend",
                "no healthy backend is available for this route",
            ),
            (_, Some(Refusal::BodyTooLarge)) => (
                413,
                "body_too_large",
                "the request body is larger than this route allows",
            ),
            (ErrorType::HTTPStatus(c), _) => (*c, "error", respond::reason_phrase(*c)),
            (
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
                _,
            ) if e.esource() == &ErrorSource::Upstream => (
                504,
                "upstream_timeout",
                "the upstream did not answer in time",
            ),
            (_, _) => match e.esource() {
                ErrorSource::Upstream => (502, "upstream_error", "the upstream failed"),
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                        (0, "", "")
                    }
                    _ => (400, "bad_request", "the request is malformed"),
                },
                ErrorSource::Internal | ErrorSource::Unset => {
                    (500, "internal_error", "internal error")
                }
            },
        };
        if status > 0 && session.response_written().is_none() {
            let retry_after: &[(&'static str, &str)] = if status == 503 {
                &[("retry-after", "5")]
            } else {
                &[]
            };
            let mut extra = vec![("x-request-id", ctx.request_id.as_str())];
            extra.extend_from_slice(retry_after);
            if let Err(we) =
                respond::error(session, status, code, message, &ctx.request_id, &extra).await
            {
                tracing::debug!(error = %we, "could not write the error response");
            }
        }
        if status >= 500 {
            tracing::warn!(request_id = %ctx.request_id, route = ctx.route.as_ref().map(|r| &*r.name), error = %e, "request failed");
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: status != 0 && status < 500,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        // The stream is over: stop re-checking it and close the socket duplicate.
        ctx.stream = None;
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let elapsed = ctx.start.elapsed();
        if let Some(route) = &ctx.route {
            route.metrics.count(status);
            route.metrics.duration.observe(elapsed.as_secs_f64());
        } else {
            crate::metrics::REQUESTS_TOTAL
                .with_label_values(&["none", class(status)])
                .inc();
        }
        if !ctx.snapshot.as_ref().is_some_and(|s| s.access_log) {
            return;
        }
        let req = session.req_header();
        let mut line = crate::jsonlog::Line::new();
        line.time("time")
            .str("request_id", &ctx.request_id)
            .opt_str("route", ctx.route.as_ref().map(|r| &*r.name))
            .str("method", req.method.as_str())
            .opt_str("host", request_host(req))
            // The normalised path is what routing and policy decided on and what went upstream;
            // the path as sent is kept beside it when normalisation changed it.
            .str(
                "path",
                ctx.normalized_path.as_deref().unwrap_or(req.uri.path()),
            )
            .opt_str(
                "raw_path",
                ctx.normalized_path.as_ref().map(|_| req.uri.path()),
            )
            .opt_str("auth", ctx.identity.as_ref().map(|i| i.method.kind()))
            .opt_str("subject", ctx.identity.as_ref().map(|i| &*i.subject))
            .num("status", status as u64)
            .millis("duration_ms", elapsed)
            .opt_addr("upstream", ctx.upstream)
            .num("bytes_sent", session.body_bytes_sent() as u64)
            .opt_ip("client", ctx.client_ip)
            .str(
                "protocol",
                if session.is_http2() { "h2" } else { "http/1.1" },
            );
        line.send(crate::jsonlog::ACCESS.get());
    }
}

/// Warden's own documents for verifiers of its assertions: the JWKS on every host Warden
/// serves, and on the assertion issuer's host the OpenID discovery document kube-apiserver
/// reads.
fn well_known(
    snap: &crate::snapshot::Snapshot,
    host: &str,
    path: &str,
) -> Option<(u16, &'static str, bytes::Bytes)> {
    let (_, signer) = snap.identity.signer.as_ref()?;
    let issuer_host = signer.issuer_host();
    let on_issuer_host = issuer_host.as_deref() == Some(host);
    if path == warden_plugins::annotate::JWKS_PATH
        && (on_issuer_host || snap.router.serves_host(host))
    {
        return Some((200, "application/json", signer.jwks_json()));
    }
    if on_issuer_host && path == signer.discovery_path() {
        return Some((
            200,
            "application/json",
            signer.openid_configuration_json(&signer.default_jwks_uri()),
        ));
    }
    None
}

fn class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "other",
    }
}

/// The value of cookie `name` in the request's Cookie headers, without allocating.
pub fn cookie_value<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a [u8]> {
    for v in req.headers.get_all(http::header::COOKIE) {
        for pair in v.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii_start();
            if let Some(rest) = pair.strip_prefix(name.as_bytes()) {
                if let Some(value) = rest.strip_prefix(b"=") {
                    return Some(value.trim_ascii_end());
                }
            }
        }
    }
    None
}
