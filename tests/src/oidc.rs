//! A real OpenID provider for the tests: node `oidc-provider` (`tests/oidc/server.mjs`) on
//! 127.0.0.1, with test users, a confidential client for Warden, a `client_credentials` client
//! issuing JWT access tokens, and the provider's test-control API (`/test/...`).
//!
//! Also a browser stand-in ([`login`], [`deny`], [`logout`]) that drives the provider's login
//! form with a cookie jar, and a [`LogoutSink`] that receives back-channel logout tokens.

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Mutex};
use url::Url;

/// A user of the test provider.
#[derive(Debug, Clone, Serialize)]
pub struct TestUser {
    pub login: String,
    pub password: String,
    pub email: String,
    pub name: String,
    pub groups: Vec<String>,
}

impl TestUser {
    /// `login` with password `{login}-password`, email `{login}@example.com`, name `Login`.
    pub fn new(login: &str, groups: &[&str]) -> Self {
        let mut name = login.to_string();
        if let Some(first) = name.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        Self {
            login: login.into(),
            password: format!("{login}-password"),
            email: format!("{login}@example.com"),
            name: format!("{name} Example"),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }
}

/// alice: [eng, sre]; bob: [eng]; carol: [contractors].
pub fn default_users() -> Vec<TestUser> {
    vec![
        TestUser::new("alice", &["eng", "sre"]),
        TestUser::new("bob", &["eng"]),
        TestUser::new("carol", &["contractors"]),
    ]
}

/// A confidential web client (authorization code + refresh token, PKCE S256 required).
#[derive(Debug, Clone, Serialize)]
pub struct WebClient {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// With it, ID tokens carry `sid` and the provider sends logout tokens here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
}

impl WebClient {
    pub fn new(client_id: &str, client_secret: &str, redirect_uris: &[&str]) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uris: redirect_uris.iter().map(|u| u.to_string()).collect(),
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
        }
    }
}

/// A `client_credentials` client whose access tokens are RS256 JWTs with `aud` = `resource`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceClient {
    pub client_id: String,
    pub client_secret: String,
    pub resource: String,
    pub scope: String,
    #[serde(rename = "accessTokenTtl")]
    pub access_token_ttl: u64,
}

impl ServiceClient {
    pub fn new(client_id: &str, client_secret: &str, resource: &str) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            resource: resource.into(),
            scope: "api:read api:write".into(),
            access_token_ttl: 300,
        }
    }
}

/// How to start the provider.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderOpts {
    /// `None`: a free port.
    #[serde(skip)]
    pub port: Option<u16>,
    pub users: Vec<TestUser>,
    pub clients: Vec<WebClient>,
    pub service_clients: Vec<ServiceClient>,
    /// Seconds; web clients' access tokens.
    pub access_token_ttl: u64,
    pub id_token_ttl: u64,
    pub refresh_token_ttl: u64,
    /// Every refresh returns a new refresh token (the old one stops working).
    pub rotate_refresh_tokens: bool,
}

impl Default for ProviderOpts {
    fn default() -> Self {
        Self {
            port: None,
            users: default_users(),
            clients: Vec::new(),
            service_clients: Vec::new(),
            access_token_ttl: 300,
            id_token_ttl: 3600,
            refresh_token_ttl: 86400,
            rotate_refresh_tokens: true,
        }
    }
}

/// The `tests/oidc` directory (server and npm package).
pub fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

/// Installs the provider's npm dependencies once per process if `node_modules` is missing.
pub fn ensure_node_modules() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        let dir = provider_dir();
        if dir.join("node_modules/oidc-provider").is_dir() {
            return Ok(());
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("cannot run npm: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "npm ci failed in {}:\n{}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A running test provider; killed on drop.
pub struct OidcProvider {
    child: Option<Child>,
    /// Held so the provider exits when this process dies, however it dies.
    _stdin: Option<ChildStdin>,
    dir: tempfile::TempDir,
    port: u16,
    http: reqwest::Client,
}

impl OidcProvider {
    /// Starts the provider and returns once its discovery document is served.
    pub async fn start(opts: ProviderOpts) -> Self {
        ensure_node_modules();
        let port = opts.port.unwrap_or_else(crate::free_port);
        let dir = tempfile::tempdir().expect("tempdir");
        let conf_path = dir.path().join("provider.json");
        std::fs::write(
            &conf_path,
            serde_json::to_vec_pretty(&opts).expect("provider conf"),
        )
        .expect("write provider conf");
        let log = std::fs::File::create(dir.path().join("provider.log")).expect("provider log");
        let mut child = Command::new("node")
            .arg(provider_dir().join("server.mjs"))
            .arg("--config")
            .arg(&conf_path)
            .args(["--port", &port.to_string(), "--exit-with-stdin"])
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start node (is Node.js installed?)");
        let stdin = child.stdin.take();
        let mut p = Self {
            child: Some(child),
            _stdin: stdin,
            dir,
            port,
            http: crate::client(),
        };
        p.wait_ready().await;
        p
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = self.discovery_url();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "the OpenID provider exited with {status} before becoming ready:\n{}",
                    self.log()
                );
            }
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the OpenID provider was not ready in 30s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The provider's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("provider.log")).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The node process's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `http://127.0.0.1:PORT`, exactly as the provider spells `iss`.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer())
    }

    pub fn discovery_url(&self) -> String {
        self.url("/.well-known/openid-configuration")
    }

    /// Kills the provider (connections refused from now on).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self._stdin = None;
    }

    async fn control(&self, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let mut req = self.http.post(self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("test control API");
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.expect("control API answers JSON");
        assert!(status.is_success(), "POST {path}: {status} {v}");
        v
    }

    /// Replaces a user's groups at the provider (ID tokens and userinfo from now on).
    pub async fn set_groups(&self, login: &str, groups: &[&str]) {
        self.control(
            &format!("/test/users/{login}/groups"),
            Some(serde_json::json!(groups)),
        )
        .await;
    }

    /// Deletes the user's grants and tokens: refreshing fails with `invalid_grant`.
    pub async fn revoke_user(&self, login: &str) -> u64 {
        self.control(&format!("/test/users/{login}/revoke"), None)
            .await["revoked"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Makes the provider send a logout token for each of the user's sessions to each
    /// client's `backchannel_logout_uri`; returns the `(client_id, sid)` pairs delivered.
    pub async fn backchannel_logout(&self, login: &str) -> Vec<(String, String)> {
        let v = self
            .control(&format!("/test/backchannel/{login}"), None)
            .await;
        v["delivered"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                (
                    d["client_id"].as_str().unwrap_or_default().to_string(),
                    d["sid"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Publishes a new signing key and signs with it from now on; old keys stay published.
    pub async fn rotate_keys(&self) -> Vec<String> {
        let v = self.control("/test/rotate_keys", None).await;
        v["kids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect()
    }

    /// Any `claims` signed RS256 with the provider's current key (`header` adds to or
    /// overrides `alg` and `kid`): tokens the provider itself would never issue.
    pub async fn sign(&self, claims: serde_json::Value, header: serde_json::Value) -> String {
        let v = self
            .control(
                "/test/sign",
                Some(serde_json::json!({"claims": claims, "header": header})),
            )
            .await;
        v["jwt"].as_str().expect("jwt").to_string()
    }

    /// An access token (a JWT with `aud` = `resource`) from the `client_credentials` grant.
    pub async fn client_credentials_token(
        &self,
        client_id: &str,
        client_secret: &str,
        resource: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(r) = resource {
            form.push(("resource", r));
        }
        let v = self.token_request(client_id, client_secret, &form).await?;
        v["access_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no access_token in {v}"))
    }

    /// An authorization request URL for a web client: code flow, PKCE S256 with `challenge`.
    pub fn authorize_url(
        &self,
        client: &WebClient,
        scope: &str,
        state: &str,
        nonce: &str,
        challenge: &str,
    ) -> String {
        let mut u = Url::parse(&self.url("/auth")).expect("url");
        u.query_pairs_mut()
            .append_pair("client_id", &client.client_id)
            .append_pair("response_type", "code")
            .append_pair("scope", scope)
            .append_pair("redirect_uri", &client.redirect_uris[0])
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        u.into()
    }

    /// Exchanges an authorization code at the token endpoint; the token response as JSON.
    pub async fn exchange_code(
        &self,
        client: &WebClient,
        code: &str,
        verifier: &str,
    ) -> anyhow::Result<serde_json::Value> {
        self.token_request(
            &client.client_id,
            &client.client_secret,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", client.redirect_uris[0].as_str()),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    /// A token endpoint request with client_secret_basic; the JSON answer, or an error with it.
    pub async fn token_request(
        &self,
        client_id: &str,
        client_secret: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<serde_json::Value> {
        let resp = self
            .http
            .post(self.url("/token"))
            .basic_auth(client_id, Some(client_secret))
            .form(form)
            .send()
            .await?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().await?;
        if !status.is_success() {
            bail!("token endpoint answered {status}: {v}");
        }
        Ok(v)
    }

    /// The userinfo response for an access token.
    pub async fn userinfo(&self, access_token: &str) -> anyhow::Result<serde_json::Value> {
        let resp = self
            .http
            .get(self.url("/me"))
            .bearer_auth(access_token)
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            bail!("userinfo answered {status}");
        }
        Ok(resp.json().await?)
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PKCE pair: a random verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut raw = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .expect("random");
    let verifier = URL_SAFE_NO_PAD.encode(raw);
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    (verifier, challenge)
}

/// The claims of a JWT, unverified (tests look inside tokens they got from the provider).
pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

/// The query parameter `name` of `url`.
pub fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A browser: a cookie jar, no automatic redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .no_proxy()
        .build()
        .expect("client")
}

/// Drives a login: GET `authorize_url`, follow redirects to the provider's login form, post
/// `user`/`password`, follow redirects until the provider sends the browser to the relying
/// party's `redirect_uri` (taken from `authorize_url`). Returns that callback URL (with `code`
/// and `state`, or `error`). A refused password is an error naming the provider's message.
pub async fn login(
    browser: &reqwest::Client,
    authorize_url: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<Url> {
    let form = [("login", user), ("password", password)];
    drive(browser, authorize_url, "login", &form).await
}

/// Like [`login`] but presses Cancel on the login form: the callback carries
/// `error=access_denied`.
pub async fn deny(browser: &reqwest::Client, authorize_url: &str) -> anyhow::Result<Url> {
    drive(browser, authorize_url, "abort", &[]).await
}

async fn drive(
    browser: &reqwest::Client,
    authorize_url: &str,
    form_id: &str,
    fields: &[(&str, &str)],
) -> anyhow::Result<Url> {
    let start = Url::parse(authorize_url).context("authorize URL")?;
    let redirect_uri = start
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| anyhow!("no redirect_uri in {authorize_url}"))?;
    let is_callback = |u: &Url| {
        let mut bare = u.clone();
        bare.set_query(None);
        bare.set_fragment(None);
        bare.as_str() == redirect_uri
    };
    let mut url = start;
    let mut posted = false;
    for _ in 0..20 {
        let resp = browser.get(url.clone()).send().await?;
        let status = resp.status();
        if status.is_redirection() {
            let next = location(&url, &resp)?;
            if is_callback(&next) {
                return Ok(next);
            }
            url = next;
            continue;
        }
        let body = resp.text().await?;
        if posted {
            bail!("the provider answered {status} after the form was posted:\n{body}");
        }
        let action = form_action(&body, form_id)
            .ok_or_else(|| anyhow!("no `{form_id}` form at {url} ({status}):\n{body}"))?;
        let target = url.join(&action)?;
        let resp = browser.post(target.clone()).form(fields).send().await?;
        let status = resp.status();
        if !status.is_redirection() {
            let body = resp.text().await?;
            let message = error_message(&body).unwrap_or(body);
            bail!("the provider refused the sign-in ({status}): {message}");
        }
        let next = location(&target, &resp)?;
        if is_callback(&next) {
            return Ok(next);
        }
        url = next;
        posted = true;
    }
    bail!("too many redirects from {authorize_url}")
}

/// RP-initiated logout: GET `end_session_url`, confirm the provider's logout form, and return
/// where the provider sends the browser (the `post_logout_redirect_uri`, when one was given).
/// The provider sends back-channel logout tokens to every client of the session meanwhile.
pub async fn logout(browser: &reqwest::Client, end_session_url: &str) -> anyhow::Result<Url> {
    let url = Url::parse(end_session_url)?;
    let resp = browser.get(url.clone()).send().await?;
    let status = resp.status();
    let body = resp.text().await?;
    let action = form_action(&body, "op.logoutForm")
        .ok_or_else(|| anyhow!("no logout form ({status}):\n{body}"))?;
    let xsrf = input_value(&body, "xsrf").ok_or_else(|| anyhow!("no xsrf in:\n{body}"))?;
    let target = url.join(&action)?;
    let resp = browser
        .post(target.clone())
        .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
        .send()
        .await?;
    if !resp.status().is_redirection() {
        bail!("logout confirmation answered {}", resp.status());
    }
    location(&target, &resp)
}

fn location(base: &Url, resp: &reqwest::Response) -> anyhow::Result<Url> {
    let loc = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .ok_or_else(|| anyhow!("{} without Location", resp.status()))?
        .to_str()?;
    Ok(base.join(loc)?)
}

/// The `action` of the `<form id="{id}" …>` in `html`, entities decoded.
fn form_action(html: &str, id: &str) -> Option<String> {
    tag_attr(html, &format!("id=\"{id}\""), "<form", "action")
}

/// The `value` of `<input … name="{name}" value="…">`.
fn input_value(html: &str, name: &str) -> Option<String> {
    tag_attr(html, &format!("name=\"{name}\""), "<", "value")
}

/// Attribute `attr` of the tag (opening with `open`) that contains `marker`.
fn tag_attr(html: &str, marker: &str, open: &str, attr_name: &str) -> Option<String> {
    let at = html.find(marker)?;
    let start = html[..at].rfind(open)?;
    let end = at + html[at..].find('>')?;
    attr(&html[start..end], attr_name)
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let from = tag.find(&key)? + key.len();
    let len = tag[from..].find('"')?;
    Some(unescape(&tag[from..from + len]))
}

fn error_message(html: &str) -> Option<String> {
    let at = html.find("id=\"error\">")? + "id=\"error\">".len();
    let len = html[at..].find('<')?;
    Some(unescape(&html[at..at + len]))
}

fn unescape(s: &str) -> String {
    s.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
}

/// Receives back-channel logout requests (`POST` form bodies) on 127.0.0.1 and hands their
/// bodies to the test; answers 200.
pub struct LogoutSink {
    pub url: String,
    bodies: Mutex<mpsc::UnboundedReceiver<Bytes>>,
    stop: watch::Sender<bool>,
}

impl LogoutSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            let mut stopped = stopped;
            loop {
                let (sock, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                    _ = stopped.changed() => return,
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                        let tx = tx.clone();
                        async move {
                            let body: hyper::body::Incoming = req.into_body();
                            let bytes = body.collect().await?.to_bytes();
                            let _ = tx.send(bytes);
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(sock), svc).await;
                });
            }
        });
        Self {
            url: format!("http://{addr}/backchannel_logout"),
            bodies: Mutex::new(rx),
            stop,
        }
    }

    /// The next request body received, waiting up to 10 s.
    pub async fn next(&self) -> Bytes {
        let mut rx = self.bodies.lock().await;
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no back-channel logout request within 10s")
            .expect("sink closed")
    }
}

impl Drop for LogoutSink {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
