//! Sessions under churn, through the real OpenID provider (node `oidc-provider`, the one the
//! tests use) and real browser logins:
//!
//! - the `oidc` process kind starts the provider on `listen` with the users alice, bob and
//!   carol (`{user}-password`) and one web client `warden` / `warden-secret` whose redirect
//!   URIs are the `redirect_uri=URL` entries of `args`;
//! - `login_new_sessions` logs in `initial` sessions before the phases and writes their
//!   cookies to `out` (the load's tokens file), then logs in `count` more on every tick and
//!   checks that each works at once (`no_false_401`);
//! - `revoke_sessions` logs in `per_tick` sessions of its own user, checks they work, revokes
//!   them through the admin API and, as soon as the call has returned, checks that none of
//!   them gets through any more (`no_success_after_revoke`).

use super::probe::{self, ProbeSpec, Prober};
use super::{at, first_line, params};
use crate::scenario::driver::{
    Churn, ChurnContext, ChurnEvent, DriverError, Process, RunContext, Verdict,
};
use crate::scenario::spec::{Assertions, ChurnAction, ChurnSpec, ProcessSpec};
use async_trait::async_trait;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;
use warden_tests::oidc::{self, OidcProvider, ProviderOpts, WebClient};

/// The provider as a scenario process.
pub struct OidcProcess {
    name: String,
    port: u16,
    redirect_uris: Vec<String>,
    running: Option<OidcProvider>,
}

impl OidcProcess {
    pub fn from_spec(spec: &ProcessSpec) -> Result<Self, DriverError> {
        let fail = |m: String| DriverError::failed(&spec.name, m);
        let listen = spec
            .listen
            .as_deref()
            .ok_or_else(|| fail("`listen` (127.0.0.1:PORT) is required".into()))?;
        let addr: SocketAddr = listen
            .parse()
            .map_err(|e| fail(format!("`listen`: {listen}: {e}")))?;
        let mut redirect_uris = Vec::new();
        for a in &spec.args {
            match a.strip_prefix("redirect_uri=") {
                Some(u) => redirect_uris.push(u.to_string()),
                None => return Err(fail(format!("`args`: `{a}` is not `redirect_uri=URL`"))),
            }
        }
        if redirect_uris.is_empty() {
            return Err(fail(
                "`args` needs at least one `redirect_uri=URL` (Warden's /.warden/callback)".into(),
            ));
        }
        Ok(Self {
            name: spec.name.clone(),
            port: addr.port(),
            redirect_uris,
            running: None,
        })
    }
}

#[async_trait]
impl Process for OidcProcess {
    async fn start(&mut self, _ctx: &RunContext) -> Result<(), DriverError> {
        if self.running.is_some() {
            return Ok(());
        }
        let uris: Vec<&str> = self.redirect_uris.iter().map(String::as_str).collect();
        let opts = ProviderOpts {
            port: Some(self.port),
            clients: vec![WebClient::new("warden", "warden-secret", &uris)],
            ..ProviderOpts::default()
        };
        // The provider's starter panics on failure (it is the tests'); keep that a driver error.
        let started = tokio::spawn(OidcProvider::start(opts)).await.map_err(|e| {
            DriverError::failed(&self.name, format!("the provider did not start: {e}"))
        })?;
        self.running = Some(started);
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.running.as_ref().and_then(OidcProvider::pid)
    }

    async fn stop(&mut self) -> Result<(), DriverError> {
        if let Some(mut p) = self.running.take() {
            p.stop();
        }
        Ok(())
    }

    fn default_ready(&self) -> Option<String> {
        Some(format!(
            "http://127.0.0.1:{}/.well-known/openid-configuration",
            self.port
        ))
    }
}

/// How a browser signs in: where it starts (a page on a route with `auth.login`), where
/// Warden listens for that host, and whose credentials it types.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSpec {
    pub start: String,
    pub connect: SocketAddr,
    pub user: String,
    /// Default: `{user}-password`, as the provider's test users have it.
    #[serde(default)]
    pub password: Option<String>,
}

/// One browser login; returns the `warden_session=…` cookie pair Warden set.
pub async fn login(spec: &LoginSpec) -> Result<String, String> {
    let url = reqwest::Url::parse(&spec.start).map_err(|e| format!("`start`: {e}"))?;
    let host = url.host_str().ok_or("`start` has no host")?.to_string();
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .resolve(&host, spec.connect)
        .build()
        .map_err(|e| e.to_string())?;
    let html = "text/html,application/xhtml+xml";
    let r = browser
        .get(url.clone())
        .header("accept", html)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let authorize = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            format!(
                "GET {url}: {} without a redirect to the provider",
                r.status()
            )
        })?
        .to_string();
    let password = spec
        .password
        .clone()
        .unwrap_or_else(|| format!("{}-password", spec.user));
    let callback = oidc::login(&browser, &authorize, &spec.user, &password)
        .await
        .map_err(|e| format!("signing in as {}: {e:#}", spec.user))?;
    let r = browser
        .get(callback.clone())
        .header("accept", html)
        .send()
        .await
        .map_err(|e| format!("the callback: {e}"))?;
    session_cookie(r.headers()).ok_or_else(|| {
        format!(
            "the callback answered {} without a session cookie",
            r.status()
        )
    })
}

/// The `name=value` of the Warden session cookie a response sets.
pub fn session_cookie(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("warden_session=") || c.starts_with("__Host-warden_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
}

/// `n` logins, `parallel` at a time.
async fn login_many(spec: &LoginSpec, n: usize, parallel: usize) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(n);
    let mut left = n;
    while left > 0 {
        let batch = left.min(parallel.max(1));
        let mut tasks = Vec::with_capacity(batch);
        for _ in 0..batch {
            let s = spec.clone();
            tasks.push(tokio::spawn(async move { login(&s).await }));
        }
        for t in tasks {
            out.push(t.await.map_err(|e| e.to_string())??);
        }
        left -= batch;
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginParams {
    login: LoginSpec,
    /// Logged in before the phases and written to `out`.
    #[serde(default)]
    initial: usize,
    out: Option<PathBuf>,
    /// Logged in on every tick.
    #[serde(default)]
    count: usize,
    #[serde(default = "default_parallel")]
    parallel: usize,
    /// Where a new session is tried (Warden's listener and the route's host).
    probe: ProbeSpec,
}

fn default_parallel() -> usize {
    4
}

pub struct LoginNew {
    p: LoginParams,
    out: Option<PathBuf>,
    prober: Prober,
    logged_in: u64,
    refused: Vec<String>,
}

impl LoginNew {
    pub fn from_spec(spec: &ChurnSpec, ctx: &RunContext) -> Result<Self, DriverError> {
        let p: LoginParams = params(spec)?;
        let fail = |m: String| DriverError::failed("login_new_sessions", m);
        if p.initial > 0 && p.out.is_none() {
            return Err(fail(
                "`initial` sessions need `out`, the file to write".into(),
            ));
        }
        let out = p.out.as_ref().map(|o| at(ctx, o));
        let prober = Prober::new(p.probe.clone()).map_err(fail)?;
        Ok(Self {
            p,
            out,
            prober,
            logged_in: 0,
            refused: Vec::new(),
        })
    }
}

#[async_trait]
impl Churn for LoginNew {
    async fn prepare(&mut self, _run: &RunContext) -> Result<(), DriverError> {
        let fail = |m: String| DriverError::failed("login_new_sessions", m);
        let Some(out) = &self.out else {
            return Ok(());
        };
        let cookies = login_many(&self.p.login, self.p.initial, self.p.parallel)
            .await
            .map_err(fail)?;
        let mut text = cookies.join("\n");
        text.push('\n');
        std::fs::write(out, text).map_err(|e| fail(format!("cannot write {}: {e}", out.display())))
    }

    async fn tick(&mut self, _ctx: &mut ChurnContext<'_>) -> Result<ChurnEvent, DriverError> {
        let fail = |m: String| DriverError::failed("login_new_sessions", m);
        let at = Instant::now();
        let cookies = login_many(&self.p.login, self.p.count, self.p.parallel)
            .await
            .map_err(fail)?;
        for c in &cookies {
            let got = self.prober.status("cookie", c).await.map_err(fail)?;
            if got != 200 {
                self.refused.push(format!("a new session got {got}"));
            }
        }
        self.logged_in += cookies.len() as u64;
        Ok(ChurnEvent {
            at,
            action: ChurnAction::LoginNewSessions,
            detail: format!("{} new sessions logged in and used", cookies.len()),
        })
    }

    fn judge(&self, a: &Assertions) -> Vec<(&'static str, Verdict)> {
        if !a.no_false_401 || self.logged_in == 0 {
            return Vec::new();
        }
        let v = if self.refused.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail(format!(
                "{} of {} new sessions refused: {}",
                self.refused.len(),
                self.logged_in,
                self.refused.join("; ")
            ))
        };
        vec![("no_false_401", v)]
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeParams {
    /// The user whose sessions are revoked; the load should use another one.
    login: LoginSpec,
    /// That user's email, the revocation's selector.
    email: String,
    #[serde(default = "default_per_tick")]
    per_tick: usize,
    /// Warden's admin listener and its bearer token file.
    admin: String,
    admin_token_file: PathBuf,
    probe: ProbeSpec,
}

fn default_per_tick() -> usize {
    3
}

pub struct Revoke {
    p: RevokeParams,
    token: String,
    client: reqwest::Client,
    prober: Prober,
    revoked: u64,
    got_through: Vec<String>,
    refused_before: Vec<String>,
}

impl Revoke {
    pub fn from_spec(spec: &ChurnSpec, ctx: &RunContext) -> Result<Self, DriverError> {
        let p: RevokeParams = params(spec)?;
        let fail = |m: String| DriverError::failed("revoke_sessions", m);
        let token = first_line(&at(ctx, &p.admin_token_file)).map_err(fail)?;
        Ok(Self {
            token,
            client: probe::http_client().map_err(fail)?,
            prober: Prober::new(p.probe.clone()).map_err(fail)?,
            p,
            revoked: 0,
            got_through: Vec::new(),
            refused_before: Vec::new(),
        })
    }
}

#[async_trait]
impl Churn for Revoke {
    async fn tick(&mut self, _ctx: &mut ChurnContext<'_>) -> Result<ChurnEvent, DriverError> {
        let fail = |m: String| DriverError::failed("revoke_sessions", m);
        let at = Instant::now();
        let cookies = login_many(&self.p.login, self.p.per_tick, self.p.per_tick)
            .await
            .map_err(fail)?;
        for c in &cookies {
            let got = self.prober.status("cookie", c).await.map_err(fail)?;
            if got != 200 {
                self.refused_before
                    .push(format!("a session got {got} before its revocation"));
            }
        }
        let url = format!(
            "{}/admin/sessions/revoke",
            self.p.admin.trim_end_matches('/')
        );
        let called = Instant::now();
        let r = self
            .client
            .post(&url)
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "email": self.p.email }))
            .send()
            .await
            .map_err(|e| fail(format!("POST {url}: {e}")))?;
        let status = r.status();
        let body: serde_json::Value = r
            .json()
            .await
            .map_err(|e| fail(format!("POST {url}: {status}: {e}")))?;
        let call_ms = called.elapsed().as_millis();
        let n = body["revoked"].as_u64().unwrap_or(0);
        if !status.is_success() || n < cookies.len() as u64 {
            return Err(fail(format!(
                "POST {url} answered {status} {body}, expected at least {} revoked",
                cookies.len()
            )));
        }
        // The revocation call has returned: from now on none of them may get through.
        let mut through = 0;
        for c in &cookies {
            let got = self.prober.status("cookie", c).await.map_err(fail)?;
            if (200..300).contains(&got) {
                through += 1;
                self.got_through
                    .push(format!("a revoked session got {got}"));
            }
        }
        self.revoked += cookies.len() as u64;
        Ok(ChurnEvent {
            at,
            action: ChurnAction::RevokeSessions,
            detail: format!(
                "{} sessions revoked (admin call {call_ms} ms), {through} got through afterwards",
                cookies.len()
            ),
        })
    }

    fn judge(&self, a: &Assertions) -> Vec<(&'static str, Verdict)> {
        let mut out = Vec::new();
        if a.no_success_after_revoke {
            let v = if self.revoked == 0 {
                Verdict::NotEvaluated("nothing was revoked".into())
            } else if self.got_through.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Fail(format!(
                    "{} of {} revoked sessions got through: {}",
                    self.got_through.len(),
                    self.revoked,
                    self.got_through.join("; ")
                ))
            };
            out.push(("no_success_after_revoke", v));
        }
        if a.no_false_401 && self.revoked > 0 {
            let v = if self.refused_before.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Fail(self.refused_before.join("; "))
            };
            out.push(("no_false_401", v));
        }
        out
    }
}
