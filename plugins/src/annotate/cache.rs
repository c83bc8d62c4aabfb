//! A bounded cache of values computed from one identity (header sets, assertions), so a request
//! whose credential was already seen copies a ready value instead of rebuilding it.
//!
//! Keys are the identity's address plus a 64-bit sub-key (an audience). An identity is built
//! once per session or verified token and shared through an `Arc`, so its address names it; the
//! entry keeps a `Weak` to it, which keeps the allocation (not the identity's contents) alive,
//! so the address cannot be reused by another identity while the entry exists. A new identity
//! for the same caller (a refreshed session) gets new entries; stale ones go in the next sweep.

use crate::identity::Identity;
use ahash::RandomState;
use dashmap::DashMap;
use std::sync::{Arc, Weak};

struct Entry<V> {
    identity: Weak<Identity>,
    value: V,
    /// Unix seconds after which the entry is worthless.
    until: i64,
}

pub(crate) struct IdentityCache<V> {
    /// ahash, not the default SipHash: this map is read on every request, and its keys
    /// (addresses) are not chosen by clients.
    map: DashMap<(usize, u64), Entry<V>, RandomState>,
    capacity: usize,
}

impl<V: Clone> IdentityCache<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: DashMap::with_hasher(RandomState::new()),
            capacity: capacity.max(1),
        }
    }

    fn key(id: &Arc<Identity>, sub: u64) -> (usize, u64) {
        (Arc::as_ptr(id) as usize, sub)
    }

    /// The value and its `until`, if present.
    pub(crate) fn get(&self, id: &Arc<Identity>, sub: u64) -> Option<(V, i64)> {
        self.map
            .get(&Self::key(id, sub))
            .map(|e| (e.value.clone(), e.until))
    }

    /// Stores a value valid until `until`. A full cache first drops entries whose identity is
    /// gone or whose time has passed, then, if still crowded, a random half: the cost of a full
    /// cache is some recomputation, never unbounded memory.
    pub(crate) fn insert(&self, id: &Arc<Identity>, sub: u64, value: V, until: i64, now: i64) {
        if self.map.len() >= self.capacity {
            self.map
                .retain(|_, e| e.until > now && e.identity.strong_count() > 0);
            if self.map.len() >= self.capacity * 3 / 4 {
                self.map.retain(|_, _| fastrand::bool());
            }
        }
        self.map.insert(
            Self::key(id, sub),
            Entry {
                identity: Arc::downgrade(id),
                value,
                until,
            },
        );
    }

    /// The value for `id`, built by `build` and kept for as long as the identity is valid when
    /// it is not there yet.
    pub(crate) fn get_or_build(
        &self,
        id: &Arc<Identity>,
        now: i64,
        build: impl FnOnce() -> V,
    ) -> V {
        if let Some((v, _)) = self.get(id, 0) {
            return v;
        }
        let v = build();
        self.insert(id, 0, v.clone(), id.expires_at, now);
        v
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthMethod;

    fn id(sub: &str) -> Arc<Identity> {
        Arc::new(Identity::new(
            sub,
            "https://idp",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        ))
    }

    #[test]
    fn values_are_per_identity_and_sub_key() {
        let c = IdentityCache::new(10);
        let (a, b) = (id("a"), id("b"));
        c.insert(&a, 1, "a1", 100, 0);
        c.insert(&a, 2, "a2", 100, 0);
        c.insert(&b, 1, "b1", 100, 0);
        assert_eq!(c.get(&a, 1), Some(("a1", 100)));
        assert_eq!(c.get(&a, 2), Some(("a2", 100)));
        assert_eq!(c.get(&b, 1), Some(("b1", 100)));
        assert_eq!(c.get(&b, 2), None);
        let a_again = id("a");
        assert_eq!(
            c.get(&a_again, 1),
            None,
            "another identity object is another entry"
        );
    }

    #[test]
    fn the_cache_stays_bounded_and_drops_the_dead_first() {
        let c = IdentityCache::new(100);
        let live: Vec<_> = (0..10).map(|i| id(&i.to_string())).collect();
        for l in &live {
            c.insert(l, 0, 1, 1_000, 0);
        }
        for i in 0..1_000 {
            let gone = id(&format!("gone{i}"));
            c.insert(&gone, 0, 2, 1_000, 0);
            assert!(c.len() <= 100);
        }
        // The dead are swept before anyone live is dropped at random: with only 10 live
        // identities, the sweep always frees enough room.
        assert!(live.iter().all(|l| c.get(l, 0).is_some()));
    }

    #[test]
    fn expired_entries_are_swept_when_full() {
        let c = IdentityCache::new(4);
        let ids: Vec<_> = (0..8).map(|i| id(&i.to_string())).collect();
        for (i, x) in ids.iter().take(4).enumerate() {
            c.insert(x, 0, i, 10, 0);
        }
        c.insert(&ids[4], 0, 4, 100, 50);
        assert_eq!(c.len(), 1, "the four expired entries were dropped");
        assert_eq!(c.get(&ids[4], 0), Some((4, 100)));
    }
}
