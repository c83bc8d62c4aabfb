//! Upstream keep-alive through the real binary: requests one after another share one pooled
//! upstream connection, a pooled connection the upstream has closed is replaced by a new one
//! without failing a request, one idle past the route's idle timeout is closed by Warden, and
//! a full pool closes the connection idle the longest. The connector's pooled path is patched in `vendor/pingora-core`
//! (vendor/README.md), so this is its end-to-end check.

use warden_tests::{client, eventually, warden::Setup, Upstream};

const CONF: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
routes:
  - { name: app, host: app.example.com, upstreams: ["${UP}"], public: true }
"#;

async fn get_ok(w: &warden_tests::Warden, n: usize) {
    let c = client();
    for i in 0..n {
        let r = c
            .get(w.url(&format!("/item/{i}")))
            .header("host", "app.example.com")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.headers()["x-upstream"], "up");
    }
}

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    let up = Upstream::start("up").await;
    let w = Setup::new().start(CONF, &[("UP", up.address())]).await;
    get_ok(&w, 20).await;
    assert_eq!(up.hits(), 20);
    assert_eq!(
        up.connections(),
        1,
        "every request after the first reuses the pooled one"
    );
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_upstream_is_replaced() {
    let mut up = Upstream::start("up").await;
    let w = Setup::new().start(CONF, &[("UP", up.address())]).await;
    get_ok(&w, 3).await;
    assert_eq!(up.connections(), 1);
    // Closes every open connection, the pooled one included, and listens again.
    up.restart().await;
    get_ok(&w, 5).await;
    assert_eq!(up.hits(), 8);
    assert_eq!(up.connections(), 2, "one new connection, then pooled again");
}

#[tokio::test]
async fn a_pooled_connection_idle_past_its_timeout_is_closed_and_not_reused() {
    const IDLE_1S: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
routes:
  - name: app
    host: app.example.com
    upstreams: ["${UP}"]
    public: true
    timeouts: { idle: 1s }
"#;
    let up = Upstream::start("up").await;
    let w = Setup::new().start(IDLE_1S, &[("UP", up.address())]).await;
    get_ok(&w, 3).await;
    assert_eq!(up.connections(), 1);
    assert_eq!(up.closed_by_client(), 0, "the pooled connection is open");
    // Nothing but Warden's idle timeout closes it: no request, no upstream stop.
    eventually("Warden closes the idle pooled connection", || async {
        up.closed_by_client() == 1
    })
    .await;
    get_ok(&w, 2).await;
    assert_eq!(up.hits(), 5);
    assert_eq!(up.connections(), 2, "a new connection, then pooled again");
}

#[tokio::test]
async fn a_full_pool_closes_the_connection_idle_the_longest_and_keeps_the_other() {
    const POOL_OF_ONE: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
# The pool holds this many per worker thread: one in all.
server: { threads: 1, upstream_keepalive_pool_size: 1 }
routes:
  - { name: app, host: app.example.com, upstreams: ["${UP}"], public: true }
"#;
    let up = Upstream::start("up").await;
    let w = Setup::new()
        .start(POOL_OF_ONE, &[("UP", up.address())])
        .await;
    // Two requests in flight at once need two upstream connections; the upstream holds both
    // open until each has answered.
    let c = client();
    let slow = |c: reqwest::Client| {
        let url = w.url("/slow/300");
        async move {
            let r = c
                .get(url)
                .header("host", "app.example.com")
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), 200);
        }
    };
    tokio::join!(slow(c.clone()), slow(c.clone()));
    assert_eq!(up.connections(), 2);
    // Both were released to a pool of one: the first released is closed, by Warden.
    eventually(
        "Warden closes the connection the full pool pushed out",
        || async { up.closed_by_client() == 1 },
    )
    .await;
    get_ok(&w, 3).await;
    assert_eq!(
        up.connections(),
        2,
        "the kept connection serves the next requests"
    );
    assert_eq!(up.closed_by_client(), 1);
}
