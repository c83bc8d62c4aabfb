//! Waiting for a started process to serve: `GET` its readiness URL until it answers 2xx.

use crate::generator::target::Target;
use bytes::Bytes;
use http::Method;
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How often a readiness URL is asked again.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The process did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    #[error("bad readiness URL: {0}")]
    Url(#[from] crate::generator::target::TargetError),
    #[error("{url} was not ready within {waited:?} (last: {last})")]
    Timeout {
        url: String,
        waited: Duration,
        last: String,
    },
}

/// One `GET url`: the status, or what went wrong.
pub async fn probe(target: &Target) -> Result<u16, String> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut send, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = send
        .send_request(target.request(0))
        .await
        .map_err(|e| format!("request: {e}"))?;
    Ok(resp.status().as_u16())
}

/// Polls `url` until it answers 2xx, for at most `timeout`.
pub async fn wait_ready(url: &str, timeout: Duration) -> Result<(), ReadyError> {
    let target = Target::new(url, Method::GET, Vec::new(), None, false)?;
    let start = Instant::now();
    loop {
        let last = match tokio::time::timeout(PROBE_TIMEOUT, probe(&target)).await {
            Ok(Ok(s)) if (200..300).contains(&s) => return Ok(()),
            Ok(Ok(s)) => format!("status {s}"),
            Ok(Err(e)) => e,
            Err(_) => "no answer within 1s".to_string(),
        };
        if start.elapsed() >= timeout {
            return Err(ReadyError::Timeout {
                url: url.to_string(),
                waited: start.elapsed(),
                last,
            });
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
