//! Conf reloads through the real binary: SIGHUP, the file watcher and `POST /admin/reload` all
//! move a path to another upstream while requests flow, without failing one; a broken conf is
//! refused with located errors and the old conf keeps serving; the admin API needs its token;
//! and requests in flight finish on the snapshot they started with.

use nix::sys::signal::Signal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden_tests::upstream::Echo;
use warden_tests::{
    client, eventually, served_by, spawn_get, three_upstreams, warden::Setup, Upstream, Warden,
};

const TOKEN: &str = "s3cret-admin-token";

const CONF: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}", token_file: "${DIR}/admin-token" }
server: { watch_conf: ${WATCH} }
routes:
  - { public: true, name: site, host: app.test, upstreams: ["${OLD}"] }
  - name: moving
    public: true
    host: app.test
    path_prefix: /moving
    rewrite_prefix: /
    upstreams: ["${TARGET}"]
"#;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Trigger {
    Sighup,
    FileWatcher,
    AdminApi,
}

struct Fixture {
    old: Upstream,
    new: Upstream,
    warden: Warden,
    watch: bool,
}

impl Fixture {
    async fn start(watch: bool) -> Self {
        let old = Upstream::start("old").await;
        let new = Upstream::start("new").await;
        let setup = Setup::new();
        std::fs::write(setup.path("admin-token"), format!("{TOKEN}\n")).expect("token file");
        let warden = setup.start(CONF, &Self::vars(watch, &old, &old)).await;
        Self {
            old,
            new,
            warden,
            watch,
        }
    }

    fn vars(watch: bool, old: &Upstream, target: &Upstream) -> [(&'static str, String); 3] {
        [
            ("WATCH", watch.to_string()),
            ("OLD", old.address()),
            ("TARGET", target.address()),
        ]
    }

    /// Rewrites the conf so `/moving` goes to the new upstream (without reloading).
    fn move_path(&self) {
        let conf = self
            .warden
            .render(CONF, &Self::vars(self.watch, &self.old, &self.new));
        self.warden.write_conf(&conf);
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        client()
            .get(self.warden.url(path))
            .header("host", "app.test")
            .send()
            .await
            .expect("request")
    }
}

async fn admin_reload(w: &Warden, token: Option<&str>) -> reqwest::Response {
    let mut req = client().post(w.admin_url("/admin/reload"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("admin request")
}

/// Four clients sending requests back to back until told to stop; each result is
/// (status, upstream that served it).
fn steady_traffic(
    w: &Warden,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<(u16, String)>>> {
    (0..4)
        .map(|_| {
            let url = w.url("/moving/x");
            let stop = stop.clone();
            tokio::spawn(async move {
                let c = client();
                let mut seen = Vec::new();
                // Bounded even if the test never says stop.
                let deadline = Instant::now() + Duration::from_secs(30);
                while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                    match c.get(&url).header("host", "app.test").send().await {
                        Ok(r) => {
                            seen.push((r.status().as_u16(), served_by(&r).unwrap_or_default()))
                        }
                        Err(e) => seen.push((0, e.to_string())),
                    }
                }
                seen
            })
        })
        .collect()
}

async fn moves_a_path_while_serving(trigger: Trigger) {
    let f = Fixture::start(trigger == Trigger::FileWatcher).await;
    assert_eq!(served_by(&f.get("/moving/x").await).as_deref(), Some("old"));
    let generation = f.warden.generation().await;

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = steady_traffic(&f.warden, stop.clone());
    eventually("traffic reaches the old upstream", || async {
        f.old.hits() > 20
    })
    .await;

    f.move_path();
    match trigger {
        Trigger::Sighup => f.warden.signal(Signal::SIGHUP),
        Trigger::FileWatcher => {}
        Trigger::AdminApi => {
            let r = admin_reload(&f.warden, Some(TOKEN)).await;
            assert_eq!(r.status(), 200);
            let body: serde_json::Value = r.json().await.expect("json");
            assert_eq!(body["generation"], generation + 1);
        }
    }
    eventually("the generation increments", || async {
        f.warden.generation().await == generation + 1
    })
    .await;
    for _ in 0..5 {
        assert_eq!(served_by(&f.get("/moving/x").await).as_deref(), Some("new"));
    }
    let hits = f.new.hits();
    eventually("the clients' traffic reaches the new upstream", || async {
        f.new.hits() > hits + 20
    })
    .await;
    stop.store(true, Ordering::Release);

    let mut results = Vec::new();
    for t in traffic {
        let seen = t.await.expect("traffic task");
        // Once a client saw the new upstream, it never went back to the old one.
        if let Some(first_new) = seen.iter().position(|(_, up)| up == "new") {
            assert!(
                seen[first_new..].iter().all(|(_, up)| up == "new"),
                "a client went back to the old conf"
            );
        }
        results.extend(seen);
    }
    let failed: Vec<_> = results.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        results.len()
    );
    // The other route and the generation gauge agree with the reload.
    assert_eq!(served_by(&f.get("/").await).as_deref(), Some("old"));
    assert_eq!(f.warden.generation().await, generation + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_moves_a_path_without_failing_a_request() {
    moves_a_path_while_serving(Trigger::Sighup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conf_file_change_moves_a_path_without_failing_a_request() {
    moves_a_path_while_serving(Trigger::FileWatcher).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_moves_a_path_without_failing_a_request() {
    moves_a_path_while_serving(Trigger::AdminApi).await;
}

/// The `file:line:column` of a located error message, if it has one for `file`.
fn location(error: &str, file: &str) -> Option<(usize, usize)> {
    let rest = error.split_once(&format!("{file}:"))?.1;
    let mut parts = rest.splitn(3, ':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

async fn rejected_reload(f: &Fixture, conf: &str) -> Vec<String> {
    let errors_before = f
        .warden
        .metric_with("warden_config_reloads_total", &["result=\"error\""])
        .await
        .unwrap_or(0.0);
    f.warden.write_conf(conf);
    let r = admin_reload(&f.warden, Some(TOKEN)).await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "invalid_conf");
    f.warden
        .wait_metric(
            "warden_config_reloads_total",
            &["result=\"error\""],
            errors_before + 1.0,
        )
        .await;
    // The old conf keeps serving, at the same generation.
    assert_eq!(f.warden.generation().await, 1);
    let r = f.get("/moving/x").await;
    assert_eq!(
        (r.status().as_u16(), served_by(&r).as_deref()),
        (200, Some("old"))
    );
    body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e.as_str().expect("error text").to_string())
        .collect()
}

#[tokio::test]
async fn a_conf_with_a_syntax_error_is_refused_with_its_location() {
    let f = Fixture::start(false).await;
    let good = f.warden.render(CONF, &Fixture::vars(false, &f.old, &f.new));
    let broken = good.replace("rewrite_prefix: /", "rewrite_prefix: [/");
    let errors = rejected_reload(&f, &broken).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (line, _) = location(&errors[0], "warden.yaml").expect("a location");
    assert!(line > 0, "{errors:?}");
}

#[tokio::test]
async fn a_conf_with_semantic_errors_is_refused_with_every_error_located() {
    let f = Fixture::start(false).await;
    let good = f.warden.render(CONF, &Fixture::vars(false, &f.old, &f.new));
    let broken = good
        .replace(&f.new.address(), "no-port-here")
        .replace("name: site", "name: Not A Name");
    let line_of = |needle: &str| {
        broken
            .lines()
            .position(|l| l.contains(needle))
            .expect("line")
            + 1
    };
    let errors = rejected_reload(&f, &broken).await;
    assert_eq!(errors.len(), 2, "{errors:?}");
    let name = errors
        .iter()
        .find(|e| e.contains("routes[0].name"))
        .expect("name error");
    assert_eq!(
        location(name, "warden.yaml").map(|l| l.0),
        Some(line_of("Not A Name"))
    );
    let upstream = errors
        .iter()
        .find(|e| e.contains("routes[1].upstreams[0]"))
        .expect("upstream error");
    assert!(upstream.contains("no-port-here"), "{upstream}");
    assert_eq!(
        location(upstream, "warden.yaml").map(|l| l.0),
        Some(line_of("no-port-here"))
    );
}

#[tokio::test]
async fn the_admin_api_needs_its_token() {
    let f = Fixture::start(false).await;
    for token in [None, Some("wrong"), Some("")] {
        let r = admin_reload(&f.warden, token).await;
        assert_eq!(r.status(), 401, "{token:?}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["error"], "unauthorized");
    }
    assert_eq!(admin_reload(&f.warden, Some(TOKEN)).await.status(), 200);
}

#[tokio::test]
async fn the_admin_api_is_disabled_without_a_token_file() {
    let up = Upstream::start("u").await;
    let conf = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
routes:
  - { public: true, name: site, host: app.test, upstreams: ["${UP}"] }
"#;
    let w = Setup::new().start(conf, &[("UP", up.address())]).await;
    for token in [None, Some(TOKEN)] {
        let r = admin_reload(&w, token).await;
        assert_eq!(r.status(), 404);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["error"], "admin_disabled");
    }
    assert_eq!(w.generation().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_on_the_conf_it_started_with() {
    let f = Fixture::start(false).await;
    let hits = f.old.hits();
    let slow = spawn_get(f.warden.url("/moving/slow/1500"), "app.test");
    eventually("the slow request reaches the old upstream", || async {
        f.old.hits() > hits
    })
    .await;
    f.move_path();
    assert_eq!(admin_reload(&f.warden, Some(TOKEN)).await.status(), 200);
    assert_eq!(served_by(&f.get("/moving/x").await).as_deref(), Some("new"));

    let r = slow.await.expect("slow task");
    assert_eq!(r.status(), 200);
    assert_eq!(served_by(&r).as_deref(), Some("old"));
    let echo: Echo = r.json().await.expect("echo");
    assert_eq!(echo.path, "/slow/1500");
}

const CHECKED: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}", token_file: "${DIR}/admin-token" }
server: { watch_conf: false }
routes:
  - name: checked
    public: true
    host: app.test
    upstreams: [${UPSTREAMS}]
    health_check: { interval: 200ms, timeout: 200ms, unhealthy_threshold: 1 }
"#;

#[tokio::test]
async fn upstream_health_metrics_follow_a_reload() {
    let (ups, _) = three_upstreams().await;
    let list = |idx: &[usize]| {
        let quoted: Vec<String> = idx
            .iter()
            .map(|i| format!("\"{}\"", ups[*i].address()))
            .collect();
        [("UPSTREAMS", quoted.join(", "))]
    };
    let setup = Setup::new();
    std::fs::write(setup.path("admin-token"), TOKEN).expect("token file");
    let w = setup.start(CHECKED, &list(&[0, 1])).await;
    let healthy = |i: usize| {
        let backend = format!("backend=\"{}\"", ups[i].address());
        let w = &w;
        async move {
            w.metric_with("warden_upstream_healthy", &["route=\"checked\"", &backend])
                .await
        }
    };
    assert_eq!((healthy(0).await, healthy(1).await), (Some(1.0), Some(1.0)));

    // A new member: every member kept its series, the new one has its own.
    w.write_conf(&w.render(CHECKED, &list(&[0, 1, 2])));
    assert_eq!(admin_reload(&w, Some(TOKEN)).await.status(), 200);
    for i in 0..3 {
        assert_eq!(healthy(i).await, Some(1.0), "upstream {i}");
    }

    // A member removed: its series goes, the others stay.
    w.write_conf(&w.render(CHECKED, &list(&[0, 2])));
    assert_eq!(admin_reload(&w, Some(TOKEN)).await.status(), 200);
    assert_eq!(
        (healthy(0).await, healthy(1).await, healthy(2).await),
        (Some(1.0), None, Some(1.0))
    );
}
