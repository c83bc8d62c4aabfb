//! Latency histograms: microsecond resolution from 1 µs to 60 s with three significant digits,
//! one per connection task (no sharing on the hot path), merged at the end.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// The largest latency recorded exactly; longer ones are clamped to it.
pub const MAX_TRACKED: Duration = Duration::from_secs(60);

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty histogram covering 1 µs..60 s at 3 significant digits.
    pub fn new() -> Self {
        // Documented impossibility: these bounds are valid constants (low >= 1, high >= 2 * low,
        // sigfig <= 5), the only inputs `new_with_bounds` rejects.
        let hist = Histogram::new_with_bounds(1, MAX_TRACKED.as_micros() as u64, 3)
            .expect("constant histogram bounds are valid");
        Self { hist }
    }

    /// Records one latency; below 1 µs counts as 1 µs, above 60 s as 60 s.
    pub fn record(&mut self, latency: Duration) {
        self.hist
            .saturating_record((latency.as_micros() as u64).max(1));
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot fail; clamping keeps it total anyway.
        if self.hist.add(&other.hist).is_err() {
            for v in other.hist.iter_recorded() {
                self.hist
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
    }

    /// The number of samples.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value (µs) at `quantile` (0.0..=1.0); 0 when empty.
    pub fn quantile_us(&self, quantile: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(quantile)
        }
    }

    /// The summary figures the report prints.
    pub fn summary(&self) -> LatencySummary {
        let empty = self.hist.is_empty();
        LatencySummary {
            count: self.count(),
            min: if empty { 0 } else { self.hist.min() },
            mean: if empty { 0.0 } else { self.hist.mean() },
            p50: self.quantile_us(0.50),
            p90: self.quantile_us(0.90),
            p99: self.quantile_us(0.99),
            p999: self.quantile_us(0.999),
            max: if empty { 0 } else { self.hist.max() },
        }
    }
}

/// Latency figures in microseconds. Values are HDR bucket values: exact to 3 significant
/// digits (within 0.1 %).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let mut h = Latencies::new();
        for v in 1..=1000 {
            h.record(us(v));
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(
            (s.min, s.p50, s.p90, s.p99, s.p999, s.max),
            (1, 500, 900, 990, 999, 1000)
        );
        assert!((s.mean - 500.5).abs() < 0.01, "{}", s.mean);
    }

    #[test]
    fn a_rare_stall_shows_only_in_the_tail() {
        let mut h = Latencies::new();
        for _ in 0..9_980 {
            h.record(us(100));
        }
        for _ in 0..20 {
            h.record(Duration::from_millis(250));
        }
        let s = h.summary();
        assert_eq!((s.p50, s.p90, s.p99), (100, 100, 100));
        // The top 0.2 % is the stall; HDR keeps 3 significant digits.
        assert!((249_800..=250_200).contains(&s.p999), "{}", s.p999);
        assert!((249_800..=250_200).contains(&s.max), "{}", s.max);
    }

    #[test]
    fn large_values_keep_three_significant_digits_and_clamp_at_sixty_seconds() {
        let mut h = Latencies::new();
        h.record(us(123_456));
        let v = h.quantile_us(1.0);
        assert!(v.abs_diff(123_456) <= 123, "{v}");
        h.record(Duration::from_secs(3600));
        assert!(h.summary().max >= 59_900_000 && h.summary().max <= 60_100_000);
        h.record(Duration::from_nanos(10));
        assert_eq!(h.summary().min, 1);
    }

    #[test]
    fn merging_adds_samples() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        for v in 1..=500 {
            a.record(us(v));
        }
        for v in 501..=1000 {
            b.record(us(v));
        }
        a.merge(&b);
        let s = a.summary();
        assert_eq!((s.count, s.p50, s.max), (1000, 500, 1000));
    }

    #[test]
    fn an_empty_histogram_reports_zeros() {
        let s = Latencies::new().summary();
        assert_eq!((s.count, s.min, s.p50, s.max), (0, 0, 0, 0));
    }
}
