//! Per-request state carried through Pingora's phases.

use crate::snapshot::{RouteRt, Snapshot};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Requests being served, for a graceful shutdown that ends as soon as the last one finishes.
pub static IN_FLIGHT: AtomicI64 = AtomicI64::new(0);

/// Counts a request as in flight for exactly its lifetime, however it ends.
pub struct InFlight;

impl Default for InFlight {
    fn default() -> Self {
        Self::new()
    }
}

impl InFlight {
    pub fn new() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        crate::metrics::REQUESTS_IN_FLIGHT.inc();
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::REQUESTS_IN_FLIGHT.dec();
    }
}

/// Why Warden answered a request itself (for logs and the status mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoHealthyBackend,
    BodyTooLarge,
}

pub struct Ctx {
    pub start: Instant,
    pub _in_flight: InFlight,
    pub snapshot: Option<Arc<Snapshot>>,
    pub route: Option<Arc<RouteRt>>,
    pub request_id: super::forwarded::RequestId,
    pub client_ip: Option<IpAddr>,
    pub peer_trusted: bool,
    pub tls: bool,
    /// The verified client certificate of the connection (mutual TLS).
    pub client_cert: Option<Arc<warden_plugins::policy::ClientCert>>,
    /// Backends already tried for this request (retries go elsewhere).
    pub tried: crate::upstream::pool::Tried,
    pub upstream: Option<SocketAddr>,
    pub body_bytes: u64,
    pub refusal: Option<Refusal>,
    /// The verified caller (absent on public routes).
    pub identity: Option<Arc<warden_plugins::Identity>>,
    pub session: Option<Arc<warden_plugins::session::Session>>,
    /// The normalised path when it differs from the request's (it is what goes upstream).
    pub normalized_path: Option<String>,
    /// Identity headers, assertion and impersonation prepared for the upstream request.
    pub prepared: Option<warden_plugins::annotate::Prepared>,
    /// An open upgraded stream's registration for continuous authorization (`crate::streams`).
    pub stream: Option<crate::streams::Registration>,
}

impl Ctx {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            _in_flight: InFlight::new(),
            snapshot: None,
            route: None,
            request_id: Default::default(),
            client_cert: None,
            client_ip: None,
            peer_trusted: false,
            tls: false,
            tried: Default::default(),
            upstream: None,
            body_bytes: 0,
            refusal: None,
            identity: None,
            session: None,
            normalized_path: None,
            prepared: None,
            stream: None,
        }
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Self::new()
    }
}
