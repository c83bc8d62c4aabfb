//! Active health checks through the real binary: a backend that dies (or whose `/health` fails)
//! is ejected, traffic moves to the others without a failed request, and the backend returns
//! once it passes its checks again. Ejection is observed where operators observe it, in
//! `warden_upstream_healthy` on the admin `/metrics`.

use warden_tests::{client, served_by, three_upstreams, warden::Setup, Upstream, Warden};

const CONF: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
routes:
  - name: tcp-checked
    public: true
    host: tcp.test
    upstreams: ["${A}", "${B}", "${C}"]
    health_check: { interval: 200ms, timeout: 200ms, unhealthy_threshold: 1 }
  - name: http-checked
    public: true
    host: http.test
    upstreams: ["${A}", "${B}", "${C}"]
    health_check: { interval: 200ms, timeout: 200ms, path: /health, unhealthy_threshold: 1 }
"#;

struct Fixture {
    ups: [Upstream; 3],
    warden: Warden,
}

impl Fixture {
    async fn start() -> Self {
        let (ups, vars) = three_upstreams().await;
        let warden = Setup::new().start(CONF, &vars).await;
        Self { ups, warden }
    }

    /// Waits until `warden_upstream_healthy` for upstream `i` on `route` is `healthy`.
    async fn wait_health(&self, route: &str, i: usize, healthy: bool) {
        let route = format!("route=\"{route}\"");
        let backend = format!("backend=\"{}\"", self.ups[i].address());
        self.warden
            .wait_metric(
                "warden_upstream_healthy",
                &[&route, &backend],
                if healthy { 1.0 } else { 0.0 },
            )
            .await;
    }

    /// Sends `n` requests to `host`; every one must succeed. Returns who served them.
    async fn serve_all(&self, host: &str, n: usize) -> Vec<String> {
        let c = client();
        let mut served = Vec::with_capacity(n);
        for _ in 0..n {
            let r = c
                .get(self.warden.url("/"))
                .header("host", host)
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), 200, "a request to {host} failed");
            served.push(served_by(&r).expect("x-upstream"));
        }
        served
    }
}

fn count(served: &[String], name: &str) -> usize {
    served.iter().filter(|s| *s == name).count()
}

async fn killed_backend_is_ejected_and_returns(route: &str, host: &str) {
    let mut f = Fixture::start().await;
    f.wait_health(route, 1, true).await;
    assert!(count(&f.serve_all(host, 9).await, "b") > 0);

    f.ups[1].stop();
    f.wait_health(route, 1, false).await;
    let served = f.serve_all(host, 30).await;
    assert_eq!(count(&served, "b"), 0, "{served:?}");
    assert!(
        count(&served, "a") > 0 && count(&served, "c") > 0,
        "{served:?}"
    );

    f.ups[1].restart().await;
    f.wait_health(route, 1, true).await;
    assert!(count(&f.serve_all(host, 30).await, "b") > 0);
}

#[tokio::test]
async fn tcp_checks_eject_a_killed_backend_and_bring_it_back() {
    killed_backend_is_ejected_and_returns("tcp-checked", "tcp.test").await;
}

#[tokio::test]
async fn http_checks_eject_a_killed_backend_and_bring_it_back() {
    killed_backend_is_ejected_and_returns("http-checked", "http.test").await;
}

#[tokio::test]
async fn a_failing_health_endpoint_ejects_from_http_checked_routes_only() {
    let f = Fixture::start().await;
    f.ups[1].set_healthy(false);
    f.wait_health("http-checked", 1, false).await;
    let served = f.serve_all("http.test", 30).await;
    assert_eq!(count(&served, "b"), 0, "{served:?}");

    // The process still accepts connections, so TCP checks keep it in service.
    assert_eq!(
        f.warden
            .metric_with(
                "warden_upstream_healthy",
                &[
                    "route=\"tcp-checked\"",
                    &format!("backend=\"{}\"", f.ups[1].address())
                ]
            )
            .await,
        Some(1.0)
    );
    assert!(count(&f.serve_all("tcp.test", 9).await, "b") > 0);

    f.ups[1].set_healthy(true);
    f.wait_health("http-checked", 1, true).await;
    assert!(count(&f.serve_all("http.test", 30).await, "b") > 0);
}
