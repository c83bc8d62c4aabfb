//! Wakes connection tasks when the requests they claimed fall due.
//!
//! Tokio's timer has millisecond granularity, which would make every request up to 1 ms late
//! and put that into the measured latency. Each generator thread instead runs a pacing task on
//! a `timerfd` (nanosecond resolution) registered with that thread's own runtime: it sleeps
//! until the earliest request waiting on this thread is due and releases everything due by
//! then. A separate pacing thread, which this replaced, cost a context switch into it and a
//! cross-thread wake-up out of it for every request; here the wake-up is the thread's own
//! `epoll_wait` returning. A task whose request is already due never waits: it checks the
//! clock itself first.

use crate::schedule::Schedule;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The waiting room of one generator thread, used only by that thread's tasks and its pacer.
/// Tasks on a thread claim indices in increasing order and register right after claiming, so
/// the queue is ordered by index.
#[derive(Debug, Default)]
pub struct Gate {
    /// Requests `0..released` are due.
    released: Cell<u64>,
    inner: RefCell<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    waiters: VecDeque<(u64, Waker)>,
    /// The pacing task, while it sleeps.
    pacer: Option<Waker>,
    /// A waiter went to the front of the queue since the pacer last looked: its timer may be
    /// set too late.
    front_changed: bool,
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
        self.released.set(n);
        {
            let mut inner = self.inner.borrow_mut();
            while inner.waiters.front().is_some_and(|(i, _)| *i < n) {
                if let Some((_, w)) = inner.waiters.pop_front() {
                    wake.push(w);
                }
            }
        }
        for w in wake.drain(..) {
            w.wake();
        }
    }

    fn is_released(&self, index: u64) -> bool {
        self.released.get() > index
    }

    /// The earliest index waiting here; clears the notice of a new front.
    fn earliest(&self) -> Option<u64> {
        let mut inner = self.inner.borrow_mut();
        inner.front_changed = false;
        inner.waiters.front().map(|(i, _)| *i)
    }

    /// Ready once a waiter has gone to the front since [`Gate::earliest`]; until then the
    /// pacer is parked here.
    fn poll_front_changed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.inner.borrow_mut();
        if std::mem::take(&mut inner.front_changed) {
            return Poll::Ready(());
        }
        if !inner
            .pacer
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            inner.pacer = Some(cx.waker().clone());
        }
        Poll::Pending
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
        if !self.queued {
            let mut inner = self.gate.inner.borrow_mut();
            // Keep the queue ordered even if tasks register out of claim order.
            let pos = inner.waiters.partition_point(|(i, _)| *i < self.index);
            inner.waiters.insert(pos, (self.index, cx.waker().clone()));
            let pacer = if pos == 0 {
                inner.front_changed = true;
                inner.pacer.take()
            } else {
                None
            };
            drop(inner);
            self.queued = true;
            if let Some(p) = pacer {
                p.wake();
            }
        }
        Poll::Pending
    }
}

/// A monotonic one-shot timer that the runtime's reactor watches.
pub struct Timer(AsyncFd<Fd>);

/// `AsyncFd` wants `AsRawFd`, which nix's `TimerFd` only has through `AsFd`.
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Timer {
    /// A timer registered with the current runtime (call it inside one).
    pub fn new() -> io::Result<Self> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // Deprecated because a type could hand out different fds over time; `Fd` owns one
        // `TimerFd` and always returns its fd. The replacement is `unsafe`, which this crate
        // forbids.
        #[allow(deprecated)]
        let registered = AsyncFd::with_interest(Fd(fd), Interest::READABLE)?;
        Ok(Self(registered))
    }

    /// Arms the timer for `at`; returns false, without arming, when `at` has passed.
    fn arm(&self, at: Instant) -> io::Result<bool> {
        let d = at.saturating_duration_since(Instant::now());
        if d.is_zero() {
            return Ok(false);
        }
        // Re-arming also resets an unread expiry, so the fd is never read.
        self.0
            .get_ref()
            .0
            .set(
                Expiration::OneShot(TimeSpec::from_duration(d)),
                TimerSetTimeFlags::empty(),
            )
            .map_err(io::Error::from)?;
        Ok(true)
    }

    fn poll_fired(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.poll_read_ready(cx) {
            Poll::Ready(Ok(mut guard)) => {
                guard.clear_ready();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Releases requests `0..total` of `schedule` (which starts at `start`) to this thread's
/// `gate` on time, sleeping on `timer` in between; returns when all are released. If the timer
/// fails, everything is released at once (the run goes on unpaced) and the error returned.
pub async fn pace(
    gate: &Gate,
    timer: &Timer,
    start: Instant,
    schedule: Schedule,
    total: u64,
) -> io::Result<()> {
    let mut wake = Vec::new();
    let result = async {
        loop {
            let now = Instant::now();
            let due = if now < start {
                0
            } else {
                schedule.due_by(now - start).min(total)
            };
            gate.release(due, &mut wake);
            if due >= total {
                return Ok(());
            }
            match gate.earliest() {
                Some(i) => {
                    if !timer.arm(start + schedule.intended(i))? {
                        continue;
                    }
                    // Either the timer fires, or an earlier request starts waiting.
                    let woke = poll_fn(|cx| match timer.poll_fired(cx) {
                        Poll::Ready(r) => Poll::Ready(r),
                        Poll::Pending => gate.poll_front_changed(cx).map(Ok),
                    });
                    woke.await?;
                }
                None => poll_fn(|cx| gate.poll_front_changed(cx)).await,
            }
        }
    }
    .await;
    if result.is_err() {
        gate.release(u64::MAX, &mut wake);
    }
    result
}

#[cfg(test)]
mod tests;
