//! Wakes connection tasks when the requests they claimed fall due.
//!
//! Tokio's timer has millisecond granularity, which would make every request up to 1 ms late
//! and put that into the measured latency. Instead one OS thread sleeps (`nanosleep`, tens of
//! microseconds of slack) until the next intended time and releases everything due. A task whose
//! request is already due never waits for it: it checks the clock itself first.

use crate::schedule::Schedule;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// The waiting room of one generator thread. Tasks on a thread claim indices in increasing
/// order and register right after claiming, so the queue is ordered by index.
#[derive(Debug, Default)]
pub struct Gate {
    /// Requests `0..released` are due.
    released: AtomicU64,
    waiters: Mutex<VecDeque<(u64, Waker)>>,
}

impl Gate {
    /// Waits until request `index` is released.
    pub fn wait(&self, index: u64) -> Wait<'_> {
        Wait {
            gate: self,
            index,
            queued: false,
        }
    }

    /// Marks requests `0..n` due and wakes their tasks; `wake` is scratch space kept by the
    /// caller so releasing does not allocate.
    fn release(&self, n: u64, wake: &mut Vec<Waker>) {
        // Stored before taking the lock: a task that checks under the lock either sees the new
        // value or is already queued and is found below, so no wake-up is lost.
        self.released.store(n, Ordering::Release);
        {
            let mut q = self.waiters.lock();
            while q.front().is_some_and(|(i, _)| *i < n) {
                if let Some((_, w)) = q.pop_front() {
                    wake.push(w);
                }
            }
        }
        for w in wake.drain(..) {
            w.wake();
        }
    }

    fn is_released(&self, index: u64) -> bool {
        self.released.load(Ordering::Acquire) > index
    }
}

/// The future returned by [`Gate::wait`].
pub struct Wait<'a> {
    gate: &'a Gate,
    index: u64,
    queued: bool,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.gate.is_released(self.index) {
            return Poll::Ready(());
        }
        let mut q = self.gate.waiters.lock();
        if self.gate.is_released(self.index) {
            return Poll::Ready(());
        }
        if !self.queued {
            // Keep the queue ordered even if tasks register out of claim order.
            let pos = q.partition_point(|(i, _)| *i < self.index);
            q.insert(pos, (self.index, cx.waker().clone()));
            drop(q);
            self.queued = true;
        }
        Poll::Pending
    }
}

/// Releases requests `0..total` of `schedule` (which starts at `start`) to `gates` on time;
/// returns when all are released or `stop` is set. Runs on its own thread.
pub fn run(start: Instant, schedule: Schedule, total: u64, gates: &[Arc<Gate>], stop: &AtomicBool) {
    let mut released = 0;
    let mut wake = Vec::new();
    while released < total && !stop.load(Ordering::Relaxed) {
        let now = Instant::now().saturating_duration_since(start);
        let due = if Instant::now() < start {
            0
        } else {
            schedule.due_by(now).min(total)
        };
        if due > released {
            released = due;
            for g in gates {
                g.release(due, &mut wake);
            }
        }
        if released >= total {
            break;
        }
        let next = start + schedule.intended(released);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn waiters_are_woken_in_index_order_and_only_when_due() {
        let gate = Arc::new(Gate::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let g = gate.clone();
        let o = order.clone();
        let waiting = std::thread::spawn(move || {
            rt.block_on(async move {
                let mut tasks = Vec::new();
                for i in [2u64, 0, 1] {
                    let (g, o) = (g.clone(), o.clone());
                    tasks.push(tokio::spawn(async move {
                        g.wait(i).await;
                        o.lock().push(i);
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            })
        });
        // A schedule of 1,000/s released from now: all three within about 2 ms.
        let stop = AtomicBool::new(false);
        run(
            Instant::now(),
            Schedule::new(1000.0).unwrap(),
            3,
            std::slice::from_ref(&gate),
            &stop,
        );
        waiting.join().unwrap();
        let mut seen = order.lock().clone();
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2]);
        assert!(gate.is_released(2));
        assert!(!gate.is_released(3));
    }

    #[test]
    fn nothing_is_released_before_the_start() {
        let gate = Arc::new(Gate::default());
        let stop = AtomicBool::new(true);
        run(
            Instant::now() + Duration::from_secs(3600),
            Schedule::new(10.0).unwrap(),
            5,
            std::slice::from_ref(&gate),
            &stop,
        );
        assert!(!gate.is_released(0));
    }
}
