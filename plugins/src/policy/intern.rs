//! Group names as small integers, so a group check is a binary search over a few `u32`s rather
//! than string comparisons.
//!
//! The interner is process-wide and only ever grows: it holds the groups that appear in some
//! compiled policy (not every group a caller may have), so its size is bounded by the confs
//! loaded. Its generation is the number of names it holds; an id below a generation was known
//! at that generation.
//!
//! Each `Identity` caches the interned ids of its groups together with the generation they were
//! computed at. A policy records the generation after its groups were interned; an identity's
//! cache computed at that generation or later knows every group the policy names. When a reload
//! adds groups the cache is recomputed once, lazily, on the next evaluation that needs it.

use arc_swap::{ArcSwapOption, Guard};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

static INTERNER: LazyLock<RwLock<HashMap<Box<str>, u32>>> = LazyLock::new(Default::default);

/// The id of `group`, assigned on first sight. Called when policies compile, off the hot path.
pub(crate) fn intern(group: &str) -> u32 {
    if let Some(id) = INTERNER.read().get(group) {
        return *id;
    }
    let mut map = INTERNER.write();
    let next = u32::try_from(map.len()).unwrap_or(u32::MAX);
    *map.entry(group.into()).or_insert(next)
}

/// The current generation: every id below it is assigned.
pub(crate) fn generation() -> u32 {
    u32::try_from(INTERNER.read().len()).unwrap_or(u32::MAX)
}

/// The ids of those of `groups` that are interned, sorted, with the generation they reflect.
fn ids_of(groups: &[Arc<str>]) -> GroupIds {
    let map = INTERNER.read();
    let mut ids: Vec<u32> = groups
        .iter()
        .filter_map(|g| map.get(&**g).copied())
        .collect();
    ids.sort_unstable();
    GroupIds {
        generation: u32::try_from(map.len()).unwrap_or(u32::MAX),
        ids: ids.into_boxed_slice(),
    }
}

/// A caller's groups as sorted interned ids, valid for policies compiled up to `generation`.
#[derive(Debug)]
pub struct GroupIds {
    generation: u32,
    ids: Box<[u32]>,
}

/// The per-identity cache of `GroupIds`, held in `Identity::policy_group_ids`. Empty until the
/// first policy evaluation that looks at groups; it assumes the identity's groups no longer
/// change by then (identities are built once and shared).
#[derive(Debug, Default)]
pub struct GroupIdCache(ArcSwapOption<GroupIds>);

/// A borrowed view of an identity's group ids for the length of one evaluation.
pub(crate) enum GroupIdsRef {
    Cached(Guard<Option<Arc<GroupIds>>>),
    Fresh(Arc<GroupIds>),
}

impl GroupIdsRef {
    pub(crate) fn ids(&self) -> &[u32] {
        match self {
            GroupIdsRef::Cached(g) => g.as_ref().map_or(&[], |g| &g.ids),
            GroupIdsRef::Fresh(g) => &g.ids,
        }
    }
}

impl GroupIdCache {
    /// The ids of `groups` as known at `min_generation` or later, recomputing the cache when it
    /// is older (the only path that allocates).
    pub(crate) fn get(&self, groups: &[Arc<str>], min_generation: u32) -> GroupIdsRef {
        let cached = self.0.load();
        if cached
            .as_ref()
            .is_some_and(|c| c.generation >= min_generation)
        {
            return GroupIdsRef::Cached(cached);
        }
        let fresh = Arc::new(ids_of(groups));
        // Another evaluation may have stored a newer computation meanwhile; never replace a
        // newer one with an older one.
        self.0.rcu(|old| match old {
            Some(o) if o.generation >= fresh.generation => Some(Arc::clone(o)),
            _ => Some(Arc::clone(&fresh)),
        });
        GroupIdsRef::Fresh(fresh)
    }
}

/// Whether the sorted `have` contains any of `want`.
pub(crate) fn contains_any(have: &[u32], want: &[u32]) -> bool {
    want.iter().any(|w| have.binary_search(w).is_ok())
}

/// Whether the sorted `have` contains all of `want`.
pub(crate) fn contains_all(have: &[u32], want: &[u32]) -> bool {
    want.iter().all(|w| have.binary_search(w).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|s| (*s).into()).collect()
    }

    #[test]
    fn interning_is_stable() {
        let a = intern("intern-test-a");
        assert_eq!(intern("intern-test-a"), a);
        assert_ne!(intern("intern-test-b"), a);
        assert!(generation() > a);
    }

    #[test]
    fn cache_recomputes_when_the_interner_grows() {
        let cache = GroupIdCache::default();
        let g = groups(&["cache-test-x", "cache-test-y"]);
        let x = intern("cache-test-x");
        let gen1 = generation();
        assert_eq!(cache.get(&g, gen1).ids(), &[x]);
        // Served from the cache now.
        assert!(matches!(cache.get(&g, gen1), GroupIdsRef::Cached(_)));

        // A reload interns another group the identity has: the cache is stale for it.
        let y = intern("cache-test-y");
        let gen2 = generation();
        let mut want = [x, y];
        want.sort_unstable();
        assert_eq!(cache.get(&g, gen2).ids(), &want[..]);
        assert!(matches!(cache.get(&g, gen2), GroupIdsRef::Cached(_)));
    }

    #[test]
    fn set_helpers() {
        assert!(contains_any(&[1, 4, 9], &[2, 9]));
        assert!(!contains_any(&[1, 4, 9], &[2, 3]));
        assert!(contains_all(&[1, 4, 9], &[9, 1]));
        assert!(!contains_all(&[1, 4, 9], &[1, 2]));
    }
}
