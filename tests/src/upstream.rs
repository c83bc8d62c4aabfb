//! Real upstream servers for the tests: HTTP/1.1 and h2c (prior knowledge) on one port, an echo
//! of what they received as JSON, plus `/slow/{ms}`, `/status/{code}`, `/health` and a
//! websocket echo on `/ws`. [`Upstream::start_tls`] serves the same over TLS (h2 or HTTP/1.1 by
//! ALPN).

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// What an upstream saw of one request (the JSON body of its echo).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Echo {
    pub upstream: String,
    pub method: String,
    pub path: String,
    pub version: String,
    /// Header name (lowercase) → every value, in order.
    pub headers: BTreeMap<String, Vec<String>>,
    pub body_len: usize,
}

impl Echo {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

struct Shared {
    name: String,
    hits: AtomicUsize,
    /// TCP connections accepted.
    connections: AtomicUsize,
    /// Connections that ended from the client's side (closed or broken), not by a stop.
    closed_by_client: AtomicUsize,
    healthy: AtomicBool,
}

pub struct Upstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    stop: Option<watch::Sender<bool>>,
}

impl Upstream {
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        Self::serve(name, listener, None)
    }

    /// An upstream that speaks TLS only, with the given server configuration
    /// (see [`crate::certs::TestCa::server_config`]).
    pub async fn start_tls(name: &str, config: Arc<ServerConfig>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        Self::serve(name, listener, Some(TlsAcceptor::from(config)))
    }

    fn serve(name: &str, listener: TcpListener, tls: Option<TlsAcceptor>) -> Self {
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            name: name.into(),
            hits: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            closed_by_client: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
        });
        let mut up = Upstream {
            addr,
            shared,
            tls,
            stop: None,
        };
        up.run(listener);
        up
    }

    fn run(&mut self, listener: TcpListener) {
        let (tx, rx) = watch::channel(false);
        self.stop = Some(tx);
        let shared = self.shared.clone();
        let tls = self.tls.clone();
        tokio::spawn(async move {
            let mut stop = rx.clone();
            loop {
                let (sock, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                    _ = stop.changed() => return,
                };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                let mut conn_stop = rx.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let served = async {
                        match tls {
                            None => serve_connection(sock, shared.clone()).await,
                            Some(tls) => {
                                if let Ok(stream) = tls.accept(sock).await {
                                    serve_connection(stream, shared.clone()).await;
                                }
                            }
                        }
                    };
                    tokio::select! {
                        _ = served => {
                            shared.closed_by_client.fetch_add(1, Ordering::SeqCst);
                        },
                        _ = conn_stop.changed() => {},
                    }
                });
            }
        });
    }

    /// `host:port` for a Warden conf.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far, across restarts.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections the client closed (or broke) so far; a stop does not count.
    pub fn closed_by_client(&self) -> usize {
        self.shared.closed_by_client.load(Ordering::SeqCst)
    }

    /// What `/health` answers: 200 when healthy, 503 otherwise.
    pub fn set_healthy(&self, healthy: bool) {
        self.shared.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Kills the server: the listener and every open connection close.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
    }

    /// Starts again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.run(listener);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// HTTP/1.1 (with upgrades) or HTTP/2, whichever the client speaks.
async fn serve_connection<I>(io: I, shared: Arc<Shared>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let _ = builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc)
        .await;
}

fn reply(status: u16, ctype: &str, body: impl Into<Bytes>, name: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .header("x-upstream", name)
        .body(Full::new(body.into()))
        .expect("response")
}

async fn handle(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    if path == "/ws" && hyper_tungstenite_like::is_upgrade(&req) {
        return Ok(hyper_tungstenite_like::accept(&mut req, &shared.name));
    }
    if path == "/health" {
        let ok = shared.healthy.load(Ordering::SeqCst);
        return Ok(reply(
            if ok { 200 } else { 503 },
            "text/plain",
            if ok { "ok" } else { "down" },
            &shared.name,
        ));
    }
    if let Some(ms) = path
        .strip_prefix("/slow/")
        .and_then(|m| m.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = path
        .strip_prefix("/status/")
        .and_then(|c| c.parse::<u16>().ok())
        .unwrap_or(200);
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let method = req.method().to_string();
    let version = format!("{:?}", req.version());
    let full_path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or(path);
    let body = req.into_body().collect().await?.to_bytes();
    let echo = Echo {
        upstream: shared.name.clone(),
        method,
        path: full_path,
        version,
        headers,
        body_len: body.len(),
    };
    let json = serde_json::to_vec(&echo).unwrap_or_default();
    Ok(reply(status, "application/json", json, &shared.name))
}

/// A websocket echo on hyper's upgrade mechanism (the handshake by hand, frames by tungstenite).
mod hyper_tungstenite_like {
    use super::*;
    use base64::Engine;
    use tokio_tungstenite::tungstenite::protocol::Role;

    pub fn is_upgrade(req: &Request<Incoming>) -> bool {
        req.headers()
            .get("upgrade")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    }

    pub fn accept(req: &mut Request<Incoming>, name: &str) -> Response<Full<Bytes>> {
        let key = req
            .headers()
            .get("sec-websocket-key")
            .map(|k| k.as_bytes().to_vec())
            .unwrap_or_default();
        let accept = {
            use sha1_smol::Sha1;
            let mut h = Sha1::new();
            h.update(&key);
            h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
            base64::engine::general_purpose::STANDARD.encode(h.digest().bytes())
        };
        let upgrade = hyper::upgrade::on(req);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                None,
            )
            .await;
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_close() {
                    break;
                }
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
        Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .header("sec-websocket-accept", accept)
            .header("x-upstream", name)
            .body(Full::new(Bytes::new()))
            .expect("101")
    }
}
