//! Blocks: an operator refuses a subject or an email on every request — session or bearer
//! token — for a while or for good (`POST /admin/blocks`, `DELETE /admin/blocks/{subject}`).
//!
//! A block names a subject (matched exactly) or, when it contains `@`, an email or email-like
//! subject (matched ignoring case). The list is checked on every request, so an empty list
//! costs one atomic load.

use super::email_key;
use crate::identity::Identity;
use parking_lot::RwLock;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;

/// One block, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Block {
    /// The blocked subject or (lowercased) email.
    pub subject: String,
    /// Unix seconds the block lapses at; `None`: until unblocked.
    pub until: Option<i64>,
}

/// The blocked subjects and emails of this replica.
#[derive(Debug)]
pub struct BlockList {
    len: AtomicUsize,
    blocks: RwLock<HashMap<Box<str>, Option<i64>>>,
    epoch: watch::Sender<u64>,
}

impl Default for BlockList {
    fn default() -> Self {
        Self::new()
    }
}

/// The form a block and an identity are compared in.
fn key(who: &str) -> Cow<'_, str> {
    if who.contains('@') {
        email_key(who)
    } else {
        Cow::Borrowed(who)
    }
}

impl BlockList {
    pub fn new() -> Self {
        Self {
            len: AtomicUsize::new(0),
            blocks: RwLock::new(HashMap::new()),
            epoch: watch::channel(0).0,
        }
    }

    /// Blocks `who` until `until` (Unix seconds) or for good, replacing an earlier block of the
    /// same subject. Bumps the epoch so open streams are re-checked at once.
    pub fn block(&self, who: &str, until: Option<i64>) {
        let mut blocks = self.blocks.write();
        blocks.insert(key(who).into(), until);
        self.len.store(blocks.len(), Ordering::Release);
        drop(blocks);
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Lifts the block on `who`; false if there was none.
    pub fn unblock(&self, who: &str) -> bool {
        let mut blocks = self.blocks.write();
        let removed = blocks.remove(&*key(who)).is_some();
        self.len.store(blocks.len(), Ordering::Release);
        removed
    }

    /// Whether `identity`'s subject or email is blocked at `now`.
    pub fn is_blocked(&self, identity: &Identity, now: i64) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let blocks = self.blocks.read();
        let active = |who: &str| {
            blocks
                .get(&*key(who))
                .is_some_and(|until| until.is_none_or(|u| now < u))
        };
        active(&identity.subject) || identity.email.as_deref().is_some_and(active)
    }

    /// The blocks in force at `now`, sorted by subject.
    pub fn list(&self, now: i64) -> Vec<Block> {
        let mut out: Vec<Block> = self
            .blocks
            .read()
            .iter()
            .filter(|(_, until)| until.is_none_or(|u| now < u))
            .map(|(who, until)| Block {
                subject: who.to_string(),
                until: *until,
            })
            .collect();
        out.sort_by(|a, b| a.subject.cmp(&b.subject));
        out
    }

    /// Forgets blocks that lapsed by `now`; returns how many.
    pub fn purge(&self, now: i64) -> usize {
        let mut blocks = self.blocks.write();
        let before = blocks.len();
        blocks.retain(|_, until| until.is_none_or(|u| now < u));
        self.len.store(blocks.len(), Ordering::Release);
        before - blocks.len()
    }

    /// Blocks held, lapsed ones included until purged.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bumped on every new block: the gateway re-checks open streams when it moves.
    pub fn epoch(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthMethod;

    fn who(subject: &str, email: Option<&str>) -> Identity {
        Identity::new(
            subject,
            "https://idp",
            AuthMethod::Bearer {
                issuer: "ci".into(),
            },
        )
        .with_email(email)
    }

    #[test]
    fn empty_list_blocks_nobody() {
        let b = BlockList::new();
        assert!(b.is_empty());
        assert!(!b.is_blocked(&who("u1", Some("a@x")), 0));
    }

    #[test]
    fn subjects_match_exactly_and_emails_ignore_case() {
        let b = BlockList::new();
        b.block("u1", None);
        b.block("Bob@Example.com", None);
        assert!(b.is_blocked(&who("u1", None), 0));
        assert!(
            !b.is_blocked(&who("U1", None), 0),
            "subjects are case-sensitive"
        );
        assert!(b.is_blocked(&who("u9", Some("bob@example.COM")), 0));
        assert!(
            b.is_blocked(&who("BOB@example.com", None), 0),
            "email-like subjects too"
        );
        assert!(!b.is_blocked(&who("u2", Some("ann@example.com")), 0));
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn blocks_with_until_lapse() {
        let b = BlockList::new();
        b.block("u1", Some(100));
        assert!(b.is_blocked(&who("u1", None), 99));
        assert!(!b.is_blocked(&who("u1", None), 100));
        assert_eq!(b.list(99).len(), 1);
        assert!(b.list(100).is_empty());
        b.block("u2", None);
        assert_eq!(b.purge(100), 1);
        assert_eq!(b.len(), 1);
        assert!(b.is_blocked(&who("u2", None), i64::MAX));
    }

    #[test]
    fn reblocking_replaces_and_unblocking_lifts() {
        let b = BlockList::new();
        b.block("u1", Some(100));
        b.block("u1", None);
        assert!(b.is_blocked(&who("u1", None), 1_000));
        assert_eq!(b.len(), 1);
        assert!(b.unblock("u1"));
        assert!(!b.unblock("u1"));
        assert!(!b.is_blocked(&who("u1", None), 0));
        b.block("ann@example.com", None);
        assert!(
            b.unblock("ANN@example.com"),
            "email unblocks ignore case too"
        );
        assert!(b.is_empty());
    }

    #[test]
    fn list_is_sorted_with_lowercased_emails() {
        let b = BlockList::new();
        b.block("zed", None);
        b.block("Ann@X.org", Some(50));
        assert_eq!(
            b.list(0),
            [
                Block {
                    subject: "ann@x.org".into(),
                    until: Some(50)
                },
                Block {
                    subject: "zed".into(),
                    until: None
                }
            ]
        );
    }

    #[test]
    fn new_blocks_bump_the_epoch() {
        let b = BlockList::new();
        let mut rx = b.epoch();
        assert!(!rx.has_changed().unwrap());
        b.block("u1", None);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 1);
        b.unblock("u1");
        assert!(
            !rx.has_changed().unwrap(),
            "lifting a block needs no re-check"
        );
    }
}
