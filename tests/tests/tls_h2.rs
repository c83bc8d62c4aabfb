//! TLS and HTTP/2 through the real binary: a certificate per SNI name on the https listener,
//! HTTP/2 by ALPN there and by prior knowledge (h2c) on the plain listener, HTTP/2 to upstreams
//! (h2c and over TLS), and upstream TLS verified against a configured CA.

use std::net::SocketAddr;
use warden_tests::certs::{der_of, TestCa};
use warden_tests::upstream::Echo;
use warden_tests::{warden::Setup, Upstream, Warden};

const CONF: &str = r#"
listen: { http: "${HTTP}", https: "${HTTPS}" }
admin: { listen: "${ADMIN}" }
tls:
  certificates:
    - { hosts: [a.test], cert: "${DIR}/a.crt", key: "${DIR}/a.key" }
    - { hosts: [b.test], cert: "${DIR}/b.crt", key: "${DIR}/b.key" }
routes:
  - { public: true, name: a, host: a.test, upstreams: ["${UP}"] }
  - { public: true, name: b, host: b.test, upstreams: ["${UP}"] }
  - { public: true, name: h2c-upstream, host: grpc.test, upstreams: ["${UP}"], upstream_protocol: h2c }
  - name: tls-upstream
    public: true
    host: secure.test
    upstreams: ["${TLS_UP}"]
    upstream_tls: { ca_file: "${DIR}/ca.pem", sni: upstream.test }
  - name: tls-upstream-by-address
    public: true
    host: secure-ip.test
    upstreams: ["${TLS_UP}"]
    upstream_tls: { ca_file: "${DIR}/ca.pem" }
  # Its own SNI name, so it cannot reuse the HTTP/1.1 connections of the routes above.
  - name: h2-tls-upstream
    public: true
    host: secure-h2.test
    upstreams: ["${TLS_UP}"]
    upstream_tls: { ca_file: "${DIR}/ca.pem", sni: h2.upstream.test }
    upstream_protocol: h2
  - name: wrong-ca
    public: true
    host: wrong-ca.test
    upstreams: ["${TLS_UP}"]
    upstream_tls: { ca_file: "${DIR}/other-ca.pem", sni: upstream.test }
"#;

const HOSTS: [&str; 7] = [
    "a.test",
    "b.test",
    "grpc.test",
    "secure.test",
    "secure-ip.test",
    "secure-h2.test",
    "wrong-ca.test",
];

struct Fixture {
    _up: Upstream,
    _tls_up: Upstream,
    warden: Warden,
    ca: TestCa,
}

impl Fixture {
    async fn start() -> Self {
        let ca = TestCa::new();
        let other_ca = TestCa::new();
        let setup = Setup::new();
        let dir = setup.dir.path();
        ca.leaf(dir, "a", &["a.test"]);
        ca.leaf(dir, "b", &["b.test"]);
        std::fs::write(dir.join("ca.pem"), &ca.ca_pem).expect("write ca");
        std::fs::write(dir.join("other-ca.pem"), &other_ca.ca_pem).expect("write ca");
        let up = Upstream::start("plain").await;
        let tls_up = Upstream::start_tls(
            "tls",
            ca.server_config(&["upstream.test", "h2.upstream.test", "127.0.0.1"]),
        )
        .await;
        let vars = [("UP", up.address()), ("TLS_UP", tls_up.address())];
        let warden = setup.start(CONF, &vars).await;
        Self {
            _up: up,
            _tls_up: tls_up,
            warden,
            ca,
        }
    }

    /// A client that trusts the test CA and finds every test host name on 127.0.0.1.
    fn client(&self, h2c: bool) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .tls_info(true)
            .add_root_certificate(self.ca.reqwest_root());
        for host in HOSTS {
            // The port comes from the URL.
            b = b.resolve(host, SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        if h2c {
            b = b.http2_prior_knowledge();
        }
        b.build().expect("client")
    }

    fn http_url(&self, host: &str) -> String {
        format!("http://{host}:{}/", self.warden.http)
    }
}

fn peer_certificate(r: &reqwest::Response) -> Vec<u8> {
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("a peer certificate")
        .to_vec()
}

#[tokio::test]
async fn each_sni_name_gets_its_own_certificate_and_http2() {
    let f = Fixture::start().await;
    let c = f.client(false);
    for name in ["a", "b"] {
        let host = format!("{name}.test");
        let r = c
            .get(f.warden.https_url(&host, "/over-tls"))
            .send()
            .await
            .expect("https request");
        assert_eq!(r.status(), 200);
        assert_eq!(r.version(), reqwest::Version::HTTP_2, "{host}");
        assert_eq!(
            peer_certificate(&r),
            der_of(&f.warden.dir.path().join(format!("{name}.crt"))),
            "{host} was served another certificate"
        );
        let echo: Echo = r.json().await.expect("echo");
        assert_eq!(echo.upstream, "plain");
        assert_eq!(echo.path, "/over-tls");
        assert_eq!(echo.header("x-forwarded-proto"), Some("https"));
        let authority = format!("{host}:{}", f.warden.https);
        assert_eq!(echo.header("x-forwarded-host"), Some(authority.as_str()));
    }
}

#[tokio::test]
async fn the_plain_listener_speaks_h2c() {
    let f = Fixture::start().await;
    let r = f
        .client(true)
        .get(f.http_url("a.test"))
        .send()
        .await
        .expect("h2c request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let echo: Echo = r.json().await.expect("echo");
    assert_eq!(echo.upstream, "plain");
    assert_eq!(echo.header("x-forwarded-proto"), Some("http"));
}

#[tokio::test]
async fn upstreams_are_reached_over_h2c_when_configured() {
    let f = Fixture::start().await;
    let c = f.client(false);
    let version_upstream_saw = |host: &'static str| {
        let req = c.get(f.http_url(host));
        async move {
            let echo: Echo = req
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("echo");
            echo.version
        }
    };
    assert_eq!(version_upstream_saw("grpc.test").await, "HTTP/2.0");
    // The default stays HTTP/1.1.
    assert_eq!(version_upstream_saw("a.test").await, "HTTP/1.1");
}

#[tokio::test]
async fn upstream_tls_is_verified_against_the_configured_ca() {
    let f = Fixture::start().await;
    let c = f.client(false);
    let wrong_ca_fails = || async {
        let r = c
            .get(f.http_url("wrong-ca.test"))
            .header("accept", "application/json")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 502);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["error"], "upstream_error");
    };
    wrong_ca_fails().await;
    for (host, version) in [
        ("secure.test", "HTTP/1.1"),
        ("secure-ip.test", "HTTP/1.1"),
        ("secure-h2.test", "HTTP/2.0"),
    ] {
        let r = c.get(f.http_url(host)).send().await.expect("request");
        assert_eq!(r.status(), 200, "{host}");
        let echo: Echo = r.json().await.expect("echo");
        assert_eq!(echo.upstream, "tls", "{host}");
        assert_eq!(echo.version, version, "{host}");
    }
    // Connections verified against the right CA are not lent to a route trusting another.
    wrong_ca_fails().await;
}

/// cert-manager renews a certificate by replacing the files in its Secret volume; the conf
/// does not change. The watcher sees the certificate's directory and the new one is served.
#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    const RENEWING: &str = r#"
listen: { http: "${HTTP}", https: "${HTTPS}" }
admin: { listen: "${ADMIN}" }
tls:
  certificates:
    - { hosts: [a.test], cert: "${DIR}/secret/tls.crt", key: "${DIR}/secret/tls.key" }
routes:
  - { public: true, name: a, host: a.test, upstreams: ["${UP}"] }
"#;
    let ca = TestCa::new();
    let setup = Setup::new();
    let secret = setup.path("secret");
    std::fs::create_dir(&secret).expect("secret dir");
    let (crt, _) = ca.leaf(&secret, "tls", &["a.test"]);
    let old = der_of(&crt);
    let up = Upstream::start("plain").await;
    let w = setup.start(RENEWING, &[("UP", up.address())]).await;
    let served = || async {
        let c = reqwest::Client::builder()
            .no_proxy()
            .tls_info(true)
            .add_root_certificate(ca.reqwest_root())
            .resolve("a.test", SocketAddr::from(([127, 0, 0, 1], 0)))
            .build()
            .expect("client");
        let r = c
            .get(w.https_url("a.test", "/"))
            .send()
            .await
            .expect("https");
        assert_eq!(r.status(), 200);
        peer_certificate(&r)
    };
    assert_eq!(served().await, old);

    let renewed = tempfile::tempdir_in(w.dir.path()).expect("staging dir");
    let (new_crt, new_key) = ca.leaf(renewed.path(), "tls", &["a.test"]);
    let new = der_of(&new_crt);
    std::fs::rename(&new_key, secret.join("tls.key")).expect("replace key");
    std::fs::rename(&new_crt, secret.join("tls.crt")).expect("replace cert");
    warden_tests::eventually("the renewed certificate is served", || async {
        served().await == new
    })
    .await;
}

const MTLS_CONF: &str = r#"
listen: { http: "${HTTP}", https: "${HTTPS}" }
admin: { listen: "${ADMIN}" }
identity:
  jwt_issuers:
    - { name: ci, issuer: "https://tokens.test", audiences: [warden], jwks_file: "${DIR}/jwks.json" }
tls:
  certificates:
    - { hosts: [m.test], cert: "${DIR}/m.crt", key: "${DIR}/m.key" }
  client_auth: { ca_file: "${DIR}/clients-ca.pem" }
routes:
  - name: by-san
    host: m.test
    path_prefix: /san
    upstreams: ["${UP}"]
    auth: { bearer: [ci] }
    policy:
      allow: [{ authenticated: true, client_certificate: { san: svc.example.test } }]
  - name: by-fingerprint
    host: m.test
    path_prefix: /fingerprint
    upstreams: ["${UP}"]
    auth: { bearer: [ci] }
    policy:
      allow: [{ authenticated: true, client_certificate: { fingerprint: "${FINGERPRINT}" } }]
"#;

#[tokio::test]
async fn client_certificates_verified_by_the_listener_decide_policy() {
    let server_ca = TestCa::new();
    let clients_ca = TestCa::new();
    let stranger_ca = TestCa::new();
    let setup = Setup::new();
    let dir = setup.dir.path();
    server_ca.leaf(dir, "m", &["m.test"]);
    std::fs::write(dir.join("clients-ca.pem"), &clients_ca.ca_pem).expect("write ca");
    let issuer = warden_tests::tokens::Issuer::new("https://tokens.test");
    issuer.write_jwks(&dir.join("jwks.json"));
    let (svc, _) = clients_ca.client_identity(&["svc.example.test"]);
    let (other, other_der) = clients_ca.client_identity(&["other.example.test"]);
    let (forged, _) = stranger_ca.client_identity(&["svc.example.test"]);
    let fingerprint: String = ring::digest::digest(&ring::digest::SHA256, &other_der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let up = Upstream::start("mtls").await;
    let w = setup
        .start(
            MTLS_CONF,
            &[("UP", up.address()), ("FINGERPRINT", fingerprint)],
        )
        .await;
    let token = issuer.token("svc", None, &[]);
    let client = |identity: Option<reqwest::Identity>| {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(server_ca.reqwest_root())
            .resolve("m.test", SocketAddr::from(([127, 0, 0, 1], w.https)));
        if let Some(i) = identity {
            b = b.identity(i);
        }
        b.build().expect("client")
    };
    let get = |c: reqwest::Client, path: &'static str| {
        let url = format!("https://m.test:{}{path}", w.https);
        let token = token.clone();
        async move { c.get(url).bearer_auth(token).send().await }
    };

    // The SAN the policy names: allowed; the upstream sees the request.
    let r = get(client(Some(svc.clone())), "/san").await.expect("mTLS");
    assert_eq!(r.status(), 200);
    let echo: Echo = r.json().await.expect("echo");
    assert_eq!(echo.path, "/san");
    // Another certificate of the same CA, or none at all (the listener allows that: policy
    // decides): denied.
    let r = get(client(Some(other.clone())), "/san")
        .await
        .expect("mTLS");
    assert_eq!(r.status(), 403);
    let r = get(client(None), "/san").await.expect("TLS");
    assert_eq!(r.status(), 403);
    // By fingerprint: only that exact certificate.
    let r = get(client(Some(other)), "/fingerprint")
        .await
        .expect("mTLS");
    assert_eq!(r.status(), 200);
    let r = get(client(Some(svc)), "/fingerprint").await.expect("mTLS");
    assert_eq!(r.status(), 403);
    // A certificate no trusted CA issued never completes the handshake, whatever its SAN.
    assert!(get(client(Some(forged)), "/san").await.is_err());
}
