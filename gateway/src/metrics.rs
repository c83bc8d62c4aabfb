//! The gateway's own metrics (requests, upstream health, reloads), registered in Prometheus'
//! default registry next to the identity metrics of `warden_plugins::metrics`. Label values are
//! bounded: route names and backends come from conf, code classes are fixed.

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts,
};
use std::collections::HashSet;
use std::sync::LazyLock;

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    // A repeated registration (several gateways in one test process) keeps the first.
    let _ = prometheus::register(Box::new(c.clone()));
    c
}

// Metric names and labels below are constants (checked by the test at the bottom), so the
// constructors cannot fail at run time.
pub static REQUESTS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "warden_requests_total",
                "Requests answered, by route and status class",
            ),
            &["route", "code_class"],
        )
        .expect("static metric"),
    )
});

pub static REQUEST_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "warden_request_duration_seconds",
                "Time from the request's arrival to the end of its response, by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )
        .expect("static metric"),
    )
});

pub static UPSTREAM_HEALTHY: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "warden_upstream_healthy",
                "1 when the backend passes its health checks",
            ),
            &["route", "backend"],
        )
        .expect("static metric"),
    )
});

pub static CONFIG_RELOADS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "warden_config_reloads_total",
                "Conf reloads by result (ok, error)",
            ),
            &["result"],
        )
        .expect("static metric"),
    )
});

pub static CONFIG_LAST_RELOAD_SUCCESS: LazyLock<Gauge> = LazyLock::new(|| {
    register(
        Gauge::with_opts(Opts::new(
            "warden_config_last_reload_success_timestamp_seconds",
            "Unix time of the last conf load that took effect",
        ))
        .expect("static metric"),
    )
});

pub static CONFIG_GENERATION: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::with_opts(Opts::new(
            "warden_config_generation",
            "Generation of the conf being served",
        ))
        .expect("static metric"),
    )
});

pub static ACCESS_LOG_DROPPED_TOTAL: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::with_opts(Opts::new(
            "warden_log_lines_dropped_total",
            "Access and audit log lines dropped because their writer fell behind",
        ))
        .expect("static metric"),
    )
});

pub static REQUESTS_IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::with_opts(Opts::new(
            "warden_requests_in_flight",
            "Requests being served now",
        ))
        .expect("static metric"),
    )
});

pub static AUTHZ_DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "warden_authz_decisions_total",
                "Policy decisions by route and decision (allow, deny)",
            ),
            &["route", "decision"],
        )
        .expect("static metric"),
    )
});

pub static AUTHZ_SHADOW_MISMATCHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "warden_authz_shadow_mismatches_total",
                "Requests on which the shadow policy decided otherwise than the enforced one",
            ),
            &["route"],
        )
        .expect("static metric"),
    )
});

pub static AUTHZ_EVALUATION_DURATION: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "warden_authz_evaluation_duration_seconds",
                "Time to evaluate a route's policy",
            )
            .buckets(vec![
                1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 1e-4, 1e-3,
            ]),
        )
        .expect("static metric"),
    )
});

pub static STREAMS_TERMINATED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "warden_streams_terminated_total",
                "Open upgraded streams (websockets) closed because access no longer holds, by reason",
            ),
            &["reason"],
        )
        .expect("static metric"),
    )
});
/// Removes the `warden_upstream_healthy` series of every (route, backend) not in `keep`.
pub fn retain_upstream_health(keep: &HashSet<(String, String)>) {
    use prometheus::core::Collector;
    let mut stale = Vec::new();
    for family in UPSTREAM_HEALTHY.collect() {
        for m in family.get_metric() {
            let label = |name: &str| {
                m.get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_string())
            };
            if let (Some(route), Some(backend)) = (label("route"), label("backend")) {
                let pair = (route, backend);
                if !keep.contains(&pair) {
                    stale.push(pair);
                }
            }
        }
    }
    for (route, backend) in stale {
        let _ = UPSTREAM_HEALTHY.remove_label_values(&[&route, &backend]);
    }
}

/// Per-route handles resolved once per snapshot, so the hot path does no label lookups.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    /// Indexed by status class: 0 = other, 1..=5 = 1xx..5xx.
    codes: [IntCounter; 6],
    pub duration: Histogram,
    pub allowed: IntCounter,
    pub denied: IntCounter,
    pub shadow_mismatches: IntCounter,
}

impl RouteMetrics {
    pub fn new(route: &str) -> Self {
        let c = |class: &str| REQUESTS_TOTAL.with_label_values(&[route, class]);
        Self {
            codes: [c("other"), c("1xx"), c("2xx"), c("3xx"), c("4xx"), c("5xx")],
            duration: REQUEST_DURATION.with_label_values(&[route]),
            allowed: AUTHZ_DECISIONS.with_label_values(&[route, "allow"]),
            denied: AUTHZ_DECISIONS.with_label_values(&[route, "deny"]),
            shadow_mismatches: AUTHZ_SHADOW_MISMATCHES.with_label_values(&[route]),
        }
    }

    pub fn count(&self, status: u16) {
        let class = (status / 100) as usize;
        self.codes[if (1..=5).contains(&class) { class } else { 0 }].inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_metrics_count_by_class() {
        let m = RouteMetrics::new("metrics-test");
        m.count(204);
        m.count(503);
        m.count(0);
        let get = |class: &str| {
            REQUESTS_TOTAL
                .with_label_values(&["metrics-test", class])
                .get()
        };
        assert_eq!((get("2xx"), get("5xx"), get("other")), (1, 1, 1));
        CONFIG_RELOADS_TOTAL.with_label_values(&["ok"]).inc();
        CONFIG_LAST_RELOAD_SUCCESS.set(1.0);
        UPSTREAM_HEALTHY
            .with_label_values(&["r", "127.0.0.1:1"])
            .set(1);
        ACCESS_LOG_DROPPED_TOTAL.inc();
        REQUESTS_IN_FLIGHT.set(0);
        CONFIG_GENERATION.set(1);
        let names: Vec<String> = prometheus::gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for n in [
            "warden_requests_total",
            "warden_request_duration_seconds",
            "warden_upstream_healthy",
            "warden_config_reloads_total",
            "warden_config_last_reload_success_timestamp_seconds",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing");
        }
    }
}
