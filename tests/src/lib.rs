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

/// A port that was free a moment ago (bind to 0, read, release). Warden needs concrete
/// addresses in its conf, so this tiny race is unavoidable; ports come from the OS's ephemeral
/// range and are not reused immediately.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
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
