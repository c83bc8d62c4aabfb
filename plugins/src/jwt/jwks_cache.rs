//! One issuer's keys: loaded at start, refreshed in the background, refetched once (single
//! flight, rate limited) when a token names an unknown key. The last good keys keep serving
//! through outages, and readers never wait on a fetch: they load an `ArcSwap` snapshot.

use super::conf::{KeySource, KeySourceKind, MAX_REFRESH, MIN_REFRESH};
use super::fetch::{FetchError, Fetched, Fetcher};
use super::jwk::KeySet;
use crate::clock::SharedClock;
use crate::metrics::JWKS_REFRESH_TOTAL;
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use prometheus::IntCounter;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// How long Warden waits for key sources, and how often it may bother them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `BearerAuth::start` returns after every issuer's first fetch attempt or after this long,
    /// whichever comes first; fetching goes on in the background.
    pub startup: Duration,
    /// One HTTP request (discovery or JWKS).
    pub request: Duration,
    /// How long a request with an unknown `kid` waits for the refetch it triggered.
    pub unknown_key_wait: Duration,
    /// At most one unknown-`kid` refetch per issuer in this period (measured on the `Clock`).
    pub refetch_cooldown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            startup: Duration::from_secs(5),
            request: Duration::from_secs(10),
            unknown_key_wait: Duration::from_secs(2),
            refetch_cooldown: Duration::from_secs(30),
        }
    }
}

/// What one refresh found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// New keys were installed (cached tokens of removed keys were dropped).
    Changed,
    /// The key set was fetched and is the same as before.
    Unchanged,
    /// The server answered 304 to our `If-None-Match`.
    NotModified,
}

/// The keys readers see.
pub(crate) struct KeySnapshot {
    pub(crate) keys: KeySet,
    /// False until a key set was loaded once (requests are then refused with `no_keys`).
    pub(crate) loaded: bool,
}

/// Called with the new keys when they change; returns false once its owner is gone.
pub(crate) type KeyListener = Box<dyn Fn(&KeySet) -> bool + Send + Sync>;

struct Schedule {
    etag: Option<String>,
    /// The JWKS URL found through discovery, forgotten when fetching it fails.
    jwks_uri: Option<String>,
    /// The delay chosen after the last attempt.
    interval: Duration,
    next_at: Instant,
    failures: u32,
}

struct RefetchGate {
    /// Requesters wait on this until the in-flight refetch ends (the sender is dropped).
    in_flight: Option<watch::Receiver<()>>,
    last_started_ms: Option<i64>,
}

struct Counters {
    ok: IntCounter,
    not_modified: IntCounter,
    error: IntCounter,
}

/// Where the keys are read from, with what they need.
enum Origin {
    File(std::path::PathBuf),
    Jwks { fetcher: Fetcher, url: String },
    Discovery { fetcher: Fetcher, url: String },
}

pub(crate) struct JwksCache {
    source: KeySource,
    origin: Origin,
    clock: SharedClock,
    timeouts: Timeouts,
    keys: ArcSwap<KeySnapshot>,
    /// Serializes fetches so ETag and schedule stay consistent (held across the fetch's
    /// awaits, which is why it is tokio's mutex).
    fetch_lock: tokio::sync::Mutex<()>,
    schedule: Mutex<Schedule>,
    gate: Mutex<RefetchGate>,
    /// Wakes the background task: the schedule changed, or the cache was dropped.
    wake: Arc<Notify>,
    attempted: watch::Sender<bool>,
    listeners: Mutex<Vec<KeyListener>>,
    counters: Counters,
}

/// A problem with a conf field found while setting up a cache.
#[derive(Debug)]
pub(crate) struct SetupError {
    pub field: &'static str,
    pub message: String,
}

fn read_jwks_file(
    path: &std::path::Path,
    bytes: std::io::Result<Vec<u8>>,
) -> Result<KeySet, FetchError> {
    let bytes = bytes.map_err(|e| FetchError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    KeySet::from_jwks_json(&bytes).map_err(|error| FetchError::Jwks {
        source_name: path.display().to_string(),
        error,
    })
}

impl JwksCache {
    /// Sets up the cache. A `jwks_file` is read now; remote sources are fetched once `spawn`ed.
    pub(crate) fn new(
        source: KeySource,
        clock: SharedClock,
        timeouts: Timeouts,
    ) -> Result<Arc<Self>, SetupError> {
        let mut snapshot = KeySnapshot {
            keys: KeySet::default(),
            loaded: false,
        };
        let remote = |url: &String| -> Result<Fetcher, SetupError> {
            if let Some(token) = &source.token_file {
                std::fs::metadata(token).map_err(|e| SetupError {
                    field: "token_file",
                    message: format!("cannot read {}: {e}", token.display()),
                })?;
            }
            Fetcher::new(&source, url, timeouts.request).map_err(|message| SetupError {
                field: "ca_file",
                message,
            })
        };
        let origin = match &source.kind {
            KeySourceKind::File(path) => {
                snapshot.keys =
                    read_jwks_file(path, std::fs::read(path)).map_err(|e| SetupError {
                        field: "jwks_file",
                        message: e.to_string(),
                    })?;
                snapshot.loaded = true;
                Origin::File(path.clone())
            }
            KeySourceKind::Url(url) => Origin::Jwks {
                fetcher: remote(url)?,
                url: url.clone(),
            },
            KeySourceKind::Discovery(url) => Origin::Discovery {
                fetcher: remote(url)?,
                url: url.clone(),
            },
        };
        let loaded = snapshot.loaded;
        let first_delay = if loaded {
            source.refresh_interval
        } else {
            Duration::ZERO
        };
        let label = source.issuer_name.as_str();
        let counters = Counters {
            ok: JWKS_REFRESH_TOTAL.with_label_values(&[label, "ok"]),
            not_modified: JWKS_REFRESH_TOTAL.with_label_values(&[label, "not_modified"]),
            error: JWKS_REFRESH_TOTAL.with_label_values(&[label, "error"]),
        };
        Ok(Arc::new(Self {
            origin,
            clock,
            timeouts,
            keys: ArcSwap::from_pointee(snapshot),
            fetch_lock: tokio::sync::Mutex::new(()),
            schedule: Mutex::new(Schedule {
                etag: None,
                jwks_uri: None,
                interval: first_delay,
                next_at: Instant::now() + first_delay,
                failures: 0,
            }),
            gate: Mutex::new(RefetchGate {
                in_flight: None,
                last_started_ms: None,
            }),
            wake: Arc::new(Notify::new()),
            attempted: watch::Sender::new(loaded),
            listeners: Mutex::new(Vec::new()),
            counters,
            source,
        }))
    }

    pub(crate) fn source(&self) -> &KeySource {
        &self.source
    }

    /// Starts the background refresh task; it ends when the cache is dropped.
    pub(crate) fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(run(Arc::downgrade(self), self.wake.clone()))
    }

    /// The keys now (a lock-free load).
    pub(crate) fn current(&self) -> arc_swap::Guard<Arc<KeySnapshot>> {
        self.keys.load()
    }

    /// Waits until the first fetch attempt ended (successfully or not).
    pub(crate) async fn first_attempt(&self) {
        let mut rx = self.attempted.subscribe();
        // An error means the cache is gone; nothing is left to wait for.
        let _ = rx.wait_for(|done| *done).await;
    }

    /// The delay the schedule chose after the last fetch attempt.
    pub(crate) fn refresh_interval(&self) -> Duration {
        self.schedule.lock().interval
    }

    pub(crate) fn subscribe(&self, listener: KeyListener) {
        self.listeners.lock().push(listener);
    }

    /// Fetches now, installs changed keys and reschedules the next refresh.
    pub(crate) async fn refresh(&self) -> Result<RefreshOutcome, FetchError> {
        let _serial = self.fetch_lock.lock().await;
        let result = self.fetch().await;
        {
            let mut s = self.schedule.lock();
            s.interval = match &result {
                Ok((_, max_age)) => {
                    s.failures = 0;
                    max_age
                        .map(|a| a.clamp(MIN_REFRESH.get(), MAX_REFRESH.get()))
                        .unwrap_or(self.source.refresh_interval)
                }
                Err(_) => {
                    s.failures = s.failures.saturating_add(1);
                    let cap = self.source.refresh_interval.min(Duration::from_secs(300));
                    Duration::from_secs(1u64 << s.failures.min(16).saturating_sub(1)).min(cap)
                }
            };
            s.next_at = Instant::now() + s.interval;
        }
        match &result {
            Ok((RefreshOutcome::NotModified, _)) => self.counters.not_modified.inc(),
            Ok(_) => self.counters.ok.inc(),
            Err(e) => {
                self.counters.error.inc();
                tracing::warn!(issuer = %self.source.issuer_name, error = %e,
                    "fetching JWKS failed; the last good keys keep serving");
            }
        }
        self.attempted.send_replace(true);
        self.wake.notify_one();
        result.map(|(outcome, _)| outcome)
    }

    async fn fetch(&self) -> Result<(RefreshOutcome, Option<Duration>), FetchError> {
        let (keys, max_age) = match &self.origin {
            Origin::File(path) => (
                Some(read_jwks_file(path, tokio::fs::read(path).await)?),
                None,
            ),
            Origin::Jwks { fetcher, url } => self.fetch_jwks(fetcher, url).await?,
            Origin::Discovery { fetcher, url: doc } => {
                let known = self.schedule.lock().jwks_uri.clone();
                let url = match known {
                    Some(url) => url,
                    None => {
                        let url = fetcher.discover(doc, &self.source.expected_issuer).await?;
                        self.schedule.lock().jwks_uri = Some(url.clone());
                        url
                    }
                };
                let fetched = self.fetch_jwks(fetcher, &url).await;
                if fetched.is_err() {
                    // The document may have moved the keys: discover again next time.
                    self.schedule.lock().jwks_uri = None;
                }
                fetched?
            }
        };
        let Some(keys) = keys else {
            return Ok((RefreshOutcome::NotModified, max_age));
        };
        let outcome = if self.install(keys) {
            RefreshOutcome::Changed
        } else {
            RefreshOutcome::Unchanged
        };
        Ok((outcome, max_age))
    }

    /// `None` keys: not modified.
    async fn fetch_jwks(
        &self,
        fetcher: &Fetcher,
        url: &str,
    ) -> Result<(Option<KeySet>, Option<Duration>), FetchError> {
        let etag = if self.current().loaded {
            self.schedule.lock().etag.clone()
        } else {
            None
        };
        match fetcher.get(url, etag.as_deref()).await? {
            Fetched::NotModified { max_age } => Ok((None, max_age)),
            Fetched::Body {
                body,
                etag,
                max_age,
            } => {
                let keys = KeySet::from_jwks_json(&body).map_err(|error| FetchError::Jwks {
                    source_name: url.to_string(),
                    error,
                })?;
                self.schedule.lock().etag = etag;
                Ok((Some(keys), max_age))
            }
        }
    }

    /// Swaps in `keys` unless they equal the current ones; tells the listeners. Returns
    /// whether anything changed.
    fn install(&self, keys: KeySet) -> bool {
        let old = self.keys.load_full();
        if old.loaded && old.keys.same_keys(&keys) {
            return false;
        }
        let kids = |set: &KeySet| {
            set.keys()
                .iter()
                .map(|k| k.kid().unwrap_or("-"))
                .collect::<Vec<_>>()
                .join(",")
        };
        tracing::info!(issuer = %self.source.issuer_name, keys = %kids(&keys),
            previous = %kids(&old.keys), "JWKS changed");
        for skipped in keys.skipped() {
            tracing::warn!(issuer = %self.source.issuer_name, %skipped, "JWKS key not usable");
        }
        let snapshot = Arc::new(KeySnapshot { keys, loaded: true });
        self.keys.store(snapshot.clone());
        self.listeners.lock().retain(|l| l(&snapshot.keys));
        true
    }

    /// Called when a token names a key this cache does not hold: starts one refetch unless one
    /// is running or one started within the cooldown, and waits (bounded) for the running one.
    pub(crate) async fn refetch_for_unknown_key(self: &Arc<Self>) {
        let mut done = {
            let mut gate = self.gate.lock();
            match &gate.in_flight {
                Some(rx) => rx.clone(),
                None => {
                    let now = self.clock.now_millis();
                    let cooldown = self.timeouts.refetch_cooldown.as_millis() as i64;
                    if gate
                        .last_started_ms
                        .is_some_and(|last| now >= last && now - last < cooldown)
                    {
                        return;
                    }
                    gate.last_started_ms = Some(now);
                    let (tx, rx) = watch::channel(());
                    gate.in_flight = Some(rx.clone());
                    let me = self.clone();
                    // Spawned, so the refetch completes (once) even if every waiter gives up.
                    tokio::spawn(async move {
                        let _ = me.refresh().await;
                        me.gate.lock().in_flight = None;
                        drop(tx);
                    });
                    rx
                }
            }
        };
        // Ends with an error when the sender is dropped: the refetch is over.
        let _ = tokio::time::timeout(self.timeouts.unknown_key_wait, done.changed()).await;
    }
}

impl Drop for JwksCache {
    fn drop(&mut self) {
        // Stores a permit if the task is not waiting yet, so it cannot miss it.
        self.wake.notify_one();
    }
}

/// The background refresh loop; holds the cache only while fetching.
async fn run(cache: Weak<JwksCache>, wake: Arc<Notify>) {
    loop {
        let next_at = match cache.upgrade() {
            Some(c) => {
                let at = c.schedule.lock().next_at;
                at
            }
            None => return,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(next_at) => {
                let Some(c) = cache.upgrade() else { return };
                // A manual refresh or refetch may have moved the schedule meanwhile.
                if c.schedule.lock().next_at <= Instant::now() {
                    let _ = c.refresh().await;
                }
            }
            _ = wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwks(x_byte: u8) -> String {
        use base64::Engine as _;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([x_byte; 32]);
        format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"k{x_byte}","x":"{x}"}}]}}"#)
    }

    /// A cache of a key file holding key `k1`.
    fn file_cache() -> (tempfile::NamedTempFile, Arc<JwksCache>) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), jwks(1)).unwrap();
        let source = KeySource {
            issuer_name: "file-test".into(),
            expected_issuer: "file-test".into(),
            kind: KeySourceKind::File(file.path().to_path_buf()),
            ca_file: None,
            ca_only: false,
            token_file: None,
            refresh_interval: Duration::from_secs(600),
        };
        let cache = JwksCache::new(source, crate::clock::system(), Timeouts::default()).unwrap();
        (file, cache)
    }

    #[tokio::test]
    async fn a_key_file_is_reread_on_refresh_and_listeners_hear_of_changes() {
        let (file, cache) = file_cache();
        assert!(cache.current().loaded);
        let heard = Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        cache.subscribe(Box::new(move |keys| {
            h.lock().push(keys.keys()[0].kid().map(str::to_string));
            true
        }));
        assert_eq!(cache.refresh().await.unwrap(), RefreshOutcome::Unchanged);
        std::fs::write(file.path(), jwks(2)).unwrap();
        assert_eq!(cache.refresh().await.unwrap(), RefreshOutcome::Changed);
        assert_eq!(*heard.lock(), vec![Some("k2".to_string())]);
        std::fs::write(file.path(), "not json").unwrap();
        assert!(cache.refresh().await.is_err());
        assert_eq!(cache.current().keys.keys()[0].kid(), Some("k2"));
    }

    #[tokio::test]
    async fn the_background_task_ends_when_the_cache_is_dropped() {
        let (_file, cache) = file_cache();
        let task = cache.spawn();
        tokio::task::yield_now().await;
        drop(cache);
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the task noticed the drop")
            .unwrap();
    }
}
