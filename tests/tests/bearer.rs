//! Bearer tokens through the real binary, with keys served by a real issuer key server in the
//! test: RS256, ES256 and EdDSA tokens are accepted and the upstream learns who called; every
//! known attack is refused with 401 and its reason code and never reaches the upstream; key
//! rotation at the issuer is picked up without a restart; a slow or dead key server never
//! blocks requests whose keys are cached; a Kubernetes issuer over HTTPS hands namespace and
//! service account to policy; and the metrics say what happened.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::Duration;
use warden_tests::certs::TestCa;
use warden_tests::jwks::{claims, compact, jwks, now, sign_with, KeyServer, TestKey};
use warden_tests::{client, eventually, warden::Setup, Upstream, Warden};

const CONF: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
audit: { target: "${DIR}/audit.log", allow_sample_rate: 1.0 }
identity:
  jwt_issuers:
    - { name: ci, issuer: "${ISSUER}", audiences: [warden] }
routes:
  - name: api
    host: api.test
    upstreams: ["${UP}"]
    auth: { bearer: [ci] }
    policy: { allow: [{ groups: [deployers] }] }
"#;

/// How long any single request may take before the test fails: generous, it only guards
/// against a request that hangs (it is not a timing assertion).
const GUARD: Duration = Duration::from_secs(20);

/// What Warden answered.
struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    body: Value,
}

impl Answer {
    fn reason(&self) -> &str {
        self.body["reason"].as_str().unwrap_or_default()
    }

    /// A header the upstream received (from its echo).
    fn upstream_header(&self, name: &str) -> Option<&str> {
        self.body["headers"][name][0].as_str()
    }
}

async fn call_with(w: &Warden, authorization: Option<&str>) -> Answer {
    let mut req = client()
        .get(w.url("/data"))
        .header("host", "api.test")
        .header("accept", "application/json");
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let r = tokio::time::timeout(GUARD, req.send())
        .await
        .expect("Warden answered within the guard time")
        .expect("request");
    let status = r.status().as_u16();
    let www_authenticate = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = r.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        www_authenticate,
        body,
    }
}

async fn call(w: &Warden, token: &str) -> Answer {
    call_with(w, Some(&format!("Bearer {token}"))).await
}

/// Asserts a 401 for an invalid token with `reason` in the JSON body and the challenge.
fn assert_refused(case: &str, a: &Answer, reason: &str) {
    assert_eq!(a.status, 401, "{case}: {:?}", a.body);
    assert_eq!(a.reason(), reason, "{case}: {:?}", a.body);
    assert_eq!(a.body["error"], "invalid_token", "{case}: {:?}", a.body);
    let challenge = a.www_authenticate.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{case}: {challenge}"
    );
    assert!(
        challenge.contains(&format!("error_description=\"{reason}: ")),
        "{case}: the challenge names the reason: {challenge}"
    );
}

/// The issuer's keys, its key server and a Warden in front of one upstream.
struct Fixture {
    keys: Keys,
    server: KeyServer,
    up: Upstream,
    warden: Warden,
}

struct Keys {
    rsa: TestKey,
    ec: TestKey,
    ed: TestKey,
    /// Not in the served key set until a rotation puts it there.
    rsa_b: TestKey,
}

impl Fixture {
    async fn start() -> Self {
        let keys = Keys {
            rsa: TestKey::rsa_a(),
            ec: TestKey::ec_p256(),
            ed: TestKey::ed25519(),
            rsa_b: TestKey::rsa_b(),
        };
        let server = KeyServer::start(None, jwks(&[&keys.rsa, &keys.ec, &keys.ed])).await;
        let up = Upstream::start("api").await;
        let setup = Setup::new();
        let warden = setup
            .start(
                CONF,
                &[("ISSUER", server.base.clone()), ("UP", up.address())],
            )
            .await;
        Self {
            keys,
            server,
            up,
            warden,
        }
    }

    fn issuer(&self) -> &str {
        &self.server.base
    }

    /// Good claims with `edit` applied.
    fn claims(&self, edit: impl FnOnce(&mut Value)) -> Value {
        let mut c = claims(self.issuer());
        edit(&mut c);
        c
    }

    fn audit_log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.warden.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    async fn metric(&self, name: &str, labels: &[&str]) -> Option<f64> {
        self.warden.metric_with(name, labels).await
    }
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_are_accepted_and_the_upstream_learns_who_called() {
    let f = Fixture::start().await;
    let tokens: Vec<String> = [&f.keys.rsa, &f.keys.ec, &f.keys.ed]
        .iter()
        .map(|k| k.sign(&f.claims(|_| {})))
        .collect();
    for (token, alg) in tokens.iter().zip(["RS256", "ES256", "EdDSA"]) {
        let a = call(&f.warden, token).await;
        assert_eq!(a.status, 200, "{alg}: {:?}", a.body);
        assert_eq!(
            a.upstream_header("x-warden-user"),
            Some("workload-1"),
            "{alg}"
        );
        assert_eq!(
            a.upstream_header("x-warden-email"),
            Some("ci@example.com"),
            "{alg}"
        );
        let groups = a.upstream_header("x-warden-groups").unwrap_or_default();
        assert!(groups.contains("deployers"), "{alg}: {groups}");
    }
    // Presented again: answered from the verified-token cache.
    assert_eq!(call(&f.warden, &tokens[0]).await.status, 200);
    assert_eq!(f.up.hits(), 4);

    // Which credential was used is recorded: the audit log names the method and the issuer.
    eventually("four allow lines in the audit log", || async {
        f.audit_log()
            .iter()
            .filter(|l| l["decision"] == "allow")
            .count()
            == 4
    })
    .await;
    for line in f.audit_log() {
        assert_eq!(line["auth"], "bearer", "{line}");
        assert_eq!(line["issuer"], "ci", "{line}");
        assert_eq!(line["subject"], "workload-1", "{line}");
    }

    let ok = ["method=\"bearer\"", "issuer=\"ci\"", "result=\"ok\""];
    f.warden.wait_metric("warden_authn_total", &ok, 4.0).await;
    assert_eq!(
        f.metric(
            "warden_jwks_refresh_total",
            &["issuer=\"ci\"", "result=\"ok\""]
        )
        .await,
        Some(1.0),
        "keys fetched once at start"
    );
    assert_eq!(
        f.metric(
            "warden_jwks_refresh_total",
            &["issuer=\"ci\"", "result=\"error\""]
        )
        .await,
        Some(0.0)
    );
    assert_eq!(
        f.metric("warden_token_cache_hits_total", &[]).await,
        Some(1.0)
    );
    assert_eq!(f.metric("warden_token_cache_entries", &[]).await, Some(3.0));
    assert_eq!(f.server.discovery_hits(), 1);
}

#[tokio::test]
async fn every_known_attack_is_refused_with_its_reason_and_never_reaches_the_upstream() {
    let f = Fixture::start().await;
    let k = &f.keys;
    let good = k.rsa.sign(&f.claims(|_| {}));
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |v: &Value| warden_tests::jwks::b64(v.to_string().as_bytes());

    let hs256_confusion = {
        // The RSA public key (which anyone can fetch) used as an HMAC secret.
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(k.rsa.kid.clone());
        let secret = warden_tests::jwks::fixture("rsa2048-a.pub.pem");
        jsonwebtoken::encode(&h, &f.claims(|_| {}), &EncodingKey::from_secret(&secret))
            .expect("hs256")
    };
    let tampered_payload = format!(
        "{}.{}.{}",
        parts[0],
        b64(&f.claims(|c| c["sub"] = json!("admin"))),
        parts[2]
    );
    let tampered_header = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "RS256", "kid": k.rsa.kid, "typ": "JWT", "x5u": "https://evil"})),
        parts[1],
        parts[2]
    );
    let kid_of_another_key = {
        let mut h = k.rsa_b.header();
        h.kid = Some(k.rsa.kid.clone());
        sign_with(&h, &k.rsa_b.encoding, &f.claims(|_| {}))
    };
    let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
    let json_bomb = format!(
        "{}.{}.{}",
        parts[0],
        warden_tests::jwks::b64(format!("{{\"iss\":\"x\",\"a\":{deep}}}").as_bytes()),
        parts[2]
    );
    let header_bomb = format!(
        "{}.{}.{}",
        warden_tests::jwks::b64(format!("{{\"alg\":\"RS256\",\"a\":{deep}}}").as_bytes()),
        parts[1],
        parts[2]
    );

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            compact(
                &json!({"alg": "none", "typ": "JWT"}),
                &f.claims(|_| {}),
                b"",
            ),
            "unsupported_algorithm",
        ),
        (
            "RS256 to HS256 key confusion",
            hs256_confusion,
            "unsupported_algorithm",
        ),
        ("tampered payload", tampered_payload, "bad_signature"),
        ("tampered header", tampered_header, "bad_signature"),
        ("kid of another key", kid_of_another_key, "bad_signature"),
        (
            "expired",
            k.ec.sign(&f.claims(|c| {
                c["iat"] = json!(now() - 3600);
                c["exp"] = json!(now() - 120);
            })),
            "expired",
        ),
        (
            "nbf in the future",
            k.ed.sign(&f.claims(|c| c["nbf"] = json!(now() + 600))),
            "not_yet_valid",
        ),
        (
            "missing exp",
            k.rsa.sign(&f.claims(|c| {
                c.as_object_mut().expect("object").remove("exp");
            })),
            "missing_exp",
        ),
        (
            "wrong issuer",
            k.rsa
                .sign(&f.claims(|c| c["iss"] = json!("https://issuer.elsewhere.test"))),
            "unknown_issuer",
        ),
        (
            "wrong audience",
            k.rsa
                .sign(&f.claims(|c| c["aud"] = json!("another-service"))),
            "bad_audience",
        ),
        (
            "malformed base64",
            format!("{}.{}!*.{}", parts[0], parts[1], parts[2]),
            "malformed",
        ),
        ("not a JWT", "not-a-token".into(), "malformed"),
        ("JSON bomb in the payload", json_bomb, "malformed"),
        ("JSON bomb in the header", header_bomb, "malformed"),
    ];
    for (case, token, reason) in &cases {
        let a = call(&f.warden, token).await;
        assert_refused(case, &a, reason);
    }

    // A key the issuer does not have: one refetch (the issuer may have rotated), then refused.
    let fetches = f.server.jwks_hits();
    let unknown_kid = k.rsa_b.sign(&f.claims(|_| {}));
    assert_refused(
        "unknown kid",
        &call(&f.warden, &unknown_kid).await,
        "unknown_key",
    );
    assert_eq!(f.server.jwks_hits(), fetches + 1, "one refetch");
    // Another unknown kid right after: refused without bothering the issuer (rate limited).
    let mut h = k.rsa_b.header();
    h.kid = Some("never-heard-of".into());
    let other = sign_with(&h, &k.rsa_b.encoding, &f.claims(|_| {}));
    assert_refused(
        "another unknown kid",
        &call(&f.warden, &other).await,
        "unknown_key",
    );
    assert_eq!(f.server.jwks_hits(), fetches + 1, "no second refetch");

    // Over the Authorization size cap (8 KiB by default): 431 before any decoding.
    let huge = format!("{}.{}.{}", parts[0], "A".repeat(9000), parts[2]);
    let a = call(&f.warden, &huge).await;
    assert_eq!(a.status, 431, "{:?}", a.body);
    assert_eq!(a.reason(), "authorization_too_large");

    // No credential at all: 401 with a bare challenge.
    let a = call_with(&f.warden, None).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.reason(), "no_credentials");
    assert_eq!(
        a.www_authenticate.as_deref(),
        Some("Bearer realm=\"warden\"")
    );

    assert_eq!(f.up.hits(), 0, "nothing reached the upstream");
    // A good token still works afterwards, and is the only request the upstream saw.
    assert_eq!(call(&f.warden, &good).await.status, 200);
    assert_eq!(f.up.hits(), 1);

    for (result, count) in [
        ("bad_signature", 3.0),
        ("unsupported_algorithm", 2.0),
        ("unknown_key", 2.0),
        ("expired", 1.0),
        ("not_yet_valid", 1.0),
        ("missing_exp", 1.0),
        ("bad_audience", 1.0),
    ] {
        let labels = [
            "method=\"bearer\"",
            "issuer=\"ci\"",
            &format!("result=\"{result}\""),
        ];
        assert_eq!(
            f.metric("warden_authn_total", &labels).await,
            Some(count),
            "{result}"
        );
    }
    // Tokens that name no issuer this route accepts are counted under `issuer="unknown"`.
    for (result, count) in [("malformed", 4.0), ("unknown_issuer", 1.0)] {
        let labels = [
            "method=\"bearer\"",
            "issuer=\"unknown\"",
            &format!("result=\"{result}\""),
        ];
        assert_eq!(
            f.metric("warden_authn_total", &labels).await,
            Some(count),
            "{result}"
        );
    }
    assert_eq!(f.metric("warden_token_cache_entries", &[]).await, Some(1.0));

    // No log (process log, access log, audit log) ever holds a token or a part of one.
    let dir = f.warden.dir.path();
    let logs = [
        f.warden.stderr(),
        std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default(),
        std::fs::read_to_string(dir.join("audit.log")).unwrap_or_default(),
    ]
    .concat();
    assert!(logs.contains("bearer token refused"), "refusals are logged");
    for part in &parts {
        assert!(!logs.contains(part), "a token part was logged");
    }
}

#[tokio::test]
async fn rotated_keys_are_picked_up_without_restart_and_removed_keys_stop_working() {
    let f = Fixture::start().await;
    let old = f.keys.rsa.sign(&f.claims(|_| {}));
    assert_eq!(call(&f.warden, &old).await.status, 200);
    assert_eq!(call(&f.warden, &old).await.status, 200, "cached");

    // The issuer rotates: key A is retired, key B signs from now on.
    f.server.set_jwks(jwks(&[&f.keys.rsa_b, &f.keys.ec]));
    let new = f.keys.rsa_b.sign(&f.claims(|_| {}));
    let a = call(&f.warden, &new).await;
    assert_eq!(a.status, 200, "the new key was fetched: {:?}", a.body);

    // The old key's token, verified and cached before, dies with its key.
    assert_refused("removed key", &call(&f.warden, &old).await, "unknown_key");
    let fresh_old = f.keys.rsa.sign(&f.claims(|c| c["jti"] = json!("after")));
    assert_refused(
        "new token, removed key",
        &call(&f.warden, &fresh_old).await,
        "unknown_key",
    );
    assert_eq!(f.up.hits(), 3);
    assert_eq!(
        f.metric(
            "warden_jwks_refresh_total",
            &["issuer=\"ci\"", "result=\"ok\""]
        )
        .await,
        Some(2.0),
        "fetched at start and once for the unknown kid"
    );
}

#[tokio::test]
async fn a_slow_or_dead_key_server_never_blocks_requests_with_cached_keys() {
    let f = Fixture::start().await;
    let cached = f.keys.rsa.sign(&f.claims(|_| {}));
    assert_eq!(call(&f.warden, &cached).await.status, 200);

    // The key server stalls. A token with an unknown kid starts a refetch that hangs.
    f.server.stall();
    let fetches = f.server.jwks_hits();
    let unknown = f.keys.rsa_b.sign(&f.claims(|_| {}));
    let stuck = {
        let url = f.warden.url("/data");
        tokio::spawn(async move {
            client()
                .get(url)
                .header("host", "api.test")
                .header("accept", "application/json")
                .bearer_auth(unknown)
                .send()
                .await
                .expect("request")
        })
    };
    eventually("the refetch reached the stalled key server", || async {
        f.server.jwks_hits() > fetches
    })
    .await;

    // Meanwhile tokens of cached keys pass: the cached token, and new tokens of known keys.
    assert_eq!(call(&f.warden, &cached).await.status, 200);
    let new_ec = f
        .keys
        .ec
        .sign(&f.claims(|c| c["jti"] = json!("during-stall")));
    assert_eq!(call(&f.warden, &new_ec).await.status, 200);

    // The unknown kid waits only briefly for its refetch, then is refused.
    let r = tokio::time::timeout(GUARD, stuck)
        .await
        .expect("the unknown-kid request was answered")
        .expect("task");
    assert_eq!(r.status(), 401);

    // The key server goes down altogether: cached keys keep serving.
    f.server.stop();
    assert_eq!(call(&f.warden, &cached).await.status, 200);
    let new_ed = f
        .keys
        .ed
        .sign(&f.claims(|c| c["jti"] = json!("while-down")));
    assert_eq!(call(&f.warden, &new_ed).await.status, 200);
    assert_eq!(f.up.hits(), 5);
}

#[tokio::test]
async fn a_reload_keeps_the_issuer_keys_and_applies_the_new_rules() {
    let f = Fixture::start().await;
    let token = f.keys.ec.sign(&f.claims(|_| {}));
    assert_eq!(call(&f.warden, &token).await.status, 200);
    let fetches = (f.server.discovery_hits(), f.server.jwks_hits());

    // The issuer now only accepts tokens minted for another audience.
    let conf = f.warden.render(
        &CONF.replace("audiences: [warden]", "audiences: [billing]"),
        &[("ISSUER", f.server.base.clone()), ("UP", f.up.address())],
    );
    f.warden.write_conf(&conf);
    let generation = f.warden.generation().await;
    f.warden.signal(nix::sys::signal::Signal::SIGHUP);
    eventually("the reload took effect", || async {
        f.warden.generation().await > generation
    })
    .await;

    // The token verified (and cached) under the old rules is judged by the new ones.
    assert_refused(
        "old audience",
        &call(&f.warden, &token).await,
        "bad_audience",
    );
    let billing = f.keys.ec.sign(&f.claims(|c| c["aud"] = json!(["billing"])));
    assert_eq!(call(&f.warden, &billing).await.status, 200);
    // The key cache outlived the reload: the issuer was not asked again.
    assert_eq!((f.server.discovery_hits(), f.server.jwks_hits()), fetches);
    assert_eq!(f.up.hits(), 2);
}

const KUBE_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

const KUBE_CONF: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
identity:
  jwt_issuers:
    - name: cluster
      kind: kubernetes
      issuer: "https://kubernetes.default.svc.cluster.local"
      api_server: "${API}"
      discovery: true
      ca_file: "${DIR}/cluster-ca.pem"
      token_file: "${DIR}/warden-sa-token"
      audiences: [warden]
routes:
  - name: api
    host: api.test
    upstreams: ["${UP}"]
    auth: { bearer: [cluster] }
    policy: { allow: [{ namespace: [ci] }] }
"#;

fn service_account_claims(namespace: &str, name: &str) -> Value {
    let now = now();
    json!({
        "iss": KUBE_ISSUER,
        "aud": ["warden"],
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": "4c1d4d4c-0000-4000-8000-000000000001"},
            "pod": {"name": format!("{name}-7d9f"), "uid": "4c1d4d4c-0000-4000-8000-000000000002"}
        }
    })
}

#[tokio::test]
async fn kubernetes_service_accounts_reach_policy_as_namespace_and_service_account() {
    let ca = TestCa::new();
    let key = TestKey::rsa_a();
    let api =
        KeyServer::start_tls(KUBE_ISSUER, jwks(&[&key]), ca.server_config(&["127.0.0.1"])).await;
    let up = Upstream::start("api").await;
    let setup = Setup::new();
    std::fs::write(setup.path("cluster-ca.pem"), &ca.ca_pem).expect("ca");
    std::fs::write(setup.path("warden-sa-token"), "warden-own-token\n").expect("token");
    let w = setup
        .start(
            KUBE_CONF,
            &[("API", api.base.clone()), ("UP", up.address())],
        )
        .await;
    assert_eq!(api.discovery_hits(), 1, "{}", w.stderr());
    // Warden authenticated to the API server with its own service-account token.
    assert_eq!(
        api.authorizations(),
        vec![Some("Bearer warden-own-token".to_string())]
    );

    let builder = key.sign(&service_account_claims("ci", "builder"));
    let a = call(&w, &builder).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        a.upstream_header("x-warden-user"),
        Some("system:serviceaccount:ci:builder")
    );
    let groups = a.upstream_header("x-warden-groups").unwrap_or_default();
    assert!(groups.contains("system:serviceaccounts:ci"), "{groups}");

    let a = call(&w, &key.sign(&service_account_claims("prod", "deployer"))).await;
    assert_eq!(a.status, 403, "another namespace is denied: {:?}", a.body);

    // A token of the cluster's issuer that names no service account is refused.
    let mut user = service_account_claims("ci", "builder");
    user["sub"] = json!("alice");
    user.as_object_mut()
        .expect("object")
        .remove("kubernetes.io");
    assert_refused(
        "not a service account",
        &call(&w, &key.sign(&user)).await,
        "missing_claim",
    );
    assert_eq!(up.hits(), 1);
}
