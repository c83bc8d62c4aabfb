//! Warden's load-test harness: an open-loop HTTP load generator free of coordinated omission,
//! HDR latency histograms, process CPU and memory accounting, a built-in upstream, and scenario
//! files that describe what to start, what load to send, what churn to apply and what must hold.
#![forbid(unsafe_code)]

pub mod cli;
pub mod generator;
pub mod histogram;
pub mod passthrough;
pub mod procstat;
pub mod readiness;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod sessions_fill;
pub mod status;
pub mod tokens;
pub mod upstream;
