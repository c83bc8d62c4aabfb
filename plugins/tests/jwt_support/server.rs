//! A real JWKS/discovery HTTP server on 127.0.0.1 (port chosen by the OS), run in-test, that
//! the test can change, slow down, stop, and ask what it served.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

#[derive(Default)]
struct State {
    jwks: String,
    /// The `issuer` the discovery document names (defaults to the server's base URL).
    issuer: String,
    cache_control: Option<String>,
    etag: Option<String>,
    /// Requests are accepted and never answered.
    hang: bool,
    /// The JWKS is only served with `Authorization: Bearer <this>`.
    require_bearer: Option<String>,
    jwks_hits: usize,
    not_modified: usize,
    discovery_hits: usize,
    authorizations: Vec<Option<String>>,
}

pub struct JwksServer {
    pub base: String,
    state: Arc<Mutex<State>>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl JwksServer {
    pub async fn start(jwks: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            jwks,
            issuer: base.clone(),
            ..State::default()
        }));
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (st, ts, b) = (state.clone(), tasks.clone(), base.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (st, b) = (st.clone(), b.clone());
                let conn = tokio::spawn(async move {
                    let service = service_fn(move |req| handle(st.clone(), b.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                ts.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Self { base, state, tasks }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn set_jwks(&self, jwks: String) {
        self.state.lock().unwrap().jwks = jwks;
    }

    pub fn set_issuer(&self, issuer: &str) {
        self.state.lock().unwrap().issuer = issuer.to_string();
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        self.state.lock().unwrap().cache_control = value.map(str::to_string);
    }

    pub fn set_etag(&self, value: Option<&str>) {
        self.state.lock().unwrap().etag = value.map(str::to_string);
    }

    pub fn require_bearer(&self, token: &str) {
        self.state.lock().unwrap().require_bearer = Some(token.to_string());
    }

    /// From now on requests are accepted and never answered.
    pub fn hang(&self) {
        self.state.lock().unwrap().hang = true;
    }

    /// Closes the listener and every connection: the endpoint is down.
    pub fn stop(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// JWKS requests answered with a body.
    pub fn jwks_hits(&self) -> usize {
        self.state.lock().unwrap().jwks_hits
    }

    pub fn not_modified(&self) -> usize {
        self.state.lock().unwrap().not_modified
    }

    pub fn discovery_hits(&self) -> usize {
        self.state.lock().unwrap().discovery_hits
    }

    /// The `Authorization` header of every JWKS request, in order.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().authorizations.clone()
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

async fn handle(
    state: Arc<Mutex<State>>,
    base: String,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (authorization, if_none_match) = (header("authorization"), header("if-none-match"));
    let (hang, resp) = {
        let mut s = state.lock().unwrap();
        let resp = match req.uri().path() {
            "/.well-known/openid-configuration" => {
                s.discovery_hits += 1;
                let doc = serde_json::json!({"issuer": s.issuer, "jwks_uri": format!("{base}/jwks.json")});
                response(StatusCode::OK, doc.to_string())
            }
            "/jwks.json" | "/openid/v1/jwks" => {
                s.authorizations.push(authorization.clone());
                let authorized = s
                    .require_bearer
                    .as_ref()
                    .is_none_or(|t| authorization.as_deref() == Some(&format!("Bearer {t}")));
                if !authorized {
                    response(StatusCode::UNAUTHORIZED, String::new())
                } else if s.etag.is_some() && if_none_match == s.etag {
                    s.not_modified += 1;
                    response(StatusCode::NOT_MODIFIED, String::new())
                } else {
                    s.jwks_hits += 1;
                    response(StatusCode::OK, s.jwks.clone())
                }
            }
            _ => response(StatusCode::NOT_FOUND, String::new()),
        };
        let mut resp = resp;
        if let Some(cc) = &s.cache_control {
            resp.headers_mut()
                .insert("cache-control", cc.parse().unwrap());
        }
        if let Some(etag) = &s.etag {
            resp.headers_mut().insert("etag", etag.parse().unwrap());
        }
        (s.hang, resp)
    };
    if hang {
        std::future::pending::<()>().await;
    }
    Ok(resp)
}
