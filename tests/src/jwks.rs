//! Bearer-token support for the end-to-end tests: a real issuer key server (OIDC discovery and
//! JWKS, over HTTP or HTTPS with the test CA) whose keys a test rotates and which it can stall
//! or take down, plus test keys from the committed fixtures and token minting with
//! `jsonwebtoken` (an implementation independent of Warden's verifier).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

#[path = "../../plugins/tests/jwt_support/keys.rs"]
mod keys;

pub use keys::{fixture, jwks, sign_with, TestKey, FIXTURES};

/// Where the key server serves its JWKS (the Kubernetes API server's path).
pub const JWKS_PATH: &str = "/openid/v1/jwks";

/// Seconds since the Unix epoch (Warden runs on the system clock).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Claims of a token for `issuer` with audience `warden`, valid for five minutes from now.
pub fn claims(issuer: &str) -> Value {
    keys::claims(issuer, now())
}

/// base64url without padding (to hand-craft token parts).
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token from hand-made parts: `header` and `claims` as JSON, `signature` raw.
pub fn compact(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

#[derive(Default)]
struct State {
    jwks: String,
    /// The `issuer` the discovery document names.
    issuer: String,
    jwks_hits: usize,
    discovery_hits: usize,
    /// The `Authorization` header of every JWKS request, in order.
    authorizations: Vec<Option<String>>,
}

/// An issuer's key server on 127.0.0.1 (port chosen by the OS): discovery at
/// `/.well-known/openid-configuration` pointing at [`JWKS_PATH`], where the JWKS is served.
pub struct KeyServer {
    pub base: String,
    state: Arc<Mutex<State>>,
    /// While true, requests are accepted and left unanswered (a slow endpoint).
    stalled: watch::Sender<bool>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl KeyServer {
    /// Plain HTTP (Warden allows it for loopback addresses).
    pub async fn start(issuer: Option<&str>, jwks: String) -> Self {
        Self::serve(issuer, jwks, None).await
    }

    /// HTTPS with the given server configuration (see [`crate::certs::TestCa::server_config`]).
    pub async fn start_tls(issuer: &str, jwks: String, config: Arc<ServerConfig>) -> Self {
        // This server speaks HTTP/1.1 only: never let ALPN pick h2.
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self::serve(
            Some(issuer),
            jwks,
            Some(TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    /// `issuer` defaults to the server's own base URL.
    async fn serve(issuer: Option<&str>, jwks: String, tls: Option<TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State {
            jwks,
            issuer: issuer.map(str::to_string).unwrap_or_else(|| base.clone()),
            ..State::default()
        }));
        let (stalled, stall_rx) = watch::channel(false);
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (st, ts, b) = (state.clone(), tasks.clone(), base.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (st, b, stall, tls) = (st.clone(), b.clone(), stall_rx.clone(), tls.clone());
                let conn = tokio::spawn(async move {
                    let service =
                        service_fn(move |req| handle(st.clone(), b.clone(), stall.clone(), req));
                    match tls {
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(tls) => {
                            if let Ok(s) = tls.accept(stream).await {
                                let _ = http1::Builder::new()
                                    .serve_connection(TokioIo::new(s), service)
                                    .await;
                            }
                        }
                    }
                });
                ts.lock().expect("tasks").push(conn.abort_handle());
            }
        });
        tasks.lock().expect("tasks").push(accept.abort_handle());
        Self {
            base,
            state,
            stalled,
            tasks,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Replaces the served key set (the issuer rotated its keys).
    pub fn set_jwks(&self, jwks: String) {
        self.state.lock().expect("state").jwks = jwks;
    }

    /// From now on requests are accepted and not answered until [`KeyServer::resume`].
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }

    /// Closes the listener and every connection: the endpoint is down for good.
    pub fn stop(&self) {
        for t in self.tasks.lock().expect("tasks").drain(..) {
            t.abort();
        }
    }

    /// JWKS requests received (answered or stalled).
    pub fn jwks_hits(&self) -> usize {
        self.state.lock().expect("state").jwks_hits
    }

    pub fn discovery_hits(&self) -> usize {
        self.state.lock().expect("state").discovery_hits
    }

    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.state.lock().expect("state").authorizations.clone()
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

async fn handle(
    state: Arc<Mutex<State>>,
    base: String,
    mut stall: watch::Receiver<bool>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if path == JWKS_PATH {
        let mut s = state.lock().expect("state");
        s.jwks_hits += 1;
        s.authorizations.push(authorization);
    } else if path == "/.well-known/openid-configuration" {
        state.lock().expect("state").discovery_hits += 1;
    }
    // Ends with an error only when the server is gone; then nothing is answered anyway.
    let _ = stall.wait_for(|stalled| !*stalled).await;
    let s = state.lock().expect("state");
    Ok(match path.as_str() {
        "/.well-known/openid-configuration" => {
            let doc = json!({"issuer": s.issuer, "jwks_uri": format!("{base}{JWKS_PATH}")});
            json_response(StatusCode::OK, doc.to_string())
        }
        JWKS_PATH => json_response(StatusCode::OK, s.jwks.clone()),
        _ => json_response(StatusCode::NOT_FOUND, "{}".into()),
    })
}
