//! Bearer JWTs end to end: a real JWKS server on 127.0.0.1, tokens signed by `jsonwebtoken`,
//! verified by Warden's own verifier through `BearerAuth`.

mod jwt_support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm as JwtAlg, EncodingKey, Header};
use jwt_support::keys::{claims, fixture, jwks, sign_with, TestKey, FIXTURES};
use jwt_support::server::JwksServer;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use warden_plugins::clock::ManualClock;
use warden_plugins::jwt::{
    verify_with_keys, BearerAuth, BearerError, IssuerId, JwtIssuerConf, KeySet, RefreshOutcome,
    Timeouts, ValidationRules,
};
use warden_plugins::metrics::{AUTHN_TOTAL, JWKS_REFRESH_TOTAL};

const NOW: i64 = 1_700_000_000;

fn timeouts() -> Timeouts {
    Timeouts {
        startup: Duration::from_secs(10),
        request: Duration::from_secs(5),
        unknown_key_wait: Duration::from_secs(5),
        refetch_cooldown: Duration::from_secs(30),
    }
}

fn conf(name: &str, issuer: &str, extra: Value) -> JwtIssuerConf {
    let mut v = json!({"name": name, "issuer": issuer, "audiences": ["warden"]});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).unwrap()
}

/// Starts a `BearerAuth` of the single issuer `c` with the test timeouts.
async fn start_one(c: JwtIssuerConf) -> (BearerAuth, IssuerId) {
    start_one_with(c, timeouts()).await
}

async fn start_one_with(c: JwtIssuerConf, t: Timeouts) -> (BearerAuth, IssuerId) {
    let name = c.name.clone();
    let auth = BearerAuth::start_with(&[c], 10, ManualClock::at_secs(NOW), None, t)
        .await
        .unwrap();
    let id = auth.issuer_index(&name).unwrap();
    (auth, id)
}

/// One issuer named `name` whose keys a local server serves.
struct Harness {
    server: JwksServer,
    clock: Arc<ManualClock>,
    auth: BearerAuth,
    id: IssuerId,
    issuer: String,
    name: String,
}

impl Harness {
    async fn start(name: &str, keys: &[&TestKey]) -> Self {
        Self::start_with(name, keys, json!({}), timeouts()).await
    }

    async fn start_with(name: &str, keys: &[&TestKey], extra: Value, t: Timeouts) -> Self {
        let server = JwksServer::start(jwks(keys)).await;
        let issuer = format!("https://{name}.issuer.test");
        let mut extra = extra;
        if extra.get("jwks_url").is_none() && extra.get("discovery").is_none() {
            extra["jwks_url"] = json!(server.url("/jwks.json"));
        }
        let clock = ManualClock::at_secs(NOW);
        let auth =
            BearerAuth::start_with(&[conf(name, &issuer, extra)], 1000, clock.clone(), None, t)
                .await
                .unwrap();
        let id = auth.issuer_index(name).unwrap();
        Self {
            server,
            clock,
            auth,
            id,
            issuer,
            name: name.to_string(),
        }
    }

    fn claims(&self) -> Value {
        claims(&self.issuer, NOW)
    }

    async fn auth(&self, token: &str) -> Result<Arc<warden_plugins::Identity>, BearerError> {
        self.auth.authenticate(token, &[self.id]).await
    }

    async fn refused(&self, token: &str) -> &'static str {
        self.auth(token).await.unwrap_err().code()
    }

    fn authn(&self, result: &str) -> u64 {
        AUTHN_TOTAL
            .with_label_values(&["bearer", &self.name, result])
            .get()
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_string).collect()
}

#[tokio::test]
async fn rs256_es256_eddsa_ps256_are_accepted_and_mapped_to_an_identity() {
    let (rsa, ec, ed) = (TestKey::rsa_a(), TestKey::ec_p256(), TestKey::ed25519());
    let ps = TestKey::rsa_b().with(JwtAlg::PS256, "rsa-pss");
    let h = Harness::start_with(
        "accept",
        &[&rsa, &ec, &ed, &ps],
        json!({"algorithms": ["RS256", "ES256", "EdDSA", "PS256"]}),
        timeouts(),
    )
    .await;
    for key in [&rsa, &ec, &ed, &ps] {
        let token = key.sign(&h.claims());
        let id = h
            .auth(&token)
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e:?}", key.alg));
        assert_eq!(&*id.subject, "workload-1");
        assert_eq!(id.email.as_deref(), Some("ci@example.com"));
        assert!(id.has_group("deployers") && id.has_group("ci"));
        assert_eq!(&*id.issuer_url, h.issuer);
        assert_eq!(id.method.source_name(), "accept");
        assert_eq!(id.expires_at, NOW + 300);
        assert_eq!(id.claims["aud"], "warden");
        // Presented again: the very same identity, from the cache.
        let again = h.auth(&token).await.unwrap();
        assert!(Arc::ptr_eq(&id, &again));
    }
    assert_eq!(h.auth.cached_tokens(), 4);
    assert_eq!(h.authn("ok"), 8);
}

#[tokio::test]
async fn es384_needs_to_be_allowed_explicitly() {
    let p384 = TestKey::load("ec-p384.pem", JwtAlg::ES384, "p384");
    let h = Harness::start("es384-default", &[&p384]).await;
    let token = p384.sign(&h.claims());
    assert_eq!(h.refused(&token).await, "unsupported_algorithm");
    let h = Harness::start_with(
        "es384",
        &[&p384],
        json!({"algorithms": ["ES384"]}),
        timeouts(),
    )
    .await;
    assert!(h.auth(&p384.sign(&h.claims())).await.is_ok());
}

#[tokio::test]
async fn alg_none_is_refused() {
    let rsa = TestKey::rsa_a();
    let h = Harness::start("alg-none", &[&rsa]).await;
    for header in [
        json!({"alg": "none"}),
        json!({"alg": "none", "kid": "rsa-a"}),
    ] {
        let token = format!("{}.{}.", b64(&header), b64(&h.claims()));
        assert_eq!(h.refused(&token).await, "unsupported_algorithm");
    }
    assert_eq!(h.authn("unsupported_algorithm"), 2);
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let rsa = TestKey::rsa_a();
    let h = Harness::start("key-confusion", &[&rsa]).await;
    let public_pem = fixture("rsa2048-a.pub.pem");
    let n = URL_SAFE_NO_PAD
        .decode(rsa.jwk["n"].as_str().unwrap())
        .unwrap();
    for secret in [public_pem.as_slice(), n.as_slice()] {
        let mut header = Header::new(JwtAlg::HS256);
        header.kid = Some("rsa-a".into());
        let token = sign_with(&header, &EncodingKey::from_secret(secret), &h.claims());
        assert_eq!(h.refused(&token).await, "unsupported_algorithm");
    }
    assert_eq!(h.auth.cached_tokens(), 0);
}

#[tokio::test]
async fn tampered_payload_and_header_fail_the_signature() {
    let rsa = TestKey::rsa_a();
    let h = Harness::start("tamper", &[&rsa]).await;
    let token = rsa.sign(&h.claims());
    let p = parts(&token);
    let mut admin = h.claims();
    admin["groups"] = json!(["admins"]);
    let payload_swapped = format!("{}.{}.{}", p[0], b64(&admin), p[2]);
    assert_eq!(h.refused(&payload_swapped).await, "bad_signature");
    let header_swapped = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "RS256", "kid": "rsa-a", "typ": "JWT", "x": 1})),
        p[1],
        p[2]
    );
    assert_eq!(h.refused(&header_swapped).await, "bad_signature");
    // A flipped signature byte.
    let mut sig = URL_SAFE_NO_PAD.decode(&p[2]).unwrap();
    sig[10] ^= 1;
    let sig_flipped = format!("{}.{}.{}", p[0], p[1], URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(h.refused(&sig_flipped).await, "bad_signature");
    assert!(h.auth(&token).await.is_ok());
}

#[tokio::test]
async fn a_kid_naming_another_key_fails_the_signature() {
    let (a, b) = (TestKey::rsa_a(), TestKey::rsa_b());
    let h = Harness::start("wrong-kid", &[&a, &b]).await;
    let mut header = a.header();
    header.kid = Some("rsa-b".into());
    let token = sign_with(&header, &a.encoding, &h.claims());
    assert_eq!(h.refused(&token).await, "bad_signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_triggers_exactly_one_refetch_for_concurrent_requests() {
    let a = TestKey::rsa_a();
    let h = Harness::start("unknown-kid", &[&a]).await;
    assert_eq!(h.server.jwks_hits(), 1);
    let mut header = a.header();
    header.kid = Some("nobody".into());
    let token = sign_with(&header, &a.encoding, &h.claims());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (auth, token, id) = (h.auth.clone(), token.clone(), h.id);
        tasks.push(tokio::spawn(async move {
            auth.authenticate(&token, &[id]).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap_err(), BearerError::UnknownKey);
    }
    assert_eq!(h.server.jwks_hits(), 2, "one refetch for all of them");
    // Within the cooldown, more unknown kids do not refetch.
    assert_eq!(h.refused(&token).await, "unknown_key");
    h.clock.advance_secs(29);
    assert_eq!(h.refused(&token).await, "unknown_key");
    assert_eq!(h.server.jwks_hits(), 2);
    h.clock.advance_secs(1);
    assert_eq!(h.refused(&token).await, "unknown_key");
    assert_eq!(h.server.jwks_hits(), 3);
    assert_eq!(h.authn("unknown_key"), 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_in_key_is_picked_up_by_one_refetch_without_restart() {
    let (a, b) = (TestKey::rsa_a(), TestKey::rsa_b());
    let h = Harness::start("rotate-in", &[&a]).await;
    h.server.set_jwks(jwks(&[&a, &b]));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut c = h.claims();
        c["sub"] = json!(format!("w{i}"));
        let (auth, token, id) = (h.auth.clone(), b.sign(&c), h.id);
        tasks.push(tokio::spawn(async move {
            auth.authenticate(&token, &[id]).await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    assert_eq!(h.server.jwks_hits(), 2);
    assert!(h.auth(&a.sign(&h.claims())).await.is_ok());
}

#[tokio::test]
async fn a_key_removed_by_rotation_stops_its_cached_tokens() {
    let (a, b) = (TestKey::rsa_a(), TestKey::rsa_b());
    let h = Harness::start("rotate-out", &[&a, &b]).await;
    let old = a.sign(&h.claims());
    let new = b.sign(&h.claims());
    assert!(h.auth(&old).await.is_ok());
    assert!(h.auth(&new).await.is_ok());
    assert_eq!(h.auth.cached_tokens(), 2);
    h.server.set_jwks(jwks(&[&b]));
    assert_eq!(
        h.auth.refresh_now(h.id).await.unwrap().unwrap(),
        RefreshOutcome::Changed
    );
    assert_eq!(
        h.auth.cached_tokens(),
        1,
        "the token of the removed key was purged"
    );
    assert_eq!(h.refused(&old).await, "unknown_key");
    assert!(h.auth(&new).await.is_ok());
}

#[tokio::test]
async fn time_and_claim_rules_refuse_with_their_codes() {
    let a = TestKey::rsa_a();
    let h = Harness::start("claims", &[&a]).await;
    let with = |k: &str, v: Value| {
        let mut c = h.claims();
        c[k] = v;
        a.sign(&c)
    };
    let without = |k: &str| {
        let mut c = h.claims();
        c.as_object_mut().unwrap().remove(k);
        a.sign(&c)
    };
    assert_eq!(h.refused(&with("exp", json!(NOW - 31))).await, "expired");
    assert_eq!(
        h.refused(&with("nbf", json!(NOW + 60))).await,
        "not_yet_valid"
    );
    assert_eq!(h.refused(&without("exp")).await, "missing_exp");
    assert_eq!(
        h.refused(&with("aud", json!("someone-else"))).await,
        "bad_audience"
    );
    assert_eq!(h.refused(&without("sub")).await, "missing_claim");
    assert_eq!(
        h.refused(&with("iss", json!("https://elsewhere.test")))
            .await,
        "unknown_issuer"
    );
    // Nothing refused was cached.
    assert_eq!(h.auth.cached_tokens(), 0);
    assert_eq!(h.authn("expired"), 1);
    assert!(
        AUTHN_TOTAL
            .with_label_values(&["bearer", "unknown", "unknown_issuer"])
            .get()
            >= 1
    );
}

#[tokio::test]
async fn cached_tokens_expire_with_the_clock() {
    let a = TestKey::rsa_a();
    let h = Harness::start("cache-expiry", &[&a]).await;
    let token = a.sign(&h.claims());
    assert!(h.auth(&token).await.is_ok());
    h.clock.advance_secs(300 + 29);
    assert!(h.auth(&token).await.is_ok(), "within the skew");
    h.clock.advance_secs(1);
    assert_eq!(h.refused(&token).await, "expired");
    assert_eq!(h.auth.cached_tokens(), 0);
}

#[tokio::test]
async fn expired_cache_entries_are_swept() {
    let a = TestKey::rsa_a();
    let h = Harness::start("cache-sweep", &[&a]).await;
    let mut c = h.claims();
    assert!(h.auth(&a.sign(&c)).await.is_ok());
    c["exp"] = json!(NOW + 3000);
    assert!(h.auth(&a.sign(&c)).await.is_ok());
    h.clock.advance_secs(1000);
    assert_eq!(h.auth.sweep_expired(), 1);
    assert_eq!(h.auth.cached_tokens(), 1);
}

#[tokio::test]
async fn malformed_huge_and_bomb_tokens_are_refused_cheaply() {
    let a = TestKey::rsa_a();
    let h = Harness::start("malformed", &[&a]).await;
    let token = a.sign(&h.claims());
    let p = parts(&token);
    for bad in [
        format!("{}.{}.{}!", p[0], p[1], p[2]),
        format!("{}=.{}.{}", p[0], p[1], p[2]),
        format!("{}.{}", p[0], p[1]),
        "not a token".to_string(),
        String::new(),
    ] {
        assert_eq!(h.refused(&bad).await, "malformed", "{bad}");
    }
    let huge = format!("{}.{}.{}", p[0], "A".repeat(17 * 1024), p[2]);
    assert_eq!(h.refused(&huge).await, "token_too_large");
    // A nesting bomb, even validly signed, is refused by the parser's limits.
    let mut bomb: Value = json!(1);
    for _ in 0..1000 {
        bomb = json!([bomb]);
    }
    let mut c = h.claims();
    c["x"] = bomb;
    assert_eq!(h.refused(&a.sign(&c)).await, "malformed");
    let header_bomb = format!("{}{}", "[".repeat(500), "]".repeat(500));
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","x":{header_bomb}}}"#));
    assert_eq!(
        h.refused(&format!("{header}.{}.{}", p[1], p[2])).await,
        "malformed"
    );
    assert_eq!(h.server.jwks_hits(), 1, "no refetch for garbage");
}

#[tokio::test]
async fn a_cached_token_is_refused_on_a_route_not_accepting_its_issuer() {
    let a = TestKey::rsa_a();
    let server = JwksServer::start(jwks(&[&a])).await;
    let url = json!({"jwks_url": server.url("/jwks.json")});
    let confs = [
        conf("route-a", "https://route-a.test", url.clone()),
        conf("route-b", "https://route-b.test", url),
    ];
    let auth = BearerAuth::start_with(&confs, 100, ManualClock::at_secs(NOW), None, timeouts())
        .await
        .unwrap();
    let (ia, ib) = (
        auth.issuer_index("route-a").unwrap(),
        auth.issuer_index("route-b").unwrap(),
    );
    let token = a.sign(&claims("https://route-a.test", NOW));
    assert!(auth.authenticate(&token, &[ia]).await.is_ok());
    assert_eq!(auth.cached_tokens(), 1);
    assert_eq!(
        auth.authenticate(&token, &[ib]).await.unwrap_err(),
        BearerError::UnknownIssuer
    );
    assert_eq!(
        auth.authenticate(&token, &[]).await.unwrap_err(),
        BearerError::UnknownIssuer
    );
    assert!(auth.authenticate(&token, &[ib, ia]).await.is_ok());
}

#[tokio::test]
async fn a_down_endpoint_leaves_the_cached_keys_working() {
    let a = TestKey::rsa_a();
    let h = Harness::start("down", &[&a]).await;
    h.server.stop();
    assert!(h.auth.refresh_now(h.id).await.unwrap().is_err());
    assert!(
        JWKS_REFRESH_TOTAL
            .with_label_values(&["down", "error"])
            .get()
            >= 1
    );
    // A fresh token (not cached) with a known kid verifies with the last good keys.
    let mut c = h.claims();
    c["sub"] = json!("fresh");
    assert_eq!(&*h.auth(&a.sign(&c)).await.unwrap().subject, "fresh");
    assert!(h.auth.keys_loaded(h.id));
    // After the failure the schedule backs off briefly instead of waiting a full interval.
    assert!(h.auth.refresh_interval(h.id).unwrap() < Duration::from_secs(600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_does_not_block_requests_with_known_kids() {
    let a = TestKey::rsa_a();
    let t = Timeouts {
        unknown_key_wait: Duration::from_millis(200),
        ..timeouts()
    };
    let h = Harness::start_with("hang", &[&a], json!({}), t).await;
    h.server.hang();
    let (auth, id) = (h.auth.clone(), h.id);
    let refresh = tokio::spawn(async move { auth.refresh_now(id).await });
    let mut c = h.claims();
    c["sub"] = json!("while-hanging");
    let known = tokio::time::timeout(Duration::from_secs(60), h.auth(&a.sign(&c)))
        .await
        .expect("a known kid never waits on the key fetch");
    assert_eq!(&*known.unwrap().subject, "while-hanging");
    // An unknown kid waits for the refetch only as long as configured.
    let mut header = a.header();
    header.kid = Some("unknown".into());
    let unknown = sign_with(&header, &a.encoding, &h.claims());
    assert_eq!(h.refused(&unknown).await, "unknown_key");
    refresh.abort();
}

#[tokio::test]
async fn start_does_not_wait_forever_for_a_hanging_endpoint() {
    let a = TestKey::rsa_a();
    let server = JwksServer::start(jwks(&[&a])).await;
    server.hang();
    let t = Timeouts {
        startup: Duration::from_millis(200),
        unknown_key_wait: Duration::from_millis(50),
        ..timeouts()
    };
    let c = conf(
        "slow-start",
        "https://slow-start.test",
        json!({"jwks_url": server.url("/jwks.json")}),
    );
    let (auth, id) = start_one_with(c, t).await;
    assert!(!auth.keys_loaded(id));
    let token = a.sign(&claims("https://slow-start.test", NOW));
    assert_eq!(
        auth.authenticate(&token, &[id]).await.unwrap_err(),
        BearerError::NoKeys
    );
}

#[tokio::test]
async fn cache_control_max_age_sets_the_refresh_schedule_within_bounds() {
    let a = TestKey::rsa_a();
    let h = Harness::start_with(
        "max-age",
        &[&a],
        json!({"refresh_interval": "7m"}),
        timeouts(),
    )
    .await;
    assert_eq!(
        h.auth.refresh_interval(h.id),
        Some(Duration::from_secs(420))
    );
    for (header, want) in [
        (Some("public, max-age=120"), 120),
        (Some("max-age=5"), 30),
        (Some("max-age=999999"), 86_400),
        (Some("no-store"), 30),
        (None, 420),
    ] {
        h.server.set_cache_control(header);
        let before = h.server.jwks_hits();
        assert_eq!(
            h.auth.refresh_now(h.id).await.unwrap().unwrap(),
            RefreshOutcome::Unchanged
        );
        assert_eq!(h.server.jwks_hits(), before + 1);
        assert_eq!(
            h.auth.refresh_interval(h.id),
            Some(Duration::from_secs(want)),
            "{header:?}"
        );
    }
}

#[tokio::test]
async fn etags_make_refreshes_conditional() {
    let a = TestKey::rsa_a();
    let server = JwksServer::start(jwks(&[&a])).await;
    server.set_etag(Some("\"v1\""));
    server.set_cache_control(Some("max-age=60"));
    let c = conf(
        "etag",
        "https://etag.test",
        json!({"jwks_url": server.url("/jwks.json")}),
    );
    let (auth, id) = start_one(c).await;
    assert_eq!(
        auth.refresh_now(id).await.unwrap().unwrap(),
        RefreshOutcome::NotModified
    );
    assert_eq!((server.jwks_hits(), server.not_modified()), (1, 1));
    assert_eq!(auth.refresh_interval(id), Some(Duration::from_secs(60)));
    assert_eq!(
        JWKS_REFRESH_TOTAL
            .with_label_values(&["etag", "not_modified"])
            .get(),
        1
    );
    assert!(auth.keys_loaded(id));
}

#[tokio::test]
async fn discovery_finds_the_jwks_and_checks_the_issuer() {
    let a = TestKey::rsa_a();
    let server = JwksServer::start(jwks(&[&a])).await;
    let c = conf("discovered", &server.base, json!({}));
    let (auth, id) = start_one(c).await;
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 1));
    let token = a.sign(&claims(&server.base, NOW));
    assert!(auth.authenticate(&token, &[id]).await.is_ok());
    // The discovered JWKS URL is remembered across refreshes.
    auth.refresh_now(id).await.unwrap().unwrap();
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 2));

    let imposter = JwksServer::start(jwks(&[&a])).await;
    imposter.set_issuer("https://someone-else.test");
    let c = conf("imposter", &imposter.base, json!({}));
    let (auth, id) = start_one(c).await;
    assert!(!auth.keys_loaded(id));
    assert_eq!(imposter.jwks_hits(), 0);
}

#[tokio::test]
async fn kubernetes_service_account_tokens() {
    let a = TestKey::rsa_a();
    let server = JwksServer::start(jwks(&[&a])).await;
    server.require_bearer("sa-token-1");
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), "sa-token-1\n").unwrap();
    let issuer = "https://kubernetes.default.svc.cluster.local";
    let c = conf(
        "cluster",
        issuer,
        json!({"kind": "kubernetes", "api_server": server.base,
               "ca_file": format!("{FIXTURES}ca.pem"), "token_file": token_file.path()}),
    );
    let (auth, id) = start_one(c).await;
    assert!(auth.keys_loaded(id));
    let mut c = claims(issuer, NOW);
    c["sub"] = json!("system:serviceaccount:ci:builder");
    c["kubernetes.io"] = json!({"namespace": "ci", "serviceaccount": {"name": "builder"}});
    let identity = auth.authenticate(&a.sign(&c), &[id]).await.unwrap();
    let k8s = identity.kubernetes.as_ref().unwrap();
    assert_eq!((&*k8s.namespace, &*k8s.service_account), ("ci", "builder"));
    assert!(identity.has_group("system:serviceaccounts:ci"));
    // A user token of the same cluster is not a workload identity.
    c["sub"] = json!("alice");
    assert_eq!(
        auth.authenticate(&a.sign(&c), &[id]).await.unwrap_err(),
        BearerError::MissingClaim
    );
    // The token file is re-read on every fetch (projected tokens rotate).
    std::fs::write(token_file.path(), "sa-token-2").unwrap();
    server.require_bearer("sa-token-2");
    auth.refresh_now(id).await.unwrap().unwrap();
    assert_eq!(
        server.authorizations(),
        vec![
            Some("Bearer sa-token-1".to_string()),
            Some("Bearer sa-token-2".to_string())
        ]
    );
}

#[tokio::test]
async fn a_reload_reuses_unchanged_key_caches() {
    let a = TestKey::rsa_a();
    let server = JwksServer::start(jwks(&[&a])).await;
    let clock = ManualClock::at_secs(NOW);
    let url = json!({"jwks_url": server.url("/jwks.json")});
    let first = [conf("reload", "https://reload.test", url.clone())];
    let auth = BearerAuth::start_with(&first, 10, clock.clone(), None, timeouts())
        .await
        .unwrap();
    assert_eq!(server.jwks_hits(), 1);
    // New audiences, same key source: the keys are reused, not refetched.
    let mut second = first.clone();
    second[0].audiences.push("other".into());
    let reloaded = BearerAuth::start_with(&second, 10, clock.clone(), Some(&auth), timeouts())
        .await
        .unwrap();
    assert_eq!(server.jwks_hits(), 1);
    let id = reloaded.issuer_index("reload").unwrap();
    let mut c = claims("https://reload.test", NOW);
    c["aud"] = json!("other");
    assert!(reloaded.authenticate(&a.sign(&c), &[id]).await.is_ok());
    drop(auth);
    // A changed key source is fetched anew.
    let mut third = second.clone();
    third[0].refresh_interval = "20m".parse().unwrap();
    let _third = BearerAuth::start_with(&third, 10, clock, Some(&reloaded), timeouts())
        .await
        .unwrap();
    assert_eq!(server.jwks_hits(), 2);
}

#[tokio::test]
async fn a_static_jwks_file_serves_keys() {
    let ed = TestKey::ed25519();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), jwks(&[&ed])).unwrap();
    let c = conf("static", "static-issuer", json!({"jwks_file": file.path()}));
    let (auth, id) = start_one(c).await;
    assert!(auth
        .authenticate(&ed.sign(&claims("static-issuer", NOW)), &[id])
        .await
        .is_ok());
}

#[tokio::test]
async fn start_reports_conf_and_file_problems_with_paths() {
    let clock = ManualClock::at_secs(NOW);
    let bad = conf("x", "https://x.test", json!({"audiences": []}));
    let errors = BearerAuth::start(&[bad], 10, clock.clone(), None)
        .await
        .unwrap_err();
    assert_eq!(errors[0].path, "[0].audiences");

    let garbage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(garbage.path(), "{\"keys\": [{\"kty\": \"oct\"}]}").unwrap();
    let weak = tempfile::NamedTempFile::new().unwrap();
    let rsa1024 = TestKey::load("rsa1024.pem", JwtAlg::RS256, "weak");
    std::fs::write(weak.path(), jwks(&[&rsa1024])).unwrap();
    let confs = [
        conf(
            "ok",
            "https://ok.test",
            json!({"jwks_file": garbage.path()}),
        ),
        conf(
            "weak",
            "https://weak.test",
            json!({"jwks_file": weak.path()}),
        ),
        conf(
            "ca",
            "https://ca.test",
            json!({"jwks_url": "https://ca.test/jwks", "ca_file": "/nonexistent/ca.pem"}),
        ),
    ];
    let errors = BearerAuth::start(&confs, 10, clock, None)
        .await
        .unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["[0].jwks_file", "[1].jwks_file", "[2].ca_file"]);
    assert!(errors[1].message.contains("too small"), "{}", errors[1]);
}

#[tokio::test]
async fn verify_with_keys_serves_logout_tokens_and_reports_bad_issuers() {
    let a = TestKey::rsa_a();
    let keys = KeySet::from_jwks_json(jwks(&[&a]).as_bytes()).unwrap();
    let rules = ValidationRules::new("https://idp.test", vec!["warden".into()]);
    let mut header = a.header();
    header.typ = Some("logout+jwt".into());
    let mut c = claims("https://idp.test", NOW);
    c["events"] = json!({"http://schemas.openid.net/event/backchannel-logout": {}});
    let token = sign_with(&header, &a.encoding, &c);
    let verified = verify_with_keys(&token, &keys, &rules, NOW).unwrap();
    assert_eq!(verified.typ.as_deref(), Some("logout+jwt"));
    assert_eq!(verified.kid.as_deref(), Some("rsa-a"));
    assert_eq!(verified.exp, NOW + 300);
    assert_eq!(verified.claims["sub"], "workload-1");
    let other = a.sign(&claims("https://other.test", NOW));
    assert_eq!(
        verify_with_keys(&other, &keys, &rules, NOW).unwrap_err(),
        BearerError::BadIssuer
    );
    assert_eq!(
        verify_with_keys(&token, &keys, &rules, NOW + 1000).unwrap_err(),
        BearerError::Expired
    );
}
