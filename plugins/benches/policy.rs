//! Policy decisions and path normalisation, the two per-request steps of authorisation.
//!
//! 1,000 route policies of 10 rules each (groups, email domain, method + path prefix, a deny on
//! /admin, a claim, a glob), a caller in 50 groups; each iteration evaluates the policy of the
//! next route, so the working set is not one hot policy. Target: under 1 µs per decision.

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::hint::black_box;
use warden_plugins::identity::{AuthMethod, Identity};
use warden_plugins::path::normalize;
use warden_plugins::policy::{CompiledPolicy, PolicyConf, RequestFacts};

const ROUTES: usize = 1_000;

fn route_policy(i: usize) -> CompiledPolicy {
    let conf: PolicyConf = serde_json::from_value(json!({
        "deny": [
            { "path_prefix": "/admin", "not": { "groups": ["admins"] } },
            { "method": "DELETE", "not": { "groups": [format!("team-{i}-owners")] } }
        ],
        "allow": [
            { "groups": [format!("team-{i}")] },
            { "groups": ["sre", "oncall"] },
            { "name": "readonly-staff",
              "and": [{ "email_domain": "example.com" }, { "method": ["GET", "HEAD"] }] },
            { "method": ["POST", "PUT"], "path_prefix": format!("/api/team-{i}"),
              "groups": [format!("team-{i}-writers")] },
            { "claim": { "path": "realm.roles", "contains": format!("route-{i}-admin") } },
            { "name": "ci", "issuer": "ci", "path_glob": "/api/*/deploy" },
            { "email": [format!("lead-{i}@example.com")] },
            { "groups_all": ["eng", "platform"], "path_prefix": "/api" }
        ]
    }))
    .expect("bench policy parses");
    CompiledPolicy::compile(&conf).expect("bench policy compiles")
}

fn caller() -> Identity {
    // 50 groups: two that the last allow rule needs, some that policies name, most unknown.
    let mut groups: Vec<String> = vec!["eng".into(), "platform".into()];
    groups.extend((0..24).map(|k| format!("team-{}", 2_000 + k * 7)));
    groups.extend((0..24).map(|k| format!("directory-group-{k}")));
    Identity::new(
        "user-42",
        "https://idp.example.com",
        AuthMethod::Session {
            provider: "corp".into(),
            session_id: "s".into(),
        },
    )
    .with_email(Some("user-42@example.com"))
    .with_groups(groups)
    .with_claims(json!({ "realm": { "roles": ["viewer", "route-9999-admin"] } }))
}

fn bench_policy(c: &mut Criterion) {
    let policies: Vec<CompiledPolicy> = (0..ROUTES).map(route_policy).collect();
    let id = caller();
    let ip = "10.1.2.3".parse().expect("address");
    let facts = |method, path| RequestFacts {
        method,
        path,
        client_ip: ip,
        client_cert: None,
        cors_preflight: false,
        now_secs: 1_736_164_800,
    };

    let cases = [
        // Walks both denies and six allow rules before the last one allows.
        ("allow_after_8_rules", facts("POST", "/api/orders")),
        // Allowed by the named read-only rule.
        ("allow_readonly", facts("GET", "/docs/intro")),
        // Denied by the first rule.
        ("deny_admin", facts("GET", "/admin/users")),
        // Nothing matches: every rule is tried.
        ("default_deny", facts("PATCH", "/other")),
    ];
    for (name, f) in &cases {
        let mut next = 0usize;
        c.bench_function(&format!("policy/evaluate/{name}"), |b| {
            b.iter(|| {
                next = (next + 1) % ROUTES;
                black_box(policies[next].evaluate(black_box(f), Some(&id)))
            })
        });
    }
    // For comparison: one route's policy, hot in cache.
    let f = facts("POST", "/api/orders");
    c.bench_function("policy/evaluate/allow_after_8_rules_one_route", |b| {
        b.iter(|| black_box(policies[7].evaluate(black_box(&f), Some(&id))))
    });
    let mut next = 0usize;
    c.bench_function("policy/explain/allow_after_8_rules", |b| {
        b.iter(|| {
            next = (next + 1) % ROUTES;
            black_box(policies[next].explain(black_box(&f), Some(&id)))
        })
    });
}

fn bench_path(c: &mut Criterion) {
    c.bench_function("path/normalize/normal", |b| {
        b.iter(|| {
            black_box(normalize(black_box(
                "/api/v1/users/12345/profile%20photo.png",
            )))
        })
    });
    c.bench_function("path/normalize/abnormal", |b| {
        b.iter(|| {
            black_box(normalize(black_box(
                "/api//v1/./users/%61bc/../12345/profile%2fphoto.png",
            )))
        })
    });
}

criterion_group!(benches, bench_policy, bench_path);
criterion_main!(benches);
