//! Operational logs: `tracing` as JSON lines on stderr, with Pingora's `log` records bridged in.
//! (Access and audit logs are separate: `jsonlog.rs`.)

use tracing_subscriber::EnvFilter;

pub fn init() {
    // Pingora logs every failed TLS handshake at error level; scanners would flood the log.
    let default = "info,pingora_core::listeners=warn,pingora_core::protocols::tls=warn";
    let filter = EnvFilter::try_from_env("WARDEN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .try_init();
}
