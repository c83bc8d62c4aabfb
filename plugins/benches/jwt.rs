//! Bearer JWT costs: cold verification per algorithm (no cache), the full `authenticate` miss
//! path with identity building, and a verified-token cache hit.

#[allow(dead_code)]
#[path = "../tests/jwt_support/keys.rs"]
mod keys;

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::Algorithm as JwtAlg;
use keys::{claims, jwks, TestKey};
use serde_json::json;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use warden_plugins::clock::ManualClock;
use warden_plugins::jwt::{
    verify_with_keys, Algorithm, BearerAuth, IssuerId, JwtIssuerConf, KeySet, ValidationRules,
};

const NOW: i64 = 1_700_000_000;
const ISSUER: &str = "https://bench.issuer.test";

/// Polls a future that must not wait (cache hits and verification with loaded keys do not).
fn ready<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("authenticate waited"),
    }
}

fn bearer(rt: &tokio::runtime::Runtime, jwks_file: &std::path::Path, cache: usize) -> BearerAuth {
    let conf: JwtIssuerConf = serde_json::from_value(json!({
        "name": "bench", "issuer": ISSUER, "audiences": ["warden"],
        "jwks_file": jwks_file, "algorithms": ["RS256", "ES256", "EdDSA"],
    }))
    .expect("bench conf");
    rt.block_on(BearerAuth::start(
        &[conf],
        cache,
        ManualClock::at_secs(NOW),
        None,
    ))
    .expect("bench issuer starts")
}

fn benches(c: &mut Criterion) {
    let keys = [TestKey::rsa_a(), TestKey::ec_p256(), TestKey::ed25519()];
    let refs: Vec<&TestKey> = keys.iter().collect();
    let document = jwks(&refs);
    let set = KeySet::from_jwks_json(document.as_bytes()).expect("bench JWKS");
    let mut rules = ValidationRules::new(ISSUER, vec!["warden".into()]);
    rules.algorithms = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
        .into_iter()
        .collect();
    let tokens: Vec<(JwtAlg, String)> = keys
        .iter()
        .map(|k| (k.alg, k.sign(&claims(ISSUER, NOW))))
        .collect();

    let mut cold = c.benchmark_group("verify_cold");
    for (alg, token) in &tokens {
        cold.bench_function(format!("{alg:?}"), |b| {
            b.iter(|| verify_with_keys(black_box(token), &set, &rules, NOW).expect("verifies"))
        });
    }
    cold.finish();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &document).expect("write JWKS");
    let uncached = bearer(&rt, file.path(), 0);
    let cached = bearer(&rt, file.path(), 1000);
    let ids: [IssuerId; 1] = [cached.issuer_index("bench").expect("issuer")];

    let mut miss = c.benchmark_group("authenticate_uncached");
    for (alg, token) in &tokens {
        miss.bench_function(format!("{alg:?}"), |b| {
            b.iter(|| ready(uncached.authenticate(black_box(token), &ids)).expect("authenticates"))
        });
    }
    miss.finish();

    let (_, token) = &tokens[0];
    ready(cached.authenticate(token, &ids)).expect("authenticates");
    c.bench_function("authenticate_cache_hit", |b| {
        b.iter(|| ready(cached.authenticate(black_box(token), &ids)).expect("cache hit"))
    });
}

criterion_group!(jwt, benches);
criterion_main!(jwt);
