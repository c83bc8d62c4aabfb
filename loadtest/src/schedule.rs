//! The open-loop schedule: request `i` is meant to leave at `start + i / rate`, whatever happened
//! to the requests before it. Latency is measured from that intended time, so a stall in the
//! system under test (or a shortage of connections) shows up in the tail instead of silently
//! delaying the next sends (coordinated omission).
//!
//! Everything here is arithmetic on offsets from the run's start, so it is tested with a
//! simulated clock; `pacer` turns it into wake-ups on the real one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A request that starts more than this after its intended time counts as late.
pub const LATE_THRESHOLD: Duration = Duration::from_millis(1);

/// Intended send times of a constant-rate run, as offsets from its start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
}

/// The rate given was not a positive, finite number of requests per second.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the rate must be a positive number of requests per second, not {0}")]
pub struct BadRate(pub f64);

impl Schedule {
    /// A schedule of `rate` requests per second.
    pub fn new(rate: f64) -> Result<Self, BadRate> {
        if rate.is_finite() && rate > 0.0 {
            Ok(Self { rate })
        } else {
            Err(BadRate(rate))
        }
    }

    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// When request `i` is meant to be sent.
    pub fn intended(&self, i: u64) -> Duration {
        Duration::from_nanos((i as f64 * 1e9 / self.rate) as u64)
    }

    /// How many requests are due at `elapsed`: requests `0..n` have `intended(i) <= elapsed`.
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        // The float estimate can be off by one either way; settle it against `intended` so
        // both functions agree exactly.
        let mut n = (elapsed.as_nanos() as f64 * self.rate / 1e9) as u64 + 1;
        while self.intended(n) <= elapsed {
            n += 1;
        }
        while n > 0 && self.intended(n - 1) > elapsed {
            n -= 1;
        }
        n
    }

    /// How many requests fall within the first `span` of the run (`intended(i) < span`).
    pub fn count_within(&self, span: Duration) -> u64 {
        if span.is_zero() {
            return 0;
        }
        self.due_by(span - Duration::from_nanos(1))
    }
}

/// How much later than intended a request was sent (zero when on time or early).
pub fn lateness(intended: Duration, sent: Duration) -> Duration {
    sent.saturating_sub(intended)
}

/// Whether a request sent at `sent` missed its intended time by more than [`LATE_THRESHOLD`].
pub fn is_late(intended: Duration, sent: Duration) -> bool {
    lateness(intended, sent) > LATE_THRESHOLD
}

/// Hands out request indices in order, up to a limit, to whichever connection is free first:
/// the earliest-due unsent request always goes to the first connection that can take it.
#[derive(Debug)]
pub struct Claims {
    next: AtomicU64,
    limit: u64,
}

impl Claims {
    /// Indices `0..limit`.
    pub fn new(limit: u64) -> Self {
        Self {
            next: AtomicU64::new(0),
            limit,
        }
    }

    /// The next unclaimed index, or `None` once all are taken.
    pub fn claim(&self) -> Option<u64> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.limit).then_some(i)
    }

    /// Stops further claims (a run cut short).
    pub fn close(&self) {
        self.next.store(u64::MAX / 2, Ordering::Relaxed);
    }

    /// The number of indices this hands out in all.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

#[cfg(test)]
mod tests;
