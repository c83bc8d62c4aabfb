//! Graceful shutdown through the real binary: on SIGTERM Warden stops taking connections,
//! says `draining` on `/readyz` to whoever still asks, lets the request in flight finish, and
//! exits 0 as soon as it has.

use nix::sys::signal::Signal;
use std::time::Duration;
use warden_tests::upstream::Echo;
use warden_tests::{client, eventually, spawn_get, warden::Setup, Upstream, Warden};

const CONF: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
routes:
  - { public: true, name: site, host: app.test, upstreams: ["${UP}"] }
"#;

/// Waits (off the async workers) for Warden to exit; its exit code.
fn exit_code(w: &mut Warden) -> Option<i32> {
    tokio::task::block_in_place(|| w.wait_exit(Duration::from_secs(10)))
}

/// Clients with one kept-alive connection each to the admin listener. Once Warden shuts down
/// its listeners refuse new connections, so `/readyz` can only be asked over these; each
/// answers once more at most (with `Connection: close`) after SIGTERM.
async fn admin_connections(w: &Warden, n: usize) -> Vec<reqwest::Client> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let c = client();
        let r = c.get(w.admin_url("/readyz")).send().await.expect("readyz");
        assert_eq!(r.status(), 200);
        clients.push(c);
    }
    clients
}

/// Asks `/readyz` over the kept-alive connections until one answers 503; its body.
async fn readyz_while_draining(w: &Warden, clients: &[reqwest::Client]) -> String {
    let mut clients = clients.iter();
    let mut c = clients.next().expect("a client");
    loop {
        let r = c.get(w.admin_url("/readyz")).send().await.expect("readyz");
        if r.status() == 503 {
            return r.text().await.expect("body");
        }
        assert_eq!(r.status(), 200);
        if r.headers().get("connection").is_some_and(|v| v == "close") {
            // Shutdown began; this connection is spent.
            c = clients.next().expect("draining never showed on /readyz");
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_and_exits_0() {
    let up = Upstream::start("slow").await;
    let mut w = Setup::new().start(CONF, &[("UP", up.address())]).await;
    let admin = admin_connections(&w, 8).await;
    let slow = spawn_get(w.url("/slow/1500"), "app.test");
    eventually("the slow request reaches the upstream", || async {
        up.hits() > 0
    })
    .await;

    w.signal(Signal::SIGTERM);
    assert_eq!(readyz_while_draining(&w, &admin).await.trim(), "draining");
    let port = w.http;
    eventually("new connections are refused", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    })
    .await;

    let r = slow.await.expect("slow task");
    assert_eq!(r.status(), 200);
    let echo: Echo = r.json().await.expect("the upstream's answer");
    assert_eq!(echo.path, "/slow/1500");
    assert_eq!(exit_code(&mut w), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_when_idle_exits_0() {
    let up = Upstream::start("u").await;
    let mut w = Setup::new().start(CONF, &[("UP", up.address())]).await;
    assert_eq!(
        client()
            .get(w.url("/"))
            .header("host", "app.test")
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
    w.signal(Signal::SIGTERM);
    assert_eq!(exit_code(&mut w), Some(0));
}
