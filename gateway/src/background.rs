//! One small tokio runtime for everything that is not a request: health checks, DNS, conf
//! watching, identity refreshes. Pingora gives each service its own runtime; keeping this work
//! off the proxy's workers keeps their latency flat.

use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Handle, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The background runtime's handle, creating the runtime on first use.
pub fn handle() -> Handle {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("warden-bg")
                .enable_all()
                .build()
                // Without a runtime nothing can be served; failing here at start-up is the
                // only sensible outcome.
                .expect("cannot start the background runtime")
        })
        .handle()
        .clone()
}

pub fn spawn<F>(f: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(f)
}

/// Runs a future to completion on the background runtime from a thread outside any runtime
/// (start-up, the `check` command).
pub fn block_on<F: Future>(f: F) -> F::Output {
    handle().block_on(f)
}
