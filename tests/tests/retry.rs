//! Retries and upstream failure through the real binary: a backend that refuses connections is
//! skipped for another one, `retries: 0` turns that into 502s, a route whose backends are all
//! dead answers 502, and one whose backends all failed their health checks answers 503.

use warden_tests::{client, free_port, served_by, warden::Setup, Upstream, Warden};

const CONF: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
routes:
  - { public: true, name: retried, host: retried.test, upstreams: ["${DEAD}", "${LIVE}"] }
  - { public: true, name: unretried, host: unretried.test, upstreams: ["${DEAD}", "${LIVE}"], retries: 0 }
  - { public: true, name: all-dead, host: dead.test, upstreams: ["${DEAD}", "${DEAD2}"] }
  - name: none-healthy
    public: true
    host: unhealthy.test
    upstreams: ["${DEAD}", "${DEAD2}"]
    health_check: { interval: 200ms, timeout: 200ms, unhealthy_threshold: 1 }
"#;

/// Warden with one live upstream and two addresses nobody listens on.
async fn start() -> (Upstream, Warden, [String; 2]) {
    let live = Upstream::start("live").await;
    let dead = [
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    ];
    let vars = [
        ("LIVE", live.address()),
        ("DEAD", dead[0].clone()),
        ("DEAD2", dead[1].clone()),
    ];
    let w = Setup::new().start(CONF, &vars).await;
    (live, w, dead)
}

async fn get(w: &Warden, host: &str) -> reqwest::Response {
    client()
        .get(w.url("/"))
        .header("host", host)
        .header("accept", "application/json")
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_another_backend() {
    let (live, w, _) = start().await;
    for _ in 0..20 {
        let r = get(&w, "retried.test").await;
        assert_eq!(r.status(), 200);
        assert_eq!(served_by(&r).as_deref(), Some("live"));
    }
    assert_eq!(live.hits(), 20);
}

#[tokio::test]
async fn without_retries_a_refused_connection_fails_with_502() {
    let (_live, w, _) = start().await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get(&w, "unretried.test").await.status().as_u16());
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 502),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&502), "{statuses:?}");
}

#[tokio::test]
async fn a_route_whose_backends_are_all_dead_answers_502() {
    let (live, w, _) = start().await;
    let r = get(&w, "dead.test").await;
    assert_eq!(r.status(), 502);
    assert!(r.headers().contains_key("x-request-id"));
    let body: serde_json::Value = r.json().await.expect("json body");
    assert_eq!(body["error"], "upstream_error");
    assert_eq!(live.hits(), 0);
}

#[tokio::test]
async fn a_route_without_a_healthy_backend_answers_503_with_retry_after() {
    let (_live, w, dead) = start().await;
    for d in &dead {
        w.wait_metric(
            "warden_upstream_healthy",
            &["route=\"none-healthy\"", &format!("backend=\"{d}\"")],
            0.0,
        )
        .await;
    }
    let r = get(&w, "unhealthy.test").await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.expect("json body");
    assert_eq!(body["error"], "no_healthy_backend");
}
