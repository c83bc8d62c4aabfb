//! The admin listener (its own address, loopback by default): probes and metrics are open;
//! everything under `/admin/` needs the bearer token from `admin.token_file` and is disabled
//! when no token file is configured. The sessions and blocks endpoints are in [`api`].

pub mod api;

use crate::state::{ReloadOutcome, State};
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub struct AdminApp {
    pub state: Arc<State>,
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Vec<u8>> {
    let mut body = v.to_string().into_bytes();
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_default()
}

pub fn error(status: StatusCode, code: &str, message: &str) -> Response<Vec<u8>> {
    json(
        status,
        serde_json::json!({"error": code, "message": message}),
    )
}

fn text(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_default()
}

/// Compares in time independent of where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl AdminApp {
    /// `None` when authorised, else the response to send. The token file is read per call, so
    /// rotating the token needs no reload.
    fn authorise(&self, s: &ServerSession) -> Option<Response<Vec<u8>>> {
        let snap = self.state.current();
        let Some(file) = snap.conf.admin.token_file.as_ref() else {
            return Some(error(
                StatusCode::NOT_FOUND,
                "admin_disabled",
                "set admin.token_file to enable the admin API",
            ));
        };
        let token = match std::fs::read_to_string(file) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                tracing::error!(file = %file.display(), "admin token file is missing or empty");
                return Some(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "admin_token_unavailable",
                    "the admin token file cannot be read",
                ));
            }
        };
        let presented = s
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => None,
            _ => Some(error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid admin bearer token is required",
            )),
        }
    }

    async fn readyz(&self) -> Response<Vec<u8>> {
        if self.state.draining.load(Ordering::Acquire) {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                b"draining\n".to_vec(),
            );
        }
        if !self.state.listeners_bound.load(Ordering::Acquire) {
            let missing = crate::readiness::missing(&self.state.expected_listeners());
            if !missing.is_empty() {
                let list: Vec<String> = missing.iter().map(|a| a.to_string()).collect();
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("listeners not bound: {}\n", list.join(", ")).into_bytes(),
                );
            }
            self.state.listeners_bound.store(true, Ordering::Release);
        }
        text(StatusCode::OK, "text/plain", b"ready\n".to_vec())
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, s: &mut ServerSession) -> Response<Vec<u8>> {
        let method = s.req_header().method.clone();
        let path = s.req_header().uri.path().to_string();
        match (method.as_str(), path.as_str()) {
            ("GET", "/healthz") => text(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            ("GET", "/readyz") => self.readyz().await,
            ("GET", "/metrics") => {
                let mut out = Vec::new();
                let enc = prometheus::TextEncoder::new();
                match prometheus::Encoder::encode(&enc, &prometheus::gather(), &mut out) {
                    Ok(()) => text(StatusCode::OK, "text/plain; version=0.0.4", out),
                    Err(e) => error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "metrics_encoding",
                        &e.to_string(),
                    ),
                }
            }
            (_, p) if p.starts_with("/admin/") => {
                if let Some(denied) = self.authorise(s) {
                    return denied;
                }
                self.admin(s, method.as_str(), p).await
            }
            _ => error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint"),
        }
    }
}

/// Admin request bodies are small JSON documents.
const MAX_BODY: usize = 64 * 1024;

/// The request body, or the response refusing it.
async fn read_body(s: &mut ServerSession) -> Result<Vec<u8>, Response<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        match s.read_request_body().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY {
                    return Err(error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "admin request bodies are at most 64 KiB",
                    ));
                }
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    &e.to_string(),
                ))
            }
        }
    }
}

impl AdminApp {
    async fn admin(&self, s: &mut ServerSession, method: &str, path: &str) -> Response<Vec<u8>> {
        if path != "/admin/reload" {
            let body = match read_body(s).await {
                Ok(b) => b,
                Err(refused) => return refused,
            };
            let query = s.req_header().uri.query().map(str::to_string);
            let shared = &self.state.shared;
            let api = api::Api {
                sessions: shared.sessions.as_ref(),
                blocks: &shared.blocks,
                now: shared.now(),
            };
            return match api.handle(method, path, query.as_deref(), &body).await {
                Some(r) => json(r.status, r.body),
                None => error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint"),
            };
        }
        match (method, path) {
            ("POST", "/admin/reload") => {
                let state = self.state.clone();
                // The reload itself runs on the background runtime: building pools and loading
                // files is not the admin listener's work.
                let result =
                    crate::background::spawn(async move { state.reload("admin").await }).await;
                match result {
                    Ok(Ok(
                        ReloadOutcome::Applied { generation }
                        | ReloadOutcome::Unchanged { generation },
                    )) => json(
                        StatusCode::OK,
                        serde_json::json!({"result": "ok", "generation": generation}),
                    ),
                    Ok(Err(errs)) => json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({
                            "error": "invalid_conf",
                            "message": "the conf was rejected; the previous conf keeps serving",
                            "errors": errs.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                        }),
                    ),
                    Err(e) => error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "reload_failed",
                        &e.to_string(),
                    ),
                }
            }
            _ => error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint"),
        }
    }
}
