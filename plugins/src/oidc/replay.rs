//! A bounded memory of values seen once (login `state`s, logout-token `jti`s), each kept until
//! it expires. Values are stored as 128-bit hashes so an entry's size does not depend on what
//! a client sent. Beyond capacity the oldest entries are forgotten first: replay protection
//! then weakens for the oldest values rather than memory growing without bound (the login
//! state's own expiry and the provider's single-use codes still hold).

use parking_lot::Mutex;
use ring::digest;
use std::collections::{HashMap, VecDeque};

type Key = [u8; 16];

#[derive(Debug)]
pub(crate) struct ReplaySet {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    expiry: HashMap<Key, i64>,
    /// Insertion order, to expire and evict without scanning.
    order: VecDeque<(Key, i64)>,
}

impl ReplaySet {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records `value` until `expires_at`. False if it was already recorded and has not
    /// expired at `now`: a replay.
    pub(crate) fn first_use(&self, value: &str, expires_at: i64, now: i64) -> bool {
        let key = hash(value);
        let mut inner = self.inner.lock();
        inner.forget_expired(now);
        if inner.expiry.get(&key).is_some_and(|&e| e > now) {
            return false;
        }
        while inner.expiry.len() >= self.capacity {
            if !inner.forget_oldest() {
                break;
            }
        }
        inner.expiry.insert(key, expires_at);
        inner.order.push_back((key, expires_at));
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().expiry.len()
    }
}

impl Inner {
    fn forget_expired(&mut self, now: i64) {
        while self.order.front().is_some_and(|(_, e)| *e <= now) {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) -> bool {
        let Some((key, e)) = self.order.pop_front() else {
            return false;
        };
        // A later insertion of the same key owns the entry now.
        if self.expiry.get(&key) == Some(&e) {
            self.expiry.remove(&key);
        }
        true
    }
}

fn hash(value: &str) -> Key {
    let d = digest::digest(&digest::SHA256, value.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&d.as_ref()[..16]);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_accepted_once_until_it_expires() {
        let r = ReplaySet::new(10);
        assert!(r.first_use("s1", 100, 0));
        assert!(!r.first_use("s1", 100, 50));
        assert!(r.first_use("s2", 100, 50));
        assert!(r.first_use("s1", 200, 100), "expired entries are forgotten");
        assert!(!r.first_use("s1", 200, 150));
        assert_eq!(r.len(), 1, "s2 expired at 100 too");
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_go_first() {
        let r = ReplaySet::new(3);
        for (i, v) in ["a", "b", "c", "d"].iter().enumerate() {
            assert!(r.first_use(v, 1_000, i as i64));
        }
        assert_eq!(r.len(), 3);
        assert!(r.first_use("a", 1_000, 10), "the oldest was forgotten");
        assert!(!r.first_use("d", 1_000, 10));
        assert!(!r.first_use("c", 1_000, 10));
    }
}
