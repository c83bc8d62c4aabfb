//! The built-in upstream: answers every request with `200 OK` and a 3-byte body, over HTTP/1.1
//! keep-alive or h2c (prior knowledge) on one port. It stands for "the upstream alone" in
//! comparisons, so it does nothing else.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;

/// The response body.
pub const BODY: &[u8] = b"OK\n";

async fn answer(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

/// Serves connections from `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, shutdown: oneshot::Receiver<()>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                // Out of file descriptors and the like: keep serving the connections we have.
                Err(_) => continue,
            },
            _ = &mut shutdown => return,
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            // A client that goes away mid-request is not our problem.
            let _ = builder
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

/// A running upstream on its own runtime; stops when dropped or on [`Upstream::stop`].
pub struct Upstream {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    /// Binds `listen` (port 0 for any) and serves on `threads` worker threads.
    pub fn start(listen: SocketAddr, threads: usize) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("upstream")
            .enable_all()
            .build()?;
        // Entered, not blocked on: the caller may itself be inside a runtime.
        let listener = {
            let _in_rt = rt.enter();
            let socket = if listen.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            // A restarted upstream rebinds its port while old connections sit in TIME_WAIT.
            socket.set_reuseaddr(true)?;
            socket.bind(listen)?;
            socket.listen(1024)?
        };
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("upstream-main".into())
            .spawn(move || rt.block_on(serve(listener, rx)))?;
        Ok(Self {
            addr,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// Stops accepting and waits for the server to wind down.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Blocks until the server stops (it only stops through [`Upstream::stop`] or a drop
    /// elsewhere, so this is for the foreground `upstream` command).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shutdown();
    }
}
