//! The load generator: N connection tasks on a few single-threaded tokio runtimes, paced by an
//! open-loop schedule (or back to back in closed loop), with the processes under test sampled at
//! the edges of the measured window.
//!
//! On a 2-core machine the generator and the system under test share the cores: the figures are
//! comparable between runs on the same machine, not absolute.

pub mod conn;
pub mod pacer;
pub mod target;
pub mod worker;

use crate::procstat::{self, Machine, Usage};
use crate::report::{Report, Settings};
use crate::schedule::{Claims, Schedule};
use crate::status::ExpectStatus;
use conn::{H2Slot, Link};
use pacer::Gate;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};
use target::Target;
use worker::{Kind, Shared, Stats};

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// A constant arrival rate, requests per second.
    Open { rate: f64 },
    /// Every connection sends its next request as soon as the last one is answered.
    Closed,
}

/// How long the measured part of a run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Duration(Duration),
    Requests(u64),
}

/// A process whose CPU time and memory the report includes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    pub pid: u32,
    pub name: Option<String>,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub target: Target,
    pub mode: Mode,
    pub length: Length,
    /// Sent but excluded from the figures.
    pub warmup: Duration,
    /// Concurrent requests at most: HTTP/1.1 connections, or HTTP/2 streams.
    pub connections: usize,
    /// HTTP/2 only: TCP connections the streams are multiplexed over.
    pub h2_connections: usize,
    /// Generator threads, each with its own single-threaded runtime.
    pub threads: usize,
    /// A request not answered within this is a timeout.
    pub timeout: Duration,
    pub expect: ExpectStatus,
    pub watch: Vec<Watched>,
    pub label: Option<String>,
}

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Proc(#[from] procstat::ProcError),
    #[error("a generator thread failed: {0}")]
    Thread(String),
}

/// Runs the load and returns the report. Blocks the calling thread (call it from
/// `spawn_blocking` inside a runtime).
pub fn run(cfg: &RunConfig) -> Result<Report, RunError> {
    let invalid = |m: &str| Err(RunError::Invalid(m.to_string()));
    if cfg.connections == 0 {
        return invalid("--connections must be at least 1");
    }
    if cfg.threads == 0 {
        return invalid("--threads must be at least 1");
    }
    if cfg.target.http2 && cfg.h2_connections == 0 {
        return invalid("--h2-connections must be at least 1");
    }
    if cfg.timeout.is_zero() {
        return invalid("--timeout must be positive");
    }
    if let Length::Requests(0) | Length::Duration(Duration::ZERO) = cfg.length {
        return invalid("the run must last more than zero requests or seconds");
    }
    let threads = cfg.threads.min(cfg.connections);
    // A pid that does not exist is a mistake to report now, not after the run.
    for w in &cfg.watch {
        procstat::sample(w.pid)?;
    }

    let (kind, total) = match cfg.mode {
        Mode::Open { rate } => {
            let schedule = Schedule::new(rate).map_err(|e| RunError::Invalid(e.to_string()))?;
            let warmup_requests = schedule.count_within(cfg.warmup);
            let total = match cfg.length {
                Length::Duration(d) => schedule.count_within(cfg.warmup + d),
                Length::Requests(n) => warmup_requests + n,
            };
            (
                Kind::Open {
                    schedule,
                    warmup_requests,
                },
                total,
            )
        }
        Mode::Closed => {
            let (run_for, budget) = match cfg.length {
                Length::Duration(d) => (Some(cfg.warmup + d), None),
                Length::Requests(n) => (None, Some((AtomicU64::new(0), n))),
            };
            (Kind::Closed { run_for, budget }, u64::MAX)
        }
    };
    let shared = Arc::new(Shared {
        target: cfg.target.clone(),
        claims: Claims::new(total),
        timeout: cfg.timeout,
        expect: cfg.expect.clone(),
        warmup: cfg.warmup,
        kind,
    });

    let ready = Arc::new(Barrier::new(threads + 1));
    let go = Arc::new(Barrier::new(threads + 1));
    let start_at = Arc::new(OnceLock::new());
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let per_thread = PerThread {
            shared: shared.clone(),
            total,
            ready: ready.clone(),
            go: go.clone(),
            start_at: start_at.clone(),
            connections: share(cfg.connections, threads, t),
            h2_connections: share(cfg.h2_connections, threads, t).max(1),
        };
        let h = std::thread::Builder::new()
            .name(format!("loadgen-{t}"))
            .spawn(move || per_thread.run())
            .map_err(|e| RunError::Thread(e.to_string()))?;
        handles.push(h);
    }

    // Every connection is open (or has failed) before the clock starts.
    ready.wait();
    let start = Instant::now() + Duration::from_millis(2);
    let _ = start_at.set(start);
    go.wait();

    let window_start = start + cfg.warmup;
    std::thread::sleep(window_start.saturating_duration_since(Instant::now()));
    let first: Vec<_> = cfg.watch.iter().map(|w| procstat::sample(w.pid)).collect();
    let me = std::process::id();
    let first_machine = procstat::machine_sample().zip(procstat::sample(me).ok());

    let mut stats = Stats::default();
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => stats.merge(&s),
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("a generator thread panicked".to_string()),
        }
    }
    let last: Vec<_> = cfg.watch.iter().map(|w| procstat::sample(w.pid)).collect();
    let last_machine = procstat::machine_sample().zip(procstat::sample(me).ok());
    if let Some(e) = failure {
        return Err(RunError::Thread(e));
    }

    let elapsed = stats.last_done.map_or(Duration::ZERO, |d| {
        d.saturating_duration_since(window_start)
    });
    let requests = stats.tally.requests();
    let mut usage = Vec::new();
    for ((w, a), b) in cfg.watch.iter().zip(first).zip(last) {
        let mut u = Usage::between(w.pid, &a?, &b?, requests);
        u.name = w.name.clone();
        usage.push(u);
    }
    // The machine's load is context for the figures; a machine without `/proc/stat` has none.
    let machine = first_machine.zip(last_machine).map(|((m0, g0), (m1, g1))| {
        Machine::between(&m0, &m1, &Usage::between(me, &g0, &g1, requests))
    });
    let mut report = Report::new(Settings::of(cfg, threads), &stats, elapsed, usage);
    report.machine = machine;
    Ok(report)
}

/// Thread `t`'s share of `n` items spread over `threads`.
fn share(n: usize, threads: usize, t: usize) -> usize {
    n / threads + usize::from(t < n % threads)
}

/// One generator thread: its runtime, its connection tasks and its part of the barriers.
struct PerThread {
    shared: Arc<Shared>,
    /// Requests in the whole run (open loop).
    total: u64,
    ready: Arc<Barrier>,
    go: Arc<Barrier>,
    start_at: Arc<OnceLock<Instant>>,
    connections: usize,
    h2_connections: usize,
}

impl PerThread {
    fn run(self) -> Result<Stats, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let rt = match rt {
            Ok(rt) => rt,
            Err(e) => {
                // Still meet the others at both barriers, or the run would hang.
                self.ready.wait();
                self.go.wait();
                return Err(format!("cannot start a runtime: {e}"));
            }
        };
        let local = tokio::task::LocalSet::new();
        let addr = self.shared.target.addr;
        let open = match &self.shared.kind {
            Kind::Open { schedule, .. } => Some(*schedule),
            Kind::Closed { .. } => None,
        };
        let prepared = local.block_on(&rt, async {
            // Open loop: this thread's timer, made before the start so a failure stops the run.
            let timer = match open {
                Some(_) => Some(pacer::Timer::new().map_err(|e| format!("cannot pace: {e}"))?),
                None => None,
            };
            let slots: Vec<H2Slot> = (0..self.h2_connections)
                .map(|_| Rc::new(RefCell::new(None)))
                .collect();
            let mut links = Vec::with_capacity(self.connections);
            for k in 0..self.connections {
                let mut link = if self.shared.target.http2 {
                    Link::h2(addr, slots[k % slots.len()].clone())
                } else {
                    Link::h1(addr)
                };
                // A failure here is retried, and counted, by the first request.
                let _ = link.connect().await;
                links.push(link);
            }
            Ok::<_, String>((links, timer))
        });
        self.ready.wait();
        self.go.wait();
        let (links, timer) = prepared?;
        let Some(&start) = self.start_at.get() else {
            return Err("the start time was not set".into());
        };
        let gate = Rc::new(Gate::default());
        let pacing_failed = Rc::new(RefCell::new(None));
        local.block_on(&rt, async {
            if let (Some(schedule), Some(timer)) = (open, timer) {
                let (gate, failed, total) = (gate.clone(), pacing_failed.clone(), self.total);
                // Not awaited: it ends when all is released, or with the tasks.
                tokio::task::spawn_local(async move {
                    if let Err(e) = pacer::pace(&gate, &timer, start, schedule, total).await {
                        *failed.borrow_mut() = Some(e);
                    }
                });
            }
            let tasks: Vec<_> = links
                .into_iter()
                .map(|link| {
                    let (shared, gate) = (self.shared.clone(), gate.clone());
                    tokio::task::spawn_local(async move {
                        worker::drive(link, &shared, &gate, start).await
                    })
                })
                .collect();
            let mut stats = Stats::default();
            for t in tasks {
                match t.await {
                    Ok(s) => stats.merge(&s),
                    Err(e) => return Err(format!("a connection task failed: {e}")),
                }
            }
            if let Some(e) = pacing_failed.borrow_mut().take() {
                return Err(format!("pacing failed: {e}"));
            }
            Ok(stats)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn connections_are_shared_out_over_threads() {
        let parts: Vec<_> = (0..3).map(|t| share(10, 3, t)).collect();
        assert_eq!(parts, [4, 3, 3]);
        assert_eq!((0..2).map(|t| share(1, 2, t)).sum::<usize>(), 1);
    }
}
