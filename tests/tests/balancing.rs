//! Load balancing through the real binary: round robin spreads evenly, weights skew the spread,
//! and consistent hashing keeps a header, a cookie or a client address on one upstream.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use warden_tests::{client, served_by, three_upstreams, warden::Setup, Upstream, Warden};

const CONF: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
routes:
  - { public: true, name: rr, host: rr.test, upstreams: ["${A}", "${B}", "${C}"] }
  - name: weighted
    public: true
    host: weighted.test
    upstreams: [{ address: "${A}", weight: 3 }, "${B}", "${C}"]
  - name: by-header
    public: true
    host: header.test
    upstreams: ["${A}", "${B}", "${C}"]
    lb: { consistent_hash: { header: x-user } }
  - name: by-cookie
    public: true
    host: cookie.test
    upstreams: ["${A}", "${B}", "${C}"]
    lb: { consistent_hash: { cookie: session } }
  - name: by-client
    public: true
    host: client.test
    upstreams: ["${A}", "${B}", "${C}"]
    lb: { consistent_hash: { client_address: true } }
"#;

struct Fixture {
    _ups: [Upstream; 3],
    warden: Warden,
}

async fn start() -> Fixture {
    let (ups, vars) = three_upstreams().await;
    let warden = Setup::new().start(CONF, &vars).await;
    Fixture { _ups: ups, warden }
}

/// Sends `n` requests built by `req` and counts which upstream served each.
async fn spread(
    n: usize,
    req: impl Fn(usize) -> reqwest::RequestBuilder,
) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for i in 0..n {
        let r = req(i).send().await.expect("request");
        assert_eq!(r.status(), 200);
        *seen.entry(served_by(&r).expect("x-upstream")).or_default() += 1;
    }
    seen
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[tokio::test]
async fn round_robin_gives_each_upstream_an_equal_share() {
    let f = start().await;
    let c = client();
    let seen = spread(30, |_| c.get(f.warden.url("/")).header("host", "rr.test")).await;
    assert_eq!(seen, counts(&[("a", 10), ("b", 10), ("c", 10)]));
}

#[tokio::test]
async fn a_weight_of_three_gets_three_times_the_share() {
    let f = start().await;
    let c = client();
    let seen = spread(50, |_| {
        c.get(f.warden.url("/")).header("host", "weighted.test")
    })
    .await;
    assert_eq!(seen, counts(&[("a", 30), ("b", 10), ("c", 10)]));
}

/// Each key's requests all land on one upstream, and the keys together use more than one.
async fn assert_sticky(
    keys: usize,
    per_key: usize,
    req: impl Fn(usize) -> reqwest::RequestBuilder,
) {
    let mut used = BTreeSet::new();
    for k in 0..keys {
        let seen = spread(per_key, |_| req(k)).await;
        assert_eq!(seen.len(), 1, "key {k} was served by {seen:?}");
        used.extend(seen.into_keys());
    }
    assert!(used.len() > 1, "every key went to {used:?}");
}

#[tokio::test]
async fn consistent_hash_on_a_header_keeps_each_user_on_one_upstream() {
    let f = start().await;
    let c = client();
    assert_sticky(20, 5, |k| {
        c.get(f.warden.url(&format!("/req/{k}")))
            .header("host", "header.test")
            .header("x-user", format!("user-{k}"))
    })
    .await;
}

#[tokio::test]
async fn consistent_hash_on_a_cookie_keeps_each_session_on_one_upstream() {
    let f = start().await;
    let c = client();
    assert_sticky(20, 5, |k| {
        // The session cookie among others, in a different position each time.
        let cookie = if k % 2 == 0 {
            format!("theme=dark; session=s{k}; lang=en")
        } else {
            format!("session=s{k}")
        };
        c.get(f.warden.url("/"))
            .header("host", "cookie.test")
            .header("cookie", cookie)
    })
    .await;
}

#[tokio::test]
async fn consistent_hash_on_the_client_address_keeps_each_client_on_one_upstream() {
    let f = start().await;
    // Loopback is all of 127/8: each client connects from its own address.
    let clients: Vec<reqwest::Client> = (2..22)
        .map(|last| {
            reqwest::Client::builder()
                .no_proxy()
                .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
                .build()
                .expect("client")
        })
        .collect();
    assert_sticky(clients.len(), 5, |k| {
        clients[k]
            .get(f.warden.url("/"))
            .header("host", "client.test")
    })
    .await;
}
