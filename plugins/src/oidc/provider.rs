//! One configured provider at run time: its conf, its secret, its HTTP client and — once
//! reached — what discovery taught. A provider that cannot be reached at start is kept
//! undiscovered and retried in the background with exponential backoff: Warden starts anyway,
//! sessions keep working, and only new logins wait.

use super::conf::ProviderConf;
use super::discovery::Discovered;
use super::http::IdpHttp;
use crate::clock::SharedClock;
use crate::conf::FieldError;
use arc_swap::ArcSwapOption;
use openidconnect::{ClientId, ClientSecret};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const RETRY_INITIAL: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Longest pause between probes of a provider that became unreachable.
const PROBE_MAX: Duration = Duration::from_secs(10);

pub(crate) struct Provider {
    pub name: Arc<str>,
    pub conf: ProviderConf,
    pub client_id: ClientId,
    pub secret: ClientSecret,
    /// The CA file's contents when loaded: a reload that changes them rebuilds the provider.
    ca_pem: Option<Vec<u8>>,
    pub http: IdpHttp,
    discovered: ArcSwapOption<Discovered>,
    discovering: tokio::sync::Mutex<()>,
    retrying: AtomicBool,
    /// A request to the provider failed in transit: new logins answer 503 until a background
    /// probe reaches it again (sessions keep working meanwhile).
    unreachable: AtomicBool,
    clock: SharedClock,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("issuer", &self.conf.issuer)
            .field("discovered", &self.discovered().is_some())
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Reads the secret and the CA file of `conf` (entry `index` of the providers list).
    pub(crate) fn load(
        conf: &ProviderConf,
        index: usize,
        clock: SharedClock,
    ) -> Result<Self, Vec<FieldError>> {
        let at = |field: &str| format!("[{index}].{field}");
        let mut errors = Vec::new();
        let secret = load_secret(conf).map_err(|(field, m)| FieldError::new(at(field), m));
        let ca_pem = match &conf.ca_file {
            Some(path) => match std::fs::read(path) {
                Ok(pem) => Some(pem),
                Err(e) => {
                    errors.push(FieldError::new(
                        at("ca_file"),
                        format!("cannot read {}: {e}", path.display()),
                    ));
                    None
                }
            },
            None => None,
        };
        let http = IdpHttp::new(ca_pem.as_deref()).map_err(|m| {
            let file = conf.ca_file.as_ref().map(|p| p.display().to_string());
            FieldError::new(at("ca_file"), format!("{}: {m}", file.unwrap_or_default()))
        });
        match (secret, http) {
            (Ok(secret), Ok(http)) if errors.is_empty() => Ok(Self {
                name: Arc::from(conf.name.as_str()),
                conf: conf.clone(),
                client_id: ClientId::new(conf.client_id.clone()),
                secret,
                ca_pem,
                http,
                discovered: ArcSwapOption::empty(),
                discovering: tokio::sync::Mutex::new(()),
                retrying: AtomicBool::new(false),
                unreachable: AtomicBool::new(false),
                clock,
            }),
            (secret, http) => {
                errors.extend(secret.err());
                errors.extend(http.err());
                Err(errors)
            }
        }
    }

    /// Same conf, secret and CA: a reload can keep this provider (and its discovery).
    pub(crate) fn same_as(&self, other: &Provider) -> bool {
        self.conf == other.conf
            && self.secret.secret() == other.secret.secret()
            && self.ca_pem == other.ca_pem
    }

    pub(crate) fn discovered(&self) -> Option<Arc<Discovered>> {
        self.discovered.load_full()
    }

    /// Runs discovery unless it already succeeded; concurrent callers share one attempt.
    /// Whether the provider is discovered afterwards.
    pub(crate) async fn discover(&self) -> bool {
        if self.discovered().is_some() {
            return true;
        }
        let _one = self.discovering.lock().await;
        if self.discovered().is_some() {
            return true;
        }
        let now = self.clock.now_secs();
        match Discovered::fetch(
            &self.http,
            &self.conf.issuer,
            &self.conf.client_id,
            &self.secret,
            now,
        )
        .await
        {
            Ok(d) => {
                tracing::info!(provider = %self.name, issuer = %self.conf.issuer, "OpenID provider discovered");
                self.discovered.store(Some(Arc::new(d)));
                true
            }
            Err(error) => {
                tracing::warn!(provider = %self.name, issuer = %self.conf.issuer, %error, "OpenID provider discovery failed; logins with it answer 503 until it succeeds");
                false
            }
        }
    }

    /// Retries discovery in the background, backing off from 1 s to 60 s, until it succeeds
    /// or the provider is dropped (a reload replaced it). One retry loop per provider.
    pub(crate) fn spawn_retry(self: &Arc<Self>) {
        if self.retrying.swap(true, Ordering::AcqRel) {
            return;
        }
        retry_with_backoff(self, RETRY_MAX, |p| async move { p.discover().await });
    }
}

/// Calls `attempt` with the provider after 1 s, then backing off (doubling) to `max`, until it
/// returns `true` or the provider is dropped (a reload replaced it).
fn retry_with_backoff<F, Fut>(p: &Arc<Provider>, max: Duration, attempt: F)
where
    F: Fn(Arc<Provider>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let weak = Arc::downgrade(p);
    tokio::spawn(async move {
        let mut delay = RETRY_INITIAL;
        loop {
            tokio::time::sleep(delay).await;
            let Some(p) = weak.upgrade() else { return };
            if attempt(p).await {
                return;
            }
            delay = (delay * 2).min(max);
        }
    });
}

impl Provider {
    /// Whether a recent request to the provider failed in transit (and no probe has reached
    /// it since).
    pub(crate) fn is_unreachable(&self) -> bool {
        self.unreachable.load(Ordering::Acquire)
    }

    /// Records that a request to the provider failed in transit: logins answer 503 instead of
    /// sending browsers to a provider that is down, until a background probe of its discovery
    /// document succeeds (from 1 s, backing off to 10 s; ends when the provider is dropped).
    pub(crate) fn mark_unreachable(self: &Arc<Self>) {
        if self.unreachable.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(provider = %self.name, issuer = %self.conf.issuer, "OpenID provider unreachable; new logins with it answer 503 until it answers again");
        retry_with_backoff(self, PROBE_MAX, |p| async move {
            if !p.probe().await {
                return false;
            }
            if let Some(d) = p.discovered() {
                d.allow_jwks_refetch();
            }
            p.unreachable.store(false, Ordering::Release);
            tracing::info!(provider = %p.name, "OpenID provider reachable again");
            true
        });
    }

    /// Whether the provider's discovery document can be fetched now.
    async fn probe(&self) -> bool {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.conf.issuer.trim_end_matches('/')
        );
        self.http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }
}

/// The client secret from its file (surrounding whitespace trimmed) or environment variable.
/// Errors name the field and never the secret.
fn load_secret(conf: &ProviderConf) -> Result<ClientSecret, (&'static str, String)> {
    let value = match (&conf.client_secret_file, &conf.client_secret_env) {
        (Some(path), _) => {
            let field = "client_secret_file";
            let bytes = std::fs::read(path)
                .map_err(|e| (field, format!("cannot read {}: {e}", path.display())))?;
            let s = String::from_utf8(bytes)
                .map_err(|_| (field, format!("{} is not UTF-8 text", path.display())))?;
            let s = s.trim().to_string();
            if s.is_empty() {
                return Err((field, format!("{} is empty", path.display())));
            }
            s
        }
        (None, Some(var)) => {
            let field = "client_secret_env";
            let s = std::env::var(var).map_err(|_| {
                (
                    field,
                    format!("the environment variable `{var}` is not set"),
                )
            })?;
            if s.trim().is_empty() {
                return Err((field, format!("the environment variable `{var}` is empty")));
            }
            s.trim().to_string()
        }
        (None, None) => {
            return Err((
                "client_secret_file",
                "missing: name a file or an environment variable holding the client secret".into(),
            ))
        }
    };
    Ok(ClientSecret::new(value))
}
