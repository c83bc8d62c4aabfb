//! Identity to the upstream through the real binary, seen by an upstream that echoes what it
//! received: exact identity headers; spoofed identity headers (case variants, duplicates,
//! underscores, folded lines) never reach it; the signed assertion verifies with an independent
//! JWT library from the discovery document and JWKS alone, as kube-apiserver would; assertion
//! key rotation keeps old assertions verifiable; a Kubernetes route carries the service-account
//! token and one `Impersonate-Group` per group, never the client's own `Impersonate-*`.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warden_tests::tokens::{prepare, Issuer, CONF_HEAD};
use warden_tests::upstream::Echo;
use warden_tests::{client, warden::Setup, Upstream, Warden};

const ISSUER: &str = "https://auth.test/";

fn conf(signing_keys: &str) -> String {
    format!(
        r#"{CONF_HEAD}  assertion: {{ issuer: "{ISSUER}", signing_keys: [{signing_keys}] }}
routes:
  - name: app
    host: app.test
    upstreams: ["${{UP}}"]
    auth: {{ bearer: [ci] }}
    policy: {{ allow: [{{ authenticated: true }}] }}
  # The assertion issuer's host: discovery is served here.
  - {{ name: auth, host: auth.test, upstreams: ["${{UP}}"], public: true }}
  - name: kube
    host: k8s.test
    upstreams: ["${{UP}}"]
    auth: {{ bearer: [ci] }}
    policy: {{ allow: [{{ authenticated: true }}] }}
    kubernetes: {{ service_account_token_file: "${{DIR}}/sa-token", impersonate_user: email }}
"#
    )
}

const SA_TOKEN: &str = "service-account-token-of-warden";

struct Fixture {
    _up: Upstream,
    warden: Warden,
    issuer: Issuer,
    up: String,
}

impl Fixture {
    async fn start() -> Self {
        let up = Upstream::start("echo").await;
        let setup = Setup::new();
        let issuer = prepare(&setup);
        for k in ["assert-1.pem", "assert-2.pem"] {
            let key = rcgen::KeyPair::generate().expect("P-256 key");
            std::fs::write(setup.path(k), key.serialize_pem()).expect("signing key");
        }
        std::fs::write(setup.path("sa-token"), format!("{SA_TOKEN}\n")).expect("sa token");
        let vars = [("UP", up.address())];
        let warden = setup.start(&conf(r#""${DIR}/assert-1.pem""#), &vars).await;
        Self {
            up: up.address(),
            _up: up,
            warden,
            issuer,
        }
    }

    fn token(&self) -> String {
        self.issuer
            .token("ann", Some("ann@example.test"), &["dev", "ops"])
    }

    async fn echo(&self, host: &str, path: &str) -> Echo {
        let r = client()
            .get(self.warden.url(path))
            .header("host", host)
            .bearer_auth(self.token())
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{host}{path}");
        r.json().await.expect("echo")
    }

    async fn get_json(&self, host: &str, path: &str) -> Value {
        let r = client()
            .get(self.warden.url(path))
            .header("host", host)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{host}{path}");
        r.json().await.expect("json")
    }
}

/// Sends `head` (request line and headers, CRLF-separated, without the final blank line) as
/// raw bytes, so that header spellings no HTTP client would produce reach Warden as written.
async fn raw(w: &Warden, head: &str) -> (u16, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", w.http))
        .await
        .expect("connect");
    s.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let split = text.find("\r\n\r\n").expect("end of headers");
    let headers = text[..split].to_ascii_lowercase();
    let body = buf[split + 4..].to_vec();
    let body = if headers.contains("transfer-encoding: chunked") {
        dechunk(&body)
    } else {
        body
    };
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").expect("chunk size");
        let size = usize::from_str_radix(
            std::str::from_utf8(&b[..line_end]).expect("utf-8").trim(),
            16,
        )
        .expect("hex size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[line_end + 2..line_end + 2 + size]);
        b = &b[line_end + 2 + size + 2..];
    }
}

#[tokio::test]
async fn identity_headers_are_exact_and_spoofed_ones_never_reach_the_upstream() {
    let f = Fixture::start().await;
    let spoofs = [
        "X-Warden-User: mallory",
        "x-warden-user: mallory-lower",
        "X-WARDEN-EMAIL: mallory@evil.test",
        "X-Warden-Groups: admins",
        "X-Warden-Groups: system:masters",
        "X_Warden_User: mallory-underscore",
        "x_warden_groups: admins-underscore",
        "X-Warden-Jwt-Assertion: forged.assertion.value",
        "X-Warden-Anything: made-up",
        "Impersonate-User: admin",
        "impersonate-group: system:masters",
        "Impersonate_Group: system:masters",
        "Impersonate-Extra-Scopes: all",
        "Impersonate-Uid: 0",
    ];
    let head = format!(
        "GET /spoof HTTP/1.1\r\nHost: app.test\r\nAuthorization: Bearer {}\r\n{}",
        f.token(),
        spoofs.join("\r\n")
    );
    let (status, body) = raw(&f.warden, &head).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let echo: Echo = serde_json::from_slice(&body).expect("echo");
    let one = |name: &str| echo.headers.get(name).cloned().unwrap_or_default();
    assert_eq!(one("x-warden-user"), ["ann"]);
    assert_eq!(one("x-warden-email"), ["ann@example.test"]);
    assert_eq!(one("x-warden-groups"), ["dev,ops"]);
    let assertion = one("x-warden-jwt-assertion");
    assert_eq!(assertion.len(), 1);
    assert_ne!(assertion[0], "forged.assertion.value");
    let names: Vec<&String> = echo.headers.keys().collect();
    for name in &names {
        let n = name.replace('_', "-");
        assert!(
            !n.starts_with("impersonate-"),
            "{name} reached the upstream of a plain route"
        );
        if n.starts_with("x-warden-") {
            assert!(
                [
                    "x-warden-user",
                    "x-warden-email",
                    "x-warden-groups",
                    "x-warden-jwt-assertion"
                ]
                .contains(&name.as_str()),
                "{name} reached the upstream"
            );
        }
    }

    // A folded (obs-fold) continuation line must not smuggle a value in either.
    let folded = format!(
        "GET /fold HTTP/1.1\r\nHost: app.test\r\nAuthorization: Bearer {}\r\nX-Note: a\r\n X-Warden-User: folded",
        f.token()
    );
    let (status, body) = raw(&f.warden, &folded).await;
    if status == 200 {
        let echo: Echo = serde_json::from_slice(&body).expect("echo");
        assert_eq!(
            echo.headers
                .get("x-warden-user")
                .cloned()
                .unwrap_or_default(),
            ["ann"]
        );
    } else {
        assert_eq!(
            status, 400,
            "a folded header is refused as malformed, never a 5xx"
        );
    }
}

/// Verifies `assertion` the way kube-apiserver does with a structured authentication
/// configuration: discovery from the issuer, keys from its `jwks_uri`, issuer equality
/// (trailing slash included), audience, algorithm, expiry.
async fn verify_like_kube_apiserver(f: &Fixture, assertion: &str, audience: &str) -> Value {
    let discovery = f
        .get_json("auth.test", "/.well-known/openid-configuration")
        .await;
    assert_eq!(discovery["issuer"], ISSUER);
    let jwks_uri = discovery["jwks_uri"].as_str().expect("jwks_uri");
    let jwks_url = url::Url::parse(jwks_uri).expect("jwks_uri is a URL");
    assert_eq!(jwks_url.host_str(), Some("auth.test"));
    let algs = discovery["id_token_signing_alg_values_supported"]
        .as_array()
        .expect("algorithms");
    assert!(algs.iter().any(|a| a == "ES256"));
    let jwks: JwkSet =
        serde_json::from_value(f.get_json("auth.test", jwks_url.path()).await).expect("JWKS");
    let kid = decode_header(assertion).expect("header").kid.expect("kid");
    let jwk = jwks.find(&kid).expect("the signing key is published");
    let mut v = Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    decode::<Value>(assertion, &DecodingKey::from_jwk(jwk).expect("key"), &v)
        .expect("the assertion verifies")
        .claims
}

#[tokio::test]
async fn the_assertion_verifies_from_discovery_and_jwks_alone_and_survives_key_rotation() {
    let f = Fixture::start().await;
    let echo = f.echo("app.test", "/who").await;
    let first = echo
        .header("x-warden-jwt-assertion")
        .expect("assertion")
        .to_string();
    let claims = verify_like_kube_apiserver(&f, &first, "app.test").await;
    assert_eq!(claims["sub"], "ann");
    assert_eq!(claims["email"], "ann@example.test");
    assert_eq!(claims["groups"], serde_json::json!(["dev", "ops"]));
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 300, "five minutes by default");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    // A new key signs from now on; the old one stays published, so assertions already
    // handed out keep verifying until they expire.
    warden_tests::tokens::reload(
        &f.warden,
        &conf(r#""${DIR}/assert-2.pem", "${DIR}/assert-1.pem""#),
        &[("UP", f.up.clone())],
    )
    .await;
    let second = f
        .echo("app.test", "/who")
        .await
        .header("x-warden-jwt-assertion")
        .expect("assertion")
        .to_string();
    let (k1, k2) = (
        decode_header(&first).unwrap().kid.unwrap(),
        decode_header(&second).unwrap().kid.unwrap(),
    );
    assert_ne!(k1, k2, "the first key in signing_keys signs");
    verify_like_kube_apiserver(&f, &second, "app.test").await;
    verify_like_kube_apiserver(&f, &first, "app.test").await;
}

#[tokio::test]
async fn a_kubernetes_route_carries_the_service_account_token_and_one_header_per_group() {
    let f = Fixture::start().await;
    let head = format!(
        "GET /api/v1/namespaces HTTP/1.1\r\nHost: k8s.test\r\nAuthorization: Bearer {}\r\nImpersonate-User: admin\r\nImpersonate-Group: system:masters\r\nimpersonate_group: system:masters",
        f.token()
    );
    let (status, body) = raw(&f.warden, &head).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let echo: Echo = serde_json::from_slice(&body).expect("echo");
    let all = |name: &str| echo.headers.get(name).cloned().unwrap_or_default();
    assert_eq!(all("authorization"), [format!("Bearer {SA_TOKEN}")]);
    assert_eq!(all("impersonate-user"), ["ann@example.test"]);
    assert_eq!(all("impersonate-group"), ["dev", "ops"]);
    assert!(!echo.headers.contains_key("impersonate_group"));
    assert!(all("impersonate-group")
        .iter()
        .all(|g| g != "system:masters"));
}

/// An HTTP/1 message head, up to and including the blank line, read a byte at a time so that
/// nothing after it (the upgraded stream) is consumed.
async fn read_head(s: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.expect("message head");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A stand-in for kube-apiserver's exec endpoint: answers an `Upgrade: SPDY/3.1` request with
/// 101, then echoes bytes. Returns its address and the request head it received.
async fn spdy_upstream() -> (String, tokio::sync::oneshot::Receiver<String>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("address").to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        let head = read_head(&mut s).await;
        let upgrade = head
            .to_ascii_lowercase()
            .contains("\r\nupgrade: spdy/3.1\r\n");
        let _ = tx.send(head);
        if !upgrade {
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            return;
        }
        s.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
        )
        .await
        .expect("101");
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn kubectl_spdy_upgrades_pass_a_kubernetes_route_with_impersonation() {
    let (up, head_seen) = spdy_upstream().await;
    let setup = Setup::new();
    let issuer = prepare(&setup);
    std::fs::write(setup.path("sa-token"), format!("{SA_TOKEN}\n")).expect("sa token");
    let conf = format!(
        r#"{CONF_HEAD}routes:
  - name: kube
    host: k8s.test
    upstreams: ["${{UP}}"]
    auth: {{ bearer: [ci] }}
    policy: {{ allow: [{{ authenticated: true }}] }}
    kubernetes: {{ service_account_token_file: "${{DIR}}/sa-token", impersonate_user: email }}
"#
    );
    let warden = setup.start(&conf, &[("UP", up)]).await;
    let token = issuer.token("ann", Some("ann@example.test"), &["dev", "ops"]);
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", warden.http))
        .await
        .expect("connect");
    // As kubectl exec sends it, plus a Connection header nominating the impersonation header
    // (which must not make it hop-by-hop) and a spoofed group.
    let req = format!(
        "POST /api/v1/namespaces/default/pods/web/exec?command=sh&stdin=true HTTP/1.1\r\nHost: k8s.test\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade, Impersonate-User\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nImpersonate-Group: system:masters\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("send");
    let resp = read_head(&mut s).await.to_ascii_lowercase();
    assert!(resp.starts_with("http/1.1 101"), "{resp}");
    assert!(resp.contains("upgrade: spdy/3.1"), "{resp}");

    let head = head_seen.await.expect("the upstream saw the request");
    let lines: Vec<String> = head.lines().map(|l| l.to_ascii_lowercase()).collect();
    let values = |name: &str| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
            .collect()
    };
    assert_eq!(values("upgrade"), ["spdy/3.1"], "{head}");
    assert_eq!(values("connection"), ["upgrade"], "{head}");
    assert_eq!(
        values("authorization"),
        [format!("bearer {SA_TOKEN}")],
        "{head}"
    );
    assert_eq!(values("impersonate-user"), ["ann@example.test"], "{head}");
    assert_eq!(values("impersonate-group"), ["dev", "ops"], "{head}");

    // The stream is open both ways.
    s.write_all(b"\x80\x03\x00\x01spdy-frame")
        .await
        .expect("send");
    let mut echo = [0u8; 14];
    s.read_exact(&mut echo).await.expect("echo");
    assert_eq!(&echo, b"\x80\x03\x00\x01spdy-frame");
}

/// An upstream that answers every request `200` and hands over the request heads it read, as
/// bytes on the wire.
async fn head_upstream() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("address").to_string();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if s.read_exact(&mut byte).await.is_err() {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
                    if s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Upstream-Case: Kept\r\n\r\nok",
                    )
                    .await
                    .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Header names go upstream in canonical case whatever case the client used, hop-by-hop
/// headers (standard and `Connection`-nominated) never arrive, and a request without any
/// hop-by-hop header loses nothing. Response header names reach the client as the upstream
/// spelled them, on a connection kept alive across every request.
#[tokio::test]
async fn upstream_sees_canonical_names_and_no_hop_by_hop_headers() {
    let (up, mut heads) = head_upstream().await;
    let setup = Setup::new();
    let warden = setup
        .start(
            r#"
listen: { http: "${HTTP}" }
admin: { listen: "${ADMIN}" }
routes:
  - { public: true, name: site, host: app.test, upstreams: ["${UP}"] }
"#,
            &[("UP", up)],
        )
        .await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", warden.http))
        .await
        .expect("connect");
    let send = |extra: &str| {
        format!(
            "GET /a HTTP/1.1\r\nHost: app.test\r\nX-Custom-Thing: 1\r\nAccept: */*\r\n{extra}\r\n"
        )
    };
    // Each alone (a request carrying any one of them must not skip the stripping), then all
    // together, then none.
    let singles = [
        "Connection: keep-alive, X-Nominated\r\nX-Nominated: gone\r\n",
        "Keep-Alive: timeout=5\r\n",
        "Proxy-Connection: keep-alive\r\n",
        "TE: trailers\r\n",
        "Trailer: X-Sum\r\n",
        "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
        "Proxy-Authorization: Basic eDp5\r\n",
        "Proxy-Authenticate: Basic\r\n",
    ];
    let all = singles.concat();
    let cases = singles
        .iter()
        .copied()
        .chain([all.as_str(), ""])
        .collect::<Vec<_>>();
    for extra in cases {
        s.write_all(send(extra).as_bytes()).await.expect("send");
        let resp = read_head(&mut s).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.contains("\r\nX-Upstream-Case: Kept\r\n"), "{resp}");
        let mut body = [0u8; 2];
        s.read_exact(&mut body).await.expect("body");
        assert_eq!(&body, b"ok");

        let head = heads.recv().await.expect("the upstream saw the request");
        let names: Vec<&str> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(": ").map(|(n, _)| n))
            .collect();
        assert!(names.contains(&"Host"), "{head}");
        assert!(names.contains(&"x-custom-thing"), "{head}");
        assert!(names.contains(&"accept"), "{head}");
        assert!(names.contains(&"x-forwarded-for"), "{head}");
        assert!(head.contains("\r\nx-custom-thing: 1\r\n"), "{head}");
        for gone in [
            "connection",
            "x-nominated",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "http2-settings",
            "proxy-authorization",
            "proxy-authenticate",
        ] {
            assert!(
                !names.iter().any(|n| n.eq_ignore_ascii_case(gone)),
                "{gone} reached the upstream: {head}"
            );
        }
    }
}
