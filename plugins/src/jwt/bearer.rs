//! [`BearerAuth`]: every configured issuer and the shared verified-token cache, behind one
//! `authenticate` call.

use super::claims::IdentityMapping;
use super::conf::{self, JwtIssuerConf, KeySourceKind};
use super::error::BearerError;
use super::fetch::FetchError;
use super::jwks_cache::{JwksCache, RefreshOutcome, Timeouts};
use super::token_cache::{NewEntry, TokenCache};
use super::verify::{self, check_claims, ValidationRules};
use super::IssuerId;
use crate::clock::SharedClock;
use crate::conf::FieldError;
use crate::identity::Identity;
use crate::metrics::{AUTHN_TOTAL, TOKEN_CACHE_HITS_TOTAL};
use prometheus::IntCounter;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// The default of `identity.token_cache_size`.
pub const DEFAULT_TOKEN_CACHE_SIZE: usize = 100_000;

/// How often expired tokens are swept from the cache (lookups drop them too).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The `warden_authn_total` counters of one issuer label, resolved once.
struct Outcomes {
    ok: IntCounter,
    refused: Vec<IntCounter>,
}

impl Outcomes {
    fn new(issuer: &str) -> Self {
        let counter = |result: &str| AUTHN_TOTAL.with_label_values(&["bearer", issuer, result]);
        Self {
            ok: counter("ok"),
            refused: BearerError::ALL.iter().map(|e| counter(e.code())).collect(),
        }
    }

    fn record<T>(&self, result: &Result<T, BearerError>) {
        match result {
            Ok(_) => self.ok.inc(),
            Err(e) => self.refused[e.index()].inc(),
        }
    }
}

struct Issuer {
    name: Arc<str>,
    rules: ValidationRules,
    mapping: IdentityMapping,
    jwks: Arc<JwksCache>,
    outcomes: Outcomes,
}

struct Inner {
    issuers: Vec<Issuer>,
    cache: Arc<TokenCache>,
    clock: SharedClock,
    /// Outcomes of tokens no configured issuer could be chosen for.
    unknown: Outcomes,
    sweeper: Arc<Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.sweeper.notify_one();
    }
}

/// Bearer-token authentication for every configured issuer, with the shared verified-token
/// cache. Cheap to clone.
#[derive(Clone)]
pub struct BearerAuth {
    inner: Arc<Inner>,
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.inner.issuers.iter().map(|i| &*i.name).collect();
        f.debug_struct("BearerAuth")
            .field("issuers", &names)
            .field("cached_tokens", &self.inner.cache.len())
            .finish()
    }
}

type Outcome = (Result<Arc<Identity>, BearerError>, Option<IssuerId>);

impl BearerAuth {
    /// Checks the issuers' conf without touching the network or the filesystem (what
    /// `warden check` runs). Paths are relative to the list (`[1].audiences`).
    pub fn validate_conf(confs: &[JwtIssuerConf]) -> Vec<FieldError> {
        conf::validate(confs)
    }

    /// Builds from conf and starts fetching keys; reuses the key caches of `previous` for
    /// issuers whose key source is unchanged (conf reload). Returns once every issuer's first
    /// fetch attempt ended or after a short timeout; fetching continues in the background.
    /// Must be called inside a tokio runtime.
    pub async fn start(
        confs: &[JwtIssuerConf],
        cache_size: usize,
        clock: SharedClock,
        previous: Option<&BearerAuth>,
    ) -> Result<Self, Vec<FieldError>> {
        Self::start_with(confs, cache_size, clock, previous, Timeouts::default()).await
    }

    /// [`BearerAuth::start`] with explicit timeouts.
    pub async fn start_with(
        confs: &[JwtIssuerConf],
        cache_size: usize,
        clock: SharedClock,
        previous: Option<&BearerAuth>,
        timeouts: Timeouts,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = conf::validate(confs);
        if confs.len() > usize::from(u16::MAX) {
            errors.push(FieldError::new("", "too many issuers"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let cache = Arc::new(TokenCache::new(cache_size));
        let mut issuers = Vec::with_capacity(confs.len());
        let mut fresh = Vec::new();
        for (i, c) in confs.iter().enumerate() {
            let source = c.key_source();
            // Static files are re-read on reload: their content may be what changed.
            let reusable = !matches!(source.kind, KeySourceKind::File(_));
            let reused = previous
                .filter(|_| reusable)
                .and_then(|p| p.inner.issuers.iter().find(|x| *x.jwks.source() == source))
                .map(|x| x.jwks.clone());
            let jwks = match reused {
                Some(j) => j,
                None => match JwksCache::new(source, clock.clone(), timeouts) {
                    Ok(j) => {
                        fresh.push(j.clone());
                        j
                    }
                    Err(e) => {
                        errors.push(FieldError::new(e.field, e.message).under(&format!("[{i}]")));
                        continue;
                    }
                },
            };
            let id = IssuerId(i as u16);
            let tokens: Weak<TokenCache> = Arc::downgrade(&cache);
            jwks.subscribe(Box::new(move |keys| match tokens.upgrade() {
                Some(t) => {
                    t.purge_keys(id, |fp| keys.contains_fingerprint(fp));
                    true
                }
                None => false,
            }));
            let name: Arc<str> = c.name.as_str().into();
            issuers.push(Issuer {
                rules: c.rules(),
                mapping: IdentityMapping {
                    issuer_name: name.clone(),
                    kind: c.kind,
                    paths: c.claims.clone(),
                },
                jwks,
                outcomes: Outcomes::new(&name),
                name,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        for j in &fresh {
            j.spawn();
        }
        let deadline = tokio::time::Instant::now() + timeouts.startup;
        for issuer in &issuers {
            if tokio::time::timeout_at(deadline, issuer.jwks.first_attempt())
                .await
                .is_err()
            {
                tracing::warn!(issuer = %issuer.name,
                    "JWKS not loaded at start; still trying in the background");
            }
        }
        let sweeper = Arc::new(Notify::new());
        tokio::spawn(sweep(
            Arc::downgrade(&cache),
            clock.clone(),
            sweeper.clone(),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                issuers,
                cache,
                clock,
                unknown: Outcomes::new("unknown"),
                sweeper,
            }),
        })
    }

    /// The id of the issuer with conf name `name`.
    pub fn issuer_index(&self, name: &str) -> Option<IssuerId> {
        self.inner
            .issuers
            .iter()
            .position(|i| &*i.name == name)
            .map(|i| IssuerId(i as u16))
    }

    /// The conf name of an issuer.
    pub fn issuer_name(&self, id: IssuerId) -> Option<&str> {
        self.issuer(id).map(|i| &*i.name)
    }

    fn issuer(&self, id: IssuerId) -> Option<&Issuer> {
        self.inner.issuers.get(usize::from(id.0))
    }

    /// Authenticates `token` (the part after `Bearer `) for a route accepting the `allowed`
    /// issuers. A repeated token is answered from the cache (no crypto); a new one is verified
    /// with the cached keys. Only a token naming a key the issuer's set lacks waits, briefly,
    /// for one refetch.
    pub async fn authenticate(
        &self,
        token: &str,
        allowed: &[IssuerId],
    ) -> Result<Arc<Identity>, BearerError> {
        let (mut result, mut issuer) = self.cached_or_verified(token, allowed);
        if let (Err(BearerError::UnknownKey | BearerError::NoKeys), Some(id)) = (&result, issuer) {
            if let Some(i) = self.issuer(id) {
                i.jwks.refetch_for_unknown_key().await;
                (result, issuer) = self.verify(token, allowed, self.inner.clock.now_secs());
            }
        }
        match issuer.and_then(|id| self.issuer(id)) {
            Some(i) => i.outcomes.record(&result),
            None => self.inner.unknown.record(&result),
        }
        result
    }

    fn cached_or_verified(&self, token: &str, allowed: &[IssuerId]) -> Outcome {
        let now = self.inner.clock.now_secs();
        if let Some(hit) = self.inner.cache.get(token, now) {
            let key_still_there = self.issuer(hit.issuer).is_some_and(|i| {
                i.jwks
                    .current()
                    .keys
                    .contains_fingerprint(hit.key_fingerprint)
            });
            if !key_still_there {
                self.inner.cache.remove(token);
            } else if allowed.contains(&hit.issuer) {
                TOKEN_CACHE_HITS_TOTAL.inc();
                return (Ok(hit.identity), Some(hit.issuer));
            }
            // Cached for an issuer this route does not accept: no shortcut, verify against
            // the accepted ones (which refuses it unless one of them vouches for it too).
        }
        self.verify(token, allowed, now)
    }

    /// Full verification against the `allowed` issuer whose `iss` the token names.
    fn verify(&self, token: &str, allowed: &[IssuerId], now: i64) -> Outcome {
        let parsed = match verify::parse(token) {
            Ok(p) => p,
            Err(e) => return (Err(e), None),
        };
        let Some(iss) = parsed.iss() else {
            return (Err(BearerError::UnknownIssuer), None);
        };
        let mut first_error = None;
        let mut verified = None;
        for &id in allowed {
            let Some(issuer) = self.issuer(id) else {
                continue;
            };
            if issuer.rules.issuer != iss {
                continue;
            }
            let snapshot = issuer.jwks.current();
            let result = if !snapshot.loaded {
                Err(BearerError::NoKeys)
            } else {
                parsed
                    .verify_signature(&snapshot.keys, issuer.rules.algorithms)
                    .and_then(|key| {
                        let exp = check_claims(&parsed.claims, &issuer.rules, now)?;
                        Ok((key.fingerprint(), exp))
                    })
            };
            match result {
                Ok(v) => {
                    verified = Some((id, issuer, v));
                    break;
                }
                Err(e) => {
                    first_error.get_or_insert((e, id));
                }
            }
        }
        let Some((id, issuer, (key_fingerprint, exp))) = verified else {
            return match first_error {
                Some((e, id)) => (Err(e), Some(id)),
                None => (Err(BearerError::UnknownIssuer), None),
            };
        };
        let kid: Option<Box<str>> = parsed.kid().map(Into::into);
        let identity = match issuer.mapping.identity(parsed.claims, exp) {
            Ok(identity) => Arc::new(identity),
            Err(e) => return (Err(e), Some(id)),
        };
        self.inner.cache.insert(
            NewEntry {
                token,
                identity: identity.clone(),
                issuer: id,
                kid: kid.as_deref(),
                key_fingerprint,
                valid_until: exp.saturating_add(issuer.rules.clock_skew_secs),
            },
            now,
        );
        (Ok(identity), Some(id))
    }

    /// Fetches an issuer's keys now (tests, an admin action) and reschedules its refresh.
    pub async fn refresh_now(&self, id: IssuerId) -> Option<Result<RefreshOutcome, FetchError>> {
        let jwks = self.issuer(id)?.jwks.clone();
        Some(jwks.refresh().await)
    }

    /// The delay until the next background refresh chosen after the last fetch attempt:
    /// `Cache-Control: max-age` bounded to [30 s, 24 h], else `refresh_interval`; a backoff
    /// after failures.
    pub fn refresh_interval(&self, id: IssuerId) -> Option<Duration> {
        Some(self.issuer(id)?.jwks.refresh_interval())
    }

    /// Whether an issuer's keys were loaded at least once (readiness).
    pub fn keys_loaded(&self, id: IssuerId) -> bool {
        self.issuer(id).is_some_and(|i| i.jwks.current().loaded)
    }

    /// Entries in the verified-token cache.
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.len()
    }

    /// Drops expired tokens from the cache now (it also happens every minute).
    pub fn sweep_expired(&self) -> usize {
        self.inner.cache.sweep(self.inner.clock.now_secs())
    }
}

async fn sweep(cache: Weak<TokenCache>, clock: SharedClock, wake: Arc<Notify>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = wake.notified() => {}
        }
        let Some(cache) = cache.upgrade() else {
            return;
        };
        cache.sweep(clock.now_secs());
    }
}
