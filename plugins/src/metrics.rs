//! The identity metrics, registered in Prometheus' default registry (which the admin listener
//! serves). Label values are bounded: conf names, fixed result codes, never user data.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
use std::sync::LazyLock;

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    // Names and labels are compile-time constants checked by `metrics_register` below, so
    // construction cannot fail at run time.
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    // A second registration (tests building several gateways in one process) is harmless.
    let _ = prometheus::register(Box::new(c.clone()));
    c
}

fn counter(name: &str, help: &str) -> IntCounter {
    let c = IntCounter::with_opts(Opts::new(name, help)).expect("static metric definition");
    let _ = prometheus::register(Box::new(c.clone()));
    c
}

fn gauge(name: &str, help: &str) -> IntGauge {
    let g = IntGauge::with_opts(Opts::new(name, help)).expect("static metric definition");
    let _ = prometheus::register(Box::new(g.clone()));
    g
}

/// Authentication attempts. `method`: session | bearer; `issuer`: the provider or issuer conf
/// name (`none` when no credential named one); `result`: ok or a reason code.
pub static AUTHN_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "warden_authn_total",
        "Authentication attempts by method, issuer and result",
        &["method", "issuer", "result"],
    )
});

/// Completed or failed OIDC logins.
pub static LOGINS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "warden_logins_total",
        "OIDC logins by provider and result",
        &["provider", "result"],
    )
});

/// Live sessions in this replica's store.
pub static SESSIONS: LazyLock<IntGauge> =
    LazyLock::new(|| gauge("warden_sessions", "Live sessions in the session store"));

/// Access-token refreshes against the provider.
pub static TOKEN_REFRESH_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "warden_token_refresh_total",
        "OIDC token refreshes by result",
        &["result"],
    )
});

/// Sessions ended other than by expiry: `admin`, `sign_out`, `backchannel`, `refresh_refused`,
/// `evicted`.
pub static SESSIONS_REVOKED_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "warden_sessions_revoked_total",
        "Sessions ended, by reason",
        &["reason"],
    )
});

/// JWKS fetches per issuer: `ok`, `not_modified`, `error`.
pub static JWKS_REFRESH_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "warden_jwks_refresh_total",
        "JWKS fetches by issuer and result",
        &["issuer", "result"],
    )
});

/// Bearer tokens answered from the verified-token cache (no signature check).
pub static TOKEN_CACHE_HITS_TOTAL: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "warden_token_cache_hits_total",
        "Bearer tokens served from the verified-token cache",
    )
});

/// Entries in the verified-token cache.
pub static TOKEN_CACHE_ENTRIES: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "warden_token_cache_entries",
        "Entries in the verified-token cache",
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_register() {
        AUTHN_TOTAL.with_label_values(&["bearer", "ci", "ok"]).inc();
        LOGINS_TOTAL.with_label_values(&["corp", "ok"]).inc();
        SESSIONS.set(1);
        TOKEN_REFRESH_TOTAL.with_label_values(&["ok"]).inc();
        SESSIONS_REVOKED_TOTAL.with_label_values(&["admin"]).inc();
        JWKS_REFRESH_TOTAL.with_label_values(&["ci", "ok"]).inc();
        TOKEN_CACHE_HITS_TOTAL.inc();
        TOKEN_CACHE_ENTRIES.set(1);
        let names: Vec<String> = prometheus::gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for n in [
            "warden_authn_total",
            "warden_sessions",
            "warden_token_cache_hits_total",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
    }
}
