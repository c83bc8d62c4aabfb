//! Upstream pools: membership (DNS), load balancing, active health checks and the per-request
//! peer settings (timeouts, TLS, HTTP/2).

pub mod discovery;
pub mod pool;

pub use pool::{Pool, PoolSettings};
