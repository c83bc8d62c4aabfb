//! Browser identity with OpenID Connect: login (authorization code + PKCE), keeping sessions
//! current (refresh, userinfo), and logout (RP-initiated and back-channel).
//!
//! [`OidcProviders`] holds every configured provider and is the whole API the gateway uses:
//!
//! - [`OidcProviders::start`] loads secrets and discovers each provider. One that cannot be
//!   reached is retried in the background; logins with it fail with
//!   [`OidcError::ProviderUnavailable`] (503) meanwhile, everything else works.
//! - [`OidcProviders::begin_login`] / [`OidcProviders::complete_login`]: the two halves of a
//!   login, around the provider's redirect to `/.warden/callback` ([`login`] explains the
//!   login-state cookies).
//! - [`OidcProviders::needs_refresh`] (cheap, every request) and [`OidcProviders::refresh`].
//! - [`OidcProviders::end_session_url`] and [`OidcProviders::verify_logout_token`].
//!
//! Tokens never reach a log; the session keeps only the refresh token, the access token and
//! the claims the conf names — never the ID token.

mod conf;
mod discovery;
mod error;
mod http;
mod id_token;
pub mod login;
mod logout;
mod profile;
mod provider;
mod refresh;
mod replay;
mod userinfo;

pub use conf::{validate_conf, ClaimNames, GroupsFrom, ProviderConf, DEFAULT_SCOPES};
pub use discovery::JWKS_REFETCH_INTERVAL_SECS;
pub use error::{LoginError, LogoutError, OidcError};
pub use http::TransportError;
pub use id_token::LEEWAY_SECS;
pub use login::{
    state_cookie_base, state_cookie_base_for_callback, CompletedLogin, LoginStart,
    LOGIN_STATE_COOKIE_PREFIX, LOGIN_STATE_TTL_SECS,
};
pub use logout::{LogoutRequest, BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_MAX_AGE_SECS};
pub use refresh::{RefreshOutcome, ACCESS_TOKEN_REFRESH_MARGIN_SECS, REFRESH_RETRY_SECS};

use crate::clock::SharedClock;
use crate::conf::FieldError;
use provider::Provider;
use replay::ReplaySet;
use std::collections::HashMap;
use std::sync::Arc;

/// Login states remembered as used (each ≈ 40 bytes).
const USED_STATES_CAPACITY: usize = 100_000;
/// Logout-token ids remembered as used.
const USED_JTIS_CAPACITY: usize = 10_000;

/// The configured OpenID providers.
pub struct OidcProviders {
    providers: HashMap<Arc<str>, Arc<Provider>>,
    clock: SharedClock,
    used_states: Arc<ReplaySet>,
    used_jtis: Arc<ReplaySet>,
    flights: Arc<refresh::Flights>,
}

impl std::fmt::Debug for OidcProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProviders")
            .field("providers", &self.providers.values().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl OidcProviders {
    /// Validates `confs`, loads each provider's secret and CA file, and discovers the providers
    /// (concurrently; each attempt is bounded by the HTTP timeouts). A provider that cannot be
    /// discovered is kept and retried in the background. Providers of `previous` (the running
    /// conf, on reload) whose conf, secret and CA are unchanged are taken over as they are,
    /// discovery included; used-state and logout-token memories and in-flight refreshes carry
    /// over too. Errors are addressed relative to the providers list.
    pub async fn start(
        confs: &[ProviderConf],
        clock: SharedClock,
        previous: Option<&OidcProviders>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = validate_conf(confs);
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut providers = HashMap::with_capacity(confs.len());
        let mut fresh = Vec::new();
        for (i, c) in confs.iter().enumerate() {
            let loaded = match Provider::load(c, i, clock.clone()) {
                Ok(p) => p,
                Err(mut e) => {
                    errors.append(&mut e);
                    continue;
                }
            };
            let kept = previous
                .and_then(|prev| prev.providers.get(c.name.as_str()))
                .filter(|old| old.same_as(&loaded))
                .cloned();
            let p = kept.unwrap_or_else(|| {
                let p = Arc::new(loaded);
                fresh.push(p.clone());
                p
            });
            providers.insert(p.name.clone(), p);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut attempts = tokio::task::JoinSet::new();
        for p in fresh {
            attempts.spawn(async move {
                if !p.discover().await {
                    p.spawn_retry();
                }
            });
        }
        while attempts.join_next().await.is_some() {}
        Ok(Self {
            providers,
            used_states: previous.map_or_else(
                || Arc::new(ReplaySet::new(USED_STATES_CAPACITY)),
                |p| p.used_states.clone(),
            ),
            used_jtis: previous.map_or_else(
                || Arc::new(ReplaySet::new(USED_JTIS_CAPACITY)),
                |p| p.used_jtis.clone(),
            ),
            flights: previous.map_or_else(Default::default, |p| p.flights.clone()),
            clock,
        })
    }

    fn provider(&self, name: &str) -> Option<Arc<Provider>> {
        self.providers.get(name).cloned()
    }

    /// The configured provider names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(|k| &**k)
    }

    /// Whether `provider` is configured and discovered (logins with it can start).
    pub fn is_ready(&self, provider: &str) -> bool {
        self.provider(provider)
            .is_some_and(|p| p.discovered().is_some())
    }

    /// Tries discovery now for every provider not discovered yet (besides the background
    /// retries). Returns how many are still not discovered.
    pub async fn retry_discovery(&self) -> usize {
        let mut pending = 0;
        for p in self.providers.values() {
            if !p.discover().await {
                pending += 1;
            }
        }
        pending
    }

    /// The clock the providers were started with.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }
}
