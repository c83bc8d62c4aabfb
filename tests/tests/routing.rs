//! Host and path routing through the real binary: exact and wildcard hosts, longest prefix,
//! exact paths, the default route, and the 404 that answers everything else.

use warden_tests::upstream::Echo;
use warden_tests::{client, warden::Setup, Upstream};

const CONF: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
routes:
  - { name: root, host: app.example.com, upstreams: ["${ROOT}"], public: true }
  - { name: api, host: app.example.com, path_prefix: /api, upstreams: ["${API}"], public: true }
  - { name: api-v2, host: app.example.com, path_prefix: /api/v2/, upstreams: ["${V2}"], public: true }
  - { name: login, host: app.example.com, path_exact: /api/login, upstreams: ["${LOGIN}"], public: true }
  - { name: wild, host: "*.example.com", upstreams: ["${WILD}"], public: true }
  - { name: multi, host: [a.test, b.test], upstreams: ["${WILD}"], public: true }
"#;

async fn upstream_for(w: &warden_tests::Warden, host: &str, path: &str) -> (u16, Option<String>) {
    let r = client()
        .get(w.url(path))
        .header("host", host)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let up = r
        .headers()
        .get("x-upstream")
        .map(|v| v.to_str().unwrap().to_string());
    (status, up)
}

#[tokio::test]
async fn routes_by_host_and_longest_path() {
    let ups = [
        Upstream::start("root").await,
        Upstream::start("api").await,
        Upstream::start("v2").await,
        Upstream::start("login").await,
        Upstream::start("wild").await,
    ];
    let vars = [
        ("ROOT", ups[0].address()),
        ("API", ups[1].address()),
        ("V2", ups[2].address()),
        ("LOGIN", ups[3].address()),
        ("WILD", ups[4].address()),
    ];
    let w = Setup::new().start(CONF, &vars).await;
    let cases = [
        ("app.example.com", "/", "root"),
        ("app.example.com", "/apix", "root"),
        ("APP.Example.com:80", "/api", "api"),
        ("app.example.com", "/api/users?x=1", "api"),
        ("app.example.com", "/api/v2", "v2"),
        ("app.example.com", "/api/v2/users", "v2"),
        ("app.example.com", "/api/login", "login"),
        ("app.example.com", "/api/login/more", "api"),
        ("other.example.com", "/anything", "wild"),
        ("a.test", "/", "wild"),
        ("b.test", "/x", "wild"),
    ];
    for (host, path, want) in cases {
        assert_eq!(
            upstream_for(&w, host, path).await,
            (200, Some(want.to_string())),
            "{host}{path}"
        );
    }
    // One label only for wildcards, and unknown hosts are not served.
    for (host, path) in [
        ("deep.sub.example.com", "/"),
        ("example.com", "/"),
        ("c.test", "/"),
    ] {
        assert_eq!(
            upstream_for(&w, host, path).await,
            (404, None),
            "{host}{path}"
        );
    }
}

#[tokio::test]
async fn not_found_is_json_for_json_clients_and_text_otherwise() {
    let up = Upstream::start("u").await;
    let w = Setup::new()
        .start(
            CONF,
            &[
                ("ROOT", up.address()),
                ("API", up.address()),
                ("V2", up.address()),
                ("LOGIN", up.address()),
                ("WILD", up.address()),
            ],
        )
        .await;
    let r = client()
        .get(w.url("/"))
        .header("host", "nowhere.test")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let rid = r
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    assert_eq!(body["request_id"], rid);
    let r = client()
        .get(w.url("/"))
        .header("host", "nowhere.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(r.text().await.unwrap().contains("no route"));
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn default_route_serves_unmatched_requests() {
    let up = Upstream::start("fallback").await;
    let conf = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
default_route: fallback
routes:
  - { name: fallback, host: fallback.internal, upstreams: ["${UP}"], public: true }
"#;
    let w = Setup::new().start(conf, &[("UP", up.address())]).await;
    assert_eq!(
        upstream_for(&w, "whatever.test", "/x").await,
        (200, Some("fallback".into()))
    );
}

#[tokio::test]
async fn forwarded_headers_are_set_from_what_warden_saw() {
    let up = Upstream::start("echo").await;
    let conf = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
routes:
  - name: echo
    host: echo.test
    path_prefix: /svc
    rewrite_prefix: /internal
    upstreams: ["${UP}"]
    public: true
    request_headers: { set: { x-env: test }, remove: [x-remove-me] }
    response_headers: { set: { x-served-by: warden } }
"#;
    let w = Setup::new().start(conf, &[("UP", up.address())]).await;
    let r = client()
        .get(w.url("/svc/items?q=1"))
        .header("host", "echo.test")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.test")
        .header("x-request-id", "spoofed")
        .header("x-remove-me", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-served-by"], "warden");
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let echo: Echo = r.json().await.unwrap();
    assert_eq!(echo.path, "/internal/items?q=1");
    // An untrusted client cannot choose its address, scheme, host or request id.
    assert_eq!(echo.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(echo.header("x-forwarded-proto"), Some("http"));
    assert_eq!(echo.header("x-forwarded-host"), Some("echo.test"));
    assert_ne!(echo.header("x-request-id"), Some("spoofed"));
    assert_eq!(echo.header("x-request-id"), Some(rid.as_str()));
    assert_eq!(echo.header("x-env"), Some("test"));
    assert_eq!(echo.header("x-remove-me"), None);

    let line = w.wait_access_log(|l| l["request_id"] == rid.as_str()).await;
    assert_eq!(line["route"], "echo");
    assert_eq!(line["status"], 200);
    assert_eq!(line["path"], "/svc/items");
    assert_eq!(line["host"], "echo.test");
    assert_eq!(line["upstream"], up.address());
    for field in ["time", "method", "duration_ms", "bytes_sent"] {
        assert!(!line[field].is_null(), "{field} missing in {line}");
    }
}

#[tokio::test]
async fn trusted_proxies_may_set_forwarded_headers() {
    let up = Upstream::start("echo").await;
    let conf = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
trusted_proxies: ["127.0.0.0/8"]
routes:
  - { name: echo, host: echo.test, upstreams: ["${UP}"], public: true }
"#;
    let w = Setup::new().start(conf, &[("UP", up.address())]).await;
    let echo: Echo = client()
        .get(w.url("/"))
        .header("host", "echo.test")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-request-id", "from-the-lb-1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        echo.header("x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(echo.header("x-forwarded-proto"), Some("https"));
    assert_eq!(echo.header("x-request-id"), Some("from-the-lb-1"));
}
