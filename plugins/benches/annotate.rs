//! Per-request annotation cost: what `prepare` + `apply` add to a request whose identity was
//! seen before (the cached path), against minting an assertion on every request, and the
//! pieces on their own.
//!
//! `cargo bench -p warden-plugins --bench annotate`

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::hint::black_box;
use std::sync::Arc;
use warden_plugins::annotate::{
    AssertionSigner, CompiledIdentityHeaders, IdentityHeadersConf, InboundRules, RouteAnnotations,
    RouteAnnotationsConf, SigningAlgorithm, SigningKey,
};
use warden_plugins::clock::ManualClock;
use warden_plugins::{AuthMethod, Identity};

const NOW: i64 = 1_700_000_000;
const COOKIES: &[&str] = &["__Host-warden_session", "__Host-warden_login"];

fn identity() -> Arc<Identity> {
    Arc::new(
        Identity::new(
            "00u1abcdefghijklmnop",
            "https://idp.example.com/realms/corp",
            AuthMethod::Session {
                provider: "corp".into(),
                session_id: "5f3c9a0b1d2e4f60".into(),
            },
        )
        .with_email(Some("jane.doe@example.com"))
        .with_name(Some("Jane Doe"))
        .with_groups((0..20).map(|i| format!("team-{i:02}")))
        .with_claims(serde_json::json!({"tenant": "acme", "level": 3}))
        .with_expiry(NOW + 12 * 3600),
    )
}

/// A browser request as it arrives: a dozen ordinary headers and the session cookie.
fn request() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in [
        ("host", "app.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"),
        ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("referer", "https://app.example.com/dashboards"),
        ("cookie", "__Host-warden_session=v1.abcdefghijklmnopqrstuvwxyz0123456789.sig; theme=dark; _ga=GA1.2.3"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-request-id", "01J9Z3M6Q4W8X2Y7V5T1R0P9N8"),
        ("sec-fetch-mode", "navigate"),
    ] {
        h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
    }
    h
}

fn signer(alg: SigningAlgorithm) -> Arc<AssertionSigner> {
    let key = SigningKey::generate(alg).expect("key");
    Arc::new(
        AssertionSigner::new("https://auth.example.com/", vec![key], alg, 300, None)
            .expect("signer"),
    )
}

fn bench(c: &mut Criterion) {
    let id = identity();
    let es = signer(SigningAlgorithm::ES256);
    let ed = signer(SigningAlgorithm::EdDSA);
    let ih: IdentityHeadersConf = serde_json::from_value(serde_json::json!({
        "claims": {"tenant": "X-Tenant", "level": "X-Level"}
    }))
    .expect("conf");
    let route = RouteAnnotations::compile(
        RouteAnnotationsConf {
            identity_headers: Some(&ih),
            kubernetes: None,
            host: "app.example.com",
            cookie_names: COOKIES,
        },
        Some(&es),
        ManualClock::at_secs(NOW),
    )
    .expect("route");
    let req = request();

    c.bench_function("request clone (baseline)", |b| {
        b.iter(|| black_box(req.clone()))
    });
    c.bench_function("prepare+apply, cached identity and assertion", |b| {
        b.iter(|| {
            let mut h = req.clone();
            let p = route.prepare(Some(&id), NOW).expect("prepare");
            route.apply(&p, &mut h);
            black_box(h)
        })
    });

    let aud = es.audience("app.example.com", None);
    es.assertion(&id, &aud, NOW).expect("warm");
    c.bench_function("assertion, cached", |b| {
        b.iter(|| black_box(es.assertion(&id, &aud, NOW).expect("assertion")))
    });
    c.bench_function("assertion, minted ES256", |b| {
        b.iter(|| black_box(es.mint(&id, "app.example.com", NOW).expect("mint")))
    });
    c.bench_function("assertion, minted EdDSA", |b| {
        b.iter(|| black_box(ed.mint(&id, "app.example.com", NOW).expect("mint")))
    });
    c.bench_function("prepare+apply, minting each time (no cache)", |b| {
        let headers = CompiledIdentityHeaders::compile(&ih).expect("headers");
        let rules = InboundRules::new(COOKIES.iter().copied());
        b.iter(|| {
            let mut h = req.clone();
            rules.apply(&mut h, Some(&id));
            let set = headers.build(&id).expect("build");
            set.write_to(&mut h);
            let token = es.mint(&id, "app.example.com", NOW).expect("mint");
            h.insert(
                HeaderName::from_static("x-warden-jwt-assertion"),
                HeaderValue::from_str(&token).expect("value"),
            );
            black_box(h)
        })
    });
    let headers = CompiledIdentityHeaders::compile(&ih).expect("headers");
    c.bench_function("identity headers, built (no cache)", |b| {
        b.iter(|| black_box(headers.build(&id).expect("build")))
    });
    let rules = InboundRules::new(COOKIES.iter().copied());
    c.bench_function("inbound plan, browser request", |b| {
        b.iter(|| black_box(rules.plan(&req, Some(&id))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
