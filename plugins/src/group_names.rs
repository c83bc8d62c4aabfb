//! One shared copy of each group name. A million sessions of one organisation carry the same few
//! dozen groups; each identity points at the shared names instead of holding its own copies
//! (10 groups: ~240 bytes less per session).
//!
//! Bounded: at most [`CAPACITY`] distinct names are held. When full, names no identity holds
//! any more are dropped; if it is still full, new names are handed out unshared (correct, only
//! larger). Taken when an identity is built (a login, a refresh, a token verified the first
//! time), never per request.

use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

/// Most distinct group names shared.
pub const CAPACITY: usize = 65_536;

#[derive(Default)]
struct Names {
    set: HashSet<Arc<str>>,
    /// Names handed out since the last sweep; a sweep (O(`CAPACITY`)) waits for a quarter of
    /// the capacity of them, so its cost per new name stays constant.
    since_sweep: usize,
}

static NAMES: LazyLock<Mutex<Names>> = LazyLock::new(Default::default);

/// The shared copy of `name`.
pub fn shared(name: &str) -> Arc<str> {
    shared_in(&NAMES, name)
}

fn shared_in(names: &Mutex<Names>, name: &str) -> Arc<str> {
    let mut names = names.lock();
    if let Some(n) = names.set.get(name) {
        return n.clone();
    }
    let n: Arc<str> = Arc::from(name);
    names.since_sweep += 1;
    if names.set.len() >= CAPACITY && names.since_sweep >= CAPACITY / 4 {
        // Only the set's own reference left: no identity holds the name.
        names.set.retain(|n| Arc::strong_count(n) > 1);
        names.since_sweep = 0;
    }
    if names.set.len() < CAPACITY {
        names.set.insert(n.clone());
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_names_share_one_copy() {
        let a = shared("group-names-test-sre");
        let b = shared(&String::from("group-names-test-sre"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a, "group-names-test-sre");
        assert!(!Arc::ptr_eq(&a, &shared("group-names-test-dev")));
    }

    #[test]
    fn the_set_stays_bounded_and_drops_names_nobody_holds() {
        // Its own set, so that filling it cannot unshare names in tests running beside it.
        let names = Mutex::new(Names::default());
        let held: Vec<Arc<str>> = (0..CAPACITY + 10)
            .map(|i| shared_in(&names, &format!("bound-{i}")))
            .collect();
        assert_eq!(names.lock().set.len(), CAPACITY);
        let (a, b) = (shared_in(&names, "full"), shared_in(&names, "full"));
        assert!(
            !Arc::ptr_eq(&a, &b),
            "beyond the bound, names are not shared"
        );
        drop(held);
        // Enough new names to trigger a sweep: the dropped ones go, the new ones are shared.
        for i in 0..CAPACITY / 4 + 1 {
            shared_in(&names, &format!("after-{i}"));
        }
        let (a, b) = (shared_in(&names, "final"), shared_in(&names, "final"));
        assert!(Arc::ptr_eq(&a, &b), "shared again once a sweep made room");
        assert!(names.lock().set.len() < CAPACITY / 2);
    }
}
