//! What clients see when something goes wrong, through the real binary: 502 for a failed
//! upstream, 504 for a slow one, 413 for a body over the route's limit (declared or streamed),
//! 400 for a malformed request; JSON for JSON clients, one line of text otherwise. Warden's own
//! 5xx are only ever 502, 503 and 504.

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use warden_tests::upstream::Echo;
use warden_tests::{client, free_port, warden::Setup, Upstream, Warden};

const CONF: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
routes:
  - { public: true, name: dead, host: dead.test, upstreams: ["${DEAD}"] }
  - { public: true, name: slow, host: slow.test, upstreams: ["${UP}"], timeouts: { read: 300ms } }
  - { public: true, name: small, host: small.test, upstreams: ["${UP}"], max_body_size: 1KiB }
"#;

async fn start() -> (Upstream, Warden) {
    let up = Upstream::start("up").await;
    let vars = [
        ("UP", up.address()),
        ("DEAD", format!("127.0.0.1:{}", free_port())),
    ];
    let w = Setup::new().start(CONF, &vars).await;
    (up, w)
}

/// Checks a JSON error answer and returns its request id.
async fn json_error(r: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/json");
    let rid = r.headers()["x-request-id"]
        .to_str()
        .expect("request id")
        .to_string();
    let body: serde_json::Value = r.json().await.expect("json body");
    assert_eq!(body["error"], code, "{body}");
    assert_eq!(body["request_id"], rid.as_str());
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    rid
}

/// Every answer Warden logged up to request `last_rid` is either below 500 or one of the
/// statuses that name an upstream problem (502, 503, 504).
async fn assert_no_other_5xx(w: &Warden, last_rid: &str) {
    w.wait_access_log(|l| l["request_id"] == last_rid).await;
    for line in w.access_log() {
        let status = line["status"].as_u64().expect("status");
        assert!(
            status < 500 || [502, 503, 504].contains(&status),
            "Warden answered {status}: {line}"
        );
    }
}

#[tokio::test]
async fn a_failed_upstream_is_a_502() {
    let (_up, w) = start().await;
    let r = client()
        .get(w.url("/"))
        .header("host", "dead.test")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 502);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("content type")
        .starts_with("text/plain"));
    assert!(r.text().await.expect("body").starts_with("502 Bad Gateway"));

    let r = client()
        .get(w.url("/"))
        .header("host", "dead.test")
        .header("accept", "application/json")
        .send()
        .await
        .expect("request");
    let rid = json_error(r, 502, "upstream_error").await;
    assert_no_other_5xx(&w, &rid).await;
}

#[tokio::test]
async fn an_upstream_slower_than_the_read_timeout_is_a_504() {
    let (_up, w) = start().await;
    let r = client()
        .get(w.url("/slow/2000"))
        .header("host", "slow.test")
        .header("accept", "application/json")
        .send()
        .await
        .expect("request");
    let rid = json_error(r, 504, "upstream_timeout").await;
    // A fast answer on the same route is still served.
    let r = client()
        .get(w.url("/slow/10"))
        .header("host", "slow.test")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_no_other_5xx(&w, &rid).await;
}

/// A body of `total` bytes in 256-byte chunks, of unknown length (sent chunked).
fn chunked(total: usize) -> reqwest::Body {
    let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = (0..total / 256)
        .map(|_| Ok(Frame::data(Bytes::from(vec![b'x'; 256]))))
        .collect();
    reqwest::Body::wrap(StreamBody::new(futures_util::stream::iter(chunks)))
}

#[tokio::test]
async fn a_body_within_the_limit_is_forwarded_whole() {
    let (_up, w) = start().await;
    for body in [reqwest::Body::from(vec![b'x'; 1024]), chunked(1024)] {
        let r = client()
            .post(w.url("/upload"))
            .header("host", "small.test")
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        let echo: Echo = r.json().await.expect("echo");
        assert_eq!(echo.body_len, 1024);
    }
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_a_413_before_the_upstream_sees_it() {
    let (up, w) = start().await;
    let r = client()
        .post(w.url("/upload"))
        .header("host", "small.test")
        .header("accept", "application/json")
        .body(vec![b'x'; 2048])
        .send()
        .await
        .expect("request");
    let rid = json_error(r, 413, "body_too_large").await;
    assert_eq!(up.hits(), 0);
    assert_no_other_5xx(&w, &rid).await;
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_a_413() {
    let (_up, w) = start().await;
    let r = client()
        .post(w.url("/upload"))
        .header("host", "small.test")
        .header("accept", "application/json")
        .body(chunked(4096))
        .send()
        .await
        .expect("request");
    let rid = json_error(r, 413, "body_too_large").await;
    assert_no_other_5xx(&w, &rid).await;
}

/// Sends raw bytes and returns the status line of the answer.
async fn raw_status_line(w: &Warden, request: &[u8]) -> String {
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", w.http))
        .await
        .expect("connect");
    sock.write_all(request).await.expect("write");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(sock).read_line(&mut line),
    )
    .await
    .expect("an answer in time")
    .expect("read");
    line.trim_end().to_string()
}

#[tokio::test]
async fn malformed_requests_are_a_400_never_a_500() {
    let (up, w) = start().await;
    // Each at least 24 bytes: with h2c on (the default) Pingora waits for that many to rule
    // out the HTTP/2 preface before it parses HTTP/1.
    let cases: [&[u8]; 6] = [
        b"THIS IS NOT A REQUEST LINE\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: slow.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: slow.test\r\nBad\x01Name: v\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: slow.test\r\nX-Nul: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: not a host!\r\n\r\n",
        b"GET / HTTP/1.1\r\nUser-Agent: no-host\r\n\r\n",
    ];
    for request in cases {
        assert_eq!(
            raw_status_line(&w, request).await,
            "HTTP/1.1 400 Bad Request",
            "{}",
            String::from_utf8_lossy(request).escape_debug()
        );
    }
    assert_eq!(up.hits(), 0);
    // Warden is still serving.
    let r = client()
        .get(w.url("/slow/1"))
        .header("host", "slow.test")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
}
