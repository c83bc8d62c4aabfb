//! The admin listener's open endpoints through the real binary: `/healthz` (alive),
//! `/readyz` (every listener bound, naming the ones that are not), and `/metrics` with the
//! gateway's request, upstream and reload metrics.

use warden_tests::certs::TestCa;
use warden_tests::{client, eventually, warden::Setup, Upstream, Warden};

const CONF: &str = r#"
listen: { http: "${HTTP}", https: "${HTTPS}" }
admin: { listen: "${ADMIN}" }
tls:
  certificates: [{ hosts: [app.test], cert: "${DIR}/app.crt", key: "${DIR}/app.key" }]
routes:
  - { public: true, name: site, host: app.test, upstreams: ["${UP}"] }
"#;

fn setup_with_certificate() -> Setup {
    let setup = Setup::new();
    TestCa::new().leaf(setup.dir.path(), "app", &["app.test"]);
    setup
}

async fn get(w: &Warden, path: &str) -> (u16, String) {
    let r = client()
        .get(w.admin_url(path))
        .send()
        .await
        .expect("admin request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

#[tokio::test]
async fn probes_answer_once_listeners_are_bound() {
    let up = Upstream::start("u").await;
    let w = setup_with_certificate()
        .start(CONF, &[("UP", up.address())])
        .await;
    assert_eq!(get(&w, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(get(&w, "/readyz").await, (200, "ready\n".into()));
    assert_eq!(get(&w, "/nothing-here").await.0, 404);
}

#[tokio::test]
async fn readyz_names_a_listener_that_cannot_bind_until_it_can() {
    let up = Upstream::start("u").await;
    let setup = setup_with_certificate();
    let https = format!("127.0.0.1:{}", setup.https);
    let squatter = std::net::TcpListener::bind(&https).expect("occupy the https port");
    let w = setup.spawn_unready(CONF, &[("UP", up.address())]);

    eventually("the admin listener answers", || async {
        client().get(w.admin_url("/healthz")).send().await.is_ok()
    })
    .await;
    let (status, body) = get(&w, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains(&https), "{body}");
    assert!(!body.contains(&format!(":{}", w.http)), "{body}");
    // Alive all the same: restarting would not free the port.
    assert_eq!(get(&w, "/healthz").await.0, 200);

    // Pingora keeps trying to bind for a while; once the port is free, Warden is ready.
    drop(squatter);
    eventually("ready once the port is free", || async {
        get(&w, "/readyz").await.0 == 200
    })
    .await;
}

#[tokio::test]
async fn metrics_cover_requests_upstreams_and_reloads() {
    let up = Upstream::start("u").await;
    let w = setup_with_certificate()
        .start(CONF, &[("UP", up.address())])
        .await;
    let r = client()
        .get(w.url("/"))
        .header("host", "app.test")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);

    let route = "route=\"site\"";
    w.wait_metric("warden_requests_total", &[route, "code_class=\"2xx\""], 1.0)
        .await;
    w.wait_metric("warden_request_duration_seconds_count", &[route], 1.0)
        .await;
    let backend = format!("backend=\"{}\"", up.address());
    assert_eq!(
        w.metric_with("warden_upstream_healthy", &[route, &backend])
            .await,
        Some(1.0)
    );
    // Reload counters exist before the first reload, so alerts on them work from the start.
    for result in ["result=\"ok\"", "result=\"error\""] {
        assert_eq!(
            w.metric_with("warden_config_reloads_total", &[result])
                .await,
            Some(0.0),
            "{result}"
        );
    }
    let loaded_at = w
        .metric("warden_config_last_reload_success_timestamp_seconds")
        .await
        .expect("last reload timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(loaded_at > 0.0 && loaded_at <= now, "{loaded_at}");

    let (_, text) = get(&w, "/metrics").await;
    for family in [
        "# TYPE warden_requests_total counter",
        "# TYPE warden_request_duration_seconds histogram",
        "# TYPE warden_upstream_healthy gauge",
        "# TYPE warden_config_reloads_total counter",
        "# TYPE warden_config_last_reload_success_timestamp_seconds gauge",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
}
