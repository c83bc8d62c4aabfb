//! One client link to the target over hyper's connection API (no pool): an HTTP/1.1 keep-alive
//! connection owned by one task, or a handle on an HTTP/2 connection shared by several tasks.

use crate::status::Outcome;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::net::TcpStream;

type Body = Empty<Bytes>;

/// A slot holding one HTTP/2 connection of a generator thread, shared by the tasks assigned to
/// it; whoever finds it closed reconnects it.
pub type H2Slot = Rc<RefCell<Option<http2::SendRequest<Body>>>>;

/// How a connection task reaches the target.
pub enum Link {
    H1 {
        addr: SocketAddr,
        conn: Option<http1::SendRequest<Body>>,
    },
    H2 {
        addr: SocketAddr,
        slot: H2Slot,
        conn: Option<http2::SendRequest<Body>>,
    },
}

/// The connection could not be made.
#[derive(Debug)]
pub struct ConnectFailed;

async fn tcp(addr: SocketAddr) -> Result<TokioIo<TcpStream>, ConnectFailed> {
    let s = TcpStream::connect(addr).await.map_err(|_| ConnectFailed)?;
    // Requests are small and latency is what we measure.
    s.set_nodelay(true).map_err(|_| ConnectFailed)?;
    Ok(TokioIo::new(s))
}

async fn connect_h1(addr: SocketAddr) -> Result<http1::SendRequest<Body>, ConnectFailed> {
    let (send, conn) = http1::handshake(tcp(addr).await?)
        .await
        .map_err(|_| ConnectFailed)?;
    tokio::spawn(async move {
        // Ends when the connection closes; failures surface on the next request.
        let _ = conn.await;
    });
    Ok(send)
}

async fn connect_h2(addr: SocketAddr) -> Result<http2::SendRequest<Body>, ConnectFailed> {
    let (send, conn) = http2::Builder::new(TokioExecutor::new())
        .handshake(tcp(addr).await?)
        .await
        .map_err(|_| ConnectFailed)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

impl Link {
    /// An HTTP/1.1 link, not yet connected.
    pub fn h1(addr: SocketAddr) -> Self {
        Link::H1 { addr, conn: None }
    }

    /// A handle on the HTTP/2 connection in `slot`.
    pub fn h2(addr: SocketAddr, slot: H2Slot) -> Self {
        Link::H2 {
            addr,
            slot,
            conn: None,
        }
    }

    /// Connects now if not connected (before the clock starts, so the first requests do not pay
    /// for it).
    pub async fn connect(&mut self) -> Result<(), ConnectFailed> {
        match self {
            Link::H1 { addr, conn } => {
                if conn.as_ref().is_none_or(|c| c.is_closed()) {
                    *conn = Some(connect_h1(*addr).await?);
                }
            }
            Link::H2 { addr, slot, conn } => {
                if conn.as_ref().is_none_or(|c| c.is_closed()) {
                    let shared = slot.borrow().as_ref().filter(|c| !c.is_closed()).cloned();
                    let c = match shared {
                        Some(c) => c,
                        None => {
                            let c = connect_h2(*addr).await?;
                            *slot.borrow_mut() = Some(c.clone());
                            c
                        }
                    };
                    *conn = Some(c);
                }
            }
        }
        Ok(())
    }

    /// Forgets the connection (after a timeout its state is unknown).
    pub fn reset(&mut self) {
        match self {
            Link::H1 { conn, .. } => *conn = None,
            Link::H2 { conn, .. } => *conn = None,
        }
    }

    /// Sends `req` and reads the whole response within `timeout`.
    pub async fn exchange(&mut self, req: Request<Body>, timeout: Duration) -> Outcome {
        match tokio::time::timeout(timeout, self.exchange_inner(req)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                self.reset();
                Outcome::Timeout
            }
        }
    }

    async fn exchange_inner(&mut self, req: Request<Body>) -> Outcome {
        if self.connect().await.is_err() {
            return Outcome::Connect;
        }
        // A keep-alive connection the server closed while idle is not the request's fault:
        // reconnect once before counting anything.
        if !self.ready().await {
            self.reset();
            if self.connect().await.is_err() || !self.ready().await {
                self.reset();
                return Outcome::Connect;
            }
        }
        let sent = match self {
            Link::H1 { conn: Some(c), .. } => c.send_request(req).await,
            Link::H2 { conn: Some(c), .. } => c.send_request(req).await,
            _ => return Outcome::Connect,
        };
        let Ok(resp) = sent else {
            self.reset();
            return Outcome::Request;
        };
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                self.reset();
                return Outcome::Request;
            }
        }
        Outcome::Response(status)
    }

    async fn ready(&mut self) -> bool {
        match self {
            Link::H1 { conn: Some(c), .. } => c.ready().await.is_ok(),
            Link::H2 { conn: Some(c), .. } => c.ready().await.is_ok(),
            _ => false,
        }
    }
}
