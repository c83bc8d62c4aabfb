//! What the proxy, the admin listener and the reload triggers share: the current snapshot and
//! the reload procedure.

use crate::conf::{self, ConfError};
use crate::snapshot::{BuildMode, Snapshot};
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub struct State {
    pub snapshot: ArcSwap<Snapshot>,
    /// Sessions, blocks and the clock: they outlive conf versions.
    pub shared: crate::identity::Shared,
    pub conf_path: PathBuf,
    reload_lock: tokio::sync::Mutex<()>,
    /// Hash of the conf text last applied: file watchers fire on touches and on writes that
    /// change nothing, which must not count as reloads.
    applied_text: AtomicU64,
    /// Listener addresses as started; a reload cannot move them (a restart can).
    pub listen: crate::conf::types::Listen,
    pub admin_listen: String,
    /// Becomes true once every listener is bound (`/readyz`).
    pub listeners_bound: AtomicBool,
    /// Set when SIGTERM arrived: `/readyz` fails so load balancers drain us.
    pub draining: AtomicBool,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    Applied { generation: u64 },
    Unchanged { generation: u64 },
}

fn text_hash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl State {
    /// Loads the conf for the first time (off any runtime's worker threads).
    pub async fn start(conf_path: PathBuf) -> Result<Arc<State>, Vec<ConfError>> {
        let text = read(&conf_path)?;
        let loaded = conf::parse(&text, &conf_path.display().to_string())?;
        let listen = loaded.conf.listen.clone();
        let admin_listen = loaded.conf.admin.listen.clone();
        let clock = warden_plugins::clock::system();
        let snap = Snapshot::build(loaded.conf.clone(), 1, None, &clock, BuildMode::Serve)
            .await
            .map_err(|e| loaded.locate(e))?;
        let snap = Arc::new(snap);
        apply_side_effects(&snap);
        // Both series exist from the start (at 0), so an alert on errors fires on the first.
        for result in ["ok", "error"] {
            crate::metrics::CONFIG_RELOADS_TOTAL.with_label_values(&[result]);
        }
        Ok(Arc::new(State {
            shared: crate::identity::Shared::new(&loaded.conf, clock, true),
            snapshot: ArcSwap::new(snap),
            conf_path,
            reload_lock: tokio::sync::Mutex::new(()),
            applied_text: AtomicU64::new(text_hash(&text)),
            listen,
            admin_listen,
            listeners_bound: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }))
    }

    /// Every address Warden was started to listen on (proxy and admin).
    pub fn expected_listeners(&self) -> Vec<std::net::SocketAddr> {
        [
            self.listen.http.as_deref(),
            self.listen.https.as_deref(),
            Some(self.admin_listen.as_str()),
        ]
        .into_iter()
        .flatten()
        .filter_map(|a| a.parse().ok())
        .collect()
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Builds a new snapshot from the conf file and swaps it in; on any error the current
    /// snapshot keeps serving. `trigger` names the cause in logs (`sighup`, `file`, `admin`).
    pub async fn reload(&self, trigger: &str) -> Result<ReloadOutcome, Vec<ConfError>> {
        let _serial = self.reload_lock.lock().await;
        let result = self.reload_locked(trigger).await;
        match &result {
            Ok(ReloadOutcome::Applied { generation }) => {
                crate::metrics::CONFIG_RELOADS_TOTAL
                    .with_label_values(&["ok"])
                    .inc();
                tracing::info!(trigger, generation, "conf reloaded");
            }
            Ok(ReloadOutcome::Unchanged { .. }) => {}
            Err(errs) => {
                crate::metrics::CONFIG_RELOADS_TOTAL
                    .with_label_values(&["error"])
                    .inc();
                let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                tracing::error!(trigger, errors = ?lines, "conf reload rejected; the previous conf keeps serving");
            }
        }
        result
    }

    async fn reload_locked(&self, trigger: &str) -> Result<ReloadOutcome, Vec<ConfError>> {
        let text = read(&self.conf_path)?;
        let hash = text_hash(&text);
        let old = self.current();
        if trigger == "file" && hash == self.applied_text.load(Ordering::Acquire) {
            return Ok(ReloadOutcome::Unchanged {
                generation: old.generation,
            });
        }
        let loaded = conf::parse(&text, &self.conf_path.display().to_string())?;
        if loaded.conf.listen.http != self.listen.http
            || loaded.conf.listen.https != self.listen.https
            || loaded.conf.admin.listen != self.admin_listen
        {
            tracing::warn!("listener addresses changed: they take effect at the next restart");
        }
        if loaded.conf.tls.client_auth != old.conf.tls.client_auth {
            tracing::warn!("tls.client_auth changed: it takes effect at the next restart");
        }
        let generation = old.generation + 1;
        let snap = Snapshot::build(
            loaded.conf.clone(),
            generation,
            Some(&old),
            &self.shared.clock,
            BuildMode::Serve,
        )
        .await
        .map_err(|e| loaded.locate(e))?;
        let snap = Arc::new(snap);
        // Swap first: whoever sees the new generation in `/metrics` must also get it served.
        self.snapshot.store(snap.clone());
        apply_side_effects(&snap);
        self.applied_text.store(hash, Ordering::Release);
        Ok(ReloadOutcome::Applied { generation })
    }
}

fn read(path: &std::path::Path) -> Result<String, Vec<ConfError>> {
    std::fs::read_to_string(path).map_err(|e| {
        vec![ConfError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the conf file: {e}"),
        }]
    })
}

/// What a new snapshot changes outside itself: certificates, upstream health and the reload
/// metrics.
fn apply_side_effects(snap: &Arc<Snapshot>) {
    crate::tls::RESOLVER.set(snap.certs.clone());
    // Republished from the pools now serving: a replaced pool's series may name backends that
    // are gone, and a kept pool's must survive the pool it replaced.
    let mut members = std::collections::HashSet::new();
    for route in &snap.routes {
        route.pool.publish_health();
        for b in route.pool.backends() {
            members.insert((route.name.to_string(), b.addr.to_string()));
        }
    }
    crate::metrics::retain_upstream_health(&members);
    crate::metrics::CONFIG_GENERATION.set(snap.generation as i64);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    crate::metrics::CONFIG_LAST_RELOAD_SUCCESS.set(now);
}
