//! Route lookup cost with 10 and 10,000 routes: the index answers with a few hash lookups, so
//! the two should cost about the same (a scan would grow 1,000-fold).

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use warden::routing::{PathMatch, Router};

fn router(routes: usize) -> Router {
    let mut r = Router::new();
    let mut i = 0;
    // Hosts with a few path prefixes each, a wildcard every tenth host, exact paths too.
    for h in 0..routes / 4 {
        let host = format!("svc-{h}.example.com");
        r.insert(&host, &PathMatch::Prefix("/".into()), i);
        r.insert(&host, &PathMatch::Prefix("/api".into()), i + 1);
        r.insert(&host, &PathMatch::Prefix("/api/v2/items".into()), i + 2);
        if h % 10 == 0 {
            r.insert(
                &format!("*.tenant-{h}.example.com"),
                &PathMatch::Prefix("/".into()),
                i + 3,
            );
        } else {
            r.insert(&host, &PathMatch::Exact("/healthz".into()), i + 3);
        }
        i += 4;
    }
    r
}

fn lookups(c: &mut Criterion) {
    for n in [10usize, 10_000] {
        let r = router(n);
        let last = n / 4 - 1;
        let host = format!("svc-{last}.example.com");
        let wild = "shop.tenant-0.example.com";
        let mut g = c.benchmark_group(format!("route_lookup/{n}_routes"));
        g.bench_function("deep_prefix", |b| {
            b.iter(|| r.lookup(black_box(&host), black_box("/api/v2/items/42/parts")))
        });
        g.bench_function("exact", |b| {
            b.iter(|| r.lookup(black_box(&host), black_box("/healthz")))
        });
        g.bench_function("wildcard_host", |b| {
            b.iter(|| r.lookup(black_box(wild), black_box("/cart")))
        });
        g.bench_function("miss", |b| {
            b.iter(|| r.lookup(black_box("nowhere.example.org"), black_box("/")))
        });
        g.finish();
        assert_eq!(r.lookup(&host, "/api/v2/items/42"), Some(4 * last + 2));
        assert_eq!(r.lookup(wild, "/cart"), Some(3));
    }
}

criterion_group!(benches, lookups);
criterion_main!(benches);
