//! The connection tasks: open loop (send each claimed request at its intended time, measure
//! from that time) and closed loop (send back to back), each keeping its own statistics.

use super::conn::Link;
use super::pacer::Gate;
use super::target::Target;
use crate::histogram::Latencies;
use crate::schedule::{self, Claims, Schedule};
use crate::status::{ExpectStatus, Outcome, Tally};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// After a failed connect a closed-loop task waits this long, so a refusing target is not
/// hammered in a tight loop (an open-loop task is paced by its schedule anyway).
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// What the connection tasks share (read-only apart from the atomic counters).
pub struct Shared {
    pub target: Target,
    pub claims: Claims,
    pub timeout: Duration,
    pub expect: ExpectStatus,
    pub warmup: Duration,
    pub kind: Kind,
}

/// How requests are paced.
pub enum Kind {
    /// Requests `0..warmup_requests` of the schedule are warm-up.
    Open {
        schedule: Schedule,
        warmup_requests: u64,
    },
    /// Back to back until `run_for` after the start, or until `budget` requests are measured.
    Closed {
        run_for: Option<Duration>,
        budget: Option<(AtomicU64, u64)>,
    },
}

/// What one task (and, merged, the whole run) measured; warm-up requests are only counted.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub latency: Latencies,
    pub tally: Tally,
    /// Open loop: requests sent more than 1 ms after their intended time, and the worst delay.
    pub late: u64,
    pub max_late: Duration,
    pub warmup: u64,
    /// When the last measured request finished.
    pub last_done: Option<Instant>,
}

impl Stats {
    fn record(
        &mut self,
        outcome: Outcome,
        latency: Duration,
        done: Instant,
        expect: &ExpectStatus,
    ) {
        if let Outcome::Response(_) = outcome {
            self.latency.record(latency);
        }
        self.tally.add(outcome, expect);
        self.last_done = Some(self.last_done.map_or(done, |d| d.max(done)));
    }

    /// Adds another task's figures.
    pub fn merge(&mut self, o: &Stats) {
        self.latency.merge(&o.latency);
        self.tally.merge(&o.tally);
        self.late += o.late;
        self.max_late = self.max_late.max(o.max_late);
        self.warmup += o.warmup;
        self.last_done = match (self.last_done, o.last_done) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Runs one connection task from `start` until the run's requests are used up.
pub async fn drive(mut link: Link, sh: &Shared, gate: &Gate, start: Instant) -> Stats {
    match &sh.kind {
        Kind::Open {
            schedule,
            warmup_requests,
        } => open_loop(&mut link, sh, gate, start, *schedule, *warmup_requests).await,
        Kind::Closed { run_for, budget } => {
            let end = run_for.map(|d| start + d);
            closed_loop(&mut link, sh, start, end, budget.as_ref()).await
        }
    }
}

async fn open_loop(
    link: &mut Link,
    sh: &Shared,
    gate: &Gate,
    start: Instant,
    schedule: Schedule,
    warmup_requests: u64,
) -> Stats {
    let mut st = Stats::default();
    while let Some(i) = sh.claims.claim() {
        let intended = schedule.intended(i);
        let due = start + intended;
        if Instant::now() < due {
            gate.wait(i).await;
        }
        let sent = Instant::now().saturating_duration_since(start);
        let outcome = link.exchange(sh.target.request(i), sh.timeout).await;
        let done = Instant::now();
        if i < warmup_requests {
            st.warmup += 1;
            continue;
        }
        if schedule::is_late(intended, sent) {
            st.late += 1;
        }
        st.max_late = st.max_late.max(schedule::lateness(intended, sent));
        // From the intended time, not from when this connection got to it.
        st.record(
            outcome,
            done.saturating_duration_since(due),
            done,
            &sh.expect,
        );
    }
    st
}

async fn closed_loop(
    link: &mut Link,
    sh: &Shared,
    start: Instant,
    end: Option<Instant>,
    budget: Option<&(AtomicU64, u64)>,
) -> Stats {
    let mut st = Stats::default();
    let measure_from = start + sh.warmup;
    tokio::time::sleep_until(start.into()).await;
    loop {
        let began = Instant::now();
        if end.is_some_and(|e| began >= e) {
            break;
        }
        let measured = began >= measure_from;
        if let (true, Some((used, limit))) = (measured, budget) {
            if used.fetch_add(1, Ordering::Relaxed) >= *limit {
                break;
            }
        }
        let Some(i) = sh.claims.claim() else { break };
        let outcome = link.exchange(sh.target.request(i), sh.timeout).await;
        let done = Instant::now();
        if outcome == Outcome::Connect {
            tokio::time::sleep(CONNECT_BACKOFF).await;
        }
        if !measured {
            st.warmup += 1;
            continue;
        }
        st.record(
            outcome,
            done.saturating_duration_since(began),
            done,
            &sh.expect,
        );
    }
    st
}
