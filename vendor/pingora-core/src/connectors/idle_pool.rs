// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//! Warden patch: the keep-alive pool of idle upstream connections.
//!
//! Upstream Pingora watches every idle connection with a task of its own: releasing a
//! connection spawned a task that read from it, and taking the connection back woke that task
//! and waited for it to give the socket up. That is a spawn, two extra task switches and four
//! allocations for every request that reuses a connection. Here idle connections sit in a plain
//! map; one sweeper per pool closes those past their idle timeout and those the upstream closed
//! or wrote to, once a second. Between sweeps the same two checks run when a connection is taken:
//! the deadline here, and [`super::test_reusable_stream`] in the connector.

use super::test_reusable_stream;
use crate::protocols::Stream;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often the sweeper looks at every idle connection.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// An idle connection and when it stops being reusable.
pub(crate) struct Idle {
    pub(crate) stream: Stream,
    pub(crate) since: Instant,
    deadline: Option<Instant>,
}

impl Idle {
    fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }
}

/// Reuse hashes are already hashes; hashing them again would be wasted work per request.
#[derive(Default)]
struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is reached for a `u64` key; this keeps any other use correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

#[derive(Default)]
struct Groups {
    /// Per reuse hash, oldest first. Groups left empty stay until the next sweep, so a key
    /// used by one connection at a time does not allocate its queue again on every request.
    by_key: HashMap<u64, VecDeque<Idle>, BuildHasherDefault<KeyIsHash>>,
    len: usize,
}

impl Groups {
    /// Removes the connection idle the longest, whatever its key.
    fn pop_oldest(&mut self) -> Option<Idle> {
        let key = self
            .by_key
            .iter()
            .filter_map(|(k, q)| q.front().map(|i| (*k, i.since)))
            .min_by_key(|(_, since)| *since)
            .map(|(k, _)| k)?;
        let idle = self.by_key.get_mut(&key)?.pop_front()?;
        self.len -= 1;
        Some(idle)
    }
}

/// Idle upstream connections by reuse hash, at most `size` of them.
pub(crate) struct IdlePool {
    groups: Mutex<Groups>,
    size: usize,
    sweeper_started: AtomicBool,
    /// The connector's count of connections that received data while idle.
    unexpected_data: Arc<AtomicU64>,
}

impl IdlePool {
    pub(crate) fn new(size: usize, unexpected_data: Arc<AtomicU64>) -> Self {
        IdlePool {
            groups: Mutex::new(Groups::default()),
            size,
            sweeper_started: AtomicBool::new(false),
            unexpected_data,
        }
    }

    /// Keeps `stream` for reuse under `key`. Returns the connection this pushed out, if the
    /// pool was full: the caller drops it outside the lock.
    pub(crate) fn put(
        self: &Arc<Self>,
        key: u64,
        stream: Stream,
        idle_timeout: Option<Duration>,
    ) -> Option<Idle> {
        let now = Instant::now();
        let idle = Idle {
            stream,
            since: now,
            deadline: idle_timeout.and_then(|t| now.checked_add(t)),
        };
        if self.size == 0 {
            return Some(idle);
        }
        self.start_sweeper();
        let mut groups = self.groups.lock();
        groups.by_key.entry(key).or_default().push_back(idle);
        groups.len += 1;
        if groups.len > self.size {
            groups.pop_oldest()
        } else {
            None
        }
    }

    /// The most recently released connection under `key` that is within its idle timeout.
    /// The most recent one is the least likely to have been closed by the upstream, and
    /// reusing it lets the older ones age out when traffic drops.
    pub(crate) fn take(&self, key: u64) -> Option<Stream> {
        loop {
            let idle = {
                let mut groups = self.groups.lock();
                let idle = groups.by_key.get_mut(&key)?.pop_back()?;
                groups.len -= 1;
                idle
            };
            if idle.expired(Instant::now()) {
                // Dropped here, outside the lock.
                continue;
            }
            return Some(idle.stream);
        }
    }

    /// Removes every connection past its deadline, closed by the upstream, or with data the
    /// upstream should not have sent, and every empty group. Returns what it removed, for the
    /// caller to drop outside the lock.
    pub(crate) fn sweep(&self, now: Instant) -> Vec<Idle> {
        let mut closed = Vec::new();
        let mut groups = self.groups.lock();
        let groups = &mut *groups;
        for queue in groups.by_key.values_mut() {
            for _ in 0..queue.len() {
                let Some(mut idle) = queue.pop_front() else {
                    break;
                };
                if idle.expired(now)
                    || !test_reusable_stream(&mut idle.stream, &self.unexpected_data)
                {
                    closed.push(idle);
                } else {
                    queue.push_back(idle);
                }
            }
        }
        groups.len -= closed.len();
        groups.by_key.retain(|_, q| !q.is_empty());
        closed
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.groups.lock().len
    }

    /// One sweeper per pool, on the runtime of the first release. It holds the pool weakly,
    /// so it ends with the connector.
    fn start_sweeper(self: &Arc<Self>) {
        if self.sweeper_started.load(Ordering::Relaxed)
            || self.sweeper_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let pool: Weak<Self> = Arc::downgrade(self);
        pingora_runtime::current_handle().spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick completes at once.
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else {
                    return;
                };
                let closed = pool.sweep(Instant::now());
                drop(pool);
                drop(closed);
            }
        });
    }
}
