//! Authorization through the real binary, with bearer tokens from an issuer whose keys are in a
//! `jwks_file`: path normalisation cannot be used to slip past a rule, deny wins, criteria are
//! decided on every request, a reload flips decisions on the next request, blocks refuse bearer
//! tokens until lifted, shadow policies are counted and not enforced, denials are audited, and
//! the admin API needs its token.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warden_tests::tokens::{self, Issuer, CONF_HEAD};
use warden_tests::upstream::Echo;
use warden_tests::{client, eventually, warden::Setup, Upstream, Warden};

const APP_ROUTE: &str = r#"
routes:
  - name: app
    host: app.test
    upstreams: ["${UP}"]
    auth: { bearer: [ci] }
    policy:
      allow:
        - { name: staff, groups: [staff] }
        - { name: readonly, and: [{ email_domain: example.com }, { method: [GET, HEAD] }] }
      deny:
        - { name: admin-only, path_prefix: /admin, not: { groups: [admins] } }
    policy_shadow:
      allow: [{ groups: [staff] }]
"#;

/// The same route after an edit: only contractors are allowed.
const APP_ROUTE_CONTRACTORS: &str = r#"
routes:
  - name: app
    host: app.test
    upstreams: ["${UP}"]
    auth: { bearer: [ci] }
    policy: { allow: [{ groups: [contractors] }] }
"#;

struct Env {
    w: Warden,
    up: Upstream,
    issuer: Issuer,
}

async fn start() -> Env {
    let up = Upstream::start("app").await;
    let setup = Setup::new();
    let issuer = tokens::prepare(&setup);
    let w = setup
        .start(&format!("{CONF_HEAD}{APP_ROUTE}"), &[("UP", up.address())])
        .await;
    Env { w, up, issuer }
}

impl Env {
    fn token(&self, sub: &str, email: Option<&str>, groups: &[&str]) -> String {
        self.issuer.token(sub, email, groups)
    }

    async fn send(&self, method: &str, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = client()
            .request(method.parse().expect("method"), self.w.url(path))
            .header("host", "app.test");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    async fn status(&self, method: &str, path: &str, token: &str) -> u16 {
        self.send(method, path, Some(token)).await.status().as_u16()
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        tokens::admin(&self.w, method, path, body).await
    }

    fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.w.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Sends a request target byte for byte (clients resolve `..` before sending), returning the
/// status and the body.
async fn raw_get(w: &Warden, target: &str, token: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", w.http))
        .await
        .expect("connect");
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: app.test\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn path_bypass_attempts_are_refused_and_the_upstream_sees_the_normalised_path() {
    let env = start().await;
    let staff = env.token("sam", Some("sam@example.com"), &["staff"]);
    for target in [
        "/admin",
        "/x/../admin",
        "/%61dmin",
        "//admin",
        "/docs/./../admin/users",
    ] {
        let (status, body) = raw_get(&env.w, target, &staff).await;
        assert_eq!(status, 403, "{target}: {body}");
    }
    assert_eq!(env.up.hits(), 0, "no bypass attempt reached the upstream");

    let admin = env.token("ada", Some("ada@example.com"), &["staff", "admins"]);
    for target in ["/x/../admin/users", "/%61dmin/users", "//admin//users"] {
        let (status, body) = raw_get(&env.w, target, &admin).await;
        assert_eq!(status, 200, "{target}: {body}");
        let json_start = body.find('{').expect("an echo");
        let echo: Echo =
            serde_json::from_str(body[json_start..].trim_end_matches(|c: char| c != '}'))
                .unwrap_or_else(|e| panic!("{target}: {e}: {body}"));
        assert_eq!(echo.path, "/admin/users", "{target}");
    }
}

#[tokio::test]
async fn criteria_are_decided_per_request_and_deny_wins() {
    let env = start().await;
    let staff = env.token("sam", Some("sam@other.org"), &["staff"]);
    let reader = env.token("rea", Some("rea@example.com"), &["readers"]);
    let stranger = env.token("stu", Some("stu@other.org"), &["readers"]);
    let admin = env.token("ada", Some("ada@other.org"), &["admins", "staff"]);

    // Groups allow any method.
    assert_eq!(env.status("GET", "/docs", &staff).await, 200);
    assert_eq!(env.status("POST", "/docs", &staff).await, 200);
    // Email domain and method together.
    assert_eq!(env.status("GET", "/docs", &reader).await, 200);
    assert_eq!(env.status("HEAD", "/docs", &reader).await, 200);
    assert_eq!(env.status("POST", "/docs", &reader).await, 403);
    // Nothing matches: default deny.
    assert_eq!(env.status("GET", "/docs", &stranger).await, 403);
    // Staff match an allow rule, but the deny rule on /admin wins.
    assert_eq!(env.status("GET", "/admin/users", &staff).await, 403);
    assert_eq!(env.status("GET", "/admin/users", &admin).await, 200);
    // No credential at all: 401, not 403.
    assert_eq!(env.send("GET", "/docs", None).await.status(), 401);

    let r = env.send("GET", "/admin/x", Some(&staff)).await;
    let rid = r.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    let body: Value = r.json().await.expect("a JSON refusal");
    assert_eq!(body["reason"], "deny_rule", "{body}");
    assert_eq!(body["request_id"], rid.as_str(), "{body}");
    assert!(
        !body.to_string().contains("admin-only"),
        "the rule stays internal unless the route asks: {body}"
    );
}

#[tokio::test]
async fn a_reload_flips_a_decision_on_the_next_request() {
    let env = start().await;
    let staff = env.token("sam", None, &["staff"]);
    let contractor = env.token("con", None, &["contractors"]);
    assert_eq!(env.status("GET", "/docs", &staff).await, 200);
    assert_eq!(env.status("GET", "/docs", &contractor).await, 403);

    let conf = format!("{CONF_HEAD}{APP_ROUTE_CONTRACTORS}");
    tokens::reload(&env.w, &conf, &[("UP", env.up.address())]).await;
    assert_eq!(env.status("GET", "/docs", &staff).await, 403);
    assert_eq!(env.status("GET", "/docs", &contractor).await, 200);
}

#[tokio::test]
async fn a_block_refuses_bearer_tokens_until_it_is_lifted() {
    let env = start().await;
    let mallory = env.token("mallory", Some("Mallory@Example.com"), &["staff"]);
    let sam = env.token("sam", None, &["staff"]);
    assert_eq!(env.status("GET", "/docs", &mallory).await, 200);

    let (status, body) = env
        .admin("POST", "/admin/blocks", Some(json!({"subject": "mallory"})))
        .await;
    assert_eq!(
        (status, &body["blocked"]),
        (200, &json!("mallory")),
        "{body}"
    );
    let r = env.send("GET", "/docs", Some(&mallory)).await;
    assert_eq!(r.status(), 403);
    let refusal: Value = r.json().await.expect("JSON");
    assert_eq!(refusal["reason"], "blocked", "{refusal}");
    assert_eq!(env.status("GET", "/docs", &sam).await, 200, "others pass");

    let (_, list) = env.admin("GET", "/admin/blocks", None).await;
    assert_eq!(
        list,
        json!({"blocks": [{"subject": "mallory", "until": null}]})
    );

    let (status, _) = env.admin("DELETE", "/admin/blocks/mallory", None).await;
    assert_eq!(status, 200);
    assert_eq!(env.status("GET", "/docs", &mallory).await, 200);

    // An email block matches the token's email, ignoring case.
    let (status, _) = env
        .admin(
            "POST",
            "/admin/blocks",
            Some(json!({"subject": "mallory@example.com"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(env.status("GET", "/docs", &mallory).await, 403);
}

#[tokio::test]
async fn shadow_disagreements_are_counted_and_not_enforced() {
    let env = start().await;
    // Enforced: allowed (example.com, GET). Shadow: denied (not staff).
    let reader = env.token("rea", Some("rea@example.com"), &[]);
    let staff = env.token("sam", None, &["staff"]);
    assert_eq!(env.status("GET", "/docs", &staff).await, 200, "both agree");
    for _ in 0..3 {
        assert_eq!(
            env.status("GET", "/docs", &reader).await,
            200,
            "shadow not enforced"
        );
    }
    env.w
        .wait_metric(
            "warden_authz_shadow_mismatches_total",
            &["route=\"app\""],
            3.0,
        )
        .await;
    env.w
        .wait_metric(
            "warden_authz_decisions_total",
            &["route=\"app\"", "decision=\"allow\""],
            4.0,
        )
        .await;
}

#[tokio::test]
async fn denials_are_audited_with_who_what_and_why() {
    let env = start().await;
    let stranger = env.token("stu", Some("stu@other.org"), &["readers"]);
    let r = env.send("GET", "/docs", Some(&stranger)).await;
    assert_eq!(r.status(), 403);
    let rid = r.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    let mut line = Value::Null;
    eventually("the denial is in the audit log", || {
        let found = env
            .audit_lines()
            .into_iter()
            .find(|l| l["request_id"] == rid.as_str());
        if let Some(l) = found {
            line = l;
        }
        std::future::ready(!line.is_null())
    })
    .await;
    assert_eq!(line["route"], "app", "{line}");
    assert_eq!(line["subject"], "stu", "{line}");
    assert_eq!(line["email"], "stu@other.org", "{line}");
    assert_eq!(line["decision"], "deny", "{line}");
    assert_eq!(line["rule"], "default", "{line}");
    assert_eq!(line["reason"], "no_matching_allow", "{line}");
    assert!(
        line["time"]
            .as_str()
            .is_some_and(|t| t.len() >= 20 && t.ends_with('Z')),
        "an RFC 3339 time: {line}"
    );
    // The audit log is its own file: the access log does not carry audit lines.
    assert!(env.w.access_log().iter().all(|l| l["type"] != "audit"));
}

#[tokio::test]
async fn the_admin_api_needs_its_token() {
    let env = start().await;
    for auth in [
        None,
        Some("Bearer wrong-token"),
        Some("Basic YWRtaW46YWRtaW4="),
    ] {
        let mut req = client().get(env.w.admin_url("/admin/blocks"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.expect("admin request");
        assert_eq!(r.status(), 401, "{auth:?}");
        let body: Value = r.json().await.expect("JSON");
        assert_eq!(body["error"], "unauthorized");
    }
    let r = client()
        .post(env.w.admin_url("/admin/blocks"))
        .header("authorization", "Bearer wrong-token")
        .json(&json!({"subject": "sam"}))
        .send()
        .await
        .expect("admin request");
    assert_eq!(r.status(), 401);
    let (status, body) = env.admin("GET", "/admin/blocks", None).await;
    assert_eq!(
        (status, body),
        (200, json!({"blocks": []})),
        "nothing was blocked"
    );
    let (status, body) = env.admin("GET", "/admin/sessions?user=sam", None).await;
    assert_eq!((status, body), (200, json!({"sessions": []})));
    let (status, body) = env
        .admin("POST", "/admin/sessions/revoke", Some(json!({"all": true})))
        .await;
    assert_eq!((status, body), (200, json!({"revoked": 0})));
    let (status, body) = env
        .admin("POST", "/admin/sessions/revoke", Some(json!({"nobody": 1})))
        .await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_body")),
        "{body}"
    );
}

#[tokio::test]
async fn without_a_token_file_the_admin_api_is_closed() {
    const NO_TOKEN: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
routes:
  - { public: true, name: site, host: app.test, upstreams: ["${UP}"] }
"#;
    let up = Upstream::start("u").await;
    let w = Setup::new().start(NO_TOKEN, &[("UP", up.address())]).await;
    for (method, path) in [
        ("GET", "/admin/blocks"),
        ("POST", "/admin/blocks"),
        ("GET", "/admin/sessions?user=a"),
        ("POST", "/admin/sessions/revoke"),
    ] {
        let r = client()
            .request(method.parse().expect("method"), w.admin_url(path))
            .bearer_auth("anything")
            .send()
            .await
            .expect("admin request");
        assert_eq!(r.status(), 404, "{method} {path}");
        let body: Value = r.json().await.expect("JSON");
        assert_eq!(body["error"], "admin_disabled");
    }
}
