//! Websockets through the real binary: the upgrade reaches the upstream, frames flow both ways
//! (also after the connection sat idle longer than the route's read timeout), and a route with
//! `websocket: false` refuses the upgrade.

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use warden_tests::{warden::Setup, Upstream, Warden};

const CONF: &str = r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
routes:
  - { public: true, name: ws, host: ws.test, upstreams: ["${UP}"], timeouts: { read: 300ms } }
  - { public: true, name: no-ws, host: plain.test, upstreams: ["${UP}"], websocket: false }
"#;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(
    w: &Warden,
    host: &str,
) -> Result<(Socket, tungstenite::handshake::client::Response), tungstenite::Error> {
    let mut req = format!("ws://127.0.0.1:{}/ws", w.http)
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("host", host.parse().expect("host header"));
    tokio_tungstenite::connect_async(req).await
}

async fn echoes(ws: &mut Socket, msg: Message) {
    ws.send(msg.clone()).await.expect("send");
    let back = ws.next().await.expect("a reply").expect("a frame");
    assert_eq!(back, msg);
}

#[tokio::test]
async fn messages_are_echoed_through_the_proxy() {
    let up = Upstream::start("echo").await;
    let w = Setup::new().start(CONF, &[("UP", up.address())]).await;
    let (mut ws, resp) = connect(&w, "ws.test").await.expect("upgrade");
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["x-upstream"], "echo");
    for i in 0..5 {
        echoes(&mut ws, Message::text(format!("hello {i}"))).await;
    }
    echoes(&mut ws, Message::binary(vec![0u8, 1, 2, 255])).await;
    ws.close(None).await.expect("close");
}

#[tokio::test]
async fn an_idle_websocket_outlives_the_read_timeout() {
    let up = Upstream::start("echo").await;
    let w = Setup::new().start(CONF, &[("UP", up.address())]).await;
    let (mut ws, _) = connect(&w, "ws.test").await.expect("upgrade");
    echoes(&mut ws, Message::text("before")).await;
    // Idleness is what is tested here: longer than the route's 300ms read timeout.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    echoes(&mut ws, Message::text("after")).await;
}

#[tokio::test]
async fn a_route_without_websockets_refuses_the_upgrade() {
    let up = Upstream::start("echo").await;
    let w = Setup::new().start(CONF, &[("UP", up.address())]).await;
    match connect(&w, "plain.test").await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        Err(e) => panic!("expected a 400 response, got {e}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
    assert_eq!(up.hits(), 0);
}
