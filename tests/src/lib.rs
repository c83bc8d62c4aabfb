//! Test support for Warden's end-to-end tests: the real `warden` binary, real upstream servers
//! and real certificates, all on 127.0.0.1 with ports the OS picks.

pub mod certs;
pub mod configmap;
pub mod jwks;
pub mod oidc;
pub mod tokens;
pub mod upstream;
pub mod warden;

pub use oidc::OidcProvider;
pub use upstream::Upstream;
pub use warden::Warden;

/// A port that was free a moment ago. Warden needs concrete addresses in its conf, so a port is
/// picked, checked and released. Ports come from 12000–29999, below Linux's ephemeral range
/// (32768–60999): a port from that range can be taken by any outgoing connection (a test's
/// HTTP client, the provider's) before Warden binds it. Each process walks the range from its
/// own starting point and never hands out a port twice.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 12_000;
    const SPAN: u32 = 18_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 12000–29999");
}

/// An HTTP client that never follows redirects, so tests see what Warden answered.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client")
}

/// Polls `condition` until it holds, failing the test after 15 s. For conditions Warden makes
/// observable (metrics, probes, logs) where no event can be awaited.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "still not true after 15s: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Which test upstream answered (its `x-upstream` header), if one did.
pub fn served_by(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("x-upstream")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Upstreams named `a`, `b` and `c`, with the conf variables `A`, `B` and `C` for their
/// addresses.
pub async fn three_upstreams() -> ([Upstream; 3], [(&'static str, String); 3]) {
    let ups = [
        Upstream::start("a").await,
        Upstream::start("b").await,
        Upstream::start("c").await,
    ];
    let vars = [
        ("A", ups[0].address()),
        ("B", ups[1].address()),
        ("C", ups[2].address()),
    ];
    (ups, vars)
}

/// Sends `GET url` with `host` in the background (for requests that must be in flight while
/// the test does something else).
pub fn spawn_get(url: String, host: &'static str) -> tokio::task::JoinHandle<reqwest::Response> {
    tokio::spawn(async move {
        client()
            .get(url)
            .header("host", host)
            .send()
            .await
            .expect("background request")
    })
}
