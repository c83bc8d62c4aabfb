//! The in-memory session store: one replica's sessions in sharded hash tables, bounded in
//! number, with secondary indexes for revocation by subject, email, OP `sid` and handle.
//!
//! Consistency: a session's index entries are added and removed under the write lock of the
//! shard that holds it, and index locks are only ever taken inside a shard lock (never the
//! reverse), so the indexes always name exactly the stored sessions and no lock order can
//! deadlock.

use super::ids::Ids;
use super::{
    email_key, IdHashBuilder, RevokeReason, Selector, Session, SessionHandle, SessionId,
    SessionStore, SessionSummary, StoreError,
};
use crate::clock::SharedClock;
use crate::conf::{Duration, FieldError};
use crate::metrics;
use async_trait::async_trait;
use dashmap::DashMap;
use parking_lot::RwLock;
use prometheus::IntCounter;
use serde::Deserialize;
use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::watch;

/// `sessions: { store: memory, … }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryStoreConf {
    /// Most sessions held; beyond it the least recently used are evicted.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// How often expired sessions are swept (lookups also drop them as they meet them).
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval: Duration,
}

fn default_capacity() -> usize {
    MemoryStoreConf::DEFAULT_CAPACITY
}

fn default_sweep_interval() -> Duration {
    Duration::from_secs(60)
}

impl Default for MemoryStoreConf {
    fn default() -> Self {
        Self {
            capacity: default_capacity(),
            sweep_interval: default_sweep_interval(),
        }
    }
}

impl MemoryStoreConf {
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.capacity == 0 {
            errors.push(FieldError::new(
                "capacity",
                "must be at least 1 (the default is 1000000)",
            ));
        }
        if self.sweep_interval.get() < std::time::Duration::from_secs(1) {
            errors.push(FieldError::new(
                "sweep_interval",
                "must be at least 1s (the default is 60s)",
            ));
        }
        errors
    }
}

/// Enough shards that one holds a few thousand sessions at full capacity: a lock is rarely
/// contended, and sampling a shard for eviction walks few entries.
const SHARDS: usize = 256;
/// Entries compared per eviction: the least recently seen of them goes.
const EVICTION_SAMPLE: usize = 8;
/// Eviction rounds one insert may run (concurrent inserts share the work).
const EVICTION_ROUNDS: usize = 4;
/// Shards swept between yields of the background sweeper.
const SWEEP_BATCH: usize = 32;

type Table = HashMap<SessionId, Slot, IdHashBuilder>;

/// A shard on its own cache lines, so neighbouring locks do not contend.
#[repr(align(128))]
#[derive(Default)]
struct Shard(RwLock<Table>);

struct Slot {
    session: Arc<Session>,
    /// The email key the session is indexed under (emails can change on refresh).
    email_key: Option<Arc<str>>,
}

/// Key → ids of the sessions with that key.
struct Index<K, S = RandomState>(DashMap<K, Ids, S>);

impl<K: Eq + Hash, S: BuildHasher + Clone + Default> Index<K, S> {
    fn new() -> Self {
        Self(DashMap::with_hasher(S::default()))
    }

    fn add(&self, key: K, id: SessionId) {
        self.0
            .entry(key)
            .and_modify(|ids| ids.push(id))
            .or_insert(Ids::One(id));
    }

    fn remove<Q>(&self, key: &Q, id: &SessionId)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now_empty = match self.0.get_mut(key) {
            Some(mut ids) => {
                ids.remove(id);
                ids.is_empty()
            }
            None => false,
        };
        if now_empty {
            self.0.remove_if(key, |_, ids| ids.is_empty());
        }
    }

    fn ids<Q>(&self, key: &Q) -> Vec<SessionId>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0
            .get(key)
            .map(|ids| ids.as_slice().to_vec())
            .unwrap_or_default()
    }

    fn keys(&self) -> usize {
        self.0.len()
    }
}

/// Sessions of one replica, in memory.
pub struct MemoryStore {
    shards: Box<[Shard]>,
    len: AtomicUsize,
    capacity: usize,
    by_handle: Index<SessionHandle, IdHashBuilder>,
    by_subject: Index<Arc<str>>,
    by_email: Index<Arc<str>>,
    by_sid: Index<Arc<str>>,
    clock: SharedClock,
    epoch: watch::Sender<u64>,
    revoked: [IntCounter; RevokeReason::ALL.len()],
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    pub fn new(conf: &MemoryStoreConf, clock: SharedClock) -> Self {
        Self::with_capacity(conf.capacity, clock)
    }

    /// A store holding at most `capacity` sessions (at least one).
    pub fn with_capacity(capacity: usize, clock: SharedClock) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
            by_handle: Index::new(),
            by_subject: Index::new(),
            by_email: Index::new(),
            by_sid: Index::new(),
            clock,
            epoch: watch::channel(0).0,
            revoked: RevokeReason::ALL
                .map(|r| metrics::SESSIONS_REVOKED_TOTAL.with_label_values(&[r.label()])),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn shard(&self, id: &SessionId) -> &Shard {
        &self.shards[id.shard(SHARDS)]
    }

    /// Removes every session expired at `now`; returns how many.
    pub fn sweep(&self, now: i64) -> usize {
        (0..SHARDS).map(|i| self.sweep_shard(i, now)).sum()
    }

    fn sweep_shard(&self, shard: usize, now: i64) -> usize {
        let expired: Vec<SessionId> = self.shards[shard]
            .0
            .read()
            .iter()
            .filter(|(_, slot)| slot.session.is_expired(now))
            .map(|(id, _)| *id)
            .collect();
        expired
            .iter()
            .filter(|id| self.remove_if(id, |s| s.is_expired(now)).is_some())
            .count()
    }

    /// Sweeps every `every` (reading time from the store's clock) until the store is dropped.
    /// Yields between batches of shards so one sweep never holds a runtime thread for long.
    pub fn spawn_sweeper(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(store) = weak.upgrade() else { break };
                let now = store.clock.now_secs();
                for i in 0..SHARDS {
                    store.sweep_shard(i, now);
                    if i % SWEEP_BATCH == SWEEP_BATCH - 1 {
                        tokio::task::yield_now().await;
                    }
                }
            }
        })
    }

    /// Removes the session `id` if `cond` holds for it, with its index entries.
    fn remove_if(
        &self,
        id: &SessionId,
        cond: impl FnOnce(&Session) -> bool,
    ) -> Option<Arc<Session>> {
        let mut table = self.shard(id).0.write();
        if !cond(&table.get(id)?.session) {
            return None;
        }
        let slot = table.remove(id)?;
        self.unindex(id, &slot);
        drop(table);
        self.len.fetch_sub(1, Ordering::Relaxed);
        metrics::SESSIONS.dec();
        Some(slot.session)
    }

    fn index(&self, id: SessionId, slot: &Slot) {
        let s = &slot.session;
        self.by_handle.add(s.handle(), id);
        self.by_subject.add(s.subject().clone(), id);
        if let Some(e) = &slot.email_key {
            self.by_email.add(e.clone(), id);
        }
        if let Some(sid) = s.sid() {
            self.by_sid.add(sid.clone(), id);
        }
    }

    fn unindex(&self, id: &SessionId, slot: &Slot) {
        let s = &slot.session;
        self.by_handle.remove(&s.handle(), id);
        self.by_subject.remove(&**s.subject(), id);
        if let Some(e) = &slot.email_key {
            self.by_email.remove(&**e, id);
        }
        if let Some(sid) = s.sid() {
            self.by_sid.remove(&**sid, id);
        }
    }

    /// Moves `id`'s index entries from `old`'s keys to `new`'s where they differ.
    fn reindex(&self, id: &SessionId, old: &Slot, new: &Slot) {
        let (o, n) = (&old.session, &new.session);
        if o.subject() != n.subject() {
            self.by_subject.remove(&**o.subject(), id);
            self.by_subject.add(n.subject().clone(), *id);
        }
        if old.email_key != new.email_key {
            if let Some(e) = &old.email_key {
                self.by_email.remove(&**e, id);
            }
            if let Some(e) = &new.email_key {
                self.by_email.add(e.clone(), *id);
            }
        }
        if o.sid() != n.sid() {
            if let Some(sid) = o.sid() {
                self.by_sid.remove(&**sid, id);
            }
            if let Some(sid) = n.sid() {
                self.by_sid.add(sid.clone(), *id);
            }
        }
    }

    /// Stores `s` in place of the live session with its id (re-indexing what changed), or,
    /// if there is none and `add` is set, as a new session.
    fn put(&self, s: Arc<Session>, add: bool) {
        let id = *s.id();
        let slot = Slot {
            email_key: s.email_key(),
            session: s,
        };
        let mut table = self.shard(&id).0.write();
        if let Some(live) = table.get_mut(&id) {
            self.reindex(&id, live, &slot);
            *live = slot;
            return;
        }
        if !add {
            return;
        }
        self.index(id, &slot);
        table.insert(id, slot);
        drop(table);
        self.len.fetch_add(1, Ordering::Relaxed);
        metrics::SESSIONS.inc();
    }

    fn make_room(&self, now: i64) {
        for _ in 0..EVICTION_ROUNDS {
            if self.len.load(Ordering::Relaxed) < self.capacity {
                return;
            }
            self.evict_one(now);
        }
    }

    /// Frees at least one place: the expired sessions among a random sample if there are any,
    /// else the least recently seen of the sample.
    fn evict_one(&self, now: i64) {
        let sample = self.sample(EVICTION_SAMPLE);
        let mut freed = false;
        for (id, s) in &sample {
            if s.is_expired(now) && self.remove_if(id, |s| s.is_expired(now)).is_some() {
                freed = true;
            }
        }
        if freed {
            return;
        }
        let victim = sample.iter().min_by_key(|(_, s)| s.last_seen());
        if let Some((id, _)) = victim {
            if self.remove_if(id, |_| true).is_some() {
                self.count_revoked(RevokeReason::Evicted, 1);
            }
        }
    }

    /// Up to `k` sessions from a random position: a random shard, a random offset in it.
    fn sample(&self, k: usize) -> Vec<(SessionId, Arc<Session>)> {
        let start = fastrand::usize(..SHARDS);
        let mut out = Vec::with_capacity(k);
        for i in 0..SHARDS {
            let table = self.shards[(start + i) % SHARDS].0.read();
            if table.is_empty() {
                continue;
            }
            let offset = fastrand::usize(..table.len());
            let wanted = (k - out.len()).min(table.len());
            out.extend(
                table
                    .iter()
                    .skip(offset)
                    .chain(table.iter())
                    .take(wanted)
                    .map(|(id, slot)| (*id, slot.session.clone())),
            );
            if out.len() >= k {
                break;
            }
        }
        out
    }

    fn count_revoked(&self, reason: RevokeReason, n: usize) {
        self.revoked[reason.index()].inc_by(n as u64);
        self.epoch.send_modify(|e| *e += 1);
    }

    fn candidates(&self, sel: &Selector) -> Vec<SessionId> {
        match sel {
            Selector::Id(id) => vec![*id],
            Selector::Handle(h) => self.by_handle.ids(h),
            Selector::Subject(s) => self.by_subject.ids(s.as_str()),
            Selector::Email(e) => self.by_email.ids(&*email_key(e)),
            Selector::Sid { sid, .. } => self.by_sid.ids(sid.as_str()),
            Selector::All => self
                .shards
                .iter()
                .flat_map(|s| s.0.read().keys().copied().collect::<Vec<_>>())
                .collect(),
        }
    }

    fn lookup(&self, id: &SessionId) -> Option<Arc<Session>> {
        self.shard(id)
            .0
            .read()
            .get(id)
            .map(|slot| slot.session.clone())
    }

    /// Index sizes (handle, subject, email, sid keys), for tests and diagnostics.
    pub fn index_keys(&self) -> [usize; 4] {
        [
            self.by_handle.keys(),
            self.by_subject.keys(),
            self.by_email.keys(),
            self.by_sid.keys(),
        ]
    }
}

impl Drop for MemoryStore {
    fn drop(&mut self) {
        metrics::SESSIONS.sub(*self.len.get_mut() as i64);
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    fn get_local(&self, id: &SessionId, now_secs: i64) -> Option<Arc<Session>> {
        let s = self.lookup(id)?;
        if s.is_expired(now_secs) {
            self.remove_if(id, |s| s.is_expired(now_secs));
            return None;
        }
        s.touch(now_secs);
        Some(s)
    }

    async fn get(&self, id: &SessionId, now_secs: i64) -> Result<Option<Arc<Session>>, StoreError> {
        Ok(self.get_local(id, now_secs))
    }

    async fn insert(&self, s: Arc<Session>) -> Result<(), StoreError> {
        self.make_room(self.clock.now_secs());
        self.put(s, true);
        Ok(())
    }

    async fn update(&self, s: Arc<Session>) -> Result<(), StoreError> {
        self.put(s, false);
        Ok(())
    }

    async fn revoke(&self, sel: &Selector, reason: RevokeReason) -> Result<usize, StoreError> {
        let n = self
            .candidates(sel)
            .iter()
            .filter(|id| self.remove_if(id, |s| sel.matches(s)).is_some())
            .count();
        if n > 0 {
            self.count_revoked(reason, n);
        }
        Ok(n)
    }

    async fn list(&self, sel: &Selector) -> Result<Vec<SessionSummary>, StoreError> {
        let mut out: Vec<SessionSummary> = self
            .candidates(sel)
            .iter()
            .filter_map(|id| self.lookup(id))
            .filter(|s| sel.matches(s))
            .map(|s| s.summary())
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.session).cmp(&(b.created_at, &b.session)));
        Ok(out)
    }

    async fn find_handle(&self, handle: SessionHandle) -> Result<Option<SessionId>, StoreError> {
        Ok(self
            .by_handle
            .ids(&handle)
            .into_iter()
            .find(|id| self.lookup(id).is_some()))
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn revocation_epoch(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::session::record::tests::{new_session, LIFE};
    use crate::session::{Profile, SessionLifetime};

    const T0: i64 = 1_700_000_000;

    fn store(capacity: usize) -> (Arc<ManualClock>, MemoryStore) {
        let clock = ManualClock::at_secs(T0);
        (clock.clone(), MemoryStore::with_capacity(capacity, clock))
    }

    fn session(now: i64, subject: &str, email: Option<&str>, sid: Option<&str>) -> Arc<Session> {
        Arc::new(Session::create(new_session(subject, email, sid), now, LIFE).unwrap())
    }

    /// Every index names exactly the stored sessions.
    fn assert_indexes_consistent(st: &MemoryStore) {
        let all: Vec<Arc<Session>> = st
            .candidates(&Selector::All)
            .iter()
            .filter_map(|id| st.lookup(id))
            .collect();
        assert_eq!(all.len(), st.len());
        let distinct = |f: &dyn Fn(&Session) -> Option<String>| {
            let mut v: Vec<String> = all.iter().filter_map(|s| f(s)).collect();
            v.sort();
            v.dedup();
            v.len()
        };
        assert_eq!(
            st.index_keys(),
            [
                all.len(),
                distinct(&|s| Some(s.subject().to_string())),
                distinct(&|s| s.email_key().map(|e| e.to_string())),
                distinct(&|s| s.sid().map(|x| x.to_string())),
            ]
        );
        for s in &all {
            assert!(st.by_subject.ids(&**s.subject()).contains(s.id()));
            assert!(st.by_handle.ids(&s.handle()).contains(s.id()));
        }
    }

    #[tokio::test]
    async fn insert_then_hit_and_miss() {
        let (_, st) = store(10);
        let s = session(T0, "u1", Some("ann@example.com"), None);
        st.insert(s.clone()).await.unwrap();
        assert_eq!(st.len(), 1);
        let got = st.get_local(s.id(), T0 + 5).unwrap();
        assert!(Arc::ptr_eq(&got, &s));
        assert_eq!(s.last_seen(), T0 + 5, "a hit records the access");
        assert!(st.get(s.id(), T0 + 6).await.unwrap().is_some());
        let other = SessionId::generate().unwrap();
        assert!(st.get_local(&other, T0).is_none());
        assert_indexes_consistent(&st);
    }

    #[tokio::test]
    async fn absolute_ttl_expires_even_an_active_session() {
        let (_, st) = store(10);
        let s = session(T0, "u1", Some("ann@example.com"), Some("op1"));
        st.insert(s.clone()).await.unwrap();
        let end = T0 + LIFE.ttl_secs;
        let mut t = T0;
        while t < end {
            assert!(st.get_local(s.id(), t).is_some(), "alive at {t}");
            t += 1_800;
        }
        assert!(st.get_local(s.id(), end - 1).is_some());
        assert!(st.get_local(s.id(), end).is_none());
        assert_eq!(st.len(), 0, "expired entries are removed on lookup");
        assert_eq!(st.index_keys(), [0; 4]);
    }

    #[tokio::test]
    async fn idle_timeout_expires_an_unused_session() {
        let (_, st) = store(10);
        let s = session(T0, "u1", None, None);
        st.insert(s.clone()).await.unwrap();
        assert!(st.get_local(s.id(), T0 + 3_000).is_some());
        // Idle is measured from the last access, not from creation.
        assert!(st.get_local(s.id(), T0 + 3_000 + 3_599).is_some());
        assert!(st.get_local(s.id(), T0 + 6_599 + 3_599).is_some());
        let last = s.last_seen();
        assert!(st.get_local(s.id(), last + 3_600).is_none());
        assert_eq!(st.len(), 0);
    }

    #[tokio::test]
    async fn sweep_removes_only_expired_sessions() {
        let (_, st) = store(10);
        let old = session(T0, "u1", Some("a@x"), Some("s1"));
        let young = session(T0 + 2_000, "u2", Some("b@x"), Some("s2"));
        st.insert(old.clone()).await.unwrap();
        st.insert(young.clone()).await.unwrap();
        assert_eq!(st.sweep(T0 + 3_599), 0);
        assert_eq!(st.sweep(T0 + 3_600), 1);
        assert!(st.lookup(old.id()).is_none());
        assert!(st.lookup(young.id()).is_some());
        assert_indexes_consistent(&st);
        assert_eq!(st.sweep(T0 + 2_000 + 3_600), 1);
        assert_eq!(st.index_keys(), [0; 4]);
    }

    #[tokio::test]
    async fn full_store_evicts_the_least_recently_seen_and_keeps_indexes() {
        let (clock, st) = store(3);
        let before = metrics::SESSIONS_REVOKED_TOTAL
            .with_label_values(&["evicted"])
            .get();
        let mut epoch = st.revocation_epoch();
        let a = session(T0, "u1", Some("a@x"), Some("s1"));
        let b = session(T0, "u2", Some("b@x"), Some("s2"));
        let c = session(T0, "u1", Some("a@x"), Some("s3"));
        for s in [&a, &b, &c] {
            st.insert(s.clone()).await.unwrap();
        }
        a.touch(T0 + 30);
        b.touch(T0 + 10);
        c.touch(T0 + 20);
        clock.set_secs(T0 + 40);
        let d = session(T0 + 40, "u3", Some("d@x"), None);
        st.insert(d.clone()).await.unwrap();
        assert_eq!(st.len(), 3);
        assert!(st.lookup(b.id()).is_none(), "b was least recently seen");
        for s in [&a, &c, &d] {
            assert!(st.lookup(s.id()).is_some());
        }
        assert_indexes_consistent(&st);
        assert!(st
            .list(&Selector::Email("b@x".into()))
            .await
            .unwrap()
            .is_empty());
        let after = metrics::SESSIONS_REVOKED_TOTAL
            .with_label_values(&["evicted"])
            .get();
        assert!(after > before, "evictions are counted");
        assert!(
            epoch.has_changed().unwrap(),
            "eviction ends a session: epoch bumped"
        );
        epoch.mark_unchanged();
    }

    #[tokio::test]
    async fn full_store_drops_expired_sessions_before_evicting_live_ones() {
        let (clock, st) = store(3);
        let short = SessionLifetime {
            ttl_secs: 100,
            idle_timeout_secs: 3_600,
        };
        let expiring = Arc::new(Session::create(new_session("u1", None, None), T0, short).unwrap());
        let lru = session(T0 + 50, "u2", None, None);
        let recent = session(T0 + 60, "u3", None, None);
        for s in [&expiring, &lru, &recent] {
            st.insert(s.clone()).await.unwrap();
        }
        expiring.touch(T0 + 99);
        recent.touch(T0 + 90);
        clock.set_secs(T0 + 100);
        st.insert(session(T0 + 100, "u4", None, None))
            .await
            .unwrap();
        assert!(st.lookup(expiring.id()).is_none());
        assert!(st.lookup(lru.id()).is_some(), "a live session was kept");
        assert_eq!(st.len(), 3);
        assert_indexes_consistent(&st);
    }

    #[tokio::test]
    async fn capacity_holds_under_many_inserts() {
        let (_, st) = store(50);
        for i in 0..500 {
            st.insert(session(
                T0,
                &format!("u{}", i % 7),
                Some(&format!("U{}@X", i % 5)),
                Some(&format!("s{i}")),
            ))
            .await
            .unwrap();
            assert!(st.len() <= 50);
        }
        assert_eq!(st.len(), 50);
        assert_indexes_consistent(&st);
    }

    async fn three_users(st: &MemoryStore) -> [Arc<Session>; 4] {
        let s = [
            session(T0, "u1", Some("Ann@Example.com"), Some("op-1")),
            session(T0 + 1, "u1", Some("ann@example.com"), Some("op-2")),
            session(T0 + 2, "u2", Some("bob@example.com"), Some("op-1")),
            session(T0 + 3, "u3", None, None),
        ];
        for x in &s {
            st.insert(x.clone()).await.unwrap();
        }
        s
    }

    #[tokio::test]
    async fn revoke_by_each_selector() {
        let sid = |provider: &str| Selector::Sid {
            provider: provider.into(),
            sid: "op-1".into(),
        };
        // What to revoke, how many end, and which of `three_users` survive.
        let cases: [(Selector, usize, &[usize]); 8] = [
            (Selector::Subject("u1".into()), 2, &[2, 3]),
            (Selector::Subject("U2".into()), 0, &[0, 1, 2, 3]),
            (Selector::Email("ANN@example.COM".into()), 2, &[2, 3]),
            (
                Selector::Email("nobody@example.com".into()),
                0,
                &[0, 1, 2, 3],
            ),
            (sid("other"), 0, &[0, 1, 2, 3]),
            (sid("corp"), 2, &[1, 3]),
            (Selector::All, 4, &[]),
            (
                Selector::Handle(SessionHandle::from_u64(7)),
                0,
                &[0, 1, 2, 3],
            ),
        ];
        for (sel, ended, survivors) in cases {
            let (_, st) = store(10);
            let s = three_users(&st).await;
            assert_eq!(
                st.revoke(&sel, RevokeReason::Admin).await.unwrap(),
                ended,
                "{sel:?}"
            );
            assert_eq!(
                st.revoke(&sel, RevokeReason::Admin).await.unwrap(),
                0,
                "{sel:?}"
            );
            let left: Vec<usize> = (0..4).filter(|i| st.lookup(s[*i].id()).is_some()).collect();
            assert_eq!(left, survivors, "{sel:?}");
            assert_indexes_consistent(&st);
        }

        let (_, st) = store(10);
        let s = three_users(&st).await;
        let by_id = Selector::Id(*s[3].id());
        assert_eq!(st.revoke(&by_id, RevokeReason::SignOut).await.unwrap(), 1);
        assert_eq!(st.revoke(&by_id, RevokeReason::SignOut).await.unwrap(), 0);
        let by_handle = Selector::Handle(s[2].handle());
        assert_eq!(st.revoke(&by_handle, RevokeReason::Admin).await.unwrap(), 1);
        assert_eq!(st.len(), 2);
        assert!(st.lookup(s[0].id()).is_some() && st.lookup(s[1].id()).is_some());
        assert_indexes_consistent(&st);
    }

    #[tokio::test]
    async fn revocation_bumps_the_epoch_only_when_something_ended() {
        let (_, st) = store(10);
        let s = three_users(&st).await;
        let mut rx = st.revocation_epoch();
        st.revoke(&Selector::Subject("nobody".into()), RevokeReason::Admin)
            .await
            .unwrap();
        assert!(!rx.has_changed().unwrap());
        st.revoke(&Selector::Id(*s[0].id()), RevokeReason::SignOut)
            .await
            .unwrap();
        assert!(rx.has_changed().unwrap());
        let first = *rx.borrow_and_update();
        st.revoke(&Selector::All, RevokeReason::Admin)
            .await
            .unwrap();
        assert!(*rx.borrow_and_update() > first);
    }

    #[tokio::test]
    async fn list_describes_selected_sessions_oldest_first() {
        let (_, st) = store(10);
        let s = three_users(&st).await;
        let all = st.list(&Selector::All).await.unwrap();
        assert_eq!(all.len(), 4);
        assert!(all.windows(2).all(|w| w[0].created_at <= w[1].created_at));
        let ann = st
            .list(&Selector::Email("ann@EXAMPLE.com".into()))
            .await
            .unwrap();
        assert_eq!(
            ann.iter().map(|x| x.session.clone()).collect::<Vec<_>>(),
            vec![s[0].handle().to_string(), s[1].handle().to_string()]
        );
        assert_eq!(ann[0].subject, "u1");
        assert_eq!(ann[0].provider, "corp");
        assert_eq!(ann[0].expires_at, T0 + LIFE.ttl_secs);
        let one = st.list(&Selector::Handle(s[2].handle())).await.unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].email.as_deref(), Some("bob@example.com"));
        assert!(st
            .list(&Selector::Subject("zed".into()))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn handles_find_ids() {
        let (_, st) = store(10);
        let s = three_users(&st).await;
        assert_eq!(
            st.find_handle(s[2].handle()).await.unwrap(),
            Some(*s[2].id())
        );
        assert_eq!(
            st.find_handle(SessionHandle::from_u64(1)).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn update_reindexes_a_changed_email_and_never_resurrects() {
        let (_, st) = store(10);
        let s = session(T0, "u1", Some("old@example.com"), None);
        st.insert(s.clone()).await.unwrap();
        s.update_profile(
            Profile {
                email: Some("New@Example.com".into()),
                ..Profile::default()
            },
            T0 + 10,
        );
        st.update(s.clone()).await.unwrap();
        assert_indexes_consistent(&st);
        assert!(st
            .list(&Selector::Email("old@example.com".into()))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            st.revoke(
                &Selector::Email("new@example.com".into()),
                RevokeReason::Admin
            )
            .await
            .unwrap(),
            1
        );
        st.update(s.clone()).await.unwrap();
        assert!(
            st.get_local(s.id(), T0 + 20).is_none(),
            "a revoked session stays revoked"
        );
        assert_eq!(st.index_keys(), [0; 4]);
    }

    #[tokio::test]
    async fn reinserting_a_live_id_replaces_it() {
        let (_, st) = store(10);
        let id = SessionId::generate().unwrap();
        let first = Arc::new(Session::with_id(
            id,
            new_session("u1", Some("a@x"), Some("s1")),
            T0,
            LIFE,
        ));
        let second = Arc::new(Session::with_id(
            id,
            new_session("u1", Some("b@x"), None),
            T0,
            LIFE,
        ));
        st.insert(first).await.unwrap();
        st.insert(second.clone()).await.unwrap();
        assert_eq!(st.len(), 1);
        assert!(Arc::ptr_eq(&st.lookup(&id).unwrap(), &second));
        assert_indexes_consistent(&st);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_inserts_revocations_and_lookups_keep_indexes_consistent() {
        let (_, st) = store(200);
        let st = Arc::new(st);
        let mut tasks = Vec::new();
        for t in 0..4 {
            let st = st.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..400 {
                    let subject = format!("u{}", (t * 7 + i) % 13);
                    let s = session(
                        T0,
                        &subject,
                        Some(&format!("{subject}@X")),
                        Some(&format!("s{}", i % 5)),
                    );
                    st.insert(s.clone()).await.unwrap();
                    st.get_local(s.id(), T0 + 1);
                    match i % 4 {
                        0 => {
                            st.revoke(
                                &Selector::Subject(format!("u{}", i % 13)),
                                RevokeReason::Admin,
                            )
                            .await
                            .unwrap();
                        }
                        1 => {
                            st.revoke(&Selector::Id(*s.id()), RevokeReason::SignOut)
                                .await
                                .unwrap();
                        }
                        _ => {}
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(st.len() <= 200);
        assert_indexes_consistent(&st);
    }

    #[tokio::test]
    async fn sweeper_task_sweeps_and_stops_with_the_store() {
        let (clock, st) = store(10);
        let st = Arc::new(st);
        st.insert(session(T0, "u1", None, None)).await.unwrap();
        let task = st.spawn_sweeper(std::time::Duration::from_millis(1));
        clock.advance_secs(LIFE.idle_timeout_secs);
        let swept = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while st.len() > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        })
        .await;
        assert!(swept.is_ok(), "the sweeper removed the expired session");
        drop(st);
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
        assert!(
            matches!(stopped, Ok(Ok(()))),
            "the sweeper ends once the store is gone"
        );
    }

    #[test]
    fn conf_defaults_and_validation() {
        let c: MemoryStoreConf = serde_json::from_str("{}").unwrap();
        assert_eq!(c, MemoryStoreConf::default());
        assert_eq!(c.capacity, 1_000_000);
        assert!(c.validate().is_empty());
        let bad: MemoryStoreConf =
            serde_json::from_str(r#"{"capacity": 0, "sweep_interval": "10ms"}"#).unwrap();
        let paths: Vec<String> = bad.validate().into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["capacity", "sweep_interval"]);
        assert!(serde_json::from_str::<MemoryStoreConf>(r#"{"capacity": 1, "size": 2}"#).is_err());
    }

    fn rss_bytes() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kb: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }

    /// Run alone: `cargo test --release -p warden-plugins session::memory -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "measures process memory; run alone with --ignored --nocapture"]
    async fn bytes_per_session() {
        const N: usize = 1_000_000;
        let groups: Vec<String> = (0..10)
            .map(|g| format!("team-{g:02}-engineering"))
            .collect();
        let (_, st) = store(N);
        let before = rss_bytes();
        for i in 0..N {
            let subject = format!("{i:020}");
            let new = crate::session::NewSession {
                provider: "corp".into(),
                issuer_url: "https://idp.example.com/realms/corp".into(),
                subject: subject.clone().into(),
                sid: Some(format!("{i:036}").into()),
                profile: Profile {
                    email: Some(format!("user{i}@example.com")),
                    name: Some(format!("User Number {i}")),
                    groups: groups.clone(),
                    claims: serde_json::Value::Null,
                },
                tokens: crate::session::Tokens {
                    refresh_token: Some(crate::session::Secret::new("r".repeat(40))),
                    access_token: Some(crate::session::Secret::new("a".repeat(40))),
                    access_token_expires_at: Some(T0 + 300),
                },
            };
            st.insert(Arc::new(Session::create(new, T0, LIFE).unwrap()))
                .await
                .unwrap();
        }
        let after = rss_bytes();
        assert_eq!(st.len(), N);
        println!(
            "{N} sessions: RSS +{} MiB, {} bytes per session",
            (after - before) >> 20,
            (after - before) / N
        );
    }
}
