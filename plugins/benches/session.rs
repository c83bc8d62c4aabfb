//! Session hot paths: store lookups with 1,000,000 sessions held, and the cookie work a request
//! does before the lookup.
//!
//! `cargo bench -p warden-plugins --bench session`

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::sync::Arc;
use warden_plugins::clock::ManualClock;
use warden_plugins::session::cookie::{parse_unverified, purpose};
use warden_plugins::session::{
    cookie_header, BlockList, CookieSecret, MemoryStore, NewSession, Profile, Secret, Session,
    SessionId, SessionLifetime, SessionStore, Tokens,
};
use warden_plugins::{AuthMethod, Identity};

const SESSIONS: usize = 1_000_000;
const T0: i64 = 1_700_000_000;
const LIFE: SessionLifetime = SessionLifetime {
    ttl_secs: 12 * 3600,
    idle_timeout_secs: 3600,
};

fn new_session(i: usize, groups: &[String]) -> NewSession {
    NewSession {
        provider: "corp".into(),
        issuer_url: "https://idp.example.com/realms/corp".into(),
        subject: format!("{i:020}").into(),
        sid: Some(format!("{i:036}").into()),
        profile: Profile {
            email: Some(format!("user{i}@example.com")),
            name: Some(format!("User Number {i}")),
            groups: groups.to_vec(),
            claims: serde_json::Value::Null,
        },
        tokens: Tokens {
            refresh_token: Some(Secret::new("r".repeat(40))),
            access_token: Some(Secret::new("a".repeat(40))),
            access_token_expires_at: Some(T0 + 300),
        },
    }
}

/// A full store and 4096 of its ids.
fn full_store() -> (MemoryStore, Vec<SessionId>) {
    let store = MemoryStore::with_capacity(SESSIONS, ManualClock::at_secs(T0));
    let groups: Vec<String> = (0..10)
        .map(|g| format!("team-{g:02}-engineering"))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut sample = Vec::with_capacity(4096);
    rt.block_on(async {
        for i in 0..SESSIONS {
            let s = Arc::new(Session::create(new_session(i, &groups), T0, LIFE).expect("rng"));
            if i % (SESSIONS / 4096) == 0 && sample.len() < 4096 {
                sample.push(*s.id());
            }
            store.insert(s).await.expect("memory store");
        }
    });
    (store, sample)
}

fn store_lookups(c: &mut Criterion) {
    let (store, ids) = full_store();
    let misses: Vec<SessionId> = (0..4096)
        .map(|_| SessionId::generate().expect("rng"))
        .collect();
    let mut i = 0;
    c.bench_function("session/get_local hit (1M sessions)", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(store.get_local(black_box(&ids[i]), T0 + 1))
        })
    });
    c.bench_function("session/get_local miss (1M sessions)", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(store.get_local(black_box(&misses[i]), T0 + 1))
        })
    });
}

fn cookies(c: &mut Criterion) {
    let key = CookieSecret::new(&[42u8; 32])
        .expect("32 bytes")
        .key(purpose::SESSION);
    let value = key.encode(&SessionId::generate().expect("rng"));
    let header = format!(
        "_ga=GA1.2.1234567890.1700000000; theme=dark; __Host-warden_session={value}; lang=en"
    );
    c.bench_function("cookie/verify (HMAC-SHA256)", |b| {
        b.iter(|| black_box(key.decode(black_box(&value))))
    });
    c.bench_function("cookie/parse_unverified", |b| {
        b.iter(|| black_box(parse_unverified(black_box(&value))))
    });
    c.bench_function("cookie/find in a 4-cookie header", |b| {
        b.iter(|| {
            black_box(
                cookie_header::find(black_box(header.as_bytes()), "__Host-warden_session").next(),
            )
        })
    });
    c.bench_function("cookie/strip from a 4-cookie header", |b| {
        b.iter(|| {
            black_box(cookie_header::strip(
                black_box(header.as_bytes()),
                &["__Host-warden_session", "__Host-warden_login"],
            ))
        })
    });
}

fn blocks(c: &mut Criterion) {
    let id = Identity::new(
        "00000000000000000042",
        "https://idp",
        AuthMethod::Bearer {
            issuer: "ci".into(),
        },
    )
    .with_email(Some("user42@example.com"));
    let empty = BlockList::new();
    c.bench_function("blocks/is_blocked, empty list", |b| {
        b.iter(|| black_box(empty.is_blocked(black_box(&id), T0)))
    });
    let some = BlockList::new();
    for i in 0..100 {
        some.block(&format!("user{i}@other.example"), None);
    }
    c.bench_function("blocks/is_blocked, 100 blocks, not blocked", |b| {
        b.iter(|| black_box(some.is_blocked(black_box(&id), T0)))
    });
}

criterion_group!(benches, cookies, blocks, store_lookups);
criterion_main!(benches);
