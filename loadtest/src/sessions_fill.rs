//! Fills a Warden with browser sessions, to measure its memory with many of them live
//! (`loadtest/sessions-rss.sh`).
//!
//! The node test provider signs in about 100 users a second; a million would take hours. The
//! stub here is an OpenID provider reduced to what Warden's login needs (discovery, JWKS, an
//! authorize endpoint that signs the user in at once, a token endpoint minting ES256 ID tokens),
//! so the real login path runs end to end through Warden: the redirect with its state cookie,
//! the code exchange, ID-token verification, the session store and the session cookie. The
//! stub is not what is measured, so nothing else of a provider is there.

use crate::tokens::{jwks, load_or_create_key};
use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use ring::rand::SystemRandom;
use ring::signature::EcdsaKeyPair;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const KID: &str = "stub-1";

struct Stub {
    issuer: String,
    client_id: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    jwks: String,
    groups: Vec<String>,
    next_user: AtomicU64,
}

fn reply(status: StatusCode, ctype: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = ctype.parse() {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Stub {
    fn discovery(&self) -> String {
        let i = &self.issuer;
        serde_json::json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "jwks_uri": format!("{i}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
        })
        .to_string()
    }

    /// Signs the next user in at once: the code carries the nonce and the subject.
    fn authorize(&self, query: &str) -> Response<Full<Bytes>> {
        let (Some(redirect), Some(state), Some(nonce)) = (
            query_param(query, "redirect_uri"),
            query_param(query, "state"),
            query_param(query, "nonce"),
        ) else {
            return reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "missing parameters".into(),
            );
        };
        let n = self.next_user.fetch_add(1, Ordering::Relaxed);
        let code = B64.encode(serde_json::json!({ "n": nonce, "u": n }).to_string());
        let sep = if redirect.contains('?') { '&' } else { '?' };
        let location: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", &state)
            .finish();
        let mut r = reply(StatusCode::FOUND, "text/plain", String::new());
        if let Ok(v) = format!("{redirect}{sep}{location}").parse() {
            r.headers_mut().insert(LOCATION, v);
        }
        r
    }

    fn token(&self, form: &[u8]) -> anyhow::Result<String> {
        let code = url::form_urlencoded::parse(form)
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| anyhow!("no code"))?;
        let c: serde_json::Value = serde_json::from_slice(&B64.decode(code)?)?;
        let n = c["u"].as_u64().ok_or_else(|| anyhow!("bad code"))?;
        let sub = format!("{n:020}");
        let t = warden_tests::jwks::now();
        let header =
            B64.encode(serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": KID }).to_string());
        let claims = serde_json::json!({
            "iss": self.issuer, "aud": self.client_id, "sub": sub, "nonce": c["n"],
            "iat": t, "exp": t + 300,
            "sid": format!("{n:036}"),
            "email": format!("user{n}@example.com"), "name": format!("User Number {n}"),
            "groups": self.groups,
        });
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| anyhow!("signing failed"))?;
        Ok(serde_json::json!({
            "access_token": format!("{:a>40}", n), "refresh_token": format!("{:r>40}", n),
            "token_type": "Bearer", "expires_in": 300,
            "id_token": format!("{input}.{}", B64.encode(sig.as_ref())),
        })
        .to_string())
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/.well-known/openid-configuration") => {
                reply(StatusCode::OK, "application/json", self.discovery())
            }
            (Method::GET, "/jwks") => reply(StatusCode::OK, "application/json", self.jwks.clone()),
            (Method::GET, "/authorize") => self.authorize(&query),
            (Method::POST, "/token") => {
                let body = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(e) => return reply(StatusCode::BAD_REQUEST, "text/plain", e.to_string()),
                };
                match self.token(&body) {
                    Ok(json) => reply(StatusCode::OK, "application/json", json),
                    Err(e) => reply(
                        StatusCode::BAD_REQUEST,
                        "application/json",
                        serde_json::json!({ "error": "invalid_grant", "error_description": e.to_string() })
                            .to_string(),
                    ),
                }
            }
            _ => reply(StatusCode::NOT_FOUND, "text/plain", String::new()),
        }
    }
}

/// Serves the stub provider on `listen` until the process ends. Its issuer is
/// `http://{listen}`; the key is read from `key` (PKCS#8, created when absent).
pub async fn serve_stub(listen: SocketAddr, key: &Path, client_id: &str) -> anyhow::Result<()> {
    let key = load_or_create_key(key)?;
    let stub = Arc::new(Stub {
        issuer: format!("http://{listen}"),
        client_id: client_id.to_string(),
        jwks: jwks(&key, KID).to_string(),
        key,
        rng: SystemRandom::new(),
        // The same ten groups per user as the session-store memory test.
        groups: (0..10)
            .map(|g| format!("team-{g:02}-engineering"))
            .collect(),
        next_user: AtomicU64::new(0),
    });
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!("stub OpenID provider: issuer http://{listen}");
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (builder, stub) = (builder.clone(), stub.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let stub = stub.clone();
                async move { Ok::<_, std::convert::Infallible>(stub.handle(req).await) }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

/// One login through Warden: the redirect to the provider, the provider's redirect back, the
/// callback. Returns the session cookie.
async fn login_once(client: &reqwest::Client, start: &str) -> anyhow::Result<String> {
    let html = "text/html";
    let r = client.get(start).header("accept", html).send().await?;
    let authorize = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("GET {start}: {} without a redirect", r.status()))?
        .to_string();
    let state_cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .map(str::to_string)
        .collect();
    let r = client.get(&authorize).send().await?;
    let callback = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("the provider answered {} without a redirect", r.status()))?
        .to_string();
    let r = client
        .get(&callback)
        .header("accept", html)
        .header("cookie", state_cookies.join("; "))
        .send()
        .await?;
    let status = r.status();
    crate::scenario::churn::sessions::session_cookie(r.headers())
        .ok_or_else(|| anyhow!("the callback answered {status} without a session cookie"))
}

/// `count` logins, `parallel` at a time, over keep-alive connections; `start` is a URL of a
/// login route, `connect` where its host is served. Prints progress every 10 s.
pub async fn fill(
    start: &str,
    connect: SocketAddr,
    count: u64,
    parallel: usize,
) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(start).context("--start")?;
    let host = url
        .host_str()
        .ok_or_else(|| anyhow!("--start has no host"))?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(host, connect)
        .pool_max_idle_per_host(parallel)
        .build()?;
    let done = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..parallel.max(1) {
        let (client, done, next, start) = (
            client.clone(),
            done.clone(),
            next.clone(),
            start.to_string(),
        );
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                login_once(&client, &start).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let d = done.load(Ordering::Relaxed);
                eprintln!(
                    "{d} sessions, {:.0} logins/s",
                    d as f64 / began.elapsed().as_secs_f64()
                );
            }
        })
    };
    let mut first_error = None;
    for w in workers {
        if let Err(e) = w.await? {
            first_error.get_or_insert(e);
        }
    }
    progress.abort();
    let d = done.load(Ordering::Relaxed);
    println!(
        "{d} sessions logged in, {:.0} logins/s over {:.1} s",
        d as f64 / began.elapsed().as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
    if let Some(e) = first_error {
        bail!("a login failed after {d}: {e:#}");
    }
    Ok(())
}
