//! Verified bearer tokens, so a token presented again costs a hash lookup and a comparison,
//! not a signature check.
//!
//! Keys are a keyed hash of the token (ahash with per-process random keys, so collisions
//! cannot be aimed; SipHash cost four times as much per lookup) taken over its length and its
//! last bytes, which are signature bytes and so already differ between tokens: hashing the
//! whole token would cost more than the rest of a hit. Each entry keeps the whole token and a
//! hit compares it exactly. Entries die at the token's expiry (checked on lookup and swept
//! periodically) and when the key that verified them leaves the issuer's key set. The cache
//! is sharded and bounded; a full shard evicts the least recently used of a small sample
//! (approximate LRU).

use super::IssuerId;
use crate::identity::Identity;
use crate::metrics::TOKEN_CACHE_ENTRIES;
use ahash::RandomState;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Entries compared when a full shard must evict one.
const EVICTION_SAMPLE: usize = 8;
const MAX_SHARDS: usize = 64;
/// Shards are only split off for caches this large, so small caches stay exact.
const MIN_SHARD_CAPACITY: usize = 256;
/// How much of a token's end (its signature) is hashed.
const HASHED_TAIL: usize = 64;

/// The map keys are already uniform random hashes: pass them through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in rather than lose it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, Entry, BuildHasherDefault<PassThrough>>;

struct Entry {
    token: Box<str>,
    identity: Arc<Identity>,
    issuer: IssuerId,
    /// The `kid` of the token header, kept for diagnostics.
    #[allow(dead_code)]
    kid: Option<Box<str>>,
    key_fingerprint: u64,
    /// Unix seconds from which the token no longer verifies (`exp` + skew).
    valid_until: i64,
    last_used: AtomicI64,
}

/// What a cache hit yields.
pub(crate) struct Hit {
    pub identity: Arc<Identity>,
    pub issuer: IssuerId,
    pub key_fingerprint: u64,
}

/// A verified token to remember.
pub(crate) struct NewEntry<'a> {
    pub token: &'a str,
    pub identity: Arc<Identity>,
    pub issuer: IssuerId,
    pub kid: Option<&'a str>,
    pub key_fingerprint: u64,
    pub valid_until: i64,
}

pub(crate) struct TokenCache {
    hasher: RandomState,
    shards: Box<[RwLock<Shard>]>,
    shard_capacity: usize,
    len: AtomicUsize,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0 disables it).
    pub(crate) fn new(capacity: usize) -> Self {
        let shards = (capacity / MIN_SHARD_CAPACITY)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two();
        Self {
            hasher: RandomState::new(),
            shards: (0..shards).map(|_| RwLock::new(Shard::default())).collect(),
            shard_capacity: capacity.div_ceil(shards),
            len: AtomicUsize::new(0),
        }
    }

    fn locate(&self, token: &str) -> (u64, &RwLock<Shard>) {
        let tail = &token.as_bytes()[token.len().saturating_sub(HASHED_TAIL)..];
        let h = self.hasher.hash_one((token.len(), tail));
        // The map uses the low bits (buckets) and the top 7 (tags); pick shards in between.
        let shard = (h >> 32) as usize & (self.shards.len() - 1);
        (h, &self.shards[shard])
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn removed(&self, n: usize) {
        if n > 0 {
            self.len.fetch_sub(n, Ordering::Relaxed);
            TOKEN_CACHE_ENTRIES.sub(n as i64);
        }
    }

    /// The entry for exactly `token`, if it is still valid at `now` (Unix seconds).
    pub(crate) fn get(&self, token: &str, now: i64) -> Option<Hit> {
        let (h, shard) = self.locate(token);
        {
            let map = shard.read();
            let e = map.get(&h)?;
            if !same_token(&e.token, token) {
                return None;
            }
            if now < e.valid_until {
                if e.last_used.load(Ordering::Relaxed) != now {
                    e.last_used.store(now, Ordering::Relaxed);
                }
                return Some(Hit {
                    identity: e.identity.clone(),
                    issuer: e.issuer,
                    key_fingerprint: e.key_fingerprint,
                });
            }
        }
        // Expired: drop it now rather than at the next sweep.
        let mut map = shard.write();
        if map
            .get(&h)
            .is_some_and(|e| same_token(&e.token, token) && now >= e.valid_until)
        {
            map.remove(&h);
            drop(map);
            self.removed(1);
        }
        None
    }

    pub(crate) fn remove(&self, token: &str) {
        let (h, shard) = self.locate(token);
        let mut map = shard.write();
        if map.get(&h).is_some_and(|e| same_token(&e.token, token)) {
            map.remove(&h);
            drop(map);
            self.removed(1);
        }
    }

    pub(crate) fn insert(&self, new: NewEntry<'_>, now: i64) {
        if self.shard_capacity == 0 || now >= new.valid_until {
            return;
        }
        let (h, shard) = self.locate(new.token);
        let mut map = shard.write();
        let mut evicted = 0;
        if !map.contains_key(&h) && map.len() >= self.shard_capacity {
            evicted = evict(&mut map, now);
        }
        let replaced = map
            .insert(
                h,
                Entry {
                    token: new.token.into(),
                    identity: new.identity,
                    issuer: new.issuer,
                    kid: new.kid.map(Into::into),
                    key_fingerprint: new.key_fingerprint,
                    valid_until: new.valid_until,
                    last_used: AtomicI64::new(now),
                },
            )
            .is_some();
        drop(map);
        if !replaced {
            self.len.fetch_add(1, Ordering::Relaxed);
            TOKEN_CACHE_ENTRIES.inc();
        }
        self.removed(evicted);
    }

    /// Drops the entries for which `drop_it` holds.
    fn remove_where(&self, drop_it: impl Fn(&Entry) -> bool) -> usize {
        let mut total = 0;
        for shard in self.shards.iter() {
            let mut map = shard.write();
            let before = map.len();
            map.retain(|_, e| !drop_it(e));
            total += before - map.len();
        }
        self.removed(total);
        total
    }

    /// Drops the tokens of `issuer` verified by keys no longer in its key set.
    pub(crate) fn purge_keys(&self, issuer: IssuerId, still_there: impl Fn(u64) -> bool) -> usize {
        self.remove_where(|e| e.issuer == issuer && !still_there(e.key_fingerprint))
    }

    /// Drops the entries expired at `now`.
    pub(crate) fn sweep(&self, now: i64) -> usize {
        self.remove_where(|e| now >= e.valid_until)
    }
}

/// Compares without stopping at the first difference: only a token whose hashed tail matches
/// a cached one gets here, and the time taken must not tell how much of the rest matched.
fn same_token(cached: &str, presented: &str) -> bool {
    let (a, b) = (cached.as_bytes(), presented.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Makes room in a full shard: expired entries of a sample go first, else its least recently
/// used one. Returns how many entries were removed.
fn evict(map: &mut Shard, now: i64) -> usize {
    let mut expired = Vec::new();
    let mut oldest: Option<(u64, i64)> = None;
    for (&h, e) in map.iter().take(EVICTION_SAMPLE) {
        if now >= e.valid_until {
            expired.push(h);
        }
        let used = e.last_used.load(Ordering::Relaxed);
        if oldest.is_none_or(|(_, o)| used < o) {
            oldest = Some((h, used));
        }
    }
    if expired.is_empty() {
        expired.extend(oldest.map(|(h, _)| h));
    }
    for h in &expired {
        map.remove(h);
    }
    expired.len()
}

impl Drop for TokenCache {
    fn drop(&mut self) {
        TOKEN_CACHE_ENTRIES.sub(self.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthMethod;

    fn identity(sub: &str) -> Arc<Identity> {
        Arc::new(Identity::new(
            sub,
            "https://i",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        ))
    }

    fn entry(token: &str, valid_until: i64) -> NewEntry<'_> {
        NewEntry {
            token,
            identity: identity(token),
            issuer: IssuerId(0),
            kid: Some("k"),
            key_fingerprint: 7,
            valid_until,
        }
    }

    #[test]
    fn hits_need_the_exact_token_and_end_at_expiry() {
        let c = TokenCache::new(10);
        c.insert(entry("tok-a", 100), 50);
        let hit = c.get("tok-a", 99).unwrap();
        assert_eq!(&*hit.identity.subject, "tok-a");
        assert_eq!((hit.issuer, hit.key_fingerprint), (IssuerId(0), 7));
        assert!(c.get("tok-b", 99).is_none());
        assert!(c.get("tok-a", 100).is_none());
        assert_eq!(c.len(), 0, "an expired entry is dropped on lookup");
    }

    #[test]
    fn expired_tokens_are_not_inserted_and_sweeps_remove_the_rest() {
        let c = TokenCache::new(10);
        c.insert(entry("old", 10), 10);
        assert_eq!(c.len(), 0);
        c.insert(entry("a", 20), 10);
        c.insert(entry("b", 30), 10);
        assert_eq!(c.sweep(25), 1);
        assert!(c.get("b", 25).is_some());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn capacity_is_bounded_and_recent_entries_survive() {
        let c = TokenCache::new(4);
        for (i, t) in ["t0", "t1", "t2", "t3"].iter().enumerate() {
            c.insert(entry(t, 1000), i as i64);
        }
        // Touch all but t1, which becomes the least recently used.
        for t in ["t0", "t2", "t3"] {
            assert!(c.get(t, 10).is_some());
        }
        c.insert(entry("t4", 1000), 11);
        assert_eq!(c.len(), 4);
        assert!(c.get("t1", 12).is_none());
        assert!(c.get("t4", 12).is_some());
    }

    #[test]
    fn large_caches_stay_bounded_across_shards() {
        let c = TokenCache::new(1000);
        assert!(c.shards.len() > 1);
        for i in 0..5000 {
            c.insert(entry(&format!("token-{i}"), 1000), 1);
        }
        let per_shard_max = c.shard_capacity;
        assert!(c.len() <= c.shards.len() * per_shard_max);
        assert!(c.len() >= 900, "{}", c.len());
    }

    #[test]
    fn tokens_sharing_their_tail_are_told_apart() {
        let c = TokenCache::new(10);
        let tail = "s".repeat(HASHED_TAIL);
        let (a, b) = (format!("a.{tail}"), format!("b.{tail}"));
        c.insert(entry(&a, 100), 1);
        assert!(c.get(&b, 2).is_none());
        c.insert(entry(&b, 100), 1);
        assert_eq!(&*c.get(&b, 2).unwrap().identity.subject, b);
        assert!(c.get(&a, 2).is_none(), "the colliding entry was replaced");
    }

    #[test]
    fn reinserting_replaces_without_growing() {
        let c = TokenCache::new(4);
        c.insert(entry("same", 100), 1);
        c.insert(entry("same", 200), 2);
        assert_eq!(c.len(), 1);
        c.remove("same");
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn purging_drops_only_tokens_of_removed_keys_of_that_issuer() {
        let c = TokenCache::new(10);
        c.insert(entry("k7", 100), 1);
        let mut other_key = entry("k8", 100);
        other_key.key_fingerprint = 8;
        c.insert(other_key, 1);
        let mut other_issuer = entry("i1", 100);
        other_issuer.issuer = IssuerId(1);
        c.insert(other_issuer, 1);
        assert_eq!(c.purge_keys(IssuerId(0), |fp| fp == 8), 1);
        assert!(c.get("k7", 2).is_none());
        assert!(c.get("k8", 2).is_some());
        assert!(c.get("i1", 2).is_some());
    }

    #[test]
    fn a_zero_capacity_cache_holds_nothing() {
        let c = TokenCache::new(0);
        c.insert(entry("t", 100), 1);
        assert!(c.get("t", 2).is_none());
    }
}
